//! `backup --mode host`: this host reads the disk and writes the tape. Also
//! the fallback of `--mode xcopy`, and the summary text every mode prints.

use anyhow::Result;

use super::args::BackupArgs;
use super::exit;
use super::output::Out;
use super::progress::Bar;
use super::sessions::{redacted, stop_on_signals, Sessions};
use super::sizes::check_tape_block;
use crate::engine::host::{backup as host_backup, BackupOptions, BackupSummary};
use crate::engine::set_writer::SetRequest;
use crate::engine::SetSummary;
use crate::scsi::{BlockCount, Lba};

pub fn run(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<u8> {
    let sum = backup(s, out, a)?;
    out.emit(&sum, || backup_text(&sum));
    Ok(exit::OK)
}

/// Run a host-driven backup and record where the volume is.
pub fn backup(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<BackupSummary> {
    let catalog = s.catalog()?;
    let mut source = s.disk(&a.source, "source")?;
    let mut tape = s.tape(a.tape())?;
    let _lock = s.lock_tape(&mut tape, a.tape(), "backup", a.wait)?;
    let disk_block = source.capacity()?.block_size.0;
    check_tape_block(&mut tape, a.block_size, Some(disk_block))?;
    let opts = backup_options(s, a)?;
    let sum = host_backup(&mut source, &mut tape, &catalog, &opts, &Bar::new(out))?;
    catalog.set_volume_device(sum.set.volume, &opts.set.tape_url)?;
    Ok(sum)
}

/// What the host engine is asked for (the serverless mode runs it too).
/// Installs the SIGINT/SIGTERM handlers.
pub fn backup_options(s: &Sessions, a: &BackupArgs) -> Result<BackupOptions> {
    Ok(BackupOptions {
        set: set_request(a)?,
        queue_depth: a.queue_depth,
        reservation_key: s.reservation_key(),
        keep_reservation: false,
    })
}

/// The set every backup mode writes, as the engines take it. Installs the
/// SIGINT/SIGTERM handlers.
pub fn set_request(a: &BackupArgs) -> Result<SetRequest> {
    Ok(SetRequest {
        lba: a.lba.map(Lba),
        blocks: a.blocks.map(BlockCount),
        label: a.label.clone(),
        tape_block: usize::try_from(a.block_size.0)?,
        source_url: redacted(&a.source),
        tape_url: redacted(a.tape()),
        stop: stop_on_signals()?,
        digest: a.digest,
    })
}

pub fn backup_text(b: &BackupSummary) -> String {
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
pub fn set_lines(s: &SetSummary) -> String {
    format!(
        "  source LBA {}+{} blocks of {} bytes\n  {} bytes in {} records, {:.2} s, {:.1} MB/s\n",
        s.lba, s.blocks, s.block_size, s.bytes, s.records, s.seconds, s.mbps
    )
}
