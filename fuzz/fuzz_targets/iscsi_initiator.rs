//! What a target sends the raw initiator: reading a PDU, the sense of a
//! SCSI Response, the ITT a Reject echoes, and the negotiation rules
//! applied to the keys of a login text must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::frontend::text::parse_pairs;
use sanmover::initiator::{read_pdu, rejected_itt, sense_of, sn_fields};
use sanmover::validate::negotiation::{judge_all, USUAL};

fuzz_target!(|data: &[u8]| {
    let mut cursor = std::io::Cursor::new(data);
    if let Ok(p) = read_pdu(&mut cursor, 1 << 16) {
        let _ = sn_fields(&p.header);
        let _ = sense_of(&p.data);
        let _ = rejected_itt(&p.data);
        if let Ok(kv) = parse_pairs(&p.data) {
            let _ = judge_all(USUAL, &kv);
        }
    }
});
