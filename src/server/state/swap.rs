//! Changing the cartridge under an active lease (multi-volume sets,
//! FORMAT.md "Multi-volume sets"): a backup whose cartridge is full goes
//! on with the next one of its pool, and a restore reads each part of a
//! set from its own cartridge. The lease stays active all along, so its
//! host keeps heartbeating; the robot unloads the cartridge to its home
//! slot and loads the other one into the same drive.

use uuid::Uuid;

use super::{Cop, Denied, Job, JobResult, LeaseError, LeaseId, LeaseState, Now, Pool, Step, Want};
use crate::server::events::EventKind;

/// A cartridge change under way or done, until its host has seen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The robot is on it; `to` is the cartridge going in.
    Pending { to: String },
    /// `to` is in the drive and checked (or labelled).
    Done { to: String },
    /// The change failed: why. The lease stays active so its host can
    /// report its set and release the drive.
    Failed(String),
}

/// What the cartridge is changed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapFor {
    /// The next cartridge of the backup's pool (an open one, else a
    /// scratch one, which the robot labels).
    NextOfPool,
    /// The cartridge holding `volume` (a restore's next part).
    Volume(Uuid),
}

impl Cop {
    /// Lease `id` of `host` wants another cartridge in its drive: mark a
    /// full backup cartridge full, pick the next one and queue the robot
    /// job. Refused, changing nothing, when no cartridge can be had.
    pub fn swap(
        &mut self,
        id: LeaseId,
        host: &str,
        what: SwapFor,
        now: Now,
    ) -> Result<String, SwapError> {
        let l = self.active_lease(id, host)?;
        let (drive, old, want) = (l.drive, l.barcode.clone(), l.want.clone());
        let (to, check) = match (&what, &want) {
            (SwapFor::NextOfPool, Want::Backup { pool, .. }) => self.next_of_pool(pool)?,
            (SwapFor::Volume(v), Want::Restore { .. }) => self.holding_volume(*v)?,
            _ => return Err(SwapError::Kind),
        };
        // A cartridge left idle in another drive goes home first (the
        // robot does its jobs in order).
        if let Some(z) = self.drive_holding(&to).filter(|&z| z != drive) {
            let steps = self.unload_steps(z);
            self.drives[z].busy = true;
            self.drives[z].idle_since = None;
            self.jobs.push_back(Job {
                drive: z,
                lease: None,
                steps,
            });
        }
        if let (SwapFor::NextOfPool, Want::Backup { pool, .. }) = (&what, &want) {
            if let Some(c) = self.cartridges.get_mut(&old) {
                c.pool = Pool::Full(pool.clone());
            }
        }
        let home = self.cartridges.get(&old).map_or(0, |c| c.home);
        let to_home = self.cartridges[&to].home;
        let mut steps = vec![Step::Unload {
            barcode: old.clone(),
            home,
        }];
        steps.push(Step::Load {
            barcode: to.clone(),
            home: to_home,
        });
        steps.push(check);
        self.drives[drive].busy = true;
        self.jobs.push_back(Job {
            drive,
            lease: Some(id),
            steps,
        });
        self.held.entry(id).or_default().push(old.clone());
        self.swaps.insert(id, Swap::Pending { to: to.clone() });
        self.event(
            now,
            EventKind::Continued,
            Some(id),
            format!("{old} -> {to} ({what:?})"),
        );
        Ok(to)
    }

    /// The next cartridge for `pool` and the step that checks it: an
    /// open one not in use, else a scratch one to label.
    fn next_of_pool(&self, pool: &str) -> Result<(String, Step), SwapError> {
        let usable = |p: &Pool| {
            self.cartridges.values().find(|c| {
                &c.pool == p
                    && !c.missing
                    && !self.in_use(&c.barcode)
                    && self.drive_holding(&c.barcode).is_none()
            })
        };
        let open = Pool::Open(pool.to_string());
        if let Some(c) = usable(&open) {
            if let Some(volume) = c.volume {
                return Ok((c.barcode.clone(), Step::CheckLabel { volume }));
            }
        }
        let c = usable(&Pool::Scratch).ok_or(Denied::EmptyPool(pool.to_string()))?;
        let name = format!("{pool}-{}", c.barcode);
        Ok((c.barcode.clone(), Step::Label { name }))
    }

    /// The cartridge labelled `volume`, in its slot.
    fn holding_volume(&self, volume: Uuid) -> Result<(String, Step), SwapError> {
        let c = self
            .cartridges
            .values()
            .find(|c| c.volume == Some(volume) && !c.missing)
            .ok_or(SwapError::NoVolume(volume))?;
        // In use: leased, or in a drive that is not free (an idle drive's
        // cartridge is taken out of it).
        if self.in_use(&c.barcode) {
            return Err(SwapError::Busy(c.barcode.clone()));
        }
        Ok((c.barcode.clone(), Step::CheckLabel { volume }))
    }

    /// The robot finished a swap job for lease `id`.
    pub(super) fn swap_done(&mut self, id: LeaseId, result: JobResult, now: Now) {
        let Some(Swap::Pending { to }) = self.swaps.get(&id).cloned() else {
            return;
        };
        let pool = self.leases.get(&id).and_then(|l| match &l.want {
            Want::Backup { pool, .. } => Some(pool.clone()),
            Want::Restore { .. } => None,
        });
        let done = matches!(result, JobResult::Done | JobResult::Labelled(_));
        if let (true, Some(l)) = (done, self.leases.get_mut(&id)) {
            // Events name the lease's cartridge: the new one from here on.
            l.barcode = to.clone();
            l.expires = l.expires.max(now + self.policy.lease_secs);
        }
        let swap = match result {
            JobResult::Done => Swap::Done { to: to.clone() },
            JobResult::Labelled(v) => {
                if let (Some(c), Some(pool)) = (self.cartridges.get_mut(&to), pool) {
                    c.pool = Pool::Open(pool);
                    c.volume = Some(v);
                }
                self.event(now, EventKind::Labelled, Some(id), v.to_string());
                Swap::Done { to: to.clone() }
            }
            JobResult::Foreign(what) => {
                if let Some(c) = self.cartridges.get_mut(&to) {
                    c.pool = Pool::Retired;
                    c.note = Some(what.clone());
                }
                let at = self.leases.get(&id).map(|l| l.drive);
                self.drive_event(now, EventKind::Retired, at.unwrap_or(0), Some(to.clone()));
                Swap::Failed(format!("cartridge {to}: {what}"))
            }
            JobResult::Failed { error, .. } => Swap::Failed(error),
        };
        self.swaps.insert(id, swap);
    }

    /// Whether job `job` changes a lease's cartridge.
    pub(super) fn is_swap(&self, job: &Job) -> bool {
        job.lease
            .is_some_and(|id| matches!(self.swaps.get(&id), Some(Swap::Pending { .. })))
    }

    /// How lease `id`'s cartridge change stands; a finished one is
    /// forgotten once seen.
    pub fn take_swap(&mut self, id: LeaseId) -> Option<Swap> {
        match self.swaps.get(&id) {
            Some(Swap::Pending { .. }) => self.swaps.get(&id).cloned(),
            Some(_) => self.swaps.remove(&id),
            None => None,
        }
    }

    /// The cartridges lease `id` held before its current one.
    pub fn held_before(&self, id: LeaseId) -> &[String] {
        self.held.get(&id).map_or(&[], |v| v.as_slice())
    }

    /// Whether lease `id` is active (a swap keeps it so).
    pub fn lease_active(&self, id: LeaseId) -> bool {
        self.leases
            .get(&id)
            .is_some_and(|l| l.state == LeaseState::Active)
    }
}

/// Why a cartridge change is refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("a backup lease gets the next cartridge of its pool, a restore lease the cartridge of a volume; not the other way round")]
    Kind,
    #[error("no cartridge in the library holds volume {0}")]
    NoVolume(Uuid),
    #[error("cartridge {0} is in use by another lease or drive")]
    Busy(String),
}
