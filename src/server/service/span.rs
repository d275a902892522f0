//! Multi-volume sets at the server: a lease's cartridge is changed for
//! the next one of its pool (a backup at the end of its cartridge) or
//! for the cartridge of a set's next part (a restore).

use std::time::{Duration, Instant};

use super::{unix_now, Grant, Service, ServiceError};
use crate::catalog::{SetPart, VolumeRow};
use crate::server::state::{LeaseError, LeaseId, Swap, SwapFor};

/// How long one request waits for the robot before it answers "pending"
/// (the control port closes a connection idle for 15 s); the host then
/// asks again.
pub const SWAP_POLL: Duration = Duration::from_secs(10);

impl Service {
    /// Change lease `id`'s cartridge and wait up to [`SWAP_POLL`] for the
    /// robot: the grant as it now stands (its cartridge and volume), or
    /// `None` while the robot is still at it. The lease stays active
    /// meanwhile, so its host's heartbeats go on.
    pub fn swap(
        &self,
        id: LeaseId,
        host: &str,
        what: SwapFor,
    ) -> Result<Option<Grant>, ServiceError> {
        self.begin_swap(id, host, what)?;
        self.swap_wait(id, host, SWAP_POLL)
    }

    /// Queue the robot job that changes lease `id`'s cartridge.
    pub fn begin_swap(&self, id: LeaseId, host: &str, what: SwapFor) -> Result<(), ServiceError> {
        let mut g = self.lock();
        g.cop.swap(id, host, what, unix_now())?;
        self.commit(&mut g)?;
        drop(g);
        self.changed.notify_all();
        Ok(())
    }

    /// Wait up to `wait` for lease `id`'s cartridge change: the grant once
    /// done, `None` while pending, the reason when it failed.
    pub fn swap_wait(
        &self,
        id: LeaseId,
        host: &str,
        wait: Duration,
    ) -> Result<Option<Grant>, ServiceError> {
        let deadline = Instant::now() + wait;
        let mut g = self.lock();
        let l = g.cop.leases.get(&id).ok_or(LeaseError::Unknown(id))?;
        if l.host != host {
            return Err(LeaseError::NotYours(id).into());
        }
        loop {
            match g.cop.take_swap(id) {
                Some(Swap::Pending { .. }) => {}
                Some(Swap::Done { .. }) => {
                    drop(g);
                    return self.grant(id, host).map(Some);
                }
                Some(Swap::Failed(why)) => return Err(ServiceError::SwapFailed(why)),
                None => {
                    return Err(ServiceError::SwapFailed(format!(
                        "lease {id} has no cartridge change under way"
                    )))
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            g = self
                .changed
                .wait_timeout(g, left.min(Duration::from_secs(1)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Whether `volume` is on a cartridge lease `id` holds or held.
    pub(super) fn lease_held_volume(g: &super::Inner, id: LeaseId, volume: uuid::Uuid) -> bool {
        let cop = &g.cop;
        let current = cop.leases.get(&id).map(|l| l.barcode.as_str());
        current
            .into_iter()
            .chain(cop.held_before(id).iter().map(String::as_str))
            .any(|b| cop.cartridges.get(b).and_then(|c| c.volume) == Some(volume))
    }

    /// Record the parts of a multi-volume set that lease `id` of `host`
    /// reported (after [`Service::report`] cataloged the set): each part
    /// must be on a cartridge the lease held.
    pub fn report_parts(
        &self,
        id: LeaseId,
        host: &str,
        set: uuid::Uuid,
        (parts, volumes): (&[SetPart], &[VolumeRow]),
    ) -> Result<(), ServiceError> {
        let g = self.lock();
        let l = g.cop.leases.get(&id).ok_or(LeaseError::Unknown(id))?;
        if l.host != host {
            return Err(LeaseError::NotYours(id).into());
        }
        if let Some(p) = parts
            .iter()
            .find(|p| !Self::lease_held_volume(&g, id, p.volume))
        {
            return Err(ServiceError::BadReport {
                lease: id,
                why: format!(
                    "part {} of set {set} is on volume {}, not on a cartridge of this lease",
                    p.part, p.volume
                ),
            });
        }
        Ok(g.catalog.record_parts(set, parts, volumes)?)
    }
}
