//! iSCSI PDUs from the network: parse must never panic, and whatever
//! parses must re-encode to the same PDU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::target::pdu::{Pdu, BHS_LEN};
use sanmover::target::text;

fuzz_target!(|data: &[u8]| {
    // The reader's owned decoding agrees with the borrowed one.
    if data.len() >= BHS_LEN {
        let mut bhs = [0u8; BHS_LEN];
        bhs.copy_from_slice(&data[..BHS_LEN]);
        let rest = &data[BHS_LEN..];
        assert_eq!(
            Pdu::from_owned(&bhs, rest.to_vec(), 1 << 16),
            Pdu::from_parts(&bhs, rest, 1 << 16)
        );
    }
    let mut rest = data;
    while let Ok((pdu, used)) = Pdu::parse(rest, 1 << 16) {
        let wire = pdu.emit();
        assert_eq!(wire.len(), pdu.buffer_len());
        let (back, n) = Pdu::parse(&wire, 1 << 16).expect("own PDU parses");
        assert_eq!(n, wire.len());
        assert_eq!(back, pdu);
        let _ = text::parse_pairs(&pdu.data);
        rest = &rest[used..];
    }
});
