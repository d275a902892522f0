//! The on-tape backup-set format (FORMAT.md at the repo root has the byte
//! tables): a volume label, then per set a header, data records and a
//! trailer. Pure: no I/O, no `unsafe`; decoders never panic.
//!
//! Every record starts with an 8-byte magic and a big-endian u16 format
//! version; those ten bytes keep their meaning in every future version.
//! Label, set header and trailer then carry flags, a total length and end
//! with a CRC32C (Castagnoli) of all bytes before it. A data record is a
//! 48-byte [`RecordHeader`] plus payload, with its CRC inside the header.

#![deny(unsafe_code)]

mod codec;
mod continuation;
mod digest;
mod index;
mod label;
mod record;
mod set;

pub use continuation::Continuation;
pub use digest::{DigestAlgorithm, SetDigest};
pub use index::{CrcChainDigest, CrcIndex};
pub use label::VolumeLabel;
pub use record::{
    check_record, decode_record, encode_deferred_record_header, encode_record,
    encode_record_header, RecordHeader,
};
pub use set::{SetHeader, SetTrailer, SourceIdentity, StopReason, StoredDesignator};

use crate::scsi::open_code;
use std::fmt;
use uuid::Uuid;

/// The newest format version this build writes; it reads every version
/// from 1 to this one. Version 2 added multi-volume sets (FORMAT.md
/// "Multi-volume sets").
pub const FORMAT_VERSION: u16 = 2;

/// The version records are written with when their layout is the same in
/// every version (label, set header, data record, CRC index, the trailer
/// of a single-volume set), so a set that fits one volume reads with any
/// sanmover.
pub const BASE_VERSION: u16 = 1;

/// Why a block is not a valid record of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{what}: truncated, need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{what}: bad magic {}", fmt_magic(found))]
    BadMagic { what: &'static str, found: [u8; 8] },
    #[error("{what}: format version {version} is not supported (this build reads versions 1 to {FORMAT_VERSION})")]
    UnsupportedVersion { what: &'static str, version: u16 },
    #[error("{what}: CRC32C mismatch, record says {expected:#010x}, bytes give {found:#010x}")]
    BadCrc {
        what: &'static str,
        expected: u32,
        found: u32,
    },
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("data record belongs to set {found}, expected set {expected}")]
    WrongSet { expected: Uuid, found: Uuid },
    #[error("data record out of sequence: expected record {expected}, found {found}")]
    OutOfSequence { expected: u64, found: u64 },
}

/// Printable ASCII as text, anything else as hex.
fn fmt_magic(m: &[u8; 8]) -> String {
    if m.iter().all(|c| c.is_ascii_graphic()) {
        format!("{:?}", String::from_utf8_lossy(m))
    } else {
        format!("0x{}", ::hex::encode(m))
    }
}

open_code! {
    /// How a set was written (set header byte 48).
    Mode(u8) {
        /// The host read the disk and wrote the tape.
        HOST = 1 => "host",
        /// The host copied a snapshot of the source (serverless backup).
        SERVERLESS = 2 => "serverless",
        /// A copy manager moved the data with EXTENDED COPY.
        XCOPY = 3 => "xcopy",
    }
}

/// What a tape block is, judged by its magic alone (catalog rebuild scans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    VolumeLabel,
    SetHeader,
    Data,
    Trailer,
    CrcIndex,
    /// The first block of a set's tape file on a continuation volume.
    Continuation,
    /// Too short for a magic, or a magic that is not ours.
    Foreign,
}

/// Classify a block by its first 8 bytes; checks nothing else.
pub fn classify(block: &[u8]) -> BlockKind {
    match block.get(..8) {
        Some(m) if m == VolumeLabel::MAGIC => BlockKind::VolumeLabel,
        Some(m) if m == SetHeader::MAGIC => BlockKind::SetHeader,
        Some(m) if m == RecordHeader::MAGIC => BlockKind::Data,
        Some(m) if m == SetTrailer::MAGIC => BlockKind::Trailer,
        Some(m) if m == CrcIndex::MAGIC => BlockKind::CrcIndex,
        Some(m) if m == Continuation::MAGIC => BlockKind::Continuation,
        _ => BlockKind::Foreign,
    }
}

/// Lower-case hex of a set digest (64 characters).
pub fn hex(digest: &[u8; 32]) -> String {
    ::hex::encode(digest)
}

#[cfg(test)]
mod tests;
