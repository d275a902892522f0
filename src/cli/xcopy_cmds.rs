//! xcopy and copy-results.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::output::Out;
use super::{exit, open_transport, ConnArgs, UsageError};
use crate::device::{Disk, Scsi};
use crate::engine::xcopy::{discover_limits, plan, run, verify_copy, Endpoint, Fallback};
use crate::scsi::xcopy::{OperatingParameters, ReceiveCopyResults};
use crate::scsi::{CdbCodec, Wire};
use crate::transport::Transport;

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
    let cap = d.capacity()?;
    let di = d.scsi.device_identification()?;
    let designator = di.best_lu_designator().cloned().ok_or_else(|| {
        UsageError(format!(
            "{}: no LU designator in VPD 0x83 to name it in EXTENDED COPY",
            d.scsi.name()
        ))
    })?;
    Ok((
        Endpoint {
            designator,
            block_size: cap.block_size,
        },
        cap.blocks.0,
    ))
}

pub fn xcopy(conn: &ConnArgs, out: &Out, a: XcopyArgs<'_>) -> Result<u8> {
    let fallback = match a.fallback {
        "never" => Fallback::Never,
        "always" => Fallback::Always,
        _ => Fallback::Prefer,
    };
    let mut src = Disk::open(open_transport(conn, a.src)?).context("source")?;
    let mut dst = Disk::open(open_transport(conn, a.dst)?).context("destination")?;
    let cm_conn = ConnArgs {
        initiator: a
            .copy_manager_initiator
            .map(str::to_string)
            .or_else(|| conn.initiator.clone()),
        ..conn.clone()
    };
    let mut cm = Scsi::new(open_transport(&cm_conn, a.copy_manager)?);
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
    let p = plan(&s_ep, &d_ep, a.src_lba, a.dst_lba, blocks, &limits)?;
    if a.dry_run {
        #[derive(serde::Serialize)]
        struct Plan<'a> {
            limits: &'a crate::engine::xcopy::Limits,
            commands: &'a [crate::engine::xcopy::PlannedCommand],
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
                        c.segments, c.blocks, c.src_lba, c.dst_lba
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
    report.verified_bytes = verify_copy(
        &mut src, &mut dst, bs, a.src_lba, a.dst_lba, blocks, samples,
    )?;
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

pub fn copy_results(conn: &ConnArgs, out: &Out, dev: &str) -> Result<u8> {
    let mut cm = Scsi::new(open_transport(conn, dev)?);
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
