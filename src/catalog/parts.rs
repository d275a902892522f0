//! The parts of multi-volume sets (schema V9, FORMAT.md "Multi-volume
//! sets"): where each part is, and, after a rebuild, how the set ended as
//! its parts on tape say.

use rusqlite::{params, Connection};
use uuid::Uuid;

use super::{uuid_col, uuid_text, write_outcome, Catalog, CatalogError, FoundPart, SetOutcome};
use super::{SetPart, SetState, VolumeRow};

/// `ends` of a part whose trailer continues on the next volume.
const CONTINUES: &str = "continues";
/// `ends` of the last part of a set written by a backup: the set's
/// outcome is in its `sets` row.
const LAST: &str = "last";

/// The parts of set `id`, in order (none for a set on one volume).
pub(super) fn of_set(conn: &Connection, id: &str) -> Result<Vec<SetPart>, CatalogError> {
    let mut st = conn.prepare_cached(
        "SELECT p.part, p.volume, v.name, p.file_number, p.first_seq, p.records, p.bytes, \
         p.tape_block FROM set_parts p JOIN volumes v ON v.id = p.volume WHERE p.set_id = ?1 ORDER BY p.part",
    )?;
    let rows = st.query_map([id], |r| {
        Ok(SetPart {
            part: r.get(0)?,
            volume: uuid_col(r, 1)?,
            volume_name: r.get(2)?,
            file_number: r.get(3)?,
            first_seq: r.get(4)?,
            records: r.get(5)?,
            bytes: r.get(6)?,
            tape_block: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn insert(
    tx: &Connection,
    set: Uuid,
    p: &SetPart,
    ends: &str,
    outcome: Option<&SetOutcome>,
) -> Result<(), CatalogError> {
    tx.execute(
        "INSERT OR REPLACE INTO set_parts (set_id, part, volume, file_number, first_seq, \
         records, bytes, ends, digest, ended, error, tape_block) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            uuid_text(set),
            p.part,
            uuid_text(p.volume),
            p.file_number,
            p.first_seq,
            p.records,
            p.bytes,
            ends,
            outcome.and_then(|o| o.digest.clone()),
            outcome.map_or(0, |o| o.ended),
            outcome.and_then(|o| o.error.clone()),
            p.tape_block,
        ],
    )?;
    Ok(())
}

/// Record the parts found on volume `vol` by a rebuild (replacing what the
/// catalog had there), then settle every set with a part there.
pub(super) fn replace_found(
    tx: &Connection,
    vol: &str,
    found: &[FoundPart],
) -> Result<(), CatalogError> {
    let mut touched: Vec<String> = {
        let mut st = tx.prepare("SELECT DISTINCT set_id FROM set_parts WHERE volume = ?1")?;
        let rows = st.query_map([vol], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    tx.execute("DELETE FROM set_parts WHERE volume = ?1", [vol])?;
    for f in found {
        let ends = match &f.outcome {
            None => CONTINUES,
            Some(o) => o.state.as_str(),
        };
        insert(tx, f.set_id, &f.part, ends, f.outcome.as_ref())?;
        touched.push(uuid_text(f.set_id));
    }
    touched.sort();
    touched.dedup();
    for id in &touched {
        settle(tx, id)?;
    }
    Ok(())
}

/// A rebuilt part row: how it ends, its counts, digest, end time, error.
type PartRow = (u32, String, u64, u64, Option<String>, i64, Option<String>);

/// The part rows of set `id`, in part order.
fn part_rows(tx: &Connection, id: &str) -> Result<Vec<PartRow>, CatalogError> {
    let mut st = tx.prepare(
        "SELECT part, ends, records, bytes, digest, ended, error FROM set_parts \
         WHERE set_id = ?1 ORDER BY part",
    )?;
    let rows = st.query_map([id], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Set `id`'s outcome from its parts, when the catalog has its first
/// part's row: the last part's trailer once every part is there, else
/// incomplete, naming the part that is missing.
fn settle(tx: &Connection, id: &str) -> Result<(), CatalogError> {
    let known: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sets WHERE id = ?1 AND state != 'running')",
        [id],
        |r| r.get(0),
    )?;
    if !known {
        return Ok(());
    }
    let parts = part_rows(tx, id)?;
    let Some(last) = parts.last() else {
        return Ok(());
    };
    if last.1 == LAST {
        return Ok(());
    }
    let gap = parts
        .iter()
        .enumerate()
        .find(|(i, p)| p.0 != *i as u32 + 1)
        .map(|(i, _)| i as u32 + 1);
    let (records, bytes) = parts.iter().fold((0, 0), |(r, b), p| (r + p.2, b + p.3));
    let mut outcome = SetOutcome {
        state: SetState::Incomplete,
        records,
        bytes,
        digest: None,
        ended: last.5,
        seconds: 0.0,
        error: None,
    };
    match (gap, last.1.as_str()) {
        (Some(k), _) => {
            outcome.error = Some(format!(
                "part {k} is not in the catalog: rebuild the catalog from its cartridge"
            ))
        }
        (None, CONTINUES) => {
            outcome.error = Some(format!(
                "part {} continues on the next volume, which is not in the catalog: \
                 rebuild the catalog from that cartridge",
                last.0
            ))
        }
        (None, state) => {
            outcome.state = state.parse()?;
            outcome.digest = last.4.clone();
            outcome.error = last.6.clone();
        }
    }
    write_outcome(tx, id, &outcome)
}

impl Catalog {
    /// Record where a multi-volume set written by this process went: its
    /// parts, the first included, and the volumes they are on (labels the
    /// writer read). The set's outcome stays in its own row.
    pub fn record_parts(
        &self,
        set: Uuid,
        parts: &[SetPart],
        volumes: &[VolumeRow],
    ) -> Result<(), CatalogError> {
        if parts.is_empty() {
            return Ok(());
        }
        let tx = self.immediate()?;
        for v in volumes {
            Self::upsert_volume_in(&tx, v)?;
        }
        for (i, p) in parts.iter().enumerate() {
            let ends = if i + 1 == parts.len() {
                LAST
            } else {
                CONTINUES
            };
            insert(&tx, set, p, ends, None)?;
        }
        tx.commit()?;
        Ok(())
    }
}
