//! Snapshot jobs of serverless backups (schema V3): each state change is
//! one committed row update, so a crash at any point leaves a row that
//! says what exists and how to release it.
//!
//! The catalog does not know the provider types (a lower layer); it keeps
//! their JSON as `serde_json::Value`.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{pid_alive, uuid_col, uuid_text, Catalog, CatalogError};

/// Where a snapshot job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SnapshotState {
    /// Recorded; the provider has not made the snapshot yet (or did
    /// without answering: cleanup still calls delete).
    Pending,
    /// The snapshot exists.
    Created,
    /// It is exported to the backup server.
    Mapped,
    /// The set is on tape; unmap and delete follow.
    BackedUp,
    /// Unmapped and deleted.
    Released,
    /// Stopped with a reason; `released` says whether the snapshot is gone.
    Failed,
}

impl SnapshotState {
    pub const ALL: [SnapshotState; 6] = [
        SnapshotState::Pending,
        SnapshotState::Created,
        SnapshotState::Mapped,
        SnapshotState::BackedUp,
        SnapshotState::Released,
        SnapshotState::Failed,
    ];

    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Pending => "PENDING",
            SnapshotState::Created => "CREATED",
            SnapshotState::Mapped => "MAPPED",
            SnapshotState::BackedUp => "BACKED_UP",
            SnapshotState::Released => "RELEASED",
            SnapshotState::Failed => "FAILED",
        }
    }
}

impl fmt::Display for SnapshotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnapshotState {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SnapshotState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| CatalogError::Invalid(format!("unknown snapshot job state '{s}'")))
    }
}

/// One snapshot job as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SnapshotJobRow {
    /// The job id (also `job.job_id`).
    pub id: Uuid,
    pub state: SnapshotState,
    /// The `--snapshot` spec the provider is rebuilt from.
    pub provider: String,
    pub source_url: String,
    /// The provider's `SnapshotJob`.
    pub job: serde_json::Value,
    /// What create() answered.
    pub snapshot: Option<serde_json::Value>,
    /// What map() answered.
    pub mapped: Option<serde_json::Value>,
    /// The backup set written from the snapshot.
    pub set_id: Option<Uuid>,
    /// Why it failed (FAILED), or what a release left behind.
    pub reason: Option<String>,
    /// Unmapped and deleted.
    pub released: bool,
    /// How long the application was quiesced, when it was.
    pub quiesce_seconds: Option<f64>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of the last state change.
    pub updated: i64,
    /// The process that runs (ran) the job, and its host.
    pub pid: Option<i64>,
    pub host: Option<String>,
}

impl SnapshotJobRow {
    /// True if the process that runs this job is still alive (on this
    /// host): cleanup must leave such a job alone.
    pub fn in_progress(&self, this_host: &str) -> bool {
        let active = !matches!(self.state, SnapshotState::Released | SnapshotState::Failed);
        active
            && match (self.pid, self.host.as_deref()) {
                (Some(pid), Some(h)) if h == this_host => {
                    pid != i64::from(std::process::id()) && pid_alive(pid)
                }
                // Another host's job: its pid means nothing here; assume
                // it is running unless it is finished.
                (Some(_), Some(_)) => true,
                _ => false,
            }
    }
}

const COLUMNS: &str = "id, state, provider, source_url, job, snapshot, mapped, set_id, reason, \
     released, quiesce_seconds, created, updated, pid, host";

fn json_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| {
        serde_json::from_str(&s)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
    })
    .transpose()
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<SnapshotJobRow> {
    let state: String = row.get(1)?;
    let state = state
        .parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, Type::Text, Box::new(e)))?;
    let set_id: Option<String> = row.get(7)?;
    let set_id = set_id
        .map(|s| {
            Uuid::parse_str(&s)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(7, Type::Text, Box::new(e)))
        })
        .transpose()?;
    Ok(SnapshotJobRow {
        id: uuid_col(row, 0)?,
        state,
        provider: row.get(2)?,
        source_url: row.get(3)?,
        job: json_col(row, 4)?.unwrap_or(serde_json::Value::Null),
        snapshot: json_col(row, 5)?,
        mapped: json_col(row, 6)?,
        set_id,
        reason: row.get(8)?,
        released: row.get(9)?,
        quiesce_seconds: row.get(10)?,
        created: row.get(11)?,
        updated: row.get(12)?,
        pid: row.get(13)?,
        host: row.get(14)?,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Catalog {
    /// Records a new job as PENDING, owned by this process.
    pub fn begin_snapshot_job(
        &self,
        id: Uuid,
        provider: &str,
        source_url: &str,
        job: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        let t = now();
        self.conn.execute(
            "INSERT INTO snapshot_jobs (id, state, provider, source_url, job, created, updated, \
             pid, host) VALUES (?1, 'PENDING', ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
            params![
                uuid_text(id),
                provider,
                source_url,
                job.to_string(),
                t,
                std::process::id(),
                self.host
            ],
        )?;
        Ok(())
    }

    fn update_job(
        &self,
        id: Uuid,
        sql_set: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<(), CatalogError> {
        let sql = format!(
            "UPDATE snapshot_jobs SET {sql_set}, updated = {} WHERE id = '{}'",
            now(),
            uuid_text(id)
        );
        let n = self.conn.execute(&sql, args)?;
        if n == 0 {
            return Err(CatalogError::NotFound(format!(
                "no snapshot job {id} in the catalog"
            )));
        }
        Ok(())
    }

    /// CREATED, with what the provider made.
    pub fn snapshot_created(
        &self,
        id: Uuid,
        snapshot: &serde_json::Value,
        quiesce_seconds: Option<f64>,
    ) -> Result<(), CatalogError> {
        self.update_job(
            id,
            "state = 'CREATED', snapshot = ?1, quiesce_seconds = ?2",
            &[&snapshot.to_string(), &quiesce_seconds],
        )
    }

    /// MAPPED, with where it is exported.
    pub fn snapshot_mapped(
        &self,
        id: Uuid,
        mapped: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        self.update_job(id, "state = 'MAPPED', mapped = ?1", &[&mapped.to_string()])
    }

    /// BACKED_UP into `set`.
    pub fn snapshot_backed_up(&self, id: Uuid, set: Uuid) -> Result<(), CatalogError> {
        self.update_job(id, "state = 'BACKED_UP', set_id = ?1", &[&uuid_text(set)])
    }

    /// RELEASED: unmapped and deleted after a good backup.
    pub fn snapshot_released(&self, id: Uuid) -> Result<(), CatalogError> {
        self.update_job(id, "state = 'RELEASED', released = 1", &[])
    }

    /// FAILED with `reason`; `released` says whether the snapshot is gone.
    pub fn snapshot_failed(
        &self,
        id: Uuid,
        reason: &str,
        released: bool,
    ) -> Result<(), CatalogError> {
        self.update_job(
            id,
            "state = 'FAILED', reason = ?1, released = ?2",
            &[&reason, &released],
        )
    }

    /// After a cleanup: the snapshot is gone. A job that had not finished
    /// becomes FAILED with `reason`; a BACKED_UP one becomes RELEASED.
    pub fn snapshot_cleaned(&self, id: Uuid, reason: &str) -> Result<(), CatalogError> {
        self.update_job(
            id,
            "state = CASE state WHEN 'BACKED_UP' THEN 'RELEASED' WHEN 'RELEASED' THEN 'RELEASED' \
             ELSE 'FAILED' END, \
             reason = CASE state WHEN 'BACKED_UP' THEN reason WHEN 'RELEASED' THEN reason \
             WHEN 'FAILED' THEN coalesce(reason, ?1) ELSE ?1 END, released = 1",
            &[&reason],
        )
    }

    /// Every job, oldest first.
    pub fn snapshot_jobs(&self) -> Result<Vec<SnapshotJobRow>, CatalogError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM snapshot_jobs ORDER BY created, rowid"
        ))?;
        let rows = st.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One job by id.
    pub fn snapshot_job(&self, id: Uuid) -> Result<SnapshotJobRow, CatalogError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM snapshot_jobs WHERE id = ?1"),
                [uuid_text(id)],
                from_row,
            )
            .optional()?
            .ok_or_else(|| CatalogError::NotFound(format!("no snapshot job {id} in the catalog")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> (tempfile::TempDir, Catalog) {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(&d.path().join("c.db")).unwrap();
        (d, c)
    }

    #[test]
    fn lifecycle_is_persisted() {
        let (_d, c) = cat();
        let id = Uuid::new_v4();
        let job = serde_json::json!({"job_id": id, "initiator": "iqn.x"});
        c.begin_snapshot_job(id, "tgt:control=1", "iscsi://h/iqn/1", &job)
            .unwrap();
        assert_eq!(c.snapshot_job(id).unwrap().state, SnapshotState::Pending);
        c.snapshot_created(id, &serde_json::json!({"handle": "h"}), Some(0.5))
            .unwrap();
        c.snapshot_mapped(id, &serde_json::json!({"url": "u"}))
            .unwrap();
        let set = Uuid::new_v4();
        c.snapshot_backed_up(id, set).unwrap();
        c.snapshot_released(id).unwrap();
        let r = c.snapshot_job(id).unwrap();
        assert_eq!(r.state, SnapshotState::Released);
        assert!(r.released);
        assert_eq!(r.set_id, Some(set));
        assert_eq!(r.quiesce_seconds, Some(0.5));
        assert_eq!(r.job, job);
        assert_eq!(r.snapshot.as_ref().unwrap()["handle"], "h");
        assert_eq!(r.mapped.as_ref().unwrap()["url"], "u");
        assert!(!r.in_progress(c.host()));
        assert_eq!(c.snapshot_jobs().unwrap().len(), 1);
    }

    #[test]
    fn failure_and_cleanup() {
        let (_d, c) = cat();
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let e = Uuid::new_v4();
        for id in [a, b, e] {
            c.begin_snapshot_job(id, "tgt", "u", &serde_json::json!({}))
                .unwrap();
        }
        c.snapshot_failed(a, "map: refused", false).unwrap();
        c.snapshot_cleaned(a, "cleanup").unwrap();
        let r = c.snapshot_job(a).unwrap();
        assert_eq!(r.state, SnapshotState::Failed);
        assert_eq!(r.reason.as_deref(), Some("map: refused"));
        assert!(r.released);

        c.snapshot_created(b, &serde_json::json!({}), None).unwrap();
        c.snapshot_cleaned(b, "process died in CREATED").unwrap();
        let r = c.snapshot_job(b).unwrap();
        assert_eq!(r.state, SnapshotState::Failed);
        assert_eq!(r.reason.as_deref(), Some("process died in CREATED"));

        c.snapshot_backed_up(e, Uuid::new_v4()).unwrap();
        c.snapshot_cleaned(e, "x").unwrap();
        assert_eq!(c.snapshot_job(e).unwrap().state, SnapshotState::Released);
        assert!(c.snapshot_job(Uuid::new_v4()).is_err());
        assert!(c.snapshot_released(Uuid::new_v4()).is_err());
    }

    #[test]
    fn a_job_of_a_live_process_is_in_progress() {
        let (_d, c) = cat();
        let id = Uuid::new_v4();
        c.begin_snapshot_job(id, "tgt", "u", &serde_json::json!({}))
            .unwrap();
        // Our own job is never "in progress" for our own cleanup...
        assert!(!c.snapshot_job(id).unwrap().in_progress(c.host()));
        // ...another live process's is (pid 1 always exists)...
        c.conn
            .execute("UPDATE snapshot_jobs SET pid = 1", [])
            .unwrap();
        assert!(c.snapshot_job(id).unwrap().in_progress(c.host()));
        // ...unless it is finished, or the pid is gone.
        c.conn
            .execute("UPDATE snapshot_jobs SET pid = 2147483600", [])
            .unwrap();
        assert!(!c.snapshot_job(id).unwrap().in_progress(c.host()));
        c.conn
            .execute("UPDATE snapshot_jobs SET pid = 1, host = 'elsewhere'", [])
            .unwrap();
        assert!(c.snapshot_job(id).unwrap().in_progress(c.host()));
        c.snapshot_failed(id, "x", true).unwrap();
        assert!(!c.snapshot_job(id).unwrap().in_progress(c.host()));
    }

    #[test]
    fn states_round_trip() {
        for s in SnapshotState::ALL {
            assert_eq!(s.as_str().parse::<SnapshotState>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert!("nope".parse::<SnapshotState>().is_err());
    }
}
