//! Tape control, written once over the tape fixture (tests/common/drive.rs)
//! and run by tests/tgt_tape.rs on tgt's tape and a `sanmover vtl` drive,
//! and by tests/lio_tape_suites.rs on the TCMU tape in LIO:
//! records written, filemarks, rewind, fsf, and every byte read back;
//! filemark and end of data seen as sense. What differs between drives
//! is asked of the drive (READ POSITION, READ BLOCK LIMITS), not assumed.

use crate::common::connect;
use crate::common::drive::{Drive, TapeEnv};

use sanmover::device::tape::{ReadOutcome, TrackedPosition};
use sanmover::device::Tape;
use sanmover::transport::iscsi::IscsiTransport;

fn open_tape(env: &TapeEnv) -> Tape<IscsiTransport> {
    Tape::open(connect(&env.tape(), &env.who())).unwrap()
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

pub fn write_filemarks_rewind_fsf_and_read_back_exactly(env: TapeEnv) {
    let mut t = open_tape(&env);
    t.rewind().unwrap();
    let files: [&[usize]; 2] = [&[1000, 70_000, 5, 262_144], &[4096, 1]];
    for (f, sizes) in files.iter().enumerate() {
        for (i, &n) in sizes.iter().enumerate() {
            let w = t.write_block(record(f as u8, i as u8, n)).unwrap();
            assert!(!w.early_warning);
        }
        t.write_filemarks(1).unwrap();
    }
    let two = TrackedPosition {
        file: Some(2),
        block: Some(0),
    };
    assert_eq!(t.position(), two);

    t.rewind().unwrap();
    for (f, sizes) in files.iter().enumerate() {
        for (i, &n) in sizes.iter().enumerate() {
            let (o, data) = read(&mut t);
            assert_eq!(o, ReadOutcome::Block(n), "file {f} record {i}");
            assert!(data == record(f as u8, i as u8, n), "file {f} record {i}");
        }
        assert_eq!(read(&mut t).0, ReadOutcome::Filemark, "after file {f}");
    }
    assert_eq!(read(&mut t).0, ReadOutcome::EndOfData);
    // End of data stays where it is: asking again says the same.
    assert_eq!(read(&mut t).0, ReadOutcome::EndOfData);

    // rewind + fsf 1 lands on the first record of file 1.
    t.rewind().unwrap();
    t.space_filemarks(1).unwrap();
    let (o, data) = read(&mut t);
    assert_eq!(o, ReadOutcome::Block(4096));
    assert!(data == record(1, 0, 4096));
    let one = TrackedPosition {
        file: Some(1),
        block: Some(1),
    };
    assert_eq!(t.position(), one);

    // A drive that counts its position says so: file 0 is 4 blocks and a
    // filemark, so the second block of file 1 is logical object 6.
    let counted = t.drive_block().unwrap();
    match env.drive {
        Drive::Tgt => assert_eq!(counted, None, "tgt's READ POSITION is not trusted"),
        _ => assert_eq!(counted, Some(6)),
    }

    // A buffer smaller than the block: an error naming the real size,
    // never short data presented as the block.
    t.seek_file(0).unwrap();
    t.space_blocks(1).unwrap();
    let e = t.read_block(vec![0; 1000]).unwrap_err();
    assert!(e.to_string().contains("70000 bytes"), "{e}");
}

pub fn cli_tape_control_with_decoded_filemark_and_eod(env: TapeEnv) {
    let tape = env.tape();
    let rec = env.dir().join("rec.bin");
    std::fs::write(&rec, record(9, 9, 3000)).unwrap();
    let run = |args: &[&str]| env.run(args);

    run(&["tape", &tape, "rewind"]).ok();
    // WRITE(6) variable, 3000 bytes (0x000bb8), data from a file.
    let send = ["--send", rec.to_str().unwrap()];
    run(&[&["raw", &tape, "0a 00 00 0b b8 00"][..], &send[..]].concat()).ok();
    run(&["tape", &tape, "weof", "1"]).ok();
    run(&["tape", &tape, "rewind"]).ok();

    // READ(6) variable 4096: a short block, ILI with INFORMATION 1096.
    let read6 = ["raw", &tape, "08 00 00 10 00 00", "--in", "4096"];
    let short = run(&[&["--json"][..], &read6[..]].concat());
    assert_eq!(short.code, 20, "{}", short.stderr);
    let v = short.json();
    assert_eq!(v["sense"]["ili"], true, "{v}");
    assert_eq!(v["sense"]["information"], 1096, "{v}");

    // Next: the filemark, decoded.
    let fm = run(&read6);
    assert_eq!(fm.code, 20, "{}", fm.stderr);
    assert!(fm.stdout.contains("FILEMARK DETECTED"), "{}", fm.stdout);

    // Then end of data: BLANK CHECK (SSC-4 4.2.3.4).
    let eod = run(&read6);
    assert_eq!(eod.code, 8, "{}", eod.stderr);
    assert!(eod.stdout.contains("BLANK CHECK"), "{}", eod.stdout);

    // fsf past the end: END-OF-DATA DETECTED, reported and non-zero.
    run(&["tape", &tape, "rewind"]).ok();
    let past = run(&["tape", &tape, "fsf", "3"]);
    assert_ne!(past.code, 0);
    assert!(
        past.stderr.contains("END-OF-DATA DETECTED"),
        "{}",
        past.stderr
    );

    run(&["tape", &tape, "rewind"]).ok();
    run(&["tape", &tape, "fsf", "1"]).ok();
    run(&["tape", &tape, "eod"]).ok();

    // What status and tell say of the position depends on the drive:
    // tgt's READ POSITION is a constant, ours counts (one block and one
    // filemark: object 2 at end of data).
    let st = run(&["--json", "tape", &tape, "status"]).ok().json();
    let tell = run(&["tape", &tape, "tell"]).ok();
    match env.drive {
        Drive::Tgt => {
            assert_eq!(st["vendor"], "IET");
            assert_eq!(st["position_trusted"], false);
            assert!(tell.stdout.contains("not trusted"), "{}", tell.stdout);
        }
        _ => {
            assert_eq!(st["position_trusted"], true, "{st}");
            assert_eq!(st["device_position"]["first_block"], 2, "{st}");
            assert!(!tell.stdout.contains("not trusted"), "{}", tell.stdout);
        }
    }
    let lim = run(&["--json", "tape", &tape, "limits"]).ok().json();
    let (min, max) = (&lim["min_block_length"], &lim["max_block_length"]);
    assert!(max.as_u64().unwrap() >= 65536, "{lim}");
    assert!(min.as_u64().unwrap() <= max.as_u64().unwrap(), "{lim}");
    assert_eq!(st["limits"], lim, "status shows the same limits");

    // setblk round trip through MODE SELECT / MODE SENSE.
    run(&["tape", &tape, "setblk", "1024"]).ok();
    let st = run(&["--json", "tape", &tape, "status"]).ok().json();
    assert_eq!(st["block_length"], 1024, "{st}");
    run(&["tape", &tape, "setblk", "0"]).ok();
    let st = run(&["--json", "tape", &tape, "status"]).ok().json();
    assert_eq!(st["block_length"], 0, "{st}");
}
