//! The engine of the server's own jobs: a serverless backup run by
//! `sanmover server` with its sessions, on the drive its lease names.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;
use uuid::Uuid;

use super::exit;
use super::server_cmds::{granted, hold_drive, tape_full};
use super::server_span::ServerVolumes;
use super::sessions::{redacted, Sessions};
use super::sizes::{check_tape_block, ByteSize};
use crate::catalog::Catalog;
use crate::engine::host::BackupOptions;
use crate::engine::interrupt::StopFlag;
use crate::engine::serverless::{self, ServerlessOptions};
use crate::engine::set_writer::{NextVolume, SetRequest};
use crate::engine::Progress;
use crate::scsi::{BlockCount, Lba};
use crate::server::jobs::{JobFailed, JobRunner, ServerlessJob};
use crate::server::lifecycle::Broker;
use crate::server::service::Grant;
use crate::snapshot::{parse_spec, provider_with_sessions};

/// Runs serverless jobs with the server's own sessions (its initiator
/// name: the snapshot is exported to the server alone).
pub struct ServerlessRunner {
    pub sessions: Sessions,
}

impl JobRunner for ServerlessRunner {
    fn run(
        &self,
        job: &ServerlessJob,
        lease: (&Grant, &dyn Broker),
        catalog: &Path,
        stop: StopFlag,
        progress: &dyn Progress,
    ) -> Result<(Uuid, Value), JobFailed> {
        self.backup(job, lease, catalog, stop, progress)
            .map_err(|e| JobFailed {
                message: super::output::error_text(&e),
                exit: exit::for_error(&e),
                full: tape_full(&e),
            })
    }

    /// The `exec` provider runs a program on the server: only an
    /// operator host may name one. Hooks are never taken from hosts.
    fn check(&self, job: &ServerlessJob, operator: bool) -> Result<(), String> {
        let (provider, _) = parse_spec(&job.snapshot).map_err(|e| e.to_string())?;
        if provider == "exec" && !operator {
            return Err(
                "the exec snapshot provider runs a program on the server: only an operator host may use it"
                    .into(),
            );
        }
        if !job.source.starts_with("iscsi://") {
            return Err(
                "a serverless source is an iscsi:// LUN (the snapshot is named after its target)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl ServerlessRunner {
    fn backup(
        &self,
        job: &ServerlessJob,
        (grant, broker): (&Grant, &dyn Broker),
        catalog: &Path,
        stop: StopFlag,
        progress: &dyn Progress,
    ) -> Result<(Uuid, Value)> {
        let s = &self.sessions;
        let mut provider = provider_with_sessions(&job.snapshot, s.connector())?;
        // Not `Sessions::catalog`: that reaps running sets, and other
        // hosts' sets run in this catalog.
        let catalog = Catalog::open(catalog)?;
        let mut tape = s.tape(&grant.drive_url)?;
        hold_drive(&mut tape, grant)?;
        check_tape_block(&mut tape, ByteSize(job.block_size), None)?;
        let set = SetRequest {
            lba: job.lba.map(Lba),
            blocks: job.blocks.map(BlockCount),
            label: job.label.clone(),
            tape_block: usize::try_from(job.block_size)?,
            source_url: redacted(&job.source),
            tape_url: grant.drive_url.clone(),
            stop,
            digest: job.digest,
        };
        let backup = BackupOptions {
            set,
            queue_depth: job.queue_depth,
            reservation_key: s.reservation_key(),
            keep_reservation: false,
        };
        let opts = ServerlessOptions {
            spec: job.snapshot.clone(),
            source: job.source.clone(),
            initiator: s.initiator().to_string(),
            maskcheck_initiator: job.maskcheck_initiator.clone(),
            quiesce: None,
            thaw: None,
            backup: granted(backup, grant),
        };
        let connector = s.session_connector();
        // At the end of a cartridge the set goes on with the next one the
        // robot loads into this drive, as a host's set does.
        let mut next = ServerVolumes::new(broker, grant);
        let sum = serverless::backup_spanning(
            connector.as_ref(),
            provider.as_mut(),
            (&mut tape, Some(&mut next as &mut dyn NextVolume<_>)),
            &catalog,
            &opts,
            progress,
        )?;
        Ok((sum.backup.set.set_id, serde_json::to_value(&sum)?))
    }
}
