//! The volume label: the only block of tape file 0 (FORMAT.md "Volume label").

use super::codec::{Reader, Writer, CRC_LEN, PRELUDE_LEN};
use super::FormatError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Names a tape: first block on the volume, followed by a filemark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeLabel {
    /// 1..=64 bytes of UTF-8, chosen by the user.
    pub name: String,
    pub uuid: Uuid,
    /// Unix seconds when the tape was labelled.
    pub created: u64,
}

const WHAT: &str = "volume label";

impl VolumeLabel {
    pub const MAGIC: [u8; 8] = *b"SANMVOL1";
    /// Longest name in bytes.
    pub const MAX_NAME: usize = 64;
    /// Fixed part: frame prelude, uuid 16, created 8, name length 2.
    const FIXED: usize = PRELUDE_LEN + 16 + 8 + 2;

    /// A label, with the name checked (1..=64 bytes).
    pub fn new(name: &str, uuid: Uuid, created: u64) -> Result<Self, FormatError> {
        check_name(name.len())?;
        Ok(VolumeLabel {
            name: name.to_owned(),
            uuid,
            created,
        })
    }

    /// Encoded bytes (47..=110 of them). A name over 64 bytes is cut at the
    /// last character boundary that fits; an empty name encodes but does not
    /// decode, so build labels with [`VolumeLabel::new`].
    pub fn encode(&self) -> Vec<u8> {
        let mut end = self.name.len().min(Self::MAX_NAME);
        while !self.name.is_char_boundary(end) {
            end -= 1;
        }
        let mut w = Writer::new(&Self::MAGIC, Self::FIXED + end + CRC_LEN);
        w.uuid(&self.uuid);
        w.u64(self.created);
        w.str16(&self.name[..end]);
        // At most 110 bytes: cannot overflow.
        w.finish().unwrap_or_default()
    }

    /// Decode a label from the front of `buf`; bytes after it are ignored.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(buf, &Self::MAGIC, WHAT, Self::FIXED + 1 + CRC_LEN)?;
        let uuid = r.uuid()?;
        let created = r.u64()?;
        let name = r.str16("name")?;
        check_name(name.len())?;
        Ok(VolumeLabel {
            name,
            uuid,
            created,
        })
    }

    /// Whether `buf` starts with our label magic (tells "a tape of ours,
    /// maybe damaged" from "some other program's tape").
    pub fn looks_like(buf: &[u8]) -> bool {
        buf.starts_with(&Self::MAGIC)
    }
}

fn check_name(len: usize) -> Result<(), FormatError> {
    if (1..=VolumeLabel::MAX_NAME).contains(&len) {
        Ok(())
    } else {
        Err(FormatError::Invalid {
            what: WHAT,
            reason: format!("name is {len} bytes, must be 1..={}", VolumeLabel::MAX_NAME),
        })
    }
}
