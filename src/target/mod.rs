//! Our own iSCSI target (RFC 7143, error recovery level 0, one connection
//! per session): the frontend that serves `LogicalUnit`s such as the copy
//! manager over TCP.
//!
//! - [`pdu`]: the PDU codec (pure, fuzzed).
//! - [`text`]: key=value texts and the operational key negotiation.
pub mod pdu;
pub mod text;
