//! The backup suite of tests/suites/backup.rs on a tape of `sanmover
//! tcmu` in the LIO guest (test-rig/lio): host-driven backups from LIO
//! disk LUNs onto the TCMU drive, verify, byte-identical restores, a
//! rebuilt catalog equal to the live one, and restore by LOCATE to the
//! block address recorded at backup; and the tape-control bodies of
//! tests/suites/tape.rs (module `tcmu_tape`). Each test takes a drive of its own
//! (a blank cartridge) and they run one at a time (the guest has one CPU).
//! The bodies that kill the tape's target or edit its image run on tgt
//! and the VTL only (tests/tgt_backup.rs); tests/lio_tcmu.rs kills the
//! guest's handler itself.

mod common;
mod suites {
    pub mod backup;
    pub mod tape;
}
use suites::{backup, tape};

crate::drive_tests!(
    tcmu,
    Tcmu,
    backup,
    [
        two_sets_back_up_verify_restore_and_rebuild,
        foreign_label_is_refused_unless_forced,
        verify_compare_target_proves_a_restore_without_the_original,
        block_sizes_are_checked_against_the_drive,
        the_third_set_restores_by_locate_where_positions_are_trusted,
    ]
);

crate::drive_tests!(
    tcmu_tape,
    Tcmu,
    tape,
    [
        write_filemarks_rewind_fsf_and_read_back_exactly,
        cli_tape_control_with_decoded_filemark_and_eod,
    ]
);
