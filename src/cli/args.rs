//! The command line as clap declares it: every option once, in the `Args`
//! struct its command receives as it is. Global options are declared on
//! the top level and shown under their own heading in every command's
//! help; each command's help ends with examples (a unit test checks both).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::exit;
use super::sizes::{parse_blocks, parse_byte_size, ByteSize};

const ABOUT: &str = "SAN backups at the SCSI level over iSCSI and SG_IO";

const LONG_ABOUT: &str = "\
sanmover builds SCSI commands itself and sends them over iSCSI (libiscsi) or \
Linux SG_IO to disks and tapes on a SAN: discovery, raw CDBs, tape control, \
and backups to tape in three modes: host-driven (LAN-free), \
snapshot-serverless and third-party copy (EXTENDED COPY), with restore, \
verify and a catalog.

DEVICE ADDRESSES:
  iscsi://[USER[%PASSWORD]@]HOST[:PORT]/TARGET-IQN/LUN
      An iSCSI logical unit. PORT defaults to 3260; IPv6 hosts go in [ ].
      With USER and no PASSWORD, the CHAP secret is read from
      SANMOVER_CHAP_PASSWORD, which keeps it out of process lists.
  /dev/sgN, /dev/nstN, /dev/sdX
      A local SCSI device through the SG_IO ioctl.

ENVIRONMENT:
  SANMOVER_INITIATOR      initiator IQN (same as --initiator)
  SANMOVER_CATALOG        the catalog database (same as --catalog)
  SANMOVER_CHAP_PASSWORD  CHAP secret for URLs that name a user only
  TAPE                    the tape drive of 'sanmover tape' when DEV is left out
  RUST_LOG                finer log control than -v";

const GLOBAL: &str = "Global options";

const TOP_EXAMPLES: &str = "\
Examples:
  sanmover luns iscsi://san
  sanmover --json backup --source iscsi://san/iqn.2024-01.ex:disk/1 \\
      --tape /dev/nst0
  sanmover help backup";

/// The top level.
#[derive(Debug, Parser)]
#[command(name = "sanmover", version, about = ABOUT, long_about = LONG_ABOUT,
          after_help = TOP_EXAMPLES,
          after_long_help = format!("{TOP_EXAMPLES}\n\n{}", exit::table_text()))]
pub struct Cli {
    /// More logging: -v shows every CDB and sense in hex, -vv also data
    /// lengths and libiscsi's own messages.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Print machine-readable JSON on stdout instead of text (errors too:
    /// {"error": ..., "exit_code": ...}).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Record every SCSI command this run sends, on every session, to FILE
    /// as JSON Lines (docs/trace-format.md): CDB, data, status, sense,
    /// timing and I_T nexus. Read it with 'sanmover trace show FILE'.
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub trace: Option<PathBuf>,
    /// What --trace keeps of the data: the bytes themselves (full, which
    /// 'replay' needs) or only their length and SHA-256 (digest).
    #[arg(long = "trace-data", global = true, value_enum, default_value = "full",
          value_name = "MODE", help_heading = GLOBAL)]
    pub trace_data: TraceData,
    #[command(subcommand)]
    pub command: Command,
}

/// What a trace keeps of data-out and data-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceData {
    /// The bytes, in hex.
    Full,
    /// Their length and SHA-256 only.
    Digest,
}

/// How sessions are opened, and where the catalog is.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// The iSCSI initiator name (IQN) this tool logs in with. Targets with
    /// ACLs only let known names in [default: $SANMOVER_INITIATOR, else
    /// iqn.2024-01.org.sanmover:initiator].
    // The environment is read by `Sessions`, not by clap: clap would list
    // an option taken from the environment in usage lines as if required.
    #[arg(long, global = true, value_name = "IQN", help_heading = GLOBAL)]
    pub initiator: Option<String>,
    /// The catalog database [default: $SANMOVER_CATALOG, else
    /// $XDG_DATA_HOME/sanmover/catalog.db, else
    /// ~/.local/share/sanmover/catalog.db].
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub catalog: Option<PathBuf>,
    /// Seconds a login may take, and the TCP user timeout of every session
    /// (a session with no answer for that long is dropped).
    #[arg(long = "cmd-timeout", global = true, default_value_t = 30, value_name = "S",
          help_heading = GLOBAL)]
    pub cmd_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send INQUIRY and decode the standard data or a VPD page (like sg_inq
    /// and sg_vpd).
    ///
    /// Pages may be given as numbers (0x83, 131) or names: sp (0x00, supported
    /// pages), sn (0x80, unit serial number), di (0x83, device identification),
    /// bl (0xb0, block limits), tpc (0x8f, third-party copy). Unknown pages
    /// are hex-dumped.
    #[command(after_help = "\
Examples:
  sanmover inquiry iscsi://san/iqn.2024-01.ex:disk/1
  sanmover inquiry --vpd di iscsi://san/iqn.2024-01.ex:disk/1
  sanmover --json inquiry --vpd 0xb0 /dev/sg1")]
    Inquiry(InquiryArgs),
    /// Discover the targets behind a portal (SendTargets) and list each
    /// logical unit with REPORT LUNS, INQUIRY, its size and its URL.
    ///
    /// Each target is reached through the portal given here first (a
    /// target behind NAT names its own unreachable address in discovery);
    /// the portals discovery names are tried after it.
    #[command(after_help = "\
Examples:
  sanmover luns iscsi://san
  sanmover --initiator iqn.2024-01.ex:backup1 luns iscsi://10.0.0.5:3261")]
    Luns(LunsArgs),
    /// READ CAPACITY: size and block length of a disk (READ CAPACITY(16)
    /// when the disk is too large for (10)).
    #[command(after_help = "\
Examples:
  sanmover readcap iscsi://san/iqn.2024-01.ex:disk/1
  sanmover --json readcap /dev/sdb")]
    Readcap(ReadcapArgs),
    /// Send any CDB (like sg_raw) and print the status, decoded sense and
    /// data.
    ///
    /// The CDB is hex: bytes as separate words ("12 00 00 00 24 00") or run
    /// together ("120000002400"). A residual the transport reports (data
    /// the command did not take or return) is printed. Exit status follows
    /// the sense key (see 'sanmover --help').
    #[command(after_help = "\
Examples:
  sanmover raw iscsi://san/iqn.2024-01.ex:disk/1 00 00 00 00 00 00
  sanmover raw --in 36 /dev/sg1 12 00 00 00 24 00
  sanmover raw --send block.bin iscsi://san/iqn.2024-01.ex:disk/1 \\
      2a 00 00 00 00 00 00 00 01 00")]
    Raw(RawArgs),
    /// Decode sense bytes given in hex, offline (like sg_decode_sense).
    ///
    /// The bytes come from the command line, from a file of hex text
    /// (`--file`; `#` starts a comment), from a binary file (`--binary`),
    /// or from standard input (`-`, or FILE given as `-`).
    #[command(after_help = "\
Examples:
  sanmover sense 70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c0 00 02
  sanmover sense --file sense.txt
  sanmover --json sense --binary sense.bin")]
    Sense(SenseArgs),
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
    /// RESERVE or RESERVE(6), and released on every path. --block-size is
    /// checked against the drive's READ BLOCK LIMITS before anything is
    /// written.
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
    ///
    /// With --server URL (a 'sanmover server' of a shared library) no
    /// --tape is given: the server grants a drive with a cartridge of
    /// --pool, and the set is reported to it and cataloged there. Host
    /// mode writes the granted drive from this host; xcopy mode leases
    /// the drive for the copy manager, which reaches it over its own
    /// session (this host reads the cartridge's label and end of tape
    /// itself); serverless mode is run by the server itself as a job
    /// (snapshot, drive and set on the server; this host follows the job
    /// and prints the cataloged set; --quiesce and --thaw are refused).
    #[command(after_help = "\
Examples:
  sanmover backup --source iscsi://san/iqn.2024-01.ex:disk/1 \\
      --tape /dev/nst0 --label nightly
  sanmover backup --source iscsi://san/iqn.2024-01.ex:disk/1 --lba 2048 \\
      --blocks 1000000 --block-size 1M --tape /dev/nst0
  sanmover backup --mode xcopy \\
      --copy-manager iscsi://router:3261/iqn.2026-11.org.sanmover:router/0 \\
      --source iscsi://san/iqn.2024-01.ex:disk/1 \\
      --tape iscsi://lib/iqn.2024-01.ex:tape/1
  sanmover backup --server http://127.0.0.1:7450 --pool nightly \\
      --source iscsi://san/iqn.2024-01.ex:disk/1
  sanmover backup --server http://127.0.0.1:7450 --mode xcopy \\
      --copy-manager iscsi://router:3261/iqn.2026-11.org.sanmover:router/0 \\
      --source iscsi://san/iqn.2024-01.ex:disk/1
  sanmover --json backup --server http://127.0.0.1:7450 --mode serverless \\
      --snapshot tgt --source iscsi://san/iqn.2024-01.ex:disk/1")]
    Backup(BackupArgs),
    /// Restore a backup set to a disk LUN, checking every record.
    ///
    /// The tape is positioned with LOCATE to the block address recorded at
    /// backup where the drive's positions are trusted (READ POSITION says
    /// block 0 at BOP and 1 after the label), else with REWIND and SPACE
    /// forward; either way the set header found there must be the set's.
    /// The set is read back with every record's CRC32C, sequence and set
    /// id checked, and written with pipelined WRITE(16)s. A set that spans
    /// cartridges is followed part by part; that needs --server, which
    /// loads each part's cartridge in turn, and each later part is reached
    /// the same way (LOCATE where its block address was recorded on a
    /// trusted drive). The trailer's counts and the set
    /// digest (SHA-256 or BLAKE3, as the set header says) must match the
    /// tape and the catalog; a set that fails a check is refused with the
    /// failing record named (the target then holds a partial copy and must
    /// not be used).
    ///
    /// The data goes to the set's own first LBA (a set of --lba 1000
    /// --blocks 8 goes back to LBA 1000..=1007) unless --lba moves it. A
    /// target that is the set's own source LU (its VPD 0x83 designator is
    /// in the set header) is refused before anything is written, naming
    /// the blocks that would be overwritten, unless --force. The drive is
    /// locked as for backup. An expired set restores like any other (its
    /// data is still on tape), with a warning.
    #[command(after_help = "\
Examples:
  sanmover restore 3f2a9c1e --target iscsi://san/iqn.2024-01.ex:scratch/2
  sanmover restore 3f2a9c1e --target iscsi://san/iqn.2024-01.ex:scratch/2 \\
      --lba 0 --tape /dev/nst1
  sanmover restore 3f2a9c1e --target iscsi://san/iqn.2024-01.ex:disk/1 \\
      --force")]
    Restore(RestoreArgs),
    /// Re-read a set from tape and check every record and the digest;
    /// optionally compare the data with a disk.
    ///
    /// --compare-source compares with the LU the set was taken from, as it
    /// is now. --compare-target DEV compares with any disk holding the set
    /// from the set's own first LBA (or --lba): a restored copy is proven
    /// identical to the set without the original. The first difference is
    /// reported with its byte and LBA (exit status 37).
    ///
    /// The drive is locked as for backup: while another sanmover process
    /// on this host uses it, verify is refused with exit status 16, or
    /// waits with --wait.
    ///
    /// With --server URL the backup server finds the set's cartridge,
    /// loads it in a free drive and names the drive and tape file; this
    /// host reads and checks the set, and releases the drive at the end.
    /// A set that spans cartridges is followed part by part (with --server
    /// only), and the whole set's digest is checked at the end.
    #[command(after_help = "\
Examples:
  sanmover verify 3f2a9c1e
  sanmover verify 3f2a9c1e --server http://127.0.0.1:7450
  sanmover verify 3f2a9c1e --compare-source
  sanmover verify 3f2a9c1e \\
      --compare-target iscsi://san/iqn.2024-01.ex:scratch/2")]
    Verify(VerifyArgs),
    /// The backup catalog: list sets and volumes, show a set, expire or
    /// forget a set, or rebuild a volume's entries from its tape.
    ///
    /// Only 'catalog rebuild' reads a tape; the others never touch one.
    #[command(after_help = "\
Examples:
  sanmover catalog list
  sanmover catalog show 3f2a9c1e
  sanmover catalog rebuild --tape /dev/nst0")]
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
    /// NAA first). Afterwards a sample of extents (all with --verify full)
    /// is compared.
    #[command(after_help = "\
Examples:
  sanmover xcopy --copy-manager iscsi://san/iqn.2024-01.ex:disk/1 \\
      --src iscsi://san/iqn.2024-01.ex:disk/1 \\
      --dst iscsi://san/iqn.2024-01.ex:disk/2
  sanmover xcopy --copy-manager iscsi://san/iqn.2024-01.ex:disk/1 \\
      --src iscsi://san/iqn.2024-01.ex:disk/1 \\
      --dst iscsi://san/iqn.2024-01.ex:disk/2 --dry-run
  sanmover xcopy \\
      --copy-manager iscsi://router:3261/iqn.2026-11.org.sanmover:router/0 \\
      --params list.bin")]
    Xcopy(XcopyArgs),
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
    #[command(after_help = "\
Examples:
  sanmover router --listen 127.0.0.1:3261 \\
      --backend iscsi://san/iqn.2024-01.ex:disk --config router.toml
  sanmover router --listen 10.0.0.9:3260 --config router.toml \\
      --allow iqn.2024-01.ex:backup1 --chap-file chap.toml")]
    Router(RouterArgs),
    /// Reservations of any LU, like sg_persist: PERSISTENT RESERVE IN
    /// (keys, reservation, capabilities, full status) and OUT (reserve,
    /// clear, preempt), and a RESERVE/RELEASE(6) probe. Keys are hex with
    /// 0x or decimal. A refusal of the device exits with its category (24
    /// for RESERVATION CONFLICT, 5 for ILLEGAL REQUEST) and the decoded
    /// sense.
    ///
    /// Reservations belong to an I_T nexus: the initiator name
    /// (--initiator) and the ISID of the session, which libiscsi picks
    /// anew for every session. So each `sanmover pr` is a nexus of its
    /// own: reserve, clear and preempt first register --key for it
    /// (REGISTER AND IGNORE EXISTING KEY) and leave the registration and
    /// the reservation in place when the command ends (SPC-4 keeps them
    /// across nexus loss); a later command takes them over with preempt or
    /// ends them with clear. The process that writes to a drive (a backup)
    /// reserves it itself.
    #[command(after_help = "\
Examples:
  sanmover pr iscsi://127.0.0.1:3262/iqn.2026-12.org.sanmover:vtl/1 keys
  sanmover pr /dev/sg3 reserve --key 0xabc --type we
  sanmover --json pr /dev/sg3 status
  sanmover pr /dev/sg3 preempt --key 0xdef --victim 0xabc --type ea --abort
  sanmover pr /dev/sg3 clear --key 0xdef")]
    Pr(PrArgs),
    /// Serve a virtual tape library on our own iSCSI target: a media
    /// changer (SMC-3) at LUN 0 and --drives tape drives (SSC-4) at LUNs 1
    /// to N, over cartridge image files in --media DIR.
    ///
    /// On the first start in an empty (or new) DIR it creates --slots
    /// blank cartridges of --capacity bytes, barcodes VTL001L8, VTL002L8,
    /// ..., one per slot, as DIR/BARCODE.img, and the inventory
    /// DIR/inventory.json; the drives and the one import/export element
    /// start empty. Later starts reload the inventory (and refuse a DIR
    /// made with another --drives or --slots): cartridges left in drives
    /// are loaded again. The inventory is replaced atomically after every
    /// move, and a cartridge image cut short by a crash mid-write is cut
    /// back to its last whole record when loaded.
    ///
    /// Element addresses: the picker 1, the import/export element 16,
    /// drive n (from 0) 256+n at LUN n+1, slot m (from 0) 1024+m. MOVE
    /// MEDIUM into a drive loads that cartridge into the drive's LU; out
    /// of a drive unloads it (refused with MEDIUM REMOVAL PREVENTED while
    /// the drive's PREVENT ALLOW MEDIUM REMOVAL is in force).
    ///
    /// Every LU takes PERSISTENT RESERVE and RESERVE(6) per I_T nexus, as
    /// every LU of our target does (registrations last until the process
    /// ends). Access control is the router's: --allow, --chap-file (TOML,
    /// see `sanmover router --help`), and a listen address other than
    /// loopback needs both unless --insecure. The first stdout line says
    /// where it listens (a JSON object with --json); it runs until killed.
    #[command(after_help = "\
Examples:
  sanmover vtl --listen 127.0.0.1:3262 --media /srv/vtl --drives 2 --slots 10
  sanmover vtl --listen 10.0.0.9:3260 --media /srv/vtl --drives 4 --slots 40 \\
      --capacity 10G --allow iqn.2024-01.ex:backup1 --chap-file chap.toml
  sanmover --json vtl --listen 127.0.0.1:0 --media ./vtl --drives 1 \\
      --slots 4 --capacity 64M")]
    Vtl(VtlArgs),
    /// Serve a tape library (its changer and drives) to Linux LIO as TCMU
    /// `user:` backstores, through the kernel's UIO command ring.
    ///
    /// The library is the one `sanmover vtl` serves: cartridge images and
    /// the inventory in --media, created on the first start. Runs on the
    /// machine with LIO (root; modules uio and
    /// target_core_user). Make a backstore with dev_config
    /// `SUBTYPE/UNIT` (UNIT: drive0, drive1, ..., changer) and this
    /// handler serves it; LIO exports it over any fabric (iSCSI with its
    /// ACLs, tcm_loop for the kernel's st and ch drivers) and emulates
    /// PERSISTENT RESERVE and RESERVE/RELEASE itself. Stops on SIGINT or
    /// SIGTERM.
    ///
    /// The backstore for unit drive0, in configfs: mkdir
    /// /sys/kernel/config/target/core/user_0/drive0, then write
    /// dev_config=sanmover/drive0 and dev_size=1048576 to its control
    /// file, and 1 to its enable file.
    #[command(after_help = "\
Examples:
  sanmover tcmu --media /var/lib/sanmover/vtl --drives 2 --slots 8
  sanmover tcmu --media /srv/vtl --drives 1 --slots 4 --capacity 64M \\
      --subtype sanmover")]
    Tcmu(TcmuArgs),
    /// RECEIVE COPY RESULTS, decoded: operating parameters (the default),
    /// the status of a held copy, or its failed segment details.
    #[command(after_help = "\
Examples:
  sanmover copy-results iscsi://router:3261/iqn.2026-11.org.sanmover:router/0
  sanmover copy-results --status 7 \\
      iscsi://router:3261/iqn.2026-11.org.sanmover:router/0
  sanmover --json copy-results --failed 7 \\
      iscsi://router:3261/iqn.2026-11.org.sanmover:router/0")]
    CopyResults(CopyResultsArgs),
    /// Snapshot jobs of serverless backups: list them, or release what a
    /// crashed backup left behind.
    #[command(after_help = "\
Examples:
  sanmover snapshots list
  sanmover snapshots cleanup")]
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
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 status
  sanmover tape iscsi://lib/iqn.2024-01.ex:tape/1 label VOL001
  TAPE=/dev/nst0 sanmover tape fsf 2")]
    Tape(TapeArgs),
    /// The backup server of a shared tape library: it owns the library's
    /// inventory, the cartridges' pools, the catalog and which host has
    /// which drive; hosts move their data to tape themselves over their
    /// own SAN path (`backup --server`, `restore --server`).
    ///
    /// Without a subcommand, serve: the control protocol is HTTP with
    /// JSON under /v1/ on --listen. Every request carries a host's
    /// credential from --hosts (a TOML file of [[host]] tables: name,
    /// secret of at least 16 characters, operator = true for hosts that
    /// may release fenced drives); an unknown host or a wrong secret gets
    /// 401 and nothing else. Off loopback the server refuses to start
    /// without --tls-cert and --tls-key.
    ///
    /// Requests for a drive wait in one FIFO queue (a waiting host is told
    /// its position). The server picks a drive and a cartridge of the
    /// pool (or labels a blank scratch cartridge; a cartridge that is not
    /// blank or whose label is not the catalog's is retired, never
    /// overwritten), loads it, checks the label and grants a lease that
    /// the host renews by heartbeats. A lease not renewed for
    /// --lease-secs expires: its set is marked failed and the drive is
    /// fenced. On a drive with PERSISTENT RESERVE (found with REPORT
    /// CAPABILITIES at start) the host holds a WRITE EXCLUSIVE reservation
    /// under a key derived from its lease, and the server fences it with
    /// PREEMPT AND ABORT (the host's next command gets RESERVATION
    /// CONFLICT), then gives the drive to the next host. A drive without
    /// it (tgt's) stays fenced until an operator runs `server drives
    /// release DRIVE --force`. A set that reaches the end of its
    /// cartridge continues on another: the host asks, the server marks the
    /// cartridge full, unloads it to its home slot, loads the next one of
    /// the pool (labelling a blank scratch one) into the same drive and
    /// keeps the lease; a restore of such a set has each part's cartridge
    /// loaded in turn (FORMAT.md "Multi-volume sets"). A
    /// drive idle for --idle-unload seconds is unloaded to the
    /// cartridge's home slot. The state lives in the catalog (SQLite,
    /// WAL): after a restart, leases that were active go on if their
    /// hosts heartbeat within --lease-secs, and expire otherwise.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "\
Examples:
  sanmover --catalog /var/lib/sanmover/server.db server \\
      --listen 127.0.0.1:7450 --hosts hosts.toml \\
      --library iscsi://lib/iqn.2024-01.ex:lib/0 \\
      --drive iscsi://lib/iqn.2024-01.ex:lib/1 \\
      --drive iscsi://lib/iqn.2024-01.ex:lib/2
  sanmover server status --server http://127.0.0.1:7450
  sanmover server drives release 1 --force --server http://127.0.0.1:7450"
    )]
    Server(ServerArgs),
    /// Media changer (tape library robot) control, like mtx: element
    /// status, and moving cartridges between slots and drives.
    ///
    /// The verbs, their argument order and the numbering are mtx's: slots
    /// count from 1 (storage elements, then import/export elements, in the
    /// order the changer reports them), drives from 0. With --element,
    /// every SLOT and DRIVE is a raw element address instead (mode page
    /// 1Dh and `status --json` show them). Refusals of the changer (a full
    /// destination, an empty source) are printed with the decoded sense
    /// and exit with its category (5 for ILLEGAL REQUEST).
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 status
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 load 3 0
  CHANGER=iscsi://lib/iqn.2024-01.ex:library/1 sanmover changer unload")]
    Changer(ChangerArgs),
    /// Check what a disk, tape drive, copy manager or iSCSI session really
    /// does against SBC-4, SSC-4, SPC-4 and RFC 7143: named checks, each
    /// citing its section, with the command sent, the answer expected and
    /// the answer observed.
    ///
    /// Suites are picked by each device's type and the VPD pages it
    /// reports: disk (type 00h), tape (01h), changer (08h), copy (3PC bit
    /// or VPD 8Fh), iscsi (iscsi:// addresses); --suite runs only the ones
    /// named. A changer's drive LUs named in the same run let the changer
    /// suite check the drive's Unit Attention after a load. The iscsi
    /// suite opens sessions of its own besides the run's (same initiator
    /// name and CHAP credentials, a random ISID each) to check key
    /// negotiation, the CmdSN window and a dropped connection's session
    /// reinstatement; it sends commands outside the window and drops one
    /// connection on purpose, but writes nothing.
    /// Verdicts: pass, fail, not-supported (the device lacks what the
    /// check needs; the reason is given) and skipped (not run: a check
    /// that writes without --dataloss). Only pass counts as passed.
    ///
    /// Nothing is written without --dataloss, and then only to the LUs
    /// named: a disk's last block (written back with its own contents);
    /// the copy suite's blocks in the last 16 of a copy manager's LU and
    /// the tape named with it; a changer's cartridges are moved and put
    /// back; a tape is written from BOT, and
    /// a cartridge carrying a sanmover volume label is refused (exit 45)
    /// before anything is written to any device.
    ///
    /// --matrix prints the capability matrix instead: checks as rows,
    /// devices as columns (Markdown, or JSON with --format json, or JUnit).
    /// Exit status: 0 when no check failed, 38 when at least one did.
    #[command(after_help = "\
Examples:
  sanmover validate iscsi://san/iqn.2024-01.ex:disk/1
  sanmover validate --dataloss --format junit --out tape.xml \\
      iscsi://lib/iqn.2024-01.ex:tape/1
  sanmover validate --matrix --suite disk iscsi://san/iqn.2024-01.ex:disk/1 \\
      iscsi://san2/iqn.2024-01.ex:disk/1")]
    Validate(ValidateArgs),
    /// Read a trace written with --trace.
    #[command(after_help = "\
Examples:
  sanmover trace show backup.trace
  sanmover --json trace show backup.trace")]
    Trace {
        #[command(subcommand)]
        op: TraceOp,
    },
    /// Send the commands of a trace (written with --trace) to other
    /// devices, in order, and report where their answers differ.
    ///
    /// Each I_T nexus of the trace, in the order it first appears, is
    /// mapped to the next DEV. Before any command of the trace is sent,
    /// every DEV's device type (INQUIRY) must equal the type the trace
    /// recorded for its nexus. A difference is a different status, sense
    /// (key, ASC/ASCQ, filemark, EOM, ILI, INFORMATION) or data-in length
    /// (for INQUIRY, which describes the device itself, only with
    /// --compare-data); with --compare-data the data-in bytes too. The first difference is
    /// shown with both answers decoded. Exit status 49 when an answer
    /// differs, 39 for a trace that is truncated, garbage or newer than
    /// this sanmover, 43 for a device of the wrong type.
    #[command(after_help = "\
Examples:
  sanmover replay backup.trace iscsi://lab/iqn.2024-01.ex:disk/3 \\
      iscsi://lab/iqn.2024-01.ex:tape/1
  sanmover --json replay --compare-data bug.trace /dev/nst0")]
    Replay(ReplayArgs),
}

/// What `trace` does.
#[derive(Debug, Subcommand)]
pub enum TraceOp {
    /// Decode every command of a trace like a protocol analyser: the CDB's
    /// fields, status, decoded sense, data lengths, timing and nexus.
    #[command(after_help = "\
Examples:
  sanmover trace show backup.trace
  sanmover --json trace show backup.trace")]
    Show {
        /// The trace file.
        file: PathBuf,
    },
}

/// Report formats of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Junit,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Device addresses (iscsi://... or /dev/...).
    #[arg(required = true, num_args = 1..)]
    pub devs: Vec<String>,
    /// Run only this suite (repeatable): disk, tape, changer, copy, iscsi.
    #[arg(long = "suite", value_name = "NAME")]
    pub suites: Vec<String>,
    /// Allow the checks that write (to the devices named only).
    #[arg(long)]
    pub dataloss: bool,
    /// Report format [default: text, or json when the global JSON output
    /// option is given].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<ReportFormat>,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The capability matrix: checks as rows, devices as columns.
    #[arg(long)]
    pub matrix: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The trace file (written with --trace --trace-data full).
    pub file: PathBuf,
    /// Device addresses, one per I_T nexus of the trace, in order.
    #[arg(required = true, num_args = 1..)]
    pub devs: Vec<String>,
    /// Compare the data-in bytes too, not only their length.
    #[arg(long)]
    pub compare_data: bool,
}

/// `sanmover server`: serve, or talk to a server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub op: Option<ServerOp>,
    #[command(flatten)]
    pub run: ServerRunArgs,
}

/// How `sanmover server` serves.
#[derive(Debug, Args)]
pub struct ServerRunArgs {
    /// Address of the control port (ADDR:PORT; port 0 picks a free one,
    /// printed on the first line of standard output).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// The library's media changer LU.
    #[arg(long, value_name = "DEV")]
    pub library: Option<String>,
    /// A tape drive of the library (repeatable). Each is tied to its
    /// data-transfer element by the element's device identifier or the
    /// drive's unit serial, never by order; drives are numbered from 0 in
    /// the order given.
    #[arg(long = "drive", value_name = "DEV")]
    pub drives: Vec<String>,
    /// The hosts file: [[host]] name, secret, operator.
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// TLS certificate chain (PEM); needed off loopback.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A lease expires this long after its last heartbeat (hosts beat
    /// three times a period).
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub lease_secs: u64,
    /// Unload a drive that held a cartridge with no lease this long.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub idle_unload: u64,
    /// A request waits in the queue at most this long.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub queue_timeout: u64,
}

/// How a host or an operator reaches the server.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Backup server")]
pub struct ServerClientArgs {
    /// The backup server: http://ADDR:PORT, or https://… with --server-ca.
    #[arg(long, value_name = "URL", env = "SANMOVER_SERVER")]
    pub server: Option<String>,
    /// A file whose first line is this host's credential NAME:SECRET
    /// [default: $SANMOVER_SERVER_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub server_token_file: Option<PathBuf>,
    /// The CA certificate (PEM) an https server's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    pub server_ca: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ServerOp {
    /// The drives (what each holds, who leases it, fences), the queue,
    /// the leases and the cartridges' pools.
    #[command(after_help = "\
Examples:
  sanmover server status --server http://127.0.0.1:7450
  sanmover --json server status")]
    Status(ServerClientArgs),
    /// Drives: release a fenced drive.
    #[command(after_help = "\
Examples:
  sanmover server drives release 1 --force
  sanmover --json server drives release 0 --force --server https://srv:7450 \\
      --server-ca ca.pem --server-token-file op.token")]
    Drives {
        #[command(subcommand)]
        op: DrivesOp,
    },
}

#[derive(Debug, Subcommand)]
pub enum DrivesOp {
    /// Give a fenced drive back to the pool of drives. A drive is fenced
    /// when a lease on it expired and it has no PERSISTENT RESERVE to
    /// preempt the host with (or the PREEMPT failed): the host may still
    /// be writing, so only an operator who knows it is gone may release it
    /// (--force). Needs an operator host's credential.
    #[command(after_help = "\
Examples:
  sanmover server drives release 1 --force
  sanmover server drives release 0 --force --server http://127.0.0.1:7450 \\
      --server-token-file op.token")]
    Release {
        /// The drive's number (see `server status`).
        drive: usize,
        /// Say that the host that held it is gone.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        client: ServerClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct InquiryArgs {
    /// Device address (iscsi://... or /dev/...).
    pub dev: String,
    /// A VPD page instead of the standard INQUIRY data.
    #[arg(long, value_name = "PAGE")]
    pub vpd: Option<String>,
}

#[derive(Debug, Args)]
pub struct LunsArgs {
    /// The portal to discover targets at: iscsi://HOST[:PORT].
    pub portal: String,
}

#[derive(Debug, Args)]
pub struct ReadcapArgs {
    /// Device address of a disk.
    pub dev: String,
}

#[derive(Debug, Args)]
pub struct RawArgs {
    /// Device address.
    pub dev: String,
    /// The CDB, 1 to 16 bytes in hex.
    #[arg(required = true, num_args = 1.., value_name = "CDB-HEX")]
    pub cdb: Vec<String>,
    /// Ask for LEN bytes of data-in.
    #[arg(long = "in", value_name = "LEN", conflicts_with = "send")]
    pub data_in: Option<usize>,
    /// Write the data-in to FILE instead of a hex dump.
    #[arg(long, value_name = "FILE", requires = "data_in")]
    pub save: Option<PathBuf>,
    /// Send FILE's bytes as data-out.
    #[arg(long, value_name = "FILE")]
    pub send: Option<PathBuf>,
    /// Seconds to wait for the command.
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct SenseArgs {
    /// Sense bytes in hex, as separate words or run together; `-` reads
    /// hex text from standard input.
    #[arg(num_args = 0.., value_name = "HEX", required_unless_present_any = ["file", "binary"])]
    pub hex: Vec<String>,
    /// Read the sense bytes as hex text from FILE (`-` for standard input).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["hex", "binary"])]
    pub file: Option<PathBuf>,
    /// Read the sense bytes as raw binary from FILE (`-` for standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "hex")]
    pub binary: Option<PathBuf>,
}

/// How `backup` moves the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackupMode {
    /// This host reads the source and writes the tape (LAN-free).
    Host,
    /// The storage snapshots the source; this host backs the snapshot up
    /// (needs --snapshot).
    Serverless,
    /// A copy manager moves the data on EXTENDED COPY (needs
    /// --copy-manager).
    Xcopy,
}

impl BackupMode {
    /// The mode recorded in the set header and the catalog.
    pub fn format_mode(self) -> crate::format::Mode {
        match self {
            BackupMode::Host => crate::format::Mode::HOST,
            BackupMode::Serverless => crate::format::Mode::SERVERLESS,
            BackupMode::Xcopy => crate::format::Mode::XCOPY,
        }
    }
}

/// What to do when a copy manager refuses or aborts an EXTENDED COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FallbackPolicy {
    /// Do that part through this host instead, and say so in the report.
    Prefer,
    /// Fail.
    Never,
    /// Do not use EXTENDED COPY at all: everything through this host.
    Always,
}

impl From<FallbackPolicy> for crate::engine::disk_copy::Fallback {
    fn from(p: FallbackPolicy) -> Self {
        match p {
            FallbackPolicy::Prefer => Self::Prefer,
            FallbackPolicy::Never => Self::Never,
            FallbackPolicy::Always => Self::Always,
        }
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// How the data moves.
    #[arg(long, value_enum, default_value_t = BackupMode::Host)]
    pub mode: BackupMode,
    /// The disk LUN to back up.
    #[arg(long, value_name = "DEV")]
    pub source: String,
    /// First LBA of the range [default: 0].
    #[arg(long, value_name = "A")]
    pub lba: Option<u64>,
    /// Number of blocks, at least 1 [default: to the end of the LUN].
    #[arg(long, value_name = "N", value_parser = parse_blocks)]
    pub blocks: Option<u64>,
    /// The tape drive (not with --server, which assigns one).
    #[arg(
        long,
        value_name = "DEV",
        required_unless_present = "server",
        conflicts_with = "server"
    )]
    pub tape: Option<String>,
    /// Free text kept with the set.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub label: String,
    /// Tape block size, record header included: bytes, or with a suffix
    /// like sg_dd's (K or KiB = 1024, KB = 1000, M or MiB, MB). Refused
    /// above the drive's READ BLOCK LIMITS maximum. A size below 64 KiB,
    /// or one that is not a multiple of the source's block size, gets a
    /// warning with the speed to expect.
    #[arg(long, value_name = "SIZE", default_value = "256K", value_parser = parse_byte_size)]
    pub block_size: ByteSize,
    /// READ(16)s kept in flight on the source session.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub queue_depth: usize,
    /// When another sanmover process on this host has the tape drive,
    /// wait for it instead of failing with exit status 16.
    #[arg(long)]
    pub wait: bool,
    /// The set digest's algorithm, recorded in the set header: blake3
    /// (BLAKE3) costs less than half the CPU per byte of sha256 (SHA-256,
    /// for sites that require a FIPS 180-4 hash). Restore, verify and
    /// catalog rebuild read both. In xcopy mode it digests the record CRCs
    /// the copy manager returns.
    #[arg(long, value_enum, value_name = "ALG",
          default_value_t = crate::format::DigestAlgorithm::FOR_NEW_SETS)]
    pub digest: crate::format::DigestAlgorithm,
    #[command(flatten)]
    pub xcopy: XcopyModeArgs,
    #[command(flatten)]
    pub serverless: ServerlessArgs,
    #[command(flatten)]
    pub remote: ServerClientArgs,
    /// With --server: the media pool the set goes to (a cartridge of the
    /// pool with room, else a blank scratch cartridge labelled for it). A
    /// set that reaches the end of its cartridge continues on the next
    /// one of the pool, which the server loads into the same drive; if
    /// the pool has none left the set fails with exit status 13.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "default",
        requires = "server"
    )]
    pub pool: String,
}

impl BackupArgs {
    /// The tape drive of a backup without --server (clap requires one).
    pub fn tape(&self) -> &str {
        self.tape.as_deref().unwrap_or_default()
    }
}

/// The options of `backup --mode xcopy`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Third-party copy (--mode xcopy)")]
pub struct XcopyModeArgs {
    /// The copy manager LU that receives EXTENDED COPY.
    #[arg(long, value_name = "DEV", required_if_eq("mode", "xcopy"))]
    pub copy_manager: Option<String>,
    /// When the copy manager refuses or aborts: prefer marks the
    /// third-party set failed and backs up host-driven (the output says
    /// so); never fails; always goes host-driven at once.
    #[arg(long, value_enum, default_value_t = FallbackPolicy::Prefer)]
    pub fallback: FallbackPolicy,
}

/// The options of `backup --mode serverless`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Serverless (--mode serverless)")]
pub struct ServerlessArgs {
    /// The snapshot provider and its options.
    #[arg(
        long,
        value_name = "PROVIDER[:OPTS]",
        required_if_eq("mode", "serverless")
    )]
    pub snapshot: Option<String>,
    /// Shell command that freezes the application.
    #[arg(long, value_name = "CMD", requires = "snapshot")]
    pub quiesce: Option<String>,
    /// Shell command that thaws it (run right after the snapshot, also
    /// when it fails).
    #[arg(long, value_name = "CMD", requires = "snapshot")]
    pub thaw: Option<String>,
    /// The initiator name the masking check expects to be refused
    /// [default: <initiator>-maskcheck].
    #[arg(long, value_name = "IQN", requires = "snapshot")]
    pub maskcheck_initiator: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The set: its id, or a unique prefix of at least 4 hex digits (see
    /// 'catalog list').
    pub set: String,
    /// The disk LUN to write to; it must hold the whole set from the
    /// first LBA it is written to.
    #[arg(long, value_name = "DEV")]
    pub target: String,
    /// The tape [default: where the catalog last saw the set's volume].
    #[arg(long, value_name = "DEV")]
    pub tape: Option<String>,
    /// First LBA on the target [default: the set's own first LBA, so a
    /// set of an LBA range goes back to the same blocks].
    #[arg(long, value_name = "A")]
    pub lba: Option<u64>,
    /// WRITE(16)s kept in flight on the target session.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub queue_depth: usize,
    /// Allow the target to be the set's own source LU (same VPD 0x83
    /// identity as recorded in the set header): the restore then
    /// overwrites the source's blocks with the set's data.
    #[arg(long)]
    pub force: bool,
    /// Wait for the tape drive if another sanmover process on this
    /// host has it, instead of failing with exit status 16.
    #[arg(long)]
    pub wait: bool,
    /// Ask this backup server for the set: it loads the set's cartridge
    /// in a free drive and says which drive and tape file to read, and
    /// for a set that spans cartridges loads each later part's cartridge
    /// into that drive in turn. Without --server such a set is refused at
    /// the end of its first part, naming the cartridge it needs.
    #[command(flatten)]
    pub remote: ServerClientArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The set: its id, or a unique prefix of at least 4 hex digits.
    pub set: String,
    /// The tape [default: where the catalog last saw the set's volume].
    #[arg(long, value_name = "DEV")]
    pub tape: Option<String>,
    /// Also compare the data with the source LUN as it is now.
    #[arg(long, conflicts_with = "compare_target")]
    pub compare_source: bool,
    /// Also compare the data with this disk (a restored copy), from the
    /// set's own first LBA or --lba.
    #[arg(long, value_name = "DEV")]
    pub compare_target: Option<String>,
    /// With --compare-target: the LBA of the target where the set's first
    /// block is [default: the set's own first LBA].
    #[arg(long, value_name = "A", requires = "compare_target")]
    pub lba: Option<u64>,
    /// Wait for the tape drive if another sanmover process on this
    /// host has it, instead of failing with exit status 16.
    #[arg(long)]
    pub wait: bool,
    /// Ask this backup server for the set: it loads the set's cartridge
    /// in a free drive and says which drive and tape file to read, and
    /// each later part's cartridge of a set that spans cartridges; this
    /// host reads and checks it against the server's catalog.
    #[command(flatten)]
    pub remote: ServerClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum CatalogOp {
    /// Every set, oldest first: short id, start (UTC), state, size,
    /// volume and tape file, label and a short source. --json gives every
    /// field.
    #[command(after_help = "\
Examples:
  sanmover catalog list
  sanmover --json catalog list")]
    List,
    /// One set in full: volume and file, range, counts, digest, times
    /// (ISO 8601, UTC), expiry and error.
    #[command(after_help = "\
Examples:
  sanmover catalog show 3f2a9c1e
  sanmover --json catalog show 3f2a9c1e-77d0-4b7e-9a51-0c2f1d3e4b5a")]
    Show {
        /// The set: its id, or a unique prefix of at least 4 hex digits.
        set: String,
    },
    /// Every volume: name, id, when labelled, sets kept and expired, bytes
    /// kept, and the drive it was last seen in. A volume with no kept set
    /// is marked reusable (relabel it with 'tape DEV label NAME --force').
    #[command(after_help = "\
Examples:
  sanmover catalog volumes
  sanmover --json catalog volumes")]
    Volumes,
    /// Mark a set expired: its retention is over. The tape is not
    /// touched; the set still restores and verifies (with a warning), no
    /// longer counts as kept in 'catalog volumes', and keeps its expiry
    /// through 'catalog rebuild'. Expiring an expired set keeps the first
    /// date; a running set is refused.
    #[command(after_help = "\
Examples:
  sanmover catalog expire 3f2a9c1e
  sanmover --json catalog expire 3f2a9c1e")]
    Expire {
        /// The set: its id, or a unique prefix of at least 4 hex digits.
        set: String,
    },
    /// Remove a set from the catalog. The tape is not touched: the set is
    /// still on it, and 'catalog rebuild' finds it again. Without --force
    /// the set is shown and nothing changes (exit status 45); a running
    /// set is refused.
    #[command(after_help = "\
Examples:
  sanmover catalog forget 3f2a9c1e
  sanmover catalog forget 3f2a9c1e --force")]
    Forget {
        /// The set: its id, or a unique prefix of at least 4 hex digits.
        set: String,
        /// Really remove it (without, the set is only shown).
        #[arg(long)]
        force: bool,
    },
    /// Scan a tape from the start and replace its volume's entries with
    /// the sets found on it (each read and checked).
    ///
    /// A set that spans cartridges is rebuilt one cartridge at a time, in
    /// any order: each part found is recorded, the parts are joined by the
    /// set's id, and the set is complete again once every part's
    /// cartridge was rebuilt (until then it is incomplete and its error
    /// names the missing part). A part read alone has its records checked;
    /// the digest of the whole set is checked by verify and restore.
    ///
    /// When that would delete sets the catalog knows (not on the tape) or
    /// change them (state, counts, digest, place), the difference is
    /// printed (with --json as "diff") and nothing changes without
    /// --force. Sets in tape files that cannot be read as a set are kept
    /// as the catalog has them, even with --force; a tape without a
    /// readable label changes nothing. Expiry marks are kept.
    #[command(after_help = "\
Examples:
  sanmover catalog rebuild --tape /dev/nst0
  sanmover --catalog /srv/sanmover/new.db catalog rebuild \\
      --tape iscsi://lib/iqn.2024-01.ex:tape/1
  sanmover catalog rebuild --tape /dev/nst0 --force")]
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The tape drive holding the volume.
    #[arg(long, value_name = "DEV")]
    pub tape: String,
    /// Apply a rebuild that deletes or changes known sets.
    #[arg(long)]
    pub force: bool,
    /// Wait for the tape drive if another sanmover process on this
    /// host has it, instead of failing with exit status 16.
    #[arg(long)]
    pub wait: bool,
}

/// How much of a copy `xcopy` reads back and compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyExtent {
    /// 16 extents spread over the copy.
    Sample,
    /// Every block.
    Full,
}

#[derive(Debug, Args)]
pub struct XcopyArgs {
    /// The copy manager LU that receives EXTENDED COPY.
    #[arg(long, value_name = "DEV")]
    pub copy_manager: String,
    /// Log in to the copy manager under this initiator name instead of
    /// --initiator (its ACL then decides which LUs the copy may touch).
    #[arg(long, value_name = "IQN")]
    pub copy_manager_initiator: Option<String>,
    /// The source disk.
    #[arg(long, value_name = "DEV", required_unless_present = "params")]
    pub src: Option<String>,
    /// The destination disk.
    #[arg(long, value_name = "DEV", required_unless_present = "params")]
    pub dst: Option<String>,
    /// Send this hand-made parameter list instead of planning one. It is
    /// decoded first and refused if malformed, unless --raw.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["src", "dst", "dry_run"])]
    pub params: Option<PathBuf>,
    /// With --params: send the bytes even if they do not decode.
    #[arg(long, requires = "params")]
    pub raw: bool,
    /// First source LBA.
    #[arg(long, value_name = "A", default_value_t = 0)]
    pub src_lba: u64,
    /// Blocks to copy, at least 1 [default: the whole source from
    /// --src-lba].
    #[arg(long, value_name = "N", value_parser = parse_blocks)]
    pub blocks: Option<u64>,
    /// First destination LBA.
    #[arg(long, value_name = "B", default_value_t = 0)]
    pub dst_lba: u64,
    /// Print the plan and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// When the copy manager refuses a command: prefer copies that part
    /// through this host and says so; never fails; always skips EXTENDED
    /// COPY.
    #[arg(long, value_enum, default_value_t = FallbackPolicy::Prefer)]
    pub fallback: FallbackPolicy,
    /// How much of the copy is read back and compared.
    #[arg(long, value_enum, default_value_t = VerifyExtent::Sample)]
    pub verify: VerifyExtent,
}

#[derive(Debug, Args)]
pub struct TcmuArgs {
    #[command(flatten)]
    pub library: LibraryArgs,
    /// The subtype (handler name) in dev_config this handler answers to.
    #[arg(long, default_value = "sanmover", value_name = "NAME")]
    pub subtype: String,
    /// Where the UIO devices are listed.
    #[arg(
        long,
        default_value = "/sys/class/uio",
        value_name = "DIR",
        hide = true
    )]
    pub sysfs: PathBuf,
}

#[derive(Debug, Args)]
pub struct RouterArgs {
    /// Address to listen on (ADDR:PORT), and only there.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    /// A backend target: iscsi://HOST[:PORT]/IQN (all its LUNs) or a
    /// LUN URL. Repeatable.
    #[arg(long = "backend", value_name = "URL")]
    pub backends: Vec<String>,
    /// Initiator name allowed to log in (repeatable) [default: any].
    #[arg(long = "allow", value_name = "IQN")]
    pub allow: Vec<String>,
    /// Require CHAP with the per-initiator secrets in this TOML file.
    #[arg(long, value_name = "FILE")]
    pub chap_file: Option<PathBuf>,
    /// Router configuration (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The router's iSCSI target name [default: iqn.2026-11.org.sanmover:router].
    #[arg(long, value_name = "IQN")]
    pub target_name: Option<String>,
    /// Turn off two safeties, with a warning on every start: allow
    /// listening on a non-loopback address without CHAP and an allow-list
    /// (without it the router refuses to start there; loopback needs
    /// neither), and, when --config has no [[copy_rights]], let every
    /// initiator that reaches the router copy from and onto every backend
    /// LU (without it such copies are refused).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct PrArgs {
    /// The LU (any device type).
    pub dev: String,
    #[command(subcommand)]
    pub op: PrOp,
}

/// A persistent reservation type (SPC-4 6.15.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrTypeArg {
    /// Write Exclusive (1h): others may read.
    We,
    /// Exclusive Access (3h).
    Ea,
    /// Write Exclusive - Registrants Only (5h).
    WeRo,
    /// Exclusive Access - Registrants Only (6h).
    EaRo,
    /// Write Exclusive - All Registrants (7h).
    WeAr,
    /// Exclusive Access - All Registrants (8h).
    EaAr,
}

#[derive(Debug, Subcommand)]
pub enum PrOp {
    /// READ KEYS: the generation and every registered key.
    #[command(after_help = "\
Examples:
  sanmover pr /dev/sg3 keys
  sanmover --json pr iscsi://127.0.0.1:3262/iqn.2026-12.org.sanmover:vtl/1 \\
      keys")]
    Keys,
    /// READ RESERVATION: the holder's key and the type, if any.
    #[command(after_help = "\
Examples:
  sanmover pr /dev/sg3 reservation
  sanmover --json pr /dev/sg3 reservation")]
    Reservation,
    /// REPORT CAPABILITIES: the types the LU supports and its options.
    #[command(after_help = "\
Examples:
  sanmover pr /dev/sg3 capabilities
  sanmover --json pr /dev/sg3 capabilities")]
    Capabilities,
    /// READ FULL STATUS: every registration with its initiator.
    #[command(after_help = "\
Examples:
  sanmover pr /dev/sg3 status
  sanmover --json pr /dev/sg3 status")]
    Status,
    /// Register --key and RESERVE with it.
    #[command(after_help = "\
Examples:
  sanmover pr /dev/sg3 reserve --key 0xabc --type we
  sanmover --initiator iqn.2024-01.ex:h1 pr /dev/sg3 reserve --key 7 --type ea")]
    Reserve {
        /// This command's reservation key.
        #[arg(long, value_parser = parse_key)]
        key: u64,
        /// The reservation type.
        #[arg(long = "type", value_enum)]
        pr_type: PrTypeArg,
    },
    /// Register --key and CLEAR every registration and the reservation.
    #[command(after_help = "\
Examples:
  sanmover pr /dev/sg3 clear --key 0xdef
  sanmover --json pr /dev/sg3 clear --key 12")]
    Clear {
        /// This command's reservation key.
        #[arg(long, value_parser = parse_key)]
        key: u64,
    },
    /// Register --key and PREEMPT the registrations under --victim
    /// (taking the reservation as --type if the victim holds it); --abort
    /// makes it PREEMPT AND ABORT (the victim's running commands end).
    #[command(after_help = "\
Examples:
  sanmover pr /dev/sg3 preempt --key 0xdef --victim 0xabc --type we
  sanmover pr /dev/sg3 preempt --key 0xdef --victim 0xabc --type ea --abort")]
    Preempt {
        /// This command's reservation key.
        #[arg(long, value_parser = parse_key)]
        key: u64,
        /// The key whose registrations (and reservation) are taken.
        #[arg(long, value_parser = parse_key)]
        victim: u64,
        /// The type of the reservation taken over.
        #[arg(long = "type", value_enum)]
        pr_type: PrTypeArg,
        /// PREEMPT AND ABORT: also end the victim's commands.
        #[arg(long)]
        abort: bool,
    },
    /// RESERVE(6), then RELEASE(6): whether the LU takes the older
    /// reservation at all.
    #[command(after_help = "\
Examples:
  sanmover pr /dev/sg3 reserve6
  sanmover --json pr /dev/sg3 reserve6")]
    Reserve6,
}

/// A reservation key: hex with 0x, or decimal.
fn parse_key(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a key: give 0xHEX or a decimal number of 64 bits"))
}

/// The library both `vtl` and `tcmu` serve: a changer, its drives and the
/// cartridge images of a media directory.
#[derive(Debug, Args)]
pub struct LibraryArgs {
    /// The media directory: cartridge images and the inventory.
    #[arg(long, value_name = "DIR")]
    pub media: PathBuf,
    /// Tape drives, 1 to 64 (vtl: LUNs 1 to N; tcmu: units drive0 to
    /// driveN-1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub drives: u16,
    /// Storage slots, each with a cartridge on the first start, 1 to 4096.
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub slots: u16,
    /// Capacity of each new cartridge: bytes, or with K, KiB, KB, M, MiB,
    /// MB, G, GiB or GB.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_capacity)]
    pub capacity: u64,
}

#[derive(Debug, Args)]
pub struct VtlArgs {
    /// Address to listen on (ADDR:PORT), and only there.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub library: LibraryArgs,
    /// Initiator name allowed to log in (repeatable) [default: any].
    #[arg(long = "allow", value_name = "IQN")]
    pub allow: Vec<String>,
    /// Require CHAP with the per-initiator secrets in this TOML file.
    #[arg(long, value_name = "FILE")]
    pub chap_file: Option<PathBuf>,
    /// The library's iSCSI target name [default: iqn.2026-12.org.sanmover:vtl].
    #[arg(long, value_name = "IQN")]
    pub target_name: Option<String>,
    /// Allow listening on a non-loopback address without CHAP and an
    /// allow-list (a warning is printed on every start).
    #[arg(long)]
    pub insecure: bool,
}

/// `--capacity`: the block-size suffixes plus G, GiB (2^30) and GB (10^9).
fn parse_capacity(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let giga = [("GiB", 1u64 << 30), ("GB", 1_000_000_000), ("G", 1 << 30)];
    for (suffix, unit) in giga {
        if let Some(n) = t.strip_suffix(suffix) {
            let n: u64 = n.parse().map_err(|_| format!("'{s}' is not a size"))?;
            return n
                .checked_mul(unit)
                .filter(|b| *b > 0)
                .ok_or_else(|| format!("'{s}' is not a usable capacity"));
        }
    }
    super::sizes::parse_byte_size(t).map(|b| b.0)
}

#[derive(Debug, Args)]
pub struct CopyResultsArgs {
    /// The copy manager LU.
    pub dev: String,
    /// Operating parameters (service action 03h); the default.
    #[arg(long, group = "what")]
    pub op_params: bool,
    /// COPY STATUS (00h) of the copy with this list identifier.
    #[arg(long, value_name = "LIST", group = "what")]
    pub status: Option<u8>,
    /// FAILED SEGMENT DETAILS (04h) of the copy with this list identifier.
    #[arg(long, value_name = "LIST", group = "what")]
    pub failed: Option<u8>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotsOp {
    /// Every snapshot job with its state (PENDING, CREATED, MAPPED,
    /// BACKED_UP, RELEASED, FAILED) and reason; ORPHAN marks a job whose
    /// process is gone and whose snapshot was not released.
    #[command(after_help = "\
Examples:
  sanmover snapshots list
  sanmover --json snapshots list")]
    List,
    /// Unmap and delete every snapshot whose backup process is gone and
    /// that was not released; the provider is rebuilt from the spec stored
    /// with the job. Idempotent.
    #[command(after_help = "\
Examples:
  sanmover snapshots cleanup
  sanmover --catalog /srv/sanmover/catalog.db snapshots cleanup")]
    Cleanup,
}

#[derive(Debug, Args)]
pub struct ChangerArgs {
    /// Device address of the changer LU; when left out, $CHANGER (as for
    /// mtx).
    #[arg(env = "CHANGER")]
    pub dev: Option<String>,
    /// Take every SLOT and DRIVE as a raw element address, not an mtx
    /// number.
    #[arg(long, global = true)]
    pub element: bool,
    /// A drive LU of this library (repeatable): `status` shows which data
    /// transfer element it is, matched by the device identifier the
    /// changer reports (DVCID) against the LU's VPD pages 83h and 80h,
    /// never by order.
    #[arg(long = "drive", value_name = "DEV", global = true)]
    pub drives: Vec<String>,
    #[command(subcommand)]
    pub op: ChangerOp,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ChangerOp {
    /// Element status, as mtx prints it: each drive (full or empty, the
    /// slot its cartridge came from, the volume tag), each slot, the
    /// import/export slots; then each drive's device identifier and, with
    /// --drive, the LU it is.
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 status
  sanmover --json changer iscsi://lib/iqn.2024-01.ex:library/1 status \\
      --drive iscsi://lib/iqn.2024-01.ex:library/2")]
    Status,
    /// INITIALIZE ELEMENT STATUS: have the changer check every element
    /// (a barcode scan on most libraries). Then `status` shows the result.
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 inventory
  CHANGER=iscsi://lib/iqn.2024-01.ex:library/1 sanmover changer inventory")]
    Inventory,
    /// Move the cartridge in SLOT into DRIVE (default 0).
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 load 3
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 load 3 1
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 \\
      load 1026 256 --element")]
    Load {
        /// The slot (from 1) the cartridge is in.
        slot: u16,
        /// The drive (from 0) to load.
        drive: Option<u16>,
    },
    /// Move the cartridge in DRIVE (default 0) into SLOT; without SLOT,
    /// back to the slot it came from (the changer's source address).
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 unload
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 unload 3 1")]
    Unload {
        /// The slot (from 1) to put the cartridge in.
        slot: Option<u16>,
        /// The drive (from 0) to unload.
        drive: Option<u16>,
    },
    /// Move the cartridge in slot FROM to the empty slot TO.
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 transfer 1 9
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 transfer 11 10")]
    Transfer {
        /// The slot the cartridge is in.
        from: u16,
        /// The empty slot to move it to.
        to: u16,
    },
    /// EXCHANGE MEDIUM: the cartridge in SLOT1 goes to SLOT2, and the one
    /// from SLOT2 to SLOT3 (default SLOT1: the two swap). A changer
    /// without EXCHANGE MEDIUM (tgt) gets the same result from MOVE
    /// MEDIUM through an empty slot, and the output says so.
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 exchange 1 2
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 exchange 1 2 9")]
    Exchange {
        /// The first cartridge's slot.
        slot1: u16,
        /// Where it goes; the cartridge there moves on.
        slot2: u16,
        /// Where the second cartridge goes (default SLOT1).
        slot3: Option<u16>,
    },
    /// Load the first full slot into DRIVE (default 0), returning the
    /// cartridge in it to its slot first.
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 first
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 first 1")]
    First {
        /// The drive (from 0).
        drive: Option<u16>,
    },
    /// Return the cartridge in DRIVE (default 0) to its slot and load the
    /// next full slot after that one.
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 next
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 next 1")]
    Next {
        /// The drive (from 0).
        drive: Option<u16>,
    },
    /// Return the cartridge in DRIVE (default 0) to its slot and load the
    /// full slot before that one.
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 previous
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 previous 1")]
    Previous {
        /// The drive (from 0).
        drive: Option<u16>,
    },
    /// Load the last full slot into DRIVE (default 0), returning the
    /// cartridge in it to its slot first.
    #[command(after_help = "\
Examples:
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 last
  sanmover changer iscsi://lib/iqn.2024-01.ex:library/1 last 1")]
    Last {
        /// The drive (from 0).
        drive: Option<u16>,
    },
}

#[derive(Debug, Args)]
pub struct TapeArgs {
    /// Device address of a tape LU; when left out, $TAPE (as for mt).
    #[arg(env = "TAPE")]
    pub dev: Option<String>,
    /// Commands that move or write the tape: wait for the drive if
    /// another sanmover process on this host has it, instead of
    /// failing with exit status 16.
    #[arg(long, global = true)]
    pub wait: bool,
    #[command(subcommand)]
    pub op: TapeOp,
}

/// A count of filemarks or blocks, as mt takes it.
#[derive(Debug, Clone, Copy, Args)]
pub struct Count {
    /// How many.
    #[arg(default_value_t = 1)]
    pub n: u32,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TapeOp {
    /// Drive state: readiness, block size, density, write protect, limits,
    /// position, and the volume in it.
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 status
  sanmover --json tape iscsi://lib/iqn.2024-01.ex:tape/1 status")]
    Status,
    /// Rewind to the beginning of the tape.
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 rewind
  TAPE=/dev/nst0 sanmover tape rewind")]
    Rewind,
    /// Write N filemarks (default 1) at the current position. Data after
    /// this point becomes unreachable.
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 weof
  sanmover tape /dev/nst0 weof 2")]
    Weof(Count),
    /// Space forward over N filemarks (default 1), to the start of a file.
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 fsf
  sanmover tape /dev/nst0 fsf 3")]
    Fsf(Count),
    /// Space backward over N filemarks (default 1; tgt stops one object
    /// off: prefer rewind + fsf there).
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 bsf
  sanmover tape /dev/nst0 bsf 2")]
    Bsf(Count),
    /// Space forward over N blocks (default 1).
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 fsr
  sanmover tape /dev/nst0 fsr 10")]
    Fsr(Count),
    /// Space backward over N blocks (default 1).
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 bsr
  sanmover tape /dev/nst0 bsr 10")]
    Bsr(Count),
    /// Space to end of data, where the next write appends (mt's eom).
    #[command(
        alias = "eom",
        after_help = "\
Examples:
  sanmover tape /dev/nst0 eod
  sanmover tape /dev/nst0 eom"
    )]
    Eod,
    /// Show the position (READ POSITION, long form when supported).
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 tell
  sanmover --json tape /dev/nst0 tell")]
    Tell,
    /// Locate to logical block BLOCK (LOCATE(10)).
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 seek 0
  sanmover tape /dev/nst0 seek 1200")]
    Seek {
        /// The logical block to go to.
        block: u32,
    },
    /// Load the medium (LOAD UNLOAD with LOAD set).
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 load
  TAPE=/dev/nst0 sanmover tape load")]
    Load,
    /// Rewind and unload the medium (mt's offline and rewoffl).
    #[command(aliases = ["offline", "rewoffl"], after_help = "\
Examples:
  sanmover tape /dev/nst0 unload
  sanmover tape /dev/nst0 offline")]
    Unload,
    /// Erase from the current position to the end of the medium.
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 erase --force
  sanmover tape iscsi://lib/iqn.2024-01.ex:tape/1 erase --force")]
    Erase {
        /// Really erase: everything after the position is lost.
        #[arg(long)]
        force: bool,
    },
    /// Set the block length with MODE SELECT; 0 selects variable blocks.
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 setblk 0
  sanmover tape /dev/nst0 setblk 65536")]
    Setblk {
        /// The block length in bytes; 0 for variable-length blocks.
        n: u32,
    },
    /// READ BLOCK LIMITS: the smallest and largest block the drive takes.
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 limits
  sanmover --json tape /dev/nst0 limits")]
    Limits,
    /// Write a sanmover volume label at the start of a blank tape. A tape
    /// with any label or data is refused unless --force, and so is a name
    /// the catalog already has.
    #[command(after_help = "\
Examples:
  sanmover tape /dev/nst0 label VOL001
  sanmover tape /dev/nst0 label VOL001 --force")]
    Label {
        /// The volume name (1 to 64 bytes), unique in the catalog.
        name: String,
        /// Write the label even over a labelled or written tape (every
        /// set on it is lost), or under a name the catalog already has.
        #[arg(long)]
        force: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_modes_are_named_as_the_set_header_names_them() {
        for m in BackupMode::value_variants() {
            let name = m
                .to_possible_value()
                .expect("a name")
                .get_name()
                .to_string();
            assert_eq!(m.format_mode().to_string(), name);
        }
    }
}
