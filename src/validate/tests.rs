//! Unit tests of the validate suites, reports and replay against the
//! in-memory disk and tape (`crate::lu`), reached through a connector that
//! maps addresses to shared units.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::replay::{check_trace, check_types, replay, ReplayError};
use super::*;
use crate::lu::{Completion, LogicalUnit, MemDisk, MemTape};
use crate::transport::memory::MemoryTransport;
use crate::transport::trace::{read_trace, DataMode, TraceSink, Traced};

type Unit = Arc<Mutex<Box<dyn LogicalUnit + Send>>>;

/// One unit behind several sessions.
struct Shared(Unit);

impl LogicalUnit for Shared {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        self.0.lock().unwrap().execute(cdb, data_out, data_in)
    }
}

#[derive(Default)]
struct Lab {
    units: HashMap<String, Unit>,
}

impl Lab {
    fn add(&mut self, url: &str, lu: impl LogicalUnit + Send + 'static) {
        self.units
            .insert(url.to_string(), Arc::new(Mutex::new(Box::new(lu))));
    }

    fn transport(&self, url: &str) -> MemoryTransport<Shared> {
        MemoryTransport::new(url, Shared(self.units[url].clone()))
    }
}

impl Connector for Lab {
    fn open(&self, url: &str, _initiator: &str) -> Result<Dyn, TransportError> {
        match self.units.get(url) {
            Some(_) => Ok(Box::new(self.transport(url))),
            None => Err(TransportError::Connect {
                portal: url.to_string(),
                reason: "no such unit in the lab".into(),
            }),
        }
    }
}

fn run(lab: &Lab, devs: &[&str], dataloss: bool) -> RunReport {
    let devs: Vec<String> = devs.iter().map(|s| s.to_string()).collect();
    let opts = Options {
        suites: Vec::new(),
        dataloss,
    };
    validate(&devs, lab, "iqn.test:validate", &opts).unwrap()
}

fn verdict(r: &DeviceReport, id: &str) -> Verdict {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
        .verdict
}

#[test]
fn memdisk_passes_the_disk_suite() {
    let mut lab = Lab::default();
    lab.add("mem:disk1", MemDisk::new("SERIAL-ONE", 256, 512));
    let rep = run(&lab, &["mem:disk1"], true);
    let d = &rep.devices[0];
    assert_eq!(d.suites, vec!["disk"]);
    for c in &d.checks {
        assert!(
            c.verdict == Verdict::Pass || c.verdict == Verdict::NotSupported,
            "{c:?}"
        );
        assert!(c.verdict == Verdict::Pass || c.reason.is_some(), "{c:?}");
    }
    assert_eq!(verdict(d, "disk.read.past-end"), Verdict::Pass);
    assert_eq!(verdict(d, "disk.write.past-end"), Verdict::Pass);
}

#[test]
fn without_dataloss_the_writing_checks_are_skipped_with_a_reason() {
    let mut lab = Lab::default();
    lab.add("mem:disk1", MemDisk::new("SERIAL-ONE", 256, 512));
    let rep = run(&lab, &["mem:disk1"], false);
    let d = &rep.devices[0];
    let w = d
        .checks
        .iter()
        .find(|c| c.id == "disk.write.last-lba")
        .unwrap();
    assert_eq!(w.verdict, Verdict::Skipped);
    assert!(w.reason.as_deref().unwrap().contains("--dataloss"));
    assert_eq!(rep.failed(), 0);
}

#[test]
fn a_shared_designator_fails_designator_uniqueness() {
    // The LIO case: two LUs whose serials give them the same NAA.
    let mut lab = Lab::default();
    lab.add("mem:a", MemDisk::new("SAME-SERIAL", 64, 512));
    lab.add("mem:b", MemDisk::new("SAME-SERIAL", 64, 512));
    lab.add("mem:c", MemDisk::new("OTHER-SERIAL", 64, 512));
    let rep = run(&lab, &["mem:a", "mem:b", "mem:c"], false);
    let c = rep.devices[0]
        .checks
        .iter()
        .find(|c| c.id == "disk.vpd.designator-unique")
        .unwrap();
    assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
    assert!(c.observed.contains("also names mem:b"), "{}", c.observed);
    assert_eq!(
        verdict(&rep.devices[2], "disk.vpd.designator-unique"),
        Verdict::Pass
    );
}

#[test]
fn memtape_passes_the_tape_suite_where_it_implements_the_command() {
    let mut lab = Lab::default();
    lab.add("mem:tape", MemTape::new("TAPE-1", 1 << 20));
    let rep = run(&lab, &["mem:tape"], true);
    let d = &rep.devices[0];
    assert_eq!(d.suites, vec!["tape"]);
    let failed: Vec<_> = d
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    for id in [
        "tape.space.reverse-filemark",
        "tape.read.buffer-trap",
        "tape.read-position.after-reads",
        "tape.read.overlength",
        "tape.read.eod",
        "tape.early-warning",
    ] {
        assert_eq!(verdict(d, id), Verdict::Pass, "{id}");
    }
}

#[test]
fn a_labelled_tape_is_refused_before_anything_is_written() {
    let mut lab = Lab::default();
    lab.add("mem:tape", MemTape::new("TAPE-1", 1 << 20));
    lab.add("mem:disk", MemDisk::new("D", 64, 512));
    {
        let mut tape = crate::device::Tape::open(lab.transport("mem:tape")).unwrap();
        crate::engine::volume::write_label(&mut tape, "LAB001").unwrap();
    }
    let devs = vec!["mem:disk".to_string(), "mem:tape".to_string()];
    let opts = Options {
        suites: Vec::new(),
        dataloss: true,
    };
    let e = validate(&devs, &lab, "iqn.test:v", &opts).expect_err("refused");
    assert!(matches!(e, ValidateError::LabelledTape { .. }), "{e}");
    assert!(e.to_string().contains("LAB001"), "{e}");
}

#[test]
fn an_unknown_suite_is_refused() {
    let lab = Lab::default();
    let opts = Options {
        suites: vec!["floppy".into()],
        dataloss: false,
    };
    let e = validate(&[], &lab, "i", &opts).unwrap_err();
    assert!(matches!(e, ValidateError::UnknownSuite(_)));
}

#[test]
fn every_check_cites_the_standard_and_has_a_unique_id() {
    let all = all_checks();
    let mut ids: Vec<_> = all.iter().map(|(_, s)| s.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    for (suite, s) in all {
        assert!(s.id.starts_with(&format!("{suite}.")), "{}", s.id);
        assert!(
            ["SPC-4", "SBC-4", "SSC-4", "SMC-3", "SAM-5", "RFC 7143"]
                .iter()
                .any(|p| s.cites.contains(p)),
            "{}: {}",
            s.id,
            s.cites
        );
        assert!(!s.expected.is_empty());
    }
}

fn sample_report() -> RunReport {
    let mut lab = Lab::default();
    lab.add("mem:a", MemDisk::new("SAME", 64, 512));
    lab.add("mem:b", MemDisk::new("SAME", 64, 512));
    run(&lab, &["mem:a", "mem:b"], false)
}

#[test]
fn junit_parses_with_failures_and_skips_and_their_messages() {
    let rep = sample_report();
    let xml = report::junit(&rep).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 2);
    let cases: Vec<_> = suites[0]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), rep.devices[0].checks.len());
    let failure = cases
        .iter()
        .find(|c| c.attribute("name") == Some("disk.vpd.designator-unique"))
        .and_then(|c| c.children().find(|n| n.has_tag_name("failure")))
        .expect("a failure element");
    assert!(failure
        .attribute("message")
        .unwrap()
        .contains("also names mem:b"));
    let skipped = cases
        .iter()
        .find(|c| c.attribute("name") == Some("disk.write.last-lba"))
        .and_then(|c| c.children().find(|n| n.has_tag_name("skipped")))
        .expect("a skipped element");
    assert!(skipped.attribute("message").unwrap().contains("--dataloss"));
    assert_eq!(suites[0].attribute("failures"), Some("1"));
}

#[test]
fn matrix_has_a_row_per_check_and_a_column_per_device() {
    let rep = sample_report();
    let m = report::matrix(&rep);
    assert_eq!(m.devices.len(), 2);
    assert_eq!(m.rows["disk.vpd.designator-unique"], vec!["fail", "fail"]);
    let md = report::matrix_markdown(&rep);
    assert!(
        md.contains("| `disk.vpd.designator-unique` | **FAIL** | **FAIL** |"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(&report::matrix_json(&rep)).unwrap();
    assert_eq!(json["rows"]["disk.read.past-end"][1], "pass");
    assert!(report::markdown(&rep).contains("| `disk.read.past-end` |"));
    assert!(report::text(&rep).contains("also names mem:b"));
}

/// A trace of a few reads from a 1000-block disk.
fn recorded_trace(dir: &std::path::Path) -> std::path::PathBuf {
    use crate::device::Disk;
    let path = dir.join("disk.trace");
    let sink = TraceSink::create(&path, DataMode::Full).unwrap();
    let t = MemoryTransport::new("mem:big", MemDisk::new("BIG", 1000, 512));
    let mut d = Disk::open(Traced::new(t, sink, "iqn.test:a")).unwrap();
    let bs = crate::scsi::BlockSize(512);
    d.read(crate::scsi::Lba(0), 1, bs).unwrap();
    d.read(crate::scsi::Lba(500), 1, bs).unwrap();
    path
}

#[test]
fn replay_reports_the_first_difference_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let (_, records) = read_trace(&recorded_trace(dir.path())).unwrap();
    let nx = check_trace(&records, 1).unwrap();
    // The same kind of disk, too small: READ at LBA 500 is out of range.
    let mut devs = vec![crate::device::Scsi::new(MemoryTransport::new(
        "mem:small",
        MemDisk::new("SMALL", 10, 512),
    ))];
    check_types(&records, &nx, &mut devs).unwrap();
    let rep = replay(&records, &nx, &mut devs, false).unwrap();
    let d = rep.first.expect("a difference");
    assert_eq!(d.what, "status");
    assert!(
        d.command.starts_with("READ(10) LBA 500") || d.command.starts_with("READ(16) LBA 500"),
        "{}",
        d.command
    );
    assert_eq!(d.recorded.status, "GOOD");
    assert!(d
        .replayed
        .sense
        .unwrap()
        .contains("LOGICAL BLOCK ADDRESS OUT OF RANGE"));
    // The same disk again: no difference.
    let mut same = vec![crate::device::Scsi::new(MemoryTransport::new(
        "mem:big2",
        MemDisk::new("BIG", 1000, 512),
    ))];
    assert_eq!(
        replay(&records, &nx, &mut same, true).unwrap().differences,
        0
    );
}

#[test]
fn replay_to_a_device_of_another_type_sends_nothing_of_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (_, records) = read_trace(&recorded_trace(dir.path())).unwrap();
    let nx = check_trace(&records, 1).unwrap();
    let mut devs = vec![crate::device::Scsi::new(MemoryTransport::new(
        "mem:tape",
        MemTape::new("T", 1 << 20),
    ))];
    let e = check_types(&records, &nx, &mut devs).unwrap_err();
    assert!(matches!(e, ReplayError::WrongType { .. }), "{e}");
    // Only the INQUIRY that found the type went to the device.
    assert_eq!(devs[0].transport().commands, 1);
    assert!(matches!(
        check_trace(&records, 2),
        Err(ReplayError::DeviceCount { .. })
    ));
}
