//! `sanmover server` against the tgt library rig (a changer with two
//! drives and eight barcoded cartridges): hosts back up and restore
//! through the server, each a process of its own with its own initiator
//! name, credential and catalog. Every test takes the library lock, starts
//! from blank cartridges in their home slots and a fresh server catalog,
//! and stops every process it started by pid, also when it fails.

mod common;
use common::server::{count, finish, same_bytes, wait_for, Library, Proc, Server, HOSTS};
use common::{fill_random, rig, sanmover, sm, Router};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sanmover::catalog::{Catalog, SetState};
use sanmover::device::{Changer, Tape};
use sanmover::engine::volume::{read_label, LabelState};
use sanmover::scsi::smc::ElementAddress;
use sanmover::server::events::{overlaps, EventKind};
use sanmover::server::state::Pool;
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;

/// The rig's library as the server serves it.
fn lib() -> Library {
    Library {
        changer: rig().get("SANMOVER_RIG_CHANGER").to_string(),
        drives: (0..2)
            .map(|n| rig().get(&format!("SANMOVER_RIG_LIB_DRIVE{n}")).to_string())
            .collect(),
        iqn_prefix: "iqn.2026-11.org.sanmover.test",
    }
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

/// A host's backup in the background, output piped.
fn spawn_backup(s: &Server, host: &str, args: &[&str]) -> Proc {
    let mut all = vec!["--json", "backup", "--mode", "host"];
    all.extend_from_slice(args);
    s.spawn(host, &all)
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
    let s = Server::start(&lib(), &["--lease-secs", "5"]);
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
    let s = Server::start(&lib(), &["--lease-secs", "3"]);
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
    let (drive, failed_set) = s.set_in_heartbeat(Duration::from_secs(30));
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
    let s = Server::start(&lib(), &["--lease-secs", "20"]);
    let addr = s.addr();
    let host = spawn_backup(&s, "alpha", &["--source", &big, "--block-size", "16K"]);
    s.set_in_heartbeat(Duration::from_secs(30));
    // SIGKILL the server and start it again on the same port and catalog.
    let s = s.restart_on(&addr, &["--lease-secs", "20"]);
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
    let s = Server::start(&lib(), &["--idle-unload", "1"]);
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
    let s = Server::start(&lib(), &[]);
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
    let s = Server::start(&lib(), &[]);
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

/// Both drives loaded behind the server's back: the robot's MOVE MEDIUM
/// into a drive is refused (3B/0D). The host gets a clear error, the
/// scratch cartridge stays in its slot, and once the drives are emptied
/// the next backup goes through and restores.
#[test]
fn a_drive_that_fails_to_load_is_a_clear_error_and_loses_nothing() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (src, src_file) = luns.add(86, 4);
    fill_random(&src_file, 4 << 20, 6);
    let (dst, dst_file) = luns.add(87, 4);
    let s = Server::start(&lib(), &[]);
    let ch = rig().get("SANMOVER_RIG_CHANGER");
    for (slot, drive) in [("8", "0"), ("7", "1")] {
        sanmover(["changer", ch, "load", slot, drive]).ok();
    }
    let r = s.run("alpha", &["backup", "--mode", "host", "--source", &src]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("preparing the drive failed") && r.stderr.contains("3B/0D"),
        "{}",
        r.stderr
    );
    // The changer's own inventory: every slot but 7 and 8 still full.
    let inv = sanmover(["--json", "changer", ch, "status"]).ok().json();
    let slots = inv["slots"].as_array().expect("slots");
    for (i, e) in slots.iter().enumerate().take(8) {
        let expect_full = !matches!(i + 1, 7 | 8);
        assert_eq!(
            e["full"].as_bool(),
            Some(expect_full),
            "slot {}: {e}",
            i + 1
        );
    }
    blank_home();
    let ok = backup_json(&s, "alpha", &src, "default");
    restore_ok(&s, "bravo", ok["set_id"].as_str().unwrap(), &dst);
    same_bytes(&src_file, &dst_file, 4 << 20);
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

/// Cartridges home, without blanking them: first those moved to another
/// slot (a test that occupies a home slot), then those in drives.
fn blank_home() {
    let u = IscsiUrl::parse(rig().get("SANMOVER_RIG_CHANGER")).unwrap();
    let mut ch =
        Changer::open(IscsiTransport::connect(&u, &IscsiOptions::default()).unwrap()).unwrap();
    let inv = ch.inventory().unwrap();
    let first = inv.storage[0].address.0;
    let home = |e: &sanmover::scsi::smc::ElementDescriptor| {
        let n: u16 = e
            .primary_tag
            .as_ref()
            .unwrap()
            .label()
            .trim()
            .trim_start_matches("LIB")
            .parse()
            .unwrap();
        ElementAddress(first + n - 1)
    };
    for e in inv.storage.iter().filter(|e| e.is_full()) {
        if home(e) != e.address {
            ch.move_medium(e.address, home(e)).unwrap();
        }
    }
    for d in inv.drives.iter().filter(|d| d.is_full()) {
        ch.move_medium(d.address, home(d)).unwrap();
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
    let s = Server::start(&lib(), &["--lease-secs", "5"]);
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

/// A serverless set (a job the server runs itself, on a lease of its
/// own) larger than one 2 MB cartridge: at the end of the first the
/// server's own service changes the cartridge, as for a host.
#[test]
fn a_serverless_set_larger_than_a_cartridge_spans_two() {
    let _l = library();
    blank_library_of("2");
    let mut luns = Luns(Vec::new());
    let (src, file) = luns.add(93, 3);
    fill_random(&file, 3 << 20, 43);
    let (dst, dst_file) = luns.add(94, 3);
    let s = Server::start(&lib(), &["--lease-secs", "5"]);
    let spec = format!("tgt:env={}", rig_env());
    let mut args = serverless_args(&src, &spec, "slspan");
    args.extend(["--block-size", "64K"]);
    let sl = s.run("alpha", &args).ok().json();
    assert_eq!(sl["state"], "complete", "{sl:#}");
    assert_eq!(sl["summary"]["state"], "RELEASED", "{sl:#}");
    let parts = sl["summary"]["backup"]["parts"].as_array();
    assert_eq!(parts.map(Vec::len), Some(2), "{sl:#}");
    let set = sl["set"]["id"].as_str().unwrap().to_string();
    restore_ok(&s, "bravo", &set, &dst);
    same_bytes(&file, &dst_file, 3 << 20);

    // The server's catalog: complete, two parts on two cartridges, the
    // first full; one change for the job and one for the restore.
    let cat = s.catalog();
    let row = cat.set(&set).unwrap();
    assert_eq!(row.outcome.state, SetState::Complete, "{row:?}");
    assert_eq!(row.info.mode, "serverless");
    assert_eq!(row.parts.len(), 2, "{row:?}");
    let carts = cat.server_cartridges().unwrap();
    let cart = |v| carts.iter().find(|c| c.volume == Some(v)).unwrap().clone();
    let (c1, c2) = (cart(row.parts[0].volume), cart(row.parts[1].volume));
    assert_ne!(c1.barcode, c2.barcode);
    assert_eq!(c1.pool.text(), "full:slspan", "{c1:?}");
    assert_eq!(c2.pool.text(), "open:slspan", "{c2:?}");
    let events = cat.server_events().unwrap();
    assert_eq!(count(&events, EventKind::Continued), 2, "{events:#?}");
    assert!(overlaps(&events).is_empty(), "{events:#?}");
    drop(s);

    let fresh = tempfile::tempdir().unwrap();
    let fresh_db = fresh.path().join("fresh.db");
    rebuild_from(&fresh_db, &[&c1.barcode, &c2.barcode]);
    let rebuilt = Catalog::open(&fresh_db).unwrap().set(&set).unwrap();
    assert_eq!(rebuilt.outcome.state, SetState::Complete);
    assert_eq!(rebuilt.outcome.digest, row.outcome.digest);
    assert_eq!(rebuilt.parts, row.parts);
}

/// A third-party copy does not span (the copy manager writes one set to
/// one volume): at the end of a 2 MB cartridge it fails with a message
/// naming the limitation, its set is recorded failed, the cartridge is
/// marked full, and the set before it on that cartridge still restores.
#[test]
fn a_third_party_copy_at_the_end_of_a_cartridge_fails_cleanly() {
    let _l = library();
    blank_library_of("2");
    let mut luns = Luns(Vec::new());
    let (small, small_file) = luns.add(96, 1);
    fill_random(&small_file, 1 << 20, 44);
    let (big, big_file) = luns.add(97, 3);
    fill_random(&big_file, 3 << 20, 45);
    let (dst, dst_file) = luns.add(98, 1);
    let s = Server::start(&lib(), &["--lease-secs", "5"]);
    let first = backup_json(&s, "alpha", &small, "xcfull");
    let first_set = first["set_id"].as_str().unwrap().to_string();
    let (router, _cfg) = router_for(&s.initiator("bravo"));
    let r = s.run("bravo", &xcopy_args(&big, &router.url(), "xcfull"));
    assert_eq!(r.code, 13, "VOLUME OVERFLOW: {}", r.stderr);
    assert!(
        r.stderr.contains("third-party copy cannot span volumes"),
        "{}",
        r.stderr
    );
    drop(router);

    let cat = s.catalog();
    let volume = cat.set(&first_set).unwrap().info.volume;
    let cart = cartridge_of(&s, &volume.to_string());
    assert_eq!(cart["pool"]["kind"], "full", "{cart}");
    let sets = cat.sets_on_volume(volume).unwrap();
    let failed: Vec<_> = sets
        .iter()
        .filter(|r| r.info.id.to_string() != first_set)
        .collect();
    assert_eq!(failed.len(), 1, "{sets:#?}");
    assert_eq!(failed[0].outcome.state, SetState::Failed, "{:?}", failed[0]);
    restore_ok(&s, "charlie", &first_set, &dst);
    same_bytes(&small_file, &dst_file, 1 << 20);
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

/// The rig's env file: the tgt snapshot provider reads its control port
/// there.
fn rig_env() -> String {
    std::env::var("SANMOVER_RIG_ENV").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test-rig/run/tgt/rig.env")
            .display()
            .to_string()
    })
}

/// A router on 127.0.0.1 in front of the rig's disk target and library
/// target (its drives), with copy rights for `initiator` on both, and the
/// directory of its config.
fn router_for(initiator: &str) -> (Router, tempfile::TempDir) {
    let portal = rig().portal();
    let disks = format!("iscsi://{portal}/{}", rig().get("SANMOVER_RIG_DISK_IQN"));
    let drives = format!("iscsi://{portal}/{}", rig().get("SANMOVER_RIG_LIB_IQN"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("router.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[copy_rights]]\ninitiators = [\"{initiator}\"]\nlus = [{{ target = \"{}\", role = \"both\" }}, {{ target = \"{}\", role = \"both\" }}]\n",
            rig().get("SANMOVER_RIG_DISK_IQN"),
            rig().get("SANMOVER_RIG_LIB_IQN")
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let router = Router::start(&[&disks, &drives], &["--config", &cfg]);
    (router, dir)
}

fn serverless_args<'a>(source: &'a str, spec: &'a str, pool: &'a str) -> Vec<&'a str> {
    vec![
        "--json",
        "backup",
        "--mode",
        "serverless",
        "--source",
        source,
        "--snapshot",
        spec,
        "--pool",
        pool,
    ]
}

fn xcopy_args<'a>(source: &'a str, cm: &'a str, pool: &'a str) -> Vec<&'a str> {
    vec![
        "--json",
        "backup",
        "--mode",
        "xcopy",
        "--source",
        source,
        "--copy-manager",
        cm,
        "--pool",
        pool,
        "--fallback",
        "never",
    ]
}

/// The cartridge the server says holds `volume`.
fn cartridge_of(s: &Server, volume: &str) -> serde_json::Value {
    s.status()["cartridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["volume"] == volume)
        .cloned()
        .unwrap_or_else(|| panic!("no cartridge holds volume {volume}"))
}

#[test]
fn a_serverless_set_and_an_xcopy_set_through_the_server_restore_and_verify() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (sl_src, sl_file) = luns.add(90, 8);
    fill_random(&sl_file, 8 << 20, 21);
    let (xc_src, xc_file) = luns.add(91, 8);
    fill_random(&xc_file, 8 << 20, 22);
    let (dst, dst_file) = luns.add(92, 8);
    let s = Server::start(&lib(), &["--lease-secs", "5"]);

    // Serverless: the server snapshots LUN 90, leases a drive to itself
    // for alpha, backs the snapshot up and catalogs the set.
    let spec = format!("tgt:env={}", rig_env());
    let r = s.run("alpha", &serverless_args(&sl_src, &spec, "sl"));
    let sl = r.ok().json();
    assert_eq!(sl["state"], "complete", "{sl}");
    assert_eq!(sl["summary"]["state"], "RELEASED", "{sl}");
    assert_eq!(sl["summary"]["backup"]["mode"], "serverless", "{sl}");
    assert_eq!(sl["set"]["state"], "complete", "{sl}");
    let sl_set = sl["set"]["id"].as_str().unwrap().to_string();

    // Third-party copy: bravo asks for a drive for the router, which
    // reaches it over its own backend session; no data through bravo.
    let (router, _cfg) = router_for(&s.initiator("bravo"));
    let xc = s
        .run("bravo", &xcopy_args(&xc_src, &router.url(), "xc"))
        .ok()
        .json();
    assert_eq!(xc["mode"], "xcopy", "{xc}");
    assert_eq!(xc["data_bytes_through_initiator"], 0, "{xc}");
    let xc_set = xc["set_id"].as_str().unwrap().to_string();

    // The server's catalog: both sets complete, on their cartridges and
    // tape files, under the hosts that asked.
    let cat = s.catalog();
    for (set, pool) in [(&sl_set, "sl"), (&xc_set, "xc")] {
        let row = cat.set(set).unwrap();
        assert_eq!(row.outcome.state, SetState::Complete, "{row:?}");
        assert!(row.info.file_number >= 1, "{row:?}");
        let cart = cartridge_of(&s, &row.info.volume.to_string());
        assert!(cart["barcode"].as_str().unwrap().starts_with("LIB"));
        assert_eq!(cart["pool"]["name"], pool, "{cart}");
    }
    assert_eq!(
        sl["cartridge"],
        cartridge_of(&s, sl["set"]["volume"].as_str().unwrap())["barcode"]
    );
    let events = cat.server_events().unwrap();
    assert!(overlaps(&events).is_empty(), "{events:#?}");
    // bravo's lease was for the router: the event log names it.
    assert!(
        events.iter().any(|e| e.kind == EventKind::LeaseGranted
            && e.host.as_deref() == Some("bravo")
            && e.detail.contains(&router.addr)),
        "{events:#?}"
    );
    for host in ["alpha", "bravo"] {
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::LeaseReleased && e.host.as_deref() == Some(host)),
            "{host}: {events:#?}"
        );
    }

    // Each restores byte-identical and verifies, through the server.
    for (set, file) in [(&sl_set, &sl_file), (&xc_set, &xc_file)] {
        restore_ok(&s, "charlie", set, &dst);
        same_bytes(file, &dst_file, 8 << 20);
        let v = s.run("charlie", &["--json", "verify", set]).ok().json();
        assert_eq!(v["bytes"], 8u64 << 20, "{v}");
    }
    drop(router);
}

#[test]
fn verify_through_the_server_finds_a_corrupted_record() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (src, src_file) = luns.add(93, 4);
    fill_random(&src_file, 4 << 20, 23);
    let s = Server::start(&lib(), &["--idle-unload", "1"]);
    let b = backup_json(&s, "alpha", &src, "default");
    let set: uuid::Uuid = b["set_id"].as_str().unwrap().parse().unwrap();
    let v = s
        .run(
            "bravo",
            &["--json", "verify", &set.to_string(), "--compare-source"],
        )
        .ok()
        .json();
    assert_eq!(v["compared_with_source"], 4u64 << 20, "{v}");
    let barcode = cartridge_of(&s, b["volume"].as_str().unwrap())["barcode"]
        .as_str()
        .unwrap()
        .to_string();
    // Home again (idle unload), then one payload byte of record 2 flipped
    // in the cartridge's image.
    wait_for("the drive to be unloaded", Duration::from_secs(20), || {
        s.status()["drives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["holds"].is_null())
    });
    let image = Path::new(rig().get("SANMOVER_RIG_STATE_DIR"))
        .join("media")
        .join(&barcode);
    let mut bytes = std::fs::read(&image).unwrap();
    // FORMAT.md, data record: magic, version 1, flags 0 (a host set),
    // set id, seq.
    let mut needle = b"SANMDAT1".to_vec();
    needle.extend_from_slice(&[0, 1, 0, 0]);
    needle.extend_from_slice(set.as_bytes());
    needle.extend_from_slice(&2u64.to_be_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("record 2 in the image");
    bytes[at + 48 + 1000] ^= 0x40;
    std::fs::write(&image, bytes).unwrap();
    // The exit status of a plain verify of a corrupted set: 37.
    let r = s.run("bravo", &["verify", &set.to_string()]);
    assert_eq!(r.code, 37, "{}", r.stderr);
    assert!(r.stderr.contains("record 2"), "{}", r.stderr);
    // The lease was released all the same.
    let st = s.status();
    assert!(st["leases"].as_array().unwrap().is_empty(), "{st}");
}

/// Every cartridge retired in the server's catalog: no pool has one.
fn retire_every_cartridge(s: Server) -> Server {
    let addr = s.addr();
    let cat = s.catalog();
    for mut c in cat.server_cartridges().unwrap() {
        c.pool = Pool::Retired;
        c.note = Some("taken out by the test".into());
        cat.upsert_cartridge(&c).unwrap();
    }
    drop(cat);
    s.restart_on(&addr, &[])
}

#[test]
fn serverless_and_xcopy_through_the_server_refuse_an_empty_pool_and_a_refused_move() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (src, src_file) = luns.add(94, 4);
    fill_random(&src_file, 4 << 20, 24);
    let (dst, dst_file) = luns.add(95, 4);
    let spec = format!("tgt:env={}", rig_env());
    let (router, _cfg) = router_for(&format!("{}:bravo", lib().iqn_prefix));

    // An empty pool: refused before any snapshot or drive (exit 45).
    let s = retire_every_cartridge(Server::start(&lib(), &[]));
    let r = s.run("alpha", &serverless_args(&src, &spec, "p"));
    assert_eq!(r.code, 45, "{}", r.stderr);
    assert!(r.stderr.contains("no cartridge left"), "{}", r.stderr);
    let r = s.run("bravo", &xcopy_args(&src, &router.url(), "p"));
    assert_eq!(r.code, 45, "{}", r.stderr);
    assert!(r.stderr.contains("no cartridge left"), "{}", r.stderr);
    // Hooks would run on the server, and exec runs a program there: a
    // host may name neither.
    let mut args = serverless_args(&src, &spec, "p");
    args.extend(["--quiesce", "true"]);
    let r = s.run("alpha", &args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--quiesce and --thaw"), "{}", r.stderr);
    let r = s.run("alpha", &serverless_args(&src, "exec:/bin/true", "p"));
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("only an operator host"), "{}", r.stderr);
    let events = s.catalog().server_events().unwrap();
    assert_eq!(count(&events, EventKind::LeaseGranted), 0, "{events:#?}");
    drop(s);

    // Both drives hold a cartridge with a set; then their home slots are
    // taken by other cartridges (out of band), so the robot's unload
    // fails: MOVE MEDIUM to a full slot.
    let s = Server::start(&lib(), &[]);
    let a = backup_json(&s, "alpha", &src, "a");
    backup_json(&s, "alpha", &src, "b");
    let ch = rig().get("SANMOVER_RIG_CHANGER");
    let held: Vec<String> = s.status()["drives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["holds"].as_str().unwrap().to_string())
        .collect();
    for (from, cart) in ["8", "7"].iter().zip(&held) {
        let home = cart.trim_start_matches("LIB").trim_start_matches('0');
        sanmover(["changer", ch, "transfer", from, home]).ok();
    }
    let r = s.run("alpha", &serverless_args(&src, &spec, "c"));
    assert_eq!(r.code, 45, "{}", r.stderr);
    assert!(
        r.stderr.contains("preparing the drive failed"),
        "{}",
        r.stderr
    );
    let r = s.run("bravo", &xcopy_args(&src, &router.url(), "c"));
    assert_eq!(r.code, 45, "{}", r.stderr);
    assert!(
        r.stderr.contains("preparing the drive failed"),
        "{}",
        r.stderr
    );
    eprintln!("refused move: {}", r.stderr);

    // Nothing lost: the cartridges are where the server says, and the
    // first set restores byte-identical.
    let st = s.status();
    let now: Vec<&str> = st["drives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["holds"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(
        now,
        held.iter().map(String::as_str).collect::<Vec<_>>(),
        "{st}"
    );
    restore_ok(&s, "charlie", a["set_id"].as_str().unwrap(), &dst);
    same_bytes(&src_file, &dst_file, 4 << 20);
    drop(router);
}

#[test]
fn a_server_killed_mid_job_ends_its_own_lease_and_snapshot_at_restart() {
    let _l = library();
    blank_library();
    let mut luns = Luns(Vec::new());
    let (big, big_file) = luns.add(96, 160);
    fill_random(&big_file, 1 << 20, 25);
    let (small, small_file) = luns.add(97, 4);
    fill_random(&small_file, 4 << 20, 26);
    let (dst, dst_file) = luns.add(98, 4);
    let s = Server::start(&lib(), &["--lease-secs", "20"]);
    let addr = s.addr();
    let spec = format!("tgt:env={}", rig_env());
    let mut args = serverless_args(&big, &spec, "sl");
    args.extend(["--block-size", "16K"]);
    let mut requester = s.spawn("alpha", &args);
    let (drive, set) = s.set_in_heartbeat(Duration::from_secs(30));
    // SIGKILL the server mid-set, then start it again on its catalog.
    let s = s.restart_on(&addr, &["--lease-secs", "20"]);
    let status = requester.0.wait().unwrap();
    let mut err = String::new();
    use std::io::Read as _;
    let _ = requester.0.stderr.take().unwrap().read_to_string(&mut err);
    assert!(
        !status.success(),
        "the requester learns its job is gone: {err}"
    );
    assert!(err.contains("no longer knows job"), "{err}");
    assert_eq!(status.code(), Some(46), "not found: {err}");
    // The job's lease ended at start, without a fence (the server knows
    // its own mover is gone); its set failed; its snapshot was released.
    let st = s.status();
    assert!(st["leases"].as_array().unwrap().is_empty(), "{st}");
    assert!(st["drives"][drive]["fenced"].is_null(), "{st}");
    let cat = s.catalog();
    let row = cat.set(&set).unwrap();
    assert_eq!(row.outcome.state, SetState::Failed, "{}", s.log());
    let jobs = cat.snapshot_jobs().unwrap();
    assert!(
        !jobs.is_empty() && jobs.iter().all(|j| j.released),
        "{}",
        s.log()
    );
    // The same pool's next set goes after the failed one and restores.
    let next = backup_json(&s, "bravo", &small, "sl");
    let next_row = cat.set(next["set_id"].as_str().unwrap()).unwrap();
    assert_eq!(next_row.info.volume, row.info.volume);
    assert!(next_row.info.file_number > row.info.file_number);
    restore_ok(&s, "charlie", next["set_id"].as_str().unwrap(), &dst);
    same_bytes(&small_file, &dst_file, 4 << 20);
    let events = cat.server_events().unwrap();
    assert!(overlaps(&events).is_empty(), "{events:#?}");
    assert_eq!(count(&events, EventKind::Fenced), 0, "{events:#?}");
}
