//! Single-thread throughput of the per-byte work a backup does on this
//! machine: the set digest (SHA-256 and BLAKE3, through the engine's
//! `SetDigest`) and the record CRC32C, over record-sized payloads.
//!
//! ```text
//! digest_speed [MiB]     default 1024; prints one line per algorithm
//! ```
//!
//! Each line reads `digest_speed NAME = MB/s (s/GiB)`; MB/s is 10^6
//! bytes a second, as everywhere in sanmover. The buffer is filled with
//! pseudo-random bytes and stays in cache-sized records, as the engine
//! hands each record's payload to the digest right after reading it.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use sanmover::format::{DigestAlgorithm, SetDigest};

/// The payload of one 256 KiB tape block (FORMAT.md: 48-byte header).
const PAYLOAD: usize = 262_144 - 48;

fn main() -> ExitCode {
    let mib = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => 1024,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: digest_speed [MiB]");
            return ExitCode::from(2);
        }
    };
    let total = mib << 20;
    // Eight distinct records, so no run hashes one buffer from L1 alone.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let records: Vec<Vec<u8>> = (0..8)
        .map(|_| {
            (0..PAYLOAD)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    let n = (total / PAYLOAD as u64).max(1);
    let bytes = n * PAYLOAD as u64;
    for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Blake3] {
        let t0 = Instant::now();
        let mut d = SetDigest::new(alg);
        for i in 0..n {
            d.update(&records[i as usize % records.len()]);
        }
        black_box(d.finish());
        line(alg.name(), bytes, t0.elapsed().as_secs_f64());
    }
    let t0 = Instant::now();
    let mut crc = 0u32;
    for i in 0..n {
        crc ^= crc32c::crc32c(&records[i as usize % records.len()]);
    }
    black_box(crc);
    line("crc32c", bytes, t0.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

fn line(name: &str, bytes: u64, seconds: f64) {
    let mbps = bytes as f64 / seconds / 1e6;
    let per_gib = seconds * (1u64 << 30) as f64 / bytes as f64;
    println!("digest_speed {name} = {mbps:.0} MB/s ({per_gib:.3} s/GiB)");
}
