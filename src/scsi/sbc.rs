//! SBC-4 direct-access block commands: READ/WRITE(10/16), READ CAPACITY
//! (10/16) and their parameter data, SYNCHRONIZE CACHE(10/16).
//!
//! Section numbers follow an SBC-4 working draft; T10 renumbers clause 5
//! between revisions, so the command name next to each number is the
//! reliable key.

use super::{
    be_uint, need, put_be, BlockCount, BlockSize, Cdb, CdbCodec, Lba, Opcode, ParseError, Wire,
};

pub(crate) use crate::scsi::check_cdb;

// READ/WRITE byte 1 flags (SBC-4 5.11 READ (10), 5.33 WRITE (10)).
const DPO: u8 = 0x10;
const FUA: u8 = 0x08;

macro_rules! rw10 {
    ($(#[$m:meta])* $name:ident, $op:expr, $what:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            /// First logical block; `to_cdb` writes the low 32 bits.
            pub lba: Lba,
            /// TRANSFER LENGTH in logical blocks (0 transfers nothing).
            pub blocks: u16,
            /// Disable page out: the data need not stay in the cache.
            pub dpo: bool,
            /// Force unit access: go to (or come from) the medium.
            pub fua: bool,
        }

        impl $name {
            /// A plain command; fails when `lba` does not fit the 32-bit field.
            pub fn new(lba: Lba, blocks: u16) -> Result<Self, ParseError> {
                if lba.0 > u32::MAX as u64 {
                    return Err(ParseError::invalid(
                        $what,
                        format!("LBA {} does not fit 32 bits; use the 16-byte CDB", lba.0),
                    ));
                }
                Ok($name { lba, blocks, dpo: false, fua: false })
            }
        }

        impl CdbCodec for $name {
            fn to_cdb(&self) -> Cdb {
                let mut c = Cdb::zeroed($op, 10);
                let b = c.as_mut_bytes();
                b[1] = if self.dpo { DPO } else { 0 } | if self.fua { FUA } else { 0 };
                put_be(&mut b[2..6], self.lba.0);
                put_be(&mut b[7..9], self.blocks as u64);
                c
            }

            fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
                check_cdb($what, cdb, $op, 10)?;
                Ok($name {
                    lba: Lba(be_uint(&cdb[2..6])),
                    blocks: be_uint(&cdb[7..9]) as u16,
                    dpo: cdb[1] & DPO != 0,
                    fua: cdb[1] & FUA != 0,
                })
            }
        }
    };
}

macro_rules! rw16 {
    ($(#[$m:meta])* $name:ident, $op:expr, $what:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            /// First logical block.
            pub lba: Lba,
            /// TRANSFER LENGTH in logical blocks (0 transfers nothing).
            pub blocks: u32,
            /// Disable page out: the data need not stay in the cache.
            pub dpo: bool,
            /// Force unit access: go to (or come from) the medium.
            pub fua: bool,
        }

        impl $name {
            /// A plain command without DPO/FUA.
            pub fn new(lba: Lba, blocks: u32) -> Self {
                $name { lba, blocks, dpo: false, fua: false }
            }
        }

        impl CdbCodec for $name {
            fn to_cdb(&self) -> Cdb {
                let mut c = Cdb::zeroed($op, 16);
                let b = c.as_mut_bytes();
                b[1] = if self.dpo { DPO } else { 0 } | if self.fua { FUA } else { 0 };
                put_be(&mut b[2..10], self.lba.0);
                put_be(&mut b[10..14], self.blocks as u64);
                c
            }

            fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
                check_cdb($what, cdb, $op, 16)?;
                Ok($name {
                    lba: Lba(be_uint(&cdb[2..10])),
                    blocks: be_uint(&cdb[10..14]) as u32,
                    dpo: cdb[1] & DPO != 0,
                    fua: cdb[1] & FUA != 0,
                })
            }
        }
    };
}

rw10!(
    /// READ(10), opcode 28h (SBC-4 5.11 READ (10)).
    Read10,
    Opcode::READ_10,
    "READ(10)"
);
rw10!(
    /// WRITE(10), opcode 2Ah (SBC-4 5.33 WRITE (10)).
    Write10,
    Opcode::WRITE_10,
    "WRITE(10)"
);
rw16!(
    /// READ(16), opcode 88h (SBC-4 5.13 READ (16)).
    Read16,
    Opcode::READ_16,
    "READ(16)"
);
rw16!(
    /// WRITE(16), opcode 8Ah (SBC-4 5.35 WRITE (16)).
    Write16,
    Opcode::WRITE_16,
    "WRITE(16)"
);

/// READ CAPACITY(10), opcode 25h (SBC-4 5.15 READ CAPACITY (10)). The LBA
/// and PMI fields are obsolete and always zero; the response is 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadCapacity10;

impl CdbCodec for ReadCapacity10 {
    fn to_cdb(&self) -> Cdb {
        Cdb::zeroed(Opcode::READ_CAPACITY_10, 10)
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("READ CAPACITY(10)", cdb, Opcode::READ_CAPACITY_10, 10)?;
        Ok(ReadCapacity10)
    }
}

/// READ CAPACITY(10) parameter data, 8 bytes (SBC-4 5.15.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Capacity10 {
    /// RETURNED LOGICAL BLOCK ADDRESS: the last LBA, or FFFFFFFFh when the
    /// capacity needs READ CAPACITY(16).
    pub last_lba: u32,
    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub block_len: u32,
}

impl Capacity10 {
    /// Encoded length.
    pub const LEN: usize = 8;

    /// Number of logical blocks (last LBA + 1).
    pub fn blocks(&self) -> BlockCount {
        BlockCount(self.last_lba as u64 + 1)
    }

    pub fn block_size(&self) -> BlockSize {
        BlockSize(self.block_len)
    }

    /// The device says the capacity does not fit: ask READ CAPACITY(16)
    /// (SBC-4 5.15.2, RETURNED LOGICAL BLOCK ADDRESS = FFFFFFFFh).
    pub fn needs_16(&self) -> bool {
        self.last_lba == u32::MAX
    }
}

impl Wire for Capacity10 {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("READ CAPACITY(10) data", buf, Self::LEN)?;
        Ok(Capacity10 {
            last_lba: be_uint(&buf[0..4]) as u32,
            block_len: be_uint(&buf[4..8]) as u32,
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, buf: &mut [u8]) {
        put_be(&mut buf[0..4], self.last_lba as u64);
        put_be(&mut buf[4..8], self.block_len as u64);
    }
}

/// READ CAPACITY(16): SERVICE ACTION IN(16) 9Eh, service action 10h
/// (SBC-4 5.16 READ CAPACITY (16)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCapacity16 {
    /// ALLOCATION LENGTH; 32 gets the whole parameter data.
    pub alloc_len: u32,
}

impl ReadCapacity16 {
    /// SERVICE ACTION IN(16) service action for READ CAPACITY(16).
    pub const SERVICE_ACTION: u8 = 0x10;
}

impl Default for ReadCapacity16 {
    fn default() -> Self {
        ReadCapacity16 {
            alloc_len: Capacity16::LEN as u32,
        }
    }
}

impl CdbCodec for ReadCapacity16 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::SERVICE_ACTION_IN_16, 16);
        let b = c.as_mut_bytes();
        b[1] = Self::SERVICE_ACTION;
        put_be(&mut b[10..14], self.alloc_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        const WHAT: &str = "READ CAPACITY(16)";
        check_cdb(WHAT, cdb, Opcode::SERVICE_ACTION_IN_16, 16)?;
        let sa = cdb[1] & 0x1f;
        if sa != Self::SERVICE_ACTION {
            return Err(ParseError::invalid(
                WHAT,
                format!("service action {sa:#04x}, expected 0x10"),
            ));
        }
        Ok(ReadCapacity16 {
            alloc_len: be_uint(&cdb[10..14]) as u32,
        })
    }
}

/// READ CAPACITY(16) parameter data, 32 bytes (SBC-4 5.16.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Capacity16 {
    /// RETURNED LOGICAL BLOCK ADDRESS: the last LBA.
    pub last_lba: u64,
    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub block_len: u32,
    /// P_TYPE, byte 12 bits 3..1: protection type minus one when `prot_en`.
    pub p_type: u8,
    /// PROT_EN, byte 12 bit 0.
    pub prot_en: bool,
    /// P_I_EXPONENT, byte 13 bits 7..4.
    pub p_i_exponent: u8,
    /// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT, byte 13 bits 3..0.
    pub lbppbe: u8,
    /// LBPME, byte 14 bit 7: logical block provisioning (thin) enabled.
    pub lbpme: bool,
    /// LBPRZ, byte 14 bit 6: unmapped blocks read as zeros.
    pub lbprz: bool,
    /// LOWEST ALIGNED LOGICAL BLOCK ADDRESS, 14 bits.
    pub lowest_aligned_lba: u16,
}

impl Capacity16 {
    /// Encoded length.
    pub const LEN: usize = 32;
    /// The part every device returns: RETURNED LBA + block length.
    pub const MIN_LEN: usize = 12;

    /// Number of logical blocks (last LBA + 1; saturates on a bogus
    /// FFFFFFFF_FFFFFFFFh, which SBC-4 forbids).
    pub fn blocks(&self) -> BlockCount {
        BlockCount(self.last_lba.saturating_add(1))
    }

    pub fn block_size(&self) -> BlockSize {
        BlockSize(self.block_len)
    }

    /// Logical blocks per physical block (2^LBPPBE).
    pub fn blocks_per_physical(&self) -> u32 {
        1u32 << (self.lbppbe & 0x0f)
    }
}

impl Wire for Capacity16 {
    /// Needs the first 12 bytes; an allocation length that cut off the
    /// protection and provisioning bytes leaves those fields zero.
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("READ CAPACITY(16) data", buf, Self::MIN_LEN)?;
        let byte = |i: usize| buf.get(i).copied().unwrap_or(0);
        let (b12, b13, b14, b15) = (byte(12), byte(13), byte(14), byte(15));
        Ok(Capacity16 {
            last_lba: be_uint(&buf[0..8]),
            block_len: be_uint(&buf[8..12]) as u32,
            p_type: (b12 >> 1) & 0x07,
            prot_en: b12 & 0x01 != 0,
            p_i_exponent: b13 >> 4,
            lbppbe: b13 & 0x0f,
            lbpme: b14 & 0x80 != 0,
            lbprz: b14 & 0x40 != 0,
            lowest_aligned_lba: u16::from_be_bytes([b14 & 0x3f, b15]),
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..Self::LEN];
        buf.fill(0);
        put_be(&mut buf[0..8], self.last_lba);
        put_be(&mut buf[8..12], self.block_len as u64);
        buf[12] = (self.p_type & 0x07) << 1 | self.prot_en as u8;
        buf[13] = (self.p_i_exponent & 0x0f) << 4 | (self.lbppbe & 0x0f);
        let [hi, lo] = self.lowest_aligned_lba.to_be_bytes();
        buf[14] = (self.lbpme as u8) << 7 | (self.lbprz as u8) << 6 | (hi & 0x3f);
        buf[15] = lo;
    }
}

// SYNCHRONIZE CACHE byte 1 bit 1 (SBC-4 5.26, 5.27).
const IMMED: u8 = 0x02;

/// SYNCHRONIZE CACHE(10), opcode 35h (SBC-4 5.26 SYNCHRONIZE CACHE (10)).
/// `lba` 0 with `blocks` 0 flushes the whole cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynchronizeCache10 {
    /// First logical block; `to_cdb` writes the low 32 bits.
    pub lba: Lba,
    /// NUMBER OF LOGICAL BLOCKS; 0 means "to the last LBA".
    pub blocks: u16,
    /// Return status before the flush completes.
    pub immed: bool,
}

impl CdbCodec for SynchronizeCache10 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::SYNCHRONIZE_CACHE_10, 10);
        let b = c.as_mut_bytes();
        b[1] = if self.immed { IMMED } else { 0 };
        put_be(&mut b[2..6], self.lba.0);
        put_be(&mut b[7..9], self.blocks as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb(
            "SYNCHRONIZE CACHE(10)",
            cdb,
            Opcode::SYNCHRONIZE_CACHE_10,
            10,
        )?;
        Ok(SynchronizeCache10 {
            lba: Lba(be_uint(&cdb[2..6])),
            blocks: be_uint(&cdb[7..9]) as u16,
            immed: cdb[1] & IMMED != 0,
        })
    }
}

/// SYNCHRONIZE CACHE(16), opcode 91h (SBC-4 5.27 SYNCHRONIZE CACHE (16)).
/// The same opcode is SPACE(16) on a tape: the device type decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynchronizeCache16 {
    /// First logical block.
    pub lba: Lba,
    /// NUMBER OF LOGICAL BLOCKS; 0 means "to the last LBA".
    pub blocks: u32,
    /// Return status before the flush completes.
    pub immed: bool,
}

impl CdbCodec for SynchronizeCache16 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::SYNCHRONIZE_CACHE_16, 16);
        let b = c.as_mut_bytes();
        b[1] = if self.immed { IMMED } else { 0 };
        put_be(&mut b[2..10], self.lba.0);
        put_be(&mut b[10..14], self.blocks as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb(
            "SYNCHRONIZE CACHE(16)",
            cdb,
            Opcode::SYNCHRONIZE_CACHE_16,
            16,
        )?;
        Ok(SynchronizeCache16 {
            lba: Lba(be_uint(&cdb[2..10])),
            blocks: be_uint(&cdb[10..14]) as u32,
            immed: cdb[1] & IMMED != 0,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fmt::Debug;

    /// Golden CDB check: build -> bytes, bytes -> value, one byte short ->
    /// Err, wrong opcode -> Err.
    pub(crate) fn golden<T: CdbCodec + PartialEq + Debug>(value: T, bytes: &[u8]) {
        assert_eq!(value.to_cdb().as_bytes(), bytes, "{value:?} emit");
        assert_eq!(T::parse(bytes).unwrap(), value, "parse {bytes:02x?}");
        assert!(
            T::parse(&bytes[..bytes.len() - 1]).is_err(),
            "short CDB accepted"
        );
        let mut wrong = bytes.to_vec();
        wrong[0] ^= 0x40;
        assert!(T::parse(&wrong).is_err(), "wrong opcode accepted");
    }

    #[test]
    fn read10_golden() {
        golden(
            Read10 {
                lba: Lba(0x0102_0304),
                blocks: 0x0506,
                dpo: true,
                fua: false,
            },
            &[0x28, 0x10, 1, 2, 3, 4, 0, 5, 6, 0],
        );
        golden(
            Read10::new(Lba(0), 1).unwrap(),
            &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        );
    }

    #[test]
    fn write10_golden() {
        golden(
            Write10 {
                lba: Lba(0xffff_fffe),
                blocks: 8,
                dpo: false,
                fua: true,
            },
            &[0x2a, 0x08, 0xff, 0xff, 0xff, 0xfe, 0, 0, 8, 0],
        );
    }

    #[test]
    fn rw10_new_rejects_wide_lba() {
        assert!(Read10::new(Lba(1 << 32), 1).is_err());
        assert!(Write10::new(Lba(u32::MAX as u64), 1).is_ok());
    }

    #[test]
    fn read16_golden() {
        golden(
            Read16 {
                lba: Lba(0x0102_0304_0506_0708),
                blocks: 0x0a0b_0c0d,
                dpo: true,
                fua: true,
            },
            &[
                0x88, 0x18, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0,
            ],
        );
    }

    #[test]
    fn write16_golden() {
        golden(
            Write16::new(Lba(0x1_0000_0000), 128),
            &[0x8a, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0],
        );
    }

    #[test]
    fn read_capacity10_golden() {
        golden(ReadCapacity10, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn capacity10_golden() {
        let bytes = [0x00, 0x1f, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00];
        let c = Capacity10 {
            last_lba: 0x001f_ffff,
            block_len: 512,
        };
        assert_eq!(c.to_vec(), bytes);
        assert_eq!(Capacity10::parse(&bytes).unwrap(), c);
        assert_eq!(c.blocks(), BlockCount(0x0020_0000));
        assert_eq!(c.block_size(), BlockSize(512));
        assert!(!c.needs_16());
        for n in 0..bytes.len() {
            assert!(Capacity10::parse(&bytes[..n]).is_err());
        }
        let big = Capacity10::parse(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0x10, 0]).unwrap();
        assert!(big.needs_16());
        assert_eq!(big.blocks(), BlockCount(1 << 32));
    }

    #[test]
    fn read_capacity16_golden() {
        golden(
            ReadCapacity16::default(),
            &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0],
        );
        // A different service action of SERVICE ACTION IN(16) is not ours.
        let mut other = ReadCapacity16::default().to_cdb().as_bytes().to_vec();
        other[1] = 0x12;
        assert!(ReadCapacity16::parse(&other).is_err());
    }

    #[test]
    fn capacity16_golden() {
        // 4 KiB physical / 512 logical, thin with zero reads, type 2 PI.
        let bytes = [
            0, 0, 0, 0x01, 0xff, 0xff, 0xff, 0xff, // last LBA
            0, 0, 0x02, 0x00, // 512
            0x03, // P_TYPE=1 (type 2), PROT_EN
            0x13, // P_I_EXPONENT=1, LBPPBE=3
            0xc0, 0x07, // LBPME, LBPRZ, lowest aligned 7
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let c = Capacity16 {
            last_lba: 0x1_ffff_ffff,
            block_len: 512,
            p_type: 1,
            prot_en: true,
            p_i_exponent: 1,
            lbppbe: 3,
            lbpme: true,
            lbprz: true,
            lowest_aligned_lba: 7,
        };
        assert_eq!(c.to_vec(), bytes);
        assert_eq!(Capacity16::parse(&bytes).unwrap(), c);
        assert_eq!(c.blocks(), BlockCount(0x2_0000_0000));
        assert_eq!(c.block_size(), BlockSize(512));
        assert_eq!(c.blocks_per_physical(), 8);
        for n in 0..Capacity16::MIN_LEN {
            assert!(Capacity16::parse(&bytes[..n]).is_err());
        }
        // Truncated by the allocation length after byte 12: the rest is 0.
        let short = Capacity16::parse(&bytes[..13]).unwrap();
        assert_eq!(short.last_lba, c.last_lba);
        assert!(short.prot_en);
        assert_eq!(
            (short.lbppbe, short.lbpme, short.lowest_aligned_lba),
            (0, false, 0)
        );
    }

    #[test]
    fn capacity16_saturates_bogus_last_lba() {
        let mut bytes = [0u8; 32];
        bytes[..8].fill(0xff);
        let c = Capacity16::parse(&bytes).unwrap();
        assert_eq!(c.blocks(), BlockCount(u64::MAX));
    }

    #[test]
    fn synchronize_cache_golden() {
        golden(
            SynchronizeCache10::default(),
            &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        golden(
            SynchronizeCache10 {
                lba: Lba(0x10),
                blocks: 0x20,
                immed: true,
            },
            &[0x35, 0x02, 0, 0, 0, 0x10, 0, 0, 0x20, 0],
        );
        golden(
            SynchronizeCache16 {
                lba: Lba(0x0102_0304_0506_0708),
                blocks: 0x1000,
                immed: true,
            },
            &[0x91, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x10, 0, 0, 0],
        );
    }

    fn capacity16() -> impl Strategy<Value = Capacity16> {
        (
            any::<u64>(),
            any::<u32>(),
            0u8..8,
            any::<bool>(),
            0u8..16,
            0u8..16,
            any::<bool>(),
            any::<bool>(),
            0u16..0x4000,
        )
            .prop_map(
                |(last_lba, block_len, p_type, prot_en, pie, lbppbe, lbpme, lbprz, la)| {
                    Capacity16 {
                        last_lba,
                        block_len,
                        p_type,
                        prot_en,
                        p_i_exponent: pie,
                        lbppbe,
                        lbpme,
                        lbprz,
                        lowest_aligned_lba: la,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Capacity10::parse(&buf);
            let _ = Capacity16::parse(&buf);
            let _ = Read10::parse(&buf);
            let _ = Write10::parse(&buf);
            let _ = Read16::parse(&buf);
            let _ = Write16::parse(&buf);
            let _ = ReadCapacity10::parse(&buf);
            let _ = ReadCapacity16::parse(&buf);
            let _ = SynchronizeCache10::parse(&buf);
            let _ = SynchronizeCache16::parse(&buf);
        }

        #[test]
        fn capacity10_round_trip(last_lba in any::<u32>(), block_len in any::<u32>()) {
            let c = Capacity10 { last_lba, block_len };
            prop_assert_eq!(Capacity10::parse(&c.to_vec()).unwrap(), c);
        }

        #[test]
        fn capacity16_round_trip(c in capacity16()) {
            prop_assert_eq!(Capacity16::parse(&c.to_vec()).unwrap(), c);
        }

        #[test]
        fn rw_round_trip(lba in any::<u64>(), blocks in any::<u32>(), dpo in any::<bool>(), fua in any::<bool>()) {
            let r16 = Read16 { lba: Lba(lba), blocks, dpo, fua };
            prop_assert_eq!(Read16::parse(r16.to_cdb().as_bytes()).unwrap(), r16);
            let w16 = Write16 { lba: Lba(lba), blocks, dpo, fua };
            prop_assert_eq!(Write16::parse(w16.to_cdb().as_bytes()).unwrap(), w16);
            let r10 = Read10 { lba: Lba(lba & 0xffff_ffff), blocks: blocks as u16, dpo, fua };
            prop_assert_eq!(Read10::parse(r10.to_cdb().as_bytes()).unwrap(), r10);
            let w10 = Write10 { lba: Lba(lba & 0xffff_ffff), blocks: blocks as u16, dpo, fua };
            prop_assert_eq!(Write10::parse(w10.to_cdb().as_bytes()).unwrap(), w10);
            let s16 = SynchronizeCache16 { lba: Lba(lba), blocks, immed: dpo };
            prop_assert_eq!(SynchronizeCache16::parse(s16.to_cdb().as_bytes()).unwrap(), s16);
        }
    }
}
