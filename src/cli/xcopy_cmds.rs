//! xcopy and copy-results.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::args::{CopyResultsArgs, VerifyExtent, XcopyArgs};
use super::exit::{self, UsageError};
use super::output::Out;
use super::sessions::{Dyn, Sessions};
use crate::device::{DeviceError, Disk, Scsi};
use crate::engine::copy_manager::{aborted_segment, XCOPY_TIMEOUT};
use crate::engine::disk_copy::{
    discover_limits, plan, run, verify_copy, CopyRange, Endpoint, EndpointError, Limits,
    PlannedCommand,
};
use crate::scsi::xcopy::{
    CopyStatus, ExtendedCopy, FailedSegmentDetails, OperatingParameters, RcrAction,
    ReceiveCopyResults, XcopyParams,
};
use crate::scsi::{BlockCount, CdbCodec, Lba, Wire};
use crate::transport::{Request, Transport};

fn endpoint<T: Transport>(d: &mut Disk<T>) -> Result<(Endpoint, u64)> {
    Endpoint::of(d).map(|(e, n)| (e, n.0)).map_err(|e| match e {
        EndpointError::Device(e) => e.into(),
        e @ EndpointError::NoDesignator => UsageError(format!("{}: {e}", d.scsi.name())).into(),
    })
}

/// `xcopy`: with --params, send a hand-made list; else plan and copy.
pub fn run_xcopy(s: &Sessions, out: &Out, a: &XcopyArgs) -> Result<u8> {
    match (&a.params, &a.src, &a.dst) {
        (Some(file), _, _) => send_params(s, out, a, file),
        (None, Some(src), Some(dst)) => copy(s, out, a, (src, dst)),
        _ => Err(UsageError("--src and --dst are needed without --params".into()).into()),
    }
}

/// Plan the copy of `ends` (source, destination) within the copy
/// manager's limits, run it (or print the plan) and verify it.
fn copy(s: &Sessions, out: &Out, a: &XcopyArgs, ends: (&str, &str)) -> Result<u8> {
    let mut src = s.disk(ends.0, "source")?;
    let mut dst = s.disk(ends.1, "destination")?;
    let mut cm = open_copy_manager(s, a)?;
    let (s_ep, s_blocks) = endpoint(&mut src)?;
    let (d_ep, d_blocks) = endpoint(&mut dst)?;
    let blocks = a.blocks.unwrap_or(s_blocks.saturating_sub(a.src_lba));
    let fits = |lba: u64, have: u64| lba.checked_add(blocks).is_some_and(|end| end <= have);
    if !fits(a.src_lba, s_blocks) || !fits(a.dst_lba, d_blocks) {
        return Err(UsageError(format!(
            "the range does not fit: source has {s_blocks} blocks, destination {d_blocks}, copy {blocks} from LBA {} to LBA {}",
            a.src_lba, a.dst_lba
        ))
        .into());
    }
    let limits = discover_limits(&mut cm)?;
    let range = CopyRange {
        src_lba: Lba(a.src_lba),
        dst_lba: Lba(a.dst_lba),
        blocks: BlockCount(blocks),
    };
    let p = plan(&s_ep, &d_ep, range, &limits)?;
    if a.dry_run {
        print_plan(out, &limits, &p, blocks);
        return Ok(exit::OK);
    }
    let bs = s_ep.block_size;
    let mut report = run(&mut cm, &mut src, &mut dst, bs, &p, a.fallback.into())?;
    report.limits = Some(limits);
    let samples = match a.verify {
        VerifyExtent::Full => 0,
        VerifyExtent::Sample => 16,
    };
    report.verified_bytes = verify_copy(&mut src, &mut dst, bs, range, samples)?;
    out.emit(&report, || {
        let mut t = format!(
            "copied {} bytes in {} commands: {} by EXTENDED COPY, {} through this host\n  bytes through this initiator: {} ({} of them data)\n  verified {} bytes\n",
            report.bytes,
            report.commands,
            report.xcopy_commands,
            report.host_commands,
            report.bytes_through_initiator,
            report.data_bytes_through_initiator,
            report.verified_bytes
        );
        for f in &report.fallbacks {
            let _ = writeln!(t, "  fallback: {f}");
        }
        t
    });
    Ok(exit::OK)
}

/// `xcopy --dry-run`: the plan, sending nothing.
fn print_plan(out: &Out, limits: &Limits, p: &[PlannedCommand], blocks: u64) {
    #[derive(serde::Serialize)]
    struct Plan<'a> {
        limits: &'a Limits,
        commands: &'a [PlannedCommand],
    }
    out.emit(
        &Plan {
            limits,
            commands: p,
        },
        || {
            let mut t = format!(
                "plan: {} EXTENDED COPY commands for {blocks} blocks (limits from {}: {} CSCDs, {} segments, {} bytes per segment)\n",
                p.len(),
                limits.source,
                limits.max_cscds,
                limits.max_segments,
                limits.max_segment_len
            );
            for (i, c) in p.iter().enumerate() {
                let _ = writeln!(
                    t,
                    "  {i:>4}: {} segments, {} blocks, source LBA {} -> destination LBA {}",
                    c.segments, c.range.blocks, c.range.src_lba, c.range.dst_lba
                );
            }
            t
        },
    );
}

/// The copy manager's session, under its own initiator name if given.
fn open_copy_manager(s: &Sessions, a: &XcopyArgs) -> Result<Scsi<Dyn>> {
    Ok(Scsi::new(s.transport_as(
        &a.copy_manager,
        a.copy_manager_initiator.as_deref(),
    )?))
}

/// `xcopy --params FILE`: a hand-made parameter list, decoded first.
fn send_params(s: &Sessions, out: &Out, a: &XcopyArgs, file: &std::path::Path) -> Result<u8> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let decoded = match XcopyParams::parse(&bytes).and_then(|p| p.check().map(|()| p)) {
        Ok(p) => Some(p),
        Err(e) if a.raw => {
            log::warn!(
                "{}: does not decode ({e}); sending it anyway (--raw)",
                file.display()
            );
            None
        }
        Err(e) => {
            return Err(UsageError(format!(
                "{}: not a valid EXTENDED COPY parameter list: {e} (--raw sends it anyway)",
                file.display()
            ))
            .into())
        }
    };
    if bytes.len() > u32::MAX as usize {
        return Err(UsageError("parameter list longer than 4 GiB".into()).into());
    }
    let mut cm = open_copy_manager(s, a)?;
    let cdb = ExtendedCopy {
        param_len: bytes.len() as u32,
    }
    .to_cdb();
    let len = bytes.len();
    cm.run(Request::data_out(cdb, bytes).with_timeout(XCOPY_TIMEOUT))
        .map_err(describe_abort)?;
    #[derive(serde::Serialize)]
    struct Sent {
        bytes: usize,
        cscds: Option<usize>,
        segments: Option<usize>,
    }
    let s = Sent {
        bytes: len,
        cscds: decoded.as_ref().map(|p| p.cscds.len()),
        segments: decoded.as_ref().map(|p| p.segments.len()),
    };
    out.emit(&s, || {
        format!(
            "EXTENDED COPY completed: {} bytes of parameter list{}\n",
            s.bytes,
            match (s.cscds, s.segments) {
                (Some(c), Some(g)) => format!(", {c} CSCD descriptors, {g} segments"),
                _ => String::new(),
            }
        )
    });
    Ok(exit::OK)
}

/// Name the failing segment of a COPY ABORTED.
fn describe_abort(e: DeviceError) -> anyhow::Error {
    match aborted_segment(&e) {
        Some(at) => anyhow::Error::new(e).context(format!("the copy manager aborted at {at}")),
        None => e.into(),
    }
}

/// `copy-results`: operating parameters, a copy's status, or its failed
/// segment details.
pub fn copy_results(s: &Sessions, out: &Out, a: &CopyResultsArgs) -> Result<u8> {
    let mut cm = s.scsi(&a.dev)?;
    match (a.status, a.failed) {
        (Some(list_id), _) => copy_status(&mut cm, out, list_id)?,
        (None, Some(list_id)) => failed_segment(&mut cm, out, list_id)?,
        (None, None) => operating_parameters(&mut cm, out)?,
    }
    Ok(exit::OK)
}

/// RECEIVE COPY RESULTS with `action` for list `list_id`.
fn receive(cm: &mut Scsi<Dyn>, action: RcrAction, list_id: u8) -> Result<Vec<u8>> {
    let rcr = ReceiveCopyResults {
        action,
        list_id,
        alloc_len: 1024,
    };
    Ok(cm.data_in(rcr.to_cdb(), rcr.alloc_len as usize)?)
}

fn copy_status(cm: &mut Scsi<Dyn>, out: &Out, list_id: u8) -> Result<()> {
    let buf = receive(cm, RcrAction::COPY_STATUS, list_id)?;
    let s = CopyStatus::parse(&buf).map_err(|e| cm.perr("RECEIVE COPY RESULTS", e))?;
    out.emit(&s, || {
        format!(
            "Copy status of list {list_id}: {:?}, {} segments processed, transferred {}\n",
            s.status,
            s.segments_processed,
            s.transfer_bytes()
                .map_or("an unknown amount".to_string(), |b| format!("{b} bytes"))
        )
    });
    Ok(())
}

fn failed_segment(cm: &mut Scsi<Dyn>, out: &Out, list_id: u8) -> Result<()> {
    let buf = receive(cm, RcrAction::FAILED_SEGMENT_DETAILS, list_id)?;
    let f = FailedSegmentDetails::parse(&buf).map_err(|e| cm.perr("RECEIVE COPY RESULTS", e))?;
    out.emit(&f, || match &f.failed {
        None => format!("List {list_id}: no failed segment details held\n"),
        Some(d) => format!(
            "List {list_id}: EXTENDED COPY ended {}; sense {}\n{}",
            d.status,
            hex::encode(&d.sense),
            crate::scsi::sense::Sense::parse(&d.sense)
                .map(|s| super::scsi_cmds::sense_text(&s))
                .unwrap_or_default()
        ),
    });
    Ok(())
}

fn operating_parameters(cm: &mut Scsi<Dyn>, out: &Out) -> Result<()> {
    let rcr = ReceiveCopyResults::operating_parameters();
    let buf = cm.data_in(rcr.to_cdb(), rcr.alloc_len as usize)?;
    let p = OperatingParameters::parse(&buf).map_err(|e| cm.perr("RECEIVE COPY RESULTS", e))?;
    out.emit(&p, || {
        format!(
            "Operating parameters:\n  max CSCD descriptors: {}\n  max segment descriptors: {}\n  max descriptor list length: {} bytes\n  max segment length: {} bytes\n  max inline data: {} bytes\n  implemented descriptor types: {}\n",
            p.max_cscd_count,
            p.max_segment_count,
            p.max_descriptor_list_len,
            p.max_segment_len,
            p.max_inline_data_len,
            p.implemented
                .iter()
                .map(|c| format!("{c:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    });
    Ok(())
}
