//! CDB traces: a [`Transport`] wrapper that records every command it
//! carries as one JSON line (docs/trace-format.md), and the reader that
//! `trace show` and `replay` use. The first line is a header with the
//! format version; a reader refuses a newer version, a truncated last line
//! and anything that is not a trace.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Connector, Direction, Request, Residual, Response, Transport, TransportError};

/// The trace format version this sanmover writes and reads.
pub const TRACE_VERSION: u32 = 1;

/// What a trace keeps of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataMode {
    /// The bytes, in hex.
    Full,
    /// Length and SHA-256 only.
    Digest,
}

/// The first line of a trace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// The format version (this is what marks the file as a trace).
    pub sanmover_trace: u32,
    pub tool: String,
    pub data: DataMode,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
}

/// The I_T nexus a command went through: our initiator name and the
/// logical unit's address (without secrets).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Nexus {
    pub initiator: String,
    pub target: String,
}

/// Data moved in one direction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Data {
    pub len: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hex: Option<String>,
    pub sha256: String,
}

impl Data {
    fn of(bytes: &[u8], mode: DataMode) -> Data {
        Data {
            len: bytes.len() as u64,
            hex: (mode == DataMode::Full).then(|| hex::encode(bytes)),
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// The bytes, when the trace kept them.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        self.hex.as_ref().and_then(|h| hex::decode(h).ok())
    }
}

/// One command and how it ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub nexus: Nexus,
    pub cdb: String,
    /// "none", "in" or "out".
    pub dir: String,
    /// Data-out (direction "out").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_out: Option<Data>,
    /// The data-in allocation (direction "in").
    pub alloc_len: u64,
    /// The SCSI status; absent when the transport failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u8>,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub sense: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_in: Option<Data>,
    /// "underflow N", "overflow N", or absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub residual: Option<String>,
    /// The transport's error, when the command got no status.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Microseconds from the start of the trace to the submit.
    pub start_us: u64,
    /// Microseconds from submit to completion.
    pub elapsed_us: u64,
}

impl Record {
    pub fn cdb_bytes(&self) -> Option<Vec<u8>> {
        hex::decode(&self.cdb).ok()
    }

    pub fn sense_bytes(&self) -> Vec<u8> {
        hex::decode(&self.sense).unwrap_or_default()
    }
}

/// Why a trace could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: empty file: not a sanmover trace")]
    Empty { path: String },
    #[error("{path}: line 1 is not a sanmover trace header ({reason})")]
    NotATrace { path: String, reason: String },
    #[error("{path}: trace format version {found} is newer than this sanmover reads ({TRACE_VERSION}); use a newer sanmover")]
    Newer { path: String, found: u32 },
    #[error("{path}: line {line} is not a trace record: {reason}")]
    Garbage {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: truncated: line {line} ends without a newline (the trace was cut short)")]
    Truncated { path: String, line: usize },
}

impl TraceError {
    /// A file that exists but is not a usable trace (exit status 39).
    pub fn is_bad_file(&self) -> bool {
        !matches!(self, TraceError::Io { .. })
    }
}

/// Where the records of one run go (shared by every session of it).
pub struct TraceSink {
    out: Mutex<BufWriter<File>>,
    path: PathBuf,
    mode: DataMode,
    seq: AtomicU64,
    start: Instant,
}

impl TraceSink {
    /// Create `path` (replacing it) and write the header line.
    pub fn create(path: &Path, mode: DataMode) -> Result<Arc<TraceSink>, TraceError> {
        let io = |error| TraceError::Io {
            path: path.display().to_string(),
            error,
        };
        let f = File::create(path).map_err(io)?;
        let sink = TraceSink {
            out: Mutex::new(BufWriter::new(f)),
            path: path.to_path_buf(),
            mode,
            seq: AtomicU64::new(0),
            start: Instant::now(),
        };
        let header = Header {
            sanmover_trace: TRACE_VERSION,
            tool: format!("sanmover {}", env!("CARGO_PKG_VERSION")),
            data: mode,
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        sink.line(&header);
        Ok(Arc::new(sink))
    }

    fn line<V: Serialize>(&self, v: &V) {
        let Ok(text) = serde_json::to_string(v) else {
            return;
        };
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // Each record is flushed whole: a crash leaves whole lines only.
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            log::warn!("{}: cannot write the trace", self.path.display());
        }
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }
}

struct Pending {
    tag: u64,
    record: Record,
    started: Instant,
}

/// A transport that records every command it carries.
pub struct Traced<T> {
    inner: T,
    sink: Arc<TraceSink>,
    nexus: Nexus,
    pending: VecDeque<Pending>,
}

impl<T: Transport> Traced<T> {
    pub fn new(inner: T, sink: Arc<TraceSink>, initiator: &str) -> Self {
        let nexus = Nexus {
            initiator: initiator.to_string(),
            target: inner.describe(),
        };
        Traced {
            inner,
            sink,
            nexus,
            pending: VecDeque::new(),
        }
    }

    fn begin(&self, req: &Request) -> Pending {
        let (dir, data_out, alloc) = match req.dir {
            Direction::None => ("none", None, 0),
            Direction::In => ("in", None, req.span.len() as u64),
            Direction::Out => {
                let bytes = req.buf.get(req.span.clone()).unwrap_or(&[]);
                ("out", Some(Data::of(bytes, self.sink.mode)), 0)
            }
        };
        Pending {
            tag: req.tag,
            started: Instant::now(),
            record: Record {
                seq: self.sink.next_seq(),
                nexus: self.nexus.clone(),
                cdb: hex::encode(req.cdb.as_bytes()),
                dir: dir.to_string(),
                data_out,
                alloc_len: alloc,
                status: None,
                sense: String::new(),
                data_in: None,
                residual: None,
                error: None,
                start_us: self.sink.start.elapsed().as_micros() as u64,
                elapsed_us: 0,
            },
        }
    }

    fn finish(&self, mut p: Pending, resp: Result<&Response, &TransportError>) {
        p.record.elapsed_us = p.started.elapsed().as_micros() as u64;
        match resp {
            Ok(r) => {
                p.record.status = Some(r.status.0);
                p.record.sense = hex::encode(&r.sense);
                if r.dir == Direction::In {
                    let n = r.transferred().min(r.span.len());
                    let bytes = r.buf.get(r.span.start..r.span.start + n).unwrap_or(&[]);
                    p.record.data_in = Some(Data::of(bytes, self.sink.mode));
                }
                p.record.residual = match r.residual {
                    Residual::None => None,
                    Residual::Underflow(n) => Some(format!("underflow {n}")),
                    Residual::Overflow(n) => Some(format!("overflow {n}")),
                };
            }
            Err(e) => p.record.error = Some(e.to_string()),
        }
        self.sink.line(&p.record);
    }
}

impl<T: Transport> Transport for Traced<T> {
    fn submit(&mut self, req: Request) -> Result<(), TransportError> {
        let p = self.begin(&req);
        match self.inner.submit(req) {
            Ok(()) => {
                self.pending.push_back(p);
                Ok(())
            }
            Err(e) => {
                self.finish(p, Err(&e));
                Err(e)
            }
        }
    }

    fn complete(&mut self) -> Result<Response, TransportError> {
        match self.inner.complete() {
            Ok(r) => {
                if let Some(i) = self.pending.iter().position(|p| p.tag == r.tag) {
                    let p = self.pending.remove(i).expect("index from position");
                    self.finish(p, Ok(&r));
                }
                Ok(r)
            }
            Err(e) => {
                if let Some(p) = self.pending.pop_front() {
                    self.finish(p, Err(&e));
                }
                Err(e)
            }
        }
    }

    fn queue_depth(&self) -> usize {
        self.inner.queue_depth()
    }

    fn max_transfer(&self) -> Option<usize> {
        self.inner.max_transfer()
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A [`Connector`] whose sessions are traced.
pub struct TracingConnector<C> {
    pub inner: C,
    pub sink: Arc<TraceSink>,
}

impl<C: Connector> Connector for TracingConnector<C> {
    fn open(
        &self,
        url: &str,
        initiator: &str,
    ) -> Result<Box<dyn Transport + Send>, TransportError> {
        let t = self.inner.open(url, initiator)?;
        Ok(Box::new(Traced::new(t, self.sink.clone(), initiator)))
    }
}

/// Read a whole trace: its header and records, refusing a newer version,
/// a cut-off last line and anything that is not a trace.
pub fn read_trace(path: &Path) -> Result<(Header, Vec<Record>), TraceError> {
    let p = path.display().to_string();
    let f = File::open(path).map_err(|error| TraceError::Io {
        path: p.clone(),
        error,
    })?;
    let mut lines = Vec::new();
    let mut r = BufReader::new(f);
    loop {
        let mut buf = Vec::new();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|error| TraceError::Io {
                path: p.clone(),
                error,
            })?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            return Err(TraceError::Truncated {
                path: p,
                line: lines.len() + 1,
            });
        }
        lines.push(buf);
    }
    let Some(first) = lines.first() else {
        return Err(TraceError::Empty { path: p });
    };
    let header = parse_header(&p, first)?;
    let mut records = Vec::new();
    for (i, l) in lines.iter().enumerate().skip(1) {
        let rec: Record = serde_json::from_slice(l).map_err(|e| TraceError::Garbage {
            path: p.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        records.push(rec);
    }
    Ok((header, records))
}

fn parse_header(p: &str, line: &[u8]) -> Result<Header, TraceError> {
    let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| TraceError::NotATrace {
        path: p.to_string(),
        reason: e.to_string(),
    })?;
    let Some(version) = v.get("sanmover_trace").and_then(|x| x.as_u64()) else {
        return Err(TraceError::NotATrace {
            path: p.to_string(),
            reason: "no sanmover_trace version".into(),
        });
    };
    if version > TRACE_VERSION as u64 {
        return Err(TraceError::Newer {
            path: p.to_string(),
            found: version as u32,
        });
    }
    serde_json::from_value(v).map_err(|e| TraceError::NotATrace {
        path: p.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lu::MemDisk;
    use crate::scsi::sbc::Read16;
    use crate::scsi::{CdbCodec, Lba};
    use crate::transport::memory::MemoryTransport;

    fn traced_reads(dir: &Path, mode: DataMode) -> PathBuf {
        let path = dir.join("t.trace");
        let sink = TraceSink::create(&path, mode).unwrap();
        let mut t = Traced::new(
            MemoryTransport::new("mem", MemDisk::new("S1", 16, 512)),
            sink,
            "iqn.test:a",
        );
        t.execute(Request::data_in(Read16::new(Lba(0), 1).to_cdb(), 512))
            .unwrap();
        t.execute(Request::data_in(Read16::new(Lba(99), 1).to_cdb(), 512))
            .unwrap();
        path
    }

    #[test]
    fn records_every_command_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = traced_reads(dir.path(), DataMode::Full);
        let (h, recs) = read_trace(&path).unwrap();
        assert_eq!(h.sanmover_trace, TRACE_VERSION);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].status, Some(0));
        assert_eq!(recs[0].data_in.as_ref().unwrap().len, 512);
        assert_eq!(
            recs[0].data_in.as_ref().unwrap().bytes().unwrap(),
            vec![0; 512]
        );
        assert_eq!(recs[1].status, Some(2));
        // LBA OUT OF RANGE, fixed format: key 05, ASC 21.
        let s = crate::scsi::sense::Sense::parse(&recs[1].sense_bytes()).unwrap();
        assert_eq!(s.asc, crate::scsi::sense::Asc::LBA_OUT_OF_RANGE);
        assert_eq!(recs[1].nexus.initiator, "iqn.test:a");
    }

    #[test]
    fn digest_mode_keeps_no_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = traced_reads(dir.path(), DataMode::Digest);
        let (h, recs) = read_trace(&path).unwrap();
        assert_eq!(h.data, DataMode::Digest);
        let d = recs[0].data_in.as_ref().unwrap();
        assert!(d.hex.is_none());
        assert_eq!(d.sha256, hex::encode(Sha256::digest([0u8; 512])));
    }

    #[test]
    fn refuses_truncated_garbage_newer_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = traced_reads(dir.path(), DataMode::Full);
        let text = std::fs::read_to_string(&path).unwrap();
        let cut = dir.path().join("cut");
        std::fs::write(&cut, &text[..text.len() - 10]).unwrap();
        assert!(matches!(
            read_trace(&cut),
            Err(TraceError::Truncated { line: 3, .. })
        ));
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "\u{1}\u{2}binary\n").unwrap();
        assert!(matches!(
            read_trace(&garbage),
            Err(TraceError::NotATrace { .. })
        ));
        let bad_rec = dir.path().join("badrec");
        let first = text.lines().next().unwrap();
        std::fs::write(&bad_rec, format!("{first}\n{{\"seq\": \"x\"}}\n")).unwrap();
        assert!(matches!(
            read_trace(&bad_rec),
            Err(TraceError::Garbage { line: 2, .. })
        ));
        let newer = dir.path().join("newer");
        std::fs::write(
            &newer,
            text.replacen("\"sanmover_trace\":1", "\"sanmover_trace\":2", 1),
        )
        .unwrap();
        let e = read_trace(&newer).unwrap_err();
        assert!(matches!(e, TraceError::Newer { found: 2, .. }), "{e}");
        assert!(e.to_string().contains("newer"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(read_trace(&empty), Err(TraceError::Empty { .. })));
        assert!(e.is_bad_file());
    }
}
