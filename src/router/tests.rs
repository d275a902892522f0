//! The copy manager against in-memory disks and tapes.

use std::sync::{Arc, Mutex};

use super::*;
use crate::lu::Identity;
use crate::lu::{Completion, LogicalUnit, MemDisk, MemTape, Nexus, TapeObject};
use crate::scsi::sense::{Asc, Sense, SenseKey, SenseKeySpecific};
use crate::scsi::spc::{Designator, DesignatorType, DeviceIdentification, SupportedVpdPages};
use crate::scsi::ssc::{Rewind, Write6};
use crate::scsi::xcopy::{
    list_id_usage, CopyAborted, CopyEnd, CopyManagerStatus, CopyStatus, Cscd, DeviceParams,
    FailedSegmentDetails, OperatingParameters, RcrAction, ReceiveCopyResults, ReceiveData, Segment,
    SegmentKind, ThirdPartyCopyVpd, XcopyParams,
};
use crate::scsi::{CdbCodec, DeviceType, Lba, Status, Wire};
use crate::transport::memory::MemoryTransport;

/// A unit the test keeps a handle on while the router owns its transport.
#[derive(Clone)]
struct Shared<L>(Arc<Mutex<L>>);

impl<L: LogicalUnit> LogicalUnit for Shared<L> {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        self.0.lock().unwrap().execute(cdb, data_out, data_in)
    }
}

/// A tape without LOCATE.
struct NoLocate(MemTape);

impl LogicalUnit for NoLocate {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        if cdb[0] == 0x2b {
            return Completion::check(Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_OPCODE));
        }
        self.0.execute(cdb, data_out, data_in)
    }
}

fn naa(dt: DeviceType, serial: &str) -> Designator {
    let id = Identity::new(dt, "x", serial);
    Designator::lu_binary(DesignatorType::NAA, id.naa.to_vec())
}

fn disk_cscd(serial: &str) -> Cscd {
    Cscd::identification(
        &naa(DeviceType::DISK, serial),
        DeviceType::DISK,
        DeviceParams::block(512),
    )
    .unwrap()
}

fn tape_cscd(serial: &str) -> Cscd {
    Cscd::identification(
        &naa(DeviceType::TAPE, serial),
        DeviceType::TAPE,
        DeviceParams::Stream {
            pad: false,
            fixed: false,
            stream_block_len: 0,
        },
    )
    .unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Copy rights as a user would write them: `iqn.test:host` may use the
/// test disks D1 and D2 and the tape T1 both ways; nobody else anything.
fn host_rights() -> CopyRights {
    let hex = |d: Designator| {
        d.value
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let lu = |d| LuEntry {
        designator: Some(hex(d)),
        target: None,
        lun: None,
        role: Role::Both,
    };
    let rule = RuleEntry {
        initiators: vec!["iqn.test:host".into()],
        lus: vec![
            lu(naa(DeviceType::DISK, "D1")),
            lu(naa(DeviceType::DISK, "D2")),
            lu(naa(DeviceType::TAPE, "T1")),
        ],
    };
    CopyRights::Acl(CopyAcl::new(&[rule], &Default::default()).unwrap())
}

struct Rig {
    cm: CopyManager,
    disk: Shared<MemDisk>,
    tape: Shared<MemTape>,
}

/// A router with a 4096-block disk "D1" full of a pattern and a 64 MiB
/// tape "T1"; `tape_dies` stops the tape's transport after that many
/// commands (the probe takes 5).
fn rig_with(tape: MemTape, tape_dies: Option<u64>) -> Rig {
    let mut d = MemDisk::new("D1", 4096, 512);
    let p = pattern(d.data().len(), 7);
    d.data_mut().copy_from_slice(&p);
    let disk = Shared(Arc::new(Mutex::new(d)));
    let tape = Shared(Arc::new(Mutex::new(tape)));
    let mut b = Backends::new();
    b.add(Box::new(MemoryTransport::new("disk D1", disk.clone())))
        .unwrap();
    let mut tt = MemoryTransport::new("tape T1", tape.clone());
    tt.die_after = tape_dies;
    b.add(Box::new(tt)).unwrap();
    let cm = CopyManager::new(
        CopyManagerConfig {
            serial: "CM1".into(),
            own_blocks: 2048,
            rights: host_rights(),
            ..CopyManagerConfig::default()
        },
        b,
    );
    Rig { cm, disk, tape }
}

fn rig() -> Rig {
    rig_with(MemTape::new("T1", 64 << 20), None)
}

fn nexus(isid: u64) -> Nexus {
    Nexus {
        initiator: "iqn.test:host".into(),
        isid,
        target: "iqn.test:router".into(),
    }
}

fn xcopy(cm: &mut CopyManager, n: &Nexus, p: &XcopyParams) -> Completion {
    let list = p.to_vec();
    cm.execute_for(n, p.cdb().to_cdb().as_bytes(), &list, &mut [])
}

fn xcopy_raw(cm: &mut CopyManager, list: &[u8]) -> Completion {
    let cdb = crate::scsi::xcopy::ExtendedCopy {
        param_len: list.len() as u32,
    };
    cm.execute_for(&nexus(1), cdb.to_cdb().as_bytes(), list, &mut [])
}

fn rcr(cm: &mut CopyManager, n: &Nexus, action: RcrAction, list_id: u8) -> (Completion, Vec<u8>) {
    let cdb = ReceiveCopyResults {
        action,
        list_id,
        alloc_len: 4096,
    };
    let mut buf = vec![0u8; 4096];
    let c = cm.execute_for(n, cdb.to_cdb().as_bytes(), &[], &mut buf);
    buf.truncate(c.data_in_len);
    (c, buf)
}

fn sense(c: &Completion) -> Sense {
    assert_eq!(c.status, Status::CHECK_CONDITION, "{c:?}");
    Sense::parse(&c.sense).unwrap()
}

fn aborted(c: &Completion) -> CopyAborted {
    assert_eq!(sense(c).key, SenseKey::COPY_ABORTED, "{}", sense(c));
    CopyAborted::from_sense_bytes(&c.sense).unwrap()
}

fn seg(cat: bool, kind: SegmentKind) -> Segment {
    Segment {
        cat,
        dc: false,
        kind,
    }
}

fn b2s(cat: bool, blocks: u16, lba: u64, stream_len: u32) -> Segment {
    seg(
        cat,
        SegmentKind::BlockToStream {
            src: 0,
            dst: 1,
            stream_len,
            blocks,
            lba: Lba(lba),
        },
    )
}

fn inline(cat: bool, off: u64, len: u32, stream_len: u32) -> Segment {
    seg(
        cat,
        SegmentKind::InlineToStream {
            dst: 1,
            stream_len,
            inline_len: len,
            inline_offset: off,
        },
    )
}

fn list(usage: u8, list_id: u8, segments: Vec<Segment>, inline_data: Vec<u8>) -> XcopyParams {
    XcopyParams {
        list_id,
        str_: false,
        list_id_usage: usage,
        priority: 0,
        cscds: vec![disk_cscd("D1"), tape_cscd("T1")],
        segments,
        inline_data,
    }
}

fn tape_blocks(t: &Shared<MemTape>) -> Vec<TapeObject> {
    t.0.lock().unwrap().objects().to_vec()
}

/// Header+payload records through 04h(CAT=1) + 00h(CAT=0) pairs, then a
/// filemark: one tape block per record, and the held CRC32Cs match.
#[test]
fn records_are_header_plus_payload_blocks_with_held_crcs() {
    let mut r = rig();
    let n = nexus(1);
    let per = 64u16; // 32 KiB payload per record
    let payload = per as u32 * 512;
    let mut segs = Vec::new();
    let mut headers = Vec::new();
    for k in 0..3u64 {
        headers.extend_from_slice(&pattern(48, 100 + k as u8));
        segs.push(inline(true, k * 48, 48, 48 + payload));
        segs.push(b2s(false, per, 10 + k * per as u64, 48 + payload));
    }
    segs.push(seg(
        false,
        SegmentKind::WriteFilemarks {
            dst: 1,
            wsmk: false,
            immed: false,
            count: 1,
        },
    ));
    let p = list(list_id_usage::HOLD, 5, segs, headers.clone());
    let c = xcopy(&mut r.cm, &n, &p);
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));

    let disk = r.disk.0.lock().unwrap().data().to_vec();
    let objs = tape_blocks(&r.tape);
    assert_eq!(objs.len(), 4);
    let mut crcs = Vec::new();
    for k in 0..3usize {
        let TapeObject::Block(b) = &objs[k] else {
            panic!("object {k} is not a block")
        };
        let lba = 10 + k * per as usize;
        let mut want = headers[k * 48..k * 48 + 48].to_vec();
        want.extend_from_slice(&disk[lba * 512..(lba + per as usize) * 512]);
        assert_eq!(b, &want, "record {k}");
        crcs.push(crc32c::crc32c(b));
    }
    assert_eq!(objs[3], TapeObject::Filemark);
    assert_eq!(r.cm.held_crcs(&n, 5).unwrap(), crcs);

    // RECEIVE DATA: AVAILABLE DATA 4*N, then the CRC32Cs big-endian.
    let (c, data) = rcr(&mut r.cm, &n, RcrAction::RECEIVE_DATA, 5);
    assert_eq!(c.status, Status::GOOD);
    let mut golden = vec![0, 0, 0, 12];
    for crc in &crcs {
        golden.extend_from_slice(&crc.to_be_bytes());
    }
    assert_eq!(data, golden);
    assert_eq!(ReceiveData::parse(&data).unwrap().available_data, 12);

    // COPY STATUS: completed good, 7 segments, the bytes written.
    let (c, data) = rcr(&mut r.cm, &n, RcrAction::COPY_STATUS, 5);
    assert_eq!(c.status, Status::GOOD);
    let bytes = 3 * (48 + payload);
    let mut golden = vec![0, 0, 0, 8, 0x01, 0, 7, 0];
    golden.extend_from_slice(&bytes.to_be_bytes());
    assert_eq!(data, golden);
    let st = CopyStatus::parse(&data).unwrap();
    assert_eq!(st.status, CopyManagerStatus::COMPLETED_GOOD);

    // FAILED SEGMENT DETAILS of a good copy: nothing.
    let (_, data) = rcr(&mut r.cm, &n, RcrAction::FAILED_SEGMENT_DETAILS, 5);
    assert_eq!(data, [0, 0, 0, 0]);
}

/// A payload larger than one stream block is cut into full blocks and a
/// short last one (CAT=0); with CAT=1 the rest waits for the next segment.
#[test]
fn stream_blocks_split_and_carry() {
    let mut r = rig();
    // 3 blocks (1536 bytes) in 1000-byte transfers: 1000 + 536.
    let p = list(
        list_id_usage::DISCARD,
        1,
        vec![b2s(false, 3, 0, 1000)],
        vec![],
    );
    assert_eq!(xcopy(&mut r.cm, &nexus(1), &p).status, Status::GOOD);
    // CAT=1 then CAT=0: 536 bytes carried into the next segment: 1000,
    // 1000 (536 + 464 of the next), 584 short.
    let p = list(
        list_id_usage::DISCARD,
        1,
        vec![b2s(true, 3, 0, 1000), b2s(false, 2, 3, 1000)],
        vec![],
    );
    assert_eq!(xcopy(&mut r.cm, &nexus(1), &p).status, Status::GOOD);
    let lens: Vec<usize> = tape_blocks(&r.tape)
        .iter()
        .map(|o| match o {
            TapeObject::Block(b) => b.len(),
            TapeObject::Filemark => 0,
        })
        .collect();
    assert_eq!(lens, [1000, 536, 1000, 1000, 560]);
    let disk = r.disk.0.lock().unwrap().data()[..2560].to_vec();
    let objs = tape_blocks(&r.tape);
    let TapeObject::Block(b) = &objs[3] else {
        panic!()
    };
    assert_eq!(b[..], disk[1000..2000]);
    // Residual at the end of a command is written, not lost.
    let p = list(
        list_id_usage::DISCARD,
        1,
        vec![b2s(true, 1, 0, 1000)],
        vec![],
    );
    assert_eq!(xcopy(&mut r.cm, &nexus(1), &p).status, Status::GOOD);
    assert_eq!(tape_blocks(&r.tape).len(), 6);
}

fn tape_write(t: &Shared<MemTape>, data: &[u8]) {
    let c = t.0.lock().unwrap().execute(
        Write6::variable(data.len() as u32).to_cdb().as_bytes(),
        data,
        &mut [],
    );
    assert_eq!(c.status, Status::GOOD);
}

fn tape_rewind(t: &Shared<MemTape>) {
    let c =
        t.0.lock()
            .unwrap()
            .execute(Rewind { immed: false }.to_cdb().as_bytes(), &[], &mut []);
    assert_eq!(c.status, Status::GOOD);
}

/// 11h to end of data appends after what the tape holds.
#[test]
fn space_to_end_of_data_appends() {
    let mut r = rig();
    tape_write(&r.tape, b"old one");
    tape_write(&r.tape, b"old two");
    tape_rewind(&r.tape);
    let p = list(
        list_id_usage::DISCARD,
        1,
        vec![
            seg(
                false,
                SegmentKind::Space {
                    dst: 1,
                    code: 3,
                    count: 0,
                },
            ),
            inline(false, 0, 5, 100),
        ],
        b"new!!".to_vec(),
    );
    assert_eq!(xcopy(&mut r.cm, &nexus(1), &p).status, Status::GOOD);
    assert_eq!(
        tape_blocks(&r.tape),
        [
            TapeObject::Block(b"old one".to_vec()),
            TapeObject::Block(b"old two".to_vec()),
            TapeObject::Block(b"new!!".to_vec()),
        ]
    );
}

/// 06h skips stream data, 01h copies the next blocks to the disk, 12h
/// locates on a tape that has LOCATE.
#[test]
fn stream_to_block_discard_and_locate() {
    let mut r = rig();
    let a = pattern(1024, 1);
    let b = pattern(1024, 2);
    let c = pattern(1024, 3);
    for x in [&a, &b, &c] {
        tape_write(&r.tape, x);
    }
    let p = XcopyParams {
        cscds: vec![disk_cscd("D1"), tape_cscd("T1")],
        ..list(
            list_id_usage::DISCARD,
            2,
            vec![
                seg(
                    false,
                    SegmentKind::Locate {
                        dst: 1,
                        object_id: 0,
                    },
                ),
                seg(
                    false,
                    SegmentKind::StreamToDiscard {
                        src: 1,
                        stream_len: 1024,
                        byte_count: 1024,
                    },
                ),
                seg(
                    false,
                    SegmentKind::StreamToBlock {
                        src: 1,
                        dst: 0,
                        stream_len: 1024,
                        blocks: 4,
                        lba: Lba(100),
                    },
                ),
            ],
            vec![],
        )
    };
    let done = xcopy(&mut r.cm, &nexus(1), &p);
    assert_eq!(done.status, Status::GOOD, "{:?}", Sense::parse(&done.sense));
    let disk = r.disk.0.lock().unwrap().data()[100 * 512..104 * 512].to_vec();
    assert_eq!(disk[..1024], b[..]);
    assert_eq!(disk[1024..], c[..]);
}

/// 02h between two backend disks and within the router's own disk; 0Ah
/// with byte offsets on the own disk.
#[test]
fn block_to_block_backend_and_own() {
    let mut r = rig();
    let d2 = Shared(Arc::new(Mutex::new(MemDisk::new("D2", 4096, 512))));
    r.cm.backends_mut()
        .add(Box::new(MemoryTransport::new("disk D2", d2.clone())))
        .unwrap();
    let own = Cscd::identification(
        &Designator::lu_binary(DesignatorType::NAA, r.cm.naa().to_vec()),
        DeviceType::DISK,
        DeviceParams::block(512),
    )
    .unwrap();
    let p = XcopyParams {
        list_id: 3,
        str_: false,
        list_id_usage: list_id_usage::DISCARD,
        priority: 0,
        cscds: vec![disk_cscd("D1"), disk_cscd("D2"), own],
        segments: vec![
            // D1 0..2048 blocks (1 MiB, more than one chunk) to D2 at 8.
            Segment::block_to_block(0, 1, 2048, Lba(0), Lba(8)),
            // D1 blocks 4..8 to the own disk at 0, then within it.
            Segment::block_to_block(0, 2, 4, Lba(4), Lba(0)),
            Segment::block_to_block(2, 2, 4, Lba(0), Lba(100)),
        ],
        inline_data: vec![],
    };
    let c = xcopy(&mut r.cm, &nexus(1), &p);
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
    let src = r.disk.0.lock().unwrap().data().to_vec();
    assert_eq!(
        d2.0.lock().unwrap().data()[8 * 512..2056 * 512],
        src[..1 << 20]
    );
    // Read the own disk back through READ(10).
    let mut buf = vec![0u8; 2048];
    let read = crate::scsi::sbc::Read10::new(Lba(100), 4).unwrap();
    let c =
        r.cm.execute_for(&nexus(1), read.to_cdb().as_bytes(), &[], &mut buf);
    assert_eq!(c.status, Status::GOOD);
    assert_eq!(buf[..], src[4 * 512..8 * 512]);

    // 0Ah: 700 bytes from own byte 100*512+3 to own byte 10*512+5.
    let mut off = vec![0x0a, 0, 0, 0x1c, 0, 0, 0, 0];
    off.extend_from_slice(&700u32.to_be_bytes());
    off.extend_from_slice(&100u64.to_be_bytes());
    off.extend_from_slice(&10u64.to_be_bytes());
    off.extend_from_slice(&3u16.to_be_bytes());
    off.extend_from_slice(&5u16.to_be_bytes());
    let mut raw = vec![0, 0x10, 0, 32, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0];
    raw.extend_from_slice(&p.cscds[2].to_vec());
    raw.extend_from_slice(&off);
    let c = xcopy_raw(&mut r.cm, &raw);
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
    let mut buf = vec![0u8; 1024];
    let read = crate::scsi::sbc::Read10::new(Lba(10), 2).unwrap();
    r.cm.execute_for(&nexus(1), read.to_cdb().as_bytes(), &[], &mut buf);
    assert_eq!(buf[5..705], src[4 * 512 + 3..4 * 512 + 703]);
}

/// The tape's target dies mid-copy: COPY ABORTED 0D/02 naming the
/// segment, and RECEIVE COPY RESULTS tells the same.
#[test]
fn tape_dies_mid_copy() {
    // Probe: INQUIRY, VPD 83, RSOC, INQUIRY, MODE SENSE = 5 commands; then
    // three block writes succeed. The drive's power-on Unit Attention is
    // taken first (TEST UNIT READY), so no retry of it counts.
    let mut t = MemTape::new("T1", 64 << 20);
    let ua = t.execute(&[0, 0, 0, 0, 0, 0], &[], &mut []);
    assert_eq!(
        Sense::parse(&ua.sense).map(|s| (s.key, s.asc)),
        Ok((SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET))
    );
    let mut r = rig_with(t, Some(8));
    let n = nexus(1);
    let segs = (0..6).map(|k| b2s(false, 8, k * 8, 4096)).collect();
    let c = xcopy(&mut r.cm, &n, &list(list_id_usage::HOLD, 9, segs, vec![]));
    let a = aborted(&c);
    assert_eq!(sense(&c).asc, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE);
    assert_eq!(a.segment, Some(3));
    assert_eq!(tape_blocks(&r.tape).len(), 3);
    let (_, data) = rcr(&mut r.cm, &n, RcrAction::COPY_STATUS, 9);
    let st = CopyStatus::parse(&data).unwrap();
    assert_eq!(st.status, CopyManagerStatus::COMPLETED_ERRORS);
    assert_eq!(st.segments_processed, 3);
    assert_eq!(st.transfer_count, 3 * 4096);
    // Failed segment details carry the same sense.
    let (_, data) = rcr(&mut r.cm, &n, RcrAction::FAILED_SEGMENT_DETAILS, 9);
    let f = FailedSegmentDetails::parse(&data).unwrap();
    let f = f.failed.unwrap();
    assert_eq!(f.status, Status::CHECK_CONDITION);
    assert_eq!(f.sense, c.sense);
    assert_eq!(data.len(), 60 + c.sense.len());
    assert_eq!(&data[0..4], &((56 + c.sense.len()) as u32).to_be_bytes());
    // Three CRCs were held for the blocks that reached the tape.
    assert_eq!(r.cm.held_crcs(&n, 9).unwrap().len(), 3);
}

/// An E4h designator nobody has: COPY ABORTED 0D/02 for the first segment
/// that needs it, before any data moves.
#[test]
fn unknown_designator() {
    let mut r = rig();
    let mut p = list(
        list_id_usage::DISCARD,
        1,
        vec![inline(false, 0, 4, 100), b2s(false, 1, 0, 512)],
        b"abcd".to_vec(),
    );
    p.cscds[0] = disk_cscd("NOBODY");
    let c = xcopy(&mut r.cm, &nexus(1), &p);
    let a = aborted(&c);
    assert_eq!(sense(&c).asc, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE);
    assert_eq!(a.segment, Some(1));
    assert_eq!(a.field_pointer.unwrap().field, 16 + 8);
    assert!(tape_blocks(&r.tape).is_empty());
}

/// A full tape: COPY ABORTED with the tape's end-of-medium sense embedded
/// as destination sense.
#[test]
fn tape_full() {
    let mut r = rig_with(MemTape::new("T1", 20_000).with_early_warning(0), None);
    let segs = (0..8).map(|k| b2s(false, 8, k * 8, 4096)).collect();
    let c = xcopy(
        &mut r.cm,
        &nexus(1),
        &list(list_id_usage::DISCARD, 1, segs, vec![]),
    );
    let a = aborted(&c);
    assert_eq!(a.segment, Some(4));
    assert_eq!(a.embedded_from, Some(CopyEnd::Destination));
    let inner = Sense::parse(&a.embedded).unwrap();
    assert_eq!(inner.key, SenseKey::VOLUME_OVERFLOW);
    assert!(inner.eom);

    // Early warning: the block is written, then the copy stops.
    let mut r = rig_with(MemTape::new("T1", 20_000).with_early_warning(10_000), None);
    let segs = (0..8).map(|k| b2s(false, 8, k * 8, 4096)).collect();
    let c = xcopy(
        &mut r.cm,
        &nexus(1),
        &list(list_id_usage::DISCARD, 1, segs, vec![]),
    );
    let a = aborted(&c);
    assert_eq!(a.segment, Some(2));
    let inner = Sense::parse(&a.embedded).unwrap();
    assert!(inner.eom);
    assert_eq!(tape_blocks(&r.tape).len(), 3);
}

fn refused(c: &Completion) -> (Asc, Option<SenseKeySpecific>) {
    let s = sense(c);
    assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST, "{s}");
    (s.asc, s.sense_key_specific)
}

/// Lists beyond the limits, and malformed ones, get the sense SPC-4 names.
#[test]
fn limits_and_malformed_lists() {
    let mut r = rig();
    let lim = RouterLimits::default();
    // Too many CSCDs.
    let mut p = list(
        list_id_usage::DISCARD,
        1,
        vec![inline(false, 0, 1, 1)],
        vec![1],
    );
    p.cscds = vec![disk_cscd("D1"); lim.max_cscds as usize + 1];
    p.cscds[1] = tape_cscd("T1");
    let c = xcopy(&mut r.cm, &nexus(1), &p);
    assert_eq!(refused(&c).0, Asc::TOO_MANY_TARGET_DESCRIPTORS);
    // Too many segments.
    let p = list(
        list_id_usage::DISCARD,
        1,
        vec![inline(false, 0, 1, 1); lim.max_segments as usize + 1],
        vec![1],
    );
    let c = xcopy(&mut r.cm, &nexus(1), &p);
    assert_eq!(refused(&c).0, Asc::TOO_MANY_SEGMENT_DESCRIPTORS);
    // Descriptor lists longer than the maximum: PARAMETER LIST LENGTH ERROR.
    let p = list(
        list_id_usage::DISCARD,
        1,
        vec![b2s(false, 1, 0, 512); 2800],
        vec![],
    );
    let c = xcopy(&mut r.cm, &nexus(1), &p);
    assert_eq!(refused(&c).0, Asc::PARAMETER_LIST_LENGTH_ERROR);
    // A list cut short of its own lengths.
    let good = list(
        list_id_usage::DISCARD,
        1,
        vec![b2s(false, 1, 0, 512)],
        vec![],
    );
    let raw = good.to_vec();
    let c = xcopy_raw(&mut r.cm, &raw[..raw.len() - 1]);
    assert_eq!(refused(&c).0, Asc::PARAMETER_LIST_LENGTH_ERROR);
    let c = xcopy_raw(&mut r.cm, &raw[..10]);
    assert_eq!(refused(&c).0, Asc::PARAMETER_LIST_LENGTH_ERROR);
    // Unsupported CSCD type (E0h) and segment type (03h), pointed at.
    let mut bad = raw.clone();
    bad[16] = 0xe0;
    let (asc, sks) = refused(&xcopy_raw(&mut r.cm, &bad));
    assert_eq!(asc, Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE);
    assert_eq!(
        sks,
        Some(SenseKeySpecific::FieldPointer {
            cd: false,
            bpv: false,
            bit: 0,
            field: 16
        })
    );
    // A well-formed 03h (20 bytes) in a segment list of 20 bytes.
    let mut bad = raw[..raw.len() - 4].to_vec();
    bad[11] = 20;
    bad[80] = 0x03;
    bad[83] = 16;
    let (asc, sks) = refused(&xcopy_raw(&mut r.cm, &bad));
    assert_eq!(asc, Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE);
    assert!(matches!(
        sks,
        Some(SenseKeySpecific::FieldPointer { field: 80, .. })
    ));
    // LIST ID USAGE 01b is reserved; 11b needs list ID 0.
    let mut bad = raw.clone();
    bad[1] = 0x08;
    let (asc, sks) = refused(&xcopy_raw(&mut r.cm, &bad));
    assert_eq!(asc, Asc::INVALID_FIELD_IN_PARAMETER_LIST);
    assert!(matches!(
        sks,
        Some(SenseKeySpecific::FieldPointer {
            field: 1,
            bpv: true,
            bit: 4,
            ..
        })
    ));
    let mut bad = raw.clone();
    bad[1] = 0x18;
    bad[0] = 4;
    assert_eq!(
        refused(&xcopy_raw(&mut r.cm, &bad)).0,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST
    );
    // A stream transfer above the maximum.
    let p = list(
        list_id_usage::DISCARD,
        1,
        vec![b2s(false, 1, 0, lim.max_stream_transfer + 1)],
        vec![],
    );
    let (asc, sks) = refused(&xcopy(&mut r.cm, &nexus(1), &p));
    assert_eq!(asc, Asc::INVALID_FIELD_IN_PARAMETER_LIST);
    assert!(matches!(
        sks,
        Some(SenseKeySpecific::FieldPointer { field: 89, .. })
    ));
    // Inline data the segment overruns.
    let p = list(
        list_id_usage::DISCARD,
        1,
        vec![inline(false, 2, 4, 10)],
        vec![0; 5],
    );
    assert_eq!(
        refused(&xcopy(&mut r.cm, &nexus(1), &p)).0,
        Asc::INLINE_DATA_LENGTH_EXCEEDED
    );
    // Held CRCs beyond the HELD DATA LIMIT (1 MiB = 262144 blocks):
    // 2048 segments of 128 one-byte blocks... too many; use inline.
    let p = list(
        list_id_usage::HOLD,
        1,
        vec![inline(false, 0, 200_000, 1); 2],
        vec![0; 200_000],
    );
    assert_eq!(
        refused(&xcopy(&mut r.cm, &nexus(1), &p)).0,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST
    );
    // A disk CSCD whose block length is not the disk's.
    let mut p = list(
        list_id_usage::DISCARD,
        1,
        vec![b2s(false, 1, 0, 512)],
        vec![],
    );
    p.cscds[0].device_params = DeviceParams::block(4096);
    let (asc, sks) = refused(&xcopy(&mut r.cm, &nexus(1), &p));
    assert_eq!(asc, Asc::INVALID_FIELD_IN_PARAMETER_LIST);
    assert!(matches!(
        sks,
        Some(SenseKeySpecific::FieldPointer { field: 45, .. })
    ));
    // Nothing reached the tape, and a PARAMETER LIST LENGTH of 0 is GOOD.
    assert!(tape_blocks(&r.tape).is_empty());
    assert_eq!(xcopy_raw(&mut r.cm, &[]).status, Status::GOOD);
}

/// LOCATE on a tape without it: the first try aborts with the tape's
/// INVALID COMMAND OPERATION CODE, later lists are refused up front.
#[test]
fn locate_refused_cleanly() {
    let mut b = Backends::new();
    b.add(Box::new(MemoryTransport::new(
        "tape T1",
        NoLocate(MemTape::new("T1", 1 << 20)),
    )))
    .unwrap();
    let cfg = CopyManagerConfig {
        rights: host_rights(),
        ..CopyManagerConfig::default()
    };
    let mut cm = CopyManager::new(cfg, b);
    let p = XcopyParams {
        cscds: vec![tape_cscd("T1")],
        segments: vec![seg(
            false,
            SegmentKind::Locate {
                dst: 0,
                object_id: 3,
            },
        )],
        ..list(list_id_usage::DISCARD, 1, vec![], vec![])
    };
    let a = aborted(&xcopy(&mut cm, &nexus(1), &p));
    assert_eq!(a.segment, Some(0));
    assert_eq!(Sense::parse(&a.embedded).unwrap().asc, Asc::INVALID_OPCODE);
    let (asc, sks) = refused(&xcopy(&mut cm, &nexus(1), &p));
    assert_eq!(asc, Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE);
    assert!(matches!(
        sks,
        Some(SenseKeySpecific::FieldPointer { field: 48, .. })
    ));
}

/// List IDs are per I_T nexus; results of 10b lists are not held.
#[test]
fn nexuses_keep_separate_list_ids() {
    let mut r = rig();
    let (a, b) = (nexus(1), nexus(2));
    let one = list(
        list_id_usage::HOLD,
        7,
        vec![inline(false, 0, 3, 10)],
        b"one".to_vec(),
    );
    let two = list(
        list_id_usage::HOLD,
        7,
        vec![inline(false, 0, 3, 10), inline(false, 0, 3, 10)],
        b"two".to_vec(),
    );
    assert_eq!(xcopy(&mut r.cm, &a, &one).status, Status::GOOD);
    assert_eq!(xcopy(&mut r.cm, &b, &two).status, Status::GOOD);
    assert_eq!(r.cm.held_crcs(&a, 7).unwrap(), [crc32c::crc32c(b"one")]);
    assert_eq!(r.cm.held_crcs(&b, 7).unwrap().len(), 2);
    let (_, s) = rcr(&mut r.cm, &a, RcrAction::COPY_STATUS, 7);
    assert_eq!(CopyStatus::parse(&s).unwrap().segments_processed, 1);
    let (_, s) = rcr(&mut r.cm, &b, RcrAction::COPY_STATUS, 7);
    assert_eq!(CopyStatus::parse(&s).unwrap().segments_processed, 2);
    // Unknown list ID (or another nexus's): INVALID FIELD IN CDB, byte 2.
    let (c, _) = rcr(&mut r.cm, &a, RcrAction::COPY_STATUS, 8);
    assert_eq!(refused(&c).0, Asc::INVALID_FIELD_IN_CDB);
    // 10b: nothing held, an older hold under the same ID is dropped.
    let mut again = one.clone();
    again.list_id_usage = list_id_usage::DISCARD;
    assert_eq!(xcopy(&mut r.cm, &a, &again).status, Status::GOOD);
    let (c, _) = rcr(&mut r.cm, &a, RcrAction::RECEIVE_DATA, 7);
    assert_eq!(refused(&c).0, Asc::INVALID_FIELD_IN_CDB);
    // The nexus goes away: its results go with it.
    r.cm.nexus_lost(&b);
    assert!(r.cm.held_crcs(&b, 7).is_none());
}

/// Held results are bounded even when no frontend reports lost nexuses:
/// beyond 1024 lists the oldest go, and replacing a list keeps one entry.
#[test]
fn held_results_are_bounded() {
    let mut r = rig();
    let p = list(
        list_id_usage::HOLD,
        0,
        vec![inline(false, 0, 1, 1)],
        vec![7],
    );
    for k in 0..1100u64 {
        let mut q = p.clone();
        q.list_id = (k % 200) as u8;
        assert_eq!(xcopy(&mut r.cm, &nexus(k / 200), &q).status, Status::GOOD);
    }
    // Nexus 0's lists (the oldest) are gone, the newest are there.
    assert!(r.cm.held_crcs(&nexus(0), 0).is_none());
    assert_eq!(
        r.cm.held_crcs(&nexus(5), 99).unwrap(),
        [crc32c::crc32c(&[7])]
    );
    // One nexus cycling through its IDs holds one result per ID.
    for k in 0..3000u64 {
        let mut q = p.clone();
        q.list_id = (k % 10) as u8;
        assert_eq!(xcopy(&mut r.cm, &nexus(99), &q).status, Status::GOOD);
    }
    assert!(r.cm.held_crcs(&nexus(99), 9).is_some());
    assert!(r.cm.held_crcs(&nexus(5), 99).is_some());
}

/// RECEIVE COPY RESULTS 03h and VPD 8Fh advertise the same limits.
#[test]
fn operating_parameters_and_vpd_8f_agree() {
    let mut r = rig();
    let (c, data) = rcr(&mut r.cm, &nexus(1), RcrAction::OPERATING_PARAMETERS, 0);
    assert_eq!(c.status, Status::GOOD);
    let golden: Vec<u8> = [
        &[0, 0, 0, 0x32, 0x01, 0, 0, 0][..],
        &[0, 8, 0x08, 0x00, 0, 1, 0, 0], // 8 CSCDs, 2048 segments, 64 KiB
        &[0x02, 0, 0, 0, 0, 0x10, 0, 0], // 32 MiB segment, 1 MiB inline
        &[0, 0x10, 0, 0, 0, 0x40, 0, 0], // 1 MiB held, 4 MiB stream
        &[0, 0, 0, 1, 1, 0, 0, 2],
        &[0, 0, 0, 10],
        &[0x00, 0x01, 0x02, 0x04, 0x06, 0x0a, 0x10, 0x11, 0x12, 0xe4],
    ]
    .concat();
    assert_eq!(data, golden);
    let op = OperatingParameters::parse(&data).unwrap();
    let mut buf = vec![0u8; 1024];
    let q = crate::scsi::spc::Inquiry::vpd(0x8f, 1024);
    let c = r.cm.execute(q.to_cdb().as_bytes(), &[], &mut buf);
    let v = ThirdPartyCopyVpd::parse(&buf[..c.data_in_len]).unwrap();
    assert_eq!(v.max_cscd_count, Some(op.max_cscd_count));
    assert_eq!(v.max_segment_count, Some(op.max_segment_count));
    assert_eq!(v.max_descriptor_list_len, Some(op.max_descriptor_list_len));
    assert_eq!(v.max_inline_data_len, Some(op.max_inline_data_len));
    assert_eq!(v.max_segment_len, Some(op.max_segment_len));
}

/// INQUIRY has 3PC; VPD 00h lists 8Fh; VPD 83h has a NAA from the serial.
#[test]
fn inquiry_and_identity() {
    let mut r = rig();
    let mut buf = vec![0u8; 255];
    let c = r.cm.execute(&[0x12, 0, 0, 0, 255, 0], &[], &mut buf);
    let std = crate::scsi::spc::StandardInquiry::parse(&buf[..c.data_in_len]).unwrap();
    assert!(std.three_pc);
    assert_eq!(std.device_type, DeviceType::DISK);
    // The allocation length cuts the answer.
    let c = r.cm.execute(&[0x12, 0, 0, 0, 5, 0], &[], &mut buf);
    assert_eq!(c.data_in_len, 5);
    let c = r.cm.execute(&[0x12, 1, 0x00, 0, 255, 0], &[], &mut buf);
    let pages = SupportedVpdPages::parse(&buf[..c.data_in_len]).unwrap();
    assert!(pages.pages.contains(&crate::scsi::spc::VpdPage(0x8f)));
    let c = r.cm.execute(&[0x12, 1, 0x83, 0, 255, 0], &[], &mut buf);
    let di = DeviceIdentification::parse(&buf[..c.data_in_len]).unwrap();
    let d = di.best_lu_designator().unwrap();
    assert_eq!(d.designator_type, DesignatorType::NAA);
    assert_eq!(d.value, r.cm.naa());
    let other = CopyManager::new(
        CopyManagerConfig {
            serial: "CM2".into(),
            ..CopyManagerConfig::default()
        },
        Backends::new(),
    );
    assert_ne!(other.naa(), r.cm.naa());
    // TUR and READ CAPACITY(10) of the own disk.
    assert_eq!(
        r.cm.execute(&[0, 0, 0, 0, 0, 0], &[], &mut []).status,
        Status::GOOD
    );
    let c =
        r.cm.execute(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], &mut buf);
    assert_eq!(buf[..c.data_in_len], [0, 0, 0x07, 0xff, 0, 0, 2, 0]);
}

/// REPORT SUPPORTED OPERATION CODES: all, with timeouts, one command.
#[test]
fn report_supported_opcodes() {
    use crate::scsi::spc::{OneCommand, ReportSupportedOpcodes, SupportedOpcodes};
    use crate::scsi::Opcode;
    let mut r = rig();
    let mut buf = vec![0u8; 4096];
    let q = ReportSupportedOpcodes::all(4096);
    let c = r.cm.execute(q.to_cdb().as_bytes(), &[], &mut buf);
    let all = SupportedOpcodes::parse(&buf[..c.data_in_len]).unwrap();
    assert!(all.supports(Opcode::EXTENDED_COPY, Some(0)));
    assert!(all.supports(Opcode::RECEIVE_COPY_RESULTS, Some(1)));
    assert!(all.supports(Opcode::INQUIRY, None));
    let mut q = ReportSupportedOpcodes::all(4096);
    q.rctd = true;
    let c = r.cm.execute(q.to_cdb().as_bytes(), &[], &mut buf);
    assert_eq!(c.data_in_len, 4 + 20 * all.commands.len());
    assert_eq!(buf[4 + 5] & 0x02, 0x02);
    let q = ReportSupportedOpcodes::one(Opcode::INQUIRY, None, 4096);
    let c = r.cm.execute(q.to_cdb().as_bytes(), &[], &mut buf);
    let one = OneCommand::parse(&buf[..c.data_in_len]).unwrap();
    assert!(one.is_supported());
    assert_eq!(one.cdb_usage[0], 0x12);
    assert_eq!(one.cdb_usage.len(), 6);
    // 001b for a command with service actions, 010b for one without.
    let q = ReportSupportedOpcodes::one(Opcode::EXTENDED_COPY, None, 4096);
    let c = r.cm.execute(q.to_cdb().as_bytes(), &[], &mut buf);
    assert_eq!(refused(&c).0, Asc::INVALID_FIELD_IN_CDB);
    let q = ReportSupportedOpcodes::one(Opcode::INQUIRY, Some(0), 4096);
    let c = r.cm.execute(q.to_cdb().as_bytes(), &[], &mut buf);
    assert_eq!(refused(&c).0, Asc::INVALID_FIELD_IN_CDB);
    let q = ReportSupportedOpcodes::one(Opcode::RECEIVE_COPY_RESULTS, Some(4), 4096);
    let c = r.cm.execute(q.to_cdb().as_bytes(), &[], &mut buf);
    assert!(OneCommand::parse(&buf[..c.data_in_len])
        .unwrap()
        .is_supported());
    // Every command listed is answered (perhaps refused for a field, never
    // as an unknown opcode) by the unit as the frontend serves it, inside
    // the reservation layer; unlisted ones are unknown.
    let mut served = crate::lu::Reserved::new(rig().cm);
    for d in &all.commands {
        let mut cdb = vec![0u8; d.cdb_len as usize];
        cdb[0] = d.opcode.0;
        if let Some(sa) = d.service_action {
            cdb[1] = sa as u8;
        }
        let c = served.execute(&cdb, &[], &mut buf);
        if c.status != Status::GOOD {
            assert_ne!(sense(&c).asc, Asc::INVALID_OPCODE, "{:?}", d);
        }
    }
    let c = r.cm.execute(&[0x04, 0, 0, 0, 0, 0], &[], &mut buf); // FORMAT UNIT
    assert_eq!(sense(&c).asc, Asc::INVALID_OPCODE);
}

/// What libiscsi's ExtendedCopy tests do against the router's own LU:
/// one CSCD naming itself, 02h within it, beyond the end aborted.
#[test]
fn libiscsi_style_copies_on_the_own_lu() {
    let mut cm = CopyManager::new(CopyManagerConfig::default(), Backends::new());
    let own = Cscd::identification(
        &Designator::lu_binary(DesignatorType::NAA, cm.naa().to_vec()),
        DeviceType::DISK,
        DeviceParams::block(512),
    )
    .unwrap();
    let blocks = CopyManagerConfig::default().own_blocks;
    let data = pattern(2048 * 512, 9);
    let w = crate::scsi::sbc::Write16::new(Lba(0), 2048);
    assert_eq!(
        cm.execute_for(&nexus(1), w.to_cdb().as_bytes(), &data, &mut [])
            .status,
        Status::GOOD
    );
    let mk = |usage, dst| XcopyParams {
        list_id: 1,
        str_: false,
        list_id_usage: usage,
        priority: 0,
        cscds: vec![own.clone()],
        segments: vec![Segment::block_to_block(0, 0, 2048, Lba(0), Lba(dst))],
        inline_data: vec![],
    };
    let c = xcopy(
        &mut cm,
        &nexus(1),
        &mk(list_id_usage::DISCARD, blocks - 2048),
    );
    assert_eq!(c.status, Status::GOOD);
    let mut buf = vec![0u8; 2048 * 512];
    let rd = crate::scsi::sbc::Read16::new(Lba(blocks - 2048), 2048);
    cm.execute_for(&nexus(1), rd.to_cdb().as_bytes(), &[], &mut buf);
    assert_eq!(buf, data);
    // Beyond the end: COPY ABORTED with an ASC libiscsi accepts.
    let c = xcopy(&mut cm, &nexus(1), &mk(list_id_usage::HOLD, blocks - 1));
    let a = aborted(&c);
    assert_eq!(sense(&c).asc, Asc::NO_ADDITIONAL);
    assert_eq!(a.segment, Some(0));
    // A segment naming CSCD 1 of a one-CSCD list: COPY ABORTED 0D/02.
    let mut p = mk(list_id_usage::HOLD, 0);
    p.segments = vec![Segment::block_to_block(0, 1, 1, Lba(0), Lba(0))];
    let c = xcopy_raw(&mut cm, &p.to_vec());
    assert_eq!(sense(&c).asc, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE);
    // LU ID TYPE 10b is ignored (SPC-4).
    let mut p = mk(list_id_usage::HOLD, 4000);
    p.cscds[0].lu_id_type = 2;
    assert_eq!(xcopy(&mut cm, &nexus(1), &p).status, Status::GOOD);
}

/// COPY ABORTED sense as emitted parses back with the codec, in both
/// offsets, and is cut to 252 bytes.
#[test]
fn copy_aborted_sense_layout() {
    let inner = Sense::new(SenseKey::MEDIUM_ERROR, Asc::new(0x11, 0)).to_fixed();
    let a = sense::Abort::new(3, Asc::NO_ADDITIONAL, "x")
        .with_pointer(29)
        .with_embedded(CopyEnd::Destination, inner.clone());
    let b = a.sense_bytes();
    let golden: Vec<u8> = [
        &[
            0x70, 0, 0x0a, 0, 0, 0, 0, 28, 0, 18, 0, 3, 0, 0, 0, 0x80, 0, 29,
        ][..],
        &inner,
    ]
    .concat();
    assert_eq!(b, golden);
    let back = CopyAborted::from_sense_bytes(&b).unwrap();
    assert_eq!(back.segment, Some(3));
    assert_eq!(back.embedded, inner);
    assert_eq!(back.embedded_from, Some(CopyEnd::Destination));
    assert_eq!(back.field_pointer.unwrap().field, 29);
    let big = sense::Abort::new(1, Asc::NO_ADDITIONAL, "x")
        .with_embedded(CopyEnd::Source, vec![0x70; 400])
        .sense_bytes();
    assert_eq!(big.len(), 252);
    assert_eq!(big[8], 18);
    assert_eq!(big[7] as usize, 244);
}

mod props {
    use super::super::acl::Use;
    use super::super::plan::{plan, End, TargetInfo};
    use super::*;
    use proptest::prelude::*;

    fn any_target(d: &Designator, _: Use) -> Option<TargetInfo> {
        // Even-length designators are disks (the own LU), odd ones tapes.
        Some(if d.value.len() % 2 == 0 {
            TargetInfo {
                end: End::Own,
                device_type: DeviceType::DISK,
                block_size: Some(512),
                blocks: Some(2048),
                tape_block_len: None,
                locate: None,
            }
        } else {
            TargetInfo {
                end: End::Backend(0),
                device_type: DeviceType::TAPE,
                block_size: None,
                blocks: None,
                tape_block_len: Some(0),
                locate: Some(d.value.len() % 4 == 1),
            }
        })
    }

    proptest! {
        #[test]
        fn plan_never_panics(buf in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = plan(&buf, &RouterLimits::default(), any_target);
        }

        #[test]
        fn plan_never_panics_on_list_like_bytes(
            cscds in prop::collection::vec(any::<u8>(), 0..3),
            segs in prop::collection::vec((0usize..10, prop::collection::vec(any::<u8>(), 32)), 0..6),
            inline_len in 0usize..40,
            b1 in any::<u8>(),
        ) {
            let mut c = Vec::new();
            for (i, t) in cscds.iter().enumerate() {
                let mut d = disk_cscd("X").to_vec();
                d[7] = t % 21;
                d[1] = if i % 2 == 0 { 0 } else { 1 };
                c.extend_from_slice(&d);
            }
            let types = [0x00u8, 0x01, 0x02, 0x03, 0x04, 0x06, 0x0a, 0x10, 0x11, 0x12];
            let mut s = Vec::new();
            for (t, mut body) in segs {
                body[0] = types[t];
                let n = [24usize, 24, 28, 20, 24, 16, 32, 12, 12, 12][t];
                body[2] = 0;
                body[3] = (n - 4) as u8;
                s.extend_from_slice(&body[..n]);
            }
            let mut v = vec![0, b1, 0, c.len() as u8, 0, 0, 0, 0, 0, 0, 0, s.len() as u8, 0, 0, 0, inline_len as u8];
            v.extend_from_slice(&c);
            v.extend_from_slice(&s);
            v.resize(v.len() + inline_len, 0xab);
            let _ = plan(&v, &RouterLimits::default(), any_target);
        }

        /// Random 02h copies within the own LU: GOOD or COPY ABORTED,
        /// never a panic, and the data lands where a memmove puts it.
        #[test]
        fn own_lu_copies(src in 0u64..300, dst in 0u64..300, blocks in 0u16..40) {
            let mut cm = CopyManager::new(
                CopyManagerConfig { own_blocks: 256, ..CopyManagerConfig::default() },
                Backends::new(),
            );
            let data = pattern(256 * 512, 3);
            let w = crate::scsi::sbc::Write16::new(Lba(0), 256);
            cm.execute_for(&nexus(1), w.to_cdb().as_bytes(), &data, &mut []);
            let own = Cscd::identification(
                &Designator::lu_binary(DesignatorType::NAA, cm.naa().to_vec()),
                DeviceType::DISK,
                DeviceParams::block(512),
            ).unwrap();
            let p = XcopyParams {
                list_id: 0,
                str_: false,
                list_id_usage: list_id_usage::DISABLE,
                priority: 0,
                cscds: vec![own],
                segments: vec![Segment::block_to_block(0, 0, blocks, Lba(src), Lba(dst))],
                inline_data: vec![],
            };
            let c = xcopy(&mut cm, &nexus(1), &p);
            let fits = src + blocks as u64 <= 256 && dst + blocks as u64 <= 256;
            prop_assert_eq!(c.status == Status::GOOD, fits);
            if fits {
                let mut buf = vec![0u8; blocks as usize * 512];
                let r = crate::scsi::sbc::Read16::new(Lba(dst), blocks as u32);
                cm.execute_for(&nexus(1), r.to_cdb().as_bytes(), &[], &mut buf);
                let s = src as usize * 512;
                prop_assert_eq!(&buf[..], &data[s..s + buf.len()]);
            } else {
                prop_assert!(CopyAborted::from_sense_bytes(&c.sense).is_some());
            }
        }
    }
}

// ---- Copy rights (issue: per-initiator ACL, private scratch disk) ----

/// A nexus of another initiator than [`nexus`]'s.
fn intruder() -> Nexus {
    Nexus {
        initiator: "iqn.test:intruder".into(),
        isid: 7,
        target: "iqn.test:router".into(),
    }
}

fn own_cscd(cm: &CopyManager) -> Cscd {
    Cscd::identification(
        &Designator::lu_binary(DesignatorType::NAA, cm.naa().to_vec()),
        DeviceType::DISK,
        DeviceParams::block(512),
    )
    .unwrap()
}

fn read_own(cm: &mut CopyManager, n: &Nexus, lba: u64, blocks: u16) -> Vec<u8> {
    let mut buf = vec![0u8; blocks as usize * 512];
    let rd = crate::scsi::sbc::Read10::new(Lba(lba), blocks).unwrap();
    let c = cm.execute_for(n, rd.to_cdb().as_bytes(), &[], &mut buf);
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
    buf
}

fn b2b_list(cscds: Vec<Cscd>, blocks: u16, src_lba: u64, dst_lba: u64) -> XcopyParams {
    XcopyParams {
        list_id: 0,
        str_: false,
        list_id_usage: list_id_usage::DISABLE,
        priority: 0,
        cscds,
        segments: vec![Segment::block_to_block(
            0,
            1,
            blocks,
            Lba(src_lba),
            Lba(dst_lba),
        )],
        inline_data: vec![],
    }
}

/// Read path: an initiator the ACL does not name copies a backend disk
/// into the scratch disk. It is refused exactly as a designator nobody
/// has (same sense bytes), and nothing reaches the scratch disk.
#[test]
fn copy_from_a_disk_outside_the_acl_is_refused_like_an_unknown_one() {
    let mut r = rig();
    let own = own_cscd(&r.cm);
    let denied = xcopy(
        &mut r.cm,
        &intruder(),
        &b2b_list(vec![disk_cscd("D1"), own.clone()], 8, 0, 0),
    );
    let unknown = xcopy(
        &mut r.cm,
        &intruder(),
        &b2b_list(vec![disk_cscd("NOBODY"), own], 8, 0, 0),
    );
    assert_eq!(sense(&denied).asc, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE);
    assert_eq!(denied.sense, unknown.sense);
    assert!(
        read_own(&mut r.cm, &intruder(), 0, 8)
            .iter()
            .all(|&b| b == 0),
        "scratch data leaked"
    );
}

/// Write path: an initiator the ACL does not name copies its scratch
/// disk over a backend disk; refused like an unknown designator, and the
/// backend keeps its data.
#[test]
fn copy_onto_a_disk_outside_the_acl_is_refused_like_an_unknown_one() {
    let mut r = rig();
    let before = r.disk.0.lock().unwrap().data().to_vec();
    let w = crate::scsi::sbc::Write10::new(Lba(0), 8).unwrap();
    let c = r.cm.execute_for(
        &intruder(),
        w.to_cdb().as_bytes(),
        &[0xee; 8 * 512],
        &mut [],
    );
    assert_eq!(c.status, Status::GOOD);
    let own = own_cscd(&r.cm);
    let denied = xcopy(
        &mut r.cm,
        &intruder(),
        &b2b_list(vec![own.clone(), disk_cscd("D1")], 8, 0, 0),
    );
    let unknown = xcopy(
        &mut r.cm,
        &intruder(),
        &b2b_list(vec![own, disk_cscd("NOBODY")], 8, 0, 0),
    );
    assert_eq!(sense(&denied).asc, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE);
    assert_eq!(denied.sense, unknown.sense);
    assert!(
        r.disk.0.lock().unwrap().data() == &before[..],
        "backend overwritten"
    );
}

/// A tape outside the ACL answers like a designator nobody has too, so
/// "unknown" and "wrong device type" cannot be told apart without rights.
#[test]
fn device_type_is_not_revealed_outside_the_acl() {
    let mut r = rig();
    let own = own_cscd(&r.cm);
    // A disk CSCD that names the tape's designator.
    let mut wrong_type = disk_cscd("T1");
    wrong_type.body = tape_cscd("T1").body;
    let typed = xcopy(
        &mut r.cm,
        &intruder(),
        &b2b_list(vec![wrong_type, own.clone()], 1, 0, 0),
    );
    let unknown = xcopy(
        &mut r.cm,
        &intruder(),
        &b2b_list(vec![disk_cscd("NOBODY"), own], 1, 0, 0),
    );
    assert_eq!(typed.sense, unknown.sense);
}

/// The scratch disk is private to each I_T nexus: what one nexus copied
/// there, another (another initiator, or another session of the same
/// one) reads as zeros.
#[test]
fn scratch_disk_is_private_to_each_nexus() {
    let mut r = rig();
    let own = own_cscd(&r.cm);
    let c = xcopy(
        &mut r.cm,
        &nexus(1),
        &b2b_list(vec![disk_cscd("D1"), own], 8, 0, 0),
    );
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
    let src = r.disk.0.lock().unwrap().data()[..8 * 512].to_vec();
    assert!(read_own(&mut r.cm, &nexus(1), 0, 8) == src);
    assert!(
        read_own(&mut r.cm, &intruder(), 0, 8)
            .iter()
            .all(|&b| b == 0),
        "scratch data leaked"
    );
    assert!(
        read_own(&mut r.cm, &nexus(2), 0, 8).iter().all(|&b| b == 0),
        "scratch data leaked"
    );
    // A nexus that logs out takes its scratch data with it.
    r.cm.nexus_lost(&nexus(1));
    assert!(
        read_own(&mut r.cm, &nexus(1), 0, 8).iter().all(|&b| b == 0),
        "scratch data leaked"
    );
}

/// 0Ah with a source LBA above 2^32: the whole 64-bit LBA counts. Past
/// the disk's end it is COPY ABORTED with LBA OUT OF RANGE as the source's
/// sense, pointing at the SOURCE LBA field, and nothing is copied (it
/// used to copy from LBA 4 with GOOD).
#[test]
fn block_offset_segment_keeps_the_high_lba_bits() {
    let mut r = rig();
    let own = own_cscd(&r.cm);
    let mut seg = vec![0x0a, 0, 0, 0x1c, 0, 0, 0, 1];
    seg.extend_from_slice(&512u32.to_be_bytes());
    seg.extend_from_slice(&((1u64 << 32) | 4).to_be_bytes());
    seg.extend_from_slice(&0u64.to_be_bytes());
    seg.extend_from_slice(&[0, 0, 0, 0]);
    let mut raw = vec![0, 0x18, 0, 64, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0];
    raw.extend_from_slice(&disk_cscd("D1").to_vec());
    raw.extend_from_slice(&own.to_vec());
    raw.extend_from_slice(&seg);
    let c = xcopy_raw(&mut r.cm, &raw);
    let a = aborted(&c);
    assert_eq!(a.segment, Some(0));
    assert_eq!(a.embedded_from, Some(CopyEnd::Source));
    let inner = Sense::parse(&a.embedded).unwrap();
    assert_eq!(inner.asc, Asc::LBA_OUT_OF_RANGE);
    assert_eq!(a.field_pointer.unwrap().field, 80 + 12);
    assert!(
        read_own(&mut r.cm, &nexus(1), 0, 1).iter().all(|&b| b == 0),
        "scratch data leaked"
    );
}

/// Every LBA is checked against the LU's capacity before data moves: a
/// list whose second segment runs past the end moves nothing.
#[test]
fn lba_past_capacity_moves_nothing() {
    let mut r = rig();
    let segs = vec![b2s(false, 8, 0, 4096), b2s(false, 8, 4090, 4096)];
    let c = xcopy(
        &mut r.cm,
        &nexus(1),
        &list(list_id_usage::DISCARD, 1, segs, vec![]),
    );
    let a = aborted(&c);
    assert_eq!(a.segment, Some(1));
    assert_eq!(a.embedded_from, Some(CopyEnd::Source));
    let inner = Sense::parse(&a.embedded).unwrap();
    assert_eq!(inner.key, SenseKey::ILLEGAL_REQUEST);
    assert_eq!(inner.asc, Asc::LBA_OUT_OF_RANGE);
    assert_eq!(a.field_pointer.unwrap().field, 16 + 64 + 24 + 16);
    assert!(tape_blocks(&r.tape).is_empty());
}

/// With no ACL configured, a copy naming a backend LU is refused (as an
/// unknown designator); the scratch disk still works.
#[test]
fn no_acl_refuses_backend_lus() {
    let mut b = Backends::new();
    let d = Shared(Arc::new(Mutex::new(MemDisk::new("D1", 64, 512))));
    b.add(Box::new(MemoryTransport::new("disk D1", d))).unwrap();
    let mut cm = CopyManager::new(CopyManagerConfig::default(), b);
    let own = own_cscd(&cm);
    let c = xcopy(
        &mut cm,
        &nexus(1),
        &b2b_list(vec![disk_cscd("D1"), own.clone()], 1, 0, 0),
    );
    assert_eq!(sense(&c).asc, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE);
    let c = xcopy(
        &mut cm,
        &nexus(1),
        &b2b_list(vec![own.clone(), own], 1, 0, 1),
    );
    assert_eq!(c.status, Status::GOOD);
}

/// A rig whose copy manager has per-command caps.
fn capped(caps: CopyCaps) -> Rig {
    let mut r = rig();
    let b = std::mem::take(&mut *r.cm.backends_mut());
    r.cm = CopyManager::new(
        CopyManagerConfig {
            serial: "CM1".into(),
            own_blocks: 2048,
            rights: host_rights(),
            caps,
            ..CopyManagerConfig::default()
        },
        b,
    );
    r
}

/// 02h within disk D1: all 4096 blocks (2 MiB) to itself, results held
/// under list 4.
fn whole_disk_copy() -> XcopyParams {
    let mut p = list(list_id_usage::HOLD, 4, Vec::new(), Vec::new());
    p.cscds = vec![disk_cscd("D1")];
    p.segments = vec![Segment::block_to_block(0, 0, 4096, Lba(0), Lba(0))];
    p
}

/// A copy past the bytes one command may move stops at the next block
/// boundary: COPY ABORTED, INSUFFICIENT RESOURCES, its segment named.
#[test]
fn a_copy_past_its_byte_cap_is_copy_aborted() {
    let mut r = capped(CopyCaps {
        max_bytes: Some(512 << 10),
        max_time: None,
    });
    let c = xcopy(&mut r.cm, &nexus(1), &whole_disk_copy());
    assert_eq!(sense(&c).asc, Asc::INSUFFICIENT_RESOURCES);
    assert_eq!(
        aborted(&c).segment.unwrap_or(0),
        0,
        "segment 0 (fixed sense: 0 reads as absent)"
    );
    let (_, s) = rcr(&mut r.cm, &nexus(1), RcrAction::COPY_STATUS, 4);
    let st = CopyStatus::parse(&s).unwrap();
    assert_eq!(st.status, CopyManagerStatus::COMPLETED_ERRORS);
    assert_eq!(st.transfer_count, 1 << 20, "one chunk, then the check");
    // Within the cap, the same copy runs.
    let mut r = capped(CopyCaps {
        max_bytes: Some(2 << 20),
        max_time: None,
    });
    assert_eq!(
        xcopy(&mut r.cm, &nexus(1), &whole_disk_copy()).status,
        Status::GOOD
    );
}

/// A copy past the time one command may run: COPY ABORTED, COMMAND
/// TIMEOUT DURING PROCESSING.
#[test]
fn a_copy_past_its_time_cap_is_copy_aborted() {
    let mut r = capped(CopyCaps {
        max_bytes: None,
        max_time: Some(std::time::Duration::ZERO),
    });
    let c = xcopy(&mut r.cm, &nexus(1), &whole_disk_copy());
    assert_eq!(sense(&c).asc, Asc::new(0x2e, 0x02));
    assert_eq!(
        aborted(&c).segment.unwrap_or(0),
        0,
        "segment 0 (fixed sense: 0 reads as absent)"
    );
}

/// EXTENDED COPY is a background task (other commands are not); a stopped
/// one ends at its first block boundary and its held status says it was
/// aborted by a task management function.
#[test]
fn a_stopped_background_copy_ends_and_says_so() {
    let mut r = rig();
    let n = nexus(1);
    let p = whole_disk_copy();
    let cdb = p.cdb().to_cdb();
    assert!(r.cm.background(&n, &[0, 0, 0, 0, 0, 0], &[]).is_none());
    let job =
        r.cm.background(&n, cdb.as_bytes(), &p.to_vec())
            .expect("a background copy");
    let stop = crate::lu::TaskStop::default();
    stop.stop();
    assert_eq!(job(&stop).status, Status::CHECK_CONDITION);
    let (_, s) = rcr(&mut r.cm, &n, RcrAction::COPY_STATUS, 4);
    let st = CopyStatus::parse(&s).unwrap();
    assert_eq!(
        (st.status, st.transfer_count),
        (CopyManagerStatus::COMPLETED_ERRORS, 0)
    );
    let (_, f) = rcr(&mut r.cm, &n, RcrAction::FAILED_SEGMENT_DETAILS, 4);
    let d = FailedSegmentDetails::parse(&f).unwrap();
    assert_eq!(d.failed.unwrap().status, Status::TASK_ABORTED);
    // Not stopped, it runs to the end.
    let job = r.cm.background(&n, cdb.as_bytes(), &p.to_vec()).unwrap();
    assert_eq!(job(&Default::default()).status, Status::GOOD);
}

/// A background copy (outside the LU lock) into the scratch disk writes
/// its own nexus's disk only: the copier reads the data back, another
/// nexus reads zeros, and the copier's data goes with its nexus.
#[test]
fn a_background_copy_into_the_scratch_disk_stays_in_its_nexus() {
    let mut r = rig();
    let p = b2b_list(vec![disk_cscd("D1"), own_cscd(&r.cm)], 8, 0, 0);
    let cdb = p.cdb().to_cdb();
    let job =
        r.cm.background(&nexus(1), cdb.as_bytes(), &p.to_vec())
            .expect("a background copy");
    let c = job(&Default::default());
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
    let src = r.disk.0.lock().unwrap().data()[..8 * 512].to_vec();
    assert!(read_own(&mut r.cm, &nexus(1), 0, 8) == src);
    assert!(
        read_own(&mut r.cm, &nexus(2), 0, 8).iter().all(|&b| b == 0),
        "scratch data leaked"
    );
    r.cm.nexus_lost(&nexus(1));
    assert!(
        read_own(&mut r.cm, &nexus(1), 0, 8).iter().all(|&b| b == 0),
        "scratch data outlived its nexus"
    );
}
