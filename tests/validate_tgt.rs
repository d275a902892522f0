//! `sanmover validate` against the tgt rig's disk and tape and against
//! `sanmover router`: every verdict must equal the one committed in
//! tests/expected/ (a change in any verdict fails), the JUnit report parses
//! with a real XML parser, a labelled cartridge is refused, and traces are
//! written, shown and refused when damaged.

mod common;
use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{reset_tape, rig, sanmover, tape_lock, Router};

type Verdicts = BTreeMap<String, BTreeMap<String, String>>;

fn expected(name: &str) -> Verdicts {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// `{label: {check id: verdict}}` from a JSON report, devices labelled in
/// the order given.
fn verdicts(report: &serde_json::Value, labels: &[&str]) -> Verdicts {
    let devices = report["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), labels.len(), "{report}");
    labels
        .iter()
        .zip(devices)
        .map(|(l, d)| {
            let checks = d["checks"].as_array().unwrap();
            let m = checks
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
        .collect()
}

fn assert_same(got: &Verdicts, want: &Verdicts, report: &serde_json::Value) {
    for (dev, checks) in want {
        for (id, v) in checks {
            let g = got.get(dev).and_then(|m| m.get(id));
            assert_eq!(
                g,
                Some(v),
                "{dev} {id}: verdict changed\nreport: {report:#}"
            );
        }
    }
    assert_eq!(got, want, "the set of checks changed\nreport: {report:#}");
}

#[test]
fn tgt_disk_and_tape_verdicts_are_the_committed_ones() {
    let r = rig();
    let _g = tape_lock();
    reset_tape();
    let run = sanmover(["--json", "validate", "--dataloss", r.disk(), r.tape()]);
    assert_eq!(
        run.code, 38,
        "tgt has quirks, so checks fail: {}{}",
        run.stdout, run.stderr
    );
    let rep = run.json();
    assert_same(
        &verdicts(&rep, &["disk", "tape"]),
        &expected("validate-tgt.json"),
        &rep,
    );
    // Every not-supported and skipped verdict says why; a failure shows
    // what was observed.
    for d in rep["devices"].as_array().unwrap() {
        for c in d["checks"].as_array().unwrap() {
            match c["verdict"].as_str().unwrap() {
                "not-supported" | "skipped" => {
                    assert!(c["reason"].as_str().is_some_and(|r| !r.is_empty()), "{c}")
                }
                "fail" => assert!(!c["observed"].as_str().unwrap().is_empty(), "{c}"),
                _ => {}
            }
        }
    }
    // The quirks the README names are found by name.
    let tape = &rep["devices"][1]["checks"];
    let obs = |id: &str| {
        tape.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["observed"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        obs("tape.space.reverse-filemark").contains("READ found block E"),
        "{}",
        obs("tape.space.reverse-filemark")
    );
    assert!(obs("tape.read-position.after-reads").contains("block position unknown"));
}

#[test]
fn without_dataloss_nothing_is_written_and_writes_are_skipped() {
    let r = rig();
    let _g = tape_lock();
    reset_tape();
    let rep = sanmover(["--json", "validate", "--suite", "tape", r.tape()]).json();
    let checks = rep["devices"][0]["checks"].as_array().unwrap().clone();
    let skipped: Vec<_> = checks
        .iter()
        .filter(|c| c["verdict"] == "skipped")
        .collect();
    assert!(skipped.len() > 10, "{rep}");
    assert!(skipped
        .iter()
        .all(|c| c["reason"].as_str().unwrap().contains("--dataloss")));
    // The tape is still blank: its backing image did not grow.
    let img = std::fs::metadata(r.get("SANMOVER_RIG_TAPE_FILE"))
        .unwrap()
        .len();
    assert!(img < 4096, "tape image grew to {img} bytes");
}

#[test]
fn a_labelled_cartridge_is_refused_before_anything_is_written() {
    let r = rig();
    let _g = tape_lock();
    reset_tape();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("c.db");
    common::sm(&cat, &["tape", r.tape(), "label", "VALID1"]).ok();
    let run = sanmover(["validate", "--dataloss", r.disk(), r.tape()]);
    assert_eq!(run.code, 45, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("sanmover volume VALID1") && run.stderr.contains("scratch"),
        "{}",
        run.stderr
    );
    // Still labelled.
    let st = common::sm(&cat, &["--json", "tape", r.tape(), "status"])
        .ok()
        .json();
    assert!(st.to_string().contains("VALID1"), "{st}");
}

#[test]
fn junit_report_has_the_structure_ci_reads() {
    let r = rig();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.xml");
    let run = sanmover([
        "validate",
        "--format",
        "junit",
        "--out",
        out.to_str().unwrap(),
        r.disk(),
    ]);
    assert_eq!(run.code, 38, "{}{}", run.stdout, run.stderr);
    let xml = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 2, "disk and iscsi: {xml}");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert!(cases.len() >= 15, "{xml}");
    let case = |id: &str| {
        *cases
            .iter()
            .find(|c| c.attribute("name") == Some(id))
            .unwrap_or_else(|| panic!("no {id}"))
    };
    // tgt's B1 page is 40h long instead of 3Ch: a failure with its message.
    let fail = case("disk.vpd.block-characteristics")
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("failure");
    assert!(
        fail.attribute("message")
            .unwrap()
            .contains("page length 0x40"),
        "{xml}"
    );
    let skip = case("disk.write.last-lba")
        .children()
        .find(|n| n.has_tag_name("skipped"))
        .expect("skipped");
    assert!(
        skip.attribute("message")
            .unwrap()
            .starts_with("skipped: writes to the medium"),
        "{xml}"
    );
    // tgt drops the connection on a command below the CmdSN window
    // instead of ignoring it: the iSCSI suite's failure, with its reason.
    let fail = case("iscsi.cmdsn.outside-window")
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("failure");
    assert!(
        fail.attribute("message")
            .unwrap()
            .contains("ExpCmdSN - 1): the target closed the connection"),
        "{xml}"
    );
    assert!(case("disk.read.past-end")
        .children()
        .all(|n| !n.has_tag_name("failure") && !n.has_tag_name("skipped")));
    let s0 = suites[0];
    assert_eq!(s0.attribute("failures"), Some("1"), "{xml}");
}

#[test]
fn tgt_library_verdicts_are_the_committed_ones() {
    let r = rig();
    let (changer, d0, d1) = (
        r.get("SANMOVER_RIG_CHANGER"),
        r.get("SANMOVER_RIG_LIB_DRIVE0"),
        r.get("SANMOVER_RIG_LIB_DRIVE1"),
    );
    let before = sanmover(["--json", "changer", changer, "status"])
        .ok()
        .json();
    let run = sanmover(["--json", "validate", "--dataloss", changer, d0, d1]);
    assert_eq!(run.code, 38, "{}{}", run.stdout, run.stderr);
    let rep = run.json();
    assert_same(
        &verdicts(&rep, &["changer", "drive0", "drive1"]),
        &expected("validate-changer.json"),
        &rep,
    );
    // Every cartridge is back where it was.
    let after = sanmover(["--json", "changer", changer, "status"])
        .ok()
        .json();
    assert_eq!(before, after);
}

#[test]
fn router_verdicts_are_the_committed_ones() {
    let r = rig();
    let _g = tape_lock();
    reset_tape();
    let disks = format!("iscsi://{}/{}", r.portal(), r.get("SANMOVER_RIG_DISK_IQN"));
    let tapes = format!("iscsi://{}/{}", r.portal(), r.get("SANMOVER_RIG_TAPE_IQN"));
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("router.trace");
    let router = Router::start_global(
        &["--trace", trace.to_str().unwrap()],
        &[&disks, &tapes],
        &[],
    );
    // The tape is named too: the copy suite runs the stream segments
    // through the router to it and reads them back.
    // The tgt disk is the source a second initiator name, with no copy
    // rights, tries to copy from.
    let run = sanmover([
        "--json",
        "validate",
        "--dataloss",
        &router.url(),
        r.tape(),
        r.disk(),
    ]);
    let rep = run.json();
    assert_same(
        &verdicts(&rep, &["router", "tape", "disk"]),
        &expected("validate-router.json"),
        &rep,
    );
    drop(router);
    // --trace on the router records what it sent its backends.
    let text = std::fs::read_to_string(&trace).unwrap();
    let to_tape = text
        .lines()
        .skip(1)
        .filter(|l| l.contains(r.tape()))
        .count();
    assert!(
        to_tape > 5,
        "the router's tape commands are in its trace:\n{text}"
    );
    // Without copy rights (--insecure) anyone may copy: the check fails.
    let open = Router::start(&[&disks], &["--insecure"]);
    let rep = sanmover([
        "--json",
        "validate",
        "--dataloss",
        "--suite",
        "copy",
        &open.url(),
        r.disk(),
    ])
    .json();
    let v = verdicts(&rep, &["router", "disk"]);
    assert_eq!(
        v["router"]["copy.access.other-initiator"], "fail",
        "{rep:#}"
    );
}

#[test]
fn traces_are_written_shown_and_damage_is_refused() {
    let r = rig();
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("readcap.trace");
    sanmover(["--trace", t.to_str().unwrap(), "readcap", r.disk()]).ok();
    let text = std::fs::read_to_string(&t).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("\"sanmover_trace\":1"),
        "{text}"
    );
    let show = sanmover(["trace", "show", t.to_str().unwrap()]).ok();
    assert!(
        show.stdout.contains("INQUIRY standard") && show.stdout.contains("READ CAPACITY(10)"),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains(r.disk()), "{}", show.stdout);
    let cut = dir.path().join("cut.trace");
    std::fs::write(&cut, &text[..text.len() - 5]).unwrap();
    let bad = sanmover(["trace", "show", cut.to_str().unwrap()]);
    assert_eq!(bad.code, 39, "{}", bad.stderr);
    assert!(bad.stderr.contains("truncated"), "{}", bad.stderr);
    let newer = dir.path().join("newer.trace");
    std::fs::write(
        &newer,
        text.replacen("\"sanmover_trace\":1", "\"sanmover_trace\":9", 1),
    )
    .unwrap();
    let bad = sanmover(["replay", newer.to_str().unwrap(), r.disk()]);
    assert_eq!(bad.code, 39, "{}", bad.stderr);
    assert!(bad.stderr.contains("newer"), "{}", bad.stderr);
    // A disk's trace replayed to the tape: refused before any of it is sent.
    let wrong = sanmover(["replay", t.to_str().unwrap(), r.tape()]);
    assert_eq!(wrong.code, 43, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("nothing of the trace was sent"),
        "{}",
        wrong.stderr
    );
    // The same disk answers the same.
    let same = sanmover(["--json", "replay", t.to_str().unwrap(), r.disk()])
        .ok()
        .json();
    assert_eq!(same["differences"], 0, "{same}");
    // The second disk is smaller: READ CAPACITY's data is the same length,
    // so only --compare-data sees it.
    let other = sanmover([
        "--json",
        "replay",
        "--compare-data",
        t.to_str().unwrap(),
        r.disk2(),
    ]);
    assert_eq!(other.code, 49, "{}", other.stdout);
    let j = other.json();
    assert_eq!(j["first"]["what"], "data-in bytes", "{j}");
}

#[test]
fn tgt_tape_ignores_its_size_so_early_warning_is_never_reached() {
    let r = rig();
    let _g = tape_lock();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-rig/tgt/reset-tape.sh");
    let small = std::process::Command::new("bash")
        .arg(&script)
        .arg("1")
        .output()
        .unwrap();
    assert!(
        small.status.success(),
        "{}",
        String::from_utf8_lossy(&small.stderr)
    );
    let rep = sanmover([
        "--json",
        "validate",
        "--dataloss",
        "--suite",
        "tape",
        r.tape(),
    ])
    .json();
    reset_tape();
    let c = rep["devices"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "tape.early-warning")
        .unwrap()
        .clone();
    // A 1 MB tgtimg cartridge takes 16 MiB without early warning or
    // VOLUME OVERFLOW.
    assert_eq!(c["verdict"], "not-supported", "{c}");
    assert_eq!(c["observed"], "16 MiB written, no end of medium", "{c}");
}
