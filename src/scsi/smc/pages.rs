//! The SMC-3 mode pages (SMC-3 7.3): element address assignment (1Dh),
//! transport geometry parameters (1Eh) and device capabilities (1Fh).
//! They travel inside the mode parameter list of SPC
//! ([`crate::scsi::spc::ModeParameters`]) and implement
//! [`ModePageCodec`].

use serde::Serialize;

use super::{addr, put_addr, ElementAddress, ElementType};
use crate::scsi::spc::ModePageCodec;
use crate::scsi::{be_uint, need, put_be, ParseError};

/// A run of element addresses: the first one and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ElementRange {
    pub first: ElementAddress,
    pub count: u16,
}

impl ElementRange {
    /// The address of the `i`-th element (from 0), if there is one.
    pub fn nth(&self, i: u16) -> Option<ElementAddress> {
        (i < self.count)
            .then(|| self.first.0.checked_add(i))
            .flatten()
            .map(ElementAddress)
    }

    /// Where `a` falls in the range (from 0).
    pub fn index_of(&self, a: ElementAddress) -> Option<u16> {
        let i = a.0.checked_sub(self.first.0)?;
        (i < self.count).then_some(i)
    }

    pub fn contains(&self, a: ElementAddress) -> bool {
        self.index_of(a).is_some()
    }

    /// Every address in the range.
    pub fn iter(&self) -> impl Iterator<Item = ElementAddress> + '_ {
        (0..self.count).filter_map(|i| self.nth(i))
    }
}

/// Element address assignment mode page, 1Dh (SMC-3 7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ElementAddressAssignment {
    pub transport: ElementRange,
    pub storage: ElementRange,
    pub import_export: ElementRange,
    pub data_transfer: ElementRange,
}

impl ElementAddressAssignment {
    const LEN: usize = 0x12;

    /// The range of one element type; `None` for [`ElementType::ALL`] and
    /// codes SMC-3 does not assign.
    pub fn range(&self, t: ElementType) -> Option<ElementRange> {
        match t {
            ElementType::MEDIUM_TRANSPORT => Some(self.transport),
            ElementType::STORAGE => Some(self.storage),
            ElementType::IMPORT_EXPORT => Some(self.import_export),
            ElementType::DATA_TRANSFER => Some(self.data_transfer),
            _ => None,
        }
    }

    /// Which element type an address belongs to.
    pub fn type_of(&self, a: ElementAddress) -> Option<ElementType> {
        [
            ElementType::MEDIUM_TRANSPORT,
            ElementType::STORAGE,
            ElementType::IMPORT_EXPORT,
            ElementType::DATA_TRANSFER,
        ]
        .into_iter()
        .find(|&t| self.range(t).is_some_and(|r| r.contains(a)))
    }
}

impl ModePageCodec for ElementAddressAssignment {
    const PAGE_CODE: u8 = 0x1d;
    const NAME: &'static str = "element address assignment page (1Dh)";

    fn parse_data(d: &[u8]) -> Result<Self, ParseError> {
        // Bytes 2..18 of the page; the last 2 (reserved) may be missing.
        need(Self::NAME, d, 16)?;
        let r = |i: usize| ElementRange {
            first: addr(&d[i..i + 2]),
            count: be_uint(&d[i + 2..i + 4]) as u16,
        };
        Ok(ElementAddressAssignment {
            transport: r(0),
            storage: r(4),
            import_export: r(8),
            data_transfer: r(12),
        })
    }

    fn data(&self) -> Vec<u8> {
        let mut d = vec![0u8; Self::LEN];
        let ranges = [
            self.transport,
            self.storage,
            self.import_export,
            self.data_transfer,
        ];
        for (c, r) in d.chunks_exact_mut(4).zip(ranges) {
            put_addr(&mut c[0..2], r.first);
            put_be(&mut c[2..4], r.count as u64);
        }
        d
    }
}

/// One transport geometry descriptor (SMC-3 7.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TransportGeometry {
    /// ROTATE, byte 0 bit 0: the transport can turn media over.
    pub rotate: bool,
    /// MEMBER NUMBER IN TRANSPORT ELEMENT SET.
    pub member: u8,
}

/// Transport geometry parameters mode page, 1Eh (SMC-3 7.3.5): one
/// descriptor per medium transport element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TransportGeometryPage {
    pub transports: Vec<TransportGeometry>,
}

impl ModePageCodec for TransportGeometryPage {
    const PAGE_CODE: u8 = 0x1e;
    const NAME: &'static str = "transport geometry parameters page (1Eh)";

    /// An odd trailing byte is ignored.
    fn parse_data(d: &[u8]) -> Result<Self, ParseError> {
        let transports = d
            .chunks_exact(2)
            .map(|c| TransportGeometry {
                rotate: c[0] & 1 != 0,
                member: c[1],
            })
            .collect();
        Ok(TransportGeometryPage { transports })
    }

    fn data(&self) -> Vec<u8> {
        self.transports
            .iter()
            .flat_map(|t| [t.rotate as u8, t.member])
            .collect()
    }
}

bitflags::bitflags! {
    /// One set of four element-type bits of the device capabilities page
    /// (SMC-3 7.3.4): bit 0 medium transport, 1 storage, 2 import/export,
    /// 3 data transfer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ElementTypes: u8 {
        const MT = 0x01;
        const ST = 0x02;
        const IE = 0x04;
        const DT = 0x08;
    }
}

impl Serialize for ElementTypes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.bits())
    }
}

/// Device capabilities mode page, 1Fh (SMC-3 7.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DeviceCapabilities {
    /// Byte 2: StorMT, StorST, StorI/E, StorDT (which element types can
    /// store media).
    pub storage: ElementTypes,
    /// Bytes 4-7: the MOVE MEDIUM destinations allowed from a medium
    /// transport, storage, import/export and data transfer element.
    pub move_from: [ElementTypes; 4],
    /// Bytes 12-15: the EXCHANGE MEDIUM partners, in the same order.
    pub exchange_from: [ElementTypes; 4],
}

impl DeviceCapabilities {
    const LEN: usize = 0x12;

    fn index(t: ElementType) -> Option<usize> {
        (1..=4).contains(&t.0).then(|| t.0 as usize - 1)
    }

    fn bit(t: ElementType) -> ElementTypes {
        Self::index(t).map_or(ElementTypes::empty(), |i| {
            ElementTypes::from_bits_retain(1 << i)
        })
    }

    /// Whether MOVE MEDIUM from a `from` element to a `to` element is allowed.
    pub fn can_move(&self, from: ElementType, to: ElementType) -> bool {
        Self::index(from).is_some_and(|i| self.move_from[i].contains(Self::bit(to)))
            && !Self::bit(to).is_empty()
    }

    /// Whether EXCHANGE MEDIUM between these element types is allowed.
    pub fn can_exchange(&self, from: ElementType, to: ElementType) -> bool {
        Self::index(from).is_some_and(|i| self.exchange_from[i].contains(Self::bit(to)))
            && !Self::bit(to).is_empty()
    }
}

impl ModePageCodec for DeviceCapabilities {
    const PAGE_CODE: u8 = 0x1f;
    const NAME: &'static str = "device capabilities page (1Fh)";

    fn parse_data(d: &[u8]) -> Result<Self, ParseError> {
        need(Self::NAME, d, 14)?;
        let t = |b: u8| ElementTypes::from_bits_truncate(b);
        Ok(DeviceCapabilities {
            storage: t(d[0]),
            move_from: [t(d[2]), t(d[3]), t(d[4]), t(d[5])],
            exchange_from: [t(d[10]), t(d[11]), t(d[12]), t(d[13])],
        })
    }

    fn data(&self) -> Vec<u8> {
        let mut d = vec![0u8; Self::LEN];
        d[0] = self.storage.bits();
        for i in 0..4 {
            d[2 + i] = self.move_from[i].bits();
            d[10 + i] = self.exchange_from[i].bits();
        }
        d
    }
}
