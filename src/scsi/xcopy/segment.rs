//! Segment descriptors (SPC-4 6.4.6): what the copy manager moves, from
//! which CSCD to which. Known layouts are decoded; any other type keeps its
//! bytes and its own DESCRIPTOR LENGTH, so a list holding it still parses.

use std::fmt;

use serde::Serialize;

use crate::scsi::{be_uint, need, open_code, put_be, Lba, ParseError};

open_code! {
    /// DESCRIPTOR TYPE CODE of a segment descriptor (SPC-4 6.4.6.1,
    /// table 111).
    SegmentType(u8) {
        BLOCK_TO_STREAM = 0x00 => "block to stream",
        STREAM_TO_BLOCK = 0x01 => "stream to block",
        BLOCK_TO_BLOCK = 0x02 => "block to block",
        STREAM_TO_STREAM = 0x03 => "stream to stream",
        INLINE_TO_STREAM = 0x04 => "inline data to stream",
        EMBEDDED_TO_STREAM = 0x05 => "embedded data to stream",
        STREAM_TO_DISCARD = 0x06 => "stream to discard",
        VERIFY_CSCD = 0x07 => "verify CSCD",
        BLOCK_OFFSET_TO_STREAM = 0x08 => "block with offset to stream",
        STREAM_TO_BLOCK_OFFSET = 0x09 => "stream to block with offset",
        BLOCK_OFFSET_TO_BLOCK_OFFSET = 0x0a => "block with offset to block with offset",
        BLOCK_TO_STREAM_HOLD = 0x0b => "block to stream, hold data",
        STREAM_TO_BLOCK_HOLD = 0x0c => "stream to block, hold data",
        BLOCK_TO_BLOCK_HOLD = 0x0d => "block to block, hold data",
        STREAM_TO_STREAM_HOLD = 0x0e => "stream to stream, hold data",
        READ_STREAM_HOLD = 0x0f => "read stream, hold data",
        WRITE_FILEMARKS = 0x10 => "write filemarks",
        SPACE = 0x11 => "space",
        LOCATE = 0x12 => "locate",
        TAPE_IMAGE_COPY = 0x13 => "tape image copy",
        REGISTER_KEY = 0x14 => "register persistent reservation key",
        THIRD_PARTY_PR_SOURCE = 0x15 => "third party persistent reservations source I_T nexus",
    }
}

/// Byte offsets of segment descriptor fields a copy manager points at
/// (SPC-4 6.4.6); which apply depends on the type.
pub mod seg_field {
    pub const SOURCE_CSCD: usize = 4;
    pub const DESTINATION_CSCD: usize = 6;
    /// 10h-12h: byte 8 (WSMK/IMMED, SPACE code; LOCATE's identifier).
    pub const BYTE_8: usize = 8;
    /// 00h, 01h, 04h, 06h: STREAM DEVICE TRANSFER LENGTH, bytes 9..12.
    pub const STREAM_LEN: usize = 9;
    /// 02h: BLOCK DEVICE NUMBER OF BLOCKS, bytes 10..12.
    pub const B2B_BLOCKS: usize = 10;
    /// 00h, 01h: BLOCK DEVICE NUMBER OF BLOCKS, bytes 14..16.
    pub const STREAM_BLOCKS: usize = 14;
    /// 00h, 01h: BLOCK DEVICE LOGICAL BLOCK ADDRESS, bytes 16..24.
    pub const STREAM_LBA: usize = 16;
    /// 02h, 0Ah: SOURCE (bytes 12..20) and DESTINATION (20..28) LBA.
    pub const SOURCE_LBA: usize = 12;
    pub const DESTINATION_LBA: usize = 20;
    /// 0Ah: NUMBER OF BYTES, bytes 8..12.
    pub const OFFSET_BYTES: usize = 8;
    /// 04h: INLINE DATA NUMBER OF BYTES, bytes 12..16; 06h: BYTE COUNT.
    pub const BYTES_12: usize = 12;
}

/// A 16-bit CSCD DESCRIPTOR ID: an index into the CSCD list.
pub type CscdIndex = u16;

/// The body of a segment descriptor, by type.
///
/// Byte offsets below are within the descriptor. The layouts of 00h-02h
/// are confirmed by several implementations; 03h, 04h, 06h and 10h-12h
/// follow the SPC-4 tables (SPC-4 6.4.6) (no copy
/// manager implements them), so check them against the standard's text
/// before relying on them with a real data router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// 00h (SPC-4 6.4.6.3), 24 bytes: read `blocks` blocks from `lba` of
    /// `src` and write them to the stream device `dst`, in transfers of
    /// `stream_len` (24 bits; fixed blocks or bytes by the CSCD's FIXED).
    BlockToStream {
        src: CscdIndex,
        dst: CscdIndex,
        stream_len: u32,
        blocks: u16,
        lba: Lba,
    },
    /// 01h (SPC-4 6.4.6.3), 24 bytes: the reverse of 00h.
    StreamToBlock {
        src: CscdIndex,
        dst: CscdIndex,
        stream_len: u32,
        blocks: u16,
        lba: Lba,
    },
    /// 02h (SPC-4 6.4.6.4), 28 bytes: `blocks` blocks (source blocks, or
    /// destination blocks with DC) from `src_lba` to `dst_lba`. The only
    /// type LIO, tcmu-runner and SCST carry out.
    BlockToBlock {
        src: CscdIndex,
        dst: CscdIndex,
        blocks: u16,
        src_lba: Lba,
        dst_lba: Lba,
    },
    /// 0Ah (SPC-4 6.4.6.12), 32 bytes: `byte_count` bytes from byte
    /// `src_offset` of block `src_lba` to byte `dst_offset` of block
    /// `dst_lba`. Both LBAs are 64 bits, both offsets 16.
    BlockOffsetToBlockOffset {
        src: CscdIndex,
        dst: CscdIndex,
        byte_count: u32,
        src_lba: Lba,
        dst_lba: Lba,
        src_offset: u16,
        dst_offset: u16,
    },
    /// 03h (SPC-4 6.4.6.5), 20 bytes: `byte_count` bytes from one stream
    /// device to another, each side with its own transfer length (24 bits).
    StreamToStream {
        src: CscdIndex,
        dst: CscdIndex,
        src_stream_len: u32,
        dst_stream_len: u32,
        byte_count: u32,
    },
    /// 04h (SPC-4 6.4.6.6), 24 bytes: `inline_len` bytes of the parameter
    /// list's inline data, from `inline_offset`, to stream device `dst`.
    InlineToStream {
        dst: CscdIndex,
        stream_len: u32,
        inline_len: u32,
        inline_offset: u64,
    },
    /// 06h (SPC-4 6.4.6.8), 16 bytes: read `byte_count` bytes from stream
    /// device `src` and throw them away.
    StreamToDiscard {
        src: CscdIndex,
        stream_len: u32,
        byte_count: u32,
    },
    /// 10h (SPC-4 6.4.6.15), 12 bytes: WRITE FILEMARKS on `dst`; byte 8
    /// mirrors WRITE FILEMARKS(6) byte 1 (WSMK, IMMED), `count` is 24 bits.
    WriteFilemarks {
        dst: CscdIndex,
        wsmk: bool,
        immed: bool,
        count: u32,
    },
    /// 11h (SPC-4 6.4.6.16), 12 bytes: SPACE on `dst`; CODE as in SPACE(6)
    /// (byte 8 bits 2..0), signed 24-bit `count`.
    Space {
        dst: CscdIndex,
        code: u8,
        count: i32,
    },
    /// 12h (SPC-4 6.4.6.17), 12 bytes: LOCATE `dst` to logical object
    /// (block) `object_id`.
    Locate { dst: CscdIndex, object_id: u32 },
    /// Any other type: bytes 4.. as sent (DESCRIPTOR LENGTH of them).
    Other {
        descriptor_type: SegmentType,
        #[serde(serialize_with = "crate::scsi::spc::ser_hex")]
        body: Vec<u8>,
    },
}

/// One segment descriptor (SPC-4 6.4.6.1, table 110).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// CAT, byte 1 bit 0: what to do with residual data (SPC-4 6.4.6.1).
    pub cat: bool,
    /// DC, byte 1 bit 1: the 02h block count is in destination blocks.
    /// Reserved in the other types; kept as sent.
    pub dc: bool,
    pub kind: SegmentKind,
}

bitflags::bitflags! {
    /// Byte 1 of every segment descriptor (SPC-4 6.4.6.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct SegmentFlags: u8 {
        /// Residual data is kept for the next segment (CAT).
        const CAT = 0x01;
        /// The 02h block count is in destination blocks (DC).
        const DC = 0x02;
    }
}

bitflags::bitflags! {
    /// Byte 8 of a 10h WRITE FILEMARKS segment (SPC-4 6.4.6.15).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FilemarkFlags: u8 {
        const IMMED = 0x01;
        const WSMK = 0x02;
    }
}

const WHAT: &str = "segment descriptor";

/// Largest value of a 24-bit transfer length.
const MAX_24: u32 = 0x00ff_ffff;

impl Segment {
    /// CAT and DC as byte 1 holds them.
    pub fn flags(&self) -> SegmentFlags {
        let mut f = SegmentFlags::empty();
        f.set(SegmentFlags::CAT, self.cat);
        f.set(SegmentFlags::DC, self.dc);
        f
    }

    /// A plain 02h block to block segment, CAT and DC off.
    pub fn block_to_block(
        src: CscdIndex,
        dst: CscdIndex,
        blocks: u16,
        src_lba: Lba,
        dst_lba: Lba,
    ) -> Self {
        Segment {
            cat: false,
            dc: false,
            kind: SegmentKind::BlockToBlock {
                src,
                dst,
                blocks,
                src_lba,
                dst_lba,
            },
        }
    }

    pub fn segment_type(&self) -> SegmentType {
        match &self.kind {
            SegmentKind::BlockToStream { .. } => SegmentType::BLOCK_TO_STREAM,
            SegmentKind::StreamToBlock { .. } => SegmentType::STREAM_TO_BLOCK,
            SegmentKind::BlockToBlock { .. } => SegmentType::BLOCK_TO_BLOCK,
            SegmentKind::StreamToStream { .. } => SegmentType::STREAM_TO_STREAM,
            SegmentKind::BlockOffsetToBlockOffset { .. } => {
                SegmentType::BLOCK_OFFSET_TO_BLOCK_OFFSET
            }
            SegmentKind::InlineToStream { .. } => SegmentType::INLINE_TO_STREAM,
            SegmentKind::StreamToDiscard { .. } => SegmentType::STREAM_TO_DISCARD,
            SegmentKind::WriteFilemarks { .. } => SegmentType::WRITE_FILEMARKS,
            SegmentKind::Space { .. } => SegmentType::SPACE,
            SegmentKind::Locate { .. } => SegmentType::LOCATE,
            SegmentKind::Other {
                descriptor_type, ..
            } => *descriptor_type,
        }
    }

    /// The whole descriptor's length for a type this crate decodes
    /// (DESCRIPTOR LENGTH + 4).
    pub fn known_len(t: SegmentType) -> Option<usize> {
        Some(match t {
            SegmentType::BLOCK_TO_STREAM | SegmentType::STREAM_TO_BLOCK => 24,
            SegmentType::BLOCK_TO_BLOCK => 28,
            SegmentType::BLOCK_OFFSET_TO_BLOCK_OFFSET => 32,
            SegmentType::STREAM_TO_STREAM => 20,
            SegmentType::INLINE_TO_STREAM => 24,
            SegmentType::STREAM_TO_DISCARD => 16,
            SegmentType::WRITE_FILEMARKS | SegmentType::SPACE | SegmentType::LOCATE => 12,
            _ => return None,
        })
    }

    /// The CSCD indexes this segment names (source, destination).
    pub fn cscd_indexes(&self) -> (Option<CscdIndex>, Option<CscdIndex>) {
        match self.kind {
            SegmentKind::BlockToStream { src, dst, .. }
            | SegmentKind::StreamToBlock { src, dst, .. }
            | SegmentKind::BlockToBlock { src, dst, .. }
            | SegmentKind::BlockOffsetToBlockOffset { src, dst, .. }
            | SegmentKind::StreamToStream { src, dst, .. } => (Some(src), Some(dst)),
            SegmentKind::StreamToDiscard { src, .. } => (Some(src), None),
            SegmentKind::InlineToStream { dst, .. }
            | SegmentKind::WriteFilemarks { dst, .. }
            | SegmentKind::Space { dst, .. }
            | SegmentKind::Locate { dst, .. } => (None, Some(dst)),
            SegmentKind::Other { .. } => (None, None),
        }
    }

    /// Field widths [`Segment::emit`] would otherwise cut: 24-bit lengths
    /// and counts, the SPACE code, a raw body over 65535 bytes or a raw
    /// body under a type this crate decodes.
    pub fn check(&self) -> Result<(), ParseError> {
        let wide = |name: &str, v: u32| {
            if v > MAX_24 {
                Err(ParseError::invalid(
                    WHAT,
                    format!("{name} {v} exceeds 24 bits"),
                ))
            } else {
                Ok(())
            }
        };
        match &self.kind {
            SegmentKind::BlockToStream { stream_len, .. }
            | SegmentKind::StreamToBlock { stream_len, .. }
            | SegmentKind::InlineToStream { stream_len, .. }
            | SegmentKind::StreamToDiscard { stream_len, .. } => {
                wide("STREAM DEVICE TRANSFER LENGTH", *stream_len)
            }
            SegmentKind::StreamToStream {
                src_stream_len,
                dst_stream_len,
                ..
            } => {
                wide("SOURCE STREAM DEVICE TRANSFER LENGTH", *src_stream_len)?;
                wide("DESTINATION STREAM DEVICE TRANSFER LENGTH", *dst_stream_len)
            }
            SegmentKind::WriteFilemarks { count, .. } => wide("TRANSFER LENGTH", *count),
            SegmentKind::Space { code, count, .. } => {
                if *code > 7 {
                    return Err(ParseError::invalid(WHAT, "SPACE code exceeds 3 bits"));
                }
                if !(-0x80_0000..=0x7f_ffff).contains(count) {
                    return Err(ParseError::invalid(
                        WHAT,
                        format!("SPACE count {count} exceeds 24 bits"),
                    ));
                }
                Ok(())
            }
            SegmentKind::Other {
                descriptor_type,
                body,
            } => {
                if Self::known_len(*descriptor_type).is_some() {
                    return Err(ParseError::invalid(
                        WHAT,
                        format!("raw body under known type {descriptor_type}"),
                    ));
                }
                if body.len() > 0xffff {
                    return Err(ParseError::invalid(WHAT, "body exceeds 65535 bytes"));
                }
                Ok(())
            }
            SegmentKind::BlockToBlock { .. }
            | SegmentKind::BlockOffsetToBlockOffset { .. }
            | SegmentKind::Locate { .. } => Ok(()),
        }
    }

    pub fn buffer_len(&self) -> usize {
        match &self.kind {
            SegmentKind::Other { body, .. } => 4 + body.len().min(0xffff),
            _ => Self::known_len(self.segment_type()).unwrap_or(4),
        }
    }

    /// Write `buffer_len()` bytes (fields cut to their width: see
    /// [`Segment::check`]). Panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let n = self.buffer_len();
        let b = &mut buf[..n];
        b.fill(0);
        b[0] = self.segment_type().0;
        b[1] = self.flags().bits();
        put_be(&mut b[2..4], (n - 4) as u64);
        emit_fields(&self.kind, b);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Decode one segment descriptor from the front of `buf`; returns it and
    /// its length (DESCRIPTOR LENGTH + 4). A known type with another
    /// DESCRIPTOR LENGTH is invalid at byte 2 (LIO answers 26/00 to that);
    /// an unknown type is kept raw.
    pub fn parse(buf: &[u8]) -> Result<(Segment, usize), ParseError> {
        need(WHAT, buf, 4)?;
        let t = SegmentType(buf[0]);
        let n = 4 + be_uint(&buf[2..4]) as usize;
        need(WHAT, buf, n)?;
        let b = &buf[..n];
        let kind = match Self::known_len(t) {
            None => SegmentKind::Other {
                descriptor_type: t,
                body: b[4..].to_vec(),
            },
            Some(want) if want != n => {
                return Err(ParseError::invalid_at(
                    WHAT,
                    format!(
                        "type {:#04x} has DESCRIPTOR LENGTH {}, expected {}",
                        t.0,
                        n - 4,
                        want - 4
                    ),
                    2,
                    None,
                ))
            }
            Some(_) => decode_known(t, b),
        };
        let f = SegmentFlags::from_bits_truncate(b[1]);
        let (cat, dc) = (f.contains(SegmentFlags::CAT), f.contains(SegmentFlags::DC));
        Ok((Segment { cat, dc, kind }, n))
    }
}

/// The fields after the 4-byte header of [`Segment::emit`].
fn emit_fields(kind: &SegmentKind, b: &mut [u8]) {
    let mut put = |range: std::ops::Range<usize>, v: u64| put_be(&mut b[range], v);
    match *kind {
        // SPC-4 6.4.6.3, table 115.
        SegmentKind::BlockToStream {
            src,
            dst,
            stream_len,
            blocks,
            lba,
        }
        | SegmentKind::StreamToBlock {
            src,
            dst,
            stream_len,
            blocks,
            lba,
        } => {
            put(4..6, src as u64);
            put(6..8, dst as u64);
            put(9..12, stream_len as u64);
            put(14..16, blocks as u64);
            put(16..24, lba.0);
        }
        // SPC-4 6.4.6.4, table 116.
        SegmentKind::BlockToBlock {
            src,
            dst,
            blocks,
            src_lba,
            dst_lba,
        } => {
            put(4..6, src as u64);
            put(6..8, dst as u64);
            put(10..12, blocks as u64);
            put(12..20, src_lba.0);
            put(20..28, dst_lba.0);
        }
        // SPC-4 6.4.6.12.
        SegmentKind::BlockOffsetToBlockOffset {
            src,
            dst,
            byte_count,
            src_lba,
            dst_lba,
            src_offset,
            dst_offset,
        } => {
            put(4..6, src as u64);
            put(6..8, dst as u64);
            put(8..12, byte_count as u64);
            put(12..20, src_lba.0);
            put(20..28, dst_lba.0);
            put(28..30, src_offset as u64);
            put(30..32, dst_offset as u64);
        }
        _ => emit_stream_fields(kind, b),
    }
}

/// The stream-only and tape-positioning types of [`emit_fields`].
fn emit_stream_fields(kind: &SegmentKind, b: &mut [u8]) {
    let n = b.len();
    let mut put = |range: std::ops::Range<usize>, v: u64| put_be(&mut b[range], v);
    match *kind {
        // SPC-4 6.4.6.5.
        SegmentKind::StreamToStream {
            src,
            dst,
            src_stream_len,
            dst_stream_len,
            byte_count,
        } => {
            put(4..6, src as u64);
            put(6..8, dst as u64);
            put(9..12, src_stream_len as u64);
            put(13..16, dst_stream_len as u64);
            put(16..20, byte_count as u64);
        }
        // SPC-4 6.4.6.6.
        SegmentKind::InlineToStream {
            dst,
            stream_len,
            inline_len,
            inline_offset,
        } => {
            put(6..8, dst as u64);
            put(9..12, stream_len as u64);
            put(12..16, inline_len as u64);
            put(16..24, inline_offset);
        }
        // SPC-4 6.4.6.8.
        SegmentKind::StreamToDiscard {
            src,
            stream_len,
            byte_count,
        } => {
            put(4..6, src as u64);
            put(9..12, stream_len as u64);
            put(12..16, byte_count as u64);
        }
        // SPC-4 6.4.6.15.
        SegmentKind::WriteFilemarks {
            dst,
            wsmk,
            immed,
            count,
        } => {
            put(6..8, dst as u64);
            let mut f = FilemarkFlags::empty();
            f.set(FilemarkFlags::WSMK, wsmk);
            f.set(FilemarkFlags::IMMED, immed);
            put(8..9, f.bits() as u64);
            put(9..12, count as u64);
        }
        // SPC-4 6.4.6.16.
        SegmentKind::Space { dst, code, count } => {
            put(6..8, dst as u64);
            put(8..9, (code & 7) as u64);
            put(9..12, count as u32 as u64);
        }
        // SPC-4 6.4.6.17.
        SegmentKind::Locate { dst, object_id } => {
            put(6..8, dst as u64);
            put(8..12, object_id as u64);
        }
        SegmentKind::Other { ref body, .. } => {
            let len = n - 4;
            b[4..].copy_from_slice(&body[..len]);
        }
        _ => {}
    }
}

/// The body of a segment of a type [`Segment::known_len`] knows, whose
/// length `b` has been checked to be.
fn decode_known(t: SegmentType, b: &[u8]) -> SegmentKind {
    let u = |r: std::ops::Range<usize>| be_uint(&b[r]);
    let (src, dst) = (u(4..6) as u16, u(6..8) as u16);
    match t {
        SegmentType::BLOCK_TO_STREAM | SegmentType::STREAM_TO_BLOCK => {
            let stream_len = u(9..12) as u32;
            let (blocks, lba) = (u(14..16) as u16, Lba(u(16..24)));
            if t == SegmentType::BLOCK_TO_STREAM {
                SegmentKind::BlockToStream {
                    src,
                    dst,
                    stream_len,
                    blocks,
                    lba,
                }
            } else {
                SegmentKind::StreamToBlock {
                    src,
                    dst,
                    stream_len,
                    blocks,
                    lba,
                }
            }
        }
        SegmentType::BLOCK_TO_BLOCK => SegmentKind::BlockToBlock {
            src,
            dst,
            blocks: u(10..12) as u16,
            src_lba: Lba(u(12..20)),
            dst_lba: Lba(u(20..28)),
        },
        SegmentType::BLOCK_OFFSET_TO_BLOCK_OFFSET => SegmentKind::BlockOffsetToBlockOffset {
            src,
            dst,
            byte_count: u(8..12) as u32,
            src_lba: Lba(u(12..20)),
            dst_lba: Lba(u(20..28)),
            src_offset: u(28..30) as u16,
            dst_offset: u(30..32) as u16,
        },
        _ => decode_stream_ops(t, b, src, dst),
    }
}

/// The stream-only and tape-positioning types of [`decode_known`].
fn decode_stream_ops(t: SegmentType, b: &[u8], src: u16, dst: u16) -> SegmentKind {
    let u = |r: std::ops::Range<usize>| be_uint(&b[r]);
    match t {
        SegmentType::STREAM_TO_STREAM => SegmentKind::StreamToStream {
            src,
            dst,
            src_stream_len: u(9..12) as u32,
            dst_stream_len: u(13..16) as u32,
            byte_count: u(16..20) as u32,
        },
        SegmentType::INLINE_TO_STREAM => SegmentKind::InlineToStream {
            dst,
            stream_len: u(9..12) as u32,
            inline_len: u(12..16) as u32,
            inline_offset: u(16..24),
        },
        SegmentType::STREAM_TO_DISCARD => SegmentKind::StreamToDiscard {
            src,
            stream_len: u(9..12) as u32,
            byte_count: u(12..16) as u32,
        },
        SegmentType::WRITE_FILEMARKS => SegmentKind::WriteFilemarks {
            dst,
            wsmk: FilemarkFlags::from_bits_truncate(b[8]).contains(FilemarkFlags::WSMK),
            immed: FilemarkFlags::from_bits_truncate(b[8]).contains(FilemarkFlags::IMMED),
            count: u(9..12) as u32,
        },
        SegmentType::SPACE => SegmentKind::Space {
            dst,
            code: b[8] & 0x07,
            // Sign-extend the 24-bit COUNT.
            count: ((u(9..12) as u32) << 8) as i32 >> 8,
        },
        _ => SegmentKind::Locate {
            dst,
            object_id: u(8..12) as u32,
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The one segment LIO runs: 02h, 2048 blocks from LBA 0 of CSCD 0 to
    /// LBA 0x1000 of CSCD 1.
    pub(crate) const B2B: [u8; 28] = [
        0x02, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x00,
    ];

    #[test]
    fn block_to_block_golden() {
        let s = Segment::block_to_block(0, 1, 2048, Lba(0), Lba(0x1000));
        assert_eq!(s.to_vec(), B2B);
        assert_eq!(Segment::parse(&B2B).unwrap(), (s.clone(), 28));
        assert_eq!(s.cscd_indexes(), (Some(0), Some(1)));
        for n in 0..28 {
            assert!(matches!(
                Segment::parse(&B2B[..n]),
                Err(ParseError::Truncated { .. })
            ));
        }
        // DC and CAT, and a wrong DESCRIPTOR LENGTH for 02h.
        let mut raw = B2B;
        raw[1] = 0x03;
        let (s2, _) = Segment::parse(&raw).unwrap();
        assert!(s2.cat && s2.dc);
        let mut raw = B2B.to_vec();
        raw[3] = 0x1c;
        raw.extend_from_slice(&[0; 4]);
        assert!(matches!(
            Segment::parse(&raw),
            Err(ParseError::Invalid { .. })
        ));
    }

    /// 0Ah with a source LBA above 2^32: all 64 bits of both LBAs and
    /// both 16-bit offsets come back.
    #[test]
    fn block_offset_golden() {
        let mut raw = vec![
            0x0a, 0x01, 0x00, 0x1c, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x02, 0xbc,
        ];
        raw.extend_from_slice(&0x0000_0001_0000_0004u64.to_be_bytes());
        raw.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        raw.extend_from_slice(&[0x01, 0xff, 0x00, 0x05]);
        golden(
            Segment {
                cat: true,
                dc: false,
                kind: SegmentKind::BlockOffsetToBlockOffset {
                    src: 2,
                    dst: 3,
                    byte_count: 700,
                    src_lba: Lba(0x1_0000_0004),
                    dst_lba: Lba(0x0102_0304_0506_0708),
                    src_offset: 0x1ff,
                    dst_offset: 5,
                },
            },
            &raw,
        );
        // A 0Ah of 28 bytes is invalid at its DESCRIPTOR LENGTH.
        let mut short = raw[..28].to_vec();
        short[3] = 0x18;
        let e = Segment::parse(&short).unwrap_err();
        assert_eq!(e.at(), Some(crate::scsi::FieldAt { byte: 2, bit: None }));
    }

    fn golden(s: Segment, raw: &[u8]) {
        s.check().unwrap();
        assert_eq!(s.to_vec(), raw, "{:?}", s.segment_type());
        assert_eq!(Segment::parse(raw).unwrap(), (s, raw.len()));
        assert!(Segment::parse(&raw[..raw.len() - 1]).is_err());
    }

    #[test]
    fn stream_segments_golden() {
        golden(
            Segment {
                cat: true,
                dc: false,
                kind: SegmentKind::BlockToStream {
                    src: 0,
                    dst: 1,
                    stream_len: 0x010000,
                    blocks: 128,
                    lba: Lba(0x1_0000_0000),
                },
            },
            &[
                0x00, 0x01, 0x00, 0x14, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x80, 0, 0, 0, 0x01, 0, 0, 0, 0,
            ],
        );
        golden(
            Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::StreamToBlock {
                    src: 1,
                    dst: 0,
                    stream_len: 512,
                    blocks: 0xffff,
                    lba: Lba(7),
                },
            },
            &[
                0x01, 0x00, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
                0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x07,
            ],
        );
        golden(
            Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::StreamToStream {
                    src: 1,
                    dst: 2,
                    src_stream_len: 0x8000,
                    dst_stream_len: 0x10000,
                    byte_count: 0x0010_0000,
                },
            },
            &[
                0x03, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x80, 0x00, 0x00, 0x01,
                0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
            ],
        );
        golden(
            Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::InlineToStream {
                    dst: 1,
                    stream_len: 80,
                    inline_len: 80,
                    inline_offset: 16,
                },
            },
            &[
                0x04, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x50, 0x00, 0x00,
                0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ],
        );
        golden(
            Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::StreamToDiscard {
                    src: 3,
                    stream_len: 0,
                    byte_count: 0x1234_5678,
                },
            },
            &[
                0x06, 0x00, 0x00, 0x0c, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34,
                0x56, 0x78,
            ],
        );
    }

    #[test]
    fn tape_positioning_golden() {
        golden(
            Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::WriteFilemarks {
                    dst: 1,
                    wsmk: false,
                    immed: true,
                    count: 2,
                },
            },
            &[
                0x10, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x02,
            ],
        );
        // SPACE back over one filemark: code 1, count -1.
        golden(
            Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::Space {
                    dst: 1,
                    code: 1,
                    count: -1,
                },
            },
            &[
                0x11, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x01, 0xff, 0xff, 0xff,
            ],
        );
        golden(
            Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::Space {
                    dst: 0,
                    code: 3,
                    count: 0x7f_ffff,
                },
            },
            &[
                0x11, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x03, 0x7f, 0xff, 0xff,
            ],
        );
        golden(
            Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::Locate {
                    dst: 2,
                    object_id: 0xdead_beef,
                },
            },
            &[
                0x12, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x02, 0xde, 0xad, 0xbe, 0xef,
            ],
        );
    }

    #[test]
    fn unknown_types_keep_their_length() {
        // 0Ah (block with offset), 32 bytes, and a vendor type with no body.
        let mut raw = vec![0x0a, 0x00, 0x00, 0x1c];
        raw.extend((0u8..28).collect::<Vec<_>>());
        let (s, n) = Segment::parse(&raw).unwrap();
        assert_eq!(n, 32);
        assert_eq!(s.segment_type(), SegmentType::BLOCK_OFFSET_TO_BLOCK_OFFSET);
        assert_eq!(s.to_vec(), raw);
        s.check().unwrap();
        let (s, n) = Segment::parse(&[0xc0, 0x01, 0x00, 0x00, 0xff]).unwrap();
        assert_eq!(n, 4);
        assert!(s.cat);
        assert_eq!(s.cscd_indexes(), (None, None));
        assert_eq!(
            s.kind,
            SegmentKind::Other {
                descriptor_type: SegmentType(0xc0),
                body: vec![]
            }
        );
        // A raw body under a decoded type is refused by check().
        let bad = Segment {
            cat: false,
            dc: false,
            kind: SegmentKind::Other {
                descriptor_type: SegmentType::BLOCK_TO_BLOCK,
                body: vec![0; 24],
            },
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn check_catches_wide_fields() {
        let mut s = Segment {
            cat: false,
            dc: false,
            kind: SegmentKind::Space {
                dst: 0,
                code: 1,
                count: -0x80_0001,
            },
        };
        assert!(s.check().is_err());
        s.kind = SegmentKind::WriteFilemarks {
            dst: 0,
            wsmk: false,
            immed: false,
            count: 1 << 24,
        };
        assert!(s.check().is_err());
        s.kind = SegmentKind::StreamToStream {
            src: 0,
            dst: 1,
            src_stream_len: 1,
            dst_stream_len: 1 << 24,
            byte_count: 0,
        };
        assert!(s.check().is_err());
    }

    pub(crate) fn any_segment() -> impl Strategy<Value = Segment> {
        let l24 = 0..=MAX_24;
        let kind = prop_oneof![
            (
                any::<u16>(),
                any::<u16>(),
                l24.clone(),
                any::<u16>(),
                any::<u64>()
            )
                .prop_map(|(src, dst, stream_len, blocks, lba)| {
                    SegmentKind::BlockToStream {
                        src,
                        dst,
                        stream_len,
                        blocks,
                        lba: Lba(lba),
                    }
                }),
            (
                any::<u16>(),
                any::<u16>(),
                l24.clone(),
                any::<u16>(),
                any::<u64>()
            )
                .prop_map(|(src, dst, stream_len, blocks, lba)| {
                    SegmentKind::StreamToBlock {
                        src,
                        dst,
                        stream_len,
                        blocks,
                        lba: Lba(lba),
                    }
                }),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(|(src, dst, blocks, s, d)| SegmentKind::BlockToBlock {
                    src,
                    dst,
                    blocks,
                    src_lba: Lba(s),
                    dst_lba: Lba(d)
                }),
            (
                any::<u16>(),
                any::<u16>(),
                l24.clone(),
                l24.clone(),
                any::<u32>()
            )
                .prop_map(|(src, dst, a, b, byte_count)| SegmentKind::StreamToStream {
                    src,
                    dst,
                    src_stream_len: a,
                    dst_stream_len: b,
                    byte_count
                }),
            (any::<u16>(), l24.clone(), any::<u32>(), any::<u64>()).prop_map(
                |(dst, stream_len, inline_len, inline_offset)| SegmentKind::InlineToStream {
                    dst,
                    stream_len,
                    inline_len,
                    inline_offset
                }
            ),
            (any::<u16>(), l24.clone(), any::<u32>()).prop_map(|(src, stream_len, byte_count)| {
                SegmentKind::StreamToDiscard {
                    src,
                    stream_len,
                    byte_count,
                }
            }),
            (any::<u16>(), any::<bool>(), any::<bool>(), l24).prop_map(
                |(dst, wsmk, immed, count)| SegmentKind::WriteFilemarks {
                    dst,
                    wsmk,
                    immed,
                    count
                }
            ),
            (any::<u16>(), 0u8..8, -0x80_0000i32..=0x7f_ffff)
                .prop_map(|(dst, code, count)| SegmentKind::Space { dst, code, count }),
            (any::<u16>(), any::<u32>())
                .prop_map(|(dst, object_id)| SegmentKind::Locate { dst, object_id }),
            (
                (any::<u16>(), any::<u16>(), any::<u32>()),
                (any::<u64>(), any::<u64>(), any::<u16>(), any::<u16>())
            )
                .prop_map(|((src, dst, byte_count), (s, d, so, doff))| {
                    SegmentKind::BlockOffsetToBlockOffset {
                        src,
                        dst,
                        byte_count,
                        src_lba: Lba(s),
                        dst_lba: Lba(d),
                        src_offset: so,
                        dst_offset: doff,
                    }
                }),
            (0x13u8..0xff, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, body)| {
                SegmentKind::Other {
                    descriptor_type: SegmentType(t),
                    body,
                }
            }),
        ];
        (any::<bool>(), any::<bool>(), kind).prop_map(|(cat, dc, kind)| Segment { cat, dc, kind })
    }

    proptest! {
        #[test]
        fn segment_round_trip(s in any_segment()) {
            s.check().unwrap();
            let b = s.to_vec();
            prop_assert_eq!(Segment::parse(&b).unwrap(), (s, b.len()));
        }

        #[test]
        fn segment_parse_never_panics(buf in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((s, n)) = Segment::parse(&buf) {
                prop_assert!(n <= buf.len());
                prop_assert_eq!(Segment::parse(&s.to_vec()).unwrap().0, s);
            }
        }
    }
}
