//! Third-party-copy backup: a copy manager (a data router) moves the set
//! from disk to tape on EXTENDED COPY; this host sends parameter lists and
//! reads status, never data, and positions nothing itself.
//!
//! The set has the host-driven layout (FORMAT.md), written through the
//! copy manager:
//! - `11h` SPACE to end of data, then the set header as `04h` inline data;
//! - per record, the 48-byte header as `04h` inline data with CAT=1 and a
//!   `00h` block→stream segment for the payload: CAT joins them into one
//!   tape block (SPC-4 6.4.6.1);
//! - the CRC index and the trailer as `04h`, then a `10h` filemark.
//!
//! The record headers carry a deferred CRC: this host never sees the
//! payload. The copy manager returns the CRC32C of each tape block it wrote
//! through RECEIVE COPY RESULTS (receive data, list ID usage 00b), which is
//! exactly the record's CRC; they go into the CRC index, and the trailer's
//! digest covers them in order (FORMAT.md "Third-party-copy sets").

use uuid::Uuid;

use super::copy_manager::{
    copy_failed, destination_full, encode, extended_copy, lu_designator, operating_parameters,
    CopyError,
};
use super::guard::refuse_live_writer;
use super::interrupt::StopFlag;
use super::set_writer::{
    Extent, Moved, Mover, Placement, SetPlan, SetRequest, SetWriter, SourceSurvey, Tally,
};
use super::{now, EngineError, Progress, Refusal, SetSummary};
use crate::catalog::{Catalog, SetState};
use crate::device::{DeviceError, Disk, Scsi, Tape};
use crate::format::{
    encode_deferred_record_header, CrcChainDigest, CrcIndex, Mode, RecordHeader, SetHeader,
    SetTrailer,
};
use crate::scsi::ssc::SpaceCode;
use crate::scsi::xcopy::{
    list_id_usage, Cscd, CscdType, DeviceParams, OperatingParameters, RcrAction,
    ReceiveCopyResults, ReceiveData, Segment, SegmentKind, SegmentType, XcopyParams,
};
use crate::scsi::{BlockSize, CdbCodec, DeviceType, Lba, Wire};
use crate::transport::Transport;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct ThirdPartyOptions {
    /// The set. Its stop flag is read between EXTENDED COPY commands.
    pub set: SetRequest,
    /// The copy manager's address, without secrets, for the summary.
    pub copy_manager_url: String,
    /// The drive was granted by a backup server: its volume is shared
    /// with other hosts whose sets this catalog does not hold, so this
    /// host reads the label and finds the end of the tape itself, as the
    /// host-driven mover does, instead of trusting its own catalog.
    pub shared_volume: bool,
}

/// What `backup --mode xcopy --json` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThirdPartySummary {
    #[serde(flatten)]
    pub set: SetSummary,
    pub copy_manager: String,
    pub xcopy_commands: usize,
    /// Parameter lists sent and results read by this host.
    pub bytes_through_initiator: u64,
    /// Backup data that crossed this host: 0 by construction.
    pub data_bytes_through_initiator: u64,
}

/// Back up `source` to `tape` through the copy manager `cm`.
///
/// `source` and `tape` are used for identity only (INQUIRY, VPD 0x83, READ
/// CAPACITY) and, after a failed set, to find the end of the tape.
pub fn backup<C: Transport, S: Transport, T: Transport>(
    cm: &mut Scsi<C>,
    source: &mut Disk<S>,
    tape: &mut Tape<T>,
    catalog: &Catalog,
    opts: &ThirdPartyOptions,
    progress: &dyn Progress,
) -> Result<ThirdPartySummary, EngineError> {
    let limits = stream_limits(cm)?;
    let survey = SourceSurvey::read(source, &opts.set.source_url, None)?;
    let writer = SetWriter::new(&opts.set, survey, MAX_PER_RECORD)?;
    let extent = *writer.extent();
    if extent.blocks.0 == 0 {
        return Err(Refusal::EmptyRange { lba: extent.lba }.into());
    }
    let cscds = cscds(source, tape, extent.block_size, &opts.set)?;
    let mut mover = ThirdPartyMover {
        cm,
        tape,
        limits,
        cscds,
        plan: Vec::new(),
        sent: 0,
        received: 0,
        shared_volume: opts.shared_volume,
    };
    let (set, _) = writer.run(&mut mover, catalog, progress)?;
    Ok(ThirdPartySummary {
        set,
        copy_manager: opts.copy_manager_url.clone(),
        xcopy_commands: mover.plan.len() + 1,
        bytes_through_initiator: mover.sent + mover.received,
        data_bytes_through_initiator: 0,
    })
}

/// The copy manager's limits that shape the lists, checked for what a
/// disk→tape copy needs.
fn stream_limits<C: Transport>(cm: &mut Scsi<C>) -> Result<OperatingParameters, EngineError> {
    let p = operating_parameters(cm).map_err(|e| match e {
        DeviceError::Parse { .. } => EngineError::from(e),
        source => CopyError::NoOperatingParameters {
            device: cm.name().to_string(),
            source,
        }
        .into(),
    })?;
    let needed = [
        SegmentType::BLOCK_TO_STREAM,
        SegmentType::INLINE_TO_STREAM,
        SegmentType::WRITE_FILEMARKS,
        SegmentType::SPACE,
    ];
    let missing: Vec<SegmentType> = needed
        .into_iter()
        .filter(|t| !p.supports_segment(*t))
        .collect();
    let identification_cscd = p.supports_cscd(CscdType::IDENTIFICATION);
    if !missing.is_empty() || !identification_cscd {
        return Err(CopyError::CannotWriteTape {
            device: cm.name().to_string(),
            missing,
            identification_cscd,
        }
        .into());
    }
    Ok(p)
}

/// The two CSCDs every list names: the disk (index [`SRC`]) and the tape
/// (index [`TAPE`]), by their VPD 0x83 designators.
fn cscds<S: Transport, T: Transport>(
    source: &mut Disk<S>,
    tape: &mut Tape<T>,
    bs: BlockSize,
    req: &SetRequest,
) -> Result<Vec<Cscd>, EngineError> {
    let src_di = source.scsi.device_identification()?;
    let tape_di = tape.scsi.device_identification()?;
    let cscd = |what, d, t, p| {
        Cscd::identification(d, t, p).map_err(|source| CopyError::Cscd { what, source })
    };
    let stream = DeviceParams::Stream {
        pad: false,
        fixed: false,
        stream_block_len: 0,
    };
    Ok(vec![
        cscd(
            "source CSCD",
            &lu_designator(&src_di, &req.source_url)?,
            DeviceType::DISK,
            DeviceParams::block(bs.0),
        )?,
        cscd(
            "tape CSCD",
            &lu_designator(&tape_di, &req.tape_url)?,
            DeviceType::TAPE,
            stream,
        )?,
    ])
}

/// The third-party-copy mover: plans the lists from the set header and
/// the copy manager's limits, sends them, and collects the CRCs the copy
/// manager held.
struct ThirdPartyMover<'a, C: Transport, T: Transport> {
    cm: &'a mut Scsi<C>,
    tape: &'a mut Tape<T>,
    limits: OperatingParameters,
    cscds: Vec<Cscd>,
    plan: Vec<Command>,
    /// Parameter-list bytes sent.
    sent: u64,
    /// Result bytes read.
    received: u64,
    /// See [`ThirdPartyOptions::shared_volume`].
    shared_volume: bool,
}

impl<C: Transport, T: Transport> Mover for ThirdPartyMover<'_, C, T> {
    fn mode(&self) -> Mode {
        Mode::XCOPY
    }

    /// The catalog says which volume the drive holds (this host does not
    /// read the tape) and where its next file is; on a volume shared
    /// through a backup server the tape says so instead.
    fn place(&mut self, catalog: &Catalog, tape_url: &str) -> Result<Placement, EngineError> {
        if self.shared_volume {
            return shared_placement(catalog, self.tape);
        }
        let volume = catalog
            .volume_in_device(tape_url)?
            .ok_or_else(|| Refusal::VolumeUnknown {
                device: tape_url.to_string(),
            })?;
        refuse_live_writer(catalog, volume, tape_url)?;
        let file = next_file(catalog, volume, self.tape)?;
        Ok(Placement {
            volume,
            volume_name: None,
            file,
            // The copy manager moves the tape, not this host.
            block: None,
        })
    }

    fn prepare(&mut self, set: &SetPlan) -> Result<(), EngineError> {
        self.plan = plan_data(set, &self.cscds, &self.limits)?;
        Ok(())
    }

    fn write(
        &mut self,
        set: &SetPlan,
        stop: StopFlag,
        progress: &dyn Progress,
    ) -> Result<Moved, EngineError> {
        progress.start(set.extent.bytes(), "backup (xcopy)");
        let run = self.run_plan(&set.header, stop, progress);
        progress.finish();
        run
    }

    /// Ask the copy manager to close the set's file (SPACE to end of
    /// data, one filemark). Not after a list this host could not plan or
    /// read back: nothing of it went to tape.
    fn close_failed(&mut self, cause: &EngineError) {
        if matches!(cause, EngineError::CopyManager(_)) {
            return;
        }
        let mut params = XcopyParams::new(self.cscds.clone(), Vec::new());
        params.segments.push(space_to_eod());
        params.segments.push(filemark());
        if let Err(e) = send(
            self.cm,
            &params,
            "closing the failed set's file",
            &mut self.sent,
        ) {
            log::warn!(
                "{}: could not close the failed set's tape file ({e}); the next backup checks the end of the tape",
                self.cm.name()
            );
        }
    }
}

impl<C: Transport, T: Transport> ThirdPartyMover<'_, C, T> {
    /// Send the planned commands, collecting the record CRCs; between
    /// commands (once the first has put the header on tape) a raised
    /// `stop` ends the data. Then the closing command: CRC index, trailer,
    /// filemark.
    fn run_plan(
        &mut self,
        header: &SetHeader,
        stop: StopFlag,
        progress: &dyn Progress,
    ) -> Result<Moved, EngineError> {
        let (mut tally, algorithm) = (Tally::new(header.set_id), header.digest);
        let mut crcs: Vec<u32> = Vec::new();
        let total = self.plan.len() + 1;
        for (i, c) in self.plan.iter().enumerate() {
            if i > 0 && tally.stop_at(false, stop.raised()) {
                break;
            }
            let what = format!(
                "command {} of {total} (records {}..{})",
                i + 1,
                c.records.start,
                c.records.end
            );
            send(self.cm, &c.params, &what, &mut self.sent)
                .map_err(|e| at_end_of_medium(e, header.set_id))?;
            let got = held_crcs(self.cm, c, &mut self.received)?;
            // The first command's first block is the set header's.
            let records = if i == 0 { &got[1..] } else { &got[..] };
            tally.wrote(records.len() as u64, c.payload_bytes);
            crcs.extend_from_slice(records);
            progress.advance(c.payload_bytes);
        }
        let mut chain = CrcChainDigest::new(algorithm);
        crcs.iter().for_each(|c| chain.update(*c));
        let digest = chain.finish();
        let trailer = tally.trailer(digest, true, now());
        let list_id = (self.plan.len() % 256) as u8;
        let close = closing_command(&self.cscds, &crcs, &trailer, list_id)?;
        let what = "the closing command (CRC index, trailer, filemark)";
        send(self.cm, &close, what, &mut self.sent)?;
        Ok(tally.moved(digest, Default::default()))
    }
}

/// One command of the plan: its parameter list and the stream blocks
/// (tape blocks) it writes.
struct Command {
    params: XcopyParams,
    blocks_written: usize,
    records: std::ops::Range<u64>,
    payload_bytes: u64,
}

const SRC: u16 = 0;
const TAPE: u16 = 1;

/// A record's payload is one 00h segment, whose block count is 16 bits
/// (SPC-4 6.4.6.3).
const MAX_PER_RECORD: u64 = u16::MAX as u64;

fn inline(stream_len: u32, data: &[u8], params: &mut XcopyParams, cat: bool) -> Segment {
    let offset = params.inline_data.len() as u64;
    params.inline_data.extend_from_slice(data);
    Segment {
        cat,
        dc: false,
        kind: SegmentKind::InlineToStream {
            dst: TAPE,
            stream_len,
            inline_len: data.len() as u32,
            inline_offset: offset,
        },
    }
}

/// How many records one command can carry within the copy manager's
/// limits, and that one record fits a segment.
fn records_per_command(
    extent: &Extent,
    cscds: &[Cscd],
    header_len: usize,
    p: &OperatingParameters,
) -> Result<u64, CopyError> {
    let cscd_len: usize = cscds.iter().map(|c| c.buffer_len()).sum();
    // Each record: a 24-byte 04h and a 24-byte 00h (SPC-4 6.4.6.3, 6.4.6.6),
    // 48 bytes of inline data and 4 bytes of held CRC.
    let by_segments = (p.max_segment_count as usize).saturating_sub(2) / 2;
    let by_list = (p.max_descriptor_list_len as usize).saturating_sub(cscd_len + 12 + 24) / 48;
    let by_inline = (p.max_inline_data_len as usize).saturating_sub(header_len)
        / RecordHeader::LEN.next_multiple_of(4);
    let by_held = (p.held_data_limit as usize / 4).saturating_sub(1);
    let per_command = by_segments.min(by_list).min(by_inline).min(by_held);
    if per_command == 0 {
        return Err(CopyError::NoRoomForRecord {
            segments: p.max_segment_count,
            descriptor_list: p.max_descriptor_list_len,
            inline_data: p.max_inline_data_len,
            held_data: p.held_data_limit,
        });
    }
    let payload = u64::from(extent.payload_size());
    if p.max_segment_len != 0 && payload > u64::from(p.max_segment_len) {
        return Err(CopyError::RecordOverSegment {
            payload,
            max: p.max_segment_len,
        });
    }
    Ok(per_command as u64)
}

/// Split the data records into commands within the copy manager's limits:
/// the first starts with a SPACE to end of data and the set header.
fn plan_data(
    plan: &SetPlan,
    cscds: &[Cscd],
    p: &OperatingParameters,
) -> Result<Vec<Command>, CopyError> {
    let (set, extent, header) = (plan.header.set_id, &plan.extent, &plan.header_bytes[..]);
    let per_command = records_per_command(extent, cscds, header.len(), p)?;
    let total = extent.blocks.0.div_ceil(extent.per_record);
    let mut out = Vec::new();
    let mut seq = 0u64;
    loop {
        let mut params = XcopyParams::new(cscds.to_vec(), Vec::new());
        params.list_id_usage = list_id_usage::HOLD;
        params.list_id = (out.len() % 256) as u8;
        let mut blocks_written = 0;
        if out.is_empty() {
            // Append after the last set: SPACE to end of data (SSC-4 7.7).
            params.segments.push(space_to_eod());
            let s = inline(header.len() as u32, header, &mut params, false);
            params.segments.push(s);
            blocks_written += 1;
        }
        let records = seq..(seq + per_command).min(total);
        let mut payload_bytes = 0;
        for seq in records.clone() {
            payload_bytes += push_record(&mut params, set, extent, seq);
            blocks_written += 1;
        }
        seq = records.end;
        params.check().map_err(|source| CopyError::ParameterList {
            what: "planned parameter list",
            source,
        })?;
        out.push(Command {
            params,
            blocks_written,
            records,
            payload_bytes,
        });
        if seq >= total {
            return Ok(out);
        }
    }
}

/// Record `seq`: its header as inline data with CAT=1, then its payload as
/// a block→stream segment of the same stream length, so the two form one
/// tape block. The payload bytes.
fn push_record(params: &mut XcopyParams, set: Uuid, extent: &Extent, seq: u64) -> u64 {
    let first = seq * extent.per_record;
    let n = (extent.blocks.0 - first).min(extent.per_record);
    let bytes = n * u64::from(extent.block_size.0);
    let stream_len = (RecordHeader::LEN as u64 + bytes) as u32;
    let h = encode_deferred_record_header(set, seq, bytes as u32);
    let s = inline(stream_len, &h, params, true);
    params.segments.push(s);
    params.segments.push(Segment {
        cat: false,
        dc: false,
        kind: SegmentKind::BlockToStream {
            src: SRC,
            dst: TAPE,
            stream_len,
            blocks: n as u16,
            lba: Lba(extent.lba.0 + first),
        },
    });
    bytes
}

/// The closing command: CRC index records, the trailer, one filemark.
fn closing_command(
    cscds: &[Cscd],
    crcs: &[u32],
    trailer: &SetTrailer,
    list_id: u8,
) -> Result<XcopyParams, CopyError> {
    let mut params = XcopyParams::new(cscds.to_vec(), Vec::new());
    params.list_id_usage = list_id_usage::HOLD;
    params.list_id = list_id;
    for (i, chunk) in crcs.chunks(CrcIndex::MAX_ENTRIES).enumerate() {
        let idx = CrcIndex {
            set_id: trailer.set_id,
            first_seq: (i * CrcIndex::MAX_ENTRIES) as u64,
            crcs: chunk.to_vec(),
        }
        .encode()
        .ok_or(CopyError::CrcIndexTooLarge)?;
        let s = inline(idx.len() as u32, &idx, &mut params, false);
        params.segments.push(s);
    }
    let t = trailer.encode();
    let s = inline(t.len() as u32, &t, &mut params, false);
    params.segments.push(s);
    params.segments.push(filemark());
    params.check().map_err(|source| CopyError::ParameterList {
        what: "closing parameter list",
        source,
    })?;
    Ok(params)
}

/// 11h: SPACE to end of data (SSC-4 7.7), where a set is appended.
fn space_to_eod() -> Segment {
    Segment {
        cat: false,
        dc: false,
        kind: SegmentKind::Space {
            dst: TAPE,
            code: SpaceCode::END_OF_DATA.0,
            count: 0,
        },
    }
}

/// 10h: one filemark, which closes the set's tape file.
fn filemark() -> Segment {
    Segment {
        cat: false,
        dc: false,
        kind: SegmentKind::WriteFilemarks {
            dst: TAPE,
            wsmk: false,
            immed: false,
            count: 1,
        },
    }
}

/// A copy the copy manager aborted because the tape reached early warning
/// or end of medium is [`EngineError::XcopyTapeFull`]: no next volume can
/// be had in the middle of a copy manager's list.
fn at_end_of_medium(e: EngineError, set: Uuid) -> EngineError {
    match e {
        EngineError::Aborted { at, source } if destination_full(&source) => {
            EngineError::XcopyTapeFull {
                set,
                at,
                source: Box::new(source),
            }
        }
        e => e,
    }
}

/// Send one parameter list; `Aborted` names the segment on COPY ABORTED.
fn send<C: Transport>(
    cm: &mut Scsi<C>,
    params: &XcopyParams,
    what: &str,
    sent: &mut u64,
) -> Result<(), EngineError> {
    let list = encode(params)?;
    *sent += list.len() as u64;
    extended_copy(cm, params, list).map_err(|e| copy_failed(e, what))
}

/// The CRC32Cs the copy manager held for command `c`'s list (API: the
/// held data of a list with LIST ID USAGE 00b, 4 bytes per block written).
fn held_crcs<C: Transport>(
    cm: &mut Scsi<C>,
    c: &Command,
    got: &mut u64,
) -> Result<Vec<u32>, EngineError> {
    let (list_id, expect) = (c.params.list_id, c.blocks_written);
    let rcr = ReceiveCopyResults {
        action: RcrAction::RECEIVE_DATA,
        list_id,
        alloc_len: (4 + 4 * expect) as u32,
    };
    let buf = cm.data_in(rcr.to_cdb(), rcr.alloc_len as usize)?;
    *got += buf.len() as u64;
    let d = ReceiveData::parse(&buf).map_err(|e| cm.perr("RECEIVE COPY RESULTS data", e))?;
    if d.available_data as usize != 4 * expect || d.data.len() != 4 * expect {
        return Err(CopyError::HeldCrcs {
            device: cm.name().to_string(),
            list_id,
            got: d.available_data,
            expected: 4 * expect,
        }
        .into());
    }
    d.crcs()
        .map_err(|e| cm.perr("RECEIVE COPY RESULTS data", e).into())
}

/// Where the set goes on a volume shared through a backup server: after
/// the last file on the tape, read from the tape (the label names the
/// volume, which is recorded in this host's catalog).
fn shared_placement<T: Transport>(
    catalog: &Catalog,
    tape: &mut Tape<T>,
) -> Result<Placement, EngineError> {
    let (label, trusted) = super::volume::require_label_probed(tape)?;
    refuse_live_writer(catalog, label.uuid, &label.name)?;
    catalog.upsert_volume(&crate::catalog::VolumeRow {
        id: label.uuid,
        name: label.name.clone(),
        created: label.created as i64,
        last_file: None,
    })?;
    let file = super::volume::find_append_point(tape)?;
    // This host found the append point itself: where the set header goes,
    // for restore to LOCATE to.
    let block = if trusted { tape.drive_block()? } else { None };
    Ok(Placement {
        volume: label.uuid,
        volume_name: Some(label.name),
        file,
        block,
    })
}

/// Where the set goes: the catalog's next file on the volume in `tape`.
/// After a failed set the end of the tape is unknown (its file may be
/// open), so this host checks it once itself, and says so.
fn next_file<T: Transport>(
    catalog: &Catalog,
    volume: Uuid,
    tape: &mut Tape<T>,
) -> Result<u32, EngineError> {
    let sets = catalog.sets_on_volume(volume)?;
    let Some(last) = sets.iter().max_by_key(|s| s.info.file_number) else {
        return Ok(1);
    };
    match last.outcome.state {
        SetState::Complete | SetState::Incomplete | SetState::Interrupted => {
            Ok(last.info.file_number + 1)
        }
        _ => {
            log::warn!(
                "{}: the last set on this volume ({}) is {}; checking the end of the tape from this host before appending",
                tape.scsi.name(),
                last.info.id,
                last.outcome.state
            );
            super::volume::find_append_point(tape)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::spc::{Association, CodeSet, Designator, DesignatorType};

    fn cscds() -> Vec<Cscd> {
        let d = |b: u8| Designator {
            protocol_id: 0,
            code_set: CodeSet::BINARY,
            piv: false,
            association: Association::LU,
            designator_type: DesignatorType::NAA,
            value: vec![0x60, b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        };
        vec![
            Cscd::identification(&d(1), DeviceType::DISK, DeviceParams::block(512)).unwrap(),
            Cscd::identification(
                &d(2),
                DeviceType::TAPE,
                DeviceParams::Stream {
                    pad: false,
                    fixed: false,
                    stream_block_len: 0,
                },
            )
            .unwrap(),
        ]
    }

    fn extent(lba: u64, blocks: u64, per_record: u64) -> Extent {
        Extent {
            lba: Lba(lba),
            blocks: crate::scsi::BlockCount(blocks),
            block_size: BlockSize(512),
            per_record,
        }
    }

    /// A set whose header encodes as `header_bytes` (only its id, the
    /// extent and those bytes matter to the planner).
    fn set_plan(set: Uuid, extent: Extent, header_bytes: &[u8]) -> SetPlan {
        SetPlan {
            header: SetHeader {
                set_id: set,
                volume_id: Uuid::nil(),
                mode: Mode::XCOPY,
                source: Default::default(),
                lba: extent.lba.0,
                blocks: extent.blocks.0,
                block_size: extent.block_size.0,
                payload_size: extent.payload_size(),
                created: 0,
                label: String::new(),
                snapshot: None,
                digest: Default::default(),
            },
            header_bytes: header_bytes.to_vec(),
            extent,
            place: Placement {
                volume: Uuid::nil(),
                volume_name: None,
                file: 1,
                block: None,
            },
        }
    }

    fn params(segments: u16) -> OperatingParameters {
        OperatingParameters {
            available_data: 0,
            snlid: true,
            max_cscd_count: 8,
            max_segment_count: segments,
            max_descriptor_list_len: 1 << 20,
            max_segment_len: 32 << 20,
            max_inline_data_len: 1 << 20,
            held_data_limit: 1 << 20,
            max_stream_transfer_size: 4 << 20,
            total_concurrent_copies: 1,
            max_concurrent_copies: 1,
            data_segment_granularity: 0,
            inline_data_granularity: 0,
            held_data_granularity: 0,
            implemented: vec![0x00, 0x04, 0x10, 0x11, 0xe4],
        }
    }

    #[test]
    fn plan_pairs_inline_headers_with_block_to_stream_payloads() {
        let l = extent(10, 1000, 256);
        // 2 + 2 per record segments: 3 records per command.
        let set = Uuid::from_bytes([7; 16]);
        let plan = plan_data(&set_plan(set, l, b"HEADER"), &cscds(), &params(8)).unwrap();
        assert_eq!(plan.len(), 2);
        let first = &plan[0];
        assert_eq!(first.records, 0..3);
        assert_eq!(first.blocks_written, 4);
        assert_eq!(first.params.list_id_usage, list_id_usage::HOLD);
        assert!(matches!(
            first.params.segments[0].kind,
            SegmentKind::Space {
                code: 3,
                count: 0,
                ..
            }
        ));
        assert!(matches!(
            first.params.segments[1].kind,
            SegmentKind::InlineToStream {
                stream_len: 6,
                inline_len: 6,
                inline_offset: 0,
                ..
            }
        ));
        // Record 0: header inline with CAT, then 256 blocks from LBA 10,
        // both with the same stream length so they form one tape block.
        let (h, d) = (&first.params.segments[2], &first.params.segments[3]);
        assert!(h.cat && !d.cat);
        assert!(matches!(
            h.kind,
            SegmentKind::InlineToStream {
                stream_len: 131_120,
                inline_len: 48,
                inline_offset: 6,
                ..
            }
        ));
        assert!(matches!(
            d.kind,
            SegmentKind::BlockToStream {
                stream_len: 131_120,
                blocks: 256,
                lba: Lba(10),
                ..
            }
        ));
        // The last record is short: 1000 - 3*256 = 232 blocks.
        let last = &plan[1];
        assert_eq!(last.records, 3..4);
        assert_eq!(last.blocks_written, 1);
        assert!(matches!(
            last.params.segments[1].kind,
            SegmentKind::BlockToStream {
                stream_len: 118_832,
                blocks: 232,
                lba: Lba(778),
                ..
            }
        ));
        assert_eq!(last.payload_bytes, 232 * 512);
        // The inline header is a deferred-CRC record header.
        let inline = &last.params.inline_data[..48];
        assert_eq!(&inline[..8], b"SANMDAT1");
        assert_eq!(&inline[10..12], &[0, 1]);
    }

    #[test]
    fn limits_that_fit_no_record_are_refused() {
        let l = extent(0, 10, 4);
        assert!(matches!(
            plan_data(&set_plan(Uuid::nil(), l, b"H"), &cscds(), &params(2)),
            Err(CopyError::NoRoomForRecord { .. })
        ));
        let mut p = params(100);
        p.max_segment_len = 1024;
        assert!(matches!(
            plan_data(&set_plan(Uuid::nil(), l, b"H"), &cscds(), &p),
            Err(CopyError::RecordOverSegment {
                payload: 2048,
                max: 1024
            })
        ));
    }

    #[test]
    fn closing_command_holds_index_trailer_and_filemark() {
        let set = Uuid::from_bytes([3; 16]);
        let t = SetTrailer {
            set_id: set,
            records: 2,
            bytes: 10,
            digest: [0; 32],
            complete: true,
            stop: crate::format::StopReason::NOT_GIVEN,
            ended: 1,
            crc_digest: true,
            part: 1,
        };
        let p = closing_command(&cscds(), &[1, 2], &t, 9).unwrap();
        assert_eq!(p.segments.len(), 3);
        assert_eq!(p.list_id, 9);
        let idx = CrcIndex::decode(&p.inline_data).unwrap();
        assert_eq!(idx.crcs, vec![1, 2]);
        assert!(matches!(
            p.segments[2].kind,
            SegmentKind::WriteFilemarks { count: 1, .. }
        ));
        let tl = p.inline_data.len() - SetTrailer::LEN;
        assert_eq!(SetTrailer::decode(&p.inline_data[tl..]).unwrap(), t);
    }
}
