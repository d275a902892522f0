//! A media changer logical unit (SMC-3) over a media directory: one
//! picker, one import/export element, N drives (the tape drive units of
//! `crate::lu::tape`, shared with the frontend) and M slots, with
//! barcodes. A move into a drive loads that cartridge's image into the
//! drive; a move out of it unloads it. The inventory is saved after every
//! move (see [`store`]), so the library survives restarts.
//!
//! Commands: READ ELEMENT STATUS (VolTag, DVCID), MOVE MEDIUM, EXCHANGE
//! MEDIUM, INITIALIZE ELEMENT STATUS (and WITH RANGE), POSITION TO
//! ELEMENT, PREVENT ALLOW MEDIUM REMOVAL, MODE SENSE(6/10) pages 1Dh, 1Eh,
//! 1Fh, and the common INQUIRY, TEST UNIT READY, REQUEST SENSE.

use crate::lu::tape::attention::Attentions;
use crate::lu::{reply, Completion, Identity, LogicalUnit, Nexus, SharedDrive};
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::smc::{
    DeviceCapabilities, ElementAddress, ElementDescriptor, ElementFlags, ElementStatusData,
    ElementStatusPage, ElementType, ElementTypes, ExchangeMedium, InitializeElementStatusWithRange,
    MoveMedium, PositionToElement, PreventAllowMediumRemoval, ReadElementStatus, TransportGeometry,
    TransportGeometryPage, VolumeTag,
};
use crate::scsi::spc::{
    page_control, DesignatorType, ModePageCodec, ModeParameters, ModeSense10, ModeSense6,
};
use crate::scsi::{CdbCodec, DeviceType, Opcode, Wire};

pub mod inventory;
pub mod store;
#[cfg(test)]
mod tests;

pub use inventory::{Inventory, MoveRefusal, Volume};
pub use store::{MediaDir, StoreError};

use inventory::Element;

/// The library's changer unit.
pub struct ChangerLu {
    id: Identity,
    inv: Inventory,
    store: MediaDir,
    drives: Vec<SharedDrive>,
    /// PREVENT ALLOW MEDIUM REMOVAL (SMC-3 6.10): the import/export
    /// element is locked for operators; moves by the picker still work.
    prevent: bool,
    attention: Attentions,
}

fn sense(key: SenseKey, asc: Asc) -> Completion {
    Completion::check(Sense::new(key, asc))
}

fn refused(r: MoveRefusal) -> Completion {
    let asc = match r {
        MoveRefusal::InvalidAddress(_) => Asc::INVALID_ELEMENT_ADDRESS,
        MoveRefusal::SourceEmpty(_) => Asc::MEDIUM_SOURCE_ELEMENT_EMPTY,
        MoveRefusal::DestinationFull(_) => Asc::MEDIUM_DESTINATION_ELEMENT_FULL,
    };
    sense(SenseKey::ILLEGAL_REQUEST, asc)
}

/// The inventory could not be saved or a drive not loaded: the move did
/// not happen (SPC-4 Annex D: INTERNAL TARGET FAILURE).
fn failed(what: impl std::fmt::Display) -> Completion {
    log::error!("changer: {what}");
    sense(SenseKey::HARDWARE_ERROR, Asc::INTERNAL_TARGET_FAILURE)
}

impl ChangerLu {
    /// A changer over `store` whose drive elements are `drives`, in order;
    /// the cartridges the inventory places in drives are loaded into them.
    pub fn new(
        serial: &str,
        store: MediaDir,
        inv: Inventory,
        drives: Vec<SharedDrive>,
    ) -> Result<Self, StoreError> {
        for (d, v) in drives.iter().zip(&inv.drives) {
            if let Some(v) = v {
                lock(d).load_cartridge(&store.cartridge(&v.barcode))?;
            }
        }
        Ok(ChangerLu {
            id: Identity::new(DeviceType::MEDIUM_CHANGER, "VIRTUAL LIBRARY", serial),
            inv,
            store,
            drives,
            prevent: false,
            attention: Attentions::default(),
        })
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inv
    }

    /// Make `next` the inventory: unload the drives whose cartridge goes,
    /// load those that get one, then save. A drive whose removal is
    /// prevented refuses the whole move before anything changes.
    fn apply(&mut self, next: Inventory) -> Completion {
        let changed: Vec<usize> = (0..self.drives.len())
            .filter(|&i| self.inv.drives[i] != next.drives[i])
            .collect();
        let leaving = changed.iter().filter(|&&i| self.inv.drives[i].is_some());
        if leaving
            .clone()
            .any(|&i| lock(&self.drives[i]).removal_prevented())
        {
            return sense(SenseKey::ILLEGAL_REQUEST, Asc::MEDIUM_REMOVAL_PREVENTED);
        }
        for &i in leaving {
            if let Err(e) = lock(&self.drives[i]).unload_cartridge() {
                return failed(format!("unloading drive {i}: {e}"));
            }
        }
        for &i in &changed {
            if let Some(v) = &next.drives[i] {
                let c = self.store.cartridge(&v.barcode);
                if let Err(e) = lock(&self.drives[i]).load_cartridge(&c) {
                    return failed(format!("loading {} into drive {i}: {e}", v.barcode));
                }
            }
        }
        if let Err(e) = self.store.save(&next) {
            return failed(e);
        }
        self.inv = next;
        Completion::good(0)
    }

    fn move_medium(&mut self, cdb: &[u8]) -> Completion {
        let Ok(m) = MoveMedium::parse(cdb) else {
            return Completion::bad_field(0);
        };
        if let Some(c) = self.check_transport(m.transport) {
            return c;
        }
        match self.inv.after_move(m.source, m.destination) {
            Ok(next) => self.apply(next),
            Err(r) => refused(r),
        }
    }

    fn exchange_medium(&mut self, cdb: &[u8]) -> Completion {
        let Ok(x) = ExchangeMedium::parse(cdb) else {
            return Completion::bad_field(0);
        };
        if let Some(c) = self.check_transport(x.transport) {
            return c;
        }
        match self
            .inv
            .after_exchange(x.source, x.first_destination, x.second_destination)
        {
            Ok(next) => self.apply(next),
            Err(r) => refused(r),
        }
    }

    /// TRANSPORT ELEMENT ADDRESS: 0 (the default transport) or ours.
    fn check_transport(&self, a: ElementAddress) -> Option<Completion> {
        (a.0 != 0 && a != inventory::TRANSPORT).then(|| refused(MoveRefusal::InvalidAddress(a)))
    }

    /// POSITION TO ELEMENT (SMC-3 6.8): nothing moves in a virtual
    /// library; the addresses are checked.
    fn position(&mut self, cdb: &[u8]) -> Completion {
        let Ok(p) = PositionToElement::parse(cdb) else {
            return Completion::bad_field(0);
        };
        if let Some(c) = self.check_transport(p.transport) {
            return c;
        }
        match self.inv.locate(p.destination) {
            Some(_) => Completion::good(0),
            None => refused(MoveRefusal::InvalidAddress(p.destination)),
        }
    }

    /// INITIALIZE ELEMENT STATUS (SMC-3 6.5) and WITH RANGE (6.6): the
    /// inventory is what the media directory says; the range is checked.
    fn initialize(&mut self, cdb: &[u8]) -> Completion {
        if Opcode(cdb[0]) == Opcode::INITIALIZE_ELEMENT_STATUS_WITH_RANGE {
            let Ok(r) = InitializeElementStatusWithRange::parse(cdb) else {
                return Completion::bad_field(0);
            };
            if r.range && self.inv.locate(r.start).is_none() {
                return refused(MoveRefusal::InvalidAddress(r.start));
            }
        }
        Completion::good(0)
    }

    fn prevent_allow(&mut self, cdb: &[u8]) -> Completion {
        match PreventAllowMediumRemoval::parse(cdb) {
            Ok(p) => {
                self.prevent = p.prevent;
                Completion::good(0)
            }
            Err(_) => Completion::bad_field(4),
        }
    }

    /// The drive designator a DVCID report carries: its NAA (VPD 83h).
    fn drive_id(&self, i: usize) -> Option<crate::scsi::spc::Designator> {
        let ds = lock(self.drives.get(i)?).designators();
        ds.iter()
            .find(|d| d.designator_type == DesignatorType::NAA)
            .or(ds.first())
            .cloned()
    }

    fn descriptor(&self, e: Element, voltag: bool, dvcid: bool) -> ElementDescriptor {
        let mut d = ElementDescriptor::empty(self.inv.address(e));
        let v = self.inv.get(e);
        if v.is_some() {
            d.flags |= ElementFlags::FULL;
            d.medium_type = 1;
        }
        if e.kind != ElementType::MEDIUM_TRANSPORT {
            d.flags |= ElementFlags::ACCESS;
        }
        if e.kind == ElementType::IMPORT_EXPORT {
            d.flags |= ElementFlags::INENAB | ElementFlags::EXENAB;
        }
        d.source = v.and_then(|v| v.source).map(ElementAddress);
        if voltag {
            let tag = v.and_then(|v| VolumeTag::new(&v.barcode, 0).ok());
            d.primary_tag = Some(tag.unwrap_or_else(VolumeTag::blank));
        }
        if dvcid && e.kind == ElementType::DATA_TRANSFER {
            d.device_id = self.drive_id(e.index);
        }
        d
    }

    /// READ ELEMENT STATUS (SMC-3 6.11): the elements of the asked type
    /// from the starting address on, one page per type, address order.
    fn read_element_status(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let Ok(r) = ReadElementStatus::parse(cdb) else {
            return Completion::bad_field(0);
        };
        if r.element_type.0 > 4 {
            return Completion::bad_field(1);
        }
        let types = [
            ElementType::MEDIUM_TRANSPORT,
            ElementType::IMPORT_EXPORT,
            ElementType::DATA_TRANSFER,
            ElementType::STORAGE,
        ];
        let m = self.inv.assignment();
        let mut left = r.count as usize;
        let mut pages = Vec::new();
        for t in types {
            if r.element_type != ElementType::ALL && r.element_type != t {
                continue;
            }
            let range = m.range(t).expect("assigned");
            let descriptors: Vec<ElementDescriptor> = (0..range.count as usize)
                .map(|index| Element { kind: t, index })
                .filter(|&e| self.inv.address(e) >= r.start)
                .take(left)
                .map(|e| self.descriptor(e, r.voltag, r.dvcid))
                .collect();
            left -= descriptors.len();
            if !descriptors.is_empty() {
                pages.push(ElementStatusPage {
                    element_type: t,
                    pvoltag: r.voltag,
                    avoltag: false,
                    descriptors,
                });
            }
        }
        let Some(first) = pages.first().map(|p| p.descriptors[0].address) else {
            return refused(MoveRefusal::InvalidAddress(r.start));
        };
        let data = ElementStatusData {
            first_address: first,
            available: (r.count as usize - left) as u16,
            pages,
        };
        let n = (r.alloc_len as usize).min(data_in.len());
        reply(&mut data_in[..n], &data.to_vec())
    }

    /// Mode pages 1Dh (addresses), 1Eh (one picker, no rotation) and 1Fh
    /// (which element types can be moved and exchanged to which).
    fn pages(&self, code: u8) -> Option<Vec<Vec<u8>>> {
        let all = ElementTypes::ST | ElementTypes::IE | ElementTypes::DT;
        let caps = DeviceCapabilities {
            storage: all,
            move_from: [ElementTypes::empty(), all, all, all],
            exchange_from: [ElementTypes::empty(), all, all, all],
        };
        let geometry = TransportGeometryPage {
            transports: vec![TransportGeometry::default()],
        };
        let a = self.inv.assignment().to_page();
        let (g, c) = (geometry.to_page(), caps.to_page());
        Some(match code {
            0x1d => vec![a],
            0x1e => vec![g],
            0x1f => vec![c],
            0x3f => vec![a, g, c],
            _ => return None,
        })
    }

    /// MODE SENSE(6/10): no block descriptors (a changer has none);
    /// nothing is changeable and nothing saved.
    fn mode_sense(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let parsed = match Opcode(cdb[0]) {
            Opcode::MODE_SENSE_6 => ModeSense6::parse(cdb).map(|m| {
                (
                    m.pc,
                    m.page_code,
                    m.subpage_code,
                    m.alloc_len as usize,
                    false,
                )
            }),
            _ => ModeSense10::parse(cdb).map(|m| {
                (
                    m.pc,
                    m.page_code,
                    m.subpage_code,
                    m.alloc_len as usize,
                    true,
                )
            }),
        };
        let Ok((pc, page, subpage, alloc, ten)) = parsed else {
            return Completion::bad_field(0);
        };
        if pc == page_control::SAVED {
            return Completion::illegal(Asc::SAVING_PARAMETERS_NOT_SUPPORTED);
        }
        let Some(mut pages) = self.pages(page).filter(|_| subpage == 0) else {
            return Completion::bad_field(2);
        };
        if pc == page_control::CHANGEABLE {
            // Every field reads back as zero: nothing can be changed.
            for p in &mut pages {
                p[2..].fill(0);
            }
        }
        let mp = ModeParameters {
            medium_type: 0,
            device_specific: 0,
            block_descriptors: vec![],
            pages: pages.concat(),
        };
        let bytes = if ten { mp.emit10() } else { mp.emit6() };
        let n = alloc.min(data_in.len());
        reply(&mut data_in[..n], &bytes)
    }
}

fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LogicalUnit for ChangerLu {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        self.execute_for(&Nexus::default(), cdb, data_out, data_in)
    }

    fn execute_for(
        &mut self,
        nexus: &Nexus,
        cdb: &[u8],
        _: &[u8],
        data_in: &mut [u8],
    ) -> Completion {
        let Some(&op) = cdb.first() else {
            return Completion::illegal(Asc::INVALID_OPCODE);
        };
        let op = Opcode(op);
        // SPC-4 5.14: INQUIRY and REPORT LUNS neither report nor clear a
        // Unit Attention; REQUEST SENSE returns it as its data (6.29).
        if let Some(s) = self.attention.take_before(nexus, cdb) {
            return Completion::check(s);
        }
        if op == Opcode::REQUEST_SENSE {
            if let Some(asc) = self.attention.take(nexus) {
                let s = Sense::new(SenseKey::UNIT_ATTENTION, asc);
                let n = cdb.get(4).map_or(0, |&b| b as usize).min(data_in.len());
                return reply(&mut data_in[..n], &s.to_fixed());
            }
        }
        match op {
            Opcode::READ_ELEMENT_STATUS => self.read_element_status(cdb, data_in),
            Opcode::MOVE_MEDIUM => self.move_medium(cdb),
            Opcode::EXCHANGE_MEDIUM => self.exchange_medium(cdb),
            Opcode::POSITION_TO_ELEMENT => self.position(cdb),
            Opcode::INITIALIZE_ELEMENT_STATUS | Opcode::INITIALIZE_ELEMENT_STATUS_WITH_RANGE => {
                self.initialize(cdb)
            }
            Opcode::PREVENT_ALLOW_MEDIUM_REMOVAL => self.prevent_allow(cdb),
            Opcode::MODE_SENSE_6 | Opcode::MODE_SENSE_10 => self.mode_sense(cdb, data_in),
            _ => self
                .id
                .common(cdb, data_in)
                .unwrap_or_else(|| Completion::illegal(Asc::INVALID_OPCODE)),
        }
    }

    fn nexus_lost(&mut self, nexus: &Nexus) {
        self.attention.forget(nexus);
    }

    fn reset(&mut self) {
        self.attention.reset();
        self.prevent = false;
    }

    fn take_attention(&mut self, nexus: &Nexus, cdb: &[u8]) -> Option<Sense> {
        self.attention.take_before(nexus, cdb)
    }
}
