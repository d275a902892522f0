use super::*;
use crate::lu::{reply, Completion, Identity, LogicalUnit, MemTape};
use crate::scsi::sense::Sense;
use crate::scsi::smc::{ElementFlags, ElementRange, ElementStatusPage, VolumeTag};
use crate::scsi::spc::{Association, CodeSet};
use crate::scsi::Opcode;
use crate::transport::memory::MemoryTransport;

/// A small library served through the codec's target side: 1 picker,
/// 4 slots, 1 import/export slot, 2 drives whose identifiers carry the
/// serials "DRV-B" and "DRV-A" (so that the drive order and the serial
/// order differ).
struct FakeLibrary {
    id: Identity,
    layout: ElementAddressAssignment,
    elements: Vec<(ElementType, ElementDescriptor)>,
    /// Send 8 bytes less than the report, as tgt does.
    tgt_short: bool,
}

fn t10(serial: &str) -> Designator {
    Designator {
        protocol_id: 0,
        code_set: CodeSet::ASCII,
        piv: false,
        association: Association::LU,
        designator_type: DesignatorType::T10_VENDOR_ID,
        value: format!("{:<8}{:<16}{:<10}", "SANMOVER", "MEMTAPE", serial).into_bytes(),
    }
}

impl FakeLibrary {
    fn new() -> Self {
        let layout = ElementAddressAssignment {
            transport: ElementRange {
                first: ElementAddress(1),
                count: 1,
            },
            storage: ElementRange {
                first: ElementAddress(0x400),
                count: 4,
            },
            import_export: ElementRange {
                first: ElementAddress(0x20),
                count: 1,
            },
            data_transfer: ElementRange {
                first: ElementAddress(0x100),
                count: 2,
            },
        };
        let mut elements = Vec::new();
        for t in [
            ElementType::MEDIUM_TRANSPORT,
            ElementType::STORAGE,
            ElementType::IMPORT_EXPORT,
            ElementType::DATA_TRANSFER,
        ] {
            for a in layout.range(t).unwrap().iter() {
                let mut d = ElementDescriptor::empty(a);
                d.flags = ElementFlags::ACCESS;
                elements.push((t, d));
            }
        }
        let mut lib = FakeLibrary {
            id: Identity::new(DeviceType::MEDIUM_CHANGER, "MEMCHANGER", "LIB0"),
            layout,
            elements,
            tgt_short: false,
        };
        for (i, label) in ["TAPE01", "TAPE02", "TAPE03"].iter().enumerate() {
            let d = lib.at_mut(ElementAddress(0x400 + i as u16)).unwrap();
            d.flags |= ElementFlags::FULL;
            d.primary_tag = Some(VolumeTag::new(label, 0).unwrap());
        }
        lib.at_mut(ElementAddress(0x100)).unwrap().device_id = Some(t10("DRV-B"));
        lib.at_mut(ElementAddress(0x101)).unwrap().device_id = Some(t10("DRV-A"));
        lib
    }

    fn at_mut(&mut self, a: ElementAddress) -> Option<&mut ElementDescriptor> {
        self.elements
            .iter_mut()
            .map(|e| &mut e.1)
            .find(|d| d.address == a)
    }

    fn status(&self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let Ok(r) = ReadElementStatus::parse(cdb) else {
            return Completion::bad_field(0);
        };
        let descriptors = self
            .elements
            .iter()
            .filter(|(t, _)| *t == r.element_type)
            .map(|(_, d)| {
                let mut d = d.clone();
                if !r.voltag {
                    d.primary_tag = None;
                } else if d.primary_tag.is_none() {
                    d.primary_tag = Some(VolumeTag::blank());
                }
                if !r.dvcid {
                    d.device_id = None;
                }
                d
            })
            .collect();
        let data = ElementStatusData {
            first_address: r.start,
            available: 1,
            pages: vec![ElementStatusPage {
                element_type: r.element_type,
                pvoltag: r.voltag,
                avoltag: false,
                descriptors,
            }],
        };
        let mut bytes = data.to_vec();
        if self.tgt_short {
            bytes.truncate(bytes.len() - 8);
        }
        let n = (r.alloc_len as usize).min(data_in.len());
        reply(&mut data_in[..n], &bytes)
    }

    fn move_medium(&mut self, cdb: &[u8]) -> Completion {
        let Ok(m) = MoveMedium::parse(cdb) else {
            return Completion::bad_field(0);
        };
        let check = |asc| Completion::check(Sense::new(SenseKey::ILLEGAL_REQUEST, asc));
        let (Some(src), Some(dst)) = (
            self.elements.iter().position(|e| e.1.address == m.source),
            self.elements
                .iter()
                .position(|e| e.1.address == m.destination),
        ) else {
            return check(Asc::INVALID_ELEMENT_ADDRESS);
        };
        if !self.elements[src].1.is_full() {
            return check(Asc::MEDIUM_SOURCE_ELEMENT_EMPTY);
        }
        if self.elements[dst].1.is_full() {
            return check(Asc::MEDIUM_DESTINATION_ELEMENT_FULL);
        }
        let tag = self.elements[src].1.primary_tag.take();
        self.elements[src].1.flags.remove(ElementFlags::FULL);
        let d = &mut self.elements[dst].1;
        d.flags |= ElementFlags::FULL;
        d.primary_tag = tag;
        d.source = Some(m.source);
        Completion::good(0)
    }
}

impl FakeLibrary {
    /// SMC-3 6.2: source to first destination, first destination's medium
    /// to second destination (which may be the source).
    fn exchange_medium(&mut self, cdb: &[u8]) -> Completion {
        let Ok(x) = ExchangeMedium::parse(cdb) else {
            return Completion::bad_field(0);
        };
        let check = |asc| Completion::check(Sense::new(SenseKey::ILLEGAL_REQUEST, asc));
        let find = |a: ElementAddress| self.elements.iter().position(|e| e.1.address == a);
        let (Some(s), Some(d1), Some(d2)) = (
            find(x.source),
            find(x.first_destination),
            find(x.second_destination),
        ) else {
            return check(Asc::INVALID_ELEMENT_ADDRESS);
        };
        if !self.elements[s].1.is_full() || !self.elements[d1].1.is_full() {
            return check(Asc::MEDIUM_SOURCE_ELEMENT_EMPTY);
        }
        if d2 != s && self.elements[d2].1.is_full() {
            return check(Asc::MEDIUM_DESTINATION_ELEMENT_FULL);
        }
        let t1 = self.elements[s].1.primary_tag.take();
        let t2 = self.elements[d1].1.primary_tag.take();
        self.elements[s].1.flags.remove(ElementFlags::FULL);
        for (i, tag, from) in [(d2, t2, x.first_destination), (d1, t1, x.source)] {
            let d = &mut self.elements[i].1;
            d.flags |= ElementFlags::FULL;
            d.primary_tag = tag;
            d.source = Some(from);
        }
        Completion::good(0)
    }
}

impl LogicalUnit for FakeLibrary {
    fn execute(&mut self, cdb: &[u8], _data_out: &[u8], data_in: &mut [u8]) -> Completion {
        if let Some(c) = self.id.common(cdb, data_in) {
            return c;
        }
        match Opcode(cdb[0]) {
            Opcode::MODE_SENSE_6 => {
                let page = cdb[2] & 0x3f;
                let bytes = match page {
                    0x1d => self.layout.to_page(),
                    _ => return Completion::bad_field(2),
                };
                let params = ModeParameters {
                    medium_type: 0,
                    device_specific: 0,
                    block_descriptors: vec![],
                    pages: bytes,
                };
                reply(data_in, &params.emit6())
            }
            Opcode::READ_ELEMENT_STATUS => self.status(cdb, data_in),
            Opcode::MOVE_MEDIUM => self.move_medium(cdb),
            Opcode::EXCHANGE_MEDIUM => self.exchange_medium(cdb),
            _ => Completion::illegal(Asc::INVALID_OPCODE),
        }
    }
}

fn open() -> Changer<MemoryTransport<FakeLibrary>> {
    Changer::open(MemoryTransport::new("changer", FakeLibrary::new())).unwrap()
}

#[test]
fn inventory_numbers_slots_and_drives_as_mtx() {
    let mut c = open();
    assert_eq!(c.layout.storage.count, 4);
    let inv = c.inventory().unwrap();
    assert_eq!(inv.transports.len(), 1);
    assert_eq!(inv.drives.len(), 2);
    let slots: Vec<_> = inv.slots().map(|s| (s.0, s.1, s.2.address.0)).collect();
    assert_eq!(
        slots,
        [
            (1, ElementType::STORAGE, 0x400),
            (2, ElementType::STORAGE, 0x401),
            (3, ElementType::STORAGE, 0x402),
            (4, ElementType::STORAGE, 0x403),
            (5, ElementType::IMPORT_EXPORT, 0x20),
        ]
    );
    assert_eq!(inv.slot(2).unwrap().primary_tag.unwrap().label(), "TAPE02");
    assert!(!inv.slot(4).unwrap().is_full());
    assert_eq!(inv.slot_number(ElementAddress(0x20)), Some(5));
    assert_eq!(inv.drive_number(ElementAddress(0x101)), Some(1));
    assert_eq!(inv.find_tag("TAPE03").map(|s| s.0), Some(3));
    assert_eq!(
        inv.element(ElementAddress(0x100)).map(|e| e.0),
        Some(ElementType::DATA_TRANSFER)
    );
}

#[test]
fn a_small_allocation_is_asked_again_at_full_length() {
    let mut c = open();
    let r = ReadElementStatus::all_of(ElementType::STORAGE, 60);
    let data = c.read_element_status(r).unwrap();
    assert_eq!(data.pages[0].descriptors.len(), 4);
}

#[test]
fn moves_and_refusals_carry_the_decoded_sense() {
    let mut c = open();
    c.move_medium(ElementAddress(0x401), ElementAddress(0x100))
        .unwrap();
    let inv = c.inventory().unwrap();
    let d = inv.drive(0).unwrap();
    assert!(d.is_full());
    assert_eq!(d.source, Some(ElementAddress(0x401)));
    assert_eq!(d.primary_tag.unwrap().label(), "TAPE02");
    assert!(!inv.slot(2).unwrap().is_full());

    let e = c
        .move_medium(ElementAddress(0x400), ElementAddress(0x100))
        .unwrap_err();
    assert_eq!(e.sense().unwrap().asc, Asc::MEDIUM_DESTINATION_ELEMENT_FULL);
    assert!(
        e.to_string().contains("MEDIUM DESTINATION ELEMENT FULL"),
        "{e}"
    );
    let e = c
        .move_medium(ElementAddress(0x401), ElementAddress(0x403))
        .unwrap_err();
    assert_eq!(e.sense().unwrap().asc, Asc::MEDIUM_SOURCE_ELEMENT_EMPTY);
    // A changer without a command says so: INVALID COMMAND OPERATION CODE.
    let e = c.position_to(ElementAddress(0x400)).unwrap_err();
    assert!(e.is_unsupported_command(), "{e}");
}

#[test]
fn exchange_swaps_and_rotates() {
    let mut c = open();
    let tag = |c: &mut Changer<MemoryTransport<FakeLibrary>>, n| {
        let inv = c.inventory().unwrap();
        let t = inv.slot(n).and_then(|d| d.primary_tag);
        t.filter(|t| !t.is_blank()).map(|t| t.label())
    };
    let (s1, s2, s4) = (
        ElementAddress(0x400),
        ElementAddress(0x401),
        ElementAddress(0x403),
    );
    c.exchange_medium(s1, s2, s1).unwrap();
    assert_eq!(tag(&mut c, 1).as_deref(), Some("TAPE02"));
    assert_eq!(tag(&mut c, 2).as_deref(), Some("TAPE01"));
    // 1 -> 2, 2 -> the empty slot 4.
    c.exchange_medium(s1, s2, s4).unwrap();
    assert_eq!(tag(&mut c, 1), None);
    assert_eq!(tag(&mut c, 2).as_deref(), Some("TAPE02"));
    assert_eq!(tag(&mut c, 4).as_deref(), Some("TAPE01"));
    let e = c.exchange_medium(s1, s2, s4).unwrap_err();
    assert_eq!(e.sense().unwrap().asc, Asc::MEDIUM_SOURCE_ELEMENT_EMPTY);
}

fn drive_lu(serial: &str) -> DriveIdentity {
    let mut s = Scsi::new(MemoryTransport::new(serial, MemTape::new(serial, 1 << 20)));
    DriveIdentity::probe(&mut s, serial).unwrap()
}

#[test]
fn drives_map_by_serial_never_by_order() {
    let mut c = open();
    let inv = c.inventory().unwrap();
    let (a, b) = (drive_lu("DRV-A"), drive_lu("DRV-B"));
    assert_eq!(a.serial.as_deref(), Some("DRV-A"));
    // Given in the order A, B; the library has B first.
    let m = map_drives(&inv.drives, &[a.clone(), b.clone()]).unwrap();
    assert_eq!(m[0].lu, Some(1));
    assert_eq!(m[1].lu, Some(0));
    assert_eq!(m[0].matched_by, Some(MatchedBy::UnitSerial));
    // A drive LU the library does not hold maps to nothing.
    let m = map_drives(&inv.drives, &[drive_lu("OTHER"), a]).unwrap();
    assert_eq!((m[0].lu, m[1].lu), (None, Some(1)));
}

#[test]
fn identifiers_match_designators_or_serials() {
    let lu = drive_lu("DRV-A");
    // The LU's own VPD 83h T10 designator.
    let own = lu.designators[0].clone();
    assert_eq!(identifies(&own, &lu), Some(MatchedBy::DeviceIdentifier));
    // A serial alone, as some libraries send it.
    let mut bare = t10("x");
    bare.designator_type = DesignatorType::VENDOR_SPECIFIC;
    bare.value = b"DRV-A".to_vec();
    assert_eq!(identifies(&bare, &lu), Some(MatchedBy::UnitSerial));
    // Another vendor with the same serial is another drive.
    let mut other = t10("DRV-A");
    other.value[..8].copy_from_slice(b"OTHERVND");
    assert_eq!(identifies(&other, &lu), None);
    assert_eq!(identifies(&t10("DRV-AB"), &lu), None);
}

#[test]
fn ambiguous_matches_are_errors() {
    let mut c = open();
    let inv = c.inventory().unwrap();
    let twice = [drive_lu("DRV-A"), drive_lu("DRV-A")];
    assert!(matches!(
        map_drives(&inv.drives, &twice),
        Err(MappingError::ElementMatchesTwo { .. })
    ));
    let mut drives = inv.drives.clone();
    drives[0].device_id = drives[1].device_id.clone();
    assert!(matches!(
        map_drives(&drives, &[drive_lu("DRV-A")]),
        Err(MappingError::LuMatchesTwo { .. })
    ));
}

#[test]
fn tgts_short_report_loses_only_the_last_identifier() {
    let mut lib = FakeLibrary::new();
    lib.tgt_short = true;
    let mut c = Changer::open(MemoryTransport::new("changer", lib)).unwrap();
    let inv = c.inventory().unwrap();
    assert_eq!(inv.storage.len(), 4);
    assert_eq!(inv.slot(3).unwrap().primary_tag.unwrap().label(), "TAPE03");
    assert!(inv.drive(0).unwrap().device_id.is_some());
    assert!(inv.drive(1).unwrap().device_id.is_none());
    let m = map_drives(&inv.drives, &[drive_lu("DRV-A"), drive_lu("DRV-B")]).unwrap();
    assert_eq!((m[0].lu, m[1].lu), (Some(1), None));
}
