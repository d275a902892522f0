//! Where every command gets its sessions, its catalog and its drive lock:
//! one set of options (`--initiator`, `--cmd-timeout`, `--catalog`) for
//! all of them, including the sessions a snapshot provider opens itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::args::ConnArgs;
use crate::catalog::Catalog;
use crate::device::{Disk, Scsi, Tape};
use crate::engine::drive_lock::{lock_drive, DriveKey, DriveLock};
use crate::engine::interrupt::{install_handlers, StopFlag};
use crate::transport::iscsi::{initiator_from_env, IscsiOptions};
use crate::transport::trace::{TraceSink, Traced, TracingConnector};
use crate::transport::url::DeviceUrl;
use crate::transport::{open_device, Connector, Transport};

/// A session of any kind.
pub type Dyn = Box<dyn Transport + Send>;

/// Opens sessions, the catalog and drive locks with the command line's
/// options.
#[derive(Clone)]
pub struct Sessions {
    iscsi: IscsiOptions,
    catalog: PathBuf,
    /// `--trace`: every session is recorded there.
    trace: Option<Arc<TraceSink>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("iscsi", &self.iscsi)
            .field("catalog", &self.catalog)
            .field("traced", &self.trace.is_some())
            .finish()
    }
}

impl Sessions {
    pub fn new(conn: &ConnArgs) -> Self {
        let iscsi = IscsiOptions {
            initiator: match &conn.initiator {
                Some(i) => i.clone(),
                None => initiator_from_env(),
            },
            timeout: Duration::from_secs(conn.cmd_timeout),
            ..IscsiOptions::default()
        };
        Sessions {
            iscsi,
            catalog: conn.catalog.clone().unwrap_or_else(Catalog::default_path),
            trace: None,
        }
    }

    /// Record every session's commands in `sink` from now on.
    pub fn with_trace(mut self, sink: Option<Arc<TraceSink>>) -> Self {
        self.trace = sink;
        self
    }

    /// `t` recorded under `--trace` (for sessions opened outside
    /// [`Sessions::transport`], like discovery's).
    pub fn traced(&self, t: Dyn) -> Dyn {
        match &self.trace {
            Some(sink) => Box::new(Traced::new(t, sink.clone(), &self.iscsi.initiator)),
            None => t,
        }
    }

    /// The `--trace` sink, for sessions opened elsewhere (the router's
    /// backends).
    pub fn trace_sink(&self) -> Option<Arc<TraceSink>> {
        self.trace.clone()
    }

    /// The connector every session of this run is opened with: the
    /// session options, traced under `--trace`.
    pub fn session_connector(&self) -> Box<dyn Connector + Send + Sync> {
        match &self.trace {
            Some(sink) => Box::new(TracingConnector {
                inner: self.iscsi.clone(),
                sink: sink.clone(),
            }),
            None => Box::new(self.iscsi.clone()),
        }
    }

    /// The session options every session gets.
    pub fn iscsi(&self) -> &IscsiOptions {
        &self.iscsi
    }

    /// Our initiator name.
    pub fn initiator(&self) -> &str {
        &self.iscsi.initiator
    }

    /// The same options as a [`Connector`] that others (a snapshot
    /// provider) open sessions with.
    pub fn connector(&self) -> Arc<dyn Connector + Send + Sync> {
        Arc::from(self.session_connector())
    }

    /// A session to `dev` (an `iscsi://` URL or a device path).
    pub fn transport(&self, dev: &str) -> Result<Dyn> {
        self.transport_as(dev, None)
    }

    /// A session to `dev` under `initiator` instead of ours, if given.
    pub fn transport_as(&self, dev: &str, initiator: Option<&str>) -> Result<Dyn> {
        let name = initiator.unwrap_or(&self.iscsi.initiator);
        // A malformed address is a command-line error, before any I/O.
        let t: Dyn = match DeviceUrl::parse(dev)? {
            DeviceUrl::Iscsi(url) => {
                let u = url.without_credentials();
                Connector::open(&self.iscsi, dev, name).with_context(|| format!("opening {u}"))?
            }
            DeviceUrl::Path(_) => open_device(dev, &self.iscsi)?,
        };
        Ok(match &self.trace {
            Some(sink) => Box::new(Traced::new(t, sink.clone(), name)),
            None => t,
        })
    }

    /// A session to any LU, for commands that send their own CDBs.
    pub fn scsi(&self, dev: &str) -> Result<Scsi<Dyn>> {
        Ok(Scsi::new(self.transport(dev)?))
    }

    /// A session to the disk `dev`; errors name its `role` and the address
    /// without secrets.
    pub fn disk(&self, dev: &str, role: &str) -> Result<Disk<Dyn>> {
        Disk::open(self.transport(dev)?).with_context(|| format!("{role} {}", redacted(dev)))
    }

    /// A session to the tape drive `dev` (INQUIRY must say tape).
    pub fn tape(&self, dev: &str) -> Result<Tape<Dyn>> {
        Tape::open(self.transport(dev)?).with_context(|| format!("tape {}", redacted(dev)))
    }

    /// The catalog, after reporting sets a crashed run left `running`.
    pub fn catalog(&self) -> Result<Catalog> {
        let path = &self.catalog;
        let c =
            Catalog::open(path).with_context(|| format!("opening catalog {}", path.display()))?;
        for s in c.reap_stale()? {
            eprintln!(
                "sanmover: set {} was left running by a process that is gone; marked failed",
                s.info.id
            );
        }
        Ok(c)
    }

    /// Where the catalog is.
    pub fn catalog_path(&self) -> &Path {
        &self.catalog
    }

    /// The catalog if it exists, for commands that only look (a status
    /// never creates a catalog).
    pub fn existing_catalog(&self) -> Option<Catalog> {
        self.catalog
            .exists()
            .then(|| Catalog::open(&self.catalog).ok())
            .flatten()
    }

    /// Take the drive `tape` (at `dev`) for `command` until the returned
    /// lock is dropped: one sanmover process per drive on this host (the
    /// lock file sits beside the catalog). With `wait`, says that it waits
    /// and then waits.
    pub fn lock_tape<T: Transport>(
        &self,
        tape: &mut Tape<T>,
        dev: &str,
        command: &str,
        wait: bool,
    ) -> Result<DriveLock> {
        let dir = self
            .catalog
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let key = drive_key(tape, dev);
        let lock = lock_drive(dir, &key, &format!("sanmover {command}"), wait, |holder| {
            eprintln!(
                "sanmover: tape drive {} is in use by another sanmover process ({holder}); waiting for it (--wait)",
                key.text
            )
        })?;
        Ok(lock)
    }

    /// [`Sessions::lock_tape`] through a session of its own, for commands
    /// that hand the drive's address on instead of keeping it open.
    pub fn hold_drive(&self, dev: &str, command: &str, wait: bool) -> Result<DriveLock> {
        let mut tape = self.tape(dev)?;
        self.lock_tape(&mut tape, dev, command, wait)
    }

    /// A reservation key derived from the initiator name, so the same
    /// host always uses the same one (SPC-4 5.13.3 leaves the choice to
    /// the application).
    pub fn reservation_key(&self) -> u64 {
        let h = self
            .iscsi
            .initiator
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
        h | 1
    }
}

/// The drive's identity for its lock: the VPD 0x83 designator a copy
/// manager would use (LU, binary NAA first), else the first one, else
/// (no VPD 0x83 at all) its address.
fn drive_key<T: Transport>(tape: &mut Tape<T>, dev: &str) -> DriveKey {
    match tape.scsi.device_identification() {
        Ok(di) => {
            if let Some(d) = di.best_lu_designator().or(di.designators.first()) {
                let mut bytes = vec![d.designator_type.0, d.code_set.0];
                bytes.extend_from_slice(&d.value);
                return DriveKey {
                    text: d.to_string(),
                    bytes,
                };
            }
        }
        Err(e) => log::warn!(
            "{}: no VPD 0x83 identity ({e}); the drive is locked by its address",
            redacted(dev)
        ),
    }
    let addr = redacted(dev);
    DriveKey {
        text: addr.clone(),
        bytes: addr.into_bytes(),
    }
}

/// From here on SIGINT and SIGTERM stop a backup between records.
pub fn stop_on_signals() -> Result<StopFlag> {
    install_handlers().context("installing the SIGINT/SIGTERM handlers")
}

/// A device address without secrets, for the set header and catalog.
pub fn redacted(dev: &str) -> String {
    match DeviceUrl::parse(dev) {
        Ok(DeviceUrl::Iscsi(u)) => u.without_credentials().to_string(),
        _ => dev.to_string(),
    }
}
