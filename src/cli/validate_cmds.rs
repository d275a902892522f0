//! `validate`, `trace show` and `replay`.

use std::io::Write as _;

use anyhow::{Context, Result};

use super::args::{ReplayArgs, ReportFormat, ValidateArgs};
use super::exit::{self, Refusal, UsageError};
use super::output::Out;
use super::sessions::Sessions;
use crate::device::Scsi;
use crate::scsi::describe::describe_cdb;
use crate::scsi::sense::Sense;
use crate::scsi::Status;
use crate::transport::trace::{read_trace, Record};
use crate::validate::replay::{check_trace, check_types, replay, ReplayError, ReplayReport};
use crate::validate::{report, validate, Options, RunReport, ValidateError};

pub fn run_validate(s: &Sessions, out: &Out, a: &ValidateArgs) -> Result<u8> {
    let opts = Options {
        suites: a.suites.clone(),
        dataloss: a.dataloss,
    };
    let connector = s.session_connector();
    let rep = validate(&a.devs, connector.as_ref(), s.initiator(), &opts).map_err(|e| match e {
        ValidateError::LabelledTape { .. } => anyhow::Error::new(Refusal(e.to_string())),
        ValidateError::UnknownSuite(_) => anyhow::Error::new(UsageError(e.to_string())),
        ValidateError::Device(d) => anyhow::Error::new(d),
        ValidateError::Open { device, source } => {
            anyhow::Error::new(source).context(format!("opening {device}"))
        }
        other => anyhow::Error::new(other),
    })?;
    let format = a.format.unwrap_or(if out.json {
        ReportFormat::Json
    } else {
        ReportFormat::Text
    });
    let text = render(&rep, format, a.matrix)?;
    match &a.out {
        Some(p) => std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?,
        None => {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    }
    Ok(if rep.failed() > 0 {
        exit::CHECKS_FAILED
    } else {
        exit::OK
    })
}

fn render(rep: &RunReport, format: ReportFormat, matrix: bool) -> Result<String> {
    Ok(match (format, matrix) {
        (ReportFormat::Junit, _) => report::junit(rep).context("encoding JUnit XML")?,
        (ReportFormat::Json, true) => report::matrix_json(rep) + "\n",
        (ReportFormat::Json, false) => report::json(rep) + "\n",
        (_, true) => report::matrix_markdown(rep),
        (ReportFormat::Markdown, false) => report::markdown(rep),
        (ReportFormat::Text, false) => report::text(rep),
    })
}

/// One record as a protocol analyser line.
fn show_record(r: &Record) -> String {
    let cdb = r.cdb_bytes().unwrap_or_default();
    let mut s = format!(
        "#{:<5} {:>10.3} ms  {} -> {}\n        {}  [{}]\n",
        r.seq,
        r.start_us as f64 / 1000.0,
        r.nexus.initiator,
        r.nexus.target,
        describe_cdb(&cdb),
        r.cdb
    );
    if let Some(d) = &r.data_out {
        s.push_str(&format!(
            "        data-out {} bytes, sha256 {}\n",
            d.len,
            &d.sha256[..16.min(d.sha256.len())]
        ));
    }
    match (&r.error, r.status) {
        (Some(e), _) => s.push_str(&format!("        no status: {e}\n")),
        (None, Some(st)) => {
            s.push_str(&format!("        {}", Status(st)));
            let sense = r.sense_bytes();
            if !sense.is_empty() {
                match Sense::parse(&sense) {
                    Ok(x) => s.push_str(&format!(": {x}")),
                    Err(_) => s.push_str(&format!(": undecodable sense {}", r.sense)),
                }
            }
            if let Some(d) = &r.data_in {
                s.push_str(&format!(", data-in {} of {} bytes", d.len, r.alloc_len));
            }
            if let Some(res) = &r.residual {
                s.push_str(&format!(", residual {res}"));
            }
            s.push_str(&format!(" ({:.3} ms)\n", r.elapsed_us as f64 / 1000.0));
        }
        (None, None) => s.push_str("        no status\n"),
    }
    s
}

pub fn trace_show(out: &Out, file: &std::path::Path) -> Result<u8> {
    let (header, records) = read_trace(file)?;
    let doc = serde_json::json!({ "header": header, "records": records });
    out.emit(&doc, || {
        let mut s = format!(
            "{} (format {}, data {:?}), {} commands\n",
            header.tool,
            header.sanmover_trace,
            header.data,
            records.len()
        );
        for r in &records {
            s.push_str(&show_record(r));
        }
        s
    });
    Ok(exit::OK)
}

pub fn run_replay(s: &Sessions, out: &Out, a: &ReplayArgs) -> Result<u8> {
    let (_, records) = read_trace(&a.file)?;
    let nexuses = check_trace(&records, a.devs.len())?;
    let mut devices = Vec::new();
    for d in &a.devs {
        devices.push(Scsi::new(s.transport(d)?));
    }
    check_types(&records, &nexuses, &mut devices).map_err(replay_error)?;
    let rep = replay(&records, &nexuses, &mut devices, a.compare_data).map_err(replay_error)?;
    out.emit(&rep, || replay_text(&rep));
    Ok(if rep.differences > 0 {
        exit::REPLAY_DIFFERS
    } else {
        exit::OK
    })
}

fn replay_error(e: ReplayError) -> anyhow::Error {
    match e {
        ReplayError::Device(d) => anyhow::Error::new(d),
        ReplayError::WrongType {
            device,
            expected,
            found,
            ..
        } => anyhow::Error::new(crate::device::DeviceError::WrongType {
            device,
            expected,
            found,
        })
        .context("the device does not match the trace; nothing of the trace was sent"),
        other => anyhow::Error::new(other),
    }
}

fn replay_text(r: &ReplayReport) -> String {
    let mut s = format!(
        "{} commands replayed, {} not sent (no status or UNIT ATTENTION when recorded), {} answers differ\n",
        r.commands, r.skipped, r.differences
    );
    if let Some(d) = &r.first {
        s.push_str(&format!(
            "first difference ({}) at record #{}: {} on {}\n",
            d.what, d.seq, d.command, d.nexus.target
        ));
        for (who, a) in [("recorded", &d.recorded), ("replayed", &d.replayed)] {
            s.push_str(&format!("  {who}: {}", a.status));
            if let Some(x) = &a.sense {
                s.push_str(&format!(": {x}"));
            }
            if let Some(n) = a.data_in_len {
                s.push_str(&format!(", data-in {n} bytes"));
            }
            if let Some(res) = &a.residual {
                s.push_str(&format!(", residual {res}"));
            }
            s.push('\n');
        }
    }
    s
}
