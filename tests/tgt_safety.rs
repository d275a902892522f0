//! Data-loss guards on tgt's tape and on a drive of `sanmover vtl`: the
//! bodies are in tests/suites/safety.rs, written once over the tape
//! fixture of tests/common/drive.rs (a private rig per test with a 1 GiB
//! tgt tape, and a library of its own for the VTL).

mod common;
mod suites {
    pub mod safety;
}
use suites::safety;

crate::drive_tests!(
    tgt,
    Tgt,
    safety,
    crate::safety::env,
    [
        a_second_process_on_the_drive_is_refused_or_waits_and_every_set_verifies,
        sigint_and_sigterm_close_the_set_as_interrupted_and_the_next_backup_appends,
        a_partial_range_restores_to_its_own_lba_and_not_over_its_source_without_force,
        catalog_rebuild_asks_before_it_drops_or_changes_sets_and_keeps_unreadable_ones,
        sigint_stops_a_third_party_copy_between_commands_as_interrupted_without_fallback,
    ]
);

crate::drive_tests!(
    vtl,
    Vtl,
    safety,
    crate::safety::env,
    [
        a_second_process_on_the_drive_is_refused_or_waits_and_every_set_verifies,
        sigint_and_sigterm_close_the_set_as_interrupted_and_the_next_backup_appends,
        a_partial_range_restores_to_its_own_lba_and_not_over_its_source_without_force,
        catalog_rebuild_asks_before_it_drops_or_changes_sets_and_keeps_unreadable_ones,
        sigint_stops_a_third_party_copy_between_commands_as_interrupted_without_fallback,
    ]
);
