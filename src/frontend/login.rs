//! The login phase (RFC 7143 6.3): security stage with optional CHAP,
//! operational stage, transit to full feature. No I/O: each Login Request
//! goes in, the Login Response comes out, so every refusal is unit-tested.

use super::chap::{self, ChapConfig, Credentials};
use super::pdu::{Header, LoginRequest, LoginResponse, Pdu};
use super::text::{
    check_name, encode_pairs, escaped, is_login_key, parse_number, parse_pairs, Negotiation,
    SessionType, TargetLimits, MAX_TEXT_LEN,
};

pub use super::chap::chap_response;

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
    pub const TARGET_ERROR: u16 = 0x0300;
    pub const SERVICE_UNAVAILABLE: u16 = 0x0301;
    pub const OUT_OF_RESOURCES: u16 = 0x0302;
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
    /// CHAP the initiator must pass (normal sessions; discovery ones too
    /// when it says so).
    pub chap: Option<ChapConfig>,
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
        self.check_stage(req)?;
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
        self.identify(cfg, &pairs)?;
        let normal = self.session_type == SessionType::Normal;
        // CHAP guards normal sessions, and discovery ones when configured.
        let chap = cfg.chap.as_ref().filter(|c| normal || c.discovery);

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
        self.negotiate(&pairs, &mut out);
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

    /// Answer the operational keys (RFC 7143 13).
    fn negotiate(&mut self, pairs: &[(String, String)], out: &mut Vec<(String, String)>) {
        for (k, v) in pairs {
            if is_login_key(k) {
                continue;
            }
            if let Some(a) = self.neg.answer(k, v).reply() {
                out.push((k.clone(), a));
            }
        }
    }

    /// The checks of the login stages and versions (RFC 7143 6.3, 11.12).
    fn check_stage(&mut self, req: &LoginRequest) -> Result<(), (u16, String)> {
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
        Ok(())
    }

    /// Names, target and allow-list: who is logging in, and to what.
    fn identify(
        &mut self,
        cfg: &LoginConfig,
        pairs: &[(String, String)],
    ) -> Result<(), (u16, String)> {
        let refuse = |st: u16, why: &str| Err((st, why.to_string()));
        self.names(pairs)?;
        let Some(initiator) = self.initiator.clone() else {
            return refuse(status::MISSING_PARAMETER, "InitiatorName missing");
        };
        let normal = self.session_type == SessionType::Normal;
        if normal {
            let Some(target) = &self.target else {
                return refuse(status::MISSING_PARAMETER, "TargetName missing");
            };
            if !cfg.targets.iter().any(|t| t == target) {
                return Err((
                    status::NOT_FOUND,
                    format!("no target named {}", escaped(target)),
                ));
            }
        }
        if !cfg.allow.is_empty() && !cfg.allow.contains(&initiator) {
            return Err((
                status::AUTHORIZATION_FAILED,
                format!("initiator {} is not on the allow list", escaped(&initiator)),
            ));
        }
        Ok(())
    }

    /// InitiatorName, TargetName and SessionType: on the first PDU
    /// (6.3.1), repeated later only with the same value. Names are
    /// checked before anything else looks at them.
    fn names(&mut self, pairs: &[(String, String)]) -> Result<(), (u16, String)> {
        for (key, v) in pairs {
            let slot = match key.as_str() {
                "InitiatorName" => &mut self.initiator,
                "TargetName" => &mut self.target,
                _ => continue,
            };
            if let Err(e) = check_name(v) {
                return Err((
                    status::INITIATOR_ERROR,
                    format!("{key} {}: {e}", escaped(v)),
                ));
            }
            match slot {
                Some(c) if c != v => {
                    return Err((
                        status::INITIATOR_ERROR,
                        format!("{key} changed during login"),
                    ))
                }
                _ => *slot = Some(v.clone()),
            }
        }
        if let Some((_, v)) = pairs.iter().find(|(k, _)| k == "SessionType") {
            self.session_type = match v.as_str() {
                "Normal" => SessionType::Normal,
                "Discovery" => SessionType::Discovery,
                _ => return Err((status::INITIATOR_ERROR, "unknown SessionType".to_string())),
            };
            self.neg.set_session_type(self.session_type);
        }
        Ok(())
    }

    /// The security stage keys (RFC 7143 12.1): AuthMethod, CHAP.
    fn security(
        &mut self,
        chap: Option<&ChapConfig>,
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
            self.send_challenge(algs, out)?;
        }
        let (n, r) = (value("CHAP_N"), value("CHAP_R"));
        if n.is_some() || r.is_some() {
            let (Some(n), Some(r), Some(chap)) = (n, r, chap) else {
                return fail("CHAP_N or CHAP_R missing");
            };
            self.check_response(chap, n, r)?;
            if let Some(c) = value("CHAP_C") {
                self.answer_mutual(chap, value("CHAP_I"), c, out)?;
            }
            self.auth = Auth::Authenticated;
        }
        Ok(())
    }

    /// CHAP_A: pick MD5 and send an identifier and a challenge from the
    /// OS random source (12.1.3).
    fn send_challenge(
        &mut self,
        algs: &str,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), (u16, String)> {
        let fail = |why: &str| Err((status::AUTHENTICATION_FAILED, why.to_string()));
        if self.auth != Auth::ChapChosen {
            return fail("CHAP_A out of order");
        }
        // 12.1.3: 5 = MD5, the only algorithm here.
        if !algs.split(',').any(|a| a == "5") {
            out.push(("CHAP_A".into(), "Reject".into()));
            return fail("no CHAP algorithm in common (MD5 only)");
        }
        let (id, challenge) = chap::challenge()
            .map_err(|e| (status::TARGET_ERROR, format!("no random challenge: {e}")))?;
        out.push(("CHAP_A".into(), "5".into()));
        out.push(("CHAP_I".into(), id.to_string()));
        out.push(("CHAP_C".into(), format!("0x{}", hex::encode(challenge))));
        self.auth = Auth::Challenged { id, challenge };
        Ok(())
    }

    /// CHAP_N and CHAP_R against the initiator's own secret, in constant
    /// time.
    fn check_response(&self, chap: &ChapConfig, n: &str, r: &str) -> Result<(), (u16, String)> {
        let fail = |why: String| Err((status::AUTHENTICATION_FAILED, why));
        let Auth::Challenged { id, challenge } = &self.auth else {
            return fail("CHAP response out of order".into());
        };
        let initiator = self.initiator.as_deref().unwrap_or_default();
        let Some(creds) = chap.for_initiator(initiator) else {
            return fail(format!("no CHAP secret for {}", escaped(initiator)));
        };
        let got = chap::decode_binary(r).unwrap_or_default();
        if !chap::verify(creds, n, *id, challenge, &got) {
            return fail("CHAP name or response wrong".into());
        }
        Ok(())
    }

    /// Mutual CHAP (12.1.3): answer the initiator's challenge with the
    /// target's secret. A challenge equal to ours is refused (a
    /// reflection attack would have us compute the initiator's answer).
    fn answer_mutual(
        &self,
        chap: &ChapConfig,
        i: Option<&str>,
        c: &str,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), (u16, String)> {
        let fail = |why: &str| Err((status::AUTHENTICATION_FAILED, why.to_string()));
        let Some(target) = &chap.target else {
            return fail("mutual CHAP requested; no target secret configured");
        };
        let id = i.and_then(parse_number).filter(|n| *n <= 255);
        let challenge = chap::decode_binary(c).filter(|c| !c.is_empty());
        let (Some(id), Some(challenge)) = (id, challenge) else {
            return fail("mutual CHAP: bad CHAP_I or CHAP_C");
        };
        if let Auth::Challenged {
            challenge: ours, ..
        } = &self.auth
        {
            if challenge[..] == ours[..] {
                return fail("mutual CHAP: the initiator sent our own challenge back");
            }
        }
        let answer = chap::answer(target, id as u8, &challenge);
        push_credentials(out, target, &answer);
        Ok(())
    }
}

fn push_credentials(out: &mut Vec<(String, String)>, c: &Credentials, response: &[u8]) {
    out.push(("CHAP_N".into(), c.user.clone()));
    out.push(("CHAP_R".into(), format!("0x{}", hex::encode(response))));
}

impl Login {
    /// A refusal for `req` where [`Login::step`] would have completed the
    /// login (the frontend could not admit the session after all).
    pub fn refusal(&mut self, req: &LoginRequest, st: u16) -> Pdu {
        self.response(req, false, 0, st, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(allow: &[&str], chap: Option<(&str, &str)>) -> LoginConfig {
        LoginConfig {
            targets: vec!["iqn.2026-01.test:t".into()],
            allow: allow.iter().map(|s| s.to_string()).collect(),
            chap: chap.map(|(u, s)| ChapConfig::single("iqn.2026-01.test:i", u, s)),
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
            let challenge = chap::decode_binary(get(&kv, "CHAP_C").unwrap()).unwrap();
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

    /// The CHAP exchange of `initiator` with `user`/`secret`, optionally
    /// asking for mutual CHAP with `mutual` as its challenge; the outcome
    /// of the third step and the keys the target answered there.
    fn chap_login(
        c: &LoginConfig,
        names: &[(&str, &str)],
        user: &str,
        secret: &str,
        mutual: Option<&[u8]>,
    ) -> (LoginOutcome, Vec<(String, String)>) {
        let mut l = Login::new(TargetLimits::default(), 3);
        let mut kv = names.to_vec();
        kv.push(("AuthMethod", "CHAP,None"));
        let (_, out) = l.step(c, &req(true, 0, 1), &text(&kv));
        if out != LoginOutcome::Continue {
            return (out, Vec::new());
        }
        let (p, _) = l.step(c, &req(false, 0, 1), &text(&[("CHAP_A", "5")]));
        let (_, kv) = resp(&p);
        let id: u8 = get(&kv, "CHAP_I").unwrap().parse().unwrap();
        let challenge = chap::decode_binary(get(&kv, "CHAP_C").unwrap()).unwrap();
        let r = format!(
            "0x{}",
            hex::encode(chap_response(id, secret.as_bytes(), &challenge))
        );
        let ch = mutual.map(|m| format!("0x{}", hex::encode(m)));
        let mut kv = vec![("CHAP_N", user), ("CHAP_R", r.as_str())];
        if let Some(ch) = &ch {
            kv.extend([("CHAP_I", "9"), ("CHAP_C", ch.as_str())]);
        }
        let (p, out) = l.step(c, &req(true, 0, 1), &text(&kv));
        (out, resp(&p).1)
    }

    fn two_initiators() -> LoginConfig {
        let mut c = cfg(&[], None);
        let mut chap = ChapConfig::single("iqn.2026-01.test:i", "alice", "alice-secret-16b");
        chap.initiators
            .extend(ChapConfig::single("iqn.2026-01.test:j", "bob", "bob-secret-16byt").initiators);
        c.chap = Some(chap);
        c
    }

    /// Each initiator answers with its own secret; another's secret (or
    /// name) does not open its door.
    #[test]
    fn chap_secrets_are_per_initiator() {
        let c = two_initiators();
        let j = [
            ("InitiatorName", "iqn.2026-01.test:j"),
            ("TargetName", "iqn.2026-01.test:t"),
        ];
        let ok = LoginOutcome::Continue;
        assert_eq!(
            chap_login(&c, &NAMES, "alice", "alice-secret-16b", None).0,
            ok
        );
        assert_eq!(chap_login(&c, &j, "bob", "bob-secret-16byt", None).0, ok);
        for (names, user, secret) in [
            (&j[..], "alice", "alice-secret-16b"),
            (&j[..], "bob", "alice-secret-16b"),
            (&NAMES[..], "bob", "bob-secret-16byt"),
        ] {
            let (out, _) = chap_login(&c, names, user, secret, None);
            assert!(
                matches!(out, LoginOutcome::Refused { status: 0x0201, .. }),
                "{out:?}"
            );
        }
        // An initiator with no secret at all.
        let k = [
            ("InitiatorName", "iqn.2026-01.test:k"),
            ("TargetName", "iqn.2026-01.test:t"),
        ];
        let (out, _) = chap_login(&c, &k, "alice", "alice-secret-16b", None);
        assert!(matches!(out, LoginOutcome::Refused { status: 0x0201, .. }));
    }

    /// Mutual CHAP: the target answers the initiator's challenge with its
    /// own secret; without one configured, or with our own challenge sent
    /// back, the login fails.
    #[test]
    fn mutual_chap() {
        let mut c = two_initiators();
        let (out, _) = chap_login(&c, &NAMES, "alice", "alice-secret-16b", Some(&[5; 16]));
        assert!(
            matches!(out, LoginOutcome::Refused { .. }),
            "no target secret"
        );
        c.chap.as_mut().unwrap().target = Some(Credentials {
            user: "router".into(),
            secret: chap::Secret::new("target-secret-16"),
        });
        let (out, kv) = chap_login(&c, &NAMES, "alice", "alice-secret-16b", Some(&[5; 16]));
        assert_eq!(out, LoginOutcome::Continue);
        assert_eq!(get(&kv, "CHAP_N"), Some("router"));
        let want = chap_response(9, b"target-secret-16", &[5; 16]);
        assert_eq!(
            get(&kv, "CHAP_R"),
            Some(format!("0x{}", hex::encode(want)).as_str())
        );
        // Without mutual CHAP the target sends no credentials.
        let (_, kv) = chap_login(&c, &NAMES, "alice", "alice-secret-16b", None);
        assert_eq!(get(&kv, "CHAP_R"), None);
    }

    /// With `discovery` set, a discovery session needs CHAP as well.
    #[test]
    fn chap_for_discovery_sessions() {
        let mut c = two_initiators();
        let disc = [
            ("InitiatorName", "iqn.2026-01.test:i"),
            ("SessionType", "Discovery"),
        ];
        let mut l = Login::new(TargetLimits::default(), 1);
        let (_, out) = l.step(&c, &req(true, 1, 3), &text(&disc));
        assert_eq!(out, LoginOutcome::FullFeature, "off by default");
        c.chap.as_mut().unwrap().discovery = true;
        let mut l = Login::new(TargetLimits::default(), 1);
        let (_, out) = l.step(&c, &req(true, 1, 3), &text(&disc));
        assert!(matches!(out, LoginOutcome::Refused { status: 0x0201, .. }));
        let (out, _) = chap_login(&c, &disc, "alice", "alice-secret-16b", None);
        assert_eq!(out, LoginOutcome::Continue);
    }

    /// Names over 223 bytes or with control characters are refused, and
    /// the reason shows them escaped.
    #[test]
    fn bad_names_are_refused() {
        let long = format!("iqn.2026-01.test:{}", "x".repeat(220));
        for name in [long.as_str(), "iqn.2026-01.test:a\nb"] {
            let mut l = Login::new(TargetLimits::default(), 1);
            let kv = [
                ("InitiatorName", name),
                ("TargetName", "iqn.2026-01.test:t"),
            ];
            let (_, out) = l.step(&cfg(&[], None), &req(true, 1, 3), &text(&kv));
            let LoginOutcome::Refused { status, reason } = out else {
                panic!("{name:?} accepted")
            };
            assert_eq!(status, status::INITIATOR_ERROR);
            assert!(!reason.contains('\n'), "{reason}");
        }
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
