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
//! residuals; the CmdSN window; NOP (answers and keepalive pings); logout;
//! session reinstatement; ABORT TASK, ABORT TASK SET, CLEAR TASK SET,
//! LOGICAL UNIT RESET, TARGET WARM/COLD RESET, also of commands a unit
//! runs in the background (long copies); CHAP per initiator, mutual and
//! for discovery. Not supported: digests (negotiated to None), ERL > 0,
//! several connections per session, bidirectional commands, CDBs longer
//! than 16 bytes.
//!
//! Resources are bounded ([`ConnLimits`]): connections in all and per
//! source address, slots a login in progress cannot take, a deadline for
//! the whole login, idle and send timeouts, one memory budget for Data-In
//! (produced and sent in chunks) and solicited Data-Out, and a drop guard
//! that frees a connection's slot however its thread ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lu::{LogicalUnit, Reserved};

mod budget;
pub mod chap;
mod command;
pub mod login;
pub mod pdu;
pub mod server;
pub mod session;
mod slots;
mod tasks;
pub mod text;

pub use chap::{ChapConfig, Credentials, InitiatorSecret, Secret};
pub use server::{BindError, Server, ServerHandle};

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

/// Every unit behind the reservation layer ([`Reserved`]), once per unit
/// even when several targets or LUNs serve it: reservations are the
/// unit's (SPC-4 5.13), kept per I_T nexus.
pub(crate) fn behind_reservations(targets: Vec<TargetDef>) -> Vec<TargetDef> {
    let mut seen: Vec<(SharedLu, SharedLu)> = Vec::new();
    let mut wrap = |lu: SharedLu| -> SharedLu {
        if let Some((_, w)) = seen.iter().find(|(orig, _)| Arc::ptr_eq(orig, &lu)) {
            return w.clone();
        }
        let w: SharedLu = Arc::new(Mutex::new(Reserved::new(lu.clone())));
        seen.push((lu, w.clone()));
        w
    };
    targets
        .into_iter()
        .map(|t| TargetDef {
            luns: t.luns.into_iter().map(|(n, lu)| (n, wrap(lu))).collect(),
            name: t.name,
        })
        .collect()
}

/// How much the target lets its peers take (issue-level defaults for a
/// router in front of a SAN; tests lower them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections served at once (each has its own thread).
    pub max_connections: usize,
    /// Connections from one source address at once.
    pub max_per_source: usize,
    /// Slots a connection that has not finished its login can never
    /// take: a flood of idle sockets leaves them to initiators that log
    /// in (the allow-listed ones when there is an allow-list).
    pub reserved: usize,
    /// Time for the whole login, from accept to full feature phase.
    pub login_timeout: Duration,
    /// After this long without a PDU (and no command of ours running) the
    /// target sends a NOP-In ping; without any PDU for as long again, it
    /// closes the connection.
    pub idle_timeout: Duration,
    /// A send that makes no progress for this long closes the connection.
    pub send_timeout: Duration,
    /// Bytes of Data-In and solicited Data-Out buffers, all connections.
    pub memory_budget: usize,
    /// The most of [`ConnLimits::memory_budget`] one connection holds.
    pub memory_per_connection: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 256,
            max_per_source: 16,
            reserved: 32,
            login_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            memory_budget: 256 << 20,
            memory_per_connection: 64 << 20,
        }
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
    /// CHAP required of normal sessions (and discovery ones, if it says
    /// so) when set.
    pub chap: Option<ChapConfig>,
    pub limits: ConnLimits,
    /// Serve on an address other than loopback without CHAP and an
    /// allow-list (the operator asked for it; a warning is logged).
    pub insecure: bool,
}

impl TargetConfig {
    /// Open to every initiator on `listen`, default limits.
    pub fn new(listen: std::net::SocketAddr, targets: Vec<TargetDef>) -> TargetConfig {
        TargetConfig {
            listen,
            targets,
            allow: Vec::new(),
            chap: None,
            limits: ConnLimits::default(),
            insecure: false,
        }
    }
}
