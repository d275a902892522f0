//! A run's report as text, JSON, JUnit XML (quick-junit) or Markdown, and
//! the capability matrix (checks as rows, devices as columns).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use super::{CheckResult, RunReport, Verdict};

/// Text for a terminal: one line per check, the details of failures.
pub fn text(r: &RunReport) -> String {
    let mut s = String::new();
    for d in &r.devices {
        let _ = writeln!(
            s,
            "{} ({} {} {}, {}): suites {}",
            d.device,
            d.vendor,
            d.product,
            d.revision,
            d.device_type,
            d.suites.join(", ")
        );
        for c in &d.checks {
            let _ = writeln!(s, "  {:<14} {}  [{}]", c.verdict.as_str(), c.id, c.cites);
            if c.verdict != Verdict::Pass {
                if !c.sent.is_empty() {
                    let _ = writeln!(s, "      sent:     {}", c.sent);
                }
                let _ = writeln!(s, "      expected: {}", c.expected);
                if !c.observed.is_empty() {
                    let _ = writeln!(s, "      observed: {}", c.observed);
                }
                if let Some(why) = &c.reason {
                    let _ = writeln!(s, "      reason:   {why}");
                }
            }
        }
        let _ = writeln!(s, "  {}", totals(&d.checks));
    }
    s
}

fn totals(checks: &[CheckResult]) -> String {
    let n = |v| checks.iter().filter(|c| c.verdict == v).count();
    format!(
        "{} checks: {} pass, {} fail, {} not supported, {} skipped",
        checks.len(),
        n(Verdict::Pass),
        n(Verdict::Fail),
        n(Verdict::NotSupported),
        n(Verdict::Skipped)
    )
}

/// The whole report as pretty JSON.
pub fn json(r: &RunReport) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// JUnit XML: a testsuite per device and suite, a testcase per check;
/// fail is a failure, not-supported and skipped are skipped, each with its
/// message.
pub fn junit(r: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("sanmover validate");
    for d in &r.devices {
        for suite in &d.suites {
            let mut ts = TestSuite::new(format!("{} {}", suite, d.device));
            for c in d.checks.iter().filter(|c| &c.suite == suite) {
                let mut tc = TestCase::new(c.id.clone(), status(c));
                tc.set_classname(format!("{}.{}", suite, d.device));
                tc.set_system_out(format!(
                    "cites: {}\nsent: {}\nexpected: {}\nobserved: {}",
                    c.cites, c.sent, c.expected, c.observed
                ));
                ts.add_test_case(tc);
            }
            report.add_test_suite(ts);
        }
    }
    report.to_string()
}

fn status(c: &CheckResult) -> TestCaseStatus {
    match c.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("expected {}; observed {}", c.expected, c.observed));
            if let Some(r) = &c.reason {
                s.set_description(r.clone());
            }
            s.set_type("fail");
            s
        }
        v => {
            let mut s = TestCaseStatus::skipped();
            let kind = if v == Verdict::NotSupported {
                "not supported"
            } else {
                "skipped"
            };
            s.set_message(format!("{kind}: {}", c.reason.as_deref().unwrap_or("")));
            s.set_type(v.as_str());
            s
        }
    }
}

fn cell(c: &CheckResult) -> String {
    match c.verdict {
        Verdict::Pass => "pass".into(),
        Verdict::Fail => "**FAIL**".into(),
        Verdict::NotSupported => "not supported".into(),
        Verdict::Skipped => "skipped".into(),
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown: a table per device, then the details of every check that did
/// not pass.
pub fn markdown(r: &RunReport) -> String {
    let mut s = String::new();
    for d in &r.devices {
        let _ = writeln!(
            s,
            "## {} — {} {} {} ({})\n",
            d.device, d.vendor, d.product, d.revision, d.device_type
        );
        let _ = writeln!(s, "{}\n", totals(&d.checks));
        s.push_str("| check | cites | verdict | observed |\n|---|---|---|---|\n");
        for c in &d.checks {
            let obs = c
                .reason
                .as_ref()
                .map_or(c.observed.clone(), |r| format!("{} ({r})", c.observed));
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} |",
                c.id,
                md_escape(&c.cites),
                cell(c),
                md_escape(&obs)
            );
        }
        s.push('\n');
    }
    s
}

/// The capability matrix: every check as a row, every device as a column.
#[derive(Debug, Serialize)]
pub struct Matrix {
    pub version: u32,
    pub devices: Vec<String>,
    /// check id -> one verdict per device ("" where the check did not run).
    pub rows: BTreeMap<String, Vec<String>>,
}

pub fn matrix(r: &RunReport) -> Matrix {
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let n = r.devices.len();
    for (i, d) in r.devices.iter().enumerate() {
        for c in &d.checks {
            rows.entry(c.id.clone())
                .or_insert_with(|| vec![String::new(); n])[i] = c.verdict.as_str().to_string();
        }
    }
    Matrix {
        version: r.version,
        devices: r
            .devices
            .iter()
            .map(|d| format!("{} {} ({})", d.vendor, d.product, d.device))
            .collect(),
        rows,
    }
}

pub fn matrix_json(r: &RunReport) -> String {
    serde_json::to_string_pretty(&matrix(r)).unwrap_or_default()
}

/// The matrix in Markdown, then every check that failed, with what was
/// observed (the quirks).
pub fn matrix_markdown(r: &RunReport) -> String {
    let m = matrix(r);
    let mut s = String::from("| check |");
    // Numbered as in the device list below: two drives of one model
    // would otherwise look alike.
    for (i, d) in r.devices.iter().enumerate() {
        let _ = write!(
            s,
            " {}. {} {} |",
            i + 1,
            md_escape(&d.vendor),
            md_escape(&d.product)
        );
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(r.devices.len()));
    s.push('\n');
    for (id, cells) in &m.rows {
        let _ = write!(s, "| `{id}` |");
        for c in cells {
            let shown = match c.as_str() {
                "fail" => "**FAIL**",
                "" => "—",
                other => other,
            };
            let _ = write!(s, " {shown} |");
        }
        s.push('\n');
    }
    s.push_str("\nDevices:\n\n");
    devices_list(r, &mut s);
    s.push_str("\n## Quirks found\n\nEvery check that failed, with what the device answered.\n\n");
    quirks(r, &mut s);
    s
}

fn devices_list(r: &RunReport, s: &mut String) {
    for (i, d) in r.devices.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. {} {} {} at `{}` ({})",
            i + 1,
            d.vendor,
            d.product,
            d.revision,
            d.device,
            d.device_type
        );
    }
}

fn quirks(r: &RunReport, s: &mut String) {
    for d in &r.devices {
        let failed: Vec<&CheckResult> = d
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .collect();
        if failed.is_empty() {
            continue;
        }
        let _ = writeln!(s, "### {} {} ({})\n", d.vendor, d.product, d.device_type);
        for c in failed {
            let _ = writeln!(
                s,
                "- `{}` ({}): expected {}; observed {}",
                c.id, c.cites, c.expected, c.observed
            );
        }
        s.push('\n');
    }
}
