//! CHAP as the target uses it (RFC 7143 12.1.3, RFC 1994): one secret per
//! initiator name, optional mutual CHAP (the target proves itself with its
//! own secret) and optional CHAP for discovery sessions. Responses are
//! compared in constant time and challenges come from the OS random
//! source.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Shortest secret accepted (RFC 7143 12.1.3: at least 12 bytes, 96 bits).
pub const MIN_SECRET: usize = 12;
/// Below this length a secret is accepted with a warning (RFC 7143
/// 12.1.3 recommends 16 bytes of randomness and more).
pub const GOOD_SECRET: usize = 16;
/// Bytes of each challenge the target sends.
pub const CHALLENGE_LEN: usize = 16;
/// Largest challenge accepted from an initiator (mutual CHAP).
pub const MAX_CHALLENGE: usize = 1024;

/// A CHAP secret: never printed, never compared with `==`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(s: impl Into<Vec<u8>>) -> Secret {
        Secret(s.into())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Equal secrets, in constant time for a given length.
    pub fn same_as(&self, other: &Secret) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A CHAP name and its secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// CHAP_N: the name sent with the response.
    pub user: String,
    pub secret: Secret,
}

/// The secret one initiator must answer with.
#[derive(Debug, Clone)]
pub struct InitiatorSecret {
    /// Its iSCSI initiator name (InitiatorName).
    pub initiator: String,
    pub credentials: Credentials,
}

/// What the target requires of CHAP.
#[derive(Debug, Clone, Default)]
pub struct ChapConfig {
    pub initiators: Vec<InitiatorSecret>,
    /// Mutual CHAP: the target answers an initiator's challenge with these.
    pub target: Option<Credentials>,
    /// Discovery sessions must pass CHAP too.
    pub discovery: bool,
}

/// Why a CHAP configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChapError {
    #[error("no initiator has a CHAP secret")]
    Empty,
    #[error("the CHAP secret of {0} is shorter than {MIN_SECRET} bytes")]
    TooShort(String),
    #[error("the CHAP name of {0} is empty")]
    NoUser(String),
    #[error("initiator {0} has two CHAP secrets")]
    Twice(String),
    #[error("the target's mutual CHAP secret is also {0}'s secret (RFC 7143 12.1.3 forbids it)")]
    SharedWithTarget(String),
}

impl ChapConfig {
    /// One initiator's credentials, no mutual CHAP.
    pub fn single(initiator: &str, user: &str, secret: &str) -> ChapConfig {
        ChapConfig {
            initiators: vec![InitiatorSecret {
                initiator: initiator.into(),
                credentials: Credentials {
                    user: user.into(),
                    secret: Secret::new(secret),
                },
            }],
            target: None,
            discovery: false,
        }
    }

    /// Check the rules; returns warnings (secrets shorter than
    /// [`GOOD_SECRET`]) to log.
    pub fn validate(&self) -> Result<Vec<String>, ChapError> {
        if self.initiators.is_empty() {
            return Err(ChapError::Empty);
        }
        let mut warnings = Vec::new();
        let mut check = |who: &str, c: &Credentials| {
            if c.user.is_empty() {
                return Err(ChapError::NoUser(who.into()));
            }
            if c.secret.len() < MIN_SECRET {
                return Err(ChapError::TooShort(who.into()));
            }
            if c.secret.len() < GOOD_SECRET {
                warnings.push(format!(
                    "the CHAP secret of {who} has {} bytes; {GOOD_SECRET} or more are recommended",
                    c.secret.len()
                ));
            }
            Ok(())
        };
        for (k, i) in self.initiators.iter().enumerate() {
            check(&i.initiator, &i.credentials)?;
            if self.initiators[..k]
                .iter()
                .any(|o| o.initiator == i.initiator)
            {
                return Err(ChapError::Twice(i.initiator.clone()));
            }
            if let Some(t) = &self.target {
                if t.secret.same_as(&i.credentials.secret) {
                    return Err(ChapError::SharedWithTarget(i.initiator.clone()));
                }
            }
        }
        if let Some(t) = &self.target {
            check("the target (mutual CHAP)", t)?;
        }
        Ok(warnings)
    }

    /// The credentials of `initiator`, if it has any.
    pub fn for_initiator(&self, initiator: &str) -> Option<&Credentials> {
        self.initiators
            .iter()
            .find(|i| i.initiator == initiator)
            .map(|i| &i.credentials)
    }
}

/// MD5(identifier || secret || challenge): RFC 1994 4.1, RFC 7143 12.1.3.
pub fn chap_response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update([id]);
    h.update(secret);
    h.update(challenge);
    h.finalize().into()
}

/// Whether `response` answers `challenge` under `c`, the name included;
/// both compared in constant time (the name's length aside).
pub fn verify(c: &Credentials, name: &str, id: u8, challenge: &[u8], response: &[u8]) -> bool {
    let expected = chap_response(id, c.secret.bytes(), challenge);
    let name_ok =
        name.len() == c.user.len() && bool::from(name.as_bytes().ct_eq(c.user.as_bytes()));
    let response_ok = response.len() == expected.len() && bool::from(response.ct_eq(&expected));
    name_ok & response_ok
}

/// The target's answer to an initiator's challenge (mutual CHAP).
pub fn answer(c: &Credentials, id: u8, challenge: &[u8]) -> [u8; 16] {
    chap_response(id, c.secret.bytes(), challenge)
}

/// A fresh identifier and challenge from the OS random source.
pub fn challenge() -> Result<(u8, [u8; CHALLENGE_LEN]), getrandom::Error> {
    let mut b = [0u8; CHALLENGE_LEN + 1];
    getrandom::fill(&mut b)?;
    let mut c = [0u8; CHALLENGE_LEN];
    c.copy_from_slice(&b[1..]);
    Ok((b[0], c))
}

/// A binary value in hex (`0x...`, RFC 7143 6.1; base64 `0b...` is not
/// accepted), at most [`MAX_CHALLENGE`] bytes.
pub fn decode_binary(v: &str) -> Option<Vec<u8>> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if h.len() > 2 * MAX_CHALLENGE {
            return None;
        }
        return hex::decode(h).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_md5_response() {
        // RFC 1994 response over id 1, "secret", challenge 00..0f (value
        // from Python's hashlib).
        let challenge: Vec<u8> = (0..16).collect();
        assert_eq!(
            hex::encode(chap_response(1, b"secret", &challenge)),
            "740e86463bda3a4d7017d6e0fba0699d"
        );
        assert_eq!(decode_binary("0x0aFF"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_binary("0b AAA="), None);
        assert_eq!(decode_binary("zz"), None);
    }

    #[test]
    fn verify_checks_name_and_response() {
        let c = Credentials {
            user: "alice".into(),
            secret: Secret::new("twelve-bytes"),
        };
        let ch = [7u8; 16];
        let r = chap_response(3, b"twelve-bytes", &ch);
        assert!(verify(&c, "alice", 3, &ch, &r));
        assert!(!verify(&c, "alicf", 3, &ch, &r));
        assert!(!verify(&c, "alice", 4, &ch, &r));
        assert!(!verify(&c, "alice", 3, &ch, &r[..15]));
    }

    #[test]
    fn validation_rules() {
        let mut c = ChapConfig::single("iqn.x:a", "a", "twelve-bytes");
        let w = c.validate().unwrap();
        assert_eq!(w.len(), 1, "12 bytes: accepted with a warning");
        assert!(!w[0].contains("twelve"), "warnings do not quote secrets");
        c.initiators[0].credentials.secret = Secret::new("eleven-byte");
        assert_eq!(c.validate(), Err(ChapError::TooShort("iqn.x:a".into())));
        let mut c = ChapConfig::single("iqn.x:a", "a", "sixteen-bytes-ok");
        assert_eq!(c.validate().unwrap().len(), 0);
        c.target = Some(Credentials {
            user: "t".into(),
            secret: Secret::new("sixteen-bytes-ok"),
        });
        assert_eq!(
            c.validate(),
            Err(ChapError::SharedWithTarget("iqn.x:a".into()))
        );
        let dup = ChapConfig {
            initiators: [c.initiators.clone(), c.initiators.clone()].concat(),
            ..ChapConfig::default()
        };
        assert_eq!(dup.validate(), Err(ChapError::Twice("iqn.x:a".into())));
        assert_eq!(ChapConfig::default().validate(), Err(ChapError::Empty));
        assert_eq!(format!("{:?}", Secret::new("x")), "Secret(***)");
    }

    #[test]
    fn challenges_differ() {
        let (_, a) = challenge().unwrap();
        let (_, b) = challenge().unwrap();
        assert_ne!(a, b);
    }
}
