//! What the engines report when they do not finish: one enum for every
//! mode, precise enough for the CLI to pick an exit code (`cli/exit.rs`)
//! and for a caller to act on (a fallback, a tape file to close). The
//! human text is each variant's `Display`.

use uuid::Uuid;

use super::volume::LabelState;
use crate::catalog::CatalogError;
use crate::device::DeviceError;
use crate::format::{BlockKind, DigestAlgorithm, FormatError, StopReason};
use crate::scsi::{BlockCount, BlockSize, Lba};

pub use super::copy_manager::CopyError;
pub use super::serverless::SnapshotError;

/// Why a backup, restore or verify did not finish.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// The request itself is refused: wrong tape, target too small, no
    /// label. Nothing was written.
    #[error(transparent)]
    Refused(Box<Refusal>),
    /// The copy manager cannot do what a plan needs, or answered what
    /// the plan did not ask for.
    #[error(transparent)]
    CopyManager(Box<CopyError>),
    /// A serverless step's check or hook failed.
    #[error(transparent)]
    Snapshot(Box<SnapshotError>),
    /// The backup set on tape fails a check; `seq` names the record.
    #[error("set {set}: {}{reason}", .seq.map(|s| format!("record {s}: ")).unwrap_or_default())]
    Corrupt {
        set: Uuid,
        seq: Option<u64>,
        reason: Corruption,
    },
    /// A multi-volume set needed its next volume and got none: part
    /// `part - 1` was closed on tape with its continuation trailer and
    /// the set is failed.
    #[error("set {set}: volume {full} is full and no volume could be had for part {part}: {source}; the set is failed (what is on tape stays closed and readable)")]
    NoNextVolume {
        set: Uuid,
        part: u32,
        full: String,
        source: Box<EngineError>,
    },
    /// The backup server refused or failed what the engine asked of it
    /// (a next volume, a set's next part).
    #[error("backup server: {0}")]
    Server(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The tape reached its end: the set was closed as incomplete.
    #[error("tape full: set {set} stopped after {bytes} bytes at end of medium and is marked incomplete; continue on another tape")]
    TapeFull { set: Uuid, bytes: u64 },
    #[error("{what}: {source}")]
    Format {
        what: &'static str,
        #[source]
        source: FormatError,
    },
    /// A third-party copy reached the end of its cartridge: the copy
    /// manager writes one set to one volume, so such a set does not span
    /// (FORMAT.md "Multi-volume sets"). Its file is closed and the set is
    /// failed; the cartridge is full.
    #[error("third-party copy cannot span volumes: the tape reached end of medium (early warning) during set {set}, at {at}; the set is failed and its tape file closed, and the cartridge is full. Back up a source larger than a free cartridge with --mode host or --mode serverless, which continue on the next cartridge")]
    XcopyTapeFull {
        set: Uuid,
        at: String,
        #[source]
        source: Box<DeviceError>,
    },
    /// The copy manager aborted an EXTENDED COPY at this segment.
    #[error("the copy manager aborted the copy at {at}")]
    Aborted {
        at: String,
        #[source]
        source: DeviceError,
    },
    /// SIGINT or SIGTERM stopped the backup; the set was closed with a
    /// trailer marked incomplete where the tape allowed it.
    #[error("interrupted by {signal}: set {set} was stopped after {bytes} bytes, closed{} and recorded as interrupted", if *.trailer { " with a trailer marked incomplete and a filemark" } else { " without a trailer" })]
    Interrupted {
        set: Uuid,
        bytes: u64,
        signal: nix::sys::signal::Signal,
        trailer: bool,
    },
    /// The drive is not where this backup left it: another session moved
    /// the tape. Nothing more was written.
    #[error("the tape moved under this backup: before writing {next} the drive is at block {}, this set's next block is {expected}; another session repositioned the drive, so the set is failed and nothing more was written (the tape may have been overwritten from where it was moved to)", .found.map_or("unknown".to_string(), |b| b.to_string()))]
    TapeMoved {
        expected: u64,
        found: Option<u64>,
        next: &'static str,
    },
    /// Another live process on this host is writing a set to this volume.
    #[error("volume {volume} is in use: set {set} is being written by process {pid} on this host; wait for it to finish")]
    VolumeBusy { volume: String, set: Uuid, pid: i64 },
    /// A worker stopped because the other side failed first.
    #[error("stopped: {0}")]
    Stopped(&'static str),
    /// A snapshot provider operation failed.
    #[error("snapshot provider: {0}")]
    Provider(#[from] crate::snapshot::ProviderError),
    /// A serverless backup stopped; its snapshot job is recorded FAILED
    /// and `release` says what became of the snapshot.
    #[error("serverless backup failed in state {state} (snapshot job {job}): {cause}; {release}")]
    Serverless {
        job: Uuid,
        state: crate::catalog::SnapshotState,
        cause: Box<EngineError>,
        release: String,
    },
}

// Boxed: the refusals are cold and would double the size of every
// `Result` the engines return.
impl From<Refusal> for EngineError {
    fn from(r: Refusal) -> Self {
        EngineError::Refused(Box::new(r))
    }
}

impl From<CopyError> for EngineError {
    fn from(e: CopyError) -> Self {
        EngineError::CopyManager(Box::new(e))
    }
}

impl From<SnapshotError> for EngineError {
    fn from(e: SnapshotError) -> Self {
        EngineError::Snapshot(Box::new(e))
    }
}

impl EngineError {
    pub fn format(what: &'static str, source: FormatError) -> Self {
        EngineError::Format { what, source }
    }
}

/// A request refused before anything was written: the range, the tape,
/// the restore target.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("--lba {lba} is past the end of the source ({capacity} blocks)")]
    LbaPastEnd { lba: Lba, capacity: BlockCount },
    #[error("range {lba}+{blocks} is past the end of the source ({capacity} blocks of {block_size} bytes)")]
    RangePastEnd {
        lba: Lba,
        blocks: BlockCount,
        capacity: BlockCount,
        block_size: BlockSize,
    },
    /// A third-party-copy set needs at least one record.
    #[error("range {lba}+0 is empty: a third-party-copy set needs at least one block")]
    EmptyRange { lba: Lba },
    #[error("tape block size {tape_block} cannot hold a record header and one {block_size}-byte source block (max {max})")]
    TapeBlock {
        tape_block: usize,
        block_size: BlockSize,
        max: usize,
    },
    #[error("{device}: the tape has no label; write one with 'sanmover tape DEV label NAME'")]
    NoLabel { device: String },
    #[error("{device}: the tape {}; refusing to touch it (label it with --force to reuse the tape)", .found.describe())]
    NotOurs { device: String, found: LabelState },
    #[error("volume name {name:?}: {source}")]
    VolumeName { name: String, source: FormatError },
    #[error("{device}: the label has no filemark after it; the tape is damaged")]
    NoFilemarkAfterLabel { device: String },
    /// The tape file holds no set header.
    #[error("{device}: no backup set at this tape file")]
    NoSet { device: String },
    #[error("{device}: this tape is volume {name} ({id}); set {set} is on volume {set_volume_name} ({set_volume})")]
    WrongVolume {
        device: String,
        name: String,
        id: Uuid,
        set: Uuid,
        set_volume_name: String,
        set_volume: Uuid,
    },
    #[error(
        "{device}: the next volume for set {set} is {name} ({id}) again, the volume that is full"
    )]
    SameVolume {
        device: String,
        name: String,
        id: Uuid,
        set: Uuid,
    },
    #[error("set {set} continues on volume {volume_name} ({volume}), tape file {file} (part {part}); this restore has no way to load it: use --server, which loads each part's cartridge")]
    PartNotLoaded {
        set: Uuid,
        part: u32,
        volume_name: String,
        volume: Uuid,
        file: u32,
    },
    #[error("{device}: the catalog does not know which volume is in this drive; label it ('sanmover tape DEV label NAME') or run 'sanmover catalog rebuild --tape DEV' first (a third-party-copy backup does not read the tape itself)")]
    VolumeUnknown { device: String },
    #[error("{device}: target block size is {target} bytes, the set was taken with {set}")]
    TargetBlockSize {
        device: String,
        target: BlockSize,
        set: BlockSize,
    },
    #[error(
        "{device}: the target holds {capacity} blocks; the set needs {blocks} from LBA {from}"
    )]
    TargetTooSmall {
        device: String,
        capacity: BlockCount,
        blocks: BlockCount,
        from: Lba,
    },
    #[error("{device}: the restore target is set {set}'s own source LU ({designator}); restoring would overwrite LBA {from}..={} ({blocks} blocks of {block_size} bytes) with the data of the set; give --force to overwrite the source", .from.0 + .blocks.0.saturating_sub(1))]
    OwnSource {
        device: String,
        set: Uuid,
        designator: String,
        from: Lba,
        blocks: BlockCount,
        block_size: BlockSize,
    },
    #[error("the catalog already has a volume named {name} ({id}); pick another name, or --force to reuse it")]
    VolumeNameTaken { name: String, id: Uuid },
    #[error("the tape already has the sanmover label {name} ({id}); --force writes a new label and loses every set on it")]
    AlreadyLabelled { name: String, id: Uuid },
    #[error("the tape holds {}; --force overwrites it", .found.describe())]
    NotBlank { found: LabelState },
    #[error("{count} snapshot job(s) could not be released; see above")]
    Unreleased { count: usize },
}

/// Why a set on tape fails a check (FORMAT.md): a block that is not what
/// the format says, or a set that disagrees with its trailer, the catalog
/// or the source.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    /// A data record fails `format`'s checks: magic, version, flags,
    /// length, CRC32C, set id, sequence.
    #[error("{0}")]
    Record(FormatError),
    /// The drive returned something that is no tape block.
    #[error("{0}")]
    Unreadable(Box<DeviceError>),
    #[error("expected a data record or the trailer, found {0:?}")]
    Unexpected(BlockKind),
    #[error("CRC index: {0}")]
    CrcIndex(FormatError),
    #[error("CRC index of set {0} inside this set")]
    IndexOfOtherSet(Uuid),
    #[error("CRC index for records {first}..{end} does not follow the records read")]
    IndexOutOfPlace { first: u64, end: u64 },
    /// A record with a deferred CRC whose bytes give another CRC than its
    /// CRC index.
    #[error(
        "data record: CRC32C mismatch, CRC index says {expected:#010x}, bytes give {found:#010x}"
    )]
    IndexedCrc { expected: u32, found: u32 },
    #[error("the record's CRC is in no CRC index")]
    NotIndexed,
    #[error("trailer: {0}")]
    Trailer(FormatError),
    #[error("trailer belongs to set {0}")]
    TrailerOfOtherSet(Uuid),
    #[error("trailer says {trailer_records} records / {trailer_bytes} bytes, the tape holds {records} / {bytes}")]
    TrailerCounts {
        trailer_records: u64,
        trailer_bytes: u64,
        records: u64,
        bytes: u64,
    },
    #[error("{algorithm} digest of the {} is {found}, the trailer says {trailer}", if *.of_crcs { "record CRCs" } else { "data" })]
    TrailerDigest {
        algorithm: DigestAlgorithm,
        of_crcs: bool,
        found: String,
        trailer: String,
    },
    #[error("the tape file holds set {0} instead; the catalog and the tape disagree")]
    OtherSet(Uuid),
    /// LOCATE to the set's recorded block address found something else
    /// than its header: the catalog's address is wrong (a tape rewritten
    /// since, or another cartridge with the same label).
    #[error("LOCATE to block {block}, the catalog's address of this set (tape file {file}), found {found}; the catalog and the tape disagree (`sanmover catalog rebuild --tape DEV` reads the addresses again); nothing was read as the set")]
    Misplaced {
        block: u64,
        file: u32,
        found: String,
    },
    #[error(
        "the set ends after {records} records without a trailer: it was interrupted or damaged"
    )]
    NoTrailer { records: u64 },
    #[error(
        "the trailer marks the set incomplete ({stop}): it holds {bytes} of the planned bytes"
    )]
    Incomplete { stop: StopReason, bytes: u64 },
    #[error("the set header on tape names a {tape} digest, the catalog recorded {catalog}")]
    CatalogAlgorithm {
        tape: DigestAlgorithm,
        catalog: String,
    },
    #[error("{algorithm} digest on tape is {tape}, the catalog recorded {catalog}")]
    CatalogDigest {
        algorithm: DigestAlgorithm,
        tape: String,
        catalog: String,
    },
    #[error("the catalog recorded {catalog_records} records / {catalog_bytes} bytes, the tape holds {records} / {bytes}")]
    CatalogCounts {
        catalog_records: u64,
        catalog_bytes: u64,
        records: u64,
        bytes: u64,
    },
    /// A verify found the set's data differ from a disk (`with`: the
    /// source, or a target named).
    #[error("differs from {with} at byte {byte} (LBA {lba})")]
    Differs { with: String, byte: u64, lba: Lba },
    #[error("continuation header: {0}")]
    Continuation(FormatError),
    /// A part of a multi-volume set does not follow the one before it.
    #[error("part {part}: {field} is {found}, expected {expected}")]
    PartMismatch {
        part: u32,
        field: &'static str,
        expected: u64,
        found: u64,
    },
    #[error("part {part}: the previous part is on volume {found}, expected {expected}")]
    PartVolume {
        part: u32,
        expected: uuid::Uuid,
        found: uuid::Uuid,
    },
    #[error("part {part} continues on the next volume, but the catalog lists no part after it")]
    PartMissing { part: u32 },
    #[error("{restored} blocks restored, the set holds {holds}")]
    ShortRestore {
        restored: BlockCount,
        holds: BlockCount,
    },
}
