//! A CDB sequence from arbitrary bytes, run against a drive over a
//! cartridge image and, in step, against the same drive over memory: the
//! fuzz target `tape_lu` and a property test in the unit tests both use it.
//!
//! What it checks: no command panics; both drives answer every command
//! alike (status, sense, data); after a power cycle in the middle and at
//! the end, the image reopens and holds exactly the objects the memory
//! drive holds, i.e. what was written.

use std::path::Path;

use super::{
    Cartridge, ImageDrive, ImageMedium, Medium, MediumLabel, MemTape, MemoryMedium, ObjectKind,
    TapeDrive, TapeObject,
};
use crate::lu::LogicalUnit;
use crate::scsi::Opcode;

/// Capacity of the exercised media: small, so early warning and VOLUME
/// OVERFLOW are reached.
pub const EXERCISE_CAPACITY: u64 = 256 * 1024;

/// The commands a sequence draws from; anything else is sent raw.
const OPS: [Opcode; 18] = [
    Opcode::READ_6,
    Opcode::WRITE_6,
    Opcode::WRITE_6,
    Opcode::WRITE_FILEMARKS_6,
    Opcode::WRITE_FILEMARKS_16,
    Opcode::SPACE_6,
    Opcode::SPACE_16,
    Opcode::LOCATE_10,
    Opcode::LOCATE_16,
    Opcode::READ_POSITION,
    Opcode::REWIND,
    Opcode::ERASE_6,
    Opcode::LOAD_UNLOAD,
    Opcode::MODE_SELECT_6,
    Opcode::MODE_SENSE_10,
    Opcode::PREVENT_ALLOW_MEDIUM_REMOVAL,
    Opcode::REQUEST_SENSE,
    Opcode::TEST_UNIT_READY,
];

/// Bytes consumed one at a time; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
}

/// The next command: a CDB from the table (its fields from the input,
/// counts kept small so that a sequence stays fast), or raw bytes.
fn next_cdb(b: &mut Bytes) -> Vec<u8> {
    let pick = b.byte() as usize;
    let Some(&op) = OPS.get(pick % (OPS.len() + 1)) else {
        let len = b.byte() as usize % 16 + 1;
        return (0..len).map(|_| b.byte()).collect();
    };
    let len = match op.0 {
        0x00..=0x1f => 6,
        0x20..=0x5f => 10,
        _ => 16,
    };
    let mut cdb: Vec<u8> = std::iter::once(op.0)
        .chain((1..len).map(|_| b.byte()))
        .collect();
    match op {
        // Lengths and counts of at most a few KiB or a few objects.
        Opcode::READ_6 | Opcode::WRITE_6 | Opcode::WRITE_FILEMARKS_6 => {
            cdb[2] = 0;
            // Fixed-block transfers count blocks: fewer of them.
            cdb[3] &= if cdb[1] & 1 != 0 { 0 } else { 0x1f };
        }
        Opcode::WRITE_FILEMARKS_16 => {
            cdb[12] = 0;
            cdb[13] = 0;
        }
        Opcode::MODE_SELECT_6 => cdb[4] = 12,
        _ => {}
    }
    cdb
}

/// Data-Out for `cdb`: enough bytes for a WRITE(6) or MODE SELECT(6).
fn data_out(cdb: &[u8], b: &mut Bytes) -> Vec<u8> {
    let len = match Opcode(cdb[0]) {
        Opcode::WRITE_6 if cdb.len() >= 6 => {
            let n = u32::from_be_bytes([0, cdb[2], cdb[3], cdb[4]]) as usize;
            if cdb[1] & 1 != 0 {
                n * 512
            } else {
                n
            }
        }
        Opcode::MODE_SELECT_6 => 12,
        _ => 0,
    };
    let seed = b.byte();
    (0..len.min(1 << 20))
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// The objects on an image, read back through a freshly opened medium.
pub fn image_objects(path: &Path) -> Result<Vec<TapeObject>, String> {
    let mut m = ImageMedium::open(path, false).map_err(|e| e.to_string())?;
    (0..m.count())
        .map(|n| match m.kind(n) {
            Some(ObjectKind::Filemark) => Ok(TapeObject::Filemark),
            Some(ObjectKind::Block(len)) => {
                let mut buf = vec![0u8; len as usize];
                m.read_block(n, &mut buf).map_err(|e| e.to_string())?;
                Ok(TapeObject::Block(buf))
            }
            None => Err(format!("object {n} vanished")),
        })
        .collect()
}

/// Take the drive's cartridge out (allowing removal first, as a reset
/// does) and check the image against the memory drive.
fn check_image(drive: &mut ImageDrive, shadow: &MemTape, path: &Path) -> Result<(), String> {
    drive.reset();
    drive.unload_cartridge().map_err(|e| e.to_string())?;
    let got = image_objects(path)?;
    if got != shadow.objects() {
        return Err(format!(
            "image holds {} objects, memory {}",
            got.len(),
            shadow.objects().len()
        ));
    }
    Ok(())
}

/// Run the sequence `input` describes against an image in `dir` and a
/// memory drive in step; `Err` says how they differ.
pub fn exercise(dir: &Path, input: &[u8]) -> Result<(), String> {
    let path = dir.join("exercise.img");
    let _ = std::fs::remove_file(&path);
    ImageDrive::create_blank(&path, EXERCISE_CAPACITY).map_err(|e| e.to_string())?;
    let cart = Cartridge {
        path: path.clone(),
        barcode: "FUZZ01".into(),
        write_protected: false,
    };
    let mut drive = ImageDrive::new("X");
    drive.load_cartridge(&cart).map_err(|e| e.to_string())?;
    let mut shadow = MemTape::new("X", EXERCISE_CAPACITY);
    let mut b = Bytes(input);
    let mut step = 0;
    while !b.0.is_empty() {
        step += 1;
        let cdb = next_cdb(&mut b);
        let out = data_out(&cdb, &mut b);
        let alloc = b.byte() as usize * 64;
        let (mut di, mut ds) = (vec![0u8; alloc], vec![0u8; alloc]);
        let ci = drive.execute(&cdb, &out, &mut di);
        let cs = shadow.execute(&cdb, &out, &mut ds);
        let inquiry = cdb.first() == Some(&Opcode::INQUIRY.0);
        if ci != cs || (!inquiry && di[..ci.data_in_len] != ds[..cs.data_in_len]) {
            return Err(format!(
                "step {step}: {cdb:02x?}: image {ci:?}, memory {cs:?}"
            ));
        }
        // A power cycle now and then: the image must reopen as written.
        if b.byte() == 0xff {
            check_image(&mut drive, &shadow, &path)?;
            drive = ImageDrive::new("X");
            drive.load_cartridge(&cart).map_err(|e| e.to_string())?;
            shadow = power_cycled(shadow);
        }
    }
    check_image(&mut drive, &shadow, &path)
}

/// The memory drive after the same power cycle: same objects, new drive.
fn power_cycled(old: MemTape) -> MemTape {
    let medium = MemoryMedium {
        objects: old.objects().to_vec(),
        capacity: EXERCISE_CAPACITY,
    };
    let mut t = TapeDrive::empty("MEMORY TAPE", "X");
    t.load_medium(medium, MediumLabel::default())
        .expect("an empty drive takes a medium");
    t
}
