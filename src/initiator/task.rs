//! Tasks in full feature phase: SCSI commands with Data-In, immediate and
//! unsolicited data and Data-Out in answer to R2T (RFC 7143 11.3-11.8),
//! NOP-Out (11.18), Text (11.10), task management (11.5), Logout (11.14).

use crate::frontend::pdu::{
    DataOut, Header, LogoutRequest, NopOut, Pdu, ScsiCommand, TaskMgmtRequest, TextRequest,
    TmfFunction, TmfResponse, RESERVED_TAG,
};
use crate::frontend::text::{encode_pairs, parse_pairs};

use super::{Initiator, InitiatorError};

/// The data phase of a command.
#[derive(Clone, Copy, Debug)]
pub enum DataDir<'a> {
    None,
    /// Read up to this many bytes (the expected data transfer length).
    In(u32),
    /// Write these bytes.
    Out(&'a [u8]),
    /// A write of this many bytes whose Data-Out the caller sends itself
    /// (W bit and the length only).
    OutLater(u32),
}

/// How a command ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub itt: u32,
    /// The iSCSI response code (11.4.3: 0 = completed at target).
    pub response: u8,
    pub status: u8,
    pub sense: Vec<u8>,
    /// Data-In, placed by buffer offset.
    pub data: Vec<u8>,
    /// Bytes of the longest Data-In segment, and how many came.
    pub longest_segment: usize,
    pub data_in_pdus: usize,
    /// Residual count with the U or O bit (11.4.5).
    pub underflow: Option<u32>,
    pub overflow: Option<u32>,
}

/// The flags a command is sent with.
#[derive(Clone, Copy, Debug, Default)]
pub struct CmdOpts {
    /// The I bit: CmdSN is not advanced (4.2.2.1).
    pub immediate: bool,
    /// Send with this CmdSN instead of the session's next one, and do not
    /// advance it (to test the window).
    pub cmd_sn: Option<u32>,
}

impl Initiator {
    /// Send a SCSI command to `lun` and return its ITT; its data phase
    /// and status are collected by [`Initiator::wait`].
    pub fn start(
        &mut self,
        lun: u64,
        cdb: &[u8],
        dir: DataDir,
        opts: CmdOpts,
    ) -> Result<u32, InitiatorError> {
        if cdb.len() > 16 {
            return Err(InitiatorError::Protocol(
                "CDBs over 16 bytes need an AHS, which is not supported".into(),
            ));
        }
        let itt = self.next_itt();
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        let (edtl, out) = match dir {
            DataDir::None => (0, &[][..]),
            DataDir::In(n) => (n, &[][..]),
            DataDir::Out(b) => (b.len() as u32, b),
            DataDir::OutLater(n) => (n, &[][..]),
        };
        let first = self.first_burst(out.len());
        let cmd_sn = opts.cmd_sn.unwrap_or(self.state.cmd_sn);
        let h = Header::ScsiCommand(ScsiCommand {
            immediate: opts.immediate,
            // 11.3.1: F is clear when unsolicited Data-Out follows.
            final_bit: first.unsolicited == 0,
            read: matches!(dir, DataDir::In(_)),
            write: matches!(dir, DataDir::Out(_) | DataDir::OutLater(_)),
            attr: 1,
            lun: lun_field(lun),
            itt,
            edtl,
            cmd_sn,
            exp_stat_sn: self.state.exp_stat_sn,
            cdb: c,
        });
        self.edtl.insert(itt, edtl);
        if !opts.immediate && opts.cmd_sn.is_none() {
            self.state.cmd_sn = self.state.cmd_sn.wrapping_add(1);
        }
        self.send(h, &out[..first.immediate])?;
        let unsolicited = &out[first.immediate..first.immediate + first.unsolicited];
        self.data_out(lun, itt, RESERVED_TAG, first.immediate, unsolicited)?;
        Ok(itt)
    }

    /// Immediate and unsolicited bytes of a write of `len` (13.10, 13.11,
    /// 13.14: together at most FirstBurstLength).
    fn first_burst(&self, len: usize) -> FirstBurst {
        let fbl = self.number("FirstBurstLength", 65536).min(len);
        // 13.10, 13.11: ImmediateData and InitialR2T default to Yes.
        let immediate = if self.negotiated("ImmediateData").unwrap_or("Yes") == "Yes" {
            fbl.min(self.target_mrdsl())
        } else {
            0
        };
        let unsolicited = if self.negotiated("InitialR2T").unwrap_or("Yes") == "No" {
            fbl - immediate
        } else {
            0
        };
        FirstBurst {
            immediate,
            unsolicited,
        }
    }

    /// Data-Out PDUs for `data`, which starts at `offset` of the buffer,
    /// each at most the target's MaxRecvDataSegmentLength (11.7).
    fn data_out(
        &mut self,
        lun: u64,
        itt: u32,
        ttt: u32,
        offset: usize,
        data: &[u8],
    ) -> Result<(), InitiatorError> {
        let chunk = self.target_mrdsl().max(1);
        let n = data.len().div_ceil(chunk);
        for (sn, piece) in data.chunks(chunk).enumerate() {
            let h = Header::DataOut(DataOut {
                final_bit: sn + 1 == n,
                lun: lun_field(lun),
                itt,
                ttt,
                exp_stat_sn: self.state.exp_stat_sn,
                data_sn: sn as u32,
                buffer_offset: (offset + sn * chunk) as u32,
            });
            self.send(h, piece)?;
        }
        Ok(())
    }

    /// Collect task `itt`'s Data-In and status; R2Ts are answered from
    /// `out` (the bytes of a write). PDUs of other tasks are held.
    pub fn wait(&mut self, lun: u64, itt: u32, out: &[u8]) -> Result<Reply, InitiatorError> {
        let mut r = Reply {
            itt,
            ..Reply::default()
        };
        loop {
            let p = self.recv_skipping_pings("a SCSI Response")?;
            if !self.for_task(&p, itt)? {
                self.hold(p);
                continue;
            }
            if self.step(lun, &mut r, p, out)? {
                self.edtl.remove(&itt);
                return Ok(r);
            }
        }
    }

    /// Whether `p` belongs to task `itt`; a Reject is an error.
    fn for_task(&self, p: &Pdu, itt: u32) -> Result<bool, InitiatorError> {
        Ok(match &p.header {
            Header::DataIn(d) => d.itt == itt,
            Header::ScsiResponse(s) => s.itt == itt,
            Header::R2t(x) => x.itt == itt,
            // 11.17: the data segment echoes the rejected BHS, ITT at 16.
            Header::Reject(x) if rejected_itt(&p.data) == Some(itt) => {
                return Err(InitiatorError::Rejected(x.reason))
            }
            _ => false,
        })
    }

    /// Apply one PDU of the task to `r`; true when the task has ended.
    fn step(
        &mut self,
        lun: u64,
        r: &mut Reply,
        p: Pdu,
        out: &[u8],
    ) -> Result<bool, InitiatorError> {
        match p.header {
            Header::DataIn(d) => {
                let limit = self.edtl.get(&r.itt).copied().unwrap_or(0) as usize;
                place(&mut r.data, d.buffer_offset as usize, &p.data, limit)?;
                r.longest_segment = r.longest_segment.max(p.data.len());
                r.data_in_pdus += 1;
                let Some(status) = d.status else {
                    return Ok(false);
                };
                r.status = status;
                r.underflow = d.underflow.then_some(d.residual);
                r.overflow = d.overflow.then_some(d.residual);
                Ok(true)
            }
            Header::R2t(x) => {
                let (off, len) = (x.buffer_offset as usize, x.desired_length as usize);
                let Some(piece) = off.checked_add(len).and_then(|end| out.get(off..end)) else {
                    return Err(InitiatorError::Protocol(format!(
                        "R2T for bytes {off}+{len} of a {}-byte write",
                        out.len()
                    )));
                };
                self.data_out(lun, r.itt, x.ttt, off, piece)?;
                Ok(false)
            }
            Header::ScsiResponse(s) => {
                r.response = s.response;
                r.status = s.status;
                r.sense = sense_of(&p.data)?;
                r.underflow = s.underflow.then_some(s.residual);
                r.overflow = s.overflow.then_some(s.residual);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// A command and its reply, on `lun`.
    pub fn run(&mut self, lun: u64, cdb: &[u8], dir: DataDir) -> Result<Reply, InitiatorError> {
        let itt = self.start(lun, cdb, dir, CmdOpts::default())?;
        let out = match dir {
            DataDir::Out(b) => b,
            _ => &[],
        };
        self.wait(lun, itt, out)
    }

    /// A NOP-Out ping (immediate) with `data`, and the NOP-In echo.
    pub fn ping(&mut self, data: &[u8]) -> Result<Pdu, InitiatorError> {
        let itt = self.next_itt();
        let h = Header::NopOut(NopOut {
            immediate: true,
            lun: 0,
            itt,
            ttt: RESERVED_TAG,
            cmd_sn: self.state.cmd_sn,
            exp_stat_sn: self.state.exp_stat_sn,
        });
        self.send(h, data)?;
        self.wait_for(
            "a NOP-In",
            |p| matches!(&p.header, Header::NopIn(n) if n.itt == itt),
        )
    }

    /// The next PDU that `want` accepts; others are held.
    pub fn wait_for(
        &mut self,
        what: &'static str,
        want: impl Fn(&Pdu) -> bool,
    ) -> Result<Pdu, InitiatorError> {
        let mut held = Vec::new();
        let got = loop {
            match self.recv_skipping_pings(what) {
                Ok(p) if want(&p) => break Ok(p),
                Ok(p) => held.push(p),
                Err(e) => break Err(e),
            }
        };
        for p in held {
            self.hold(p);
        }
        got
    }

    /// A Text Request with `kv` (immediate, one PDU) and the target's
    /// answer (11.10, 11.11); a continued answer is refused.
    pub fn text(
        &mut self,
        kv: &[(String, String)],
    ) -> Result<Vec<(String, String)>, InitiatorError> {
        self.text_with(kv, true)
    }

    /// [`Initiator::text`], immediate or not (a non-immediate request
    /// takes a CmdSN, 11.10).
    pub fn text_with(
        &mut self,
        kv: &[(String, String)],
        immediate: bool,
    ) -> Result<Vec<(String, String)>, InitiatorError> {
        let itt = self.next_itt();
        let cmd_sn = self.state.cmd_sn;
        if !immediate {
            self.state.cmd_sn = cmd_sn.wrapping_add(1);
        }
        let h = Header::TextRequest(TextRequest {
            immediate,
            final_bit: true,
            cont: false,
            lun: 0,
            itt,
            ttt: RESERVED_TAG,
            cmd_sn,
            exp_stat_sn: self.state.exp_stat_sn,
        });
        self.send(h, &encode_pairs(kv))?;
        let p = self.wait_for("a Text Response", |p| match &p.header {
            Header::TextResponse(t) => t.itt == itt,
            Header::Reject(_) => rejected_itt(&p.data) == Some(itt),
            _ => false,
        })?;
        match p.header {
            Header::TextResponse(t) if t.final_bit && !t.cont => Ok(parse_pairs(&p.data)?),
            Header::TextResponse(_) => Err(InitiatorError::Protocol(
                "a Text Response over several PDUs is not supported".into(),
            )),
            Header::Reject(x) => Err(InitiatorError::Rejected(x.reason)),
            other => Err(InitiatorError::Unexpected {
                got: other.opcode(),
                want: "a Text Response",
            }),
        }
    }

    /// A task management request (immediate) and the target's response.
    pub fn tmf(
        &mut self,
        lun: u64,
        function: TmfFunction,
        rtt: u32,
        ref_cmd_sn: u32,
    ) -> Result<TmfResponse, InitiatorError> {
        let itt = self.send_tmf(lun, function, rtt, ref_cmd_sn)?;
        let p = self.wait_for(
            "a Task Management Response",
            |p| matches!(&p.header, Header::TaskMgmtResponse(t) if t.itt == itt),
        )?;
        match p.header {
            Header::TaskMgmtResponse(t) => Ok(t.response),
            other => Err(InitiatorError::Unexpected {
                got: other.opcode(),
                want: "a Task Management Response",
            }),
        }
    }

    /// Send a task management request; returns its ITT.
    pub fn send_tmf(
        &mut self,
        lun: u64,
        function: TmfFunction,
        rtt: u32,
        ref_cmd_sn: u32,
    ) -> Result<u32, InitiatorError> {
        let itt = self.next_itt();
        let h = Header::TaskMgmtRequest(TaskMgmtRequest {
            immediate: true,
            function,
            lun: lun_field(lun),
            itt,
            rtt,
            cmd_sn: self.state.cmd_sn,
            exp_stat_sn: self.state.exp_stat_sn,
            ref_cmd_sn,
            exp_data_sn: 0,
        });
        self.send(h, &[])?;
        Ok(itt)
    }

    /// Close the session (11.14, reason 0) and wait for the response.
    pub fn logout(mut self) -> Result<u8, InitiatorError> {
        let itt = self.next_itt();
        let h = Header::LogoutRequest(LogoutRequest {
            immediate: true,
            reason: 0,
            itt,
            cid: 0,
            cmd_sn: self.state.cmd_sn,
            exp_stat_sn: self.state.exp_stat_sn,
        });
        self.send(h, &[])?;
        let p = self.wait_for(
            "a Logout Response",
            |p| matches!(&p.header, Header::LogoutResponse(l) if l.itt == itt),
        )?;
        match p.header {
            Header::LogoutResponse(l) => Ok(l.response),
            other => Err(InitiatorError::Unexpected {
                got: other.opcode(),
                want: "a Logout Response",
            }),
        }
    }
}

struct FirstBurst {
    immediate: usize,
    unsolicited: usize,
}

/// Put a Data-In segment at its buffer offset; bytes past the expected
/// data transfer length `limit` are refused (RFC 7143 11.7.5: the target
/// sends at most that much).
fn place(
    buf: &mut Vec<u8>,
    offset: usize,
    data: &[u8],
    limit: usize,
) -> Result<(), InitiatorError> {
    let end = offset
        .checked_add(data.len())
        .filter(|&e| e <= limit)
        .ok_or_else(|| {
            InitiatorError::Protocol(format!(
                "Data-In of {} bytes at offset {offset} past the expected {limit}",
                data.len()
            ))
        })?;
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset..end].copy_from_slice(data);
    Ok(())
}

/// The sense data of a SCSI Response's data segment: SenseLength then
/// the sense bytes (11.4.7).
pub fn sense_of(data: &[u8]) -> Result<Vec<u8>, InitiatorError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let (len, rest) = match data {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]) as usize, rest),
        _ => {
            return Err(InitiatorError::Protocol(
                "SCSI Response data segment of 1 byte (no SenseLength)".into(),
            ))
        }
    };
    rest.get(..len).map(<[u8]>::to_vec).ok_or_else(|| {
        InitiatorError::Protocol(format!(
            "SenseLength {len} but only {} sense bytes",
            rest.len()
        ))
    })
}

/// A LUN as the 8-byte field of a PDU (SAM-5 4.7: peripheral device
/// addressing below 256, flat space addressing above).
pub fn lun_field(lun: u64) -> u64 {
    if lun < 256 {
        lun << 48
    } else {
        (0x4000 | (lun & 0x3fff)) << 48
    }
}

/// The ITT of the PDU a Reject echoes (RFC 7143 11.17: its data segment
/// is the rejected BHS).
pub fn rejected_itt(data: &[u8]) -> Option<u32> {
    let b = data.get(16..20)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
