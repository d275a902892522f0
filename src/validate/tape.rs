//! The tape suite (SSC-4): every command sanmover uses, measured against a
//! layout written first from BOT (with `--dataloss`, on a scratch
//! cartridge the runner has checked):
//!
//! ```text
//! object: 0     1     2     3    4     5     6    EOD
//!         A     B     C     FM   D     E     FM
//! bytes:  1000  2000  3000       4096  4096
//! ```

use crate::device::{DeviceError, Scsi, Tape};
use crate::scsi::sense::{Asc, SenseKey};
use crate::scsi::spc::{ModeParameters, ModeSense6, TestUnitReady};
use crate::scsi::ssc::{
    BlockLimits, Erase, Locate10, Position, Read6, ReadBlockLimits, ReadPosition, ReadPositionForm,
    Rewind, Space6, SpaceCode, Write6, WriteFilemarks6,
};
use crate::scsi::{Cdb, CdbCodec, DeviceType, Status, Wire};
use crate::transport::{Request, Residual};

use super::{sent, CheckDef, Exchange, Finding, Spec, Suite, Target};

/// The layout's block sizes, in order (A, B, C | D, E).
const FILE0: [usize; 3] = [1000, 2000, 3000];
const FILE1: [usize; 2] = [4096, 4096];

/// Block `i`'s bytes: distinct in every block and every position.
fn pattern(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 37 + j * 7 + j / 251) as u8).collect()
}

fn all_blocks() -> Vec<Vec<u8>> {
    FILE0
        .iter()
        .chain(FILE1.iter())
        .enumerate()
        .map(|(i, &n)| pattern(i, n))
        .collect()
}

macro_rules! check {
    ($id:expr, $cites:expr, $expected:expr, $writes:expr, $run:expr) => {
        CheckDef {
            spec: Spec {
                id: $id,
                cites: $cites,
                expected: $expected,
                writes: $writes,
            },
            run: $run,
        }
    };
}

pub static SUITE: Suite = Suite {
    name: "tape",
    applies: |t| t.inquiry.device_type == DeviceType::TAPE,
    prepare: Some(write_layout),
    unready: Some(no_cartridge),
    checks: &[
        check!("tape.tur", "SPC-4 6.37 TEST UNIT READY", "GOOD", false, tur),
        check!("tape.block-limits", "SSC-4 7.2 READ BLOCK LIMITS", "GOOD; MINIMUM BLOCK LENGTH <= MAXIMUM BLOCK LENGTH", false, block_limits),
        check!("tape.mode-sense.block-descriptor", "SSC-4 8.3.1, SPC-4 7.5.5 MODE SENSE(6)", "GOOD with one 8-byte block descriptor", false, mode_sense),
        check!("tape.read-position.bot", "SSC-4 7.6 READ POSITION (short form)", "after REWIND: BOP set, first block 0", false, position_bot),
        check!("tape.write.variable-roundtrip", "SSC-4 6.8 WRITE (6), 6.4 READ (6)", "the three variable blocks of file 0 read back with their lengths and bytes", true, variable_roundtrip),
        check!("tape.read.filemark", "SSC-4 6.4 READ (6), 4.2.7", "after the last block of file 0: CHECK CONDITION, NO SENSE, FILEMARK DETECTED (00/01) with FILEMARK set", true, read_filemark),
        check!("tape.read.ili-underlength", "SSC-4 6.4 READ (6)", "a 1000-byte block read with a 2000-byte buffer: NO SENSE with ILI, INFORMATION 1000, the 1000 bytes", true, ili_underlength),
        check!("tape.read.ili-residual", "SAM-5 5.4.2, RFC 7143 11.4.5", "the iSCSI residual of that read is an underflow of 1000 bytes", true, ili_residual),
        check!("tape.read.sili", "SSC-4 6.4 READ (6) SILI", "with SILI: GOOD, the 1000 bytes, residual underflow 1000", true, sili),
        check!("tape.read.overlength", "SSC-4 6.4 READ (6)", "a 2000-byte block read with a 1000-byte buffer: ILI, INFORMATION -1000, and the next READ returns the block after it", true, overlength),
        check!("tape.read.buffer-trap", "SSC-4 6.4 READ (6)", "a 1000-byte block read with a 1500-byte buffer (between 1x and 2x the block): ILI, INFORMATION 500, and the block's own 1000 bytes", true, buffer_trap),
        check!("tape.space.forward-blocks", "SSC-4 6.6 SPACE (6), code 0", "from BOT, SPACE 2 blocks then READ returns block C (object 2)", true, space_forward_blocks),
        check!("tape.space.forward-filemark", "SSC-4 6.6 SPACE (6), code 1", "from BOT, SPACE 1 filemark then READ returns block D (object 4)", true, space_forward_filemark),
        check!("tape.space.reverse-blocks", "SSC-4 6.6 SPACE (6), code 0, negative count", "after reading D, SPACE -1 block then READ returns D again", true, space_reverse_blocks),
        check!("tape.space.reverse-filemark", "SSC-4 6.6 SPACE (6), code 1, negative count", "after reading E, SPACE -1 filemark ends on the BOP side of the filemark before D: READ returns that filemark, then D", true, space_reverse_filemark),
        check!("tape.space.eod", "SSC-4 6.6 SPACE (6), code 3; 4.2.13", "SPACE to end of data GOOD, then READ: BLANK CHECK, END-OF-DATA DETECTED (08/00/05)", true, space_eod),
        check!("tape.read.eod", "SSC-4 6.4 READ (6), 4.2.13", "reading past the last filemark: BLANK CHECK, END-OF-DATA DETECTED (08/00/05)", true, read_eod),
        check!("tape.space.into-eod", "SSC-4 6.6 SPACE (6); 4.2.13", "from BOT, SPACE 5 filemarks (there are 2): CHECK CONDITION, BLANK CHECK, END-OF-DATA DETECTED (08/00/05)", true, space_into_eod),
        check!("tape.read.filemark-residual", "SAM-5 5.4.2, RFC 7143 11.4.5.2", "a READ(6) of 8192 bytes that meets a filemark moves no data: residual underflow 8192", true, filemark_residual),
        check!("tape.read.eod-residual", "SAM-5 5.4.2, RFC 7143 11.4.5.2", "a READ(6) of 8192 bytes at end of data moves no data: residual underflow 8192", true, eod_residual),
        check!("tape.read-position.after-reads", "SSC-4 7.6 READ POSITION (short form)", "after reading A and B from BOT: first block 2", true, position_after_reads),
        check!("tape.locate", "SSC-4 7.3 LOCATE (10)", "LOCATE to object 5 then READ returns block E", true, locate),
        check!("tape.reservation.two-initiators", "SPC-4 5.13 PERSISTENT RESERVE (or SPC-2 RESERVE(6))", "with the drive reserved (Write Exclusive) by one initiator, WRITE FILEMARKS from a second initiator: RESERVATION CONFLICT", true, reservation),
        check!("tape.write.fixed-roundtrip", "SSC-4 8.3.3 MODE SELECT block length, 6.8 WRITE (6) FIXED=1, 6.4 READ (6) FIXED=1", "with a 512-byte block length: 4 fixed blocks written read back as written (the block length is set back to variable afterwards)", true, fixed_roundtrip),
        check!("tape.erase", "SSC-4 6.2 ERASE (6)", "at BOT, ERASE(6) LONG=0 GOOD; then READ: BLANK CHECK, END-OF-DATA DETECTED (08/00/05)", true, erase),
        check!("tape.early-warning", "SSC-4 4.2.5 early warning, 6.8 WRITE (6)", "writing from BOT toward the end of the medium: NO SENSE with EOM (early warning) first, then VOLUME OVERFLOW (not supported when 16 MiB do not reach the end)", true, early_warning),
    ],
};

/// A drive without a cartridge (a library's empty drive) has nothing to
/// check (SPC-4 6.37: NOT READY, MEDIUM NOT PRESENT 02/3A/xx).
fn no_cartridge(t: &mut Target) -> Option<String> {
    let x = t.send(Request::none(TestUnitReady.to_cdb())).ok()?;
    let s = x.sense.as_ref()?;
    (s.key == SenseKey::NOT_READY && s.asc.0 >> 8 == 0x3a).then(|| {
        format!(
            "no cartridge in the drive: TEST UNIT READY answered {}",
            x.summary()
        )
    })
}

/// A tape session of its own (the device layer's verbs) on the LU.
fn tape_session(t: &Target) -> Result<Tape<super::Dyn>, DeviceError> {
    let s = t
        .open(&t.open_url, &t.initiator)
        .map_err(|e| DeviceError::Transport {
            device: t.url.clone(),
            source: e,
        })?;
    Tape::open(s)
}

/// Write the layout from BOT in variable-block mode.
fn write_layout(t: &mut Target) -> Result<(), DeviceError> {
    let mut tape = tape_session(t)?;
    tape.set_block_length(0)?;
    tape.rewind()?;
    for (i, b) in all_blocks().into_iter().enumerate() {
        tape.write_block(b)?;
        if i == FILE0.len() - 1 {
            tape.write_filemarks(1)?;
        }
    }
    tape.write_filemarks(1)?;
    tape.rewind()
}

fn run(t: &mut Target, cdb: Cdb) -> Result<Exchange, DeviceError> {
    t.send(Request::none(cdb).with_timeout(crate::device::tape::LONG_TIMEOUT))
}

fn rewind(t: &mut Target) -> Result<Exchange, DeviceError> {
    run(t, Rewind { immed: false }.to_cdb())
}

fn space(t: &mut Target, code: SpaceCode, count: i32) -> Result<Exchange, DeviceError> {
    let cdb = match Space6::new(code, count) {
        Ok(s) => s.to_cdb(),
        Err(e) => {
            return Err(DeviceError::Protocol {
                device: t.url.clone(),
                message: e.to_string(),
            })
        }
    };
    run(t, cdb)
}

fn read(t: &mut Target, len: usize, sili: bool) -> Result<Exchange, DeviceError> {
    let cdb = Read6 {
        fixed: false,
        sili,
        length: len as u32,
    }
    .to_cdb();
    t.send(Request::data_in(cdb, len))
}

/// The bytes a read found, by its sense INFORMATION on ILI (the length tgt
/// reports correctly), else by the transport's count.
fn block_len(x: &Exchange, requested: usize) -> usize {
    match &x.sense {
        Some(s) if s.ili => match s.information_i32() {
            Some(residue) if residue >= 0 => requested.saturating_sub(residue as usize),
            _ => requested,
        },
        _ => x.data.len(),
    }
}

/// Which block of the layout these bytes are, if any.
fn which(data: &[u8]) -> String {
    match all_blocks().iter().position(|b| b.as_slice() == data) {
        Some(i) => format!("block {}", ["A", "B", "C", "D", "E"][i]),
        None if data.is_empty() => "no data".into(),
        None => format!("{} bytes matching no block of the layout", data.len()),
    }
}

fn filemark(x: &Exchange) -> bool {
    x.sense.as_ref().is_some_and(|s| s.filemark)
}

fn eod(x: &Exchange) -> bool {
    x.is(SenseKey::BLANK_CHECK, Asc::END_OF_DATA)
}

fn tur(t: &mut Target) -> Result<Finding, DeviceError> {
    let cdb = TestUnitReady.to_cdb();
    let x = t.send(Request::none(cdb))?;
    Ok(Finding::judge(x.good(), sent(&cdb), x.summary()))
}

fn block_limits(t: &mut Target) -> Result<Finding, DeviceError> {
    let cdb = ReadBlockLimits.to_cdb();
    let x = t.send(Request::data_in(cdb, BlockLimits::LEN))?;
    let obs = match BlockLimits::parse(&x.data) {
        Ok(l) => format!(
            "{}; min {} max {}",
            x.summary(),
            l.min_block_length,
            l.max_block_length
        ),
        Err(e) => format!("{}; {e}", x.summary()),
    };
    let ok =
        BlockLimits::parse(&x.data).is_ok_and(|l| l.min_block_length as u32 <= l.max_block_length);
    Ok(Finding::judge(x.good() && ok, sent(&cdb), obs))
}

fn mode_sense(t: &mut Target) -> Result<Finding, DeviceError> {
    let cdb = ModeSense6 {
        dbd: false,
        pc: 0,
        page_code: 0,
        subpage_code: 0,
        alloc_len: 255,
    }
    .to_cdb();
    let x = t.send(Request::data_in(cdb, 255))?;
    let p = ModeParameters::parse6(&x.data);
    let obs = match &p {
        Ok(m) => format!(
            "{}; {} block descriptors{}",
            x.summary(),
            m.block_descriptors.len(),
            m.block_descriptors
                .first()
                .map_or(String::new(), |b| format!(
                    ", block length {}",
                    b.block_length
                ))
        ),
        Err(e) => format!("{}; {e}", x.summary()),
    };
    let ok = p.is_ok_and(|m| m.block_descriptors.len() == 1);
    Ok(Finding::judge(x.good() && ok, sent(&cdb), obs))
}

fn read_position(t: &mut Target) -> Result<(Exchange, Option<Position>), DeviceError> {
    let rp = ReadPosition::short();
    let cdb = rp.to_cdb();
    let x = t.send(Request::data_in(cdb, rp.data_len()))?;
    let p = Position::parse(ReadPositionForm::SHORT, &x.data).ok();
    Ok((x, p))
}

fn position_text(x: &Exchange, p: &Option<Position>) -> String {
    match p {
        Some(p) => match p.first_block {
            Some(b) => format!("{}; BOP {}, first block {b}", x.summary(), p.bop),
            None => format!(
                "{}; BOP {}, block position unknown (BPU)",
                x.summary(),
                p.bop
            ),
        },
        None => x.summary(),
    }
}

fn position_bot(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let (x, p) = read_position(t)?;
    if x.invalid_opcode() {
        return Ok(Finding::unsupported(
            sent(&x.cdb),
            x.summary(),
            "no READ POSITION",
        ));
    }
    let ok = p
        .as_ref()
        .is_some_and(|p| p.bop && p.first_block == Some(0));
    Ok(Finding::judge(
        ok,
        format!("REWIND; {}", sent(&x.cdb)),
        position_text(&x, &p),
    ))
}

fn position_after_reads(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    read(t, 2 * FILE0[0], true)?;
    read(t, 2 * FILE0[1], true)?;
    let (x, p) = read_position(t)?;
    if x.invalid_opcode() {
        return Ok(Finding::unsupported(
            sent(&x.cdb),
            x.summary(),
            "no READ POSITION",
        ));
    }
    let ok = p.as_ref().is_some_and(|p| p.first_block == Some(2));
    let f = Finding::judge(
        ok,
        format!("REWIND; READ A; READ B; {}", sent(&x.cdb)),
        position_text(&x, &p),
    );
    Ok(f.fail_because(
        "READ POSITION does not count the blocks read (a constant answer cannot be trusted)",
    ))
}

fn variable_roundtrip(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let mut seen = Vec::new();
    let mut ok = true;
    for (i, &n) in FILE0.iter().enumerate() {
        let x = read(t, 2 * n, true)?;
        let got = &x.data[..block_len(&x, 2 * n).min(x.data.len())];
        ok &= got == pattern(i, n).as_slice();
        seen.push(format!("{} ({})", which(got), x.summary()));
    }
    Ok(Finding::judge(
        ok,
        "REWIND; 3 x READ(6) variable, SILI, buffer 2x the block",
        seen.join("; "),
    ))
}

fn read_filemark(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    space(t, SpaceCode::BLOCKS, 3)?;
    let x = read(t, 8192, false)?;
    let ok = filemark(&x) && x.is(SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED);
    Ok(Finding::judge(
        ok,
        format!("REWIND; SPACE 3 blocks; {}", sent(&x.cdb)),
        x.summary(),
    ))
}

/// Block A (1000 bytes) read with a 2000-byte buffer, SILI off.
fn read_a_underlength(t: &mut Target) -> Result<Exchange, DeviceError> {
    rewind(t)?;
    read(t, 2000, false)
}

fn ili_underlength(t: &mut Target) -> Result<Finding, DeviceError> {
    let x = read_a_underlength(t)?;
    let ili = x
        .sense
        .as_ref()
        .is_some_and(|s| s.ili && s.information_i32() == Some(1000));
    let data_ok = x.data.get(..1000) == Some(pattern(0, 1000).as_slice());
    Ok(Finding::judge(
        ili && data_ok,
        format!("REWIND; {}", sent(&x.cdb)),
        format!(
            "{}; {}",
            x.summary(),
            which(x.data.get(..1000).unwrap_or(&x.data))
        ),
    ))
}

fn ili_residual(t: &mut Target) -> Result<Finding, DeviceError> {
    let x = read_a_underlength(t)?;
    let ok = x.residual == Residual::Underflow(1000);
    let f = Finding::judge(ok, format!("REWIND; {}", sent(&x.cdb)), x.summary());
    Ok(f.fail_because(
        "the transport's residual disagrees with the sense INFORMATION; trust INFORMATION",
    ))
}

fn sili(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let x = read(t, 2000, true)?;
    let ok = x.good()
        && x.residual == Residual::Underflow(1000)
        && x.data.get(..1000) == Some(pattern(0, 1000).as_slice());
    Ok(Finding::judge(
        ok,
        format!("REWIND; {}", sent(&x.cdb)),
        x.summary(),
    ))
}

fn overlength(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    space(t, SpaceCode::BLOCKS, 1)?;
    let x = read(t, 1000, false)?;
    let ili = x
        .sense
        .as_ref()
        .is_some_and(|s| s.ili && s.information_i32() == Some(-1000));
    let next = read(t, 6000, true)?;
    let after = which(&next.data[..block_len(&next, 6000).min(next.data.len())]);
    let ok = ili && after == "block C";
    Ok(Finding::judge(
        ok,
        format!("REWIND; SPACE 1 block; {}; READ(6) 6000", sent(&x.cdb)),
        format!("{}; next read: {after}", x.summary()),
    ))
}

fn buffer_trap(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let x = read(t, 1500, false)?;
    let ili = x
        .sense
        .as_ref()
        .is_some_and(|s| s.ili && s.information_i32() == Some(500));
    let got = x.data.get(..1000).unwrap_or(&x.data);
    let ok = ili && got == pattern(0, 1000).as_slice();
    let f = Finding::judge(
        ok,
        format!("REWIND; {}", sent(&x.cdb)),
        format!("{}; data: {}", x.summary(), which(got)),
    );
    Ok(f.fail_because("a buffer between 1x and 2x the block does not return the block's own bytes: read with a buffer of twice the largest block"))
}

/// After `moves`, the next READ's block (by its bytes).
fn read_after(t: &mut Target, what: &str) -> Result<(String, String), DeviceError> {
    let x = read(t, 8192, true)?;
    let got = if filemark(&x) {
        "a filemark".to_string()
    } else if eod(&x) {
        "end of data".to_string()
    } else {
        which(&x.data[..block_len(&x, 8192).min(x.data.len())])
    };
    Ok((format!("{what}; READ(6) 8192 SILI"), got))
}

fn moved(
    t: &mut Target,
    steps: &[(SpaceCode, i32)],
    reads_first: usize,
    expect: &str,
    what: &str,
) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let mut spaced = Vec::new();
    for &(code, n) in &steps[..1] {
        let x = space(t, code, n)?;
        spaced.push(x.summary());
    }
    for _ in 0..reads_first {
        read(t, 8192, true)?;
    }
    for &(code, n) in &steps[1..] {
        let x = space(t, code, n)?;
        spaced.push(x.summary());
    }
    let (sent, got) = read_after(t, what)?;
    Ok(Finding::judge(
        got == expect,
        sent,
        format!("SPACE: {}; READ found {got}", spaced.join(", ")),
    ))
}

fn space_forward_blocks(t: &mut Target) -> Result<Finding, DeviceError> {
    moved(
        t,
        &[(SpaceCode::BLOCKS, 2)],
        0,
        "block C",
        "REWIND; SPACE(6) 2 blocks",
    )
}

fn space_forward_filemark(t: &mut Target) -> Result<Finding, DeviceError> {
    moved(
        t,
        &[(SpaceCode::FILEMARKS, 1)],
        0,
        "block D",
        "REWIND; SPACE(6) 1 filemark",
    )
}

fn space_reverse_blocks(t: &mut Target) -> Result<Finding, DeviceError> {
    moved(
        t,
        &[(SpaceCode::FILEMARKS, 1), (SpaceCode::BLOCKS, -1)],
        1,
        "block D",
        "REWIND; SPACE 1 filemark; READ D; SPACE(6) -1 block",
    )
}

fn space_reverse_filemark(t: &mut Target) -> Result<Finding, DeviceError> {
    let f = moved(
        t,
        &[(SpaceCode::FILEMARKS, 1), (SpaceCode::FILEMARKS, -1)],
        2,
        "a filemark",
        "REWIND; SPACE 1 filemark; READ D; READ E; SPACE(6) -1 filemark",
    )?;
    Ok(f.fail_because("backward SPACE over filemarks does not end on the BOP side of the filemark; position with REWIND and forward SPACE"))
}

fn space_eod(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let s = space(t, SpaceCode::END_OF_DATA, 0)?;
    let x = read(t, 8192, true)?;
    let ok = s.good() && eod(&x);
    Ok(Finding::judge(
        ok,
        format!("REWIND; {}; {}", sent(&s.cdb), sent(&x.cdb)),
        format!("SPACE: {}; READ: {}", s.summary(), x.summary()),
    ))
}

fn read_eod(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    space(t, SpaceCode::FILEMARKS, 2)?;
    let x = read(t, 8192, true)?;
    Ok(Finding::judge(
        eod(&x),
        format!("REWIND; SPACE 2 filemarks; {}", sent(&x.cdb)),
        x.summary(),
    ))
}

fn space_into_eod(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let x = space(t, SpaceCode::FILEMARKS, 5)?;
    let f = Finding::judge(eod(&x), format!("REWIND; {}", sent(&x.cdb)), x.summary());
    Ok(f.fail_because("end of data met by SPACE is not BLANK CHECK 00/05; treat 00/05 with any key as end of data"))
}

const NO_DATA_MOVED: &str = "the transport's residual says data moved where none did; take lengths from the sense INFORMATION";

/// A READ of 8192 bytes that moves no data, judged on its residual.
fn residual_at(
    t: &mut Target,
    filemarks: i32,
    blocks: i32,
    what: &str,
) -> Result<Finding, DeviceError> {
    rewind(t)?;
    space(t, SpaceCode::FILEMARKS, filemarks)?;
    if blocks > 0 {
        space(t, SpaceCode::BLOCKS, blocks)?;
    }
    let x = read(t, 8192, false)?;
    let ok = x.residual == Residual::Underflow(8192);
    let f = Finding::judge(
        ok,
        format!(
            "REWIND; SPACE {filemarks} filemarks, {blocks} blocks; {} ({what})",
            sent(&x.cdb)
        ),
        x.summary(),
    );
    Ok(f.fail_because(NO_DATA_MOVED))
}

fn filemark_residual(t: &mut Target) -> Result<Finding, DeviceError> {
    residual_at(t, 1, 2, "meets the filemark after E")
}

fn eod_residual(t: &mut Target) -> Result<Finding, DeviceError> {
    residual_at(t, 2, 0, "at end of data")
}

fn erase(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let cdb = Erase {
        immed: false,
        long: false,
    }
    .to_cdb();
    let x = run(t, cdb)?;
    if x.invalid_opcode() {
        return Ok(Finding::unsupported(
            sent(&cdb),
            x.summary(),
            "no ERASE(6): the drive answers INVALID COMMAND OPERATION CODE",
        ));
    }
    rewind(t)?;
    let r = read(t, 8192, true)?;
    Ok(Finding::judge(
        x.good() && eod(&r),
        format!("REWIND; {}; REWIND; READ(6)", sent(&cdb)),
        format!("ERASE: {}; READ: {}", x.summary(), r.summary()),
    ))
}

fn locate(t: &mut Target) -> Result<Finding, DeviceError> {
    rewind(t)?;
    let cdb = Locate10 {
        immed: false,
        bt: false,
        cp: false,
        block: 5,
        partition: 0,
    }
    .to_cdb();
    let x = run(t, cdb)?;
    if x.invalid_opcode() {
        return Ok(Finding::unsupported(
            sent(&cdb),
            x.summary(),
            "no LOCATE(10): the drive answers INVALID COMMAND OPERATION CODE",
        ));
    }
    let (_, got) = read_after(t, "")?;
    Ok(Finding::judge(
        x.good() && got == "block E",
        format!("REWIND; {}; READ(6)", sent(&cdb)),
        format!("{}; READ found {got}", x.summary()),
    ))
}

fn reservation(t: &mut Target) -> Result<Finding, DeviceError> {
    let mut first = tape_session(t)?;
    let key = 0x5a4e_0000_0000_0001;
    let r = first.reserve(key)?;
    if r == crate::device::tape::Reservation::None {
        return Ok(Finding::unsupported(
            "PERSISTENT RESERVE OUT (register, reserve Write Exclusive); RESERVE(6)",
            "both answered INVALID COMMAND OPERATION CODE",
            "the drive has no reservations of either kind",
        ));
    }
    let other = format!("{}-validate2", t.initiator);
    let s = t
        .open(&t.open_url, &other)
        .map_err(|e| DeviceError::Transport {
            device: t.url.clone(),
            source: e,
        })?;
    let mut second = Scsi::new(s);
    let cdb = WriteFilemarks6::new(0).to_cdb();
    let x = super::exchange(&mut second, Request::none(cdb))?;
    first.release(r)?;
    let ok = x.status == Status::RESERVATION_CONFLICT;
    Ok(Finding::judge(
        ok,
        format!("{r:?} by {}; {} by {other}", t.initiator, sent(&cdb)),
        x.summary(),
    ))
}

/// Bytes the early-warning check writes at most before it gives up.
const EW_CAP: usize = 16 << 20;
const EW_BLOCK: usize = 64 << 10;

/// Write 64 KiB blocks from BOT until VOLUME OVERFLOW or `EW_CAP`; the
/// bytes written when early warning and overflow were first reported.
/// Where the medium ended, as `write_to_end` saw it.
struct EndOfMedium {
    /// Bytes written when early warning was first reported.
    warned: Option<usize>,
    /// Bytes written when writing stopped, and the answer that stopped it;
    /// None when the cap was reached first.
    end: Option<(usize, String)>,
}

fn write_to_end(t: &mut Target) -> Result<EndOfMedium, DeviceError> {
    rewind(t)?;
    let (mut written, mut warned) = (0usize, None);
    while written < EW_CAP {
        let x = t.send(Request::data_out(
            Write6::variable(EW_BLOCK as u32).to_cdb(),
            vec![0x5a; EW_BLOCK],
        ))?;
        match &x.sense {
            None if x.good() => {}
            Some(s) if s.key == SenseKey::VOLUME_OVERFLOW => {
                return Ok(EndOfMedium {
                    warned,
                    end: Some((written, x.summary())),
                })
            }
            Some(s) if s.eom && s.key == SenseKey::NO_SENSE => {
                warned.get_or_insert(written);
            }
            _ => {
                return Ok(EndOfMedium {
                    warned,
                    end: Some((written, x.summary())),
                })
            }
        }
        written += EW_BLOCK;
    }
    Ok(EndOfMedium { warned, end: None })
}

fn early_warning(t: &mut Target) -> Result<Finding, DeviceError> {
    let what = format!(
        "REWIND; WRITE(6) of {} KiB blocks until VOLUME OVERFLOW (at most {} MiB)",
        EW_BLOCK >> 10,
        EW_CAP >> 20
    );
    let EndOfMedium { warned, end } = write_to_end(t)?;
    rewind(t)?;
    let Some((at, answer)) = end else {
        return Ok(Finding::unsupported(what, format!("{} MiB written, no end of medium", EW_CAP >> 20), "the medium holds more than the check writes; validate a small cartridge to see early warning and VOLUME OVERFLOW (tgt: test-rig/tgt/reset-tape.sh 1)"));
    };
    let obs = match warned {
        Some(w) => format!("early warning after {w} bytes; at {at} bytes: {answer}"),
        None => format!("no early warning; at {at} bytes: {answer}"),
    };
    let overflow = answer.contains("VOLUME OVERFLOW");
    let f = Finding::judge(warned.is_some() && overflow, what, obs);
    Ok(f.fail_because("the end of the medium came without an early warning (EOM with NO SENSE) before it, or not as VOLUME OVERFLOW"))
}

fn fixed_roundtrip(t: &mut Target) -> Result<Finding, DeviceError> {
    let mut tape = tape_session(t)?;
    if let Err(e) = tape.set_block_length(512) {
        return Ok(Finding::unsupported(
            "MODE SELECT(6) block length 512",
            e.to_string(),
            "the drive does not take a fixed block length of 512",
        ));
    }
    tape.rewind()?;
    let data: Vec<u8> = (0..4).flat_map(|i| pattern(10 + i, 512)).collect();
    let w = t.send(Request::data_out(Write6::fixed(4).to_cdb(), data.clone()))?;
    if w.refused() {
        tape.set_block_length(0)?;
        return Ok(Finding::unsupported(sent(&w.cdb), w.summary(), "the drive takes a 512-byte block length in MODE SELECT but refuses WRITE(6) with FIXED=1"));
    }
    let fm = run(t, WriteFilemarks6::new(1).to_cdb())?;
    rewind(t)?;
    let cdb = Read6::fixed(4).to_cdb();
    let r = t.send(Request::data_in(cdb, 2048))?;
    tape.set_block_length(0)?;
    let ok = w.good() && fm.good() && r.good() && r.data == data;
    let obs = format!(
        "WRITE: {}; READ: {}{}",
        w.summary(),
        r.summary(),
        if r.data == data {
            ", same bytes"
        } else {
            ", different bytes"
        }
    );
    Ok(Finding::judge(
        ok,
        format!(
            "MODE SELECT 512; REWIND; {}; WRITE FILEMARKS 1; REWIND; {}",
            sent(&w.cdb),
            sent(&cdb)
        ),
        obs,
    ))
}
