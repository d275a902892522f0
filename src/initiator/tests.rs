//! The initiator against scripted targets on loopback (garbage, truncated
//! PDUs, refusals, a split Data-In, an R2T) and its parsers on arbitrary
//! bytes.

use std::io::{Cursor, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use proptest::prelude::*;

use super::task::sense_of;
use super::wire::{read_pdu, ReadError};
use super::*;
use crate::frontend::pdu::{
    DataIn, Header, LoginResponse, NopIn, Pdu, R2t, ScsiResponse, BHS_LEN, RESERVED_TAG,
};
use crate::frontend::text::encode_pairs;

/// A target that reads each request PDU and answers with the next
/// scripted bytes; it records what it read.
fn scripted(replies: Vec<Vec<u8>>) -> (SocketAddr, JoinHandle<Vec<Pdu>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        for r in replies {
            match read_pdu(&mut s, 1 << 20) {
                Ok(p) => got.push(p),
                Err(_) => break,
            }
            if s.write_all(&r).is_err() {
                break;
            }
        }
        // No more answers: the initiator sees EOF after the script.
        let _ = s.shutdown(std::net::Shutdown::Write);
        // Drain whatever else comes (Data-Out after an R2T), then close.
        while let Ok(p) = read_pdu(&mut s, 1 << 20) {
            got.push(p);
        }
        got
    });
    (addr, h)
}

fn cfg(addr: SocketAddr) -> Config {
    let mut c = Config::new(addr, "iqn.test:i", "iqn.test:t", 0x80_0000_0001);
    c.timeout = Duration::from_secs(5);
    c
}

fn login_ok(keys: &[(&str, &str)]) -> Vec<u8> {
    let kv: Vec<(String, String)> = keys
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Pdu::new(
        Header::LoginResponse(LoginResponse {
            transit: true,
            cont: false,
            csg: 1,
            nsg: 3,
            version_max: 0,
            version_active: 0,
            isid: 0x80_0000_0001,
            tsih: 7,
            itt: 0,
            stat_sn: 100,
            exp_cmd_sn: 5,
            max_cmd_sn: 36,
            status_class: 0,
            status_detail: 0,
        }),
        encode_pairs(&kv),
    )
    .emit()
}

fn data_in(itt: u32, offset: u32, data: &[u8], status: Option<u8>) -> Vec<u8> {
    Pdu::new(
        Header::DataIn(DataIn {
            final_bit: status.is_some(),
            ack: false,
            overflow: false,
            underflow: false,
            status,
            lun: 0,
            itt,
            ttt: RESERVED_TAG,
            stat_sn: 101,
            exp_cmd_sn: 6,
            max_cmd_sn: 37,
            data_sn: 0,
            buffer_offset: offset,
            residual: 0,
        }),
        data.to_vec(),
    )
    .emit()
}

#[test]
fn login_then_a_read_split_over_two_data_in_pdus() {
    let mut second = data_in(1, 0, b"abcd", None);
    second.extend(data_in(1, 4, b"efgh", Some(0)));
    let (addr, h) = scripted(vec![login_ok(&[("MaxBurstLength", "8192")]), second]);
    let mut i = Initiator::login(&cfg(addr)).unwrap();
    assert_eq!(i.state.tsih, 7);
    assert_eq!((i.state.cmd_sn, i.state.max_cmd_sn), (5, 36));
    assert_eq!(i.state.exp_stat_sn, 101);
    assert_eq!(i.key("MaxBurstLength"), Some("8192"));
    let r = i.run(0, &[0x12, 0, 0, 0, 8, 0], DataDir::In(8)).unwrap();
    assert_eq!((r.status, r.data.as_slice()), (0, &b"abcdefgh"[..]));
    assert_eq!((r.data_in_pdus, r.longest_segment), (2, 4));
    assert_eq!(i.state.cmd_sn, 6, "a non-immediate command advances CmdSN");
    assert_eq!(i.state.exp_cmd_sn, 6);
    drop(i);
    let got = h.join().unwrap();
    let Header::ScsiCommand(c) = &got[1].header else {
        panic!("{:?}", got[1].header)
    };
    assert_eq!((c.cmd_sn, c.exp_stat_sn, c.edtl), (5, 101, 8));
}

#[test]
fn a_write_answers_its_r2t_with_data_out() {
    let r2t = Pdu::new(
        Header::R2t(R2t {
            lun: 0,
            itt: 1,
            ttt: 0x55,
            stat_sn: 0,
            exp_cmd_sn: 6,
            max_cmd_sn: 37,
            r2t_sn: 0,
            buffer_offset: 0,
            desired_length: 10,
        }),
        Vec::new(),
    )
    .emit();
    let done = Pdu::new(
        Header::ScsiResponse(ScsiResponse {
            overflow: false,
            underflow: false,
            response: 0,
            status: 0,
            itt: 1,
            stat_sn: 101,
            exp_cmd_sn: 6,
            max_cmd_sn: 37,
            exp_data_sn: 0,
            residual: 0,
        }),
        Vec::new(),
    )
    .emit();
    let mut both = r2t;
    both.extend(done);
    // ImmediateData=No: everything goes in answer to the R2T, in
    // segments of the target's MaxRecvDataSegmentLength (declared 4 here
    // for the test; the codec does not police the lower bound).
    let login = login_ok(&[("ImmediateData", "No"), ("MaxRecvDataSegmentLength", "4")]);
    let (addr, h) = scripted(vec![login, both]);
    let mut i = Initiator::login(&cfg(addr).key("ImmediateData", "No")).unwrap();
    let r = i.run(0, &[0x2a; 10], DataDir::Out(b"0123456789")).unwrap();
    assert_eq!(r.status, 0);
    drop(i);
    let got = h.join().unwrap();
    let outs: Vec<_> = got
        .iter()
        .filter_map(|p| match &p.header {
            Header::DataOut(d) => Some((d.ttt, d.buffer_offset, d.final_bit, p.data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        outs,
        vec![
            (0x55, 0, false, b"0123".to_vec()),
            (0x55, 4, false, b"4567".to_vec()),
            (0x55, 8, true, b"89".to_vec()),
        ]
    );
}

#[test]
fn a_refused_login_is_its_status() {
    let mut refusal = login_ok(&[]);
    refusal[36] = 0x02;
    refusal[37] = 0x01;
    let (addr, _h) = scripted(vec![refusal]);
    match Initiator::login(&cfg(addr)) {
        Err(InitiatorError::LoginRefused { class, detail }) => assert_eq!((class, detail), (2, 1)),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn garbage_truncation_and_wrong_opcodes_are_errors() {
    let nop = Pdu::new(
        Header::NopIn(NopIn {
            lun: 0,
            itt: 0,
            ttt: RESERVED_TAG,
            stat_sn: 0,
            exp_cmd_sn: 0,
            max_cmd_sn: 0,
        }),
        Vec::new(),
    )
    .emit();
    let (addr, _h) = scripted(vec![nop]);
    let e = Initiator::login(&cfg(addr)).err().unwrap();
    assert!(matches!(e, InitiatorError::Unexpected { .. }), "{e}");

    let (addr, _h) = scripted(vec![login_ok(&[])[..30].to_vec()]);
    let e = Initiator::login(&cfg(addr)).err().unwrap();
    assert!(matches!(e, InitiatorError::Closed(_)), "{e}");

    let mut garbage = vec![0x3e; BHS_LEN];
    garbage[4] = 0;
    garbage[5..8].copy_from_slice(&[0, 0, 0]);
    let (addr, _h) = scripted(vec![garbage]);
    let e = Initiator::login(&cfg(addr)).err().unwrap();
    assert!(matches!(e, InitiatorError::Pdu(_)), "{e}");

    // A login response whose text is not key=value.
    let mut bad_text = login_ok(&[]);
    bad_text[7] = 4;
    bad_text.extend_from_slice(b"junk");
    let (addr, _h) = scripted(vec![bad_text]);
    let e = Initiator::login(&cfg(addr)).err().unwrap();
    assert!(matches!(e, InitiatorError::Text(_)), "{e}");
}

#[test]
fn data_in_past_the_expected_length_is_refused() {
    let (addr, _h) = scripted(vec![login_ok(&[]), data_in(1, 6, b"abcd", Some(0))]);
    let mut i = Initiator::login(&cfg(addr)).unwrap();
    let e = i
        .run(0, &[0x12, 0, 0, 0, 8, 0], DataDir::In(8))
        .unwrap_err();
    assert!(e.to_string().contains("past the expected 8"), "{e}");
}

#[test]
fn silence_is_a_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // Accepted by the kernel's backlog, never answered.
    let mut c = cfg(addr);
    c.timeout = Duration::from_millis(200);
    let e = Initiator::login(&c).err().unwrap();
    assert!(matches!(e, InitiatorError::Timeout(..)), "{e}");
}

#[test]
fn read_pdu_checks_lengths_before_allocating() {
    let mut huge = vec![0x23u8; BHS_LEN];
    huge[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    let e = read_pdu(&mut Cursor::new(huge), 1 << 20).unwrap_err();
    assert!(
        matches!(e, ReadError::Pdu(PduError::DataTooLong { .. })),
        "{e:?}"
    );
    let e = read_pdu(&mut Cursor::new(vec![0u8; 10]), 1 << 20).unwrap_err();
    assert!(matches!(e, ReadError::Io(_)), "{e:?}");
}

#[test]
fn serial_arithmetic_and_the_window() {
    assert!(sn_lt(1, 2) && !sn_lt(2, 1) && !sn_lt(5, 5));
    assert!(sn_lt(u32::MAX, 0), "wraps");
    assert!(window_open(10, 41));
    assert!(window_open(10, 9), "closed by exactly one: zero commands");
    assert!(!window_open(10, 8));
    assert!(
        window_open(0, u32::MAX),
        "MaxCmdSN = ExpCmdSN - 1 across the wrap"
    );
}

#[test]
fn sense_and_reject_fields_are_bounds_checked() {
    assert_eq!(sense_of(&[]).unwrap(), Vec::<u8>::new());
    assert!(sense_of(&[0]).is_err());
    assert!(sense_of(&[0, 4, 1, 2]).is_err());
    assert_eq!(sense_of(&[0, 2, 0x70, 0, 9]).unwrap(), vec![0x70, 0]);
    assert_eq!(rejected_itt(&[0; 10]), None);
    let mut b = [0u8; 48];
    b[16..20].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(rejected_itt(&b), Some(7));
}

#[test]
fn target_proposals_get_one_value_or_not_understood() {
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    let got = [
        kv("HeaderDigest", "CRC32C,None"),
        kv("MaxBurstLength", "8192"),
        kv("X-vendor.Thing", "1"),
        kv("TargetPortalGroupTag", "1"),
        kv("ImmediateData", "Yes"),
    ];
    let offered = [kv("ImmediateData", "Yes")];
    assert_eq!(
        answer_target_offers(&got, &offered),
        vec![
            kv("HeaderDigest", "None"),
            kv("MaxBurstLength", "8192"),
            kv("X-vendor.Thing", "NotUnderstood"),
        ]
    );
}

#[test]
fn config_key_replaces_an_earlier_offer() {
    let c = Config::new("127.0.0.1:1".parse().unwrap(), "i", "t", 1)
        .with_usual_keys()
        .key("MaxRecvDataSegmentLength", "512");
    let n = c
        .keys
        .iter()
        .filter(|(k, _)| k == "MaxRecvDataSegmentLength")
        .count();
    assert_eq!(n, 1);
    assert!(c
        .keys
        .contains(&("MaxRecvDataSegmentLength".into(), "512".into())));
    assert_eq!(random_isid() >> 46, 0b10, "ISID type: random (11.12.5)");
}

proptest! {
    /// Whatever the network sends, reading a PDU and its sense never panics.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = read_pdu(&mut Cursor::new(&bytes), 1 << 16);
        let _ = sense_of(&bytes);
        let _ = rejected_itt(&bytes);
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// A target that answers the login with arbitrary bytes gets an
    /// error or a session, never a panic.
    #[test]
    fn login_against_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (addr, h) = scripted(vec![bytes]);
        let mut c = cfg(addr);
        c.timeout = Duration::from_millis(100);
        let _ = Initiator::login(&c);
        let _ = h.join();
    }
}
