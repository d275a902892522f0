//! The cartridge image: a [`Medium`] in a file of our own format, an
//! append-only log of CRC'd records (FORMAT.md, "Tape cartridge image").
//!
//! Crash safety comes from the shape: objects are only ever appended, and
//! overwriting from the middle (a write not at end of data) first cuts the
//! file at that record. A crash can therefore only tear the tail: on open,
//! the first record whose header or payload does not check out, and
//! everything after it, is cut off, and end of data is right after the
//! last whole record. Earlier records are never rewritten.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::medium::{Medium, MediumError, ObjectKind};

const IMAGE_MAGIC: &[u8; 8] = b"SMTAPEIM";
const IMAGE_VERSION: u16 = 1;
/// Image header length; records start here.
pub const IMAGE_HEADER_LEN: u64 = 64;
const RECORD_MAGIC: &[u8; 4] = b"SMOB";
/// Record header length; the payload follows.
pub const RECORD_HEADER_LEN: usize = 32;
const KIND_BLOCK: u8 = 1;
const KIND_FILEMARK: u8 = 2;

/// Where one object's record is, and the sums the drive asks for.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    kind: ObjectKind,
    bytes_before: u64,
    marks_before: u64,
}

/// A medium image file, open. The index of its records is held in memory
/// (32 bytes per object) and rebuilt by [`ImageMedium::open`].
#[derive(Debug)]
pub struct ImageMedium {
    path: PathBuf,
    file: File,
    capacity: u64,
    writable: bool,
    index: Vec<Entry>,
    /// File length: where the next record goes.
    end: u64,
    total_bytes: u64,
    total_marks: u64,
    /// Bytes cut off a torn tail when the image was opened.
    pub recovered_tail: u64,
}

fn crc(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

/// The image header: magic, version, header length, capacity, CRC32C.
fn image_header(capacity: u64) -> [u8; IMAGE_HEADER_LEN as usize] {
    let mut h = [0u8; IMAGE_HEADER_LEN as usize];
    h[0..8].copy_from_slice(IMAGE_MAGIC);
    h[8..10].copy_from_slice(&IMAGE_VERSION.to_be_bytes());
    h[10..12].copy_from_slice(&(IMAGE_HEADER_LEN as u16).to_be_bytes());
    h[16..24].copy_from_slice(&capacity.to_be_bytes());
    let c = crc(&h[..60]);
    h[60..64].copy_from_slice(&c.to_be_bytes());
    h
}

/// A record header for object `number`.
fn record_header(kind: u8, number: u64, payload: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(RECORD_MAGIC);
    h[4] = kind;
    h[8..16].copy_from_slice(&number.to_be_bytes());
    h[16..20].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    h[20..24].copy_from_slice(&crc(payload).to_be_bytes());
    let c = crc(&h[..28]);
    h[28..32].copy_from_slice(&c.to_be_bytes());
    h
}

/// A record header that checks out: (kind, payload length, payload CRC).
fn parse_record_header(h: &[u8], number: u64) -> Option<(ObjectKind, u32)> {
    let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if h.len() < RECORD_HEADER_LEN || &h[0..4] != RECORD_MAGIC || crc(&h[..28]) != u32_at(28) {
        return None;
    }
    let n = u64::from_be_bytes(h[8..16].try_into().ok()?);
    let len = u32_at(16);
    let kind = match h[4] {
        KIND_BLOCK => ObjectKind::Block(len),
        KIND_FILEMARK if len == 0 => ObjectKind::Filemark,
        _ => return None,
    };
    (n == number).then_some((kind, u32_at(20)))
}

impl ImageMedium {
    /// Create a blank image of `capacity` bytes at `path`; fails if the
    /// file exists.
    pub fn create(path: &Path, capacity: u64) -> Result<(), MediumError> {
        let io = |source| MediumError::Io {
            path: path.display().to_string(),
            source,
        };
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        f.write_all_at(&image_header(capacity), 0).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Open an image; `writable` false opens it read-only (the medium is
    /// then write protected). A torn tail is cut back to the last whole
    /// record (only in the index when read-only).
    pub fn open(path: &Path, writable: bool) -> Result<Self, MediumError> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|source| MediumError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let mut m = ImageMedium {
            path: path.to_path_buf(),
            file,
            capacity: 0,
            writable,
            index: Vec::new(),
            end: IMAGE_HEADER_LEN,
            total_bytes: 0,
            total_marks: 0,
            recovered_tail: 0,
        };
        m.capacity = m.read_image_header()?;
        m.scan()?;
        Ok(m)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    fn io(&self, source: std::io::Error) -> MediumError {
        MediumError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn corrupt(&self, offset: u64, reason: &str) -> MediumError {
        MediumError::Corrupt {
            path: self.path.display().to_string(),
            offset,
            reason: reason.to_string(),
        }
    }

    fn read_image_header(&self) -> Result<u64, MediumError> {
        let mut h = [0u8; IMAGE_HEADER_LEN as usize];
        self.file
            .read_exact_at(&mut h, 0)
            .map_err(|_| self.corrupt(0, "shorter than an image header"))?;
        if &h[0..8] != IMAGE_MAGIC {
            return Err(self.corrupt(0, "not a sanmover tape image (bad magic)"));
        }
        if crc(&h[..60]).to_be_bytes() != h[60..64] {
            return Err(self.corrupt(60, "image header CRC mismatch"));
        }
        let version = u16::from_be_bytes([h[8], h[9]]);
        if version != IMAGE_VERSION {
            return Err(self.corrupt(8, &format!("unknown image version {version}")));
        }
        Ok(u64::from_be_bytes(h[16..24].try_into().expect("8 bytes")))
    }

    /// Read the records in order, build the index, and cut the file at the
    /// first record that does not check out.
    fn scan(&mut self) -> Result<(), MediumError> {
        let file_len = self.file.metadata().map_err(|e| self.io(e))?.len();
        let handle = self.file.try_clone().map_err(|e| self.io(e))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, handle);
        let mut skip = vec![0u8; IMAGE_HEADER_LEN as usize];
        reader.read_exact(&mut skip).map_err(|e| self.io(e))?;
        let mut payload = Vec::new();
        loop {
            let mut h = [0u8; RECORD_HEADER_LEN];
            if reader.read_exact(&mut h).is_err() {
                break;
            }
            let Some((kind, want)) = parse_record_header(&h, self.index.len() as u64) else {
                break;
            };
            let len = match kind {
                ObjectKind::Block(n) => n as usize,
                ObjectKind::Filemark => 0,
            };
            payload.resize(len, 0);
            if reader.read_exact(&mut payload).is_err() || crc(&payload) != want {
                break;
            }
            self.push(kind);
        }
        self.recovered_tail = file_len - self.end;
        if self.recovered_tail > 0 && self.writable {
            self.file.set_len(self.end).map_err(|e| self.io(e))?;
            self.file.sync_all().map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Index an object whose record ends the file.
    fn push(&mut self, kind: ObjectKind) {
        self.index.push(Entry {
            offset: self.end,
            kind,
            bytes_before: self.total_bytes,
            marks_before: self.total_marks,
        });
        match kind {
            ObjectKind::Block(n) => {
                self.end += RECORD_HEADER_LEN as u64 + n as u64;
                self.total_bytes += n as u64;
            }
            ObjectKind::Filemark => {
                self.end += RECORD_HEADER_LEN as u64;
                self.total_marks += 1;
            }
        }
    }

    fn append(&mut self, kind: u8, payload: &[u8]) -> Result<(), MediumError> {
        if !self.writable {
            return Err(self.io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)));
        }
        // Header and payload in two writes, no copy: a record torn between
        // them fails its payload CRC and is cut on open.
        let h = record_header(kind, self.count(), payload);
        self.file
            .write_all_at(&h, self.end)
            .and_then(|_| {
                self.file
                    .write_all_at(payload, self.end + RECORD_HEADER_LEN as u64)
            })
            .map_err(|e| self.io(e))?;
        self.push(if kind == KIND_BLOCK {
            ObjectKind::Block(payload.len() as u32)
        } else {
            ObjectKind::Filemark
        });
        Ok(())
    }
}

impl Medium for ImageMedium {
    fn count(&self) -> u64 {
        self.index.len() as u64
    }

    fn kind(&self, n: u64) -> Option<ObjectKind> {
        Some(self.index.get(usize::try_from(n).ok()?)?.kind)
    }

    fn read_block(&mut self, n: u64, buf: &mut [u8]) -> Result<usize, MediumError> {
        let e = match usize::try_from(n).ok().and_then(|i| self.index.get(i)) {
            Some(
                e @ Entry {
                    kind: ObjectKind::Block(_),
                    ..
                },
            ) => *e,
            _ => return Err(MediumError::NoObject(n)),
        };
        let ObjectKind::Block(len) = e.kind else {
            unreachable!("matched a block above")
        };
        let mut h = [0u8; RECORD_HEADER_LEN];
        self.file
            .read_exact_at(&mut h, e.offset)
            .map_err(|x| self.io(x))?;
        let want = parse_record_header(&h, n)
            .ok_or_else(|| self.corrupt(e.offset, "record header changed since open"))?
            .1;
        // Straight into the caller's buffer when the block fits (the
        // usual read); a longer block goes through a scratch buffer, since
        // its CRC covers all of it.
        let len = len as usize;
        let at = e.offset + RECORD_HEADER_LEN as u64;
        let mut scratch = Vec::new();
        let data = if buf.len() >= len {
            &mut buf[..len]
        } else {
            scratch.resize(len, 0);
            &mut scratch[..]
        };
        self.file.read_exact_at(data, at).map_err(|x| self.io(x))?;
        if crc(data) != want {
            return Err(self.corrupt(e.offset, "block CRC mismatch"));
        }
        if !scratch.is_empty() {
            let k = buf.len();
            buf.copy_from_slice(&scratch[..k]);
        }
        Ok(len)
    }

    fn bytes_before(&self, n: u64) -> u64 {
        match usize::try_from(n).ok().and_then(|i| self.index.get(i)) {
            Some(e) => e.bytes_before,
            None => self.total_bytes,
        }
    }

    fn marks_before(&self, n: u64) -> u64 {
        match usize::try_from(n).ok().and_then(|i| self.index.get(i)) {
            Some(e) => e.marks_before,
            None => self.total_marks,
        }
    }

    fn truncate(&mut self, n: u64) -> Result<(), MediumError> {
        let Some(e) = usize::try_from(n)
            .ok()
            .and_then(|i| self.index.get(i))
            .copied()
        else {
            return Ok(());
        };
        self.file.set_len(e.offset).map_err(|x| self.io(x))?;
        self.index.truncate(n as usize);
        self.end = e.offset;
        self.total_bytes = e.bytes_before;
        self.total_marks = e.marks_before;
        Ok(())
    }

    fn append_block(&mut self, data: &[u8]) -> Result<(), MediumError> {
        self.append(KIND_BLOCK, data)
    }

    /// All the records in one write: a torn one is cut on open like any.
    fn append_filemarks(&mut self, count: u32) -> Result<(), MediumError> {
        if !self.writable {
            return Err(self.io(std::io::ErrorKind::PermissionDenied.into()));
        }
        let first = self.count();
        let recs: Vec<u8> = (0..count as u64)
            .flat_map(|i| record_header(KIND_FILEMARK, first + i, &[]))
            .collect();
        self.file
            .write_all_at(&recs, self.end)
            .map_err(|e| self.io(e))?;
        for _ in 0..count {
            self.push(ObjectKind::Filemark);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), MediumError> {
        if self.writable {
            self.file.sync_data().map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }
}

/// The image header bytes, for tests that damage one.
#[cfg(test)]
pub(super) fn tests_header(capacity: u64) -> [u8; IMAGE_HEADER_LEN as usize] {
    image_header(capacity)
}
