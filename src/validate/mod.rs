//! `sanmover validate`: named conformance checks of disks, tapes, copy
//! managers and iSCSI sessions, each citing the section of the standard it
//! tests, with the command sent, the answer expected, the answer observed
//! and a verdict.
//!
//! Checks build no bytes: they fill in the codec's command structs
//! (`crate::scsi`) and send them through the device layer (`crate::device`).
//! A verdict is pass, fail, not supported (the device lacks what the check
//! needs, with the reason) or skipped (the check was not run, with the
//! reason: writes need `--dataloss`). Only pass counts as passed.

use serde::{Deserialize, Serialize};

use crate::device::{DeviceError, Scsi};
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::spc::{Designator, StandardInquiry, VpdPage};
use crate::scsi::{Cdb, DeviceType, Status};
use crate::transport::{Connector, Request, Residual, Transport, TransportError};

mod changer;
mod copy;
mod copy_stream;
mod disk;
mod iscsi;
mod iscsi_raw;
pub mod negotiation;
pub mod replay;
pub mod report;
mod run;
mod tape;

pub use run::{validate, Options, ValidateError};

/// A session of any kind.
pub type Dyn = Box<dyn Transport + Send>;

/// The report format version (`version` in the JSON document).
pub const REPORT_VERSION: u32 = 1;

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// The device lacks what the check needs (never counted as a pass).
    NotSupported,
    /// The check was not run (writes without `--dataloss`).
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotSupported => "not-supported",
            Verdict::Skipped => "skipped",
        }
    }
}

/// What a check is: its name, the standard's section, what it expects.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Stable name, `suite.area.case`.
    pub id: &'static str,
    /// The section of the standard, e.g. `SBC-4 5.13 READ (16)`.
    pub cites: &'static str,
    /// The expected status and sense (or outcome) in words.
    pub expected: &'static str,
    /// The check writes to the medium: run only with `--dataloss`.
    pub writes: bool,
}

/// What one run of a check found.
#[derive(Clone, Debug)]
pub struct Finding {
    pub sent: String,
    pub observed: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
}

impl Finding {
    pub fn judge(ok: bool, sent: impl Into<String>, observed: impl Into<String>) -> Self {
        Finding {
            sent: sent.into(),
            observed: observed.into(),
            verdict: if ok { Verdict::Pass } else { Verdict::Fail },
            reason: None,
        }
    }

    pub fn unsupported(
        sent: impl Into<String>,
        observed: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Finding {
            sent: sent.into(),
            observed: observed.into(),
            verdict: Verdict::NotSupported,
            reason: Some(reason.into()),
        }
    }

    pub fn skipped(reason: impl Into<String>) -> Self {
        Finding {
            sent: String::new(),
            observed: String::new(),
            verdict: Verdict::Skipped,
            reason: Some(reason.into()),
        }
    }

    /// A failure with a reason (why the observation is wrong).
    pub fn fail_because(mut self, reason: impl Into<String>) -> Self {
        if self.verdict == Verdict::Fail {
            self.reason = Some(reason.into());
        }
        self
    }
}

/// One check's result, as reports show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckResult {
    pub id: String,
    pub suite: String,
    pub cites: String,
    pub sent: String,
    pub expected: String,
    pub observed: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

/// Every check run against one device.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceReport {
    /// The address, without secrets.
    pub device: String,
    pub device_type: String,
    pub vendor: String,
    pub product: String,
    pub revision: String,
    pub suites: Vec<String>,
    pub checks: Vec<CheckResult>,
}

impl DeviceReport {
    pub fn count(&self, v: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == v).count()
    }
}

/// A whole `validate` run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    pub version: u32,
    pub dataloss: bool,
    pub devices: Vec<DeviceReport>,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.devices.iter().map(|d| d.count(Verdict::Fail)).sum()
    }
}

/// One logical unit under test, with what the checks need around it.
pub struct Target<'a> {
    /// The address, without secrets.
    pub url: String,
    /// The address as given (credentials kept for new sessions).
    pub(crate) open_url: String,
    pub scsi: Scsi<Dyn>,
    pub inquiry: StandardInquiry,
    /// VPD page 00h's list (empty when the page is missing).
    pub vpd_pages: Vec<VpdPage>,
    /// The LU designators of VPD page 83h (empty when missing).
    pub designators: Vec<Designator>,
    pub dataloss: bool,
    /// Opens more sessions (a second initiator, sibling LUNs).
    pub connector: &'a dyn Connector,
    pub initiator: String,
    /// The other devices of this run.
    pub others: Vec<Peer>,
}

/// Another device of the same run, as the checks may use it.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The address, without secrets.
    pub url: String,
    pub device_type: DeviceType,
    /// Its LU designators (VPD page 83h).
    pub designators: Vec<Designator>,
}

/// The designator a copy manager is best given for an LU: a binary NAA,
/// else the first that names the LU.
pub fn best_designator(ds: &[Designator]) -> Option<&Designator> {
    ds.iter()
        .find(|d| d.designator_type == crate::scsi::spc::DesignatorType::NAA)
        .or(ds.first())
}

impl Target<'_> {
    /// A new session to `url` as `initiator`.
    pub fn open(&self, url: &str, initiator: &str) -> Result<Dyn, TransportError> {
        self.connector.open(url, initiator)
    }

    /// Send one command and keep whatever came back.
    pub fn send(&mut self, req: Request) -> Result<Exchange, DeviceError> {
        exchange(&mut self.scsi, req)
    }
}

/// One command and its answer, decoded.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub cdb: Cdb,
    pub status: Status,
    pub sense: Option<Sense>,
    pub raw_sense: Vec<u8>,
    pub data: Vec<u8>,
    pub residual: Residual,
}

/// Send `req` on `scsi`; a transport failure is an error, any status is an
/// answer.
pub fn exchange<T: Transport>(scsi: &mut Scsi<T>, req: Request) -> Result<Exchange, DeviceError> {
    let resp = scsi.run_any(req)?;
    let data = match resp.dir {
        crate::transport::Direction::In => {
            let n = resp.transferred().min(resp.span.len());
            resp.buf[resp.span.start..resp.span.start + n].to_vec()
        }
        _ => Vec::new(),
    };
    Ok(Exchange {
        cdb: resp.cdb,
        status: resp.status,
        sense: Sense::parse(&resp.sense).ok(),
        raw_sense: resp.sense,
        data,
        residual: resp.residual,
    })
}

impl Exchange {
    pub fn good(&self) -> bool {
        self.status == Status::GOOD
    }

    /// CHECK CONDITION with this sense key and ASC/ASCQ.
    pub fn is(&self, key: SenseKey, asc: Asc) -> bool {
        self.sense
            .as_ref()
            .is_some_and(|s| s.key == key && s.asc == asc)
    }

    /// The device does not implement the command (SPC-4 20/00).
    pub fn invalid_opcode(&self) -> bool {
        self.is(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_OPCODE)
    }

    /// Refused as not implemented: invalid opcode, or an invalid field in
    /// the CDB (an unimplemented service action or page).
    pub fn refused(&self) -> bool {
        self.invalid_opcode() || self.is(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    }

    /// The status, sense and data length in one line.
    pub fn summary(&self) -> String {
        let mut s = self.status.to_string();
        match (&self.sense, self.raw_sense.is_empty()) {
            (Some(sense), _) => s.push_str(&format!(": {sense}")),
            (None, false) => s.push_str(&format!(
                ": undecodable sense {}",
                hex::encode(&self.raw_sense)
            )),
            (None, true) => {}
        }
        if !self.data.is_empty() {
            s.push_str(&format!(", {} bytes in", self.data.len()));
        }
        match self.residual {
            Residual::Underflow(n) => s.push_str(&format!(", residual underflow {n}")),
            Residual::Overflow(n) => s.push_str(&format!(", residual overflow {n}")),
            Residual::None => {}
        }
        s
    }
}

/// A command as reports show it: its name and bytes.
pub fn sent(cdb: &Cdb) -> String {
    format!("{} [{cdb}]", cdb.opcode())
}

/// What runs one check.
pub type CheckFn = fn(&mut Target) -> Result<Finding, DeviceError>;

/// What prepares a suite's writing checks (lays out a tape).
pub type PrepareFn = fn(&mut Target) -> Result<(), DeviceError>;

/// A check: its spec and the function that runs it.
pub struct CheckDef {
    pub spec: Spec,
    pub run: CheckFn,
}

/// A suite: a name, whether it applies to a device, and its checks in order.
pub struct Suite {
    pub name: &'static str,
    pub applies: fn(&Target) -> bool,
    pub checks: &'static [CheckDef],
    /// Runs before the checks that write (lays out the tape the checks
    /// read); its error fails those checks.
    pub prepare: Option<PrepareFn>,
    /// Why none of the suite's checks can run on this device (a drive with
    /// no cartridge), if so: every check is then not supported.
    pub unready: Option<fn(&mut Target) -> Option<String>>,
}

/// Every suite, in the order they run.
pub fn suites() -> Vec<&'static Suite> {
    vec![
        &disk::SUITE,
        &tape::SUITE,
        &changer::SUITE,
        &copy::SUITE,
        &iscsi::SUITE,
    ]
}

/// The names `--suite` takes.
pub const SUITE_NAMES: &[&str] = &["disk", "tape", "changer", "copy", "iscsi"];

/// Every check id of every suite (for documentation and tests).
pub fn all_checks() -> Vec<(&'static str, Spec)> {
    suites()
        .iter()
        .flat_map(|s| s.checks.iter().map(|c| (s.name, c.spec)))
        .collect()
}

#[cfg(test)]
mod tests;
