//! Checking an EXTENDED COPY(LID1) parameter list against the limits,
//! the copy rights and the backends before any data moves, and turning it
//! into steps.
//!
//! The list is decoded once, by the codec ([`XcopyParams::parse_located`]);
//! every refusal points at the byte at fault, from the codec's error
//! offsets for malformed bytes and from its descriptor offsets and field
//! constants for values this copy manager does not accept.

use std::collections::HashMap;

use crate::scsi::sense::Asc;
use crate::scsi::spc::Designator;
use crate::scsi::xcopy::{
    cscd_field, header_field, is_block_type, list_id_usage, seg_field, CopyEnd, Cscd, CscdType,
    DeviceParams, ListLayout, Segment, SegmentKind, XcopyHeader, XcopyParams,
};
use crate::scsi::{DeviceType, ParseError};

use super::acl::Use;
use super::sense::{Abort, Refusal};
use super::RouterLimits;

/// Where a CSCD leads: the router's own disk or a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum End {
    Own,
    Backend(usize),
}

/// What the resolver knows of a copy source or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetInfo {
    pub end: End,
    pub device_type: DeviceType,
    pub block_size: Option<u32>,
    /// Disks: capacity in blocks, when known.
    pub blocks: Option<u64>,
    pub tape_block_len: Option<u32>,
    pub locate: Option<bool>,
}

/// A resolved CSCD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub end: End,
    /// Logical block length (block devices only).
    pub block_size: u32,
    /// Capacity in blocks, when known (block devices only).
    pub blocks: Option<u64>,
    /// Tapes: LOCATE support as probed (`None`: unknown, try it).
    pub locate: Option<bool>,
}

/// One segment, decoded and checked. CSCD indexes are into
/// [`Plan::targets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    BlockToStream {
        src: usize,
        dst: usize,
        lba: u64,
        bytes: u64,
        stream_len: u32,
    },
    StreamToBlock {
        src: usize,
        dst: usize,
        lba: u64,
        bytes: u64,
        stream_len: u32,
    },
    /// 02h and 0Ah: `bytes` from byte address `src_byte` to `dst_byte`.
    BlockToBlock {
        src: usize,
        dst: usize,
        src_byte: u64,
        dst_byte: u64,
        bytes: u64,
    },
    Inline {
        dst: usize,
        stream_len: u32,
        start: usize,
        len: usize,
    },
    Discard {
        src: usize,
        stream_len: u32,
        bytes: u64,
    },
    Filemarks {
        dst: usize,
        count: u32,
    },
    Space {
        dst: usize,
        code: u8,
        count: i32,
    },
    Locate {
        dst: usize,
        block: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub op: Op,
    pub cat: bool,
    /// Byte offset of the segment descriptor in the parameter list.
    pub offset: usize,
}

/// A parameter list that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub list_id: u8,
    pub usage: u8,
    /// One entry per CSCD; `None` for CSCDs no segment uses.
    pub targets: Vec<Option<Target>>,
    pub steps: Vec<Step>,
    pub inline: Vec<u8>,
    /// Stream blocks the copy writes at most (for the held CRC32Cs).
    pub stream_blocks: u64,
}

/// Why a list is not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanError {
    Refuse(Refusal),
    Abort(Abort),
}

impl From<Refusal> for PlanError {
    fn from(r: Refusal) -> Self {
        PlanError::Refuse(r)
    }
}

impl From<Abort> for PlanError {
    fn from(a: Abort) -> Self {
        PlanError::Abort(a)
    }
}

/// Segment types this copy manager carries out (RECEIVE COPY RESULTS 03h
/// lists them, with the E4h CSCD type).
pub(crate) const SEGMENT_TYPES: [u8; 9] = [0x00, 0x01, 0x02, 0x04, 0x06, 0x0a, 0x10, 0x11, 0x12];

fn param(asc: Asc, field: usize) -> PlanError {
    PlanError::Refuse(Refusal::param(asc, field))
}

fn len_err() -> PlanError {
    PlanError::Refuse(Refusal::plain(Asc::PARAMETER_LIST_LENGTH_ERROR))
}

/// A codec error as the refusal SPC-4 6.4.3 names: a list shorter than its
/// lengths is a PARAMETER LIST LENGTH ERROR, a bad field is INVALID FIELD
/// IN PARAMETER LIST at the byte (and bit) the codec reports.
fn parse_refusal(e: ParseError) -> PlanError {
    match e.at() {
        _ if matches!(e, ParseError::Truncated { .. }) => len_err(),
        Some(f) => {
            let r = Refusal::param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, f.byte as usize);
            PlanError::Refuse(match f.bit {
                Some(b) => r.at_bit(b),
                None => r,
            })
        }
        None => PlanError::Refuse(Refusal::plain(Asc::INVALID_FIELD_IN_PARAMETER_LIST)),
    }
}

/// Check `list` (exactly the PARAMETER LIST LENGTH bytes the CDB named) and
/// build the plan. `resolve` maps an E4h designator, used as a source or
/// destination, to a target; `None` for an LU nobody has and for one the
/// initiator has no right to, alike.
pub(crate) fn plan(
    list: &[u8],
    limits: &RouterLimits,
    mut resolve: impl FnMut(&Designator, Use) -> Option<TargetInfo>,
) -> Result<Plan, PlanError> {
    let h = header(list, limits)?;
    let (p, layout) = XcopyParams::parse_located(&list[..h.total_len()]).map_err(parse_refusal)?;
    check_descriptors(&p, &layout, limits)?;
    let mut planner = Planner {
        cscds: &p.cscds,
        layout: &layout,
        limits,
        inline_len: p.inline_data.len(),
        targets: vec![None; p.cscds.len()],
        resolve: &mut resolve,
    };
    // In segment order, so a failure names the first segment that needs
    // the bad CSCD.
    let mut steps = Vec::with_capacity(p.segments.len());
    for (i, seg) in p.segments.iter().enumerate() {
        let op = planner.op(i, seg)?;
        let offset = layout.segments[i];
        steps.push(Step {
            op,
            cat: seg.cat,
            offset,
        });
    }
    let targets = planner.targets;
    let stream_blocks = count_stream_blocks(&steps, &targets);
    if p.list_id_usage == list_id_usage::HOLD
        && stream_blocks.saturating_mul(4) > limits.held_data_limit as u64
    {
        // The CRC32Cs would not fit the HELD DATA LIMIT: point at LIST ID
        // USAGE (10b would hold nothing).
        return Err(usage_refusal());
    }
    Ok(Plan {
        list_id: p.list_id,
        usage: p.list_id_usage,
        targets,
        steps,
        inline: p.inline_data,
        stream_blocks,
    })
}

fn usage_refusal() -> PlanError {
    Refusal::param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, header_field::FLAGS)
        .at_bit(header_field::LIST_ID_USAGE_BIT)
        .into()
}

/// The header against the limits (SPC-4 6.4.3), before the descriptors
/// are decoded: lists longer than MAXIMUM DESCRIPTOR LIST LENGTH are a
/// PARAMETER LIST LENGTH ERROR (libiscsi's DescrLimits expects it before
/// the counts).
fn header(list: &[u8], limits: &RouterLimits) -> Result<XcopyHeader, PlanError> {
    let h = XcopyHeader::parse(list).map_err(|_| len_err())?;
    if h.list_id_usage == 0b01 {
        return Err(usage_refusal());
    }
    if h.list_id_usage == list_id_usage::DISABLE && h.list_id != 0 {
        return Err(param(
            Asc::INVALID_FIELD_IN_PARAMETER_LIST,
            header_field::LIST_ID,
        ));
    }
    if h.cscd_list_len + h.segment_list_len > limits.max_descriptor_list as usize {
        return Err(len_err());
    }
    if h.inline_len > limits.max_inline as usize {
        return Err(param(
            Asc::INLINE_DATA_LENGTH_EXCEEDED,
            header_field::INLINE_LEN,
        ));
    }
    if list.len() < h.total_len() {
        return Err(len_err());
    }
    Ok(h)
}

/// The descriptor counts and types this copy manager carries out.
fn check_descriptors(
    p: &XcopyParams,
    layout: &ListLayout,
    limits: &RouterLimits,
) -> Result<(), PlanError> {
    for (i, (c, &off)) in p.cscds.iter().zip(&layout.cscds).enumerate() {
        if i >= limits.max_cscds as usize {
            return Err(param(
                Asc::TOO_MANY_TARGET_DESCRIPTORS,
                header_field::CSCD_LIST_LEN,
            ));
        }
        if c.descriptor_type != CscdType::IDENTIFICATION {
            return Err(param(Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE, off));
        }
    }
    for (i, (s, &off)) in p.segments.iter().zip(&layout.segments).enumerate() {
        if i >= limits.max_segments as usize {
            return Err(param(
                Asc::TOO_MANY_SEGMENT_DESCRIPTORS,
                header_field::SEGMENT_LIST_LEN,
            ));
        }
        if !SEGMENT_TYPES.contains(&s.segment_type().0) {
            return Err(param(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, off));
        }
    }
    Ok(())
}

/// How a segment uses a CSCD's device.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Block,
    Stream,
}

/// One use of a CSCD by a segment: which, from which segment field, as
/// what device, for reading or writing.
#[derive(Clone, Copy)]
struct Want {
    idx: u16,
    field: usize,
    role: Role,
    usage: Use,
}

/// A block range a segment touches, for the capacity check.
struct Span {
    target: Target,
    end: CopyEnd,
    lba_field: usize,
    start: Option<u64>,
    bytes: u64,
}

struct Planner<'a, F> {
    cscds: &'a [Cscd],
    layout: &'a ListLayout,
    limits: &'a RouterLimits,
    inline_len: usize,
    targets: Vec<Option<Target>>,
    resolve: &'a mut F,
}

impl<F: FnMut(&Designator, Use) -> Option<TargetInfo>> Planner<'_, F> {
    /// Resolve a CSCD for one use by segment `i`.
    fn target(&mut self, i: usize, w: Want) -> Result<(usize, Target), PlanError> {
        let soff = self.layout.segments[i];
        let idx = w.idx as usize;
        let Some(cscd) = self.cscds.get(idx) else {
            // libiscsi (ValidSegDescr) expects COPY ABORTED here.
            return Err(Abort::new(
                i,
                Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
                format!(
                    "segment names CSCD {idx}, the list has {}",
                    self.cscds.len()
                ),
            )
            .with_pointer(soff + w.field)
            .into());
        };
        let coff = self.layout.cscds[idx];
        let d = cscd
            .designator()
            .ok_or_else(|| param(Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE, coff))?;
        // The CSCD's PERIPHERAL DEVICE TYPE picks the role it can play
        // (SPC-4 6.4.5.1); this reads only the list, so it reveals nothing.
        let declared_ok = match w.role {
            Role::Block => is_block_type(cscd.device_type),
            Role::Stream => cscd.device_type == DeviceType::TAPE,
        };
        if !declared_ok {
            return Err(param(
                Asc::INVALID_OPERATION_FOR_COPY_SOURCE_OR_DESTINATION,
                coff + cscd_field::DEVICE_TYPE,
            ));
        }
        // An LU outside the initiator's rights resolves to nothing, like
        // an LU nobody has: one answer, reached the same way.
        let Some(info) = (self.resolve)(d, w.usage) else {
            return Err(Abort::new(
                i,
                Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
                format!("no LU with designator {d} for this initiator"),
            )
            .with_pointer(coff + cscd_field::DESIGNATOR)
            .into());
        };
        let t = device_target(i, coff, cscd, &info, w.role)?;
        self.targets[idx] = Some(t);
        Ok((idx, t))
    }

    /// STREAM DEVICE TRANSFER LENGTH within 1..=the maximum.
    fn stream_len(&self, soff: usize, len: u32) -> Result<u32, PlanError> {
        if len == 0 || len > self.limits.max_stream_transfer {
            return Err(param(
                Asc::INVALID_FIELD_IN_PARAMETER_LIST,
                soff + seg_field::STREAM_LEN,
            ));
        }
        Ok(len)
    }

    /// A segment's byte count within MAXIMUM SEGMENT LENGTH.
    fn seg_len(&self, soff: usize, bytes: Option<u64>, field: usize) -> Result<u64, PlanError> {
        match bytes {
            Some(b) if b <= self.limits.max_segment_bytes as u64 => Ok(b),
            _ => Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, soff + field)),
        }
    }

    fn op(&mut self, i: usize, seg: &Segment) -> Result<Op, PlanError> {
        match seg.kind {
            SegmentKind::BlockToStream { .. } | SegmentKind::StreamToBlock { .. } => {
                self.block_stream(i, &seg.kind)
            }
            SegmentKind::BlockToBlock { .. } | SegmentKind::BlockOffsetToBlockOffset { .. } => {
                self.block_block(i, seg)
            }
            _ => self.stream_op(i, &seg.kind),
        }
    }

    /// 00h and 01h: a disk range to or from a tape.
    fn block_stream(&mut self, i: usize, kind: &SegmentKind) -> Result<Op, PlanError> {
        let soff = self.layout.segments[i];
        let (to_stream, src, dst, stream_len, blocks, lba) = match *kind {
            SegmentKind::BlockToStream {
                src,
                dst,
                stream_len,
                blocks,
                lba,
            } => (true, src, dst, stream_len, blocks, lba),
            SegmentKind::StreamToBlock {
                src,
                dst,
                stream_len,
                blocks,
                lba,
            } => (false, src, dst, stream_len, blocks, lba),
            // Only 00h and 01h come here; answer, never panic, if not.
            _ => return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, soff)),
        };
        let (src_role, dst_role) = match to_stream {
            true => (Role::Block, Role::Stream),
            false => (Role::Stream, Role::Block),
        };
        let (s, st) = self.target(i, want(src, seg_field::SOURCE_CSCD, src_role, Use::Source))?;
        let (d, dt) = self.target(
            i,
            want(dst, seg_field::DESTINATION_CSCD, dst_role, Use::Destination),
        )?;
        let stream_len = self.stream_len(soff, stream_len)?;
        let (disk, end) = if to_stream {
            (st, CopyEnd::Source)
        } else {
            (dt, CopyEnd::Destination)
        };
        let bytes = (blocks as u64).checked_mul(disk.block_size as u64);
        let bytes = self.seg_len(soff, bytes, seg_field::STREAM_BLOCKS)?;
        let span = Span {
            target: disk,
            end,
            lba_field: seg_field::STREAM_LBA,
            start: lba.0.checked_mul(disk.block_size as u64),
            bytes,
        };
        check_span(i, soff, &span)?;
        let (src, dst, lba) = (s, d, lba.0);
        Ok(match to_stream {
            true => Op::BlockToStream {
                src,
                dst,
                lba,
                bytes,
                stream_len,
            },
            false => Op::StreamToBlock {
                src,
                dst,
                lba,
                bytes,
                stream_len,
            },
        })
    }

    /// 02h and 0Ah: a disk range to a disk range.
    fn block_block(&mut self, i: usize, seg: &Segment) -> Result<Op, PlanError> {
        let soff = self.layout.segments[i];
        let (src, dst) = match seg.kind {
            SegmentKind::BlockToBlock { src, dst, .. }
            | SegmentKind::BlockOffsetToBlockOffset { src, dst, .. } => (src, dst),
            // Only 02h and 0Ah come here; answer, never panic, if not.
            _ => return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, soff)),
        };
        let (s, st) = self.target(
            i,
            want(src, seg_field::SOURCE_CSCD, Role::Block, Use::Source),
        )?;
        let (d, dt) = self.target(
            i,
            want(
                dst,
                seg_field::DESTINATION_CSCD,
                Role::Block,
                Use::Destination,
            ),
        )?;
        let (src_byte, dst_byte, bytes) = self.addresses(soff, seg, st, dt)?;
        for (target, end, lba_field, start) in [
            (st, CopyEnd::Source, seg_field::SOURCE_LBA, src_byte),
            (
                dt,
                CopyEnd::Destination,
                seg_field::DESTINATION_LBA,
                dst_byte,
            ),
        ] {
            let span = Span {
                target,
                end,
                lba_field,
                start,
                bytes,
            };
            check_span(i, soff, &span)?;
        }
        Ok(Op::BlockToBlock {
            src: s,
            dst: d,
            src_byte: src_byte.unwrap_or(u64::MAX),
            dst_byte: dst_byte.unwrap_or(u64::MAX),
            bytes,
        })
    }

    /// 02h and 0Ah: the source and destination byte addresses (`None`
    /// past 64 bits) and the byte count.
    fn addresses(
        &self,
        soff: usize,
        seg: &Segment,
        st: Target,
        dt: Target,
    ) -> Result<(Option<u64>, Option<u64>, u64), PlanError> {
        Ok(match seg.kind {
            SegmentKind::BlockToBlock {
                blocks,
                src_lba,
                dst_lba,
                ..
            } => {
                // SPC-4 6.4.6.4: DC picks whose blocks NUMBER OF BLOCKS
                // counts.
                let unit = if seg.dc { dt.block_size } else { st.block_size } as u64;
                let bytes =
                    self.seg_len(soff, Some(blocks as u64 * unit), seg_field::B2B_BLOCKS)?;
                if bytes % st.block_size as u64 != 0 || bytes % dt.block_size as u64 != 0 {
                    return Err(param(
                        Asc::UNEXPECTED_INEXACT_SEGMENT,
                        soff + seg_field::B2B_BLOCKS,
                    ));
                }
                let at = |lba: u64, t: Target| lba.checked_mul(t.block_size as u64);
                (at(src_lba.0, st), at(dst_lba.0, dt), bytes)
            }
            SegmentKind::BlockOffsetToBlockOffset {
                byte_count,
                src_lba,
                dst_lba,
                src_offset,
                dst_offset,
                ..
            } => {
                // SPC-4 6.4.6.12: byte OFFSET of block LBA, all 64 bits.
                let at = |lba: u64, t: Target, off: u16| {
                    lba.checked_mul(t.block_size as u64)?
                        .checked_add(off as u64)
                };
                let bytes = self.seg_len(soff, Some(byte_count as u64), seg_field::OFFSET_BYTES)?;
                (
                    at(src_lba.0, st, src_offset),
                    at(dst_lba.0, dt, dst_offset),
                    bytes,
                )
            }
            // Only 02h and 0Ah come here; answer, never panic, if not.
            _ => return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, soff)),
        })
    }

    /// 04h, 06h, 10h, 11h and 12h: tape only.
    fn stream_op(&mut self, i: usize, kind: &SegmentKind) -> Result<Op, PlanError> {
        let soff = self.layout.segments[i];
        Ok(match *kind {
            SegmentKind::InlineToStream {
                dst,
                stream_len,
                inline_len: n,
                inline_offset,
            } => {
                let (d, _) = self.target(i, stream_destination(dst))?;
                let stream_len = self.stream_len(soff, stream_len)?;
                let end = inline_offset.checked_add(n as u64);
                if end.is_none_or(|e| e > self.inline_len as u64) {
                    return Err(param(
                        Asc::INLINE_DATA_LENGTH_EXCEEDED,
                        soff + seg_field::BYTES_12,
                    ));
                }
                self.seg_len(soff, Some(n as u64), seg_field::BYTES_12)?;
                Op::Inline {
                    dst: d,
                    stream_len,
                    start: inline_offset as usize,
                    len: n as usize,
                }
            }
            SegmentKind::StreamToDiscard {
                src,
                stream_len,
                byte_count,
            } => {
                let w = want(src, seg_field::SOURCE_CSCD, Role::Stream, Use::Source);
                let (s, _) = self.target(i, w)?;
                Op::Discard {
                    src: s,
                    stream_len: self.stream_len(soff, stream_len)?,
                    bytes: self.seg_len(soff, Some(byte_count as u64), seg_field::BYTES_12)?,
                }
            }
            _ => self.tape_motion(i, kind)?,
        })
    }

    /// 10h, 11h and 12h: filemarks and positioning.
    fn tape_motion(&mut self, i: usize, kind: &SegmentKind) -> Result<Op, PlanError> {
        let soff = self.layout.segments[i];
        Ok(match *kind {
            SegmentKind::WriteFilemarks {
                dst, wsmk, count, ..
            } => {
                if wsmk {
                    let r = Refusal::param(
                        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
                        soff + seg_field::BYTE_8,
                    );
                    return Err(r.at_bit(1).into());
                }
                let (d, _) = self.target(i, stream_destination(dst))?;
                Op::Filemarks { dst: d, count }
            }
            SegmentKind::Space { dst, code, count } => {
                // SSC-4 7.9: blocks, filemarks, end of data.
                if !matches!(code, 0 | 1 | 3) {
                    return Err(param(
                        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
                        soff + seg_field::BYTE_8,
                    ));
                }
                let (d, _) = self.target(i, stream_destination(dst))?;
                Op::Space {
                    dst: d,
                    code,
                    count,
                }
            }
            SegmentKind::Locate { dst, object_id } => {
                let (d, t) = self.target(i, stream_destination(dst))?;
                if t.locate == Some(false) {
                    return Err(param(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, soff));
                }
                Op::Locate {
                    dst: d,
                    block: object_id,
                }
            }
            // check_descriptors let through only the types above.
            _ => return Err(param(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, soff)),
        })
    }
}

/// A segment's DESTINATION CSCD, which must be a stream device.
fn stream_destination(dst: u16) -> Want {
    want(
        dst,
        seg_field::DESTINATION_CSCD,
        Role::Stream,
        Use::Destination,
    )
}

fn want(idx: u16, field: usize, role: Role, usage: Use) -> Want {
    Want {
        idx,
        field,
        role,
        usage,
    }
}

/// The resolved LU against the CSCD: its actual device type, and the
/// block or stream parameters the CSCD gives (SPC-4 6.4.5.1).
fn device_target(
    i: usize,
    coff: usize,
    cscd: &Cscd,
    info: &TargetInfo,
    role: Role,
) -> Result<Target, PlanError> {
    let actual_ok = match role {
        Role::Block => info.device_type == DeviceType::DISK,
        Role::Stream => info.device_type == DeviceType::TAPE,
    };
    if !actual_ok {
        return Err(Abort::new(
            i,
            Asc::new(0x0d, 0x03), // INCORRECT COPY TARGET DEVICE TYPE
            format!("the LU is a {} device", info.device_type),
        )
        .with_pointer(coff + cscd_field::DEVICE_TYPE)
        .into());
    }
    let block_size = match (role, cscd.device_params) {
        (Role::Block, DeviceParams::Block { block_len, .. }) => {
            let actual = info.block_size.unwrap_or(0);
            // DISK BLOCK LENGTH 0 means "whatever the device has".
            if block_len != 0 && block_len != actual {
                return Err(param(
                    Asc::INVALID_FIELD_IN_PARAMETER_LIST,
                    coff + cscd_field::BLOCK_LEN,
                ));
            }
            if actual == 0 {
                return Err(Abort::new(
                    i,
                    Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
                    "block size unknown",
                )
                .into());
            }
            actual
        }
        // Variable-block streams only (FIXED=0). The tape's own mode is
        // not checked here: the cached MODE SENSE may be stale, and a
        // fixed-mode tape refuses the variable WRITE with sense the COPY
        // ABORTED carries.
        (Role::Stream, DeviceParams::Stream { fixed: true, .. }) => {
            let r = Refusal::param(
                Asc::INVALID_FIELD_IN_PARAMETER_LIST,
                coff + cscd_field::DEVICE_PARAMS,
            );
            return Err(r.at_bit(0).into());
        }
        (Role::Stream, DeviceParams::Stream { .. }) => 0,
        _ => {
            return Err(param(
                Asc::INVALID_FIELD_IN_PARAMETER_LIST,
                coff + cscd_field::DEVICE_PARAMS,
            ))
        }
    };
    Ok(Target {
        end: info.end,
        block_size,
        blocks: info.blocks,
        locate: info.locate,
    })
}

/// Every byte a segment reads or writes lies within the LU's capacity
/// (when known): else COPY ABORTED with the LBA OUT OF RANGE sense the
/// device would give, pointing at the LBA field, before any data moves.
fn check_span(i: usize, soff: usize, s: &Span) -> Result<(), PlanError> {
    let Some(blocks) = s.target.blocks else {
        return Ok(());
    };
    let cap = blocks.checked_mul(s.target.block_size as u64);
    let end = s.start.and_then(|a| a.checked_add(s.bytes));
    match (end, cap) {
        (Some(e), Some(c)) if e <= c => Ok(()),
        _ => Err(super::exec::out_of_range(i, s.end)
            .with_pointer(soff + s.lba_field)
            .into()),
    }
}

/// Stream blocks the steps write, with CAT residuals carried per
/// destination as the executor does.
fn count_stream_blocks(steps: &[Step], targets: &[Option<Target>]) -> u64 {
    let mut residual: HashMap<End, u64> = HashMap::new();
    let mut n = 0u64;
    for s in steps {
        let (dst, bytes, sl) = match s.op {
            Op::BlockToStream {
                dst,
                bytes,
                stream_len,
                ..
            } => (dst, bytes, stream_len),
            Op::Inline {
                dst,
                len,
                stream_len,
                ..
            } => (dst, len as u64, stream_len),
            _ => continue,
        };
        let Some(t) = targets[dst] else { continue };
        let r = residual.entry(t.end).or_default();
        let total = *r + bytes;
        n += total / sl as u64;
        let rem = total % sl as u64;
        if s.cat {
            *r = rem;
        } else {
            *r = 0;
            n += (rem > 0) as u64;
        }
    }
    n + residual.values().filter(|&&r| r > 0).count() as u64
}
