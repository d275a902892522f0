//! Disk-to-disk EXTENDED COPY against Linux LIO in QEMU (test-rig/lio):
//! several commands because LIO takes one segment each, the host-copy
//! fallback, and LIO refusing a LUN outside the sender's ACL.

mod common;
use common::{lio, lio_add_lun, lio_ctl, sanmover};

fn run(initiator: &str, args: &[&str]) -> common::Run {
    let mut all = vec!["--initiator", initiator];
    all.extend_from_slice(args);
    sanmover(all)
}

/// Both LUN files in the guest are equal over `mb` MiB (compared by the
/// guest itself, not through the initiator).
fn guest_equal(a: &str, b: &str, mb: u32) -> bool {
    let out = lio_ctl(&format!(
        "cmp -n {} /luns/{a}.img /luns/{b}.img && echo SAME || echo DIFFERENT",
        mb as u64 * 1048576
    ));
    out.contains("SAME")
}

#[test]
fn lio_ecopy_fallbacks_and_acl_refusal() {
    let r = lio();
    let backup = r.get("SANMOVER_LIO_INITIATOR");
    let other = r.get("SANMOVER_LIO_OTHER_INITIATOR");
    let lun0 = r.get("SANMOVER_LIO_LUN0");
    let lun1 = r.get("SANMOVER_LIO_LUN1");
    let lun2 = r.get("SANMOVER_LIO_LUN2");
    lio_ctl("dd if=/dev/urandom of=/luns/lun0.img bs=1M count=64 conv=notrunc 2>/dev/null; sync");
    let dst = lio_add_lun("xdst", 64, &[backup]);

    // Discovery through the forwarded port: LIO names its guest address,
    // the portal given is what works.
    let portal = format!("iscsi://{}", r.get("SANMOVER_LIO_PORTAL"));
    let luns = run(backup, &["--json", "luns", &portal]).ok().json();
    let t = &luns.as_array().unwrap()[0];
    assert_eq!(t["portal"], r.get("SANMOVER_LIO_PORTAL"), "{luns}");
    assert!(t["luns"].as_array().unwrap().len() >= 3, "{luns}");

    // The copy manager's own limits: LIO allows 1 segment per command.
    let op = run(backup, &["--json", "copy-results", "--op-params", lun0])
        .ok()
        .json();
    assert_eq!(op["max_segment_count"], 1, "{op}");

    // 64 MiB by E-copy: several commands, no data through the initiator.
    let plan = run(
        backup,
        &[
            "--json",
            "xcopy",
            "--copy-manager",
            lun0,
            "--src",
            lun0,
            "--dst",
            &dst,
            "--dry-run",
        ],
    )
    .ok()
    .json();
    assert_eq!(plan["commands"].as_array().unwrap().len(), 3, "{plan}");
    let rep = run(
        backup,
        &[
            "--json",
            "xcopy",
            "--copy-manager",
            lun0,
            "--src",
            lun0,
            "--dst",
            &dst,
            "--verify",
            "full",
        ],
    )
    .ok()
    .json();
    assert_eq!(rep["xcopy_commands"], 3, "{rep}");
    assert_eq!(rep["host_commands"], 0, "{rep}");
    assert_eq!(rep["bytes"], 64u64 << 20);
    assert_eq!(rep["data_bytes_through_initiator"], 0, "{rep}");
    assert!(
        rep["bytes_through_initiator"].as_u64().unwrap() < 4096,
        "{rep}"
    );
    assert_eq!(rep["verified_bytes"], 64u64 << 20);
    assert!(guest_equal("lun0", "xdst", 64));

    // The same with --fallback always: the host moves it, 2x the data.
    lio_ctl("dd if=/dev/zero of=/luns/xdst.img bs=1M count=64 conv=notrunc 2>/dev/null; sync");
    let host = run(
        backup,
        &[
            "--json",
            "xcopy",
            "--copy-manager",
            lun0,
            "--src",
            lun0,
            "--dst",
            &dst,
            "--fallback",
            "always",
        ],
    )
    .ok()
    .json();
    assert_eq!(host["xcopy_commands"], 0, "{host}");
    assert_eq!(
        host["data_bytes_through_initiator"],
        2 * (64u64 << 20),
        "{host}"
    );
    assert!(guest_equal("lun0", "xdst", 64));

    // The copy manager session (the other host) has only LUN 1 in its
    // ACL: LIO refuses a copy to LUN 2 with COPY ABORTED 0D/02.
    let never = run(
        backup,
        &[
            "xcopy",
            "--copy-manager",
            lun1,
            "--copy-manager-initiator",
            other,
            "--src",
            lun2,
            "--dst",
            lun1,
            "--blocks",
            "32768",
            "--fallback",
            "never",
        ],
    );
    assert_eq!(never.code, 10, "{}", never.stderr);
    assert!(never.stderr.contains("COPY ABORTED"), "{}", never.stderr);
    let prefer = run(
        backup,
        &[
            "--json",
            "xcopy",
            "--copy-manager",
            lun1,
            "--copy-manager-initiator",
            other,
            "--src",
            lun2,
            "--dst",
            lun1,
            "--blocks",
            "32768",
        ],
    )
    .ok();
    let v = prefer.json();
    assert_eq!(v["host_commands"], 1, "{v}");
    assert!(
        v["fallbacks"][0]
            .as_str()
            .unwrap()
            .contains("copied through the host"),
        "{v}"
    );
    assert!(prefer.stderr.contains("refused"), "{}", prefer.stderr);
    assert!(guest_equal("lun2", "lun1", 16));
    assert!(
        never.stderr.contains("aborted the copy at"),
        "{}",
        never.stderr
    );

    // RECEIVE COPY RESULTS beyond operating parameters: LIO refuses,
    // decoded.
    let st = run(backup, &["copy-results", "--status", "0", lun0]);
    assert_eq!(st.code, 5, "{}", st.stderr);
    assert!(st.stderr.contains("INVALID FIELD IN CDB"), "{}", st.stderr);

    // A hand-made parameter list: decoded first, refused when malformed,
    // sent as is with --raw (and then refused by LIO, decoded).
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(
        &junk,
        [0u8, 0x30, 0, 32, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 0],
    )
    .unwrap();
    let j = junk.to_str().unwrap();
    let refused = run(backup, &["xcopy", "--copy-manager", lun0, "--params", j]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("not a valid EXTENDED COPY parameter list"),
        "{}",
        refused.stderr
    );
    let raw = run(
        backup,
        &["xcopy", "--copy-manager", lun0, "--params", j, "--raw"],
    );
    assert_ne!(raw.code, 0, "{}", raw.stdout);
    assert!(raw.stderr.contains("EXTENDED COPY ["), "{}", raw.stderr);
}
