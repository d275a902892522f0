//! Disk-to-disk EXTENDED COPY (LID1): the copy manager moves the blocks,
//! the initiator sends only parameter lists.
//!
//! A planner splits the copy into commands within the copy manager's
//! limits (RECEIVE COPY RESULTS operating parameters, else conservative
//! defaults), a driver sends them, and a fallback policy copies through the
//! host what the copy manager refuses.

use super::copy_manager::{
    aborted_segment, copy_failed, encode, extended_copy, operating_parameters, CopyError,
};
use super::EngineError;
use crate::device::{DeviceError, Disk, Scsi};
use crate::scsi::spc::{Designator, VpdPage};
use crate::scsi::xcopy::{
    Cscd, DeviceParams, OperatingParameters, Segment, ThirdPartyCopyVpd, XcopyParams,
};
use crate::scsi::{BlockCount, BlockSize, DeviceType, Lba};
use crate::transport::Transport;

/// What one EXTENDED COPY may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    pub max_cscds: u16,
    pub max_segments: u16,
    pub max_descriptor_list_len: u32,
    /// Bytes per segment; 0 means no limit.
    pub max_segment_len: u32,
    /// Where the limits came from.
    pub source: &'static str,
}

impl Limits {
    /// When the copy manager will not say: two CSCDs, one segment, 1 MiB
    /// segments (what every LID1 copy manager here accepts: LIO, SCST).
    pub const CONSERVATIVE: Limits = Limits {
        max_cscds: 2,
        max_segments: 1,
        max_descriptor_list_len: 1024,
        max_segment_len: 1 << 20,
        source: "conservative defaults",
    };

    /// From the Third-party Copy VPD page; what it lacks stays
    /// conservative.
    pub fn from_vpd(v: &ThirdPartyCopyVpd) -> Limits {
        let c = Limits::CONSERVATIVE;
        Limits {
            max_cscds: v.max_cscd_count.unwrap_or(c.max_cscds).max(2),
            max_segments: v.max_segment_count.unwrap_or(c.max_segments).max(1),
            max_descriptor_list_len: v
                .max_descriptor_list_len
                .unwrap_or(c.max_descriptor_list_len),
            max_segment_len: v.max_segment_len.unwrap_or(c.max_segment_len),
            source: "the third-party copy VPD page (0x8F)",
        }
    }

    pub fn from_operating_parameters(p: &OperatingParameters) -> Limits {
        Limits {
            max_cscds: p.max_cscd_count.max(2),
            max_segments: p.max_segment_count.max(1),
            max_descriptor_list_len: p.max_descriptor_list_len,
            max_segment_len: p.max_segment_len,
            source: "RECEIVE COPY RESULTS (operating parameters)",
        }
    }
}

/// Ask the copy manager for its limits; fall back to
/// [`Limits::CONSERVATIVE`] when it refuses RECEIVE COPY RESULTS.
pub fn discover_limits<T: Transport>(cm: &mut Scsi<T>) -> Result<Limits, DeviceError> {
    match operating_parameters(cm) {
        Ok(p) => Ok(Limits::from_operating_parameters(&p)),
        Err(e) if e.sense().is_some() => {
            log::info!(
                "{}: RECEIVE COPY RESULTS refused ({e}); trying VPD 0x8F",
                cm.name()
            );
            match cm.vpd_raw(VpdPage::THIRD_PARTY_COPY) {
                Ok(buf) => {
                    let v = ThirdPartyCopyVpd::parse(&buf)
                        .map_err(|e| cm.perr("third-party copy VPD page", e))?;
                    Ok(Limits::from_vpd(&v))
                }
                Err(e) if e.sense().is_some() => {
                    log::info!(
                        "{}: no VPD 0x8F either ({e}); using conservative limits",
                        cm.name()
                    );
                    Ok(Limits::CONSERVATIVE)
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// One end of a copy, as the copy manager must name it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub designator: Designator,
    pub block_size: BlockSize,
}

/// Why a disk cannot be one end of a copy.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("no LU designator in VPD 0x83 to name it in EXTENDED COPY")]
    NoDesignator,
}

impl Endpoint {
    /// `d` as one end of a copy (its best LU designator and block size),
    /// and its block count.
    pub fn of<T: Transport>(d: &mut Disk<T>) -> Result<(Endpoint, BlockCount), EndpointError> {
        let cap = d.capacity()?;
        let di = d.scsi.device_identification()?;
        let designator = di
            .best_lu_designator()
            .cloned()
            .ok_or(EndpointError::NoDesignator)?;
        let ep = Endpoint {
            designator,
            block_size: cap.block_size,
        };
        Ok((ep, cap.blocks))
    }
}

/// The blocks a copy moves: `blocks` from `src_lba` on the source to
/// `dst_lba` on the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CopyRange {
    pub src_lba: Lba,
    pub dst_lba: Lba,
    pub blocks: BlockCount,
}

impl CopyRange {
    /// All `blocks` of a disk onto another, LBA 0 to LBA 0.
    pub fn whole(blocks: BlockCount) -> CopyRange {
        CopyRange {
            src_lba: Lba(0),
            dst_lba: Lba(0),
            blocks,
        }
    }

    /// `n` blocks from `off` blocks into this range.
    fn part(&self, off: u64, n: u64) -> CopyRange {
        CopyRange {
            src_lba: Lba(self.src_lba.0 + off),
            dst_lba: Lba(self.dst_lba.0 + off),
            blocks: BlockCount(n),
        }
    }

    /// The range in pieces of 1 MiB (the last may be shorter): what this
    /// host reads at a time when it copies or compares.
    fn pieces(self, bs: BlockSize) -> impl Iterator<Item = CopyRange> {
        let per = ((1u64 << 20) / u64::from(bs.0)).max(1);
        let total = self.blocks.0;
        (0..total.div_ceil(per)).map(move |i| self.part(i * per, (total - i * per).min(per)))
    }
}

/// One EXTENDED COPY of the plan and the range it covers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedCommand {
    #[serde(flatten)]
    pub range: CopyRange,
    pub segments: usize,
    #[serde(skip)]
    pub params: XcopyParams,
}

/// Split a copy of `range` into EXTENDED COPY commands that fit `limits`:
/// at most 65535 blocks and `max_segment_len` bytes per 02h segment
/// (SPC-4 6.4.6.4), as many segments per command as the copy manager and
/// the descriptor list length allow.
pub fn plan(
    src: &Endpoint,
    dst: &Endpoint,
    range: CopyRange,
    limits: &Limits,
) -> Result<Vec<PlannedCommand>, EngineError> {
    let cscds = cscd_pair(src, dst)?;
    let per_segment = blocks_per_segment(src.block_size, limits)?;
    let cscd_len: usize = cscds.iter().map(|c| c.buffer_len()).sum();
    let seg_len = 28usize; // a 02h segment descriptor (SPC-4 6.4.6.4)
    let by_list = (limits.max_descriptor_list_len as usize).saturating_sub(cscd_len) / seg_len;
    let per_command = (limits.max_segments as usize).min(by_list).max(1);
    let blocks = range.blocks.0;
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < blocks {
        let start = done;
        let mut segments = Vec::new();
        while segments.len() < per_command && done < blocks {
            let part = range.part(done, (blocks - done).min(per_segment));
            let n = part.blocks.0 as u16;
            segments.push(Segment::block_to_block(0, 1, n, part.src_lba, part.dst_lba));
            done += part.blocks.0;
        }
        let params = XcopyParams::new(cscds.clone(), segments);
        params.check().map_err(|source| CopyError::ParameterList {
            what: "planned parameter list",
            source,
        })?;
        out.push(PlannedCommand {
            range: range.part(start, done - start),
            segments: params.segments.len(),
            params,
        });
    }
    Ok(out)
}

/// The two ends as identification CSCDs (E4h), source first.
fn cscd_pair(src: &Endpoint, dst: &Endpoint) -> Result<Vec<Cscd>, CopyError> {
    if src.block_size != dst.block_size {
        return Err(CopyError::BlockSizes {
            src: src.block_size,
            dst: dst.block_size,
        });
    }
    let cscd = |e: &Endpoint, what| {
        let p = DeviceParams::block(e.block_size.0);
        Cscd::identification(&e.designator, DeviceType::DISK, p)
            .map_err(|source| CopyError::Cscd { what, source })
    };
    Ok(vec![
        cscd(src, "source designator")?,
        cscd(dst, "destination designator")?,
    ])
}

/// Blocks one 02h segment may carry: 65535 (a 16-bit count), fewer when
/// the copy manager's maximum segment length says so.
fn blocks_per_segment(bs: BlockSize, limits: &Limits) -> Result<u64, CopyError> {
    let mut per_segment = 65535u64;
    if limits.max_segment_len > 0 {
        per_segment = per_segment.min(u64::from(limits.max_segment_len) / u64::from(bs.0));
    }
    if per_segment == 0 {
        return Err(CopyError::SegmentUnderBlock {
            max: limits.max_segment_len,
        });
    }
    Ok(per_segment)
}

/// How to treat what the copy manager refuses (after NetBackup and VMware).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Copy a refused or aborted command through the host, and say so.
    Prefer,
    /// Fail.
    Never,
    /// Do not use EXTENDED COPY at all.
    Always,
}

/// What a copy did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyReport {
    pub commands: usize,
    pub xcopy_commands: usize,
    pub host_commands: usize,
    pub blocks: u64,
    pub bytes: u64,
    /// Bytes that crossed this initiator's sessions: parameter lists for
    /// E-copy, twice the data for a host copy.
    pub bytes_through_initiator: u64,
    /// Of those, the copied data itself (0 when the copy manager did it all).
    pub data_bytes_through_initiator: u64,
    pub fallbacks: Vec<String>,
    pub limits: Option<Limits>,
    pub verified_bytes: u64,
}

/// Run `plan`: EXTENDED COPY to `cm`, with host copies from `src` to
/// `dst` where the policy says so.
pub fn run<C: Transport, S: Transport, D: Transport>(
    cm: &mut Scsi<C>,
    src: &mut Disk<S>,
    dst: &mut Disk<D>,
    bs: BlockSize,
    plan: &[PlannedCommand],
    fallback: Fallback,
) -> Result<CopyReport, EngineError> {
    let mut r = CopyReport {
        commands: plan.len(),
        ..Default::default()
    };
    for c in plan {
        let (range, blocks) = (c.range, c.range.blocks.0);
        let bytes = blocks * u64::from(bs.0);
        if fallback != Fallback::Always {
            let list = encode(&c.params)?;
            r.bytes_through_initiator += list.len() as u64;
            match extended_copy(cm, &c.params, list) {
                Ok(_) => {
                    r.xcopy_commands += 1;
                    r.blocks += blocks;
                    r.bytes += bytes;
                    continue;
                }
                Err(e) if fallback == Fallback::Prefer && e.sense().is_some() => {
                    let at = aborted_segment(&e)
                        .map(|s| format!(" at {s}"))
                        .unwrap_or_default();
                    let why = format!(
                        "EXTENDED COPY of {blocks} blocks at LBA {} refused{at} ({e}); copied through the host",
                        range.src_lba
                    );
                    log::warn!("{why}");
                    r.fallbacks.push(why);
                }
                Err(e) => {
                    return Err(copy_failed(
                        e,
                        format_args!("the command for LBA {}", range.src_lba),
                    ))
                }
            }
        }
        host_copy(src, dst, bs, range)?;
        r.host_commands += 1;
        r.blocks += blocks;
        r.bytes += bytes;
        r.bytes_through_initiator += 2 * bytes;
        r.data_bytes_through_initiator += 2 * bytes;
    }
    Ok(r)
}

/// Copy through this host: READ(16) then WRITE(16), 1 MiB at a time.
fn host_copy<S: Transport, D: Transport>(
    src: &mut Disk<S>,
    dst: &mut Disk<D>,
    bs: BlockSize,
    range: CopyRange,
) -> Result<(), EngineError> {
    for p in range.pieces(bs) {
        let data = src.read(p.src_lba, p.blocks.0 as u32, bs)?;
        dst.write(p.dst_lba, bs, data)?;
    }
    Ok(())
}

/// Compare `samples` evenly spread 1 MiB pieces of `range` (every piece
/// when `samples` is 0) between source and destination; the bytes
/// compared.
pub fn verify_copy<S: Transport, D: Transport>(
    src: &mut Disk<S>,
    dst: &mut Disk<D>,
    bs: BlockSize,
    range: CopyRange,
    samples: u64,
) -> Result<u64, EngineError> {
    let pieces: Vec<CopyRange> = range.pieces(bs).collect();
    let total = pieces.len() as u64;
    let picks: Vec<u64> = if samples == 0 || samples >= total {
        (0..total).collect()
    } else {
        (0..samples).map(|i| i * total / samples).collect()
    };
    let mut compared = 0;
    for p in picks.into_iter().map(|i| pieces[i as usize]) {
        let a = src.read(p.src_lba, p.blocks.0 as u32, bs)?;
        let b = dst.read(p.dst_lba, p.blocks.0 as u32, bs)?;
        if a != b {
            return Err(CopyError::Differs {
                dst_lba: p.dst_lba.0,
                dst_end: p.dst_lba.0 + p.blocks.0,
                src_lba: p.src_lba.0,
            }
            .into());
        }
        compared += a.len() as u64;
    }
    Ok(compared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::spc::{Association, CodeSet, DesignatorType};

    fn range(src: u64, dst: u64, blocks: u64) -> CopyRange {
        CopyRange {
            src_lba: Lba(src),
            dst_lba: Lba(dst),
            blocks: BlockCount(blocks),
        }
    }

    fn naa(last: u8) -> Endpoint {
        let mut v = vec![0x60, 0x01, 0x40, 0x5a];
        v.extend_from_slice(&[0; 11]);
        v.push(last);
        Endpoint {
            designator: Designator {
                protocol_id: 0,
                code_set: CodeSet::BINARY,
                piv: false,
                association: Association::LU,
                designator_type: DesignatorType::NAA,
                value: v,
            },
            block_size: BlockSize(512),
        }
    }

    #[test]
    fn lio_limits_give_one_segment_per_command() {
        let lio = Limits {
            max_cscds: 2,
            max_segments: 1,
            max_descriptor_list_len: 1024,
            max_segment_len: 256 << 20,
            source: "test",
        };
        // 64 MiB of 512-byte blocks: 131072 blocks, 65535 per segment.
        let p = plan(&naa(1), &naa(2), range(0, 0, 131072), &lio).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.iter().map(|c| c.range.blocks.0).sum::<u64>(), 131072);
        assert!(p.iter().all(|c| c.segments == 1));
        assert_eq!(
            (p[1].range.src_lba, p[2].range.blocks),
            (Lba(65535), BlockCount(2))
        );
    }

    #[test]
    fn generous_limits_pack_segments_and_respect_segment_length() {
        let big = Limits {
            max_cscds: 8,
            max_segments: 64,
            max_descriptor_list_len: 4096,
            max_segment_len: 1 << 20, // 2048 blocks
            source: "test",
        };
        let p = plan(&naa(1), &naa(2), range(100, 5000, 10_000), &big).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].segments, 5);
        let bytes = p[0].params.encode().unwrap();
        assert_eq!(bytes[0x0], 0); // list id
        assert_eq!(p[0].range.dst_lba, Lba(5000));
        // `xcopy --dry-run --json` shows each command as before the range
        // became a type: plain numbers, in this order.
        assert_eq!(
            serde_json::to_string(&p[0]).unwrap(),
            r#"{"src_lba":100,"dst_lba":5000,"blocks":10000,"segments":5}"#
        );
    }

    #[test]
    fn vpd_limits_fill_gaps_conservatively() {
        let v = ThirdPartyCopyVpd {
            max_segment_count: Some(4),
            ..Default::default()
        };
        let l = Limits::from_vpd(&v);
        assert_eq!(l.max_segments, 4);
        assert_eq!(l.max_cscds, 2);
        assert_eq!(l.max_segment_len, Limits::CONSERVATIVE.max_segment_len);
    }

    #[test]
    fn pieces_of_a_range_are_a_mebibyte_each_and_cover_it() {
        let r = range(10, 20, 2048 * 2 + 5);
        let p: Vec<CopyRange> = r.pieces(BlockSize(512)).collect();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1], range(10 + 2048, 20 + 2048, 2048));
        assert_eq!(p[2], range(10 + 4096, 20 + 4096, 5));
        assert_eq!(range(0, 0, 0).pieces(BlockSize(512)).count(), 0);
    }

    #[test]
    fn mismatched_block_sizes_are_refused() {
        let mut d = naa(2);
        d.block_size = BlockSize(4096);
        assert!(matches!(
            plan(&naa(1), &d, range(0, 0, 8), &Limits::CONSERVATIVE),
            Err(EngineError::CopyManager(e)) if matches!(*e, CopyError::BlockSizes { .. })
        ));
    }
}
