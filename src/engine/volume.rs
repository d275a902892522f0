//! Volumes: the label in file 0, where the next set goes, and the
//! sequential scan of one set's tape file that verify, restore and catalog
//! rebuild share.

use std::sync::mpsc;

use uuid::Uuid;

use super::handoff::{handoff, Eager, Sender};
use super::{now, Corruption, EngineError, Progress, Refusal};
use crate::catalog::{FoundPart, SetInfo, SetOutcome, SetPart, SetRow, SetState, VolumeRow};
use crate::device::tape::ReadOutcome;
use crate::device::{DeviceError, Tape};
use crate::format::{
    check_record, classify, hex, BlockKind, Continuation, CrcChainDigest, CrcIndex,
    DigestAlgorithm, Mode, RecordHeader, SetDigest, SetHeader, SetTrailer, SourceIdentity,
    StopReason, VolumeLabel,
};
use crate::scsi::spc::{Association, CodeSet, Designator, DesignatorType, DeviceIdentification};
use crate::scsi::ssc::ReadPositionForm;
use crate::scsi::{BlockCount, BlockSize, DeviceType, Lba};
use crate::transport::Transport;

/// A read buffer large enough for any block sanmover writes, so tgt never
/// drops an overlength block (README.md, "Tape targets").
/// READ(6) carries at most 16 MiB - 1; tgt's READ BLOCK LIMITS says 1 MiB.
pub const MAX_TAPE_BLOCK: usize = 4 << 20;

/// The largest record a backup writes: reads use twice that (see
/// [`Tape::read_block`]).
pub const MAX_RECORD: usize = MAX_TAPE_BLOCK / 2;

/// What file 0 holds.
#[derive(Debug, Clone)]
pub enum LabelState {
    Ours(VolumeLabel),
    Blank,
    /// The tape starts with a filemark: an empty first file, as some
    /// programs leave (not a sanmover volume, and no data to lose there).
    LeadingFilemark,
    /// Something else: another program's tape. The first bytes, for the
    /// error message.
    Foreign(Vec<u8>),
}

impl LabelState {
    /// What is in file 0, in words.
    pub fn describe(&self) -> String {
        match self {
            LabelState::Ours(l) => format!("sanmover volume {} ({})", l.name, l.uuid),
            LabelState::Blank => "blank (no label, no data)".into(),
            LabelState::LeadingFilemark => {
                "starts with a filemark (an empty first file; no sanmover label)".into()
            }
            LabelState::Foreign(first) => {
                format!(
                    "a foreign label or data (first bytes {})",
                    hex::encode(first)
                )
            }
        }
    }
}

/// Rewind and read the label.
pub fn read_label<T: Transport>(tape: &mut Tape<T>) -> Result<LabelState, EngineError> {
    tape.rewind()?;
    label_block(tape)
}

/// Whether READ POSITION (short form) says the next logical object is
/// `want`, with BOP set only at 0 (SSC-4 7.7: objects counted from BOT).
/// A drive that cannot answer, or answers otherwise, is not trusted.
fn position_is<T: Transport>(tape: &mut Tape<T>, want: u64) -> bool {
    match tape.read_position(ReadPositionForm::SHORT) {
        Ok(p) => p.first_block == Some(want) && p.bop == (want == 0) && !p.perr,
        Err(e) => {
            log::debug!("{}: READ POSITION: {e}", tape.scsi.name());
            false
        }
    }
}

/// [`require_label`], and whether the drive's positions can be trusted,
/// decided from its answers: READ POSITION says block 0 at BOT and block
/// 1 after the label block. tgt answers 0 both times, so it is not; a
/// drive that counts (ours, real ones) is, and restore and verify may
/// LOCATE there.
pub fn require_label_probed<T: Transport>(
    tape: &mut Tape<T>,
) -> Result<(VolumeLabel, bool), EngineError> {
    tape.rewind()?;
    let at_bot = position_is(tape, 0);
    let state = label_block(tape)?;
    let trusted = at_bot && position_is(tape, 1);
    Ok((ours(tape, state)?, trusted))
}

/// Read the label block at BOT: what file 0 holds.
fn label_block<T: Transport>(tape: &mut Tape<T>) -> Result<LabelState, EngineError> {
    let (o, buf) = tape.read_block(vec![0; MAX_TAPE_BLOCK])?;
    Ok(match o {
        ReadOutcome::EndOfData => LabelState::Blank,
        ReadOutcome::Filemark => LabelState::LeadingFilemark,
        ReadOutcome::Block(n) => {
            let b = &buf[..n];
            if VolumeLabel::looks_like(b) {
                LabelState::Ours(
                    VolumeLabel::decode(b).map_err(|e| EngineError::format("volume label", e))?,
                )
            } else {
                LabelState::Foreign(b[..n.min(16)].to_vec())
            }
        }
    })
}

/// The label of a sanmover tape, or a refusal that says what is there.
pub fn require_label<T: Transport>(tape: &mut Tape<T>) -> Result<VolumeLabel, EngineError> {
    let state = read_label(tape)?;
    ours(tape, state)
}

/// The label, when file 0 holds ours; else a refusal saying what is there.
fn ours<T: Transport>(tape: &Tape<T>, state: LabelState) -> Result<VolumeLabel, EngineError> {
    match state {
        LabelState::Ours(l) => Ok(l),
        LabelState::Blank => Err(Refusal::NoLabel {
            device: tape.scsi.name().to_string(),
        }
        .into()),
        found => Err(Refusal::NotOurs {
            device: tape.scsi.name().to_string(),
            found,
        }
        .into()),
    }
}

/// Write a new label at the beginning of the tape. Everything on the tape
/// is lost: callers check [`read_label`] first.
pub fn write_label<T: Transport>(
    tape: &mut Tape<T>,
    name: &str,
) -> Result<VolumeLabel, EngineError> {
    let label =
        VolumeLabel::new(name, Uuid::new_v4(), now()).map_err(|source| Refusal::VolumeName {
            name: name.to_string(),
            source,
        })?;
    let bytes = label.encode();
    tape.rewind()?;
    tape.write_block(bytes)?;
    tape.write_filemarks(1)?;
    Ok(label)
}

/// True when a SPACE or READ failed only because it reached end of data.
fn is_eod(e: &DeviceError) -> bool {
    e.sense().is_some_and(|s| s.is_eod())
}

/// Count the files on the tape and leave it at end of data, ready to
/// append the next set, whose file number this returns. A file left open
/// by a crashed backup (blocks after the last filemark) is closed with a
/// filemark first, so the new set never merges into it.
pub fn find_append_point<T: Transport>(tape: &mut Tape<T>) -> Result<u32, EngineError> {
    tape.rewind()?;
    let mut files = 0u32;
    loop {
        match tape.space_filemarks(1) {
            Ok(()) => files += 1,
            Err(e) if is_eod(&e) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if files == 0 {
        return Err(Refusal::NoFilemarkAfterLabel {
            device: tape.scsi.name().to_string(),
        }
        .into());
    }
    // Is there anything after the last filemark? (SPACE to EOD on tgt does
    // not say how far it went, so look.)
    tape.seek_file(files)?;
    match tape.read_block(vec![0; MAX_TAPE_BLOCK]) {
        Err(e) if is_eod(&e) => Ok(files),
        Ok((ReadOutcome::EndOfData, _)) => Ok(files),
        Ok(_) => {
            log::warn!(
                "{}: file {files} was left open by an interrupted backup; closing it",
                tape.scsi.name()
            );
            tape.space_to_eod()?;
            tape.write_filemarks(1)?;
            Ok(files + 1)
        }
        Err(e) => Err(e.into()),
    }
}

/// How a set's tape file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetEnd {
    /// The trailer was found and matches what was read.
    Trailer(SetTrailer),
    /// A filemark or end of data came before any trailer.
    Truncated,
}

/// One checked record's payload, still in the tape block it was read into,
/// so a restore writes it to disk without copying it out.
#[derive(Debug)]
pub struct Payload {
    block: Vec<u8>,
    span: std::ops::Range<usize>,
}

impl Payload {
    pub fn bytes(&self) -> &[u8] {
        &self.block[self.span.clone()]
    }

    /// The block and where the payload sits in it.
    pub fn into_parts(self) -> (Vec<u8>, std::ops::Range<usize>) {
        (self.block, self.span)
    }

    /// The block, for reuse.
    pub fn into_block(self) -> Vec<u8> {
        self.block
    }
}

/// What a scan's sink does with a payload: hands the block back for the
/// next read (`Some`), or keeps it (`None`).
pub type Returned = Option<Vec<u8>>;

/// What reading one set file found.
#[derive(Debug, Clone)]
pub struct SetScan {
    pub header: SetHeader,
    pub records: u64,
    pub bytes: u64,
    /// The set's digest as its trailer defines it (by the header's
    /// algorithm): of the payload, or of the record CRCs for a
    /// third-party-copy set.
    pub digest: [u8; 32],
    pub end: SetEnd,
}

/// Read the set header the tape is positioned at. `None` at a filemark or
/// end of data (no set here).
pub fn read_header<T: Transport>(tape: &mut Tape<T>) -> Result<Option<SetHeader>, EngineError> {
    let (o, buf) = tape.read_block(vec![0; MAX_TAPE_BLOCK])?;
    match o {
        ReadOutcome::Block(n) => SetHeader::decode(&buf[..n])
            .map(Some)
            .map_err(|e| EngineError::format("set header", e)),
        ReadOutcome::Filemark | ReadOutcome::EndOfData => Ok(None),
    }
}

/// Read the set file the tape is positioned at (its header first) and
/// check it: see [`scan_records`]. With `expect`, the header must name
/// that set.
pub fn scan_set<T: Transport + Send>(
    tape: &mut Tape<T>,
    expect: Option<Uuid>,
    sink: impl FnMut(u64, Payload) -> Result<Returned, EngineError>,
) -> Result<SetScan, EngineError> {
    let header = open_set(tape, expect)?;
    scan_records(tape, header, sink)
}

/// Read the set header the tape is positioned at; with `expect`, it must
/// name that set.
pub fn open_set<T: Transport>(
    tape: &mut Tape<T>,
    expect: Option<Uuid>,
) -> Result<SetHeader, EngineError> {
    let Some(header) = read_header(tape)? else {
        return Err(Refusal::NoSet {
            device: tape.scsi.name().to_string(),
        }
        .into());
    };
    if let Some(want) = expect {
        if header.set_id != want {
            return Err(EngineError::Corrupt {
                set: want,
                seq: None,
                reason: Corruption::OtherSet(header.set_id),
            });
        }
    }
    Ok(header)
}

/// Read the records after `header`: check every record's CRC, set id and
/// sequence, digest the data, and hand each payload to `sink`. Stops after
/// the trailer (the filemark after it is left unread) or at a filemark or
/// end of data (truncated set). A check that fails is an error naming the
/// record.
///
/// Records with a deferred CRC (third-party-copy sets) are checked when
/// the CRC index after them arrives, so `sink` has seen their payload by
/// then: the caller reports nothing as done until this returns `Ok`.
pub fn scan_records<T: Transport + Send>(
    tape: &mut Tape<T>,
    header: SetHeader,
    mut sink: impl FnMut(u64, Payload) -> Result<Returned, EngineError>,
) -> Result<SetScan, EngineError> {
    let mut checker = SetChecker::new(header);
    let end = scan_part(tape, &mut checker, &mut sink);
    checker.finish(end?)
}

/// The records of one part (a whole set on one volume) with `checker`:
/// see [`scan_records`]. How the part's file ended; a trailer that
/// continues on the next volume is for the caller to follow.
pub fn scan_part<T: Transport + Send>(
    tape: &mut Tape<T>,
    checker: &mut SetChecker,
    sink: &mut impl FnMut(u64, Payload) -> Result<Returned, EngineError>,
) -> Result<SetEnd, EngineError> {
    // A reader thread keeps the drive busy (one READ(6) at a time, the only
    // way a tape reads) while this thread checks CRCs, digests and hands
    // payloads on.
    let (tx, rx) = handoff::<(ReadOutcome, Vec<u8>)>(4, Eager::Sender);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let (set, read_len) = (checker.header.set_id, checker.read_len());
    let outcome = std::thread::scope(|s| {
        let reader = s.spawn(move || read_blocks(tape, set, read_len, tx, &spare_rx));
        let checked = (|| -> Result<SetEnd, EngineError> {
            for (o, buf) in &rx {
                match checker.block(o, buf)? {
                    Checked::Payload(seq, p) => {
                        if let Some(back) = sink(seq, p)? {
                            let _ = spare_tx.send(back);
                        }
                    }
                    Checked::Consumed(back) => {
                        let _ = spare_tx.send(back);
                    }
                    Checked::End(end) => return Ok(end),
                }
            }
            // The reader stopped early: its own error says why.
            Ok(SetEnd::Truncated)
        })();
        drop(rx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(EngineError::Stopped("the tape reader panicked")));
        match (checked, read) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(end), Ok(())) => Ok(end),
        }
    });
    outcome
}

/// The tape side of a set scan: READ(6) one block after another into
/// recycled buffers and send each on, until the trailer, a filemark, end
/// of data, or a receiver that hung up.
pub fn read_blocks<T: Transport>(
    tape: &mut Tape<T>,
    set: Uuid,
    read_len: usize,
    tx: Sender<(ReadOutcome, Vec<u8>)>,
    spare: &mpsc::Receiver<Vec<u8>>,
) -> Result<(), EngineError> {
    let mut data_blocks = 0u64;
    loop {
        let buf = spare.try_recv().unwrap_or_else(|_| vec![0; read_len]);
        let (o, b) = tape.read_block(buf).map_err(|e| match &e {
            DeviceError::Protocol { .. } => EngineError::Corrupt {
                set,
                seq: Some(data_blocks),
                reason: Corruption::Unreadable(Box::new(e)),
            },
            _ => e.into(),
        })?;
        let last = match o {
            ReadOutcome::Block(n) => {
                !matches!(classify(&b[..n]), BlockKind::Data | BlockKind::CrcIndex)
            }
            _ => true,
        };
        data_blocks += 1;
        if tx.send((o, b)).is_err() || last {
            return Ok(());
        }
    }
}

/// What one block of a set's tape file was, once checked.
#[derive(Debug)]
pub enum Checked {
    /// Data record `seq`, checked (a deferred CRC: when its index comes).
    Payload(u64, Payload),
    /// A CRC index, matched; its block, for reuse.
    Consumed(Vec<u8>),
    /// The trailer (the set is finished: see [`SetChecker::finish`]), or a
    /// filemark or end of data before it.
    End(SetEnd),
}

/// The checks of one set's blocks after its header, in tape order: every
/// record's CRC, set id and sequence, the CRC indexes, the digest. Runs in
/// whichever thread consumes the blocks (a restore checks in its disk
/// writer, so a record crosses threads once).
#[derive(Debug)]
pub struct SetChecker {
    header: SetHeader,
    digest: SetDigest,
    chain: CrcChainDigest,
    /// CRCs of deferred records not yet matched by an index: 4 bytes each.
    unmatched: Vec<(u64, u32)>,
    records: u64,
    bytes: u64,
    /// The part being read, from 1 (FORMAT.md "Multi-volume sets").
    part: u32,
    /// The scan began at the set's start, so the digest covers the whole
    /// stream and is checked; false for a continuation part read alone.
    whole: bool,
}

impl SetChecker {
    pub fn new(header: SetHeader) -> Self {
        SetChecker {
            digest: SetDigest::new(header.digest),
            chain: CrcChainDigest::new(header.digest),
            header,
            unmatched: Vec::new(),
            records: 0,
            bytes: 0,
            part: 1,
            whole: true,
        }
    }

    /// A checker for one continuation part read without the parts before
    /// it (a catalog rebuild of its cartridge): records, CRCs, sequence
    /// and counts are checked, the digest cannot be (it covers the parts
    /// before too).
    pub fn for_part(c: &Continuation) -> Self {
        let header = SetHeader {
            set_id: c.set_id,
            volume_id: c.volume_id,
            mode: Mode::HOST,
            source: SourceIdentity::default(),
            lba: c.lba,
            blocks: 0,
            block_size: 0,
            payload_size: c.payload_size,
            created: c.created,
            label: String::new(),
            snapshot: None,
            digest: DigestAlgorithm::Sha256,
        };
        SetChecker {
            records: c.first_seq,
            bytes: c.offset,
            part: c.part,
            whole: false,
            ..SetChecker::new(header)
        }
    }

    /// The part being read.
    pub fn part(&self) -> u32 {
        self.part
    }

    /// After trailer `t` of the current part, which continues on the next
    /// volume: it must close this part and match what was read so far
    /// (counts, and the digest so far when the scan began at the start).
    pub fn end_part(&mut self, t: &SetTrailer) -> Result<(), EngineError> {
        let mismatch = |field, expected, found| Corruption::PartMismatch {
            part: self.part,
            field,
            expected,
            found,
        };
        let reason = if t.set_id != self.header.set_id {
            Some(Corruption::TrailerOfOtherSet(t.set_id))
        } else if t.part != self.part {
            Some(mismatch(
                "the trailer's part",
                self.part as u64,
                t.part as u64,
            ))
        } else if t.records != self.records || t.bytes != self.bytes {
            Some(Corruption::TrailerCounts {
                trailer_records: t.records,
                trailer_bytes: t.bytes,
                records: self.records,
                bytes: self.bytes,
            })
        } else if self.whole && !t.crc_digest && t.digest != self.digest.clone().finish() {
            Some(Corruption::TrailerDigest {
                algorithm: self.header.digest,
                of_crcs: false,
                found: hex(&self.digest.clone().finish()),
                trailer: hex(&t.digest),
            })
        } else {
            None
        };
        match reason {
            Some(r) => Err(self.corrupt(None, r)),
            None => {
                self.part += 1;
                Ok(())
            }
        }
    }

    /// The continuation header of the next part: it must name this set,
    /// this part, resume where the last part ended, and point back at
    /// `prev` (volume, tape file).
    pub fn begin_part(&self, c: &Continuation, prev: (Uuid, u32)) -> Result<(), EngineError> {
        let part = self.part;
        let check = |field, expected: u64, found: u64| {
            (expected != found).then_some(Corruption::PartMismatch {
                part,
                field,
                expected,
                found,
            })
        };
        let reason = if c.set_id != self.header.set_id {
            Some(Corruption::OtherSet(c.set_id))
        } else {
            check("part", part as u64, c.part as u64)
                .or_else(|| check("first record", self.records, c.first_seq))
                .or_else(|| check("offset", self.bytes, c.offset))
                .or_else(|| check("previous tape file", prev.1 as u64, c.prev_file as u64))
                .or_else(|| {
                    (c.prev_volume != prev.0).then_some(Corruption::PartVolume {
                        part,
                        expected: prev.0,
                        found: c.prev_volume,
                    })
                })
        };
        match reason {
            Some(r) => Err(self.corrupt(None, r)),
            None => Ok(()),
        }
    }

    pub fn set_id(&self) -> Uuid {
        self.header.set_id
    }

    /// The READ(6) length for this set's blocks: at least twice the
    /// largest record, as tgt 1.0.85 sends stale bytes for a block shorter
    /// than the request but longer than half of it (fixed in
    /// tgt 1.0.94), and the trailer is shorter than a record.
    pub fn read_len(&self) -> usize {
        (2 * (self.header.payload_size as usize + RecordHeader::LEN))
            .clamp(64 * 1024, MAX_TAPE_BLOCK)
    }

    fn corrupt(&self, seq: Option<u64>, reason: Corruption) -> EngineError {
        EngineError::Corrupt {
            set: self.header.set_id,
            seq,
            reason,
        }
    }

    /// Check the next block read.
    pub fn block(&mut self, o: ReadOutcome, buf: Vec<u8>) -> Result<Checked, EngineError> {
        let n = match o {
            ReadOutcome::Block(n) => n,
            ReadOutcome::Filemark | ReadOutcome::EndOfData => {
                return Ok(Checked::End(SetEnd::Truncated))
            }
        };
        let block = &buf[..n];
        match classify(block) {
            BlockKind::Data => {
                let len = self.record(block)?;
                let span = RecordHeader::LEN..RecordHeader::LEN + len;
                Ok(Checked::Payload(
                    self.records - 1,
                    Payload { block: buf, span },
                ))
            }
            BlockKind::CrcIndex => {
                match_index(self.header.set_id, block, &mut self.unmatched)?;
                Ok(Checked::Consumed(buf))
            }
            BlockKind::Trailer => {
                let t = SetTrailer::decode(block)
                    .map_err(|e| self.corrupt(None, Corruption::Trailer(e)))?;
                if let Some(&(seq, _)) = self.unmatched.first() {
                    return Err(self.corrupt(Some(seq), Corruption::NotIndexed));
                }
                Ok(Checked::End(SetEnd::Trailer(t)))
            }
            other => Err(self.corrupt(Some(self.records), Corruption::Unexpected(other))),
        }
    }

    /// Check one data record (`format`'s checks: CRC, set id, sequence)
    /// and digest it; its payload length.
    fn record(&mut self, block: &[u8]) -> Result<usize, EngineError> {
        let seq = self.records;
        let (h, payload) = check_record(block, self.header.set_id, seq)
            .map_err(|e| self.corrupt(Some(seq), Corruption::Record(e)))?;
        self.chain.update(h.crc);
        if h.crc_deferred {
            // A CRC-digest set: its trailer digests the CRCs, so the
            // payload digest would be wasted.
            self.unmatched.push((h.seq, h.crc));
        } else {
            self.digest.update(payload);
        }
        self.records += 1;
        self.bytes += payload.len() as u64;
        Ok(payload.len())
    }

    /// The set as read, after its trailer's counts and digest were checked
    /// against what the records gave.
    pub fn finish(self, end: SetEnd) -> Result<SetScan, EngineError> {
        let (records, bytes) = (self.records, self.bytes);
        let algorithm = self.header.digest;
        let digest = match &end {
            SetEnd::Trailer(t) if t.crc_digest => self.chain.finish(),
            // Part of the stream only: the trailer's is all there is.
            SetEnd::Trailer(t) if !self.whole => t.digest,
            _ => self.digest.finish(),
        };
        if let SetEnd::Trailer(t) = &end {
            let mismatch = if t.set_id != self.header.set_id {
                Some(Corruption::TrailerOfOtherSet(t.set_id))
            } else if t.records != records || t.bytes != bytes {
                Some(Corruption::TrailerCounts {
                    trailer_records: t.records,
                    trailer_bytes: t.bytes,
                    records,
                    bytes,
                })
            } else if t.digest != digest {
                Some(Corruption::TrailerDigest {
                    algorithm,
                    of_crcs: t.crc_digest,
                    found: hex(&digest),
                    trailer: hex(&t.digest),
                })
            } else {
                None
            };
            if let Some(reason) = mismatch {
                return Err(EngineError::Corrupt {
                    set: self.header.set_id,
                    seq: None,
                    reason,
                });
            }
        }
        Ok(SetScan {
            header: self.header,
            records,
            bytes,
            digest,
            end,
        })
    }
}

/// Check the deferred CRCs an index names against what the records gave.
fn match_index(
    set: Uuid,
    block: &[u8],
    unmatched: &mut Vec<(u64, u32)>,
) -> Result<(), EngineError> {
    let corrupt = |seq, reason| EngineError::Corrupt { set, seq, reason };
    let idx = CrcIndex::decode(block).map_err(|e| corrupt(None, Corruption::CrcIndex(e)))?;
    if idx.set_id != set {
        return Err(corrupt(None, Corruption::IndexOfOtherSet(idx.set_id)));
    }
    let first = unmatched.first().map(|&(s, _)| s);
    if idx.crcs.len() > unmatched.len() || first.is_some_and(|f| f != idx.first_seq) {
        let (first, end) = (idx.first_seq, idx.first_seq + idx.crcs.len() as u64);
        return Err(corrupt(
            Some(first),
            Corruption::IndexOutOfPlace { first, end },
        ));
    }
    for (&(seq, found), &expected) in unmatched.iter().zip(&idx.crcs) {
        if found != expected {
            return Err(corrupt(
                Some(seq),
                Corruption::IndexedCrc { expected, found },
            ));
        }
    }
    unmatched.drain(..idx.crcs.len());
    Ok(())
}

/// The designator the catalog shows for a source: the one EXTENDED COPY
/// would pick (LU-associated, binary NAA first), else the first one.
pub fn designator_text(source: &SourceIdentity) -> String {
    let di = DeviceIdentification {
        device_type: DeviceType::DISK,
        designators: source
            .designators
            .iter()
            .map(|d| Designator {
                protocol_id: 0,
                code_set: CodeSet(d.code_set),
                piv: false,
                association: Association(d.association),
                designator_type: DesignatorType(d.designator_type),
                value: d.value.clone(),
            })
            .collect(),
    };
    di.best_lu_designator()
        .or(di.designators.first())
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// What the catalog records of the set with header `h` in tape `file`:
/// the same whether the set is being written or found by a rebuild.
pub fn set_info(h: &SetHeader, file: u32) -> SetInfo {
    SetInfo {
        id: h.set_id,
        volume: h.volume_id,
        file_number: file,
        mode: h.mode.to_string(),
        label: h.label.clone(),
        source_url: h.source.url.clone(),
        source_designator: designator_text(&h.source),
        lba: Lba(h.lba),
        blocks: BlockCount(h.blocks),
        block_size: BlockSize(h.block_size),
        payload_size: h.payload_size,
        started: h.created as i64,
        digest_algorithm: h.digest.to_string(),
        tape_block: None,
    }
}

/// What a scan of a whole tape found.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub volume: VolumeRow,
    /// Every set whose header could be read, checked.
    pub sets: Vec<SetRow>,
    /// Tape files whose first block is not a readable set header, and why:
    /// what the catalog knows of them cannot be confirmed or replaced.
    pub unreadable: Vec<(u32, String)>,
    /// Parts of multi-volume sets on this tape: the first part of a set
    /// that continues on another volume, and every continuation part.
    pub parts: Vec<FoundPart>,
}

/// The first block of a tape file, when it opens a set or a part of one.
#[derive(Debug, Clone)]
pub enum FirstBlock {
    Header(Box<SetHeader>),
    Continuation(Continuation),
}

/// Read the first block of the tape file the tape is positioned at: a set
/// header or a continuation header. `None` at a filemark or end of data.
pub fn read_first_block<T: Transport>(
    tape: &mut Tape<T>,
) -> Result<Option<FirstBlock>, EngineError> {
    let (o, buf) = tape.read_block(vec![0; MAX_TAPE_BLOCK])?;
    let ReadOutcome::Block(n) = o else {
        return Ok(None);
    };
    let b = &buf[..n];
    if classify(b) == BlockKind::Continuation {
        return Continuation::decode(b)
            .map(|c| Some(FirstBlock::Continuation(c)))
            .map_err(|e| EngineError::format("continuation header", e));
    }
    SetHeader::decode(b)
        .map(|h| Some(FirstBlock::Header(Box::new(h))))
        .map_err(|e| EngineError::format("set header", e))
}

/// Scan a whole tape from the start and describe every set on it, as the
/// catalog would have recorded it. Each set is read in full and checked;
/// a set that fails a check is listed as failed with the reason. A part
/// of a multi-volume set is listed in `parts`; the catalog joins the
/// parts of a set by its id.
pub fn rebuild<T: Transport + Send>(
    tape: &mut Tape<T>,
    progress: &dyn Progress,
) -> Result<Rebuilt, EngineError> {
    let (label, trusted) = require_label_probed(tape)?;
    let mut out = Rebuilt {
        volume: volume_row_of(&label),
        sets: Vec::new(),
        unreadable: Vec::new(),
        parts: Vec::new(),
    };
    let mut start = None;
    for file in 1u32.. {
        match next_file(tape, file, start) {
            Ok(()) => {}
            Err(e) if is_eod(&e) => break,
            Err(e) => return Err(e.into()),
        }
        start = if trusted { tape.drive_block()? } else { None };
        let first = match read_first_block(tape) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(EngineError::Format { source, .. }) => {
                log::warn!(
                    "{}: tape file {file} is not a backup set ({source}); skipped",
                    tape.scsi.name()
                );
                out.unreadable.push((file, source.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        match first {
            FirstBlock::Header(h) => {
                let id = h.set_id;
                rebuild_set(tape, &label, file, *h, progress, &mut out)?;
                if let Some(row) = out.sets.last_mut() {
                    row.info.tape_block = start;
                }
                // Part 1 of a set that continues begins where the set does.
                if let Some(p) = out.parts.last_mut().filter(|p| p.set_id == id) {
                    p.part.tape_block = start;
                }
            }
            FirstBlock::Continuation(c) => {
                let mut part = rebuild_part(tape, &label, file, &c, progress)?;
                part.part.tape_block = start;
                out.parts.push(part);
            }
        }
    }
    Ok(out)
}

fn volume_row_of(label: &VolumeLabel) -> VolumeRow {
    VolumeRow {
        id: label.uuid,
        name: label.name.clone(),
        created: label.created as i64,
        last_file: None,
    }
}

/// Scan the set that starts in tape `file` with header `h` into `out`:
/// its row, and its first part when it continues on another volume.
fn rebuild_set<T: Transport + Send>(
    tape: &mut Tape<T>,
    label: &VolumeLabel,
    file: u32,
    h: SetHeader,
    progress: &dyn Progress,
    out: &mut Rebuilt,
) -> Result<(), EngineError> {
    progress.start(h.blocks * h.block_size as u64, "scan");
    let header = h.clone();
    let scan = scan_records(tape, header, |_, p| {
        progress.advance(p.bytes().len() as u64);
        Ok(Some(p.into_block()))
    });
    progress.finish();
    if let Ok(SetScan {
        end: SetEnd::Trailer(t),
        records,
        bytes,
        ..
    }) = &scan
    {
        if t.stop == StopReason::CONTINUES {
            let part = SetPart {
                part: 1,
                volume: label.uuid,
                volume_name: label.name.clone(),
                file_number: file,
                first_seq: 0,
                records: *records,
                bytes: *bytes,
                // The caller knows where the file began.
                tape_block: None,
            };
            out.parts.push(FoundPart {
                set_id: h.set_id,
                part,
                outcome: None,
            });
        }
    }
    out.sets.push(rebuilt_row(label, file, &h, scan)?);
    Ok(())
}

/// Scan the continuation part in tape `file` (its header `c` read): what
/// the catalog records of it. Its records are checked; the set's digest
/// cannot be without the parts before (verify and restore check it).
fn rebuild_part<T: Transport + Send>(
    tape: &mut Tape<T>,
    label: &VolumeLabel,
    file: u32,
    c: &Continuation,
    progress: &dyn Progress,
) -> Result<FoundPart, EngineError> {
    let mut checker = SetChecker::for_part(c);
    progress.start(0, "scan");
    let end = scan_part(tape, &mut checker, &mut |_, p| {
        progress.advance(p.bytes().len() as u64);
        Ok(Some(p.into_block()))
    });
    progress.finish();
    let scan = end.and_then(|e| checker.finish(e));
    let (records, bytes) = match &scan {
        Ok(s) => (s.records - c.first_seq, s.bytes - c.offset),
        Err(_) => (0, 0),
    };
    let mut outcome = SetOutcome {
        state: SetState::Failed,
        records: 0,
        bytes: 0,
        digest: None,
        ended: 0,
        seconds: 0.0,
        error: None,
    };
    match scan {
        Ok(SetScan {
            end: SetEnd::Trailer(t),
            ..
        }) => {
            if t.stop == StopReason::CONTINUES {
                return Ok(found(c, label, file, (records, bytes), None));
            }
            outcome.state = trailer_state(&t);
            if !t.complete {
                outcome.error = Some(format!("set incomplete: {}", t.stop));
            }
            outcome.digest = Some(hex(&t.digest));
            outcome.ended = t.ended as i64;
        }
        Ok(_) => outcome.error = Some("no trailer: the backup was interrupted".into()),
        Err(e @ EngineError::Corrupt { .. }) => outcome.error = Some(e.to_string()),
        Err(e) => return Err(e),
    }
    Ok(found(c, label, file, (records, bytes), Some(outcome)))
}

fn found(
    c: &Continuation,
    label: &VolumeLabel,
    file: u32,
    (records, bytes): (u64, u64),
    outcome: Option<SetOutcome>,
) -> FoundPart {
    FoundPart {
        set_id: c.set_id,
        part: SetPart {
            part: c.part,
            volume: label.uuid,
            volume_name: label.name.clone(),
            file_number: file,
            first_seq: c.first_seq,
            records,
            bytes,
            tape_block: None,
        },
        outcome,
    }
}

/// The state a set's last trailer gives it.
fn trailer_state(t: &SetTrailer) -> SetState {
    match (t.complete, t.stop) {
        (true, _) => SetState::Complete,
        (false, StopReason::INTERRUPTED) => SetState::Interrupted,
        (false, _) => SetState::Incomplete,
    }
}

/// Put the tape at the start of `file`. Where the drive's positions are
/// trusted and the previous file began at block `prev`: LOCATE there and
/// SPACE over one filemark, wherever the scan of that file stopped (exact
/// on such a drive, and no rewind per file). Else, or when the drive has
/// no LOCATE, REWIND + SPACE `file` filemarks, the pattern that is exact
/// on tgt too.
fn next_file<T: Transport>(
    tape: &mut Tape<T>,
    file: u32,
    prev: Option<u64>,
) -> Result<(), DeviceError> {
    match prev.and_then(|b| u32::try_from(b).ok()) {
        Some(block) => match tape.locate(block) {
            Ok(()) => tape.space_filemarks(1),
            // Positions that count, but no LOCATE: space from BOT.
            Err(e) if e.is_unsupported_command() => tape.seek_file(file),
            Err(e) => Err(e),
        },
        None => tape.seek_file(file),
    }
}

/// The catalog row of the set in tape `file` with header `h`, from how its
/// scan went: a set that failed a check is a failed row with the reason.
fn rebuilt_row(
    label: &VolumeLabel,
    file: u32,
    h: &SetHeader,
    scan: Result<SetScan, EngineError>,
) -> Result<SetRow, EngineError> {
    let mut row = SetRow {
        info: set_info(h, file),
        outcome: SetOutcome {
            state: SetState::Failed,
            records: 0,
            bytes: 0,
            digest: None,
            ended: 0,
            seconds: 0.0,
            error: None,
        },
        volume_name: label.name.clone(),
        extents: vec![(Lba(h.lba), BlockCount(h.blocks))],
        parts: Vec::new(),
        expired: None,
    };
    match scan {
        Ok(s) => {
            row.outcome.records = s.records;
            row.outcome.bytes = s.bytes;
            match s.end {
                SetEnd::Trailer(t) => {
                    row.outcome.state = trailer_state(&t);
                    if !t.complete {
                        row.outcome.error = Some(format!("set incomplete: {}", t.stop));
                    }
                    row.outcome.digest = Some(hex(&s.digest));
                    row.outcome.ended = t.ended as i64;
                    row.outcome.seconds = t.ended.saturating_sub(h.created) as f64;
                }
                SetEnd::Truncated => {
                    row.outcome.error = Some("no trailer: the backup was interrupted".into());
                }
            }
        }
        Err(e @ EngineError::Corrupt { .. }) => row.outcome.error = Some(e.to_string()),
        Err(e) => return Err(e),
    }
    Ok(row)
}
