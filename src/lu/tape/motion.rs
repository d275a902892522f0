//! The drive's commands that need a threaded medium: READ(6), WRITE(6),
//! WRITE FILEMARKS(6/16), SPACE(6/16), LOCATE(10/16), READ POSITION,
//! REWIND, ERASE and TEST UNIT READY, with the sense SSC-4 names.

use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::ssc::{
    Erase, Locate10, Locate16, Position, Read6, ReadPosition, ReadPositionForm, Rewind, Space16,
    Space6, SpaceCode, Write6, WriteFilemarks16, WriteFilemarks6,
};
use crate::scsi::{CdbCodec, Opcode};

use super::{Medium, ObjectKind, TapeDrive};
use crate::lu::{reply, Completion};

/// INFORMATION = `v` when the fixed-format field holds it; else VALID
/// stays 0 (SPC-4 4.5.3: too large a value is not reported).
fn info(s: Sense, v: u64) -> Sense {
    if v <= u32::MAX as u64 {
        s.with_information(v)
    } else {
        s
    }
}

/// BLANK CHECK, END-OF-DATA DETECTED (SSC-4 4.2.4): reading or spacing
/// into end of data.
fn eod(residue: u64) -> Completion {
    Completion::check(info(
        Sense::new(SenseKey::BLANK_CHECK, Asc::END_OF_DATA),
        residue,
    ))
}

fn filemark(residue: u64) -> Sense {
    info(
        Sense::new(SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED).with_filemark(),
        residue,
    )
}

/// NO SENSE, EOM, BEGINNING-OF-PARTITION/MEDIUM DETECTED: spacing back
/// into BOP (SSC-4 4.2.6).
fn bop(residue: u64) -> Completion {
    Completion::check(info(
        Sense::new(SenseKey::NO_SENSE, Asc::BEGINNING_OF_PARTITION).with_eom(),
        residue,
    ))
}

fn medium_error(asc: Asc) -> Completion {
    Completion::check(Sense::new(SenseKey::MEDIUM_ERROR, asc))
}

fn data_protect() -> Completion {
    Completion::check(Sense::new(SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED))
}

/// Where writing stands against the medium's end (SSC-4 4.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    Clear,
    /// Within PEWS megabytes before early warning.
    ProgrammableWarning,
    /// Within the early-warning zone.
    EarlyWarning,
}

impl<M: Medium> TapeDrive<M> {
    pub(super) fn motion(
        &mut self,
        op: Opcode,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> Completion {
        const KNOWN: [Opcode; 13] = [
            Opcode::TEST_UNIT_READY,
            Opcode::REWIND,
            Opcode::READ_6,
            Opcode::WRITE_6,
            Opcode::WRITE_FILEMARKS_6,
            Opcode::WRITE_FILEMARKS_16,
            Opcode::SPACE_6,
            Opcode::SPACE_16,
            Opcode::LOCATE_10,
            Opcode::LOCATE_16,
            Opcode::READ_POSITION,
            Opcode::ERASE_6,
            Opcode::LOAD_UNLOAD,
        ];
        if !KNOWN.contains(&op) {
            return Completion::illegal(Asc::INVALID_OPCODE);
        }
        if let Err(c) = self.loaded() {
            return c;
        }
        match op {
            Opcode::TEST_UNIT_READY => Completion::good(0),
            Opcode::REWIND => match Rewind::parse(cdb) {
                Ok(_) => {
                    self.pos = 0;
                    Completion::good(0)
                }
                Err(_) => Completion::bad_field(0),
            },
            Opcode::READ_6 => self.read6(cdb, data_in),
            Opcode::WRITE_6 => self.write6(cdb, data_out),
            Opcode::WRITE_FILEMARKS_6 => match WriteFilemarks6::parse(cdb) {
                Ok(w) => self.write_filemarks(w.count),
                Err(_) => Completion::bad_field(0),
            },
            Opcode::WRITE_FILEMARKS_16 => self.write_filemarks16(cdb),
            Opcode::SPACE_6 => match Space6::parse(cdb) {
                Ok(s) => self.space(s.code, s.count as i64),
                Err(_) => Completion::bad_field(0),
            },
            Opcode::SPACE_16 => match Space16::parse(cdb) {
                // PARAMETER LENGTH (bytes 12..14) must be 0: no parameter data.
                Ok(s) if cdb[12..14] == [0, 0] => self.space(s.code, s.count),
                Ok(_) => Completion::bad_field(12),
                Err(_) => Completion::bad_field(0),
            },
            Opcode::LOCATE_10 => self.locate10(cdb),
            Opcode::LOCATE_16 => self.locate16(cdb),
            Opcode::READ_POSITION => self.read_position(cdb, data_in),
            Opcode::ERASE_6 => self.erase(cdb),
            _ => Completion::illegal(Asc::INVALID_OPCODE),
        }
    }

    fn medium_mut(&mut self) -> Option<&mut M> {
        self.slot.as_mut().map(|l| &mut l.medium)
    }

    fn medium_ref(&self) -> Option<&M> {
        self.slot.as_ref().map(|l| &l.medium)
    }

    fn kind_at(&self, n: u64) -> Option<ObjectKind> {
        self.medium_ref()?.kind(n)
    }

    fn count(&self) -> u64 {
        self.medium_ref().map_or(0, |m| m.count())
    }

    /// The zone the write point `bytes` (of block data before it) is in.
    fn zone(&self, bytes: u64) -> Zone {
        let cap = self.medium_ref().map_or(0, |m| m.capacity());
        let ew = cap.saturating_sub(self.settings.early_warning);
        let pew = ew.saturating_sub(self.settings.pews as u64 * 1_000_000);
        if bytes > ew {
            Zone::EarlyWarning
        } else if self.settings.pews > 0 && bytes > pew {
            Zone::ProgrammableWarning
        } else {
            Zone::Clear
        }
    }

    /// READ(6) (SSC-4 6.4): FIXED with SILI, or FIXED in variable mode,
    /// is INVALID FIELD IN CDB; a length of 0 does nothing.
    fn read6(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let Ok(r) = Read6::parse(cdb) else {
            return Completion::bad_field(0);
        };
        if r.fixed && (r.sili || self.settings.block_length == 0) {
            return Completion::bad_field(1);
        }
        if r.length == 0 {
            return Completion::good(0);
        }
        if r.fixed {
            self.read_fixed(r.length as u64, data_in)
        } else {
            self.read_variable(r.length as usize, r.sili, data_in)
        }
    }

    /// One block of up to `requested` bytes (SSC-4 4.2.3): a shorter block
    /// is ILI with INFORMATION = requested - actual unless SILI; a longer
    /// one is ILI with a negative INFORMATION and `requested` bytes
    /// delivered. The position moves past the block either way.
    fn read_variable(&mut self, requested: usize, sili: bool, data_in: &mut [u8]) -> Completion {
        let pos = self.pos;
        match self.kind_at(pos) {
            None => eod(requested as u64),
            Some(ObjectKind::Filemark) => {
                self.pos += 1;
                Completion::check(filemark(requested as u64))
            }
            Some(ObjectKind::Block(_)) => {
                let room = requested.min(data_in.len());
                let Some(Ok(actual)) = self
                    .medium_mut()
                    .map(|m| m.read_block(pos, &mut data_in[..room]))
                else {
                    return medium_error(Asc::UNRECOVERED_READ_ERROR);
                };
                self.pos += 1;
                let n = actual.min(room);
                self.bytes_read += n as u64;
                if actual == requested || (sili && actual < requested) {
                    return Completion::good(n);
                }
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

    /// `count` blocks of the mode's block length (SSC-4 4.2.3): stops at a
    /// filemark, end of data or a block of another length, with
    /// INFORMATION = the blocks not read (counting that block).
    fn read_fixed(&mut self, count: u64, data_in: &mut [u8]) -> Completion {
        let bl = self.settings.block_length as usize;
        for i in 0..count {
            let pos = self.pos;
            let at = (i as usize).saturating_mul(bl);
            let stop = match self.kind_at(pos) {
                None => {
                    return Completion {
                        data_in_len: at.min(data_in.len()),
                        ..eod(count - i)
                    }
                }
                Some(ObjectKind::Filemark) => filemark(count - i),
                Some(ObjectKind::Block(n)) if n as usize != bl => {
                    Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL)
                        .with_ili()
                        .with_information(count - i)
                }
                Some(ObjectKind::Block(_)) => {
                    let lo = at.min(data_in.len());
                    let hi = at.saturating_add(bl).min(data_in.len());
                    match self
                        .medium_mut()
                        .map(|m| m.read_block(pos, &mut data_in[lo..hi]))
                    {
                        Some(Ok(_)) => {}
                        _ => return medium_error(Asc::UNRECOVERED_READ_ERROR),
                    }
                    self.pos += 1;
                    self.bytes_read += bl as u64;
                    continue;
                }
            };
            self.pos += 1;
            return Completion::check_with_data(stop, at.min(data_in.len()));
        }
        Completion::good((count as usize).saturating_mul(bl).min(data_in.len()))
    }

    /// WRITE(6) (SSC-4 6.8, 4.2.5): the medium is cut at the position and
    /// the blocks appended. A block that does not fit before the physical
    /// end is not written: VOLUME OVERFLOW, EOM, INFORMATION = the residue
    /// (bytes in variable mode, blocks in fixed). Ending in the
    /// early-warning zone is NO SENSE, EOM, 00/02; crossing into the
    /// programmable early-warning zone is NO SENSE, EOM, 00/07.
    fn write6(&mut self, cdb: &[u8], data_out: &[u8]) -> Completion {
        let Ok(w) = Write6::parse(cdb) else {
            return Completion::bad_field(0);
        };
        let bl = self.settings.block_length;
        if (w.fixed && bl == 0) || (!w.fixed && w.length > Self::MAX_BLOCK) {
            return Completion::bad_field(if w.fixed { 1 } else { 2 });
        }
        if self.write_protected() {
            return data_protect();
        }
        let (size, count) = if w.fixed {
            (bl, w.length)
        } else {
            (w.length, 1)
        };
        if w.length == 0 {
            return Completion::good(0);
        }
        if (data_out.len() as u64) < size as u64 * count as u64 {
            return Completion::bad_field(2);
        }
        let pos = self.pos;
        if self
            .medium_mut()
            .map(|m| m.truncate(pos))
            .transpose()
            .is_err()
        {
            return medium_error(Asc::WRITE_ERROR);
        }
        let start = self.zone(self.bytes_at(pos));
        let blocks = data_out.chunks(size as usize).take(count as usize);
        if let Err(c) = self.append_blocks(blocks, count, w.fixed) {
            return c;
        }
        self.warn(start)
    }

    /// Append the blocks one by one; the first that does not fit before
    /// the physical end stops it with VOLUME OVERFLOW, EOM and the residue
    /// (blocks in fixed mode, the block's bytes in variable mode).
    fn append_blocks<'a>(
        &mut self,
        blocks: impl Iterator<Item = &'a [u8]>,
        count: u32,
        fixed: bool,
    ) -> Result<(), Completion> {
        for (i, block) in blocks.enumerate() {
            let size = block.len() as u64;
            let cap = self.medium_ref().map_or(0, |m| m.capacity());
            if self.bytes_at(self.pos) + size > cap {
                let residue = if fixed { count as u64 - i as u64 } else { size };
                return Err(Completion::check(
                    Sense::new(SenseKey::VOLUME_OVERFLOW, Asc::END_OF_PARTITION_MEDIUM)
                        .with_eom()
                        .with_information(residue),
                ));
            }
            match self.medium_mut().map(|m| m.append_block(block)) {
                Some(Ok(())) => {}
                _ => return Err(medium_error(Asc::WRITE_ERROR)),
            }
            self.pos += 1;
            self.bytes_written += size;
        }
        Ok(())
    }

    fn bytes_at(&self, n: u64) -> u64 {
        self.medium_ref().map_or(0, |m| m.bytes_before(n))
    }

    /// The early-warning report for a write that started in `start`.
    fn warn(&self, start: Zone) -> Completion {
        match self.zone(self.bytes_at(self.pos)) {
            Zone::EarlyWarning => Completion::check(
                Sense::new(SenseKey::NO_SENSE, Asc::END_OF_PARTITION_MEDIUM).with_eom(),
            ),
            Zone::ProgrammableWarning if start == Zone::Clear => Completion::check(
                Sense::new(SenseKey::NO_SENSE, Asc::PROGRAMMABLE_EARLY_WARNING).with_eom(),
            ),
            _ => Completion::good(0),
        }
    }

    /// WRITE FILEMARKS (SSC-4 6.9): a count of 0 only makes what was
    /// written durable. Filemarks take no capacity.
    fn write_filemarks(&mut self, count: u32) -> Completion {
        if count > Self::MAX_FILEMARKS {
            return Completion::bad_field(2);
        }
        if count > 0 && self.write_protected() {
            return data_protect();
        }
        let pos = self.pos;
        let start = self.zone(self.bytes_at(pos));
        let done = self.medium_mut().map(|m| {
            if count > 0 {
                m.truncate(pos)?;
                m.append_filemarks(count)?;
            }
            m.sync()
        });
        if !matches!(done, Some(Ok(()))) {
            return medium_error(Asc::WRITE_ERROR);
        }
        self.pos += count as u64;
        self.warn(start)
    }

    /// WRITE FILEMARKS(16) (SSC-4 6.10): this drive writes only where it
    /// is; a PARTITION or LOGICAL OBJECT IDENTIFIER elsewhere is INVALID
    /// FIELD IN CDB.
    fn write_filemarks16(&mut self, cdb: &[u8]) -> Completion {
        match WriteFilemarks16::parse(cdb) {
            Ok(w) if w.partition != 0 => Completion::bad_field(3),
            Ok(w) if w.logical_id != self.pos => Completion::bad_field(4),
            Ok(w) => self.write_filemarks(w.count),
            Err(_) => Completion::bad_field(0),
        }
    }

    /// SPACE(6/16) (SSC-4 6.6, 7.12): blocks and filemarks, forward and
    /// backward, and end of data. Sequential filemarks and setmarks are
    /// not supported (INVALID FIELD IN CDB).
    fn space(&mut self, code: SpaceCode, count: i64) -> Completion {
        match code {
            SpaceCode::END_OF_DATA => {
                self.pos = self.count();
                Completion::good(0)
            }
            SpaceCode::BLOCKS => self.space_blocks(count),
            SpaceCode::FILEMARKS => self.space_filemarks(count),
            _ => Completion::bad_field(1),
        }
    }

    /// A filemark stops block spacing: FM set, INFORMATION = the blocks
    /// not spaced, the head past the filemark in the direction of motion.
    fn space_blocks(&mut self, count: i64) -> Completion {
        let forward = count > 0;
        let mut left = count.unsigned_abs();
        while left > 0 {
            let next = if forward {
                self.kind_at(self.pos)
            } else if self.pos == 0 {
                return bop(left);
            } else {
                self.kind_at(self.pos - 1)
            };
            match next {
                None => return eod(left),
                Some(k) => {
                    self.pos = if forward { self.pos + 1 } else { self.pos - 1 };
                    if k == ObjectKind::Filemark {
                        return Completion::check(filemark(left));
                    }
                    left -= 1;
                }
            }
        }
        Completion::good(0)
    }

    /// Forward: past the Nth filemark. Backward: to the BOP side of the
    /// Nth filemark back. INFORMATION = the filemarks not spaced.
    fn space_filemarks(&mut self, count: i64) -> Completion {
        let mut left = count.unsigned_abs();
        while left > 0 {
            if count > 0 {
                match self.kind_at(self.pos) {
                    None => return eod(left),
                    Some(k) => {
                        left -= (k == ObjectKind::Filemark) as u64;
                        self.pos += 1;
                    }
                }
            } else {
                if self.pos == 0 {
                    return bop(left);
                }
                self.pos -= 1;
                left -= (self.kind_at(self.pos) == Some(ObjectKind::Filemark)) as u64;
            }
        }
        Completion::good(0)
    }

    /// Move to object `target`; past end of data the head stops at end of
    /// data with BLANK CHECK, END-OF-DATA DETECTED (SSC-4 7.4).
    fn locate_object(&mut self, target: u64) -> Completion {
        let eod_at = self.count();
        if target > eod_at {
            self.pos = eod_at;
            return Completion::check(Sense::new(SenseKey::BLANK_CHECK, Asc::END_OF_DATA));
        }
        self.pos = target;
        Completion::good(0)
    }

    /// LOCATE(10) (SSC-4 6.3): block ids are logical object numbers (BT
    /// changes nothing); only partition 0 exists.
    fn locate10(&mut self, cdb: &[u8]) -> Completion {
        match Locate10::parse(cdb) {
            Ok(l) if l.cp && l.partition != 0 => Completion::bad_field(8),
            Ok(l) => self.locate_object(l.block as u64),
            Err(_) => Completion::bad_field(0),
        }
    }

    /// LOCATE(16) (SSC-4 7.4): to an object, to the start of a file (after
    /// its filemark; file 0 is BOP), or to end of data.
    fn locate16(&mut self, cdb: &[u8]) -> Completion {
        let l = match Locate16::parse(cdb) {
            Ok(l) if l.cp && l.partition != 0 => return Completion::bad_field(3),
            Ok(l) => l,
            Err(_) => return Completion::bad_field(0),
        };
        match l.dest_type {
            Locate16::DEST_OBJECT => self.locate_object(l.logical_id),
            Locate16::DEST_EOD => self.locate_object(self.count()),
            Locate16::DEST_FILE => {
                let target = self.after_filemark(l.logical_id);
                self.locate_object(target.unwrap_or(u64::MAX))
            }
            _ => Completion::bad_field(1),
        }
    }

    /// The object right after filemark number `file` (file 0: BOP).
    fn after_filemark(&self, file: u64) -> Option<u64> {
        if file == 0 {
            return Some(0);
        }
        let m = self.medium_ref()?;
        let mut seen = 0;
        for n in 0..m.count() {
            if m.kind(n) == Some(ObjectKind::Filemark) {
                seen += 1;
                if seen == file {
                    return Some(n + 1);
                }
            }
        }
        None
    }

    /// READ POSITION (SSC-4 7.7): short, vendor short (the same numbers),
    /// long and extended forms, with the head's true position.
    fn read_position(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let Ok(rp) = ReadPosition::parse(cdb) else {
            return Completion::bad_field(0);
        };
        let Some(len) = rp.form.data_len() else {
            return Completion::bad_field(1);
        };
        let zone = self.zone(self.bytes_at(self.pos));
        let p = Position {
            bop: self.pos == 0,
            eop: zone == Zone::EarlyWarning,
            bpew: zone != Zone::Clear,
            // The short forms hold 32 bits; past that PERR says so.
            perr: rp.form != ReadPositionForm::LONG
                && rp.form != ReadPositionForm::EXTENDED
                && self.pos > u32::MAX as u64,
            first_block: Some(self.pos),
            last_block: Some(self.pos),
            file_number: Some(self.medium_ref().map_or(0, |m| m.marks_before(self.pos))),
            set_number: Some(0),
            blocks_in_buffer: Some(0),
            bytes_in_buffer: Some(0),
            ..Position::blank(rp.form)
        };
        let alloc = if rp.form == ReadPositionForm::EXTENDED {
            rp.alloc_len as usize
        } else {
            len
        };
        let n = alloc.min(data_in.len());
        reply(&mut data_in[..n], &p.emit())
    }

    /// ERASE(6) (SSC-4 6.2): short and long both end the data at the
    /// position (the medium has no gaps to leave).
    fn erase(&mut self, cdb: &[u8]) -> Completion {
        if Erase::parse(cdb).is_err() {
            return Completion::bad_field(0);
        }
        if self.write_protected() {
            return data_protect();
        }
        let pos = self.pos;
        match self
            .medium_mut()
            .map(|m| m.truncate(pos).and_then(|_| m.sync()))
        {
            Some(Ok(())) => Completion::good(0),
            _ => medium_error(Asc::WRITE_ERROR),
        }
    }
}
