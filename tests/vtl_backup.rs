//! Host-driven backups onto a drive of `sanmover vtl` (our own iSCSI
//! target, cartridge images), from a tgt disk of a private rig, over
//! iSCSI end to end: a byte-identical restore, and a library killed
//! (SIGKILL by pid) mid-write that comes back with a consistent image.

mod common;
use common::vtl::Vtl;
use common::{fill_random, sm, PrivateRig};

use std::path::{Path, PathBuf};

const MIB: usize = 1 << 20;

struct Env {
    rig: PrivateRig,
    catalog: PathBuf,
    media: PathBuf,
    vtl: Vtl,
}

impl Env {
    /// A private tgt rig for the source disks and a one-drive library
    /// with the first cartridge loaded and labelled.
    fn new() -> Env {
        let rig = PrivateRig::start();
        let catalog = rig.state.path().join("catalog.db");
        let media = rig.state.path().join("media");
        let vtl = Vtl::start(&media, 1, 2, "1G");
        let env = Env {
            rig,
            catalog,
            media,
            vtl,
        };
        env.run(&["changer", &env.vtl.url(0), "load", "1", "0"])
            .ok();
        env.run(&["tape", &env.tape(), "label", "VTL001"]).ok();
        env
    }
    fn tape(&self) -> String {
        self.vtl.url(1)
    }
    fn file(&self, key: &str) -> PathBuf {
        self.rig.get(key).into()
    }
    fn run(&self, args: &[&str]) -> common::Run {
        sm(&self.catalog, args)
    }
    fn backup(&self, source: &str) -> serde_json::Value {
        let tape = self.tape();
        let args = [
            "--json", "backup", "--mode", "host", "--source", source, "--tape", &tape,
        ];
        self.run(&args).ok().json()
    }
    fn image(&self) -> PathBuf {
        self.media.join("VTL001L8.img")
    }
}

/// The state of each set of a `--json` set list.
fn states(sets: &serde_json::Value) -> Vec<String> {
    let list = sets.as_array().expect("a list of sets");
    list.iter()
        .map(|s| s["state"].as_str().unwrap().to_string())
        .collect()
}

impl Env {
    /// A backup in small records, so that a kill lands mid-set.
    fn spawn_backup(&self, source: &str) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_sanmover"))
            .arg("--catalog")
            .arg(&self.catalog)
            .args(["backup", "--source", source, "--tape", &self.tape()])
            .args(["--block-size", "32768", "--queue-depth", "2"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn same_prefix(a: &Path, b: &Path, len: usize) -> bool {
    let x = std::fs::read(a).unwrap();
    let y = std::fs::read(b).unwrap();
    x.len() >= len && y.len() >= len && x[..len] == y[..len]
}

#[test]
fn host_backup_verify_and_restore_on_a_vtl_drive() {
    let env = Env::new();
    let disk2 = env.rig.get("SANMOVER_RIG_DISK2").to_string();
    fill_random(&env.file("SANMOVER_RIG_DISK2_FILE"), 16 * MIB, 11);
    let b = env.backup(&disk2);
    let id = b["set_id"].as_str().unwrap().to_string();
    assert_eq!(b["tape_file"], 1, "{b}");
    env.run(&["verify", &id, "--tape", &env.tape()]).ok();
    let (lun3, f3) = env.rig.add_lun(3, 16);
    env.run(&["restore", &id, "--target", &lun3, "--tape", &env.tape()])
        .ok();
    assert!(same_prefix(
        &f3,
        &env.file("SANMOVER_RIG_DISK2_FILE"),
        16 * MIB
    ));
    // The set is on the cartridge image, whichever drive reads it next.
    env.run(&["changer", &env.vtl.url(0), "unload"]).ok();
    assert!(std::fs::metadata(env.image()).unwrap().len() > 16 * MIB as u64);
}

#[test]
fn a_library_killed_mid_backup_restarts_consistent() {
    let mut env = Env::new();
    let disk2 = env.rig.get("SANMOVER_RIG_DISK2").to_string();
    fill_random(&env.file("SANMOVER_RIG_DISK2_FILE"), 16 * MIB, 3);
    let first = env.backup(&disk2);
    let first_id = first["set_id"].as_str().unwrap().to_string();

    let (big, big_file) = env.rig.add_lun(5, 256);
    fill_random(&big_file, 256 * MIB, 4);
    let image = env.image();
    let before = std::fs::metadata(&image).unwrap().len();
    let child = env.spawn_backup(&big);
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&image).unwrap().len() < before + 8 * MIB as u64 {
        assert!(t0.elapsed().as_secs() < 60, "the backup never got going");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    env.vtl.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "backup survived a dead library");
    assert!(
        std::fs::metadata(&image).unwrap().len() < before + 200 * MIB as u64,
        "the kill came too late to be mid-backup"
    );
    let sets = env.run(&["--json", "catalog", "list"]).ok().json();
    assert_eq!(states(&sets), ["complete", "failed"], "{sets}\n{stderr}");

    // The restarted library loads the cartridge again (its torn tail cut
    // back to the last whole record); the earlier set restores intact.
    env.vtl = Vtl::start(&env.media, 1, 2, "1G");
    let tape = env.tape();
    let (lun6, f6) = env.rig.add_lun(6, 16);
    env.run(&["restore", &first_id, "--target", &lun6, "--tape", &tape])
        .ok();
    assert!(same_prefix(
        &f6,
        &env.file("SANMOVER_RIG_DISK2_FILE"),
        16 * MIB
    ));

    // The next backup closes the interrupted file and goes after it; a
    // catalog rebuilt from the cartridge lists the interrupted set failed.
    let next = env.backup(&disk2);
    assert_eq!(next["tape_file"], 3, "{next}");
    let fresh = env.rig.state.path().join("rebuilt.db");
    let rebuilt = sm(&fresh, &["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    let want = ["complete", "failed", "complete"];
    assert_eq!(states(&rebuilt["sets"]), want, "{rebuilt}");
}
