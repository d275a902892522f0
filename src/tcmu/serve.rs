//! The handler's loop: pick up the backstores made for our subtype, serve
//! each ring as the kernel posts to it, drop a device that goes away.

use super::uio::{self, Mapped, UioDevice};
use super::Device;
use crate::frontend::SharedLu;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the handler serves and where it looks.
pub struct Handler {
    /// The handler part of `dev_config` we answer to.
    pub subtype: String,
    /// `/sys/class/uio` (a test may point elsewhere).
    pub sysfs: PathBuf,
    /// Units by the config part of `dev_config` (`drive0`, `changer`).
    pub units: HashMap<String, SharedLu>,
}

/// A device the handler is serving, by its `uioN`.
struct Served {
    dev: UioDevice,
    ring: Device<Mapped>,
}

impl Handler {
    /// Serve until `stop()` says so. Every second the handler looks for new
    /// devices; a backstore whose config names no unit is reported and
    /// left alone (LIO then fails its commands at `cmd_time_out`).
    pub fn run(&self, stop: impl Fn() -> bool) -> io::Result<()> {
        let mut served: Vec<Served> = Vec::new();
        let mut refused: Vec<UioDevice> = Vec::new();
        let mut last_scan = Instant::now() - Duration::from_secs(2);
        while !stop() {
            if last_scan.elapsed() >= Duration::from_secs(1) {
                self.adopt(&mut served, &mut refused);
                last_scan = Instant::now();
            }
            if served.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let mut gone = wait_any(&mut served)?.into_iter();
            served.retain_mut(|s| !gone.next().unwrap_or(false) && serve_one(s));
        }
        Ok(())
    }

    fn adopt(&self, served: &mut Vec<Served>, refused: &mut Vec<UioDevice>) {
        let now = uio::scan(&self.sysfs, &self.subtype);
        // A backstore removed (and maybe another made under the same uioN)
        // since the last scan: let go of its old mapping.
        served.retain(|s| now.contains(&s.dev));
        refused.retain(|r| now.contains(r));
        for dev in now {
            if served.iter().any(|s| s.dev == dev) || refused.contains(&dev) {
                continue;
            }
            let Some(lu) = self.units.get(&dev.config) else {
                log::error!(
                    "tcmu: {} ({}) asks for unit {:?}, which this handler does not have ({})",
                    dev.uio,
                    dev.name,
                    dev.config,
                    self.names()
                );
                refused.push(dev.clone());
                continue;
            };
            match open(&dev, lu.clone()) {
                Ok(ring) => {
                    log::info!("tcmu: serving {} ({}) as {}", dev.uio, dev.name, dev.config);
                    served.push(Served { dev, ring });
                }
                Err(e) => {
                    log::error!("tcmu: cannot open {}: {e}", dev.uio);
                    refused.push(dev);
                }
            }
        }
    }

    fn names(&self) -> String {
        let mut n: Vec<&str> = self.units.keys().map(String::as_str).collect();
        n.sort();
        n.join(", ")
    }
}

fn open(dev: &UioDevice, lu: SharedLu) -> io::Result<Device<Mapped>> {
    let mem = Mapped::open(&uio::dev_path(dev), dev.map_size)?;
    Device::open(&dev.name, mem, lu).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Wait (up to 200 ms) until a ring has news, consuming the notices;
/// which devices went away (POLLERR, POLLHUP: the backstore was removed).
fn wait_any(served: &mut [Served]) -> io::Result<Vec<bool>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let revents: Vec<PollFlags> = {
        let mut fds: Vec<PollFd> = served
            .iter()
            .map(|s| PollFd::new(s.ring.mem().fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        fds.iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect()
    };
    let dead = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
    let mut gone = Vec::with_capacity(served.len());
    for (s, r) in served.iter_mut().zip(revents) {
        let lost = r.intersects(dead)
            || (r.contains(PollFlags::POLLIN) && s.ring.mem_mut().consume_notice().is_err());
        if lost {
            log::info!("tcmu: {} ({}) went away", s.dev.uio, s.dev.name);
        }
        gone.push(lost);
    }
    Ok(gone)
}

/// One pass over a ring; false drops the device (it went away or its
/// ring is corrupt).
fn serve_one(s: &mut Served) -> bool {
    match s.ring.pass() {
        Ok(p) if p.commands + p.skipped + p.unknown > 0 => {
            if let Err(e) = s.ring.mem_mut().notify() {
                log::error!("tcmu: {} is gone: {e}", s.dev.uio);
                return false;
            }
            true
        }
        Ok(_) => true,
        Err(e) => {
            log::error!("tcmu: {} no longer served: {e}", s.dev.uio);
            false
        }
    }
}
