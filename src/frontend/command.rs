//! SCSI commands on a connection: the write data flow (immediate,
//! unsolicited and R2T-solicited Data-Out), execution at the LU, and
//! Data-In with status (RFC 7143 11.3-11.8).
//!
//! Memory: a write takes its length from the connection's share of the
//! memory budget before its first R2T, and gets BUSY when it cannot; a
//! disk READ larger than [`READ_CHUNK`] is read from the LU and sent in
//! chunks, so a client that never reads pins at most two chunks.

use std::io;
use std::ops::Range;
use std::time::Duration;

use super::pdu::{
    DataIn, DataOut, Header, R2t, RejectReason, ScsiCommand, ScsiResponse, BHS_LEN, RESERVED_TAG,
};
use super::server::lock;
use super::session::{protocol, Connection};
use super::text::SessionType;
use super::SharedLu;
use crate::lu::Completion;
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::spc::{Lun, LunList, ReportLuns};
use crate::scsi::{CdbCodec, Status, Wire};

/// Largest Expected Data Transfer Length served; beyond it the command
/// ends in CHECK CONDITION and nothing is allocated.
pub const MAX_TRANSFER: u32 = 64 << 20;

/// Disk READs above this many bytes are produced and sent in chunks.
pub const READ_CHUNK: usize = 1 << 20;

/// How long a command waits for memory before it gets BUSY.
const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// Write commands waiting for data at once, per connection.
const MAX_PENDING_WRITES: usize = 64;

/// DATA PHASE ERROR and DATA OFFSET ERROR (SPC-4 Annex D; RFC 7143
/// 11.4.7.2 names them for iSCSI sequence errors).
const DATA_PHASE_ERROR: Asc = Asc(0x4b00);
const DATA_OFFSET_ERROR: Asc = Asc(0x4b05);

/// INVALID FIELD IN COMMAND INFORMATION UNIT (SPC-4 Annex D; FCP-4 / SAM
/// wording used by libiscsi's residual tests).
const INVALID_FIELD_IN_IU: Asc = Asc(0x0e03);

/// A write waiting for its data (RFC 7143 3.2.4.2, 11.7, 11.8).
pub(crate) struct WriteTask {
    pub lun: u64,
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
    /// Bytes of the memory budget it holds.
    reserved: usize,
}

/// Block size and type of a LU, learnt once per connection to size
/// transfers for residuals (SAM-5 5.4.2).
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    disk: bool,
    block_size: Option<u32>,
}

/// A disk READ(10/12/16) produced in chunks: its extent and where its CDB
/// holds the LBA and the TRANSFER LENGTH.
struct ChunkedRead {
    lba: u64,
    blocks: u64,
    block_size: u32,
    lba_field: Range<usize>,
    len_field: Range<usize>,
}

/// Where a command's Data-In stands (RFC 7143 11.7.4, 11.7.6).
#[derive(Default)]
struct DataInSeq {
    data_sn: u32,
    offset: usize,
}

/// The status carried by the last Data-In PDU (status phase collapse).
#[derive(Clone, Copy)]
struct Collapse {
    status: u8,
    overflow: bool,
    underflow: bool,
    residual: u32,
}

/// Big-endian field of a CDB.
fn be(cdb: &[u8], r: Range<usize>) -> u64 {
    cdb[r].iter().fold(0u64, |a, &b| (a << 8) | b as u64)
}

/// The real CDB length of a 16-byte CDB slot.
pub(crate) fn cdb_len(cdb: &[u8; 16]) -> usize {
    crate::scsi::cdb_len(cdb[0])
}

/// (overflow, underflow, residual) of a command that produced `produced`
/// bytes against its EDTL (11.4.5).
fn residual_of(
    produced: u64,
    edtl: u32,
    write_residual: Option<(bool, u32)>,
    data_in: bool,
) -> (bool, bool, u32) {
    let edtl = edtl as u64;
    if let Some((over, n)) = write_residual {
        (over, !over, n)
    } else if produced > edtl {
        (true, false, (produced - edtl).min(u32::MAX as u64) as u32)
    } else if produced < edtl && data_in {
        (false, true, (edtl - produced) as u32)
    } else {
        (false, false, 0)
    }
}

impl Connection<'_> {
    pub(crate) fn lu(&self, lun: u64) -> Option<(u64, SharedLu)> {
        let t = &self.shared.targets[self.target?];
        let index = Lun(lun).index()? as u64;
        t.luns
            .iter()
            .find(|(l, _)| *l == index)
            .map(|(l, lu)| (*l, lu.clone()))
    }

    pub(crate) fn scsi_command(
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
        self.check_data_rules(&h, &data)?;
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
                self.who(),
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
        let (cdb, want, residual) = match self.write_extent(&h) {
            Ok(x) => x,
            Err((sense, residual)) => return self.respond_check(&h, sense, Some(residual)),
        };
        if self.writes.len() >= MAX_PENDING_WRITES {
            return Err(protocol("too many writes waiting for data"));
        }
        if self.writes.contains_key(&h.itt) || self.running.contains_key(&h.itt) {
            return Err(protocol("ITT already in use"));
        }
        if h.final_bit && data.len() >= want {
            return self.execute(h.lun, h.itt, &cdb, h.edtl, &data[..want], residual);
        }
        self.queue_write(h, cdb, want, residual, data)
    }

    /// 13.11, 13.14: immediate data only if agreed, within
    /// FirstBurstLength and EDTL; unsolicited Data-Out only if agreed.
    fn check_data_rules(&self, h: &ScsiCommand, data: &[u8]) -> io::Result<()> {
        let p = &self.params;
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
        Ok(())
    }

    /// SAM-5 5.4.2, FCP-4 9.4.2 a): when the SCSI transfer length and the
    /// EDTL differ, process the command but move no data beyond the
    /// smaller one, and report the difference as residual. The CDB to
    /// run, the bytes it takes and the residual; or the refusal.
    #[allow(clippy::type_complexity)]
    fn write_extent(
        &mut self,
        h: &ScsiCommand,
    ) -> Result<([u8; 16], usize, Option<(bool, u32)>), (Sense, (bool, u32))> {
        let mut cdb = h.cdb;
        let Some((field, blocks, bs)) = self.write_geometry(h.lun, &h.cdb) else {
            return Ok((cdb, h.edtl as usize, None));
        };
        let spdtl = blocks * bs as u64;
        let edtl = h.edtl as u64;
        if spdtl < edtl {
            return Ok((cdb, spdtl as usize, Some((false, (edtl - spdtl) as u32))));
        }
        if spdtl == edtl {
            return Ok((cdb, edtl as usize, None));
        }
        let over = (spdtl - edtl).min(u32::MAX as u64) as u32;
        if field.len() == 1 {
            // WRITE(6): 0 blocks means 256, so it cannot be cut to 0.
            let sense = Sense::new(SenseKey::ILLEGAL_REQUEST, INVALID_FIELD_IN_IU);
            return Err((sense, (true, over)));
        }
        // Whole blocks within the EDTL only.
        let fit = edtl / bs as u64;
        let width = field.len();
        cdb[field].copy_from_slice(&fit.to_be_bytes()[8 - width..]);
        Ok((cdb, (fit * bs as u64) as usize, Some((true, over))))
    }

    /// A write that waits for Data-Out: its memory first (BUSY without),
    /// then R2Ts or the unsolicited burst.
    fn queue_write(
        &mut self,
        h: ScsiCommand,
        cdb: [u8; 16],
        want: usize,
        residual: Option<(bool, u32)>,
        data: Vec<u8>,
    ) -> io::Result<()> {
        if !self.account.take(want, BUDGET_WAIT) {
            log::warn!(
                "iSCSI {}: no memory for a {want}-byte write; BUSY",
                self.who()
            );
            return self.respond_status(h.itt, Status::BUSY);
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
            reserved: want,
        };
        let needs_r2t = !task.unsolicited_open;
        self.writes.insert(h.itt, task);
        if needs_r2t {
            self.r2t_queue.push_back(h.itt);
            self.pump_r2t()?;
        }
        Ok(())
    }

    /// Take write `itt` out of the tables, its memory given back.
    fn take_write(&mut self, itt: u32) -> Option<WriteTask> {
        let t = self.writes.remove(&itt)?;
        self.r2t_queue.retain(|i| *i != itt);
        self.account.give(t.reserved);
        Some(t)
    }

    /// Drop the writes `pick` chooses (TMFs, logout); returns how many.
    pub(crate) fn drop_writes(&mut self, pick: impl Fn(&WriteTask) -> bool) -> usize {
        let gone: Vec<u32> = self
            .writes
            .iter()
            .filter(|(_, t)| pick(t))
            .map(|(i, _)| *i)
            .collect();
        for itt in &gone {
            self.take_write(*itt);
        }
        gone.len()
    }

    /// Drop write `itt` if it waits for data (ABORT TASK).
    pub(crate) fn drop_write(&mut self, itt: u32) -> bool {
        self.take_write(itt).is_some()
    }

    /// Send an R2T to every queued write that has none outstanding (one
    /// per write, MaxOutstandingR2T = 1): their memory is reserved
    /// already, and several writes in flight overlap their round trips.
    pub(crate) fn pump_r2t(&mut self) -> io::Result<()> {
        let writes = &self.writes;
        self.r2t_queue.retain(|i| writes.contains_key(i));
        let due: Vec<u32> = self
            .r2t_queue
            .iter()
            .filter(|i| {
                let t = &self.writes[*i];
                t.r2t.is_none() && t.buf.len() < t.want
            })
            .copied()
            .collect();
        for itt in due {
            self.send_r2t(itt)?;
        }
        Ok(())
    }

    fn send_r2t(&mut self, itt: u32) -> io::Result<()> {
        let max_burst = self.params.max_burst_length as usize;
        if !self.writes.contains_key(&itt) {
            return Ok(());
        }
        let ttt = self.take_ttt();
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

    pub(crate) fn data_out(&mut self, h: DataOut, data: Vec<u8>) -> io::Result<()> {
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
        if let Some((asc, why)) = sequence_fault(t, &h) {
            log::warn!("iSCSI {}: Data-Out {why}; command aborted", self.who());
            self.take_write(h.itt);
            let c = Completion::check(Sense::new(SenseKey::ABORTED_COMMAND, asc));
            return self.scsi_response(h.itt, &c, false, false, 0, 0);
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
            let t = self.take_write(h.itt).expect("task present");
            self.execute(t.lun, h.itt, &t.cdb, t.edtl, &t.buf[..t.want], t.residual)?;
        } else if !solicited {
            self.r2t_queue.push_back(h.itt);
        }
        Ok(())
    }

    /// A CHECK CONDITION answered by the target itself (nothing executed).
    pub(crate) fn respond_check(
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

    /// A status without sense or data (BUSY, TASK SET FULL, TASK ABORTED).
    pub(crate) fn respond_status(&mut self, itt: u32, status: Status) -> io::Result<()> {
        let c = Completion {
            status,
            sense: Vec::new(),
            data_in_len: 0,
        };
        self.scsi_response(itt, &c, false, false, 0, 0)
    }

    pub(crate) fn scsi_response(
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

    /// Learn a LU's type and block size (INQUIRY, READ CAPACITY(10)) once.
    pub(crate) fn geometry(&mut self, lun: u64, lu: &SharedLu) -> Geometry {
        if let Some(g) = self.geometry.get(&lun) {
            return *g;
        }
        let mut g = Geometry {
            disk: false,
            block_size: None,
        };
        let mut guard = lock(lu);
        let mut inq = [0u8; 36];
        let c = guard.probe(&self.nexus, &[0x12, 0, 0, 0, 36, 0], &mut inq);
        if c.status == Status::GOOD && c.data_in_len >= 1 && inq[0] == 0x00 {
            g.disk = true;
            let mut cap = [0u8; 8];
            let c = guard.probe(&self.nexus, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &mut cap);
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

    /// Run one command at its LU (or start it in the background when the
    /// unit runs it so) and send Data-In and status.
    pub(crate) fn execute(
        &mut self,
        lun: u64,
        itt: u32,
        cdb16: &[u8; 16],
        edtl: u32,
        data_out: &[u8],
        write_residual: Option<(bool, u32)>,
    ) -> io::Result<()> {
        let cdb = &cdb16[..cdb_len(cdb16)];
        if cdb[0] == 0xa0 {
            let (c, data_in) = self.report_luns(cdb, edtl);
            return self.complete(lun, itt, edtl, c, &data_in, write_residual);
        }
        let Some((_, lu)) = self.lu(lun) else {
            let (c, data_in) = self.missing_lun(cdb, edtl);
            return self.complete(lun, itt, edtl, c, &data_in, write_residual);
        };
        let reads = data_out.is_empty() && write_residual.is_none();
        if reads {
            if let Some(r) = self.chunked_read(lun, cdb16) {
                return self.read_in_chunks(lun, itt, cdb16, edtl, r);
            }
        }
        let len = if reads {
            let spdtl = self
                .lu_transfer_length(lun, cdb16)
                .filter(|n| *n <= MAX_TRANSFER as u64)
                .unwrap_or(0);
            (edtl as u64).max(spdtl) as usize
        } else {
            0
        };
        if !self.account.take(len, BUDGET_WAIT) {
            return self.respond_status(itt, Status::BUSY);
        }
        let mut data_in = vec![0u8; len];
        let ran = {
            let mut g = lock(&lu);
            match g.background(&self.nexus, cdb, data_out) {
                Some(job) => Err(job),
                None => Ok(g.execute_for(&self.nexus, cdb, data_out, &mut data_in)),
            }
        };
        let r = match ran {
            Ok(c) => self.complete(lun, itt, edtl, c, &data_in, write_residual),
            Err(job) => self.start_background(lun, itt, edtl, write_residual, job),
        };
        drop(data_in);
        self.account.give(len);
        r
    }

    /// A disk READ(10/12/16) above [`READ_CHUNK`] bytes, whose chunks'
    /// LBAs fit its CDB.
    fn chunked_read(&mut self, lun: u64, cdb: &[u8; 16]) -> Option<ChunkedRead> {
        let (lba_field, len_field) = match cdb[0] {
            0x28 => (2..6, 7..9),
            0xa8 => (2..6, 6..10),
            0x88 => (2..10, 10..14),
            _ => return None,
        };
        let (_, lu) = self.lu(lun)?;
        let g = self.geometry(lun, &lu);
        let block_size = g.block_size.filter(|_| g.disk)?;
        let (lba, blocks) = (be(cdb, lba_field.clone()), be(cdb, len_field.clone()));
        if blocks * block_size as u64 <= READ_CHUNK as u64 {
            return None;
        }
        let lba_max = if lba_field.len() == 4 {
            u32::MAX as u64
        } else {
            u64::MAX
        };
        if lba
            .checked_add(blocks - 1)
            .is_none_or(|last| last > lba_max)
        {
            return None;
        }
        Some(ChunkedRead {
            lba,
            blocks,
            block_size,
            lba_field,
            len_field,
        })
    }

    /// One chunk of a chunked READ: `count` blocks from block `first` of
    /// it, read into memory taken from the budget (give it back with
    /// [`Connection::release`]); or the command's failure.
    fn read_chunk(
        &mut self,
        lun: u64,
        cdb: &[u8; 16],
        r: &ChunkedRead,
        (first, count): (u64, u64),
    ) -> Result<Vec<u8>, Completion> {
        let busy = Completion {
            status: Status::BUSY,
            sense: Vec::new(),
            data_in_len: 0,
        };
        let len = (count * r.block_size as u64) as usize;
        let Some((_, lu)) = self.lu(lun) else {
            return Err(busy);
        };
        if !self.account.take(len, BUDGET_WAIT) {
            return Err(busy);
        }
        let mut sub = *cdb;
        let (lf, nf) = (r.lba_field.clone(), r.len_field.clone());
        let (lw, nw) = (lf.len(), nf.len());
        sub[lf].copy_from_slice(&(r.lba + first).to_be_bytes()[8 - lw..]);
        sub[nf].copy_from_slice(&count.to_be_bytes()[8 - nw..]);
        let mut buf = vec![0u8; len];
        let c = lock(&lu).execute_for(&self.nexus, &sub[..cdb_len(&sub)], &[], &mut buf);
        if c.status != Status::GOOD || c.data_in_len < len {
            self.account.give(len);
            return Err(c);
        }
        Ok(buf)
    }

    fn release(&mut self, buf: Vec<u8>) {
        self.account.give(buf.len());
    }

    /// A large disk READ, produced and sent a chunk at a time. The last
    /// chunk is read first: a range past the capacity fails there, before
    /// any data is sent, as the whole READ would (SBC-3 4.5).
    fn read_in_chunks(
        &mut self,
        lun: u64,
        itt: u32,
        cdb: &[u8; 16],
        edtl: u32,
        r: ChunkedRead,
    ) -> io::Result<()> {
        let per = (READ_CHUNK as u64 / r.block_size as u64).max(1);
        let n = r.blocks.div_ceil(per);
        let chunk = |k: u64| (k * per, per.min(r.blocks - k * per));
        let mut last = match self.read_chunk(lun, cdb, &r, chunk(n - 1)) {
            Ok(b) => Some(b),
            Err(c) => return self.complete(lun, itt, edtl, c, &[], None),
        };
        let spdtl = r.blocks * r.block_size as u64;
        let (overflow, underflow, residual) = residual_of(spdtl, edtl, None, true);
        let fin = Collapse {
            status: Status::GOOD.0,
            overflow,
            underflow,
            residual,
        };
        let total = spdtl.min(edtl as u64) as usize;
        let mut seq = DataInSeq::default();
        let mut failed = None;
        for k in 0..n {
            if seq.offset >= total {
                break;
            }
            let read = if k + 1 == n {
                Ok(last.take().expect("the last chunk is read first"))
            } else {
                self.read_chunk(lun, cdb, &r, chunk(k))
            };
            let data = match read {
                Ok(b) => b,
                Err(c) => {
                    failed = Some(c);
                    break;
                }
            };
            let end = (seq.offset + data.len()).min(total);
            let is_end = end == total;
            let part = &data[..end - seq.offset];
            let sent = self.send_data_in(lun, itt, &mut seq, part, is_end, is_end.then_some(fin));
            self.release(data);
            sent?;
        }
        if let Some(b) = last.take() {
            self.release(b);
        }
        match failed {
            Some(c) => self.scsi_response(itt, &c, false, false, 0, seq.data_sn),
            None if total == 0 => {
                let c = Completion::good(0);
                self.scsi_response(itt, &c, overflow, underflow, residual, 0)
            }
            None => Ok(()),
        }
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
    pub(crate) fn complete(
        &mut self,
        lun: u64,
        itt: u32,
        edtl: u32,
        c: Completion,
        data_in: &[u8],
        write_residual: Option<(bool, u32)>,
    ) -> io::Result<()> {
        let produced = c.data_in_len.min(data_in.len()) as u64;
        let (overflow, underflow, residual) =
            residual_of(produced, edtl, write_residual, !data_in.is_empty());
        let sent = produced.min(edtl as u64) as usize;
        if sent == 0 {
            return self.scsi_response(itt, &c, overflow, underflow, residual, 0);
        }
        let collapse = c.sense.is_empty().then_some(Collapse {
            status: c.status.0,
            overflow,
            underflow,
            residual,
        });
        let mut seq = DataInSeq::default();
        self.send_data_in(lun, itt, &mut seq, &data_in[..sent], true, collapse)?;
        if collapse.is_some() {
            return Ok(());
        }
        self.scsi_response(itt, &c, overflow, underflow, residual, seq.data_sn)
    }

    /// `data` as Data-In PDUs continuing `seq`: at most the initiator's
    /// MaxRecvDataSegmentLength each, F at every MaxBurstLength boundary
    /// (13.13) and on the command's last PDU (`end`), which carries the
    /// status when `collapse` is given.
    fn send_data_in(
        &mut self,
        lun: u64,
        itt: u32,
        seq: &mut DataInSeq,
        data: &[u8],
        end: bool,
        collapse: Option<Collapse>,
    ) -> io::Result<()> {
        let seg = (self.params.initiator_mrdsl as usize).max(512);
        let burst = (self.params.max_burst_length as usize).max(1);
        let mut pos = 0usize;
        while pos < data.len() {
            let n = seg.min(data.len() - pos).min(burst - seq.offset % burst);
            let last = end && pos + n == data.len();
            let status = collapse.filter(|_| last);
            let h = Header::DataIn(DataIn {
                final_bit: last || (seq.offset + n) % burst == 0,
                ack: false,
                overflow: status.is_some_and(|s| s.overflow),
                underflow: status.is_some_and(|s| s.underflow),
                status: status.map(|s| s.status),
                lun,
                itt,
                ttt: RESERVED_TAG,
                stat_sn: if status.is_some() {
                    self.next_stat_sn()
                } else {
                    self.stat_sn
                },
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
                data_sn: seq.data_sn,
                buffer_offset: seq.offset as u32,
                residual: status.map_or(0, |s| s.residual),
            });
            self.send(h, &data[pos..pos + n])?;
            pos += n;
            seq.offset += n;
            seq.data_sn = seq.data_sn.wrapping_add(1);
        }
        Ok(())
    }
}

/// 11.7.5, 13.18/13.19 (in order): DataSN and offset must be the next
/// ones. At ERL 0 there is no recovery within the command: it ends in
/// CHECK CONDITION (11.4.7.2), the rest of its data is dropped.
fn sequence_fault(t: &WriteTask, h: &DataOut) -> Option<(Asc, String)> {
    if h.data_sn != t.next_data_sn {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdb_lengths_by_group_code() {
        let len = |op: u8| {
            let mut c = [0u8; 16];
            c[0] = op;
            cdb_len(&c)
        };
        assert_eq!(len(0x00), 6); // TEST UNIT READY
        assert_eq!(len(0x28), 10); // READ(10)
        assert_eq!(len(0x5a), 10); // MODE SENSE(10)
        assert_eq!(len(0xa0), 12); // REPORT LUNS
        assert_eq!(len(0x88), 16); // READ(16)
        assert_eq!(len(0x83), 16); // EXTENDED COPY
    }

    #[test]
    fn residuals() {
        assert_eq!(residual_of(512, 1024, None, true), (false, true, 512));
        assert_eq!(residual_of(1024, 512, None, true), (true, false, 512));
        assert_eq!(residual_of(0, 512, None, false), (false, false, 0));
        assert_eq!(
            residual_of(0, 512, Some((true, 7)), false),
            (true, false, 7)
        );
    }
}
