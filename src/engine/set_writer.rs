//! One backup set's lifecycle, whatever moves its data (ARCHITECTURE.md,
//! "One set lifecycle").
//!
//! [`SetWriter`] checks the range against the source, builds the set
//! header, opens the set in the catalog, runs a [`Mover`], closes the set
//! in the catalog with how the run ended, and builds the summary every
//! mode prints. A mover knows only how its mode puts a set's tape file on
//! tape: the host-driven mover reads the disk and writes the tape itself
//! (`engine::host`), the third-party-copy mover has a copy manager do it
//! (`engine::third_party`); the serverless engine runs the host-driven one
//! on a snapshot.
//!
//! The split follows quinn-proto's: [`SetPlan`] and [`Tally`] decide and
//! count and do no I/O (they are tested without a device); the movers and
//! [`SetWriter::run`] are the thin loops that do the I/O they ask for.

use std::time::Instant;

use nix::sys::signal::Signal;
use uuid::Uuid;

use super::interrupt::StopFlag;
use super::{now, EngineError, Progress, Refusal, SetSummary};
use crate::catalog::{Catalog, SetInfo, SetOutcome, SetState};
use crate::catalog::{SetPart, VolumeRow};
use crate::device::disk::Capacity;
use crate::device::{Disk, Tape};
use crate::format::{
    hex, DigestAlgorithm, Mode, RecordHeader, SetHeader, SetTrailer, SourceIdentity, StopReason,
    StoredDesignator, VolumeLabel,
};
use crate::scsi::spc::{UnitSerialNumber, VpdPage};
use crate::scsi::{BlockCount, BlockSize, Lba};
use crate::transport::Transport;

/// What the user asked of a backup, whatever the mode.
#[derive(Debug, Clone, Default)]
pub struct SetRequest {
    /// First block [default: 0].
    pub lba: Option<Lba>,
    /// Blocks to copy [default: to the end of the source].
    pub blocks: Option<BlockCount>,
    /// Free text stored in the set header.
    pub label: String,
    /// Tape block size in bytes (record header included).
    pub tape_block: usize,
    /// The source's address, without secrets, for the set header and the
    /// catalog.
    pub source_url: String,
    /// The tape's address, without secrets, for the catalog.
    pub tape_url: String,
    /// Raised by SIGINT/SIGTERM: the mover stops at its next safe point
    /// and the set is closed as interrupted.
    pub stop: StopFlag,
    /// The set digest's algorithm (set header): over the data, or over
    /// the record CRCs of a third-party-copy set.
    pub digest: DigestAlgorithm,
}

/// The source as read before anything is written: its size, and the
/// identity the set header records.
#[derive(Debug, Clone)]
pub struct SourceSurvey {
    pub capacity: Capacity,
    /// The LU the set is of (for a serverless set: the production LU).
    pub identity: SourceIdentity,
    /// The LU actually read, when it is a snapshot of `identity`.
    pub snapshot: Option<SourceIdentity>,
}

impl SourceSurvey {
    /// READ CAPACITY and the identity of `source`, addressed as `url`; with
    /// `production`, `source` is a snapshot of that LU and is named by its
    /// own session's address.
    pub fn read<S: Transport>(
        source: &mut Disk<S>,
        url: &str,
        production: Option<SourceIdentity>,
    ) -> Result<SourceSurvey, EngineError> {
        let capacity = source.capacity()?;
        let (identity, snapshot) = match production {
            Some(p) => {
                let own = source.scsi.name().to_string();
                (p, Some(source_identity(source, &own)?))
            }
            None => (source_identity(source, url)?, None),
        };
        Ok(SourceSurvey {
            capacity,
            identity,
            snapshot,
        })
    }
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

/// Where a set goes on tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub volume: Uuid,
    /// The volume's name, when the mover read the label.
    pub volume_name: Option<String>,
    /// The set's tape file.
    pub file: u32,
    /// The drive's block address of the set header (READ POSITION at the
    /// start of its file), when the drive's positions are trusted.
    pub block: Option<u64>,
}

/// The blocks a set copies and how they are cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub lba: Lba,
    pub blocks: BlockCount,
    pub block_size: BlockSize,
    /// Source blocks per data record.
    pub per_record: u64,
}

impl Extent {
    /// Check a request against the source's capacity and the tape block
    /// size; `max_per_record` is the most blocks a mover can put in one
    /// record. Refuses a range past the end and a tape block that cannot
    /// hold a record header and one source block.
    pub fn of(
        req: &SetRequest,
        cap: &Capacity,
        max_per_record: u64,
        max_record: usize,
    ) -> Result<Extent, Refusal> {
        let (lba, bs) = (req.lba.unwrap_or_default(), cap.block_size);
        let blocks = match req.blocks {
            Some(n) => n,
            None => BlockCount(cap.blocks.0.checked_sub(lba.0).ok_or(Refusal::LbaPastEnd {
                lba,
                capacity: cap.blocks,
            })?),
        };
        if lba
            .checked_add(blocks)
            .is_none_or(|end| end.0 > cap.blocks.0)
        {
            return Err(Refusal::RangePastEnd {
                lba,
                blocks,
                capacity: cap.blocks,
                block_size: bs,
            });
        }
        let fit = req.tape_block.saturating_sub(RecordHeader::LEN) as u64 / u64::from(bs.0);
        let per_record = fit.min(max_per_record);
        if per_record == 0 || req.tape_block > max_record {
            return Err(Refusal::TapeBlock {
                tape_block: req.tape_block,
                block_size: bs,
                max: max_record,
            });
        }
        Ok(Extent {
            lba,
            blocks,
            block_size: bs,
            per_record,
        })
    }

    /// Bytes of a full record's payload.
    pub fn payload_size(&self) -> u32 {
        (self.per_record * u64::from(self.block_size.0)) as u32
    }

    /// Data records of the whole range.
    pub fn records(&self) -> u64 {
        self.blocks.0.div_ceil(self.per_record)
    }

    /// Bytes of the whole range.
    pub fn bytes(&self) -> u64 {
        self.blocks.0 * u64::from(self.block_size.0)
    }
}

/// Why a set was closed before the whole range was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The tape reached early warning.
    EndOfMedium,
    /// SIGINT or SIGTERM.
    Signal(Signal),
}

impl Stopped {
    /// What the trailer records (FORMAT.md, trailer byte 81).
    pub fn reason(self) -> StopReason {
        match self {
            Stopped::EndOfMedium => StopReason::END_OF_MEDIUM,
            Stopped::Signal(_) => StopReason::INTERRUPTED,
        }
    }
}

/// A set's tape file as a mover writes it: the records that reached the
/// tape, their payload bytes, and why it stopped early. No I/O: the
/// movers' loops feed it and ask it for the trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub set: Uuid,
    /// Records and payload bytes of the whole set so far (every part).
    pub records: u64,
    pub bytes: u64,
    pub stopped: Option<Stopped>,
    /// The part being written, from 1 (FORMAT.md "Multi-volume sets").
    pub part: u32,
    /// `records` when this part began: its first record's sequence.
    pub part_start: u64,
    /// `bytes` when this part began.
    pub part_offset: u64,
}

impl Tally {
    pub fn new(set: Uuid) -> Tally {
        Tally {
            set,
            records: 0,
            bytes: 0,
            stopped: None,
            part: 1,
            part_start: 0,
            part_offset: 0,
        }
    }

    /// Records on this part's volume so far.
    pub fn part_records(&self) -> u64 {
        self.records - self.part_start
    }

    /// The trailer that closes this part when the set continues on the
    /// next volume: counts and `digest` of everything so far.
    pub fn continued_trailer(&self, digest: [u8; 32], ended: u64) -> SetTrailer {
        SetTrailer {
            complete: false,
            stop: StopReason::CONTINUES,
            ..self.trailer(digest, false, ended)
        }
    }

    /// The next part begins with the next record.
    pub fn next_part(&mut self) {
        self.part += 1;
        self.part_start = self.records;
        self.part_offset = self.bytes;
    }

    /// `records` records holding `bytes` of payload are on tape.
    pub fn wrote(&mut self, records: u64, bytes: u64) {
        self.records += records;
        self.bytes += bytes;
    }

    /// At a point where the set can be closed (the records in hand are on
    /// tape): stop at early warning, else at a signal. True when stopped.
    pub fn stop_at(&mut self, early_warning: bool, signal: Option<Signal>) -> bool {
        if self.stopped.is_none() {
            self.stopped = match (early_warning, signal) {
                (true, _) => Some(Stopped::EndOfMedium),
                (false, Some(sig)) => Some(Stopped::Signal(sig)),
                (false, None) => None,
            };
        }
        self.stopped.is_some()
    }

    /// The trailer that closes the set: counts, `digest` (of the data, or
    /// of the record CRCs with `crc_digest`), whether it is complete.
    pub fn trailer(&self, digest: [u8; 32], crc_digest: bool, ended: u64) -> SetTrailer {
        SetTrailer {
            set_id: self.set,
            records: self.records,
            bytes: self.bytes,
            digest,
            complete: self.stopped.is_none(),
            stop: self.stopped.map_or(StopReason::NOT_GIVEN, Stopped::reason),
            ended,
            crc_digest,
            part: self.part,
        }
    }

    /// What the mover reports once the trailer and filemark are written;
    /// `spanned`: where a multi-volume set went.
    pub fn moved(self, digest: [u8; 32], spanned: Spanned) -> Moved {
        Moved {
            records: self.records,
            bytes: self.bytes,
            digest,
            stopped: self.stopped,
            parts: spanned.parts,
            volumes: spanned.volumes,
        }
    }
}

/// Where a multi-volume set went: its parts, the first included, and the
/// volumes they are on. Empty for a set on one volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spanned {
    pub parts: Vec<SetPart>,
    pub volumes: Vec<VolumeRow>,
}

/// What asks for the next volume when a set reaches the end of its
/// volume (FORMAT.md "Multi-volume sets"): the backup server, and later a
/// local changer or an operator. Without one a set that meets the end of
/// its volume is closed incomplete.
pub trait NextVolume<T: Transport> {
    /// `full`, in the drive `tape` addresses, is full, and part
    /// `part - 1` of `set` is closed on it with its trailer and filemark.
    /// Put the volume part `part` goes on in that drive. The engine then
    /// reads its label (a foreign or blank one is refused) and appends.
    fn next_volume(
        &mut self,
        tape: &mut Tape<T>,
        set: Uuid,
        part: u32,
        full: &VolumeLabel,
    ) -> Result<(), EngineError>;
}

/// The catalog row of a volume read from its label.
pub fn volume_row(label: &VolumeLabel) -> VolumeRow {
    VolumeRow {
        id: label.uuid,
        name: label.name.clone(),
        created: label.created as i64,
        last_file: None,
    }
}

/// What a mover put on tape: the set's file closed by its trailer and a
/// filemark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub records: u64,
    pub bytes: u64,
    /// The trailer's digest.
    pub digest: [u8; 32],
    /// Why the set was closed early (trailer marked incomplete).
    pub stopped: Option<Stopped>,
    /// A multi-volume set's parts, the first included; empty for a set on
    /// one volume.
    pub parts: Vec<SetPart>,
    /// The volumes of `parts` after the first, as their labels say.
    pub volumes: Vec<VolumeRow>,
}

/// How a mode puts a set's tape file on tape. The [`SetWriter`] calls
/// these in order: `place`, `prepare`, then `write`, and `close_failed`
/// when `write` fails.
pub trait Mover {
    /// The mode the set header records.
    fn mode(&self) -> Mode;

    /// Where the set goes: checks the volume is ours and not being written
    /// by another process, and finds the set's tape file.
    fn place(&mut self, catalog: &Catalog, tape_url: &str) -> Result<Placement, EngineError>;

    /// Plans made with the set's header in hand, before the set is opened
    /// in the catalog: a refusal here leaves no trace.
    fn prepare(&mut self, _set: &SetPlan) -> Result<(), EngineError> {
        Ok(())
    }

    /// Write the set's tape file: header, records, trailer, filemark.
    /// Between records it asks `stop`, and stops at early warning.
    fn write(
        &mut self,
        set: &SetPlan,
        stop: StopFlag,
        p: &dyn Progress,
    ) -> Result<Moved, EngineError>;

    /// After `write` failed with `cause`: close the set's tape file where
    /// the tape allows, so the tape stays well-formed (the set has no
    /// trailer and reads as failed). Only logs what fails here.
    fn close_failed(&mut self, cause: &EngineError);
}

/// A set planned: its header (and its bytes) and its catalog row. No I/O.
#[derive(Debug, Clone)]
pub struct SetPlan {
    pub header: SetHeader,
    /// The set header as it goes to tape (FORMAT.md "Set header").
    pub header_bytes: Vec<u8>,
    pub extent: Extent,
    pub place: Placement,
}

impl SetPlan {
    /// The header of a new set `set_id` of `source` at `place`, written
    /// at `started` (Unix seconds). Refused when the header cannot be
    /// encoded (a label or identity too long for it).
    pub fn new(
        req: &SetRequest,
        mode: Mode,
        source: SourceSurvey,
        extent: Extent,
        place: Placement,
        (set_id, started): (Uuid, u64),
    ) -> Result<SetPlan, EngineError> {
        let header = SetHeader {
            set_id,
            volume_id: place.volume,
            mode,
            source: source.identity,
            lba: extent.lba.0,
            blocks: extent.blocks.0,
            block_size: extent.block_size.0,
            payload_size: extent.payload_size(),
            created: started,
            label: req.label.clone(),
            snapshot: source.snapshot,
            digest: req.digest,
        };
        let header_bytes = header
            .encode()
            .map_err(|e| EngineError::format("set header", e))?;
        Ok(SetPlan {
            header,
            header_bytes,
            extent,
            place,
        })
    }

    pub fn set_id(&self) -> Uuid {
        self.header.set_id
    }

    /// What the catalog records before the set is written.
    pub fn info(&self) -> SetInfo {
        SetInfo {
            tape_block: self.place.block,
            ..super::volume::set_info(&self.header, self.place.file)
        }
    }

    /// What the catalog records for the run, ended at `ended`.
    pub fn outcome(
        &self,
        run: &Result<Moved, EngineError>,
        seconds: f64,
        ended: u64,
    ) -> SetOutcome {
        let (state, error) = match run {
            Ok(m) => match m.stopped {
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
        let done = run.as_ref().ok();
        SetOutcome {
            state,
            records: done.map_or(0, |m| m.records),
            bytes: done.map_or(0, |m| m.bytes),
            digest: done.map(|m| hex(&m.digest)),
            ended: ended as i64,
            seconds,
            error,
        }
    }

    /// A set closed early is an error for the command: tape full, or
    /// interrupted.
    pub fn stopped_early(&self, m: &Moved) -> Result<(), EngineError> {
        let set = self.set_id();
        match m.stopped {
            None => Ok(()),
            Some(Stopped::EndOfMedium) => Err(EngineError::TapeFull {
                set,
                bytes: m.bytes,
            }),
            Some(Stopped::Signal(signal)) => Err(EngineError::Interrupted {
                set,
                bytes: m.bytes,
                signal,
                trailer: true,
            }),
        }
    }

    /// What every mode prints about a complete set.
    pub fn summary(&self, m: &Moved, seconds: f64) -> SetSummary {
        let h = &self.header;
        SetSummary {
            set_id: h.set_id,
            volume: self.place.volume,
            tape_file: self.place.file,
            mode: h.mode.to_string(),
            state: SetState::Complete,
            lba: self.extent.lba,
            blocks: self.extent.blocks,
            block_size: self.extent.block_size,
            records: m.records,
            bytes: m.bytes,
            seconds,
            mbps: super::mbps(m.bytes, seconds),
            digest_algorithm: h.digest,
            digest: hex(&m.digest),
            parts: m.parts.clone(),
        }
    }
}

/// Runs one set's lifecycle with a [`Mover`]. Made in two steps so that a
/// mode can hold a resource (the host-driven mode reserves the drive)
/// only once the request is known to be good.
#[derive(Debug)]
pub struct SetWriter {
    req: SetRequest,
    source: SourceSurvey,
    extent: Extent,
}

impl SetWriter {
    /// Check `req` against the surveyed source: the range and the record
    /// size a mover that carries at most `max_per_record` blocks a record
    /// can write. Nothing is written yet.
    pub fn new(
        req: &SetRequest,
        source: SourceSurvey,
        max_per_record: u64,
    ) -> Result<SetWriter, EngineError> {
        let extent = Extent::of(
            req,
            &source.capacity,
            max_per_record,
            super::volume::MAX_RECORD,
        )?;
        Ok(SetWriter {
            req: req.clone(),
            source,
            extent,
        })
    }

    /// The range the set will cover.
    pub fn extent(&self) -> &Extent {
        &self.extent
    }

    /// Place the set, open it in the catalog, have `mover` write it and
    /// record how that ended. A set stopped early (end of medium, a
    /// signal) is recorded, then returned as the error it is for the
    /// command.
    pub fn run<M: Mover>(
        self,
        mover: &mut M,
        catalog: &Catalog,
        progress: &dyn Progress,
    ) -> Result<(SetSummary, Placement), EngineError> {
        let place = mover.place(catalog, &self.req.tape_url)?;
        let id = (Uuid::new_v4(), now());
        let plan = SetPlan::new(&self.req, mover.mode(), self.source, self.extent, place, id)?;
        mover.prepare(&plan)?;
        catalog.begin_set(&plan.info())?;
        let t0 = Instant::now();
        let run = mover.write(&plan, self.req.stop, progress);
        let seconds = t0.elapsed().as_secs_f64();
        if let Err(e) = &run {
            mover.close_failed(e);
        }
        if let Ok(m) = &run {
            catalog.record_parts(plan.set_id(), &m.parts, &m.volumes)?;
        }
        catalog.finish_set(plan.set_id(), &plan.outcome(&run, seconds, now()))?;
        let moved = run?;
        plan.stopped_early(&moved)?;
        Ok((plan.summary(&moved, seconds), plan.place))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(blocks: u64) -> Capacity {
        Capacity {
            blocks: BlockCount(blocks),
            block_size: BlockSize(512),
            from_16: false,
        }
    }

    fn req(lba: Option<u64>, blocks: Option<u64>) -> SetRequest {
        SetRequest {
            lba: lba.map(Lba),
            blocks: blocks.map(BlockCount),
            tape_block: 64 * 1024,
            ..Default::default()
        }
    }

    #[test]
    fn extent_defaults_to_the_rest_of_the_source() {
        let e = Extent::of(&req(Some(100), None), &cap(1000), u64::MAX, 1 << 21).unwrap();
        assert_eq!((e.lba, e.blocks), (Lba(100), BlockCount(900)));
        // (65536 - 48) / 512 = 127 blocks a record.
        assert_eq!(e.per_record, 127);
        assert_eq!(e.payload_size(), 127 * 512);
        let capped = Extent::of(&req(None, None), &cap(1000), 16, 1 << 21).unwrap();
        assert_eq!(capped.per_record, 16);
    }

    #[test]
    fn extent_refuses_ranges_past_the_end_and_tiny_tape_blocks() {
        let past = Extent::of(&req(Some(1001), None), &cap(1000), u64::MAX, 1 << 21);
        assert!(matches!(past, Err(Refusal::LbaPastEnd { .. })), "{past:?}");
        let over = Extent::of(&req(Some(10), Some(991)), &cap(1000), u64::MAX, 1 << 21);
        assert!(
            matches!(over, Err(Refusal::RangePastEnd { .. })),
            "{over:?}"
        );
        let wrap = Extent::of(&req(Some(u64::MAX), Some(2)), &cap(1000), u64::MAX, 1 << 21);
        assert!(
            matches!(wrap, Err(Refusal::RangePastEnd { .. })),
            "{wrap:?}"
        );
        let mut small = req(None, None);
        small.tape_block = 512; // no room for a header and a block
        let e = Extent::of(&small, &cap(1000), u64::MAX, 1 << 21);
        assert!(matches!(e, Err(Refusal::TapeBlock { .. })), "{e:?}");
        let mut big = req(None, None);
        big.tape_block = 4 << 20;
        let e = Extent::of(&big, &cap(1000), u64::MAX, 1 << 21);
        assert!(
            matches!(e, Err(Refusal::TapeBlock { max: 2097152, .. })),
            "{e:?}"
        );
    }

    #[test]
    fn tally_stops_once_and_says_why_in_the_trailer() {
        let mut t = Tally::new(Uuid::nil());
        t.wrote(1, 512);
        assert!(!t.stop_at(false, None));
        assert!(t.stop_at(true, Some(Signal::SIGINT)));
        // The first reason stays.
        assert!(t.stop_at(false, Some(Signal::SIGTERM)));
        assert_eq!(t.stopped, Some(Stopped::EndOfMedium));
        let tr = t.trailer([7; 32], false, 9);
        assert_eq!((tr.records, tr.bytes, tr.complete), (1, 512, false));
        assert_eq!(tr.stop, StopReason::END_OF_MEDIUM);
        let mut s = Tally::new(Uuid::nil());
        assert!(s.stop_at(false, Some(Signal::SIGTERM)));
        assert_eq!(s.trailer([0; 32], true, 0).stop, StopReason::INTERRUPTED);
        assert!(Tally::new(Uuid::nil()).trailer([0; 32], true, 0).complete);
    }

    fn plan() -> SetPlan {
        let source = SourceSurvey {
            capacity: cap(1000),
            identity: SourceIdentity {
                designators: Vec::new(),
                url: "mem://disk".into(),
                vendor: "V".into(),
                product: "P".into(),
                serial: "S".into(),
            },
            snapshot: None,
        };
        let r = SetRequest {
            source_url: "mem://disk".into(),
            label: "L".into(),
            ..req(Some(10), Some(20))
        };
        let extent = Extent::of(&r, &source.capacity, u64::MAX, 1 << 21).unwrap();
        let place = Placement {
            volume: Uuid::from_bytes([1; 16]),
            volume_name: Some("V1".into()),
            file: 3,
            block: None,
        };
        SetPlan::new(
            &r,
            Mode::HOST,
            source,
            extent,
            place,
            (Uuid::from_bytes([2; 16]), 5),
        )
        .unwrap()
    }

    #[test]
    fn plan_builds_the_header_and_the_catalog_row_from_one_place() {
        let p = plan();
        assert_eq!(
            (p.header.lba, p.header.blocks, p.header.created),
            (10, 20, 5)
        );
        assert_eq!(p.header.volume_id, Uuid::from_bytes([1; 16]));
        let info = p.info();
        assert_eq!(
            (info.file_number, info.lba, info.blocks),
            (3, Lba(10), BlockCount(20))
        );
        assert_eq!(info.mode, "host");
        assert_eq!(info.payload_size, p.header.payload_size);
        assert_eq!(info.started, 5);
    }

    #[test]
    fn outcome_and_result_follow_how_the_run_ended() {
        let p = plan();
        let m = |stopped| Moved {
            records: 2,
            bytes: 1024,
            digest: [0xab; 32],
            stopped,
            parts: Vec::new(),
            volumes: Vec::new(),
        };
        let done = p.outcome(&Ok(m(None)), 1.0, 7);
        assert_eq!(
            (done.state, done.records, done.ended),
            (SetState::Complete, 2, 7)
        );
        assert_eq!(done.digest.as_deref(), Some(&*"ab".repeat(32)));
        assert!(p.stopped_early(&m(None)).is_ok());
        let eom = m(Some(Stopped::EndOfMedium));
        assert_eq!(
            p.outcome(&Ok(eom.clone()), 1.0, 7).state,
            SetState::Incomplete
        );
        assert!(matches!(
            p.stopped_early(&eom),
            Err(EngineError::TapeFull { bytes: 1024, .. })
        ));
        let int = m(Some(Stopped::Signal(Signal::SIGTERM)));
        assert_eq!(
            p.outcome(&Ok(int.clone()), 1.0, 7).state,
            SetState::Interrupted
        );
        assert!(matches!(
            p.stopped_early(&int),
            Err(EngineError::Interrupted {
                signal: Signal::SIGTERM,
                trailer: true,
                ..
            })
        ));
        let failed = p.outcome(&Err(EngineError::Stopped("x")), 1.0, 7);
        assert_eq!((failed.state, failed.records), (SetState::Failed, 0));
        assert_eq!(failed.digest, None);
        assert_eq!(failed.error.as_deref(), Some("stopped: x"));
        let s = p.summary(&m(None), 2.0);
        assert_eq!((s.tape_file, s.records, s.bytes), (3, 2, 1024));
        assert_eq!(s.mbps, 1024.0 / 2.0 / 1e6);
    }
}
