//! Connect and log in (RFC 7143 6.3): the security stage with CHAP when
//! credentials are given (12.1.3), the operational stage with the offered
//! keys, then full feature phase.

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4, TcpStream};

use crate::frontend::chap::chap_response;
use crate::frontend::pdu::{Header, LoginRequest, LoginResponse};
use crate::frontend::text::{encode_pairs, parse_pairs};

use super::{Chap, Config, Initiator, InitiatorError, SessionState};

/// Stages (RFC 7143 11.12.3).
const SECURITY: u8 = 0;
const OPERATIONAL: u8 = 1;
const FULL_FEATURE: u8 = 3;
/// Login exchanges allowed before we give up on a target that never
/// transits (each exchange answers the target's own offers).
const MAX_ROUNDS: usize = 8;

/// A TCP connection to `to`, from `from` when given.
pub fn connect(cfg: &Config) -> Result<TcpStream, InitiatorError> {
    let err = |source| InitiatorError::Connect {
        addr: cfg.portal,
        source,
    };
    let s = match (cfg.source, cfg.portal) {
        (Some(from), SocketAddr::V4(to)) => connect_from(from, to).map_err(err)?,
        (Some(_), SocketAddr::V6(_)) => {
            return Err(err(std::io::Error::other("a source address is IPv4 only")))
        }
        (None, to) => TcpStream::connect_timeout(&to, cfg.timeout).map_err(err)?,
    };
    s.set_nodelay(true).map_err(err)?;
    s.set_write_timeout(Some(cfg.timeout)).map_err(err)?;
    Ok(s)
}

/// A TCP connection to `to` from the local address `from` (any address of
/// 127/8 works on Linux loopback, so one host can be many sources).
pub fn connect_from(from: std::net::Ipv4Addr, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(from, 0)),
    )?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}

impl Initiator {
    /// Connect and log in as `cfg` says.
    pub fn login(cfg: &Config) -> Result<Initiator, InitiatorError> {
        let stream = connect(cfg)?;
        let mut i = Initiator {
            stream,
            timeout: cfg.timeout,
            state: SessionState {
                isid: cfg.isid,
                cmd_sn: 1,
                ..SessionState::default()
            },
            login_keys: Vec::new(),
            login_response: None,
            offered: cfg.keys.clone(),
            windows: Vec::new(),
            pending: VecDeque::new(),
            edtl: Default::default(),
        };
        let mut names = vec![("InitiatorName".to_string(), cfg.initiator.clone())];
        match &cfg.target {
            Some(t) => {
                names.push(("TargetName".into(), t.clone()));
                names.push(("SessionType".into(), "Normal".into()));
            }
            None => names.push(("SessionType".into(), "Discovery".into())),
        }
        if let Some(chap) = &cfg.chap {
            i.security(names, chap)?;
            names = Vec::new();
        }
        names.extend(cfg.keys.iter().cloned());
        i.operational(names)?;
        Ok(i)
    }

    /// The operational stage: offer `kv`, answer what the target offers
    /// on its own, until it transits to full feature phase.
    fn operational(&mut self, mut kv: Vec<(String, String)>) -> Result<(), InitiatorError> {
        for _ in 0..MAX_ROUNDS {
            let (lr, got) = self.login_pdu(OPERATIONAL, FULL_FEATURE, true, &kv)?;
            if lr.transit && lr.nsg == FULL_FEATURE {
                self.state.tsih = lr.tsih;
                self.state.cmd_sn = lr.exp_cmd_sn;
                self.state.exp_cmd_sn = lr.exp_cmd_sn;
                self.state.max_cmd_sn = lr.max_cmd_sn;
                self.login_response = Some(lr);
                return Ok(());
            }
            kv = answer_target_offers(&got, &self.offered);
        }
        Err(InitiatorError::Protocol(format!(
            "no transit to full feature phase after {MAX_ROUNDS} login exchanges"
        )))
    }

    /// One Login Request and its response; the response's keys kept.
    fn login_pdu(
        &mut self,
        csg: u8,
        nsg: u8,
        transit: bool,
        kv: &[(String, String)],
    ) -> Result<(LoginResponse, Vec<(String, String)>), InitiatorError> {
        let h = Header::LoginRequest(LoginRequest {
            transit,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: self.state.isid,
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: self.state.cmd_sn,
            exp_stat_sn: self.state.exp_stat_sn,
        });
        self.send(h, &encode_pairs(kv))?;
        let p = self.recv("a Login Response")?;
        let Header::LoginResponse(lr) = p.header else {
            return Err(InitiatorError::Unexpected {
                got: p.header.opcode(),
                want: "a Login Response",
            });
        };
        if (lr.status_class, lr.status_detail) != (0, 0) {
            return Err(InitiatorError::LoginRefused {
                class: lr.status_class,
                detail: lr.status_detail,
            });
        }
        if lr.cont {
            return Err(InitiatorError::Protocol(
                "a Login Response continued over several PDUs (C bit) is not supported".into(),
            ));
        }
        let got = parse_pairs(&p.data)?;
        self.login_keys.extend(got.iter().cloned());
        Ok((lr, got))
    }

    /// The security stage with CHAP (RFC 7143 12.1.3), as libiscsi runs it.
    fn security(
        &mut self,
        mut names: Vec<(String, String)>,
        chap: &Chap,
    ) -> Result<(), InitiatorError> {
        names.push(("AuthMethod".into(), "CHAP,None".into()));
        self.login_pdu(SECURITY, OPERATIONAL, true, &names)?;
        if self.key("AuthMethod") != Some("CHAP") {
            // The target chose None: the stage may already be over.
            return Ok(());
        }
        let one = [("CHAP_A".to_string(), "5".to_string())];
        self.login_pdu(SECURITY, OPERATIONAL, false, &one)?;
        let (id, challenge) = self.chap_challenge()?;
        let r = chap_response(id, &chap.secret, &challenge);
        let mut kv = vec![
            ("CHAP_N".to_string(), chap.user.clone()),
            ("CHAP_R".to_string(), format!("0x{}", hex::encode(r))),
        ];
        if let Some(c) = &chap.mutual {
            kv.push(("CHAP_I".into(), "77".into()));
            kv.push(("CHAP_C".into(), format!("0x{}", hex::encode(c))));
        }
        let (lr, _) = self.login_pdu(SECURITY, OPERATIONAL, true, &kv)?;
        if !lr.transit {
            return Err(InitiatorError::Protocol(
                "CHAP answered but the target stays in the security stage".into(),
            ));
        }
        Ok(())
    }

    /// CHAP_I and CHAP_C as the target sent them.
    fn chap_challenge(&self) -> Result<(u8, Vec<u8>), InitiatorError> {
        let bad = |what: &str| InitiatorError::Protocol(format!("CHAP: {what}"));
        let id = self
            .key("CHAP_I")
            .ok_or_else(|| bad("no CHAP_I"))?
            .parse::<u8>()
            .map_err(|_| bad("CHAP_I is not a number 0-255"))?;
        let c = self.key("CHAP_C").ok_or_else(|| bad("no CHAP_C"))?;
        let hexs = c
            .strip_prefix("0x")
            .or_else(|| c.strip_prefix("0X"))
            .ok_or_else(|| bad("CHAP_C is not 0x-hex"))?;
        let challenge = hex::decode(hexs).map_err(|_| bad("CHAP_C is not hex"))?;
        Ok((id, challenge))
    }
}

/// Our answers to keys the target offered on its own (not answers to
/// ours): its value for a key we know, NotUnderstood otherwise
/// (RFC 7143 6.2.1).
pub fn answer_target_offers(
    got: &[(String, String)],
    offered: &[(String, String)],
) -> Vec<(String, String)> {
    const KNOWN: &[&str] = &[
        "HeaderDigest",
        "DataDigest",
        "MaxRecvDataSegmentLength",
        "MaxBurstLength",
        "FirstBurstLength",
        "InitialR2T",
        "ImmediateData",
        "MaxOutstandingR2T",
        "DataPDUInOrder",
        "DataSequenceInOrder",
        "ErrorRecoveryLevel",
        "MaxConnections",
        "DefaultTime2Wait",
        "DefaultTime2Retain",
    ];
    got.iter()
        .filter(|(k, _)| !offered.iter().any(|(o, _)| o == k))
        .filter(|(k, _)| k != "MaxRecvDataSegmentLength" && k != "TargetPortalGroupTag")
        .filter(|(k, _)| k != "TargetAlias" && k != "TargetAddress")
        .map(|(k, v)| {
            let a = if !KNOWN.contains(&k.as_str()) {
                "NotUnderstood".to_string()
            } else if v.contains(',') {
                // A list: one value, None for digests (we compute none).
                let mut items = v.split(',');
                match v.split(',').find(|x| *x == "None") {
                    Some(none) => none.to_string(),
                    None => items.next().unwrap_or_default().to_string(),
                }
            } else {
                v.clone()
            };
            (k.clone(), a)
        })
        .collect()
}
