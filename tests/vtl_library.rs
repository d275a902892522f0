//! `sanmover vtl` (a library on our own iSCSI target) driven from outside:
//! the `changer` command against its changer LU, the tape commands against
//! its drives, a restart that keeps what is where, and reservations from
//! two initiators on one of its drives. Needs no rig: the library runs on
//! 127.0.0.1 and is stopped by pid.

mod common;
use common::vtl::Vtl;
use common::{sanmover, sm};

use std::time::Duration;

use sanmover::device::{PrOut, Tape};
use sanmover::scsi::spc::PrType;
use sanmover::scsi::{Cdb, Status};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;
use sanmover::transport::{Request, Transport};

fn status(v: &Vtl) -> serde_json::Value {
    sanmover(["--json", "changer", &v.url(0), "status"])
        .ok()
        .json()
}

#[test]
fn changer_status_load_and_unload() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vtl::start(&dir.path().join("media"), 2, 4, "64M");
    let s = status(&v);
    let tags: Vec<&str> = s["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["volume_tag"].as_str())
        .collect();
    assert_eq!(
        tags,
        ["VTL001L8", "VTL002L8", "VTL003L8", "VTL004L8"],
        "{s}"
    );
    assert_eq!(s["drives"].as_array().unwrap().len(), 2);
    assert!(s["drives"][0]["identifier"]
        .as_str()
        .unwrap()
        .starts_with("naa."));

    // An empty drive is not ready; after `load` it is, with that cartridge.
    let not_ready = sm(
        &dir.path().join("catalog.db"),
        &["tape", &v.url(1), "status"],
    );
    assert!(
        not_ready.stdout.contains("not ready") || not_ready.stdout.contains("NOT READY"),
        "{}",
        not_ready.stdout
    );
    sanmover(["changer", &v.url(0), "load", "2", "0"]).ok();
    let s = status(&v);
    assert_eq!(s["drives"][0]["volume_tag"], "VTL002L8", "{s}");
    assert_eq!(s["drives"][0]["source_slot"], 2);
    sm(
        &dir.path().join("catalog.db"),
        &["tape", &v.url(1), "rewind"],
    )
    .ok();
    let tape = sm(
        &dir.path().join("catalog.db"),
        &["--json", "tape", &v.url(1), "status"],
    )
    .ok()
    .json();
    assert!(tape["not_ready"].is_null(), "{tape}");

    sanmover(["changer", &v.url(0), "unload"]).ok();
    let s = status(&v);
    assert_eq!(s["slots"][1]["volume_tag"], "VTL002L8", "{s}");
    assert_eq!(s["drives"][0]["full"], false);
}

#[test]
fn changer_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vtl::start(&dir.path().join("media"), 2, 4, "64M");
    sanmover(["changer", &v.url(0), "load", "2", "0"]).ok();
    // Refusals, with the sense SMC-3 names and exit 5 (ILLEGAL REQUEST).
    let empty = sanmover(["changer", &v.url(0), "load", "2", "1"]);
    assert_eq!(empty.code, 5, "{}", empty.stderr);
    assert!(
        empty.stderr.contains("MEDIUM SOURCE ELEMENT EMPTY (3B/0E)"),
        "{}",
        empty.stderr
    );
    let full = sanmover(["changer", &v.url(0), "load", "3", "0"]);
    assert_eq!(full.code, 5, "{}", full.stderr);
    assert!(
        full.stderr
            .contains("MEDIUM DESTINATION ELEMENT FULL (3B/0D)"),
        "{}",
        full.stderr
    );
    // An address the changer's page 1Dh does not list: refused by the
    // command before anything is sent (the LU's own 21/01 is unit-tested).
    let bad = sanmover(["changer", "--element", &v.url(0), "load", "4000", "256"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("element 4000 is not"), "{}", bad.stderr);
}

#[test]
fn a_restart_keeps_the_inventory_and_the_loaded_cartridge() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let mut v = Vtl::start(&media, 1, 3, "64M");
    sanmover(["changer", &v.url(0), "load", "3", "0"]).ok();
    sm(
        &dir.path().join("catalog.db"),
        &["tape", &v.url(1), "label", "VTL003"],
    )
    .ok();
    v.kill();
    let v = Vtl::start(&media, 1, 3, "64M");
    let s = status(&v);
    assert_eq!(s["drives"][0]["volume_tag"], "VTL003L8", "{s}");
    assert!(s["slots"][2]["volume_tag"].is_null(), "{s}");
    let label = sm(
        &dir.path().join("catalog.db"),
        &["--json", "tape", &v.url(1), "status"],
    )
    .ok();
    assert!(
        label.stdout.contains("VTL003"),
        "{}{}",
        label.stdout,
        label.stderr
    );
    drop(v);
    // Another layout over the same directory is refused (exit 1).
    let r = sanmover([
        "vtl",
        "--listen",
        "127.0.0.1:0",
        "--media",
        media.to_str().unwrap(),
        "--drives",
        "2",
        "--slots",
        "3",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("has 1 drives and 3 slots"),
        "{}",
        r.stderr
    );
}

fn drive(url: &str, initiator: &str) -> Tape<IscsiTransport> {
    let opts = IscsiOptions {
        initiator: initiator.into(),
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let t = IscsiTransport::connect(&IscsiUrl::parse(url).unwrap(), &opts).expect("login");
    let mut t = Tape::open(t).expect("a tape drive");
    t.scsi
        .test_unit_ready()
        .expect("ready (a cartridge is loaded)");
    t
}

fn write6(t: &mut Tape<IscsiTransport>, byte: u8) -> Status {
    let cdb = Cdb::new(&[0x0a, 0, 0, 0x02, 0, 0]).unwrap();
    let req = Request::data_out(cdb, vec![byte; 512]);
    t.scsi.transport().execute(req).expect("a status").status
}

/// The done-when of the tape library issue on `sanmover vtl`: WE blocks
/// the other initiator's WRITE(6) and lets it READ; PREEMPT AND ABORT from
/// the other takes over and the first one's next command conflicts.
#[test]
fn reservations_from_two_initiators_on_a_vtl_drive() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vtl::start(&dir.path().join("media"), 1, 2, "64M");
    sanmover(["changer", &v.url(0), "load", "1", "0"]).ok();
    let mut a = drive(&v.url(1), "iqn.2026-12.org.sanmover.test:host-a");
    let mut b = drive(&v.url(1), "iqn.2026-12.org.sanmover.test:host-b");
    a.scsi.pr_out(PrOut::register(0xa1)).unwrap();
    a.scsi
        .pr_out(PrOut::reserve(0xa1, PrType::WRITE_EXCLUSIVE))
        .unwrap();
    assert_eq!(write6(&mut a, 1), Status::GOOD);
    a.rewind().unwrap();
    assert_eq!(write6(&mut b, 2), Status::RESERVATION_CONFLICT);
    let mut buf = vec![0u8; 512];
    let (outcome, data) = b
        .read_block(std::mem::take(&mut buf))
        .expect("READ passes WE");
    assert_eq!(outcome, sanmover::device::tape::ReadOutcome::Block(512));
    assert_eq!(&data[..512], &[1u8; 512][..]);
    b.scsi.pr_out(PrOut::register(0xb1)).unwrap();
    b.scsi
        .pr_out(PrOut::preempt(0xb1, 0xa1, PrType::EXCLUSIVE_ACCESS, true))
        .unwrap();
    // The device layer retries the REGISTRATIONS PREEMPTED attention; what
    // is left is the conflict.
    let e = a.rewind().unwrap_err();
    assert_eq!(e.status(), Some(Status::RESERVATION_CONFLICT), "{e}");
    b.rewind().unwrap();
    b.scsi.pr_out(PrOut::clear(0xb1)).unwrap();
}

/// `sanmover pr` from two initiator names against a VTL drive.
#[test]
fn the_pr_command_from_two_initiators() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vtl::start(&dir.path().join("media"), 1, 1, "64M");
    sanmover(["changer", &v.url(0), "load", "1", "0"]).ok();
    let url = v.url(1);
    let pr = |who: &str, args: &[&str]| {
        let name = format!("iqn.2026-12.org.sanmover.test:{who}");
        let mut all = vec!["--json", "--initiator", &name, "pr", &url];
        all.extend_from_slice(args);
        sanmover(all)
    };
    pr("a", &["reserve", "--key", "0xa1", "--type", "we"]).ok();
    let r = pr("b", &["reservation"]).ok().json();
    assert_eq!(r["reservation"]["key"], 0xa1, "{r}");
    assert_eq!(r["reservation"]["pr_type"], 1, "{r}");
    // Each command is a nexus of its own: another one cannot take the
    // reservation another holds, even under the same initiator name.
    let refused = pr("a", &["reserve", "--key", "0xa2", "--type", "ea"]);
    assert_eq!(refused.code, 24, "RESERVATION CONFLICT: {}", refused.stderr);
    let preempt = [
        "preempt", "--key", "0xb1", "--victim", "0xa1", "--type", "ea", "--abort",
    ];
    pr("b", &preempt).ok();
    let keys = pr("a", &["keys"]).ok().json();
    assert_eq!(keys["keys"], serde_json::json!([0xa2, 0xb1]), "{keys}");
    let full = pr("a", &["status"]).ok().json();
    let d = &full["descriptors"][1];
    assert_eq!(
        (d["holder"].as_bool(), d["key"].as_u64()),
        (Some(true), Some(0xb1)),
        "{full}"
    );
    let caps = pr("a", &["capabilities"]).ok().json();
    assert_eq!(caps["types"].as_array().unwrap().len(), 6, "{caps}");
    pr("b", &["clear", "--key", "0xb2"]).ok();
    assert_eq!(
        pr("a", &["keys"]).ok().json()["keys"],
        serde_json::json!([])
    );
    pr("a", &["reserve6"]).ok();
}
