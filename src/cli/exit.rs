//! Exit codes, in the spirit of sg3_utils (its `sg_lib.h` categories keep
//! their numbers where they overlap, so scripts written for sg_raw read
//! ours the same way).

use crate::catalog::CatalogError;
use crate::device::DeviceError;
use crate::engine::EngineError;
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::Status;
use crate::transport::url::UrlError;
use crate::transport::TransportError;

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
pub const RESERVATION_CONFLICT: u8 = 24;
pub const BUSY: u8 = 26;
pub const OTHER_STATUS: u8 = 29;
pub const TIMEOUT: u8 = 33;
pub const CONNECT: u8 = 40;
pub const LOGIN: u8 = 41;
pub const SESSION_LOST: u8 = 42;
pub const WRONG_DEVICE_TYPE: u8 = 43;
pub const BAD_RESPONSE: u8 = 44;
pub const REFUSED: u8 = 45;
pub const NOT_FOUND: u8 = 46;
pub const CORRUPT: u8 = 47;
pub const OTHER: u8 = 99;
/// 128 + the signal number, as a shell reports a process a signal ended
/// (sg3_utils reads 130 and 143 the same way).
pub const INTERRUPTED_SIGINT: u8 = 130;
pub const INTERRUPTED_SIGTERM: u8 = 143;

/// The table printed by `--help` and copied in the README.
pub const TABLE: &[ExitCode] = &[
    ExitCode {
        code: OK,
        meaning: "success",
    },
    ExitCode {
        code: SYNTAX,
        meaning: "bad command line: option, hex or device URL",
    },
    ExitCode {
        code: NOT_READY,
        meaning: "NOT READY (no medium, becoming ready)",
    },
    ExitCode {
        code: MEDIUM_HARDWARE,
        meaning: "MEDIUM ERROR or HARDWARE ERROR",
    },
    ExitCode {
        code: ILLEGAL_REQUEST,
        meaning: "ILLEGAL REQUEST (bad field, LUN not supported)",
    },
    ExitCode {
        code: UNIT_ATTENTION,
        meaning: "UNIT ATTENTION (after retries)",
    },
    ExitCode {
        code: DATA_PROTECT,
        meaning: "DATA PROTECT (write protected)",
    },
    ExitCode {
        code: BLANK_CHECK,
        meaning: "BLANK CHECK (end of data on tape)",
    },
    ExitCode {
        code: INVALID_OPCODE,
        meaning: "command not supported by the device (20/00)",
    },
    ExitCode {
        code: COPY_ABORTED,
        meaning: "COPY ABORTED",
    },
    ExitCode {
        code: ABORTED_COMMAND,
        meaning: "ABORTED COMMAND",
    },
    ExitCode {
        code: VOLUME_OVERFLOW,
        meaning: "VOLUME OVERFLOW (tape full)",
    },
    ExitCode {
        code: MISCOMPARE,
        meaning: "MISCOMPARE",
    },
    ExitCode {
        code: FILE_ERROR,
        meaning: "local file could not be read or written",
    },
    ExitCode {
        code: DRIVE_BUSY,
        meaning: "the tape drive or volume is in use by another sanmover process on this host (--wait waits)",
    },
    ExitCode {
        code: NO_SENSE,
        meaning: "NO SENSE with a condition (filemark, EOM, end of data on SPACE)",
    },
    ExitCode {
        code: RECOVERED,
        meaning: "RECOVERED ERROR",
    },
    ExitCode {
        code: RESERVATION_CONFLICT,
        meaning: "RESERVATION CONFLICT",
    },
    ExitCode {
        code: BUSY,
        meaning: "BUSY or TASK SET FULL (after retries)",
    },
    ExitCode {
        code: OTHER_STATUS,
        meaning: "another SCSI status (ACA ACTIVE, TASK ABORTED)",
    },
    ExitCode {
        code: TIMEOUT,
        meaning: "the command timed out",
    },
    ExitCode {
        code: CONNECT,
        meaning: "cannot reach the portal or open the device",
    },
    ExitCode {
        code: LOGIN,
        meaning: "iSCSI login refused (unknown target, CHAP, ACL)",
    },
    ExitCode {
        code: SESSION_LOST,
        meaning: "session lost during a command",
    },
    ExitCode {
        code: WRONG_DEVICE_TYPE,
        meaning: "wrong device type (e.g. a tape command on a disk)",
    },
    ExitCode {
        code: BAD_RESPONSE,
        meaning: "the device's response could not be decoded",
    },
    ExitCode {
        code: OTHER,
        meaning: "any other error",
    },
    ExitCode {
        code: INTERRUPTED_SIGINT,
        meaning: "backup interrupted by SIGINT (Ctrl-C); the set is recorded as interrupted",
    },
    ExitCode {
        code: INTERRUPTED_SIGTERM,
        meaning: "backup interrupted by SIGTERM; the set is recorded as interrupted",
    },
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
        Status::CHECK_CONDITION => sense.map_or(OTHER_STATUS, for_sense),
        Status::BUSY | Status::TASK_SET_FULL => BUSY,
        Status::RESERVATION_CONFLICT => RESERVATION_CONFLICT,
        _ => OTHER_STATUS,
    }
}

pub fn for_sense(s: &Sense) -> u8 {
    match s.key {
        SenseKey::NO_SENSE => NO_SENSE,
        SenseKey::RECOVERED_ERROR => RECOVERED,
        SenseKey::NOT_READY => NOT_READY,
        SenseKey::MEDIUM_ERROR | SenseKey::HARDWARE_ERROR => MEDIUM_HARDWARE,
        SenseKey::ILLEGAL_REQUEST if s.asc == Asc::INVALID_OPCODE => INVALID_OPCODE,
        SenseKey::ILLEGAL_REQUEST => ILLEGAL_REQUEST,
        SenseKey::UNIT_ATTENTION => UNIT_ATTENTION,
        SenseKey::DATA_PROTECT => DATA_PROTECT,
        SenseKey::BLANK_CHECK => BLANK_CHECK,
        SenseKey::COPY_ABORTED => COPY_ABORTED,
        SenseKey::ABORTED_COMMAND => ABORTED_COMMAND,
        SenseKey::VOLUME_OVERFLOW => VOLUME_OVERFLOW,
        SenseKey::MISCOMPARE => MISCOMPARE,
        _ => OTHER,
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
        DeviceError::WrongType { .. } => WRONG_DEVICE_TYPE,
        DeviceError::Protocol { .. } => BAD_RESPONSE,
    }
}

pub fn for_catalog(e: &CatalogError) -> u8 {
    match e {
        CatalogError::NotFound(_) | CatalogError::Ambiguous(_) => NOT_FOUND,
        CatalogError::Io { .. } => FILE_ERROR,
        _ => OTHER,
    }
}

pub fn for_engine(e: &EngineError) -> u8 {
    match e {
        EngineError::Device(d) | EngineError::Aborted { source: d, .. } => for_device(d),
        EngineError::Catalog(c) => for_catalog(c),
        EngineError::Refused(_) => REFUSED,
        EngineError::Corrupt { .. } | EngineError::Format { .. } => CORRUPT,
        EngineError::TapeFull { .. } => VOLUME_OVERFLOW,
        EngineError::Stopped(_) => SESSION_LOST,
        EngineError::Provider(_) => REFUSED,
        EngineError::Serverless { cause, .. } => for_engine(cause),
        EngineError::Interrupted { signal, .. } => 128u8.saturating_add(*signal as u8),
        EngineError::TapeMoved { .. } => CORRUPT,
        EngineError::VolumeBusy { .. } => DRIVE_BUSY,
    }
}

/// The exit code for any error that reaches `main`.
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
        if cause.downcast_ref::<super::UsageError>().is_some() {
            return SYNTAX;
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
        assert_eq!(for_status(Status::CHECK_CONDITION, None), OTHER_STATUS);
    }
}
