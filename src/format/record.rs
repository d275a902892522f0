//! Data records: one tape block = 48-byte header + payload (FORMAT.md
//! "Data record"). The hot path: no allocation, one CRC pass.

use super::codec::{check_flags, check_version, magic_of};
use super::FormatError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Header of one data record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordHeader {
    pub set_id: Uuid,
    /// 0-based position of the record in its set.
    pub seq: u64,
    pub payload_len: u32,
    /// CRC32C of the header (CRC field zeroed) followed by the payload.
    /// For a record with `crc_deferred`, the CRC the bytes give (the stored
    /// field is 0; the set's CRC index holds the expected value).
    pub crc: u32,
    /// Flag bit 0: the CRC is not in this header but in the set's CRC index
    /// (third-party-copy sets, FORMAT.md "CRC index").
    pub crc_deferred: bool,
}

const WHAT: &str = "data record";

// Byte offsets in the header.
const FLAGS: usize = 10;
const SET_ID: usize = 12;
const SEQ: usize = 28;
const PAYLOAD_LEN: usize = 36;
const CRC: usize = 40;

impl RecordHeader {
    pub const MAGIC: [u8; 8] = *b"SANMDAT1";
    /// Header length; the payload starts here.
    pub const LEN: usize = 48;
    /// Flags bit 0: the CRC is kept in the set's CRC index.
    pub const FLAG_CRC_DEFERRED: u16 = 0x0001;

    /// The 48 header bytes with `crc` as given.
    fn to_bytes(self) -> [u8; Self::LEN] {
        let mut h = [0u8; Self::LEN];
        h[..8].copy_from_slice(&Self::MAGIC);
        h[8..10].copy_from_slice(&super::BASE_VERSION.to_be_bytes());
        // reserved (44..48) stays zero.
        if self.crc_deferred {
            h[FLAGS..FLAGS + 2].copy_from_slice(&Self::FLAG_CRC_DEFERRED.to_be_bytes());
        }
        h[SET_ID..SEQ].copy_from_slice(self.set_id.as_bytes());
        h[SEQ..PAYLOAD_LEN].copy_from_slice(&self.seq.to_be_bytes());
        h[PAYLOAD_LEN..CRC].copy_from_slice(&self.payload_len.to_be_bytes());
        h[CRC..CRC + 4].copy_from_slice(&self.crc.to_be_bytes());
        h
    }
}

/// CRC of a header whose CRC field is zero, chained over the payload.
fn record_crc(zeroed_header: &[u8; RecordHeader::LEN], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(zeroed_header), payload)
}

/// The header for `payload`, for writers that read the payload straight
/// into `buf[48..]` and then put this into `buf[..48]`.
///
/// Panics if `payload` is longer than `u32::MAX` bytes (tape blocks are at
/// most a few MiB).
pub fn encode_record_header(set_id: Uuid, seq: u64, payload: &[u8]) -> [u8; RecordHeader::LEN] {
    let payload_len = u32::try_from(payload.len()).expect("data record payload over 4 GiB");
    let mut h = RecordHeader {
        set_id,
        seq,
        payload_len,
        crc: 0,
        crc_deferred: false,
    }
    .to_bytes();
    let crc = record_crc(&h, payload);
    h[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    h
}

/// The header of a record whose payload this writer never sees (a copy
/// manager appends it): CRC field 0, flag CRC_DEFERRED. The CRC32C of the
/// whole block (header + payload) is the record's CRC, and goes in the
/// set's CRC index.
pub fn encode_deferred_record_header(
    set_id: Uuid,
    seq: u64,
    payload_len: u32,
) -> [u8; RecordHeader::LEN] {
    RecordHeader {
        set_id,
        seq,
        payload_len,
        crc: 0,
        crc_deferred: true,
    }
    .to_bytes()
}

/// Clear `out` and write header + payload into it (reuses its capacity).
///
/// Panics if `payload` is longer than `u32::MAX` bytes.
pub fn encode_record(set_id: Uuid, seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(RecordHeader::LEN + payload.len());
    out.extend_from_slice(&encode_record_header(set_id, seq, payload));
    out.extend_from_slice(payload);
}

/// Check magic, version, flags, length and CRC of one tape block; returns
/// the header and the payload. Bytes after the payload (padding in
/// fixed-block mode) are ignored.
pub fn decode_record(block: &[u8]) -> Result<(RecordHeader, &[u8]), FormatError> {
    let Some(hdr) = block.get(..RecordHeader::LEN) else {
        // Report a foreign block or a newer version as such even when the
        // block is shorter than this version's header.
        if block.len() >= 8 && block[..8] != RecordHeader::MAGIC {
            return Err(FormatError::BadMagic {
                what: WHAT,
                found: magic_of(block),
            });
        }
        if block.len() >= 10 {
            check_version(WHAT, block)?;
        }
        return Err(FormatError::Truncated {
            what: WHAT,
            need: RecordHeader::LEN,
            have: block.len(),
        });
    };
    let mut h = [0u8; RecordHeader::LEN];
    h.copy_from_slice(hdr);
    if h[..8] != RecordHeader::MAGIC {
        return Err(FormatError::BadMagic {
            what: WHAT,
            found: magic_of(&h),
        });
    }
    check_version(WHAT, &h)?;
    let flags = u16::from_be_bytes([h[FLAGS], h[FLAGS + 1]]);
    check_flags(WHAT, flags, RecordHeader::FLAG_CRC_DEFERRED)?;
    let crc_deferred = flags & RecordHeader::FLAG_CRC_DEFERRED != 0;
    let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let payload_len = be32(PAYLOAD_LEN);
    let crc = be32(CRC);
    let need = RecordHeader::LEN as u64 + payload_len as u64;
    if (block.len() as u64) < need {
        return Err(FormatError::Truncated {
            what: WHAT,
            need: need.try_into().unwrap_or(usize::MAX),
            have: block.len(),
        });
    }
    let payload = &block[RecordHeader::LEN..RecordHeader::LEN + payload_len as usize];
    let mut set = [0u8; 16];
    set.copy_from_slice(&h[SET_ID..SEQ]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&h[SEQ..PAYLOAD_LEN]);
    h[CRC..CRC + 4].fill(0);
    let found = record_crc(&h, payload);
    if crc_deferred && crc != 0 {
        return Err(FormatError::Invalid {
            what: WHAT,
            reason: format!("CRC field {crc:#010x} in a record whose CRC is deferred"),
        });
    }
    if !crc_deferred && found != crc {
        return Err(FormatError::BadCrc {
            what: WHAT,
            expected: crc,
            found,
        });
    }
    Ok((
        RecordHeader {
            set_id: Uuid::from_bytes(set),
            seq: u64::from_be_bytes(seq),
            payload_len,
            crc: found,
            crc_deferred,
        },
        payload,
    ))
}

/// [`decode_record`], then check it is record `expected_seq` of set
/// `expected_set`; returns the header and the payload.
pub fn check_record(
    block: &[u8],
    expected_set: Uuid,
    expected_seq: u64,
) -> Result<(RecordHeader, &[u8]), FormatError> {
    let (h, payload) = decode_record(block)?;
    if h.set_id != expected_set {
        return Err(FormatError::WrongSet {
            expected: expected_set,
            found: h.set_id,
        });
    }
    if h.seq != expected_seq {
        return Err(FormatError::OutOfSequence {
            expected: expected_seq,
            found: h.seq,
        });
    }
    Ok((h, payload))
}
