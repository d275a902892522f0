//! Backup engines: what to read, what to write, in which order. They call
//! the device layer for I/O and the format module for bytes, and record
//! every set in the catalog.
//!
//! - [`host`]: host-driven (LAN-free) backup, disk LUN to SAN tape;
//! - [`serverless`]: snapshot-serverless backup: the storage snapshots the
//!   production LUN, this host backs up the snapshot;
//! - [`restore`]: restore and verify of a set, shared by every mode;
//! - [`volume`]: labels, the append point, and the tape scan that rebuilds
//!   the catalog.

use uuid::Uuid;

use crate::catalog::CatalogError;
use crate::device::DeviceError;
use crate::format::FormatError;

pub mod drive_lock;
pub mod guard;
pub mod handoff;
pub mod host;
pub mod interrupt;
pub mod progress;
pub mod restore;
pub mod serverless;
pub mod tpc;
pub mod volume;
pub mod xcopy;

pub use progress::Progress;

/// Why a backup, restore or verify did not finish.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// The request itself is refused: wrong tape, target too small, no
    /// label. Nothing was written.
    #[error("{0}")]
    Refused(String),
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
        what: String,
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
        next: String,
    },
    /// Another live process on this host is writing a set to this volume.
    #[error("volume {volume} is in use: set {set} is being written by process {pid} on this host; wait for it to finish")]
    VolumeBusy { volume: String, set: Uuid, pid: i64 },
    /// A worker stopped because the other side failed first.
    #[error("stopped: {0}")]
    Stopped(String),
    /// A snapshot provider operation failed.
    #[error("snapshot provider: {0}")]
    Provider(#[from] crate::snapshot::ProviderError),
    /// A serverless backup stopped; its snapshot job is recorded FAILED
    /// and `release` says what became of the snapshot.
    #[error("serverless backup failed in state {state} (snapshot job {job}): {cause}; {release}")]
    Serverless {
        job: Uuid,
        state: String,
        cause: Box<EngineError>,
        release: String,
    },
}

impl EngineError {
    pub fn format(what: impl Into<String>, source: FormatError) -> Self {
        EngineError::Format {
            what: what.into(),
            source,
        }
    }
}

/// What every backup mode reports about the set it wrote (`--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SetSummary {
    pub set_id: uuid::Uuid,
    pub volume: uuid::Uuid,
    pub tape_file: u32,
    pub mode: String,
    pub state: crate::catalog::SetState,
    pub lba: u64,
    pub blocks: u64,
    pub block_size: u32,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    #[serde(rename = "MBps")]
    pub mbps: f64,
    /// The set's digest algorithm (set header, FORMAT.md).
    pub digest_algorithm: crate::format::DigestAlgorithm,
    /// The set's digest (FORMAT.md: of the data, or of the record CRCs).
    pub digest: String,
}

/// Throughput in MB/s (10^6 bytes a second); 0 for no time at all.
pub fn mbps(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / seconds / 1e6
    } else {
        0.0
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
