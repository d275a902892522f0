//! REPORT LUNS data: parse must never panic, and a parsed list re-emits
//! to one that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::scsi::spc::LunList;
use sanmover::scsi::Wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = LunList::parse(data) {
        for lun in &l.luns {
            let _ = lun.index();
        }
        let again = LunList::parse(&l.to_vec()).expect("own list parses");
        assert_eq!(again.luns, l.luns);
    }
});
