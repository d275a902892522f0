//! sanmover's tape units served to Linux LIO through TCMU (`sanmover tcmu`
//! in the QEMU guest of test-rig/lio): LIO exports them over iSCSI with
//! its ACLs and emulates PERSISTENT RESERVE itself, and through tcm_loop to
//! the guest kernel's own st and sg drivers, so clients that are not
//! sanmover (busybox `mt` and `dd` over st) read what sanmover wrote.

mod common;
use common::{
    connect, lio_add_lun, lio_ctl, lio_initiator as initiator, lio_other as other, sm,
    tcmu_guest as guest, tcmu_tape as tcmu_lun,
};

use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use sanmover::device::tape::ReadOutcome;
use sanmover::device::{Disk, PrOut, Scsi, Tape};
use sanmover::scsi::spc::PrType;
use sanmover::scsi::ssc::{Read6, Write6};
use sanmover::scsi::{BlockSize, CdbCodec, Lba, Status};
use sanmover::transport::iscsi::IscsiTransport;
use sanmover::transport::{Request, Transport, TransportError};

/// Label a fresh tape, back up `blocks` 512-byte blocks of a new LIO disk
/// LUN onto it; (catalog dir, set id, source URL).
fn backup_onto(tape: &str, name: &str, blocks: u32) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("c.db");
    let src = lio_add_lun(&format!("{name}src"), 4, &[initiator()]);
    let mut d = Disk::open(connect(&src, initiator())).unwrap();
    let data: Vec<u8> = (0..blocks as usize * 512)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    d.write(Lba(0), BlockSize(512), data).unwrap();
    let i = ["--initiator", initiator()];
    sm(&cat, &[&i[..], &["tape", tape, "label", name]].concat()).ok();
    let blocks = blocks.to_string();
    sm(
        &cat,
        &[
            &i[..],
            &[
                "backup", "--source", &src, "--blocks", &blocks, "--tape", tape,
            ],
        ]
        .concat(),
    )
    .ok();
    let list = sm(&cat, &["--json", "catalog", "list"]).ok().json();
    let set = list[0]["id"].as_str().unwrap().to_string();
    (dir, set, src)
}

#[test]
fn a_tcmu_tape_is_a_tape_with_a_backup_that_restores() {
    let _g = guest();
    let tape = tcmu_lun("tcmutape0", "drive0", None);
    let inq = common::sanmover(["--json", "--initiator", initiator(), "inquiry", &tape]).ok();
    assert_eq!(inq.json()["device_type"], 1, "{}", inq.stdout);
    let (dir, set, src) = backup_onto(&tape, "TCMU0", 2048);
    let cat = dir.path().join("c.db");
    let dst = lio_add_lun("tcmu0dst", 4, &[initiator()]);
    sm(
        &cat,
        &[
            "--initiator",
            initiator(),
            "restore",
            &set,
            "--target",
            &dst,
            "--lba",
            "0",
            "--tape",
            &tape,
        ],
    )
    .ok();
    let a = Disk::open(connect(&src, initiator()))
        .unwrap()
        .read(Lba(0), 2048, BlockSize(512))
        .unwrap();
    let b = Disk::open(connect(&dst, initiator()))
        .unwrap()
        .read(Lba(0), 2048, BlockSize(512))
        .unwrap();
    assert!(a == b, "restore differs from the source");
}

/// The blocks of tape file 1 over iSCSI: (length, MD5) of each.
fn blocks_over_iscsi(tape: &str) -> Vec<(usize, String)> {
    let mut t = Tape::open(connect(tape, initiator())).unwrap();
    t.rewind().unwrap();
    t.space_filemarks(1).unwrap();
    let mut out = Vec::new();
    loop {
        match t.read_block(vec![0; 4 << 20]).unwrap() {
            (ReadOutcome::Block(n), buf) => out.push((n, hex::encode(Md5::digest(&buf[..n])))),
            _ => return out,
        }
    }
}

#[test]
fn the_kernel_st_driver_reads_the_set_block_for_block() {
    let _g = guest();
    let tape = tcmu_lun("tcmutape1", "drive1", None);
    let (_dir, _set, _src) = backup_onto(&tape, "TCMU1", 3000);
    let want = blocks_over_iscsi(&tape);
    assert!(want.len() >= 3, "header, records, trailer: {want:?}");
    let lun = lio_ctl("rig loop-add tcmutape1").trim().to_string();
    let nodes = lio_ctl(&format!("rig loop-nodes {lun}"));
    let nst = nodes.split_whitespace().next().unwrap().to_string();
    assert!(nst.starts_with("nst"), "st did not bind the tape: {nodes}");
    let script = format!(
        "mt -f /dev/{nst} rewind && mt -f /dev/{nst} fsf 1 && i=0; \
         while dd if=/dev/{nst} of=/tmp/blk bs=1048576 count=1 2>/dev/null; do \
           s=$(wc -c </tmp/blk); [ \"$s\" = 0 ] && break; \
           echo \"$s $(md5sum </tmp/blk | cut -c1-32)\"; i=$((i+1)); done"
    );
    let got: Vec<(usize, String)> = lio_ctl(&script)
        .lines()
        .map(|l| {
            let (n, m) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), m.to_string())
        })
        .collect();
    assert_eq!(got, want, "st's blocks differ from sanmover's");
}

#[test]
fn sg_io_in_the_guest_rebuilds_and_verifies_the_set() {
    let _g = guest();
    let tape = tcmu_lun("tcmutape2", "drive2", None);
    let (_dir, set, _src) = backup_onto(&tape, "TCMU2", 1024);
    let lun = lio_ctl("rig loop-add tcmutape2").trim().to_string();
    let nodes = lio_ctl(&format!("rig loop-nodes {lun}"));
    let mut it = nodes.split_whitespace();
    let (nst, sg) = (
        it.next().unwrap().to_string(),
        it.next().unwrap().to_string(),
    );
    let out = lio_ctl(&format!(
        "export SANMOVER_CATALOG=/tmp/tcmu2.db; rm -f /tmp/tcmu2.db; \
         sanmover catalog rebuild --tape /dev/{nst} && sanmover verify {set} --tape /dev/{sg}"
    ));
    assert!(out.contains(&set[..8]), "{out}");
}

/// PERSISTENT RESERVE OUT through the device layer (SPC-4 6.16); the
/// status it ended with.
fn pr_out(s: &mut Scsi<IscsiTransport>, o: PrOut) -> Status {
    match s.pr_out(o) {
        Ok(()) => Status::GOOD,
        Err(e) => e
            .status()
            .unwrap_or_else(|| panic!("PERSISTENT RESERVE OUT failed without a status: {e}")),
    }
}

fn status(r: Result<sanmover::transport::Response, TransportError>) -> Status {
    r.map(|r| r.status)
        .unwrap_or_else(|e| panic!("transport failed: {e}"))
}

fn write6(t: &mut IscsiTransport) -> Status {
    let cdb = Write6 {
        fixed: false,
        length: 512,
    }
    .to_cdb();
    status(t.execute(Request::data_out(cdb, vec![7u8; 512])))
}

fn read6(t: &mut IscsiTransport) -> Status {
    let cdb = Read6 {
        fixed: false,
        sili: true,
        length: 4096,
    }
    .to_cdb();
    status(t.execute(Request::data_in(cdb, 4096)))
}

fn rewind(t: &mut IscsiTransport) -> Status {
    status(t.execute(Request::none(
        sanmover::scsi::ssc::Rewind::default().to_cdb(),
    )))
}

#[test]
fn lio_core_reservations_fence_a_tcmu_tape() {
    let _g = guest();
    let tape = tcmu_lun("tcmutape3", "drive3", None);
    let mut a = Scsi::new(connect(&tape, initiator()));
    let mut b = Scsi::new(connect(&tape, other()));
    let _ = read6(a.transport()); // clear the Unit Attention of a fresh LU
    let _ = read6(b.transport());
    assert_eq!(write6(a.transport()), Status::GOOD);
    assert_eq!(pr_out(&mut a, PrOut::register(0xa)), Status::GOOD);
    assert_eq!(pr_out(&mut b, PrOut::register(0xb)), Status::GOOD);
    let we = PrType::WRITE_EXCLUSIVE;
    assert_eq!(pr_out(&mut a, PrOut::reserve(0xa, we)), Status::GOOD);
    assert_eq!(
        write6(b.transport()),
        Status::RESERVATION_CONFLICT,
        "WE blocks the other's WRITE(6)"
    );
    assert_eq!(rewind(a.transport()), Status::GOOD);
    let r = read6(b.transport());
    assert!(
        r == Status::GOOD || r == Status::CHECK_CONDITION,
        "WE lets the other READ: {r:?}"
    );
    let abort = PrOut::preempt(0xb, 0xa, we, true);
    assert_eq!(pr_out(&mut b, abort), Status::GOOD);
    let next = write6(a.transport());
    assert!(
        next == Status::RESERVATION_CONFLICT || next == Status::CHECK_CONDITION,
        "the preempted initiator must not write: {next:?}"
    );
    assert_eq!(write6(a.transport()), Status::RESERVATION_CONFLICT);
    assert_eq!(pr_out(&mut b, PrOut::clear(0xb)), Status::GOOD);
}

#[test]
fn a_killed_handler_fails_commands_in_time_and_a_new_one_serves_again() {
    let _g = guest();
    let tape = tcmu_lun("tcmutape4", "drive4", Some(5));
    let mut t = connect(&tape, initiator());
    let _ = rewind(&mut t);
    assert_eq!(rewind(&mut t), Status::GOOD);
    lio_ctl("kill -9 $(cat /tmp/tcmu.pid)");
    let t0 = Instant::now();
    let dead = t.execute(Request::none(
        sanmover::scsi::ssc::Rewind::default().to_cdb(),
    ));
    let took = t0.elapsed();
    assert!(
        !matches!(dead, Ok(ref r) if r.status == Status::GOOD),
        "a command to a dead handler must fail: {dead:?}"
    );
    assert!(
        took < Duration::from_secs(60),
        "no hang past cmd_time_out: {took:?}"
    );
    lio_ctl(&format!("rig tcmu-start {}", common::TCMU_DRIVES));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut t = connect(&tape, initiator());
    loop {
        let s = t.execute(Request::none(
            sanmover::scsi::ssc::Rewind::default().to_cdb(),
        ));
        if matches!(s, Ok(ref r) if r.status == Status::GOOD) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted handler does not serve: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Third-party copy onto a LIO tape: `sanmover router` (the copy manager,
/// on the host) reads a LIO disk LUN and writes the TCMU tape, both behind
/// LIO's ACLs; the host-driven restore equals the source.
#[test]
fn the_router_writes_a_tcmu_tape_by_extended_copy() {
    let _g = guest();
    let tape = tcmu_lun("tcmutape6", "drive6", None);
    let src = lio_add_lun("tcmu6src", 4, &[initiator()]);
    let data: Vec<u8> = (0..2048 * 512).map(|i| (i * 13 % 241) as u8).collect();
    let mut d = Disk::open(connect(&src, initiator())).unwrap();
    d.write(Lba(0), BlockSize(512), data.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("router.toml");
    let target = src.rsplit_once('/').unwrap().0.to_string();
    let iqn = target.split('/').nth(3).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[[copy_rights]]\ninitiators = [\"{}\"]\nlus = [{{ target = \"{iqn}\", role = \"both\" }}]\n",
            initiator()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let router = common::Router::start_global(
        &["--initiator", initiator()],
        &[&target],
        &["--config", &cfg],
    );
    let cat = dir.path().join("c.db");
    let i = ["--initiator", initiator()];
    sm(&cat, &[&i[..], &["tape", &tape, "label", "TCMUX"]].concat()).ok();
    let cm = router.url();
    let args = [
        "backup",
        "--mode",
        "xcopy",
        "--source",
        &src,
        "--blocks",
        "2048",
        "--tape",
        &tape,
        "--copy-manager",
        &cm,
        "--fallback",
        "never",
    ];
    sm(&cat, &[&i[..], &args[..]].concat()).ok();
    let set = sm(&cat, &["--json", "catalog", "list"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dst = lio_add_lun("tcmu6dst", 4, &[initiator()]);
    sm(
        &cat,
        &[
            &i[..],
            &[
                "restore", &set, "--target", &dst, "--lba", "0", "--tape", &tape,
            ],
        ]
        .concat(),
    )
    .ok();
    let back = Disk::open(connect(&dst, initiator()))
        .unwrap()
        .read(Lba(0), 2048, BlockSize(512))
        .unwrap();
    assert!(back == data, "the restore differs from the source");
}

/// A command larger than the backstore's data area (1 MiB here) is
/// refused, not hung, and the device goes on serving.
#[test]
fn a_command_larger_than_the_data_area_is_refused_cleanly() {
    let _g = guest();
    let tape = common::tcmu_tape_with("tcmutape7", "drive7", "RIG_TCMU_DATA_MB=1 ");
    let mut t = connect(&tape, initiator());
    let _ = rewind(&mut t);
    let t0 = Instant::now();
    let cdb = Write6 {
        fixed: false,
        length: 2 << 20,
    }
    .to_cdb();
    let big = t.execute(Request::data_out(cdb, vec![1u8; 2 << 20]));
    assert!(
        !matches!(big, Ok(ref r) if r.status == Status::GOOD),
        "a 2 MiB write through a 1 MiB data area: {big:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "refused in time, not at a timeout"
    );
    let mut t = connect(&tape, initiator());
    let _ = rewind(&mut t);
    assert_eq!(rewind(&mut t), Status::GOOD, "the device still serves");
    assert_eq!(write6(&mut t), Status::GOOD);
}

/// The changer through TCMU: peripheral type 08h over iSCSI, and through
/// tcm_loop the guest kernel's ch driver binds it (/dev/schN) while
/// `sanmover changer` over SG_IO in the guest sees the library.
#[test]
fn the_tcmu_changer_is_a_changer_to_iscsi_and_to_the_kernel() {
    let _g = guest();
    let ch = common::tcmu_changer();
    let inq = common::sanmover(["--json", "--initiator", initiator(), "inquiry", &ch]).ok();
    assert_eq!(inq.json()["device_type"], 8, "{}", inq.stdout);
    let status = common::sanmover([
        "--json",
        "--initiator",
        initiator(),
        "changer",
        &ch,
        "status",
    ])
    .ok();
    assert!(
        status.stdout.contains("VTL"),
        "barcodes of the library: {}",
        status.stdout
    );
    let lun = lio_ctl("rig loop-add tcmuchanger").trim().to_string();
    let nodes = lio_ctl(&format!("rig loop-nodes {lun}"));
    let sg = nodes.split_whitespace().nth(1).unwrap().to_string();
    let out = lio_ctl(&format!(
        "ls /dev | grep '^sch' ; sanmover changer /dev/{sg} status"
    ));
    assert!(
        out.lines().next().is_some_and(|l| l.starts_with("sch")),
        "no /dev/sch*: {out}"
    );
    assert!(out.contains("Storage Element 1"), "{out}");
}
