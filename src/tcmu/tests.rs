use super::ring::tests::{FakeKernel, CMDR_OFF};
use super::*;
use crate::lu::MemTape;
use std::sync::{Arc, Mutex};

fn tape() -> SharedLu {
    Arc::new(Mutex::new(MemTape::new("TCMU0001", 1 << 20)))
}

fn device(k: &FakeKernel) -> Device<&ring::tests::VecMem> {
    Device::open("drive0", &k.mem, tape()).unwrap()
}

const SENSE_ILI: u8 = 0x20;

#[test]
fn inquiry_answers_a_tape_with_a_short_read_len() {
    let k = FakeKernel::new(4096, 4096);
    let (_, at) = k.command(&[0x12, 0, 0, 0, 255, 0], 255, &[]);
    let pass = device(&k).pass().unwrap();
    assert_eq!(pass.commands, 1);
    assert_eq!(k.status(at), 0);
    assert_eq!(k.data(at, 1)[0] & 0x1f, 0x01, "peripheral type: tape");
    let n = k.read_len(at);
    assert!((36..255).contains(&n), "read_len {n}");
    assert_eq!(k.uflags(at) & 0x2, 0x2, "READ_LEN flagged");
    assert_eq!(Mailbox::tail(&k.mem), Mailbox::head(&k.mem));
}

#[test]
fn blocks_go_through_the_ring_and_come_back() {
    let k = FakeKernel::new(4096, 8192);
    let block: Vec<u8> = (0..512u32).map(|i| (i * 7) as u8).collect();
    // The drive's first command sees its power-on Unit Attention.
    let (_, ua) = k.command(&[0x00, 0, 0, 0, 0, 0], 0, &[]);
    let (_, w) = k.command(&[0x0a, 0, 0, 0x02, 0x00, 0], 512, &block);
    let (_, f) = k.command(&[0x10, 0, 0, 0, 1, 0], 0, &[]);
    let (_, r) = k.command(&[0x01, 0, 0, 0, 0, 0], 0, &[]);
    let (_, rd) = k.command(&[0x08, 0x02, 0, 0x04, 0x00, 0], 1024, &[]);
    let (_, ili) = k.command(&[0x01, 0, 0, 0, 0, 0], 0, &[]);
    let (_, rd2) = k.command(&[0x08, 0x00, 0, 0x04, 0x00, 0], 1024, &[]);
    let mut d = device(&k);
    assert_eq!(d.pass().unwrap().commands, 7);
    assert_eq!(k.status(ua), 2);
    assert_eq!((k.sense(ua)[2] & 0x0f, k.sense(ua)[12]), (0x06, 0x29));
    for at in [w, f, r, rd, ili] {
        assert_eq!(k.status(at), 0, "entry at {at}");
    }
    // SILI: a short block is good, with the length read.
    assert_eq!(k.data(rd, 512), block);
    assert_eq!(k.read_len(rd), 512);
    // Without SILI: CHECK CONDITION with ILI, and the data still comes
    // back (READ_LEN with CHECK CONDITION, SSC-4 4.2.21.3).
    assert_eq!(k.status(rd2), 2);
    assert_eq!(k.sense(rd2)[2] & SENSE_ILI, SENSE_ILI);
    assert_eq!(k.read_len(rd2), 512);
    assert_eq!(k.data(rd2, 512), block);
}

#[test]
fn an_unknown_opcode_is_a_check_condition_not_a_hang() {
    let k = FakeKernel::new(4096, 4096);
    // REQUEST SENSE takes the drive's power-on Unit Attention first.
    k.command(&[0x03, 0, 0, 0, 18, 0], 18, &[]);
    let (_, at) = k.command(&[0xd7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0, &[]);
    let mut d = device(&k);
    assert_eq!(d.pass().unwrap().commands, 2);
    assert_eq!(k.status(at), 2);
    assert_eq!(k.sense(at)[2] & 0x0f, 0x05, "ILLEGAL REQUEST");
}

#[test]
fn an_unknown_ring_operation_is_flagged_and_padding_skipped() {
    let k = FakeKernel::new(4096, 0);
    let unknown = k.other(5);
    let tmr = k.other(2);
    let pass = device(&k).pass().unwrap();
    assert_eq!((pass.unknown, pass.skipped, pass.commands), (1, 1, 0));
    assert_eq!(k.uflags(unknown) & 1, 1, "UNKNOWN_OP");
    assert_eq!(k.uflags(tmr) & 1, 0);
}

#[test]
fn a_full_ring_that_wraps_is_served_in_order() {
    // A ring of 5 entries: three rounds of four commands wrap it (with
    // padding) several times.
    let k = FakeKernel::new(5 * 112 + 16, 1 << 16);
    let mut d = Device::open("drive0", &k.mem, tape()).unwrap();
    let mut done = 0;
    for round in 0..3u8 {
        k.reset_data();
        let ats: Vec<usize> = (0..4)
            .map(|_| k.command(&[0x00, 0, 0, 0, 0, round], 0, &[]).1)
            .collect();
        let pass = d.pass().unwrap();
        done += pass.commands;
        assert!(ats.iter().all(|&at| k.status(at) == 0 || k.status(at) == 2));
        assert_eq!(Mailbox::tail(&k.mem), Mailbox::head(&k.mem));
    }
    assert_eq!(done, 12);
}

proptest::proptest! {
    /// Garbage in the ring never panics the handler and never makes it
    /// write outside the mapping (VecMem would refuse; the pass errs).
    #[test]
    fn garbage_rings_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..1024),
                                 head in 0u32..1024) {
        let k = FakeKernel::new(1024, 1024);
        k.mem.write(CMDR_OFF as usize, &bytes);
        k.mem.write(12, &(head & !7).to_ne_bytes());
        let mut d = device(&k);
        let _ = d.pass();
    }
}
