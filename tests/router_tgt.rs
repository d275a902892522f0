//! The copy manager with real backends: a disk and a tape on tgt, found by
//! `Backends::discover` from whole-target URLs, driven in process (no
//! frontend), and every tape block read back through our own tape device.

mod common;
use common::{fill_random, PrivateRig};

use std::path::PathBuf;

use sanmover::device::tape::ReadOutcome;
use sanmover::device::{Disk, Tape};
use sanmover::lu::{LogicalUnit, Nexus};
use sanmover::router::{
    Backends, CopyAcl, CopyManager, CopyManagerConfig, CopyRights, LuEntry, Role, RuleEntry,
};
use sanmover::scsi::sense::{Asc, Sense, SenseKey};
use sanmover::scsi::spc::DeviceIdentification;
use sanmover::scsi::xcopy::{
    list_id_usage, CopyAborted, CopyEnd, Cscd, DeviceParams, RcrAction, ReceiveCopyResults,
    ReceiveData, Segment, SegmentKind, XcopyParams,
};
use sanmover::scsi::{BlockSize, CdbCodec, DeviceType, Lba, Status, Wire};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;

const INITIATOR: &str = "iqn.2024-01.org.sanmover:router-test";

fn connect(url: &str) -> IscsiTransport {
    IscsiTransport::connect(&IscsiUrl::parse(url).unwrap(), &IscsiOptions::default()).unwrap()
}

fn cscd(di: &DeviceIdentification, dt: DeviceType, params: DeviceParams) -> Cscd {
    Cscd::identification(di.best_lu_designator().unwrap(), dt, params).unwrap()
}

struct Setup {
    _rig: PrivateRig,
    cm: CopyManager,
    disk_url: String,
    tape_url: String,
    disk_file: PathBuf,
    cscds: Vec<Cscd>,
}

fn setup() -> Setup {
    let rig = PrivateRig::start();
    let portal = rig.get("SANMOVER_RIG_PORTAL").to_string();
    let disk_url = rig.get("SANMOVER_RIG_DISK").to_string();
    let tape_url = rig.get("SANMOVER_RIG_TAPE").to_string();
    let disk_file = PathBuf::from(rig.get("SANMOVER_RIG_DISK_FILE"));
    fill_random(&disk_file, 8 << 20, 0x0c0f_fee5);
    let mut b = Backends::new();
    b.discover(
        &[
            format!("iscsi://{portal}/{}", rig.get("SANMOVER_RIG_DISK_IQN")),
            format!("iscsi://{portal}/{}", rig.get("SANMOVER_RIG_TAPE_IQN")),
        ],
        INITIATOR,
    )
    .unwrap();
    let kinds: Vec<DeviceType> = b.list().iter().map(|i| i.device_type).collect();
    assert!(kinds.contains(&DeviceType::DISK), "{:?}", b.list());
    assert!(kinds.contains(&DeviceType::TAPE), "{:?}", b.list());
    // The issuer's view: VPD 0x83 of each end, as the backup engine does.
    let mut disk = Disk::open(connect(&disk_url)).unwrap();
    let mut tape = Tape::open(connect(&tape_url)).unwrap();
    let cscds = vec![
        cscd(
            &disk.scsi.device_identification().unwrap(),
            DeviceType::DISK,
            DeviceParams::block(512),
        ),
        cscd(
            &tape.scsi.device_identification().unwrap(),
            DeviceType::TAPE,
            DeviceParams::Stream {
                pad: false,
                fixed: false,
                stream_block_len: 0,
            },
        ),
    ];
    tape.rewind().unwrap();
    // Copy rights as a user writes them: this initiator may read the disk
    // target's LUNs and write the tape target's.
    // LUN 3 of the disk target, which a_lun_added_later_is_found_on_demand
    // adds, may be written.
    let rule = |iqn: &str, lun, role| LuEntry {
        designator: None,
        target: Some(iqn.to_string()),
        lun,
        role,
    };
    let disk_iqn = rig.get("SANMOVER_RIG_DISK_IQN");
    let rights = RuleEntry {
        initiators: vec![INITIATOR.into()],
        lus: vec![
            rule(disk_iqn, Some(1), Role::Source),
            rule(disk_iqn, Some(3), Role::Destination),
            rule(rig.get("SANMOVER_RIG_TAPE_IQN"), None, Role::Destination),
        ],
    };
    let cfg = CopyManagerConfig {
        rights: CopyRights::Acl(CopyAcl::new(&[rights], &Default::default()).unwrap()),
        ..CopyManagerConfig::default()
    };
    let cm = CopyManager::new(cfg, b);
    Setup {
        _rig: rig,
        cm,
        disk_url,
        tape_url,
        disk_file,
        cscds,
    }
}

fn nexus() -> Nexus {
    Nexus {
        initiator: INITIATOR.into(),
        isid: 7,
        target: "iqn.test:router".into(),
    }
}

fn header(k: u64) -> Vec<u8> {
    (0..48u64).map(|i| (i * 7 + k * 13) as u8).collect()
}

/// SPACE to EOD, then `records` pairs of 04h(CAT=1) header + 00h(CAT=0)
/// payload of `per` blocks from LBA `first`, then a filemark.
fn backup_list(cscds: &[Cscd], records: u64, per: u16, first: u64) -> XcopyParams {
    let payload = per as u32 * 512;
    let mut p = XcopyParams::new(cscds.to_vec(), Vec::new());
    p.list_id_usage = list_id_usage::HOLD;
    p.list_id = 3;
    p.segments.push(Segment {
        cat: false,
        dc: false,
        kind: SegmentKind::Space {
            dst: 1,
            code: 3,
            count: 0,
        },
    });
    for k in 0..records {
        let off = p.inline_data.len() as u64;
        p.inline_data.extend_from_slice(&header(k));
        p.segments.push(Segment {
            cat: true,
            dc: false,
            kind: SegmentKind::InlineToStream {
                dst: 1,
                stream_len: 48 + payload,
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
                stream_len: 48 + payload,
                blocks: per,
                lba: Lba(first + k * per as u64),
            },
        });
    }
    p.segments.push(Segment {
        cat: false,
        dc: false,
        kind: SegmentKind::WriteFilemarks {
            dst: 1,
            wsmk: false,
            immed: false,
            count: 1,
        },
    });
    p
}

fn send(cm: &mut CopyManager, p: &XcopyParams) -> sanmover::lu::Completion {
    let list = p.encode().unwrap();
    cm.execute_for(&nexus(), p.cdb().to_cdb().as_bytes(), &list, &mut [])
}

#[test]
fn disk_to_tape_records_through_discovered_backends() {
    let mut s = setup();
    let (records, per) = (24u64, 256u16); // 24 records of 128 KiB
    let p = backup_list(&s.cscds, records, per, 8);
    let c = send(&mut s.cm, &p);
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));

    // The held CRC32Cs, through RECEIVE COPY RESULTS 01h.
    let rcr = ReceiveCopyResults {
        action: RcrAction::RECEIVE_DATA,
        list_id: 3,
        alloc_len: 4096,
    };
    let mut buf = vec![0u8; 4096];
    let c =
        s.cm.execute_for(&nexus(), rcr.to_cdb().as_bytes(), &[], &mut buf);
    assert_eq!(c.status, Status::GOOD);
    let rd = ReceiveData::parse(&buf[..c.data_in_len]).unwrap();
    assert_eq!(rd.available_data as u64, 4 * records);

    // Every tape block is header + payload, and its CRC is the held one.
    let disk = std::fs::read(&s.disk_file).unwrap();
    let mut tape = Tape::open(connect(&s.tape_url)).unwrap();
    tape.rewind().unwrap();
    for k in 0..records {
        let (o, b) = tape.read_block(vec![0; 1 << 20]).unwrap();
        let ReadOutcome::Block(n) = o else {
            panic!("record {k}: {o:?}")
        };
        let lba = (8 + k * per as u64) as usize;
        let mut want = header(k);
        want.extend_from_slice(&disk[lba * 512..(lba + per as usize) * 512]);
        assert_eq!(n, want.len(), "record {k}");
        assert!(b[..n] == want[..], "record {k} differs");
        let held = u32::from_be_bytes(
            rd.data[4 * k as usize..4 * k as usize + 4]
                .try_into()
                .unwrap(),
        );
        assert_eq!(held, crc32c::crc32c(&want), "record {k}");
    }
    let (o, _) = tape.read_block(vec![0; 1 << 20]).unwrap();
    assert_eq!(o, ReadOutcome::Filemark);

    // A second list appends after the first set (SPACE to end of data).
    let c = send(&mut s.cm, &backup_list(&s.cscds, 2, 16, 0));
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
    // The drive has one position for every session: find file 1 again.
    tape.seek_file(1).unwrap();
    let (o, b) = tape.read_block(vec![0; 1 << 20]).unwrap();
    assert_eq!(o, ReadOutcome::Block(48 + 16 * 512));
    assert_eq!(b[..48], header(0)[..]);
}

#[test]
fn source_lba_out_of_range_on_tgt_names_the_segment() {
    let mut s = setup();
    let mut disk = Disk::open(connect(&s.disk_url)).unwrap();
    let blocks = disk.capacity().unwrap().blocks.0;
    // Records 0 and 1 fit, record 2 runs past the end of the disk.
    let p = backup_list(&s.cscds, 3, 64, blocks - 150);
    let c = send(&mut s.cm, &p);
    let sense = Sense::parse(&c.sense).unwrap();
    assert_eq!(sense.key, SenseKey::COPY_ABORTED, "{sense}");
    let a = CopyAborted::from_sense_bytes(&c.sense).unwrap();
    // SPACE, then 04h/00h pairs: record 2's 00h is segment 6.
    assert_eq!(a.segment, Some(6));
    assert_eq!(a.embedded_from, Some(CopyEnd::Source));
    let inner = Sense::parse(&a.embedded).unwrap();
    assert_eq!(inner.key, SenseKey::ILLEGAL_REQUEST);
    assert_eq!(inner.asc, Asc::LBA_OUT_OF_RANGE);
    // The backend sessions are still good for the next list.
    let c = send(&mut s.cm, &backup_list(&s.cscds, 1, 8, 0));
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
    let _ = disk.read(Lba(0), 1, BlockSize(512)).unwrap();
}

/// A LUN added to a discovered target after start-up: the first list that
/// names it sends the router looking, and the copy goes through.
#[test]
fn a_lun_added_later_is_found_on_demand() {
    let mut s = setup();
    let before = s.cm.backends().len();
    let (url, file) = s._rig.add_lun(3, 4);
    let mut new = Disk::open(connect(&url)).unwrap();
    let di = new.scsi.device_identification().unwrap();
    let cscds = vec![
        s.cscds[0].clone(),
        cscd(&di, DeviceType::DISK, DeviceParams::block(512)),
    ];
    let mut p = XcopyParams::new(
        cscds,
        vec![Segment::block_to_block(0, 1, 64, Lba(0), Lba(2))],
    );
    p.list_id_usage = list_id_usage::DISCARD;
    p.list_id = 1;
    let c = send(&mut s.cm, &p);
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
    assert_eq!(s.cm.backends().len(), before + 1);
    let src = std::fs::read(&s.disk_file).unwrap();
    let dst = std::fs::read(&file).unwrap();
    assert!(dst[1024..1024 + 64 * 512] == src[..64 * 512]);
    let _ = new.capacity().unwrap();
}
