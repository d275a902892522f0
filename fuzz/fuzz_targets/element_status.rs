//! READ ELEMENT STATUS data and the SMC CDBs: parse must never panic, and
//! whatever parses re-emits to bytes that parse the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::scsi::smc::{
    DeviceCapabilities, ElementAddressAssignment, ElementStatusData, MoveMedium,
    ReadElementStatus,
};
use sanmover::scsi::spc::ModePageCodec;
use sanmover::scsi::{CdbCodec, Wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = ElementStatusData::parse(data) {
        let again = ElementStatusData::parse(&d.to_vec()).expect("re-emitted data parses");
        assert_eq!(again, d);
    }
    let _ = ReadElementStatus::parse(data);
    let _ = MoveMedium::parse(data);
    let _ = ElementAddressAssignment::parse_data(data);
    let _ = DeviceCapabilities::parse_data(data);
});
