//! Our own iSCSI target (RFC 7143, error recovery level 0, one connection
//! per session): the frontend that serves logical units such as the copy
//! manager over TCP. It only moves bytes: every SCSI command goes to a
//! [`LogicalUnit`] through `execute_for` with the I_T nexus.
//!
//! - [`pdu`]: the PDU codec (pure, fuzzed).
//! - [`text`]: key=value texts and the operational key negotiation.
//! - [`login`]: the login phase (security with optional CHAP, operational).
//! - [`session`]: one connection in full feature phase.
//! - [`server`]: listener, threads, shutdown.
//!
//! Supported: SendTargets discovery; immediate data, unsolicited Data-Out
//! and R2T-solicited Data-Out; Data-In with status phase collapse;
//! residuals; the CmdSN window; NOP; logout; ABORT TASK, ABORT TASK SET,
//! CLEAR TASK SET, LOGICAL UNIT RESET, TARGET WARM/COLD RESET. Not
//! supported: digests (negotiated to None), ERL > 0, several connections
//! per session, bidirectional commands, CDBs longer than 16 bytes, CHAP
//! for discovery sessions and mutual CHAP.

use std::sync::{Arc, Mutex};

use crate::lu::LogicalUnit;

pub mod login;
pub mod pdu;
pub mod server;
pub mod session;
pub mod text;

pub use server::{Server, ServerHandle};

/// A logical unit shared by every session that reaches it.
pub type SharedLu = Arc<Mutex<dyn LogicalUnit + Send>>;

/// One iSCSI target: its name and its logical units by LUN.
#[derive(Clone)]
pub struct TargetDef {
    /// iSCSI name (IQN).
    pub name: String,
    pub luns: Vec<(u64, SharedLu)>,
}

impl std::fmt::Debug for TargetDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetDef")
            .field("name", &self.name)
            .field(
                "luns",
                &self.luns.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// CHAP credentials the target checks (it authenticates the initiator,
/// MD5, RFC 7143 12.1.3).
#[derive(Clone, PartialEq, Eq)]
pub struct Chap {
    pub user: String,
    pub secret: String,
}

impl std::fmt::Debug for Chap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chap")
            .field("user", &self.user)
            .field("secret", &"***")
            .finish()
    }
}

/// What to serve and where.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Bind exactly this address (127.0.0.1:0 in tests).
    pub listen: std::net::SocketAddr,
    pub targets: Vec<TargetDef>,
    /// Initiator IQNs allowed to log in; empty = everyone.
    pub allow: Vec<String>,
    /// CHAP required of normal sessions when set.
    pub chap: Option<Chap>,
}
