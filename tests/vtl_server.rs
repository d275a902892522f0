//! `sanmover server` on `sanmover vtl`, whose drives have PERSISTENT
//! RESERVE: a host partitioned mid-set (SIGSTOP: it cannot heartbeat) is
//! fenced by PREEMPT AND ABORT, the drive goes to the next host without an
//! operator, and the partitioned host, once it runs again, meets
//! RESERVATION CONFLICT. Source disks come from a private tgt rig; every
//! process is stopped by pid, also when the test fails.

mod common;
use common::server::{same_bytes, Library, Server};
use common::vtl::Vtl;
use common::{fill_random, PrivateRig};

use std::process::Command;
use std::time::{Duration, Instant};

use sanmover::catalog::SetState;
use sanmover::server::events::{overlaps, EventKind};

/// The VTL's changer and two drives as the server serves them.
fn lib(vtl: &Vtl) -> Library {
    Library {
        changer: vtl.url(0),
        drives: vec![vtl.url(1), vtl.url(2)],
        iqn_prefix: "iqn.2026-12.org.sanmover.test",
    }
}

#[test]
fn a_partitioned_host_is_fenced_by_preempt_and_abort() {
    let rig = PrivateRig::start();
    let (big, _) = rig.add_lun(10, 256);
    let (small, small_file) = rig.add_lun(11, 4);
    fill_random(&small_file, 4 << 20, 5);
    let (dst, dst_file) = rig.add_lun(12, 4);
    let vtl = Vtl::start(&rig.state.path().join("media"), 2, 4, "1G");
    let s = Server::start(&lib(&vtl), &["--lease-secs", "3"]);
    let st = s.status();
    assert_eq!(st["drives"][0]["reservations"], true, "{st}");

    // alpha writes a big set in small blocks and is stopped (SIGSTOP: a
    // partition, it cannot heartbeat) once the server knows the set.
    let args = [
        "--json",
        "backup",
        "--mode",
        "host",
        "--source",
        &big,
        "--pool",
        "p",
        "--block-size",
        "16K",
    ];
    let victim = s.spawn("alpha", &args);
    let (drive, failed_set) = s.set_in_heartbeat(Duration::from_secs(60));
    victim.signal(nix::sys::signal::Signal::SIGSTOP);

    // The lease expires, the server preempts, the set is failed and the
    // drive is free again without an operator.
    let t = Instant::now();
    while !s
        .catalog()
        .server_events()
        .unwrap()
        .iter()
        .any(|e| e.kind == EventKind::Preempted)
    {
        if t.elapsed() > Duration::from_secs(30) {
            let keys = common::sanmover(["--json", "pr", &vtl.url(1), "keys"]);
            let res = common::sanmover(["--json", "pr", &vtl.url(1), "reservation"]);
            let ev = s.catalog().server_events().unwrap();
            panic!(
                "no preempt: {ev:#?}\n{}\n{}{}\n{}{}",
                s.log(),
                keys.stdout,
                keys.stderr,
                res.stdout,
                res.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed = s.catalog().set(&failed_set).unwrap();
    assert_eq!(failed.outcome.state, SetState::Failed, "{}", s.log());
    assert!(s.status()["drives"][drive]["fenced"].is_null());

    // bravo's set of the same pool goes to that drive and cartridge, after
    // the failed set, and restores byte-identical.
    let r = s.run(
        "bravo",
        &[
            "--json", "backup", "--mode", "host", "--source", &small, "--pool", "p",
        ],
    );
    let next = r.ok().json();
    let next_id = next["set_id"].as_str().unwrap();
    let row = s.catalog().set(next_id).unwrap();
    assert_eq!(row.info.volume, failed.info.volume);
    assert!(
        row.info.file_number > failed.info.file_number,
        "{row:?} {failed:?}"
    );
    s.run("bravo", &["restore", next_id, "--target", &dst]).ok();
    same_bytes(&small_file, &dst_file, 4 << 20);

    // alpha runs again: its next command conflicts and it fails cleanly.
    let mut victim = victim;
    victim.signal(nix::sys::signal::Signal::SIGCONT);
    let out = std::mem::replace(&mut victim.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("alpha after SIGCONT: {err}");
    assert!(!out.status.success(), "{err}");
    // Either its next WRITE meets the preemption (RESERVATION CONFLICT),
    // or its heartbeat thread sees the expired lease first and the set
    // stops before writing: which comes first is a race. Either way bravo's
    // set must stay intact (checked below).
    assert!(
        err.contains("RESERVATION CONFLICT") || err.contains("lost (lease"),
        "{err}"
    );
    let cat = s.catalog();
    assert_eq!(
        cat.set(&failed_set).unwrap().outcome.state,
        SetState::Failed
    );
    // bravo's set is intact after alpha's attempt.
    s.run("bravo", &["restore", next_id, "--target", &dst]).ok();
    same_bytes(&small_file, &dst_file, 4 << 20);

    let events = cat.server_events().unwrap();
    assert!(overlaps(&events).is_empty(), "{events:#?}");
    let granted_to_bravo = events.iter().any(|e| {
        e.kind == EventKind::LeaseGranted
            && e.host.as_deref() == Some("bravo")
            && e.drive == Some(drive)
    });
    assert!(granted_to_bravo, "{events:#?}");
    assert!(!events.iter().any(|e| e.kind == EventKind::Unfenced));
}

/// Spanning on `sanmover vtl --capacity 6M` (early warning 1/20 of the
/// capacity before the end): an 8 MB set spans two cartridges through the
/// server. The drives have PERSISTENT RESERVE: the host gives up its
/// reservation while the server's robot checks and labels the next
/// cartridge, and takes it over again. The restore through the server
/// loads each part's cartridge in turn and is byte-identical, and so does
/// a verify through the server, comparing with the restored copy.
#[test]
fn a_set_larger_than_a_cartridge_spans_two_on_drives_with_reservations() {
    let rig = PrivateRig::start();
    let (src, src_file) = rig.add_lun(20, 8);
    fill_random(&src_file, 8 << 20, 9);
    let (dst, dst_file) = rig.add_lun(21, 8);
    let vtl = Vtl::start(&rig.state.path().join("media"), 2, 4, "6M");
    let s = Server::start(&lib(&vtl), &["--lease-secs", "5"]);
    let r = s.run(
        "alpha",
        &[
            "--json",
            "backup",
            "--mode",
            "host",
            "--source",
            &src,
            "--pool",
            "p",
            "--block-size",
            "64K",
        ],
    );
    let sum = r.ok().json();
    let set = sum["set_id"].as_str().unwrap();
    let parts = sum["parts"]
        .as_array()
        .expect("a multi-volume set lists its parts");
    assert_eq!(parts.len(), 2, "{sum:#}");
    let trace = rig.state.path().join("restore.trace");
    let trace_arg = trace.to_str().unwrap();
    s.run(
        "bravo",
        &["--trace", trace_arg, "restore", set, "--target", &dst],
    )
    .ok();
    same_bytes(&src_file, &dst_file, 8 << 20);
    s.run("bravo", &["verify", set, "--compare-target", &dst])
        .ok();
    let cat = s.catalog();
    let row = cat.set(set).unwrap();
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(row.parts.len(), 2);
    assert_ne!(row.parts[0].volume, row.parts[1].volume);
    // Our drive's positions are trusted: each part has its block address
    // (the first part's is the set's), and the restore reached the second
    // part by LOCATE, not by REWIND + SPACE.
    assert_eq!(row.parts[0].tape_block, row.info.tape_block, "{row:#?}");
    let second = row.parts[1].tape_block.expect("part 2's block address");
    let shown = common::sanmover(["trace", "show", trace_arg]).ok().stdout;
    let locate = format!("LOCATE(10) block {second}");
    let located = shown.lines().any(|l| {
        l.split_once(&locate)
            .is_some_and(|(_, rest)| !rest.starts_with(|c: char| c.is_ascii_digit()))
    });
    let locates: Vec<&str> = shown.lines().filter(|l| l.contains("LOCATE")).collect();
    assert!(located, "no {locate} in the restore's trace: {locates:#?}");
    let events = cat.server_events().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Continued)
            .count(),
        3,
        "one each for the backup, the restore and the verify: {events:#?}"
    );
    assert!(overlaps(&events).is_empty(), "{events:#?}");
}
