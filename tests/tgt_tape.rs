//! Tape control on tgt's SSC emulation and on a drive of `sanmover vtl`:
//! the bodies are in tests/suites/tape.rs, written once over the tape
//! fixture of tests/common/drive.rs (a private rig per test, and a
//! library of its own for the VTL).

mod common;
mod suites {
    pub mod tape;
}
use suites::tape;

crate::drive_tests!(
    tgt,
    Tgt,
    tape,
    [
        write_filemarks_rewind_fsf_and_read_back_exactly,
        cli_tape_control_with_decoded_filemark_and_eod,
    ]
);

crate::drive_tests!(
    vtl,
    Vtl,
    tape,
    [
        write_filemarks_rewind_fsf_and_read_back_exactly,
        cli_tape_control_with_decoded_filemark_and_eod,
    ]
);
