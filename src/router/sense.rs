//! The sense data the copy manager sends: ILLEGAL REQUEST with a field
//! pointer for a bad parameter list or CDB, COPY ABORTED for a copy that
//! failed once it started.

use crate::scsi::sense::{Asc, Sense, SenseKey, SenseKeySpecific, MAX_SENSE_LEN};
use crate::scsi::xcopy::CopyEnd;

/// Length of fixed-format sense without anything appended (SPC-4 4.5.3).
const FIXED_LEN: usize = 18;

/// A refusal of the command before any data moved: ILLEGAL REQUEST with
/// the byte (and bit) at fault (SPC-4 4.5.2.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub asc: Asc,
    /// C/D: the field is in the CDB (else in the parameter list).
    pub in_cdb: bool,
    pub field: usize,
    pub bit: Option<u8>,
}

impl Refusal {
    /// A fault at byte `field` of the parameter list.
    pub fn param(asc: Asc, field: usize) -> Refusal {
        Refusal {
            asc,
            in_cdb: false,
            field,
            bit: None,
        }
    }

    /// A fault with no field to point at (PARAMETER LIST LENGTH ERROR).
    pub fn plain(asc: Asc) -> Refusal {
        Refusal {
            asc,
            in_cdb: false,
            field: usize::MAX,
            bit: None,
        }
    }

    pub fn at_bit(mut self, bit: u8) -> Refusal {
        self.bit = Some(bit);
        self
    }

    pub fn sense(&self) -> Sense {
        let s = Sense::new(SenseKey::ILLEGAL_REQUEST, self.asc);
        if self.field == usize::MAX {
            return s;
        }
        s.with_sks(SenseKeySpecific::FieldPointer {
            cd: self.in_cdb,
            bpv: self.bit.is_some(),
            bit: self.bit.unwrap_or(0),
            field: self.field.min(0xffff) as u16,
        })
    }
}

/// A copy that stopped in segment `segment` (SPC-4 6.4.3.x): COPY ABORTED
/// with the segment number, the segment pointer when the list was at
/// fault, and the sense a source or destination returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Abort {
    pub segment: usize,
    pub asc: Asc,
    /// Byte of the parameter list at fault (SD=0: from the list's start).
    pub pointer: Option<usize>,
    /// The failing device's sense data and which end it came from.
    pub embedded: Option<(CopyEnd, Vec<u8>)>,
    /// For logs: what went wrong, in words.
    pub reason: String,
}

impl Abort {
    pub fn new(segment: usize, asc: Asc, reason: impl Into<String>) -> Abort {
        Abort {
            segment,
            asc,
            pointer: None,
            embedded: None,
            reason: reason.into(),
        }
    }

    pub fn with_pointer(mut self, field: usize) -> Abort {
        self.pointer = Some(field);
        self
    }

    pub fn with_embedded(mut self, from: CopyEnd, sense: Vec<u8>) -> Abort {
        if !sense.is_empty() {
            self.embedded = Some((from, sense));
        }
        self
    }

    /// Fixed-format sense: bytes 8/9 the SOURCE/DESTINATION SENSE DATA
    /// OFFSET, bytes 10..12 the SEGMENT NUMBER (SPC-4 6.4.3, table 102),
    /// the forwarded sense from byte 18, cut to the 252 bytes sense data
    /// may have.
    pub fn sense_bytes(&self) -> Vec<u8> {
        let mut s = Sense::new(SenseKey::COPY_ABORTED, self.asc)
            .with_command_specific((self.segment as u64).min(0xffff));
        if let Some(f) = self.pointer {
            s = s.with_sks(SenseKeySpecific::SegmentPointer {
                sd: false,
                bpv: false,
                bit: 0,
                field: f.min(0xffff) as u16,
            });
        }
        let mut b = s.to_fixed();
        if let Some((from, inner)) = &self.embedded {
            let n = inner.len().min(MAX_SENSE_LEN - FIXED_LEN);
            let slot = match from {
                CopyEnd::Source => 8,
                _ => 9,
            };
            b[slot] = FIXED_LEN as u8;
            b.extend_from_slice(&inner[..n]);
            b[7] = (b.len() - 8) as u8;
        }
        b
    }
}
