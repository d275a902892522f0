//! The command line: parse, open devices, print text or JSON, and map
//! errors to the exit-code table. `anyhow` lives here and nowhere below.
//!
//! `args` declares every option; each command's module receives its
//! `Args` struct as it is, with the [`sessions::Sessions`] every session,
//! the catalog and the drive lock come from. The backup modes are one
//! module each (`backup_host`, `backup_serverless`, `backup_xcopy`); the
//! other two use the host module's summary text and, for the fallback of
//! `--mode xcopy`, its backup.

use std::io::Write as _;

use anyhow::Result;
use clap::Parser;

use args::{BackupArgs, BackupMode, CatalogOp, Cli, Command, SnapshotsOp, TraceData, TraceOp};
use exit::UsageError;
use output::Out;
use sessions::Sessions;

use crate::transport::trace::{DataMode, TraceSink};

pub mod args;
mod backup_host;
mod backup_serverless;
mod backup_xcopy;
mod catalog_cmds;
mod changer_cmds;
pub mod exit;
mod output;
mod pr_cmds;
mod progress;
mod remote_modes;
mod restore_cmds;
mod router_cmds;
mod scsi_cmds;
mod server_cmds;
mod server_jobs;
mod server_span;
mod sessions;
mod sizes;
mod snapshots_cmds;
mod tape_cmds;
mod tcmu_cmds;
mod time;
mod validate_cmds;
mod vtl_cmds;
mod xcopy_cmds;

/// Parse arguments, run, and return the process exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::OK,
                _ => exit::SYNTAX,
            };
            // `--json` holds for argument errors too, as far as it can be
            // seen before parsing succeeded.
            if code != exit::OK && std::env::args().skip(1).any(|a| a == "--json") {
                let text = e.render().to_string();
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                let v = serde_json::json!({ "error": first, "exit_code": code });
                let _ = writeln!(std::io::stdout(), "{v}");
            }
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.verbose);
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::for_error(&e);
            if cli.json {
                let v = serde_json::json!({
                    "error": output::error_text(&e),
                    "exit_code": code,
                });
                let _ = writeln!(std::io::stdout(), "{v}");
            }
            eprintln!("sanmover: {}", output::error_text(&e));
            code
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "warn,sanmover=debug",
        _ => "trace",
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if verbose == 0 {
        // Plain warnings for users; timestamps and module paths with -v.
        b.format(|f, r| {
            use std::io::Write as _;
            writeln!(
                f,
                "sanmover: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            )
        });
    } else {
        b.format_timestamp_millis();
    }
    let _ = b.try_init();
}

fn run(cli: &Cli) -> Result<u8> {
    let out = Out { json: cli.json };
    let trace = match &cli.trace {
        Some(path) => {
            let mode = match cli.trace_data {
                TraceData::Full => DataMode::Full,
                TraceData::Digest => DataMode::Digest,
            };
            Some(TraceSink::create(path, mode)?)
        }
        None => None,
    };
    let s = Sessions::new(&cli.conn).with_trace(trace);
    match &cli.command {
        Command::Inquiry(a) => scsi_cmds::inquiry(&s, &out, a),
        Command::Luns(a) => scsi_cmds::luns(&s, &out, &a.portal),
        Command::Readcap(a) => scsi_cmds::readcap(&s, &out, &a.dev),
        Command::Raw(a) => scsi_cmds::raw(&s, &out, a),
        Command::Sense(a) => scsi_cmds::sense(&out, a),
        Command::Tape(a) => tape_cmds::run(&s, &out, a),
        Command::Changer(a) => changer_cmds::run(&s, &out, a),
        Command::Backup(a) => backup(&s, &out, a),
        Command::Restore(a) if a.remote.server.is_some() => {
            server_cmds::restore_remote(&s, &out, a)
        }
        Command::Restore(a) => restore_cmds::run_restore(&s, &out, a),
        Command::Verify(a) if a.remote.server.is_some() => remote_modes::verify_remote(&s, &out, a),
        Command::Verify(a) => restore_cmds::run_verify(&s, &out, a),
        Command::Catalog { op } => catalog(&s, &out, op),
        Command::Xcopy(a) => xcopy_cmds::run_xcopy(&s, &out, a),
        Command::Router(a) => router_cmds::run(&s, a),
        Command::Server(a) => server_cmds::run(&s, &out, a),
        Command::Vtl(a) => vtl_cmds::run(&out, a),
        Command::Pr(a) => pr_cmds::run(&s, &out, a),
        Command::Tcmu(a) => tcmu_cmds::run(a),
        Command::CopyResults(a) => xcopy_cmds::copy_results(&s, &out, a),
        Command::Snapshots { op } => match op {
            SnapshotsOp::List => snapshots_cmds::list(&s, &out),
            SnapshotsOp::Cleanup => snapshots_cmds::cleanup(&s, &out),
        },
        Command::Validate(a) => validate_cmds::run_validate(&s, &out, a),
        Command::Trace {
            op: TraceOp::Show { file },
        } => validate_cmds::trace_show(&out, file),
        Command::Replay(a) => validate_cmds::run_replay(&s, &out, a),
    }
}

/// `backup`, by mode. The options of one mode are refused in another.
fn backup(s: &Sessions, out: &Out, a: &BackupArgs) -> Result<u8> {
    if a.serverless.snapshot.is_some() && a.mode != BackupMode::Serverless {
        return Err(UsageError("--snapshot needs --mode serverless".into()).into());
    }
    if a.xcopy.copy_manager.is_some() && a.mode != BackupMode::Xcopy {
        return Err(UsageError("--copy-manager needs --mode xcopy".into()).into());
    }
    if a.remote.server.is_some() {
        return server_cmds::backup_remote(s, out, a);
    }
    match a.mode {
        BackupMode::Host => backup_host::run(s, out, a),
        BackupMode::Serverless => backup_serverless::run(s, out, a),
        BackupMode::Xcopy => backup_xcopy::run(s, out, a),
    }
}

fn catalog(s: &Sessions, out: &Out, op: &CatalogOp) -> Result<u8> {
    match op {
        CatalogOp::List => catalog_cmds::list(s, out),
        CatalogOp::Show { set } => catalog_cmds::show(s, out, set),
        CatalogOp::Volumes => catalog_cmds::volumes(s, out),
        CatalogOp::Expire { set } => catalog_cmds::expire(s, out, set),
        CatalogOp::Forget { set, force } => catalog_cmds::forget(s, out, set, *force),
        CatalogOp::Rebuild(a) => catalog_cmds::run_rebuild(s, out, a),
    }
}

/// Hex words from the command line into bytes: "12 00 24" or "120024" or
/// "12,00,24"; an optional 0x prefix per word.
pub fn parse_hex_args(words: &[String]) -> Result<Vec<u8>, UsageError> {
    let mut out = Vec::new();
    for w in words {
        for part in w.split(|c: char| c.is_whitespace() || c == ',' || c == ':') {
            if part.is_empty() {
                continue;
            }
            let p = part
                .strip_prefix("0x")
                .or_else(|| part.strip_prefix("0X"))
                .unwrap_or(part);
            // A single digit is a byte ("0"); longer words must be whole bytes.
            let p = match p.len() {
                1 => format!("0{p}"),
                n if n % 2 == 1 => {
                    return Err(UsageError(format!(
                        "'{part}' has an odd number of hex digits"
                    )))
                }
                _ => p.to_string(),
            };
            let bytes = hex::decode(&p)
                .map_err(|e| UsageError(format!("'{part}' is not hex bytes: {e}")))?;
            out.extend(bytes);
        }
    }
    if out.is_empty() {
        return Err(UsageError("no hex bytes given".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_args_forms() {
        let v = |s: &[&str]| parse_hex_args(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["12", "00", "0x24"]).unwrap(), vec![0x12, 0, 0x24]);
        assert_eq!(v(&["120024"]).unwrap(), vec![0x12, 0, 0x24]);
        assert_eq!(v(&["12,0,24"]).unwrap(), vec![0x12, 0, 0x24]);
        assert_eq!(v(&["0", "1"]).unwrap(), vec![0, 1]);
        assert!(v(&["123"]).is_err());
        assert!(v(&["zz"]).is_err());
        assert!(v(&[""]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Every command of the tree (built, so global options are there),
    /// with its path of names from the top: `["sanmover", "tape", "fsf"]`.
    fn all_commands() -> Vec<(Vec<String>, clap::Command)> {
        use clap::CommandFactory;
        fn walk(c: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
            for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
                let mut p = path.clone();
                p.push(sub.get_name().to_string());
                walk(sub, p, out);
            }
            out.push((path, c.clone()));
        }
        let mut top = Cli::command();
        top.build();
        let mut out = Vec::new();
        walk(&top, vec!["sanmover".to_string()], &mut out);
        out
    }

    /// The examples of a help text: lines after "Examples:", continuation
    /// lines (ending in a backslash) joined.
    fn examples(help: &str) -> Vec<String> {
        let Some((_, rest)) = help.split_once("\nExamples:\n") else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        let mut joining = false;
        for line in rest.lines().take_while(|l| l.starts_with("  ")) {
            let part = line.trim().trim_end_matches('\\').trim_end();
            match joining {
                true => {
                    let last = out.last_mut().expect("a line to continue");
                    last.push(' ');
                    last.push_str(part);
                }
                false => out.push(part.to_string()),
            }
            joining = line.ends_with('\\');
        }
        out
    }

    #[test]
    fn every_command_has_examples_that_parse_and_documents_every_argument() {
        use clap::CommandFactory;
        let commands = all_commands();
        assert!(commands.len() > 30, "{} commands", commands.len());
        for (path, mut cmd) in commands {
            let name = path.join(" ");
            let help = cmd.render_long_help().to_string();
            let ex = examples(&help);
            assert!(ex.len() >= 2, "{name}: fewer than two examples:\n{help}");
            let block = help
                .lines()
                .skip_while(|l| !l.starts_with("Examples:"))
                .take_while(|l| !l.is_empty());
            for line in block {
                assert!(line.len() <= 78, "{name}: example line too long: {line}");
            }
            for e in &ex {
                // Leading VAR=value assignments are the shell's.
                let words: Vec<&str> = e
                    .split_whitespace()
                    .skip_while(|w| w.contains('=') && !w.starts_with('-'))
                    .collect();
                assert!(!e.contains(['"', '\'']), "{name}: quote in example {e}");
                let m = match Cli::command().try_get_matches_from(&words) {
                    Ok(m) => m,
                    Err(err) if err.kind() == clap::error::ErrorKind::DisplayHelp => continue,
                    Err(err) => panic!("{name}: example `{e}` does not parse: {err}"),
                };
                // The example runs the command it documents.
                let mut got = vec!["sanmover".to_string()];
                let mut cur = &m;
                while let Some((sub, sm)) = cur.subcommand() {
                    got.push(sub.to_string());
                    cur = sm;
                }
                assert!(got.starts_with(&path), "{name}: example `{e}` runs {got:?}");
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some() || arg.get_long_help().is_some(),
                    "{name}: argument {id} has no help"
                );
            }
        }
    }

    #[test]
    fn global_options_come_after_the_commands_own_and_catalog_is_never_required() {
        for (path, mut cmd) in all_commands() {
            let name = path.join(" ");
            let help = cmd.render_help().to_string();
            let global = help
                .find("\nGlobal options:\n")
                .unwrap_or_else(|| panic!("{name}: no Global options heading:\n{help}"));
            if let Some(own) = help.find("\nOptions:\n") {
                assert!(own < global, "{name}: global options first:\n{help}");
            }
            let own: Vec<&str> = help[..global]
                .lines()
                .filter(|l| l.trim_start().starts_with('-'))
                .collect();
            for g in ["--json", "--catalog", "--initiator", "--cmd-timeout"] {
                assert!(
                    !own.iter().any(|l| l.contains(g)),
                    "{name}: {g} among its own options"
                );
            }
            let usage = cmd.render_usage().to_string();
            assert!(!usage.contains("--catalog"), "{name}: {usage}");
            // Global options are never filled in by clap from the
            // environment: clap would show them in error usage lines as if
            // they were required.
            for a in cmd.get_arguments().filter(|a| a.is_global_set()) {
                assert!(
                    a.get_env().is_none(),
                    "{name}: {} from the environment",
                    a.get_id()
                );
            }
        }
    }
}
