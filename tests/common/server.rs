//! `sanmover server` for the server suites (tgt's library, the VTL): the
//! server and each host are processes of their own, with their own
//! initiator name, credential and catalog, stopped by pid when dropped,
//! also when a test fails.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sanmover::catalog::Catalog;
use sanmover::server::events::{Event, EventKind};

use super::Run;

/// The hosts of the hosts file; `op` is the operator.
pub const HOSTS: [&str; 3] = ["alpha", "bravo", "charlie"];
pub const OPERATOR: &str = "op";

pub fn secret(host: &str) -> String {
    format!("{host}-secret-0123456789")
}

/// The hosts file: every host of [`HOSTS`], and the operator.
pub fn hosts_toml() -> String {
    let mut text = String::new();
    for h in HOSTS {
        text += &format!("[[host]]\nname = \"{h}\"\nsecret = \"{}\"\n", secret(h));
    }
    text += &format!(
        "[[host]]\nname = \"{OPERATOR}\"\nsecret = \"{}\"\noperator = true\n",
        secret(OPERATOR)
    );
    text
}

/// A child process: SIGCONT (it may be stopped) then SIGKILL by pid on
/// drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a server serves: its changer, its drives, and the initiator names
/// (`PREFIX:server`, `PREFIX:HOST`).
#[derive(Clone)]
pub struct Library {
    pub changer: String,
    pub drives: Vec<String>,
    pub iqn_prefix: &'static str,
}

/// `sanmover server` on a free loopback port (unless `extra` names one).
pub struct Server {
    /// Stopped by pid when the server is dropped.
    proc: Proc,
    pub url: String,
    pub dir: tempfile::TempDir,
    lib: Library,
}

impl Server {
    pub fn start(lib: &Library, extra: &[&str]) -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), lib, extra)
    }

    /// Start in `dir`, whose catalog (`server.db`) may hold state already.
    pub fn start_in(dir: tempfile::TempDir, lib: &Library, extra: &[&str]) -> Server {
        use std::io::BufRead;
        let hosts = dir.path().join("hosts.toml");
        std::fs::write(&hosts, hosts_toml()).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_sanmover"));
        c.arg("--catalog").arg(dir.path().join("server.db"));
        c.args(["--initiator", &format!("{}:server", lib.iqn_prefix)]);
        c.args(["server", "--library", &lib.changer]);
        for d in &lib.drives {
            c.args(["--drive", d]);
        }
        if !extra.contains(&"--listen") {
            c.args(["--listen", "127.0.0.1:0"]);
        }
        c.arg("--hosts").arg(&hosts).args(extra);
        let log = dir.path().join("server.log");
        c.stdout(Stdio::piped()).stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap(),
        );
        let mut child = c.spawn().unwrap();
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        let proc = Proc(child);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
        let addr = line
            .split_whitespace()
            .nth(4)
            .map(|w| w.trim_end_matches(','))
            .unwrap_or_else(|| {
                panic!(
                    "server did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        Server {
            proc,
            url: format!("http://{addr}"),
            dir,
            lib: lib.clone(),
        }
    }

    /// The address it listens on (ADDR:PORT).
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// SIGKILL the server and start a new one on `addr` with the same
    /// catalog and hosts file, and `extra`.
    pub fn restart_on(mut self, addr: &str, extra: &[&str]) -> Server {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let lib = self.lib.clone();
        drop(self);
        let mut args = vec!["--listen", addr];
        args.extend_from_slice(extra);
        Server::start_in(dir, &lib, &args)
    }

    pub fn catalog(&self) -> Catalog {
        Catalog::open(&self.dir.path().join("server.db")).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A host's command line: its own initiator name, credential and
    /// catalog.
    pub fn host(&self, host: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sanmover"));
        c.arg("--catalog")
            .arg(self.host_catalog(host))
            .args(["--initiator", &self.initiator(host)])
            .args(args)
            .args(["--server", &self.url])
            .env("SANMOVER_SERVER_TOKEN", format!("{host}:{}", secret(host)))
            .env_remove("SANMOVER_INITIATOR");
        c
    }

    /// The initiator name `host` logs in with.
    pub fn initiator(&self, host: &str) -> String {
        format!("{}:{host}", self.lib.iqn_prefix)
    }

    /// The catalog file of `host`.
    pub fn host_catalog(&self, host: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{host}.db"))
    }

    pub fn run(&self, host: &str, args: &[&str]) -> Run {
        let out = self.host(host, args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `server status --json`, asked by the operator.
    pub fn status(&self) -> serde_json::Value {
        self.run(OPERATOR, &["--json", "server", "status"])
            .ok()
            .json()
    }

    /// A host's command in the background, output piped.
    pub fn spawn(&self, host: &str, args: &[&str]) -> Proc {
        let mut c = self.host(host, args);
        Proc(
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// Wait until the server knows the set a host writes (its heartbeat
    /// carried it); the drive and the set id.
    pub fn set_in_heartbeat(&self, limit: Duration) -> (usize, String) {
        let mut found = None;
        wait_for("a set in a heartbeat", limit, || {
            let st = self.status();
            found = st["leases"].as_array().and_then(|l| {
                l.iter().find(|l| !l["set"].is_null()).map(|l| {
                    (
                        l["drive"].as_u64().unwrap() as usize,
                        l["set"].as_str().unwrap().to_string(),
                    )
                })
            });
            found.is_some()
        });
        found.unwrap()
    }
}

/// Wait for a background command; it must succeed. Its JSON output.
pub fn finish(mut p: Proc, what: &str) -> serde_json::Value {
    use std::io::Read as _;
    let (mut out, mut err) = (String::new(), String::new());
    p.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(p.0.wait().unwrap().success(), "{what}: {err}");
    serde_json::from_str(&out).unwrap()
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first `len` bytes of two files are the same.
pub fn same_bytes(a: &Path, b: &Path, len: usize) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(
        x[..len] == y[..len],
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

/// Events of `kind` in the server's event log.
pub fn count(events: &[Event], kind: EventKind) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}
