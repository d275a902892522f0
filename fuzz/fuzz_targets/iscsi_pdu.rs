//! iSCSI PDUs from the network: parse must never panic, and whatever
//! parses must re-encode to the same PDU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::target::pdu::Pdu;
use sanmover::target::text;

fuzz_target!(|data: &[u8]| {
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
