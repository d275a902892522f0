//! `exec:SCRIPT` provider: an external program drives the array (its own
//! CLI or REST API). The contract is in docs/snapshot-exec.md:
//!
//! - `SCRIPT OP` with OP one of `create`, `map`, `unmap`, `delete`;
//! - stdin: one JSON object `{"op", "job", "snapshot"}` (`snapshot` is
//!   null for create);
//! - exit 0 and JSON on stdout: create answers a [`Snapshot`]
//!   (`{"handle", "info"}`), map a [`MappedLun`] (`{"url", "designator",
//!   "read_only"}`), unmap and delete anything (ignored);
//! - any other exit status is a failure; the reason is `{"error": "..."}`
//!   on stdout if given, else stderr;
//! - every operation must be idempotent (cleanup replays unmap/delete).
//!
//! Options: `exec:SCRIPT[,timeout=S][,k=v…]`; all of them reach the script
//! in `job.options`. The script runs with at most `timeout` seconds per
//! operation (default 300), then is killed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::json;

use super::{failed, Failure, MappedLun, ProviderError, Snapshot, SnapshotJob, SnapshotProvider};

/// Snapshots made by an external script.
#[derive(Debug, Clone)]
pub struct ExecProvider {
    script: PathBuf,
    timeout: Duration,
}

impl ExecProvider {
    /// Build from the spec options: `script` (required), `timeout`.
    pub fn new(options: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        let script = options
            .get("script")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ProviderError::Spec("exec needs a script: exec:/path/to/script".into())
            })?;
        let timeout = match options.get("timeout") {
            Some(t) => Duration::from_secs(t.parse().map_err(|_| {
                ProviderError::Spec(format!("exec: timeout={t} is not a number of seconds"))
            })?),
            None => Duration::from_secs(300),
        };
        Ok(ExecProvider {
            script: PathBuf::from(script),
            timeout,
        })
    }

    /// Run `script op` with the job on stdin; its stdout on success.
    fn call(
        &self,
        op: &'static str,
        job: &SnapshotJob,
        snap: Option<&Snapshot>,
    ) -> Result<String, ProviderError> {
        let input = json!({ "op": op, "job": job, "snapshot": snap }).to_string();
        let mut child = Command::new(&self.script)
            .arg(op)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| {
                let program = self.script.display().to_string();
                failed(op, Failure::Spawn { program, source })
            })?;
        // Readers on their own threads: a chatty script never blocks on a
        // full pipe while we wait for it.
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        if let Some(mut stdin) = child.stdin.take() {
            // A script that does not read its input closes the pipe: fine.
            let _ = stdin.write_all(input.as_bytes());
        }
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(failed(
                        op,
                        Failure::TimedOut {
                            command: format!("{} {op}", self.script.display()),
                            after: self.timeout,
                        },
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(source) => {
                    let program = self.script.display().to_string();
                    return Err(failed(op, Failure::Spawn { program, source }));
                }
            }
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        if !status.success() {
            let said = serde_json::from_str::<serde_json::Value>(stdout.trim())
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string));
            let reason = said.unwrap_or_else(|| stderr.trim().to_string());
            return Err(failed(
                op,
                Failure::Exited {
                    command: format!("{} {op}", self.script.display()),
                    said: format!("exited with {status}: {reason}"),
                },
            ));
        }
        Ok(stdout)
    }

    fn parse<T: DeserializeOwned>(op: &'static str, stdout: &str) -> Result<T, ProviderError> {
        serde_json::from_str(stdout.trim()).map_err(|e| {
            failed(
                op,
                Failure::Answer(format!(
                    "the script's answer is not the expected JSON ({e}): {stdout:?}"
                )),
            )
        })
    }
}

impl SnapshotProvider for ExecProvider {
    fn name(&self) -> &'static str {
        "exec"
    }
    fn create(&mut self, job: &SnapshotJob) -> Result<Snapshot, ProviderError> {
        let out = self.call("create", job, None)?;
        Self::parse("create", &out)
    }
    fn map(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<MappedLun, ProviderError> {
        let out = self.call("map", job, Some(snap))?;
        Self::parse("map", &out)
    }
    fn unmap(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError> {
        self.call("unmap", job, Some(snap)).map(|_| ())
    }
    fn delete(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError> {
        self.call("delete", job, Some(snap)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn job() -> SnapshotJob {
        SnapshotJob {
            job_id: uuid::Uuid::new_v4(),
            source_url: "iscsi://127.0.0.1:3260/iqn.x:disk/1".into(),
            source_designator: Some("60aa".into()),
            initiator: "iqn.me".into(),
            options: BTreeMap::new(),
        }
    }

    fn script(dir: &std::path::Path, body: &str) -> ExecProvider {
        let p = dir.join("s.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut o = BTreeMap::from([("script".to_string(), p.display().to_string())]);
        o.insert("timeout".into(), "5".into());
        ExecProvider::new(&o).unwrap()
    }

    #[test]
    fn answers_are_decoded_and_the_job_is_passed() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("in.json");
        let mut p = script(
            d.path(),
            &format!(
                r#"cat > {log}.$1
case $1 in
create) echo '{{"handle":"h1","info":{{"k":1}}}}' ;;
map) echo '{{"url":"iscsi://h/iqn/1","designator":"60ab","read_only":true}}' ;;
*) ;;
esac"#,
                log = log.display()
            ),
        );
        let j = job();
        let s = p.create(&j).unwrap();
        assert_eq!(s.handle, "h1");
        let m = p.map(&j, &s).unwrap();
        assert_eq!(m.designator.as_deref(), Some("60ab"));
        assert!(m.read_only);
        p.unmap(&j, &s).unwrap();
        p.delete(&j, &s).unwrap();
        let input: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{}.map", log.display())).unwrap(),
        )
        .unwrap();
        assert_eq!(input["op"], "map");
        assert_eq!(input["job"]["initiator"], "iqn.me");
        assert_eq!(input["snapshot"]["handle"], "h1");
    }

    #[test]
    fn failures_carry_the_reason() {
        let d = tempfile::tempdir().unwrap();
        let mut p = script(d.path(), r#"echo '{"error":"pool full"}'; exit 3"#);
        let e = p.create(&job()).unwrap_err().to_string();
        assert!(e.contains("pool full"), "{e}");
        let mut p = script(d.path(), "echo oops >&2; exit 1");
        let e = p.create(&job()).unwrap_err().to_string();
        assert!(e.contains("oops"), "{e}");
        let mut p = script(d.path(), "echo not-json");
        assert!(p.create(&job()).is_err());
    }

    #[test]
    fn a_hanging_script_is_killed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sh");
        std::fs::write(&p, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let o = BTreeMap::from([
            ("script".to_string(), p.display().to_string()),
            ("timeout".to_string(), "1".to_string()),
        ]);
        let mut e = ExecProvider::new(&o).unwrap();
        let t = Instant::now();
        assert!(e.create(&job()).is_err());
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn discard_says_it_cannot_look_and_runs_nothing() {
        let d = tempfile::tempdir().unwrap();
        let ran = d.path().join("ran");
        let mut p = script(d.path(), &format!("touch {}", ran.display()));
        let j = job();
        let said = p.discard(&j).unwrap();
        assert!(said.contains("cannot look"), "{said}");
        assert!(said.contains(&j.job_id.to_string()), "{said}");
        assert!(!ran.exists(), "discard must not run the script");
    }

    #[test]
    fn a_script_is_required() {
        assert!(ExecProvider::new(&BTreeMap::new()).is_err());
    }
}
