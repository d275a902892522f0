//! MODE SELECT / MODE SENSE (SPC-4 r37 6.11 to 6.14) and the mode parameter
//! list (SPC-4 7.5).

use serde::Serialize;

use super::{check_cdb, ser_hex};
use crate::scsi::{be_uint, need, put_be, Cdb, CdbCodec, Opcode, ParseError};

/// PAGE CONTROL values (SPC-4 6.13).
pub mod page_control {
    pub const CURRENT: u8 = 0;
    pub const CHANGEABLE: u8 = 1;
    pub const DEFAULT: u8 = 2;
    pub const SAVED: u8 = 3;
}

/// PAGE CODE 0x3F with SUBPAGE CODE 0x00 or 0xFF: return all pages.
pub const ALL_PAGES: u8 = 0x3f;

/// MODE SENSE(6) (SPC-4 6.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSense6 {
    /// DBD: no block descriptors.
    pub dbd: bool,
    /// PC, 2 bits: see [`page_control`].
    pub pc: u8,
    /// 6 bits.
    pub page_code: u8,
    pub subpage_code: u8,
    pub alloc_len: u8,
}

impl CdbCodec for ModeSense6 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::MODE_SENSE_6, 6);
        let b = c.as_mut_bytes();
        b[1] = (self.dbd as u8) << 3;
        b[2] = (self.pc & 3) << 6 | (self.page_code & 0x3f);
        b[3] = self.subpage_code;
        b[4] = self.alloc_len;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("MODE SENSE(6)", cdb, Opcode::MODE_SENSE_6, 6)?;
        Ok(ModeSense6 {
            dbd: cdb[1] & 0x08 != 0,
            pc: cdb[2] >> 6,
            page_code: cdb[2] & 0x3f,
            subpage_code: cdb[3],
            alloc_len: cdb[4],
        })
    }
}

/// MODE SENSE(10) (SPC-4 6.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSense10 {
    /// LLBAA: long (16-byte) block descriptors are welcome.
    pub llbaa: bool,
    pub dbd: bool,
    pub pc: u8,
    pub page_code: u8,
    pub subpage_code: u8,
    pub alloc_len: u16,
}

impl CdbCodec for ModeSense10 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::MODE_SENSE_10, 10);
        let b = c.as_mut_bytes();
        b[1] = (self.llbaa as u8) << 4 | (self.dbd as u8) << 3;
        b[2] = (self.pc & 3) << 6 | (self.page_code & 0x3f);
        b[3] = self.subpage_code;
        put_be(&mut b[7..9], self.alloc_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("MODE SENSE(10)", cdb, Opcode::MODE_SENSE_10, 10)?;
        Ok(ModeSense10 {
            llbaa: cdb[1] & 0x10 != 0,
            dbd: cdb[1] & 0x08 != 0,
            pc: cdb[2] >> 6,
            page_code: cdb[2] & 0x3f,
            subpage_code: cdb[3],
            alloc_len: be_uint(&cdb[7..9]) as u16,
        })
    }
}

/// MODE SELECT(6) (SPC-4 6.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSelect6 {
    /// PF: the pages follow the standard's page format.
    pub pf: bool,
    /// SP: save the pages.
    pub sp: bool,
    pub param_len: u8,
}

impl CdbCodec for ModeSelect6 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::MODE_SELECT_6, 6);
        let b = c.as_mut_bytes();
        b[1] = (self.pf as u8) << 4 | self.sp as u8;
        b[4] = self.param_len;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("MODE SELECT(6)", cdb, Opcode::MODE_SELECT_6, 6)?;
        Ok(ModeSelect6 {
            pf: cdb[1] & 0x10 != 0,
            sp: cdb[1] & 0x01 != 0,
            param_len: cdb[4],
        })
    }
}

/// MODE SELECT(10) (SPC-4 6.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSelect10 {
    pub pf: bool,
    pub sp: bool,
    pub param_len: u16,
}

impl CdbCodec for ModeSelect10 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::MODE_SELECT_10, 10);
        let b = c.as_mut_bytes();
        b[1] = (self.pf as u8) << 4 | self.sp as u8;
        put_be(&mut b[7..9], self.param_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("MODE SELECT(10)", cdb, Opcode::MODE_SELECT_10, 10)?;
        Ok(ModeSelect10 {
            pf: cdb[1] & 0x10 != 0,
            sp: cdb[1] & 0x01 != 0,
            param_len: be_uint(&cdb[7..9]) as u16,
        })
    }
}

/// A mode parameter block descriptor (SPC-4 7.5.5).
///
/// Short (8-byte) descriptors use the general layout (SPC-4 7.5.5.1:
/// DENSITY CODE, 24-bit NUMBER OF BLOCKS, BLOCK LENGTH), which is what tape
/// (SSC) uses. A disk's short LBA descriptor (SBC-4 6.5.2.2) has a 32-bit
/// block count instead: see [`BlockDescriptor::sbc_short_blocks`]. Long
/// (16-byte, LONGLBA) descriptors carry a 64-bit count (SBC-4 6.5.2.3);
/// their byte 8 is reserved there and holds `density_code` here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlockDescriptor {
    pub density_code: u8,
    pub blocks: u64,
    /// 24 bits.
    pub block_length: u32,
}

impl BlockDescriptor {
    pub const SHORT_LEN: usize = 8;
    pub const LONG_LEN: usize = 16;

    /// A disk's short LBA descriptor (SBC-4 6.5.2.2) from a 32-bit count.
    pub fn sbc_short(blocks: u32, block_length: u32) -> Self {
        BlockDescriptor {
            density_code: (blocks >> 24) as u8,
            blocks: (blocks & 0xff_ffff) as u64,
            block_length,
        }
    }

    /// The 32-bit NUMBER OF LOGICAL BLOCKS of a disk's short LBA
    /// descriptor read in the general layout.
    pub fn sbc_short_blocks(&self) -> u32 {
        (self.density_code as u32) << 24 | (self.blocks as u32 & 0xff_ffff)
    }

    fn parse_short(b: &[u8]) -> Self {
        BlockDescriptor {
            density_code: b[0],
            blocks: be_uint(&b[1..4]),
            block_length: be_uint(&b[5..8]) as u32,
        }
    }

    fn parse_long(b: &[u8]) -> Self {
        BlockDescriptor {
            density_code: b[8],
            blocks: be_uint(&b[0..8]),
            block_length: be_uint(&b[12..16]) as u32,
        }
    }

    fn emit_short(&self, b: &mut [u8]) {
        b[0] = self.density_code;
        put_be(&mut b[1..4], self.blocks);
        b[4] = 0;
        put_be(&mut b[5..8], self.block_length as u64);
    }

    fn emit_long(&self, b: &mut [u8]) {
        put_be(&mut b[0..8], self.blocks);
        b[8] = self.density_code;
        b[9..12].fill(0);
        put_be(&mut b[12..16], self.block_length as u64);
    }

    /// Whether the short form holds it.
    fn fits_short(&self) -> bool {
        self.blocks <= 0xff_ffff
    }
}

/// A mode parameter list (SPC-4 7.5): the header fields, the block
/// descriptors and the mode pages as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeParameters {
    pub medium_type: u8,
    /// DEVICE-SPECIFIC PARAMETER: bit 7 WP (SBC, SSC); for tape bits 6..4
    /// are BUFFERED MODE and bits 3..0 SPEED (SSC-4 8.3.3).
    pub device_specific: u8,
    pub block_descriptors: Vec<BlockDescriptor>,
    /// The mode pages after the block descriptors, undecoded.
    #[serde(serialize_with = "ser_hex")]
    pub pages: Vec<u8>,
}

/// One mode page found by [`ModeParameters::page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModePage<'a> {
    /// PS: the page can be saved.
    pub ps: bool,
    pub page_code: u8,
    /// 0 for a page_0 format page.
    pub subpage_code: u8,
    /// The page parameters after the 2- or 4-byte page header.
    pub data: &'a [u8],
}

impl ModeParameters {
    /// WP, write protected (SBC-4 6.5.1, SSC-4 8.3.3).
    pub fn write_protected(&self) -> bool {
        self.device_specific & 0x80 != 0
    }

    /// Tape BUFFERED MODE, 3 bits (SSC-4 8.3.3).
    pub fn buffered_mode(&self) -> u8 {
        (self.device_specific >> 4) & 7
    }

    /// Decode a MODE SENSE(6) response or MODE SELECT(6) parameter list.
    /// MODE DATA LENGTH bounds the data; 0 (its value in MODE SELECT, where
    /// it is reserved) means "the whole buffer". Block descriptors are 8
    /// bytes; ones the buffer cut off are dropped.
    pub fn parse6(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "mode parameter list (6)";
        need(W, buf, 4)?;
        let end = match buf[0] {
            0 => buf.len(),
            n => buf.len().min(n as usize + 1),
        };
        Self::parse_body(
            W,
            &buf[..end.max(4)],
            4,
            buf[1],
            buf[2],
            buf[3] as usize,
            false,
        )
    }

    /// Decode a MODE SENSE(10) response or MODE SELECT(10) parameter list;
    /// LONGLBA selects 16-byte block descriptors. Same bounds as
    /// [`ModeParameters::parse6`].
    pub fn parse10(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "mode parameter list (10)";
        need(W, buf, 8)?;
        let end = match be_uint(&buf[0..2]) as usize {
            0 => buf.len(),
            n => buf.len().min(n + 2),
        };
        let bdl = be_uint(&buf[6..8]) as usize;
        Self::parse_body(
            W,
            &buf[..end.max(8)],
            8,
            buf[2],
            buf[3],
            bdl,
            buf[4] & 1 != 0,
        )
    }

    fn parse_body(
        what: &'static str,
        buf: &[u8],
        hdr: usize,
        medium_type: u8,
        device_specific: u8,
        bdl: usize,
        long: bool,
    ) -> Result<Self, ParseError> {
        let dlen = if long {
            BlockDescriptor::LONG_LEN
        } else {
            BlockDescriptor::SHORT_LEN
        };
        if bdl % dlen != 0 {
            return Err(ParseError::invalid(
                what,
                format!("block descriptor length {bdl} is not a multiple of {dlen}"),
            ));
        }
        let bd_end = buf.len().min(hdr + bdl);
        let block_descriptors = buf[hdr..bd_end]
            .chunks_exact(dlen)
            .map(|c| {
                if long {
                    BlockDescriptor::parse_long(c)
                } else {
                    BlockDescriptor::parse_short(c)
                }
            })
            .collect();
        let pages = buf.get(hdr + bdl..).unwrap_or(&[]).to_vec();
        Ok(ModeParameters {
            medium_type,
            device_specific,
            block_descriptors,
            pages,
        })
    }

    /// MODE SENSE(6) data: 4-byte header, 8-byte descriptors, pages. The
    /// one-byte lengths wrap above 255: keep a 6-byte list that small.
    pub fn emit6(&self) -> Vec<u8> {
        let bdl = self.block_descriptors.len() * BlockDescriptor::SHORT_LEN;
        let mut v = vec![0u8; 4 + bdl + self.pages.len()];
        v[0] = (v.len() - 1) as u8; // MODE DATA LENGTH excludes itself
        v[1] = self.medium_type;
        v[2] = self.device_specific;
        v[3] = bdl as u8;
        for (c, d) in v[4..4 + bdl]
            .chunks_exact_mut(8)
            .zip(&self.block_descriptors)
        {
            d.emit_short(c);
        }
        v[4 + bdl..].copy_from_slice(&self.pages);
        v
    }

    /// MODE SENSE(10) data: 8-byte header, then 8-byte descriptors, or
    /// 16-byte ones (LONGLBA) when a block count needs more than 24 bits.
    pub fn emit10(&self) -> Vec<u8> {
        let long = !self.block_descriptors.iter().all(|d| d.fits_short());
        let dlen = if long {
            BlockDescriptor::LONG_LEN
        } else {
            BlockDescriptor::SHORT_LEN
        };
        let bdl = self.block_descriptors.len() * dlen;
        let mut v = vec![0u8; 8 + bdl + self.pages.len()];
        let total = v.len();
        put_be(&mut v[0..2], (total - 2) as u64);
        v[2] = self.medium_type;
        v[3] = self.device_specific;
        v[4] = long as u8;
        put_be(&mut v[6..8], bdl as u64);
        for (c, d) in v[8..8 + bdl]
            .chunks_exact_mut(dlen)
            .zip(&self.block_descriptors)
        {
            if long {
                d.emit_long(c);
            } else {
                d.emit_short(c);
            }
        }
        v[8 + bdl..].copy_from_slice(&self.pages);
        v
    }

    /// A MODE SELECT(6) parameter list: as [`ModeParameters::emit6`] with
    /// MODE DATA LENGTH 0, reserved in MODE SELECT (SPC-4 7.5.4).
    pub fn emit6_select(&self) -> Vec<u8> {
        let mut v = self.emit6();
        v[0] = 0;
        v
    }

    /// A MODE SELECT(10) parameter list (MODE DATA LENGTH 0).
    pub fn emit10_select(&self) -> Vec<u8> {
        let mut v = self.emit10();
        v[0] = 0;
        v[1] = 0;
        v
    }

    /// The first page with this code and subpage (SPC-4 7.5.7: page_0
    /// format has a 2-byte header, sub_page format (SPF) a 4-byte one).
    /// Stops at a page cut off by the buffer.
    pub fn page(&self, page_code: u8, subpage_code: u8) -> Option<ModePage<'_>> {
        self.iter_pages()
            .find(|p| p.page_code == page_code && p.subpage_code == subpage_code)
    }

    /// The mode pages in order, as far as they are whole.
    pub fn iter_pages(&self) -> impl Iterator<Item = ModePage<'_>> {
        let mut rest: &[u8] = &self.pages;
        std::iter::from_fn(move || {
            let b = rest;
            let spf = b.first()? & 0x40 != 0;
            let (hdr, len, sub) = if spf {
                let h = b.get(..4)?;
                (4, be_uint(&h[2..4]) as usize, h[1])
            } else {
                (2, *b.get(1)? as usize, 0)
            };
            let data = b.get(hdr..hdr + len)?;
            rest = &b[hdr + len..];
            Some(ModePage {
                ps: b[0] & 0x80 != 0,
                page_code: b[0] & 0x3f,
                subpage_code: sub,
                data,
            })
        })
    }
}

/// A mode page with a decoded form, in the page_0 format (SPC-4 7.5.7:
/// a 2-byte header, PAGE CODE and PAGE LENGTH). The command sets that
/// define pages (SMC-3 7.3, SSC-4 8.3) implement it; the list around them
/// stays [`ModeParameters`].
pub trait ModePageCodec: Sized {
    /// PAGE CODE, 6 bits.
    const PAGE_CODE: u8;
    /// The page's name, for errors.
    const NAME: &'static str;

    /// Decode the page parameters after the header ([`ModePage::data`]).
    fn parse_data(data: &[u8]) -> Result<Self, ParseError>;

    /// The page parameters after the header.
    fn data(&self) -> Vec<u8>;

    /// The whole page with its header (PS clear), ready to append to
    /// [`ModeParameters::pages`].
    fn to_page(&self) -> Vec<u8> {
        let d = self.data();
        let mut v = Vec::with_capacity(2 + d.len());
        v.push(Self::PAGE_CODE & 0x3f);
        v.push(d.len().min(255) as u8);
        v.extend_from_slice(&d[..d.len().min(255)]);
        v
    }

    /// Find this page in a mode parameter list and decode it.
    fn from_params(params: &ModeParameters) -> Result<Self, ParseError> {
        let page = params.page(Self::PAGE_CODE, 0).ok_or_else(|| {
            ParseError::invalid(
                Self::NAME,
                format!("page {:02X}h is not in the mode data", Self::PAGE_CODE),
            )
        })?;
        Self::parse_data(page.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mode_sense6_cdb_golden() {
        let c = ModeSense6 {
            dbd: true,
            pc: page_control::CHANGEABLE,
            page_code: 0x10,
            subpage_code: 0,
            alloc_len: 0xff,
        };
        let bytes = [0x1a, 0x08, 0x50, 0x00, 0xff, 0];
        assert_eq!(c.to_cdb().as_bytes(), &bytes);
        assert_eq!(ModeSense6::parse(&bytes), Ok(c));
        assert!(ModeSense6::parse(&bytes[..5]).is_err());
    }

    #[test]
    fn mode_sense10_cdb_golden() {
        let c = ModeSense10 {
            llbaa: true,
            dbd: false,
            pc: page_control::SAVED,
            page_code: ALL_PAGES,
            subpage_code: 0xff,
            alloc_len: 0x1234,
        };
        let bytes = [0x5a, 0x10, 0xff, 0xff, 0, 0, 0, 0x12, 0x34, 0];
        assert_eq!(c.to_cdb().as_bytes(), &bytes);
        assert_eq!(ModeSense10::parse(&bytes), Ok(c));
        assert!(ModeSense10::parse(&bytes[..9]).is_err());
        assert!(ModeSense10::parse(&[0x1a, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn mode_select_cdbs_golden() {
        let s6 = ModeSelect6 {
            pf: true,
            sp: false,
            param_len: 12,
        };
        let b6 = [0x15, 0x10, 0, 0, 12, 0];
        assert_eq!(s6.to_cdb().as_bytes(), &b6);
        assert_eq!(ModeSelect6::parse(&b6), Ok(s6));
        assert!(ModeSelect6::parse(&b6[..5]).is_err());

        let s10 = ModeSelect10 {
            pf: true,
            sp: true,
            param_len: 0x0118,
        };
        let b10 = [0x55, 0x11, 0, 0, 0, 0, 0, 0x01, 0x18, 0];
        assert_eq!(s10.to_cdb().as_bytes(), &b10);
        assert_eq!(ModeSelect10::parse(&b10), Ok(s10));
        assert!(ModeSelect10::parse(&b10[..9]).is_err());
    }

    /// A tape's MODE SENSE(6): buffered mode 1, one block descriptor
    /// (density 0x40, fixed 64 KiB blocks), and the device configuration
    /// page 0x10 (SSC-4 8.3.3), shortened to 6 bytes of parameters.
    fn tape_bytes() -> Vec<u8> {
        vec![
            19, 0x00, 0x10, 0x08, // header
            0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, // descriptor
            0x90, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, // page 0x10, PS
        ]
    }

    fn tape() -> ModeParameters {
        ModeParameters {
            medium_type: 0,
            device_specific: 0x10,
            block_descriptors: vec![BlockDescriptor {
                density_code: 0x40,
                blocks: 0,
                block_length: 0x10000,
            }],
            pages: vec![0x90, 0x06, 0, 0, 0, 0, 0, 0x40],
        }
    }

    #[test]
    fn mode_parameters6_golden() {
        let bytes = tape_bytes();
        assert_eq!(tape().emit6(), bytes);
        let p = ModeParameters::parse6(&bytes).unwrap();
        assert_eq!(p, tape());
        assert_eq!(p.buffered_mode(), 1);
        assert!(!p.write_protected());
        let page = p.page(0x10, 0).unwrap();
        assert!(page.ps);
        assert_eq!(page.data, &[0, 0, 0, 0, 0, 0x40]);
        assert_eq!(p.page(0x0f, 0), None);
        assert!(ModeParameters::parse6(&bytes[..3]).is_err());
        // Cut inside the descriptor: header only.
        let cut = ModeParameters::parse6(&bytes[..9]).unwrap();
        assert!(cut.block_descriptors.is_empty() && cut.pages.is_empty());
        // MODE SELECT form: length 0, whole buffer used.
        let sel = tape().emit6_select();
        assert_eq!(sel[0], 0);
        assert_eq!(ModeParameters::parse6(&sel), Ok(tape()));
        // Bad descriptor length.
        let mut bad = bytes.clone();
        bad[3] = 7;
        assert!(ModeParameters::parse6(&bad).is_err());
    }

    #[test]
    fn mode_parameters10_short_golden() {
        let bytes = [
            0x00, 0x16, 0x00, 0x80, 0x00, 0x00, 0x00, 0x08, // header, WP
            0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x02, 0x00, // 4096 blocks of 512
            0x08, 0x06, 0x04, 0, 0, 0, 0, 0, // caching page
        ];
        let p = ModeParameters {
            medium_type: 0,
            device_specific: 0x80,
            block_descriptors: vec![BlockDescriptor::sbc_short(0x1000, 512)],
            pages: vec![0x08, 0x06, 0x04, 0, 0, 0, 0, 0],
        };
        assert_eq!(p.emit10(), bytes);
        assert_eq!(ModeParameters::parse10(&bytes), Ok(p.clone()));
        assert!(p.write_protected());
        assert_eq!(p.block_descriptors[0].sbc_short_blocks(), 0x1000);
        assert!(ModeParameters::parse10(&bytes[..7]).is_err());
        let sel = p.emit10_select();
        assert_eq!(&sel[..2], &[0, 0]);
        assert_eq!(ModeParameters::parse10(&sel), Ok(p));
    }

    #[test]
    fn mode_parameters10_long_golden() {
        let bytes = [
            0x00, 0x16, 0x00, 0x00, 0x01, 0x00, 0x00, 0x10, // header, LONGLBA
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // 2^32 blocks
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, // of 4096
        ];
        let p = ModeParameters {
            medium_type: 0,
            device_specific: 0,
            block_descriptors: vec![BlockDescriptor {
                density_code: 0,
                blocks: 1 << 32,
                block_length: 4096,
            }],
            pages: vec![],
        };
        assert_eq!(p.emit10(), bytes);
        assert_eq!(ModeParameters::parse10(&bytes), Ok(p));
        let mut bad = bytes;
        bad[7] = 8; // not a multiple of 16 with LONGLBA
        assert!(ModeParameters::parse10(&bad).is_err());
    }

    #[test]
    fn subpage_format_page() {
        let p = ModeParameters {
            medium_type: 0,
            device_specific: 0,
            block_descriptors: vec![],
            pages: vec![
                0x0a, 0x02, 0xaa, 0xbb, // control page
                0x4a, 0x01, 0x00, 0x01, 0xcc, // control extension subpage
                0x1c, 0x05, 0x00, // cut off
            ],
        };
        let names: Vec<(u8, u8, usize)> = p
            .iter_pages()
            .map(|x| (x.page_code, x.subpage_code, x.data.len()))
            .collect();
        assert_eq!(names, [(0x0a, 0, 2), (0x0a, 1, 1)]);
        assert_eq!(p.page(0x0a, 1).unwrap().data, &[0xcc]);
        assert_eq!(p.page(0x1c, 0), None);
    }

    fn arb_params(long_ok: bool) -> impl Strategy<Value = ModeParameters> {
        let max = if long_ok { u64::MAX } else { 0xff_ffff };
        (
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec((any::<u8>(), 0..=max, 0u32..0x100_0000), 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(medium_type, device_specific, bds, pages)| ModeParameters {
                    medium_type,
                    device_specific,
                    block_descriptors: bds
                        .into_iter()
                        .map(|(density_code, blocks, block_length)| BlockDescriptor {
                            density_code,
                            blocks,
                            block_length,
                        })
                        .collect(),
                    pages,
                },
            )
    }

    proptest! {
        #[test]
        fn mode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ModeSense6::parse(&b);
            let _ = ModeSense10::parse(&b);
            let _ = ModeSelect6::parse(&b);
            let _ = ModeSelect10::parse(&b);
            if let Ok(p) = ModeParameters::parse6(&b) {
                let _ = p.iter_pages().count();
            }
            if let Ok(p) = ModeParameters::parse10(&b) {
                let _ = p.iter_pages().count();
            }
        }

        #[test]
        fn mode6_round_trip(p in arb_params(false)) {
            prop_assert_eq!(ModeParameters::parse6(&p.emit6()), Ok(p.clone()));
            prop_assert_eq!(ModeParameters::parse6(&p.emit6_select()), Ok(p));
        }

        #[test]
        fn mode10_round_trip(p in arb_params(true)) {
            prop_assert_eq!(ModeParameters::parse10(&p.emit10()), Ok(p.clone()));
            prop_assert_eq!(ModeParameters::parse10(&p.emit10_select()), Ok(p));
        }

        #[test]
        fn mode_cdbs_round_trip(a: bool, b: bool, pc in 0u8..4, page in 0u8..64, sub: u8, len: u16) {
            let s6 = ModeSense6 { dbd: a, pc, page_code: page, subpage_code: sub, alloc_len: len as u8 };
            prop_assert_eq!(ModeSense6::parse(s6.to_cdb().as_bytes()), Ok(s6));
            let s10 = ModeSense10 { llbaa: b, dbd: a, pc, page_code: page, subpage_code: sub, alloc_len: len };
            prop_assert_eq!(ModeSense10::parse(s10.to_cdb().as_bytes()), Ok(s10));
            let m6 = ModeSelect6 { pf: a, sp: b, param_len: len as u8 };
            prop_assert_eq!(ModeSelect6::parse(m6.to_cdb().as_bytes()), Ok(m6));
            let m10 = ModeSelect10 { pf: a, sp: b, param_len: len };
            prop_assert_eq!(ModeSelect10::parse(m10.to_cdb().as_bytes()), Ok(m10));
        }
    }
}
