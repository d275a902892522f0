//! INQUIRY (SPC-4 6.6) and the standard INQUIRY data (SPC-4 6.6.2).

use serde::Serialize;

use super::{ascii_field, check_cdb, put_ascii};
use crate::scsi::{be_uint, need, put_be, Cdb, CdbCodec, DeviceType, Opcode, ParseError, Wire};

/// INQUIRY (SPC-4 6.6.1): standard data when `evpd` is false, else the VPD
/// page `page_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inquiry {
    pub evpd: bool,
    pub page_code: u8,
    pub alloc_len: u16,
}

impl Inquiry {
    /// Standard INQUIRY data (EVPD 0, PAGE CODE 0).
    pub fn standard(alloc_len: u16) -> Self {
        Inquiry {
            evpd: false,
            page_code: 0,
            alloc_len,
        }
    }

    /// A VPD page; takes a [`super::VpdPage`] or a plain `u8`.
    pub fn vpd(page: impl Into<u8>, alloc_len: u16) -> Self {
        Inquiry {
            evpd: true,
            page_code: page.into(),
            alloc_len,
        }
    }
}

impl CdbCodec for Inquiry {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::INQUIRY, 6);
        let b = c.as_mut_bytes();
        b[1] = self.evpd as u8; // EVPD, byte 1 bit 0 (CMDDT is obsolete)
        b[2] = self.page_code;
        put_be(&mut b[3..5], self.alloc_len as u64); // 16 bits since SPC-3
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("INQUIRY", cdb, Opcode::INQUIRY, 6)?;
        Ok(Inquiry {
            evpd: cdb[1] & 1 != 0,
            page_code: cdb[2],
            alloc_len: be_uint(&cdb[3..5]) as u16,
        })
    }
}

/// Standard INQUIRY data (SPC-4 6.6.2). Strings are ASCII with trailing
/// spaces trimmed; `emit` pads them again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandardInquiry {
    pub peripheral_qualifier: u8,
    pub device_type: DeviceType,
    /// RMB: removable medium.
    pub rmb: bool,
    /// VERSION: 5 = SPC-3, 6 = SPC-4, 7 = SPC-5.
    pub version: u8,
    /// RESPONSE DATA FORMAT: 2 for any current device.
    pub response_data_format: u8,
    pub normaca: bool,
    pub hisup: bool,
    pub sccs: bool,
    pub acc: bool,
    /// TPGS: asymmetric logical unit access support (ALUA), 2 bits.
    pub tpgs: u8,
    /// 3PC: third-party copy (EXTENDED COPY) supported.
    pub three_pc: bool,
    pub protect: bool,
    pub encserv: bool,
    pub multip: bool,
    pub cmdque: bool,
    pub vendor: String,
    pub product: String,
    pub revision: String,
    /// VERSION DESCRIPTORs 1..8 that are not zero (SPC-4 6.6.2).
    pub version_descriptors: Vec<u16>,
}

impl StandardInquiry {
    /// The mandatory part: the fields through PRODUCT REVISION LEVEL.
    pub const MIN_LEN: usize = 36;
    const VD_OFFSET: usize = 58;
    const VD_MAX: usize = 8;

    /// The length the device has to send (ADDITIONAL LENGTH + 5), from the
    /// first 5 bytes: re-issue with this allocation to get everything.
    pub fn available_len(buf: &[u8]) -> Option<usize> {
        buf.get(4).map(|&n| n as usize + 5)
    }
}

impl Wire for StandardInquiry {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "standard INQUIRY data";
        need(W, buf, Self::MIN_LEN)?;
        // Version descriptors only as far as both the buffer and the
        // ADDITIONAL LENGTH reach (SPC-4 6.6.2).
        let end = buf.len().min(buf[4] as usize + 5);
        let mut version_descriptors = Vec::new();
        let mut off = Self::VD_OFFSET;
        while off + 2 <= end && off < Self::VD_OFFSET + 2 * Self::VD_MAX {
            let v = be_uint(&buf[off..off + 2]) as u16;
            if v != 0 {
                version_descriptors.push(v);
            }
            off += 2;
        }
        Ok(StandardInquiry {
            peripheral_qualifier: buf[0] >> 5,
            device_type: DeviceType(buf[0] & 0x1f),
            rmb: buf[1] & 0x80 != 0,
            version: buf[2],
            normaca: buf[3] & 0x20 != 0,
            hisup: buf[3] & 0x10 != 0,
            response_data_format: buf[3] & 0x0f,
            sccs: buf[5] & 0x80 != 0,
            acc: buf[5] & 0x40 != 0,
            tpgs: (buf[5] >> 4) & 3,
            three_pc: buf[5] & 0x08 != 0,
            protect: buf[5] & 0x01 != 0,
            encserv: buf[6] & 0x40 != 0,
            multip: buf[6] & 0x10 != 0,
            cmdque: buf[7] & 0x02 != 0,
            vendor: ascii_field(&buf[8..16]),
            product: ascii_field(&buf[16..32]),
            revision: ascii_field(&buf[32..36]),
            version_descriptors,
        })
    }

    /// 36 bytes without version descriptors, else through the last one
    /// (at most 8 are emitted).
    fn buffer_len(&self) -> usize {
        match self.version_descriptors.len().min(Self::VD_MAX) {
            0 => Self::MIN_LEN,
            n => Self::VD_OFFSET + 2 * n,
        }
    }

    fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        b.fill(0);
        b[0] = (self.peripheral_qualifier << 5) | (self.device_type.0 & 0x1f);
        b[1] = (self.rmb as u8) << 7;
        b[2] = self.version;
        b[3] = (self.normaca as u8) << 5
            | (self.hisup as u8) << 4
            | (self.response_data_format & 0x0f);
        b[4] = (len - 5) as u8;
        b[5] = (self.sccs as u8) << 7
            | (self.acc as u8) << 6
            | (self.tpgs & 3) << 4
            | (self.three_pc as u8) << 3
            | self.protect as u8;
        b[6] = (self.encserv as u8) << 6 | (self.multip as u8) << 4;
        b[7] = (self.cmdque as u8) << 1;
        put_ascii(&mut b[8..16], &self.vendor);
        put_ascii(&mut b[16..32], &self.product);
        put_ascii(&mut b[32..36], &self.revision);
        for (i, v) in self
            .version_descriptors
            .iter()
            .take(Self::VD_MAX)
            .enumerate()
        {
            let o = Self::VD_OFFSET + 2 * i;
            put_be(&mut b[o..o + 2], *v as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inquiry_cdb_golden() {
        let std = Inquiry::standard(96);
        assert_eq!(std.to_cdb().as_bytes(), &[0x12, 0, 0, 0, 96, 0]);
        assert_eq!(Inquiry::parse(&[0x12, 0, 0, 0, 96, 0]), Ok(std));

        let vpd = Inquiry::vpd(super::super::VpdPage::DEVICE_IDENTIFICATION, 0x1000);
        let bytes = [0x12, 0x01, 0x83, 0x10, 0x00, 0];
        assert_eq!(vpd.to_cdb().as_bytes(), &bytes);
        assert_eq!(Inquiry::parse(&bytes), Ok(vpd));
        assert_eq!(Inquiry::vpd(0xb0u8, 64).page_code, 0xb0);
        assert!(Inquiry::parse(&bytes[..5]).is_err());
        assert!(Inquiry::parse(&[0x13, 0, 0, 0, 0, 0]).is_err());
    }

    /// What tgt 1.0.85 answers for a tape LUN (seen on the rig): type 01h,
    /// RMB, version 5, IET / VIRTUAL-TAPE / 0001, descriptors SSC, iSCSI,
    /// SPC-3.
    fn tgt_tape_bytes() -> Vec<u8> {
        let mut v = vec![
            0x01, 0x80, 0x05, 0x12, 61, 0x00, 0x00, 0x02, // header
        ];
        v.extend_from_slice(b"IET     VIRTUAL-TAPE    0001");
        v.resize(58, 0);
        v.extend_from_slice(&[0x02, 0x00, 0x09, 0x60, 0x03, 0x00, 0x00, 0x00]);
        assert_eq!(v.len(), 66);
        v
    }

    fn tgt_tape() -> StandardInquiry {
        StandardInquiry {
            peripheral_qualifier: 0,
            device_type: DeviceType::TAPE,
            rmb: true,
            version: 5,
            response_data_format: 2,
            normaca: false,
            hisup: true,
            sccs: false,
            acc: false,
            tpgs: 0,
            three_pc: false,
            protect: false,
            encserv: false,
            multip: false,
            cmdque: true,
            vendor: "IET".into(),
            product: "VIRTUAL-TAPE".into(),
            revision: "0001".into(),
            version_descriptors: vec![0x0200, 0x0960, 0x0300],
        }
    }

    #[test]
    fn standard_inquiry_parse_golden() {
        let bytes = tgt_tape_bytes();
        assert_eq!(StandardInquiry::parse(&bytes), Ok(tgt_tape()));
        assert_eq!(StandardInquiry::available_len(&bytes), Some(66));
        // Truncated by the allocation length: version descriptors missing.
        let short = StandardInquiry::parse(&bytes[..36]).unwrap();
        assert!(short.version_descriptors.is_empty());
        assert_eq!(short.product, "VIRTUAL-TAPE");
        assert!(StandardInquiry::parse(&bytes[..35]).is_err());
    }

    #[test]
    fn standard_inquiry_emit_golden() {
        let mut want = tgt_tape_bytes();
        want.truncate(64); // three descriptors: 58 + 6
        want[4] = 59;
        let got = tgt_tape().to_vec();
        assert_eq!(got, want);
    }

    #[test]
    fn standard_inquiry_flags() {
        let mut b = vec![0u8; 36];
        b[0] = 0x7f; // qualifier 3, type 1f
        b[5] = 0xff;
        b[6] = 0xff;
        b[7] = 0xff;
        let s = StandardInquiry::parse(&b).unwrap();
        assert_eq!(s.peripheral_qualifier, 3);
        assert_eq!(s.device_type, DeviceType::UNKNOWN);
        assert!(s.sccs && s.acc && s.three_pc && s.protect);
        assert_eq!(s.tpgs, 3);
        assert!(s.encserv && s.multip && s.cmdque);
    }

    fn arb_inquiry() -> impl Strategy<Value = StandardInquiry> {
        (
            (0u8..8, 0u8..32, any::<bool>(), any::<u8>(), 0u8..16),
            proptest::collection::vec(any::<bool>(), 11),
            ("[ -~]{0,8}", "[ -~]{0,16}", "[ -~]{0,4}"),
            proptest::collection::vec(1u16.., 0..=8),
        )
            .prop_map(
                |((pq, dt, rmb, version, rdf), f, (v, p, r), vd)| StandardInquiry {
                    peripheral_qualifier: pq,
                    device_type: DeviceType(dt),
                    rmb,
                    version,
                    response_data_format: rdf,
                    normaca: f[0],
                    hisup: f[1],
                    sccs: f[2],
                    acc: f[3],
                    tpgs: (f[4] as u8) << 1 | f[5] as u8,
                    three_pc: f[6],
                    protect: f[7],
                    encserv: f[8],
                    multip: f[9],
                    cmdque: f[10],
                    vendor: v.trim_end().to_string(),
                    product: p.trim_end().to_string(),
                    revision: r.trim_end().to_string(),
                    version_descriptors: vd,
                },
            )
    }

    proptest! {
        #[test]
        fn inquiry_parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Inquiry::parse(&b);
            let _ = StandardInquiry::parse(&b);
        }

        #[test]
        fn inquiry_cdb_round_trip(evpd: bool, page_code: u8, alloc_len: u16) {
            let i = Inquiry { evpd, page_code, alloc_len };
            prop_assert_eq!(Inquiry::parse(i.to_cdb().as_bytes()), Ok(i));
        }

        #[test]
        fn standard_inquiry_round_trip(s in arb_inquiry()) {
            prop_assert_eq!(StandardInquiry::parse(&s.to_vec()), Ok(s));
        }
    }
}
