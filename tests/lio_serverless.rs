//! Snapshot providers against Linux LIO in QEMU (test-rig/lio): the `lio`
//! provider (reflink snapshot inside the guest, mapped in the backup
//! server's ACL only, write-protected) and `xcopy-image` (EXTENDED COPY
//! into a spare LUN done by LIO). Provider-level checks, then serverless
//! backups through the CLI with the tape on a private tgt rig, restored
//! and compared byte for byte.

mod common;
use common::{lio, lio_ctl};

use std::collections::BTreeMap;
use std::process::Command;

use sanmover::device::Disk;
use sanmover::scsi::{BlockSize, Lba};
use sanmover::snapshot::{provider_from_spec, Snapshot, SnapshotJob};
use sanmover::transport::iscsi::IscsiTransport;
use sanmover::transport::url::IscsiUrl;

const MIB: usize = 1 << 20;
/// A name with no ACL on the rig: its login must be refused.
const STRANGER: &str = "iqn.2026-11.org.sanmover:stranger";

fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lio_env_path() -> String {
    std::env::var("SANMOVER_LIO_ENV").unwrap_or_else(|_| {
        repo_root()
            .join("test-rig/run/lio/rig.env")
            .display()
            .to_string()
    })
}

/// A LUN of the LIO rig made by this test (lun.sh), removed when dropped.
struct GuestLun {
    name: String,
    url: String,
}

impl GuestLun {
    /// `mb` MiB, on the guest's XFS (`snapfs`, reflink-capable) or tmpfs,
    /// mapped for the backup server only.
    fn add(name: &str, mb: u32, snapfs: bool) -> GuestLun {
        let state = lio().get("SANMOVER_LIO_STATE_DIR").to_string();
        let lun_sh = repo_root().join("test-rig/lio/lun.sh");
        let _ = Command::new("bash")
            .arg(&lun_sh)
            .args(["del", name])
            .env("SANMOVER_LIO_STATE", &state)
            .output();
        let out = Command::new("bash")
            .arg(&lun_sh)
            .args([
                "add",
                name,
                &mb.to_string(),
                lio().get("SANMOVER_LIO_INITIATOR"),
            ])
            .env("SANMOVER_LIO_STATE", &state)
            .env(
                "SANMOVER_LIO_LUN_DIR",
                if snapfs { "snap" } else { "tmpfs" },
            )
            .output()
            .expect("run lun.sh");
        assert!(
            out.status.success(),
            "lun.sh add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string();
        GuestLun {
            name: name.to_string(),
            url,
        }
    }

    fn dir(&self) -> &'static str {
        // lun.sh del removes either; the guest knows which exists.
        "/snapfs /luns"
    }

    /// Fill with random bytes inside the guest (the backup server never
    /// writes the production LUN).
    fn fill_random(&self) {
        lio_ctl(&format!(
            "for d in {}; do f=$d/{n}.img; [ -e $f ] || continue; \
             dd if=/dev/urandom of=$f bs=1M count=$(( $(stat -c %s $f) / 1048576 )) conv=notrunc 2>/dev/null; done; sync",
            self.dir(),
            n = self.name
        ));
    }
}

impl Drop for GuestLun {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("test-rig/lio/lun.sh"))
            .args(["del", &self.name])
            .env("SANMOVER_LIO_STATE", lio().get("SANMOVER_LIO_STATE_DIR"))
            .output();
    }
}

/// A disk session to `url` as `initiator` (refused logins are errors).
fn connect(url: &str, initiator: &str) -> Result<Disk<IscsiTransport>, String> {
    Disk::open(common::try_connect(url, initiator)?).map_err(|e| e.to_string())
}

/// The LUN at `url` is no longer the one with designator `was` (refused,
/// or by now another test's LUN: tests of this file run in parallel and
/// LUN numbers are reused).
fn gone(url: &str, was: &str) -> bool {
    match connect(url, lio().get("SANMOVER_LIO_INITIATOR")) {
        Err(_) => true,
        Ok(mut d) => match d.scsi.device_identification() {
            Err(_) => true,
            Ok(di) => di
                .best_lu_designator()
                .is_none_or(|b| hex::encode(&b.value) != was),
        },
    }
}

/// The whole LUN, read by the backup server.
fn read_all(url: &str) -> Vec<u8> {
    let mut d = connect(url, lio().get("SANMOVER_LIO_INITIATOR")).unwrap();
    let cap = d.capacity().unwrap();
    let bs = cap.block_size;
    let per = (MIB / bs.0 as usize) as u64;
    let mut out = Vec::new();
    let mut lba = 0;
    while lba < cap.blocks.0 {
        let n = per.min(cap.blocks.0 - lba);
        out.extend(d.read(Lba(lba), n as u32, bs).unwrap());
        lba += n;
    }
    out
}

/// The backing file of a LUN, read by the guest itself (hex of sha256).
fn guest_sha(name: &str) -> String {
    let out = lio_ctl(&format!(
        "for d in /snapfs /luns; do [ -e $d/{name}.img ] && sha256sum $d/{name}.img; done; true"
    ));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn job(source: &GuestLun, spec_opts: BTreeMap<String, String>) -> SnapshotJob {
    SnapshotJob {
        job_id: uuid::Uuid::new_v4(),
        source_url: source.url.clone(),
        source_designator: Some(designator(&source.url)),
        initiator: lio().get("SANMOVER_LIO_INITIATOR").to_string(),
        options: spec_opts,
    }
}

/// Hex of the best LU designator the LUN shows the backup server.
fn designator(url: &str) -> String {
    let mut d = connect(url, lio().get("SANMOVER_LIO_INITIATOR")).unwrap();
    let di = d.scsi.device_identification().unwrap();
    hex::encode(&di.best_lu_designator().unwrap().value)
}

/// The configfs objects named `name` in the guest (backstores, TPG LUN
/// links, files).
fn guest_traces(name: &str) -> String {
    lio_ctl(&format!(
        "T=/sys/kernel/config/target; ls -d $T/core/*/{name} 2>/dev/null; \
         for l in $T/iscsi/*/tpgt_*/lun/lun_*/*; do [ -L $l ] && case $(readlink $l) in */{name}) echo $l ;; esac; done; \
         ls /snapfs/{name}.img /luns/{name}.img 2>/dev/null; true"
    ))
}

/// The lio provider end to end at the provider level: point in time,
/// masking, write protection, identity, idempotent release.
#[test]
fn lio_provider_point_in_time_masked_read_only() {
    let r = lio();
    let backup = r.get("SANMOVER_LIO_INITIATOR");
    let other = r.get("SANMOVER_LIO_OTHER_INITIATOR");
    let prod = GuestLun::add("snprod", 4, true);
    prod.fill_random();
    let before = read_all(&prod.url);
    assert_eq!(sha(&before), guest_sha("snprod"));

    let spec = format!("lio:runner=rig,rig-env={}", lio_env_path());
    let mut p = provider_from_spec(&spec).unwrap();
    assert_eq!(p.name(), "lio");
    let (_, opts) = sanmover::snapshot::parse_spec(&spec).unwrap();
    let j = job(&prod, opts);
    let snap = p.create(&j).unwrap();
    assert_eq!(snap.info["method"], "reflink");
    // create again: the same snapshot, nothing recopied.
    assert_eq!(p.create(&j).unwrap(), snap);

    // The application keeps writing after the snapshot instant.
    prod.fill_random();
    let after = read_all(&prod.url);
    assert_ne!(sha(&after), sha(&before));

    let m = p.map(&j, &snap).unwrap();
    assert!(m.read_only);
    assert_eq!(p.map(&j, &snap).unwrap(), m, "map is idempotent");
    // Its identity is the one promised, and differs from the source's.
    let got = designator(&m.url);
    assert_eq!(Some(got.clone()), m.designator);
    assert_ne!(got, designator(&prod.url));
    // The snapshot holds the content at the snapshot instant.
    let snap_data = read_all(&m.url);
    assert_eq!(snap_data.len(), 4 * MIB);
    assert!(
        snap_data == before,
        "snapshot differs from the content at the snapshot instant"
    );

    // Write-protected for the backup server.
    let mut d = connect(&m.url, backup).unwrap();
    let w = d.write(Lba(0), BlockSize(512), vec![0u8; 512]);
    let e = w.expect_err("a write to the snapshot must be refused");
    assert!(e.to_string().contains("DATA PROTECT"), "{e}");
    drop(d);

    // Masking: the other host (it has an ACL, not this LUN) cannot use it
    // and does not see it; a name without an ACL cannot even log in.
    let lun = IscsiUrl::parse(&m.url).unwrap().lun;
    match connect(&m.url, other) {
        Ok(_) => panic!("{other} opened the snapshot LUN"),
        Err(e) => assert!(!e.is_empty()),
    }
    let other_lun1 = connect(r.get("SANMOVER_LIO_LUN1"), other).unwrap();
    let mut s = other_lun1.scsi;
    let seen = s.report_luns().unwrap();
    assert!(
        !seen.luns.iter().any(|l| l.index() == Some(lun)),
        "{other} sees LUN {lun}: {:?}",
        seen.luns
    );
    let stranger = connect(&m.url, STRANGER);
    assert!(stranger.is_err(), "{STRANGER} logged in");

    // Release: idempotent, and nothing left in the guest.
    p.unmap(&j, &snap).unwrap();
    assert!(gone(&m.url, &got), "still mapped after unmap");
    p.unmap(&j, &snap).unwrap();
    p.delete(&j, &snap).unwrap();
    p.delete(&j, &snap).unwrap();
    assert_eq!(
        guest_traces(&snap.handle).trim(),
        "",
        "leftovers of {}",
        snap.handle
    );
    // The production LUN is untouched by all this.
    assert_eq!(sha(&read_all(&prod.url)), sha(&after));
}

/// method=copy works on tmpfs (no reflink); reflink there is refused and
/// leaves nothing behind.
#[test]
fn lio_provider_full_copy_and_refused_reflink() {
    let prod = GuestLun::add("sncopy", 2, false);
    prod.fill_random();
    let env = lio_env_path();
    let (_, opts) = sanmover::snapshot::parse_spec(&format!("lio:rig-env={env}")).unwrap();
    let j = job(&prod, opts);
    let mut p = provider_from_spec(&format!("lio:rig-env={env}")).unwrap();
    let e = p.create(&j).unwrap_err();
    assert!(e.to_string().contains("create"), "{e}");
    assert!(e.to_string().to_lowercase().contains("clone"), "{e}");
    let handle = sanmover::snapshot::lio::snapshot_name(&j);
    assert_eq!(guest_traces(&handle).trim(), "");

    // The backstore named outright (source=NAME) instead of found through
    // the ACL.
    let mut p =
        provider_from_spec(&format!("lio:rig-env={env},method=copy,source=sncopy")).unwrap();
    let snap: Snapshot = p.create(&j).unwrap();
    assert_eq!(snap.info["method"], "copy");
    let m = p.map(&j, &snap).unwrap();
    assert_eq!(sha(&read_all(&m.url)), guest_sha("sncopy"));
    p.delete(&j, &snap).unwrap();
    assert_eq!(guest_traces(&snap.handle).trim(), "");

    // A designator that is not the source's: refused before anything is made.
    let mut wrong = j.clone();
    wrong.source_designator = Some(designator(lio().get("SANMOVER_LIO_LUN2")));
    let e = p.create(&wrong).unwrap_err();
    assert!(e.to_string().contains("is not the source LUN"), "{e}");
    assert_eq!(guest_traces(&handle).trim(), "");
}

/// xcopy-image at the provider level: LIO copies the source into the
/// spare (no data through the backup server), the spare is masked and
/// write-protected while mapped, writable again after unmap.
#[test]
fn xcopy_image_provider_copy_by_lio() {
    let prod = GuestLun::add("xiprod", 4, false);
    let spare = GuestLun::add("xispare", 4, false);
    prod.fill_random();
    let spec = format!(
        "xcopy-image:spare={},mask=lio,runner=rig,rig-env={}",
        spare.url,
        lio_env_path()
    );
    let (_, opts) = sanmover::snapshot::parse_spec(&spec).unwrap();
    let mut p = provider_from_spec(&spec).unwrap();
    let j = job(&prod, opts);
    let snap = p.create(&j).unwrap();
    assert_eq!(
        snap.info["data_bytes_through_initiator"], 0,
        "{}",
        snap.info
    );
    assert_eq!(snap.info["bytes"], 4 * MIB as u64);
    assert!(snap.info["xcopy_commands"].as_u64().unwrap() >= 1);
    assert_eq!(guest_sha("xispare"), guest_sha("xiprod"));
    let m = p.map(&j, &snap).unwrap();
    assert!(m.read_only);
    assert_eq!(m.url, spare.url);
    assert_eq!(m.designator, Some(designator(&spare.url)));
    let backup = lio().get("SANMOVER_LIO_INITIATOR");
    let mut d = connect(&m.url, backup).unwrap();
    let e = d
        .write(Lba(0), BlockSize(512), vec![0u8; 512])
        .expect_err("the mapped spare is write-protected");
    assert!(e.to_string().contains("DATA PROTECT"), "{e}");
    drop(d);
    assert!(connect(&m.url, lio().get("SANMOVER_LIO_OTHER_INITIATOR")).is_err());
    p.unmap(&j, &snap).unwrap();
    p.delete(&j, &snap).unwrap();
    let mut d = connect(&m.url, backup).unwrap();
    d.write(Lba(0), BlockSize(512), vec![0u8; 512]).unwrap();

    // A spare that another host also sees is refused before any copying.
    let shared = GuestLun::add("xishared", 4, false);
    lio_ctl(&format!(
        "TPG=/sys/kernel/config/target/iscsi/{iqn}/tpgt_1; n={lun}; \
         mkdir $TPG/acls/{other}/lun_$n && ln -s $TPG/lun/lun_$n $TPG/acls/{other}/lun_$n/map",
        iqn = lio().get("SANMOVER_LIO_IQN"),
        lun = IscsiUrl::parse(&shared.url).unwrap().lun,
        other = lio().get("SANMOVER_LIO_OTHER_INITIATOR"),
    ));
    let spec = format!(
        "xcopy-image:spare={},mask=lio,rig-env={}",
        shared.url,
        lio_env_path()
    );
    let mut p = provider_from_spec(&spec).unwrap();
    let e = p.create(&j).unwrap_err();
    assert!(e.to_string().contains("also mapped"), "{e}");
}

/// The tape (on a private tgt rig, or a TCMU tape served by sanmover in
/// the LIO guest), a catalog, and `sanmover` run as the backup server.
struct Backup {
    _rig: Option<common::PrivateRig>,
    _dir: tempfile::TempDir,
    _guest: Option<std::sync::MutexGuard<'static, ()>>,
    catalog: std::path::PathBuf,
    tape: String,
}

impl Backup {
    fn new() -> Backup {
        let rig = common::PrivateRig::start();
        let tape = rig.get("SANMOVER_RIG_TAPE").to_string();
        Backup::with(Some(rig), None, tape)
    }

    /// On the TCMU tape `unit` of the guest's handler (`sanmover tcmu`).
    fn on_tcmu(name: &str, unit: &str) -> Backup {
        let guard = common::tcmu_guest();
        let tape = common::tcmu_tape(name, unit, None);
        Backup::with(None, Some(guard), tape)
    }

    fn with(
        rig: Option<common::PrivateRig>,
        guest: Option<std::sync::MutexGuard<'static, ()>>,
        tape: String,
    ) -> Backup {
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("catalog.db");
        let b = Backup {
            _rig: rig,
            _dir: dir,
            _guest: guest,
            catalog,
            tape,
        };
        b.run(&["tape", &b.tape(), "label", "SNAPLIO", "--force"])
            .ok();
        b
    }

    fn tape(&self) -> String {
        self.tape.clone()
    }

    fn run(&self, args: &[&str]) -> common::Run {
        let mut all = vec!["--initiator", lio().get("SANMOVER_LIO_INITIATOR")];
        all.extend_from_slice(args);
        common::sm(&self.catalog, &all)
    }
}

/// A shell command (for --quiesce/--thaw) that runs `cmd` in the guest.
fn guest_hook(cmd: &str) -> String {
    format!(
        "SANMOVER_LIO_STATE={} bash {} '{}'",
        lio().get("SANMOVER_LIO_STATE_DIR"),
        repo_root().join("test-rig/lio/ctl.sh").display(),
        cmd
    )
}

/// Session statistics of one role in a serverless summary.
fn session<'a>(v: &'a serde_json::Value, role: &str) -> &'a serde_json::Value {
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["role"] == role)
        .unwrap_or_else(|| panic!("no {role} session in {v}"))
}

/// The production session carried no READ or WRITE (only identification
/// and SYNCHRONIZE CACHE), and wrote nothing.
fn no_data_commands(p: &serde_json::Value) {
    const DATA: [&str; 8] = ["08", "28", "a8", "88", "0a", "2a", "aa", "8a"];
    let cmds = p["commands"].as_object().unwrap();
    for op in cmds.keys() {
        assert!(!DATA.contains(&op.to_ascii_lowercase().as_str()), "{p}");
    }
    assert_eq!(p["bytes_out"], 0, "{p}");
}

/// `backup --mode serverless --snapshot lio:…`: the application writes
/// again right after the snapshot (the thaw hook), the masking is checked
/// from a name without an ACL (the other host's name, which has an ACL
/// without this LUN, is checked at the provider level above), and the restore equals the content at the
/// snapshot instant, not the later one.
#[test]
fn lio_serverless_backup_restore() {
    serverless_backup_restore(Backup::new(), "slprod");
}

/// The same with the tape in LIO too: a TCMU tape served by `sanmover
/// tcmu` in the guest.
#[test]
fn lio_serverless_backup_restore_on_a_tcmu_tape() {
    serverless_backup_restore(Backup::on_tcmu("sltape", "drive5"), "slprodt");
}

fn serverless_backup_restore(b: Backup, name: &str) {
    let prod = GuestLun::add(name, 4, true);
    prod.fill_random();
    let at_snapshot = guest_sha(name);
    let spec = format!("lio:runner=rig,rig-env={}", lio_env_path());
    let thaw = guest_hook(&format!(
        "dd if=/dev/urandom of=/snapfs/{name}.img bs=1M count=4 conv=notrunc 2>/dev/null; sync"
    ));
    let tape = b.tape();
    let v = b
        .run(&[
            "--json",
            "backup",
            "--mode",
            "serverless",
            "--source",
            &prod.url,
            "--snapshot",
            &spec,
            "--tape",
            &tape,
            "--thaw",
            &thaw,
            "--maskcheck-initiator",
            STRANGER,
        ])
        .ok()
        .json();
    let later = guest_sha(name);
    assert_ne!(later, at_snapshot, "the thaw hook did not write");
    assert_eq!(v["provider"], "lio", "{v}");
    assert_eq!(v["state"], "RELEASED", "{v}");
    assert!(v["mapped"]["read_only"].as_bool().unwrap(), "{v}");
    assert_eq!(v["masking"]["refused_initiator"], STRANGER, "{v}");
    assert_eq!(v["masking"]["refused_by"], "login", "{v}");
    assert_eq!(v["snapshot_designator"], v["mapped"]["designator"], "{v}");
    assert_ne!(v["snapshot_designator"], v["source_designator"], "{v}");
    // The production LUN was not read by the backup server.
    no_data_commands(session(&v, "production"));
    assert!(session(&v, "snapshot")["bytes_in"].as_u64().unwrap() >= 4 * MIB as u64);
    let handle = v["snapshot"]["handle"].as_str().unwrap().to_string();
    assert_eq!(guest_traces(&handle).trim(), "", "snapshot left behind");
    let set = v["backup"]["set_id"].as_str().unwrap().to_string();

    let list = b.run(&["--json", "snapshots", "list"]).ok().json();
    assert!(list.to_string().contains("RELEASED"), "{list}");

    // Restore to a fresh LUN; byte for byte the snapshot instant.
    let restore_name = format!("{name}r");
    let fresh = GuestLun::add(&restore_name, 4, false);
    b.run(&["restore", &set, "--target", &fresh.url, "--tape", &tape])
        .ok();
    let restored = guest_sha(&restore_name);
    assert_eq!(restored, at_snapshot);
    assert_ne!(restored, later);
}

/// `backup --mode serverless --snapshot xcopy-image:…`: LIO copies the
/// production LUN into a masked spare while the application is quiesced;
/// the report says for how long; the restore equals the source.
#[test]
fn xcopy_image_serverless_backup_restore() {
    let b = Backup::new();
    let prod = GuestLun::add("xsprod", 4, false);
    let spare = GuestLun::add("xsspare", 4, false);
    prod.fill_random();
    let at_copy = guest_sha("xsprod");
    let spec = format!(
        "xcopy-image:spare={},mask=lio,runner=rig,rig-env={}",
        spare.url,
        lio_env_path()
    );
    let tape = b.tape();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let quiesce = format!("echo quiesce >>{}", log.display());
    let thaw = format!(
        "echo thaw >>{}; {}",
        log.display(),
        guest_hook("dd if=/dev/urandom of=/luns/xsprod.img bs=1M count=4 conv=notrunc 2>/dev/null")
    );
    let run = b.run(&[
        "backup",
        "--mode",
        "serverless",
        "--source",
        &prod.url,
        "--snapshot",
        &spec,
        "--tape",
        &tape,
        "--quiesce",
        &quiesce,
        "--thaw",
        &thaw,
    ]);
    let run = run.ok();
    assert!(
        run.stdout.contains("application quiesced"),
        "{}",
        run.stdout
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "quiesce\nthaw\n");
    // The same again as JSON, for the numbers (the spare is reused).
    prod.fill_random();
    let at_copy2 = guest_sha("xsprod");
    assert_ne!(at_copy, at_copy2);
    let v = b
        .run(&[
            "--json",
            "backup",
            "--mode",
            "serverless",
            "--source",
            &prod.url,
            "--snapshot",
            &spec,
            "--tape",
            &tape,
        ])
        .ok()
        .json();
    assert_eq!(v["provider"], "xcopy-image", "{v}");
    assert_eq!(v["state"], "RELEASED", "{v}");
    let info = &v["snapshot"]["info"];
    assert!(info["xcopy_commands"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(info["data_bytes_through_initiator"], 0, "{v}");
    let q = v["quiesce_seconds"].as_f64().unwrap();
    let c = info["copy_seconds"].as_f64().unwrap();
    assert!(q > 0.0 && q >= c, "quiesced {q} s, copy {c} s");
    assert!(v["mapped"]["read_only"].as_bool().unwrap(), "{v}");
    no_data_commands(session(&v, "production"));
    let set = v["backup"]["set_id"].as_str().unwrap().to_string();
    // Released: the spare is writable again for the next copy.
    let mut d = connect(&spare.url, lio().get("SANMOVER_LIO_INITIATOR")).unwrap();
    d.write(Lba(0), BlockSize(512), vec![0u8; 512]).unwrap();
    drop(d);

    let fresh = GuestLun::add("xsrestore", 4, false);
    b.run(&["restore", &set, "--target", &fresh.url, "--tape", &tape])
        .ok();
    assert_eq!(guest_sha("xsrestore"), at_copy2);
}

/// The lio provider through the ssh runner, with a stand-in `ssh` that
/// hands the script (read from its stdin) to the rig's control channel:
/// the ssh plumbing against real configfs, without an sshd.
#[test]
fn lio_provider_through_ssh_runner() {
    let prod = GuestLun::add("ssprod", 2, true);
    prod.fill_random();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("ssh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n# ssh [opts] -- HOST 'sh -s' < script\n\
             while [ \"$1\" != -- ]; do shift; done\n\
             [ \"$2\" = storage.example ] && [ \"$3\" = 'sh -s' ] || {{ echo \"bad argv: $*\" >&2; exit 255; }}\n\
             SANMOVER_LIO_STATE={} exec bash {} \"$(cat)\"\n",
            lio().get("SANMOVER_LIO_STATE_DIR"),
            repo_root().join("test-rig/lio/ctl.sh").display()
        ),
    )
    .unwrap();
    assert!(Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .unwrap()
        .success());
    let spec = format!(
        "lio:runner=ssh,host=storage.example,user=root,ssh={}",
        fake.display()
    );
    let (_, opts) = sanmover::snapshot::parse_spec(&spec).unwrap();
    let j = job(&prod, opts);
    let mut p = provider_from_spec(&spec).unwrap();
    let snap = p.create(&j).unwrap();
    assert_eq!(snap.info["runner"], "ssh root@storage.example");
    let m = p.map(&j, &snap).unwrap();
    assert_eq!(sha(&read_all(&m.url)), guest_sha("ssprod"));
    p.unmap(&j, &snap).unwrap();
    p.delete(&j, &snap).unwrap();
    assert_eq!(guest_traces(&snap.handle).trim(), "");
}

/// A serverless lio backup of a new guest LUN `name`, killed by the test
/// hook at `die_at`; the LUN (kept for cleanup's probe) and the job list.
fn killed_backup(b: &Backup, name: &str, die_at: &str) -> (GuestLun, serde_json::Value) {
    let prod = GuestLun::add(name, 2, true);
    prod.fill_random();
    let spec = format!("lio:rig-env={}", lio_env_path());
    let out = Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .args(["--catalog", b.catalog.to_str().unwrap()])
        .args(["--initiator", lio().get("SANMOVER_LIO_INITIATOR")])
        .args(["backup", "--mode", "serverless", "--source", &prod.url])
        .args(["--snapshot", &spec, "--tape", &b.tape()])
        .env("SANMOVER_TEST_DIE_AFTER_STATE", die_at)
        .env_remove("SANMOVER_INITIATOR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    (prod, b.run(&["--json", "snapshots", "list"]).ok().json())
}

/// A serverless lio backup killed inside create (the backstore and its file
/// exist, the catalog has no snapshot): `snapshots cleanup` finds them by
/// the job's name and removes them.
#[test]
fn lio_killed_inside_create_then_cleanup() {
    let b = Backup::new();
    let (_prod, list) = killed_backup(&b, "scprod", "CREATING");
    let row = &list.as_array().unwrap()[0];
    assert_eq!(row["state"], "PENDING", "{list}");
    assert!(row["snapshot"].is_null(), "{list}");
    let job: sanmover::snapshot::SnapshotJob = serde_json::from_value(row["job"].clone()).unwrap();
    let handle = sanmover::snapshot::lio::snapshot_name(&job);
    assert_ne!(guest_traces(&handle).trim(), "", "create made nothing?");

    let c = b.run(&["--json", "snapshots", "cleanup"]).ok().json();
    assert_eq!(c[0]["ok"], true, "{c}");
    assert!(c[0]["outcome"].as_str().unwrap().contains(&handle), "{c}");
    let list = b.run(&["--json", "snapshots", "list"]).ok().json();
    assert_eq!(list[0]["released"], true, "{list}");
    assert_eq!(guest_traces(&handle).trim(), "", "cleanup left {handle}");
}

/// A serverless lio backup killed right after MAPPED leaves the snapshot
/// mapped; `snapshots cleanup` releases it and nothing stays in the guest.
/// A create that fails (reflink of a LUN on tmpfs) ends FAILED with the
/// reason, and leaves nothing either.
#[test]
fn lio_killed_after_mapped_then_cleanup_and_failed_create() {
    let b = Backup::new();
    let (_prod, list) = killed_backup(&b, "skprod", "MAPPED");
    let spec = format!("lio:rig-env={}", lio_env_path());
    let tape = b.tape();
    let row = &list.as_array().unwrap()[0];
    assert_eq!(row["state"], "MAPPED", "{list}");
    let handle = row["snapshot"]["handle"].as_str().unwrap().to_string();
    let url = row["mapped"]["url"].as_str().unwrap().to_string();
    let naa = row["mapped"]["designator"].as_str().unwrap().to_string();
    assert_ne!(guest_traces(&handle).trim(), "", "the crash left nothing?");
    assert!(connect(&url, lio().get("SANMOVER_LIO_INITIATOR")).is_ok());

    b.run(&["snapshots", "cleanup"]).ok();
    let list = b.run(&["--json", "snapshots", "list"]).ok().json();
    let row = &list.as_array().unwrap()[0];
    assert_eq!(row["released"], true, "{list}");
    assert_eq!(guest_traces(&handle).trim(), "", "cleanup left {handle}");
    assert!(gone(&url, &naa), "still mapped after cleanup");

    let tmpfs = GuestLun::add("skfail", 2, false);
    let r = b.run(&[
        "backup",
        "--mode",
        "serverless",
        "--source",
        &tmpfs.url,
        "--snapshot",
        &spec,
        "--tape",
        &tape,
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("clone"), "{}", r.stderr);
    let list = b.run(&["--json", "snapshots", "list"]).ok().json();
    let failed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["source_url"] == tmpfs.url.as_str())
        .unwrap_or_else(|| panic!("no job for {}: {list}", tmpfs.url));
    assert_eq!(failed["state"], "FAILED", "{list}");
    assert!(
        failed["reason"].as_str().unwrap().contains("clone"),
        "{list}"
    );
    let job_id = failed["id"].as_str().unwrap().replace('-', "");
    assert_eq!(guest_traces(&format!("sm-{}", &job_id[..16])).trim(), "");
}
