//! Per-host credentials: the hosts file and the bearer token check.
//!
//! The hosts file is TOML, one `[[host]]` table per host:
//!
//! ```toml
//! [[host]]
//! name = "host-a"
//! secret = "at least 16 characters"
//! operator = false   # true: may run `server drives release`
//! ```
//!
//! A request carries `Authorization: Bearer NAME:SECRET`. Secrets are kept
//! as SHA-256 digests and compared in constant time (`subtle`); an unknown
//! name costs the same comparison as a wrong secret.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::http::Caller;

/// The shortest secret accepted.
pub const MIN_SECRET: usize = 16;

/// Why a hosts file is refused.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("hosts file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("hosts file: no [[host]]: every request would be refused")]
    Empty,
    #[error("hosts file: host {0:?}: the secret is shorter than {MIN_SECRET} characters")]
    ShortSecret(String),
    #[error("hosts file: host {0:?} is listed twice")]
    Duplicate(String),
    #[error("hosts file: host name {0:?} is empty or has a ':' or a control character")]
    BadName(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    #[serde(default)]
    host: Vec<HostEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    name: String,
    secret: String,
    #[serde(default)]
    operator: bool,
}

struct Cred {
    name: String,
    digest: [u8; 32],
    operator: bool,
}

/// The hosts the server answers.
pub struct Hosts {
    creds: Vec<Cred>,
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl Hosts {
    /// Parse a hosts file's text.
    pub fn parse(text: &str) -> Result<Hosts, HostsError> {
        let f: HostsFile = toml::from_str(text)?;
        if f.host.is_empty() {
            return Err(HostsError::Empty);
        }
        let mut creds: Vec<Cred> = Vec::new();
        for h in f.host {
            if h.name.is_empty() || h.name.contains(':') || h.name.chars().any(char::is_control) {
                return Err(HostsError::BadName(h.name));
            }
            if h.secret.len() < MIN_SECRET {
                return Err(HostsError::ShortSecret(h.name));
            }
            if creds.iter().any(|c| c.name == h.name) {
                return Err(HostsError::Duplicate(h.name));
            }
            creds.push(Cred {
                digest: digest(h.secret.as_bytes()),
                name: h.name,
                operator: h.operator,
            });
        }
        Ok(Hosts { creds })
    }

    /// The caller an `Authorization` header value names, if its secret is
    /// right.
    pub fn authenticate(&self, header: &str) -> Option<Caller> {
        let token = header.strip_prefix("Bearer ")?;
        let (name, secret) = token.split_once(':')?;
        let given = digest(secret.as_bytes());
        let found = self.creds.iter().find(|c| c.name == name);
        // Compare against something even for an unknown name.
        let want = found.map_or([0u8; 32], |c| c.digest);
        let ok: bool = given.ct_eq(&want).into();
        match found {
            Some(c) if ok => Some(Caller {
                name: c.name.clone(),
                operator: c.operator,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[host]]
name = "a"
secret = "0123456789abcdef"
[[host]]
name = "op"
secret = "fedcba9876543210"
operator = true
"#;

    #[test]
    fn right_secret_only() {
        let h = Hosts::parse(FILE).unwrap();
        let a = h.authenticate("Bearer a:0123456789abcdef").unwrap();
        assert_eq!((a.name.as_str(), a.operator), ("a", false));
        assert!(
            h.authenticate("Bearer op:fedcba9876543210")
                .unwrap()
                .operator
        );
        assert!(h.authenticate("Bearer a:0123456789abcdeF").is_none());
        assert!(h.authenticate("Bearer b:0123456789abcdef").is_none());
        assert!(h.authenticate("Basic a:0123456789abcdef").is_none());
        assert!(h.authenticate("Bearer a").is_none());
    }

    #[test]
    fn refuses_weak_files() {
        assert!(matches!(Hosts::parse(""), Err(HostsError::Empty)));
        let short = "[[host]]\nname = \"a\"\nsecret = \"short\"\n";
        assert!(matches!(
            Hosts::parse(short),
            Err(HostsError::ShortSecret(_))
        ));
        let twice = format!(
            "{0}{0}",
            "[[host]]\nname = \"a\"\nsecret = \"0123456789abcdef\"\n"
        );
        assert!(matches!(
            Hosts::parse(&twice),
            Err(HostsError::Duplicate(_))
        ));
        let colon = "[[host]]\nname = \"a:b\"\nsecret = \"0123456789abcdef\"\n";
        assert!(matches!(Hosts::parse(colon), Err(HostsError::BadName(_))));
    }
}
