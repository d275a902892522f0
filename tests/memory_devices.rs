//! The device layer over the in-memory disk and tape: the same verbs the
//! tgt tests use, checked against SSC behaviour (a correct READ POSITION,
//! backward SPACE), plus the failures no lab target produces on demand.

use sanmover::device::tape::{ReadOutcome, TrackedPosition};
use sanmover::device::{DeviceError, Disk, Tape};
use sanmover::lu::{MemDisk, MemTape, TapeObject};
use sanmover::scsi::ssc::ReadPositionForm;
use sanmover::scsi::{BlockSize, Lba};
use sanmover::transport::memory::MemoryTransport;
use sanmover::transport::{Request, Transport, TransportError};

fn tape(capacity: u64) -> Tape<MemoryTransport<MemTape>> {
    Tape::open(MemoryTransport::new(
        "mem-tape",
        MemTape::new("T1", capacity),
    ))
    .unwrap()
}

fn read(t: &mut Tape<MemoryTransport<MemTape>>, max: usize) -> (ReadOutcome, Vec<u8>) {
    let (o, mut b) = t.read_block(vec![0; max]).unwrap();
    if let ReadOutcome::Block(n) = o {
        b.truncate(n);
    }
    (o, b)
}

#[test]
fn disk_round_trip_and_capacity() {
    let mut d = Disk::open(MemoryTransport::new(
        "mem-disk",
        MemDisk::new("D1", 2048, 512),
    ))
    .unwrap();
    let cap = d.capacity().unwrap();
    assert_eq!(cap.blocks.0, 2048);
    assert_eq!(cap.block_size, BlockSize(512));
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    d.write(Lba(100), BlockSize(512), data.clone()).unwrap();
    assert_eq!(d.read(Lba(100), 8, BlockSize(512)).unwrap(), data);
    // Past the end: ILLEGAL REQUEST, LBA OUT OF RANGE, decoded.
    let e = d.read(Lba(2047), 2, BlockSize(512)).unwrap_err();
    assert!(
        e.to_string().contains("LOGICAL BLOCK ADDRESS OUT OF RANGE"),
        "{e}"
    );
    assert!(e.to_string().contains("READ(16)"), "{e}");
}

#[test]
fn a_disk_is_not_a_tape() {
    let e = Tape::open(MemoryTransport::new("mem-disk", MemDisk::new("D1", 8, 512))).unwrap_err();
    assert!(matches!(e, DeviceError::WrongType { .. }), "{e}");
    assert!(e.to_string().contains("not a tape device"), "{e}");
}

#[test]
fn tape_files_read_back_with_exact_positions() {
    let mut t = tape(1 << 30);
    t.rewind().unwrap();
    for (i, n) in [10usize, 3000, 1].iter().enumerate() {
        t.write_block(vec![i as u8; *n]).unwrap();
    }
    t.write_filemarks(1).unwrap();
    t.write_block(vec![9; 77]).unwrap();
    t.write_filemarks(1).unwrap();

    t.rewind().unwrap();
    assert_eq!(read(&mut t, 4096), (ReadOutcome::Block(10), vec![0; 10]));
    assert_eq!(read(&mut t, 4096).1, vec![1; 3000]);
    assert_eq!(read(&mut t, 4096).1, vec![2; 1]);
    assert_eq!(read(&mut t, 4096).0, ReadOutcome::Filemark);
    assert_eq!(
        t.position(),
        TrackedPosition {
            file: Some(1),
            block: Some(0)
        }
    );
    // The in-memory tape answers READ POSITION truthfully: object 4.
    let p = t.read_position(ReadPositionForm::SHORT).unwrap();
    assert_eq!(p.first_block, Some(4));
    assert_eq!(read(&mut t, 4096).1, vec![9; 77]);
    assert_eq!(read(&mut t, 4096).0, ReadOutcome::Filemark);
    assert_eq!(read(&mut t, 4096).0, ReadOutcome::EndOfData);

    // SSC backward SPACE: before the filemark that ends file 0.
    t.space_filemarks(-2).unwrap();
    assert_eq!(
        t.read_position(ReadPositionForm::SHORT)
            .unwrap()
            .first_block,
        Some(3)
    );
    t.seek_file(1).unwrap();
    assert_eq!(read(&mut t, 4096).1, vec![9; 77]);
}

#[test]
fn overlength_block_is_an_error_not_short_data() {
    let mut t = tape(1 << 20);
    t.rewind().unwrap();
    t.write_block(vec![5; 2000]).unwrap();
    t.rewind().unwrap();
    let e = t.read_block(vec![0; 1000]).unwrap_err();
    assert!(e.to_string().contains("2000 bytes"), "{e}");
}

#[test]
fn early_warning_then_volume_overflow() {
    let mut t = Tape::open(MemoryTransport::new(
        "small",
        MemTape::new("T2", 10_000).with_early_warning(3_000),
    ))
    .unwrap();
    t.rewind().unwrap();
    assert!(!t.write_block(vec![0; 6000]).unwrap().early_warning);
    // 8000 used: inside the early-warning zone, written.
    assert!(t.write_block(vec![0; 2000]).unwrap().early_warning);
    // Past the end: VOLUME OVERFLOW, not written.
    let e = t.write_block(vec![0; 4000]).unwrap_err();
    assert!(e.to_string().contains("VOLUME OVERFLOW"), "{e}");
    assert_eq!(t.scsi.transport().lu.objects().len(), 2);
}

#[test]
fn a_target_that_dies_mid_copy_is_a_transport_error() {
    let tr = MemoryTransport::new("dying", MemTape::new("T3", 1 << 20));
    let mut t = Tape::open(tr).unwrap();
    // However many commands the drive's Unit Attention took, the target
    // answers one more (the first write) and then dies.
    t.rewind().unwrap();
    t.scsi.transport().die_after = Some(1);
    t.write_block(vec![1; 10]).unwrap();
    let e = t.write_block(vec![1; 10]).unwrap_err();
    assert!(matches!(
        e,
        DeviceError::Transport {
            source: TransportError::SessionLost(_),
            ..
        }
    ));
    // The tool no longer claims to know where the tape is.
    assert_eq!(t.position(), TrackedPosition::UNKNOWN);
    assert_eq!(
        t.scsi.transport().lu.objects(),
        &[TapeObject::Block(vec![1; 10])]
    );
}

#[test]
fn pipelined_submissions_complete_with_their_tags() {
    let mut tr = MemoryTransport::new("mem-disk", MemDisk::new("D2", 64, 512));
    tr.lu.data_mut()[512..1024].fill(0xab);
    for i in 0..4u64 {
        let cdb = sanmover::scsi::CdbCodec::to_cdb(&sanmover::scsi::sbc::Read16 {
            lba: Lba(i),
            blocks: 1,
            dpo: false,
            fua: false,
        });
        tr.submit(Request::data_in(cdb, 512).with_tag(100 + i))
            .unwrap();
    }
    assert_eq!(tr.in_flight(), 4);
    let mut tags = Vec::new();
    while tr.in_flight() > 0 {
        let r = tr.complete().unwrap();
        assert!(r.is_good());
        if r.tag == 101 {
            assert!(r.buf.iter().all(|&b| b == 0xab));
        }
        tags.push(r.tag);
    }
    tags.sort();
    assert_eq!(tags, vec![100, 101, 102, 103]);
}
