//! SSC-4 commands about the medium rather than motion: WRITE FILEMARKS(16)
//! and REPORT DENSITY SUPPORT with its density support descriptors. (PREVENT
//! ALLOW MEDIUM REMOVAL, the same CDB for a drive and a changer, is
//! `crate::scsi::smc::PreventAllowMediumRemoval`.)

use super::super::sbc::check_cdb;
use super::super::spc::{ascii_field, put_ascii};
use super::super::{be_uint, need, put_be, Cdb, CdbCodec, DeviceType, Opcode, ParseError, Wire};
use super::MASK_24;

/// WRITE FILEMARKS(16), opcode 80h (SSC-4 6.10): byte 1 bit 1 WSMK, bit 0
/// IMMED; byte 3 PARTITION; bytes 4..12 LOGICAL OBJECT IDENTIFIER (where
/// the filemarks go); bytes 12..15 FILEMARK COUNT, 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteFilemarks16 {
    pub immed: bool,
    pub wsmk: bool,
    pub partition: u8,
    pub logical_id: u64,
    /// 24 bits; `to_cdb` writes the low 24.
    pub count: u32,
}

impl CdbCodec for WriteFilemarks16 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::WRITE_FILEMARKS_16, 16);
        let b = c.as_mut_bytes();
        b[1] = (self.wsmk as u8) << 1 | self.immed as u8;
        b[3] = self.partition;
        put_be(&mut b[4..12], self.logical_id);
        put_be(&mut b[12..15], (self.count & MASK_24) as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("WRITE FILEMARKS(16)", cdb, Opcode::WRITE_FILEMARKS_16, 16)?;
        Ok(WriteFilemarks16 {
            immed: cdb[1] & 0x01 != 0,
            wsmk: cdb[1] & 0x02 != 0,
            partition: cdb[3],
            logical_id: be_uint(&cdb[4..12]),
            count: be_uint(&cdb[12..15]) as u32,
        })
    }
}

/// REPORT DENSITY SUPPORT, opcode 44h (SSC-4 6.13): byte 1 bit 1 MEDIUM
/// TYPE (report medium types rather than densities), bit 0 MEDIA (only
/// what the mounted medium supports); bytes 7..9 ALLOCATION LENGTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportDensitySupport {
    pub medium_type: bool,
    pub media: bool,
    pub alloc_len: u16,
}

impl CdbCodec for ReportDensitySupport {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::REPORT_DENSITY_SUPPORT, 10);
        let b = c.as_mut_bytes();
        b[1] = (self.medium_type as u8) << 1 | self.media as u8;
        put_be(&mut b[7..9], self.alloc_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb(
            "REPORT DENSITY SUPPORT",
            cdb,
            Opcode::REPORT_DENSITY_SUPPORT,
            10,
        )?;
        Ok(ReportDensitySupport {
            medium_type: cdb[1] & 0x02 != 0,
            media: cdb[1] & 0x01 != 0,
            alloc_len: be_uint(&cdb[7..9]) as u16,
        })
    }
}

/// A density support data block descriptor, 52 bytes (SSC-4 6.13.2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DensityDescriptor {
    pub primary_code: u8,
    pub secondary_code: u8,
    /// WRTOK: the drive can write this density.
    pub write_ok: bool,
    /// DUP: the same density is reported in another descriptor too.
    pub dup: bool,
    /// DEFLT: the default density.
    pub default: bool,
    /// BITS PER MM, 24 bits.
    pub bits_per_mm: u32,
    /// MEDIA WIDTH, tenths of a millimetre.
    pub media_width: u16,
    pub tracks: u16,
    /// CAPACITY, megabytes (10^6 bytes).
    pub capacity_mb: u32,
    /// ASSIGNING ORGANIZATION, 8 ASCII bytes.
    pub organization: String,
    /// DENSITY NAME, 8 ASCII bytes.
    pub name: String,
    /// DESCRIPTION, 20 ASCII bytes.
    pub description: String,
}

impl DensityDescriptor {
    pub const LEN: usize = 52;
}

impl Wire for DensityDescriptor {
    fn parse(b: &[u8]) -> Result<Self, ParseError> {
        need("density support descriptor", b, Self::LEN)?;
        Ok(DensityDescriptor {
            primary_code: b[0],
            secondary_code: b[1],
            write_ok: b[2] & 0x80 != 0,
            dup: b[2] & 0x40 != 0,
            default: b[2] & 0x20 != 0,
            bits_per_mm: be_uint(&b[5..8]) as u32,
            media_width: be_uint(&b[8..10]) as u16,
            tracks: be_uint(&b[10..12]) as u16,
            capacity_mb: be_uint(&b[12..16]) as u32,
            organization: ascii_field(&b[16..24]),
            name: ascii_field(&b[24..32]),
            description: ascii_field(&b[32..52]),
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, b: &mut [u8]) {
        b[..Self::LEN].fill(0);
        b[0] = self.primary_code;
        b[1] = self.secondary_code;
        // DLV (bit 0): the descriptor length field at bytes 3..5 is valid.
        b[2] = (self.write_ok as u8) << 7 | (self.dup as u8) << 6 | (self.default as u8) << 5 | 1;
        put_be(&mut b[3..5], (Self::LEN - 5) as u64);
        put_be(&mut b[5..8], (self.bits_per_mm & MASK_24) as u64);
        put_be(&mut b[8..10], self.media_width as u64);
        put_be(&mut b[10..12], self.tracks as u64);
        put_be(&mut b[12..16], self.capacity_mb as u64);
        put_ascii(&mut b[16..24], &self.organization);
        put_ascii(&mut b[24..32], &self.name);
        put_ascii(&mut b[32..52], &self.description);
    }
}

/// REPORT DENSITY SUPPORT data (SSC-4 6.13.2): a 4-byte header (AVAILABLE
/// DENSITY SUPPORT LENGTH, excluding its own 2 bytes) and descriptors.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DensitySupport {
    pub descriptors: Vec<DensityDescriptor>,
}

impl Wire for DensitySupport {
    /// Descriptors cut off by the buffer (or by the length field) are
    /// dropped, as with every allocation-length-bound answer.
    fn parse(b: &[u8]) -> Result<Self, ParseError> {
        need("REPORT DENSITY SUPPORT data", b, 4)?;
        let end = b.len().min(be_uint(&b[0..2]) as usize + 2);
        let descriptors = b[4..end.max(4)]
            .chunks_exact(DensityDescriptor::LEN)
            .map(DensityDescriptor::parse)
            .collect::<Result<_, _>>()?;
        Ok(DensitySupport { descriptors })
    }

    fn buffer_len(&self) -> usize {
        4 + self.descriptors.len() * DensityDescriptor::LEN
    }

    fn emit(&self, b: &mut [u8]) {
        let len = self.buffer_len();
        b[..4].fill(0);
        put_be(&mut b[0..2], (len - 2) as u64);
        for (d, c) in self
            .descriptors
            .iter()
            .zip(b[4..len].chunks_exact_mut(DensityDescriptor::LEN))
        {
            d.emit(c);
        }
    }
}

/// Sequential-access device capabilities VPD page, B0h (SSC-4 8.4.2):
/// byte 4 bit 0 WORM (the drive supports WORM media).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequentialAccessCapabilities {
    pub device_type: DeviceType,
    pub worm: bool,
}

impl SequentialAccessCapabilities {
    pub const LEN: usize = 6;
}

impl Wire for SequentialAccessCapabilities {
    fn parse(b: &[u8]) -> Result<Self, ParseError> {
        need("sequential-access capabilities VPD", b, Self::LEN)?;
        if b[1] != 0xb0 {
            return Err(ParseError::invalid_at(
                "sequential-access capabilities VPD",
                format!("page code {:#04x}", b[1]),
                1,
                None,
            ));
        }
        Ok(SequentialAccessCapabilities {
            device_type: DeviceType(b[0] & 0x1f),
            worm: b[4] & 0x01 != 0,
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, b: &mut [u8]) {
        b[..Self::LEN].fill(0);
        b[0] = self.device_type.0 & 0x1f;
        b[1] = 0xb0;
        put_be(&mut b[2..4], (Self::LEN - 4) as u64);
        b[4] = self.worm as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::sbc::tests::golden;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn write_filemarks16_golden() {
        golden(
            WriteFilemarks16 {
                immed: true,
                wsmk: false,
                partition: 0,
                logical_id: 0x0102_0304_0506_0708,
                count: 0x0a_0b0c,
            },
            &[
                0x80, 0x01, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0,
            ],
        );
    }

    #[test]
    fn report_density_support_golden() {
        golden(
            ReportDensitySupport {
                medium_type: false,
                media: true,
                alloc_len: 0x0200,
            },
            &[0x44, 0x01, 0, 0, 0, 0, 0, 0x02, 0x00, 0],
        );
    }

    fn lto() -> DensityDescriptor {
        DensityDescriptor {
            primary_code: 0x5e,
            secondary_code: 0x5e,
            write_ok: true,
            dup: false,
            default: true,
            bits_per_mm: 0x01_0203,
            media_width: 127,
            tracks: 6656,
            capacity_mb: 12_000_000,
            organization: "LTO-CVE".into(),
            name: "U-832".into(),
            description: "Ultrium 8/16T".into(),
        }
    }

    #[test]
    fn density_support_golden() {
        let d = DensitySupport {
            descriptors: vec![lto()],
        };
        let b = d.to_vec();
        assert_eq!(b.len(), 56);
        assert_eq!(&b[..4], &[0, 54, 0, 0]);
        assert_eq!(
            &b[4..16],
            &[0x5e, 0x5e, 0xa1, 0, 47, 1, 2, 3, 0, 127, 0x1a, 0]
        );
        assert_eq!(&b[16..20], &12_000_000u32.to_be_bytes());
        assert_eq!(&b[20..28], b"LTO-CVE ");
        assert_eq!(&b[28..36], b"U-832   ");
        assert_eq!(&b[36..56], b"Ultrium 8/16T       ");
        assert_eq!(DensitySupport::parse(&b).unwrap(), d);
        // Cut off: the whole descriptor goes, the header alone is fine.
        assert_eq!(DensitySupport::parse(&b[..30]).unwrap().descriptors, vec![]);
        assert!(DensitySupport::parse(&b[..3]).is_err());
    }

    #[test]
    fn sequential_capabilities_golden() {
        let p = SequentialAccessCapabilities {
            device_type: DeviceType::TAPE,
            worm: true,
        };
        let b = [0x01, 0xb0, 0, 2, 1, 0];
        assert_eq!(p.to_vec(), b);
        assert_eq!(SequentialAccessCapabilities::parse(&b).unwrap(), p);
        assert!(SequentialAccessCapabilities::parse(&b[..5]).is_err());
        assert!(SequentialAccessCapabilities::parse(&[1, 0xb1, 0, 2, 1, 0]).is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = SequentialAccessCapabilities::parse(&buf);
            let _ = WriteFilemarks16::parse(&buf);
            let _ = ReportDensitySupport::parse(&buf);
            let _ = DensityDescriptor::parse(&buf);
            let _ = DensitySupport::parse(&buf);
        }

        #[test]
        fn write_filemarks16_round_trip(immed: bool, wsmk: bool, p: u8, id: u64, count in 0u32..=MASK_24) {
            let w = WriteFilemarks16 { immed, wsmk, partition: p, logical_id: id, count };
            prop_assert_eq!(WriteFilemarks16::parse(w.to_cdb().as_bytes()).unwrap(), w);
        }
    }
}
