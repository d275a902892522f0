//! The iSCSI suite's checks that libiscsi cannot make: they open sessions
//! of their own with the raw initiator (`crate::initiator`), same
//! initiator name and credentials as the run, a fresh random ISID each
//! (so the run's own session is never reinstated), and log out at the end.
//! None writes to the medium.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::device::DeviceError;
use crate::frontend::pdu::{Header, Pdu};
use crate::initiator::{
    random_isid, window_open, Chap, CmdOpts, Config, DataDir, Initiator, InitiatorError,
};
use crate::scsi::sbc::{Capacity10, Read16, ReadCapacity10};
use crate::scsi::sense::{Sense, SenseKey};
use crate::scsi::spc::{Inquiry, TestUnitReady};
use crate::scsi::{CdbCodec, DeviceType, Lba, Wire};
use crate::transport::url::{DeviceUrl, IscsiUrl};

use super::negotiation::{self, Offer, Rule};
use super::{Finding, Target};

/// Where the raw initiator logs in, from the run's URL.
struct Portal {
    cfg: Config,
    lun: u64,
}

/// Read timeout of the raw sessions: long enough for LIO under TCG.
const TIMEOUT: Duration = Duration::from_secs(20);
/// ITTs of a session that is then dropped start here, so that a stray
/// answer on the next session is told apart (12 bits of room below).
const OLD_ITT_BASE: u32 = 0x4000_0000;

fn portal(t: &Target) -> Result<Portal, String> {
    let url = match DeviceUrl::parse(&t.open_url) {
        Ok(DeviceUrl::Iscsi(u)) => u.password_from_env(),
        _ => return Err("not an iscsi:// URL".into()),
    };
    let addr = resolve(&url)?;
    let mut cfg = Config::new(addr, &t.initiator, &url.target, random_isid()).with_usual_keys();
    cfg.timeout = TIMEOUT;
    if let (Some(user), Some(pw)) = (&url.user, &url.password) {
        cfg.chap = Some(Chap {
            user: user.clone(),
            secret: pw.expose().as_bytes().to_vec(),
            mutual: None,
        });
    }
    Ok(Portal {
        cfg,
        lun: u64::from(url.lun),
    })
}

fn resolve(url: &IscsiUrl) -> Result<SocketAddr, String> {
    (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", url.host))
}

/// Run `f` on a raw portal; an initiator error is a failure with the
/// error as the observation.
fn with_raw(
    t: &mut Target,
    sent: &str,
    f: fn(&mut Target, &Portal) -> Result<Finding, InitiatorError>,
) -> Result<Finding, DeviceError> {
    let p = match portal(t) {
        Ok(p) => p,
        Err(why) => return Ok(Finding::unsupported(sent, "", why)),
    };
    Ok(f(t, &p).unwrap_or_else(|e| Finding::judge(false, sent, format!("error: {e}"))))
}

/// TEST UNIT READY until no UNIT ATTENTION is pending (a new I_T nexus
/// reports one, SAM-5 5.14), at most four times.
fn settle(i: &mut Initiator, lun: u64) -> Result<(), InitiatorError> {
    let tur = TestUnitReady.to_cdb();
    for _ in 0..4 {
        let r = i.run(lun, tur.as_bytes(), DataDir::None)?;
        let key = Sense::parse(&r.sense).ok().map(|s| s.key);
        if key != Some(SenseKey::UNIT_ATTENTION) {
            break;
        }
    }
    Ok(())
}

/// The block size by READ CAPACITY (10) on a session of its own (the
/// run's libiscsi session is not serviced while raw checks run).
fn raw_block_size(cfg: &Config, lun: u64) -> Result<usize, InitiatorError> {
    let mut i = Initiator::login(cfg)?;
    settle(&mut i, lun)?;
    let r = i.run(lun, ReadCapacity10.to_cdb().as_bytes(), DataDir::In(8))?;
    let _ = i.logout();
    match Capacity10::parse(&r.data) {
        Ok(c) if r.status == 0 && c.block_len > 0 => Ok(c.block_len as usize),
        _ => Err(InitiatorError::Protocol(format!(
            "READ CAPACITY (10): status {:#04x}, {} bytes",
            r.status,
            r.data.len()
        ))),
    }
}

fn inquiry() -> Vec<u8> {
    Inquiry::standard(36).to_cdb().as_bytes().to_vec()
}

pub(super) fn negotiation(t: &mut Target) -> Result<Finding, DeviceError> {
    with_raw(t, "login", |_, p| {
        let cfg = Config {
            keys: negotiation::pairs(negotiation::USUAL),
            ..p.cfg.clone()
        };
        let sent = format!(
            "Login Request, operational stage: {}",
            negotiation::USUAL
                .iter()
                .map(|o| format!("{}={}", o.key, o.value))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let i = Initiator::login(&cfg)?;
        let vs = negotiation::judge_all(negotiation::USUAL, &i.login_keys);
        let _ = i.logout();
        let problems: Vec<_> = vs.iter().filter_map(|v| v.problem.clone()).collect();
        Ok(
            Finding::judge(problems.is_empty(), sent, negotiation::describe(&vs))
                .fail_because(problems.join("; ")),
        )
    })
}

/// A vendor-specific key no target knows (RFC 7143 6.2.1, 13.5.1 X- keys).
const PROBE: Offer = Offer {
    key: "X-org.sanmover.Probe",
    value: "1",
    rule: Rule::Unknown,
    section: "6.2.1",
};

pub(super) fn unknown_key_login(t: &mut Target) -> Result<Finding, DeviceError> {
    with_raw(t, "login", |_, p| {
        let sent = format!(
            "Login Request, operational stage: {}={}, then INQUIRY",
            PROBE.key, PROBE.value
        );
        let cfg = p.cfg.clone().key(PROBE.key, PROBE.value);
        let mut i = Initiator::login(&cfg)?;
        let v = negotiation::judge_all(&[PROBE], &i.login_keys);
        unknown_key_verdict(&mut i, p.lun, sent, v)
    })
}

pub(super) fn unknown_key_text(t: &mut Target) -> Result<Finding, DeviceError> {
    with_raw(t, "Text Request", |_, p| {
        let sent = format!(
            "Text Request in full feature phase (immediate, F=1): {}={}, then INQUIRY",
            PROBE.key, PROBE.value
        );
        let mut i = Initiator::login(&p.cfg)?;
        let answer = match i.text(&negotiation::pairs(&[PROBE])) {
            Ok(a) => a,
            Err(e @ (InitiatorError::Closed(_) | InitiatorError::Rejected(_))) => {
                let obs = format!("{e}");
                return Ok(Finding::judge(false, sent, obs).fail_because(
                    "a Text Request in full feature phase must be answered (RFC 7143 6.2, 11.11)",
                ));
            }
            Err(e) => return Err(e),
        };
        let v = negotiation::judge_all(&[PROBE], &answer);
        unknown_key_verdict(&mut i, p.lun, sent, v)
    })
}

/// The probe's verdict, and whether the session still answers.
fn unknown_key_verdict(
    i: &mut Initiator,
    lun: u64,
    sent: String,
    v: Vec<negotiation::KeyVerdict>,
) -> Result<Finding, InitiatorError> {
    let after = i.run(lun, &inquiry(), DataDir::In(36))?;
    let mut obs = negotiation::describe(&v);
    obs.push_str(&format!("; INQUIRY after it: status {:#04x}", after.status));
    let ok = v[0].problem.is_none() && after.status == 0;
    Ok(Finding::judge(ok, sent, obs).fail_because(
        v[0].problem
            .clone()
            .unwrap_or_else(|| "the session did not go on".into()),
    ))
}

/// The MaxRecvDataSegmentLength we declare for the Data-In check: the
/// smallest allowed (RFC 7143 13.12).
const SMALL_MRDSL: usize = 512;

pub(super) fn mrdsl_honoured(t: &mut Target) -> Result<Finding, DeviceError> {
    if t.inquiry.device_type != DeviceType::DISK {
        return Ok(Finding::unsupported(
            "",
            "",
            "needs a disk LU (a READ longer than 512 bytes)",
        ));
    }
    with_raw(t, "login, READ(16)", |_, p| {
        let bs = raw_block_size(&p.cfg, p.lun)?;
        let blocks = (4096 / bs.max(1)).clamp(1, 8) as u32;
        let len = blocks as usize * bs;
        let cfg = p
            .cfg
            .clone()
            .key("MaxRecvDataSegmentLength", &SMALL_MRDSL.to_string());
        let cdb = Read16::new(Lba(0), blocks).to_cdb();
        let sent = format!(
            "login declaring MaxRecvDataSegmentLength={SMALL_MRDSL}, then {} [{cdb}] ({len} bytes)",
            cdb.opcode()
        );
        let mut i = Initiator::login(&cfg)?;
        settle(&mut i, p.lun)?;
        let r = i.run(p.lun, cdb.as_bytes(), DataDir::In(len as u32))?;
        let _ = i.logout();
        let obs = format!(
            "status {:#04x}, {} bytes in {} Data-In PDUs, the longest {} bytes",
            r.status,
            r.data.len(),
            r.data_in_pdus,
            r.longest_segment
        );
        let ok = r.status == 0 && r.data.len() == len && r.longest_segment <= SMALL_MRDSL;
        let obs = match Sense::parse(&r.sense) {
            Ok(s) => format!("{obs}; sense {s}"),
            Err(_) => obs,
        };
        Ok(Finding::judge(ok, sent, obs).fail_because(format!(
            "a Data-In segment is longer than the {SMALL_MRDSL} bytes we declared (RFC 7143 13.12)"
        )))
    })
}

pub(super) fn cmdsn_window(t: &mut Target) -> Result<Finding, DeviceError> {
    with_raw(t, "login", |_, p| {
        let sent = "login, 3 INQUIRY, NOP-Out ping".to_string();
        let mut i = Initiator::login(&p.cfg)?;
        let exp0 = i.state.exp_cmd_sn;
        for _ in 0..3 {
            i.run(p.lun, &inquiry(), DataDir::In(36))?;
        }
        i.ping(b"window")?;
        let exp1 = i.state.exp_cmd_sn;
        let windows = i.windows.clone();
        let _ = i.logout();
        let bad: Vec<String> = windows
            .iter()
            .filter(|(_, e, m)| !window_open(*e, *m))
            .map(|(op, e, m)| format!("{op}: ExpCmdSN {e}, MaxCmdSN {m}"))
            .collect();
        let advanced = exp1.wrapping_sub(exp0);
        let obs = format!(
            "{} PDUs with a window; ExpCmdSN {exp0} -> {exp1} (+{advanced}); window at the end {}",
            windows.len(),
            windows
                .last()
                .map_or("none".into(), |(_, e, m)| format!("{e}..={m}"))
        );
        let ok = bad.is_empty() && advanced == 3 && !windows.is_empty();
        let why = match bad.is_empty() {
            false => format!("MaxCmdSN < ExpCmdSN - 1 in {}", bad.join(", ")),
            true => format!("ExpCmdSN advanced by {advanced} for 3 commands"),
        };
        Ok(Finding::judge(ok, sent, obs).fail_because(why))
    })
}

pub(super) fn cmdsn_outside(t: &mut Target) -> Result<Finding, DeviceError> {
    with_raw(t, "login", |_, p| {
        let mut i = Initiator::login(&p.cfg)?;
        i.run(p.lun, &inquiry(), DataDir::In(36))?;
        let sent = "INQUIRY with CmdSN MaxCmdSN + 1, then an in-window INQUIRY and a NOP-Out \
                    ping; INQUIRY with CmdSN ExpCmdSN - 1 (a used number), then the same"
            .to_string();
        let mut obs = Vec::new();
        let mut problem = None;
        for (name, above) in [("MaxCmdSN + 1", true), ("ExpCmdSN - 1", false)] {
            let (exp, max) = (i.state.exp_cmd_sn, i.state.max_cmd_sn);
            let sn = if above {
                max.wrapping_add(1)
            } else {
                exp.wrapping_sub(1)
            };
            match stray_ignored(&mut i, p.lun, sn) {
                Ok(None) => obs.push(format!("CmdSN {sn} ({name}): ignored, session went on")),
                Ok(Some(got)) => {
                    obs.push(format!("CmdSN {sn} ({name}): answered ({got})"));
                    problem.get_or_insert(format!("CmdSN {name} was executed"));
                }
                Err(e) => {
                    obs.push(format!("CmdSN {sn} ({name}): {e}"));
                    problem.get_or_insert(format!("CmdSN {name} ended the connection"));
                    break;
                }
            }
        }
        let _ = i.logout();
        let why = problem.clone().unwrap_or_default();
        Ok(
            Finding::judge(problem.is_none(), sent, obs.join("; ")).fail_because(format!(
            "{why}: a command outside [ExpCmdSN, MaxCmdSN] is silently ignored (RFC 7143 4.2.2.1)"
        )),
        )
    })
}

/// Send an INQUIRY with CmdSN `sn`, then an in-window INQUIRY and a ping:
/// None when the stray got no answer and the rest did, else what came.
fn stray_ignored(i: &mut Initiator, lun: u64, sn: u32) -> Result<Option<String>, InitiatorError> {
    let exp = i.state.exp_cmd_sn;
    let opts = CmdOpts {
        immediate: false,
        cmd_sn: Some(sn),
    };
    let stray = i.start(lun, &inquiry(), DataDir::In(36), opts)?;
    let good = i.run(lun, &inquiry(), DataDir::In(36))?;
    i.ping(b"after")?;
    let answered = drain_for(i, &[stray]);
    let exp_after = i.state.exp_cmd_sn;
    Ok(match answered.first() {
        Some(p) => Some(p.to_string()),
        None if good.status != 0 => Some(format!("in-window INQUIRY status {:#04x}", good.status)),
        None if exp_after != exp.wrapping_add(1) => {
            Some(format!("ExpCmdSN {exp} -> {exp_after} for one command"))
        }
        None => None,
    })
}

/// Held PDUs that belong to the tasks `itts`.
fn drain_for(i: &mut Initiator, itts: &[u32]) -> Vec<Pdu> {
    let mut out = Vec::new();
    let mut keep = Vec::new();
    while let Some(p) = i.take_held() {
        match task_of(&p.header) {
            Some(itt) if itts.contains(&itt) => out.push(p),
            _ => keep.push(p),
        }
    }
    for p in keep {
        i.hold(p);
    }
    out
}

fn task_of(h: &Header) -> Option<u32> {
    match h {
        Header::DataIn(d) => Some(d.itt),
        Header::ScsiResponse(s) => Some(s.itt),
        Header::R2t(r) => Some(r.itt),
        _ => None,
    }
}

pub(super) fn cmdsn_immediate(t: &mut Target) -> Result<Finding, DeviceError> {
    with_raw(t, "login", |_, p| {
        let mut i = Initiator::login(&p.cfg)?;
        let sn = i.state.cmd_sn;
        let sent = format!("INQUIRY with the I bit and CmdSN {sn}, then INQUIRY with CmdSN {sn}");
        let exp0 = i.state.exp_cmd_sn;
        let opts = CmdOpts {
            immediate: true,
            cmd_sn: None,
        };
        let itt = i.start(p.lun, &inquiry(), DataDir::In(36), opts)?;
        let imm = match i.wait(p.lun, itt, &[]) {
            Err(InitiatorError::Rejected(why)) => return immediate_rejected(i, p.lun, sent, why),
            r => r?,
        };
        let exp1 = i.state.exp_cmd_sn;
        let next = i.run(p.lun, &inquiry(), DataDir::In(36))?;
        let exp2 = i.state.exp_cmd_sn;
        let _ = i.logout();
        let obs = format!(
            "immediate: status {:#04x}, ExpCmdSN {exp0} -> {exp1}; next: status {:#04x}, \
             ExpCmdSN -> {exp2}",
            imm.status, next.status
        );
        let ok =
            imm.status == 0 && next.status == 0 && exp1 == exp0 && exp2 == exp0.wrapping_add(1);
        Ok(Finding::judge(ok, sent, obs).fail_because(
            "an immediate command must be delivered at once and not advance ExpCmdSN \
             (RFC 7143 4.2.2.1)",
        ))
    })
}

/// A target may refuse immediate SCSI commands: RFC 7143 4.2.2.1 asks
/// only for one immediate non-TMF request at a time, which a NOP-Out is.
fn immediate_rejected(
    mut i: Initiator,
    lun: u64,
    sent: String,
    why: crate::frontend::pdu::RejectReason,
) -> Result<Finding, InitiatorError> {
    let exp0 = i.state.exp_cmd_sn;
    let ping = i.ping(b"immediate").is_ok();
    let next = i.run(lun, &inquiry(), DataDir::In(36))?;
    let _ = i.logout();
    let obs = format!(
        "immediate INQUIRY rejected ({why}); immediate NOP-Out {}, ExpCmdSN {exp0}; \
         the next INQUIRY status {:#04x}",
        if ping { "answered" } else { "not answered" },
        next.status
    );
    if !ping || next.status != 0 {
        return Ok(Finding::judge(false, sent, obs).fail_because("the session did not go on"));
    }
    Ok(Finding::unsupported(
        sent,
        obs,
        "the target takes no immediate SCSI commands (Reject); RFC 7143 4.2.2.1 requires one \
         immediate non-task-management request, and its immediate NOP-Out works",
    ))
}

pub(super) fn connection_lost(t: &mut Target) -> Result<Finding, DeviceError> {
    with_raw(t, "login", |t, p| {
        let (cdb, len) = match t.inquiry.device_type == DeviceType::DISK {
            true => (
                Read16::new(Lba(0), 8).to_cdb(),
                8 * raw_block_size(&p.cfg, p.lun)? as u32,
            ),
            false => (Inquiry::standard(255).to_cdb(), 255),
        };
        let sent = format!(
            "login with ISID {:#014x}, {} [{cdb}] sent and the TCP connection dropped before its \
             answer; login again with the same ISID and TSIH 0; INQUIRY and two NOP-Out pings",
            p.cfg.isid,
            cdb.opcode()
        );
        let mut old = Initiator::login(&p.cfg)?;
        old.set_itt_base(OLD_ITT_BASE);
        let old_tsih = old.state.tsih;
        old.start(p.lun, cdb.as_bytes(), DataDir::In(len), CmdOpts::default())?;
        old.drop_connection();
        let mut new = match Initiator::login(&p.cfg) {
            Ok(n) => n,
            Err(e) => {
                let obs = format!("the new login failed: {e}");
                return Ok(Finding::judge(false, sent, obs)
                    .fail_because("session reinstatement refused (RFC 7143 6.3.5)"));
            }
        };
        settle(&mut new, p.lun)?;
        let r = new.run(p.lun, &inquiry(), DataDir::In(36))?;
        new.ping(b"one")?;
        new.ping(b"two")?;
        let old_itts: Vec<u32> = (OLD_ITT_BASE..OLD_ITT_BASE + 16).collect();
        let stray = drain_for(&mut new, &old_itts);
        let tsih = new.state.tsih;
        let _ = new.logout();
        let obs = format!(
            "reinstated: TSIH {old_tsih:#06x} -> {tsih:#06x}; INQUIRY status {:#04x}; {} PDUs of \
             the old task on the new connection",
            r.status,
            stray.len()
        );
        let ok = r.status == 0 && stray.is_empty() && tsih != 0;
        Ok(Finding::judge(ok, sent, obs).fail_because(
            "the new session must work and carry nothing of the old one (RFC 7143 6.3.5)",
        ))
    })
}
