//! iSCSI PDUs (RFC 7143 11): the 48-byte Basic Header Segment, the
//! Additional Header Segments and the data segment with its padding.
//!
//! A pure codec: no I/O. [`Pdu::parse`] checks every length before it
//! touches or allocates anything and never panics; [`Pdu::emit`] writes
//! exactly [`Pdu::buffer_len`] bytes. Digests are not modelled: this target
//! negotiates `HeaderDigest=None` and `DataDigest=None` only.
//!
//! Headers are plain structs, one per opcode (smoltcp's `Repr` shape);
//! opcodes and the code points inside them are open newtypes, so a value
//! this crate does not name still round-trips.

use std::fmt;

use crate::scsi::open_code;

/// Length of the Basic Header Segment (RFC 7143 11.2.1).
pub const BHS_LEN: usize = 48;

/// The largest data segment the 24-bit DataSegmentLength can describe.
pub const MAX_DATA_SEGMENT_FIELD: usize = (1 << 24) - 1;

/// Initiator Task Tag / Target Transfer Tag value meaning "none"
/// (RFC 7143 11.1, 11.18.4).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

open_code! {
    /// iSCSI opcode, BHS byte 0 bits 5..0 (RFC 7143 11.2.1.2).
    IscsiOpcode(u8) {
        NOP_OUT = 0x00 => "NOP-Out",
        SCSI_COMMAND = 0x01 => "SCSI Command",
        TASK_MGMT_REQUEST = 0x02 => "SCSI Task Management Function Request",
        LOGIN_REQUEST = 0x03 => "Login Request",
        TEXT_REQUEST = 0x04 => "Text Request",
        DATA_OUT = 0x05 => "SCSI Data-Out",
        LOGOUT_REQUEST = 0x06 => "Logout Request",
        SNACK_REQUEST = 0x10 => "SNACK Request",
        NOP_IN = 0x20 => "NOP-In",
        SCSI_RESPONSE = 0x21 => "SCSI Response",
        TASK_MGMT_RESPONSE = 0x22 => "SCSI Task Management Function Response",
        LOGIN_RESPONSE = 0x23 => "Login Response",
        TEXT_RESPONSE = 0x24 => "Text Response",
        DATA_IN = 0x25 => "SCSI Data-In",
        LOGOUT_RESPONSE = 0x26 => "Logout Response",
        R2T = 0x31 => "Ready To Transfer",
        ASYNC_MESSAGE = 0x32 => "Asynchronous Message",
        REJECT = 0x3f => "Reject",
    }
}

open_code! {
    /// Task management function (RFC 7143 11.5.1).
    TmfFunction(u8) {
        ABORT_TASK = 1 => "ABORT TASK",
        ABORT_TASK_SET = 2 => "ABORT TASK SET",
        CLEAR_ACA = 3 => "CLEAR ACA",
        CLEAR_TASK_SET = 4 => "CLEAR TASK SET",
        LOGICAL_UNIT_RESET = 5 => "LOGICAL UNIT RESET",
        TARGET_WARM_RESET = 6 => "TARGET WARM RESET",
        TARGET_COLD_RESET = 7 => "TARGET COLD RESET",
        TASK_REASSIGN = 8 => "TASK REASSIGN",
    }
}

open_code! {
    /// Task management response (RFC 7143 11.6.1).
    TmfResponse(u8) {
        FUNCTION_COMPLETE = 0 => "Function complete",
        TASK_DOES_NOT_EXIST = 1 => "Task does not exist",
        LUN_DOES_NOT_EXIST = 2 => "LUN does not exist",
        TASK_STILL_ALLEGIANT = 3 => "Task still allegiant",
        REASSIGNMENT_NOT_SUPPORTED = 4 => "Task allegiance reassignment not supported",
        NOT_SUPPORTED = 5 => "Task management function not supported",
        AUTHORIZATION_FAILED = 6 => "Function authorization failed",
        REJECTED = 255 => "Function rejected",
    }
}

open_code! {
    /// Reject reason (RFC 7143 11.17.1).
    RejectReason(u8) {
        DATA_DIGEST_ERROR = 0x02 => "Data (payload) digest error",
        SNACK_REJECT = 0x03 => "SNACK Reject",
        PROTOCOL_ERROR = 0x04 => "Protocol Error",
        COMMAND_NOT_SUPPORTED = 0x05 => "Command not supported",
        IMMEDIATE_COMMAND_REJECT = 0x06 => "Immediate command reject - too many immediate commands",
        TASK_IN_PROGRESS = 0x07 => "Task in progress",
        INVALID_DATA_ACK = 0x08 => "Invalid data ack",
        INVALID_PDU_FIELD = 0x09 => "Invalid PDU field",
        LONG_OPERATION_REJECT = 0x0a => "Long op reject - out of resources",
        NEGOTIATION_RESET = 0x0b => "Negotiation reset",
        WAITING_FOR_LOGOUT = 0x0c => "Waiting for Logout",
    }
}

/// Why bytes are not a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// Fewer bytes than the BHS or its own length fields need; `need` is
    /// the total length of the PDU as far as it is known.
    #[error("PDU truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// DataSegmentLength beyond what the receiver accepts.
    #[error("data segment of {len} bytes exceeds the limit of {max}")]
    DataTooLong { len: usize, max: usize },
    /// An opcode this codec does not parse (or one only a target sends,
    /// where a request was expected).
    #[error("unsupported opcode {0}")]
    UnknownOpcode(IscsiOpcode),
    /// A field holds a value the PDU cannot have.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Round up to a multiple of 4 (RFC 7143 11.2.3: segments are padded).
pub fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// AHS and data segment lengths from a BHS (without padding): the reader
/// needs them to know how many bytes follow before it allocates anything.
pub fn segment_lengths(bhs: &[u8; BHS_LEN]) -> (usize, usize) {
    let ahs = bhs[4] as usize * 4;
    let data = u24(&bhs[5..8]);
    (ahs, data)
}

/// Bytes on the wire after the BHS: AHS plus padded data segment.
pub fn trailing_len(bhs: &[u8; BHS_LEN]) -> usize {
    let (ahs, data) = segment_lengths(bhs);
    ahs + pad4(data)
}

fn u24(b: &[u8]) -> usize {
    ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize
}

fn u16_at(b: &[u8; BHS_LEN], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8; BHS_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8; BHS_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn put16(b: &mut [u8; BHS_LEN], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8; BHS_LEN], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8; BHS_LEN], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// The 6-byte ISID at BHS bytes 8..14 (RFC 7143 11.12.5), as a u64.
fn isid_at(b: &[u8; BHS_LEN]) -> u64 {
    let mut x = [0u8; 8];
    x[2..].copy_from_slice(&b[8..14]);
    u64::from_be_bytes(x)
}

fn put_isid(b: &mut [u8; BHS_LEN], v: u64) {
    b[8..14].copy_from_slice(&v.to_be_bytes()[2..]);
}

const F_BIT: u8 = 0x80;
const IMMEDIATE_BIT: u8 = 0x40;

/// NOP-Out (RFC 7143 11.18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

/// NOP-In (RFC 7143 11.19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopIn {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// SCSI Command (RFC 7143 11.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    /// No unsolicited Data-Out follows (11.3.1.1).
    pub final_bit: bool,
    pub read: bool,
    pub write: bool,
    /// Task attribute (11.3.1.2), 3 bits.
    pub attr: u8,
    pub lun: u64,
    pub itt: u32,
    /// Expected Data Transfer Length (11.3.4).
    pub edtl: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    /// CDB bytes 0..16; longer CDBs need an AHS (not supported here).
    pub cdb: [u8; 16],
}

/// SCSI Response (RFC 7143 11.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResponse {
    /// Residual overflow (O, 11.4.5.1).
    pub overflow: bool,
    /// Residual underflow (U).
    pub underflow: bool,
    /// iSCSI response code (11.4.3): 0 = command completed at target.
    pub response: u8,
    pub status: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub exp_data_sn: u32,
    pub residual: u32,
}

/// SCSI Task Management Function Request (RFC 7143 11.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    pub immediate: bool,
    pub function: TmfFunction,
    pub lun: u64,
    pub itt: u32,
    /// Referenced Task Tag (11.5.2).
    pub rtt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub ref_cmd_sn: u32,
    pub exp_data_sn: u32,
}

/// SCSI Task Management Function Response (RFC 7143 11.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    pub response: TmfResponse,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// Login Request (RFC 7143 11.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// T: the initiator wants to move to `nsg`.
    pub transit: bool,
    /// C: the text continues in the next PDU.
    pub cont: bool,
    /// Current stage: 0 security, 1 operational (11.12.3).
    pub csg: u8,
    /// Next stage: 0, 1 or 3 (full feature).
    pub nsg: u8,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: u64,
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

/// Login Response (RFC 7143 11.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub cont: bool,
    pub csg: u8,
    pub nsg: u8,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: u64,
    pub tsih: u16,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// 0 success, 1 redirection, 2 initiator error, 3 target error (11.13.5).
    pub status_class: u8,
    pub status_detail: u8,
}

/// Text Request (RFC 7143 11.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_bit: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

/// Text Response (RFC 7143 11.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextResponse {
    pub final_bit: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// SCSI Data-Out (RFC 7143 11.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOut {
    pub final_bit: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
}

/// SCSI Data-In (RFC 7143 11.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataIn {
    pub final_bit: bool,
    /// A: acknowledge requested (ERL > 0 only).
    pub ack: bool,
    pub overflow: bool,
    pub underflow: bool,
    /// S bit set with this status (status phase collapse, 11.7.1).
    pub status: Option<u8>,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
    pub residual: u32,
}

/// Logout Request (RFC 7143 11.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    /// 0 close the session, 1 close the connection, 2 remove the
    /// connection for recovery (11.14.1).
    pub reason: u8,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

/// Logout Response (RFC 7143 11.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    /// 0 closed successfully, 1 CID not found, 2 recovery not supported,
    /// 3 cleanup failed (11.15.1).
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub time2wait: u16,
    pub time2retain: u16,
}

/// Ready To Transfer (RFC 7143 11.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct R2t {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub r2t_sn: u32,
    pub buffer_offset: u32,
    pub desired_length: u32,
}

/// Reject (RFC 7143 11.17); the data segment carries the rejected BHS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
}

/// A BHS, decoded by opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    NopOut(NopOut),
    NopIn(NopIn),
    ScsiCommand(ScsiCommand),
    ScsiResponse(ScsiResponse),
    TaskMgmtRequest(TaskMgmtRequest),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginRequest(LoginRequest),
    LoginResponse(LoginResponse),
    TextRequest(TextRequest),
    TextResponse(TextResponse),
    DataOut(DataOut),
    DataIn(DataIn),
    LogoutRequest(LogoutRequest),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    Reject(Reject),
}

/// One PDU: header, AHS bytes (a multiple of 4) and the data segment
/// (without padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub header: Header,
    pub ahs: Vec<u8>,
    pub data: Vec<u8>,
}

impl Header {
    /// The opcode this header is sent with.
    pub fn opcode(&self) -> IscsiOpcode {
        match self {
            Header::NopOut(_) => IscsiOpcode::NOP_OUT,
            Header::NopIn(_) => IscsiOpcode::NOP_IN,
            Header::ScsiCommand(_) => IscsiOpcode::SCSI_COMMAND,
            Header::ScsiResponse(_) => IscsiOpcode::SCSI_RESPONSE,
            Header::TaskMgmtRequest(_) => IscsiOpcode::TASK_MGMT_REQUEST,
            Header::TaskMgmtResponse(_) => IscsiOpcode::TASK_MGMT_RESPONSE,
            Header::LoginRequest(_) => IscsiOpcode::LOGIN_REQUEST,
            Header::LoginResponse(_) => IscsiOpcode::LOGIN_RESPONSE,
            Header::TextRequest(_) => IscsiOpcode::TEXT_REQUEST,
            Header::TextResponse(_) => IscsiOpcode::TEXT_RESPONSE,
            Header::DataOut(_) => IscsiOpcode::DATA_OUT,
            Header::DataIn(_) => IscsiOpcode::DATA_IN,
            Header::LogoutRequest(_) => IscsiOpcode::LOGOUT_REQUEST,
            Header::LogoutResponse(_) => IscsiOpcode::LOGOUT_RESPONSE,
            Header::R2t(_) => IscsiOpcode::R2T,
            Header::Reject(_) => IscsiOpcode::REJECT,
        }
    }

    /// Decode a BHS. Lengths (bytes 4..8) are the caller's business; see
    /// [`segment_lengths`].
    pub fn parse(b: &[u8; BHS_LEN]) -> Result<Header, PduError> {
        let op = IscsiOpcode(b[0] & 0x3f);
        let imm = b[0] & IMMEDIATE_BIT != 0;
        let f = b[1] & F_BIT != 0;
        for group in [
            Self::parse_control,
            Self::parse_login_text,
            Self::parse_data,
        ] {
            if let Some(h) = group(op, b, imm, f)? {
                return Ok(h);
            }
        }
        Err(PduError::UnknownOpcode(op))
    }

    /// NOP, SCSI Command and Response, task management (RFC 7143 11.2-11.6, 11.18, 11.19).
    fn parse_control(
        op: IscsiOpcode,
        b: &[u8; BHS_LEN],
        imm: bool,
        f: bool,
    ) -> Result<Option<Header>, PduError> {
        Ok(Some(match op {
            IscsiOpcode::NOP_OUT => Header::NopOut(NopOut {
                immediate: imm,
                lun: u64_at(b, 8),
                itt: u32_at(b, 16),
                ttt: u32_at(b, 20),
                cmd_sn: u32_at(b, 24),
                exp_stat_sn: u32_at(b, 28),
            }),
            IscsiOpcode::NOP_IN => Header::NopIn(NopIn {
                lun: u64_at(b, 8),
                itt: u32_at(b, 16),
                ttt: u32_at(b, 20),
                stat_sn: u32_at(b, 24),
                exp_cmd_sn: u32_at(b, 28),
                max_cmd_sn: u32_at(b, 32),
            }),
            IscsiOpcode::SCSI_COMMAND => {
                let mut cdb = [0u8; 16];
                cdb.copy_from_slice(&b[32..48]);
                Header::ScsiCommand(ScsiCommand {
                    immediate: imm,
                    final_bit: f,
                    read: b[1] & 0x40 != 0,
                    write: b[1] & 0x20 != 0,
                    attr: b[1] & 0x07,
                    lun: u64_at(b, 8),
                    itt: u32_at(b, 16),
                    edtl: u32_at(b, 20),
                    cmd_sn: u32_at(b, 24),
                    exp_stat_sn: u32_at(b, 28),
                    cdb,
                })
            }
            IscsiOpcode::SCSI_RESPONSE => {
                // 11.4.5.1: O and U are exclusive.
                if b[1] & 0x06 == 0x06 {
                    return Err(PduError::Invalid("SCSI Response with both O and U set"));
                }
                Header::ScsiResponse(ScsiResponse {
                    overflow: b[1] & 0x04 != 0,
                    underflow: b[1] & 0x02 != 0,
                    response: b[2],
                    status: b[3],
                    itt: u32_at(b, 16),
                    stat_sn: u32_at(b, 24),
                    exp_cmd_sn: u32_at(b, 28),
                    max_cmd_sn: u32_at(b, 32),
                    exp_data_sn: u32_at(b, 36),
                    residual: u32_at(b, 44),
                })
            }
            IscsiOpcode::TASK_MGMT_REQUEST => Header::TaskMgmtRequest(TaskMgmtRequest {
                immediate: imm,
                function: TmfFunction(b[1] & 0x7f),
                lun: u64_at(b, 8),
                itt: u32_at(b, 16),
                rtt: u32_at(b, 20),
                cmd_sn: u32_at(b, 24),
                exp_stat_sn: u32_at(b, 28),
                ref_cmd_sn: u32_at(b, 32),
                exp_data_sn: u32_at(b, 36),
            }),
            IscsiOpcode::TASK_MGMT_RESPONSE => Header::TaskMgmtResponse(TaskMgmtResponse {
                response: TmfResponse(b[2]),
                itt: u32_at(b, 16),
                stat_sn: u32_at(b, 24),
                exp_cmd_sn: u32_at(b, 28),
                max_cmd_sn: u32_at(b, 32),
            }),
            _ => return Ok(None),
        }))
    }

    /// Login and Text requests and responses (RFC 7143 11.10-11.13).
    fn parse_login_text(
        op: IscsiOpcode,
        b: &[u8; BHS_LEN],
        imm: bool,
        f: bool,
    ) -> Result<Option<Header>, PduError> {
        Ok(Some(match op {
            IscsiOpcode::LOGIN_REQUEST => {
                let (transit, cont, csg, nsg) = login_flags(b[1])?;
                Header::LoginRequest(LoginRequest {
                    transit,
                    cont,
                    csg,
                    nsg,
                    version_max: b[2],
                    version_min: b[3],
                    isid: isid_at(b),
                    tsih: u16_at(b, 14),
                    itt: u32_at(b, 16),
                    cid: u16_at(b, 20),
                    cmd_sn: u32_at(b, 24),
                    exp_stat_sn: u32_at(b, 28),
                })
            }
            IscsiOpcode::LOGIN_RESPONSE => {
                let (transit, cont, csg, nsg) = login_flags(b[1])?;
                Header::LoginResponse(LoginResponse {
                    transit,
                    cont,
                    csg,
                    nsg,
                    version_max: b[2],
                    version_active: b[3],
                    isid: isid_at(b),
                    tsih: u16_at(b, 14),
                    itt: u32_at(b, 16),
                    stat_sn: u32_at(b, 24),
                    exp_cmd_sn: u32_at(b, 28),
                    max_cmd_sn: u32_at(b, 32),
                    status_class: b[36],
                    status_detail: b[37],
                })
            }
            IscsiOpcode::TEXT_REQUEST => {
                let cont = b[1] & 0x40 != 0;
                // 11.10.2: F and C must not both be set.
                if f && cont {
                    return Err(PduError::Invalid("Text Request with both F and C set"));
                }
                Header::TextRequest(TextRequest {
                    immediate: imm,
                    final_bit: f,
                    cont,
                    lun: u64_at(b, 8),
                    itt: u32_at(b, 16),
                    ttt: u32_at(b, 20),
                    cmd_sn: u32_at(b, 24),
                    exp_stat_sn: u32_at(b, 28),
                })
            }
            IscsiOpcode::TEXT_RESPONSE => {
                let cont = b[1] & 0x40 != 0;
                if f && cont {
                    return Err(PduError::Invalid("Text Response with both F and C set"));
                }
                Header::TextResponse(TextResponse {
                    final_bit: f,
                    cont,
                    lun: u64_at(b, 8),
                    itt: u32_at(b, 16),
                    ttt: u32_at(b, 20),
                    stat_sn: u32_at(b, 24),
                    exp_cmd_sn: u32_at(b, 28),
                    max_cmd_sn: u32_at(b, 32),
                })
            }
            _ => return Ok(None),
        }))
    }

    /// Data-Out and Data-In, Logout, R2T and Reject (RFC 7143 11.7, 11.8, 11.14, 11.15, 11.17).
    fn parse_data(
        op: IscsiOpcode,
        b: &[u8; BHS_LEN],
        imm: bool,
        f: bool,
    ) -> Result<Option<Header>, PduError> {
        Ok(Some(match op {
            IscsiOpcode::DATA_OUT => Header::DataOut(DataOut {
                final_bit: f,
                lun: u64_at(b, 8),
                itt: u32_at(b, 16),
                ttt: u32_at(b, 20),
                exp_stat_sn: u32_at(b, 28),
                data_sn: u32_at(b, 36),
                buffer_offset: u32_at(b, 40),
            }),
            IscsiOpcode::DATA_IN => {
                let s = b[1] & 0x01 != 0;
                // 11.7.1: S needs F; O and U are exclusive and only with S.
                if s && !f {
                    return Err(PduError::Invalid("Data-In with S but not F"));
                }
                if b[1] & 0x06 == 0x06 {
                    return Err(PduError::Invalid("Data-In with both O and U set"));
                }
                Header::DataIn(DataIn {
                    final_bit: f,
                    ack: b[1] & 0x40 != 0,
                    overflow: b[1] & 0x04 != 0,
                    underflow: b[1] & 0x02 != 0,
                    status: s.then_some(b[3]),
                    lun: u64_at(b, 8),
                    itt: u32_at(b, 16),
                    ttt: u32_at(b, 20),
                    stat_sn: u32_at(b, 24),
                    exp_cmd_sn: u32_at(b, 28),
                    max_cmd_sn: u32_at(b, 32),
                    data_sn: u32_at(b, 36),
                    buffer_offset: u32_at(b, 40),
                    residual: u32_at(b, 44),
                })
            }
            IscsiOpcode::LOGOUT_REQUEST => Header::LogoutRequest(LogoutRequest {
                immediate: imm,
                reason: b[1] & 0x7f,
                itt: u32_at(b, 16),
                cid: u16_at(b, 20),
                cmd_sn: u32_at(b, 24),
                exp_stat_sn: u32_at(b, 28),
            }),
            IscsiOpcode::LOGOUT_RESPONSE => Header::LogoutResponse(LogoutResponse {
                response: b[2],
                itt: u32_at(b, 16),
                stat_sn: u32_at(b, 24),
                exp_cmd_sn: u32_at(b, 28),
                max_cmd_sn: u32_at(b, 32),
                time2wait: u16_at(b, 40),
                time2retain: u16_at(b, 42),
            }),
            IscsiOpcode::R2T => Header::R2t(R2t {
                lun: u64_at(b, 8),
                itt: u32_at(b, 16),
                ttt: u32_at(b, 20),
                stat_sn: u32_at(b, 24),
                exp_cmd_sn: u32_at(b, 28),
                max_cmd_sn: u32_at(b, 32),
                r2t_sn: u32_at(b, 36),
                buffer_offset: u32_at(b, 40),
                desired_length: u32_at(b, 44),
            }),
            IscsiOpcode::REJECT => Header::Reject(Reject {
                reason: RejectReason(b[2]),
                stat_sn: u32_at(b, 24),
                exp_cmd_sn: u32_at(b, 28),
                max_cmd_sn: u32_at(b, 32),
                data_sn: u32_at(b, 36),
            }),
            _ => return Ok(None),
        }))
    }

    /// Encode into a BHS with the given AHS and data segment lengths.
    /// Lengths beyond their fields are the caller's bug; they are cut here
    /// to the field width rather than corrupting neighbouring bytes.
    pub fn to_bhs(&self, ahs_len: usize, data_len: usize) -> [u8; BHS_LEN] {
        let mut b = [0u8; BHS_LEN];
        b[0] = self.opcode().0;
        b[4] = (ahs_len / 4).min(255) as u8;
        let dl = data_len.min(MAX_DATA_SEGMENT_FIELD) as u32;
        b[5..8].copy_from_slice(&dl.to_be_bytes()[1..]);
        let imm = |b: &mut [u8; BHS_LEN], i: bool| {
            if i {
                b[0] |= IMMEDIATE_BIT;
            }
        };
        let fl = |f: bool| if f { F_BIT } else { 0 };
        match self {
            Header::NopOut(h) => {
                imm(&mut b, h.immediate);
                b[1] = F_BIT;
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.ttt);
                put32(&mut b, 24, h.cmd_sn);
                put32(&mut b, 28, h.exp_stat_sn);
            }
            Header::NopIn(h) => {
                b[1] = F_BIT;
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.ttt);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
            }
            Header::ScsiCommand(h) => {
                imm(&mut b, h.immediate);
                b[1] = fl(h.final_bit)
                    | if h.read { 0x40 } else { 0 }
                    | if h.write { 0x20 } else { 0 }
                    | (h.attr & 0x07);
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.edtl);
                put32(&mut b, 24, h.cmd_sn);
                put32(&mut b, 28, h.exp_stat_sn);
                b[32..48].copy_from_slice(&h.cdb);
            }
            Header::ScsiResponse(h) => {
                b[1] =
                    F_BIT | if h.overflow { 0x04 } else { 0 } | if h.underflow { 0x02 } else { 0 };
                b[2] = h.response;
                b[3] = h.status;
                put32(&mut b, 16, h.itt);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
                put32(&mut b, 36, h.exp_data_sn);
                put32(&mut b, 44, h.residual);
            }
            Header::TaskMgmtRequest(h) => {
                imm(&mut b, h.immediate);
                b[1] = F_BIT | (h.function.0 & 0x7f);
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.rtt);
                put32(&mut b, 24, h.cmd_sn);
                put32(&mut b, 28, h.exp_stat_sn);
                put32(&mut b, 32, h.ref_cmd_sn);
                put32(&mut b, 36, h.exp_data_sn);
            }
            Header::TaskMgmtResponse(h) => {
                b[1] = F_BIT;
                b[2] = h.response.0;
                put32(&mut b, 16, h.itt);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
            }
            Header::LoginRequest(h) => {
                // 11.12: the I bit is always 1 on a Login Request.
                b[0] |= IMMEDIATE_BIT;
                b[1] = login_flag_byte(h.transit, h.cont, h.csg, h.nsg);
                b[2] = h.version_max;
                b[3] = h.version_min;
                put_isid(&mut b, h.isid);
                put16(&mut b, 14, h.tsih);
                put32(&mut b, 16, h.itt);
                put16(&mut b, 20, h.cid);
                put32(&mut b, 24, h.cmd_sn);
                put32(&mut b, 28, h.exp_stat_sn);
            }
            Header::LoginResponse(h) => {
                b[1] = login_flag_byte(h.transit, h.cont, h.csg, h.nsg);
                b[2] = h.version_max;
                b[3] = h.version_active;
                put_isid(&mut b, h.isid);
                put16(&mut b, 14, h.tsih);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
                b[36] = h.status_class;
                b[37] = h.status_detail;
            }
            Header::TextRequest(h) => {
                imm(&mut b, h.immediate);
                b[1] = fl(h.final_bit) | if h.cont { 0x40 } else { 0 };
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.ttt);
                put32(&mut b, 24, h.cmd_sn);
                put32(&mut b, 28, h.exp_stat_sn);
            }
            Header::TextResponse(h) => {
                b[1] = fl(h.final_bit) | if h.cont { 0x40 } else { 0 };
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.ttt);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
            }
            Header::DataOut(h) => {
                b[1] = fl(h.final_bit);
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.ttt);
                put32(&mut b, 28, h.exp_stat_sn);
                put32(&mut b, 36, h.data_sn);
                put32(&mut b, 40, h.buffer_offset);
            }
            Header::DataIn(h) => {
                b[1] = fl(h.final_bit || h.status.is_some())
                    | if h.ack { 0x40 } else { 0 }
                    | if h.overflow { 0x04 } else { 0 }
                    | if h.underflow { 0x02 } else { 0 }
                    | if h.status.is_some() { 0x01 } else { 0 };
                b[3] = h.status.unwrap_or(0);
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.ttt);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
                put32(&mut b, 36, h.data_sn);
                put32(&mut b, 40, h.buffer_offset);
                put32(&mut b, 44, h.residual);
            }
            Header::LogoutRequest(h) => {
                imm(&mut b, h.immediate);
                b[1] = F_BIT | (h.reason & 0x7f);
                put32(&mut b, 16, h.itt);
                put16(&mut b, 20, h.cid);
                put32(&mut b, 24, h.cmd_sn);
                put32(&mut b, 28, h.exp_stat_sn);
            }
            Header::LogoutResponse(h) => {
                b[1] = F_BIT;
                b[2] = h.response;
                put32(&mut b, 16, h.itt);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
                put16(&mut b, 40, h.time2wait);
                put16(&mut b, 42, h.time2retain);
            }
            Header::R2t(h) => {
                b[1] = F_BIT;
                put64(&mut b, 8, h.lun);
                put32(&mut b, 16, h.itt);
                put32(&mut b, 20, h.ttt);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
                put32(&mut b, 36, h.r2t_sn);
                put32(&mut b, 40, h.buffer_offset);
                put32(&mut b, 44, h.desired_length);
            }
            Header::Reject(h) => {
                b[1] = F_BIT;
                b[2] = h.reason.0;
                // 11.17: the ITT field is reserved as 0xffffffff.
                put32(&mut b, 16, RESERVED_TAG);
                put32(&mut b, 24, h.stat_sn);
                put32(&mut b, 28, h.exp_cmd_sn);
                put32(&mut b, 32, h.max_cmd_sn);
                put32(&mut b, 36, h.data_sn);
            }
        }
        b
    }
}

/// T, C, CSG, NSG of a login PDU (RFC 7143 11.12.1-11.12.3).
fn login_flags(byte: u8) -> Result<(bool, bool, u8, u8), PduError> {
    let transit = byte & 0x80 != 0;
    let cont = byte & 0x40 != 0;
    if transit && cont {
        // 11.12.2: T and C must not both be set.
        return Err(PduError::Invalid("login PDU with both T and C set"));
    }
    Ok((transit, cont, (byte >> 2) & 0x03, byte & 0x03))
}

fn login_flag_byte(transit: bool, cont: bool, csg: u8, nsg: u8) -> u8 {
    (if transit { 0x80 } else { 0 })
        | (if cont { 0x40 } else { 0 })
        | ((csg & 0x03) << 2)
        | (nsg & 0x03)
}

impl Pdu {
    pub fn new(header: Header, data: Vec<u8>) -> Pdu {
        Pdu {
            header,
            ahs: Vec::new(),
            data,
        }
    }

    /// Decode a BHS plus the bytes that followed it on the wire (AHS and
    /// padded data segment, as [`trailing_len`] counts them).
    pub fn from_parts(
        bhs: &[u8; BHS_LEN],
        trailing: &[u8],
        max_data: usize,
    ) -> Result<Pdu, PduError> {
        // Copy what the PDU holds, and nothing for one refused for its
        // length; [`Pdu::from_owned`] does the checks.
        let (ahs_len, data_len) = segment_lengths(bhs);
        let take = if data_len > max_data {
            0
        } else {
            (ahs_len + pad4(data_len)).min(trailing.len())
        };
        Self::from_owned(bhs, trailing[..take].to_vec(), max_data)
    }

    /// [`Pdu::from_parts`] taking the trailing bytes by value, so the data
    /// segment is not copied (the reader's buffer becomes it).
    pub fn from_owned(
        bhs: &[u8; BHS_LEN],
        mut trailing: Vec<u8>,
        max_data: usize,
    ) -> Result<Pdu, PduError> {
        let (ahs_len, data_len) = segment_lengths(bhs);
        if data_len > max_data {
            return Err(PduError::DataTooLong {
                len: data_len,
                max: max_data,
            });
        }
        let need = ahs_len + pad4(data_len);
        if trailing.len() < need {
            return Err(PduError::Truncated {
                need: BHS_LEN + need,
                have: BHS_LEN + trailing.len(),
            });
        }
        let header = Header::parse(bhs)?;
        let ahs = trailing[..ahs_len].to_vec();
        if ahs_len > 0 {
            trailing.drain(..ahs_len);
        }
        trailing.truncate(data_len);
        Ok(Pdu {
            header,
            ahs,
            data: trailing,
        })
    }

    /// Decode one PDU from the front of `buf`; returns it and the bytes it
    /// took. A data segment longer than `max_data` is an error before
    /// anything is copied.
    pub fn parse(buf: &[u8], max_data: usize) -> Result<(Pdu, usize), PduError> {
        if buf.len() < BHS_LEN {
            return Err(PduError::Truncated {
                need: BHS_LEN,
                have: buf.len(),
            });
        }
        let mut bhs = [0u8; BHS_LEN];
        bhs.copy_from_slice(&buf[..BHS_LEN]);
        let pdu = Pdu::from_parts(&bhs, &buf[BHS_LEN..], max_data)?;
        Ok((pdu, BHS_LEN + trailing_len(&bhs)))
    }

    /// Bytes [`Pdu::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        BHS_LEN + pad4(self.ahs.len()) + pad4(self.data.len())
    }

    /// The BHS alone (for Reject, which echoes it).
    pub fn bhs(&self) -> [u8; BHS_LEN] {
        self.header.to_bhs(pad4(self.ahs.len()), self.data.len())
    }

    /// Encode: BHS, AHS and data, each padded to 4 bytes with zeros.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.extend_from_slice(&self.bhs());
        out.extend_from_slice(&self.ahs);
        out.resize(BHS_LEN + pad4(self.ahs.len()), 0);
        out.extend_from_slice(&self.data);
        out.resize(self.buffer_len(), 0);
        out
    }
}

impl fmt::Display for Pdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} data bytes)",
            self.header.opcode(),
            self.data.len()
        )
    }
}

#[cfg(test)]
mod tests;
