//! (being written)

/// Why a device address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{url}: {reason}")]
    Invalid { url: String, reason: String },
}
