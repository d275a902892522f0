//! Snapshot-serverless backups against tgt (issue 5): point-in-time
//! correctness while an application keeps writing, the production LUN
//! never read by the backup server, the exec provider with the shipped
//! script, faults, and a crash at every state followed by cleanup.
//!
//! Each test runs a private rig (its own tgtd and its own reflink XFS).
//!
//! "Never read" is counted on our side: the backup's production session
//! goes through a guard that counts every command and byte per session
//! and refuses any opcode but INQUIRY, TEST UNIT READY and SYNCHRONIZE
//! CACHE; `backup --json` reports those counters (`sessions`), and the
//! test checks that the production session carried no READ and no data
//! beyond INQUIRY's.

mod common;
use common::{fill_random, PrivateRig, Run};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sanmover::device::Disk;
use sanmover::scsi::{BlockSize, Lba};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;

const BACKUP_INI: &str = "iqn.2026-11.org.sanmover:snaptest";
const APP_INI: &str = "iqn.2026-11.org.sanmover:app";
const BS: usize = 512;

/// The rig's own targets: disk, tape and the tape library.
const RIG_TARGETS: usize = 3;

struct Env {
    rig: PrivateRig,
    catalog: PathBuf,
}

impl Env {
    fn new() -> Env {
        let rig = PrivateRig::start();
        let catalog = rig.state.path().join("catalog.db");
        let e = Env { rig, catalog };
        e.run(&["tape", &e.tape(), "label", "SNAP01"], &[]).ok();
        e
    }
    fn get(&self, k: &str) -> String {
        self.rig.get(k).to_string()
    }
    fn tape(&self) -> String {
        self.get("SANMOVER_RIG_TAPE")
    }
    fn env_file(&self) -> String {
        self.rig.state.path().join("rig.env").display().to_string()
    }
    fn data_dir(&self) -> PathBuf {
        self.get("SANMOVER_RIG_DATA_DIR").into()
    }
    /// sanmover with our catalog and initiator, plus extra env.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sanmover"));
        c.arg("--catalog")
            .arg(&self.catalog)
            .arg("--initiator")
            .arg(BACKUP_INI)
            .args(args)
            .env_remove("SANMOVER_INITIATOR")
            .env_remove("RUST_LOG")
            .env_remove("SANMOVER_TEST_DIE_AFTER_STATE")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run sanmover");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    fn serverless(&self, source: &str, spec: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
        self.serverless_to(&self.tape(), source, spec, extra, env)
    }
    fn serverless_to(
        &self,
        tape: &str,
        source: &str,
        spec: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let mut args = vec![
            "--json",
            "backup",
            "--mode",
            "serverless",
            "--source",
            source,
            "--tape",
            tape,
            "--snapshot",
            spec,
        ];
        args.extend_from_slice(extra);
        self.run(&args, env)
    }
    fn tgt_spec(&self, extra: &str) -> String {
        format!("tgt:env={}{extra}", self.env_file())
    }
    fn jobs(&self) -> Vec<serde_json::Value> {
        let v = self.run(&["--json", "snapshots", "list"], &[]).ok().json();
        v.as_array().unwrap().clone()
    }
    fn last_job(&self) -> serde_json::Value {
        self.jobs().last().cloned().expect("a snapshot job")
    }
    fn targets(&self) -> Vec<String> {
        let out = Command::new("tgtadm")
            .args(["-C", &self.get("SANMOVER_RIG_TGT_CONTROL")])
            .args(["--op", "show", "--mode", "target"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("Target "))
            .map(str::to_string)
            .collect()
    }
    /// Files on the rig's XFS other than the rig's own disks and LUNs.
    fn snapshot_files(&self) -> Vec<String> {
        std::fs::read_dir(self.data_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "disk1.img" && n != "disk2.img" && !n.starts_with("lun-"))
            .collect()
    }
    /// Nothing of any snapshot left: the rig's targets, no snapshot files.
    fn assert_nothing_left(&self, what: &str) {
        let t = self.targets();
        assert_eq!(t.len(), RIG_TARGETS, "{what}: leftover targets: {t:?}");
        let f = self.snapshot_files();
        assert!(f.is_empty(), "{what}: leftover snapshot files: {f:?}");
    }
    fn sets(&self) -> usize {
        let v = self.run(&["--json", "catalog", "list"], &[]).ok().json();
        v.as_array().unwrap().len()
    }
}

fn open_disk(url: &str, initiator: &str) -> Disk<IscsiTransport> {
    let u = IscsiUrl::parse(url).unwrap();
    let o = IscsiOptions {
        initiator: initiator.to_string(),
        ..Default::default()
    };
    Disk::open(IscsiTransport::connect(&u, &o).unwrap()).unwrap()
}

/// Block `b` at generation `g`: (b, g) as two u32 repeated.
fn pattern(b: u64, g: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(BS);
    while v.len() < BS {
        v.extend_from_slice(&(b as u32).to_be_bytes());
        v.extend_from_slice(&g.to_be_bytes());
    }
    v
}

fn expected(model: &[u32], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (b, &g) in model.iter().enumerate() {
        if g > 0 {
            out[b * BS..(b + 1) * BS].copy_from_slice(&pattern(b as u64, g));
        }
    }
    out
}

/// The application: rewrites blocks 0..REGION over and over, one
/// generation after another, 16 blocks per WRITE, through its own session.
/// It freezes when `freeze_req` appears (the --quiesce hook), records the
/// content it has written so far, says so with `frozen`, and waits for the
/// thaw hook to remove `freeze_req`.
struct Writer {
    stop: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    at_freeze: Arc<Mutex<Option<Vec<u32>>>>,
    log: Arc<Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<Vec<u32>>>,
}

const REGION: u64 = 2048;
const PER_WRITE: u64 = 16;

impl Writer {
    fn start(url: String, freeze_req: PathBuf, frozen: PathBuf) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let at_freeze = Arc::new(Mutex::new(None));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, g, a, l) = (
            stop.clone(),
            generation.clone(),
            at_freeze.clone(),
            log.clone(),
        );
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut disk = open_disk(&url, APP_INI);
            let mut model = vec![0u32; REGION as usize];
            let mut gen = 0u32;
            while !s.load(Ordering::SeqCst) {
                gen += 1;
                g.store(gen as u64, Ordering::SeqCst);
                for first in (0..REGION).step_by(PER_WRITE as usize) {
                    if freeze_req.exists() {
                        let at = model.clone();
                        l.lock().unwrap().push(format!(
                            "{:?} frozen in generation {gen} before block {first}",
                            t0.elapsed()
                        ));
                        *a.lock().unwrap() = Some(at);
                        std::fs::write(&frozen, b"").unwrap();
                        while freeze_req.exists() {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        l.lock().unwrap().push(format!("{:?} thawed", t0.elapsed()));
                    }
                    let mut data = Vec::with_capacity((PER_WRITE as usize) * BS);
                    for b in first..first + PER_WRITE {
                        data.extend_from_slice(&pattern(b, gen));
                    }
                    disk.write(Lba(first), BlockSize(BS as u32), data).unwrap();
                    for b in first..first + PER_WRITE {
                        model[b as usize] = gen;
                    }
                }
                l.lock()
                    .unwrap()
                    .push(format!("{:?} generation {gen} written", t0.elapsed()));
            }
            model
        });
        Writer {
            stop,
            generation,
            at_freeze,
            log,
            handle: Some(handle),
        }
    }
    fn wait_generation(&self, g: u64) {
        let t = Instant::now();
        while self.generation.load(Ordering::SeqCst) < g {
            assert!(t.elapsed() < Duration::from_secs(60), "writer stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    fn finish(mut self) -> (Vec<u32>, Option<Vec<u32>>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let model = self.handle.take().unwrap().join().expect("writer");
        let at = self.at_freeze.lock().unwrap().clone();
        let log = self.log.lock().unwrap().clone();
        (model, at, log)
    }
}

#[test]
fn serverless_backup_is_the_snapshot_instant_while_the_application_writes() {
    let env = Env::new();
    let prod = env.get("SANMOVER_RIG_DISK2");
    let prod_bytes: usize = env.get("SANMOVER_RIG_DISK2_BYTES").parse().unwrap();
    let dir = env.rig.state.path();
    let freeze_req = dir.join("freeze-request");
    let frozen = dir.join("frozen");
    let writer = Writer::start(prod.clone(), freeze_req.clone(), frozen.clone());
    writer.wait_generation(3);

    // Quiesce: ask the application to freeze and wait until it has; thaw:
    // let it go. This is what an application freeze hook does.
    let quiesce = format!(
        "touch {r}; while [ ! -e {f} ]; do sleep 0.005; done",
        r = freeze_req.display(),
        f = frozen.display()
    );
    let thaw = format!("rm -f {} {}", freeze_req.display(), frozen.display());
    let r = env
        .serverless(
            &prod,
            &env.tgt_spec(""),
            &["-v", "--quiesce", &quiesce, "--thaw", &thaw],
            &[],
        )
        .ok();
    let s = r.json();
    // Second witness, independent of the guard's counters: the -v log of
    // the CDBs sent through the device layer, per device (the pipelined
    // READ(16)s of a backup are not logged one by one; the guard's
    // counters below see every command).
    let cdbs = |dev: &str| -> Vec<String> {
        let tag = format!("{dev}: cdb ");
        r.stderr
            .lines()
            .filter_map(|l| l.split_once(&tag).map(|(_, c)| c[..2].to_string()))
            .collect()
    };
    let prod_cdbs = cdbs(&prod);
    assert!(!prod_cdbs.is_empty(), "no CDB log for {prod}");
    assert!(
        prod_cdbs
            .iter()
            .all(|o| o == "12" || o == "91" || o == "35"),
        "the production LUN got {prod_cdbs:?}"
    );
    let gen_after_backup = writer.generation.load(Ordering::SeqCst);
    // Keep writing well after the backup.
    writer.wait_generation(gen_after_backup + 2);
    let (final_model, at_freeze, log) = writer.finish();
    let at_freeze = at_freeze.expect("the writer was frozen by the quiesce hook");
    eprintln!("writer log:\n  {}", log.join("\n  "));

    assert_eq!(s["state"], "RELEASED");
    assert_eq!(s["backup"]["mode"], "serverless");
    assert_eq!(s["mapped"]["read_only"], true);
    assert_eq!(s["masking"]["refused_by"], "login");
    assert!(s["quiesce_seconds"].as_f64().unwrap() < 5.0);
    assert_eq!(
        s["snapshot_designator"], s["mapped"]["designator"],
        "identity checked"
    );
    assert_ne!(s["snapshot_designator"], s["source_designator"]);

    // The production LUN saw only INQUIRY and SYNCHRONIZE CACHE from the
    // backup server, and no data moved on that session but INQUIRY's.
    let sessions = s["sessions"].as_array().unwrap();
    let p = sessions.iter().find(|x| x["role"] == "production").unwrap();
    let ops: Vec<&String> = p["commands"].as_object().unwrap().keys().collect();
    for op in &ops {
        assert!(
            ["12", "00", "35", "91"].contains(&op.as_str()),
            "production LUN got opcode {op}: {p}"
        );
    }
    assert!(
        ops.iter().any(|o| *o == "91" || *o == "35"),
        "no SYNCHRONIZE CACHE: {p}"
    );
    assert_eq!(p["bytes_out"], 0);
    assert_eq!(p["refused"], 0);
    assert!(p["bytes_in"].as_u64().unwrap() < 4096, "{p}");
    let snap = sessions.iter().find(|x| x["role"] == "snapshot").unwrap();
    assert!(
        snap["commands"]["88"].as_u64().unwrap() > 0,
        "the snapshot was read with READ(16): {snap}"
    );
    assert!(snap["bytes_in"].as_u64().unwrap() as usize >= prod_bytes);
    assert_eq!(snap["bytes_out"], 0);

    // The set header names the production LUN as source and the snapshot.
    let set = s["backup"]["set_id"].as_str().unwrap().to_string();
    let show = env
        .run(&["--json", "catalog", "show", &set], &[])
        .ok()
        .json();
    assert_eq!(show["source_url"], prod);
    assert_eq!(show["mode"], "serverless");
    // On tape, the set header carries both designators (FORMAT.md).
    let image = std::fs::read(env.get("SANMOVER_RIG_TAPE_FILE")).unwrap();
    for d in [&s["source_designator"], &s["snapshot_designator"]] {
        let bytes = hex::decode(d.as_str().unwrap()).unwrap();
        assert!(
            image.windows(bytes.len()).any(|w| w == bytes.as_slice()),
            "designator {d} not in the tape image"
        );
    }

    // Restore to a fresh LUN: the snapshot instant, not the end state.
    let (target, file) = env.rig.add_lun(3, 16);
    env.run(&["restore", &set, "--target", &target], &[]).ok();
    let restored = std::fs::read(&file).unwrap();
    assert_eq!(restored.len(), prod_bytes);
    let want = expected(&at_freeze, prod_bytes);
    assert!(
        restored == want,
        "the restored LUN is not the content at the snapshot instant"
    );
    assert_ne!(
        final_model, at_freeze,
        "the writer kept writing after the snapshot"
    );
    let now = std::fs::read(env.get("SANMOVER_RIG_DISK2_FILE")).unwrap();
    assert_eq!(
        now,
        expected(&final_model, prod_bytes),
        "writer model is the disk"
    );
    assert_ne!(
        restored, now,
        "the backup must not be the content after later writes"
    );

    let job = env.last_job();
    assert_eq!(job["state"], "RELEASED");
    assert_eq!(job["released"], true);
    assert_eq!(job["set_id"].as_str(), Some(set.as_str()));
    env.assert_nothing_left("after a good backup");
}

#[test]
fn exec_provider_with_the_shipped_tgt_script() {
    let env = Env::new();
    let prod = env.get("SANMOVER_RIG_DISK2");
    let bytes: usize = env.get("SANMOVER_RIG_DISK2_BYTES").parse().unwrap();
    fill_random(Path::new(&env.get("SANMOVER_RIG_DISK2_FILE")), bytes, 77);
    let spec = format!(
        "exec:{}/test-rig/snapshot/tgt-exec.sh,env={}",
        env!("CARGO_MANIFEST_DIR"),
        env.env_file()
    );
    let s = env.serverless(&prod, &spec, &[], &[]).ok().json();
    assert_eq!(s["provider"], "exec");
    assert_eq!(s["state"], "RELEASED");
    assert_eq!(s["mapped"]["read_only"], true);
    assert!(s["mapped"]["url"].as_str().unwrap().contains("-xsnap-"));
    env.assert_nothing_left("after an exec backup");
    let set = s["backup"]["set_id"].as_str().unwrap().to_string();
    let (target, file) = env.rig.add_lun(3, 16);
    env.run(&["restore", &set, "--target", &target], &[]).ok();
    assert!(
        std::fs::read(&file).unwrap() == std::fs::read(env.get("SANMOVER_RIG_DISK2_FILE")).unwrap(),
        "restore differs from the source"
    );

    // A script that fails an operation: clear error, nothing left.
    for op in ["create", "map"] {
        let r = env.serverless(&prod, &format!("{spec},fail={op}"), &[], &[]);
        assert_ne!(r.code, 0, "{op}: {}", r.stdout);
        assert!(
            r.stderr.contains(&format!("{op} refused on purpose")),
            "{}",
            r.stderr
        );
        let j = env.last_job();
        assert_eq!(j["state"], "FAILED", "{j}");
        assert_eq!(j["released"], true);
        assert!(j["reason"].as_str().unwrap().contains("on purpose"), "{j}");
        env.assert_nothing_left(op);
    }
}

/// A failed serverless backup: non-zero exit, the reason on stderr and in
/// the catalog, the snapshot released, no new set.
fn assert_failed(env: &Env, r: &Run, words: &str) {
    assert_ne!(r.code, 0, "expected failure: {}", r.stdout);
    assert!(
        r.stderr.contains(words),
        "stderr lacks {words:?}: {}",
        r.stderr
    );
    let j = env.last_job();
    assert_eq!(j["state"], "FAILED", "{j}");
    assert_eq!(j["released"], true, "{j}");
    assert!(
        j["reason"].as_str().unwrap_or("").contains(words),
        "catalog reason lacks {words:?}: {j}"
    );
    env.assert_nothing_left(words);
}

#[test]
fn faults_release_the_snapshot_and_record_why() {
    let env = Env::new();
    let prod = env.get("SANMOVER_RIG_DISK2");
    let bytes: usize = env.get("SANMOVER_RIG_DISK2_BYTES").parse().unwrap();
    fill_random(Path::new(&env.get("SANMOVER_RIG_DISK2_FILE")), bytes, 5);

    // Creation fails: the snapshot dir is not on the reflink filesystem.
    let elsewhere = tempfile::tempdir().unwrap();
    let spec = env.tgt_spec(&format!(",dir={}", elsewhere.path().display()));
    let r = env.serverless(&prod, &spec, &[], &[]);
    assert_failed(&env, &r, "cp --reflink=always");
    assert!(r.stderr.contains("no snapshot was made"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    assert_eq!(env.sets(), 0);

    // Mapping fails: the target id asked for is the rig's disk target.
    let r = env.serverless(&prod, &env.tgt_spec(",tid=1"), &[], &[]);
    assert_failed(&env, &r, "map:");
    assert!(r.stderr.contains("snapshot released"), "{}", r.stderr);
    assert_eq!(env.sets(), 0);

    // Masking fails: the snapshot is exported to every initiator; the
    // check stops before a byte is read (no set begun).
    let r = env.serverless(&prod, &env.tgt_spec(",acl=ALL"), &[], &[]);
    assert_failed(&env, &r, "masking check failed");
    assert_eq!(env.sets(), 0);

    // A quiesce hook that fails: nothing made, job FAILED, thaw still run.
    let thawed = env.rig.state.path().join("thawed");
    let thaw = format!("touch {}", thawed.display());
    let r = env.serverless(
        &prod,
        &env.tgt_spec(""),
        &["--quiesce", "exit 4", "--thaw", &thaw],
        &[],
    );
    assert_failed(&env, &r, "quiesce hook");
    assert!(thawed.exists(), "thaw must follow a failed quiesce");

    // The tape fills mid-set: a 4 MB tape for a 16 MiB LUN.
    let out = Command::new("bash")
        .arg(format!(
            "{}/test-rig/tgt/reset-tape.sh",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg("4")
        .env("SANMOVER_RIG_STATE", env.rig.state.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.run(&["tape", &env.tape(), "label", "SMALL1"], &[]).ok();
    let r = env.serverless(&prod, &env.tgt_spec(""), &[], &[]);
    assert_failed(&env, &r, "tape full");
    assert_eq!(r.code, 13, "volume overflow exit code: {}", r.stderr);
    let sets = env.run(&["--json", "catalog", "list"], &[]).ok().json();
    assert_eq!(sets.as_array().unwrap().len(), 1);
    assert_eq!(sets[0]["state"], "incomplete");
}

#[test]
fn a_crash_in_every_state_is_cleaned_up() {
    let env = Env::new();
    let prod = env.get("SANMOVER_RIG_DISK2");
    let bytes: usize = env.get("SANMOVER_RIG_DISK2_BYTES").parse().unwrap();
    fill_random(Path::new(&env.get("SANMOVER_RIG_DISK2_FILE")), bytes, 9);
    // CREATING: killed inside create, after the snapshot file was made and
    // before the catalog learnt of it; the job is still PENDING.
    for state in ["PENDING", "CREATING", "CREATED", "MAPPED", "BACKED_UP"] {
        let r = env.serverless(
            &prod,
            &env.tgt_spec(""),
            &[],
            &[("SANMOVER_TEST_DIE_AFTER_STATE", state)],
        );
        assert_eq!(r.code, -1, "{state}: killed by the test hook: {}", r.stderr);
        assert!(r.stderr.contains("test hook: dying after"), "{}", r.stderr);
        let j = env.last_job();
        let recorded = if state == "CREATING" {
            "PENDING"
        } else {
            state
        };
        assert_eq!(j["state"], recorded, "{j}");
        assert_eq!(j["released"], false);
        assert_eq!(j["orphaned"], true, "{j}");
        if state == "MAPPED" || state == "BACKED_UP" {
            assert_eq!(
                env.targets().len(),
                RIG_TARGETS + 1,
                "{state}: the export is there before cleanup"
            );
        }
        if state != "PENDING" {
            assert_eq!(
                env.snapshot_files().len(),
                1,
                "{state}: the snapshot is there"
            );
        }

        let c = env
            .run(&["--json", "snapshots", "cleanup"], &[])
            .ok()
            .json();
        let c = c.as_array().unwrap();
        assert_eq!(c.len(), 1, "{state}: {c:?}");
        assert_eq!(c[0]["ok"], true);
        let said = c[0]["outcome"].as_str().unwrap();
        match state {
            "PENDING" => assert!(said.contains("no snapshot was made"), "{said}"),
            "CREATING" => assert!(
                said.contains("snapshot") && said.contains("deleted"),
                "{said}"
            ),
            _ => {}
        }
        let j = env.last_job();
        assert_eq!(j["released"], true, "{j}");
        let after = if state == "BACKED_UP" {
            "RELEASED"
        } else {
            "FAILED"
        };
        assert_eq!(j["state"], after, "{j}");
        env.assert_nothing_left(state);

        // Idempotent: a second cleanup finds nothing to do.
        let again = env
            .run(&["--json", "snapshots", "cleanup"], &[])
            .ok()
            .json();
        assert!(again.as_array().unwrap().is_empty(), "{again}");
    }
    // The spec's env file is gone by cleanup time: the provider finds the
    // tgtd through the control port recorded with the snapshot.
    let copy = env.rig.state.path().join("copy-of-rig.env");
    std::fs::copy(env.env_file(), &copy).unwrap();
    let spec = format!("tgt:env={}", copy.display());
    let r = env.serverless(
        &prod,
        &spec,
        &[],
        &[("SANMOVER_TEST_DIE_AFTER_STATE", "MAPPED")],
    );
    assert_eq!(r.code, -1, "{}", r.stderr);
    std::fs::remove_file(&copy).unwrap();
    assert_eq!(env.targets().len(), RIG_TARGETS + 1);
    let c = env
        .run(&["--json", "snapshots", "cleanup"], &[])
        .ok()
        .json();
    assert_eq!(c[0]["ok"], true, "{c}");
    env.assert_nothing_left("cleanup without the env file");

    let jobs = env.jobs();
    assert_eq!(jobs.len(), 6);
    let text = env.run(&["snapshots", "list"], &[]).ok().stdout;
    assert!(
        text.contains("BACKED_UP") || text.contains("RELEASED"),
        "{text}"
    );
    assert!(text.contains("process is gone"), "{text}");
}

#[test]
fn the_tape_library_dying_mid_set_releases_the_snapshot() {
    let env = Env::new();
    // The tape drive in a library of its own (a second tgtd), killed
    // while the set streams.
    let library = PrivateRig::start();
    let tape = library.get("SANMOVER_RIG_TAPE").to_string();
    env.run(&["tape", &tape, "label", "LIB001"], &[]).ok();
    let prod = env.get("SANMOVER_RIG_DISK");
    let bytes: usize = env.get("SANMOVER_RIG_DISK_BYTES").parse().unwrap();
    fill_random(Path::new(&env.get("SANMOVER_RIG_DISK_FILE")), bytes, 11);
    let tape_file = PathBuf::from(library.get("SANMOVER_RIG_TAPE_FILE"));
    let killed = AtomicBool::new(false);
    let r = std::thread::scope(|sc| {
        sc.spawn(|| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(60) {
                let len = std::fs::metadata(&tape_file).map(|m| m.len()).unwrap_or(0);
                if len > 2 << 20 {
                    library.kill_tgtd();
                    killed.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        env.serverless_to(
            &tape,
            &prod,
            &env.tgt_spec(""),
            &["--block-size", "16384", "--cmd-timeout", "5"],
            &[],
        )
    });
    assert!(
        killed.load(Ordering::SeqCst),
        "the tape never reached 2 MiB"
    );
    assert_failed(&env, &r, "in state MAPPED");
    let sets = env.run(&["--json", "catalog", "list"], &[]).ok().json();
    assert_eq!(sets[0]["state"], "failed", "{sets}");
}

#[test]
fn concurrent_tgt_snapshots_get_their_own_targets() {
    use sanmover::snapshot::{provider_from_spec, SnapshotJob};
    let env = Env::new();
    let spec = env.tgt_spec("");
    let source = env.get("SANMOVER_RIG_DISK2");
    let urls: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (spec, source) = (spec.clone(), source.clone());
                sc.spawn(move || {
                    let mut p = provider_from_spec(&spec).unwrap();
                    let (_, options) = sanmover::snapshot::parse_spec(&spec).unwrap();
                    let job = SnapshotJob {
                        job_id: uuid::Uuid::new_v4(),
                        source_url: source,
                        source_designator: None,
                        initiator: format!("{BACKUP_INI}{i}"),
                        options,
                    };
                    let snap = p.create(&job).unwrap();
                    // Idempotent: a second create and map answer the same.
                    assert_eq!(p.create(&job).unwrap(), snap);
                    let m = p.map(&job, &snap).unwrap();
                    assert_eq!(p.map(&job, &snap).unwrap(), m);
                    assert!(m.read_only);
                    (job, snap, m, p)
                })
            })
            .collect();
        let done: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(env.targets().len(), RIG_TARGETS + 4, "{:?}", env.targets());
        let urls = done.iter().map(|(_, _, m, _)| m.url.clone()).collect();
        for (job, snap, _, mut p) in done {
            p.unmap(&job, &snap).unwrap();
            p.delete(&job, &snap).unwrap();
            // Idempotent on something already gone.
            p.unmap(&job, &snap).unwrap();
            p.delete(&job, &snap).unwrap();
        }
        urls
    });
    let mut distinct = urls.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{urls:?}");
    env.assert_nothing_left("after concurrent snapshots");
}
