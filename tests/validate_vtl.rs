//! `sanmover validate` against `sanmover vtl` (its changer and two drives,
//! one with a cartridge loaded): verdicts equal to the committed ones; and
//! a trace taken on tgt's tape replayed to the VTL's drive reports the
//! first difference with both answers decoded.

mod common;
use std::collections::BTreeMap;

use common::vtl::Vtl;
use common::{rig, sanmover, tape_lock};

type Verdicts = BTreeMap<String, BTreeMap<String, String>>;

fn library() -> (tempfile::TempDir, Vtl) {
    let dir = tempfile::tempdir().unwrap();
    // 8 MB cartridges: the early-warning check reaches the end of one.
    let v = Vtl::start(&dir.path().join("media"), 2, 4, "8M");
    sanmover(["changer", &v.url(0), "load", "1", "0"]).ok();
    (dir, v)
}

#[test]
fn vtl_changer_and_drives_verdicts_are_the_committed_ones() {
    let (_dir, v) = library();
    let run = sanmover([
        "--json",
        "validate",
        "--dataloss",
        &v.url(0),
        &v.url(1),
        &v.url(2),
    ]);
    assert_eq!(run.code, 0, "no check fails: {}{}", run.stdout, run.stderr);
    let rep = run.json();
    let labels = ["changer", "drive0", "drive1"];
    let got: Verdicts = labels
        .iter()
        .zip(rep["devices"].as_array().unwrap())
        .map(|(l, d)| {
            let m = d["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap().to_string(),
                        c["verdict"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (l.to_string(), m)
        })
        .collect();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/expected/validate-vtl.json"
    );
    let want: Verdicts = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(got, want, "a verdict changed: {rep:#}");
}

#[test]
fn a_tgt_tape_trace_replayed_to_the_vtl_drive_shows_the_first_difference() {
    let r = rig();
    let _g = tape_lock();
    common::reset_tape();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("seek.trace");
    // tgt has no LOCATE: the trace ends in INVALID COMMAND OPERATION CODE.
    let seek = sanmover([
        "--trace",
        trace.to_str().unwrap(),
        "tape",
        r.tape(),
        "seek",
        "0",
    ]);
    assert_eq!(seek.code, 9, "{}", seek.stderr);
    let (_lib, v) = library();
    let rep = sanmover(["--json", "replay", trace.to_str().unwrap(), &v.url(1)]);
    assert_eq!(rep.code, 49, "{}{}", rep.stdout, rep.stderr);
    let j = rep.json();
    let first = &j["first"];
    assert_eq!(first["what"], "status", "{j:#}");
    assert!(
        first["command"]
            .as_str()
            .unwrap()
            .starts_with("LOCATE(10) block 0"),
        "{j:#}"
    );
    assert_eq!(first["recorded"]["status"], "CHECK CONDITION", "{j:#}");
    assert!(
        first["recorded"]["sense"]
            .as_str()
            .unwrap()
            .contains("INVALID COMMAND OPERATION CODE (20/00)"),
        "{j:#}"
    );
    assert_eq!(first["replayed"]["status"], "GOOD", "{j:#}");
    // The text form names both answers too.
    let text = sanmover(["replay", trace.to_str().unwrap(), &v.url(1)]);
    assert!(
        text.stdout
            .contains("recorded: CHECK CONDITION: ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("replayed: GOOD"), "{}", text.stdout);
}
