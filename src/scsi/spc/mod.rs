//! SPC: the commands every SCSI device answers (SPC-4, T10/BSR INCITS 513;
//! SPC-5 where it adds fields), plus the LUN addressing of SAM-5.
//!
//! Submodules by topic, everything re-exported here:
//! - [`inquiry`]: INQUIRY and the standard INQUIRY data;
//! - [`vpd`]: VPD pages 0x00, 0x80, 0x83 (designators) and 0xB0;
//! - [`luns`]: REPORT LUNS and LUN addressing;
//! - [`mode`]: MODE SENSE / MODE SELECT and the mode parameter list;
//! - [`pr`]: PERSISTENT RESERVE IN / OUT, RESERVE(6) / RELEASE(6);
//! - [`rsoc`]: REPORT SUPPORTED OPERATION CODES.
//!
//! Plus the two tiny commands, TEST UNIT READY and REQUEST SENSE, below.
//!
//! Section numbers follow SPC-4 revision 37 (INQUIRY is 6.6 there); other
//! revisions number the command clauses differently.

use serde::Serializer;

use super::{Cdb, CdbCodec, Opcode, ParseError};

pub mod inquiry;
pub mod luns;
pub mod mode;
pub mod pr;
pub mod rsoc;
pub mod vpd;

pub use inquiry::*;
pub use luns::*;
pub use mode::*;
pub use pr::*;
pub use rsoc::*;
pub use vpd::*;

pub(crate) use crate::scsi::check_cdb;

/// An ASCII field from device data: trailing spaces and NULs trimmed,
/// bytes that are not printable ASCII shown as '.' (SPC-4 4.3.1: ASCII data
/// fields hold 0x20..=0x7E only).
pub(crate) fn ascii_field(b: &[u8]) -> String {
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != 0)
        .map_or(0, |i| i + 1);
    b[..end]
        .iter()
        .map(|&c| {
            if (0x20..=0x7e).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

/// Write `s` left-aligned into an ASCII field padded with spaces (SPC-4
/// 4.3.1); characters that are not printable ASCII become '?', and a string
/// longer than the field is cut.
pub(crate) fn put_ascii(b: &mut [u8], s: &str) {
    b.fill(b' ');
    for (dst, c) in b.iter_mut().zip(s.chars()) {
        *dst = if (' '..='~').contains(&c) {
            c as u8
        } else {
            b'?'
        };
    }
}

/// serde helper: bytes as a lower-case hex string.
pub(crate) fn ser_hex<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

/// TEST UNIT READY (SPC-4 6.47): six bytes, all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TestUnitReady;

impl CdbCodec for TestUnitReady {
    fn to_cdb(&self) -> Cdb {
        Cdb::zeroed(Opcode::TEST_UNIT_READY, 6)
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("TEST UNIT READY", cdb, Opcode::TEST_UNIT_READY, 6)?;
        Ok(TestUnitReady)
    }
}

/// REQUEST SENSE (SPC-4 6.39).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSense {
    /// DESC: ask for descriptor-format sense.
    pub desc: bool,
    pub alloc_len: u8,
}

impl RequestSense {
    /// Fixed-format sense, 252 bytes of room (SPC-4 4.5.1 maximum).
    pub fn new() -> Self {
        RequestSense {
            desc: false,
            alloc_len: 252,
        }
    }
}

impl Default for RequestSense {
    fn default() -> Self {
        Self::new()
    }
}

impl CdbCodec for RequestSense {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::REQUEST_SENSE, 6);
        let b = c.as_mut_bytes();
        b[1] = self.desc as u8; // SPC-4 6.39: DESC is byte 1 bit 0
        b[4] = self.alloc_len;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("REQUEST SENSE", cdb, Opcode::REQUEST_SENSE, 6)?;
        Ok(RequestSense {
            desc: cdb[1] & 1 != 0,
            alloc_len: cdb[4],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn test_unit_ready_golden() {
        assert_eq!(TestUnitReady.to_cdb().as_bytes(), &[0u8; 6]);
        assert_eq!(TestUnitReady::parse(&[0; 6]), Ok(TestUnitReady));
        assert!(TestUnitReady::parse(&[0; 5]).is_err());
        assert!(TestUnitReady::parse(&[0x12, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn request_sense_golden() {
        let r = RequestSense {
            desc: true,
            alloc_len: 0xfc,
        };
        let bytes = [0x03, 0x01, 0, 0, 0xfc, 0];
        assert_eq!(r.to_cdb().as_bytes(), &bytes);
        assert_eq!(RequestSense::parse(&bytes), Ok(r));
        assert_eq!(
            RequestSense::new().to_cdb().as_bytes(),
            &[0x03, 0, 0, 0, 252, 0]
        );
        assert!(RequestSense::parse(&bytes[..5]).is_err());
    }

    #[test]
    fn ascii_helpers() {
        assert_eq!(ascii_field(b"IET     "), "IET");
        assert_eq!(ascii_field(b"ab\x01c\0\0"), "ab.c");
        assert_eq!(ascii_field(b"    "), "");
        let mut b = [0u8; 6];
        put_ascii(&mut b, "aé");
        assert_eq!(&b, b"a?    ");
        put_ascii(&mut b, "toolongvalue");
        assert_eq!(&b, b"toolon");
    }

    proptest! {
        #[test]
        fn small_cdbs_never_panic(b in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = TestUnitReady::parse(&b);
            let _ = RequestSense::parse(&b);
        }

        #[test]
        fn request_sense_round_trip(desc: bool, alloc_len: u8) {
            let r = RequestSense { desc, alloc_len };
            prop_assert_eq!(RequestSense::parse(r.to_cdb().as_bytes()), Ok(r));
        }
    }
}
