//! The backend LUs the router copies between, indexed by designator.
//!
//! Each backend keeps one open session (its own transport) for copies. A
//! session that died is dropped; the next copy that needs the LU
//! reconnects it from its URL (or [`Backends::rescan`] does).

use crate::device::disk::read_capacity;
use crate::device::{Disk, Scsi, Tape};
use crate::scsi::spc::{
    Association, Designator, OneCommand, ReportSupportedOpcodes, StandardInquiry,
};
use crate::scsi::{CdbCodec, DeviceType, Opcode, Wire};
use crate::transport::iscsi::{IscsiOptions, IscsiTransport};
use crate::transport::trace::{TraceSink, Traced};
use crate::transport::url::{redact, IscsiUrl, Secret};
use crate::transport::Transport;
use std::sync::Arc;

use super::RouterError;

/// The transport type every backend session has.
pub(crate) type BoxT = Box<dyn Transport + Send>;

/// An open backend session, with the device layer's verbs.
pub(crate) enum Unit {
    Disk(Disk<BoxT>),
    Tape(Tape<BoxT>),
    /// Any other device type: kept logged in, never copied to or from.
    Other(#[allow(dead_code)] Scsi<BoxT>),
}

/// What the router knows about one backend LU (from INQUIRY, VPD 83h,
/// READ CAPACITY, MODE SENSE and REPORT SUPPORTED OPERATION CODES).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendInfo {
    /// The transport's description (URL without secrets, or device name).
    pub name: String,
    pub device_type: DeviceType,
    /// Every LU-associated designator of VPD page 83h.
    pub designators: Vec<Designator>,
    /// Disks: logical block length and count.
    pub block_size: Option<u32>,
    pub blocks: Option<u64>,
    /// Tapes: the MODE SENSE block length (0 = variable-block mode).
    pub tape_block_len: Option<u32>,
    /// Tapes: whether LOCATE(10) is supported; `None` when the tape does
    /// not answer REPORT SUPPORTED OPERATION CODES (then the router tries).
    pub locate: Option<bool>,
}

pub(crate) struct Backend {
    pub info: BackendInfo,
    /// Where to reconnect; `None` for units added as open transports.
    url: Option<IscsiUrl>,
    initiator: String,
    /// `None` while the session is down (or lent to a reader thread).
    pub unit: Option<Unit>,
}

impl Backend {
    /// The backend target name and LUN, for LUs discovered from a URL.
    pub(crate) fn target_lun(&self) -> Option<(&str, u16)> {
        self.url.as_ref().map(|u| (u.target.as_str(), u.lun))
    }
}

/// Backend LUs by designator; the router resolves E4h CSCDs through it.
#[derive(Default)]
pub struct Backends {
    pub(crate) units: Vec<Backend>,
    /// What `discover` was given, for [`Backends::refresh`].
    sources: Vec<(String, String)>,
    /// The CHAP secret for backend URLs that name a user but no password
    /// (from a file; `SANMOVER_CHAP_PASSWORD` is the other fallback).
    secret: Option<Secret>,
    /// `--trace`: every backend session is recorded there.
    trace: Option<Arc<TraceSink>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.units.iter().map(|b| &b.info.name))
            .finish()
    }
}

impl Backends {
    pub fn new() -> Backends {
        Backends::default()
    }

    /// Use `secret` for backend URLs that name a CHAP user without a
    /// password, so no secret needs to be on a command line.
    pub fn set_secret(&mut self, secret: Secret) {
        self.secret = Some(secret);
    }

    /// Record every command sent to the backends in `sink` (`--trace`).
    pub fn set_trace(&mut self, sink: Option<Arc<TraceSink>>) {
        self.trace = sink;
    }

    /// A session to one backend LU, traced under `--trace`.
    fn open(&self, url: &IscsiUrl, initiator: &str) -> Result<BoxT, RouterError> {
        let t = connect(url, initiator, self.secret.as_ref())?;
        Ok(match &self.trace {
            Some(sink) => Box::new(Traced::new(t, sink.clone(), initiator)),
            None => Box::new(t),
        })
    }

    /// Discover every LUN behind each URL and index it by designator. A URL
    /// naming a LUN (`iscsi://host[:port]/target/lun`) adds that LU; a URL
    /// naming a whole target (`iscsi://host[:port]/target`) adds every LUN
    /// REPORT LUNS lists. `initiator` is our iSCSI name. Used at start-up
    /// and on demand; a URL already known is probed again.
    pub fn discover(&mut self, urls: &[String], initiator: &str) -> Result<(), RouterError> {
        for s in urls {
            if !self.sources.iter().any(|(u, _)| u == s) {
                self.sources.push((s.clone(), initiator.to_string()));
            }
            self.discover_one(s, initiator, false)?;
        }
        Ok(())
    }

    /// Look again behind every URL `discover` was given and add the LUs
    /// not known yet (a LUN added to a target since); known ones are left
    /// alone. Returns how many were added. The copy manager calls this when
    /// a CSCD names a designator it does not know.
    pub fn refresh(&mut self) -> Result<usize, RouterError> {
        let before = self.units.len();
        for (s, initiator) in self.sources.clone() {
            self.discover_one(&s, &initiator, true)?;
        }
        Ok(self.units.len() - before)
    }

    fn discover_one(
        &mut self,
        s: &str,
        initiator: &str,
        new_only: bool,
    ) -> Result<(), RouterError> {
        let known =
            |me: &Self, url: &IscsiUrl| me.units.iter().any(|u| u.url.as_ref() == Some(url));
        {
            match IscsiUrl::parse(s) {
                Ok(url) if new_only && known(self, &url) => {}
                Ok(url) => self.add_url(url, initiator, false)?,
                Err(first) => {
                    let whole = format!("{}/0", s.trim_end_matches('/'));
                    let Ok(lun0) = IscsiUrl::parse(&whole) else {
                        return Err(first.into());
                    };
                    let t = self.open(&lun0, initiator)?;
                    let mut scsi = Scsi::new(t);
                    let luns = scsi.report_luns()?;
                    drop(scsi);
                    // A whole target: every disk and tape LUN it has; other
                    // LUNs (tgt's controller LUN 0) and LUNs that cannot be
                    // probed are skipped with a warning.
                    for lun in luns.luns {
                        let Some(n) = lun.index() else {
                            log::warn!(
                                "{}: LUN {lun} has no single-level number; skipped",
                                redact(s)
                            );
                            continue;
                        };
                        let url = IscsiUrl {
                            lun: n,
                            ..lun0.clone()
                        };
                        if new_only && known(self, &url) {
                            continue;
                        }
                        if let Err(e) = self.add_url(url, initiator, true) {
                            log::warn!("{}: LUN {n} skipped: {e}", redact(s));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Connect and probe one LU; with `copyable_only`, an LU that is
    /// neither disk nor tape is not kept.
    fn add_url(
        &mut self,
        url: IscsiUrl,
        initiator: &str,
        copyable_only: bool,
    ) -> Result<(), RouterError> {
        let t = self.open(&url, initiator)?;
        let (info, unit) = probe(t)?;
        if copyable_only && matches!(unit, Unit::Other(_)) {
            log::info!(
                "{}: a {} LU, not a copy source or destination",
                info.name,
                info.device_type
            );
            return Ok(());
        }
        log::info!(
            "backend {}: {} with {} designator(s)",
            info.name,
            info.device_type,
            info.designators.len()
        );
        let b = Backend {
            info,
            url: Some(url.clone()),
            initiator: initiator.to_string(),
            unit: Some(unit),
        };
        match self.units.iter().position(|u| u.url.as_ref() == Some(&url)) {
            Some(i) => self.units[i] = b,
            None => self.units.push(b),
        }
        Ok(())
    }

    /// Register an already-open unit (tests: memory transports). It is
    /// probed like a discovered one but cannot be reconnected.
    pub fn add(&mut self, t: Box<dyn Transport + Send>) -> Result<(), RouterError> {
        let (info, unit) = probe(t)?;
        self.units.push(Backend {
            info,
            url: None,
            initiator: String::new(),
            unit: Some(unit),
        });
        Ok(())
    }

    /// Reconnect every backend whose session is down and probe it again.
    /// Stops at the first that cannot be reached.
    pub fn rescan(&mut self) -> Result<(), RouterError> {
        for i in 0..self.units.len() {
            if self.units[i].unit.is_none() {
                self.reconnect(i)?;
            }
        }
        Ok(())
    }

    /// What is known about each backend, in the order they were added.
    pub fn list(&self) -> Vec<BackendInfo> {
        self.units.iter().map(|b| b.info.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The backend whose VPD 83h listed `d` (designator type and value;
    /// the code set is not compared, issuers copy it inconsistently).
    pub(crate) fn find(&self, d: &Designator) -> Option<usize> {
        self.units.iter().position(|b| {
            b.info
                .designators
                .iter()
                .any(|x| x.designator_type == d.designator_type && x.value == d.value)
        })
    }

    /// Make sure backend `i` has a session, reconnecting from its URL.
    pub(crate) fn ensure_open(&mut self, i: usize) -> Result<(), RouterError> {
        if self.units[i].unit.is_some() {
            return Ok(());
        }
        self.reconnect(i)
    }

    fn reconnect(&mut self, i: usize) -> Result<(), RouterError> {
        let b = &self.units[i];
        let Some(url) = b.url.clone() else {
            return Err(RouterError::Probe {
                unit: b.info.name.clone(),
                reason: "session lost and no URL to reconnect".into(),
            });
        };
        log::info!("backend {}: reconnecting", b.info.name);
        let initiator = b.initiator.clone();
        let t = self.open(&url, &initiator)?;
        let (info, unit) = probe(t)?;
        let b = &mut self.units[i];
        b.info = info;
        b.unit = Some(unit);
        Ok(())
    }
}

fn connect(
    url: &IscsiUrl,
    initiator: &str,
    secret: Option<&Secret>,
) -> Result<IscsiTransport, RouterError> {
    let opts = IscsiOptions {
        initiator: initiator.to_string(),
        ..IscsiOptions::default()
    };
    let url = url
        .clone()
        .with_fallback_password(secret.map(|s| s.expose().to_string()));
    IscsiTransport::connect(&url, &opts).map_err(|source| RouterError::Connect {
        url: url.without_credentials().to_string(),
        source,
    })
}

/// INQUIRY, VPD 83h, then READ CAPACITY (disks) or MODE SENSE and LOCATE
/// support (tapes).
fn probe(t: BoxT) -> Result<(BackendInfo, Unit), RouterError> {
    let mut scsi = Scsi::new(t);
    let inquiry = scsi.inquiry()?;
    let name = scsi.name().to_string();
    let designators: Vec<Designator> = scsi
        .device_identification()?
        .designators
        .into_iter()
        .filter(|d| d.association == Association::LU)
        .collect();
    if designators.is_empty() {
        return Err(RouterError::Probe {
            unit: name,
            reason: "VPD page 83h lists no LU designator; a CSCD cannot name it".into(),
        });
    }
    let mut info = BackendInfo {
        name,
        device_type: inquiry.device_type,
        designators,
        block_size: None,
        blocks: None,
        tape_block_len: None,
        locate: None,
    };
    let unit = match inquiry.device_type {
        DeviceType::DISK => {
            let cap = read_capacity(&mut scsi)?;
            info.block_size = Some(cap.block_size.0);
            info.blocks = Some(cap.blocks.0);
            Unit::Disk(Disk { scsi, inquiry })
        }
        DeviceType::TAPE => {
            info.locate = locate_support(&mut scsi);
            let mut tape = tape_from(scsi, inquiry)?;
            info.tape_block_len = tape
                .mode()
                .ok()
                .and_then(|m| m.block_descriptors.first().map(|b| b.block_length));
            Unit::Tape(tape)
        }
        _ => Unit::Other(scsi),
    };
    Ok((info, unit))
}

fn tape_from(scsi: Scsi<BoxT>, _inq: StandardInquiry) -> Result<Tape<BoxT>, RouterError> {
    // Tape::open asks INQUIRY again; its tracked position starts unknown.
    Ok(Tape::open(scsi.into_inner())?)
}

/// REPORT SUPPORTED OPERATION CODES for LOCATE(10): `None` when the tape
/// does not answer RSOC at all.
fn locate_support(scsi: &mut Scsi<BoxT>) -> Option<bool> {
    let cdb = ReportSupportedOpcodes::one(Opcode::LOCATE_10, None, 64).to_cdb();
    let buf = scsi.data_in(cdb, 64).ok()?;
    OneCommand::parse(&buf).ok().map(|o| o.is_supported())
}
