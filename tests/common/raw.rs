//! The target tests' face of the library's raw initiator
//! (`sanmover::initiator`): a login spec with the ISID and source address
//! chosen by the test, refusals as status codes, and commands to LUN 0
//! that panic on a broken connection, for what libiscsi does not let a
//! test do on purpose: leave Data-In unread, send a task management
//! function while a command runs, send names no sane initiator sends.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use sanmover::frontend::pdu::*;
use sanmover::initiator::{Chap, Config, DataDir, Initiator, InitiatorError};

pub use sanmover::initiator::Reply;

/// A TCP connection to `to` from the local address `from`.
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        return Err(io::Error::other("IPv4 only"));
    };
    sanmover::initiator::connect_from(from, to)
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

    fn config(&self, from: Ipv4Addr, addr: SocketAddr) -> Config {
        Config {
            portal: addr,
            source: Some(from),
            initiator: self.initiator.clone(),
            target: self.target.clone(),
            isid: self.isid,
            keys: self.keys.clone(),
            chap: self.chap.as_ref().map(|(user, secret)| Chap {
                user: user.clone(),
                secret: secret.as_bytes().to_vec(),
                mutual: self.mutual.clone(),
            }),
            timeout: Duration::from_secs(20),
        }
    }
}

/// A refused login: status class and detail (RFC 7143 11.13.5), or the
/// connection closed before any answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Status(u8, u8),
    Closed,
}

pub struct Raw {
    pub i: Initiator,
    /// The bytes of writes in flight, to answer their R2Ts.
    writes: HashMap<u32, Vec<u8>>,
}

impl Raw {
    /// Connect (from 127.0.0.1) and log in.
    pub fn login(addr: SocketAddr, spec: &LoginSpec) -> Result<Raw, Refused> {
        Self::login_from(Ipv4Addr::LOCALHOST, addr, spec)
    }

    pub fn login_from(from: Ipv4Addr, addr: SocketAddr, spec: &LoginSpec) -> Result<Raw, Refused> {
        match Initiator::login(&spec.config(from, addr)) {
            Ok(i) => Ok(Raw {
                i,
                writes: HashMap::new(),
            }),
            Err(InitiatorError::LoginRefused { class, detail }) => {
                Err(Refused::Status(class, detail))
            }
            Err(_) => Err(Refused::Closed),
        }
    }

    /// The last value the target gave for `k` during login.
    pub fn key(&self, k: &str) -> Option<String> {
        self.i.key(k).map(str::to_string)
    }

    /// The connection, for peeking and flags.
    pub fn s(&self) -> &TcpStream {
        self.i.stream()
    }

    /// The CmdSN the next command carries.
    pub fn cmd_sn(&self) -> u32 {
        self.i.state.cmd_sn
    }

    pub fn send(&mut self, h: Header, data: &[u8]) {
        self.i.send(h, data).expect("send PDU");
    }

    /// The next PDU, or None on EOF, error or timeout.
    pub fn recv(&mut self) -> Option<Pdu> {
        self.i.recv("a PDU").ok()
    }

    /// The next PDU that is not a target's NOP-In ping (pings are answered).
    pub fn recv_skipping_pings(&mut self) -> Option<Pdu> {
        self.i.recv_skipping_pings("a PDU").ok()
    }

    /// Send a SCSI command to LUN 0, `imm` as the data to write.
    pub fn command(&mut self, cdb: &[u8], read: bool, edtl: u32, imm: &[u8]) -> u32 {
        let dir = match (read, imm.is_empty()) {
            (true, _) => DataDir::In(edtl),
            (false, false) => DataDir::Out(imm),
            (false, true) => DataDir::None,
        };
        let itt = self
            .i
            .start(0, cdb, dir, Default::default())
            .expect("send command");
        if !imm.is_empty() {
            self.writes.insert(itt, imm.to_vec());
        }
        itt
    }

    /// Wait for the end of task `itt`: its Data-In and status.
    pub fn wait(&mut self, itt: u32) -> Option<Reply> {
        let out = self.writes.remove(&itt).unwrap_or_default();
        self.i.wait(0, itt, &out).ok()
    }

    /// A command and its reply.
    pub fn run(&mut self, cdb: &[u8], alloc: u32, data_out: &[u8]) -> Reply {
        let itt = self.command(cdb, alloc > 0, alloc.max(data_out.len() as u32), data_out);
        self.wait(itt).expect("command reply")
    }

    pub fn tmf(&mut self, function: TmfFunction, rtt: u32, ref_cmd_sn: u32) -> u32 {
        self.i
            .send_tmf(0, function, rtt, ref_cmd_sn)
            .expect("send TMF")
    }

    /// A NOP-Out ping and its echo.
    pub fn ping(&mut self) -> Option<Pdu> {
        self.i.ping(b"ping").ok()
    }

    /// Whether the target closed the connection (EOF or reset) within
    /// `wait`; PDUs that arrive meanwhile are dropped.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let end = std::time::Instant::now() + wait;
        let mut buf = [0u8; 65536];
        let mut s = self.i.stream();
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
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
