//! What the server needs of a tape library: its inventory (READ ELEMENT
//! STATUS) and MOVE MEDIUM, plus reading and writing a label in a drive.
//! The SCSI side is the changer's device API; [`MemLibrary`] is an
//! in-memory library for the server's unit tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::engine::volume::LabelState;
use crate::format::VolumeLabel;

/// A storage element and the barcode of the cartridge in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotStatus {
    pub address: u16,
    pub barcode: Option<String>,
}

/// A data-transfer element: its drive's serial (DVCID) and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveStatus {
    pub address: u16,
    pub serial: String,
    pub barcode: Option<String>,
    /// The slot the cartridge came from (SVALID), if the library knows.
    pub source: Option<u16>,
}

/// READ ELEMENT STATUS, reduced to what the server uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    pub slots: Vec<SlotStatus>,
    pub drives: Vec<DriveStatus>,
}

/// Why the library did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The changer answered with an error (sense decoded in the text).
    #[error("changer: {0}")]
    Device(String),
    /// The move makes no sense in the library's current state.
    #[error("move from element {from} to {to} refused: {why}")]
    Refused { from: u16, to: u16, why: String },
    /// The drive could not be read or written.
    #[error("drive {drive}: {error}")]
    Drive { drive: String, error: String },
}

/// A media changer with its drives.
pub trait Library: Send {
    fn inventory(&mut self) -> Result<Inventory, LibraryError>;
    /// MOVE MEDIUM from element `from` to element `to` (SMC-3 6.6).
    fn move_medium(&mut self, from: u16, to: u16) -> Result<(), LibraryError>;
    /// What file 0 of the cartridge in the drive with `serial` holds.
    fn read_label(&mut self, serial: &str) -> Result<LabelState, LibraryError>;
    /// Label the (blank) cartridge in the drive with `serial`.
    fn write_label(&mut self, serial: &str, name: &str) -> Result<VolumeLabel, LibraryError>;
    /// Whether the drive with `serial` has PERSISTENT RESERVE.
    fn has_reservations(&mut self, serial: &str) -> bool;
    /// Fence the host registered under `victim` on the drive with
    /// `serial` (PREEMPT AND ABORT); the server then holds the
    /// reservation under [`SERVER_KEY`] until the next host takes it.
    fn fence(&mut self, serial: &str, victim: u64) -> Result<(), LibraryError>;
}

/// The server's own PERSISTENT RESERVE key ("SMSERVER").
pub const SERVER_KEY: u64 = u64::from_be_bytes(*b"SMSERVER");

/// The key a host registers for lease `lease`: "SL" and the lease number,
/// never 0 and never the server's.
pub fn lease_key(lease: u64) -> u64 {
    (u64::from(u16::from_be_bytes(*b"SL")) << 48) | (lease & 0xffff_ffff_ffff)
}

/// The state of an in-memory library, shared so a test can look inside.
#[derive(Debug, Default)]
pub struct MemState {
    /// Element address → barcode, for slots and drives alike.
    pub elements: BTreeMap<u16, Option<String>>,
    /// Drive element address → serial.
    pub drives: BTreeMap<u16, String>,
    /// Barcode → what its file 0 holds.
    pub labels: BTreeMap<String, LabelState>,
    /// Moves to refuse (a changer that refuses a move).
    pub refuse_moves_to: Vec<u16>,
    pub moves: u64,
    /// Serials of the drives with PERSISTENT RESERVE.
    pub reservations: Vec<String>,
    /// The fences done: (serial, victim key).
    pub fenced: Vec<(String, u64)>,
    /// Fences to refuse (a drive whose PREEMPT fails).
    pub refuse_fence: bool,
}

/// An in-memory library for unit tests: slots from address 1000, drives
/// from 1.
#[derive(Debug, Clone, Default)]
pub struct MemLibrary {
    pub state: Arc<Mutex<MemState>>,
}

impl MemLibrary {
    /// `drives` drives (serials `SN0`…), and one slot per barcode, blank.
    pub fn new(drives: usize, barcodes: &[&str]) -> MemLibrary {
        let mut s = MemState::default();
        for d in 0..drives {
            s.elements.insert(1 + d as u16, None);
            s.drives.insert(1 + d as u16, format!("SN{d}"));
        }
        for (i, b) in barcodes.iter().enumerate() {
            s.elements.insert(1000 + i as u16, Some(b.to_string()));
            s.labels.insert(b.to_string(), LabelState::Blank);
        }
        MemLibrary {
            state: Arc::new(Mutex::new(s)),
        }
    }

    fn drive_barcode(s: &MemState, serial: &str) -> Result<String, LibraryError> {
        let addr = s
            .drives
            .iter()
            .find(|(_, sn)| *sn == serial)
            .map(|(a, _)| *a);
        addr.and_then(|a| s.elements.get(&a).cloned().flatten())
            .ok_or_else(|| LibraryError::Drive {
                drive: serial.into(),
                error: "no cartridge".into(),
            })
    }
}

impl Library for MemLibrary {
    fn inventory(&mut self) -> Result<Inventory, LibraryError> {
        let s = self.state.lock().expect("not poisoned");
        let mut inv = Inventory::default();
        for (&address, b) in &s.elements {
            match s.drives.get(&address) {
                Some(sn) => inv.drives.push(DriveStatus {
                    address,
                    serial: sn.clone(),
                    barcode: b.clone(),
                    source: None,
                }),
                None => inv.slots.push(SlotStatus {
                    address,
                    barcode: b.clone(),
                }),
            }
        }
        Ok(inv)
    }

    fn move_medium(&mut self, from: u16, to: u16) -> Result<(), LibraryError> {
        let mut s = self.state.lock().expect("not poisoned");
        let refuse = |why: &str| LibraryError::Refused {
            from,
            to,
            why: why.into(),
        };
        if s.refuse_moves_to.contains(&to) {
            return Err(refuse(
                "ILLEGAL REQUEST, MEDIUM TRANSPORT ELEMENT FULL (3Bh/0Dh)",
            ));
        }
        let b = s
            .elements
            .get(&from)
            .cloned()
            .flatten()
            .ok_or_else(|| refuse("source empty"))?;
        match s.elements.get(&to) {
            Some(None) => {}
            Some(Some(_)) => return Err(refuse("destination full")),
            None => return Err(refuse("no such element")),
        }
        s.elements.insert(from, None);
        s.elements.insert(to, Some(b));
        s.moves += 1;
        Ok(())
    }

    fn read_label(&mut self, serial: &str) -> Result<LabelState, LibraryError> {
        let s = self.state.lock().expect("not poisoned");
        let b = Self::drive_barcode(&s, serial)?;
        Ok(s.labels.get(&b).cloned().unwrap_or(LabelState::Blank))
    }

    fn write_label(&mut self, serial: &str, name: &str) -> Result<VolumeLabel, LibraryError> {
        let mut s = self.state.lock().expect("not poisoned");
        let b = Self::drive_barcode(&s, serial)?;
        let label = VolumeLabel::new(name, Uuid::new_v4(), 0).map_err(|e| LibraryError::Drive {
            drive: serial.into(),
            error: e.to_string(),
        })?;
        s.labels.insert(b, LabelState::Ours(label.clone()));
        Ok(label)
    }

    fn has_reservations(&mut self, serial: &str) -> bool {
        let s = self.state.lock().expect("not poisoned");
        s.reservations.iter().any(|x| x == serial)
    }

    fn fence(&mut self, serial: &str, victim: u64) -> Result<(), LibraryError> {
        let mut s = self.state.lock().expect("not poisoned");
        if s.refuse_fence {
            return Err(LibraryError::Drive {
                drive: serial.into(),
                error: "PERSISTENT RESERVE OUT: ILLEGAL REQUEST".into(),
            });
        }
        s.fenced.push((serial.to_string(), victim));
        Ok(())
    }
}
