//! A small, blocking iSCSI initiator on the project's own PDU codec
//! (`crate::frontend::pdu`, `crate::frontend::text`), for what libiscsi
//! keeps to itself: the negotiated keys as the target answered them, the
//! CmdSN window (ExpCmdSN, MaxCmdSN, StatSN) of every response, commands
//! with a chosen CmdSN or ITT, and a connection dropped on purpose.
//!
//! One TCP connection, one session, ErrorRecoveryLevel 0, no digests.
//! Every byte from the network goes through the codec's checked parsers:
//! bad lengths, unexpected opcodes and malformed text are errors, never
//! panics. Every read waits at most [`Config::timeout`].
//!
//! `validate`'s iSCSI suite and the target's integration tests use it.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::frontend::pdu::{IscsiOpcode, Pdu, PduError, RejectReason};
use crate::frontend::text::TextError;

mod login;
mod task;
mod wire;

pub use login::{answer_target_offers, connect_from};
pub use task::{lun_field, rejected_itt, sense_of, CmdOpts, DataDir, Reply};
pub use wire::{read_pdu, sn_fields, sn_lt, window_open, ReadError, SnFields};

/// Largest data segment accepted from a target before anything is
/// allocated for it (our MaxRecvDataSegmentLength is at most this).
pub const MAX_SEGMENT: usize = 1 << 24;

/// The operational keys [`Config::with_usual_keys`] offers (RFC 7143 13):
/// no digests, ERL 0, one connection, in-order data.
pub const USUAL_KEYS: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxRecvDataSegmentLength", "262144"),
    ("MaxBurstLength", "262144"),
    ("FirstBurstLength", "65536"),
    ("InitialR2T", "Yes"),
    ("ImmediateData", "Yes"),
    ("MaxOutstandingR2T", "1"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"),
    ("MaxConnections", "1"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
];

/// Why an exchange with a target failed.
#[derive(Debug, thiserror::Error)]
pub enum InitiatorError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("connection: {0}")]
    Io(#[source] io::Error),
    #[error("no answer within {0:?} while waiting for {1}")]
    Timeout(Duration, &'static str),
    #[error("the target closed the connection while we waited for {0}")]
    Closed(&'static str),
    #[error("malformed PDU from the target: {0}")]
    Pdu(#[from] PduError),
    #[error("malformed text from the target: {0}")]
    Text(#[from] TextError),
    #[error("unexpected {got} from the target while waiting for {want}")]
    Unexpected {
        got: IscsiOpcode,
        want: &'static str,
    },
    #[error("the target broke the protocol: {0}")]
    Protocol(String),
    #[error(
        "login refused with status class {class:#04x}, detail {detail:#04x} (RFC 7143 11.13.5)"
    )]
    LoginRefused { class: u8, detail: u8 },
    #[error("the target rejected our PDU: {0} (RFC 7143 11.17.1)")]
    Rejected(RejectReason),
}

/// CHAP credentials the initiator answers with (RFC 7143 12.1.3).
#[derive(Clone)]
pub struct Chap {
    pub user: String,
    pub secret: Vec<u8>,
    /// Mutual CHAP: the challenge we send the target (with CHAP_I 77).
    pub mutual: Option<Vec<u8>>,
}

impl std::fmt::Debug for Chap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chap").field("user", &self.user).finish()
    }
}

/// What to connect to and how to log in.
#[derive(Clone, Debug)]
pub struct Config {
    pub portal: SocketAddr,
    /// Local address to connect from (any of 127/8 on Linux loopback).
    pub source: Option<Ipv4Addr>,
    pub initiator: String,
    /// None: a discovery session.
    pub target: Option<String>,
    /// The 48-bit ISID (RFC 7143 11.12.5); with the initiator name it
    /// names the session, so reusing one reinstates that session.
    pub isid: u64,
    /// Operational keys offered at login, in order.
    pub keys: Vec<(String, String)>,
    pub chap: Option<Chap>,
    /// Longest wait for connect and for any one PDU.
    pub timeout: Duration,
}

impl Config {
    pub fn new(portal: SocketAddr, initiator: &str, target: &str, isid: u64) -> Config {
        Config {
            portal,
            source: None,
            initiator: initiator.into(),
            target: Some(target.into()),
            isid,
            keys: Vec::new(),
            chap: None,
            timeout: Duration::from_secs(20),
        }
    }

    /// Offer `key=value` at login (in place of an earlier offer of `key`).
    pub fn key(mut self, key: &str, value: &str) -> Config {
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.into(),
            None => self.keys.push((key.into(), value.into())),
        }
        self
    }

    /// Offer every operational key with a conventional value, as libiscsi
    /// does: a target then has nothing of its own to propose (LIO goes to
    /// full feature phase with its proposals unanswered otherwise).
    pub fn with_usual_keys(mut self) -> Config {
        for (k, v) in USUAL_KEYS {
            self = self.key(k, v);
        }
        self
    }
}

/// An ISID of the "random" type (RFC 7143 11.12.5: T = 10b) from the OS
/// random source, so that sessions of different runs never reinstate
/// each other.
pub fn random_isid() -> u64 {
    let mut b = [0u8; 3];
    // A fixed fallback only when the OS has no randomness at all.
    if getrandom::fill(&mut b).is_err() {
        b = [0x5a, 0x17, 0x01];
    }
    (0x80u64 << 40) | (u64::from(b[0]) << 16) | (u64::from(b[1]) << 8) | u64::from(b[2])
}

/// The numbering state of a session (RFC 7143 4.2.2), as the initiator
/// sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionState {
    /// The CmdSN the next non-immediate command carries.
    pub cmd_sn: u32,
    /// ExpCmdSN and MaxCmdSN as the target last announced them.
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// The last StatSN received, and the ExpStatSN we send.
    pub stat_sn: u32,
    pub exp_stat_sn: u32,
    pub tsih: u16,
    pub isid: u64,
    /// The last Initiator Task Tag used.
    pub itt: u32,
}

/// One logged-in connection.
pub struct Initiator {
    stream: TcpStream,
    timeout: Duration,
    pub state: SessionState,
    /// Every key=value the target sent during login, in order.
    pub login_keys: Vec<(String, String)>,
    /// The Login Response that took the session to full feature phase.
    pub login_response: Option<crate::frontend::pdu::LoginResponse>,
    /// The operational keys we offered.
    pub offered: Vec<(String, String)>,
    /// (opcode, ExpCmdSN, MaxCmdSN) of every target PDU received that
    /// carries a valid window, login responses included.
    pub windows: Vec<(IscsiOpcode, u32, u32)>,
    /// PDUs of other tasks that arrived while waiting for one.
    pending: VecDeque<Pdu>,
    /// Expected data transfer length of each task in flight: Data-In
    /// past it is refused.
    edtl: std::collections::HashMap<u32, u32>,
}

impl Initiator {
    /// The last value the target gave for `key` during login.
    pub fn key(&self, key: &str) -> Option<&str> {
        last_value(&self.login_keys, key)
    }

    /// What a key came to: the target's answer, else our offer (a value
    /// that decides the result alone needs no answer, RFC 7143 6.2.2).
    pub fn negotiated(&self, key: &str) -> Option<&str> {
        self.key(key).or_else(|| last_value(&self.offered, key))
    }

    /// The target's MaxRecvDataSegmentLength (RFC 7143 13.12, default 8192):
    /// the longest data segment we may send it.
    pub fn target_mrdsl(&self) -> usize {
        self.number("MaxRecvDataSegmentLength", 8192)
    }

    /// A numerical key as negotiated, or `default`.
    pub fn number(&self, key: &str, default: usize) -> usize {
        self.key(key)
            .and_then(crate::frontend::text::parse_number)
            .map_or(default, |n| n as usize)
    }

    /// The TCP connection (for tests that read or shut it down directly).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Drop the TCP connection without a logout (a lost connection).
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Change how long each read may wait.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    pub fn next_itt(&mut self) -> u32 {
        self.state.itt = self.state.itt.wrapping_add(1);
        if self.state.itt == crate::frontend::pdu::RESERVED_TAG {
            self.state.itt = 1;
        }
        self.state.itt
    }

    /// Start ITTs after `itt` (to tell one session's tags from another's).
    pub fn set_itt_base(&mut self, itt: u32) {
        self.state.itt = itt;
    }
}

fn last_value<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests;
