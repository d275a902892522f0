//! EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18): the
//! CDBs, the parameter list (header, CSCD and segment descriptors, inline
//! data), the RECEIVE COPY RESULTS data for service actions 00h, 01h, 03h
//! and 04h, and COPY ABORTED sense helpers.
//!
//! Issuer and copy manager share these types: every structure parses and
//! emits. Encoders never ask a device anything; the caller fetches VPD 0x83
//! and READ CAPACITY first and passes plain values in.

mod aborted;
mod cscd;
mod params;
mod results;
mod segment;
mod vpd8f;

pub use aborted::*;
pub use cscd::*;
pub use params::*;
pub use results::*;
pub use segment::*;
pub use vpd8f::*;

use std::fmt;

use crate::scsi::{be_uint, check_cdb, open_code, put_be, Cdb, CdbCodec, Opcode, ParseError};

/// EXTENDED COPY service action for the LID1 form (SPC-4 6.4.1, table 97).
pub const XCOPY_LID1_SERVICE_ACTION: u8 = 0x00;

/// EXTENDED COPY(LID1) (SPC-4 6.4.1): a 16-byte CDB whose only field is the
/// PARAMETER LIST LENGTH; the list ID lives in the parameter list.
/// A length of 0 means "do nothing, GOOD" on every copy manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedCopy {
    /// PARAMETER LIST LENGTH, bytes 10..14: 16 + CSCD list + segment list
    /// + inline data (see [`XcopyParams::buffer_len`]).
    pub param_len: u32,
}

impl CdbCodec for ExtendedCopy {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::EXTENDED_COPY, 16);
        let b = c.as_mut_bytes();
        b[1] = XCOPY_LID1_SERVICE_ACTION;
        put_be(&mut b[10..14], self.param_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "EXTENDED COPY(LID1)";
        check_cdb(W, cdb, Opcode::EXTENDED_COPY, 16)?;
        if cdb[1] & 0x1f != XCOPY_LID1_SERVICE_ACTION {
            // SERVICE ACTION, byte 1 bits 4..0.
            return Err(ParseError::invalid_at(
                W,
                format!("service action {:#04x} is not LID1 (00h)", cdb[1] & 0x1f),
                1,
                Some(4),
            ));
        }
        Ok(ExtendedCopy {
            param_len: be_uint(&cdb[10..14]) as u32,
        })
    }
}

open_code! {
    /// RECEIVE COPY RESULTS service action, CDB byte 1 bits 4..0
    /// (SPC-4 6.18.1, table 362). 00h-04h are the LID1 forms.
    RcrAction(u8) {
        COPY_STATUS = 0x00 => "COPY STATUS",
        RECEIVE_DATA = 0x01 => "RECEIVE DATA",
        OPERATING_PARAMETERS = 0x03 => "OPERATING PARAMETERS",
        FAILED_SEGMENT_DETAILS = 0x04 => "FAILED SEGMENT DETAILS",
        /// LID4 forms (SPC-4), named so a log can say what arrived.
        REPORT_ALL_ROD_TOKENS = 0x08 => "REPORT ALL ROD TOKENS",
        RECEIVE_ROD_TOKEN_INFORMATION = 0x07 => "RECEIVE ROD TOKEN INFORMATION",
        COPY_STATUS_LID4 = 0x05 => "COPY STATUS(LID4)",
    }
}

/// RECEIVE COPY RESULTS (SPC-4 6.18.1), the LID1 forms: byte 2 holds the
/// one-byte LIST IDENTIFIER, bytes 10..14 the ALLOCATION LENGTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveCopyResults {
    pub action: RcrAction,
    /// LIST IDENTIFIER of the EXTENDED COPY asked about. LIO answers only
    /// list ID 0 (and only OPERATING PARAMETERS).
    pub list_id: u8,
    /// LIO refuses allocation lengths below 54; 1024 is
    /// what libiscsi uses.
    pub alloc_len: u32,
}

impl ReceiveCopyResults {
    /// OPERATING PARAMETERS with a comfortable allocation length.
    pub fn operating_parameters() -> Self {
        ReceiveCopyResults {
            action: RcrAction::OPERATING_PARAMETERS,
            list_id: 0,
            alloc_len: 1024,
        }
    }
}

impl CdbCodec for ReceiveCopyResults {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::RECEIVE_COPY_RESULTS, 16);
        let b = c.as_mut_bytes();
        b[1] = self.action.0 & 0x1f;
        b[2] = self.list_id;
        put_be(&mut b[10..14], self.alloc_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb(
            "RECEIVE COPY RESULTS",
            cdb,
            Opcode::RECEIVE_COPY_RESULTS,
            16,
        )?;
        Ok(ReceiveCopyResults {
            action: RcrAction(cdb[1] & 0x1f),
            list_id: cdb[2],
            alloc_len: be_uint(&cdb[10..14]) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const XCOPY_CDB: [u8; 16] = [
        0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x6c, 0, 0,
    ];

    #[test]
    fn extended_copy_golden() {
        let c = ExtendedCopy { param_len: 108 };
        assert_eq!(c.to_cdb().as_bytes(), XCOPY_CDB);
        assert_eq!(ExtendedCopy::parse(&XCOPY_CDB).unwrap(), c);
        assert!(matches!(
            ExtendedCopy::parse(&XCOPY_CDB[..15]),
            Err(ParseError::Truncated { need: 16, .. })
        ));
        // LID4 (SA 01h) and POPULATE TOKEN (10h) are not this command.
        let mut lid4 = XCOPY_CDB;
        lid4[1] = 0x01;
        assert!(matches!(
            ExtendedCopy::parse(&lid4),
            Err(ParseError::Invalid { .. })
        ));
        let mut wrong = XCOPY_CDB;
        wrong[0] = 0x84;
        assert!(ExtendedCopy::parse(&wrong).is_err());
    }

    #[test]
    fn receive_copy_results_golden() {
        let raw = [
            0x84, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x04, 0x00, 0, 0,
        ];
        let c = ReceiveCopyResults::operating_parameters();
        assert_eq!(c.to_cdb().as_bytes(), raw);
        assert_eq!(ReceiveCopyResults::parse(&raw).unwrap(), c);
        assert!(ReceiveCopyResults::parse(&raw[..15]).is_err());

        let raw = [
            0x84, 0x04, 0x07, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00, 0, 0,
        ];
        let c = ReceiveCopyResults {
            action: RcrAction::FAILED_SEGMENT_DETAILS,
            list_id: 7,
            alloc_len: 65536,
        };
        assert_eq!(c.to_cdb().as_bytes(), raw);
        assert_eq!(ReceiveCopyResults::parse(&raw).unwrap(), c);
        assert_eq!(c.action.to_string(), "FAILED SEGMENT DETAILS");
        assert_eq!(RcrAction(0x02).name(), None);
        assert_eq!(RcrAction::COPY_STATUS.0, 0);
        assert_eq!(RcrAction::RECEIVE_DATA.0, 1);
    }

    proptest! {
        #[test]
        fn cdbs_round_trip(len in any::<u32>(), sa in 0u8..32, id in any::<u8>()) {
            let x = ExtendedCopy { param_len: len };
            prop_assert_eq!(ExtendedCopy::parse(x.to_cdb().as_bytes()).unwrap(), x);
            let r = ReceiveCopyResults { action: RcrAction(sa), list_id: id, alloc_len: len };
            prop_assert_eq!(ReceiveCopyResults::parse(r.to_cdb().as_bytes()).unwrap(), r);
        }

        #[test]
        fn cdb_parse_never_panics(buf in prop::collection::vec(any::<u8>(), 0..20)) {
            let _ = ExtendedCopy::parse(&buf);
            let _ = ReceiveCopyResults::parse(&buf);
        }
    }
}
