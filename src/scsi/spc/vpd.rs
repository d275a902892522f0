//! Vital product data pages (SPC-4 7.8): supported pages (0x00), unit
//! serial number (0x80), device identification (0x83) and the SBC block
//! limits page (0xB0).

use std::fmt;

use serde::Serialize;

use super::{ascii_field, ser_hex};
use crate::scsi::{be_uint, need, open_code, put_be, DeviceType, ParseError, Wire};

open_code! {
    /// VPD page code (SPC-4 7.8.1, SBC-4 6.6.1, SSC-4 8.4).
    VpdPage(u8) {
        SUPPORTED_PAGES = 0x00 => "Supported VPD pages",
        UNIT_SERIAL = 0x80 => "Unit serial number",
        DEVICE_IDENTIFICATION = 0x83 => "Device identification",
        SOFTWARE_INTERFACE_IDENTIFICATION = 0x84 => "Software interface identification",
        MANAGEMENT_NETWORK_ADDRESSES = 0x85 => "Management network addresses",
        EXTENDED_INQUIRY = 0x86 => "Extended INQUIRY data",
        MODE_PAGE_POLICY = 0x87 => "Mode page policy",
        SCSI_PORTS = 0x88 => "SCSI ports",
        ATA_INFORMATION = 0x89 => "ATA information",
        POWER_CONDITION = 0x8a => "Power condition",
        THIRD_PARTY_COPY = 0x8f => "Third-party copy",
        BLOCK_LIMITS = 0xb0 => "Block limits",
        BLOCK_DEVICE_CHARACTERISTICS = 0xb1 => "Block device characteristics",
        LOGICAL_BLOCK_PROVISIONING = 0xb2 => "Logical block provisioning",
    }
}

impl From<VpdPage> for u8 {
    fn from(p: VpdPage) -> u8 {
        p.0
    }
}

impl VpdPage {
    /// SSC-4 8.4.2 reuses 0xB0 for "Sequential-access device capabilities".
    pub const SEQUENTIAL_ACCESS_CAPABILITIES: VpdPage = VpdPage(0xb0);
}

/// The total length of a VPD page (PAGE LENGTH + 4), from its first 4 bytes:
/// re-issue the INQUIRY with this allocation to get the whole page.
pub fn vpd_page_len(buf: &[u8]) -> Option<usize> {
    buf.get(..4).map(|h| be_uint(&h[2..4]) as usize + 4)
}

/// The 4-byte VPD header (SPC-4 7.8.1): device type, page code check, and
/// the payload bounded by both the buffer and PAGE LENGTH. Also returns
/// whether the buffer held the whole page.
fn vpd_header<'a>(
    what: &'static str,
    buf: &'a [u8],
    page: VpdPage,
) -> Result<(DeviceType, &'a [u8], bool), ParseError> {
    need(what, buf, 4)?;
    if buf[1] != page.0 {
        return Err(ParseError::invalid(
            what,
            format!("page code {:#04x}, expected {:#04x}", buf[1], page.0),
        ));
    }
    let full = be_uint(&buf[2..4]) as usize + 4;
    let end = full.min(buf.len());
    Ok((DeviceType(buf[0] & 0x1f), &buf[4..end], end == full))
}

fn put_vpd_header(b: &mut [u8], dt: DeviceType, page: VpdPage, payload_len: usize) {
    b[0] = dt.0 & 0x1f;
    b[1] = page.0;
    put_be(&mut b[2..4], payload_len as u64);
}

/// Supported VPD pages, page 0x00 (SPC-4 7.8.15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportedVpdPages {
    pub device_type: DeviceType,
    pub pages: Vec<VpdPage>,
}

impl Wire for SupportedVpdPages {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let (device_type, p, _) = vpd_header("supported VPD pages", buf, VpdPage::SUPPORTED_PAGES)?;
        Ok(SupportedVpdPages {
            device_type,
            pages: p.iter().map(|&c| VpdPage(c)).collect(),
        })
    }

    fn buffer_len(&self) -> usize {
        4 + self.pages.len()
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        put_vpd_header(
            b,
            self.device_type,
            VpdPage::SUPPORTED_PAGES,
            self.pages.len(),
        );
        for (d, p) in b[4..].iter_mut().zip(&self.pages) {
            *d = p.0;
        }
    }
}

/// Unit serial number, page 0x80 (SPC-4 7.8.17). Leading and trailing
/// spaces are trimmed (tgt right-aligns its serial in a space-filled field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitSerialNumber {
    pub device_type: DeviceType,
    pub serial: String,
}

impl Wire for UnitSerialNumber {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let (device_type, p, _) = vpd_header("unit serial number", buf, VpdPage::UNIT_SERIAL)?;
        let start = p.iter().position(|&c| c != b' ').unwrap_or(p.len());
        Ok(UnitSerialNumber {
            device_type,
            serial: ascii_field(&p[start..]),
        })
    }

    fn buffer_len(&self) -> usize {
        4 + self.serial.len()
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        put_vpd_header(b, self.device_type, VpdPage::UNIT_SERIAL, self.serial.len());
        // Non-ASCII characters take more than one byte each; put_ascii
        // writes one '?' per character and the rest stays space.
        super::put_ascii(&mut b[4..], &self.serial);
    }
}

open_code! {
    /// CODE SET of a designation descriptor (SPC-4 7.8.6.1).
    CodeSet(u8) {
        BINARY = 1 => "binary",
        ASCII = 2 => "ASCII",
        UTF8 = 3 => "UTF-8",
    }
}

open_code! {
    /// ASSOCIATION of a designation descriptor (SPC-4 7.8.6.1).
    Association(u8) {
        LU = 0 => "logical unit",
        TARGET_PORT = 1 => "target port",
        TARGET_DEVICE = 2 => "target device",
    }
}

open_code! {
    /// DESIGNATOR TYPE (SPC-4 7.8.6.1; UUID from SPC-5).
    DesignatorType(u8) {
        VENDOR_SPECIFIC = 0 => "vendor specific",
        T10_VENDOR_ID = 1 => "T10 vendor ID",
        EUI64 = 2 => "EUI-64",
        NAA = 3 => "NAA",
        RELATIVE_TARGET_PORT = 4 => "relative target port",
        TARGET_PORT_GROUP = 5 => "target port group",
        LU_GROUP = 6 => "logical unit group",
        MD5_LU = 7 => "MD5 logical unit identifier",
        SCSI_NAME = 8 => "SCSI name string",
        PROTOCOL_SPECIFIC_PORT = 9 => "protocol specific port identifier",
        UUID = 0xa => "UUID",
    }
}

/// PROTOCOL IDENTIFIER values (SPC-4 7.6.1) seen in designators.
pub mod protocol_id {
    pub const FCP: u8 = 0;
    pub const SPI: u8 = 1;
    pub const SSA: u8 = 2;
    pub const SBP: u8 = 3;
    pub const SRP: u8 = 4;
    pub const ISCSI: u8 = 5;
    pub const SAS: u8 = 6;
    pub const ADT: u8 = 7;
    pub const ATA: u8 = 8;
    pub const UAS: u8 = 9;
    pub const SOP: u8 = 0xa;
}

/// One designation descriptor (SPC-4 7.8.6.1): a 4-byte header
/// and up to 255 bytes of designator. Also the body of an EXTENDED COPY
/// identification CSCD descriptor (SPC-4 6.4.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Designator {
    /// PROTOCOL IDENTIFIER; meaningful only when `piv` is set.
    pub protocol_id: u8,
    pub code_set: CodeSet,
    /// PIV: `protocol_id` is valid (only for port or device association).
    pub piv: bool,
    pub association: Association,
    pub designator_type: DesignatorType,
    #[serde(serialize_with = "ser_hex")]
    pub value: Vec<u8>,
}

impl Designator {
    /// Whether this designator names one logical unit (SPC-4 7.8.6.1):
    /// LU association and a naming type. Port numbers, target port and LU
    /// group numbers (LIO gives every LU group 0) and vendor-specific
    /// values are shared by many LUs, so they never identify one.
    pub fn names_lu(&self) -> bool {
        self.association == Association::LU
            && matches!(
                self.designator_type,
                DesignatorType::T10_VENDOR_ID
                    | DesignatorType::EUI64
                    | DesignatorType::NAA
                    | DesignatorType::MD5_LU
                    | DesignatorType::SCSI_NAME
                    | DesignatorType::UUID
            )
    }

    pub const HEADER_LEN: usize = 4;

    /// A binary, LU-associated designator, the usual shape for NAA and EUI-64.
    pub fn lu_binary(designator_type: DesignatorType, value: Vec<u8>) -> Self {
        Designator {
            protocol_id: 0,
            code_set: CodeSet::BINARY,
            piv: false,
            association: Association::LU,
            designator_type,
            value,
        }
    }

    /// 4 + the designator (capped at 255 bytes, the DESIGNATOR LENGTH range).
    pub fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + self.value.len().min(255)
    }

    /// Write `buffer_len()` bytes. Panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let n = self.value.len().min(255);
        let b = &mut buf[..Self::HEADER_LEN + n];
        b[0] = (self.protocol_id & 0x0f) << 4 | (self.code_set.0 & 0x0f);
        b[1] =
            (self.piv as u8) << 7 | (self.association.0 & 3) << 4 | (self.designator_type.0 & 0x0f);
        b[2] = 0;
        b[3] = n as u8;
        b[4..].copy_from_slice(&self.value[..n]);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Decode one designation descriptor from the front of `buf` (extra
    /// bytes after it are ignored); returns it and the bytes it used.
    pub fn parse(buf: &[u8]) -> Result<(Designator, usize), ParseError> {
        const W: &str = "designation descriptor";
        need(W, buf, Self::HEADER_LEN)?;
        let n = Self::HEADER_LEN + buf[3] as usize;
        need(W, buf, n)?;
        Ok((
            Designator {
                protocol_id: buf[0] >> 4,
                code_set: CodeSet(buf[0] & 0x0f),
                piv: buf[1] & 0x80 != 0,
                association: Association((buf[1] >> 4) & 3),
                designator_type: DesignatorType(buf[1] & 0x0f),
                value: buf[Self::HEADER_LEN..n].to_vec(),
            },
            n,
        ))
    }

    /// The NAA field (top nibble) of an NAA designator (SPC-4 7.8.6.6.1):
    /// 2 IEEE Extended, 3 locally assigned, 5 IEEE Registered, 6 IEEE
    /// Registered Extended.
    pub fn naa(&self) -> Option<u8> {
        if self.designator_type == DesignatorType::NAA {
            self.value.first().map(|b| b >> 4)
        } else {
            None
        }
    }

    fn is_text(&self) -> bool {
        matches!(self.code_set, CodeSet::ASCII | CodeSet::UTF8)
    }
}

/// Text of a UTF-8 or ASCII designator: NULs (SCSI name string padding,
/// SPC-4 7.8.6.11) and trailing spaces trimmed; never fails.
fn designator_text(v: &[u8]) -> String {
    let end = v
        .iter()
        .rposition(|&c| c != 0 && c != b' ')
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&v[..end])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect()
}

/// NAA as `naa.` + hex (the form iSCSI and Linux use), EUI-64 as `eui.` +
/// hex, T10 vendor ID as `VENDOR:rest` (SPC-4 7.8.6.4: 8-byte vendor then a
/// vendor-specific part), ASCII/UTF-8 designators (SCSI name string and
/// others) as text, everything else as `0x` + hex.
impl fmt::Display for Designator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.designator_type {
            DesignatorType::NAA if !self.is_text() => {
                write!(f, "naa.{}", hex::encode(&self.value))
            }
            DesignatorType::EUI64 if !self.is_text() => {
                write!(f, "eui.{}", hex::encode(&self.value))
            }
            DesignatorType::T10_VENDOR_ID => {
                let split = self.value.len().min(8);
                let vendor = ascii_field(&self.value[..split]);
                let rest = designator_text(&self.value[split..]);
                write!(f, "{vendor}:{}", rest.trim_start())
            }
            _ if self.is_text() => f.write_str(&designator_text(&self.value)),
            _ => write!(f, "0x{}", hex::encode(&self.value)),
        }
    }
}

/// Device identification, page 0x83 (SPC-4 7.8.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceIdentification {
    pub device_type: DeviceType,
    pub designators: Vec<Designator>,
}

impl DeviceIdentification {
    /// The designator that best names the logical unit, for an EXTENDED
    /// COPY identification CSCD (SPC-4 6.4.5): LU association only; a
    /// binary NAA first (IEEE Registered Extended, the 16-byte one LIO
    /// matches, before other NAA forms), then a binary EUI-64, then the
    /// other LU names in page order (T10 vendor ID, SCSI name, MD5, UUID,
    /// vendor specific). Port, group and relative-port numbers do not name
    /// a logical unit and are skipped. No length limit is applied here.
    pub fn best_lu_designator(&self) -> Option<&Designator> {
        let rank = |d: &Designator| -> Option<u8> {
            if d.association != Association::LU {
                return None;
            }
            let binary = d.code_set == CodeSet::BINARY;
            match d.designator_type {
                DesignatorType::NAA if binary && d.naa() == Some(6) => Some(0),
                DesignatorType::NAA if binary => Some(1),
                DesignatorType::EUI64 if binary => Some(2),
                DesignatorType::RELATIVE_TARGET_PORT
                | DesignatorType::TARGET_PORT_GROUP
                | DesignatorType::LU_GROUP => None,
                _ => Some(3),
            }
        };
        // min_by_key keeps the first of equal ranks: page order wins ties.
        self.designators
            .iter()
            .filter_map(|d| rank(d).map(|r| (r, d)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, d)| d)
    }
}

impl Wire for DeviceIdentification {
    /// Designators that the buffer cut off are dropped (the page may be
    /// truncated by the allocation length; see [`vpd_page_len`]); one that
    /// overruns the page's own PAGE LENGTH is an error.
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "device identification VPD page";
        let (device_type, p, whole) = vpd_header(W, buf, VpdPage::DEVICE_IDENTIFICATION)?;
        let mut designators = Vec::new();
        let mut off = 0;
        while off < p.len() {
            match Designator::parse(&p[off..]) {
                Ok((d, n)) => {
                    designators.push(d);
                    off += n;
                }
                Err(_) if !whole => break,
                Err(_) => {
                    return Err(ParseError::invalid(
                        W,
                        format!("designator at offset {} overruns the page", off + 4),
                    ))
                }
            }
        }
        Ok(DeviceIdentification {
            device_type,
            designators,
        })
    }

    fn buffer_len(&self) -> usize {
        4 + self
            .designators
            .iter()
            .map(|d| d.buffer_len())
            .sum::<usize>()
    }

    fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        put_vpd_header(
            buf,
            self.device_type,
            VpdPage::DEVICE_IDENTIFICATION,
            len - 4,
        );
        let mut off = 4;
        for d in &self.designators {
            d.emit(&mut buf[off..]);
            off += d.buffer_len();
        }
    }
}

/// Block limits, page 0xB0 (SBC-4 6.6.4). Lengths are in logical blocks;
/// 0 means "not reported" or "no limit", as the standard says per field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockLimitsVpd {
    pub device_type: DeviceType,
    /// WSNZ: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 is refused.
    pub wsnz: bool,
    pub max_compare_write: u8,
    pub optimal_granularity: u16,
    pub max_transfer_length: u32,
    pub optimal_transfer_length: u32,
    pub max_prefetch_length: u32,
    pub max_unmap_lba_count: u32,
    pub max_unmap_descriptor_count: u32,
    pub optimal_unmap_granularity: u32,
    /// UGAVALID: `unmap_granularity_alignment` is valid.
    pub ugavalid: bool,
    /// 31 bits.
    pub unmap_granularity_alignment: u32,
    pub max_write_same_length: u64,
}

/// A disk page with every field 0 ("not reported").
impl Default for BlockLimitsVpd {
    fn default() -> Self {
        BlockLimitsVpd {
            device_type: DeviceType::DISK,
            wsnz: false,
            max_compare_write: 0,
            optimal_granularity: 0,
            max_transfer_length: 0,
            optimal_transfer_length: 0,
            max_prefetch_length: 0,
            max_unmap_lba_count: 0,
            max_unmap_descriptor_count: 0,
            optimal_unmap_granularity: 0,
            ugavalid: false,
            unmap_granularity_alignment: 0,
            max_write_same_length: 0,
        }
    }
}

impl BlockLimitsVpd {
    /// PAGE LENGTH of the SBC-3/SBC-4 page (SBC-4 6.6.4).
    pub const PAGE_LEN: usize = 0x3c;
}

impl Wire for BlockLimitsVpd {
    /// Accepts the short SBC-2 page (PAGE LENGTH 0x0C) and anything the
    /// allocation length cut: fields not present are 0.
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let (device_type, p, _) = vpd_header("block limits VPD page", buf, VpdPage::BLOCK_LIMITS)?;
        // Payload offsets = page offsets - 4.
        let field =
            |off: usize, n: usize| -> u64 { p.get(off - 4..off - 4 + n).map_or(0, be_uint) };
        let uga = field(32, 4) as u32;
        Ok(BlockLimitsVpd {
            device_type,
            wsnz: field(4, 1) & 1 != 0,
            max_compare_write: field(5, 1) as u8,
            optimal_granularity: field(6, 2) as u16,
            max_transfer_length: field(8, 4) as u32,
            optimal_transfer_length: field(12, 4) as u32,
            max_prefetch_length: field(16, 4) as u32,
            max_unmap_lba_count: field(20, 4) as u32,
            max_unmap_descriptor_count: field(24, 4) as u32,
            optimal_unmap_granularity: field(28, 4) as u32,
            ugavalid: uga & 0x8000_0000 != 0,
            unmap_granularity_alignment: uga & 0x7fff_ffff,
            max_write_same_length: field(36, 8),
        })
    }

    fn buffer_len(&self) -> usize {
        4 + Self::PAGE_LEN
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..4 + Self::PAGE_LEN];
        b.fill(0);
        put_vpd_header(b, self.device_type, VpdPage::BLOCK_LIMITS, Self::PAGE_LEN);
        b[4] = self.wsnz as u8;
        b[5] = self.max_compare_write;
        put_be(&mut b[6..8], self.optimal_granularity as u64);
        put_be(&mut b[8..12], self.max_transfer_length as u64);
        put_be(&mut b[12..16], self.optimal_transfer_length as u64);
        put_be(&mut b[16..20], self.max_prefetch_length as u64);
        put_be(&mut b[20..24], self.max_unmap_lba_count as u64);
        put_be(&mut b[24..28], self.max_unmap_descriptor_count as u64);
        put_be(&mut b[28..32], self.optimal_unmap_granularity as u64);
        let uga = (self.ugavalid as u32) << 31 | (self.unmap_granularity_alignment & 0x7fff_ffff);
        put_be(&mut b[32..36], uga as u64);
        put_be(&mut b[36..44], self.max_write_same_length);
    }
}

/// Block device characteristics, page 0xB1 (SBC-4 6.6.2): the medium
/// rotation rate, product type and nominal form factor; the rest of the
/// page is kept as reserved here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockDeviceCharacteristicsVpd {
    pub device_type: DeviceType,
    /// PAGE LENGTH as sent (SBC-4: 003Ch).
    pub page_len: u16,
    /// MEDIUM ROTATION RATE, bytes 4..6: 0 not reported, 1 non-rotating.
    pub medium_rotation_rate: u16,
    /// PRODUCT TYPE, byte 6.
    pub product_type: u8,
    /// NOMINAL FORM FACTOR, byte 7 bits 3..0.
    pub nominal_form_factor: u8,
}

impl BlockDeviceCharacteristicsVpd {
    /// PAGE LENGTH of the SBC-4 page.
    pub const PAGE_LEN: usize = 0x3c;
}

impl Wire for BlockDeviceCharacteristicsVpd {
    /// Fields the allocation length cut are 0.
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let (device_type, p, _) = vpd_header(
            "block device characteristics VPD page",
            buf,
            VpdPage::BLOCK_DEVICE_CHARACTERISTICS,
        )?;
        let field =
            |off: usize, n: usize| -> u64 { p.get(off - 4..off - 4 + n).map_or(0, be_uint) };
        Ok(BlockDeviceCharacteristicsVpd {
            device_type,
            page_len: be_uint(&buf[2..4]) as u16,
            medium_rotation_rate: field(4, 2) as u16,
            product_type: field(6, 1) as u8,
            nominal_form_factor: field(7, 1) as u8 & 0x0f,
        })
    }

    fn buffer_len(&self) -> usize {
        4 + Self::PAGE_LEN
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..4 + Self::PAGE_LEN];
        b.fill(0);
        put_vpd_header(
            b,
            self.device_type,
            VpdPage::BLOCK_DEVICE_CHARACTERISTICS,
            Self::PAGE_LEN,
        );
        put_be(&mut b[4..6], self.medium_rotation_rate as u64);
        b[6] = self.product_type;
        b[7] = self.nominal_form_factor & 0x0f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn supported_pages_golden() {
        // tgt's tape LUN: 00, 80, 83, B0, B1, B2 (seen on the rig).
        let bytes = [0x01, 0x00, 0x00, 0x06, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];
        let p = SupportedVpdPages {
            device_type: DeviceType::TAPE,
            pages: [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2].map(VpdPage).to_vec(),
        };
        assert_eq!(p.to_vec(), bytes);
        assert_eq!(SupportedVpdPages::parse(&bytes), Ok(p.clone()));
        assert_eq!(vpd_page_len(&bytes), Some(10));
        // Cut by the allocation length: what fits.
        assert_eq!(
            SupportedVpdPages::parse(&bytes[..6]).unwrap().pages.len(),
            2
        );
        assert!(SupportedVpdPages::parse(&bytes[..3]).is_err());
        // Wrong page.
        assert!(UnitSerialNumber::parse(&bytes).is_err());
    }

    #[test]
    fn unit_serial_golden() {
        // tgt right-aligns "beaf11" in its 36-byte serial field.
        let mut bytes = vec![0x00, 0x80, 0x00, 36];
        bytes.extend_from_slice(&[b' '; 30]);
        bytes.extend_from_slice(b"beaf11");
        let s = UnitSerialNumber::parse(&bytes).unwrap();
        assert_eq!(s.serial, "beaf11");
        assert_eq!(s.device_type, DeviceType::DISK);

        let lio = UnitSerialNumber {
            device_type: DeviceType::DISK,
            serial: "0a1b2c3d".into(),
        };
        let want = [
            0x00, 0x80, 0x00, 0x08, b'0', b'a', b'1', b'b', b'2', b'c', b'3', b'd',
        ];
        assert_eq!(lio.to_vec(), want);
        assert_eq!(UnitSerialNumber::parse(&want), Ok(lio));
        assert!(UnitSerialNumber::parse(&want[..2]).is_err());
    }

    /// VPD 0x83 of tgt 1.0.85, target 1 LUN 1 (seen on the rig): a T10 vendor
    /// ID "IET     00010001" NUL-padded to 36 bytes, an 8-byte locally
    /// assigned NAA (tid << 32 | lun) and a 16-byte IEEE Registered
    /// Extended NAA, all LU-associated.
    fn tgt_vpd83() -> Vec<u8> {
        let mut v = vec![0x00, 0x83, 0x00, 0x48];
        v.extend_from_slice(&[0x02, 0x01, 0x00, 0x24]);
        v.extend_from_slice(b"IET     00010001");
        v.extend_from_slice(&[0; 20]);
        v.extend_from_slice(&[0x01, 0x03, 0x00, 0x08]);
        v.extend_from_slice(&[0x30, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01]);
        v.extend_from_slice(&[0x01, 0x03, 0x00, 0x10]);
        v.extend_from_slice(&[
            0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x00, 0x01,
        ]);
        assert_eq!(v.len(), 4 + 0x48);
        v
    }

    fn tgt_ident() -> DeviceIdentification {
        let mut t10 = b"IET     00010001".to_vec();
        t10.resize(36, 0);
        DeviceIdentification {
            device_type: DeviceType::DISK,
            designators: vec![
                Designator {
                    protocol_id: 0,
                    code_set: CodeSet::ASCII,
                    piv: false,
                    association: Association::LU,
                    designator_type: DesignatorType::T10_VENDOR_ID,
                    value: t10,
                },
                Designator::lu_binary(DesignatorType::NAA, vec![0x30, 0, 0, 1, 0, 0, 0, 1]),
                Designator::lu_binary(
                    DesignatorType::NAA,
                    vec![0x60, 0, 0, 0, 0, 0, 0, 0, 0x0e, 0, 0, 0, 0, 1, 0, 1],
                ),
            ],
        }
    }

    #[test]
    fn device_identification_tgt_golden() {
        let bytes = tgt_vpd83();
        let id = DeviceIdentification::parse(&bytes).unwrap();
        assert_eq!(id, tgt_ident());
        assert_eq!(tgt_ident().to_vec(), bytes);
        let shown: Vec<String> = id.designators.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            shown,
            [
                "IET:00010001",
                "naa.3000000100000001",
                "naa.60000000000000000e00000000010001"
            ]
        );
        assert_eq!(id.designators[2].naa(), Some(6));
        assert_eq!(id.designators[0].naa(), None);
        // The 16-byte NAA, not the first one on the page.
        assert_eq!(id.best_lu_designator(), Some(&id.designators[2]));
    }

    #[test]
    fn designator_json_is_hex() {
        let d = Designator::lu_binary(DesignatorType::NAA, vec![0x60, 0x01]);
        let j = serde_json::to_value(&d).unwrap();
        assert_eq!(j["value"], "6001");
        assert_eq!(j["designator_type"], 3);
    }

    #[test]
    fn device_identification_truncated() {
        let bytes = tgt_vpd83();
        // Cut inside the second designator: the first survives.
        let cut = DeviceIdentification::parse(&bytes[..50]).unwrap();
        assert_eq!(cut.designators.len(), 1);
        assert_eq!(vpd_page_len(&bytes[..50]), Some(76));
        assert!(DeviceIdentification::parse(&bytes[..3]).is_err());
        // A designator overrunning the page's own length is malformed.
        let mut bad = bytes.clone();
        bad[3] = 0x47;
        bad.pop();
        assert!(DeviceIdentification::parse(&bad).is_err());
    }

    /// LIO with a serial set: NAA 6 (OUI 0x001405), T10 "LIO-ORG", then the
    /// iSCSI port designators: relative port 1 and target port group 0,
    /// SCSI name strings for the port and the target device.
    #[test]
    fn device_identification_lio_like_golden() {
        let mut bytes = vec![0x00, 0x83, 0x00, 0x00];
        // NAA IEEE Registered Extended, LU.
        bytes.extend_from_slice(&[0x01, 0x03, 0x00, 0x10]);
        bytes.extend_from_slice(&[
            0x60, 0x01, 0x40, 0x5a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71, 0x82, 0x93, 0xa4,
            0xb5, 0xc6,
        ]);
        // T10 vendor ID, LU.
        bytes.extend_from_slice(&[0x02, 0x01, 0x00, 0x0f]);
        bytes.extend_from_slice(b"LIO-ORG a1b2c3d");
        // Relative target port 1, iSCSI, PIV, target port.
        bytes.extend_from_slice(&[0x51, 0x94, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01]);
        // Target port group 0.
        bytes.extend_from_slice(&[0x51, 0x95, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00]);
        // SCSI name string, UTF-8, target port, NUL padded to a multiple of 4.
        let port = b"iqn.2003-01.org.linux-iscsi.x:t,t,0x0001\0\0\0\0";
        bytes.extend_from_slice(&[0x53, 0x98, 0x00, port.len() as u8]);
        bytes.extend_from_slice(port);
        // SCSI name string, target device.
        let dev = b"iqn.2003-01.org.linux-iscsi.x:t\0";
        bytes.extend_from_slice(&[0x53, 0xa8, 0x00, dev.len() as u8]);
        bytes.extend_from_slice(dev);
        let n = bytes.len() - 4;
        bytes[3] = n as u8;

        let id = DeviceIdentification::parse(&bytes).unwrap();
        assert_eq!(id.designators.len(), 6);
        let rtp = &id.designators[2];
        assert_eq!(rtp.protocol_id, protocol_id::ISCSI);
        assert!(rtp.piv);
        assert_eq!(rtp.association, Association::TARGET_PORT);
        assert_eq!(rtp.designator_type, DesignatorType::RELATIVE_TARGET_PORT);
        assert_eq!(rtp.to_string(), "0x00000001");
        assert_eq!(
            id.designators[3].designator_type,
            DesignatorType::TARGET_PORT_GROUP
        );
        let name = &id.designators[4];
        assert_eq!(name.code_set, CodeSet::UTF8);
        assert_eq!(name.designator_type, DesignatorType::SCSI_NAME);
        assert_eq!(name.to_string(), "iqn.2003-01.org.linux-iscsi.x:t,t,0x0001");
        assert_eq!(id.designators[5].association, Association::TARGET_DEVICE);
        assert_eq!(id.designators[1].to_string(), "LIO-ORG:a1b2c3d");
        assert_eq!(
            id.designators[0].to_string(),
            "naa.6001405a1b2c3d4e5f60718293a4b5c6"
        );
        assert_eq!(id.best_lu_designator(), Some(&id.designators[0]));
        assert_eq!(id.to_vec(), bytes);
    }

    #[test]
    fn designator_single_golden() {
        let d = Designator {
            protocol_id: 5,
            code_set: CodeSet::BINARY,
            piv: true,
            association: Association::TARGET_DEVICE,
            designator_type: DesignatorType::EUI64,
            value: vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        let bytes = [0x51, 0xa2, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(d.to_vec(), bytes);
        assert_eq!(d.buffer_len(), 12);
        // Trailing bytes are not part of it.
        let mut more = bytes.to_vec();
        more.push(0xff);
        assert_eq!(Designator::parse(&more), Ok((d.clone(), 12)));
        assert!(Designator::parse(&bytes[..11]).is_err());
        assert!(Designator::parse(&bytes[..3]).is_err());
        assert_eq!(d.to_string(), "eui.0102030405060708");
    }

    #[test]
    fn designator_display_forms() {
        let mut d = Designator::lu_binary(DesignatorType::VENDOR_SPECIFIC, vec![0xde, 0xad]);
        assert_eq!(d.to_string(), "0xdead");
        d.code_set = CodeSet::ASCII;
        d.value = b"serial 42  ".to_vec();
        assert_eq!(d.to_string(), "serial 42");
        let uuid = Designator::lu_binary(DesignatorType::UUID, vec![0x10; 18]);
        assert_eq!(uuid.to_string(), format!("0x{}", "10".repeat(18)));
        let t10_short = Designator {
            code_set: CodeSet::ASCII,
            designator_type: DesignatorType::T10_VENDOR_ID,
            ..Designator::lu_binary(DesignatorType::NAA, b"ACME".to_vec())
        };
        assert_eq!(t10_short.to_string(), "ACME:");
    }

    #[test]
    fn only_naming_designators_name_an_lu() {
        let naa = Designator::lu_binary(DesignatorType::NAA, vec![0x60; 16]);
        let group = Designator::lu_binary(DesignatorType::LU_GROUP, vec![0; 4]);
        let vendor = Designator::lu_binary(DesignatorType::VENDOR_SPECIFIC, b"x".to_vec());
        let port_naa = Designator {
            association: Association::TARGET_PORT,
            ..naa.clone()
        };
        assert!(naa.names_lu());
        assert!(!group.names_lu() && !vendor.names_lu() && !port_naa.names_lu());
    }

    #[test]
    fn best_lu_designator_order() {
        let port_naa = Designator {
            association: Association::TARGET_PORT,
            ..Designator::lu_binary(DesignatorType::NAA, vec![0x60; 16])
        };
        let eui = Designator::lu_binary(DesignatorType::EUI64, vec![2; 8]);
        let naa5 = Designator::lu_binary(DesignatorType::NAA, vec![0x50; 8]);
        let ascii_naa = Designator {
            code_set: CodeSet::ASCII,
            ..Designator::lu_binary(DesignatorType::NAA, vec![0x36; 16])
        };
        let vendor = Designator {
            code_set: CodeSet::ASCII,
            ..Designator::lu_binary(DesignatorType::VENDOR_SPECIFIC, b"x".to_vec())
        };
        let lu_group = Designator::lu_binary(DesignatorType::LU_GROUP, vec![0, 0, 0, 1]);
        let mk = |d: Vec<&Designator>| DeviceIdentification {
            device_type: DeviceType::DISK,
            designators: d.into_iter().cloned().collect(),
        };
        let id = mk(vec![&port_naa, &vendor, &eui, &naa5]);
        assert_eq!(id.best_lu_designator(), Some(&naa5));
        let id = mk(vec![&port_naa, &ascii_naa, &vendor, &eui]);
        assert_eq!(id.best_lu_designator(), Some(&eui));
        let id = mk(vec![&lu_group, &ascii_naa, &vendor]);
        assert_eq!(id.best_lu_designator(), Some(&ascii_naa));
        let id = mk(vec![&port_naa, &lu_group]);
        assert_eq!(id.best_lu_designator(), None);
    }

    fn lio_block_limits() -> BlockLimitsVpd {
        BlockLimitsVpd {
            device_type: DeviceType::DISK,
            wsnz: true,
            max_compare_write: 1,
            optimal_granularity: 1,
            max_transfer_length: 0x2000,
            optimal_transfer_length: 0x2000,
            max_prefetch_length: 0,
            max_unmap_lba_count: 0x1234,
            max_unmap_descriptor_count: 1,
            optimal_unmap_granularity: 8,
            ugavalid: true,
            unmap_granularity_alignment: 3,
            max_write_same_length: 0xffff,
        }
    }

    fn lio_block_limits_bytes() -> Vec<u8> {
        let mut v = vec![0x00, 0xb0, 0x00, 0x3c];
        v.extend_from_slice(&[0x01, 0x01, 0x00, 0x01]); // WSNZ, MCAWL, OTLG
        v.extend_from_slice(&[0x00, 0x00, 0x20, 0x00]); // max transfer
        v.extend_from_slice(&[0x00, 0x00, 0x20, 0x00]); // optimal transfer
        v.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]); // max prefetch
        v.extend_from_slice(&[0x00, 0x00, 0x12, 0x34]); // max unmap LBAs
        v.extend_from_slice(&[0x00, 0x00, 0x00, 0x01]); // max unmap descriptors
        v.extend_from_slice(&[0x00, 0x00, 0x00, 0x08]); // optimal unmap granularity
        v.extend_from_slice(&[0x80, 0x00, 0x00, 0x03]); // UGAVALID + alignment
        v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0xff, 0xff]); // max write same
        v.resize(64, 0);
        v
    }

    #[test]
    fn block_limits_golden() {
        let bytes = lio_block_limits_bytes();
        assert_eq!(lio_block_limits().to_vec(), bytes);
        assert_eq!(BlockLimitsVpd::parse(&bytes), Ok(lio_block_limits()));
        assert!(BlockLimitsVpd::parse(&bytes[..3]).is_err());
        assert!(BlockLimitsVpd::parse(&tgt_vpd83()).is_err());
    }

    #[test]
    fn block_limits_short_form() {
        // SBC-2 page: PAGE LENGTH 0x0C, fields through OPTIMAL TRANSFER LENGTH.
        let mut bytes = lio_block_limits_bytes();
        bytes[3] = 0x0c;
        let short = BlockLimitsVpd::parse(&bytes).unwrap();
        assert_eq!(
            short,
            BlockLimitsVpd {
                max_prefetch_length: 0,
                max_unmap_lba_count: 0,
                max_unmap_descriptor_count: 0,
                optimal_unmap_granularity: 0,
                ugavalid: false,
                unmap_granularity_alignment: 0,
                max_write_same_length: 0,
                ..lio_block_limits()
            }
        );
        // Same when the buffer is what is short.
        assert_eq!(
            BlockLimitsVpd::parse(&lio_block_limits_bytes()[..16]),
            Ok(short)
        );
        // A field cut in half counts as missing.
        let half = BlockLimitsVpd::parse(&lio_block_limits_bytes()[..10]).unwrap();
        assert_eq!(half.max_transfer_length, 0);
        assert_eq!(half.optimal_granularity, 1);
    }

    fn arb_designator() -> impl Strategy<Value = Designator> {
        (
            0u8..16,
            0u8..16,
            any::<bool>(),
            0u8..4,
            0u8..16,
            proptest::collection::vec(any::<u8>(), 0..=255),
        )
            .prop_map(|(p, c, piv, a, t, value)| Designator {
                protocol_id: p,
                code_set: CodeSet(c),
                piv,
                association: Association(a),
                designator_type: DesignatorType(t),
                value,
            })
    }

    proptest! {
        #[test]
        fn vpd_parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SupportedVpdPages::parse(&b);
            let _ = UnitSerialNumber::parse(&b);
            let _ = DeviceIdentification::parse(&b);
            let _ = BlockLimitsVpd::parse(&b);
            let _ = Designator::parse(&b);
            if let Ok((d, _)) = Designator::parse(&b) {
                let _ = d.to_string();
            }
        }

        #[test]
        fn vpd_parsers_never_panic_with_page_code(
            page in prop_oneof![Just(0u8), Just(0x80), Just(0x83), Just(0xb0)],
            mut b in proptest::collection::vec(any::<u8>(), 4..300),
        ) {
            b[1] = page;
            let _ = SupportedVpdPages::parse(&b);
            let _ = UnitSerialNumber::parse(&b);
            if let Ok(id) = DeviceIdentification::parse(&b) {
                let _ = id.best_lu_designator();
                for d in &id.designators {
                    let _ = d.to_string();
                }
            }
            let _ = BlockLimitsVpd::parse(&b);
        }

        #[test]
        fn device_identification_round_trip(
            dt in 0u8..32,
            designators in proptest::collection::vec(arb_designator(), 0..6),
        ) {
            let id = DeviceIdentification { device_type: DeviceType(dt), designators };
            prop_assert_eq!(DeviceIdentification::parse(&id.to_vec()), Ok(id));
        }

        #[test]
        fn supported_pages_round_trip(pages in proptest::collection::vec(any::<u8>(), 0..64)) {
            let p = SupportedVpdPages {
                device_type: DeviceType::DISK,
                pages: pages.into_iter().map(VpdPage).collect(),
            };
            prop_assert_eq!(SupportedVpdPages::parse(&p.to_vec()), Ok(p));
        }

        #[test]
        fn block_limits_round_trip(
            wsnz: bool, mcw: u8, og: u16,
            a: u32, b: u32, c: u32, d: u32, e: u32, f: u32,
            ugavalid: bool, uga in 0u32..0x8000_0000, ws: u64,
        ) {
            let l = BlockLimitsVpd {
                device_type: DeviceType::DISK,
                wsnz,
                max_compare_write: mcw,
                optimal_granularity: og,
                max_transfer_length: a,
                optimal_transfer_length: b,
                max_prefetch_length: c,
                max_unmap_lba_count: d,
                max_unmap_descriptor_count: e,
                optimal_unmap_granularity: f,
                ugavalid,
                unmap_granularity_alignment: uga,
                max_write_same_length: ws,
            };
            prop_assert_eq!(BlockLimitsVpd::parse(&l.to_vec()), Ok(l));
        }
    }

    proptest! {
        #[test]
        fn block_device_characteristics_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = BlockDeviceCharacteristicsVpd::parse(&b);
        }
    }

    #[test]
    fn block_device_characteristics_golden() {
        // A non-rotating disk, form factor 2.5" (SBC-4 6.6.2).
        let mut bytes = vec![0u8; 64];
        bytes[1] = 0xb1;
        bytes[3] = 0x3c;
        bytes[5] = 0x01;
        bytes[7] = 0x03;
        let p = BlockDeviceCharacteristicsVpd::parse(&bytes).unwrap();
        assert_eq!(p.medium_rotation_rate, 1);
        assert_eq!(p.nominal_form_factor, 3);
        assert_eq!(p.page_len, 0x3c);
        assert_eq!(p.to_vec(), bytes);
        assert!(BlockDeviceCharacteristicsVpd::parse(&bytes[..3]).is_err());
        let mut wrong = bytes.clone();
        wrong[1] = 0xb0;
        assert!(BlockDeviceCharacteristicsVpd::parse(&wrong).is_err());
        // Cut by the allocation length: what is there is read.
        let cut = BlockDeviceCharacteristicsVpd::parse(&bytes[..6]).unwrap();
        assert_eq!(cut.medium_rotation_rate, 1);
        assert_eq!(cut.nominal_form_factor, 0);
    }
}
