//! Progress reporting, decoupled from the terminal: the CLI passes a bar,
//! tests pass nothing.

/// Receives byte counts as a long copy runs.
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64, _what: &str) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
