//! The running server: the [`Cop`] behind a lock, the catalog it writes
//! every change to, and the robot thread that carries out its jobs with the
//! [`Library`]. HTTP handlers call the methods here; nothing here knows
//! HTTP.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::{Event, EventKind};
use super::library::{lease_key, Inventory, Library, LibraryError, SERVER_KEY};
use super::state::{
    Cartridge, Cop, Drive, Job, JobResult, Lease, LeaseError, LeaseId, LeaseState, Now, Policy,
    Pool, Step, Ticket, TicketView, Want,
};
use crate::catalog::{Catalog, CatalogError, SetInfo, SetOutcome, SetRow, SetState, VolumeRow};
use crate::engine::volume::LabelState;

/// Why the server cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Denied(#[from] super::state::Denied),
    #[error("drive {serial} (--drive {url}) is not a data-transfer element of the library")]
    DriveNotInLibrary { serial: String, url: String },
    #[error("the report does not fit lease {lease}: {why}")]
    BadReport { lease: LeaseId, why: String },
    #[error("set {0} is not on a cartridge of this library")]
    SetNotInLibrary(Uuid),
    #[error(transparent)]
    Swap(#[from] super::state::SwapError),
    #[error("changing the cartridge failed: {0}")]
    SwapFailed(String),
}

mod span;
pub use span::SWAP_POLL;

/// A `--drive`: the address hosts use and its unit serial.
#[derive(Debug, Clone)]
pub struct DriveSpec {
    pub url: String,
    pub serial: String,
}

/// What a granted lease gives the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub lease: Lease,
    pub drive_url: String,
    pub drive_serial: String,
    /// The volume label's UUID of the cartridge.
    pub volume: Option<Uuid>,
    /// For a restore: the set as cataloged (its tape file and counts).
    pub set: Option<SetRow>,
    pub lease_secs: u64,
    /// On a drive with PERSISTENT RESERVE: the keys the host uses.
    #[serde(default)]
    pub reservation: Option<GrantKeys>,
}

/// The host registers `key` and holds a WRITE EXCLUSIVE reservation while
/// it uses the drive, taking it over (PREEMPT) from `server_key`, which
/// the server holds after fencing an expired host or writing a label.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct GrantKeys {
    pub key: u64,
    pub server_key: u64,
}

/// What `server status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub drives: Vec<Drive>,
    pub queue: Vec<QueuedView>,
    pub cartridges: Vec<Cartridge>,
    pub leases: Vec<Lease>,
}

/// A queued request as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedView {
    pub position: usize,
    pub ticket: Ticket,
    pub host: String,
    pub want: Want,
    pub since: Now,
}

struct Inner {
    cop: Cop,
    catalog: Catalog,
    serials: Vec<String>,
}

/// The server, shared by the HTTP threads and the robot thread.
pub struct Service {
    inner: Mutex<Inner>,
    changed: Condvar,
    library: Mutex<Box<dyn Library>>,
    stop: std::sync::atomic::AtomicBool,
}

/// Seconds since the epoch.
pub fn unix_now() -> Now {
    crate::engine::now()
}

impl Service {
    /// Rebuild the state from the catalog and the library's inventory.
    /// Leases that were active go on (their hosts may heartbeat in within
    /// a lease period, or they expire and are fenced as usual); leases the
    /// robot was preparing are recorded as failed.
    pub fn start(
        catalog: Catalog,
        mut library: Box<dyn Library>,
        drives: &[DriveSpec],
        policy: Policy,
    ) -> Result<Arc<Service>, ServiceError> {
        let now = unix_now();
        let inv = library.inventory()?;
        let mut drive_state = map_drives(&inv, drives, &catalog)?;
        for d in &mut drive_state {
            d.reservations = library.has_reservations(&d.serial);
        }
        let carts = merge_cartridges(&catalog, &inv)?;
        let mut cop = Cop::new(policy, drive_state, carts, catalog.last_lease()?);
        let serials: Vec<String> = drives.iter().map(|d| d.serial.clone()).collect();
        let mut leases = Vec::new();
        for s in catalog.outstanding_leases()? {
            let mut l = s.lease;
            l.drive = serials
                .iter()
                .position(|x| *x == s.drive_serial)
                .unwrap_or(usize::MAX);
            leases.push(l);
        }
        cop.restore_leases(leases, now);
        let svc = Service {
            inner: Mutex::new(Inner {
                cop,
                catalog,
                serials,
            }),
            changed: Condvar::new(),
            library: Mutex::new(library),
            stop: Default::default(),
        };
        {
            let mut g = svc.lock();
            for c in g.cop.cartridges.values() {
                g.catalog.upsert_cartridge(c)?;
            }
            g.catalog.append_events(&[Event {
                at: now,
                kind: EventKind::Started,
                lease: None,
                host: None,
                drive: None,
                barcode: None,
                detail: format!(
                    "{} drives, {} cartridges",
                    drives.len(),
                    g.cop.cartridges.len()
                ),
            }])?;
            svc.commit(&mut g)?;
        }
        Ok(Arc::new(svc))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write what changed to the catalog and wake the waiters.
    fn commit(&self, g: &mut Inner) -> Result<(), ServiceError> {
        let events = g.cop.drain_events();
        if events.is_empty() {
            return Ok(());
        }
        g.catalog.append_events(&events)?;
        for e in &events {
            if let Some(l) = e.lease.and_then(|id| g.cop.leases.get(&id)) {
                let serial = g.serials.get(l.drive).cloned().unwrap_or_default();
                g.catalog.upsert_lease(l, &serial)?;
            }
            if let Some(c) = e.barcode.as_ref().and_then(|b| g.cop.cartridges.get(b)) {
                g.catalog.upsert_cartridge(c)?;
            }
            if let Some(d) = e.drive.filter(|d| *d < g.serials.len()) {
                let fence = g.cop.drives[d].fenced.clone();
                g.catalog.set_fence(&g.serials[d], fence.as_ref())?;
            }
        }
        self.changed.notify_all();
        Ok(())
    }

    /// Queue a request of `host`.
    pub fn request(&self, host: &str, want: Want) -> Result<Ticket, ServiceError> {
        let mut g = self.lock();
        let t = g.cop.request(host, want, unix_now())?;
        self.commit(&mut g)?;
        Ok(t)
    }

    /// A restore request: the set's cartridge and tape file.
    pub fn restore_want(&self, set: &str) -> Result<Want, ServiceError> {
        let g = self.lock();
        let row = g.catalog.set(set)?;
        let barcode = g
            .cop
            .cartridges
            .values()
            .find(|c| c.volume == Some(row.info.volume))
            .map(|c| c.barcode.clone())
            .ok_or(ServiceError::SetNotInLibrary(row.info.id))?;
        Ok(Want::Restore {
            barcode,
            set: row.info.id,
            file: row.info.file_number,
        })
    }

    /// Where `ticket` stands, waiting up to `wait` for it to change from
    /// waiting or preparing (a long poll).
    pub fn poll(
        &self,
        ticket: Ticket,
        host: &str,
        wait: Duration,
    ) -> Result<TicketView, ServiceError> {
        let deadline = std::time::Instant::now() + wait;
        let mut g = self.lock();
        loop {
            let view = g.cop.poll(ticket, host, unix_now())?;
            let pending = matches!(
                view,
                TicketView::Waiting { .. } | TicketView::Preparing { .. }
            );
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !pending || left.is_zero() {
                return Ok(view);
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The details of an active lease of `host`.
    pub fn grant(&self, id: LeaseId, host: &str) -> Result<Grant, ServiceError> {
        let g = self.lock();
        let l = g.cop.leases.get(&id).ok_or(LeaseError::Unknown(id))?;
        if l.host != host {
            return Err(LeaseError::NotYours(id).into());
        }
        let d = &g.cop.drives[l.drive];
        let set = match &l.want {
            Want::Restore { set, .. } => Some(g.catalog.set(&set.to_string())?),
            Want::Backup { .. } => None,
        };
        Ok(Grant {
            lease: l.clone(),
            drive_url: d.url.clone(),
            drive_serial: d.serial.clone(),
            volume: g.cop.cartridges.get(&l.barcode).and_then(|c| c.volume),
            set,
            lease_secs: g.cop.policy.lease_secs,
            reservation: d.reservations.then(|| GrantKeys {
                key: lease_key(l.id),
                server_key: SERVER_KEY,
            }),
        })
    }

    /// Renew a lease; the set being written, once known, is cataloged as
    /// running so that an expiry can mark it failed.
    pub fn heartbeat(
        &self,
        id: LeaseId,
        host: &str,
        set: Option<&SetInfo>,
    ) -> Result<Now, ServiceError> {
        let mut g = self.lock();
        if let Some(s) = set {
            check_volume(&g, id, s)?;
            g.catalog.begin_remote_set(s, host)?;
        }
        let exp = g.cop.heartbeat(id, host, set.map(|s| s.id), unix_now())?;
        self.commit(&mut g)?;
        Ok(exp)
    }

    /// The host's report of its set: cataloged as it ended.
    pub fn report(
        &self,
        id: LeaseId,
        host: &str,
        set: &SetInfo,
        outcome: &SetOutcome,
    ) -> Result<(), ServiceError> {
        let g = self.lock();
        let l = g.cop.leases.get(&id).ok_or(LeaseError::Unknown(id))?;
        if l.host != host {
            return Err(LeaseError::NotYours(id).into());
        }
        if l.state != LeaseState::Active {
            return Err(LeaseError::NotActive { id, state: l.state }.into());
        }
        check_volume(&g, id, set)?;
        g.catalog.begin_remote_set(set, host)?;
        g.catalog.finish_set(set.id, outcome)?;
        let mut vol = g
            .catalog
            .volume(set.volume)?
            .ok_or(ServiceError::SetNotInLibrary(set.id))?;
        vol.last_file = Some(
            vol.last_file
                .map_or(set.file_number, |f| f.max(set.file_number)),
        );
        g.catalog.upsert_volume(&vol)?;
        Ok(())
    }

    /// The host is done; `full` says its cartridge reached end of medium.
    pub fn release(&self, id: LeaseId, host: &str, full: bool) -> Result<(), ServiceError> {
        let mut g = self.lock();
        g.cop.release(id, host, full, unix_now())?;
        self.commit(&mut g)
    }

    /// An operator releases a fenced drive.
    pub fn operator_release(&self, drive: usize) -> Result<(), ServiceError> {
        let mut g = self.lock();
        g.cop.operator_release(drive, unix_now())?;
        self.commit(&mut g)
    }

    pub fn status(&self) -> Status {
        let g = self.lock();
        Status {
            drives: g.cop.drives.clone(),
            queue: g
                .cop
                .queue()
                .enumerate()
                .map(|(i, w)| QueuedView {
                    position: i + 1,
                    ticket: w.ticket,
                    host: w.host.clone(),
                    want: w.want.clone(),
                    since: w.since,
                })
                .collect(),
            cartridges: g.cop.cartridges.values().cloned().collect(),
            leases: g
                .cop
                .leases
                .values()
                .filter(|l| matches!(l.state, LeaseState::Active | LeaseState::Preparing))
                .cloned()
                .collect(),
        }
    }

    /// The event log.
    pub fn events(&self) -> Result<Vec<Event>, ServiceError> {
        Ok(self.lock().catalog.server_events()?)
    }

    /// Ask the robot thread to stop.
    pub fn shutdown(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Start the robot thread: time-outs every `tick`, robot jobs as
    /// they come.
    pub fn spawn_robot(self: &Arc<Self>, tick: Duration) -> JoinHandle<()> {
        let svc = Arc::clone(self);
        std::thread::spawn(move || svc.robot_loop(tick))
    }

    fn robot_loop(&self, tick: Duration) {
        while !self.stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Err(e) = self.robot_step(tick) {
                log::error!("server: {e}");
                std::thread::sleep(tick);
            }
        }
    }

    /// One round: expire, take a job, do it, record it.
    pub fn robot_step(&self, tick: Duration) -> Result<(), ServiceError> {
        let job = {
            let mut g = self.lock();
            let expired = g.cop.tick(unix_now());
            for l in &expired {
                fail_expired_set(&g.catalog, l)?;
            }
            self.commit(&mut g)?;
            match g.cop.next_job() {
                Some(j) => {
                    let d = &g.cop.drives[j.drive];
                    Some((j.clone(), d.element, d.serial.clone()))
                }
                None => {
                    let _ = self.changed.wait_timeout(g, tick);
                    None
                }
            }
        };
        let Some((job, element, serial)) = job else {
            return Ok(());
        };
        let result = self.run_job(&job, element, &serial);
        let mut g = self.lock();
        if let JobResult::Labelled(v) = &result {
            let name = label_name(&job);
            g.catalog.upsert_volume(&VolumeRow {
                id: *v,
                name,
                created: unix_now() as i64,
                last_file: None,
            })?;
        }
        g.cop.job_done(&job, result, unix_now());
        self.commit(&mut g)
    }

    fn run_job(&self, job: &Job, element: u16, serial: &str) -> JobResult {
        let mut lib = self.library.lock().unwrap_or_else(|p| p.into_inner());
        let mut result = JobResult::Done;
        let mut holds = None;
        for step in &job.steps {
            let r = run_step(lib.as_mut(), step, element, serial);
            match (step, r) {
                (Step::Unload { .. }, Ok(JobResult::Done)) => holds = None,
                (Step::Load { barcode, .. }, Ok(JobResult::Done)) => holds = Some(barcode.clone()),
                (_, Ok(JobResult::Done)) => {}
                (_, Ok(other)) => result = other,
                (Step::Unload { barcode, .. }, Err(e)) => {
                    return JobResult::Failed {
                        error: e.to_string(),
                        holds: Some(barcode.clone()),
                    }
                }
                (_, Err(e)) => {
                    return JobResult::Failed {
                        error: e.to_string(),
                        holds,
                    }
                }
            }
            if matches!(result, JobResult::Foreign(_)) {
                break;
            }
        }
        result
    }
}

fn label_name(job: &Job) -> String {
    job.steps
        .iter()
        .find_map(|s| match s {
            Step::Label { name } => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// One robot step against the library.
fn run_step(
    lib: &mut dyn Library,
    step: &Step,
    element: u16,
    serial: &str,
) -> Result<JobResult, LibraryError> {
    Ok(match step {
        Step::Unload { home, .. } => {
            lib.move_medium(element, *home)?;
            JobResult::Done
        }
        Step::Load { home, .. } => {
            lib.move_medium(*home, element)?;
            JobResult::Done
        }
        Step::CheckLabel { volume } => match lib.read_label(serial)? {
            LabelState::Ours(l) if l.uuid == *volume => JobResult::Done,
            other => JobResult::Foreign(format!(
                "expected volume {volume}, found {}",
                other.describe()
            )),
        },
        Step::Fence { victim } => {
            lib.fence(serial, *victim)?;
            JobResult::Done
        }
        // Only a blank tape (or one that starts with a filemark, holding
        // nothing) is labelled: never write over anything.
        Step::Label { name } => match lib.read_label(serial)? {
            LabelState::Blank | LabelState::LeadingFilemark => {
                JobResult::Labelled(lib.write_label(serial, name)?.uuid)
            }
            other => JobResult::Foreign(format!(
                "a scratch cartridge that is not blank: {}; it is not overwritten",
                other.describe()
            )),
        },
    })
}

/// The set a report or heartbeat names must be on the lease's cartridge.
fn check_volume(g: &Inner, id: LeaseId, set: &SetInfo) -> Result<(), ServiceError> {
    let l = g.cop.leases.get(&id).ok_or(LeaseError::Unknown(id))?;
    let vol = g.cop.cartridges.get(&l.barcode).and_then(|c| c.volume);
    // A multi-volume set began on a cartridge the lease held before.
    if vol != Some(set.volume) && !Service::lease_held_volume(g, id, set.volume) {
        return Err(ServiceError::BadReport {
            lease: id,
            why: format!(
                "set {} is on volume {}, the lease's cartridge {} is {vol:?}",
                set.id, set.volume, l.barcode
            ),
        });
    }
    Ok(())
}

/// The set of an expired lease failed; the next set on that cartridge is
/// placed after its filemark (the host's append point closes a file left
/// open).
fn fail_expired_set(catalog: &Catalog, l: &Lease) -> Result<(), ServiceError> {
    let Some(id) = l.set else {
        return Ok(());
    };
    let row = catalog.set(&id.to_string())?;
    if row.outcome.state != SetState::Running {
        return Ok(());
    }
    let now = unix_now();
    catalog.finish_set(
        id,
        &SetOutcome {
            state: SetState::Failed,
            records: 0,
            bytes: 0,
            digest: None,
            ended: now as i64,
            seconds: now.saturating_sub(l.granted) as f64,
            error: Some(format!(
                "lease {} expired: host {} stopped heartbeating; drive fenced (by PREEMPT AND ABORT where it has PERSISTENT RESERVE)",
                l.id, l.host
            )),
        },
    )?;
    Ok(())
}

/// Tie each `--drive` to its data-transfer element by serial, never by
/// order; fences survive restarts.
fn map_drives(
    inv: &Inventory,
    drives: &[DriveSpec],
    catalog: &Catalog,
) -> Result<Vec<Drive>, ServiceError> {
    let fences: BTreeMap<String, _> = catalog.server_fences()?.into_iter().collect();
    drives
        .iter()
        .map(|spec| {
            let el = inv
                .drives
                .iter()
                .find(|d| d.serial.trim() == spec.serial.trim())
                .ok_or_else(|| ServiceError::DriveNotInLibrary {
                    serial: spec.serial.clone(),
                    url: spec.url.clone(),
                })?;
            Ok(Drive {
                element: el.address,
                serial: spec.serial.clone(),
                url: spec.url.clone(),
                holds: el.barcode.clone(),
                lease: None,
                fenced: fences.get(&spec.serial).cloned(),
                idle_since: el.barcode.as_ref().map(|_| unix_now()),
                busy: false,
                reservations: false,
            })
        })
        .collect()
}

/// The catalog's cartridges plus any new barcode of the inventory (as
/// scratch, home where it sits). A cartridge in a drive whose home the
/// catalog does not know goes home to the slot it came from, else to the
/// first empty slot.
fn merge_cartridges(
    catalog: &Catalog,
    inv: &Inventory,
) -> Result<BTreeMap<String, Cartridge>, ServiceError> {
    let mut carts: BTreeMap<String, Cartridge> = catalog
        .server_cartridges()?
        .into_iter()
        .map(|c| (c.barcode.clone(), c))
        .collect();
    let mut empty = inv
        .slots
        .iter()
        .filter(|s| s.barcode.is_none())
        .map(|s| s.address);
    let found = inv
        .slots
        .iter()
        .filter_map(|s| s.barcode.clone().map(|b| (b, Some(s.address))))
        .chain(
            inv.drives
                .iter()
                .filter_map(|d| d.barcode.clone().map(|b| (b, d.source))),
        );
    for (b, home) in found {
        if carts.contains_key(&b) {
            continue;
        }
        let Some(home) = home.or_else(|| empty.next()) else {
            continue;
        };
        carts.insert(
            b.clone(),
            Cartridge {
                barcode: b,
                home,
                pool: Pool::Scratch,
                volume: None,
                note: None,
                missing: false,
            },
        );
    }
    let seen: std::collections::BTreeSet<&str> = inv
        .slots
        .iter()
        .filter_map(|s| s.barcode.as_deref())
        .chain(inv.drives.iter().filter_map(|d| d.barcode.as_deref()))
        .collect();
    for c in carts.values_mut() {
        c.missing = !seen.contains(c.barcode.as_str());
        if c.missing {
            log::warn!(
                "cartridge {} ({}) is in the catalog but not in the library",
                c.barcode,
                c.pool.text()
            );
        }
    }
    Ok(carts)
}
