//! The negotiation rules of RFC 7143 (6.2, 13) as a pure judge: given
//! what we offered and what the target answered, is each answer allowed?
//! No I/O; the iSCSI suite feeds it a login's keys.

use crate::frontend::text::parse_number;

/// How the result of a key is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A list: the answer is one value of the offered list (6.2.1).
    List,
    /// Declarative: each side states its own value, in `lo..=hi` (6.1);
    /// the target need not answer.
    Declarative { lo: u64, hi: u64 },
    /// Minimum: the answer is at most the offer, in `lo..=hi` (6.2.2).
    Min { lo: u64, hi: u64 },
    /// Maximum: the answer is at least the offer, in `lo..=hi` (6.2.2).
    Max { lo: u64, hi: u64 },
    /// Boolean AND: an offered No decides alone (the answer is optional
    /// and must be No); Yes needs an answer (6.2.2).
    And,
    /// Boolean OR: an offered Yes decides alone; No needs an answer.
    Or,
    /// A key the target cannot know: NotUnderstood (6.2.1).
    Unknown,
}

/// One key we offer, with its rule and section.
#[derive(Clone, Copy, Debug)]
pub struct Offer {
    pub key: &'static str,
    pub value: &'static str,
    pub rule: Rule,
    pub section: &'static str,
}

const SEG: u64 = (1 << 24) - 1;

/// The usual keys, each offered with a value that does not decide the
/// result alone, so the target must answer every one but the declarative.
pub const USUAL: &[Offer] = &[
    o("HeaderDigest", "None,CRC32C", Rule::List, "13.1"),
    o("DataDigest", "None,CRC32C", Rule::List, "13.1"),
    o(
        "MaxRecvDataSegmentLength",
        "8192",
        Rule::Declarative { lo: 512, hi: SEG },
        "13.12",
    ),
    o(
        "MaxBurstLength",
        "65536",
        Rule::Min { lo: 512, hi: SEG },
        "13.13",
    ),
    o(
        "FirstBurstLength",
        "16384",
        Rule::Min { lo: 512, hi: SEG },
        "13.14",
    ),
    o("InitialR2T", "No", Rule::Or, "13.10"),
    o("ImmediateData", "Yes", Rule::And, "13.11"),
    o(
        "MaxOutstandingR2T",
        "4",
        Rule::Min { lo: 1, hi: 65535 },
        "13.17",
    ),
    o("DataPDUInOrder", "No", Rule::Or, "13.18"),
    o("DataSequenceInOrder", "No", Rule::Or, "13.19"),
    o(
        "ErrorRecoveryLevel",
        "0",
        Rule::Min { lo: 0, hi: 2 },
        "13.20",
    ),
    o(
        "MaxConnections",
        "1",
        Rule::Min { lo: 1, hi: 65535 },
        "13.2",
    ),
    o(
        "DefaultTime2Wait",
        "2",
        Rule::Max { lo: 0, hi: 3600 },
        "13.15",
    ),
    o(
        "DefaultTime2Retain",
        "20",
        Rule::Min { lo: 0, hi: 3600 },
        "13.16",
    ),
];

const fn o(key: &'static str, value: &'static str, rule: Rule, section: &'static str) -> Offer {
    Offer {
        key,
        value,
        rule,
        section,
    }
}

/// The keys of `offers` as pairs, to send.
pub fn pairs(offers: &[Offer]) -> Vec<(String, String)> {
    offers
        .iter()
        .map(|o| (o.key.to_string(), o.value.to_string()))
        .collect()
}

/// Whether `answer` (None: no answer) obeys `offer`'s rule; Err says why not.
pub fn judge(offer: &Offer, answer: Option<&str>) -> Result<(), String> {
    let s = offer.section;
    let Some(a) = answer else {
        return match decided_by_offer(offer) {
            true => Ok(()),
            false => Err(format!(
                "no answer (RFC 7143 6.2.2: a reply is required; {s})"
            )),
        };
    };
    if offer.rule == Rule::Unknown {
        return match a {
            "NotUnderstood" => Ok(()),
            _ => Err(format!("answered {a:?} instead of NotUnderstood (6.2.1)")),
        };
    }
    if matches!(a, "Reject" | "NotUnderstood" | "Irrelevant") {
        return Err(format!("answered {a} to a valid offer ({s})"));
    }
    match offer.rule {
        Rule::List => list(offer, a),
        Rule::Declarative { lo, hi } => in_range(a, lo, hi, s).map(|_| ()),
        Rule::Min { lo, hi } => numeric(offer, a, lo, hi, |ans, off| ans <= off, "at most"),
        Rule::Max { lo, hi } => numeric(offer, a, lo, hi, |ans, off| ans >= off, "at least"),
        Rule::And | Rule::Or => boolean(offer, a),
        Rule::Unknown => Ok(()),
    }
}

/// An offer whose value is the result whatever the target holds: an AND
/// of No, an OR of Yes, a declaration.
fn decided_by_offer(offer: &Offer) -> bool {
    match offer.rule {
        Rule::And => offer.value == "No",
        Rule::Or => offer.value == "Yes",
        Rule::Declarative { .. } => true,
        _ => false,
    }
}

fn list(offer: &Offer, a: &str) -> Result<(), String> {
    if a.contains(',') {
        return Err(format!(
            "answered a list {a:?}; one value is chosen (6.2.1)"
        ));
    }
    match offer.value.split(',').any(|v| v == a) {
        true => Ok(()),
        false => Err(format!(
            "answered {a:?}, not one of the offered {:?} (6.2.1)",
            offer.value
        )),
    }
}

fn in_range(a: &str, lo: u64, hi: u64, s: &str) -> Result<u64, String> {
    match parse_number(a) {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        Some(n) => Err(format!("answered {n}, outside {lo}..={hi} ({s})")),
        None => Err(format!("answered {a:?}, not a number ({s})")),
    }
}

fn numeric(
    offer: &Offer,
    a: &str,
    lo: u64,
    hi: u64,
    ok: fn(u64, u64) -> bool,
    words: &str,
) -> Result<(), String> {
    let n = in_range(a, lo, hi, offer.section)?;
    let off = parse_number(offer.value).unwrap_or(0);
    match ok(n, off) {
        true => Ok(()),
        false => Err(format!(
            "answered {n}; the result must be {words} the offered {off} ({})",
            offer.section
        )),
    }
}

fn boolean(offer: &Offer, a: &str) -> Result<(), String> {
    let s = offer.section;
    match (offer.rule, offer.value, a) {
        (_, _, v) if v != "Yes" && v != "No" => Err(format!("answered {v:?}, not Yes or No ({s})")),
        (Rule::And, "No", "Yes") => Err(format!("answered Yes to No: AND gives No ({s})")),
        (Rule::Or, "Yes", "No") => Err(format!("answered No to Yes: OR gives Yes ({s})")),
        _ => Ok(()),
    }
}

/// One key's verdict: what was offered and answered, and why it is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVerdict {
    pub key: &'static str,
    pub offered: &'static str,
    pub answered: Option<String>,
    pub problem: Option<String>,
}

/// Judge every offer against the target's `answers` (the last value of a
/// key counts), then the cross-key rule FirstBurstLength <= MaxBurstLength
/// (13.14).
pub fn judge_all(offers: &[Offer], answers: &[(String, String)]) -> Vec<KeyVerdict> {
    let last = |k: &str| {
        answers
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let mut out: Vec<KeyVerdict> = offers
        .iter()
        .map(|o| {
            let answered = last(o.key);
            KeyVerdict {
                key: o.key,
                offered: o.value,
                problem: judge(o, answered.as_deref()).err(),
                answered,
            }
        })
        .collect();
    let num = |k: &str| last(k).as_deref().and_then(parse_number);
    if let (Some(f), Some(m)) = (num("FirstBurstLength"), num("MaxBurstLength")) {
        if f > m {
            if let Some(v) = out.iter_mut().find(|v| v.key == "FirstBurstLength") {
                v.problem
                    .get_or_insert(format!("{f} exceeds MaxBurstLength {m} (13.14)"));
            }
        }
    }
    out
}

/// `Key=offer→answer` items for a report, problems marked.
pub fn describe(vs: &[KeyVerdict]) -> String {
    vs.iter()
        .map(|v| {
            let a = v.answered.as_deref().unwrap_or("(no answer)");
            match &v.problem {
                Some(p) => format!("{}={} -> {a} [WRONG: {p}]", v.key, v.offered),
                None => format!("{}={} -> {a}", v.key, v.offered),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(key: &'static str) -> Offer {
        *USUAL.iter().find(|o| o.key == key).unwrap()
    }

    #[test]
    fn lists_take_one_offered_value() {
        let d = offer("HeaderDigest");
        assert_eq!(judge(&d, Some("None")), Ok(()));
        assert_eq!(judge(&d, Some("CRC32C")), Ok(()));
        assert!(judge(&d, Some("None,CRC32C")).unwrap_err().contains("list"));
        assert!(judge(&d, Some("MD5")).unwrap_err().contains("not one of"));
        assert!(judge(&d, None).unwrap_err().contains("no answer"));
        assert!(judge(&d, Some("Reject"))
            .unwrap_err()
            .contains("valid offer"));
    }

    #[test]
    fn minimum_and_maximum_bound_the_answer() {
        let m = offer("MaxBurstLength");
        assert_eq!(judge(&m, Some("65536")), Ok(()));
        assert_eq!(judge(&m, Some("0x2000")), Ok(()));
        assert!(judge(&m, Some("262144")).unwrap_err().contains("at most"));
        assert!(judge(&m, Some("256")).unwrap_err().contains("outside"));
        assert!(judge(&m, Some("lots"))
            .unwrap_err()
            .contains("not a number"));
        let w = offer("DefaultTime2Wait");
        assert_eq!(judge(&w, Some("2")), Ok(()));
        assert_eq!(judge(&w, Some("20")), Ok(()));
        assert!(judge(&w, Some("1")).unwrap_err().contains("at least"));
        assert!(judge(&w, Some("3601")).unwrap_err().contains("outside"));
        let e = offer("ErrorRecoveryLevel");
        assert!(judge(&e, Some("1")).is_err());
        assert_eq!(judge(&e, Some("0")), Ok(()));
    }

    #[test]
    fn declarations_need_no_answer_but_a_valid_one() {
        let d = offer("MaxRecvDataSegmentLength");
        assert_eq!(judge(&d, None), Ok(()));
        assert_eq!(judge(&d, Some("262144")), Ok(()));
        assert!(judge(&d, Some("100")).is_err());
        assert!(judge(&d, Some("16777216")).is_err());
    }

    #[test]
    fn booleans_follow_and_and_or() {
        let and_yes = offer("ImmediateData");
        assert_eq!(judge(&and_yes, Some("No")), Ok(()));
        assert_eq!(judge(&and_yes, Some("Yes")), Ok(()));
        assert!(judge(&and_yes, None).is_err());
        assert!(judge(&and_yes, Some("yes")).is_err());
        let and_no = Offer {
            value: "No",
            ..and_yes
        };
        assert_eq!(judge(&and_no, None), Ok(()));
        assert!(judge(&and_no, Some("Yes")).unwrap_err().contains("AND"));
        let or_yes = Offer {
            value: "Yes",
            ..offer("InitialR2T")
        };
        assert_eq!(judge(&or_yes, None), Ok(()));
        assert!(judge(&or_yes, Some("No")).unwrap_err().contains("OR"));
        assert_eq!(judge(&offer("InitialR2T"), Some("Yes")), Ok(()));
    }

    #[test]
    fn unknown_keys_are_not_understood() {
        let u = o("X-org.sanmover.Probe", "1", Rule::Unknown, "6.2.1");
        assert_eq!(judge(&u, Some("NotUnderstood")), Ok(()));
        assert!(judge(&u, Some("1")).is_err());
        assert!(judge(&u, None).is_err());
    }

    #[test]
    fn first_burst_is_checked_against_max_burst() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let offers = [offer("MaxBurstLength"), offer("FirstBurstLength")];
        let vs = judge_all(
            &offers,
            &[
                kv("MaxBurstLength", "8192"),
                kv("FirstBurstLength", "16384"),
            ],
        );
        assert!(vs[0].problem.is_none());
        assert!(
            vs[1].problem.as_ref().unwrap().contains("exceeds"),
            "{vs:?}"
        );
        // The last answer counts.
        let vs = judge_all(
            &offers[..1],
            &[kv("MaxBurstLength", "1"), kv("MaxBurstLength", "4096")],
        );
        assert!(vs[0].problem.is_none(), "{vs:?}");
        assert!(describe(&vs).contains("MaxBurstLength=65536 -> 4096"));
    }
}
