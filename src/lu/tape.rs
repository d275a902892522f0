//! A tape held in memory (SSC-4): correct where tgt is not (READ POSITION,
//! backward SPACE, overlength reads that keep their data), with a capacity
//! and an early-warning zone, so the engines are tested against the
//! standard.

use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::spc::{BlockDescriptor, ModeParameters, ModeSelect6, ModeSense6};
use crate::scsi::ssc::{
    BlockLimits, Locate10, Position, Read6, ReadPosition, ReadPositionForm, Space6, SpaceCode,
    Write6, WriteFilemarks6,
};
use crate::scsi::{CdbCodec, DeviceType, Opcode, Wire};

use super::{reply, Completion, Identity, LogicalUnit};

/// One object on the in-memory tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeObject {
    Block(Vec<u8>),
    Filemark,
}

/// A tape held in memory: a list of blocks and filemarks, the head before
/// object `pos`, end of data after the last object.
#[derive(Debug, Clone)]
pub struct MemTape {
    id: Identity,
    objects: Vec<TapeObject>,
    pos: usize,
    /// Bytes of block data the medium holds.
    capacity: u64,
    /// Writes that end past `capacity - early_warning` report EOM.
    early_warning: u64,
    /// MODE SELECT block length; 0 = variable.
    block_length: u32,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl MemTape {
    pub const MAX_BLOCK: u32 = 8 << 20;

    pub fn new(serial: &str, capacity: u64) -> Self {
        MemTape {
            id: Identity::new(DeviceType::TAPE, "MEMORY TAPE", serial),
            objects: Vec::new(),
            pos: 0,
            capacity,
            early_warning: capacity / 20,
            block_length: 0,
            bytes_read: 0,
            bytes_written: 0,
        }
    }

    pub fn with_early_warning(mut self, bytes: u64) -> Self {
        self.early_warning = bytes.min(self.capacity);
        self
    }

    pub fn objects(&self) -> &[TapeObject] {
        &self.objects
    }

    /// The medium itself, for tests that damage it.
    pub fn objects_mut(&mut self) -> &mut [TapeObject] {
        &mut self.objects
    }

    fn used(&self) -> u64 {
        self.objects
            .iter()
            .map(|o| match o {
                TapeObject::Block(b) => b.len() as u64,
                TapeObject::Filemark => 0,
            })
            .sum()
    }

    /// Logical object number of the head (blocks and filemarks both count,
    /// SSC-4 4.2.10).
    fn position(&self) -> Position {
        Position {
            form: ReadPositionForm::SHORT,
            bop: self.pos == 0,
            eop: false,
            locu: false,
            bycu: false,
            lolu: false,
            perr: false,
            bpew: self.used() + self.early_warning > self.capacity,
            mpu: false,
            lonu: false,
            partition: 0,
            first_block: Some(self.pos as u64),
            last_block: Some(self.pos as u64),
            file_number: Some(
                self.objects[..self.pos]
                    .iter()
                    .filter(|o| **o == TapeObject::Filemark)
                    .count() as u64,
            ),
            set_number: None,
            blocks_in_buffer: Some(0),
            bytes_in_buffer: Some(0),
        }
    }

    fn eod_sense() -> Sense {
        Sense::new(SenseKey::BLANK_CHECK, Asc::END_OF_DATA).with_eom()
    }

    fn read6(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let Ok(r) = Read6::parse(cdb) else {
            return Completion::bad_field(1);
        };
        if r.fixed {
            // Fixed-block reads are not emulated; the engines use variable.
            return Completion::bad_field(1);
        }
        let requested = r.length as usize;
        match self.objects.get(self.pos) {
            None => Completion::check(Self::eod_sense()),
            Some(TapeObject::Filemark) => {
                self.pos += 1;
                // SSC-4 4.2.8: INFORMATION = requested - 0.
                Completion::check(
                    Sense::new(SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED)
                        .with_filemark()
                        .with_information(requested as u64),
                )
            }
            Some(TapeObject::Block(b)) => {
                let actual = b.len();
                let n = actual.min(requested).min(data_in.len());
                data_in[..n].copy_from_slice(&b[..n]);
                self.pos += 1;
                self.bytes_read += n as u64;
                if actual == requested || (r.sili && actual < requested) {
                    Completion::good(n)
                } else {
                    // SSC-4 4.2.3.2: ILI, INFORMATION = requested - actual,
                    // negative (two's complement) for an overlength block.
                    let info = (requested as i64 - actual as i64) as i32 as u32 as u64;
                    Completion::check_with_data(
                        Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL)
                            .with_ili()
                            .with_information(info),
                        n,
                    )
                }
            }
        }
    }

    fn write6(&mut self, cdb: &[u8], data_out: &[u8]) -> Completion {
        let Ok(w) = Write6::parse(cdb) else {
            return Completion::bad_field(1);
        };
        let len = w.length as usize;
        if w.fixed || len > Self::MAX_BLOCK as usize || data_out.len() < len {
            return Completion::bad_field(2);
        }
        self.objects.truncate(self.pos);
        let used = self.used();
        if used + len as u64 > self.capacity {
            // SSC-4 4.2.5: past the physical end, VOLUME OVERFLOW, not
            // written, INFORMATION = the residue.
            return Completion::check(
                Sense::new(SenseKey::VOLUME_OVERFLOW, Asc::END_OF_PARTITION_MEDIUM)
                    .with_eom()
                    .with_information(len as u64),
            );
        }
        self.objects
            .push(TapeObject::Block(data_out[..len].to_vec()));
        self.pos += 1;
        self.bytes_written += len as u64;
        if used + len as u64 + self.early_warning > self.capacity {
            return Completion::check(
                Sense::new(SenseKey::NO_SENSE, Asc::END_OF_PARTITION_MEDIUM).with_eom(),
            );
        }
        Completion::good(0)
    }

    fn space(&mut self, sp: Space6) -> Completion {
        let count = sp.count as i64;
        match sp.code {
            SpaceCode::END_OF_DATA => {
                self.pos = self.objects.len();
                Completion::good(0)
            }
            SpaceCode::BLOCKS => self.space_blocks(count),
            SpaceCode::FILEMARKS => self.space_filemarks(count),
            _ => Completion::bad_field(1),
        }
    }

    /// SSC-4 7.9: a filemark stops block spacing, with FM and the residue.
    fn space_blocks(&mut self, count: i64) -> Completion {
        let mut left = count.unsigned_abs();
        while left > 0 {
            let next = if count > 0 {
                self.objects.get(self.pos)
            } else if self.pos > 0 {
                self.objects.get(self.pos - 1)
            } else {
                return Completion::check(
                    Sense::new(SenseKey::NO_SENSE, Asc::BEGINNING_OF_PARTITION)
                        .with_eom()
                        .with_information(left),
                );
            };
            match next {
                None => {
                    return Completion::check(Self::eod_sense().with_information(left));
                }
                Some(TapeObject::Filemark) => {
                    if count > 0 {
                        self.pos += 1;
                    } else {
                        self.pos -= 1;
                    }
                    return Completion::check(
                        Sense::new(SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED)
                            .with_filemark()
                            .with_information(left),
                    );
                }
                Some(TapeObject::Block(_)) => {
                    if count > 0 {
                        self.pos += 1;
                    } else {
                        self.pos -= 1;
                    }
                    left -= 1;
                }
            }
        }
        Completion::good(0)
    }

    /// Forward: after the Nth filemark. Backward: before (BOT side of) the
    /// Nth filemark (SSC-4 7.9).
    fn space_filemarks(&mut self, count: i64) -> Completion {
        let mut left = count.unsigned_abs();
        while left > 0 {
            if count > 0 {
                match self.objects.get(self.pos) {
                    None => return Completion::check(Self::eod_sense().with_information(left)),
                    Some(o) => {
                        if *o == TapeObject::Filemark {
                            left -= 1;
                        }
                        self.pos += 1;
                    }
                }
            } else {
                if self.pos == 0 {
                    return Completion::check(
                        Sense::new(SenseKey::NO_SENSE, Asc::BEGINNING_OF_PARTITION)
                            .with_eom()
                            .with_information(left),
                    );
                }
                self.pos -= 1;
                if self.objects[self.pos] == TapeObject::Filemark {
                    left -= 1;
                }
            }
        }
        Completion::good(0)
    }

    fn mode_parameters(&self) -> ModeParameters {
        ModeParameters {
            medium_type: 0,
            device_specific: 0x10,
            block_descriptors: vec![BlockDescriptor {
                density_code: 0,
                blocks: 0,
                block_length: self.block_length,
            }],
            pages: Vec::new(),
        }
    }
}

impl MemTape {
    /// WRITE FILEMARKS(6) (SSC-4 7.12): everything after the position goes.
    fn write_filemarks(&mut self, cdb: &[u8]) -> Completion {
        let Ok(w) = WriteFilemarks6::parse(cdb) else {
            return Completion::bad_field(1);
        };
        self.objects.truncate(self.pos);
        for _ in 0..w.count {
            self.objects.push(TapeObject::Filemark);
        }
        self.pos = self.objects.len();
        Completion::good(0)
    }

    /// READ POSITION (SSC-4 7.7), short and long forms, true values.
    fn read_position(&self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        match ReadPosition::parse(cdb) {
            Ok(rp) if rp.form == ReadPositionForm::SHORT || rp.form == ReadPositionForm::LONG => {
                let p = Position {
                    form: rp.form,
                    ..self.position()
                };
                reply(data_in, &p.emit())
            }
            _ => Completion::bad_field(1),
        }
    }

    /// MODE SELECT(6) (SPC-4 6.9): only the block descriptor's length.
    fn mode_select(&mut self, cdb: &[u8], data_out: &[u8]) -> Completion {
        if ModeSelect6::parse(cdb).is_err() {
            return Completion::bad_field(1);
        }
        match ModeParameters::parse6(data_out) {
            Ok(mp) => {
                if let Some(bd) = mp.block_descriptors.first() {
                    self.block_length = bd.block_length;
                }
                Completion::good(0)
            }
            Err(_) => Completion::illegal(Asc::INVALID_FIELD_IN_PARAMETER_LIST),
        }
    }
}

impl LogicalUnit for MemTape {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        if let Some(c) = self.id.common(cdb, data_in) {
            return c;
        }
        let op = Opcode(cdb[0]);
        match op {
            Opcode::REWIND => {
                self.pos = 0;
                Completion::good(0)
            }
            Opcode::READ_6 => self.read6(cdb, data_in),
            Opcode::WRITE_6 => self.write6(cdb, data_out),
            Opcode::WRITE_FILEMARKS_6 => self.write_filemarks(cdb),
            Opcode::SPACE_6 => match Space6::parse(cdb) {
                Ok(sp) => self.space(sp),
                Err(_) => Completion::bad_field(1),
            },
            Opcode::LOCATE_10 => match Locate10::parse(cdb) {
                Ok(l) if (l.block as usize) <= self.objects.len() => {
                    self.pos = l.block as usize;
                    Completion::good(0)
                }
                Ok(_) => Completion::check(Self::eod_sense()),
                Err(_) => Completion::bad_field(1),
            },
            Opcode::READ_POSITION => self.read_position(cdb, data_in),
            Opcode::READ_BLOCK_LIMITS => reply(
                data_in,
                &BlockLimits {
                    granularity: 0,
                    max_block_length: Self::MAX_BLOCK,
                    min_block_length: 1,
                }
                .to_vec(),
            ),
            Opcode::MODE_SENSE_6 => match ModeSense6::parse(cdb) {
                Ok(_) => reply(data_in, &self.mode_parameters().emit6()),
                Err(_) => Completion::bad_field(2),
            },
            Opcode::MODE_SELECT_6 => self.mode_select(cdb, data_out),
            Opcode::LOAD_UNLOAD => {
                self.pos = 0;
                Completion::good(0)
            }
            Opcode::ERASE_6 => {
                self.objects.truncate(self.pos);
                Completion::good(0)
            }
            _ => Completion::illegal(Asc::INVALID_OPCODE),
        }
    }
}
