//! backup, restore, verify, catalog, and `tape DEV label`.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};

use super::output::Out;
use super::{exit, open_transport, ConnArgs};
use crate::catalog::{Catalog, SetRow};
use crate::device::{Disk, Tape};
use crate::engine::host::{backup, BackupOptions, BackupSummary};
use crate::engine::restore::{restore, verify, ReadSummary};
use crate::engine::volume::{read_label, rebuild, write_label, LabelState};
use crate::engine::{Progress, SetSummary};
use crate::format::{DigestAlgorithm, Mode};
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
    pub digest: DigestAlgorithm,
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
    let opts = BackupOptions {
        lba: a.lba,
        blocks: a.blocks,
        label: a.label.to_string(),
        tape_block: a.block_size,
        queue_depth: a.queue_depth,
        mode: Mode::HOST,
        source_url: redacted(a.source),
        tape_url: redacted(a.tape),
        reservation_key: reservation_key(conn),
        digest: a.digest,
    };
    let bar = Bar::new(out);
    let s = backup(&mut source, &mut tape, &catalog, &opts, &bar)?;
    catalog.set_volume_device(s.set.volume, &opts.tape_url)?;
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
    pub lba: u64,
    pub queue_depth: usize,
}

pub fn run_restore(conn: &ConnArgs, out: &Out, cat: &Path, a: RestoreArgs<'_>) -> Result<u8> {
    let RestoreArgs {
        set,
        target,
        tape,
        lba,
        queue_depth,
    } = a;
    let catalog = open_catalog(cat)?;
    let row = catalog.set(set)?;
    let tape_dev = tape_for(&catalog, &row, tape)?;
    let mut disk = open_disk(conn, target, "restore target")?;
    let mut t = open_tape(conn, &tape_dev)?;
    let s = restore(&mut t, &row, &mut disk, lba, queue_depth, &Bar::new(out))?;
    out.emit(&s, || {
        format!(
            "restore complete: set {} to {} from LBA {lba}\n  {} bytes in {} records, {:.2} s, {:.1} MB/s\n  every record CRC and the set digest checked: {} {}\n",
            s.set_id,
            redacted(target),
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

pub fn run_verify(
    conn: &ConnArgs,
    out: &Out,
    cat: &Path,
    set: &str,
    tape: Option<&str>,
    compare_source: bool,
) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    let row = catalog.set(set)?;
    let tape_dev = tape_for(&catalog, &row, tape)?;
    let mut t = Tape::open(open_transport(conn, &tape_dev)?)?;
    let mut source = if compare_source {
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

pub fn catalog_rebuild(conn: &ConnArgs, out: &Out, cat: &Path, tape: &str) -> Result<u8> {
    let catalog = open_catalog(cat)?;
    let mut t = Tape::open(open_transport(conn, tape)?)?;
    let (vol, sets) = rebuild(&mut t, &Bar::new(out))?;
    catalog.replace_volume_sets(&vol, &sets)?;
    catalog.set_volume_device(vol.id, &redacted(tape))?;
    #[derive(serde::Serialize)]
    struct Rebuilt<'a> {
        volume: uuid::Uuid,
        volume_name: &'a str,
        sets: &'a [SetRow],
    }
    out.emit(
        &Rebuilt {
            volume: vol.id,
            volume_name: &vol.name,
            sets: &sets,
        },
        || {
            let mut t = format!(
                "catalog rebuilt from volume {} ({}): {} sets\n",
                vol.name,
                vol.id,
                sets.len()
            );
            for s in &sets {
                let _ = writeln!(
                    t,
                    "  file {:>3}  {}  {:<10}  {} bytes",
                    s.info.file_number,
                    s.info.id,
                    s.outcome.state.as_str(),
                    s.outcome.bytes
                );
            }
            t
        },
    );
    Ok(exit::OK)
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
    match read_label(tape)? {
        LabelState::Blank => {}
        LabelState::Ours(l) if !force => {
            return Err(crate::engine::EngineError::Refused(format!(
                "the tape already has the sanmover label {} ({}); --force writes a new label and loses every set on it",
                l.name, l.uuid
            ))
            .into())
        }
        LabelState::Foreign(first) if !force => {
            return Err(crate::engine::EngineError::Refused(format!(
                "the tape holds a foreign label or data (first bytes {}); --force overwrites it",
                hex::encode(first)
            ))
            .into())
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
