//! The pure SCSI codec: CDB builders and parsers, response and parameter
//! data, sense. No I/O and no `unsafe` in here.
//!
//! Shapes (ARCHITECTURE.md, after smoltcp's `Packet`/`Repr`):
//! - a command is a plain struct with [`CdbCodec`]: `to_cdb()` builds the
//!   bytes, `parse()` reads them back (the target side needs both);
//! - a response or parameter list is a plain struct with [`Wire`]: `parse()`
//!   checks every length first and returns [`ParseError`] instead of
//!   panicking, `emit()` writes exactly `buffer_len()` bytes;
//! - code points are open newtypes with named consts, never closed enums
//!   over device bytes.

#![deny(unsafe_code)]

use std::fmt;

pub mod asc;
pub mod describe;
pub mod sbc;
pub mod sense;
pub mod smc;
pub mod spc;
pub mod ssc;
pub mod xcopy;

/// Why bytes from a device (or a user) could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the structure (or its own length field) needs.
    #[error("{what}: truncated: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A field holds a value the structure cannot have. `at` is where the
    /// field is, when the parser knows: what a target's field pointer
    /// (SPC-4 4.5.2.4.2) reports.
    #[error("{what}: invalid: {reason}")]
    Invalid {
        what: &'static str,
        reason: String,
        at: Option<FieldAt>,
    },
}

/// Where a bad field is: its byte, counted from the start of the bytes
/// handed to the parser, and its bit when it is narrower than a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldAt {
    /// 32 bits keep [`ParseError`] small; a field pointer has 16.
    pub byte: u32,
    pub bit: Option<u8>,
}

impl ParseError {
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        ParseError::Invalid {
            what,
            reason: reason.into(),
            at: None,
        }
    }

    /// [`ParseError::invalid`] for the field at `byte` (and `bit`).
    pub fn invalid_at(
        what: &'static str,
        reason: impl Into<String>,
        byte: usize,
        bit: Option<u8>,
    ) -> Self {
        ParseError::Invalid {
            what,
            reason: reason.into(),
            at: Some(FieldAt {
                byte: byte.min(u32::MAX as usize) as u32,
                bit,
            }),
        }
    }

    /// Where the bad field is, when known.
    pub fn at(&self) -> Option<FieldAt> {
        match self {
            ParseError::Invalid { at, .. } => *at,
            ParseError::Truncated { .. } => None,
        }
    }

    /// The same error for a structure that starts `n` bytes into the
    /// bytes of an enclosing one (a descriptor inside a parameter list).
    pub fn shifted(self, n: usize) -> Self {
        match self {
            ParseError::Invalid { what, reason, at } => ParseError::Invalid {
                what,
                reason,
                at: at.map(|f| FieldAt {
                    byte: f.byte.saturating_add(n.min(u32::MAX as usize) as u32),
                    ..f
                }),
            },
            t => t,
        }
    }
}

/// The length of a CDB from its operation code's group code (SPC-4
/// 4.2.5.1); 16 for the variable-length and vendor groups, which are
/// read from a 16-byte slot.
pub fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        5 => 12,
        _ => 16,
    }
}

/// Fail with [`ParseError::Truncated`] unless `buf` holds `need` bytes.
pub fn need(what: &'static str, buf: &[u8], need: usize) -> Result<(), ParseError> {
    if buf.len() < need {
        Err(ParseError::Truncated {
            what,
            need,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Check that `cdb` holds at least `len` bytes and starts with `op`.
pub(crate) fn check_cdb(
    what: &'static str,
    cdb: &[u8],
    op: Opcode,
    len: usize,
) -> Result<(), ParseError> {
    need(what, cdb, len)?;
    if cdb[0] != op.0 {
        return Err(ParseError::invalid(
            what,
            format!("opcode {:#04x}, expected {:#04x}", cdb[0], op.0),
        ));
    }
    Ok(())
}

/// A command descriptor block of 1 to 16 bytes (libiscsi carries no AHS, so
/// 32-byte CDBs are out of scope).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cdb {
    bytes: [u8; 16],
    len: u8,
}

impl Cdb {
    pub const MAX_LEN: usize = 16;

    /// A CDB from raw bytes: 1 to 16 of them.
    pub fn new(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
            return Err(ParseError::invalid(
                "CDB",
                format!("length {} is not 1..=16", bytes.len()),
            ));
        }
        let mut b = [0u8; 16];
        b[..bytes.len()].copy_from_slice(bytes);
        Ok(Cdb {
            bytes: b,
            len: bytes.len() as u8,
        })
    }

    /// A zeroed CDB of `len` bytes with `op` in byte 0. `len` must be 6, 10,
    /// 12 or 16 (the builders only use those).
    pub fn zeroed(op: Opcode, len: usize) -> Self {
        assert!(matches!(len, 6 | 10 | 12 | 16), "CDB length {len}");
        let mut c = Cdb {
            bytes: [0; 16],
            len: len as u8,
        };
        c.bytes[0] = op.0;
        c
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len as usize]
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn opcode(&self) -> Opcode {
        Opcode(self.bytes[0])
    }
}

impl fmt::Debug for Cdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cdb({})", self)
    }
}

impl fmt::Display for Cdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A command that can be built as a CDB and read back from one.
pub trait CdbCodec: Sized {
    /// The CDB bytes.
    fn to_cdb(&self) -> Cdb;
    /// Decode the CDB (the target side). Fails on a short CDB or the wrong
    /// opcode or service action.
    fn parse(cdb: &[u8]) -> Result<Self, ParseError>;
}

/// A response or parameter list: parsed from device bytes, emitted by the
/// target side and the in-memory devices.
pub trait Wire: Sized {
    /// Decode, checking every length first. Never panics.
    fn parse(buf: &[u8]) -> Result<Self, ParseError>;
    /// How many bytes `emit` writes.
    fn buffer_len(&self) -> usize;
    /// Write exactly `buffer_len()` bytes to the front of `buf`.
    /// Panics if `buf` is shorter: that is a caller bug, not device input.
    fn emit(&self, buf: &mut [u8]);
    fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

macro_rules! open_code {
    ($(#[$m:meta])* $name:ident($t:ty) { $($(#[$cm:meta])* $c:ident = $v:expr => $s:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $t);
        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*
            /// The standard's name, when this crate knows it.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($v => Some($s),)* _ => None }
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}({:#x} {})", stringify!($name), self.0, n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{:#04x}", self.0),
                }
            }
        }
    };
}
pub(crate) use open_code;

open_code! {
    /// Operation code, CDB byte 0 (SPC-4 4.2.5.1).
    Opcode(u8) {
        TEST_UNIT_READY = 0x00 => "TEST UNIT READY",
        REWIND = 0x01 => "REWIND",
        REQUEST_SENSE = 0x03 => "REQUEST SENSE",
        READ_BLOCK_LIMITS = 0x05 => "READ BLOCK LIMITS",
        /// SMC-3 6.3 (a disk's 07h is REASSIGN BLOCKS).
        INITIALIZE_ELEMENT_STATUS = 0x07 => "INITIALIZE ELEMENT STATUS",
        READ_6 = 0x08 => "READ(6)",
        WRITE_6 = 0x0a => "WRITE(6)",
        READ_REVERSE_6 = 0x0f => "READ REVERSE(6)",
        WRITE_FILEMARKS_6 = 0x10 => "WRITE FILEMARKS(6)",
        SPACE_6 = 0x11 => "SPACE(6)",
        INQUIRY = 0x12 => "INQUIRY",
        VERIFY_6 = 0x13 => "VERIFY(6)",
        MODE_SELECT_6 = 0x15 => "MODE SELECT(6)",
        RESERVE_6 = 0x16 => "RESERVE(6)",
        RELEASE_6 = 0x17 => "RELEASE(6)",
        ERASE_6 = 0x19 => "ERASE(6)",
        MODE_SENSE_6 = 0x1a => "MODE SENSE(6)",
        LOAD_UNLOAD = 0x1b => "LOAD UNLOAD",
        RECEIVE_DIAGNOSTIC_RESULTS = 0x1c => "RECEIVE DIAGNOSTIC RESULTS",
        PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e => "PREVENT ALLOW MEDIUM REMOVAL",
        READ_CAPACITY_10 = 0x25 => "READ CAPACITY(10)",
        READ_10 = 0x28 => "READ(10)",
        WRITE_10 = 0x2a => "WRITE(10)",
        LOCATE_10 = 0x2b => "LOCATE(10)",
        VERIFY_10 = 0x2f => "VERIFY(10)",
        READ_POSITION = 0x34 => "READ POSITION",
        SYNCHRONIZE_CACHE_10 = 0x35 => "SYNCHRONIZE CACHE(10)",
        READ_BUFFER_10 = 0x3c => "READ BUFFER(10)",
        REPORT_DENSITY_SUPPORT = 0x44 => "REPORT DENSITY SUPPORT",
        LOG_SENSE = 0x4d => "LOG SENSE",
        /// SMC-3 6.4 (a disk's 37h is READ DEFECT DATA(10)).
        INITIALIZE_ELEMENT_STATUS_WITH_RANGE = 0x37 => "INITIALIZE ELEMENT STATUS WITH RANGE",
        MODE_SELECT_10 = 0x55 => "MODE SELECT(10)",
        RESERVE_10 = 0x56 => "RESERVE(10)",
        RELEASE_10 = 0x57 => "RELEASE(10)",
        MODE_SENSE_10 = 0x5a => "MODE SENSE(10)",
        PERSISTENT_RESERVE_IN = 0x5e => "PERSISTENT RESERVE IN",
        PERSISTENT_RESERVE_OUT = 0x5f => "PERSISTENT RESERVE OUT",
        WRITE_FILEMARKS_16 = 0x80 => "WRITE FILEMARKS(16)",
        EXTENDED_COPY = 0x83 => "EXTENDED COPY",
        RECEIVE_COPY_RESULTS = 0x84 => "RECEIVE COPY RESULTS",
        READ_16 = 0x88 => "READ(16)",
        READ_ATTRIBUTE = 0x8c => "READ ATTRIBUTE",
        WRITE_16 = 0x8a => "WRITE(16)",
        VERIFY_16 = 0x8f => "VERIFY(16)",
        SYNCHRONIZE_CACHE_16 = 0x91 => "SYNCHRONIZE CACHE(16)",
        LOCATE_16 = 0x92 => "LOCATE(16)",
        SERVICE_ACTION_IN_16 = 0x9e => "SERVICE ACTION IN(16)",
        REPORT_LUNS = 0xa0 => "REPORT LUNS",
        MAINTENANCE_IN = 0xa3 => "MAINTENANCE IN",
        READ_12 = 0xa8 => "READ(12)",
        VERIFY_12 = 0xaf => "VERIFY(12)",
        MOVE_MEDIUM = 0xa5 => "MOVE MEDIUM",
        EXCHANGE_MEDIUM = 0xa6 => "EXCHANGE MEDIUM",
        READ_ELEMENT_STATUS = 0xb8 => "READ ELEMENT STATUS",
    }
}

impl Opcode {
    /// SPACE(16) shares 0x91 with SYNCHRONIZE CACHE(16); the device type decides.
    pub const SPACE_16: Opcode = Opcode(0x91);
}

open_code! {
    /// SCSI status byte (SAM-5 5.3).
    Status(u8) {
        GOOD = 0x00 => "GOOD",
        CHECK_CONDITION = 0x02 => "CHECK CONDITION",
        CONDITION_MET = 0x04 => "CONDITION MET",
        BUSY = 0x08 => "BUSY",
        RESERVATION_CONFLICT = 0x18 => "RESERVATION CONFLICT",
        TASK_SET_FULL = 0x28 => "TASK SET FULL",
        ACA_ACTIVE = 0x30 => "ACA ACTIVE",
        TASK_ABORTED = 0x40 => "TASK ABORTED",
    }
}

open_code! {
    /// Peripheral device type, INQUIRY byte 0 bits 4..0 (SPC-4 6.6.2).
    DeviceType(u8) {
        DISK = 0x00 => "disk",
        TAPE = 0x01 => "tape",
        PROCESSOR = 0x03 => "processor",
        WORM = 0x04 => "worm",
        CDROM = 0x05 => "cd/dvd",
        MEDIUM_CHANGER = 0x08 => "medium changer",
        STORAGE_ARRAY = 0x0c => "storage array",
        ENCLOSURE = 0x0d => "enclosure",
        RBC = 0x0e => "simplified disk",
        WELL_KNOWN_LU = 0x1e => "well known lu",
        UNKNOWN = 0x1f => "unknown or no device",
    }
}

macro_rules! unit {
    ($(#[$m:meta])* $name:ident($t:ty), $suffix:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $t);
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", self.0, $suffix)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

unit!(
    /// A logical block address.
    Lba(u64),
    " lba"
);
unit!(
    /// A number of logical blocks (disk) or tape blocks.
    BlockCount(u64),
    " blocks"
);
unit!(
    /// Bytes per logical block (disk) or per fixed tape block.
    BlockSize(u32),
    " B/block"
);
unit!(
    /// A length in bytes.
    ByteLen(u64),
    " B"
);

impl BlockCount {
    pub fn bytes(self, bs: BlockSize) -> Option<ByteLen> {
        self.0.checked_mul(bs.0 as u64).map(ByteLen)
    }
}

impl Lba {
    pub fn checked_add(self, n: BlockCount) -> Option<Lba> {
        self.0.checked_add(n.0).map(Lba)
    }
}

/// Read a big-endian unsigned integer of 1..=8 bytes. The caller has checked
/// the length.
pub(crate) fn be_uint(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

/// Write `v` as a big-endian integer filling `b` (1..=8 bytes).
pub(crate) fn put_be(b: &mut [u8], v: u64) {
    let n = b.len();
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = (v >> (8 * (n - 1 - i))) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdb_bounds() {
        assert!(Cdb::new(&[]).is_err());
        assert!(Cdb::new(&[0u8; 17]).is_err());
        let c = Cdb::new(&[0x12, 0, 0, 0, 0x24, 0]).unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!(c.opcode(), Opcode::INQUIRY);
        assert_eq!(c.to_string(), "12 00 00 00 24 00");
    }

    #[test]
    fn open_codes_name_known_and_keep_unknown() {
        assert_eq!(Opcode(0x12).to_string(), "INQUIRY");
        assert_eq!(Opcode(0xfe).to_string(), "0xfe");
        assert_eq!(Opcode(0xfe).name(), None);
        assert_eq!(Status(2), Status::CHECK_CONDITION);
    }

    #[test]
    fn be_helpers_round_trip() {
        let mut b = [0u8; 6];
        put_be(&mut b, 0x0102_0304_0506);
        assert_eq!(b, [1, 2, 3, 4, 5, 6]);
        assert_eq!(be_uint(&b), 0x0102_0304_0506);
    }
}
