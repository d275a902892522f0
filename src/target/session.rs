//! One connection: login, then the full feature phase (RFC 7143 ERL 0,
//! one connection per session). Commands run in the connection's thread,
//! one at a time; the LU lock is held only while one executes.
//!
//! Anything malformed (an opcode we do not take, a length beyond the
//! negotiated limits, a DataSN or offset out of order) ends this
//! connection only: ERL 0 recovers by dropping the connection (RFC 7143
//! 7.1.4.1, 7.2).

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;

use super::login::{Login, LoginOutcome, CMD_WINDOW};
use super::pdu::{
    pad4, segment_lengths, trailing_len, DataIn, DataOut, Header, IscsiOpcode, LogoutRequest,
    LogoutResponse, NopIn, NopOut, Pdu, PduError, R2t, Reject, RejectReason, ScsiCommand,
    ScsiResponse, TaskMgmtRequest, TaskMgmtResponse, TextRequest, TextResponse, TmfFunction,
    TmfResponse, BHS_LEN, RESERVED_TAG,
};
use super::server::Shared;
use super::text::{encode_pairs, parse_pairs, SessionParams, SessionType, MAX_TEXT_LEN};
use super::SharedLu;
use crate::lu::{Completion, Nexus};
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::spc::{Lun, LunList, ReportLuns};
use crate::scsi::{CdbCodec, Status, Wire};

/// Largest Expected Data Transfer Length served; beyond it the command
/// ends in CHECK CONDITION and nothing is allocated.
pub const MAX_TRANSFER: u32 = 64 << 20;

/// Bytes of writes solicited with R2Ts at once, per connection.
const SOLICIT_BUDGET: usize = MAX_TRANSFER as usize;

/// Time a connection has to complete its login.
const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Write commands waiting for data at once, per connection.
const MAX_PENDING_WRITES: usize = 64;

/// DATA PHASE ERROR and DATA OFFSET ERROR (SPC-4 Annex D; RFC 7143
/// 11.4.7.2 names them for iSCSI sequence errors).
const DATA_PHASE_ERROR: Asc = Asc(0x4b00);
const DATA_OFFSET_ERROR: Asc = Asc(0x4b05);

/// INVALID FIELD IN COMMAND INFORMATION UNIT (SPC-4 Annex D; FCP-4 / SAM
/// wording used by libiscsi's residual tests).
const INVALID_FIELD_IN_IU: Asc = Asc(0x0e03);

fn protocol(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Serial number arithmetic, RFC 1982 (RFC 7143 4.2.2.1): a < b.
fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// A write waiting for its data (RFC 7143 3.2.4.2, 11.7, 11.8).
struct WriteTask {
    lun: u64,
    cdb: [u8; 16],
    edtl: u32,
    /// Bytes the command takes: min(EDTL, SCSI transfer length).
    want: usize,
    /// Residual to report, when EDTL and the SCSI transfer length differ.
    residual: Option<(bool, u32)>,
    buf: Vec<u8>,
    /// Unsolicited Data-Out may still come (the command had F=0).
    unsolicited_open: bool,
    /// DataSN the next Data-Out of the current sequence carries.
    next_data_sn: u32,
    /// The outstanding R2T: its TTT and where its burst ends.
    r2t: Option<(u32, usize)>,
    r2t_sn: u32,
}

/// Block size and type of a LU, learnt once per connection to size
/// transfers for residuals (SAM-5 5.4.2).
#[derive(Clone, Copy)]
struct Geometry {
    disk: bool,
    block_size: Option<u32>,
}

/// One connection from accept to close.
pub(crate) struct Connection<'a> {
    shared: &'a Shared,
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    /// `host:port` the initiator reached us at (for TargetAddress).
    portal: String,
    params: SessionParams,
    session_type: SessionType,
    nexus: Nexus,
    /// Index of the target in `shared.targets` (normal sessions).
    target: Option<usize>,
    exp_cmd_sn: u32,
    stat_sn: u32,
    writes: HashMap<u32, WriteTask>,
    /// Writes waiting for R2Ts, in order; the front ones (within
    /// SOLICIT_BUDGET) are solicited.
    r2t_queue: VecDeque<u32>,
    next_ttt: u32,
    geometry: HashMap<u64, Geometry>,
    /// Text Request data with the C bit, waiting for the rest.
    pending_text: Vec<u8>,
}

impl<'a> Connection<'a> {
    pub(crate) fn new(shared: &'a Shared, stream: TcpStream) -> io::Result<Connection<'a>> {
        let local = stream.local_addr()?;
        let portal = match local {
            std::net::SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let writer = BufWriter::with_capacity(256 * 1024, stream.try_clone()?);
        Ok(Connection {
            shared,
            reader: BufReader::with_capacity(64 * 1024, stream),
            writer,
            portal,
            params: SessionParams::new(&shared.login.limits),
            session_type: SessionType::Normal,
            nexus: Nexus::default(),
            target: None,
            exp_cmd_sn: 0,
            stat_sn: 0,
            writes: HashMap::new(),
            r2t_queue: VecDeque::new(),
            next_ttt: 1,
            geometry: HashMap::new(),
            pending_text: Vec::new(),
        })
    }

    /// Read one PDU; a data segment beyond `max_data` is refused before
    /// anything is allocated for it.
    fn read_pdu(&mut self, max_data: usize) -> io::Result<Result<Pdu, (PduError, [u8; BHS_LEN])>> {
        let mut bhs = [0u8; BHS_LEN];
        self.reader.read_exact(&mut bhs)?;
        let (_, data_len) = segment_lengths(&bhs);
        if data_len > max_data {
            return Err(protocol(format!(
                "{}: data segment of {data_len} bytes, limit {max_data}",
                IscsiOpcode(bhs[0] & 0x3f)
            )));
        }
        // AHS at most 255 words; data bounded just above.
        let mut rest = vec![0u8; trailing_len(&bhs)];
        self.reader.read_exact(&mut rest)?;
        Ok(Pdu::from_owned(&bhs, rest, max_data).map_err(|e| (e, bhs)))
    }

    fn send(&mut self, header: Header, data: &[u8]) -> io::Result<()> {
        let bhs = header.to_bhs(0, data.len());
        self.writer.write_all(&bhs)?;
        self.writer.write_all(data)?;
        let pad = pad4(data.len()) - data.len();
        self.writer.write_all(&[0u8; 3][..pad])
    }

    fn max_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn.wrapping_add(CMD_WINDOW - 1)
    }

    /// The StatSN for a status-bearing response, advancing it.
    fn next_stat_sn(&mut self) -> u32 {
        let s = self.stat_sn;
        self.stat_sn = s.wrapping_add(1);
        s
    }

    pub(crate) fn run(&mut self) -> io::Result<()> {
        // A connection that never finishes its login does not keep its
        // thread forever; after login the initiator may idle (NOP-Out
        // pings are its business).
        self.reader
            .get_ref()
            .set_read_timeout(Some(LOGIN_TIMEOUT))?;
        if !self.login()? {
            return Ok(());
        }
        self.reader.get_ref().set_read_timeout(None)?;
        let served = self.serve();
        self.release_nexus();
        served
    }

    /// One connection is the whole session at ERL 0, so when it ends the
    /// I_T nexus ends: the LUs drop what they held for it (SPC-4 6.4.3).
    fn release_nexus(&self) {
        let Some(t) = self.target.and_then(|i| self.shared.targets.get(i)) else {
            return;
        };
        for (_, lu) in &t.luns {
            if let Ok(mut g) = lu.lock() {
                g.nexus_lost(&self.nexus);
            }
        }
    }

    /// The full feature phase, until logout or the connection fails.
    fn serve(&mut self) -> io::Result<()> {
        loop {
            let max = self.params.target_mrdsl as usize;
            let pdu = match self.read_pdu(max)? {
                Ok(p) => p,
                Err((e, bhs)) => {
                    let reason = match e {
                        PduError::UnknownOpcode(_) => RejectReason::COMMAND_NOT_SUPPORTED,
                        _ => RejectReason::PROTOCOL_ERROR,
                    };
                    self.reject(reason, &bhs)?;
                    self.writer.flush()?;
                    return Err(protocol(e.to_string()));
                }
            };
            let done = self.dispatch(pdu)?;
            self.writer.flush()?;
            if done {
                return Ok(());
            }
        }
    }

    /// Returns true when the connection is to close (logout).
    fn dispatch(&mut self, pdu: Pdu) -> io::Result<bool> {
        let bhs = pdu.bhs();
        match pdu.header {
            Header::ScsiCommand(h) => self.scsi_command(h, pdu.data, &bhs)?,
            Header::DataOut(h) => self.data_out(h, pdu.data)?,
            Header::NopOut(h) => self.nop(h, pdu.data)?,
            Header::TaskMgmtRequest(h) => self.task_mgmt(h)?,
            Header::TextRequest(h) => self.text(h, pdu.data)?,
            Header::LogoutRequest(h) => {
                self.logout(h)?;
                return Ok(true);
            }
            other => {
                // A Login in full feature phase, or a PDU only targets send.
                self.reject(RejectReason::PROTOCOL_ERROR, &bhs)?;
                self.writer.flush()?;
                return Err(protocol(format!("unexpected {}", other.opcode())));
            }
        }
        Ok(false)
    }

    fn reject(&mut self, reason: RejectReason, bhs: &[u8; BHS_LEN]) -> io::Result<()> {
        let h = Header::Reject(Reject {
            reason,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            data_sn: 0,
        });
        self.send(h, bhs)
    }

    /// The login phase; false when the login was refused or the
    /// initiator went away.
    fn login(&mut self) -> io::Result<bool> {
        let mut login = Login::new(self.shared.login.limits.clone(), self.shared.tsih());
        loop {
            let pdu = match self.read_pdu(MAX_TEXT_LEN)? {
                Ok(p) => p,
                Err((e, _)) => return Err(protocol(format!("during login: {e}"))),
            };
            let Header::LoginRequest(req) = &pdu.header else {
                return Err(protocol(format!(
                    "{} before login completed",
                    pdu.header.opcode()
                )));
            };
            let (resp, outcome) = login.step(&self.shared.login, req, &pdu.data);
            let Header::LoginResponse(rh) = &resp.header else {
                unreachable!("login answers with a Login Response")
            };
            self.send(Header::LoginResponse(rh.clone()), &resp.data)?;
            self.writer.flush()?;
            match outcome {
                LoginOutcome::Continue => {}
                LoginOutcome::Refused { status, reason } => {
                    log::warn!(
                        "iSCSI login from {} refused ({:04x}): {reason}",
                        login.initiator.as_deref().unwrap_or("?"),
                        status
                    );
                    return Ok(false);
                }
                LoginOutcome::FullFeature => break,
            }
        }
        self.params = login.neg.params.clone();
        self.session_type = login.session_type;
        self.exp_cmd_sn = login.exp_cmd_sn;
        self.stat_sn = login.stat_sn;
        let initiator = login.initiator.clone().unwrap_or_default();
        let target = login.target.clone().unwrap_or_default();
        if self.session_type == SessionType::Normal {
            self.target = self.shared.targets.iter().position(|t| t.name == target);
        }
        log::info!(
            "iSCSI {} session: {initiator} (ISID {:012x}) logged in{}",
            self.session_type,
            login.isid,
            if target.is_empty() {
                String::new()
            } else {
                format!(" to {target}")
            }
        );
        self.nexus = Nexus {
            initiator,
            isid: login.isid,
            target,
        };
        Ok(true)
    }

    /// CmdSN check for a non-immediate request (RFC 7143 4.2.2.1): the
    /// next one in order is taken; anything else is outside what we can
    /// accept on one connection and is dropped silently.
    fn take_cmd_sn(&mut self, immediate: bool, cmd_sn: u32) -> bool {
        if immediate {
            return true;
        }
        if cmd_sn == self.exp_cmd_sn {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            true
        } else {
            log::debug!(
                "iSCSI {}: CmdSN {cmd_sn} outside the window [{}, {}], ignored",
                self.nexus.initiator,
                self.exp_cmd_sn,
                self.max_cmd_sn()
            );
            false
        }
    }

    fn nop(&mut self, h: NopOut, data: Vec<u8>) -> io::Result<()> {
        if h.itt == RESERVED_TAG {
            // 11.18.1: a NOP-Out that wants no answer (or answers our
            // ping; we send none).
            return Ok(());
        }
        if !self.take_cmd_sn(h.immediate, h.cmd_sn) {
            return Ok(());
        }
        // 11.19: echo the ping data, within what the initiator accepts.
        let n = data.len().min(self.params.initiator_mrdsl as usize);
        let resp = Header::NopIn(NopIn {
            lun: h.lun,
            itt: h.itt,
            ttt: RESERVED_TAG,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        });
        self.send(resp, &data[..n])
    }

    fn logout(&mut self, h: LogoutRequest) -> io::Result<()> {
        let _ = self.take_cmd_sn(h.immediate, h.cmd_sn);
        self.writes.clear();
        self.r2t_queue.clear();
        // 11.15.1: 0 = closed; 2 = connection recovery not supported (ERL 0).
        let response = if h.reason == 2 { 2 } else { 0 };
        let resp = Header::LogoutResponse(LogoutResponse {
            response,
            itt: h.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            time2wait: 0,
            time2retain: 0,
        });
        self.send(resp, &[])?;
        log::info!("iSCSI {}: logged out", self.nexus.initiator);
        Ok(())
    }

    /// Text Request in full feature phase: SendTargets (RFC 7143 12.3)
    /// and MaxRecvDataSegmentLength; anything else is refused.
    fn text(&mut self, h: TextRequest, data: Vec<u8>) -> io::Result<()> {
        if !self.take_cmd_sn(h.immediate, h.cmd_sn) {
            return Ok(());
        }
        if self.pending_text.len() + data.len() > MAX_TEXT_LEN {
            return Err(protocol("text request too long"));
        }
        self.pending_text.extend_from_slice(&data);
        if h.cont {
            // 11.10.2: ask for the rest with an empty response.
            let resp = Header::TextResponse(TextResponse {
                final_bit: false,
                cont: false,
                lun: h.lun,
                itt: h.itt,
                ttt: 1,
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
            });
            return self.send(resp, &[]);
        }
        let text = std::mem::take(&mut self.pending_text);
        let pairs = parse_pairs(&text).map_err(|e| protocol(format!("text request: {e}")))?;
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &pairs {
            match k.as_str() {
                "SendTargets" => {
                    let current = self.target.map(|i| self.shared.targets[i].name.clone());
                    for t in &self.shared.targets {
                        let wanted = match v.as_str() {
                            "All" => true,
                            "" => current.as_deref() == Some(t.name.as_str()),
                            name => name == t.name,
                        };
                        // 12.3: in a normal session only what it may see.
                        let visible = self.session_type == SessionType::Discovery
                            || current.as_deref() == Some(t.name.as_str());
                        if wanted && visible {
                            out.push(("TargetName".into(), t.name.clone()));
                            out.push(("TargetAddress".into(), format!("{},1", self.portal)));
                        }
                    }
                }
                "MaxRecvDataSegmentLength" if self.session_type == SessionType::Normal => {
                    match super::text::parse_number(v).filter(|n| (512..1 << 24).contains(n)) {
                        Some(n) => {
                            self.params.initiator_mrdsl = n as u32;
                            out.push((k.clone(), self.params.target_mrdsl.to_string()));
                        }
                        None => out.push((k.clone(), "Reject".into())),
                    }
                }
                _ if super::text::is_login_key(k) => out.push((k.clone(), "Reject".into())),
                _ => out.push((k.clone(), "NotUnderstood".into())),
            }
        }
        let mut bytes = encode_pairs(&out);
        // One response PDU: a list beyond the initiator's segment size is
        // cut at a pair boundary (we serve a handful of targets).
        let max = self.params.initiator_mrdsl as usize;
        if bytes.len() > max {
            let cut = bytes[..max]
                .iter()
                .rposition(|&b| b == 0)
                .map_or(0, |i| i + 1);
            bytes.truncate(cut);
            log::warn!("iSCSI text response cut to {cut} bytes");
        }
        let resp = Header::TextResponse(TextResponse {
            final_bit: true,
            cont: false,
            lun: h.lun,
            itt: h.itt,
            ttt: RESERVED_TAG,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        });
        self.send(resp, &bytes)
    }

    fn lu(&self, lun: u64) -> Option<(u64, SharedLu)> {
        let t = &self.shared.targets[self.target?];
        let index = Lun(lun).index()? as u64;
        t.luns
            .iter()
            .find(|(l, _)| *l == index)
            .map(|(l, lu)| (*l, lu.clone()))
    }

    fn task_mgmt(&mut self, h: TaskMgmtRequest) -> io::Result<()> {
        if !self.take_cmd_sn(h.immediate, h.cmd_sn) {
            return Ok(());
        }
        let mut close = false;
        let response = match h.function {
            TmfFunction::ABORT_TASK => {
                if self.writes.remove(&h.rtt).is_some() {
                    self.r2t_queue.retain(|i| *i != h.rtt);
                    TmfResponse::FUNCTION_COMPLETE
                } else if !sn_lt(h.ref_cmd_sn, self.exp_cmd_sn)
                    && !sn_lt(self.max_cmd_sn(), h.ref_cmd_sn)
                    && sn_lt(h.ref_cmd_sn, h.cmd_sn)
                {
                    // 11.5.1 b): not received yet but within the window and
                    // before this request: taken as received and aborted.
                    TmfResponse::FUNCTION_COMPLETE
                } else {
                    TmfResponse::TASK_DOES_NOT_EXIST
                }
            }
            TmfFunction::ABORT_TASK_SET
            | TmfFunction::CLEAR_TASK_SET
            | TmfFunction::LOGICAL_UNIT_RESET => {
                if self.lu(h.lun).is_none() {
                    TmfResponse::LUN_DOES_NOT_EXIST
                } else {
                    let gone: Vec<u32> = self
                        .writes
                        .iter()
                        .filter(|(_, t)| t.lun == h.lun)
                        .map(|(i, _)| *i)
                        .collect();
                    for itt in gone {
                        self.writes.remove(&itt);
                        self.r2t_queue.retain(|i| *i != itt);
                    }
                    TmfResponse::FUNCTION_COMPLETE
                }
            }
            TmfFunction::TARGET_WARM_RESET | TmfFunction::TARGET_COLD_RESET => {
                self.writes.clear();
                self.r2t_queue.clear();
                // 11.5.1: a cold reset also drops the connection.
                close = h.function == TmfFunction::TARGET_COLD_RESET;
                TmfResponse::FUNCTION_COMPLETE
            }
            TmfFunction::TASK_REASSIGN => TmfResponse::REASSIGNMENT_NOT_SUPPORTED,
            _ => TmfResponse::NOT_SUPPORTED,
        };
        log::info!(
            "iSCSI {}: {} (ITT {:#x}): {}",
            self.nexus.initiator,
            h.function,
            h.rtt,
            response
        );
        let resp = Header::TaskMgmtResponse(TaskMgmtResponse {
            response,
            itt: h.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        });
        self.send(resp, &[])?;
        self.pump_r2t()?;
        if close {
            self.writer.flush()?;
            return Err(protocol("TARGET COLD RESET"));
        }
        Ok(())
    }

    fn scsi_command(
        &mut self,
        h: ScsiCommand,
        data: Vec<u8>,
        bhs: &[u8; BHS_LEN],
    ) -> io::Result<()> {
        if !self.take_cmd_sn(h.immediate, h.cmd_sn) {
            return Ok(());
        }
        if self.session_type == SessionType::Discovery {
            // 4.3: a discovery session carries no SCSI commands.
            return self.reject(RejectReason::PROTOCOL_ERROR, bhs);
        }
        let p = &self.params;
        // 13.11, 13.14: immediate data only if agreed, within FirstBurstLength and EDTL.
        if !data.is_empty()
            && (!p.immediate_data
                || data.len() > p.first_burst_length as usize
                || data.len() > h.edtl as usize
                || !h.write)
        {
            return Err(protocol("immediate data not allowed here"));
        }
        if !h.final_bit && (p.initial_r2t || !h.write) {
            return Err(protocol("unsolicited Data-Out announced but not allowed"));
        }
        if h.read && h.write {
            return self.respond_check(
                &h,
                Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB),
                None,
            );
        }
        if h.edtl > MAX_TRANSFER {
            log::warn!(
                "iSCSI {}: Expected Data Transfer Length {} refused (limit {MAX_TRANSFER})",
                self.nexus.initiator,
                h.edtl
            );
            return self.respond_check(
                &h,
                Sense::new(SenseKey::ILLEGAL_REQUEST, INVALID_FIELD_IN_IU),
                None,
            );
        }
        if !h.write || self.lu(h.lun).is_none() {
            // Writes to a LUN that is not there are answered at once; any
            // unsolicited data that follows is dropped (unknown ITT).
            return self.execute(h.lun, h.itt, &h.cdb, h.edtl, &[], None);
        }
        // SAM-5 5.4.2, FCP-4 9.4.2 a): when the SCSI transfer length and
        // the EDTL differ, process the command but move no data beyond the
        // smaller one, and report the difference as residual.
        let mut cdb = h.cdb;
        let mut want = h.edtl as usize;
        let mut residual = None;
        if let Some((field, blocks, bs)) = self.write_geometry(h.lun, &h.cdb) {
            let spdtl = blocks * bs as u64;
            let edtl = h.edtl as u64;
            if spdtl < edtl {
                want = spdtl as usize;
                residual = Some((false, (edtl - spdtl) as u32));
            } else if spdtl > edtl {
                if field.len() == 1 {
                    // WRITE(6): 0 blocks means 256, so it cannot be cut to 0.
                    return self.respond_check(
                        &h,
                        Sense::new(SenseKey::ILLEGAL_REQUEST, INVALID_FIELD_IN_IU),
                        Some((true, (spdtl - edtl).min(u32::MAX as u64) as u32)),
                    );
                }
                // Whole blocks within the EDTL only.
                let fit = edtl / bs as u64;
                let width = field.len();
                cdb[field].copy_from_slice(&fit.to_be_bytes()[8 - width..]);
                want = (fit * bs as u64) as usize;
                residual = Some((true, (spdtl - edtl).min(u32::MAX as u64) as u32));
            }
        }
        if self.writes.len() >= MAX_PENDING_WRITES {
            return Err(protocol("too many writes waiting for data"));
        }
        if self.writes.contains_key(&h.itt) {
            return Err(protocol("ITT already in use"));
        }
        let task = WriteTask {
            lun: h.lun,
            cdb,
            edtl: h.edtl,
            want,
            residual,
            buf: data,
            unsolicited_open: !h.final_bit,
            next_data_sn: 0,
            r2t: None,
            r2t_sn: 0,
        };
        if !task.unsolicited_open && task.buf.len() >= task.want {
            return self.execute(h.lun, h.itt, &cdb, h.edtl, &task.buf[..want], residual);
        }
        let needs_r2t = !task.unsolicited_open;
        self.writes.insert(h.itt, task);
        if needs_r2t {
            self.r2t_queue.push_back(h.itt);
            self.pump_r2t()?;
        }
        Ok(())
    }

    /// Send R2Ts to the writes at the front of the queue: as many writes
    /// as fit in [`SOLICIT_BUDGET`] bytes (at least one), each with one R2T
    /// outstanding (MaxOutstandingR2T = 1). Memory for solicited data is
    /// bounded by the budget, and several writes in flight overlap their
    /// round trips.
    fn pump_r2t(&mut self) -> io::Result<()> {
        let writes = &self.writes;
        self.r2t_queue.retain(|i| writes.contains_key(i));
        let mut budget = 0usize;
        let mut due = Vec::new();
        for (k, itt) in self.r2t_queue.iter().enumerate() {
            let t = &self.writes[itt];
            if k > 0 && budget + t.want > SOLICIT_BUDGET {
                break;
            }
            budget += t.want;
            if t.r2t.is_none() && t.buf.len() < t.want {
                due.push(*itt);
            }
        }
        for itt in due {
            self.send_r2t(itt)?;
        }
        Ok(())
    }

    fn send_r2t(&mut self, itt: u32) -> io::Result<()> {
        let max_burst = self.params.max_burst_length as usize;
        let ttt = self.next_ttt;
        let Some(t) = self.writes.get_mut(&itt) else {
            return Ok(());
        };
        let offset = t.buf.len();
        let len = t.want.saturating_sub(offset).min(max_burst);
        t.buf.reserve_exact(len);
        t.r2t = Some((ttt, offset + len));
        t.next_data_sn = 0;
        let r2t_sn = t.r2t_sn;
        t.r2t_sn = t.r2t_sn.wrapping_add(1);
        let lun = t.lun;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        let h = Header::R2t(R2t {
            lun,
            itt,
            ttt,
            // 11.8: StatSN is not advanced by R2T.
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            r2t_sn,
            buffer_offset: offset as u32,
            desired_length: len as u32,
        });
        self.send(h, &[])
    }

    fn data_out(&mut self, h: DataOut, data: Vec<u8>) -> io::Result<()> {
        let first_burst = self.params.first_burst_length as usize;
        let Some(t) = self.writes.get_mut(&h.itt) else {
            // Data for a command already answered or aborted: drop it.
            log::debug!("iSCSI Data-Out for unknown ITT {:#x} ignored", h.itt);
            return Ok(());
        };
        let solicited = h.ttt != RESERVED_TAG;
        let limit = if solicited {
            match t.r2t {
                Some((ttt, end)) if ttt == h.ttt => end,
                _ => return Err(protocol("Data-Out with an unknown Target Transfer Tag")),
            }
        } else if t.unsolicited_open {
            first_burst.min(t.edtl as usize)
        } else {
            return Err(protocol("unsolicited Data-Out after the first burst"));
        };
        // 11.7.5, 13.18/13.19 (in order): DataSN and offset must be the
        // next ones. At ERL 0 there is no recovery within the command: it
        // ends in CHECK CONDITION (11.4.7.2), the rest of its data is dropped.
        let fault = if h.data_sn != t.next_data_sn {
            Some((
                DATA_PHASE_ERROR,
                format!("DataSN {} where {} was due", h.data_sn, t.next_data_sn),
            ))
        } else if h.buffer_offset as usize != t.buf.len() {
            Some((
                DATA_OFFSET_ERROR,
                format!("offset {} where {} was due", h.buffer_offset, t.buf.len()),
            ))
        } else {
            None
        };
        if let Some((asc, why)) = fault {
            log::warn!(
                "iSCSI {}: Data-Out {why}; command aborted",
                self.nexus.initiator
            );
            self.writes.remove(&h.itt);
            self.r2t_queue.retain(|i| *i != h.itt);
            let c = Completion::check(Sense::new(SenseKey::ABORTED_COMMAND, asc));
            self.scsi_response(h.itt, &c, false, false, 0, 0)?;
            return self.pump_r2t();
        }
        if t.buf.len() + data.len() > limit {
            return Err(protocol("Data-Out beyond the burst"));
        }
        if t.buf.is_empty() && t.want <= data.len() {
            // The whole write in one PDU: keep its buffer.
            t.buf = data;
        } else {
            t.buf.extend_from_slice(&data);
        }
        t.next_data_sn = t.next_data_sn.wrapping_add(1);
        if !h.final_bit {
            return Ok(());
        }
        t.next_data_sn = 0;
        if solicited {
            if t.buf.len() != limit {
                return Err(protocol("R2T burst ended short"));
            }
            t.r2t = None;
        } else {
            t.unsolicited_open = false;
        }
        if t.buf.len() >= t.want {
            let t = self.writes.remove(&h.itt).expect("task present");
            self.r2t_queue.retain(|i| *i != h.itt);
            self.execute(t.lun, h.itt, &t.cdb, t.edtl, &t.buf[..t.want], t.residual)?;
        } else if !solicited {
            self.r2t_queue.push_back(h.itt);
        }
        self.pump_r2t()
    }

    /// A CHECK CONDITION answered by the target itself (nothing executed).
    fn respond_check(
        &mut self,
        h: &ScsiCommand,
        sense: Sense,
        residual: Option<(bool, u32)>,
    ) -> io::Result<()> {
        let c = Completion::check(sense);
        let (overflow, amount) = residual.unwrap_or((false, 0));
        self.scsi_response(
            h.itt,
            &c,
            residual.is_some() && overflow,
            residual.is_some() && !overflow && amount > 0,
            amount,
            0,
        )
    }

    fn scsi_response(
        &mut self,
        itt: u32,
        c: &Completion,
        overflow: bool,
        underflow: bool,
        residual: u32,
        exp_data_sn: u32,
    ) -> io::Result<()> {
        // 11.4.7: the data segment is SenseLength + sense.
        let mut data = Vec::new();
        if !c.sense.is_empty() {
            let n = c.sense.len().min(u16::MAX as usize);
            data.extend_from_slice(&(n as u16).to_be_bytes());
            data.extend_from_slice(&c.sense[..n]);
        }
        let h = Header::ScsiResponse(ScsiResponse {
            overflow,
            underflow,
            response: 0,
            status: c.status.0,
            itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            exp_data_sn,
            residual: if overflow || underflow { residual } else { 0 },
        });
        self.send(h, &data)
    }

    /// The real CDB length from the group code (SPC-4 4.2.5.1).
    fn cdb_len(cdb: &[u8; 16]) -> usize {
        match cdb[0] >> 5 {
            0 => 6,
            1 | 2 => 10,
            5 => 12,
            _ => 16,
        }
    }

    /// Learn a LU's type and block size (INQUIRY, READ CAPACITY(10)) once.
    fn geometry(&mut self, lun: u64, lu: &SharedLu) -> Geometry {
        if let Some(g) = self.geometry.get(&lun) {
            return *g;
        }
        let mut g = Geometry {
            disk: false,
            block_size: None,
        };
        let mut guard = lu.lock().unwrap_or_else(|p| p.into_inner());
        let mut inq = [0u8; 36];
        let c = guard.execute_for(&self.nexus, &[0x12, 0, 0, 0, 36, 0], &[], &mut inq);
        if c.status == Status::GOOD && c.data_in_len >= 1 && inq[0] == 0x00 {
            g.disk = true;
            let mut cap = [0u8; 8];
            let c = guard.execute_for(
                &self.nexus,
                &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                &[],
                &mut cap,
            );
            if c.status == Status::GOOD && c.data_in_len >= 8 {
                let bs = u32::from_be_bytes([cap[4], cap[5], cap[6], cap[7]]);
                g.block_size = (bs > 0).then_some(bs);
            }
        }
        drop(guard);
        self.geometry.insert(lun, g);
        g
    }

    /// The data-in length the CDB asks for (SAM-5 5.4.2), where it can be
    /// told from the CDB: allocation lengths, and block counts of disk READs.
    fn lu_transfer_length(&mut self, lun: u64, cdb: &[u8; 16]) -> Option<u64> {
        let (_, lu) = self.lu(lun)?;
        let be = |r: std::ops::Range<usize>| cdb[r].iter().fold(0u64, |a, &b| (a << 8) | b as u64);
        let blocks = |g: Geometry, n: u64| g.block_size.map(|bs| n * bs as u64);
        let op = cdb[0];
        match op {
            // Allocation lengths (SPC-4 / SBC-3 CDB layouts).
            0x03 | 0x1a => Some(cdb[4] as u64),
            0x12 | 0x1c => Some(be(3..5)),
            0x5a | 0x4d | 0x5e => Some(be(7..9)),
            0xa0 | 0xa3 => Some(be(6..10)),
            0x9e | 0x84 => Some(be(10..14)),
            0x25 => Some(8),
            0x08 | 0x28 | 0xa8 | 0x88 => {
                let n = match op {
                    0x08 => {
                        if cdb[4] == 0 {
                            256
                        } else {
                            cdb[4] as u64
                        }
                    }
                    0x28 => be(7..9),
                    0xa8 => be(6..10),
                    _ => be(10..14),
                };
                let g = self.geometry(lun, &lu);
                if !g.disk {
                    return None;
                }
                blocks(g, n)
            }
            _ => None,
        }
    }

    /// For a disk write (WRITE and WRITE AND VERIFY 6/10/12/16, SBC-3):
    /// the CDB bytes of its TRANSFER LENGTH, the blocks and the block size.
    fn write_geometry(
        &mut self,
        lun: u64,
        cdb: &[u8; 16],
    ) -> Option<(std::ops::Range<usize>, u64, u32)> {
        let field = match cdb[0] {
            0x0a => 4..5,
            0x2a | 0x2e => 7..9,
            0xaa | 0xae => 6..10,
            0x8a | 0x8e => 10..14,
            _ => return None,
        };
        let (_, lu) = self.lu(lun)?;
        let g = self.geometry(lun, &lu);
        if !g.disk {
            return None;
        }
        let mut blocks = cdb[field.clone()]
            .iter()
            .fold(0u64, |a, &b| (a << 8) | b as u64);
        if cdb[0] == 0x0a && blocks == 0 {
            blocks = 256;
        }
        Some((field, blocks, g.block_size?))
    }

    /// Run one command at its LU and send Data-In and status.
    fn execute(
        &mut self,
        lun: u64,
        itt: u32,
        cdb16: &[u8; 16],
        edtl: u32,
        data_out: &[u8],
        write_residual: Option<(bool, u32)>,
    ) -> io::Result<()> {
        let cdb = &cdb16[..Self::cdb_len(cdb16)];
        let (c, data_in) = if cdb[0] == 0xa0 {
            self.report_luns(cdb, edtl)
        } else {
            match self.lu(lun) {
                None => self.missing_lun(cdb, edtl),
                Some((_, lu)) => {
                    let len = if data_out.is_empty() && write_residual.is_none() {
                        let spdtl = self
                            .lu_transfer_length(lun, cdb16)
                            .filter(|n| *n <= MAX_TRANSFER as u64)
                            .unwrap_or(0);
                        (edtl as u64).max(spdtl) as usize
                    } else {
                        0
                    };
                    let mut data_in = vec![0u8; len];
                    let c = {
                        let mut guard = lu.lock().unwrap_or_else(|p| p.into_inner());
                        guard.execute_for(&self.nexus, cdb, data_out, &mut data_in)
                    };
                    (c, data_in)
                }
            }
        };
        self.complete(lun, itt, edtl, c, &data_in, write_residual)
    }

    /// REPORT LUNS (SPC-4 6.33), answered by the target for every LUN
    /// (SAM-5 4.6.3: the inventory is the target's, not one unit's).
    fn report_luns(&self, cdb: &[u8], edtl: u32) -> (Completion, Vec<u8>) {
        let invalid = Completion::check(Sense::new(
            SenseKey::ILLEGAL_REQUEST,
            Asc::INVALID_FIELD_IN_CDB,
        ));
        let Ok(q) = ReportLuns::parse(cdb) else {
            return (invalid, Vec::new());
        };
        // 6.33.1: an allocation length below 16 is an error.
        if q.alloc_len < 16 {
            return (invalid, Vec::new());
        }
        let luns = match q.select_report {
            // Every LUN we have is an ordinary logical unit.
            0x00 | 0x02 => self
                .target
                .map(|i| {
                    self.shared.targets[i]
                        .luns
                        .iter()
                        .map(|(l, _)| Lun::from_index(*l as u16))
                        .collect()
                })
                .unwrap_or_default(),
            // No well-known logical units.
            0x01 => Vec::new(),
            _ => return (invalid, Vec::new()),
        };
        let mut bytes = LunList::new(luns).to_vec();
        bytes.truncate(q.alloc_len as usize);
        let n = bytes.len();
        bytes.resize(n.max(edtl as usize), 0);
        (Completion::good(n), bytes)
    }

    /// Commands to a LUN this target does not have (SPC-4 6.6.2, SAM-5
    /// 5.10: INQUIRY answers peripheral qualifier 011b; REQUEST SENSE the
    /// reason; anything else CHECK CONDITION LOGICAL UNIT NOT SUPPORTED).
    fn missing_lun(&self, cdb: &[u8], edtl: u32) -> (Completion, Vec<u8>) {
        let not_supported = Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LUN_NOT_SUPPORTED);
        let reply = |bytes: Vec<u8>| {
            let n = bytes.len();
            let mut v = bytes;
            v.resize(n.max(edtl as usize), 0);
            (Completion::good(n), v)
        };
        match cdb[0] {
            0x12 if cdb[1] & 0x01 == 0 => {
                let mut inq = vec![0u8; 36];
                inq[0] = 0x7f; // 011b, device type 1Fh
                inq[2] = 0x06;
                inq[3] = 0x02;
                inq[4] = 31;
                inq[8..16].copy_from_slice(b"SANMOVER");
                inq[16..32].copy_from_slice(b"NO SUCH LUN     ");
                inq[32..36].copy_from_slice(b"0001");
                let alloc = u16::from_be_bytes([cdb[3], cdb[4]]) as usize;
                inq.truncate(alloc);
                reply(inq)
            }
            0x03 => {
                let mut bytes = not_supported.to_fixed();
                bytes.truncate(cdb[4] as usize);
                reply(bytes)
            }
            _ => (Completion::check(not_supported), Vec::new()),
        }
    }

    /// Data-In PDUs and status for a completed command (RFC 7143 11.7,
    /// 11.4), with residuals against the EDTL (11.4.5).
    fn complete(
        &mut self,
        lun: u64,
        itt: u32,
        edtl: u32,
        c: Completion,
        data_in: &[u8],
        write_residual: Option<(bool, u32)>,
    ) -> io::Result<()> {
        let produced = c.data_in_len.min(data_in.len()) as u64;
        let edtl64 = edtl as u64;
        let sent = produced.min(edtl64) as usize;
        let (overflow, underflow, residual) = if let Some((over, n)) = write_residual {
            (over, !over, n)
        } else if produced > edtl64 {
            (true, false, (produced - edtl64) as u32)
        } else if produced < edtl64 && !data_in.is_empty() {
            (false, true, (edtl64 - produced) as u32)
        } else {
            (false, false, 0)
        };
        if sent == 0 {
            return self.scsi_response(itt, &c, overflow, underflow, residual, 0);
        }
        let seg = (self.params.initiator_mrdsl as usize).max(512);
        let burst = self.params.max_burst_length as usize;
        let collapse = c.sense.is_empty();
        let mut offset = 0usize;
        let mut data_sn = 0u32;
        while offset < sent {
            // 13.13: a Data-In sequence (F ends it) holds at most
            // MaxBurstLength, so no PDU crosses a burst boundary.
            let burst = burst.max(1);
            let n = seg.min(sent - offset).min(burst - offset % burst);
            let last = offset + n == sent;
            let burst_end = (offset + n) % burst == 0;
            let with_status = last && collapse;
            let h = Header::DataIn(DataIn {
                final_bit: last || burst_end,
                ack: false,
                overflow: with_status && overflow,
                underflow: with_status && underflow,
                status: with_status.then_some(c.status.0),
                lun,
                itt,
                ttt: RESERVED_TAG,
                stat_sn: if with_status {
                    self.next_stat_sn()
                } else {
                    self.stat_sn
                },
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
                data_sn,
                buffer_offset: offset as u32,
                residual: if with_status { residual } else { 0 },
            });
            self.send(h, &data_in[offset..offset + n])?;
            offset += n;
            data_sn = data_sn.wrapping_add(1);
        }
        if collapse {
            return Ok(());
        }
        self.scsi_response(itt, &c, overflow, underflow, residual, data_sn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_number_arithmetic() {
        // RFC 1982 comparisons across the wrap.
        assert!(sn_lt(1, 2));
        assert!(!sn_lt(2, 1));
        assert!(!sn_lt(5, 5));
        assert!(sn_lt(0xffff_fff0, 3));
        assert!(!sn_lt(3, 0xffff_fff0));
    }

    #[test]
    fn cdb_lengths_by_group_code() {
        let len = |op: u8| {
            let mut c = [0u8; 16];
            c[0] = op;
            Connection::cdb_len(&c)
        };
        assert_eq!(len(0x00), 6); // TEST UNIT READY
        assert_eq!(len(0x28), 10); // READ(10)
        assert_eq!(len(0x5a), 10); // MODE SENSE(10)
        assert_eq!(len(0xa0), 12); // REPORT LUNS
        assert_eq!(len(0x88), 16); // READ(16)
        assert_eq!(len(0x83), 16); // EXTENDED COPY
    }
}
