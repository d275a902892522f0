//! Sense data (SPC-4 4.5): the fixed (70h/71h) and descriptor (72h/73h)
//! formats, decoded into one [`Sense`] and built back from it.
//!
//! Parsing is lenient like sg3_utils and never panics: the device's
//! ADDITIONAL SENSE LENGTH is trusted only as far as the buffer goes, and
//! fields that do not fit are left `None`/0 instead of failing.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

pub use super::asc::Asc;
use super::{be_uint, need, open_code, put_be, ParseError};

open_code! {
    /// SENSE KEY (SPC-4 4.5.6, table 27).
    SenseKey(u8) {
        NO_SENSE = 0x0 => "NO SENSE",
        RECOVERED_ERROR = 0x1 => "RECOVERED ERROR",
        NOT_READY = 0x2 => "NOT READY",
        MEDIUM_ERROR = 0x3 => "MEDIUM ERROR",
        HARDWARE_ERROR = 0x4 => "HARDWARE ERROR",
        ILLEGAL_REQUEST = 0x5 => "ILLEGAL REQUEST",
        UNIT_ATTENTION = 0x6 => "UNIT ATTENTION",
        DATA_PROTECT = 0x7 => "DATA PROTECT",
        BLANK_CHECK = 0x8 => "BLANK CHECK",
        VENDOR_SPECIFIC = 0x9 => "VENDOR SPECIFIC",
        COPY_ABORTED = 0xa => "COPY ABORTED",
        ABORTED_COMMAND = 0xb => "ABORTED COMMAND",
        /// Obsolete since SPC-2 (SCSI-2's EQUAL, for SEARCH DATA).
        EQUAL = 0xc => "EQUAL",
        VOLUME_OVERFLOW = 0xd => "VOLUME OVERFLOW",
        MISCOMPARE = 0xe => "MISCOMPARE",
        COMPLETED = 0xf => "COMPLETED",
    }
}

/// Fixed format, current error (SPC-4 4.5.3).
pub const FIXED_CURRENT: u8 = 0x70;
/// Fixed format, deferred error.
pub const FIXED_DEFERRED: u8 = 0x71;
/// Descriptor format, current error (SPC-4 4.5.2).
pub const DESCRIPTOR_CURRENT: u8 = 0x72;
/// Descriptor format, deferred error.
pub const DESCRIPTOR_DEFERRED: u8 = 0x73;

/// Largest sense data SPC-4 allows (4.5.1): 8 + 244.
pub const MAX_SENSE_LEN: usize = 252;

const WHAT: &str = "sense data";

/// The SENSE KEY SPECIFIC field (SPC-4 4.5.2.4), decoded by sense key.
/// Only present when SKSV is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenseKeySpecific {
    /// ILLEGAL REQUEST (4.5.2.4.2): which CDB (`cd`) or parameter list byte
    /// is wrong, and which bit when `bpv`.
    FieldPointer {
        cd: bool,
        bpv: bool,
        bit: u8,
        field: u16,
    },
    /// RECOVERED ERROR, HARDWARE ERROR, MEDIUM ERROR (4.5.2.4.3).
    ActualRetryCount(u16),
    /// NO SENSE, NOT READY (4.5.2.4.4): fraction done, out of 65536.
    Progress(u16),
    /// COPY ABORTED (4.5.2.4.5): byte (and bit when `bpv`) of the segment
    /// descriptor (`sd`) or of the parameter list that caused the error.
    SegmentPointer {
        sd: bool,
        bpv: bool,
        bit: u8,
        field: u16,
    },
    /// UNIT ATTENTION (4.5.2.4.6): the unit attention queue overflowed.
    UnitAttentionOverflow(bool),
    /// Any other sense key: the three bytes as sent, SKSV included.
    Raw([u8; 3]),
}

impl SenseKeySpecific {
    /// Decode the three SKS bytes for `key`; `None` unless SKSV (byte 0
    /// bit 7) is set.
    pub fn decode(key: SenseKey, b: [u8; 3]) -> Option<SenseKeySpecific> {
        if b[0] & 0x80 == 0 {
            return None;
        }
        let value = u16::from_be_bytes([b[1], b[2]]);
        Some(match key {
            SenseKey::ILLEGAL_REQUEST => SenseKeySpecific::FieldPointer {
                cd: b[0] & 0x40 != 0,
                bpv: b[0] & 0x08 != 0,
                bit: b[0] & 0x07,
                field: value,
            },
            SenseKey::NO_SENSE | SenseKey::NOT_READY => SenseKeySpecific::Progress(value),
            SenseKey::RECOVERED_ERROR | SenseKey::MEDIUM_ERROR | SenseKey::HARDWARE_ERROR => {
                SenseKeySpecific::ActualRetryCount(value)
            }
            SenseKey::COPY_ABORTED => SenseKeySpecific::SegmentPointer {
                sd: b[0] & 0x20 != 0,
                bpv: b[0] & 0x08 != 0,
                bit: b[0] & 0x07,
                field: value,
            },
            SenseKey::UNIT_ATTENTION => SenseKeySpecific::UnitAttentionOverflow(b[0] & 0x01 != 0),
            _ => SenseKeySpecific::Raw(b),
        })
    }

    /// The three bytes with SKSV set.
    pub fn encode(&self) -> [u8; 3] {
        let (b0, v) = match *self {
            SenseKeySpecific::FieldPointer {
                cd,
                bpv,
                bit,
                field,
            } => ((cd as u8) << 6 | (bpv as u8) << 3 | (bit & 7), field),
            SenseKeySpecific::ActualRetryCount(n) => (0, n),
            SenseKeySpecific::Progress(n) => (0, n),
            SenseKeySpecific::SegmentPointer {
                sd,
                bpv,
                bit,
                field,
            } => ((sd as u8) << 5 | (bpv as u8) << 3 | (bit & 7), field),
            SenseKeySpecific::UnitAttentionOverflow(o) => (o as u8, 0),
            SenseKeySpecific::Raw(b) => return [b[0] | 0x80, b[1], b[2]],
        };
        let [hi, lo] = v.to_be_bytes();
        [0x80 | b0, hi, lo]
    }

    /// Progress as a percentage, for [`SenseKeySpecific::Progress`].
    pub fn progress_percent(&self) -> Option<f64> {
        match *self {
            SenseKeySpecific::Progress(n) => Some(n as f64 * 100.0 / 65536.0),
            _ => None,
        }
    }
}

impl fmt::Display for SenseKeySpecific {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SenseKeySpecific::FieldPointer {
                cd,
                bpv,
                bit,
                field,
            } => {
                let area = if cd { "CDB" } else { "PARAMETER LIST" };
                write!(f, "FIELD POINTER={area} byte {field}")?;
                if bpv {
                    write!(f, " bit {bit}")?;
                }
                Ok(())
            }
            SenseKeySpecific::ActualRetryCount(n) => write!(f, "RETRIES={n}"),
            SenseKeySpecific::Progress(n) => {
                write!(f, "PROGRESS={:.2}%", n as f64 * 100.0 / 65536.0)
            }
            SenseKeySpecific::SegmentPointer {
                sd,
                bpv,
                bit,
                field,
            } => {
                let area = if sd {
                    "SEGMENT DESCRIPTOR"
                } else {
                    "PARAMETER LIST"
                };
                write!(f, "SEGMENT POINTER={area} byte {field}")?;
                if bpv {
                    write!(f, " bit {bit}")?;
                }
                Ok(())
            }
            SenseKeySpecific::UnitAttentionOverflow(o) => {
                write!(f, "UA QUEUE OVERFLOW={}", o as u8)
            }
            SenseKeySpecific::Raw(b) => write!(f, "SKS={:02x} {:02x} {:02x}", b[0], b[1], b[2]),
        }
    }
}

/// A sense data descriptor this crate does not decode into [`Sense`] fields
/// (SPC-4 4.5.2.1): any type other than 00h-05h, a repeated one, or one too
/// short for its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenseDescriptor {
    pub descriptor_type: u8,
    /// The bytes after the two-byte header (ADDITIONAL LENGTH of them, or
    /// fewer when the sense data was cut short).
    #[serde(serialize_with = "hex_bytes")]
    pub data: Vec<u8>,
}

fn hex_bytes<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

/// Descriptor types (SPC-4 4.5.2.1, table 29) decoded into [`Sense`] fields.
pub mod descriptor_type {
    pub const INFORMATION: u8 = 0x00;
    pub const COMMAND_SPECIFIC: u8 = 0x01;
    pub const SENSE_KEY_SPECIFIC: u8 = 0x02;
    pub const FRU: u8 = 0x03;
    /// SSC-4: FILEMARK, EOM, ILI.
    pub const STREAM_COMMANDS: u8 = 0x04;
    /// SBC-3: ILI.
    pub const BLOCK_COMMANDS: u8 = 0x05;
}

/// Decoded sense data, from either format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    /// RESPONSE CODE, byte 0 bits 6..0: 70h-73h.
    pub response_code: u8,
    /// Current (70h/72h) rather than deferred (71h/73h) error.
    pub current: bool,
    /// Descriptor (72h/73h) rather than fixed format.
    pub descriptor_format: bool,
    /// The VALID bit: fixed byte 0 bit 7, or the information descriptor's.
    pub valid: bool,
    pub key: SenseKey,
    pub asc: Asc,
    /// FILEMARK (fixed byte 2 bit 7, stream commands descriptor).
    pub filemark: bool,
    /// EOM (fixed byte 2 bit 6, stream commands descriptor).
    pub eom: bool,
    /// ILI (fixed byte 2 bit 5, stream or block commands descriptor).
    pub ili: bool,
    /// INFORMATION: fixed bytes 3..7 when VALID, or the information
    /// descriptor.
    pub information: Option<u64>,
    /// COMMAND-SPECIFIC INFORMATION: fixed bytes 8..12 when non-zero, or
    /// the command-specific information descriptor.
    pub command_specific: Option<u64>,
    pub sense_key_specific: Option<SenseKeySpecific>,
    /// FIELD REPLACEABLE UNIT CODE, 0 = none.
    pub fru: u8,
    /// Descriptor format only: descriptors not decoded into the fields above.
    pub descriptors: Vec<SenseDescriptor>,
}

impl Sense {
    /// Current, fixed-format sense with `key` and `asc` and nothing else.
    pub fn new(key: SenseKey, asc: Asc) -> Sense {
        Sense {
            response_code: FIXED_CURRENT,
            current: true,
            descriptor_format: false,
            valid: false,
            key,
            asc,
            filemark: false,
            eom: false,
            ili: false,
            information: None,
            command_specific: None,
            sense_key_specific: None,
            fru: 0,
            descriptors: Vec::new(),
        }
    }

    /// INFORMATION, with VALID set.
    pub fn with_information(mut self, info: u64) -> Sense {
        self.information = Some(info);
        self.valid = true;
        self
    }

    pub fn with_filemark(mut self) -> Sense {
        self.filemark = true;
        self
    }

    pub fn with_eom(mut self) -> Sense {
        self.eom = true;
        self
    }

    pub fn with_ili(mut self) -> Sense {
        self.ili = true;
        self
    }

    pub fn with_sks(mut self, sks: SenseKeySpecific) -> Sense {
        self.sense_key_specific = Some(sks);
        self
    }

    pub fn with_command_specific(mut self, v: u64) -> Sense {
        self.command_specific = Some(v);
        self
    }

    pub fn with_fru(mut self, fru: u8) -> Sense {
        self.fru = fru;
        self
    }

    /// A deferred error (71h/73h) instead of a current one.
    pub fn deferred(mut self) -> Sense {
        self.current = false;
        self.response_code = if self.descriptor_format {
            DESCRIPTOR_DEFERRED
        } else {
            FIXED_DEFERRED
        };
        self
    }

    /// Decode sense data of either format. Fails only on an empty buffer,
    /// a response code other than 70h-73h, or a buffer too short to hold
    /// the sense key.
    pub fn parse(buf: &[u8]) -> Result<Sense, ParseError> {
        need(WHAT, buf, 1)?;
        match buf[0] & 0x7f {
            FIXED_CURRENT | FIXED_DEFERRED => Self::parse_fixed(buf),
            DESCRIPTOR_CURRENT | DESCRIPTOR_DEFERRED => Self::parse_descriptor(buf),
            rc => Err(ParseError::invalid(
                WHAT,
                format!("response code {rc:#04x} is not 70h-73h"),
            )),
        }
    }

    /// The bytes the ADDITIONAL SENSE LENGTH (byte 7) covers, cut to what
    /// arrived. Without byte 7, everything that arrived.
    fn bounded(buf: &[u8]) -> &[u8] {
        match buf.get(7) {
            Some(&add) => &buf[..buf.len().min(8 + add as usize)],
            None => buf,
        }
    }

    // SPC-4 4.5.3, table 37.
    fn parse_fixed(buf: &[u8]) -> Result<Sense, ParseError> {
        need(WHAT, buf, 3)?;
        let b = Self::bounded(buf);
        let rc = b[0] & 0x7f;
        let valid = b[0] & 0x80 != 0;
        let key = SenseKey(b[2] & 0x0f);
        let information = match b.get(3..7) {
            Some(info) if valid => Some(be_uint(info)),
            _ => None,
        };
        let command_specific = b.get(8..12).map(be_uint).filter(|&v| v != 0);
        let byte = |i: usize| b.get(i).copied().unwrap_or(0);
        let sense_key_specific = match b.get(15..18) {
            Some(s) => SenseKeySpecific::decode(key, [s[0], s[1], s[2]]),
            None => None,
        };
        Ok(Sense {
            response_code: rc,
            current: rc == FIXED_CURRENT,
            descriptor_format: false,
            valid,
            key,
            asc: Asc::new(byte(12), byte(13)),
            filemark: b[2] & 0x80 != 0,
            eom: b[2] & 0x40 != 0,
            ili: b[2] & 0x20 != 0,
            information,
            command_specific,
            sense_key_specific,
            fru: byte(14),
            descriptors: Vec::new(),
        })
    }

    // SPC-4 4.5.2, table 28; descriptors 4.5.2.2-4.5.2.7, SSC-4 4.2.26.2
    // (stream commands), SBC-3 4.18.2 (block commands).
    fn parse_descriptor(buf: &[u8]) -> Result<Sense, ParseError> {
        need(WHAT, buf, 2)?;
        let b = Self::bounded(buf);
        let rc = b[0] & 0x7f;
        let key = SenseKey(b[1] & 0x0f);
        let byte = |i: usize| b.get(i).copied().unwrap_or(0);
        let mut s = Sense::new(key, Asc::new(byte(2), byte(3)));
        s.response_code = rc;
        s.current = rc == DESCRIPTOR_CURRENT;
        s.descriptor_format = true;

        // Seen types among 00h-05h: a repeat is kept raw, not merged.
        let mut seen = [false; 6];
        let mut off = 8;
        while off + 2 <= b.len() {
            let t = b[off];
            let declared = b[off + 1] as usize;
            let end = b.len().min(off + 2 + declared);
            let d = &b[off + 2..end];
            off += 2 + declared;
            let first = (t as usize) < seen.len() && !seen[t as usize];
            let decoded = first
                && match t {
                    descriptor_type::INFORMATION if d.len() >= 10 => {
                        s.valid = d[0] & 0x80 != 0;
                        s.information = Some(be_uint(&d[2..10]));
                        true
                    }
                    descriptor_type::COMMAND_SPECIFIC if d.len() >= 10 => {
                        s.command_specific = Some(be_uint(&d[2..10]));
                        true
                    }
                    descriptor_type::SENSE_KEY_SPECIFIC if d.len() >= 5 => {
                        s.sense_key_specific = SenseKeySpecific::decode(key, [d[2], d[3], d[4]]);
                        true
                    }
                    descriptor_type::FRU if d.len() >= 2 => {
                        s.fru = d[1];
                        true
                    }
                    descriptor_type::STREAM_COMMANDS if d.len() >= 2 => {
                        s.filemark |= d[1] & 0x80 != 0;
                        s.eom |= d[1] & 0x40 != 0;
                        s.ili |= d[1] & 0x20 != 0;
                        true
                    }
                    descriptor_type::BLOCK_COMMANDS if d.len() >= 2 => {
                        s.ili |= d[1] & 0x20 != 0;
                        true
                    }
                    _ => false,
                };
            if decoded {
                seen[t as usize] = true;
            } else {
                s.descriptors.push(SenseDescriptor {
                    descriptor_type: t,
                    data: d.to_vec(),
                });
            }
        }
        Ok(s)
    }

    /// INFORMATION as a signed 32-bit number (its low 32 bits, sign
    /// extended): SSC-4 reports an overlength read (ILI) as a negative
    /// residue in two's complement.
    pub fn information_i32(&self) -> Option<i64> {
        self.information.map(|v| v as u32 as i32 as i64)
    }

    /// End of data on tape: BLANK CHECK with any ASC (SSC-4 4.2.13; tgt
    /// reports EOD on READ as BLANK CHECK 00/00 + EOM), or 00/05
    /// END-OF-DATA DETECTED with any key (tgt's SPACE into EOD is
    /// NO SENSE 00/05).
    pub fn is_eod(&self) -> bool {
        self.key == SenseKey::BLANK_CHECK || self.asc == Asc::END_OF_DATA
    }

    /// Fixed-format sense data, 18 bytes (SPC-4 4.5.3). INFORMATION and
    /// COMMAND-SPECIFIC INFORMATION keep their low 32 bits; raw descriptors
    /// have no place here and are dropped.
    pub fn to_fixed(&self) -> Vec<u8> {
        let mut b = vec![0u8; 18];
        let valid = self.valid && self.information.is_some();
        b[0] = if self.current {
            FIXED_CURRENT
        } else {
            FIXED_DEFERRED
        } | if valid { 0x80 } else { 0 };
        b[2] = self.key.0 & 0x0f
            | if self.filemark { 0x80 } else { 0 }
            | if self.eom { 0x40 } else { 0 }
            | if self.ili { 0x20 } else { 0 };
        put_be(&mut b[3..7], self.information.unwrap_or(0));
        b[7] = 10;
        put_be(&mut b[8..12], self.command_specific.unwrap_or(0));
        b[12] = self.asc.asc();
        b[13] = self.asc.ascq();
        b[14] = self.fru;
        if let Some(sks) = self.sense_key_specific {
            b[15..18].copy_from_slice(&sks.encode());
        }
        b
    }

    /// Descriptor-format sense data (SPC-4 4.5.2): information,
    /// command-specific, sense-key-specific, FRU and stream commands
    /// descriptors for the fields that are set, then the raw descriptors
    /// while they fit in 252 bytes.
    pub fn to_descriptor(&self) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b[0] = if self.current {
            DESCRIPTOR_CURRENT
        } else {
            DESCRIPTOR_DEFERRED
        };
        b[1] = self.key.0 & 0x0f;
        b[2] = self.asc.asc();
        b[3] = self.asc.ascq();
        if let Some(info) = self.information {
            b.extend_from_slice(&[descriptor_type::INFORMATION, 0x0a]);
            b.extend_from_slice(&[if self.valid { 0x80 } else { 0 }, 0]);
            b.extend_from_slice(&info.to_be_bytes());
        }
        if let Some(cs) = self.command_specific {
            b.extend_from_slice(&[descriptor_type::COMMAND_SPECIFIC, 0x0a, 0, 0]);
            b.extend_from_slice(&cs.to_be_bytes());
        }
        if let Some(sks) = self.sense_key_specific {
            b.extend_from_slice(&[descriptor_type::SENSE_KEY_SPECIFIC, 0x06, 0, 0]);
            b.extend_from_slice(&sks.encode());
            b.push(0);
        }
        if self.fru != 0 {
            b.extend_from_slice(&[descriptor_type::FRU, 0x02, 0, self.fru]);
        }
        if self.filemark || self.eom || self.ili {
            let flags = if self.filemark { 0x80 } else { 0 }
                | if self.eom { 0x40 } else { 0 }
                | if self.ili { 0x20 } else { 0 };
            b.extend_from_slice(&[descriptor_type::STREAM_COMMANDS, 0x02, 0, flags]);
        }
        for d in &self.descriptors {
            let data = &d.data[..d.data.len().min(255)];
            if b.len() + 2 + data.len() > MAX_SENSE_LEN {
                break;
            }
            b.extend_from_slice(&[d.descriptor_type, data.len() as u8]);
            b.extend_from_slice(data);
        }
        b[7] = (b.len() - 8) as u8;
        b
    }

    /// The format this sense was parsed from or built for.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.descriptor_format {
            self.to_descriptor()
        } else {
            self.to_fixed()
        }
    }
}

impl fmt::Display for Sense {
    /// One line: `NO SENSE: FILEMARK DETECTED (00/01) [FM] INFORMATION=4096`.
    /// With ILI the INFORMATION is shown signed (tape residue).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.asc)?;
        let flags: Vec<&str> = [(self.filemark, "FM"), (self.eom, "EOM"), (self.ili, "ILI")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|&(_, n)| n)
            .collect();
        if !flags.is_empty() {
            write!(f, " [{}]", flags.join(" "))?;
        }
        if let Some(info) = self.information {
            match self.information_i32() {
                Some(signed) if self.ili => write!(f, " INFORMATION={signed}")?,
                _ => write!(f, " INFORMATION={info}")?,
            }
        }
        if let Some(cs) = self.command_specific {
            write!(f, " COMMAND-SPECIFIC={cs:#x}")?;
        }
        if let Some(sks) = &self.sense_key_specific {
            write!(f, " {sks}")?;
        }
        if self.fru != 0 {
            write!(f, " FRU={:#04x}", self.fru)?;
        }
        for d in &self.descriptors {
            write!(
                f,
                " DESCRIPTOR {:02X}h={}",
                d.descriptor_type,
                hex::encode(&d.data)
            )?;
        }
        if !self.current {
            f.write_str(" (deferred)")?;
        }
        Ok(())
    }
}

/// What `--json` shows: the numbers plus their names.
#[derive(Serialize)]
struct SenseJson<'a> {
    response_code: u8,
    current: bool,
    descriptor_format: bool,
    valid: bool,
    key: u8,
    key_name: Option<&'static str>,
    asc: u8,
    ascq: u8,
    asc_name: Option<Cow<'static, str>>,
    filemark: bool,
    eom: bool,
    ili: bool,
    information: Option<u64>,
    command_specific: Option<u64>,
    sense_key_specific: Option<SenseKeySpecific>,
    fru: u8,
    descriptors: &'a [SenseDescriptor],
}

impl Serialize for Sense {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SenseJson {
            response_code: self.response_code,
            current: self.current,
            descriptor_format: self.descriptor_format,
            valid: self.valid,
            key: self.key.0,
            key_name: self.key.name(),
            asc: self.asc.asc(),
            ascq: self.asc.ascq(),
            asc_name: self.asc.name(),
            filemark: self.filemark,
            eom: self.eom,
            ili: self.ili,
            information: self.information,
            command_specific: self.command_specific,
            sense_key_specific: self.sense_key_specific,
            fru: self.fru,
            descriptors: &self.descriptors,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 18-byte fixed sense with `b0`, `b2`, INFORMATION and ASC/ASCQ, the
    /// way tgt builds it.
    fn tgt(b0: u8, b2: u8, info: [u8; 4], asc: u8, ascq: u8) -> Vec<u8> {
        let mut v = vec![0u8; 18];
        v[0] = b0;
        v[2] = b2;
        v[3..7].copy_from_slice(&info);
        v[7] = 0x0a;
        v[12] = asc;
        v[13] = ascq;
        v
    }

    #[test]
    fn tgt_filemark_on_variable_read() {
        let raw = tgt(0xf0, 0x80, [0, 0, 0x10, 0], 0, 1);
        let want = Sense::new(SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED)
            .with_filemark()
            .with_information(4096);
        assert_eq!(want.to_fixed(), raw);
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(s, want);
        assert_eq!(s.information_i32(), Some(4096));
        assert!(!s.is_eod());
        assert_eq!(
            s.to_string(),
            "NO SENSE: FILEMARK DETECTED (00/01) [FM] INFORMATION=4096"
        );
    }

    #[test]
    fn tgt_eod_on_read_is_blank_check_with_eom() {
        let raw = tgt(0x70, 0x48, [0; 4], 0, 0);
        let want = Sense::new(SenseKey::BLANK_CHECK, Asc::NO_ADDITIONAL).with_eom();
        assert_eq!(want.to_fixed(), raw);
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(s, want);
        assert!(s.is_eod());
        assert_eq!(s.information, None);
        assert_eq!(
            s.to_string(),
            "BLANK CHECK: NO ADDITIONAL SENSE INFORMATION (00/00) [EOM]"
        );
    }

    #[test]
    fn tgt_overlength_read_has_negative_information() {
        let raw = tgt(0xf0, 0x20, [0xff, 0xff, 0xfc, 0x18], 0, 0);
        let want = Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL)
            .with_ili()
            .with_information(0xffff_fc18);
        assert_eq!(want.to_fixed(), raw);
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(s, want);
        assert_eq!(s.information_i32(), Some(-1000));
        assert_eq!(
            s.to_string(),
            "NO SENSE: NO ADDITIONAL SENSE INFORMATION (00/00) [ILI] INFORMATION=-1000"
        );
    }

    #[test]
    fn tgt_underlength_read_has_positive_information() {
        let raw = tgt(0xf0, 0x20, [0, 0, 0x0c, 0x18], 0, 0);
        let s = Sense::parse(&raw).unwrap();
        assert!(s.ili && s.valid);
        assert_eq!(s.information_i32(), Some(3096));
    }

    #[test]
    fn tgt_space_into_eod_and_bom() {
        let raw = tgt(0x70, 0x00, [0; 4], 0, 5);
        let want = Sense::new(SenseKey::NO_SENSE, Asc::END_OF_DATA);
        assert_eq!(want.to_fixed(), raw);
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(s, want);
        assert!(s.is_eod());
        assert_eq!(s.to_string(), "NO SENSE: END-OF-DATA DETECTED (00/05)");

        let bom = Sense::parse(&tgt(0x70, 0x00, [0; 4], 0, 4)).unwrap();
        assert_eq!(bom.asc, Asc::BEGINNING_OF_PARTITION);
        assert!(!bom.is_eod() && !bom.eom);
    }

    #[test]
    fn tgt_other_conditions() {
        for (b2, asc, key) in [
            (0x03, Asc::MEDIUM_FORMAT_CORRUPTED, SenseKey::MEDIUM_ERROR),
            (0x05, Asc::INVALID_FIELD_IN_CDB, SenseKey::ILLEGAL_REQUEST),
            (0x07, Asc::WRITE_PROTECTED, SenseKey::DATA_PROTECT),
            (0x02, Asc::MEDIUM_NOT_PRESENT, SenseKey::NOT_READY),
            (0x05, Asc::INVALID_OPCODE, SenseKey::ILLEGAL_REQUEST),
            (
                0x05,
                Asc::MEDIUM_REMOVAL_PREVENTED,
                SenseKey::ILLEGAL_REQUEST,
            ),
        ] {
            let raw = tgt(0x70, b2, [0; 4], asc.asc(), asc.ascq());
            let s = Sense::parse(&raw).unwrap();
            assert_eq!(s, Sense::new(key, asc));
            assert_eq!(s.to_fixed(), raw);
        }
        // Capacity crossed: NO SENSE + EOM, 00/00, data written.
        let s = Sense::parse(&tgt(0x70, 0x40, [0; 4], 0, 0)).unwrap();
        assert!(s.eom && !s.is_eod() && s.key == SenseKey::NO_SENSE);
    }

    #[test]
    fn fixed_with_every_field() {
        let raw = [
            0x71, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x12, 0x34, 0x56, 0x78, 0x0d, 0x02,
            0x05, 0xad, 0x00, 0x10,
        ];
        let want = Sense::new(
            SenseKey::COPY_ABORTED,
            Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
        )
        .deferred()
        .with_command_specific(0x1234_5678)
        .with_fru(5)
        .with_sks(SenseKeySpecific::SegmentPointer {
            sd: true,
            bpv: true,
            bit: 5,
            field: 16,
        });
        assert_eq!(want.to_fixed(), raw);
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(s, want);
        assert!(!s.current && !s.valid);
        // INFORMATION bytes without VALID are not information.
        let mut no_valid = raw;
        no_valid[5] = 1;
        assert_eq!(Sense::parse(&no_valid).unwrap().information, None);
        assert_eq!(
            s.to_string(),
            "COPY ABORTED: COPY TARGET DEVICE NOT REACHABLE (0D/02) COMMAND-SPECIFIC=0x12345678 \
             SEGMENT POINTER=SEGMENT DESCRIPTOR byte 16 bit 5 FRU=0x05 (deferred)"
        );
    }

    #[test]
    fn sense_key_specific_by_key() {
        let cases = [
            (
                SenseKey::ILLEGAL_REQUEST,
                [0xcb, 0x00, 0x02],
                SenseKeySpecific::FieldPointer {
                    cd: true,
                    bpv: true,
                    bit: 3,
                    field: 2,
                },
                "FIELD POINTER=CDB byte 2 bit 3",
            ),
            (
                SenseKey::ILLEGAL_REQUEST,
                [0x80, 0x01, 0x00],
                SenseKeySpecific::FieldPointer {
                    cd: false,
                    bpv: false,
                    bit: 0,
                    field: 256,
                },
                "FIELD POINTER=PARAMETER LIST byte 256",
            ),
            (
                SenseKey::NOT_READY,
                [0x80, 0x80, 0x00],
                SenseKeySpecific::Progress(0x8000),
                "PROGRESS=50.00%",
            ),
            (
                SenseKey::NO_SENSE,
                [0x80, 0x40, 0x00],
                SenseKeySpecific::Progress(0x4000),
                "PROGRESS=25.00%",
            ),
            (
                SenseKey::RECOVERED_ERROR,
                [0x80, 0x00, 0x07],
                SenseKeySpecific::ActualRetryCount(7),
                "RETRIES=7",
            ),
            (
                SenseKey::MEDIUM_ERROR,
                [0x80, 0x01, 0x01],
                SenseKeySpecific::ActualRetryCount(257),
                "RETRIES=257",
            ),
            (
                SenseKey::HARDWARE_ERROR,
                [0x80, 0x00, 0x02],
                SenseKeySpecific::ActualRetryCount(2),
                "RETRIES=2",
            ),
            (
                SenseKey::COPY_ABORTED,
                [0x85, 0x00, 0x30],
                SenseKeySpecific::SegmentPointer {
                    sd: false,
                    bpv: false,
                    bit: 5,
                    field: 0x30,
                },
                "SEGMENT POINTER=PARAMETER LIST byte 48",
            ),
            (
                SenseKey::UNIT_ATTENTION,
                [0x81, 0x00, 0x00],
                SenseKeySpecific::UnitAttentionOverflow(true),
                "UA QUEUE OVERFLOW=1",
            ),
            (
                SenseKey::DATA_PROTECT,
                [0x81, 0x02, 0x03],
                SenseKeySpecific::Raw([0x81, 0x02, 0x03]),
                "SKS=81 02 03",
            ),
        ];
        for (key, bytes, want, text) in cases {
            assert_eq!(SenseKeySpecific::decode(key, bytes), Some(want), "{key}");
            assert_eq!(want.encode(), bytes, "{key}");
            assert_eq!(want.to_string(), text);
            // No SKSV, no field.
            assert_eq!(SenseKeySpecific::decode(key, [bytes[0] & 0x7f, 1, 2]), None);
        }
        assert_eq!(
            SenseKeySpecific::Progress(0x8000).progress_percent(),
            Some(50.0)
        );
        assert_eq!(
            SenseKeySpecific::ActualRetryCount(1).progress_percent(),
            None
        );
    }

    #[test]
    fn fixed_sks_in_place() {
        let raw = [
            0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0x00, 0, 0xcb, 0x00, 0x02,
        ];
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(
            s.sense_key_specific,
            Some(SenseKeySpecific::FieldPointer {
                cd: true,
                bpv: true,
                bit: 3,
                field: 2
            })
        );
        assert_eq!(
            s.to_string(),
            "ILLEGAL REQUEST: INVALID FIELD IN CDB (24/00) FIELD POINTER=CDB byte 2 bit 3"
        );
    }

    #[test]
    fn fixed_is_bounded_by_additional_length() {
        // ADDITIONAL SENSE LENGTH 4: bytes 8..12 only; ASC and SKS beyond it
        // are ignored even though the buffer holds them.
        let raw = [
            0x70, 0, 0x05, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x24, 0x00, 0, 0xcb, 0x00, 0x02,
        ];
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(s.asc, Asc::NO_ADDITIONAL);
        assert_eq!(s.sense_key_specific, None);
        assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST);
        // ADDITIONAL SENSE LENGTH 0: nothing past byte 7.
        let mut raw0 = raw;
        raw0[7] = 0;
        assert_eq!(Sense::parse(&raw0).unwrap().asc, Asc::NO_ADDITIONAL);
    }

    #[test]
    fn fixed_is_bounded_by_the_buffer() {
        let full = tgt(0xf0, 0x25, [0, 0, 0, 9], 0x24, 0x00);
        // Truncated after the ASC: no ASCQ, FRU, SKS; ASC still there.
        let s = Sense::parse(&full[..13]).unwrap();
        assert_eq!(s.asc, Asc::new(0x24, 0));
        // Truncated inside INFORMATION: VALID but no INFORMATION.
        let s = Sense::parse(&full[..5]).unwrap();
        assert!(s.valid && s.ili);
        assert_eq!(s.information, None);
        assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST);
        // Byte 2 is the minimum.
        assert!(Sense::parse(&full[..3]).is_ok());
        assert!(matches!(
            Sense::parse(&full[..2]),
            Err(ParseError::Truncated {
                need: 3,
                have: 2,
                ..
            })
        ));
        assert!(matches!(
            Sense::parse(&[]),
            Err(ParseError::Truncated {
                need: 1,
                have: 0,
                ..
            })
        ));
    }

    #[test]
    fn bad_response_codes() {
        for rc in [0x00, 0x7f, 0x74, 0x6f, 0xff] {
            assert!(
                matches!(
                    Sense::parse(&[rc, 0, 5, 0]),
                    Err(ParseError::Invalid { .. })
                ),
                "{rc:#x}"
            );
        }
    }

    /// A descriptor sense with every decoded type plus one raw one.
    const DESC_FULL: [u8; 52] = [
        0x72, 0x00, 0x00, 0x01, 0, 0, 0, 44, // header: NO SENSE 00/01
        0x00, 0x0a, 0x80, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, 0x18, // information
        0x01, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, // command-specific
        0x02, 0x06, 0, 0, 0x80, 0x40, 0x00, 0, // SKS: progress 25%
        0x03, 0x02, 0, 9, // FRU
        0x04, 0x02, 0, 0xe0, // stream: FM EOM ILI
        0x80, 0x02, 0xde, 0xad, // vendor specific, kept raw
    ];

    #[test]
    fn descriptor_with_every_type() {
        let want = Sense {
            response_code: 0x72,
            current: true,
            descriptor_format: true,
            valid: true,
            key: SenseKey::NO_SENSE,
            asc: Asc::FILEMARK_DETECTED,
            filemark: true,
            eom: true,
            ili: true,
            information: Some(0xffff_ffff_ffff_fc18),
            command_specific: Some(7),
            sense_key_specific: Some(SenseKeySpecific::Progress(0x4000)),
            fru: 9,
            descriptors: vec![SenseDescriptor {
                descriptor_type: 0x80,
                data: vec![0xde, 0xad],
            }],
        };
        let s = Sense::parse(&DESC_FULL).unwrap();
        assert_eq!(s, want);
        assert_eq!(s.to_descriptor(), DESC_FULL);
        assert_eq!(s.to_bytes(), DESC_FULL);
        assert_eq!(s.information_i32(), Some(-1000));
        assert_eq!(
            s.to_string(),
            "NO SENSE: FILEMARK DETECTED (00/01) [FM EOM ILI] INFORMATION=-1000 \
             COMMAND-SPECIFIC=0x7 PROGRESS=25.00% FRU=0x09 DESCRIPTOR 80h=dead"
        );
        // Every cut is still decodable.
        for n in 2..DESC_FULL.len() {
            Sense::parse(&DESC_FULL[..n]).unwrap();
        }
        assert!(Sense::parse(&DESC_FULL[..1]).is_err());
    }

    #[test]
    fn descriptor_minimal_and_block_commands() {
        let raw = [
            0x73, 0x05, 0x20, 0x00, 0, 0, 0, 0x04, 0x05, 0x02, 0x00, 0x20,
        ];
        let s = Sense::parse(&raw).unwrap();
        assert!(s.descriptor_format && !s.current && s.ili);
        assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST);
        assert_eq!(s.asc, Asc::INVALID_OPCODE);
        assert!(s.descriptors.is_empty());
        // The block commands descriptor comes back as a stream commands one.
        assert_eq!(
            s.to_descriptor(),
            [0x73, 0x05, 0x20, 0x00, 0, 0, 0, 0x04, 0x04, 0x02, 0x00, 0x20]
        );

        let plain = Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
        assert_eq!(plain.to_descriptor(), [0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0]);
        let back = Sense::parse(&plain.to_descriptor()).unwrap();
        assert!(back.descriptor_format);
        assert_eq!(back.to_fixed(), plain.to_fixed());
    }

    #[test]
    fn descriptor_is_bounded_by_additional_length_and_buffer() {
        // Additional length 12 cuts the command-specific descriptor.
        let mut raw = DESC_FULL;
        raw[7] = 12 + 4;
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(s.information, Some(0xffff_ffff_ffff_fc18));
        assert_eq!(s.command_specific, None);
        // The cut descriptor is kept raw with the bytes that fit.
        assert_eq!(
            s.descriptors,
            vec![SenseDescriptor {
                descriptor_type: 1,
                data: vec![0, 0]
            }]
        );
        assert!(!s.filemark);
        // Additional length larger than the buffer: parse what is there.
        let mut raw = DESC_FULL.to_vec();
        raw[7] = 0xff;
        assert_eq!(
            Sense::parse(&raw).unwrap(),
            Sense::parse(&DESC_FULL).unwrap()
        );
    }

    #[test]
    fn descriptor_repeats_and_short_known_types_stay_raw() {
        let raw = [
            0x72, 0x06, 0x29, 0x00, 0, 0, 0, 0x0c, // UNIT ATTENTION 29/00
            0x03, 0x02, 0, 1, // FRU 1
            0x03, 0x02, 0, 2, // FRU again: raw
            0x00, 0x02, 0x80, 0, // information too short: raw
        ];
        let s = Sense::parse(&raw).unwrap();
        assert_eq!(s.fru, 1);
        assert_eq!(s.information, None);
        assert!(!s.valid);
        assert_eq!(
            s.descriptors,
            vec![
                SenseDescriptor {
                    descriptor_type: 3,
                    data: vec![0, 2]
                },
                SenseDescriptor {
                    descriptor_type: 0,
                    data: vec![0x80, 0]
                },
            ]
        );
    }

    #[test]
    fn to_fixed_from_descriptor_keeps_low_32_bits() {
        let s = Sense::parse(&DESC_FULL).unwrap();
        let f = s.to_fixed();
        assert_eq!(
            f,
            [0xf0, 0, 0xe0, 0xff, 0xff, 0xfc, 0x18, 0x0a, 0, 0, 0, 7, 0, 1, 9, 0x80, 0x40, 0]
        );
        let back = Sense::parse(&f).unwrap();
        assert_eq!(back.information_i32(), Some(-1000));
        assert!(back.descriptors.is_empty());
    }

    #[test]
    fn to_descriptor_caps_at_252_bytes() {
        let mut s = Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
        for t in 0x80..0x84 {
            s.descriptors.push(SenseDescriptor {
                descriptor_type: t,
                data: vec![0xaa; 100],
            });
        }
        let b = s.to_descriptor();
        assert_eq!(b.len(), 8 + 2 * 102);
        assert_eq!(b[7] as usize, b.len() - 8);
        assert_eq!(Sense::parse(&b).unwrap().descriptors.len(), 2);
    }

    #[test]
    fn serializes_numbers_and_names() {
        let s = Sense::parse(&tgt(0xf0, 0x80, [0, 0, 0x10, 0], 0, 1)).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["key"], 0);
        assert_eq!(v["key_name"], "NO SENSE");
        assert_eq!(v["asc"], 0);
        assert_eq!(v["ascq"], 1);
        assert_eq!(v["asc_name"], "FILEMARK DETECTED");
        assert_eq!(v["information"], 4096);
        assert_eq!(v["filemark"], true);
        let d = serde_json::to_value(Sense::parse(&DESC_FULL).unwrap()).unwrap();
        assert_eq!(d["descriptors"][0]["data"], "dead");
        assert_eq!(d["sense_key_specific"]["progress"], 0x4000);
    }

    #[test]
    fn sense_key_names() {
        assert_eq!(SenseKey(0x6).to_string(), "UNIT ATTENTION");
        assert_eq!(SenseKey::COMPLETED.0, 0xf);
        assert_eq!(SenseKey::VOLUME_OVERFLOW.0, 0xd);
        assert!((0..16).all(|k| SenseKey(k).name().is_some()));
    }

    fn sense_strategy(descriptor: bool) -> impl Strategy<Value = Sense> {
        let info_max = if descriptor {
            u64::MAX
        } else {
            u32::MAX as u64
        };
        let raw = prop::collection::vec(
            (0x06u8..=0xff, prop::collection::vec(any::<u8>(), 0..20)),
            0..if descriptor { 4 } else { 1 },
        );
        (
            (any::<bool>(), 0u8..16, any::<u16>(), any::<[bool; 3]>()),
            prop::option::of(0..=info_max),
            prop::option::of(1..=info_max),
            prop::option::of(any::<[u8; 3]>()),
            any::<u8>(),
            raw,
        )
            .prop_map(
                move |((current, key, asc, flags), info, cs, sks, fru, raw)| {
                    let key = SenseKey(key);
                    let mut s = Sense::new(key, Asc(asc));
                    s.filemark = flags[0];
                    s.eom = flags[1];
                    s.ili = flags[2];
                    if let Some(i) = info {
                        s = s.with_information(i);
                    }
                    s.command_specific = cs;
                    s.sense_key_specific =
                        sks.and_then(|b| SenseKeySpecific::decode(key, [b[0] | 0x80, b[1], b[2]]));
                    s.fru = fru;
                    if descriptor {
                        s.descriptor_format = true;
                        s.response_code = DESCRIPTOR_CURRENT;
                        s.descriptors = raw
                            .into_iter()
                            .map(|(t, data)| SenseDescriptor {
                                descriptor_type: t,
                                data,
                            })
                            .collect();
                    }
                    if !current {
                        s = s.deferred();
                    }
                    s
                },
            )
    }

    proptest! {
        #[test]
        fn parse_never_panics(buf in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(s) = Sense::parse(&buf) {
                let _ = s.to_string();
                let _ = Sense::parse(&s.to_fixed()).unwrap();
                let _ = Sense::parse(&s.to_descriptor()).unwrap();
                let _ = s.information_i32();
            }
        }

        #[test]
        fn parse_never_panics_on_sense_like_bytes(
            rc in 0x70u8..=0x73,
            rest in prop::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut buf = vec![rc];
            buf.extend_from_slice(&rest);
            let s = Sense::parse(&buf);
            prop_assert_eq!(s.is_ok(), buf.len() >= 3 || rc >= 0x72 && buf.len() >= 2);
        }

        #[test]
        fn fixed_round_trip(s in sense_strategy(false)) {
            let b = s.to_fixed();
            prop_assert_eq!(b.len(), 18);
            prop_assert_eq!(Sense::parse(&b).unwrap(), s);
        }

        #[test]
        fn descriptor_round_trip(s in sense_strategy(true)) {
            let b = s.to_descriptor();
            prop_assert_eq!(b[7] as usize, b.len() - 8);
            prop_assert_eq!(Sense::parse(&b).unwrap(), s);
        }
    }
}
