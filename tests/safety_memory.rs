//! Keeping a backup from destroying data, over the in-memory disk and tape
//! (whose READ POSITION is true, unlike tgt's): a tape moved under a
//! running backup, a backup interrupted by a signal, and a partial-range
//! restore that goes back to its own blocks but not over its own source.

mod common;
use common::memory::{backup_options as opts, temp_catalog as catalog};
use nix::sys::signal::Signal;
use sanmover::catalog::{Catalog, SetState};
use sanmover::device::{Disk, Tape};
use sanmover::engine::host::backup;
use sanmover::engine::interrupt::StopFlag;
use sanmover::engine::progress::NoProgress;
use sanmover::engine::restore::{restore, verify, RestoreOptions};
use sanmover::engine::volume::{rebuild, write_label};
use sanmover::engine::EngineError;
use sanmover::format::{classify, BlockKind, SetTrailer, StopReason};
use sanmover::lu::{Completion, LogicalUnit, MemDisk, MemTape, TapeObject};
use sanmover::scsi::{BlockCount, Lba};
use sanmover::transport::memory::MemoryTransport;

type MemDiskT = MemoryTransport<MemDisk>;

/// The in-memory tape, and what a second session does to it while a
/// backup writes: rewind it, or deliver a signal, after so many WRITE(6)s.
struct Meddled {
    tape: MemTape,
    writes: u32,
    rewind_after: Option<u32>,
    signal_after: Option<(u32, StopFlag)>,
}

impl LogicalUnit for Meddled {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        let c = self.tape.execute(cdb, data_out, data_in);
        if cdb[0] == 0x0a {
            self.writes += 1;
            if self.rewind_after == Some(self.writes) {
                // REWIND, as another initiator's session would send it.
                self.tape.execute(&[0x01, 0, 0, 0, 0, 0], &[], &mut []);
            }
            if let Some((n, flag)) = self.signal_after {
                if n == self.writes {
                    flag.raise(Signal::SIGINT);
                }
            }
        }
        c
    }
}

type MeddledT = MemoryTransport<Meddled>;

fn disk(serial: &str, blocks: u64) -> Disk<MemDiskT> {
    let mut d = MemDisk::new(serial, blocks, 512);
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ blocks ^ serial.len() as u64;
    for b in d.data_mut().iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Disk::open(MemoryTransport::new(serial, d)).unwrap()
}

fn tape() -> Tape<MeddledT> {
    let lu = Meddled {
        tape: MemTape::new("T", 1 << 30),
        writes: 0,
        rewind_after: None,
        signal_after: None,
    };
    let mut t = Tape::open(MemoryTransport::new("tape", lu)).unwrap();
    write_label(&mut t, "MEM001").unwrap();
    t
}

/// Arm the meddling from the next WRITE(6) on.
fn arm(t: &mut Tape<MeddledT>, rewind: Option<u32>, signal: Option<(u32, StopFlag)>) {
    let lu = &mut t.scsi.transport().lu;
    lu.writes = 0;
    lu.rewind_after = rewind;
    lu.signal_after = signal;
}

fn objects(t: &mut Tape<MeddledT>) -> Vec<TapeObject> {
    t.scsi.transport().lu.tape.objects().to_vec()
}

fn states(cat: &Catalog) -> Vec<SetState> {
    cat.sets()
        .unwrap()
        .iter()
        .map(|s| s.outcome.state)
        .collect()
}

#[test]
fn a_tape_rewound_under_a_running_backup_fails_it_and_nothing_is_marked_complete() {
    let (_d, cat) = catalog();
    let mut t = tape();
    let mut first_src = disk("FIRST", 1024);
    backup(&mut first_src, &mut t, &cat, &opts(), &NoProgress).unwrap();

    // The header and 4 records, then another session rewinds the drive.
    let mut src = disk("SRC", 4096);
    arm(&mut t, Some(5), None);
    let e = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap_err();
    let EngineError::TapeMoved {
        expected, found, ..
    } = &e
    else {
        panic!("expected TapeMoved, got {e}");
    };
    assert!(found.unwrap() < *expected, "{e}");
    assert!(e.to_string().contains("another session"), "{e}");
    // Nothing marked complete: the set is failed, with the reason.
    assert_eq!(states(&cat), vec![SetState::Complete, SetState::Failed]);
    let failed = &cat.sets().unwrap()[1];
    assert!(
        failed.outcome.error.as_deref().unwrap().contains("moved"),
        "{failed:?}"
    );
    // The writes after the rewind landed at the start (that is the damage
    // the lock prevents); no trailer and no filemark followed them.
    let objs = objects(&mut t);
    assert!(!objs.is_empty());
    for o in &objs {
        match o {
            TapeObject::Filemark => panic!("a filemark was written after the tape moved"),
            TapeObject::Block(b) => assert_eq!(classify(b), BlockKind::Data),
        }
    }
    assert_eq!(
        t.position().block,
        None,
        "the tracked position is forgotten"
    );
}

#[test]
fn the_position_check_passes_when_nothing_moves_the_tape() {
    let (_d, cat) = catalog();
    let mut t = tape();
    // The in-memory tape's READ POSITION is trusted: the guard is active.
    assert!(t.drive_block().unwrap().is_some());
    let mut src = disk("SRC", 2048);
    let s = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    verify::<_, MemDiskT>(&mut t, &row, Some(&mut src), &NoProgress).unwrap();
}

#[test]
fn an_interrupted_backup_is_closed_recorded_and_the_next_one_appends_after_it() {
    let (_d, cat) = catalog();
    let mut t = tape();
    let mut first_src = disk("FIRST", 1024);
    let first = backup(&mut first_src, &mut t, &cat, &opts(), &NoProgress).unwrap();

    // SIGINT arrives while record 2 is being written (header + 3 writes).
    let flag = StopFlag::new_owned();
    arm(&mut t, None, Some((4, flag)));
    let mut src = disk("SRC", 8192);
    let mut o = opts();
    o.set.stop = flag;
    let e = backup(&mut src, &mut t, &cat, &o, &NoProgress).unwrap_err();
    let EngineError::Interrupted {
        set,
        bytes,
        signal,
        trailer,
    } = e
    else {
        panic!("expected Interrupted, got {e}");
    };
    assert_eq!((signal, trailer), (Signal::SIGINT, true));
    // The record in hand was finished: 3 records of 127 blocks.
    assert_eq!(bytes, 3 * 127 * 512);
    let row = cat.set(&set.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Interrupted);
    assert_eq!((row.outcome.records, row.outcome.bytes), (3, bytes));
    // On tape: the trailer marked incomplete and interrupted, a filemark.
    let objs = objects(&mut t);
    assert_eq!(objs.last(), Some(&TapeObject::Filemark));
    let TapeObject::Block(b) = &objs[objs.len() - 2] else {
        panic!("no trailer before the filemark");
    };
    let tr = SetTrailer::decode(b).unwrap();
    assert_eq!(
        (tr.complete, tr.stop, tr.bytes),
        (false, StopReason::INTERRUPTED, bytes)
    );

    // The next backup goes after it; the sets before and after verify.
    arm(&mut t, None, None);
    let next = backup(&mut first_src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    assert_eq!(next.set.tape_file, row.info.file_number + 1);
    for id in [first.set.set_id, next.set.set_id] {
        let r = cat.set(&id.to_string()).unwrap();
        verify::<_, MemDiskT>(&mut t, &r, Some(&mut first_src), &NoProgress).unwrap();
    }
    // Verify says what the interrupted set is, and a rebuild agrees.
    let v = verify::<_, MemDiskT>(&mut t, &row, None, &NoProgress).unwrap_err();
    assert!(v.to_string().contains("interrupted"), "{v}");
    let scanned = rebuild(&mut t, &NoProgress).unwrap();
    let again = scanned.sets.iter().find(|s| s.info.id == set).unwrap();
    assert_eq!(again.outcome.state, SetState::Interrupted);
    assert_eq!(again.outcome.bytes, bytes);
    assert_eq!(again.outcome.digest, row.outcome.digest);
}

#[test]
fn a_partial_range_restores_to_its_own_lba_and_not_over_its_source_unless_allowed() {
    let (_d, cat) = catalog();
    let mut t = tape();
    let mut src = disk("SRC", 4096);
    let mut o = opts();
    o.set.lba = Some(Lba(1000));
    o.set.blocks = Some(BlockCount(8));
    let s = backup(&mut src, &mut t, &cat, &o, &NoProgress).unwrap();
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    let original = src.scsi.transport().lu.data().to_vec();
    let range = 1000 * 512..1008 * 512;

    // Default: the set's own LBA on another LU; the blocks around stay.
    let mut dst = disk("DST", 4096);
    dst.scsi.transport().lu.data_mut().fill(0x5a);
    let default = RestoreOptions {
        queue_depth: 4,
        ..Default::default()
    };
    let r = restore(&mut t, &row, &mut dst, &default, &NoProgress).unwrap();
    assert_eq!(r.target_lba, Some(Lba(1000)));
    let got = dst.scsi.transport().lu.data().to_vec();
    assert_eq!(&got[range.clone()], &original[range.clone()]);
    assert!(got[..range.start].iter().all(|&b| b == 0x5a));
    assert!(got[range.end..].iter().all(|&b| b == 0x5a));

    // Over its own source: refused, naming the blocks; nothing written.
    src.scsi.transport().lu.data_mut()[range.clone()].fill(0);
    let damaged = src.scsi.transport().lu.data().to_vec();
    let e = restore(&mut t, &row, &mut src, &default, &NoProgress).unwrap_err();
    assert!(matches!(e, EngineError::Refused(_)), "{e}");
    assert!(e.to_string().contains("LBA 1000..=1007"), "{e}");
    assert!(e.to_string().contains("--force"), "{e}");
    assert!(src.scsi.transport().lu.data() == damaged.as_slice());
    // Allowed: the source gets its blocks back, and only those.
    let force = RestoreOptions {
        overwrite_source: true,
        ..default
    };
    restore(&mut t, &row, &mut src, &force, &NoProgress).unwrap();
    assert!(src.scsi.transport().lu.data() == original.as_slice());
}
