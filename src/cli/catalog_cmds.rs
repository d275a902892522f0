//! `catalog list | show | volumes | expire | forget | rebuild`. Only
//! `rebuild` reads a tape; the others never touch one.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::args::RebuildArgs;
use super::exit;
use super::output::{human_size, Out};
use super::progress::Bar;
use super::sessions::{redacted, Sessions};
use super::time::{iso8601, iso8601_minutes};
use crate::catalog::{diff_volume, Catalog, CatalogError, SetRow, SetState, VolumeDiff, VolumeRow};
use crate::engine::volume::{rebuild, Rebuilt};

/// `catalog list` keeps to this many columns.
pub const LIST_WIDTH: usize = 100;

/// `s` cut to `width` characters, the cut marked with `…`.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A short name for a source: the last part of the target name and the
/// LUN (`disk/1` for `iscsi://host/iqn.2024-01.com.example:disk/1`), or
/// the device path.
fn short_source(url: &str) -> String {
    let Some(rest) = url.strip_prefix("iscsi://") else {
        return url.to_string();
    };
    let mut parts = rest.rsplitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(lun), Some(target)) => {
            let tail = target.rsplit([':', '.']).next().unwrap_or(target);
            format!("{tail}/{lun}")
        }
        _ => url.to_string(),
    }
}

/// The state a listing shows: an expired set says so.
fn shown_state(s: &SetRow) -> &'static str {
    if s.expired.is_some() {
        "expired"
    } else {
        s.outcome.state.as_str()
    }
}

/// `catalog list` as text: one line per set, at most [`LIST_WIDTH`] wide.
pub fn list_text(sets: &[SetRow]) -> String {
    let mut t = format!(
        "{:<8}  {:<17}  {:<11}  {:>10}  {:<14}  {:<14}  SOURCE\n",
        "SET", "STARTED (UTC)", "STATE", "SIZE", "VOLUME:FILE", "LABEL"
    );
    for s in sets {
        let line = format!(
            "{:<8}  {:<17}  {:<11}  {:>10}  {:<14}  {:<14}  {}",
            &s.info.id.simple().to_string()[..8],
            iso8601_minutes(s.info.started),
            shown_state(s),
            human_size(s.outcome.bytes),
            fit(&volume_file(s), 14),
            fit(&s.info.label, 14),
            short_source(&s.info.source_url)
        );
        let _ = writeln!(t, "{}", fit(&line, LIST_WIDTH));
    }
    t
}

/// Where a set starts, `VOLUME:FILE`, with `+N` for the N more volumes a
/// multi-volume set goes on to.
fn volume_file(s: &SetRow) -> String {
    let more = match s.parts.len() {
        0 | 1 => String::new(),
        n => format!("+{}", n - 1),
    };
    format!("{}:{}{more}", s.volume_name, s.info.file_number)
}

pub fn list(s: &Sessions, out: &Out) -> Result<u8> {
    let sets = s.catalog()?.sets()?;
    out.emit(&sets, || list_text(&sets));
    Ok(exit::OK)
}

/// `catalog show` as text.
pub fn show_text(s: &SetRow) -> String {
    let (i, o) = (&s.info, &s.outcome);
    let mut t = format!("set {}\n  state        {}\n", i.id, o.state);
    if let Some(at) = s.expired {
        let _ = writeln!(t, "  expired      {} (still on tape)", iso8601(at));
    }
    // The block address restore and verify LOCATE to, when recorded.
    let at = i
        .tape_block
        .map_or(String::new(), |b| format!(" at block {b}"));
    let _ = writeln!(
        t,
        "  volume       {} ({}), tape file {}{at}",
        s.volume_name, i.volume, i.file_number
    );
    let _ = writeln!(t, "  mode         {}", i.mode);
    if !i.label.is_empty() {
        let _ = writeln!(t, "  label        {}", i.label);
    }
    let _ = writeln!(t, "  source       {}", i.source_url);
    let _ = writeln!(t, "  designator   {}", i.source_designator);
    let _ = writeln!(
        t,
        "  range        LBA {}+{} blocks of {} bytes ({}); {} bytes of data per record",
        i.lba,
        i.blocks,
        i.block_size,
        human_size(i.blocks.0 * u64::from(i.block_size.0)),
        i.payload_size
    );
    if s.extents.len() > 1 {
        let e: Vec<String> = s.extents.iter().map(|(l, n)| format!("{l}+{n}")).collect();
        let _ = writeln!(t, "  extents      {}", e.join(", "));
    }
    for p in &s.parts {
        let _ = writeln!(
            t,
            "  part {:<7} volume {} ({}), tape file {}: records {}.., {} bytes",
            p.part, p.volume_name, p.volume, p.file_number, p.first_seq, p.bytes
        );
    }
    let _ = writeln!(
        t,
        "  written      {} records, {} bytes ({})",
        o.records,
        o.bytes,
        human_size(o.bytes)
    );
    let _ = writeln!(
        t,
        "  digest       {} {}",
        i.digest_algorithm,
        o.digest.as_deref().unwrap_or("-")
    );
    let _ = writeln!(t, "  started      {}", iso8601(i.started));
    if o.ended != 0 {
        let _ = writeln!(
            t,
            "  ended        {} ({:.2} s)",
            iso8601(o.ended),
            o.seconds
        );
    }
    if let Some(e) = &o.error {
        let _ = writeln!(t, "  error        {e}");
    }
    t
}

pub fn show(s: &Sessions, out: &Out, set: &str) -> Result<u8> {
    let row = s.catalog()?.set(set)?;
    out.emit(&row, || show_text(&row));
    Ok(exit::OK)
}

/// One volume as `catalog volumes` reports it.
#[derive(Debug, Serialize)]
pub struct VolumeReport {
    #[serde(flatten)]
    pub volume: VolumeRow,
    /// The device it was last seen in (no secrets).
    pub device: Option<String>,
    /// Every set the catalog has on it.
    pub sets: usize,
    /// Complete and not expired: the copies the volume keeps.
    pub kept: usize,
    pub expired: usize,
    /// Bytes of the kept sets.
    pub kept_bytes: u64,
    /// Nothing kept and nothing being written: it may be relabelled.
    pub reusable: bool,
}

/// Summarize `vol` from the catalog's `sets` (of every volume).
pub fn volume_report(vol: VolumeRow, device: Option<String>, sets: &[SetRow]) -> VolumeReport {
    let on: Vec<&SetRow> = sets.iter().filter(|s| s.info.volume == vol.id).collect();
    let kept: Vec<&&SetRow> = on
        .iter()
        .filter(|s| s.expired.is_none() && s.outcome.state == SetState::Complete)
        .collect();
    let running = on.iter().any(|s| s.outcome.state == SetState::Running);
    VolumeReport {
        sets: on.len(),
        kept: kept.len(),
        expired: on.iter().filter(|s| s.expired.is_some()).count(),
        kept_bytes: kept.iter().map(|s| s.outcome.bytes).sum(),
        reusable: kept.is_empty() && !running,
        volume: vol,
        device,
    }
}

/// `catalog volumes` as text, at most [`LIST_WIDTH`] wide.
pub fn volumes_text(vols: &[VolumeReport]) -> String {
    let mut t = format!(
        "{:<16}  {:<8}  {:<17}  {:>4}  {:>4}  {:>7}  {:>10}  LAST SEEN IN\n",
        "VOLUME", "ID", "LABELLED (UTC)", "SETS", "KEPT", "EXPIRED", "KEPT SIZE"
    );
    for v in vols {
        let seen = v.device.as_deref().map(short_source).unwrap_or_default();
        let line = format!(
            "{:<16}  {:<8}  {:<17}  {:>4}  {:>4}  {:>7}  {:>10}  {}{}",
            fit(&v.volume.name, 16),
            &v.volume.id.simple().to_string()[..8],
            iso8601_minutes(v.volume.created),
            v.sets,
            v.kept,
            v.expired,
            human_size(v.kept_bytes),
            seen,
            if v.reusable { "  (reusable)" } else { "" }
        );
        let _ = writeln!(t, "{}", fit(&line, LIST_WIDTH));
    }
    t
}

pub fn volumes(s: &Sessions, out: &Out) -> Result<u8> {
    let catalog = s.catalog()?;
    let sets = catalog.sets()?;
    let mut reports = Vec::new();
    for v in catalog.volumes()? {
        let device = catalog.volume_device(v.id)?;
        reports.push(volume_report(v, device, &sets));
    }
    out.emit(&reports, || volumes_text(&reports));
    Ok(exit::OK)
}

/// What `catalog expire` reports.
#[derive(Debug, Serialize)]
struct Expired {
    set_id: uuid::Uuid,
    /// Unix seconds of the expiry now recorded.
    expired: i64,
    /// It was expired before (the first date is kept).
    already: bool,
}

pub fn expire(s: &Sessions, out: &Out, set: &str) -> Result<u8> {
    let catalog = s.catalog()?;
    let row = catalog.set(set)?;
    let now = crate::engine::now() as i64;
    let at = catalog.expire_set(row.info.id, now)?;
    let e = Expired {
        set_id: row.info.id,
        expired: at,
        already: row.expired.is_some(),
    };
    out.emit(&e, || {
        let when = iso8601(e.expired);
        match e.already {
            true => format!("set {} was already expired on {when}\n", e.set_id),
            false => format!(
                "set {} expired on {when}; the tape is unchanged: the set still restores and verifies\n",
                e.set_id
            ),
        }
    });
    Ok(exit::OK)
}

/// What `catalog forget` reports, done or not.
#[derive(Serialize)]
struct Forgotten<'a> {
    set: &'a SetRow,
    /// False when refused for want of --force.
    forgotten: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<u8>,
}

pub fn forget(s: &Sessions, out: &Out, set: &str, force: bool) -> Result<u8> {
    let catalog = s.catalog()?;
    let row = catalog.set(set)?;
    if !force {
        let msg = format!(
            "catalog forget would remove set {} from the catalog (the tape keeps it); nothing was changed; run again with --force to remove it",
            row.info.id
        );
        let report = Forgotten {
            set: &row,
            forgotten: false,
            error: Some(msg.clone()),
            exit_code: Some(exit::REFUSED),
        };
        out.emit(&report, || format!("NOT forgotten:\n{}", show_text(&row)));
        eprintln!("sanmover: {msg}");
        return Ok(exit::REFUSED);
    }
    catalog.forget_set(row.info.id)?;
    let report = Forgotten {
        set: &row,
        forgotten: true,
        error: None,
        exit_code: None,
    };
    out.emit(&report, || {
        format!(
            "set {} removed from the catalog; it is still on volume {} file {} ('catalog rebuild' finds it again)\n",
            row.info.id, row.volume_name, row.info.file_number
        )
    });
    Ok(exit::OK)
}

/// A set whose first part is on this tape and continues on another
/// volume reads as incomplete from this tape alone. When the catalog
/// already lists the set's parts (it wrote them, or rebuilt the other
/// cartridges), the set keeps the outcome the catalog has, so the rebuild
/// changes nothing there; the parts are joined by set id either way.
fn adopt_joined(catalog: &Catalog, r: &mut Rebuilt) -> Result<()> {
    for row in &mut r.sets {
        let first = r
            .parts
            .iter()
            .any(|p| p.set_id == row.info.id && p.part.part == 1);
        if !first {
            continue;
        }
        match catalog.set(&row.info.id.to_string()) {
            Ok(known) if known.parts.len() > 1 => row.outcome = known.outcome,
            Ok(_) | Err(CatalogError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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
    /// Parts of multi-volume sets found on this tape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<PartFound>,
    /// The catalog's sets on this volume against the tape's.
    diff: &'a VolumeDiff,
    /// Only when refused: the error and exit status, as for any error.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<u8>,
}

#[derive(serde::Serialize)]
struct PartFound {
    set_id: uuid::Uuid,
    #[serde(flatten)]
    part: crate::catalog::SetPart,
    /// False when the part's trailer continues on the next volume.
    last: bool,
}

#[derive(serde::Serialize)]
struct UnreadableFile {
    file_number: u32,
    reason: String,
}

pub fn run_rebuild(s: &Sessions, out: &Out, a: &RebuildArgs) -> Result<u8> {
    let catalog = s.catalog()?;
    let mut t = s.tape(&a.tape)?;
    let _lock = s.lock_tape(&mut t, &a.tape, "catalog rebuild", a.wait)?;
    let mut r = rebuild(&mut t, &Bar::new(out))?;
    adopt_joined(&catalog, &mut r)?;
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
        parts: r
            .parts
            .iter()
            .map(|p| PartFound {
                set_id: p.set_id,
                part: p.part.clone(),
                last: p.outcome.is_some(),
            })
            .collect(),
        diff: &diff,
        error: None,
        exit_code: None,
    };
    if diff.needs_force() && !a.force {
        return Ok(refuse_rebuild(out, &mut report));
    }
    catalog.replace_volume(vol, sets, &keep, &r.parts)?;
    catalog.set_volume_device(vol.id, &redacted(&a.tape))?;
    report.applied = true;
    out.emit(&report, || rebuilt_text(&report));
    Ok(exit::OK)
}

fn rebuilt_text(r: &RebuildReport<'_>) -> String {
    let mut t = format!(
        "catalog rebuilt from volume {} ({}): {} sets\n",
        r.volume_name,
        r.volume,
        r.sets.len()
    );
    if r.diff.needs_force() || !r.diff.kept_unreadable.is_empty() {
        t.push_str("changes (--force):\n");
        t.push_str(&r.diff.text());
    }
    for p in &r.parts {
        let _ = writeln!(
            t,
            "  part {} of set {} in file {} ({} records, {})",
            p.part.part,
            p.set_id,
            p.part.file_number,
            p.part.records,
            if p.last {
                "its last part"
            } else {
                "continues on the next volume"
            }
        );
    }
    for s in r.sets {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{SetInfo, SetOutcome};
    use crate::scsi::{BlockCount, BlockSize, Lba};

    fn row(label: &str, volume: &str, source: &str, state: SetState) -> SetRow {
        SetRow {
            info: SetInfo {
                id: uuid::Uuid::new_v4(),
                volume: uuid::Uuid::nil(),
                file_number: 12,
                mode: "serverless".into(),
                label: label.into(),
                source_url: source.into(),
                source_designator: "naa.6001405abcdef".into(),
                lba: Lba(0),
                blocks: BlockCount(2048),
                block_size: BlockSize(512),
                payload_size: 261_632,
                started: 1_767_608_521,
                digest_algorithm: "blake3".into(),
                tape_block: None,
            },
            outcome: SetOutcome {
                state,
                records: 4,
                bytes: 1 << 20,
                digest: Some("ab".repeat(32)),
                ended: 1_767_608_530,
                seconds: 9.0,
                error: None,
            },
            volume_name: volume.into(),
            extents: vec![(Lba(0), BlockCount(2048))],
            expired: None,
            parts: Vec::new(),
        }
    }

    #[test]
    fn list_fits_100_columns_with_a_date_a_label_and_a_short_source() {
        let long = "x".repeat(64);
        let sets = [
            row(
                "nightly",
                "VOL001",
                "iscsi://127.0.0.1:47825/iqn.2026-11.org.sanmover.rig:disk/1",
                SetState::Complete,
            ),
            row(
                &long,
                &long,
                &format!("iscsi://h/{long}:{long}/9"),
                SetState::Interrupted,
            ),
            row("", "V", "/dev/sdb", SetState::Failed),
        ];
        let t = list_text(&sets);
        for line in t.lines() {
            assert!(
                line.chars().count() <= LIST_WIDTH,
                "{} columns: {line}",
                line.len()
            );
        }
        let first = t.lines().nth(1).unwrap();
        assert!(first.contains("2026-01-05T10:22Z"), "{first}");
        assert!(first.contains("VOL001:12"), "{first}");
        assert!(first.contains("nightly"), "{first}");
        assert!(first.ends_with("  disk/1"), "{first}");
        assert!(first.contains("1.0 MiB"), "{first}");
        assert!(t.lines().nth(2).unwrap().contains('…'));
        assert!(t.lines().nth(3).unwrap().ends_with("/dev/sdb"));
        let mut expired = sets[0].clone();
        expired.expired = Some(1);
        assert!(list_text(&[expired])
            .lines()
            .nth(1)
            .unwrap()
            .contains("expired"));
    }

    #[test]
    fn show_is_text_with_iso_8601_dates() {
        let mut r = row("weekly", "VOL001", "/dev/sdb", SetState::Complete);
        r.expired = Some(1_767_700_000);
        r.extents = vec![(Lba(0), BlockCount(1024)), (Lba(4096), BlockCount(1024))];
        let t = show_text(&r);
        assert!(t.starts_with(&format!("set {}\n", r.info.id)), "{t}");
        assert!(t.contains("started      2026-01-05T10:22:01Z"), "{t}");
        assert!(
            t.contains("ended        2026-01-05T10:22:10Z (9.00 s)"),
            "{t}"
        );
        assert!(t.contains("expired      2026-01-06T11:46:40Z"), "{t}");
        assert!(t.contains("extents      0+1024, 4096+1024"), "{t}");
        assert!(t.contains("label        weekly"), "{t}");
        assert!(!t.contains('{'), "not JSON: {t}");
        assert!(
            t.contains(", tape file 12\n"),
            "no address, none shown: {t}"
        );
        r.info.tape_block = Some(4242);
        let t = show_text(&r);
        assert!(t.contains(", tape file 12 at block 4242\n"), "{t}");
    }

    #[test]
    fn a_multi_volume_set_shows_its_parts() {
        let mut r = row("big", "VOL001", "/dev/sdb", SetState::Complete);
        let part = |part, name: &str, first_seq| crate::catalog::SetPart {
            part,
            volume: uuid::Uuid::from_u128(part as u128),
            volume_name: name.into(),
            file_number: 1,
            first_seq,
            records: 2,
            bytes: 2 << 20,
            tape_block: None,
        };
        r.parts = vec![part(1, "VOL001", 0), part(2, "VOL002", 2)];
        let t = show_text(&r);
        assert!(
            t.contains("part 2       volume VOL002 (00000000-0000-0000-0000-000000000002), tape file 1: records 2.., 2097152 bytes"),
            "{t}"
        );
        assert!(list_text(&[r]).contains("VOL001:12+1"));
    }

    #[test]
    fn volumes_count_kept_sets_and_say_when_a_volume_is_reusable() {
        let vol = VolumeRow {
            id: uuid::Uuid::nil(),
            name: "VOL001".into(),
            created: 1_767_608_000,
            last_file: Some(3),
        };
        let mut a = row("", "VOL001", "/dev/sdb", SetState::Complete);
        let b = row("", "VOL001", "/dev/sdb", SetState::Complete);
        let c = row("", "VOL001", "/dev/sdb", SetState::Failed);
        let r = volume_report(vol.clone(), None, &[a.clone(), b.clone(), c.clone()]);
        assert_eq!(
            (r.sets, r.kept, r.expired, r.kept_bytes),
            (3, 2, 0, 2 << 20)
        );
        assert!(!r.reusable);
        a.expired = Some(5);
        let mut b2 = b.clone();
        b2.expired = Some(6);
        let r = volume_report(
            vol.clone(),
            Some("iscsi://h/iqn.x:tape/1".into()),
            &[a, b2, c],
        );
        assert_eq!((r.kept, r.expired), (0, 2));
        assert!(r.reusable);
        let t = volumes_text(&[r]);
        assert!(
            t.lines().nth(1).unwrap().ends_with("tape/1  (reusable)"),
            "{t}"
        );
        let running = row("", "VOL001", "/dev/sdb", SetState::Running);
        assert!(!volume_report(vol, None, &[running]).reusable);
    }
}
