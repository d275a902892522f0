//! Restore and verify of one backup set, whatever mode wrote it.
//!
//! Both position the tape with REWIND + SPACE filemarks forward (tgt's
//! backward SPACE is off by one), check the label is the set's volume,
//! then read the set file checking every record's CRC, set id and
//! sequence, the trailer's counts and the set digest against the
//! trailer and the catalog.

use std::ops::Range;
use std::sync::mpsc;
use std::time::Instant;

use uuid::Uuid;

use super::volume::{require_label, scan_set, SetEnd, SetScan};
use super::{EngineError, Progress};
use crate::catalog::SetRow;
use crate::device::disk::Next;
use crate::device::{Disk, Tape};
use crate::format::hex;
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
    /// The set's digest algorithm, from its set header.
    pub digest_algorithm: crate::format::DigestAlgorithm,
    pub digest: String,
    /// Restore only: where the data went.
    pub target_lba: Option<u64>,
    /// Verify with --compare-source: bytes compared with the source LUN.
    pub compared_with_source: Option<u64>,
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
            return Err(corrupt(
                "the trailer marks the set incomplete (end of medium)".into(),
            ))
        }
        SetEnd::Trailer(_) => {}
    }
    let algorithm = scan.header.digest;
    if set.info.digest_algorithm != algorithm.name() {
        return Err(corrupt(format!(
            "the set header on tape names a {algorithm} digest, the catalog recorded {}",
            set.info.digest_algorithm
        )));
    }
    if let Some(want) = &set.outcome.digest {
        let got = hex(&scan.digest);
        if &got != want {
            return Err(corrupt(format!(
                "{algorithm} digest on tape is {got}, the catalog recorded {want}"
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
        digest_algorithm: scan.header.digest,
        digest: hex(&scan.digest),
        target_lba: None,
        compared_with_source: None,
    }
}

/// Re-read `set` from tape and check it; with `source`, also compare every
/// byte with the source LUN's current contents.
pub fn verify<T: Transport + Send, S: Transport>(
    tape: &mut Tape<T>,
    set: &SetRow,
    mut source: Option<&mut Disk<S>>,
    progress: &dyn Progress,
) -> Result<ReadSummary, EngineError> {
    position(tape, set)?;
    progress.start(set.outcome.bytes, "verify");
    let t0 = Instant::now();
    let bs = BlockSize(set.info.block_size);
    let mut lba = set.info.lba;
    let mut compared = 0u64;
    let scan = scan_set(tape, Some(set.info.id), |seq, p| {
        let payload = p.bytes();
        if let Some(disk) = source.as_deref_mut() {
            let blocks = (payload.len() / bs.0 as usize) as u32;
            let data = disk.read(Lba(lba), blocks, bs)?;
            if let Some(off) = data.iter().zip(payload).position(|(a, b)| a != b) {
                return Err(EngineError::Corrupt {
                    set: set.info.id,
                    seq: Some(seq),
                    reason: format!(
                        "differs from the source at byte {} (LBA {})",
                        compared + off as u64,
                        lba + off as u64 / bs.0 as u64
                    ),
                });
            }
            lba += blocks as u64;
            compared += payload.len() as u64;
        }
        progress.advance(payload.len() as u64);
        Ok(Some(p.into_block()))
    });
    progress.finish();
    let scan = scan?;
    finish_checks(set, &scan)?;
    let mut s = summary(set, &scan, t0);
    s.compared_with_source = source.is_some().then_some(compared);
    Ok(s)
}

/// Restore `set` to `target` from `target_lba`, WRITE(16)s pipelined with
/// the tape reads. The target must hold the whole set in the set's block
/// size. When a check fails the error says so and the target holds a
/// partial copy.
pub fn restore<T: Transport + Send, D: Transport + Send>(
    tape: &mut Tape<T>,
    set: &SetRow,
    target: &mut Disk<D>,
    target_lba: u64,
    queue_depth: usize,
    progress: &dyn Progress,
) -> Result<ReadSummary, EngineError> {
    let cap = target.capacity()?;
    if cap.block_size.0 != set.info.block_size {
        return Err(EngineError::Refused(format!(
            "{}: target block size is {} bytes, the set was taken with {}",
            target.scsi.name(),
            cap.block_size.0,
            set.info.block_size
        )));
    }
    if target_lba
        .checked_add(set.info.blocks)
        .is_none_or(|end| end > cap.blocks.0)
    {
        return Err(EngineError::Refused(format!(
            "{}: the target holds {} blocks; the set needs {} from LBA {target_lba}",
            target.scsi.name(),
            cap.blocks.0,
            set.info.blocks
        )));
    }
    position(tape, set)?;
    progress.start(set.outcome.bytes, "restore");
    let t0 = Instant::now();
    let depth = queue_depth.max(1);
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
        let scan = scan_set(tape, Some(set.info.id), |_seq, p| {
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
