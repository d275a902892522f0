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

use super::host::{backup_from, source_identity, BackupOptions, BackupSummary};
use super::{EngineError, Progress};
use crate::catalog::{Catalog, SnapshotState};
use crate::device::{Disk, Scsi, Tape};
use crate::scsi::spc::Lun;
use crate::scsi::Opcode;
use crate::snapshot::{MappedLun, Snapshot, SnapshotJob, SnapshotProvider};
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
    /// The host engine's options; `source_url` is the production LUN
    /// without secrets, `mode` SERVERLESS.
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
fn run_hook(what: &str, cmd: &str, job: &SnapshotJob) -> Result<(), EngineError> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("SANMOVER_JOB_ID", job.job_id.to_string())
        .env("SANMOVER_SOURCE", &job.source_url)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| EngineError::Refused(format!("{what} hook {cmd:?}: {e}")))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !said.trim().is_empty() {
        log::info!("{what} hook: {}", said.trim());
    }
    if !out.status.success() {
        return Err(EngineError::Refused(format!(
            "{what} hook {cmd:?} failed ({})",
            out.status
        )));
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

/// Unmap and delete whatever exists; a description of the outcome.
pub fn release(
    provider: &mut dyn SnapshotProvider,
    job: &SnapshotJob,
    snap: Option<&Snapshot>,
) -> Result<(), String> {
    let Some(snap) = snap else {
        return Ok(());
    };
    let mut errs = Vec::new();
    if let Err(e) = provider.unmap(job, snap) {
        errs.push(e.to_string());
    }
    if let Err(e) = provider.delete(job, snap) {
        errs.push(e.to_string());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Check the export's masking: `ours` sees `lun` in REPORT LUNS on the
/// session `mine`, and `other` is refused at login or does not see it.
fn masking_check<T: Transport>(
    connector: &dyn Connector,
    mine: &mut Scsi<T>,
    url: &str,
    lun: u16,
    ours: &str,
    other: &str,
    sessions: &mut Vec<Arc<Mutex<SessionStats>>>,
) -> Result<MaskingCheck, EngineError> {
    let want = Lun::from_index(lun);
    let seen = mine.report_luns()?;
    if !seen.luns.contains(&want) {
        return Err(EngineError::Refused(format!(
            "masking check: our initiator {ours} does not see LUN {lun} of {url} in REPORT LUNS"
        )));
    }
    let refused_by = match connector.open(url, other) {
        Err(TransportError::Login { .. }) => "login".to_string(),
        Err(e) => {
            return Err(EngineError::Refused(format!(
                "masking check: cannot tell whether {other} is kept out of {url}: {e}"
            )))
        }
        Ok(t) => {
            let st = stats("maskcheck", url, other);
            sessions.push(st.clone());
            // Only REPORT LUNS: the check reads no data.
            let mut s = Scsi::new(Counted::new(t, st, Some(vec![Opcode::REPORT_LUNS.0])));
            match s.report_luns() {
                Ok(l) if l.luns.contains(&want) => {
                    return Err(EngineError::Refused(format!(
                        "masking check failed: initiator {other} logs in to {url} and sees LUN {lun}; the snapshot is not masked to {ours} alone"
                    )))
                }
                Ok(_) => "report-luns".to_string(),
                // SPC-4 6.33: a LU the nexus may not reach answers ILLEGAL
                // REQUEST, LOGICAL UNIT NOT SUPPORTED (LIO, when the LUN is
                // not in that initiator's ACL): refused too.
                Err(e)
                    if e.sense().is_some_and(|s| {
                        s.key == crate::scsi::sense::SenseKey::ILLEGAL_REQUEST
                            && s.asc == crate::scsi::sense::Asc::LUN_NOT_SUPPORTED
                    }) =>
                {
                    "report-luns (logical unit not supported)".to_string()
                }
                Err(e) => {
                    return Err(EngineError::Refused(format!(
                        "masking check: REPORT LUNS as {other} on {url}: {e}"
                    )))
                }
            }
        }
    };
    Ok(MaskingCheck {
        allowed_initiator: ours.to_string(),
        refused_initiator: other.to_string(),
        refused_by,
    })
}

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
    let (_, options) = crate::snapshot::parse_spec(&opts.spec)?;
    let mut sessions: Vec<Arc<Mutex<SessionStats>>> = Vec::new();

    // The production LUN: identity and, later, SYNCHRONIZE CACHE only.
    let prod_stats = stats("production", &opts.backup.source_url, &opts.initiator);
    sessions.push(prod_stats.clone());
    let prod_t = connector
        .open(&opts.source, &opts.initiator)
        .map_err(|e| transport_err(&opts.backup.source_url, e))?;
    let mut prod = Disk::open(Counted::new(
        prod_t,
        prod_stats.clone(),
        Some(PRODUCTION_OPCODES.to_vec()),
    ))?;
    let prod_identity = source_identity(&mut prod, &opts.backup.source_url)?;
    let source_designator = prod
        .scsi
        .device_identification()?
        .best_lu_designator()
        .map(|d| hex::encode(&d.value));

    let job = SnapshotJob {
        job_id: Uuid::new_v4(),
        source_url: opts.backup.source_url.clone(),
        source_designator: source_designator.clone(),
        initiator: opts.initiator.clone(),
        options,
    };
    let job_json = serde_json::to_value(&job).map_err(|e| EngineError::Refused(e.to_string()))?;
    catalog.begin_snapshot_job(job.job_id, &opts.spec, &job.source_url, &job_json)?;
    test_hook(SnapshotState::Pending);

    let mut snap: Option<Snapshot> = None;
    let mut state = SnapshotState::Pending;
    let mut warnings = Vec::new();
    let result = run_steps(
        connector,
        provider,
        tape,
        catalog,
        opts,
        progress,
        &job,
        &mut prod,
        prod_identity,
        &mut snap,
        &mut state,
        &mut sessions,
        &mut warnings,
    );
    drop(prod);
    match result {
        Ok(mut s) => {
            // Release after a good backup: failures here leave the job
            // BACKED_UP (cleanup retries), and the set is still good.
            if let Err(e) = release(provider, &job, snap.as_ref()) {
                catalog.snapshot_failed(
                    job.job_id,
                    &format!("release after backup failed: {e}"),
                    false,
                )?;
                return Err(EngineError::Serverless {
                    job: job.job_id,
                    state: SnapshotState::BackedUp.to_string(),
                    cause: Box::new(EngineError::Refused(format!("release: {e}"))),
                    release: "the set is on tape but the snapshot is still there; run `sanmover snapshots cleanup`".into(),
                });
            }
            catalog.snapshot_released(job.job_id)?;
            s.state = SnapshotState::Released;
            s.sessions = sessions.iter().map(snapshot_of).collect();
            s.warnings = warnings;
            Ok(s)
        }
        Err(e) => {
            let released = release(provider, &job, snap.as_ref());
            let release_text = match &released {
                Ok(()) if snap.is_some() => "snapshot released".to_string(),
                Ok(()) => "no snapshot was made".to_string(),
                Err(r) => format!(
                    "releasing the snapshot failed too ({r}); run `sanmover snapshots cleanup`"
                ),
            };
            let reason = format!("{e} (in state {state})");
            if let Err(ce) = catalog.snapshot_failed(job.job_id, &reason, released.is_ok()) {
                log::error!("recording snapshot job {} as FAILED: {ce}", job.job_id);
            }
            Err(EngineError::Serverless {
                job: job.job_id,
                state: state.to_string(),
                cause: Box::new(e),
                release: release_text,
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_steps<P: Transport, T: Transport>(
    connector: &dyn Connector,
    provider: &mut dyn SnapshotProvider,
    tape: &mut Tape<T>,
    catalog: &Catalog,
    opts: &ServerlessOptions,
    progress: &dyn Progress,
    job: &SnapshotJob,
    prod: &mut Disk<P>,
    prod_identity: crate::format::SourceIdentity,
    snap_out: &mut Option<Snapshot>,
    state: &mut SnapshotState,
    sessions: &mut Vec<Arc<Mutex<SessionStats>>>,
    warnings: &mut Vec<String>,
) -> Result<ServerlessSummary, EngineError> {
    // 1. Freeze, flush, snapshot, thaw at once.
    let t0 = Instant::now();
    let quiesced = match &opts.quiesce {
        Some(q) => run_hook("quiesce", q, job),
        None => Ok(()),
    };
    // Thaw follows whatever happened here, also a quiesce hook that failed
    // half-way.
    let created = quiesced.and_then(|()| {
        prod.synchronize_cache()
            .map_err(EngineError::from)
            .and_then(|()| provider.create(job).map_err(EngineError::from))
    });
    if let Some(t) = &opts.thaw {
        if let Err(e) = run_hook("thaw", t, job) {
            // The snapshot is consistent either way; the application
            // needs attention.
            log::warn!("{e}");
            warnings.push(e.to_string());
        }
    }
    let quiesce_seconds = t0.elapsed().as_secs_f64();
    let snap = created?;
    test_hook_at("CREATING");
    *snap_out = Some(snap.clone());
    let snap_json = serde_json::to_value(&snap).map_err(|e| EngineError::Refused(e.to_string()))?;
    catalog.snapshot_created(job.job_id, &snap_json, Some(quiesce_seconds))?;
    *state = SnapshotState::Created;
    test_hook(SnapshotState::Created);

    // 2. Export to our initiator only.
    let mapped = provider.map(job, &snap)?;
    let mapped_json =
        serde_json::to_value(&mapped).map_err(|e| EngineError::Refused(e.to_string()))?;
    catalog.snapshot_mapped(job.job_id, &mapped_json)?;
    *state = SnapshotState::Mapped;
    test_hook(SnapshotState::Mapped);
    if !mapped.read_only {
        let w = format!(
            "the snapshot LUN {} is not write-protected at the target",
            mapped.url
        );
        log::warn!("{w}");
        warnings.push(w);
    }

    // 3. Log in, masking and identity checks before reading a byte.
    let url = IscsiUrl::parse(&mapped.url)
        .map_err(|e| EngineError::Refused(format!("provider mapped an unusable URL: {e}")))?;
    let snap_stats = stats("snapshot", &mapped.url, &opts.initiator);
    sessions.push(snap_stats.clone());
    let t = connector
        .open(&mapped.url, &opts.initiator)
        .map_err(|e| transport_err(&mapped.url, e))?;
    let mut disk = Disk::open(Counted::new(t, snap_stats, None))?;
    let other = opts
        .maskcheck_initiator
        .clone()
        .unwrap_or_else(|| format!("{}-maskcheck", opts.initiator));
    let masking = masking_check(
        connector,
        &mut disk.scsi,
        &mapped.url,
        url.lun,
        &opts.initiator,
        &other,
        sessions,
    )?;
    let shown = disk
        .scsi
        .device_identification()?
        .best_lu_designator()
        .map(|d| hex::encode(&d.value))
        .unwrap_or_default();
    if let Some(promised) = &mapped.designator {
        if !promised.eq_ignore_ascii_case(&shown) {
            return Err(EngineError::Refused(format!(
                "identity check: {} shows designator {shown}, the provider promised {promised}",
                mapped.url
            )));
        }
    }
    if job.source_designator.as_deref() == Some(shown.as_str()) {
        return Err(EngineError::Refused(format!(
            "identity check: {} shows the production LUN's own designator {shown}; refusing to back up what may be the live LUN",
            mapped.url
        )));
    }

    // 4. Back up the snapshot, recorded as the production LUN's set.
    let mut bopts = opts.backup.clone();
    bopts.mode = crate::format::Mode::SERVERLESS;
    let summary = backup_from(
        &mut disk,
        Some(prod_identity),
        tape,
        catalog,
        &bopts,
        progress,
    )?;
    catalog.snapshot_backed_up(job.job_id, summary.set.set_id)?;
    *state = SnapshotState::BackedUp;
    drop(disk);
    test_hook(SnapshotState::BackedUp);

    Ok(ServerlessSummary {
        job_id: job.job_id,
        provider: provider.name().to_string(),
        state: SnapshotState::BackedUp,
        snapshot: snap,
        mapped,
        quiesce_seconds,
        masking,
        snapshot_designator: shown,
        source_designator: job.source_designator.clone(),
        backup: summary,
        sessions: Vec::new(),
        warnings: Vec::new(),
    })
}
