//! A tape drive logical unit (SSC-4) over a [`Medium`]: one drive, two
//! media. [`MemTape`] is the drive over a [`MemoryMedium`] (engine tests,
//! the router); [`ImageDrive`] is the drive over a cartridge image file
//! ([`ImageMedium`], format in FORMAT.md), which a changer loads and
//! unloads through [`ImageDrive::load_cartridge`] and
//! [`ImageDrive::unload_cartridge`].
//!
//! The drive keeps the position (a logical object number, SSC-4 4.2.2),
//! the mode parameters and the per-nexus Unit Attentions; the medium only
//! stores objects. CDBs and responses go through the codec in
//! `crate::scsi::ssc` and `crate::scsi::spc`. What is and is not emulated
//! is listed in README.md ("Our tape drive").

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::spc::{Designator, Inquiry, RequestSense, VpdPage};
use crate::scsi::ssc::SequentialAccessCapabilities;
use crate::scsi::{CdbCodec, DeviceType, Opcode, Wire};

use super::{reply, Completion, Identity, LogicalUnit, Nexus};

pub(crate) mod attention;
pub mod exercise;
mod image;
mod medium;
mod mode;
mod motion;
#[cfg(test)]
mod tests;

use attention::Attentions;
pub use image::{ImageMedium, IMAGE_HEADER_LEN, RECORD_HEADER_LEN};
pub use medium::{Medium, MediumError, MemoryMedium, ObjectKind, TapeObject};
pub use mode::DENSITY_CODE;

/// The drive over memory: what engine tests and the router use.
pub type MemTape = TapeDrive<MemoryMedium>;
/// The drive over cartridge image files: what a library serves.
pub type ImageDrive = TapeDrive<ImageMedium>;
/// An image drive shared between a changer (typed) and a frontend (as a
/// `LogicalUnit`, see [`ImageDrive::as_lu`]): one object, two handles.
pub type SharedDrive = Arc<Mutex<ImageDrive>>;

/// What is written on the cartridge's label and its write-protect tab.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediumLabel {
    pub barcode: String,
    pub write_protected: bool,
}

/// A cartridge as a changer handles it: its image file and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cartridge {
    pub path: PathBuf,
    pub barcode: String,
    pub write_protected: bool,
}

/// Why a changer could not load or unload a drive.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("drive {serial} already holds a cartridge")]
    Occupied { serial: String },
    #[error("drive {serial} holds no cartridge")]
    Empty { serial: String },
    /// PREVENT ALLOW MEDIUM REMOVAL is in force (SSC-4 7.5): a changer
    /// reports this as MEDIUM REMOVAL PREVENTED (53/02).
    #[error("drive {serial}: medium removal prevented")]
    RemovalPrevented { serial: String },
    #[error(transparent)]
    Medium(#[from] MediumError),
}

/// The medium in the drive and its label.
#[derive(Debug, Clone)]
struct Loaded<M> {
    medium: M,
    label: MediumLabel,
}

/// Mode parameters the initiator sets (MODE SELECT) and the drive obeys.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// Block descriptor BLOCK LENGTH; 0 = variable-block mode.
    block_length: u32,
    /// Early-warning zone: bytes before the physical end.
    early_warning: u64,
    /// Programmable early-warning size (device configuration extension
    /// PEWS), megabytes before the early-warning point; 0 = none.
    pews: u16,
    /// Data compression page DCE (accepted and reported; data is stored
    /// as written).
    compression: bool,
    /// Device configuration page, as last selected.
    config: crate::scsi::ssc::DeviceConfigurationPage,
}

/// A tape drive LU over a medium of type `M`.
#[derive(Debug, Clone)]
pub struct TapeDrive<M: Medium> {
    id: Identity,
    slot: Option<Loaded<M>>,
    /// Loaded and threaded: commands that move the medium work. False
    /// after UNLOAD with the cartridge still in the drive.
    ready: bool,
    /// Logical object number of the next object (SSC-4 4.2.2).
    pos: u64,
    settings: Settings,
    prevent: bool,
    attention: Attentions,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl<M: Medium> TapeDrive<M> {
    /// Largest block, READ BLOCK LIMITS' MAXIMUM BLOCK LENGTH LIMIT.
    pub const MAX_BLOCK: u32 = 8 << 20;
    /// Most filemarks one WRITE FILEMARKS may write (larger counts get
    /// INVALID FIELD IN CDB: each filemark is a record on the medium).
    pub const MAX_FILEMARKS: u32 = 1 << 16;

    /// An empty drive, not ready until a medium is loaded.
    pub fn empty(product: &'static str, serial: &str) -> Self {
        TapeDrive {
            id: Identity::new(DeviceType::TAPE, product, serial),
            slot: None,
            ready: false,
            pos: 0,
            settings: Settings {
                block_length: 0,
                early_warning: 0,
                pews: 0,
                compression: false,
                config: Default::default(),
            },
            prevent: false,
            attention: Attentions::default(),
            bytes_read: 0,
            bytes_written: 0,
        }
    }

    /// Put `medium` in the drive and thread it: ready, at BOP; every
    /// nexus sees NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED
    /// (28/00). The early-warning zone is reset to 1/20 of the capacity.
    pub fn load_medium(&mut self, medium: M, label: MediumLabel) -> Result<(), DriveError> {
        if self.slot.is_some() {
            return Err(DriveError::Occupied {
                serial: self.id.serial.clone(),
            });
        }
        self.settings.early_warning = medium.capacity() / 20;
        self.slot = Some(Loaded { medium, label });
        self.ready = true;
        self.pos = 0;
        self.attention.post(Asc::NOT_READY_TO_READY_CHANGE, None);
        Ok(())
    }

    /// Take the medium out (made durable first); refused while removal is
    /// prevented.
    pub fn unload_medium(&mut self) -> Result<(M, MediumLabel), DriveError> {
        if self.prevent {
            return Err(DriveError::RemovalPrevented {
                serial: self.id.serial.clone(),
            });
        }
        let Some(mut l) = self.slot.take() else {
            return Err(DriveError::Empty {
                serial: self.id.serial.clone(),
            });
        };
        self.ready = false;
        self.pos = 0;
        l.medium.sync()?;
        Ok((l.medium, l.label))
    }

    /// Early warning this many bytes before the physical end (at most the
    /// capacity). Loading a medium resets it to 1/20 of the capacity.
    pub fn with_early_warning(mut self, bytes: u64) -> Self {
        let cap = self.slot.as_ref().map_or(0, |l| l.medium.capacity());
        self.settings.early_warning = bytes.min(cap);
        self
    }

    /// A cartridge is in the drive (threaded or not).
    pub fn is_loaded(&self) -> bool {
        self.slot.is_some()
    }

    /// The medium is threaded: motion commands work.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// PREVENT ALLOW MEDIUM REMOVAL is in force.
    pub fn removal_prevented(&self) -> bool {
        self.prevent
    }

    /// The unit serial number (VPD 80h).
    pub fn serial(&self) -> &str {
        &self.id.serial
    }

    /// The LU designators of VPD 83h, which a changer reports as the
    /// drive's DVCID identifier (SMC-3 6.10.3).
    pub fn designators(&self) -> Vec<Designator> {
        self.id.designators()
    }

    /// The label of the loaded medium.
    pub fn label(&self) -> Option<&MediumLabel> {
        self.slot.as_ref().map(|l| &l.label)
    }

    /// The loaded medium.
    pub fn medium(&self) -> Option<&M> {
        self.slot.as_ref().map(|l| &l.medium)
    }

    /// The logical object number the head is at.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// A logical unit reset (SAM-5 6.3.3): Unit Attention 29/00 for every
    /// nexus, removal allowed again; the medium stays where it is.
    pub fn reset(&mut self) {
        self.attention.reset();
        self.prevent = false;
    }

    /// A medium that is loaded and ready, or the NOT READY sense saying
    /// why not (SSC-4 4.2.1: 3A/00 with no medium, 04/02 when unloaded).
    fn loaded(&mut self) -> Result<&mut Loaded<M>, Completion> {
        if let Some(asc) = self.not_ready_reason() {
            return Err(not_ready(asc));
        }
        self.slot
            .as_mut()
            .ok_or_else(|| not_ready(Asc::MEDIUM_NOT_PRESENT))
    }

    fn not_ready_reason(&self) -> Option<Asc> {
        match (&self.slot, self.ready) {
            (Some(_), true) => None,
            (Some(_), false) => Some(Asc::NOT_READY_INITIALIZING_COMMAND_REQUIRED),
            (None, _) => Some(Asc::MEDIUM_NOT_PRESENT),
        }
    }

    fn write_protected(&self) -> bool {
        self.slot.as_ref().is_some_and(|l| l.label.write_protected)
    }
}

pub(crate) fn not_ready(asc: Asc) -> Completion {
    Completion::check(Sense::new(SenseKey::NOT_READY, asc))
}

impl MemTape {
    /// A drive holding a blank memory medium of `capacity` bytes, ready;
    /// early warning 1/20 of the capacity before the end.
    pub fn new(serial: &str, capacity: u64) -> Self {
        let mut d = TapeDrive::empty("MEMORY TAPE", serial);
        d.load_medium(MemoryMedium::new(capacity), MediumLabel::default())
            .expect("an empty drive takes a medium");
        d
    }

    /// The objects on the medium (none without one).
    pub fn objects(&self) -> &[TapeObject] {
        self.slot.as_ref().map_or(&[], |l| &l.medium.objects)
    }

    /// The medium itself, for tests that damage it.
    pub fn objects_mut(&mut self) -> &mut [TapeObject] {
        match self.slot.as_mut() {
            Some(l) => &mut l.medium.objects,
            None => &mut [],
        }
    }
}

impl ImageDrive {
    /// An empty drive for cartridge images.
    pub fn new(serial: &str) -> Self {
        TapeDrive::empty("IMAGE TAPE", serial)
    }

    /// Create a blank cartridge image of `capacity` bytes of block data;
    /// fails if `path` exists.
    pub fn create_blank(path: &Path, capacity: u64) -> Result<(), DriveError> {
        Ok(ImageMedium::create(path, capacity)?)
    }

    /// Load a cartridge: open its image (read-only when write protected),
    /// cut a torn tail back to the last whole record, and thread it.
    pub fn load_cartridge(&mut self, c: &Cartridge) -> Result<(), DriveError> {
        if self.slot.is_some() {
            return Err(DriveError::Occupied {
                serial: self.id.serial.clone(),
            });
        }
        let m = ImageMedium::open(&c.path, !c.write_protected)?;
        let label = MediumLabel {
            barcode: c.barcode.clone(),
            write_protected: c.write_protected,
        };
        self.load_medium(m, label)
    }

    /// Unload the cartridge and say which one it was.
    pub fn unload_cartridge(&mut self) -> Result<Cartridge, DriveError> {
        let (m, label) = self.unload_medium()?;
        Ok(Cartridge {
            path: m.path().to_path_buf(),
            barcode: label.barcode,
            write_protected: label.write_protected,
        })
    }

    /// The cartridge in the drive.
    pub fn cartridge(&self) -> Option<Cartridge> {
        self.slot.as_ref().map(|l| Cartridge {
            path: l.medium.path().to_path_buf(),
            barcode: l.label.barcode.clone(),
            write_protected: l.label.write_protected,
        })
    }

    /// Share the drive: the typed handle for a changer.
    pub fn shared(self) -> SharedDrive {
        Arc::new(Mutex::new(self))
    }

    /// The same drive as a frontend's logical unit.
    pub fn as_lu(d: &SharedDrive) -> Arc<Mutex<dyn LogicalUnit + Send>> {
        d.clone()
    }
}

impl<M: Medium> TapeDrive<M> {
    /// INQUIRY: the common answers, plus VPD B0h (SSC-4 8.4.2).
    fn inquiry(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        if let Ok(q) = Inquiry::parse(cdb) {
            if q.evpd && VpdPage(q.page_code) == VpdPage::SEQUENTIAL_ACCESS_CAPABILITIES {
                let page = SequentialAccessCapabilities {
                    device_type: DeviceType::TAPE,
                    worm: false,
                };
                return reply(data_in, &page.to_vec());
            }
        }
        self.id
            .common(cdb, data_in)
            .unwrap_or_else(|| Completion::illegal(Asc::INVALID_OPCODE))
    }

    /// REQUEST SENSE (SPC-4 6.39): a pending Unit Attention (cleared), else
    /// the reason the drive is not ready, else NO SENSE. Fixed format only.
    fn request_sense(&mut self, nexus: &Nexus, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let r = match RequestSense::parse(cdb) {
            Ok(r) if !r.desc => r,
            _ => return Completion::bad_field(1),
        };
        let sense = match (self.attention.take(nexus), self.not_ready_reason()) {
            (Some(asc), _) => Sense::new(SenseKey::UNIT_ATTENTION, asc),
            (None, Some(asc)) => Sense::new(SenseKey::NOT_READY, asc),
            (None, None) => Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL),
        };
        let n = (r.alloc_len as usize).min(data_in.len());
        reply(&mut data_in[..n], &sense.to_fixed())
    }
}

impl<M: Medium + Send> LogicalUnit for TapeDrive<M> {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        self.execute_for(&Nexus::default(), cdb, data_out, data_in)
    }

    fn execute_for(
        &mut self,
        nexus: &Nexus,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> Completion {
        let Some(&op) = cdb.first() else {
            return Completion::illegal(Asc::INVALID_OPCODE);
        };
        // SPC-4 5.14 (table "commands and Unit Attention"): these three
        // neither report nor clear one.
        match Opcode(op) {
            Opcode::INQUIRY | Opcode::REPORT_LUNS => return self.inquiry(cdb, data_in),
            Opcode::REQUEST_SENSE => return self.request_sense(nexus, cdb, data_in),
            _ => {}
        }
        if let Some(s) = self.attention.take_before(nexus, cdb) {
            return Completion::check(s);
        }
        if let Some(c) = self.control(nexus, Opcode(op), cdb, data_out, data_in) {
            return c;
        }
        self.motion(Opcode(op), cdb, data_out, data_in)
    }

    fn nexus_lost(&mut self, nexus: &Nexus) {
        self.attention.forget(nexus);
    }

    fn reset(&mut self) {
        TapeDrive::reset(self);
    }

    fn take_attention(&mut self, nexus: &Nexus, cdb: &[u8]) -> Option<Sense> {
        self.attention.take_before(nexus, cdb)
    }
}
