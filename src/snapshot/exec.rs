//! `exec:SCRIPT` provider: an external script drives the array (README).

use std::collections::BTreeMap;

use super::{MappedLun, ProviderError, Snapshot, SnapshotJob, SnapshotProvider};

/// Snapshots made by an external script.
#[derive(Debug, Default)]
pub struct ExecProvider {}

impl ExecProvider {
    /// Build from the spec options.
    pub fn new(_options: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        Ok(Self {})
    }
}

impl SnapshotProvider for ExecProvider {
    fn name(&self) -> &'static str {
        "exec"
    }
    fn create(&mut self, _job: &SnapshotJob) -> Result<Snapshot, ProviderError> {
        Err(ProviderError::Failed {
            op: "create",
            reason: "exec provider not written yet".into(),
        })
    }
    fn map(&mut self, _job: &SnapshotJob, _snap: &Snapshot) -> Result<MappedLun, ProviderError> {
        Err(ProviderError::Failed {
            op: "map",
            reason: "exec provider not written yet".into(),
        })
    }
    fn unmap(&mut self, _job: &SnapshotJob, _snap: &Snapshot) -> Result<(), ProviderError> {
        Ok(())
    }
    fn delete(&mut self, _job: &SnapshotJob, _snap: &Snapshot) -> Result<(), ProviderError> {
        Ok(())
    }
}
