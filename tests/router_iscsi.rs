//! The copy manager LU served by our own iSCSI target (library level, no
//! CLI): libiscsi's iscsi-test-cu suites against it, and a disk→tape copy
//! sent over iSCSI to it with tgt backends.

mod common;
use common::{fill_random, PrivateRig};

use std::process::Command;
use std::sync::{Arc, Mutex};

use sanmover::device::tape::ReadOutcome;
use sanmover::device::{Disk, Scsi, Tape};
use sanmover::frontend::{Server, ServerHandle, SharedLu, TargetConfig, TargetDef};
use sanmover::router::{
    Backends, CopyAcl, CopyManager, CopyManagerConfig, CopyRights, LuEntry, Role, RuleEntry,
};
use sanmover::scsi::xcopy::{
    list_id_usage, CopyAborted, Cscd, DeviceParams, RcrAction, ReceiveCopyResults, ReceiveData,
    Segment, SegmentKind, XcopyParams,
};
use sanmover::scsi::{CdbCodec, DeviceType, Lba, Wire};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;
use sanmover::transport::Request;

const IQN: &str = "iqn.2026-01.org.sanmover.test:router";

/// Serve a copy manager; `targets` are the backend targets the default
/// initiator name may copy from and onto (copy rights as a user writes
/// them).
fn serve(backends: Backends, targets: &[&str]) -> ServerHandle {
    let lus = targets
        .iter()
        .map(|t| LuEntry {
            designator: None,
            target: Some(t.to_string()),
            lun: None,
            role: Role::Both,
        })
        .collect();
    let rule = RuleEntry {
        initiators: vec![sanmover::transport::iscsi::DEFAULT_INITIATOR.into()],
        lus,
    };
    let rights = match targets.is_empty() {
        true => CopyRights::Closed,
        false => CopyRights::Acl(CopyAcl::new(&[rule], &Default::default()).unwrap()),
    };
    let cfg = CopyManagerConfig {
        rights,
        ..CopyManagerConfig::default()
    };
    let cm = CopyManager::new(cfg, backends);
    let cfg = TargetConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![TargetDef {
            name: IQN.into(),
            luns: vec![(0, Arc::new(Mutex::new(cm)) as SharedLu)],
        }],
    );
    Server::bind(cfg).expect("bind").spawn()
}

/// Run one iscsi-test-cu test or suite; (total, ran, passed, failed) and
/// the output.
fn cu(h: &ServerHandle, test: &str) -> ((u32, u32, u32, u32), String) {
    let url = format!("iscsi://{}/{IQN}/0", h.local_addr());
    let out = Command::new("iscsi-test-cu")
        .args(["--dataloss", "-t", test, &url])
        .output()
        .expect("iscsi-test-cu (apt-get install libiscsi-bin)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("tests"))
        .unwrap_or_else(|| panic!("{test}: no CUnit summary:\n{text}"));
    let n: Vec<u32> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    ((n[0], n[1], n[2], n[3]), text)
}

#[test]
fn iscsi_test_cu_passes_against_the_copy_manager() {
    let h = serve(Backends::new(), &[]);
    for (suite, n) in [
        ("SCSI.ExtendedCopy", 6),
        ("SCSI.ReceiveCopyResults", 2),
        ("SCSI.Inquiry", 7),
        ("SCSI.TestUnitReady", 1),
        ("SCSI.ReportSupportedOpcodes", 4),
    ] {
        let (s, text) = cu(&h, suite);
        assert_eq!(s, (n, n, n, 0), "{suite}:\n{text}");
        assert!(!text.contains("SKIPPED"), "{suite} skipped:\n{text}");
    }
    h.shutdown();
}

fn connect(url: &str) -> IscsiTransport {
    IscsiTransport::connect(&IscsiUrl::parse(url).unwrap(), &IscsiOptions::default()).unwrap()
}

/// An initiator sends header+payload records to the router over iSCSI;
/// the router reads the tgt disk and writes the tgt tape.
#[test]
fn disk_to_tape_over_iscsi_through_the_router() {
    let rig = PrivateRig::start();
    let portal = rig.get("SANMOVER_RIG_PORTAL").to_string();
    let disk_file = rig.get("SANMOVER_RIG_DISK_FILE").to_string();
    fill_random(std::path::Path::new(&disk_file), 8 << 20, 77);
    let mut b = Backends::new();
    b.discover(
        &[
            format!("iscsi://{portal}/{}", rig.get("SANMOVER_RIG_DISK_IQN")),
            format!("iscsi://{portal}/{}", rig.get("SANMOVER_RIG_TAPE_IQN")),
        ],
        "iqn.2026-01.org.sanmover.test:router-backend",
    )
    .unwrap();
    let h = serve(
        b,
        &[
            rig.get("SANMOVER_RIG_DISK_IQN"),
            rig.get("SANMOVER_RIG_TAPE_IQN"),
        ],
    );

    let mut disk = Disk::open(connect(rig.get("SANMOVER_RIG_DISK"))).unwrap();
    let mut tape = Tape::open(connect(rig.get("SANMOVER_RIG_TAPE"))).unwrap();
    tape.rewind().unwrap();
    let cscds = vec![
        Cscd::identification(
            disk.scsi
                .device_identification()
                .unwrap()
                .best_lu_designator()
                .unwrap(),
            DeviceType::DISK,
            DeviceParams::block(512),
        )
        .unwrap(),
        Cscd::identification(
            tape.scsi
                .device_identification()
                .unwrap()
                .best_lu_designator()
                .unwrap(),
            DeviceType::TAPE,
            DeviceParams::Stream {
                pad: false,
                fixed: false,
                stream_block_len: 0,
            },
        )
        .unwrap(),
    ];
    let per = 128u16;
    let records = 16u64;
    let mut p = XcopyParams::new(cscds, Vec::new());
    p.list_id_usage = list_id_usage::HOLD;
    p.list_id = 42;
    for k in 0..records {
        let off = p.inline_data.len() as u64;
        p.inline_data.extend_from_slice(&[k as u8; 48]);
        let sl = 48 + per as u32 * 512;
        p.segments.push(Segment {
            cat: true,
            dc: false,
            kind: SegmentKind::InlineToStream {
                dst: 1,
                stream_len: sl,
                inline_len: 48,
                inline_offset: off,
            },
        });
        p.segments.push(Segment {
            cat: false,
            dc: false,
            kind: SegmentKind::BlockToStream {
                src: 0,
                dst: 1,
                stream_len: sl,
                blocks: per,
                lba: Lba(k * per as u64),
            },
        });
    }
    let router_url = format!("iscsi://{}/{IQN}/0", h.local_addr());
    let mut cm = Scsi::new(connect(&router_url));
    let list = p.encode().unwrap();
    cm.run(Request::data_out(p.cdb().to_cdb(), list)).unwrap();
    let rcr = ReceiveCopyResults {
        action: RcrAction::RECEIVE_DATA,
        list_id: 42,
        alloc_len: 1024,
    };
    let rd = ReceiveData::parse(&cm.data_in(rcr.to_cdb(), 1024).unwrap()).unwrap();
    assert_eq!(rd.available_data as u64, 4 * records);

    let data = std::fs::read(&disk_file).unwrap();
    tape.rewind().unwrap();
    for k in 0..records as usize {
        let (o, b) = tape.read_block(vec![0; 1 << 20]).unwrap();
        let n = 48 + per as usize * 512;
        assert_eq!(o, ReadOutcome::Block(n));
        assert_eq!(b[..48], [k as u8; 48]);
        let at = k * per as usize * 512;
        assert!(b[48..n] == data[at..at + per as usize * 512], "record {k}");
        let held = u32::from_be_bytes(rd.data[4 * k..4 * k + 4].try_into().unwrap());
        assert_eq!(held, crc32c::crc32c(&b[..n]));
    }

    // A copy that fails comes back as COPY ABORTED naming the segment.
    let blocks = disk.capacity().unwrap().blocks.0;
    let mut bad = p.clone();
    bad.list_id = 43;
    bad.segments.truncate(2);
    bad.segments[1].kind = SegmentKind::BlockToStream {
        src: 0,
        dst: 1,
        stream_len: 48 + per as u32 * 512,
        blocks: per,
        lba: Lba(blocks - 1),
    };
    let e = cm
        .run(Request::data_out(bad.cdb().to_cdb(), bad.encode().unwrap()))
        .unwrap_err();
    let raw = match &e {
        sanmover::device::DeviceError::Check { raw_sense, .. } => raw_sense.clone(),
        other => panic!("{other}"),
    };
    let a = CopyAborted::from_sense_bytes(&raw).unwrap();
    assert_eq!(a.segment, Some(1), "{e}");
    h.shutdown();
}
