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

/// Flip one byte of a backing file at `offset`.
fn flip_byte(path: &Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x01;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn verify_compare_target_proves_a_restore_without_the_original() {
    let env = Env::new();
    fill_random(&env.file("SANMOVER_RIG_DISK_FILE"), 8 * MIB, 21);
    let tape = env.tape();
    env.run(&["tape", &tape, "label", "CMP001"]).ok();
    // A partial range: LBA 1000, 2048 blocks (1 MiB).
    let set = env.backup(&env.disk(), &["--lba", "1000", "--blocks", "2048"]);
    let id = set["set_id"].as_str().unwrap().to_string();
    let (lun3, f3) = env.rig.add_lun(3, 4);
    let (lun4, _) = env.rig.add_lun(4, 4);
    env.run(&["restore", &id, "--target", &lun3]).ok();
    env.run(&["restore", &id, "--target", &lun4, "--lba", "0"])
        .ok();
    // The original is gone: the source now holds other data.
    fill_random(&env.file("SANMOVER_RIG_DISK_FILE"), 8 * MIB, 22);
    let src = env.run(&["verify", &id, "--compare-source"]);
    assert_eq!(src.code, 37, "the source changed: {}", src.stderr);

    // The restored copies are proven against the set alone.
    let v = env
        .run(&["--json", "verify", &id, "--compare-target", &lun3])
        .ok()
        .json();
    assert_eq!(v["compared_with_target"], MIB as u64, "{v}");
    assert_eq!(v["compared_with_source"], serde_json::Value::Null, "{v}");
    let text = env
        .run(&["verify", &id, "--compare-target", &lun4, "--lba", "0"])
        .ok();
    assert!(
        text.stdout.contains("1048576 bytes identical to") && text.stdout.contains("from LBA 0"),
        "{}",
        text.stdout
    );
    // At the wrong LBA it differs, and says where.
    let wrong = env.run(&["verify", &id, "--compare-target", &lun4]);
    assert_eq!(wrong.code, 37, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("differs from the target"),
        "{}",
        wrong.stderr
    );
    assert!(wrong.stderr.contains("(LBA 1000)"), "{}", wrong.stderr);

    // One flipped bit in the restored copy, LBA 1500 byte 7: found there.
    flip_byte(&f3, 1500 * 512 + 7);
    let bad = env.run(&["verify", &id, "--compare-target", &lun3]);
    assert_eq!(bad.code, 37, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains(&format!("at byte {} (LBA 1500)", 500 * 512 + 7)),
        "{}",
        bad.stderr
    );
    // A target that cannot hold the set there is refused before reading.
    let small = env.run(&["verify", &id, "--compare-target", &lun4, "--lba", "7000"]);
    assert_eq!(small.code, 45, "{}", small.stderr);
    assert!(
        small.stderr.contains("the set needs 2048 from LBA 7000"),
        "{}",
        small.stderr
    );
    // --lba needs --compare-target.
    assert_eq!(env.run(&["verify", &id, "--lba", "0"]).code, 1);
}

#[test]
fn block_sizes_are_checked_against_the_drive() {
    let env = Env::new();
    let tape = env.tape();
    env.run(&["tape", &tape, "label", "BLK001"]).ok();
    // tgt's READ BLOCK LIMITS: 1 MiB at most.
    let limits = env.run(&["--json", "tape", &tape, "limits"]).ok().json();
    assert_eq!(limits["max_block_length"], 1 << 20, "{limits}");
    let big = env.run(&[
        "backup",
        "--source",
        &env.disk2(),
        "--tape",
        &tape,
        "--block-size",
        "2M",
    ]);
    assert_eq!(big.code, 45, "{}", big.stderr);
    assert!(
        big.stderr.contains("--block-size 2 MiB (2097152 bytes) is larger than the drive takes: READ BLOCK LIMITS allows at most 1 MiB (1048576 bytes); give --block-size 1M or less"),
        "{}",
        big.stderr
    );
    let sets = env.run(&["--json", "catalog", "list"]).ok().json();
    assert_eq!(sets.as_array().unwrap().len(), 0, "nothing written: {sets}");
    // 1M is the drive's maximum: taken, one record per MiB.
    let one = env.backup(&env.disk2(), &["--block-size", "1M", "--blocks", "8192"]);
    assert_eq!(one["records"], 5, "{one}");
    assert_eq!(one["tape_file"], 1, "{one}");
    // Small and odd sizes work, with a warning that says what to expect.
    let small = env
        .run(&[
            "backup",
            "--source",
            &env.disk2(),
            "--tape",
            &tape,
            "--block-size",
            "32K",
            "--blocks",
            "512",
        ])
        .ok();
    assert!(
        small.stderr.contains("--block-size 32 KiB is below 64 KiB"),
        "{}",
        small.stderr
    );
    assert!(small.stderr.contains("MB/s"), "{}", small.stderr);
    let odd = env
        .run(&[
            "backup",
            "--source",
            &env.disk2(),
            "--tape",
            &tape,
            "--block-size",
            "100000",
            "--blocks",
            "512",
        ])
        .ok();
    assert!(
        odd.stderr.contains("not a multiple of the source's 512-byte blocks: each tape block carries 99840 bytes of data (195 blocks) in 99888 bytes"),
        "{}",
        odd.stderr
    );
    let quiet = env
        .run(&[
            "backup",
            "--source",
            &env.disk2(),
            "--tape",
            &tape,
            "--block-size",
            "256KiB",
            "--blocks",
            "512",
        ])
        .ok();
    assert!(!quiet.stderr.contains("--block-size"), "{}", quiet.stderr);
    for s in env
        .run(&["--json", "catalog", "list"])
        .ok()
        .json()
        .as_array()
        .unwrap()
    {
        env.run(&["verify", s["id"].as_str().unwrap()]).ok();
    }
}

#[test]
fn catalog_lists_shows_expires_and_forgets_without_touching_the_tape() {
    let env = Env::new();
    let tape = env.tape();
    env.run(&["tape", &tape, "label", "CAT001"]).ok();
    let a = env.backup(&env.disk2(), &["--blocks", "2048", "--label", "first"]);
    let b = env.backup(&env.disk2(), &["--blocks", "1024", "--label", "second"]);
    let (ida, idb) = (a["set_id"].as_str().unwrap(), b["set_id"].as_str().unwrap());
    let list_json_before = env.run(&["--json", "catalog", "list"]).ok().json();

    // list: text, at most 100 columns, a date, a label and a short source.
    let list = env.run(&["catalog", "list"]).ok().stdout;
    for line in list.lines() {
        assert!(line.chars().count() <= 100, "{line}");
    }
    let row_a = list.lines().find(|l| l.starts_with(&ida[..8])).unwrap();
    assert!(
        row_a.contains("first") && row_a.contains("CAT001:1"),
        "{row_a}"
    );
    assert!(row_a.ends_with("disk/2"), "{row_a}");
    let date = row_a.split_whitespace().nth(1).unwrap();
    assert!(
        date.len() == 17 && date.as_bytes()[10] == b'T' && date.ends_with('Z'),
        "{date}"
    );

    // show: text with ISO 8601 dates; --json is the catalog row.
    let show = env.run(&["catalog", "show", &ida[..8]]).ok().stdout;
    assert!(show.starts_with(&format!("set {ida}\n")), "{show}");
    assert!(show.contains("label        first"), "{show}");
    assert!(
        show.contains(&format!("started      {}", &date[..16])),
        "{show}"
    );
    let shown = env.run(&["--json", "catalog", "show", ida]).ok().json();
    assert_eq!(shown, list_json_before[0], "show --json is the list's row");

    // expire: kept on tape, still verifies, no longer counted as kept.
    let e = env.run(&["--json", "catalog", "expire", ida]).ok().json();
    assert_eq!(e["already"], false, "{e}");
    let again = env.run(&["--json", "catalog", "expire", ida]).ok().json();
    assert_eq!(
        (again["already"].clone(), again["expired"].clone()),
        (true.into(), e["expired"].clone())
    );
    let v = env.run(&["verify", ida]).ok();
    assert!(v.stderr.contains("expired on"), "{}", v.stderr);
    let vols = env.run(&["--json", "catalog", "volumes"]).ok().json();
    assert_eq!(vols[0]["name"], "CAT001", "{vols}");
    assert_eq!(
        (
            vols[0]["sets"].clone(),
            vols[0]["kept"].clone(),
            vols[0]["expired"].clone()
        ),
        (2.into(), 1.into(), 1.into()),
        "{vols}"
    );
    assert_eq!(vols[0]["reusable"], false, "{vols}");
    assert!(env
        .run(&["catalog", "list"])
        .ok()
        .stdout
        .lines()
        .any(|l| l.starts_with(&ida[..8]) && l.contains("expired")));
    let listed = env.run(&["--json", "catalog", "list"]).ok().json();
    assert!(
        listed[1].get("expired").is_none(),
        "only the expired set has the key: {listed}"
    );

    // forget: refused without --force, then the row is gone; the tape
    // still has the set, and a rebuild finds it (keeping the expiry of
    // the other).
    let no = env.run(&["catalog", "forget", idb]);
    assert_eq!(no.code, 45, "{}", no.stderr);
    assert!(no.stderr.contains("--force"), "{}", no.stderr);
    assert_eq!(
        env.run(&["--json", "catalog", "list"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    env.run(&["catalog", "forget", idb, "--force"]).ok();
    assert_eq!(env.run(&["catalog", "show", idb]).code, 46);
    let rebuilt = env
        .run(&["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    assert_eq!(rebuilt["applied"], true, "{rebuilt}");
    assert_eq!(rebuilt["diff"]["added"][0]["id"], idb, "{rebuilt}");
    let after = env.run(&["--json", "catalog", "list"]).ok().json();
    assert_eq!(after[0]["expired"], e["expired"], "{after}");
    assert!(after[1].get("expired").is_none(), "{after}");
    env.run(&["verify", idb]).ok();
}
