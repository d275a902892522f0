//! Data-loss guards, from separate `sanmover` processes, written once
//! over the tape fixture (tests/common/drive.rs) and run by
//! tests/tgt_safety.rs on tgt's tape and on a `sanmover vtl` drive: one
//! process per drive (a second is refused or waits), SIGINT/SIGTERM
//! during a backup, partial-range restores, a catalog rebuild that asks
//! before it drops or changes sets, and SIGINT during a third-party copy.
//!
//! tgt's READ POSITION always answers 0, so a tape moved under a backup by
//! another session cannot be seen from the position there; on tgt the
//! drive lock is the protection (tests/safety_memory.rs tests the position
//! check on a tape whose positions are true).

use crate::common::drive::{Drive, TapeEnv};
use crate::common::Run;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const MIB: usize = 1 << 20;

/// The fixture with room for several sets of the big LUN below: a 1 GiB
/// tape on tgt (the VTL's cartridges hold 1 GiB already).
pub fn env(drive: Drive) -> TapeEnv {
    TapeEnv::with_tape_mb(drive, Some("1024"))
}

fn backup(env: &TapeEnv, source: &str, extra: &[&str]) -> serde_json::Value {
    let tape = env.tape();
    let mut args = vec!["--json", "backup", "--source", source, "--tape", &tape];
    args.extend_from_slice(extra);
    env.run(&args).ok().json()
}

/// `sanmover ARGS` in the background, stderr to a file.
fn spawn(env: &TapeEnv, args: &[&str], name: &str) -> (Child, PathBuf) {
    let log = env.dir().join(format!("{name}.stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .arg("--catalog")
        .arg(&env.catalog)
        .args(args)
        .env_remove("SANMOVER_INITIATOR")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// A LUN big enough that its backup in small blocks runs for seconds.
fn big_lun(env: &TapeEnv, lun: u32, mb: u32) -> String {
    let l = env.add_lun(lun, mb);
    env.fill(&l, mb as usize * MIB, u64::from(lun) * 77);
    l.url
}

/// Start a long backup and return once it is writing the tape.
fn start_long_backup(env: &TapeEnv, source: &str, name: &str) -> (Child, PathBuf) {
    let before = env.image_len();
    let tape = env.tape();
    let args = ["--json", "backup", "--source", source, "--tape", &tape];
    let small = ["--block-size", "8192", "--queue-depth", "1"];
    let (mut child, log) = spawn(env, &[&args[..], &small[..]].concat(), name);
    let t0 = Instant::now();
    while env.image_len() < before + 4 * MIB as u64 {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "the backup ended ({st}) before it got going: {}",
                read(&log)
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the backup never got going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, log)
}

fn sets(env: &TapeEnv) -> Vec<serde_json::Value> {
    let v = env.run(&["--json", "catalog", "list"]).ok().json();
    v.as_array().unwrap().clone()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Wait for a child; its exit code and stdout.
fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn still_running(child: &mut Child, what: &str) {
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "{what}: the long backup finished too early for this check; make its source bigger"
    );
}

/// Poll a child's stderr file until it has `text`.
fn wait_for_text(log: &Path, text: &str) {
    let t0 = Instant::now();
    while !read(log).contains(text) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no {text:?} in {}: {}",
            log.display(),
            read(log)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn busy_refusal(r: &Run, holder: &Child) {
    assert_eq!(r.code, 16, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("in use by another sanmover process"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("pid {}", holder.id())),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("sanmover backup"), "{}", r.stderr);
    assert!(r.stderr.contains("--wait"), "{}", r.stderr);
}

pub fn a_second_process_on_the_drive_is_refused_or_waits_and_every_set_verifies(env: TapeEnv) {
    let tape = env.tape();
    let disk2 = env.disk(2).url;
    env.fill(&env.disk(2), 16 * MIB, 11);
    env.run(&["tape", &tape, "label", "LOCK01"]).ok();
    let first = backup(&env, &disk2, &[]);
    let first_id = first["set_id"].as_str().unwrap().to_string();
    let big = big_lun(&env, 5, 128);

    let (mut long, long_log) = start_long_backup(&env, &big, "long");
    // A verify of an older set, a second backup, a tape command: refused
    // at once, naming the holder; the tape is not touched.
    let v = env.run(&["verify", &first_id]);
    busy_refusal(&v, &long);
    let b = env.run(&["backup", "--source", &disk2, "--tape", &tape]);
    busy_refusal(&b, &long);
    let r = env.run(&["tape", &tape, "rewind"]);
    busy_refusal(&r, &long);
    let j = env.run(&["--json", "verify", &first_id]);
    assert_eq!(j.json()["exit_code"], 16, "{}", j.stdout);
    still_running(&mut long, "the refusals");

    // With --wait they wait for it, say so, and run after it.
    let (vw, vw_log) = spawn(
        &env,
        &["--json", "verify", &first_id, "--wait"],
        "verify-wait",
    );
    wait_for_text(&vw_log, "waiting for it");
    let (bw, bw_log) = spawn(
        &env,
        &[
            "--json", "backup", "--source", &disk2, "--tape", &tape, "--wait",
        ],
        "backup-wait",
    );
    wait_for_text(&bw_log, "waiting for it");
    still_running(&mut long, "the waiters");

    let (code, out) = finish(long);
    assert_eq!(code, 0, "long backup: {out} {}", read(&long_log));
    let (code, out) = finish(vw);
    assert_eq!(code, 0, "verify --wait: {out} {}", read(&vw_log));
    let (code, out) = finish(bw);
    assert_eq!(code, 0, "backup --wait: {out} {}", read(&bw_log));

    // Three complete sets in files 1, 2, 3, and every one verifies.
    let sets = sets(&env);
    let files: Vec<u64> = sets
        .iter()
        .map(|s| s["file_number"].as_u64().unwrap())
        .collect();
    assert_eq!(files, vec![1, 2, 3], "{sets:?}");
    for s in &sets {
        assert_eq!(s["state"], "complete", "{s}");
        env.run(&["verify", s["id"].as_str().unwrap()]).ok();
    }
}

pub fn sigint_and_sigterm_close_the_set_as_interrupted_and_the_next_backup_appends(env: TapeEnv) {
    let tape = env.tape();
    let disk2 = env.disk(2).url;
    env.fill(&env.disk(2), 16 * MIB, 12);
    env.run(&["tape", &tape, "label", "INT001"]).ok();
    let first = backup(&env, &disk2, &[]);
    let big = big_lun(&env, 5, 128);

    for (signal, code, file) in [(Signal::SIGINT, 130, 2), (Signal::SIGTERM, 143, 3)] {
        let (mut child, log) = start_long_backup(&env, &big, signal.as_str());
        still_running(&mut child, signal.as_str());
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let (got, out) = finish(child);
        let stderr = read(&log);
        assert_eq!(got, code, "{signal}: {out} {stderr}");
        assert!(stderr.contains("finishing the current record"), "{stderr}");
        assert!(
            stderr.contains(&format!("interrupted by {signal}")),
            "{stderr}"
        );
        let err: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(err["exit_code"], code, "{err}");

        let sets = sets(&env);
        let s = sets.last().unwrap();
        assert_eq!(s["state"], "interrupted", "{s}");
        assert_eq!(s["file_number"], file, "{s}");
        let bytes = s["bytes"].as_u64().unwrap();
        assert!(bytes > 0 && bytes < 128 * MIB as u64, "{s}");
        assert!(s["records"].as_u64().unwrap() > 0, "{s}");
    }

    // The true counts: a scan of the tape into a fresh catalog finds both
    // sets closed by a trailer marked interrupted, with the same bytes and
    // digest as recorded.
    let live = sets(&env);
    let fresh = env.dir().join("rebuilt.db");
    let rebuilt = env
        .run_with(&fresh, &["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    let scanned = rebuilt["sets"].as_array().unwrap();
    assert_eq!(scanned.len(), live.len());
    for (l, r) in live.iter().zip(scanned) {
        for k in ["id", "file_number", "state", "records", "bytes", "sha256"] {
            assert_eq!(l[k], r[k], "field {k}: live {l} tape {r}");
        }
    }

    // A second Ctrl-C, sent once the first was seen: the process ends at
    // once and the next command reaps the set as failed, as after any
    // crash; or, when the backup closed the set before the second arrived,
    // the set is interrupted. Which one is a race (the unit test in
    // engine::interrupt shows the second signal ending the process); the
    // tape and catalog are sound either way.
    double_sigint_leaves_file_4_sound(&env, &big);

    // The next backup appends after them all; the sets before and after
    // verify, and the live catalog rebuilds with nothing to ask.
    let next = backup(&env, &disk2, &[]);
    assert_eq!(next["tape_file"], 5, "{next}");
    for set in [&first, &next] {
        let id = set["set_id"].as_str().unwrap();
        env.run(&["verify", id, "--compare-source"]).ok();
    }
    let again = env
        .run(&["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    assert_eq!(again["applied"], true, "{again}");
}

/// A second SIGINT once the first was seen, during a backup into file 4
/// of the tape: the set ends failed (reaped) or interrupted.
fn double_sigint_leaves_file_4_sound(env: &TapeEnv, big: &str) {
    let (mut child, log) = start_long_backup(env, big, "double");
    still_running(&mut child, "double SIGINT");
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    wait_for_text(&log, "signal again to abort at once");
    let _ = kill(pid, Signal::SIGINT);
    let (got, _) = finish(child);
    assert_eq!(got, 130, "{}", read(&log));
    let r = env.run(&["--json", "catalog", "list"]).ok();
    let killed = r.json().as_array().unwrap().last().unwrap().clone();
    match killed["state"].as_str() {
        Some("failed") => assert!(
            r.stderr.contains("left running by a process that is gone"),
            "{}",
            r.stderr
        ),
        Some("interrupted") => {}
        _ => panic!("after a double SIGINT: {killed}"),
    }
    assert_eq!(killed["file_number"], 4, "{killed}");
}

/// Bytes `[lba, lba + blocks)` of 512-byte blocks.
fn blocks(data: &[u8], lba: usize, n: usize) -> &[u8] {
    &data[lba * 512..(lba + n) * 512]
}

pub fn a_partial_range_restores_to_its_own_lba_and_not_over_its_source_without_force(env: TapeEnv) {
    let tape = env.tape();
    let (d1, d2) = (env.disk(1), env.disk(2));
    let (disk, disk2) = (d1.url.clone(), d2.url.clone());
    let src = env.fill(&d1, 64 * MIB, 21);
    let other = env.fill(&d2, 16 * MIB, 22);
    env.run(&["tape", &tape, "label", "PART01"]).ok();
    let set = backup(&env, &disk, &["--lba", "1000", "--blocks", "8"]);
    let id = set["set_id"].as_str().unwrap().to_string();

    // To another LU: the set's own LBA by default; the blocks around it
    // (999 and 1008 included) keep their bytes.
    let r = env
        .run(&["--json", "restore", &id, "--target", &disk2])
        .ok()
        .json();
    assert_eq!(r["target_lba"], 1000, "{r}");
    let mut want = other.clone();
    want[1000 * 512..1008 * 512].copy_from_slice(blocks(&src, 1000, 8));
    let got = env.contents(&d2, 16 * MIB);
    assert_eq!(blocks(&got, 999, 1), blocks(&other, 999, 1));
    assert_eq!(blocks(&got, 1008, 1), blocks(&other, 1008, 1));
    assert!(got == want, "restore to DISK2 at its own LBA");
    // --lba moves it.
    env.run(&["restore", &id, "--target", &disk2, "--lba", "3000"])
        .ok();
    want[3000 * 512..3008 * 512].copy_from_slice(blocks(&src, 1000, 8));
    let got = env.contents(&d2, 16 * MIB);
    assert!(got == want, "restore to DISK2 at 3000");

    // Over its own source: refused, naming the blocks; nothing written.
    let mut damaged = src.clone();
    damaged[1000 * 512..1008 * 512].fill(0);
    env.write(&d1, &damaged);
    let refused = env.run(&["restore", &id, "--target", &disk]);
    assert_eq!(refused.code, 45, "{}", refused.stderr);
    for text in ["own source LU", "LBA 1000..=1007", "8 blocks", "--force"] {
        assert!(refused.stderr.contains(text), "{}", refused.stderr);
    }
    let got = env.contents(&d1, 64 * MIB);
    assert!(got == damaged, "refused restore wrote");
    // With --force the source gets exactly those blocks back.
    env.run(&["restore", &id, "--target", &disk, "--force"])
        .ok();
    let got = env.contents(&d1, 64 * MIB);
    assert!(got == src, "forced restore");
}

pub fn catalog_rebuild_asks_before_it_drops_or_changes_sets_and_keeps_unreadable_ones(
    mut env: TapeEnv,
) {
    let tape = env.tape();
    let disk2 = env.disk(2).url;
    env.fill(&env.disk(2), 16 * MIB, 31);
    env.run(&["tape", &tape, "label", "RBLD01"]).ok();
    let a = backup(&env, &disk2, &["--blocks", "2048"]);
    let b = backup(&env, &disk2, &["--blocks", "4096"]);
    let (a_id, b_id) = (a["set_id"].as_str().unwrap(), b["set_id"].as_str().unwrap());
    // Nothing differs: applied without --force.
    let same = env
        .run(&["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    assert_eq!(same["applied"], true, "{same}");
    let before = sets(&env);

    // Set A's data damaged: the rebuild would turn it from complete to
    // failed. Refused without --force, with the difference; nothing changes.
    env.damage(b"SANMDAT1", 1, 48 + 100);
    let tape = env.tape();
    let r = env.run(&["--json", "catalog", "rebuild", "--tape", &tape]);
    assert_eq!(r.code, 45, "{} {}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["applied"], false, "{j}");
    assert_eq!(j["exit_code"], 45, "{j}");
    let changed = j["diff"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{j}");
    assert_eq!(changed[0]["id"], a_id, "{j}");
    assert!(changed[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["field"] == "state" && f["catalog"] == "complete" && f["tape"] == "failed"));
    let text = env.run(&["catalog", "rebuild", "--tape", &tape]);
    assert_eq!(text.code, 45);
    assert!(
        text.stdout.contains("state: catalog complete, tape failed"),
        "{}",
        text.stdout
    );
    assert!(text.stderr.contains("--force"), "{}", text.stderr);
    assert_eq!(sets(&env), before, "a refused rebuild changed the catalog");

    // Set B's header unreadable too: with --force, A takes the tape's
    // state, and B (whose file cannot be read) is kept as it was.
    env.damage(b"SANMSET1", 1, 20);
    let tape = env.tape();
    let f = env
        .run(&["--json", "catalog", "rebuild", "--tape", &tape, "--force"])
        .ok()
        .json();
    assert_eq!(f["applied"], true, "{f}");
    assert_eq!(f["unreadable"][0]["file_number"], 2, "{f}");
    assert_eq!(f["diff"]["kept_unreadable"][0]["id"], b_id, "{f}");
    let after = sets(&env);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0]["state"], "failed");
    assert_eq!(after[1], before[1], "the unreadable set was changed");

    foreign_tape_changes_nothing(&env, &tape, &after);
}

/// A tape it cannot read at all (foreign data at BOT): a rebuild changes
/// nothing of the catalog (`after`), with or without --force.
fn foreign_tape_changes_nothing(env: &TapeEnv, tape: &str, after: &[serde_json::Value]) {
    let junk = env.dir().join("junk.bin");
    std::fs::write(&junk, b"not a sanmover label").unwrap();
    env.run(&["tape", tape, "rewind"]).ok();
    env.run(&[
        "raw",
        tape,
        "0a 00 00 00 14 00",
        "--send",
        junk.to_str().unwrap(),
    ])
    .ok();
    env.run(&["tape", tape, "weof"]).ok();
    for extra in [&[][..], &["--force"][..]] {
        let mut args = vec!["catalog", "rebuild", "--tape", tape];
        args.extend_from_slice(extra);
        let r = env.run(&args);
        assert_eq!(r.code, 45, "{}", r.stderr);
        assert!(r.stderr.contains("foreign"), "{}", r.stderr);
        assert_eq!(
            sets(env),
            after,
            "rebuild of an unreadable tape changed the catalog"
        );
    }
}

pub fn sigint_stops_a_third_party_copy_between_commands_as_interrupted_without_fallback(
    env: TapeEnv,
) {
    let tape = env.tape();
    let disk = env.disk(1).url;
    env.fill(&env.disk(1), 64 * MIB, 41);
    env.run(&["tape", &tape, "label", "XINT01"]).ok();
    // The router copies from the disk's target to the drive's.
    let disk_target = disk.rsplit_once('/').unwrap().0.to_string();
    let router = crate::common::Router::start(&[&disk_target, &env.tape_target()], &[]);
    let cm = router.url();
    let base = ["--json", "backup", "--mode", "xcopy", "--source", &disk];
    let xcopy = [&base[..], &["--tape", &tape, "--copy-manager", &cm]].concat();
    let one = ["--blocks", "2048", "--fallback", "never"];
    let first = env.run(&[&xcopy[..], &one[..]].concat()).ok().json();

    // The whole LUN in small records, so there are many commands.
    let before = env.image_len();
    let long = [&xcopy[..], &["--block-size", "16384"]].concat();
    let (mut child, log) = spawn(&env, &long, "xcopy-long");
    let t0 = Instant::now();
    while env.image_len() < before + 4 * MIB as u64 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the copy never got going: {}",
            read(&log)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    still_running(&mut child, "xcopy");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let (code, out) = finish(child);
    let stderr = read(&log);
    assert_eq!(code, 130, "{out} {stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(
        !stderr.contains("host-driven"),
        "an interrupt fell back: {stderr}"
    );

    let sets = sets(&env);
    let s = sets.last().unwrap();
    assert_eq!(
        (s["state"].as_str(), s["mode"].as_str()),
        (Some("interrupted"), Some("xcopy"))
    );
    let bytes = s["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes < 64 * MIB as u64, "{s}");
    let fresh = env.dir().join("rebuilt.db");
    let rebuilt = env
        .run_with(&fresh, &["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    let r = &rebuilt["sets"][1];
    for k in ["id", "state", "records", "bytes", "sha256"] {
        assert_eq!(s[k], r[k], "field {k}: live {s} tape {r}");
    }
    // The next set goes after it; the sets before and after verify.
    let next = env.run(&[&xcopy[..], &one[..]].concat()).ok().json();
    assert_eq!(next["tape_file"], 3, "{next}");
    for id in [&first["set_id"], &next["set_id"]] {
        env.run(&["verify", id.as_str().unwrap()]).ok();
    }
    rebuild_gives_an_address(&env, next["set_id"].as_str().unwrap(), &tape);
}

/// The copy manager moved the tape, so third-party-copy sets have no block
/// address; a rebuild of the live catalog gives set `id` its own where the
/// drive's positions count, and verify then LOCATEs to it.
fn rebuild_gives_an_address(env: &TapeEnv, id: &str, tape: &str) {
    let before = env.run(&["--json", "catalog", "show", id]).ok().json();
    assert!(before.get("tape_block").is_none(), "{before}");
    env.run(&["--json", "catalog", "rebuild", "--tape", tape])
        .ok();
    let after = env.run(&["--json", "catalog", "show", id]).ok().json();
    let counts = env.drive != Drive::Tgt;
    assert_eq!(after["tape_block"].is_u64(), counts, "{after}");
    env.run(&["verify", id]).ok();
}
