//! Every service action from two (or three) I_T nexuses, the conflict
//! table of SPC-4 5.13.1 for each type, the Unit Attentions, RESERVE(6)
//! and PREEMPT AND ABORT stopping a running task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::lu::{MemDisk, MemTape};
use crate::scsi::sense::Sense;
use crate::scsi::spc::{PrHolder, PrType, Release6, Reserve6};

fn nx(name: &str) -> Nexus {
    Nexus {
        initiator: format!("iqn.2026-12.test:{name}"),
        isid: 0x2300_0000_0001,
        target: "iqn.2026-12.test:target".into(),
    }
}

fn run<L: LogicalUnit>(
    lu: &mut L,
    n: &Nexus,
    cdb: &[u8],
    out: &[u8],
    alloc: usize,
) -> (Completion, Vec<u8>) {
    let mut buf = vec![0u8; alloc];
    let c = lu.execute_for(n, cdb, out, &mut buf);
    buf.truncate(c.data_in_len);
    (c, buf)
}

fn pr_out<L: LogicalUnit>(
    lu: &mut L,
    n: &Nexus,
    a: PrOutAction,
    t: PrType,
    key: u64,
    sak: u64,
) -> Completion {
    let p = PrOutParameters {
        key,
        service_action_key: sak,
        ..Default::default()
    };
    let cdb = PersistentReserveOut::new(a, t).to_cdb();
    run(lu, n, cdb.as_bytes(), &p.to_vec(), 0).0
}

fn pr_in<L: LogicalUnit>(lu: &mut L, n: &Nexus, a: PrInAction) -> (Completion, Vec<u8>) {
    let cdb = PersistentReserveIn {
        action: a,
        alloc_len: 4096,
    }
    .to_cdb();
    run(lu, n, cdb.as_bytes(), &[], 4096)
}

/// REGISTER a new key from an unregistered nexus.
fn register<L: LogicalUnit>(lu: &mut L, n: &Nexus, key: u64) -> Completion {
    pr_out(lu, n, PrOutAction::REGISTER, PrType(0), 0, key)
}

fn keys<L: LogicalUnit>(lu: &mut L, n: &Nexus) -> PrKeys {
    PrKeys::parse(&pr_in(lu, n, PrInAction::READ_KEYS).1).unwrap()
}

fn reservation<L: LogicalUnit>(lu: &mut L, n: &Nexus) -> Option<PrHolder> {
    PrReservation::parse(&pr_in(lu, n, PrInAction::READ_RESERVATION).1)
        .unwrap()
        .reservation
}

fn sense(c: &Completion) -> (SenseKey, Asc) {
    let s = Sense::parse(&c.sense).expect("sense");
    (s.key, s.asc)
}

const GOOD: Status = Status::GOOD;
const CONFLICT: Status = Status::RESERVATION_CONFLICT;
const WRITE10: [u8; 10] = [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const READ10: [u8; 10] = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];

fn disk() -> Reserved<MemDisk> {
    Reserved::new(MemDisk::new("PRDISK", 64, 512))
}

fn write_status<L: LogicalUnit>(lu: &mut L, n: &Nexus) -> Status {
    run(lu, n, &WRITE10, &[0x5a; 512], 0).0.status
}

fn read_status<L: LogicalUnit>(lu: &mut L, n: &Nexus) -> Status {
    run(lu, n, &READ10, &[], 512).0.status
}

#[test]
fn register_from_two_nexuses() {
    let (mut lu, a, b) = (disk(), nx("a"), nx("b"));
    assert_eq!(
        keys(&mut lu, &a),
        PrKeys {
            generation: 0,
            keys: vec![]
        }
    );
    assert_eq!(register(&mut lu, &a, 0xa1).status, GOOD);
    assert_eq!(register(&mut lu, &b, 0xb1).status, GOOD);
    assert_eq!(
        keys(&mut lu, &b),
        PrKeys {
            generation: 2,
            keys: vec![0xa1, 0xb1]
        }
    );
    // An unregistered nexus sending a non-zero key, a registered one the
    // wrong key: RESERVATION CONFLICT, generation unchanged (SPC-4 5.13.7).
    let c = nx("c");
    assert_eq!(
        pr_out(&mut lu, &c, PrOutAction::REGISTER, PrType(0), 0x99, 0xc1).status,
        CONFLICT
    );
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::REGISTER, PrType(0), 0xa1, 0xb2).status,
        CONFLICT
    );
    assert_eq!(keys(&mut lu, &a).generation, 2);
    // A new key under the right old one; then unregister with 0.
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::REGISTER, PrType(0), 0xb1, 0xb2).status,
        GOOD
    );
    assert_eq!(keys(&mut lu, &a).keys, vec![0xa1, 0xb2]);
    assert_eq!(
        pr_out(&mut lu, &a, PrOutAction::REGISTER, PrType(0), 0xa1, 0).status,
        GOOD
    );
    assert_eq!(
        keys(&mut lu, &a),
        PrKeys {
            generation: 4,
            keys: vec![0xb2]
        }
    );
}

#[test]
fn register_and_ignore_existing_key() {
    let (mut lu, a, b) = (disk(), nx("a"), nx("b"));
    let ignore = PrOutAction::REGISTER_AND_IGNORE;
    assert_eq!(
        pr_out(&mut lu, &a, ignore, PrType(0), 0x77, 0xa1).status,
        GOOD
    );
    assert_eq!(
        pr_out(&mut lu, &a, ignore, PrType(0), 0x77, 0xa2).status,
        GOOD
    );
    assert_eq!(pr_out(&mut lu, &b, ignore, PrType(0), 0, 0xb1).status, GOOD);
    assert_eq!(keys(&mut lu, &b).keys, vec![0xa2, 0xb1]);
    assert_eq!(
        pr_out(&mut lu, &a, ignore, PrType(0), 0x1234, 0).status,
        GOOD
    );
    assert_eq!(
        keys(&mut lu, &b),
        PrKeys {
            generation: 4,
            keys: vec![0xb1]
        }
    );
}

/// Register a and b, reserve `t` from a.
fn reserved_by_a(t: PrType) -> (Reserved<MemDisk>, Nexus, Nexus) {
    let (mut lu, a, b) = (disk(), nx("a"), nx("b"));
    register(&mut lu, &a, 0xa1);
    register(&mut lu, &b, 0xb1);
    assert_eq!(
        pr_out(&mut lu, &a, PrOutAction::RESERVE, t, 0xa1, 0).status,
        GOOD
    );
    (lu, a, b)
}

/// SPC-4 5.13.1: what a registered and an unregistered other nexus may
/// do under each type (libiscsi's PrinReserveAccess expectations too).
#[test]
fn conflict_table_for_every_type() {
    let cases = [
        // type, registered (read, write), unregistered (read, write)
        (PrType::WRITE_EXCLUSIVE, (true, false), (true, false)),
        (PrType::EXCLUSIVE_ACCESS, (false, false), (false, false)),
        (PrType::WE_REGISTRANTS_ONLY, (true, true), (true, false)),
        (PrType::EA_REGISTRANTS_ONLY, (true, true), (false, false)),
        (PrType::WE_ALL_REGISTRANTS, (true, true), (true, false)),
        (PrType::EA_ALL_REGISTRANTS, (true, true), (false, false)),
    ];
    let ok = |s: Status| s == GOOD;
    for (t, reg, unreg) in cases {
        let (mut lu, a, b) = reserved_by_a(t);
        assert_eq!(write_status(&mut lu, &a), GOOD, "{t}: holder writes");
        assert_eq!(read_status(&mut lu, &a), GOOD, "{t}: holder reads");
        assert_eq!(ok(read_status(&mut lu, &b)), reg.0, "{t}: registered read");
        assert_eq!(
            ok(write_status(&mut lu, &b)),
            reg.1,
            "{t}: registered write"
        );
        pr_out(&mut lu, &b, PrOutAction::REGISTER, PrType(0), 0xb1, 0);
        assert_eq!(
            ok(read_status(&mut lu, &b)),
            unreg.0,
            "{t}: unregistered read"
        );
        assert_eq!(
            ok(write_status(&mut lu, &b)),
            unreg.1,
            "{t}: unregistered write"
        );
        // Allowed under every type: INQUIRY, TEST UNIT READY, REQUEST
        // SENSE, READ CAPACITY, PERSISTENT RESERVE IN.
        for cdb in [
            &[0x12, 0, 0, 0, 36, 0][..],
            &[0, 0, 0, 0, 0, 0],
            &[3, 0, 0, 0, 18, 0],
            &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x5e, 0, 0, 0, 0, 0, 0, 0x10, 0, 0],
        ] {
            assert_eq!(
                run(&mut lu, &b, cdb, &[], 4096).0.status,
                GOOD,
                "{t}: {cdb:02x?}"
            );
        }
        // MODE SENSE: a read (WE types only); MODE SELECT: a write.
        let ms = run(&mut lu, &b, &[0x1a, 0, 0x3f, 0, 255, 0], &[], 255)
            .0
            .status;
        assert_eq!(ms != CONFLICT, lets_others_read(t), "{t}: MODE SENSE");
        let sel = run(&mut lu, &b, &[0x15, 0x10, 0, 0, 4, 0], &[0, 0, 0, 0], 0).0;
        assert_eq!(sel.status, CONFLICT, "{t}: MODE SELECT");
    }
}

/// The done-when of the tape library issue on a tape: WE blocks the
/// other initiator's WRITE(6) and lets it READ(6).
#[test]
fn write_exclusive_on_a_tape() {
    let mut lu = Reserved::new(MemTape::new("PRTAPE", 1 << 20));
    let (a, b) = (nx("a"), nx("b"));
    // The drive's own power-on attention, once per nexus.
    for n in [&a, &b] {
        run(&mut lu, n, &[0, 0, 0, 0, 0, 0], &[], 0);
    }
    pr_out(
        &mut lu,
        &a,
        PrOutAction::REGISTER_AND_IGNORE,
        PrType(0),
        0,
        0xa1,
    );
    assert_eq!(
        pr_out(
            &mut lu,
            &a,
            PrOutAction::RESERVE,
            PrType::WRITE_EXCLUSIVE,
            0xa1,
            0
        )
        .status,
        GOOD
    );
    let write6 = [0x0a, 0, 0, 0x02, 0, 0];
    assert_eq!(run(&mut lu, &a, &write6, &[7; 512], 0).0.status, GOOD);
    assert_eq!(run(&mut lu, &b, &write6, &[8; 512], 0).0.status, CONFLICT);
    assert_eq!(
        run(&mut lu, &b, &[0x01, 0, 0, 0, 0, 0], &[], 0).0.status,
        CONFLICT,
        "REWIND"
    );
    assert_eq!(
        run(&mut lu, &a, &[0x01, 0, 0, 0, 0, 0], &[], 0).0.status,
        GOOD
    );
    let (c, data) = run(&mut lu, &b, &[0x08, 0, 0, 0x02, 0, 0], &[], 512);
    assert_eq!((c.status, data), (GOOD, vec![7; 512]), "READ(6) passes WE");
    assert_eq!(
        run(&mut lu, &b, &[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 20)
            .0
            .status,
        GOOD
    );
}

#[test]
fn reserve_rules() {
    let (mut lu, a, b) = reserved_by_a(PrType::WRITE_EXCLUSIVE);
    let we = PrType::WRITE_EXCLUSIVE;
    // Holder again, same type: GOOD; another type: conflict.
    assert_eq!(
        pr_out(&mut lu, &a, PrOutAction::RESERVE, we, 0xa1, 0).status,
        GOOD
    );
    assert_eq!(
        pr_out(
            &mut lu,
            &a,
            PrOutAction::RESERVE,
            PrType::EXCLUSIVE_ACCESS,
            0xa1,
            0
        )
        .status,
        CONFLICT
    );
    // Another registrant, a wrong key, an unregistered nexus: conflict.
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::RESERVE, we, 0xb1, 0).status,
        CONFLICT
    );
    assert_eq!(
        pr_out(&mut lu, &a, PrOutAction::RESERVE, we, 0xb1, 0).status,
        CONFLICT
    );
    assert_eq!(
        pr_out(&mut lu, &nx("c"), PrOutAction::RESERVE, we, 0, 0).status,
        CONFLICT
    );
    let r = reservation(&mut lu, &b).unwrap();
    assert_eq!((r.key, r.pr_type), (0xa1, we));
    // RESERVE and RELEASE do not bump the generation (SPC-4 6.15.2).
    assert_eq!(keys(&mut lu, &a).generation, 2);
    // Bad type or scope: INVALID FIELD IN CDB, byte 2.
    let bad = pr_out(&mut lu, &a, PrOutAction::RESERVE, PrType(2), 0xa1, 0);
    assert_eq!(
        sense(&bad),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn release_rules_and_registrants_only_attention() {
    let (mut lu, a, b) = reserved_by_a(PrType::WE_REGISTRANTS_ONLY);
    let t = PrType::WE_REGISTRANTS_ONLY;
    // A registered non-holder: GOOD, nothing changes.
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::RELEASE, t, 0xb1, 0).status,
        GOOD
    );
    assert!(reservation(&mut lu, &a).is_some());
    // Unregistered: conflict. Holder with the wrong type: 26/04.
    assert_eq!(
        pr_out(&mut lu, &nx("c"), PrOutAction::RELEASE, t, 0, 0).status,
        CONFLICT
    );
    let wrong = pr_out(
        &mut lu,
        &a,
        PrOutAction::RELEASE,
        PrType::WRITE_EXCLUSIVE,
        0xa1,
        0,
    );
    assert_eq!(
        sense(&wrong),
        (SenseKey::ILLEGAL_REQUEST, state::INVALID_RELEASE)
    );
    assert_eq!(
        pr_out(&mut lu, &a, PrOutAction::RELEASE, t, 0xa1, 0).status,
        GOOD
    );
    assert_eq!(reservation(&mut lu, &a), None);
    // SPC-4 5.13.11.2: the other registrants learn RESERVATIONS RELEASED.
    let c = run(&mut lu, &b, &READ10, &[], 512).0;
    assert_eq!(
        sense(&c),
        (SenseKey::UNIT_ATTENTION, Asc::RESERVATIONS_RELEASED)
    );
    assert_eq!(
        read_status(&mut lu, &b),
        GOOD,
        "the attention is reported once"
    );
    assert_eq!(read_status(&mut lu, &a), GOOD, "not to the releaser");
}

#[test]
fn release_of_write_exclusive_tells_nobody() {
    let (mut lu, a, b) = reserved_by_a(PrType::WRITE_EXCLUSIVE);
    assert_eq!(
        pr_out(
            &mut lu,
            &a,
            PrOutAction::RELEASE,
            PrType::WRITE_EXCLUSIVE,
            0xa1,
            0
        )
        .status,
        GOOD
    );
    assert_eq!(write_status(&mut lu, &b), GOOD);
}

#[test]
fn holder_unregistering_releases() {
    let (mut lu, a, b) = reserved_by_a(PrType::EXCLUSIVE_ACCESS);
    assert_eq!(
        pr_out(&mut lu, &a, PrOutAction::REGISTER, PrType(0), 0xa1, 0).status,
        GOOD
    );
    assert_eq!(reservation(&mut lu, &b), None);
    assert_eq!(write_status(&mut lu, &b), GOOD);
}

#[test]
fn clear_removes_everything_and_tells_the_others() {
    let (mut lu, a, b) = reserved_by_a(PrType::EXCLUSIVE_ACCESS);
    assert_eq!(
        pr_out(&mut lu, &nx("c"), PrOutAction::CLEAR, PrType(0), 0, 0).status,
        CONFLICT
    );
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::CLEAR, PrType(0), 0xb1, 0).status,
        GOOD
    );
    assert_eq!(
        keys(&mut lu, &b),
        PrKeys {
            generation: 3,
            keys: vec![]
        }
    );
    assert_eq!(reservation(&mut lu, &b), None);
    let c = run(&mut lu, &a, &WRITE10, &[0; 512], 0).0;
    assert_eq!(
        sense(&c),
        (SenseKey::UNIT_ATTENTION, Asc::RESERVATIONS_PREEMPTED)
    );
    assert_eq!(write_status(&mut lu, &a), GOOD);
}

#[test]
fn preempt_takes_over_the_reservation() {
    let (mut lu, a, b) = reserved_by_a(PrType::WRITE_EXCLUSIVE);
    let ea = PrType::EXCLUSIVE_ACCESS;
    // A key of 0 or a key nobody holds.
    let zero = pr_out(&mut lu, &b, PrOutAction::PREEMPT, ea, 0xb1, 0);
    assert_eq!(
        sense(&zero),
        (
            SenseKey::ILLEGAL_REQUEST,
            Asc::INVALID_FIELD_IN_PARAMETER_LIST
        )
    );
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::PREEMPT, ea, 0xb1, 0x55).status,
        CONFLICT
    );
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::PREEMPT, ea, 0x55, 0xa1).status,
        CONFLICT
    );
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::PREEMPT, ea, 0xb1, 0xa1).status,
        GOOD
    );
    let r = reservation(&mut lu, &b).unwrap();
    assert_eq!((r.key, r.pr_type), (0xb1, ea));
    assert_eq!(keys(&mut lu, &b).keys, vec![0xb1]);
    // The preempted nexus: REGISTRATIONS PREEMPTED once, then conflicts.
    let c = run(&mut lu, &a, &READ10, &[], 512).0;
    assert_eq!(
        sense(&c),
        (SenseKey::UNIT_ATTENTION, Asc::REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(read_status(&mut lu, &a), CONFLICT);
    assert_eq!(write_status(&mut lu, &b), GOOD);
}

#[test]
fn preempt_without_a_reservation_removes_registrations() {
    let (mut lu, a, b) = (disk(), nx("a"), nx("b"));
    register(&mut lu, &a, 0xa1);
    register(&mut lu, &b, 0xb1);
    let t = PrType::EXCLUSIVE_ACCESS;
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::PREEMPT, t, 0xb1, 0xa1).status,
        GOOD
    );
    assert_eq!(
        keys(&mut lu, &b),
        PrKeys {
            generation: 3,
            keys: vec![0xb1]
        }
    );
    assert_eq!(reservation(&mut lu, &b), None, "no reservation is created");
}

#[test]
fn all_registrants_types() {
    let (mut lu, a, b) = reserved_by_a(PrType::EA_ALL_REGISTRANTS);
    let t = PrType::EA_ALL_REGISTRANTS;
    // SPC-4 6.15.3: the key is 0; every registrant holds it.
    assert_eq!(reservation(&mut lu, &b).unwrap().key, 0);
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::RESERVE, t, 0xb1, 0).status,
        GOOD
    );
    // PREEMPT with key 0 under an all-registrants type removes all others.
    let c = nx("c");
    register(&mut lu, &c, 0xc1);
    let we = PrType::WRITE_EXCLUSIVE;
    assert_eq!(
        pr_out(&mut lu, &b, PrOutAction::PREEMPT, we, 0xb1, 0).status,
        GOOD
    );
    assert_eq!(keys(&mut lu, &b).keys, vec![0xb1]);
    assert_eq!(
        reservation(&mut lu, &b).unwrap(),
        PrHolder {
            key: 0xb1,
            scope: 0,
            pr_type: we
        }
    );
    for n in [&a, &c] {
        let got = run(&mut lu, n, &WRITE10, &[0; 512], 0).0;
        assert_eq!(
            sense(&got),
            (SenseKey::UNIT_ATTENTION, Asc::REGISTRATIONS_PREEMPTED)
        );
    }
    // The last registrant leaving ends an all-registrants reservation.
    let (mut lu, a, b) = reserved_by_a(PrType::WE_ALL_REGISTRANTS);
    pr_out(&mut lu, &a, PrOutAction::REGISTER, PrType(0), 0xa1, 0);
    assert!(reservation(&mut lu, &b).is_some());
    pr_out(&mut lu, &b, PrOutAction::REGISTER, PrType(0), 0xb1, 0);
    assert_eq!(reservation(&mut lu, &b), None);
}

#[test]
fn parameter_list_checks() {
    let (mut lu, a) = (disk(), nx("a"));
    let cdb = PersistentReserveOut::new(PrOutAction::REGISTER, PrType(0));
    let p = PrOutParameters {
        service_action_key: 1,
        ..Default::default()
    };
    let short = run(&mut lu, &a, cdb.to_cdb().as_bytes(), &p.to_vec()[..20], 0).0;
    assert_eq!(
        sense(&short),
        (SenseKey::ILLEGAL_REQUEST, Asc::PARAMETER_LIST_LENGTH_ERROR)
    );
    let long = PersistentReserveOut {
        param_len: 28,
        ..cdb
    };
    let c = run(&mut lu, &a, long.to_cdb().as_bytes(), &[0; 28], 0).0;
    assert_eq!(
        sense(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::PARAMETER_LIST_LENGTH_ERROR)
    );
    for flags in [
        PrOutParameters { aptpl: true, ..p },
        PrOutParameters {
            spec_i_pt: true,
            ..p
        },
        PrOutParameters {
            all_tg_pt: true,
            ..p
        },
    ] {
        let c = run(&mut lu, &a, cdb.to_cdb().as_bytes(), &flags.to_vec(), 0).0;
        assert_eq!(
            sense(&c),
            (
                SenseKey::ILLEGAL_REQUEST,
                Asc::INVALID_FIELD_IN_PARAMETER_LIST
            )
        );
    }
    let moved = PersistentReserveOut::new(PrOutAction::REGISTER_AND_MOVE, PrType(1));
    let c = run(&mut lu, &a, moved.to_cdb().as_bytes(), &p.to_vec(), 0).0;
    assert_eq!(
        sense(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    assert_eq!(keys(&mut lu, &a).keys, Vec::<u64>::new());
}

#[test]
fn report_capabilities_and_full_status() {
    let (mut lu, a, b) = reserved_by_a(PrType::WRITE_EXCLUSIVE);
    let caps =
        PrCapabilities::parse(&pr_in(&mut lu, &b, PrInAction::REPORT_CAPABILITIES).1).unwrap();
    assert_eq!(caps, capabilities());
    assert_eq!(caps.type_mask, PrTypeMask::all());
    assert!(!caps.flags.contains(PrCapFlags::PTPL_C));
    let full = PrFullStatus::parse(&pr_in(&mut lu, &b, PrInAction::READ_FULL_STATUS).1).unwrap();
    assert_eq!(full.generation, 2);
    let d = &full.descriptors;
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].key, d[0].holder, d[0].pr_type),
        (0xa1, true, PrType::WRITE_EXCLUSIVE)
    );
    assert_eq!((d[1].key, d[1].holder), (0xb1, false));
    let tid = IscsiTransportId::parse(&d[0].transport_id).unwrap();
    assert_eq!(
        (tid.name.as_str(), tid.isid),
        (a.initiator.as_str(), Some(a.isid))
    );
    // The allocation length cuts the answer.
    let cdb = [0x5e, 0, 0, 0, 0, 0, 0, 0, 12, 0];
    assert_eq!(run(&mut lu, &a, &cdb, &[], 4096).0.data_in_len, 12);
    let bad = run(&mut lu, &a, &[0x5e, 7, 0, 0, 0, 0, 0, 0, 12, 0], &[], 4096).0;
    assert_eq!(
        sense(&bad),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn request_sense_returns_the_attention_and_inquiry_keeps_it() {
    let (mut lu, a, b) = reserved_by_a(PrType::WRITE_EXCLUSIVE);
    pr_out(
        &mut lu,
        &b,
        PrOutAction::PREEMPT,
        PrType::WRITE_EXCLUSIVE,
        0xb1,
        0xa1,
    );
    assert_eq!(
        run(&mut lu, &a, &[0x12, 0, 0, 0, 36, 0], &[], 36).0.status,
        GOOD
    );
    let (c, data) = run(&mut lu, &a, &[3, 0, 0, 0, 18, 0], &[], 18);
    assert_eq!(c.status, GOOD);
    let s = Sense::parse(&data).unwrap();
    assert_eq!(
        (s.key, s.asc),
        (SenseKey::UNIT_ATTENTION, Asc::REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(
        write_status(&mut lu, &a),
        CONFLICT,
        "taken: now the conflict"
    );
    // The frontend's own probes neither see nor take an attention.
    pr_out(&mut lu, &b, PrOutAction::CLEAR, PrType(0), 0xb1, 0);
    let mut buf = [0u8; 8];
    let p = lu.probe(&b, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &mut buf);
    assert_eq!(p.status, GOOD);
}

#[test]
fn reserve6_from_two_nexuses() {
    let (mut lu, a, b) = (disk(), nx("a"), nx("b"));
    let reserve = Reserve6.to_cdb();
    let release = Release6.to_cdb();
    let r = |lu: &mut Reserved<MemDisk>, n: &Nexus, c: &crate::scsi::Cdb| {
        run(lu, n, c.as_bytes(), &[], 0).0.status
    };
    assert_eq!(r(&mut lu, &a, &reserve), GOOD);
    assert_eq!(
        r(&mut lu, &a, &reserve),
        GOOD,
        "the holder may reserve again"
    );
    assert_eq!(r(&mut lu, &b, &reserve), CONFLICT);
    assert_eq!(
        r(&mut lu, &b, &release),
        GOOD,
        "a non-holder's RELEASE does nothing"
    );
    assert_eq!(
        run(&mut lu, &b, &[0x1a, 0, 0x3f, 0, 255, 0], &[], 255)
            .0
            .status,
        CONFLICT
    );
    assert_eq!(
        run(&mut lu, &a, &[0x1a, 0, 0x3f, 0, 255, 0], &[], 255)
            .0
            .status,
        GOOD
    );
    assert_eq!(
        run(&mut lu, &b, &[0x12, 0, 0, 0, 36, 0], &[], 36).0.status,
        GOOD
    );
    assert_eq!(
        run(&mut lu, &b, &[0, 0, 0, 0, 0, 0], &[], 0).0.status,
        CONFLICT
    );
    // Every PERSISTENT RESERVE command conflicts, even the holder's.
    assert_eq!(pr_in(&mut lu, &a, PrInAction::READ_KEYS).0.status, CONFLICT);
    assert_eq!(register(&mut lu, &a, 1).status, CONFLICT);
    // Released by the holder's nexus going away (SPC-2 5.5.1).
    lu.nexus_lost(&a);
    assert_eq!(write_status(&mut lu, &b), GOOD);
}

fn legacy(lu: &mut Reserved<MemDisk>, n: &Nexus, c: &crate::scsi::Cdb) -> Status {
    run(lu, n, c.as_bytes(), &[], 0).0.status
}

#[test]
fn reserve10_third_party_and_registrations() {
    let (mut lu, a, b) = (disk(), nx("a"), nx("b"));
    let r = legacy;
    let (reserve, release) = (Reserve6.to_cdb(), Release6.to_cdb());
    // RESERVE(10) as RESERVE(6); a third-party one is refused.
    let r10 = Reserve10::default().to_cdb();
    assert_eq!(r(&mut lu, &b, &r10), GOOD);
    assert_eq!(r(&mut lu, &a, &r10), CONFLICT);
    assert_eq!(r(&mut lu, &b, &Release10::default().to_cdb()), GOOD);
    let third = Reserve10 {
        flags: Reserve10::THIRD_PARTY,
    }
    .to_cdb();
    let c = run(&mut lu, &a, third.as_bytes(), &[], 0).0;
    assert_eq!(
        sense(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    // With a registration, RESERVE and RELEASE conflict (CRH 0).
    register(&mut lu, &a, 0xa1);
    assert_eq!(r(&mut lu, &b, &reserve), CONFLICT);
    assert_eq!(r(&mut lu, &a, &release), CONFLICT);
}

#[test]
fn registrations_survive_nexus_loss() {
    let (mut lu, a, b) = reserved_by_a(PrType::WRITE_EXCLUSIVE);
    lu.nexus_lost(&a);
    assert_eq!(reservation(&mut lu, &b).unwrap().key, 0xa1);
    assert_eq!(write_status(&mut lu, &b), CONFLICT);
    assert_eq!(write_status(&mut lu, &a), GOOD);
}

/// A unit whose WRITE(10) runs in the background until it is stopped.
struct Slow {
    started: Arc<AtomicBool>,
}

impl LogicalUnit for Slow {
    fn execute(&mut self, _: &[u8], _: &[u8], _: &mut [u8]) -> Completion {
        Completion::good(0)
    }

    fn background(&mut self, _: &Nexus, _: &[u8], _: &[u8]) -> Option<Background> {
        let started = self.started.clone();
        Some(Box::new(move |stop: &TaskStop| {
            started.store(true, Ordering::SeqCst);
            while !stop.is_stopped() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Completion::good(0)
        }))
    }
}

#[test]
fn preempt_and_abort_stops_the_preempted_tasks() {
    let started = Arc::new(AtomicBool::new(false));
    let mut lu = Reserved::new(Slow {
        started: started.clone(),
    });
    let (a, b) = (nx("a"), nx("b"));
    register(&mut lu, &a, 0xa1);
    register(&mut lu, &b, 0xb1);
    pr_out(
        &mut lu,
        &a,
        PrOutAction::RESERVE,
        PrType::WRITE_EXCLUSIVE,
        0xa1,
        0,
    );
    assert!(
        lu.background(&b, &WRITE10, &[]).is_none(),
        "b's write conflicts"
    );
    let job = lu
        .background(&a, &WRITE10, &[])
        .expect("a's write runs in the background");
    let own = lu
        .background(&b, &READ10, &[])
        .expect("b's read is allowed");
    let running = std::thread::spawn(move || job(&TaskStop::default()));
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let paa = PrOutAction::PREEMPT_AND_ABORT;
    assert_eq!(
        pr_out(&mut lu, &b, paa, PrType::EXCLUSIVE_ACCESS, 0xb1, 0xa1).status,
        GOOD
    );
    assert_eq!(running.join().unwrap().status, Status::TASK_ABORTED);
    // The preempting nexus's own task is not stopped; a task of the
    // preempted nexus not yet started is stopped as it starts.
    let stop = TaskStop::default();
    stop.stop();
    assert_eq!(own(&stop).status, GOOD);
    assert!(lu.tasks.lock().tasks.is_empty());
}

#[test]
fn preempted_before_it_starts() {
    let mut lu = Reserved::new(Slow {
        started: Arc::new(AtomicBool::new(false)),
    });
    let (a, b) = (nx("a"), nx("b"));
    register(&mut lu, &a, 0xa1);
    register(&mut lu, &b, 0xb1);
    pr_out(
        &mut lu,
        &a,
        PrOutAction::RESERVE,
        PrType::EXCLUSIVE_ACCESS,
        0xa1,
        0,
    );
    let job = lu.background(&a, &WRITE10, &[]).unwrap();
    let paa = PrOutAction::PREEMPT_AND_ABORT;
    assert_eq!(
        pr_out(&mut lu, &b, paa, PrType::EXCLUSIVE_ACCESS, 0xb1, 0xa1).status,
        GOOD
    );
    // The job sees its stop flag raised at once (else it would spin).
    assert_eq!(job(&TaskStop::default()).status, Status::TASK_ABORTED);
}

/// SAM-5 5.14: the unit's own Unit Attention is reported before a
/// RESERVATION CONFLICT and before this layer answers a PR command, and
/// each is reported once.
#[test]
fn the_units_attention_comes_before_a_conflict() {
    let mut lu = Reserved::new(MemTape::new("PRTAPE", 1 << 20));
    let (a, b) = (nx("a"), nx("b"));
    run(&mut lu, &a, &[0, 0, 0, 0, 0, 0], &[], 0);
    register(&mut lu, &a, 0xa1);
    let held = pr_out(
        &mut lu,
        &a,
        PrOutAction::RESERVE,
        PrType::EXCLUSIVE_ACCESS,
        0xa1,
        0,
    );
    assert_eq!(held.status, GOOD);
    // b has not been heard from since power on: 29/00 first, then the
    // conflict.
    let write6 = [0x0a, 0, 0, 0x02, 0, 0];
    let first = run(&mut lu, &b, &write6, &[8; 512], 0).0;
    assert_eq!(first.status, Status::CHECK_CONDITION);
    assert_eq!(
        sense(&first),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    assert_eq!(run(&mut lu, &b, &write6, &[8; 512], 0).0.status, CONFLICT);
    // A PR command from a nexus new to the unit sees the attention too.
    let c = nx("c");
    let (pr, _) = pr_in(&mut lu, &c, PrInAction::READ_KEYS);
    assert_eq!(sense(&pr), (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET));
    assert_eq!(keys(&mut lu, &c).keys, vec![0xa1]);
}
