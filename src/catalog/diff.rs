//! What a catalog rebuild would change: the sets the catalog knows on a
//! volume against the sets a tape scan found, so a rebuild that would
//! drop or change known sets can show it and ask for `--force`.

use serde::Serialize;
use uuid::Uuid;

use super::{SetRow, SetState};

/// One set, as a diff line shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetBrief {
    pub id: Uuid,
    pub file_number: u32,
    pub state: SetState,
    pub bytes: u64,
}

impl From<&SetRow> for SetBrief {
    fn from(s: &SetRow) -> Self {
        SetBrief {
            id: s.info.id,
            file_number: s.info.file_number,
            state: s.outcome.state,
            bytes: s.outcome.bytes,
        }
    }
}

/// One field of a set that the tape and the catalog disagree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub catalog: String,
    pub tape: String,
}

/// A known set the scan found with other values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetChange {
    pub id: Uuid,
    pub file_number: u32,
    pub fields: Vec<FieldChange>,
}

/// The difference between the catalog and a scan of one volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolumeDiff {
    /// On the tape, not in the catalog: a rebuild adds them.
    pub added: Vec<SetBrief>,
    /// In the catalog, not on the tape: a rebuild deletes them.
    pub dropped: Vec<SetBrief>,
    /// In both, with other values: a rebuild takes the tape's.
    pub changed: Vec<SetChange>,
    /// In the catalog, in a tape file the scan could not read: kept as
    /// they are, whatever the rebuild does.
    pub kept_unreadable: Vec<SetBrief>,
}

impl VolumeDiff {
    /// A rebuild would lose or alter what the catalog knows.
    pub fn needs_force(&self) -> bool {
        !self.dropped.is_empty() || !self.changed.is_empty()
    }

    /// Human-readable lines, one per set.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let line = |t: &mut String, tag: &str, s: &SetBrief, more: &str| {
            t.push_str(&format!(
                "  {tag} file {:>3}  {}  {:<11}  {} bytes{more}\n",
                s.file_number,
                s.id,
                s.state.as_str(),
                s.bytes
            ));
        };
        for s in &self.dropped {
            line(&mut t, "-", s, "  (not on the tape: would be deleted)");
        }
        for c in &self.changed {
            t.push_str(&format!("  ~ file {:>3}  {}\n", c.file_number, c.id));
            for f in &c.fields {
                t.push_str(&format!(
                    "      {}: catalog {}, tape {}\n",
                    f.field, f.catalog, f.tape
                ));
            }
        }
        for s in &self.added {
            line(&mut t, "+", s, "");
        }
        for s in &self.kept_unreadable {
            line(&mut t, "=", s, "  (tape file unreadable: kept)");
        }
        t
    }
}

/// Fields a rebuild would change. A set failed in both keeps its counts
/// out of it: a failed run records none, the scan counts what it found.
/// A reaped set (failed, nothing recorded) may be filled in from the tape.
fn changes(known: &SetRow, found: &SetRow) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut cmp = |field: &'static str, a: String, b: String| {
        if a != b {
            out.push(FieldChange {
                field,
                catalog: a,
                tape: b,
            });
        }
    };
    cmp(
        "file_number",
        known.info.file_number.to_string(),
        found.info.file_number.to_string(),
    );
    // A set the catalog only knows as failed with nothing recorded (a
    // process that died and was reaped) gains what the tape says, as long
    // as the tape does not call it complete: that fills in, not changes.
    let fills_in = known.outcome.state == SetState::Failed
        && known.outcome.records == 0
        && known.outcome.bytes == 0
        && found.outcome.state != SetState::Complete;
    if !fills_in {
        cmp(
            "state",
            known.outcome.state.to_string(),
            found.outcome.state.to_string(),
        );
    }
    let both_failed =
        known.outcome.state == SetState::Failed && found.outcome.state == SetState::Failed;
    if !both_failed && !fills_in {
        cmp(
            "records",
            known.outcome.records.to_string(),
            found.outcome.records.to_string(),
        );
        cmp(
            "bytes",
            known.outcome.bytes.to_string(),
            found.outcome.bytes.to_string(),
        );
        let sha = |s: &SetRow| s.outcome.digest.clone().unwrap_or_else(|| "none".into());
        cmp("digest", sha(known), sha(found));
    }
    cmp(
        "range",
        format!("{}+{}", known.info.lba, known.info.blocks),
        format!("{}+{}", found.info.lba, found.info.blocks),
    );
    out
}

/// Compare the catalog's sets on a volume (`known`) with a scan of it
/// (`scanned`); `unreadable` are the tape files the scan could not read.
pub fn diff_volume(known: &[SetRow], scanned: &[SetRow], unreadable: &[u32]) -> VolumeDiff {
    let mut d = VolumeDiff::default();
    for k in known {
        match scanned.iter().find(|s| s.info.id == k.info.id) {
            Some(s) => {
                let fields = changes(k, s);
                if !fields.is_empty() {
                    d.changed.push(SetChange {
                        id: k.info.id,
                        file_number: k.info.file_number,
                        fields,
                    });
                }
            }
            None if unreadable.contains(&k.info.file_number) => {
                d.kept_unreadable.push(k.into());
            }
            None => d.dropped.push(k.into()),
        }
    }
    for s in scanned {
        if !known.iter().any(|k| k.info.id == s.info.id) {
            d.added.push(s.into());
        }
    }
    d
}
