//! The backup server's tables (schema V7): cartridges and pools, leases,
//! fenced drives and the event log. The server writes them after every
//! change and reads them back on start.

use rusqlite::{params, OptionalExtension, Row};
use uuid::Uuid;

use super::{insert_set, uuid_text, Catalog, CatalogError, SetInfo};
use crate::server::events::{Event, EventKind};
use crate::server::state::{Cartridge, Fence, Lease, LeaseState, Pool, Want};

fn bad(what: &str, v: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("{what}: {v:?}").into(),
    )
}

fn opt_uuid(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|_| bad("uuid", &s)))
        .transpose()
}

fn lease_state_text(s: LeaseState) -> &'static str {
    match s {
        LeaseState::Preparing => "preparing",
        LeaseState::Active => "active",
        LeaseState::Released => "released",
        LeaseState::Expired => "expired",
        LeaseState::Failed => "failed",
    }
}

fn lease_state(s: &str) -> rusqlite::Result<LeaseState> {
    Ok(match s {
        "preparing" => LeaseState::Preparing,
        "active" => LeaseState::Active,
        "released" => LeaseState::Released,
        "expired" => LeaseState::Expired,
        "failed" => LeaseState::Failed,
        _ => return Err(bad("lease state", s)),
    })
}

/// A lease as stored, with the serial of its drive (the index is
/// resolved by the server against its `--drive` list).
#[derive(Debug, Clone)]
pub struct StoredLease {
    pub lease: Lease,
    pub drive_serial: String,
}

fn lease_from_row(row: &Row<'_>) -> rusqlite::Result<StoredLease> {
    let want: String = row.get(4)?;
    let state: String = row.get(5)?;
    Ok(StoredLease {
        lease: Lease {
            id: row.get::<_, i64>(0)? as u64,
            host: row.get(1)?,
            drive: 0,
            barcode: row.get(3)?,
            want: serde_json::from_str::<Want>(&want).map_err(|_| bad("lease want", &want))?,
            state: lease_state(&state)?,
            granted: row.get::<_, i64>(6)? as u64,
            expires: row.get::<_, i64>(7)? as u64,
            set: opt_uuid(row, 8)?,
            error: row.get(9)?,
        },
        drive_serial: row.get(2)?,
    })
}

impl Catalog {
    /// Every cartridge the server knows.
    pub fn server_cartridges(&self) -> Result<Vec<Cartridge>, CatalogError> {
        let mut st = self.conn.prepare(
            "SELECT barcode, home, pool, volume, note FROM server_cartridges ORDER BY barcode",
        )?;
        let rows = st.query_map([], |r| {
            let pool: String = r.get(2)?;
            Ok(Cartridge {
                barcode: r.get(0)?,
                home: r.get(1)?,
                pool: Pool::from_text(&pool).ok_or_else(|| bad("pool", &pool))?,
                volume: opt_uuid(r, 3)?,
                note: r.get(4)?,
                missing: false,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record a cartridge (insert or replace).
    pub fn upsert_cartridge(&self, c: &Cartridge) -> Result<(), CatalogError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO server_cartridges (barcode, home, pool, volume, note) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                c.barcode,
                c.home,
                c.pool.text(),
                c.volume.map(uuid_text),
                c.note
            ],
        )?;
        Ok(())
    }

    /// Record a lease (insert or replace); `drive_serial` names its drive.
    pub fn upsert_lease(&self, l: &Lease, drive_serial: &str) -> Result<(), CatalogError> {
        let want =
            serde_json::to_string(&l.want).map_err(|e| CatalogError::Invalid(e.to_string()))?;
        self.conn.execute(
            "INSERT OR REPLACE INTO server_leases (id, host, drive_serial, barcode, want, state, \
             granted, expires, set_id, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                l.id as i64,
                l.host,
                drive_serial,
                l.barcode,
                want,
                lease_state_text(l.state),
                l.granted as i64,
                l.expires as i64,
                l.set.map(uuid_text),
                l.error
            ],
        )?;
        Ok(())
    }

    /// Leases still preparing or active (outstanding at a restart).
    pub fn outstanding_leases(&self) -> Result<Vec<StoredLease>, CatalogError> {
        let mut st = self.conn.prepare(
            "SELECT id, host, drive_serial, barcode, want, state, granted, expires, set_id, error \
             FROM server_leases WHERE state IN ('preparing', 'active') ORDER BY id",
        )?;
        let rows = st.query_map([], lease_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The highest lease id ever given (0 for none).
    pub fn last_lease(&self) -> Result<u64, CatalogError> {
        let n: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM server_leases", [], |r| r.get(0))?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// Fenced drives by serial.
    pub fn server_fences(&self) -> Result<Vec<(String, Fence)>, CatalogError> {
        let mut st = self
            .conn
            .prepare("SELECT drive_serial, lease, host, since FROM server_fences")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                Fence {
                    lease: r.get::<_, i64>(1)? as u64,
                    host: r.get(2)?,
                    since: r.get::<_, i64>(3)? as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Fence the drive with `serial`, or lift its fence with `None`.
    pub fn set_fence(&self, serial: &str, fence: Option<&Fence>) -> Result<(), CatalogError> {
        match fence {
            Some(f) => self.conn.execute(
                "INSERT OR REPLACE INTO server_fences (drive_serial, lease, host, since) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![serial, f.lease as i64, f.host, f.since as i64],
            )?,
            None => self.conn.execute(
                "DELETE FROM server_fences WHERE drive_serial = ?1",
                [serial],
            )?,
        };
        Ok(())
    }

    /// Append to the event log.
    pub fn append_events(&self, events: &[Event]) -> Result<(), CatalogError> {
        let tx = self.immediate()?;
        for e in events {
            tx.execute(
                "INSERT INTO server_events (at, kind, lease, host, drive, barcode, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.at as i64,
                    e.kind.as_str(),
                    e.lease.map(|l| l as i64),
                    e.host,
                    e.drive.map(|d| d as i64),
                    e.barcode,
                    e.detail
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The whole event log, oldest first.
    pub fn server_events(&self) -> Result<Vec<Event>, CatalogError> {
        let mut st = self.conn.prepare(
            "SELECT at, kind, lease, host, drive, barcode, detail FROM server_events ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| {
            let kind: String = r.get(1)?;
            Ok(Event {
                at: r.get::<_, i64>(0)? as u64,
                kind: EventKind::parse(&kind).ok_or_else(|| bad("event kind", &kind))?,
                lease: r.get::<_, Option<i64>>(2)?.map(|l| l as u64),
                host: r.get(3)?,
                drive: r.get::<_, Option<i64>>(4)?.map(|d| d as usize),
                barcode: r.get(5)?,
                detail: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Open a set written by another host (`host`, no pid: a restart of
    /// this process does not reap it), unless it is already there.
    pub fn begin_remote_set(&self, set: &SetInfo, host: &str) -> Result<bool, CatalogError> {
        let tx = self.immediate()?;
        let id = uuid_text(set.id);
        let known = tx
            .query_row("SELECT 1 FROM sets WHERE id = ?1", [&id], |_| Ok(()))
            .optional()?
            .is_some();
        if known {
            return Ok(false);
        }
        insert_set(&tx, set, None, None)?;
        tx.execute("UPDATE sets SET host = ?2 WHERE id = ?1", params![id, host])?;
        tx.commit()?;
        Ok(true)
    }
}
