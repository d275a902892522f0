//! The CRC index of a third-party-copy set (FORMAT.md "CRC index"): the
//! CRC32C of each data record, which only the copy manager could compute,
//! written after the data and before the trailer.

use super::codec::{Reader, Writer, CRC_LEN, MAX_FRAMED_LEN, PRELUDE_LEN};
use super::{DigestAlgorithm, FormatError, SetDigest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const WHAT: &str = "CRC index";
/// set_id, first_seq, count.
const FIXED_BODY: usize = 16 + 8 + 4;

/// CRCs of records `first_seq ..` of one set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrcIndex {
    pub set_id: Uuid,
    pub first_seq: u64,
    pub crcs: Vec<u32>,
}

impl CrcIndex {
    pub const MAGIC: [u8; 8] = *b"SANMIDX1";
    /// Most CRCs one index record holds (it stays within the 64 KiB frame).
    pub const MAX_ENTRIES: usize = (MAX_FRAMED_LEN - PRELUDE_LEN - FIXED_BODY - CRC_LEN) / 4;

    /// Encoded bytes; `None` when it holds more than [`Self::MAX_ENTRIES`].
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.crcs.len() > Self::MAX_ENTRIES {
            return None;
        }
        let len = PRELUDE_LEN + FIXED_BODY + 4 * self.crcs.len() + CRC_LEN;
        let mut w = Writer::new(&Self::MAGIC, len);
        w.uuid(&self.set_id);
        w.u64(self.first_seq);
        w.u32(self.crcs.len() as u32);
        for c in &self.crcs {
            w.u32(*c);
        }
        w.finish()
    }

    /// Decode an index from the front of `buf`; bytes after it are ignored.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let min = PRELUDE_LEN + FIXED_BODY + CRC_LEN;
        let mut r = Reader::open(buf, &Self::MAGIC, WHAT, min)?;
        let set_id = r.uuid()?;
        let first_seq = r.u64()?;
        let count = r.u32()? as usize;
        // The frame bounds the record to 64 KiB, so a count beyond it
        // fails on the first missing entry instead of allocating.
        if count > Self::MAX_ENTRIES {
            return Err(r.invalid(format!("{count} entries (at most {})", Self::MAX_ENTRIES)));
        }
        let mut crcs = Vec::with_capacity(count);
        for _ in 0..count {
            crcs.push(r.u32()?);
        }
        Ok(CrcIndex {
            set_id,
            first_seq,
            crcs,
        })
    }
}

/// The digest a third-party-copy set's trailer holds: the set's digest
/// algorithm over the records' CRC32Cs, each big-endian, in sequence order.
#[derive(Clone)]
pub struct CrcChainDigest(SetDigest);

impl CrcChainDigest {
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        CrcChainDigest(SetDigest::new(algorithm))
    }

    pub fn update(&mut self, crc: u32) {
        self.0.update(&crc.to_be_bytes());
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finish()
    }
}

impl std::fmt::Debug for CrcChainDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CrcChainDigest(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Uuid = Uuid::from_bytes([0x11; 16]);

    #[test]
    fn golden_bytes_and_round_trip() {
        let idx = CrcIndex {
            set_id: S,
            first_seq: 2,
            crcs: vec![0xdead_beef, 0x0102_0304],
        };
        let b = idx.encode().unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(b"SANMIDX1");
        want.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 56]);
        want.extend_from_slice(&[0x11; 16]);
        want.extend_from_slice(&2u64.to_be_bytes());
        want.extend_from_slice(&2u32.to_be_bytes());
        want.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
        let crc = crc32c::crc32c(&want);
        want.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(b, want);
        assert_eq!(CrcIndex::decode(&b).unwrap(), idx);
        assert!(CrcIndex::decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn largest_index_fits_one_frame_and_one_more_does_not() {
        let mut idx = CrcIndex {
            set_id: S,
            first_seq: 0,
            crcs: vec![7; CrcIndex::MAX_ENTRIES],
        };
        let b = idx.encode().unwrap();
        assert!(b.len() <= MAX_FRAMED_LEN);
        assert_eq!(
            CrcIndex::decode(&b).unwrap().crcs.len(),
            CrcIndex::MAX_ENTRIES
        );
        idx.crcs.push(7);
        assert_eq!(idx.encode(), None);
    }

    #[test]
    fn a_count_beyond_the_record_is_an_error() {
        let idx = CrcIndex {
            set_id: S,
            first_seq: 0,
            crcs: vec![1],
        };
        let mut b = idx.encode().unwrap();
        // Claim 2 entries, keep the frame valid.
        b[40..44].copy_from_slice(&2u32.to_be_bytes());
        let n = b.len() - 4;
        let crc = crc32c::crc32c(&b[..n]);
        b[n..].copy_from_slice(&crc.to_be_bytes());
        assert!(CrcIndex::decode(&b).is_err());
    }

    #[test]
    fn chain_digest_is_the_set_digest_of_big_endian_crcs() {
        use sha2::{Digest, Sha256};
        let mut d = CrcChainDigest::new(DigestAlgorithm::Sha256);
        d.update(0x0102_0304);
        d.update(0x0506_0708);
        let want: [u8; 32] = Sha256::digest([1, 2, 3, 4, 5, 6, 7, 8]).into();
        assert_eq!(d.finish(), want);
        let mut d = CrcChainDigest::new(DigestAlgorithm::Blake3);
        d.update(0x0102_0304);
        d.update(0x0506_0708);
        let want: [u8; 32] = blake3::hash(&[1, 2, 3, 4, 5, 6, 7, 8]).into();
        assert_eq!(d.finish(), want);
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = CrcIndex::decode(&b);
        }
    }
}
