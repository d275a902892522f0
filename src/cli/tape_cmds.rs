//! `sanmover tape DEV OP`: mt-like control, and `label`.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::args::{TapeArgs, TapeOp};
use super::exit::{self, UsageError};
use super::output::Out;
use super::sessions::{redacted, Dyn, Sessions};
use crate::catalog::VolumeRow;
use crate::device::tape::{TapeStatus, TrackedPosition};
use crate::device::Tape;
use crate::engine::volume::{read_label, write_label, LabelState};
use crate::engine::EngineError;
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

pub fn run(s: &Sessions, out: &Out, a: &TapeArgs) -> Result<u8> {
    let dev = a
        .dev
        .as_deref()
        .ok_or_else(|| UsageError("no tape device: give DEV, or set TAPE as for mt".into()))?;
    if let TapeOp::Erase { force: false } = a.op {
        return Err(UsageError(
            "erase destroys everything after the current position; add --force".into(),
        )
        .into());
    }
    let mut tape = s.tape(dev)?;
    let _lock = match moves_tape(&a.op) {
        true => Some(s.lock_tape(&mut tape, dev, "tape", a.wait)?),
        false => None,
    };
    match &a.op {
        TapeOp::Status => status(s, out, &mut tape, dev),
        TapeOp::Tell => tell(&mut tape, out),
        TapeOp::Limits => {
            let l = tape.block_limits()?;
            out.emit(&l, || {
                format!(
                    "Block limits: min {} bytes, max {} bytes, granularity 2^{}\n",
                    l.min_block_length, l.max_block_length, l.granularity
                )
            });
            Ok(exit::OK)
        }
        TapeOp::Label { name, force } => label(s, out, &mut tape, dev, name, *force),
        op => {
            let (name, count) = motion(&mut tape, op)?;
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
    }
}

/// Carry out an operation that moves or writes the tape; its name and
/// count for the report.
fn motion(tape: &mut Tape<Dyn>, op: &TapeOp) -> Result<(&'static str, Option<u32>)> {
    Ok(match *op {
        TapeOp::Rewind => {
            tape.rewind()?;
            ("rewind", None)
        }
        TapeOp::Weof(c) => {
            tape.write_filemarks(c.n)?;
            ("weof", Some(c.n))
        }
        TapeOp::Fsf(c) => {
            tape.space_filemarks(count_i32(c.n)?)?;
            ("fsf", Some(c.n))
        }
        TapeOp::Bsf(c) => {
            tape.space_filemarks(-count_i32(c.n)?)?;
            ("bsf", Some(c.n))
        }
        TapeOp::Fsr(c) => {
            tape.space_blocks(count_i32(c.n)?)?;
            ("fsr", Some(c.n))
        }
        TapeOp::Bsr(c) => {
            tape.space_blocks(-count_i32(c.n)?)?;
            ("bsr", Some(c.n))
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
        TapeOp::Setblk { n } => {
            tape.set_block_length(n)?;
            ("setblk", Some(n))
        }
        TapeOp::Status | TapeOp::Tell | TapeOp::Limits | TapeOp::Label { .. } => {
            unreachable!("handled by run")
        }
    })
}

/// `tape DEV label NAME [--force]`.
fn label(
    s: &Sessions,
    out: &Out,
    tape: &mut Tape<Dyn>,
    dev: &str,
    name: &str,
    force: bool,
) -> Result<u8> {
    let catalog = s.catalog()?;
    if !force {
        if let Some(v) = catalog.volumes()?.iter().find(|v| v.name == name) {
            return Err(EngineError::Refused(format!(
                "the catalog already has a volume named {name} ({}); pick another name, or --force to reuse it",
                v.id
            ))
            .into());
        }
    }
    let state = read_label(tape)?;
    if !force {
        refuse_written(state)?;
    }
    let l = write_label(tape, name)?;
    catalog.upsert_volume(&VolumeRow {
        id: l.uuid,
        name: l.name.clone(),
        created: l.created as i64,
        last_file: None,
    })?;
    catalog.set_volume_device(l.uuid, &redacted(dev))?;
    out.emit(&l, || format!("labelled volume {} ({})\n", l.name, l.uuid));
    Ok(exit::OK)
}

/// A tape with a label or data is not labelled without --force.
fn refuse_written(state: LabelState) -> Result<(), EngineError> {
    match state {
        LabelState::Blank => Ok(()),
        LabelState::Ours(l) => Err(EngineError::Refused(format!(
            "the tape already has the sanmover label {} ({}); --force writes a new label and loses every set on it",
            l.name, l.uuid
        ))),
        other => Err(EngineError::Refused(format!(
            "the tape holds {}; --force overwrites it",
            other.describe()
        ))),
    }
}

fn tell(tape: &mut Tape<Dyn>, out: &Out) -> Result<u8> {
    let pos = tape.device_position()?;
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

#[derive(Serialize)]
struct StatusOut {
    #[serde(flatten)]
    drive: TapeStatus,
    /// What file 0 holds, in words, when it could be read without moving
    /// the tape; else the volume the catalog last saw in this drive.
    volume: Option<String>,
    /// "tape" (read now) or "catalog" (last seen).
    volume_from: Option<&'static str>,
}

fn status(s: &Sessions, out: &Out, tape: &mut Tape<Dyn>, dev: &str) -> Result<u8> {
    let drive = tape.status();
    // Reading the label moves the tape: only where the drive says, and can
    // be trusted to say, that it is at the beginning (reading then
    // rewinding leaves it where it was).
    let at_bop = drive.position_trusted && drive.device_position.as_ref().is_some_and(|p| p.bop);
    let (volume, volume_from) = if at_bop && drive.not_ready.is_none() {
        let state = read_label(tape)?;
        tape.rewind()?;
        (Some(state.describe()), Some("tape"))
    } else {
        match catalog_volume(s, dev) {
            Some(v) => (Some(v), Some("catalog")),
            None => (None, None),
        }
    };
    let st = StatusOut {
        drive,
        volume,
        volume_from,
    };
    out.emit(&st, || status_text(&st));
    Ok(exit::OK)
}

/// The volume the catalog last saw in `dev`, if the catalog can say.
fn catalog_volume(s: &Sessions, dev: &str) -> Option<String> {
    // A status never creates a catalog.
    let cat = s.existing_catalog()?;
    let id = cat.volume_in_device(&redacted(dev)).ok()??;
    let v = cat.volume(id).ok()??;
    Some(format!("{} ({})", v.name, v.id))
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

fn status_text(out: &StatusOut) -> String {
    let st = &out.drive;
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
    s.push_str(&volume_line(out));
    s
}

/// The status's volume line: read from the tape, or the catalog's.
fn volume_line(out: &StatusOut) -> String {
    match (&out.volume, out.volume_from) {
        (Some(v), Some("tape")) => format!("Volume: {v}\n"),
        (Some(v), _) => format!(
            "Volume: {v}, last seen in this drive (catalog; the label is read only at a trusted beginning of tape)\n"
        ),
        (None, _) => {
            "Volume: unknown (not at a trusted beginning of tape, and not in the catalog)\n".into()
        }
    }
}
