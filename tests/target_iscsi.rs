//! Our own iSCSI target (src/target) on 127.0.0.1, serving in-memory
//! disks, driven by our libiscsi initiator and by libiscsi's iscsi-test-cu.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sanmover::device::Disk;
use sanmover::frontend::{ChapConfig, Server, ServerHandle, SharedLu, TargetConfig, TargetDef};
use sanmover::lu::MemDisk;
use sanmover::scsi::sbc::{Read16, Write16};
use sanmover::scsi::sense::{Asc, Sense, SenseKey};
use sanmover::scsi::spc::{Inquiry, ReportLuns};
use sanmover::scsi::{BlockSize, Cdb, CdbCodec, Lba, Status};
use sanmover::transport::iscsi::{discover, IscsiOptions, IscsiTransport};
use sanmover::transport::url::{IscsiUrl, PortalUrl};
use sanmover::transport::{Request, Response, Transport, TransportError};

const IQN: &str = "iqn.2026-01.org.sanmover.test:target";
const INITIATOR: &str = "iqn.2026-01.org.sanmover.test:initiator";

fn serve(
    luns: usize,
    blocks: u64,
    allow: &[&str],
    chap: Option<(&str, &str)>,
) -> (ServerHandle, Vec<Arc<Mutex<MemDisk>>>) {
    let disks: Vec<Arc<Mutex<MemDisk>>> = (0..luns)
        .map(|i| Arc::new(Mutex::new(MemDisk::new(&format!("T{i}"), blocks, 512))))
        .collect();
    let targets = vec![TargetDef {
        name: IQN.into(),
        luns: disks
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u64, d.clone() as SharedLu))
            .collect(),
    }];
    let cfg = TargetConfig {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        chap: chap.map(|(u, s)| ChapConfig::single(INITIATOR, u, s)),
        ..TargetConfig::new("127.0.0.1:0".parse().unwrap(), targets)
    };
    let server = Server::bind(cfg).expect("bind 127.0.0.1:0");
    assert_eq!(server.local_addr().ip().to_string(), "127.0.0.1");
    (server.spawn(), disks)
}

fn opts(initiator: &str) -> IscsiOptions {
    IscsiOptions {
        initiator: initiator.into(),
        timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn connect(
    addr: SocketAddr,
    lun: u32,
    initiator: &str,
    cred: Option<(&str, &str)>,
) -> Result<IscsiTransport, TransportError> {
    let url = match cred {
        Some((u, p)) => format!("iscsi://{u}%{p}@{addr}/{IQN}/{lun}"),
        None => format!("iscsi://{addr}/{IQN}/{lun}"),
    };
    IscsiTransport::connect(&IscsiUrl::parse(&url).unwrap(), &opts(initiator))
}

/// Deterministic bytes (xorshift) so failures reproduce.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sense_of(r: &Response) -> Sense {
    Sense::parse(&r.sense).expect("sense data")
}

#[test]
fn inquiry_and_large_transfers_round_trip() {
    let (h, disks) = serve(1, 32768, &[], None);
    let mut t = connect(h.local_addr(), 0, INITIATOR, None).unwrap();
    let r = t
        .execute(Request::data_in(Inquiry::standard(96).to_cdb(), 96))
        .unwrap();
    assert_eq!(r.status, Status::GOOD);
    assert_eq!(&r.buf[8..16], b"SANMOVER");
    assert_eq!(r.buf[0] & 0x1f, 0, "a disk");

    let mut d = Disk::open(t).unwrap();
    let cap = d.capacity().unwrap();
    assert_eq!((cap.blocks.0, cap.block_size), (32768, BlockSize(512)));
    // 8 MiB in one command: immediate data, then R2Ts of MaxBurstLength;
    // back in Data-In PDUs of the initiator's MaxRecvDataSegmentLength.
    let data = pattern(8 << 20, 1);
    d.write(Lba(100), BlockSize(512), data.clone()).unwrap();
    assert_eq!(
        &disks[0].lock().unwrap().data()[100 * 512..100 * 512 + data.len()],
        &data[..]
    );
    let back = d
        .read(Lba(100), (data.len() / 512) as u32, BlockSize(512))
        .unwrap();
    assert!(back == data, "8 MiB read back differs");
    h.shutdown();
}

/// Several writes in flight at once: each waits its turn for R2Ts.
#[test]
fn pipelined_writes_and_reads() {
    let (h, disks) = serve(1, 32768, &[], None);
    let mut t = connect(h.local_addr(), 0, INITIATOR, None).unwrap();
    let chunk = 1 << 20;
    let n = 8;
    let data = pattern(n * chunk, 7);
    for i in 0..n {
        let cdb = Write16 {
            lba: Lba((i * chunk / 512) as u64),
            blocks: (chunk / 512) as u32,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        let buf = data[i * chunk..(i + 1) * chunk].to_vec();
        t.submit(Request::data_out(cdb, buf).with_tag(i as u64))
            .unwrap();
    }
    for _ in 0..n {
        let r = t.complete().unwrap();
        assert_eq!(r.status, Status::GOOD, "write {}", r.tag);
    }
    assert!(disks[0].lock().unwrap().data()[..n * chunk] == data[..]);
    for i in 0..n {
        let cdb = Read16 {
            lba: Lba((i * chunk / 512) as u64),
            blocks: (chunk / 512) as u32,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        t.submit(Request::data_in(cdb, chunk).with_tag(i as u64))
            .unwrap();
    }
    for _ in 0..n {
        let r = t.complete().unwrap();
        let i = r.tag as usize;
        assert_eq!(r.status, Status::GOOD);
        assert!(r.buf == data[i * chunk..(i + 1) * chunk], "read {i}");
    }
    h.shutdown();
}

#[test]
fn bad_lba_missing_lun_and_huge_transfer() {
    let (h, _) = serve(1, 2048, &[], None);
    let mut t = connect(h.local_addr(), 0, INITIATOR, None).unwrap();
    let read = |lba: u64, blocks: u32| {
        Read16 {
            lba: Lba(lba),
            blocks,
            dpo: false,
            fua: false,
        }
        .to_cdb()
    };
    let r = t.execute(Request::data_in(read(2047, 2), 1024)).unwrap();
    assert_eq!(r.status, Status::CHECK_CONDITION);
    let s = sense_of(&r);
    assert_eq!(
        (s.key, s.asc),
        (SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE)
    );

    // Expected Data Transfer Length above 64 MiB: refused, nothing allocated.
    let big = (64 << 20) + 512;
    let r = t
        .execute(Request::data_in(read(0, (big / 512) as u32), big))
        .unwrap();
    assert_eq!(r.status, Status::CHECK_CONDITION);
    assert_eq!(sense_of(&r).key, SenseKey::ILLEGAL_REQUEST);
    // The session still works.
    let r = t.execute(Request::data_in(read(0, 1), 512)).unwrap();
    assert_eq!(r.status, Status::GOOD);

    // LUN 3 does not exist.
    let mut m = connect(h.local_addr(), 3, INITIATOR, None).unwrap();
    let tur = Cdb::new(&[0, 0, 0, 0, 0, 0]).unwrap();
    let r = m.execute(Request::none(tur)).unwrap();
    assert_eq!(r.status, Status::CHECK_CONDITION);
    let s = sense_of(&r);
    assert_eq!(
        (s.key, s.asc),
        (SenseKey::ILLEGAL_REQUEST, Asc::LUN_NOT_SUPPORTED)
    );
    let r = m
        .execute(Request::data_in(Inquiry::standard(96).to_cdb(), 96))
        .unwrap();
    assert_eq!(r.status, Status::GOOD);
    assert_eq!(r.buf[0], 0x7f, "peripheral qualifier 011b, type 1Fh");
    let rl = ReportLuns {
        select_report: 0,
        alloc_len: 256,
    }
    .to_cdb();
    let w = Write16 {
        lba: Lba(0),
        blocks: 16,
        dpo: false,
        fua: false,
    }
    .to_cdb();
    let r = m.execute(Request::data_out(w, vec![1; 8192])).unwrap();
    assert_eq!(sense_of(&r).asc, Asc::LUN_NOT_SUPPORTED);
    let r = m.execute(Request::data_in(rl, 256)).unwrap();
    assert_eq!(r.status, Status::GOOD);
    assert_eq!(
        &r.buf[..16],
        &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    h.shutdown();
}

#[test]
fn discovery_lists_the_target_at_the_listening_address() {
    let (h, _) = serve(1, 64, &[], None);
    let addr = h.local_addr();
    let portal = PortalUrl::parse(&format!("iscsi://{addr}")).unwrap();
    let found = discover(&portal, &opts(INITIATOR)).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name, IQN);
    assert_eq!(found[0].portals, vec![format!("{addr},1")]);
    h.shutdown();
}

#[test]
fn allow_list_refuses_other_initiators() {
    let (h, _) = serve(1, 64, &[INITIATOR], None);
    let e = connect(
        h.local_addr(),
        0,
        "iqn.2026-01.org.sanmover.test:intruder",
        None,
    )
    .expect_err("not on the allow list");
    assert!(matches!(e, TransportError::Login { .. }), "{e}");
    let mut t = connect(h.local_addr(), 0, INITIATOR, None).unwrap();
    let tur = Cdb::new(&[0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(t.execute(Request::none(tur)).unwrap().status, Status::GOOD);
    // An unknown target name is refused too.
    let url = IscsiUrl::parse(&format!("iscsi://{}/iqn.2026-01.nope:x/0", h.local_addr())).unwrap();
    assert!(IscsiTransport::connect(&url, &opts(INITIATOR)).is_err());
    h.shutdown();
}

#[test]
fn chap_right_and_wrong_secret() {
    let (h, _) = serve(1, 64, &[], Some(("alice", "sesame-sesame")));
    let addr = h.local_addr();
    let tur = Cdb::new(&[0, 0, 0, 0, 0, 0]).unwrap();
    let mut t = connect(addr, 0, INITIATOR, Some(("alice", "sesame-sesame"))).unwrap();
    assert_eq!(t.execute(Request::none(tur)).unwrap().status, Status::GOOD);
    for cred in [
        Some(("alice", "wrong-secret1")),
        Some(("bob", "sesame-sesame")),
        None,
    ] {
        let e = connect(addr, 0, INITIATOR, cred).expect_err("must be refused");
        assert!(matches!(e, TransportError::Login { .. }), "{cred:?}: {e}");
    }
    h.shutdown();
    // CHAP offered to a target that wants none: AuthMethod=None.
    let (h, _) = serve(1, 64, &[], None);
    let mut t = connect(
        h.local_addr(),
        0,
        INITIATOR,
        Some(("alice", "sesame-sesame")),
    )
    .unwrap();
    assert_eq!(t.execute(Request::none(tur)).unwrap().status, Status::GOOD);
    h.shutdown();
}

/// Garbage on some connections for a few seconds; a real session keeps
/// reading and writing meanwhile, and shutdown still ends everything.
#[test]
fn garbage_connections_leave_other_sessions_served() {
    let (h, _) = serve(1, 4096, &[], None);
    let addr = h.local_addr();
    let mut t = connect(addr, 0, INITIATOR, None).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let fuzzer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seed = 1u64;
            let mut conns = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    continue;
                };
                conns += 1;
                let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
                for _ in 0..20 {
                    seed += 1;
                    let mut junk = pattern(48 + (seed as usize % 400), seed);
                    match seed % 4 {
                        // A login PDU with garbage text.
                        0 => junk[0] = 0x43,
                        // An absurd data segment length.
                        1 => junk[5..8].copy_from_slice(&[0xff, 0xff, 0xff]),
                        // A NOP-Out before login.
                        2 => junk[0] = 0x40,
                        _ => {}
                    }
                    if s.write_all(&junk).is_err() {
                        break;
                    }
                    let mut sink = [0u8; 4096];
                    let _ = s.read(&mut sink);
                }
            }
            conns
        })
    };
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        let data = pattern(64 * 1024, rounds + 100);
        let lba = Lba((rounds % 32) * 128);
        let w = Write16 {
            lba,
            blocks: 128,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        assert_eq!(
            t.execute(Request::data_out(w, data.clone()))
                .unwrap()
                .status,
            Status::GOOD
        );
        let r = Read16 {
            lba,
            blocks: 128,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        let back = t.execute(Request::data_in(r, data.len())).unwrap();
        assert!(back.is_good() && back.buf == data);
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let conns = fuzzer.join().unwrap();
    assert!(conns > 10, "only {conns} garbage connections");
    assert!(rounds > 10, "only {rounds} rounds served");
    let begun = Instant::now();
    h.shutdown();
    assert!(begun.elapsed() < Duration::from_secs(5));
    // Everything is closed: the session is gone and nobody listens.
    let tur = Cdb::new(&[0, 0, 0, 0, 0, 0]).unwrap();
    assert!(t.execute(Request::none(tur)).is_err());
    assert!(TcpStream::connect(addr).is_err());
}

/// libiscsi's conformance tool against the target: the iSCSI protocol
/// suites and the basic SCSI ones. "Not implemented" would show up as
/// SKIPPED and count as a pass there, so SKIPPED fails here.
#[test]
fn iscsi_test_cu_suites_pass() {
    let tool = "iscsi-test-cu";
    assert!(
        Command::new(tool).arg("--help").output().is_ok(),
        "{tool} missing: apt-get install -y libiscsi-bin"
    );
    let (h, _) = serve(1, 65536, &[], None);
    let url = format!("iscsi://{}/{IQN}/0", h.local_addr());
    for suite in [
        "iSCSI.iSCSIcmdsn",
        "iSCSI.iSCSIdatasn",
        "iSCSI.iSCSIResiduals",
        "iSCSI.iSCSITMF",
        "SCSI.TestUnitReady",
        "SCSI.Inquiry",
    ] {
        let out = Command::new(tool)
            .args(["--dataloss", "-t", suite, &url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{suite} failed:\n{text}");
        let summary = text
            .lines()
            .find(|l| l.trim_start().starts_with("tests "))
            .unwrap_or_else(|| panic!("{suite}: no summary:\n{text}"));
        let n: Vec<u32> = summary
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert!(
            n.len() >= 4 && n[0] > 0 && n[0] == n[2] && n[3] == 0,
            "{suite}: {summary}\n{text}"
        );
        // The tool's own preamble probes optional commands before the
        // suite starts; inside the suite nothing may be skipped.
        let body = &text[text.find("Suite:").unwrap_or(0)..];
        assert!(!body.contains("SKIPPED"), "{suite} skipped tests:\n{text}");
    }
    h.shutdown();
}

mod raw {
    //! The library's raw initiator (`sanmover::initiator`) driven PDU by
    //! PDU, for what libiscsi does not let a test do on purpose: TMFs at
    //! chosen moments, CmdSN outside the window, malformed PDUs. The test
    //! keeps its own CmdSN and reads every PDU itself.

    use super::*;
    use sanmover::frontend::pdu::*;
    use sanmover::initiator::{CmdOpts, Config, DataDir, Initiator};

    pub struct Raw {
        pub i: Initiator,
        /// The same connection, for raw bytes.
        pub s: TcpStream,
        /// The CmdSN the next command carries (the test may move it).
        pub cmd_sn: u32,
    }

    /// Each login a session of its own: a second login with the same
    /// name and ISID would replace the first (RFC 7143 6.3.5).
    fn next_isid() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        0x80_1234_0000 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    impl Raw {
        /// Log in (operational stage only) with `keys` added to the names.
        pub fn login(
            addr: SocketAddr,
            keys: &[(&str, &str)],
        ) -> (Raw, LoginResponse, Vec<(String, String)>) {
            let mut kv = vec![("InitiatorName", INITIATOR), ("TargetName", IQN)];
            kv.extend_from_slice(keys);
            Self::login_with(addr, &kv)
        }

        /// Log in with these keys: the names (no TargetName: discovery)
        /// and the operational keys, in one Login Request.
        pub fn login_with(
            addr: SocketAddr,
            keys: &[(&str, &str)],
        ) -> (Raw, LoginResponse, Vec<(String, String)>) {
            let name = |k: &str| keys.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
            let mut cfg = Config::new(addr, name("InitiatorName").unwrap(), "", next_isid());
            cfg.target = name("TargetName").map(str::to_string);
            cfg.timeout = Duration::from_secs(5);
            cfg.keys = keys
                .iter()
                .filter(|(k, _)| !matches!(*k, "InitiatorName" | "TargetName" | "SessionType"))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let i = Initiator::login(&cfg).expect("login");
            let lr = i.login_response.clone().expect("login response");
            let kv = i.login_keys.clone();
            let s = i.stream().try_clone().unwrap();
            let cmd_sn = i.state.cmd_sn;
            (Raw { i, s, cmd_sn }, lr, kv)
        }

        pub fn send(&mut self, h: Header, data: &[u8]) {
            self.i.send(h, data).expect("send PDU");
        }

        /// The next PDU, or None on EOF or timeout.
        pub fn recv(&mut self) -> Option<Pdu> {
            self.i.recv("a PDU").ok()
        }

        pub fn next_itt(&mut self) -> u32 {
            self.i.next_itt()
        }

        /// A command to LUN 0 with the test's CmdSN; no data sent.
        pub fn command(&mut self, cdb: &[u8], read: bool, write: bool, edtl: u32) -> u32 {
            let dir = match (read, write) {
                (true, _) => DataDir::In(edtl),
                (false, true) => DataDir::OutLater(edtl),
                _ => DataDir::None,
            };
            let opts = CmdOpts {
                immediate: false,
                cmd_sn: Some(self.cmd_sn),
            };
            let itt = self.i.start(0, cdb, dir, opts).expect("send command");
            self.cmd_sn += 1;
            itt
        }

        /// A NOP-Out ping and the next PDU.
        pub fn nop(&mut self, data: &[u8]) -> Pdu {
            let itt = self.next_itt();
            let h = Header::NopOut(NopOut {
                immediate: true,
                lun: 0,
                itt,
                ttt: RESERVED_TAG,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: 0,
            });
            self.send(h, data);
            self.recv().expect("NOP-In")
        }

        pub fn tmf(
            &mut self,
            function: TmfFunction,
            lun: u64,
            rtt: u32,
            ref_cmd_sn: u32,
        ) -> TmfResponse {
            let itt = self.next_itt();
            let h = Header::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function,
                lun,
                itt,
                rtt,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: 0,
                ref_cmd_sn,
                exp_data_sn: 0,
            });
            self.send(h, &[]);
            match self.recv().expect("TMF response").header {
                Header::TaskMgmtResponse(r) => {
                    assert_eq!(r.itt, itt);
                    r.response
                }
                other => panic!("not a TMF response: {other:?}"),
            }
        }

        pub fn data_out(
            &mut self,
            itt: u32,
            ttt: u32,
            data_sn: u32,
            offset: u32,
            last: bool,
            data: &[u8],
        ) {
            let h = Header::DataOut(DataOut {
                final_bit: last,
                lun: 0,
                itt,
                ttt,
                exp_stat_sn: 0,
                data_sn,
                buffer_offset: offset,
            });
            self.send(h, data);
        }
    }
}

fn get<'a>(kv: &'a [(String, String)], k: &str) -> Option<&'a str> {
    kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

const SMALL: [(&str, &str); 7] = [
    ("HeaderDigest", "CRC32C,None"),
    ("InitialR2T", "Yes"),
    ("ImmediateData", "No"),
    ("MaxRecvDataSegmentLength", "8192"),
    ("MaxBurstLength", "16384"),
    ("FirstBurstLength", "8192"),
    ("X-org.example.Unknown", "1"),
];

/// R2T and Data-In sequencing, NOP, TMFs, CmdSN window, SendTargets and
/// logout, PDU by PDU.
#[test]
fn raw_protocol_walk_through() {
    use sanmover::frontend::pdu::*;
    let (h, disks) = serve(1, 256, &[], None);
    let (mut r, lr, kv) = raw::Raw::login(h.local_addr(), &SMALL);
    assert_eq!((lr.status_class, lr.status_detail), (0, 0));
    assert!(lr.transit && lr.nsg == 3 && lr.tsih != 0);
    assert_eq!(lr.exp_cmd_sn, 1, "the login's CmdSN");
    assert_eq!(get(&kv, "HeaderDigest"), Some("None"));
    assert_eq!(get(&kv, "MaxBurstLength"), Some("16384"));
    assert_eq!(get(&kv, "X-org.example.Unknown"), Some("NotUnderstood"));
    let mut stat_sn = lr.stat_sn + 1;

    // NOP-Out ping echoes its data.
    let p = r.nop(b"ping");
    let Header::NopIn(n) = &p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!(
        (n.stat_sn, n.ttt, p.data.as_slice()),
        (stat_sn, RESERVED_TAG, &b"ping"[..])
    );
    stat_sn += 1;

    // WRITE(16) of 32 KiB at LBA 8: two R2Ts of MaxBurstLength, each
    // answered by two 8 KiB Data-Out PDUs (DataSN restarts per R2T).
    let data = pattern(32 * 1024, 5);
    let mut w = [0u8; 16];
    w[0] = 0x8a;
    w[9] = 8;
    w[13] = 64;
    let itt = r.command(&w, false, true, data.len() as u32);
    for burst in 0..2u32 {
        let p = r.recv().expect("R2T");
        let Header::R2t(t) = p.header else {
            panic!("{:?}", p.header)
        };
        assert_eq!(
            (t.itt, t.r2t_sn, t.buffer_offset, t.desired_length),
            (itt, burst, burst * 16384, 16384)
        );
        for k in 0..2u32 {
            let off = burst * 16384 + k * 8192;
            r.data_out(
                itt,
                t.ttt,
                k,
                off,
                k == 1,
                &data[off as usize..off as usize + 8192],
            );
        }
    }
    let p = r.recv().expect("SCSI Response");
    let Header::ScsiResponse(s) = p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!(
        (s.itt, s.status, s.stat_sn, s.underflow, s.overflow),
        (itt, 0, stat_sn, false, false)
    );
    stat_sn += 1;
    assert!(disks[0].lock().unwrap().data()[8 * 512..8 * 512 + data.len()] == data[..]);

    // READ(16) back: Data-In of 8 KiB (our MaxRecvDataSegmentLength), F at
    // each 16 KiB burst, status collapsed into the last one; EDTL one
    // block more than the CDB asks: underflow 512.
    let mut rd = w;
    rd[0] = 0x88;
    let itt = r.command(&rd, true, false, data.len() as u32 + 512);
    let mut got = Vec::new();
    for sn in 0..4u32 {
        let p = r.recv().expect("Data-In");
        let Header::DataIn(d) = p.header else {
            panic!("{:?}", p.header)
        };
        assert_eq!((d.itt, d.data_sn, d.buffer_offset), (itt, sn, sn * 8192));
        assert_eq!(d.final_bit, sn % 2 == 1);
        if sn == 3 {
            assert_eq!(d.status, Some(0));
            assert!(d.underflow && d.residual == 512 && d.stat_sn == stat_sn);
        } else {
            assert_eq!(d.status, None);
        }
        got.extend_from_slice(&p.data);
    }
    assert!(got == data);
    stat_sn += 1;

    // ABORT TASK of a write waiting for data; its late Data-Out is ignored.
    let itt = r.command(&w, false, true, data.len() as u32);
    let p = r.recv().expect("R2T");
    let Header::R2t(t) = p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!(
        r.tmf(TmfFunction::ABORT_TASK, 0, itt, r.cmd_sn - 1),
        TmfResponse::FUNCTION_COMPLETE
    );
    r.data_out(itt, t.ttt, 0, 0, true, &data[..8192]);
    assert_eq!(
        r.tmf(TmfFunction::ABORT_TASK, 0, 0x7777, r.cmd_sn),
        TmfResponse::TASK_DOES_NOT_EXIST
    );
    assert_eq!(
        r.tmf(TmfFunction::LOGICAL_UNIT_RESET, 0, RESERVED_TAG, 0),
        TmfResponse::FUNCTION_COMPLETE
    );
    let lun7 = sanmover::scsi::spc::Lun::from_index(7).0;
    assert_eq!(
        r.tmf(TmfFunction::LOGICAL_UNIT_RESET, lun7, RESERVED_TAG, 0),
        TmfResponse::LUN_DOES_NOT_EXIST
    );
    assert_eq!(
        r.tmf(TmfFunction::CLEAR_ACA, 0, RESERVED_TAG, 0),
        TmfResponse::NOT_SUPPORTED
    );
    stat_sn += 5;

    // A command beyond MaxCmdSN is dropped without an answer; the next
    // PDU back is the NOP-In, and a command in order still works.
    r.cmd_sn += 100;
    r.command(&[0u8; 6], false, false, 0);
    r.cmd_sn -= 101;
    let p = r.nop(b"");
    assert!(matches!(p.header, Header::NopIn(_)), "{:?}", p.header);
    stat_sn += 1;
    let itt = r.command(&[0u8; 6], false, false, 0);
    let p = r.recv().expect("TUR status");
    let Header::ScsiResponse(s) = p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!((s.itt, s.status, s.stat_sn), (itt, 0, stat_sn));
    stat_sn += 1;

    // SendTargets in a normal session names this target.
    let itt = r.next_itt();
    let th = Header::TextRequest(TextRequest {
        immediate: false,
        final_bit: true,
        cont: false,
        lun: 0,
        itt,
        ttt: RESERVED_TAG,
        cmd_sn: r.cmd_sn,
        exp_stat_sn: 0,
    });
    r.cmd_sn += 1;
    r.send(th, b"SendTargets=All\0");
    let p = r.recv().expect("Text Response");
    let Header::TextResponse(tr) = &p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!((tr.itt, tr.stat_sn, tr.final_bit), (itt, stat_sn, true));
    let kv = sanmover::frontend::text::parse_pairs(&p.data).unwrap();
    assert_eq!(get(&kv, "TargetName"), Some(IQN));
    assert_eq!(
        get(&kv, "TargetAddress"),
        Some(format!("{},1", h.local_addr()).as_str())
    );

    // Logout, then the target closes the connection.
    let itt = r.next_itt();
    let lh = Header::LogoutRequest(LogoutRequest {
        immediate: true,
        reason: 0,
        itt,
        cid: 0,
        cmd_sn: r.cmd_sn,
        exp_stat_sn: 0,
    });
    r.send(lh, &[]);
    let p = r.recv().expect("Logout Response");
    let Header::LogoutResponse(lo) = p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!((lo.itt, lo.response), (itt, 0));
    assert!(r.recv().is_none(), "connection closed after logout");
    h.shutdown();
}

/// Malformed PDUs end their own connection only.
#[test]
fn malformed_pdus_close_only_their_connection() {
    use sanmover::frontend::pdu::*;
    let (h, _) = serve(1, 64, &[], None);
    let addr = h.local_addr();
    let (mut good, _, _) = raw::Raw::login(addr, &SMALL);

    // An opcode no initiator sends: Reject (command not supported), close.
    let (mut bad, _, _) = raw::Raw::login(addr, &SMALL);
    let mut junk = [0u8; BHS_LEN];
    junk[0] = 0x1f;
    bad.s.write_all(&junk).unwrap();
    let p = bad.recv().expect("Reject");
    let Header::Reject(rj) = p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!(rj.reason, RejectReason::COMMAND_NOT_SUPPORTED);
    assert_eq!(p.data, junk.to_vec());
    assert!(bad.recv().is_none());

    // A data segment beyond MaxRecvDataSegmentLength: closed unread.
    let (mut bad, _, _) = raw::Raw::login(addr, &SMALL);
    let mut nop = [0u8; BHS_LEN];
    nop[0] = 0x40;
    nop[1] = 0x80;
    nop[5..8].copy_from_slice(&[0x10, 0, 0]);
    nop[16..20].copy_from_slice(&[0, 0, 0, 9]);
    bad.s.write_all(&nop).unwrap();
    assert!(bad.recv().is_none());

    // Data-Out beyond its burst: closed.
    let (mut bad, _, _) = raw::Raw::login(addr, &SMALL);
    let mut w = [0u8; 16];
    w[0] = 0x8a;
    w[13] = 16;
    let itt = bad.command(&w, false, true, 8192);
    let p = bad.recv().expect("R2T");
    let Header::R2t(t) = p.header else {
        panic!("{:?}", p.header)
    };
    bad.data_out(itt, t.ttt, 0, 0, true, &[0u8; 8192]);
    bad.data_out(itt, t.ttt, 1, 8192, true, &[0u8; 512]);
    // The write completed with the first burst; the second is for an ITT
    // no longer known and is dropped, the connection stays.
    let p = bad.recv().expect("status");
    assert!(matches!(p.header, Header::ScsiResponse(_)));
    let itt = bad.command(&w, false, true, 8192);
    let p = bad.recv().expect("R2T");
    let Header::R2t(t) = p.header else {
        panic!("{:?}", p.header)
    };
    bad.data_out(itt, t.ttt, 0, 0, true, &[0u8; 8192 + 512]);
    assert!(
        bad.recv().is_none(),
        "Data-Out beyond the R2T closes the connection"
    );

    // The well-behaved session never noticed.
    let p = good.nop(b"still here");
    assert_eq!(p.data, b"still here".to_vec());
    h.shutdown();
}

/// A discovery session answers SendTargets and refuses SCSI commands
/// without losing its place in the CmdSN sequence.
#[test]
fn discovery_session_refuses_scsi_commands() {
    use sanmover::frontend::pdu::*;
    let (h, _) = serve(1, 64, &[], None);
    let (mut r, lr, kv) = raw::Raw::login_with(
        h.local_addr(),
        &[("InitiatorName", INITIATOR), ("SessionType", "Discovery")],
    );
    assert_eq!((lr.status_class, lr.status_detail, lr.nsg), (0, 0, 3));
    assert_eq!(
        get(&kv, "TargetPortalGroupTag"),
        None,
        "normal sessions only"
    );
    r.command(&[0u8; 6], false, false, 0);
    let p = r.recv().expect("Reject");
    let Header::Reject(rj) = p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!(rj.reason, RejectReason::PROTOCOL_ERROR);
    let itt = r.next_itt();
    let th = Header::TextRequest(TextRequest {
        immediate: false,
        final_bit: true,
        cont: false,
        lun: 0,
        itt,
        ttt: RESERVED_TAG,
        cmd_sn: r.cmd_sn,
        exp_stat_sn: 0,
    });
    r.send(th, b"SendTargets=All\0");
    let p = r.recv().expect("Text Response");
    let kv = sanmover::frontend::text::parse_pairs(&p.data).unwrap();
    assert_eq!(get(&kv, "TargetName"), Some(IQN));
    h.shutdown();
}

/// Shutdown ends connections that are idle, half logged in or logged in.
#[test]
fn shutdown_closes_idle_connections() {
    let (h, _) = serve(1, 64, &[], None);
    let addr = h.local_addr();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&[0x43, 0x81, 0, 0, 0, 0, 0, 0x10]).unwrap();
    let (mut logged_in, _, _) = raw::Raw::login(addr, &SMALL);
    std::thread::sleep(Duration::from_millis(100));
    let begun = Instant::now();
    h.shutdown();
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "{:?}",
        begun.elapsed()
    );
    for s in [&mut silent, &mut half, &mut logged_in.s] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("not closed by shutdown: {other:?}"),
        }
    }
}

/// REPORT LUNS is the target's inventory, whichever LUN it is sent to.
#[test]
fn report_luns_lists_every_lun() {
    let (h, _) = serve(3, 64, &[], None);
    let mut t = connect(h.local_addr(), 1, INITIATOR, None).unwrap();
    let rl = |alloc| {
        ReportLuns {
            select_report: 0,
            alloc_len: alloc,
        }
        .to_cdb()
    };
    let r = t.execute(Request::data_in(rl(256), 256)).unwrap();
    assert_eq!(r.status, Status::GOOD);
    let mut want = vec![0, 0, 0, 24, 0, 0, 0, 0];
    for l in 0..3u8 {
        want.extend_from_slice(&[0, l, 0, 0, 0, 0, 0, 0]);
    }
    assert_eq!(&r.buf[..32], &want[..]);
    assert_eq!(
        r.residual,
        sanmover::transport::Residual::Underflow(256 - 32)
    );
    // Allocation length below 16: INVALID FIELD IN CDB.
    let r = t.execute(Request::data_in(rl(8), 8)).unwrap();
    assert_eq!(sense_of(&r).asc, Asc::INVALID_FIELD_IN_CDB);
    h.shutdown();
}

/// An LU that records which nexuses the target reported gone.
struct Watch {
    disk: MemDisk,
    lost: Arc<Mutex<Vec<String>>>,
}

impl sanmover::lu::LogicalUnit for Watch {
    fn execute(
        &mut self,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> sanmover::lu::Completion {
        self.disk.execute(cdb, data_out, data_in)
    }
    fn nexus_lost(&mut self, nexus: &sanmover::lu::Nexus) {
        self.lost.lock().unwrap().push(nexus.initiator.clone());
    }
}

#[test]
fn the_end_of_a_session_tells_its_lus_the_nexus_is_gone() {
    let lost = Arc::new(Mutex::new(Vec::new()));
    let lu: SharedLu = Arc::new(Mutex::new(Watch {
        disk: MemDisk::new("W0", 64, 512),
        lost: lost.clone(),
    }));
    let server = Server::bind(TargetConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![TargetDef {
            name: IQN.into(),
            luns: vec![(0, lu)],
        }],
    ))
    .unwrap()
    .spawn();
    let mut t = connect(server.local_addr(), 0, INITIATOR, None).unwrap();
    let r = t
        .execute(Request::data_in(Inquiry::standard(96).to_cdb(), 96))
        .unwrap();
    assert_eq!(r.status, Status::GOOD);
    assert!(lost.lock().unwrap().is_empty());
    drop(t); // logout
    let deadline = Instant::now() + Duration::from_secs(10);
    while lost.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nexus_lost never called");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*lost.lock().unwrap(), vec![INITIATOR.to_string()]);
    server.shutdown();
}

/// A unit that panics on a vendor-specific opcode (C0h): a bug in an LU
/// must cost its connection, never a connection slot.
struct Panicky(MemDisk);

/// The panic payload of [`Panicky`], so the test's hook stays quiet.
struct Deliberate;

impl sanmover::lu::LogicalUnit for Panicky {
    fn execute(
        &mut self,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> sanmover::lu::Completion {
        if cdb.first() == Some(&0xc0) {
            std::panic::panic_any(Deliberate);
        }
        self.0.execute(cdb, data_out, data_in)
    }
}

#[test]
fn a_panic_in_a_connection_thread_does_not_leak_its_slot() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<Deliberate>() {
            default(info);
        }
    }));
    let lu: SharedLu = Arc::new(Mutex::new(Panicky(MemDisk::new("P0", 64, 512))));
    let server = Server::bind(TargetConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![TargetDef {
            name: IQN.into(),
            luns: vec![(0, lu)],
        }],
    ))
    .unwrap()
    .spawn();
    let addr = server.local_addr();
    // More panics than the target has connection slots.
    for _ in 0..300 {
        let (mut r, lr, _) = raw::Raw::login(addr, &SMALL);
        assert_eq!(lr.status_class, 0);
        r.command(&[0xc0, 0, 0, 0, 0, 0], false, false, 0);
        let mut b = [0u8; 64];
        match r.s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("the connection outlived its thread: {other:?}"),
        }
    }
    let mut t = connect(addr, 0, INITIATOR, None).expect("a slot is free");
    let tur = Cdb::new(&[0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(t.execute(Request::none(tur)).unwrap().status, Status::GOOD);
    server.shutdown();
}

/// One connection's share of the memory budget: a write larger than the
/// share gets BUSY (nothing is allocated for it); a read four times the
/// share goes through, produced and sent in chunks.
#[test]
fn a_connection_stays_within_its_memory_share() {
    let disk = Arc::new(Mutex::new(MemDisk::new("M0", 32768, 512)));
    let mut cfg = TargetConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![TargetDef {
            name: IQN.into(),
            luns: vec![(0, disk.clone() as SharedLu)],
        }],
    );
    cfg.limits.memory_per_connection = 3 << 20;
    let h = Server::bind(cfg).unwrap().spawn();
    let mut t = connect(h.local_addr(), 0, INITIATOR, None).unwrap();
    let write = |lba: u64, data: Vec<u8>| {
        let w = Write16 {
            lba: Lba(lba),
            blocks: (data.len() / 512) as u32,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        Request::data_out(w, data)
    };
    let r = t.execute(write(0, vec![1; 4 << 20])).unwrap();
    assert_eq!(r.status, Status::BUSY, "a 4 MiB write beyond a 3 MiB share");
    let data = pattern(8 << 20, 11);
    for k in 0..4 {
        let part = data[k * (2 << 20)..(k + 1) * (2 << 20)].to_vec();
        let r = t.execute(write((k as u64) * 4096, part)).unwrap();
        assert_eq!(r.status, Status::GOOD);
    }
    let rd = Read16 {
        lba: Lba(0),
        blocks: 16384,
        dpo: false,
        fua: false,
    }
    .to_cdb();
    // Again and again: each read gives back every chunk it took.
    for _ in 0..4 {
        let r = t.execute(Request::data_in(rd, 8 << 20)).unwrap();
        assert_eq!(r.status, Status::GOOD);
        assert!(r.buf == data, "8 MiB read back in chunks differs");
    }
    // A READ past the end fails before any data is sent.
    let past = Read16 {
        lba: Lba(32768 - 4096),
        blocks: 8192,
        dpo: false,
        fua: false,
    }
    .to_cdb();
    let r = t.execute(Request::data_in(past, 4 << 20)).unwrap();
    assert_eq!(sense_of(&r).asc, Asc::LBA_OUT_OF_RANGE);
    h.shutdown();
}
