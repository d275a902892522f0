//! The router as an attacker meets it (issue 11, safe defaults and bounded
//! resources): raw-PDU clients against `sanmover router` processes on
//! 127.0.0.1 (and other 127/8 source addresses), with tgt backends where a
//! real copy is needed. Each test starts and stops its own router (and
//! rig), by pid, also when it fails.

mod common;
use common::raw::{connect_from, key_asc, LoginSpec, Raw, Refused};
use common::{fill_random, sm, PrivateRig, Router};

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sanmover::device::Disk;
use sanmover::frontend::pdu::{Header, TmfFunction, TmfResponse};
use sanmover::scsi::spc::Designator;
use sanmover::scsi::xcopy::{
    list_id_usage, CopyManagerStatus, CopyStatus, Cscd, DeviceParams, RcrAction,
    ReceiveCopyResults, Segment, XcopyParams,
};
use sanmover::scsi::{CdbCodec, DeviceType, Lba, Status, Wire};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;
use sanmover::transport::{Request, Transport};

const BACKUP: &str = "iqn.2026-01.org.sanmover.test:backup-server";
const OTHER: &str = "iqn.2026-01.org.sanmover.test:other";

fn connect(url: &str, initiator: &str) -> IscsiTransport {
    let opts = IscsiOptions {
        initiator: initiator.into(),
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    IscsiTransport::connect(&IscsiUrl::parse(url).unwrap(), &opts).expect("iSCSI login")
}

/// The LU designator an initiator would put in an E4h CSCD.
fn designator(url: &str) -> Designator {
    let mut d = Disk::open(connect(url, OTHER)).expect("open disk");
    d.scsi
        .device_identification()
        .unwrap()
        .best_lu_designator()
        .expect("LU designator")
        .clone()
}

fn disk_cscd(url: &str) -> Cscd {
    Cscd::identification(&designator(url), DeviceType::DISK, DeviceParams::block(512)).unwrap()
}

/// EXTENDED COPY(LID1) CDB and parameter list.
fn xcopy(p: &XcopyParams) -> (Vec<u8>, Vec<u8>) {
    let list = p.encode().unwrap();
    (p.cdb().to_cdb().as_bytes().to_vec(), list)
}

fn rcr(action: RcrAction, list_id: u8) -> Vec<u8> {
    ReceiveCopyResults {
        action,
        list_id,
        alloc_len: 1024,
    }
    .to_cdb()
    .as_bytes()
    .to_vec()
}

const TUR: [u8; 6] = [0; 6];

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- safe defaults ----

/// A router asked to listen on every address refuses to start without
/// CHAP and an allow-list; --insecure starts it with a warning.
#[test]
fn a_non_loopback_listener_needs_chap_and_an_allow_list_or_insecure() {
    let bin = env!("CARGO_BIN_EXE_sanmover");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let log = dir.path().join("log");
        let mut c = std::process::Command::new(bin)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Up to 10 s to either exit or print its banner.
        let mut out = c.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = [0u8; 256];
            let n = out.read(&mut b).unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&b[..n]).into_owned());
        });
        let banner = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let _ = c.kill();
        let status = c.wait().unwrap();
        (banner, status, std::fs::read_to_string(&log).unwrap())
    };
    let (banner, status, log) = run(&["router", "--listen", "0.0.0.0:0"]);
    assert!(
        !banner.contains("listening on"),
        "started on 0.0.0.0 with no CHAP and no allow-list: {banner}"
    );
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("--insecure"),
        "the refusal names the way out: {log}"
    );

    let (banner, _, log) = run(&["router", "--listen", "0.0.0.0:0", "--insecure"]);
    assert!(banner.contains("listening on"), "{banner}\n{log}");
    assert!(log.contains("warning"), "--insecure warns on start: {log}");

    // CHAP and an allow-list: no warning needed.
    let chap = dir.path().join("chap.toml");
    std::fs::write(
        &chap,
        format!("[[initiator]]\nname = \"{BACKUP}\"\nsecret = \"a-long-enough-secret\"\n"),
    )
    .unwrap();
    set_mode(&chap, 0o600);
    let (banner, _, log) = run(&[
        "router",
        "--listen",
        "0.0.0.0:0",
        "--allow",
        BACKUP,
        "--chap-file",
        chap.to_str().unwrap(),
    ]);
    assert!(banner.contains("listening on"), "{banner}\n{log}");
    assert!(!log.contains("insecure"), "{log}");
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// CHAP secrets stay out of error messages that quote the file, out of
/// the router's log (also at -vv, also for failed logins) and out of its
/// command line.
#[test]
fn secrets_stay_out_of_errors_logs_and_ps() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hunter2-hunter2-hunter2";
    // A syntax error on the secret's own line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!("[[initiator]]\nname = \"{BACKUP}\"\nsecret = \"{secret}\nuser = \"x\"\n"),
    )
    .unwrap();
    set_mode(&bad, 0o600);
    let r = common::sanmover([
        "router",
        "--listen",
        "127.0.0.1:0",
        "--chap-file",
        bad.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(
        !r.stderr.contains("hunter2"),
        "the error quotes the secret: {}",
        r.stderr
    );
    assert!(r.stderr.contains("bad.toml"), "{}", r.stderr);

    let good = dir.path().join("chap.toml");
    std::fs::write(
        &good,
        format!("[[initiator]]\nname = \"{BACKUP}\"\nuser = \"backup\"\nsecret = \"{secret}\"\n"),
    )
    .unwrap();
    set_mode(&good, 0o600);
    let router = Router::start_global(&["-vv"], &[], &["--chap-file", good.to_str().unwrap()]);
    let addr = router.socket_addr();
    let spec = LoginSpec::normal(BACKUP, &router.iqn, 0x1).chap("backup", secret);
    let mut ok = Raw::login(addr, &spec).expect("CHAP login");
    assert_eq!(ok.run(&TUR, 0, &[]).status, 0);
    let wrong = LoginSpec::normal(BACKUP, &router.iqn, 0x2).chap("backup", "hunter2-hunter3-wrong");
    assert!(Raw::login(addr, &wrong).is_err());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", router.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("hunter2"));
    drop(ok);
    wait_for("the refusal in the log", Duration::from_secs(10), || {
        router.log_text().contains("CHAP")
    });
    let log = router.log_text();
    assert!(!log.contains("hunter2"), "secret in the log:\n{log}");
}

/// Names from the network are logged escaped (no line of the log is
/// forged by an initiator name), and names longer than RFC 7143's 223
/// bytes are refused.
#[test]
fn network_names_are_logged_escaped_and_long_ones_refused() {
    let router = Router::start_global(&["-v"], &[], &[]);
    let addr = router.socket_addr();
    let evil = "iqn.2026-01.org.evil:x\nFORGED LOG LINE\x1b[2J";
    let r = Raw::login(addr, &LoginSpec::normal(evil, &router.iqn, 0x1));
    // Refused or not, the log must not carry the raw name.
    drop(r);
    let target_evil = format!("{}\nFORGED TARGET", router.iqn);
    let r = Raw::login(addr, &LoginSpec::normal(OTHER, &target_evil, 0x3));
    assert!(r.is_err());
    std::thread::sleep(Duration::from_millis(300));
    let log = router.log_text();
    assert!(log.contains("org.evil"), "the attempt is logged: {log}");
    for line in log.lines() {
        assert!(
            !line.trim_start().starts_with("FORGED"),
            "forged log line:\n{log}"
        );
    }
    assert!(
        !log.contains('\x1b'),
        "control character in the log:\n{log}"
    );
    assert!(log.contains("\\n"), "newline shown escaped:\n{log}");

    let long = format!("iqn.2026-01.org.sanmover:{}", "a".repeat(224));
    let r = Raw::login(addr, &LoginSpec::normal(&long, &router.iqn, 0x2));
    assert!(
        matches!(r, Err(Refused::Status(2, _))),
        "a {}-byte name must be refused",
        long.len()
    );
}

// ---- bounded resources: connections ----

/// Idle sockets from many sources, kept open and reopened as the router
/// closes them, until told to stop.
struct Flood {
    stop: Arc<AtomicBool>,
    closed_by_router: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(to: SocketAddr, sources: u8, per_source: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicU64::new(0));
        let (s2, c2) = (stop.clone(), closed.clone());
        let handle = std::thread::spawn(move || {
            let addrs: Vec<Ipv4Addr> = (0..sources)
                .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i))
                .collect();
            let mut socks: Vec<Option<TcpStream>> =
                (0..addrs.len() * per_source).map(|_| None).collect();
            while !s2.load(Ordering::Relaxed) {
                let mut opened = 0;
                for (k, slot) in socks.iter_mut().enumerate() {
                    if let Some(s) = slot {
                        let mut b = [0u8; 64];
                        match s.read(&mut b) {
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            _ => {
                                c2.fetch_add(1, Ordering::Relaxed);
                                *slot = None;
                            }
                        }
                    }
                    if opened < 50 {
                        opened += 1;
                        if let Ok(s) = connect_from(addrs[k / per_source], to) {
                            s.set_nonblocking(true).unwrap();
                            *slot = Some(s);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Flood {
            stop,
            closed_by_router: closed,
            handle: Some(handle),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A source address gets at most its share of connections, and a flood of
/// idle sockets from many sources does not lock out the backup server:
/// it logs in and backs up through the router meanwhile.
#[test]
fn a_flood_of_idle_connections_does_not_lock_out_the_backup_server() {
    let rig = PrivateRig::start();
    let portal = rig.get("SANMOVER_RIG_PORTAL").to_string();
    let backends = [
        format!("iscsi://{portal}/{}", rig.get("SANMOVER_RIG_DISK_IQN")),
        format!("iscsi://{portal}/{}", rig.get("SANMOVER_RIG_TAPE_IQN")),
    ];
    // The backup server's copy rights as a user writes them: exactly the
    // LUs of its job, the disk as a source and the tape as a destination.
    let dir = tempfile::tempdir().unwrap();
    let iqn = |u: &str| u.split('/').nth(3).unwrap().to_string();
    let cfg = config(
        dir.path(),
        &format!(
            "[[copy_rights]]\ninitiators = [\"{BACKUP}\"]\nlus = [\n  \
             {{ target = \"{}\", role = \"source\" }},\n  \
             {{ target = \"{}\", role = \"destination\" }},\n]\n",
            iqn(&backends[0]),
            iqn(&backends[1])
        ),
    );
    let router = Router::start(
        &[&backends[0], &backends[1]],
        &["--allow", BACKUP, "--allow", OTHER, "--config", &cfg],
    );
    let addr = router.socket_addr();

    // One source, 40 idle sockets: most are closed at once.
    let mine: Vec<TcpStream> = (0..40)
        .filter_map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 200), addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let open = mine
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 8];
            matches!((&**s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert!(
        open <= 16,
        "{open} idle connections from one source kept open"
    );
    drop(mine);

    let flood = Flood::start(addr, 40, 8);
    std::thread::sleep(Duration::from_secs(2));
    let catalog = rig.state.path().join("catalog.db");
    fill_random(
        Path::new(rig.get("SANMOVER_RIG_DISK_FILE")),
        8 << 20,
        0xf100d,
    );
    let tape = rig.get("SANMOVER_RIG_TAPE").to_string();
    sm(&catalog, &["tape", &tape, "label", "FLOOD1"]).ok();
    let r = sm(
        &catalog,
        &[
            "--initiator",
            BACKUP,
            "--json",
            "backup",
            "--mode",
            "xcopy",
            "--source",
            rig.get("SANMOVER_RIG_DISK"),
            "--blocks",
            "16384",
            "--tape",
            &tape,
            "--copy-manager",
            &router.url(),
            "--fallback",
            "never",
        ],
    );
    let closed = flood.closed_by_router.load(Ordering::Relaxed);
    drop(flood);
    assert_eq!(
        r.code, 0,
        "backup under the flood:\n{}\n{}",
        r.stdout, r.stderr
    );
    let v = r.json();
    assert_eq!(
        (v["mode"].as_str(), v["state"].as_str()),
        (Some("xcopy"), Some("complete")),
        "{v}"
    );
    assert_eq!(
        v["data_bytes_through_initiator"], 0,
        "no fallback to a host copy: {v}"
    );
    assert!(closed > 0, "the flood never filled the router");
}

/// A login that trickles in byte by byte is cut off by the deadline for
/// the whole login, not kept alive by a per-read timeout.
#[test]
fn a_trickling_login_is_closed_at_the_login_deadline() {
    let router = Router::start(&[], &[]);
    let mut s = TcpStream::connect(router.socket_addr()).unwrap();
    let login = {
        let spec = [
            ("InitiatorName", OTHER),
            ("TargetName", router.iqn.as_str()),
        ];
        let kv: Vec<(String, String)> = spec
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let data = sanmover::frontend::text::encode_pairs(&kv);
        let h = Header::LoginRequest(sanmover::frontend::pdu::LoginRequest {
            transit: true,
            cont: false,
            csg: 1,
            nsg: 3,
            version_max: 0,
            version_min: 0,
            isid: 1,
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: 0,
            exp_stat_sn: 0,
        });
        sanmover::frontend::pdu::Pdu::new(h, data).emit()
    };
    let begun = Instant::now();
    let mut closed = false;
    for b in login.iter().take(59) {
        use std::io::Write;
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        s.set_nonblocking(true).unwrap();
        let mut x = [0u8; 8];
        let r = s.read(&mut x);
        s.set_nonblocking(false).unwrap();
        if matches!(r, Ok(0)) || matches!(&r, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "still open after {:?} of trickling",
        begun.elapsed()
    );
}

// ---- bounded resources: memory ----

/// Clients that ask for 64 MiB reads and never read them pin no more than
/// a chunk each; a well-behaved session is served meanwhile.
#[test]
fn clients_that_never_read_pin_little_memory() {
    let router = Router::start(&[], &[]);
    let addr = router.socket_addr();
    let read64 = |blocks: u32| {
        let mut c = [0u8; 16];
        c[0] = 0x88;
        c[10..14].copy_from_slice(&blocks.to_be_bytes());
        c
    };
    let spec = |isid| {
        LoginSpec::normal(OTHER, &router.iqn, isid).key("MaxRecvDataSegmentLength", "262144")
    };
    // Warm up: one reader touches the whole scratch disk once.
    let mut good = Raw::login(addr, &spec(0x100)).unwrap();
    let r = good.run(&read64(131_072), 64 << 20, &[]);
    assert_eq!((r.status, r.data.len()), (0, 64 << 20));
    std::thread::sleep(Duration::from_millis(500));
    let before = router.rss();
    let mut idle = Vec::new();
    for k in 0..4u64 {
        let mut c = Raw::login(addr, &spec(0x200 + k)).unwrap();
        for _ in 0..4 {
            c.command(&read64(131_072), true, 64 << 20, &[]);
        }
        idle.push(c);
    }
    std::thread::sleep(Duration::from_secs(3));
    let grown = router.rss().saturating_sub(before);
    assert_eq!(good.run(&TUR, 0, &[]).status, 0, "others are still served");
    assert!(
        grown < 32 << 20,
        "4 clients that never read grew the router by {} MiB",
        grown >> 20
    );
    drop(idle);
}

// ---- held copy results ----

/// 02h on the router's own disk, one block, results held under `id`.
fn own_copy(own: &Cscd, id: u8) -> (Vec<u8>, Vec<u8>) {
    let mut p = XcopyParams::new(
        vec![own.clone()],
        vec![Segment::block_to_block(0, 0, 1, Lba(0), Lba(8))],
    );
    p.list_id = id;
    p.list_id_usage = list_id_usage::HOLD;
    xcopy(&p)
}

/// Held results belong to their session: another initiator cannot read
/// them, a flood of lists from other sessions does not evict them, and a
/// login with the same name and ISID replaces the session (reinstatement)
/// rather than joining it.
#[test]
fn held_results_cannot_be_stolen_or_evicted() {
    let router = Router::start(&[], &[]);
    let addr = router.socket_addr();
    let own = disk_cscd(&router.url());
    let victim_name = "iqn.2026-01.org.sanmover.test:victim";
    let victim_spec = LoginSpec::normal(victim_name, &router.iqn, 0x42);
    let mut victim = Raw::login(addr, &victim_spec).unwrap();
    let (cdb, list) = own_copy(&own, 9);
    assert_eq!(victim.run(&cdb, 0, &list).status, 0);
    let status = rcr(RcrAction::COPY_STATUS, 9);
    assert_eq!(victim.run(&status, 1024, &[]).status, 0);

    // Another initiator: nothing held under 9 for it.
    let mut thief = Raw::login(addr, &LoginSpec::normal(OTHER, &router.iqn, 0x42)).unwrap();
    let r = thief.run(&status, 1024, &[]);
    assert_eq!((r.status, key_asc(&r.sense)), (2, (5, 0x24, 0)));

    // Five sessions of one attacker, all open, hold every list ID they have.
    let mut attackers = Vec::new();
    for isid in 1..=5u64 {
        let mut a = Raw::login(addr, &LoginSpec::normal(OTHER, &router.iqn, isid)).unwrap();
        for id in 0..=255u8 {
            let (cdb, list) = own_copy(&own, id);
            assert_eq!(a.run(&cdb, 0, &list).status, 0);
        }
        attackers.push(a);
    }
    let r = victim.run(&status, 1024, &[]);
    assert_eq!(
        r.status, 0,
        "the victim's results were evicted: {:?}",
        r.sense
    );

    // The same name with another ISID is another session: no effect.
    let mut second = Raw::login(addr, &LoginSpec::normal(victim_name, &router.iqn, 0x43)).unwrap();
    assert_eq!(second.run(&status, 1024, &[]).status, 2);
    assert_eq!(victim.run(&TUR, 0, &[]).status, 0);

    // The same name and ISID: the old session is replaced, its results
    // go with it, and the new one cannot read them.
    let mut again = Raw::login(addr, &victim_spec).expect("reinstatement");
    let r = again.run(&status, 1024, &[]);
    assert_eq!(
        (r.status, key_asc(&r.sense)),
        (2, (5, 0x24, 0)),
        "the new session read the old one's results"
    );
    assert!(
        victim.closed_within(Duration::from_secs(10)),
        "the replaced session is still open"
    );
}

// ---- copies outside the LU lock, and their abort ----

struct LongCopy {
    rig: PrivateRig,
    router: Router,
    copier: Raw,
    itt: u32,
    segments: usize,
}

/// A router in front of the rig's disk, and a raw session on it that has
/// just sent an EXTENDED COPY of 64 x 32 MiB within that disk (list 3,
/// held), which takes seconds.
fn long_copy(extra: &[&str]) -> LongCopy {
    let rig = PrivateRig::start();
    let portal = rig.get("SANMOVER_RIG_PORTAL").to_string();
    let backend = format!("iscsi://{portal}/{}", rig.get("SANMOVER_RIG_DISK_IQN"));
    // No copy-rights ACL here (--insecure): these tests are about the
    // copy's thread, not its rights.
    let mut args = vec!["--insecure"];
    args.extend_from_slice(extra);
    let router = Router::start(&[&backend], &args);
    let disk = disk_cscd(rig.get("SANMOVER_RIG_DISK"));
    let segments = 64;
    let segs = (0..segments)
        .map(|_| Segment::block_to_block(0, 0, 65_535, Lba(0), Lba(65_536)))
        .collect();
    let mut p = XcopyParams::new(vec![disk], segs);
    p.list_id = 3;
    p.list_id_usage = list_id_usage::HOLD;
    let (cdb, list) = xcopy(&p);
    let mut copier = Raw::login(
        router.socket_addr(),
        &LoginSpec::normal(BACKUP, &router.iqn, 0x77),
    )
    .unwrap();
    let itt = copier.command(&cdb, false, list.len() as u32, &list);
    LongCopy {
        rig,
        router,
        copier,
        itt,
        segments,
    }
}

/// Whether anything arrived on the copy's session (its status would).
fn answered(r: &mut Raw) -> bool {
    r.s().set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let got = !matches!(r.s().peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    r.s().set_nonblocking(false).unwrap();
    got
}

fn copy_status(r: &mut Raw, id: u8) -> CopyStatus {
    let reply = r.run(&rcr(RcrAction::COPY_STATUS, id), 1024, &[]);
    assert_eq!(reply.status, 0, "{:?}", reply.sense);
    CopyStatus::parse(&reply.data).unwrap()
}

/// ABORT TASK of the running copy: FUNCTION COMPLETE, no status for the
/// copy, and the copy stopped part way (its held status says so).
fn abort_it(c: &mut LongCopy) {
    let r = &mut c.copier;
    let tmf = r.tmf(TmfFunction::ABORT_TASK, c.itt, r.cmd_sn() - 1);
    let p = r.recv_skipping_pings().expect("TMF response");
    let Header::TaskMgmtResponse(t) = p.header else {
        panic!("expected the TMF response, got {:?}", p.header)
    };
    assert_eq!((t.itt, t.response), (tmf, TmfResponse::FUNCTION_COMPLETE));
    let p = r.ping().expect("NOP-In");
    assert!(
        matches!(p.header, Header::NopIn(_)),
        "nothing for the aborted copy: {:?}",
        p.header
    );
    let st = copy_status(r, 3);
    assert_eq!(st.status, CopyManagerStatus::COMPLETED_ERRORS);
    assert!((st.segments_processed as usize) < c.segments, "{st:?}");
}

/// The latency bound: while one initiator's long EXTENDED COPY
/// runs, another initiator's TEST UNIT READY answers within 100 ms. Each
/// TUR is timed on a session logged in beforehand; the bound is checked
/// on the median of ten, and the copy must still be running after the
/// last one.
#[test]
fn test_unit_ready_answers_within_100_ms_during_a_long_copy() {
    let mut c = long_copy(&[]);
    let mut t = connect(&c.router.url(), OTHER);
    std::thread::sleep(Duration::from_millis(300));
    let tur = sanmover::scsi::Cdb::new(&TUR).unwrap();
    let mut took = Vec::new();
    for _ in 0..10 {
        let begun = Instant::now();
        let r = t.execute(Request::none(tur)).unwrap();
        took.push(begun.elapsed());
        assert_eq!(r.status, Status::GOOD);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !answered(&mut c.copier),
        "the copy ended before the TURs did: make it longer"
    );
    took.sort();
    eprintln!(
        "TUR during a copy: min {:?} median {:?} max {:?}",
        took[0], took[5], took[9]
    );
    assert!(took[5] < Duration::from_millis(100), "{took:?}");
    abort_it(&mut c);
    drop(c.rig);
}

/// ABORT TASK stops a running copy at the next block boundary.
#[test]
fn abort_task_stops_a_running_copy() {
    let mut c = long_copy(&[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!answered(&mut c.copier), "the copy ended too soon");
    abort_it(&mut c);
    // The session goes on.
    assert_eq!(c.copier.run(&TUR, 0, &[]).status, 0);
}

/// LOGICAL UNIT RESET from another initiator ends the copy with TASK
/// ABORTED status for its initiator (TAS=1).
#[test]
fn lun_reset_from_another_initiator_ends_a_copy_with_task_aborted() {
    let mut c = long_copy(&[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!answered(&mut c.copier), "the copy ended too soon");
    let mut other = Raw::login(
        c.router.socket_addr(),
        &LoginSpec::normal(OTHER, &c.router.iqn, 0x5),
    )
    .unwrap();
    let tmf = other.tmf(TmfFunction::LOGICAL_UNIT_RESET, 0, 0);
    let p = other.recv_skipping_pings().expect("TMF response");
    let Header::TaskMgmtResponse(t) = p.header else {
        panic!("{:?}", p.header)
    };
    assert_eq!((t.itt, t.response), (tmf, TmfResponse::FUNCTION_COMPLETE));
    let itt = c.itt;
    let r = c.copier.wait(itt).expect("a status for the copy");
    assert_eq!(r.status, Status::TASK_ABORTED.0);
}

/// A router config file in `dir`.
fn config(dir: &Path, toml: &str) -> String {
    let p = dir.join("router.toml");
    std::fs::write(&p, toml).unwrap();
    p.to_str().unwrap().to_string()
}

/// After the idle timeout the router pings (NOP-In); a session that
/// answers stays, one that stays silent is closed after twice the
/// timeout.
#[test]
fn idle_sessions_are_pinged_and_silent_ones_closed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[connections]\nidle_timeout_secs = 1\n");
    let router = Router::start(&[], &["--config", &cfg]);
    let addr = router.socket_addr();
    let mut silent = Raw::login(addr, &LoginSpec::normal(OTHER, &router.iqn, 1)).unwrap();
    let mut polite = Raw::login(addr, &LoginSpec::normal(OTHER, &router.iqn, 2)).unwrap();
    // The polite one answers every ping for 4 s.
    polite.i.set_timeout(Duration::from_millis(200));
    let (mut pings, end) = (0, Instant::now() + Duration::from_secs(4));
    while Instant::now() < end {
        if let Some(p) = polite.recv() {
            if let Header::NopIn(n) = p.header {
                assert_eq!(n.itt, sanmover::frontend::pdu::RESERVED_TAG);
                pings += 1;
                let h = Header::NopOut(sanmover::frontend::pdu::NopOut {
                    immediate: true,
                    lun: 0,
                    itt: sanmover::frontend::pdu::RESERVED_TAG,
                    ttt: n.ttt,
                    cmd_sn: polite.cmd_sn(),
                    exp_stat_sn: 0,
                });
                polite.send(h, &[]);
            }
        }
    }
    assert!(pings >= 2, "{pings} pings in 4 s with a 1 s idle timeout");
    polite.i.set_timeout(Duration::from_secs(10));
    assert_eq!(
        polite.run(&TUR, 0, &[]).status,
        0,
        "the answering session lives"
    );
    assert!(
        silent.closed_within(Duration::from_secs(5)),
        "the silent session lives"
    );
}

/// A client that never reads is closed at the send timeout, and what it
/// held is given back.
#[test]
fn a_client_that_never_reads_is_closed_at_the_send_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[connections]\nsend_timeout_secs = 2\n");
    let router = Router::start_global(&["-v"], &[], &["--config", &cfg]);
    let spec = LoginSpec::normal(OTHER, &router.iqn, 1).key("MaxRecvDataSegmentLength", "262144");
    let mut c = Raw::login(router.socket_addr(), &spec).unwrap();
    c.i.set_timeout(Duration::from_secs(30));
    let mut read64 = [0u8; 16];
    read64[0] = 0x88;
    read64[10..14].copy_from_slice(&131_072u32.to_be_bytes());
    for _ in 0..4 {
        c.command(&read64, true, 64 << 20, &[]);
    }
    let begun = Instant::now();
    wait_for("the close", Duration::from_secs(60), || {
        router.log_text().contains("closed:")
    });
    eprintln!("closed after {:?}", begun.elapsed());
    let log = router.log_text();
    assert!(
        log.contains("timed out") || log.contains("Resource temporarily unavailable"),
        "{log}"
    );
}

/// CHAP from the router's CHAP file: each initiator with its own secret,
/// mutual CHAP with the router's, and discovery sessions guarded too.
#[test]
fn chap_file_secrets_per_initiator_mutual_and_for_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let chap = dir.path().join("chap.toml");
    std::fs::write(
        &chap,
        format!(
            "discovery = true\n\
             [[initiator]]\nname = \"{BACKUP}\"\nuser = \"backup\"\nsecret = \"backup-secret-123\"\n\
             [[initiator]]\nname = \"{OTHER}\"\nsecret = \"other-secret-4567\"\n\
             [target]\nuser = \"router\"\nsecret = \"router-secret-890\"\n"
        ),
    )
    .unwrap();
    set_mode(&chap, 0o600);
    let router = Router::start(&[], &["--chap-file", chap.to_str().unwrap()]);
    let addr = router.socket_addr();
    let iqn = router.iqn.clone();
    let ok = LoginSpec::normal(BACKUP, &iqn, 1).chap("backup", "backup-secret-123");
    assert!(Raw::login(addr, &ok).is_ok());
    // The other initiator's name defaults its CHAP name; its secret is not
    // the backup server's.
    let mut r = Raw::login(
        addr,
        &LoginSpec::normal(OTHER, &iqn, 2).chap(OTHER, "other-secret-4567"),
    )
    .expect("OTHER with its own secret");
    assert_eq!(r.run(&TUR, 0, &[]).status, 0);
    let stolen = LoginSpec::normal(OTHER, &iqn, 3).chap("backup", "backup-secret-123");
    assert_eq!(Raw::login(addr, &stolen).err(), Some(Refused::Status(2, 1)));
    // Mutual: the router proves it knows its own secret.
    let mut m = LoginSpec::normal(BACKUP, &iqn, 4).chap("backup", "backup-secret-123");
    m.mutual = Some(vec![0x42; 16]);
    let r = Raw::login(addr, &m).unwrap();
    let want = sanmover::frontend::login::chap_response(77, b"router-secret-890", &[0x42; 16]);
    assert_eq!(r.key("CHAP_N").as_deref(), Some("router"));
    assert_eq!(r.key("CHAP_R"), Some(format!("0x{}", hex::encode(want))));
    // Discovery needs CHAP as well.
    let disc = LoginSpec {
        target: None,
        ..LoginSpec::normal(BACKUP, &iqn, 5)
    };
    assert_eq!(Raw::login(addr, &disc).err(), Some(Refused::Status(2, 1)));
    assert!(Raw::login(addr, &disc.chap("backup", "backup-secret-123")).is_ok());
}

/// `[limits] max_copy_seconds` caps a copy's time: COPY ABORTED, COMMAND
/// TIMEOUT DURING PROCESSING, at a block boundary.
#[test]
fn a_copy_past_the_configured_time_cap_is_copy_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[limits]\nmax_copy_seconds = 1\n");
    let mut c = long_copy(&["--config", &cfg]);
    let itt = c.itt;
    let r = c.copier.wait(itt).expect("the copy's status");
    assert_eq!(r.status, Status::CHECK_CONDITION.0);
    assert_eq!(key_asc(&r.sense), (0x0a, 0x2e, 0x02));
    let st = copy_status(&mut c.copier, 3);
    assert!((st.segments_processed as usize) < c.segments, "{st:?}");
}

/// `validate`'s iSCSI suite logs its own sessions in with the CHAP user and
/// secret of the URL, as libiscsi does, and the router passes every check.
#[test]
fn validate_iscsi_sessions_use_the_url_chap_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let chap = dir.path().join("chap.toml");
    std::fs::write(
        &chap,
        format!("[[initiator]]\nname = \"{BACKUP}\"\nuser = \"backup\"\nsecret = \"backup-secret-123\"\n"),
    )
    .unwrap();
    set_mode(&chap, 0o600);
    let router = Router::start(&[], &["--chap-file", chap.to_str().unwrap()]);
    let url = format!(
        "iscsi://backup%backup-secret-123@{}/{}/0",
        router.socket_addr(),
        router.iqn
    );
    let run = common::sanmover([
        "--initiator",
        BACKUP,
        "--json",
        "validate",
        "--suite",
        "iscsi",
        &url,
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let rep = run.json();
    let checks = rep["devices"][0]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 10, "{rep:#}");
    for c in checks {
        assert_eq!(c["verdict"], "pass", "{c:#}");
    }
    // The secret stays out of the report.
    assert!(!run.stdout.contains("backup-secret-123"));
}
