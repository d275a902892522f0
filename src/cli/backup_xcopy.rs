//! `backup --mode xcopy`: third-party copy through a copy manager, with the
//! `--fallback` policy (host-driven when the copy manager does not do it).

use anyhow::Result;

use super::args::{BackupArgs, FallbackPolicy};
use super::backup_host::{self, backup_text, set_lines};
use super::exit::{self, Refusal, UsageError};
use super::output::Out;
use super::progress::Bar;
use super::sessions::{redacted, Sessions};
use super::sizes::check_tape_block;
use crate::engine::host::BackupSummary;
use crate::engine::third_party::{backup, ThirdPartyOptions, ThirdPartySummary};
use crate::engine::EngineError;

/// What `backup --mode xcopy` ended with when the copy manager did not do
/// the job and this host did.
#[derive(Debug, serde::Serialize)]
pub(super) struct FallbackSummary {
    pub mode: &'static str,
    pub fallback: bool,
    /// Why the third-party copy was not used or did not finish.
    pub reason: String,
    pub backup: BackupSummary,
}

pub fn run(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<u8> {
    // The drive for the whole run: the copy manager's writes and, on a
    // fallback, this host's (which shares this lock).
    let _lock = s.hold_drive(a.tape(), "backup --mode xcopy", a.wait)?;
    let reason = match a.xcopy.fallback {
        FallbackPolicy::Always => "--fallback always".to_string(),
        policy => match third_party(s, out, a) {
            Ok(sum) => {
                out.emit(&sum, || tpc_text(&sum));
                return Ok(exit::OK);
            }
            Err(e) if policy == FallbackPolicy::Never || !falls_back(&e) => return Err(e),
            Err(e) => {
                let why = super::output::error_text(&e);
                eprintln!(
                    "sanmover: third-party copy failed: {why}\nsanmover: finishing the backup host-driven (--fallback prefer)"
                );
                why
            }
        },
    };
    let sum = FallbackSummary {
        mode: "host",
        fallback: true,
        reason,
        backup: backup_host::backup(s, out, a)?,
    };
    out.emit(&sum, || fallback_text(&sum));
    Ok(exit::OK)
}

pub(super) fn fallback_text(sum: &FallbackSummary) -> String {
    format!(
        "FALLBACK: the copy manager did not do this backup ({}); this host did:\n{}",
        sum.reason,
        backup_text(&sum.backup)
    )
}

/// Whether a failed third-party copy is worth doing host-driven: not when
/// the operator stopped it, nor when the request itself was refused.
pub(super) fn falls_back(e: &anyhow::Error) -> bool {
    // Nor a copy that filled the tape: the host would start the set again
    // on the same full cartridge.
    let interrupted = e.downcast_ref::<EngineError>().is_some_and(|e| {
        matches!(
            e,
            EngineError::Interrupted { .. } | EngineError::XcopyTapeFull { .. }
        )
    });
    !interrupted && e.downcast_ref::<Refusal>().is_none()
}

fn third_party(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<ThirdPartySummary> {
    let cm_url = a
        .xcopy
        .copy_manager
        .as_deref()
        .ok_or_else(|| UsageError("--mode xcopy needs --copy-manager DEV".into()))?;
    let catalog = s.catalog()?;
    let mut cm = s.scsi(cm_url)?;
    let mut source = s.disk(&a.source, "source")?;
    let mut tape = s.tape(a.tape())?;
    let disk_block = source.capacity()?.block_size.0;
    check_tape_block(&mut tape, a.block_size, Some(disk_block))?;
    let opts = ThirdPartyOptions {
        set: backup_host::set_request(a)?,
        copy_manager_url: redacted(cm_url),
        shared_volume: false,
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

pub(super) fn tpc_text(t: &ThirdPartySummary) -> String {
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
