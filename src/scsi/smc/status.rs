//! Element status data, what READ ELEMENT STATUS returns (SMC-3 6.11.2 to
//! 6.11.8): an 8-byte header, then one element status page per element
//! type, each an 8-byte page header and descriptors of one length.
//!
//! Both directions: the target side encodes it, the initiator decodes it.
//! Decoding checks every length first and never panics.

use serde::{Serialize, Serializer};

use super::{addr, put_addr, ElementAddress, ElementType};
use crate::scsi::asc::Asc;
use crate::scsi::spc::Designator;
use crate::scsi::{be_uint, need, put_be, ParseError, Wire};

bitflags::bitflags! {
    /// Element descriptor byte 2 (SMC-3 6.11.4 to 6.11.7). Which bits an
    /// element type has: FULL, EXCEPT all; ACCESS storage, import/export
    /// and data transfer; IMPEXP, EXENAB, INENAB import/export only.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ElementFlags: u8 {
        /// The element holds a unit of media.
        const FULL = 0x01;
        /// Import/export: the medium was put in by an operator (set), or
        /// by the transport (clear).
        const IMPEXP = 0x02;
        /// The element is in an abnormal state: ASC/ASCQ say which.
        const EXCEPT = 0x04;
        /// The medium transport can reach the element.
        const ACCESS = 0x08;
        /// Import/export: can take media out of the library.
        const EXENAB = 0x10;
        /// Import/export: can take media into the library.
        const INENAB = 0x20;
    }
}

impl Serialize for ElementFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.bits())
    }
}

/// A volume tag (SMC-3 6.11.9, table 35): a 32-byte VOLUME IDENTIFIER
/// (ASCII, left-aligned, space padded: the barcode) and a 16-bit VOLUME
/// SEQUENCE NUMBER. The bytes are kept as the device sent them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VolumeTag {
    pub identifier: [u8; 32],
    pub sequence: u16,
}

impl VolumeTag {
    pub const LEN: usize = 36;

    /// A tag for `label`, space padded. Fails on a label longer than 32
    /// bytes or with bytes outside printable ASCII (SMC-3 6.11.9 allows
    /// fewer still; SPC-4 4.3.1 ASCII is what tools print).
    pub fn new(label: &str, sequence: u16) -> Result<Self, ParseError> {
        if label.len() > 32 || !label.bytes().all(|c| (0x21..=0x7e).contains(&c)) {
            return Err(ParseError::invalid(
                "volume tag",
                format!("{label:?} is not 1 to 32 printable ASCII characters without spaces"),
            ));
        }
        let mut identifier = [b' '; 32];
        identifier[..label.len()].copy_from_slice(label.as_bytes());
        Ok(VolumeTag {
            identifier,
            sequence,
        })
    }

    /// All spaces: an element with no medium, or an unreadable label.
    pub fn blank() -> Self {
        VolumeTag {
            identifier: [b' '; 32],
            sequence: 0,
        }
    }

    /// The barcode: trailing spaces and NULs trimmed, bytes that are not
    /// printable ASCII shown as '.'.
    pub fn label(&self) -> String {
        crate::scsi::spc::ascii_field(&self.identifier)
    }

    /// A tag of spaces or NULs only: the changer read no label.
    pub fn is_blank(&self) -> bool {
        self.identifier.iter().all(|&c| c == b' ' || c == 0)
    }

    fn parse(b: &[u8]) -> Self {
        let mut identifier = [0u8; 32];
        identifier.copy_from_slice(&b[..32]);
        VolumeTag {
            identifier,
            sequence: be_uint(&b[34..36]) as u16,
        }
    }

    fn emit(&self, b: &mut [u8]) {
        b[..32].copy_from_slice(&self.identifier);
        b[32..34].fill(0);
        put_be(&mut b[34..36], self.sequence as u64);
    }
}

impl std::fmt::Debug for VolumeTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VolumeTag({:?}, {})", self.label(), self.sequence)
    }
}

impl Serialize for VolumeTag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

/// One element descriptor (SMC-3 6.11.4 medium transport, 6.11.5 storage,
/// 6.11.6 import/export, 6.11.7 data transfer): the 12 common bytes, the
/// volume tags the page announces, and the identification descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElementDescriptor {
    pub address: ElementAddress,
    pub flags: ElementFlags,
    /// ADDITIONAL SENSE CODE and QUALIFIER, bytes 4-5: why EXCEPT is set.
    pub asc: Asc,
    /// Bytes 6-7 of a data transfer element (NOT BUS, ID VALID, LU VALID,
    /// LUN; SCSI BUS ADDRESS), kept raw; zero (reserved) elsewhere.
    pub bus_info: [u8; 2],
    /// INVERT, byte 9 bit 6: the medium was turned over.
    pub invert: bool,
    /// ED, byte 9 bit 3: the element is disabled.
    pub ed: bool,
    /// MEDIUM TYPE, byte 9 bits 2..0 (1 data, 2 cleaning, 3 diagnostic,
    /// 4 WORM).
    pub medium_type: u8,
    /// SOURCE STORAGE ELEMENT ADDRESS when SVALID (byte 9 bit 7) is set:
    /// where the medium was last moved from.
    pub source: Option<ElementAddress>,
    pub primary_tag: Option<VolumeTag>,
    pub alternate_tag: Option<VolumeTag>,
    /// The identification descriptor (CODE SET, IDENTIFIER TYPE,
    /// IDENTIFIER LENGTH, IDENTIFIER), a designation descriptor of SPC-4
    /// 7.8.6.1: a data transfer element's device identifier when DVCID
    /// was set. `None` when IDENTIFIER LENGTH is 0.
    pub device_id: Option<Designator>,
}

const SVALID: u8 = 0x80;
const INVERT: u8 = 0x40;
const ED: u8 = 0x08;
const COMMON_LEN: usize = 12;

impl ElementDescriptor {
    /// An element at `address` with no flags and nothing else set.
    pub fn empty(address: ElementAddress) -> Self {
        ElementDescriptor {
            address,
            flags: ElementFlags::empty(),
            asc: Asc::NO_ADDITIONAL,
            bus_info: [0; 2],
            invert: false,
            ed: false,
            medium_type: 0,
            source: None,
            primary_tag: None,
            alternate_tag: None,
            device_id: None,
        }
    }

    pub fn is_full(&self) -> bool {
        self.flags.contains(ElementFlags::FULL)
    }

    /// Decode one descriptor of the length the page gives; `tags` says
    /// which volume tags the page announces (PVOLTAG, AVOLTAG).
    fn parse(b: &[u8], tags: (bool, bool)) -> Result<Self, ParseError> {
        const W: &str = "element descriptor";
        let tag_len = (tags.0 as usize + tags.1 as usize) * VolumeTag::LEN;
        need(W, b, COMMON_LEN + tag_len)?;
        let mut d = ElementDescriptor::empty(addr(&b[0..2]));
        d.flags = ElementFlags::from_bits_retain(b[2]);
        d.asc = Asc::new(b[4], b[5]);
        d.bus_info = [b[6], b[7]];
        d.invert = b[9] & INVERT != 0;
        d.ed = b[9] & ED != 0;
        d.medium_type = b[9] & 0x07;
        d.source = (b[9] & SVALID != 0).then(|| addr(&b[10..12]));
        let mut at = COMMON_LEN;
        if tags.0 {
            d.primary_tag = Some(VolumeTag::parse(&b[at..]));
            at += VolumeTag::LEN;
        }
        if tags.1 {
            d.alternate_tag = Some(VolumeTag::parse(&b[at..]));
            at += VolumeTag::LEN;
        }
        // SMC-2 descriptors end here; SMC-3 ones go on with the
        // identification descriptor, then vendor-specific bytes.
        if b.len() >= at + 4 && b[at + 3] > 0 {
            let (id, _) = Designator::parse(&b[at..]).map_err(|e| e.shifted(at))?;
            d.device_id = Some(id);
        }
        Ok(d)
    }

    /// Bytes this descriptor needs with these tags: the common part, the
    /// tags, and the 4-byte identification header plus the identifier.
    fn needed_len(&self, tags: (bool, bool)) -> usize {
        let tag_len = (tags.0 as usize + tags.1 as usize) * VolumeTag::LEN;
        let id_len = self.device_id.as_ref().map_or(4, Designator::buffer_len);
        COMMON_LEN + tag_len + id_len
    }

    /// Write into `b` (the page's descriptor length, zeroed by the caller).
    fn emit(&self, b: &mut [u8], tags: (bool, bool)) {
        put_addr(&mut b[0..2], self.address);
        b[2] = self.flags.bits();
        b[4] = self.asc.asc();
        b[5] = self.asc.ascq();
        b[6..8].copy_from_slice(&self.bus_info);
        b[9] = (self.medium_type & 0x07)
            | if self.invert { INVERT } else { 0 }
            | if self.ed { ED } else { 0 };
        if let Some(s) = self.source {
            b[9] |= SVALID;
            put_addr(&mut b[10..12], s);
        }
        let blank = VolumeTag::blank();
        let mut at = COMMON_LEN;
        for (on, tag) in [(tags.0, self.primary_tag), (tags.1, self.alternate_tag)] {
            if on {
                tag.unwrap_or(blank).emit(&mut b[at..at + VolumeTag::LEN]);
                at += VolumeTag::LEN;
            }
        }
        if let Some(id) = &self.device_id {
            id.emit(&mut b[at..]);
        }
    }
}

/// One element status page (SMC-3 6.11.3): the descriptors of one
/// element type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElementStatusPage {
    pub element_type: ElementType,
    /// PVOLTAG: every descriptor carries a primary volume tag.
    pub pvoltag: bool,
    /// AVOLTAG: every descriptor carries an alternate volume tag.
    pub avoltag: bool,
    pub descriptors: Vec<ElementDescriptor>,
}

impl ElementStatusPage {
    pub const HEADER_LEN: usize = 8;

    fn tags(&self) -> (bool, bool) {
        (self.pvoltag, self.avoltag)
    }

    /// ELEMENT DESCRIPTOR LENGTH: the longest descriptor this page holds
    /// (all are written at that length, SMC-3 6.11.3).
    pub fn descriptor_len(&self) -> usize {
        self.descriptors
            .iter()
            .map(|d| d.needed_len(self.tags()))
            .max()
            .unwrap_or(COMMON_LEN + 4)
    }

    fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + self.descriptor_len() * self.descriptors.len()
    }

    /// Decode the page at the front of `b`; returns it and its length.
    fn parse(b: &[u8]) -> Result<(Self, usize), ParseError> {
        const W: &str = "element status page";
        need(W, b, Self::HEADER_LEN)?;
        let dlen = be_uint(&b[2..4]) as usize;
        let count = be_uint(&b[5..8]) as usize;
        let end = Self::HEADER_LEN + count;
        need(W, b, end)?;
        if count > 0 && (dlen < COMMON_LEN || count % dlen != 0) {
            return Err(ParseError::invalid_at(
                W,
                format!(
                    "{count} descriptor bytes are not a whole number of {dlen}-byte descriptors"
                ),
                2,
                None,
            ));
        }
        let tags = (b[1] & 0x80 != 0, b[1] & 0x40 != 0);
        let descriptors = b[Self::HEADER_LEN..end]
            .chunks_exact(dlen.max(1))
            .enumerate()
            .map(|(i, c)| {
                ElementDescriptor::parse(c, tags)
                    .map_err(|e| e.shifted(Self::HEADER_LEN + i * dlen))
            })
            .collect::<Result<_, _>>()?;
        let page = ElementStatusPage {
            element_type: ElementType(b[0]),
            pvoltag: tags.0,
            avoltag: tags.1,
            descriptors,
        };
        Ok((page, end))
    }

    fn emit(&self, b: &mut [u8]) {
        let dlen = self.descriptor_len();
        let total = dlen * self.descriptors.len();
        b[..Self::HEADER_LEN + total].fill(0);
        b[0] = self.element_type.0;
        b[1] = (self.pvoltag as u8) << 7 | (self.avoltag as u8) << 6;
        put_be(&mut b[2..4], dlen as u64);
        put_be(&mut b[5..8], total as u64);
        for (c, d) in b[Self::HEADER_LEN..Self::HEADER_LEN + total]
            .chunks_exact_mut(dlen)
            .zip(&self.descriptors)
        {
            d.emit(c, self.tags());
        }
    }
}

/// READ ELEMENT STATUS data (SMC-3 6.11.2): the header and its pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElementStatusData {
    /// FIRST ELEMENT ADDRESS REPORTED.
    pub first_address: ElementAddress,
    /// NUMBER OF ELEMENTS AVAILABLE.
    pub available: u16,
    pub pages: Vec<ElementStatusPage>,
}

impl ElementStatusData {
    pub const HEADER_LEN: usize = 8;

    /// How many bytes the whole report has, from its header: 8 plus BYTE
    /// COUNT OF REPORT AVAILABLE. When the allocation length was smaller,
    /// ask again with this much.
    pub fn report_len(buf: &[u8]) -> Result<usize, ParseError> {
        need("element status data", buf, Self::HEADER_LEN)?;
        Ok(Self::HEADER_LEN + be_uint(&buf[5..8]) as usize)
    }

    /// Every descriptor with its page's element type, in report order.
    pub fn descriptors(&self) -> impl Iterator<Item = (ElementType, &ElementDescriptor)> {
        self.pages
            .iter()
            .flat_map(|p| p.descriptors.iter().map(move |d| (p.element_type, d)))
    }
}

impl Wire for ElementStatusData {
    /// Strict about lengths: a report cut by the allocation length is
    /// [`ParseError::Truncated`] (see [`ElementStatusData::report_len`]).
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let end = Self::report_len(buf)?;
        need("element status data", buf, end)?;
        let mut at = Self::HEADER_LEN;
        let mut pages = Vec::new();
        while at < end {
            let (p, n) = ElementStatusPage::parse(&buf[at..end]).map_err(|e| e.shifted(at))?;
            pages.push(p);
            at += n;
        }
        Ok(ElementStatusData {
            first_address: addr(&buf[0..2]),
            available: be_uint(&buf[2..4]) as u16,
            pages,
        })
    }

    fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + self.pages.iter().map(|p| p.buffer_len()).sum::<usize>()
    }

    fn emit(&self, buf: &mut [u8]) {
        let n = self.buffer_len();
        let b = &mut buf[..n];
        b[..Self::HEADER_LEN].fill(0);
        put_addr(&mut b[0..2], self.first_address);
        put_be(&mut b[2..4], self.available as u64);
        put_be(&mut b[5..8], (n - Self::HEADER_LEN) as u64);
        let mut at = Self::HEADER_LEN;
        for p in &self.pages {
            p.emit(&mut b[at..]);
            at += p.buffer_len();
        }
    }
}
