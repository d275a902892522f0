//! `sanmover validate` against Linux LIO in QEMU (test-rig/lio): a disk LU
//! with its copy manager, verdicts equal to the committed ones, and the
//! serial/NAA collision LIO makes of serials that differ only at their end
//! found by `disk.vpd.designator-unique`.

mod common;
use std::collections::BTreeMap;

use common::{lio, lio_add_lun, lio_ctl, sanmover};

type Verdicts = BTreeMap<String, BTreeMap<String, String>>;

fn validate(args: &[&str]) -> common::Run {
    let mut all = vec![
        "--initiator",
        lio().get("SANMOVER_LIO_INITIATOR"),
        "--json",
        "validate",
    ];
    all.extend_from_slice(args);
    sanmover(all)
}

#[test]
fn lio_disk_and_copy_manager_verdicts_are_the_committed_ones() {
    let url = lio_add_lun("valdisk", 16, &[lio().get("SANMOVER_LIO_INITIATOR")]);
    let run = validate(&["--dataloss", &url]);
    assert_eq!(run.code, 38, "{}{}", run.stdout, run.stderr);
    let rep = run.json();
    let got: Verdicts = [(
        "lio".to_string(),
        rep["devices"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    c["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    )]
    .into();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/expected/validate-lio.json"
    );
    let want: Verdicts = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(got, want, "a verdict changed: {rep:#}");
    assert_eq!(
        rep["devices"][0]["suites"],
        serde_json::json!(["disk", "copy", "iscsi"])
    );
}

/// Add LU `name` with this unit serial (the rig's own lun.sh derives one).
fn lun_with_serial(name: &str, serial: &str) -> String {
    let ini = lio().get("SANMOVER_LIO_INITIATOR");
    let _ = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/test-rig/lio/lun.sh"))
        .args(["del", name])
        .env("SANMOVER_LIO_STATE", lio().get("SANMOVER_LIO_STATE_DIR"))
        .output();
    let out = lio_ctl(&format!("rig lun-add {name} 2 {serial} {ini}"));
    let lun = out.trim().lines().last().unwrap().to_string();
    format!(
        "iscsi://{}/{}/{lun}",
        lio().get("SANMOVER_LIO_PORTAL"),
        lio().get("SANMOVER_LIO_IQN")
    )
}

#[test]
fn serials_that_differ_only_at_the_end_collide_and_are_found() {
    let a = lun_with_serial("colla", "5a4e0000-0000-4000-8000-000000000001");
    let b = lun_with_serial("collb", "5a4e0000-0000-4000-8000-000000000002");
    let run = validate(&["--suite", "disk", &a]);
    let rep = run.json();
    let c = rep["devices"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "disk.vpd.designator-unique")
        .unwrap()
        .clone();
    assert_eq!(c["verdict"], "fail", "{rep:#}");
    assert!(
        c["observed"]
            .as_str()
            .unwrap()
            .contains(&format!("also names {b}")),
        "{c}"
    );
    assert_eq!(run.code, 38);
}
