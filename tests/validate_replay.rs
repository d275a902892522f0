//! `replay` of a host backup's trace (a private tgt rig): the label and
//! backup traces replayed to a fresh tape and a fresh LUN holding the same
//! data reproduce the same set, which `catalog rebuild` finds and which
//! restores byte for byte.

mod common;
use std::path::Path;
use std::process::Command;

use common::{fill_random, sm, PrivateRig};

const MB: u32 = 4;

fn reset_tape(rig: &PrivateRig) {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("test-rig/tgt/reset-tape.sh"))
        .env("SANMOVER_RIG_STATE", rig.state.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The nexus targets of a trace, in order of first appearance.
fn targets(trace: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(trace).unwrap();
    let mut out: Vec<String> = Vec::new();
    for l in text.lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = v["nexus"]["target"].as_str().unwrap().to_string();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

#[test]
fn a_replayed_host_backup_restores_byte_for_byte() {
    let rig = PrivateRig::start_with(&[("SANMOVER_RIG_TAPE_MB", "64")]);
    let tape = rig.get("SANMOVER_RIG_TAPE").to_string();
    let (src, src_file) = rig.add_lun(3, MB);
    fill_random(&src_file, (MB << 20) as usize, 15);
    let dir = tempfile::tempdir().unwrap();
    let (c1, t1, t2) = (
        dir.path().join("c1.db"),
        dir.path().join("label.trace"),
        dir.path().join("backup.trace"),
    );
    sm(
        &c1,
        &[
            "--trace",
            t1.to_str().unwrap(),
            "tape",
            &tape,
            "label",
            "REPLAY1",
        ],
    )
    .ok();
    sm(
        &c1,
        &[
            "--trace",
            t2.to_str().unwrap(),
            "backup",
            "--mode",
            "host",
            "--source",
            &src,
            "--tape",
            &tape,
        ],
    )
    .ok();

    // A fresh tape and a fresh LUN with the same data.
    reset_tape(&rig);
    let (fresh, fresh_file) = rig.add_lun(4, MB);
    std::fs::write(&fresh_file, std::fs::read(&src_file).unwrap()).unwrap();
    let r1 = sm(&c1, &["--json", "replay", t1.to_str().unwrap(), &tape]);
    assert_eq!(r1.code, 0, "{}{}", r1.stdout, r1.stderr);
    let devs: Vec<String> = targets(&t2)
        .iter()
        .map(|t| {
            if *t == src {
                fresh.clone()
            } else {
                tape.clone()
            }
        })
        .collect();
    assert_eq!(devs.len(), 2, "disk and tape nexuses: {devs:?}");
    // Status, sense and lengths: the data-in bytes of INQUIRY and VPD
    // differ (another LU's identity), so no --compare-data.
    let mut args = vec!["--json", "replay", t2.to_str().unwrap()];
    args.extend(devs.iter().map(|s| s.as_str()));
    let r2 = sm(&c1, &args);
    assert_eq!(r2.code, 0, "{}{}", r2.stdout, r2.stderr);
    let r2 = r2.json();
    assert!(r2["commands"].as_u64().unwrap() > 10, "{r2}");

    // The replayed tape holds the set: found by a rebuild, restored, equal.
    let c2 = dir.path().join("c2.db");
    sm(&c2, &["catalog", "rebuild", "--tape", &tape]).ok();
    let list = sm(&c2, &["--json", "catalog", "list"]).ok().json();
    let set = list[0]["id"].as_str().unwrap().to_string();
    let (target, target_file) = rig.add_lun(5, MB);
    sm(
        &c2,
        &["restore", &set, "--target", &target, "--tape", &tape],
    )
    .ok();
    let a = std::fs::read(&src_file).unwrap();
    let b = std::fs::read(&target_file).unwrap();
    assert!(
        a == b[..a.len()],
        "the restored LUN differs from the source"
    );
}
