//! Copy rights: which initiator may name which backend LU as a copy
//! source or destination (the lesson of LIO's CVE-2020-28374: EXTENDED
//! COPY must not reach LUs outside what the initiator may use).
//!
//! The router's `--config` lists rules; each names initiators (iSCSI
//! names, or `@group` for a group of them) and the LUs they may use, by
//! VPD 83h designator or by backend target name and LUN, each with a role.
//! An initiator no rule names may use no backend LU.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::scsi::spc::Designator;

/// What an LU may be in a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Source,
    Destination,
    Both,
}

/// How a copy uses an LU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Source,
    Destination,
}

impl Role {
    fn permits(self, u: Use) -> bool {
        matches!(
            (self, u),
            (Role::Both, _) | (Role::Source, Use::Source) | (Role::Destination, Use::Destination)
        )
    }
}

/// One LU of a rule, as written in the config: `designator` (the hex
/// bytes of any LU designator in its VPD page 83h), or `target` and `lun`
/// (a backend target name and LUN; without `lun`, every LUN of it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LuEntry {
    pub designator: Option<String>,
    pub target: Option<String>,
    pub lun: Option<u16>,
    pub role: Role,
}

/// One `[[copy_rights]]` rule as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// iSCSI initiator names, or `@name` for an `[initiator_groups]` group.
    pub initiators: Vec<String>,
    pub lus: Vec<LuEntry>,
}

/// Why the copy rights in a config cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    #[error("copy_rights rule {rule}: LU {lu}: give either designator, or target (and lun)")]
    LuForm { rule: usize, lu: usize },
    #[error("copy_rights rule {rule}: LU {lu}: designator {value:?} is not hex of 1 to 20 bytes")]
    Designator {
        rule: usize,
        lu: usize,
        value: String,
    },
    #[error("copy_rights rule {rule}: no initiator group {group:?} in [initiator_groups]")]
    Group { rule: usize, group: String },
    #[error("copy_rights rule {rule}: it names no initiator")]
    NoInitiator { rule: usize },
}

/// Which LU a grant names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LuMatch {
    Designator(Vec<u8>),
    TargetLun { target: String, lun: Option<u16> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    lu: LuMatch,
    role: Role,
}

/// What the router knows of a backend LU to match it against grants.
#[derive(Debug, Clone, Copy)]
pub struct LuIdentity<'a> {
    pub designators: &'a [Designator],
    /// Backend target name and LUN, for LUs discovered from a URL.
    pub target_lun: Option<(&'a str, u16)>,
}

/// The copy rights, checked: initiator name (lower case) to grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyAcl {
    grants: BTreeMap<String, Vec<Grant>>,
}

/// RFC 3722: iSCSI names compare after case folding.
fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl CopyAcl {
    /// Check the rules and groups of a config.
    pub fn new(
        rules: &[RuleEntry],
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<CopyAcl, AclError> {
        let mut acl = CopyAcl::default();
        for (r, rule) in rules.iter().enumerate() {
            let grants = rule
                .lus
                .iter()
                .enumerate()
                .map(|(l, e)| grant(r, l, e))
                .collect::<Result<Vec<_>, _>>()?;
            let names = members(r, &rule.initiators, groups)?;
            if names.is_empty() {
                return Err(AclError::NoInitiator { rule: r });
            }
            for n in names {
                acl.grants
                    .entry(fold(&n))
                    .or_default()
                    .extend(grants.iter().cloned());
            }
        }
        Ok(acl)
    }

    /// Whether `initiator` may use `lu` as `u`.
    pub fn allows(&self, initiator: &str, lu: LuIdentity<'_>, u: Use) -> bool {
        let Some(grants) = self.grants.get(&fold(initiator)) else {
            return false;
        };
        grants
            .iter()
            .any(|g| g.role.permits(u) && matches_lu(&g.lu, lu))
    }

    /// The initiators named, for the start-up log.
    pub fn initiators(&self) -> impl Iterator<Item = &str> {
        self.grants.keys().map(String::as_str)
    }
}

fn matches_lu(m: &LuMatch, lu: LuIdentity<'_>) -> bool {
    match m {
        LuMatch::Designator(v) => lu.designators.iter().any(|d| d.names_lu() && &d.value == v),
        LuMatch::TargetLun { target, lun } => lu
            .target_lun
            .is_some_and(|(t, l)| lun.is_none_or(|n| n == l) && t.eq_ignore_ascii_case(target)),
    }
}

fn grant(rule: usize, lu: usize, e: &LuEntry) -> Result<Grant, AclError> {
    let m = match (&e.designator, &e.target, e.lun) {
        (Some(d), None, None) => {
            LuMatch::Designator(hex(d).ok_or_else(|| AclError::Designator {
                rule,
                lu,
                value: d.clone(),
            })?)
        }
        (None, Some(t), lun) => LuMatch::TargetLun {
            target: t.clone(),
            lun,
        },
        _ => return Err(AclError::LuForm { rule, lu }),
    };
    Ok(Grant {
        lu: m,
        role: e.role,
    })
}

/// Hex digits (`:`, `-` and `.` between them allowed) as 1 to 20 bytes,
/// the most an identification CSCD holds (SPC-4 6.4.5.2). A leading
/// `naa.`, `eui.` or `0x` is dropped.
fn hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let s = ["naa.", "eui.", "0x"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !matches!(b, b':' | b'-' | b'.'))
        .collect();
    if digits.is_empty() || digits.len() % 2 != 0 || digits.len() > 40 {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

fn members(
    rule: usize,
    names: &[String],
    groups: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, AclError> {
    let mut out = Vec::new();
    for n in names {
        match n.strip_prefix('@') {
            Some(g) => out.extend(
                groups
                    .get(g)
                    .ok_or_else(|| AclError::Group {
                        rule,
                        group: g.to_string(),
                    })?
                    .iter()
                    .cloned(),
            ),
            None => out.push(n.clone()),
        }
    }
    Ok(out)
}

/// What the copy manager allows when a copy names a backend LU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CopyRights {
    /// No ACL configured: no initiator may name a backend LU.
    #[default]
    Closed,
    /// Only what the ACL grants.
    Acl(CopyAcl),
    /// `--insecure`: every initiator may name every backend LU.
    Insecure,
}

impl CopyRights {
    pub fn allows(&self, initiator: &str, lu: LuIdentity<'_>, u: Use) -> bool {
        match self {
            CopyRights::Closed => false,
            CopyRights::Acl(a) => a.allows(initiator, lu, u),
            CopyRights::Insecure => true,
        }
    }
}

/// A name from the network, safe to log (the target's one escaping:
/// control characters escaped, length bounded).
pub use crate::frontend::text::escaped;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::spc::DesignatorType;

    fn rules(toml_text: &str) -> Result<CopyAcl, AclError> {
        #[derive(Deserialize)]
        struct F {
            #[serde(default)]
            copy_rights: Vec<RuleEntry>,
            #[serde(default)]
            initiator_groups: BTreeMap<String, Vec<String>>,
        }
        let f: F = toml::from_str(toml_text).unwrap();
        CopyAcl::new(&f.copy_rights, &f.initiator_groups)
    }

    const CONFIG: &str = r#"
        [initiator_groups]
        backup = ["iqn.2026-01.com.example:b1", "IQN.2026-01.com.example:B2"]
        [[copy_rights]]
        initiators = ["@backup"]
        lus = [
            { designator = "60:01:40:5a", role = "source" },
            { target = "iqn.x:tape", lun = 1, role = "destination" },
        ]
        [[copy_rights]]
        initiators = ["iqn.2026-01.com.example:admin"]
        lus = [{ designator = "naa.6001405a", role = "both" }]
    "#;

    #[test]
    fn grants_by_designator_and_target_lun_with_roles() {
        let acl = rules(CONFIG).unwrap();
        let disk = [Designator::lu_binary(
            DesignatorType::NAA,
            vec![0x60, 0x01, 0x40, 0x5a],
        )];
        let d = LuIdentity {
            designators: &disk,
            target_lun: Some(("iqn.x:disk", 0)),
        };
        let t = LuIdentity {
            designators: &[],
            target_lun: Some(("IQN.X:TAPE", 1)),
        };
        let b2 = "iqn.2026-01.com.example:b2";
        assert!(acl.allows(b2, d, Use::Source));
        assert!(!acl.allows(b2, d, Use::Destination));
        assert!(acl.allows(b2, t, Use::Destination));
        assert!(!acl.allows(b2, t, Use::Source));
        assert!(acl.allows("iqn.2026-01.com.example:admin", d, Use::Destination));
        assert!(!acl.allows("iqn.2026-01.com.example:admin", t, Use::Destination));
        assert!(!acl.allows("iqn.2026-01.com.example:other", d, Use::Source));
        let lun2 = LuIdentity {
            target_lun: Some(("iqn.x:tape", 2)),
            ..t
        };
        assert!(!acl.allows(b2, lun2, Use::Destination));
        // A target without a LUN grants all its LUNs.
        let whole = rules(
            "[[copy_rights]]\ninitiators = [\"iqn.a:b\"]\nlus = [{ target = \"iqn.x:tape\", role = \"both\" }]\n",
        )
        .unwrap();
        assert!(whole.allows("iqn.a:b", lun2, Use::Source));
        assert!(!CopyRights::Closed.allows(b2, d, Use::Source));
        assert!(CopyRights::Insecure.allows("anyone", d, Use::Destination));
    }

    #[test]
    fn bad_rules_are_refused() {
        let lu = |e: &str| {
            format!(
                "[[copy_rights]]\ninitiators = [\"iqn.a:b\"]\nlus = [{{ {e}, role = \"both\" }}]\n"
            )
        };
        assert!(matches!(
            rules(&lu("designator = \"6g\"")),
            Err(AclError::Designator { .. })
        ));
        assert!(matches!(
            rules(&lu("designator = \"abc\"")),
            Err(AclError::Designator { .. })
        ));
        assert!(matches!(
            rules(&lu("lun = 1")),
            Err(AclError::LuForm { .. })
        ));
        assert!(matches!(
            rules(&lu("designator = \"aa\", target = \"iqn.x:t\", lun = 0")),
            Err(AclError::LuForm { .. })
        ));
        let g = "[[copy_rights]]\ninitiators = [\"@nobody\"]\nlus = []\n";
        assert!(matches!(rules(g), Err(AclError::Group { .. })));
        let none = "[[copy_rights]]\ninitiators = []\nlus = []\n";
        assert!(matches!(rules(none), Err(AclError::NoInitiator { .. })));
    }

    #[test]
    fn names_are_logged_escaped() {
        assert_eq!(escaped("iqn.a:b\n\u{1b}[2J"), "iqn.a:b\\n\\u{1b}[2J");
    }
}
