//! A media changer (SMC-3): element status, moves and exchanges, and the
//! mapping of each data transfer element to the drive LU it is.
//!
//! Element addresses come from mode page 1Dh; the element lists from READ
//! ELEMENT STATUS, one element type at a time (tgt answers the "all types"
//! form with overlapping pages, and refuses an allocation length above
//! 4096 bytes with HARDWARE ERROR: the first request stays at 4096 and a
//! longer report is asked for again at its full length).
//!
//! Drives are matched to LUs by the identifier the changer reports with
//! DVCID (SMC-3 6.11.7) against the LU's VPD pages 83h and 80h, never by
//! their order.

use std::time::Duration;

use serde::Serialize;

use crate::scsi::sense::{Asc, SenseKey};
use crate::scsi::smc::{
    DeviceCapabilities, ElementAddress, ElementAddressAssignment, ElementDescriptor,
    ElementStatusData, ElementType, ExchangeMedium, InitializeElementStatus,
    InitializeElementStatusWithRange, MoveMedium, PositionToElement, PreventAllowMediumRemoval,
    ReadElementStatus,
};
use crate::scsi::spc::{
    Designator, DesignatorType, ModePageCodec, ModeParameters, ModeSense6, StandardInquiry,
    UnitSerialNumber, VpdPage,
};
use crate::scsi::{Cdb, CdbCodec, DeviceType, Wire};
use crate::transport::{Request, Transport};

use super::{DeviceError, Scsi};

/// A robot move can take minutes on a large library (SMC-3 gives no
/// bound); INITIALIZE ELEMENT STATUS scans every barcode.
pub const MOVE_TIMEOUT: Duration = Duration::from_secs(900);

/// The first READ ELEMENT STATUS allocation (tgt's limit, see above).
const FIRST_ALLOC: u32 = 4096;

/// Every element of the library, one list per type, in report order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Inventory {
    pub transports: Vec<ElementDescriptor>,
    pub storage: Vec<ElementDescriptor>,
    pub import_export: Vec<ElementDescriptor>,
    pub drives: Vec<ElementDescriptor>,
}

impl Inventory {
    /// The slots as mtx numbers them: storage elements, then import/export
    /// elements, from 1.
    pub fn slots(&self) -> impl Iterator<Item = (u16, ElementType, &ElementDescriptor)> {
        let st = self.storage.iter().map(|d| (ElementType::STORAGE, d));
        let ie = self
            .import_export
            .iter()
            .map(|d| (ElementType::IMPORT_EXPORT, d));
        st.chain(ie)
            .enumerate()
            .map(|(i, (t, d))| (i as u16 + 1, t, d))
    }

    /// Slot `n` (from 1, mtx's numbering).
    pub fn slot(&self, n: u16) -> Option<&ElementDescriptor> {
        self.slots().find(|s| s.0 == n).map(|s| s.2)
    }

    /// Drive `n` (from 0, mtx's numbering).
    pub fn drive(&self, n: u16) -> Option<&ElementDescriptor> {
        self.drives.get(n as usize)
    }

    /// The element at `a`, with its type.
    pub fn element(&self, a: ElementAddress) -> Option<(ElementType, &ElementDescriptor)> {
        [
            (ElementType::MEDIUM_TRANSPORT, &self.transports),
            (ElementType::STORAGE, &self.storage),
            (ElementType::IMPORT_EXPORT, &self.import_export),
            (ElementType::DATA_TRANSFER, &self.drives),
        ]
        .into_iter()
        .find_map(|(t, v)| v.iter().find(|d| d.address == a).map(|d| (t, d)))
    }

    /// The mtx slot number of the storage or import/export element at `a`.
    pub fn slot_number(&self, a: ElementAddress) -> Option<u16> {
        self.slots().find(|s| s.2.address == a).map(|s| s.0)
    }

    /// The mtx drive number of the data transfer element at `a`.
    pub fn drive_number(&self, a: ElementAddress) -> Option<u16> {
        self.drives
            .iter()
            .position(|d| d.address == a)
            .map(|i| i as u16)
    }

    /// The slot a cartridge with this primary volume tag is in.
    pub fn find_tag(&self, label: &str) -> Option<(u16, &ElementDescriptor)> {
        self.slots()
            .find(|s| s.2.is_full() && s.2.primary_tag.is_some_and(|t| t.label() == label))
            .map(|s| (s.0, s.2))
    }
}

/// A media changer LU.
#[derive(Debug)]
pub struct Changer<T: Transport> {
    pub scsi: Scsi<T>,
    pub inquiry: StandardInquiry,
    /// Mode page 1Dh, read at open.
    pub layout: ElementAddressAssignment,
}

impl<T: Transport> Changer<T> {
    /// Open a changer: INQUIRY must say medium changer, and mode page 1Dh
    /// gives the element addresses.
    pub fn open(t: T) -> Result<Self, DeviceError> {
        let mut scsi = Scsi::new(t);
        let inquiry = scsi.expect_type(DeviceType::MEDIUM_CHANGER)?;
        let layout = mode_page(&mut scsi)?;
        Ok(Changer {
            scsi,
            inquiry,
            layout,
        })
    }

    /// Mode page 1Fh: which moves and exchanges the changer allows (tgt
    /// claims EXCHANGE MEDIUM here and refuses the command).
    pub fn capabilities(&mut self) -> Result<DeviceCapabilities, DeviceError> {
        mode_page(&mut self.scsi)
    }

    /// Any mode page with a decoded form (1Dh, 1Eh, 1Fh).
    pub fn mode_page<P: ModePageCodec>(&mut self) -> Result<P, DeviceError> {
        mode_page(&mut self.scsi)
    }

    /// READ ELEMENT STATUS of one element type, with volume tags and
    /// device identifiers where the changer has them.
    pub fn element_status(
        &mut self,
        element_type: ElementType,
    ) -> Result<Vec<ElementDescriptor>, DeviceError> {
        let mut res = ReadElementStatus::all_of(element_type, FIRST_ALLOC);
        if let Some(r) = self.layout.range(element_type) {
            res.start = r.first;
            res.count = r.count;
        }
        let data = self.read_element_status(res)?;
        Ok(data
            .pages
            .into_iter()
            .filter(|p| p.element_type == element_type)
            .flat_map(|p| p.descriptors)
            .collect())
    }

    /// One READ ELEMENT STATUS, asked again at the report's full length
    /// when the allocation cut it, and without CURDATA/DVCID, then
    /// VOLTAG, when the changer refuses them (SMC-2 changers, no barcode
    /// reader) with INVALID FIELD IN CDB.
    fn read_element_status(
        &mut self,
        mut res: ReadElementStatus,
    ) -> Result<ElementStatusData, DeviceError> {
        loop {
            match self.scsi.data_in(res.to_cdb(), res.alloc_len as usize) {
                Ok(buf) => {
                    let full = ElementStatusData::report_len(&buf)
                        .map_err(|e| self.scsi.perr("READ ELEMENT STATUS", e))?;
                    if full > res.alloc_len as usize && res.alloc_len < ReadElementStatus::MAX_ALLOC
                    {
                        res.alloc_len = full.min(ReadElementStatus::MAX_ALLOC as usize) as u32;
                        continue;
                    }
                    return self.parse_status(buf, full);
                }
                Err(e) if invalid_field(&e) && (res.dvcid || res.curdata) => {
                    (res.dvcid, res.curdata) = (false, false);
                }
                Err(e) if invalid_field(&e) && res.voltag => res.voltag = false,
                Err(e) => return Err(e),
            }
        }
    }

    /// Decode a report. tgt sends BYTE COUNT OF REPORT AVAILABLE bytes in
    /// all, 8 fewer than the report has (its transfer length leaves out
    /// the header): the last 8 bytes of the last descriptor never arrive.
    /// They are reserved or zero in every descriptor tgt builds except a
    /// data transfer element's identifier, which is then dropped, never
    /// guessed.
    fn parse_status(
        &self,
        mut buf: Vec<u8>,
        full: usize,
    ) -> Result<ElementStatusData, DeviceError> {
        let cut = full.saturating_sub(buf.len());
        if cut == ElementStatusData::HEADER_LEN {
            buf.resize(full, 0);
        }
        let mut data =
            ElementStatusData::parse(&buf).map_err(|e| self.scsi.perr("READ ELEMENT STATUS", e))?;
        if cut == ElementStatusData::HEADER_LEN {
            let last = data.pages.last_mut().and_then(|p| p.descriptors.last_mut());
            if let Some(d) = last.filter(|d| d.device_id.is_some()) {
                log::warn!(
                    "{}: the changer sent its element status 8 bytes short (a tgt bug); \
                     the identifier of element {} arrived cut and is ignored",
                    self.scsi.name(),
                    d.address
                );
                d.device_id = None;
            }
        }
        Ok(data)
    }

    /// Every element type the layout has, in one [`Inventory`].
    pub fn inventory(&mut self) -> Result<Inventory, DeviceError> {
        let mut inv = Inventory::default();
        for (t, list) in [
            (ElementType::MEDIUM_TRANSPORT, &mut inv.transports),
            (ElementType::STORAGE, &mut inv.storage),
            (ElementType::IMPORT_EXPORT, &mut inv.import_export),
            (ElementType::DATA_TRANSFER, &mut inv.drives),
        ] {
            if self.layout.range(t).is_some_and(|r| r.count > 0) {
                *list = self.element_status(t)?;
            }
        }
        Ok(inv)
    }

    fn run_long(&mut self, cdb: Cdb) -> Result<(), DeviceError> {
        self.scsi
            .run(Request::none(cdb).with_timeout(MOVE_TIMEOUT))
            .map(|_| ())
    }

    /// MOVE MEDIUM with the default transport.
    pub fn move_medium(
        &mut self,
        source: ElementAddress,
        destination: ElementAddress,
    ) -> Result<(), DeviceError> {
        self.run_long(MoveMedium::new(source, destination).to_cdb())
    }

    /// EXCHANGE MEDIUM with the default transport.
    pub fn exchange_medium(
        &mut self,
        source: ElementAddress,
        first: ElementAddress,
        second: ElementAddress,
    ) -> Result<(), DeviceError> {
        let cdb = ExchangeMedium {
            source,
            first_destination: first,
            second_destination: second,
            ..ExchangeMedium::default()
        }
        .to_cdb();
        self.run_long(cdb)
    }

    /// INITIALIZE ELEMENT STATUS: the changer checks every element.
    pub fn initialize_element_status(&mut self) -> Result<(), DeviceError> {
        self.run_long(InitializeElementStatus.to_cdb())
    }

    /// INITIALIZE ELEMENT STATUS WITH RANGE: check `count` elements from
    /// `start` (`fast`: only whether they hold media).
    pub fn initialize_range(
        &mut self,
        start: ElementAddress,
        count: u16,
        fast: bool,
    ) -> Result<(), DeviceError> {
        let cdb = InitializeElementStatusWithRange {
            fast,
            range: true,
            start,
            count,
        }
        .to_cdb();
        self.run_long(cdb)
    }

    /// POSITION TO ELEMENT with the default transport.
    pub fn position_to(&mut self, destination: ElementAddress) -> Result<(), DeviceError> {
        let cdb = PositionToElement {
            destination,
            ..PositionToElement::default()
        }
        .to_cdb();
        self.run_long(cdb)
    }

    /// PREVENT ALLOW MEDIUM REMOVAL.
    pub fn prevent_removal(&mut self, prevent: bool) -> Result<(), DeviceError> {
        let cdb = PreventAllowMediumRemoval { prevent }.to_cdb();
        self.scsi.run(Request::none(cdb)).map(|_| ())
    }
}

/// A mode page of `P`'s code, with MODE SENSE(6) and no block descriptors.
fn mode_page<T: Transport, P: ModePageCodec>(scsi: &mut Scsi<T>) -> Result<P, DeviceError> {
    let cdb = ModeSense6 {
        dbd: true,
        pc: 0,
        page_code: P::PAGE_CODE,
        subpage_code: 0,
        alloc_len: 255,
    }
    .to_cdb();
    let buf = scsi.data_in(cdb, 255)?;
    ModeParameters::parse6(&buf)
        .and_then(|m| P::from_params(&m))
        .map_err(|e| scsi.perr("MODE SENSE(6)", e))
}

fn invalid_field(e: &DeviceError) -> bool {
    e.sense()
        .is_some_and(|s| s.key == SenseKey::ILLEGAL_REQUEST && s.asc == Asc::INVALID_FIELD_IN_CDB)
}

/// Who a drive LU is: what its INQUIRY and VPD pages 80h and 83h say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriveIdentity {
    /// The address it was opened with, without secrets.
    pub device: String,
    pub vendor: String,
    pub product: String,
    /// VPD page 80h, when the LU has one.
    pub serial: Option<String>,
    /// VPD page 83h designators, when the LU has the page.
    pub designators: Vec<Designator>,
}

impl DriveIdentity {
    /// Ask the LU behind `scsi` who it is. A missing VPD page is no error;
    /// a drive with neither page can only be matched by nothing.
    pub fn probe<T: Transport>(scsi: &mut Scsi<T>, device: &str) -> Result<Self, DeviceError> {
        let inq = scsi.inquiry()?;
        let serial = scsi
            .vpd::<UnitSerialNumber>(VpdPage::UNIT_SERIAL)
            .ok()
            .map(|s| s.serial);
        let designators = scsi
            .device_identification()
            .map(|d| d.designators)
            .unwrap_or_default();
        Ok(DriveIdentity {
            device: device.to_string(),
            vendor: inq.vendor,
            product: inq.product,
            serial,
            designators,
        })
    }
}

/// How a data transfer element was matched to a drive LU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    /// The identifier equals one of the LU's VPD 83h designators.
    DeviceIdentifier,
    /// The identifier carries the LU's unit serial number (VPD 80h): as a
    /// T10 vendor ID designator (vendor, product, serial: what tgt and
    /// most libraries send) or alone.
    UnitSerial,
}

/// Whether the element identifier `id` names `drive`.
pub fn identifies(id: &Designator, drive: &DriveIdentity) -> Option<MatchedBy> {
    let same = |d: &&Designator| d.designator_type == id.designator_type && d.value == id.value;
    if drive.designators.iter().any(|d| same(&d)) {
        return Some(MatchedBy::DeviceIdentifier);
    }
    let serial = drive.serial.as_deref().filter(|s| !s.is_empty())?;
    let text = |b: &[u8]| crate::scsi::spc::ascii_field(b).trim().to_string();
    let by_serial = match id.designator_type {
        // SPC-4 7.8.6.4: 8 bytes of vendor, then vendor specific; the
        // libraries put the product (16 bytes) and the serial there.
        DesignatorType::T10_VENDOR_ID if id.value.len() > 24 => {
            text(&id.value[..8]) == drive.vendor && text(&id.value[24..]) == serial
        }
        _ => text(&id.value) == serial,
    };
    by_serial.then_some(MatchedBy::UnitSerial)
}

/// One data transfer element and the LU it is, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriveMapping {
    pub drive: u16,
    pub address: ElementAddress,
    /// Index into the LUs given to [`map_drives`].
    pub lu: Option<usize>,
    pub matched_by: Option<MatchedBy>,
}

/// Why drives could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("drive LU {device} matches data transfer elements {first} and {second}")]
    LuMatchesTwo {
        device: String,
        first: ElementAddress,
        second: ElementAddress,
    },
    #[error("data transfer element {address} matches drive LUs {first} and {second}")]
    ElementMatchesTwo {
        address: ElementAddress,
        first: String,
        second: String,
    },
}

/// Map each data transfer element (mtx numbering) to the LU among `lus`
/// its identifier names. An element without identifier, or whose
/// identifier names none of them, maps to nothing; a match that is not
/// one to one is an error.
pub fn map_drives(
    drives: &[ElementDescriptor],
    lus: &[DriveIdentity],
) -> Result<Vec<DriveMapping>, MappingError> {
    let mut out: Vec<DriveMapping> = Vec::new();
    for (n, d) in drives.iter().enumerate() {
        let hits: Vec<(usize, MatchedBy)> = d.device_id.as_ref().map_or(Vec::new(), |id| {
            lus.iter()
                .enumerate()
                .filter_map(|(i, lu)| identifies(id, lu).map(|m| (i, m)))
                .collect()
        });
        if let [a, b, ..] = hits[..] {
            return Err(MappingError::ElementMatchesTwo {
                address: d.address,
                first: lus[a.0].device.clone(),
                second: lus[b.0].device.clone(),
            });
        }
        let hit = hits.first().copied();
        if let Some(prev) = out.iter().find(|m| hit.is_some_and(|h| m.lu == Some(h.0))) {
            return Err(MappingError::LuMatchesTwo {
                device: lus[prev.lu.unwrap_or(0)].device.clone(),
                first: prev.address,
                second: d.address,
            });
        }
        out.push(DriveMapping {
            drive: n as u16,
            address: d.address,
            lu: hit.map(|h| h.0),
            matched_by: hit.map(|h| h.1),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
