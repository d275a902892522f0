//! In-memory logical units behind the [`Transport`] trait: a disk and a
//! tape, for unit tests of the device layer and the engines.
//!
//! Each unit is a plain `execute(cdb, data_out, data_in)` object
//! ([`LogicalUnit`]), the shape every target-side unit of this project has.
//! The tape follows SSC-4 where tgt does not (a correct READ POSITION,
//! backward SPACE, overlength reads that keep their data), so the engines
//! are tested against the standard; tgt's quirks are tested against tgt.
//!
//! Faults can be injected: a unit can stop answering after N commands (a
//! target dying mid-copy) and the tape has a capacity with an early-warning
//! zone.

use std::collections::VecDeque;

use crate::scsi::sbc::{
    Capacity10, Capacity16, Read10, Read16, SynchronizeCache10, SynchronizeCache16, Write10,
    Write16,
};
use crate::scsi::sense::{Asc, Sense, SenseKey, SenseKeySpecific};
use crate::scsi::spc::{
    Association, BlockDescriptor, CodeSet, Designator, DesignatorType, DeviceIdentification,
    Inquiry, Lun, LunList, ModeParameters, ModeSelect6, ModeSense6, ReportLuns, StandardInquiry,
    SupportedVpdPages, UnitSerialNumber, VpdPage,
};
use crate::scsi::ssc::{
    BlockLimits, Locate10, Position, Read6, ReadPosition, ReadPositionForm, Space6, SpaceCode,
    Write6, WriteFilemarks6,
};
use crate::scsi::{CdbCodec, DeviceType, Opcode, Status, Wire};

use super::{Direction, Request, Residual, Response, Transport, TransportError};

/// The outcome of one command at a logical unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub status: Status,
    pub sense: Vec<u8>,
    /// Bytes of `data_in` that carry data.
    pub data_in_len: usize,
}

impl Completion {
    pub fn good(data_in_len: usize) -> Self {
        Completion {
            status: Status::GOOD,
            sense: Vec::new(),
            data_in_len,
        }
    }

    pub fn check(sense: Sense) -> Self {
        Self::check_with_data(sense, 0)
    }

    pub fn check_with_data(sense: Sense, data_in_len: usize) -> Self {
        Completion {
            status: Status::CHECK_CONDITION,
            sense: sense.to_fixed(),
            data_in_len,
        }
    }

    pub(crate) fn illegal(asc: Asc) -> Self {
        Self::check(Sense::new(SenseKey::ILLEGAL_REQUEST, asc))
    }

    /// INVALID FIELD IN CDB with the field pointer set (SPC-4 4.5.2.4.2).
    pub(crate) fn bad_field(byte: u16) -> Self {
        Self::check(
            Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB).with_sks(
                SenseKeySpecific::FieldPointer {
                    cd: true,
                    bpv: false,
                    bit: 0,
                    field: byte,
                },
            ),
        )
    }
}

/// Who sent a command: the I_T nexus as a target sees it (SAM-5 4.6.3).
/// Units that keep per-nexus state (copy managers holding list IDs,
/// SPC-4 6.4.3) key it on this.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Nexus {
    /// iSCSI initiator name (or any stable initiator port name).
    pub initiator: String,
    /// ISID of the session (RFC 7143 11.12.5); 0 where there is none.
    pub isid: u64,
    /// Target name the command came in through.
    pub target: String,
}

/// Set by a frontend to stop a command a unit runs in the background
/// (ABORT TASK, LOGICAL UNIT RESET, the end of the session); the unit
/// looks at it between blocks.
#[derive(Debug, Clone, Default)]
pub struct TaskStop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl TaskStop {
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A command a unit carries out without its lock held, on a thread of the
/// frontend, so a long one stalls no other initiator and can be stopped:
/// it returns the command's status and sense (no Data-In).
pub type Background = Box<dyn FnOnce(&TaskStop) -> Completion + Send>;

/// A target-side logical unit: bytes in, status, sense and bytes out.
pub trait LogicalUnit {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion;

    /// [`LogicalUnit::execute`] for a command from `nexus`; units without
    /// per-nexus state need not override it.
    fn execute_for(
        &mut self,
        nexus: &Nexus,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> Completion {
        let _ = nexus;
        self.execute(cdb, data_out, data_in)
    }

    /// The command as a [`Background`] task, for a unit that runs it
    /// outside its lock (a long copy); None (the default) has the frontend
    /// call [`LogicalUnit::execute_for`] instead.
    fn background(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Option<Background> {
        let _ = (nexus, cdb, data_out);
        None
    }

    /// The I_T nexus is gone (logout, connection lost): a unit drops what
    /// it held for it (SPC-4 6.4.3: list IDs and held data are per I_T
    /// nexus). Frontends call this; the default keeps nothing.
    fn nexus_lost(&mut self, nexus: &Nexus) {
        let _ = nexus;
    }
}

/// Copy a response into the data-in buffer, cut to the allocation.
pub(crate) fn reply(data_in: &mut [u8], bytes: &[u8]) -> Completion {
    let n = bytes.len().min(data_in.len());
    data_in[..n].copy_from_slice(&bytes[..n]);
    Completion::good(n)
}

/// The identity every in-memory unit (and the copy manager) reports:
/// INQUIRY strings, the serial and a NAA designator derived from it.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) device_type: DeviceType,
    pub(crate) product: &'static str,
    pub(crate) serial: String,
    pub(crate) naa: [u8; 16],
}

impl Identity {
    pub(crate) fn new(device_type: DeviceType, product: &'static str, serial: &str) -> Self {
        // NAA 6 (IEEE registered extended), our own made-up OUI, the rest
        // from the serial so distinct serials give distinct designators.
        let mut naa = [0u8; 16];
        naa[0] = 0x60;
        naa[1] = 0x01;
        naa[2] = 0x40;
        naa[3] = 0x50;
        let h = serial.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        naa[4..12].copy_from_slice(&h.to_be_bytes());
        naa[12..16].copy_from_slice(&(serial.len() as u32).to_be_bytes());
        Identity {
            device_type,
            product,
            serial: serial.to_string(),
            naa,
        }
    }

    /// The LU designators of VPD page 0x83: a T10 vendor ID and a 16-byte
    /// binary NAA.
    pub(crate) fn designators(&self) -> Vec<Designator> {
        vec![
            Designator {
                protocol_id: 0,
                code_set: CodeSet::ASCII,
                piv: false,
                association: Association::LU,
                designator_type: DesignatorType::T10_VENDOR_ID,
                value: format!("SANMOVER{}", self.serial).into_bytes(),
            },
            Designator {
                protocol_id: 0,
                code_set: CodeSet::BINARY,
                piv: false,
                association: Association::LU,
                designator_type: DesignatorType::NAA,
                value: self.naa.to_vec(),
            },
        ]
    }

    /// INQUIRY, REPORT LUNS, TEST UNIT READY, REQUEST SENSE: the commands
    /// every unit answers alike. `None` when `cdb` is none of them.
    pub(crate) fn common(&self, cdb: &[u8], data_in: &mut [u8]) -> Option<Completion> {
        let op = Opcode(*cdb.first()?);
        Some(match op {
            Opcode::TEST_UNIT_READY => Completion::good(0),
            Opcode::REQUEST_SENSE => reply(
                data_in,
                &Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL).to_fixed(),
            ),
            Opcode::INQUIRY => match Inquiry::parse(cdb) {
                Err(_) => Completion::bad_field(1),
                Ok(q) if !q.evpd && q.page_code != 0 => Completion::bad_field(2),
                Ok(q) if !q.evpd => reply(data_in, &self.standard().to_vec()),
                Ok(q) => match self.vpd(VpdPage(q.page_code)) {
                    Some(bytes) => reply(data_in, &bytes),
                    None => Completion::bad_field(2),
                },
            },
            Opcode::REPORT_LUNS => match ReportLuns::parse(cdb) {
                Err(_) => Completion::bad_field(2),
                Ok(_) => {
                    let list = LunList {
                        luns: vec![Lun::from_index(0)],
                        list_length: 8,
                    };
                    reply(data_in, &list.to_vec())
                }
            },
            _ => return None,
        })
    }

    pub(crate) fn standard(&self) -> StandardInquiry {
        StandardInquiry {
            peripheral_qualifier: 0,
            device_type: self.device_type,
            rmb: self.device_type == DeviceType::TAPE,
            version: 0x06,
            response_data_format: 2,
            normaca: false,
            hisup: true,
            sccs: false,
            acc: false,
            tpgs: 0,
            three_pc: false,
            protect: false,
            encserv: false,
            multip: false,
            cmdque: true,
            vendor: "SANMOVER".into(),
            product: self.product.into(),
            revision: "0001".into(),
            version_descriptors: Vec::new(),
        }
    }

    pub(crate) fn vpd(&self, page: VpdPage) -> Option<Vec<u8>> {
        let dt = self.device_type;
        Some(match page {
            VpdPage::SUPPORTED_PAGES => SupportedVpdPages {
                device_type: dt,
                pages: {
                    let mut p = vec![
                        VpdPage::SUPPORTED_PAGES,
                        VpdPage::UNIT_SERIAL,
                        VpdPage::DEVICE_IDENTIFICATION,
                    ];
                    if dt == DeviceType::DISK {
                        // MemDisk answers these itself (SBC-3 6.6.3, 6.6.2).
                        p.extend([
                            VpdPage(BLOCK_LIMITS_VPD),
                            VpdPage(BLOCK_CHARACTERISTICS_VPD),
                        ]);
                    }
                    p
                },
            }
            .to_vec(),
            VpdPage::UNIT_SERIAL => UnitSerialNumber {
                device_type: dt,
                serial: self.serial.clone(),
            }
            .to_vec(),
            VpdPage::DEVICE_IDENTIFICATION => DeviceIdentification {
                device_type: dt,
                designators: self.designators(),
            }
            .to_vec(),
            _ => return None,
        })
    }
}

/// A disk held in memory.
#[derive(Debug, Clone)]
pub struct MemDisk {
    id: Identity,
    block_size: u32,
    data: Vec<u8>,
    /// Bytes read and written, for tests that count traffic.
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl MemDisk {
    pub fn new(serial: &str, blocks: u64, block_size: u32) -> Self {
        MemDisk {
            id: Identity::new(DeviceType::DISK, "MEMORY DISK", serial),
            block_size,
            data: vec![0; (blocks * block_size as u64) as usize],
            bytes_read: 0,
            bytes_written: 0,
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    fn blocks(&self) -> u64 {
        self.data.len() as u64 / self.block_size as u64
    }

    /// The byte range of an I/O, or the sense that refuses it.
    fn range(&self, lba: u64, blocks: u64) -> Result<std::ops::Range<usize>, Completion> {
        match lba.checked_add(blocks) {
            Some(end) if end <= self.blocks() => {
                let bs = self.block_size as usize;
                Ok(lba as usize * bs..end as usize * bs)
            }
            _ => Err(Completion::illegal(Asc::LBA_OUT_OF_RANGE)),
        }
    }

    fn read(&mut self, lba: u64, blocks: u64, data_in: &mut [u8]) -> Completion {
        match self.range(lba, blocks) {
            Err(c) => c,
            Ok(r) => {
                self.bytes_read += r.len() as u64;
                let bytes = &self.data[r];
                let n = bytes.len().min(data_in.len());
                data_in[..n].copy_from_slice(&bytes[..n]);
                Completion::good(n)
            }
        }
    }

    fn write(&mut self, lba: u64, blocks: u64, data_out: &[u8]) -> Completion {
        match self.range(lba, blocks) {
            Err(c) => c,
            Ok(r) if data_out.len() < r.len() => {
                Completion::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR)
            }
            Ok(r) => {
                self.bytes_written += r.len() as u64;
                let n = r.len();
                self.data[r].copy_from_slice(&data_out[..n]);
                Completion::good(0)
            }
        }
    }
}

/// Block Limits VPD page code (SBC-3 6.6.3).
const BLOCK_LIMITS_VPD: u8 = 0xb0;
/// Block Device Characteristics VPD page code (SBC-3 6.6.2).
const BLOCK_CHARACTERISTICS_VPD: u8 = 0xb1;

/// Big-endian field of a CDB (the caller checked the CDB length).
fn cdb_field(cdb: &[u8], r: std::ops::Range<usize>) -> u64 {
    cdb[r].iter().fold(0u64, |a, &b| (a << 8) | b as u64)
}

impl MemDisk {
    /// The disk-only VPD pages: Block Limits in its short SBC-2 form (no
    /// SBC-3 version descriptor is claimed) and Block Device
    /// Characteristics (non-rotating). Units built on a MemDisk (the
    /// router's copy manager) answer them through this too.
    pub(crate) fn disk_vpd(&self, page: u8) -> Option<Vec<u8>> {
        let dt = self.id.device_type.0;
        match page {
            BLOCK_LIMITS_VPD => {
                // MAXIMUM TRANSFER LENGTH in blocks: the 64 MiB a command
                // may move. Cut to the first 16 bytes (PAGE LENGTH 0Ch).
                let mut b = crate::scsi::spc::BlockLimitsVpd {
                    max_transfer_length: (64u32 << 20) / self.block_size.max(1),
                    ..Default::default()
                }
                .to_vec();
                b[0] = dt;
                b.truncate(16);
                b[3] = 0x0c;
                Some(b)
            }
            BLOCK_CHARACTERISTICS_VPD => {
                let mut p = vec![0u8; 64];
                p[0] = dt;
                p[1] = page;
                p[3] = 0x3c;
                // MEDIUM ROTATION RATE 0001h: non-rotating medium.
                p[5] = 0x01;
                Some(p)
            }
            _ => None,
        }
    }

    /// WRITE AND VERIFY(10/12/16) (SBC-3 5.41-5.43). BYTCHK 00b (verify
    /// the medium) and 01b (compare with the Data-Out buffer) both hold
    /// trivially for memory once written; other BYTCHK values are refused.
    fn write_verify(&mut self, cdb: &[u8], data_out: &[u8]) -> Completion {
        let (need, lba, len) = match cdb[0] {
            0x2e => (10, 2..6, 7..9),
            0xae => (12, 2..6, 6..10),
            _ => (16, 2..10, 10..14),
        };
        if cdb.len() < need {
            return Completion::bad_field(0);
        }
        if cdb[1] & 0x06 > 0x02 {
            return Completion::bad_field(1);
        }
        self.write(cdb_field(cdb, lba), cdb_field(cdb, len), data_out)
    }
}

/// SBC-3 4.22.1: no protection information here (PROTECT=0), so a
/// non-zero RDPROTECT or WRPROTECT (byte 1, bits 7..5, of READ, WRITE and
/// WRITE AND VERIFY 10/12/16) is INVALID FIELD IN CDB. DPO and FUA are
/// honoured trivially (memory is the medium; MODE SENSE says DPOFUA=1).
fn protect_refusal(cdb: &[u8]) -> Option<Completion> {
    let op = *cdb.first()?;
    let has_field = matches!(
        op,
        0x28 | 0xa8 | 0x88 | 0x2a | 0xaa | 0x8a | 0x2e | 0xae | 0x8e
    );
    if !has_field || cdb.len() < 10 || cdb[1] & 0xe0 == 0 {
        return None;
    }
    let sks = SenseKeySpecific::FieldPointer {
        cd: true,
        bpv: true,
        bit: 7,
        field: 1,
    };
    Some(Completion::check(
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB).with_sks(sks),
    ))
}

impl LogicalUnit for MemDisk {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        if let Some(c) = protect_refusal(cdb) {
            return c;
        }
        // SPC-4 6.6: INQUIRY, EVPD set, a disk-only page.
        if cdb.len() >= 6 && cdb[0] == Opcode::INQUIRY.0 && cdb[1] & 0x01 != 0 {
            if let Some(p) = self.disk_vpd(cdb[2]) {
                return reply(data_in, &p);
            }
        }
        if let Some(c) = self.id.common(cdb, data_in) {
            return c;
        }
        let op = Opcode(cdb[0]);
        let bad = |_| Completion::bad_field(0);
        match op {
            // READ(12), WRITE(12) (SBC-3 5.14, 5.36).
            Opcode(0xa8) | Opcode(0xaa) if cdb.len() >= 12 => {
                let (lba, n) = (cdb_field(cdb, 2..6), cdb_field(cdb, 6..10));
                if op.0 == 0xa8 {
                    self.read(lba, n, data_in)
                } else {
                    self.write(lba, n, data_out)
                }
            }
            Opcode(0x2e) | Opcode(0xae) | Opcode(0x8e) => self.write_verify(cdb, data_out),
            // PERSISTENT RESERVE IN (SPC-4 6.15): no keys, no reservation.
            Opcode::PERSISTENT_RESERVE_IN if cdb.len() >= 10 => match cdb[1] & 0x1f {
                // READ KEYS, READ RESERVATION, READ FULL STATUS: PRGENERATION
                // 0 and nothing listed (6.15.2, 6.15.3, 6.15.5).
                0x00 | 0x01 | 0x03 => reply(data_in, &[0u8; 8]),
                // REPORT CAPABILITIES (6.15.4): LENGTH 8, no capability,
                // TYPE MASK not valid.
                0x02 => reply(data_in, &[0, 8, 0, 0, 0, 0, 0, 0]),
                _ => Completion::bad_field(1),
            },
            // MODE SENSE(6) (SPC-4 6.11): the Control mode page only
            // (SPC-4 7.5.8), defaults, no block descriptor.
            Opcode::MODE_SENSE_6 if cdb.len() >= 6 => match cdb[2] & 0x3f {
                0x0a | 0x3f => {
                    let mut p = vec![0u8; 4 + 12];
                    p[0] = (p.len() - 1) as u8;
                    // SBC-3 6.4.1: DPOFUA, DPO and FUA are supported.
                    p[2] = 0x10;
                    p[4] = 0x0a;
                    p[5] = 0x0a;
                    // TAS (SPC-4 7.5.8): commands aborted by another I_T
                    // nexus end with TASK ABORTED status.
                    p[9] = 0x40;
                    reply(data_in, &p)
                }
                _ => Completion::bad_field(2),
            },
            Opcode::READ_CAPACITY_10 => {
                let last = self.blocks().saturating_sub(1).min(u32::MAX as u64) as u32;
                reply(
                    data_in,
                    &Capacity10 {
                        last_lba: last,
                        block_len: self.block_size,
                    }
                    .to_vec(),
                )
            }
            Opcode::SERVICE_ACTION_IN_16 if cdb.get(1).map(|b| b & 0x1f) == Some(0x10) => reply(
                data_in,
                &Capacity16 {
                    last_lba: self.blocks().saturating_sub(1),
                    block_len: self.block_size,
                    p_type: 0,
                    prot_en: false,
                    p_i_exponent: 0,
                    lbppbe: 0,
                    lbpme: false,
                    lbprz: false,
                    lowest_aligned_lba: 0,
                }
                .to_vec(),
            ),
            Opcode::READ_10 => match Read10::parse(cdb) {
                Ok(c) => self.read(c.lba.0, c.blocks as u64, data_in),
                Err(e) => bad(e),
            },
            Opcode::READ_16 => match Read16::parse(cdb) {
                Ok(c) => self.read(c.lba.0, c.blocks as u64, data_in),
                Err(e) => bad(e),
            },
            Opcode::WRITE_10 => match Write10::parse(cdb) {
                Ok(c) => self.write(c.lba.0, c.blocks as u64, data_out),
                Err(e) => bad(e),
            },
            Opcode::WRITE_16 => match Write16::parse(cdb) {
                Ok(c) => self.write(c.lba.0, c.blocks as u64, data_out),
                Err(e) => bad(e),
            },
            Opcode::SYNCHRONIZE_CACHE_10 => match SynchronizeCache10::parse(cdb) {
                Ok(_) => Completion::good(0),
                Err(e) => bad(e),
            },
            Opcode::SYNCHRONIZE_CACHE_16 => match SynchronizeCache16::parse(cdb) {
                Ok(_) => Completion::good(0),
                Err(e) => bad(e),
            },
            _ => Completion::illegal(Asc::INVALID_OPCODE),
        }
    }
}

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
            Opcode::WRITE_FILEMARKS_6 => match WriteFilemarks6::parse(cdb) {
                Err(_) => Completion::bad_field(1),
                Ok(w) => {
                    self.objects.truncate(self.pos);
                    for _ in 0..w.count {
                        self.objects.push(TapeObject::Filemark);
                    }
                    self.pos = self.objects.len();
                    Completion::good(0)
                }
            },
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
            Opcode::READ_POSITION => match ReadPosition::parse(cdb) {
                Ok(rp)
                    if rp.form == ReadPositionForm::SHORT || rp.form == ReadPositionForm::LONG =>
                {
                    let p = Position {
                        form: rp.form,
                        ..self.position()
                    };
                    reply(data_in, &p.emit())
                }
                _ => Completion::bad_field(1),
            },
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
            Opcode::MODE_SELECT_6 => match ModeSelect6::parse(cdb) {
                Err(_) => Completion::bad_field(1),
                Ok(_) => match ModeParameters::parse6(data_out) {
                    Ok(mp) => {
                        if let Some(bd) = mp.block_descriptors.first() {
                            self.block_length = bd.block_length;
                        }
                        Completion::good(0)
                    }
                    Err(_) => Completion::illegal(Asc::INVALID_FIELD_IN_PARAMETER_LIST),
                },
            },
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

/// A [`Transport`] over any [`LogicalUnit`], with fault injection. Runs each
/// command at submit time; completions come back in submission order.
pub struct MemoryTransport<L: LogicalUnit> {
    pub lu: L,
    name: String,
    done: VecDeque<Response>,
    /// After this many more commands, every command fails with a lost
    /// session (the target died).
    pub die_after: Option<u64>,
    pub depth: usize,
    /// Commands executed.
    pub commands: u64,
}

impl<L: LogicalUnit> MemoryTransport<L> {
    pub fn new(name: &str, lu: L) -> Self {
        MemoryTransport {
            lu,
            name: name.to_string(),
            done: VecDeque::new(),
            die_after: None,
            depth: 8,
            commands: 0,
        }
    }
}

impl<L: LogicalUnit> Transport for MemoryTransport<L> {
    fn submit(&mut self, req: Request) -> Result<(), TransportError> {
        if self.die_after == Some(0) {
            return Err(TransportError::SessionLost(format!(
                "{}: target stopped answering (injected)",
                self.name
            )));
        }
        if let Some(n) = self.die_after.as_mut() {
            *n -= 1;
        }
        self.commands += 1;
        req.check_span()?;
        let mut buf = req.buf;
        let span = req.span;
        let data = &mut buf[span.clone()];
        let c = match req.dir {
            Direction::In => self.lu.execute(req.cdb.as_bytes(), &[], data),
            Direction::Out => self.lu.execute(req.cdb.as_bytes(), data, &mut []),
            Direction::None => self.lu.execute(req.cdb.as_bytes(), &[], &mut []),
        };
        let residual = if req.dir == Direction::In && c.data_in_len < span.len() {
            Residual::Underflow((span.len() - c.data_in_len) as u64)
        } else {
            Residual::None
        };
        self.done.push_back(Response {
            tag: req.tag,
            cdb: req.cdb,
            status: c.status,
            sense: c.sense,
            residual,
            buf,
            span,
            dir: req.dir,
        });
        Ok(())
    }

    fn complete(&mut self) -> Result<Response, TransportError> {
        self.done.pop_front().ok_or_else(|| {
            TransportError::SessionLost(format!("{}: complete() with nothing in flight", self.name))
        })
    }

    fn queue_depth(&self) -> usize {
        self.depth
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl<L: LogicalUnit> std::fmt::Debug for MemoryTransport<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("name", &self.name)
            .field("in_flight", &self.done.len())
            .field("commands", &self.commands)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(d: &mut MemDisk, cdb: &[u8], out: &[u8], alloc: usize) -> (Completion, Vec<u8>) {
        let mut buf = vec![0u8; alloc];
        let c = d.execute(cdb, out, &mut buf);
        buf.truncate(c.data_in_len);
        (c, buf)
    }

    #[test]
    fn read_write_12_and_write_and_verify() {
        let mut d = MemDisk::new("D", 64, 512);
        let data = vec![0x5a; 1024];
        // WRITE(12) of 2 blocks at LBA 3, READ(12) back.
        let w12 = [0xaa, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0];
        assert_eq!(run(&mut d, &w12, &data, 0).0, Completion::good(0));
        let r12 = [0xa8, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0];
        assert_eq!(run(&mut d, &r12, &[], 1024).1, data);
        // WRITE AND VERIFY(10), BYTCHK 01b: written.
        let wv10 = [0x2e, 0x02, 0, 0, 0, 10, 0, 0, 1, 0];
        assert_eq!(run(&mut d, &wv10, &[7; 512], 0).0.status, Status::GOOD);
        assert_eq!(&d.data()[10 * 512..11 * 512], &[7; 512][..]);
        // BYTCHK 11b is refused; WRITE AND VERIFY(16) past the end too.
        let wv10_bad = [0x2e, 0x06, 0, 0, 0, 10, 0, 0, 1, 0];
        assert_eq!(
            run(&mut d, &wv10_bad, &[7; 512], 0).0.status,
            Status::CHECK_CONDITION
        );
        let mut wv16 = [0u8; 16];
        wv16[0] = 0x8e;
        wv16[9] = 64;
        wv16[13] = 1;
        let (c, _) = run(&mut d, &wv16, &[0; 512], 0);
        assert_eq!(Sense::parse(&c.sense).unwrap().asc, Asc::LBA_OUT_OF_RANGE);
    }

    /// No protection information: RDPROTECT/WRPROTECT refused; DPO and
    /// FUA taken, as MODE SENSE's DPOFUA says; PR IN's four actions.
    #[test]
    fn protect_fields_dpo_fua_and_pr_in_actions() {
        let mut d = MemDisk::new("D", 64, 512);
        for op in [0x28u8, 0x2a, 0x2e] {
            let mut cdb = [op, 0x20, 0, 0, 0, 1, 0, 0, 1, 0];
            let (c, _) = run(&mut d, &cdb, &[0; 512], 512);
            let s = Sense::parse(&c.sense).unwrap();
            assert_eq!(
                (s.key, s.asc),
                (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
            );
            cdb[1] = 0x10; // DPO
            assert_eq!(
                run(&mut d, &cdb, &[0; 512], 512).0.status,
                Status::GOOD,
                "{op:x}"
            );
        }
        let (_, ms) = run(&mut d, &[0x1a, 0, 0x0a, 0, 255, 0], &[], 255);
        assert_eq!(ms[2] & 0x10, 0x10, "DPOFUA");
        assert_eq!(ms[4 + 5] & 0x40, 0x40, "TAS");
        for sa in 0..4u8 {
            let cdb = [0x5e, sa, 0, 0, 0, 0, 0, 0, 8, 0];
            assert_eq!(run(&mut d, &cdb, &[], 8).0.status, Status::GOOD, "SA {sa}");
        }
        let cdb = [0x5e, 4, 0, 0, 0, 0, 0, 0, 8, 0];
        assert_eq!(run(&mut d, &cdb, &[], 8).0.status, Status::CHECK_CONDITION);
    }

    #[test]
    fn disk_vpd_pages_mode_sense_and_pr_in() {
        let mut d = MemDisk::new("D", 64, 512);
        let (_, pages) = run(&mut d, &[0x12, 1, 0x00, 0, 255, 0], &[], 255);
        assert_eq!(pages, vec![0, 0, 0, 5, 0x00, 0x80, 0x83, 0xb0, 0xb1]);
        let (_, bl) = run(&mut d, &[0x12, 1, 0xb0, 0, 255, 0], &[], 255);
        // SBC-2's 16-byte page (PAGE LENGTH 0Ch): 64 MiB / 512 = 0x20000
        // blocks of MAXIMUM TRANSFER LENGTH, no OPTIMAL TRANSFER LENGTH.
        assert_eq!(
            bl,
            vec![0, 0xb0, 0, 0x0c, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]
        );
        let (_, bdc) = run(&mut d, &[0x12, 1, 0xb1, 0, 255, 0], &[], 255);
        assert_eq!((bdc.len(), &bdc[..6]), (64, &[0, 0xb1, 0, 0x3c, 0, 1][..]));
        let (_, ms) = run(&mut d, &[0x1a, 0, 0x3f, 0, 255, 0], &[], 255);
        assert_eq!(&ms[..6], &[15, 0, 0x10, 0, 0x0a, 0x0a]);
        assert_eq!(ms.len(), 16);
        let (c, _) = run(&mut d, &[0x1a, 0, 0x08, 0, 255, 0], &[], 255);
        assert_eq!(c.status, Status::CHECK_CONDITION);
        let (_, keys) = run(&mut d, &[0x5e, 0, 0, 0, 0, 0, 0, 0, 8, 0], &[], 8);
        assert_eq!(keys, vec![0; 8]);
        // A tape lists no block pages.
        let mut t = MemTape::new("T", 1 << 20);
        let mut buf = vec![0u8; 255];
        let c = t.execute(&[0x12, 1, 0x00, 0, 255, 0], &[], &mut buf);
        assert_eq!(&buf[3..c.data_in_len], &[3, 0x00, 0x80, 0x83]);
    }

    #[test]
    fn a_span_confines_the_data_phase_to_its_bytes() {
        use crate::scsi::sbc::{Read16, Write16};
        use crate::scsi::{CdbCodec, Lba};
        let mut lu = MemDisk::new("D", 8, 512);
        lu.data_mut()[..512].fill(0x5A);
        let mut t = MemoryTransport::new("d", lu);
        // Data-in lands in buf[16..528]; the bytes around it are untouched.
        let req = Request::data_in_buf(Read16::new(Lba(0), 1).to_cdb(), vec![0xEE; 600])
            .with_span(16..528);
        let r = t.execute(req).unwrap();
        assert!(r.is_good());
        assert_eq!(r.span, 16..528);
        assert_eq!(r.transferred(), 512);
        assert!(r.buf[..16].iter().all(|&b| b == 0xEE));
        assert!(r.buf[16..528].iter().all(|&b| b == 0x5A));
        assert!(r.buf[528..].iter().all(|&b| b == 0xEE));
        // Data-out sends buf[span] only.
        let mut out = vec![0xEE; 16];
        out.extend([0x33; 512]);
        out.extend([0xEE; 7]);
        let req = Request::data_out(Write16::new(Lba(1), 1).to_cdb(), out).with_span(16..528);
        assert!(t.execute(req).unwrap().is_good());
        assert!(t.lu.data()[512..1024].iter().all(|&b| b == 0x33));
        // A span outside the buffer is refused before anything moves.
        let req =
            Request::data_in_buf(Read16::new(Lba(0), 1).to_cdb(), vec![0; 100]).with_span(0..512);
        assert!(matches!(
            t.execute(req),
            Err(TransportError::Rejected { .. })
        ));
    }
}
