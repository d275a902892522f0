//! The traffic cop's state: drives, cartridges, leases and the queue.
//!
//! [`Cop`] decides and does no I/O (quinn-proto's split): every call takes
//! the time as an argument, changes the state and appends [`Event`]s; the
//! robot work a decision needs (unload, load, check or write a label) is
//! handed out as a [`Job`] that the service's robot thread carries out and
//! reports back with [`Cop::job_done`]. One invariant is kept by
//! construction: a drive has at most one lease, and a lease is created
//! only on a drive with none that is not fenced.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::{Event, EventKind};

/// Seconds since the epoch, passed in by the caller.
pub type Now = u64;

/// A lease's number, unique for the catalog's life.
pub type LeaseId = u64;

/// A queued request's number (not persisted: see `Cop::restore`).
pub type Ticket = u64;

/// Where a cartridge belongs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Pool {
    /// Never written by us: labelled on its first use.
    Scratch,
    /// Labelled for the named pool, with room left.
    Open(String),
    /// The named pool's cartridge reached end of medium.
    Full(String),
    /// Not to be written: a foreign label, or taken out by an operator.
    Retired,
}

impl Pool {
    /// `scratch`, `open:NAME`, `full:NAME`, `retired`: the catalog's text.
    pub fn text(&self) -> String {
        match self {
            Pool::Scratch => "scratch".into(),
            Pool::Open(n) => format!("open:{n}"),
            Pool::Full(n) => format!("full:{n}"),
            Pool::Retired => "retired".into(),
        }
    }

    /// The inverse of [`Pool::text`].
    pub fn from_text(s: &str) -> Option<Pool> {
        match s.split_once(':') {
            None if s == "scratch" => Some(Pool::Scratch),
            None if s == "retired" => Some(Pool::Retired),
            Some(("open", n)) => Some(Pool::Open(n.into())),
            Some(("full", n)) => Some(Pool::Full(n.into())),
            _ => None,
        }
    }
}

/// A barcoded cartridge of the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cartridge {
    pub barcode: String,
    /// The storage element it returns to.
    pub home: u16,
    pub pool: Pool,
    /// The volume UUID of its label, once labelled by us.
    pub volume: Option<Uuid>,
    /// Why it was retired, or another note for the operator.
    pub note: Option<String>,
    /// Not seen by READ ELEMENT STATUS at start: kept in the catalog (and
    /// shown), never planned with.
    #[serde(default)]
    pub missing: bool,
}

/// Why a drive is kept from everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The lease that expired on it.
    pub lease: LeaseId,
    pub host: String,
    pub since: Now,
}

/// A tape drive of the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drive {
    /// Its data-transfer element address.
    pub element: u16,
    /// Unit serial number: how the element is tied to its LU.
    pub serial: String,
    /// The drive's address for hosts (no secrets).
    pub url: String,
    /// The cartridge in it.
    pub holds: Option<String>,
    pub lease: Option<LeaseId>,
    pub fenced: Option<Fence>,
    /// Since when it holds a cartridge with no lease.
    pub idle_since: Option<Now>,
    /// The robot is working on it.
    pub busy: bool,
    /// It has PERSISTENT RESERVE: hosts hold a reservation while they
    /// use it, and an expired lease is fenced by PREEMPT AND ABORT.
    #[serde(default)]
    pub reservations: bool,
}

impl Drive {
    /// Free for a new lease: nobody holds it and the robot is not on it.
    fn free(&self) -> bool {
        self.lease.is_none() && self.fenced.is_none() && !self.busy
    }
}

/// What a host asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Want {
    /// A drive with a writable cartridge of `pool`; for a third-party
    /// copy, the copy manager that writes it (it reaches the drive over
    /// its own session; the requesting host holds the lease for it).
    Backup {
        pool: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        copy_manager: Option<String>,
        /// The server runs this mover itself (a serverless job): after a
        /// restart it is known to be gone, so its lease ends at once.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_server: bool,
    },
    /// The drive with `barcode` loaded, to read tape file `file`.
    Restore {
        barcode: String,
        set: Uuid,
        file: u32,
    },
}

/// Where a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// The robot is loading and checking the cartridge.
    Preparing,
    /// The host may use the drive.
    Active,
    Released,
    /// The host stopped heartbeating: its set failed and the drive is fenced.
    Expired,
    /// The robot could not prepare the drive.
    Failed,
}

/// A host's right to one drive until `expires`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: LeaseId,
    pub host: String,
    /// Index into the drives.
    pub drive: usize,
    pub barcode: String,
    pub want: Want,
    pub state: LeaseState,
    pub granted: Now,
    pub expires: Now,
    /// The set the host said it is writing (heartbeats carry it).
    pub set: Option<Uuid>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One robot step, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Move the drive's cartridge back to its home slot.
    Unload { barcode: String, home: u16 },
    /// Move the cartridge from its home slot into the drive.
    Load { barcode: String, home: u16 },
    /// Check the label: it must be volume `volume`.
    CheckLabel { volume: Uuid },
    /// Write a label named `name` on a blank scratch cartridge.
    Label { name: String },
    /// PREEMPT AND ABORT the registrations under `victim` (an expired
    /// lease's key).
    Fence { victim: u64 },
}

/// Robot work on one drive, for a lease or for the idle policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub drive: usize,
    pub lease: Option<LeaseId>,
    pub steps: Vec<Step>,
}

/// What the robot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    /// A label was written (volume UUID).
    Labelled(Uuid),
    /// The cartridge is not what the catalog says: retire it, try another.
    Foreign(String),
    /// The robot or drive failed; the cartridge is where `holds` says.
    Failed {
        error: String,
        holds: Option<String>,
    },
}

/// Why a request is refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Denied {
    #[error("pool {0:?} has no cartridge left and there is no scratch cartridge")]
    EmptyPool(String),
    #[error("cartridge {0} is not in the library")]
    UnknownCartridge(String),
    #[error("cartridge {barcode} is in drive {drive}, which is fenced; an operator must run `sanmover server drives release {drive} --force`")]
    CartridgeFenced { barcode: String, drive: usize },
    #[error("waited {0} s in the queue without getting a drive")]
    QueueTimeout(u64),
    #[error("the library has no drive that is not fenced")]
    AllFenced,
    #[error("preparing the drive failed: {0}")]
    PrepareFailed(String),
    #[error("pool name {0:?} is empty, too long or has a ':'")]
    BadPool(String),
}

/// Why a lease operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("no lease {0}")]
    Unknown(LeaseId),
    #[error("lease {0} belongs to another host")]
    NotYours(LeaseId),
    #[error("lease {id} is {state:?}, not active")]
    NotActive { id: LeaseId, state: LeaseState },
    #[error("no drive {0}")]
    NoDrive(usize),
    #[error("drive {0} is not fenced")]
    NotFenced(usize),
    #[error("no ticket {0} (the server may have restarted: request again)")]
    UnknownTicket(Ticket),
}

/// A queued request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiter {
    pub ticket: Ticket,
    pub host: String,
    pub want: Want,
    pub since: Now,
    /// Given up at this time.
    pub deadline: Now,
    #[serde(skip)]
    last_poll: Now,
}

/// What a waiting host learns when it polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TicketView {
    /// 1 is next.
    Waiting {
        position: usize,
    },
    /// The robot is preparing the drive for this lease.
    Preparing {
        lease: LeaseId,
    },
    Granted {
        lease: LeaseId,
    },
    Denied {
        reason: Denied,
    },
}

/// Timing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A lease lives this long past its last heartbeat.
    pub lease_secs: u64,
    /// A cartridge left this long in a drive with no lease goes home.
    pub idle_unload_secs: u64,
    /// A request waits at most this long.
    pub queue_secs: u64,
    /// A waiter that has not polled for this long has gone away.
    pub poll_grace_secs: u64,
}

/// The longest pool name (it becomes part of a volume label's name).
pub const MAX_POOL: usize = 32;

/// The server's state.
#[derive(Debug, Clone)]
pub struct Cop {
    pub policy: Policy,
    pub drives: Vec<Drive>,
    pub cartridges: BTreeMap<String, Cartridge>,
    pub leases: BTreeMap<LeaseId, Lease>,
    queue: VecDeque<Waiter>,
    /// Answers for tickets that left the queue, until polled once.
    answered: BTreeMap<Ticket, TicketView>,
    jobs: VecDeque<Job>,
    next_lease: LeaseId,
    next_ticket: Ticket,
    events: Vec<Event>,
}

impl Cop {
    /// A cop over `drives` and `cartridges`; lease ids continue after
    /// `last_lease` (the catalog's highest).
    pub fn new(
        policy: Policy,
        drives: Vec<Drive>,
        cartridges: BTreeMap<String, Cartridge>,
        last_lease: LeaseId,
    ) -> Cop {
        Cop {
            policy,
            drives,
            cartridges,
            leases: BTreeMap::new(),
            queue: VecDeque::new(),
            answered: BTreeMap::new(),
            jobs: VecDeque::new(),
            next_lease: last_lease + 1,
            next_ticket: 1,
            events: Vec::new(),
        }
    }

    /// Take the events recorded since the last call (for the catalog).
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The queue, head first.
    pub fn queue(&self) -> impl Iterator<Item = &Waiter> {
        self.queue.iter()
    }

    fn event(&mut self, at: Now, kind: EventKind, lease: Option<LeaseId>, detail: String) {
        let (host, drive, barcode) = match lease.and_then(|l| self.leases.get(&l)) {
            Some(l) => (Some(l.host.clone()), Some(l.drive), Some(l.barcode.clone())),
            None => (None, None, None),
        };
        self.events.push(Event {
            at,
            kind,
            lease,
            host,
            drive,
            barcode,
            detail,
        });
    }

    fn drive_event(&mut self, at: Now, kind: EventKind, drive: usize, barcode: Option<String>) {
        let detail = format!("drive {drive}");
        self.events.push(Event {
            at,
            kind,
            lease: None,
            host: None,
            drive: Some(drive),
            barcode,
            detail,
        });
    }

    /// Queue `want` for `host`; the answer says where it stands.
    pub fn request(&mut self, host: &str, want: Want, now: Now) -> Result<Ticket, Denied> {
        self.check_possible(&want)?;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queue.push_back(Waiter {
            ticket,
            host: host.to_string(),
            want,
            since: now,
            deadline: now + self.policy.queue_secs,
            last_poll: now,
        });
        self.schedule(now);
        Ok(ticket)
    }

    /// Refuse at once what can never be served.
    fn check_possible(&self, want: &Want) -> Result<(), Denied> {
        if self.drives.iter().all(|d| d.fenced.is_some()) {
            return Err(Denied::AllFenced);
        }
        match want {
            Want::Backup { pool, .. } => {
                if pool.is_empty() || pool.len() > MAX_POOL || pool.contains(':') {
                    return Err(Denied::BadPool(pool.clone()));
                }
                let usable = self
                    .cartridges
                    .values()
                    .filter(|c| !c.missing)
                    .any(|c| c.pool == Pool::Scratch || c.pool == Pool::Open(pool.clone()));
                if !usable {
                    return Err(Denied::EmptyPool(pool.clone()));
                }
            }
            Want::Restore { barcode, .. } => {
                if self.cartridges.get(barcode).is_none_or(|c| c.missing) {
                    return Err(Denied::UnknownCartridge(barcode.clone()));
                }
                if let Some(d) = self.drive_holding(barcode) {
                    if self.drives[d].fenced.is_some() {
                        return Err(Denied::CartridgeFenced {
                            barcode: barcode.clone(),
                            drive: d,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn drive_holding(&self, barcode: &str) -> Option<usize> {
        self.drives
            .iter()
            .position(|d| d.holds.as_deref() == Some(barcode))
    }

    /// Where `ticket` stands; polling also keeps the waiter in the queue.
    pub fn poll(&mut self, ticket: Ticket, host: &str, now: Now) -> Result<TicketView, LeaseError> {
        if let Some(pos) = self
            .queue
            .iter()
            .position(|w| w.ticket == ticket && w.host == host)
        {
            self.queue[pos].last_poll = now;
            return Ok(TicketView::Waiting { position: pos + 1 });
        }
        let view = self
            .answered
            .get(&ticket)
            .cloned()
            .ok_or(LeaseError::UnknownTicket(ticket))?;
        let view = match view {
            TicketView::Preparing { lease } | TicketView::Granted { lease } => {
                match self.leases.get(&lease).map(|l| (l.state, l.error.clone())) {
                    Some((LeaseState::Preparing, _)) => TicketView::Preparing { lease },
                    Some((LeaseState::Failed, e)) => TicketView::Denied {
                        reason: Denied::PrepareFailed(e.unwrap_or_default()),
                    },
                    _ => TicketView::Granted { lease },
                }
            }
            v => v,
        };
        if !matches!(view, TicketView::Preparing { .. }) {
            self.answered.remove(&ticket);
        }
        Ok(view)
    }

    /// Serve the head of the queue while a drive can take it (strict FIFO:
    /// a request never overtakes an earlier one).
    pub fn schedule(&mut self, now: Now) {
        while let Some(head) = self.queue.front() {
            let Some((drive, barcode, steps)) = self.plan(&head.want) else {
                break;
            };
            let w = self.queue.pop_front().expect("head exists");
            let id = self.grant(&w, drive, &barcode, now);
            self.drives[drive].busy = true;
            self.jobs.push_back(Job {
                drive,
                lease: Some(id),
                steps,
            });
            self.answered
                .insert(w.ticket, TicketView::Preparing { lease: id });
        }
    }

    fn grant(&mut self, w: &Waiter, drive: usize, barcode: &str, now: Now) -> LeaseId {
        let id = self.next_lease;
        self.next_lease += 1;
        self.leases.insert(
            id,
            Lease {
                id,
                host: w.host.clone(),
                drive,
                barcode: barcode.to_string(),
                want: w.want.clone(),
                state: LeaseState::Preparing,
                granted: now,
                expires: now + self.policy.lease_secs,
                set: None,
                error: None,
            },
        );
        let d = &mut self.drives[drive];
        assert!(d.lease.is_none() && d.fenced.is_none(), "drive given twice");
        d.lease = Some(id);
        d.idle_since = None;
        self.event(
            now,
            EventKind::LeaseGranted,
            Some(id),
            format!("{:?}", w.want),
        );
        id
    }

    /// A drive, a cartridge and the robot steps for `want`, if it can be
    /// served now.
    fn plan(&self, want: &Want) -> Option<(usize, String, Vec<Step>)> {
        match want {
            Want::Backup { pool, .. } => self.plan_backup(pool),
            Want::Restore { barcode, .. } => self.plan_restore(barcode),
        }
    }

    /// Held by a drive that is not free, or promised to a lease whose
    /// drive the robot has not loaded yet.
    fn in_use(&self, barcode: &str) -> bool {
        self.drive_holding(barcode)
            .is_some_and(|d| !self.drives[d].free())
            || self.leases.values().any(|l| {
                l.barcode == barcode
                    && matches!(l.state, LeaseState::Preparing | LeaseState::Active)
            })
    }

    fn plan_backup(&self, pool: &str) -> Option<(usize, String, Vec<Step>)> {
        let open = Pool::Open(pool.to_string());
        // A free drive already holding an open cartridge of the pool.
        if let Some(d) = self.drives.iter().position(|d| {
            d.free()
                && d.holds
                    .as_ref()
                    .is_some_and(|b| self.cartridges.get(b).is_some_and(|c| c.pool == open))
        }) {
            let b = self.drives[d].holds.clone()?;
            let volume = self.cartridges[&b].volume?;
            return Some((d, b, vec![Step::CheckLabel { volume }]));
        }
        let pick = |p: &Pool| {
            self.cartridges.values().find(|c| {
                &c.pool == p
                    && !c.missing
                    && !self.in_use(&c.barcode)
                    && self.drive_holding(&c.barcode).is_none()
            })
        };
        let cart = pick(&open).or_else(|| pick(&Pool::Scratch))?;
        let drive = self.free_drive()?;
        let mut steps = self.unload_steps(drive);
        steps.push(Step::Load {
            barcode: cart.barcode.clone(),
            home: cart.home,
        });
        steps.push(match (&cart.pool, cart.volume) {
            (Pool::Open(_), Some(volume)) => Step::CheckLabel { volume },
            _ => Step::Label {
                name: format!("{pool}-{}", cart.barcode),
            },
        });
        Some((drive, cart.barcode.clone(), steps))
    }

    fn plan_restore(&self, barcode: &str) -> Option<(usize, String, Vec<Step>)> {
        let cart = self.cartridges.get(barcode)?;
        if self.in_use(barcode) {
            return None;
        }
        let check = cart.volume.map(|volume| Step::CheckLabel { volume });
        if let Some(d) = self.drive_holding(barcode) {
            return self.drives[d]
                .free()
                .then(|| (d, barcode.to_string(), check.into_iter().collect()));
        }
        let drive = self.free_drive()?;
        let mut steps = self.unload_steps(drive);
        steps.push(Step::Load {
            barcode: barcode.to_string(),
            home: cart.home,
        });
        steps.extend(check);
        Some((drive, barcode.to_string(), steps))
    }

    /// A free drive, an empty one first, else the one idle longest.
    fn free_drive(&self) -> Option<usize> {
        let free = || self.drives.iter().enumerate().filter(|(_, d)| d.free());
        free()
            .find(|(_, d)| d.holds.is_none())
            .or_else(|| free().min_by_key(|(_, d)| d.idle_since.unwrap_or(0)))
            .map(|(i, _)| i)
    }

    fn unload_steps(&self, drive: usize) -> Vec<Step> {
        let held = self.drives[drive].holds.as_ref();
        held.and_then(|b| self.cartridges.get(b))
            .map(|c| Step::Unload {
                barcode: c.barcode.clone(),
                home: c.home,
            })
            .into_iter()
            .collect()
    }

    /// The next robot job, if any.
    pub fn next_job(&mut self) -> Option<Job> {
        self.jobs.pop_front()
    }

    /// The robot finished `job` with `result`.
    pub fn job_done(&mut self, job: &Job, result: JobResult, now: Now) {
        let d = job.drive;
        self.drives[d].busy = false;
        self.apply_moves(job, &result, now);
        let fence = job.steps.iter().any(|s| matches!(s, Step::Fence { .. }));
        match job.lease {
            Some(id) => self.lease_prepared(id, result, now),
            None if fence => self.fence_done(d, &result, now),
            None => {
                if let JobResult::Failed { error, .. } = &result {
                    self.event(
                        now,
                        EventKind::RobotFailed,
                        None,
                        format!("drive {d}: {error}"),
                    );
                }
            }
        }
        self.schedule(now);
    }

    /// Where the cartridges are after `job`.
    fn apply_moves(&mut self, job: &Job, result: &JobResult, now: Now) {
        let d = job.drive;
        let before = self.drives[d].holds.clone();
        let moves = job
            .steps
            .iter()
            .any(|s| matches!(s, Step::Unload { .. } | Step::Load { .. }));
        let after = match result {
            _ if !moves => before.clone(),
            JobResult::Failed { holds, .. } => holds.clone(),
            _ => job.steps.iter().fold(before.clone(), |h, s| match s {
                Step::Unload { .. } => None,
                Step::Load { barcode, .. } => Some(barcode.clone()),
                _ => h,
            }),
        };
        if before != after {
            if let Some(b) = before {
                self.drive_event(now, EventKind::Unloaded, d, Some(b));
            }
            if let Some(b) = after.clone() {
                self.drive_event(now, EventKind::Loaded, d, Some(b));
            }
        }
        self.drives[d].holds = after;
        if self.drives[d].lease.is_none() && self.drives[d].holds.is_some() {
            self.drives[d].idle_since = Some(now);
        }
    }

    fn lease_prepared(&mut self, id: LeaseId, result: JobResult, now: Now) {
        let Some(lease) = self.leases.get_mut(&id) else {
            return;
        };
        let barcode = lease.barcode.clone();
        match result {
            JobResult::Done | JobResult::Labelled(_) => {
                lease.state = LeaseState::Active;
                lease.expires = now + self.policy.lease_secs;
                if let (JobResult::Labelled(v), Want::Backup { pool, .. }) = (&result, &lease.want)
                {
                    let pool = pool.clone();
                    if let Some(c) = self.cartridges.get_mut(&barcode) {
                        c.pool = Pool::Open(pool);
                        c.volume = Some(*v);
                    }
                    self.event(now, EventKind::Labelled, Some(id), v.to_string());
                }
                self.event(now, EventKind::LeaseActive, Some(id), String::new());
            }
            JobResult::Foreign(what) => {
                if let Some(c) = self.cartridges.get_mut(&barcode) {
                    c.pool = Pool::Retired;
                    c.note = Some(what.clone());
                }
                self.event(now, EventKind::Retired, Some(id), what.clone());
                self.fail_lease(id, format!("cartridge {barcode}: {what}"), now);
            }
            JobResult::Failed { error, .. } => self.fail_lease(id, error, now),
        }
    }

    fn fail_lease(&mut self, id: LeaseId, error: String, now: Now) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.state = LeaseState::Failed;
            l.error = Some(error.clone());
            let d = l.drive;
            self.drives[d].lease = None;
            if self.drives[d].holds.is_some() {
                self.drives[d].idle_since = Some(now);
            }
        }
        self.event(now, EventKind::LeaseFailed, Some(id), error);
    }

    fn active_lease(&mut self, id: LeaseId, host: &str) -> Result<&mut Lease, LeaseError> {
        let l = self.leases.get_mut(&id).ok_or(LeaseError::Unknown(id))?;
        if l.host != host {
            return Err(LeaseError::NotYours(id));
        }
        if l.state != LeaseState::Active {
            return Err(LeaseError::NotActive { id, state: l.state });
        }
        Ok(l)
    }

    /// Renew the lease; `set` names the set being written, once known.
    pub fn heartbeat(
        &mut self,
        id: LeaseId,
        host: &str,
        set: Option<Uuid>,
        now: Now,
    ) -> Result<Now, LeaseError> {
        let secs = self.policy.lease_secs;
        let l = self.active_lease(id, host)?;
        l.expires = now + secs;
        let first = set.is_some() && l.set.is_none();
        if first {
            l.set = set;
        }
        let expires = l.expires;
        if first {
            self.event(now, EventKind::SetStarted, Some(id), format!("{set:?}"));
        }
        Ok(expires)
    }

    /// The host is done with the drive; with `full`, its cartridge reached
    /// end of medium and leaves the pool's open cartridges.
    pub fn release(
        &mut self,
        id: LeaseId,
        host: &str,
        full: bool,
        now: Now,
    ) -> Result<(), LeaseError> {
        let l = self.active_lease(id, host)?;
        l.state = LeaseState::Released;
        let (d, b, want) = (l.drive, l.barcode.clone(), l.want.clone());
        if let (true, Want::Backup { pool, .. }) = (full, want) {
            if let Some(c) = self.cartridges.get_mut(&b) {
                c.pool = Pool::Full(pool);
            }
        }
        self.drives[d].lease = None;
        self.drives[d].idle_since = Some(now);
        self.event(now, EventKind::LeaseReleased, Some(id), String::new());
        self.reclaim(d, id);
        self.schedule(now);
        Ok(())
    }

    /// Time passes: leases expire (their drives are fenced), waiters time
    /// out or are dropped when they stop polling, idle drives unload.
    /// Returns the leases that expired, whose sets the caller marks failed.
    pub fn tick(&mut self, now: Now) -> Vec<Lease> {
        let expired: Vec<LeaseId> = self
            .leases
            .values()
            .filter(|l| l.state == LeaseState::Active && l.expires <= now)
            .map(|l| l.id)
            .collect();
        let mut out = Vec::new();
        for id in expired {
            out.push(self.expire(id, now));
        }
        self.drop_waiters(now);
        self.idle_unload(now);
        self.schedule(now);
        out
    }

    /// The drive is fenced. Without PERSISTENT RESERVE it stays so until
    /// an operator releases it; with it, the robot preempts the host's
    /// registration first and the drive is free once that is done.
    fn expire(&mut self, id: LeaseId, now: Now) -> Lease {
        let l = self.leases.get_mut(&id).expect("listed above");
        l.state = LeaseState::Expired;
        let lease = l.clone();
        let d = &mut self.drives[lease.drive];
        d.lease = None;
        d.fenced = Some(Fence {
            lease: id,
            host: lease.host.clone(),
            since: now,
        });
        let preempt = d.reservations;
        if preempt {
            d.busy = true;
            self.jobs.push_back(Job {
                drive: lease.drive,
                lease: None,
                steps: vec![Step::Fence {
                    victim: super::library::lease_key(id),
                }],
            });
        }
        self.event(now, EventKind::LeaseExpired, Some(id), String::new());
        let how = if preempt {
            "; PREEMPT AND ABORT of its reservation key"
        } else {
            "; until an operator releases it"
        };
        self.event(
            now,
            EventKind::Fenced,
            Some(id),
            format!("drive {}{how}", lease.drive),
        );
        lease
    }

    /// On a drive with PERSISTENT RESERVE the server takes the reservation
    /// back from a host that released its lease, so that it is never
    /// without one: a host fenced earlier is kept out between leases.
    fn reclaim(&mut self, drive: usize, id: LeaseId) {
        if self.drives[drive].reservations {
            self.drives[drive].busy = true;
            self.jobs.push_back(Job {
                drive,
                lease: None,
                steps: vec![Step::Fence {
                    victim: super::library::lease_key(id),
                }],
            });
        }
    }

    /// A fence by PREEMPT AND ABORT finished: the drive may be given out
    /// again. If it failed, the drive stays fenced for an operator.
    fn fence_done(&mut self, drive: usize, result: &JobResult, now: Now) {
        let d = &mut self.drives[drive];
        let lease = d.fenced.as_ref().map(|f| f.lease);
        let (kind, detail) = match (result, lease) {
            (JobResult::Failed { error, .. }, Some(_)) => (
                EventKind::RobotFailed,
                format!("drive {drive}: PREEMPT AND ABORT failed, it stays fenced: {error}"),
            ),
            (JobResult::Failed { error, .. }, None) => (
                EventKind::RobotFailed,
                format!("drive {drive}: taking its reservation back failed: {error}"),
            ),
            (_, Some(_)) => {
                d.fenced = None;
                d.idle_since = d.holds.as_ref().map(|_| now);
                (
                    EventKind::Preempted,
                    "the expired host's reservation was preempted (PREEMPT AND ABORT)".into(),
                )
            }
            (_, None) => return,
        };
        let barcode = d.holds.clone();
        self.events.push(Event {
            at: now,
            kind,
            lease,
            host: None,
            drive: Some(drive),
            barcode,
            detail,
        });
    }

    fn drop_waiters(&mut self, now: Now) {
        let grace = self.policy.poll_grace_secs;
        let (keep, gone): (VecDeque<_>, VecDeque<_>) = self
            .queue
            .drain(..)
            .partition(|w| now < w.deadline && now < w.last_poll + grace);
        self.queue = keep;
        for w in gone {
            let waited = now.saturating_sub(w.since);
            self.answered.insert(
                w.ticket,
                TicketView::Denied {
                    reason: Denied::QueueTimeout(waited),
                },
            );
            self.events.push(Event {
                at: now,
                kind: EventKind::QueueTimeout,
                lease: None,
                host: Some(w.host),
                drive: None,
                barcode: None,
                detail: format!("ticket {} after {waited} s", w.ticket),
            });
        }
    }

    fn idle_unload(&mut self, now: Now) {
        let secs = self.policy.idle_unload_secs;
        for d in 0..self.drives.len() {
            let idle = self.drives[d].idle_since.is_some_and(|t| now >= t + secs);
            if idle && self.drives[d].free() && self.drives[d].holds.is_some() {
                let steps = self.unload_steps(d);
                self.drives[d].busy = true;
                self.drives[d].idle_since = None;
                self.jobs.push_back(Job {
                    drive: d,
                    lease: None,
                    steps,
                });
            }
        }
    }

    /// An operator's `drives release DRIVE --force`: the fenced drive may
    /// be given out again.
    pub fn operator_release(&mut self, drive: usize, now: Now) -> Result<Fence, LeaseError> {
        let d = self
            .drives
            .get_mut(drive)
            .ok_or(LeaseError::NoDrive(drive))?;
        let fence = d.fenced.take().ok_or(LeaseError::NotFenced(drive))?;
        d.idle_since = d.holds.as_ref().map(|_| now);
        let barcode = d.holds.clone();
        self.events.push(Event {
            at: now,
            kind: EventKind::Unfenced,
            lease: Some(fence.lease),
            host: Some(fence.host.clone()),
            drive: Some(drive),
            barcode,
            detail: "released by an operator (--force)".into(),
        });
        self.schedule(now);
        Ok(fence)
    }

    /// After a restart: leases that were active continue (the host may
    /// heartbeat in before they expire again); those the robot was
    /// preparing failed.
    pub fn restore_leases(&mut self, leases: Vec<Lease>, now: Now) {
        for mut l in leases {
            match l.state {
                LeaseState::Active if l.drive < self.drives.len() => {
                    l.expires = now + self.policy.lease_secs;
                    self.drives[l.drive].lease = Some(l.id);
                    self.drives[l.drive].idle_since = None;
                    self.leases.insert(l.id, l);
                }
                LeaseState::Preparing | LeaseState::Active => {
                    let id = l.id;
                    self.leases.insert(id, l);
                    self.fail_lease(
                        id,
                        "the server restarted while preparing the drive".into(),
                        now,
                    );
                }
                _ => {}
            }
        }
    }
}
