//! Raw disk throughput, the peer `make bench` compares sanmover with.
//!
//! ```text
//! raw_disk read URL CHUNK_BYTES DEPTH    READ(16) of the whole LUN
//! raw_disk write URL CHUNK_BYTES DEPTH   WRITE(16) of the whole LUN
//! ```
//!
//! DEPTH commands in flight on one session, CHUNK_BYTES each (a whole
//! number of blocks; the last chunk may be shorter). No engine: the iSCSI
//! transport and the SBC codec only. Prints one JSON line with bytes,
//! seconds and MBps (10^6 bytes per second, as sanmover does).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sanmover::scsi::sbc::{Capacity16, Read16, ReadCapacity16, Write16};
use sanmover::scsi::{CdbCodec, Lba, Wire};
use sanmover::transport::{Request, Response, Transport};

const TIMEOUT: Duration = Duration::from_secs(60);

mod peer;
use peer::{describe, number, session, Measured, Res};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [op @ ("read" | "write"), url, chunk, depth] => number(chunk)
            .and_then(|c| number(depth).and_then(|d| whole_lun(op == "write", url, c, d))),
        _ => Err("usage: raw_disk read|write URL CHUNK_BYTES DEPTH".into()),
    };
    peer::report("raw_disk", run)
}

fn check(r: &Response) -> Res<()> {
    if r.is_good() {
        return Ok(());
    }
    Err(format!("{}: {}", r.cdb, describe(r)))
}

fn whole_lun(write: bool, url: &str, chunk: usize, depth: usize) -> Res<Measured> {
    let mut t = session(url, depth)?;
    let cap = ReadCapacity16::default().to_cdb();
    let r = t
        .execute(Request::data_in(cap, Capacity16::LEN))
        .map_err(|e| format!("{cap}: {e}"))?;
    check(&r)?;
    let cap = Capacity16::parse(&r.buf[..r.transferred()]).map_err(|e| e.to_string())?;
    let bs = cap.block_len as usize;
    let total = cap.blocks().0;
    let per = (chunk / bs).max(1) as u64;

    let mut next = 0u64; // next LBA to submit
    let mut in_flight = 0usize;
    let mut bytes = 0u64;
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let t0 = Instant::now();
    loop {
        while in_flight < depth && next < total {
            let n = per.min(total - next);
            let mut buf = spare.pop().unwrap_or_default();
            buf.resize(n as usize * bs, 0xA5);
            let req = if write {
                Request::data_out(Write16::new(Lba(next), n as u32).to_cdb(), buf)
            } else {
                Request::data_in_buf(Read16::new(Lba(next), n as u32).to_cdb(), buf)
            };
            t.submit(req.with_timeout(TIMEOUT))
                .map_err(|e| e.to_string())?;
            next += n;
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        let r = t.complete().map_err(|e| e.to_string())?;
        in_flight -= 1;
        check(&r)?;
        bytes += if write { r.buf.len() } else { r.transferred() } as u64;
        spare.push(r.buf);
    }
    Ok((
        if write { "write" } else { "read" },
        bytes,
        t0.elapsed().as_secs_f64(),
    ))
}
