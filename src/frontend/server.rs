//! The listener: one thread accepting, one thread per connection, and the
//! state they share (connection slots, the memory budget, the sessions and
//! background tasks by I_T nexus).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::budget::Budget;
use super::chap::ChapError;
use super::login::LoginConfig;
use super::session::Connection;
use super::slots::Slots;
use super::text::TargetLimits;
use super::{ConnLimits, TargetConfig, TargetDef};
use crate::lu::{Nexus, TaskStop};

/// How long a new login waits for the session it replaces to end.
const REINSTATE_WAIT: Duration = Duration::from_secs(30);

/// Why the target does not serve.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(
        "{0} is not a loopback address and {1}: configure CHAP and an allow-list, or pass --insecure"
    )]
    Insecure(SocketAddr, &'static str),
    #[error("CHAP: {0}")]
    Chap(#[from] ChapError),
    #[error("limits: {0}")]
    Limits(&'static str),
}

/// Signalled when a session has released everything it held.
#[derive(Default)]
pub(crate) struct Ended {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Ended {
    pub fn set(&self) {
        *lock(&self.done) = true;
        self.cv.notify_all();
    }

    fn wait(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut done = lock(&self.done);
        while !*done {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = match self.cv.wait_timeout(done, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

struct SessionEntry {
    conn: u64,
    ended: Arc<Ended>,
}

/// Why a background task was stopped, which decides its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AbortedBy {
    /// A TMF of its own session (no status, SAM-5 7.2) or its session's end.
    Own,
    /// A TMF of another I_T nexus: TASK ABORTED status (TAS=1).
    Other,
}

/// A background task, for TMFs of every session.
pub(crate) struct TaskEntry {
    pub target: usize,
    pub lun: u64,
    pub stop: TaskStop,
    pub aborted: Option<AbortedBy>,
}

/// State every connection thread sees.
pub(crate) struct Shared {
    pub targets: Vec<TargetDef>,
    pub login: LoginConfig,
    pub limits: ConnLimits,
    pub budget: Budget,
    stop: AtomicBool,
    next_tsih: AtomicU16,
    next_conn: AtomicU64,
    pub(crate) slots: Mutex<Slots<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    sessions: Mutex<HashMap<Nexus, SessionEntry>>,
    /// Background tasks by (connection, ITT).
    pub(crate) tasks: Mutex<HashMap<(u64, u32), TaskEntry>>,
}

impl Shared {
    /// A fresh session handle, never 0 (RFC 7143 11.12.6).
    pub fn tsih(&self) -> u16 {
        loop {
            let t = self.next_tsih.fetch_add(1, Ordering::Relaxed);
            if t != 0 {
                return t;
            }
        }
    }

    /// Make connection `conn` the session of `nexus`. A session of the
    /// same nexus (same initiator name and ISID) is closed first and
    /// waited for: session reinstatement (RFC 7143 6.3.5). False when it
    /// did not end in time.
    pub fn register_session(&self, nexus: &Nexus, conn: u64, ended: Arc<Ended>) -> bool {
        loop {
            let old = {
                let mut m = lock(&self.sessions);
                match m.get(nexus) {
                    None => {
                        m.insert(nexus.clone(), SessionEntry { conn, ended });
                        return true;
                    }
                    Some(e) => (e.conn, e.ended.clone()),
                }
            };
            log::info!(
                "iSCSI session of {} (ISID {:012x}) reinstated: connection {} replaces {}",
                super::text::escaped(&nexus.initiator),
                nexus.isid,
                conn,
                old.0
            );
            self.end_connection(old.0);
            if !old.1.wait(REINSTATE_WAIT) {
                return false;
            }
            // Its thread removed the entry; take the place (or meet yet
            // another login of the same nexus).
            let mut m = lock(&self.sessions);
            if m.get(nexus).is_some_and(|e| e.conn == old.0) {
                m.remove(nexus);
            }
        }
    }

    /// The session of `conn` is over.
    pub fn unregister_session(&self, nexus: &Nexus, conn: u64) {
        let mut m = lock(&self.sessions);
        if m.get(nexus).is_some_and(|e| e.conn == conn) {
            m.remove(nexus);
        }
    }

    /// Close connection `conn` and stop its background tasks.
    fn end_connection(&self, conn: u64) {
        for ((c, _), t) in lock(&self.tasks).iter_mut() {
            if *c == conn {
                t.aborted.get_or_insert(AbortedBy::Own);
                t.stop.stop();
            }
        }
        lock(&self.slots).close(conn);
    }
}

pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Frees the slot of a connection whose thread ends, however it ends
/// (a panic included).
struct SlotGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        lock(&self.shared.slots).remove(self.id);
    }
}

/// A bound target, not yet serving.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl TargetConfig {
    /// What [`Server::bind`] checks before it binds: the CHAP rules, the
    /// limits, and that a listener off loopback has CHAP and an
    /// allow-list unless `insecure` (which logs a warning).
    pub fn check(&self) -> Result<(), BindError> {
        check_exposure(self)
    }
}

/// Refuse what would serve more than a private address should: a listener
/// off loopback needs CHAP and an allow-list unless `insecure`.
fn check_exposure(cfg: &TargetConfig) -> Result<(), BindError> {
    if let Some(c) = &cfg.chap {
        for w in c.validate()? {
            log::warn!("{w}");
        }
    }
    let l = &cfg.limits;
    if l.reserved >= l.max_connections || l.max_per_source == 0 {
        return Err(BindError::Limits(
            "reserved must be below max_connections, and max_per_source at least 1",
        ));
    }
    if cfg.listen.ip().is_loopback() {
        return Ok(());
    }
    let missing = match (cfg.chap.is_some(), !cfg.allow.is_empty()) {
        (true, true) => return Ok(()),
        (false, false) => "neither CHAP nor an allow-list is configured",
        (false, true) => "no CHAP is configured",
        (true, false) => "no allow-list is configured",
    };
    if !cfg.insecure {
        return Err(BindError::Insecure(cfg.listen, missing));
    }
    log::warn!(
        "insecure: serving {} although {missing}; any initiator that reaches it may log in",
        cfg.listen
    );
    Ok(())
}

impl Server {
    /// Bind `cfg.listen` (exactly that address) and get ready to serve.
    pub fn bind(cfg: TargetConfig) -> Result<Server, BindError> {
        check_exposure(&cfg)?;
        let listener = TcpListener::bind(cfg.listen)?;
        let login = LoginConfig {
            targets: cfg.targets.iter().map(|t| t.name.clone()).collect(),
            allow: cfg.allow,
            chap: cfg.chap,
            limits: TargetLimits::default(),
        };
        let l = cfg.limits;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                targets: super::behind_reservations(cfg.targets),
                login,
                budget: Budget::new(l.memory_budget, l.memory_per_connection),
                slots: Mutex::new(Slots::new(&l)),
                limits: l,
                stop: AtomicBool::new(false),
                next_tsih: AtomicU16::new(1),
                next_conn: AtomicU64::new(1),
                threads: Mutex::new(Vec::new()),
                sessions: Mutex::new(HashMap::new()),
                tasks: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serve on background threads.
    pub fn spawn(self) -> ServerHandle {
        let addr = self.local_addr();
        let shared = self.shared.clone();
        let accept = std::thread::Builder::new()
            .name("iscsi-accept".into())
            .spawn(move || {
                if let Err(e) = accept_loop(&self.listener, &self.shared) {
                    log::error!("iSCSI target at {addr}: accept failed: {e}");
                }
            })
            .expect("spawn the accept thread");
        ServerHandle {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Serve in the foreground until the listener fails.
    pub fn run(self) -> io::Result<()> {
        log::info!("iSCSI target listening on {}", self.local_addr());
        accept_loop(&self.listener, &self.shared)
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> io::Result<()> {
    while !shared.stop.load(Ordering::SeqCst) {
        // Wait at most 100 ms so a shutdown and login deadlines are seen
        // promptly.
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(100u16));
        let expired = lock(&shared.slots).expire(Instant::now());
        if expired > 0 {
            log::info!("iSCSI: {expired} connection(s) closed at the login deadline");
        }
        match ready {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        match listener.accept() {
            Ok((stream, peer)) => admit(shared, stream, peer),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors and the like: log, back off, go on.
                log::warn!("iSCSI accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

/// Give a new connection a slot and a thread, or close it.
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let clone = match stream.try_clone() {
        Ok(c) => c,
        Err(e) => {
            log::warn!("iSCSI connection from {peer}: {e}");
            return;
        }
    };
    let taken = lock(&shared.slots).accept(id, peer.ip(), clone, Instant::now());
    match taken {
        Err(why) => {
            log::warn!("iSCSI connection from {peer} refused: {why}");
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        Ok(Some((v, from))) => log::info!(
            "iSCSI connection {v} from {from} closed before its login completed, for a new one from {peer}"
        ),
        Ok(None) => {}
    }
    let sh = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("iscsi-conn-{id}"))
        .spawn(move || {
            let _slot = SlotGuard {
                shared: sh.clone(),
                id,
            };
            log::debug!("iSCSI connection {id} from {peer}");
            match Connection::new(&sh, id, stream) {
                Ok(mut c) => match c.run() {
                    Ok(()) => log::debug!("iSCSI connection {id} from {peer} closed"),
                    Err(e) => log::info!("iSCSI connection {id} from {peer} closed: {e}"),
                },
                Err(e) => log::info!("iSCSI connection {id} from {peer}: {e}"),
            }
        });
    match spawned {
        Ok(h) => {
            let mut threads = lock(&shared.threads);
            threads.retain(|t| !t.is_finished());
            threads.push(h);
        }
        Err(e) => {
            log::warn!("iSCSI connection from {peer}: no thread: {e}");
            let mut slots = lock(&shared.slots);
            slots.close(id);
            slots.remove(id);
        }
    }
}

/// A target serving on background threads.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, close every connection and join every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        // No new connections now; close the open ones so their threads end.
        for t in lock(&self.shared.tasks).values() {
            t.stop.stop();
        }
        lock(&self.shared.slots).close_all();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: &str) -> TargetConfig {
        TargetConfig::new(listen.parse().unwrap(), Vec::new())
    }

    /// Off loopback, CHAP and an allow-list, or --insecure.
    #[test]
    fn exposure_rules() {
        assert!(check_exposure(&cfg("127.0.0.1:0")).is_ok());
        assert!(check_exposure(&cfg("[::1]:0")).is_ok());
        let open = cfg("0.0.0.0:3260");
        let e = check_exposure(&open).unwrap_err().to_string();
        assert!(
            e.contains("neither CHAP nor an allow-list") && e.contains("--insecure"),
            "{e}"
        );
        let mut c = cfg("0.0.0.0:3260");
        c.allow = vec!["iqn.x:a".into()];
        assert!(check_exposure(&c)
            .unwrap_err()
            .to_string()
            .contains("no CHAP"));
        c.chap = Some(super::super::ChapConfig::single(
            "iqn.x:a",
            "a",
            "sixteen-bytes-ok",
        ));
        assert!(check_exposure(&c).is_ok());
        let mut c = cfg("0.0.0.0:3260");
        c.insecure = true;
        assert!(check_exposure(&c).is_ok());
        c.chap = Some(super::super::ChapConfig::single("iqn.x:a", "a", "short"));
        assert!(matches!(check_exposure(&c), Err(BindError::Chap(_))));
    }
}
