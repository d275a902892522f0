//! One lease lifecycle for every mover behind the server: ask for a drive
//! (and wait in the queue), heartbeat while the mover works, report the
//! set it wrote, release. A host's own backup, a third-party copy run for
//! a copy manager, a restore, a verify and a serverless job run on the
//! server itself all go through [`run_leased`]; only the [`Broker`] they
//! talk to differs: [`Client`] over HTTP, or [`Local`] inside the server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::client::{begun_set, Client, ClientError, Heartbeat, SetWatch, SWAP_LIMIT};
use super::http::{ApiError, ReportBody, RequestBody};
use super::service::{Grant, Service, ServiceError, SWAP_POLL};
use super::state::{LeaseId, SwapFor, TicketView, Want};
use crate::catalog::{Catalog, SetInfo, SetOutcome};
use crate::engine::interrupt::StopFlag;

/// How a mover reaches the server's leases.
pub trait Broker: Send + Sync {
    /// Queue `body` and wait until the drive is ready; `waiting` hears the
    /// queue position whenever it changes.
    fn acquire(
        &self,
        body: &RequestBody,
        waiting: &mut dyn FnMut(usize),
    ) -> Result<Grant, ClientError>;
    /// Renew the lease; when it now expires (unix seconds).
    fn heartbeat(&self, lease: LeaseId, set: Option<SetInfo>) -> Result<u64, ClientError>;
    /// Catalog the set written under the lease.
    fn report(&self, lease: LeaseId, set: SetInfo, outcome: SetOutcome) -> Result<(), ClientError>;
    /// [`Broker::report`] with a multi-volume set's parts (FORMAT.md
    /// "Multi-volume sets"); a broker whose movers never span reports the
    /// set alone.
    fn report_body(&self, lease: LeaseId, body: ReportBody) -> Result<(), ClientError> {
        self.report(lease, body.set, body.outcome)
    }
    /// Give the drive back; `full`: its cartridge reached end of medium.
    fn release(&self, lease: LeaseId, full: bool) -> Result<(), ClientError>;
    /// Change the lease's cartridge (FORMAT.md "Multi-volume sets"): for
    /// the next one of its pool (a backup at the end of its cartridge), or
    /// for the one holding `volume` (a restore's next part). Waits for the
    /// robot; the grant as it then stands.
    fn continue_lease(&self, lease: LeaseId, volume: Option<Uuid>) -> Result<Grant, ClientError>;
}

impl Broker for Client {
    fn acquire(
        &self,
        body: &RequestBody,
        waiting: &mut dyn FnMut(usize),
    ) -> Result<Grant, ClientError> {
        Client::acquire(self, body, waiting)
    }
    fn heartbeat(&self, lease: LeaseId, set: Option<SetInfo>) -> Result<u64, ClientError> {
        Client::heartbeat(self, lease, set)
    }
    fn report(&self, lease: LeaseId, set: SetInfo, outcome: SetOutcome) -> Result<(), ClientError> {
        Client::report(self, lease, set, outcome)
    }
    fn report_body(&self, lease: LeaseId, body: ReportBody) -> Result<(), ClientError> {
        Client::report_body(self, lease, &body)
    }
    fn release(&self, lease: LeaseId, full: bool) -> Result<(), ClientError> {
        Client::release(self, lease, full)
    }
    fn continue_lease(&self, lease: LeaseId, volume: Option<Uuid>) -> Result<Grant, ClientError> {
        Client::continue_lease(self, lease, volume)
    }
}

/// The server's own mover: the same queue, leases and event log, called
/// in-process under the name of the host that asked for the job.
#[derive(Clone)]
pub struct Local {
    pub svc: Arc<Service>,
    pub host: String,
}

/// A service error as a client sees it over HTTP (same status and kind),
/// so a lost lease stops the mover the same way.
fn as_client(e: ServiceError) -> ClientError {
    let api = ApiError::from(e);
    ClientError::Http {
        status: api.status(),
        kind: api.kind().to_string(),
        message: api.to_string(),
    }
}

impl Broker for Local {
    fn acquire(
        &self,
        body: &RequestBody,
        waiting: &mut dyn FnMut(usize),
    ) -> Result<Grant, ClientError> {
        let want = match body {
            // Only the server itself uses this broker.
            RequestBody::Backup { pool, copy_manager } => Want::Backup {
                pool: pool.clone(),
                copy_manager: copy_manager.clone(),
                by_server: true,
            },
            RequestBody::Restore { set } => self.svc.restore_want(set).map_err(as_client)?,
        };
        let ticket = match self.svc.request(&self.host, want) {
            Err(ServiceError::Denied(d)) => return Err(ClientError::Denied(d)),
            r => r.map_err(as_client)?,
        };
        let mut last = 0;
        loop {
            let view = self
                .svc
                .poll(ticket, &self.host, Duration::from_secs(1))
                .map_err(as_client)?;
            match view {
                TicketView::Granted { lease } => {
                    return self.svc.grant(lease, &self.host).map_err(as_client)
                }
                TicketView::Denied { reason } => return Err(ClientError::Denied(reason)),
                TicketView::Waiting { position } if position != last => {
                    last = position;
                    waiting(position);
                }
                _ => {}
            }
        }
    }
    fn heartbeat(&self, lease: LeaseId, set: Option<SetInfo>) -> Result<u64, ClientError> {
        self.svc
            .heartbeat(lease, &self.host, set.as_ref())
            .map_err(as_client)
    }
    fn report(&self, lease: LeaseId, set: SetInfo, outcome: SetOutcome) -> Result<(), ClientError> {
        self.svc
            .report(lease, &self.host, &set, &outcome)
            .map_err(as_client)
    }
    /// As `POST /v1/leases/N/report` does: the set, then its parts.
    fn report_body(&self, lease: LeaseId, body: ReportBody) -> Result<(), ClientError> {
        self.report(lease, body.set.clone(), body.outcome)?;
        if body.parts.is_empty() {
            return Ok(());
        }
        let both = (body.parts.as_slice(), body.volumes.as_slice());
        self.svc
            .report_parts(lease, &self.host, body.set.id, both)
            .map_err(as_client)
    }
    fn release(&self, lease: LeaseId, full: bool) -> Result<(), ClientError> {
        self.svc.release(lease, &self.host, full).map_err(as_client)
    }
    /// The swap `POST /v1/leases/N/continue` makes, waited for in-process
    /// (as long as a host's client waits).
    fn continue_lease(&self, lease: LeaseId, volume: Option<Uuid>) -> Result<Grant, ClientError> {
        let what = volume.map_or(SwapFor::NextOfPool, SwapFor::Volume);
        let host = self.host.as_str();
        let mut got = self.svc.swap(lease, host, what).map_err(as_client)?;
        let started = Instant::now();
        loop {
            if let Some(g) = got {
                return Ok(g);
            }
            if started.elapsed() > SWAP_LIMIT {
                return Err(ClientError::Answer(format!(
                    "the robot did not change the cartridge within {} s",
                    SWAP_LIMIT.as_secs()
                )));
            }
            got = self
                .svc
                .swap_wait(lease, host, SWAP_POLL)
                .map_err(as_client)?;
        }
    }
}

/// What a leased run asks for and where its set is cataloged.
pub struct Leased {
    pub broker: Arc<dyn Broker>,
    pub request: RequestBody,
    /// The mover's catalog: the set writer records the set there, and the
    /// heartbeat and report read it back.
    pub catalog: PathBuf,
    /// Raised when the lease is lost, so the engine closes the set.
    pub stop: StopFlag,
}

/// How a mover's run ended under its lease.
pub struct Ended<T, E> {
    pub grant: Grant,
    pub result: Result<T, E>,
    /// The set reported to the server, if the mover began one.
    pub set: Option<Uuid>,
}

/// Heartbeats three times a lease period.
pub fn period(g: &Grant) -> Duration {
    Duration::from_millis((g.lease_secs * 1000 / 3).max(200))
}

/// Acquire a drive, run `mover` on it while heartbeating, report the set
/// it wrote (`set_of` on success; on failure the set the heartbeat saw),
/// release (as full when `full` says the error was end of medium).
/// Errors of the server before the mover ran are returned as such; once
/// it ran, its result is in [`Ended`], and a failed release is an error
/// only when the mover succeeded.
pub fn run_leased<T, E: std::fmt::Display>(
    l: &Leased,
    waiting: &mut dyn FnMut(usize),
    mover: impl FnOnce(&Grant) -> Result<T, E>,
    set_of: impl Fn(&T) -> Option<Uuid>,
    full: impl Fn(&E) -> bool,
) -> Result<Ended<T, E>, ClientError> {
    let grant = l.broker.acquire(&l.request, waiting)?;
    let lease = grant.lease.id;
    let watch = match (&l.request, grant.volume) {
        (RequestBody::Backup { .. }, Some(volume)) => Some(SetWatch {
            catalog: l.catalog.clone(),
            volume,
            since: crate::engine::now() as i64,
        }),
        _ => None,
    };
    let hb = Heartbeat::start(
        l.broker.clone(),
        lease,
        period(&grant),
        watch.clone(),
        l.stop,
    );
    let result = mover(&grant);
    // A mover that failed before any beat saw its set: the set it began.
    let seen = hb.finish().or_else(|| {
        let failed = result.is_err();
        watch.as_ref().filter(|_| failed).and_then(begun_set)
    });
    // The set the mover ended with, and one the heartbeat saw if that is
    // another (a third-party copy that failed before the fallback's set).
    let seen = seen.map(|s| s.id);
    let set = result.as_ref().ok().and_then(set_of).or(seen);
    for id in seen.into_iter().filter(|s| Some(*s) != set).chain(set) {
        if let Err(e) = report(l, lease, id) {
            log::error!("reporting set {id} to the server failed: {e}");
        }
    }
    let is_full = result.as_ref().err().is_some_and(&full);
    match (l.broker.release(lease, is_full), &result) {
        (Err(e), Err(m)) => log::error!("releasing lease {lease}: {e} (after: {m})"),
        (Err(e), Ok(_)) => return Err(e),
        (Ok(()), _) => {}
    }
    Ok(Ended { grant, result, set })
}

/// Send the set as the mover's catalog has it.
fn report(l: &Leased, lease: LeaseId, id: Uuid) -> Result<(), ClientError> {
    let row = Catalog::open(&l.catalog)
        .and_then(|c| c.set(&id.to_string()))
        .map_err(|e| ClientError::Answer(format!("set {id} in {}: {e}", l.catalog.display())))?;
    let volumes = Catalog::open(&l.catalog)
        .map(|c| {
            row.parts
                .iter()
                .filter_map(|p| c.volume(p.volume).ok().flatten())
                .collect()
        })
        .unwrap_or_default();
    let body = ReportBody {
        set: row.info,
        outcome: row.outcome,
        parts: row.parts,
        volumes,
    };
    l.broker.report_body(lease, body)
}
