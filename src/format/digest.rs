//! The set digest: which algorithm a set uses (set header, FORMAT.md "Set
//! header") and the hasher that computes it over the payload stream, or
//! over the record CRCs of a third-party-copy set.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The digest algorithm of a set's trailer digest. A set header without
/// the digest field (every set written before it existed) is SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// SHA-256 (FIPS 180-4): what every set had before BLAKE3.
    Sha256,
    /// BLAKE3, 256-bit output: the same 128-bit security, cheaper per byte.
    Blake3,
}

impl DigestAlgorithm {
    /// What a set header without the digest field means.
    pub const ABSENT: DigestAlgorithm = DigestAlgorithm::Sha256;
    /// What new sets use unless told otherwise.
    pub const FOR_NEW_SETS: DigestAlgorithm = DigestAlgorithm::Blake3;

    /// The code in the set header's digest field.
    pub const fn code(self) -> u8 {
        match self {
            DigestAlgorithm::Sha256 => 1,
            DigestAlgorithm::Blake3 => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        [DigestAlgorithm::Sha256, DigestAlgorithm::Blake3]
            .into_iter()
            .find(|a| a.code() == code)
    }

    /// The lowercase name the CLI, the catalog and `--json` use.
    pub const fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Blake3 => "blake3",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [DigestAlgorithm::Sha256, DigestAlgorithm::Blake3]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Both hashers live inline: the backup clones the running state once per
/// record, and a clone must not allocate.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum Hasher {
    Sha256(Sha256),
    Blake3(blake3::Hasher),
}

/// A set's digest in progress: of the payload stream (the source bytes in
/// order, without record headers), or of the record CRCs
/// ([`super::CrcChainDigest`]). Stored in the trailer.
#[derive(Clone)]
pub struct SetDigest(Hasher);

impl SetDigest {
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        SetDigest(match algorithm {
            DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgorithm::Blake3 => Hasher::Blake3(blake3::Hasher::new()),
        })
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        match self.0 {
            Hasher::Sha256(_) => DigestAlgorithm::Sha256,
            Hasher::Blake3(_) => DigestAlgorithm::Blake3,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    pub fn finish(self) -> [u8; 32] {
        match self.0 {
            Hasher::Sha256(h) => h.finalize().into(),
            Hasher::Blake3(h) => h.finalize().into(),
        }
    }
}

impl fmt::Debug for SetDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SetDigest({})", self.algorithm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(a: DigestAlgorithm, parts: &[&[u8]]) -> String {
        let mut d = SetDigest::new(a);
        parts.iter().for_each(|p| d.update(p));
        ::hex::encode(d.finish())
    }

    #[test]
    fn known_answers() {
        // FIPS 180-4 example and the BLAKE3 reference test vector for "abc".
        assert_eq!(
            digest(DigestAlgorithm::Sha256, &[b"abc"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest(DigestAlgorithm::Blake3, &[b"abc"]),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(
            digest(DigestAlgorithm::Blake3, &[]),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn split_updates_give_the_same_digest() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for a in [DigestAlgorithm::Sha256, DigestAlgorithm::Blake3] {
            let whole = digest(a, &[&data]);
            let (x, y) = data.split_at(262_096);
            assert_eq!(digest(a, &[x, y]), whole, "{a}");
        }
    }

    #[test]
    fn codes_and_names_round_trip() {
        for a in [DigestAlgorithm::Sha256, DigestAlgorithm::Blake3] {
            assert_eq!(DigestAlgorithm::from_code(a.code()), Some(a));
            assert_eq!(DigestAlgorithm::from_name(a.name()), Some(a));
            assert_eq!(SetDigest::new(a).algorithm(), a);
        }
        assert_eq!(DigestAlgorithm::from_code(0), None);
        assert_eq!(DigestAlgorithm::from_code(3), None);
        assert_eq!(DigestAlgorithm::from_name("md5"), None);
    }
}
