//! backup, restore, verify, catalog, and `tape DEV label`.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};

use super::output::Out;
use super::{exit, open_transport, ConnArgs};
use crate::catalog::{diff_volume, Catalog, SetRow, VolumeDiff};
use crate::device::{Disk, Tape};
use crate::engine::drive_lock::{lock_drive, DriveKey, DriveLock};
use crate::engine::guard::refuse_live_writer;
use crate::engine::host::{backup, BackupOptions, BackupSummary};
use crate::engine::interrupt::{install_handlers, StopFlag};
use crate::engine::restore::{restore, verify, ReadSummary, RestoreOptions};
use crate::engine::set_writer::SetRequest;
use crate::engine::volume::{read_label, rebuild, write_label, LabelState};
use crate::engine::{EngineError, Progress, Refusal, SetSummary};
use crate::format::{DigestAlgorithm, Mode};
use crate::scsi::{BlockCount, Lba};
use crate::transport::url::DeviceUrl;
use crate::transport::Transport;

/// A progress bar on stderr when it is a terminal and JSON is not asked.
pub struct Bar {
    enabled: bool,
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Bar {
    pub fn new(out: &Out) -> Self {
        Bar {
            enabled: !out.json && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }
}

impl Progress for Bar {
    fn start(&self, total: u64, what: &str) {
        if !self.enabled {
            return;
        }
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:8} [{bar:40}] {bytes}/{total_bytes} {decimal_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_message(what.to_string());
        if let Ok(mut g) = self.bar.lock() {
            *g = Some(b);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(g) = self.bar.lock() {
            if let Some(b) = g.as_ref() {
                b.inc(bytes);
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut g) = self.bar.lock() {
            if let Some(b) = g.take() {
                b.finish_and_clear();
            }
        }
    }
}

/// Open the catalog and report sets a crashed run left `running`.
pub fn open_catalog(path: &Path) -> Result<Catalog> {
    let c = Catalog::open(path).with_context(|| format!("opening catalog {}", path.display()))?;
    for s in c.reap_stale()? {
        eprintln!(
            "sanmover: set {} was left running by a process that is gone; marked failed",
            s.info.id
        );
    }
    Ok(c)
}

/// A session to the disk `dev`; errors name its `role` and the address
/// without secrets.
pub(super) fn open_disk(
    conn: &ConnArgs,
    dev: &str,
    role: &str,
) -> Result<Disk<Box<dyn Transport + Send>>> {
    Disk::open(open_transport(conn, dev)?).with_context(|| format!("{role} {}", redacted(dev)))
}

/// A session to the tape drive `dev` (INQUIRY must say tape).
pub(super) fn open_tape(conn: &ConnArgs, dev: &str) -> Result<Tape<Box<dyn Transport + Send>>> {
    Tape::open(open_transport(conn, dev)?).with_context(|| format!("tape {}", redacted(dev)))
}

/// The drive's identity for its lock: the VPD 0x83 designator a copy
/// manager would use (LU, binary NAA first), else the first one, else
/// (no VPD 0x83 at all) its address.
fn drive_key<T: Transport>(tape: &mut Tape<T>, dev: &str) -> DriveKey {
    match tape.scsi.device_identification() {
        Ok(di) => {
            if let Some(d) = di.best_lu_designator().or(di.designators.first()) {
                let mut bytes = vec![d.designator_type.0, d.code_set.0];
                bytes.extend_from_slice(&d.value);
                return DriveKey {
                    text: d.to_string(),
                    bytes,
                };
            }
        }
        Err(e) => log::warn!(
            "{}: no VPD 0x83 identity ({e}); the drive is locked by its address",
            redacted(dev)
        ),
    }
    let addr = redacted(dev);
    DriveKey {
        text: addr.clone(),
        bytes: addr.into_bytes(),
    }
}

/// Take the drive `tape` for `command` until the returned lock is dropped:
/// one sanmover process per drive on this host (the lock file sits beside
/// the catalog `cat`). With `wait`, says that it waits and then waits.
pub(super) fn lock_tape<T: Transport>(
    cat: &Path,
    tape: &mut Tape<T>,
    dev: &str,
    command: &str,
    wait: bool,
) -> Result<DriveLock> {
    let dir = cat
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let key = drive_key(tape, dev);
    let lock = lock_drive(dir, &key, &format!("sanmover {command}"), wait, |holder| {
        eprintln!(
            "sanmover: tape drive {} is in use by another sanmover process ({holder}); waiting for it (--wait)",
            key.text
        )
    })?;
    Ok(lock)
}

/// [`lock_tape`] through a session of its own, for commands that hand the
/// drive's address on instead of opening it here.
pub(super) fn hold_drive(
    conn: &ConnArgs,
    cat: &Path,
    dev: &str,
    command: &str,
    wait: bool,
) -> Result<DriveLock> {
    let mut tape = open_tape(conn, dev)?;
    lock_tape(cat, &mut tape, dev, command, wait)
}

/// From here on SIGINT and SIGTERM stop the backup between records.
pub(super) fn stop_on_signals() -> Result<StopFlag> {
    install_handlers().context("installing the SIGINT/SIGTERM handlers")
}

/// A device address without secrets, for the set header and catalog.
pub(super) fn redacted(dev: &str) -> String {
    match DeviceUrl::parse(dev) {
        Ok(DeviceUrl::Iscsi(u)) => u.without_credentials().to_string(),
        _ => dev.to_string(),
    }
}

pub struct BackupArgs<'a> {
    pub mode: Mode,
    pub source: &'a str,
    pub lba: Option<u64>,
    pub blocks: Option<u64>,
    pub tape: &'a str,
    pub label: &'a str,
    pub block_size: usize,
    pub queue_depth: usize,
    pub copy_manager: Option<&'a str>,
    pub fallback: &'a str,
    pub snapshot: Option<&'a str>,
    pub quiesce: Option<&'a str>,
    pub thaw: Option<&'a str>,
    pub maskcheck_initiator: Option<&'a str>,
    /// Wait for the drive when another process has it.
    pub wait: bool,
    pub digest: DigestAlgorithm,
}

impl BackupArgs<'_> {
    /// The set every mode writes, as the engines take it.
    pub fn set_request(&self) -> Result<SetRequest> {
        Ok(SetRequest {
            lba: self.lba.map(Lba),
            blocks: self.blocks.map(BlockCount),
            label: self.label.to_string(),
            tape_block: self.block_size,
            source_url: redacted(self.source),
            tape_url: redacted(self.tape),
            stop: stop_on_signals()?,
            digest: self.digest,
        })
    }
}

pub fn run_backup(conn: &ConnArgs, out: &Out, cat: &Path, a: BackupArgs<'_>) -> Result<u8> {
    if a.mode == Mode::SERVERLESS {
        return super::snapshot_cmds::run_serverless(conn, out, cat, a);
    }
    if a.snapshot.is_some() {
        return Err(super::UsageError("--snapshot needs --mode serverless".into()).into());
    }
    if a.mode == Mode::XCOPY {
        return super::tpc_cmds::run(conn, out, cat, a);
    }
    run_host_backup(conn, out, cat, a)
}

/// Host-driven backup; also the fallback of the other modes.
pub fn run_host_backup(conn: &ConnArgs, out: &Out, cat: &Path, a: BackupArgs<'_>) -> Result<u8> {
    let s = host_backup(conn, out, cat, &a)?;
    out.emit(&s, || backup_text(&s));
    Ok(exit::OK)
}

/// Run a host-driven backup and record where the volume is.
pub fn host_backup(
    conn: &ConnArgs,
    out: &Out,
    cat: &Path,
    a: &BackupArgs<'_>,
) -> Result<BackupSummary> {
    if a.mode != Mode::HOST {
        return Err(super::UsageError(format!(
            "--mode {} is not supported yet; this release has --mode host and serverless",
            a.mode
        ))
        .into());
    }
    let catalog = open_catalog(cat)?;
    let mut source = open_disk(conn, a.source, "source")?;
    let mut tape = open_tape(conn, a.tape)?;
    let _lock = lock_tape(cat, &mut tape, a.tape, "backup", a.wait)?;
    let opts = BackupOptions {
        set: a.set_request()?,
        queue_depth: a.queue_depth,
        reservation_key: reservation_key(conn),
    };
    let bar = Bar::new(out);
    let s = backup(&mut source, &mut tape, &catalog, &opts, &bar)?;
    catalog.set_volume_device(s.set.volume, &opts.set.tape_url)?;
    Ok(s)
}

/// A key derived from the initiator name, so the same host always uses
/// the same one (SPC-4 5.13.3 leaves the choice to the application).
pub(super) fn reservation_key(conn: &ConnArgs) -> u64 {
    let name = conn.iscsi_options().initiator;
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    h | 1
}

pub(super) fn backup_text(b: &BackupSummary) -> String {
    let s = &b.set;
    format!(
        "backup complete: set {}\n  volume {} ({}), tape file {}\n{}  {} {}\n",
        s.set_id,
        b.volume_name,
        s.volume,
        s.tape_file,
        set_lines(s),
        s.digest_algorithm,
        s.digest
    )
}

/// The lines every backup summary has: the range and the throughput.
pub(super) fn set_lines(s: &SetSummary) -> String {
    format!(
        "  source LBA {}+{} blocks of {} bytes\n  {} bytes in {} records, {:.2} s, {:.1} MB/s\n",
        s.lba, s.blocks, s.block_size, s.bytes, s.records, s.seconds, s.mbps
    )
}

/// The tape to read a set from: `--tape`, else the device the catalog
/// last saw its volume in.
fn tape_for(catalog: &Catalog, set: &SetRow, tape: Option<&str>) -> Result<String> {
    if let Some(t) = tape {
        return Ok(t.to_string());
    }
    catalog.volume_device(set.info.volume)?.ok_or_else(|| {
        super::UsageError(format!(
            "the catalog does not know where volume {} ({}) is; give --tape DEV",
            set.volume_name, set.info.volume
        ))
        .into()
    })
}

pub struct RestoreArgs<'a> {
    pub set: &'a str,
    pub target: &'a str,
    pub tape: Option<&'a str>,
    /// None: the set's own first LBA.
    pub lba: Option<u64>,
    pub queue_depth: usize,
    /// Allow overwriting the set's own source LU.
    pub force: bool,
    pub wait: bool,
}

pub fn run_restore(conn: &ConnArgs, out: &Out, cat: &Path, a: RestoreArgs<'_>) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    let row = catalog.set(a.set)?;
    let tape_dev = tape_for(&catalog, &row, a.tape)?;
    let mut disk = open_disk(conn, a.target, "restore target")?;
    let mut t = open_tape(conn, &tape_dev)?;
    let _lock = lock_tape(cat, &mut t, &tape_dev, "restore", a.wait)?;
    refuse_live_writer(&catalog, row.info.volume, &row.volume_name)?;
    let opts = RestoreOptions {
        target_lba: a.lba.map(Lba),
        queue_depth: a.queue_depth,
        overwrite_source: a.force,
    };
    let s = restore(&mut t, &row, &mut disk, &opts, &Bar::new(out))?;
    let lba = s.target_lba.unwrap_or_default();
    out.emit(&s, || {
        format!(
            "restore complete: set {} to {} from LBA {lba}\n  {} bytes in {} records, {:.2} s, {:.1} MB/s\n  every record CRC and the set digest checked: {} {}\n",
            s.set_id,
            redacted(a.target),
            s.bytes,
            s.records,
            s.seconds,
            s.mbps,
            s.digest_algorithm,
            s.digest
        )
    });
    Ok(exit::OK)
}

pub struct VerifyArgs<'a> {
    pub set: &'a str,
    pub tape: Option<&'a str>,
    pub compare_source: bool,
    pub wait: bool,
}

pub fn run_verify(conn: &ConnArgs, out: &Out, cat: &Path, a: VerifyArgs<'_>) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    let row = catalog.set(a.set)?;
    let tape_dev = tape_for(&catalog, &row, a.tape)?;
    let mut t = Tape::open(open_transport(conn, &tape_dev)?)?;
    let _lock = lock_tape(cat, &mut t, &tape_dev, "verify", a.wait)?;
    refuse_live_writer(&catalog, row.info.volume, &row.volume_name)?;
    let mut source = if a.compare_source {
        Some(
            Disk::open(open_transport(conn, &row.info.source_url)?)
                .with_context(|| format!("source {}", row.info.source_url))?,
        )
    } else {
        None
    };
    let s: ReadSummary = verify(&mut t, &row, source.as_mut(), &Bar::new(out))?;
    out.emit(&s, || {
        let mut t = format!(
            "verify passed: set {} ({} records, {} bytes, {:.1} MB/s)\n  {} {}\n",
            s.set_id, s.records, s.bytes, s.mbps, s.digest_algorithm, s.digest
        );
        if let Some(n) = s.compared_with_source {
            let _ = writeln!(t, "  {n} bytes identical to the source LUN");
        }
        t
    });
    Ok(exit::OK)
}

pub fn catalog_list(out: &Out, cat: &Path) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    let sets = catalog.sets()?;
    out.emit(&sets, || {
        let mut t = format!(
            "{:<36}  {:<10}  {:<10}  {:>4}  {:>14}  {:<16}  SOURCE\n",
            "SET", "STATE", "MODE", "FILE", "BYTES", "VOLUME"
        );
        for s in &sets {
            let _ = writeln!(
                t,
                "{:<36}  {:<10}  {:<10}  {:>4}  {:>14}  {:<16}  {}",
                s.info.id,
                s.outcome.state.as_str(),
                s.info.mode,
                s.info.file_number,
                s.outcome.bytes,
                s.volume_name,
                s.info.source_url
            );
        }
        t
    });
    Ok(exit::OK)
}

pub fn catalog_show(out: &Out, cat: &Path, set: &str) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    let s = catalog.set(set)?;
    out.emit(&s, || {
        serde_json::to_string_pretty(&s).unwrap_or_else(|e| format!("cannot show set: {e}"))
    });
    Ok(exit::OK)
}

/// What `catalog rebuild --json` prints, applied or not.
#[derive(serde::Serialize)]
struct RebuildReport<'a> {
    volume: uuid::Uuid,
    volume_name: &'a str,
    /// False when the rebuild was refused for want of --force.
    applied: bool,
    sets: &'a [SetRow],
    /// Tape files that could not be read as a set, and why.
    unreadable: Vec<UnreadableFile>,
    /// The catalog's sets on this volume against the tape's.
    diff: &'a VolumeDiff,
    /// Only when refused: the error and exit status, as for any error.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<u8>,
}

#[derive(serde::Serialize)]
struct UnreadableFile {
    file_number: u32,
    reason: String,
}

pub fn catalog_rebuild(
    conn: &ConnArgs,
    out: &Out,
    cat: &Path,
    tape: &str,
    force: bool,
    wait: bool,
) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    let mut t = Tape::open(open_transport(conn, tape)?)?;
    let _lock = lock_tape(cat, &mut t, tape, "catalog rebuild", wait)?;
    let r = rebuild(&mut t, &Bar::new(out))?;
    let (vol, sets) = (&r.volume, &r.sets);
    let keep: Vec<u32> = r.unreadable.iter().map(|(f, _)| *f).collect();
    let diff = diff_volume(&catalog.sets_on_volume(vol.id)?, sets, &keep);
    let mut report = RebuildReport {
        volume: vol.id,
        volume_name: &vol.name,
        applied: false,
        sets,
        unreadable: r
            .unreadable
            .iter()
            .map(|(f, why)| UnreadableFile {
                file_number: *f,
                reason: why.clone(),
            })
            .collect(),
        diff: &diff,
        error: None,
        exit_code: None,
    };
    if diff.needs_force() && !force {
        return Ok(refuse_rebuild(out, &mut report));
    }
    catalog.replace_volume_sets_keeping(vol, sets, &keep)?;
    catalog.set_volume_device(vol.id, &redacted(tape))?;
    report.applied = true;
    out.emit(&report, || {
        let mut t = format!(
            "catalog rebuilt from volume {} ({}): {} sets\n",
            vol.name,
            vol.id,
            sets.len()
        );
        if diff.needs_force() || !diff.kept_unreadable.is_empty() {
            t.push_str("changes (--force):\n");
            t.push_str(&diff.text());
        }
        for s in sets {
            let _ = writeln!(
                t,
                "  file {:>3}  {}  {:<11}  {} bytes",
                s.info.file_number,
                s.info.id,
                s.outcome.state.as_str(),
                s.outcome.bytes
            );
        }
        t
    });
    Ok(exit::OK)
}

/// A rebuild that would delete or change known sets, without --force:
/// show the difference, change nothing, exit 45.
fn refuse_rebuild(out: &Out, report: &mut RebuildReport<'_>) -> u8 {
    let d = report.diff;
    let msg = format!(
        "catalog rebuild would delete {} and change {} of the sets the catalog knows on volume {} ({}); nothing was changed; check the tape, then run again with --force to apply",
        d.dropped.len(),
        d.changed.len(),
        report.volume_name,
        report.volume
    );
    report.error = Some(msg.clone());
    report.exit_code = Some(exit::REFUSED);
    let text = format!(
        "catalog rebuild NOT applied: volume {} ({}) on tape differs from the catalog:\n{}",
        report.volume_name,
        report.volume,
        d.text()
    );
    out.emit(&*report, || text);
    eprintln!("sanmover: {msg}");
    exit::REFUSED
}

/// `tape DEV label NAME [--force]`.
pub fn tape_label<T: Transport>(
    out: &Out,
    cat: &Path,
    tape: &mut Tape<T>,
    dev: &str,
    name: &str,
    force: bool,
) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    if !force {
        if let Some(v) = catalog.volumes()?.iter().find(|v| v.name == name) {
            return Err(EngineError::from(Refusal::VolumeNameTaken {
                name: name.to_string(),
                id: v.id,
            })
            .into());
        }
    }
    match read_label(tape)? {
        LabelState::Blank => {}
        LabelState::Ours(l) if !force => {
            return Err(EngineError::from(Refusal::AlreadyLabelled {
                name: l.name,
                id: l.uuid,
            })
            .into())
        }
        other @ (LabelState::Foreign(_) | LabelState::LeadingFilemark) if !force => {
            return Err(EngineError::from(Refusal::NotBlank { found: other }).into())
        }
        _ => {}
    }
    let l = write_label(tape, name)?;
    catalog.upsert_volume(&crate::catalog::VolumeRow {
        id: l.uuid,
        name: l.name.clone(),
        created: l.created as i64,
        last_file: None,
    })?;
    catalog.set_volume_device(l.uuid, &redacted(dev))?;
    out.emit(&l, || format!("labelled volume {} ({})\n", l.name, l.uuid));
    Ok(exit::OK)
}
