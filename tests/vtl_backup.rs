//! Host-driven backups onto a drive of `sanmover vtl` (our own iSCSI
//! target, cartridge images), from a tgt disk of a private rig, over
//! iSCSI end to end: a byte-identical restore that leaves the set on the
//! cartridge image. The whole backup suite (a library killed mid-write
//! included) runs on the VTL in tests/tgt_backup.rs; here the other two
//! modes write a VTL drive too: serverless (tgt's snapshot provider) and
//! third-party copy (`sanmover router` moving the data onto the drive).

mod common;
use common::vtl::Vtl;
use common::vtl::VTL_IQN;
use common::{fill_random, sm, PrivateRig, Router};

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
    /// Restore `id` to a new 16 MiB LUN and compare it with `source`.
    fn restores_as(&self, id: &str, lun: u32, source: &Path, len: usize) {
        let (url, file) = self.rig.add_lun(lun, 16);
        self.run(&["restore", id, "--target", &url, "--tape", &self.tape()])
            .ok();
        assert!(same_prefix(&file, source, len), "set {id} restored differs");
    }
    fn image(&self) -> PathBuf {
        self.media.join("VTL001L8.img")
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
    env.restores_as(&id, 3, &env.file("SANMOVER_RIG_DISK2_FILE"), 16 * MIB);
    // The set is on the cartridge image, whichever drive reads it next.
    env.run(&["changer", &env.vtl.url(0), "unload"]).ok();
    assert!(std::fs::metadata(env.image()).unwrap().len() > 16 * MIB as u64);
}

/// Snapshot-serverless onto a VTL drive: tgt snapshots the production
/// LUN, the backup reads the snapshot and writes our drive.
#[test]
fn serverless_backup_onto_a_vtl_drive_restores_byte_for_byte() {
    let env = Env::new();
    let source = env.file("SANMOVER_RIG_DISK2_FILE");
    fill_random(&source, 16 * MIB, 12);
    let rig_env = env.rig.state.path().join("rig.env");
    let spec = format!("tgt:env={}", rig_env.display());
    let (disk2, tape) = (env.rig.get("SANMOVER_RIG_DISK2").to_string(), env.tape());
    let args = [
        "--json",
        "backup",
        "--mode",
        "serverless",
        "--source",
        &disk2,
        "--tape",
        &tape,
        "--snapshot",
        &spec,
    ];
    let job = env.run(&args).ok().json();
    assert_eq!(job["state"], "RELEASED", "{job}");
    let b = &job["backup"];
    assert_eq!(b["mode"], "serverless", "{job}");
    let id = b["set_id"].as_str().unwrap().to_string();
    env.run(&["verify", &id, "--tape", &tape]).ok();
    env.restores_as(&id, 3, &source, 16 * MIB);
}

/// Third-party copy onto a VTL drive: the router's copy manager reads the
/// tgt disk and writes our drive; no data crosses the initiator.
#[test]
fn xcopy_backup_through_the_router_onto_a_vtl_drive_restores_byte_for_byte() {
    let env = Env::new();
    let source = env.file("SANMOVER_RIG_DISK_FILE");
    fill_random(&source, 16 * MIB, 13);
    let disks = format!(
        "iscsi://{}/{}",
        env.rig.get("SANMOVER_RIG_PORTAL"),
        env.rig.get("SANMOVER_RIG_DISK_IQN")
    );
    let library = format!("iscsi://{}/{VTL_IQN}", env.vtl.addr);
    let router = Router::start(&[&disks, &library], &[]);
    let (disk, tape, cm) = (
        env.rig.get("SANMOVER_RIG_DISK").to_string(),
        env.tape(),
        router.url(),
    );
    let blocks = (16 * MIB / 512).to_string();
    let args = [
        "--json",
        "backup",
        "--mode",
        "xcopy",
        "--source",
        &disk,
        "--tape",
        &tape,
        "--copy-manager",
        &cm,
        "--blocks",
        &blocks,
        "--fallback",
        "never",
    ];
    let b = env.run(&args).ok().json();
    assert_eq!(b["mode"], "xcopy", "{b}");
    assert_eq!(b["data_bytes_through_initiator"], 0, "{b}");
    let id = b["set_id"].as_str().unwrap().to_string();
    env.run(&["verify", &id, "--tape", &tape]).ok();
    env.restores_as(&id, 3, &source, 16 * MIB);
}
