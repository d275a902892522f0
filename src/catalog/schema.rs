//! Catalog schema and its migrations.
//!
//! The schema version lives in SQLite's `PRAGMA user_version` (0 for a new,
//! empty file). `MIGRATIONS[i]` takes a database from version `i` to `i + 1`;
//! a new schema version is a new entry at the end, never an edit of an old
//! one, so every catalog ever written can still be brought up to date.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::CatalogError;

/// Version 1: volumes, backup sets and the disk extents each set covers.
///
/// Timestamps are unix seconds, UUIDs hyphenated lowercase text. `ended`
/// and `seconds` stay 0 until a set is finished; `pid` and `host` say which
/// process ran the set, so a `running` set whose process died can be told
/// from one still in progress.
const V1: &str = "
CREATE TABLE volumes (
    id        TEXT PRIMARY KEY NOT NULL,
    name      TEXT NOT NULL,
    created   INTEGER NOT NULL,
    last_file INTEGER
);

CREATE TABLE sets (
    id                TEXT PRIMARY KEY NOT NULL,
    volume            TEXT NOT NULL REFERENCES volumes(id),
    state             TEXT NOT NULL
                      CHECK (state IN ('running', 'complete', 'failed', 'incomplete')),
    file_number       INTEGER NOT NULL,
    mode              TEXT NOT NULL,
    label             TEXT NOT NULL,
    source_url        TEXT NOT NULL,
    source_designator TEXT NOT NULL,
    lba               INTEGER NOT NULL,
    blocks            INTEGER NOT NULL,
    block_size        INTEGER NOT NULL,
    payload_size      INTEGER NOT NULL,
    records           INTEGER NOT NULL DEFAULT 0,
    bytes             INTEGER NOT NULL DEFAULT 0,
    sha256            TEXT,
    started           INTEGER NOT NULL,
    ended             INTEGER NOT NULL DEFAULT 0,
    seconds           REAL NOT NULL DEFAULT 0,
    error             TEXT,
    pid               INTEGER,
    host              TEXT
);
CREATE INDEX sets_by_volume ON sets(volume, file_number);
CREATE INDEX sets_by_started ON sets(started);
CREATE INDEX sets_by_state ON sets(state);

CREATE TABLE set_extents (
    set_id TEXT NOT NULL REFERENCES sets(id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    lba    INTEGER NOT NULL,
    blocks INTEGER NOT NULL,
    PRIMARY KEY (set_id, seq)
);
";

/// Version 2: where each volume was last seen (a device address without
/// secrets), so restore and verify can find the tape without --tape.
const V2: &str = "
ALTER TABLE volumes ADD COLUMN device TEXT;
";

/// Version 3: snapshot jobs of serverless backups and their lifecycle
/// (PENDING -> CREATED -> MAPPED -> BACKED_UP -> RELEASED, or FAILED with
/// a reason). `job`, `snapshot` and `mapped` are the provider's JSON, kept
/// so `snapshots cleanup` can rebuild the provider calls after a crash;
/// `released` says the snapshot is gone (unmapped and deleted), which a
/// FAILED job may or may not be.
const V3: &str = "
CREATE TABLE snapshot_jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('PENDING', 'CREATED', 'MAPPED', 'BACKED_UP',
                                     'RELEASED', 'FAILED')),
    provider        TEXT NOT NULL,
    source_url      TEXT NOT NULL,
    job             TEXT NOT NULL,
    snapshot        TEXT,
    mapped          TEXT,
    set_id          TEXT,
    reason          TEXT,
    released        INTEGER NOT NULL DEFAULT 0,
    quiesce_seconds REAL,
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL,
    pid             INTEGER,
    host            TEXT
);
CREATE INDEX snapshot_jobs_by_created ON snapshot_jobs(created);
";

/// Version 4: a set state `interrupted` (SIGINT or SIGTERM closed the set
/// with a trailer marked incomplete). SQLite cannot change a CHECK
/// constraint in place, so `sets` is rebuilt (the documented "make other
/// kinds of table schema changes" procedure: new table, copy, drop,
/// rename) with every row and column kept; its indexes go with the old
/// table and are made again. [`migrate`] turns foreign keys off around it,
/// or dropping the old table would cascade into `set_extents`.
const V4: &str = "
CREATE TABLE sets_v4 (
    id                TEXT PRIMARY KEY NOT NULL,
    volume            TEXT NOT NULL REFERENCES volumes(id),
    state             TEXT NOT NULL
                      CHECK (state IN ('running', 'complete', 'failed', 'incomplete',
                                       'interrupted')),
    file_number       INTEGER NOT NULL,
    mode              TEXT NOT NULL,
    label             TEXT NOT NULL,
    source_url        TEXT NOT NULL,
    source_designator TEXT NOT NULL,
    lba               INTEGER NOT NULL,
    blocks            INTEGER NOT NULL,
    block_size        INTEGER NOT NULL,
    payload_size      INTEGER NOT NULL,
    records           INTEGER NOT NULL DEFAULT 0,
    bytes             INTEGER NOT NULL DEFAULT 0,
    sha256            TEXT,
    started           INTEGER NOT NULL,
    ended             INTEGER NOT NULL DEFAULT 0,
    seconds           REAL NOT NULL DEFAULT 0,
    error             TEXT,
    pid               INTEGER,
    host              TEXT
);
INSERT INTO sets_v4 (id, volume, state, file_number, mode, label, source_url,
    source_designator, lba, blocks, block_size, payload_size, records, bytes, sha256,
    started, ended, seconds, error, pid, host)
SELECT id, volume, state, file_number, mode, label, source_url,
    source_designator, lba, blocks, block_size, payload_size, records, bytes, sha256,
    started, ended, seconds, error, pid, host FROM sets;
DROP TABLE sets;
ALTER TABLE sets_v4 RENAME TO sets;
CREATE INDEX sets_by_volume ON sets(volume, file_number);
CREATE INDEX sets_by_started ON sets(started);
CREATE INDEX sets_by_state ON sets(state);
";

/// Version 5: a set's digest may be SHA-256 or BLAKE3 (FORMAT.md, set
/// header digest field), so `sha256` becomes `digest` and the algorithm is
/// kept beside it. Every set recorded before was SHA-256.
const V5: &str = "
ALTER TABLE sets RENAME COLUMN sha256 TO digest;
ALTER TABLE sets ADD COLUMN digest_algorithm TEXT NOT NULL DEFAULT 'sha256';
";

/// Version 6: retention. `expired` is when `catalog expire` marked the set
/// expired (unix seconds), NULL while it is kept. The tape is not touched:
/// an expired set still restores and verifies; it no longer counts as a
/// kept copy of its source, and a volume whose sets are all expired may be
/// relabelled.
const V6: &str = "
ALTER TABLE sets ADD COLUMN expired INTEGER;
";

/// Version 7: the backup server's state (`sanmover server`), so it
/// survives a restart. `server_cartridges`: each barcoded cartridge's home
/// slot, pool (`scratch`, `open:NAME`, `full:NAME`, `retired`) and volume.
/// `server_leases`: every lease (its `want` as JSON), with the serial of
/// its drive, so a restart maps it to the same drive however `--drive` is
/// ordered. `server_fences`: drives kept from everyone after an expired
/// lease, until an operator releases them. `server_events`: the event log.
const V7: &str = "
CREATE TABLE server_cartridges (
    barcode TEXT PRIMARY KEY NOT NULL,
    home    INTEGER NOT NULL,
    pool    TEXT NOT NULL,
    volume  TEXT,
    note    TEXT
);
CREATE TABLE server_leases (
    id           INTEGER PRIMARY KEY NOT NULL,
    host         TEXT NOT NULL,
    drive_serial TEXT NOT NULL,
    barcode      TEXT NOT NULL,
    want         TEXT NOT NULL,
    state        TEXT NOT NULL
                 CHECK (state IN ('preparing', 'active', 'released', 'expired', 'failed')),
    granted      INTEGER NOT NULL,
    expires      INTEGER NOT NULL,
    set_id       TEXT,
    error        TEXT
);
CREATE INDEX server_leases_by_state ON server_leases(state);
CREATE TABLE server_fences (
    drive_serial TEXT PRIMARY KEY NOT NULL,
    lease        INTEGER NOT NULL,
    host         TEXT NOT NULL,
    since        INTEGER NOT NULL
);
CREATE TABLE server_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    lease   INTEGER,
    host    TEXT,
    drive   INTEGER,
    barcode TEXT,
    detail  TEXT NOT NULL
);
";

/// Version 8: where a set begins on its tape, as the drive's logical
/// block address (READ POSITION, SSC-4 7.7) of the set header, when the
/// drive's positions can be trusted; NULL otherwise (tgt) and for every
/// set recorded before. Restore and verify LOCATE there instead of
/// REWIND + SPACE.
const V8: &str = "
ALTER TABLE sets ADD COLUMN tape_block INTEGER;
";

/// `MIGRATIONS[i]` upgrades schema version `i` to `i + 1`.
/// Version 9, multi-volume sets (format version 2): where each part of a set is.
/// No reference to `sets`: a rebuild may read a later part's cartridge
/// before the first part's, and the parts are joined by set id.
/// `ends`: `continues` (the part's trailer continues on the next
/// volume), `last` (the set's outcome is in `sets`), or, for a last part
/// found by a rebuild, the set state its trailer gives.
const V9: &str = "
CREATE TABLE set_parts (
    set_id      TEXT NOT NULL,
    part        INTEGER NOT NULL CHECK (part >= 1),
    volume      TEXT NOT NULL REFERENCES volumes(id),
    file_number INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    ends        TEXT NOT NULL,
    digest      TEXT,
    ended       INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    PRIMARY KEY (set_id, part)
);
CREATE INDEX set_parts_by_volume ON set_parts(volume, file_number);
";

/// Version 10: where each part of a multi-volume set begins on its tape,
/// as for a whole set in V8 (NULL where the drive's positions are not
/// trusted, and for every part recorded before).
const V10: &str = "
ALTER TABLE set_parts ADD COLUMN tape_block INTEGER;
";

pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to [`SCHEMA_VERSION`]; returns the version found
/// before. Runs in one IMMEDIATE transaction, so two processes opening a new
/// catalog at once do not both create the tables: the second waits (busy
/// timeout), then sees the version the first one wrote.
pub fn migrate(conn: &Connection) -> Result<u32, CatalogError> {
    // Table rebuilds (V4) need foreign keys off, and the pragma is a no-op
    // inside a transaction: set it before, check the keys by hand inside,
    // and put the caller's setting back after.
    let fk: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let r = migrate_in(conn);
    conn.pragma_update(None, "foreign_keys", fk)?;
    r
}

fn migrate_in(conn: &Connection) -> Result<u32, CatalogError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(CatalogError::Invalid(format!(
            "catalog schema version {found} is newer than this sanmover understands \
             ({SCHEMA_VERSION}); use a newer sanmover"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", from + 1))?;
    }
    let broken: Option<String> = tx
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()?;
    if let Some(table) = broken {
        return Err(CatalogError::Invalid(format!(
            "catalog migration left a dangling reference in table {table}; nothing was changed"
        )));
    }
    tx.commit()?;
    Ok(found)
}
