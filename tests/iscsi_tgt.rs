//! IscsiTransport against a real target: a tgtd (Debian `tgt`) started by
//! each test on a free loopback port, with a disk LUN on a file (LUN 1)
//! and a tgt tape LUN (LUN 2). tgtd ignores SIGTERM, so the guard kills it
//! by pid, also when a test panics. Needs tgtd/tgtadm/tgtimg and root.
//!
//! CDBs are built from raw bytes here on purpose (the codec is tested on
//! its own); the sense checks read fixed-format bytes (SPC-4 4.5.3).

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use sanmover::scsi::{Cdb, Status};
use sanmover::transport::iscsi::{discover, IscsiOptions, IscsiTransport};
use sanmover::transport::url::{IscsiUrl, PortalUrl};
use sanmover::transport::{Request, Residual, Response, Transport, TransportError};

const IQN: &str = "iqn.2024-01.org.sanmover:test-target";
const DISK_LUN: u16 = 1;
const TAPE_LUN: u16 = 2;
const DISK_BLOCKS: u64 = 32768; // 16 MiB of 512-byte blocks

/// One tgtd process with target tid 1 = IQN, disk LUN 1, tape LUN 2.
struct Tgt {
    child: Child,
    port: u16,
    /// tgtd's control port (`-C`; it takes small numbers only).
    ctl: u32,
    _dir: tempfile::TempDir,
}

/// A control port unlikely to be in use: tgtd refuses large `-C` values,
/// and a taken one makes tgtd exit, after which `start` tries another.
fn control_port() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    1000 + (seed.wrapping_add(n.wrapping_mul(104_729)) % 20_000)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `pid` listens on 127.0.0.1:port (tgtd silently falls back to
/// 0.0.0.0:3260 when it cannot bind).
fn listening(port: u16, pid: u32) -> bool {
    let out = Command::new("ss").args(["-ltnpH"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains(&format!("127.0.0.1:{port} ")) && l.contains(&format!("pid={pid},")))
}

impl Tgt {
    fn start() -> Tgt {
        for _ in 0..5 {
            if let Some(t) = Self::try_start() {
                return t;
            }
        }
        panic!("could not start tgtd on a free port");
    }

    fn try_start() -> Option<Tgt> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let ctl = control_port();
        let log = fs::File::create(dir.path().join("tgtd.log")).unwrap();
        let child = Command::new("tgtd")
            .args(["-f", "--iscsi", &format!("portal=127.0.0.1:{port}")])
            .args(["-C", &ctl.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tgtd");
        let mut t = Tgt {
            child,
            port,
            ctl,
            _dir: dir,
        };
        let start = Instant::now();
        while !listening(port, t.child.id()) {
            if start.elapsed() > Duration::from_secs(5) || t.child.try_wait().unwrap().is_some() {
                return None; // Drop kills it
            }
            sleep(Duration::from_millis(50));
        }
        t.setup();
        Some(t)
    }

    fn adm(&self, args: &[&str]) {
        let c = self.ctl.to_string();
        let mut all = vec!["-C", c.as_str(), "--lld", "iscsi"];
        all.extend_from_slice(args);
        run("tgtadm", &all);
    }

    fn setup(&self) {
        let dir = self._dir.path();
        let disk = dir.join("disk.img");
        fs::write(&disk, disk_pattern()).unwrap();
        let tape = dir.join("tape.img");
        run(
            "tgtimg",
            &[
                "--op=new",
                "--device-type=tape",
                "--barcode=SMT001",
                "--size=64",
                "--type=data",
                &format!("--file={}", tape.display()),
            ],
        );
        self.adm(&["--op", "new", "--mode", "target", "--tid", "1", "-T", IQN]);
        let (d, t) = (path_str(&disk), path_str(&tape));
        self.adm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            "1",
            "--lun",
            "1",
            "-b",
            &d,
        ]);
        self.adm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            "1",
            "--lun",
            "2",
            "--device-type=tape",
            "--bstype=ssc",
            "-b",
            &t,
        ]);
        self.adm(&[
            "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL",
        ]);
    }

    fn url(&self, lun: u16) -> IscsiUrl {
        IscsiUrl::parse(&format!("iscsi://127.0.0.1:{}/{IQN}/{lun}", self.port)).unwrap()
    }

    fn connect(&self, lun: u16) -> IscsiTransport {
        IscsiTransport::connect(&self.url(lun), &opts()).expect("connect")
    }

    fn signal(&self, sig: &str) {
        run("kill", &[sig, &self.child.id().to_string()]);
    }
}

impl Drop for Tgt {
    fn drop(&mut self) {
        // SIGCONT first in case a test stopped it, then SIGKILL by pid.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let sock = format!("/var/run/tgtd/socket.{}", self.ctl);
        let _ = fs::remove_file(&sock);
        let _ = fs::remove_file(format!("{sock}.lock"));
    }
}

fn path_str(p: &std::path::Path) -> String {
    PathBuf::from(p).display().to_string()
}

fn opts() -> IscsiOptions {
    IscsiOptions {
        timeout: Duration::from_secs(10),
        ..IscsiOptions::default()
    }
}

/// Byte `i` of block `lba`: the LBA in the first 8 bytes, then a pattern.
fn pattern_byte(lba: u64, i: usize) -> u8 {
    if i < 8 {
        lba.to_be_bytes()[i]
    } else {
        (lba as usize).wrapping_mul(31).wrapping_add(i) as u8
    }
}

fn disk_pattern() -> Vec<u8> {
    let mut v = Vec::with_capacity(DISK_BLOCKS as usize * 512);
    for lba in 0..DISK_BLOCKS {
        v.extend((0..512).map(|i| pattern_byte(lba, i)));
    }
    v
}

fn cdb(bytes: &[u8]) -> Cdb {
    Cdb::new(bytes).unwrap()
}

fn sense_key(r: &Response) -> u8 {
    r.sense[2] & 0x0f
}

fn asc(r: &Response) -> (u8, u8) {
    (r.sense[12], r.sense[13])
}

/// Run a command, retrying past unit attentions (a fresh tgt LUN reports
/// POWER ON RESET first, and we connect without libiscsi's TUR loop).
fn exec(t: &mut IscsiTransport, mk: impl Fn() -> Request) -> Response {
    for _ in 0..5 {
        let r = t.execute(mk()).expect("transport");
        if r.status == Status::CHECK_CONDITION && r.sense.len() > 2 && sense_key(&r) == 6 {
            continue;
        }
        return r;
    }
    panic!("unit attention did not clear");
}

#[test]
fn test_unit_ready_and_inquiry() {
    let tgt = Tgt::start();
    let mut t = tgt.connect(DISK_LUN);
    assert!(t.describe().contains(IQN));
    assert!(t.describe().ends_with("/1"));
    let r = exec(&mut t, || Request::none(cdb(&[0, 0, 0, 0, 0, 0])));
    assert_eq!(r.status, Status::GOOD, "sense {:02x?}", r.sense);
    assert!(r.sense.is_empty());

    let r = exec(&mut t, || {
        Request::data_in(cdb(&[0x12, 0, 0, 0, 96, 0]), 96).with_tag(7)
    });
    assert_eq!(r.status, Status::GOOD);
    assert_eq!(r.tag, 7);
    assert_eq!(r.buf[0] & 0x1f, 0x00, "disk peripheral type");
    assert_eq!(&r.buf[8..16], b"IET     ", "tgt's T10 vendor id");
    // tgt returns fewer than 96 bytes: an underflow residual.
    let n = r.transferred();
    assert!((36..=96).contains(&n), "transferred {n}");
    assert_eq!(
        n,
        5 + r.buf[4] as usize,
        "residual matches ADDITIONAL LENGTH"
    );

    // Tape LUN type over the same target.
    let mut tape = tgt.connect(TAPE_LUN);
    let r = exec(&mut tape, || {
        Request::data_in(cdb(&[0x12, 0, 0, 0, 36, 0]), 36)
    });
    assert_eq!(r.buf[0] & 0x1f, 0x01);
}

#[test]
fn pipelined_read16_batch() {
    let tgt = Tgt::start();
    let mut t = tgt.connect(DISK_LUN);
    exec(&mut t, || Request::none(cdb(&[0, 0, 0, 0, 0, 0])));
    assert!(t.queue_depth() >= 16);
    let blocks: u32 = 8;
    let lbas: Vec<u64> = (0..16u64)
        .map(|i| (i * 977 + 3) % (DISK_BLOCKS - 8))
        .collect();
    for (i, &lba) in lbas.iter().enumerate() {
        let mut c = [0u8; 16];
        c[0] = 0x88; // READ(16), SBC-4 5.16
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&blocks.to_be_bytes());
        let req = Request::data_in(cdb(&c), blocks as usize * 512).with_tag(i as u64);
        t.submit(req).unwrap();
    }
    assert_eq!(t.in_flight(), 16);
    let mut seen = [false; 16];
    for _ in 0..16 {
        let r = t.complete().unwrap();
        assert_eq!(r.status, Status::GOOD, "sense {:02x?}", r.sense);
        assert_eq!(r.residual, Residual::None);
        let i = r.tag as usize;
        assert!(!seen[i], "tag {i} twice");
        seen[i] = true;
        for b in 0..blocks as usize {
            let lba = lbas[i] + b as u64;
            let got = &r.buf[b * 512..(b + 1) * 512];
            let want: Vec<u8> = (0..512).map(|k| pattern_byte(lba, k)).collect();
            assert_eq!(got, &want[..], "tag {i} lba {lba}");
        }
    }
    assert_eq!(t.in_flight(), 0);
    assert!(matches!(t.complete(), Err(TransportError::Unsupported(_))));
}

#[test]
fn write_then_read_back() {
    let tgt = Tgt::start();
    let mut t = tgt.connect(DISK_LUN);
    exec(&mut t, || Request::none(cdb(&[0, 0, 0, 0, 0, 0])));
    // 300 KiB: more than FirstBurstLength, so R2T-solicited Data-Out too.
    let n_blocks: u32 = 600;
    let data: Vec<u8> = (0..n_blocks as usize * 512)
        .map(|i| (i % 253) as u8)
        .collect();
    let mut w = [0u8; 16];
    w[0] = 0x8a; // WRITE(16)
    w[2..10].copy_from_slice(&100u64.to_be_bytes());
    w[10..14].copy_from_slice(&n_blocks.to_be_bytes());
    let r = t.execute(Request::data_out(cdb(&w), data.clone())).unwrap();
    assert_eq!(r.status, Status::GOOD, "sense {:02x?}", r.sense);
    assert_eq!(r.buf, data, "data-out buffer handed back");
    let mut rd = w;
    rd[0] = 0x88;
    let r = t.execute(Request::data_in(cdb(&rd), data.len())).unwrap();
    assert_eq!(r.status, Status::GOOD);
    assert!(r.buf == data, "read back differs");
}

#[test]
fn tape_short_block_and_filemark_keep_data_and_sense() {
    let tgt = Tgt::start();
    let mut t = tgt.connect(TAPE_LUN);
    let r = exec(&mut t, || Request::none(cdb(&[0x01, 0, 0, 0, 0, 0]))); // REWIND
    assert_eq!(r.status, Status::GOOD, "sense {:02x?}", r.sense);
    // One 100-byte variable block, then a filemark (SSC-4 7.9, 7.10).
    let block: Vec<u8> = (0..100u8).map(|i| i ^ 0x5a).collect();
    let r = t
        .execute(Request::data_out(
            cdb(&[0x0a, 0, 0, 0, 100, 0]),
            block.clone(),
        ))
        .unwrap();
    assert_eq!(r.status, Status::GOOD, "sense {:02x?}", r.sense);
    let r = t
        .execute(Request::none(cdb(&[0x10, 0, 0, 0, 1, 0])))
        .unwrap();
    assert_eq!(r.status, Status::GOOD);
    let r = t
        .execute(Request::none(cdb(&[0x01, 0, 0, 0, 0, 0])))
        .unwrap();
    assert_eq!(r.status, Status::GOOD);

    // READ(6) variable asking for 200 bytes: ILI, INFORMATION = 100, and
    // the 100 bytes must be in our buffer (libiscsi's own datain would
    // have been replaced by the sense).
    let r = t
        .execute(Request::data_in(cdb(&[0x08, 0, 0, 0, 200, 0]), 200))
        .unwrap();
    assert_eq!(r.status, Status::CHECK_CONDITION);
    assert!(r.sense.len() >= 18, "sense {:02x?}", r.sense);
    assert_eq!(r.sense[0] & 0x7f, 0x70, "current fixed sense");
    assert_eq!(r.sense[0] & 0x80, 0x80, "VALID");
    assert_ne!(r.sense[2] & 0x20, 0, "ILI");
    assert_eq!(sense_key(&r), 0, "NO SENSE");
    assert_eq!(
        u32::from_be_bytes(r.sense[3..7].try_into().unwrap()),
        100,
        "INFORMATION = requested - actual"
    );
    assert_eq!(&r.buf[..100], &block[..], "short block data intact");
    assert_eq!(r.residual, Residual::Underflow(100));

    // Next read hits the filemark: FM bit, 00/01 FILEMARK DETECTED.
    let r = t
        .execute(Request::data_in(cdb(&[0x08, 0, 0, 0, 200, 0]), 200))
        .unwrap();
    assert_eq!(r.status, Status::CHECK_CONDITION);
    assert_ne!(r.sense[2] & 0x80, 0, "FILEMARK, sense {:02x?}", r.sense);
    assert_eq!(asc(&r), (0x00, 0x01));
}

#[test]
fn closed_port_fails_fast_with_connect_error() {
    let port = free_port(); // bound and released: nobody listens there
    let url = IscsiUrl::parse(&format!("iscsi://127.0.0.1:{port}/{IQN}/0")).unwrap();
    let start = Instant::now();
    let e = IscsiTransport::connect(&url, &opts()).expect_err("must fail");
    eprintln!("{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    match &e {
        TransportError::Connect { portal, reason } => {
            assert_eq!(portal, &format!("127.0.0.1:{port}"));
            assert!(reason.to_lowercase().contains("refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_target_is_a_login_error() {
    let tgt = Tgt::start();
    let url = IscsiUrl::parse(&format!(
        "iscsi://127.0.0.1:{}/iqn.2024-01.org.sanmover:no-such-target/0",
        tgt.port
    ))
    .unwrap();
    let e = IscsiTransport::connect(&url, &opts()).expect_err("must fail");
    eprintln!("{e}");
    match &e {
        TransportError::Login { target, reason, .. } => {
            assert!(target.ends_with("no-such-target"));
            assert!(reason.to_lowercase().contains("not found"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_lun_is_check_condition_not_connect_error() {
    let tgt = Tgt::start();
    let mut t = tgt.connect(9);
    let r = t.execute(Request::none(cdb(&[0, 0, 0, 0, 0, 0]))).unwrap();
    assert_eq!(r.status, Status::CHECK_CONDITION);
    assert_eq!(sense_key(&r), 5, "ILLEGAL REQUEST, sense {:02x?}", r.sense);
    assert_eq!(asc(&r), (0x25, 0x00), "LOGICAL UNIT NOT SUPPORTED");
}

#[test]
fn stalled_target_times_out_then_dead_target_loses_session() {
    let tgt = Tgt::start();
    let mut t = tgt.connect(DISK_LUN);
    exec(&mut t, || Request::none(cdb(&[0, 0, 0, 0, 0, 0])));
    tgt.signal("-STOP");
    let start = Instant::now();
    let req = Request::none(cdb(&[0, 0, 0, 0, 0, 0])).with_timeout(Duration::from_secs(1));
    let e = t.execute(req).expect_err("must time out");
    eprintln!("{e}");
    assert!(matches!(e, TransportError::Timeout { .. }), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(t.in_flight(), 0);

    tgt.signal("-KILL");
    sleep(Duration::from_millis(200));
    let e = t
        .execute(Request::none(cdb(&[0, 0, 0, 0, 0, 0])))
        .expect_err("target is gone");
    eprintln!("{e}");
    assert!(matches!(e, TransportError::SessionLost(_)), "{e:?}");
    // Once lost, stays lost.
    let e = t
        .submit(Request::none(cdb(&[0, 0, 0, 0, 0, 0])))
        .err()
        .unwrap();
    assert!(matches!(e, TransportError::SessionLost(_)), "{e:?}");
}

#[test]
fn drop_with_commands_in_flight() {
    let tgt = Tgt::start();
    let mut t = tgt.connect(DISK_LUN);
    exec(&mut t, || Request::none(cdb(&[0, 0, 0, 0, 0, 0])));
    for i in 0..16u64 {
        let mut c = [0u8; 16];
        c[0] = 0x88;
        c[2..10].copy_from_slice(&(i * 64).to_be_bytes());
        c[10..14].copy_from_slice(&64u32.to_be_bytes());
        t.submit(Request::data_in(cdb(&c), 64 * 512).with_tag(i))
            .unwrap();
    }
    // Take one, leave 15 in flight, then drop: logout + destroy must
    // cancel them and free every buffer without touching freed memory.
    let r = t.complete().unwrap();
    assert_eq!(r.status, Status::GOOD);
    drop(t);
    // The target is still fine for a new session.
    let mut t2 = tgt.connect(DISK_LUN);
    let r = exec(&mut t2, || Request::none(cdb(&[0, 0, 0, 0, 0, 0])));
    assert_eq!(r.status, Status::GOOD);
}

#[test]
fn chap_login() {
    let tgt = Tgt::start();
    tgt.adm(&[
        "--op",
        "new",
        "--mode",
        "account",
        "--user",
        "backup",
        "--password",
        "s3cret-chap12",
    ]);
    tgt.adm(&[
        "--op", "bind", "--mode", "account", "--tid", "1", "--user", "backup",
    ]);
    let base = format!("127.0.0.1:{}/{IQN}/{DISK_LUN}", tgt.port);

    let url = IscsiUrl::parse(&format!("iscsi://backup%s3cret-chap12@{base}")).unwrap();
    let mut t = IscsiTransport::connect(&url, &opts()).expect("CHAP login");
    assert!(!t.describe().contains("s3cret"), "{}", t.describe());
    let r = exec(&mut t, || Request::none(cdb(&[0, 0, 0, 0, 0, 0])));
    assert_eq!(r.status, Status::GOOD);

    let url = IscsiUrl::parse(&format!("iscsi://backup%wrong-secret1@{base}")).unwrap();
    let e = IscsiTransport::connect(&url, &opts()).expect_err("bad secret");
    assert!(matches!(e, TransportError::Login { .. }), "{e:?}");
    assert!(!e.to_string().contains("wrong-secret1"), "{e}");

    let url = IscsiUrl::parse(&format!("iscsi://{base}")).unwrap();
    let e = IscsiTransport::connect(&url, &opts()).expect_err("no CHAP");
    assert!(matches!(e, TransportError::Login { .. }), "{e:?}");
}

#[test]
fn discovery_lists_the_target() {
    let tgt = Tgt::start();
    let portal = PortalUrl::parse(&format!("iscsi://127.0.0.1:{}", tgt.port)).unwrap();
    let found = discover(&portal, &opts()).unwrap();
    let t = found
        .iter()
        .find(|t| t.name == IQN)
        .unwrap_or_else(|| panic!("{found:?}"));
    assert!(
        t.portals.iter().any(|p| p.contains(&tgt.port.to_string())),
        "{t:?}"
    );
}
