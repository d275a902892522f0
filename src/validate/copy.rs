//! The copy manager suite (SPC-4 6.4 EXTENDED COPY, 6.18 RECEIVE COPY
//! RESULTS, 7.8.17 the Third-party Copy VPD page): limits in both places,
//! a block-to-block copy within the LU read back, refusal of a segment type
//! not claimed, the results of every service action, and COPY ABORTED for
//! an LU outside the initiator's view.

use crate::device::disk::Capacity;
use crate::device::DeviceError;
use crate::scsi::sbc::Read16;
use crate::scsi::sense::{Asc, SenseKey};
use crate::scsi::spc::{Designator, DesignatorType, Inquiry, VpdPage};
use crate::scsi::xcopy::{
    list_id_usage, CopyAborted, CopyManagerStatus, CopyStatus, Cscd, DeviceParams,
    FailedSegmentDetails, OperatingParameters, RcrAction, ReceiveCopyResults, ReceiveData, Segment,
    SegmentKind, SegmentType, ThirdPartyCopyVpd, XcopyParams,
};
use crate::scsi::{CdbCodec, DeviceType, Lba, Status, Wire};
use crate::transport::Request;

use super::{sent, CheckDef, Exchange, Finding, Spec, Suite, Target};

/// The list ID the suite's copies use (LIST ID USAGE 00b: results held).
const LIST_ID: u8 = 0x5a;
/// Blocks the suite copies.
const BLOCKS: u16 = 8;

macro_rules! check {
    ($id:expr, $cites:expr, $expected:expr, $writes:expr, $run:expr) => {
        CheckDef {
            spec: Spec {
                id: $id,
                cites: $cites,
                expected: $expected,
                writes: $writes,
            },
            run: $run,
        }
    };
}

pub static SUITE: Suite = Suite {
    name: "copy",
    applies: |t| t.inquiry.three_pc || t.vpd_pages.contains(&VpdPage::THIRD_PARTY_COPY),
    prepare: None,
    unready: None,
    checks: &[
        check!("copy.rcr.operating-parameters", "SPC-4 6.18.4 RECEIVE COPY RESULTS, OPERATING PARAMETERS", "GOOD and parameter data of at least 44 bytes listing the implemented descriptor types", false, op_params),
        check!("copy.vpd8f.matches-operating-parameters", "SPC-4 7.8.17 Third-party Copy VPD page, 6.18.4", "the CSCD and segment counts, descriptor list length and inline data length of VPD 8Fh equal the operating parameters", false, vpd8f),
        check!("copy.segment.02-block-to-block", "SPC-4 6.4.6.4 block to block (02h)", "GOOD, and the destination blocks read back equal to the source", true, block_to_block),
        check!("copy.rcr.copy-status", "SPC-4 6.18.2 RECEIVE COPY RESULTS, COPY STATUS", "for the list just run: GOOD, COPY MANAGER STATUS completed, good (01h)", true, copy_status),
        check!("copy.rcr.receive-data", "SPC-4 6.18.3 RECEIVE COPY RESULTS, RECEIVE DATA", "for the list just run: GOOD with an AVAILABLE DATA field", true, receive_data),
        check!("copy.rcr.failed-segments", "SPC-4 6.18.5 RECEIVE COPY RESULTS, FAILED SEGMENT DETAILS", "for the list just run: GOOD, no failed segment (COPY COMMAND STATUS GOOD or no details)", true, failed_segments),
        check!("copy.segment.unclaimed-refused", "SPC-4 6.4.3.5, 6.4.6.1", "a segment type the operating parameters do not list: ILLEGAL REQUEST, UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE (05/26/09)", true, unclaimed_refused),
        check!("copy.segment.04-10-inline-and-filemark", "SPC-4 6.4.6.6 inline data to stream (04h), 6.4.6.15 write filemarks (10h)", "GOOD; the tape then holds the inline bytes as one block and a filemark", true, super::copy_stream::inline_and_filemark),
        check!("copy.segment.00-block-to-stream", "SPC-4 6.4.6.3 block to stream (00h)", "GOOD; the tape's first block equals the LU's first 8 blocks", true, super::copy_stream::block_to_stream),
        check!("copy.segment.01-stream-to-block", "SPC-4 6.4.6.3 stream to block (01h)", "GOOD; the LU's blocks then hold the tape block's bytes", true, super::copy_stream::stream_to_block),
        check!("copy.segment.06-11-discard-and-space", "SPC-4 6.4.6.8 stream to discard (06h), 6.4.6.16 space (11h)", "GOOD; block 0 read and dropped, block 1 spaced over: the next READ returns block 2", true, super::copy_stream::discard_and_space),
        check!("copy.segment.12-locate", "SPC-4 6.4.6.17 locate (12h)", "GOOD; the next READ returns object 2", true, super::copy_stream::locate),
        check!("copy.access.unknown-lu", "SPC-4 6.4.5.6 identification descriptor, 6.4.3", "a copy naming a designator no LU in the initiator's view has: COPY ABORTED, COPY TARGET DEVICE NOT REACHABLE (0D/0D/02), nothing copied", false, unknown_lu),
        check!("copy.access.other-initiator", "SPC-4 6.4.5.6 identification CSCD descriptor (the class of CVE-2020-28374)", "a second initiator name with no rights of its own copies from another LU of this run into this LU: its login or the copy is refused (COPY ABORTED 0D/02), and nothing is copied", true, other_initiator),
        check!("copy.aborted.contents", "SPC-4 6.4.3.3 (COPY ABORTED sense)", "that COPY ABORTED names segment 0 in COMMAND-SPECIFIC INFORMATION", false, aborted_contents),
    ],
};

fn rcr(t: &mut Target, action: RcrAction, list_id: u8) -> Result<Exchange, DeviceError> {
    let cdb = ReceiveCopyResults {
        action,
        list_id,
        alloc_len: 1024,
    }
    .to_cdb();
    t.send(Request::data_in(cdb, 1024))
}

fn op_params(t: &mut Target) -> Result<Finding, DeviceError> {
    let x = rcr(t, RcrAction::OPERATING_PARAMETERS, 0)?;
    let obs = match OperatingParameters::parse(&x.data) {
        Ok(p) => format!(
            "{}; {} CSCDs, {} segments, implemented {}",
            x.summary(),
            p.max_cscd_count,
            p.max_segment_count,
            hex::encode(&p.implemented)
        ),
        Err(e) => format!("{}; {e}", x.summary()),
    };
    let ok = x.good() && OperatingParameters::parse(&x.data).is_ok();
    Ok(Finding::judge(ok, sent(&x.cdb), obs))
}

fn operating_parameters(t: &mut Target) -> Option<OperatingParameters> {
    let x = rcr(t, RcrAction::OPERATING_PARAMETERS, 0).ok()?;
    OperatingParameters::parse(&x.data).ok()
}

fn vpd8f(t: &mut Target) -> Result<Finding, DeviceError> {
    if !t.vpd_pages.contains(&VpdPage::THIRD_PARTY_COPY) {
        return Ok(Finding::unsupported(
            "",
            "page 8Fh not in page 00h",
            "no Third-party Copy VPD page",
        ));
    }
    let cdb = Inquiry::vpd(0x8f, 1020).to_cdb();
    let x = t.send(Request::data_in(cdb, 1020))?;
    let (Ok(v), Some(p)) = (ThirdPartyCopyVpd::parse(&x.data), operating_parameters(t)) else {
        return Ok(Finding::judge(false, sent(&cdb), x.summary()));
    };
    let pairs = [
        (
            "CSCDs",
            v.max_cscd_count.map(u32::from),
            p.max_cscd_count as u32,
        ),
        (
            "segments",
            v.max_segment_count.map(u32::from),
            p.max_segment_count as u32,
        ),
        (
            "descriptor list",
            v.max_descriptor_list_len,
            p.max_descriptor_list_len,
        ),
        ("inline data", v.max_inline_data_len, p.max_inline_data_len),
    ];
    let diffs: Vec<String> = pairs
        .iter()
        .filter(|(_, a, b)| a.is_some_and(|a| a != *b))
        .map(|(n, a, b)| format!("{n}: VPD {} vs {b}", a.unwrap_or_default()))
        .collect();
    let obs = match diffs.is_empty() {
        true => format!(
            "{} fields compared, all equal",
            pairs.iter().filter(|(_, a, _)| a.is_some()).count()
        ),
        false => diffs.join("; "),
    };
    Ok(Finding::judge(
        diffs.is_empty(),
        format!("{}; RECEIVE COPY RESULTS 03h", sent(&cdb)),
        obs,
    ))
}

/// This LU as a CSCD, with its capacity.
fn own_cscd(t: &mut Target) -> Result<Option<(Cscd, Capacity)>, DeviceError> {
    let Some(d) = super::best_designator(&t.designators).cloned() else {
        return Ok(None);
    };
    let cap = crate::device::disk::read_capacity(&mut t.scsi)?;
    let dt = if t.inquiry.device_type == DeviceType::TAPE {
        DeviceType::TAPE
    } else {
        DeviceType::DISK
    };
    Ok(
        Cscd::identification(&d, dt, DeviceParams::block(cap.block_size.0))
            .ok()
            .map(|c| (c, cap)),
    )
}

fn send_list(t: &mut Target, params: &XcopyParams) -> Result<Exchange, DeviceError> {
    let list = params.encode().map_err(|e| DeviceError::Protocol {
        device: t.url.clone(),
        message: e.to_string(),
    })?;
    t.send(Request::data_out(params.cdb().to_cdb(), list))
}

fn read(t: &mut Target, lba: u64, cap: &Capacity) -> Result<Vec<u8>, DeviceError> {
    let cdb = Read16::new(Lba(lba), BLOCKS as u32).to_cdb();
    Ok(t.send(Request::data_in(
        cdb,
        BLOCKS as usize * cap.block_size.0 as usize,
    ))?
    .data)
}

fn block_to_block(t: &mut Target) -> Result<Finding, DeviceError> {
    let Some((cscd, cap)) = own_cscd(t)? else {
        return Ok(Finding::unsupported(
            "",
            "no LU designator or no READ CAPACITY",
            "the LU cannot be named in a CSCD",
        ));
    };
    if let Some(p) = operating_parameters(t) {
        if !p.supports_segment(SegmentType::BLOCK_TO_BLOCK) {
            return Ok(Finding::unsupported(
                "",
                format!("implemented: {}", hex::encode(&p.implemented)),
                "segment 02h is not claimed",
            ));
        }
    }
    let dst = cap.blocks.0.saturating_sub(BLOCKS as u64);
    let mut params = XcopyParams::new(
        vec![cscd],
        vec![Segment::block_to_block(0, 0, BLOCKS, Lba(0), Lba(dst))],
    );
    params.list_id = LIST_ID;
    params.list_id_usage = list_id_usage::HOLD;
    let x = send_list(t, &params)?;
    let a = read(t, 0, &cap)?;
    let b = read(t, dst, &cap)?;
    let same = !a.is_empty() && a == b;
    let obs = format!(
        "{}; read back: {}",
        x.summary(),
        if same { "equal" } else { "different" }
    );
    Ok(Finding::judge(
        x.good() && same,
        format!(
            "{} (02h: {BLOCKS} blocks LBA 0 -> LBA {dst} of this LU, list ID {LIST_ID:#04x})",
            sent(&x.cdb)
        ),
        obs,
    ))
}

/// A service action the device does not implement is not supported.
fn results(
    t: &mut Target,
    action: RcrAction,
    judge: fn(&[u8]) -> (bool, String),
) -> Result<Finding, DeviceError> {
    let x = rcr(t, action, LIST_ID)?;
    if x.refused() {
        return Ok(Finding::unsupported(
            sent(&x.cdb),
            x.summary(),
            format!("RECEIVE COPY RESULTS {action} (for list ID {LIST_ID:#04x}) is refused"),
        ));
    }
    let (ok, what) = judge(&x.data);
    Ok(Finding::judge(
        x.good() && ok,
        sent(&x.cdb),
        format!("{}; {what}", x.summary()),
    ))
}

fn copy_status(t: &mut Target) -> Result<Finding, DeviceError> {
    results(t, RcrAction::COPY_STATUS, |d| match CopyStatus::parse(d) {
        Ok(s) => (
            s.status == CopyManagerStatus::COMPLETED_GOOD,
            format!("copy manager status {}", s.status),
        ),
        Err(e) => (false, e.to_string()),
    })
}

fn receive_data(t: &mut Target) -> Result<Finding, DeviceError> {
    results(t, RcrAction::RECEIVE_DATA, |d| {
        match ReceiveData::parse(d) {
            Ok(r) => (true, format!("{} bytes of held data", r.data.len())),
            Err(e) => (false, e.to_string()),
        }
    })
}

fn failed_segments(t: &mut Target) -> Result<Finding, DeviceError> {
    results(
        t,
        RcrAction::FAILED_SEGMENT_DETAILS,
        |d| match FailedSegmentDetails::parse(d) {
            Ok(f) => match f.failed {
                None => (true, "no details held".into()),
                Some(s) => (
                    s.status == Status::GOOD,
                    format!("details with status {}", s.status),
                ),
            },
            Err(e) => (false, e.to_string()),
        },
    )
}

fn unclaimed_refused(t: &mut Target) -> Result<Finding, DeviceError> {
    let Some(p) = operating_parameters(t) else {
        return Ok(Finding::unsupported(
            "",
            "no operating parameters",
            "the claimed segment types are unknown",
        ));
    };
    let Some((cscd, _)) = own_cscd(t)? else {
        return Ok(Finding::unsupported(
            "",
            "no LU designator",
            "the LU cannot be named in a CSCD",
        ));
    };
    // Stream to stream (03h) names two CSCDs; the LU itself serves as both.
    if p.supports_segment(SegmentType::STREAM_TO_STREAM) {
        return Ok(Finding::unsupported(
            "",
            "implemented list includes 03h",
            "every segment type the suite can send unclaimed is claimed",
        ));
    }
    let seg = Segment {
        cat: false,
        dc: false,
        kind: SegmentKind::StreamToStream {
            src: 0,
            dst: 0,
            src_stream_len: 512,
            dst_stream_len: 512,
            byte_count: 512,
        },
    };
    let x = send_list(t, &XcopyParams::new(vec![cscd], vec![seg]))?;
    let ok = x.is(
        SenseKey::ILLEGAL_REQUEST,
        Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE,
    );
    Ok(Finding::judge(
        ok,
        format!("{} (one 03h stream-to-stream segment)", sent(&x.cdb)),
        x.summary(),
    ))
}

/// A copy from this LU to an LU nobody has (an NAA no device reports).
fn copy_to_nowhere(t: &mut Target) -> Result<Option<Exchange>, DeviceError> {
    let Some((src, cap)) = own_cscd(t)? else {
        return Ok(None);
    };
    let ghost = Designator::lu_binary(
        DesignatorType::NAA,
        vec![
            0x6a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x0b, 0xad,
            0xc0, 0xde,
        ],
    );
    let Ok(dst) = Cscd::identification(
        &ghost,
        DeviceType::DISK,
        DeviceParams::block(cap.block_size.0),
    ) else {
        return Ok(None);
    };
    let params = XcopyParams::new(
        vec![src, dst],
        vec![Segment::block_to_block(0, 1, 1, Lba(0), Lba(0))],
    );
    Ok(Some(send_list(t, &params)?))
}

const GHOST: &str = "02h segment, 1 block, to NAA 6abcdef0123456789abcdef00badc0de";

fn unknown_lu(t: &mut Target) -> Result<Finding, DeviceError> {
    let Some(x) = copy_to_nowhere(t)? else {
        return Ok(Finding::unsupported(
            "",
            "no LU designator",
            "the LU cannot be named in a CSCD",
        ));
    };
    let ok = x.is(
        SenseKey::COPY_ABORTED,
        Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
    );
    Ok(Finding::judge(
        ok,
        format!("{} ({GHOST})", sent(&x.cdb)),
        x.summary(),
    ))
}

fn aborted_contents(t: &mut Target) -> Result<Finding, DeviceError> {
    let Some(x) = copy_to_nowhere(t)? else {
        return Ok(Finding::unsupported(
            "",
            "no LU designator",
            "the LU cannot be named in a CSCD",
        ));
    };
    let what = format!("{} ({GHOST})", sent(&x.cdb));
    if x.sense
        .as_ref()
        .is_none_or(|s| s.key != SenseKey::COPY_ABORTED)
    {
        return Ok(Finding::judge(
            false,
            what,
            format!("{}; not COPY ABORTED", x.summary()),
        ));
    }
    let a = CopyAborted::from_sense_bytes(&x.raw_sense);
    let obs = match &a {
        Some(a) => format!(
            "segment {:?}, field pointer {:?}",
            a.segment, a.field_pointer
        ),
        None => format!(
            "undecodable COPY ABORTED sense {}",
            hex::encode(&x.raw_sense)
        ),
    };
    // Fixed format cannot tell segment 0 from "not reported" (None).
    let ok = a.is_some_and(|a| a.segment.unwrap_or(0) == 0);
    Ok(Finding::judge(ok, what, obs))
}

/// A second initiator name with no rights of its own names an LU of this
/// run as the source of a copy into this LU.
fn other_initiator(t: &mut Target) -> Result<Finding, DeviceError> {
    let other = format!("{}-validate2", t.initiator);
    let session = match t.open(&t.open_url, &other) {
        Ok(s) => s,
        Err(e) => {
            let f = Finding::judge(true, format!("login as {other}"), format!("refused: {e}"));
            return Ok(f);
        }
    };
    let Some(peer) = t
        .others
        .iter()
        .find(|p| crate::scsi::xcopy::is_block_type(p.device_type) && !p.designators.is_empty())
        .cloned()
    else {
        return Ok(Finding::unsupported(format!("login as {other}: admitted"), "", "needs another disk LU named in the same run, as the source the second initiator may not read"));
    };
    let (params, last) = match copy_from_peer(t, &peer)? {
        Ok(p) => p,
        Err(f) => return Ok(f),
    };
    let list = params.encode().map_err(|e| DeviceError::Protocol {
        device: t.url.clone(),
        message: e.to_string(),
    })?;
    let mut second = crate::device::Scsi::new(session);
    let x = super::exchange(&mut second, Request::data_out(params.cdb().to_cdb(), list))?;
    let ok = x.is(
        SenseKey::COPY_ABORTED,
        Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
    );
    let what = format!(
        "as {other}: {} (02h: 1 block from LBA 0 of {} to LBA {last} of this LU)",
        sent(&x.cdb),
        peer.url
    );
    let f = Finding::judge(ok, what, x.summary());
    Ok(f.fail_because(
        "an initiator with no rights of its own had a copy carried out between LUs of the SAN",
    ))
}

/// A one-block 02h copy from LBA 0 of `peer` to this LU's last block, and
/// that LBA; or why it cannot be named.
fn copy_from_peer(
    t: &mut Target,
    peer: &super::Peer,
) -> Result<Result<(XcopyParams, u64), Finding>, DeviceError> {
    let not = |why: &str| Ok(Err(Finding::unsupported("", "", why)));
    let Some((dst, cap)) = own_cscd(t)? else {
        return not("the LU cannot be named in a CSCD");
    };
    let Some(src_id) = super::best_designator(&peer.designators).cloned() else {
        return not("the other LU has no designator");
    };
    let block = DeviceParams::block(cap.block_size.0);
    let Ok(src) = Cscd::identification(&src_id, peer.device_type, block) else {
        return not("the other LU's designator does not fit a CSCD");
    };
    let last = cap.blocks.0.saturating_sub(1);
    let segment = Segment::block_to_block(0, 1, 1, Lba(0), Lba(last));
    Ok(Ok((XcopyParams::new(vec![src, dst], vec![segment]), last)))
}
