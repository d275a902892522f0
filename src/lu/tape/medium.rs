//! What a tape drive reads and writes: a [`Medium`], a sequence of logical
//! objects (blocks and filemarks) with end of data after the last one.
//! The drive keeps the position and the SCSI semantics; a medium only
//! stores objects. Two kinds: [`MemoryMedium`] (a `Vec`, for engine tests
//! and the router) and the file-backed image (`super::image`).

/// One object as stored: a block with its data, or a filemark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeObject {
    Block(Vec<u8>),
    Filemark,
}

/// What an object is, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A block of this many bytes.
    Block(u32),
    Filemark,
}

/// Why a medium could not carry out an operation: the drive turns these
/// into MEDIUM ERROR sense.
#[derive(Debug, thiserror::Error)]
pub enum MediumError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on the medium that are not what was written (a record whose
    /// checksum does not match, a header that is not an image header).
    #[error("{path}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
    /// The object does not exist (past end of data).
    #[error("no object {0}")]
    NoObject(u64),
}

/// A sequence of logical objects (SSC-4 4.2.2), numbered from 0.
pub trait Medium {
    /// Objects on the medium; end of data is right after the last one.
    fn count(&self) -> u64;

    /// What object `n` is; `None` at or past end of data.
    fn kind(&self, n: u64) -> Option<ObjectKind>;

    /// Copy up to `buf.len()` bytes of block `n` into `buf`; returns the
    /// length of the whole block.
    fn read_block(&mut self, n: u64, buf: &mut [u8]) -> Result<usize, MediumError>;

    /// Bytes of block data in objects `0..n`.
    fn bytes_before(&self, n: u64) -> u64;

    /// Filemarks among objects `0..n`.
    fn marks_before(&self, n: u64) -> u64;

    /// Drop objects `n..`: end of data moves to `n`.
    fn truncate(&mut self, n: u64) -> Result<(), MediumError>;

    /// Append a block after the last object.
    fn append_block(&mut self, data: &[u8]) -> Result<(), MediumError>;

    /// Append `count` filemarks after the last object.
    fn append_filemarks(&mut self, count: u32) -> Result<(), MediumError>;

    /// Make what was written durable (WRITE FILEMARKS, unload).
    fn sync(&mut self) -> Result<(), MediumError>;

    /// Bytes of block data the medium holds (the physical end).
    fn capacity(&self) -> u64;
}

/// A medium held in memory: the objects in a `Vec`.
#[derive(Debug, Clone, Default)]
pub struct MemoryMedium {
    pub objects: Vec<TapeObject>,
    pub capacity: u64,
}

impl MemoryMedium {
    pub fn new(capacity: u64) -> Self {
        MemoryMedium {
            objects: Vec::new(),
            capacity,
        }
    }
}

impl Medium for MemoryMedium {
    fn count(&self) -> u64 {
        self.objects.len() as u64
    }

    fn kind(&self, n: u64) -> Option<ObjectKind> {
        Some(match self.objects.get(usize::try_from(n).ok()?)? {
            TapeObject::Block(b) => ObjectKind::Block(b.len() as u32),
            TapeObject::Filemark => ObjectKind::Filemark,
        })
    }

    fn read_block(&mut self, n: u64, buf: &mut [u8]) -> Result<usize, MediumError> {
        match usize::try_from(n).ok().and_then(|i| self.objects.get(i)) {
            Some(TapeObject::Block(b)) => {
                let k = b.len().min(buf.len());
                buf[..k].copy_from_slice(&b[..k]);
                Ok(b.len())
            }
            _ => Err(MediumError::NoObject(n)),
        }
    }

    // Summed on demand: tests may change blocks through `objects`.
    fn bytes_before(&self, n: u64) -> u64 {
        let end = (n as usize).min(self.objects.len());
        self.objects[..end]
            .iter()
            .map(|o| match o {
                TapeObject::Block(b) => b.len() as u64,
                TapeObject::Filemark => 0,
            })
            .sum()
    }

    fn marks_before(&self, n: u64) -> u64 {
        let end = (n as usize).min(self.objects.len());
        self.objects[..end]
            .iter()
            .filter(|o| **o == TapeObject::Filemark)
            .count() as u64
    }

    fn truncate(&mut self, n: u64) -> Result<(), MediumError> {
        self.objects.truncate(n as usize);
        Ok(())
    }

    fn append_block(&mut self, data: &[u8]) -> Result<(), MediumError> {
        self.objects.push(TapeObject::Block(data.to_vec()));
        Ok(())
    }

    fn append_filemarks(&mut self, count: u32) -> Result<(), MediumError> {
        self.objects
            .extend(std::iter::repeat_n(TapeObject::Filemark, count as usize));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), MediumError> {
        Ok(())
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }
}
