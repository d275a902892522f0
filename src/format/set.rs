//! Set header and set trailer: the first and last block of a backup set's
//! tape file (FORMAT.md "Set header", "Set trailer").

use super::codec::{Reader, Writer, CRC_LEN, MAX_FRAMED_LEN};
use super::{DigestAlgorithm, FormatError, Mode};
use crate::scsi::spc::Designator;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A designation descriptor of the source, as VPD page 0x83 gave it
/// (SPC-4 7.8.6.1), kept so a restore can find the same LU again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoredDesignator {
    /// DESIGNATOR TYPE (low nibble of byte 1).
    pub designator_type: u8,
    /// CODE SET (low nibble of byte 0).
    pub code_set: u8,
    /// ASSOCIATION (bits 5..4 of byte 1).
    pub association: u8,
    #[serde(with = "hex_bytes")]
    pub value: Vec<u8>,
}

impl From<&Designator> for StoredDesignator {
    fn from(d: &Designator) -> Self {
        StoredDesignator {
            designator_type: d.designator_type.0,
            code_set: d.code_set.0,
            association: d.association.0,
            value: d.value.clone(),
        }
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// Which logical unit the data came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// VPD page 0x83 designators (SPC-4 7.8.6).
    pub designators: Vec<StoredDesignator>,
    /// Where it was reached, password removed.
    pub url: String,
    /// INQUIRY T10 VENDOR IDENTIFICATION, trimmed (SPC-4 6.6.2).
    pub vendor: String,
    /// INQUIRY PRODUCT IDENTIFICATION, trimmed.
    pub product: String,
    /// VPD 0x80 unit serial number (SPC-4 7.8.15), may be empty.
    pub serial: String,
}

impl SourceIdentity {
    fn write(&self, w: &mut Writer) {
        w.count16(self.designators.len());
        for d in &self.designators {
            w.u8(d.designator_type);
            w.u8(d.code_set);
            w.u8(d.association);
            w.u8(0);
            w.bytes16(&d.value);
        }
        w.str16(&self.url);
        w.str16(&self.vendor);
        w.str16(&self.product);
        w.str16(&self.serial);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let n = r.u16()?;
        // Each designator is at least 6 bytes, so the record length bounds
        // this loop; no allocation sized by the untrusted count.
        let mut designators = Vec::new();
        for _ in 0..n {
            let designator_type = r.u8()?;
            let code_set = r.u8()?;
            let association = r.u8()?;
            r.skip(1)?;
            designators.push(StoredDesignator {
                designator_type,
                code_set,
                association,
                value: r.bytes16()?.to_vec(),
            });
        }
        Ok(SourceIdentity {
            designators,
            url: r.str16("url")?,
            vendor: r.str16("vendor")?,
            product: r.str16("product")?,
            serial: r.str16("serial")?,
        })
    }
}

/// First block of a set's tape file: what was copied, from where, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetHeader {
    pub set_id: Uuid,
    /// The volume label's uuid.
    pub volume_id: Uuid,
    pub mode: Mode,
    pub source: SourceIdentity,
    /// First source LBA copied.
    pub lba: u64,
    /// Source blocks copied.
    pub blocks: u64,
    /// Source logical block size in bytes.
    pub block_size: u32,
    /// Largest payload of one data record.
    pub payload_size: u32,
    /// Unix seconds when the set was started.
    pub created: u64,
    /// Free text, may be empty.
    pub label: String,
    /// The snapshot LU actually read (serverless mode).
    pub snapshot: Option<SourceIdentity>,
    /// The algorithm of the trailer's digest. Encoded only when it is not
    /// SHA-256 (frame flag DIGEST_FIELD), so a SHA-256 header keeps the
    /// bytes older readers know.
    #[serde(default = "absent_digest")]
    pub digest: DigestAlgorithm,
}

fn absent_digest() -> DigestAlgorithm {
    DigestAlgorithm::ABSENT
}

const HEADER: &str = "set header";
const TRAILER: &str = "set trailer";

impl SetHeader {
    pub const MAGIC: [u8; 8] = *b"SANMSET1";
    /// Fixed part, before the label string.
    const FIXED: usize = 88;
    /// Fixed part, empty label, empty source, CRC.
    const MIN_LEN: usize = Self::FIXED + 2 + 2 + 4 * 2 + CRC_LEN;
    /// Frame flags bit 0: a digest algorithm byte follows the last field.
    /// A flag, not only an appended field: an older reader must refuse the
    /// set rather than check its digest as SHA-256 and call it corrupt.
    pub const FLAG_DIGEST_FIELD: u16 = 0x0001;

    /// Encoded bytes; `Invalid` if they would exceed 64 KiB (the header has
    /// to fit one small tape block and EXTENDED COPY inline data).
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        let mut w = Writer::new(&Self::MAGIC, 512);
        let digest_field = self.digest != DigestAlgorithm::ABSENT;
        if digest_field {
            w.flags(Self::FLAG_DIGEST_FIELD);
        }
        w.uuid(&self.set_id);
        w.uuid(&self.volume_id);
        w.u8(self.mode.0);
        w.u8(self.snapshot.is_some() as u8);
        w.u16(0);
        w.u32(self.block_size);
        w.u64(self.lba);
        w.u64(self.blocks);
        w.u32(self.payload_size);
        w.u32(0);
        w.u64(self.created);
        debug_assert_eq!(w.total_len() - CRC_LEN, Self::FIXED);
        w.str16(&self.label);
        self.source.write(&mut w);
        if let Some(s) = &self.snapshot {
            s.write(&mut w);
        }
        if digest_field {
            w.u8(self.digest.code());
        }
        let len = w.total_len();
        w.finish().ok_or_else(|| FormatError::Invalid {
            what: HEADER,
            reason: format!(
                "encoded header would be {len} bytes or have a field over 65535 bytes; \
                 the limit is {MAX_FRAMED_LEN}"
            ),
        })
    }

    /// Decode a header from the front of `buf`; bytes after it are ignored.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let (mut r, flags) = Reader::open_flagged(
            buf,
            &Self::MAGIC,
            HEADER,
            Self::MIN_LEN,
            Self::FLAG_DIGEST_FIELD,
        )?;
        let set_id = r.uuid()?;
        let volume_id = r.uuid()?;
        let mode = Mode(r.u8()?);
        let has_snapshot = r.bool("snapshot flag")?;
        r.skip(2)?;
        let block_size = r.u32()?;
        let lba = r.u64()?;
        let blocks = r.u64()?;
        let payload_size = r.u32()?;
        r.skip(4)?;
        let created = r.u64()?;
        let label = r.str16("label")?;
        let source = SourceIdentity::read(&mut r)?;
        let snapshot = if has_snapshot {
            Some(SourceIdentity::read(&mut r)?)
        } else {
            None
        };
        let digest = if flags & Self::FLAG_DIGEST_FIELD != 0 {
            let code = r.u8()?;
            DigestAlgorithm::from_code(code).ok_or_else(|| {
                r.invalid(format!(
                    "digest algorithm {code} is not known (written by a newer sanmover?)"
                ))
            })?
        } else {
            DigestAlgorithm::ABSENT
        };
        Ok(SetHeader {
            set_id,
            volume_id,
            mode,
            source,
            lba,
            blocks,
            block_size,
            payload_size,
            created,
            label,
            snapshot,
            digest,
        })
    }
}

/// Last block of a set's tape file: proof the set was finished and what it
/// holds. A set without a valid trailer is incomplete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTrailer {
    pub set_id: Uuid,
    /// Data records written.
    pub records: u64,
    /// Payload bytes written (sum of payload lengths).
    pub bytes: u64,
    /// The set's digest, by the set header's algorithm: of the payload
    /// stream ([`super::SetDigest`]), or with `crc_digest` of the records'
    /// CRCs ([`super::CrcChainDigest`]).
    #[serde(with = "hex_bytes32")]
    pub digest: [u8; 32],
    /// Frame flag bit 0: `digest` covers the records' CRC32Cs, in order,
    /// not the payload: a copy manager moved the data and no writer saw it
    /// (FORMAT.md "Third-party-copy sets").
    pub crc_digest: bool,
    /// The whole planned range was copied (false: the run stopped early and
    /// wrote what it had).
    pub complete: bool,
    /// Why an incomplete set stopped (byte 81; 0 in trailers written
    /// before it was defined).
    pub stop: StopReason,
    /// Unix seconds when the set ended.
    pub ended: u64,
    /// Which part of a multi-volume set this trailer closes, from 1.
    /// Part 1 of a set that did not continue is written as version 1
    /// (no field); any other part as version 2 with this field at 96.
    #[serde(default = "first_part")]
    pub part: u32,
}

fn first_part() -> u32 {
    1
}

/// Why a set's run stopped before the planned range was copied: trailer
/// byte 81, formerly reserved, so 0 keeps its old meaning ("not given").
/// An open code: values this build does not know are kept and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct StopReason(pub u8);

impl StopReason {
    /// Complete sets, and incomplete ones from writers that did not say.
    pub const NOT_GIVEN: StopReason = StopReason(0);
    /// The tape reached early warning (SSC-4 4.2.5).
    pub const END_OF_MEDIUM: StopReason = StopReason(1);
    /// The operator stopped the backup (SIGINT or SIGTERM).
    pub const INTERRUPTED: StopReason = StopReason(2);
    /// The volume is full and the set continues on the next one (format
    /// version 2): the trailer closes one part of a multi-volume set.
    pub const CONTINUES: StopReason = StopReason(3);
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            StopReason::NOT_GIVEN => f.write_str("not given"),
            StopReason::END_OF_MEDIUM => f.write_str("end of medium"),
            StopReason::INTERRUPTED => f.write_str("interrupted"),
            StopReason::CONTINUES => f.write_str("continues on the next volume"),
            StopReason(n) => write!(f, "stop reason {n}"),
        }
    }
}

mod hex_bytes32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut a = [0; 32];
        hex::decode_to_slice(s, &mut a).map_err(serde::de::Error::custom)?;
        Ok(a)
    }
}

impl SetTrailer {
    pub const MAGIC: [u8; 8] = *b"SANMEND1";
    /// Encoded length in format version 1.
    pub const LEN: usize = 100;
    /// Encoded length in format version 2 (the part number added).
    pub const LEN_V2: usize = 104;
    /// Frame flags bit 0: see [`SetTrailer::crc_digest`].
    pub const FLAG_CRC_DIGEST: u16 = 0x0001;

    /// Whether this trailer belongs to a multi-volume set, and so needs
    /// format version 2: an older reader must refuse it rather than take
    /// a continued part for a whole (incomplete) set.
    pub fn is_part(&self) -> bool {
        self.part > 1 || self.stop == StopReason::CONTINUES
    }

    /// Encoded bytes ([`SetTrailer::LEN`] of them, or
    /// [`SetTrailer::LEN_V2`] for a part of a multi-volume set).
    pub fn encode(&self) -> Vec<u8> {
        let v2 = self.is_part();
        let (version, len) = if v2 {
            (2, Self::LEN_V2)
        } else {
            (1, Self::LEN)
        };
        let mut w = Writer::versioned(&Self::MAGIC, len, version);
        if self.crc_digest {
            w.flags(Self::FLAG_CRC_DIGEST);
        }
        w.uuid(&self.set_id);
        w.u64(self.records);
        w.u64(self.bytes);
        w.bytes(&self.digest);
        w.u8(self.complete as u8);
        w.u8(self.stop.0);
        w.bytes(&[0; 6]);
        w.u64(self.ended);
        if v2 {
            w.u32(self.part);
        }
        debug_assert_eq!(w.total_len(), len);
        // Fixed 100 or 104 bytes: cannot overflow.
        w.finish().unwrap_or_default()
    }

    /// Decode a trailer from the front of `buf`; bytes after it are ignored.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let (mut r, flags) =
            Reader::open_flagged(buf, &Self::MAGIC, TRAILER, Self::LEN, Self::FLAG_CRC_DIGEST)?;
        let set_id = r.uuid()?;
        let records = r.u64()?;
        let bytes = r.u64()?;
        let digest = r.array()?;
        let complete = r.bool("complete")?;
        let stop = StopReason(r.u8()?);
        r.skip(6)?;
        let ended = r.u64()?;
        let part = if r.version() >= 2 {
            match r.u32()? {
                0 => return Err(r.invalid("part number 0 (parts count from 1)".into())),
                p => p,
            }
        } else {
            1
        };
        Ok(SetTrailer {
            part,
            set_id,
            records,
            bytes,
            digest,
            complete,
            stop,
            ended,
            crc_digest: flags & Self::FLAG_CRC_DIGEST != 0,
        })
    }
}
