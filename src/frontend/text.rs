//! Text keys: `key=value` pairs and the negotiation of the operational
//! keys (RFC 7143 6, 13).
//!
//! Parsing is bounded: a text is at most [`MAX_TEXT_LEN`] bytes (the login
//! and text handlers refuse longer ones before they get here), holds at
//! most [`MAX_PAIRS`] pairs, keys are at most 63 bytes and values at most
//! 8192 (6.1), so garbage never makes this allocate more than the text
//! itself.

use std::fmt;

/// Longest key name (RFC 7143 6.1).
pub const MAX_KEY_LEN: usize = 63;
/// Longest value (RFC 7143 6.1: 8192 bytes unless a key says otherwise).
pub const MAX_VALUE_LEN: usize = 8192;
/// Most pairs accepted in one text.
pub const MAX_PAIRS: usize = 256;
/// Most bytes of text accepted across PDUs with the C bit (login or text).
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// Why a text is malformed (RFC 7143 6.1, 6.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text longer than {MAX_TEXT_LEN} bytes")]
    TooLong,
    #[error("more than {MAX_PAIRS} key=value pairs")]
    TooManyPairs,
    #[error("item without '=': {0:?}")]
    NoEquals(String),
    #[error("invalid key name {0:?}")]
    BadKey(String),
    #[error("value of {0} longer than {MAX_VALUE_LEN} bytes")]
    ValueTooLong(String),
    #[error("value of {0} is not UTF-8")]
    NotUtf8(String),
    #[error("key {0} sent twice")]
    Repeated(String),
}

/// Longest iSCSI name (RFC 7143 4.2.7.1: 223 bytes, UTF-8).
pub const MAX_NAME_LEN: usize = 223;

/// Why an iSCSI name from the network is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name of {0} bytes (at most {MAX_NAME_LEN})")]
    TooLong(usize),
    #[error("empty name")]
    Empty,
    #[error("control character in the name")]
    Control,
}

/// Check an initiator or target name: at most [`MAX_NAME_LEN`] bytes and
/// no control characters (RFC 3722 6 prohibits them in iSCSI names).
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

/// A string from the network made safe for a log line: printable ASCII
/// as is, everything else escaped (`\n`, `\u{1b}`), cut after
/// [`MAX_NAME_LEN`] characters so one name cannot flood the log.
pub fn escaped(s: &str) -> String {
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k == MAX_NAME_LEN {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// Split a text into its pairs: `key=value` items, each ended by NUL
/// (empty items, such as padding, are skipped).
pub fn parse_pairs(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    if data.len() > MAX_TEXT_LEN {
        return Err(TextError::TooLong);
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for item in data.split(|&b| b == 0).filter(|i| !i.is_empty()) {
        if out.len() == MAX_PAIRS {
            return Err(TextError::TooManyPairs);
        }
        let shown = || String::from_utf8_lossy(&item[..item.len().min(40)]).into_owned();
        let eq = item
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| TextError::NoEquals(shown()))?;
        let (k, v) = (&item[..eq], &item[eq + 1..]);
        // 6.1: key names are letters, digits, '.', '-', '+', '@', '_'.
        let key_ok = !k.is_empty()
            && k.len() <= MAX_KEY_LEN
            && k.iter()
                .all(|b| b.is_ascii_alphanumeric() || b".-+@_".contains(b));
        if !key_ok {
            return Err(TextError::BadKey(shown()));
        }
        let key = String::from_utf8_lossy(k).into_owned();
        if v.len() > MAX_VALUE_LEN {
            return Err(TextError::ValueTooLong(key));
        }
        let value = std::str::from_utf8(v)
            .map_err(|_| TextError::NotUtf8(key.clone()))?
            .to_string();
        // 6.2: a key is not to be sent twice in one negotiation.
        if out.iter().any(|(k, _)| *k == key) {
            return Err(TextError::Repeated(key));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Encode pairs as `key=value\0...`.
pub fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Numerical value: decimal, or hex with 0x (RFC 7143 6.1 numerical values).
pub fn parse_number(v: &str) -> Option<u64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 16 {
            return None;
        }
        u64::from_str_radix(h, 16).ok()
    } else if !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_string()
}

/// Session type (RFC 7143 13.21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    Discovery,
    Normal,
}

impl fmt::Display for SessionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionType::Discovery => "Discovery",
            SessionType::Normal => "Normal",
        })
    }
}

/// What this target offers (its side of each negotiation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLimits {
    /// The largest data segment we accept (we declare it, 13.12).
    pub max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
}

impl Default for TargetLimits {
    fn default() -> Self {
        TargetLimits {
            max_recv_data_segment_length: 256 * 1024,
            max_burst_length: 1024 * 1024,
            first_burst_length: 64 * 1024,
        }
    }
}

/// The operational parameters of a session once negotiated (defaults per
/// RFC 7143 13 until a key changes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// The initiator's MaxRecvDataSegmentLength: the largest Data-In or
    /// other segment we may send (13.12; default 8192).
    pub initiator_mrdsl: u32,
    /// Ours: the largest segment the initiator may send us.
    pub target_mrdsl: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub error_recovery_level: u32,
    pub default_time2wait: u32,
    pub default_time2retain: u32,
    pub max_connections: u32,
}

impl SessionParams {
    pub fn new(limits: &TargetLimits) -> Self {
        SessionParams {
            initiator_mrdsl: 8192,
            target_mrdsl: limits.max_recv_data_segment_length,
            max_burst_length: 262_144.min(limits.max_burst_length),
            first_burst_length: 65_536.min(limits.first_burst_length),
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            default_time2wait: 2,
            default_time2retain: 0,
            max_connections: 1,
        }
    }
}

/// The answer to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Reply `key=value`.
    Value(String),
    /// Declarative or informational: no reply.
    Silent,
    /// Not a key we know (6.2.1).
    NotUnderstood,
    /// Known, but the offer is unacceptable or malformed (6.2).
    Reject,
    /// Known, but it does not apply here (6.2.1, e.g. in a discovery session).
    Irrelevant,
}

impl Answer {
    /// The reply value, if any.
    pub fn reply(self) -> Option<String> {
        match self {
            Answer::Value(v) => Some(v),
            Answer::Silent => None,
            Answer::NotUnderstood => Some("NotUnderstood".into()),
            Answer::Reject => Some("Reject".into()),
            Answer::Irrelevant => Some("Irrelevant".into()),
        }
    }
}

/// Keys the login stage itself handles (names, session type,
/// authentication); [`Negotiation::answer`] leaves them alone.
pub fn is_login_key(key: &str) -> bool {
    matches!(
        key,
        "InitiatorName" | "TargetName" | "SessionType" | "InitiatorAlias" | "AuthMethod"
    ) || key.starts_with("CHAP_")
}

/// One session's negotiation of the operational keys (RFC 7143 13).
#[derive(Debug, Clone)]
pub struct Negotiation {
    pub params: SessionParams,
    limits: TargetLimits,
    session_type: SessionType,
    /// Whether we declared our MaxRecvDataSegmentLength yet.
    pub declared_mrdsl: bool,
}

impl Negotiation {
    pub fn new(limits: TargetLimits, session_type: SessionType) -> Self {
        Negotiation {
            params: SessionParams::new(&limits),
            limits,
            session_type,
            declared_mrdsl: false,
        }
    }

    pub fn set_session_type(&mut self, t: SessionType) {
        self.session_type = t;
    }

    /// Answer one operational key offered by the initiator and record the
    /// outcome in [`Negotiation::params`].
    pub fn answer(&mut self, key: &str, value: &str) -> Answer {
        // 6.2: an initiator's own "Reject"/"NotUnderstood"/"Irrelevant" is
        // an answer to us, never an offer.
        if matches!(value, "Reject" | "NotUnderstood" | "Irrelevant") {
            return Answer::Silent;
        }
        let discovery = self.session_type == SessionType::Discovery;
        match key {
            // 13.1: we only do None; CRC32C is refused politely by
            // choosing None when offered, Reject otherwise.
            "HeaderDigest" | "DataDigest" => {
                if value.split(',').any(|v| v == "None") {
                    Answer::Value("None".into())
                } else {
                    Answer::Reject
                }
            }
            _ => match self.answer_data_flow(key, value, discovery) {
                Some(a) => a,
                None => self.answer_session(key, value),
            },
        }
    }

    /// The keys that size and order the data phase (13.10-13.14,
    /// 13.17-13.19); None for any other key.
    fn answer_data_flow(&mut self, key: &str, value: &str, discovery: bool) -> Option<Answer> {
        let p = &mut self.params;
        let num = |lo: u64, hi: u64| parse_number(value).filter(|n| (lo..=hi).contains(n));
        Some(match key {
            // 13.12: declarative; the initiator's value bounds what we send.
            "MaxRecvDataSegmentLength" => match num(512, (1 << 24) - 1) {
                Some(n) => {
                    p.initiator_mrdsl = n as u32;
                    self.declared_mrdsl = true;
                    Answer::Value(self.limits.max_recv_data_segment_length.to_string())
                }
                None => Answer::Reject,
            },
            // 13.13, 13.14: minimum; FirstBurstLength <= MaxBurstLength.
            "MaxBurstLength" if discovery => Answer::Irrelevant,
            "MaxBurstLength" => match num(512, (1 << 24) - 1) {
                Some(n) => {
                    let v = (n as u32).min(self.limits.max_burst_length);
                    p.max_burst_length = v;
                    p.first_burst_length = p.first_burst_length.min(v);
                    Answer::Value(v.to_string())
                }
                None => Answer::Reject,
            },
            "FirstBurstLength" if discovery => Answer::Irrelevant,
            "FirstBurstLength" => match num(512, (1 << 24) - 1) {
                Some(n) => {
                    let v = (n as u32)
                        .min(self.limits.first_burst_length)
                        .min(p.max_burst_length);
                    p.first_burst_length = v;
                    Answer::Value(v.to_string())
                }
                None => Answer::Reject,
            },
            // 13.10: OR; we are happy without an initial R2T.
            "InitialR2T" if discovery => Answer::Irrelevant,
            "InitialR2T" => match parse_bool(value) {
                Some(b) => {
                    p.initial_r2t = b;
                    Answer::Value(yes_no(b))
                }
                None => Answer::Reject,
            },
            // 13.11: AND; we accept immediate data.
            "ImmediateData" if discovery => Answer::Irrelevant,
            "ImmediateData" => match parse_bool(value) {
                Some(b) => {
                    p.immediate_data = b;
                    Answer::Value(yes_no(b))
                }
                None => Answer::Reject,
            },
            // 13.17: minimum; one R2T per task is all we issue.
            "MaxOutstandingR2T" if discovery => Answer::Irrelevant,
            "MaxOutstandingR2T" => match num(1, 65535) {
                Some(_) => Answer::Value("1".into()),
                None => Answer::Reject,
            },
            // 13.18, 13.19: OR; we need in-order data, so Yes whatever is offered.
            "DataPDUInOrder" | "DataSequenceInOrder" if discovery => Answer::Irrelevant,
            "DataPDUInOrder" | "DataSequenceInOrder" => match parse_bool(value) {
                Some(_) => Answer::Value("Yes".into()),
                None => Answer::Reject,
            },
            _ => return None,
        })
    }

    /// Session-wide keys (13.2, 13.15, 13.16, 13.20), the removed markers
    /// and keys an initiator must not send.
    fn answer_session(&mut self, key: &str, value: &str) -> Answer {
        let p = &mut self.params;
        let num = |lo: u64, hi: u64| parse_number(value).filter(|n| (lo..=hi).contains(n));
        match key {
            // 13.20: minimum; we do level 0 only.
            "ErrorRecoveryLevel" => match num(0, 2) {
                Some(_) => Answer::Value("0".into()),
                None => Answer::Reject,
            },
            // 13.15: maximum. 13.16: minimum.
            "DefaultTime2Wait" => match num(0, 3600) {
                Some(n) => {
                    p.default_time2wait = (n as u32).max(p.default_time2wait);
                    Answer::Value(p.default_time2wait.to_string())
                }
                None => Answer::Reject,
            },
            "DefaultTime2Retain" => match num(0, 3600) {
                Some(_) => {
                    p.default_time2retain = 0;
                    Answer::Value("0".into())
                }
                None => Answer::Reject,
            },
            // 13.2: minimum; one connection per session.
            "MaxConnections" => match num(1, 65535) {
                Some(_) => Answer::Value("1".into()),
                None => Answer::Reject,
            },
            // RFC 7143 removed markers (A.3.1); answer No like an RFC 3720 target.
            "IFMarker" | "OFMarker" => Answer::Value("No".into()),
            "IFMarkInt" | "OFMarkInt" => Answer::Reject,
            // Target-declared keys an initiator must not send (13.6, 13.9).
            "TargetAlias" | "TargetPortalGroupTag" | "TargetAddress" => Answer::Reject,
            // RFC 7144 keys we do not implement: NotUnderstood like any other.
            _ => Answer::NotUnderstood,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_are_checked_and_escaped() {
        assert_eq!(check_name("iqn.2026-01.org.x:y"), Ok(()));
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name(&"a".repeat(223)), Ok(()));
        assert_eq!(check_name(&"a".repeat(224)), Err(NameError::TooLong(224)));
        assert_eq!(check_name("iqn.x\nFORGED"), Err(NameError::Control));
        assert_eq!(check_name("iqn.x\u{85}"), Err(NameError::Control));
        assert_eq!(escaped("iqn.x:y z"), "iqn.x:y z");
        assert_eq!(escaped("a\nb\x1b[2J"), "a\\nb\\u{1b}[2J");
        assert_eq!(escaped("\u{202e}"), "\\u{202e}");
        assert_eq!(escaped(&"b".repeat(300)).len(), 226);
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn golden_pairs() {
        let wire = b"InitiatorName=iqn.2024-01.x:i\0SessionType=Normal\0\0\0";
        let p = parse_pairs(wire).unwrap();
        assert_eq!(
            p,
            pairs(&[
                ("InitiatorName", "iqn.2024-01.x:i"),
                ("SessionType", "Normal")
            ])
        );
        assert_eq!(encode_pairs(&p), wire[..wire.len() - 2].to_vec());
        assert_eq!(parse_pairs(b"").unwrap(), vec![]);
        // An empty value is legal syntax.
        assert_eq!(parse_pairs(b"X=\0").unwrap(), pairs(&[("X", "")]));
    }

    #[test]
    fn malformed_texts() {
        assert!(matches!(
            parse_pairs(b"novalue\0"),
            Err(TextError::NoEquals(_))
        ));
        assert!(matches!(parse_pairs(b"=x\0"), Err(TextError::BadKey(_))));
        assert!(matches!(parse_pairs(b"a b=x\0"), Err(TextError::BadKey(_))));
        let long_key = format!("{}=1\0", "K".repeat(64));
        assert!(matches!(
            parse_pairs(long_key.as_bytes()),
            Err(TextError::BadKey(_))
        ));
        let long_val = format!("K={}\0", "v".repeat(8193));
        assert_eq!(
            parse_pairs(long_val.as_bytes()),
            Err(TextError::ValueTooLong("K".into()))
        );
        assert_eq!(
            parse_pairs(b"K=\xff\0"),
            Err(TextError::NotUtf8("K".into()))
        );
        assert_eq!(
            parse_pairs(b"K=1\0K=2\0"),
            Err(TextError::Repeated("K".into()))
        );
        let many: String = (0..300).map(|i| format!("K{i}=1\0")).collect();
        assert_eq!(parse_pairs(many.as_bytes()), Err(TextError::TooManyPairs));
        assert_eq!(
            parse_pairs(&vec![b'a'; MAX_TEXT_LEN + 1]),
            Err(TextError::TooLong)
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("262144"), Some(262_144));
        assert_eq!(parse_number("0x40000"), Some(262_144));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number("99999999999999999999999"), None);
    }

    /// The keys libiscsi 1.19 sends (reference 1.4) and our answers.
    #[test]
    fn libiscsi_offer() {
        let mut n = Negotiation::new(TargetLimits::default(), SessionType::Normal);
        let offer = [
            ("HeaderDigest", "None,CRC32C", Answer::Value("None".into())),
            ("DataDigest", "None", Answer::Value("None".into())),
            ("InitialR2T", "No", Answer::Value("No".into())),
            ("ImmediateData", "Yes", Answer::Value("Yes".into())),
            ("MaxBurstLength", "262144", Answer::Value("262144".into())),
            ("FirstBurstLength", "262144", Answer::Value("65536".into())),
            (
                "MaxRecvDataSegmentLength",
                "262144",
                Answer::Value("262144".into()),
            ),
            ("DataPDUInOrder", "Yes", Answer::Value("Yes".into())),
            ("DefaultTime2Wait", "2", Answer::Value("2".into())),
            ("DefaultTime2Retain", "0", Answer::Value("0".into())),
            ("IFMarker", "No", Answer::Value("No".into())),
            ("OFMarker", "No", Answer::Value("No".into())),
            ("MaxConnections", "1", Answer::Value("1".into())),
            ("MaxOutstandingR2T", "1", Answer::Value("1".into())),
            ("ErrorRecoveryLevel", "0", Answer::Value("0".into())),
            ("DataSequenceInOrder", "Yes", Answer::Value("Yes".into())),
        ];
        for (k, v, want) in offer {
            assert_eq!(n.answer(k, v), want, "{k}={v}");
        }
        let p = &n.params;
        assert_eq!(p.initiator_mrdsl, 262_144);
        assert_eq!(p.max_burst_length, 262_144);
        assert_eq!(p.first_burst_length, 65_536);
        assert!(!p.initial_r2t);
        assert!(p.immediate_data);
        assert!(n.declared_mrdsl);
    }

    #[test]
    fn refusals() {
        let mut n = Negotiation::new(TargetLimits::default(), SessionType::Normal);
        assert_eq!(n.answer("HeaderDigest", "CRC32C"), Answer::Reject);
        assert_eq!(
            n.answer("ErrorRecoveryLevel", "2"),
            Answer::Value("0".into())
        );
        assert_eq!(n.answer("MaxConnections", "8"), Answer::Value("1".into()));
        assert_eq!(n.answer("MaxBurstLength", "100"), Answer::Reject);
        assert_eq!(n.answer("MaxBurstLength", "lots"), Answer::Reject);
        assert_eq!(n.answer("InitialR2T", "maybe"), Answer::Reject);
        assert_eq!(n.answer("X-com.example.Foo", "1"), Answer::NotUnderstood);
        assert_eq!(n.answer("Whatever", "1"), Answer::NotUnderstood);
        assert_eq!(n.answer("InitialR2T", "Reject"), Answer::Silent);
        // MaxBurstLength above ours is cut to ours; FirstBurst follows it.
        assert_eq!(
            n.answer("MaxBurstLength", "16776192"),
            Answer::Value("1048576".into())
        );
        let mut d = Negotiation::new(TargetLimits::default(), SessionType::Discovery);
        assert_eq!(d.answer("InitialR2T", "No"), Answer::Irrelevant);
        assert_eq!(d.answer("MaxBurstLength", "512"), Answer::Irrelevant);
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_pairs(&data);
        }

        #[test]
        fn answer_never_panics(k in "[A-Za-z]{1,20}", v in ".{0,30}") {
            let mut n = Negotiation::new(TargetLimits::default(), SessionType::Normal);
            let _ = n.answer(&k, &v);
        }

        #[test]
        fn round_trip(kv in proptest::collection::btree_map("[A-Za-z0-9.]{1,20}", "[ -~]{0,30}", 0..10)) {
            let p: Vec<(String, String)> = kv.into_iter().collect();
            prop_assert_eq!(parse_pairs(&encode_pairs(&p)).unwrap(), p);
        }
    }
}
