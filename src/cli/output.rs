//! Text or JSON on stdout; diagnostics go to stderr.

use std::fmt::Write as _;

/// Where results go.
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Print `value` as JSON when `--json`, else the text `text()` makes.
    /// A closed pipe (`sanmover ... | head`) is not an error: the reader has
    /// what it wanted, so the rest is dropped instead of panicking.
    pub fn emit<V: serde::Serialize>(&self, value: &V, text: impl FnOnce() -> String) {
        let mut s = if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sanmover: cannot encode JSON: {e}");
                    return;
                }
            }
        } else {
            text()
        };
        if !s.ends_with('\n') {
            s.push('\n');
        }
        write_stdout(&s);
    }
}

/// Write to stdout, ignoring a reader that went away.
pub fn write_stdout(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(s.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("sanmover: cannot write to stdout: {e}");
        }
    }
}

/// An error and its causes, outermost first, joined by ": ". A cause whose
/// text the message already holds is left out: error types that quote
/// their source (`"catalog: {0}"`) would otherwise print it twice.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if text.contains(&m) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&m);
    }
    text
}

/// Sizes as storage people write them: binary units, one decimal.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Classic hex dump: offset, 16 bytes, ASCII.
pub fn hexdump(data: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let _ = write!(s, " {:04x}    ", i * 16);
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(s, "{b:02x} ");
                }
                None => s.push_str("   "),
            }
            if j == 7 {
                s.push(' ');
            }
        }
        s.push_str("   ");
        for &b in chunk {
            s.push(if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            });
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad address: {0}")]
    struct Quoting(#[from] std::io::Error);

    #[test]
    fn error_text_says_each_cause_once() {
        let io = std::io::Error::other("port 99999 is not a number");
        let e = anyhow::Error::from(Quoting::from(io)).context("opening the tape");
        assert_eq!(
            error_text(&e),
            "opening the tape: bad address: port 99999 is not a number"
        );
        let plain = anyhow::anyhow!("refused").context("labelling");
        assert_eq!(error_text(&plain), "labelling: refused");
    }

    #[test]
    fn hexdump_layout() {
        let d = hexdump(b"IET     VIRTUAL-TAPE\x00");
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(" 0000    49 45 54 20"));
        assert!(lines[0].ends_with("IET     VIRTUAL-"));
        assert!(lines[1].starts_with(" 0010    54 41 50 45 00"));
        assert!(lines[1].ends_with("TAPE."));
    }
}
