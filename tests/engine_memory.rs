//! The host-driven engine over the in-memory disk and tape: end of medium,
//! a disk that dies mid-read, and restore refusing what fails a check.
//! These conditions are hard to produce on tgt on demand.

mod common;
use common::memory::{backup_options as opts, temp_catalog as catalog};
use sanmover::catalog::SetState;
use sanmover::device::{Disk, Tape};
use sanmover::engine::host::backup;
use sanmover::engine::progress::NoProgress;
use sanmover::engine::restore::{
    restore, verify, verify_against, Compare, CompareWith, RestoreOptions,
};
use sanmover::engine::volume::write_label;
use sanmover::engine::{Corruption, EngineError};
use sanmover::format::{decode_record, encode_record, DigestAlgorithm, FormatError, SetHeader};
use sanmover::lu::{MemDisk, MemTape, TapeObject};
use sanmover::scsi::{BlockCount, Lba};
use sanmover::transport::memory::MemoryTransport;
use sha2::Digest as _;

type MemDiskT = MemoryTransport<MemDisk>;
type MemTapeT = MemoryTransport<MemTape>;

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

fn tape(capacity: u64, early_warning: u64) -> Tape<MemTapeT> {
    let t = MemTape::new("T", capacity).with_early_warning(early_warning);
    let mut t = Tape::open(MemoryTransport::new("tape", t)).unwrap();
    write_label(&mut t, "MEM001").unwrap();
    t
}

#[test]
fn backup_restore_round_trip_on_memory_devices() {
    let (_d, cat) = catalog();
    let mut src = disk("SRC", 4096);
    let mut t = tape(1 << 30, 0);
    let s = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    assert_eq!(s.set.bytes, 4096 * 512);
    assert_eq!(s.set.tape_file, 1);
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    assert_eq!(row.outcome.state, SetState::Complete);

    verify::<_, MemDiskT>(&mut t, &row, Some(&mut src), &NoProgress).unwrap();
    let mut dst = disk("DST", 4096);
    dst.scsi.transport().lu.data_mut().fill(0);
    restore(&mut t, &row, &mut dst, &at(0), &NoProgress).unwrap();
    assert!(dst.scsi.transport().lu.data() == src.scsi.transport().lu.data());
}

#[test]
fn end_of_medium_closes_the_set_as_incomplete() {
    let (_d, cat) = catalog();
    let mut src = disk("SRC", 8192); // 4 MiB
    let mut t = tape(3 << 20, 1 << 20); // early warning after 2 MiB
    let e = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap_err();
    assert!(matches!(e, EngineError::TapeFull { .. }), "{e}");
    assert!(e.to_string().contains("incomplete"), "{e}");
    let sets = cat.sets().unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].outcome.state, SetState::Incomplete);
    // The trailer and filemark made it to tape after early warning.
    let objs = t.scsi.transport().lu.objects();
    assert_eq!(objs.last(), Some(&TapeObject::Filemark));
    // Restore refuses an incomplete set.
    let mut dst = disk("DST", 8192);
    let e = restore(&mut t, &sets[0], &mut dst, &at(0), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("incomplete"), "{e}");
}

#[test]
fn a_disk_that_dies_mid_read_fails_the_set_and_the_next_backup_appends_after_it() {
    let (_d, cat) = catalog();
    let mut t = tape(1 << 30, 0);
    let mut ok_src = disk("OK", 1024);
    let first = backup(&mut ok_src, &mut t, &cat, &opts(), &NoProgress).unwrap();

    let mut dying = disk("DYING", 8192);
    // INQUIRY, capacity and VPD are done; die a few reads in.
    dying.scsi.transport().die_after = Some(10);
    let e = backup(&mut dying, &mut t, &cat, &opts(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("stopped answering"), "{e}");
    let states: Vec<SetState> = cat
        .sets()
        .unwrap()
        .iter()
        .map(|s| s.outcome.state)
        .collect();
    assert_eq!(states, vec![SetState::Complete, SetState::Failed]);
    // The tape was fine, so the failed set's file was closed at once.
    assert_eq!(
        t.scsi.transport().lu.objects().last(),
        Some(&TapeObject::Filemark)
    );

    // The failed set's file is closed by the next backup, which goes after it.
    let next = backup(&mut ok_src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    assert!(next.set.tape_file > first.set.tape_file + 1, "{next:?}");
    let row = cat.set(&first.set.set_id.to_string()).unwrap();
    verify::<_, MemDiskT>(&mut t, &row, None, &NoProgress).unwrap();
}

#[test]
fn restore_refuses_a_target_too_small_or_with_another_block_size() {
    let (_d, cat) = catalog();
    let mut src = disk("SRC", 2048);
    let mut t = tape(1 << 30, 0);
    let s = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    let mut small = disk("SMALL", 1024);
    let e = restore(&mut t, &row, &mut small, &at(0), &NoProgress).unwrap_err();
    assert!(matches!(e, EngineError::Refused(_)), "{e}");
    let mut big = disk("BIG", 4096);
    let e = restore(&mut t, &row, &mut big, &at(3000), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("the set needs 2048"), "{e}");
    let mut other = Disk::open(MemoryTransport::new("4K", MemDisk::new("4K", 4096, 4096))).unwrap();
    let e = restore(&mut t, &row, &mut other, &at(0), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("block size"), "{e}");
}

/// Restore options: to `lba`, 4 writes in flight.
fn at(lba: u64) -> RestoreOptions {
    RestoreOptions {
        target_lba: Some(Lba(lba)),
        queue_depth: 4,
        overwrite_source: false,
    }
}

/// Block `at` of the memory tape: 0 the label, 1 its filemark, 2 the first
/// set's header, 3 its record 0, ...
fn block(t: &mut Tape<MemTapeT>, at: usize) -> &mut Vec<u8> {
    match &mut t.scsi.transport().lu.objects_mut()[at] {
        TapeObject::Block(b) => b,
        TapeObject::Filemark => panic!("object {at} is a filemark"),
    }
}

#[test]
fn each_digest_algorithm_is_recorded_computed_and_checked() {
    for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Blake3] {
        let (_d, cat) = catalog();
        let mut src = disk("SRC", 2048);
        let mut t = tape(1 << 30, 0);
        let mut o = opts();
        o.set.digest = alg;
        let s = backup(&mut src, &mut t, &cat, &o, &NoProgress).unwrap();
        // The digest is of the source bytes, by the chosen algorithm.
        let data = src.scsi.transport().lu.data().to_vec();
        let want = match alg {
            DigestAlgorithm::Sha256 => hex::encode(sha2::Sha256::digest(&data)),
            DigestAlgorithm::Blake3 => blake3::hash(&data).to_hex().to_string(),
        };
        assert_eq!(s.set.digest_algorithm, alg);
        assert_eq!(s.set.digest, want, "{alg}");
        // The set header on tape names it, and so does the catalog.
        assert_eq!(SetHeader::decode(block(&mut t, 2)).unwrap().digest, alg);
        let row = cat.set(&s.set.set_id.to_string()).unwrap();
        assert_eq!(row.info.digest_algorithm, alg.name());
        assert_eq!(row.outcome.digest.as_deref(), Some(want.as_str()));
        let v = verify::<_, MemDiskT>(&mut t, &row, None, &NoProgress).unwrap();
        assert_eq!(
            (v.digest_algorithm, v.digest.as_str()),
            (alg, want.as_str())
        );

        // A payload changed and its record CRC made to match: only the set
        // digest can tell, and it does, naming the algorithm.
        let rec = block(&mut t, 4);
        let (h, payload) = decode_record(rec).unwrap();
        let mut payload = payload.to_vec();
        payload[100] ^= 0x40;
        let mut forged = Vec::new();
        encode_record(h.set_id, h.seq, &payload, &mut forged);
        *rec = forged;
        let e = verify::<_, MemDiskT>(&mut t, &row, None, &NoProgress).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{alg} digest of the data is")),
            "{msg}"
        );
        assert!(msg.contains("the trailer says"), "{msg}");
        let mut dst = disk("DST", 2048);
        let e = restore(&mut t, &row, &mut dst, &at(0), &NoProgress).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("{alg} digest of the data is")),
            "{e}"
        );
    }
}

#[test]
fn restore_names_a_damaged_record_and_writes_only_what_came_before() {
    let (_d, cat) = catalog();
    let mut src = disk("SRC", 2048);
    let mut t = tape(1 << 30, 0);
    let s = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    // Record 5 (object 8) loses a bit; its CRC no longer matches.
    block(&mut t, 8)[700] ^= 0x01;
    let mut dst = disk("DST", 2048);
    dst.scsi.transport().lu.data_mut().fill(0);
    let e = restore(&mut t, &row, &mut dst, &at(0), &NoProgress).unwrap_err();
    assert!(
        matches!(e, EngineError::Corrupt { seq: Some(5), .. }),
        "{e}"
    );
    assert!(e.to_string().contains("CRC32C mismatch"), "{e}");
    // Records 0..5 were written before the check failed; nothing after.
    let per = 64 * 1024 - 512; // payload of a 64 KiB block, whole sectors
    let (d, s) = (
        dst.scsi.transport().lu.data(),
        src.scsi.transport().lu.data(),
    );
    assert!(d[..5 * per] == s[..5 * per]);
    assert!(d[5 * per..].iter().all(|&b| b == 0));
}

#[test]
fn a_catalog_that_names_another_digest_than_the_tape_is_refused() {
    let (_d, cat) = catalog();
    let mut src = disk("SRC", 1024);
    let mut t = tape(1 << 30, 0);
    let s = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    let mut row = cat.set(&s.set.set_id.to_string()).unwrap();
    assert_eq!(row.info.digest_algorithm, "blake3");
    row.info.digest_algorithm = "sha256".into();
    let e = verify::<_, MemDiskT>(&mut t, &row, None, &NoProgress).unwrap_err();
    assert!(
        e.to_string()
            .contains("names a blake3 digest, the catalog recorded sha256"),
        "{e}"
    );
}

#[test]
fn records_out_of_place_fail_format_s_own_checks_with_typed_reasons() {
    let (_d, cat) = catalog();
    let mut src = disk("SRC", 2048);
    let mut t = tape(1 << 30, 0);
    let first = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    let second = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    let row = cat.set(&first.set.set_id.to_string()).unwrap();
    // Records 3 and 4 of the first set (objects 6 and 7) change places.
    t.scsi.transport().lu.objects_mut().swap(6, 7);
    let e = verify::<_, MemDiskT>(&mut t, &row, None, &NoProgress).unwrap_err();
    assert!(
        matches!(
            &e,
            EngineError::Corrupt {
                seq: Some(3),
                reason: Corruption::Record(FormatError::OutOfSequence {
                    expected: 3,
                    found: 4
                }),
                ..
            }
        ),
        "{e}"
    );
    // Record 2 of the second set stands in for record 2 of the first.
    // Objects: label, filemark, then per set its header, records, trailer
    // and filemark.
    let second_header = 2 + 1 + row.outcome.records as usize + 2;
    let objs = t.scsi.transport().lu.objects_mut();
    let theirs = objs[second_header + 1 + 2].clone();
    objs[2 + 1 + 2] = theirs;
    let e = verify::<_, MemDiskT>(&mut t, &row, None, &NoProgress).unwrap_err();
    let want = (first.set.set_id, second.set.set_id);
    assert!(
        matches!(
            &e,
            EngineError::Corrupt {
                seq: Some(2),
                reason: Corruption::Record(FormatError::WrongSet { expected, found }),
                ..
            } if (*expected, *found) == want
        ),
        "{e}"
    );
}

#[test]
fn a_set_header_that_cannot_be_encoded_is_refused_before_the_catalog_or_the_tape() {
    let (_d, cat) = catalog();
    let mut src = disk("SRC", 256);
    let mut t = tape(1 << 30, 0);
    let before = t.scsi.transport().lu.objects().to_vec();
    let mut o = opts();
    // A framed record holds at most 64 KiB (FORMAT.md "Common frame").
    o.set.label = "x".repeat(70_000);
    let e = backup(&mut src, &mut t, &cat, &o, &NoProgress).unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::Format {
                what: "set header",
                ..
            }
        ),
        "{e}"
    );
    // No set was opened, and nothing was written (no empty file).
    assert!(cat.sets().unwrap().is_empty());
    assert!(t.scsi.transport().lu.objects() == &before[..]);
}

#[test]
fn verify_against_a_target_finds_a_restored_copy_equal_and_a_changed_one_not() {
    let (_d, cat) = catalog();
    let mut src = disk("SRC", 4096);
    let mut t = tape(1 << 30, 0);
    let mut o = opts();
    o.set.lba = Some(Lba(1000));
    o.set.blocks = Some(BlockCount(512));
    let s = backup(&mut src, &mut t, &cat, &o, &NoProgress).unwrap();
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    let mut dst = disk("DST", 2048);
    dst.scsi.transport().lu.data_mut().fill(0);
    restore(&mut t, &row, &mut dst, &at(100), &NoProgress).unwrap();
    fn target(disk: &mut Disk<MemDiskT>, lba: u64) -> Compare<'_, MemDiskT> {
        Compare {
            disk,
            lba: Lba(lba),
            with: CompareWith::Target,
        }
    }
    let v = verify_against(&mut t, &row, Some(target(&mut dst, 100)), &NoProgress).unwrap();
    assert_eq!(v.compared_with_target, Some(512 * 512));
    assert_eq!(v.compared_with_source, None);
    // At the set's own LBA the target holds zeros: the first block differs.
    let e = verify_against(&mut t, &row, Some(target(&mut dst, 1000)), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("(LBA 1000)"), "{e}");
    // One byte changed in the copy, 300 blocks in: named there.
    dst.scsi.transport().lu.data_mut()[(400 * 512 + 9) as usize] ^= 1;
    let e = verify_against(&mut t, &row, Some(target(&mut dst, 100)), &NoProgress).unwrap_err();
    assert!(matches!(e, EngineError::Corrupt { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("at byte {} (LBA 400)", 300 * 512 + 9)),
        "{e}"
    );
    // A target too small for the set there is refused before the tape moves.
    let e = verify_against(&mut t, &row, Some(target(&mut dst, 1800)), &NoProgress).unwrap_err();
    assert!(matches!(e, EngineError::Refused(_)), "{e}");
}

/// A drive whose positions are true (the SSC unit of `sanmover vtl`):
/// each set's block address is recorded at backup, restore and verify
/// LOCATE there, and a wrong address is an error, never another set's data
/// restored.
#[test]
fn restore_locates_the_recorded_block_and_refuses_a_wrong_address() {
    let (_d, cat) = catalog();
    let mut t = tape(1 << 30, 0);
    let mut rows = Vec::new();
    for (i, blocks) in [1024u64, 2048, 512].into_iter().enumerate() {
        let mut src = disk(&format!("SRC{i}"), blocks);
        let s = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
        rows.push((cat.set(&s.set.set_id.to_string()).unwrap(), src));
    }
    // Label block + filemark, then each set: header, records, trailer,
    // filemark. The first set begins at logical object 2.
    let addrs: Vec<Option<u64>> = rows.iter().map(|(r, _)| r.info.tape_block).collect();
    assert_eq!(addrs[0], Some(2), "{addrs:?}");
    assert!(addrs[0] < addrs[1] && addrs[1] < addrs[2], "{addrs:?}");

    let (third, src) = &mut rows[2];
    let third = third.clone();
    let mut dst = disk("DST", 512);
    dst.scsi.transport().lu.data_mut().fill(0);
    restore(&mut t, &third, &mut dst, &at(0), &NoProgress).unwrap();
    assert!(dst.scsi.transport().lu.data() == src.scsi.transport().lu.data());
    verify::<_, MemDiskT>(&mut t, &rows[1].0, None, &NoProgress).unwrap();

    // The catalog wrong by one set: LOCATE lands on the second set.
    let mut wrong = third.clone();
    wrong.info.tape_block = addrs[1];
    let e = restore(&mut t, &wrong, &mut dst, &at(0), &NoProgress).unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::Corrupt {
                reason: Corruption::Misplaced { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("the header of set"), "{e}");
    // Into the middle of a set: no header there.
    wrong.info.tape_block = addrs[1].map(|b| b + 1);
    let e = verify::<_, MemDiskT>(&mut t, &wrong, None, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("no set header"), "{e}");
    // Without an address (a set recorded before schema V8): by SPACE.
    wrong.info.tape_block = None;
    verify::<_, MemDiskT>(&mut t, &wrong, None, &NoProgress).unwrap();
}

/// A tape whose READ POSITION answers as tgt's does once `stub` is set:
/// the same zeros every time, with BPU set and BOP clear (README.md,
/// "Tape targets"). Everything else is the true drive's.
struct StubPosition {
    tape: MemTape,
    stub: bool,
}

impl sanmover::lu::LogicalUnit for StubPosition {
    fn execute(
        &mut self,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> sanmover::lu::Completion {
        if self.stub && cdb.first() == Some(&0x34) {
            let n = data_in.len().min(20);
            data_in[..n].fill(0);
            if n > 0 {
                data_in[0] = 0x04; // BPU (SSC-4 7.7.2)
            }
            return sanmover::lu::Completion::good(n);
        }
        self.tape.execute(cdb, data_out, data_in)
    }
}

/// "Trusted" is decided from the drive's answers, whatever its INQUIRY
/// says: a drive whose READ POSITION stops counting is spaced to the set
/// (a recorded address is not used), and a backup on it records none.
#[test]
fn a_drive_whose_read_position_does_not_count_is_spaced_not_located() {
    let (_d, cat) = catalog();
    let lu = StubPosition {
        tape: MemTape::new("T", 1 << 30),
        stub: false,
    };
    let mut t = Tape::open(MemoryTransport::new("tape", lu)).unwrap();
    write_label(&mut t, "STUB01").unwrap();
    let mut rows = Vec::new();
    for i in 0..2 {
        let mut src = disk(&format!("SRC{i}"), 1024);
        let s = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
        rows.push((cat.set(&s.set.set_id.to_string()).unwrap(), src));
    }
    assert!(rows.iter().all(|(r, _)| r.info.tape_block.is_some()));

    // Positions no longer count: the second set is found by SPACE, so an
    // address that points at the first set does no harm.
    t.scsi.transport().lu.stub = true;
    let first_at = rows[0].0.info.tape_block;
    let (second, src) = &mut rows[1];
    let mut wrong = second.clone();
    wrong.info.tape_block = first_at;
    let mut dst = disk("DST", 1024);
    dst.scsi.transport().lu.data_mut().fill(0);
    restore(&mut t, &wrong, &mut dst, &at(0), &NoProgress).unwrap();
    assert!(dst.scsi.transport().lu.data() == src.scsi.transport().lu.data());

    let mut src = disk("SRC2", 512);
    let s = backup(&mut src, &mut t, &cat, &opts(), &NoProgress).unwrap();
    let row = cat.set(&s.set.set_id.to_string()).unwrap();
    assert_eq!(row.info.tape_block, None, "no address from a stub");
}
