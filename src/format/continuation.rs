//! The continuation header: the first block of a multi-volume set's tape
//! file on every volume after the first (FORMAT.md "Multi-volume sets").
//! New in format version 2.

use super::codec::{Reader, Writer, CRC_LEN};
use super::FormatError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where part `part` of set `set_id` resumes, and where the part before it
/// is. The set header stays on the first volume; a part names it by set
/// id, and a reader joins the parts in part order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    pub set_id: Uuid,
    /// The volume this part is on (its label's uuid).
    pub volume_id: Uuid,
    /// Part number, from 2 (part 1 starts with the set header).
    pub part: u32,
    /// The set header's payload_size, so this part can be read alone.
    pub payload_size: u32,
    /// Sequence number of this part's first data record.
    pub first_seq: u64,
    /// Payload bytes of the set before this part: where in the payload
    /// stream it resumes.
    pub offset: u64,
    /// The source LBA this part resumes at.
    pub lba: u64,
    /// The volume the previous part is on.
    pub prev_volume: Uuid,
    /// The previous part's tape file on that volume.
    pub prev_file: u32,
    /// Unix seconds when this part was started.
    pub created: u64,
    /// The previous volume's label name (its cartridge), 1..=64 bytes.
    pub prev_name: String,
}

const WHAT: &str = "continuation header";

impl Continuation {
    pub const MAGIC: [u8; 8] = *b"SANMCON1";
    /// The format version that defines it (and the only one it has).
    pub const VERSION: u16 = 2;
    /// Fixed part, before the previous volume's name.
    const FIXED: usize = 112;
    const MIN_LEN: usize = Self::FIXED + 2 + CRC_LEN;

    /// Encoded bytes (118 + the name's length). A name over 64 bytes is
    /// cut at the last character boundary that fits, as in a label.
    pub fn encode(&self) -> Vec<u8> {
        let mut end = self.prev_name.len().min(super::VolumeLabel::MAX_NAME);
        while !self.prev_name.is_char_boundary(end) {
            end -= 1;
        }
        let mut w = Writer::versioned(&Self::MAGIC, Self::MIN_LEN + end, Self::VERSION);
        w.uuid(&self.set_id);
        w.uuid(&self.volume_id);
        w.u32(self.part);
        w.u32(self.payload_size);
        w.u64(self.first_seq);
        w.u64(self.offset);
        w.u64(self.lba);
        w.uuid(&self.prev_volume);
        w.u32(self.prev_file);
        w.u32(0);
        w.u64(self.created);
        debug_assert_eq!(w.total_len() - CRC_LEN, Self::FIXED);
        w.str16(&self.prev_name[..end]);
        // At most 182 bytes: cannot overflow.
        w.finish().unwrap_or_default()
    }

    /// Decode a continuation header from the front of `buf`; bytes after
    /// it are ignored.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(buf, &Self::MAGIC, WHAT, Self::MIN_LEN)?;
        if r.version() < Self::VERSION {
            return Err(FormatError::Invalid {
                what: WHAT,
                reason: format!(
                    "version {} has no continuation headers (they are new in version {})",
                    r.version(),
                    Self::VERSION
                ),
            });
        }
        let set_id = r.uuid()?;
        let volume_id = r.uuid()?;
        let part = r.u32()?;
        if part < 2 {
            return Err(r.invalid(format!(
                "part number {part}: a continuation is part 2 or later"
            )));
        }
        let payload_size = r.u32()?;
        let first_seq = r.u64()?;
        let offset = r.u64()?;
        let lba = r.u64()?;
        let prev_volume = r.uuid()?;
        let prev_file = r.u32()?;
        r.skip(4)?;
        let created = r.u64()?;
        let prev_name = r.str16("previous volume name")?;
        Ok(Continuation {
            set_id,
            volume_id,
            part,
            payload_size,
            first_seq,
            offset,
            lba,
            prev_volume,
            prev_file,
            created,
            prev_name,
        })
    }
}
