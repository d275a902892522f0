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
    assert!(err.contains("RESERVATION CONFLICT"), "{err}");
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
