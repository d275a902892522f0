//! Exit codes, in the spirit of sg3_utils (its `sg_lib.h` categories keep
//! their numbers where they overlap, so scripts written for sg_raw read
//! ours the same way).

use crate::catalog::CatalogError;
use crate::device::DeviceError;
use crate::engine::EngineError;
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::Status;
use crate::server::client::ClientError;
use crate::transport::url::UrlError;
use crate::transport::TransportError;

/// A command-line mistake found after clap (bad hex, bad page name, an
/// option of another mode): exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A request the CLI refuses before anything is written (a block size the
/// drive cannot take, `catalog forget` without `--force`): exit status 45.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// One row of the exit-code table.
pub struct ExitCode {
    pub code: u8,
    pub meaning: &'static str,
}

pub const OK: u8 = 0;
pub const SYNTAX: u8 = 1;
pub const NOT_READY: u8 = 2;
pub const MEDIUM_HARDWARE: u8 = 3;
pub const ILLEGAL_REQUEST: u8 = 5;
pub const UNIT_ATTENTION: u8 = 6;
pub const DATA_PROTECT: u8 = 7;
pub const BLANK_CHECK: u8 = 8;
pub const INVALID_OPCODE: u8 = 9;
pub const COPY_ABORTED: u8 = 10;
pub const ABORTED_COMMAND: u8 = 11;
pub const VOLUME_OVERFLOW: u8 = 13;
pub const MISCOMPARE: u8 = 14;
pub const FILE_ERROR: u8 = 15;
/// sg3_utils leaves 16 undefined (`sg_decode_sense --err=16`).
pub const DRIVE_BUSY: u8 = 16;
pub const NO_SENSE: u8 = 20;
pub const RECOVERED: u8 = 21;
pub const LBA_OUT_OF_RANGE: u8 = 22;
pub const RESERVATION_CONFLICT: u8 = 24;
pub const BUSY: u8 = 26;
pub const TASK_SET_FULL: u8 = 27;
pub const ACA_ACTIVE: u8 = 28;
pub const TASK_ABORTED: u8 = 29;
pub const TIMEOUT: u8 = 33;
// Ours, in numbers sg3_utils leaves free (34, 35, 37-39, 42-46, 49; it uses
// 36, 40, 41, 47, 48 and 50-99 itself).
pub const CONNECT: u8 = 34;
pub const LOGIN: u8 = 35;
/// `replay`: the device answered differently from the trace.
pub const REPLAY_DIFFERS: u8 = 49;
pub const CORRUPT: u8 = 37;
/// `validate`: at least one check failed.
pub const CHECKS_FAILED: u8 = 38;
/// A trace file that is truncated, garbage or of a newer version.
pub const BAD_TRACE: u8 = 39;
pub const SESSION_LOST: u8 = 42;
pub const WRONG_DEVICE_TYPE: u8 = 43;
pub const BAD_RESPONSE: u8 = 44;
pub const REFUSED: u8 = 45;
pub const NOT_FOUND: u8 = 46;
pub const OTHER_SENSE: u8 = 98;
pub const OTHER: u8 = 99;
/// 128 + the signal number, as a shell reports a process a signal ended
/// (sg3_utils reads 130 and 143 the same way).
pub const INTERRUPTED_SIGINT: u8 = 130;
pub const INTERRUPTED_SIGTERM: u8 = 143;

const fn row(code: u8, meaning: &'static str) -> ExitCode {
    ExitCode { code, meaning }
}

/// The table printed by `--help` and copied in the README. Codes 0-33,
/// 98 and 99 mean what they mean for sg3_utils (`sg_decode_sense
/// --err=N`); the tests check it.
pub const TABLE: &[ExitCode] = &[
    row(OK, "success"),
    row(SYNTAX, "bad command line: option, hex or device URL"),
    row(NOT_READY, "NOT READY (no medium, becoming ready)"),
    row(MEDIUM_HARDWARE, "MEDIUM ERROR or HARDWARE ERROR"),
    row(
        ILLEGAL_REQUEST,
        "ILLEGAL REQUEST (bad field, LUN not supported)",
    ),
    row(UNIT_ATTENTION, "UNIT ATTENTION (after retries)"),
    row(DATA_PROTECT, "DATA PROTECT (write protected)"),
    row(BLANK_CHECK, "BLANK CHECK (end of data on tape)"),
    row(
        INVALID_OPCODE,
        "ILLEGAL REQUEST, invalid opcode: the device lacks the command (20/00)",
    ),
    row(COPY_ABORTED, "COPY ABORTED"),
    row(ABORTED_COMMAND, "ABORTED COMMAND"),
    row(VOLUME_OVERFLOW, "VOLUME OVERFLOW (tape full)"),
    row(MISCOMPARE, "MISCOMPARE"),
    row(FILE_ERROR, "local file could not be read or written"),
    row(
        DRIVE_BUSY,
        "the tape drive or volume is in use by another sanmover process on this host (--wait waits)",
    ),
    row(
        NO_SENSE,
        "NO SENSE with a condition (filemark, EOM, end of data on SPACE)",
    ),
    row(RECOVERED, "RECOVERED ERROR"),
    row(
        LBA_OUT_OF_RANGE,
        "ILLEGAL REQUEST, LBA out of range (21/00)",
    ),
    row(RESERVATION_CONFLICT, "RESERVATION CONFLICT"),
    row(BUSY, "BUSY (after retries)"),
    row(TASK_SET_FULL, "TASK SET FULL (after retries)"),
    row(ACA_ACTIVE, "ACA ACTIVE"),
    row(TASK_ABORTED, "TASK ABORTED"),
    row(TIMEOUT, "the command timed out"),
    row(
        CONNECT,
        "cannot reach the portal, the backup server or open the device",
    ),
    row(
        LOGIN,
        "iSCSI login refused (unknown target, CHAP, ACL), or the backup server refused the credential",
    ),
    row(
        CORRUPT,
        "a backup set failed a check (CRC, sequence, digest, missing trailer)",
    ),
    row(CHECKS_FAILED, "validate: at least one check failed"),
    row(
        BAD_TRACE,
        "a trace file that is truncated, garbage or of a newer version",
    ),
    row(SESSION_LOST, "session lost during a command"),
    row(
        WRONG_DEVICE_TYPE,
        "wrong device type, or no logical unit at that LUN",
    ),
    row(BAD_RESPONSE, "the device's response could not be decoded"),
    row(
        REFUSED,
        "refused before writing: no or foreign label, wrong volume, target too small, own source, a block size the drive cannot take, a running set, catalog forget without --force; a changer move with nowhere to go (unload without a known source slot, exchange without an empty slot) or drive LUs that match ambiguously; a backup server's refusal (empty pool, foreign cartridge, queue timeout, a lease that is not yours)",
    ),
    row(NOT_FOUND, "unknown, ambiguous or malformed set id"),
    row(
        REPLAY_DIFFERS,
        "replay: the device answered differently from the trace",
    ),
    row(
        OTHER_SENSE,
        "another sense key (vendor specific, EQUAL, reserved), or CHECK CONDITION without sense",
    ),
    row(OTHER, "another SCSI status, or any other error"),
    row(
        INTERRUPTED_SIGINT,
        "backup interrupted by SIGINT (Ctrl-C); the set is recorded as interrupted",
    ),
    row(
        INTERRUPTED_SIGTERM,
        "backup interrupted by SIGTERM; the set is recorded as interrupted",
    ),
];

/// The table as text for `--help`.
pub fn table_text() -> String {
    let mut s = String::from("EXIT STATUS:\n");
    for row in TABLE {
        s.push_str(&format!("  {:>3}  {}\n", row.code, row.meaning));
    }
    s
}

/// The exit code for a SCSI status and its sense.
pub fn for_status(status: Status, sense: Option<&Sense>) -> u8 {
    match status {
        Status::GOOD | Status::CONDITION_MET => OK,
        Status::CHECK_CONDITION => sense.map_or(OTHER_SENSE, for_sense),
        Status::BUSY => BUSY,
        Status::TASK_SET_FULL => TASK_SET_FULL,
        Status::ACA_ACTIVE => ACA_ACTIVE,
        Status::TASK_ABORTED => TASK_ABORTED,
        Status::RESERVATION_CONFLICT => RESERVATION_CONFLICT,
        _ => OTHER,
    }
}

pub fn for_sense(s: &Sense) -> u8 {
    match s.key {
        SenseKey::NO_SENSE => NO_SENSE,
        SenseKey::RECOVERED_ERROR => RECOVERED,
        SenseKey::NOT_READY => NOT_READY,
        SenseKey::MEDIUM_ERROR | SenseKey::HARDWARE_ERROR => MEDIUM_HARDWARE,
        SenseKey::ILLEGAL_REQUEST if s.asc == Asc::INVALID_OPCODE => INVALID_OPCODE,
        SenseKey::ILLEGAL_REQUEST if s.asc == Asc::LBA_OUT_OF_RANGE => LBA_OUT_OF_RANGE,
        SenseKey::ILLEGAL_REQUEST => ILLEGAL_REQUEST,
        SenseKey::UNIT_ATTENTION => UNIT_ATTENTION,
        SenseKey::DATA_PROTECT => DATA_PROTECT,
        SenseKey::BLANK_CHECK => BLANK_CHECK,
        SenseKey::COPY_ABORTED => COPY_ABORTED,
        SenseKey::ABORTED_COMMAND => ABORTED_COMMAND,
        SenseKey::VOLUME_OVERFLOW => VOLUME_OVERFLOW,
        SenseKey::MISCOMPARE => MISCOMPARE,
        _ => OTHER_SENSE,
    }
}

pub fn for_transport(e: &TransportError) -> u8 {
    match e {
        TransportError::Url(_) => SYNTAX,
        TransportError::Connect { .. } => CONNECT,
        TransportError::Login { .. } => LOGIN,
        TransportError::Timeout { .. } => TIMEOUT,
        TransportError::SessionLost(_) | TransportError::Cancelled { .. } => SESSION_LOST,
        TransportError::Rejected { .. } => SYNTAX,
        TransportError::Io { .. } => CONNECT,
        TransportError::Unsupported(_) => CONNECT,
    }
}

pub fn for_device(e: &DeviceError) -> u8 {
    match e {
        DeviceError::Transport { source, .. } => for_transport(source),
        DeviceError::Check { status, sense, .. } => for_status(*status, sense.as_deref()),
        DeviceError::Parse { .. } => BAD_RESPONSE,
        DeviceError::WrongType { .. } | DeviceError::NoLogicalUnit { .. } => WRONG_DEVICE_TYPE,
        DeviceError::Protocol { .. } => BAD_RESPONSE,
    }
}

pub fn for_catalog(e: &CatalogError) -> u8 {
    match e {
        CatalogError::NotFound(_) | CatalogError::Ambiguous(_) | CatalogError::BadSetId(_) => {
            NOT_FOUND
        }
        CatalogError::Io { .. } => FILE_ERROR,
        CatalogError::Refused(_) => REFUSED,
        _ => OTHER,
    }
}

pub fn for_engine(e: &EngineError) -> u8 {
    match e {
        EngineError::Device(d) | EngineError::Aborted { source: d, .. } => for_device(d),
        EngineError::Catalog(c) => for_catalog(c),
        EngineError::Refused(_) | EngineError::CopyManager(_) | EngineError::Snapshot(_) => REFUSED,
        EngineError::Corrupt { .. } | EngineError::Format { .. } => CORRUPT,
        EngineError::TapeFull { .. }
        | EngineError::NoNextVolume { .. }
        | EngineError::XcopyTapeFull { .. } => VOLUME_OVERFLOW,
        EngineError::Stopped(_) => SESSION_LOST,
        EngineError::Provider(_) => REFUSED,
        EngineError::Serverless { cause, .. } => for_engine(cause),
        EngineError::Interrupted { signal, .. } => 128u8.saturating_add(*signal as u8),
        EngineError::TapeMoved { .. } => CORRUPT,
        EngineError::VolumeBusy { .. } => DRIVE_BUSY,
        EngineError::Server(_) => REFUSED,
    }
}

/// The exit code for any error that reaches `main`.
/// A backup server's answer.
fn for_client(c: &ClientError) -> u8 {
    match c {
        ClientError::Unauthorized => LOGIN,
        ClientError::Transport(_) | ClientError::Tls(_) => CONNECT,
        ClientError::Denied(_) => REFUSED,
        ClientError::Http { status: 404, .. } => NOT_FOUND,
        ClientError::Http { status: 403, .. } => LOGIN,
        ClientError::Http { status: 409, .. } => REFUSED,
        ClientError::BadToken => SYNTAX,
        ClientError::Http { .. } | ClientError::Answer(_) => OTHER,
    }
}

pub fn for_error(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(d) = cause.downcast_ref::<DeviceError>() {
            return for_device(d);
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return for_engine(e);
        }
        if let Some(c) = cause.downcast_ref::<CatalogError>() {
            return for_catalog(c);
        }
        if let Some(t) = cause.downcast_ref::<TransportError>() {
            return for_transport(t);
        }
        if cause.downcast_ref::<UrlError>().is_some() {
            return SYNTAX;
        }
        if cause
            .downcast_ref::<crate::engine::drive_lock::LockError>()
            .is_some_and(|l| matches!(l, crate::engine::drive_lock::LockError::Busy { .. }))
        {
            return DRIVE_BUSY;
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return SYNTAX;
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return for_client(c);
        }
        if let Some(j) = cause.downcast_ref::<crate::server::jobs::JobFailed>() {
            return j.exit;
        }
        if cause.downcast_ref::<Refusal>().is_some() {
            return REFUSED;
        }
        if cause
            .downcast_ref::<crate::transport::trace::TraceError>()
            .is_some_and(|t| t.is_bad_file())
        {
            return BAD_TRACE;
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return FILE_ERROR;
        }
    }
    OTHER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_codes_are_unique_and_sorted() {
        let codes: Vec<u8> = TABLE.iter().map(|r| r.code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted);
    }

    #[test]
    fn interrupts_and_busy_drives_have_their_codes() {
        let set = uuid::Uuid::nil();
        let int = |signal| EngineError::Interrupted {
            set,
            bytes: 1,
            signal,
            trailer: true,
        };
        use nix::sys::signal::Signal;
        assert_eq!(for_engine(&int(Signal::SIGINT)), INTERRUPTED_SIGINT);
        assert_eq!(for_engine(&int(Signal::SIGTERM)), INTERRUPTED_SIGTERM);
        let busy = EngineError::VolumeBusy {
            volume: "V".into(),
            set,
            pid: 1,
        };
        assert_eq!(for_engine(&busy), DRIVE_BUSY);
        let lock = crate::engine::drive_lock::LockError::Busy {
            drive: "naa.1".into(),
            holder: "pid 1".into(),
        };
        let e = anyhow::Error::from(lock).context("tape");
        assert_eq!(for_error(&e), DRIVE_BUSY);
        for code in [DRIVE_BUSY, INTERRUPTED_SIGINT, INTERRUPTED_SIGTERM] {
            assert!(
                TABLE.iter().any(|r| r.code == code),
                "{code} not in the table"
            );
        }
    }

    #[test]
    fn sense_maps_to_category() {
        let s = Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_OPCODE);
        assert_eq!(
            for_status(Status::CHECK_CONDITION, Some(&s)),
            INVALID_OPCODE
        );
        let s = Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LUN_NOT_SUPPORTED);
        assert_eq!(
            for_status(Status::CHECK_CONDITION, Some(&s)),
            ILLEGAL_REQUEST
        );
        let s = Sense::new(SenseKey::BLANK_CHECK, Asc::NO_ADDITIONAL);
        assert_eq!(for_sense(&s), BLANK_CHECK);
        assert_eq!(
            for_status(Status::RESERVATION_CONFLICT, None),
            RESERVATION_CONFLICT
        );
        assert_eq!(for_status(Status::CHECK_CONDITION, None), OTHER_SENSE);
    }
}
