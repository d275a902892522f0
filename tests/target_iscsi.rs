//! Our own iSCSI target (src/target) on 127.0.0.1, serving in-memory
//! disks, driven by our libiscsi initiator and by libiscsi's iscsi-test-cu.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sanmover::device::Disk;
use sanmover::scsi::sbc::{Read16, Write16};
use sanmover::scsi::sense::{Asc, Sense, SenseKey};
use sanmover::scsi::spc::{Inquiry, ReportLuns};
use sanmover::scsi::{BlockSize, Cdb, CdbCodec, Lba, Status};
use sanmover::target::{Chap, Server, ServerHandle, SharedLu, TargetConfig, TargetDef};
use sanmover::transport::iscsi::{discover, IscsiOptions, IscsiTransport};
use sanmover::transport::memory::MemDisk;
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
    let cfg = TargetConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        targets: vec![TargetDef {
            name: IQN.into(),
            luns: disks
                .iter()
                .enumerate()
                .map(|(i, d)| (i as u64, d.clone() as SharedLu))
                .collect(),
        }],
        allow: allow.iter().map(|s| s.to_string()).collect(),
        chap: chap.map(|(u, s)| Chap {
            user: u.into(),
            secret: s.into(),
        }),
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
