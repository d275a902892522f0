//! Host-driven backups onto a drive of `sanmover vtl` (our own iSCSI
//! target, cartridge images), from a tgt disk of a private rig, over
//! iSCSI end to end: a byte-identical restore that leaves the set on the
//! cartridge image. The whole backup suite (a library killed mid-write
//! included) runs on the VTL in tests/tgt_backup.rs.

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
