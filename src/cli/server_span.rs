//! Multi-volume sets through the backup server: the mover asks the server
//! for the next cartridge when its set reaches the end of one
//! (`backup --server`, and a serverless job the server runs itself), and
//! for each later part's cartridge when it reads such a set
//! (`restore --server`). The server's robot changes the cartridge in the
//! drive the mover already leases. The same code serves a host over HTTP
//! and the server's own job in-process: only the [`Broker`] differs.

use uuid::Uuid;

use crate::catalog::{SetPart, SetRow};
use crate::device::{PrOut, Tape};
use crate::engine::restore::LoadPart;
use crate::engine::set_writer::NextVolume;
use crate::engine::EngineError;
use crate::format::VolumeLabel;
use crate::scsi::spc::PrType;
use crate::server::lifecycle::Broker;
use crate::server::service::Grant;
use crate::transport::Transport;

/// The server as the source of a lease's next volumes and parts.
pub struct ServerVolumes<'a> {
    pub broker: &'a dyn Broker,
    pub grant: &'a Grant,
    /// The cartridges the drive held, in order (for the summary).
    pub cartridges: Vec<String>,
}

impl<'a> ServerVolumes<'a> {
    pub fn new(broker: &'a dyn Broker, grant: &'a Grant) -> Self {
        ServerVolumes {
            broker,
            grant,
            cartridges: vec![grant.lease.barcode.clone()],
        }
    }

    /// Ask the server for another cartridge in the leased drive. On a
    /// drive with PERSISTENT RESERVE the host gives up its reservation
    /// meanwhile (the server's robot session takes it to check or write
    /// the label) and takes it over again afterwards.
    fn change<T: Transport>(
        &mut self,
        tape: &mut Tape<T>,
        volume: Option<Uuid>,
    ) -> Result<(), EngineError> {
        let lease = self.grant.lease.id;
        if let Some(k) = self.grant.reservation {
            tape.scsi
                .pr_out(PrOut::release(k.key, PrType::WRITE_EXCLUSIVE))?;
        }
        let g = self
            .broker
            .continue_lease(lease, volume)
            .map_err(|e| EngineError::Server(Box::new(e)))?;
        if let Some(k) = self.grant.reservation {
            tape.scsi.pr_claim(k.key, k.server_key)?;
        }
        if g.drive_serial != self.grant.drive_serial {
            return Err(EngineError::Stopped(
                "the server changed the cartridge in another drive than the leased one",
            ));
        }
        self.cartridges.push(g.lease.barcode);
        Ok(())
    }
}

impl<T: Transport> NextVolume<T> for ServerVolumes<'_> {
    fn next_volume(
        &mut self,
        tape: &mut Tape<T>,
        set: Uuid,
        part: u32,
        full: &VolumeLabel,
    ) -> Result<(), EngineError> {
        log::info!(
            "set {set}: volume {} is full; asking the server for the cartridge of part {part}",
            full.name
        );
        self.change(tape, None)
    }
}

impl<T: Transport> LoadPart<T> for ServerVolumes<'_> {
    fn load_part(
        &mut self,
        tape: &mut Tape<T>,
        set: &SetRow,
        part: &SetPart,
    ) -> Result<(), EngineError> {
        log::info!(
            "set {}: part {} is on volume {}; asking the server to load it",
            set.info.id,
            part.part,
            part.volume_name
        );
        self.change(tape, Some(part.volume))
    }
}
