//! Host-driven (LAN-free) backup: this host reads its own disk LUN and
//! writes the set to a tape drive on the SAN.
//!
//! Two threads: a reader keeps `queue_depth` READ(16)s in flight on the
//! disk session; this thread writes records to tape as they arrive. A
//! bounded channel between them sets the pace of the slower side and
//! bounds memory (about `3 × queue_depth` chunks).

use std::sync::mpsc;

use uuid::Uuid;

use super::guard::{refuse_live_writer, PositionGuard};
use super::handoff::{self, handoff, Eager};
use super::interrupt::StopFlag;
use super::set_writer::{
    volume_row, Moved, Mover, NextVolume, Placement, SetPlan, SetRequest, SetWriter, SourceSurvey,
    Spanned, Tally,
};
use super::volume::{find_append_point, require_label_probed};
use super::{now, EngineError, Progress, Refusal, SetSummary};
use crate::catalog::{Catalog, SetPart, VolumeRow};
use crate::device::disk::chunks;
use crate::device::tape::Reservation;
use crate::device::{Disk, Tape};
use crate::format::{
    encode_record_header, Continuation, Mode, RecordHeader, SetDigest, SourceIdentity, VolumeLabel,
};
use crate::transport::Transport;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The set: range, label, tape block size, addresses, stop flag.
    pub set: SetRequest,
    /// READ(16)s kept in flight on the source.
    pub queue_depth: usize,
    /// Persistent reservation key for the drive.
    pub reservation_key: u64,
    /// Keep the reservation at the end: a backup server takes it back,
    /// so the drive is never left unreserved for a host it fenced.
    pub keep_reservation: bool,
}

/// What `backup --json` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupSummary {
    #[serde(flatten)]
    pub set: SetSummary,
    pub volume_name: String,
    pub reservation: Reservation,
}

/// Reserve the drive, warning once when it cannot be reserved.
pub fn reserve<T: Transport>(tape: &mut Tape<T>, key: u64) -> Result<Reservation, EngineError> {
    let r = tape.reserve(key)?;
    if r == Reservation::None {
        log::warn!(
            "{}: the drive supports neither PERSISTENT RESERVE nor RESERVE(6); it is not reserved, so another initiator could move the tape",
            tape.scsi.name()
        );
    }
    Ok(r)
}

/// Release, logging (not failing) when the release itself fails: the
/// backup's own outcome is what the user needs to see.
pub fn release<T: Transport>(tape: &mut Tape<T>, r: Reservation) {
    if let Err(e) = tape.release(r) {
        log::warn!("{}: releasing the drive failed: {e}", tape.scsi.name());
    }
}

/// Run a host-driven backup of `source` to `tape`, recording it in `catalog`.
pub fn backup<S: Transport + Send, T: Transport>(
    source: &mut Disk<S>,
    tape: &mut Tape<T>,
    catalog: &Catalog,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary, EngineError> {
    backup_from(source, None, tape, catalog, opts, progress)
}

/// [`backup`], reading `source` on behalf of another LU: with
/// `production` given (a serverless backup, where `source` is a snapshot
/// of it), the set header's `source` and the catalog name `production`,
/// the header's `snapshot` names the LU actually read, and the set's mode
/// is serverless.
pub fn backup_from<S: Transport + Send, T: Transport>(
    source: &mut Disk<S>,
    production: Option<SourceIdentity>,
    tape: &mut Tape<T>,
    catalog: &Catalog,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary, EngineError> {
    backup_spanning(source, production, (tape, None), catalog, opts, progress)
}

/// [`backup_from`] with a source of next volumes: a set that meets the
/// end of its volume continues on the volume `next` puts in the drive
/// (FORMAT.md "Multi-volume sets"); without one it is closed incomplete.
pub fn backup_spanning<'a, S: Transport + Send, T: Transport>(
    source: &'a mut Disk<S>,
    production: Option<SourceIdentity>,
    (tape, next): (&'a mut Tape<T>, Option<&'a mut dyn NextVolume<T>>),
    catalog: &Catalog,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary, EngineError> {
    let survey = SourceSurvey::read(source, &opts.set.source_url, production)?;
    let mode = match survey.snapshot {
        Some(_) => Mode::SERVERLESS,
        None => Mode::HOST,
    };
    let writer = SetWriter::new(&opts.set, survey, MAX_PER_RECORD)?;
    let reservation = reserve(tape, opts.reservation_key)?;
    let mut mover = HostMover {
        source,
        drive: Drive::new(tape, next),
        queue_depth: opts.queue_depth.max(1),
        mode,
    };
    let result = writer.run(&mut mover, catalog, progress);
    if !opts.keep_reservation {
        release(mover.drive.tape, reservation);
    }
    let (set, place) = result?;
    Ok(BackupSummary {
        set,
        volume_name: place.volume_name.unwrap_or_default(),
        reservation,
    })
}

/// A record is one READ(16), whose transfer length is 32 bits (SBC-4
/// 5.13).
const MAX_PER_RECORD: u64 = u32::MAX as u64;

/// The host-driven mover: a reader thread keeps `queue_depth` READ(16)s in
/// flight on the source and frames each record in place; this thread
/// writes one tape block per record.
struct HostMover<'a, S: Transport, T: Transport> {
    source: &'a mut Disk<S>,
    drive: Drive<'a, T>,
    queue_depth: usize,
    mode: Mode,
}

/// The tape side of a set, which may go on to further volumes: the drive,
/// what gives the next volume, the volume and tape file being written and
/// the parts closed so far.
struct Drive<'a, T: Transport> {
    tape: &'a mut Tape<T>,
    next: Option<&'a mut dyn NextVolume<T>>,
    /// The volume in the drive (read by `place`, then by each switch).
    label: Option<VolumeLabel>,
    /// The current part's tape file.
    file: u32,
    /// The current part's first block address, where the drive's
    /// positions are trusted.
    block: Option<u64>,
    guard: PositionGuard,
    spanned: Spanned,
    /// The current part's file is closed (trailer and filemark written):
    /// nothing more may be written there, not even after a failure.
    closed: bool,
}

/// A framed record on its way to the tape: the block, the set digest
/// after it, its payload length.
type Framed = (Vec<u8>, SetDigest, u64);

impl<S: Transport + Send, T: Transport> Mover for HostMover<'_, S, T> {
    fn mode(&self) -> Mode {
        self.mode
    }

    /// The label says which volume this is; the append point is found on
    /// the tape itself.
    fn place(&mut self, catalog: &Catalog, _tape_url: &str) -> Result<Placement, EngineError> {
        let tape = &mut *self.drive.tape;
        let (label, trusted) = require_label_probed(tape)?;
        refuse_live_writer(catalog, label.uuid, &label.name)?;
        catalog.upsert_volume(&VolumeRow {
            id: label.uuid,
            name: label.name.clone(),
            created: label.created as i64,
            last_file: None,
        })?;
        let file = find_append_point(tape)?;
        self.drive.file = file;
        self.drive.label = Some(label.clone());
        // Where the set header goes: restore and verify LOCATE there.
        let block = if trusted { tape.drive_block()? } else { None };
        self.drive.block = block;
        Ok(Placement {
            volume: label.uuid,
            volume_name: Some(label.name),
            file,
            block,
        })
    }

    /// Header, data records, trailer, filemark. The filemark is the
    /// confirmation: tgt makes data durable there and nowhere else.
    fn write(
        &mut self,
        set: &SetPlan,
        stop: StopFlag,
        progress: &dyn Progress,
    ) -> Result<Moved, EngineError> {
        self.drive.guard = PositionGuard::start(self.drive.tape);
        self.drive.tape.write_block(set.header_bytes.clone())?;
        progress.start(set.extent.bytes(), "backup");
        let streamed = self.stream(set, stop, progress);
        progress.finish();
        let (tally, digest) = streamed?;
        let trailer = tally.trailer(digest, false, now());
        self.drive.close_part(&tally, trailer.encode())?;
        let spanned = self.drive.spanned(&tally);
        Ok(tally.moved(digest, spanned))
    }

    fn close_failed(&mut self, _cause: &EngineError) {
        // A tape failure forgets the position: only after a source failure
        // is the tape known to be fine, and the file is closed. A part
        // already closed (the next volume could not be had) stays as is.
        let tape = &mut *self.drive.tape;
        if !self.drive.closed && tape.position().block.is_some() {
            if let Err(e) = tape.write_filemarks(1) {
                log::warn!("{}: closing the failed set's file: {e}", tape.scsi.name());
            }
        }
    }
}

impl<'a, T: Transport> Drive<'a, T> {
    fn new(tape: &'a mut Tape<T>, next: Option<&'a mut dyn NextVolume<T>>) -> Self {
        Drive {
            tape,
            next,
            label: None,
            file: 0,
            block: None,
            guard: PositionGuard::unset(),
            spanned: Spanned::default(),
            closed: false,
        }
    }

    /// Write `trailer` and the filemark after the current part's records:
    /// right after them, or nowhere (the guard checks the position).
    fn close_part(&mut self, tally: &Tally, trailer: Vec<u8>) -> Result<(), EngineError> {
        let written = 1 + tally.part_records();
        self.guard.check(self.tape, written, "the trailer")?;
        self.tape.write_block(trailer)?;
        self.guard.check(self.tape, written + 1, "the filemark")?;
        self.tape.write_filemarks(1)?;
        self.closed = true;
        Ok(())
    }

    /// Whether a set at early warning can go on to another volume: there
    /// is a source of volumes and records are left to write.
    fn can_continue(&self, tally: &Tally, planned: u64) -> bool {
        self.next.is_some() && tally.records < planned
    }

    /// The current part, as the catalog lists it.
    fn part(&self, tally: &Tally) -> SetPart {
        let label = self.label.as_ref();
        SetPart {
            part: tally.part,
            volume: label.map_or(Uuid::nil(), |l| l.uuid),
            volume_name: label.map(|l| l.name.clone()).unwrap_or_default(),
            file_number: self.file,
            first_seq: tally.part_start,
            records: tally.part_records(),
            bytes: tally.bytes - tally.part_offset,
            tape_block: self.block,
        }
    }

    /// Where the set went, the last part included; empty on one volume.
    fn spanned(&mut self, tally: &Tally) -> Spanned {
        let mut s = std::mem::take(&mut self.spanned);
        if !s.parts.is_empty() {
            s.parts.push(self.part(tally));
        }
        s
    }

    /// At early warning: close this part with a continuation trailer (the
    /// digest `so_far`), have the next volume put in the drive, check its
    /// label, and open the next part with a continuation header at its
    /// append point (FORMAT.md "Multi-volume sets").
    fn continue_on_next(
        &mut self,
        set: &SetPlan,
        tally: &mut Tally,
        so_far: &SetDigest,
    ) -> Result<(), EngineError> {
        let trailer = tally.continued_trailer(so_far.clone().finish(), now());
        self.close_part(tally, trailer.encode())?;
        let full = self
            .label
            .clone()
            .ok_or(EngineError::Stopped("no volume label read"))?;
        let part = tally.part + 1;
        let (label, file, block) =
            self.load_next(set.set_id(), part, &full)
                .map_err(|e| EngineError::NoNextVolume {
                    set: set.set_id(),
                    part,
                    full: full.name.clone(),
                    source: Box::new(e),
                })?;
        self.spanned.parts.push(self.part(tally));
        self.spanned.volumes.push(volume_row(&label));
        tally.next_part();
        self.guard = PositionGuard::start(self.tape);
        let header = Continuation {
            set_id: set.set_id(),
            volume_id: label.uuid,
            part,
            payload_size: set.header.payload_size,
            first_seq: tally.part_start,
            offset: tally.part_offset,
            lba: set.extent.lba.0 + tally.part_offset / u64::from(set.extent.block_size.0),
            prev_volume: full.uuid,
            prev_file: self.file,
            created: now(),
            prev_name: full.name.clone(),
        };
        self.closed = false;
        (self.label, self.file, self.block) = (Some(label), file, block);
        self.tape.write_block(header.encode())?;
        Ok(())
    }

    /// Ask for the next volume and check what came: a sanmover volume
    /// other than `full`; its label, the tape file the part goes in and,
    /// where the drive's positions are trusted, its block address.
    fn load_next(
        &mut self,
        set: Uuid,
        part: u32,
        full: &VolumeLabel,
    ) -> Result<(VolumeLabel, u32, Option<u64>), EngineError> {
        let next = self
            .next
            .as_mut()
            .ok_or(EngineError::Stopped("no source of next volumes"))?;
        next.next_volume(self.tape, set, part, full)?;
        let (label, trusted) = require_label_probed(self.tape)?;
        if label.uuid == full.uuid {
            return Err(Refusal::SameVolume {
                device: self.tape.scsi.name().to_string(),
                name: label.name,
                id: label.uuid,
                set,
            }
            .into());
        }
        let file = find_append_point(self.tape)?;
        let block = if trusted {
            self.tape.drive_block()?
        } else {
            None
        };
        Ok((label, file, block))
    }
}

impl<S: Transport + Send, T: Transport> HostMover<'_, S, T> {
    /// The data records, from the reader thread to the tape, until the
    /// range is done or the tally stops; the tally and the digest of what
    /// reached the tape.
    fn stream(
        &mut self,
        set: &SetPlan,
        stop: StopFlag,
        progress: &dyn Progress,
    ) -> Result<(Tally, [u8; 32]), EngineError> {
        let header = &set.header;
        let depth = self.queue_depth;
        let (tx, rx) = handoff::<Framed>(depth, Eager::Receiver);
        let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
        let (source, drive) = (&mut *self.source, &mut self.drive);
        let mut tally = Tally::new(header.set_id);
        std::thread::scope(|s| {
            let reader = s.spawn(move || frame_records(source, set, depth, tx, spare_rx));
            // Returning drops the receiver, which stops a reader still
            // sending.
            let mut side = TapeSide {
                drive,
                tally: &mut tally,
                set,
            };
            let written = write_records(&mut side, rx, &spare_tx, stop, progress);
            let read = reader
                .join()
                .unwrap_or_else(|_| Err(EngineError::Stopped("the disk reader panicked")));
            match (written, read) {
                (Err(w), _) => Err(w),
                (Ok(d), Err(EngineError::Stopped(_))) if tally.stopped.is_some() => Ok(d),
                (Ok(d), r) => r.map(|()| d),
            }
        })
        .map(|last| {
            // No record at all: the digest of nothing.
            let digest = last.unwrap_or_else(|| SetDigest::new(header.digest));
            (tally, digest.finish())
        })
    }
}

/// The reader thread: READ(16)s pipelined on the source, each chunk read
/// in behind room for its record header, which is then framed in place
/// (the payload is never copied). It also digests, so the tape thread
/// does nothing but WRITE(6); each record travels with the digest state
/// after it, so an early stop keeps the digest of exactly what reached
/// the tape.
fn frame_records<S: Transport>(
    source: &mut Disk<S>,
    set: &SetPlan,
    depth: usize,
    tx: handoff::Sender<Framed>,
    spare: mpsc::Receiver<Vec<u8>>,
) -> Result<(), EngineError> {
    let (extent, id) = (&set.extent, set.header.set_id);
    let mut running = SetDigest::new(set.header.digest);
    let mut seq = 0u64;
    let records = chunks(extent.lba, extent.blocks, extent.per_record as u32);
    source.read_chunks_pipelined::<EngineError>(
        records,
        extent.block_size,
        depth,
        |_| RecordHeader::LEN,
        |_chunk, mut rec| {
            let payload = &rec[RecordHeader::LEN..];
            running.update(payload);
            let n = payload.len() as u64;
            let h = encode_record_header(id, seq, payload);
            rec[..RecordHeader::LEN].copy_from_slice(&h);
            seq += 1;
            tx.send((rec, running.clone(), n))
                .map_err(|_| EngineError::Stopped("the tape writer stopped"))?;
            Ok(spare.try_recv().ok())
        },
    )
}

/// What the tape thread writes with: the drive, the tally, the set.
struct TapeSide<'s, 'a, T: Transport> {
    drive: &'s mut Drive<'a, T>,
    tally: &'s mut Tally,
    set: &'s SetPlan,
}

/// The tape thread: one WRITE(6) a record, then, with the record on tape,
/// at early warning go on to the next volume when there is a source of
/// them, else ask the tally whether to stop (early warning, a signal).
/// The digest state after the last record that reached the tape.
///
/// Early warning is the drive's EOM on a WRITE that wrote its block (SSC-4
/// 4.2.5): at the early-warning point, or, on a drive without one (tgt),
/// at the capacity itself, past which tgt keeps writing. Only a trailer
/// and a filemark follow it on that volume.
fn write_records<T: Transport>(
    side: &mut TapeSide<'_, '_, T>,
    rx: handoff::Receiver<Framed>,
    spare: &mpsc::Sender<Vec<u8>>,
    stop: StopFlag,
    progress: &dyn Progress,
) -> Result<Option<SetDigest>, EngineError> {
    let mut digest = None;
    let planned = side.set.extent.records();
    for (rec, state, n) in &rx {
        let (w, back) = side.drive.tape.write_block_buf(rec)?;
        let _ = spare.send(back);
        side.tally.wrote(1, n);
        progress.advance(n);
        let signal = stop.raised();
        // The last record past early warning: only the trailer and the
        // filemark follow, which the early-warning zone has room for.
        let mut early_warning = w.early_warning && side.tally.records < planned;
        if early_warning && signal.is_none() && side.drive.can_continue(side.tally, planned) {
            side.drive.continue_on_next(side.set, side.tally, &state)?;
            early_warning = false;
        }
        digest = Some(state);
        if side.tally.stop_at(early_warning, signal) {
            break;
        }
    }
    Ok(digest)
}
