//! Checking an EXTENDED COPY(LID1) parameter list against the limits and
//! the backends before any data moves, and turning it into steps.
//!
//! The list is walked byte by byte here (not with `XcopyParams::parse`
//! alone) because every refusal must point at the byte at fault; the
//! codec's `Cscd::parse` and `Segment::parse` decode each descriptor.

use std::collections::HashMap;

use crate::scsi::sense::Asc;
use crate::scsi::spc::Designator;
use crate::scsi::xcopy::{
    is_block_type, list_id_usage, Cscd, CscdBody, CscdType, DeviceParams, Segment, SegmentKind,
    SegmentType, XCOPY_HEADER_LEN,
};
use crate::scsi::{be_uint, DeviceType};

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
    pub tape_block_len: Option<u32>,
    pub locate: Option<bool>,
}

/// A resolved CSCD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub end: End,
    /// Logical block length (block devices only).
    pub block_size: u32,
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

/// Length of a 0Ah descriptor (SPC-4 6.4.6.12): DESCRIPTOR LENGTH 1Ch.
const OFFSET_SEGMENT_LEN: usize = 32;

fn param(asc: Asc, field: usize) -> PlanError {
    PlanError::Refuse(Refusal::param(asc, field))
}

/// Check `list` (exactly the PARAMETER LIST LENGTH bytes the CDB named) and
/// build the plan. `resolve` maps an E4h designator to a target.
pub(crate) fn plan(
    list: &[u8],
    limits: &RouterLimits,
    mut resolve: impl FnMut(&Designator) -> Option<TargetInfo>,
) -> Result<Plan, PlanError> {
    // SPC-4 6.4.3: a list shorter than its header, or than the lengths
    // the header gives, is a PARAMETER LIST LENGTH ERROR.
    let len_err = || PlanError::Refuse(Refusal::plain(Asc::PARAMETER_LIST_LENGTH_ERROR));
    if list.len() < XCOPY_HEADER_LEN {
        return Err(len_err());
    }
    let list_id = list[0];
    let usage = (list[1] >> 3) & 3;
    if usage == 0b01 {
        return Err(Refusal::param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, 1)
            .at_bit(4)
            .into());
    }
    if usage == list_id_usage::DISABLE && list_id != 0 {
        return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, 0));
    }
    let tdll = be_uint(&list[2..4]) as usize;
    let sdll = be_uint(&list[8..12]) as usize;
    let inline_len = be_uint(&list[12..16]) as usize;
    // SPC-4 6.4.3: descriptor lists longer than MAXIMUM DESCRIPTOR LIST
    // LENGTH are a PARAMETER LIST LENGTH ERROR (checked before the counts:
    // libiscsi's DescrLimits expects it so).
    if tdll + sdll > limits.max_descriptor_list as usize {
        return Err(len_err());
    }
    if inline_len > limits.max_inline as usize {
        return Err(param(Asc::INLINE_DATA_LENGTH_EXCEEDED, 12));
    }
    let total = XCOPY_HEADER_LEN + tdll + sdll + inline_len;
    if list.len() < total {
        return Err(len_err());
    }

    // CSCD descriptors (SPC-4 6.4.5).
    let mut cscds: Vec<(usize, Cscd)> = Vec::new();
    let mut off = XCOPY_HEADER_LEN;
    let cscd_end = XCOPY_HEADER_LEN + tdll;
    while off < cscd_end {
        if cscds.len() >= limits.max_cscds as usize {
            return Err(param(Asc::TOO_MANY_TARGET_DESCRIPTORS, 2));
        }
        let t = CscdType(list[off]);
        if t != CscdType::IDENTIFICATION {
            return Err(param(Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE, off));
        }
        if off + t.descriptor_len() > cscd_end {
            return Err(len_err());
        }
        let (c, n) = Cscd::parse(&list[off..cscd_end])
            .map_err(|_| param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, off + 7))?;
        cscds.push((off, c));
        off += n;
    }

    // Segment descriptors (SPC-4 6.4.6).
    let mut raw_segments: Vec<(usize, Segment, Option<[u64; 5]>)> = Vec::new();
    let seg_end = cscd_end + sdll;
    while off < seg_end {
        if raw_segments.len() >= limits.max_segments as usize {
            return Err(param(Asc::TOO_MANY_SEGMENT_DESCRIPTORS, 8));
        }
        if off + 4 > seg_end {
            return Err(len_err());
        }
        let t = SegmentType(list[off]);
        let n = 4 + be_uint(&list[off + 2..off + 4]) as usize;
        if !SEGMENT_TYPES.contains(&t.0) {
            return Err(param(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, off));
        }
        if off + n > seg_end {
            return Err(len_err());
        }
        let d = &list[off..off + n];
        if t == SegmentType::BLOCK_OFFSET_TO_BLOCK_OFFSET {
            if n != OFFSET_SEGMENT_LEN {
                return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, off + 2));
            }
            // SPC-4 6.4.6.12: indexes, NUMBER OF BYTES, both LBAs, both
            // byte offsets.
            let u = |r: std::ops::Range<usize>| be_uint(&d[r]);
            let seg = Segment {
                cat: d[1] & 1 != 0,
                dc: d[1] & 2 != 0,
                kind: SegmentKind::Other {
                    descriptor_type: t,
                    body: d[4..].to_vec(),
                },
            };
            let f = [u(4..6), u(6..8), u(8..12), u(12..20), u(20..28)];
            let offs = [
                f[0],
                f[1],
                f[2],
                f[3] << 32 | u(28..30) << 16 | u(30..32),
                f[4],
            ];
            raw_segments.push((off, seg, Some(offs)));
        } else {
            let (s, _) = Segment::parse(d)
                .map_err(|_| param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, off + 2))?;
            raw_segments.push((off, s, None));
        }
        off += n;
    }
    let inline = list[seg_end..total].to_vec();

    // Resolve and check each segment's ends, in segment order, so a
    // failure names the first segment that needs the bad CSCD.
    let mut targets: Vec<Option<Target>> = vec![None; cscds.len()];
    let mut steps = Vec::with_capacity(raw_segments.len());
    for (i, (soff, seg, offs)) in raw_segments.into_iter().enumerate() {
        let mut ctx = SegCtx {
            i,
            soff,
            cscds: &cscds,
            targets: &mut targets,
            resolve: &mut resolve,
        };
        let op = ctx.op(&seg, offs, limits, inline.len())?;
        steps.push(Step {
            op,
            cat: seg.cat,
            offset: soff,
        });
    }

    let stream_blocks = count_stream_blocks(&steps, &targets);
    if usage == list_id_usage::HOLD
        && stream_blocks.saturating_mul(4) > limits.held_data_limit as u64
    {
        // The CRC32Cs would not fit the HELD DATA LIMIT: point at LIST ID
        // USAGE (10b would hold nothing).
        return Err(Refusal::param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, 1)
            .at_bit(4)
            .into());
    }
    Ok(Plan {
        list_id,
        usage,
        targets,
        steps,
        inline,
        stream_blocks,
    })
}

/// How a segment uses a CSCD.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Block,
    Stream,
}

struct SegCtx<'a, F> {
    i: usize,
    soff: usize,
    cscds: &'a [(usize, Cscd)],
    targets: &'a mut Vec<Option<Target>>,
    resolve: &'a mut F,
}

impl<F: FnMut(&Designator) -> Option<TargetInfo>> SegCtx<'_, F> {
    /// Resolve CSCD `idx` (named at segment byte `field`) for `role`.
    fn target(&mut self, idx: u64, field: usize, role: Role) -> Result<(usize, Target), PlanError> {
        let (i, soff) = (self.i, self.soff);
        let Some((coff, cscd)) = self.cscds.get(idx as usize) else {
            // libiscsi (ValidSegDescr) expects COPY ABORTED here.
            return Err(Abort::new(
                i,
                Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
                format!(
                    "segment names CSCD {idx}, the list has {}",
                    self.cscds.len()
                ),
            )
            .with_pointer(soff + field)
            .into());
        };
        let coff = *coff;
        let CscdBody::Identification(d) = &cscd.body else {
            return Err(param(Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE, coff));
        };
        // The CSCD's PERIPHERAL DEVICE TYPE picks the role it can play
        // (SPC-4 6.4.5.1).
        let declared_ok = match role {
            Role::Block => is_block_type(cscd.device_type),
            Role::Stream => cscd.device_type == DeviceType::TAPE,
        };
        if !declared_ok {
            return Err(param(
                Asc::INVALID_OPERATION_FOR_COPY_SOURCE_OR_DESTINATION,
                coff + 1,
            ));
        }
        let Some(info) = (self.resolve)(d) else {
            return Err(Abort::new(
                i,
                Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
                format!("no LU with designator {d}"),
            )
            .with_pointer(coff + 8)
            .into());
        };
        let actual_ok = match role {
            Role::Block => info.device_type == DeviceType::DISK,
            Role::Stream => info.device_type == DeviceType::TAPE,
        };
        if !actual_ok {
            return Err(Abort::new(
                i,
                Asc::new(0x0d, 0x03), // INCORRECT COPY TARGET DEVICE TYPE
                format!("designator {d} is a {} device", info.device_type),
            )
            .with_pointer(coff + 1)
            .into());
        }
        let block_size = match (role, cscd.device_params) {
            (Role::Block, DeviceParams::Block { block_len, .. }) => {
                let actual = info.block_size.unwrap_or(0);
                // DISK BLOCK LENGTH 0 means "whatever the device has".
                if block_len != 0 && block_len != actual {
                    return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, coff + 29));
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
            (Role::Stream, DeviceParams::Stream { fixed, .. }) => {
                // Variable-block streams only (FIXED=0). The tape's own
                // mode is not checked here: the cached MODE SENSE may be
                // stale, and a fixed-mode tape refuses the variable WRITE
                // with sense the COPY ABORTED carries.
                if fixed {
                    return Err(
                        Refusal::param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, coff + 28)
                            .at_bit(0)
                            .into(),
                    );
                }
                0
            }
            _ => return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, coff + 28)),
        };
        let t = Target {
            end: info.end,
            block_size,
            locate: info.locate,
        };
        self.targets[idx as usize] = Some(t);
        Ok((idx as usize, t))
    }

    fn op(
        &mut self,
        seg: &Segment,
        offs: Option<[u64; 5]>,
        limits: &RouterLimits,
        inline_len: usize,
    ) -> Result<Op, PlanError> {
        let soff = self.soff;
        let stream = |len: u32| -> Result<(), PlanError> {
            if len == 0 || len > limits.max_stream_transfer {
                return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, soff + 9));
            }
            Ok(())
        };
        let seg_len = |bytes: u64, field: usize| -> Result<u64, PlanError> {
            if bytes > limits.max_segment_bytes as u64 {
                return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, soff + field));
            }
            Ok(bytes)
        };
        Ok(match seg.kind {
            SegmentKind::BlockToStream {
                src,
                dst,
                stream_len,
                blocks,
                lba,
            } => {
                let (s, st) = self.target(src as u64, 4, Role::Block)?;
                let (d, _) = self.target(dst as u64, 6, Role::Stream)?;
                stream(stream_len)?;
                Op::BlockToStream {
                    src: s,
                    dst: d,
                    lba: lba.0,
                    bytes: seg_len(blocks as u64 * st.block_size as u64, 14)?,
                    stream_len,
                }
            }
            SegmentKind::StreamToBlock {
                src,
                dst,
                stream_len,
                blocks,
                lba,
            } => {
                let (s, _) = self.target(src as u64, 4, Role::Stream)?;
                let (d, dt) = self.target(dst as u64, 6, Role::Block)?;
                stream(stream_len)?;
                Op::StreamToBlock {
                    src: s,
                    dst: d,
                    lba: lba.0,
                    bytes: seg_len(blocks as u64 * dt.block_size as u64, 14)?,
                    stream_len,
                }
            }
            SegmentKind::BlockToBlock {
                src,
                dst,
                blocks,
                src_lba,
                dst_lba,
            } => {
                let (s, st) = self.target(src as u64, 4, Role::Block)?;
                let (d, dt) = self.target(dst as u64, 6, Role::Block)?;
                // SPC-4 6.4.6.4: DC picks whose blocks NUMBER OF BLOCKS
                // counts.
                let unit = if seg.dc { dt.block_size } else { st.block_size } as u64;
                let bytes = seg_len(blocks as u64 * unit, 10)?;
                if bytes % st.block_size as u64 != 0 || bytes % dt.block_size as u64 != 0 {
                    return Err(param(Asc::UNEXPECTED_INEXACT_SEGMENT, soff + 10));
                }
                Op::BlockToBlock {
                    src: s,
                    dst: d,
                    src_byte: src_lba.0.saturating_mul(st.block_size as u64),
                    dst_byte: dst_lba.0.saturating_mul(dt.block_size as u64),
                    bytes,
                }
            }
            SegmentKind::InlineToStream {
                dst,
                stream_len,
                inline_len: n,
                inline_offset,
            } => {
                let (d, _) = self.target(dst as u64, 6, Role::Stream)?;
                stream(stream_len)?;
                let end = inline_offset.checked_add(n as u64);
                if end.is_none_or(|e| e > inline_len as u64) {
                    return Err(param(Asc::INLINE_DATA_LENGTH_EXCEEDED, soff + 12));
                }
                seg_len(n as u64, 12)?;
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
                let (s, _) = self.target(src as u64, 4, Role::Stream)?;
                stream(stream_len)?;
                Op::Discard {
                    src: s,
                    stream_len,
                    bytes: seg_len(byte_count as u64, 12)?,
                }
            }
            SegmentKind::WriteFilemarks {
                dst, wsmk, count, ..
            } => {
                if wsmk {
                    return Err(
                        Refusal::param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, soff + 8)
                            .at_bit(1)
                            .into(),
                    );
                }
                let (d, _) = self.target(dst as u64, 6, Role::Stream)?;
                Op::Filemarks { dst: d, count }
            }
            SegmentKind::Space { dst, code, count } => {
                // SSC-4 7.9: blocks, filemarks, end of data.
                if !matches!(code, 0 | 1 | 3) {
                    return Err(param(Asc::INVALID_FIELD_IN_PARAMETER_LIST, soff + 8));
                }
                let (d, _) = self.target(dst as u64, 6, Role::Stream)?;
                Op::Space {
                    dst: d,
                    code,
                    count,
                }
            }
            SegmentKind::Locate { dst, object_id } => {
                let (d, t) = self.target(dst as u64, 6, Role::Stream)?;
                if t.locate == Some(false) {
                    return Err(param(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, soff));
                }
                Op::Locate {
                    dst: d,
                    block: object_id,
                }
            }
            SegmentKind::Other { .. } => {
                let Some([src, dst, bytes, src_lba_off, dst_lba]) = offs else {
                    return Err(param(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, soff));
                };
                let (s, st) = self.target(src, 4, Role::Block)?;
                let (d, dt) = self.target(dst, 6, Role::Block)?;
                let src_lba = src_lba_off >> 32;
                let src_off = (src_lba_off >> 16) & 0xffff;
                let dst_off = src_lba_off & 0xffff;
                Op::BlockToBlock {
                    src: s,
                    dst: d,
                    src_byte: src_lba
                        .saturating_mul(st.block_size as u64)
                        .saturating_add(src_off),
                    dst_byte: dst_lba
                        .saturating_mul(dt.block_size as u64)
                        .saturating_add(dst_off),
                    bytes: seg_len(bytes, 8)?,
                }
            }
            SegmentKind::StreamToStream { .. } => {
                return Err(param(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE, soff))
            }
        })
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
