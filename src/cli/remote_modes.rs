//! The other movers behind `sanmover server`, each on the one lease
//! lifecycle of `server_cmds`: a third-party copy for a copy manager
//! (`backup --server --mode xcopy`), a serverless backup the server runs
//! itself (`backup --server --mode serverless`), and `verify --server`.

use anyhow::{bail, Result};
use serde::Serialize;

use super::args::{BackupArgs, FallbackPolicy, VerifyArgs};
use super::backup_host::backup_options;
use super::backup_xcopy::{fallback_text, falls_back, tpc_text, FallbackSummary};
use super::exit::{self, Refusal, UsageError};
use super::output::Out;
use super::progress::Bar;
use super::restore_cmds::{verify_on, verify_text};
use super::server_cmds::{client, granted, granted_set, hold_drive, leased, run_with_lease};
use super::server_span::ServerVolumes;
use super::sessions::{redacted, stop_on_signals, Dyn, Sessions};
use super::sizes::check_tape_block;
use crate::catalog::Catalog;
use crate::device::{Disk, Scsi, Tape};
use crate::engine::host::{backup as host_backup, BackupOptions};
use crate::engine::restore::LoadPart;
use crate::engine::third_party::{backup as tpc_backup, ThirdPartyOptions, ThirdPartySummary};
use crate::server::http::RequestBody;
use crate::server::jobs::{JobFailed, JobView, ServerlessJob};
use crate::server::service::Grant;

/// What `backup --server --mode xcopy` ended with.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum XcopyDone {
    Tpc(ThirdPartySummary),
    Fallback(FallbackSummary),
}

impl XcopyDone {
    fn set_id(&self) -> uuid::Uuid {
        match self {
            XcopyDone::Tpc(t) => t.set.set_id,
            XcopyDone::Fallback(f) => f.backup.set.set_id,
        }
    }
}

/// The sessions and options of a third-party copy under a lease.
struct Xcopy<'a> {
    a: &'a BackupArgs,
    cm_url: &'a str,
    cm: Scsi<Dyn>,
    source: Disk<Dyn>,
    catalog: Catalog,
    opts: BackupOptions,
}

/// `backup --server URL --mode xcopy`: the server leases a drive for the
/// copy manager, which reaches it over its own backend session; this
/// host sends the EXTENDED COPY commands, reports the set and releases.
pub fn backup_xcopy(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<u8> {
    let cm_url = a
        .xcopy
        .copy_manager
        .as_deref()
        .ok_or_else(|| UsageError("--mode xcopy needs --copy-manager DEV".into()))?;
    let opts = backup_options(s, a)?;
    // The lease is for the copy manager: the server's status and event
    // log name it.
    let request = RequestBody::Backup {
        pool: a.pool.clone(),
        copy_manager: Some(redacted(cm_url)),
    };
    let l = leased(s, &a.remote, request, opts.set.stop)?;
    let mut x = Xcopy {
        a,
        cm_url,
        cm: s.scsi(cm_url)?,
        source: s.disk(&a.source, "source")?,
        catalog: s.catalog()?,
        opts,
    };
    let mover = |g: &Grant| xcopy_on(s, out, &mut x, g);
    let (grant, done) = run_with_lease(&l, mover, |d| Some(d.set_id()))?;
    let lease_line = format!(
        "  lease {} on drive {} (cartridge {})\n",
        grant.lease.id, grant.drive_url, grant.lease.barcode
    );
    out.emit(&done, || match &done {
        XcopyDone::Tpc(t) => tpc_text(t) + &lease_line,
        XcopyDone::Fallback(f) => fallback_text(f) + &lease_line,
    });
    Ok(exit::OK)
}

/// The copy on the granted drive, with the `--fallback` policy: a copy
/// the copy manager refuses or aborts is finished by this host on the
/// same lease.
fn xcopy_on(s: &Sessions, out: &Out, x: &mut Xcopy, g: &Grant) -> Result<XcopyDone> {
    if g.reservation.is_some() {
        bail!(Refusal(format!(
            "drive {} has PERSISTENT RESERVE: the copy manager's session would need the lease's registration, which sanmover does not hand it; back up with --mode host",
            g.drive_url
        )));
    }
    let mut tape = s.tape(&g.drive_url)?;
    let disk_block = x.source.capacity()?.block_size.0;
    check_tape_block(&mut tape, x.a.block_size, Some(disk_block))?;
    let opts = granted(x.opts.clone(), g);
    let reason = match x.a.xcopy.fallback {
        FallbackPolicy::Always => "--fallback always".to_string(),
        policy => {
            let tpc = ThirdPartyOptions {
                set: opts.set.clone(),
                copy_manager_url: redacted(x.cm_url),
                shared_volume: true,
            };
            let bar = Bar::new(out);
            let r = tpc_backup(&mut x.cm, &mut x.source, &mut tape, &x.catalog, &tpc, &bar);
            match r.map_err(anyhow::Error::from) {
                Ok(sum) => return Ok(XcopyDone::Tpc(sum)),
                Err(e) if policy == FallbackPolicy::Never || !falls_back(&e) => return Err(e),
                Err(e) => {
                    let why = super::output::error_text(&e);
                    eprintln!(
                        "sanmover: third-party copy failed: {why}\nsanmover: finishing the backup host-driven on the same lease (--fallback prefer)"
                    );
                    why
                }
            }
        }
    };
    let bar = Bar::new(out);
    let backup = host_backup(&mut x.source, &mut tape, &x.catalog, &opts, &bar)?;
    Ok(XcopyDone::Fallback(FallbackSummary {
        mode: "host",
        fallback: true,
        reason,
        backup,
    }))
}

/// `verify SET --server URL`: the server loads the set's cartridge in a
/// free drive and names it; this host reads the set and checks it.
pub fn verify_remote(s: &Sessions, out: &Out, a: &VerifyArgs) -> Result<u8> {
    if a.tape.is_some() {
        bail!(UsageError(
            "--tape and --server do not go together: the server picks the drive".into()
        ));
    }
    let request = RequestBody::Restore { set: a.set.clone() };
    let l = leased(s, &a.remote, request, stop_on_signals()?)?;
    let cl = client(&a.remote)?;
    let mover = |g: &Grant| -> Result<_> {
        let row = granted_set(g)?;
        let mut tape: Tape<Dyn> = s.tape(&g.drive_url)?;
        hold_drive(&mut tape, g)?;
        // The server loads each later part of a multi-volume set.
        let mut parts = ServerVolumes::new(&cl, g);
        let loader = Some(&mut parts as &mut dyn LoadPart<Dyn>);
        Ok((verify_on(s, out, a, (&mut tape, loader), &row)?, row))
    };
    let (grant, (sum, row)) = run_with_lease(&l, mover, |_| None)?;
    out.emit(&sum, || {
        format!(
            "{}  from drive {} (cartridge {}, tape file {})\n",
            verify_text(&sum, a, &row),
            grant.drive_url,
            grant.lease.barcode,
            row.info.file_number
        )
    });
    Ok(exit::OK)
}

/// `backup --server URL --mode serverless`: the server takes the snapshot,
/// leases a drive of the library to itself for this host, backs the
/// snapshot up and catalogs the set; this host follows the job.
pub fn backup_serverless(out: &Out, a: &BackupArgs) -> Result<u8> {
    let sl = &a.serverless;
    if sl.quiesce.is_some() || sl.thaw.is_some() {
        bail!(UsageError(
            "--quiesce and --thaw do not go with --server: the snapshot is taken on the server, where this host's commands do not run; freeze the application yourself around the job, or back up without --server".into()
        ));
    }
    if !a.source.starts_with("iscsi://") {
        bail!(UsageError(
            "--mode serverless needs an iscsi:// source (the snapshot is named after its target)"
                .into()
        ));
    }
    let snapshot = sl.snapshot.clone().ok_or_else(|| {
        UsageError("--mode serverless needs --snapshot PROVIDER[:OPTIONS]".into())
    })?;
    let job = ServerlessJob {
        pool: a.pool.clone(),
        source: a.source.clone(),
        snapshot,
        maskcheck_initiator: sl.maskcheck_initiator.clone(),
        lba: a.lba,
        blocks: a.blocks,
        label: a.label.clone(),
        block_size: a.block_size.0,
        queue_depth: a.queue_depth,
        digest: a.digest,
    };
    let cl = client(&a.remote)?;
    let stop = stop_on_signals()?;
    let id = cl.submit_job(&job)?;
    let mut note = JobNotes::default();
    let mut cancelled = false;
    let view = cl.follow_job(id, |v| {
        note.say(id, v);
        // Ctrl-C here stops the job there: its set closes as interrupted.
        if stop.raised().is_some() && !cancelled {
            cancelled = true;
            if let Err(e) = cl.cancel_job(id) {
                eprintln!("sanmover: cancelling server job {id}: {e}");
            }
        }
    })?;
    match view {
        JobView::Failed { error, exit, .. } => Err(JobFailed {
            message: format!("server job {id}: {error}"),
            exit,
            // The server released its cartridge as it saw fit.
            full: false,
        }
        .into()),
        done => {
            out.emit(&done, || serverless_text(id, &done));
            Ok(exit::OK)
        }
    }
}

/// What is said on stderr while a job runs: changes of state only.
#[derive(Default)]
struct JobNotes {
    last: String,
}

impl JobNotes {
    fn say(&mut self, id: u64, v: &JobView) {
        let now = match v {
            JobView::Queued { position: 0 } => format!("server job {id}: asking for a drive"),
            JobView::Queued { position } => {
                format!("server job {id}: waiting for a drive: position {position} in the queue")
            }
            JobView::Running {
                drive, cartridge, ..
            } => format!("server job {id}: backing up on drive {drive} (cartridge {cartridge})"),
            _ => return,
        };
        if now != self.last {
            eprintln!("sanmover: {now}");
            self.last = now;
        }
    }
}

fn serverless_text(id: u64, v: &JobView) -> String {
    let JobView::Complete {
        lease,
        cartridge,
        set,
        summary,
    } = v
    else {
        return format!("server job {id}: {v:?}\n");
    };
    format!(
        "serverless backup by the server (job {id}, lease {lease}, provider {}): set {}\n  volume {}, cartridge {cartridge}, tape file {}\n  {} bytes in {} records, {}\n  snapshot {} exported as {}\n",
        summary["provider"].as_str().unwrap_or("?"),
        set.info.id,
        set.info.volume,
        set.info.file_number,
        set.outcome.bytes,
        set.outcome.records,
        set.outcome.state,
        summary["snapshot"]["handle"].as_str().unwrap_or("?"),
        summary["mapped"]["url"].as_str().unwrap_or("?"),
    )
}
