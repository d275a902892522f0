//! An EXTENDED COPY(LID1) parameter list from an initiator (the copy
//! manager side): parse must never panic, and what parses must re-emit to
//! bytes that parse to the same list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::scsi::xcopy::XcopyParams;
use sanmover::scsi::Wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = XcopyParams::parse(data) {
        let _ = p.check();
        for s in &p.segments {
            let _ = s.segment_type().to_string();
            let _ = s.cscd_indexes();
        }
        let again = XcopyParams::parse(&p.to_vec()).expect("own list parses");
        assert_eq!(again, p);
    }
});
