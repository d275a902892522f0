//! The control protocol: HTTP/1.1 with JSON bodies under `/v1/`.
//!
//! `tiny_http` parses HTTP on a private Unix socket; in front of it our own
//! acceptor owns the listening TCP socket, so that every connection gets a
//! cap on their number, read/write timeouts and a lifetime, and TLS
//! (rustls) when configured. A slow or hostile client holds one connection
//! for a bounded time and cannot hold more than the cap. Every request
//! must carry `Authorization: Bearer NAME:SECRET` for a host of the hosts
//! file; anything else gets 401 and an empty body.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Hosts;
use super::jobs::Jobs;
use super::service::{Service, ServiceError};
use super::state::{Denied, LeaseError, Want};
use crate::catalog::{CatalogError, SetInfo, SetOutcome};

/// The largest request body accepted (a set report is a few KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection idle (no byte either way) this long is closed.
const IDLE: Duration = Duration::from_secs(15);
/// No connection lives longer than this.
const LIFETIME: Duration = Duration::from_secs(120);
/// Bytes a client may send on one connection (many small requests on a
/// kept-alive connection; one body is at most [`MAX_BODY`]).
const MAX_INBOUND: u64 = 4 << 20;
/// How long a poll of a queued request waits for a change.
const LONG_POLL: Duration = Duration::from_secs(1);
/// Threads answering requests.
const WORKERS: usize = 8;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the internal HTTP socket: {0}")]
    Internal(String),
    #[error("refusing to listen on {0} beyond loopback without TLS (--tls-cert and --tls-key)")]
    NeedsTls(SocketAddr),
    #[error("TLS: {0}")]
    Tls(String),
}

/// How the control port is served.
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub hosts: Hosts,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The jobs the server runs itself (`/v1/jobs`), if it runs any.
    pub jobs: Option<Arc<Jobs>>,
}

/// The running HTTP side; dropped or [`Running::stop`]ped, it stops.
pub struct Running {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    http: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
    dir: PathBuf,
}

impl Running {
    /// Stop accepting and answering, and wait for the threads.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.http.unblock();
        for _ in 0..WORKERS {
            self.http.unblock();
        }
        // Wake the acceptor.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private directory for the internal socket (mode 0700).
fn private_dir() -> Result<PathBuf, HttpError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).map_err(|e| HttpError::Internal(e.to_string()))?;
    let dir = std::env::temp_dir().join(format!("sanmover-server-{}", hex::encode(rnd)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| HttpError::Internal(e.to_string()))?;
    Ok(dir)
}

/// Serve `svc` as `cfg` says. Refuses a non-loopback address without TLS
/// (the hosts file, with at least one host, is always required).
pub fn serve(svc: Arc<Service>, cfg: HttpConfig) -> Result<Running, HttpError> {
    if !cfg.listen.ip().is_loopback() && cfg.tls.is_none() {
        return Err(HttpError::NeedsTls(cfg.listen));
    }
    let listener = TcpListener::bind(cfg.listen).map_err(|source| HttpError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let dir = private_dir()?;
    let sock = dir.join("http.sock");
    let http = Arc::new(
        tiny_http::Server::http_unix(&sock).map_err(|e| HttpError::Internal(e.to_string()))?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let hosts = Arc::new(cfg.hosts);
    let mut threads = Vec::new();
    for _ in 0..WORKERS {
        let (http, svc, hosts, stop) = (http.clone(), svc.clone(), hosts.clone(), stop.clone());
        let jobs = cfg.jobs.clone();
        threads.push(std::thread::spawn(move || {
            worker(&http, (&svc, jobs.as_ref()), &hosts, &stop)
        }));
    }
    let front = Front {
        listener,
        sock,
        tls: cfg.tls,
        stop: stop.clone(),
        live: Arc::new(AtomicUsize::new(0)),
    };
    threads.push(std::thread::spawn(move || front.accept_loop()));
    Ok(Running {
        addr,
        stop,
        http,
        threads,
        dir,
    })
}

/// The acceptor in front of tiny_http.
struct Front {
    listener: TcpListener,
    sock: PathBuf,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
}

impl Front {
    fn accept_loop(self) {
        for conn in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(conn) = conn else { continue };
            if self.live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                self.live.fetch_sub(1, Ordering::SeqCst);
                log::warn!(
                    "server: more than {MAX_CONNECTIONS} connections; closing one at accept"
                );
                continue;
            }
            let (sock, tls, live) = (self.sock.clone(), self.tls.clone(), self.live.clone());
            std::thread::spawn(move || {
                if let Err(e) = relay_conn(conn, &sock, tls) {
                    log::debug!("server: connection: {e}");
                }
                live.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

fn relay_conn(
    conn: TcpStream,
    sock: &std::path::Path,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let tick = Some(Duration::from_millis(20));
    conn.set_read_timeout(tick)?;
    conn.set_write_timeout(Some(IDLE))?;
    conn.set_nodelay(true)?;
    let inner = UnixStream::connect(sock)?;
    inner.set_read_timeout(tick)?;
    inner.set_write_timeout(Some(IDLE))?;
    match tls {
        None => relay(conn, inner),
        Some(cfg) => {
            let sc = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
            relay(rustls::StreamOwned::new(sc, conn), inner)
        }
    }
}

/// Copy bytes both ways until either side closes, the connection is idle
/// for [`IDLE`], older than [`LIFETIME`], or its client sent more than
/// [`MAX_INBOUND`] bytes.
fn relay<A: Read + Write, B: Read + Write>(mut outer: A, mut inner: B) -> std::io::Result<()> {
    let start = Instant::now();
    let mut last = Instant::now();
    let mut inbound = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut moved = false;
        for dir in 0..2 {
            let r = if dir == 0 {
                outer.read(&mut buf)
            } else {
                inner.read(&mut buf)
            };
            match r {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    moved = true;
                    if dir == 0 {
                        inbound += n as u64;
                        if inbound > MAX_INBOUND {
                            return Ok(());
                        }
                        inner.write_all(&buf[..n])?;
                    } else {
                        outer.write_all(&buf[..n])?;
                        outer.flush()?;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
        if moved {
            last = Instant::now();
        }
        if last.elapsed() > IDLE || start.elapsed() > LIFETIME {
            return Ok(());
        }
    }
}

/// The service, and the jobs it runs itself.
type Served<'a> = (&'a Service, Option<&'a Arc<Jobs>>);

fn worker(http: &tiny_http::Server, svc: Served, hosts: &Hosts, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut req) = http.recv() else { break };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (code, body) = answer(&mut req, svc, hosts);
        let resp = tiny_http::Response::from_string(body)
            .with_status_code(code)
            .with_header(
                tiny_http::Header::from_bytes("Content-Type", "application/json")
                    .expect("static header"),
            );
        let _ = req.respond(resp);
    }
}

/// Authenticate, read the body within its limit, route.
fn answer(req: &mut tiny_http::Request, served: Served, hosts: &Hosts) -> (u16, String) {
    let auth = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_string());
    let Some(who) = auth.as_deref().and_then(|a| hosts.authenticate(a)) else {
        return (401, String::new());
    };
    if req.body_length().is_some_and(|n| n > MAX_BODY) {
        return (
            413,
            json!({"error": format!("body over {MAX_BODY} bytes")}).to_string(),
        );
    }
    let mut body = Vec::new();
    if req
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .is_err()
    {
        return (400, json!({"error": "reading the body failed"}).to_string());
    }
    if body.len() > MAX_BODY {
        return (
            413,
            json!({"error": format!("body over {MAX_BODY} bytes")}).to_string(),
        );
    }
    let method = req.method().as_str().to_string();
    let url = req.url().to_string();
    let path: Vec<&str> = url.trim_matches('/').split('/').collect();
    let routed = match path.as_slice() {
        ["v1", "jobs", ..] => {
            super::jobs::route(served.1, &who.name, who.operator, &method, &path, &body)
        }
        _ => route(served.0, &who, &method, &url, &body),
    };
    match routed {
        Ok(v) => (200, v.to_string()),
        Err(e) => (
            e.status(),
            json!({"error": e.to_string(), "kind": e.kind()}).to_string(),
        ),
    }
}

/// The caller, as the hosts file names it.
pub struct Caller {
    pub name: String,
    pub operator: bool,
}

/// An error answered over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    Bad(String),
    #[error("only an operator host may do this")]
    Forbidden,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound(_) => 404,
            ApiError::Bad(_) => 400,
            ApiError::Forbidden => 403,
            ApiError::Service(ServiceError::Lease(LeaseError::UnknownTicket(_))) => 404,
            ApiError::Service(ServiceError::Lease(LeaseError::Unknown(_))) => 404,
            ApiError::Service(ServiceError::Catalog(CatalogError::NotFound(_))) => 404,
            ApiError::Service(ServiceError::Lease(_) | ServiceError::Denied(_)) => 409,
            ApiError::Service(ServiceError::BadReport { .. }) => 409,
            ApiError::Service(_) => 500,
        }
    }

    /// A word a client can act on without parsing the message.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Service(ServiceError::Denied(Denied::EmptyPool(_))) => "empty_pool",
            ApiError::Service(ServiceError::Denied(_)) => "denied",
            ApiError::Service(ServiceError::Lease(LeaseError::UnknownTicket(_))) => {
                "unknown_ticket"
            }
            ApiError::Service(ServiceError::Lease(_)) => "lease",
            _ => "error",
        }
    }
}

/// What `POST /v1/requests` takes.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RequestBody {
    Backup {
        pool: String,
        /// The copy manager the drive is for (`--mode xcopy`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        copy_manager: Option<String>,
    },
    Restore {
        set: String,
    },
}

/// What `POST /v1/leases/N/heartbeat` takes.
#[derive(Debug, Deserialize, serde::Serialize, Default)]
pub struct HeartbeatBody {
    pub set: Option<SetInfo>,
}

/// What `POST /v1/leases/N/report` takes.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct ReportBody {
    pub set: SetInfo,
    pub outcome: SetOutcome,
}

/// What `POST /v1/leases/N/release` takes.
#[derive(Debug, Deserialize, serde::Serialize, Default)]
pub struct ReleaseBody {
    /// The cartridge reached end of medium.
    pub full: bool,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Bad(e.to_string()))
}

fn num(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::Bad(format!("{s:?} is not a number")))
}

/// The endpoints.
fn route(
    svc: &Service,
    who: &Caller,
    method: &str,
    url: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let path: Vec<&str> = url.trim_matches('/').split('/').collect();
    let host = who.name.as_str();
    Ok(match (method, path.as_slice()) {
        ("GET", ["v1", "status"]) => json!(svc.status()),
        ("GET", ["v1", "events"]) => json!(svc.events()?),
        ("POST", ["v1", "requests"]) => {
            let want = match parse::<RequestBody>(body)? {
                RequestBody::Backup { pool, copy_manager } => Want::Backup {
                    pool,
                    copy_manager,
                    by_server: false,
                },
                RequestBody::Restore { set } => svc.restore_want(&set)?,
            };
            let ticket = svc.request(host, want)?;
            json!({"ticket": ticket, "view": svc.poll(ticket, host, Duration::ZERO)?})
        }
        ("GET", ["v1", "requests", t]) => json!(svc.poll(num(t)?, host, LONG_POLL)?),
        ("GET", ["v1", "leases", l]) => json!(svc.grant(num(l)?, host)?),
        ("POST", ["v1", "leases", l, "heartbeat"]) => {
            let b: HeartbeatBody = parse(body)?;
            json!({"expires": svc.heartbeat(num(l)?, host, b.set.as_ref())?})
        }
        ("POST", ["v1", "leases", l, "report"]) => {
            let b: ReportBody = parse(body)?;
            svc.report(num(l)?, host, &b.set, &b.outcome)?;
            json!({})
        }
        ("POST", ["v1", "leases", l, "release"]) => {
            let b: ReleaseBody = parse(body)?;
            svc.release(num(l)?, host, b.full)?;
            json!({})
        }
        ("POST", ["v1", "drives", d, "release"]) => {
            if !who.operator {
                return Err(ApiError::Forbidden);
            }
            svc.operator_release(num(d)? as usize)?;
            json!({})
        }
        _ => return Err(ApiError::NotFound(format!("{method} {url}"))),
    })
}
