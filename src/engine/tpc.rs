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

use std::time::Instant;

use uuid::Uuid;

use super::host::source_identity;
use super::xcopy::{aborted_segment, XCOPY_TIMEOUT};
use super::{now, EngineError, Progress, SetSummary};
use crate::catalog::{Catalog, SetInfo, SetOutcome, SetState};
use crate::device::{DeviceError, Disk, Scsi, Tape};
use crate::format::{
    encode_deferred_record_header, hex, CrcChainDigest, CrcIndex, Mode, RecordHeader, SetHeader,
    SetTrailer, StopReason,
};
use crate::scsi::spc::DeviceIdentification;
use crate::scsi::ssc::SpaceCode;
use crate::scsi::xcopy::{
    list_id_usage, Cscd, CscdType, DeviceParams, OperatingParameters, RcrAction,
    ReceiveCopyResults, ReceiveData, Segment, SegmentKind, SegmentType, XcopyParams,
};
use crate::scsi::{CdbCodec, DeviceType, Lba, Wire};
use crate::transport::{Request, Transport};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct TpcOptions {
    pub lba: Option<u64>,
    pub blocks: Option<u64>,
    pub label: String,
    /// Tape block size in bytes (record header included).
    pub tape_block: usize,
    pub source_url: String,
    pub tape_url: String,
    pub copy_manager_url: String,
    /// Raised by SIGINT/SIGTERM: stop between EXTENDED COPY commands and
    /// close the set as interrupted.
    pub stop: super::interrupt::StopFlag,
    /// The set digest's algorithm, here over the record CRCs (FORMAT.md
    /// "Third-party-copy sets").
    pub digest: crate::format::DigestAlgorithm,
}

/// What `backup --mode xcopy --json` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TpcSummary {
    #[serde(flatten)]
    pub set: SetSummary,
    pub copy_manager: String,
    pub xcopy_commands: usize,
    /// Parameter lists sent and results read by this host.
    pub bytes_through_initiator: u64,
    /// Backup data that crossed this host: 0 by construction.
    pub data_bytes_through_initiator: u64,
}

/// The copy manager's limits that shape the lists, checked for what a
/// disk→tape copy needs.
fn stream_limits<C: Transport>(cm: &mut Scsi<C>) -> Result<OperatingParameters, EngineError> {
    let p = super::xcopy::operating_parameters(cm).map_err(|e| match e {
        DeviceError::Parse { .. } => EngineError::from(e),
        e => EngineError::Refused(format!(
            "{}: no operating parameters (RECEIVE COPY RESULTS 03h: {e}); a third-party-copy backup needs a copy manager that reports block→stream support",
            cm.name()
        )),
    })?;
    let needed = [
        SegmentType::BLOCK_TO_STREAM,
        SegmentType::INLINE_TO_STREAM,
        SegmentType::WRITE_FILEMARKS,
        SegmentType::SPACE,
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|t| !p.supports_segment(**t))
        .map(|t| t.to_string())
        .collect();
    if !missing.is_empty() || !p.supports_cscd(CscdType::IDENTIFICATION) {
        return Err(EngineError::Refused(format!(
            "{}: the copy manager cannot write a set to tape (missing segment types: {}{})",
            cm.name(),
            if missing.is_empty() {
                "none".to_string()
            } else {
                missing.join(", ")
            },
            if p.supports_cscd(CscdType::IDENTIFICATION) {
                ""
            } else {
                "; no E4h identification CSCDs"
            }
        )));
    }
    Ok(p)
}

/// One command of the plan: its parameter list and the stream blocks
/// (tape blocks) it writes.
struct Command {
    params: XcopyParams,
    blocks_written: usize,
    records: std::ops::Range<u64>,
    payload_bytes: u64,
}

/// Per-record geometry.
struct Layout {
    set: Uuid,
    lba: u64,
    blocks: u64,
    per_record: u64,
    bs: u32,
}

impl Layout {
    fn records(&self) -> u64 {
        self.blocks.div_ceil(self.per_record)
    }

    /// (lba, blocks) of record `seq`.
    fn extent(&self, seq: u64) -> (u64, u64) {
        let first = seq * self.per_record;
        (self.lba + first, (self.blocks - first).min(self.per_record))
    }
}

const SRC: u16 = 0;
const TAPE: u16 = 1;

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

/// Split the data records into commands within the copy manager's limits.
fn plan_data(
    l: &Layout,
    cscds: &[Cscd],
    header: &[u8],
    p: &OperatingParameters,
) -> Result<Vec<Command>, EngineError> {
    let cscd_len: usize = cscds.iter().map(|c| c.buffer_len()).sum();
    // Each record: a 24-byte 04h and a 24-byte 00h (SPC-4 6.4.6.3, 6.4.6.6),
    // 48 bytes of inline data and 4 bytes of held CRC.
    let by_segments = (p.max_segment_count as usize).saturating_sub(2) / 2;
    let by_list = (p.max_descriptor_list_len as usize).saturating_sub(cscd_len + 12 + 24) / 48;
    let by_inline = (p.max_inline_data_len as usize).saturating_sub(header.len())
        / RecordHeader::LEN.next_multiple_of(4);
    let by_held = (p.held_data_limit as usize / 4).saturating_sub(1);
    let per_command = by_segments.min(by_list).min(by_inline).min(by_held);
    if per_command == 0 {
        return Err(EngineError::Refused(format!(
            "the copy manager's limits leave no room for one record per command (segments {}, descriptor list {} bytes, inline data {} bytes, held data {} bytes)",
            p.max_segment_count, p.max_descriptor_list_len, p.max_inline_data_len, p.held_data_limit
        )));
    }
    let payload = l.per_record * l.bs as u64;
    if p.max_segment_len != 0 && payload > p.max_segment_len as u64 {
        return Err(EngineError::Refused(format!(
            "a record of {payload} bytes exceeds the copy manager's maximum segment length ({} bytes); use a smaller --block-size",
            p.max_segment_len
        )));
    }
    let total = l.records();
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
        let start = seq;
        let mut payload_bytes = 0;
        while seq < total && seq - start < per_command as u64 {
            let (lba, n) = l.extent(seq);
            let bytes = n * l.bs as u64;
            let stream_len = (RecordHeader::LEN as u64 + bytes) as u32;
            let h = encode_deferred_record_header(l.set, seq, bytes as u32);
            let s = inline(stream_len, &h, &mut params, true);
            params.segments.push(s);
            params.segments.push(Segment {
                cat: false,
                dc: false,
                kind: SegmentKind::BlockToStream {
                    src: SRC,
                    dst: TAPE,
                    stream_len,
                    blocks: n as u16,
                    lba: Lba(lba),
                },
            });
            blocks_written += 1;
            payload_bytes += bytes;
            seq += 1;
        }
        params
            .check()
            .map_err(|e| EngineError::Refused(format!("planned parameter list: {e}")))?;
        out.push(Command {
            params,
            blocks_written,
            records: start..seq,
            payload_bytes,
        });
        if seq >= total {
            return Ok(out);
        }
    }
}

/// The closing command: CRC index records, the trailer, one filemark.
fn closing_command(
    cscds: &[Cscd],
    set: Uuid,
    crcs: &[u32],
    trailer: &SetTrailer,
    list_id: u8,
) -> Result<XcopyParams, EngineError> {
    let mut params = XcopyParams::new(cscds.to_vec(), Vec::new());
    params.list_id_usage = list_id_usage::HOLD;
    params.list_id = list_id;
    for (i, chunk) in crcs.chunks(CrcIndex::MAX_ENTRIES).enumerate() {
        let idx = CrcIndex {
            set_id: set,
            first_seq: (i * CrcIndex::MAX_ENTRIES) as u64,
            crcs: chunk.to_vec(),
        }
        .encode()
        .ok_or_else(|| EngineError::Refused("CRC index record too large".into()))?;
        let s = inline(idx.len() as u32, &idx, &mut params, false);
        params.segments.push(s);
    }
    let t = trailer.encode();
    let s = inline(t.len() as u32, &t, &mut params, false);
    params.segments.push(s);
    params.segments.push(filemark());
    params
        .check()
        .map_err(|e| EngineError::Refused(format!("closing parameter list: {e}")))?;
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

/// Send one parameter list; `Aborted` names the segment on COPY ABORTED.
fn send<C: Transport>(
    cm: &mut Scsi<C>,
    params: &XcopyParams,
    what: &str,
    sent: &mut u64,
) -> Result<(), EngineError> {
    let list = params
        .encode()
        .map_err(|e| EngineError::Refused(format!("parameter list: {e}")))?;
    *sent += list.len() as u64;
    let req = Request::data_out(params.cdb().to_cdb(), list).with_timeout(XCOPY_TIMEOUT);
    cm.run(req)
        .map(|_| ())
        .map_err(|e| match aborted_segment(&e) {
            Some(at) => EngineError::Aborted {
                at: format!("{at} of {what}"),
                source: e,
            },
            None => e.into(),
        })
}

/// The CRC32Cs the copy manager held for list `list_id` (API: the held
/// data of a list with LIST ID USAGE 00b, 4 bytes per block written).
fn held_crcs<C: Transport>(
    cm: &mut Scsi<C>,
    list_id: u8,
    expect: usize,
    got: &mut u64,
) -> Result<Vec<u32>, EngineError> {
    let rcr = ReceiveCopyResults {
        action: RcrAction::RECEIVE_DATA,
        list_id,
        alloc_len: (4 + 4 * expect) as u32,
    };
    let buf = cm.data_in(rcr.to_cdb(), rcr.alloc_len as usize)?;
    *got += buf.len() as u64;
    let d = ReceiveData::parse(&buf).map_err(|e| cm.perr("RECEIVE COPY RESULTS data", e))?;
    if d.available_data as usize != 4 * expect || d.data.len() != 4 * expect {
        return Err(EngineError::Refused(format!(
            "{}: the copy manager returned {} bytes of block CRCs for list {list_id}, expected {} (one per tape block written)",
            cm.name(),
            d.available_data,
            4 * expect
        )));
    }
    d.crcs()
        .map_err(|e| cm.perr("RECEIVE COPY RESULTS data", e).into())
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

fn block_designator(
    di: &DeviceIdentification,
    name: &str,
) -> Result<crate::scsi::spc::Designator, EngineError> {
    di.best_lu_designator().cloned().ok_or_else(|| {
        EngineError::Refused(format!(
            "{name}: no logical-unit designator in VPD 0x83 that a copy manager could resolve"
        ))
    })
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
    opts: &TpcOptions,
    progress: &dyn Progress,
) -> Result<TpcSummary, EngineError> {
    let limits = stream_limits(cm)?;
    let cap = source.capacity()?;
    let bs = cap.block_size.0;
    let lba = opts.lba.unwrap_or(0);
    let blocks = match opts.blocks {
        Some(n) => n,
        None => cap.blocks.0.saturating_sub(lba),
    };
    if blocks == 0 || lba.checked_add(blocks).is_none_or(|end| end > cap.blocks.0) {
        return Err(EngineError::Refused(format!(
            "range {lba}+{blocks} is empty or past the end of the source ({} blocks of {bs} bytes)",
            cap.blocks.0
        )));
    }
    let per_record = ((opts.tape_block.saturating_sub(RecordHeader::LEN)) / bs as usize)
        .min(u16::MAX as usize) as u64;
    if per_record == 0 || opts.tape_block > super::volume::MAX_RECORD {
        return Err(EngineError::Refused(format!(
            "tape block size {} cannot hold a record header and one {bs}-byte source block (max {})",
            opts.tape_block,
            super::volume::MAX_RECORD
        )));
    }
    let volume = catalog.volume_in_device(&opts.tape_url)?.ok_or_else(|| {
        EngineError::Refused(format!(
            "{}: the catalog does not know which volume is in this drive; label it ('sanmover tape DEV label NAME') or run 'sanmover catalog rebuild --tape DEV' first (a third-party-copy backup does not read the tape itself)",
            opts.tape_url
        ))
    })?;
    super::guard::refuse_live_writer(catalog, volume, &opts.tape_url)?;
    let identity = source_identity(source, &opts.source_url)?;
    let designator = super::volume::designator_text(&identity);
    let src_di = source.scsi.device_identification()?;
    let tape_di = tape.scsi.device_identification()?;
    let cscds = vec![
        Cscd::identification(
            &block_designator(&src_di, &opts.source_url)?,
            DeviceType::DISK,
            DeviceParams::block(bs),
        )
        .map_err(|e| EngineError::Refused(format!("source CSCD: {e}")))?,
        Cscd::identification(
            &block_designator(&tape_di, &opts.tape_url)?,
            DeviceType::TAPE,
            DeviceParams::Stream {
                pad: false,
                fixed: false,
                stream_block_len: 0,
            },
        )
        .map_err(|e| EngineError::Refused(format!("tape CSCD: {e}")))?,
    ];
    let file = next_file(catalog, volume, tape)?;
    let set_id = Uuid::new_v4();
    let started = now();
    let header = SetHeader {
        set_id,
        volume_id: volume,
        mode: Mode::XCOPY,
        source: identity,
        lba,
        blocks,
        block_size: bs,
        payload_size: (per_record * bs as u64) as u32,
        created: started,
        label: opts.label.clone(),
        snapshot: None,
        digest: opts.digest,
    };
    let header_bytes = header
        .encode()
        .map_err(|e| EngineError::format("set header", e))?;
    let layout = Layout {
        set: set_id,
        lba,
        blocks,
        per_record,
        bs,
    };
    let plan = plan_data(&layout, &cscds, &header_bytes, &limits)?;
    catalog.begin_set(&SetInfo {
        id: set_id,
        volume,
        file_number: file,
        mode: Mode::XCOPY.to_string(),
        label: opts.label.clone(),
        source_url: opts.source_url.clone(),
        source_designator: designator,
        lba,
        blocks,
        block_size: bs,
        payload_size: header.payload_size,
        started: started as i64,
        digest_algorithm: opts.digest.to_string(),
    })?;
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut crcs: Vec<u32> = Vec::with_capacity(layout.records() as usize);
    let mut bytes = 0u64;
    progress.start(blocks * bs as u64, "backup (xcopy)");
    let mut interrupted = None;
    let run = (|| -> Result<SetTrailer, EngineError> {
        for (i, c) in plan.iter().enumerate() {
            // Between commands, once the first has put the header on tape.
            if i > 0 && interrupted.is_none() {
                interrupted = opts.stop.raised();
            }
            if interrupted.is_some() {
                break;
            }
            let what = format!(
                "command {} of {} (records {}..{})",
                i + 1,
                plan.len() + 1,
                c.records.start,
                c.records.end
            );
            send(cm, &c.params, &what, &mut sent)?;
            let mut got = held_crcs(cm, c.params.list_id, c.blocks_written, &mut received)?;
            if i == 0 {
                got.remove(0); // the set header's block
            }
            crcs.extend(got);
            bytes += c.payload_bytes;
            progress.advance(c.payload_bytes);
        }
        let mut chain = CrcChainDigest::new(header.digest);
        crcs.iter().for_each(|c| chain.update(*c));
        let trailer = SetTrailer {
            set_id,
            records: crcs.len() as u64,
            bytes,
            digest: chain.finish(),
            complete: interrupted.is_none(),
            stop: match interrupted {
                Some(_) => StopReason::INTERRUPTED,
                None => StopReason::NOT_GIVEN,
            },
            ended: now(),
            crc_digest: true,
        };
        let close = closing_command(&cscds, set_id, &crcs, &trailer, (plan.len() % 256) as u8)?;
        send(
            cm,
            &close,
            "the closing command (CRC index, trailer, filemark)",
            &mut sent,
        )?;
        Ok(trailer)
    })();
    progress.finish();
    let seconds = t0.elapsed().as_secs_f64();
    if let Err(e) = &run {
        close_failed_file(cm, &cscds, e, &mut sent);
    }
    let outcome = match &run {
        Ok(t) => SetOutcome {
            state: match interrupted {
                Some(_) => SetState::Interrupted,
                None => SetState::Complete,
            },
            records: t.records,
            bytes: t.bytes,
            digest: Some(hex(&t.digest)),
            ended: now() as i64,
            seconds,
            error: interrupted.map(|sig| {
                format!("interrupted by {sig}; closed with a trailer marked incomplete")
            }),
        },
        Err(e) => SetOutcome {
            state: SetState::Failed,
            records: 0,
            bytes: 0,
            digest: None,
            ended: now() as i64,
            seconds,
            error: Some(e.to_string()),
        },
    };
    catalog.finish_set(set_id, &outcome)?;
    let trailer = run?;
    if let Some(signal) = interrupted {
        return Err(EngineError::Interrupted {
            set: set_id,
            bytes: trailer.bytes,
            signal,
            trailer: true,
        });
    }
    Ok(TpcSummary {
        set: SetSummary {
            set_id,
            volume,
            tape_file: file,
            mode: Mode::XCOPY.to_string(),
            state: SetState::Complete,
            lba,
            blocks,
            block_size: bs,
            records: trailer.records,
            bytes: trailer.bytes,
            seconds,
            mbps: super::mbps(trailer.bytes, seconds),
            digest_algorithm: header.digest,
            digest: hex(&trailer.digest),
        },
        copy_manager: opts.copy_manager_url.clone(),
        xcopy_commands: plan.len() + 1,
        bytes_through_initiator: sent + received,
        data_bytes_through_initiator: 0,
    })
}

/// After a failed command, ask the copy manager to close the set's file
/// (SPACE to end of data, one filemark) so the tape stays well-formed; the
/// set has no trailer and reads as failed. Only logged when it fails too.
fn close_failed_file<C: Transport>(
    cm: &mut Scsi<C>,
    cscds: &[Cscd],
    cause: &EngineError,
    sent: &mut u64,
) {
    if matches!(cause, EngineError::Refused(_)) {
        return;
    }
    let mut params = XcopyParams::new(cscds.to_vec(), Vec::new());
    params.segments.push(space_to_eod());
    params.segments.push(filemark());
    if let Err(e) = send(cm, &params, "closing the failed set's file", sent) {
        log::warn!(
            "{}: could not close the failed set's tape file ({e}); the next backup checks the end of the tape",
            cm.name()
        );
    }
}

/// Convert a device error to what a fallback policy looks at: did the copy
/// manager refuse or abort (a SCSI answer), rather than the link failing?
pub fn copy_manager_said_no(e: &EngineError) -> bool {
    match e {
        EngineError::Aborted { .. } | EngineError::Refused(_) => true,
        EngineError::Device(d) => matches!(d, DeviceError::Check { .. }),
        _ => false,
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
        let l = Layout {
            set: Uuid::from_bytes([7; 16]),
            lba: 10,
            blocks: 1000,
            per_record: 256,
            bs: 512,
        };
        // 2 + 2 per record segments: 3 records per command.
        let plan = plan_data(&l, &cscds(), b"HEADER", &params(8)).unwrap();
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
        let l = Layout {
            set: Uuid::nil(),
            lba: 0,
            blocks: 10,
            per_record: 4,
            bs: 512,
        };
        assert!(matches!(
            plan_data(&l, &cscds(), b"H", &params(2)),
            Err(EngineError::Refused(_))
        ));
        let mut p = params(100);
        p.max_segment_len = 1024;
        assert!(plan_data(&l, &cscds(), b"H", &p).is_err());
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
        };
        let p = closing_command(&cscds(), set, &[1, 2], &t, 9).unwrap();
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
