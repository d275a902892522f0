//! READ POSITION data in every form: parse must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::scsi::ssc::{Position, ReadPositionForm};

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let form = ReadPositionForm(form % 9);
    if let Ok(p) = Position::parse(form, rest) {
        let _ = p.to_string();
        let _ = p.emit();
    }
});
