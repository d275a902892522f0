//! `sanmover server` against the tgt library rig (a changer with two
//! drives and eight barcoded cartridges): hosts back up and restore
//! through the server, each a process of its own with its own initiator
//! name, credential and catalog. Every test takes the library lock, starts
//! from blank cartridges in their home slots and a fresh server catalog,
//! and stops every process it started by pid, also when it fails.

mod common;
use common::{fill_random, rig, sanmover, sm, Run};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sanmover::catalog::{Catalog, SetState};
use sanmover::device::{Changer, Tape};
use sanmover::engine::volume::{read_label, LabelState};
use sanmover::scsi::smc::ElementAddress;
use sanmover::server::events::{overlaps, Event, EventKind};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;

const HOSTS: [&str; 3] = ["alpha", "bravo", "charlie"];

fn secret(host: &str) -> String {
    format!("{host}-secret-0123456789")
}

/// The library, held by one test at a time; blank again when the test
/// ends (pass or fail), so the suites after this one (validate's library
/// checks) find scratch cartridges.
struct LibraryHeld(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Drop for LibraryHeld {
    fn drop(&mut self) {
        if std::panic::catch_unwind(blank_library).is_err() {
            eprintln!("tgt_server: could not blank the library after the test");
        }
    }
}

fn library() -> LibraryHeld {
    static LOCK: Mutex<()> = Mutex::new(());
    LibraryHeld(LOCK.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Every cartridge back in its home slot (LIB00N in slot N), then every
/// slot cartridge a blank tape image again.
fn blank_library() {
    blank_library_of(rig().get("SANMOVER_RIG_LIB_CART_MB"));
}

/// [`blank_library`] with cartridges of `mb` MB (tgt reads the image's
/// size when the changer loads it).
fn blank_library_of(mb: &str) {
    blank_home();
    let media = Path::new(rig().get("SANMOVER_RIG_STATE_DIR")).join("media");
    for b in rig().get("SANMOVER_RIG_LIB_BARCODES").split(',') {
        let f = media.join(b);
        std::fs::remove_file(&f).unwrap();
        let st = Command::new("tgtimg")
            .args(["--op=new", "--device-type=tape", "--type=data"])
            .arg(format!("--barcode={b}"))
            .arg(format!("--size={mb}"))
            .arg(format!("--file={}", f.display()))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "tgtimg {b}");
    }
}

/// Extra disk LUNs on the rig, deleted on drop.
struct Luns(Vec<u32>);

impl Luns {
    fn add(&mut self, lun: u32, mb: u32) -> (String, PathBuf) {
        let tool = rig().get("SANMOVER_RIG_LUN_TOOL");
        let _ = Command::new("bash")
            .args([tool, "del", &lun.to_string()])
            .output();
        let out = Command::new("bash")
            .args([tool, "add", &lun.to_string(), &mb.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.0.push(lun);
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let file = Path::new(rig().get("SANMOVER_RIG_STATE_DIR")).join(format!("lun-{lun}.img"));
        (url, file)
    }
}

impl Drop for Luns {
    fn drop(&mut self) {
        let tool = rig().get("SANMOVER_RIG_LUN_TOOL");
        for l in &self.0 {
            let _ = Command::new("bash")
                .args([tool, "del", &l.to_string()])
                .output();
        }
    }
}

/// A child process stopped by pid on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sanmover server` on a free loopback port.
struct Server {
    /// Stopped by pid when the server is dropped.
    _proc: Proc,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::start_in(tempfile::tempdir().unwrap(), &args)
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        use std::io::BufRead;
        let hosts = dir.path().join("hosts.toml");
        let mut text = String::new();
        for h in HOSTS {
            text += &format!("[[host]]\nname = \"{h}\"\nsecret = \"{}\"\n", secret(h));
        }
        text += &format!(
            "[[host]]\nname = \"op\"\nsecret = \"{}\"\noperator = true\n",
            secret("op")
        );
        std::fs::write(&hosts, text).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_sanmover"));
        c.arg("--catalog").arg(dir.path().join("server.db"));
        c.args([
            "--initiator",
            "iqn.2026-11.org.sanmover.test:server",
            "server",
        ]);
        c.args(["--library", rig().get("SANMOVER_RIG_CHANGER")]);
        for n in 0..2 {
            c.args(["--drive", rig().get(&format!("SANMOVER_RIG_LIB_DRIVE{n}"))]);
        }
        c.arg("--hosts").arg(&hosts).args(extra);
        c.stdout(Stdio::piped()).stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("server.log"))
                .unwrap(),
        );
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
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
                )
            })
            .to_string();
        Server {
            _proc: proc,
            url: format!("http://{addr}"),
            dir,
        }
    }

    /// SIGKILL the server and start a new one on `addr` with the same
    /// catalog and hosts file.
    fn restart_on(mut self, addr: &str) -> Server {
        let _ = self._proc.0.kill();
        let _ = self._proc.0.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        Server::start_in(dir, &["--lease-secs", "20", "--listen", addr])
    }

    fn catalog(&self) -> Catalog {
        Catalog::open(&self.dir.path().join("server.db")).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A host's command line: its own initiator name, credential and
    /// catalog.
    fn host(&self, host: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sanmover"));
        c.arg("--catalog")
            .arg(self.dir.path().join(format!("{host}.db")))
            .args([
                "--initiator",
                &format!("iqn.2026-11.org.sanmover.test:{host}"),
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

fn backup_json(s: &Server, host: &str, source: &str, pool: &str) -> serde_json::Value {
    s.run(
        host,
        &[
            "--json", "backup", "--mode", "host", "--source", source, "--pool", pool,
        ],
    )
    .ok()
    .json()
}

fn restore_ok(s: &Server, host: &str, set: &str, target: &str) {
    s.run(host, &["restore", set, "--target", target]).ok();
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

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A host's backup in the background, output piped.
fn spawn_backup(s: &Server, host: &str, args: &[&str]) -> Proc {
    let mut all = vec!["--json", "backup", "--mode", "host"];
    all.extend_from_slice(args);
    let mut c = s.host(host, &all);
    Proc(
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Wait for a background backup; it must succeed. Its JSON summary.
fn finish(mut p: Proc, what: &str) -> serde_json::Value {
    use std::io::Read as _;
    let (mut out, mut err) = (String::new(), String::new());
    p.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(p.0.wait().unwrap().success(), "{what}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn count(events: &[Event], kind: EventKind) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}

/// Wait until the server knows the set a host writes (its heartbeat
/// carried it); the drive and the set id.
fn set_in_heartbeat(s: &Server) -> (usize, String) {
    let mut found = None;
    wait_for("a set in a heartbeat", Duration::from_secs(30), || {
        let st = s.status();
        let l = st["leases"]
            .as_array()
            .and_then(|l| l.iter().find(|l| !l["set"].is_null()).cloned());
        found = l.map(|l| {
            (
                l["drive"].as_u64().unwrap() as usize,
                l["set"].as_str().unwrap().to_string(),
            )
        });
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn three_hosts_share_two_drives() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let mut sources = Vec::new();
    for (i, _) in HOSTS.iter().enumerate() {
        let (src, file) = luns.add(60 + i as u32, 8);
        fill_random(&file, 8 << 20, 7 + i as u64);
        let (dst, dst_file) = luns.add(70 + i as u32, 8);
        sources.push((src, file, dst, dst_file));
    }
    let s = Server::start(&["--lease-secs", "5"]);
    let children: Vec<Proc> = HOSTS
        .iter()
        .zip(&sources)
        .map(|(h, (src, ..))| spawn_backup(&s, h, &["--source", src, "--block-size", "64K"]))
        .collect();
    let sets: Vec<String> = children
        .into_iter()
        .zip(HOSTS)
        .map(|(p, h)| finish(p, h)["set_id"].as_str().unwrap().to_string())
        .collect();
    // Every set restores byte-identical, through the server.
    for ((set, (_, file, dst, dst_file)), h) in sets.iter().zip(&sources).zip(HOSTS) {
        restore_ok(&s, h, set, dst);
        same_bytes(file, dst_file, 8 << 20);
    }
    // The server's own event log: no drive held by two hosts at once.
    let cat = s.catalog();
    let events = cat.server_events().unwrap();
    assert!(overlaps(&events).is_empty(), "{events:#?}");
    assert_eq!(
        count(&events, EventKind::LeaseGranted),
        6,
        "3 backups and 3 restores"
    );
    // The catalog says which cartridge and tape file each set is on.
    let carts = cat.server_cartridges().unwrap();
    for set in &sets {
        let row = cat.set(set).unwrap();
        assert_eq!(row.outcome.state, SetState::Complete);
        let cart = carts
            .iter()
            .find(|c| c.volume == Some(row.info.volume))
            .unwrap();
        assert!(cart.barcode.starts_with("LIB"), "{cart:?}");
        assert!(row.info.file_number >= 1);
    }
    let st = s.status();
    assert_eq!(st["drives"].as_array().unwrap().len(), 2);
    assert!(st["queue"].as_array().unwrap().is_empty());
}

/// While `drive` is fenced, other work goes to the other drive, and only
/// an operator's `--force` releases it.
fn fenced_until_released(s: &Server, drive: usize, failed_set: &str, small: &str) {
    let other = backup_json(s, "bravo", small, "other");
    let st = s.status();
    assert!(st["drives"][drive]["lease"].is_null());
    assert!(!st["drives"][drive]["fenced"].is_null());
    assert!(st["drives"][1 - drive]["holds"].is_string());
    let failed_volume = s.catalog().set(failed_set).unwrap().info.volume;
    assert_ne!(other["volume"], failed_volume.to_string());
    let d = drive.to_string();
    let r = s.run("op", &["server", "drives", "release", &d]);
    assert_eq!(r.code, 1, "a command-line matter");
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    let r = s.run("bravo", &["server", "drives", "release", &d, "--force"]);
    assert_eq!(r.code, 35, "a host that is not an operator: {}", r.stderr);
    s.run("op", &["server", "drives", "release", &d, "--force"])
        .ok();
}

#[test]
fn a_killed_host_fences_its_drive_until_an_operator_releases_it() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (big, _) = luns.add(80, 160);
    let (small, small_file) = luns.add(81, 4);
    fill_random(&small_file, 4 << 20, 99);
    let (dst, dst_file) = luns.add(82, 4);
    let s = Server::start(&["--lease-secs", "3"]);
    // alpha writes a big set slowly, and is killed once the server knows
    // the set.
    let args = [
        "--source",
        big.as_str(),
        "--pool",
        "kill",
        "--block-size",
        "16K",
    ];
    let mut victim = spawn_backup(&s, "alpha", &args);
    let (drive, failed_set) = set_in_heartbeat(&s);
    let pid = nix::unistd::Pid::from_raw(victim.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = victim.0.wait();
    wait_for("the lease to expire", Duration::from_secs(20), || {
        !s.status()["drives"][drive]["fenced"].is_null()
    });
    let failed = s.catalog().set(&failed_set).unwrap();
    assert_eq!(failed.outcome.state, SetState::Failed);
    fenced_until_released(&s, drive, &failed_set, &small);
    // The next set of pool "kill" lands after the failed one and restores.
    let next = backup_json(&s, "charlie", &small, "kill");
    let next_id = next["set_id"].as_str().unwrap();
    let row = s.catalog().set(next_id).unwrap();
    assert_eq!(row.info.volume, failed.info.volume);
    assert!(
        row.info.file_number > failed.info.file_number,
        "{row:?} {failed:?}"
    );
    restore_ok(&s, "charlie", next_id, &dst);
    same_bytes(&small_file, &dst_file, 4 << 20);
    let events = s.catalog().server_events().unwrap();
    assert!(overlaps(&events).is_empty());
    for k in [
        EventKind::LeaseExpired,
        EventKind::Fenced,
        EventKind::Unfenced,
    ] {
        assert_eq!(count(&events, k), 1, "{k:?}: {}", s.log());
    }
}

#[test]
fn a_server_killed_mid_set_rebuilds_and_the_set_finishes() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (big, big_file) = luns.add(83, 96);
    fill_random(&big_file, 96 << 20, 11);
    let (dst, dst_file) = luns.add(84, 96);
    let s = Server::start(&["--lease-secs", "20"]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let host = spawn_backup(&s, "alpha", &["--source", &big, "--block-size", "16K"]);
    set_in_heartbeat(&s);
    // SIGKILL the server and start it again on the same port and catalog.
    let s = s.restart_on(&addr);
    let v = finish(host, &format!("alpha (server log: {})", s.log()));
    let set = v["set_id"].as_str().unwrap();
    let cat = s.catalog();
    assert_eq!(cat.set(set).unwrap().outcome.state, SetState::Complete);
    let events = cat.server_events().unwrap();
    assert_eq!(count(&events, EventKind::Started), 2);
    // The lease outlived the server: released only after the restart.
    let restarted = events.iter().rposition(|e| e.kind == EventKind::Started);
    let released = events
        .iter()
        .position(|e| e.kind == EventKind::LeaseReleased);
    assert!(restarted < released, "{events:#?}");
    assert!(overlaps(&events).is_empty());
    // No cartridge lost track of: the one written is where the server says.
    let st = s.status();
    let drives = st["drives"].as_array().unwrap();
    assert_eq!(
        drives.iter().filter(|d| d["holds"].is_string()).count(),
        1,
        "{st}"
    );
    assert_eq!(st["cartridges"].as_array().unwrap().len(), 8);
    restore_ok(&s, "alpha", set, &dst);
    same_bytes(&big_file, &dst_file, 96 << 20);
}

#[test]
fn an_idle_drive_is_unloaded_to_the_home_slot() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (src, src_file) = luns.add(86, 4);
    fill_random(&src_file, 4 << 20, 3);
    let s = Server::start(&["--idle-unload", "1"]);
    let b = backup_json(&s, "alpha", &src, "default");
    let barcode = s.status()["cartridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["volume"] == b["volume"])
        .map(|c| c["barcode"].as_str().unwrap().to_string())
        .unwrap();
    wait_for("the drive to be unloaded", Duration::from_secs(20), || {
        s.status()["drives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["holds"].is_null())
    });
    // The library agrees: the cartridge is in its home slot (LIB00N in N).
    let u = IscsiUrl::parse(rig().get("SANMOVER_RIG_CHANGER")).unwrap();
    let mut ch =
        Changer::open(IscsiTransport::connect(&u, &IscsiOptions::default()).unwrap()).unwrap();
    let inv = ch.inventory().unwrap();
    let n: usize = barcode.trim_start_matches("LIB").parse().unwrap();
    let slot = &inv.storage[n - 1];
    assert!(slot.is_full());
    assert_eq!(slot.primary_tag.as_ref().unwrap().label().trim(), barcode);
    let events = s.catalog().server_events().unwrap();
    assert_eq!(count(&events, EventKind::Unloaded), 1);
}

#[test]
fn bad_input_gets_clear_errors_and_loses_nothing() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (src, src_file) = luns.add(85, 4);
    fill_random(&src_file, 4 << 20, 5);
    let s = Server::start(&[]);
    // An unknown host and a wrong secret: 401, said so, non-zero exit.
    let mut c = s.host("mallory", &["server", "status"]);
    let out = c
        .env("SANMOVER_SERVER_TOKEN", "mallory:whatever-it-may-be")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(35), "login refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let mut c = s.host("alpha", &["backup", "--mode", "host", "--source", &src]);
    let out = c
        .env("SANMOVER_SERVER_TOKEN", "alpha:not-alphas-secret-at-all")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(35), "login refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown host or wrong secret"));
    // A cartridge with a label the catalog does not know (LIB001, the
    // first scratch the server picks): refused and retired, not
    // overwritten; the next request gets another cartridge.
    let foreign = sanmover([
        "changer",
        rig().get("SANMOVER_RIG_CHANGER"),
        "load",
        "1",
        "0",
    ]);
    foreign.ok();
    let other = tempfile::tempdir().unwrap();
    let other_cat = other.path().join("other.db");
    let drive0 = rig().get("SANMOVER_RIG_LIB_DRIVE0");
    sm(&other_cat, &["tape", drive0, "label", "THEIRS"]).ok();
    sanmover([
        "changer",
        rig().get("SANMOVER_RIG_CHANGER"),
        "unload",
        "1",
        "0",
    ])
    .ok();
    drop(s);
    let s = Server::start(&[]);
    let r = s.run("alpha", &["backup", "--mode", "host", "--source", &src]);
    assert_eq!(r.code, 45, "refused before writing");
    assert!(
        r.stderr.contains("LIB001") && r.stderr.contains("not blank"),
        "{}",
        r.stderr
    );
    let st = s.status();
    let lib1 = st["cartridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["barcode"] == "LIB001")
        .unwrap()
        .clone();
    assert_eq!(lib1["pool"]["kind"], "retired", "{lib1}");
    let ok = backup_json(&s, "alpha", &src, "default");
    assert_ne!(ok["volume_name"], "THEIRS");
    // LIB001 still has its own label.
    let _ = s.run("op", &["server", "status"]);
    drop(s);
    blank_check_label("LIB001", "THEIRS");
}

/// Load `barcode` into drive 0, check its label name, unload it.
fn blank_check_label(barcode: &str, name: &str) {
    let n = barcode.trim_start_matches("LIB").trim_start_matches('0');
    let ch = rig().get("SANMOVER_RIG_CHANGER");
    blank_home();
    sanmover(["changer", ch, "load", n, "0"]).ok();
    let u = IscsiUrl::parse(rig().get("SANMOVER_RIG_LIB_DRIVE0")).unwrap();
    let t = IscsiTransport::connect(&u, &IscsiOptions::default()).unwrap();
    let state = read_label(&mut Tape::open(t).unwrap()).unwrap();
    sanmover(["changer", ch, "unload", n, "0"]).ok();
    assert!(
        matches!(&state, LabelState::Ours(l) if l.name == name),
        "{}",
        state.describe()
    );
}

/// Cartridges home, without blanking them.
fn blank_home() {
    let u = IscsiUrl::parse(rig().get("SANMOVER_RIG_CHANGER")).unwrap();
    let mut ch =
        Changer::open(IscsiTransport::connect(&u, &IscsiOptions::default()).unwrap()).unwrap();
    let inv = ch.inventory().unwrap();
    let first = inv.storage[0].address.0;
    for d in inv.drives.iter().filter(|d| d.is_full()) {
        let n: u16 = d
            .primary_tag
            .as_ref()
            .unwrap()
            .label()
            .trim()
            .trim_start_matches("LIB")
            .parse()
            .unwrap();
        ch.move_medium(d.address, ElementAddress(first + n - 1))
            .unwrap();
    }
}

/// Spanning (FORMAT.md "Multi-volume sets"): a 3 MB set on 2 MB
/// cartridges. tgt has no early warning: the WRITE that crosses the
/// image's size answers NO SENSE + EOM and the host asks the server for
/// the next cartridge, which unloads the full one to its home slot and
/// loads and labels the next scratch one in the same drive. The restore
/// through the server loads each part's cartridge in turn; `catalog
/// rebuild` from the two cartridges, into a new catalog, joins the parts.
#[test]
fn a_set_larger_than_a_cartridge_spans_two() {
    let _l = library();
    blank_library_of("2");
    let mut luns = Luns(Vec::new());
    let (src, file) = luns.add(87, 3);
    fill_random(&file, 3 << 20, 41);
    let (dst, dst_file) = luns.add(88, 3);
    let s = Server::start(&["--lease-secs", "5"]);
    let args = ["--source", &src, "--pool", "span", "--block-size", "64K"];
    let sum = finish(spawn_backup(&s, "alpha", &args), "alpha");
    let set = sum["set_id"].as_str().unwrap().to_string();
    let parts = sum["parts"]
        .as_array()
        .expect("a multi-volume set lists its parts");
    assert_eq!(parts.len(), 2, "{sum:#}");
    restore_ok(&s, "bravo", &set, &dst);
    same_bytes(&file, &dst_file, 3 << 20);
    let v = s.run("bravo", &["verify", &set]).ok();
    assert!(v.stdout.starts_with("verify passed"), "{}", v.stdout);

    // The server's catalog: the parts, each on its own cartridge; the
    // first cartridge full, the second open; the change in the event log.
    let cat = s.catalog();
    let row = cat.set(&set).unwrap();
    assert_eq!(row.outcome.state, SetState::Complete);
    assert_eq!(row.outcome.bytes, 3 << 20);
    assert_eq!(row.parts.len(), 2);
    let carts = cat.server_cartridges().unwrap();
    let barcode = |v| {
        carts
            .iter()
            .find(|c| c.volume == Some(v))
            .unwrap_or_else(|| panic!("no cartridge for {v}: {carts:#?}"))
            .clone()
    };
    let (c1, c2) = (barcode(row.parts[0].volume), barcode(row.parts[1].volume));
    assert_ne!(c1.barcode, c2.barcode);
    assert_eq!(c1.pool.text(), "full:span", "{c1:?}");
    assert_eq!(c2.pool.text(), "open:span", "{c2:?}");
    let events = cat.server_events().unwrap();
    assert_eq!(
        count(&events, EventKind::Continued),
        3,
        "one each for the backup, the restore and the verify"
    );
    assert!(overlaps(&events).is_empty(), "{events:#?}");
    drop(s);

    // catalog rebuild from the two cartridges, the second first, into a
    // catalog that knew nothing: the set is whole again.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_db = fresh.path().join("fresh.db");
    rebuild_from(&fresh_db, &[&c2.barcode, &c1.barcode]);
    let rebuilt = Catalog::open(&fresh_db).unwrap().set(&set).unwrap();
    assert_eq!(rebuilt.outcome.state, SetState::Complete);
    assert_eq!(rebuilt.outcome.digest, row.outcome.digest);
    let counts = |r: &sanmover::catalog::SetRow| (r.outcome.records, r.outcome.bytes);
    assert_eq!(counts(&rebuilt), counts(&row));
    assert_eq!(rebuilt.parts, row.parts);
}

/// `catalog rebuild` into `catalog` from each of `barcodes` in turn, each
/// loaded into drive 0 with the changer (the server is stopped); each
/// cartridge holds one part of a multi-volume set.
fn rebuild_from(catalog: &Path, barcodes: &[&str]) {
    let ch = rig().get("SANMOVER_RIG_CHANGER");
    let drive0 = rig().get("SANMOVER_RIG_LIB_DRIVE0");
    blank_home();
    for b in barcodes {
        // LIB00N lives in slot N.
        let slot = b.trim_start_matches("LIB").trim_start_matches('0');
        sanmover(["changer", ch, "load", slot, "0"]).ok();
        let r = sm(catalog, &["--json", "catalog", "rebuild", "--tape", drive0]);
        sanmover(["changer", ch, "unload", slot, "0"]).ok();
        let r = r.ok().json();
        assert_eq!(r["parts"].as_array().map(Vec::len), Some(1), "{r:#}");
    }
}
