//! `backup --mode serverless`, `snapshots list`, `snapshots cleanup`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::backup_cmds::{
    backup_text, lock_tape, open_catalog, open_tape, redacted, reservation_key, stop_on_signals,
    BackupArgs, Bar,
};
use super::output::Out;
use super::{exit, ConnArgs};
use crate::catalog::{SnapshotJobRow, SnapshotState};
use crate::engine::host::BackupOptions;
use crate::engine::serverless::{self, Connector, ServerlessOptions, ServerlessSummary};
use crate::format::Mode;
use crate::snapshot::{provider_from_spec, Snapshot, SnapshotJob};
use crate::transport::iscsi::IscsiTransport;
use crate::transport::url::IscsiUrl;
use crate::transport::{Transport, TransportError};

/// Sessions under any initiator name, with the CLI's other iSCSI options.
struct IscsiConnector<'a> {
    conn: &'a ConnArgs,
}

impl Connector for IscsiConnector<'_> {
    fn open(
        &self,
        url: &str,
        initiator: &str,
    ) -> Result<Box<dyn Transport + Send>, TransportError> {
        let u = IscsiUrl::parse(url)?;
        let mut o = self.conn.iscsi_options();
        o.initiator = initiator.to_string();
        Ok(Box::new(IscsiTransport::connect(&u, &o)?))
    }
}

pub fn run_serverless(conn: &ConnArgs, out: &Out, cat: &Path, a: BackupArgs<'_>) -> Result<u8> {
    let spec = a.snapshot.ok_or_else(|| {
        super::UsageError("--mode serverless needs --snapshot PROVIDER[:OPTIONS]".into())
    })?;
    if !a.source.starts_with("iscsi://") {
        return Err(super::UsageError(
            "--mode serverless needs an iscsi:// source (the snapshot is named after its target)"
                .into(),
        )
        .into());
    }
    let mut provider = provider_from_spec(spec)?;
    let catalog = open_catalog(cat)?;
    // The tape first: a bad tape is refused before any snapshot exists.
    let mut tape = open_tape(conn, a.tape)?;
    let _lock = lock_tape(cat, &mut tape, a.tape, "backup --mode serverless", a.wait)?;
    let initiator = conn.iscsi_options().initiator;
    let opts = ServerlessOptions {
        spec: spec.to_string(),
        source: a.source.to_string(),
        initiator,
        maskcheck_initiator: a.maskcheck_initiator.map(str::to_string),
        quiesce: a.quiesce.map(str::to_string),
        thaw: a.thaw.map(str::to_string),
        backup: BackupOptions {
            lba: a.lba,
            blocks: a.blocks,
            label: a.label.to_string(),
            tape_block: a.block_size,
            queue_depth: a.queue_depth,
            mode: Mode::SERVERLESS,
            source_url: redacted(a.source),
            tape_url: redacted(a.tape),
            reservation_key: reservation_key(conn),
            stop: stop_on_signals()?,
            digest: a.digest,
        },
    };
    let bar = Bar::new(out);
    let s = serverless::backup(
        &IscsiConnector { conn },
        provider.as_mut(),
        &mut tape,
        &catalog,
        &opts,
        &bar,
    )?;
    catalog.set_volume_device(s.backup.set.volume, &opts.backup.tape_url)?;
    out.emit(&s, || serverless_text(&s));
    Ok(exit::OK)
}

fn serverless_text(s: &ServerlessSummary) -> String {
    let mut t = format!(
        "serverless backup through provider {} (snapshot job {}, {})\n  snapshot {} exported as {}{}\n  application quiesced {:.3} s\n  masking: {} sees it, {} refused at {}\n  identity: {}\n",
        s.provider,
        s.job_id,
        s.state,
        s.snapshot.handle,
        s.mapped.url,
        if s.mapped.read_only { " (read-only)" } else { "" },
        s.quiesce_seconds,
        s.masking.allowed_initiator,
        s.masking.refused_initiator,
        s.masking.refused_by,
        s.snapshot_designator,
    );
    t.push_str(&backup_text(&s.backup));
    for w in &s.warnings {
        let _ = writeln!(t, "  warning: {w}");
    }
    t
}

pub fn list(out: &Out, cat: &Path) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    #[derive(Serialize)]
    struct Listed {
        #[serde(flatten)]
        row: SnapshotJobRow,
        /// Not released, and its process is gone: `snapshots cleanup`
        /// will release it.
        orphaned: bool,
    }
    let jobs: Vec<Listed> = catalog
        .snapshot_jobs()?
        .into_iter()
        .map(|row| Listed {
            orphaned: !row.released && !row.in_progress(catalog.host()),
            row,
        })
        .collect();
    out.emit(&jobs, || {
        let mut t = format!(
            "{:<36}  {:<9}  {:<8}  {:<36}  {:<20}  SOURCE / REASON\n",
            "JOB", "STATE", "RELEASED", "SET", "PROVIDER"
        );
        for l in &jobs {
            let j = &l.row;
            let _ = writeln!(
                t,
                "{:<36}  {:<9}  {:<8}  {:<36}  {:<20}  {}{}",
                j.id,
                j.state.as_str(),
                match (j.released, l.orphaned) {
                    (true, _) => "yes",
                    (false, true) => "ORPHAN",
                    (false, false) => "no",
                },
                j.set_id
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                j.provider,
                j.source_url,
                j.reason
                    .as_deref()
                    .map(|r| format!("\n      {r}"))
                    .unwrap_or_default()
            );
        }
        t
    });
    Ok(exit::OK)
}

/// One job cleanup looked at.
#[derive(Debug, Serialize)]
struct Cleaned {
    job: uuid::Uuid,
    state_before: SnapshotState,
    state_after: SnapshotState,
    outcome: String,
    ok: bool,
}

fn clean_one(row: &SnapshotJobRow) -> Result<String, String> {
    let job: SnapshotJob = serde_json::from_value(row.job.clone())
        .map_err(|e| format!("the stored job does not decode: {e}"))?;
    let snap: Option<Snapshot> = match &row.snapshot {
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| format!("the stored snapshot does not decode: {e}"))?,
        ),
        None => None,
    };
    let mut provider =
        provider_from_spec(&row.provider).map_err(|e| format!("provider {}: {e}", row.provider))?;
    let Some(snap) = snap else {
        // Stopped before create answered, or inside it: what it may have
        // made is found by the names it derives from the job id.
        let found = provider
            .discard(&job)
            .map_err(|e| format!("looking for what an interrupted create made: {e}"))?;
        return Ok(format!("no snapshot was recorded; {found}"));
    };
    serverless::release(provider.as_mut(), &job, Some(&snap))?;
    Ok(format!("snapshot {} unmapped and deleted", snap.handle))
}

pub fn cleanup(out: &Out, cat: &Path) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    let mut done = Vec::new();
    for row in catalog.snapshot_jobs()? {
        if row.released || row.in_progress(catalog.host()) {
            continue;
        }
        let outcome = clean_one(&row);
        let ok = outcome.is_ok();
        let text = match &outcome {
            Ok(t) => {
                let reason = format!(
                    "the backup stopped in state {} (its process is gone); cleanup: {t}",
                    row.state
                );
                catalog.snapshot_cleaned(row.id, &reason)?;
                t.clone()
            }
            Err(e) => format!("cleanup failed: {e}"),
        };
        let after = catalog.snapshot_job(row.id)?.state;
        done.push(Cleaned {
            job: row.id,
            state_before: row.state,
            state_after: after,
            outcome: text,
            ok,
        });
    }
    let failed = done.iter().filter(|c| !c.ok).count();
    out.emit(&done, || {
        let mut t = format!("snapshots cleanup: {} job(s) released", done.len() - failed);
        if failed > 0 {
            let _ = write!(t, ", {failed} failed");
        }
        t.push('\n');
        for c in &done {
            let _ = writeln!(
                t,
                "  {}  {} -> {}  {}",
                c.job, c.state_before, c.state_after, c.outcome
            );
        }
        t
    });
    if failed > 0 {
        return Err(crate::engine::EngineError::Refused(format!(
            "{failed} snapshot job(s) could not be released; see above"
        ))
        .into());
    }
    Ok(exit::OK)
}
