//! The host's side of the control protocol (`ureq`, blocking, with
//! timeouts): request a drive and wait in the queue, heartbeat, report,
//! release; and the operator's `status` and `drives release`.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::http::{ContinueBody, HeartbeatBody, ReleaseBody, ReportBody, RequestBody};
use super::service::{Grant, Status};
use super::state::{Denied, LeaseId, Ticket, TicketView};
use super::tls::{client_config, TlsError};
use crate::catalog::{SetInfo, SetOutcome};

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server refused the credential (401): unknown host or wrong secret")]
    Unauthorized,
    #[error("the server answered {status}: {message}")]
    Http {
        status: u16,
        kind: String,
        message: String,
    },
    #[error("cannot reach the server: {0}")]
    Transport(String),
    #[error("the server's answer is not what was expected: {0}")]
    Answer(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the request was denied: {0}")]
    Denied(Denied),
    #[error("a credential is NAME:SECRET")]
    BadToken,
}

/// Seconds a report or release is tried again while the server is down.
const END_RETRIES: u32 = 30;

/// The largest answer read (a status of a big library is some 100 KiB).
const MAX_ANSWER: u64 = 16 << 20;

/// How long a host waits for the server's robot to change its cartridge.
pub const SWAP_LIMIT: Duration = Duration::from_secs(900);

/// A connection to `sanmover server`.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
    pub host: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({}, host {})", self.base, self.host)
    }
}

impl Client {
    /// `url` is `http://ADDR:PORT` or `https://…` (then `ca` names the CA
    /// to trust); `token` is `NAME:SECRET`.
    pub fn new(url: &str, token: &str, ca: Option<&Path>) -> Result<Client, ClientError> {
        let (host, _) = token.split_once(':').ok_or(ClientError::BadToken)?;
        // A connection per request: the server closes connections that
        // are idle or old, and ureq does not retry a POST on a pooled
        // connection that was closed under it. Control traffic is a few
        // requests a minute.
        let mut b = ureq::AgentBuilder::new()
            .max_idle_connections(0)
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        if let Some(ca) = ca {
            b = b.tls_config(client_config(ca)?);
        }
        Ok(Client {
            agent: b.build(),
            base: url.trim_end_matches('/').to_string(),
            auth: format!("Bearer {token}"),
            host: host.to_string(),
        })
    }

    pub(super) fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &self.auth);
        let r = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match r {
            Ok(resp) => serde_json::from_reader(resp.into_reader().take(MAX_ANSWER))
                .map_err(|e| ClientError::Answer(e.to_string())),
            Err(ureq::Error::Status(401, _)) => Err(ClientError::Unauthorized),
            Err(ureq::Error::Status(status, resp)) => {
                let v: Value = serde_json::from_reader(resp.into_reader().take(MAX_ANSWER))
                    .unwrap_or_default();
                Err(ClientError::Http {
                    status,
                    kind: v["kind"].as_str().unwrap_or("").to_string(),
                    message: v["error"].as_str().unwrap_or("").to_string(),
                })
            }
            Err(e) => Err(ClientError::Transport(e.to_string())),
        }
    }

    pub(super) fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let v = serde_json::to_value(body).map_err(|e| ClientError::Answer(e.to_string()))?;
        self.call("POST", path, Some(v))
    }

    /// Queue a request; the ticket and where it stands.
    pub fn request(&self, body: &RequestBody) -> Result<(Ticket, TicketView), ClientError> {
        let v: Value = self.post("/v1/requests", body)?;
        let t = v["ticket"]
            .as_u64()
            .ok_or_else(|| ClientError::Answer("no ticket".into()))?;
        let view = serde_json::from_value(v["view"].clone())
            .map_err(|e| ClientError::Answer(e.to_string()))?;
        Ok((t, view))
    }

    /// Wait in the queue until the drive is ready, telling `waiting` the
    /// position whenever it changes. A ticket the server no longer knows
    /// (it restarted) is requested again.
    pub fn acquire(
        &self,
        body: &RequestBody,
        mut waiting: impl FnMut(usize),
    ) -> Result<Grant, ClientError> {
        let (mut ticket, mut view) = self.request(body)?;
        let mut last = 0;
        let started = Instant::now();
        loop {
            match view {
                TicketView::Granted { lease } => return self.grant(lease),
                TicketView::Denied { reason } => return Err(ClientError::Denied(reason)),
                TicketView::Waiting { position } if position != last => {
                    last = position;
                    waiting(position);
                }
                _ => {}
            }
            view = match self.call::<TicketView>("GET", &format!("/v1/requests/{ticket}"), None) {
                Err(ClientError::Http { status: 404, .. }) if started.elapsed().as_secs() > 0 => {
                    let (t, v) = self.request(body)?;
                    ticket = t;
                    v
                }
                r => r?,
            };
        }
    }

    pub fn grant(&self, lease: LeaseId) -> Result<Grant, ClientError> {
        self.call("GET", &format!("/v1/leases/{lease}"), None)
    }

    /// Renew the lease; returns when it now expires (unix seconds).
    pub fn heartbeat(&self, lease: LeaseId, set: Option<SetInfo>) -> Result<u64, ClientError> {
        let v: Value = self.post(
            &format!("/v1/leases/{lease}/heartbeat"),
            &HeartbeatBody { set },
        )?;
        v["expires"]
            .as_u64()
            .ok_or_else(|| ClientError::Answer("no expiry".into()))
    }

    /// POST what must reach the server at the end of a set, through a
    /// server restart: tried again for up to [`END_RETRIES`] seconds while
    /// the server cannot be reached. A 409 on a later try means an earlier
    /// try arrived and only its answer was lost.
    fn post_at_end(&self, path: &str, body: &impl Serialize) -> Result<(), ClientError> {
        let mut attempt = 0;
        loop {
            match self.post::<Value>(path, body) {
                Ok(_) => return Ok(()),
                Err(ClientError::Http { status: 409, .. }) if attempt > 0 => return Ok(()),
                Err(ClientError::Transport(e)) if attempt < END_RETRIES => {
                    log::warn!("{path}: {e}; trying again");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
            attempt += 1;
        }
    }

    pub fn report(
        &self,
        lease: LeaseId,
        set: SetInfo,
        outcome: SetOutcome,
    ) -> Result<(), ClientError> {
        self.report_body(
            lease,
            &ReportBody {
                set,
                outcome,
                parts: Vec::new(),
                volumes: Vec::new(),
            },
        )
    }

    /// Report a set with all of `body`, the parts of a multi-volume set
    /// included.
    pub fn report_body(&self, lease: LeaseId, body: &ReportBody) -> Result<(), ClientError> {
        self.post_at_end(&format!("/v1/leases/{lease}/report"), body)
    }

    /// Have the server change the lease's cartridge (FORMAT.md
    /// "Multi-volume sets"): for a backup, the full one for the next of
    /// its pool; for a restore, the one holding `volume`. Returns once the
    /// robot is done (asking again while it answers "pending", for at
    /// most [`SWAP_LIMIT`]), with the grant as it now stands.
    pub fn continue_lease(
        &self,
        lease: LeaseId,
        volume: Option<uuid::Uuid>,
    ) -> Result<Grant, ClientError> {
        let path = format!("/v1/leases/{lease}/continue");
        let started = Instant::now();
        let mut v: Value = self.post(&path, &ContinueBody { volume })?;
        loop {
            if v["status"] == "done" {
                return serde_json::from_value(v["grant"].clone())
                    .map_err(|e| ClientError::Answer(e.to_string()));
            }
            if v["status"] != "pending" {
                return Err(ClientError::Answer(format!("continue: {v}")));
            }
            if started.elapsed() > SWAP_LIMIT {
                return Err(ClientError::Answer(format!(
                    "the server did not change the cartridge within {} s",
                    SWAP_LIMIT.as_secs()
                )));
            }
            v = self.call("GET", &path, None)?;
        }
    }

    pub fn release(&self, lease: LeaseId, full: bool) -> Result<(), ClientError> {
        self.post_at_end(
            &format!("/v1/leases/{lease}/release"),
            &ReleaseBody { full },
        )
    }

    pub fn status(&self) -> Result<Status, ClientError> {
        self.call("GET", "/v1/status", None)
    }

    pub fn events(&self) -> Result<Vec<super::events::Event>, ClientError> {
        self.call("GET", "/v1/events", None)
    }

    /// An operator releases fenced drive `drive`.
    pub fn release_drive(&self, drive: usize) -> Result<(), ClientError> {
        let _: Value = self.post(
            &format!("/v1/drives/{drive}/release"),
            &serde_json::json!({"force": true}),
        )?;
        Ok(())
    }
}

/// Where the heartbeat thread looks for the set this host writes: the
/// running set on `volume` in the host's own catalog at `catalog`.
#[derive(Debug, Clone)]
pub struct SetWatch {
    pub catalog: std::path::PathBuf,
    pub volume: uuid::Uuid,
    /// Only sets begun at or after this time (unix seconds).
    pub since: i64,
}

/// Renews a lease on a thread until dropped or [`Heartbeat::finish`]ed.
/// The first beat after the set writer opened the set carries the set, so
/// the server can mark it failed if this host dies. When the server says
/// the lease is gone (it expired and the drive was fenced), `stop` is
/// raised and the set closes as interrupted: this host writes no further.
pub struct Heartbeat {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    set: std::sync::Arc<std::sync::Mutex<Option<SetInfo>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(
        client: std::sync::Arc<dyn super::lifecycle::Broker>,
        lease: LeaseId,
        period: Duration,
        watch: Option<SetWatch>,
        stop: crate::engine::interrupt::StopFlag,
    ) -> Heartbeat {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let set = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (d, s) = (done.clone(), set.clone());
        let thread =
            std::thread::spawn(move || beat(client.as_ref(), lease, period, watch, stop, &d, &s));
        Heartbeat {
            done,
            set,
            thread: Some(thread),
        }
    }

    /// Stop beating; the set seen, if any.
    pub fn finish(mut self) -> Option<SetInfo> {
        self.stop_thread();
        self.set.lock().ok().and_then(|s| s.clone())
    }

    fn stop_thread(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The newest set begun on the watched volume, whatever its state: after
/// a mover failed before a heartbeat saw its set, that set is still
/// reported (as failed) to the server.
pub fn begun_set(w: &SetWatch) -> Option<SetInfo> {
    let c = crate::catalog::Catalog::open(&w.catalog).ok()?;
    let rows = c.sets_on_volume(w.volume).ok()?;
    rows.into_iter()
        .filter(|r| r.info.started >= w.since)
        .max_by_key(|r| r.info.started)
        .map(|r| r.info)
}

/// The set running on the watched volume, if the set writer opened it.
fn running_set(w: &SetWatch) -> Option<SetInfo> {
    let c = crate::catalog::Catalog::open(&w.catalog).ok()?;
    let rows = c.sets_on_volume(w.volume).ok()?;
    rows.into_iter()
        .filter(|r| r.outcome.state == crate::catalog::SetState::Running)
        .filter(|r| r.info.started >= w.since)
        .max_by_key(|r| r.info.started)
        .map(|r| r.info)
}

fn beat(
    client: &dyn super::lifecycle::Broker,
    lease: LeaseId,
    period: Duration,
    watch: Option<SetWatch>,
    stop: crate::engine::interrupt::StopFlag,
    done: &std::sync::atomic::AtomicBool,
    seen: &std::sync::Mutex<Option<SetInfo>>,
) {
    let tick = Duration::from_millis(100);
    let mut last = Instant::now() - period;
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        let mut set = seen.lock().ok().and_then(|s| s.clone());
        if set.is_none() {
            set = watch.as_ref().and_then(running_set);
            if let (Some(s), Ok(mut g)) = (&set, seen.lock()) {
                *g = Some(s.clone());
                last = Instant::now() - period;
            }
        }
        if last.elapsed() >= period {
            last = Instant::now();
            match client.heartbeat(lease, set) {
                Ok(_) => {}
                Err(ClientError::Http {
                    status: 409 | 404,
                    message,
                    ..
                }) => {
                    log::error!("lease {lease} lost ({message}); stopping the set");
                    stop.raise(nix::sys::signal::Signal::SIGTERM);
                    return;
                }
                Err(e) => log::warn!("heartbeat of lease {lease}: {e}; trying again"),
            }
        }
        std::thread::sleep(tick);
    }
}
