//! Blocks read from tape: every format decoder and `classify` on the same
//! bytes must never panic, and what decodes must re-encode to bytes that
//! decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::format::{
    check_record, classify, decode_record, encode_record, SetHeader, SetTrailer, VolumeLabel,
};
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let _ = VolumeLabel::looks_like(data);
    if let Ok(l) = VolumeLabel::decode(data) {
        assert_eq!(VolumeLabel::decode(&l.encode()).expect("own label"), l);
    }
    if let Ok(h) = SetHeader::decode(data) {
        let again = h.encode().expect("a decoded header fits");
        assert_eq!(SetHeader::decode(&again).expect("own header"), h);
    }
    if let Ok(t) = SetTrailer::decode(data) {
        assert_eq!(SetTrailer::decode(&t.encode()).expect("own trailer"), t);
    }
    if let Ok((h, payload)) = decode_record(data) {
        assert_eq!(payload.len(), h.payload_len as usize);
        // Reserved bytes are not kept, so compare fields, not bytes.
        let mut out = Vec::new();
        encode_record(h.set_id, h.seq, payload, &mut out);
        let (h2, p2) = decode_record(&out).expect("own record");
        assert_eq!((h2.set_id, h2.seq, h2.payload_len), (h.set_id, h.seq, h.payload_len));
        assert_eq!(p2, payload);
        assert_eq!(check_record(data, h.set_id, h.seq).expect("same record").1, payload);
    }
    let _ = check_record(data, Uuid::nil(), 0);
});
