//! The iSCSI suite (RFC 7143): what an initiator built on libiscsi can
//! observe of a session. libiscsi 1.19 keeps the negotiated keys, the
//! CmdSN window and the connection to itself; those checks say so.

use crate::device::DeviceError;
use crate::scsi::sbc::Read16;
use crate::scsi::spc::Inquiry;
use crate::scsi::{CdbCodec, DeviceType, Lba};
use crate::transport::{Request, Residual};

use super::{sent, CheckDef, Finding, Spec, Suite, Target};

macro_rules! check {
    ($id:expr, $cites:expr, $expected:expr, $run:expr) => {
        CheckDef {
            spec: Spec {
                id: $id,
                cites: $cites,
                expected: $expected,
                writes: false,
            },
            run: $run,
        }
    };
}

pub static SUITE: Suite = Suite {
    name: "iscsi",
    applies: |t| t.open_url.starts_with("iscsi://"),
    prepare: None,
    unready: None,
    checks: &[
        check!("iscsi.residual.underflow", "RFC 7143 11.4.5.2 (U bit, Residual Count); SAM-5 5.4.2", "standard INQUIRY with ALLOCATION LENGTH 255: GOOD, residual underflow of 255 minus the bytes sent", underflow),
        check!("iscsi.residual.overflow", "RFC 7143 11.4.5.2 (O bit, Residual Count)", "READ(16) of 2 blocks with an expected transfer length of 1 block: GOOD, residual overflow of one block", overflow),
        check!("iscsi.negotiation.keys", "RFC 7143 13 (login/text keys)", "the negotiated MaxRecvDataSegmentLength, MaxBurstLength, FirstBurstLength, InitialR2T, ImmediateData", negotiation),
        check!("iscsi.cmdsn.window", "RFC 7143 3.2.2.1 (command numbering and acknowledging)", "MaxCmdSN - ExpCmdSN + 1 > 0 on every response", cmdsn),
        check!("iscsi.connection.lost", "RFC 7143 6 (connection failure); 7.1", "a dropped connection ends the outstanding command with an error, never a silent replay", lost),
    ],
};

fn underflow(t: &mut Target) -> Result<Finding, DeviceError> {
    let cdb = Inquiry::standard(255).to_cdb();
    let x = t.send(Request::data_in(cdb, 255))?;
    let sent_len = x.data.len() as u64;
    let ok = x.good() && (sent_len == 255 || x.residual == Residual::Underflow(255 - sent_len));
    Ok(Finding::judge(ok, sent(&cdb), x.summary()))
}

fn overflow(t: &mut Target) -> Result<Finding, DeviceError> {
    if t.inquiry.device_type != DeviceType::DISK {
        return Ok(Finding::unsupported(
            "",
            "",
            "needs a disk LU (a READ of known length)",
        ));
    }
    let cap = crate::device::disk::read_capacity(&mut t.scsi)?;
    let bs = cap.block_size.0 as usize;
    let cdb = Read16::new(Lba(0), 2).to_cdb();
    let x = t.send(Request::data_in(cdb, bs))?;
    let ok = x.good() && x.residual == Residual::Overflow(bs as u64);
    Ok(Finding::judge(
        ok,
        format!("{} with a {bs}-byte buffer", sent(&cdb)),
        x.summary(),
    ))
}

const OPAQUE: &str = "libiscsi 1.19 does not hand the negotiated values to the application";

fn negotiation(_t: &mut Target) -> Result<Finding, DeviceError> {
    Ok(Finding::unsupported(
        "login (libiscsi)",
        "",
        format!("{OPAQUE} (no getter for the operational keys)"),
    ))
}

fn cmdsn(_t: &mut Target) -> Result<Finding, DeviceError> {
    Ok(Finding::unsupported(
        "",
        "",
        format!("{OPAQUE}: CmdSN, ExpCmdSN and MaxCmdSN stay inside libiscsi"),
    ))
}

fn lost(_t: &mut Target) -> Result<Finding, DeviceError> {
    Ok(Finding::unsupported("", "", "libiscsi offers no way to drop one connection of a live session from the initiator; sanmover's own loss handling is tested against tgt killed mid-command (tests/tgt_safety.rs)"))
}
