//! The CLI's tape commands, written once over the tape fixture
//! (tests/common/drive.rs) and run by tests/tgt_cli.rs on tgt's tape and
//! on a drive of `sanmover vtl`. What differs between the drives (vendor,
//! LOCATE) is checked against the drive's own answers.

use crate::common::drive::{Drive, TapeEnv};

pub fn inquiry_says_tape(env: TapeEnv) {
    let tape = env.tape();
    let t = env.run(&["--json", "inquiry", &tape]).ok().json();
    assert_eq!(t["device_type"], 1, "{t}");
    assert_eq!(t["rmb"], true, "{t}");
    let vendor = t["vendor"].as_str().unwrap().to_string();
    if env.drive == Drive::Tgt {
        assert_eq!(
            (vendor.as_str(), &t["product"]),
            ("IET", &"VIRTUAL-TAPE".into())
        );
    }
    let text = env.run(&["inquiry", &tape]).ok().stdout;
    assert!(text.contains("PDT=1 (tape)"), "{text}");
    let want = format!("Vendor identification: {vendor}");
    assert!(text.contains(&want), "{text}");
}

pub fn vpd_pages_of_the_tape(env: TapeEnv) {
    let tape = env.tape();
    let sp = env
        .run(&["--json", "inquiry", &tape, "--vpd", "sp"])
        .ok()
        .json();
    let pages: Vec<u64> = sp["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(pages.contains(&0x83) && pages.contains(&0x80), "{pages:?}");
    let di = env
        .run(&["--json", "inquiry", &tape, "--vpd", "0x83"])
        .ok()
        .json();
    let ds = di["designators"].as_array().unwrap();
    // A binary NAA of the LU, which EXTENDED COPY names the drive by.
    assert!(
        ds.iter()
            .any(|d| d["designator_type"] == 3 && d["code_set"] == 1),
        "no binary NAA in {di}"
    );
    if env.drive == Drive::Tgt {
        // tgt adds a T10 vendor id (ASCII).
        let t10 = ds.iter().any(|d| d["designator_type"] == 1);
        assert!(t10, "no T10 id in {di}");
    }
    let sn = env
        .run(&["--json", "inquiry", &tape, "--vpd", "sn"])
        .ok()
        .json();
    assert!(!sn["serial"].as_str().unwrap().is_empty(), "{sn}");
}

pub fn readcap_of_a_tape_says_it_is_a_tape(env: TapeEnv) {
    let out = env.run(&["readcap", &env.tape()]);
    assert_eq!(out.code, 43, "{}", out.stderr);
    assert!(out.stderr.contains("is a tape device"), "{}", out.stderr);
}

/// `tape seek` is LOCATE(10): tgt has none and says so in decoded sense;
/// a drive with LOCATE goes there, and READ POSITION agrees.
pub fn tape_seek_is_locate(env: TapeEnv) {
    let tape = env.tape();
    let out = env.run(&["tape", &tape, "seek", "5"]);
    if env.drive == Drive::Tgt {
        assert_eq!(out.code, 9, "{}", out.stderr);
        assert!(out.stderr.contains("INVALID COMMAND OPERATION CODE"));
        assert!(out.stderr.contains("LOCATE(10)"), "{}", out.stderr);
        return;
    }
    // Blank: LOCATE past end of data is refused with its sense.
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("LOCATE(10)"), "{}", out.stderr);
    env.run(&["tape", &tape, "label", "SEEK01"]).ok();
    let d2 = env.disk(2);
    env.backup(&d2, &["--blocks", "2048"]);
    env.run(&["tape", &tape, "seek", "2"]).ok();
    let tell = env.run(&["--json", "tape", &tape, "tell"]).ok().json();
    assert_eq!(tell["device"]["first_block"], 2, "{tell}");
}

pub fn erase_needs_force(env: TapeEnv) {
    let out = env.run(&["tape", &env.tape(), "erase"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
}

/// Bad sizes are refused before any I/O: no catalog is even opened.
pub fn zero_blocks_and_bad_sizes_are_refused_before_any_io(env: TapeEnv) {
    let (tape, d1) = (env.tape(), env.disk(1));
    let fresh = env.dir().join("fresh.db");
    let base = ["backup", "--source", &d1.url, "--tape", &tape];
    for (extra, needle) in [
        (["--blocks", "0"], "0 blocks copies nothing"),
        (["--block-size", "12X"], "is not a size"),
        (["--block-size", "0"], "holds nothing"),
    ] {
        let out = env.run_with(&fresh, &[&base[..], &extra[..]].concat());
        assert_eq!(out.code, 1, "{extra:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{extra:?}: {}", out.stderr);
    }
    assert!(!fresh.exists(), "nothing was opened");
}
