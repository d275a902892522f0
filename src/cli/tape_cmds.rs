//! `sanmover tape DEV OP`: mt-like control.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::output::Out;
use super::{exit, open_transport, ConnArgs, TapeOp, UsageError};
use crate::device::tape::{TapeStatus, TrackedPosition};
use crate::device::Tape;
use crate::scsi::ssc::{Position, ReadPositionForm};

#[derive(Serialize)]
struct OpResult {
    op: &'static str,
    count: Option<u32>,
    position: TrackedPosition,
}

fn count_i32(n: u32) -> Result<i32, UsageError> {
    // SPACE(6) takes a 24-bit signed count (SSC-4 7.9).
    if n > 0x7f_ffff {
        return Err(UsageError(format!("count {n} exceeds SPACE(6)'s 8388607")));
    }
    Ok(n as i32)
}

/// Whether `op` moves or writes the tape, and so takes the drive lock
/// (status, tell and limits only ask).
fn moves_tape(op: &TapeOp) -> bool {
    !matches!(op, TapeOp::Status | TapeOp::Tell | TapeOp::Limits)
}

pub fn tape(conn: &ConnArgs, out: &Out, dev: &str, op: TapeOp, wait: bool) -> Result<u8> {
    if let TapeOp::Erase { force: false } = op {
        return Err(UsageError(
            "erase destroys everything after the current position; add --force".into(),
        )
        .into());
    }
    let mut tape = Tape::open(open_transport(conn, dev)?)?;
    let _lock = if moves_tape(&op) {
        let cat = conn.catalog_path();
        Some(super::backup_cmds::lock_tape(
            &cat, &mut tape, dev, "tape", wait,
        )?)
    } else {
        None
    };
    let (name, count): (&'static str, Option<u32>) = match op {
        TapeOp::Status => {
            let st = tape.status();
            out.emit(&st, || status_text(&st));
            return Ok(exit::OK);
        }
        TapeOp::Tell => return tell(&mut tape, out),
        TapeOp::Limits => {
            let l = tape.block_limits()?;
            out.emit(&l, || {
                format!(
                    "Block limits: min {} bytes, max {} bytes, granularity 2^{}\n",
                    l.min_block_length, l.max_block_length, l.granularity
                )
            });
            return Ok(exit::OK);
        }
        TapeOp::Rewind => {
            tape.rewind()?;
            ("rewind", None)
        }
        TapeOp::Weof { n } => {
            tape.write_filemarks(n)?;
            ("weof", Some(n))
        }
        TapeOp::Fsf { n } => {
            tape.space_filemarks(count_i32(n)?)?;
            ("fsf", Some(n))
        }
        TapeOp::Bsf { n } => {
            tape.space_filemarks(-count_i32(n)?)?;
            ("bsf", Some(n))
        }
        TapeOp::Fsr { n } => {
            tape.space_blocks(count_i32(n)?)?;
            ("fsr", Some(n))
        }
        TapeOp::Bsr { n } => {
            tape.space_blocks(-count_i32(n)?)?;
            ("bsr", Some(n))
        }
        TapeOp::Eod => {
            tape.space_to_eod()?;
            ("eod", None)
        }
        TapeOp::Seek { block } => {
            tape.locate(block)?;
            ("seek", Some(block))
        }
        TapeOp::Load => {
            tape.load(true)?;
            ("load", None)
        }
        TapeOp::Unload => {
            tape.load(false)?;
            ("unload", None)
        }
        TapeOp::Erase { .. } => {
            tape.erase()?;
            ("erase", None)
        }
        TapeOp::Label { name, force } => {
            return super::backup_cmds::tape_label(
                out,
                &conn.catalog_path(),
                &mut tape,
                dev,
                &name,
                force,
            );
        }
        TapeOp::Setblk { n } => {
            tape.set_block_length(n)?;
            ("setblk", Some(n))
        }
    };
    let r = OpResult {
        op: name,
        count,
        position: tape.position(),
    };
    out.emit(&r, || match count {
        Some(n) => format!("{name} {n}: done\n"),
        None => format!("{name}: done\n"),
    });
    Ok(exit::OK)
}

fn tell(tape: &mut Tape<Box<dyn crate::transport::Transport + Send>>, out: &Out) -> Result<u8> {
    // Long form first (file number too); fall back to short (SSC-4 7.7).
    let pos = match tape.read_position(ReadPositionForm::LONG) {
        Ok(p) => p,
        Err(e) if e.sense().is_some() => tape.read_position(ReadPositionForm::SHORT)?,
        Err(e) => return Err(e.into()),
    };
    #[derive(Serialize)]
    struct Tell<'a> {
        device: &'a Position,
        trusted: bool,
    }
    let trusted = !tape.quirks.position_stub;
    out.emit(
        &Tell {
            device: &pos,
            trusted,
        },
        || {
            let mut s = position_text(&pos);
            if !trusted {
                s.push_str(
                    "  (not trusted: this target answers READ POSITION with a constant, as tgt does)\n",
                );
            }
            s
        },
    );
    Ok(exit::OK)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "unknown".to_string(), |x| x.to_string())
}

fn position_text(p: &Position) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Position (READ POSITION {}): partition {}, block {}, file {}",
        match p.form {
            ReadPositionForm::LONG => "long form",
            ReadPositionForm::EXTENDED => "extended form",
            _ => "short form",
        },
        p.partition,
        opt(p.first_block),
        opt(p.file_number)
    );
    let flags: Vec<&str> = [
        (p.bop, "BOP"),
        (p.eop, "EOP"),
        (p.bpew, "BPEW"),
        (p.perr, "PERR"),
    ]
    .iter()
    .filter(|(b, _)| *b)
    .map(|(_, n)| *n)
    .collect();
    if !flags.is_empty() {
        let _ = writeln!(s, "  flags: {}", flags.join(" "));
    }
    s
}

fn status_text(st: &TapeStatus) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Drive: {} {} {}", st.vendor, st.product, st.revision);
    match &st.not_ready {
        None => s.push_str("Ready: yes\n"),
        Some(e) => {
            let _ = writeln!(s, "Ready: no: {e}");
        }
    }
    let _ = writeln!(
        s,
        "Block length: {}",
        match st.block_length {
            Some(0) => "variable".to_string(),
            Some(n) => format!("{n} bytes (fixed)"),
            None => "unknown".to_string(),
        }
    );
    let _ = writeln!(
        s,
        "Density code: {}",
        opt(st.density_code.map(|d| format!("{d:#04x}")))
    );
    let _ = writeln!(
        s,
        "Write protected: {}",
        opt(st.write_protected.map(|w| if w { "yes" } else { "no" }))
    );
    if let Some(l) = &st.limits {
        let _ = writeln!(
            s,
            "Block limits: {}..{} bytes",
            l.min_block_length, l.max_block_length
        );
    }
    match &st.device_position {
        Some(p) => {
            s.push_str(&position_text(p));
            if !st.position_trusted {
                s.push_str("  (not trusted on this target: tgt answers block 0 always)\n");
            }
        }
        None => s.push_str("Position: READ POSITION not answered\n"),
    }
    s
}
