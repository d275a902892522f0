//! Multi-volume sets on the in-memory disk and tape (FORMAT.md
//! "Multi-volume sets"): early warning in the middle of a record, tgt's
//! end of medium without early warning, an empty pool, a continuation
//! cartridge with a foreign label, and catalog rebuild from the parts.
//! The "library" here swaps media in the one memory drive, as the backup
//! server's changer does with a real one.

mod common;
use common::memory::{backup_options as opts, temp_catalog as catalog};
use sanmover::catalog::{Catalog, SetRow, SetState};
use sanmover::device::{Disk, Tape};
use sanmover::engine::host::{backup_spanning, BackupSummary};
use sanmover::engine::progress::NoProgress;
use sanmover::engine::restore::{restore_spanning, verify_spanning, LoadPart, RestoreOptions};
use sanmover::engine::set_writer::NextVolume;
use sanmover::engine::volume::{rebuild, write_label};
use sanmover::engine::{EngineError, Refusal};
use sanmover::format::{classify, BlockKind, SetTrailer, StopReason, VolumeLabel};
use sanmover::lu::{Completion, LogicalUnit, MemDisk, MemTape, MemoryMedium, TapeObject};
use sanmover::scsi::asc::Asc;
use sanmover::scsi::sense::{Sense, SenseKey};
use sanmover::scsi::Lba;
use sanmover::transport::memory::MemoryTransport;
use uuid::Uuid;

type MemDiskT = MemoryTransport<MemDisk>;
type DriveT = MemoryTransport<Drive>;

/// The memory drive, optionally behaving as tgt at its end: no early
/// warning, and every WRITE(6) once `tgt_capacity` bytes are written
/// answers NO SENSE + EOM, 00/00 with the data written.
struct Drive {
    lu: MemTape,
    tgt_capacity: Option<u64>,
    written: u64,
}

impl LogicalUnit for Drive {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        let c = self.lu.execute(cdb, data_out, data_in);
        if cdb.first() != Some(&0x0a) || !c.sense.is_empty() {
            return c;
        }
        self.written += data_out.len() as u64;
        match self.tgt_capacity {
            Some(cap) if self.written > cap => {
                Completion::check(Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL).with_eom())
            }
            _ => c,
        }
    }
}

/// A host backup of `src` onto `t`, with `shelf` as its next volume.
fn span(
    src: &mut Disk<MemDiskT>,
    t: &mut Tape<DriveT>,
    shelf: &mut Shelf,
    cat: &Catalog,
) -> Result<BackupSummary, EngineError> {
    let next = Some(shelf as &mut dyn NextVolume<DriveT>);
    backup_spanning(src, None, (t, next), cat, &opts(), &NoProgress)
}

fn disk(serial: &str, blocks: u64) -> Disk<MemDiskT> {
    let mut d = MemDisk::new(serial, blocks, 512);
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ blocks;
    for b in d.data_mut().iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Disk::open(MemoryTransport::new(serial, d)).unwrap()
}

/// A cartridge of `capacity` bytes labelled `name` (or holding another
/// program's block when `name` is None), and its volume id.
fn cartridge(capacity: u64, name: Option<&str>) -> (MemoryMedium, Uuid) {
    let d = Drive {
        lu: MemTape::new("L", capacity),
        tgt_capacity: None,
        written: 0,
    };
    let mut t = Tape::open(MemoryTransport::new("labeller", d)).unwrap();
    let id = match name {
        Some(n) => write_label(&mut t, n).unwrap().uuid,
        None => {
            t.rewind().unwrap();
            t.write_block(b"VOL1BAREOS-TAPE".to_vec()).unwrap();
            t.write_filemarks(1).unwrap();
            Uuid::nil()
        }
    };
    let (m, _) = t.scsi.transport().lu.lu.unload_medium().unwrap();
    (m, id)
}

/// The cartridges not in the drive, by volume id, and the scratch ones the
/// next continuation gets, in order.
#[derive(Default)]
struct Shelf {
    by_volume: Vec<(Uuid, MemoryMedium)>,
    scratch: Vec<(Uuid, MemoryMedium)>,
    asked: Vec<(u32, String)>,
}

impl Shelf {
    fn swap_in(&mut self, tape: &mut Tape<DriveT>, next: (Uuid, MemoryMedium), out: Uuid) {
        let drive = &mut tape.scsi.transport().lu;
        let (old, _) = drive.lu.unload_medium().unwrap();
        self.by_volume.push((out, old));
        drive.lu.load_medium(next.1, Default::default()).unwrap();
        drive.written = 0;
    }
}

impl NextVolume<DriveT> for Shelf {
    fn next_volume(
        &mut self,
        tape: &mut Tape<DriveT>,
        _set: Uuid,
        part: u32,
        full: &VolumeLabel,
    ) -> Result<(), EngineError> {
        self.asked.push((part, full.name.clone()));
        if self.scratch.is_empty() {
            return Err(EngineError::Stopped("the pool has no scratch cartridge"));
        }
        let next = self.scratch.remove(0);
        self.swap_in(tape, next, full.uuid);
        Ok(())
    }
}

/// Reading: the drive's volume is found by reading its label first.
struct Loader<'a> {
    shelf: &'a mut Shelf,
    in_drive: Uuid,
    loads: u32,
}

impl LoadPart<DriveT> for Loader<'_> {
    fn load_part(
        &mut self,
        tape: &mut Tape<DriveT>,
        _set: &SetRow,
        part: &sanmover::catalog::SetPart,
    ) -> Result<(), EngineError> {
        let i = self
            .shelf
            .by_volume
            .iter()
            .position(|(v, _)| *v == part.volume)
            .ok_or(EngineError::Stopped("cartridge not on the shelf"))?;
        let next = self.shelf.by_volume.remove(i);
        let out = self.in_drive;
        self.in_drive = next.0;
        self.shelf.swap_in(tape, next, out);
        self.loads += 1;
        Ok(())
    }
}

fn drive(first: MemoryMedium, tgt_capacity: Option<u64>) -> Tape<DriveT> {
    let mut lu = MemTape::empty("VTL", "D0");
    lu.load_medium(first, Default::default()).unwrap();
    let d = Drive {
        lu,
        tgt_capacity,
        written: 0,
    };
    Tape::open(MemoryTransport::new("tape", d)).unwrap()
}

/// The blocks of tape file `file` of the medium in the drive.
fn file_blocks(tape: &mut Tape<DriveT>, file: usize) -> Vec<Vec<u8>> {
    let objs = tape.scsi.transport().lu.lu.objects().to_vec();
    objs.split(|o| *o == TapeObject::Filemark)
        .nth(file)
        .unwrap_or_default()
        .iter()
        .map(|o| match o {
            TapeObject::Block(b) => b.clone(),
            TapeObject::Filemark => unreachable!(),
        })
        .collect()
}

/// A 3 MiB set written across two 2 MiB cartridges (early warning 1/20 of
/// the capacity before the end), with SPN002 left in the drive.
struct Spanned {
    _dir: tempfile::TempDir,
    cat: Catalog,
    shelf: Shelf,
    t: Tape<DriveT>,
    src: Disk<MemDiskT>,
    row: SetRow,
    v1: Uuid,
    v2: Uuid,
}

fn spanned() -> Spanned {
    let (dir, cat) = catalog();
    let (first, v1) = cartridge(2 << 20, Some("SPN001"));
    let (second, v2) = cartridge(2 << 20, Some("SPN002"));
    let mut shelf = Shelf {
        scratch: vec![(v2, second)],
        ..Default::default()
    };
    let mut t = drive(first, None);
    let mut src = disk("SRC", 6144);
    let s = span(&mut src, &mut t, &mut shelf, &cat).unwrap();
    assert_eq!(s.set.bytes, 6144 * 512);
    assert_eq!(shelf.asked, vec![(2, "SPN001".to_string())]);
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    assert_eq!(s.set.parts, row.parts);
    Spanned {
        _dir: dir,
        cat,
        shelf,
        t,
        src,
        row,
        v1,
        v2,
    }
}

impl Spanned {
    /// Put volume `want` in the drive; the one there goes on the shelf.
    fn put(&mut self, want: Uuid) {
        let out = read_label_uuid(&mut self.t);
        let i = self
            .shelf
            .by_volume
            .iter()
            .position(|(v, _)| *v == want)
            .unwrap();
        let next = self.shelf.by_volume.remove(i);
        self.shelf.swap_in(&mut self.t, next, out);
    }
}

/// A loader from `shelf`, with the volume now in `t`'s drive.
fn loader<'a>(shelf: &'a mut Shelf, t: &mut Tape<DriveT>) -> Loader<'a> {
    Loader {
        in_drive: read_label_uuid(t),
        shelf,
        loads: 0,
    }
}

fn read_label_uuid(t: &mut Tape<DriveT>) -> Uuid {
    match sanmover::engine::volume::read_label(t).unwrap() {
        sanmover::engine::volume::LabelState::Ours(l) => l.uuid,
        other => panic!("{}", other.describe()),
    }
}

fn restore_opts() -> RestoreOptions {
    RestoreOptions {
        target_lba: Some(Lba(0)),
        queue_depth: 4,
        overwrite_source: false,
    }
}

/// The set spans two cartridges, and a restore that is given the parts'
/// cartridges in turn is byte-identical.
#[test]
fn a_set_larger_than_a_cartridge_spans_two_and_restores_whole() {
    let mut sp = spanned();
    let row = sp.row.clone();
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(row.parts.len(), 2);
    assert_eq!((row.parts[0].volume, row.parts[0].file_number), (sp.v1, 1));
    assert_eq!((row.parts[1].volume, row.parts[1].file_number), (sp.v2, 1));
    assert_eq!(row.parts[1].first_seq, row.parts[0].records);
    assert_eq!(row.parts[0].bytes + row.parts[1].bytes, row.outcome.bytes);
    // On tape: part 2 opens with its continuation header and ends with a
    // version-2 trailer.
    let blocks = file_blocks(&mut sp.t, 1);
    assert_eq!(classify(&blocks[0]), BlockKind::Continuation);
    let last = SetTrailer::decode(blocks.last().unwrap()).unwrap();
    assert_eq!((last.part, last.complete), (2, true));
    // Restore reads part 1 from SPN001, then has SPN002 loaded back.
    sp.put(sp.v1);
    let mut dst = disk("DST", 6144);
    dst.scsi.transport().lu.data_mut().fill(0);
    let mut loader = loader(&mut sp.shelf, &mut sp.t);
    restore_spanning(
        &mut sp.t,
        Some(&mut loader),
        &row,
        &mut dst,
        &restore_opts(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(loader.loads, 1);
    assert!(dst.scsi.transport().lu.data() == sp.src.scsi.transport().lu.data());
}

/// Verify follows the parts too; without a way to load the next part, a
/// restore stops at the end of part 1 and names the cartridge it needs.
#[test]
fn verify_follows_the_parts_and_a_restore_without_a_loader_names_the_cartridge() {
    let mut sp = spanned();
    let row = sp.row.clone();
    sp.put(sp.v1);
    let mut loader = loader(&mut sp.shelf, &mut sp.t);
    verify_spanning::<_, MemDiskT>(&mut sp.t, Some(&mut loader), &row, None, &NoProgress).unwrap();
    assert_eq!(loader.loads, 1);
    sp.put(sp.v1);
    let mut dst = disk("DST", 6144);
    let opts = restore_opts();
    let e = restore_spanning(&mut sp.t, None, &row, &mut dst, &opts, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("SPN002"), "{e}");
    assert!(matches!(
        &e,
        EngineError::Refused(r) if matches!(**r, Refusal::PartNotLoaded { part: 2, .. })
    ));
}

/// A new catalog rebuilt from the two cartridges, the second first: the
/// parts are joined by set id, the set is whole again and restores.
#[test]
fn catalog_rebuild_from_both_cartridges_joins_the_parts() {
    let mut sp = spanned();
    let (_d2, fresh) = catalog();
    let r2 = rebuild(&mut sp.t, &NoProgress).unwrap(); // SPN002
    assert!(r2.sets.is_empty());
    assert_eq!(r2.parts.len(), 1);
    fresh
        .replace_volume(&r2.volume, &r2.sets, &[], &r2.parts)
        .unwrap();
    let half = fresh.sets().unwrap();
    assert!(half.is_empty(), "part 2 alone is no set row: {half:?}");
    sp.put(sp.v1);
    let r1 = rebuild(&mut sp.t, &NoProgress).unwrap();
    assert_eq!(r1.sets.len(), 1);
    assert_eq!(r1.sets[0].outcome.state, SetState::Incomplete);
    fresh
        .replace_volume(&r1.volume, &r1.sets, &[], &r1.parts)
        .unwrap();
    let row = sp.row.clone();
    let rebuilt = fresh.set(&row.info.id.to_string()).unwrap();
    assert_eq!(rebuilt.outcome.state, SetState::Complete);
    assert_eq!(
        (rebuilt.outcome.records, rebuilt.outcome.bytes),
        (row.outcome.records, row.outcome.bytes)
    );
    assert_eq!(rebuilt.outcome.digest, row.outcome.digest);
    assert_eq!(rebuilt.parts, row.parts);
    let mut dst = disk("DST", 6144);
    let mut loader = loader(&mut sp.shelf, &mut sp.t);
    let opts = restore_opts();
    restore_spanning(
        &mut sp.t,
        Some(&mut loader),
        &rebuilt,
        &mut dst,
        &opts,
        &NoProgress,
    )
    .unwrap();
    assert!(dst.scsi.transport().lu.data() == sp.src.scsi.transport().lu.data());
    // The other catalog, which wrote the set, is unchanged by it all.
    assert_eq!(sp.cat.set(&row.info.id.to_string()).unwrap(), row);
}

/// Rebuilding only the first cartridge leaves the set incomplete, and the
/// error says which part is missing.
#[test]
fn a_rebuild_of_the_first_cartridge_alone_names_the_missing_part() {
    let mut sp = spanned();
    sp.put(sp.v1);
    let (_d2, fresh) = catalog();
    let r1 = rebuild(&mut sp.t, &NoProgress).unwrap();
    fresh
        .replace_volume(&r1.volume, &r1.sets, &[], &r1.parts)
        .unwrap();
    let row = fresh.set(&sp.row.info.id.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Incomplete);
    let err = row.outcome.error.unwrap();
    assert!(err.contains("part 1 continues on the next volume"), "{err}");
    assert_eq!(row.parts.len(), 1);
}

/// Early warning lands inside a record: the drive writes the record and
/// reports EOM; that record is the last of part 1, then the trailer.
#[test]
fn early_warning_in_the_middle_of_a_record_ends_the_part_after_it() {
    let (_d, cat) = catalog();
    // 1 MiB, early warning 52428 bytes before the end: the record that
    // crosses it starts before and ends after the point.
    let (first, _) = cartridge(1 << 20, Some("EW0001"));
    let (second, _) = cartridge(1 << 20, Some("EW0002"));
    let mut shelf = Shelf {
        scratch: vec![(Uuid::nil(), second)],
        ..Default::default()
    };
    let mut t = drive(first, None);
    let mut src = disk("SRC", 2048);
    let s = span(&mut src, &mut t, &mut shelf, &cat).unwrap();
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    assert_eq!(row.parts.len(), 2);
    let p1 = &row.parts[0];
    // Record size 48 + 127 × 512 = 65072 bytes; EW at 1 MiB − 52428.
    let ew = (1u64 << 20) - (1 << 20) / 20;
    let label_and_header = {
        let (_, m) = shelf.by_volume[0].clone();
        let mut l = MemTape::empty("X", "X");
        l.load_medium(m, Default::default()).unwrap();
        l.objects()
            .iter()
            .take(3)
            .map(|o| match o {
                TapeObject::Block(b) => b.len() as u64,
                TapeObject::Filemark => 0,
            })
            .sum::<u64>()
    };
    let before = label_and_header + (p1.records - 1) * 65072;
    assert!(before < ew && before + 65072 > ew, "{before} {ew}");
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(row.outcome.bytes, 2048 * 512);
}

/// The set's last record is the one that reaches early warning: the set
/// is complete on this volume (the trailer and filemark fit in the
/// early-warning zone) and no next volume is asked for.
#[test]
fn early_warning_at_the_last_record_needs_no_next_volume() {
    let (_d, cat) = catalog();
    let (first, _) = cartridge(1 << 20, Some("LST001"));
    let mut shelf = Shelf::default();
    let mut t = drive(first, None);
    // 16 records of 127 blocks: the 16th crosses early warning
    // (1 MiB - 52428 bytes) and still ends before the capacity.
    let mut src = disk("SRC", 16 * 127);
    let s = span(&mut src, &mut t, &mut shelf, &cat).unwrap();
    assert!(shelf.asked.is_empty());
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    assert_eq!(
        (row.outcome.state, row.outcome.records),
        (SetState::Complete, 16)
    );
    assert!(row.parts.is_empty());
    let blocks = file_blocks(&mut t, 1);
    let ew = (1u64 << 20) - (1 << 20) / 20;
    let before: u64 = file_blocks(&mut t, 0)
        .iter()
        .map(|b| b.len() as u64)
        .sum::<u64>()
        + blocks[..16].iter().map(|b| b.len() as u64).sum::<u64>();
    assert!(before < ew && before + 65072 > ew, "{before} {ew}");
}

/// tgt has no early warning: the WRITE that crosses the capacity answers
/// NO SENSE + EOM 00/00 with the data written, and so does every WRITE
/// after it. That EOM is the signal; the trailer and filemark follow.
#[test]
fn end_of_medium_without_early_warning_is_the_signal_as_on_tgt() {
    let (_d, cat) = catalog();
    let (first, v1) = cartridge(64 << 20, Some("TGT001"));
    let (second, v2) = cartridge(64 << 20, Some("TGT002"));
    let mut shelf = Shelf {
        scratch: vec![(v2, second)],
        ..Default::default()
    };
    let mut t = drive(first, Some(1 << 20));
    let mut src = disk("SRC", 4096); // 2 MiB
    let s = span(&mut src, &mut t, &mut shelf, &cat).unwrap();
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(row.parts.len(), 2);
    assert_eq!(row.parts[0].volume, v1);
    // Part 1: the records up to the one past 1 MiB, then the trailer.
    let (_, m) = shelf.by_volume[0].clone();
    let mut l = MemTape::empty("X", "X");
    l.load_medium(m, Default::default()).unwrap();
    let objs = l.objects();
    let part1: Vec<_> = objs
        .split(|o| *o == TapeObject::Filemark)
        .nth(1)
        .unwrap()
        .to_vec();
    let TapeObject::Block(tb) = part1.last().unwrap() else {
        panic!()
    };
    let tr = SetTrailer::decode(tb).unwrap();
    assert_eq!((tr.stop, tr.part), (StopReason::CONTINUES, 1));
    assert_eq!(tr.records, row.parts[0].records);
    assert_eq!(
        row.parts[0].records, 17,
        "16 records fit 1 MiB, the 17th crosses it"
    );
}

/// The pool is empty when the set needs its next volume: the set fails
/// with a clear error, part 1 stays closed by its trailer and filemark,
/// and the sets before it on the cartridge are intact.
#[test]
fn an_empty_pool_fails_the_set_cleanly() {
    let (_d, cat) = catalog();
    let (first, _) = cartridge(2 << 20, Some("EMP001"));
    let mut shelf = Shelf::default();
    let mut t = drive(first, None);
    let mut small = disk("SMALL", 256);
    let before = span(&mut small, &mut t, &mut shelf, &cat).unwrap();
    let mut src = disk("SRC", 6144);
    let e = span(&mut src, &mut t, &mut shelf, &cat).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, EngineError::NoNextVolume { part: 2, .. }),
        "{e}"
    );
    assert!(text.contains("EMP001 is full"), "{text}");
    assert!(text.contains("no scratch cartridge"), "{text}");
    let sets = cat.sets().unwrap();
    assert_eq!(sets[0].outcome.state, SetState::Complete);
    assert_eq!(sets[1].outcome.state, SetState::Failed);
    assert!(sets[1]
        .outcome
        .error
        .as_deref()
        .unwrap()
        .contains("no scratch"));
    // The tape: label, the first set, the failed set's part closed by its
    // trailer and one filemark (no empty file after it).
    let objs = t.scsi.transport().lu.lu.objects().to_vec();
    let files: Vec<_> = objs.split(|o| *o == TapeObject::Filemark).collect();
    assert_eq!(
        files.len(),
        4,
        "label, set, part, and nothing after the last filemark"
    );
    assert!(files[3].is_empty());
    let TapeObject::Block(tb) = files[2].last().unwrap() else {
        panic!()
    };
    assert_eq!(SetTrailer::decode(tb).unwrap().stop, StopReason::CONTINUES);
    // The first set still restores.
    let row = cat.set(&before.set.set_id.to_string()).unwrap();
    let mut dst = disk("DST", 256);
    let opts = RestoreOptions {
        target_lba: Some(Lba(0)),
        queue_depth: 2,
        overwrite_source: false,
    };
    restore_spanning(&mut t, None, &row, &mut dst, &opts, &NoProgress).unwrap();
    assert!(dst.scsi.transport().lu.data() == small.scsi.transport().lu.data());
}

/// The continuation cartridge holds another program's tape: it is
/// refused before anything is written to it, and the set fails.
#[test]
fn a_continuation_cartridge_with_a_foreign_label_is_refused_untouched() {
    let (_d, cat) = catalog();
    let (first, _) = cartridge(2 << 20, Some("FOR001"));
    let (foreign, _) = cartridge(2 << 20, None);
    let foreign_before = {
        let mut l = MemTape::empty("X", "X");
        l.load_medium(foreign.clone(), Default::default()).unwrap();
        l.objects().to_vec()
    };
    let mut shelf = Shelf {
        scratch: vec![(Uuid::nil(), foreign)],
        ..Default::default()
    };
    let mut t = drive(first, None);
    let mut src = disk("SRC", 6144);
    let e = span(&mut src, &mut t, &mut shelf, &cat).unwrap_err();
    assert!(matches!(e, EngineError::NoNextVolume { .. }), "{e}");
    assert!(e.to_string().contains("foreign"), "{e}");
    assert_eq!(cat.sets().unwrap()[0].outcome.state, SetState::Failed);
    // The foreign cartridge, still in the drive, is as it was.
    assert_eq!(t.scsi.transport().lu.lu.objects(), &foreign_before[..]);
}

/// A version-1 tape, written by hand from FORMAT.md version 1 (not by
/// this build): catalog rebuild finds its set complete, verify and restore
/// read it, and the data is the known payload.
#[test]
fn a_version_1_tape_still_restores() {
    let text = include_str!("expected/v1_set.hex");
    let (blank, _) = cartridge(1 << 20, Some("SCRATCH"));
    let mut t = drive(blank, None);
    t.rewind().unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match line.trim() {
            "-" => t.write_filemarks(1).unwrap(),
            hex => {
                let b = hex::decode(hex).unwrap();
                assert_eq!(&b[8..10], &[0, 1], "a version-1 block");
                t.write_block(b).unwrap();
            }
        }
    }
    let r = rebuild(&mut t, &NoProgress).unwrap();
    assert_eq!(r.volume.name, "GOLD01");
    assert_eq!(r.sets.len(), 1);
    assert!(r.parts.is_empty());
    let (_d, cat) = catalog();
    cat.replace_volume(&r.volume, &r.sets, &[], &r.parts)
        .unwrap();
    let row = cat.set("5e7e0000-0000-4000-8000-000000000002").unwrap();
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(
        row.outcome.digest.as_deref(),
        Some("2bce1ba628720664be4b9fdd77aae0678e5f0f3f02fc6ff641ec879094f6a404")
    );
    verify_spanning::<_, MemDiskT>(&mut t, None, &row, None, &NoProgress).unwrap();
    let mut dst = disk("DST", 2);
    let opts = RestoreOptions {
        target_lba: Some(Lba(0)),
        queue_depth: 1,
        overwrite_source: false,
    };
    restore_spanning(&mut t, None, &row, &mut dst, &opts, &NoProgress).unwrap();
    let want: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(dst.scsi.transport().lu.data(), &want[..]);
}
