//! The command line: parse, open devices, print text or JSON, and map
//! errors to the exit-code table. `anyhow` lives here and nowhere below.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::transport::iscsi::{IscsiOptions, IscsiTransport};
use crate::transport::sgio::SgTransport;
use crate::transport::url::DeviceUrl;
use crate::transport::Transport;

mod backup_cmds;
pub mod exit;
mod output;
mod router_cmds;
mod scsi_cmds;
mod snapshot_cmds;
mod tape_cmds;
mod tpc_cmds;
mod xcopy_cmds;

/// A command-line mistake found after clap (bad hex, bad page name).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

const ABOUT: &str = "SAN backups at the SCSI level over iSCSI and SG_IO";

const LONG_ABOUT: &str = "\
sanmover builds SCSI commands itself and sends them over iSCSI (libiscsi) or \
Linux SG_IO to disks and tapes on a SAN: discovery, raw CDBs, tape control, \
and (in later releases) host-driven, snapshot-serverless and third-party-copy \
backups.

DEVICE ADDRESSES:
  iscsi://[USER[%PASSWORD]@]HOST[:PORT]/TARGET-IQN/LUN
      An iSCSI logical unit. PORT defaults to 3260; IPv6 hosts go in [ ].
      With USER and no PASSWORD, the CHAP secret is read from
      SANMOVER_CHAP_PASSWORD, which keeps it out of process lists.
  /dev/sgN, /dev/nstN, /dev/sdX
      A local SCSI device through the SG_IO ioctl.

ENVIRONMENT:
  SANMOVER_INITIATOR      initiator IQN (same as --initiator)
  SANMOVER_CHAP_PASSWORD  CHAP secret for URLs that name a user only
  RUST_LOG                finer log control than -v";

/// The top level.
#[derive(Debug, Parser)]
#[command(name = "sanmover", version, about = ABOUT, long_about = LONG_ABOUT,
          after_help = "Run 'sanmover help COMMAND' for a command's options.",
          after_long_help = exit::table_text())]
pub struct Cli {
    /// More logging: -v shows every CDB and sense in hex, -vv also data
    /// lengths and libiscsi's own messages.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How sessions are opened.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// The iSCSI initiator name (IQN) this tool logs in with. Targets with
    /// ACLs only let known names in.
    #[arg(long, global = true, env = "SANMOVER_INITIATOR", value_name = "IQN")]
    pub initiator: Option<String>,
    /// The catalog database [default: $XDG_DATA_HOME/sanmover/catalog.db,
    /// or ~/.local/share/sanmover/catalog.db].
    #[arg(long, global = true, env = "SANMOVER_CATALOG", value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// Seconds before a command without its own timeout is given up.
    #[arg(
        long = "cmd-timeout",
        global = true,
        default_value_t = 30,
        value_name = "S"
    )]
    pub cmd_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send INQUIRY and decode the standard data or a VPD page (like sg_inq
    /// and sg_vpd).
    ///
    /// Pages may be given as numbers (0x83, 131) or names: sp (0x00, supported
    /// pages), sn (0x80, unit serial number), di (0x83, device identification),
    /// bl (0xb0, block limits). Unknown pages are hex-dumped.
    Inquiry {
        /// Device address (iscsi://... or /dev/...).
        dev: String,
        /// A VPD page instead of the standard INQUIRY data.
        #[arg(long, value_name = "PAGE")]
        vpd: Option<String>,
    },
    /// Discover the targets behind a portal (SendTargets) and list each
    /// logical unit with REPORT LUNS and INQUIRY.
    ///
    /// Each target is reached through the portal given here first (a
    /// target behind NAT names its own unreachable address in discovery);
    /// the portals discovery names are tried after it.
    Luns {
        /// iscsi://HOST[:PORT]
        portal: String,
    },
    /// READ CAPACITY: size and block length of a disk.
    Readcap {
        /// Device address.
        dev: String,
    },
    /// Send any CDB (like sg_raw) and print the status, decoded sense and
    /// data.
    ///
    /// The CDB is hex: bytes as separate words ("12 00 00 00 24 00") or run
    /// together ("120000002400"). Exit status follows the sense key (see
    /// 'sanmover --help').
    Raw {
        /// Device address.
        dev: String,
        /// The CDB, 1 to 16 bytes in hex.
        #[arg(required = true, num_args = 1.., value_name = "CDB-HEX")]
        cdb: Vec<String>,
        /// Ask for LEN bytes of data-in.
        #[arg(long = "in", value_name = "LEN", conflicts_with = "send")]
        r#in: Option<usize>,
        /// Write the data-in to FILE instead of a hex dump.
        #[arg(long, value_name = "FILE", requires = "in")]
        save: Option<PathBuf>,
        /// Send FILE's bytes as data-out.
        #[arg(long, value_name = "FILE")]
        send: Option<PathBuf>,
        /// Seconds to wait for the command.
        #[arg(long, value_name = "S", default_value_t = 30)]
        timeout: u64,
    },
    /// Decode sense bytes given in hex, offline (like sg_decode_sense).
    Sense {
        /// Sense bytes in hex, as separate words or run together.
        #[arg(required = true, num_args = 1.., value_name = "HEX")]
        hex: Vec<String>,
    },
    /// Back up a disk LUN to tape as one backup set.
    ///
    /// Host mode (LAN-free): this host reads the source LUN with pipelined
    /// READ(16)s and writes variable-length records to the tape drive, the
    /// reads overlapping the writes. The set goes after the last set on the
    /// tape (never over it), in the self-describing format of FORMAT.md:
    /// a header, records each with its own CRC32C, a trailer with the
    /// SHA-256 of the data, and a filemark. The set is recorded in the
    /// catalog and is 'complete' only once its filemark is on tape.
    ///
    /// The tape must carry a sanmover label (see 'tape DEV label'). The
    /// drive is reserved for the backup where it supports PERSISTENT
    /// RESERVE or RESERVE(6), and released on every path.
    ///
    /// Xcopy mode (third-party copy): a copy manager (--copy-manager, e.g.
    /// 'sanmover router') moves the data from the source to the tape on
    /// EXTENDED COPY; this host sends parameter lists and reads status,
    /// and neither reads data nor positions the tape. The set has the same
    /// layout, with the record CRCs computed by the copy manager and kept
    /// in a CRC index (FORMAT.md), so restore, verify and catalog rebuild
    /// work unchanged. The catalog must know which volume is in the drive.
    /// With --fallback prefer (the default) a copy the copy manager refuses
    /// or aborts is marked failed and the backup is done host-driven,
    /// which the output says; never fails instead; always goes
    /// host-driven at once.
    ///
    /// Serverless mode (--snapshot PROVIDER[:k=v,...]): this host never
    /// reads the production LUN. It runs --quiesce, sends SYNCHRONIZE
    /// CACHE, has the storage snapshot the LUN, runs --thaw at once, has
    /// the snapshot exported read-only to this initiator alone, checks the
    /// masking (a second initiator name must be refused) and the
    /// snapshot's identity, backs the snapshot up as the production LUN's
    /// set, then unmaps and deletes it. Every step is recorded (see
    /// 'snapshots list'); on any failure the snapshot is released.
    /// Providers: tgt[:control=N,env=RIG.ENV,dir=D,portal=H:P,tid=N],
    /// exec:SCRIPT[,k=v] (docs/snapshot-exec.md), lio, xcopy-image.
    Backup {
        /// host, serverless (through --snapshot) or xcopy (third-party
        /// copy through --copy-manager).
        #[arg(long, default_value = "host", value_parser = parse_mode)]
        mode: crate::format::Mode,
        /// Xcopy mode: the copy manager LU that receives EXTENDED COPY.
        #[arg(long, value_name = "DEV", required_if_eq("mode", "xcopy"))]
        copy_manager: Option<String>,
        /// Xcopy mode: what to do when the copy manager refuses or aborts.
        #[arg(long, default_value = "prefer", value_parser = ["prefer", "never", "always"])]
        fallback: String,
        /// Serverless: the snapshot provider and its options.
        #[arg(long, value_name = "PROVIDER[:OPTS]")]
        snapshot: Option<String>,
        /// Serverless: shell command that freezes the application.
        #[arg(long, value_name = "CMD", requires = "snapshot")]
        quiesce: Option<String>,
        /// Serverless: shell command that thaws it (run right after the
        /// snapshot, also when it fails).
        #[arg(long, value_name = "CMD", requires = "snapshot")]
        thaw: Option<String>,
        /// Serverless: the initiator name the masking check expects to be
        /// refused [default: <initiator>-maskcheck].
        #[arg(long, value_name = "IQN", requires = "snapshot")]
        maskcheck_initiator: Option<String>,
        /// The disk LUN to back up.
        #[arg(long, value_name = "DEV")]
        source: String,
        /// First LBA of the range [default: 0].
        #[arg(long, value_name = "A")]
        lba: Option<u64>,
        /// Number of blocks [default: to the end of the LUN].
        #[arg(long, value_name = "N")]
        blocks: Option<u64>,
        /// The tape drive.
        #[arg(long, value_name = "DEV")]
        tape: String,
        /// Free text kept with the set.
        #[arg(long, value_name = "TEXT", default_value = "")]
        label: String,
        /// Tape block size in bytes (one record, header included).
        #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
        block_size: usize,
        /// READ(16)s kept in flight on the source session.
        #[arg(long, value_name = "N", default_value_t = 8)]
        queue_depth: usize,
    },
    /// Restore a backup set to a disk LUN, checking every record.
    ///
    /// The tape is positioned with REWIND and SPACE forward, the set read
    /// back with every record's CRC32C, sequence and set id checked, and
    /// written with pipelined WRITE(16)s. The trailer's counts and the
    /// SHA-256 of the data must match the tape and the catalog; a set that
    /// fails a check is refused with the failing record named (the target
    /// then holds a partial copy and must not be used).
    Restore {
        /// Set id (a unique prefix of at least 4 hex digits will do).
        set: String,
        /// The disk LUN to write to; it must hold the whole set.
        #[arg(long, value_name = "DEV")]
        target: String,
        /// The tape [default: where the catalog last saw the set's volume].
        #[arg(long, value_name = "DEV")]
        tape: Option<String>,
        /// First LBA on the target.
        #[arg(long, value_name = "A", default_value_t = 0)]
        lba: u64,
        /// WRITE(16)s kept in flight on the target session.
        #[arg(long, value_name = "N", default_value_t = 8)]
        queue_depth: usize,
    },
    /// Re-read a set from tape and check every record and the digest.
    Verify {
        /// Set id or unique prefix.
        set: String,
        /// The tape [default: where the catalog last saw the set's volume].
        #[arg(long, value_name = "DEV")]
        tape: Option<String>,
        /// Also compare the data with the source LUN as it is now.
        #[arg(long)]
        compare_source: bool,
    },
    /// The backup catalog: list sets, show one, or rebuild it from a tape.
    Catalog {
        #[command(subcommand)]
        op: CatalogOp,
    },
    /// Disk-to-disk EXTENDED COPY (LID1): an image copy done by the copy
    /// manager, planned within its limits and verified.
    ///
    /// The copy manager's limits come from RECEIVE COPY RESULTS (operating
    /// parameters), else conservative defaults (2 CSCDs, 1 segment, 1 MiB
    /// segments). Each end is named by its VPD 0x83 designator (LU, binary
    /// NAA first). With --fallback prefer (the default) a command the copy
    /// manager refuses is copied through this host and the report says
    /// so; never fails instead; always skips EXTENDED COPY. Afterwards a
    /// sample of extents (all with --verify full) is compared.
    Xcopy {
        /// The copy manager LU that receives EXTENDED COPY.
        #[arg(long, value_name = "DEV")]
        copy_manager: String,
        /// Log in to the copy manager under this initiator name instead of
        /// --initiator (its ACL then decides which LUs the copy may touch).
        #[arg(long, value_name = "IQN")]
        copy_manager_initiator: Option<String>,
        #[arg(long, value_name = "DEV", required_unless_present = "params")]
        src: Option<String>,
        #[arg(long, value_name = "DEV", required_unless_present = "params")]
        dst: Option<String>,
        /// Send this hand-made parameter list instead of planning one. It is
        /// decoded first and refused if malformed, unless --raw.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["src", "dst", "dry_run"])]
        params: Option<PathBuf>,
        /// With --params: send the bytes even if they do not decode.
        #[arg(long, requires = "params")]
        raw: bool,
        #[arg(long, value_name = "A", default_value_t = 0)]
        src_lba: u64,
        /// Blocks to copy [default: the whole source from --src-lba].
        #[arg(long, value_name = "N")]
        blocks: Option<u64>,
        #[arg(long, value_name = "B", default_value_t = 0)]
        dst_lba: u64,
        /// Print the plan and send nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "prefer", value_parser = ["prefer", "never", "always"])]
        fallback: String,
        /// sample (16 extents) or full.
        #[arg(long, default_value = "sample", value_parser = ["sample", "full"])]
        verify: String,
    },
    /// Run the data router in the foreground: an iSCSI target whose LUN 0
    /// is an EXTENDED COPY copy manager that copies between the LUs of the
    /// backend targets, disk to tape included.
    ///
    /// At start-up the router logs in to every --backend target, lists its
    /// LUNs (REPORT LUNS) and indexes each LU by its VPD 0x83 designators;
    /// an EXTENDED COPY names its source and destination by those
    /// designators (E4h CSCDs). Segments: 00h block->stream, 01h
    /// stream->block, 02h block->block, 04h inline->stream, 06h
    /// stream->discard, 0Ah, 10h write filemarks, 11h space, 12h locate
    /// (where the tape has LOCATE). Limits are advertised in RECEIVE COPY
    /// RESULTS (03h) and VPD 0x8F and set with --config. When a list is
    /// sent with LIST ID USAGE 00b the router keeps the CRC32C of every
    /// tape block it wrote, returned by RECEIVE COPY RESULTS receive data
    /// (01h): 'backup --mode xcopy' builds its CRC index from them.
    ///
    /// It listens only on --listen (port 0: a free port), prints one line
    /// 'sanmover router: listening on ADDR, target IQN, copy manager LUN 0'
    /// on stdout when ready, and logs to stderr (-v for more). It runs
    /// until killed.
    ///
    /// Logins can be limited to --allow initiator names and required to
    /// pass CHAP (--chap-file, TOML: one [[initiator]] table per initiator
    /// with name, user (default: the name) and secret of 12 bytes or more;
    /// an optional [target] table with user and secret for mutual CHAP;
    /// discovery = true to require CHAP of discovery sessions too). A
    /// listen address other than loopback needs both CHAP and an
    /// allow-list, unless --insecure.
    ///
    /// --config FILE (TOML) may set target_name, serial, own_blocks,
    /// backends, allow, chap_file; a [limits] table: max_cscds,
    /// max_segments, max_descriptor_list, max_segment_bytes, max_inline,
    /// held_data_limit, max_stream_transfer (advertised and enforced),
    /// max_copy_bytes and max_copy_seconds (per command), and
    /// held_lists_per_nexus, held_bytes_per_nexus (results held for
    /// RECEIVE COPY RESULTS); and a [connections] table: max_connections,
    /// max_per_source, reserved (slots logins in progress cannot take),
    /// login_timeout_secs, idle_timeout_secs, send_timeout_secs,
    /// memory_budget_mib, memory_per_connection_mib.
    Router {
        /// Address to listen on (ADDR:PORT), and only there.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        /// A backend target: iscsi://HOST[:PORT]/IQN (all its LUNs) or a
        /// LUN URL. Repeatable.
        #[arg(long = "backend", value_name = "URL")]
        backends: Vec<String>,
        /// Initiator name allowed to log in (repeatable) [default: any].
        #[arg(long = "allow", value_name = "IQN")]
        allow: Vec<String>,
        /// Require CHAP with the per-initiator secrets in this TOML file.
        #[arg(long, value_name = "FILE")]
        chap_file: Option<PathBuf>,
        /// Router configuration (TOML).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The router's iSCSI target name [default: iqn.2026-11.org.sanmover:router].
        #[arg(long, value_name = "IQN")]
        target_name: Option<String>,
        #[command(flatten)]
        flags: router_cmds::RouterFlags,
    },
    /// RECEIVE COPY RESULTS, decoded: operating parameters, the status of
    /// a held copy, or its failed segment details.
    CopyResults {
        dev: String,
        /// Operating parameters (service action 03h).
        #[arg(long, group = "what")]
        op_params: bool,
        /// COPY STATUS (00h) of the copy with this list identifier.
        #[arg(long, value_name = "LIST", group = "what")]
        status: Option<u8>,
        /// FAILED SEGMENT DETAILS (04h) of the copy with this list identifier.
        #[arg(long, value_name = "LIST", group = "what")]
        failed: Option<u8>,
    },
    /// Snapshot jobs of serverless backups: list them, or release what a
    /// crashed backup left behind.
    Snapshots {
        #[command(subcommand)]
        op: SnapshotsOp,
    },
    /// Tape control, like mt: position, filemarks, block size, status.
    ///
    /// Positions are counted by sanmover from a rewind; READ POSITION is
    /// shown as the drive reports it and marked untrusted on targets known
    /// to answer a constant (tgt). Where the target lacks a command (tgt has
    /// no LOCATE or ERASE), its sense is printed decoded and the exit status
    /// says why.
    Tape {
        /// Device address of a tape LU.
        dev: String,
        #[command(subcommand)]
        op: TapeOp,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum TapeOp {
    /// Drive state: readiness, block size, density, write protect, limits,
    /// position.
    Status,
    /// Rewind to the beginning of the tape.
    Rewind,
    /// Write N filemarks (default 1) at the current position. Data after
    /// this point becomes unreachable.
    Weof {
        #[arg(default_value_t = 1)]
        n: u32,
    },
    /// Space forward over N filemarks, to the start of a file.
    Fsf { n: u32 },
    /// Space backward over N filemarks (tgt stops one object off; prefer
    /// rewind + fsf there).
    Bsf { n: u32 },
    /// Space forward over N blocks.
    Fsr { n: u32 },
    /// Space backward over N blocks.
    Bsr { n: u32 },
    /// Space to end of data, where the next write appends.
    Eod,
    /// Show the position (READ POSITION, long form when supported).
    Tell,
    /// Locate to logical block BLOCK (LOCATE(10)).
    Seek { block: u32 },
    /// Load the medium (LOAD UNLOAD with LOAD set).
    Load,
    /// Unload the medium.
    Unload,
    /// Erase from the current position to the end of the medium. Needs
    /// --force because everything after the position is lost.
    Erase {
        #[arg(long)]
        force: bool,
    },
    /// Set the block length with MODE SELECT; 0 selects variable blocks.
    Setblk { n: u32 },
    /// READ BLOCK LIMITS: the smallest and largest block the drive takes.
    Limits,
    /// Write a sanmover volume label at the start of a blank tape. A tape
    /// with any label or data is refused unless --force, which loses
    /// everything on it.
    Label {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum CatalogOp {
    /// Every set, oldest first.
    List,
    /// One set in full.
    Show {
        /// Set id or unique prefix.
        set: String,
    },
    /// Scan a tape from the start and replace its volume's entries with
    /// the sets found on it (each read and checked).
    Rebuild {
        #[arg(long, value_name = "DEV")]
        tape: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SnapshotsOp {
    /// Every snapshot job with its state (PENDING, CREATED, MAPPED,
    /// BACKED_UP, RELEASED, FAILED) and reason.
    List,
    /// Unmap and delete every snapshot whose backup process is gone and
    /// that was not released; the provider is rebuilt from the spec stored
    /// with the job. Idempotent.
    Cleanup,
}

fn parse_mode(s: &str) -> Result<crate::format::Mode, String> {
    match s {
        "host" => Ok(crate::format::Mode::HOST),
        "serverless" => Ok(crate::format::Mode::SERVERLESS),
        "xcopy" => Ok(crate::format::Mode::XCOPY),
        _ => Err(format!("'{s}' is not a mode: host, serverless or xcopy")),
    }
}

/// Parse arguments, run, and return the process exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::OK,
                _ => exit::SYNTAX,
            };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.verbose);
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::for_error(&e);
            if cli.json {
                let v = serde_json::json!({
                    "error": format!("{e:#}"),
                    "exit_code": code,
                });
                let _ = writeln!(std::io::stdout(), "{v}");
            }
            eprintln!("sanmover: {e:#}");
            code
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "warn,sanmover=debug",
        _ => "trace",
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if verbose == 0 {
        // Plain warnings for users; timestamps and module paths with -v.
        b.format(|f, r| {
            use std::io::Write as _;
            writeln!(
                f,
                "sanmover: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            )
        });
    } else {
        b.format_timestamp_millis();
    }
    let _ = b.try_init();
}

fn run(cli: &Cli) -> Result<u8> {
    let out = output::Out { json: cli.json };
    match &cli.command {
        Command::Inquiry { dev, vpd } => scsi_cmds::inquiry(&cli.conn, &out, dev, vpd.as_deref()),
        Command::Luns { portal } => scsi_cmds::luns(&cli.conn, &out, portal),
        Command::Readcap { dev } => scsi_cmds::readcap(&cli.conn, &out, dev),
        Command::Raw {
            dev,
            cdb,
            r#in,
            save,
            send,
            timeout,
        } => scsi_cmds::raw(
            &cli.conn,
            &out,
            dev,
            scsi_cmds::RawArgs {
                cdb,
                alloc: *r#in,
                save: save.as_deref(),
                send: send.as_deref(),
                timeout: Duration::from_secs(*timeout),
            },
        ),
        Command::Sense { hex } => scsi_cmds::sense(&out, hex),
        Command::Tape { dev, op } => tape_cmds::tape(&cli.conn, &out, dev, op.clone()),
        Command::Backup {
            mode,
            copy_manager,
            fallback,
            snapshot,
            quiesce,
            thaw,
            maskcheck_initiator,
            source,
            lba,
            blocks,
            tape,
            label,
            block_size,
            queue_depth,
        } => backup_cmds::run_backup(
            &cli.conn,
            &out,
            &cli.conn.catalog_path(),
            backup_cmds::BackupArgs {
                mode: *mode,
                source,
                lba: *lba,
                blocks: *blocks,
                tape,
                label,
                block_size: *block_size,
                queue_depth: *queue_depth,
                copy_manager: copy_manager.as_deref(),
                fallback,
                snapshot: snapshot.as_deref(),
                quiesce: quiesce.as_deref(),
                thaw: thaw.as_deref(),
                maskcheck_initiator: maskcheck_initiator.as_deref(),
            },
        ),
        Command::Snapshots { op } => match op {
            SnapshotsOp::List => snapshot_cmds::list(&out, &cli.conn.catalog_path()),
            SnapshotsOp::Cleanup => snapshot_cmds::cleanup(&out, &cli.conn.catalog_path()),
        },
        Command::Restore {
            set,
            target,
            tape,
            lba,
            queue_depth,
        } => backup_cmds::run_restore(
            &cli.conn,
            &out,
            &cli.conn.catalog_path(),
            backup_cmds::RestoreArgs {
                set,
                target,
                tape: tape.as_deref(),
                lba: *lba,
                queue_depth: *queue_depth,
            },
        ),
        Command::Verify {
            set,
            tape,
            compare_source,
        } => backup_cmds::run_verify(
            &cli.conn,
            &out,
            &cli.conn.catalog_path(),
            set,
            tape.as_deref(),
            *compare_source,
        ),
        Command::Xcopy {
            copy_manager,
            copy_manager_initiator,
            src,
            dst,
            params,
            raw,
            src_lba,
            blocks,
            dst_lba,
            dry_run,
            fallback,
            verify,
        } => match (params, src, dst) {
            (Some(file), _, _) => xcopy_cmds::send_params(
                &cli.conn,
                &out,
                copy_manager,
                copy_manager_initiator.as_deref(),
                file,
                *raw,
            ),
            (None, Some(src), Some(dst)) => xcopy_cmds::xcopy(
                &cli.conn,
                &out,
                xcopy_cmds::XcopyArgs {
                    copy_manager,
                    copy_manager_initiator: copy_manager_initiator.as_deref(),
                    src,
                    dst,
                    src_lba: *src_lba,
                    blocks: *blocks,
                    dst_lba: *dst_lba,
                    dry_run: *dry_run,
                    fallback,
                    full_verify: verify == "full",
                },
            ),
            _ => Err(UsageError("--src and --dst are needed without --params".into()).into()),
        },
        Command::Router {
            listen,
            backends,
            allow,
            chap_file,
            config,
            target_name,
            flags,
        } => router_cmds::run(
            &cli.conn,
            router_cmds::RouterArgs {
                listen: *listen,
                backends,
                allow,
                chap_file: chap_file.as_deref(),
                config: config.as_deref(),
                target_name: target_name.as_deref(),
                flags,
            },
        ),
        Command::CopyResults {
            dev,
            status,
            failed,
            ..
        } => xcopy_cmds::copy_results(&cli.conn, &out, dev, *status, *failed),
        Command::Catalog { op } => match op {
            CatalogOp::List => backup_cmds::catalog_list(&out, &cli.conn.catalog_path()),
            CatalogOp::Show { set } => {
                backup_cmds::catalog_show(&out, &cli.conn.catalog_path(), set)
            }
            CatalogOp::Rebuild { tape } => {
                backup_cmds::catalog_rebuild(&cli.conn, &out, &cli.conn.catalog_path(), tape)
            }
        },
    }
}

impl ConnArgs {
    pub fn catalog_path(&self) -> PathBuf {
        self.catalog
            .clone()
            .unwrap_or_else(crate::catalog::Catalog::default_path)
    }

    pub fn iscsi_options(&self) -> IscsiOptions {
        let mut o = IscsiOptions::default();
        if let Some(i) = &self.initiator {
            o.initiator = i.clone();
        }
        o.timeout = Duration::from_secs(self.cmd_timeout);
        o
    }
}

/// Open a device address: iSCSI URL or a local SG_IO path.
pub fn open_transport(conn: &ConnArgs, dev: &str) -> Result<Box<dyn Transport + Send>> {
    match DeviceUrl::parse(dev)? {
        DeviceUrl::Iscsi(url) => {
            let t = IscsiTransport::connect(&url, &conn.iscsi_options())
                .with_context(|| format!("opening {url}"))?;
            Ok(Box::new(t))
        }
        DeviceUrl::Path(p) => {
            let t = SgTransport::open(&p)?;
            Ok(Box::new(t))
        }
    }
}

/// Hex words from the command line into bytes: "12 00 24" or "120024" or
/// "12,00,24"; an optional 0x prefix per word.
pub fn parse_hex_args(words: &[String]) -> Result<Vec<u8>, UsageError> {
    let mut out = Vec::new();
    for w in words {
        for part in w.split(|c: char| c.is_whitespace() || c == ',' || c == ':') {
            if part.is_empty() {
                continue;
            }
            let p = part
                .strip_prefix("0x")
                .or_else(|| part.strip_prefix("0X"))
                .unwrap_or(part);
            // A single digit is a byte ("0"); longer words must be whole bytes.
            let p = match p.len() {
                1 => format!("0{p}"),
                n if n % 2 == 1 => {
                    return Err(UsageError(format!(
                        "'{part}' has an odd number of hex digits"
                    )))
                }
                _ => p.to_string(),
            };
            let bytes = hex::decode(&p)
                .map_err(|e| UsageError(format!("'{part}' is not hex bytes: {e}")))?;
            out.extend(bytes);
        }
    }
    if out.is_empty() {
        return Err(UsageError("no hex bytes given".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_args_forms() {
        let v = |s: &[&str]| parse_hex_args(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["12", "00", "0x24"]).unwrap(), vec![0x12, 0, 0x24]);
        assert_eq!(v(&["120024"]).unwrap(), vec![0x12, 0, 0x24]);
        assert_eq!(v(&["12,0,24"]).unwrap(), vec![0x12, 0, 0x24]);
        assert_eq!(v(&["0", "1"]).unwrap(), vec![0, 1]);
        assert!(v(&["123"]).is_err());
        assert!(v(&["zz"]).is_err());
        assert!(v(&[""]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
