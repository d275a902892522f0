//! Talking to a copy manager (SPC-4 6.4, EXTENDED COPY LID1): what the
//! third-party-copy backup ([`super::third_party`]) and the disk-to-disk
//! copy ([`super::disk_copy`]) share: its limits, sending a parameter
//! list, reading where a copy aborted, and what it can refuse.

use std::time::Duration;

use super::EngineError;
use crate::device::{DeviceError, Scsi};
use crate::scsi::sense::{Sense, SenseKey};
use crate::scsi::spc::{Designator, DeviceIdentification};
use crate::scsi::xcopy::{
    CopyAborted, CopyEnd, OperatingParameters, ReceiveCopyResults, SegmentType, XcopyParams,
};
use crate::scsi::{BlockSize, CdbCodec, ParseError, Wire};
use crate::transport::{Request, Transport};

/// SPC-4 6.4: a copy may run long; the driver gives each command this long.
pub const XCOPY_TIMEOUT: Duration = Duration::from_secs(600);

/// What a copy manager cannot do for a plan, or answered that the plan did
/// not ask for. Nothing of the refused list was carried out.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{device}: no operating parameters (RECEIVE COPY RESULTS 03h: {source}); a third-party-copy backup needs a copy manager that reports block→stream support")]
    NoOperatingParameters {
        device: String,
        #[source]
        source: DeviceError,
    },
    #[error("{device}: the copy manager cannot write a set to tape (missing segment types: {}{})", missing_text(.missing), if *.identification_cscd { "" } else { "; no E4h identification CSCDs" })]
    CannotWriteTape {
        device: String,
        missing: Vec<SegmentType>,
        identification_cscd: bool,
    },
    #[error("the copy manager's limits leave no room for one record per command (segments {segments}, descriptor list {descriptor_list} bytes, inline data {inline_data} bytes, held data {held_data} bytes)")]
    NoRoomForRecord {
        segments: u16,
        descriptor_list: u32,
        inline_data: u32,
        held_data: u32,
    },
    #[error("a record of {payload} bytes exceeds the copy manager's maximum segment length ({max} bytes); use a smaller --block-size")]
    RecordOverSegment { payload: u64, max: u32 },
    #[error("{device}: no logical-unit designator in VPD 0x83 that a copy manager could resolve")]
    NoDesignator { device: String },
    /// A CSCD could not be built for one end of the copy.
    #[error("{what}: {source}")]
    Cscd {
        what: &'static str,
        #[source]
        source: ParseError,
    },
    /// A parameter list this host planned fails the codec's checks.
    #[error("{what}: {source}")]
    ParameterList {
        what: &'static str,
        #[source]
        source: ParseError,
    },
    #[error("CRC index record too large")]
    CrcIndexTooLarge,
    #[error("{device}: the copy manager returned {got} bytes of block CRCs for list {list_id}, expected {expected} (one per tape block written)")]
    HeldCrcs {
        device: String,
        list_id: u8,
        got: u32,
        expected: usize,
    },
    #[error("source blocks are {src} bytes, destination blocks {dst}: a block-to-block copy needs them equal")]
    BlockSizes { src: BlockSize, dst: BlockSize },
    #[error("the copy manager's maximum segment length ({max} bytes) is less than one block")]
    SegmentUnderBlock { max: u32 },
    #[error("verify: destination differs from source in blocks {dst_lba}..{dst_end} (source LBA {src_lba})")]
    Differs {
        dst_lba: u64,
        dst_end: u64,
        src_lba: u64,
    },
}

fn missing_text(missing: &[SegmentType]) -> String {
    if missing.is_empty() {
        return "none".to_string();
    }
    let names: Vec<String> = missing.iter().map(|t| t.to_string()).collect();
    names.join(", ")
}

/// RECEIVE COPY RESULTS, operating parameters (SPC-4 6.18.4).
pub fn operating_parameters<T: Transport>(
    cm: &mut Scsi<T>,
) -> Result<OperatingParameters, DeviceError> {
    let rcr = ReceiveCopyResults::operating_parameters();
    let buf = cm.data_in(rcr.to_cdb(), rcr.alloc_len as usize)?;
    OperatingParameters::parse(&buf).map_err(|e| cm.perr("RECEIVE COPY RESULTS", e))
}

/// The bytes of a parameter list this host planned, checked by the codec.
pub fn encode(params: &XcopyParams) -> Result<Vec<u8>, CopyError> {
    params.encode().map_err(|source| CopyError::ParameterList {
        what: "parameter list",
        source,
    })
}

/// Send one encoded parameter list with EXTENDED COPY (SPC-4 6.4).
pub fn extended_copy<C: Transport>(
    cm: &mut Scsi<C>,
    params: &XcopyParams,
    list: Vec<u8>,
) -> Result<(), DeviceError> {
    let req = Request::data_out(params.cdb().to_cdb(), list).with_timeout(XCOPY_TIMEOUT);
    cm.run(req).map(|_| ())
}

/// "segment N" of a COPY ABORTED, from the sense (SPC-4 6.4.3.3), or
/// `None` for any other failure.
pub fn aborted_segment(e: &DeviceError) -> Option<String> {
    let DeviceError::Check { raw_sense, .. } = e else {
        return None;
    };
    let a = CopyAborted::from_sense_bytes(raw_sense)?;
    Some(a.segment.map_or_else(
        || "an unreported segment (maybe 0)".to_string(),
        |n| format!("segment {n}"),
    ))
}

/// Whether `e` is a COPY ABORTED whose embedded sense, from the copy
/// destination, reports end of medium or early warning (EOM bit, or
/// VOLUME OVERFLOW; SPC-4 6.4.3.3, SSC-4 4.2.5).
pub fn destination_full(e: &DeviceError) -> bool {
    let DeviceError::Check { raw_sense, .. } = e else {
        return false;
    };
    let Some(a) = CopyAborted::from_sense_bytes(raw_sense) else {
        return false;
    };
    if a.embedded_from != Some(CopyEnd::Destination) {
        return false;
    }
    Sense::parse(&a.embedded).is_ok_and(|s| s.eom || s.key == SenseKey::VOLUME_OVERFLOW)
}

/// A failed EXTENDED COPY as the engines report it: [`EngineError::Aborted`]
/// naming the segment and `what` (the command) on COPY ABORTED, else the
/// device error itself.
pub fn copy_failed(e: DeviceError, what: impl std::fmt::Display) -> EngineError {
    match aborted_segment(&e) {
        Some(at) => EngineError::Aborted {
            at: format!("{at} of {what}"),
            source: e,
        },
        None => e.into(),
    }
}

/// The designator a copy manager resolves `name` by: its best LU one
/// (VPD 0x83).
pub fn lu_designator(di: &DeviceIdentification, name: &str) -> Result<Designator, CopyError> {
    di.best_lu_designator()
        .cloned()
        .ok_or_else(|| CopyError::NoDesignator {
            device: name.to_string(),
        })
}
