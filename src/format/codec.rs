//! The frame shared by label, set header and trailer (FORMAT.md "Common
//! frame"): magic 8, version u16, flags u16, total length u32, body, CRC32C.

use super::{FormatError, BASE_VERSION, FORMAT_VERSION};
use uuid::Uuid;

/// Magic, version, flags, length.
pub(crate) const PRELUDE_LEN: usize = 16;
pub(crate) const CRC_LEN: usize = 4;
/// No framed record may be longer (keeps headers small enough to be written
/// as EXTENDED COPY inline data and read with one small READ).
pub(crate) const MAX_FRAMED_LEN: usize = 64 * 1024;

/// Builds a framed record. Lengths that overflow their u16 field set
/// `oversize`; callers that can produce them check [`Writer::finish`].
pub(crate) struct Writer {
    buf: Vec<u8>,
    oversize: bool,
}

impl Writer {
    /// A record of [`BASE_VERSION`] (a layout every version shares).
    pub fn new(magic: &[u8; 8], capacity: usize) -> Self {
        Self::versioned(magic, capacity, BASE_VERSION)
    }

    /// A record of format `version`.
    pub fn versioned(magic: &[u8; 8], capacity: usize, version: u16) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(magic);
        buf.extend_from_slice(&version.to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes()); // flags, set by `flags`
        buf.extend_from_slice(&0u32.to_be_bytes()); // length, patched by finish
        Writer {
            buf,
            oversize: false,
        }
    }

    /// Set the frame's flags (FORMAT.md lists them per record).
    pub fn flags(&mut self, flags: u16) {
        self.buf[10..12].copy_from_slice(&flags.to_be_bytes());
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    pub fn uuid(&mut self, v: &Uuid) {
        self.buf.extend_from_slice(v.as_bytes());
    }

    /// A u16 count (for lists); marks the record oversize if it won't fit.
    pub fn count16(&mut self, n: usize) {
        let v = u16::try_from(n).unwrap_or_else(|_| {
            self.oversize = true;
            u16::MAX
        });
        self.u16(v);
    }

    /// u16 length then the bytes.
    pub fn bytes16(&mut self, v: &[u8]) {
        self.count16(v.len());
        self.bytes(v);
    }

    pub fn str16(&mut self, s: &str) {
        self.bytes16(s.as_bytes());
    }

    /// Patch the length, append the CRC. `None` when a field overflowed or
    /// the record would exceed [`MAX_FRAMED_LEN`].
    pub fn finish(mut self) -> Option<Vec<u8>> {
        let total = self.buf.len() + CRC_LEN;
        if self.oversize || total > MAX_FRAMED_LEN {
            return None;
        }
        self.buf[12..16].copy_from_slice(&(total as u32).to_be_bytes());
        let crc = crc32c::crc32c(&self.buf);
        self.buf.extend_from_slice(&crc.to_be_bytes());
        Some(self.buf)
    }

    /// Length the record would have after `finish`.
    pub fn total_len(&self) -> usize {
        self.buf.len() + CRC_LEN
    }
}

/// Checks the frame of `buf` and reads the body. Bytes after the record's
/// length are ignored (padding); body bytes after the fields this version
/// knows are ignored too (FORMAT.md "Versioning").
pub(crate) struct Reader<'a> {
    /// The record up to (not including) its CRC.
    rec: &'a [u8],
    pos: usize,
    what: &'static str,
    version: u16,
}

/// First 8 bytes as an array (caller checked the length).
pub(crate) fn magic_of(buf: &[u8]) -> [u8; 8] {
    let mut m = [0; 8];
    m.copy_from_slice(&buf[..8]);
    m
}

/// The record's version, if this build reads it (1..=[`FORMAT_VERSION`]).
pub(crate) fn check_version(what: &'static str, buf: &[u8]) -> Result<u16, FormatError> {
    let version = u16::from_be_bytes([buf[8], buf[9]]);
    if !(BASE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion { what, version });
    }
    Ok(version)
}

/// Refuse flags outside `known` (a newer writer's meaning we cannot honour).
pub(crate) fn check_flags(what: &'static str, flags: u16, known: u16) -> Result<(), FormatError> {
    if flags & !known != 0 {
        return Err(FormatError::Invalid {
            what,
            reason: format!("unknown flags {flags:#06x} (written by a newer sanmover?)"),
        });
    }
    Ok(())
}

impl<'a> Reader<'a> {
    /// Check size, magic, version, flags, length and CRC, in that order;
    /// `min_len` is the smallest valid total length for this record.
    pub fn open(
        buf: &'a [u8],
        magic: &[u8; 8],
        what: &'static str,
        min_len: usize,
    ) -> Result<Self, FormatError> {
        Self::open_flagged(buf, magic, what, min_len, 0).map(|(r, _)| r)
    }

    /// [`Reader::open`] for a record that may carry the flags in `known`;
    /// returns them too.
    pub fn open_flagged(
        buf: &'a [u8],
        magic: &[u8; 8],
        what: &'static str,
        min_len: usize,
        known: u16,
    ) -> Result<(Self, u16), FormatError> {
        // A foreign block is reported as such even when it is short.
        if buf.len() >= 8 && &buf[..8] != magic {
            return Err(FormatError::BadMagic {
                what,
                found: magic_of(buf),
            });
        }
        // Magic and version are the same in every version: decide on them
        // before any length a newer version may have changed.
        if buf.len() >= 10 {
            check_version(what, buf)?;
        }
        if buf.len() < PRELUDE_LEN {
            return Err(FormatError::Truncated {
                what,
                need: PRELUDE_LEN,
                have: buf.len(),
            });
        }
        let flags = u16::from_be_bytes([buf[10], buf[11]]);
        check_flags(what, flags, known)?;
        let len = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
        if !(min_len..=MAX_FRAMED_LEN).contains(&len) {
            return Err(FormatError::Invalid {
                what,
                reason: format!("record length {len} outside {min_len}..={MAX_FRAMED_LEN}"),
            });
        }
        if len > buf.len() {
            return Err(FormatError::Truncated {
                what,
                need: len,
                have: buf.len(),
            });
        }
        let (rec, tail) = buf[..len].split_at(len - CRC_LEN);
        let expected = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let found = crc32c::crc32c(rec);
        if expected != found {
            return Err(FormatError::BadCrc {
                what,
                expected,
                found,
            });
        }
        Ok((
            Reader {
                rec,
                pos: PRELUDE_LEN,
                what,
                version: u16::from_be_bytes([buf[8], buf[9]]),
            },
            flags,
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        match self.rec.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.invalid(format!(
                "a field at byte {} runs past the end of the record ({} bytes before the CRC)",
                self.pos,
                self.rec.len()
            ))),
        }
    }

    /// The record's format version (checked by `open`).
    pub fn version(&self) -> u16 {
        self.version
    }

    pub fn invalid(&self, reason: String) -> FormatError {
        FormatError::Invalid {
            what: self.what,
            reason,
        }
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn uuid(&mut self) -> Result<Uuid, FormatError> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    pub fn bytes16(&mut self) -> Result<&'a [u8], FormatError> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    /// A u16-length UTF-8 string; `field` names it in the error.
    pub fn str16(&mut self, field: &str) -> Result<String, FormatError> {
        let at = self.pos;
        let b = self.bytes16()?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.invalid(format!("{field} at byte {at} is not UTF-8: {e}"))),
        }
    }

    /// A byte that must be 0 or 1.
    pub fn bool(&mut self, field: &str) -> Result<bool, FormatError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.invalid(format!("{field} at byte {at} is {v}, not 0 or 1"))),
        }
    }

    pub fn skip(&mut self, n: usize) -> Result<(), FormatError> {
        self.take(n).map(|_| ())
    }
}
