//! The listener: one thread accepting, one thread per connection.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::login::LoginConfig;
use super::session::Connection;
use super::text::TargetLimits;
use super::{TargetConfig, TargetDef};

/// State every connection thread sees.
pub(crate) struct Shared {
    pub targets: Vec<TargetDef>,
    pub login: LoginConfig,
    stop: AtomicBool,
    next_tsih: AtomicU16,
    next_conn: AtomicU64,
    /// Open connections (a clone of each socket), so shutdown can close them.
    conns: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
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
}

/// A bound target, not yet serving.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Bind `cfg.listen` (exactly that address) and get ready to serve.
    pub fn bind(cfg: TargetConfig) -> io::Result<Server> {
        let listener = TcpListener::bind(cfg.listen)?;
        let login = LoginConfig {
            targets: cfg.targets.iter().map(|t| t.name.clone()).collect(),
            allow: cfg.allow,
            chap: cfg.chap,
            limits: TargetLimits::default(),
        };
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                targets: cfg.targets,
                login,
                stop: AtomicBool::new(false),
                next_tsih: AtomicU16::new(1),
                next_conn: AtomicU64::new(1),
                conns: Mutex::new(HashMap::new()),
                threads: Mutex::new(Vec::new()),
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> io::Result<()> {
    while !shared.stop.load(Ordering::SeqCst) {
        // Wait at most 100 ms so a shutdown is seen promptly.
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors and the like: log, back off, go on.
                log::warn!("iSCSI accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        match stream.try_clone() {
            Ok(c) => {
                lock(&shared.conns).insert(id, c);
            }
            Err(e) => {
                log::warn!("iSCSI connection from {peer}: {e}");
                continue;
            }
        }
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("iscsi-conn-{id}"))
            .spawn(move || {
                log::debug!("iSCSI connection {id} from {peer}");
                match Connection::new(&sh, stream) {
                    Ok(mut c) => match c.run() {
                        Ok(()) => log::debug!("iSCSI connection {id} from {peer} closed"),
                        Err(e) => log::info!("iSCSI connection {id} from {peer} closed: {e}"),
                    },
                    Err(e) => log::info!("iSCSI connection {id} from {peer}: {e}"),
                }
                lock(&sh.conns).remove(&id);
            });
        match spawned {
            Ok(h) => {
                let mut threads = lock(&shared.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(h);
            }
            Err(e) => {
                log::warn!("iSCSI connection from {peer}: no thread: {e}");
                if let Some(s) = lock(&shared.conns).remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
    Ok(())
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
        for s in lock(&self.shared.conns).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
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
