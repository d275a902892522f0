use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).unwrap()
}

fn bhs(v: &[u8]) -> [u8; BHS_LEN] {
    let mut b = [0u8; BHS_LEN];
    b.copy_from_slice(v);
    b
}

/// READ(10) of 8 blocks at LBA 0x10, LUN 1, EDTL 4096 (RFC 7143 11.3).
const SCSI_READ10: &str =
    "01 c1 00 00 00 000000 0001000000000000 11223344 00001000 00000005 00000007
     28 00 00000010 00 0008 00 000000000000";

#[test]
fn scsi_command_golden() {
    let mut cdb = [0u8; 16];
    cdb[..10].copy_from_slice(&[0x28, 0, 0, 0, 0, 0x10, 0, 0, 8, 0]);
    let h = Header::ScsiCommand(ScsiCommand {
        immediate: false,
        final_bit: true,
        read: true,
        write: false,
        attr: 1,
        lun: 0x0001_0000_0000_0000,
        itt: 0x1122_3344,
        edtl: 4096,
        cmd_sn: 5,
        exp_stat_sn: 7,
        cdb,
    });
    let pdu = Pdu::new(h.clone(), Vec::new());
    assert_eq!(pdu.emit(), hex(SCSI_READ10));
    let (back, used) = Pdu::parse(&hex(SCSI_READ10), 0).unwrap();
    assert_eq!(used, 48);
    assert_eq!(back.header, h);
    assert!(back.data.is_empty());
}

/// WRITE(10) with 5 bytes of immediate data: padded to 8 on the wire.
#[test]
fn data_segment_is_padded() {
    let mut wire = hex(SCSI_READ10);
    wire[1] = 0xa1; // F + W
    wire[5..8].copy_from_slice(&[0, 0, 5]);
    wire.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
    let (pdu, used) = Pdu::parse(&wire, 8192).unwrap();
    assert_eq!(used, 56);
    assert_eq!(pdu.data, vec![1, 2, 3, 4, 5]);
    assert_eq!(pdu.buffer_len(), 56);
    assert_eq!(pdu.emit(), wire);
    // Padding missing: truncated, with the full length reported.
    assert_eq!(
        Pdu::parse(&wire[..53], 8192),
        Err(PduError::Truncated { need: 56, have: 53 })
    );
    // A segment beyond the receiver's limit is refused before copying.
    assert_eq!(
        Pdu::parse(&wire, 4).unwrap_err(),
        PduError::DataTooLong { len: 5, max: 4 }
    );
}

/// Last Data-In with status phase collapse: F, U and S, GOOD, residual 512.
const DATA_IN_LAST: &str =
    "25 83 00 00 00 000200 0000000000000000 11223344 ffffffff 00000009 00000006 00000025
     00000003 00000600 00000200";

#[test]
fn data_in_golden() {
    let h = Header::DataIn(DataIn {
        final_bit: true,
        ack: false,
        overflow: false,
        underflow: true,
        status: Some(0),
        lun: 0,
        itt: 0x1122_3344,
        ttt: RESERVED_TAG,
        stat_sn: 9,
        exp_cmd_sn: 6,
        max_cmd_sn: 0x25,
        data_sn: 3,
        buffer_offset: 0x600,
        residual: 0x200,
    });
    let pdu = Pdu::new(h.clone(), vec![0xab; 512]);
    let wire = pdu.emit();
    assert_eq!(&wire[..48], &hex(DATA_IN_LAST)[..]);
    assert_eq!(wire.len(), 48 + 512);
    assert_eq!(Pdu::parse(&wire, 512).unwrap().0, pdu);
    // S without F is a malformed PDU.
    let mut bad = bhs(&hex(DATA_IN_LAST));
    bad[1] = 0x01;
    assert!(matches!(Header::parse(&bad), Err(PduError::Invalid(_))));
}

/// Login Request: T, CSG=1 (operational), NSG=3 (full feature), ISID
/// 0x23d000000001, CID 0, 10 bytes of text.
const LOGIN_REQ: &str =
    "43 87 00 00 00 00000a 23d000000001 0000 00000001 0000 0000 00000000 00000000
     00000000 00000000 00000000 00000000";

#[test]
fn login_request_golden() {
    let h = Header::LoginRequest(LoginRequest {
        transit: true,
        cont: false,
        csg: 1,
        nsg: 3,
        version_max: 0,
        version_min: 0,
        isid: 0x23d0_0000_0001,
        tsih: 0,
        itt: 1,
        cid: 0,
        cmd_sn: 0,
        exp_stat_sn: 0,
    });
    let pdu = Pdu::new(h.clone(), b"ErrorRecov".to_vec());
    let wire = pdu.emit();
    assert_eq!(&wire[..48], &hex(LOGIN_REQ)[..]);
    assert_eq!(&wire[48..], b"ErrorRecov\0\0");
    assert_eq!(Pdu::parse(&wire, 8192).unwrap().0, pdu);
    // T and C together are refused (RFC 7143 11.12.2).
    let mut bad = bhs(&hex(LOGIN_REQ));
    bad[1] = 0xc7;
    assert!(Header::parse(&bad).is_err());
}

/// Login Response refusing an initiator: status 02/02.
const LOGIN_RESP_REFUSED: &str =
    "23 00 00 00 00 000000 23d000000001 0000 00000001 00000000 00000010
     00000000 00000020 0202 0000 00000000 00000000";

#[test]
fn login_response_golden() {
    let h = Header::LoginResponse(LoginResponse {
        transit: false,
        cont: false,
        csg: 0,
        nsg: 0,
        version_max: 0,
        version_active: 0,
        isid: 0x23d0_0000_0001,
        tsih: 0,
        itt: 1,
        stat_sn: 0x10,
        exp_cmd_sn: 0,
        max_cmd_sn: 0x20,
        status_class: 2,
        status_detail: 2,
    });
    let pdu = Pdu::new(h.clone(), Vec::new());
    assert_eq!(pdu.emit(), hex(LOGIN_RESP_REFUSED));
    assert_eq!(Pdu::parse(&hex(LOGIN_RESP_REFUSED), 0).unwrap().0, pdu);
}

/// R2T for 64 KiB at offset 64 KiB, R2TSN 1.
const R2T_GOLDEN: &str =
    "31 80 00 00 00 000000 0000000000000000 00000007 00000042 00000003 00000008 00000027
     00000001 00010000 00010000";

#[test]
fn r2t_golden() {
    let h = Header::R2t(R2t {
        lun: 0,
        itt: 7,
        ttt: 0x42,
        stat_sn: 3,
        exp_cmd_sn: 8,
        max_cmd_sn: 0x27,
        r2t_sn: 1,
        buffer_offset: 0x10000,
        desired_length: 0x10000,
    });
    assert_eq!(Pdu::new(h.clone(), Vec::new()).emit(), hex(R2T_GOLDEN));
    assert_eq!(Header::parse(&bhs(&hex(R2T_GOLDEN))).unwrap(), h);
}

/// SCSI Response with 18 bytes of sense: SenseLength + sense as data.
const SCSI_RESP_CHECK: &str =
    "21 80 00 02 00 000014 0000000000000000 00000009 00000000 00000004 00000006 00000025
     00000000 00000000 00000000";

#[test]
fn scsi_response_golden() {
    let h = Header::ScsiResponse(ScsiResponse {
        overflow: false,
        underflow: false,
        response: 0,
        status: 2,
        itt: 9,
        stat_sn: 4,
        exp_cmd_sn: 6,
        max_cmd_sn: 0x25,
        exp_data_sn: 0,
        residual: 0,
    });
    let mut data = vec![0, 18];
    data.extend_from_slice(&[0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x25, 0, 0, 0, 0, 0]);
    let pdu = Pdu::new(h, data);
    let wire = pdu.emit();
    assert_eq!(&wire[..48], &hex(SCSI_RESP_CHECK)[..]);
    assert_eq!(wire.len(), 48 + 20);
    assert_eq!(Pdu::parse(&wire, 8192).unwrap().0, pdu);
}

#[test]
fn nop_tmf_text_logout_reject_golden() {
    // NOP-Out ping, immediate, ITT 0x10, TTT reserved, CmdSN 3.
    let nop = "40 80 00 00 00 000000 0000000000000000 00000010 ffffffff 00000003 00000002
         00000000 00000000 00000000 00000000";
    let h = Header::NopOut(NopOut {
        immediate: true,
        lun: 0,
        itt: 0x10,
        ttt: RESERVED_TAG,
        cmd_sn: 3,
        exp_stat_sn: 2,
    });
    assert_eq!(Pdu::new(h.clone(), Vec::new()).emit(), hex(nop));
    assert_eq!(Header::parse(&bhs(&hex(nop))).unwrap(), h);

    // ABORT TASK of ITT 5, RefCmdSN 4.
    let tmf = "42 81 00 00 00 000000 0000000000000000 00000011 00000005 00000006 00000002
         00000004 00000000 00000000 00000000";
    let h = Header::TaskMgmtRequest(TaskMgmtRequest {
        immediate: true,
        function: TmfFunction::ABORT_TASK,
        lun: 0,
        itt: 0x11,
        rtt: 5,
        cmd_sn: 6,
        exp_stat_sn: 2,
        ref_cmd_sn: 4,
        exp_data_sn: 0,
    });
    assert_eq!(Pdu::new(h.clone(), Vec::new()).emit(), hex(tmf));
    assert_eq!(Header::parse(&bhs(&hex(tmf))).unwrap(), h);

    // Text Request SendTargets=All (F set, TTT reserved).
    let text = "04 80 00 00 00 000010 0000000000000000 00000001 ffffffff 00000001 00000001
         00000000 00000000 00000000 00000000";
    let h = Header::TextRequest(TextRequest {
        immediate: false,
        final_bit: true,
        cont: false,
        lun: 0,
        itt: 1,
        ttt: RESERVED_TAG,
        cmd_sn: 1,
        exp_stat_sn: 1,
    });
    let pdu = Pdu::new(h.clone(), b"SendTargets=All\0".to_vec());
    let wire = pdu.emit();
    assert_eq!(&wire[..48], &hex(text)[..]);
    assert_eq!(Pdu::parse(&wire, 16).unwrap().0, pdu);

    // Logout close-session and its response with Time2Wait 2.
    let logout = "46 80 00 00 00 000000 0000000000000000 00000020 0000 0000 00000009 00000005
         00000000 00000000 00000000 00000000";
    let h = Header::LogoutRequest(LogoutRequest {
        immediate: true,
        reason: 0,
        itt: 0x20,
        cid: 0,
        cmd_sn: 9,
        exp_stat_sn: 5,
    });
    assert_eq!(Pdu::new(h.clone(), Vec::new()).emit(), hex(logout));
    assert_eq!(Header::parse(&bhs(&hex(logout))).unwrap(), h);
    let resp = "26 80 00 00 00 000000 0000000000000000 00000020 00000000 00000005 0000000a
         00000029 00000000 0002 0000 00000000";
    let h = Header::LogoutResponse(LogoutResponse {
        response: 0,
        itt: 0x20,
        stat_sn: 5,
        exp_cmd_sn: 10,
        max_cmd_sn: 0x29,
        time2wait: 2,
        time2retain: 0,
    });
    assert_eq!(Pdu::new(h.clone(), Vec::new()).emit(), hex(resp));
    assert_eq!(Header::parse(&bhs(&hex(resp))).unwrap(), h);

    // Reject (protocol error) echoing a 48-byte header.
    let h = Header::Reject(Reject {
        reason: RejectReason::PROTOCOL_ERROR,
        stat_sn: 5,
        exp_cmd_sn: 10,
        max_cmd_sn: 0x29,
        data_sn: 0,
    });
    let wire = Pdu::new(h.clone(), hex(logout)).emit();
    assert_eq!(&wire[..8], &[0x3f, 0x80, 0x04, 0, 0, 0, 0, 48]);
    assert_eq!(&wire[16..20], &[0xff; 4]);
    assert_eq!(Pdu::parse(&wire, 48).unwrap().0.header, h);
}

#[test]
fn unknown_and_truncated() {
    let mut b = [0u8; BHS_LEN];
    b[0] = 0x3e;
    assert_eq!(
        Header::parse(&b),
        Err(PduError::UnknownOpcode(IscsiOpcode(0x3e)))
    );
    assert_eq!(
        Pdu::parse(&b[..47], 0),
        Err(PduError::Truncated { need: 48, have: 47 })
    );
    // AHS length counts too: 2 words announced, none present.
    b[0] = 0x00;
    b[4] = 2;
    assert_eq!(
        Pdu::parse(&b, 0),
        Err(PduError::Truncated { need: 56, have: 48 })
    );
    assert_eq!(segment_lengths(&b), (8, 0));
    assert_eq!(trailing_len(&b), 8);
}

proptest! {
    /// Both ways of decoding the trailing bytes agree.
    #[test]
    fn owned_and_borrowed_agree(raw in proptest::collection::vec(any::<u8>(), BHS_LEN..300), max in 0usize..300) {
        let b = bhs(&raw[..BHS_LEN]);
        let rest = &raw[BHS_LEN..];
        prop_assert_eq!(
            Pdu::from_owned(&b, rest.to_vec(), max),
            Pdu::from_parts(&b, rest, max)
        );
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), max in 0usize..100) {
        let _ = Pdu::parse(&bytes, max);
    }

    /// What parses re-encodes to a header that parses to the same value.
    #[test]
    fn header_round_trip(raw in proptest::collection::vec(any::<u8>(), BHS_LEN)) {
        let b = bhs(&raw);
        if let Ok(h) = Header::parse(&b) {
            let again = h.to_bhs(0, 0);
            prop_assert_eq!(Header::parse(&again), Ok(h));
        }
    }

    #[test]
    fn pdu_round_trip(raw in proptest::collection::vec(any::<u8>(), BHS_LEN),
                      data in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(h) = Header::parse(&bhs(&raw)) {
            let pdu = Pdu::new(h, data);
            let wire = pdu.emit();
            prop_assert_eq!(wire.len(), pdu.buffer_len());
            let (back, used) = Pdu::parse(&wire, 64).unwrap();
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(back, pdu);
        }
    }
}
