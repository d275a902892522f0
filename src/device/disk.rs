//! A direct-access block device (SBC).

use crate::scsi::sbc::{
    Capacity10, Capacity16, Read16, ReadCapacity10, ReadCapacity16, SynchronizeCache16, Write16,
};
use crate::scsi::spc::StandardInquiry;
use crate::scsi::{BlockCount, BlockSize, CdbCodec, DeviceType, Lba, Wire};
use crate::transport::{Request, Transport};

use super::{DeviceError, Scsi};

/// Size of a disk LU, from READ CAPACITY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    pub blocks: BlockCount,
    pub block_size: BlockSize,
    /// True when READ CAPACITY(16) answered (it carries more fields).
    pub from_16: bool,
}

impl Capacity {
    pub fn bytes(&self) -> u64 {
        self.blocks.0.saturating_mul(self.block_size.0 as u64)
    }
}

/// A disk LU.
#[derive(Debug)]
pub struct Disk<T: Transport> {
    pub scsi: Scsi<T>,
    pub inquiry: StandardInquiry,
}

impl<T: Transport> Disk<T> {
    /// Open a disk: INQUIRY must say direct access.
    pub fn open(t: T) -> Result<Self, DeviceError> {
        let mut scsi = Scsi::new(t);
        let inquiry = scsi.expect_type(DeviceType::DISK)?;
        Ok(Disk { scsi, inquiry })
    }

    /// READ CAPACITY(10), and (16) when the LU is too big for (10) or when
    /// (10) is refused (SBC-4 5.20.1).
    pub fn capacity(&mut self) -> Result<Capacity, DeviceError> {
        read_capacity(&mut self.scsi)
    }

    pub fn read(&mut self, lba: Lba, blocks: u32, bs: BlockSize) -> Result<Vec<u8>, DeviceError> {
        let len = blocks as usize * bs.0 as usize;
        let cdb = Read16 {
            lba,
            blocks,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        let resp = self.scsi.run(Request::data_in(cdb, len))?;
        if resp.transferred() != len {
            return Err(DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!(
                    "READ(16) at {lba}: {} of {len} bytes arrived",
                    resp.transferred()
                ),
            });
        }
        Ok(resp.buf)
    }

    pub fn write(&mut self, lba: Lba, bs: BlockSize, data: Vec<u8>) -> Result<(), DeviceError> {
        if bs.0 == 0 || data.len() % bs.0 as usize != 0 {
            return Err(DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!(
                    "write of {} bytes is not a whole number of {}-byte blocks",
                    data.len(),
                    bs.0
                ),
            });
        }
        let cdb = Write16 {
            lba,
            blocks: (data.len() / bs.0 as usize) as u32,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        self.scsi.run(Request::data_out(cdb, data)).map(|_| ())
    }

    pub fn synchronize_cache(&mut self) -> Result<(), DeviceError> {
        let cdb = SynchronizeCache16 {
            lba: Lba(0),
            blocks: 0,
            immed: false,
        }
        .to_cdb();
        self.scsi.run(Request::none(cdb)).map(|_| ())
    }
}

/// READ CAPACITY on any LU that answers it.
pub fn read_capacity<T: Transport>(scsi: &mut Scsi<T>) -> Result<Capacity, DeviceError> {
    let c10 = match scsi.data_in(ReadCapacity10.to_cdb(), 8) {
        Ok(buf) => Some(Capacity10::parse(&buf).map_err(|e| scsi.perr("READ CAPACITY(10)", e))?),
        Err(e) if e.is_unsupported_command() => None,
        Err(e) => return Err(e),
    };
    match c10 {
        Some(c) if c.last_lba != u32::MAX => Ok(Capacity {
            blocks: c.blocks(),
            block_size: c.block_size(),
            from_16: false,
        }),
        _ => {
            let buf = scsi.data_in(ReadCapacity16 { alloc_len: 32 }.to_cdb(), 32)?;
            let c = Capacity16::parse(&buf).map_err(|e| scsi.perr("READ CAPACITY(16)", e))?;
            Ok(Capacity {
                blocks: c.blocks(),
                block_size: c.block_size(),
                from_16: true,
            })
        }
    }
}

/// What a pipelined writer's source has for it.
#[derive(Debug)]
pub enum Next {
    Chunk(Vec<u8>),
    /// A chunk whose data is `buf[span]` (a tape record's payload, written
    /// without copying it out of the record).
    Span(Vec<u8>, std::ops::Range<usize>),
    /// Nothing yet; ask again after servicing the commands in flight.
    Wait,
    End,
}

/// One chunk of a pipelined transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// 0-based chunk number, in LBA order.
    pub seq: u64,
    pub lba: Lba,
    pub blocks: u32,
}

/// Split `blocks` from `lba` into chunks of at most `per_chunk` blocks.
pub fn chunks(lba: Lba, blocks: u64, per_chunk: u32) -> impl Iterator<Item = Chunk> {
    let per = per_chunk.max(1) as u64;
    let n = blocks.div_ceil(per);
    (0..n).map(move |seq| {
        let start = seq * per;
        Chunk {
            seq,
            lba: Lba(lba.0 + start),
            blocks: (blocks - start).min(per) as u32,
        }
    })
}

impl<T: Transport> Disk<T> {
    /// Read `blocks` blocks from `lba` with up to `depth` READ(16)s in
    /// flight on this one session, `per_chunk` blocks each, and hand each
    /// chunk's data to `sink` in LBA order. `sink` may return a spent
    /// buffer for reuse. Memory: at most `depth` chunks in flight plus the
    /// ones waiting for an earlier chunk. Each chunk's data lands at
    /// `buf[headroom..]` (see [`Disk::read_chunks_pipelined`]).
    #[allow(clippy::too_many_arguments)]
    pub fn read_pipelined<E: From<DeviceError>>(
        &mut self,
        lba: Lba,
        blocks: u64,
        bs: BlockSize,
        per_chunk: u32,
        depth: usize,
        headroom: usize,
        sink: impl FnMut(Chunk, Vec<u8>) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<(), E> {
        let chunks = chunks(lba, blocks, per_chunk);
        self.read_chunks_pipelined(chunks, bs, depth, |_| headroom, sink)
    }

    /// [`Disk::read_pipelined`] over any chunk list: several ranges read as
    /// one stream, so the pipeline does not drain between them (the copy
    /// manager reads the ranges of consecutive segments this way). The
    /// chunks' `seq` must count 0, 1, 2, ... in the order `sink` wants them.
    ///
    /// Each chunk's data lands at `buf[headroom(&chunk)..]`: the bytes
    /// before it are left for the caller to frame a header in place, so a
    /// record goes to tape without copying its payload.
    pub fn read_chunks_pipelined<E: From<DeviceError>>(
        &mut self,
        mut todo: impl Iterator<Item = Chunk>,
        bs: BlockSize,
        depth: usize,
        headroom: impl Fn(&Chunk) -> usize,
        mut sink: impl FnMut(Chunk, Vec<u8>) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<(), E> {
        let depth = depth.clamp(1, self.scsi.transport().queue_depth().max(1));
        let mut in_flight: std::collections::HashMap<u64, (Chunk, u32)> = Default::default();
        let mut ready: std::collections::BTreeMap<u64, (Chunk, Vec<u8>)> = Default::default();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut next_out = 0u64;
        let mut exhausted = false;
        // The first chunk the device refused: every chunk before it is
        // still delivered (in order), so a caller that maps chunks to work
        // items blames the right one; nothing after it is.
        let mut failed: Option<(u64, DeviceError)> = None;
        let retry = crate::transport::retry::RetryPolicy::default();
        loop {
            while failed.is_none() && !exhausted && in_flight.len() + ready.len() < depth {
                match todo.next() {
                    None => exhausted = true,
                    Some(c) => {
                        let len = c.blocks as usize * bs.0 as usize;
                        let head = headroom(&c);
                        let mut buf = spare.pop().unwrap_or_default();
                        buf.resize(head + len, 0);
                        let cdb = Read16::new(c.lba, c.blocks).to_cdb();
                        self.submit_chunk(c, cdb, buf, head..head + len, 0)?;
                        in_flight.insert(c.seq, (c, 0));
                    }
                }
            }
            if in_flight.is_empty() && ready.is_empty() {
                return match failed {
                    Some((_, e)) => Err(e.into()),
                    None => Ok(()),
                };
            }
            if !in_flight.is_empty() {
                let Some((c, resp)) = self.complete_chunk_any(&mut in_flight, &retry, bs)? else {
                    continue;
                };
                let before_failure = failed.as_ref().is_none_or(|(f, _)| c.seq < *f);
                if !resp.is_good() {
                    if before_failure {
                        failed = Some((c.seq, self.scsi.check_error(&resp)));
                        ready.retain(|&seq, _| seq < c.seq);
                    }
                    continue;
                }
                if !before_failure {
                    continue;
                }
                let want = c.blocks as usize * bs.0 as usize;
                if resp.transferred() != want {
                    return Err(DeviceError::Protocol {
                        device: self.scsi.name().to_string(),
                        message: format!(
                            "READ(16) at {}: {} of {want} bytes arrived",
                            c.lba,
                            resp.transferred()
                        ),
                    }
                    .into());
                }
                ready.insert(c.seq, (c, resp.buf));
            }
            while let Some((c, buf)) = ready.remove(&next_out) {
                next_out += 1;
                if let Some(b) = sink(c, buf)? {
                    spare.push(b);
                }
            }
        }
    }

    /// Wait for one chunk. A UNIT ATTENTION or BUSY is resubmitted (`None`
    /// back), any other non-GOOD status is the error, GOOD gives the chunk.
    fn complete_chunk(
        &mut self,
        in_flight: &mut std::collections::HashMap<u64, (Chunk, u32)>,
        retry: &crate::transport::retry::RetryPolicy,
        bs: BlockSize,
    ) -> Result<Option<(Chunk, crate::transport::Response)>, DeviceError> {
        match self.complete_chunk_any(in_flight, retry, bs)? {
            Some((_, resp)) if !resp.is_good() => Err(self.scsi.check_error(&resp)),
            other => Ok(other),
        }
    }

    /// [`Self::complete_chunk`] that hands back a refused chunk too.
    fn complete_chunk_any(
        &mut self,
        in_flight: &mut std::collections::HashMap<u64, (Chunk, u32)>,
        retry: &crate::transport::retry::RetryPolicy,
        bs: BlockSize,
    ) -> Result<Option<(Chunk, crate::transport::Response)>, DeviceError> {
        let resp = self
            .scsi
            .transport()
            .complete()
            .map_err(|e| self.scsi.transport_error(e))?;
        let (c, attempt) = in_flight
            .remove(&resp.tag)
            .ok_or_else(|| DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!("completion for unknown tag {}", resp.tag),
            })?;
        if retry.should_retry(&resp, attempt) {
            let cdb = resp.cdb;
            let span = resp.span.start..resp.span.start + c.blocks as usize * bs.0 as usize;
            let mut buf = resp.buf;
            buf.resize(buf.len().max(span.end), 0);
            self.submit_chunk(c, cdb, buf, span, attempt + 1)?;
            in_flight.insert(c.seq, (c, attempt + 1));
            return Ok(None);
        }
        Ok(Some((c, resp)))
    }

    fn submit_chunk(
        &mut self,
        c: Chunk,
        cdb: crate::scsi::Cdb,
        buf: Vec<u8>,
        span: std::ops::Range<usize>,
        attempt: u32,
    ) -> Result<(), DeviceError> {
        if attempt == 0 {
            log::trace!("{}: cdb {cdb}", self.scsi.name());
        } else {
            log::debug!("{}: retry {attempt} of {cdb}", self.scsi.name());
        }
        let req = if cdb.opcode() == crate::scsi::Opcode::WRITE_16 {
            Request::data_out(cdb, buf)
        } else {
            Request::data_in_buf(cdb, buf)
        };
        self.scsi
            .transport()
            .submit(req.with_span(span).with_tag(c.seq))
            .map_err(|e| self.scsi.transport_error(e))
    }

    /// Write chunks that `source` produces, in order from `lba`, with up to
    /// `depth` WRITE(16)s in flight. `source(block)` returns the next
    /// chunk's data (a whole number of blocks), [`Next::Wait`] when none is
    /// ready yet (only when `block` is false: commands are in flight and
    /// must be serviced meanwhile; libiscsi moves PDUs only while we wait
    /// on it) or [`Next::End`]. Spent buffers go back through `recycle`.
    /// Returns the blocks written.
    pub fn write_pipelined<E: From<DeviceError>>(
        &mut self,
        lba: Lba,
        bs: BlockSize,
        depth: usize,
        mut source: impl FnMut(bool) -> Result<Next, E>,
        mut recycle: impl FnMut(Vec<u8>),
    ) -> Result<u64, E> {
        let depth = depth.clamp(1, self.scsi.transport().queue_depth().max(1));
        let retry = crate::transport::retry::RetryPolicy::default();
        let mut in_flight: std::collections::HashMap<u64, (Chunk, u32)> = Default::default();
        let mut next = lba;
        let mut seq = 0u64;
        let mut done = false;
        let mut written = 0u64;
        loop {
            while !done && in_flight.len() < depth {
                match source(in_flight.is_empty())? {
                    Next::End => done = true,
                    Next::Wait => break,
                    Next::Chunk(data) => {
                        let span = 0..data.len();
                        self.submit_write(&mut seq, &mut next, bs, data, span, &mut in_flight)?;
                    }
                    Next::Span(data, span) => {
                        self.submit_write(&mut seq, &mut next, bs, data, span, &mut in_flight)?;
                    }
                }
            }
            if in_flight.is_empty() {
                return Ok(written);
            }
            let Some((c, resp)) = self.complete_chunk(&mut in_flight, &retry, bs)? else {
                continue;
            };
            written += c.blocks as u64;
            recycle(resp.buf);
        }
    }

    /// Submit one WRITE(16) of `data[span]` at `*next` as chunk `*seq`,
    /// and move both on.
    fn submit_write(
        &mut self,
        seq: &mut u64,
        next: &mut Lba,
        bs: BlockSize,
        data: Vec<u8>,
        span: std::ops::Range<usize>,
        in_flight: &mut std::collections::HashMap<u64, (Chunk, u32)>,
    ) -> Result<(), DeviceError> {
        let len = span.len();
        if bs.0 == 0 || len % bs.0 as usize != 0 || span.end > data.len() {
            return Err(DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!(
                    "chunk of {len} bytes is not a whole number of {}-byte blocks within its {}-byte buffer",
                    bs.0,
                    data.len()
                ),
            });
        }
        let blocks = (len / bs.0 as usize) as u32;
        let c = Chunk {
            seq: *seq,
            lba: *next,
            blocks,
        };
        *seq += 1;
        *next = Lba(next.0 + blocks as u64);
        let cdb = Write16::new(c.lba, blocks).to_cdb();
        self.submit_chunk(c, cdb, data, span, 0)?;
        in_flight.insert(c.seq, (c, 0));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range_exactly() {
        let c: Vec<Chunk> = chunks(Lba(10), 25, 10).collect();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0],
            Chunk {
                seq: 0,
                lba: Lba(10),
                blocks: 10
            }
        );
        assert_eq!(
            c[2],
            Chunk {
                seq: 2,
                lba: Lba(30),
                blocks: 5
            }
        );
        assert_eq!(chunks(Lba(0), 0, 8).count(), 0);
    }

    /// Completes whatever is in flight newest first, as a target may
    /// answer a refused READ before the earlier ones' data.
    struct Reversing<T: Transport> {
        inner: T,
        done: Vec<crate::transport::Response>,
    }

    impl<T: Transport> Transport for Reversing<T> {
        fn submit(&mut self, req: Request) -> Result<(), crate::transport::TransportError> {
            self.inner.submit(req)
        }
        fn complete(
            &mut self,
        ) -> Result<crate::transport::Response, crate::transport::TransportError> {
            if self.done.is_empty() {
                while self.inner.in_flight() > 0 {
                    self.done.push(self.inner.complete()?);
                }
            }
            self.done.pop().ok_or_else(|| {
                crate::transport::TransportError::SessionLost("nothing in flight".into())
            })
        }
        fn queue_depth(&self) -> usize {
            self.inner.queue_depth()
        }
        fn in_flight(&self) -> usize {
            self.inner.in_flight() + self.done.len()
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    #[test]
    fn a_refused_read_still_delivers_every_earlier_chunk_in_order() {
        use crate::lu::MemDisk;
        use crate::transport::memory::MemoryTransport;
        let t = Reversing {
            inner: MemoryTransport::new("d", MemDisk::new("D1", 100, 512)),
            done: Vec::new(),
        };
        let mut disk = Disk::open(t).unwrap();
        // Chunks of 10 blocks from LBA 40: 40, 50, ... 90 fit, 100 does not.
        let mut seen = Vec::new();
        let r = disk.read_chunks_pipelined::<DeviceError>(
            chunks(Lba(40), 80, 10),
            BlockSize(512),
            8,
            |_| 0,
            |c, _| {
                seen.push(c.seq);
                Ok(None)
            },
        );
        let e = r.unwrap_err();
        assert_eq!(
            e.sense().map(|s| s.asc),
            Some(crate::scsi::sense::Asc::LBA_OUT_OF_RANGE),
            "{e}"
        );
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
    }

    fn patterned_disk() -> Disk<crate::transport::memory::MemoryTransport<crate::lu::MemDisk>> {
        use crate::lu::MemDisk;
        use crate::transport::memory::MemoryTransport;
        let mut lu = MemDisk::new("D1", 64, 512);
        for (i, b) in lu.data_mut().iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        Disk::open(MemoryTransport::new("d", lu)).unwrap()
    }

    #[test]
    fn data_read_behind_headroom_leaves_the_header_bytes_to_the_caller() {
        let mut disk = patterned_disk();
        let want = disk.read(Lba(0), 64, BlockSize(512)).unwrap();
        let mut got = Vec::new();
        disk.read_chunks_pipelined::<DeviceError>(
            chunks(Lba(0), 64, 5),
            BlockSize(512),
            4,
            |c| if c.seq % 2 == 0 { 48 } else { 0 },
            |c, mut buf| {
                let head = if c.seq % 2 == 0 { 48 } else { 0 };
                assert_eq!(buf.len(), head + c.blocks as usize * 512);
                // What a caller frames in place; reused buffers keep it
                // until the next frame overwrites it.
                buf[..head].fill(0xEE);
                got.extend_from_slice(&buf[head..]);
                Ok(Some(buf))
            },
        )
        .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn a_spanned_write_sends_only_the_span() {
        let mut disk = patterned_disk();
        let mut record = vec![0xEE; 48];
        record.extend((0..1024).map(|i| i as u8));
        record.extend([0xDD; 100]);
        let mut chunks_left = vec![Next::Span(record, 48..48 + 1024)];
        let mut recycled = Vec::new();
        let n = disk
            .write_pipelined::<DeviceError>(
                Lba(3),
                BlockSize(512),
                2,
                |_| Ok(chunks_left.pop().unwrap_or(Next::End)),
                |b| recycled.push(b),
            )
            .unwrap();
        assert_eq!(n, 2);
        let back = disk.read(Lba(3), 2, BlockSize(512)).unwrap();
        assert_eq!(back, (0..1024).map(|i| i as u8).collect::<Vec<_>>());
        // The whole record comes back for reuse, header and tail intact.
        assert_eq!(recycled.len(), 1);
        assert_eq!(recycled[0].len(), 48 + 1024 + 100);
        assert_eq!(&recycled[0][..48], &[0xEE; 48]);
        // A span that is not whole blocks, or not inside its buffer, is
        // refused and nothing is written.
        let before = disk.read(Lba(0), 3, BlockSize(512)).unwrap();
        for span in [48..48 + 512 + 100, 88..600 + 512] {
            let mut left = vec![Next::Span(vec![0; 600], span.clone())];
            let e = disk
                .write_pipelined::<DeviceError>(
                    Lba(0),
                    BlockSize(512),
                    2,
                    |_| Ok(left.pop().unwrap_or(Next::End)),
                    |_| {},
                )
                .unwrap_err();
            assert!(e.to_string().contains("600-byte buffer"), "{span:?}: {e}");
            assert_eq!(disk.read(Lba(0), 3, BlockSize(512)).unwrap(), before);
        }
    }
}
