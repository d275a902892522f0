//! The iSCSI suite (RFC 7143): residuals through the run's libiscsi
//! session, and negotiation, the CmdSN window and a lost connection
//! through sessions of the raw initiator (`iscsi_raw`), which sees what
//! libiscsi keeps to itself.

use crate::device::DeviceError;
use crate::scsi::sbc::Read16;
use crate::scsi::spc::Inquiry;
use crate::scsi::{CdbCodec, DeviceType, Lba};
use crate::transport::{Request, Residual};

use super::{iscsi_raw, sent, CheckDef, Finding, Spec, Suite, Target};

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
        check!("iscsi.negotiation.keys", "RFC 7143 6.2 (text negotiation); 13.1, 13.2, 13.10-13.20 (operational keys)", "every usual key answered by the rules: digests from the offered list, MaxBurstLength/FirstBurstLength/MaxOutstandingR2T/ErrorRecoveryLevel/MaxConnections/DefaultTime2Retain at most the offer, DefaultTime2Wait at least, InitialR2T/DataPDUInOrder/DataSequenceInOrder (OR) and ImmediateData (AND) Yes or No, values in range, FirstBurstLength <= MaxBurstLength", iscsi_raw::negotiation),
        check!("iscsi.negotiation.unknown-key", "RFC 7143 6.2.1 (NotUnderstood); 13.5.1 (X- keys)", "X-org.sanmover.Probe=1 offered at login answered NotUnderstood; the login completes and the session answers", iscsi_raw::unknown_key_login),
        check!("iscsi.negotiation.text-unknown-key", "RFC 7143 6.2, 6.2.1 (negotiation in full feature phase); 11.10, 11.11 (Text Request/Response)", "a Text Request with X-org.sanmover.Probe=1 answered NotUnderstood; the session goes on", iscsi_raw::unknown_key_text),
        check!("iscsi.negotiation.mrdsl-honoured", "RFC 7143 13.12 (MaxRecvDataSegmentLength); 11.7 (Data-In)", "with MaxRecvDataSegmentLength=512 declared, a 4 KiB READ arrives in Data-In segments of at most 512 bytes", iscsi_raw::mrdsl_honoured),
        check!("iscsi.cmdsn.window", "RFC 7143 4.2.2.1 (command numbering and acknowledging)", "MaxCmdSN >= ExpCmdSN - 1 in every response; ExpCmdSN advances by one per command", iscsi_raw::cmdsn_window),
        check!("iscsi.cmdsn.outside-window", "RFC 7143 4.2.2.1 (a command outside [ExpCmdSN, MaxCmdSN] is silently ignored)", "no answer to an INQUIRY with CmdSN MaxCmdSN + 1, nor to one with ExpCmdSN - 1; the in-window INQUIRY and ping after each answered, ExpCmdSN advanced by one", iscsi_raw::cmdsn_outside),
        check!("iscsi.cmdsn.immediate", "RFC 7143 4.2.2.1 (immediate delivery); 11.3 (I bit)", "an immediate INQUIRY answered GOOD without advancing ExpCmdSN; the next command uses the same CmdSN", iscsi_raw::cmdsn_immediate),
        check!("iscsi.connection.lost", "RFC 7143 6.3.5 (session reinstatement); 11.12.5 (ISID, TSIH)", "after a connection dropped with a READ outstanding, a login with the same ISID and TSIH 0 is accepted, the new session answers, and nothing of the old task arrives on it", iscsi_raw::connection_lost),
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
