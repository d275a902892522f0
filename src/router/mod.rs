//! The data router: a copy manager logical unit that carries out EXTENDED
//! COPY(LID1) between backend LUs it reaches over iSCSI (or any
//! [`Transport`]), disk to tape included (SPC-4 6.4).
//!
//! [`CopyManager`] is a plain [`LogicalUnit`]: bytes in, status, sense and
//! bytes out, no network code. A frontend (our iSCSI target) feeds it; unit
//! tests feed it directly. It is also a small in-memory disk so initiators
//! and test suites that insist on a block device (libiscsi's iscsi-test-cu)
//! can talk to it, and its own identification designator resolves to
//! itself, so copies within that disk work too.
//!
//! What it answers:
//! - EXTENDED COPY(LID1) with segment descriptors 00h (block to stream),
//!   01h (stream to block), 02h (block to block), 04h (inline data to
//!   stream), 06h (stream to discard), 0Ah (block with offset to block with
//!   offset), 10h (write filemarks), 11h (space) and 12h (locate, when the
//!   tape has LOCATE). CSCD descriptors: E4h (identification) only, resolved
//!   through [`Backends`] by any LU designator the backend reported in VPD
//!   page 83h. Streams are variable-block only (FIXED=0).
//! - RECEIVE COPY RESULTS 00h (copy status), 01h (receive data), 03h
//!   (operating parameters) and 04h (failed segment details), with list IDs
//!   held per I_T nexus.
//! - INQUIRY (3PC set) with VPD pages 00h, 80h, 83h and 8Fh, TEST UNIT
//!   READY, REPORT LUNS, REPORT SUPPORTED OPERATION CODES, REQUEST SENSE,
//!   READ CAPACITY(10/16), READ/WRITE(10/16) on its own disk.
//!
//! Stream semantics (SPC-4 6.4.6.1, CAT): with CAT=1 the bytes that do not
//! fill a whole stream transfer stay as residual data for the next segment
//! to the same destination, which prepends them; with CAT=0 the last short
//! transfer is written as a shorter variable block. So
//! `04h(CAT=1, 48 bytes, stream length 48+P)` followed by
//! `00h(CAT=0, P bytes, stream length 48+P)` writes exactly one tape block
//! of 48+P bytes. Residual data left when the command ends is written as a
//! last short block rather than lost.
//!
//! Integrity extension (documented in the README too): when the parameter
//! list's LIST ID USAGE is 00b (hold), the router keeps, per (I_T nexus,
//! list ID), the CRC32C (Castagnoli, as the `crc32c` crate computes it) of
//! every stream block it wrote, in order. RECEIVE COPY RESULTS with
//! service action 01h (receive data) for that list ID returns AVAILABLE
//! DATA (4 × N, big-endian u32) followed by the N CRC32C values (big-endian
//! u32). A copy whose stream blocks would need more than the HELD DATA
//! LIMIT is refused before it starts.
//!
//! Errors: a backend failure ends the command with COPY ABORTED (sense key
//! 0Ah), the segment number in COMMAND-SPECIFIC INFORMATION, and the
//! backend's sense data appended to the fixed-format sense at byte 18, with
//! the SOURCE or DESTINATION SENSE DATA OFFSET (byte 8 or 9) pointing at it
//! (SPC-4 6.4.3); [`crate::scsi::xcopy::CopyAborted::from_sense_bytes`]
//! reads it back. Faults in the parameter list are ILLEGAL REQUEST with the
//! field pointer, using the additional sense codes SPC-4 names for them.

use crate::device::DeviceError;
use crate::transport::url::UrlError;
use crate::transport::TransportError;

#[cfg(doc)]
use crate::lu::LogicalUnit;
#[cfg(doc)]
use crate::transport::Transport;

mod acl;
mod backends;
mod exec;
mod held;
mod manager;
mod plan;
mod sense;

#[cfg(test)]
mod tests;

pub use acl::{escaped, AclError, CopyAcl, CopyRights, LuEntry, Role, RuleEntry};
pub use backends::{BackendInfo, Backends};
pub use held::HeldQuota;
pub use manager::{BackendsGuard, CopyManager};

/// The limits the copy manager advertises in RECEIVE COPY RESULTS 03h and
/// VPD page 8Fh, and enforces on EXTENDED COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RouterLimits {
    /// MAXIMUM CSCD DESCRIPTOR COUNT.
    pub max_cscds: u16,
    /// MAXIMUM SEGMENT DESCRIPTOR COUNT.
    pub max_segments: u16,
    /// MAXIMUM DESCRIPTOR LIST LENGTH (CSCD + segment lists, bytes).
    pub max_descriptor_list: u32,
    /// MAXIMUM SEGMENT LENGTH (bytes one segment may move).
    pub max_segment_bytes: u32,
    /// MAXIMUM INLINE DATA LENGTH.
    pub max_inline: u32,
    /// HELD DATA LIMIT: bytes of CRC32Cs kept per list ID (4 per block).
    pub held_data_limit: u32,
    /// MAXIMUM STREAM DEVICE TRANSFER SIZE: the largest stream WRITE/READ.
    pub max_stream_transfer: u32,
}

impl Default for RouterLimits {
    fn default() -> Self {
        RouterLimits {
            max_cscds: 8,
            max_segments: 2048,
            max_descriptor_list: 64 * 1024,
            max_segment_bytes: 32 << 20,
            max_inline: 1 << 20,
            held_data_limit: 1 << 20,
            max_stream_transfer: 4 << 20,
        }
    }
}

/// Per-command caps of EXTENDED COPY: a copy that passes one stops at the
/// next block boundary with COPY ABORTED (INSUFFICIENT RESOURCES for bytes,
/// COMMAND TIMEOUT DURING PROCESSING for time), the segment named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyCaps {
    /// Bytes one command may write.
    pub max_bytes: Option<u64>,
    /// Time one command may run.
    pub max_time: Option<std::time::Duration>,
}

/// How the copy manager LU presents itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyManagerConfig {
    /// Unit serial number (VPD 80h); its NAA designator (VPD 83h) is
    /// derived from it, so distinct serials give distinct designators.
    pub serial: String,
    pub limits: RouterLimits,
    /// Size of its own in-memory disk, in 512-byte blocks. Each I_T nexus
    /// gets a private one of this size (the "scratch disk").
    pub own_blocks: u64,
    /// Which initiator may name which backend LU in a copy.
    pub rights: CopyRights,
    pub caps: CopyCaps,
    /// Bounds of the results held for RECEIVE COPY RESULTS.
    pub held: HeldQuota,
}

impl Default for CopyManagerConfig {
    fn default() -> Self {
        CopyManagerConfig {
            serial: "ROUTER0001".into(),
            limits: RouterLimits::default(),
            // 64 MiB: libiscsi's ExtendedCopy.Large wants twice the
            // maximum segment length.
            own_blocks: 131_072,
            rights: CopyRights::Closed,
            caps: CopyCaps::default(),
            held: HeldQuota::default(),
        }
    }
}

/// Why backends could not be discovered or used.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("{0}")]
    Url(#[from] UrlError),
    #[error("{url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: TransportError,
    },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{unit}: {reason}")]
    Probe { unit: String, reason: String },
}
