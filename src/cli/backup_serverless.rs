//! `backup --mode serverless`: the storage snapshots the source, this host
//! backs the snapshot up.

use std::fmt::Write as _;

use anyhow::Result;

use super::args::BackupArgs;
use super::backup_host::{backup_options, backup_text};
use super::exit::{self, UsageError};
use super::output::Out;
use super::progress::Bar;
use super::sessions::Sessions;
use super::sizes::check_tape_block;
use crate::engine::serverless::{self, ServerlessOptions, ServerlessSummary};
use crate::snapshot::provider_with_sessions;

pub fn run(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<u8> {
    let spec = a.serverless.snapshot.as_deref().ok_or_else(|| {
        UsageError("--mode serverless needs --snapshot PROVIDER[:OPTIONS]".into())
    })?;
    if !a.source.starts_with("iscsi://") {
        return Err(UsageError(
            "--mode serverless needs an iscsi:// source (the snapshot is named after its target)"
                .into(),
        )
        .into());
    }
    let mut provider = provider_with_sessions(spec, s.connector())?;
    let catalog = s.catalog()?;
    // The tape first: a bad tape is refused before any snapshot exists.
    let mut tape = s.tape(a.tape())?;
    let _lock = s.lock_tape(&mut tape, a.tape(), "backup --mode serverless", a.wait)?;
    check_tape_block(&mut tape, a.block_size, None)?;
    let opts = ServerlessOptions {
        spec: spec.to_string(),
        source: a.source.clone(),
        initiator: s.initiator().to_string(),
        maskcheck_initiator: a.serverless.maskcheck_initiator.clone(),
        quiesce: a.serverless.quiesce.clone(),
        thaw: a.serverless.thaw.clone(),
        backup: backup_options(s, a)?,
    };
    let connector = s.session_connector();
    let sum = serverless::backup(
        connector.as_ref(),
        provider.as_mut(),
        &mut tape,
        &catalog,
        &opts,
        &Bar::new(out),
    )?;
    catalog.set_volume_device(sum.backup.set.volume, &opts.backup.set.tape_url)?;
    out.emit(&sum, || serverless_text(&sum));
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
