//! Retention: expiring a set and forgetting it. Neither touches the tape.
//!
//! An expired set (schema V6) is still on its tape and still restores and
//! verifies; it no longer counts as a kept copy of its source, and a volume
//! whose sets are all expired (or failed) may be relabelled. Forgetting a
//! set removes its row and extents; the tape still holds the set, and
//! `catalog rebuild` finds it again.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::{state_col, uuid_text, Catalog, CatalogError, SetState};

impl Catalog {
    /// Marks set `id` expired at `at` (unix seconds) and returns the
    /// expiry now recorded: a set already expired keeps its first date.
    /// A running set is refused.
    pub fn expire_set(&self, id: Uuid, at: i64) -> Result<i64, CatalogError> {
        let tx = self.immediate()?;
        let idt = uuid_text(id);
        let (state, expired) = state_and_expiry(&tx, &idt)?;
        refuse_running(&idt, state, "expired")?;
        if let Some(first) = expired {
            return Ok(first);
        }
        mark_expired(&tx, &idt, at)?;
        tx.commit()?;
        Ok(at)
    }

    /// Removes set `id` and its extents from the catalog. A running set
    /// is refused.
    pub fn forget_set(&self, id: Uuid) -> Result<(), CatalogError> {
        let tx = self.immediate()?;
        let idt = uuid_text(id);
        let (state, _) = state_and_expiry(&tx, &idt)?;
        refuse_running(&idt, state, "forgotten")?;
        tx.execute("DELETE FROM set_extents WHERE set_id = ?1", [&idt])?;
        tx.execute("DELETE FROM set_parts WHERE set_id = ?1", [&idt])?;
        tx.execute("DELETE FROM sets WHERE id = ?1", [&idt])?;
        tx.commit()?;
        Ok(())
    }
}

fn state_and_expiry(conn: &Connection, id: &str) -> Result<(SetState, Option<i64>), CatalogError> {
    conn.query_row("SELECT state, expired FROM sets WHERE id = ?1", [id], |r| {
        Ok((state_col(r, 0)?, r.get(1)?))
    })
    .optional()?
    .ok_or_else(|| CatalogError::NotFound(format!("no set {id} in the catalog")))
}

fn refuse_running(id: &str, state: SetState, what: &str) -> Result<(), CatalogError> {
    if state == SetState::Running {
        return Err(CatalogError::Refused(format!(
            "set {id} is being written (running); it cannot be {what} until it ends"
        )));
    }
    Ok(())
}

/// Record that set `id` expired at `at`.
pub(super) fn mark_expired(conn: &Connection, id: &str, at: i64) -> Result<(), CatalogError> {
    conn.execute(
        "UPDATE sets SET expired = ?2 WHERE id = ?1",
        params![id, at],
    )?;
    Ok(())
}

/// The expiry of every expired set on volume `vol` (its id as text).
pub(super) fn expiries(conn: &Connection, vol: &str) -> Result<HashMap<String, i64>, CatalogError> {
    let mut st =
        conn.prepare("SELECT id, expired FROM sets WHERE volume = ?1 AND expired IS NOT NULL")?;
    let rows = st.query_map([vol], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
