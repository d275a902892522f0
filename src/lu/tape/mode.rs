//! The drive's commands that need no medium: MODE SENSE/SELECT(6/10) with
//! the block descriptor and pages 0Fh, 10h, 10h/01h and 1Dh, READ BLOCK
//! LIMITS, REPORT DENSITY SUPPORT, PREVENT ALLOW MEDIUM REMOVAL, and LOAD
//! UNLOAD (which needs a cartridge but not a threaded one).

use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::smc::PreventAllowMediumRemoval;
use crate::scsi::spc::{
    page_control, BlockDescriptor, ModeParameters, ModeSelect10, ModeSelect6, ModeSense10,
    ModeSense6, ALL_PAGES,
};
use crate::scsi::ssc::{
    BlockLimits, DataCompressionPage, DensityDescriptor, DensitySupport,
    DeviceConfigurationExtension, DeviceConfigurationPage, LoadUnload, MediumConfigurationPage,
    ReadBlockLimits, ReportDensitySupport, DATA_COMPRESSION_PAGE, DEVICE_CONFIGURATION_EXTENSION,
    DEVICE_CONFIGURATION_PAGE, MEDIUM_CONFIGURATION_PAGE,
};
use crate::scsi::{CdbCodec, Opcode, Wire};

use super::{not_ready, Medium, TapeDrive};
use crate::lu::{reply, Completion, Nexus};

/// The one density this drive writes: vendor-specific (SSC-4 3.1: codes
/// 80h and above), reported by MODE SENSE and REPORT DENSITY SUPPORT.
pub const DENSITY_CODE: u8 = 0x80;
/// MODE SELECT density "no change" (SSC-4 8.3.3 note).
const DENSITY_NO_CHANGE: u8 = 0x7f;
/// Device-specific parameter: BUFFERED MODE 1 (SSC-4 8.3.3); bit 7 is WP.
const BUFFERED_MODE_1: u8 = 0x10;

/// How a MODE SENSE or SELECT CDB was parsed, from either length.
struct SenseRequest {
    dbd: bool,
    pc: u8,
    page: u8,
    subpage: u8,
    alloc: usize,
    ten: bool,
}

impl<M: Medium> TapeDrive<M> {
    /// The commands served without a threaded medium; `None` for the
    /// motion commands.
    pub(super) fn control(
        &mut self,
        nexus: &Nexus,
        op: Opcode,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> Option<Completion> {
        Some(match op {
            Opcode::MODE_SENSE_6 => match ModeSense6::parse(cdb) {
                Ok(m) => self.mode_sense(
                    SenseRequest {
                        dbd: m.dbd,
                        pc: m.pc,
                        page: m.page_code,
                        subpage: m.subpage_code,
                        alloc: m.alloc_len as usize,
                        ten: false,
                    },
                    data_in,
                ),
                Err(_) => Completion::bad_field(0),
            },
            Opcode::MODE_SENSE_10 => match ModeSense10::parse(cdb) {
                Ok(m) => self.mode_sense(
                    SenseRequest {
                        dbd: m.dbd,
                        pc: m.pc,
                        page: m.page_code,
                        subpage: m.subpage_code,
                        alloc: m.alloc_len as usize,
                        ten: true,
                    },
                    data_in,
                ),
                Err(_) => Completion::bad_field(0),
            },
            Opcode::MODE_SELECT_6 | Opcode::MODE_SELECT_10 => {
                self.mode_select(nexus, cdb, data_out)
            }
            Opcode::READ_BLOCK_LIMITS => match ReadBlockLimits::parse(cdb) {
                Ok(_) => reply(data_in, &self.block_limits().to_vec()),
                Err(_) => Completion::bad_field(0),
            },
            Opcode::REPORT_DENSITY_SUPPORT => self.report_density(cdb, data_in),
            // SSC-4 7.5: PREVENT 10b and 11b are reserved (the codec refuses them).
            Opcode::PREVENT_ALLOW_MEDIUM_REMOVAL => match PreventAllowMediumRemoval::parse(cdb) {
                Ok(p) => {
                    self.prevent = p.prevent;
                    Completion::good(0)
                }
                Err(_) => Completion::bad_field(4),
            },
            Opcode::LOAD_UNLOAD => self.load_unload(nexus, cdb),
            _ => return None,
        })
    }

    /// READ BLOCK LIMITS (SSC-4 7.6): in fixed-block mode the one length
    /// (max = min), else 1 byte to [`TapeDrive::MAX_BLOCK`].
    fn block_limits(&self) -> BlockLimits {
        match self.settings.block_length {
            0 => BlockLimits {
                granularity: 0,
                max_block_length: Self::MAX_BLOCK,
                min_block_length: 1,
            },
            n => BlockLimits {
                granularity: 0,
                max_block_length: n,
                min_block_length: n.min(u16::MAX as u32) as u16,
            },
        }
    }

    /// LOAD UNLOAD (SSC-4 7.3): LOAD threads the cartridge in the drive
    /// (at BOP); UNLOAD makes it durable, rewinds and unthreads it, unless
    /// removal is prevented (ILLEGAL REQUEST 53/02). HOLD, EOT and RETEN
    /// are accepted and have no further effect.
    fn load_unload(&mut self, nexus: &Nexus, cdb: &[u8]) -> Completion {
        let Ok(l) = LoadUnload::parse(cdb) else {
            return Completion::bad_field(0);
        };
        if self.slot.is_none() {
            return not_ready(Asc::MEDIUM_NOT_PRESENT);
        }
        self.pos = 0;
        if l.load {
            if !self.ready {
                self.ready = true;
                self.attention
                    .post(Asc::NOT_READY_TO_READY_CHANGE, Some(nexus));
            }
            return Completion::good(0);
        }
        if self.prevent {
            return Completion::illegal(Asc::MEDIUM_REMOVAL_PREVENTED);
        }
        self.ready = false;
        match self.slot.as_mut().map(|s| s.medium.sync()) {
            Some(Err(_)) => Completion::check(Sense::new(SenseKey::MEDIUM_ERROR, Asc::WRITE_ERROR)),
            _ => Completion::good(0),
        }
    }

    /// REPORT DENSITY SUPPORT (SSC-4 6.13): the one density. MEDIUM TYPE
    /// reports are not supported (INVALID FIELD IN CDB).
    fn report_density(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let r = match ReportDensitySupport::parse(cdb) {
            Ok(r) if !r.medium_type => r,
            _ => return Completion::bad_field(1),
        };
        if r.media && self.slot.is_none() {
            return not_ready(Asc::MEDIUM_NOT_PRESENT);
        }
        let capacity = self.slot.as_ref().map_or(0, |l| l.medium.capacity());
        let d = DensitySupport {
            descriptors: vec![DensityDescriptor {
                primary_code: DENSITY_CODE,
                secondary_code: DENSITY_CODE,
                write_ok: !(r.media && self.write_protected()),
                dup: false,
                default: true,
                bits_per_mm: 0,
                media_width: 0,
                tracks: 0,
                capacity_mb: (capacity / 1_000_000).min(u32::MAX as u64) as u32,
                organization: "SANMOVER".into(),
                name: "IMAGE".into(),
                description: "sanmover tape image".into(),
            }],
        };
        let n = (r.alloc_len as usize).min(data_in.len());
        reply(&mut data_in[..n], &d.to_vec())
    }

    /// The pages asked for, in PC's flavour; `None` for an unknown page.
    /// Page 0 asks for none: the header and block descriptor only (what
    /// `mt` and the device layer ask for).
    fn pages(&self, page: u8, subpage: u8, changeable: bool) -> Option<Vec<u8>> {
        if page == 0 && subpage == 0 {
            return Some(Vec::new());
        }
        let s = &self.settings;
        let comp = if changeable {
            DataCompressionPage {
                dce: true,
                ..Default::default()
            }
        } else {
            DataCompressionPage {
                dce: s.compression,
                dcc: true,
                dde: true,
                ..Default::default()
            }
        };
        let config = if changeable {
            DeviceConfigurationPage {
                flags8: DeviceConfigurationPage::REW,
                flags10: DeviceConfigurationPage::SEW,
                ..Default::default()
            }
        } else {
            s.config
        };
        let ext = DeviceConfigurationExtension {
            pews: if changeable { 0xffff } else { s.pews },
            ..Default::default()
        };
        let medium = MediumConfigurationPage::default();
        let mut v = Vec::new();
        let all = page == ALL_PAGES;
        if (all || page == DATA_COMPRESSION_PAGE) && matches!(subpage, 0 | 0xff) {
            v.extend(comp.emit(false));
        }
        if all || page == DEVICE_CONFIGURATION_PAGE {
            if matches!(subpage, 0 | 0xff) {
                v.extend(config.emit(false));
            }
            if matches!(subpage, DEVICE_CONFIGURATION_EXTENSION | 0xff) {
                v.extend(ext.emit(false));
            }
        }
        if (all || page == MEDIUM_CONFIGURATION_PAGE) && matches!(subpage, 0 | 0xff) {
            v.extend(medium.emit(false));
        }
        (!v.is_empty()).then_some(v)
    }

    /// MODE SENSE(6/10) (SPC-4 6.13, 6.14; SSC-4 8.3): header with WP and
    /// BUFFERED MODE 1, one block descriptor unless DBD, then the pages.
    fn mode_sense(&mut self, r: SenseRequest, data_in: &mut [u8]) -> Completion {
        if r.pc == page_control::SAVED {
            return Completion::illegal(Asc::SAVING_PARAMETERS_NOT_SUPPORTED);
        }
        let changeable = r.pc == page_control::CHANGEABLE;
        let Some(pages) = self.pages(r.page, r.subpage, changeable) else {
            return Completion::bad_field(2);
        };
        let bd = if changeable {
            BlockDescriptor {
                density_code: 0,
                blocks: 0,
                block_length: 0xff_ffff,
            }
        } else {
            BlockDescriptor {
                density_code: DENSITY_CODE,
                blocks: 0,
                block_length: self.settings.block_length,
            }
        };
        let wp = !changeable && self.write_protected();
        let mp = ModeParameters {
            medium_type: 0,
            device_specific: (wp as u8) << 7 | if changeable { 0 } else { BUFFERED_MODE_1 },
            block_descriptors: if r.dbd { vec![] } else { vec![bd] },
            pages,
        };
        let bytes = if r.ten { mp.emit10() } else { mp.emit6() };
        let n = r.alloc.min(data_in.len());
        reply(&mut data_in[..n], &bytes)
    }

    /// MODE SELECT(6/10) (SPC-4 6.11, 6.12): the block descriptor's density
    /// and block length, and the changeable fields of the pages. SP (save)
    /// is refused; other nexuses see MODE PARAMETERS CHANGED (2A/01).
    fn mode_select(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Completion {
        let (sp, len, ten) = if cdb.first() == Some(&Opcode::MODE_SELECT_6.0) {
            match ModeSelect6::parse(cdb) {
                Ok(m) => (m.sp, m.param_len as usize, false),
                Err(_) => return Completion::bad_field(0),
            }
        } else {
            match ModeSelect10::parse(cdb) {
                Ok(m) => (m.sp, m.param_len as usize, true),
                Err(_) => return Completion::bad_field(0),
            }
        };
        if sp {
            return Completion::bad_field(1);
        }
        if len > data_out.len() {
            return Completion::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR);
        }
        let list = &data_out[..len];
        if len == 0 {
            return Completion::good(0);
        }
        let parsed = if ten {
            ModeParameters::parse10(list)
        } else {
            ModeParameters::parse6(list)
        };
        let Ok(mp) = parsed else {
            return Completion::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR);
        };
        match self.selected(&mp) {
            Ok(s) => {
                self.settings = s;
                self.attention
                    .post(Asc::MODE_PARAMETERS_CHANGED, Some(nexus));
                Completion::good(0)
            }
            Err(()) => Completion::illegal(Asc::INVALID_FIELD_IN_PARAMETER_LIST),
        }
    }

    /// The settings a MODE SELECT list asks for, or `Err` when it sets
    /// something that cannot be changed.
    fn selected(&self, mp: &ModeParameters) -> Result<super::Settings, ()> {
        let mut s = self.settings;
        if let Some(bd) = mp.block_descriptors.first() {
            if ![0, DENSITY_CODE, DENSITY_NO_CHANGE].contains(&bd.density_code)
                || bd.block_length > Self::MAX_BLOCK
            {
                return Err(());
            }
            s.block_length = bd.block_length;
        }
        for p in mp.iter_pages() {
            match (p.page_code, p.subpage_code) {
                (DATA_COMPRESSION_PAGE, 0) => {
                    s.compression = DataCompressionPage::parse(p.data).map_err(|_| ())?.dce;
                }
                (DEVICE_CONFIGURATION_PAGE, 0) => {
                    let c = DeviceConfigurationPage::parse(p.data).map_err(|_| ())?;
                    if c.active_partition != 0 || c.active_format != 0 {
                        return Err(());
                    }
                    s.config = c;
                }
                (DEVICE_CONFIGURATION_PAGE, DEVICE_CONFIGURATION_EXTENSION) => {
                    s.pews = DeviceConfigurationExtension::parse(p.data)
                        .map_err(|_| ())?
                        .pews;
                }
                (MEDIUM_CONFIGURATION_PAGE, 0) => {
                    if MediumConfigurationPage::parse(p.data)
                        .map_err(|_| ())?
                        .wormm
                    {
                        return Err(());
                    }
                }
                _ => return Err(()),
            }
        }
        Ok(s)
    }
}
