//! Every command of the drive, with the exact sense SSC-4/SPC-4 name, and
//! the image's crash safety.

use super::*;
use crate::lu::LogicalUnit;
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::smc::PreventAllowMediumRemoval;
use crate::scsi::spc::{
    ModeParameters, ModeSelect10, ModeSelect6, ModeSense10, ModeSense6, StandardInquiry,
    SupportedVpdPages, UnitSerialNumber,
};
use crate::scsi::ssc::{
    BlockLimits, DataCompressionPage, DensitySupport, DeviceConfigurationExtension, Erase,
    LoadUnload, Locate10, Locate16, Position, Read6, ReadBlockLimits, ReadPosition,
    ReadPositionForm, ReportDensitySupport, Rewind, Space16, Space6, SpaceCode, Write6,
    WriteFilemarks16, WriteFilemarks6,
};
use crate::scsi::{CdbCodec, DeviceType, Status, Wire};

/// One command: completion and the Data-In it carried.
fn run<L: LogicalUnit>(lu: &mut L, cdb: &[u8], out: &[u8], alloc: usize) -> (Completion, Vec<u8>) {
    let mut buf = vec![0u8; alloc];
    let c = lu.execute(cdb, out, &mut buf);
    buf.truncate(c.data_in_len);
    (c, buf)
}

fn cmd<L: LogicalUnit>(lu: &mut L, cdb: impl CdbCodec) -> Completion {
    run(lu, cdb.to_cdb().as_bytes(), &[], 0).0
}

fn sense(c: &Completion) -> Sense {
    assert_eq!(c.status, Status::CHECK_CONDITION, "{c:?}");
    Sense::parse(&c.sense).unwrap()
}

fn key_asc(c: &Completion) -> (SenseKey, Asc) {
    let s = sense(c);
    (s.key, s.asc)
}

fn good(c: &Completion) {
    assert_eq!(c.status, Status::GOOD, "{:?}", Sense::parse(&c.sense));
}

/// A memory drive with its power-on Unit Attention taken.
fn mem(capacity: u64) -> MemTape {
    let mut t = MemTape::new("T", capacity);
    let (c, _) = run(&mut t, &[0; 6], &[], 0);
    assert_eq!(key_asc(&c), (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET));
    good(&run(&mut t, &[0; 6], &[], 0).0);
    t
}

fn write<L: LogicalUnit>(lu: &mut L, data: &[u8]) -> Completion {
    run(
        lu,
        Write6::variable(data.len() as u32).to_cdb().as_bytes(),
        data,
        0,
    )
    .0
}

fn read<L: LogicalUnit>(lu: &mut L, len: u32, sili: bool) -> (Completion, Vec<u8>) {
    let r = Read6 {
        fixed: false,
        sili,
        length: len,
    };
    run(lu, r.to_cdb().as_bytes(), &[], len as usize)
}

fn marks<L: LogicalUnit>(lu: &mut L, n: u32) -> Completion {
    cmd(lu, WriteFilemarks6::new(n))
}

fn position<L: LogicalUnit>(lu: &mut L, form: ReadPositionForm) -> Position {
    let rp = ReadPosition {
        form,
        alloc_len: 32,
    };
    let (c, d) = run(lu, rp.to_cdb().as_bytes(), &[], 64);
    good(&c);
    Position::parse(form, &d).unwrap()
}

fn pos<L: LogicalUnit>(lu: &mut L) -> u64 {
    position(lu, ReadPositionForm::SHORT).first_block.unwrap()
}

fn space<L: LogicalUnit>(lu: &mut L, code: SpaceCode, n: i32) -> Completion {
    cmd(lu, Space6::new(code, n).unwrap())
}

/// `A B FM C FM D FM FM` (objects 0..8), positioned at BOP.
fn layout() -> MemTape {
    let mut t = mem(1 << 20);
    for o in ["A", "B", "|", "C", "|", "D", "|", "|"] {
        if o == "|" {
            good(&marks(&mut t, 1));
        } else {
            good(&write(&mut t, o.as_bytes()));
        }
    }
    good(&cmd(&mut t, Rewind::default()));
    t
}

fn next_block<L: LogicalUnit>(lu: &mut L) -> String {
    let (c, d) = read(lu, 16, true);
    if c.status == Status::GOOD {
        String::from_utf8(d).unwrap()
    } else if sense(&c).filemark {
        "|".into()
    } else {
        format!("{:?}", key_asc(&c))
    }
}

fn nexus(initiator: &str) -> Nexus {
    Nexus {
        initiator: initiator.into(),
        ..Default::default()
    }
}

#[test]
fn unit_attention_per_nexus_power_on_and_medium_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.img");
    ImageDrive::create_blank(&path, 1 << 20).unwrap();
    let mut d = ImageDrive::new("D1");
    let (a, b) = (nexus("a"), nexus("b"));
    let tur = [0u8; 6];
    let ex = |d: &mut ImageDrive, n: &Nexus, cdb: &[u8]| d.execute_for(n, cdb, &[], &mut [0u8; 64]);
    // INQUIRY neither reports nor clears it.
    good(&ex(&mut d, &a, &[0x12, 0, 0, 0, 36, 0]));
    assert_eq!(
        key_asc(&ex(&mut d, &a, &tur)),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    // Then no medium: NOT READY, MEDIUM NOT PRESENT.
    assert_eq!(
        key_asc(&ex(&mut d, &a, &tur)),
        (SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT)
    );
    d.load_cartridge(&Cartridge {
        path: path.clone(),
        barcode: "L00001".into(),
        write_protected: false,
    })
    .unwrap();
    // a saw power-on already: now MEDIUM MAY HAVE CHANGED. b, new, sees 29/00 only.
    assert_eq!(
        key_asc(&ex(&mut d, &a, &tur)),
        (SenseKey::UNIT_ATTENTION, Asc::NOT_READY_TO_READY_CHANGE)
    );
    good(&ex(&mut d, &a, &tur));
    // REQUEST SENSE reports the attention and clears it.
    let mut buf = [0u8; 18];
    let c = d.execute_for(&b, &[0x03, 0, 0, 0, 18, 0], &[], &mut buf);
    good(&c);
    let s = Sense::parse(&buf).unwrap();
    assert_eq!(
        (s.key, s.asc),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    good(&ex(&mut d, &b, &tur));
}

#[test]
fn mode_parameters_changed_for_the_others_and_reset_for_all() {
    let mut d = MemTape::new("T", 1 << 20);
    let (a, b) = (nexus("a"), nexus("b"));
    let tur = [0u8; 6];
    let ex = |d: &mut MemTape, n: &Nexus, cdb: &[u8]| d.execute_for(n, cdb, &[], &mut [0u8; 64]);
    for n in [&a, &b] {
        assert_eq!(key_asc(&ex(&mut d, n, &tur)).1, Asc::POWER_ON_RESET);
    }
    // MODE SELECT from a: b sees MODE PARAMETERS CHANGED, a does not.
    let list = ModeParameters {
        medium_type: 0,
        device_specific: 0,
        block_descriptors: vec![],
        pages: vec![],
    }
    .emit6_select();
    let sel = ModeSelect6 {
        pf: true,
        sp: false,
        param_len: list.len() as u8,
    };
    good(&d.execute_for(&a, sel.to_cdb().as_bytes(), &list, &mut []));
    good(&ex(&mut d, &a, &tur));
    assert_eq!(
        key_asc(&ex(&mut d, &b, &tur)),
        (SenseKey::UNIT_ATTENTION, Asc::MODE_PARAMETERS_CHANGED)
    );
    // A reset: everyone sees 29/00 again.
    d.reset();
    assert_eq!(
        key_asc(&ex(&mut d, &a, &tur)),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    assert_eq!(
        key_asc(&ex(&mut d, &b, &tur)),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    good(&ex(&mut d, &b, &tur));
}

#[test]
fn inquiry_vpd_report_luns_and_request_sense() {
    let mut t = mem(1 << 20);
    let (c, d) = run(&mut t, &[0x12, 0, 0, 0, 96, 0], &[], 96);
    good(&c);
    let inq = StandardInquiry::parse(&d).unwrap();
    assert_eq!(inq.device_type, DeviceType::TAPE);
    assert!(inq.rmb);
    let (_, d) = run(&mut t, &[0x12, 1, 0x00, 0, 255, 0], &[], 255);
    let pages = SupportedVpdPages::parse(&d).unwrap();
    let codes: Vec<u8> = pages.pages.iter().map(|p| p.0).collect();
    assert_eq!(codes, [0x00, 0x80, 0x83, 0xb0]);
    let (_, d) = run(&mut t, &[0x12, 1, 0x80, 0, 255, 0], &[], 255);
    assert_eq!(UnitSerialNumber::parse(&d).unwrap().serial, "T");
    let (c, d) = run(&mut t, &[0x12, 1, 0x83, 0, 255, 0], &[], 255);
    good(&c);
    assert_eq!(d[1], 0x83);
    assert!(t.designators().len() == 2);
    let (c, d) = run(&mut t, &[0x12, 1, 0xb0, 0, 255, 0], &[], 255);
    good(&c);
    assert_eq!(d, [0x01, 0xb0, 0, 2, 0, 0]);
    let (c, _) = run(&mut t, &[0x12, 1, 0xb1, 0, 255, 0], &[], 255);
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    let (c, d) = run(&mut t, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], &[], 16);
    good(&c);
    assert_eq!(&d[..4], &[0, 0, 0, 8]);
    // REQUEST SENSE with nothing pending: NO SENSE; DESC=1 is refused.
    let (c, d) = run(&mut t, &[0x03, 0, 0, 0, 252, 0], &[], 252);
    good(&c);
    assert_eq!(Sense::parse(&d).unwrap().key, SenseKey::NO_SENSE);
    let (c, _) = run(&mut t, &[0x03, 1, 0, 0, 252, 0], &[], 252);
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    // Unknown opcode.
    let (c, _) = run(&mut t, &[0xee, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_OPCODE)
    );
    let (c, _) = run(&mut t, &[], &[], 0);
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_OPCODE)
    );
}

#[test]
fn variable_blocks_read_back_with_positions() {
    let mut t = mem(1 << 20);
    // Blank medium: BLANK CHECK, END-OF-DATA DETECTED, INFORMATION = request.
    let (c, _) = read(&mut t, 100, false);
    let s = sense(&c);
    assert_eq!(
        (s.key, s.asc, s.information),
        (SenseKey::BLANK_CHECK, Asc::END_OF_DATA, Some(100))
    );
    assert_eq!(pos(&mut t), 0);
    good(&write(&mut t, b"hello"));
    assert_eq!(pos(&mut t), 1);
    good(&write(&mut t, &[7; 3000]));
    assert_eq!(pos(&mut t), 2);
    good(&write(&mut t, &[]));
    assert_eq!(pos(&mut t), 2, "a zero-length WRITE writes nothing");
    good(&cmd(&mut t, Rewind::default()));
    assert_eq!(pos(&mut t), 0);
    let (c, d) = read(&mut t, 5, false);
    good(&c);
    assert_eq!(d, b"hello");
    let (c, d) = read(&mut t, 3000, false);
    good(&c);
    assert_eq!(d, [7; 3000]);
    assert_eq!(pos(&mut t), 2);
    let (c, _) = read(&mut t, 5, false);
    assert_eq!(key_asc(&c), (SenseKey::BLANK_CHECK, Asc::END_OF_DATA));
    assert_eq!(pos(&mut t), 2, "EOD does not move");
    assert_eq!(t.bytes_written, 3005);
    assert_eq!(t.bytes_read, 3005);
}

#[test]
fn short_read_is_ili_with_the_residue_unless_sili() {
    let mut t = mem(1 << 20);
    good(&write(&mut t, &[1; 1000]));
    good(&write(&mut t, &[2; 1000]));
    good(&cmd(&mut t, Rewind::default()));
    let (c, d) = read(&mut t, 4096, false);
    let s = sense(&c);
    assert_eq!(
        (s.key, s.asc, s.ili, s.information),
        (SenseKey::NO_SENSE, Asc::NO_ADDITIONAL, true, Some(3096))
    );
    assert_eq!(d, [1; 1000], "the block's bytes, and only those");
    assert_eq!(pos(&mut t), 1);
    // SILI suppresses the underlength report.
    let (c, d) = read(&mut t, 4096, true);
    good(&c);
    assert_eq!(d, [2; 1000]);
    assert_eq!(pos(&mut t), 2);
}

#[test]
fn read_buffer_smaller_than_the_block_is_ili_negative_even_with_sili() {
    let mut t = mem(1 << 20);
    good(&write(&mut t, &[9; 2000]));
    good(&write(&mut t, b"next"));
    good(&cmd(&mut t, Rewind::default()));
    for sili in [false, true] {
        let (c, d) = read(&mut t, 1500, sili);
        let s = sense(&c);
        assert!(s.ili);
        assert_eq!(s.information_i32(), Some(-500));
        assert_eq!(d, [9; 1500], "the requested bytes arrive");
        assert_eq!(pos(&mut t), 1, "past the block");
        good(&cmd(&mut t, Rewind::default()));
    }
    // A Data-In buffer smaller than the request: what fits, no overrun.
    let mut small = [0u8; 10];
    let c = t.execute(Read6::variable(2000).to_cdb().as_bytes(), &[], &mut small);
    good(&c);
    assert_eq!((c.data_in_len, small), (10, [9; 10]));
}

/// MODE SELECT(6) of a block descriptor with `len` (0 = variable).
fn set_block_length<L: LogicalUnit>(lu: &mut L, len: u32) -> Completion {
    let list = ModeParameters {
        medium_type: 0,
        device_specific: 0x10,
        block_descriptors: vec![crate::scsi::spc::BlockDescriptor {
            density_code: 0,
            blocks: 0,
            block_length: len,
        }],
        pages: vec![],
    }
    .emit6_select();
    let sel = ModeSelect6 {
        pf: true,
        sp: false,
        param_len: list.len() as u8,
    };
    run(lu, sel.to_cdb().as_bytes(), &list, 0).0
}

#[test]
fn fixed_blocks_stop_at_a_filemark_and_at_a_wrong_length() {
    let mut t = mem(1 << 20);
    // FIXED in variable mode, and FIXED with SILI: INVALID FIELD IN CDB.
    let c = run(&mut t, Write6::fixed(1).to_cdb().as_bytes(), &[0; 512], 0).0;
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    good(&set_block_length(&mut t, 512));
    let c = cmd(
        &mut t,
        Read6 {
            fixed: true,
            sili: true,
            length: 1,
        },
    );
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    let data: Vec<u8> = (0..3 * 512).map(|i| (i / 512) as u8).collect();
    good(&run(&mut t, Write6::fixed(3).to_cdb().as_bytes(), &data, 0).0);
    good(&marks(&mut t, 1));
    good(&write_var_in_fixed(&mut t, 100));
    assert_eq!(pos(&mut t), 5);
    good(&cmd(&mut t, Rewind::default()));
    // Five asked, three there, then the filemark: FM, INFORMATION 2.
    let (c, d) = run(&mut t, Read6::fixed(5).to_cdb().as_bytes(), &[], 5 * 512);
    let s = sense(&c);
    assert!(s.filemark);
    assert_eq!((s.asc, s.information), (Asc::FILEMARK_DETECTED, Some(2)));
    assert_eq!(d, data);
    assert_eq!(pos(&mut t), 4);
    // A 100-byte block in 512-byte mode: ILI, INFORMATION = blocks not read.
    let (c, _) = run(&mut t, Read6::fixed(2).to_cdb().as_bytes(), &[], 1024);
    let s = sense(&c);
    assert!(s.ili);
    assert_eq!(s.information, Some(2));
    assert_eq!(pos(&mut t), 5);
    // Then EOD with the residue.
    let (c, _) = run(&mut t, Read6::fixed(2).to_cdb().as_bytes(), &[], 1024);
    let s = sense(&c);
    assert_eq!(
        (s.key, s.asc, s.information),
        (SenseKey::BLANK_CHECK, Asc::END_OF_DATA, Some(2))
    );
    // Block limits in fixed mode: the one length.
    let (_, d) = run(&mut t, ReadBlockLimits.to_cdb().as_bytes(), &[], 6);
    let l = BlockLimits::parse(&d).unwrap();
    assert_eq!((l.max_block_length, l.min_block_length), (512, 512));
    good(&set_block_length(&mut t, 0));
    let (_, d) = run(&mut t, ReadBlockLimits.to_cdb().as_bytes(), &[], 6);
    let l = BlockLimits::parse(&d).unwrap();
    assert_eq!(
        (l.max_block_length, l.min_block_length),
        (MemTape::MAX_BLOCK, 1)
    );
}

/// A variable-length write while in fixed mode (FIXED=0 is allowed).
fn write_var_in_fixed(t: &mut MemTape, n: usize) -> Completion {
    write(t, &vec![0xee; n])
}

#[test]
fn filemarks_six_and_sixteen_and_reading_them() {
    let mut t = mem(1 << 20);
    good(&write(&mut t, b"a"));
    good(&marks(&mut t, 2));
    assert_eq!(pos(&mut t), 3);
    // WRITE FILEMARKS(16) must name where the drive is.
    let wrong = WriteFilemarks16 {
        logical_id: 1,
        count: 1,
        ..Default::default()
    };
    assert_eq!(
        key_asc(&cmd(&mut t, wrong)),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    let right = WriteFilemarks16 {
        logical_id: 3,
        count: 1,
        ..Default::default()
    };
    good(&cmd(&mut t, right));
    assert_eq!(pos(&mut t), 4);
    let too_many = WriteFilemarks6::new(MemTape::MAX_FILEMARKS + 1);
    assert_eq!(
        key_asc(&cmd(&mut t, too_many)),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    good(&marks(&mut t, 0));
    assert_eq!(pos(&mut t), 4, "a count of 0 only flushes");
    good(&cmd(&mut t, Rewind::default()));
    assert_eq!(next_block(&mut t), "a");
    let (c, _) = read(&mut t, 512, false);
    let s = sense(&c);
    assert_eq!(
        (s.key, s.asc, s.filemark, s.information),
        (SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED, true, Some(512))
    );
    assert_eq!(
        position(&mut t, ReadPositionForm::LONG).file_number,
        Some(1)
    );
    assert_eq!(next_block(&mut t), "|");
    assert_eq!(next_block(&mut t), "|");
    assert_eq!(
        position(&mut t, ReadPositionForm::LONG).file_number,
        Some(3)
    );
    assert_eq!(
        next_block(&mut t),
        format!("{:?}", (SenseKey::BLANK_CHECK, Asc::END_OF_DATA))
    );
}

#[test]
fn space_blocks_forward_and_backward_exact() {
    let mut t = layout();
    good(&space(&mut t, SpaceCode::BLOCKS, 1));
    assert_eq!(pos(&mut t), 1);
    // Over a filemark: stops after it, FM, INFORMATION = blocks not spaced.
    let s = sense(&space(&mut t, SpaceCode::BLOCKS, 3));
    assert_eq!(
        (s.key, s.asc, s.filemark, s.information),
        (SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED, true, Some(2))
    );
    assert_eq!(pos(&mut t), 3);
    assert_eq!(next_block(&mut t), "C");
    // Backward over the filemark: stops on its BOP side.
    let s = sense(&space(&mut t, SpaceCode::BLOCKS, -3));
    assert_eq!((s.filemark, s.information), (true, Some(2)));
    assert_eq!(pos(&mut t), 2);
    assert_eq!(next_block(&mut t), "|");
    good(&cmd(
        &mut t,
        Locate10 {
            block: 2,
            ..Default::default()
        },
    ));
    good(&space(&mut t, SpaceCode::BLOCKS, -2));
    assert_eq!(pos(&mut t), 0);
    // Into BOP: NO SENSE, EOM, BEGINNING-OF-PARTITION, residue.
    let s = sense(&space(&mut t, SpaceCode::BLOCKS, -2));
    assert_eq!(
        (s.key, s.asc, s.eom, s.information),
        (
            SenseKey::NO_SENSE,
            Asc::BEGINNING_OF_PARTITION,
            true,
            Some(2)
        )
    );
    assert_eq!(pos(&mut t), 0);
    // Into EOD: BLANK CHECK, END-OF-DATA DETECTED, residue; head at EOD.
    good(&space(&mut t, SpaceCode::END_OF_DATA, 0));
    assert_eq!(pos(&mut t), 8);
    let s = sense(&space(&mut t, SpaceCode::BLOCKS, 5));
    assert_eq!(
        (s.key, s.asc, s.information),
        (SenseKey::BLANK_CHECK, Asc::END_OF_DATA, Some(5))
    );
    assert_eq!(pos(&mut t), 8);
    good(&space(&mut t, SpaceCode::BLOCKS, 0));
    // Sequential filemarks and setmarks are not supported.
    let c = space(&mut t, SpaceCode::SEQUENTIAL_FILEMARKS, 1);
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn space_filemarks_forward_and_backward_exact() {
    let mut t = layout();
    good(&space(&mut t, SpaceCode::FILEMARKS, 1));
    assert_eq!(pos(&mut t), 3);
    assert_eq!(next_block(&mut t), "C");
    // Back one filemark from after C: before FM1, whose read says FM.
    good(&space(&mut t, SpaceCode::FILEMARKS, -1));
    assert_eq!(pos(&mut t), 2);
    assert_eq!(next_block(&mut t), "|");
    good(&space(&mut t, SpaceCode::FILEMARKS, 2));
    assert_eq!(pos(&mut t), 7);
    good(&space(&mut t, SpaceCode::FILEMARKS, -2));
    assert_eq!(pos(&mut t), 4);
    // Forward into EOD: BLANK CHECK with the filemarks not spaced.
    let s = sense(&space(&mut t, SpaceCode::FILEMARKS, 5));
    assert_eq!(
        (s.key, s.asc, s.information),
        (SenseKey::BLANK_CHECK, Asc::END_OF_DATA, Some(2))
    );
    assert_eq!(pos(&mut t), 8);
    // Backward into BOP.
    let s = sense(&space(&mut t, SpaceCode::FILEMARKS, -9));
    assert_eq!(
        (s.asc, s.eom, s.information),
        (Asc::BEGINNING_OF_PARTITION, true, Some(5))
    );
    assert_eq!(pos(&mut t), 0);
    // SPACE(16), 64-bit counts, same rules.
    good(&cmd(&mut t, Space16::new(SpaceCode::FILEMARKS, 3)));
    assert_eq!(pos(&mut t), 7);
    // Back over FM3 (object 6): FM, then D.
    let s = sense(&cmd(&mut t, Space16::new(SpaceCode::BLOCKS, -1)));
    assert_eq!((s.filemark, s.information), (true, Some(1)));
    assert_eq!(pos(&mut t), 6);
    good(&cmd(&mut t, Space16::new(SpaceCode::BLOCKS, -1)));
    assert_eq!(pos(&mut t), 5);
    good(&cmd(&mut t, Space16::new(SpaceCode::END_OF_DATA, 0)));
    assert_eq!(pos(&mut t), 8);
    let s = sense(&cmd(&mut t, Space16::new(SpaceCode::BLOCKS, 1 << 40)));
    // A residue beyond the 32-bit INFORMATION field is not reported.
    assert_eq!(
        (s.key, s.valid, s.information),
        (SenseKey::BLANK_CHECK, false, None)
    );
    let s = sense(&cmd(&mut t, Space16::new(SpaceCode::BLOCKS, 7)));
    assert_eq!(s.information, Some(7));
    // SPACE(16) with a PARAMETER LENGTH is refused.
    let mut raw = Space16::new(SpaceCode::BLOCKS, 1)
        .to_cdb()
        .as_bytes()
        .to_vec();
    raw[13] = 1;
    let c = run(&mut t, &raw, &[], 0).0;
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn locate10_to_an_object_and_past_end_of_data() {
    let mut t = layout();
    good(&cmd(
        &mut t,
        Locate10 {
            block: 5,
            ..Default::default()
        },
    ));
    assert_eq!(pos(&mut t), 5);
    assert_eq!(next_block(&mut t), "D");
    good(&cmd(
        &mut t,
        Locate10 {
            block: 8,
            ..Default::default()
        },
    ));
    assert_eq!(pos(&mut t), 8);
    // Past EOD: BLANK CHECK, END-OF-DATA DETECTED, at EOD.
    good(&cmd(&mut t, Rewind::default()));
    let c = cmd(
        &mut t,
        Locate10 {
            block: 9,
            ..Default::default()
        },
    );
    assert_eq!(key_asc(&c), (SenseKey::BLANK_CHECK, Asc::END_OF_DATA));
    assert_eq!(pos(&mut t), 8);
    // Another partition does not exist.
    let c = cmd(
        &mut t,
        Locate10 {
            cp: true,
            partition: 1,
            ..Default::default()
        },
    );
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn locate16_to_an_object_a_file_and_end_of_data() {
    let mut t = layout();
    let file = |n| Locate16 {
        dest_type: Locate16::DEST_FILE,
        logical_id: n,
        ..Default::default()
    };
    good(&cmd(&mut t, file(2)));
    assert_eq!(pos(&mut t), 5);
    good(&cmd(&mut t, file(0)));
    assert_eq!(pos(&mut t), 0);
    good(&cmd(&mut t, file(4)));
    assert_eq!(pos(&mut t), 8);
    let c = cmd(&mut t, file(5));
    assert_eq!(key_asc(&c), (SenseKey::BLANK_CHECK, Asc::END_OF_DATA));
    assert_eq!(pos(&mut t), 8);
    good(&cmd(
        &mut t,
        Locate16 {
            logical_id: 3,
            ..Default::default()
        },
    ));
    assert_eq!(pos(&mut t), 3);
    good(&cmd(
        &mut t,
        Locate16 {
            dest_type: Locate16::DEST_EOD,
            ..Default::default()
        },
    ));
    assert_eq!(pos(&mut t), 8);
    let c = cmd(
        &mut t,
        Locate16 {
            dest_type: 2,
            ..Default::default()
        },
    );
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    let c = cmd(
        &mut t,
        Locate16 {
            logical_id: u64::MAX,
            ..Default::default()
        },
    );
    assert_eq!(key_asc(&c), (SenseKey::BLANK_CHECK, Asc::END_OF_DATA));
}

#[test]
fn read_position_short_long_extended_true_values() {
    let mut t = layout();
    let p = position(&mut t, ReadPositionForm::SHORT);
    assert!(p.bop && !p.eop && !p.bpew);
    assert_eq!(
        (
            p.first_block,
            p.last_block,
            p.blocks_in_buffer,
            p.bytes_in_buffer
        ),
        (Some(0), Some(0), Some(0), Some(0))
    );
    good(&space(&mut t, SpaceCode::FILEMARKS, 2));
    let p = position(&mut t, ReadPositionForm::LONG);
    assert!(!p.bop);
    assert_eq!(
        (p.partition, p.first_block, p.file_number, p.set_number),
        (0, Some(5), Some(2), Some(0))
    );
    let p = position(&mut t, ReadPositionForm::EXTENDED);
    assert_eq!((p.first_block, p.last_block), (Some(5), Some(5)));
    let p = position(&mut t, ReadPositionForm::SHORT_VENDOR);
    assert_eq!(p.first_block, Some(5));
    // Extended form cut to its allocation length.
    let rp = ReadPosition {
        form: ReadPositionForm::EXTENDED,
        alloc_len: 8,
    };
    let (c, d) = run(&mut t, rp.to_cdb().as_bytes(), &[], 64);
    good(&c);
    assert_eq!(d.len(), 8);
    let bad = ReadPosition {
        form: ReadPositionForm(0x02),
        alloc_len: 0,
    };
    assert_eq!(
        key_asc(&cmd(&mut t, bad)),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
}

#[test]
fn early_warning_then_volume_overflow_variable_and_fixed() {
    let mut t = mem(10_000).with_early_warning(3_000);
    good(&write(&mut t, &[0; 6000]));
    // Ends inside the early-warning zone: written, NO SENSE, EOM, 00/02.
    let s = sense(&write(&mut t, &[0; 2000]));
    assert_eq!(
        (s.key, s.asc, s.eom),
        (SenseKey::NO_SENSE, Asc::END_OF_PARTITION_MEDIUM, true)
    );
    assert_eq!(pos(&mut t), 2);
    let p = position(&mut t, ReadPositionForm::SHORT);
    assert!(p.eop && p.bpew);
    // Past the physical end: VOLUME OVERFLOW, EOM, residue = the block, not written.
    let s = sense(&write(&mut t, &[0; 4000]));
    assert_eq!(
        (s.key, s.asc, s.eom, s.information),
        (
            SenseKey::VOLUME_OVERFLOW,
            Asc::END_OF_PARTITION_MEDIUM,
            true,
            Some(4000)
        )
    );
    assert_eq!(t.objects().len(), 2);
    // Filemarks still go (they take no capacity), reporting EOM.
    let s = sense(&marks(&mut t, 1));
    assert_eq!((s.key, s.eom), (SenseKey::NO_SENSE, true));
    assert_eq!(pos(&mut t), 3);
    // Fixed mode: the blocks that fit are written, INFORMATION = the rest.
    good(&set_block_length(&mut t, 500));
    let c = run(&mut t, Write6::fixed(6).to_cdb().as_bytes(), &[1; 3000], 0).0;
    let s = sense(&c);
    assert_eq!((s.key, s.information), (SenseKey::VOLUME_OVERFLOW, Some(2)));
    assert_eq!(pos(&mut t), 7);
}

/// MODE SELECT(10) of the device configuration extension with `pews` MB.
fn set_pews<L: LogicalUnit>(lu: &mut L, pews: u16) -> Completion {
    let list = ModeParameters {
        medium_type: 0,
        device_specific: 0,
        block_descriptors: vec![],
        pages: DeviceConfigurationExtension {
            pews,
            ..Default::default()
        }
        .emit(false),
    }
    .emit10_select();
    let sel = ModeSelect10 {
        pf: true,
        sp: false,
        param_len: list.len() as u16,
    };
    run(lu, sel.to_cdb().as_bytes(), &list, 0).0
}

#[test]
fn programmable_early_warning_is_reported_once_before_early_warning() {
    // 10 MB, early warning 1 MB before the end, PEWS 2 MB before that.
    let mut t = mem(10_000_000).with_early_warning(1_000_000);
    good(&set_pews(&mut t, 2));
    let mb = vec![0x5a; 1_000_000];
    for _ in 0..7 {
        good(&write(&mut t, &mb));
    }
    assert!(!position(&mut t, ReadPositionForm::SHORT).bpew);
    // The 8th MB crosses into the PEW zone: NO SENSE, EOM, 00/07, written.
    let s = sense(&write(&mut t, &mb));
    assert_eq!(
        (s.key, s.asc, s.eom),
        (SenseKey::NO_SENSE, Asc::PROGRAMMABLE_EARLY_WARNING, true)
    );
    let p = position(&mut t, ReadPositionForm::SHORT);
    assert!(p.bpew && !p.eop);
    // Once only; the next write stays in the zone quietly.
    good(&write(&mut t, &mb));
    let s = sense(&write(&mut t, &mb));
    assert_eq!(s.asc, Asc::END_OF_PARTITION_MEDIUM);
    let s = sense(&write(&mut t, &mb));
    assert_eq!(s.key, SenseKey::VOLUME_OVERFLOW);
    assert_eq!(t.objects().len(), 10);
    // MODE SENSE reports the PEWS that was set.
    let ms = ModeSense10 {
        llbaa: false,
        dbd: true,
        pc: 0,
        page_code: 0x10,
        subpage_code: 1,
        alloc_len: 255,
    };
    let (c, d) = run(&mut t, ms.to_cdb().as_bytes(), &[], 255);
    good(&c);
    let mp = ModeParameters::parse10(&d).unwrap();
    let ext = DeviceConfigurationExtension::parse(mp.page(0x10, 1).unwrap().data).unwrap();
    assert_eq!(ext.pews, 2);
}

fn cartridge(path: &std::path::Path, wp: bool) -> Cartridge {
    Cartridge {
        path: path.to_path_buf(),
        barcode: "L00001".into(),
        write_protected: wp,
    }
}

/// An image drive with `c` loaded and its Unit Attentions taken.
fn image_drive(c: &Cartridge) -> ImageDrive {
    let mut d = ImageDrive::new("D1");
    d.load_cartridge(c).unwrap();
    while run(&mut d, &[0; 6], &[], 0).0.status != Status::GOOD {}
    d
}

#[test]
fn write_protected_cartridge_refuses_writes_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wp.img");
    ImageDrive::create_blank(&path, 1 << 20).unwrap();
    let mut d = image_drive(&cartridge(&path, false));
    good(&write(&mut d, b"kept"));
    d.unload_cartridge().unwrap();
    d.load_cartridge(&cartridge(&path, true)).unwrap();
    assert_eq!(
        key_asc(&run(&mut d, &[0; 6], &[], 0).0).1,
        Asc::NOT_READY_TO_READY_CHANGE
    );
    let protect = (SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
    assert_eq!(key_asc(&write(&mut d, b"x")), protect);
    assert_eq!(key_asc(&marks(&mut d, 1)), protect);
    assert_eq!(key_asc(&cmd(&mut d, Erase::default())), protect);
    let (c, dd) = read(&mut d, 4, false);
    good(&c);
    assert_eq!(dd, b"kept");
    let ms = ModeSense6 {
        dbd: false,
        pc: 0,
        page_code: 0,
        subpage_code: 0,
        alloc_len: 255,
    };
    let (_, h) = run(&mut d, ms.to_cdb().as_bytes(), &[], 255);
    assert!(ModeParameters::parse6(&h).unwrap().write_protected());
    let c = d.unload_cartridge().unwrap();
    assert!(c.write_protected);
    assert_eq!(c.barcode, "L00001");
}

#[test]
fn load_unload_prevent_allow_and_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.img");
    ImageDrive::create_blank(&path, 1 << 20).unwrap();
    let mut d = image_drive(&cartridge(&path, false));
    assert!(d.is_loaded() && d.is_ready());
    good(&write(&mut d, b"one"));
    good(&cmd(&mut d, PreventAllowMediumRemoval { prevent: true }));
    assert!(d.removal_prevented());
    assert_eq!(
        key_asc(&cmd(&mut d, LoadUnload::unload())),
        (SenseKey::ILLEGAL_REQUEST, Asc::MEDIUM_REMOVAL_PREVENTED)
    );
    assert!(matches!(
        d.unload_cartridge(),
        Err(DriveError::RemovalPrevented { .. })
    ));
    let c = run(&mut d, &[0x1e, 0, 0, 0, 2, 0], &[], 0).0;
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    good(&cmd(&mut d, PreventAllowMediumRemoval { prevent: false }));
    good(&cmd(&mut d, LoadUnload::unload()));
    // Unloaded but in the drive: NOT READY, INITIALIZING COMMAND REQUIRED.
    let nr = (
        SenseKey::NOT_READY,
        Asc::NOT_READY_INITIALIZING_COMMAND_REQUIRED,
    );
    assert_eq!(key_asc(&run(&mut d, &[0; 6], &[], 0).0), nr);
    assert_eq!(key_asc(&read(&mut d, 3, false).0), nr);
    good(&cmd(&mut d, LoadUnload::load()));
    assert_eq!(pos(&mut d), 0);
    assert_eq!(next_block(&mut d), "one");
    // The changer takes it out: NOT READY, MEDIUM NOT PRESENT.
    let c = d.unload_cartridge().unwrap();
    assert_eq!(c.path, path);
    assert!(!d.is_loaded());
    let none = (SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT);
    assert_eq!(key_asc(&run(&mut d, &[0; 6], &[], 0).0), none);
    assert_eq!(key_asc(&cmd(&mut d, LoadUnload::load())), none);
    assert_eq!(key_asc(&write(&mut d, b"x")), none);
    assert!(matches!(
        d.unload_cartridge(),
        Err(DriveError::Empty { .. })
    ));
    // Mode sense needs no medium.
    let ms = ModeSense6 {
        dbd: false,
        pc: 0,
        page_code: 0x3f,
        subpage_code: 0,
        alloc_len: 255,
    };
    good(&run(&mut d, ms.to_cdb().as_bytes(), &[], 255).0);
    d.load_cartridge(&c).unwrap();
    assert!(matches!(
        d.load_cartridge(&c),
        Err(DriveError::Occupied { .. })
    ));
}

#[test]
fn erase_and_overwrite_cut_the_medium_at_the_position() {
    let mut t = layout();
    good(&cmd(
        &mut t,
        Locate10 {
            block: 3,
            ..Default::default()
        },
    ));
    good(&write(&mut t, b"Z"));
    assert_eq!(t.objects().len(), 4);
    good(&cmd(
        &mut t,
        Locate10 {
            block: 1,
            ..Default::default()
        },
    ));
    good(&cmd(
        &mut t,
        Erase {
            immed: false,
            long: true,
        },
    ));
    assert_eq!(t.objects(), &[TapeObject::Block(b"A".to_vec())]);
    assert_eq!(pos(&mut t), 1);
}

fn ms(pc: u8, page_code: u8, subpage_code: u8) -> ModeSense10 {
    ModeSense10 {
        llbaa: false,
        dbd: false,
        pc,
        page_code,
        subpage_code,
        alloc_len: 512,
    }
}

#[test]
fn mode_sense_pages_current_changeable_and_saved() {
    let mut t = mem(5_000_000);
    let (c, d) = run(&mut t, ms(0, 0x3f, 0xff).to_cdb().as_bytes(), &[], 512);
    good(&c);
    let mp = ModeParameters::parse10(&d).unwrap();
    assert_eq!(mp.device_specific, 0x10);
    assert_eq!(mp.block_descriptors[0].density_code, DENSITY_CODE);
    let codes: Vec<(u8, u8)> = mp
        .iter_pages()
        .map(|p| (p.page_code, p.subpage_code))
        .collect();
    assert_eq!(codes, [(0x0f, 0), (0x10, 0), (0x10, 1), (0x1d, 0)]);
    let comp = DataCompressionPage::parse(mp.page(0x0f, 0).unwrap().data).unwrap();
    assert!(comp.dcc && !comp.dce);
    // Changeable values: the block length and DCE, PEWS.
    let (_, d) = run(&mut t, ms(1, 0x0f, 0).to_cdb().as_bytes(), &[], 512);
    let mp = ModeParameters::parse10(&d).unwrap();
    assert_eq!(mp.block_descriptors[0].block_length, 0xff_ffff);
    assert!(
        DataCompressionPage::parse(mp.page(0x0f, 0).unwrap().data)
            .unwrap()
            .dce
    );
    // Saved values: SAVING PARAMETERS NOT SUPPORTED.
    let c = run(&mut t, ms(3, 0x0f, 0).to_cdb().as_bytes(), &[], 512).0;
    assert_eq!(
        key_asc(&c),
        (
            SenseKey::ILLEGAL_REQUEST,
            Asc::SAVING_PARAMETERS_NOT_SUPPORTED
        )
    );
    let c = run(&mut t, ms(0, 0x01, 0).to_cdb().as_bytes(), &[], 512).0;
    assert_eq!(
        key_asc(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
}

/// MODE SELECT(10) of `pages` and no block descriptor.
fn select10(t: &mut MemTape, pages: Vec<u8>) -> Completion {
    let list = ModeParameters {
        medium_type: 0,
        device_specific: 0,
        block_descriptors: vec![],
        pages,
    }
    .emit10_select();
    let sel = ModeSelect10 {
        pf: true,
        sp: false,
        param_len: list.len() as u16,
    };
    run(t, sel.to_cdb().as_bytes(), &list, 0).0
}

#[test]
fn mode_select_sets_compression_and_refuses_what_cannot_change() {
    let mut t = mem(5_000_000);
    // MODE SELECT(10): compression on.
    good(&select10(
        &mut t,
        DataCompressionPage {
            dce: true,
            ..Default::default()
        }
        .emit(false),
    ));
    let (_, d) = run(&mut t, ms(0, 0x0f, 0).to_cdb().as_bytes(), &[], 512);
    let mp = ModeParameters::parse10(&d).unwrap();
    assert!(
        DataCompressionPage::parse(mp.page(0x0f, 0).unwrap().data)
            .unwrap()
            .dce
    );
    // WORM cannot be selected; nor an unknown page; nor saving.
    let worm = crate::scsi::ssc::MediumConfigurationPage {
        wormm: true,
        ..Default::default()
    }
    .emit(false);
    let bad = (
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
    assert_eq!(key_asc(&select10(&mut t, worm)), bad);
    assert_eq!(key_asc(&select10(&mut t, vec![0x02, 0x02, 0, 0])), bad);
    assert_eq!(
        key_asc(&set_block_length(&mut t, MemTape::MAX_BLOCK + 1)),
        bad
    );
    let sel = ModeSelect6 {
        pf: true,
        sp: true,
        param_len: 0,
    };
    assert_eq!(
        key_asc(&cmd(&mut t, sel)),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    let sel = ModeSelect6 {
        pf: true,
        sp: false,
        param_len: 12,
    };
    assert_eq!(
        key_asc(&cmd(&mut t, sel)),
        (SenseKey::ILLEGAL_REQUEST, Asc::PARAMETER_LIST_LENGTH_ERROR)
    );
    // MODE SENSE(6) with DBD: no descriptor; cut to its allocation length.
    let ms6 = ModeSense6 {
        dbd: true,
        pc: 0,
        page_code: 0x10,
        subpage_code: 0,
        alloc_len: 10,
    };
    let (c, d) = run(&mut t, ms6.to_cdb().as_bytes(), &[], 255);
    good(&c);
    assert_eq!(d.len(), 10);
    assert_eq!(&d[..4], &[3 + 16, 0, 0x10, 0]);
}

#[test]
fn report_density_support_names_the_one_density() {
    let mut t = mem(5_000_000);
    let r = ReportDensitySupport {
        medium_type: false,
        media: true,
        alloc_len: 512,
    };
    let (c, d) = run(&mut t, r.to_cdb().as_bytes(), &[], 512);
    good(&c);
    let ds = DensitySupport::parse(&d).unwrap();
    assert_eq!(ds.descriptors.len(), 1);
    let dd = &ds.descriptors[0];
    assert_eq!(
        (dd.primary_code, dd.write_ok, dd.default, dd.capacity_mb),
        (DENSITY_CODE, true, true, 5)
    );
    let mt = ReportDensitySupport {
        medium_type: true,
        ..r
    };
    assert_eq!(
        key_asc(&cmd(&mut t, mt)),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    let mut empty = ImageDrive::new("E");
    run(&mut empty, &[0; 6], &[], 0);
    assert_eq!(
        key_asc(&cmd(&mut empty, r)),
        (SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT)
    );
    let all = ReportDensitySupport { media: false, ..r };
    good(&run(&mut empty, all.to_cdb().as_bytes(), &[], 512).0);
}

#[test]
fn shared_drive_is_one_object_for_the_changer_and_the_frontend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.img");
    ImageDrive::create_blank(&path, 1 << 20).unwrap();
    assert!(
        ImageDrive::create_blank(&path, 1 << 20).is_err(),
        "never overwrites"
    );
    let drive = ImageDrive::new("S1").shared();
    let lu = ImageDrive::as_lu(&drive);
    drive
        .lock()
        .unwrap()
        .load_cartridge(&cartridge(&path, false))
        .unwrap();
    let mut l = lu.lock().unwrap();
    while l.execute(&[0; 6], &[], &mut []).status != Status::GOOD {}
    good(&l.execute(Write6::variable(2).to_cdb().as_bytes(), b"hi", &mut []));
    drop(l);
    let d = drive.lock().unwrap();
    assert_eq!(d.position(), 1);
    assert_eq!(d.serial(), "S1");
    assert_eq!(d.cartridge().unwrap().barcode, "L00001");
}

/// Objects read back from an image through a fresh drive.
fn read_all(path: &std::path::Path) -> Vec<TapeObject> {
    let mut m = ImageMedium::open(path, false).unwrap();
    (0..m.count())
        .map(|n| match m.kind(n).unwrap() {
            ObjectKind::Filemark => TapeObject::Filemark,
            ObjectKind::Block(len) => {
                let mut b = vec![0u8; len as usize];
                m.read_block(n, &mut b).unwrap();
                TapeObject::Block(b)
            }
        })
        .collect()
}

#[test]
fn image_survives_unload_and_a_torn_last_record_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.img");
    ImageDrive::create_blank(&path, 1 << 20).unwrap();
    let mut d = image_drive(&cartridge(&path, false));
    good(&write(&mut d, &[1; 300]));
    good(&marks(&mut d, 1));
    good(&write(&mut d, &[2; 200]));
    d.unload_cartridge().unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    good(&{
        let mut d = image_drive(&cartridge(&path, false));
        good(&cmd(&mut d, Space6::end_of_data()));
        write(&mut d, &[3; 100])
    });
    let full = std::fs::read(&path).unwrap();
    assert_eq!(full.len() as u64, before + RECORD_HEADER_LEN as u64 + 100);
    let earlier = vec![
        TapeObject::Block(vec![1; 300]),
        TapeObject::Filemark,
        TapeObject::Block(vec![2; 200]),
    ];
    for cut in before..full.len() as u64 {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let mut d = image_drive(&cartridge(&path, false));
        assert_eq!(
            d.medium().unwrap().recovered_tail,
            cut - before,
            "cut at {cut}"
        );
        good(&cmd(&mut d, Space6::end_of_data()));
        assert_eq!(
            pos(&mut d),
            3,
            "EOD right after the last whole record (cut at {cut})"
        );
        d.unload_cartridge().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            before,
            "tail cut off the file"
        );
        assert_eq!(read_all(&path), earlier, "cut at {cut}");
    }
    // The whole record is kept.
    std::fs::write(&path, &full).unwrap();
    assert_eq!(read_all(&path).len(), 4);
}

#[test]
fn image_damage_is_a_medium_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.img");
    ImageDrive::create_blank(&path, 1 << 20).unwrap();
    let mut d = image_drive(&cartridge(&path, false));
    good(&write(&mut d, &[1; 100]));
    good(&write(&mut d, &[2; 100]));
    d.unload_cartridge().unwrap();
    // A flipped payload byte in the first record: the open cuts there
    // (nothing after a bad record can be trusted to be in order).
    let mut bytes = std::fs::read(&path).unwrap();
    let first_payload = IMAGE_HEADER_LEN as usize + RECORD_HEADER_LEN;
    bytes[first_payload + 5] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert!(read_all(&path).is_empty());
    // Damage after open: reading says MEDIUM ERROR, UNRECOVERED READ ERROR.
    bytes[first_payload + 5] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut d = image_drive(&cartridge(&path, true));
    bytes[first_payload + 5] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (c, _) = read(&mut d, 100, false);
    assert_eq!(
        key_asc(&c),
        (SenseKey::MEDIUM_ERROR, Asc::UNRECOVERED_READ_ERROR)
    );
    // Not an image at all: the load fails with the reason.
    std::fs::write(&path, b"not a tape").unwrap();
    let e = ImageDrive::new("X")
        .load_cartridge(&cartridge(&path, false))
        .unwrap_err();
    assert!(e.to_string().contains("image header"), "{e}");
    let mut h = super::image::tests_header(1 << 20);
    h[20] ^= 1;
    std::fs::write(&path, h).unwrap();
    let e = ImageDrive::new("X")
        .load_cartridge(&cartridge(&path, false))
        .unwrap_err();
    assert!(e.to_string().contains("CRC"), "{e}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Random CDB sequences: no panic, the image and memory drives answer
    /// alike, and the image reopens holding what was written.
    #[test]
    fn random_cdb_sequences_keep_the_image_consistent(
        input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let r = super::exercise::exercise(dir.path(), &input);
        proptest::prop_assert!(r.is_ok(), "{:?}", r);
    }
}

#[test]
fn exercise_writes_and_power_cycles() {
    // Each command: table index, five CDB bytes, data seed, allocation,
    // power-cycle flag (FFh).
    let tur = [17, 0, 0, 0, 0, 0, 0, 0, 0];
    let w = |n: u8| [1, 0, 0, 0, n, 0, 7, 0, 0];
    let fm_then_cycle = [3, 0, 0, 0, 1, 0, 0, 0, 0xff];
    let space_eod = [5, 3, 0, 0, 0, 0, 0, 0, 0];
    let mut input = Vec::new();
    // After the power cycle the drive is at BOP: append at end of data.
    for part in [tur, w(200), w(200), fm_then_cycle, tur, space_eod, w(50)] {
        input.extend(part);
    }
    let dir = tempfile::tempdir().unwrap();
    super::exercise::exercise(dir.path(), &input).unwrap();
    let objs = super::exercise::image_objects(&dir.path().join("exercise.img")).unwrap();
    let lens: Vec<usize> = objs
        .iter()
        .map(|o| match o {
            TapeObject::Block(b) => b.len(),
            TapeObject::Filemark => 0,
        })
        .collect();
    assert_eq!(lens, [200, 200, 0, 50]);
    assert_eq!(objs[2], TapeObject::Filemark);
}

#[test]
fn request_sense_says_why_the_drive_is_not_ready() {
    let mut d = ImageDrive::new("E");
    let rs = [0x03, 0, 0, 0, 18, 0];
    let sense_of = |d: &mut ImageDrive| {
        let (c, b) = run(d, &rs, &[], 18);
        good(&c);
        let s = Sense::parse(&b).unwrap();
        (s.key, s.asc)
    };
    assert_eq!(
        sense_of(&mut d),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    assert_eq!(
        sense_of(&mut d),
        (SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT)
    );
    // A nexus that went away starts afresh when it comes back.
    d.nexus_lost(&Nexus::default());
    assert_eq!(sense_of(&mut d).1, Asc::POWER_ON_RESET);
    // A short allocation cuts the sense.
    let (c, b) = run(&mut d, &[0x03, 0, 0, 0, 8, 0], &[], 18);
    good(&c);
    assert_eq!(b.len(), 8);
}
