//! Restore and verify of one backup set, whatever mode wrote it.
//!
//! Both position the tape with REWIND + SPACE filemarks forward (tgt's
//! backward SPACE is off by one), check the label is the set's volume,
//! then read the set file checking every record's CRC, set id and
//! sequence, the trailer's counts and the SHA-256 of the data against the
//! trailer and the catalog.

use std::ops::Range;
use std::sync::mpsc;
use std::time::Instant;

use uuid::Uuid;

use super::volume::{
    designator_text, read_header, require_label, scan_records, scan_set, SetEnd, SetScan,
};
use super::{EngineError, Progress};
use crate::catalog::SetRow;
use crate::device::disk::Next;
use crate::device::{Disk, Tape};
use crate::format::{hex, SetHeader};
use crate::scsi::spc::Association;
use crate::scsi::{BlockSize, Lba};
use crate::transport::Transport;

/// What `restore` and `verify` print.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadSummary {
    pub set_id: Uuid,
    pub tape_file: u32,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    #[serde(rename = "MBps")]
    pub mbps: f64,
    pub sha256: String,
    /// Restore only: where the data went.
    pub target_lba: Option<u64>,
    /// Verify with --compare-source: bytes compared with the source LUN.
    pub compared_with_source: Option<u64>,
    /// Verify with --compare-target: bytes compared with the target disk
    /// (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared_with_target: Option<u64>,
}

/// Put the tape at the start of `set`'s file after checking the label.
fn position<T: Transport>(tape: &mut Tape<T>, set: &SetRow) -> Result<(), EngineError> {
    let label = require_label(tape)?;
    if label.uuid != set.info.volume {
        return Err(EngineError::Refused(format!(
            "{}: this tape is volume {} ({}); set {} is on volume {} ({})",
            tape.scsi.name(),
            label.name,
            label.uuid,
            set.info.id,
            set.volume_name,
            set.info.volume
        )));
    }
    tape.seek_file(set.info.file_number)?;
    Ok(())
}

/// The checks every read of a set ends with: a trailer, and the digest the
/// catalog recorded.
fn finish_checks(set: &SetRow, scan: &SetScan) -> Result<(), EngineError> {
    let corrupt = |reason: String| EngineError::Corrupt {
        set: set.info.id,
        seq: None,
        reason,
    };
    match &scan.end {
        SetEnd::Truncated => {
            return Err(corrupt(format!(
                "the set ends after {} records without a trailer: it was interrupted or damaged",
                scan.records
            )))
        }
        SetEnd::Trailer(t) if !t.complete => {
            return Err(corrupt(format!(
                "the trailer marks the set incomplete ({}): it holds {} of the planned bytes",
                t.stop, t.bytes
            )))
        }
        SetEnd::Trailer(_) => {}
    }
    if let Some(want) = &set.outcome.sha256 {
        let got = hex(&scan.sha256);
        if &got != want {
            return Err(corrupt(format!(
                "SHA-256 of the data on tape is {got}, the catalog recorded {want}"
            )));
        }
    }
    if set.outcome.records != scan.records || set.outcome.bytes != scan.bytes {
        return Err(corrupt(format!(
            "the catalog recorded {} records / {} bytes, the tape holds {} / {}",
            set.outcome.records, set.outcome.bytes, scan.records, scan.bytes
        )));
    }
    Ok(())
}

fn summary(set: &SetRow, scan: &SetScan, t0: Instant) -> ReadSummary {
    let seconds = t0.elapsed().as_secs_f64();
    ReadSummary {
        set_id: set.info.id,
        tape_file: set.info.file_number,
        records: scan.records,
        bytes: scan.bytes,
        seconds,
        mbps: super::mbps(scan.bytes, seconds),
        sha256: hex(&scan.sha256),
        target_lba: None,
        compared_with_source: None,
        compared_with_target: None,
    }
}

/// Re-read `set` from tape and check it; with `source`, also compare every
/// byte with the source LUN's current contents.
pub fn verify<T: Transport + Send, S: Transport>(
    tape: &mut Tape<T>,
    set: &SetRow,
    source: Option<&mut Disk<S>>,
    progress: &dyn Progress,
) -> Result<ReadSummary, EngineError> {
    let compare = source.map(|disk| Compare {
        disk,
        lba: set.info.lba,
        with: CompareWith::Source,
    });
    verify_against(tape, set, compare, progress)
}

/// What a verify compares the set's data with, besides its own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareWith {
    /// The LU the set was taken from, as it is now.
    Source,
    /// Another disk, e.g. a restored copy: proves a restore without the
    /// original.
    Target,
}

/// A disk to compare a set with, from `lba` on (the set's first block
/// there).
pub struct Compare<'a, S: Transport> {
    pub disk: &'a mut Disk<S>,
    pub lba: u64,
    pub with: CompareWith,
}

/// [`verify`], comparing every byte of the set with `compare` when given.
/// A target must hold the whole set in the set's block size (checked
/// before the tape moves); the first difference is a
/// [`EngineError::Corrupt`] naming the byte and the LBA.
pub fn verify_against<T: Transport + Send, S: Transport>(
    tape: &mut Tape<T>,
    set: &SetRow,
    mut compare: Option<Compare<'_, S>>,
    progress: &dyn Progress,
) -> Result<ReadSummary, EngineError> {
    if let Some(c) = compare.as_mut().filter(|c| c.with == CompareWith::Target) {
        check_target(c.disk, set, c.lba)?;
    }
    position(tape, set)?;
    progress.start(set.outcome.bytes, "verify");
    let t0 = Instant::now();
    let bs = BlockSize(set.info.block_size);
    let mut compared = 0u64;
    let scan = scan_set(tape, Some(set.info.id), |seq, p| {
        if let Some(c) = compare.as_mut() {
            compare_payload(c, (set.info.id, seq), bs, compared, p.bytes())?;
            compared += p.bytes().len() as u64;
        }
        progress.advance(p.bytes().len() as u64);
        Ok(Some(p.into_block()))
    });
    progress.finish();
    let scan = scan?;
    finish_checks(set, &scan)?;
    let mut s = summary(set, &scan, t0);
    match compare.map(|c| c.with) {
        Some(CompareWith::Source) => s.compared_with_source = Some(compared),
        Some(CompareWith::Target) => s.compared_with_target = Some(compared),
        None => {}
    }
    Ok(s)
}

/// Read the blocks under record `at` (set id, sequence) from the compared
/// disk, check them against `payload`, and advance past them.
fn compare_payload<S: Transport>(
    c: &mut Compare<'_, S>,
    at: (Uuid, u64),
    bs: BlockSize,
    compared: u64,
    payload: &[u8],
) -> Result<(), EngineError> {
    let blocks = (payload.len() / bs.0 as usize) as u32;
    let data = c.disk.read(Lba(c.lba), blocks, bs)?;
    if let Some(off) = data.iter().zip(payload).position(|(a, b)| a != b) {
        let what = match c.with {
            CompareWith::Source => "the source".to_string(),
            CompareWith::Target => format!("the target {}", c.disk.scsi.name()),
        };
        return Err(EngineError::Corrupt {
            set: at.0,
            seq: Some(at.1),
            reason: format!(
                "differs from {what} at byte {} (LBA {})",
                compared + off as u64,
                c.lba + off as u64 / bs.0 as u64
            ),
        });
    }
    c.lba += blocks as u64;
    Ok(())
}

/// Where and how a restore writes.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// First LBA on the target [default: the set's own first LBA, so a
    /// partial-range set goes back where it came from].
    pub target_lba: Option<u64>,
    /// WRITE(16)s kept in flight.
    pub queue_depth: usize,
    /// Allow the target to be the set's own source LU (its VPD 0x83
    /// identity is in the set header): that overwrites the source.
    pub overwrite_source: bool,
}

/// Refuse a target that is the LU the set was taken from, unless allowed:
/// the blocks it would overwrite are named.
fn refuse_own_source<D: Transport>(
    header: &SetHeader,
    target: &mut Disk<D>,
    target_lba: u64,
    allowed: bool,
) -> Result<(), EngineError> {
    let di = match target.scsi.device_identification() {
        Ok(di) => di,
        Err(e) => {
            log::warn!(
                "{}: no VPD 0x83 identity ({e}); cannot tell whether it is the set's source LU",
                target.scsi.name()
            );
            return Ok(());
        }
    };
    // Only designators that name one LU count: LIO gives every LU the
    // same LU group designator.
    let same = di.designators.iter().any(|d| {
        d.names_lu()
            && header.source.designators.iter().any(|s| {
                s.association == Association::LU.0
                    && s.designator_type == d.designator_type.0
                    && s.code_set == d.code_set.0
                    && s.value == d.value
            })
    });
    if !same || allowed {
        return Ok(());
    }
    let last = target_lba + header.blocks.saturating_sub(1);
    Err(EngineError::Refused(format!(
        "{}: the restore target is set {}'s own source LU ({}); restoring would overwrite LBA {target_lba}..={last} ({} blocks of {} bytes) with the data of the set; give --force to overwrite the source",
        target.scsi.name(),
        header.set_id,
        designator_text(&header.source),
        header.blocks,
        header.block_size
    )))
}

/// A disk that receives (or is compared with) `set` from `lba` on must
/// have the set's block size and hold all of it.
fn check_target<D: Transport>(
    target: &mut Disk<D>,
    set: &SetRow,
    lba: u64,
) -> Result<(), EngineError> {
    let cap = target.capacity()?;
    if cap.block_size.0 != set.info.block_size {
        return Err(EngineError::Refused(format!(
            "{}: target block size is {} bytes, the set was taken with {}",
            target.scsi.name(),
            cap.block_size.0,
            set.info.block_size
        )));
    }
    if lba
        .checked_add(set.info.blocks)
        .is_none_or(|end| end > cap.blocks.0)
    {
        return Err(EngineError::Refused(format!(
            "{}: the target holds {} blocks; the set needs {} from LBA {lba}",
            target.scsi.name(),
            cap.blocks.0,
            set.info.blocks
        )));
    }
    Ok(())
}

/// The set header at the tape's position, which must be `set`'s.
fn set_header<T: Transport>(tape: &mut Tape<T>, set: &SetRow) -> Result<SetHeader, EngineError> {
    let header = read_header(tape)?.ok_or_else(|| {
        EngineError::Refused(format!(
            "{}: no backup set at tape file {}",
            tape.scsi.name(),
            set.info.file_number
        ))
    })?;
    if header.set_id != set.info.id {
        return Err(EngineError::Corrupt {
            set: set.info.id,
            seq: None,
            reason: format!(
                "the tape file holds set {} instead; the catalog and the tape disagree",
                header.set_id
            ),
        });
    }
    Ok(header)
}

/// Restore `set` to `target`, WRITE(16)s pipelined with the tape reads: at
/// the set's own LBA unless `opts` moves it, and never over the set's own
/// source LU unless `opts` allows it (checked against the set header
/// before anything is written). The target must hold the whole set in the
/// set's block size. When a check fails the error says so and the target
/// holds a partial copy.
pub fn restore<T: Transport + Send, D: Transport + Send>(
    tape: &mut Tape<T>,
    set: &SetRow,
    target: &mut Disk<D>,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<ReadSummary, EngineError> {
    let target_lba = opts.target_lba.unwrap_or(set.info.lba);
    check_target(target, set, target_lba)?;
    position(tape, set)?;
    let header = set_header(tape, set)?;
    refuse_own_source(&header, target, target_lba, opts.overwrite_source)?;
    progress.start(set.outcome.bytes, "restore");
    let t0 = Instant::now();
    let depth = opts.queue_depth.max(1);
    let bs = BlockSize(set.info.block_size);
    // Payloads go to the writer in the tape blocks they arrived in, and
    // the blocks come back to the tape reader once written.
    let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, Range<usize>)>(depth);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let result = std::thread::scope(|s| {
        let writer = s.spawn(move || {
            target.write_pipelined::<EngineError>(
                Lba(target_lba),
                bs,
                depth,
                |block| {
                    Ok(if block {
                        rx.recv().map_or(Next::End, |(b, span)| Next::Span(b, span))
                    } else {
                        match rx.try_recv() {
                            Ok((b, span)) => Next::Span(b, span),
                            Err(mpsc::TryRecvError::Empty) => Next::Wait,
                            Err(mpsc::TryRecvError::Disconnected) => Next::End,
                        }
                    })
                },
                |buf| {
                    let _ = spare_tx.send(buf);
                },
            )
        });
        let scan = scan_records(tape, header, |_seq, p| {
            let n = p.bytes().len() as u64;
            tx.send(p.into_parts())
                .map_err(|_| EngineError::Stopped("the disk writer stopped".into()))?;
            progress.advance(n);
            Ok(spare_rx.try_recv().ok())
        });
        drop(tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(EngineError::Stopped("the disk writer panicked".into())));
        match (scan, written) {
            (Err(EngineError::Stopped(_)), Err(w)) => Err(w),
            (Err(e), _) => Err(e),
            (Ok(_), Err(w)) => Err(w),
            (Ok(scan), Ok(blocks)) => Ok((scan, blocks)),
        }
    });
    progress.finish();
    let (scan, blocks) = result?;
    finish_checks(set, &scan)?;
    if blocks != set.info.blocks {
        return Err(EngineError::Corrupt {
            set: set.info.id,
            seq: None,
            reason: format!(
                "{blocks} blocks restored, the set holds {}",
                set.info.blocks
            ),
        });
    }
    let mut s = summary(set, &scan, t0);
    s.target_lba = Some(target_lba);
    Ok(s)
}
