//! Checks that keep a backup from writing where it should not: the drive's
//! position against what this process wrote, and a volume some other live
//! process is writing.

use uuid::Uuid;

use super::EngineError;
use crate::catalog::Catalog;
use crate::device::Tape;
use crate::transport::Transport;

/// Where the drive said the set began, when its READ POSITION can be
/// trusted. Another session that moves the tape mid-set (a rewind, a
/// SPACE) shows up as a position that is not start + blocks written.
#[derive(Debug, Clone, Copy)]
pub struct PositionGuard {
    start: Option<u64>,
}

impl PositionGuard {
    /// Note the drive's position before the set's first block. A drive
    /// whose answer is not trusted (tgt), or that has no READ POSITION,
    /// gives a guard that checks nothing.
    pub fn start<T: Transport>(tape: &mut Tape<T>) -> PositionGuard {
        let start = tape.drive_block().unwrap_or_else(|e| {
            log::debug!(
                "{}: READ POSITION: {e}; positions not checked",
                tape.scsi.name()
            );
            None
        });
        PositionGuard { start }
    }

    /// A guard that checks nothing (before the set's first block).
    pub fn unset() -> PositionGuard {
        PositionGuard { start: None }
    }

    /// Whether this guard checks anything.
    pub fn active(&self) -> bool {
        self.start.is_some()
    }

    /// Before writing `next` (the trailer, the filemark): the drive must be
    /// `written` blocks past the start. Otherwise the tape moved under the
    /// writer: the tracked position is forgotten, so nothing more is
    /// written there, and the set fails.
    pub fn check<T: Transport>(
        &self,
        tape: &mut Tape<T>,
        written: u64,
        next: &'static str,
    ) -> Result<(), EngineError> {
        let Some(start) = self.start else {
            return Ok(());
        };
        let expected = start + written;
        let found = tape.drive_block();
        if matches!(found, Ok(Some(b)) if b == expected) {
            return Ok(());
        }
        tape.forget_position();
        Err(EngineError::TapeMoved {
            expected,
            found: found.ok().flatten(),
            next,
        })
    }
}

/// Refuse a volume on which the catalog has a set `running` under another
/// live process of this host (a second drive, or a tape moved between
/// drives, would otherwise let two writers at one volume).
pub fn refuse_live_writer(catalog: &Catalog, volume: Uuid, name: &str) -> Result<(), EngineError> {
    match catalog.live_writer(volume)? {
        None => Ok(()),
        Some((set, pid)) => Err(EngineError::VolumeBusy {
            volume: format!("{name} ({volume})"),
            set,
            pid,
        }),
    }
}
