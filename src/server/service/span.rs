//! Multi-volume sets at the server: a lease's cartridge is changed for
//! the next one of its pool (a backup at the end of its cartridge) or
//! for the cartridge of a set's next part (a restore).

use std::time::{Duration, Instant};

use super::{unix_now, Grant, Service, ServiceError};
use crate::catalog::{SetPart, VolumeRow};
use crate::server::state::{LeaseError, LeaseId, Swap, SwapFor};

/// How long a host waits for the robot to change its cartridge.
const SWAP_WAIT: Duration = Duration::from_secs(600);

impl Service {
    /// Change lease `id`'s cartridge and wait until the robot has: the
    /// grant as it now stands (its cartridge and volume). The lease stays
    /// active meanwhile, so its host's heartbeats go on.
    pub fn swap(&self, id: LeaseId, host: &str, what: SwapFor) -> Result<Grant, ServiceError> {
        let deadline = Instant::now() + SWAP_WAIT;
        let mut g = self.lock();
        g.cop.swap(id, host, what, unix_now())?;
        self.commit(&mut g)?;
        self.changed.notify_all();
        loop {
            match g.cop.take_swap(id) {
                Some(Swap::Pending { .. }) => {}
                Some(Swap::Done { .. }) => {
                    drop(g);
                    return self.grant(id, host);
                }
                Some(Swap::Failed(why)) => return Err(ServiceError::SwapFailed(why)),
                None => return Err(LeaseError::Unknown(id).into()),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ServiceError::SwapFailed(format!(
                    "the robot did not change the cartridge within {} s",
                    SWAP_WAIT.as_secs()
                )));
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
