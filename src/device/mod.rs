//! Disks and tapes: SCSI verbs over a [`Transport`].
//!
//! This layer sends the codec's CDBs, turns a non-GOOD status into a
//! [`DeviceError`] that carries the decoded sense and the CDB that caused it,
//! and keeps the tape quirks (tgt's residuals, its stub READ POSITION) in one
//! place. It builds no bytes itself.

use std::fmt;

use crate::scsi::sense::{Sense, SenseKey};
use crate::scsi::spc::{
    DeviceIdentification, Inquiry, LunList, ReportLuns, StandardInquiry, TestUnitReady, VpdPage,
};
use crate::scsi::{Cdb, CdbCodec, DeviceType, ParseError, Status, Wire};
use crate::transport::retry::RetryPolicy;
use crate::transport::{Request, Response, Transport, TransportError};

pub mod changer;
pub mod disk;
pub mod pr;
pub mod tape;

pub use changer::Changer;
pub use disk::Disk;
pub use pr::PrOut;
pub use tape::Tape;

/// A failed SCSI exchange, with everything a storage engineer needs to see.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{device}: {source}")]
    Transport {
        device: String,
        #[source]
        source: TransportError,
    },
    #[error("{device}: {} [{cdb}] ended {status}{}", cdb_name(.cdb), sense_suffix(.sense, .raw_sense))]
    Check {
        device: String,
        cdb: Cdb,
        status: Status,
        sense: Option<Box<Sense>>,
        raw_sense: Vec<u8>,
    },
    #[error("{device}: {what}: cannot decode the response: {source}")]
    Parse {
        device: String,
        what: &'static str,
        #[source]
        source: ParseError,
    },
    #[error("{device} is a {found} device, not a {expected} device")]
    WrongType {
        device: String,
        expected: DeviceType,
        found: DeviceType,
    },
    /// INQUIRY says nothing is there (peripheral qualifier 3, or type
    /// 1Fh): the LUN is not configured on that target.
    #[error("{device}: no logical unit at this LUN (see `sanmover luns iscsi://HOST`)")]
    NoLogicalUnit { device: String },
    #[error("{device}: {message}")]
    Protocol { device: String, message: String },
}

impl DeviceError {
    /// The decoded sense, when the device sent one.
    pub fn sense(&self) -> Option<&Sense> {
        match self {
            DeviceError::Check { sense, .. } => sense.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<Status> {
        match self {
            DeviceError::Check { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the device refused the command as not implemented.
    pub fn is_unsupported_command(&self) -> bool {
        self.sense().is_some_and(|s| {
            s.key == SenseKey::ILLEGAL_REQUEST && s.asc == crate::scsi::sense::Asc::INVALID_OPCODE
        })
    }
}

fn cdb_name(cdb: &Cdb) -> String {
    cdb.opcode().to_string()
}

fn sense_suffix(sense: &Option<Box<Sense>>, raw: &[u8]) -> String {
    match sense {
        Some(s) if s.key == SenseKey::COPY_ABORTED => format!(": {s}{}", copy_aborted_suffix(raw)),
        Some(s) => format!(": {s}"),
        None if raw.is_empty() => String::new(),
        None => format!(": undecodable sense {}", hex::encode(raw)),
    }
}

/// What a COPY ABORTED adds (SPC-4 6.4.3): the segment and the sense the
/// copy source or destination returned, decoded.
fn copy_aborted_suffix(raw: &[u8]) -> String {
    use crate::scsi::xcopy::{CopyAborted, CopyEnd};
    let Some(a) = CopyAborted::from_sense_bytes(raw) else {
        return String::new();
    };
    let mut out = String::new();
    if let Some(n) = a.segment {
        out.push_str(&format!("; segment {n}"));
    }
    if !a.embedded.is_empty() {
        let from = match a.embedded_from {
            Some(CopyEnd::Source) => "the copy source",
            Some(CopyEnd::Destination) => "the copy destination",
            _ => "a copy device",
        };
        match Sense::parse(&a.embedded) {
            Ok(s) => out.push_str(&format!("; {from} said: {s}")),
            Err(_) => out.push_str(&format!("; {from} said: {}", hex::encode(&a.embedded))),
        }
    }
    out
}

/// A transport with a name, a retry policy and `-v` logging: the one path
/// every device command takes.
pub struct Scsi<T: Transport> {
    t: T,
    name: String,
    retry: RetryPolicy,
}

impl<T: Transport> Scsi<T> {
    pub fn new(t: T) -> Self {
        let name = t.describe();
        Scsi {
            t,
            name,
            retry: RetryPolicy::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn transport(&mut self) -> &mut T {
        &mut self.t
    }

    pub fn into_inner(self) -> T {
        self.t
    }

    pub(crate) fn transport_error(&self, source: TransportError) -> DeviceError {
        DeviceError::Transport {
            device: self.name.clone(),
            source,
        }
    }

    pub(crate) fn perr(&self, what: &'static str, source: ParseError) -> DeviceError {
        DeviceError::Parse {
            device: self.name.clone(),
            what,
            source,
        }
    }

    /// Run a command and return the response whatever its status (after
    /// the retry policy). Tape reads and `raw` want this.
    pub fn run_any(&mut self, req: Request) -> Result<Response, DeviceError> {
        log::debug!("{}: cdb {}", self.name, req.cdb);
        if req.dir == crate::transport::Direction::Out {
            log::trace!("{}: data-out {} bytes", self.name, req.buf.len());
        }
        let resp = self
            .retry
            .execute(&mut self.t, req)
            .map_err(|e| self.transport_error(e))?;
        log_response(&self.name, &resp);
        Ok(resp)
    }

    /// Run a command; anything but GOOD is an error.
    pub fn run(&mut self, req: Request) -> Result<Response, DeviceError> {
        let resp = self.run_any(req)?;
        if resp.status == Status::GOOD || resp.status == Status::CONDITION_MET {
            Ok(resp)
        } else {
            Err(self.check_error(&resp))
        }
    }

    /// The error for a response that did not end GOOD.
    pub fn check_error(&self, resp: &Response) -> DeviceError {
        DeviceError::Check {
            device: self.name.clone(),
            cdb: resp.cdb,
            status: resp.status,
            sense: Sense::parse(&resp.sense).ok().map(Box::new),
            raw_sense: resp.sense.clone(),
        }
    }

    /// Data-in of up to `alloc` bytes, truncated to what arrived.
    pub fn data_in(&mut self, cdb: Cdb, alloc: usize) -> Result<Vec<u8>, DeviceError> {
        let resp = self.run(Request::data_in(cdb, alloc))?;
        let n = resp.transferred();
        let mut buf = resp.buf;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn test_unit_ready(&mut self) -> Result<(), DeviceError> {
        self.run(Request::none(TestUnitReady.to_cdb())).map(|_| ())
    }

    pub fn inquiry(&mut self) -> Result<StandardInquiry, DeviceError> {
        let buf = self.data_in(Inquiry::standard(255).to_cdb(), 255)?;
        StandardInquiry::parse(&buf).map_err(|e| self.perr("INQUIRY", e))
    }

    /// A VPD page's raw bytes, re-asked with the full length if the first
    /// answer was cut short (SPC-4 7.8.1: PAGE LENGTH in bytes 2..4).
    pub fn vpd_raw(&mut self, page: VpdPage) -> Result<Vec<u8>, DeviceError> {
        let mut alloc = 252usize;
        loop {
            let buf = self.data_in(Inquiry::vpd(page.0, alloc as u16).to_cdb(), alloc)?;
            if buf.len() < 4 {
                return Err(self.perr(
                    "VPD page",
                    ParseError::Truncated {
                        what: "VPD page header",
                        need: 4,
                        have: buf.len(),
                    },
                ));
            }
            let full = 4 + u16::from_be_bytes([buf[2], buf[3]]) as usize;
            if full <= buf.len() || alloc >= u16::MAX as usize {
                return Ok(buf);
            }
            alloc = full.min(u16::MAX as usize);
        }
    }

    pub fn vpd<P: Wire>(&mut self, page: VpdPage) -> Result<P, DeviceError> {
        let buf = self.vpd_raw(page)?;
        P::parse(&buf).map_err(|e| self.perr("VPD page", e))
    }

    pub fn device_identification(&mut self) -> Result<DeviceIdentification, DeviceError> {
        self.vpd(VpdPage::DEVICE_IDENTIFICATION)
    }

    pub fn report_luns(&mut self) -> Result<LunList, DeviceError> {
        let mut alloc = 4096u32;
        loop {
            let buf = self.data_in(
                ReportLuns {
                    select_report: 0,
                    alloc_len: alloc,
                }
                .to_cdb(),
                alloc as usize,
            )?;
            let list = LunList::parse(&buf).map_err(|e| self.perr("REPORT LUNS", e))?;
            let full = list.list_length as usize + 8;
            if full <= buf.len() || alloc as usize >= full {
                return Ok(list);
            }
            alloc = full as u32;
        }
    }

    /// INQUIRY, and an error unless the device type is `expected`.
    pub fn expect_type(&mut self, expected: DeviceType) -> Result<StandardInquiry, DeviceError> {
        let inq = self.inquiry()?;
        // SPC-4 6.6.2: qualifier 3 means no LU can be there; 1Fh is
        // "unknown or no device type".
        if inq.peripheral_qualifier == 3 || inq.device_type == DeviceType::UNKNOWN {
            return Err(DeviceError::NoLogicalUnit {
                device: self.name.clone(),
            });
        }
        if inq.device_type != expected {
            return Err(DeviceError::WrongType {
                device: self.name.clone(),
                expected,
                found: inq.device_type,
            });
        }
        Ok(inq)
    }
}

fn log_response(name: &str, resp: &Response) {
    if resp.status != Status::GOOD {
        log::debug!(
            "{name}: status {} sense {}",
            resp.status,
            hex::encode(&resp.sense)
        );
        if let Ok(s) = Sense::parse(&resp.sense) {
            log::debug!("{name}: {s}");
        }
    } else if resp.dir == crate::transport::Direction::In {
        log::trace!("{name}: data-in {} bytes", resp.transferred());
    }
}

impl<T: Transport> fmt::Debug for Scsi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scsi").field("name", &self.name).finish()
    }
}
