//! Where a storage-side provider runs its shell scripts: the LIO rig's
//! control channel (a serial port of the QEMU guest), or a real storage host
//! over ssh. Scripts are plain POSIX sh (busybox sh in the rig), so the same
//! provider code drives both.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Running a script failed, or it exited non-zero.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The runner program itself could not be started.
    #[error("{what}: cannot start: {source}")]
    Spawn {
        /// Which runner.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The script (or the channel) ended with a non-zero status.
    #[error("{what}: exit status {code:?}: {output}")]
    Failed {
        /// Which runner.
        what: String,
        /// Exit status (`None` when killed by a signal).
        code: Option<i32>,
        /// What the script printed (stdout then stderr), trimmed.
        output: String,
    },
    /// The runner options are incomplete or contradictory.
    #[error("{0}")]
    Config(String),
}

/// Runs one shell script on the storage host and returns its stdout.
pub trait CommandRunner: Send {
    /// Run `script` with `sh`; its stdout on success.
    fn run(&mut self, script: &str) -> Result<String, RunnerError>;
    /// Short description for messages ("lio rig channel /tmp/x", "ssh root@h").
    fn describe(&self) -> String;
}

/// Quote `s` for a POSIX shell: single quotes, `'` as `'\''`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn output_text(out: &std::process::Output) -> String {
    let mut t = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str(&err);
    }
    t.trim().to_string()
}

/// Run a prepared command, feeding `stdin` if given.
fn run_command(what: &str, mut cmd: Command, stdin: Option<&str>) -> Result<String, RunnerError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().map_err(|source| RunnerError::Spawn {
        what: what.to_string(),
        source,
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A script that exits early closes its stdin: ignore EPIPE here,
        // the exit status tells what happened.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| RunnerError::Spawn {
            what: what.to_string(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(RunnerError::Failed {
            what: what.to_string(),
            code: out.status.code(),
            output: output_text(&out),
        })
    }
}

/// The LIO rig's control channel: `test-rig/lio/ctl.sh SCRIPT`, which runs
/// SCRIPT with busybox sh inside the QEMU guest over its second serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RigChannel {
    /// Path of ctl.sh.
    pub ctl: PathBuf,
    /// The rig's state dir (holds the socket), passed as SANMOVER_LIO_STATE.
    pub state_dir: PathBuf,
}

impl RigChannel {
    /// From the rig's `rig.env` (SANMOVER_LIO_CTL, SANMOVER_LIO_STATE_DIR).
    pub fn from_env_file(path: &Path) -> Result<RigChannel, RunnerError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RunnerError::Config(format!(
                "LIO rig env {}: {e} (is the rig up? test-rig/lio/up.sh)",
                path.display()
            ))
        })?;
        let vars: HashMap<&str, &str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |k: &str| {
            vars.get(k).map(|v| PathBuf::from(*v)).ok_or_else(|| {
                RunnerError::Config(format!("LIO rig env {} has no {k}", path.display()))
            })
        };
        Ok(RigChannel {
            ctl: get("SANMOVER_LIO_CTL")?,
            state_dir: get("SANMOVER_LIO_STATE_DIR")?,
        })
    }

    /// The command that runs `script` (for tests and messages).
    pub fn command(&self, script: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(&self.ctl)
            .arg(script)
            .env("SANMOVER_LIO_STATE", &self.state_dir);
        c
    }
}

impl CommandRunner for RigChannel {
    fn run(&mut self, script: &str) -> Result<String, RunnerError> {
        run_command(&self.describe(), self.command(script), None)
    }
    fn describe(&self) -> String {
        format!("LIO rig channel ({})", self.state_dir.display())
    }
}

/// A storage host reached with OpenSSH: `ssh [opts] [USER@]HOST sh -s`,
/// the script on ssh's stdin (so nothing in it needs a second level of
/// quoting). Key-based, non-interactive (`BatchMode=yes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    /// Host name or address.
    pub host: String,
    /// Remote user (ssh's default when `None`).
    pub user: Option<String>,
    /// Remote port.
    pub port: Option<u16>,
    /// Private key file (`-i`).
    pub identity: Option<PathBuf>,
    /// Run the script through `sudo -n` (configfs needs root).
    pub sudo: bool,
    /// The ssh program (default `ssh`).
    pub program: PathBuf,
    /// Connect timeout in seconds.
    pub connect_timeout: u32,
}

impl Ssh {
    /// A runner for `host` with defaults.
    pub fn new(host: &str) -> Ssh {
        Ssh {
            host: host.to_string(),
            user: None,
            port: None,
            identity: None,
            sudo: false,
            program: PathBuf::from("ssh"),
            connect_timeout: 15,
        }
    }

    /// Program and arguments of the ssh command (the script goes on stdin).
    pub fn argv(&self) -> (PathBuf, Vec<String>) {
        let mut a = vec![
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-o".to_string(),
            format!("ConnectTimeout={}", self.connect_timeout),
            // A host that stops answering ends the call within a minute.
            "-o".to_string(),
            "ServerAliveInterval=15".to_string(),
            "-o".to_string(),
            "ServerAliveCountMax=4".to_string(),
        ];
        if let Some(p) = self.port {
            a.push("-p".into());
            a.push(p.to_string());
        }
        if let Some(i) = &self.identity {
            a.push("-i".into());
            a.push(i.display().to_string());
        }
        if let Some(u) = &self.user {
            a.push("-l".into());
            a.push(u.clone());
        }
        // `--` ends ssh's options: a host name cannot be taken as one.
        a.push("--".into());
        a.push(self.host.clone());
        // ssh hands the remote part to the login shell as one string.
        a.push(if self.sudo { "sudo -n sh -s" } else { "sh -s" }.into());
        (self.program.clone(), a)
    }
}

impl CommandRunner for Ssh {
    fn run(&mut self, script: &str) -> Result<String, RunnerError> {
        let (prog, args) = self.argv();
        let mut c = Command::new(prog);
        c.args(args);
        run_command(&self.describe(), c, Some(script))
    }
    fn describe(&self) -> String {
        match &self.user {
            Some(u) => format!("ssh {u}@{}", self.host),
            None => format!("ssh {}", self.host),
        }
    }
}

/// Build the runner a provider's options ask for:
/// - `runner=rig` (default): `rig-env=PATH` of the LIO rig's rig.env, else
///   the SANMOVER_LIO_ENV environment variable;
/// - `runner=ssh`: `host=H` (required), `user=U`, `port=N`,
///   `identity=KEYFILE`, `sudo=yes|no`, `ssh=PROGRAM`.
pub fn runner_from_options(
    options: &BTreeMap<String, String>,
) -> Result<Box<dyn CommandRunner>, RunnerError> {
    let opt = |k: &str| options.get(k).map(String::as_str);
    match opt("runner").unwrap_or("rig") {
        "rig" => {
            let path = match opt("rig-env") {
                Some(p) => PathBuf::from(p),
                None => std::env::var_os("SANMOVER_LIO_ENV")
                    .map(PathBuf::from)
                    .ok_or_else(|| {
                        RunnerError::Config(
                            "runner=rig needs rig-env=PATH (the LIO rig's rig.env) or SANMOVER_LIO_ENV"
                                .into(),
                        )
                    })?,
            };
            Ok(Box::new(RigChannel::from_env_file(&path)?))
        }
        "ssh" => {
            let host = opt("host")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| RunnerError::Config("runner=ssh needs host=HOST".into()))?;
            let mut s = Ssh::new(host);
            s.user = opt("user").map(str::to_string);
            if let Some(p) = opt("port") {
                s.port = Some(
                    p.parse()
                        .map_err(|_| RunnerError::Config(format!("port={p} is not a TCP port")))?,
                );
            }
            s.identity = opt("identity").map(PathBuf::from);
            s.sudo = match opt("sudo").unwrap_or("no") {
                "yes" | "1" | "true" => true,
                "no" | "0" | "false" => false,
                other => return Err(RunnerError::Config(format!("sudo={other}: yes or no"))),
            };
            if let Some(p) = opt("ssh") {
                s.program = PathBuf::from(p);
            }
            Ok(Box::new(s))
        }
        other => Err(RunnerError::Config(format!("runner={other}: rig or ssh"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[(&str, &str)]) -> BTreeMap<String, String> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn quote() {
        assert_eq!(sh_quote("abc"), "'abc'");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn quote_survives_sh() {
        for s in ["plain", "a'b", "$(rm -rf /)", "`x`", "a\nb", "\\'\"", ""] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", sh_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

    #[test]
    fn ssh_argv_minimal() {
        let (p, a) = Ssh::new("storage1").argv();
        assert_eq!(p, PathBuf::from("ssh"));
        assert_eq!(
            a,
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
                "--",
                "storage1",
                "sh -s"
            ]
        );
    }

    #[test]
    fn ssh_argv_from_options() {
        let o = opts(&[
            ("runner", "ssh"),
            ("host", "10.1.2.3"),
            ("user", "admin"),
            ("port", "2222"),
            ("identity", "/k/id_ed25519"),
            ("sudo", "yes"),
        ]);
        let r = runner_from_options(&o).unwrap();
        assert_eq!(r.describe(), "ssh admin@10.1.2.3");
        let mut s = Ssh::new("10.1.2.3");
        s.user = Some("admin".into());
        s.port = Some(2222);
        s.identity = Some("/k/id_ed25519".into());
        s.sudo = true;
        let (_, a) = s.argv();
        assert_eq!(
            a,
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
                "-p",
                "2222",
                "-i",
                "/k/id_ed25519",
                "-l",
                "admin",
                "--",
                "10.1.2.3",
                "sudo -n sh -s"
            ]
        );
    }

    /// The ssh runner's plumbing (script on stdin, output, exit status)
    /// through a stand-in "ssh" that runs the remote command locally.
    #[test]
    fn ssh_runs_script_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-ssh");
        // Skip the options up to `--`, then HOST; run the remote command.
        std::fs::write(
            &fake,
            "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done\nshift 2\nexec sh -c \"$1\"\n",
        )
        .unwrap();
        let o = opts(&[
            ("runner", "ssh"),
            ("host", "h"),
            ("ssh", fake.to_str().unwrap()),
        ]);
        let mut c = Command::new("chmod");
        c.arg("+x").arg(&fake);
        assert!(c.status().unwrap().success());
        let mut r = runner_from_options(&o).unwrap();
        assert_eq!(
            r.run("echo one; echo 'two three'").unwrap(),
            "one\ntwo three\n"
        );
        match r.run("echo partial; echo why >&2; exit 3") {
            Err(RunnerError::Failed { code, output, .. }) => {
                assert_eq!(code, Some(3));
                assert_eq!(output, "partial\nwhy");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn rig_channel_from_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("rig.env");
        std::fs::write(
            &env,
            "# comment\nSANMOVER_LIO_CTL=/r/test-rig/lio/ctl.sh\nSANMOVER_LIO_STATE_DIR=/tmp/st\n",
        )
        .unwrap();
        let o = opts(&[("rig-env", env.to_str().unwrap())]);
        let r = runner_from_options(&o).unwrap();
        assert_eq!(r.describe(), "LIO rig channel (/tmp/st)");
        let rc = RigChannel::from_env_file(&env).unwrap();
        assert_eq!(rc.ctl, PathBuf::from("/r/test-rig/lio/ctl.sh"));
        let c = rc.command("ls /");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["/r/test-rig/lio/ctl.sh", "ls /"]);
    }

    #[test]
    fn runner_option_errors() {
        for o in [
            opts(&[("runner", "telnet")]),
            opts(&[("runner", "ssh")]),
            opts(&[("runner", "ssh"), ("host", "h"), ("port", "x")]),
            opts(&[("runner", "ssh"), ("host", "h"), ("sudo", "maybe")]),
            opts(&[("runner", "rig"), ("rig-env", "/nonexistent/rig.env")]),
        ] {
            assert!(
                matches!(runner_from_options(&o), Err(RunnerError::Config(_))),
                "{o:?}"
            );
        }
    }
}
