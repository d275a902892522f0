//! Sizes and counts on the command line: `--block-size` with sg_dd's
//! suffixes, checked against the drive's READ BLOCK LIMITS, and block
//! counts that must not be zero.

use std::fmt;

use anyhow::Result;

use super::exit::Refusal;
use crate::device::Tape;
use crate::format::RecordHeader;
use crate::scsi::ssc::BlockLimits;
use crate::transport::Transport;

/// A size in bytes as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            n if n >= KIB && n % KIB == 0 => write!(f, "{} KiB", n / KIB),
            n => write!(f, "{n} bytes"),
        }
    }
}

impl ByteSize {
    /// The size as `--block-size` takes it: `1M`, `64K` or bytes.
    pub fn arg(self) -> String {
        match self.0 {
            n if n >= MIB && n % MIB == 0 => format!("{}M", n / MIB),
            n if n >= KIB && n % KIB == 0 => format!("{}K", n / KIB),
            n => n.to_string(),
        }
    }
}

/// `--block-size`: a number of bytes, or with one of sg_dd's suffixes:
/// k, K or KiB (1024), KB (1000), m, M or MiB (1048576), MB (1000000).
pub fn parse_byte_size(s: &str) -> Result<ByteSize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let unit = match suffix {
        "" | "c" => 1,
        "k" | "K" | "KiB" => KIB,
        "KB" => 1000,
        "m" | "M" | "MiB" => MIB,
        "MB" => 1_000_000,
        _ => {
            return Err(format!(
                "'{s}' is not a size: give bytes, or a number with K, KiB, KB, M, MiB or MB"
            ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size: it must start with a number"))?;
    match n.checked_mul(unit) {
        Some(0) => Err("a block size of 0 bytes holds nothing".to_string()),
        Some(b) => Ok(ByteSize(b)),
        None => Err(format!("'{s}' is too large")),
    }
}

/// `--blocks`: a count of at least 1.
pub fn parse_blocks(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err(
            "0 blocks copies nothing: give at least 1, or leave --blocks out for the rest of the LUN"
                .to_string(),
        ),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("'{s}' is not a block count: {e}")),
    }
}

/// Below this, tape blocks cost throughput (one command per block).
pub const SMALL_BLOCK: u64 = 64 * KIB;

/// The tape writer's cost model: each WRITE(6) costs a fixed time plus its
/// bytes at a streaming rate. Fitted to a raw tape writer at queue depth
/// 1 on tgt over loopback (171 MiB/s with 64 KiB blocks, 397 MiB/s with
/// 1 MiB); a real drive differs, the proportions less so.
const SECONDS_PER_COMMAND: f64 = 0.000_222;
const STREAM_BYTES_PER_SECOND: f64 = 456.5e6;

/// The tape writes' best rate, in MB/s, with records of `bytes`.
pub fn expected_mbps(bytes: u64) -> f64 {
    let b = bytes as f64;
    b / (SECONDS_PER_COMMAND + b / STREAM_BYTES_PER_SECOND) / 1e6
}

/// The verdict on `--block-size` for a drive with `limits` (when it
/// answered READ BLOCK LIMITS) and a source of `disk_block`-byte blocks
/// (when known): a refusal, or warnings with the speed to expect.
pub fn judge_block_size(
    size: ByteSize,
    limits: Option<&BlockLimits>,
    disk_block: Option<u32>,
) -> Result<Vec<String>, String> {
    if let Some(l) = limits {
        let (min, max) = (u64::from(l.min_block_length), u64::from(l.max_block_length));
        // SSC-4 7.6: a maximum of 0 means no limit is given.
        if max != 0 && size.0 > max {
            return Err(format!(
                "--block-size {size} ({} bytes) is larger than the drive takes: READ BLOCK LIMITS allows at most {} ({max} bytes); give --block-size {} or less",
                size.0,
                ByteSize(max),
                ByteSize(max).arg()
            ));
        }
        if size.0 < min {
            return Err(format!(
                "--block-size {size} is smaller than the drive takes: READ BLOCK LIMITS allows at least {min} bytes"
            ));
        }
    }
    let mut warnings = Vec::new();
    let reference = expected_mbps(256 * KIB);
    if let Some(bs) = disk_block.map(u64::from).filter(|&b| b > 0) {
        let header = RecordHeader::LEN as u64;
        if size.0 % bs != 0 && size.0 > header + bs {
            let payload = (size.0 - header) / bs * bs;
            warnings.push(format!(
                "--block-size {size} is not a multiple of the source's {bs}-byte blocks: each tape block carries {payload} bytes of data ({} blocks) in {} bytes; expect at most about {:.0} MB/s",
                payload / bs,
                payload + header,
                expected_mbps(payload + header)
            ));
        }
    }
    if size.0 < SMALL_BLOCK {
        warnings.push(format!(
            "--block-size {size} is below 64 KiB: one tape command per {size}, so expect at most about {:.0} MB/s, against about {reference:.0} MB/s with 256 KiB blocks (estimated from the per-command cost of a tape drive on loopback)",
            expected_mbps(size.0)
        ));
    }
    Ok(warnings)
}

/// Check `size` against the drive behind `tape` (READ BLOCK LIMITS) and a
/// source of `disk_block`-byte blocks: refused with [`Refusal`] when the
/// drive cannot take it; warnings go to the log.
pub fn check_tape_block<T: Transport>(
    tape: &mut Tape<T>,
    size: ByteSize,
    disk_block: Option<u32>,
) -> Result<()> {
    let limits = match tape.block_limits() {
        Ok(l) => Some(l),
        Err(e) => {
            log::warn!(
                "{}: READ BLOCK LIMITS failed ({e}); --block-size {size} is not checked against the drive",
                tape.scsi.name()
            );
            None
        }
    };
    let warnings = judge_block_size(size, limits.as_ref(), disk_block)
        .map_err(|why| Refusal(format!("{}: {why}", tape.scsi.name())))?;
    for w in warnings {
        log::warn!("{w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u32) -> BlockLimits {
        BlockLimits {
            granularity: 0,
            max_block_length: max,
            min_block_length: 1,
        }
    }

    #[test]
    fn sizes_take_sg_dd_suffixes() {
        let p = |s| parse_byte_size(s).map(|b| b.0);
        assert_eq!(p("262144"), Ok(262_144));
        assert_eq!(p("256K"), Ok(262_144));
        assert_eq!(p("256k"), Ok(262_144));
        assert_eq!(p("256KiB"), Ok(262_144));
        assert_eq!(p("64KB"), Ok(64_000));
        assert_eq!(p("1M"), Ok(1 << 20));
        assert_eq!(p("2MiB"), Ok(2 << 20));
        assert_eq!(p("1MB"), Ok(1_000_000));
        assert!(p("0").is_err());
        assert!(p("1G").is_err());
        assert!(p("K").is_err());
        assert!(p("12 K").is_err());
        assert!(p("99999999999999999999M").is_err());
        assert_eq!(ByteSize(1 << 20).to_string(), "1 MiB");
        assert_eq!(ByteSize(65_536).to_string(), "64 KiB");
        assert_eq!(ByteSize(100_000).to_string(), "100000 bytes");
    }

    #[test]
    fn zero_blocks_are_refused() {
        assert!(parse_blocks("0").unwrap_err().contains("at least 1"));
        assert_eq!(parse_blocks("8"), Ok(8));
        assert!(parse_blocks("x").is_err());
    }

    #[test]
    fn a_block_above_the_drive_maximum_is_refused() {
        // tgt's tape: READ BLOCK LIMITS says 1 MiB at most.
        let e = judge_block_size(ByteSize(2 << 20), Some(&limits(1 << 20)), Some(512)).unwrap_err();
        assert!(e.contains("at most 1 MiB (1048576 bytes)"), "{e}");
        assert!(e.contains("--block-size 2 MiB (2097152 bytes)"), "{e}");
        assert!(e.ends_with("give --block-size 1M or less"), "{e}");
        assert_eq!(ByteSize(65_536).arg(), "64K");
        assert_eq!(ByteSize(100_000).arg(), "100000");
        assert!(judge_block_size(ByteSize(1 << 20), Some(&limits(1 << 20)), Some(512)).is_ok());
        // No maximum given, or no answer: not refused.
        assert!(judge_block_size(ByteSize(2 << 20), Some(&limits(0)), None).is_ok());
        assert!(judge_block_size(ByteSize(2 << 20), None, None).is_ok());
        let small = BlockLimits {
            min_block_length: 4096,
            ..limits(1 << 20)
        };
        assert!(judge_block_size(ByteSize(1024), Some(&small), None).is_err());
    }

    #[test]
    fn odd_and_small_blocks_get_a_warning_with_the_expected_speed() {
        let w = judge_block_size(ByteSize(256 << 10), Some(&limits(1 << 20)), Some(512)).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let w = judge_block_size(ByteSize(100_000), Some(&limits(1 << 20)), Some(512)).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("99840 bytes of data (195 blocks) in 99888 bytes"),
            "{w:?}"
        );
        assert!(w[0].contains("MB/s"), "{w:?}");
        let w = judge_block_size(ByteSize(16 << 10), None, Some(4096)).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("below 64 KiB"), "{w:?}");
        // The model: small blocks are command-bound, large ones stream.
        assert!(expected_mbps(16 << 10) < expected_mbps(64 << 10));
        assert!(expected_mbps(64 << 10) < expected_mbps(1 << 20));
        assert!((expected_mbps(64 << 10) - 171.0 * 1.048_576).abs() < 5.0);
        assert!((expected_mbps(1 << 20) - 397.0 * 1.048_576).abs() < 5.0);
    }
}
