//! Host-driven (LAN-free) backup: this host reads its own disk LUN and
//! writes the set to a tape drive on the SAN.
//!
//! Two threads: a reader keeps `queue_depth` READ(16)s in flight on the
//! disk session; this thread writes records to tape as they arrive. A
//! bounded channel between them sets the pace of the slower side and
//! bounds memory (about `3 × queue_depth` chunks).

use std::sync::mpsc;
use std::time::Instant;

use uuid::Uuid;

use super::guard::{refuse_live_writer, PositionGuard};
use super::handoff::{handoff, Eager};
use super::interrupt::StopFlag;
use super::volume::{find_append_point, require_label};
use super::{now, EngineError, Progress, SetSummary};
use crate::catalog::{Catalog, SetInfo, SetOutcome, SetState, VolumeRow};
use crate::device::tape::Reservation;
use crate::device::{Disk, Tape};
use crate::format::{
    encode_record_header, hex, DigestAlgorithm, Mode, RecordHeader, SetDigest, SetHeader,
    SetTrailer, SourceIdentity, StopReason, StoredDesignator,
};
use crate::scsi::spc::{UnitSerialNumber, VpdPage};
use crate::scsi::{BlockSize, Lba};
use crate::transport::Transport;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub lba: Option<u64>,
    pub blocks: Option<u64>,
    /// Free text stored in the set header.
    pub label: String,
    /// Tape block size in bytes (record header included).
    pub tape_block: usize,
    pub queue_depth: usize,
    pub mode: Mode,
    /// The source's address, without secrets, for the set header.
    pub source_url: String,
    /// The tape's address, without secrets, for the catalog.
    pub tape_url: String,
    /// Persistent reservation key for the drive.
    pub reservation_key: u64,
    /// Raised by SIGINT/SIGTERM: stop after the record in hand and close
    /// the set as interrupted.
    pub stop: StopFlag,
    /// The set digest's algorithm (set header).
    pub digest: DigestAlgorithm,
}

impl BackupOptions {
    pub const DEFAULT_TAPE_BLOCK: usize = 256 * 1024;
    pub const DEFAULT_QUEUE_DEPTH: usize = 8;
}

/// What `backup --json` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupSummary {
    #[serde(flatten)]
    pub set: SetSummary,
    pub volume_name: String,
    pub reservation: Reservation,
}

/// The source's identity for the set header: VPD 0x83 designators, serial,
/// INQUIRY strings.
pub fn source_identity<T: Transport>(
    disk: &mut Disk<T>,
    url: &str,
) -> Result<SourceIdentity, EngineError> {
    let di = disk.scsi.device_identification()?;
    let serial = disk
        .scsi
        .vpd::<UnitSerialNumber>(VpdPage::UNIT_SERIAL)
        .map(|s| s.serial.trim().to_string())
        .unwrap_or_default();
    Ok(SourceIdentity {
        designators: di
            .designators
            .iter()
            .map(|d| StoredDesignator {
                designator_type: d.designator_type.0,
                code_set: d.code_set.0,
                association: d.association.0,
                value: d.value.clone(),
            })
            .collect(),
        url: url.to_string(),
        vendor: disk.inquiry.vendor.clone(),
        product: disk.inquiry.product.clone(),
        serial,
    })
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
/// and the header's `snapshot` names the LU actually read.
pub fn backup_from<S: Transport + Send, T: Transport>(
    source: &mut Disk<S>,
    production: Option<SourceIdentity>,
    tape: &mut Tape<T>,
    catalog: &Catalog,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary, EngineError> {
    let cap = source.capacity()?;
    let bs = cap.block_size;
    let lba = opts.lba.unwrap_or(0);
    let blocks = match opts.blocks {
        Some(n) => n,
        None => cap.blocks.0.checked_sub(lba).ok_or_else(|| {
            EngineError::Refused(format!(
                "--lba {lba} is past the end of the source ({} blocks)",
                cap.blocks.0
            ))
        })?,
    };
    if lba.checked_add(blocks).is_none_or(|end| end > cap.blocks.0) {
        return Err(EngineError::Refused(format!(
            "range {lba}+{blocks} is past the end of the source ({} blocks of {} bytes)",
            cap.blocks.0, bs.0
        )));
    }
    let per_record = (opts.tape_block.saturating_sub(RecordHeader::LEN)) / bs.0 as usize;
    if per_record == 0 || opts.tape_block > super::volume::MAX_RECORD {
        return Err(EngineError::Refused(format!(
            "tape block size {} cannot hold a record header and one {}-byte source block (max {})",
            opts.tape_block,
            bs.0,
            super::volume::MAX_RECORD
        )));
    }
    let (identity, snapshot) = match production {
        Some(p) => {
            // The snapshot is named by its own address (the session's).
            let url = source.scsi.name().to_string();
            (p, Some(source_identity(source, &url)?))
        }
        None => (source_identity(source, &opts.source_url)?, None),
    };
    let designator = super::volume::designator_text(&identity);

    let reservation = reserve(tape, opts.reservation_key)?;
    let result = (|| {
        let label = require_label(tape)?;
        refuse_live_writer(catalog, label.uuid, &label.name)?;
        catalog.upsert_volume(&VolumeRow {
            id: label.uuid,
            name: label.name.clone(),
            created: label.created as i64,
            last_file: None,
        })?;
        let file = find_append_point(tape)?;
        let set_id = Uuid::new_v4();
        let started = now();
        let header = SetHeader {
            set_id,
            volume_id: label.uuid,
            mode: opts.mode,
            source: identity.clone(),
            lba,
            blocks,
            block_size: bs.0,
            payload_size: (per_record * bs.0 as usize) as u32,
            created: started,
            label: opts.label.clone(),
            snapshot: snapshot.clone(),
            digest: opts.digest,
        };
        catalog.begin_set(&SetInfo {
            id: set_id,
            volume: label.uuid,
            file_number: file,
            mode: opts.mode.to_string(),
            label: opts.label.clone(),
            source_url: opts.source_url.clone(),
            source_designator: designator.clone(),
            lba,
            blocks,
            block_size: bs.0,
            payload_size: header.payload_size,
            started: started as i64,
            digest_algorithm: opts.digest.to_string(),
        })?;
        let t0 = Instant::now();
        let streamed = write_set(source, tape, &header, per_record as u32, opts, progress);
        let seconds = t0.elapsed().as_secs_f64();
        if streamed.is_err() && tape.position().block.is_some() {
            // The source failed and the tape is fine (a tape failure
            // forgets the position): close the file so the tape stays
            // well-formed; the set has no trailer, so it reads as failed.
            if let Err(e) = tape.write_filemarks(1) {
                log::warn!("{}: closing the failed set's file: {e}", tape.scsi.name());
            }
        }
        let outcome = set_outcome(&streamed, seconds);
        let (state, records, bytes) = (outcome.state, outcome.records, outcome.bytes);
        catalog.finish_set(set_id, &outcome)?;
        let s = streamed?;
        stopped_early(set_id, &s)?;
        Ok(BackupSummary {
            set: SetSummary {
                set_id,
                volume: label.uuid,
                tape_file: file,
                mode: opts.mode.to_string(),
                state,
                lba,
                blocks,
                block_size: bs.0,
                records,
                bytes,
                seconds,
                mbps: super::mbps(bytes, seconds),
                digest_algorithm: opts.digest,
                digest: hex(&s.digest),
            },
            volume_name: label.name,
            reservation,
        })
    })();
    release(tape, reservation);
    result
}

struct Streamed {
    records: u64,
    bytes: u64,
    digest: [u8; 32],
    /// Why the set was closed before the whole range was copied.
    stopped: Option<Stopped>,
}

/// Why a set was closed early, with a trailer marked incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// The tape reached early warning.
    EndOfMedium,
    /// SIGINT or SIGTERM.
    Signal(nix::sys::signal::Signal),
}

impl Stopped {
    fn reason(self) -> StopReason {
        match self {
            Stopped::EndOfMedium => StopReason::END_OF_MEDIUM,
            Stopped::Signal(_) => StopReason::INTERRUPTED,
        }
    }
}

/// What the catalog records for a set's run.
fn set_outcome(streamed: &Result<Streamed, EngineError>, seconds: f64) -> SetOutcome {
    let (state, error) = match streamed {
        Ok(s) => match s.stopped {
            None => (SetState::Complete, None),
            Some(Stopped::EndOfMedium) => (
                SetState::Incomplete,
                Some("end of medium reached; set incomplete".to_string()),
            ),
            Some(Stopped::Signal(sig)) => (
                SetState::Interrupted,
                Some(format!(
                    "interrupted by {sig}; closed with a trailer marked incomplete"
                )),
            ),
        },
        Err(e) => (SetState::Failed, Some(e.to_string())),
    };
    let done = streamed.as_ref().ok();
    SetOutcome {
        state,
        records: done.map_or(0, |s| s.records),
        bytes: done.map_or(0, |s| s.bytes),
        digest: done.map(|s| hex(&s.digest)),
        ended: now() as i64,
        seconds,
        error,
    }
}

/// A set closed early is an error for the command: tape full, or
/// interrupted.
fn stopped_early(set: uuid::Uuid, s: &Streamed) -> Result<(), EngineError> {
    match s.stopped {
        None => Ok(()),
        Some(Stopped::EndOfMedium) => Err(EngineError::TapeFull {
            set,
            bytes: s.bytes,
        }),
        Some(Stopped::Signal(signal)) => Err(EngineError::Interrupted {
            set,
            bytes: s.bytes,
            signal,
            trailer: true,
        }),
    }
}

/// Header, data records, trailer, filemark. The filemark is the
/// confirmation: tgt makes data durable there and nowhere else.
fn write_set<S: Transport + Send, T: Transport>(
    source: &mut Disk<S>,
    tape: &mut Tape<T>,
    header: &SetHeader,
    per_record: u32,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Streamed, EngineError> {
    let set = header.set_id;
    let hdr = header
        .encode()
        .map_err(|e| EngineError::format("set header", e))?;
    let guard = PositionGuard::start(tape);
    tape.write_block(hdr)?;
    let depth = opts.queue_depth.max(1);
    let bs = BlockSize(header.block_size);
    progress.start(header.blocks * bs.0 as u64, "backup");

    // The reader thread also digests and frames each record, so the tape
    // thread does nothing but WRITE(6): the tape is the slow side. Each
    // record travels with the digest state after it, so an early stop
    // keeps the digest of exactly what reached the tape.
    let (tx, rx) = handoff::<(Vec<u8>, SetDigest, u64)>(depth, Eager::Receiver);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let mut digest = SetDigest::new(header.digest);
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut stopped = None;

    let outcome = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut running = SetDigest::new(header.digest);
            let mut seq = 0u64;
            // Each chunk is read in behind room for its record header, which
            // is then framed in place: the payload is never copied.
            source.read_pipelined::<EngineError>(
                Lba(header.lba),
                header.blocks,
                bs,
                per_record,
                depth,
                RecordHeader::LEN,
                |_chunk, mut rec| {
                    let payload = &rec[RecordHeader::LEN..];
                    running.update(payload);
                    let n = payload.len() as u64;
                    let h = encode_record_header(set, seq, payload);
                    rec[..RecordHeader::LEN].copy_from_slice(&h);
                    seq += 1;
                    tx.send((rec, running.clone(), n))
                        .map_err(|_| EngineError::Stopped("the tape writer stopped".into()))?;
                    Ok(spare_rx.try_recv().ok())
                },
            )
        });
        let written: Result<(), EngineError> = (|| {
            for (rec, state, n) in &rx {
                let (w, back) = tape.write_block_buf(rec)?;
                let _ = spare_tx.send(back);
                digest = state;
                records += 1;
                bytes += n;
                progress.advance(n);
                if w.early_warning {
                    stopped = Some(Stopped::EndOfMedium);
                    return Ok(());
                }
                // Between records: the one in hand is on tape.
                if let Some(sig) = opts.stop.raised() {
                    stopped = Some(Stopped::Signal(sig));
                    return Ok(());
                }
            }
            Ok(())
        })();
        // Dropping the receiver stops a reader still sending.
        drop(rx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(EngineError::Stopped("the disk reader panicked".into())));
        match (written, read) {
            (Err(w), _) => Err(w),
            (Ok(()), Err(EngineError::Stopped(_))) if stopped.is_some() => Ok(()),
            (Ok(()), r) => r,
        }
    });
    progress.finish();
    outcome?;
    let digest = digest.finish();
    let trailer = SetTrailer {
        set_id: set,
        records,
        bytes,
        digest,
        complete: stopped.is_none(),
        stop: stopped.map_or(StopReason::NOT_GIVEN, Stopped::reason),
        ended: now(),
        crc_digest: false,
    };
    // Header + records: the trailer goes right after them, or nowhere.
    guard.check(tape, 1 + records, "the trailer")?;
    tape.write_block(trailer.encode())?;
    guard.check(tape, 2 + records, "the filemark")?;
    tape.write_filemarks(1)?;
    Ok(Streamed {
        records,
        bytes,
        digest,
        stopped,
    })
}
