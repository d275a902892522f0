//! The login phase (RFC 7143 6.3): security stage with optional CHAP,
//! operational stage, transit to full feature. No I/O: each Login Request
//! goes in, the Login Response comes out, so every refusal is unit-tested.

use md5::{Digest, Md5};

use super::pdu::{Header, LoginRequest, LoginResponse, Pdu};
use super::text::{
    encode_pairs, is_login_key, parse_pairs, Negotiation, SessionType, TargetLimits, MAX_TEXT_LEN,
};
use super::Chap;

/// Login status (class << 8 | detail), RFC 7143 11.13.5.
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const INITIATOR_ERROR: u16 = 0x0200;
    pub const AUTHENTICATION_FAILED: u16 = 0x0201;
    pub const AUTHORIZATION_FAILED: u16 = 0x0202;
    pub const NOT_FOUND: u16 = 0x0203;
    pub const UNSUPPORTED_VERSION: u16 = 0x0205;
    pub const MISSING_PARAMETER: u16 = 0x0207;
    pub const SESSION_DOES_NOT_EXIST: u16 = 0x020a;
    pub const INVALID_DURING_LOGIN: u16 = 0x020b;
}

/// Stage numbers (RFC 7143 11.12.3).
const SECURITY: u8 = 0;
const OPERATIONAL: u8 = 1;
const FULL_FEATURE: u8 = 3;

/// The command window we grant: MaxCmdSN = ExpCmdSN + WINDOW - 1.
pub const CMD_WINDOW: u32 = 32;

/// What the login needs to know about the target.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    /// Names of the targets served (IQNs).
    pub targets: Vec<String>,
    /// Initiator names allowed; empty = everyone.
    pub allow: Vec<String>,
    /// CHAP the initiator must pass (normal sessions only).
    pub chap: Option<Chap>,
    pub limits: TargetLimits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    /// Nothing negotiated yet.
    Start,
    /// We chose CHAP; waiting for CHAP_A.
    ChapChosen,
    /// Challenge sent; waiting for CHAP_N and CHAP_R.
    Challenged { id: u8, challenge: [u8; 16] },
    /// CHAP passed.
    Authenticated,
    /// AuthMethod=None agreed.
    Unauthenticated,
}

/// How a login step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// More Login Requests to come.
    Continue,
    /// Refused with this status; the connection closes after the response.
    Refused { status: u16, reason: String },
    /// The session is in full feature phase.
    FullFeature,
}

/// One connection's login.
#[derive(Debug, Clone)]
pub struct Login {
    started: bool,
    /// The stage we are in (None before the first PDU).
    stage: Option<u8>,
    pub isid: u64,
    pub tsih: u16,
    /// ExpCmdSN: the login's CmdSN (login is immediate, 6.2).
    pub exp_cmd_sn: u32,
    /// The StatSN the next response carries.
    pub stat_sn: u32,
    pub initiator: Option<String>,
    pub target: Option<String>,
    pub session_type: SessionType,
    pub neg: Negotiation,
    auth: Auth,
    /// Text of PDUs with the C bit, waiting for the last one.
    pending_text: Vec<u8>,
    sent_tpgt: bool,
}

impl Login {
    /// `tsih` is the session handle granted on success (non-zero).
    pub fn new(limits: TargetLimits, tsih: u16) -> Login {
        Login {
            started: false,
            stage: None,
            isid: 0,
            tsih: tsih.max(1),
            exp_cmd_sn: 0,
            stat_sn: 0,
            initiator: None,
            target: None,
            session_type: SessionType::Normal,
            neg: Negotiation::new(limits, SessionType::Normal),
            auth: Auth::Start,
            pending_text: Vec::new(),
            sent_tpgt: false,
        }
    }

    /// Handle one Login Request and build its response.
    pub fn step(
        &mut self,
        cfg: &LoginConfig,
        req: &LoginRequest,
        data: &[u8],
    ) -> (Pdu, LoginOutcome) {
        match self.step_inner(cfg, req, data) {
            Ok((pairs, transit, nsg, outcome)) => {
                let pdu = self.response(req, transit, nsg, status::SUCCESS, encode_pairs(&pairs));
                (pdu, outcome)
            }
            Err((status, reason)) => {
                let pdu = self.response(req, false, 0, status, Vec::new());
                (pdu, LoginOutcome::Refused { status, reason })
            }
        }
    }

    fn response(
        &mut self,
        req: &LoginRequest,
        transit: bool,
        nsg: u8,
        st: u16,
        data: Vec<u8>,
    ) -> Pdu {
        let success = st == status::SUCCESS;
        let h = LoginResponse {
            transit,
            cont: false,
            csg: if success { req.csg } else { 0 },
            nsg: if transit { nsg } else { 0 },
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            // 11.13.3: TSIH only in the final response.
            tsih: if transit && nsg == FULL_FEATURE {
                self.tsih
            } else {
                0
            },
            itt: req.itt,
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.exp_cmd_sn.wrapping_add(CMD_WINDOW - 1),
            status_class: (st >> 8) as u8,
            status_detail: st as u8,
        };
        // 11.13.4: every login response advances StatSN.
        self.stat_sn = self.stat_sn.wrapping_add(1);
        Pdu::new(Header::LoginResponse(h), data)
    }

    #[allow(clippy::type_complexity)]
    fn step_inner(
        &mut self,
        cfg: &LoginConfig,
        req: &LoginRequest,
        data: &[u8],
    ) -> Result<(Vec<(String, String)>, bool, u8, LoginOutcome), (u16, String)> {
        let refuse = |st: u16, why: &str| Err((st, why.to_string()));
        if !self.started {
            self.started = true;
            self.isid = req.isid;
            self.exp_cmd_sn = req.cmd_sn;
            // 11.13.4: the first response's StatSN starts the connection's.
            self.stat_sn = req.exp_stat_sn;
            if req.tsih != 0 {
                return refuse(
                    status::SESSION_DOES_NOT_EXIST,
                    "adding a connection to a session is not supported (MaxConnections=1)",
                );
            }
            // 11.12.4: we speak version 0 only.
            if req.version_min > 0 {
                return refuse(status::UNSUPPORTED_VERSION, "unsupported iSCSI version");
            }
        } else if req.isid != self.isid {
            return refuse(status::INITIATOR_ERROR, "ISID changed during login");
        }
        if req.csg != SECURITY && req.csg != OPERATIONAL {
            return refuse(status::INVALID_DURING_LOGIN, "invalid current stage");
        }
        match self.stage {
            Some(s) if req.csg < s => {
                return refuse(status::INVALID_DURING_LOGIN, "login stage went backwards")
            }
            _ => self.stage = Some(req.csg),
        }
        if req.transit
            && !(req.nsg > req.csg && (req.nsg == OPERATIONAL || req.nsg == FULL_FEATURE))
        {
            return refuse(status::INVALID_DURING_LOGIN, "invalid next stage");
        }
        if self.pending_text.len() + data.len() > MAX_TEXT_LEN {
            return refuse(status::INITIATOR_ERROR, "login text too long");
        }
        self.pending_text.extend_from_slice(data);
        if req.cont {
            // 6.3: ask for the rest with an empty response.
            return Ok((Vec::new(), false, 0, LoginOutcome::Continue));
        }
        let text = std::mem::take(&mut self.pending_text);
        let pairs = match parse_pairs(&text) {
            Ok(p) => p,
            Err(e) => return Err((status::INITIATOR_ERROR, format!("bad login text: {e}"))),
        };
        let value = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };

        // Names and session type: on the first PDU (6.3.1), repeated later
        // only with the same value.
        for (key, slot) in [("InitiatorName", 0), ("TargetName", 1)] {
            if let Some(v) = value(key) {
                let cur = if slot == 0 {
                    &mut self.initiator
                } else {
                    &mut self.target
                };
                match cur {
                    Some(c) if c != v => {
                        return Err((
                            status::INITIATOR_ERROR,
                            format!("{key} changed during login"),
                        ))
                    }
                    _ => *cur = Some(v.to_string()),
                }
            }
        }
        if let Some(v) = value("SessionType") {
            self.session_type = match v {
                "Normal" => SessionType::Normal,
                "Discovery" => SessionType::Discovery,
                _ => return refuse(status::INITIATOR_ERROR, "unknown SessionType"),
            };
            self.neg.set_session_type(self.session_type);
        }
        let Some(initiator) = self.initiator.clone() else {
            return refuse(status::MISSING_PARAMETER, "InitiatorName missing");
        };
        let normal = self.session_type == SessionType::Normal;
        if normal {
            let Some(target) = &self.target else {
                return refuse(status::MISSING_PARAMETER, "TargetName missing");
            };
            if !cfg.targets.iter().any(|t| t == target) {
                return Err((status::NOT_FOUND, format!("no target named {target}")));
            }
        }
        if !cfg.allow.is_empty() && !cfg.allow.contains(&initiator) {
            return Err((
                status::AUTHORIZATION_FAILED,
                format!("initiator {initiator} is not on the allow list"),
            ));
        }
        // CHAP guards normal sessions; discovery answers names only.
        let chap = if normal { cfg.chap.as_ref() } else { None };

        let mut out: Vec<(String, String)> = Vec::new();
        if normal && !self.sent_tpgt {
            // 13.9: the first response of a normal session names the portal group.
            out.push(("TargetPortalGroupTag".into(), "1".into()));
            self.sent_tpgt = true;
        }
        if req.csg == SECURITY {
            self.security(chap, &pairs, &mut out)?;
        } else if chap.is_some() && self.auth != Auth::Authenticated {
            // 6.3.2: a target that needs authentication refuses a login
            // that skips the security stage.
            return refuse(status::AUTHENTICATION_FAILED, "CHAP required");
        }
        for (k, v) in &pairs {
            if is_login_key(k) {
                continue;
            }
            if let Some(a) = self.neg.answer(k, v).reply() {
                out.push((k.clone(), a));
            }
        }
        let security_done = match chap {
            Some(_) => self.auth == Auth::Authenticated,
            None => matches!(self.auth, Auth::Start | Auth::Unauthenticated),
        };
        let transit = req.transit && (req.csg == OPERATIONAL || security_done);
        let mut outcome = LoginOutcome::Continue;
        if transit && req.nsg == FULL_FEATURE {
            if !self.neg.declared_mrdsl {
                // 13.12: declare how much we accept in one segment.
                out.push((
                    "MaxRecvDataSegmentLength".into(),
                    self.neg.params.target_mrdsl.to_string(),
                ));
                self.neg.declared_mrdsl = true;
            }
            outcome = LoginOutcome::FullFeature;
        }
        if transit {
            self.stage = Some(req.nsg);
        }
        Ok((out, transit, req.nsg, outcome))
    }

    /// The security stage keys (RFC 7143 12.1): AuthMethod, CHAP.
    fn security(
        &mut self,
        chap: Option<&Chap>,
        pairs: &[(String, String)],
        out: &mut Vec<(String, String)>,
    ) -> Result<(), (u16, String)> {
        let fail = |why: &str| Err((status::AUTHENTICATION_FAILED, why.to_string()));
        let value = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if let Some(methods) = value("AuthMethod") {
            if self.auth != Auth::Start {
                return fail("AuthMethod offered twice");
            }
            let offered = |m: &str| methods.split(',').any(|x| x == m);
            match chap {
                Some(_) if offered("CHAP") => {
                    out.push(("AuthMethod".into(), "CHAP".into()));
                    self.auth = Auth::ChapChosen;
                }
                Some(_) => {
                    out.push(("AuthMethod".into(), "Reject".into()));
                    return fail("initiator does not offer CHAP");
                }
                None if offered("None") => {
                    out.push(("AuthMethod".into(), "None".into()));
                    self.auth = Auth::Unauthenticated;
                }
                None => return fail("initiator requires authentication; none configured"),
            }
        }
        if let Some(algs) = value("CHAP_A") {
            if self.auth != Auth::ChapChosen {
                return fail("CHAP_A out of order");
            }
            // 12.1.3: 5 = MD5, the only algorithm here.
            if !algs.split(',').any(|a| a == "5") {
                out.push(("CHAP_A".into(), "Reject".into()));
                return fail("no CHAP algorithm in common (MD5 only)");
            }
            let random = uuid::Uuid::new_v4().into_bytes();
            let id = uuid::Uuid::new_v4().into_bytes()[0];
            out.push(("CHAP_A".into(), "5".into()));
            out.push(("CHAP_I".into(), id.to_string()));
            out.push(("CHAP_C".into(), format!("0x{}", hex::encode(random))));
            self.auth = Auth::Challenged {
                id,
                challenge: random,
            };
        }
        let (n, r) = (value("CHAP_N"), value("CHAP_R"));
        if n.is_some() || r.is_some() {
            let Auth::Challenged { id, challenge } = self.auth.clone() else {
                return fail("CHAP response out of order");
            };
            let (Some(n), Some(r), Some(chap)) = (n, r, chap) else {
                return fail("CHAP_N or CHAP_R missing");
            };
            if value("CHAP_I").is_some() || value("CHAP_C").is_some() {
                return fail("mutual CHAP requested; no target secret configured");
            }
            let expected = chap_response(id, chap.secret.as_bytes(), &challenge);
            let got = decode_binary(r);
            if n != chap.user || got.as_deref() != Some(&expected[..]) {
                return fail("CHAP name or response wrong");
            }
            self.auth = Auth::Authenticated;
        }
        Ok(())
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

/// A binary value in hex (`0x...`, RFC 7143 6.1); base64 (`0b`) is not
/// accepted here. At most 1 KiB.
fn decode_binary(v: &str) -> Option<Vec<u8>> {
    let h = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X"))?;
    if h.len() > 2048 {
        return None;
    }
    hex::decode(h).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(allow: &[&str], chap: Option<(&str, &str)>) -> LoginConfig {
        LoginConfig {
            targets: vec!["iqn.2026-01.test:t".into()],
            allow: allow.iter().map(|s| s.to_string()).collect(),
            chap: chap.map(|(u, s)| Chap {
                user: u.into(),
                secret: s.into(),
            }),
            limits: TargetLimits::default(),
        }
    }

    fn req(transit: bool, csg: u8, nsg: u8) -> LoginRequest {
        LoginRequest {
            transit,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: 0x23d0_0000_0001,
            tsih: 0,
            itt: 7,
            cid: 0,
            cmd_sn: 100,
            exp_stat_sn: 50,
        }
    }

    fn text(kv: &[(&str, &str)]) -> Vec<u8> {
        encode_pairs(
            &kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    fn resp(p: &Pdu) -> (LoginResponse, Vec<(String, String)>) {
        match &p.header {
            Header::LoginResponse(h) => (h.clone(), parse_pairs(&p.data).unwrap()),
            other => panic!("not a login response: {other:?}"),
        }
    }

    fn get<'a>(kv: &'a [(String, String)], k: &str) -> Option<&'a str> {
        kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    const NAMES: [(&str, &str); 3] = [
        ("InitiatorName", "iqn.2026-01.test:i"),
        ("TargetName", "iqn.2026-01.test:t"),
        ("SessionType", "Normal"),
    ];

    /// libiscsi without CHAP: one operational PDU straight to full feature.
    #[test]
    fn operational_only_login() {
        let mut l = Login::new(TargetLimits::default(), 9);
        let mut kv = NAMES.to_vec();
        kv.extend([
            ("MaxRecvDataSegmentLength", "262144"),
            ("HeaderDigest", "None,CRC32C"),
        ]);
        let (p, out) = l.step(&cfg(&[], None), &req(true, 1, 3), &text(&kv));
        assert_eq!(out, LoginOutcome::FullFeature);
        let (h, kv) = resp(&p);
        assert!(h.transit);
        assert_eq!((h.csg, h.nsg, h.tsih), (1, 3, 9));
        assert_eq!((h.status_class, h.status_detail), (0, 0));
        assert_eq!((h.stat_sn, h.exp_cmd_sn, h.max_cmd_sn), (50, 100, 131));
        assert_eq!(get(&kv, "TargetPortalGroupTag"), Some("1"));
        assert_eq!(get(&kv, "HeaderDigest"), Some("None"));
        assert_eq!(get(&kv, "MaxRecvDataSegmentLength"), Some("262144"));
        assert_eq!(l.neg.params.initiator_mrdsl, 262_144);
        assert_eq!(l.stat_sn, 51);
    }

    #[test]
    fn refusals() {
        let login = |c: &LoginConfig, kv: &[(&str, &str)]| {
            let mut l = Login::new(TargetLimits::default(), 1);
            let (p, out) = l.step(c, &req(true, 1, 3), &text(kv));
            let (h, _) = resp(&p);
            (((h.status_class as u16) << 8) | h.status_detail as u16, out)
        };
        let open = cfg(&[], None);
        let (st, _) = login(
            &open,
            &[("InitiatorName", "iqn.x:i"), ("TargetName", "iqn.nope:t")],
        );
        assert_eq!(st, status::NOT_FOUND);
        let (st, _) = login(&open, &[("TargetName", "iqn.2026-01.test:t")]);
        assert_eq!(st, status::MISSING_PARAMETER);
        let (st, _) = login(&open, &[("InitiatorName", "iqn.x:i")]);
        assert_eq!(st, status::MISSING_PARAMETER);
        let (st, out) = login(&cfg(&["iqn.other:i"], None), &NAMES);
        assert_eq!(st, status::AUTHORIZATION_FAILED);
        assert!(matches!(out, LoginOutcome::Refused { .. }));
        let (st, _) = login(&cfg(&["iqn.2026-01.test:i"], None), &NAMES);
        assert_eq!(st, status::SUCCESS);
        // CHAP configured, security stage skipped.
        let (st, _) = login(&cfg(&[], Some(("u", "secretsecret"))), &NAMES);
        assert_eq!(st, status::AUTHENTICATION_FAILED);
        // Discovery needs no TargetName and no CHAP.
        let (st, out) = login(
            &cfg(&[], Some(("u", "secretsecret"))),
            &[("InitiatorName", "iqn.x:i"), ("SessionType", "Discovery")],
        );
        assert_eq!(st, status::SUCCESS);
        assert_eq!(out, LoginOutcome::FullFeature);
        let (st, _) = login(
            &open,
            &[("InitiatorName", "iqn.x:i"), ("SessionType", "Bogus")],
        );
        assert_eq!(st, status::INITIATOR_ERROR);
        let (st, _) = login(&open, &[("InitiatorName", "iqn.x:i"), ("junk", "1")]);
        // An unknown key is NotUnderstood, not a refusal... but TargetName is missing.
        assert_eq!(st, status::MISSING_PARAMETER);
        // A new connection for an existing session is refused.
        let mut l = Login::new(TargetLimits::default(), 1);
        let mut r = req(true, 1, 3);
        r.tsih = 5;
        let (p, _) = l.step(&open, &r, &text(&NAMES));
        assert_eq!(resp(&p).0.status_detail, 0x0a);
        let mut l = Login::new(TargetLimits::default(), 1);
        let mut r = req(true, 1, 3);
        r.version_min = 1;
        let (p, _) = l.step(&open, &r, &text(&NAMES));
        assert_eq!(resp(&p).0.status_detail, 0x05);
        let mut l = Login::new(TargetLimits::default(), 1);
        let (p, _) = l.step(&open, &req(true, 1, 2), &text(&NAMES));
        assert_eq!(resp(&p).0.status_detail, 0x0b);
    }

    /// The CHAP exchange as libiscsi runs it (T=1 on the offer, T=0 on
    /// CHAP_A, T=1 with the response), right and wrong secret.
    #[test]
    fn chap_exchange() {
        for (secret, ok) in [("secretsecret", true), ("wrongwrong12", false)] {
            let c = cfg(&[], Some(("alice", "secretsecret")));
            let mut l = Login::new(TargetLimits::default(), 3);
            let mut kv = NAMES.to_vec();
            kv.push(("AuthMethod", "CHAP,None"));
            let (p, out) = l.step(&c, &req(true, 0, 1), &text(&kv));
            assert_eq!(out, LoginOutcome::Continue);
            let (h, kv) = resp(&p);
            assert!(!h.transit, "not ready to leave security yet");
            assert_eq!(get(&kv, "AuthMethod"), Some("CHAP"));

            let (p, _) = l.step(&c, &req(false, 0, 1), &text(&[("CHAP_A", "5")]));
            let (_, kv) = resp(&p);
            assert_eq!(get(&kv, "CHAP_A"), Some("5"));
            let id: u8 = get(&kv, "CHAP_I").unwrap().parse().unwrap();
            let challenge = decode_binary(get(&kv, "CHAP_C").unwrap()).unwrap();
            assert_eq!(challenge.len(), 16);

            let r = chap_response(id, secret.as_bytes(), &challenge);
            let r = format!("0x{}", hex::encode(r));
            let (p, out) = l.step(
                &c,
                &req(true, 0, 1),
                &text(&[("CHAP_N", "alice"), ("CHAP_R", &r)]),
            );
            let (h, _) = resp(&p);
            if ok {
                assert_eq!(out, LoginOutcome::Continue);
                assert!(h.transit);
                assert_eq!((h.csg, h.nsg), (0, 1));
                let (p, out) = l.step(&c, &req(true, 1, 3), &text(&[("MaxBurstLength", "262144")]));
                assert_eq!(out, LoginOutcome::FullFeature);
                assert_eq!(resp(&p).0.tsih, 3);
            } else {
                assert_eq!((h.status_class, h.status_detail), (2, 1));
            }
        }
    }

    #[test]
    fn chap_golden_md5() {
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
    fn continued_text_is_joined() {
        let c = cfg(&[], None);
        let mut l = Login::new(TargetLimits::default(), 1);
        let all = text(&NAMES);
        let mut r = req(false, 1, 0);
        r.cont = true;
        let (p, out) = l.step(&c, &r, &all[..10]);
        assert_eq!(out, LoginOutcome::Continue);
        assert!(p.data.is_empty());
        let (_, out) = l.step(&c, &req(true, 1, 3), &all[10..]);
        assert_eq!(out, LoginOutcome::FullFeature);
    }
}
