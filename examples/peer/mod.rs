//! What the `make bench` peers (raw_disk, raw_tape) share: argument
//! parsing, the session, and the one-line JSON report. Not an example of
//! its own (cargo only builds examples/*.rs and examples/*/main.rs).

use std::process::ExitCode;

use sanmover::scsi::sense::{Sense, SenseKey};
use sanmover::scsi::spc::TestUnitReady;
use sanmover::scsi::CdbCodec;
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;
use sanmover::transport::{Request, Response, Transport};

pub type Res<T> = Result<T, String>;

/// What a peer measured: operation, bytes, seconds.
pub type Measured = (&'static str, u64, f64);

pub fn number(s: &str) -> Res<usize> {
    s.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("not a positive number: {s}"))
}

/// A session with `depth` commands in flight, its unit attention cleared.
pub fn session(url: &str, depth: usize) -> Res<IscsiTransport> {
    let url = IscsiUrl::parse(url).map_err(|e| e.to_string())?;
    // $SANMOVER_INITIATOR, as for sanmover itself (LIO's ACLs need it).
    let opts = IscsiOptions {
        queue_depth: depth,
        initiator: sanmover::transport::iscsi::initiator_from_env(),
        ..IscsiOptions::default()
    };
    let mut t = IscsiTransport::connect(&url, &opts).map_err(|e| e.to_string())?;
    clear_unit_attention(&mut t)?;
    Ok(t)
}

/// TEST UNIT READY until the unit attention of a new session or a
/// re-added LU (29/00) has been reported.
fn clear_unit_attention(t: &mut IscsiTransport) -> Res<()> {
    for _ in 0..5 {
        let r = t
            .execute(Request::none(TestUnitReady.to_cdb()))
            .map_err(|e| e.to_string())?;
        let ua = Sense::parse(&r.sense).is_ok_and(|s| s.key == SenseKey::UNIT_ATTENTION);
        if !ua {
            return Ok(());
        }
    }
    Err("unit attention does not clear".into())
}

/// "STATUS decoded-sense" of a response.
pub fn describe(r: &Response) -> String {
    match Sense::parse(&r.sense) {
        Ok(s) => format!("{} {s}", r.status),
        Err(_) => r.status.to_string(),
    }
}

/// Print the JSON line (MBps = 10^6 bytes per second, as sanmover does)
/// or the error, and the exit code. `ended` (Unix seconds) lets the bench
/// time two peers run together: from the first start to the last end.
pub fn report(tool: &str, run: Res<Measured>) -> ExitCode {
    match run {
        Ok((op, bytes, seconds)) => {
            let ended = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let mbps = if seconds > 0.0 {
                bytes as f64 / seconds / 1e6
            } else {
                0.0
            };
            println!(
                r#"{{"op":"{op}","bytes":{bytes},"seconds":{seconds:.3},"MBps":{mbps:.1},"ended":{ended:.3}}}"#
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{tool}: {e}");
            ExitCode::FAILURE
        }
    }
}
