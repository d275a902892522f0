//! Shared by the integration tests: the rig's addresses and a runner for
//! the binary. The rig is started by `make test` (test-rig/tgt/up.sh), which
//! exports SANMOVER_RIG_ENV; without it these tests fail and say how to
//! start it.

#![allow(dead_code)]

pub mod drive;
pub mod memory;
pub mod raw;
pub mod server;
pub mod vtl;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub struct Rig {
    pub vars: HashMap<String, String>,
}

impl Rig {
    pub fn get(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("rig env has no {key}"))
    }
    pub fn disk(&self) -> &str {
        self.get("SANMOVER_RIG_DISK")
    }
    pub fn disk2(&self) -> &str {
        self.get("SANMOVER_RIG_DISK2")
    }
    pub fn tape(&self) -> &str {
        self.get("SANMOVER_RIG_TAPE")
    }
    pub fn portal(&self) -> &str {
        self.get("SANMOVER_RIG_PORTAL")
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A rig's KEY=VALUE env file; panics with instructions when it is absent.
fn read_env(path: &Path, what: &str, how: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{what} is not up ({}: {e}); run `{how}` or `make test`",
            path.display()
        )
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().trim_start_matches("export ").to_string(),
                v.trim().trim_matches('"').trim_matches('\'').to_string(),
            )
        })
        .collect()
}

/// The running tgt rig. Panics with instructions when it is not up.
pub fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let path = std::env::var("SANMOVER_RIG_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("test-rig/run/tgt/rig.env"));
        Rig {
            vars: read_env(&path, "the tgt rig", "make rig-up"),
        }
    })
}

/// The tape is one shared LU: tests that move it take this lock first.
pub fn tape_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Recreate the rig's tape as a blank one (test-rig/tgt/reset-tape.sh).
pub fn reset_tape() {
    let script = repo_root().join("test-rig/tgt/reset-tape.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run reset-tape.sh");
    assert!(
        out.status.success(),
        "reset-tape.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Run `sanmover ARGS…`.
pub fn sanmover<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out: Output = Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .args(args)
        .env_remove("SANMOVER_INITIATOR")
        .env_remove("RUST_LOG")
        .output()
        .expect("run sanmover");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A rig of its own, in its own state dir, for tests that kill or restart
/// tgtd. Stopped by pid (down.sh) when dropped, also when the test fails.
pub struct PrivateRig {
    pub state: tempfile::TempDir,
    pub vars: HashMap<String, String>,
    env: Vec<(String, String)>,
}

fn run_script(script: &str, state: &Path, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new("bash");
    c.arg(repo_root().join("test-rig/tgt").join(script))
        .args(args)
        .env("SANMOVER_RIG_STATE", state);
    for (k, v) in extra {
        c.env(k, v);
    }
    c.output().expect("run rig script")
}

impl PrivateRig {
    pub fn start() -> PrivateRig {
        Self::start_with(&[])
    }

    /// A private rig with extra settings for up.sh (e.g.
    /// `SANMOVER_RIG_TAPE_MB`).
    pub fn start_with(env: &[(&str, &str)]) -> PrivateRig {
        let state = tempfile::tempdir().expect("state dir");
        let mut r = PrivateRig {
            state,
            vars: HashMap::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        r.up(false);
        r
    }

    fn up(&mut self, keep_images: bool) {
        let keep = if keep_images { "1" } else { "0" };
        let mut extra: Vec<(&str, &str)> = vec![("SANMOVER_RIG_KEEP_IMAGES", keep)];
        extra.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let out = run_script("up.sh", self.state.path(), &extra, &[]);
        assert!(
            out.status.success(),
            "private rig did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.vars = read_env(&self.state.path().join("rig.env"), "a private rig", "up.sh");
    }

    pub fn get(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("private rig env has no {key}"))
    }

    /// Kill tgtd outright: a target that dies.
    pub fn kill_tgtd(&self) {
        let pid: i32 = self.get("SANMOVER_RIG_TGTD_PID").parse().unwrap();
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("tgtd {pid} did not die");
    }

    /// Start tgtd again on the images the dead one left.
    pub fn restart_keeping_images(&mut self) {
        self.up(true);
    }

    /// Add a disk LUN of `mb` MiB; returns its URL and backing file.
    pub fn add_lun(&self, lun: u32, mb: u32) -> (String, PathBuf) {
        let out = run_script(
            "lun.sh",
            self.state.path(),
            &[],
            &["add", &lun.to_string(), &mb.to_string()],
        );
        assert!(
            out.status.success(),
            "lun.sh add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap()
            .to_string();
        (url, self.state.path().join(format!("lun-{lun}.img")))
    }
}

impl Drop for PrivateRig {
    fn drop(&mut self) {
        let _ = run_script("down.sh", self.state.path(), &[], &[]);
    }
}

/// Run sanmover with a given catalog.
pub fn sm(catalog: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--catalog", catalog.to_str().unwrap()];
    all.extend_from_slice(args);
    sanmover(all)
}

/// `len` reproducible random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = vec![0u8; len];
    for chunk in data.chunks_mut(8) {
        // xorshift64: fast, reproducible, incompressible enough.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    data
}

/// Fill the first `len` bytes of a backing file with random data.
pub fn fill_random(path: &Path, len: usize, seed: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let data = random_bytes(len, seed);
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
}

/// The LIO-in-QEMU rig (test-rig/lio), brought up by `make test` through
/// test-rig/with-lio.sh, which exports SANMOVER_LIO_ENV.
pub fn lio() -> &'static Rig {
    static LIO: OnceLock<Rig> = OnceLock::new();
    LIO.get_or_init(|| {
        let path = std::env::var("SANMOVER_LIO_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("test-rig/run/lio/rig.env"));
        Rig {
            vars: read_env(&path, "the LIO rig", "make rig-lio-up"),
        }
    })
}

/// Run a shell command inside the LIO guest; returns its stdout.
pub fn lio_ctl(cmd: &str) -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("test-rig/lio/ctl.sh"))
        .arg(cmd)
        .env("SANMOVER_LIO_STATE", lio().get("SANMOVER_LIO_STATE_DIR"))
        .output()
        .expect("run ctl.sh");
    assert!(
        out.status.success(),
        "guest command {cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// --- TCMU tapes in the LIO guest -----------------------------------------

/// Drives the LIO guest's TCMU handler serves (`sanmover tcmu`); each
/// test takes units of its own.
pub const TCMU_DRIVES: u32 = 8;

/// The handler runs once per test binary; tests take drives of their own
/// and run one at a time (the guest has one CPU).
pub fn tcmu_guest() -> MutexGuard<'static, ()> {
    static STARTED: OnceLock<()> = OnceLock::new();
    static ONE: Mutex<()> = Mutex::new(());
    let g = ONE.lock().unwrap_or_else(|p| p.into_inner());
    STARTED.get_or_init(|| {
        lio_ctl(&format!(
            "rig tcmu-stop; rig tcmu-start {TCMU_DRIVES} fresh; \
             rig lun-del tcmuchanger >/dev/null 2>&1; rig tcmu-add tcmuchanger changer {} {}",
            lio_initiator(),
            lio_other()
        ));
    });
    g
}

/// The URL of the library's changer, exported by [`tcmu_guest`].
pub fn tcmu_changer() -> String {
    tcmu_url("tcmuchanger")
}

/// The URL of the guest's LUN whose backstore is named `name`.
pub fn tcmu_url(name: &str) -> String {
    let out = lio_ctl(&format!(
        "for l in /sys/kernel/config/target/iscsi/*/tpgt_1/lun/lun_*; do \
         [ -L $l/{name} ] && echo ${{l##*lun_}}; done; true"
    ));
    lio_url(out.trim())
}

/// The URL of LUN `lun` of the LIO rig's target.
pub fn lio_url(lun: &str) -> String {
    format!(
        "iscsi://{}/{}/{lun}",
        lio().get("SANMOVER_LIO_PORTAL"),
        lio().get("SANMOVER_LIO_IQN")
    )
}

/// An iSCSI session to `url` as initiator `who`.
pub fn try_connect(
    url: &str,
    who: &str,
) -> Result<sanmover::transport::iscsi::IscsiTransport, String> {
    use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
    let u = sanmover::transport::url::IscsiUrl::parse(url).map_err(|e| e.to_string())?;
    let opts = IscsiOptions {
        initiator: who.to_string(),
        ..IscsiOptions::default()
    };
    IscsiTransport::connect(&u, &opts).map_err(|e| e.to_string())
}

/// [`try_connect`], which must succeed.
pub fn connect(url: &str, who: &str) -> sanmover::transport::iscsi::IscsiTransport {
    try_connect(url, who).unwrap_or_else(|e| panic!("connect {url} as {who}: {e}"))
}

pub fn lio_initiator() -> &'static str {
    lio().get("SANMOVER_LIO_INITIATOR")
}

pub fn lio_other() -> &'static str {
    lio().get("SANMOVER_LIO_OTHER_INITIATOR")
}

/// A `user:` backstore NAME for the handler's UNIT, exported to both rig
/// initiators; its URL.
pub fn tcmu_tape(name: &str, unit: &str, timeout: Option<u32>) -> String {
    let env = timeout.map_or(String::new(), |t| format!("RIG_TCMU_TIMEOUT={t} "));
    tcmu_tape_with(name, unit, &env)
}

/// [`tcmu_tape`] with `env` (`RIG_TCMU_…=V `) before `rig tcmu-add`.
pub fn tcmu_tape_with(name: &str, unit: &str, env: &str) -> String {
    let out = lio_ctl(&format!(
        "rig lun-del {name} >/dev/null 2>&1; {env}rig tcmu-add {name} {unit} {} {}",
        lio_initiator(),
        lio_other()
    ));
    let lun = out.trim().lines().last().unwrap().trim().to_string();
    // driveN holds the cartridge of slot N+1 (loaded by the changer, as
    // a library would; left there from an earlier test is fine).
    if let Some(n) = unit
        .strip_prefix("drive")
        .and_then(|n| n.parse::<u32>().ok())
    {
        let ch = tcmu_changer();
        let (slot, drive) = ((n + 1).to_string(), n.to_string());
        let r = sanmover([
            "--initiator",
            lio_initiator(),
            "changer",
            &ch,
            "load",
            &slot,
            &drive,
        ]);
        assert!(
            r.code == 0 || r.stderr.contains("3B/0E") || r.stderr.contains("3B/0D"),
            "loading slot {slot} into drive {drive}: {}",
            r.stderr
        );
    }
    format!(
        "iscsi://{}/{}/{lun}",
        lio().get("SANMOVER_LIO_PORTAL"),
        lio().get("SANMOVER_LIO_IQN")
    )
}

/// Remove the guest's LUN `name` (and its backing file), if it is there.
pub fn lio_del_lun(name: &str) {
    let _ = Command::new("bash")
        .arg(repo_root().join("test-rig/lio/lun.sh"))
        .args(["del", name])
        .env("SANMOVER_LIO_STATE", lio().get("SANMOVER_LIO_STATE_DIR"))
        .output();
}

/// Add a LUN of `mb` MiB in the guest, mapped for `initiators`; its URL.
/// A LUN of that name left by an earlier run is removed first.
pub fn lio_add_lun(name: &str, mb: u32, initiators: &[&str]) -> String {
    lio_del_lun(name);
    let mut c = Command::new("bash");
    c.arg(repo_root().join("test-rig/lio/lun.sh"))
        .args(["add", name, &mb.to_string()])
        .args(initiators)
        .env("SANMOVER_LIO_STATE", lio().get("SANMOVER_LIO_STATE_DIR"));
    let out = c.output().expect("run lio lun.sh");
    assert!(
        out.status.success(),
        "lio lun.sh add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string()
}

/// A `sanmover router` of its own on 127.0.0.1 (a free port it picks
/// itself), killed by pid when dropped, also when the test fails.
/// `[[copy_rights]]` granting this host's initiator name every LUN of each
/// backend target (`iscsi://HOST:PORT/IQN[/LUN]`), as source and destination.
pub fn copy_rights_toml(backends: &[&str]) -> String {
    let me = sanmover::transport::iscsi::initiator_from_env();
    let lus: Vec<String> = backends
        .iter()
        .map(|u| {
            let iqn = u.split('/').nth(3).expect("backend URL with a target");
            format!("{{ target = \"{iqn}\", role = \"both\" }}")
        })
        .collect();
    format!(
        "[[copy_rights]]\ninitiators = [\"{me}\"]\nlus = [{}]\n",
        lus.join(", ")
    )
}

pub struct Router {
    child: std::process::Child,
    /// ADDR:PORT it listens on.
    pub addr: String,
    /// Its target name.
    pub iqn: String,
    /// Its log (stderr).
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Router {
    /// Start `sanmover router --listen 127.0.0.1:0` with these backends and
    /// extra arguments; waits for its "listening on" line. Unless `extra`
    /// brings its own `--config`, or `--insecure` (a test about something
    /// else than copy rights, run without any), the router gets one as a
    /// user would write it: copy rights for this host's initiator name
    /// (what the CLI logs in with) on every LUN of each backend target,
    /// both ways.
    pub fn start(backends: &[&str], extra: &[&str]) -> Router {
        Self::start_global(&[], backends, extra)
    }

    /// [`Router::start`] with global options (`-v`) before `router`.
    pub fn start_global(global: &[&str], backends: &[&str], extra: &[&str]) -> Router {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("router dir");
        let log = dir.path().join("router.log");
        let mut c = Command::new(env!("CARGO_BIN_EXE_sanmover"));
        c.args(global);
        c.args(["router", "--listen", "127.0.0.1:0"]);
        let own_rights = extra.contains(&"--config") || extra.contains(&"--insecure");
        if !own_rights && !backends.is_empty() {
            let cfg = dir.path().join("router.toml");
            std::fs::write(&cfg, copy_rights_toml(backends)).expect("router config");
            c.arg("--config").arg(&cfg);
        }
        for b in backends {
            c.args(["--backend", b]);
        }
        c.args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("router log"));
        let mut child = c.spawn().expect("spawn sanmover router");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("router stdout");
        let mut r = std::io::BufReader::new(stdout);
        let _ = r.read_line(&mut line);
        // Keep draining stdout so the router never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while r.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let words: Vec<&str> = line.split_whitespace().collect();
        let find = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .map(|w| w.trim_end_matches(',').to_string())
        };
        let (Some(addr), Some(iqn)) = (find("on"), find("target")) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "router did not start: stdout {line:?}, log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Router {
            child,
            addr,
            iqn,
            log,
            _dir: dir,
        }
    }

    /// The copy manager LU's URL (LUN 0).
    pub fn url(&self) -> String {
        format!("iscsi://{}/{}/0", self.addr, self.iqn)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The socket address it listens on.
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        self.addr.parse().expect("router address")
    }

    /// Its resident memory (VmRSS), bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
