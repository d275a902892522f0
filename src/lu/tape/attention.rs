//! Unit Attention conditions, per I_T nexus (SAM-5 5.14, SPC-4 6.35): each
//! nexus sees an event once, on its next command. A nexus the drive has not
//! heard from since power on or the last reset sees POWER ON, RESET, OR
//! BUS DEVICE RESET OCCURRED (29/00) first.

use std::collections::{HashMap, VecDeque};

use crate::lu::Nexus;
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::Opcode;

#[derive(Debug, Clone, Default)]
pub(crate) struct Attentions {
    /// Nexuses seen since the last reset, with what they have yet to see.
    pending: HashMap<Nexus, VecDeque<Asc>>,
}

impl Attentions {
    /// The condition `nexus` is to see now, if any; it is cleared.
    pub(crate) fn take(&mut self, nexus: &Nexus) -> Option<Asc> {
        match self.pending.get_mut(nexus) {
            Some(q) => q.pop_front(),
            None => {
                // 29/00 covers everything before it (SPC-4 6.35 notes
                // that a reset supersedes older conditions).
                self.pending.insert(nexus.clone(), VecDeque::new());
                Some(Asc::POWER_ON_RESET)
            }
        }
    }

    /// The condition `nexus` sees instead of running `cdb`, cleared.
    /// INQUIRY, REPORT LUNS and REQUEST SENSE neither report nor clear one
    /// here (SPC-4 5.14; REQUEST SENSE returns it as its data, 6.39).
    pub(crate) fn take_before(&mut self, nexus: &Nexus, cdb: &[u8]) -> Option<Sense> {
        match cdb.first().map(|&b| Opcode(b)) {
            None | Some(Opcode::INQUIRY | Opcode::REPORT_LUNS | Opcode::REQUEST_SENSE) => None,
            _ => self
                .take(nexus)
                .map(|asc| Sense::new(SenseKey::UNIT_ATTENTION, asc)),
        }
    }

    /// Tell every nexus but `except` about `asc` (a medium change: 28/00).
    pub(crate) fn post(&mut self, asc: Asc, except: Option<&Nexus>) {
        for (n, q) in self.pending.iter_mut() {
            if Some(n) != except && !q.contains(&asc) {
                q.push_back(asc);
            }
        }
    }

    /// A reset: every nexus sees 29/00 next, and nothing older.
    pub(crate) fn reset(&mut self) {
        self.pending.clear();
    }

    /// The nexus is gone; a new one with its name starts afresh.
    pub(crate) fn forget(&mut self, nexus: &Nexus) {
        self.pending.remove(nexus);
    }
}
