//! SSC-4 stream (tape) commands: READ(6)/WRITE(6), WRITE FILEMARKS(6),
//! SPACE(6/16), REWIND, ERASE(6), LOAD UNLOAD, LOCATE(10/16), READ BLOCK
//! LIMITS and READ POSITION with its short, long and extended data; in
//! [`media`], WRITE FILEMARKS(16) and REPORT DENSITY SUPPORT; in
//! [`pages`], the SSC mode pages.
//!
//! Bit positions are from SSC-4 (cross-read against mhvtl's `ssc.h` and the
//! tape drive manuals); tgt's deviations are in README.md ("Tape targets").

use super::sbc::check_cdb;
use super::{be_uint, need, open_code, put_be, Cdb, CdbCodec, Opcode, ParseError, Wire};
use std::fmt;

pub mod media;
pub mod pages;
pub use media::*;
pub use pages::*;

const MASK_24: u32 = 0x00ff_ffff;

// READ(6)/WRITE(6) byte 1 (SSC-4 6.4, 6.8).
const FIXED: u8 = 0x01;
const SILI: u8 = 0x02;

/// READ(6), opcode 08h (SSC-4 6.4 READ (6)).
///
/// TRANSFER LENGTH is 24 bits: bytes when `!fixed`, blocks of the mode
/// block length when `fixed`. `to_cdb` writes the low 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read6 {
    pub fixed: bool,
    /// Suppress incorrect-length indication (variable mode only; tgt
    /// rejects FIXED+SILI with 24/00 and ignores SILI otherwise).
    pub sili: bool,
    pub length: u32,
}

impl Read6 {
    /// Largest TRANSFER LENGTH the 24-bit field holds.
    pub const MAX_LENGTH: u32 = MASK_24;

    /// Variable-block read of one block into a buffer of `bytes`.
    pub fn variable(bytes: u32) -> Self {
        Read6 {
            fixed: false,
            sili: false,
            length: bytes,
        }
    }

    /// Fixed-block read of `blocks` blocks.
    pub fn fixed(blocks: u32) -> Self {
        Read6 {
            fixed: true,
            sili: false,
            length: blocks,
        }
    }
}

impl CdbCodec for Read6 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::READ_6, 6);
        let b = c.as_mut_bytes();
        b[1] = if self.fixed { FIXED } else { 0 } | if self.sili { SILI } else { 0 };
        put_be(&mut b[2..5], (self.length & MASK_24) as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("READ(6)", cdb, Opcode::READ_6, 6)?;
        Ok(Read6 {
            fixed: cdb[1] & FIXED != 0,
            sili: cdb[1] & SILI != 0,
            length: be_uint(&cdb[2..5]) as u32,
        })
    }
}

/// WRITE(6), opcode 0Ah (SSC-4 6.8 WRITE (6)). Same 24-bit TRANSFER
/// LENGTH as [`Read6`]; `to_cdb` writes the low 24 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write6 {
    pub fixed: bool,
    pub length: u32,
}

impl Write6 {
    /// Largest TRANSFER LENGTH the 24-bit field holds.
    pub const MAX_LENGTH: u32 = MASK_24;

    /// Variable-block write of one block of `bytes`.
    pub fn variable(bytes: u32) -> Self {
        Write6 {
            fixed: false,
            length: bytes,
        }
    }

    /// Fixed-block write of `blocks` blocks.
    pub fn fixed(blocks: u32) -> Self {
        Write6 {
            fixed: true,
            length: blocks,
        }
    }
}

impl CdbCodec for Write6 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::WRITE_6, 6);
        let b = c.as_mut_bytes();
        b[1] = if self.fixed { FIXED } else { 0 };
        put_be(&mut b[2..5], (self.length & MASK_24) as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("WRITE(6)", cdb, Opcode::WRITE_6, 6)?;
        Ok(Write6 {
            fixed: cdb[1] & FIXED != 0,
            length: be_uint(&cdb[2..5]) as u32,
        })
    }
}

// Byte 1 bit 0 of REWIND, WRITE FILEMARKS, LOAD UNLOAD, LOCATE.
const IMMED0: u8 = 0x01;

/// WRITE FILEMARKS(6), opcode 10h (SSC-4 6.9 WRITE FILEMARKS (6)).
/// A count of 0 only flushes the buffer (tgt fsyncs only here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteFilemarks6 {
    pub immed: bool,
    /// WSmk, byte 1 bit 1: write setmarks (SSC-2; obsolete in SSC-4, and
    /// tgt writes filemarks anyway).
    pub wsmk: bool,
    /// 24 bits; `to_cdb` writes the low 24.
    pub count: u32,
}

impl WriteFilemarks6 {
    /// `count` filemarks, synchronous.
    pub fn new(count: u32) -> Self {
        WriteFilemarks6 {
            immed: false,
            wsmk: false,
            count,
        }
    }
}

impl CdbCodec for WriteFilemarks6 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::WRITE_FILEMARKS_6, 6);
        let b = c.as_mut_bytes();
        b[1] = if self.immed { IMMED0 } else { 0 } | if self.wsmk { 0x02 } else { 0 };
        put_be(&mut b[2..5], (self.count & MASK_24) as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("WRITE FILEMARKS(6)", cdb, Opcode::WRITE_FILEMARKS_6, 6)?;
        Ok(WriteFilemarks6 {
            immed: cdb[1] & IMMED0 != 0,
            wsmk: cdb[1] & 0x02 != 0,
            count: be_uint(&cdb[2..5]) as u32,
        })
    }
}

open_code! {
    /// SPACE CODE field, byte 1 bits 3..0 (SSC-4 6.6, table "Code field").
    SpaceCode(u8) {
        BLOCKS = 0 => "logical blocks",
        FILEMARKS = 1 => "filemarks",
        SEQUENTIAL_FILEMARKS = 2 => "sequential filemarks",
        END_OF_DATA = 3 => "end of data",
        /// SSC-2 setmarks; obsolete in SSC-4 (tgt and mhvtl reject it).
        SETMARKS = 4 => "setmarks",
    }
}

/// SPACE(6), opcode 11h (SSC-4 6.6 SPACE (6)). COUNT is a 24-bit two's
/// complement value: negative counts space backwards (never use negative
/// filemark counts on tgt: it is off by one). COUNT is ignored for END_OF_DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space6 {
    pub code: SpaceCode,
    /// Within -2^23..2^23 when built with [`Space6::new`]; `to_cdb`
    /// writes the low 24 bits of anything else.
    pub count: i32,
}

impl Space6 {
    pub const MIN_COUNT: i32 = -(1 << 23);
    pub const MAX_COUNT: i32 = (1 << 23) - 1;

    /// Checks that `count` fits 24 bits and `code` fits 4.
    pub fn new(code: SpaceCode, count: i32) -> Result<Self, ParseError> {
        if code.0 > 0x0f {
            return Err(ParseError::invalid(
                "SPACE(6)",
                format!("code {:#x} does not fit 4 bits", code.0),
            ));
        }
        if !(Self::MIN_COUNT..=Self::MAX_COUNT).contains(&count) {
            return Err(ParseError::invalid(
                "SPACE(6)",
                format!("count {count} does not fit 24 bits (use SPACE(16))"),
            ));
        }
        Ok(Space6 { code, count })
    }

    /// Space `count` blocks (negative: backwards).
    pub fn blocks(count: i32) -> Result<Self, ParseError> {
        Self::new(SpaceCode::BLOCKS, count)
    }

    /// Space `count` filemarks (negative: backwards).
    pub fn filemarks(count: i32) -> Result<Self, ParseError> {
        Self::new(SpaceCode::FILEMARKS, count)
    }

    /// Space to end of data (where appending starts).
    pub fn end_of_data() -> Self {
        Space6 {
            code: SpaceCode::END_OF_DATA,
            count: 0,
        }
    }
}

impl CdbCodec for Space6 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::SPACE_6, 6);
        let b = c.as_mut_bytes();
        b[1] = self.code.0 & 0x0f;
        put_be(&mut b[2..5], (self.count as u32 & MASK_24) as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("SPACE(6)", cdb, Opcode::SPACE_6, 6)?;
        // Sign-extend the 24-bit COUNT.
        let raw = be_uint(&cdb[2..5]) as u32;
        let count = ((raw << 8) as i32) >> 8;
        Ok(Space6 {
            code: SpaceCode(cdb[1] & 0x0f),
            count,
        })
    }
}

/// SPACE(16), opcode 91h (SSC-4 7.12 SPACE (16)): 64-bit two's complement
/// COUNT in bytes 4..12, PARAMETER LENGTH (bytes 12..14) always 0 here.
///
/// SSC-4 has no partition field in this CDB (bytes 2..3 are reserved): to
/// change partition use [`Locate16`]. `partition` is kept for the API
/// contract only; `to_cdb` ignores it and `parse` returns `None`.
/// Opcode 91h is SYNCHRONIZE CACHE(16) on a disk: the device type decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space16 {
    pub code: SpaceCode,
    pub count: i64,
    /// Not encoded (see above).
    pub partition: Option<u8>,
}

impl Space16 {
    pub fn new(code: SpaceCode, count: i64) -> Self {
        Space16 {
            code,
            count,
            partition: None,
        }
    }
}

impl CdbCodec for Space16 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::SPACE_16, 16);
        let b = c.as_mut_bytes();
        b[1] = self.code.0 & 0x0f;
        put_be(&mut b[4..12], self.count as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("SPACE(16)", cdb, Opcode::SPACE_16, 16)?;
        Ok(Space16 {
            code: SpaceCode(cdb[1] & 0x0f),
            count: be_uint(&cdb[4..12]) as i64,
            partition: None,
        })
    }
}

/// REWIND, opcode 01h (SSC-4 7.10 REWIND). tgt ignores IMMED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewind {
    pub immed: bool,
}

impl CdbCodec for Rewind {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::REWIND, 6);
        c.as_mut_bytes()[1] = if self.immed { IMMED0 } else { 0 };
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("REWIND", cdb, Opcode::REWIND, 6)?;
        Ok(Rewind {
            immed: cdb[1] & IMMED0 != 0,
        })
    }
}

/// ERASE(6), opcode 19h (SSC-4 6.2 ERASE (6)): byte 1 bit 1 IMMED, bit 0
/// LONG (erase to the end of the partition). tgt does not implement it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Erase {
    pub immed: bool,
    pub long: bool,
}

impl CdbCodec for Erase {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::ERASE_6, 6);
        c.as_mut_bytes()[1] = if self.immed { 0x02 } else { 0 } | if self.long { 0x01 } else { 0 };
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("ERASE(6)", cdb, Opcode::ERASE_6, 6)?;
        Ok(Erase {
            immed: cdb[1] & 0x02 != 0,
            long: cdb[1] & 0x01 != 0,
        })
    }
}

/// READ BLOCK LIMITS, opcode 05h (SSC-4 7.6 READ BLOCK LIMITS), MLOI=0:
/// the answer is the 6-byte [`BlockLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadBlockLimits;

impl CdbCodec for ReadBlockLimits {
    fn to_cdb(&self) -> Cdb {
        Cdb::zeroed(Opcode::READ_BLOCK_LIMITS, 6)
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("READ BLOCK LIMITS", cdb, Opcode::READ_BLOCK_LIMITS, 6)?;
        Ok(ReadBlockLimits)
    }
}

/// READ BLOCK LIMITS data, 6 bytes (SSC-4 7.6). `max == min` means the
/// drive is in fixed-block mode with that length (tgt truncates that
/// length to 8 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BlockLimits {
    /// GRANULARITY, byte 0 bits 4..0: block lengths are multiples of
    /// 2^granularity.
    pub granularity: u8,
    /// MAXIMUM BLOCK LENGTH LIMIT, 24 bits (0: no limit given).
    pub max_block_length: u32,
    /// MINIMUM BLOCK LENGTH LIMIT.
    pub min_block_length: u16,
}

impl BlockLimits {
    /// Encoded length.
    pub const LEN: usize = 6;
}

impl Wire for BlockLimits {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("READ BLOCK LIMITS data", buf, Self::LEN)?;
        Ok(BlockLimits {
            granularity: buf[0] & 0x1f,
            max_block_length: be_uint(&buf[1..4]) as u32,
            min_block_length: be_uint(&buf[4..6]) as u16,
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, buf: &mut [u8]) {
        buf[0] = self.granularity & 0x1f;
        put_be(&mut buf[1..4], (self.max_block_length & MASK_24) as u64);
        put_be(&mut buf[4..6], self.min_block_length as u64);
    }
}

/// LOAD UNLOAD, opcode 1Bh (SSC-4 7.3 LOAD UNLOAD): byte 1 bit 0 IMMED;
/// byte 4 bit 3 HOLD, bit 2 EOT, bit 1 RETEN, bit 0 LOAD.
///
/// tgt treats 1Bh as START STOP UNIT: an SSC UNLOAD
/// (byte 4 = 00h) is a no-op there and byte 4 = 02h unloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadUnload {
    pub immed: bool,
    pub hold: bool,
    pub eot: bool,
    pub reten: bool,
    pub load: bool,
}

impl LoadUnload {
    /// LOAD=1, synchronous.
    pub fn load() -> Self {
        LoadUnload {
            load: true,
            ..Default::default()
        }
    }

    /// LOAD=0, synchronous.
    pub fn unload() -> Self {
        LoadUnload::default()
    }
}

impl CdbCodec for LoadUnload {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::LOAD_UNLOAD, 6);
        let b = c.as_mut_bytes();
        b[1] = if self.immed { IMMED0 } else { 0 };
        b[4] = (self.hold as u8) << 3
            | (self.eot as u8) << 2
            | (self.reten as u8) << 1
            | self.load as u8;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("LOAD UNLOAD", cdb, Opcode::LOAD_UNLOAD, 6)?;
        Ok(LoadUnload {
            immed: cdb[1] & IMMED0 != 0,
            hold: cdb[4] & 0x08 != 0,
            eot: cdb[4] & 0x04 != 0,
            reten: cdb[4] & 0x02 != 0,
            load: cdb[4] & 0x01 != 0,
        })
    }
}

// LOCATE byte 1 (SSC-4 6.3, 7.4).
const CP: u8 = 0x02;
const BT: u8 = 0x04;

/// LOCATE(10), opcode 2Bh (SSC-4 6.3 LOCATE (10)): byte 1 bit 2 BT, bit 1
/// CP, bit 0 IMMED; bytes 3..7 LOGICAL OBJECT IDENTIFIER; byte 8 PARTITION
/// (used only when CP). tgt does not implement it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Locate10 {
    pub immed: bool,
    /// Block address type: `block` is a vendor-specific block id (the
    /// SHORT_VENDOR position) instead of a logical object identifier.
    pub bt: bool,
    /// Change partition to `partition` first.
    pub cp: bool,
    pub block: u32,
    pub partition: u8,
}

impl CdbCodec for Locate10 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::LOCATE_10, 10);
        let b = c.as_mut_bytes();
        b[1] = if self.bt { BT } else { 0 }
            | if self.cp { CP } else { 0 }
            | if self.immed { IMMED0 } else { 0 };
        put_be(&mut b[3..7], self.block as u64);
        b[8] = self.partition;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("LOCATE(10)", cdb, Opcode::LOCATE_10, 10)?;
        Ok(Locate10 {
            immed: cdb[1] & IMMED0 != 0,
            bt: cdb[1] & BT != 0,
            cp: cdb[1] & CP != 0,
            block: be_uint(&cdb[3..7]) as u32,
            partition: cdb[8],
        })
    }
}

/// LOCATE(16), opcode 92h (SSC-4 7.4 LOCATE (16)): byte 1 bits 5..3
/// DEST_TYPE, bit 1 CP, bit 0 IMMED; byte 2 bit 0 BAM; byte 3 PARTITION;
/// bytes 4..12 LOGICAL IDENTIFIER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Locate16 {
    pub immed: bool,
    pub cp: bool,
    /// 0 logical object, 1 logical file, 3 end of data (3 bits; `to_cdb`
    /// masks).
    pub dest_type: u8,
    /// Block address mode: explicit (false) or implicit (true).
    pub bam: bool,
    pub partition: u8,
    pub logical_id: u64,
}

impl Locate16 {
    /// DEST_TYPE: LOGICAL IDENTIFIER is a logical object identifier.
    pub const DEST_OBJECT: u8 = 0;
    /// DEST_TYPE: LOGICAL IDENTIFIER is a logical file identifier.
    pub const DEST_FILE: u8 = 1;
    /// DEST_TYPE: end of data.
    pub const DEST_EOD: u8 = 3;
}

impl CdbCodec for Locate16 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::LOCATE_16, 16);
        let b = c.as_mut_bytes();
        b[1] = (self.dest_type & 0x07) << 3
            | if self.cp { CP } else { 0 }
            | if self.immed { IMMED0 } else { 0 };
        b[2] = self.bam as u8;
        b[3] = self.partition;
        put_be(&mut b[4..12], self.logical_id);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("LOCATE(16)", cdb, Opcode::LOCATE_16, 16)?;
        Ok(Locate16 {
            immed: cdb[1] & IMMED0 != 0,
            cp: cdb[1] & CP != 0,
            dest_type: (cdb[1] >> 3) & 0x07,
            bam: cdb[2] & 0x01 != 0,
            partition: cdb[3],
            logical_id: be_uint(&cdb[4..12]),
        })
    }
}

open_code! {
    /// READ POSITION service action, byte 1 bits 4..0 (SSC-4 7.7).
    ReadPositionForm(u8) {
        SHORT = 0x00 => "short form, block id",
        SHORT_VENDOR = 0x01 => "short form, vendor-specific",
        LONG = 0x06 => "long form",
        EXTENDED = 0x08 => "extended form",
    }
}

impl ReadPositionForm {
    /// Bytes the device returns for this form (`None` for forms this crate
    /// does not know).
    pub fn data_len(self) -> Option<usize> {
        match self {
            Self::SHORT | Self::SHORT_VENDOR => Some(Position::SHORT_LEN),
            Self::LONG => Some(Position::LONG_LEN),
            Self::EXTENDED => Some(Position::EXTENDED_LEN),
            _ => None,
        }
    }
}

/// READ POSITION, opcode 34h, 10 bytes (SSC-4 7.7 READ POSITION).
///
/// SSC-4 requires ALLOCATION LENGTH (bytes 7..9) to be zero for the short
/// and long forms, so `to_cdb` writes `alloc_len` only for EXTENDED; `parse`
/// returns whatever the CDB holds. Use [`ReadPosition::data_len`] to size
/// the data-in buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPosition {
    pub form: ReadPositionForm,
    pub alloc_len: u16,
}

impl ReadPosition {
    /// Short form (SA 0), 20 bytes back.
    pub fn short() -> Self {
        ReadPosition {
            form: ReadPositionForm::SHORT,
            alloc_len: 0,
        }
    }

    /// Long form (SA 6), 32 bytes back.
    pub fn long() -> Self {
        ReadPosition {
            form: ReadPositionForm::LONG,
            alloc_len: 0,
        }
    }

    /// Extended form (SA 8) with the full 32-byte allocation.
    pub fn extended() -> Self {
        ReadPosition {
            form: ReadPositionForm::EXTENDED,
            alloc_len: Position::EXTENDED_LEN as u16,
        }
    }

    /// The data-in length to expect: the fixed size of the short and long
    /// forms, `alloc_len` for the extended (or an unknown) form.
    pub fn data_len(&self) -> usize {
        match self.form {
            ReadPositionForm::EXTENDED => self.alloc_len as usize,
            f => f.data_len().unwrap_or(self.alloc_len as usize),
        }
    }
}

impl CdbCodec for ReadPosition {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::READ_POSITION, 10);
        let b = c.as_mut_bytes();
        b[1] = self.form.0 & 0x1f;
        if self.form == ReadPositionForm::EXTENDED {
            put_be(&mut b[7..9], self.alloc_len as u64);
        }
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("READ POSITION", cdb, Opcode::READ_POSITION, 10)?;
        Ok(ReadPosition {
            form: ReadPositionForm(cdb[1] & 0x1f),
            alloc_len: be_uint(&cdb[7..9]) as u16,
        })
    }
}

bitflags::bitflags! {
    /// READ POSITION byte 0, short and extended forms (SSC-4 7.7).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ShortPositionFlags: u8 {
        const BOP = 0x80;
        const EOP = 0x40;
        /// SSC-2 BCU.
        const LOCU = 0x20;
        const BYCU = 0x10;
        /// SSC-2 BPU.
        const LOLU = 0x04;
        const PERR = 0x02;
        const BPEW = 0x01;
    }
}

bitflags::bitflags! {
    /// READ POSITION byte 0, long form (SSC-4 7.7; bits 5, 4 and 1 are
    /// reserved there, and bit 2 means LONU, not LOLU).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct LongPositionFlags: u8 {
        const BOP = 0x80;
        const EOP = 0x40;
        const MPU = 0x08;
        const LONU = 0x04;
        const BPEW = 0x01;
    }
}

/// READ POSITION data of any form (SSC-4 7.7), with every count the device
/// marks unknown as `None`.
///
/// How the flags map to `None`:
/// - short/extended: LOLU -> `first_block`/`last_block`; LOCU ->
///   `blocks_in_buffer`; BYCU -> `bytes_in_buffer`; PERR (a field
///   overflowed, SSC-4 does not say which) -> all four.
/// - long: LONU -> `first_block`; MPU -> `file_number` and `set_number`.
/// - fields a form does not have are always `None` (`last_block` and the
///   buffer counts in the long form, file and set numbers in the others),
///   and flags a form does not have are `false`.
/// - `partition` is reported as sent even when LOLU/LONU say the position
///   is unknown (the API keeps it a plain number).
///
/// tgt never reports its real position:
/// - short form `14 00 ..` (20 bytes) is BYCU|LOLU: `first_block`,
///   `last_block` and `bytes_in_buffer` are `None`, `blocks_in_buffer` is
///   `Some(0)`, `bop` is false;
/// - long form `20 00 ..` (32 bytes) has only a reserved bit set: it parses
///   as an exact "partition 0, block 0, file 0, set 0" with `bop` false.
///   Do not believe it on a tgt (vendor IET) tape; keep counting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub form: ReadPositionForm,
    /// Beginning of partition.
    pub bop: bool,
    /// End of partition (between early warning and the end).
    pub eop: bool,
    /// Logical object count unknown (short/extended).
    pub locu: bool,
    /// Byte count unknown (short/extended).
    pub bycu: bool,
    /// Logical object location unknown (short/extended; SSC-2 BPU).
    pub lolu: bool,
    /// Position error: a field overflowed (short/extended).
    pub perr: bool,
    /// Beyond programmable early warning.
    pub bpew: bool,
    /// Mark position unknown (long).
    pub mpu: bool,
    /// Logical object number unknown (long).
    pub lonu: bool,
    /// PARTITION NUMBER (1 byte in the short/extended forms, 4 in the long).
    pub partition: u32,
    /// FIRST LOGICAL OBJECT LOCATION (short/extended) or LOGICAL OBJECT
    /// NUMBER (long): the block the next read or write uses.
    pub first_block: Option<u64>,
    /// LAST LOGICAL OBJECT LOCATION: the next block to go from the buffer to
    /// the medium (short/extended).
    pub last_block: Option<u64>,
    /// LOGICAL FILE IDENTIFIER: filemarks before the position (long).
    pub file_number: Option<u64>,
    /// LOGICAL SET IDENTIFIER: setmarks before the position (long; SSC-2).
    pub set_number: Option<u64>,
    /// NUMBER OF LOGICAL OBJECTS IN OBJECT BUFFER, 24 bits.
    pub blocks_in_buffer: Option<u32>,
    /// NUMBER OF BYTES IN OBJECT BUFFER (32 bits short, 64 extended).
    pub bytes_in_buffer: Option<u64>,
}

impl Position {
    /// Short form length (SA 0/1).
    pub const SHORT_LEN: usize = 20;
    /// Long form length (SA 6).
    pub const LONG_LEN: usize = 32;
    /// Extended form length (SA 8); ADDITIONAL LENGTH is 1Ch.
    pub const EXTENDED_LEN: usize = 32;

    pub fn blank(form: ReadPositionForm) -> Position {
        Position {
            form,
            bop: false,
            eop: false,
            locu: false,
            bycu: false,
            lolu: false,
            perr: false,
            bpew: false,
            mpu: false,
            lonu: false,
            partition: 0,
            first_block: None,
            last_block: None,
            file_number: None,
            set_number: None,
            blocks_in_buffer: None,
            bytes_in_buffer: None,
        }
    }

    /// Decode READ POSITION data returned for `form`. Fails on an unknown
    /// form or fewer bytes than the form's fixed length.
    pub fn parse(form: ReadPositionForm, buf: &[u8]) -> Result<Position, ParseError> {
        const WHAT: &str = "READ POSITION data";
        let mut p = Position::blank(form);
        match form {
            ReadPositionForm::SHORT | ReadPositionForm::SHORT_VENDOR => {
                // SSC-4 7.7 short form: flags, partition, 32-bit first and
                // last location, 24-bit block count, 32-bit byte count.
                need(WHAT, buf, Self::SHORT_LEN)?;
                p.common_flags(buf[0]);
                p.partition = buf[1] as u32;
                p.set_counts(
                    be_uint(&buf[4..8]),
                    be_uint(&buf[8..12]),
                    be_uint(&buf[13..16]) as u32,
                    be_uint(&buf[16..20]),
                );
            }
            ReadPositionForm::EXTENDED => {
                // SSC-4 7.7 extended form: flags, partition, ADDITIONAL
                // LENGTH (not trusted beyond the fixed 32 bytes), 24-bit
                // block count, 64-bit first/last location and byte count.
                need(WHAT, buf, Self::EXTENDED_LEN)?;
                p.common_flags(buf[0]);
                p.partition = buf[1] as u32;
                p.set_counts(
                    be_uint(&buf[8..16]),
                    be_uint(&buf[16..24]),
                    be_uint(&buf[5..8]) as u32,
                    be_uint(&buf[24..32]),
                );
            }
            ReadPositionForm::LONG => {
                // SSC-4 7.7 long form: flags, 32-bit partition, 64-bit
                // object number, file id and set id.
                need(WHAT, buf, Self::LONG_LEN)?;
                p.long_flags(LongPositionFlags::from_bits_truncate(buf[0]));
                p.partition = be_uint(&buf[4..8]) as u32;
                if !p.lonu {
                    p.first_block = Some(be_uint(&buf[8..16]));
                }
                if !p.mpu {
                    p.file_number = Some(be_uint(&buf[16..24]));
                    p.set_number = Some(be_uint(&buf[24..32]));
                }
            }
            other => {
                return Err(ParseError::invalid(
                    WHAT,
                    format!("unknown service action {:#04x}", other.0),
                ))
            }
        }
        Ok(p)
    }

    fn common_flags(&mut self, byte: u8) {
        let f = ShortPositionFlags::from_bits_truncate(byte);
        self.bop = f.contains(ShortPositionFlags::BOP);
        self.eop = f.contains(ShortPositionFlags::EOP);
        self.locu = f.contains(ShortPositionFlags::LOCU);
        self.bycu = f.contains(ShortPositionFlags::BYCU);
        self.lolu = f.contains(ShortPositionFlags::LOLU);
        self.perr = f.contains(ShortPositionFlags::PERR);
        self.bpew = f.contains(ShortPositionFlags::BPEW);
    }

    fn long_flags(&mut self, f: LongPositionFlags) {
        self.bop = f.contains(LongPositionFlags::BOP);
        self.eop = f.contains(LongPositionFlags::EOP);
        self.mpu = f.contains(LongPositionFlags::MPU);
        self.lonu = f.contains(LongPositionFlags::LONU);
        self.bpew = f.contains(LongPositionFlags::BPEW);
    }

    fn set_counts(&mut self, first: u64, last: u64, blocks: u32, bytes: u64) {
        if self.perr {
            return;
        }
        if !self.lolu {
            self.first_block = Some(first);
            self.last_block = Some(last);
        }
        if !self.locu {
            self.blocks_in_buffer = Some(blocks);
        }
        if !self.bycu {
            self.bytes_in_buffer = Some(bytes);
        }
    }

    fn common_flag_byte(&self) -> u8 {
        let mut f = ShortPositionFlags::empty();
        f.set(ShortPositionFlags::BOP, self.bop);
        f.set(ShortPositionFlags::EOP, self.eop);
        f.set(ShortPositionFlags::LOCU, self.locu);
        f.set(ShortPositionFlags::BYCU, self.bycu);
        f.set(ShortPositionFlags::LOLU, self.lolu);
        f.set(ShortPositionFlags::PERR, self.perr);
        f.set(ShortPositionFlags::BPEW, self.bpew);
        f.bits()
    }

    fn long_flag_byte(&self) -> u8 {
        let mut f = LongPositionFlags::empty();
        f.set(LongPositionFlags::BOP, self.bop);
        f.set(LongPositionFlags::EOP, self.eop);
        f.set(LongPositionFlags::MPU, self.mpu);
        f.set(LongPositionFlags::LONU, self.lonu);
        f.set(LongPositionFlags::BPEW, self.bpew);
        f.bits()
    }

    /// Encode in the layout of `self.form` (the target side, the in-memory
    /// tape). Flags are written as they are; `None` fields are written as 0
    /// and values are truncated to their field widths, so keep the flags
    /// consistent with the options. An unknown form gives an empty vector.
    pub fn emit(&self) -> Vec<u8> {
        match self.form {
            ReadPositionForm::SHORT | ReadPositionForm::SHORT_VENDOR => {
                let mut b = vec![0u8; Self::SHORT_LEN];
                b[0] = self.common_flag_byte();
                b[1] = self.partition as u8;
                put_be(&mut b[4..8], self.first_block.unwrap_or(0));
                put_be(&mut b[8..12], self.last_block.unwrap_or(0));
                put_be(
                    &mut b[13..16],
                    (self.blocks_in_buffer.unwrap_or(0) & MASK_24) as u64,
                );
                put_be(&mut b[16..20], self.bytes_in_buffer.unwrap_or(0));
                b
            }
            ReadPositionForm::EXTENDED => {
                let mut b = vec![0u8; Self::EXTENDED_LEN];
                b[0] = self.common_flag_byte();
                b[1] = self.partition as u8;
                put_be(&mut b[2..4], (Self::EXTENDED_LEN - 4) as u64);
                put_be(
                    &mut b[5..8],
                    (self.blocks_in_buffer.unwrap_or(0) & MASK_24) as u64,
                );
                put_be(&mut b[8..16], self.first_block.unwrap_or(0));
                put_be(&mut b[16..24], self.last_block.unwrap_or(0));
                put_be(&mut b[24..32], self.bytes_in_buffer.unwrap_or(0));
                b
            }
            ReadPositionForm::LONG => {
                let mut b = vec![0u8; Self::LONG_LEN];
                b[0] = self.long_flag_byte();
                put_be(&mut b[4..8], self.partition as u64);
                put_be(&mut b[8..16], self.first_block.unwrap_or(0));
                put_be(&mut b[16..24], self.file_number.unwrap_or(0));
                put_be(&mut b[24..32], self.set_number.unwrap_or(0));
                b
            }
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Position {
    /// One line, e.g. "partition 0 block 12 file 1 BOP" or "block ?".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
        write!(
            f,
            "partition {} block {}",
            self.partition,
            opt(self.first_block)
        )?;
        if self.form == ReadPositionForm::LONG {
            write!(f, " file {}", opt(self.file_number))?;
        }
        if self.bop {
            f.write_str(" BOP")?;
        }
        if self.eop {
            f.write_str(" EOP")?;
        }
        if self.bpew {
            f.write_str(" BPEW")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::sbc::tests::golden;
    use super::*;
    use proptest::prelude::*;

    // Byte-0 flags as plain bytes, to lay out golden buffers.
    const BOP: u8 = ShortPositionFlags::BOP.bits();
    const EOP: u8 = ShortPositionFlags::EOP.bits();
    const LOCU: u8 = ShortPositionFlags::LOCU.bits();
    const BYCU: u8 = ShortPositionFlags::BYCU.bits();
    const LOLU: u8 = ShortPositionFlags::LOLU.bits();
    const PERR: u8 = ShortPositionFlags::PERR.bits();
    const BPEW: u8 = ShortPositionFlags::BPEW.bits();
    const MPU: u8 = LongPositionFlags::MPU.bits();
    const LONU: u8 = LongPositionFlags::LONU.bits();

    #[test]
    fn read6_golden() {
        golden(Read6::variable(0x01_0000), &[0x08, 0, 0x01, 0x00, 0x00, 0]);
        golden(Read6::fixed(16), &[0x08, 0x01, 0, 0, 0x10, 0]);
        golden(
            Read6 {
                fixed: false,
                sili: true,
                length: 0xff_ffff,
            },
            &[0x08, 0x02, 0xff, 0xff, 0xff, 0],
        );
    }

    #[test]
    fn read6_masks_to_24_bits() {
        let c = Read6::variable(0x0123_4567).to_cdb();
        assert_eq!(c.as_bytes(), &[0x08, 0, 0x23, 0x45, 0x67, 0]);
    }

    #[test]
    fn write6_golden() {
        golden(Write6::variable(65536), &[0x0a, 0, 0x01, 0, 0, 0]);
        golden(Write6::fixed(3), &[0x0a, 0x01, 0, 0, 3, 0]);
        assert_eq!(
            Write6::variable(1 << 24).to_cdb().as_bytes(),
            &[0x0a, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn write_filemarks_golden() {
        golden(WriteFilemarks6::new(1), &[0x10, 0, 0, 0, 1, 0]);
        golden(WriteFilemarks6::new(0), &[0x10, 0, 0, 0, 0, 0]);
        golden(
            WriteFilemarks6 {
                immed: true,
                wsmk: true,
                count: 0x12_3456,
            },
            &[0x10, 0x03, 0x12, 0x34, 0x56, 0],
        );
    }

    #[test]
    fn space6_golden() {
        golden(Space6::filemarks(1).unwrap(), &[0x11, 0x01, 0, 0, 1, 0]);
        golden(
            Space6::filemarks(-1).unwrap(),
            &[0x11, 0x01, 0xff, 0xff, 0xff, 0],
        );
        golden(Space6::blocks(-2).unwrap(), &[0x11, 0, 0xff, 0xff, 0xfe, 0]);
        golden(
            Space6::new(SpaceCode::SEQUENTIAL_FILEMARKS, 2).unwrap(),
            &[0x11, 0x02, 0, 0, 2, 0],
        );
        golden(Space6::end_of_data(), &[0x11, 0x03, 0, 0, 0, 0]);
        golden(
            Space6::blocks(Space6::MIN_COUNT).unwrap(),
            &[0x11, 0, 0x80, 0, 0, 0],
        );
        golden(
            Space6::blocks(Space6::MAX_COUNT).unwrap(),
            &[0x11, 0, 0x7f, 0xff, 0xff, 0],
        );
    }

    #[test]
    fn space6_range_checked() {
        assert!(Space6::blocks(1 << 23).is_err());
        assert!(Space6::blocks(-(1 << 23) - 1).is_err());
        assert!(Space6::new(SpaceCode(0x10), 0).is_err());
        assert!(Space6::new(SpaceCode::SETMARKS, 0).is_ok());
    }

    #[test]
    fn space16_golden() {
        golden(
            Space16::new(SpaceCode::FILEMARKS, -1),
            &[
                0x91, 0x01, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
            ],
        );
        golden(
            Space16::new(SpaceCode::BLOCKS, 0x0102_0304_0506),
            &[0x91, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0],
        );
        // No partition field in the CDB: it is not encoded.
        let with_p = Space16 {
            partition: Some(2),
            ..Space16::new(SpaceCode::END_OF_DATA, 0)
        };
        assert_eq!(
            with_p.to_cdb().as_bytes(),
            Space16::new(SpaceCode::END_OF_DATA, 0).to_cdb().as_bytes()
        );
    }

    #[test]
    fn rewind_erase_golden() {
        golden(Rewind::default(), &[0x01, 0, 0, 0, 0, 0]);
        golden(Rewind { immed: true }, &[0x01, 0x01, 0, 0, 0, 0]);
        golden(Erase::default(), &[0x19, 0, 0, 0, 0, 0]);
        golden(
            Erase {
                immed: true,
                long: true,
            },
            &[0x19, 0x03, 0, 0, 0, 0],
        );
        golden(
            Erase {
                immed: false,
                long: true,
            },
            &[0x19, 0x01, 0, 0, 0, 0],
        );
    }

    #[test]
    fn read_block_limits_golden() {
        golden(ReadBlockLimits, &[0x05, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn block_limits_golden() {
        // tgt in variable mode: granularity 9, max 1 MiB, min 4.
        let bytes = [0x09, 0x10, 0x00, 0x00, 0x00, 0x04];
        let l = BlockLimits {
            granularity: 9,
            max_block_length: 0x10_0000,
            min_block_length: 4,
        };
        assert_eq!(l.to_vec(), bytes);
        assert_eq!(BlockLimits::parse(&bytes).unwrap(), l);
        for n in 0..bytes.len() {
            assert!(BlockLimits::parse(&bytes[..n]).is_err());
        }
        // tgt fixed mode, 1000-byte blocks reported as 0xe8 (bug 6).
        let fixed = BlockLimits::parse(&[0x09, 0, 0, 0xe8, 0, 0xe8]).unwrap();
        assert_eq!(
            (fixed.max_block_length, fixed.min_block_length),
            (0xe8, 0xe8)
        );
        // Reserved bits 7..5 of byte 0 are ignored.
        assert_eq!(BlockLimits::parse(&[0xe9, 0x10, 0, 0, 0, 4]).unwrap(), l);
    }

    #[test]
    fn load_unload_golden() {
        golden(LoadUnload::unload(), &[0x1b, 0, 0, 0, 0, 0]);
        golden(LoadUnload::load(), &[0x1b, 0, 0, 0, 0x01, 0]);
        golden(
            LoadUnload {
                immed: true,
                hold: true,
                eot: true,
                reten: true,
                load: false,
            },
            &[0x1b, 0x01, 0, 0, 0x0e, 0],
        );
    }

    #[test]
    fn locate10_golden() {
        golden(
            Locate10 {
                immed: true,
                bt: true,
                cp: true,
                block: 0x0102_0304,
                partition: 5,
            },
            &[0x2b, 0x07, 0, 1, 2, 3, 4, 0, 5, 0],
        );
        golden(
            Locate10 {
                block: 7,
                ..Default::default()
            },
            &[0x2b, 0, 0, 0, 0, 0, 7, 0, 0, 0],
        );
    }

    #[test]
    fn locate16_golden() {
        golden(
            Locate16 {
                immed: true,
                cp: true,
                dest_type: Locate16::DEST_FILE,
                bam: true,
                partition: 1,
                logical_id: 0x0102_0304_0506_0708,
            },
            &[0x92, 0x0b, 0x01, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0],
        );
        golden(
            Locate16 {
                dest_type: Locate16::DEST_EOD,
                ..Default::default()
            },
            &[0x92, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
    }

    #[test]
    fn read_position_cdb_golden() {
        golden(ReadPosition::short(), &[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        golden(ReadPosition::long(), &[0x34, 0x06, 0, 0, 0, 0, 0, 0, 0, 0]);
        golden(
            ReadPosition::extended(),
            &[0x34, 0x08, 0, 0, 0, 0, 0, 0, 0x20, 0],
        );
        assert_eq!(ReadPosition::short().data_len(), 20);
        assert_eq!(ReadPosition::long().data_len(), 32);
        assert_eq!(ReadPosition::extended().data_len(), 32);
        // alloc_len is not sent for the short/long forms (SSC-4 7.7).
        let odd = ReadPosition {
            form: ReadPositionForm::SHORT_VENDOR,
            alloc_len: 20,
        };
        assert_eq!(
            odd.to_cdb().as_bytes(),
            &[0x34, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(odd.data_len(), 20);
    }

    fn short_bytes(flags: u8) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0] = flags;
        b[1] = 2; // partition
        b[4..8].copy_from_slice(&1000u32.to_be_bytes());
        b[8..12].copy_from_slice(&990u32.to_be_bytes());
        b[13..16].copy_from_slice(&[0, 0, 10]);
        b[16..20].copy_from_slice(&655_360u32.to_be_bytes());
        b
    }

    #[test]
    fn position_short_golden() {
        let bytes = short_bytes(BPEW);
        let p = Position {
            bpew: true,
            partition: 2,
            first_block: Some(1000),
            last_block: Some(990),
            blocks_in_buffer: Some(10),
            bytes_in_buffer: Some(655_360),
            ..Position::blank(ReadPositionForm::SHORT)
        };
        assert_eq!(Position::parse(ReadPositionForm::SHORT, &bytes).unwrap(), p);
        assert_eq!(p.emit(), bytes);
        for n in 0..bytes.len() {
            assert!(Position::parse(ReadPositionForm::SHORT, &bytes[..n]).is_err());
        }
        // Same layout for the vendor-specific short form.
        let v = Position::parse(ReadPositionForm::SHORT_VENDOR, &bytes).unwrap();
        assert_eq!(v.first_block, Some(1000));
        assert_eq!(v.emit(), bytes);
    }

    #[test]
    fn position_short_unknown_flags() {
        let bytes = short_bytes(BOP | LOLU);
        let p = Position::parse(ReadPositionForm::SHORT, &bytes).unwrap();
        assert!(p.bop && p.lolu);
        assert_eq!((p.first_block, p.last_block), (None, None));
        assert_eq!(p.blocks_in_buffer, Some(10));
        assert_eq!(p.bytes_in_buffer, Some(655_360));

        let p = Position::parse(ReadPositionForm::SHORT, &short_bytes(LOCU | BYCU)).unwrap();
        assert_eq!(p.first_block, Some(1000));
        assert_eq!((p.blocks_in_buffer, p.bytes_in_buffer), (None, None));

        // PERR: some field overflowed, so none of them is trusted.
        let p = Position::parse(ReadPositionForm::SHORT, &short_bytes(PERR)).unwrap();
        assert!(p.perr);
        assert_eq!(
            (
                p.first_block,
                p.last_block,
                p.blocks_in_buffer,
                p.bytes_in_buffer
            ),
            (None, None, None, None)
        );
        // Reserved bit 3 is ignored.
        let p = Position::parse(ReadPositionForm::SHORT, &short_bytes(0x08)).unwrap();
        assert_eq!(p.first_block, Some(1000));
        assert_eq!((p.file_number, p.set_number), (None, None));
    }

    #[test]
    fn position_tgt_short_form() {
        // tgt answers SA 0/1 with 14h and zeros: BYCU|LOLU.
        let mut bytes = [0u8; 20];
        bytes[0] = 0x14;
        let p = Position::parse(ReadPositionForm::SHORT, &bytes).unwrap();
        assert_eq!(
            p,
            Position {
                bycu: true,
                lolu: true,
                blocks_in_buffer: Some(0),
                ..Position::blank(ReadPositionForm::SHORT)
            }
        );
        assert!(!p.bop);
        assert_eq!(p.emit(), bytes);
        assert_eq!(p.to_string(), "partition 0 block ?");
    }

    #[test]
    fn position_tgt_long_form() {
        // tgt answers SA 6 with 20h and zeros. Bit 5 is reserved
        // in the long form, MPU=LONU=0: it reads as an exact position 0.
        let mut bytes = [0u8; 32];
        bytes[0] = 0x20;
        let p = Position::parse(ReadPositionForm::LONG, &bytes).unwrap();
        assert_eq!(
            p,
            Position {
                first_block: Some(0),
                file_number: Some(0),
                set_number: Some(0),
                ..Position::blank(ReadPositionForm::LONG)
            }
        );
        assert!(!p.bop && !p.locu && !p.bycu);
        // The reserved bit is not reproduced.
        assert_eq!(p.emit(), [0u8; 32]);
        assert_eq!(p.to_string(), "partition 0 block 0 file 0");
    }

    #[test]
    fn position_long_golden() {
        let mut bytes = [0u8; 32];
        bytes[0] = BOP | BPEW;
        bytes[4..8].copy_from_slice(&1u32.to_be_bytes());
        bytes[8..16].copy_from_slice(&0x1_0000_0000u64.to_be_bytes());
        bytes[16..24].copy_from_slice(&7u64.to_be_bytes());
        bytes[24..32].copy_from_slice(&2u64.to_be_bytes());
        let p = Position {
            bop: true,
            bpew: true,
            partition: 1,
            first_block: Some(0x1_0000_0000),
            file_number: Some(7),
            set_number: Some(2),
            ..Position::blank(ReadPositionForm::LONG)
        };
        assert_eq!(Position::parse(ReadPositionForm::LONG, &bytes).unwrap(), p);
        assert_eq!(p.emit(), bytes);
        for n in 0..bytes.len() {
            assert!(Position::parse(ReadPositionForm::LONG, &bytes[..n]).is_err());
        }

        let mut unknown = bytes;
        unknown[0] = MPU | LONU;
        let u = Position::parse(ReadPositionForm::LONG, &unknown).unwrap();
        assert!(u.mpu && u.lonu && !u.bop);
        assert_eq!(u.partition, 1);
        assert_eq!(
            (u.first_block, u.file_number, u.set_number),
            (None, None, None)
        );
    }

    #[test]
    fn position_extended_golden() {
        let mut bytes = [0u8; 32];
        bytes[0] = EOP;
        bytes[1] = 3;
        bytes[2..4].copy_from_slice(&[0, 0x1c]);
        bytes[5..8].copy_from_slice(&[0x01, 0x00, 0x00]);
        bytes[8..16].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        bytes[16..24].copy_from_slice(&0x0102_0304_0506_0700u64.to_be_bytes());
        bytes[24..32].copy_from_slice(&(1u64 << 33).to_be_bytes());
        let p = Position {
            eop: true,
            partition: 3,
            first_block: Some(0x0102_0304_0506_0708),
            last_block: Some(0x0102_0304_0506_0700),
            blocks_in_buffer: Some(0x01_0000),
            bytes_in_buffer: Some(1 << 33),
            ..Position::blank(ReadPositionForm::EXTENDED)
        };
        assert_eq!(
            Position::parse(ReadPositionForm::EXTENDED, &bytes).unwrap(),
            p
        );
        assert_eq!(p.emit(), bytes);
        for n in 0..bytes.len() {
            assert!(Position::parse(ReadPositionForm::EXTENDED, &bytes[..n]).is_err());
        }
        let mut unknown = bytes;
        unknown[0] = LOLU | LOCU | BYCU;
        let u = Position::parse(ReadPositionForm::EXTENDED, &unknown).unwrap();
        assert_eq!(
            (
                u.first_block,
                u.last_block,
                u.blocks_in_buffer,
                u.bytes_in_buffer
            ),
            (None, None, None, None)
        );
    }

    #[test]
    fn position_unknown_form() {
        assert!(Position::parse(ReadPositionForm(0x02), &[0u8; 64]).is_err());
        assert!(Position::blank(ReadPositionForm(0x1f)).emit().is_empty());
        assert_eq!(ReadPositionForm(0x02).data_len(), None);
    }

    const FORMS: [ReadPositionForm; 5] = [
        ReadPositionForm::SHORT,
        ReadPositionForm::SHORT_VENDOR,
        ReadPositionForm::LONG,
        ReadPositionForm::EXTENDED,
        ReadPositionForm(0x03),
    ];

    proptest! {
        #[test]
        fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..48)) {
            for form in FORMS {
                let _ = Position::parse(form, &buf);
            }
            let _ = BlockLimits::parse(&buf);
            let _ = Read6::parse(&buf);
            let _ = Write6::parse(&buf);
            let _ = WriteFilemarks6::parse(&buf);
            let _ = Space6::parse(&buf);
            let _ = Space16::parse(&buf);
            let _ = Rewind::parse(&buf);
            let _ = Erase::parse(&buf);
            let _ = ReadBlockLimits::parse(&buf);
            let _ = LoadUnload::parse(&buf);
            let _ = Locate10::parse(&buf);
            let _ = Locate16::parse(&buf);
            let _ = ReadPosition::parse(&buf);
        }

        /// parse -> emit -> parse is stable for every form and any bytes.
        #[test]
        fn position_round_trip(buf in proptest::collection::vec(any::<u8>(), 32..40)) {
            for form in &FORMS[..4] {
                let p = Position::parse(*form, &buf).unwrap();
                let again = Position::parse(*form, &p.emit()).unwrap();
                prop_assert_eq!(again, p);
            }
        }

        #[test]
        fn block_limits_round_trip(g in 0u8..32, max in 0u32..=MASK_24, min in any::<u16>()) {
            let l = BlockLimits { granularity: g, max_block_length: max, min_block_length: min };
            prop_assert_eq!(BlockLimits::parse(&l.to_vec()).unwrap(), l);
        }

        #[test]
        fn space_round_trip(code in 0u8..16, count in Space6::MIN_COUNT..=Space6::MAX_COUNT, c16 in any::<i64>()) {
            let s = Space6::new(SpaceCode(code), count).unwrap();
            prop_assert_eq!(Space6::parse(s.to_cdb().as_bytes()).unwrap(), s);
            let s16 = Space16::new(SpaceCode(code), c16);
            prop_assert_eq!(Space16::parse(s16.to_cdb().as_bytes()).unwrap(), s16);
        }

        #[test]
        fn read_write6_round_trip(fixed in any::<bool>(), sili in any::<bool>(), len in 0u32..=MASK_24) {
            let r = Read6 { fixed, sili, length: len };
            prop_assert_eq!(Read6::parse(r.to_cdb().as_bytes()).unwrap(), r);
            let w = Write6 { fixed, length: len };
            prop_assert_eq!(Write6::parse(w.to_cdb().as_bytes()).unwrap(), w);
        }

        #[test]
        fn locate_round_trip(immed in any::<bool>(), cp in any::<bool>(), bt in any::<bool>(),
                             dt in 0u8..8, part in any::<u8>(), id in any::<u64>()) {
            let l10 = Locate10 { immed, bt, cp, block: id as u32, partition: part };
            prop_assert_eq!(Locate10::parse(l10.to_cdb().as_bytes()).unwrap(), l10);
            let l16 = Locate16 { immed, cp, dest_type: dt, bam: bt, partition: part, logical_id: id };
            prop_assert_eq!(Locate16::parse(l16.to_cdb().as_bytes()).unwrap(), l16);
        }
    }
}
