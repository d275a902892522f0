//! The catalog: which backup sets exist, on which volume and tape file, and
//! how they ended. One SQLite file (WAL mode, so a `list` can read while a
//! backup writes).
//!
//! The tape is the truth and the catalog an index of it: `replace_volume_sets`
//! lets a rebuild scan of a volume replace what the catalog says about it.
//! A set becomes `complete` only through [`Catalog::finish_set`] with
//! [`SetState::Complete`] (or such a rebuild), never by default.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rusqlite::types::Type;
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::scsi::{BlockCount, BlockSize, Lba};

mod devices;
mod diff;
mod parts;
mod retention;
mod schema;
mod server;
mod snapshots;
#[cfg(test)]
mod tests;

pub use diff::{diff_volume, FieldChange, SetBrief, SetChange, VolumeDiff};
pub use schema::SCHEMA_VERSION;
pub use snapshots::{SnapshotJobRow, SnapshotState};

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Shortest set-id prefix `Catalog::set` accepts.
const MIN_PREFIX: usize = 4;

/// Errors from the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error("{0}")]
    Invalid(String),
    /// Not a set UUID nor a prefix of one.
    #[error("{0}")]
    BadSetId(String),
    /// The change is refused as asked (a running set cannot be expired or
    /// forgotten); nothing changed.
    #[error("{0}")]
    Refused(String),
}

/// Where a backup set stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetState {
    /// Being written now (or its process died: see [`Catalog::reap_stale`]).
    Running,
    /// Trailer written: every record of the set is on tape.
    Complete,
    /// Stopped by an error.
    Failed,
    /// On tape without a trailer (found by a rebuild scan), or cut short.
    Incomplete,
    /// Stopped by SIGINT or SIGTERM: closed with a trailer marked
    /// incomplete, its bytes counted (schema V4).
    Interrupted,
}

impl SetState {
    pub const ALL: [SetState; 5] = [
        SetState::Running,
        SetState::Complete,
        SetState::Failed,
        SetState::Incomplete,
        SetState::Interrupted,
    ];

    /// The lowercase name stored in the catalog and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            SetState::Running => "running",
            SetState::Complete => "complete",
            SetState::Failed => "failed",
            SetState::Incomplete => "incomplete",
            SetState::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for SetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SetState {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SetState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                CatalogError::Invalid(format!(
                    "unknown set state '{s}' (expected running, complete, failed, incomplete \
                     or interrupted)"
                ))
            })
    }
}

/// A tape volume known to the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRow {
    pub id: Uuid,
    pub name: String,
    /// Unix seconds.
    pub created: i64,
    /// Tape file number of the last set written, if any.
    pub last_file: Option<u32>,
}

/// What a set is: what `begin_set` records before it is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetInfo {
    pub id: Uuid,
    pub volume: Uuid,
    pub file_number: u32,
    pub mode: String,
    pub label: String,
    pub source_url: String,
    pub source_designator: String,
    pub lba: Lba,
    pub blocks: BlockCount,
    pub block_size: BlockSize,
    pub payload_size: u32,
    /// Unix seconds.
    pub started: i64,
    /// The set's digest algorithm (`sha256`, `blake3`).
    pub digest_algorithm: String,
    /// The drive's logical block address of the set header (READ
    /// POSITION at the start of the set's file), when the drive's
    /// positions are trusted; restore and verify LOCATE there (schema V8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tape_block: Option<u64>,
}

/// How a set ended, for `finish_set` (state `running`, zero counts and no
/// digest until then).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetOutcome {
    pub state: SetState,
    pub records: u64,
    pub bytes: u64,
    /// Lowercase hex of the set's digest (its trailer's), once it ended.
    pub digest: Option<String>,
    /// Unix seconds.
    pub ended: i64,
    pub seconds: f64,
    pub error: Option<String>,
}

/// A disk extent a set covers: its first block and its length.
pub type Extent = (Lba, BlockCount);

/// One backup set as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetRow {
    #[serde(flatten)]
    pub info: SetInfo,
    #[serde(flatten)]
    pub outcome: SetOutcome,
    /// Name of the volume, from the volumes table.
    pub volume_name: String,
    /// Disk extents `(lba, blocks)` the set covers, in order.
    pub extents: Vec<Extent>,
    /// When `catalog expire` marked the set expired (unix seconds); absent
    /// while it is kept (schema V6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<i64>,
    /// A multi-volume set's parts in order, the first included (schema
    /// V9); empty for a set on one volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<SetPart>,
}

/// One part of a multi-volume set: which volume and tape file it is on,
/// and which records it holds (FORMAT.md "Multi-volume sets").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPart {
    /// From 1.
    pub part: u32,
    pub volume: Uuid,
    /// The volume's label name (its cartridge).
    pub volume_name: String,
    pub file_number: u32,
    /// Sequence number of the part's first record.
    pub first_seq: u64,
    /// Records and payload bytes in this part.
    pub records: u64,
    pub bytes: u64,
    /// The drive's logical block address of the part's first block (set
    /// header or continuation header) where the drive's positions are
    /// trusted (schema V10); restore and verify LOCATE there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tape_block: Option<u64>,
}

/// A part as a rebuild found it: where it is, and how its trailer ends
/// it (`None`: it continues on the next volume). The last part's outcome
/// becomes the set's once every part before it is in the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundPart {
    pub set_id: Uuid,
    pub part: SetPart,
    pub outcome: Option<SetOutcome>,
}

/// An open catalog database.
#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    host: String,
}

/// The catalog path from the values of `$SANMOVER_CATALOG`,
/// `$XDG_DATA_HOME` and `$HOME` (pass `None` for unset). Empty values count
/// as unset, and so does a relative `XDG_DATA_HOME` (the XDG base directory
/// spec says to ignore it). With none of them, `sanmover-catalog.db` in the
/// current directory.
pub fn default_path_from(
    sanmover_catalog: Option<OsString>,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    let set = |v: Option<OsString>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(p) = set(sanmover_catalog) {
        return p;
    }
    if let Some(p) = set(xdg_data_home).filter(|p| p.is_absolute()) {
        return p.join("sanmover").join("catalog.db");
    }
    if let Some(p) = set(home) {
        return p.join(".local/share/sanmover/catalog.db");
    }
    PathBuf::from("sanmover-catalog.db")
}

/// This host's name, as recorded with running sets.
fn hostname() -> String {
    if let Ok(h) = nix::unistd::gethostname() {
        let h = h.to_string_lossy().trim().to_string();
        if !h.is_empty() {
            return h;
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether a process with this pid exists on this host. Signal 0 checks
/// without sending anything: ESRCH means gone, EPERM means it exists but
/// belongs to someone else. Anything unclear counts as alive, so a set is
/// never reaped on a guess.
fn pid_alive(pid: i64) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    // kill(0) and kill(-n) address process groups, not one process.
    let Ok(raw) = i32::try_from(pid) else {
        return true;
    };
    if raw <= 0 {
        return true;
    }
    !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// The catalog holds device URLs and job options: create it, and find its
/// WAL and shared-memory files, readable by the owner only (mode 0600).
/// SQLite gives the `-wal` and `-shm` files it creates the database file's
/// mode, so creating the database 0600 covers them; files left looser by an
/// older version are tightened.
fn private_files(path: &Path) -> Result<(), CatalogError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    Ok(())
}

/// Puts the database in WAL mode (a setting stored in the file, so usually
/// already done). Switching needs an exclusive lock and SQLite answers BUSY
/// at once, without the busy handler, while another connection holds any
/// lock (two processes opening a new catalog together): retry up to the
/// busy timeout.
fn use_wal(conn: &Connection, path: &Path) -> Result<(), CatalogError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let attempt = conn
            .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(mode)
                } else {
                    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                }
            });
        match attempt {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(CatalogError::Invalid(format!(
                    "{}: cannot switch the catalog to WAL mode (journal mode is {mode})",
                    path.display()
                )))
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A UUID from a text column.
fn uuid_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let s: String = row.get(idx)?;
    Uuid::parse_str(&s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn state_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<SetState> {
    let s: String = row.get(idx)?;
    s.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// Canonical text form of a UUID in the database.
fn uuid_text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// Columns read by `set_from_row`, with `s` = sets and `v` = volumes.
const SET_COLUMNS: &str = "s.id, s.volume, s.file_number, s.mode, s.label, s.source_url, \
     s.source_designator, s.lba, s.blocks, s.block_size, s.payload_size, s.started, s.state, \
     s.records, s.bytes, s.digest, s.ended, s.seconds, s.error, v.name, s.digest_algorithm, \
     s.expired, s.tape_block";

fn set_from_row(row: &Row<'_>) -> rusqlite::Result<SetRow> {
    Ok(SetRow {
        info: SetInfo {
            id: uuid_col(row, 0)?,
            volume: uuid_col(row, 1)?,
            file_number: row.get(2)?,
            mode: row.get(3)?,
            label: row.get(4)?,
            source_url: row.get(5)?,
            source_designator: row.get(6)?,
            lba: Lba(row.get(7)?),
            blocks: BlockCount(row.get(8)?),
            block_size: BlockSize(row.get(9)?),
            payload_size: row.get(10)?,
            started: row.get(11)?,
            digest_algorithm: row.get(20)?,
            tape_block: row.get(22)?,
        },
        outcome: SetOutcome {
            state: state_col(row, 12)?,
            records: row.get(13)?,
            bytes: row.get(14)?,
            digest: row.get(15)?,
            ended: row.get(16)?,
            seconds: row.get(17)?,
            error: row.get(18)?,
        },
        volume_name: row.get(19)?,
        extents: Vec::new(),
        expired: row.get(21)?,
        parts: Vec::new(),
    })
}

/// Insert `set` as `running` with its extents (one, the set's range,
/// unless given). `owner` is this host's name when this process writes the
/// set (its pid and host let a later run reap it); a rebuilt set has none.
fn insert_set(
    tx: &Connection,
    set: &SetInfo,
    owner: Option<&str>,
    extents: Option<&[Extent]>,
) -> Result<(), CatalogError> {
    let id = uuid_text(set.id);
    tx.execute(
        "INSERT INTO sets (id, volume, state, file_number, mode, label, source_url, \
         source_designator, lba, blocks, block_size, payload_size, started, pid, host, \
         digest_algorithm, tape_block) \
         VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         ?16)",
        params![
            id,
            uuid_text(set.volume),
            set.file_number,
            set.mode,
            set.label,
            set.source_url,
            set.source_designator,
            set.lba.0,
            set.blocks.0,
            set.block_size.0,
            set.payload_size,
            set.started,
            owner.map(|_| std::process::id()),
            owner,
            set.digest_algorithm,
            set.tape_block,
        ],
    )?;
    let whole = [(set.lba, set.blocks)];
    for (seq, (lba, blocks)) in extents.unwrap_or(&whole).iter().enumerate() {
        tx.execute(
            "INSERT INTO set_extents (set_id, seq, lba, blocks) VALUES (?1, ?2, ?3, ?4)",
            params![id, seq as i64, lba.0, blocks.0],
        )?;
    }
    Ok(())
}

/// Record how set `id` ended.
fn write_outcome(tx: &Connection, id: &str, outcome: &SetOutcome) -> Result<(), CatalogError> {
    tx.execute(
        "UPDATE sets SET state = ?2, records = ?3, bytes = ?4, digest = ?5, ended = ?6, \
         seconds = ?7, error = ?8 WHERE id = ?1",
        params![
            id,
            outcome.state.as_str(),
            outcome.records,
            outcome.bytes,
            outcome.digest,
            outcome.ended,
            outcome.seconds,
            outcome.error,
        ],
    )?;
    Ok(())
}

fn volume_from_row(row: &Row<'_>) -> rusqlite::Result<VolumeRow> {
    Ok(VolumeRow {
        id: uuid_col(row, 0)?,
        name: row.get(1)?,
        created: row.get(2)?,
        last_file: row.get(3)?,
    })
}

/// Sets found on volume `vol` by a rebuild: each must name that volume
/// and have ended.
fn check_rebuilt(vol: Uuid, sets: &[SetRow]) -> Result<(), CatalogError> {
    for s in sets {
        if s.info.volume != vol {
            return Err(CatalogError::Invalid(format!(
                "set {} belongs to volume {}, not {}",
                s.info.id,
                s.info.volume,
                uuid_text(vol)
            )));
        }
        if s.outcome.state == SetState::Running {
            return Err(CatalogError::Invalid(format!(
                "set {}: a rebuilt set cannot be running",
                s.info.id
            )));
        }
    }
    Ok(())
}

/// One line per candidate in an "ambiguous" message.
fn describe(s: &SetRow) -> String {
    let label = if s.info.label.is_empty() {
        String::new()
    } else {
        format!(" '{}'", s.info.label)
    };
    format!(
        "{} ({}, volume {} file {}{label})",
        s.info.id, s.outcome.state, s.volume_name, s.info.file_number
    )
}

impl Catalog {
    /// `$SANMOVER_CATALOG`, else `$XDG_DATA_HOME/sanmover/catalog.db`, else
    /// `~/.local/share/sanmover/catalog.db` (see [`default_path_from`]).
    pub fn default_path() -> PathBuf {
        default_path_from(
            std::env::var_os("SANMOVER_CATALOG"),
            std::env::var_os("XDG_DATA_HOME"),
            std::env::var_os("HOME"),
        )
    }

    /// Opens (creating if needed) the catalog at `path`: parent directories,
    /// schema up to [`SCHEMA_VERSION`], WAL journal, 5 s busy timeout,
    /// foreign keys on.
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| CatalogError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        private_files(path)?;
        let conn = Connection::open(path)?;
        // Before anything that takes a lock, so a second process waits.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        use_wal(&conn, path)?;
        schema::migrate(&conn)?;
        Ok(Catalog {
            conn,
            path: path.to_path_buf(),
            host: hostname(),
        })
    }

    /// The file this catalog was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host name recorded with sets this process begins.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn immediate(&self) -> Result<Transaction<'_>, CatalogError> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// Marks `failed` every `running` set begun on this host by a process
    /// that no longer exists, and returns them (after the change). Sets
    /// begun on other hosts are left alone: their pids mean nothing here.
    pub fn reap_stale(&self) -> Result<Vec<SetRow>, CatalogError> {
        let tx = self.immediate()?;
        let candidates: Vec<(String, i64)> = {
            let mut st = tx.prepare(
                "SELECT id, pid FROM sets WHERE state = 'running' AND host = ?1 \
                 AND pid IS NOT NULL",
            )?;
            let rows = st.query_map([&self.host], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut reaped = Vec::new();
        for (id, pid) in candidates {
            if pid_alive(pid) {
                continue;
            }
            tx.execute(
                "UPDATE sets SET state = 'failed', error = ?2 WHERE id = ?1 AND state = 'running'",
                params![
                    id,
                    format!("the process that ran it (pid {pid}) exited before finishing")
                ],
            )?;
            reaped.push(id);
        }
        let mut rows = Vec::with_capacity(reaped.len());
        for id in &reaped {
            rows.push(Self::load_one(&tx, id)?);
        }
        tx.commit()?;
        Ok(rows)
    }

    /// A set on volume `vol` that another live process on this host is
    /// writing now: its id and pid. Sets begun on other hosts are not
    /// looked at (their pids mean nothing here), nor this process's own.
    pub fn live_writer(&self, vol: Uuid) -> Result<Option<(Uuid, i64)>, CatalogError> {
        let mut st = self.conn.prepare(
            "SELECT id, pid FROM sets WHERE volume = ?1 AND state = 'running' AND host = ?2 \
             AND pid IS NOT NULL ORDER BY started",
        )?;
        let rows = st.query_map(params![uuid_text(vol), self.host], |r| {
            Ok((uuid_col(r, 0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (id, pid) = row?;
            if pid != i64::from(std::process::id()) && pid_alive(pid) {
                return Ok(Some((id, pid)));
            }
        }
        Ok(None)
    }

    /// Adds a volume or updates its name, creation time and last file.
    pub fn upsert_volume(&self, vol: &VolumeRow) -> Result<(), CatalogError> {
        Self::upsert_volume_in(&self.conn, vol)
    }

    fn upsert_volume_in(conn: &Connection, vol: &VolumeRow) -> Result<(), CatalogError> {
        conn.execute(
            "INSERT INTO volumes (id, name, created, last_file) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, created = excluded.created, \
             last_file = excluded.last_file",
            params![uuid_text(vol.id), vol.name, vol.created, vol.last_file],
        )?;
        Ok(())
    }

    /// The volume with this id, if the catalog knows it.
    pub fn volume(&self, id: Uuid) -> Result<Option<VolumeRow>, CatalogError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, created, last_file FROM volumes WHERE id = ?1",
                [uuid_text(id)],
                volume_from_row,
            )
            .optional()?)
    }

    /// All volumes, oldest first.
    pub fn volumes(&self) -> Result<Vec<VolumeRow>, CatalogError> {
        let mut st = self.conn.prepare(
            "SELECT id, name, created, last_file FROM volumes ORDER BY created, name, id",
        )?;
        let rows = st.query_map([], volume_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a set about to be written: state `running`, this process's
    /// pid and host, one extent `(lba, blocks)`. The volume must already be
    /// in the catalog.
    pub fn begin_set(&self, set: &SetInfo) -> Result<(), CatalogError> {
        let tx = self.immediate()?;
        let id = uuid_text(set.id);
        let vol = uuid_text(set.volume);
        let known: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM volumes WHERE id = ?1)",
            [&vol],
            |r| r.get(0),
        )?;
        if !known {
            return Err(CatalogError::NotFound(format!(
                "volume {vol} is not in the catalog (record the volume before its sets)"
            )));
        }
        if let Some(state) = tx
            .query_row("SELECT state FROM sets WHERE id = ?1", [&id], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
        {
            return Err(CatalogError::Invalid(format!(
                "set {id} is already in the catalog ({state})"
            )));
        }
        insert_set(&tx, set, Some(&self.host), None)?;
        tx.commit()?;
        Ok(())
    }

    /// Records how a running set ended. `outcome.state` must not be
    /// `Running`, and the set must still be `running` (a set reaped as
    /// failed, or already finished, is not finished again).
    pub fn finish_set(&self, id: Uuid, outcome: &SetOutcome) -> Result<(), CatalogError> {
        if outcome.state == SetState::Running {
            return Err(CatalogError::Invalid(format!(
                "set {id}: a set cannot be finished as running"
            )));
        }
        let tx = self.immediate()?;
        let idt = uuid_text(id);
        let current = tx
            .query_row("SELECT state FROM sets WHERE id = ?1", [&idt], |r| {
                state_col(r, 0)
            })
            .optional()?;
        match current {
            None => {
                return Err(CatalogError::NotFound(format!(
                    "no set {idt} in the catalog"
                )))
            }
            Some(SetState::Running) => {}
            Some(other) => {
                return Err(CatalogError::Invalid(format!(
                    "set {idt} is already {other}; only a running set can be finished"
                )))
            }
        }
        write_outcome(&tx, &idt, outcome)?;
        tx.commit()?;
        Ok(())
    }

    fn extents(conn: &Connection, id: &str) -> Result<Vec<Extent>, CatalogError> {
        let mut st = conn
            .prepare_cached("SELECT lba, blocks FROM set_extents WHERE set_id = ?1 ORDER BY seq")?;
        let rows = st.query_map([id], |r| Ok((Lba(r.get(0)?), BlockCount(r.get(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets matching `filter` (an SQL condition over `s`/`v`, with `args`),
    /// in start order, with their extents.
    fn query_sets(
        conn: &Connection,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<SetRow>, CatalogError> {
        let sql = format!(
            "SELECT {SET_COLUMNS} FROM sets s JOIN volumes v ON v.id = s.volume \
             WHERE {filter} ORDER BY s.started, v.name, s.file_number, s.id"
        );
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(args, set_from_row)?;
        let mut sets: Vec<SetRow> = rows.collect::<Result<_, _>>()?;
        // One pass over the extents of all matching sets, not one query each.
        let esql = format!(
            "SELECT e.set_id, e.lba, e.blocks FROM set_extents e \
             JOIN sets s ON s.id = e.set_id JOIN volumes v ON v.id = s.volume \
             WHERE {filter} ORDER BY e.set_id, e.seq"
        );
        let mut est = conn.prepare(&esql)?;
        let mut by_set: HashMap<String, Vec<Extent>> = HashMap::new();
        let erows = est.query_map(args, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })?;
        for e in erows {
            let (id, lba, blocks) = e?;
            by_set
                .entry(id)
                .or_default()
                .push((Lba(lba), BlockCount(blocks)));
        }
        for s in &mut sets {
            let id = uuid_text(s.info.id);
            s.extents = by_set.remove(&id).unwrap_or_default();
            s.parts = parts::of_set(conn, &id)?;
        }
        Ok(sets)
    }

    fn load_one(conn: &Connection, id: &str) -> Result<SetRow, CatalogError> {
        let sql = format!(
            "SELECT {SET_COLUMNS} FROM sets s JOIN volumes v ON v.id = s.volume WHERE s.id = ?1"
        );
        let mut row = conn
            .query_row(&sql, [id], set_from_row)
            .optional()?
            .ok_or_else(|| CatalogError::NotFound(format!("no set {id} in the catalog")))?;
        row.extents = Self::extents(conn, id)?;
        row.parts = parts::of_set(conn, id)?;
        Ok(row)
    }

    /// All sets, in start order.
    pub fn sets(&self) -> Result<Vec<SetRow>, CatalogError> {
        Self::query_sets(&self.conn, "1", &[])
    }

    /// The sets on one volume, in start order.
    pub fn sets_on_volume(&self, vol: Uuid) -> Result<Vec<SetRow>, CatalogError> {
        Self::query_sets(&self.conn, "s.volume = ?1", &[&uuid_text(vol)])
    }

    /// One set by full UUID (any form `Uuid::parse_str` takes) or by a
    /// prefix of at least 4 hex digits (hyphens optional) that matches
    /// exactly one set.
    pub fn set(&self, id_or_prefix: &str) -> Result<SetRow, CatalogError> {
        let given = id_or_prefix.trim();
        if let Ok(id) = Uuid::parse_str(given) {
            return Self::load_one(&self.conn, &uuid_text(id));
        }
        let digits: String = given
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CatalogError::BadSetId(format!(
                "'{given}' is not a set id: give a set UUID or at least {MIN_PREFIX} of its \
                 leading hex digits"
            )));
        }
        if digits.len() < MIN_PREFIX {
            return Err(CatalogError::BadSetId(format!(
                "set id prefix '{given}' is too short: give at least {MIN_PREFIX} hex digits"
            )));
        }
        let matches = Self::query_sets(
            &self.conn,
            "substr(replace(s.id, '-', ''), 1, ?1) = ?2",
            &[&(digits.len() as i64), &digits],
        )?;
        match matches.len() {
            0 => Err(CatalogError::NotFound(format!(
                "no set in the catalog has an id starting with '{given}'"
            ))),
            1 => Ok(matches.into_iter().next().expect("one match")),
            n => {
                const SHOWN: usize = 10;
                let mut msg = format!("set id prefix '{given}' matches {n} sets:");
                for s in matches.iter().take(SHOWN) {
                    msg.push_str("\n  ");
                    msg.push_str(&describe(s));
                }
                if n > SHOWN {
                    msg.push_str(&format!("\n  ... and {} more", n - SHOWN));
                }
                msg.push_str("\ngive more digits of the id");
                Err(CatalogError::Ambiguous(msg))
            }
        }
    }

    /// Catalog rebuild: in one transaction, records `vol` and replaces every
    /// set the catalog has for it with `sets` (as scanned from the tape).
    /// Other volumes' sets are untouched. Refused while a set on the volume
    /// is `running` (reap stale sets first), if a set names another volume,
    /// is `running` itself, or is already recorded on a different volume.
    pub fn replace_volume_sets(
        &self,
        vol: &VolumeRow,
        sets: &[SetRow],
    ) -> Result<(), CatalogError> {
        self.replace_volume_sets_keeping(vol, sets, &[])
    }

    /// [`Catalog::replace_volume_sets`], keeping the catalog's sets in the
    /// tape files `keep_files` (files the scan could not read: what the
    /// catalog knows of them is all there is) unless `sets` has them.
    pub fn replace_volume_sets_keeping(
        &self,
        vol: &VolumeRow,
        sets: &[SetRow],
        keep_files: &[u32],
    ) -> Result<(), CatalogError> {
        self.replace_volume(vol, sets, keep_files, &[])
    }

    /// [`Catalog::replace_volume_sets_keeping`], also replacing the parts
    /// of multi-volume sets on the volume with `found`; a set with a part
    /// here is then settled from all its parts in the catalog (its last
    /// part's trailer once every part has been rebuilt).
    pub fn replace_volume(
        &self,
        vol: &VolumeRow,
        sets: &[SetRow],
        keep_files: &[u32],
        found: &[FoundPart],
    ) -> Result<(), CatalogError> {
        let vol_id = uuid_text(vol.id);
        check_rebuilt(vol.id, sets)?;
        let tx = self.immediate()?;
        let running: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT id || ' (pid ' || coalesce(pid, '?') || ' on ' || coalesce(host, '?') || ')' \
                 FROM sets WHERE volume = ?1 AND state = 'running' ORDER BY started",
            )?;
            let rows = st.query_map([&vol_id], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if !running.is_empty() {
            return Err(CatalogError::Invalid(format!(
                "volume {} ({vol_id}) has running sets: {}; wait for them or reap stale sets \
                 before rebuilding",
                vol.name,
                running.join(", ")
            )));
        }
        Self::upsert_volume_in(&tx, vol)?;
        // The tape does not know about retention: a set found again keeps
        // the expiry the catalog had for it.
        let expired = retention::expiries(&tx, &vol_id)?;
        let scanned: std::collections::HashSet<String> =
            sets.iter().map(|s| uuid_text(s.info.id)).collect();
        let doomed: Vec<String> = {
            let mut st = tx.prepare("SELECT id, file_number FROM sets WHERE volume = ?1")?;
            let rows = st.query_map([&vol_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let all: Vec<(String, u32)> = rows.collect::<Result<_, _>>()?;
            all.into_iter()
                .filter(|(id, file)| scanned.contains(id) || !keep_files.contains(file))
                .map(|(id, _)| id)
                .collect()
        };
        for id in &doomed {
            tx.execute("DELETE FROM set_extents WHERE set_id = ?1", [id])?;
            tx.execute("DELETE FROM sets WHERE id = ?1", [id])?;
        }
        for s in sets {
            let id = uuid_text(s.info.id);
            let elsewhere: Option<String> = tx
                .query_row("SELECT volume FROM sets WHERE id = ?1", [&id], |r| r.get(0))
                .optional()?;
            if let Some(other) = elsewhere {
                let msg = if other == vol_id {
                    format!("set {id} is listed twice for volume {vol_id}")
                } else {
                    format!("set {id} is already recorded on volume {other}")
                };
                return Err(CatalogError::Invalid(msg));
            }
            insert_set(&tx, &s.info, None, Some(&s.extents))?;
            write_outcome(&tx, &id, &s.outcome)?;
            if let Some(at) = s.expired.or(expired.get(&id).copied()) {
                retention::mark_expired(&tx, &id, at)?;
            }
        }
        parts::replace_found(&tx, &vol_id, found)?;
        tx.commit()?;
        Ok(())
    }
}
