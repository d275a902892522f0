//! `snapshots list` and `snapshots cleanup`: the snapshot jobs of
//! serverless backups.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::exit;
use super::output::Out;
use super::sessions::Sessions;
use crate::catalog::{SnapshotJobRow, SnapshotState};
use crate::engine::serverless;
use crate::snapshot::{provider_with_sessions, Snapshot, SnapshotJob};

pub fn list(s: &Sessions, out: &Out) -> Result<u8> {
    let catalog = s.catalog()?;
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
pub(super) struct Cleaned {
    pub job: uuid::Uuid,
    state_before: SnapshotState,
    state_after: SnapshotState,
    pub outcome: String,
    ok: bool,
}

fn clean_one(s: &Sessions, row: &SnapshotJobRow) -> Result<String, String> {
    let job: SnapshotJob = serde_json::from_value(row.job.clone())
        .map_err(|e| format!("the stored job does not decode: {e}"))?;
    let snap: Option<Snapshot> = match &row.snapshot {
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| format!("the stored snapshot does not decode: {e}"))?,
        ),
        None => None,
    };
    let mut provider = provider_with_sessions(&row.provider, s.connector())
        .map_err(|e| format!("provider {}: {e}", row.provider))?;
    let Some(snap) = snap else {
        // Stopped before create answered, or inside it: what it may have
        // made is found by the names it derives from the job id.
        let found = provider
            .discard(&job)
            .map_err(|e| format!("looking for what an interrupted create made: {e}"))?;
        return Ok(format!("no snapshot was recorded; {found}"));
    };
    serverless::release(provider.as_mut(), &job, Some(&snap)).map_err(|e| e.to_string())?;
    Ok(format!("snapshot {} unmapped and deleted", snap.handle))
}

pub fn cleanup(s: &Sessions, out: &Out) -> Result<u8> {
    let done = release_stopped(s)?;
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
        let count = failed;
        return Err(
            crate::engine::EngineError::from(crate::engine::Refusal::Unreleased { count }).into(),
        );
    }
    Ok(exit::OK)
}

/// Release what stopped serverless backups left (their process is gone):
/// what `snapshots cleanup` does, and `server` at start.
pub(super) fn release_stopped(s: &Sessions) -> Result<Vec<Cleaned>> {
    let catalog = s.catalog()?;
    let mut done = Vec::new();
    for row in catalog.snapshot_jobs()? {
        if row.released || row.in_progress(catalog.host()) {
            continue;
        }
        let outcome = clean_one(s, &row);
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
    Ok(done)
}
