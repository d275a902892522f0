//! Snapshot-serverless backup: the storage takes a point-in-time copy of
//! the production LUN, exports it to this host only, and this host backs
//! the copy up with the host-driven engine. This host never reads or
//! writes the production LUN: it sends it INQUIRY (identity) and
//! SYNCHRONIZE CACHE, nothing else, and a guard on that session refuses
//! any other command before it reaches the wire.
//!
//! Steps, each persisted in the catalog's snapshot job (schema V3):
//! PENDING (job recorded) -> quiesce hook, SYNCHRONIZE CACHE, create,
//! thaw hook -> CREATED -> map to our initiator -> MAPPED -> masking
//! check, identity check, backup -> BACKED_UP -> unmap, delete ->
//! RELEASED. Any failure unmaps and deletes what exists and records
//! FAILED with the reason.
//!
//! Test hook: `SANMOVER_TEST_DIE_AFTER_STATE=STATE` (PENDING, CREATED,
//! MAPPED, BACKED_UP) kills this process with SIGKILL right after that
//! state is committed, to prove `snapshots cleanup` releases what a crash
//! leaves behind; `CREATING` kills it inside create, after the provider
//! made the snapshot and before CREATED is committed.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use uuid::Uuid;

use super::host::{self, BackupOptions, BackupSummary};
use super::set_writer::source_identity;
use super::set_writer::NextVolume;
use super::{EngineError, Progress};
use crate::catalog::{Catalog, SnapshotState};
use crate::device::{Disk, Scsi, Tape};
use crate::scsi::spc::Lun;
use crate::scsi::Opcode;
use crate::snapshot::{MappedLun, ProviderError, Snapshot, SnapshotJob, SnapshotProvider};
use crate::transport::url::IscsiUrl;
use crate::transport::{Request, Response, Transport, TransportError};

/// Opens the sessions of a serverless backup (now in `transport`).
pub use crate::transport::Connector;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct ServerlessOptions {
    /// `--snapshot`, stored with the job so cleanup can rebuild the provider.
    pub spec: String,
    /// The production LUN as given (may carry credentials).
    pub source: String,
    /// Our initiator name: the snapshot is mapped to it alone.
    pub initiator: String,
    /// A name the masking check logs in with, which must NOT see the
    /// snapshot [default: `<initiator>-maskcheck`].
    pub maskcheck_initiator: Option<String>,
    /// Shell command that freezes the application (`sh -c`).
    pub quiesce: Option<String>,
    /// Shell command that thaws it; run at once after create, also when
    /// create fails.
    pub thaw: Option<String>,
    /// The host engine's options; `set.source_url` is the production LUN
    /// without secrets.
    pub backup: BackupOptions,
}

/// Commands and bytes one session of this backup carried.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionStats {
    /// production, snapshot or maskcheck.
    pub role: String,
    /// The LU's address, without secrets.
    pub url: String,
    /// The initiator name the session logged in with.
    pub initiator: String,
    /// Commands sent, by opcode (hex).
    pub commands: BTreeMap<String, u64>,
    /// Data-in bytes received (reads).
    pub bytes_in: u64,
    /// Data-out bytes sent (writes).
    pub bytes_out: u64,
    /// Commands the guard refused to send.
    pub refused: u64,
}

/// How the masking check went.
#[derive(Debug, Clone, Serialize)]
pub struct MaskingCheck {
    /// Our initiator saw the LUN in REPORT LUNS.
    pub allowed_initiator: String,
    /// The other name, and how it was kept out: "login" or "report-luns".
    pub refused_initiator: String,
    pub refused_by: String,
}

/// What `backup --mode serverless --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ServerlessSummary {
    /// The catalog's snapshot job.
    pub job_id: Uuid,
    /// Provider name (tgt, exec, lio, xcopy-image).
    pub provider: String,
    /// RELEASED on success.
    pub state: SnapshotState,
    /// What create() made.
    pub snapshot: Snapshot,
    /// Where map() exported it.
    pub mapped: MappedLun,
    /// From the start of the quiesce hook to the end of the thaw hook
    /// (with no hooks: the length of create).
    pub quiesce_seconds: f64,
    pub masking: MaskingCheck,
    /// The designator the snapshot showed after login (== the promise).
    pub snapshot_designator: String,
    /// The production LUN's best designator (hex).
    pub source_designator: Option<String>,
    /// The host engine's report of the set.
    pub backup: BackupSummary,
    /// Every session this backup opened; the production one carries only
    /// INQUIRY and SYNCHRONIZE CACHE, and no data.
    pub sessions: Vec<SessionStats>,
    /// Things the user should look at (thaw failed, export not read-only).
    pub warnings: Vec<String>,
}

/// A transport that counts what passes, and, when `allowed` is set,
/// refuses every other opcode before it reaches the wire.
pub struct Counted<T> {
    inner: T,
    stats: Arc<Mutex<SessionStats>>,
    allowed: Option<Vec<u8>>,
}

impl<T: Transport> Counted<T> {
    /// Wrap `inner`; `allowed` (opcodes) turns the guard on.
    pub fn new(inner: T, stats: Arc<Mutex<SessionStats>>, allowed: Option<Vec<u8>>) -> Self {
        Counted {
            inner,
            stats,
            allowed,
        }
    }
}

impl<T: Transport> Transport for Counted<T> {
    fn submit(&mut self, req: Request) -> Result<(), TransportError> {
        let op = req.cdb.as_bytes()[0];
        let mut st = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ok) = &self.allowed {
            if !ok.contains(&op) {
                st.refused += 1;
                return Err(TransportError::Rejected {
                    cdb: req.cdb,
                    reason: "the production LUN only gets INQUIRY and SYNCHRONIZE CACHE in a serverless backup".into(),
                });
            }
        }
        *st.commands.entry(format!("{op:02x}")).or_default() += 1;
        if req.dir == crate::transport::Direction::Out {
            st.bytes_out += req.buf.len() as u64;
        }
        drop(st);
        self.inner.submit(req)
    }
    fn max_transfer(&self) -> Option<usize> {
        self.inner.max_transfer()
    }
    fn complete(&mut self) -> Result<Response, TransportError> {
        let r = self.inner.complete()?;
        if r.dir == crate::transport::Direction::In {
            let mut st = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            st.bytes_in += r.transferred() as u64;
        }
        Ok(r)
    }
    fn queue_depth(&self) -> usize {
        self.inner.queue_depth()
    }
    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Opcodes the production session may carry: INQUIRY (SPC-4 6.6),
/// SYNCHRONIZE CACHE(10)/(16) (SBC-4 5.24, 5.25), TEST UNIT READY.
const PRODUCTION_OPCODES: [u8; 4] = [
    Opcode::INQUIRY.0,
    0x35, // SYNCHRONIZE CACHE(10)
    0x91, // SYNCHRONIZE CACHE(16)
    Opcode::TEST_UNIT_READY.0,
];

fn transport_err(url: &str, source: TransportError) -> EngineError {
    EngineError::Device(crate::device::DeviceError::Transport {
        device: url.to_string(),
        source,
    })
}

/// Kill the process after `state` if the test hook asks for it.
fn test_hook(state: SnapshotState) {
    test_hook_at(state.as_str());
}

fn test_hook_at(point: &str) {
    if std::env::var("SANMOVER_TEST_DIE_AFTER_STATE")
        .ok()
        .as_deref()
        == Some(point)
    {
        eprintln!("sanmover: test hook: dying after {point}");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Run a quiesce or thaw hook with `sh -c`. Its stderr goes to ours (the
/// user sees what the application said); its stdout is logged, never
/// printed, so `--json` output stays one document.
fn run_hook(what: &'static str, cmd: &str, job: &SnapshotJob) -> Result<(), EngineError> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("SANMOVER_JOB_ID", job.job_id.to_string())
        .env("SANMOVER_SOURCE", &job.source_url)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| SnapshotError::HookStart {
            what,
            cmd: cmd.to_string(),
            source,
        })?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !said.trim().is_empty() {
        log::info!("{what} hook: {}", said.trim());
    }
    if !out.status.success() {
        return Err(SnapshotError::HookFailed {
            what,
            cmd: cmd.to_string(),
            status: out.status,
        }
        .into());
    }
    Ok(())
}

fn stats(role: &str, url: &str, initiator: &str) -> Arc<Mutex<SessionStats>> {
    Arc::new(Mutex::new(SessionStats {
        role: role.into(),
        url: url.into(),
        initiator: initiator.into(),
        ..Default::default()
    }))
}

fn snapshot_of(s: &Arc<Mutex<SessionStats>>) -> SessionStats {
    s.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Unmap and delete whatever exists.
pub fn release(
    provider: &mut dyn SnapshotProvider,
    job: &SnapshotJob,
    snap: Option<&Snapshot>,
) -> Result<(), ReleaseError> {
    let Some(snap) = snap else {
        return Ok(());
    };
    let errs: Vec<ProviderError> = [provider.unmap(job, snap), provider.delete(job, snap)]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ReleaseError(errs))
    }
}

/// What unmap and delete said when releasing a snapshot failed.
#[derive(Debug)]
pub struct ReleaseError(pub Vec<ProviderError>);

impl std::fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let texts: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&texts.join("; "))
    }
}

impl std::error::Error for ReleaseError {}

/// A serverless step's check or hook that failed: the snapshot is not
/// safe to back up, or the application hooks did not run.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{what} hook {cmd:?}: {source}")]
    HookStart {
        what: &'static str,
        cmd: String,
        source: std::io::Error,
    },
    #[error("{what} hook {cmd:?} failed ({status})")]
    HookFailed {
        what: &'static str,
        cmd: String,
        status: std::process::ExitStatus,
    },
    #[error("masking check: our initiator {ours} does not see LUN {lun} of {url} in REPORT LUNS")]
    NotVisible { ours: String, url: String, lun: u16 },
    #[error("masking check: cannot tell whether {other} is kept out of {url}: {source}")]
    MaskUnknown {
        other: String,
        url: String,
        source: TransportError,
    },
    #[error("masking check failed: initiator {other} logs in to {url} and sees LUN {lun}; the snapshot is not masked to {ours} alone")]
    NotMasked {
        other: String,
        url: String,
        lun: u16,
        ours: String,
    },
    #[error("masking check: REPORT LUNS as {other} on {url}: {source}")]
    MaskReportLuns {
        other: String,
        url: String,
        source: Box<crate::device::DeviceError>,
    },
    #[error("provider mapped an unusable URL: {0}")]
    MappedUrl(crate::transport::url::UrlError),
    #[error("identity check: {url} shows designator {shown}, the provider promised {promised}")]
    NotPromised {
        url: String,
        shown: String,
        promised: String,
    },
    #[error("identity check: {url} shows the production LUN's own designator {shown}; refusing to back up what may be the live LUN")]
    IsProduction { url: String, shown: String },
    /// A job, snapshot or mapping could not be stored as JSON.
    #[error("{0}")]
    Json(serde_json::Error),
    #[error("release: {0}")]
    Release(ReleaseError),
}

/// The snapshot's export, checked before a byte is read: `ours` sees
/// `lun` of `url` in REPORT LUNS on the session `mine`, and `other` is
/// refused at login or does not see it.
struct Masking<'a> {
    url: &'a str,
    lun: u16,
    ours: &'a str,
    other: &'a str,
}

impl Masking<'_> {
    fn check<T: Transport>(
        &self,
        connector: &dyn Connector,
        mine: &mut Scsi<T>,
        sessions: &mut Vec<Arc<Mutex<SessionStats>>>,
    ) -> Result<MaskingCheck, EngineError> {
        let seen = mine.report_luns()?;
        if !seen.luns.contains(&Lun::from_index(self.lun)) {
            return Err(SnapshotError::NotVisible {
                ours: self.ours.to_string(),
                url: self.url.to_string(),
                lun: self.lun,
            }
            .into());
        }
        let refused_by = match connector.open(self.url, self.other) {
            Err(TransportError::Login { .. }) => "login".to_string(),
            Err(source) => {
                return Err(SnapshotError::MaskUnknown {
                    other: self.other.to_string(),
                    url: self.url.to_string(),
                    source,
                }
                .into())
            }
            Ok(t) => {
                let st = stats("maskcheck", self.url, self.other);
                sessions.push(st.clone());
                // Only REPORT LUNS: the check reads no data.
                let mut s = Scsi::new(Counted::new(t, st, Some(vec![Opcode::REPORT_LUNS.0])));
                self.other_sees(&mut s)?
            }
        };
        Ok(MaskingCheck {
            allowed_initiator: self.ours.to_string(),
            refused_initiator: self.other.to_string(),
            refused_by,
        })
    }

    /// REPORT LUNS as the other initiator, which must not list the LUN;
    /// how it was kept out.
    fn other_sees<T: Transport>(&self, s: &mut Scsi<T>) -> Result<String, EngineError> {
        match s.report_luns() {
            Ok(l) if l.luns.contains(&Lun::from_index(self.lun)) => Err(SnapshotError::NotMasked {
                other: self.other.to_string(),
                url: self.url.to_string(),
                lun: self.lun,
                ours: self.ours.to_string(),
            }
            .into()),
            Ok(_) => Ok("report-luns".to_string()),
            // SPC-4 6.33: a LU the nexus may not reach answers ILLEGAL
            // REQUEST, LOGICAL UNIT NOT SUPPORTED (LIO, when the LUN is not
            // in that initiator's ACL): refused too.
            Err(e)
                if e.sense().is_some_and(|s| {
                    s.key == crate::scsi::sense::SenseKey::ILLEGAL_REQUEST
                        && s.asc == crate::scsi::sense::Asc::LUN_NOT_SUPPORTED
                }) =>
            {
                Ok("report-luns (logical unit not supported)".to_string())
            }
            Err(source) => Err(SnapshotError::MaskReportLuns {
                other: self.other.to_string(),
                url: self.url.to_string(),
                source: Box::new(source),
            }
            .into()),
        }
    }
}

/// The identity check after login: the snapshot shows the designator the
/// provider promised, and not the production LUN's own.
fn check_identity(
    mapped: &MappedLun,
    shown: &str,
    production: Option<&str>,
) -> Result<(), SnapshotError> {
    if let Some(promised) = &mapped.designator {
        if !promised.eq_ignore_ascii_case(shown) {
            return Err(SnapshotError::NotPromised {
                url: mapped.url.clone(),
                shown: shown.to_string(),
                promised: promised.clone(),
            });
        }
    }
    if production == Some(shown) {
        return Err(SnapshotError::IsProduction {
            url: mapped.url.clone(),
            shown: shown.to_string(),
        });
    }
    Ok(())
}

/// A session to the production LUN that carries identity and SYNCHRONIZE
/// CACHE only.
type Production = Disk<Counted<Box<dyn Transport + Send>>>;

/// Run a serverless backup. The tape is opened by the caller (so a bad
/// tape is refused before any snapshot exists).
pub fn backup<T: Transport>(
    connector: &dyn Connector,
    provider: &mut dyn SnapshotProvider,
    tape: &mut Tape<T>,
    catalog: &Catalog,
    opts: &ServerlessOptions,
    progress: &dyn Progress,
) -> Result<ServerlessSummary, EngineError> {
    backup_spanning(connector, provider, (tape, None), catalog, opts, progress)
}

/// [`backup`] with a source of next volumes: a set that meets the end of
/// its volume continues on the volume `next` puts in the drive, as a
/// host-driven set does (FORMAT.md "Multi-volume sets").
pub fn backup_spanning<T: Transport>(
    connector: &dyn Connector,
    provider: &mut dyn SnapshotProvider,
    tape: (&mut Tape<T>, Option<&mut dyn NextVolume<T>>),
    catalog: &Catalog,
    opts: &ServerlessOptions,
    progress: &dyn Progress,
) -> Result<ServerlessSummary, EngineError> {
    let (_, options) = crate::snapshot::parse_spec(&opts.spec)?;
    let mut sessions = Vec::new();
    let (mut prod, prod_identity) = open_production(connector, opts, &mut sessions)?;
    let source_designator = prod
        .scsi
        .device_identification()?
        .best_lu_designator()
        .map(|d| hex::encode(&d.value));
    let job = SnapshotJob {
        job_id: Uuid::new_v4(),
        source_url: opts.backup.set.source_url.clone(),
        source_designator,
        initiator: opts.initiator.clone(),
        options,
    };
    let job_json = serde_json::to_value(&job).map_err(SnapshotError::Json)?;
    catalog.begin_snapshot_job(job.job_id, &opts.spec, &job.source_url, &job_json)?;
    test_hook(SnapshotState::Pending);
    let mut job = Job {
        connector,
        provider,
        catalog,
        opts,
        job,
        snap: None,
        state: SnapshotState::Pending,
        sessions,
        warnings: Vec::new(),
    };
    let result = job.steps(&mut prod, prod_identity, tape, progress);
    drop(prod);
    job.finish(result)
}

/// Log in to the production LUN behind the guard and read its identity.
fn open_production(
    connector: &dyn Connector,
    opts: &ServerlessOptions,
    sessions: &mut Vec<Arc<Mutex<SessionStats>>>,
) -> Result<(Production, crate::format::SourceIdentity), EngineError> {
    let url = &opts.backup.set.source_url;
    let st = stats("production", url, &opts.initiator);
    sessions.push(st.clone());
    let t = connector
        .open(&opts.source, &opts.initiator)
        .map_err(|e| transport_err(url, e))?;
    let mut prod = Disk::open(Counted::new(t, st, Some(PRODUCTION_OPCODES.to_vec())))?;
    let identity = source_identity(&mut prod, url)?;
    Ok((prod, identity))
}

/// One serverless backup's snapshot job as it goes through its states,
/// each committed to the catalog before the next step.
struct Job<'a> {
    connector: &'a dyn Connector,
    provider: &'a mut dyn SnapshotProvider,
    catalog: &'a Catalog,
    opts: &'a ServerlessOptions,
    job: SnapshotJob,
    /// What create made: released at the end, whatever happened.
    snap: Option<Snapshot>,
    /// The last state committed.
    state: SnapshotState,
    sessions: Vec<Arc<Mutex<SessionStats>>>,
    /// Things the user should look at (thaw failed, export not read-only).
    warnings: Vec<String>,
}

impl Job<'_> {
    /// `state` was just committed to the catalog.
    fn committed(&mut self, state: SnapshotState) {
        self.state = state;
        test_hook(state);
    }

    fn warn(&mut self, w: String) {
        log::warn!("{w}");
        self.warnings.push(w);
    }

    /// Snapshot, export, check, back up: the steps between PENDING and
    /// BACKED_UP.
    fn steps<P: Transport, T: Transport>(
        &mut self,
        prod: &mut Disk<P>,
        prod_identity: crate::format::SourceIdentity,
        tape: (&mut Tape<T>, Option<&mut dyn NextVolume<T>>),
        progress: &dyn Progress,
    ) -> Result<ServerlessSummary, EngineError> {
        let (snap, quiesce_seconds) = self.create(prod)?;
        let mapped = self.map(&snap)?;
        let (mut disk, masking, shown) = self.open_snapshot(&mapped)?;
        // Back up the snapshot, recorded as the production LUN's set.
        let (tape, mut next) = tape;
        // Reborrowed for as long as the snapshot's session lives.
        let next: Option<&mut dyn NextVolume<T>> = match next.as_mut() {
            Some(n) => Some(&mut **n),
            None => None,
        };
        let summary = host::backup_spanning(
            &mut disk,
            Some(prod_identity),
            (tape, next),
            self.catalog,
            &self.opts.backup,
            progress,
        )?;
        self.catalog
            .snapshot_backed_up(self.job.job_id, summary.set.set_id)?;
        self.state = SnapshotState::BackedUp;
        drop(disk);
        test_hook(SnapshotState::BackedUp);
        Ok(ServerlessSummary {
            job_id: self.job.job_id,
            provider: self.provider.name().to_string(),
            state: SnapshotState::BackedUp,
            snapshot: snap,
            mapped,
            quiesce_seconds,
            masking,
            snapshot_designator: shown,
            source_designator: self.job.source_designator.clone(),
            backup: summary,
            sessions: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// Step 1: freeze, flush, snapshot, thaw at once; CREATED. How long
    /// the application was frozen.
    fn create<P: Transport>(&mut self, prod: &mut Disk<P>) -> Result<(Snapshot, f64), EngineError> {
        let t0 = Instant::now();
        let quiesced = match &self.opts.quiesce {
            Some(q) => run_hook("quiesce", q, &self.job),
            None => Ok(()),
        };
        // Thaw follows whatever happened here, also a quiesce hook that
        // failed half-way.
        let created = quiesced.and_then(|()| {
            prod.synchronize_cache()
                .map_err(EngineError::from)
                .and_then(|()| self.provider.create(&self.job).map_err(EngineError::from))
        });
        if let Some(t) = &self.opts.thaw {
            if let Err(e) = run_hook("thaw", t, &self.job) {
                // The snapshot is consistent either way; the application
                // needs attention.
                self.warn(e.to_string());
            }
        }
        let quiesce_seconds = t0.elapsed().as_secs_f64();
        let snap = created?;
        test_hook_at("CREATING");
        self.snap = Some(snap.clone());
        let snap_json = serde_json::to_value(&snap).map_err(SnapshotError::Json)?;
        self.catalog
            .snapshot_created(self.job.job_id, &snap_json, Some(quiesce_seconds))?;
        self.committed(SnapshotState::Created);
        Ok((snap, quiesce_seconds))
    }

    /// Step 2: export to our initiator only; MAPPED.
    fn map(&mut self, snap: &Snapshot) -> Result<MappedLun, EngineError> {
        let mapped = self.provider.map(&self.job, snap)?;
        let mapped_json = serde_json::to_value(&mapped).map_err(SnapshotError::Json)?;
        self.catalog
            .snapshot_mapped(self.job.job_id, &mapped_json)?;
        self.committed(SnapshotState::Mapped);
        if !mapped.read_only {
            self.warn(format!(
                "the snapshot LUN {} is not write-protected at the target",
                mapped.url
            ));
        }
        Ok(mapped)
    }

    /// Step 3: log in, then the masking and identity checks before
    /// reading a byte. The session, the masking check, the designator
    /// shown.
    #[allow(clippy::type_complexity)]
    fn open_snapshot(
        &mut self,
        mapped: &MappedLun,
    ) -> Result<(Production, MaskingCheck, String), EngineError> {
        let opts = self.opts;
        let url = IscsiUrl::parse(&mapped.url).map_err(SnapshotError::MappedUrl)?;
        let st = stats("snapshot", &mapped.url, &opts.initiator);
        self.sessions.push(st.clone());
        let t = self
            .connector
            .open(&mapped.url, &opts.initiator)
            .map_err(|e| transport_err(&mapped.url, e))?;
        let mut disk = Disk::open(Counted::new(t, st, None))?;
        let other = opts
            .maskcheck_initiator
            .clone()
            .unwrap_or_else(|| format!("{}-maskcheck", opts.initiator));
        let masking = Masking {
            url: &mapped.url,
            lun: url.lun,
            ours: &opts.initiator,
            other: &other,
        }
        .check(self.connector, &mut disk.scsi, &mut self.sessions)?;
        let shown = disk
            .scsi
            .device_identification()?
            .best_lu_designator()
            .map(|d| hex::encode(&d.value))
            .unwrap_or_default();
        check_identity(mapped, &shown, self.job.source_designator.as_deref())?;
        Ok((disk, masking, shown))
    }

    /// Release the snapshot and record the job's end: RELEASED after a
    /// good backup, FAILED with the reason otherwise.
    fn finish(
        self,
        result: Result<ServerlessSummary, EngineError>,
    ) -> Result<ServerlessSummary, EngineError> {
        let released = release(self.provider, &self.job, self.snap.as_ref());
        let id = self.job.job_id;
        let e = match (result, released) {
            (Ok(mut s), Ok(())) => {
                self.catalog.snapshot_released(id)?;
                s.state = SnapshotState::Released;
                s.sessions = self.sessions.iter().map(snapshot_of).collect();
                s.warnings = self.warnings;
                return Ok(s);
            }
            // Release failed after a good backup: the job stays
            // BACKED_UP (cleanup retries), and the set is still good.
            (Ok(_), Err(r)) => {
                let why = format!("release after backup failed: {r}");
                self.catalog.snapshot_failed(id, &why, false)?;
                return Err(EngineError::Serverless {
                    job: id,
                    state: SnapshotState::BackedUp,
                    cause: Box::new(SnapshotError::Release(r).into()),
                    release: "the set is on tape but the snapshot is still there; run `sanmover snapshots cleanup`".into(),
                });
            }
            (Err(e), released) => (e, released),
        };
        let (cause, released) = e;
        let release_text = match &released {
            Ok(()) if self.snap.is_some() => "snapshot released".to_string(),
            Ok(()) => "no snapshot was made".to_string(),
            Err(r) => {
                format!("releasing the snapshot failed too ({r}); run `sanmover snapshots cleanup`")
            }
        };
        let reason = format!("{cause} (in state {})", self.state);
        if let Err(ce) = self.catalog.snapshot_failed(id, &reason, released.is_ok()) {
            log::error!("recording snapshot job {id} as FAILED: {ce}");
        }
        Err(EngineError::Serverless {
            job: id,
            state: self.state,
            cause: Box::new(cause),
            release: release_text,
        })
    }
}
