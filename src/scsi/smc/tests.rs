use super::*;
use crate::scsi::asc::Asc;
use crate::scsi::sbc::tests::golden;
use crate::scsi::spc::{CodeSet, Designator, DesignatorType, ModePageCodec, ModeParameters};
use crate::scsi::Wire;
use proptest::prelude::*;

fn a(n: u16) -> ElementAddress {
    ElementAddress(n)
}

#[test]
fn read_element_status_golden() {
    golden(
        ReadElementStatus {
            voltag: true,
            element_type: ElementType::STORAGE,
            start: a(0x0400),
            count: 0x0010,
            curdata: true,
            dvcid: true,
            alloc_len: 0x01_0203,
        },
        &[
            0xb8, 0x12, 0x04, 0x00, 0x00, 0x10, 0x03, 0x01, 0x02, 0x03, 0, 0,
        ],
    );
    golden(
        ReadElementStatus {
            voltag: false,
            element_type: ElementType::DATA_TRANSFER,
            start: a(1),
            count: 2,
            curdata: false,
            dvcid: false,
            alloc_len: 4096,
        },
        &[0xb8, 0x04, 0, 1, 0, 2, 0, 0, 0x10, 0x00, 0, 0],
    );
}

#[test]
fn move_and_exchange_golden() {
    golden(
        MoveMedium {
            transport: a(1),
            source: a(0x0402),
            destination: a(0x0101),
            invert: true,
        },
        &[0xa5, 0, 0, 1, 0x04, 0x02, 0x01, 0x01, 0, 0, 1, 0],
    );
    golden(
        MoveMedium::new(a(0x400), a(0x100)),
        &[0xa5, 0, 0, 0, 0x04, 0x00, 0x01, 0x00, 0, 0, 0, 0],
    );
    golden(
        ExchangeMedium {
            transport: a(0),
            source: a(0x0401),
            first_destination: a(0x0402),
            second_destination: a(0x0401),
            inv1: false,
            inv2: true,
        },
        &[0xa6, 0, 0, 0, 0x04, 0x01, 0x04, 0x02, 0x04, 0x01, 0x02, 0],
    );
}

#[test]
fn initialize_position_prevent_golden() {
    golden(InitializeElementStatus, &[0x07, 0, 0, 0, 0, 0]);
    golden(
        InitializeElementStatusWithRange {
            fast: true,
            range: true,
            start: a(0x0400),
            count: 8,
        },
        &[0x37, 0x03, 0x04, 0x00, 0, 0, 0, 8, 0, 0],
    );
    golden(
        PositionToElement {
            transport: a(1),
            destination: a(0x0405),
            invert: true,
        },
        &[0x2b, 0, 0, 1, 0x04, 0x05, 0, 0, 1, 0],
    );
    golden(
        PreventAllowMediumRemoval { prevent: true },
        &[0x1e, 0, 0, 0, 1, 0],
    );
    golden(
        PreventAllowMediumRemoval { prevent: false },
        &[0x1e, 0, 0, 0, 0, 0],
    );
    let e = PreventAllowMediumRemoval::parse(&[0x1e, 0, 0, 0, 2, 0]).unwrap_err();
    assert_eq!(e.at().map(|f| (f.byte, f.bit)), Some((4, Some(1))));
}

fn tag(s: &str) -> VolumeTag {
    VolumeTag::new(s, 0).unwrap()
}

fn t10_id(vendor: &str, product: &str, serial: &str) -> Designator {
    let mut v = format!("{vendor:<8}{product:<16}{serial:<10}").into_bytes();
    v.truncate(34);
    Designator {
        protocol_id: 0,
        code_set: CodeSet::ASCII,
        piv: false,
        association: crate::scsi::spc::Association::LU,
        designator_type: DesignatorType::T10_VENDOR_ID,
        value: v,
    }
}

/// A slot page and a drive page, as a library with volume tags and DVCID
/// reports them.
fn sample() -> ElementStatusData {
    let mut slot1 = ElementDescriptor::empty(a(0x400));
    slot1.flags = ElementFlags::FULL | ElementFlags::ACCESS;
    slot1.medium_type = 1;
    slot1.primary_tag = Some(tag("SM0001L6"));
    let mut slot2 = ElementDescriptor::empty(a(0x401));
    slot2.flags = ElementFlags::ACCESS | ElementFlags::EXCEPT;
    slot2.asc = Asc::MEDIUM_MAGAZINE_REMOVED;
    slot2.primary_tag = Some(VolumeTag::blank());
    let mut drive = ElementDescriptor::empty(a(0x100));
    drive.flags = ElementFlags::FULL | ElementFlags::ACCESS;
    drive.source = Some(a(0x402));
    drive.primary_tag = Some(tag("SM0003L6"));
    drive.device_id = Some(t10_id("IBM", "ULT3580-TD6", "SN-D0"));
    ElementStatusData {
        first_address: a(0x100),
        available: 3,
        pages: vec![
            ElementStatusPage {
                element_type: ElementType::STORAGE,
                pvoltag: true,
                avoltag: false,
                descriptors: vec![slot1, slot2],
            },
            ElementStatusPage {
                element_type: ElementType::DATA_TRANSFER,
                pvoltag: true,
                avoltag: false,
                descriptors: vec![drive],
            },
        ],
    }
}

fn sample_bytes() -> Vec<u8> {
    let mut v = vec![0x01, 0x00, 0x00, 0x03, 0, 0, 0, 0];
    // Storage page: PVOLTAG, descriptors of 12 + 36 + 4 = 52 bytes.
    v.extend_from_slice(&[0x02, 0x80, 0, 52, 0, 0, 0, 104]);
    let mut s1 = vec![0x04, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0x01, 0, 0];
    s1.extend_from_slice(b"SM0001L6                        ");
    s1.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    let mut s2 = vec![0x04, 0x01, 0x0c, 0, 0x3b, 0x12, 0, 0, 0, 0, 0, 0];
    s2.extend_from_slice(&[b' '; 32]);
    s2.extend_from_slice(&[0; 8]);
    v.extend(s1);
    v.extend(s2);
    // Drive page: 12 + 36 + 4 + 34 = 86 bytes.
    v.extend_from_slice(&[0x04, 0x80, 0, 86, 0, 0, 0, 86]);
    let mut d = vec![0x01, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0x80, 0x04, 0x02];
    d.extend_from_slice(b"SM0003L6                        ");
    d.extend_from_slice(&[0, 0, 0, 0]);
    d.extend_from_slice(&[0x02, 0x01, 0, 34]);
    d.extend_from_slice(b"IBM     ULT3580-TD6     SN-D0     ");
    v.extend(d);
    let n = v.len() - 8;
    v[5..8].copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    v
}

#[test]
fn element_status_golden() {
    let bytes = sample_bytes();
    assert_eq!(sample().to_vec(), bytes);
    assert_eq!(ElementStatusData::parse(&bytes).unwrap(), sample());
    assert_eq!(ElementStatusData::report_len(&bytes).unwrap(), bytes.len());
    for cut in [0, 7, 8, 20, bytes.len() - 1] {
        assert!(
            matches!(
                ElementStatusData::parse(&bytes[..cut]),
                Err(crate::scsi::ParseError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
    let d = ElementStatusData::parse(&bytes).unwrap();
    let (t, drive) = d.descriptors().last().unwrap();
    assert_eq!(t, ElementType::DATA_TRANSFER);
    assert_eq!(drive.primary_tag.unwrap().label(), "SM0003L6");
    assert_eq!(drive.source, Some(a(0x402)));
    assert_eq!(
        drive.device_id.as_ref().unwrap().to_string(),
        "IBM:ULT3580-TD6     SN-D0"
    );
}

/// What tgt 1.0.85 sends for READ ELEMENT STATUS of its drives with
/// VOLTAG and DVCID (smc.c: 86-byte descriptors, the identifier at 48):
/// one empty drive, identifier "IET VIRTUAL-TAPE beaf11".
#[test]
fn element_status_tgt_drive_page() {
    let mut v = vec![0, 1, 0, 1, 0, 0, 0, 94];
    v.extend_from_slice(&[0x04, 0x80, 0, 86, 0, 0, 0, 86]);
    v.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&[b' '; 32]);
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&[2, 1, 0, 34]);
    v.extend_from_slice(b"IET     VIRTUAL-TAPE    beaf11    ");
    assert_eq!(v.len(), 102);
    let d = ElementStatusData::parse(&v).unwrap();
    let (_, e) = d.descriptors().next().unwrap();
    assert!(!e.is_full());
    assert!(e.primary_tag.unwrap().is_blank());
    let id = e.device_id.as_ref().unwrap();
    assert_eq!(id.designator_type, DesignatorType::T10_VENDOR_ID);
    assert_eq!(&id.value[24..30], b"beaf11");
}

#[test]
fn element_status_refuses_ragged_pages() {
    // 30 descriptor bytes are not a whole number of 16-byte descriptors.
    let mut v = vec![0, 0, 0, 1, 0, 0, 0, 38];
    v.extend_from_slice(&[0x02, 0, 0, 16, 0, 0, 0, 30]);
    v.extend_from_slice(&[0; 30]);
    let e = ElementStatusData::parse(&v).unwrap_err();
    assert_eq!(e.at().unwrap().byte, 10, "{e}");
    // An identifier longer than its descriptor.
    let mut v = vec![0, 0, 0, 1, 0, 0, 0, 24];
    v.extend_from_slice(&[0x04, 0, 0, 16, 0, 0, 0, 16]);
    v.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 9]);
    assert!(ElementStatusData::parse(&v).is_err());
}

#[test]
fn volume_tag_checks_labels() {
    assert!(VolumeTag::new("A", 0).is_ok());
    assert!(VolumeTag::new(&"X".repeat(32), 0).is_ok());
    assert!(VolumeTag::new(&"X".repeat(33), 0).is_err());
    assert!(VolumeTag::new("has space", 0).is_err());
    assert_eq!(tag("SM0001L6").label(), "SM0001L6");
}

#[test]
fn element_address_assignment_golden() {
    let p = ElementAddressAssignment {
        transport: ElementRange {
            first: a(1),
            count: 1,
        },
        storage: ElementRange {
            first: a(0x400),
            count: 10,
        },
        import_export: ElementRange {
            first: a(0x20),
            count: 1,
        },
        data_transfer: ElementRange {
            first: a(0x100),
            count: 2,
        },
    };
    let bytes = [
        0x1d, 0x12, 0, 1, 0, 1, 0x04, 0x00, 0, 10, 0, 0x20, 0, 1, 0x01, 0x00, 0, 2, 0, 0,
    ];
    assert_eq!(p.to_page(), bytes);
    assert_eq!(
        ElementAddressAssignment::parse_data(&bytes[2..]).unwrap(),
        p
    );
    assert!(ElementAddressAssignment::parse_data(&bytes[2..17]).is_err());
    assert_eq!(p.type_of(a(0x401)), Some(ElementType::STORAGE));
    assert_eq!(p.type_of(a(0x101)), Some(ElementType::DATA_TRANSFER));
    assert_eq!(p.type_of(a(0x102)), None);
    assert_eq!(p.storage.nth(9), Some(a(0x409)));
    assert_eq!(p.storage.nth(10), None);
    assert_eq!(p.storage.index_of(a(0x403)), Some(3));
    // Through the mode parameter list, as MODE SENSE(6) returns it.
    let params = ModeParameters {
        medium_type: 0,
        device_specific: 0,
        block_descriptors: vec![],
        pages: p.to_page(),
    };
    let back = ModeParameters::parse6(&params.emit6()).unwrap();
    assert_eq!(ElementAddressAssignment::from_params(&back).unwrap(), p);
    assert!(DeviceCapabilities::from_params(&back).is_err());
}

#[test]
fn transport_geometry_golden() {
    let p = TransportGeometryPage {
        transports: vec![
            TransportGeometry {
                rotate: true,
                member: 0,
            },
            TransportGeometry {
                rotate: false,
                member: 1,
            },
        ],
    };
    let bytes = [0x1e, 4, 1, 0, 0, 1];
    assert_eq!(p.to_page(), bytes);
    assert_eq!(TransportGeometryPage::parse_data(&bytes[2..]).unwrap(), p);
}

#[test]
fn device_capabilities_golden() {
    // tgt's page: everything may store, move and exchange everywhere.
    let tgt = [
        0x1f, 0x12, 15, 7, 15, 15, 15, 15, 0, 0, 0, 0, 15, 15, 15, 15, 0, 0, 0, 0,
    ];
    let p = DeviceCapabilities::parse_data(&tgt[2..]).unwrap();
    assert!(p.can_move(ElementType::STORAGE, ElementType::DATA_TRANSFER));
    assert!(p.can_exchange(ElementType::STORAGE, ElementType::STORAGE));
    assert!(!p.can_move(ElementType::ALL, ElementType::STORAGE));
    let mut clean = tgt;
    clean[3] = 0; // byte 3 is reserved
    assert_eq!(p.to_page(), clean);

    let q = DeviceCapabilities {
        storage: ElementTypes::ST | ElementTypes::IE,
        move_from: [
            ElementTypes::all(),
            ElementTypes::DT | ElementTypes::IE,
            ElementTypes::ST,
            ElementTypes::ST,
        ],
        exchange_from: Default::default(),
    };
    let bytes = [
        0x1f, 0x12, 0x06, 0, 0x0f, 0x0c, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(q.to_page(), bytes);
    assert_eq!(DeviceCapabilities::parse_data(&bytes[2..]).unwrap(), q);
    assert!(!q.can_move(ElementType::STORAGE, ElementType::STORAGE));
    assert!(q.can_move(ElementType::STORAGE, ElementType::DATA_TRANSFER));
    assert!(!q.can_exchange(ElementType::STORAGE, ElementType::STORAGE));
    assert!(DeviceCapabilities::parse_data(&bytes[2..15]).is_err());
}

fn arb_tag() -> impl Strategy<Value = Option<VolumeTag>> {
    proptest::option::of(
        (proptest::array::uniform32(any::<u8>()), any::<u16>()).prop_map(
            |(identifier, sequence)| VolumeTag {
                identifier,
                sequence,
            },
        ),
    )
}

fn arb_id() -> impl Strategy<Value = Option<Designator>> {
    proptest::option::of(
        (
            0u8..16,
            0u8..16,
            proptest::collection::vec(any::<u8>(), 1..40),
        )
            .prop_map(|(cs, ty, value)| Designator {
                protocol_id: 0,
                code_set: CodeSet(cs),
                piv: false,
                association: crate::scsi::spc::Association::LU,
                designator_type: DesignatorType(ty),
                value,
            }),
    )
}

fn arb_descriptor(tags: (bool, bool)) -> impl Strategy<Value = ElementDescriptor> {
    (
        any::<u16>(),
        any::<u8>(),
        any::<u16>(),
        any::<[u8; 2]>(),
        (any::<bool>(), any::<bool>(), 0u8..8),
        proptest::option::of(any::<u16>()),
        (arb_tag(), arb_tag()),
        arb_id(),
    )
        .prop_map(move |(ad, fl, asc, bus, (inv, ed, mt), src, (p, al), id)| {
            ElementDescriptor {
                address: ElementAddress(ad),
                flags: ElementFlags::from_bits_retain(fl),
                asc: Asc(asc),
                bus_info: bus,
                invert: inv,
                ed,
                medium_type: mt,
                source: src.map(ElementAddress),
                primary_tag: if tags.0 { p } else { None },
                alternate_tag: if tags.1 { al } else { None },
                device_id: id,
            }
        })
}

fn arb_page() -> impl Strategy<Value = ElementStatusPage> {
    (any::<u8>(), any::<bool>(), any::<bool>()).prop_flat_map(|(t, pv, av)| {
        proptest::collection::vec(arb_descriptor((pv, av)), 0..5).prop_map(move |descriptors| {
            // A page that announces a tag carries one in every descriptor.
            let descriptors = descriptors
                .into_iter()
                .map(|mut d| {
                    if pv && d.primary_tag.is_none() {
                        d.primary_tag = Some(VolumeTag::new("X", 0).unwrap());
                    }
                    if av && d.alternate_tag.is_none() {
                        d.alternate_tag = Some(VolumeTag::new("Y", 0).unwrap());
                    }
                    d
                })
                .collect();
            ElementStatusPage {
                element_type: ElementType(t),
                pvoltag: pv,
                avoltag: av,
                descriptors,
            }
        })
    })
}

proptest! {
    #[test]
    fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ElementStatusData::parse(&buf);
        let _ = ElementStatusData::report_len(&buf);
        let _ = ReadElementStatus::parse(&buf);
        let _ = MoveMedium::parse(&buf);
        let _ = ExchangeMedium::parse(&buf);
        let _ = InitializeElementStatus::parse(&buf);
        let _ = InitializeElementStatusWithRange::parse(&buf);
        let _ = PositionToElement::parse(&buf);
        let _ = PreventAllowMediumRemoval::parse(&buf);
        let _ = ElementAddressAssignment::parse_data(&buf);
        let _ = TransportGeometryPage::parse_data(&buf);
        let _ = DeviceCapabilities::parse_data(&buf);
    }

    /// Structured garbage: a plausible header over random pages.
    #[test]
    fn element_status_never_panics_on_framed_garbage(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        dlen in 0u16..120,
    ) {
        let mut v = vec![0, 0, 0, 1, 0, 0, 0, 0];
        let n = body.len() + 8;
        v[5..8].copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
        v.extend_from_slice(&[0x02, 0xc0, (dlen >> 8) as u8, dlen as u8, 0,
            (body.len() >> 16) as u8, (body.len() >> 8) as u8, body.len() as u8]);
        v.extend_from_slice(&body);
        let _ = ElementStatusData::parse(&v);
    }

    #[test]
    fn element_status_round_trip(
        first in any::<u16>(),
        available in any::<u16>(),
        pages in proptest::collection::vec(arb_page(), 0..4),
    ) {
        let d = ElementStatusData { first_address: ElementAddress(first), available, pages };
        let bytes = d.to_vec();
        prop_assert_eq!(bytes.len(), d.buffer_len());
        prop_assert_eq!(ElementStatusData::parse(&bytes).unwrap(), d);
    }

    /// Whatever parses, re-emits to bytes that parse to the same thing.
    #[test]
    fn element_status_reparse_is_stable(buf in proptest::collection::vec(any::<u8>(), 8..300)) {
        if let Ok(d) = ElementStatusData::parse(&buf) {
            prop_assert_eq!(ElementStatusData::parse(&d.to_vec()).unwrap(), d);
        }
    }

    #[test]
    fn cdbs_round_trip(
        vt in any::<bool>(), t in 0u8..16, s in any::<u16>(), n in any::<u16>(),
        cd in any::<bool>(), dv in any::<bool>(), al in 0u32..=0xff_ffff,
        x in any::<u16>(), y in any::<u16>(), i1 in any::<bool>(), i2 in any::<bool>(),
    ) {
        let r = ReadElementStatus { voltag: vt, element_type: ElementType(t), start: a(s),
            count: n, curdata: cd, dvcid: dv, alloc_len: al };
        prop_assert_eq!(ReadElementStatus::parse(r.to_cdb().as_bytes()).unwrap(), r);
        let m = MoveMedium { transport: a(n), source: a(x), destination: a(y), invert: i1 };
        prop_assert_eq!(MoveMedium::parse(m.to_cdb().as_bytes()).unwrap(), m);
        let e = ExchangeMedium { transport: a(n), source: a(x), first_destination: a(y),
            second_destination: a(s), inv1: i1, inv2: i2 };
        prop_assert_eq!(ExchangeMedium::parse(e.to_cdb().as_bytes()).unwrap(), e);
        let w = InitializeElementStatusWithRange { fast: i1, range: i2, start: a(s), count: n };
        prop_assert_eq!(InitializeElementStatusWithRange::parse(w.to_cdb().as_bytes()).unwrap(), w);
        let p = PositionToElement { transport: a(x), destination: a(y), invert: i2 };
        prop_assert_eq!(PositionToElement::parse(p.to_cdb().as_bytes()).unwrap(), p);
    }

    #[test]
    fn pages_round_trip(r in proptest::array::uniform8(any::<u16>()),
        caps in proptest::array::uniform9(0u8..16),
        geo in proptest::collection::vec((any::<bool>(), any::<u8>()), 0..4)) {
        let range = |i: usize| ElementRange { first: a(r[i]), count: r[i + 1] };
        let p = ElementAddressAssignment { transport: range(0), storage: range(2),
            import_export: range(4), data_transfer: range(6) };
        prop_assert_eq!(ElementAddressAssignment::parse_data(&p.to_page()[2..]).unwrap(), p);
        let t = |b: u8| ElementTypes::from_bits_truncate(b);
        let c = DeviceCapabilities { storage: t(caps[0]),
            move_from: [t(caps[1]), t(caps[2]), t(caps[3]), t(caps[4])],
            exchange_from: [t(caps[5]), t(caps[6]), t(caps[7]), t(caps[8])] };
        prop_assert_eq!(DeviceCapabilities::parse_data(&c.to_page()[2..]).unwrap(), c);
        let g = TransportGeometryPage { transports: geo.into_iter()
            .map(|(rotate, member)| TransportGeometry { rotate, member }).collect() };
        prop_assert_eq!(TransportGeometryPage::parse_data(&g.to_page()[2..]).unwrap(), g);
    }
}
