//! What the engines report when they do not finish: one enum for every
//! mode, precise enough for the CLI to pick an exit code (`cli/exit.rs`)
//! and for a caller to act on (a fallback, a tape file to close). The
//! human text is each variant's `Display`.

use uuid::Uuid;

use super::volume::LabelState;
use crate::catalog::CatalogError;
use crate::device::DeviceError;
use crate::format::FormatError;
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
    /// The backup set on tape fails a check.
    #[error("set {set}: {}{reason}", .seq.map(|s| format!("record {s}: ")).unwrap_or_default())]
    Corrupt {
        set: Uuid,
        seq: Option<u64>,
        reason: String,
    },
    /// The tape reached its end: the set was closed as incomplete.
    #[error("tape full: set {set} stopped after {bytes} bytes at end of medium and is marked incomplete; continue on another tape")]
    TapeFull { set: Uuid, bytes: u64 },
    #[error("{what}: {source}")]
    Format {
        what: &'static str,
        #[source]
        source: FormatError,
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
