//! Third-party Copy VPD page (0x8F): parse must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::scsi::xcopy::ThirdPartyCopyVpd;

fuzz_target!(|data: &[u8]| {
    let _ = ThirdPartyCopyVpd::parse(data);
});
