//! The results the copy manager holds for RECEIVE COPY RESULTS, per I_T
//! nexus and list ID (SPC-4 6.4.3, LIST ID USAGE 00b).
//!
//! Bounded twice: each nexus within its quota (lists and bytes of CRC32Cs),
//! evicting its own oldest lists first; and all nexuses within a global
//! bound, where a new list evicts its own nexus's older lists first and
//! then only from a nexus holding more lists than this one. One initiator
//! (or many sessions of it) cannot evict another's few results.

use std::collections::{HashMap, VecDeque};

use crate::lu::Nexus;
use crate::scsi::xcopy::list_id_usage;

/// What a list ID keeps after its copy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    pub failed: bool,
    /// Stopped by a task management function (no status was sent).
    pub aborted: bool,
    pub segments: usize,
    pub bytes: u64,
    pub crcs: Vec<u32>,
    /// The COPY ABORTED sense the command ended with.
    pub sense: Option<Vec<u8>>,
}

impl Held {
    fn size(&self) -> usize {
        4 * self.crcs.len()
    }
}

/// How much may be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldQuota {
    pub lists_per_nexus: usize,
    pub bytes_per_nexus: usize,
    pub lists: usize,
    pub bytes: usize,
}

impl Default for HeldQuota {
    fn default() -> Self {
        HeldQuota {
            lists_per_nexus: 64,
            bytes_per_nexus: 4 << 20,
            lists: 1024,
            bytes: 64 << 20,
        }
    }
}

#[derive(Default)]
struct NexusHeld {
    lists: HashMap<u8, Held>,
    /// List IDs, oldest first.
    order: VecDeque<u8>,
    bytes: usize,
}

impl NexusHeld {
    fn remove(&mut self, id: u8) -> Option<Held> {
        let h = self.lists.remove(&id)?;
        self.order.retain(|x| *x != id);
        self.bytes -= h.size();
        Some(h)
    }

    /// Drop the oldest list other than `keep`.
    fn evict_oldest(&mut self, keep: u8) -> Option<Held> {
        let id = *self.order.iter().find(|x| **x != keep)?;
        self.remove(id)
    }
}

#[derive(Default)]
pub(crate) struct HeldResults {
    by_nexus: HashMap<Nexus, NexusHeld>,
    lists: usize,
    bytes: usize,
    quota: HeldQuota,
}

impl HeldResults {
    pub fn new(quota: HeldQuota) -> HeldResults {
        HeldResults {
            quota,
            ..HeldResults::default()
        }
    }

    pub fn get(&self, nexus: &Nexus, id: u8) -> Option<&Held> {
        self.by_nexus.get(nexus)?.lists.get(&id)
    }

    /// Hold `h` under `id` when `usage` is 00b; otherwise forget any older
    /// results under that ID. Returns false when the list could not be held
    /// within the bounds.
    pub fn keep(&mut self, nexus: &Nexus, id: u8, usage: u8, h: Held) -> bool {
        let old = self.by_nexus.get_mut(nexus).and_then(|m| m.remove(id));
        if let Some(o) = old {
            self.lists -= 1;
            self.bytes -= o.size();
        }
        if usage != list_id_usage::HOLD {
            self.forget_empty(nexus);
            return true;
        }
        let size = h.size();
        let m = self.by_nexus.entry(nexus.clone()).or_default();
        m.lists.insert(id, h);
        m.order.push_back(id);
        m.bytes += size;
        self.lists += 1;
        self.bytes += size;
        self.within_nexus_quota(nexus, id);
        let held = self.within_total(nexus, id);
        self.forget_empty(nexus);
        held
    }

    fn within_nexus_quota(&mut self, nexus: &Nexus, id: u8) {
        let q = self.quota;
        let Some(m) = self.by_nexus.get_mut(nexus) else {
            return;
        };
        while m.lists.len() > q.lists_per_nexus || m.bytes > q.bytes_per_nexus {
            let gone = m.evict_oldest(id).or_else(|| m.remove(id));
            let Some(g) = gone else { break };
            self.lists -= 1;
            self.bytes -= g.size();
        }
    }

    /// The global bound: this nexus's older lists go first, then the oldest
    /// of the nexus holding the most lists, if it holds more than this one;
    /// else the new list is not held.
    fn within_total(&mut self, nexus: &Nexus, id: u8) -> bool {
        while self.lists > self.quota.lists || self.bytes > self.quota.bytes {
            let own = self
                .by_nexus
                .get_mut(nexus)
                .and_then(|m| m.evict_oldest(id));
            let (gone, kept) = match own.or_else(|| self.evict_from_bigger(nexus)) {
                Some(g) => (g, true),
                None => match self.by_nexus.get_mut(nexus).and_then(|m| m.remove(id)) {
                    Some(g) => (g, false),
                    None => return false,
                },
            };
            self.lists -= 1;
            self.bytes -= gone.size();
            if !kept {
                return false;
            }
        }
        true
    }

    /// The oldest list of the nexus that holds the most, if it holds more
    /// than `nexus`.
    fn evict_from_bigger(&mut self, nexus: &Nexus) -> Option<Held> {
        let mine = self.by_nexus.get(nexus).map_or(0, |m| m.lists.len());
        let victim = self
            .by_nexus
            .iter()
            .filter(|(n, m)| *n != nexus && m.lists.len() > mine)
            .max_by_key(|(_, m)| m.lists.len())
            .map(|(n, _)| n.clone())?;
        let m = self.by_nexus.get_mut(&victim)?;
        let first = *m.order.front()?;
        let gone = m.remove(first);
        self.forget_empty(&victim);
        gone
    }

    fn forget_empty(&mut self, nexus: &Nexus) {
        if self.by_nexus.get(nexus).is_some_and(|m| m.lists.is_empty()) {
            self.by_nexus.remove(nexus);
        }
    }

    /// The nexus is gone: its results with it.
    pub fn nexus_lost(&mut self, nexus: &Nexus) {
        if let Some(m) = self.by_nexus.remove(nexus) {
            self.lists -= m.lists.len();
            self.bytes -= m.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nexus(k: u64) -> Nexus {
        Nexus {
            initiator: format!("iqn.x:{k}"),
            isid: k,
            target: "t".into(),
        }
    }

    fn held(crcs: usize) -> Held {
        Held {
            crcs: vec![0; crcs],
            ..Held::default()
        }
    }

    const HOLD: u8 = list_id_usage::HOLD;

    #[test]
    fn a_nexus_evicts_its_own_oldest_first() {
        let q = HeldQuota {
            lists_per_nexus: 3,
            bytes_per_nexus: 40,
            lists: 100,
            bytes: 1000,
        };
        let mut r = HeldResults::new(q);
        for id in 0..5 {
            assert!(r.keep(&nexus(1), id, HOLD, held(1)));
        }
        assert!(r.get(&nexus(1), 1).is_none());
        assert!(r.get(&nexus(1), 2).is_some());
        // Bytes: 40 bytes = 10 CRCs per nexus.
        assert!(r.keep(&nexus(1), 9, HOLD, held(9)));
        assert!(r.get(&nexus(1), 3).is_none());
        assert!(r.get(&nexus(1), 4).is_some());
        assert_eq!(r.by_nexus[&nexus(1)].lists.len(), 2);
        // A list beyond the nexus's bytes on its own is not kept.
        r.keep(&nexus(2), 0, HOLD, held(11));
        assert!(r.get(&nexus(2), 0).is_none());
        assert_eq!((r.lists, r.bytes), (2, 40));
    }

    /// Many nexuses of one attacker cannot evict a victim's one list.
    #[test]
    fn others_evict_only_from_bigger_holders() {
        let q = HeldQuota {
            lists_per_nexus: 8,
            bytes_per_nexus: 1000,
            lists: 20,
            bytes: 1000,
        };
        let mut r = HeldResults::new(q);
        assert!(r.keep(&nexus(0), 9, HOLD, held(1)));
        for k in 1..=10 {
            for id in 0..=255 {
                r.keep(&nexus(k), id, HOLD, held(1));
            }
        }
        assert!(r.get(&nexus(0), 9).is_some(), "the victim keeps its list");
        assert!(r.lists <= 20);
        // A second list of the victim's: its own older one goes first.
        assert!(r.keep(&nexus(0), 10, HOLD, held(1)));
        assert!(r.get(&nexus(0), 9).is_none());
        assert!(r.get(&nexus(0), 10).is_some());
        r.nexus_lost(&nexus(0));
        assert!(r.get(&nexus(0), 10).is_none());
        let counted: usize = r.by_nexus.values().map(|m| m.lists.len()).sum();
        assert_eq!(counted, r.lists);
    }

    #[test]
    fn discard_forgets_an_older_hold() {
        let mut r = HeldResults::new(HeldQuota::default());
        assert!(r.keep(&nexus(1), 7, HOLD, held(2)));
        assert!(r.keep(&nexus(1), 7, list_id_usage::DISCARD, held(2)));
        assert!(r.get(&nexus(1), 7).is_none());
        assert_eq!((r.lists, r.bytes), (0, 0));
        assert!(r.by_nexus.is_empty());
    }
}
