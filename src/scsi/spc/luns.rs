//! REPORT LUNS (SPC-4 6.33) and LUN addressing (SAM-5 4.7).

use std::fmt;

use serde::Serialize;

use super::check_cdb;
use crate::scsi::{be_uint, need, put_be, Cdb, CdbCodec, Opcode, ParseError, Wire};

/// REPORT LUNS (SPC-4 6.33.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLuns {
    /// SELECT REPORT: 0 = LUNs of logical units (not well-known ones),
    /// 1 = well-known only, 2 = all (SPC-4).
    pub select_report: u8,
    /// At least 16 (SPC-4 6.33.1).
    pub alloc_len: u32,
}

impl CdbCodec for ReportLuns {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::REPORT_LUNS, 12);
        let b = c.as_mut_bytes();
        b[2] = self.select_report;
        put_be(&mut b[6..10], self.alloc_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("REPORT LUNS", cdb, Opcode::REPORT_LUNS, 12)?;
        Ok(ReportLuns {
            select_report: cdb[2],
            alloc_len: be_uint(&cdb[6..10]) as u32,
        })
    }
}

/// An 8-byte LUN (SAM-5 4.7), held as its raw bytes read big-endian: byte 0
/// of the LUN is the top byte of the `u64`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Lun(pub u64);

impl Lun {
    /// The LUN for logical unit number `n`, single level (SAM-5 4.7.3):
    /// peripheral device addressing (00b, bus 0) below 256, flat space
    /// addressing (01b, SAM-5 4.7.7.3) up to 16383, and extended flat space
    /// addressing (0xD2, SAM-5 4.7.7.6.3) above, as Linux and LIO do.
    pub fn from_index(n: u16) -> Lun {
        let n = n as u64;
        let top = if n < 0x100 {
            n << 48
        } else if n < 0x4000 {
            (0x4000 | n) << 48
        } else {
            (0xd2 << 56) | (n << 32)
        };
        Lun(top)
    }

    /// The logical unit number, when this is a single-level LUN in one of
    /// the forms [`Lun::from_index`] writes (remaining levels zero).
    pub fn index(&self) -> Option<u16> {
        let b = self.to_bytes();
        match b[0] >> 6 {
            // Peripheral device addressing, bus identifier 0.
            0 if b[0] == 0 && b[2..].iter().all(|&x| x == 0) => Some(b[1] as u16),
            // Flat space addressing.
            1 if b[2..].iter().all(|&x| x == 0) => Some(((b[0] as u16 & 0x3f) << 8) | b[1] as u16),
            // Extended flat space addressing: 24-bit LUN, 4-byte form.
            3 if b[0] == 0xd2 && b[4..].iter().all(|&x| x == 0) => {
                u16::try_from(be_uint(&b[1..4])).ok()
            }
            _ => None,
        }
    }

    pub fn to_bytes(&self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(b: [u8; 8]) -> Lun {
        Lun(u64::from_be_bytes(b))
    }
}

impl From<u16> for Lun {
    fn from(n: u16) -> Lun {
        Lun::from_index(n)
    }
}

/// The index when there is one, else the 16 hex digits.
impl fmt::Display for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index() {
            Some(i) => write!(f, "{i}"),
            None => write!(f, "{:016x}", self.0),
        }
    }
}

impl fmt::Debug for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index() {
            Some(i) => write!(f, "Lun({i})"),
            None => write!(f, "Lun({:016x})", self.0),
        }
    }
}

/// REPORT LUNS parameter data (SPC-4 6.33.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LunList {
    /// The LUNs that fitted in the buffer.
    pub luns: Vec<Lun>,
    /// LUN LIST LENGTH as the device sent it (8 per LUN). It can exceed
    /// what fitted: re-issue with `8 + list_length` bytes.
    pub list_length: u32,
}

impl LunList {
    /// A complete list: `list_length` = 8 × the number of LUNs.
    pub fn new(luns: Vec<Lun>) -> Self {
        let list_length = (luns.len() * 8) as u32;
        LunList { luns, list_length }
    }

    /// Whether every LUN the device has was in the buffer.
    pub fn is_complete(&self) -> bool {
        self.luns.len() as u64 * 8 >= self.list_length as u64
    }
}

impl Wire for LunList {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("REPORT LUNS data", buf, 8)?;
        let list_length = be_uint(&buf[0..4]) as u32;
        let end = buf.len().min(8usize.saturating_add(list_length as usize));
        let luns = buf[8..end]
            .chunks_exact(8)
            .map(|c| Lun(be_uint(c)))
            .collect();
        Ok(LunList { luns, list_length })
    }

    fn buffer_len(&self) -> usize {
        8 + 8 * self.luns.len()
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        put_be(&mut b[0..4], self.list_length as u64);
        b[4..8].fill(0);
        for (c, l) in b[8..].chunks_exact_mut(8).zip(&self.luns) {
            c.copy_from_slice(&l.to_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn report_luns_cdb_golden() {
        let r = ReportLuns {
            select_report: 2,
            alloc_len: 0x1000,
        };
        let bytes = [0xa0, 0, 0x02, 0, 0, 0, 0x00, 0x00, 0x10, 0x00, 0, 0];
        assert_eq!(r.to_cdb().as_bytes(), &bytes);
        assert_eq!(ReportLuns::parse(&bytes), Ok(r));
        assert!(ReportLuns::parse(&bytes[..11]).is_err());
    }

    #[test]
    fn lun_addressing_golden() {
        assert_eq!(Lun::from_index(0).to_bytes(), [0; 8]);
        assert_eq!(Lun::from_index(5).to_bytes(), [0, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Lun::from_index(255).to_bytes(), [0, 0xff, 0, 0, 0, 0, 0, 0]);
        // tgt writes LUN 256 as 0x4100 (flat space).
        assert_eq!(
            Lun::from_index(256).to_bytes(),
            [0x41, 0x00, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Lun::from_index(0x3fff).to_bytes(),
            [0x7f, 0xff, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Lun::from_index(0x4000).to_bytes(),
            [0xd2, 0x00, 0x40, 0x00, 0, 0, 0, 0]
        );
        assert_eq!(
            Lun::from_index(0xffff).to_bytes(),
            [0xd2, 0x00, 0xff, 0xff, 0, 0, 0, 0]
        );
        for n in [0u16, 1, 255, 256, 0x3fff, 0x4000, 0xffff] {
            assert_eq!(Lun::from_index(n).index(), Some(n));
        }
        // Second level, other bus, other methods: no single index.
        assert_eq!(Lun::from_bytes([0, 1, 0, 2, 0, 0, 0, 0]).index(), None);
        assert_eq!(Lun::from_bytes([0x01, 1, 0, 0, 0, 0, 0, 0]).index(), None);
        assert_eq!(Lun::from_bytes([0x80, 1, 0, 0, 0, 0, 0, 0]).index(), None);
        assert_eq!(Lun::from_bytes([0xd2, 1, 0, 0, 0, 0, 0, 0]).index(), None);
        assert_eq!(Lun::from_index(7).to_string(), "7");
        assert_eq!(Lun(0xc101_0000_0000_0000).to_string(), "c101000000000000");
    }

    #[test]
    fn lun_list_golden() {
        // tgt: the controller LUN 0 and a disk at LUN 1.
        let bytes = [
            0, 0, 0, 16, 0, 0, 0, 0, // header
            0, 0, 0, 0, 0, 0, 0, 0, // LUN 0
            0, 1, 0, 0, 0, 0, 0, 0, // LUN 1
        ];
        let l = LunList::new(vec![Lun::from_index(0), Lun::from_index(1)]);
        assert_eq!(l.to_vec(), bytes);
        assert_eq!(LunList::parse(&bytes), Ok(l));
        assert!(LunList::parse(&bytes[..7]).is_err());
    }

    #[test]
    fn lun_list_cut_by_allocation() {
        // Three LUNs on the device, room for one and a half.
        let mut bytes = vec![0, 0, 0, 24, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0]);
        let l = LunList::parse(&bytes).unwrap();
        assert_eq!(l.luns, vec![Lun::from_index(1)]);
        assert_eq!(l.list_length, 24);
        assert!(!l.is_complete());
        // LUN LIST LENGTH is the bound, not the buffer.
        let mut padded = LunList::new(vec![Lun::from_index(3)]).to_vec();
        padded.extend_from_slice(&[0xff; 8]);
        let p = LunList::parse(&padded).unwrap();
        assert_eq!(p.luns, vec![Lun::from_index(3)]);
        assert!(p.is_complete());
    }

    proptest! {
        #[test]
        fn luns_never_panic(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = LunList::parse(&b);
            let _ = ReportLuns::parse(&b);
        }

        #[test]
        fn lun_index_round_trip(n: u16) {
            prop_assert_eq!(Lun::from_index(n).index(), Some(n));
        }

        #[test]
        fn lun_index_never_panics(raw: u64) {
            let _ = Lun(raw).index();
            let _ = Lun(raw).to_string();
        }

        #[test]
        fn lun_list_round_trip(raw in proptest::collection::vec(any::<u64>(), 0..20)) {
            let l = LunList::new(raw.into_iter().map(Lun).collect());
            prop_assert_eq!(LunList::parse(&l.to_vec()), Ok(l));
        }

        #[test]
        fn report_luns_round_trip(select_report: u8, alloc_len: u32) {
            let r = ReportLuns { select_report, alloc_len };
            prop_assert_eq!(ReportLuns::parse(r.to_cdb().as_bytes()), Ok(r));
        }
    }
}
