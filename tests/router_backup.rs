//! Third-party-copy backups through our data router: disk on tgt ->
//! `sanmover router` (EXTENDED COPY copy manager) -> tape on tgt, restored
//! with the ordinary restore. Each test has its own rigs and router.

mod common;
use common::{fill_random, sm, PrivateRig, Router};

use std::path::{Path, PathBuf};

const MIB: usize = 1 << 20;

struct Env {
    rig: PrivateRig,
    catalog: PathBuf,
}

impl Env {
    fn new(env: &[(&str, &str)]) -> Env {
        let rig = PrivateRig::start_with(env);
        let catalog = rig.state.path().join("catalog.db");
        Env { rig, catalog }
    }
    fn get(&self, k: &str) -> String {
        self.rig.get(k).to_string()
    }
    fn run(&self, args: &[&str]) -> common::Run {
        sm(&self.catalog, args)
    }
    /// The disk target and the tape target, as router backends.
    fn targets(&self) -> (String, String) {
        let portal = self.get("SANMOVER_RIG_PORTAL");
        (
            format!("iscsi://{portal}/{}", self.get("SANMOVER_RIG_DISK_IQN")),
            format!("iscsi://{portal}/{}", self.get("SANMOVER_RIG_TAPE_IQN")),
        )
    }
    fn label(&self, tape: &str) {
        self.run(&["tape", tape, "label", "ROUTER1"]).ok();
    }
    fn xcopy_backup(&self, router: &Router, tape: &str, extra: &[&str]) -> common::Run {
        let (src, cm) = (self.get("SANMOVER_RIG_DISK"), router.url());
        let mut args = vec![
            "--json",
            "backup",
            "--mode",
            "xcopy",
            "--source",
            &src,
            "--tape",
            tape,
            "--copy-manager",
            &cm,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }
    fn set_state(&self, id: &str) -> String {
        let v = self.run(&["--json", "catalog", "show", id]).ok().json();
        v["state"].as_str().unwrap_or_default().to_string()
    }
    fn sets(&self) -> Vec<serde_json::Value> {
        let v = self.run(&["--json", "catalog", "list"]).ok().json();
        v.as_array().cloned().unwrap_or_default()
    }
}

fn same_prefix(a: &Path, b: &Path, len: usize) -> bool {
    let x = std::fs::read(a).unwrap();
    let y = std::fs::read(b).unwrap();
    x.len() >= len && y.len() >= len && x[..len] == y[..len]
}

#[test]
fn backup_through_the_router_restores_byte_for_byte_with_no_data_through_the_server() {
    let e = Env::new(&[]);
    let disk_file = PathBuf::from(e.get("SANMOVER_RIG_DISK_FILE"));
    let len = 12 * MIB;
    fill_random(&disk_file, 64 * MIB, 0x5eed_7070);
    let tape = e.get("SANMOVER_RIG_TAPE");
    e.label(&tape);
    let (disks, tapes) = e.targets();
    let router = Router::start(&[&disks, &tapes], &[]);

    let blocks = (len / 512).to_string();
    let s = e
        .xcopy_backup(
            &router,
            &tape,
            &["--blocks", &blocks, "--fallback", "never"],
        )
        .ok()
        .json();
    assert_eq!(s["mode"], "xcopy", "{s}");
    assert_eq!(s["bytes"], len as u64, "{s}");
    assert_eq!(s["data_bytes_through_initiator"], 0, "{s}");
    // Parameter lists and status: a few bytes per 256 KiB record.
    let through = s["bytes_through_initiator"].as_u64().unwrap();
    assert!(
        through > 0 && through < (len / 1000) as u64,
        "{through} bytes through the server for {len} bytes of data"
    );
    let set = s["set_id"].as_str().unwrap().to_string();
    assert_eq!(e.set_state(&set), "complete");

    // A host-driven set after it appends cleanly behind it.
    let host = e
        .run(&[
            "--json",
            "backup",
            "--mode",
            "host",
            "--source",
            &e.get("SANMOVER_RIG_DISK"),
            "--tape",
            &tape,
            "--lba",
            "100",
            "--blocks",
            "2048",
        ])
        .ok()
        .json();
    assert_eq!(host["tape_file"], s["tape_file"].as_u64().unwrap() + 1);

    // The ordinary verify and restore read it.
    let v = e.run(&["--json", "verify", &set]).ok().json();
    assert_eq!(v["bytes"], len as u64, "{v}");
    let (target, target_file) = e.rig.add_lun(3, 16);
    e.run(&["--json", "restore", &set, "--target", &target])
        .ok();
    assert!(same_prefix(&disk_file, &target_file, len));

    // catalog rebuild finds the same set from the tape alone.
    let live: Vec<_> = e.sets();
    e.run(&["catalog", "rebuild", "--tape", &tape]).ok();
    let rebuilt = e.sets();
    let pick = |rows: &[serde_json::Value]| {
        rows.iter()
            .find(|r| r["id"] == set.as_str())
            .cloned()
            .unwrap_or_default()
    };
    for k in [
        "state",
        "records",
        "bytes",
        "digest",
        "digest_algorithm",
        "mode",
        "file_number",
    ] {
        assert_eq!(pick(&live)[k], pick(&rebuilt)[k], "field {k}");
    }
}

#[test]
fn a_corrupted_record_of_a_router_set_is_named_by_verify() {
    let e = Env::new(&[]);
    let disk_file = PathBuf::from(e.get("SANMOVER_RIG_DISK_FILE"));
    fill_random(&disk_file, 4 * MIB, 0xc0ffee);
    let tape = e.get("SANMOVER_RIG_TAPE");
    e.label(&tape);
    let (disks, tapes) = e.targets();
    let router = Router::start(&[&disks, &tapes], &[]);
    let s = e
        .xcopy_backup(&router, &tape, &["--blocks", "8192", "--fallback", "never"])
        .ok()
        .json();
    let set: uuid::Uuid = s["set_id"].as_str().unwrap().parse().unwrap();
    drop(router);
    // Flip one payload byte of record 2 in the tape image, tgtd stopped.
    e.rig.kill_tgtd();
    let image = PathBuf::from(e.get("SANMOVER_RIG_TAPE_FILE"));
    let mut bytes = std::fs::read(&image).unwrap();
    let mut needle = b"SANMDAT1".to_vec();
    needle.extend_from_slice(&[0, 1, 0, 1]);
    needle.extend_from_slice(set.as_bytes());
    needle.extend_from_slice(&2u64.to_be_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("record 2 in the image");
    bytes[at + 48 + 1000] ^= 0x40;
    std::fs::write(&image, bytes).unwrap();
    let mut e = e;
    e.rig.restart_keeping_images();
    let tape = e.get("SANMOVER_RIG_TAPE");
    let r = e.run(&["verify", &set.to_string(), "--tape", &tape]);
    assert_eq!(r.code, 37, "{}", r.stderr);
    assert!(r.stderr.contains("record 2"), "{}", r.stderr);
}

#[test]
fn unknown_designator_aborts_the_copy_and_prefer_finishes_host_driven() {
    let e = Env::new(&[]);
    let disk_file = PathBuf::from(e.get("SANMOVER_RIG_DISK_FILE"));
    fill_random(&disk_file, 2 * MIB, 42);
    let tape = e.get("SANMOVER_RIG_TAPE");
    e.label(&tape);
    let (_, tapes) = e.targets();
    // The router knows the tape but not the disk.
    let router = Router::start(&[&tapes], &[]);
    let r = e.xcopy_backup(&router, &tape, &["--blocks", "4096", "--fallback", "never"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("aborted the copy at segment"),
        "{}",
        r.stderr
    );
    let failed = e.sets();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["state"], "failed");
    assert!(failed[0]["error"].as_str().unwrap().contains("segment"));

    let s = e
        .xcopy_backup(
            &router,
            &tape,
            &["--blocks", "4096", "--fallback", "prefer"],
        )
        .ok()
        .json();
    assert_eq!(s["fallback"], true, "{s}");
    assert_eq!(s["backup"]["mode"], "host", "{s}");
    let set = s["backup"]["set_id"].as_str().unwrap().to_string();
    let (target, target_file) = e.rig.add_lun(3, 4);
    e.run(&["restore", &set, "--target", &target]).ok();
    assert!(same_prefix(&disk_file, &target_file, 2 * MIB));
}

#[test]
fn tape_target_killed_mid_copy_fails_the_set_and_an_earlier_set_survives() {
    // Disks and the tape on separate tgtds, so the tape's can die alone.
    let disks = Env::new(&[]);
    let mut tapes = Env::new(&[]);
    let tapes_catalog = disks.catalog.clone();
    let disk_file = PathBuf::from(disks.get("SANMOVER_RIG_DISK_FILE"));
    fill_random(&disk_file, 64 * MIB, 7);
    let tape = tapes.get("SANMOVER_RIG_TAPE");
    disks.label(&tape);
    let router = Router::start(&[&disks.targets().0, &tapes.targets().1], &[]);
    let first = disks
        .xcopy_backup(&router, &tape, &["--blocks", "2048", "--fallback", "never"])
        .ok()
        .json();
    let first_id = first["set_id"].as_str().unwrap().to_string();

    let src = disks.get("SANMOVER_RIG_DISK");
    let cm = router.url();
    let cat = tapes_catalog.to_str().unwrap().to_string();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .args([
            "--catalog",
            &cat,
            "--json",
            "backup",
            "--mode",
            "xcopy",
            "--source",
            &src,
            "--tape",
            &tape,
            "--copy-manager",
            &cm,
            "--fallback",
            "never",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the tape's target once the copy is well under way: 8 MiB of it
    // on the tape image (a fixed sleep races the copy on a busy machine).
    let image = PathBuf::from(tapes.get("SANMOVER_RIG_TAPE_FILE"));
    let start = std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0) < start + 8 * MIB as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the copy never reached 8 MiB on the tape"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    tapes.rig.kill_tgtd();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the backup survived a dead tape target"
    );
    assert!(stderr.contains("segment"), "{stderr}");
    let rows = disks.sets();
    let second = rows.iter().find(|r| r["id"] != first_id.as_str()).unwrap();
    assert_eq!(second["state"], "failed", "{second}");

    // The tape's target comes back (on a new port): the earlier set still
    // restores.
    tapes.rig.restart_keeping_images();
    let tape = tapes.get("SANMOVER_RIG_TAPE");
    let (target, target_file) = disks.rig.add_lun(3, 2);
    disks
        .run(&["restore", &first_id, "--target", &target, "--tape", &tape])
        .ok();
    assert!(same_prefix(&disk_file, &target_file, MIB));
}

#[test]
fn a_full_tape_aborts_the_copy_and_marks_the_set_failed() {
    let e = Env::new(&[("SANMOVER_RIG_TAPE_MB", "6")]);
    let disk_file = PathBuf::from(e.get("SANMOVER_RIG_DISK_FILE"));
    fill_random(&disk_file, 16 * MIB, 9);
    let tape = e.get("SANMOVER_RIG_TAPE");
    e.label(&tape);
    let (disks, tapes) = e.targets();
    let router = Router::start(&[&disks, &tapes], &[]);
    let r = e.xcopy_backup(
        &router,
        &tape,
        &["--blocks", "32768", "--fallback", "never"],
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("segment"), "{}", r.stderr);
    let rows = e.sets();
    assert_eq!(rows[0]["state"], "failed");
}

#[test]
fn a_source_lba_out_of_range_is_copy_aborted_with_its_segment() {
    use sanmover::device::Scsi;
    use sanmover::scsi::spc::Designator;
    use sanmover::scsi::xcopy::{Cscd, DeviceParams, Segment, SegmentKind, XcopyParams};
    use sanmover::scsi::{DeviceType, Lba};
    use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
    use sanmover::transport::url::DeviceUrl;

    let e = Env::new(&[]);
    let tape = e.get("SANMOVER_RIG_TAPE");
    e.label(&tape);
    let (disks, tapes) = e.targets();
    let router = Router::start(&[&disks, &tapes], &[]);
    let designator = |dev: &str| -> Designator {
        let url = match DeviceUrl::parse(dev).unwrap() {
            DeviceUrl::Iscsi(u) => u,
            other => panic!("{other:?}"),
        };
        let t = IscsiTransport::connect(&url, &IscsiOptions::default()).unwrap();
        let mut scsi = Scsi::new(t);
        scsi.device_identification()
            .unwrap()
            .best_lu_designator()
            .cloned()
            .unwrap()
    };
    let disk = designator(&e.get("SANMOVER_RIG_DISK"));
    let tape_d = designator(&tape);
    let cscds = vec![
        Cscd::identification(&disk, DeviceType::DISK, DeviceParams::block(512)).unwrap(),
        Cscd::identification(
            &tape_d,
            DeviceType::TAPE,
            DeviceParams::Stream {
                pad: false,
                fixed: false,
                stream_block_len: 0,
            },
        )
        .unwrap(),
    ];
    let seg = |lba: u64| Segment {
        cat: false,
        dc: false,
        kind: SegmentKind::BlockToStream {
            src: 0,
            dst: 1,
            stream_len: 4096,
            blocks: 8,
            lba: Lba(lba),
        },
    };
    // Segment 0 is fine, segment 1 starts past the 64 MiB disk.
    let params = XcopyParams::new(cscds, vec![seg(0), seg(10 << 20)]);
    let file = e.rig.state.path().join("bad-lba.bin");
    std::fs::write(&file, params.encode().unwrap()).unwrap();
    let r = e.run(&[
        "xcopy",
        "--copy-manager",
        &router.url(),
        "--params",
        file.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("segment 1"), "{}", r.stderr);
    assert!(
        r.stderr
            .to_lowercase()
            .contains("logical block address out of range"),
        "{}",
        r.stderr
    );
}
