//! `replay`: send a trace's commands to other devices, in order, and
//! report where their answers differ from the recorded ones. Each I_T
//! nexus of the trace (in order of first appearance) maps to one device;
//! every device's type is checked against the trace before any of the
//! trace's commands is sent.

use serde::Serialize;

use crate::device::{DeviceError, Scsi};
use crate::scsi::describe::describe_cdb;
use crate::scsi::sense::{Sense, SenseKey};
use crate::scsi::{Cdb, DeviceType, Opcode, Status};
use crate::transport::trace::{Nexus, Record};
use crate::transport::{Request, Residual, Transport};

use super::{exchange, Exchange};

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the trace has {nexuses} I_T nexuses ({list}) but {devices} devices were given; give one device per nexus, in that order")]
    DeviceCount {
        nexuses: usize,
        devices: usize,
        list: String,
    },
    #[error("record {seq}: the trace kept only the digest of its data-out; record the trace with --trace-data full to replay it")]
    NoData { seq: u64 },
    #[error("record {seq}: the CDB {cdb:?} is not valid hex of 1 to 16 bytes")]
    BadCdb { seq: u64, cdb: String },
    #[error("{device} is a {found} device, but the trace's nexus {target} was a {expected} device; nothing was sent")]
    WrongType {
        device: String,
        target: String,
        expected: DeviceType,
        found: DeviceType,
    },
    #[error("the trace holds no INQUIRY answer for {target}, so the device type cannot be checked; nothing was sent")]
    NoInquiry { target: String },
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// One answer, decoded.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Answer {
    pub status: String,
    pub sense: Option<String>,
    pub data_in_len: Option<u64>,
    pub residual: Option<String>,
}

/// The first command whose answer differs.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    pub seq: u64,
    pub nexus: Nexus,
    pub command: String,
    pub what: String,
    pub recorded: Answer,
    pub replayed: Answer,
}

/// What a replay found.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub commands: usize,
    /// Records not sent: the transport had failed on them when recorded,
    /// or they were answered UNIT ATTENTION (and retried).
    pub skipped: usize,
    pub differences: usize,
    pub first: Option<Difference>,
}

/// The nexuses of a trace, in order of first appearance.
pub fn nexuses(records: &[Record]) -> Vec<Nexus> {
    let mut out: Vec<Nexus> = Vec::new();
    for r in records {
        if !out.contains(&r.nexus) {
            out.push(r.nexus.clone());
        }
    }
    out
}

/// Refuse what cannot be replayed before anything is sent.
pub fn check_trace(records: &[Record], devices: usize) -> Result<Vec<Nexus>, ReplayError> {
    let nx = nexuses(records);
    if nx.len() != devices {
        let list = nx
            .iter()
            .map(|n| n.target.clone())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ReplayError::DeviceCount {
            nexuses: nx.len(),
            devices,
            list,
        });
    }
    for r in records {
        if Cdb::new(&r.cdb_bytes().unwrap_or_default()).is_err() {
            return Err(ReplayError::BadCdb {
                seq: r.seq,
                cdb: r.cdb.clone(),
            });
        }
        if r.dir == "out" && r.data_out.as_ref().and_then(|d| d.bytes()).is_none() {
            return Err(ReplayError::NoData { seq: r.seq });
        }
    }
    Ok(nx)
}

/// The device type the trace saw for `nexus` (its first standard INQUIRY).
fn recorded_type(records: &[Record], nexus: &Nexus) -> Option<DeviceType> {
    records.iter().filter(|r| &r.nexus == nexus).find_map(|r| {
        let cdb = r.cdb_bytes()?;
        let standard =
            cdb.first() == Some(&Opcode::INQUIRY.0) && cdb.get(1).is_some_and(|b| b & 1 == 0);
        let data = r.data_in.as_ref()?.bytes()?;
        (standard && r.status == Some(0)).then(|| data.first().map(|b| DeviceType(b & 0x1f)))?
    })
}

/// Check every device's type against the trace (INQUIRY only).
pub fn check_types<T: Transport>(
    records: &[Record],
    nexuses: &[Nexus],
    devices: &mut [Scsi<T>],
) -> Result<(), ReplayError> {
    for (n, d) in nexuses.iter().zip(devices.iter_mut()) {
        let expected = recorded_type(records, n).ok_or_else(|| ReplayError::NoInquiry {
            target: n.target.clone(),
        })?;
        let found = d.inquiry()?.device_type;
        if found != expected {
            return Err(ReplayError::WrongType {
                device: d.name().to_string(),
                target: n.target.clone(),
                expected,
                found,
            });
        }
    }
    Ok(())
}

fn recorded(r: &Record) -> Answer {
    let sense = r.sense_bytes();
    Answer {
        status: r.status.map_or("none".into(), |s| Status(s).to_string()),
        sense: (!sense.is_empty())
            .then(|| Sense::parse(&sense).map_or_else(|_| hex::encode(&sense), |s| s.to_string())),
        data_in_len: r.data_in.as_ref().map(|d| d.len),
        residual: r.residual.clone(),
    }
}

fn replayed(x: &Exchange, dir_in: bool) -> Answer {
    Answer {
        status: x.status.to_string(),
        sense: (!x.raw_sense.is_empty()).then(|| {
            x.sense
                .as_ref()
                .map_or_else(|| hex::encode(&x.raw_sense), |s| s.to_string())
        }),
        data_in_len: dir_in.then_some(x.data.len() as u64),
        residual: match x.residual {
            Residual::None => None,
            Residual::Underflow(n) => Some(format!("underflow {n}")),
            Residual::Overflow(n) => Some(format!("overflow {n}")),
        },
    }
}

/// What differs between the recorded and the replayed answer, if anything.
fn differs(r: &Record, x: &Exchange, compare_data: bool) -> Option<String> {
    let (a, b) = (recorded(r), replayed(x, r.dir == "in"));
    if a.status != b.status {
        return Some("status".into());
    }
    if a.sense != b.sense {
        return Some("sense".into());
    }
    // INQUIRY answers (standard and VPD) describe the device itself and
    // differ between any two: their lengths and bytes count only with
    // --compare-data.
    let identity = r.cdb_bytes().and_then(|c| c.first().copied()) == Some(Opcode::INQUIRY.0);
    if identity && !compare_data {
        return None;
    }
    if a.data_in_len != b.data_in_len {
        return Some("data-in length".into());
    }
    let bytes = r.data_in.as_ref().and_then(|d| d.bytes());
    if compare_data && bytes.as_ref().is_some_and(|d| *d != x.data) {
        return Some("data-in bytes".into());
    }
    None
}

fn request(r: &Record) -> Request {
    let cdb = Cdb::new(&r.cdb_bytes().unwrap_or_default()).expect("checked by check_trace");
    let req = match r.dir.as_str() {
        "out" => Request::data_out(
            cdb,
            r.data_out
                .as_ref()
                .and_then(|d| d.bytes())
                .unwrap_or_default(),
        ),
        "in" => Request::data_in(cdb, r.alloc_len as usize),
        _ => Request::none(cdb),
    };
    req.with_timeout(crate::device::tape::LONG_TIMEOUT)
}

/// Send every record to the device of its nexus and compare.
pub fn replay<T: Transport>(
    records: &[Record],
    nexuses: &[Nexus],
    devices: &mut [Scsi<T>],
    compare_data: bool,
) -> Result<ReplayReport, ReplayError> {
    let mut rep = ReplayReport {
        commands: 0,
        skipped: 0,
        differences: 0,
        first: None,
    };
    for r in records {
        // A recorded UNIT ATTENTION is session state (the retry that
        // followed is recorded too); the replay's own are retried by the
        // device layer.
        let ua = Sense::parse(&r.sense_bytes()).is_ok_and(|s| s.key == SenseKey::UNIT_ATTENTION);
        if r.error.is_some() || r.status.is_none() || ua {
            rep.skipped += 1;
            continue;
        }
        let i = nexuses
            .iter()
            .position(|n| *n == r.nexus)
            .expect("every nexus was mapped");
        let x = exchange(&mut devices[i], request(r))?;
        rep.commands += 1;
        if let Some(what) = differs(r, &x, compare_data) {
            rep.differences += 1;
            if rep.first.is_none() {
                rep.first = Some(Difference {
                    seq: r.seq,
                    nexus: r.nexus.clone(),
                    command: describe_cdb(&r.cdb_bytes().unwrap_or_default()),
                    what,
                    recorded: recorded(r),
                    replayed: replayed(&x, r.dir == "in"),
                });
            }
        }
    }
    Ok(rep)
}
