//! Restore and verify of one backup set, whatever mode wrote it.
//!
//! Both check the label is the set's volume, position the tape with
//! LOCATE to the set's recorded block address where the drive's
//! positions are trusted, else with REWIND + SPACE filemarks forward
//! (tgt: no LOCATE, and its backward SPACE is off by one), then read the
//! set file checking every record's CRC, set id and
//! sequence, the trailer's counts and the set digest against the
//! trailer and the catalog.

use std::sync::mpsc;
use std::time::Instant;

use uuid::Uuid;

use super::handoff::{handoff, Eager, Receiver, TryRecv};
use super::volume::{
    designator_text, open_set, read_blocks, read_first_block, read_header, require_label_probed,
    scan_part, Checked, FirstBlock, Payload, Returned, SetChecker, SetEnd, SetScan,
};
use super::{Corruption, EngineError, Progress, Refusal};
use crate::catalog::{SetPart, SetRow};
use crate::device::disk::Next;
use crate::device::tape::ReadOutcome;
use crate::device::{Disk, Tape};
use crate::format::{hex, SetHeader, SetTrailer, StopReason};
use crate::scsi::spc::Association;
use crate::scsi::{BlockCount, BlockSize, Lba};
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
    pub target_lba: Option<Lba>,
    /// Verify with --compare-source: bytes compared with the source LUN.
    pub compared_with_source: Option<u64>,
    /// Verify with --compare-target: bytes compared with the target disk
    /// (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared_with_target: Option<u64>,
}

/// Put the tape at the start of `set`'s file after checking the label, and
/// read the set header there. Where the catalog has the set's block
/// address and the drive's positions are trusted (see
/// [`require_label_probed`]): LOCATE there. Else REWIND + SPACE filemarks
/// forward (tgt: no LOCATE, and its backward SPACE is off by one).
fn position<T: Transport>(tape: &mut Tape<T>, set: &SetRow) -> Result<SetHeader, EngineError> {
    let (label, trusted) = require_label_probed(tape)?;
    if label.uuid != set.info.volume {
        return Err(Refusal::WrongVolume {
            device: tape.scsi.name().to_string(),
            name: label.name,
            id: label.uuid,
            set: set.info.id,
            set_volume_name: set.volume_name.clone(),
            set_volume: set.info.volume,
        }
        .into());
    }
    let block = set.info.tape_block.filter(|_| trusted);
    match block.and_then(|b| u32::try_from(b).ok()) {
        Some(b) => match tape.locate(b) {
            Ok(()) => return located_header(tape, set, b),
            Err(e) if e.is_unsupported_command() => {
                log::info!(
                    "{}: no LOCATE ({e}); spacing to the set's file",
                    tape.scsi.name()
                )
            }
            Err(e) => return Err(e.into()),
        },
        None => log::debug!(
            "{}: to file {} by REWIND + SPACE (block address {:?}, positions trusted: {trusted})",
            tape.scsi.name(),
            set.info.file_number,
            set.info.tape_block
        ),
    }
    tape.seek_file(set.info.file_number)?;
    open_set(tape, Some(set.info.id))
}

/// The set header at the block a LOCATE went to. Anything else there (a
/// record, another set, a filemark) means the catalog's address is wrong:
/// an error, never a restore of whatever is there.
fn located_header<T: Transport>(
    tape: &mut Tape<T>,
    set: &SetRow,
    block: u32,
) -> Result<SetHeader, EngineError> {
    let found = match read_header(tape) {
        Ok(Some(h)) if h.set_id == set.info.id => return Ok(h),
        Ok(Some(h)) => format!("the header of set {}", h.set_id),
        Ok(None) => "a filemark or end of data".to_string(),
        Err(EngineError::Format { source, .. }) => format!("no set header ({source})"),
        Err(e) => return Err(e),
    };
    Err(EngineError::Corrupt {
        set: set.info.id,
        seq: None,
        reason: Corruption::Misplaced {
            block: u64::from(block),
            file: set.info.file_number,
            found,
        },
    })
}

/// The checks every read of a set ends with: a trailer, and the digest the
/// catalog recorded.
fn finish_checks(set: &SetRow, scan: &SetScan) -> Result<(), EngineError> {
    let corrupt = |reason| EngineError::Corrupt {
        set: set.info.id,
        seq: None,
        reason,
    };
    match &scan.end {
        SetEnd::Truncated => {
            let records = scan.records;
            return Err(corrupt(Corruption::NoTrailer { records }));
        }
        SetEnd::Trailer(t) if !t.complete => {
            let (stop, bytes) = (t.stop, t.bytes);
            return Err(corrupt(Corruption::Incomplete { stop, bytes }));
        }
        SetEnd::Trailer(_) => {}
    }
    let algorithm = scan.header.digest;
    if set.info.digest_algorithm != algorithm.name() {
        return Err(corrupt(Corruption::CatalogAlgorithm {
            tape: algorithm,
            catalog: set.info.digest_algorithm.clone(),
        }));
    }
    if let Some(want) = &set.outcome.digest {
        let got = hex(&scan.digest);
        if &got != want {
            return Err(corrupt(Corruption::CatalogDigest {
                algorithm,
                tape: got,
                catalog: want.clone(),
            }));
        }
    }
    if set.outcome.records != scan.records || set.outcome.bytes != scan.bytes {
        return Err(corrupt(Corruption::CatalogCounts {
            catalog_records: set.outcome.records,
            catalog_bytes: set.outcome.bytes,
            records: scan.records,
            bytes: scan.bytes,
        }));
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
    pub lba: Lba,
    pub with: CompareWith,
}

/// [`verify`], comparing every byte of the set with `compare` when given.
/// A target must hold the whole set in the set's block size (checked
/// before the tape moves); the first difference is a
/// [`EngineError::Corrupt`] naming the byte and the LBA.
pub fn verify_against<T: Transport + Send, S: Transport>(
    tape: &mut Tape<T>,
    set: &SetRow,
    compare: Option<Compare<'_, S>>,
    progress: &dyn Progress,
) -> Result<ReadSummary, EngineError> {
    verify_spanning(tape, None, set, compare, progress)
}

/// What puts the cartridge of each later part of a multi-volume set in
/// the drive a restore or verify reads: the backup server (`--server`).
pub trait LoadPart<T: Transport> {
    /// Put `part`'s volume in the drive `tape` addresses.
    fn load_part(
        &mut self,
        tape: &mut Tape<T>,
        set: &SetRow,
        part: &SetPart,
    ) -> Result<(), EngineError>;
}

/// [`verify_against`], following a multi-volume set onto the volume of
/// each later part, which `loader` loads (without one, such a set is
/// refused at its first part's end, naming the cartridge it needs).
pub fn verify_spanning<T: Transport + Send, S: Transport>(
    tape: &mut Tape<T>,
    mut loader: Option<&mut dyn LoadPart<T>>,
    set: &SetRow,
    mut compare: Option<Compare<'_, S>>,
    progress: &dyn Progress,
) -> Result<ReadSummary, EngineError> {
    if let Some(c) = compare.as_mut().filter(|c| c.with == CompareWith::Target) {
        check_target(c.disk, set, c.lba)?;
    }
    let header = position(tape, set)?;
    progress.start(set.outcome.bytes, "verify");
    let t0 = Instant::now();
    let bs = set.info.block_size;
    let mut compared = 0u64;
    let mut sink = |seq, p: Payload| -> Result<Returned, EngineError> {
        if let Some(c) = compare.as_mut() {
            compare_payload(c, (set.info.id, seq), bs, compared, p.bytes())?;
            compared += p.bytes().len() as u64;
        }
        progress.advance(p.bytes().len() as u64);
        Ok(Some(p.into_block()))
    };
    let scan = (|| {
        let mut checker = SetChecker::new(header);
        loop {
            match scan_part(tape, &mut checker, &mut sink)? {
                SetEnd::Trailer(t) if t.stop == StopReason::CONTINUES => {
                    next_part(tape, &mut loader, set, &mut checker, &t)?
                }
                end => return checker.finish(end),
            }
        }
    })();
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
    let data = c.disk.read(c.lba, blocks, bs)?;
    if let Some(off) = data.iter().zip(payload).position(|(a, b)| a != b) {
        let with = match c.with {
            CompareWith::Source => "the source".to_string(),
            CompareWith::Target => format!("the target {}", c.disk.scsi.name()),
        };
        return Err(EngineError::Corrupt {
            set: at.0,
            seq: Some(at.1),
            reason: Corruption::Differs {
                with,
                byte: compared + off as u64,
                lba: Lba(c.lba.0 + off as u64 / u64::from(bs.0)),
            },
        });
    }
    c.lba = Lba(c.lba.0 + u64::from(blocks));
    Ok(())
}

/// After part trailer `t`, which continues on the next volume: check it,
/// have `loader` put the next part's volume in the drive, check its label
/// and position at the part's continuation header, and check that.
fn next_part<T: Transport>(
    tape: &mut Tape<T>,
    loader: &mut Option<&mut dyn LoadPart<T>>,
    set: &SetRow,
    checker: &mut SetChecker,
    t: &SetTrailer,
) -> Result<(), EngineError> {
    let corrupt = |reason| EngineError::Corrupt {
        set: set.info.id,
        seq: None,
        reason,
    };
    checker.end_part(t)?;
    let want = checker.part();
    let part = set
        .parts
        .iter()
        .find(|p| p.part == want)
        .ok_or_else(|| corrupt(Corruption::PartMissing { part: t.part }))?;
    let prev = set
        .parts
        .iter()
        .find(|p| p.part == t.part)
        .map_or((set.info.volume, set.info.file_number), |p| {
            (p.volume, p.file_number)
        });
    let Some(l) = loader.as_mut() else {
        return Err(Refusal::PartNotLoaded {
            set: set.info.id,
            part: part.part,
            volume_name: part.volume_name.clone(),
            volume: part.volume,
            file: part.file_number,
        }
        .into());
    };
    l.load_part(tape, set, part)?;
    let (label, trusted) = require_label_probed(tape)?;
    if label.uuid != part.volume {
        return Err(Refusal::WrongVolume {
            device: tape.scsi.name().to_string(),
            name: label.name,
            id: label.uuid,
            set: set.info.id,
            set_volume_name: part.volume_name.clone(),
            set_volume: part.volume,
        }
        .into());
    }
    seek_part(tape, part, trusted)?;
    match read_first_block(tape) {
        Ok(Some(FirstBlock::Continuation(c))) => checker.begin_part(&c, prev),
        Ok(Some(FirstBlock::Header(h))) => Err(corrupt(Corruption::OtherSet(h.set_id))),
        Ok(None) => Err(corrupt(Corruption::PartMissing { part: t.part })),
        Err(EngineError::Format { source, .. }) => Err(corrupt(Corruption::Continuation(source))),
        Err(e) => Err(e),
    }
}

/// Put the tape at the start of `part`'s file on the volume in the drive:
/// LOCATE to its block address where the catalog has one and the drive's
/// positions are `trusted`, else REWIND + SPACE filemarks (as for a set's
/// first part, [`position`]). What is there is checked by the caller.
fn seek_part<T: Transport>(
    tape: &mut Tape<T>,
    part: &SetPart,
    trusted: bool,
) -> Result<(), EngineError> {
    let block = part.tape_block.filter(|_| trusted);
    match block.and_then(|b| u32::try_from(b).ok()) {
        Some(b) => match tape.locate(b) {
            Ok(()) => {
                log::debug!(
                    "{}: part {} located at block {b}",
                    tape.scsi.name(),
                    part.part
                );
                return Ok(());
            }
            Err(e) if e.is_unsupported_command() => {
                log::info!("{}: no LOCATE ({e}); spacing to the part's file", tape.scsi.name())
            }
            Err(e) => return Err(e.into()),
        },
        None => log::debug!(
            "{}: part {} at file {} by REWIND + SPACE (block address {:?}, positions trusted: {trusted})",
            tape.scsi.name(),
            part.part,
            part.file_number,
            part.tape_block
        ),
    }
    tape.seek_file(part.file_number)?;
    Ok(())
}

/// Where and how a restore writes.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// First LBA on the target [default: the set's own first LBA, so a
    /// partial-range set goes back where it came from].
    pub target_lba: Option<Lba>,
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
    target_lba: Lba,
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
    Err(Refusal::OwnSource {
        device: target.scsi.name().to_string(),
        set: header.set_id,
        designator: designator_text(&header.source),
        from: target_lba,
        blocks: BlockCount(header.blocks),
        block_size: BlockSize(header.block_size),
    }
    .into())
}

/// A disk that receives (or is compared with) `set` from `lba` on must
/// have the set's block size and hold all of it.
fn check_target<D: Transport>(
    target: &mut Disk<D>,
    set: &SetRow,
    lba: Lba,
) -> Result<(), EngineError> {
    let cap = target.capacity()?;
    if cap.block_size != set.info.block_size {
        return Err(Refusal::TargetBlockSize {
            device: target.scsi.name().to_string(),
            target: cap.block_size,
            set: set.info.block_size,
        }
        .into());
    }
    if lba
        .checked_add(set.info.blocks)
        .is_none_or(|end| end.0 > cap.blocks.0)
    {
        return Err(Refusal::TargetTooSmall {
            device: target.scsi.name().to_string(),
            capacity: cap.blocks,
            blocks: set.info.blocks,
            from: lba,
        }
        .into());
    }
    Ok(())
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
    restore_spanning(tape, None, set, target, opts, progress)
}

/// [`restore`], following a multi-volume set onto the volume of each
/// later part, which `loader` loads (see [`verify_spanning`]).
pub fn restore_spanning<T: Transport + Send, D: Transport + Send>(
    tape: &mut Tape<T>,
    mut loader: Option<&mut dyn LoadPart<T>>,
    set: &SetRow,
    target: &mut Disk<D>,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<ReadSummary, EngineError> {
    let target_lba = opts.target_lba.unwrap_or(set.info.lba);
    check_target(target, set, target_lba)?;
    let header = position(tape, set)?;
    refuse_own_source(&header, target, target_lba, opts.overwrite_source)?;
    let mut checker = SetChecker::new(header);
    progress.start(set.outcome.bytes, "restore");
    let t0 = Instant::now();
    let (bs, depth) = (set.info.block_size, opts.queue_depth);
    let result = (|| -> Result<(u64, Option<SetEnd>), EngineError> {
        let mut blocks = 0u64;
        loop {
            let place = (Lba(target_lba.0 + blocks), bs);
            let (n, end) = write_checked(tape, target, &mut checker, place, depth, progress)?;
            blocks += n;
            match end {
                Some(SetEnd::Trailer(t)) if t.stop == StopReason::CONTINUES => {
                    next_part(tape, &mut loader, set, &mut checker, &t)?
                }
                end => return Ok((blocks, end)),
            }
        }
    })();
    progress.finish();
    let (blocks, end) = result?;
    // No trailer seen: the reader met a filemark or end of data first.
    let scan = checker.finish(end.unwrap_or(SetEnd::Truncated))?;
    finish_checks(set, &scan)?;
    if blocks != set.info.blocks.0 {
        return Err(EngineError::Corrupt {
            set: set.info.id,
            seq: None,
            reason: Corruption::ShortRestore {
                restored: BlockCount(blocks),
                holds: set.info.blocks,
            },
        });
    }
    let mut s = summary(set, &scan, t0);
    s.target_lba = Some(target_lba);
    Ok(s)
}

/// The restore's data path: read the set's blocks after its header, check
/// each with `checker` and write the payloads from `place` (LBA, block
/// size). Returns the blocks written and how the set's file ended (`None`:
/// the reader stopped before any end).
fn write_checked<T: Transport + Send, D: Transport>(
    tape: &mut Tape<T>,
    target: &mut Disk<D>,
    checker: &mut SetChecker,
    place: (Lba, BlockSize),
    queue_depth: usize,
    progress: &dyn Progress,
) -> Result<(u64, Option<SetEnd>), EngineError> {
    let depth = queue_depth.max(1);
    let (lba, bs) = place;
    // Two threads: a tape reader (one READ(6) at a time) and this one,
    // which checks each block and writes its payload with WRITE(16)s in
    // flight, straight out of the tape block, which then goes back to the
    // reader. Checking here rather than in a third thread saves a hand-off
    // per record, and the payload is still in this core's cache when the
    // WRITE sends it.
    let (tx, rx) = handoff::<(ReadOutcome, Vec<u8>)>(depth, Eager::Sender);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let (id, read_len) = (checker.set_id(), checker.read_len());
    let (mut end, mut failed) = (None, None);
    std::thread::scope(|s| {
        let reader = s.spawn(move || read_blocks(tape, id, read_len, tx, &spare_rx));
        let written = target.write_pipelined::<EngineError>(
            lba,
            bs,
            depth,
            |block| loop {
                let (o, buf) = match next_block(&rx, block) {
                    Ok(m) => m,
                    Err(next) => return Ok(next),
                };
                // A failed check ends the writes (those in flight finish),
                // then is the restore's error.
                let checked = checker.block(o, buf).map_err(|e| failed = Some(e));
                match checked {
                    Err(()) => return Ok(Next::End),
                    Ok(Checked::Payload(_, p)) => {
                        progress.advance(p.bytes().len() as u64);
                        let (b, span) = p.into_parts();
                        return Ok(Next::Span(b, span));
                    }
                    Ok(Checked::Consumed(b)) => {
                        let _ = spare_tx.send(b);
                    }
                    Ok(Checked::End(e)) => {
                        end = Some(e);
                        return Ok(Next::End);
                    }
                }
            },
            |buf| {
                let _ = spare_tx.send(buf);
            },
        );
        // Dropping the receiver stops a reader still sending.
        drop(rx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(EngineError::Stopped("the tape reader panicked")));
        match (failed.take(), written, read) {
            (Some(e), _, _) | (None, Err(e), _) | (None, Ok(_), Err(e)) => Err(e),
            (None, Ok(blocks), Ok(())) => Ok((blocks, end)),
        }
    })
}

/// The next block from the tape reader, waiting for it when `block`; else
/// what the disk writer does instead: wait on its own commands, or end.
fn next_block(
    rx: &Receiver<(ReadOutcome, Vec<u8>)>,
    block: bool,
) -> Result<(ReadOutcome, Vec<u8>), Next> {
    if block {
        return rx.recv().ok_or(Next::End);
    }
    match rx.try_recv() {
        TryRecv::Item(m) => Ok(m),
        TryRecv::Empty => Err(Next::Wait),
        TryRecv::Closed => Err(Next::End),
    }
}
