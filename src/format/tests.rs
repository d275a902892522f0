//! Golden bytes: hex literals laid out field by field (FORMAT.md tables);
//! CRCs were computed with an independent bitwise CRC32C (poly 0x82F63B78),
//! not with the crate under test.

use super::*;
use crate::scsi::spc::{Association, CodeSet, Designator, DesignatorType};
use proptest::prelude::*;

fn h(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    ::hex::decode(s).expect("test hex")
}

const U: Uuid = Uuid::from_u128(0x00112233_4455_6677_8899_aabbccddeeff);
const S: Uuid = Uuid::from_u128(0x5e7e0000_0000_4000_8000_000000000001);

const LABEL_HEX: &str = "
    53414e4d564f4c31 0001 0000 00000034
    00112233445566778899aabbccddeeff
    0000000065000000
    0006 544150453031
    7617eb9d";

fn label() -> VolumeLabel {
    VolumeLabel::new("TAPE01", U, 0x6500_0000).unwrap()
}

const HEADER_HEX: &str = "
    53414e4d53455431 0001 0000 0000009d
    5e7e0000000040008000000000000001
    00112233445566778899aabbccddeeff
    01 00 0000 00000200
    0000000000000010
    0000000000000800
    0003ffd0 00000000
    0000000065000001
    0007 6e696768746c79
    0001
      03 01 00 00 0008 6001405abcdef012
    0011 69736373693a2f2f682f69716e2e782f30
    0007 4c494f2d4f5247
    0005 6469736b30
    0003 616263
    c81367af";

fn source() -> SourceIdentity {
    SourceIdentity {
        designators: vec![StoredDesignator {
            designator_type: 3,
            code_set: 1,
            association: 0,
            value: h("6001405abcdef012"),
        }],
        url: "iscsi://h/iqn.x/0".into(),
        vendor: "LIO-ORG".into(),
        product: "disk0".into(),
        serial: "abc".into(),
    }
}

fn header() -> SetHeader {
    SetHeader {
        set_id: S,
        volume_id: U,
        mode: Mode::HOST,
        source: source(),
        lba: 0x10,
        blocks: 0x800,
        block_size: 512,
        payload_size: 0x3ffd0,
        created: 0x6500_0001,
        label: "nightly".into(),
        snapshot: None,
        digest: DigestAlgorithm::Sha256,
    }
}

/// The header above for a BLAKE3 set: frame flag DIGEST_FIELD, and the
/// digest algorithm byte (2) after the last field.
const HEADER_BLAKE3_HEX: &str = "
    53414e4d53455431 0001 0001 0000009e
    5e7e0000000040008000000000000001
    00112233445566778899aabbccddeeff
    01 00 0000 00000200
    0000000000000010
    0000000000000800
    0003ffd0 00000000
    0000000065000001
    0007 6e696768746c79
    0001
      03 01 00 00 0008 6001405abcdef012
    0011 69736373693a2f2f682f69716e2e782f30
    0007 4c494f2d4f5247
    0005 6469736b30
    0003 616263
    02
    58aabd09";

const RECORD_HEX: &str = "
    53414e4d44415431 0001 0000
    5e7e0000000040008000000000000001
    0000000000000005
    00000005
    b8b90bca
    00000000
    68656c6c6f";

const TRAILER_HEX: &str = "
    53414e4d454e4431 0001 0000 00000064
    5e7e0000000040008000000000000001
    0000000000000003
    0000000000030000
    ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    01 00000000000000
    0000000065000002
    4c5beb6c";

fn trailer() -> SetTrailer {
    let mut d = SetDigest::new(DigestAlgorithm::Sha256);
    d.update(b"abc");
    SetTrailer {
        set_id: S,
        records: 3,
        bytes: 0x30000,
        digest: d.finish(),
        complete: true,
        stop: StopReason::NOT_GIVEN,
        ended: 0x6500_0002,
        crc_digest: false,
        part: 1,
    }
}

type Decode = fn(&[u8]) -> Result<(), FormatError>;

fn label_d(b: &[u8]) -> Result<(), FormatError> {
    VolumeLabel::decode(b).map(drop)
}
fn header_d(b: &[u8]) -> Result<(), FormatError> {
    SetHeader::decode(b).map(drop)
}
fn record_d(b: &[u8]) -> Result<(), FormatError> {
    decode_record(b).map(drop)
}
fn trailer_d(b: &[u8]) -> Result<(), FormatError> {
    SetTrailer::decode(b).map(drop)
}

/// Each golden record with its decoder.
const ALL: [(&str, Decode); 4] = [
    (LABEL_HEX, label_d),
    (HEADER_HEX, header_d),
    (RECORD_HEX, record_d),
    (TRAILER_HEX, trailer_d),
];

// ---- golden bytes ----

#[test]
fn crc32c_crate_matches_reference_check_value() {
    // RFC 3720 B.4 / the usual CRC-32C check value.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    assert_eq!(
        crc32c::crc32c_append(crc32c::crc32c(b"1234"), b"56789"),
        0xe306_9283
    );
}

#[test]
fn label_golden() {
    let bytes = h(LABEL_HEX);
    assert_eq!(label().encode(), bytes);
    assert_eq!(VolumeLabel::decode(&bytes).unwrap(), label());
    assert!(VolumeLabel::looks_like(&bytes));
    assert!(!VolumeLabel::looks_like(b"VOL1    "));
    assert!(!VolumeLabel::looks_like(b"SANMVOL"));
}

#[test]
fn header_golden() {
    let bytes = h(HEADER_HEX);
    assert_eq!(bytes.len(), 157);
    assert_eq!(header().encode().unwrap(), bytes);
    assert_eq!(SetHeader::decode(&bytes).unwrap(), header());
}

#[test]
fn record_golden() {
    let bytes = h(RECORD_HEX);
    let mut out = vec![0xaa; 1000];
    encode_record(S, 5, b"hello", &mut out);
    assert_eq!(out, bytes);
    assert_eq!(&encode_record_header(S, 5, b"hello")[..], &bytes[..48]);
    let (hdr, payload) = decode_record(&bytes).unwrap();
    assert_eq!(
        hdr,
        RecordHeader {
            set_id: S,
            seq: 5,
            payload_len: 5,
            crc: 0xb8b9_0bca,
            crc_deferred: false
        }
    );
    assert_eq!(payload, b"hello");
    assert_eq!(check_record(&bytes, S, 5).unwrap().1, b"hello");
}

#[test]
fn record_header_in_place_matches_encode_record() {
    // The engine's way: payload read into buf[48..], header written after.
    let payload: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7) as u8).collect();
    let mut buf = vec![0u8; RecordHeader::LEN + payload.len()];
    buf[RecordHeader::LEN..].copy_from_slice(&payload);
    let hdr = encode_record_header(S, 9, &buf[RecordHeader::LEN..]);
    buf[..RecordHeader::LEN].copy_from_slice(&hdr);
    let mut out = Vec::new();
    encode_record(S, 9, &payload, &mut out);
    assert_eq!(buf, out);
    assert_eq!(check_record(&buf, S, 9).unwrap().1, &payload[..]);
}

#[test]
fn empty_payload_record() {
    let mut out = Vec::new();
    encode_record(S, 0, &[], &mut out);
    assert_eq!(out.len(), RecordHeader::LEN);
    let (hdr, payload) = decode_record(&out).unwrap();
    assert_eq!((hdr.seq, hdr.payload_len, payload.len()), (0, 0, 0));
}

#[test]
fn trailer_golden() {
    let bytes = h(TRAILER_HEX);
    assert_eq!(bytes.len(), SetTrailer::LEN);
    assert_eq!(trailer().encode(), bytes);
    assert_eq!(SetTrailer::decode(&bytes).unwrap(), trailer());
}

#[test]
fn header_blake3_golden() {
    let bytes = h(HEADER_BLAKE3_HEX);
    assert_eq!(bytes.len(), 158);
    let mut hd = header();
    hd.digest = DigestAlgorithm::Blake3;
    assert_eq!(hd.encode().unwrap(), bytes);
    assert_eq!(SetHeader::decode(&bytes).unwrap(), hd);
}

#[test]
fn header_without_digest_field_is_sha256() {
    // Every set written before the field existed: the version-1 golden
    // header, which a SHA-256 set still encodes to byte for byte.
    let hd = SetHeader::decode(&h(HEADER_HEX)).unwrap();
    assert_eq!(hd.digest, DigestAlgorithm::Sha256);
    assert_eq!(hd.encode().unwrap(), h(HEADER_HEX));
}

/// Re-frame a header body: new length and CRC over `b` minus its old CRC.
fn reframe(mut b: Vec<u8>) -> Vec<u8> {
    let len = (b.len() as u32).to_be_bytes();
    b[12..16].copy_from_slice(&len);
    let n = b.len() - 4;
    let crc = crc32c::crc32c(&b[..n]);
    b[n..].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn header_digest_field_errors() {
    // An algorithm code this build does not know: refused, never guessed.
    let mut b = h(HEADER_BLAKE3_HEX);
    let at = b.len() - 5;
    b[at] = 9;
    let e = SetHeader::decode(&reframe(b)).unwrap_err();
    assert!(
        e.to_string().contains("digest algorithm 9 is not known"),
        "{e}"
    );
    // The flag without the field: the field runs past the end.
    let mut b = h(HEADER_BLAKE3_HEX);
    let at = b.len() - 5;
    b.remove(at);
    let e = SetHeader::decode(&reframe(b)).unwrap_err();
    assert!(matches!(e, FormatError::Invalid { .. }), "{e}");
    // A flag beyond DIGEST_FIELD: a newer writer's meaning.
    let mut b = h(HEADER_HEX);
    b[11] = 0x02;
    let e = SetHeader::decode(&reframe(b)).unwrap_err();
    assert!(e.to_string().contains("unknown flags"), "{e}");
}

#[test]
fn header_with_snapshot_round_trips() {
    let mut hd = header();
    hd.mode = Mode::SERVERLESS;
    hd.snapshot = Some(SourceIdentity {
        designators: vec![],
        url: "iscsi://h/iqn.snap/1".into(),
        vendor: "LIO-ORG".into(),
        product: "snap".into(),
        serial: String::new(),
    });
    let bytes = hd.encode().unwrap();
    assert_eq!(bytes[48], 2, "mode byte");
    assert_eq!(bytes[49], 1, "snapshot present");
    assert_eq!(SetHeader::decode(&bytes).unwrap(), hd);
}

// ---- decoders: errors ----

#[test]
fn every_truncation_is_truncated() {
    for (hex, decode) in ALL {
        let bytes = h(hex);
        decode(&bytes).unwrap();
        for n in 0..bytes.len() {
            match decode(&bytes[..n]) {
                Err(FormatError::Truncated { need, have, .. }) => {
                    assert_eq!(have, n);
                    assert!(need > n, "need {need} have {n}");
                }
                other => panic!("{n} bytes of {hex}: {other:?}"),
            }
        }
    }
}

#[test]
fn truncated_reports_full_length() {
    let bytes = h(HEADER_HEX);
    assert_eq!(
        SetHeader::decode(&bytes[..100]),
        Err(FormatError::Truncated {
            what: "set header",
            need: 157,
            have: 100
        })
    );
    let rec = h(RECORD_HEX);
    assert_eq!(
        decode_record(&rec[..50]),
        Err(FormatError::Truncated {
            what: "data record",
            need: 53,
            have: 50
        })
    );
}

#[test]
fn flipped_bits_are_bad_crc() {
    // Framed records (all but the data record): every bit after the length
    // field is covered.
    for (hex, decode) in [ALL[0], ALL[1], ALL[3]] {
        let bytes = h(hex);
        for bit in 16 * 8..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(decode(&b), Err(FormatError::BadCrc { .. })),
                "bit {bit} of {hex}"
            );
        }
    }
    // Data record: everything but the payload length (which changes framing).
    let bytes = h(RECORD_HEX);
    for bit in 12 * 8..bytes.len() * 8 {
        if (36..40).contains(&(bit / 8)) {
            continue;
        }
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        match decode_record(&b) {
            Err(FormatError::BadCrc {
                expected, found, ..
            }) => assert_ne!(expected, found),
            other => panic!("bit {bit}: {other:?}"),
        }
    }
}

#[test]
fn record_payload_len_damage_is_caught() {
    let bytes = h(RECORD_HEX);
    let mut b = bytes.clone();
    b[39] = 4; // shorter: CRC no longer matches
    assert!(matches!(decode_record(&b), Err(FormatError::BadCrc { .. })));
    b[39] = 6; // longer than the block
    assert!(matches!(
        decode_record(&b),
        Err(FormatError::Truncated {
            need: 54,
            have: 53,
            ..
        })
    ));
    b[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode_record(&b),
        Err(FormatError::Truncated { .. })
    ));
}

#[test]
fn framed_length_damage_is_caught() {
    let bytes = h(TRAILER_HEX);
    for len in [0u32, 19, 99, 65537, u32::MAX] {
        let mut b = bytes.clone();
        b[12..16].copy_from_slice(&len.to_be_bytes());
        assert!(
            matches!(SetTrailer::decode(&b), Err(FormatError::Invalid { .. })),
            "length {len}"
        );
    }
    let mut b = bytes.clone();
    b[15] = 101;
    assert!(matches!(
        SetTrailer::decode(&b),
        Err(FormatError::Truncated {
            need: 101,
            have: 100,
            ..
        })
    ));
}

#[test]
fn wrong_magic_is_bad_magic() {
    let all = [h(LABEL_HEX), h(HEADER_HEX), h(RECORD_HEX), h(TRAILER_HEX)];
    for bytes in &all {
        let mut b = bytes.clone();
        b[7] = b'9';
        let mut found = [0u8; 8];
        found.copy_from_slice(&b[..8]);
        let errs = [
            VolumeLabel::decode(&b).err(),
            SetHeader::decode(&b).err(),
            decode_record(&b).err(),
            SetTrailer::decode(&b).err(),
        ];
        for e in errs {
            match e {
                Some(FormatError::BadMagic { found: f, .. }) => assert_eq!(f, found),
                other => panic!("{other:?}"),
            }
        }
    }
    // One record's bytes offered to another decoder.
    assert!(matches!(
        SetHeader::decode(&all[0]),
        Err(FormatError::BadMagic { what: "set header", found }) if &found == b"SANMVOL1"
    ));
    assert!(matches!(
        check_record(&all[3], S, 0),
        Err(FormatError::BadMagic { found, .. }) if &found == b"SANMEND1"
    ));
    // A short foreign block is foreign, not truncated.
    assert!(matches!(
        decode_record(b"VOL1TAPE01"),
        Err(FormatError::BadMagic { .. })
    ));
    assert!(matches!(
        VolumeLabel::decode(b"VOL1TAPE01"),
        Err(FormatError::BadMagic { .. })
    ));
}

#[test]
fn future_version_is_unsupported() {
    for (hex, decode) in ALL {
        for version in [0u16, 3, 0xffff] {
            let mut b = h(hex);
            b[8..10].copy_from_slice(&version.to_be_bytes());
            // Version is checked before anything version 2 may have moved.
            b.truncate(16);
            match decode(&b) {
                Err(FormatError::UnsupportedVersion { version: v, .. }) => assert_eq!(v, version),
                other => panic!("{hex} v{version}: {other:?}"),
            }
        }
    }
    let e = VolumeLabel::decode(&{
        let mut b = h(LABEL_HEX);
        b[9] = 3;
        b
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "volume label: format version 3 is not supported (this build reads versions 1 to 2)"
    );
}

#[test]
fn unknown_flags_are_rejected() {
    let mut b = h(LABEL_HEX);
    b[11] = 1;
    assert!(matches!(
        VolumeLabel::decode(&b),
        Err(FormatError::Invalid { .. })
    ));
    let mut b = h(RECORD_HEX);
    b[10] = 0x80;
    assert!(matches!(
        decode_record(&b),
        Err(FormatError::Invalid { .. })
    ));
}

#[test]
fn wrong_set_and_sequence() {
    let bytes = h(RECORD_HEX);
    assert_eq!(
        check_record(&bytes, U, 5),
        Err(FormatError::WrongSet {
            expected: U,
            found: S
        })
    );
    assert_eq!(
        check_record(&bytes, S, 6),
        Err(FormatError::OutOfSequence {
            expected: 6,
            found: 5
        })
    );
    // Damage wins over identity: a corrupt record is BadCrc, not WrongSet.
    let mut b = bytes.clone();
    b[50] ^= 1;
    assert!(matches!(
        check_record(&b, U, 0),
        Err(FormatError::BadCrc { .. })
    ));
}

#[test]
fn padding_after_a_record_is_ignored() {
    for hex in [LABEL_HEX, HEADER_HEX, RECORD_HEX, TRAILER_HEX] {
        let mut b = h(hex);
        b.extend_from_slice(&[0xee; 300]);
        match classify(&b) {
            BlockKind::VolumeLabel => assert_eq!(VolumeLabel::decode(&b).unwrap(), label()),
            BlockKind::SetHeader => assert_eq!(SetHeader::decode(&b).unwrap(), header()),
            BlockKind::Data => assert_eq!(check_record(&b, S, 5).unwrap().1, b"hello"),
            BlockKind::Trailer => assert_eq!(SetTrailer::decode(&b).unwrap(), trailer()),
            BlockKind::Foreign | BlockKind::CrcIndex | BlockKind::Continuation => panic!("{hex}"),
        }
    }
}

#[test]
fn bad_booleans_and_utf8_are_invalid() {
    // A CRC-correct trailer with complete = 2.
    let mut b = h(TRAILER_HEX);
    b[80] = 2;
    let crc = crc32c::crc32c(&b[..96]);
    b[96..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        SetTrailer::decode(&b),
        Err(FormatError::Invalid { .. })
    ));
    // A CRC-correct label whose name is not UTF-8.
    let mut b = h(LABEL_HEX);
    b[42] = 0xff;
    let crc = crc32c::crc32c(&b[..48]);
    b[48..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        VolumeLabel::decode(&b),
        Err(FormatError::Invalid { .. })
    ));
}

#[test]
fn header_string_past_end_is_invalid() {
    // Label length 0x0100 runs past the record; CRC made valid.
    let mut b = h(HEADER_HEX);
    b[88..90].copy_from_slice(&0x0100u16.to_be_bytes());
    let n = b.len() - 4;
    let crc = crc32c::crc32c(&b[..n]);
    b[n..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        SetHeader::decode(&b),
        Err(FormatError::Invalid {
            what: "set header",
            ..
        })
    ));
}

// ---- encoders: limits ----

#[test]
fn label_name_limits() {
    assert!(VolumeLabel::new("", U, 0).is_err());
    assert!(VolumeLabel::new(&"x".repeat(65), U, 0).is_err());
    let l = VolumeLabel::new(&"x".repeat(64), U, 0).unwrap();
    assert_eq!(VolumeLabel::decode(&l.encode()).unwrap(), l);
    // Too long by hand: cut at a char boundary (é is 2 bytes: 63 + 2 > 64).
    let l = VolumeLabel {
        name: format!("{}é", "x".repeat(63)),
        uuid: U,
        created: 0,
    };
    assert_eq!(
        VolumeLabel::decode(&l.encode()).unwrap().name,
        "x".repeat(63)
    );
    let empty = VolumeLabel {
        name: String::new(),
        uuid: U,
        created: 0,
    };
    assert!(matches!(
        VolumeLabel::decode(&empty.encode()),
        Err(FormatError::Invalid { .. })
    ));
}

#[test]
fn oversize_header_is_refused() {
    let mut hd = header();
    hd.label = "x".repeat(70_000);
    assert!(matches!(hd.encode(), Err(FormatError::Invalid { .. })));
    hd.label = "x".repeat(40_000);
    hd.source.url = "y".repeat(30_000);
    assert!(matches!(hd.encode(), Err(FormatError::Invalid { .. })));
    hd.source.url = "y".repeat(20_000);
    let b = hd.encode().unwrap();
    assert!(b.len() <= 64 * 1024);
    assert_eq!(SetHeader::decode(&b).unwrap(), hd);
}

// ---- classify, digest, mode, designators ----

#[test]
fn classify_by_magic() {
    assert_eq!(classify(&h(LABEL_HEX)), BlockKind::VolumeLabel);
    assert_eq!(classify(&h(HEADER_HEX)), BlockKind::SetHeader);
    assert_eq!(classify(&h(RECORD_HEX)), BlockKind::Data);
    assert_eq!(classify(&h(TRAILER_HEX)), BlockKind::Trailer);
    assert_eq!(classify(&h(TRAILER_V2_HEX)), BlockKind::Trailer);
    assert_eq!(classify(&h(CONTINUATION_HEX)), BlockKind::Continuation);
    assert_eq!(classify(b"SANMDAT1"), BlockKind::Data);
    assert_eq!(classify(b"SANMDAT"), BlockKind::Foreign);
    assert_eq!(classify(b""), BlockKind::Foreign);
    assert_eq!(classify(b"VOL1BAREOS"), BlockKind::Foreign);
    assert_eq!(classify(&[0u8; 512]), BlockKind::Foreign);
}

#[test]
fn digest_and_hex() {
    let mut d = SetDigest::new(DigestAlgorithm::Sha256);
    d.update(b"a");
    d.update(b"bc");
    let sum = d.finish();
    assert_eq!(
        hex(&sum),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&SetDigest::new(DigestAlgorithm::Sha256).finish()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn mode_names() {
    assert_eq!(Mode::HOST.to_string(), "host");
    assert_eq!(Mode::XCOPY.to_string(), "xcopy");
    assert_eq!(Mode(9).to_string(), "0x09");
    assert_eq!(Mode::SERVERLESS.to_string(), "serverless");
}

#[test]
fn stored_designator_from_vpd() {
    let d = Designator {
        protocol_id: 5,
        code_set: CodeSet::UTF8,
        piv: true,
        association: Association::TARGET_DEVICE,
        designator_type: DesignatorType::SCSI_NAME,
        value: b"iqn.2003-01.org.example:t".to_vec(),
    };
    assert_eq!(
        StoredDesignator::from(&d),
        StoredDesignator {
            designator_type: 8,
            code_set: 3,
            association: 2,
            value: b"iqn.2003-01.org.example:t".to_vec(),
        }
    );
}

#[test]
fn errors_read_well() {
    let e = SetHeader::decode(b"\x00\x01\x02\x03\x04\x05\x06\x07 more").unwrap_err();
    assert_eq!(e.to_string(), "set header: bad magic 0x0001020304050607");
    let e = SetHeader::decode(&h(LABEL_HEX)).unwrap_err();
    assert_eq!(e.to_string(), "set header: bad magic \"SANMVOL1\"");
}

// ---- properties ----

fn uuid_s() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn identity_s() -> impl Strategy<Value = SourceIdentity> {
    (
        prop::collection::vec(
            (
                any::<u8>(),
                any::<u8>(),
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            0..4,
        ),
        ".{0,40}",
        ".{0,8}",
        ".{0,16}",
        ".{0,20}",
    )
        .prop_map(|(ds, url, vendor, product, serial)| SourceIdentity {
            designators: ds
                .into_iter()
                .map(|(t, c, a, value)| StoredDesignator {
                    designator_type: t,
                    code_set: c,
                    association: a,
                    value,
                })
                .collect(),
            url,
            vendor,
            product,
            serial,
        })
}

fn header_s() -> impl Strategy<Value = SetHeader> {
    (
        (uuid_s(), uuid_s(), any::<u8>(), identity_s()),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
        ),
        ".{0,30}",
        prop::option::of(identity_s()),
        prop::sample::select(vec![DigestAlgorithm::Sha256, DigestAlgorithm::Blake3]),
    )
        .prop_map(
            |(
                (set_id, volume_id, mode, source),
                (lba, blocks, bs, ps, created),
                label,
                snapshot,
                digest,
            )| {
                SetHeader {
                    set_id,
                    volume_id,
                    mode: Mode(mode),
                    source,
                    lba,
                    blocks,
                    block_size: bs,
                    payload_size: ps,
                    created,
                    label,
                    snapshot,
                    digest,
                }
            },
        )
}

/// Every decoder and classify on the same bytes; none may panic.
fn run_all(b: &[u8]) {
    let _ = classify(b);
    let _ = VolumeLabel::looks_like(b);
    let _ = VolumeLabel::decode(b);
    let _ = SetHeader::decode(b);
    let _ = decode_record(b);
    let _ = check_record(b, S, 0);
    let _ = SetTrailer::decode(b);
    let _ = Continuation::decode(b);
}

proptest! {
    #[test]
    fn decoders_never_panic(b in prop::collection::vec(any::<u8>(), 0..600)) {
        run_all(&b);
    }

    /// Random bytes rarely get past the magic: also damage valid records.
    #[test]
    fn decoders_never_panic_on_damaged_records(
        which in 0usize..6,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        recrc in any::<bool>(),
    ) {
        let mut b = h([LABEL_HEX, HEADER_HEX, RECORD_HEX, TRAILER_HEX, CONTINUATION_HEX,
            TRAILER_V2_HEX][which]);
        for (i, v) in edits {
            let i = i.index(b.len());
            b[i] = v;
        }
        if recrc && which != 2 {
            // Make the CRC match so the body parser sees the damage.
            let n = b.len() - 4;
            let crc = crc32c::crc32c(&b[..n]);
            b[n..].copy_from_slice(&crc.to_be_bytes());
        }
        let n = cut.index(b.len() + 1);
        run_all(&b[..n]);
    }

    #[test]
    fn label_round_trips(name in "[^\u{0}]{1,16}", uuid in uuid_s(), created in any::<u64>()) {
        prop_assume!(name.len() <= VolumeLabel::MAX_NAME);
        let l = VolumeLabel::new(&name, uuid, created).unwrap();
        prop_assert_eq!(VolumeLabel::decode(&l.encode()).unwrap(), l);
    }

    #[test]
    fn header_round_trips(hd in header_s()) {
        let b = hd.encode().unwrap();
        prop_assert_eq!(classify(&b), BlockKind::SetHeader);
        prop_assert_eq!(SetHeader::decode(&b).unwrap(), hd);
    }

    #[test]
    fn trailer_round_trips(
        set_id in uuid_s(), records in any::<u64>(), bytes in any::<u64>(),
        digest in any::<[u8; 32]>(), complete in any::<bool>(), ended in any::<u64>(),
        stop in any::<u8>(),
    ) {
        let t = SetTrailer {
            set_id, records, bytes, digest, complete, stop: StopReason(stop), ended,
            crc_digest: false, part: 1,
        };
        let b = t.encode();
        let len = if t.is_part() { SetTrailer::LEN_V2 } else { SetTrailer::LEN };
        prop_assert_eq!(b.len(), len);
        prop_assert_eq!(SetTrailer::decode(&b).unwrap(), t);
    }

    #[test]
    fn record_round_trips(
        set_id in uuid_s(), seq in any::<u64>(),
        payload in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        let mut out = Vec::new();
        encode_record(set_id, seq, &payload, &mut out);
        prop_assert_eq!(out.len(), RecordHeader::LEN + payload.len());
        let (hdr, p) = decode_record(&out).unwrap();
        prop_assert_eq!((hdr.set_id, hdr.seq, hdr.payload_len as usize), (set_id, seq, payload.len()));
        prop_assert_eq!(p, &payload[..]);
        prop_assert_eq!(check_record(&out, set_id, seq).unwrap().1, &payload[..]);
    }
}

#[test]
fn deferred_record_carries_no_crc_and_decode_returns_the_block_crc() {
    let payload = b"payload bytes";
    let hdr = encode_deferred_record_header(S, 9, payload.len() as u32);
    assert_eq!(&hdr[10..12], &[0, 1]);
    assert_eq!(&hdr[40..44], &[0, 0, 0, 0]);
    let mut block = hdr.to_vec();
    block.extend_from_slice(payload);
    let (h, p) = decode_record(&block).unwrap();
    assert!(h.crc_deferred);
    assert_eq!(p, payload);
    // The record CRC is the CRC32C of the whole block: what a copy manager
    // computes over each stream block it writes.
    assert_eq!(h.crc, crc32c::crc32c(&block));
    // A deferred record with a non-zero CRC field is damage.
    block[43] = 1;
    assert!(matches!(
        decode_record(&block),
        Err(FormatError::Invalid { .. })
    ));
    // Flags this build does not know are refused.
    let mut b = hdr.to_vec();
    b[11] = 0x02;
    b.extend_from_slice(payload);
    assert!(decode_record(&b).is_err());
}

#[test]
fn trailer_crc_digest_flag_round_trips_and_sets_frame_flag() {
    let t = SetTrailer {
        crc_digest: true,
        ..trailer()
    };
    let b = t.encode();
    assert_eq!(&b[10..12], &[0, 1]);
    assert_eq!(SetTrailer::decode(&b).unwrap(), t);
    assert_eq!(
        classify(
            &CrcIndex {
                set_id: S,
                first_seq: 0,
                crcs: vec![]
            }
            .encode()
            .unwrap()
        ),
        BlockKind::CrcIndex
    );
}

#[test]
fn trailer_stop_reason_is_byte_81_and_zero_reads_as_not_given() {
    let t = SetTrailer {
        complete: false,
        stop: StopReason::INTERRUPTED,
        ..trailer()
    };
    let b = t.encode();
    assert_eq!(&b[80..88], &[0, 2, 0, 0, 0, 0, 0, 0]);
    assert_eq!(SetTrailer::decode(&b).unwrap(), t);
    // A trailer written before byte 81 was defined has 0 there.
    let old = SetTrailer::decode(&trailer().encode()).unwrap();
    assert_eq!(old.stop, StopReason::NOT_GIVEN);
    assert_eq!(StopReason(9).to_string(), "stop reason 9");
}

// ---- multi-volume sets (format version 2) ----

const V2VOL: Uuid = Uuid::from_u128(0x11111111_2222_4333_8444_555555555555);

/// Part 2 of the set above, on volume 11111111-…, resuming at record
/// 0x80 (payload byte 0x1ffe800, source LBA 0x10004); part 1 is tape
/// file 3 of TAPE01.
const CONTINUATION_HEX: &str = "
    53414e4d434f4e31 0002 0000 0000007c
    5e7e0000000040008000000000000001
    11111111222243338444555555555555
    00000002 0003ffd0
    0000000000000080
    0000000001ffe800
    0000000000010004
    00112233445566778899aabbccddeeff
    00000003 00000000
    0000000065000002
    0006 544150453031
    aa84192a";

fn continuation() -> Continuation {
    Continuation {
        set_id: S,
        volume_id: V2VOL,
        part: 2,
        payload_size: 0x3ffd0,
        first_seq: 0x80,
        offset: 0x1ffe800,
        lba: 0x10004,
        prev_volume: U,
        prev_file: 3,
        created: 0x6500_0002,
        prev_name: "TAPE01".into(),
    }
}

/// The trailer that closes part 1 when the set continues: version 2,
/// 0x80 records so far, complete 0, stop reason 3, part 1 (104 bytes).
const TRAILER_V2_HEX: &str = "
    53414e4d454e4431 0002 0000 00000068
    5e7e0000000040008000000000000001
    0000000000000080
    0000000001ffe800
    ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    00 03 000000000000
    0000000065000002
    00000001
    9a418598";

fn continued_trailer() -> SetTrailer {
    SetTrailer {
        records: 0x80,
        bytes: 0x1ffe800,
        complete: false,
        stop: StopReason::CONTINUES,
        part: 1,
        ..trailer()
    }
}

#[test]
fn continuation_golden() {
    let c = continuation();
    assert_eq!(c.encode(), h(CONTINUATION_HEX));
    assert_eq!(Continuation::decode(&h(CONTINUATION_HEX)).unwrap(), c);
    for n in 0..h(CONTINUATION_HEX).len() {
        assert!(
            Continuation::decode(&h(CONTINUATION_HEX)[..n]).is_err(),
            "{n}"
        );
    }
}

#[test]
fn continued_trailer_golden_is_version_2_with_the_part() {
    let t = continued_trailer();
    assert!(t.is_part());
    assert_eq!(t.encode(), h(TRAILER_V2_HEX));
    assert_eq!(SetTrailer::decode(&h(TRAILER_V2_HEX)).unwrap(), t);
    // The last part's trailer: version 2 too, complete, its part number.
    let last = SetTrailer {
        records: 0x100,
        bytes: 0x3ffd000,
        ended: 0x6500_0003,
        part: 2,
        ..trailer()
    };
    let b = last.encode();
    assert_eq!(&b[8..10], &[0, 2]);
    assert_eq!(&b[96..100], &[0, 0, 0, 2]);
    assert_eq!(SetTrailer::decode(&b).unwrap(), last);
    assert_eq!(
        StopReason::CONTINUES.to_string(),
        "continues on the next volume"
    );
}

#[test]
fn single_volume_sets_keep_the_version_1_bytes() {
    // What this build writes for a set that fits one volume is what
    // version-1 readers read: the version-1 golden bytes, unchanged.
    assert_eq!(trailer().encode(), h(TRAILER_HEX));
    assert_eq!(label().encode(), h(LABEL_HEX));
    assert_eq!(header().encode().unwrap(), h(HEADER_HEX));
    let mut out = Vec::new();
    encode_record(S, 5, b"hello", &mut out);
    assert_eq!(out, h(RECORD_HEX));
}

#[test]
fn version_2_damage_is_a_clear_error() {
    // A version-1 continuation header does not exist.
    let mut b = h(CONTINUATION_HEX);
    b[9] = 1;
    let n = b.len() - 4;
    let crc = crc32c::crc32c(&b[..n]);
    b[n..].copy_from_slice(&crc.to_be_bytes());
    let e = Continuation::decode(&b).unwrap_err();
    assert!(e.to_string().contains("new in version 2"), "{e}");
    // Part 1 cannot be a continuation; part 0 is no part.
    let bad_part = |at: usize, v: u8, d: Decode| {
        let mut b = h(if at == 51 {
            CONTINUATION_HEX
        } else {
            TRAILER_V2_HEX
        });
        b[at] = v;
        let n = b.len() - 4;
        let crc = crc32c::crc32c(&b[..n]);
        b[n..].copy_from_slice(&crc.to_be_bytes());
        d(&b)
    };
    let cont_d: Decode = |b| Continuation::decode(b).map(drop);
    assert!(bad_part(51, 1, cont_d)
        .unwrap_err()
        .to_string()
        .contains("part number 1"));
    assert!(bad_part(99, 0, trailer_d)
        .unwrap_err()
        .to_string()
        .contains("part number 0"));
    // A version-2 trailer cut to the version-1 length.
    let mut short = h(TRAILER_V2_HEX);
    short.truncate(100);
    short[15] = 100;
    let crc = crc32c::crc32c(&short[..96]);
    short[96..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        SetTrailer::decode(&short),
        Err(FormatError::Invalid { .. })
    ));
}

proptest! {
    #[test]
    fn continuation_round_trips(
        set_id in uuid_s(), volume_id in uuid_s(), part in 2u32.., payload_size in any::<u32>(),
        first_seq in any::<u64>(), offset in any::<u64>(), lba in any::<u64>(),
        prev_volume in uuid_s(), prev_file in any::<u32>(), created in any::<u64>(),
        prev_name in "[a-zA-Z0-9]{0,64}",
    ) {
        let c = Continuation {
            set_id, volume_id, part, payload_size, first_seq, offset, lba, prev_volume,
            prev_file, created, prev_name,
        };
        prop_assert_eq!(classify(&c.encode()), BlockKind::Continuation);
        prop_assert_eq!(Continuation::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn part_trailer_round_trips(part in 1u32.., records in any::<u64>(), continues in any::<bool>()) {
        let t = SetTrailer {
            part,
            records,
            complete: !continues,
            stop: if continues { StopReason::CONTINUES } else { StopReason::NOT_GIVEN },
            ..trailer()
        };
        prop_assert_eq!(SetTrailer::decode(&t.encode()).unwrap(), t);
    }
}
