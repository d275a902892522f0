//! Transports move a CDB and its data to a logical unit and bring back the
//! status, sense and residual. They never interpret the bytes.
//!
//! One trait ([`Transport`]) with three implementations: libiscsi
//! ([`iscsi`]), Linux SG_IO ([`sgio`]) and in-memory devices ([`memory`]) for
//! engine tests. Buffers are owned by the caller and travel with the
//! request, so a transport can keep several commands in flight on one
//! session and hand each buffer back on completion.

use std::ops::Range;
use std::time::Duration;

use crate::scsi::{Cdb, Status};

mod connect;
pub mod iscsi;
pub mod memory;
pub mod retry;
pub mod sgio;
pub mod trace;
pub mod url;

pub use connect::{open_device, Connector};

/// Which way data moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    None,
    /// Device to initiator; the request buffer's length is the allocation.
    In,
    /// Initiator to device; the request buffer is the data.
    Out,
}

/// One command. `buf` is the data-out bytes or the data-in space.
#[derive(Debug)]
pub struct Request {
    /// Chosen by the caller, returned in the [`Response`].
    pub tag: u64,
    pub cdb: Cdb,
    pub dir: Direction,
    pub buf: Vec<u8>,
    /// The bytes of `buf` the data phase uses: all of it unless set with
    /// [`Request::with_span`]. The rest is the caller's (an engine frames a
    /// record header in place before the data) and no transport touches it.
    pub span: Range<usize>,
    pub timeout: Duration,
}

impl Request {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn none(cdb: Cdb) -> Self {
        Request {
            tag: 0,
            cdb,
            dir: Direction::None,
            buf: Vec::new(),
            span: 0..0,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    pub fn data_in(cdb: Cdb, alloc_len: usize) -> Self {
        Request {
            tag: 0,
            cdb,
            dir: Direction::In,
            buf: vec![0; alloc_len],
            span: 0..alloc_len,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Data-in into a buffer the caller already has (its length is the
    /// allocation); the engines recycle buffers this way.
    pub fn data_in_buf(cdb: Cdb, buf: Vec<u8>) -> Self {
        Request {
            tag: 0,
            cdb,
            dir: Direction::In,
            span: 0..buf.len(),
            buf,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    pub fn data_out(cdb: Cdb, data: Vec<u8>) -> Self {
        Request {
            tag: 0,
            cdb,
            dir: Direction::Out,
            span: 0..data.len(),
            buf: data,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    pub fn with_tag(mut self, tag: u64) -> Self {
        self.tag = tag;
        self
    }

    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Move data through `buf[span]` only. A span outside the buffer is
    /// refused by the transport at submit.
    pub fn with_span(mut self, span: Range<usize>) -> Self {
        self.span = span;
        self
    }

    /// Every transport refuses a span outside the buffer before anything
    /// moves; after this, `buf[span]` cannot panic.
    pub fn check_span(&self) -> Result<(), TransportError> {
        if self.span.start <= self.span.end && self.span.end <= self.buf.len() {
            return Ok(());
        }
        Err(TransportError::Rejected {
            cdb: self.cdb,
            reason: format!(
                "data span {:?} outside a {}-byte buffer",
                self.span,
                self.buf.len()
            ),
        })
    }
}

/// Residual as the transport reported it (SAM-5 5.4.2; iSCSI U/O bits).
/// For tape reads with CHECK CONDITION, trust the sense INFORMATION field
/// instead: tgt 1.0.85 reports wrong residuals there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Residual {
    #[default]
    None,
    Underflow(u64),
    Overflow(u64),
}

/// How one command ended at the SCSI level. Transport failures (lost
/// session, timeout) are [`TransportError`]s instead.
#[derive(Debug)]
pub struct Response {
    pub tag: u64,
    pub cdb: Cdb,
    pub status: Status,
    /// Raw sense bytes (empty unless CHECK CONDITION); decode with
    /// [`crate::scsi::sense::Sense::parse`].
    pub sense: Vec<u8>,
    pub residual: Residual,
    /// The request buffer handed back, whatever the outcome: data-out
    /// unchanged (so a retry can resend it), data-in with the first
    /// `transferred()` bytes of `span` valid as far as the transport knows.
    pub buf: Vec<u8>,
    /// The request's span, handed back with the buffer.
    pub span: Range<usize>,
    pub dir: Direction,
}

impl Response {
    /// Data-in bytes that arrived (from `span.start`), from the span's
    /// length and the residual.
    pub fn transferred(&self) -> usize {
        let len = self.span.len();
        match (self.dir, self.residual) {
            (Direction::None, _) => 0,
            (_, Residual::Underflow(n)) => len.saturating_sub(n as usize),
            _ => len,
        }
    }

    pub fn is_good(&self) -> bool {
        self.status == Status::GOOD
    }
}

/// Why a command never got a SCSI status.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid device address: {0}")]
    Url(#[from] url::UrlError),
    #[error("cannot connect to {portal}: {reason}")]
    Connect { portal: String, reason: String },
    #[error("login to {target} at {portal} failed: {reason}")]
    Login {
        portal: String,
        target: String,
        reason: String,
    },
    #[error("{cdb}: no answer within {timeout:?}")]
    Timeout { cdb: Cdb, timeout: Duration },
    #[error("session lost: {0}")]
    SessionLost(String),
    #[error("{cdb}: command cancelled: {reason}")]
    Cancelled { cdb: Cdb, reason: String },
    #[error("{cdb}: rejected before sending: {reason}")]
    Rejected { cdb: Cdb, reason: String },
    /// Not a `#[source]`: the message already carries it, and a chain
    /// printed with `{:#}` would say it twice.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{0}")]
    Unsupported(String),
}

/// Moves commands to one logical unit.
///
/// `submit` queues a command; `complete` blocks until any queued command has
/// finished and returns it. Up to `queue_depth()` commands may be queued at
/// once; a synchronous transport has depth 1 and runs the command inside
/// `submit` or `complete`. Completion order is not submission order: match
/// on [`Response::tag`].
pub trait Transport {
    fn submit(&mut self, req: Request) -> Result<(), TransportError>;
    fn complete(&mut self) -> Result<Response, TransportError>;
    /// How many commands may be in flight at once.
    fn queue_depth(&self) -> usize {
        1
    }
    /// The most data one command can carry on this path, when the path
    /// has a limit below what the SCSI command allows (SG_IO through a
    /// host adapter). Engines size their reads to it.
    fn max_transfer(&self) -> Option<usize> {
        None
    }
    /// Commands submitted and not yet completed.
    fn in_flight(&self) -> usize;
    /// A short human name for logs and errors: the URL without secrets, or
    /// the device path.
    fn describe(&self) -> String;

    /// Run one command to completion. Must not be called with commands in
    /// flight.
    fn execute(&mut self, req: Request) -> Result<Response, TransportError> {
        debug_assert_eq!(self.in_flight(), 0, "execute with commands in flight");
        self.submit(req)?;
        self.complete()
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn submit(&mut self, req: Request) -> Result<(), TransportError> {
        (**self).submit(req)
    }
    fn complete(&mut self) -> Result<Response, TransportError> {
        (**self).complete()
    }
    fn queue_depth(&self) -> usize {
        (**self).queue_depth()
    }
    fn max_transfer(&self) -> Option<usize> {
        (**self).max_transfer()
    }
    fn in_flight(&self) -> usize {
        (**self).in_flight()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn execute(&mut self, req: Request) -> Result<Response, TransportError> {
        (**self).execute(req)
    }
}
