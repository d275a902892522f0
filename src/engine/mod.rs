//! Backup engines: what to read, what to write, in which order. They call
//! the device layer for I/O and the format module for bytes, and record
//! every set in the catalog.
//!
//! - [`host`]: host-driven (LAN-free) backup, disk LUN to SAN tape;
//! - [`third_party`]: third-party-copy backup (`backup --mode xcopy`): a
//!   copy manager moves the set from disk to tape with EXTENDED COPY;
//! - [`serverless`]: snapshot-serverless backup: the storage snapshots the
//!   production LUN, this host backs up the snapshot;
//! - [`disk_copy`]: disk-to-disk EXTENDED COPY (the `xcopy` command);
//! - [`restore`]: restore and verify of a set, shared by every mode;
//! - [`volume`]: labels, the append point, and the tape scan that rebuilds
//!   the catalog.

pub mod copy_manager;
pub mod disk_copy;
pub mod drive_lock;
mod error;
pub mod guard;
pub mod handoff;
pub mod host;
pub mod interrupt;
pub mod progress;
pub mod restore;
pub mod serverless;
pub mod set_writer;
pub mod third_party;
pub mod volume;

pub use error::{Corruption, EngineError, Refusal};
pub use progress::Progress;

/// What every backup mode reports about the set it wrote (`--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SetSummary {
    pub set_id: uuid::Uuid,
    pub volume: uuid::Uuid,
    pub tape_file: u32,
    pub mode: String,
    pub state: crate::catalog::SetState,
    pub lba: crate::scsi::Lba,
    pub blocks: crate::scsi::BlockCount,
    pub block_size: crate::scsi::BlockSize,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    #[serde(rename = "MBps")]
    pub mbps: f64,
    /// The set's digest algorithm (set header, FORMAT.md).
    pub digest_algorithm: crate::format::DigestAlgorithm,
    /// The set's digest (FORMAT.md: of the data, or of the record CRCs).
    pub digest: String,
    /// A multi-volume set's parts (volume, tape file, first record), the
    /// first included; absent for a set on one volume.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<crate::catalog::SetPart>,
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
