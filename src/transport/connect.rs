//! Opening a session to a device address: the one place that turns an
//! `iscsi://` URL or a device path, with the session options, into a
//! [`Transport`].

use super::iscsi::{IscsiOptions, IscsiTransport};
use super::sgio::SgTransport;
use super::url::DeviceUrl;
use super::{Transport, TransportError};

/// Opens sessions under a given initiator name, with one set of session
/// options (timeouts, digests) for all of them.
pub trait Connector {
    /// A session to `url` (an `iscsi://` URL or a device path) as
    /// `initiator`. A target that refuses the name answers
    /// [`TransportError::Login`]; a device path ignores the name.
    fn open(&self, url: &str, initiator: &str)
        -> Result<Box<dyn Transport + Send>, TransportError>;
}

/// A session to `dev` with `opts`: libiscsi for an `iscsi://` URL (the
/// CHAP secret from the environment when the URL names a user only),
/// SG_IO for a device path.
pub fn open_device(
    dev: &str,
    opts: &IscsiOptions,
) -> Result<Box<dyn Transport + Send>, TransportError> {
    match DeviceUrl::parse(dev)? {
        DeviceUrl::Iscsi(url) => Ok(Box::new(IscsiTransport::connect(&url, opts)?)),
        DeviceUrl::Path(p) => Ok(Box::new(SgTransport::open(&p)?)),
    }
}

/// The session options are a connector: every session gets them, only the
/// initiator name changes.
impl Connector for IscsiOptions {
    fn open(
        &self,
        url: &str,
        initiator: &str,
    ) -> Result<Box<dyn Transport + Send>, TransportError> {
        let opts = IscsiOptions {
            initiator: initiator.to_string(),
            ..self.clone()
        };
        open_device(url, &opts)
    }
}
