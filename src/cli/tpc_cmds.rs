//! `backup --mode xcopy`: third-party copy through a copy manager, with
//! the fallback policy of `xcopy`.

use std::path::Path;

use anyhow::Result;

use super::backup_cmds::{
    backup_text, hold_drive, host_backup, open_catalog, open_disk, open_tape, redacted, set_lines,
    BackupArgs, Bar,
};
use super::output::Out;
use super::xcopy_cmds::fallback_policy;
use super::{exit, open_transport, ConnArgs};
use crate::device::Scsi;
use crate::engine::disk_copy::Fallback;
use crate::engine::host::BackupSummary;
use crate::engine::third_party::{backup, ThirdPartyOptions, ThirdPartySummary};
use crate::engine::EngineError;
use crate::format::Mode;

/// What `backup --mode xcopy` ended with when the copy manager did not do
/// the job and this host did.
#[derive(Debug, serde::Serialize)]
struct FallbackSummary {
    mode: &'static str,
    fallback: bool,
    /// Why the third-party copy was not used or did not finish.
    reason: String,
    backup: BackupSummary,
}

pub fn run(conn: &ConnArgs, out: &Out, cat: &Path, a: BackupArgs<'_>) -> Result<u8> {
    // The drive for the whole run: the copy manager's writes and, on a
    // fallback, this host's (which shares this lock).
    let _lock = hold_drive(conn, cat, a.tape, "backup --mode xcopy", a.wait)?;
    let policy = fallback_policy(a.fallback);
    let reason = if policy == Fallback::Always {
        "--fallback always".to_string()
    } else {
        match third_party(conn, out, cat, &a) {
            Ok(s) => {
                out.emit(&s, || tpc_text(&s));
                return Ok(exit::OK);
            }
            // Stopped by the operator: no fallback.
            Err(e)
                if e.downcast_ref::<EngineError>()
                    .is_some_and(|e| matches!(e, EngineError::Interrupted { .. })) =>
            {
                return Err(e)
            }
            Err(e) if policy == Fallback::Prefer => {
                let why = format!("{e:#}");
                eprintln!(
                    "sanmover: third-party copy failed: {why}\nsanmover: finishing the backup host-driven (--fallback prefer)"
                );
                why
            }
            Err(e) => return Err(e),
        }
    };
    let host = host_backup(
        conn,
        out,
        cat,
        &BackupArgs {
            mode: Mode::HOST,
            ..a
        },
    )?;
    let s = FallbackSummary {
        mode: "host",
        fallback: true,
        reason,
        backup: host,
    };
    out.emit(&s, || {
        format!(
            "FALLBACK: the copy manager did not do this backup ({}); this host did:\n{}",
            s.reason,
            backup_text(&s.backup)
        )
    });
    Ok(exit::OK)
}

fn third_party(
    conn: &ConnArgs,
    out: &Out,
    cat: &Path,
    a: &BackupArgs<'_>,
) -> Result<ThirdPartySummary> {
    let cm_url = a
        .copy_manager
        .ok_or_else(|| super::UsageError("--mode xcopy needs --copy-manager DEV".into()))?;
    let catalog = open_catalog(cat)?;
    let mut cm = Scsi::new(open_transport(conn, cm_url)?);
    let mut source = open_disk(conn, a.source, "source")?;
    let mut tape = open_tape(conn, a.tape)?;
    let opts = ThirdPartyOptions {
        set: a.set_request()?,
        copy_manager_url: redacted(cm_url),
    };
    let bar = Bar::new(out);
    Ok(backup(
        &mut cm,
        &mut source,
        &mut tape,
        &catalog,
        &opts,
        &bar,
    )?)
}

fn tpc_text(t: &ThirdPartySummary) -> String {
    let s = &t.set;
    format!(
        "backup complete (third-party copy by {}): set {}\n  volume {}, tape file {}\n{}  {} EXTENDED COPY commands; through this host: {} bytes of parameter lists and results, {} bytes of data\n  {} digest of the record CRCs {}\n",
        t.copy_manager,
        s.set_id,
        s.volume,
        s.tape_file,
        set_lines(s),
        t.xcopy_commands,
        t.bytes_through_initiator,
        t.data_bytes_through_initiator,
        s.digest_algorithm,
        s.digest
    )
}
