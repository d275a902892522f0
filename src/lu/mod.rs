//! Target-side logical units: the contract every unit keeps
//! ([`LogicalUnit`]: CDB and data in, status, sense and data out, per I_T
//! [`Nexus`]), and the units themselves. Frontends (our iSCSI target in
//! `crate::frontend`) only move bytes to and from a unit; the router's copy
//! manager is one unit among them, and the in-memory disk and tape serve
//! the router (its scratch disk) and every engine test (through
//! `transport::memory::MemoryTransport`).

use crate::scsi::sense::{Asc, Sense, SenseKey, SenseKeySpecific};
use crate::scsi::spc::{
    Association, CodeSet, Designator, DesignatorType, DeviceIdentification, Inquiry, Lun, LunList,
    ReportLuns, StandardInquiry, SupportedVpdPages, UnitSerialNumber, VpdPage,
};
use crate::scsi::{CdbCodec, DeviceType, Opcode, Status, Wire};

pub mod changer;
mod disk;
use disk::{BLOCK_CHARACTERISTICS_VPD, BLOCK_LIMITS_VPD};
mod reservations;
mod tape;
pub use tape::exercise as tape_exercise;

pub use changer::ChangerLu;
pub use disk::MemDisk;
pub use reservations::Reserved;
pub use tape::{
    Cartridge, DriveError, ImageDrive, ImageMedium, Medium, MediumError, MediumLabel, MemTape,
    MemoryMedium, ObjectKind, SharedDrive, TapeDrive, TapeObject, DENSITY_CODE, IMAGE_HEADER_LEN,
    RECORD_HEADER_LEN,
};

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

    /// A LOGICAL UNIT RESET or a target reset reached this unit (SAM-5
    /// 6.3.3, 7.7): a unit drops what a reset clears (RESERVE(6)
    /// reservations, SPC-2 5.5.1) and a unit with Unit Attentions reports
    /// 29/00 to every nexus afterwards. The frontend calls this after
    /// stopping the unit's tasks; the default keeps everything.
    fn reset(&mut self) {}

    /// The Unit Attention `nexus` is to see before `cdb` runs, cleared as
    /// it is taken; None when none is pending or `cdb` neither reports nor
    /// clears one. A layer that answers some commands itself, such as
    /// [`Reserved`], asks first: SAM-5 5.14 puts a Unit Attention before a
    /// RESERVATION CONFLICT.
    fn take_attention(&mut self, nexus: &Nexus, cdb: &[u8]) -> Option<Sense> {
        let _ = (nexus, cdb);
        None
    }

    /// A command the frontend sends on its own behalf (learning a unit's
    /// type and block size), not the initiator's: a layer such as
    /// [`Reserved`] lets it through without reporting or clearing a Unit
    /// Attention and without a reservation check.
    fn probe(&mut self, nexus: &Nexus, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        self.execute_for(nexus, cdb, &[], data_in)
    }
}

/// A unit behind a mutex is a unit (the frontend's shared units, and a
/// layer such as [`Reserved`] over one).
impl<L: LogicalUnit + ?Sized> LogicalUnit for std::sync::Arc<std::sync::Mutex<L>> {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        lock_unit(self).execute(cdb, data_out, data_in)
    }

    fn execute_for(
        &mut self,
        nexus: &Nexus,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> Completion {
        lock_unit(self).execute_for(nexus, cdb, data_out, data_in)
    }

    fn background(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Option<Background> {
        lock_unit(self).background(nexus, cdb, data_out)
    }

    fn nexus_lost(&mut self, nexus: &Nexus) {
        lock_unit(self).nexus_lost(nexus)
    }

    fn reset(&mut self) {
        lock_unit(self).reset()
    }

    fn probe(&mut self, nexus: &Nexus, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        lock_unit(self).probe(nexus, cdb, data_in)
    }

    fn take_attention(&mut self, nexus: &Nexus, cdb: &[u8]) -> Option<Sense> {
        lock_unit(self).take_attention(nexus, cdb)
    }
}

/// A panic in one command leaves the unit usable for the next.
fn lock_unit<L: ?Sized>(m: &std::sync::Mutex<L>) -> std::sync::MutexGuard<'_, L> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
                    if dt == DeviceType::TAPE {
                        // The tape drive answers this itself (SSC-4 8.4.2).
                        p.push(VpdPage::SEQUENTIAL_ACCESS_CAPABILITIES);
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
