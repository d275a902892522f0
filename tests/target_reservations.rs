//! Reservations on our own iSCSI target, from two initiators over real
//! iSCSI sessions (libiscsi): the frontend puts every unit behind the
//! reservation layer. Needs no rig: the target runs in-process on
//! 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sanmover::device::{PrOut, Scsi, Tape};
use sanmover::frontend::{Server, ServerHandle, SharedLu, TargetConfig, TargetDef};
use sanmover::lu::MemTape;
use sanmover::scsi::sense::{Asc, Sense, SenseKey};
use sanmover::scsi::spc::PrType;
use sanmover::scsi::{Cdb, Status};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;
use sanmover::transport::{Request, Response, Transport};

const IQN: &str = "iqn.2026-12.org.sanmover.test:reservations";

fn serve_tape() -> ServerHandle {
    let tape: SharedLu = Arc::new(Mutex::new(MemTape::new("PRTAPE", 64 << 20)));
    let targets = vec![TargetDef {
        name: IQN.into(),
        luns: vec![(0, tape)],
    }];
    let cfg = TargetConfig::new("127.0.0.1:0".parse().unwrap(), targets);
    Server::bind(cfg).expect("bind 127.0.0.1:0").spawn()
}

fn tape(addr: SocketAddr, initiator: &str) -> Tape<IscsiTransport> {
    let url = IscsiUrl::parse(&format!("iscsi://{addr}/{IQN}/0")).unwrap();
    let opts = IscsiOptions {
        initiator: initiator.into(),
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let mut t = Tape::open(IscsiTransport::connect(&url, &opts).expect("login")).expect("a tape");
    // Takes the drive's power-on Unit Attention (the device layer
    // retries); under another's RESERVE(6) it ends RESERVATION CONFLICT.
    if let Err(e) = t.scsi.test_unit_ready() {
        assert_eq!(e.status(), Some(Status::RESERVATION_CONFLICT), "{e}");
    }
    t
}

/// One command straight on the transport: no retry of a Unit Attention.
fn raw(s: &mut Scsi<IscsiTransport>, cdb: &[u8], out: Option<Vec<u8>>) -> Response {
    let cdb = Cdb::new(cdb).unwrap();
    let req = match out {
        Some(data) => Request::data_out(cdb, data),
        None => Request::data_in(cdb, 4096),
    };
    s.transport().execute(req).expect("a SCSI status")
}

fn write6(s: &mut Scsi<IscsiTransport>, byte: u8) -> Response {
    raw(s, &[0x0a, 0, 0, 0x02, 0, 0], Some(vec![byte; 512]))
}

/// The done-when of the tape library issue on our frontend: a Write
/// Exclusive reservation blocks the other initiator's WRITE(6) with
/// RESERVATION CONFLICT and lets it READ; PREEMPT AND ABORT from the
/// other initiator takes over, and the first one's next command
/// conflicts (after the REGISTRATIONS PREEMPTED attention SPC-4 owes it).
#[test]
fn write_exclusive_then_preempt_and_abort_over_iscsi() {
    let h = serve_tape();
    let mut a = tape(h.local_addr(), "iqn.2026-12.org.sanmover.test:host-a");
    let mut b = tape(h.local_addr(), "iqn.2026-12.org.sanmover.test:host-b");
    let we = PrType::WRITE_EXCLUSIVE;
    a.scsi.pr_out(PrOut::register(0xa1)).unwrap();
    a.scsi.pr_out(PrOut::reserve(0xa1, we)).unwrap();
    assert_eq!(write6(&mut a.scsi, 1).status, Status::GOOD);
    assert_eq!(write6(&mut a.scsi, 2).status, Status::GOOD);
    a.rewind().unwrap();

    assert_eq!(write6(&mut b.scsi, 9).status, Status::RESERVATION_CONFLICT);
    let read = raw(&mut b.scsi, &[0x08, 0, 0, 0x02, 0, 0], None);
    assert_eq!(
        read.status,
        Status::GOOD,
        "WE lets the other initiator READ"
    );
    assert_eq!(&read.buf[..512], &[1u8; 512][..]);

    // Both see the same registrations and holder.
    let r = b.scsi.pr_reservation().unwrap().reservation.unwrap();
    assert_eq!((r.key, r.pr_type), (0xa1, we));
    let full = b.scsi.pr_full_status().unwrap();
    assert_eq!(full.descriptors.len(), 1);
    assert!(full.descriptors[0].holder);

    b.scsi.pr_out(PrOut::register(0xb1)).unwrap();
    let ea = PrType::EXCLUSIVE_ACCESS;
    b.scsi.pr_out(PrOut::preempt(0xb1, 0xa1, ea, true)).unwrap();
    assert_eq!(b.scsi.pr_keys().unwrap().keys, vec![0xb1]);
    assert_eq!(write6(&mut b.scsi, 3).status, Status::GOOD);

    let ua = write6(&mut a.scsi, 4);
    assert_eq!(ua.status, Status::CHECK_CONDITION);
    let s = Sense::parse(&ua.sense).unwrap();
    assert_eq!(
        (s.key, s.asc),
        (SenseKey::UNIT_ATTENTION, Asc::REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(write6(&mut a.scsi, 5).status, Status::RESERVATION_CONFLICT);
    let read = raw(&mut a.scsi, &[0x08, 0, 0, 0x02, 0, 0], None);
    assert_eq!(
        read.status,
        Status::RESERVATION_CONFLICT,
        "EA: no reads either"
    );
    // Through the device layer (which retries attentions) the refusal
    // is a RESERVATION CONFLICT error.
    let e = a.scsi.pr_out(PrOut::reserve(0xa1, we)).unwrap_err();
    assert_eq!(e.status(), Some(Status::RESERVATION_CONFLICT));
    b.scsi.pr_out(PrOut::clear(0xb1)).unwrap();
    h.shutdown();
}

/// Registrations survive the loss of the nexus (SPC-4 5.13.1): a new
/// session of the same initiator (same ISID) still holds the reservation;
/// a RESERVE(6) ends with its session.
#[test]
fn registrations_outlive_a_session_and_reserve6_does_not() {
    let h = serve_tape();
    let host_a = "iqn.2026-12.org.sanmover.test:host-a";
    let mut a = tape(h.local_addr(), host_a);
    a.scsi.pr_out(PrOut::register(0xa1)).unwrap();
    a.scsi
        .pr_out(PrOut::reserve(0xa1, PrType::EXCLUSIVE_ACCESS))
        .unwrap();
    drop(a);
    let mut b = tape(h.local_addr(), "iqn.2026-12.org.sanmover.test:host-b");
    assert_eq!(write6(&mut b.scsi, 1).status, Status::RESERVATION_CONFLICT);
    let r = b.scsi.pr_reservation().unwrap().reservation.unwrap();
    assert_eq!(r.key, 0xa1);
    b.scsi.pr_out(PrOut::register(0xb1)).unwrap();
    b.scsi
        .pr_out(PrOut::preempt(0xb1, 0xa1, PrType::WRITE_EXCLUSIVE, false))
        .unwrap();
    b.scsi.pr_out(PrOut::clear(0xb1)).unwrap();

    b.scsi.reserve6().unwrap();
    let mut c = tape(h.local_addr(), "iqn.2026-12.org.sanmover.test:host-c");
    let e = c.scsi.reserve6().unwrap_err();
    assert_eq!(e.status(), Some(Status::RESERVATION_CONFLICT));
    drop(b);
    // The target notices the closed connection on its own thread.
    let mut ok = false;
    for _ in 0..200 {
        if c.scsi.reserve6().is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(ok, "RESERVE(6) of a closed session was not released");
    c.scsi.release6().unwrap();
    h.shutdown();
}

/// The host-mode backup's drive reservation (`Tape::reserve`) is a PR
/// Write Exclusive on our target, and a second host cannot take it.
#[test]
fn the_backup_reservation_is_persistent_on_our_target() {
    let h = serve_tape();
    let mut a = tape(h.local_addr(), "iqn.2026-12.org.sanmover.test:host-a");
    let mut b = tape(h.local_addr(), "iqn.2026-12.org.sanmover.test:host-b");
    let r = a.reserve(0x5a5a).unwrap();
    assert_eq!(
        r,
        sanmover::device::tape::Reservation::Persistent { key: 0x5a5a }
    );
    let e = b.reserve(0x6b6b).unwrap_err();
    assert_eq!(e.status(), Some(Status::RESERVATION_CONFLICT));
    a.release(r).unwrap();
    assert!(b.scsi.pr_keys().unwrap().keys == vec![0x6b6b]);
    let r = b.reserve(0x6b6b).unwrap();
    b.release(r).unwrap();
    h.shutdown();
}
