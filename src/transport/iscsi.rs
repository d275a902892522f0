//! iSCSI through libiscsi 1.19 (`libiscsi-sys`): one session to one
//! logical unit, commands pipelined on it.
//!
//! The rules this module keeps:
//! - Buffers are the caller's: each [`Request`]'s `Vec` is attached to its
//!   task with `scsi_task_add_data_in_buffer`/`_out_buffer` and parked in an
//!   in-flight table until libiscsi's callback has run. Reads never use
//!   libiscsi's own `datain`, because on CHECK CONDITION libiscsi replaces
//!   it with the sense data and a short tape block would be lost.
//! - Sense is copied raw from the SCSI Response segment (`datain` holds
//!   SenseLength + sense on CHECK CONDITION) and decoded by `scsi::sense`:
//!   1.19's own `scsi_sense` has no FILEMARK/EOM/ILI/INFORMATION.
//! - No auto-reconnect: libiscsi would replay outstanding commands, which is
//!   wrong for tape and EXTENDED COPY. A lost connection is
//!   [`TransportError::SessionLost`]; reconnecting is the caller's call.
//! - Connect is `iscsi_connect_sync` + `iscsi_login_sync`, not
//!   `iscsi_full_connect_sync`, whose TEST UNIT READY loop swallows unit
//!   attentions a tape tool must see (and fails on a tape becoming ready).
//! - `iscsi_set_timeout` stamps PDUs when they are created, so it is set
//!   before each submit; timeouts are only noticed inside `iscsi_service`,
//!   which the wait loop calls at least every 250 ms.
//! - A context is used by one thread at a time: the transport is `Send`,
//!   not `Sync`.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::os::fd::BorrowedFd;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use libiscsi_sys as sys;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::url::{IscsiUrl, PortalUrl};
use super::{Direction, Request, Residual, Response, Transport, TransportError};
use crate::scsi::{Cdb, Status};

/// The initiator name used when neither options nor environment give one.
pub const DEFAULT_INITIATOR: &str = "iqn.2024-01.org.sanmover:initiator";

/// Environment variable naming the initiator IQN.
pub const INITIATOR_ENV: &str = "SANMOVER_INITIATOR";

/// How often the wait loop lets libiscsi scan for timed-out commands.
const SERVICE_TICK: Duration = Duration::from_millis(250);

/// TCP SYN retransmissions while connecting (Linux: about 1+2+4 s for 2),
/// so an unreachable portal fails in seconds, not minutes.
const TCP_SYNCNT: c_int = 2;

/// Session options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiOptions {
    /// Our iSCSI name (targets may mask LUNs by it).
    pub initiator: String,
    /// Login and logout timeout, and the TCP user timeout. Commands carry
    /// their own [`Request::timeout`].
    pub timeout: Duration,
    /// Offer CRC32C header digests (`HeaderDigest=None,CRC32C`: the target
    /// picks). Data digests do not exist in libiscsi 1.19.
    pub header_digest: bool,
    /// Commands the transport accepts in flight at once.
    pub queue_depth: usize,
}

impl Default for IscsiOptions {
    fn default() -> Self {
        IscsiOptions {
            initiator: DEFAULT_INITIATOR.to_string(),
            timeout: Duration::from_secs(30),
            header_digest: true,
            queue_depth: 32,
        }
    }
}

/// `SANMOVER_INITIATOR` if set and not empty, else [`DEFAULT_INITIATOR`].
pub fn initiator_from_env() -> String {
    initiator_or_default(std::env::var(INITIATOR_ENV).ok())
}

fn initiator_or_default(v: Option<String>) -> String {
    match v {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => DEFAULT_INITIATOR.to_string(),
    }
}

/// One target a portal reported through SendTargets (RFC 7143 12.3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiscoveredTarget {
    pub name: String,
    /// `address:port,tpgt` as the target wrote them.
    pub portals: Vec<String>,
}

thread_local! {
    /// libiscsi's error messages (log level 1) on this thread since the
    /// last [`ErrorCapture::start`]. libiscsi overwrites its one error
    /// string as a failure unwinds ("socket error Connection refused" becomes
    /// "Can not reconnect right now"), so the first message is kept here.
    static ERRORS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Collects libiscsi's error messages during one blocking call.
struct ErrorCapture;

impl ErrorCapture {
    fn start() -> ErrorCapture {
        ERRORS.with(|e| *e.borrow_mut() = Some(Vec::new()));
        ErrorCapture
    }

    /// The root cause: the first message libiscsi logged, else `last`
    /// (its error string now).
    fn reason(&self, last: String) -> String {
        let first = ERRORS.with(|e| e.borrow().as_ref().and_then(|v| v.first().cloned()));
        first.map(|f| clean_message(&f)).unwrap_or(last)
    }
}

/// Drop the " [target-name]" suffix libiscsi's logger appends.
fn clean_message(m: &str) -> String {
    let m = m.trim();
    let m = match m.rfind(" [") {
        Some(i) if m.ends_with(']') => &m[..i],
        _ => m,
    };
    m.trim_start_matches("iscsi_service: ").to_string()
}

impl Drop for ErrorCapture {
    fn drop(&mut self) {
        ERRORS.with(|e| *e.borrow_mut() = None);
    }
}

/// Forwards libiscsi's log lines to the `log` crate. libiscsi's log
/// callback has no user pointer, so this is one static function.
unsafe extern "C" fn forward_log(level: c_int, message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: libiscsi passes a NUL-terminated string that lives for the
    // duration of the call; it is only read here.
    let msg = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    let msg = msg.trim();
    if level <= 1 {
        // try_borrow: never panic inside a C callback.
        ERRORS.with(|e| {
            if let Ok(mut e) = e.try_borrow_mut() {
                if let Some(v) = e.as_mut() {
                    if v.len() < 16 {
                        v.push(msg.to_string());
                    }
                }
            }
        });
    }
    // Level 1 is "errors", but libiscsi logs every iscsi_set_error there,
    // and those reach the user through our own errors already.
    match level {
        ..=3 => log::debug!(target: "libiscsi", "{msg}"),
        _ => log::trace!(target: "libiscsi", "{msg}"),
    }
}

/// libiscsi's verbosity for the current `log` level; at least 1, so that
/// errors reach [`ErrorCapture`].
fn libiscsi_log_level() -> c_int {
    match log::max_level() {
        log::LevelFilter::Trace => 10,
        log::LevelFilter::Debug => 2,
        _ => 1,
    }
}

/// An owned `iscsi_context`; destroyed on drop.
struct Context(NonNull<sys::iscsi_context>);

/// Why no iSCSI context could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ContextError {
    #[error("initiator name {0:?} contains NUL")]
    Nul(String),
    #[error("empty initiator name")]
    EmptyInitiator,
    #[error("cannot create an iSCSI context (out of memory?)")]
    NoContext,
}

impl ContextError {
    /// As the connect error of `portal` it stops.
    fn at(self, portal: &str) -> TransportError {
        TransportError::Connect {
            portal: portal.to_string(),
            reason: self.to_string(),
        }
    }
}

impl Context {
    fn new(initiator: &str) -> Result<Context, ContextError> {
        let name = CString::new(initiator).map_err(|_| ContextError::Nul(initiator.to_string()))?;
        if initiator.is_empty() {
            return Err(ContextError::EmptyInitiator);
        }
        // SAFETY: `name` is NUL-terminated and outlives the call.
        let raw = unsafe { sys::iscsi_create_context(name.as_ptr()) };
        let ctx = NonNull::new(raw)
            .map(Context)
            .ok_or(ContextError::NoContext)?;
        // SAFETY: a fresh context owned by this thread; `forward_log` is a
        // static function that stays valid for the program's lifetime.
        unsafe {
            sys::iscsi_set_log_fn(ctx.ptr(), Some(forward_log));
            sys::iscsi_set_log_level(ctx.ptr(), libiscsi_log_level());
            // Never replay commands behind our back (ARCHITECTURE.md, "Transports").
            sys::iscsi_set_noautoreconnect(ctx.ptr(), 1);
            sys::iscsi_set_reconnect_max_retries(ctx.ptr(), 0);
        }
        if std::env::var_os("LIBISCSI_TCP_SYNCNT").is_none() {
            // SAFETY: live context, this thread.
            unsafe { sys::iscsi_set_tcp_syncnt(ctx.ptr(), TCP_SYNCNT) };
        }
        Ok(ctx)
    }

    fn ptr(&self) -> *mut sys::iscsi_context {
        self.0.as_ptr()
    }

    /// libiscsi's last error text.
    fn error(&self) -> String {
        // SAFETY: live context; the returned buffer is inside the context
        // and is copied before anything else can touch the context.
        let p = unsafe { sys::iscsi_get_error(self.ptr()) };
        if p.is_null() {
            return "unknown libiscsi error".into();
        }
        // SAFETY: libiscsi keeps a NUL-terminated string there.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
        let s = s.trim();
        if s.is_empty() {
            "unknown libiscsi error".into()
        } else {
            s.to_string()
        }
    }

    fn set_string(
        &self,
        what: &str,
        value: &str,
        f: unsafe extern "C" fn(*mut sys::iscsi_context, *const c_char) -> c_int,
    ) -> Result<(), String> {
        let v = CString::new(value).map_err(|_| format!("{what} contains NUL"))?;
        // SAFETY: live context; `v` is NUL-terminated and libiscsi copies it.
        if unsafe { f(self.ptr(), v.as_ptr()) } != 0 {
            return Err(format!("cannot set {what}: {}", self.error()));
        }
        Ok(())
    }

    fn set_timeout(&self, t: Duration) {
        // SAFETY: live context, this thread.
        unsafe { sys::iscsi_set_timeout(self.ptr(), timeout_secs(t)) };
    }

    fn logged_in(&self) -> bool {
        // SAFETY: live context, this thread.
        unsafe { sys::iscsi_is_logged_in(self.ptr()) != 0 }
    }

    /// TCP connect to `portal`, then log in (security and operational
    /// negotiation). Errors name the stage.
    fn connect_and_login(&self, portal: &str, target: &str) -> Result<(), TransportError> {
        let c_portal = CString::new(portal).map_err(|_| TransportError::Connect {
            portal: portal.to_string(),
            reason: "portal contains NUL".into(),
        })?;
        let capture = ErrorCapture::start();
        // SAFETY: live context; `c_portal` outlives the call (libiscsi copies it).
        if unsafe { sys::iscsi_connect_sync(self.ptr(), c_portal.as_ptr()) } != 0 {
            return Err(TransportError::Connect {
                portal: portal.to_string(),
                reason: capture.reason(self.error()),
            });
        }
        drop(capture);
        let capture = ErrorCapture::start();
        // SAFETY: live, connected context.
        if unsafe { sys::iscsi_login_sync(self.ptr()) } != 0 {
            return Err(TransportError::Login {
                portal: portal.to_string(),
                target: target.to_string(),
                reason: capture.reason(self.error()),
            });
        }
        Ok(())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: we own the context; nothing uses it after this. Callbacks
        // it fires (CANCELLED) must find their targets alive: owners that
        // have tasks in flight destroy the context before freeing those.
        unsafe { sys::iscsi_destroy_context(self.ptr()) };
    }
}

/// Whole seconds for `iscsi_set_timeout`, rounded up; zero means none.
fn timeout_secs(t: Duration) -> c_int {
    if t.is_zero() {
        return 0;
    }
    let s = t.as_secs() + u64::from(t.subsec_nanos() > 0);
    s.min(c_int::MAX as u64) as c_int
}

/// The LUN as libiscsi wants it: an int written to BHS bytes 8-9. Above
/// 255 that needs the flat space address method (SAM-5 4.7.7).
fn wire_lun(lun: u16) -> c_int {
    if lun < 256 {
        c_int::from(lun)
    } else {
        0x4000 | c_int::from(lun & 0x3fff)
    }
}

/// Where the callback reports: (request id, libiscsi status).
struct Completions {
    ready: VecDeque<(u64, c_int)>,
}

/// `private_data` of one command: which request, and where to report.
struct Token {
    id: u64,
    sink: *mut Completions,
}

/// Runs inside `iscsi_service`, `iscsi_scsi_cancel_*`, `iscsi_destroy_context`
/// (and, on an out-of-memory path, inside `iscsi_scsi_command_async`).
/// Only records the completion: the task is read and freed by the owner.
unsafe extern "C" fn command_done(
    _iscsi: *mut sys::iscsi_context,
    status: c_int,
    _command_data: *mut c_void,
    private_data: *mut c_void,
) {
    let token = private_data as *const Token;
    if token.is_null() {
        return;
    }
    // SAFETY: private_data is a Token from Box::into_raw in `submit`; it is
    // freed only after the context has been destroyed or the command's
    // callback has been seen, and the sink outlives every token. The
    // transport is not using the sink while libiscsi runs this callback
    // (it is inside a libiscsi call on the same thread).
    unsafe {
        let t = &*token;
        (*t.sink).ready.push_back((t.id, status));
    }
}

/// Set or clear TCP_CORK (tcp(7)) on the session's socket. Clearing it
/// sends what is queued at once. A failure only loses the coalescing.
fn cork(fd: c_int, on: bool) {
    let v = c_int::from(on);
    // SAFETY: fd is the context's open socket (the caller just polled it);
    // the option value is a live c_int of the size given.
    let rc = unsafe {
        nix::libc::setsockopt(
            fd,
            nix::libc::IPPROTO_TCP,
            nix::libc::TCP_CORK,
            (&v as *const c_int).cast(),
            std::mem::size_of::<c_int>() as nix::libc::socklen_t,
        )
    };
    if rc != 0 {
        log::trace!("TCP_CORK {on}: {}", std::io::Error::last_os_error());
    }
}

/// A libiscsi task for `cdb` with `buf[span]` as its data buffer. The
/// error is the reason, for [`IscsiTransport::reject`].
fn create_task(
    cdb: &Cdb,
    dir: Direction,
    buf: &mut [u8],
    span: &std::ops::Range<usize>,
) -> Result<(*mut sys::scsi_task, c_int), &'static str> {
    let len = c_int::try_from(span.len()).map_err(|_| "buffer larger than 2 GiB")?;
    let (xfer, len) = match dir {
        _ if len == 0 => (sys::SCSI_XFER_NONE, 0),
        Direction::None => (sys::SCSI_XFER_NONE, 0),
        Direction::In => (sys::SCSI_XFER_READ, len),
        Direction::Out => (sys::SCSI_XFER_WRITE, len),
    };
    let mut cdb_bytes = [0u8; sys::SCSI_CDB_MAX_SIZE];
    cdb_bytes[..cdb.len()].copy_from_slice(cdb.as_bytes());
    // SAFETY: Cdb guarantees 1..=16 bytes, and cdb_bytes has 16 (libiscsi
    // copies cdb_size bytes without a bounds check).
    let task =
        unsafe { sys::scsi_create_task(cdb.len() as c_int, cdb_bytes.as_mut_ptr(), xfer, len) };
    if task.is_null() {
        return Err("out of memory creating the task");
    }
    if len > 0 {
        // SAFETY: `buf[span]` has `len` bytes (check_span ran before); the
        // heap block stays where it is when the Vec moves into `in_flight`,
        // and it stays there until libiscsi is done with the task.
        let rc = unsafe {
            let data = buf.as_mut_ptr().add(span.start);
            match dir {
                Direction::Out => sys::scsi_task_add_data_out_buffer(task, len, data),
                _ => sys::scsi_task_add_data_in_buffer(task, len, data),
            }
        };
        if rc != 0 {
            // SAFETY: the task was never submitted.
            unsafe { sys::scsi_free_scsi_task(task) };
            return Err("out of memory attaching the buffer");
        }
    }
    Ok((task, len))
}

/// A command between submit and completion. Its buffer is referenced by
/// libiscsi (through the task's iovector) until the callback has run.
struct InFlight {
    tag: u64,
    cdb: Cdb,
    dir: Direction,
    buf: Vec<u8>,
    span: std::ops::Range<usize>,
    timeout: Duration,
    task: *mut sys::scsi_task,
    token: *mut Token,
}

impl InFlight {
    /// Free the task and the token. Only once libiscsi no longer refers to
    /// them: after the callback, or after the context was destroyed.
    unsafe fn release(self) -> (Vec<u8>, Cdb) {
        // SAFETY: (caller) libiscsi holds no reference to task or token any
        // more; both came from scsi_create_task / Box::into_raw and are
        // freed exactly once, here.
        unsafe {
            sys::scsi_free_scsi_task(self.task);
            drop(Box::from_raw(self.token));
        }
        (self.buf, self.cdb)
    }

    /// The residual libiscsi computed for the finished task.
    fn residual(&self) -> Residual {
        let (mut kind, mut amount) = (0, 0u64);
        // SAFETY: the task is alive until release(); out pointers are locals.
        unsafe { sys::sanmover_task_residual(self.task, &mut kind, &mut amount) };
        match kind {
            sys::SCSI_RESIDUAL_UNDERFLOW => Residual::Underflow(amount),
            sys::SCSI_RESIDUAL_OVERFLOW => Residual::Overflow(amount),
            _ => Residual::None,
        }
    }

    /// The sense bytes of a CHECK CONDITION, copied out of the task.
    fn sense(&self) -> Vec<u8> {
        let (mut data, mut size) = (ptr::null(), 0);
        // SAFETY: the task is alive until release(); out pointers are locals.
        unsafe { sys::sanmover_task_datain(self.task, &mut data, &mut size) };
        if data.is_null() || size <= 0 {
            return Vec::new();
        }
        // SAFETY: libiscsi's datain buffer of `size` bytes, owned by the
        // still-live task; copied out here.
        let seg = unsafe { std::slice::from_raw_parts(data, size as usize) };
        sys::sense_from_response_segment(seg).to_vec()
    }
}

/// A pipelined iSCSI session to one logical unit.
pub struct IscsiTransport {
    /// `None` only during drop.
    ctx: Option<Context>,
    /// Heap cell the callbacks write to; from Box::into_raw, freed in drop
    /// after the context.
    sink: *mut Completions,
    in_flight: HashMap<u64, InFlight>,
    /// Commands that ended (timeout, lost session) while libiscsi may still
    /// refer to their task or buffer; freed after the context in drop.
    parked: Vec<InFlight>,
    next_id: u64,
    lun: c_int,
    queue_depth: usize,
    name: String,
    /// The value last given to `iscsi_set_timeout`.
    timeout_set: Option<c_int>,
    /// Why the session is gone, once it is.
    lost: Option<String>,
    last_tick: Instant,
}

// SAFETY: the context and tasks are only touched through `&mut self` (or
// in drop), so one thread at a time; libiscsi 1.19 has no thread-affine
// state (no TLS, no locks), so moving the whole session to another thread
// between calls is fine. Not Sync: `&self` methods must never reach the
// context from two threads, which the raw pointers already prevent.
unsafe impl Send for IscsiTransport {}

impl std::fmt::Debug for IscsiTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IscsiTransport")
            .field("name", &self.name)
            .field("in_flight", &self.in_flight.len())
            .field("queue_depth", &self.queue_depth)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl IscsiTransport {
    /// Connect and log in to `url`'s target. The LUN is not checked here: a
    /// missing LUN shows up as CHECK CONDITION (LOGICAL UNIT NOT SUPPORTED)
    /// on the first command. A user without a password takes
    /// `SANMOVER_CHAP_PASSWORD`.
    pub fn connect(url: &IscsiUrl, opts: &IscsiOptions) -> Result<IscsiTransport, TransportError> {
        let url = url.clone().password_from_env();
        let portal = url.portal();
        let name = url.without_credentials().to_string();
        let login_err = |reason: String| TransportError::Login {
            portal: portal.clone(),
            target: url.target.clone(),
            reason,
        };
        let ctx = Context::new(&opts.initiator).map_err(|e| e.at(&portal))?;
        // On any error below, `ctx` drops and the context is destroyed: a
        // context that failed to connect is not reusable (reference 1.4).
        // SAFETY: live context, this thread; enum values from the header.
        let rc = unsafe { sys::iscsi_set_session_type(ctx.ptr(), sys::ISCSI_SESSION_NORMAL) };
        if rc != 0 {
            return Err(login_err(ctx.error()));
        }
        ctx.set_string("target name", &url.target, sys::iscsi_set_targetname)
            .map_err(login_err)?;
        let digest = if opts.header_digest {
            sys::ISCSI_HEADER_DIGEST_NONE_CRC32C
        } else {
            sys::ISCSI_HEADER_DIGEST_NONE
        };
        // SAFETY: live context, this thread.
        unsafe { sys::iscsi_set_header_digest(ctx.ptr(), digest) };
        if let Some(user) = &url.user {
            let Some(pw) = &url.password else {
                return Err(login_err(format!(
                    "CHAP user {user:?} given without a password \
                     (put it in the URL as user%password or set {})",
                    super::url::PASSWORD_ENV
                )));
            };
            let (u, p) = match (CString::new(user.as_str()), CString::new(pw.expose())) {
                (Ok(u), Ok(p)) => (u, p),
                _ => return Err(login_err("CHAP user or password contains NUL".into())),
            };
            // SAFETY: live context; both strings NUL-terminated, copied by libiscsi.
            if unsafe { sys::iscsi_set_initiator_username_pwd(ctx.ptr(), u.as_ptr(), p.as_ptr()) }
                != 0
            {
                return Err(login_err(ctx.error()));
            }
        }
        if std::env::var_os("LIBISCSI_TCP_USER_TIMEOUT").is_none() {
            let ms = opts.timeout.as_millis().min(c_int::MAX as u128) as c_int;
            // SAFETY: live context, this thread.
            unsafe { sys::iscsi_set_tcp_user_timeout(ctx.ptr(), ms) };
        }
        ctx.set_timeout(opts.timeout);
        ctx.connect_and_login(&portal, &url.target)?;
        log::debug!("{name}: logged in as {}", opts.initiator);
        let sink = Box::into_raw(Box::new(Completions {
            ready: VecDeque::new(),
        }));
        Ok(IscsiTransport {
            ctx: Some(ctx),
            sink,
            in_flight: HashMap::new(),
            parked: Vec::new(),
            next_id: 1,
            lun: wire_lun(url.lun),
            queue_depth: opts.queue_depth.max(1),
            name,
            timeout_set: Some(timeout_secs(opts.timeout)),
            lost: None,
            last_tick: Instant::now(),
        })
    }

    fn ctx(&self) -> &Context {
        self.ctx.as_ref().expect("context present until drop")
    }

    fn reject(cdb: Cdb, reason: impl Into<String>) -> TransportError {
        TransportError::Rejected {
            cdb,
            reason: reason.into(),
        }
    }

    /// The session is gone: cancel what libiscsi still holds (its callbacks
    /// fire now), free every in-flight command, and remember why.
    fn lose(&mut self, reason: String) -> TransportError {
        log::debug!("{}: session lost: {reason}", self.name);
        // libiscsi may still hold PDUs of these commands (a half-written
        // one, Data-Out for a write): park them until the context is gone.
        let parked: Vec<InFlight> = self.in_flight.drain().map(|(_, f)| f).collect();
        self.parked.extend(parked);
        // SAFETY: the sink is alive and no libiscsi call is running.
        unsafe { (*self.sink).ready.clear() };
        self.lost = Some(reason.clone());
        TransportError::SessionLost(reason)
    }

    /// Pop the next recorded completion.
    fn next_ready(&mut self) -> Option<(u64, c_int)> {
        // SAFETY: the sink is alive and no libiscsi call is running, so
        // nothing else touches it now.
        unsafe { (*self.sink).ready.pop_front() }
    }

    /// One round of poll + iscsi_service. Err: the session is unusable.
    fn wait_once(&mut self) -> Result<(), String> {
        let ctx = self.ctx().ptr();
        // SAFETY: live context, this thread. The fd changes on reconnect,
        // so it is read again every round.
        let (fd, events) = unsafe { (sys::iscsi_get_fd(ctx), sys::iscsi_which_events(ctx)) };
        if fd < 0 {
            return Err(format!("not connected: {}", self.ctx().error()));
        }
        let mut revents = 0;
        if events == 0 {
            // libiscsi wants nothing now (reconnect back-off): wait a little.
            std::thread::sleep(Duration::from_millis(100));
        } else {
            // SAFETY: fd is the context's open socket and stays open for the
            // duration of the poll (nothing closes it meanwhile).
            let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
            let flags = PollFlags::from_bits_truncate(events as i16);
            let mut fds = [PollFd::new(bfd, flags)];
            match poll(&mut fds, PollTimeout::from(SERVICE_TICK.as_millis() as u16)) {
                Ok(0) => {}
                Ok(_) => revents = fds[0].revents().map_or(0, |r| c_int::from(r.bits())),
                Err(Errno::EINTR) => return Ok(()),
                Err(e) => return Err(format!("poll: {e}")),
            }
        }
        // libiscsi writes one PDU per writev: a 256 KiB WRITE is 32 Data-Out
        // PDUs when the target takes 8 KiB segments. Corked, they leave as
        // full TCP segments when the service call ends, and the target
        // wakes once per segment, not once per PDU.
        let sending = revents & c_int::from(PollFlags::POLLOUT.bits()) != 0;
        if sending {
            cork(fd, true);
        }
        // SAFETY: live context, this thread; callbacks push to the live sink.
        let rc = unsafe { sys::iscsi_service(ctx, revents) };
        if sending {
            cork(fd, false);
        }
        if rc < 0 {
            return Err(self.ctx().error());
        }
        // A busy socket keeps poll returning early; still let libiscsi scan
        // for timeouts on schedule (service with 0 does only that).
        if revents == 0 {
            self.last_tick = Instant::now();
        } else if self.last_tick.elapsed() >= SERVICE_TICK {
            self.last_tick = Instant::now();
            // SAFETY: as above.
            if unsafe { sys::iscsi_service(ctx, 0) } < 0 {
                return Err(self.ctx().error());
            }
        }
        Ok(())
    }

    /// Hand a registered task to libiscsi; on failure take it back out of
    /// `in_flight` and free it.
    fn launch(
        &mut self,
        id: u64,
        task: *mut sys::scsi_task,
        token: *mut Token,
    ) -> Result<(), TransportError> {
        // SAFETY: live, logged-in context; task, buffer and token stay valid
        // until the callback has been seen (or the context is destroyed).
        let rc = unsafe {
            sys::iscsi_scsi_command_async(
                self.ctx().ptr(),
                self.lun,
                task,
                Some(command_done),
                ptr::null_mut(),
                token.cast(),
            )
        };
        if rc != 0 {
            let reason = self.ctx().error();
            let f = self.in_flight.remove(&id).expect("just inserted");
            // SAFETY: submission failed, so libiscsi keeps no reference (on
            // its out-of-memory path it may already have called back: that
            // record is dropped just below). The sink is not in use.
            let cdb = unsafe {
                (*self.sink).ready.retain(|&(i, _)| i != id);
                f.release().1
            };
            if !self.ctx().logged_in() {
                return Err(self.lose(reason));
            }
            return Err(Self::reject(cdb, reason));
        }
        Ok(())
    }

    /// A command that ended with a SCSI status byte `s`: its residual,
    /// sense and buffer.
    fn completed(&mut self, f: InFlight, s: c_int) -> Response {
        let residual = f.residual();
        let sense = if s == sys::SCSI_STATUS_CHECK_CONDITION {
            f.sense()
        } else {
            Vec::new()
        };
        let (tag, dir, cdb, span) = (f.tag, f.dir, f.cdb, f.span.clone());
        // SAFETY: live context, this thread.
        let queued = unsafe { sys::iscsi_out_queue_length(self.ctx().ptr()) };
        let buf = if dir == Direction::Out && s != sys::SCSI_STATUS_GOOD && queued > 0 {
            // A target may answer a write before taking all its
            // unsolicited data; libiscsi would then still send
            // queued Data-Out PDUs from this task's buffer. Keep the
            // original alive (parked) and hand back a copy.
            let copy = f.buf.clone();
            self.parked.push(f);
            copy
        } else {
            // SAFETY: the callback has run and nothing of the
            // command is queued (GOOD means the target has all the
            // data; data-in needs no Data-Out), so libiscsi is done
            // with the task and buffer.
            unsafe { f.release() }.0
        };
        let resp = Response {
            tag,
            cdb,
            status: Status(s as u8),
            sense,
            residual,
            buf,
            span,
            dir,
        };
        log::trace!(
            "{}: done tag={} cdb=[{}] status={} residual={:?} sense={}",
            self.name,
            resp.tag,
            resp.cdb,
            resp.status,
            resp.residual,
            hex::encode(&resp.sense)
        );
        resp
    }

    /// Turn a finished command into a Response (or an error).
    fn finish(&mut self, f: InFlight, status: c_int) -> Result<Response, TransportError> {
        match status {
            sys::SCSI_STATUS_TIMEOUT => {
                let (timeout, cdb) = (f.timeout, f.cdb);
                // The timeout scan freed the command PDU, but Data-Out PDUs
                // of a write may still be queued and read the task's
                // buffer when sent: keep it all until the context is gone.
                self.parked.push(f);
                log::trace!("{}: {cdb}: timed out after {timeout:?}", self.name);
                Err(TransportError::Timeout { cdb, timeout })
            }
            sys::SCSI_STATUS_CANCELLED | sys::SCSI_STATUS_ERROR => {
                let what = if status == sys::SCSI_STATUS_CANCELLED {
                    "command cancelled"
                } else {
                    "command failed"
                };
                let reason = format!("{}: {what}: {}", f.cdb, clean_message(&self.ctx().error()));
                self.parked.push(f);
                Err(self.lose(reason))
            }
            s if (0..=0xff).contains(&s) => Ok(self.completed(f, s)),
            other => {
                let cdb = f.cdb;
                self.parked.push(f);
                Err(self.lose(format!("{cdb}: unexpected libiscsi status {other:#x}")))
            }
        }
    }
}

impl Transport for IscsiTransport {
    fn submit(&mut self, req: Request) -> Result<(), TransportError> {
        if let Some(reason) = &self.lost {
            return Err(TransportError::SessionLost(reason.clone()));
        }
        req.check_span()?;
        let Request {
            tag,
            cdb,
            dir,
            mut buf,
            span,
            timeout,
        } = req;
        if self.in_flight.len() >= self.queue_depth {
            return Err(Self::reject(
                cdb,
                format!("queue full: {} commands in flight", self.in_flight.len()),
            ));
        }
        let secs = timeout_secs(timeout);
        if self.timeout_set != Some(secs) {
            // Stamped on PDUs at creation: must precede the submit.
            self.ctx().set_timeout(timeout);
            self.timeout_set = Some(secs);
        }
        let (task, len) = match create_task(&cdb, dir, &mut buf, &span) {
            Ok(t) => t,
            Err(reason) => return Err(Self::reject(cdb, reason)),
        };
        let id = self.next_id;
        self.next_id += 1;
        let token = Box::into_raw(Box::new(Token {
            id,
            sink: self.sink,
        }));
        log::trace!(
            "{}: submit tag={tag} cdb=[{cdb}] dir={dir:?} len={len} timeout={timeout:?}",
            self.name
        );
        self.in_flight.insert(
            id,
            InFlight {
                tag,
                cdb,
                dir,
                buf,
                span,
                timeout,
                task,
                token,
            },
        );
        self.launch(id, task, token)
    }

    fn complete(&mut self) -> Result<Response, TransportError> {
        loop {
            while let Some((id, status)) = self.next_ready() {
                if let Some(f) = self.in_flight.remove(&id) {
                    return self.finish(f, status);
                }
            }
            if self.in_flight.is_empty() {
                return Err(match &self.lost {
                    Some(r) => TransportError::SessionLost(r.clone()),
                    None => TransportError::Unsupported(
                        "complete() called with no command in flight".into(),
                    ),
                });
            }
            if let Err(reason) = self.wait_once() {
                return Err(self.lose(reason));
            }
        }
    }

    fn queue_depth(&self) -> usize {
        self.queue_depth
    }

    fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl Drop for IscsiTransport {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            if self.lost.is_none() && ctx.logged_in() {
                // Best effort and bounded: the logout PDU gets a short timeout.
                ctx.set_timeout(Duration::from_secs(5));
                // SAFETY: live context, this thread; callbacks of commands
                // still in flight may run and push to the live sink.
                if unsafe { sys::iscsi_logout_sync(ctx.ptr()) } != 0 {
                    log::debug!("{}: logout: {}", self.name, ctx.error());
                }
            }
            // Destroys the context; remaining commands are cancelled (their
            // callbacks push to the sink, which is still alive).
            drop(ctx);
        }
        let parked = std::mem::take(&mut self.parked);
        for f in self.in_flight.drain().map(|(_, f)| f).chain(parked) {
            // SAFETY: the context is gone, so nothing refers to the tasks,
            // tokens or buffers any more.
            drop(unsafe { f.release() });
        }
        // SAFETY: from Box::into_raw in connect; no token or context that
        // could reach it is left.
        drop(unsafe { Box::from_raw(self.sink) });
    }
}

/// Ask a portal which targets it offers (a discovery session, SendTargets=All).
pub fn discover(
    portal: &PortalUrl,
    opts: &IscsiOptions,
) -> Result<Vec<DiscoveredTarget>, TransportError> {
    let addr = portal.portal();
    let ctx = Context::new(&opts.initiator).map_err(|e| e.at(&addr))?;
    // SAFETY: live context, this thread.
    unsafe {
        sys::iscsi_set_session_type(ctx.ptr(), sys::ISCSI_SESSION_DISCOVERY);
        sys::iscsi_set_header_digest(ctx.ptr(), sys::ISCSI_HEADER_DIGEST_NONE);
    }
    ctx.set_timeout(opts.timeout);
    ctx.connect_and_login(&addr, "discovery session")?;
    // SAFETY: live, logged-in discovery context.
    let list = unsafe { sys::iscsi_discovery_sync(ctx.ptr()) };
    if list.is_null() {
        return Err(TransportError::SessionLost(format!(
            "SendTargets at {addr}: {}",
            ctx.error()
        )));
    }
    let mut out = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: a list from iscsi_discovery_sync, read before it is freed;
        // every string is NUL-terminated or NULL.
        unsafe {
            let d = &*node;
            let mut portals = Vec::new();
            let mut p = d.portals;
            while !p.is_null() {
                if !(*p).portal.is_null() {
                    portals.push(CStr::from_ptr((*p).portal).to_string_lossy().into_owned());
                }
                p = (*p).next;
            }
            if !d.target_name.is_null() {
                out.push(DiscoveredTarget {
                    name: CStr::from_ptr(d.target_name).to_string_lossy().into_owned(),
                    portals,
                });
            }
            node = d.next;
        }
    }
    // SAFETY: `list` came from iscsi_discovery_sync on this context and is
    // freed once; nothing points into it any more (strings were copied).
    unsafe {
        sys::iscsi_free_discovery_data(ctx.ptr(), list);
        sys::iscsi_logout_sync(ctx.ptr());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounds_up_to_seconds() {
        assert_eq!(timeout_secs(Duration::ZERO), 0);
        assert_eq!(timeout_secs(Duration::from_millis(1)), 1);
        assert_eq!(timeout_secs(Duration::from_secs(30)), 30);
        assert_eq!(timeout_secs(Duration::from_millis(30_001)), 31);
        assert_eq!(timeout_secs(Duration::from_secs(u64::MAX)), c_int::MAX);
    }

    #[test]
    fn log_messages_are_cleaned() {
        assert_eq!(
            clean_message("iscsi_service: socket error Connection refused(111). [iqn.x:y]"),
            "socket error Connection refused(111)."
        );
        assert_eq!(clean_message("plain"), "plain");
        assert_eq!(clean_message("a [b] c"), "a [b] c");
    }

    #[test]
    fn lun_encoding() {
        // SAM-5 4.7: peripheral below 256, flat space (01b) above.
        assert_eq!(wire_lun(0), 0);
        assert_eq!(wire_lun(255), 255);
        assert_eq!(wire_lun(256), 0x4100);
        assert_eq!(wire_lun(16383), 0x7fff);
    }

    #[test]
    fn initiator_fallback() {
        assert_eq!(initiator_or_default(None), DEFAULT_INITIATOR);
        assert_eq!(initiator_or_default(Some("  ".into())), DEFAULT_INITIATOR);
        assert_eq!(initiator_or_default(Some(" iqn.a:b ".into())), "iqn.a:b");
    }

    #[test]
    fn options_default() {
        let o = IscsiOptions::default();
        assert_eq!(o.initiator, DEFAULT_INITIATOR);
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(o.queue_depth, 32);
        assert!(o.header_digest);
    }

    #[test]
    fn context_error_text_and_bad_names() {
        assert_eq!(Context::new("").err(), Some(ContextError::EmptyInitiator));
        assert!(matches!(
            Context::new("iqn.x\0y"),
            Err(ContextError::Nul(_))
        ));
        let ctx = Context::new(DEFAULT_INITIATOR).unwrap();
        assert!(!ctx.logged_in());
        assert!(ctx
            .set_string("target name", "a\0b", sys::iscsi_set_targetname)
            .is_err());
        ctx.set_string(
            "target name",
            "iqn.2024-01.org.sanmover:t",
            sys::iscsi_set_targetname,
        )
        .unwrap();
    }
}
