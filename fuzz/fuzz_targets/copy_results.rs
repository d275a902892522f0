//! RECEIVE COPY RESULTS data and COPY ABORTED sense from a device: no
//! parser may panic, and what parses must re-emit to bytes that parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::scsi::xcopy::{
    CopyAborted, CopyStatus, FailedSegmentDetails, OperatingParameters, ReceiveData,
};
use sanmover::scsi::Wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = OperatingParameters::parse(data) {
        let _ = p.is_complete();
        let _ = p.data_segment_granularity_bytes();
        let again = OperatingParameters::parse(&p.to_vec()).expect("own data parses");
        assert_eq!(again.implemented, p.implemented);
    }
    if let Ok(s) = CopyStatus::parse(data) {
        let _ = s.transfer_bytes();
        assert_eq!(CopyStatus::parse(&s.to_vec()).expect("own data parses"), s);
    }
    if let Ok(r) = ReceiveData::parse(data) {
        assert_eq!(
            ReceiveData::parse(&r.to_vec()).expect("own data parses").data,
            r.data
        );
    }
    if let Ok(f) = FailedSegmentDetails::parse(data) {
        let again = FailedSegmentDetails::parse(&f.to_vec()).expect("own data parses");
        assert_eq!(again.failed.map(|x| x.sense), f.failed.map(|x| x.sense));
    }
    let _ = CopyAborted::from_sense_bytes(data);
});
