//! The runner: open every device, refuse a labelled tape before anything
//! is written, pick the suites each device's type and VPD pages call for,
//! and run their checks in order.

use crate::device::{DeviceError, Scsi, Tape};
use crate::engine::volume::{read_label, LabelState};
use crate::engine::EngineError;
use crate::scsi::spc::{DeviceIdentification, SupportedVpdPages, VpdPage};
use crate::scsi::{DeviceType, Wire};
use crate::transport::url::DeviceUrl;
use crate::transport::{Connector, TransportError};

use super::{
    suites, CheckDef, CheckResult, DeviceReport, Dyn, Finding, Peer, RunReport, Suite, Target,
    Verdict, REPORT_VERSION,
};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Suite names to run; empty: every suite that applies.
    pub suites: Vec<String>,
    /// Allow checks that write, on the devices named.
    pub dataloss: bool,
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("{device}: {source}")]
    Open {
        device: String,
        #[source]
        source: TransportError,
    },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{device}: the cartridge holds {found}; validate writes only to a scratch cartridge (relabel or replace it)")]
    LabelledTape { device: String, found: String },
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("unknown suite {0:?} (suites: disk, tape, changer, copy, iscsi)")]
    UnknownSuite(String),
}

/// Run the suites against `devices` (addresses as given), opening sessions
/// through `connector` as `initiator`.
pub fn validate(
    devices: &[String],
    connector: &dyn Connector,
    initiator: &str,
    opts: &Options,
) -> Result<RunReport, ValidateError> {
    for s in &opts.suites {
        if !super::SUITE_NAMES.contains(&s.as_str()) {
            return Err(ValidateError::UnknownSuite(s.clone()));
        }
    }
    let mut targets = Vec::new();
    for dev in devices {
        targets.push(open_target(dev, connector, initiator, opts.dataloss)?);
    }
    if opts.dataloss {
        for t in targets.iter_mut() {
            refuse_labelled_tape(t)?;
        }
    }
    let peers: Vec<Peer> = targets
        .iter()
        .map(|t| Peer {
            url: t.url.clone(),
            device_type: t.inquiry.device_type,
            designators: t.designators.clone(),
        })
        .collect();
    let mut reports = Vec::new();
    for mut t in targets {
        t.others = peers.iter().filter(|p| p.url != t.url).cloned().collect();
        reports.push(run_target(&mut t, opts));
    }
    Ok(RunReport {
        version: REPORT_VERSION,
        dataloss: opts.dataloss,
        devices: reports,
    })
}

fn redact(dev: &str) -> String {
    match DeviceUrl::parse(dev) {
        Ok(DeviceUrl::Iscsi(u)) => u.without_credentials().to_string(),
        _ => dev.to_string(),
    }
}

fn open_target<'a>(
    dev: &str,
    connector: &'a dyn Connector,
    initiator: &str,
    dataloss: bool,
) -> Result<Target<'a>, ValidateError> {
    let url = redact(dev);
    let t: Dyn = connector
        .open(dev, initiator)
        .map_err(|source| ValidateError::Open {
            device: url.clone(),
            source,
        })?;
    let mut scsi = Scsi::new(t);
    let inquiry = scsi.inquiry()?;
    let vpd_pages = scsi
        .vpd_raw(VpdPage::SUPPORTED_PAGES)
        .ok()
        .and_then(|b| SupportedVpdPages::parse(&b).ok())
        .map(|p| p.pages)
        .unwrap_or_default();
    let designators = scsi
        .vpd_raw(VpdPage::DEVICE_IDENTIFICATION)
        .ok()
        .and_then(|b| DeviceIdentification::parse(&b).ok())
        .map(|d| d.designators.into_iter().filter(|d| d.names_lu()).collect())
        .unwrap_or_default();
    Ok(Target {
        url,
        open_url: dev.to_string(),
        scsi,
        inquiry,
        vpd_pages,
        designators,
        dataloss,
        connector,
        initiator: initiator.to_string(),
        others: Vec::new(),
    })
}

/// SSC checks write a known layout from BOT: a cartridge with a sanmover
/// label is refused before anything is written to any device.
fn refuse_labelled_tape(t: &mut Target) -> Result<(), ValidateError> {
    if t.inquiry.device_type != DeviceType::TAPE {
        return Ok(());
    }
    let s = t
        .connector
        .open(&t.open_url, &t.initiator)
        .map_err(|source| ValidateError::Open {
            device: t.url.clone(),
            source,
        })?;
    let mut tape = Tape::open(s)?;
    match read_label(&mut tape) {
        Ok(found @ LabelState::Ours(_)) => Err(ValidateError::LabelledTape {
            device: t.url.clone(),
            found: found.describe(),
        }),
        Ok(_) => Ok(()),
        // No cartridge (a library drive): nothing on it to lose.
        Err(EngineError::Device(e)) if no_medium(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn no_medium(e: &DeviceError) -> bool {
    e.sense()
        .is_some_and(|s| s.key == crate::scsi::sense::SenseKey::NOT_READY)
}

fn run_target(t: &mut Target, opts: &Options) -> DeviceReport {
    let mut checks = Vec::new();
    let mut names = Vec::new();
    for suite in suites() {
        let wanted = opts.suites.is_empty() || opts.suites.iter().any(|s| s == suite.name);
        if !wanted || !(suite.applies)(t) {
            continue;
        }
        names.push(suite.name.to_string());
        run_suite(t, suite, &mut checks);
    }
    DeviceReport {
        device: t.url.clone(),
        device_type: t.inquiry.device_type.to_string(),
        vendor: t.inquiry.vendor.clone(),
        product: t.inquiry.product.clone(),
        revision: t.inquiry.revision.clone(),
        suites: names,
        checks,
    }
}

fn run_suite(t: &mut Target, suite: &Suite, out: &mut Vec<CheckResult>) {
    if let Some(why) = suite.unready.and_then(|f| f(t)) {
        for def in suite.checks {
            out.push(result(
                suite.name,
                def,
                Finding::unsupported("", "", why.clone()),
            ));
        }
        return;
    }
    let mut prepared: Option<Result<(), String>> = None;
    for def in suite.checks {
        let finding = if def.spec.writes && !t.dataloss {
            Finding::skipped("writes to the medium: run with --dataloss")
        } else {
            if def.spec.writes && prepared.is_none() {
                prepared = Some(match suite.prepare {
                    Some(p) => p(t).map_err(|e| e.to_string()),
                    None => Ok(()),
                });
            }
            match &prepared {
                Some(Err(e)) if def.spec.writes => {
                    Finding::judge(false, "the suite's preparation", format!("failed: {e}"))
                }
                _ => run_check(t, def),
            }
        };
        out.push(result(suite.name, def, finding));
    }
}

fn run_check(t: &mut Target, def: &CheckDef) -> Finding {
    match (def.run)(t) {
        Ok(f) => f,
        Err(e) => Finding::judge(false, "", format!("error: {e}")),
    }
}

fn result(suite: &str, def: &CheckDef, f: Finding) -> CheckResult {
    debug_assert!(
        f.verdict == Verdict::Pass || f.verdict == Verdict::Fail || f.reason.is_some(),
        "{}: a not-supported or skipped verdict needs a reason",
        def.spec.id
    );
    CheckResult {
        id: def.spec.id.to_string(),
        suite: suite.to_string(),
        cites: def.spec.cites.to_string(),
        sent: f.sent,
        expected: def.spec.expected.to_string(),
        observed: f.observed,
        verdict: f.verdict,
        reason: f.reason,
    }
}
