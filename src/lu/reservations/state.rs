//! The reservation state of one logical unit and its rules, without bytes:
//! registrations and the persistent reservation (SPC-4 5.13), the older
//! RESERVE/RELEASE reservation (SPC-2 5.5.1), and the Unit Attentions
//! each change owes the other I_T nexuses.

use std::collections::{HashMap, VecDeque};

use crate::lu::Nexus;
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::spc::{PrHolder, PrOutParameters, PrType, LU_SCOPE};

/// INVALID RELEASE OF PERSISTENT RESERVATION (SPC-4 5.13.11.2).
pub(crate) const INVALID_RELEASE: Asc = Asc(0x2604);

/// Why a reservation command or a command under a reservation is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// RESERVATION CONFLICT status (SAM-5 5.3).
    Conflict,
    /// CHECK CONDITION, ILLEGAL REQUEST with this code.
    Illegal(Asc),
    /// INVALID FIELD IN CDB at this byte.
    BadCdb(u16),
    /// INVALID FIELD IN PARAMETER LIST at this byte.
    BadParam(u16),
}

/// The persistent reservation in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    /// The holder; None for the all-registrants types, which every
    /// registered I_T nexus holds (SPC-4 5.13.10).
    pub(crate) holder: Option<Nexus>,
    pub(crate) pr_type: PrType,
}

/// One of the six types SPC-4 6.16.2 defines.
pub(crate) fn valid_type(t: PrType) -> bool {
    matches!(t.0, 1 | 3 | 5..=8)
}

/// Write Exclusive, WE - Registrants Only, WE - All Registrants: others
/// may still read (SPC-4 5.13.1, table of reservation types).
pub(crate) fn lets_others_read(t: PrType) -> bool {
    matches!(
        t,
        PrType::WRITE_EXCLUSIVE | PrType::WE_REGISTRANTS_ONLY | PrType::WE_ALL_REGISTRANTS
    )
}

/// The registrants-only and all-registrants types: every registered I_T
/// nexus has the holder's access.
fn registrants_have_access(t: PrType) -> bool {
    !matches!(t, PrType::WRITE_EXCLUSIVE | PrType::EXCLUSIVE_ACCESS)
}

fn all_registrants(t: PrType) -> bool {
    matches!(t, PrType::WE_ALL_REGISTRANTS | PrType::EA_ALL_REGISTRANTS)
}

/// Registrations, the reservations and the pending Unit Attentions of a
/// logical unit. Registrations and the persistent reservation survive the
/// loss of an I_T nexus (SPC-4 5.13.1); a RESERVE(6) reservation does not
/// (SPC-2 5.5.1). Nothing survives a restart of the target (APTPL is not
/// supported and REPORT CAPABILITIES says so).
#[derive(Debug, Default)]
pub(crate) struct PrState {
    pub(crate) generation: u32,
    /// In registration order, which READ KEYS reports.
    pub(crate) regs: Vec<(Nexus, u64)>,
    pub(crate) held: Option<Held>,
    /// The holder of a RESERVE(6)/(10) reservation.
    pub(crate) legacy: Option<Nexus>,
    ua: HashMap<Nexus, VecDeque<Asc>>,
}

impl PrState {
    pub(crate) fn key_of(&self, nexus: &Nexus) -> Option<u64> {
        self.regs.iter().find(|(n, _)| n == nexus).map(|(_, k)| *k)
    }

    /// The I_T nexus holds the persistent reservation.
    pub(crate) fn holds(&self, nexus: &Nexus) -> bool {
        match &self.held {
            Some(Held {
                holder: Some(h), ..
            }) => h == nexus,
            Some(Held { holder: None, .. }) => self.key_of(nexus).is_some(),
            None => false,
        }
    }

    /// What READ RESERVATION reports: the holder's key, 0 for the
    /// all-registrants types (SPC-4 6.15.3).
    pub(crate) fn holder(&self) -> Option<PrHolder> {
        let h = self.held.as_ref()?;
        let key = h.holder.as_ref().and_then(|n| self.key_of(n)).unwrap_or(0);
        Some(PrHolder {
            key,
            scope: LU_SCOPE,
            pr_type: h.pr_type,
        })
    }

    /// A persistent reservation lets this nexus do everything.
    pub(crate) fn full_access(&self, nexus: &Nexus) -> bool {
        match &self.held {
            None => true,
            Some(h) => {
                self.holds(nexus)
                    || (registrants_have_access(h.pr_type) && self.key_of(nexus).is_some())
            }
        }
    }

    /// Queue a Unit Attention for each of `to` (SAM-5 5.14).
    fn notify(&mut self, to: &[Nexus], asc: Asc) {
        for n in to {
            let q = self.ua.entry(n.clone()).or_default();
            if !q.contains(&asc) {
                q.push_back(asc);
            }
        }
    }

    /// The oldest Unit Attention pending for `nexus`, taken.
    pub(crate) fn take_ua(&mut self, nexus: &Nexus) -> Option<Sense> {
        let q = self.ua.get_mut(nexus)?;
        let asc = q.pop_front();
        if q.is_empty() {
            self.ua.remove(nexus);
        }
        asc.map(|a| Sense::new(SenseKey::UNIT_ATTENTION, a))
    }

    pub(crate) fn has_ua(&self, nexus: &Nexus) -> bool {
        self.ua.contains_key(nexus)
    }

    /// Every registered nexus but `except`.
    fn others(&self, except: &Nexus) -> Vec<Nexus> {
        self.regs
            .iter()
            .filter(|(n, _)| n != except)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The sender must be registered under the RESERVATION KEY it sent
    /// (SPC-4 5.13.2), for every service action but the two REGISTERs.
    fn check_key(&self, nexus: &Nexus, p: &PrOutParameters) -> Result<(), Refusal> {
        match self.key_of(nexus) {
            Some(k) if k == p.key => Ok(()),
            _ => Err(Refusal::Conflict),
        }
    }

    /// REGISTER and REGISTER AND IGNORE EXISTING KEY (SPC-4 5.13.7,
    /// table "Register behaviors").
    pub(crate) fn register(
        &mut self,
        nexus: &Nexus,
        p: &PrOutParameters,
        ignore: bool,
    ) -> Result<(), Refusal> {
        let current = self.key_of(nexus);
        if !ignore && p.key != current.unwrap_or(0) {
            return Err(Refusal::Conflict);
        }
        match (current, p.service_action_key) {
            (None, 0) => {}
            (None, k) => self.regs.push((nexus.clone(), k)),
            (Some(_), 0) => self.unregister(nexus),
            (Some(_), k) => {
                if let Some(r) = self.regs.iter_mut().find(|(n, _)| n == nexus) {
                    r.1 = k;
                }
            }
        }
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }

    /// Remove a registration. A holder that unregisters releases the
    /// reservation (SPC-4 5.13.11.2.1); the last registrant of an
    /// all-registrants reservation does too. A registrants-only
    /// reservation released so tells the other registrants.
    fn unregister(&mut self, nexus: &Nexus) {
        let was_holder = self.holds(nexus);
        self.regs.retain(|(n, _)| n != nexus);
        let Some(h) = self.held.clone() else {
            return;
        };
        let release = match &h.holder {
            Some(n) => n == nexus,
            None => self.regs.is_empty(),
        };
        if release && was_holder {
            self.held = None;
            if matches!(
                h.pr_type,
                PrType::WE_REGISTRANTS_ONLY | PrType::EA_REGISTRANTS_ONLY
            ) {
                let others = self.others(nexus);
                self.notify(&others, Asc::RESERVATIONS_RELEASED);
            }
        }
    }

    /// RESERVE (SPC-4 5.13.9): a holder asking again for the same type
    /// succeeds; anything else while a reservation is held conflicts.
    pub(crate) fn reserve(
        &mut self,
        nexus: &Nexus,
        p: &PrOutParameters,
        t: PrType,
    ) -> Result<(), Refusal> {
        self.check_key(nexus, p)?;
        match &self.held {
            Some(h) if self.holds(nexus) && h.pr_type == t => Ok(()),
            Some(_) => Err(Refusal::Conflict),
            None => {
                let holder = (!all_registrants(t)).then(|| nexus.clone());
                self.held = Some(Held { holder, pr_type: t });
                Ok(())
            }
        }
    }

    /// RELEASE (SPC-4 5.13.11.2): a no-op from a registered non-holder;
    /// the holder must name the type it holds. Releasing a type other than
    /// WE or EA tells the other registrants.
    pub(crate) fn release(
        &mut self,
        nexus: &Nexus,
        p: &PrOutParameters,
        t: PrType,
    ) -> Result<(), Refusal> {
        self.check_key(nexus, p)?;
        let Some(h) = self.held.clone() else {
            return Ok(());
        };
        if !self.holds(nexus) {
            return Ok(());
        }
        if h.pr_type != t {
            return Err(Refusal::Illegal(INVALID_RELEASE));
        }
        self.held = None;
        if registrants_have_access(t) {
            let others = self.others(nexus);
            self.notify(&others, Asc::RESERVATIONS_RELEASED);
        }
        Ok(())
    }

    /// CLEAR (SPC-4 5.13.11.2.6): every registration and the reservation
    /// go; the others learn RESERVATIONS PREEMPTED.
    pub(crate) fn clear(&mut self, nexus: &Nexus, p: &PrOutParameters) -> Result<(), Refusal> {
        self.check_key(nexus, p)?;
        let others = self.others(nexus);
        self.notify(&others, Asc::RESERVATIONS_PREEMPTED);
        self.regs.clear();
        self.held = None;
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }

    /// PREEMPT and PREEMPT AND ABORT (SPC-4 5.13.11.4): returns the I_T
    /// nexuses that lost their registration, whose tasks an abort stops.
    pub(crate) fn preempt(
        &mut self,
        nexus: &Nexus,
        p: &PrOutParameters,
        t: PrType,
    ) -> Result<Vec<Nexus>, Refusal> {
        self.check_key(nexus, p)?;
        let sak = p.service_action_key;
        let removed = match self.held.clone() {
            None => self.remove_key(nexus, sak)?,
            Some(h) if h.holder.is_none() && sak == 0 => {
                let removed = self.others(nexus);
                self.regs.retain(|(n, _)| n == nexus);
                self.take_over(nexus, &h, t, &removed);
                removed
            }
            Some(h) if h.holder.is_none() => self.remove_key(nexus, sak)?,
            Some(h) if h.holder.as_ref().and_then(|n| self.key_of(n)) == Some(sak) => {
                let removed = self.remove_key(nexus, sak)?;
                self.take_over(nexus, &h, t, &removed);
                removed
            }
            Some(_) => self.remove_key(nexus, sak)?,
        };
        self.notify(&removed, Asc::REGISTRATIONS_PREEMPTED);
        self.generation = self.generation.wrapping_add(1);
        Ok(removed)
    }

    /// The preempting nexus takes the reservation with the type it asked
    /// for; if the type changed, the registrants left (but the sender)
    /// learn RESERVATIONS RELEASED (SPC-4 5.13.11.4.3).
    fn take_over(&mut self, nexus: &Nexus, old: &Held, t: PrType, removed: &[Nexus]) {
        let holder = (!all_registrants(t)).then(|| nexus.clone());
        self.held = Some(Held { holder, pr_type: t });
        if old.pr_type != t {
            let kept: Vec<Nexus> = self
                .others(nexus)
                .into_iter()
                .filter(|n| !removed.contains(n))
                .collect();
            self.notify(&kept, Asc::RESERVATIONS_RELEASED);
        }
    }

    /// Remove the registrations under `key` but the sender's (SPC-4
    /// 5.13.11.4.4); a key of 0 is invalid there, and a key nobody holds
    /// conflicts.
    fn remove_key(&mut self, nexus: &Nexus, key: u64) -> Result<Vec<Nexus>, Refusal> {
        if key == 0 {
            // The SERVICE ACTION RESERVATION KEY, bytes 8..16.
            return Err(Refusal::BadParam(8));
        }
        if !self.regs.iter().any(|(_, k)| *k == key) {
            return Err(Refusal::Conflict);
        }
        let removed: Vec<Nexus> = self
            .regs
            .iter()
            .filter(|(n, k)| *k == key && n != nexus)
            .map(|(n, _)| n.clone())
            .collect();
        self.regs.retain(|(n, _)| !removed.contains(n));
        Ok(removed)
    }
}
