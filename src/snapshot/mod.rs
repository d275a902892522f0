//! Snapshot providers for serverless backups (issue 5).
//!
//! A provider asks the storage for a point-in-time copy of the production
//! LUN, exports it to the backup server's initiator only, and takes it away
//! again. The engine (`engine::serverless`) drives the four operations and
//! persists the lifecycle in the catalog; every operation is idempotent so
//! `snapshots cleanup` can replay unmap/delete after a crash.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::transport::iscsi::IscsiOptions;
use crate::transport::Connector;

pub mod exec;
pub mod lio;
pub mod runner;
pub mod tgt;
pub mod xcopy_image;

/// Everything a provider needs to know about one job. Serializable: the
/// catalog stores it as JSON so `snapshots cleanup` can rebuild the provider
/// call after a crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotJob {
    /// Catalog key of the job.
    pub job_id: uuid::Uuid,
    /// The production LUN (iscsi://…/iqn/LUN), as given.
    pub source_url: String,
    /// Hex of its best VPD 0x83 designator (`best_lu_designator`).
    pub source_designator: Option<String>,
    /// The backup server's initiator IQN (map to this one only).
    pub initiator: String,
    /// `PROVIDER:k=v,k=v` from the CLI.
    pub options: BTreeMap<String, String>,
}

/// What `create` made; opaque to the engine, persisted in the catalog as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Provider-specific name of the snapshot.
    pub handle: String,
    /// Provider-specific details (paths, target names...).
    pub info: serde_json::Value,
}

/// Where the mapped snapshot can be reached, and what identity it must show.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MappedLun {
    /// iscsi://127.0.0.1:PORT/IQN/LUN
    pub url: String,
    /// Hex of the VPD 0x83 designator it promises (checked after login).
    pub designator: Option<String>,
    /// Write-protected at the target.
    pub read_only: bool,
}

/// A provider operation failed, or the spec could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// An operation failed; `op` is create/map/unmap/delete.
    #[error("{op}: {reason}")]
    Failed {
        /// The operation.
        op: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// `--snapshot` could not be parsed or names no provider.
    #[error("bad provider spec: {0}")]
    Spec(String),
}

/// Four idempotent operations (calling one twice, or on something already
/// gone, succeeds).
pub trait SnapshotProvider: Send {
    /// Short provider name ("tgt", "exec", ...).
    fn name(&self) -> &'static str;
    /// Take the point-in-time copy.
    fn create(&mut self, job: &SnapshotJob) -> Result<Snapshot, ProviderError>;
    /// Export it to `job.initiator` only.
    fn map(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<MappedLun, ProviderError>;
    /// Remove the export.
    fn unmap(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError>;
    /// Destroy the copy.
    fn delete(&mut self, job: &SnapshotJob, snap: &Snapshot) -> Result<(), ProviderError>;
    /// After a crash inside `create` (the catalog has the job, not the
    /// snapshot): remove whatever that create may have made, found by the
    /// names it derives from the job id, and say what was done. A provider
    /// that cannot look says so, and the user checks by hand.
    fn discard(&mut self, job: &SnapshotJob) -> Result<String, ProviderError> {
        Ok(format!(
            "the {} provider cannot look for what an interrupted create made; check for objects named after job {}",
            self.name(),
            job.job_id
        ))
    }
}

/// Split `PROVIDER[:k=v,k=v]` into the provider name and its options.
/// `exec:SCRIPT[,k=v…]` is special: the first item after the colon is the
/// script path, stored under the option `script`.
pub fn parse_spec(spec: &str) -> Result<(String, BTreeMap<String, String>), ProviderError> {
    let spec = spec.trim();
    let (name, rest) = match spec.split_once(':') {
        Some((n, r)) => (n, Some(r)),
        None => (spec, None),
    };
    if name.is_empty() {
        return Err(ProviderError::Spec(format!("{spec:?}: no provider name")));
    }
    let mut options = BTreeMap::new();
    if let Some(rest) = rest {
        for (i, item) in rest.split(',').enumerate() {
            if item.is_empty() {
                continue;
            }
            if name == "exec" && i == 0 && !item.contains('=') {
                options.insert("script".to_string(), item.to_string());
                continue;
            }
            let (k, v) = item.split_once('=').ok_or_else(|| {
                ProviderError::Spec(format!("{spec:?}: option {item:?} is not key=value"))
            })?;
            if k.is_empty() {
                return Err(ProviderError::Spec(format!("{spec:?}: empty option name")));
            }
            options.insert(k.to_string(), v.to_string());
        }
    }
    Ok((name.to_string(), options))
}

/// Parse `--snapshot PROVIDER[:k=v,k=v]` (exec:SCRIPT takes the path after
/// the colon). The options are also what the engine copies into
/// `SnapshotJob::options`; providers read their settings from the job.
pub fn provider_from_spec(spec: &str) -> Result<Box<dyn SnapshotProvider>, ProviderError> {
    provider_with_sessions(spec, Arc::new(IscsiOptions::default()))
}

/// [`provider_from_spec`], with `sessions` opening whatever sessions the
/// provider needs itself (`xcopy-image` opens the source, the spare and
/// the copy manager), so they get the caller's session options.
pub fn provider_with_sessions(
    spec: &str,
    sessions: Arc<dyn Connector + Send + Sync>,
) -> Result<Box<dyn SnapshotProvider>, ProviderError> {
    let (name, options) = parse_spec(spec)?;
    match name.as_str() {
        "tgt" => Ok(Box::new(tgt::TgtProvider::new(&options)?)),
        "exec" => Ok(Box::new(exec::ExecProvider::new(&options)?)),
        "lio" => Ok(Box::new(lio::LioProvider::new(&options)?)),
        "xcopy-image" => Ok(Box::new(xcopy_image::XcopyImageProvider::with_sessions(
            &options, sessions,
        )?)),
        other => Err(ProviderError::Spec(format!(
            "unknown provider {other:?} (tgt, lio, xcopy-image, exec:SCRIPT)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_plain_name() {
        let (n, o) = parse_spec("tgt").unwrap();
        assert_eq!(n, "tgt");
        assert!(o.is_empty());
    }

    #[test]
    fn spec_options() {
        let (n, o) = parse_spec("tgt:control-port=3333,dir=/x").unwrap();
        assert_eq!(n, "tgt");
        assert_eq!(o.get("control-port").map(String::as_str), Some("3333"));
        assert_eq!(o.get("dir").map(String::as_str), Some("/x"));
    }

    #[test]
    fn spec_exec_script() {
        let (n, o) = parse_spec("exec:/opt/snap.sh,pool=a").unwrap();
        assert_eq!(n, "exec");
        assert_eq!(o.get("script").map(String::as_str), Some("/opt/snap.sh"));
        assert_eq!(o.get("pool").map(String::as_str), Some("a"));
    }

    #[test]
    fn spec_errors() {
        assert!(matches!(parse_spec(""), Err(ProviderError::Spec(_))));
        assert!(matches!(
            parse_spec("tgt:novalue"),
            Err(ProviderError::Spec(_))
        ));
        assert!(matches!(parse_spec("tgt:=v"), Err(ProviderError::Spec(_))));
        assert!(matches!(
            provider_from_spec("nosuch"),
            Err(ProviderError::Spec(_))
        ));
    }
}
