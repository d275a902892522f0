//! VPD page 0x83 from a device: parse must never panic, and what parses
//! must re-emit to bytes that parse to the same designators.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::scsi::spc::DeviceIdentification;
use sanmover::scsi::Wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = DeviceIdentification::parse(data) {
        for d in &p.designators {
            let _ = d.to_string();
        }
        let _ = p.best_lu_designator();
        let again = DeviceIdentification::parse(&p.to_vec()).expect("own page parses");
        assert_eq!(again, p);
    }
});
