//! What the library holds where, without I/O: the element layout (which
//! addresses each element type has, SMC-3 4.3 and mode page 1Dh) and the
//! cartridge in each element. A move is planned here as a new inventory;
//! the changer applies it to the drives and the media directory.

use serde::{Deserialize, Serialize};

use crate::scsi::smc::{ElementAddress, ElementAddressAssignment, ElementRange, ElementType};

/// The medium transport (the picker).
pub const TRANSPORT: ElementAddress = ElementAddress(1);
/// The first import/export element.
pub const FIRST_IMPORT_EXPORT: u16 = 0x0010;
/// The first data transfer element (drive n is this + n, at LUN n + 1).
pub const FIRST_DRIVE: u16 = 0x0100;
/// The first storage element (slot).
pub const FIRST_SLOT: u16 = 0x0400;
/// At most this many drives: their addresses stay below the slots'.
pub const MAX_DRIVES: usize = 64;
/// At most this many slots (addresses stay within 16 bits).
pub const MAX_SLOTS: usize = 4096;

/// A cartridge in an element, and where it came from (SMC-3 6.11.5:
/// SOURCE STORAGE ELEMENT ADDRESS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub barcode: String,
    pub source: Option<u16>,
}

/// One element: where it is in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    pub kind: ElementType,
    pub index: usize,
}

/// Why a move cannot be planned (SMC-3 6.9 MOVE MEDIUM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoveRefusal {
    #[error("element {0} does not exist")]
    InvalidAddress(ElementAddress),
    #[error("source element {0} is empty")]
    SourceEmpty(ElementAddress),
    #[error("destination element {0} is full")]
    DestinationFull(ElementAddress),
}

/// The library's contents, as saved in the media directory. The picker
/// never holds a cartridge between commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub version: u32,
    pub slots: Vec<Option<Volume>>,
    pub import_export: Vec<Option<Volume>>,
    pub drives: Vec<Option<Volume>>,
}

impl Inventory {
    pub const VERSION: u32 = 1;

    /// `slots` slots holding `barcodes` in order, empty drives and one
    /// empty import/export element.
    pub fn new(drives: usize, slots: usize, barcodes: &[String]) -> Inventory {
        let mut s: Vec<Option<Volume>> = vec![None; slots];
        for (i, b) in barcodes.iter().enumerate().take(slots) {
            s[i] = Some(Volume {
                barcode: b.clone(),
                source: None,
            });
        }
        Inventory {
            version: Self::VERSION,
            slots: s,
            import_export: vec![None],
            drives: vec![None; drives],
        }
    }

    /// Mode page 1Dh: the address ranges.
    pub fn assignment(&self) -> ElementAddressAssignment {
        let r = |first: u16, n: usize| ElementRange {
            first: ElementAddress(first),
            count: n as u16,
        };
        ElementAddressAssignment {
            transport: r(TRANSPORT.0, 1),
            storage: r(FIRST_SLOT, self.slots.len()),
            import_export: r(FIRST_IMPORT_EXPORT, self.import_export.len()),
            data_transfer: r(FIRST_DRIVE, self.drives.len()),
        }
    }

    /// The element at an address.
    pub fn locate(&self, a: ElementAddress) -> Option<Element> {
        let m = self.assignment();
        [
            ElementType::MEDIUM_TRANSPORT,
            ElementType::IMPORT_EXPORT,
            ElementType::DATA_TRANSFER,
            ElementType::STORAGE,
        ]
        .into_iter()
        .find_map(|kind| {
            let range = m.range(kind)?;
            let index = range.index_of(a)? as usize;
            Some(Element { kind, index })
        })
    }

    pub fn address(&self, e: Element) -> ElementAddress {
        let first = match e.kind {
            ElementType::MEDIUM_TRANSPORT => TRANSPORT.0,
            ElementType::IMPORT_EXPORT => FIRST_IMPORT_EXPORT,
            ElementType::DATA_TRANSFER => FIRST_DRIVE,
            _ => FIRST_SLOT,
        };
        ElementAddress(first + e.index as u16)
    }

    /// What an element holds; the transport holds nothing.
    pub fn get(&self, e: Element) -> Option<&Volume> {
        self.list(e.kind)?.get(e.index)?.as_ref()
    }

    fn list(&self, kind: ElementType) -> Option<&Vec<Option<Volume>>> {
        match kind {
            ElementType::STORAGE => Some(&self.slots),
            ElementType::IMPORT_EXPORT => Some(&self.import_export),
            ElementType::DATA_TRANSFER => Some(&self.drives),
            _ => None,
        }
    }

    fn cell(&mut self, e: Element) -> Option<&mut Option<Volume>> {
        let list = match e.kind {
            ElementType::STORAGE => &mut self.slots,
            ElementType::IMPORT_EXPORT => &mut self.import_export,
            ElementType::DATA_TRANSFER => &mut self.drives,
            _ => return None,
        };
        list.get_mut(e.index)
    }

    /// A storage-capable element (not the transport) at `a`.
    fn holder(&self, a: ElementAddress) -> Result<Element, MoveRefusal> {
        match self.locate(a) {
            Some(e) if e.kind != ElementType::MEDIUM_TRANSPORT => Ok(e),
            _ => Err(MoveRefusal::InvalidAddress(a)),
        }
    }

    /// The inventory after MOVE MEDIUM from `src` to `dst` (SMC-3 6.9): a
    /// move onto itself changes nothing.
    pub fn after_move(
        &self,
        src: ElementAddress,
        dst: ElementAddress,
    ) -> Result<Inventory, MoveRefusal> {
        let (s, d) = (self.holder(src)?, self.holder(dst)?);
        let Some(v) = self.get(s).cloned() else {
            return Err(MoveRefusal::SourceEmpty(src));
        };
        if s == d {
            return Ok(self.clone());
        }
        if self.get(d).is_some() {
            return Err(MoveRefusal::DestinationFull(dst));
        }
        let mut next = self.clone();
        *next.cell(s).expect("located") = None;
        *next.cell(d).expect("located") = Some(Volume {
            source: Some(src.0),
            ..v
        });
        Ok(next)
    }

    /// The inventory after EXCHANGE MEDIUM (SMC-3 6.3): the source's
    /// cartridge goes to the first destination, whose cartridge goes to the
    /// second destination (often the source itself).
    pub fn after_exchange(
        &self,
        src: ElementAddress,
        first: ElementAddress,
        second: ElementAddress,
    ) -> Result<Inventory, MoveRefusal> {
        let (s, d1, d2) = (self.holder(src)?, self.holder(first)?, self.holder(second)?);
        // The first destination must differ from both other elements.
        if d1 == s || d1 == d2 {
            return Err(MoveRefusal::InvalidAddress(first));
        }
        let a = self.get(s).cloned().ok_or(MoveRefusal::SourceEmpty(src))?;
        let b = self
            .get(d1)
            .cloned()
            .ok_or(MoveRefusal::SourceEmpty(first))?;
        if d2 != s && self.get(d2).is_some() {
            return Err(MoveRefusal::DestinationFull(second));
        }
        let mut next = self.clone();
        *next.cell(s).expect("located") = None;
        *next.cell(d1).expect("located") = Some(Volume {
            source: Some(src.0),
            ..a
        });
        *next.cell(d2).expect("located") = Some(Volume {
            source: Some(first.0),
            ..b
        });
        Ok(next)
    }

    /// Every barcode, in element order.
    pub fn barcodes(&self) -> Vec<&str> {
        self.import_export
            .iter()
            .chain(&self.drives)
            .chain(&self.slots)
            .flatten()
            .map(|v| v.barcode.as_str())
            .collect()
    }

    /// Every barcode is in exactly one element.
    pub fn is_consistent(&self) -> bool {
        let mut b = self.barcodes();
        let n = b.len();
        b.sort_unstable();
        b.dedup();
        b.len() == n
    }
}
