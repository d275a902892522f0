//! The server's decisions without a device (the cop with explicit time),
//! and the service over an in-memory library and a real catalog file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::events::{overlaps, EventKind};
use super::library::MemLibrary;
use super::service::{DriveSpec, Service};
use super::state::*;
use crate::catalog::Catalog;
use crate::engine::volume::LabelState;
use crate::format::VolumeLabel;

const POLICY: Policy = Policy {
    lease_secs: 10,
    idle_unload_secs: 30,
    queue_secs: 100,
    poll_grace_secs: 20,
};

fn cop(drives: usize, barcodes: &[&str]) -> Cop {
    let drives = (0..drives)
        .map(|d| Drive {
            element: 1 + d as u16,
            serial: format!("SN{d}"),
            url: format!("iscsi://127.0.0.1/t/{d}"),
            holds: None,
            lease: None,
            fenced: None,
            idle_since: None,
            busy: false,
            reservations: false,
        })
        .collect();
    let carts: BTreeMap<String, Cartridge> = barcodes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            (
                b.to_string(),
                Cartridge {
                    barcode: b.to_string(),
                    home: 1000 + i as u16,
                    pool: Pool::Scratch,
                    volume: None,
                    note: None,
                    missing: false,
                },
            )
        })
        .collect();
    Cop::new(POLICY, drives, carts, 0)
}

fn backup(pool: &str) -> Want {
    Want::Backup {
        pool: pool.into(),
        copy_manager: None,
        by_server: false,
    }
}

/// Run every robot job as if it succeeded, labelling scratch cartridges.
fn robot_ok(c: &mut Cop, now: Now) {
    while let Some(j) = c.next_job() {
        let labelled = j.steps.iter().any(|s| matches!(s, Step::Label { .. }));
        let r = if labelled {
            JobResult::Labelled(uuid::Uuid::new_v4())
        } else {
            JobResult::Done
        };
        c.job_done(&j, r, now);
    }
}

fn granted(c: &mut Cop, t: Ticket, host: &str, now: Now) -> LeaseId {
    match c.poll(t, host, now).unwrap() {
        TicketView::Granted { lease } => lease,
        v => panic!("ticket {t}: {v:?}"),
    }
}

#[test]
fn three_hosts_two_drives_fifo_with_positions() {
    let mut c = cop(2, &["A", "B", "C"]);
    let t1 = c.request("h1", backup("p"), 0).unwrap();
    let t2 = c.request("h2", backup("p"), 0).unwrap();
    let t3 = c.request("h3", backup("p"), 0).unwrap();
    assert_eq!(
        c.poll(t3, "h3", 0).unwrap(),
        TicketView::Waiting { position: 1 }
    );
    assert!(matches!(
        c.poll(t1, "h1", 0).unwrap(),
        TicketView::Preparing { .. }
    ));
    robot_ok(&mut c, 1);
    let l1 = granted(&mut c, t1, "h1", 1);
    let l2 = granted(&mut c, t2, "h2", 1);
    assert_ne!(c.leases[&l1].drive, c.leases[&l2].drive);
    // Another host's poll of a ticket is not an answer.
    assert!(c.poll(t3, "h1", 1).is_err());
    assert_eq!(
        c.poll(t3, "h3", 1).unwrap(),
        TicketView::Waiting { position: 1 }
    );
    c.heartbeat(l1, "h1", None, 2).unwrap();
    assert_eq!(c.release(l1, "h2", false, 3), Err(LeaseError::NotYours(l1)));
    c.release(l1, "h1", false, 3).unwrap();
    robot_ok(&mut c, 4);
    let l3 = granted(&mut c, t3, "h3", 4);
    assert_eq!(c.leases[&l3].drive, c.leases[&l1].drive);
    // The drive still held the pool's open cartridge: no move, a label check.
    assert_eq!(c.leases[&l3].barcode, c.leases[&l1].barcode);
    assert!(overlaps(&c.drain_events()).is_empty());
}

#[test]
fn requests_before_the_robot_ran_get_different_cartridges() {
    let mut c = cop(2, &["A", "B", "C"]);
    let t1 = c.request("h1", backup("p"), 0).unwrap();
    let t2 = c.request("h2", backup("p"), 0).unwrap();
    robot_ok(&mut c, 1);
    let (l1, l2) = (granted(&mut c, t1, "h1", 1), granted(&mut c, t2, "h2", 1));
    assert_ne!(c.leases[&l1].barcode, c.leases[&l2].barcode);
}

#[test]
fn empty_pool_and_bad_pool_are_refused_at_once() {
    let mut c = cop(1, &[]);
    assert_eq!(
        c.request("h", backup("p"), 0),
        Err(Denied::EmptyPool("p".into()))
    );
    let mut c = cop(1, &["A"]);
    assert!(matches!(
        c.request("h", backup("a:b"), 0),
        Err(Denied::BadPool(_))
    ));
    c.cartridges.get_mut("A").unwrap().pool = Pool::Full("p".into());
    assert_eq!(
        c.request("h", backup("p"), 0),
        Err(Denied::EmptyPool("p".into()))
    );
}

#[test]
fn expired_lease_fences_the_drive_until_an_operator_releases_it() {
    let mut c = cop(1, &["A", "B"]);
    let t1 = c.request("h1", backup("p"), 0).unwrap();
    robot_ok(&mut c, 0);
    let l1 = granted(&mut c, t1, "h1", 0);
    let set = uuid::Uuid::new_v4();
    c.heartbeat(l1, "h1", Some(set), 5).unwrap();
    let t2 = c.request("h2", backup("p"), 6).unwrap();
    assert!(c.tick(14).is_empty());
    let gone = c.tick(15);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].set, Some(set));
    assert!(c.drives[0].fenced.is_some());
    // Never reassigned silently, however long the others wait.
    for now in 16..60 {
        c.poll(t2, "h2", now).unwrap();
        c.tick(now);
        robot_ok(&mut c, now);
        assert_eq!(
            c.poll(t2, "h2", now).unwrap(),
            TicketView::Waiting { position: 1 }
        );
    }
    // The dead host's lease is gone for it too.
    assert!(matches!(
        c.heartbeat(l1, "h1", None, 60),
        Err(LeaseError::NotActive { .. })
    ));
    assert_eq!(c.operator_release(0, 61).unwrap().lease, l1);
    assert_eq!(c.operator_release(0, 61), Err(LeaseError::NotFenced(0)));
    robot_ok(&mut c, 61);
    let l2 = granted(&mut c, t2, "h2", 61);
    assert_eq!(c.leases[&l2].barcode, c.leases[&l1].barcode);
    let ev = c.drain_events();
    assert!(overlaps(&ev).is_empty());
    assert!(ev.iter().any(|e| e.kind == EventKind::Fenced));
    assert!(ev.iter().any(|e| e.kind == EventKind::Unfenced));
}

/// A drive with PERSISTENT RESERVE: the expired host is fenced by a
/// PREEMPT AND ABORT job for its lease's key, after which the drive goes to
/// the next host without an operator; a released lease's reservation is
/// taken back by the same job.
#[test]
fn expired_lease_on_a_pr_drive_is_preempted_and_the_drive_reassigned() {
    let mut c = cop(1, &["A", "B"]);
    c.drives[0].reservations = true;
    let t1 = c.request("h1", backup("p"), 0).unwrap();
    robot_ok(&mut c, 0);
    let l1 = granted(&mut c, t1, "h1", 0);
    c.heartbeat(l1, "h1", Some(uuid::Uuid::new_v4()), 5)
        .unwrap();
    let t2 = c.request("h2", backup("p"), 6).unwrap();
    assert_eq!(c.tick(15).len(), 1);
    assert!(c.drives[0].fenced.is_some());
    let job = c.next_job().expect("a fence job");
    let victim = super::library::lease_key(l1);
    assert_eq!(job.steps, vec![Step::Fence { victim }]);
    c.poll(t2, "h2", 15).unwrap();
    assert_eq!(
        c.poll(t2, "h2", 15).unwrap(),
        TicketView::Waiting { position: 1 }
    );
    c.job_done(&job, JobResult::Done, 16);
    assert!(c.drives[0].fenced.is_none());
    robot_ok(&mut c, 16);
    let l2 = granted(&mut c, t2, "h2", 16);
    assert_eq!(c.leases[&l2].barcode, c.leases[&l1].barcode);
    assert_eq!(
        c.drives[0].holds.as_deref(),
        Some(c.leases[&l1].barcode.as_str())
    );
    c.release(l2, "h2", false, 20).unwrap();
    let reclaim = c.next_job().expect("the reservation taken back");
    let victim = super::library::lease_key(l2);
    assert_eq!(reclaim.steps, vec![Step::Fence { victim }]);
    c.job_done(&reclaim, JobResult::Done, 20);
    let ev = c.drain_events();
    assert!(overlaps(&ev).is_empty());
    assert_eq!(
        ev.iter().filter(|e| e.kind == EventKind::Preempted).count(),
        1
    );
    assert!(!ev.iter().any(|e| e.kind == EventKind::Unfenced));
}

/// A PREEMPT AND ABORT that fails leaves the drive fenced for an operator.
#[test]
fn a_failed_preempt_keeps_the_drive_fenced() {
    let mut c = cop(1, &["A"]);
    c.drives[0].reservations = true;
    let t1 = c.request("h1", backup("p"), 0).unwrap();
    robot_ok(&mut c, 0);
    let l1 = granted(&mut c, t1, "h1", 0);
    c.tick(15);
    let job = c.next_job().unwrap();
    let failed = JobResult::Failed {
        error: "RESERVATION CONFLICT".into(),
        holds: None,
    };
    c.job_done(&job, failed, 16);
    assert_eq!(c.drives[0].fenced.as_ref().map(|f| f.lease), Some(l1));
    assert!(c.drives[0].holds.is_some(), "a fence moves no cartridge");
    assert_eq!(c.operator_release(0, 17).unwrap().lease, l1);
}

#[test]
fn all_drives_fenced_refuses_new_requests() {
    let mut c = cop(1, &["A"]);
    let t = c.request("h1", backup("p"), 0).unwrap();
    robot_ok(&mut c, 0);
    granted(&mut c, t, "h1", 0);
    c.tick(100);
    assert_eq!(c.request("h2", backup("p"), 100), Err(Denied::AllFenced));
}

#[test]
fn waiters_time_out_and_vanish_when_they_stop_polling() {
    let mut c = cop(1, &["A"]);
    let t1 = c.request("h1", backup("p"), 0).unwrap();
    robot_ok(&mut c, 0);
    let l1 = granted(&mut c, t1, "h1", 0);
    let t2 = c.request("h2", backup("p"), 0).unwrap();
    let t3 = c.request("h3", backup("p"), 0).unwrap();
    for now in 1..=25 {
        c.heartbeat(l1, "h1", None, now).unwrap();
        c.poll(t2, "h2", now).unwrap();
        c.tick(now);
    }
    // h3 never polled after its request: dropped after the grace period.
    assert!(matches!(
        c.poll(t3, "h3", 25).unwrap(),
        TicketView::Denied { .. }
    ));
    assert_eq!(
        c.poll(t2, "h2", 25).unwrap(),
        TicketView::Waiting { position: 1 }
    );
    for now in 26..=100 {
        c.heartbeat(l1, "h1", None, now).unwrap();
        c.poll(t2, "h2", now).unwrap();
        c.tick(now);
    }
    assert_eq!(
        c.poll(t2, "h2", 100).unwrap(),
        TicketView::Denied {
            reason: Denied::QueueTimeout(100)
        }
    );
}

#[test]
fn idle_drive_unloads_to_home_slot() {
    let mut c = cop(1, &["A"]);
    let t = c.request("h1", backup("p"), 0).unwrap();
    robot_ok(&mut c, 0);
    let l = granted(&mut c, t, "h1", 0);
    c.release(l, "h1", false, 1).unwrap();
    c.tick(30);
    assert!(c.next_job().is_none());
    c.tick(31);
    let j = c.next_job().unwrap();
    assert_eq!(
        j.steps,
        vec![Step::Unload {
            barcode: "A".into(),
            home: 1000
        }]
    );
    c.job_done(&j, JobResult::Done, 31);
    assert_eq!(c.drives[0].holds, None);
}

#[test]
fn foreign_label_retires_the_cartridge_and_fails_the_lease() {
    let mut c = cop(1, &["A", "B"]);
    let t = c.request("h1", backup("p"), 0).unwrap();
    let j = c.next_job().unwrap();
    c.job_done(&j, JobResult::Foreign("a foreign label".into()), 0);
    assert!(matches!(
        c.poll(t, "h1", 0).unwrap(),
        TicketView::Denied {
            reason: Denied::PrepareFailed(_)
        }
    ));
    assert_eq!(c.cartridges["A"].pool, Pool::Retired);
    // The next request gets the other cartridge.
    let t2 = c.request("h1", backup("p"), 1).unwrap();
    robot_ok(&mut c, 1);
    let l = granted(&mut c, t2, "h1", 1);
    assert_eq!(c.leases[&l].barcode, "B");
}

#[test]
fn restore_waits_for_the_drive_holding_its_cartridge() {
    let mut c = cop(2, &["A", "B"]);
    let t = c.request("h1", backup("p"), 0).unwrap();
    robot_ok(&mut c, 0);
    let l = granted(&mut c, t, "h1", 0);
    let barcode = c.leases[&l].barcode.clone();
    let want = Want::Restore {
        barcode: barcode.clone(),
        set: uuid::Uuid::new_v4(),
        file: 1,
    };
    let r = c.request("h2", want, 1).unwrap();
    robot_ok(&mut c, 1);
    assert_eq!(
        c.poll(r, "h2", 1).unwrap(),
        TicketView::Waiting { position: 1 }
    );
    c.release(l, "h1", false, 2).unwrap();
    robot_ok(&mut c, 2);
    let lr = granted(&mut c, r, "h2", 2);
    assert_eq!(c.leases[&lr].drive, c.leases[&l].drive);
}

#[test]
fn threads_never_share_a_drive() {
    let c = Arc::new(Mutex::new(cop(2, &["A", "B", "C", "D"])));
    let mut handles = Vec::new();
    for h in 0..6 {
        let c = Arc::clone(&c);
        handles.push(std::thread::spawn(move || {
            let host = format!("h{h}");
            for round in 0..50u64 {
                let now = round * 10;
                let t = c.lock().unwrap().request(&host, backup("p"), now).unwrap();
                loop {
                    let mut g = c.lock().unwrap();
                    robot_ok(&mut g, now);
                    match g.poll(t, &host, now).unwrap() {
                        TicketView::Granted { lease } => {
                            let d = g.leases[&lease].drive;
                            assert_eq!(g.drives[d].lease, Some(lease));
                            drop(g);
                            std::thread::yield_now();
                            c.lock().unwrap().release(lease, &host, false, now).unwrap();
                            break;
                        }
                        TicketView::Denied { reason } => panic!("{reason}"),
                        _ => {}
                    }
                    drop(g);
                    std::thread::yield_now();
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let ev = c.lock().unwrap().drain_events();
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == EventKind::LeaseGranted)
            .count(),
        300
    );
    assert!(overlaps(&ev).is_empty());
}

#[test]
fn overlaps_finds_a_double_grant() {
    let e = |kind, lease| super::events::Event {
        at: 0,
        kind,
        lease: Some(lease),
        host: None,
        drive: Some(0),
        barcode: None,
        detail: String::new(),
    };
    let log = [
        e(EventKind::LeaseGranted, 1),
        e(EventKind::LeaseGranted, 2),
        e(EventKind::LeaseReleased, 1),
    ];
    assert_eq!(overlaps(&log).len(), 1);
}

fn service(dir: &std::path::Path, lib: &MemLibrary, policy: Policy) -> Arc<Service> {
    let cat = Catalog::open(&dir.join("cat.db")).unwrap();
    let drives: Vec<DriveSpec> = (0..2)
        .map(|d| DriveSpec {
            url: format!("mem://drive{d}"),
            serial: format!("SN{d}"),
        })
        .collect();
    Service::start(cat, Box::new(lib.clone()), &drives, policy).unwrap()
}

fn wait_granted(svc: &Service, t: Ticket, host: &str) -> LeaseId {
    for _ in 0..20 {
        svc.robot_step(Duration::ZERO).unwrap();
        match svc.poll(t, host, Duration::ZERO).unwrap() {
            TicketView::Granted { lease } => return lease,
            TicketView::Denied { reason } => panic!("{reason}"),
            _ => {}
        }
    }
    panic!("ticket {t} not granted");
}

#[test]
fn service_labels_scratch_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let lib = MemLibrary::new(2, &["A", "B", "C"]);
    let svc = service(dir.path(), &lib, POLICY);
    let t = svc.request("h1", backup("p")).unwrap();
    let l = wait_granted(&svc, t, "h1");
    let g = svc.grant(l, "h1").unwrap();
    let vol = g.volume.expect("labelled");
    match &lib.state.lock().unwrap().labels[&g.lease.barcode] {
        LabelState::Ours(label) => assert_eq!(label.uuid, vol),
        other => panic!("{other:?}"),
    }
    svc.shutdown();
    drop(svc);
    // Restart with the lease outstanding: it goes on, on the same drive.
    let svc = service(dir.path(), &lib, POLICY);
    let st = svc.status();
    assert_eq!(st.leases.len(), 1);
    assert_eq!(st.drives[g.lease.drive].lease, Some(l));
    assert_eq!(
        st.drives[g.lease.drive].holds.as_deref(),
        Some(g.lease.barcode.as_str())
    );
    assert_eq!(
        st.cartridges
            .iter()
            .find(|c| c.barcode == g.lease.barcode)
            .unwrap()
            .pool,
        Pool::Open("p".into())
    );
    svc.heartbeat(l, "h1", None).unwrap();
    svc.release(l, "h1", false).unwrap();
    assert!(overlaps(&svc.events().unwrap()).is_empty());
}

#[test]
fn a_cartridge_gone_from_the_library_is_kept_and_never_planned_with() {
    let dir = tempfile::tempdir().unwrap();
    let lib = MemLibrary::new(2, &["A", "B"]);
    let svc = service(dir.path(), &lib, POLICY);
    let t = svc.request("h1", backup("p")).unwrap();
    let l = wait_granted(&svc, t, "h1");
    svc.release(l, "h1", false).unwrap();
    svc.shutdown();
    drop(svc);
    // Someone takes A out of the library while the server is down.
    for b in lib.state.lock().unwrap().elements.values_mut() {
        if b.as_deref() == Some("A") {
            *b = None;
        }
    }
    let svc = service(dir.path(), &lib, POLICY);
    let st = svc.status();
    let a = st.cartridges.iter().find(|c| c.barcode == "A").unwrap();
    assert!(a.missing && a.pool == Pool::Open("p".into()), "{a:?}");
    let t = svc.request("h1", backup("p")).unwrap();
    let l = wait_granted(&svc, t, "h1");
    assert_eq!(svc.grant(l, "h1").unwrap().lease.barcode, "B");
    let want = Want::Restore {
        barcode: "A".into(),
        set: uuid::Uuid::new_v4(),
        file: 1,
    };
    assert!(matches!(
        svc.request("h2", want),
        Err(super::service::ServiceError::Denied(
            Denied::UnknownCartridge(_)
        ))
    ));
}

#[test]
fn service_refuses_a_foreign_scratch_and_a_refused_move() {
    let dir = tempfile::tempdir().unwrap();
    let lib = MemLibrary::new(2, &["A", "B"]);
    let foreign = LabelState::Ours(VolumeLabel::new("theirs", uuid::Uuid::new_v4(), 0).unwrap());
    lib.state
        .lock()
        .unwrap()
        .labels
        .insert("A".into(), foreign.clone());
    let svc = service(dir.path(), &lib, POLICY);
    let t = svc.request("h1", backup("p")).unwrap();
    for _ in 0..5 {
        svc.robot_step(Duration::ZERO).unwrap();
    }
    match svc.poll(t, "h1", Duration::ZERO).unwrap() {
        TicketView::Denied { reason } => {
            assert!(reason.to_string().contains("not blank"), "{reason}")
        }
        v => panic!("{v:?}"),
    }
    // Nothing was written over the foreign tape.
    assert!(
        matches!(&lib.state.lock().unwrap().labels["A"], LabelState::Ours(l) if l.name == "theirs")
    );
    // A changer that refuses the move: a clear error, cartridge where it was.
    lib.state.lock().unwrap().refuse_moves_to = vec![1, 2];
    let t = svc.request("h1", backup("p")).unwrap();
    for _ in 0..5 {
        svc.robot_step(Duration::ZERO).unwrap();
    }
    match svc.poll(t, "h1", Duration::ZERO).unwrap() {
        TicketView::Denied { reason } => {
            assert!(reason.to_string().contains("refused"), "{reason}")
        }
        v => panic!("{v:?}"),
    }
    let st = svc.status();
    assert!(st
        .cartridges
        .iter()
        .any(|c| c.barcode == "A" && c.pool == Pool::Retired));
}

mod http {
    use super::*;
    use crate::server::auth::Hosts;
    use crate::server::client::{Client, ClientError};
    use crate::server::http::{serve, HttpConfig, HttpError, RequestBody, Running, MAX_BODY};

    const HOSTS: &str = r#"
[[host]]
name = "h1"
secret = "secret-of-host-one"
[[host]]
name = "op"
secret = "secret-of-the-operator"
operator = true
"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        svc: Arc<Service>,
        http: Option<Running>,
        robot: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            if let Some(h) = self.http.take() {
                h.stop();
            }
            self.svc.shutdown();
            if let Some(r) = self.robot.take() {
                let _ = r.join();
            }
        }
    }

    fn fixture(tls: Option<Arc<rustls::ServerConfig>>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let lib = MemLibrary::new(2, &["A", "B"]);
        let svc = service(dir.path(), &lib, POLICY);
        let robot = svc.spawn_robot(Duration::from_millis(20));
        let http = serve(
            svc.clone(),
            HttpConfig {
                jobs: None,
                listen: "127.0.0.1:0".parse().unwrap(),
                hosts: Hosts::parse(HOSTS).unwrap(),
                tls,
            },
        )
        .unwrap();
        Fixture {
            _dir: dir,
            svc,
            http: Some(http),
            robot: Some(robot),
        }
    }

    fn url(f: &Fixture, scheme: &str) -> String {
        format!("{scheme}://{}", f.http.as_ref().unwrap().addr)
    }

    #[test]
    fn unknown_host_and_wrong_secret_get_401_and_nothing_else() {
        let f = fixture(None);
        let base = url(&f, "http");
        for token in ["nobody:secret-of-host-one", "h1:wrong-secret-here!", "h1"] {
            let r = ureq::get(&format!("{base}/v1/status"))
                .set("Authorization", &format!("Bearer {token}"))
                .call();
            match r {
                Err(ureq::Error::Status(401, resp)) => {
                    assert_eq!(resp.into_string().unwrap(), "", "{token}")
                }
                other => panic!("{token}: {other:?}"),
            }
        }
        let r = ureq::get(&format!("{base}/v1/status")).call();
        assert!(matches!(r, Err(ureq::Error::Status(401, _))));
        let c = Client::new(&base, "h1:not-the-secret-at-all", None).unwrap();
        assert!(matches!(c.status(), Err(ClientError::Unauthorized)));
    }

    #[test]
    fn a_lease_through_http_and_limits() {
        let f = fixture(None);
        let base = url(&f, "http");
        let c = Client::new(&base, "h1:secret-of-host-one", None).unwrap();
        let g = c
            .acquire(
                &RequestBody::Backup {
                    pool: "p".into(),
                    copy_manager: None,
                },
                |_| {},
            )
            .unwrap();
        assert!(g.volume.is_some());
        assert!(g.drive_url.starts_with("mem://drive"));
        c.heartbeat(g.lease.id, None).unwrap();
        let st = c.status().unwrap();
        assert_eq!(st.leases.len(), 1);
        // Only an operator releases drives; an unfenced drive is refused.
        assert!(matches!(
            c.release_drive(0),
            Err(ClientError::Http { status: 403, .. })
        ));
        let op = Client::new(&base, "op:secret-of-the-operator", None).unwrap();
        assert!(matches!(
            op.release_drive(0),
            Err(ClientError::Http { status: 409, .. })
        ));
        // Another host cannot release h1's lease.
        assert!(matches!(
            op.release(g.lease.id, false),
            Err(ClientError::Http { status: 409, .. })
        ));
        c.release(g.lease.id, false).unwrap();
        // An empty pool is a clear refusal.
        let e = Client::new(&base, "h1:secret-of-host-one", None).unwrap();
        f.svc.status();
        let big = "x".repeat(MAX_BODY + 1);
        let r = ureq::post(&format!("{base}/v1/requests"))
            .set("Authorization", "Bearer h1:secret-of-host-one")
            .send_string(&big);
        assert!(matches!(r, Err(ureq::Error::Status(413, _))), "{r:?}");
        let r = ureq::post(&format!("{base}/v1/requests"))
            .set("Authorization", "Bearer h1:secret-of-host-one")
            .send_string("{not json");
        assert!(matches!(r, Err(ureq::Error::Status(400, _))), "{r:?}");
        assert!(matches!(
            e.grant(9999),
            Err(ClientError::Http { status: 404, .. })
        ));
        let ev = op.events().unwrap();
        assert!(crate::server::events::overlaps(&ev).is_empty());
    }

    #[test]
    fn empty_pool_is_refused_over_http() {
        let f = fixture(None);
        let base = url(&f, "http");
        let c = Client::new(&base, "h1:secret-of-host-one", None).unwrap();
        for p in ["a", "b"] {
            let g = c
                .acquire(
                    &RequestBody::Backup {
                        pool: p.into(),
                        copy_manager: None,
                    },
                    |_| {},
                )
                .unwrap();
            c.release(g.lease.id, false).unwrap();
        }
        // Both cartridges now belong to pools a and b: pool c has none.
        match c.acquire(
            &RequestBody::Backup {
                pool: "c".into(),
                copy_manager: None,
            },
            |_| {},
        ) {
            Err(ClientError::Http {
                status: 409,
                kind,
                message,
            }) => {
                assert_eq!(kind, "empty_pool");
                assert!(message.contains("no cartridge left"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connections_past_the_cap_are_closed_and_service_resumes() {
        use std::io::Read as _;
        use std::net::TcpStream;
        let f = fixture(None);
        let addr = f.http.as_ref().unwrap().addr;
        let idle: Vec<TcpStream> = (0..crate::server::http::MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let mut extra = TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut b = [0u8; 1];
        assert_eq!(extra.read(&mut b).unwrap_or(0), 0, "closed at accept");
        drop(idle);
        let c = Client::new(&url(&f, "http"), "h1:secret-of-host-one", None).unwrap();
        let mut ok = false;
        for _ in 0..50 {
            if c.status().is_ok() {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            ok,
            "the server answers again once the idle connections are gone"
        );
    }

    #[test]
    fn refuses_beyond_loopback_without_tls() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path(), &MemLibrary::new(2, &["A"]), POLICY);
        let r = serve(
            svc,
            HttpConfig {
                jobs: None,
                listen: "0.0.0.0:0".parse().unwrap(),
                hosts: Hosts::parse(HOSTS).unwrap(),
                tls: None,
            },
        );
        assert!(matches!(r, Err(HttpError::NeedsTls(_))));
    }

    /// A self-signed certificate for 127.0.0.1 made by the openssl tool.
    fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let st = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=sanmover-test"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            // An end-entity certificate (webpki refuses a CA as one).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("this test needs the openssl command (Debian package openssl)");
        assert!(st.success(), "openssl req failed");
        (cert, key)
    }

    #[test]
    fn tls_control_port() {
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(certs.path());
        let cfg = crate::server::tls::server_config(&cert, &key).unwrap();
        let f = fixture(Some(cfg));
        let https = url(&f, "https");
        let c = Client::new(&https, "h1:secret-of-host-one", Some(&cert)).unwrap();
        assert_eq!(c.status().unwrap().drives.len(), 2);
        // Plain HTTP to the TLS port gets no answer.
        let plain = Client::new(&url(&f, "http"), "h1:secret-of-host-one", None).unwrap();
        assert!(plain.status().is_err());
        // A client that does not trust the certificate refuses it.
        let other = tempfile::tempdir().unwrap();
        let (other_ca, _) = self_signed(other.path());
        let c = Client::new(&https, "h1:secret-of-host-one", Some(&other_ca)).unwrap();
        assert!(matches!(c.status(), Err(ClientError::Transport(_))));
    }
}
