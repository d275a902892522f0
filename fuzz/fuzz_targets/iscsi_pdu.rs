//! iSCSI PDUs from the network: parse must never panic, and whatever
//! parses must re-encode to the same PDU. Login Requests among them also
//! go through the target's login state machine (names, CHAP with a
//! per-initiator secret and mutual CHAP, key negotiation), which must
//! answer each with a Login Response and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::frontend::chap::{ChapConfig, Credentials, Secret};
use sanmover::frontend::login::{Login, LoginConfig};
use sanmover::frontend::pdu::{Header, Pdu, BHS_LEN};
use sanmover::frontend::text::{self, TargetLimits};

fn login_config() -> LoginConfig {
    let mut chap = ChapConfig::single("iqn.2026-01.fuzz:i", "user", "fuzz-secret-0123");
    chap.target = Some(Credentials {
        user: "router".into(),
        secret: Secret::new("fuzz-target-4567"),
    });
    chap.discovery = true;
    LoginConfig {
        targets: vec!["iqn.2026-01.fuzz:t".into()],
        allow: Vec::new(),
        chap: Some(chap),
        limits: TargetLimits::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    // The reader's owned decoding agrees with the borrowed one.
    if data.len() >= BHS_LEN {
        let mut bhs = [0u8; BHS_LEN];
        bhs.copy_from_slice(&data[..BHS_LEN]);
        let rest = &data[BHS_LEN..];
        assert_eq!(
            Pdu::from_owned(&bhs, rest.to_vec(), 1 << 16),
            Pdu::from_parts(&bhs, rest, 1 << 16)
        );
    }
    let cfg = login_config();
    let mut login = Login::new(TargetLimits::default(), 1);
    let mut rest = data;
    while let Ok((pdu, used)) = Pdu::parse(rest, 1 << 16) {
        let wire = pdu.emit();
        assert_eq!(wire.len(), pdu.buffer_len());
        let (back, n) = Pdu::parse(&wire, 1 << 16).expect("own PDU parses");
        assert_eq!(n, wire.len());
        assert_eq!(back, pdu);
        let _ = text::parse_pairs(&pdu.data);
        if let Header::LoginRequest(req) = &pdu.header {
            let (resp, _) = login.step(&cfg, req, &pdu.data);
            assert!(matches!(resp.header, Header::LoginResponse(_)));
        }
        rest = &rest[used..];
    }
});
