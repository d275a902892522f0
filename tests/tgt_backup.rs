//! Host-driven backup, restore, verify and catalog rebuild, on tgt's tape
//! and on a drive of `sanmover vtl`: the bodies are in
//! tests/suites/backup.rs, written once over the tape fixture of
//! tests/common/drive.rs. Each test has a private rig (its own tgtd, for
//! the disks and tgt's tape) and, on the VTL, a library of its own; some
//! kill the tape's target or edit its cartridge image. The TCMU tape in
//! LIO runs the same bodies in tests/lio_tape_suites.rs.

mod common;
mod suites {
    pub mod backup;
}
use suites::backup;

crate::drive_tests!(
    tgt,
    Tgt,
    backup,
    [
        two_sets_back_up_verify_restore_and_rebuild,
        a_corrupt_record_fails_verify_and_restore_and_the_other_set_restores,
        a_target_killed_mid_backup_leaves_a_failed_set_and_the_earlier_set_restores,
        foreign_label_is_refused_unless_forced,
        tape_like_mt_and_label_states,
        verify_compare_target_proves_a_restore_without_the_original,
        block_sizes_are_checked_against_the_drive,
        catalog_lists_shows_expires_and_forgets_without_touching_the_tape,
        the_third_set_restores_by_locate_where_positions_are_trusted,
    ]
);

crate::drive_tests!(
    vtl,
    Vtl,
    backup,
    [
        two_sets_back_up_verify_restore_and_rebuild,
        a_corrupt_record_fails_verify_and_restore_and_the_other_set_restores,
        a_target_killed_mid_backup_leaves_a_failed_set_and_the_earlier_set_restores,
        foreign_label_is_refused_unless_forced,
        tape_like_mt_and_label_states,
        verify_compare_target_proves_a_restore_without_the_original,
        block_sizes_are_checked_against_the_drive,
        catalog_lists_shows_expires_and_forgets_without_touching_the_tape,
        the_third_set_restores_by_locate_where_positions_are_trusted,
    ]
);
