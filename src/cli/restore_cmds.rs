//! `restore` and `verify`: read a set back from its tape.

use std::fmt::Write as _;

use anyhow::Result;

use super::args::{RestoreArgs, VerifyArgs};
use super::exit::{self, UsageError};
use super::output::Out;
use super::progress::Bar;
use super::sessions::{redacted, Dyn, Sessions};
use super::time::iso8601;
use crate::catalog::{Catalog, SetRow};
use crate::device::{Disk, Tape};
use crate::engine::guard::refuse_live_writer;
use crate::engine::restore::{
    restore, verify_against, Compare, CompareWith, ReadSummary, RestoreOptions,
};
use crate::scsi::Lba;

/// The tape to read a set from: `--tape`, else the device the catalog
/// last saw its volume in.
fn tape_for(catalog: &Catalog, set: &SetRow, tape: Option<&str>) -> Result<String> {
    if let Some(t) = tape {
        return Ok(t.to_string());
    }
    catalog.volume_device(set.info.volume)?.ok_or_else(|| {
        UsageError(format!(
            "the catalog does not know where volume {} ({}) is; give --tape DEV",
            set.volume_name, set.info.volume
        ))
        .into()
    })
}

/// An expired set still reads; say so.
fn warn_expired(set: &SetRow) {
    if let Some(at) = set.expired {
        log::warn!(
            "set {} expired on {} (catalog expire); it is read from the tape all the same",
            set.info.id,
            iso8601(at)
        );
    }
}

pub fn run_restore(s: &Sessions, out: &Out, a: &RestoreArgs) -> Result<u8> {
    let catalog = s.catalog()?;
    let row = catalog.set(&a.set)?;
    warn_expired(&row);
    let tape_dev = tape_for(&catalog, &row, a.tape.as_deref())?;
    let mut disk = s.disk(&a.target, "restore target")?;
    let mut t = s.tape(&tape_dev)?;
    let _lock = s.lock_tape(&mut t, &tape_dev, "restore", a.wait)?;
    refuse_live_writer(&catalog, row.info.volume, &row.volume_name)?;
    let opts = RestoreOptions {
        target_lba: a.lba.map(Lba),
        queue_depth: a.queue_depth,
        overwrite_source: a.force,
    };
    let sum = restore(&mut t, &row, &mut disk, &opts, &Bar::new(out))?;
    let lba = sum.target_lba.unwrap_or_default();
    out.emit(&sum, || {
        format!(
            "restore complete: set {} to {} from LBA {lba}\n  {} bytes in {} records, {:.2} s, {:.1} MB/s\n  every record CRC and the set digest checked: {} {}\n",
            sum.set_id,
            redacted(&a.target),
            sum.bytes,
            sum.records,
            sum.seconds,
            sum.mbps,
            sum.digest_algorithm,
            sum.digest
        )
    });
    Ok(exit::OK)
}

/// The disk `verify` compares with, if any: the set's source, or
/// `--compare-target`.
fn compared_disk(s: &Sessions, a: &VerifyArgs, row: &SetRow) -> Result<Option<Disk<Dyn>>> {
    Ok(match (&a.compare_target, a.compare_source) {
        (Some(dev), _) => Some(s.disk(dev, "compare target")?),
        (None, true) => Some(s.disk(&row.info.source_url, "source")?),
        (None, false) => None,
    })
}

pub fn run_verify(s: &Sessions, out: &Out, a: &VerifyArgs) -> Result<u8> {
    let catalog = s.catalog()?;
    let row = catalog.set(&a.set)?;
    warn_expired(&row);
    let tape_dev = tape_for(&catalog, &row, a.tape.as_deref())?;
    let mut t = s.tape(&tape_dev)?;
    let _lock = s.lock_tape(&mut t, &tape_dev, "verify", a.wait)?;
    refuse_live_writer(&catalog, row.info.volume, &row.volume_name)?;
    let sum = verify_on(s, out, a, &mut t, &row)?;
    out.emit(&sum, || verify_text(&sum, a, &row));
    Ok(exit::OK)
}

/// Read `row`'s set from `t` and check it, comparing with a disk when
/// `a` asks for it (`verify` and `verify --server`).
pub(super) fn verify_on(
    s: &Sessions,
    out: &Out,
    a: &VerifyArgs,
    t: &mut Tape<Dyn>,
    row: &SetRow,
) -> Result<ReadSummary> {
    let mut disk = compared_disk(s, a, row)?;
    let compare = disk.as_mut().map(|disk| Compare {
        disk,
        lba: a.lba.map_or(row.info.lba, Lba),
        with: match a.compare_target {
            Some(_) => CompareWith::Target,
            None => CompareWith::Source,
        },
    });
    Ok(verify_against(t, row, compare, &Bar::new(out))?)
}

pub(super) fn verify_text(sum: &ReadSummary, a: &VerifyArgs, row: &SetRow) -> String {
    let mut t = format!(
        "verify passed: set {} ({} records, {} bytes, {:.1} MB/s)\n  {} {}\n",
        sum.set_id, sum.records, sum.bytes, sum.mbps, sum.digest_algorithm, sum.digest
    );
    if let Some(n) = sum.compared_with_source {
        let _ = writeln!(t, "  {n} bytes identical to the source LUN");
    }
    if let (Some(n), Some(dev)) = (sum.compared_with_target, &a.compare_target) {
        let _ = writeln!(
            t,
            "  {n} bytes identical to {} from LBA {}",
            redacted(dev),
            a.lba.map_or(row.info.lba, Lba)
        );
    }
    t
}
