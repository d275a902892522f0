//! One connection: login, then the full feature phase (RFC 7143 ERL 0,
//! one connection per session). PDUs are read and answered in the
//! connection's thread; a command a unit runs in the background (a long
//! copy) runs on a thread of its own, so the connection keeps reading
//! (a TMF can stop it) and the LU lock is not held while it runs.
//!
//! Anything malformed (an opcode we do not take, a length beyond the
//! negotiated limits, a DataSN or offset out of order) ends this
//! connection only: ERL 0 recovers by dropping the connection (RFC 7143
//! 7.1.4.1, 7.2).
//!
//! The connection waits for PDUs and for its background tasks at once
//! (poll on the socket and a wake-up pipe). After the idle timeout with
//! nothing heard and nothing running it sends a NOP-In ping (11.19); with
//! still nothing heard after as long again, it closes.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::budget::Account;
use super::command::{Geometry, WriteTask};
use super::login::{status, Login, LoginOutcome, CMD_WINDOW};
use super::pdu::{
    pad4, segment_lengths, trailing_len, Header, IscsiOpcode, LogoutRequest, LogoutResponse, NopIn,
    NopOut, Pdu, PduError, Reject, RejectReason, TextRequest, TextResponse, BHS_LEN, RESERVED_TAG,
};
use super::server::{lock, Ended, Shared};
use super::tasks::Running;
use super::text::{encode_pairs, escaped, parse_pairs, SessionParams, SessionType, MAX_TEXT_LEN};
use crate::lu::{Completion, Nexus};

pub(crate) fn protocol(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Serial number arithmetic, RFC 1982 (RFC 7143 4.2.2.1): a < b.
pub(crate) fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// One connection from accept to close.
pub(crate) struct Connection<'a> {
    pub(crate) shared: &'a Shared,
    /// Its number in the server's slots and task registry.
    pub(crate) id: u64,
    reader: BufReader<TcpStream>,
    pub(crate) writer: BufWriter<TcpStream>,
    /// `host:port` the initiator reached us at (for TargetAddress).
    portal: String,
    pub(crate) params: SessionParams,
    pub(crate) session_type: SessionType,
    pub(crate) nexus: Nexus,
    /// Index of the target in `shared.targets` (normal sessions).
    pub(crate) target: Option<usize>,
    pub(crate) exp_cmd_sn: u32,
    pub(crate) stat_sn: u32,
    pub(crate) writes: HashMap<u32, WriteTask>,
    /// Writes waiting for R2Ts, in order; the front ones (within the
    /// connection's memory share) are solicited.
    pub(crate) r2t_queue: VecDeque<u32>,
    pub(crate) next_ttt: u32,
    pub(crate) geometry: HashMap<u64, Geometry>,
    /// Text Request data with the C bit, waiting for the rest.
    pending_text: Vec<u8>,
    /// This connection's part of the memory budget.
    pub(crate) account: Account<'a>,
    /// Background tasks by ITT, and where they report.
    pub(crate) running: HashMap<u32, Running>,
    pub(crate) done_tx: mpsc::Sender<(u32, Completion)>,
    pub(crate) done_rx: mpsc::Receiver<(u32, Completion)>,
    pub(crate) wake_tx: UnixStream,
    wake_rx: UnixStream,
    /// When a PDU last came in, and when our ping went out.
    heard: Instant,
    pinged: Option<Instant>,
    /// Set once the session is registered under its nexus.
    ended: Option<Arc<Ended>>,
    torn_down: bool,
}

/// What waiting for input found.
enum Ready {
    Pdu,
    Woken,
    Idle,
}

impl<'a> Connection<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        id: u64,
        stream: TcpStream,
    ) -> io::Result<Connection<'a>> {
        let local = stream.local_addr()?;
        let portal = match local {
            std::net::SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        // A peer that stops reading costs us at most this long.
        stream.set_write_timeout(Some(shared.limits.send_timeout))?;
        // A backstop for reads; the whole login has its own deadline.
        stream.set_read_timeout(Some(shared.limits.login_timeout))?;
        let writer = BufWriter::with_capacity(256 * 1024, stream.try_clone()?);
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        let (done_tx, done_rx) = mpsc::channel();
        Ok(Connection {
            shared,
            id,
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
            account: Account::new(&shared.budget),
            running: HashMap::new(),
            done_tx,
            done_rx,
            wake_tx,
            wake_rx,
            heard: Instant::now(),
            pinged: None,
            ended: None,
            torn_down: false,
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

    pub(crate) fn send(&mut self, header: Header, data: &[u8]) -> io::Result<()> {
        let bhs = header.to_bhs(0, data.len());
        self.writer.write_all(&bhs)?;
        self.writer.write_all(data)?;
        let pad = pad4(data.len()) - data.len();
        self.writer.write_all(&[0u8; 3][..pad])
    }

    pub(crate) fn max_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn.wrapping_add(CMD_WINDOW - 1)
    }

    /// The StatSN for a status-bearing response, advancing it.
    pub(crate) fn next_stat_sn(&mut self) -> u32 {
        let s = self.stat_sn;
        self.stat_sn = s.wrapping_add(1);
        s
    }

    /// The initiator's name, safe to log.
    pub(crate) fn who(&self) -> String {
        escaped(&self.nexus.initiator)
    }

    pub(crate) fn run(&mut self) -> io::Result<()> {
        if !self.login()? {
            return Ok(());
        }
        let idle = self.shared.limits.idle_timeout;
        self.reader.get_ref().set_read_timeout(Some(idle))?;
        self.heard = Instant::now();
        self.serve()
    }

    /// Stop and wait for the background tasks, then release the nexus
    /// and the session's place: one connection is the whole session at
    /// ERL 0, so when it ends the I_T nexus ends and the LUs drop what
    /// they held for it (SPC-4 6.4.3). Runs once, also when the thread
    /// unwinds.
    fn teardown(&mut self) {
        if std::mem::replace(&mut self.torn_down, true) {
            return;
        }
        self.stop_all_tasks();
        if let Some(t) = self.target.and_then(|i| self.shared.targets.get(i)) {
            for (_, lu) in &t.luns {
                lock(lu).nexus_lost(&self.nexus);
            }
        }
        if let Some(e) = self.ended.take() {
            self.shared.unregister_session(&self.nexus, self.id);
            e.set();
        }
    }

    /// Wait for a PDU or a finished background task, at most until the
    /// idle timeout says something is due.
    fn wait(&mut self) -> io::Result<Ready> {
        if !self.reader.buffer().is_empty() {
            return Ok(Ready::Pdu);
        }
        let idle = self.shared.limits.idle_timeout;
        let since = self.pinged.unwrap_or(self.heard);
        let left = idle.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Ok(Ready::Idle);
        }
        let ms = left.as_millis().clamp(1, 60_000) as u16;
        let sock = self.reader.get_ref().as_fd();
        let mut fds = [
            PollFd::new(sock, PollFlags::POLLIN),
            PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Ok(Ready::Idle),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Ready::Woken),
            Err(e) => return Err(e.into()),
        }
        let woken = fds[1].revents().is_some_and(|r| !r.is_empty());
        let readable = fds[0].revents().is_some_and(|r| !r.is_empty());
        if woken {
            let mut sink = [0u8; 64];
            while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        }
        Ok(if readable { Ready::Pdu } else { Ready::Woken })
    }

    /// Nothing heard for the idle timeout: ping once (NOP-In, 11.19), and
    /// close when the ping, too, went unanswered. A connection with
    /// background tasks running is busy on our side, not idle.
    fn keepalive(&mut self) -> io::Result<()> {
        let idle = self.shared.limits.idle_timeout;
        let since = self.pinged.unwrap_or(self.heard);
        if since.elapsed() < idle {
            return Ok(());
        }
        if !self.running.is_empty() {
            self.heard = Instant::now();
            self.pinged = None;
            return Ok(());
        }
        if self.pinged.is_some() {
            return Err(protocol(format!(
                "nothing heard for {}s, not even an answer to a NOP-In",
                2 * idle.as_secs()
            )));
        }
        let ping = Header::NopIn(NopIn {
            lun: 0,
            itt: RESERVED_TAG,
            ttt: self.take_ttt(),
            // 11.19: an unsolicited NOP-In does not advance StatSN.
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        });
        self.send(ping, &[])?;
        self.writer.flush()?;
        self.pinged = Some(Instant::now());
        Ok(())
    }

    /// A fresh Target Transfer Tag (never the reserved one).
    pub(crate) fn take_ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    /// The full feature phase, until logout or the connection fails.
    fn serve(&mut self) -> io::Result<()> {
        loop {
            self.finish_tasks()?;
            self.pump_r2t()?;
            self.writer.flush()?;
            match self.wait()? {
                Ready::Woken => continue,
                Ready::Idle => {
                    self.keepalive()?;
                    continue;
                }
                Ready::Pdu => {}
            }
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
            self.heard = Instant::now();
            self.pinged = None;
            if self.dispatch(pdu)? {
                self.writer.flush()?;
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

    pub(crate) fn reject(&mut self, reason: RejectReason, bhs: &[u8; BHS_LEN]) -> io::Result<()> {
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
            let (mut resp, mut outcome) = login.step(&self.shared.login, req, &pdu.data);
            if outcome == LoginOutcome::FullFeature {
                if let Err((st, reason)) = self.admit(&login) {
                    resp = login.refusal(req, st);
                    outcome = LoginOutcome::Refused { status: st, reason };
                }
            }
            self.send(resp.header, &resp.data)?;
            self.writer.flush()?;
            match outcome {
                LoginOutcome::Continue => {}
                LoginOutcome::Refused { status, reason } => {
                    log::warn!(
                        "iSCSI login from {} refused ({:04x}): {reason}",
                        escaped(login.initiator.as_deref().unwrap_or("?")),
                        status
                    );
                    return Ok(false);
                }
                LoginOutcome::FullFeature => break,
            }
        }
        self.params = login.neg.params.clone();
        self.exp_cmd_sn = login.exp_cmd_sn;
        self.stat_sn = login.stat_sn;
        log::info!(
            "iSCSI {} session: {} (ISID {:012x}) logged in{}",
            self.session_type,
            self.who(),
            login.isid,
            if self.nexus.target.is_empty() {
                String::new()
            } else {
                format!(" to {}", escaped(&self.nexus.target))
            }
        );
        Ok(true)
    }

    /// The login is complete: take the slot for good and, for a normal
    /// session, its place under its nexus, replacing an older session of
    /// the same nexus (RFC 7143 6.3.5).
    fn admit(&mut self, login: &Login) -> Result<(), (u16, String)> {
        if !lock(&self.shared.slots).admit(self.id) {
            return Err((
                status::OUT_OF_RESOURCES,
                "the connection was closed during its login".into(),
            ));
        }
        self.session_type = login.session_type;
        let target = login.target.clone().unwrap_or_default();
        if self.session_type == SessionType::Normal {
            self.target = self.shared.targets.iter().position(|t| t.name == target);
        }
        self.nexus = Nexus {
            initiator: login.initiator.clone().unwrap_or_default(),
            isid: login.isid,
            target,
        };
        if self.session_type == SessionType::Normal {
            let ended = Arc::new(Ended::default());
            if !self
                .shared
                .register_session(&self.nexus, self.id, ended.clone())
            {
                return Err((
                    status::SERVICE_UNAVAILABLE,
                    "the session it replaces did not end in time".into(),
                ));
            }
            self.ended = Some(ended);
        }
        Ok(())
    }

    /// CmdSN check for a non-immediate request (RFC 7143 4.2.2.1): the
    /// next one in order is taken; anything else is outside what we can
    /// accept on one connection and is dropped silently.
    pub(crate) fn take_cmd_sn(&mut self, immediate: bool, cmd_sn: u32) -> bool {
        if immediate {
            return true;
        }
        if cmd_sn == self.exp_cmd_sn {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            true
        } else {
            log::debug!(
                "iSCSI {}: CmdSN {cmd_sn} outside the window [{}, {}], ignored",
                self.who(),
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
        self.drop_writes(|_| true);
        self.stop_all_tasks();
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
        log::info!("iSCSI {}: logged out", self.who());
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
                "SendTargets" => out.extend(self.send_targets(v)),
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
        let bytes = cut_text(encode_pairs(&out), self.params.initiator_mrdsl as usize);
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

    /// SendTargets=`v` (RFC 7143 12.3): the targets this session may see.
    fn send_targets(&self, v: &str) -> Vec<(String, String)> {
        let current = self.target.map(|i| self.shared.targets[i].name.clone());
        let mut out = Vec::new();
        for t in &self.shared.targets {
            let wanted = match v {
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
        out
    }
}

/// One response PDU: a text beyond the initiator's segment size is cut at
/// a pair boundary (we serve a handful of targets).
fn cut_text(mut bytes: Vec<u8>, max: usize) -> Vec<u8> {
    if bytes.len() > max {
        let cut = bytes[..max]
            .iter()
            .rposition(|&b| b == 0)
            .map_or(0, |i| i + 1);
        bytes.truncate(cut);
        log::warn!("iSCSI text response cut to {cut} bytes");
    }
    bytes
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        self.teardown();
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
}
