//! `tgt` provider: reflink copy of the backing file, exported as a new
//! target bound to the backup server's initiator only.

use std::collections::BTreeMap;

use super::{MappedLun, ProviderError, Snapshot, SnapshotJob, SnapshotProvider};

/// Snapshots of LUNs served by a user-space tgtd.
#[derive(Debug, Default)]
pub struct TgtProvider {}

impl TgtProvider {
    /// Build from the spec options.
    pub fn new(_options: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        Ok(Self {})
    }
}

impl SnapshotProvider for TgtProvider {
    fn name(&self) -> &'static str {
        "tgt"
    }
    fn create(&mut self, _job: &SnapshotJob) -> Result<Snapshot, ProviderError> {
        Err(ProviderError::Failed {
            op: "create",
            reason: "tgt provider not written yet".into(),
        })
    }
    fn map(&mut self, _job: &SnapshotJob, _snap: &Snapshot) -> Result<MappedLun, ProviderError> {
        Err(ProviderError::Failed {
            op: "map",
            reason: "tgt provider not written yet".into(),
        })
    }
    fn unmap(&mut self, _job: &SnapshotJob, _snap: &Snapshot) -> Result<(), ProviderError> {
        Ok(())
    }
    fn delete(&mut self, _job: &SnapshotJob, _snap: &Snapshot) -> Result<(), ProviderError> {
        Ok(())
    }
}
