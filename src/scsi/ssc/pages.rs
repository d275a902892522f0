//! The SSC-4 mode pages a tape drive serves (SSC-4 8.3): data compression
//! (0Fh), device configuration (10h) and its extension (10h/01h, which
//! holds the programmable early-warning size), and medium configuration
//! (1Dh). Each page is a plain struct: `parse` takes the page parameters
//! after the page header (what [`crate::scsi::spc::ModePage::data`] holds)
//! and checks their length; `emit` writes the whole page with its header.

use super::super::{be_uint, need, put_be, ParseError};

/// Page codes.
pub const DATA_COMPRESSION_PAGE: u8 = 0x0f;
pub const DEVICE_CONFIGURATION_PAGE: u8 = 0x10;
/// Subpage of 10h.
pub const DEVICE_CONFIGURATION_EXTENSION: u8 = 0x01;
pub const MEDIUM_CONFIGURATION_PAGE: u8 = 0x1d;

/// A page_0 format page: code (with PS), length, parameters.
fn page0(code: u8, ps: bool, params: &[u8]) -> Vec<u8> {
    let mut v = vec![(ps as u8) << 7 | (code & 0x3f), params.len() as u8];
    v.extend_from_slice(params);
    v
}

/// Data compression page, 0Fh (SSC-4 8.3.2): 14 parameter bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DataCompressionPage {
    /// DCE: compress data written.
    pub dce: bool,
    /// DCC: the drive can compress (read-only for the initiator).
    pub dcc: bool,
    /// DDE: decompress data read.
    pub dde: bool,
    /// RED, 2 bits: report exception on decompression.
    pub red: u8,
    pub compression_algorithm: u32,
    pub decompression_algorithm: u32,
}

impl DataCompressionPage {
    pub const PARAMS: usize = 14;

    pub fn parse(p: &[u8]) -> Result<Self, ParseError> {
        need("data compression page", p, Self::PARAMS)?;
        Ok(DataCompressionPage {
            dce: p[0] & 0x80 != 0,
            dcc: p[0] & 0x40 != 0,
            dde: p[1] & 0x80 != 0,
            red: (p[1] >> 5) & 0x03,
            compression_algorithm: be_uint(&p[2..6]) as u32,
            decompression_algorithm: be_uint(&p[6..10]) as u32,
        })
    }

    pub fn emit(&self, ps: bool) -> Vec<u8> {
        let mut p = [0u8; Self::PARAMS];
        p[0] = (self.dce as u8) << 7 | (self.dcc as u8) << 6;
        p[1] = (self.dde as u8) << 7 | (self.red & 0x03) << 5;
        put_be(&mut p[2..6], self.compression_algorithm as u64);
        put_be(&mut p[6..10], self.decompression_algorithm as u64);
        page0(DATA_COMPRESSION_PAGE, ps, &p)
    }
}

/// Device configuration page, 10h (SSC-4 8.3.3): 14 parameter bytes. The
/// fields a host sets are named; the buffer ratios and gap size are kept
/// as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DeviceConfigurationPage {
    pub active_format: u8,
    pub active_partition: u8,
    pub write_buffer_full_ratio: u8,
    pub read_buffer_empty_ratio: u8,
    /// WRITE DELAY TIME, 100 ms units.
    pub write_delay: u16,
    /// Byte 8: OBR, LOIS, RSMK, AVC, SOCF (2 bits), ROBO, REW.
    pub flags8: u8,
    pub gap_size: u8,
    /// EOD DEFINED, 3 bits.
    pub eod_defined: u8,
    /// Byte 10 bits 4..0: EEG, SEW, SWP, BAML, BAM.
    pub flags10: u8,
    /// OBJECT BUFFER SIZE AT EARLY WARNING, 24 bits.
    pub buffer_size_at_ew: u32,
    /// SELECT DATA COMPRESSION ALGORITHM.
    pub select_compression: u8,
    /// Byte 15: WTRE (2 bits), OIR.
    pub flags15: u8,
}

impl DeviceConfigurationPage {
    pub const PARAMS: usize = 14;
    /// REW, byte 8 bit 0: report early warning on reads too.
    pub const REW: u8 = 0x01;
    /// SEW, byte 10 bit 3: synchronize at early warning.
    pub const SEW: u8 = 0x08;

    pub fn parse(p: &[u8]) -> Result<Self, ParseError> {
        need("device configuration page", p, Self::PARAMS)?;
        Ok(DeviceConfigurationPage {
            active_format: p[0] & 0x1f,
            active_partition: p[1],
            write_buffer_full_ratio: p[2],
            read_buffer_empty_ratio: p[3],
            write_delay: be_uint(&p[4..6]) as u16,
            flags8: p[6],
            gap_size: p[7],
            eod_defined: p[8] >> 5,
            flags10: p[8] & 0x1f,
            buffer_size_at_ew: be_uint(&p[9..12]) as u32,
            select_compression: p[12],
            flags15: p[13] & 0x07,
        })
    }

    pub fn emit(&self, ps: bool) -> Vec<u8> {
        let mut p = [0u8; Self::PARAMS];
        p[0] = self.active_format & 0x1f;
        p[1] = self.active_partition;
        p[2] = self.write_buffer_full_ratio;
        p[3] = self.read_buffer_empty_ratio;
        put_be(&mut p[4..6], self.write_delay as u64);
        p[6] = self.flags8;
        p[7] = self.gap_size;
        p[8] = (self.eod_defined & 0x07) << 5 | (self.flags10 & 0x1f);
        put_be(&mut p[9..12], (self.buffer_size_at_ew & 0xff_ffff) as u64);
        p[12] = self.select_compression;
        p[13] = self.flags15 & 0x07;
        page0(DEVICE_CONFIGURATION_PAGE, ps, &p)
    }
}

/// Device configuration extension subpage, 10h/01h (SSC-4 8.3.4), sub_page
/// format with 28 parameter bytes: PEWS, the programmable early-warning
/// size, is bytes 6..8 of the page (2..4 of the parameters), in megabytes
/// (10^6 bytes) before the early-warning point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DeviceConfigurationExtension {
    /// Byte 4 bits 3..0: TARPF, TASER, TARPT, TRWE.
    pub flags4: u8,
    /// Byte 5: WRITE MODE (bits 7..4), SHORT ERASE MODE (bits 1..0).
    pub byte5: u8,
    pub pews: u16,
}

impl DeviceConfigurationExtension {
    pub const PARAMS: usize = 28;

    pub fn parse(p: &[u8]) -> Result<Self, ParseError> {
        need("device configuration extension page", p, Self::PARAMS)?;
        Ok(DeviceConfigurationExtension {
            flags4: p[0] & 0x0f,
            byte5: p[1],
            pews: be_uint(&p[2..4]) as u16,
        })
    }

    pub fn emit(&self, ps: bool) -> Vec<u8> {
        let mut v = vec![0u8; 4 + Self::PARAMS];
        // SPF (bit 6) set: 4-byte header with subpage and 16-bit length.
        v[0] = (ps as u8) << 7 | 0x40 | DEVICE_CONFIGURATION_PAGE;
        v[1] = DEVICE_CONFIGURATION_EXTENSION;
        put_be(&mut v[2..4], Self::PARAMS as u64);
        v[4] = self.flags4 & 0x0f;
        v[5] = self.byte5;
        put_be(&mut v[6..8], self.pews as u64);
        v
    }
}

/// Medium configuration page, 1Dh (SSC-4 8.3.7): 30 parameter bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MediumConfigurationPage {
    /// WORMM: the mounted medium is WORM.
    pub wormm: bool,
    pub worm_label_restrictions: u8,
    pub worm_filemark_restrictions: u8,
}

impl MediumConfigurationPage {
    pub const PARAMS: usize = 30;

    pub fn parse(p: &[u8]) -> Result<Self, ParseError> {
        need("medium configuration page", p, Self::PARAMS)?;
        Ok(MediumConfigurationPage {
            wormm: p[0] & 0x01 != 0,
            worm_label_restrictions: p[2],
            worm_filemark_restrictions: p[3],
        })
    }

    pub fn emit(&self, ps: bool) -> Vec<u8> {
        let mut p = [0u8; Self::PARAMS];
        p[0] = self.wormm as u8;
        p[2] = self.worm_label_restrictions;
        p[3] = self.worm_filemark_restrictions;
        page0(MEDIUM_CONFIGURATION_PAGE, ps, &p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::spc::ModeParameters;
    use proptest::prelude::*;

    /// The page found in a mode parameter list by the SPC codec.
    fn found(bytes: &[u8], code: u8, sub: u8) -> Vec<u8> {
        let mp = ModeParameters {
            medium_type: 0,
            device_specific: 0,
            block_descriptors: vec![],
            pages: bytes.to_vec(),
        };
        mp.page(code, sub).expect("page").data.to_vec()
    }

    #[test]
    fn compression_golden() {
        let c = DataCompressionPage {
            dce: true,
            dcc: true,
            dde: true,
            red: 0,
            compression_algorithm: 1,
            decompression_algorithm: 1,
        };
        let bytes = [0x8f, 0x0e, 0xc0, 0x80, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(c.emit(true), bytes);
        let data = found(&bytes, 0x0f, 0);
        assert_eq!(DataCompressionPage::parse(&data).unwrap(), c);
        assert!(DataCompressionPage::parse(&data[..13]).is_err());
    }

    #[test]
    fn device_configuration_golden() {
        let d = DeviceConfigurationPage {
            write_buffer_full_ratio: 0x80,
            read_buffer_empty_ratio: 0x80,
            flags8: DeviceConfigurationPage::REW,
            eod_defined: 0,
            flags10: DeviceConfigurationPage::SEW,
            select_compression: 1,
            ..Default::default()
        };
        let bytes = [
            0x10, 0x0e, 0, 0, 0x80, 0x80, 0, 0, 0x01, 0, 0x08, 0, 0, 0, 1, 0,
        ];
        assert_eq!(d.emit(false), bytes);
        let data = found(&bytes, 0x10, 0);
        assert_eq!(DeviceConfigurationPage::parse(&data).unwrap(), d);
        assert!(DeviceConfigurationPage::parse(&data[..13]).is_err());
    }

    #[test]
    fn device_configuration_extension_golden() {
        let e = DeviceConfigurationExtension {
            flags4: 0,
            byte5: 0,
            pews: 0x0102,
        };
        let bytes = e.emit(true);
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[..8], &[0xd0, 0x01, 0x00, 0x1c, 0, 0, 0x01, 0x02]);
        assert!(bytes[8..].iter().all(|&b| b == 0));
        let data = found(&bytes, 0x10, 0x01);
        assert_eq!(DeviceConfigurationExtension::parse(&data).unwrap(), e);
        assert!(DeviceConfigurationExtension::parse(&data[..27]).is_err());
    }

    #[test]
    fn medium_configuration_golden() {
        let m = MediumConfigurationPage {
            wormm: true,
            worm_label_restrictions: 1,
            worm_filemark_restrictions: 2,
        };
        let bytes = m.emit(false);
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[..6], &[0x1d, 0x1e, 0x01, 0, 1, 2]);
        let data = found(&bytes, 0x1d, 0);
        assert_eq!(MediumConfigurationPage::parse(&data).unwrap(), m);
        assert!(MediumConfigurationPage::parse(&data[..29]).is_err());
    }

    proptest! {
        #[test]
        fn pages_never_panic_and_round_trip(p in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(c) = DataCompressionPage::parse(&p) {
                prop_assert_eq!(DataCompressionPage::parse(&c.emit(false)[2..]).unwrap(), c);
            }
            if let Ok(d) = DeviceConfigurationPage::parse(&p) {
                prop_assert_eq!(DeviceConfigurationPage::parse(&d.emit(false)[2..]).unwrap(), d);
            }
            if let Ok(e) = DeviceConfigurationExtension::parse(&p) {
                prop_assert_eq!(DeviceConfigurationExtension::parse(&e.emit(false)[4..]).unwrap(), e);
            }
            if let Ok(m) = MediumConfigurationPage::parse(&p) {
                prop_assert_eq!(MediumConfigurationPage::parse(&m.emit(false)[2..]).unwrap(), m);
            }
        }
    }
}
