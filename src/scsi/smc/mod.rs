//! SMC-3 media changer commands (T10/BSR INCITS 484, SMC-3): READ ELEMENT
//! STATUS, MOVE MEDIUM, EXCHANGE MEDIUM, INITIALIZE ELEMENT STATUS (and
//! WITH RANGE), POSITION TO ELEMENT, PREVENT ALLOW MEDIUM REMOVAL.
//!
//! Submodules:
//! - [`status`]: the element status data READ ELEMENT STATUS returns
//!   (header, element status pages, element descriptors);
//! - [`pages`]: the mode pages 1Dh, 1Eh and 1Fh.
//!
//! The same structs serve the initiator (build the CDB, decode the data)
//! and the target side (parse the CDB, encode the data).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{be_uint, check_cdb, open_code, put_be, Cdb, CdbCodec, Opcode, ParseError};

pub mod pages;
pub mod status;

pub use pages::*;
pub use status::*;

/// POSITION TO ELEMENT shares 2Bh with LOCATE(10) (SMC-3 6.1, table 6):
/// the device type decides. The other SMC opcodes are named with the rest.
impl Opcode {
    pub const POSITION_TO_ELEMENT: Opcode = Opcode(0x2b);
}

/// An element address (SMC-3 4.3): 16 bits, assigned by the changer,
/// reported in mode page 1Dh.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ElementAddress(pub u16);

impl fmt::Debug for ElementAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "element {}", self.0)
    }
}

impl fmt::Display for ElementAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn addr(b: &[u8]) -> ElementAddress {
    ElementAddress(be_uint(b) as u16)
}

fn put_addr(b: &mut [u8], a: ElementAddress) {
    put_be(b, a.0 as u64);
}

open_code! {
    /// ELEMENT TYPE CODE (SMC-3 6.11.1, table 22).
    ElementType(u8) {
        ALL = 0 => "all element types",
        MEDIUM_TRANSPORT = 1 => "medium transport",
        STORAGE = 2 => "storage",
        IMPORT_EXPORT = 3 => "import/export",
        DATA_TRANSFER = 4 => "data transfer",
    }
}

/// READ ELEMENT STATUS, opcode B8h (SMC-3 6.11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadElementStatus {
    /// VOLTAG, byte 1 bit 4: report volume tags.
    pub voltag: bool,
    /// Byte 1 bits 3..0; `to_cdb` writes the low 4 bits.
    pub element_type: ElementType,
    pub start: ElementAddress,
    /// NUMBER OF ELEMENTS.
    pub count: u16,
    /// CURDATA, byte 6 bit 1: answer from current data, no robot motion.
    pub curdata: bool,
    /// DVCID, byte 6 bit 0: report device identifiers of data transfer
    /// elements.
    pub dvcid: bool,
    /// 24 bits; `to_cdb` writes the low 24.
    pub alloc_len: u32,
}

impl ReadElementStatus {
    /// The most the 24-bit ALLOCATION LENGTH holds.
    pub const MAX_ALLOC: u32 = 0xff_ffff;

    /// Every element of `element_type` from address 0, with volume tags,
    /// from current data; with device identifiers when data transfer
    /// elements are asked for (only they have one).
    pub fn all_of(element_type: ElementType, alloc_len: u32) -> Self {
        ReadElementStatus {
            voltag: true,
            element_type,
            start: ElementAddress(0),
            count: u16::MAX,
            curdata: true,
            dvcid: matches!(element_type, ElementType::DATA_TRANSFER | ElementType::ALL),
            alloc_len,
        }
    }
}

impl CdbCodec for ReadElementStatus {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::READ_ELEMENT_STATUS, 12);
        let b = c.as_mut_bytes();
        b[1] = (self.voltag as u8) << 4 | (self.element_type.0 & 0x0f);
        put_addr(&mut b[2..4], self.start);
        put_be(&mut b[4..6], self.count as u64);
        b[6] = (self.curdata as u8) << 1 | self.dvcid as u8;
        put_be(&mut b[7..10], (self.alloc_len & Self::MAX_ALLOC) as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("READ ELEMENT STATUS", cdb, Opcode::READ_ELEMENT_STATUS, 12)?;
        Ok(ReadElementStatus {
            voltag: cdb[1] & 0x10 != 0,
            element_type: ElementType(cdb[1] & 0x0f),
            start: addr(&cdb[2..4]),
            count: be_uint(&cdb[4..6]) as u16,
            curdata: cdb[6] & 0x02 != 0,
            dvcid: cdb[6] & 0x01 != 0,
            alloc_len: be_uint(&cdb[7..10]) as u32,
        })
    }
}

/// MOVE MEDIUM, opcode A5h (SMC-3 6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MoveMedium {
    /// MEDIUM TRANSPORT ADDRESS; 0 lets the changer pick its default.
    pub transport: ElementAddress,
    pub source: ElementAddress,
    pub destination: ElementAddress,
    /// INVERT, byte 10 bit 0: turn the medium over (two-sided media).
    pub invert: bool,
}

impl MoveMedium {
    /// `source` to `destination` with the default transport.
    pub fn new(source: ElementAddress, destination: ElementAddress) -> Self {
        MoveMedium {
            source,
            destination,
            ..MoveMedium::default()
        }
    }
}

impl CdbCodec for MoveMedium {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::MOVE_MEDIUM, 12);
        let b = c.as_mut_bytes();
        put_addr(&mut b[2..4], self.transport);
        put_addr(&mut b[4..6], self.source);
        put_addr(&mut b[6..8], self.destination);
        b[10] = self.invert as u8;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("MOVE MEDIUM", cdb, Opcode::MOVE_MEDIUM, 12)?;
        Ok(MoveMedium {
            transport: addr(&cdb[2..4]),
            source: addr(&cdb[4..6]),
            destination: addr(&cdb[6..8]),
            invert: cdb[10] & 0x01 != 0,
        })
    }
}

/// EXCHANGE MEDIUM, opcode A6h (SMC-3 6.2): the medium in `source` goes
/// to `first_destination`, the one that was there goes to
/// `second_destination` (which may be `source`: a swap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExchangeMedium {
    pub transport: ElementAddress,
    pub source: ElementAddress,
    pub first_destination: ElementAddress,
    pub second_destination: ElementAddress,
    /// INV1, byte 10 bit 0.
    pub inv1: bool,
    /// INV2, byte 10 bit 1.
    pub inv2: bool,
}

impl CdbCodec for ExchangeMedium {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::EXCHANGE_MEDIUM, 12);
        let b = c.as_mut_bytes();
        put_addr(&mut b[2..4], self.transport);
        put_addr(&mut b[4..6], self.source);
        put_addr(&mut b[6..8], self.first_destination);
        put_addr(&mut b[8..10], self.second_destination);
        b[10] = (self.inv2 as u8) << 1 | self.inv1 as u8;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("EXCHANGE MEDIUM", cdb, Opcode::EXCHANGE_MEDIUM, 12)?;
        Ok(ExchangeMedium {
            transport: addr(&cdb[2..4]),
            source: addr(&cdb[4..6]),
            first_destination: addr(&cdb[6..8]),
            second_destination: addr(&cdb[8..10]),
            inv1: cdb[10] & 0x01 != 0,
            inv2: cdb[10] & 0x02 != 0,
        })
    }
}

/// INITIALIZE ELEMENT STATUS, opcode 07h (SMC-3 6.3): check every
/// element (a barcode scan, on most libraries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitializeElementStatus;

impl CdbCodec for InitializeElementStatus {
    fn to_cdb(&self) -> Cdb {
        Cdb::zeroed(Opcode::INITIALIZE_ELEMENT_STATUS, 6)
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb(
            "INITIALIZE ELEMENT STATUS",
            cdb,
            Opcode::INITIALIZE_ELEMENT_STATUS,
            6,
        )?;
        Ok(InitializeElementStatus)
    }
}

/// INITIALIZE ELEMENT STATUS WITH RANGE, opcode 37h (SMC-3 6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitializeElementStatusWithRange {
    /// FAST, byte 1 bit 1: only check whether elements hold media.
    pub fast: bool,
    /// RANGE, byte 1 bit 0: only `count` elements from `start`; clear,
    /// every element.
    pub range: bool,
    pub start: ElementAddress,
    pub count: u16,
}

impl CdbCodec for InitializeElementStatusWithRange {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::INITIALIZE_ELEMENT_STATUS_WITH_RANGE, 10);
        let b = c.as_mut_bytes();
        b[1] = (self.fast as u8) << 1 | self.range as u8;
        put_addr(&mut b[2..4], self.start);
        put_be(&mut b[6..8], self.count as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb(
            "INITIALIZE ELEMENT STATUS WITH RANGE",
            cdb,
            Opcode::INITIALIZE_ELEMENT_STATUS_WITH_RANGE,
            10,
        )?;
        Ok(InitializeElementStatusWithRange {
            fast: cdb[1] & 0x02 != 0,
            range: cdb[1] & 0x01 != 0,
            start: addr(&cdb[2..4]),
            count: be_uint(&cdb[6..8]) as u16,
        })
    }
}

/// POSITION TO ELEMENT, opcode 2Bh (SMC-3 6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PositionToElement {
    pub transport: ElementAddress,
    pub destination: ElementAddress,
    /// INVERT, byte 8 bit 0.
    pub invert: bool,
}

impl CdbCodec for PositionToElement {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::POSITION_TO_ELEMENT, 10);
        let b = c.as_mut_bytes();
        put_addr(&mut b[2..4], self.transport);
        put_addr(&mut b[4..6], self.destination);
        b[8] = self.invert as u8;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("POSITION TO ELEMENT", cdb, Opcode::POSITION_TO_ELEMENT, 10)?;
        Ok(PositionToElement {
            transport: addr(&cdb[2..4]),
            destination: addr(&cdb[4..6]),
            invert: cdb[8] & 0x01 != 0,
        })
    }
}

/// PREVENT ALLOW MEDIUM REMOVAL, opcode 1Eh (SMC-3 6.10): lock or unlock
/// the import/export elements and the operator's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PreventAllowMediumRemoval {
    /// PREVENT, byte 4 bits 1..0: 01b prevents, 00b allows; 10b and 11b
    /// are reserved in SMC-3 and refused by `parse`.
    pub prevent: bool,
}

impl CdbCodec for PreventAllowMediumRemoval {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::PREVENT_ALLOW_MEDIUM_REMOVAL, 6);
        c.as_mut_bytes()[4] = self.prevent as u8;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "PREVENT ALLOW MEDIUM REMOVAL";
        check_cdb(W, cdb, Opcode::PREVENT_ALLOW_MEDIUM_REMOVAL, 6)?;
        match cdb[4] & 0x03 {
            0 => Ok(PreventAllowMediumRemoval { prevent: false }),
            1 => Ok(PreventAllowMediumRemoval { prevent: true }),
            v => Err(ParseError::invalid_at(
                W,
                format!("PREVENT {v:#04b} is reserved in SMC-3"),
                4,
                Some(1),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
