//! The changer over a media directory in a temporary folder: every
//! command, every refusal SMC-3 names, drive loads and unloads, restarts,
//! and random command sequences that must keep every barcode in exactly
//! one element.

use proptest::prelude::*;

use super::inventory::{FIRST_DRIVE, FIRST_IMPORT_EXPORT, FIRST_SLOT, TRANSPORT};
use super::*;
use crate::lu::ImageDrive;
use crate::scsi::smc::ElementAddressAssignment;
use crate::scsi::Status;

struct Lib {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    lu: ChangerLu,
    drives: Vec<SharedDrive>,
}

const CAPACITY: u64 = 1 << 20;

fn open(path: &std::path::Path, drives: usize, slots: usize) -> (ChangerLu, Vec<SharedDrive>) {
    let (store, inv) = MediaDir::open_or_create(path, drives, slots, CAPACITY).unwrap();
    let ds: Vec<SharedDrive> = (0..drives)
        .map(|i| ImageDrive::new(&format!("VTLDRV{i}")).shared())
        .collect();
    (
        ChangerLu::new("VTLCHG", store, inv, ds.clone()).unwrap(),
        ds,
    )
}

fn lib(drives: usize, slots: usize) -> Lib {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("media");
    let (mut lu, drives) = open(&path, drives, slots);
    // The power-on attention of the default nexus.
    let c = run(&mut lu, &[0, 0, 0, 0, 0, 0], 0).0;
    assert_eq!(
        sense_of(&c),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    Lib {
        _dir: dir,
        path,
        lu,
        drives,
    }
}

fn run(lu: &mut ChangerLu, cdb: &[u8], alloc: usize) -> (Completion, Vec<u8>) {
    let mut buf = vec![0u8; alloc];
    let c = lu.execute(cdb, &[], &mut buf);
    buf.truncate(c.data_in_len);
    (c, buf)
}

fn sense_of(c: &Completion) -> (SenseKey, Asc) {
    let s = Sense::parse(&c.sense).expect("sense");
    (s.key, s.asc)
}

fn mv(lu: &mut ChangerLu, from: u16, to: u16) -> Completion {
    let m = MoveMedium::new(ElementAddress(from), ElementAddress(to));
    run(lu, m.to_cdb().as_bytes(), 0).0
}

fn status(lu: &mut ChangerLu) -> ElementStatusData {
    let r = ReadElementStatus::all_of(ElementType::ALL, 65536);
    let (c, data) = run(lu, r.to_cdb().as_bytes(), 65536);
    assert_eq!(c.status, Status::GOOD);
    ElementStatusData::parse(&data).unwrap()
}

fn tag(d: &ElementDescriptor) -> String {
    d.primary_tag.map(|t| t.label()).unwrap_or_default()
}

#[test]
fn first_start_creates_barcoded_cartridges() {
    let l = lib(2, 4);
    for n in 1..=4 {
        assert!(l.path.join(format!("VTL00{n}L8.img")).exists());
    }
    assert!(l.path.join("inventory.json").exists());
    assert_eq!(
        l.lu.inventory().barcodes(),
        ["VTL001L8", "VTL002L8", "VTL003L8", "VTL004L8"]
    );
    // Another layout in the same directory is refused, not rewritten.
    let e = MediaDir::open_or_create(&l.path, 3, 4, CAPACITY).unwrap_err();
    assert!(matches!(e, StoreError::Layout { drives: 2, .. }), "{e}");
    // A barcode in two elements, or without its image, is refused.
    let mut inv = l.lu.inventory().clone();
    inv.drives[0] = inv.slots[0].clone();
    std::fs::write(
        l.path.join("inventory.json"),
        serde_json::to_vec(&inv).unwrap(),
    )
    .unwrap();
    let e = MediaDir::open_or_create(&l.path, 2, 4, CAPACITY).unwrap_err();
    assert!(
        e.to_string().contains("VTL001L8 is in more than one"),
        "{e}"
    );
    std::fs::remove_file(l.path.join("VTL004L8.img")).unwrap();
    inv.drives[0] = None;
    std::fs::write(
        l.path.join("inventory.json"),
        serde_json::to_vec(&inv).unwrap(),
    )
    .unwrap();
    let e = MediaDir::open_or_create(&l.path, 2, 4, CAPACITY).unwrap_err();
    assert!(e.to_string().contains("VTL004L8"), "{e}");
    std::fs::write(l.path.join("inventory.json"), b"{").unwrap();
    let e = MediaDir::open_or_create(&l.path, 2, 4, CAPACITY).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
}

#[test]
fn read_element_status_reports_every_element() {
    let mut l = lib(2, 4);
    let s = status(&mut l.lu);
    let types: Vec<ElementType> = s.pages.iter().map(|p| p.element_type).collect();
    let want = [
        ElementType::MEDIUM_TRANSPORT,
        ElementType::IMPORT_EXPORT,
        ElementType::DATA_TRANSFER,
        ElementType::STORAGE,
    ];
    assert_eq!(types, want);
    assert_eq!((s.first_address, s.available), (TRANSPORT, 1 + 1 + 2 + 4));
    let slots = &s.pages[3].descriptors;
    assert_eq!(slots[0].address, ElementAddress(FIRST_SLOT));
    assert!(slots.iter().all(|d| d.is_full()));
    assert_eq!(tag(&slots[2]), "VTL003L8");
    // DVCID: each drive element names its drive by its NAA designator.
    let drives = &s.pages[2].descriptors;
    for (i, d) in drives.iter().enumerate() {
        assert!(!d.is_full());
        let id = d.device_id.clone().expect("device identifier");
        assert!(lock(&l.drives[i]).designators().contains(&id));
    }
    // One type from a starting address, a count, a cut allocation.
    let r = ReadElementStatus {
        element_type: ElementType::STORAGE,
        start: ElementAddress(FIRST_SLOT + 1),
        count: 2,
        ..ReadElementStatus::all_of(ElementType::STORAGE, 4096)
    };
    let (_, data) = run(&mut l.lu, r.to_cdb().as_bytes(), 4096);
    let s = ElementStatusData::parse(&data).unwrap();
    let got: Vec<String> = s.descriptors().map(|(_, d)| tag(d)).collect();
    assert_eq!(got, ["VTL002L8", "VTL003L8"]);
    let (c, data) = run(&mut l.lu, r.to_cdb().as_bytes(), 8);
    assert_eq!((c.status, data.len()), (Status::GOOD, 8));
    let past = ReadElementStatus {
        start: ElementAddress(0xfff0),
        ..r
    };
    let c = run(&mut l.lu, past.to_cdb().as_bytes(), 4096).0;
    assert_eq!(
        sense_of(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_ELEMENT_ADDRESS)
    );
}

#[test]
fn a_move_into_a_drive_loads_it_and_out_unloads_it() {
    let mut l = lib(2, 4);
    let drive1 = FIRST_DRIVE + 1;
    assert_eq!(mv(&mut l.lu, FIRST_SLOT + 2, drive1).status, Status::GOOD);
    let c = lock(&l.drives[1]).cartridge().expect("loaded");
    assert_eq!(c.barcode, "VTL003L8");
    assert_eq!(c.path, l.path.join("VTL003L8.img"));
    assert!(!lock(&l.drives[0]).is_loaded());
    let s = status(&mut l.lu);
    let d = &s.pages[2].descriptors[1];
    assert_eq!(
        (tag(d), d.source),
        ("VTL003L8".into(), Some(ElementAddress(FIRST_SLOT + 2)))
    );
    assert!(!s.pages[3].descriptors[2].is_full());
    // The inventory on disk says so: a restart loads the drive again.
    let saved = l.lu_inventory_after_restart();
    assert_eq!(&saved, l.lu.inventory());
    let Lib { _dir, path, lu, .. } = l;
    drop(lu);
    let (mut lu2, drives2) = open(&path, 2, 4);
    assert_eq!(lock(&drives2[1]).cartridge().unwrap().barcode, "VTL003L8");
    assert_eq!(lu2.inventory(), &saved);
    run(&mut lu2, &[0, 0, 0, 0, 0, 0], 0);
    assert_eq!(mv(&mut lu2, drive1, FIRST_SLOT + 2).status, Status::GOOD);
    assert!(!lock(&drives2[1]).is_loaded());
}

impl Lib {
    /// The inventory as read back from disk.
    fn lu_inventory_after_restart(&self) -> Inventory {
        serde_json::from_slice(&std::fs::read(self.path.join("inventory.json")).unwrap()).unwrap()
    }
}

#[test]
fn move_refusals() {
    let mut l = lib(1, 3);
    let full = mv(&mut l.lu, FIRST_SLOT, FIRST_SLOT + 1);
    assert_eq!(
        sense_of(&full),
        (
            SenseKey::ILLEGAL_REQUEST,
            Asc::MEDIUM_DESTINATION_ELEMENT_FULL
        )
    );
    mv(&mut l.lu, FIRST_SLOT, FIRST_IMPORT_EXPORT);
    let empty = mv(&mut l.lu, FIRST_SLOT, FIRST_SLOT + 1);
    assert_eq!(
        sense_of(&empty),
        (SenseKey::ILLEGAL_REQUEST, Asc::MEDIUM_SOURCE_ELEMENT_EMPTY)
    );
    for (from, to) in [
        (0x7777, FIRST_SLOT),
        (FIRST_SLOT + 1, 0x7777),
        (FIRST_SLOT + 1, TRANSPORT.0),
    ] {
        let c = mv(&mut l.lu, from, to);
        assert_eq!(
            sense_of(&c),
            (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_ELEMENT_ADDRESS)
        );
    }
    let wrong_picker = MoveMedium {
        transport: ElementAddress(5),
        ..MoveMedium::new(ElementAddress(FIRST_SLOT + 1), ElementAddress(FIRST_SLOT))
    };
    let c = run(&mut l.lu, wrong_picker.to_cdb().as_bytes(), 0).0;
    assert_eq!(
        sense_of(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_ELEMENT_ADDRESS)
    );
    // A drive whose medium removal is prevented keeps its cartridge.
    assert_eq!(
        mv(&mut l.lu, FIRST_SLOT + 1, FIRST_DRIVE).status,
        Status::GOOD
    );
    let mut drive = lock(&l.drives[0]);
    drive.execute(&[0, 0, 0, 0, 0, 0], &[], &mut []);
    let p = drive.execute(&[0x1e, 0, 0, 0, 1, 0], &[], &mut []);
    assert_eq!(p.status, Status::GOOD);
    drop(drive);
    let c = mv(&mut l.lu, FIRST_DRIVE, FIRST_SLOT + 1);
    assert_eq!(
        sense_of(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::MEDIUM_REMOVAL_PREVENTED)
    );
    assert!(lock(&l.drives[0]).is_loaded());
    assert!(l.lu.inventory().drives[0].is_some());
    lock(&l.drives[0]).execute(&[0x1e, 0, 0, 0, 0, 0], &[], &mut []);
    assert_eq!(
        mv(&mut l.lu, FIRST_DRIVE, FIRST_SLOT + 1).status,
        Status::GOOD
    );
    assert!(l.lu.inventory().is_consistent());
}

#[test]
fn exchange_medium() {
    let mut l = lib(1, 3);
    let (a, b) = (ElementAddress(FIRST_SLOT), ElementAddress(FIRST_DRIVE));
    mv(&mut l.lu, FIRST_SLOT + 1, FIRST_DRIVE);
    let x = ExchangeMedium {
        transport: ElementAddress(0),
        source: a,
        first_destination: b,
        second_destination: a,
        inv1: false,
        inv2: false,
    };
    assert_eq!(
        run(&mut l.lu, x.to_cdb().as_bytes(), 0).0.status,
        Status::GOOD
    );
    let inv = l.lu.inventory().clone();
    assert_eq!(inv.drives[0].as_ref().unwrap().barcode, "VTL001L8");
    assert_eq!(inv.slots[0].as_ref().unwrap().barcode, "VTL002L8");
    assert_eq!(lock(&l.drives[0]).cartridge().unwrap().barcode, "VTL001L8");
    // An empty source or first destination, a full second destination.
    let empty = ExchangeMedium {
        source: ElementAddress(FIRST_SLOT + 1),
        ..x
    };
    let c = run(&mut l.lu, empty.to_cdb().as_bytes(), 0).0;
    assert_eq!(
        sense_of(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::MEDIUM_SOURCE_ELEMENT_EMPTY)
    );
    let full = ExchangeMedium {
        second_destination: ElementAddress(FIRST_SLOT + 2),
        ..x
    };
    let c = run(&mut l.lu, full.to_cdb().as_bytes(), 0).0;
    assert_eq!(
        sense_of(&c),
        (
            SenseKey::ILLEGAL_REQUEST,
            Asc::MEDIUM_DESTINATION_ELEMENT_FULL
        )
    );
    assert_eq!(l.lu.inventory(), &inv);
}

#[test]
fn initialize_position_prevent() {
    let mut l = lib(1, 2);
    assert_eq!(
        run(&mut l.lu, &[0x07, 0, 0, 0, 0, 0], 0).0.status,
        Status::GOOD
    );
    let r = InitializeElementStatusWithRange {
        fast: false,
        range: true,
        start: ElementAddress(FIRST_SLOT),
        count: 2,
    };
    assert_eq!(
        run(&mut l.lu, r.to_cdb().as_bytes(), 0).0.status,
        Status::GOOD
    );
    let bad = InitializeElementStatusWithRange {
        start: ElementAddress(0x9999),
        ..r
    };
    let c = run(&mut l.lu, bad.to_cdb().as_bytes(), 0).0;
    assert_eq!(
        sense_of(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_ELEMENT_ADDRESS)
    );
    let p = PositionToElement {
        transport: TRANSPORT,
        destination: ElementAddress(FIRST_DRIVE),
        invert: false,
    };
    assert_eq!(
        run(&mut l.lu, p.to_cdb().as_bytes(), 0).0.status,
        Status::GOOD
    );
    let p = PositionToElement {
        destination: ElementAddress(3),
        ..p
    };
    let c = run(&mut l.lu, p.to_cdb().as_bytes(), 0).0;
    assert_eq!(
        sense_of(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_ELEMENT_ADDRESS)
    );
    let pa = PreventAllowMediumRemoval { prevent: true };
    assert_eq!(
        run(&mut l.lu, pa.to_cdb().as_bytes(), 0).0.status,
        Status::GOOD
    );
    assert!(l.lu.prevent);
    l.lu.reset();
    assert!(!l.lu.prevent, "a reset allows removal again");
}

#[test]
fn mode_pages() {
    let mut l = lib(2, 5);
    let (c, data) = run(&mut l.lu, &[0x1a, 0x08, 0x1d, 0, 255, 0], 255);
    assert_eq!(c.status, Status::GOOD);
    let mp = ModeParameters::parse6(&data).unwrap();
    let a = ElementAddressAssignment::from_params(&mp).unwrap();
    assert_eq!(a, l.lu.inventory().assignment());
    assert_eq!((a.storage.count, a.data_transfer.count), (5, 2));
    let (_, data) = run(&mut l.lu, &[0x5a, 0x08, 0x3f, 0, 0, 0, 0, 0x10, 0, 0], 4096);
    let mp = ModeParameters::parse10(&data).unwrap();
    let caps = DeviceCapabilities::from_params(&mp).unwrap();
    assert!(caps.can_move(ElementType::STORAGE, ElementType::DATA_TRANSFER));
    assert!(TransportGeometryPage::from_params(&mp).is_ok());
    let c = run(&mut l.lu, &[0x1a, 0x08, 0x1c, 0, 255, 0], 255).0;
    assert_eq!(
        sense_of(&c),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    );
    let c = run(&mut l.lu, &[0x1a, 0x08, 0xdd, 0, 255, 0], 255).0;
    assert_eq!(
        sense_of(&c),
        (
            SenseKey::ILLEGAL_REQUEST,
            Asc::SAVING_PARAMETERS_NOT_SUPPORTED
        )
    );
    let (c, data) = run(&mut l.lu, &[0x12, 0, 0, 0, 36, 0], 36);
    assert_eq!((c.status, data[0]), (Status::GOOD, 0x08));
}

#[test]
fn request_sense_reports_the_power_on_attention() {
    let mut l = lib(1, 1);
    let other = Nexus {
        initiator: "iqn.2026-12.test:other".into(),
        ..Default::default()
    };
    let mut buf = [0u8; 18];
    let c =
        l.lu.execute_for(&other, &[0x12, 0, 0, 0, 18, 0], &[], &mut buf);
    assert_eq!(c.status, Status::GOOD, "INQUIRY keeps the attention");
    let c =
        l.lu.execute_for(&other, &[0x03, 0, 0, 0, 18, 0], &[], &mut buf);
    assert_eq!(c.status, Status::GOOD);
    let s = Sense::parse(&buf[..c.data_in_len]).unwrap();
    assert_eq!(
        (s.key, s.asc),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    let c = l.lu.execute_for(&other, &[0, 0, 0, 0, 0, 0], &[], &mut []);
    assert_eq!(c.status, Status::GOOD, "taken by REQUEST SENSE");
}

/// One command of a random sequence: mostly moves and exchanges between
/// real elements, sometimes arbitrary bytes.
fn command() -> impl Strategy<Value = Vec<u8>> {
    let addr = prop_oneof![
        (0u16..6).prop_map(|i| FIRST_SLOT + i),
        (0u16..3).prop_map(|i| FIRST_DRIVE + i),
        Just(FIRST_IMPORT_EXPORT),
        any::<u16>(),
    ];
    prop_oneof![
        (addr.clone(), addr.clone()).prop_map(|(a, b)| mv_cdb(a, b)),
        (addr.clone(), addr.clone(), addr).prop_map(|(a, b, c)| ExchangeMedium {
            transport: ElementAddress(0),
            source: ElementAddress(a),
            first_destination: ElementAddress(b),
            second_destination: ElementAddress(c),
            inv1: false,
            inv2: false,
        }
        .to_cdb()
        .as_bytes()
        .to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

fn mv_cdb(a: u16, b: u16) -> Vec<u8> {
    MoveMedium::new(ElementAddress(a), ElementAddress(b))
        .to_cdb()
        .as_bytes()
        .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// No command sequence panics; every barcode stays in exactly one
    /// element, the drives hold what the inventory says, and the saved
    /// inventory is the one in memory.
    #[test]
    fn random_commands_keep_the_inventory_consistent(cmds in proptest::collection::vec(command(), 1..24)) {
        let mut l = lib(3, 6);
        for cdb in &cmds {
            let mut buf = vec![0u8; 4096];
            let _ = l.lu.execute(cdb, &[], &mut buf);
            prop_assert!(l.lu.inventory().is_consistent());
        }
        let inv = l.lu.inventory().clone();
        prop_assert_eq!(inv.barcodes().len(), 6);
        for (d, v) in l.drives.iter().zip(&inv.drives) {
            let loaded = lock(d).cartridge().map(|c| c.barcode);
            prop_assert_eq!(loaded, v.as_ref().map(|v| v.barcode.clone()));
        }
        prop_assert_eq!(l.lu_inventory_after_restart(), inv);
    }
}
