//! Reading and writing PDUs on the connection, and the sequence-number
//! fields of what the target sends (RFC 7143 4.2.2).

use std::io::{self, Read, Write};

use crate::frontend::pdu::{trailing_len, Header, NopOut, Pdu, PduError, BHS_LEN, RESERVED_TAG};

use super::{Initiator, InitiatorError, MAX_SEGMENT};

/// StatSN, ExpCmdSN and MaxCmdSN of a target PDU, where they are valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnFields {
    /// None where the PDU carries no status (Data-In without S, R2T).
    pub stat_sn: Option<u32>,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// The numbering fields of a target PDU (RFC 7143 11.4.3, 11.7.3, 11.8,
/// 11.19); None for initiator PDUs and Data-In without status.
pub fn sn_fields(h: &Header) -> Option<SnFields> {
    let f = |s: Option<u32>, e: u32, m: u32| SnFields {
        stat_sn: s,
        exp_cmd_sn: e,
        max_cmd_sn: m,
    };
    Some(match h {
        Header::ScsiResponse(x) => f(Some(x.stat_sn), x.exp_cmd_sn, x.max_cmd_sn),
        Header::DataIn(x) if x.status.is_some() => f(Some(x.stat_sn), x.exp_cmd_sn, x.max_cmd_sn),
        Header::NopIn(x) => f(Some(x.stat_sn), x.exp_cmd_sn, x.max_cmd_sn),
        Header::TaskMgmtResponse(x) => f(Some(x.stat_sn), x.exp_cmd_sn, x.max_cmd_sn),
        Header::LoginResponse(x) => f(Some(x.stat_sn), x.exp_cmd_sn, x.max_cmd_sn),
        Header::TextResponse(x) => f(Some(x.stat_sn), x.exp_cmd_sn, x.max_cmd_sn),
        Header::LogoutResponse(x) => f(Some(x.stat_sn), x.exp_cmd_sn, x.max_cmd_sn),
        Header::Reject(x) => f(Some(x.stat_sn), x.exp_cmd_sn, x.max_cmd_sn),
        Header::R2t(x) => f(None, x.exp_cmd_sn, x.max_cmd_sn),
        _ => return None,
    })
}

/// `a < b` in 32-bit serial number arithmetic (RFC 1982, as RFC 7143
/// 4.2.2 requires).
pub fn sn_lt(a: u32, b: u32) -> bool {
    a != b && (b.wrapping_sub(a) as i32) > 0
}

/// MaxCmdSN >= ExpCmdSN - 1 (RFC 7143 4.2.2.1): the window is open, or
/// closed by exactly one (zero commands accepted), never less.
pub fn window_open(exp_cmd_sn: u32, max_cmd_sn: u32) -> bool {
    !sn_lt(max_cmd_sn, exp_cmd_sn.wrapping_sub(1))
}

fn io_error(e: io::Error, timeout: std::time::Duration, what: &'static str) -> InitiatorError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            InitiatorError::Timeout(timeout, what)
        }
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => InitiatorError::Closed(what),
        _ => InitiatorError::Io(e),
    }
}

/// Read one PDU: the BHS, then exactly the AHS and padded data segment
/// its lengths announce, refused before allocation past [`MAX_SEGMENT`].
pub fn read_pdu(r: &mut impl Read, max_data: usize) -> Result<Pdu, ReadError> {
    let mut bhs = [0u8; BHS_LEN];
    r.read_exact(&mut bhs).map_err(ReadError::Io)?;
    let (_, data_len) = crate::frontend::pdu::segment_lengths(&bhs);
    if data_len > max_data {
        return Err(ReadError::Pdu(PduError::DataTooLong {
            len: data_len,
            max: max_data,
        }));
    }
    let mut rest = vec![0u8; trailing_len(&bhs)];
    r.read_exact(&mut rest).map_err(ReadError::Io)?;
    Pdu::from_owned(&bhs, rest, max_data).map_err(ReadError::Pdu)
}

/// Why [`read_pdu`] failed: the connection, or the bytes.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Pdu(PduError),
}

impl Initiator {
    /// Send one PDU.
    pub fn send(&mut self, h: Header, data: &[u8]) -> Result<(), InitiatorError> {
        let bytes = Pdu::new(h, data.to_vec()).emit();
        self.stream
            .write_all(&bytes)
            .map_err(|e| io_error(e, self.timeout, "a send"))
    }

    /// The next PDU from the target, its numbering noted; `what` names
    /// what we wait for in errors.
    pub fn recv(&mut self, what: &'static str) -> Result<Pdu, InitiatorError> {
        self.stream
            .set_read_timeout(Some(self.timeout))
            .map_err(InitiatorError::Io)?;
        let p = match read_pdu(&mut self.stream, MAX_SEGMENT) {
            Ok(p) => p,
            Err(ReadError::Io(e)) => return Err(io_error(e, self.timeout, what)),
            Err(ReadError::Pdu(e)) => return Err(e.into()),
        };
        self.note(&p.header);
        Ok(p)
    }

    /// The next PDU that is not a target's NOP-In ping (pings are
    /// answered, RFC 7143 11.19), held PDUs of other tasks first.
    pub fn recv_skipping_pings(&mut self, what: &'static str) -> Result<Pdu, InitiatorError> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        loop {
            let p = self.recv(what)?;
            if let Header::NopIn(n) = &p.header {
                if n.itt == RESERVED_TAG && n.ttt != RESERVED_TAG {
                    self.answer_ping(n.ttt, n.lun)?;
                    continue;
                }
                if n.itt == RESERVED_TAG {
                    continue;
                }
            }
            return Ok(p);
        }
    }

    /// A held PDU, oldest first.
    pub fn take_held(&mut self) -> Option<Pdu> {
        self.pending.pop_front()
    }

    /// Keep a PDU for a later wait.
    pub fn hold(&mut self, p: Pdu) {
        self.pending.push_back(p);
    }

    fn answer_ping(&mut self, ttt: u32, lun: u64) -> Result<(), InitiatorError> {
        let h = Header::NopOut(NopOut {
            immediate: true,
            lun,
            itt: RESERVED_TAG,
            ttt,
            cmd_sn: self.state.cmd_sn,
            exp_stat_sn: self.state.exp_stat_sn,
        });
        self.send(h, &[])
    }

    /// Track StatSN and the command window from a target PDU.
    fn note(&mut self, h: &Header) {
        let Some(f) = sn_fields(h) else { return };
        if let Some(s) = f.stat_sn {
            self.state.stat_sn = s;
            let next = s.wrapping_add(1);
            if !sn_lt(next, self.state.exp_stat_sn) {
                self.state.exp_stat_sn = next;
            }
        }
        self.windows.push((h.opcode(), f.exp_cmd_sn, f.max_cmd_sn));
        // RFC 7143 4.2.2.1: only a newer window replaces the one we have.
        if !sn_lt(f.max_cmd_sn, f.exp_cmd_sn.wrapping_sub(1)) {
            if !sn_lt(f.exp_cmd_sn, self.state.exp_cmd_sn) {
                self.state.exp_cmd_sn = f.exp_cmd_sn;
            }
            if !sn_lt(f.max_cmd_sn, self.state.max_cmd_sn) {
                self.state.max_cmd_sn = f.max_cmd_sn;
            }
        }
    }
}
