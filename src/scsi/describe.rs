//! One line per CDB, decoded with the codec (what `trace show` and
//! `replay` print): the command's name and its fields. A CDB the codec
//! cannot decode is shown by its opcode name and bytes; nothing panics.

use super::sbc::{Read10, Read16, ReadCapacity10, Write10, Write16};
use super::spc::{Inquiry, ModeSense6, ReportLuns};
use super::ssc::{Locate10, Read6, Space6, Write6, WriteFilemarks6};
use super::xcopy::{ExtendedCopy, ReceiveCopyResults};
use super::{Cdb, CdbCodec, Opcode};

/// `READ(16) LBA 2048, 8 blocks` and the like; falls back to the opcode
/// and the bytes.
pub fn describe_cdb(bytes: &[u8]) -> String {
    let Ok(cdb) = Cdb::new(bytes) else {
        return format!("invalid CDB of {} bytes", bytes.len());
    };
    fields(&cdb).unwrap_or_else(|| format!("{} [{cdb}]", cdb.opcode()))
}

fn fields(cdb: &Cdb) -> Option<String> {
    block_fields(cdb)
        .or_else(|| stream_fields(cdb))
        .or_else(|| other_fields(cdb))
}

fn mode(fixed: bool) -> &'static str {
    if fixed {
        "fixed"
    } else {
        "variable"
    }
}

/// SBC-4 commands.
fn block_fields(cdb: &Cdb) -> Option<String> {
    let b = cdb.as_bytes();
    let rw = |name: &str, lba: u64, n: u64| format!("{name} LBA {lba}, {n} blocks");
    match cdb.opcode() {
        Opcode::READ_16 => Read16::parse(b)
            .ok()
            .map(|c| rw("READ(16)", c.lba.0, c.blocks as u64)),
        Opcode::WRITE_16 => Write16::parse(b)
            .ok()
            .map(|c| rw("WRITE(16)", c.lba.0, c.blocks as u64)),
        Opcode::READ_10 => Read10::parse(b)
            .ok()
            .map(|c| rw("READ(10)", c.lba.0, c.blocks as u64)),
        Opcode::WRITE_10 => Write10::parse(b)
            .ok()
            .map(|c| rw("WRITE(10)", c.lba.0, c.blocks as u64)),
        Opcode::READ_CAPACITY_10 => ReadCapacity10::parse(b)
            .ok()
            .map(|_| "READ CAPACITY(10)".into()),
        _ => None,
    }
}

/// SSC-4 commands.
fn stream_fields(cdb: &Cdb) -> Option<String> {
    let b = cdb.as_bytes();
    match cdb.opcode() {
        Opcode::READ_6 => Read6::parse(b).ok().map(|c| {
            let sili = if c.sili { ", SILI" } else { "" };
            format!("READ(6) {} {}{sili}", mode(c.fixed), c.length)
        }),
        Opcode::WRITE_6 => Write6::parse(b)
            .ok()
            .map(|c| format!("WRITE(6) {} {}", mode(c.fixed), c.length)),
        Opcode::WRITE_FILEMARKS_6 => WriteFilemarks6::parse(b)
            .ok()
            .map(|c| format!("WRITE FILEMARKS(6) {}", c.count)),
        Opcode::SPACE_6 => Space6::parse(b)
            .ok()
            .map(|c| format!("SPACE(6) {} {}", c.count, c.code)),
        Opcode::LOCATE_10 => Locate10::parse(b)
            .ok()
            .map(|c| format!("LOCATE(10) block {}", c.block)),
        _ => None,
    }
}

/// SPC-4 commands.
fn other_fields(cdb: &Cdb) -> Option<String> {
    let b = cdb.as_bytes();
    match cdb.opcode() {
        Opcode::INQUIRY => Inquiry::parse(b).ok().map(|c| match c.evpd {
            true => format!(
                "INQUIRY VPD page {:02X}h, allocation {}",
                c.page_code, c.alloc_len
            ),
            false => format!("INQUIRY standard, allocation {}", c.alloc_len),
        }),
        Opcode::MODE_SENSE_6 => ModeSense6::parse(b).ok().map(|c| {
            format!(
                "MODE SENSE(6) page {:02X}h, allocation {}",
                c.page_code, c.alloc_len
            )
        }),
        Opcode::REPORT_LUNS => ReportLuns::parse(b)
            .ok()
            .map(|c| format!("REPORT LUNS, allocation {}", c.alloc_len)),
        Opcode::EXTENDED_COPY => ExtendedCopy::parse(b)
            .ok()
            .map(|c| format!("EXTENDED COPY(LID1), parameter list {} bytes", c.param_len)),
        Opcode::RECEIVE_COPY_RESULTS => ReceiveCopyResults::parse(b).ok().map(|c| {
            format!(
                "RECEIVE COPY RESULTS {}, list ID {:#04x}",
                c.action, c.list_id
            )
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::Lba;

    #[test]
    fn decodes_known_and_falls_back() {
        assert_eq!(
            describe_cdb(Read16::new(Lba(2048), 8).to_cdb().as_bytes()),
            "READ(16) LBA 2048, 8 blocks"
        );
        assert_eq!(
            describe_cdb(Read6::variable(1000).to_cdb().as_bytes()),
            "READ(6) variable 1000"
        );
        assert_eq!(
            describe_cdb(&[0x00, 0, 0, 0, 0, 0]),
            "TEST UNIT READY [00 00 00 00 00 00]"
        );
        assert_eq!(describe_cdb(&[]), "invalid CDB of 0 bytes");
        // A short CDB with a known opcode: the codec refuses, the fallback shows it.
        assert_eq!(describe_cdb(&[0x88, 0]), "READ(16) [88 00]");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20)) {
            let _ = describe_cdb(&bytes);
        }
    }
}
