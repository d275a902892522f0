//! Host-driven backup, restore, verify and catalog rebuild against tgt.
//! Each test runs a private rig (its own tgtd), because some kill tgtd or
//! edit its tape image.

mod common;
use common::{fill_random, sm, PrivateRig};

use std::path::Path;

const MIB: usize = 1 << 20;

struct Env {
    rig: PrivateRig,
    catalog: std::path::PathBuf,
}

impl Env {
    fn new() -> Env {
        let rig = PrivateRig::start();
        let catalog = rig.state.path().join("catalog.db");
        Env { rig, catalog }
    }
    fn disk(&self) -> String {
        self.rig.get("SANMOVER_RIG_DISK").to_string()
    }
    fn disk2(&self) -> String {
        self.rig.get("SANMOVER_RIG_DISK2").to_string()
    }
    fn tape(&self) -> String {
        self.rig.get("SANMOVER_RIG_TAPE").to_string()
    }
    fn file(&self, key: &str) -> std::path::PathBuf {
        self.rig.get(key).into()
    }
    fn run(&self, args: &[&str]) -> common::Run {
        sm(&self.catalog, args)
    }
    fn backup(&self, source: &str, extra: &[&str]) -> serde_json::Value {
        let tape = self.tape();
        let mut args = vec![
            "--json", "backup", "--mode", "host", "--source", source, "--tape", &tape,
        ];
        args.extend_from_slice(extra);
        self.run(&args).ok().json()
    }
}

fn same_prefix(a: &Path, b: &Path, len: usize) -> bool {
    let x = std::fs::read(a).unwrap();
    let y = std::fs::read(b).unwrap();
    x.len() >= len && y.len() >= len && x[..len] == y[..len]
}

/// Byte offset in the tape image of record `seq` of `set` (its header).
fn find_record(image: &[u8], set: &uuid::Uuid, seq: u64) -> usize {
    let mut needle = b"SANMDAT1".to_vec();
    needle.extend_from_slice(&1u16.to_be_bytes());
    needle.extend_from_slice(&0u16.to_be_bytes());
    needle.extend_from_slice(set.as_bytes());
    needle.extend_from_slice(&seq.to_be_bytes());
    image
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("record {seq} of {set} not in the tape image"))
}

#[test]
fn two_sets_back_up_verify_restore_rebuild_and_survive_corruption() {
    let mut env = Env::new();
    fill_random(&env.file("SANMOVER_RIG_DISK_FILE"), 8 * MIB, 1);
    fill_random(&env.file("SANMOVER_RIG_DISK2_FILE"), 16 * MIB, 2);
    let tape = env.tape();

    // A blank tape is refused until labelled; a labelled one is not
    // relabelled without --force.
    let r = env.run(&["backup", "--source", &env.disk(), "--tape", &tape]);
    assert_eq!(r.code, 45, "{}", r.stderr);
    assert!(r.stderr.contains("no label"), "{}", r.stderr);
    env.run(&["tape", &tape, "label", "VOL001"]).ok();
    let again = env.run(&["tape", &tape, "label", "OTHER"]);
    assert_eq!(again.code, 45, "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);

    // Two sets from two LUNs on one tape.
    let a = env.backup(&env.disk(), &["--blocks", "16384", "--label", "first"]);
    let b = env.backup(
        &env.disk2(),
        &[
            "--block-size",
            "65536",
            "--queue-depth",
            "4",
            "--digest",
            "sha256",
        ],
    );
    assert_eq!(a["tape_file"], 1, "{a}");
    assert_eq!(b["tape_file"], 2, "{b}");
    assert_eq!(a["bytes"], 8 * MIB as u64);
    assert_eq!(b["bytes"], 16 * MIB as u64);
    assert_eq!(a["state"], "complete");
    let set_a = a["set_id"].as_str().unwrap().to_string();
    let set_b = b["set_id"].as_str().unwrap().to_string();
    // BLAKE3 unless told otherwise; each digest is of the source bytes.
    let src_a = std::fs::read(env.file("SANMOVER_RIG_DISK_FILE")).unwrap();
    let src_b = std::fs::read(env.file("SANMOVER_RIG_DISK2_FILE")).unwrap();
    assert_eq!(a["digest_algorithm"], "blake3", "{a}");
    assert_eq!(
        a["digest"],
        blake3::hash(&src_a[..8 * MIB]).to_hex().as_str(),
        "{a}"
    );
    assert_eq!(b["digest_algorithm"], "sha256", "{b}");
    assert_eq!(
        b["digest"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&src_b[..16 * MIB])),
        "{b}"
    );

    // verify passes; --compare-source reads the source back too.
    let v = env
        .run(&["--json", "verify", &set_a, "--compare-source"])
        .ok()
        .json();
    assert_eq!(v["compared_with_source"], 8 * MIB as u64, "{v}");
    let vb = env.run(&["--json", "verify", &set_b[..8]]).ok().json();
    assert_eq!(
        (&vb["digest_algorithm"], &vb["digest"]),
        (&b["digest_algorithm"], &b["digest"]),
        "{vb}"
    );

    // Restore each to a fresh LUN: byte for byte equal.
    let (lun3, f3) = env.rig.add_lun(3, 8);
    let (lun4, f4) = env.rig.add_lun(4, 16);
    env.run(&["restore", &set_a, "--target", &lun3]).ok();
    env.run(&["restore", &set_b, "--target", &lun4]).ok();
    assert!(same_prefix(
        &f3,
        &env.file("SANMOVER_RIG_DISK_FILE"),
        8 * MIB
    ));
    assert!(same_prefix(
        &f4,
        &env.file("SANMOVER_RIG_DISK2_FILE"),
        16 * MIB
    ));

    // catalog rebuild from the tape gives the live catalog's sets.
    let live = env.run(&["--json", "catalog", "list"]).ok().json();
    let fresh = env.rig.state.path().join("rebuilt.db");
    let rebuilt = sm(&fresh, &["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    let rb = rebuilt["sets"].as_array().unwrap();
    let lv = live.as_array().unwrap();
    assert_eq!(rb.len(), lv.len());
    for (l, r) in lv.iter().zip(rb) {
        for k in [
            "id",
            "volume",
            "file_number",
            "state",
            "mode",
            "label",
            "source_url",
            "source_designator",
            "lba",
            "blocks",
            "block_size",
            "payload_size",
            "records",
            "bytes",
            "digest",
            "digest_algorithm",
            "started",
            "extents",
        ] {
            assert_eq!(l[k], r[k], "field {k}: live {l} rebuilt {r}");
        }
    }

    // Bad input, each a clear error.
    let small = env.run(&["restore", &set_b, "--target", &lun3]);
    assert_eq!(small.code, 45, "{}", small.stderr);
    assert!(
        small.stderr.contains("the set needs 32768"),
        "{}",
        small.stderr
    );
    let unknown = env.run(&["restore", "ffff0000", "--target", &lun3]);
    assert_eq!(unknown.code, 46, "{}", unknown.stderr);
    let disk_as_tape = env.run(&["backup", "--source", &env.disk(), "--tape", &env.disk2()]);
    assert_eq!(disk_as_tape.code, 43, "{}", disk_as_tape.stderr);
    assert!(disk_as_tape.stderr.contains("not a tape device"));
    let tape_as_source = env.run(&["backup", "--source", &tape, "--tape", &tape]);
    assert_eq!(tape_as_source.code, 43, "{}", tape_as_source.stderr);
    assert!(tape_as_source.stderr.contains("not a disk device"));

    // Corrupt one byte of record 3 of set A in the image, tgtd stopped.
    env.rig.kill_tgtd();
    let image_path = env.file("SANMOVER_RIG_TAPE_FILE");
    let mut image = std::fs::read(&image_path).unwrap();
    let id_a: uuid::Uuid = set_a.parse().unwrap();
    let at = find_record(&image, &id_a, 3) + 48 + 1000;
    image[at] ^= 0x40;
    std::fs::write(&image_path, &image).unwrap();
    env.rig.restart_keeping_images();
    let tape = env.tape();

    let bad = env.run(&["verify", &set_a, "--tape", &tape]);
    assert_eq!(bad.code, 37, "{}", bad.stderr);
    assert!(bad.stderr.contains("record 3"), "{}", bad.stderr);
    let disk2 = env.disk2();
    let bad_restore = env.run(&["restore", &set_a, "--target", &disk2, "--tape", &tape]);
    assert_eq!(bad_restore.code, 37, "{}", bad_restore.stderr);
    assert!(
        bad_restore.stderr.contains("record 3"),
        "{}",
        bad_restore.stderr
    );
    assert!(!bad_restore.stdout.contains("restore complete"));

    // The other set still restores (onto the rig's second disk, its own
    // source LU: that takes --force).
    std::fs::write(env.file("SANMOVER_RIG_DISK2_FILE"), vec![0u8; 16 * MIB]).unwrap();
    env.run(&[
        "restore", &set_b, "--target", &disk2, "--tape", &tape, "--force",
    ])
    .ok();
    assert!(same_prefix(
        &env.file("SANMOVER_RIG_DISK2_FILE"),
        &f4,
        16 * MIB
    ));
}

#[test]
fn a_target_killed_mid_backup_leaves_a_failed_set_and_the_earlier_set_restores() {
    let mut env = Env::new();
    fill_random(&env.file("SANMOVER_RIG_DISK2_FILE"), 16 * MIB, 3);
    let tape = env.tape();
    env.run(&["tape", &tape, "label", "VOL002"]).ok();
    let first = env.backup(&env.disk2(), &[]);
    let first_id = first["set_id"].as_str().unwrap().to_string();

    // A big source, backed up in small records so the kill lands mid-set.
    let (big, big_file) = env.rig.add_lun(5, 256);
    fill_random(&big_file, 256 * MIB, 4);
    let image = env.file("SANMOVER_RIG_TAPE_FILE");
    let before = std::fs::metadata(&image).unwrap().len();
    let catalog = env.catalog.clone();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .args([
            "--catalog",
            catalog.to_str().unwrap(),
            "backup",
            "--source",
            &big,
            "--tape",
            &tape,
            "--block-size",
            "32768",
            "--queue-depth",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&image).unwrap().len() < before + 8 * MIB as u64 {
        assert!(t0.elapsed().as_secs() < 60, "the backup never got going");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    env.rig.kill_tgtd();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "backup survived a dead target");
    assert!(
        stderr.contains("session lost")
            || stderr.contains("cannot connect")
            || stderr.contains("Connection"),
        "{stderr}"
    );
    assert!(
        std::fs::metadata(&image).unwrap().len() < before + 200 * MIB as u64,
        "the kill came too late to be mid-backup"
    );

    // The catalog has it as failed, never complete.
    let sets = env.run(&["--json", "catalog", "list"]).ok().json();
    let states: Vec<&str> = sets
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["complete", "failed"], "{sets}");

    // After the rig comes back, the earlier set restores intact.
    env.rig.restart_keeping_images();
    let tape = env.tape();
    let (lun6, f6) = env.rig.add_lun(6, 16);
    env.run(&["restore", &first_id, "--target", &lun6, "--tape", &tape])
        .ok();
    assert!(same_prefix(
        &f6,
        &env.file("SANMOVER_RIG_DISK2_FILE"),
        16 * MIB
    ));

    // A new backup closes the interrupted file and goes after it; the
    // rebuilt catalog lists the interrupted set as failed.
    let next = env.backup(&env.disk2(), &[]);
    assert_eq!(next["tape_file"], 3, "{next}");
    let fresh = env.rig.state.path().join("rebuilt.db");
    let rebuilt = sm(&fresh, &["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    let states: Vec<&str> = rebuilt["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["complete", "failed", "complete"], "{rebuilt}");
}

#[test]
fn foreign_label_is_refused_unless_forced() {
    let env = Env::new();
    let tape = env.tape();
    let junk = env.rig.state.path().join("junk.bin");
    let label = b"VOL1ABC123 not ours: some other program's label";
    std::fs::write(&junk, label).unwrap();
    env.run(&["tape", &tape, "rewind"]).ok();
    // WRITE(6), variable: the length in bytes 2..5.
    let cdb = format!("0a 00 00 00 {:02x} 00", label.len());
    env.run(&["raw", &tape, &cdb, "--send", junk.to_str().unwrap()])
        .ok();
    env.run(&["tape", &tape, "weof"]).ok();
    let b = env.run(&["backup", "--source", &env.disk2(), "--tape", &tape]);
    assert_eq!(b.code, 45, "{}", b.stderr);
    assert!(b.stderr.contains("foreign"), "{}", b.stderr);
    let l = env.run(&["tape", &tape, "label", "MINE"]);
    assert_eq!(l.code, 45, "{}", l.stderr);
    env.run(&["tape", &tape, "label", "MINE", "--force"]).ok();
    let ok = env.backup(&env.disk2(), &["--blocks", "2048"]);
    assert_eq!(ok["tape_file"], 1, "{ok}");
}

#[test]
fn tape_like_mt_and_label_states() {
    let env = Env::new();
    let tape = env.tape();
    // A tape that starts with a filemark is described as such.
    env.run(&["tape", &tape, "rewind"]).ok();
    env.run(&["tape", &tape, "weof"]).ok();
    let b = env.run(&["backup", "--source", &env.disk2(), "--tape", &tape]);
    assert_eq!(b.code, 45, "{}", b.stderr);
    assert!(b.stderr.contains("starts with a filemark"), "{}", b.stderr);
    assert!(!b.stderr.contains("()"), "{}", b.stderr);
    env.run(&["tape", &tape, "label", "MT01", "--force"]).ok();
    env.run(&["tape", &tape, "rewind"]).ok();
    // mt's defaults and aliases: fsf without a count is fsf 1; eom; $TAPE.
    let fsf = env.run(&["--json", "tape", &tape, "fsf"]).ok().json();
    assert_eq!(fsf["count"], 1, "{fsf}");
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sanmover"));
    c.args([
        "--catalog",
        env.catalog.to_str().unwrap(),
        "--json",
        "tape",
        "eom",
    ])
    .env("TAPE", &tape);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eom["op"], "eod", "{eom}");
    // status and tell show the same READ POSITION, and status names the
    // volume (from the catalog: tgt's position cannot be trusted).
    let st = env.run(&["--json", "tape", &tape, "status"]).ok().json();
    let tell = env.run(&["--json", "tape", &tape, "tell"]).ok().json();
    assert_eq!(st["device_position"], tell["device"], "{st}\n{tell}");
    assert_eq!(st["volume_from"], "catalog", "{st}");
    assert!(st["volume"].as_str().unwrap().starts_with("MT01 "), "{st}");
    // A second volume may not take a name the catalog already has.
    let again = env.run(&["tape", &tape, "label", "MT01", "--force"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let dup = env.run(&["tape", &tape, "label", "MT01"]);
    assert_eq!(dup.code, 45, "{}", dup.stderr);
    assert!(
        dup.stderr.contains("already has a volume named MT01"),
        "{}",
        dup.stderr
    );
}
