//! Raw tape throughput, the peer `make bench` compares sanmover with.
//!
//! ```text
//! raw_tape write URL BLOCK_BYTES TOTAL_BYTES   REWIND, WRITE(6) variable blocks, WRITE FILEMARKS 1
//! raw_tape read URL BLOCK_BYTES                REWIND, READ(6) until the filemark
//! ```
//!
//! One command in flight (tape is sequential), no engine, no format: the
//! iSCSI transport and the SSC codec only. Prints one JSON line with
//! bytes, seconds and MBps (10^6 bytes per second, as sanmover does).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sanmover::scsi::sense::Sense;
use sanmover::scsi::ssc::{Read6, Rewind, Write6, WriteFilemarks6};
use sanmover::scsi::{CdbCodec, Status};
use sanmover::transport::iscsi::IscsiTransport;
use sanmover::transport::{Request, Response, Transport};

const TIMEOUT: Duration = Duration::from_secs(300);

mod peer;
use peer::{describe, number, session, Measured, Res};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["write", url, block, total] => number(block).and_then(|b| {
            number(total).and_then(|t| session(url, 1).and_then(|mut s| write(&mut s, b, t)))
        }),
        ["read", url, block] => {
            number(block).and_then(|b| session(url, 1).and_then(|mut s| read(&mut s, b)))
        }
        _ => Err(
            "usage: raw_tape write URL BLOCK_BYTES TOTAL_BYTES | raw_tape read URL BLOCK_BYTES"
                .into(),
        ),
    };
    peer::report("raw_tape", run)
}

fn run(t: &mut IscsiTransport, req: Request) -> Res<Response> {
    let cdb = req.cdb;
    t.execute(req.with_timeout(TIMEOUT))
        .map_err(|e| format!("{cdb}: {e}"))
}

fn expect_good(t: &mut IscsiTransport, req: Request) -> Res<()> {
    let r = run(t, req)?;
    if r.is_good() {
        Ok(())
    } else {
        Err(format!("{}: {}", r.cdb, describe(&r)))
    }
}

fn write(t: &mut IscsiTransport, block: usize, total: usize) -> Res<Measured> {
    expect_good(t, Request::none(Rewind::default().to_cdb()))?;
    // Incompressible-looking data; tgt stores it as is anyway.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf: Vec<u8> = (0..block)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let t0 = Instant::now();
    let mut done = 0usize;
    while done < total {
        let n = block.min(total - done);
        buf.resize(n, 0);
        let r = run(
            t,
            Request::data_out(Write6::variable(n as u32).to_cdb(), buf),
        )?;
        if !r.is_good() {
            return Err(format!("{} after {done} bytes: {}", r.cdb, describe(&r)));
        }
        buf = r.buf;
        done += n;
    }
    // tgt makes the data durable here.
    expect_good(
        t,
        Request::none(
            WriteFilemarks6 {
                count: 1,
                ..Default::default()
            }
            .to_cdb(),
        ),
    )?;
    Ok(("write", done as u64, t0.elapsed().as_secs_f64()))
}

fn read(t: &mut IscsiTransport, block: usize) -> Res<Measured> {
    expect_good(t, Request::none(Rewind::default().to_cdb()))?;
    // Twice the block: tgt 1.0.85 sends stale bytes when a block is shorter
    // than the buffer but longer than half of it.
    let len = 2 * block;
    let mut buf = vec![0u8; len];
    let t0 = Instant::now();
    let mut done = 0u64;
    loop {
        let r = run(
            t,
            Request::data_in_buf(Read6::variable(len as u32).to_cdb(), buf),
        )?;
        if r.status == Status::GOOD {
            done += r.transferred() as u64;
        } else {
            let s = Sense::parse(&r.sense).map_err(|_| format!("{}: {}", r.cdb, r.status))?;
            if s.filemark || s.is_eod() {
                break;
            }
            // A short block: CHECK CONDITION with ILI, INFORMATION = the
            // residue (SSC-4 4.2.23); the iSCSI residual is not trusted.
            match s.information_i32() {
                Some(res) if s.ili && res > 0 && (res as usize) < len => {
                    done += (len - res as usize) as u64
                }
                _ => return Err(format!("{} after {done} bytes: {}", r.cdb, describe(&r))),
            }
        }
        buf = r.buf;
    }
    Ok(("read", done, t0.elapsed().as_secs_f64()))
}
