//! What the in-memory engine tests share: the backup options they run
//! with and a catalog in a temporary directory.

use sanmover::catalog::Catalog;
use sanmover::engine::host::BackupOptions;
use sanmover::engine::set_writer::SetRequest;

/// 64 KiB records, queue depth 4, memory URLs, never stopped.
pub fn backup_options() -> BackupOptions {
    BackupOptions {
        set: SetRequest {
            tape_block: 64 * 1024,
            source_url: "mem://disk".into(),
            tape_url: "mem://tape".into(),
            ..Default::default()
        },
        queue_depth: 4,
        reservation_key: 1,
        keep_reservation: false,
    }
}

/// A fresh catalog; the directory lives as long as the guard.
pub fn temp_catalog() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(&dir.path().join("c.db")).unwrap();
    (dir, c)
}
