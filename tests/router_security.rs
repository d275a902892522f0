//! Copy rights of the data router, driven over iSCSI by libiscsi
//! initiators with different names: the router serves its copy manager
//! through our own target, its backend is an in-memory disk (no rig
//! needed). A copy naming an LU outside the initiator's rights is refused
//! on the read path and the write path, and what one nexus copies into the
//! scratch disk another cannot read.

use std::sync::{Arc, Mutex};

use sanmover::device::{DeviceError, Disk, Scsi};
use sanmover::frontend::{Server, ServerHandle, SharedLu, TargetConfig, TargetDef};
use sanmover::lu::{Completion, LogicalUnit, MemDisk};
use sanmover::router::{
    Backends, CopyAcl, CopyManager, CopyManagerConfig, CopyRights, LuEntry, Role, RuleEntry,
};
use sanmover::scsi::sense::{Asc, Sense};
use sanmover::scsi::spc::Designator;
use sanmover::scsi::xcopy::{Cscd, DeviceParams, Segment, XcopyParams};
use sanmover::scsi::{CdbCodec, DeviceType, Lba, Wire};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::memory::MemoryTransport;
use sanmover::transport::url::IscsiUrl;
use sanmover::transport::Request;

const IQN: &str = "iqn.2026-01.org.sanmover.test:router-sec";
const BACKUP: &str = "iqn.2026-01.org.sanmover.test:backup-server";
const INTRUDER: &str = "iqn.2026-01.org.sanmover.test:intruder";

struct Router {
    h: ServerHandle,
    backend: Shared,
    prod: Designator,
}

/// The backend disk, kept in reach of the test while the router owns its
/// transport.
#[derive(Clone)]
struct Shared(Arc<Mutex<MemDisk>>);

impl LogicalUnit for Shared {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        self.0.lock().unwrap().execute(cdb, data_out, data_in)
    }
}

/// The router with one backend disk "PROD" full of 0x5a, whose copy
/// rights let only the backup server read it (as a copy source).
fn serve() -> Router {
    let mut d = MemDisk::new("PROD", 256, 512);
    d.data_mut().fill(0x5a);
    let prod = Scsi::new(MemoryTransport::new("probe", d.clone()))
        .device_identification()
        .unwrap()
        .best_lu_designator()
        .unwrap()
        .clone();
    let backend = Shared(Arc::new(Mutex::new(d)));
    let mut b = Backends::new();
    b.add(Box::new(MemoryTransport::new("disk PROD", backend.clone())))
        .unwrap();
    let rule = RuleEntry {
        initiators: vec![BACKUP.into()],
        lus: vec![LuEntry {
            designator: Some(prod.value.iter().map(|b| format!("{b:02x}")).collect()),
            target: None,
            lun: None,
            role: Role::Source,
        }],
    };
    let cfg = CopyManagerConfig {
        rights: CopyRights::Acl(CopyAcl::new(&[rule], &Default::default()).unwrap()),
        ..CopyManagerConfig::default()
    };
    let cm = CopyManager::new(cfg, b);
    let h = Server::bind(TargetConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![TargetDef {
            name: IQN.into(),
            luns: vec![(0, Arc::new(Mutex::new(cm)) as SharedLu)],
        }],
    ))
    .expect("bind")
    .spawn();
    Router { h, backend, prod }
}

fn login(r: &Router, initiator: &str) -> Disk<IscsiTransport> {
    let url = IscsiUrl::parse(&format!("iscsi://{}/{IQN}/0", r.h.local_addr())).unwrap();
    let opts = IscsiOptions {
        initiator: initiator.into(),
        ..IscsiOptions::default()
    };
    Disk::open(IscsiTransport::connect(&url, &opts).unwrap()).unwrap()
}

fn cscd(d: Designator) -> Cscd {
    Cscd::identification(&d, DeviceType::DISK, DeviceParams::block(512)).unwrap()
}

/// A designator like PROD's with another value: an LU nobody has.
fn nobody(r: &Router) -> Cscd {
    let mut d = r.prod.clone();
    for b in d.value.iter_mut() {
        *b ^= 0x3c;
    }
    cscd(d)
}

fn scratch(d: &mut Disk<IscsiTransport>) -> Cscd {
    cscd(
        d.scsi
            .device_identification()
            .unwrap()
            .best_lu_designator()
            .unwrap()
            .clone(),
    )
}

/// Send a one-segment 02h copy of 8 blocks from CSCD 0 to CSCD 1; the
/// sense bytes on CHECK CONDITION, `None` on GOOD.
fn copy(s: &mut Scsi<IscsiTransport>, from: Cscd, to: Cscd) -> Option<Vec<u8>> {
    let p = XcopyParams::new(
        vec![from, to],
        vec![Segment::block_to_block(0, 1, 8, Lba(0), Lba(0))],
    );
    match s.run(Request::data_out(p.cdb().to_cdb(), p.to_vec())) {
        Ok(_) => None,
        Err(DeviceError::Check { raw_sense, .. }) => Some(raw_sense),
        Err(e) => panic!("{e}"),
    }
}

fn read8(d: &mut Disk<IscsiTransport>) -> Vec<u8> {
    let rd = sanmover::scsi::sbc::Read10::new(Lba(0), 8).unwrap();
    d.scsi.data_in(rd.to_cdb(), 8 * 512).unwrap()
}

#[test]
fn copy_from_outside_the_acl_is_refused_like_an_unknown_lu() {
    let r = serve();
    let mut me = login(&r, INTRUDER);
    let own = scratch(&mut me);
    let denied =
        copy(&mut me.scsi, cscd(r.prod.clone()), own.clone()).expect("copy of PROD refused");
    let unknown = copy(&mut me.scsi, nobody(&r), own).expect("unknown LU refused");
    assert_eq!(
        Sense::parse(&denied).unwrap().asc,
        Asc::COPY_TARGET_DEVICE_NOT_REACHABLE
    );
    assert_eq!(denied, unknown, "the refusal must not tell the two apart");
    assert!(read8(&mut me).iter().all(|&b| b == 0), "PROD's data leaked");
    r.h.shutdown();
}

#[test]
fn copy_onto_a_disk_outside_the_acl_is_refused() {
    let r = serve();
    let mut me = login(&r, INTRUDER);
    let w = sanmover::scsi::sbc::Write10::new(Lba(0), 8).unwrap();
    me.scsi
        .run(Request::data_out(w.to_cdb(), vec![0xee; 8 * 512]))
        .unwrap();
    let own = scratch(&mut me);
    let denied =
        copy(&mut me.scsi, own.clone(), cscd(r.prod.clone())).expect("copy onto PROD refused");
    let unknown = copy(&mut me.scsi, own, nobody(&r)).expect("unknown LU refused");
    assert_eq!(denied, unknown);
    assert!(r
        .backend
        .0
        .lock()
        .unwrap()
        .data()
        .iter()
        .all(|&b| b == 0x5a));
    r.h.shutdown();
}

#[test]
fn scratch_disk_copied_by_one_nexus_is_not_readable_from_another() {
    let r = serve();
    let mut backup = login(&r, BACKUP);
    let own = scratch(&mut backup);
    assert_eq!(
        copy(&mut backup.scsi, cscd(r.prod.clone()), own),
        None,
        "granted copy"
    );
    assert!(read8(&mut backup).iter().all(|&b| b == 0x5a));
    let mut other = login(&r, INTRUDER);
    assert!(
        read8(&mut other).iter().all(|&b| b == 0),
        "another initiator read the backup server's scratch data"
    );
    let mut second = login(&r, BACKUP);
    assert!(
        read8(&mut second).iter().all(|&b| b == 0),
        "a second session read the first one's scratch data"
    );
    r.h.shutdown();
}
