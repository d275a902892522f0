//! `sanmover vtl` as the integration tests run it: on 127.0.0.1, a free
//! port the kernel picks, its first stdout line read for the address, and
//! stopped by pid (SIGKILL through `Child::kill`) when dropped, also when
//! a test fails.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const VTL_IQN: &str = "iqn.2026-12.org.sanmover:vtl";

pub struct Vtl {
    child: Option<Child>,
    pub addr: String,
    pub media: PathBuf,
    pub log: PathBuf,
}

impl Vtl {
    /// Start a library over `media` (created on first use).
    pub fn start(media: &Path, drives: u16, slots: u16, capacity: &str) -> Vtl {
        let log = media.with_extension("log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sanmover"))
            .args(["--json", "vtl", "--listen", "127.0.0.1:0", "--media"])
            .arg(media)
            .args([
                "--drives",
                &drives.to_string(),
                "--slots",
                &slots.to_string(),
            ])
            .args(["--capacity", capacity])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("vtl log"))
            .spawn()
            .expect("spawn sanmover vtl");
        let mut line = String::new();
        let mut r = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let _ = r.read_line(&mut line);
        std::thread::spawn(move || {
            let mut sink = String::new();
            while r.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let ready: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "vtl did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Vtl {
            child: Some(child),
            addr: ready["listen"].as_str().expect("listen").to_string(),
            media: media.to_path_buf(),
            log,
        }
    }

    /// The URL of LUN `lun` (0: the changer, n: drive n-1).
    pub fn url(&self, lun: u32) -> String {
        format!("iscsi://{}/{VTL_IQN}/{lun}", self.addr)
    }

    /// SIGKILL by pid, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Vtl {
    fn drop(&mut self) {
        self.kill();
    }
}
