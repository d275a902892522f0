//! Tape control against tgt's SSC emulation: records written, filemarks,
//! rewind, fsf, and every byte read back; filemark and EOD seen as sense.

mod common;
use common::{reset_tape, rig, sanmover, tape_lock};

use sanmover::device::tape::{ReadOutcome, TrackedPosition};
use sanmover::device::Tape;
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;

fn open_tape() -> Tape<IscsiTransport> {
    let url = IscsiUrl::parse(rig().tape()).unwrap();
    let t = IscsiTransport::connect(&url, &IscsiOptions::default()).unwrap();
    Tape::open(t).unwrap()
}

/// A record whose bytes say which record it is.
fn record(file: u8, idx: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ file.wrapping_mul(7) ^ idx)
        .collect()
}

const MAX: usize = 1 << 20;

fn read(t: &mut Tape<IscsiTransport>) -> (ReadOutcome, Vec<u8>) {
    let (o, mut b) = t.read_block(vec![0; MAX]).unwrap();
    if let ReadOutcome::Block(n) = o {
        b.truncate(n);
    }
    (o, b)
}

#[test]
fn write_filemarks_rewind_fsf_and_read_back_exactly() {
    let _g = tape_lock();
    reset_tape();
    let mut t = open_tape();
    t.rewind().unwrap();
    let files: [&[usize]; 2] = [&[1000, 70_000, 5, 262_144], &[4096, 1]];
    for (f, sizes) in files.iter().enumerate() {
        for (i, &n) in sizes.iter().enumerate() {
            let w = t.write_block(record(f as u8, i as u8, n)).unwrap();
            assert!(!w.early_warning);
        }
        t.write_filemarks(1).unwrap();
    }
    assert_eq!(
        t.position(),
        TrackedPosition {
            file: Some(2),
            block: Some(0)
        }
    );

    t.rewind().unwrap();
    for (f, sizes) in files.iter().enumerate() {
        for (i, &n) in sizes.iter().enumerate() {
            let (o, data) = read(&mut t);
            assert_eq!(o, ReadOutcome::Block(n), "file {f} record {i}");
            assert!(
                data == record(f as u8, i as u8, n),
                "file {f} record {i} differs"
            );
        }
        assert_eq!(read(&mut t).0, ReadOutcome::Filemark, "after file {f}");
    }
    assert_eq!(read(&mut t).0, ReadOutcome::EndOfData);
    // EOD is sticky on tgt: asking again says the same.
    assert_eq!(read(&mut t).0, ReadOutcome::EndOfData);

    // rewind + fsf 1 lands on the first record of file 1.
    t.rewind().unwrap();
    t.space_filemarks(1).unwrap();
    let (o, data) = read(&mut t);
    assert_eq!(o, ReadOutcome::Block(4096));
    assert!(data == record(1, 0, 4096));
    assert_eq!(
        t.position(),
        TrackedPosition {
            file: Some(1),
            block: Some(1)
        }
    );

    // A buffer smaller than the block: an error naming the real size,
    // never short data presented as the block.
    t.seek_file(0).unwrap();
    t.space_blocks(1).unwrap();
    let e = t.read_block(vec![0; 1000]).unwrap_err();
    assert!(e.to_string().contains("70000 bytes"), "{e}");
}

#[test]
fn cli_tape_control_with_decoded_filemark_and_eod() {
    let _g = tape_lock();
    reset_tape();
    let r = rig();
    let tape = r.tape();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.bin");
    std::fs::write(&rec, record(9, 9, 3000)).unwrap();

    sanmover(["tape", tape, "rewind"]).ok();
    // WRITE(6) variable, 3000 bytes (0x000bb8), data from a file.
    sanmover([
        "raw",
        tape,
        "0a 00 00 0b b8 00",
        "--send",
        rec.to_str().unwrap(),
    ])
    .ok();
    sanmover(["tape", tape, "weof", "1"]).ok();
    sanmover(["tape", tape, "rewind"]).ok();

    // READ(6) variable 4096: a short block, ILI with INFORMATION 1096.
    let short = sanmover(["--json", "raw", tape, "08 00 00 10 00 00", "--in", "4096"]);
    assert_eq!(short.code, 20, "{}", short.stderr);
    let v = short.json();
    assert_eq!(v["sense"]["ili"], true, "{v}");
    assert_eq!(v["sense"]["information"], 1096, "{v}");

    // Next: the filemark, decoded.
    let fm = sanmover(["raw", tape, "08 00 00 10 00 00", "--in", "4096"]);
    assert_eq!(fm.code, 20, "{}", fm.stderr);
    assert!(fm.stdout.contains("FILEMARK DETECTED"), "{}", fm.stdout);
    assert!(fm.stdout.contains("FILEMARK"), "{}", fm.stdout);

    // Then end of data: BLANK CHECK on tgt.
    let eod = sanmover(["raw", tape, "08 00 00 10 00 00", "--in", "4096"]);
    assert_eq!(eod.code, 8, "{}", eod.stderr);
    assert!(eod.stdout.contains("BLANK CHECK"), "{}", eod.stdout);

    // fsf past the end: NO SENSE 00/05, reported and non-zero.
    sanmover(["tape", tape, "rewind"]).ok();
    let past = sanmover(["tape", tape, "fsf", "3"]);
    assert_ne!(past.code, 0);
    assert!(
        past.stderr.contains("END-OF-DATA DETECTED"),
        "{}",
        past.stderr
    );

    sanmover(["tape", tape, "rewind"]).ok();
    sanmover(["tape", tape, "fsf", "1"]).ok();
    sanmover(["tape", tape, "eod"]).ok();

    let st = sanmover(["--json", "tape", tape, "status"]).ok().json();
    assert_eq!(st["vendor"], "IET");
    assert_eq!(st["position_trusted"], false);
    assert!(
        st["limits"]["max_block_length"].as_u64().unwrap() >= 65536,
        "{st}"
    );

    let tell = sanmover(["tape", tape, "tell"]).ok();
    assert!(tell.stdout.contains("not trusted"), "{}", tell.stdout);

    let lim = sanmover(["--json", "tape", tape, "limits"]).ok().json();
    assert_eq!(lim["min_block_length"], 4, "{lim}");

    // setblk round trip through MODE SELECT / MODE SENSE.
    sanmover(["tape", tape, "setblk", "1024"]).ok();
    let st = sanmover(["--json", "tape", tape, "status"]).ok().json();
    assert_eq!(st["block_length"], 1024, "{st}");
    sanmover(["tape", tape, "setblk", "0"]).ok();
    let st = sanmover(["--json", "tape", tape, "status"]).ok().json();
    assert_eq!(st["block_length"], 0, "{st}");
}
