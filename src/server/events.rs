//! The server's event log: what happened to leases, drives and cartridges,
//! in order. It is kept in the catalog (`server_events`) and is what shows,
//! after the fact, that no drive was held by two hosts at once
//! ([`overlaps`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::{LeaseId, Now};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A drive was promised to a host; the robot prepares it.
    LeaseGranted,
    /// The drive is ready: the host may write or read.
    LeaseActive,
    LeaseReleased,
    /// The host stopped heartbeating.
    LeaseExpired,
    /// Preparing the drive failed, or the server restarted meanwhile.
    LeaseFailed,
    /// The host named the set it writes.
    SetStarted,
    /// A cartridge went into a drive.
    Loaded,
    /// A cartridge left a drive for its home slot.
    Unloaded,
    /// A scratch cartridge got our label.
    Labelled,
    /// A cartridge was taken out of use (foreign label).
    Retired,
    /// A drive is kept from everyone after an expired lease.
    Fenced,
    /// An operator released a fenced drive.
    Unfenced,
    /// The server preempted an expired host's reservation (PREEMPT AND
    /// ABORT): the drive may be given out again.
    Preempted,
    QueueTimeout,
    /// Robot work that belonged to no lease failed.
    RobotFailed,
    /// The server started (and rebuilt its state).
    Started,
    /// A lease's cartridge was changed: a backup's was full and the next
    /// one of its pool went in, or a restore needed a set's next part.
    Continued,
}

impl EventKind {
    /// The snake_case name kept in the catalog.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The inverse of [`EventKind::as_str`].
    pub fn parse(s: &str) -> Option<EventKind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Now,
    pub kind: EventKind,
    pub lease: Option<LeaseId>,
    pub host: Option<String>,
    pub drive: Option<usize>,
    pub barcode: Option<String>,
    pub detail: String,
}

/// Two hosts holding one drive at once: the drive and both leases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overlap {
    pub drive: usize,
    pub held: LeaseId,
    pub granted: LeaseId,
}

/// Replays the log and lists every grant of a drive that an earlier lease
/// still held. A lease holds its drive from `lease_granted` until
/// `lease_released` or `lease_failed`; an expired lease holds it (fenced)
/// until `unfenced` or `preempted`. An empty answer is the proof the tests ask for.
pub fn overlaps(events: &[Event]) -> Vec<Overlap> {
    let mut holder: BTreeMap<usize, LeaseId> = BTreeMap::new();
    let mut out = Vec::new();
    for e in events {
        let (Some(lease), Some(drive)) = (e.lease, e.drive) else {
            continue;
        };
        match e.kind {
            EventKind::LeaseGranted => {
                if let Some(&held) = holder.get(&drive) {
                    out.push(Overlap {
                        drive,
                        held,
                        granted: lease,
                    });
                }
                holder.insert(drive, lease);
            }
            EventKind::LeaseReleased
            | EventKind::LeaseFailed
            | EventKind::Unfenced
            | EventKind::Preempted
                if holder.get(&drive) == Some(&lease) =>
            {
                holder.remove(&drive);
            }
            _ => {}
        }
    }
    out
}
