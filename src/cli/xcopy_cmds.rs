//! xcopy and copy-results.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::output::Out;
use super::{exit, open_transport, ConnArgs, UsageError};
use crate::device::{DeviceError, Disk, Scsi};
use crate::engine::copy_manager::{aborted_segment, XCOPY_TIMEOUT};
use crate::engine::disk_copy::{
    discover_limits, plan, run, verify_copy, CopyRange, Endpoint, EndpointError, Fallback,
};
use crate::scsi::xcopy::{
    CopyStatus, ExtendedCopy, FailedSegmentDetails, OperatingParameters, RcrAction,
    ReceiveCopyResults, XcopyParams,
};
use crate::scsi::{BlockCount, CdbCodec, Lba, Wire};
use crate::transport::{Request, Transport};

pub struct XcopyArgs<'a> {
    pub copy_manager: &'a str,
    pub copy_manager_initiator: Option<&'a str>,
    pub src: &'a str,
    pub dst: &'a str,
    pub src_lba: u64,
    pub blocks: Option<u64>,
    pub dst_lba: u64,
    pub dry_run: bool,
    pub fallback: &'a str,
    pub full_verify: bool,
}

fn endpoint<T: Transport>(d: &mut Disk<T>) -> Result<(Endpoint, u64)> {
    Endpoint::of(d).map(|(e, n)| (e, n.0)).map_err(|e| match e {
        EndpointError::Device(e) => e.into(),
        e @ EndpointError::NoDesignator => UsageError(format!("{}: {e}", d.scsi.name())).into(),
    })
}

/// The `--fallback` value as a policy (clap allows only these three).
pub fn fallback_policy(s: &str) -> Fallback {
    match s {
        "never" => Fallback::Never,
        "always" => Fallback::Always,
        _ => Fallback::Prefer,
    }
}

pub fn xcopy(conn: &ConnArgs, out: &Out, a: XcopyArgs<'_>) -> Result<u8> {
    let fallback = fallback_policy(a.fallback);
    let mut src = Disk::open(open_transport(conn, a.src)?).context("source")?;
    let mut dst = Disk::open(open_transport(conn, a.dst)?).context("destination")?;
    let mut cm = open_copy_manager(conn, a.copy_manager, a.copy_manager_initiator)?;
    let (s_ep, s_blocks) = endpoint(&mut src)?;
    let (d_ep, d_blocks) = endpoint(&mut dst)?;
    let blocks = a.blocks.unwrap_or(s_blocks.saturating_sub(a.src_lba));
    if a.src_lba + blocks > s_blocks || a.dst_lba + blocks > d_blocks {
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
        #[derive(serde::Serialize)]
        struct Plan<'a> {
            limits: &'a crate::engine::disk_copy::Limits,
            commands: &'a [crate::engine::disk_copy::PlannedCommand],
        }
        out.emit(
            &Plan {
                limits: &limits,
                commands: &p,
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
        return Ok(exit::OK);
    }
    let bs = s_ep.block_size;
    let mut report = run(&mut cm, &mut src, &mut dst, bs, &p, fallback)?;
    report.limits = Some(limits);
    let samples = if a.full_verify { 0 } else { 16 };
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

/// The copy manager's session, under its own initiator name if given.
fn open_copy_manager(
    conn: &ConnArgs,
    dev: &str,
    initiator: Option<&str>,
) -> Result<Scsi<Box<dyn Transport + Send>>> {
    let cm_conn = ConnArgs {
        initiator: initiator
            .map(str::to_string)
            .or_else(|| conn.initiator.clone()),
        ..conn.clone()
    };
    Ok(Scsi::new(open_transport(&cm_conn, dev)?))
}

/// `xcopy --params FILE`: a hand-made parameter list, decoded first.
pub fn send_params(
    conn: &ConnArgs,
    out: &Out,
    copy_manager: &str,
    initiator: Option<&str>,
    file: &std::path::Path,
    raw: bool,
) -> Result<u8> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let decoded = match XcopyParams::parse(&bytes).and_then(|p| p.check().map(|()| p)) {
        Ok(p) => Some(p),
        Err(e) if raw => {
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
    let mut cm = open_copy_manager(conn, copy_manager, initiator)?;
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

pub fn copy_results(
    conn: &ConnArgs,
    out: &Out,
    dev: &str,
    status: Option<u8>,
    failed: Option<u8>,
) -> Result<u8> {
    let mut cm = Scsi::new(open_transport(conn, dev)?);
    if let Some(list_id) = status {
        let rcr = ReceiveCopyResults {
            action: RcrAction::COPY_STATUS,
            list_id,
            alloc_len: 1024,
        };
        let buf = cm.data_in(rcr.to_cdb(), rcr.alloc_len as usize)?;
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
        return Ok(exit::OK);
    }
    if let Some(list_id) = failed {
        let rcr = ReceiveCopyResults {
            action: RcrAction::FAILED_SEGMENT_DETAILS,
            list_id,
            alloc_len: 1024,
        };
        let buf = cm.data_in(rcr.to_cdb(), rcr.alloc_len as usize)?;
        let f =
            FailedSegmentDetails::parse(&buf).map_err(|e| cm.perr("RECEIVE COPY RESULTS", e))?;
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
        return Ok(exit::OK);
    }
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
    Ok(exit::OK)
}
