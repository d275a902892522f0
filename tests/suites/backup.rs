//! Host-driven backup, restore, verify and catalog rebuild, written once
//! over the tape fixture (tests/common/drive.rs) and run by
//! tests/tgt_backup.rs on tgt's tape and on a `sanmover vtl` drive, and by
//! tests/lio_tape_suites.rs on the TCMU tape in LIO.

// Each binary runs the bodies its drives can (no kill in the guest).
#![allow(dead_code)]

use crate::common::drive::{Drive, Lun, TapeEnv};

const MIB: usize = 1 << 20;

/// The bytes of tape block `seq` of `set`, as a data record starts
/// (FORMAT.md, "Data record"): magic, version, flags, set id, sequence.
pub fn record_start(set: &str, seq: u64) -> Vec<u8> {
    let set: uuid::Uuid = set.parse().unwrap();
    let mut needle = b"SANMDAT1".to_vec();
    needle.extend_from_slice(&1u16.to_be_bytes());
    needle.extend_from_slice(&0u16.to_be_bytes());
    needle.extend_from_slice(set.as_bytes());
    needle.extend_from_slice(&seq.to_be_bytes());
    needle
}

fn id(v: &serde_json::Value) -> String {
    v["set_id"].as_str().unwrap().to_string()
}

/// Two sets from two LUNs on one tape: digests, verify, byte-identical
/// restores, a rebuilt catalog equal to the live one, and bad input.
pub fn two_sets_back_up_verify_restore_and_rebuild(env: TapeEnv) {
    let (d1, d2) = (env.disk(1), env.disk(2));
    let src_a = env.fill(&d1, 8 * MIB, 1);
    let src_b = env.fill(&d2, 16 * MIB, 2);
    let tape = env.tape();

    // A blank tape is refused until labelled; a labelled one is not
    // relabelled without --force.
    let r = env.run(&["backup", "--source", &d1.url, "--tape", &tape]);
    assert_eq!(r.code, 45, "{}", r.stderr);
    assert!(r.stderr.contains("no label"), "{}", r.stderr);
    env.run(&["tape", &tape, "label", "VOL001"]).ok();
    let again = env.run(&["tape", &tape, "label", "OTHER"]);
    assert_eq!(again.code, 45, "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);

    let a = env.backup(&d1, &["--blocks", "16384", "--label", "first"]);
    let b = env.backup(
        &d2,
        &[
            "--block-size",
            "65536",
            "--queue-depth",
            "4",
            "--digest",
            "sha256",
        ],
    );
    assert_eq!((&a["tape_file"], &b["tape_file"]), (&1.into(), &2.into()));
    assert_eq!(a["bytes"], 8 * MIB as u64);
    assert_eq!(b["bytes"], 16 * MIB as u64);
    assert_eq!(a["state"], "complete");
    let (set_a, set_b) = (id(&a), id(&b));
    // BLAKE3 unless told otherwise; each digest is of the source bytes.
    assert_eq!(a["digest_algorithm"], "blake3", "{a}");
    assert_eq!(a["digest"], blake3::hash(&src_a).to_hex().as_str(), "{a}");
    assert_eq!(b["digest_algorithm"], "sha256", "{b}");
    let sha = <sha2::Sha256 as sha2::Digest>::digest(&src_b);
    assert_eq!(b["digest"], hex::encode(sha), "{b}");

    // verify passes; --compare-source reads the source back too.
    let v = env
        .run(&["--json", "verify", &set_a, "--compare-source"])
        .ok()
        .json();
    assert_eq!(v["compared_with_source"], 8 * MIB as u64, "{v}");
    let vb = env.run(&["--json", "verify", &set_b[..8]]).ok().json();
    assert_eq!(vb["digest"], b["digest"], "{vb}");

    // Restore each to a fresh LUN: byte for byte equal.
    let (lun3, lun4) = (env.add_lun(3, 8), env.add_lun(4, 16));
    env.run(&["restore", &set_a, "--target", &lun3.url]).ok();
    env.run(&["restore", &set_b, "--target", &lun4.url]).ok();
    assert!(
        env.contents(&lun3, 8 * MIB) == src_a,
        "restore of A differs"
    );
    assert!(
        env.contents(&lun4, 16 * MIB) == src_b,
        "restore of B differs"
    );

    rebuild_matches_the_live_catalog(&env, &tape);
    bad_input_is_refused(&env, &set_b, &lun3);
}

/// Bad input, each a clear error: a target too small for set `set_b`
/// (16 MiB) in `lun3` (8 MiB), an unknown set, a disk as tape and a tape
/// as source.
fn bad_input_is_refused(env: &TapeEnv, set_b: &str, lun3: &Lun) {
    let (d1, d2, tape) = (env.disk(1), env.disk(2), env.tape());
    let small = env.run(&["restore", set_b, "--target", &lun3.url]);
    assert_eq!(small.code, 45, "{}", small.stderr);
    assert!(
        small.stderr.contains("the set needs 32768"),
        "{}",
        small.stderr
    );
    let unknown = env.run(&["restore", "ffff0000", "--target", &lun3.url]);
    assert_eq!(unknown.code, 46, "{}", unknown.stderr);
    let disk_as_tape = env.run(&["backup", "--source", &d1.url, "--tape", &d2.url]);
    assert_eq!(disk_as_tape.code, 43, "{}", disk_as_tape.stderr);
    assert!(disk_as_tape.stderr.contains("not a tape device"));
    let tape_as_source = env.run(&["backup", "--source", &tape, "--tape", &tape]);
    assert_eq!(tape_as_source.code, 43, "{}", tape_as_source.stderr);
    assert!(tape_as_source.stderr.contains("not a disk device"));
}

/// A catalog rebuilt from the tape alone has the live catalog's sets,
/// block addresses included.
fn rebuild_matches_the_live_catalog(env: &TapeEnv, tape: &str) {
    let live = env.run(&["--json", "catalog", "list"]).ok().json();
    let fresh = env.dir().join("rebuilt.db");
    let rebuilt = env
        .run_with(&fresh, &["--json", "catalog", "rebuild", "--tape", tape])
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
            "tape_block",
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
}

/// One flipped byte in record 3 of a set: verify and restore fail naming
/// the record; the other set still restores.
pub fn a_corrupt_record_fails_verify_and_restore_and_the_other_set_restores(mut env: TapeEnv) {
    let (d1, d2) = (env.disk(1), env.disk(2));
    env.fill(&d1, 8 * MIB, 1);
    let src_b = env.fill(&d2, 16 * MIB, 2);
    env.run(&["tape", &env.tape(), "label", "VOL001"]).ok();
    let set_a = id(&env.backup(&d1, &["--blocks", "16384"]));
    let set_b = id(&env.backup(&d2, &[]));

    env.damage(&record_start(&set_a, 3), 0, 48 + 1000);
    // A restarted tgt rig listens elsewhere.
    let (tape, d2) = (env.tape(), env.disk(2));
    let bad = env.run(&["verify", &set_a, "--tape", &tape]);
    assert_eq!(bad.code, 37, "{}", bad.stderr);
    assert!(bad.stderr.contains("record 3"), "{}", bad.stderr);
    let r = env.run(&["restore", &set_a, "--target", &d2.url, "--tape", &tape]);
    assert_eq!(r.code, 37, "{}", r.stderr);
    assert!(r.stderr.contains("record 3"), "{}", r.stderr);
    assert!(!r.stdout.contains("restore complete"));

    // The other set still restores (onto its own source LU, emptied
    // first: that takes --force).
    env.write(&d2, &vec![0u8; 16 * MIB]);
    let args = ["restore", &set_b, "--target", &d2.url, "--tape", &tape];
    env.run(&[&args[..], &["--force"]].concat()).ok();
    assert!(env.contents(&d2, 16 * MIB) == src_b, "restore of B differs");
}

/// The tape's target killed mid-backup: the set is failed, the earlier
/// set restores after a restart, the next backup appends after it.
pub fn a_target_killed_mid_backup_leaves_a_failed_set_and_the_earlier_set_restores(
    mut env: TapeEnv,
) {
    let d2 = env.disk(2);
    let src = env.fill(&d2, 16 * MIB, 3);
    env.run(&["tape", &env.tape(), "label", "VOL002"]).ok();
    let first_id = id(&env.backup(&d2, &[]));

    // A big source, backed up in small records so the kill lands mid-set.
    let big = env.add_lun(5, 256);
    env.fill(&big, 256 * MIB, 4);
    let before = env.image_len();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .arg("--catalog")
        .arg(&env.catalog)
        .args(["backup", "--source", &big.url, "--tape", &env.tape()])
        .args(["--block-size", "32768", "--queue-depth", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while env.image_len() < before + 8 * MIB as u64 {
        assert!(t0.elapsed().as_secs() < 60, "the backup never got going");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    env.kill_tape_target();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "backup survived a dead target");
    assert!(
        ["session lost", "cannot connect", "Connection"]
            .iter()
            .any(|t| stderr.contains(t)),
        "{stderr}"
    );
    assert!(
        env.image_len() < before + 200 * MIB as u64,
        "the kill came too late to be mid-backup"
    );
    let sets = env.run(&["--json", "catalog", "list"]).ok().json();
    assert_eq!(states(&sets), ["complete", "failed"], "{sets}");

    // After the target comes back, the earlier set restores intact.
    env.restart_tape_target();
    // A restarted tgt rig listens elsewhere.
    let (tape, d2) = (env.tape(), env.disk(2));
    let lun6 = env.add_lun(6, 16);
    env.run(&["restore", &first_id, "--target", &lun6.url, "--tape", &tape])
        .ok();
    assert!(env.contents(&lun6, 16 * MIB) == src, "restore differs");

    // A new backup closes the interrupted file and goes after it; the
    // rebuilt catalog lists the interrupted set as failed.
    let next = env.backup(&d2, &[]);
    assert_eq!(next["tape_file"], 3, "{next}");
    let fresh = env.dir().join("rebuilt.db");
    let rebuilt = env
        .run_with(&fresh, &["--json", "catalog", "rebuild", "--tape", &tape])
        .ok()
        .json();
    let want = ["complete", "failed", "complete"];
    assert_eq!(states(&rebuilt["sets"]), want, "{rebuilt}");
}

/// The state of each set of a `--json` set list.
fn states(sets: &serde_json::Value) -> Vec<String> {
    let list = sets.as_array().expect("a list of sets");
    list.iter()
        .map(|s| s["state"].as_str().unwrap().to_string())
        .collect()
}

/// Another program's label is refused unless forced.
pub fn foreign_label_is_refused_unless_forced(env: TapeEnv) {
    let tape = env.tape();
    let d2 = env.disk(2);
    let junk = env.dir().join("junk.bin");
    let label = b"VOL1ABC123 not ours: some other program's label";
    std::fs::write(&junk, label).unwrap();
    env.run(&["tape", &tape, "rewind"]).ok();
    // WRITE(6), variable: the length in bytes 2..5.
    let cdb = format!("0a 00 00 00 {:02x} 00", label.len());
    env.run(&["raw", &tape, &cdb, "--send", junk.to_str().unwrap()])
        .ok();
    env.run(&["tape", &tape, "weof"]).ok();
    let b = env.run(&["backup", "--source", &d2.url, "--tape", &tape]);
    assert_eq!(b.code, 45, "{}", b.stderr);
    assert!(b.stderr.contains("foreign"), "{}", b.stderr);
    let l = env.run(&["tape", &tape, "label", "MINE"]);
    assert_eq!(l.code, 45, "{}", l.stderr);
    env.run(&["tape", &tape, "label", "MINE", "--force"]).ok();
    let ok = env.backup(&d2, &["--blocks", "2048"]);
    assert_eq!(ok["tape_file"], 1, "{ok}");
}

/// mt's verbs and aliases, and what a tape that starts with a filemark
/// is called.
pub fn tape_like_mt_and_label_states(env: TapeEnv) {
    let tape = env.tape();
    let d2 = env.disk(2);
    env.run(&["tape", &tape, "rewind"]).ok();
    env.run(&["tape", &tape, "weof"]).ok();
    let b = env.run(&["backup", "--source", &d2.url, "--tape", &tape]);
    assert_eq!(b.code, 45, "{}", b.stderr);
    assert!(b.stderr.contains("starts with a filemark"), "{}", b.stderr);
    assert!(!b.stderr.contains("()"), "{}", b.stderr);
    env.run(&["tape", &tape, "label", "MT01", "--force"]).ok();
    env.run(&["tape", &tape, "rewind"]).ok();
    // mt's defaults and aliases: fsf without a count is fsf 1; eom.
    let fsf = env.run(&["--json", "tape", &tape, "fsf"]).ok().json();
    assert_eq!(fsf["count"], 1, "{fsf}");
    // eom is eod, and $TAPE names the drive.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .arg("--catalog")
        .arg(&env.catalog)
        .args(["--json", "tape", "eom"])
        .env("TAPE", &tape)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let eom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eom["op"], "eod", "{eom}");
    // status and tell show the same READ POSITION; away from BOT, status
    // names the volume from the catalog.
    let st = env.run(&["--json", "tape", &tape, "status"]).ok().json();
    let tell = env.run(&["--json", "tape", &tape, "tell"]).ok().json();
    assert_eq!(st["device_position"], tell["device"], "{st}\n{tell}");
    assert_eq!(st["volume_from"], "catalog", "{st}");
    assert!(st["volume"].as_str().unwrap().starts_with("MT01 "), "{st}");
    // A second volume may not take a name the catalog already has.
    env.run(&["tape", &tape, "label", "MT01", "--force"]).ok();
    let dup = env.run(&["tape", &tape, "label", "MT01"]);
    assert_eq!(dup.code, 45, "{}", dup.stderr);
    assert!(
        dup.stderr.contains("already has a volume named MT01"),
        "{}",
        dup.stderr
    );
}

/// Flip one byte of a LUN at `offset`, over iSCSI.
fn flip_byte(env: &TapeEnv, lun: &Lun, offset: usize) {
    let mut data = env.contents(lun, (offset / MIB + 1) * MIB);
    data[offset] ^= 0x01;
    env.write(lun, &data);
}

/// verify --compare-target proves a restored copy against the set alone.
pub fn verify_compare_target_proves_a_restore_without_the_original(env: TapeEnv) {
    let d1 = env.disk(1);
    env.fill(&d1, 8 * MIB, 21);
    env.run(&["tape", &env.tape(), "label", "CMP001"]).ok();
    // A partial range: LBA 1000, 2048 blocks (1 MiB).
    let set = env.backup(&d1, &["--lba", "1000", "--blocks", "2048"]);
    let id = id(&set);
    let (lun3, lun4) = (env.add_lun(3, 4), env.add_lun(4, 4));
    env.run(&["restore", &id, "--target", &lun3.url]).ok();
    env.run(&["restore", &id, "--target", &lun4.url, "--lba", "0"])
        .ok();
    // The original is gone: the source now holds other data.
    env.fill(&d1, 8 * MIB, 22);
    let src = env.run(&["verify", &id, "--compare-source"]);
    assert_eq!(src.code, 37, "the source changed: {}", src.stderr);

    let v = env
        .run(&["--json", "verify", &id, "--compare-target", &lun3.url])
        .ok()
        .json();
    assert_eq!(v["compared_with_target"], MIB as u64, "{v}");
    assert_eq!(v["compared_with_source"], serde_json::Value::Null, "{v}");
    let text = env
        .run(&["verify", &id, "--compare-target", &lun4.url, "--lba", "0"])
        .ok();
    assert!(
        text.stdout.contains("1048576 bytes identical to") && text.stdout.contains("from LBA 0"),
        "{}",
        text.stdout
    );
    let wrong = env.run(&["verify", &id, "--compare-target", &lun4.url]);
    assert_eq!(wrong.code, 37, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("differs from the target"));
    assert!(wrong.stderr.contains("(LBA 1000)"), "{}", wrong.stderr);

    // One flipped bit in the restored copy, LBA 1500 byte 7: found there.
    flip_byte(&env, &lun3, 1500 * 512 + 7);
    let bad = env.run(&["verify", &id, "--compare-target", &lun3.url]);
    assert_eq!(bad.code, 37, "{}", bad.stderr);
    let at = format!("at byte {} (LBA 1500)", 500 * 512 + 7);
    assert!(bad.stderr.contains(&at), "{}", bad.stderr);
    let small = env.run(&[
        "verify",
        &id,
        "--compare-target",
        &lun4.url,
        "--lba",
        "7000",
    ]);
    assert_eq!(small.code, 45, "{}", small.stderr);
    assert!(
        small.stderr.contains("the set needs 2048 from LBA 7000"),
        "{}",
        small.stderr
    );
    assert_eq!(env.run(&["verify", &id, "--lba", "0"]).code, 1);
}

/// --block-size against what READ BLOCK LIMITS says, whatever the drive.
pub fn block_sizes_are_checked_against_the_drive(env: TapeEnv) {
    let tape = env.tape();
    let d2 = env.disk(2);
    env.run(&["tape", &tape, "label", "BLK001"]).ok();
    let limits = env.run(&["--json", "tape", &tape, "limits"]).ok().json();
    let max = limits["max_block_length"].as_u64().unwrap();
    // sanmover's own largest record is 2 MiB: a drive that takes more is
    // limited by that instead (its message is tested elsewhere).
    if max < 2 * MIB as u64 {
        let too_big = (2 * max).to_string();
        let args = ["backup", "--source", &d2.url, "--tape", &tape];
        let big = env.run(&[&args[..], &["--block-size", &too_big]].concat());
        assert_eq!(big.code, 45, "{}", big.stderr);
        assert!(
            big.stderr
                .contains("is larger than the drive takes: READ BLOCK LIMITS allows at most"),
            "{}",
            big.stderr
        );
        let sets = env.run(&["--json", "catalog", "list"]).ok().json();
        assert_eq!(sets.as_array().unwrap().len(), 0, "nothing written: {sets}");
    }
    // 1 MiB records: 5 of them for 4 MiB of 512-byte blocks.
    let one = env.backup(&d2, &["--block-size", "1M", "--blocks", "8192"]);
    assert_eq!(one["records"], 5, "{one}");
    assert_eq!(one["tape_file"], 1, "{one}");
    let run = |bs: &str| {
        let args = ["backup", "--source", &d2.url, "--tape", &tape];
        env.run(&[&args[..], &["--block-size", bs, "--blocks", "512"]].concat())
            .ok()
    };
    let small = run("32K");
    assert!(small.stderr.contains("--block-size 32 KiB is below 64 KiB"));
    assert!(small.stderr.contains("MB/s"), "{}", small.stderr);
    let odd = run("100000");
    assert!(
        odd.stderr.contains("not a multiple of the source's 512-byte blocks: each tape block carries 99840 bytes of data (195 blocks) in 99888 bytes"),
        "{}",
        odd.stderr
    );
    let quiet = run("256KiB");
    assert!(!quiet.stderr.contains("--block-size"), "{}", quiet.stderr);
    let sets = env.run(&["--json", "catalog", "list"]).ok().json();
    for s in sets.as_array().unwrap() {
        env.run(&["verify", s["id"].as_str().unwrap()]).ok();
    }
}

/// The 3rd set of a tape restored: where the drive's positions are
/// trusted (ours), by LOCATE to the block address the catalog recorded at
/// backup; on tgt (READ POSITION always 0) by REWIND + SPACE as before.
/// Seen in the CDB trace of the restore; the data is byte-identical.
pub fn the_third_set_restores_by_locate_where_positions_are_trusted(env: TapeEnv) {
    let tape = env.tape();
    let (d1, d2) = (env.disk(1), env.disk(2));
    env.run(&["tape", &tape, "label", "LOC001"]).ok();
    env.fill(&d1, 2 * MIB, 31);
    env.fill(&d2, 2 * MIB, 32);
    for d in [&d1, &d2] {
        env.backup(d, &["--blocks", "4096"]);
    }
    let src = env.fill(&d1, 2 * MIB, 33);
    let third = env.backup(&d1, &["--blocks", "4096", "--block-size", "128K"]);
    assert_eq!(third["tape_file"], 3, "{third}");
    let row = env
        .run(&["--json", "catalog", "show", &id(&third)])
        .ok()
        .json();
    let locate = env.drive != Drive::Tgt;
    assert_eq!(row["tape_block"].is_u64(), locate, "{row}");

    let dst = env.add_lun(7, 2);
    let trace = env.dir().join("restore.trace");
    let t = trace.to_str().unwrap();
    env.run(&["--trace", t, "restore", &id(&third), "--target", &dst.url])
        .ok();
    assert!(env.contents(&dst, 2 * MIB) == src, "the restore differs");
    let ops = tape_opcodes(&trace, &tape);
    let (has_locate, has_space) = (ops.contains(&0x2b), ops.contains(&0x11));
    assert_eq!((has_locate, has_space), (locate, !locate), "{ops:02x?}");
    if locate {
        // LOCATE went to the recorded address: the next READ(6) found the
        // set header there.
        let want = row["tape_block"].as_u64().unwrap();
        let text = std::fs::read_to_string(&trace).unwrap();
        assert!(
            text.contains(&format!("\"cdb\":\"2b0000{want:08x}000000\"")),
            "no LOCATE(10) to block {want} in the trace"
        );
    }
    // verify goes the same way.
    let vtrace = env.dir().join("verify.trace");
    let vt = vtrace.to_str().unwrap();
    env.run(&["--trace", vt, "verify", &id(&third)]).ok();
    let ops = tape_opcodes(&vtrace, &tape);
    assert_eq!(ops.contains(&0x2b), locate, "{ops:02x?}");
}

/// The opcodes of the commands a trace sent to `tape`, in order.
fn tape_opcodes(trace: &std::path::Path, tape: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(trace).unwrap();
    text.lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["nexus"]["target"] == tape)
        .map(|v| u8::from_str_radix(&v["cdb"].as_str().unwrap()[..2], 16).unwrap())
        .collect()
}
/// list, show, expire and forget work on the catalog alone.
pub fn catalog_lists_shows_expires_and_forgets_without_touching_the_tape(env: TapeEnv) {
    let d2 = env.disk(2);
    let tape = env.tape();
    env.run(&["tape", &tape, "label", "CAT001"]).ok();
    let a = env.backup(&d2, &["--blocks", "2048", "--label", "first"]);
    let b = env.backup(&d2, &["--blocks", "1024", "--label", "second"]);
    let (ida, idb) = (a["set_id"].as_str().unwrap(), b["set_id"].as_str().unwrap());
    let list_json_before = env.run(&["--json", "catalog", "list"]).ok().json();

    list_and_show(&env, ida, &list_json_before);

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

/// list: text, at most 100 columns, a date, a label and a short source;
/// show: text with ISO 8601 dates, and `--json` is the list's row.
fn list_and_show(env: &TapeEnv, ida: &str, list_json_before: &serde_json::Value) {
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

    let show = env.run(&["catalog", "show", &ida[..8]]).ok().stdout;
    assert!(show.starts_with(&format!("set {ida}\n")), "{show}");
    assert!(show.contains("label        first"), "{show}");
    assert!(
        show.contains(&format!("started      {}", &date[..16])),
        "{show}"
    );
    let shown = env.run(&["--json", "catalog", "show", ida]).ok().json();
    assert_eq!(shown, list_json_before[0], "show --json is the list's row");
}
