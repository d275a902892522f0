//! Carrying out a checked plan, segment by segment.
//!
//! Data path of block to stream (00h) from a backend disk: a reader thread
//! owns the disk session for the run of 00h segments that read it (up to
//! the next segment that writes to a disk) and keeps READ(16)s in flight
//! across segment boundaries; this thread assembles stream blocks and
//! writes them to the tape. A bounded channel between the two sets the
//! pace and bounds memory whatever the segment lengths: 8 READs in flight
//! and 8 messages queued, each at most 1 MiB, or one stream block (at most
//! the MAXIMUM STREAM DEVICE TRANSFER SIZE) when the reader frames a
//! header+payload block itself; plus the block being written.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::device::disk::Chunk;
use crate::device::tape::ReadOutcome;
use crate::device::{DeviceError, Disk, Tape};
use crate::lu::{MemDisk, TaskStop};
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::xcopy::{list_id_usage, CopyEnd};
use crate::scsi::{BlockSize, Lba};

use super::backends::{Backends, BoxT, Unit};
use super::plan::{End, Op, Plan, Target};
use super::sense::Abort;

/// Largest single READ/WRITE the router issues to a disk.
const CHUNK: usize = 1 << 20;
/// READ(16)s kept in flight by the prefetching reader.
const DEPTH: usize = 8;

const THIRD_PARTY_DEVICE_FAILURE: Asc = Asc::new(0x0d, 0x01);
const DATA_UNDERRUN: Asc = Asc::new(0x0d, 0x04);
const DATA_OVERRUN: Asc = Asc::new(0x0d, 0x05);

/// What a finished (or aborted) copy did, for RECEIVE COPY RESULTS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub segments_done: usize,
    pub bytes: u64,
    /// CRC32C of each stream block written (LIST ID USAGE 00b only).
    pub crcs: Vec<u32>,
}

enum Msg {
    /// A chunk of step `.0`'s data.
    Data(usize, Vec<u8>),
    /// All of step `.0`'s data already framed as one stream block: the
    /// first `headroom` bytes are left for the residual the step starts
    /// with, `crc` is the CRC32C of the rest (0 when nothing is held).
    Block {
        step: usize,
        block: Vec<u8>,
        headroom: usize,
        crc: u32,
    },
    Failed(DeviceError),
}

/// One 00h step the reader reads: step index, LBA, blocks, and for a step
/// whose data plus the residual before it make exactly one stream block,
/// that residual's length (the reader then frames the block itself, off
/// the tape writer's thread, as the host engine's reader does).
struct Job {
    step: usize,
    lba: u64,
    blocks: u64,
    frame: Option<usize>,
}

enum PfErr {
    Dev(DeviceError),
    Stopped,
}

impl From<DeviceError> for PfErr {
    fn from(e: DeviceError) -> Self {
        PfErr::Dev(e)
    }
}

/// A reader thread lent backend `backend`'s session.
struct Prefetch {
    backend: usize,
    last_step: usize,
    rx: mpsc::Receiver<Msg>,
    spare: mpsc::Sender<Vec<u8>>,
    handle: JoinHandle<Unit>,
}

/// When a copy must stop: a task management function (`stop`), and the
/// per-command caps. Checked at every block boundary.
#[derive(Default)]
pub(crate) struct Caps<'a> {
    pub max_bytes: Option<u64>,
    pub deadline: Option<Instant>,
    pub stop: Option<&'a TaskStop>,
}

/// COMMAND TIMEOUT DURING PROCESSING (SPC-5 Annex D): a copy past its time
/// cap.
const COMMAND_TIMEOUT: Asc = Asc::new(0x2e, 0x02);

pub(crate) struct Exec<'a> {
    caps: Caps<'a>,
    own: &'a mut MemDisk,
    backends: &'a mut Backends,
    plan: &'a Plan,
    hold: bool,
    out: Outcome,
    /// Partial stream blocks kept by CAT=1, per destination.
    residual: HashMap<End, Vec<u8>>,
    /// Bytes read past what a stream to block segment needed (CAT=1).
    src_residual: HashMap<End, Vec<u8>>,
    prefetch: Option<Prefetch>,
    /// Emptied stream block buffers, reused so a block is not a fresh
    /// (page-faulting) allocation each time.
    spare_blocks: Vec<Vec<u8>>,
}

impl<'a> Exec<'a> {
    pub fn new(own: &'a mut MemDisk, backends: &'a mut Backends, plan: &'a Plan) -> Self {
        Exec {
            caps: Caps::default(),
            own,
            backends,
            plan,
            hold: plan.usage == list_id_usage::HOLD,
            out: Outcome::default(),
            residual: HashMap::new(),
            src_residual: HashMap::new(),
            prefetch: None,
            spare_blocks: Vec::new(),
        }
    }

    pub fn with_caps(mut self, caps: Caps<'a>) -> Self {
        self.caps = caps;
        self
    }

    /// Go on only if the copy was not stopped and is within its caps.
    fn check(&self, i: usize) -> Result<(), Abort> {
        if self.caps.stop.is_some_and(|s| s.is_stopped()) {
            return Err(Abort::new(
                i,
                Asc::NO_ADDITIONAL,
                "stopped by a task management function",
            ));
        }
        if let Some(m) = self.caps.max_bytes.filter(|m| self.out.bytes >= *m) {
            let why = format!("past the {m} bytes one command may copy");
            return Err(Abort::new(i, Asc::INSUFFICIENT_RESOURCES, why));
        }
        if self.caps.deadline.is_some_and(|d| Instant::now() >= d) {
            let why = "past the time one command may run";
            return Err(Abort::new(i, COMMAND_TIMEOUT, why));
        }
        Ok(())
    }

    /// Run every step; on failure, what was done and why it stopped.
    pub fn run(mut self) -> (Outcome, Option<Abort>) {
        let r = self.run_steps();
        self.stop_prefetch();
        (self.out, r.err())
    }

    fn run_steps(&mut self) -> Result<(), Abort> {
        for i in 0..self.plan.steps.len() {
            if self.prefetch.as_ref().is_some_and(|p| i > p.last_step) {
                self.stop_prefetch();
            }
            self.check(i)?;
            self.step(i)?;
            self.out.segments_done = i + 1;
        }
        self.stop_prefetch();
        // Residual data at the end of the command is written, not lost.
        let last = self.plan.steps.len().saturating_sub(1);
        let ends: Vec<End> = self.residual.keys().copied().collect();
        for end in ends {
            if let Some(buf) = self.residual.remove(&end) {
                if !buf.is_empty() {
                    self.write_stream_block(last, end, buf)?;
                }
            }
        }
        Ok(())
    }

    fn target(&self, idx: usize) -> Target {
        // The planner resolved every CSCD a step names.
        self.plan.targets[idx].expect("planned CSCD")
    }

    fn step(&mut self, i: usize) -> Result<(), Abort> {
        let step = &self.plan.steps[i];
        let cat = step.cat;
        match step.op.clone() {
            Op::BlockToStream {
                src,
                dst,
                lba,
                bytes,
                stream_len,
            } => self.block_to_stream(i, src, dst, lba, bytes, stream_len, cat),
            Op::StreamToBlock {
                src,
                dst,
                lba,
                bytes,
                stream_len,
            } => self.stream_to_block(i, src, dst, lba, bytes, stream_len, cat),
            Op::BlockToBlock {
                src,
                dst,
                src_byte,
                dst_byte,
                bytes,
            } => self.block_to_block(i, src, dst, src_byte, dst_byte, bytes),
            Op::Inline {
                dst,
                stream_len,
                start,
                len,
            } => {
                let end = self.target(dst).end;
                let mut w = self.stream_start(end);
                let data = &self.plan.inline[start..start + len];
                let r = self.stream_feed(i, end, stream_len, &mut w, data);
                self.stream_finish(i, end, w, cat, r)
            }
            Op::Discard {
                src,
                stream_len,
                bytes,
            } => {
                let end = self.target(src).end;
                let mut left = bytes;
                while left > 0 {
                    self.check(i)?;
                    let n = self.read_stream_block(i, end, stream_len)?.len() as u64;
                    left = left.saturating_sub(n);
                }
                Ok(())
            }
            Op::Filemarks { dst, count } => {
                let end = self.target(dst).end;
                let r = self.tape(i, end)?.write_filemarks(count);
                r.map_err(|e| self.dev_abort(i, end, CopyEnd::Destination, e))
            }
            Op::Space { dst, code, count } => {
                let end = self.target(dst).end;
                let tape = self.tape(i, end)?;
                let r = match code {
                    0 => tape.space_blocks(count),
                    1 => tape.space_filemarks(count),
                    _ => tape.space_to_eod(),
                };
                r.map_err(|e| self.dev_abort(i, end, CopyEnd::Destination, e))
            }
            Op::Locate { dst, block } => {
                let end = self.target(dst).end;
                let r = self.tape(i, end)?.locate(block);
                r.map_err(|e| {
                    if e.is_unsupported_command() {
                        if let End::Backend(b) = end {
                            self.backends.units[b].info.locate = Some(false);
                        }
                    }
                    self.dev_abort(i, end, CopyEnd::Destination, e)
                })
            }
        }
    }

    // ---- block to stream (00h) ----

    #[allow(clippy::too_many_arguments)]
    fn block_to_stream(
        &mut self,
        i: usize,
        src: usize,
        dst: usize,
        lba: u64,
        bytes: u64,
        stream_len: u32,
        cat: bool,
    ) -> Result<(), Abort> {
        let s = self.target(src);
        let dend = self.target(dst).end;
        let mut w = self.stream_start(dend);
        let r = match s.end {
            End::Own => {
                let start = lba.saturating_mul(s.block_size as u64);
                match own_range(self.own, start, bytes) {
                    Err(sense) => Err(Abort::new(i, Asc::NO_ADDITIONAL, "source LBA out of range")
                        .with_embedded(CopyEnd::Source, sense)),
                    Ok(r) => {
                        let mut res = Ok(());
                        let mut off = r.start;
                        while off < r.end && res.is_ok() {
                            res = self.check(i);
                            let n = (r.end - off).min(CHUNK);
                            let piece = self.own.data()[off..off + n].to_vec();
                            res = res.and_then(|_| {
                                self.stream_feed(i, dend, stream_len, &mut w, &piece)
                            });
                            off += n;
                        }
                        res
                    }
                }
            }
            End::Backend(b) => {
                self.feed_from_prefetch(i, b, s.block_size, dend, stream_len, &mut w)
            }
        };
        self.stream_finish(i, dend, w, cat, r)
    }

    fn feed_from_prefetch(
        &mut self,
        i: usize,
        b: usize,
        bs: u32,
        dend: End,
        stream_len: u32,
        w: &mut Vec<u8>,
    ) -> Result<(), Abort> {
        if self.prefetch.as_ref().is_none_or(|p| p.backend != b) {
            self.stop_prefetch();
            self.start_prefetch(i, b, bs)?;
        }
        let Op::BlockToStream { bytes, .. } = self.plan.steps[i].op else {
            unreachable!("feed_from_prefetch on a 00h step")
        };
        let mut got = 0u64;
        while got < bytes {
            self.check(i)?;
            let msg = self.prefetch.as_ref().map(|p| p.rx.recv());
            match msg {
                Some(Ok(Msg::Data(j, data))) if j == i => {
                    got += data.len() as u64;
                    let r = self.stream_feed(i, dend, stream_len, w, &data);
                    if let Some(p) = &self.prefetch {
                        let _ = p.spare.send(data);
                    }
                    r?;
                }
                Some(Ok(Msg::Block {
                    step,
                    mut block,
                    headroom,
                    crc,
                })) if step == i => {
                    got += (block.len() - headroom) as u64;
                    let r = if w.len() == headroom && block.len() == stream_len as usize {
                        block[..headroom].copy_from_slice(w);
                        let crc =
                            crc32c::crc32c_combine(crc32c::crc32c(w), crc, block.len() - headroom);
                        w.clear();
                        self.write_block_crc(i, dend, block, Some(crc)).map(Some)
                    } else {
                        // Not the framing the plan predicted: feed it.
                        let r = self.stream_feed(i, dend, stream_len, w, &block[headroom..]);
                        r.map(|_| Some(block))
                    };
                    let back = r?;
                    if let (Some(p), Some(b)) = (&self.prefetch, back) {
                        let _ = p.spare.send(b);
                    }
                }
                Some(Ok(Msg::Data(j, _) | Msg::Block { step: j, .. })) => {
                    return Err(Abort::new(
                        i,
                        THIRD_PARTY_DEVICE_FAILURE,
                        format!("reader delivered segment {j}'s data during segment {i}"),
                    ))
                }
                Some(Ok(Msg::Failed(e))) => {
                    self.stop_prefetch();
                    return Err(self.dev_abort(i, End::Backend(b), CopyEnd::Source, e));
                }
                Some(Err(_)) | None => {
                    self.stop_prefetch();
                    return Err(Abort::new(
                        i,
                        THIRD_PARTY_DEVICE_FAILURE,
                        "the disk reader stopped",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Lend backend `b`'s session to a reader for step `i` and the later
    /// 00h steps that read it, up to the first step that writes a disk.
    fn start_prefetch(&mut self, i: usize, b: usize, bs: u32) -> Result<(), Abort> {
        let jobs = self.prefetch_jobs(i, b, bs);
        let last_step = jobs.last().map_or(i, |j| j.step);
        let hold = self.hold;
        let disk = self.lend_disk(i, b)?;
        let (tx, rx) = mpsc::sync_channel::<Msg>(DEPTH);
        let (spare, spare_rx) = mpsc::channel::<Vec<u8>>();
        let reader = Reader { jobs, bs, hold };
        let handle = std::thread::spawn(move || reader.run(disk, tx, spare_rx));
        self.prefetch = Some(Prefetch {
            backend: b,
            last_step,
            rx,
            spare,
            handle,
        });
        Ok(())
    }

    /// The 00h steps from `i` on that read backend `b`, up to the first
    /// step that writes a disk.
    fn prefetch_jobs(&self, i: usize, b: usize, bs: u32) -> Vec<Job> {
        let before = self.residual_before();
        let mut jobs: Vec<Job> = Vec::new();
        for (j, st) in self.plan.steps.iter().enumerate().skip(i) {
            match st.op {
                Op::BlockToStream {
                    src,
                    lba,
                    bytes,
                    stream_len,
                    ..
                } if self.plan.targets[src].map(|t| t.end) == Some(End::Backend(b)) => {
                    let r = before[j];
                    jobs.push(Job {
                        step: j,
                        lba,
                        blocks: bytes / bs as u64,
                        frame: (bytes > 0 && r + bytes == stream_len as u64).then_some(r as usize),
                    });
                }
                Op::StreamToBlock { .. } | Op::BlockToBlock { .. } => break,
                _ => {}
            }
        }
        jobs
    }

    /// Take backend `b`'s disk session out of the backends for a reader.
    fn lend_disk(&mut self, i: usize, b: usize) -> Result<Disk<BoxT>, Abort> {
        self.backends
            .ensure_open(b)
            .map_err(|e| Abort::new(i, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE, e.to_string()))?;
        let unit = self.backends.units[b].unit.take();
        let Some(Unit::Disk(disk)) = unit else {
            self.backends.units[b].unit = unit;
            return Err(Abort::new(
                i,
                Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
                "source is not an open disk",
            ));
        };
        Ok(disk)
    }

    /// Take the session back from the reader (it stops at its next send).
    fn stop_prefetch(&mut self) {
        let Some(p) = self.prefetch.take() else {
            return;
        };
        drop(p.rx);
        drop(p.spare);
        match p.handle.join() {
            Ok(unit) => self.backends.units[p.backend].unit = Some(unit),
            Err(_) => log::error!(
                "{}: disk reader panicked; the session is dropped",
                self.backends.units[p.backend].info.name
            ),
        }
    }

    /// For each step, the residual length its destination holds before
    /// it runs: the CAT arithmetic of `stream_feed`/`stream_finish`, from
    /// the plan alone (lengths do not depend on the data).
    fn residual_before(&self) -> Vec<u64> {
        let mut held: HashMap<End, u64> = HashMap::new();
        let mut out = Vec::with_capacity(self.plan.steps.len());
        for st in &self.plan.steps {
            let (dst, bytes, sl) = match st.op {
                Op::BlockToStream {
                    dst,
                    bytes,
                    stream_len,
                    ..
                } => (dst, bytes, stream_len as u64),
                Op::Inline {
                    dst,
                    len,
                    stream_len,
                    ..
                } => (dst, len as u64, stream_len as u64),
                _ => {
                    out.push(0);
                    continue;
                }
            };
            let end = self.target(dst).end;
            let r = held.entry(end).or_default();
            out.push(*r);
            *r = if st.cat { (*r + bytes) % sl } else { 0 };
        }
        out
    }

    // ---- stream writing ----

    /// The partial block a destination holds (CAT residual), to add to.
    fn stream_start(&mut self, end: End) -> Vec<u8> {
        match self.residual.remove(&end) {
            Some(w) => w,
            None => self.spare_blocks.pop().unwrap_or_default(),
        }
    }

    /// Add `data` to the partial block `w`, writing every full block of
    /// `stream_len` bytes.
    fn stream_feed(
        &mut self,
        i: usize,
        end: End,
        stream_len: u32,
        w: &mut Vec<u8>,
        mut data: &[u8],
    ) -> Result<(), Abort> {
        let sl = stream_len as usize;
        // A residual from a segment with a larger transfer length.
        while w.len() >= sl {
            let rest = w.split_off(sl);
            let full = std::mem::replace(w, rest);
            self.write_stream_block(i, end, full)?;
        }
        while !data.is_empty() {
            if w.capacity() < sl {
                w.reserve_exact(sl - w.len());
            }
            let take = (sl - w.len()).min(data.len());
            w.extend_from_slice(&data[..take]);
            data = &data[take..];
            if w.len() == sl {
                let full = std::mem::take(w);
                let mut back = self.write_stream_block(i, end, full)?;
                back.clear();
                *w = back;
            }
        }
        Ok(())
    }

    /// End of a segment's stream data: CAT=1 keeps the partial block as
    /// residual for the next segment, CAT=0 writes it as a short block
    /// (SPC-4 6.4.6.1).
    fn stream_finish(
        &mut self,
        i: usize,
        end: End,
        w: Vec<u8>,
        cat: bool,
        r: Result<(), Abort>,
    ) -> Result<(), Abort> {
        r?;
        let spare = if cat {
            self.residual.insert(end, w);
            None
        } else if !w.is_empty() {
            Some(self.write_stream_block(i, end, w)?)
        } else {
            Some(w)
        };
        if let Some(mut b) = spare {
            if self.spare_blocks.len() < 2 {
                b.clear();
                self.spare_blocks.push(b);
            }
        }
        Ok(())
    }

    /// One WRITE(6) of a variable block; returns the buffer for reuse.
    fn write_stream_block(&mut self, i: usize, end: End, block: Vec<u8>) -> Result<Vec<u8>, Abort> {
        self.write_block_crc(i, end, block, None)
    }

    /// [`Exec::write_stream_block`] with the block's CRC32C when the
    /// caller has it already.
    fn write_block_crc(
        &mut self,
        i: usize,
        end: End,
        block: Vec<u8>,
        known: Option<u32>,
    ) -> Result<Vec<u8>, Abort> {
        self.check(i)?;
        let crc = self
            .hold
            .then(|| known.unwrap_or_else(|| crc32c::crc32c(&block)));
        let n = block.len() as u64;
        let r = self.tape(i, end)?.write_block_buf(block);
        match r {
            Ok((w, back)) => {
                self.out.crcs.extend(crc);
                self.out.bytes += n;
                if w.early_warning {
                    // SSC-4 4.2.5: written, but the medium is nearly full.
                    let tape_sense =
                        Sense::new(SenseKey::NO_SENSE, Asc::END_OF_PARTITION_MEDIUM).with_eom();
                    return Err(Abort::new(
                        i,
                        Asc::NO_ADDITIONAL,
                        "the tape reached early warning",
                    )
                    .with_embedded(CopyEnd::Destination, tape_sense.to_fixed()));
                }
                Ok(back)
            }
            Err(e) => Err(self.dev_abort(i, end, CopyEnd::Destination, e)),
        }
    }

    // ---- stream reading (01h, 06h) ----

    /// One READ(6) of up to `stream_len` bytes: the block's data.
    fn read_stream_block(&mut self, i: usize, end: End, stream_len: u32) -> Result<Vec<u8>, Abort> {
        let r = self.tape(i, end)?.read_block(vec![0; stream_len as usize]);
        match r {
            Ok((ReadOutcome::Block(n), mut buf)) => {
                buf.truncate(n);
                Ok(buf)
            }
            Ok((ReadOutcome::Filemark, _)) => {
                Err(
                    Abort::new(i, DATA_UNDERRUN, "the source tape reached a filemark")
                        .with_embedded(
                            CopyEnd::Source,
                            Sense::new(SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED)
                                .with_filemark()
                                .to_fixed(),
                        ),
                )
            }
            Ok((ReadOutcome::EndOfData, _)) => {
                Err(
                    Abort::new(i, DATA_UNDERRUN, "the source tape reached end of data")
                        .with_embedded(
                            CopyEnd::Source,
                            Sense::new(SenseKey::BLANK_CHECK, Asc::END_OF_DATA)
                                .with_eom()
                                .to_fixed(),
                        ),
                )
            }
            Err(e @ DeviceError::Protocol { .. }) => {
                Err(Abort::new(i, DATA_OVERRUN, e.to_string()))
            }
            Err(e) => Err(self.dev_abort(i, end, CopyEnd::Source, e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn stream_to_block(
        &mut self,
        i: usize,
        src: usize,
        dst: usize,
        lba: u64,
        bytes: u64,
        stream_len: u32,
        cat: bool,
    ) -> Result<(), Abort> {
        let send = self.target(src).end;
        let d = self.target(dst);
        let mut pending = self.src_residual.remove(&send).unwrap_or_default();
        let mut at = lba.saturating_mul(d.block_size as u64);
        let mut left = bytes;
        while left > 0 {
            self.check(i)?;
            while (pending.len() as u64) < left.min(CHUNK as u64) {
                let blk = self.read_stream_block(i, send, stream_len)?;
                if blk.is_empty() {
                    return Err(Abort::new(i, DATA_UNDERRUN, "empty tape block"));
                }
                pending.extend_from_slice(&blk);
            }
            let n = (pending.len() as u64).min(left).min(CHUNK as u64) as usize;
            let rest = pending.split_off(n);
            self.write_bytes(i, d, at, &pending)?;
            pending = rest;
            at = at.saturating_add(n as u64);
            left -= n as u64;
        }
        if cat && !pending.is_empty() {
            self.src_residual.insert(send, pending);
        }
        Ok(())
    }

    // ---- block to block (02h, 0Ah) ----

    fn block_to_block(
        &mut self,
        i: usize,
        src: usize,
        dst: usize,
        src_byte: u64,
        dst_byte: u64,
        bytes: u64,
    ) -> Result<(), Abort> {
        let (s, d) = (self.target(src), self.target(dst));
        if s.end == End::Own && d.end == End::Own {
            let r = own_range(self.own, src_byte, bytes).map_err(|sense| {
                Abort::new(i, Asc::NO_ADDITIONAL, "source range outside the LU")
                    .with_embedded(CopyEnd::Source, sense)
            })?;
            let w = own_range(self.own, dst_byte, bytes).map_err(|sense| {
                Abort::new(i, Asc::NO_ADDITIONAL, "destination range outside the LU")
                    .with_embedded(CopyEnd::Destination, sense)
            })?;
            // In chunks, back to front when the destination is after an
            // overlapping source (memmove order).
            let len = r.len();
            let backward = w.start > r.start;
            let mut done = 0usize;
            while done < len {
                self.check(i)?;
                let n = (len - done).min(CHUNK);
                let at = if backward { len - done - n } else { done };
                let from = r.start + at;
                self.own
                    .data_mut()
                    .copy_within(from..from + n, w.start + at);
                self.out.bytes += n as u64;
                done += n;
            }
            return Ok(());
        }
        let mut done = 0u64;
        while done < bytes {
            self.check(i)?;
            let n = (bytes - done).min(CHUNK as u64) as usize;
            let data = self.read_bytes(i, s, src_byte.saturating_add(done), n)?;
            self.write_bytes(i, d, dst_byte.saturating_add(done), &data)?;
            done += n as u64;
        }
        Ok(())
    }

    fn read_bytes(&mut self, i: usize, t: Target, at: u64, len: usize) -> Result<Vec<u8>, Abort> {
        match t.end {
            End::Own => match own_range(self.own, at, len as u64) {
                Ok(r) => Ok(self.own.data()[r].to_vec()),
                Err(sense) => Err(Abort::new(i, Asc::NO_ADDITIONAL, "source LBA out of range")
                    .with_embedded(CopyEnd::Source, sense)),
            },
            End::Backend(_) => {
                let bs = t.block_size as u64;
                let first = at / bs;
                let Some(end) = at.checked_add(len as u64) else {
                    return Err(out_of_range(i, CopyEnd::Source));
                };
                let last = end.div_ceil(bs);
                let blocks = (last - first) as u32;
                let r = self
                    .disk(i, t.end)?
                    .read(Lba(first), blocks, BlockSize(t.block_size));
                let buf = r.map_err(|e| self.dev_abort(i, t.end, CopyEnd::Source, e))?;
                let skip = (at - first * bs) as usize;
                Ok(buf[skip..skip + len].to_vec())
            }
        }
    }

    fn write_bytes(&mut self, i: usize, t: Target, at: u64, data: &[u8]) -> Result<(), Abort> {
        match t.end {
            End::Own => match own_range(self.own, at, data.len() as u64) {
                Ok(r) => {
                    self.own.data_mut()[r].copy_from_slice(data);
                    self.out.bytes += data.len() as u64;
                    Ok(())
                }
                Err(sense) => {
                    Err(
                        Abort::new(i, Asc::NO_ADDITIONAL, "destination LBA out of range")
                            .with_embedded(CopyEnd::Destination, sense),
                    )
                }
            },
            End::Backend(_) => {
                let bs = t.block_size as u64;
                let first = at / bs;
                let Some(end) = at.checked_add(data.len() as u64) else {
                    return Err(out_of_range(i, CopyEnd::Destination));
                };
                let last = end.div_ceil(bs);
                let head = (at - first * bs) as usize;
                let buf = if head == 0 && data.len() as u64 % bs == 0 {
                    data.to_vec()
                } else {
                    // Partial blocks (0Ah with byte offsets): read, merge.
                    let mut whole =
                        self.read_bytes(i, t, first * bs, ((last - first) * bs) as usize)?;
                    whole[head..head + data.len()].copy_from_slice(data);
                    whole
                };
                let r = self
                    .disk(i, t.end)?
                    .write(Lba(first), BlockSize(t.block_size), buf);
                r.map_err(|e| self.dev_abort(i, t.end, CopyEnd::Destination, e))?;
                self.out.bytes += data.len() as u64;
                Ok(())
            }
        }
    }

    // ---- backend access and errors ----

    fn unit(&mut self, i: usize, end: End) -> Result<&mut Unit, Abort> {
        let End::Backend(b) = end else {
            return Err(Abort::new(
                i,
                Asc::new(0x0d, 0x03),
                "the router's own LU is not a tape",
            ));
        };
        self.backends
            .ensure_open(b)
            .map_err(|e| Abort::new(i, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE, e.to_string()))?;
        match self.backends.units[b].unit.as_mut() {
            Some(u) => Ok(u),
            None => Err(Abort::new(
                i,
                Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
                "backend session is down",
            )),
        }
    }

    fn tape(&mut self, i: usize, end: End) -> Result<&mut Tape<BoxT>, Abort> {
        match self.unit(i, end)? {
            Unit::Tape(t) => Ok(t),
            _ => Err(Abort::new(i, Asc::new(0x0d, 0x03), "backend is not a tape")),
        }
    }

    fn disk(&mut self, i: usize, end: End) -> Result<&mut crate::device::Disk<BoxT>, Abort> {
        match self.unit(i, end)? {
            Unit::Disk(d) => Ok(d),
            _ => Err(Abort::new(i, Asc::new(0x0d, 0x03), "backend is not a disk")),
        }
    }

    /// COPY ABORTED for a backend command that failed: its sense embedded
    /// when it sent one; a lost session drops the backend's session so
    /// the next copy reconnects.
    fn dev_abort(&mut self, i: usize, end: End, from: CopyEnd, e: DeviceError) -> Abort {
        log::warn!("segment {i}: {e}");
        match e {
            DeviceError::Check { ref raw_sense, .. } => {
                Abort::new(i, Asc::NO_ADDITIONAL, e.to_string())
                    .with_embedded(from, raw_sense.clone())
            }
            DeviceError::Transport { .. } => {
                if let End::Backend(b) = end {
                    self.backends.units[b].unit = None;
                }
                Abort::new(i, Asc::COPY_TARGET_DEVICE_NOT_REACHABLE, e.to_string())
            }
            _ => Abort::new(i, THIRD_PARTY_DEVICE_FAILURE, e.to_string()),
        }
    }
}

/// The prefetch thread's work: read the jobs' chunks pipelined, frame the
/// framed steps and send each chunk on; the disk goes back when done.
struct Reader {
    jobs: Vec<Job>,
    bs: u32,
    hold: bool,
}

impl Reader {
    fn run(
        self,
        mut disk: Disk<BoxT>,
        tx: mpsc::SyncSender<Msg>,
        spare_rx: mpsc::Receiver<Vec<u8>>,
    ) -> Unit {
        let (jobs, bs, hold) = (self.jobs, self.bs, self.hold);
        let per = (CHUNK / bs as usize).max(1) as u64;
        let mut owner = Vec::new();
        let mut chunks = Vec::new();
        for (k, job) in jobs.iter().enumerate() {
            // A framed step is read as one chunk (it is at most one
            // stream transfer, so bounded by the limits).
            let per = if job.frame.is_some() { job.blocks } else { per };
            let mut done = 0u64;
            while done < job.blocks {
                let n = per.min(job.blocks - done);
                chunks.push(Chunk {
                    seq: owner.len() as u64,
                    lba: Lba(job.lba.saturating_add(done)),
                    blocks: n as u32,
                });
                owner.push(k);
                done += n;
            }
        }
        let r = disk.read_chunks_pipelined::<PfErr>(
            chunks.into_iter(),
            BlockSize(bs),
            DEPTH,
            // A framed step's data is read in behind its headroom, so
            // the tape block is built without copying the payload.
            |c| jobs[owner[c.seq as usize]].frame.unwrap_or(0),
            |c, data| {
                let job = &jobs[owner[c.seq as usize]];
                let msg = match job.frame {
                    None => Msg::Data(job.step, data),
                    Some(headroom) => {
                        let crc = if hold {
                            crc32c::crc32c(&data[headroom..])
                        } else {
                            0
                        };
                        Msg::Block {
                            step: job.step,
                            block: data,
                            headroom,
                            crc,
                        }
                    }
                };
                tx.send(msg).map_err(|_| PfErr::Stopped)?;
                Ok(spare_rx.try_recv().ok())
            },
        );
        if let Err(PfErr::Dev(e)) = r {
            let _ = tx.send(Msg::Failed(e));
        }
        // Commands still in flight (the consumer stopped early) are
        // collected so the session is clean for the next copy.
        let t = disk.scsi.transport();
        while t.in_flight() > 0 {
            if t.complete().is_err() {
                break;
            }
        }
        Unit::Disk(disk)
    }
}

/// COPY ABORTED for an address past what 64 bits hold: the LBA OUT OF
/// RANGE the device would have answered.
pub(crate) fn out_of_range(i: usize, from: CopyEnd) -> Abort {
    Abort::new(i, Asc::NO_ADDITIONAL, "LBA out of range").with_embedded(
        from,
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE).to_fixed(),
    )
}

/// The byte range of the router's own disk, or the LBA OUT OF RANGE sense
/// its own READ would give.
fn own_range(own: &MemDisk, at: u64, len: u64) -> Result<std::ops::Range<usize>, Vec<u8>> {
    match at.checked_add(len) {
        Some(end) if end <= own.data().len() as u64 => Ok(at as usize..end as usize),
        _ => Err(Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE).to_fixed()),
    }
}
