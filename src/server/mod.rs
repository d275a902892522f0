//! The backup server (`sanmover server`): the traffic cop of a tape
//! library shared by hosts on a SAN (ARCHITECTURE.md, "The backup server").
//!
//! It owns the library's inventory, the cartridges' pools, which host
//! leases which drive, and a fair queue of requests; hosts move their data
//! to tape themselves over their own SAN path and only ask, heartbeat,
//! report and release here, over HTTP with JSON ([`http`]).
//!
//! - [`state`]: the decisions, no I/O ([`state::Cop`]);
//! - [`events`]: the event log and the check that no drive was held twice;
//! - [`library`]: what the server needs of a changer, and an in-memory one;
//! - [`service`]: the cop, the catalog and the robot thread together;
//! - [`lifecycle`]: one lease lifecycle for every mover; [`jobs`]: the
//!   serverless backups the server runs itself;
//! - [`http`], [`auth`], [`tls`]: the control port; [`client`]: its client.

pub mod auth;
pub mod client;
pub mod events;
pub mod http;
pub mod jobs;
pub mod library;
pub mod lifecycle;
pub mod scsi_library;
pub mod service;
pub mod state;
#[cfg(test)]
mod tests;
pub mod tls;

pub use library::{Library, MemLibrary};
pub use service::{DriveSpec, Service};
pub use state::{Cop, Policy};
