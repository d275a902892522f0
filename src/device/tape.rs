//! A sequential-access device (SSC): mt-like verbs, block reads that keep
//! their data on CHECK CONDITION, and a position the tool counts itself.
//!
//! tgt quirks handled here (README.md, "Tape targets"):
//! - READ POSITION always answers block 0, so it is not trusted on tgt;
//! - on ILI/filemark/EOD reads its iSCSI residual is wrong, so the length of
//!   a short block comes from the sense INFORMATION (requested - INFO);
//! - an overlength read loses the block: reported as an error, never as data;
//! - EOD is BLANK CHECK on READ but NO SENSE 00/05 on SPACE: both mean EOD.

use crate::scsi::sense::{Sense, SenseKey};
use crate::scsi::spc::{ModeParameters, ModeSelect6, ModeSense6, PrType, StandardInquiry};
use crate::scsi::ssc::{
    BlockLimits, Erase, LoadUnload, Locate10, Position, Read6, ReadBlockLimits, ReadPosition,
    ReadPositionForm, Rewind, Space6, SpaceCode, Write6, WriteFilemarks6,
};
use crate::scsi::{CdbCodec, DeviceType, Status, Wire};
use crate::transport::{Request, Transport};

use super::{DeviceError, PrOut, Scsi};
use std::time::Duration;

/// The largest variable block READ(6)/WRITE(6) can carry: a 24-bit
/// TRANSFER LENGTH (SSC-4 6.4).
pub const MAX_TRANSFER_6: usize = 0x00ff_ffff;

/// Positioning commands can take minutes on real drives (SSC-4 Annex: no
/// fixed bound); give them room.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(600);

/// Where the tool believes the tape is: file number (filemarks passed since
/// BOT) and block within that file. `None` until a rewind or a move from a
/// known place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrackedPosition {
    pub file: Option<u64>,
    pub block: Option<u64>,
}

impl TrackedPosition {
    pub const BOT: TrackedPosition = TrackedPosition {
        file: Some(0),
        block: Some(0),
    };
    pub const UNKNOWN: TrackedPosition = TrackedPosition {
        file: None,
        block: None,
    };
}

/// How the drive is held for a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Reservation {
    /// PERSISTENT RESERVE, Write Exclusive, under this key (SPC-4 5.13).
    Persistent { key: u64 },
    /// RESERVE(6) (SPC-2).
    Reserve6,
    /// The drive supports neither.
    None,
}

/// What one READ(6) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A block of this many bytes; they are at the front of the buffer.
    Block(usize),
    /// A filemark; the tape is now after it.
    Filemark,
    /// End of data: nothing more was ever written.
    EndOfData,
}

/// What one WRITE(6) reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// The block was written, and the drive says the end of the medium is
    /// near (SSC-4 4.2.5: EOM bit with NO SENSE). Finish and stop.
    pub early_warning: bool,
}

/// Behaviour that differs from SSC on some targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Quirks {
    /// READ POSITION answers a constant (tgt: always block 0).
    pub position_stub: bool,
    /// SPACE backwards over filemarks stops one object early (tgt).
    pub reverse_space_off_by_one: bool,
}

impl Quirks {
    pub fn for_inquiry(inq: &StandardInquiry) -> Quirks {
        // tgt (and IET before it) answer vendor "IET" on every LU.
        let tgt = inq.vendor == "IET";
        Quirks {
            position_stub: tgt,
            reverse_space_off_by_one: tgt,
        }
    }
}

/// What `tape status` shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TapeStatus {
    pub vendor: String,
    pub product: String,
    pub revision: String,
    /// None when TEST UNIT READY succeeded; the sense otherwise.
    pub not_ready: Option<String>,
    pub write_protected: Option<bool>,
    pub density_code: Option<u8>,
    /// 0 means variable-block mode.
    pub block_length: Option<u32>,
    pub limits: Option<BlockLimits>,
    pub device_position: Option<Position>,
    pub position_trusted: bool,
    pub tracked: TrackedPosition,
    pub quirks: Quirks,
}

/// A tape LU.
#[derive(Debug)]
pub struct Tape<T: Transport> {
    pub scsi: Scsi<T>,
    pub inquiry: StandardInquiry,
    pub quirks: Quirks,
    pos: TrackedPosition,
}

impl<T: Transport> Tape<T> {
    /// Open a tape: INQUIRY must say sequential access.
    pub fn open(t: T) -> Result<Self, DeviceError> {
        let mut scsi = Scsi::new(t);
        let inquiry = scsi.expect_type(DeviceType::TAPE)?;
        let quirks = Quirks::for_inquiry(&inquiry);
        Ok(Tape {
            scsi,
            inquiry,
            quirks,
            pos: TrackedPosition::UNKNOWN,
        })
    }

    pub fn position(&self) -> TrackedPosition {
        self.pos
    }

    /// Forget where the tape is: after something else may have moved it,
    /// no write may rely on the tracked position.
    pub fn forget_position(&mut self) {
        self.pos = TrackedPosition::UNKNOWN;
    }

    /// The drive's own logical object number (READ POSITION short form,
    /// SSC-4 7.6: blocks and filemarks both count), or `None` where its
    /// answer means nothing: a target known to answer a constant (tgt),
    /// no READ POSITION at all, or the block position unknown (BPU).
    pub fn drive_block(&mut self) -> Result<Option<u64>, DeviceError> {
        if self.quirks.position_stub {
            return Ok(None);
        }
        match self.read_position(ReadPositionForm::SHORT) {
            Ok(p) => Ok(p.first_block),
            Err(e) if e.is_unsupported_command() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn lost_position<R>(&mut self, r: Result<R, DeviceError>) -> Result<R, DeviceError> {
        if r.is_err() {
            self.pos = TrackedPosition::UNKNOWN;
        }
        r
    }

    /// Any status back; a transport failure forgets the position (the
    /// command may or may not have moved the tape).
    fn run_any(&mut self, req: Request) -> Result<crate::transport::Response, DeviceError> {
        let r = self.scsi.run_any(req);
        self.lost_position(r)
    }

    fn run_long(&mut self, cdb: crate::scsi::Cdb) -> Result<(), DeviceError> {
        let r = self
            .scsi
            .run(Request::none(cdb).with_timeout(LONG_TIMEOUT))
            .map(|_| ());
        self.lost_position(r)
    }

    pub fn rewind(&mut self) -> Result<(), DeviceError> {
        self.run_long(Rewind { immed: false }.to_cdb())?;
        self.pos = TrackedPosition::BOT;
        Ok(())
    }

    /// WRITE FILEMARKS(6). `count` 0 only flushes the drive buffer (tgt
    /// fsyncs here and nowhere else). Past early warning a drive writes
    /// the filemarks and says so with NO SENSE and EOM (SSC-4 4.2.5), as
    /// for a block: that is success.
    pub fn write_filemarks(&mut self, count: u32) -> Result<(), DeviceError> {
        let cdb = WriteFilemarks6 {
            immed: false,
            wsmk: false,
            count,
        }
        .to_cdb();
        let resp = self.run_any(Request::none(cdb).with_timeout(LONG_TIMEOUT))?;
        if classify_write(resp.status, &resp.sense).is_none() {
            let e = self.scsi.check_error(&resp);
            return self.lost_position(Err(e));
        }
        if count > 0 {
            self.pos = TrackedPosition {
                file: self.pos.file.map(|f| f + count as u64),
                block: Some(0),
            };
        }
        Ok(())
    }

    fn space(&mut self, code: SpaceCode, count: i32) -> Result<(), DeviceError> {
        let sp = Space6::new(code, count).map_err(|e| self.scsi.perr("SPACE(6) count", e))?;
        self.run_long(sp.to_cdb())
    }

    /// SPACE over `count` filemarks (negative: backwards). Forward, the tape
    /// ends at the start of a file. Backwards on tgt, the drive is known to
    /// stop one object off (see [`Quirks`]); prefer [`Tape::seek_file`].
    pub fn space_filemarks(&mut self, count: i32) -> Result<(), DeviceError> {
        if count < 0 && self.quirks.reverse_space_off_by_one {
            log::warn!(
                "{}: this target's backward SPACE over filemarks is off by one object (tgt); use rewind + fsf",
                self.scsi.name()
            );
        }
        self.space(SpaceCode::FILEMARKS, count)?;
        self.pos = match (count >= 0, self.pos.file) {
            (true, Some(f)) => TrackedPosition {
                file: Some(f + count as u64),
                block: Some(0),
            },
            _ => TrackedPosition::UNKNOWN,
        };
        Ok(())
    }

    /// SPACE over `count` blocks (negative: backwards).
    pub fn space_blocks(&mut self, count: i32) -> Result<(), DeviceError> {
        self.space(SpaceCode::BLOCKS, count)?;
        self.pos.block = self
            .pos
            .block
            .and_then(|b| b.checked_add_signed(count as i64));
        Ok(())
    }

    /// SPACE to end of data, where the next write appends.
    pub fn space_to_eod(&mut self) -> Result<(), DeviceError> {
        self.space(SpaceCode::END_OF_DATA, 0)?;
        self.pos = TrackedPosition::UNKNOWN;
        Ok(())
    }

    /// The start of file `n`: REWIND, then SPACE `n` filemarks forward. The
    /// one pattern that is exact on every target here.
    pub fn seek_file(&mut self, n: u32) -> Result<(), DeviceError> {
        self.rewind()?;
        let mut left = n as i64;
        while left > 0 {
            let step = left.min(0x7f_ffff) as i32; // SPACE(6) count is 24-bit signed
            self.space_filemarks(step)?;
            left -= step as i64;
        }
        Ok(())
    }

    /// LOCATE(10) to a logical block (SSC-4 7.5). tgt refuses it.
    pub fn locate(&mut self, block: u32) -> Result<(), DeviceError> {
        let cdb = Locate10 {
            immed: false,
            bt: false,
            cp: false,
            block,
            partition: 0,
        }
        .to_cdb();
        self.run_long(cdb)?;
        self.pos = TrackedPosition::UNKNOWN;
        Ok(())
    }

    /// READ POSITION in the given form, as the device reports it.
    pub fn read_position(&mut self, form: ReadPositionForm) -> Result<Position, DeviceError> {
        let alloc = if form == ReadPositionForm::SHORT || form == ReadPositionForm::SHORT_VENDOR {
            20
        } else {
            32
        };
        let buf = self
            .scsi
            .data_in(ReadPosition { form, alloc_len: 0 }.to_cdb(), alloc)?;
        Position::parse(form, &buf).map_err(|e| self.scsi.perr("READ POSITION", e))
    }

    pub fn load(&mut self, load: bool) -> Result<(), DeviceError> {
        let cdb = LoadUnload {
            immed: false,
            hold: false,
            eot: false,
            reten: false,
            load,
        }
        .to_cdb();
        self.run_long(cdb)?;
        self.pos = if load {
            TrackedPosition::BOT
        } else {
            TrackedPosition::UNKNOWN
        };
        Ok(())
    }

    /// ERASE(6) with LONG set: from here to the end of the medium.
    pub fn erase(&mut self) -> Result<(), DeviceError> {
        self.run_long(
            Erase {
                immed: false,
                long: true,
            }
            .to_cdb(),
        )
    }

    pub fn block_limits(&mut self) -> Result<BlockLimits, DeviceError> {
        let buf = self.scsi.data_in(ReadBlockLimits.to_cdb(), 6)?;
        BlockLimits::parse(&buf).map_err(|e| self.scsi.perr("READ BLOCK LIMITS", e))
    }

    /// MODE SENSE(6) header and block descriptor.
    pub fn mode(&mut self) -> Result<ModeParameters, DeviceError> {
        let cdb = ModeSense6 {
            dbd: false,
            pc: 0,
            page_code: 0,
            subpage_code: 0,
            alloc_len: 255,
        }
        .to_cdb();
        let buf = self.scsi.data_in(cdb, 255)?;
        ModeParameters::parse6(&buf).map_err(|e| self.scsi.perr("MODE SENSE(6)", e))
    }

    /// Set the block length (0 = variable) with MODE SELECT(6), keeping the
    /// density and buffered mode (SSC-4 8.3.3).
    pub fn set_block_length(&mut self, len: u32) -> Result<(), DeviceError> {
        if len > 0x00ff_ffff {
            return Err(DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!("block length {len} does not fit the 24-bit field"),
            });
        }
        let cur = self.mode()?;
        let density = cur.block_descriptors.first().map_or(0, |b| b.density_code);
        let params = ModeParameters {
            medium_type: 0,
            // WP is ignored in MODE SELECT; keep BUFFERED MODE (bits 6..4).
            device_specific: cur.device_specific & 0x70,
            block_descriptors: vec![crate::scsi::spc::BlockDescriptor {
                density_code: density,
                blocks: 0,
                block_length: len,
            }],
            pages: Vec::new(),
        };
        let data = params.emit6_select();
        let cdb = ModeSelect6 {
            pf: true,
            sp: false,
            param_len: data.len() as u8,
        }
        .to_cdb();
        self.scsi.run(Request::data_out(cdb, data)).map(|_| ())
    }

    /// Write one variable-length block.
    pub fn write_block(&mut self, data: Vec<u8>) -> Result<WriteOutcome, DeviceError> {
        self.write_block_buf(data).map(|(o, _)| o)
    }

    /// Write one variable-length block and hand the buffer back for reuse.
    pub fn write_block_buf(
        &mut self,
        data: Vec<u8>,
    ) -> Result<(WriteOutcome, Vec<u8>), DeviceError> {
        let cdb = Write6::variable(data.len() as u32).to_cdb();
        if data.len() > MAX_TRANSFER_6 {
            return Err(DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!("block of {} bytes exceeds WRITE(6)'s 16 MiB", data.len()),
            });
        }
        let resp = self.run_any(Request::data_out(cdb, data).with_timeout(LONG_TIMEOUT))?;
        let outcome = classify_write(resp.status, &resp.sense);
        match outcome {
            Some(o) => {
                self.pos.block = self.pos.block.map(|b| b + 1);
                Ok((o, resp.buf))
            }
            None => {
                let e = self.scsi.check_error(&resp);
                self.lost_position(Err(e))
            }
        }
    }

    /// Read one variable-length block into `buf` (its length is the most
    /// the read accepts). Make it at least twice the largest block written:
    /// tgt drops a block longer than the buffer, and tgt 1.0.85 sends stale
    /// bytes when the block is shorter than the buffer but longer than half
    /// of it. Returns the outcome and the buffer.
    pub fn read_block(&mut self, mut buf: Vec<u8>) -> Result<(ReadOutcome, Vec<u8>), DeviceError> {
        // A path that cannot carry the whole buffer (SG_IO through a host
        // adapter's segment limit) gets the most it can: a block larger
        // than that then reads as an overlength block, not as EINVAL.
        if let Some(max) = self.scsi.transport().max_transfer() {
            buf.truncate(max.max(1));
        }
        let requested = buf.len();
        if requested > MAX_TRANSFER_6 {
            return Err(DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!("a read of {requested} bytes exceeds READ(6)'s {MAX_TRANSFER_6}"),
            });
        }
        // SILI off: a short block must come back with ILI and INFORMATION,
        // the only length tgt reports correctly.
        let cdb = Read6 {
            fixed: false,
            sili: false,
            length: requested as u32,
        }
        .to_cdb();
        let resp = self.run_any(Request::data_in_buf(cdb, buf).with_timeout(LONG_TIMEOUT))?;
        match classify_read(resp.status, &resp.sense, requested, resp.transferred()) {
            Ok(outcome) => {
                self.pos = match outcome {
                    ReadOutcome::Block(_) => TrackedPosition {
                        block: self.pos.block.map(|b| b + 1),
                        ..self.pos
                    },
                    ReadOutcome::Filemark => TrackedPosition {
                        file: self.pos.file.map(|f| f + 1),
                        block: Some(0),
                    },
                    ReadOutcome::EndOfData => self.pos,
                };
                Ok((outcome, resp.buf))
            }
            Err(ReadFault::Overlength(actual)) => {
                self.pos.block = self.pos.block.map(|b| b + 1);
                Err(DeviceError::Protocol {
                    device: self.scsi.name().to_string(),
                    message: format!(
                        "a tape block of {actual} bytes is larger than the {requested}-byte read buffer; the drive skipped it"
                    ),
                })
            }
            Err(ReadFault::Check) => {
                let e = self.scsi.check_error(&resp);
                self.lost_position(Err(e))
            }
        }
    }

    /// Take the drive for this initiator: PERSISTENT RESERVE OUT (register
    /// `key`, reserve Write Exclusive), else RESERVE(6). A drive that has
    /// neither (tgt) gives [`Reservation::None`]; the caller warns.
    ///
    /// A reservation held under `key` itself from another I_T nexus is
    /// this initiator's own, left by a process that died holding it (a
    /// live one would hold the drive lock the caller has): it is taken
    /// over by PREEMPT (SPC-4 5.13.11.4), not a RESERVATION CONFLICT.
    pub fn reserve(&mut self, key: u64) -> Result<Reservation, DeviceError> {
        match self.scsi.pr_out(PrOut::register(key)) {
            Ok(()) => {
                self.scsi.pr_claim(key, key)?;
                return Ok(Reservation::Persistent { key });
            }
            Err(e) if !e.is_unsupported_command() => return Err(e),
            Err(_) => {}
        }
        match self.scsi.reserve6() {
            Ok(()) => Ok(Reservation::Reserve6),
            Err(e) if e.is_unsupported_command() => Ok(Reservation::None),
            Err(e) => Err(e),
        }
    }

    /// Undo [`Tape::reserve`]: release, then unregister the key.
    pub fn release(&mut self, r: Reservation) -> Result<(), DeviceError> {
        match r {
            Reservation::Persistent { key } => {
                self.scsi
                    .pr_out(PrOut::release(key, PrType::WRITE_EXCLUSIVE))?;
                self.scsi.pr_out(PrOut::register(0))
            }
            Reservation::Reserve6 => self.scsi.release6(),
            Reservation::None => Ok(()),
        }
    }

    /// Everything `tape status` shows. Failing sub-queries leave `None`.
    /// READ POSITION as `tape tell` and `tape status` both show it: the
    /// long form (it has the file number), else the short form (SSC-4 7.7).
    pub fn device_position(&mut self) -> Result<Position, DeviceError> {
        match self.read_position(ReadPositionForm::LONG) {
            Err(e) if e.sense().is_some() => self.read_position(ReadPositionForm::SHORT),
            r => r,
        }
    }

    pub fn status(&mut self) -> TapeStatus {
        let not_ready = match self.scsi.test_unit_ready() {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        };
        let mode = self.mode().ok();
        let bd = mode.as_ref().and_then(|m| m.block_descriptors.first());
        let device_position = self.device_position().ok();
        TapeStatus {
            vendor: self.inquiry.vendor.clone(),
            product: self.inquiry.product.clone(),
            revision: self.inquiry.revision.clone(),
            not_ready,
            write_protected: mode.as_ref().map(|m| m.device_specific & 0x80 != 0),
            density_code: bd.map(|b| b.density_code),
            block_length: bd.map(|b| b.block_length),
            limits: self.block_limits().ok(),
            device_position,
            position_trusted: !self.quirks.position_stub,
            tracked: self.pos,
            quirks: self.quirks,
        }
    }
}

enum ReadFault {
    /// The block was longer than the buffer by this total size.
    Overlength(usize),
    /// Any other CHECK CONDITION: report it as is.
    Check,
}

/// Decide what a variable-length READ(6) found (SSC-4 4.2.3, 5.3; tgt
/// quirks in README.md, "Tape targets"). Pure, so every sense pattern is unit-tested.
fn classify_read(
    status: Status,
    raw_sense: &[u8],
    requested: usize,
    transferred: usize,
) -> Result<ReadOutcome, ReadFault> {
    if status == Status::GOOD {
        return Ok(ReadOutcome::Block(transferred));
    }
    if status != Status::CHECK_CONDITION {
        return Err(ReadFault::Check);
    }
    let Ok(s) = Sense::parse(raw_sense) else {
        return Err(ReadFault::Check);
    };
    if s.is_eod() {
        return Ok(ReadOutcome::EndOfData);
    }
    if s.key != SenseKey::NO_SENSE && s.key != SenseKey::RECOVERED_ERROR {
        return Err(ReadFault::Check);
    }
    if s.filemark {
        return Ok(ReadOutcome::Filemark);
    }
    if s.ili {
        // INFORMATION = requested - actual; negative when the block was
        // longer than the request (SSC-4 4.2.3.2).
        return match s.information_i32() {
            Some(info) if info >= 0 && (info as usize) <= requested => {
                Ok(ReadOutcome::Block(requested - info as usize))
            }
            Some(info) if info < 0 => Err(ReadFault::Overlength(
                requested + info.unsigned_abs() as usize,
            )),
            _ => Err(ReadFault::Check),
        };
    }
    // NO SENSE with EOM past early warning: the data arrived.
    if s.eom {
        return Ok(ReadOutcome::Block(transferred));
    }
    Err(ReadFault::Check)
}

/// Decide whether a WRITE(6) wrote its block (SSC-4 4.2.5, with tgt's
/// residuals). `None`: not written, report the sense.
fn classify_write(status: Status, raw_sense: &[u8]) -> Option<WriteOutcome> {
    if status == Status::GOOD {
        return Some(WriteOutcome::default());
    }
    if status != Status::CHECK_CONDITION {
        return None;
    }
    let s = Sense::parse(raw_sense).ok()?;
    if s.eom && (s.key == SenseKey::NO_SENSE || s.key == SenseKey::RECOVERED_ERROR) {
        return Some(WriteOutcome {
            early_warning: true,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    // Sense bytes as tgt 1.0.85 sends them.
    const FM: &str = "f0 00 80 00 00 10 00 0a 00 00 00 00 00 01 00 00 00 00";
    const EOD_READ: &str = "70 00 48 00 00 00 00 0a 00 00 00 00 00 00 00 00 00 00";
    const SHORT_1000_OF_4096: &str = "f0 00 20 00 00 0c 18 0a 00 00 00 00 00 00 00 00 00 00";
    const LONG_2000_OF_1000: &str = "f0 00 20 ff ff fc 18 0a 00 00 00 00 00 00 00 00 00 00";
    const WRITE_EOM: &str = "70 00 40 00 00 00 00 0a 00 00 00 00 00 00 00 00 00 00";
    const NO_LOCATE: &str = "70 00 05 00 00 00 00 0a 00 00 00 00 20 00 00 00 00 00";

    #[test]
    fn read_good_uses_transferred() {
        assert_eq!(
            classify_read(Status::GOOD, &[], 4096, 4096).ok(),
            Some(ReadOutcome::Block(4096))
        );
    }

    #[test]
    fn read_short_block_length_comes_from_information_not_residual() {
        // tgt 1.0.85 reports a wrong residual here; 4096 - 3096 = 1000.
        let r = classify_read(
            Status::CHECK_CONDITION,
            &hex(SHORT_1000_OF_4096),
            4096,
            3096,
        );
        assert_eq!(r.ok(), Some(ReadOutcome::Block(1000)));
    }

    #[test]
    fn read_overlength_is_a_fault_with_the_real_size() {
        let r = classify_read(Status::CHECK_CONDITION, &hex(LONG_2000_OF_1000), 1000, 0);
        assert!(matches!(r, Err(ReadFault::Overlength(2000))));
    }

    #[test]
    fn read_filemark_and_eod() {
        assert_eq!(
            classify_read(Status::CHECK_CONDITION, &hex(FM), 4096, 4096).ok(),
            Some(ReadOutcome::Filemark)
        );
        assert_eq!(
            classify_read(Status::CHECK_CONDITION, &hex(EOD_READ), 4096, 4096).ok(),
            Some(ReadOutcome::EndOfData)
        );
    }

    #[test]
    fn read_other_check_and_garbage_sense_are_errors() {
        assert!(matches!(
            classify_read(Status::CHECK_CONDITION, &hex(NO_LOCATE), 10, 0),
            Err(ReadFault::Check)
        ));
        assert!(matches!(
            classify_read(Status::CHECK_CONDITION, &[0x12], 10, 0),
            Err(ReadFault::Check)
        ));
        assert!(matches!(
            classify_read(Status::BUSY, &[], 10, 0),
            Err(ReadFault::Check)
        ));
    }

    #[test]
    fn write_early_warning_means_written() {
        assert_eq!(
            classify_write(Status::CHECK_CONDITION, &hex(WRITE_EOM)),
            Some(WriteOutcome {
                early_warning: true
            })
        );
        assert_eq!(
            classify_write(Status::GOOD, &[]),
            Some(WriteOutcome::default())
        );
        assert_eq!(
            classify_write(Status::CHECK_CONDITION, &hex(NO_LOCATE)),
            None
        );
    }
}
