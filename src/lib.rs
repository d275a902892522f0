//! sanmover: SAN backups at the SCSI level.
//!
//! Layers, one way only (ARCHITECTURE.md): `cli -> engine -> device -> transport ->
//! scsi`. `scsi` is the pure codec; `transport` moves CDBs; `device` gives
//! disks and tapes their verbs; `cli` is the only place with `anyhow`.

// Every `unsafe` block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod catalog;
pub mod cli;
pub mod device;
pub mod engine;
pub mod format;
pub mod frontend;
pub mod initiator;
pub mod lu;
pub mod router;
pub mod scsi;
pub mod server;
pub mod snapshot;
pub mod tcmu;
pub mod transport;
pub mod validate;
