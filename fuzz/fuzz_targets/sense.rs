//! Sense data from a device: parse must never panic, and whatever parses
//! must survive display and re-encoding in both formats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::scsi::sense::Sense;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Sense::parse(data) {
        let _ = s.to_string();
        let _ = s.information_i32();
        let _ = s.is_eod();
        let fixed = Sense::parse(&s.to_fixed()).expect("own fixed sense parses");
        assert_eq!(fixed.key, s.key);
        assert_eq!(fixed.asc, s.asc);
        let desc = Sense::parse(&s.to_descriptor()).expect("own descriptor sense parses");
        assert_eq!(desc.key, s.key);
        assert_eq!(desc.asc, s.asc);
        assert_eq!(desc.information, s.information);
    }
});
