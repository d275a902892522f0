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
    ///
    /// The bytes come from the command line, from a file of hex text
    /// (`--file`; `#` starts a comment), from a binary file (`--binary`),
    /// or from standard input (`-`, or FILE given as `-`).
    ///
    /// Examples:
    ///   sanmover sense 70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c0 00 02
    ///   sanmover sense --file sense.txt
    ///   sg_raw -v /dev/sg1 ... 2>&1 | grep -o 'Sense.*' | sanmover sense -
    ///   sanmover sense --binary sense.bin --json
    Sense {
        /// Sense bytes in hex, as separate words or run together; `-`
        /// reads hex text from standard input.
        #[arg(num_args = 0.., value_name = "HEX", required_unless_present_any = ["file", "binary"])]
        hex: Vec<String>,
        /// Read the sense bytes as hex text from FILE (`-` for standard input).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["hex", "binary"])]
        file: Option<PathBuf>,
        /// Read the sense bytes as raw binary from FILE (`-` for standard input).
        #[arg(long, value_name = "FILE", conflicts_with = "hex")]
        binary: Option<PathBuf>,
    },
    /// Back up a disk LUN to tape as one backup set.
    ///
    /// Host mode (LAN-free): this host reads the source LUN with pipelined
    /// READ(16)s and writes variable-length records to the tape drive, the
    /// reads overlapping the writes. The set goes after the last set on the
    /// tape (never over it), in the self-describing format of FORMAT.md:
    /// a header, records each with its own CRC32C, a trailer with the
    /// digest of the data (BLAKE3 unless --digest sha256), and a filemark.
    /// The set is recorded in the catalog and is 'complete' only once its
    /// filemark is on tape.
    ///
    /// The tape must carry a sanmover label (see 'tape DEV label'). The
    /// drive is reserved for the backup where it supports PERSISTENT
    /// RESERVE or RESERVE(6), and released on every path.
    ///
    /// One sanmover process per drive on this host: the drive is locked
    /// (a lock file named after its VPD 0x83 designator, beside the
    /// catalog) for the whole backup, and any other sanmover command that
    /// would move it is refused with exit status 16, naming this process
    /// (or waits, with --wait). Where the drive's READ POSITION can be
    /// trusted (not tgt), the position is checked before the trailer and
    /// the filemark; a tape moved by another session fails the set.
    ///
    /// Ctrl-C (SIGINT) or SIGTERM: the record being written is finished,
    /// the set is closed with a trailer marked incomplete and a filemark,
    /// recorded as 'interrupted' with its byte count, and the command
    /// exits 130 (143 for SIGTERM). A second Ctrl-C ends it at once.
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
        /// When another sanmover process on this host has the tape drive,
        /// wait for it instead of failing with exit status 16.
        #[arg(long)]
        wait: bool,
        /// The set digest's algorithm, recorded in the set header: blake3
        /// (BLAKE3) costs less than half the CPU per byte of sha256
        /// (SHA-256, for sites that require a FIPS 180-4 hash). Restore,
        /// verify and catalog rebuild read both. In xcopy mode it digests
        /// the record CRCs the copy manager returns.
        #[arg(long, value_enum, value_name = "ALG",
              default_value_t = crate::format::DigestAlgorithm::FOR_NEW_SETS)]
        digest: crate::format::DigestAlgorithm,
    },
    /// Restore a backup set to a disk LUN, checking every record.
    ///
    /// The tape is positioned with REWIND and SPACE forward, the set read
    /// back with every record's CRC32C, sequence and set id checked, and
    /// written with pipelined WRITE(16)s. The trailer's counts and the set
    /// digest (SHA-256 or BLAKE3, as the set header says) must match the
    /// tape and the catalog; a set that
    /// fails a check is refused with the failing record named (the target
    /// then holds a partial copy and must not be used).
    ///
    /// The data goes to the set's own first LBA (a set of --lba 1000
    /// --blocks 8 goes back to LBA 1000..=1007) unless --lba moves it. A
    /// target that is the set's own source LU (its VPD 0x83 designator is
    /// in the set header) is refused before anything is written, naming
    /// the blocks that would be overwritten, unless --force. The drive is
    /// locked as for backup.
    Restore {
        /// Set id (a unique prefix of at least 4 hex digits will do).
        set: String,
        /// The disk LUN to write to; it must hold the whole set.
        #[arg(long, value_name = "DEV")]
        target: String,
        /// The tape [default: where the catalog last saw the set's volume].
        #[arg(long, value_name = "DEV")]
        tape: Option<String>,
        /// First LBA on the target [default: the set's own first LBA, so a
        /// set of an LBA range goes back to the same blocks].
        #[arg(long, value_name = "A")]
        lba: Option<u64>,
        /// WRITE(16)s kept in flight on the target session.
        #[arg(long, value_name = "N", default_value_t = 8)]
        queue_depth: usize,
        /// Allow the target to be the set's own source LU (same VPD 0x83
        /// identity as recorded in the set header): the restore then
        /// overwrites the source's blocks with the set's data.
        #[arg(long)]
        force: bool,
        /// Wait for the tape drive if another sanmover process on this
        /// host has it, instead of failing with exit status 16.
        #[arg(long)]
        wait: bool,
    },
    /// Re-read a set from tape and check every record and the digest.
    ///
    /// The drive is locked as for backup: while another sanmover process
    /// on this host uses it, verify is refused with exit status 16, or
    /// waits with --wait.
    Verify {
        /// Set id or unique prefix.
        set: String,
        /// The tape [default: where the catalog last saw the set's volume].
        #[arg(long, value_name = "DEV")]
        tape: Option<String>,
        /// Also compare the data with the source LUN as it is now.
        #[arg(long)]
        compare_source: bool,
        /// Wait for the tape drive if another sanmover process on this
        /// host has it, instead of failing with exit status 16.
        #[arg(long)]
        wait: bool,
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
    /// Copy rights: a copy may name a backend LU only where a
    /// [[copy_rights]] rule of --config grants it to the initiator, as a
    /// source, a destination or both, by VPD 0x83 designator (hex) or by
    /// backend target and LUN. A copy naming an LU outside the initiator's
    /// rights is refused exactly like one naming an LU nobody has (COPY
    /// ABORTED, 0D/02), and the router logs the refusal. With no rule at
    /// all every backend LU is refused, unless --insecure. The router's own
    /// scratch disk (LUN 0's blocks) is private to each I_T nexus: a
    /// session reads only what it wrote or copied there itself.
    ///
    /// --config FILE (TOML) may set target_name, serial, own_blocks,
    /// backends, allow, chap_file, backend_secret_file; [[copy_rights]]
    /// rules (initiators = [NAME or @GROUP], lus = [{ designator = HEX |
    /// target = IQN, lun = N, role = source|destination|both }]) and an
    /// [initiator_groups] table (GROUP = [NAME, ...]); a [limits] table:
    /// max_cscds, max_segments, max_descriptor_list, max_segment_bytes,
    /// max_inline, held_data_limit, max_stream_transfer (advertised and
    /// enforced), max_copy_bytes and max_copy_seconds (per command), and
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
        safety: router_cmds::SafetyArgs,
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
        /// Device address of a tape LU; when left out, $TAPE (as for mt).
        #[arg(env = "TAPE")]
        dev: Option<String>,
        /// Commands that move or write the tape: wait for the drive if
        /// another sanmover process on this host has it, instead of
        /// failing with exit status 16.
        #[arg(long, global = true)]
        wait: bool,
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
    /// Space forward over N filemarks (default 1), to the start of a file.
    Fsf {
        #[arg(default_value_t = 1)]
        n: u32,
    },
    /// Space backward over N filemarks (default 1; tgt stops one object
    /// off: prefer rewind + fsf there).
    Bsf {
        #[arg(default_value_t = 1)]
        n: u32,
    },
    /// Space forward over N blocks (default 1).
    Fsr {
        #[arg(default_value_t = 1)]
        n: u32,
    },
    /// Space backward over N blocks (default 1).
    Bsr {
        #[arg(default_value_t = 1)]
        n: u32,
    },
    /// Space to end of data, where the next write appends (mt's eom).
    #[command(alias = "eom")]
    Eod,
    /// Show the position (READ POSITION, long form when supported).
    Tell,
    /// Locate to logical block BLOCK (LOCATE(10)).
    Seek { block: u32 },
    /// Load the medium (LOAD UNLOAD with LOAD set).
    Load,
    /// Rewind and unload the medium (mt's offline and rewoffl).
    #[command(aliases = ["offline", "rewoffl"])]
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
    ///
    /// When that would delete sets the catalog knows (not on the tape) or
    /// change them (state, counts, digest, place), the difference is
    /// printed (with --json as "diff") and nothing changes without
    /// --force. Sets in tape files that cannot be read as a set are kept
    /// as the catalog has them, even with --force; a tape without a
    /// readable label changes nothing.
    Rebuild {
        /// The tape drive holding the volume.
        #[arg(long, value_name = "DEV")]
        tape: String,
        /// Apply a rebuild that deletes or changes known sets.
        #[arg(long)]
        force: bool,
        /// Wait for the tape drive if another sanmover process on this
        /// host has it, instead of failing with exit status 16.
        #[arg(long)]
        wait: bool,
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
            // `--json` holds for argument errors too, as far as it can be
            // seen before parsing succeeded.
            if code != exit::OK && std::env::args().skip(1).any(|a| a == "--json") {
                let text = e.render().to_string();
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                let v = serde_json::json!({ "error": first, "exit_code": code });
                let _ = writeln!(std::io::stdout(), "{v}");
            }
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
        Command::Sense { hex, file, binary } => {
            scsi_cmds::sense(&out, &scsi_cmds::SenseInput::new(hex, file, binary))
        }
        Command::Tape { dev, wait, op } => {
            tape_cmds::tape(&cli.conn, &out, dev.as_deref(), op.clone(), *wait)
        }
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
            wait,
            digest,
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
                wait: *wait,
                digest: *digest,
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
            force,
            wait,
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
                force: *force,
                wait: *wait,
            },
        ),
        Command::Verify {
            set,
            tape,
            compare_source,
            wait,
        } => backup_cmds::run_verify(
            &cli.conn,
            &out,
            &cli.conn.catalog_path(),
            backup_cmds::VerifyArgs {
                set,
                tape: tape.as_deref(),
                compare_source: *compare_source,
                wait: *wait,
            },
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
            safety,
        } => router_cmds::run(
            &cli.conn,
            router_cmds::RouterArgs {
                listen: *listen,
                backends,
                allow,
                chap_file: chap_file.as_deref(),
                config: config.as_deref(),
                target_name: target_name.as_deref(),
                safety,
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
            CatalogOp::Rebuild { tape, force, wait } => backup_cmds::catalog_rebuild(
                &cli.conn,
                &out,
                &cli.conn.catalog_path(),
                tape,
                *force,
                *wait,
            ),
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
