//! A bare-bones iSCSI initiator on the project's own PDU codec, for what
//! libiscsi does not let a test do on purpose: pick the ISID or the source
//! address, leave Data-In unread, send a task management function while a
//! command runs, send names no sane initiator sends.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use sanmover::frontend::login::chap_response;
use sanmover::frontend::pdu::*;
use sanmover::frontend::text::{encode_pairs, parse_pairs};

/// A TCP connection to `to` from the local address `from` (any address of
/// 127/8 works on Linux loopback, so one host can be many sources).
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(to) = to else {
        return Err(io::Error::other("IPv4 only"));
    };
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

/// What a login asks for.
#[derive(Clone)]
pub struct LoginSpec {
    pub initiator: String,
    /// None: a discovery session.
    pub target: Option<String>,
    pub isid: u64,
    /// Operational keys added to the names.
    pub keys: Vec<(String, String)>,
    /// CHAP user and secret the initiator answers with.
    pub chap: Option<(String, String)>,
    /// Mutual CHAP: the challenge sent to the target (with CHAP_I 77).
    pub mutual: Option<Vec<u8>>,
}

impl LoginSpec {
    pub fn normal(initiator: &str, target: &str, isid: u64) -> LoginSpec {
        LoginSpec {
            initiator: initiator.into(),
            target: Some(target.into()),
            isid,
            keys: Vec::new(),
            chap: None,
            mutual: None,
        }
    }

    pub fn key(mut self, k: &str, v: &str) -> LoginSpec {
        self.keys.push((k.into(), v.into()));
        self
    }

    pub fn chap(mut self, user: &str, secret: &str) -> LoginSpec {
        self.chap = Some((user.into(), secret.into()));
        self
    }
}

/// A refused login: status class and detail (RFC 7143 11.13.5), or the
/// connection closed before any answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Status(u8, u8),
    Closed,
}

/// What a command ended with.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u8,
    pub sense: Vec<u8>,
    pub data: Vec<u8>,
}

pub struct Raw {
    pub s: TcpStream,
    pub cmd_sn: u32,
    pub itt: u32,
    /// Every key the target answered during login.
    pub login_keys: Vec<(String, String)>,
    pub tsih: u16,
    /// PDUs for other tasks that arrived while waiting for one.
    pending: Vec<Pdu>,
}

impl Raw {
    /// Connect (from 127.0.0.1 unless `from`) and log in.
    pub fn login(addr: SocketAddr, spec: &LoginSpec) -> Result<Raw, Refused> {
        Self::login_from(Ipv4Addr::LOCALHOST, addr, spec)
    }

    pub fn login_from(from: Ipv4Addr, addr: SocketAddr, spec: &LoginSpec) -> Result<Raw, Refused> {
        let s = connect_from(from, addr).map_err(|_| Refused::Closed)?;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = Raw {
            s,
            cmd_sn: 10,
            itt: 0,
            login_keys: Vec::new(),
            tsih: 0,
            pending: Vec::new(),
        };
        let mut names: Vec<(String, String)> =
            vec![("InitiatorName".into(), spec.initiator.clone())];
        match &spec.target {
            Some(t) => {
                names.push(("TargetName".into(), t.clone()));
                names.push(("SessionType".into(), "Normal".into()));
            }
            None => names.push(("SessionType".into(), "Discovery".into())),
        }
        if let Some((user, secret)) = &spec.chap {
            r.security(spec, names, user, secret)?;
            names = Vec::new();
        }
        names.extend(spec.keys.iter().cloned());
        let lr = r.login_pdu(spec.isid, 1, 3, true, &names)?;
        if !(lr.transit && lr.nsg == 3) {
            return Err(Refused::Status(lr.status_class, lr.status_detail));
        }
        r.tsih = lr.tsih;
        Ok(r)
    }

    /// One Login Request; the response's header, its keys kept.
    fn login_pdu(
        &mut self,
        isid: u64,
        csg: u8,
        nsg: u8,
        transit: bool,
        kv: &[(String, String)],
    ) -> Result<LoginResponse, Refused> {
        let h = Header::LoginRequest(LoginRequest {
            transit,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid,
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
        });
        self.try_send(h, &encode_pairs(kv))
            .map_err(|_| Refused::Closed)?;
        let p = self.recv().ok_or(Refused::Closed)?;
        let Header::LoginResponse(lr) = p.header else {
            panic!("not a login response: {:?}", p.header)
        };
        if (lr.status_class, lr.status_detail) != (0, 0) {
            return Err(Refused::Status(lr.status_class, lr.status_detail));
        }
        self.login_keys
            .extend(parse_pairs(&p.data).expect("login response text"));
        Ok(lr)
    }

    /// The security stage with CHAP (RFC 7143 12.1.3), as libiscsi runs it.
    fn security(
        &mut self,
        spec: &LoginSpec,
        mut names: Vec<(String, String)>,
        user: &str,
        secret: &str,
    ) -> Result<(), Refused> {
        names.push(("AuthMethod".into(), "CHAP,None".into()));
        self.login_pdu(spec.isid, 0, 1, true, &names)?;
        self.login_pdu(spec.isid, 0, 1, false, &[("CHAP_A".into(), "5".into())])?;
        let id: u8 = self.key("CHAP_I").expect("CHAP_I").parse().unwrap();
        let c = self.key("CHAP_C").expect("CHAP_C");
        let challenge = hex::decode(c.trim_start_matches("0x")).unwrap();
        let r = chap_response(id, secret.as_bytes(), &challenge);
        let mut kv = vec![
            ("CHAP_N".into(), user.to_string()),
            ("CHAP_R".into(), format!("0x{}", hex::encode(r))),
        ];
        if let Some(c) = &spec.mutual {
            kv.push(("CHAP_I".into(), "77".into()));
            kv.push(("CHAP_C".into(), format!("0x{}", hex::encode(c))));
        }
        let lr = self.login_pdu(spec.isid, 0, 1, true, &kv)?;
        if !lr.transit {
            return Err(Refused::Status(lr.status_class, lr.status_detail));
        }
        Ok(())
    }

    /// The last value the target gave for `k` during login.
    pub fn key(&self, k: &str) -> Option<String> {
        self.login_keys
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    }

    pub fn send(&mut self, h: Header, data: &[u8]) {
        self.try_send(h, data).expect("send PDU");
    }

    pub fn try_send(&mut self, h: Header, data: &[u8]) -> io::Result<()> {
        self.s.write_all(&Pdu::new(h, data.to_vec()).emit())
    }

    /// The next PDU, or None on EOF, error or timeout.
    pub fn recv(&mut self) -> Option<Pdu> {
        let mut bhs = [0u8; BHS_LEN];
        self.s.read_exact(&mut bhs).ok()?;
        let mut rest = vec![0u8; trailing_len(&bhs)];
        self.s.read_exact(&mut rest).ok()?;
        Some(Pdu::from_parts(&bhs, &rest, 1 << 24).unwrap())
    }

    /// The next PDU that is not a target's NOP-In ping (pings are answered).
    pub fn recv_skipping_pings(&mut self) -> Option<Pdu> {
        if !self.pending.is_empty() {
            return Some(self.pending.remove(0));
        }
        loop {
            let p = self.recv()?;
            if let Header::NopIn(n) = &p.header {
                if n.itt == RESERVED_TAG {
                    self.answer_ping(n.ttt, n.lun);
                    continue;
                }
            }
            return Some(p);
        }
    }

    fn answer_ping(&mut self, ttt: u32, lun: u64) {
        let h = Header::NopOut(NopOut {
            immediate: true,
            lun,
            itt: RESERVED_TAG,
            ttt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
        });
        let _ = self.try_send(h, &[]);
    }

    pub fn next_itt(&mut self) -> u32 {
        self.itt += 1;
        self.itt
    }

    /// Send a SCSI command to LUN 0, `imm` as immediate data.
    pub fn command(&mut self, cdb: &[u8], read: bool, edtl: u32, imm: &[u8]) -> u32 {
        let itt = self.next_itt();
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        let h = Header::ScsiCommand(ScsiCommand {
            immediate: false,
            final_bit: true,
            read,
            write: !imm.is_empty(),
            attr: 1,
            lun: 0,
            itt,
            edtl,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
            cdb: c,
        });
        self.cmd_sn += 1;
        self.send(h, imm);
        itt
    }

    /// Wait for the end of task `itt`: its Data-In and status.
    pub fn wait(&mut self, itt: u32) -> Option<Reply> {
        let mut data = Vec::new();
        let mut held = Vec::new();
        let out = loop {
            let Some(p) = self.recv_skipping_pings() else {
                break None;
            };
            match p.header {
                Header::DataIn(ref d) if d.itt == itt => {
                    data.extend_from_slice(&p.data);
                    if let Some(status) = d.status {
                        break Some(Reply {
                            status,
                            sense: Vec::new(),
                            data,
                        });
                    }
                }
                Header::ScsiResponse(ref s) if s.itt == itt => {
                    let sense = if p.data.len() >= 2 {
                        let n = u16::from_be_bytes([p.data[0], p.data[1]]) as usize;
                        p.data[2..2 + n.min(p.data.len() - 2)].to_vec()
                    } else {
                        Vec::new()
                    };
                    break Some(Reply {
                        status: s.status,
                        sense,
                        data,
                    });
                }
                _ => held.push(p),
            }
        };
        self.pending.extend(held);
        out
    }

    /// A command and its reply.
    pub fn run(&mut self, cdb: &[u8], alloc: u32, data_out: &[u8]) -> Reply {
        let itt = self.command(cdb, alloc > 0, alloc.max(data_out.len() as u32), data_out);
        self.wait(itt).expect("command reply")
    }

    pub fn tmf(&mut self, function: TmfFunction, rtt: u32, ref_cmd_sn: u32) -> u32 {
        let itt = self.next_itt();
        let h = Header::TaskMgmtRequest(TaskMgmtRequest {
            immediate: true,
            function,
            lun: 0,
            itt,
            rtt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
            ref_cmd_sn,
            exp_data_sn: 0,
        });
        self.send(h, &[]);
        itt
    }

    /// A NOP-Out ping and its echo.
    pub fn ping(&mut self) -> Option<Pdu> {
        let itt = self.next_itt();
        let h = Header::NopOut(NopOut {
            immediate: true,
            lun: 0,
            itt,
            ttt: RESERVED_TAG,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
        });
        self.try_send(h, b"ping").ok()?;
        self.recv_skipping_pings()
    }

    /// Whether the target closed the connection (EOF or reset) within
    /// `wait`; PDUs that arrive meanwhile are dropped.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let end = std::time::Instant::now() + wait;
        let mut buf = [0u8; 65536];
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Sense key and ASC/ASCQ of fixed-format sense.
pub fn key_asc(sense: &[u8]) -> (u8, u8, u8) {
    if sense.len() < 14 {
        return (0, 0, 0);
    }
    (sense[2] & 0x0f, sense[12], sense[13])
}
