//! Shared by the integration tests: the rig's addresses and a runner for
//! the binary. The rig is started by `make test` (test-rig/tgt/up.sh), which
//! exports SANMOVER_RIG_ENV; without it these tests fail and say how to
//! start it.

#![allow(dead_code)]

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

/// The running tgt rig. Panics with instructions when it is not up.
pub fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let path = std::env::var("SANMOVER_RIG_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("test-rig/run/tgt/rig.env"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the tgt rig is not up ({}: {e}); run `make rig-up` or `make test`",
                path.display()
            )
        });
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().trim_start_matches("export ").to_string(),
                    v.trim().trim_matches('"').trim_matches('\'').to_string(),
                )
            })
            .collect();
        Rig { vars }
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
