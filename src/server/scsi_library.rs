//! The [`Library`] of a real changer: READ ELEMENT STATUS and MOVE MEDIUM
//! through `device::Changer`, each `--drive` tied to its data-transfer
//! element by the element's device identifier (DVCID) or the drive's unit
//! serial, never by order, and labels read and written through a session
//! the server opens to the drive for that step only.

use std::sync::Arc;

use super::library::{DriveStatus, Inventory, Library, LibraryError, SlotStatus, SERVER_KEY};
use super::service::DriveSpec;
use crate::device::changer::{map_drives, DriveIdentity};
use crate::device::{Changer, Scsi, Tape};
use crate::engine::volume::{read_label, write_label, LabelState};
use crate::format::VolumeLabel;
use crate::scsi::smc::ElementAddress;
use crate::transport::url::DeviceUrl;
use crate::transport::{Connector, Transport};

type Dyn = Box<dyn Transport + Send>;

/// An address without its secret, as hosts and logs see it.
fn redact(dev: &str) -> String {
    match DeviceUrl::parse(dev) {
        Ok(DeviceUrl::Iscsi(u)) => u.without_credentials().to_string(),
        _ => dev.to_string(),
    }
}

/// A drive LU as the server opens it.
struct ScsiDrive {
    /// The address with any secret, for opening.
    url: String,
    identity: DriveIdentity,
    /// PERSISTENT RESERVE IN REPORT CAPABILITIES answered.
    reservations: bool,
}

impl ScsiDrive {
    /// What the server calls the drive: its unit serial, else its address.
    fn key(&self) -> String {
        self.identity
            .serial
            .as_ref()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.identity.device.clone())
    }
}

/// A changer and its drives over SCSI.
pub struct ScsiLibrary {
    changer: Changer<Dyn>,
    drives: Vec<ScsiDrive>,
    connector: Arc<dyn Connector + Send + Sync>,
    initiator: String,
}

fn device_err(e: impl std::fmt::Display) -> LibraryError {
    LibraryError::Device(e.to_string())
}

impl ScsiLibrary {
    /// Open the changer at `changer` and identify each of `drives`
    /// (INQUIRY, VPD 80h and 83h).
    pub fn open(
        changer: &str,
        drives: &[String],
        connector: Arc<dyn Connector + Send + Sync>,
        initiator: &str,
    ) -> Result<ScsiLibrary, LibraryError> {
        let t = connector.open(changer, initiator).map_err(device_err)?;
        let changer = Changer::open(t).map_err(device_err)?;
        let mut out = Vec::new();
        for url in drives {
            let t = connector.open(url, initiator).map_err(device_err)?;
            let mut scsi = Scsi::new(t);
            let identity = DriveIdentity::probe(&mut scsi, &redact(url)).map_err(device_err)?;
            let reservations = scsi.pr_supported().map_err(device_err)?;
            out.push(ScsiDrive {
                url: url.clone(),
                identity,
                reservations,
            });
        }
        Ok(ScsiLibrary {
            changer,
            drives: out,
            connector,
            initiator: initiator.to_string(),
        })
    }

    /// The `--drive`s as the service takes them.
    pub fn drive_specs(&self) -> Vec<DriveSpec> {
        self.drives
            .iter()
            .map(|d| DriveSpec {
                url: d.identity.device.clone(),
                serial: d.key(),
            })
            .collect()
    }

    fn drive(&self, serial: &str) -> Option<&ScsiDrive> {
        self.drives.iter().find(|d| d.key() == serial)
    }

    /// A session to the drive; on a drive with PERSISTENT RESERVE the
    /// server holds the reservation for it (robot steps write labels).
    fn tape(&self, serial: &str) -> Result<Tape<Dyn>, LibraryError> {
        let d = self
            .drives
            .iter()
            .find(|d| d.key() == serial)
            .ok_or_else(|| LibraryError::Drive {
                drive: serial.into(),
                error: "not a --drive of this server".into(),
            })?;
        let drive_err = |e: &dyn std::fmt::Display| LibraryError::Drive {
            drive: d.identity.device.clone(),
            error: e.to_string(),
        };
        let t = self
            .connector
            .open(&d.url, &self.initiator)
            .map_err(|e| drive_err(&e))?;
        let mut tape = Tape::open(t).map_err(|e| drive_err(&e))?;
        if d.reservations {
            tape.scsi
                .pr_claim(SERVER_KEY, SERVER_KEY)
                .map_err(|e| drive_err(&e))?;
        }
        Ok(tape)
    }
}

fn barcode(d: &crate::scsi::smc::ElementDescriptor) -> Option<String> {
    d.is_full()
        .then(|| d.primary_tag.as_ref().map(|t| t.label().trim().to_string()))
        .flatten()
        .filter(|b| !b.is_empty())
}

impl Library for ScsiLibrary {
    fn inventory(&mut self) -> Result<Inventory, LibraryError> {
        let inv = self.changer.inventory().map_err(device_err)?;
        let ids: Vec<DriveIdentity> = self.drives.iter().map(|d| d.identity.clone()).collect();
        let map = map_drives(&inv.drives, &ids).map_err(device_err)?;
        let mut out = Inventory::default();
        for s in &inv.storage {
            out.slots.push(SlotStatus {
                address: s.address.0,
                barcode: barcode(s),
            });
        }
        for (m, d) in map.iter().zip(&inv.drives) {
            let Some(lu) = m.lu else { continue };
            out.drives.push(DriveStatus {
                address: d.address.0,
                serial: self.drives[lu].key(),
                barcode: barcode(d),
                source: d.source.map(|a| a.0),
            });
        }
        Ok(out)
    }

    fn move_medium(&mut self, from: u16, to: u16) -> Result<(), LibraryError> {
        self.changer
            .move_medium(ElementAddress(from), ElementAddress(to))
            .map_err(|e| LibraryError::Refused {
                from,
                to,
                why: e.to_string(),
            })
    }

    fn read_label(&mut self, serial: &str) -> Result<LabelState, LibraryError> {
        let mut tape = self.tape(serial)?;
        read_label(&mut tape).map_err(|e| LibraryError::Drive {
            drive: serial.into(),
            error: e.to_string(),
        })
    }

    fn write_label(&mut self, serial: &str, name: &str) -> Result<VolumeLabel, LibraryError> {
        let mut tape = self.tape(serial)?;
        write_label(&mut tape, name).map_err(|e| LibraryError::Drive {
            drive: serial.into(),
            error: e.to_string(),
        })
    }

    fn has_reservations(&mut self, serial: &str) -> bool {
        self.drive(serial).is_some_and(|d| d.reservations)
    }

    fn fence(&mut self, serial: &str, victim: u64) -> Result<(), LibraryError> {
        let d = self.drive(serial).ok_or_else(|| LibraryError::Drive {
            drive: serial.into(),
            error: "not a --drive of this server".into(),
        })?;
        let drive_err = |e: &dyn std::fmt::Display| LibraryError::Drive {
            drive: d.identity.device.clone(),
            error: e.to_string(),
        };
        let t = self
            .connector
            .open(&d.url, &self.initiator)
            .map_err(|e| drive_err(&e))?;
        Scsi::new(t)
            .pr_fence(SERVER_KEY, victim)
            .map_err(|e| drive_err(&e))
    }
}
