//! Hand-written FFI declarations for libiscsi 1.19 (`<iscsi/iscsi.h>`,
//! `<iscsi/scsi-lowlevel.h>`), plus a small C shim for struct fields.
//!
//! Every libiscsi struct is opaque here except the few plain ones the API
//! passes by pointer for the caller to read ([`iscsi_data`],
//! [`scsi_iovec`], the discovery lists). Fields of `struct scsi_task` are
//! read through the `sanmover_task_*` shim functions, compiled against the
//! installed headers, because that layout changed in libiscsi 1.20.
//!
//! Nothing here is safe to call without reading libiscsi's rules: one
//! context per thread at a time, callbacks run inside `iscsi_service`,
//! `iscsi_scsi_cancel_*` and `iscsi_destroy_context`, and buffers handed to
//! a task must stay put until its callback has run.

#![deny(clippy::undocumented_unsafe_blocks)]
#![allow(non_camel_case_types)]

use libc::{c_char, c_int, c_uchar, c_void, size_t};

/// The pkg-config version of the libiscsi this crate was built against.
pub const LIBISCSI_PKG_VERSION: &str = env!("LIBISCSI_PKG_VERSION");

/// `LIBISCSI_API_VERSION` in the 1.19 header.
pub const LIBISCSI_API_VERSION_1_19: libc::c_long = 20170105;

/// The ABI number of `c/shim.c` this file was written for.
pub const SHIM_ABI: c_int = 1;

/// `sizeof(struct scsi_task)` / `sizeof(struct scsi_sense)` in 1.19 (x86_64).
pub const SIZEOF_SCSI_TASK_1_19: usize = 176;
pub const SIZEOF_SCSI_SENSE_1_19: usize = 16;
/// The same in 1.20 and later, where `scsi_sense` gained INFORMATION.
pub const SIZEOF_SCSI_TASK_1_20: usize = 184;
pub const SIZEOF_SCSI_SENSE_1_20: usize = 24;

macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[repr(C)]
        pub struct $name {
            _p: [u8; 0],
            // Not Send, not Sync, not Unpin: only ever behind a raw pointer.
            _m: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
        }
    )*};
}

opaque! {
    /// `struct iscsi_context`: one session (or discovery session).
    iscsi_context,
    /// `struct scsi_task`: one command; fields via the shim.
    scsi_task,
    /// `struct scsi_sense`: libiscsi's parsed sense (1.19 has no INFORMATION).
    scsi_sense,
    /// `struct iscsi_url` (unused: URLs are parsed in Rust).
    iscsi_url,
}

/// `struct iscsi_data`: a data-out buffer, or NOP-In data in a callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iscsi_data {
    pub size: size_t,
    pub data: *mut c_uchar,
}

/// `struct scsi_iovec`, identical to `struct iovec`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct scsi_iovec {
    pub iov_base: *mut c_void,
    pub iov_len: size_t,
}

/// `struct iscsi_target_portal`: one portal of a discovered target.
#[repr(C)]
#[derive(Debug)]
pub struct iscsi_target_portal {
    pub next: *mut iscsi_target_portal,
    pub portal: *const c_char,
}

/// `struct iscsi_discovery_address`: one SendTargets entry (linked list).
#[repr(C)]
#[derive(Debug)]
pub struct iscsi_discovery_address {
    pub next: *mut iscsi_discovery_address,
    pub target_name: *const c_char,
    pub portals: *mut iscsi_target_portal,
}

// enum scsi_status (iscsi.h)
pub const SCSI_STATUS_GOOD: c_int = 0;
pub const SCSI_STATUS_CHECK_CONDITION: c_int = 2;
pub const SCSI_STATUS_CONDITION_MET: c_int = 4;
pub const SCSI_STATUS_BUSY: c_int = 8;
pub const SCSI_STATUS_RESERVATION_CONFLICT: c_int = 0x18;
pub const SCSI_STATUS_TASK_SET_FULL: c_int = 0x28;
pub const SCSI_STATUS_ACA_ACTIVE: c_int = 0x30;
pub const SCSI_STATUS_TASK_ABORTED: c_int = 0x40;
/// Login only.
pub const SCSI_STATUS_REDIRECT: c_int = 0x101;
/// Local: the task was cancelled (destroy, cancel, lost connection).
pub const SCSI_STATUS_CANCELLED: c_int = 0x0f00_0000;
/// Local: the command failed inside libiscsi.
pub const SCSI_STATUS_ERROR: c_int = 0x0f00_0001;
/// Local: `iscsi_set_timeout` expired (no ABORT TASK was sent).
pub const SCSI_STATUS_TIMEOUT: c_int = 0x0f00_0002;

// enum scsi_xfer_dir (scsi-lowlevel.h)
pub const SCSI_XFER_NONE: c_int = 0;
pub const SCSI_XFER_READ: c_int = 1;
pub const SCSI_XFER_WRITE: c_int = 2;

// enum scsi_residual (scsi-lowlevel.h)
pub const SCSI_RESIDUAL_NO_RESIDUAL: c_int = 0;
pub const SCSI_RESIDUAL_UNDERFLOW: c_int = 1;
pub const SCSI_RESIDUAL_OVERFLOW: c_int = 2;

/// `SCSI_CDB_MAX_SIZE`: libiscsi 1.19 carries no AHS, so no 32-byte CDBs.
pub const SCSI_CDB_MAX_SIZE: usize = 16;

// enum iscsi_session_type
pub const ISCSI_SESSION_DISCOVERY: c_int = 1;
pub const ISCSI_SESSION_NORMAL: c_int = 2;

// enum iscsi_header_digest
pub const ISCSI_HEADER_DIGEST_NONE: c_int = 0;
pub const ISCSI_HEADER_DIGEST_NONE_CRC32C: c_int = 1;
pub const ISCSI_HEADER_DIGEST_CRC32C_NONE: c_int = 2;
pub const ISCSI_HEADER_DIGEST_CRC32C: c_int = 3;

// enum iscsi_immediate_data / iscsi_initial_r2t
pub const ISCSI_IMMEDIATE_DATA_NO: c_int = 0;
pub const ISCSI_IMMEDIATE_DATA_YES: c_int = 1;
pub const ISCSI_INITIAL_R2T_NO: c_int = 0;
pub const ISCSI_INITIAL_R2T_YES: c_int = 1;

// enum iscsi_task_mgmt_funcs (RFC 7143 11.5.1)
pub const ISCSI_TM_ABORT_TASK: c_int = 0x01;
pub const ISCSI_TM_ABORT_TASK_SET: c_int = 0x02;
pub const ISCSI_TM_CLEAR_ACA: c_int = 0x03;
pub const ISCSI_TM_CLEAR_TASK_SET: c_int = 0x04;
pub const ISCSI_TM_LUN_RESET: c_int = 0x05;
pub const ISCSI_TM_TARGET_WARM_RESET: c_int = 0x06;
pub const ISCSI_TM_TARGET_COLD_RESET: c_int = 0x07;
pub const ISCSI_TM_TASK_REASSIGN: c_int = 0x08;

// enum iscsi_task_mgmt_response (RFC 7143 11.6.1)
pub const ISCSI_TMR_FUNC_COMPLETE: u32 = 0x0;
pub const ISCSI_TMR_TASK_DOES_NOT_EXIST: u32 = 0x1;
pub const ISCSI_TMR_LUN_DOES_NOT_EXIST: u32 = 0x2;
pub const ISCSI_TMR_TMF_NOT_SUPPORTED: u32 = 0x5;
pub const ISCSI_TMR_FUNC_REJECTED: u32 = 0xFF;

/// `iscsi_command_cb`. For SCSI commands `command_data` is always the
/// `struct scsi_task *`, also on CANCELLED and TIMEOUT.
pub type iscsi_command_cb = Option<
    unsafe extern "C" fn(
        iscsi: *mut iscsi_context,
        status: c_int,
        command_data: *mut c_void,
        private_data: *mut c_void,
    ),
>;

/// `iscsi_log_fn`: no user pointer, so the function must be static.
pub type iscsi_log_fn = Option<unsafe extern "C" fn(level: c_int, message: *const c_char)>;

// Linked by build.rs through pkg-config (dynamic).
extern "C" {
    // --- context -------------------------------------------------------
    /// NULL if the name is empty or on OOM. Reads several LIBISCSI_* env vars.
    pub fn iscsi_create_context(initiator_name: *const c_char) -> *mut iscsi_context;
    /// Closes the socket; in-flight SCSI callbacks fire with CANCELLED.
    pub fn iscsi_destroy_context(iscsi: *mut iscsi_context) -> c_int;
    /// Points into the context; overwritten by the next error.
    pub fn iscsi_get_error(iscsi: *mut iscsi_context) -> *const c_char;
    pub fn iscsi_set_targetname(iscsi: *mut iscsi_context, targetname: *const c_char) -> c_int;
    pub fn iscsi_set_alias(iscsi: *mut iscsi_context, alias: *const c_char) -> c_int;
    /// Must be set before login: the default (0) makes the login fail.
    pub fn iscsi_set_session_type(iscsi: *mut iscsi_context, session_type: c_int) -> c_int;
    pub fn iscsi_set_header_digest(iscsi: *mut iscsi_context, header_digest: c_int) -> c_int;
    pub fn iscsi_set_initiator_username_pwd(
        iscsi: *mut iscsi_context,
        user: *const c_char,
        passwd: *const c_char,
    ) -> c_int;
    pub fn iscsi_set_target_username_pwd(
        iscsi: *mut iscsi_context,
        user: *const c_char,
        passwd: *const c_char,
    ) -> c_int;
    pub fn iscsi_set_immediate_data(iscsi: *mut iscsi_context, immediate_data: c_int) -> c_int;
    pub fn iscsi_set_initial_r2t(iscsi: *mut iscsi_context, initial_r2t: c_int) -> c_int;
    /// Seconds, 0 = none. Stamped on each PDU when the PDU is created.
    pub fn iscsi_set_timeout(iscsi: *mut iscsi_context, timeout: c_int) -> c_int;
    pub fn iscsi_set_tcp_keepalive(
        iscsi: *mut iscsi_context,
        idle: c_int,
        count: c_int,
        interval: c_int,
    ) -> c_int;
    pub fn iscsi_set_tcp_user_timeout(iscsi: *mut iscsi_context, timeout_ms: c_int);
    pub fn iscsi_set_tcp_syncnt(iscsi: *mut iscsi_context, value: c_int);
    /// 1 = never reconnect (and replay) on its own.
    pub fn iscsi_set_noautoreconnect(iscsi: *mut iscsi_context, state: c_int);
    /// -1 forever (default), 0 never, n times.
    pub fn iscsi_set_reconnect_max_retries(iscsi: *mut iscsi_context, count: c_int);
    /// 0 (off) .. 10 (everything).
    pub fn iscsi_set_log_level(iscsi: *mut iscsi_context, level: c_int);
    pub fn iscsi_set_log_fn(iscsi: *mut iscsi_context, log_fn: iscsi_log_fn);
    pub fn iscsi_is_logged_in(iscsi: *mut iscsi_context) -> c_int;

    // --- session -------------------------------------------------------
    /// Connect, log in, and (lun != -1) run TEST UNIT READY until the unit
    /// attentions are gone (it swallows them).
    pub fn iscsi_full_connect_sync(
        iscsi: *mut iscsi_context,
        portal: *const c_char,
        lun: c_int,
    ) -> c_int;
    /// TCP connect only.
    pub fn iscsi_connect_sync(iscsi: *mut iscsi_context, portal: *const c_char) -> c_int;
    pub fn iscsi_login_sync(iscsi: *mut iscsi_context) -> c_int;
    pub fn iscsi_logout_sync(iscsi: *mut iscsi_context) -> c_int;
    pub fn iscsi_disconnect(iscsi: *mut iscsi_context) -> c_int;
    /// Discovery sessions only; free the result with `iscsi_free_discovery_data`.
    pub fn iscsi_discovery_sync(iscsi: *mut iscsi_context) -> *mut iscsi_discovery_address;
    pub fn iscsi_free_discovery_data(iscsi: *mut iscsi_context, da: *mut iscsi_discovery_address);

    // --- event loop ----------------------------------------------------
    /// Changes on reconnect: re-read it every iteration.
    pub fn iscsi_get_fd(iscsi: *mut iscsi_context) -> c_int;
    /// POLLIN/POLLOUT mask; 0 means wait a little and ask again.
    pub fn iscsi_which_events(iscsi: *mut iscsi_context) -> c_int;
    /// `revents` 0 only scans timeouts. < 0: the context is unusable.
    pub fn iscsi_service(iscsi: *mut iscsi_context, revents: c_int) -> c_int;
    pub fn iscsi_queue_length(iscsi: *mut iscsi_context) -> c_int;
    pub fn iscsi_out_queue_length(iscsi: *mut iscsi_context) -> c_int;

    // --- tasks ---------------------------------------------------------
    /// Copies `cdb_size` bytes into a 16-byte array with no bounds check:
    /// the caller must keep `cdb_size` in 1..=16.
    pub fn scsi_create_task(
        cdb_size: c_int,
        cdb: *mut c_uchar,
        xfer_dir: c_int,
        expxferlen: c_int,
    ) -> *mut scsi_task;
    /// Frees the task, its allocations and libiscsi's own datain buffer.
    pub fn scsi_free_scsi_task(task: *mut scsi_task);
    /// Data-in goes straight into `buf` (not copied); `buf` must outlive the task.
    pub fn scsi_task_add_data_in_buffer(
        task: *mut scsi_task,
        len: c_int,
        buf: *mut c_uchar,
    ) -> c_int;
    /// Data-out is sent from `buf` (not copied); `buf` must outlive the task.
    pub fn scsi_task_add_data_out_buffer(
        task: *mut scsi_task,
        len: c_int,
        buf: *mut c_uchar,
    ) -> c_int;
    pub fn scsi_task_set_iov_in(task: *mut scsi_task, iov: *mut scsi_iovec, niov: c_int);
    pub fn scsi_task_set_iov_out(task: *mut scsi_task, iov: *mut scsi_iovec, niov: c_int);
    /// Refused unless logged in; on -1 the task is not freed.
    pub fn iscsi_scsi_command_async(
        iscsi: *mut iscsi_context,
        lun: c_int,
        task: *mut scsi_task,
        cb: iscsi_command_cb,
        data: *mut iscsi_data,
        private_data: *mut c_void,
    ) -> c_int;
    /// Returns `task`, or NULL if it could not be submitted.
    pub fn iscsi_scsi_command_sync(
        iscsi: *mut iscsi_context,
        lun: c_int,
        task: *mut scsi_task,
        data: *mut iscsi_data,
    ) -> *mut scsi_task;
    /// Local only: the callback runs now with CANCELLED.
    pub fn iscsi_scsi_cancel_task(iscsi: *mut iscsi_context, task: *mut scsi_task) -> c_int;
    pub fn iscsi_scsi_cancel_all_tasks(iscsi: *mut iscsi_context);

    // --- task management and NOP -------------------------------------
    /// Sends ABORT TASK only; in 1.19 the task itself stays queued until
    /// `iscsi_scsi_cancel_task`. `command_data` in `cb` is `uint32_t *response`.
    pub fn iscsi_task_mgmt_abort_task_async(
        iscsi: *mut iscsi_context,
        task: *mut scsi_task,
        cb: iscsi_command_cb,
        private_data: *mut c_void,
    ) -> c_int;
    pub fn iscsi_task_mgmt_lun_reset_async(
        iscsi: *mut iscsi_context,
        lun: u32,
        cb: iscsi_command_cb,
        private_data: *mut c_void,
    ) -> c_int;
    /// Cancels every task of the context (all LUNs) locally first.
    pub fn iscsi_task_mgmt_lun_reset_sync(iscsi: *mut iscsi_context, lun: u32) -> c_int;
    pub fn iscsi_nop_out_async(
        iscsi: *mut iscsi_context,
        cb: iscsi_command_cb,
        data: *mut c_uchar,
        len: c_int,
        private_data: *mut c_void,
    ) -> c_int;
    pub fn iscsi_get_nops_in_flight(iscsi: *mut iscsi_context) -> c_int;
}

// The accessor shim, c/shim.c.
extern "C" {
    /// [`SHIM_ABI`] when the compiled shim matches these declarations.
    pub fn sanmover_shim_abi() -> c_int;
    /// `LIBISCSI_API_VERSION` of the headers the shim was compiled with.
    pub fn sanmover_shim_api_version() -> libc::c_long;
    pub fn sanmover_sizeof_scsi_task() -> size_t;
    pub fn sanmover_sizeof_scsi_sense() -> size_t;
    /// `task->status`: a SCSI status byte or one of the local 0x0f00000x values.
    pub fn sanmover_task_status(task: *const scsi_task) -> c_int;
    pub fn sanmover_task_cdb_size(task: *const scsi_task) -> c_int;
    /// Copies up to `len` CDB bytes into `out`, returns `task->cdb_size`.
    pub fn sanmover_task_cdb(task: *const scsi_task, out: *mut c_uchar, len: c_int) -> c_int;
    pub fn sanmover_task_xfer_dir(task: *const scsi_task) -> c_int;
    pub fn sanmover_task_expxferlen(task: *const scsi_task) -> c_int;
    /// `task->residual_status` (SCSI_RESIDUAL_*) and `task->residual` (bytes).
    pub fn sanmover_task_residual(task: *const scsi_task, kind: *mut c_int, amount: *mut u64);
    /// `task->datain`: libiscsi's own buffer. On CHECK CONDITION it holds
    /// the SCSI Response data segment: be16 SenseLength, then the sense.
    pub fn sanmover_task_datain(
        task: *const scsi_task,
        data: *mut *const c_uchar,
        size: *mut c_int,
    );
    pub fn sanmover_task_itt(task: *const scsi_task) -> u32;
    pub fn sanmover_task_cmdsn(task: *const scsi_task) -> u32;
    pub fn sanmover_task_lun(task: *const scsi_task) -> u32;
    /// libiscsi's parsed sense key and (ASC<<8)|ASCQ, for cross-checks.
    pub fn sanmover_task_sense(task: *const scsi_task, key: *mut c_int, ascq: *mut c_int);
}

/// The raw sense bytes inside a CHECK CONDITION `datain` segment
/// (RFC 7143 11.4.7.2: SenseLength, then the sense data), bounded by both
/// the segment and the SenseLength field. Empty if there is none.
pub fn sense_from_response_segment(segment: &[u8]) -> &[u8] {
    if segment.len() < 2 {
        return &[];
    }
    let len = u16::from_be_bytes([segment[0], segment[1]]) as usize;
    let end = 2usize.saturating_add(len).min(segment.len());
    &segment[2..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sense_segment_bounds() {
        assert_eq!(sense_from_response_segment(&[]), &[] as &[u8]);
        assert_eq!(sense_from_response_segment(&[0]), &[] as &[u8]);
        assert_eq!(sense_from_response_segment(&[0, 0, 9]), &[] as &[u8]);
        assert_eq!(sense_from_response_segment(&[0, 2, 0x70, 0, 5]), &[0x70, 0]);
        // SenseLength larger than the segment: keep what arrived.
        assert_eq!(sense_from_response_segment(&[0, 18, 0x70, 0]), &[0x70, 0]);
    }
}
