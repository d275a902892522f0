//! Host-driven (LAN-free) backup: this host reads its own disk LUN and
//! writes the set to a tape drive on the SAN.
//!
//! Two threads: a reader keeps `queue_depth` READ(16)s in flight on the
//! disk session; this thread writes records to tape as they arrive. A
//! bounded channel between them sets the pace of the slower side and
//! bounds memory (about `3 × queue_depth` chunks).

use std::sync::mpsc;

use super::guard::{refuse_live_writer, PositionGuard};
use super::handoff::{self, handoff, Eager};
use super::interrupt::StopFlag;
use super::set_writer::{
    Moved, Mover, Placement, SetPlan, SetRequest, SetWriter, SourceSurvey, Tally,
};
use super::volume::{find_append_point, require_label_probed};
use super::{now, EngineError, Progress, SetSummary};
use crate::catalog::{Catalog, VolumeRow};
use crate::device::disk::chunks;
use crate::device::tape::Reservation;
use crate::device::{Disk, Tape};
use crate::format::{encode_record_header, Mode, RecordHeader, SetDigest, SourceIdentity};
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
    let survey = SourceSurvey::read(source, &opts.set.source_url, production)?;
    let mode = match survey.snapshot {
        Some(_) => Mode::SERVERLESS,
        None => Mode::HOST,
    };
    let writer = SetWriter::new(&opts.set, survey, MAX_PER_RECORD)?;
    let reservation = reserve(tape, opts.reservation_key)?;
    let mut mover = HostMover {
        source,
        tape,
        queue_depth: opts.queue_depth.max(1),
        mode,
    };
    let result = writer.run(&mut mover, catalog, progress);
    if !opts.keep_reservation {
        release(mover.tape, reservation);
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
    tape: &'a mut Tape<T>,
    queue_depth: usize,
    mode: Mode,
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
        let (label, trusted) = require_label_probed(self.tape)?;
        refuse_live_writer(catalog, label.uuid, &label.name)?;
        catalog.upsert_volume(&VolumeRow {
            id: label.uuid,
            name: label.name.clone(),
            created: label.created as i64,
            last_file: None,
        })?;
        let file = find_append_point(self.tape)?;
        // Where the set header goes: restore and verify LOCATE there.
        let block = if trusted {
            self.tape.drive_block()?
        } else {
            None
        };
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
        let guard = PositionGuard::start(self.tape);
        self.tape.write_block(set.header_bytes.clone())?;
        progress.start(set.extent.bytes(), "backup");
        let streamed = self.stream(set, stop, progress);
        progress.finish();
        let (tally, digest) = streamed?;
        let trailer = tally.trailer(digest, false, now());
        // Header + records: the trailer goes right after them, or nowhere.
        guard.check(self.tape, 1 + tally.records, "the trailer")?;
        self.tape.write_block(trailer.encode())?;
        guard.check(self.tape, 2 + tally.records, "the filemark")?;
        self.tape.write_filemarks(1)?;
        Ok(tally.moved(digest))
    }

    fn close_failed(&mut self, _cause: &EngineError) {
        // A tape failure forgets the position: only after a source failure
        // is the tape known to be fine, and the file is closed.
        if self.tape.position().block.is_some() {
            if let Err(e) = self.tape.write_filemarks(1) {
                log::warn!(
                    "{}: closing the failed set's file: {e}",
                    self.tape.scsi.name()
                );
            }
        }
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
        let (source, tape) = (&mut *self.source, &mut *self.tape);
        let mut tally = Tally::new(header.set_id);
        std::thread::scope(|s| {
            let reader = s.spawn(move || frame_records(source, set, depth, tx, spare_rx));
            // Returning drops the receiver, which stops a reader still
            // sending.
            let written = write_records(tape, rx, &spare_tx, &mut tally, stop, progress);
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

/// The tape thread: one WRITE(6) a record, then, with the record on tape,
/// ask the tally whether to stop (early warning, a signal). The digest
/// state after the last record that reached the tape.
fn write_records<T: Transport>(
    tape: &mut Tape<T>,
    rx: handoff::Receiver<Framed>,
    spare: &mpsc::Sender<Vec<u8>>,
    tally: &mut Tally,
    stop: StopFlag,
    progress: &dyn Progress,
) -> Result<Option<SetDigest>, EngineError> {
    let mut digest = None;
    for (rec, state, n) in &rx {
        let (w, back) = tape.write_block_buf(rec)?;
        let _ = spare.send(back);
        digest = Some(state);
        tally.wrote(1, n);
        progress.advance(n);
        if tally.stop_at(w.early_warning, stop.raised()) {
            break;
        }
    }
    Ok(digest)
}
