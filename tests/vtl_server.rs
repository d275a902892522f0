//! `sanmover server` on `sanmover vtl`, whose drives have PERSISTENT
//! RESERVE: a host partitioned mid-set (SIGSTOP: it cannot heartbeat) is
//! fenced by PREEMPT AND ABORT, the drive goes to the next host without an
//! operator, and the partitioned host, once it runs again, meets
//! RESERVATION CONFLICT. Source disks come from a private tgt rig; every
//! process is stopped by pid, also when the test fails.

mod common;
use common::vtl::Vtl;
use common::{fill_random, PrivateRig, Run};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sanmover::catalog::{Catalog, SetState};
use sanmover::server::events::{overlaps, EventKind};

const HOSTS: [&str; 3] = ["alpha", "bravo", "op"];

fn secret(host: &str) -> String {
    format!("{host}-secret-0123456789")
}

/// A child process: SIGCONT then SIGKILL by pid on drop.
struct Proc(Child);

impl Proc {
    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Server {
    _proc: Proc,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(vtl: &Vtl, lease_secs: &str) -> Server {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts.toml");
        let mut text = String::new();
        for h in HOSTS {
            text += &format!("[[host]]\nname = \"{h}\"\nsecret = \"{}\"\n", secret(h));
        }
        text += "operator = true\n";
        std::fs::write(&hosts, text).unwrap();
        let log = dir.path().join("server.log");
        let mut c = Command::new(env!("CARGO_BIN_EXE_sanmover"));
        c.arg("--catalog").arg(dir.path().join("server.db"));
        c.args(["--initiator", "iqn.2026-12.org.sanmover.test:server"]);
        c.args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--library",
            &vtl.url(0),
        ]);
        c.args(["--drive", &vtl.url(1), "--drive", &vtl.url(2)]);
        c.arg("--hosts").arg(&hosts);
        c.args(["--lease-secs", lease_secs]);
        c.stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = c.spawn().unwrap();
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        let proc = Proc(child);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
        let addr = line
            .split_whitespace()
            .nth(4)
            .map(|w| w.trim_end_matches(','))
            .unwrap_or_else(|| {
                panic!(
                    "server did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        Server {
            _proc: proc,
            url: format!("http://{addr}"),
            dir,
        }
    }

    fn catalog(&self) -> Catalog {
        Catalog::open(&self.dir.path().join("server.db")).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn host(&self, host: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sanmover"));
        c.arg("--catalog")
            .arg(self.dir.path().join(format!("{host}.db")))
            .args([
                "--initiator",
                &format!("iqn.2026-12.org.sanmover.test:{host}"),
            ])
            .args(args)
            .args(["--server", &self.url])
            .env("SANMOVER_SERVER_TOKEN", format!("{host}:{}", secret(host)))
            .env_remove("SANMOVER_INITIATOR");
        c
    }

    fn run(&self, host: &str, args: &[&str]) -> Run {
        let out = self.host(host, args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn status(&self) -> serde_json::Value {
        self.run("op", &["--json", "server", "status"]).ok().json()
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn same_bytes(a: &Path, b: &Path, len: usize) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(
        x[..len] == y[..len],
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

/// The drive and set of the lease whose heartbeat named a set.
fn set_in_heartbeat(s: &Server) -> (usize, String) {
    let mut found = None;
    wait_for("a set in a heartbeat", Duration::from_secs(60), || {
        let st = s.status();
        found = st["leases"].as_array().and_then(|l| {
            l.iter().find(|l| !l["set"].is_null()).map(|l| {
                (
                    l["drive"].as_u64().unwrap() as usize,
                    l["set"].as_str().unwrap().to_string(),
                )
            })
        });
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn a_partitioned_host_is_fenced_by_preempt_and_abort() {
    let rig = PrivateRig::start();
    let (big, _) = rig.add_lun(10, 256);
    let (small, small_file) = rig.add_lun(11, 4);
    fill_random(&small_file, 4 << 20, 5);
    let (dst, dst_file) = rig.add_lun(12, 4);
    let vtl = Vtl::start(&rig.state.path().join("media"), 2, 4, "1G");
    let s = Server::start(&vtl, "3");
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
    let victim = Proc(
        s.host("alpha", &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (drive, failed_set) = set_in_heartbeat(&s);
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
    let s = Server::start(&vtl, "5");
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
    s.run("bravo", &["restore", set, "--target", &dst]).ok();
    same_bytes(&src_file, &dst_file, 8 << 20);
    s.run("bravo", &["verify", set, "--compare-target", &dst])
        .ok();
    let cat = s.catalog();
    let row = cat.set(set).unwrap();
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(row.parts.len(), 2);
    assert_ne!(row.parts[0].volume, row.parts[1].volume);
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
