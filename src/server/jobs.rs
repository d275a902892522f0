//! Jobs the server runs itself: a serverless backup is taken on the
//! server, with a drive of the library leased to the server on behalf of
//! the host that asked (the same queue, leases, heartbeats, event log and
//! catalog as a host's own backup, through [`Local`]). The host submits
//! the job (`POST /v1/jobs`), follows it (`GET /v1/jobs/N`, a long poll)
//! and gets the cataloged set at the end.
//!
//! The engine itself is given by the embedder as a [`JobRunner`] (the
//! CLI's, with its sessions and snapshot providers), so this module only
//! keeps the jobs' table and their lifecycle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::client::{Client, ClientError};
use super::http::RequestBody;
use super::lifecycle::{run_leased, Broker, Leased, Local};
use super::service::{Grant, Service, ServiceError};
use super::state::{Lease, LeaseState, Want};
use crate::catalog::{Catalog, SetOutcome, SetRow, SetState};
use crate::engine::interrupt::StopFlag;
use crate::engine::Progress;
use crate::format::DigestAlgorithm;

/// A job's number, unique while the server runs.
pub type JobId = u64;

/// Jobs queued or running at once; more are refused (each waits on a
/// thread of its own).
pub const MAX_ACTIVE: usize = 64;
/// Finished jobs kept for their hosts to read; the oldest go first.
pub const MAX_SETTLED: usize = 256;

/// What `POST /v1/jobs` takes: a serverless backup of `source` through
/// the snapshot provider `snapshot`, to a cartridge of `pool`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerlessJob {
    pub pool: String,
    /// The production LUN (the server reaches it with its own initiator).
    pub source: String,
    /// `PROVIDER[:OPTIONS]`, interpreted on the server.
    pub snapshot: String,
    pub maskcheck_initiator: Option<String>,
    pub lba: Option<u64>,
    pub blocks: Option<u64>,
    pub label: String,
    /// Tape block size in bytes.
    pub block_size: u64,
    pub queue_depth: usize,
    pub digest: DigestAlgorithm,
}

/// Where a job stands, as `GET /v1/jobs/N` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum JobView {
    /// Waiting for a drive; 1 is next.
    Queued { position: usize },
    /// The engine runs on `drive` with `cartridge`.
    Running {
        lease: u64,
        drive: String,
        cartridge: String,
        bytes: u64,
        total: u64,
    },
    /// The set as the server cataloged it, and the engine's summary.
    Complete {
        lease: u64,
        cartridge: String,
        set: Box<SetRow>,
        summary: Value,
    },
    /// Why it failed, the exit status the same failure has on the command
    /// line, and the set as cataloged if one was begun.
    Failed {
        error: String,
        exit: u8,
        set: Option<Box<SetRow>>,
    },
}

/// Why a job failed: its message and its command-line exit status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct JobFailed {
    pub message: String,
    pub exit: u8,
    /// It stopped at end of medium: the lease's cartridge is released as
    /// full.
    pub full: bool,
}

/// Why a job request was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job {0}")]
    Unknown(JobId),
    #[error("job {0} belongs to another host")]
    NotYours(JobId),
    #[error("{0}")]
    Refused(String),
}

/// Runs a job's engine on the granted drive: the set's id and the
/// engine's summary, or why it failed.
pub trait JobRunner: Send + Sync {
    /// `catalog` is the server's catalog; `stop` is raised when the lease
    /// is lost. `lease`: the grant, and the broker the lease is held
    /// through, which the engine asks for the next cartridge when its set
    /// reaches the end of one.
    fn run(
        &self,
        job: &ServerlessJob,
        lease: (&Grant, &dyn Broker),
        catalog: &Path,
        stop: StopFlag,
        progress: &dyn Progress,
    ) -> Result<(Uuid, Value), JobFailed>;

    /// Refuse at submission what this server will not run for `host`
    /// (`operator`: the hosts file says so).
    fn check(&self, job: &ServerlessJob, operator: bool) -> Result<(), String>;
}

struct Entry {
    host: String,
    view: JobView,
    done: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    /// Raised by a cancel (or a lost lease): the engine closes the set as
    /// interrupted between records.
    stop: StopFlag,
}

/// The server's jobs.
pub struct Jobs {
    svc: Arc<Service>,
    runner: Arc<dyn JobRunner>,
    catalog: PathBuf,
    table: Mutex<BTreeMap<JobId, Entry>>,
    changed: Condvar,
    next: AtomicU64,
}

/// Counts the engine's bytes for `Running` views.
struct Counter {
    done: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

impl Progress for Counter {
    fn start(&self, total: u64, _what: &str) {
        self.total.store(total, Ordering::Relaxed);
    }
    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Jobs {
    /// Jobs on `svc`, run by `runner`, cataloged in `catalog` (the
    /// server's catalog file).
    pub fn new(svc: Arc<Service>, runner: Arc<dyn JobRunner>, catalog: PathBuf) -> Arc<Jobs> {
        Arc::new(Jobs {
            svc,
            runner,
            catalog,
            table: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            next: AtomicU64::new(1),
        })
    }

    /// Make room for one more job: refused past [`MAX_ACTIVE`]; the
    /// oldest finished ones are forgotten past [`MAX_SETTLED`].
    fn make_room(t: &mut BTreeMap<JobId, Entry>) -> Result<(), JobError> {
        let settled: Vec<JobId> = t
            .iter()
            .filter(|(_, e)| settled(&e.view))
            .map(|(id, _)| *id)
            .collect();
        if t.len() - settled.len() >= MAX_ACTIVE {
            return Err(JobError::Refused(format!(
                "the server runs {MAX_ACTIVE} jobs already; ask again later"
            )));
        }
        let excess = settled.len().saturating_sub(MAX_SETTLED - 1);
        for id in &settled[..excess] {
            t.remove(id);
        }
        Ok(())
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_view(&self, id: JobId, view: JobView) {
        if let Some(e) = self.table().get_mut(&id) {
            e.view = view;
        }
        self.changed.notify_all();
    }

    /// Start `job` for `host` on a thread of its own; its number.
    pub fn submit(
        self: &Arc<Self>,
        host: &str,
        operator: bool,
        job: ServerlessJob,
    ) -> Result<JobId, JobError> {
        self.runner
            .check(&job, operator)
            .map_err(JobError::Refused)?;
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (done, total) = (Arc::default(), Arc::default());
        // One small flag per job, kept for the process's life.
        let stop = StopFlag::new_owned();
        let entry = Entry {
            host: host.to_string(),
            view: JobView::Queued { position: 0 },
            done: Arc::clone(&done),
            total: Arc::clone(&total),
            stop,
        };
        {
            let mut t = self.table();
            Self::make_room(&mut t)?;
            t.insert(id, entry);
        }
        let me = Arc::clone(self);
        let host = host.to_string();
        std::thread::spawn(move || {
            let view = me.run(id, (&host, stop), &job, Counter { done, total });
            log::info!("server job {id} of {host}: {view:?}");
            me.set_view(id, view);
        });
        Ok(id)
    }

    /// The job's lifecycle: the same as a host's backup, in-process.
    fn run(
        &self,
        id: JobId,
        (host, stop): (&str, StopFlag),
        job: &ServerlessJob,
        counter: Counter,
    ) -> JobView {
        let l = Leased {
            broker: Arc::new(Local {
                svc: Arc::clone(&self.svc),
                host: host.to_string(),
            }),
            request: RequestBody::Backup {
                pool: job.pool.clone(),
                copy_manager: None,
            },
            catalog: self.catalog.clone(),
            stop,
        };
        let mut waiting = |position| self.set_view(id, JobView::Queued { position });
        let mover = |g: &Grant| {
            self.set_view(id, running(g, 0, 0));
            self.runner
                .run(job, (g, l.broker.as_ref()), &self.catalog, l.stop, &counter)
        };
        let ended = match run_leased(&l, &mut waiting, mover, |(set, _)| Some(*set), |f| f.full) {
            Ok(e) => e,
            Err(e) => {
                return JobView::Failed {
                    exit: client_exit(&e),
                    error: e.to_string(),
                    set: None,
                }
            }
        };
        let row = |set: Uuid| {
            Catalog::open(&self.catalog)
                .and_then(|c| c.set(&set.to_string()))
                .ok()
                .map(Box::new)
        };
        match ended.result {
            Ok((set, summary)) => match row(set) {
                Some(set) => JobView::Complete {
                    lease: ended.grant.lease.id,
                    cartridge: ended.grant.lease.barcode,
                    set,
                    summary,
                },
                None => JobView::Failed {
                    error: format!("set {set} is not in the server's catalog"),
                    exit: 99,
                    set: None,
                },
            },
            Err(f) => JobView::Failed {
                error: f.message,
                exit: f.exit,
                set: ended.set.and_then(row),
            },
        }
    }

    /// Ask job `id` of `host` to stop: a job still queued stops when it
    /// gets its drive, a running one closes its set as interrupted
    /// between records (as after SIGINT on the command line).
    pub fn cancel(&self, id: JobId, host: &str) -> Result<(), JobError> {
        let t = self.table();
        let e = t.get(&id).ok_or(JobError::Unknown(id))?;
        if e.host != host {
            return Err(JobError::NotYours(id));
        }
        e.stop.raise(nix::sys::signal::Signal::SIGINT);
        Ok(())
    }

    /// Where job `id` of `host` stands, waiting up to `wait` for a change
    /// while it is queued or running.
    pub fn poll(&self, id: JobId, host: &str, wait: Duration) -> Result<JobView, JobError> {
        let deadline = Instant::now() + wait;
        let mut t = self.table();
        loop {
            let e = t.get(&id).ok_or(JobError::Unknown(id))?;
            if e.host != host {
                return Err(JobError::NotYours(id));
            }
            let view = match &e.view {
                JobView::Running {
                    lease,
                    drive,
                    cartridge,
                    ..
                } => JobView::Running {
                    lease: *lease,
                    drive: drive.clone(),
                    cartridge: cartridge.clone(),
                    bytes: e.done.load(Ordering::Relaxed),
                    total: e.total.load(Ordering::Relaxed),
                },
                v => v.clone(),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if settled(&view) || left.is_zero() {
                return Ok(view);
            }
            t = self
                .changed
                .wait_timeout(t, left.min(Duration::from_millis(500)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The job ended, one way or the other.
fn settled(v: &JobView) -> bool {
    matches!(v, JobView::Complete { .. } | JobView::Failed { .. })
}

fn running(g: &Grant, bytes: u64, total: u64) -> JobView {
    JobView::Running {
        lease: g.lease.id,
        drive: g.drive_url.clone(),
        cartridge: g.lease.barcode.clone(),
        bytes,
        total,
    }
}

/// The exit status a failure to get a drive has on the command line.
fn client_exit(e: &ClientError) -> u8 {
    match e {
        ClientError::Denied(_) | ClientError::Http { status: 409, .. } => 45,
        _ => 99,
    }
}

/// After a restart: the leases of jobs a previous server ran itself are
/// released (their mover died with that process, so there is nobody to
/// fence) and their sets are marked failed; the next set on such a
/// cartridge goes after the failed one's file, as after any failed set.
/// The leases ended.
pub fn end_orphans(svc: &Service, catalog: &Path) -> Result<Vec<Lease>, ServiceError> {
    let cat = Catalog::open(catalog)?;
    let mut ended = Vec::new();
    for l in svc.status().leases {
        let ours = matches!(
            l.want,
            Want::Backup {
                by_server: true,
                ..
            }
        );
        if !ours || l.state != LeaseState::Active {
            continue;
        }
        if let Some(set) = l.set {
            let row = cat.set(&set.to_string())?;
            if row.outcome.state == SetState::Running {
                let now = crate::engine::now();
                let outcome = SetOutcome {
                    state: SetState::Failed,
                    records: 0,
                    bytes: 0,
                    digest: None,
                    ended: now as i64,
                    seconds: now.saturating_sub(l.granted) as f64,
                    error: Some(format!(
                        "the server restarted while it ran this set itself (lease {}, for {})",
                        l.id, l.host
                    )),
                };
                cat.finish_set(set, &outcome)?;
            }
        }
        svc.release(l.id, &l.host, false)?;
        ended.push(l);
    }
    Ok(ended)
}

/// The job endpoints: `POST /v1/jobs` (a [`ServerlessJob`]; answers
/// `{"job": N}`), `GET /v1/jobs/N` (a [`JobView`], after a long poll) and
/// `DELETE /v1/jobs/N` (cancel).
pub fn route(
    jobs: Option<&Arc<Jobs>>,
    host: &str,
    operator: bool,
    method: &str,
    path: &[&str],
    body: &[u8],
) -> Result<Value, super::http::ApiError> {
    use super::http::ApiError;
    let jobs = jobs.ok_or_else(|| ApiError::NotFound("this server runs no jobs".into()))?;
    let refused = |e: JobError| match e {
        JobError::Unknown(_) => ApiError::NotFound(e.to_string()),
        JobError::NotYours(_) => ApiError::Forbidden,
        JobError::Refused(m) => ApiError::Bad(m),
    };
    match (method, path) {
        ("POST", ["v1", "jobs"]) => {
            let job: ServerlessJob =
                serde_json::from_slice(body).map_err(|e| ApiError::Bad(e.to_string()))?;
            let id = jobs.submit(host, operator, job).map_err(refused)?;
            Ok(serde_json::json!({ "job": id }))
        }
        ("GET", ["v1", "jobs", n]) => {
            let id: JobId = n
                .parse()
                .map_err(|_| ApiError::Bad(format!("{n:?} is not a number")))?;
            let view = jobs
                .poll(id, host, Duration::from_secs(1))
                .map_err(refused)?;
            Ok(serde_json::json!(view))
        }
        ("DELETE", ["v1", "jobs", n]) => {
            let id: JobId = n
                .parse()
                .map_err(|_| ApiError::Bad(format!("{n:?} is not a number")))?;
            jobs.cancel(id, host).map_err(refused)?;
            Ok(serde_json::json!({}))
        }
        _ => Err(ApiError::NotFound(format!("{method} /{}", path.join("/")))),
    }
}

impl Client {
    /// Submit a serverless job; its number.
    pub fn submit_job(&self, job: &ServerlessJob) -> Result<JobId, ClientError> {
        let v: Value = self.post("/v1/jobs", job)?;
        v["job"]
            .as_u64()
            .ok_or_else(|| ClientError::Answer("no job number".into()))
    }

    /// Cancel job `id`.
    pub fn cancel_job(&self, id: JobId) -> Result<(), ClientError> {
        let _: Value = self.call("DELETE", &format!("/v1/jobs/{id}"), None)?;
        Ok(())
    }

    /// Follow job `id` until it completes or fails, telling `seen` every
    /// view on the way. A server that cannot be reached is asked again for
    /// up to 30 s (it may be restarting); one that no longer knows the job
    /// restarted and ended it.
    pub fn follow_job(
        &self,
        id: JobId,
        mut seen: impl FnMut(&JobView),
    ) -> Result<JobView, ClientError> {
        let mut unreachable = 0;
        loop {
            match self.call::<JobView>("GET", &format!("/v1/jobs/{id}"), None) {
                Ok(v) => {
                    unreachable = 0;
                    seen(&v);
                    if settled(&v) {
                        return Ok(v);
                    }
                }
                Err(ClientError::Transport(e)) if unreachable < 30 => {
                    unreachable += 1;
                    log::warn!("following job {id}: {e}; trying again");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(ClientError::Http { status: 404, .. }) => {
                    return Err(ClientError::Http {
                        status: 404,
                        kind: "job_gone".into(),
                        message: format!(
                            "it no longer knows job {id}: it restarted, which ends the leases of its own jobs and fails their sets"
                        ),
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{SetInfo, SetOutcome, SetState};
    use crate::scsi::{BlockCount, BlockSize, Lba};
    use crate::server::events::{overlaps, EventKind};
    use crate::server::library::MemLibrary;
    use crate::server::service::DriveSpec;
    use crate::server::state::Policy;

    /// Writes a set on the granted cartridge's volume in the catalog, as
    /// the serverless engine's set writer does; `fail` ends it failed.
    struct Fake {
        fail: Option<u8>,
    }

    impl JobRunner for Fake {
        fn run(
            &self,
            job: &ServerlessJob,
            (grant, _): (&Grant, &dyn Broker),
            catalog: &Path,
            _stop: StopFlag,
            progress: &dyn Progress,
        ) -> Result<(Uuid, Value), JobFailed> {
            let cat = Catalog::open(catalog).unwrap();
            let id = Uuid::new_v4();
            cat.begin_set(&SetInfo {
                id,
                label: job.label.clone(),
                ..info(grant.volume.unwrap())
            })
            .unwrap();
            progress.start(4096, "backup");
            // Long enough for the heartbeat to see the running set.
            std::thread::sleep(Duration::from_millis(400));
            let state = match self.fail {
                Some(_) => SetState::Failed,
                None => SetState::Complete,
            };
            let outcome = SetOutcome {
                state,
                records: 1,
                bytes: 4096,
                digest: Some("ab".repeat(32)),
                ended: crate::engine::now() as i64,
                seconds: 0.4,
                error: self.fail.map(|_| "record 0: CRC mismatch".into()),
            };
            cat.finish_set(id, &outcome).unwrap();
            match self.fail {
                Some(exit) => Err(JobFailed {
                    message: "record 0: CRC mismatch".into(),
                    exit,
                    full: false,
                }),
                None => Ok((id, serde_json::json!({"provider": "fake"}))),
            }
        }
        fn check(&self, _job: &ServerlessJob, _operator: bool) -> Result<(), String> {
            Ok(())
        }
    }

    /// A serverless set of 8 blocks on `volume`, as the set writer begins it.
    fn info(volume: Uuid) -> SetInfo {
        SetInfo {
            id: Uuid::new_v4(),
            volume,
            file_number: 1,
            mode: "serverless".into(),
            label: String::new(),
            source_url: "iscsi://127.0.0.1:3260/iqn.2024-01.test:disk/1".into(),
            source_designator: "naa.60014051".into(),
            lba: Lba(0),
            blocks: BlockCount(8),
            block_size: BlockSize(512),
            payload_size: 4096,
            started: crate::engine::now() as i64,
            digest_algorithm: "blake3".into(),
            tape_block: None,
        }
    }

    fn job(pool: &str) -> ServerlessJob {
        ServerlessJob {
            pool: pool.into(),
            source: "iscsi://127.0.0.1:3260/iqn.2024-01.test:disk/1".into(),
            snapshot: "tgt".into(),
            maskcheck_initiator: None,
            lba: None,
            blocks: None,
            label: "job".into(),
            block_size: 4096,
            queue_depth: 1,
            digest: DigestAlgorithm::FOR_NEW_SETS,
        }
    }

    struct Fixture {
        svc: Arc<Service>,
        jobs: Arc<Jobs>,
        robot: Option<std::thread::JoinHandle<()>>,
        _dir: tempfile::TempDir,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.svc.shutdown();
            if let Some(r) = self.robot.take() {
                let _ = r.join();
            }
        }
    }

    fn fixture(barcodes: &[&str], fail: Option<u8>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.db");
        let drives: Vec<DriveSpec> = (0..2)
            .map(|d| DriveSpec {
                url: format!("mem://drive{d}"),
                serial: format!("SN{d}"),
            })
            .collect();
        let policy = Policy {
            lease_secs: 10,
            idle_unload_secs: 300,
            queue_secs: 100,
            poll_grace_secs: 20,
        };
        let lib = MemLibrary::new(2, barcodes);
        let cat = Catalog::open(&path).unwrap();
        let svc = Service::start(cat, Box::new(lib), &drives, policy).unwrap();
        let robot = Some(svc.spawn_robot(Duration::from_millis(10)));
        let jobs = Jobs::new(svc.clone(), Arc::new(Fake { fail }), path);
        Fixture {
            svc,
            jobs,
            robot,
            _dir: dir,
        }
    }

    fn settle(f: &Fixture, id: JobId, host: &str) -> JobView {
        for _ in 0..50 {
            let v = f.jobs.poll(id, host, Duration::from_millis(200)).unwrap();
            if matches!(v, JobView::Complete { .. } | JobView::Failed { .. }) {
                return v;
            }
        }
        panic!("job {id} did not finish");
    }

    #[test]
    fn a_job_runs_on_a_lease_for_its_host_and_its_set_is_cataloged() {
        let f = fixture(&["A", "B"], None);
        let id = f.jobs.submit("h1", false, job("p")).unwrap();
        let JobView::Complete {
            cartridge,
            set,
            summary,
            ..
        } = settle(&f, id, "h1")
        else {
            panic!("not complete");
        };
        assert_eq!(set.outcome.state, SetState::Complete);
        assert_eq!(summary["provider"], "fake");
        let st = f.svc.status();
        let cart = st.cartridges.iter().find(|c| c.barcode == cartridge);
        assert_eq!(cart.unwrap().volume, Some(set.info.volume));
        assert!(st.leases.is_empty(), "released: {:?}", st.leases);
        let events = f.svc.events().unwrap();
        assert!(overlaps(&events).is_empty());
        for k in [
            EventKind::LeaseGranted,
            EventKind::SetStarted,
            EventKind::LeaseReleased,
        ] {
            assert!(
                events
                    .iter()
                    .any(|e| e.kind == k && e.host.as_deref() == Some("h1")),
                "{k:?}: {events:#?}"
            );
        }
        // Only its host sees it.
        let other = f.jobs.poll(id, "h2", Duration::ZERO);
        assert!(matches!(other, Err(JobError::NotYours(_))));
        assert!(matches!(
            f.jobs.poll(id + 1, "h1", Duration::ZERO),
            Err(JobError::Unknown(_))
        ));
    }

    #[test]
    fn a_failed_job_keeps_its_exit_status_and_set_and_releases_the_drive() {
        let f = fixture(&["A"], Some(37));
        let id = f.jobs.submit("h1", false, job("p")).unwrap();
        let JobView::Failed { error, exit, set } = settle(&f, id, "h1") else {
            panic!("not failed");
        };
        assert_eq!(exit, 37);
        assert!(error.contains("CRC mismatch"), "{error}");
        let set = set.expect("the set the heartbeat saw");
        assert_eq!(set.outcome.state, SetState::Failed);
        assert!(f.svc.status().leases.is_empty());
    }

    /// Runs until its stop flag is raised, then fails as interrupted.
    struct Waits;

    impl JobRunner for Waits {
        fn run(
            &self,
            _job: &ServerlessJob,
            _lease: (&Grant, &dyn Broker),
            _catalog: &Path,
            stop: StopFlag,
            _progress: &dyn Progress,
        ) -> Result<(Uuid, Value), JobFailed> {
            for _ in 0..100 {
                if stop.raised().is_some() {
                    return Err(JobFailed {
                        message: "interrupted".into(),
                        exit: 130,
                        full: false,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("never cancelled");
        }
        fn check(&self, _job: &ServerlessJob, _operator: bool) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn a_cancelled_job_stops_and_releases_its_drive() {
        let f = fixture(&["A"], None);
        let jobs = Jobs::new(f.svc.clone(), Arc::new(Waits), f.jobs.catalog.clone());
        let id = jobs.submit("h1", false, job("p")).unwrap();
        for _ in 0..50 {
            let v = jobs.poll(id, "h1", Duration::from_millis(100)).unwrap();
            if matches!(v, JobView::Running { .. }) {
                break;
            }
        }
        assert!(matches!(jobs.cancel(id, "h2"), Err(JobError::NotYours(_))));
        jobs.cancel(id, "h1").unwrap();
        let mut v = jobs.poll(id, "h1", Duration::from_secs(5)).unwrap();
        for _ in 0..20 {
            if matches!(v, JobView::Failed { .. }) {
                break;
            }
            v = jobs.poll(id, "h1", Duration::from_millis(200)).unwrap();
        }
        assert!(matches!(v, JobView::Failed { exit: 130, .. }), "{v:?}");
        assert!(f.svc.status().leases.is_empty());
    }

    #[test]
    fn the_table_refuses_past_max_active_and_forgets_the_oldest_finished() {
        let entry = |view| Entry {
            host: "h".into(),
            view,
            done: Arc::default(),
            total: Arc::default(),
            stop: StopFlag::never(),
        };
        let failed = || JobView::Failed {
            error: "x".into(),
            exit: 1,
            set: None,
        };
        let mut t = BTreeMap::new();
        for id in 0..(MAX_SETTLED + 10) as JobId {
            t.insert(id, entry(failed()));
        }
        Jobs::make_room(&mut t).unwrap();
        assert_eq!(t.len(), MAX_SETTLED - 1);
        assert_eq!(t.keys().next(), Some(&11), "the oldest went first");
        let mut t = BTreeMap::new();
        for id in 0..MAX_ACTIVE as JobId {
            t.insert(id, entry(JobView::Queued { position: 1 }));
        }
        assert!(matches!(Jobs::make_room(&mut t), Err(JobError::Refused(_))));
    }

    #[test]
    fn a_restarted_server_ends_the_leases_of_its_own_jobs_without_a_fence() {
        let f = fixture(&["A", "B"], None);
        let local = Local {
            svc: f.svc.clone(),
            host: "h1".into(),
        };
        let body = RequestBody::Backup {
            pool: "p".into(),
            copy_manager: None,
        };
        let g = crate::server::lifecycle::Broker::acquire(&local, &body, &mut |_| {}).unwrap();
        let info = info(g.volume.unwrap());
        f.jobs.svc.heartbeat(g.lease.id, "h1", Some(&info)).unwrap();
        // The server dies with the job; a new one starts on its catalog.
        let path = f.jobs.catalog.clone();
        f.svc.shutdown();
        let lib = MemLibrary::new(2, &["A", "B"]);
        let drives: Vec<DriveSpec> = (0..2)
            .map(|d| DriveSpec {
                url: format!("mem://drive{d}"),
                serial: format!("SN{d}"),
            })
            .collect();
        let policy = Policy {
            lease_secs: 10,
            idle_unload_secs: 300,
            queue_secs: 100,
            poll_grace_secs: 20,
        };
        let svc = Service::start(
            Catalog::open(&path).unwrap(),
            Box::new(lib),
            &drives,
            policy,
        )
        .unwrap();
        assert_eq!(svc.status().leases.len(), 1, "restored");
        let ended = end_orphans(&svc, &path).unwrap();
        assert_eq!(ended.len(), 1);
        let st = svc.status();
        assert!(st.leases.is_empty());
        assert!(st.drives.iter().all(|d| d.fenced.is_none()), "{st:?}");
        let row = Catalog::open(&path)
            .unwrap()
            .set(&info.id.to_string())
            .unwrap();
        assert_eq!(row.outcome.state, SetState::Failed);
        assert!(row.outcome.error.unwrap().contains("restarted"));
        // A host's lease would have been left to expire and be fenced.
        assert!(end_orphans(&svc, &path).unwrap().is_empty());
    }

    #[test]
    fn an_empty_pool_fails_the_job_as_refused() {
        let f = fixture(&[], None);
        let id = f.jobs.submit("h1", false, job("p")).unwrap();
        let JobView::Failed { error, exit, set } = settle(&f, id, "h1") else {
            panic!("not failed");
        };
        assert_eq!(exit, 45);
        assert!(error.contains("no cartridge left"), "{error}");
        assert!(set.is_none());
    }
}
