//! A disk held in memory (SBC-4): the router's scratch disk, and the disk
//! of every engine test.

use crate::scsi::sbc::{
    Capacity10, Capacity16, Read10, Read16, SynchronizeCache10, SynchronizeCache16, Write10,
    Write16,
};
use crate::scsi::sense::{Asc, Sense, SenseKey, SenseKeySpecific};
use crate::scsi::{CdbCodec, DeviceType, Opcode, Wire};

use super::{reply, Completion, Identity, LogicalUnit};

/// A disk held in memory.
#[derive(Debug, Clone)]
pub struct MemDisk {
    id: Identity,
    block_size: u32,
    data: Vec<u8>,
    /// Bytes read and written, for tests that count traffic.
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl MemDisk {
    pub fn new(serial: &str, blocks: u64, block_size: u32) -> Self {
        MemDisk {
            id: Identity::new(DeviceType::DISK, "MEMORY DISK", serial),
            block_size,
            data: vec![0; (blocks * block_size as u64) as usize],
            bytes_read: 0,
            bytes_written: 0,
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    fn blocks(&self) -> u64 {
        self.data.len() as u64 / self.block_size as u64
    }

    /// The byte range of an I/O, or the sense that refuses it.
    fn range(&self, lba: u64, blocks: u64) -> Result<std::ops::Range<usize>, Completion> {
        match lba.checked_add(blocks) {
            Some(end) if end <= self.blocks() => {
                let bs = self.block_size as usize;
                Ok(lba as usize * bs..end as usize * bs)
            }
            _ => Err(Completion::illegal(Asc::LBA_OUT_OF_RANGE)),
        }
    }

    fn read(&mut self, lba: u64, blocks: u64, data_in: &mut [u8]) -> Completion {
        match self.range(lba, blocks) {
            Err(c) => c,
            Ok(r) => {
                self.bytes_read += r.len() as u64;
                let bytes = &self.data[r];
                let n = bytes.len().min(data_in.len());
                data_in[..n].copy_from_slice(&bytes[..n]);
                Completion::good(n)
            }
        }
    }

    fn write(&mut self, lba: u64, blocks: u64, data_out: &[u8]) -> Completion {
        match self.range(lba, blocks) {
            Err(c) => c,
            Ok(r) if data_out.len() < r.len() => {
                Completion::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR)
            }
            Ok(r) => {
                self.bytes_written += r.len() as u64;
                let n = r.len();
                self.data[r].copy_from_slice(&data_out[..n]);
                Completion::good(0)
            }
        }
    }
}

/// Block Limits VPD page code (SBC-3 6.6.3).
pub(super) const BLOCK_LIMITS_VPD: u8 = 0xb0;
/// Block Device Characteristics VPD page code (SBC-3 6.6.2).
pub(super) const BLOCK_CHARACTERISTICS_VPD: u8 = 0xb1;

/// Big-endian field of a CDB (the caller checked the CDB length).
fn cdb_field(cdb: &[u8], r: std::ops::Range<usize>) -> u64 {
    cdb[r].iter().fold(0u64, |a, &b| (a << 8) | b as u64)
}

impl MemDisk {
    /// The disk-only VPD pages: Block Limits in its short SBC-2 form (no
    /// SBC-3 version descriptor is claimed) and Block Device
    /// Characteristics (non-rotating). Units built on a MemDisk (the
    /// router's copy manager) answer them through this too.
    pub(crate) fn disk_vpd(&self, page: u8) -> Option<Vec<u8>> {
        let dt = self.id.device_type.0;
        match page {
            BLOCK_LIMITS_VPD => {
                // MAXIMUM TRANSFER LENGTH in blocks: the 64 MiB a command
                // may move. Cut to the first 16 bytes (PAGE LENGTH 0Ch).
                let mut b = crate::scsi::spc::BlockLimitsVpd {
                    max_transfer_length: (64u32 << 20) / self.block_size.max(1),
                    ..Default::default()
                }
                .to_vec();
                b[0] = dt;
                b.truncate(16);
                b[3] = 0x0c;
                Some(b)
            }
            BLOCK_CHARACTERISTICS_VPD => {
                let mut p = vec![0u8; 64];
                p[0] = dt;
                p[1] = page;
                p[3] = 0x3c;
                // MEDIUM ROTATION RATE 0001h: non-rotating medium.
                p[5] = 0x01;
                Some(p)
            }
            _ => None,
        }
    }

    /// WRITE AND VERIFY(10/12/16) (SBC-3 5.41-5.43). BYTCHK 00b (verify
    /// the medium) and 01b (compare with the Data-Out buffer) both hold
    /// trivially for memory once written; other BYTCHK values are refused.
    fn write_verify(&mut self, cdb: &[u8], data_out: &[u8]) -> Completion {
        let (need, lba, len) = match cdb[0] {
            0x2e => (10, 2..6, 7..9),
            0xae => (12, 2..6, 6..10),
            _ => (16, 2..10, 10..14),
        };
        if cdb.len() < need {
            return Completion::bad_field(0);
        }
        if cdb[1] & 0x06 > 0x02 {
            return Completion::bad_field(1);
        }
        self.write(cdb_field(cdb, lba), cdb_field(cdb, len), data_out)
    }
}

/// SBC-3 4.22.1: no protection information here (PROTECT=0), so a
/// non-zero RDPROTECT or WRPROTECT (byte 1, bits 7..5, of READ, WRITE and
/// WRITE AND VERIFY 10/12/16) is INVALID FIELD IN CDB. DPO and FUA are
/// honoured trivially (memory is the medium; MODE SENSE says DPOFUA=1).
fn protect_refusal(cdb: &[u8]) -> Option<Completion> {
    let op = *cdb.first()?;
    let has_field = matches!(
        op,
        0x28 | 0xa8 | 0x88 | 0x2a | 0xaa | 0x8a | 0x2e | 0xae | 0x8e
    );
    if !has_field || cdb.len() < 10 || cdb[1] & 0xe0 == 0 {
        return None;
    }
    let sks = SenseKeySpecific::FieldPointer {
        cd: true,
        bpv: true,
        bit: 7,
        field: 1,
    };
    Some(Completion::check(
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB).with_sks(sks),
    ))
}

impl LogicalUnit for MemDisk {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        if let Some(c) = protect_refusal(cdb) {
            return c;
        }
        // SPC-4 6.6: INQUIRY, EVPD set, a disk-only page.
        if cdb.len() >= 6 && cdb[0] == Opcode::INQUIRY.0 && cdb[1] & 0x01 != 0 {
            if let Some(p) = self.disk_vpd(cdb[2]) {
                return reply(data_in, &p);
            }
        }
        if let Some(c) = self.id.common(cdb, data_in) {
            return c;
        }
        let op = Opcode(cdb[0]);
        if let Some(c) = self.data_command(op, cdb, data_out, data_in) {
            return c;
        }
        self.info_command(op, cdb, data_in)
            .unwrap_or_else(|| Completion::illegal(Asc::INVALID_OPCODE))
    }
}

impl MemDisk {
    /// READ, WRITE, WRITE AND VERIFY and SYNCHRONIZE CACHE (SBC-3 5).
    fn data_command(
        &mut self,
        op: Opcode,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> Option<Completion> {
        let bad = |_| Completion::bad_field(0);
        Some(match op {
            // READ(12), WRITE(12) (SBC-3 5.14, 5.36).
            Opcode(0xa8) | Opcode(0xaa) if cdb.len() >= 12 => {
                let (lba, n) = (cdb_field(cdb, 2..6), cdb_field(cdb, 6..10));
                if op.0 == 0xa8 {
                    self.read(lba, n, data_in)
                } else {
                    self.write(lba, n, data_out)
                }
            }
            Opcode(0x2e) | Opcode(0xae) | Opcode(0x8e) => self.write_verify(cdb, data_out),
            Opcode::READ_10 => match Read10::parse(cdb) {
                Ok(c) => self.read(c.lba.0, c.blocks as u64, data_in),
                Err(e) => bad(e),
            },
            Opcode::READ_16 => match Read16::parse(cdb) {
                Ok(c) => self.read(c.lba.0, c.blocks as u64, data_in),
                Err(e) => bad(e),
            },
            Opcode::WRITE_10 => match Write10::parse(cdb) {
                Ok(c) => self.write(c.lba.0, c.blocks as u64, data_out),
                Err(e) => bad(e),
            },
            Opcode::WRITE_16 => match Write16::parse(cdb) {
                Ok(c) => self.write(c.lba.0, c.blocks as u64, data_out),
                Err(e) => bad(e),
            },
            Opcode::SYNCHRONIZE_CACHE_10 => match SynchronizeCache10::parse(cdb) {
                Ok(_) => Completion::good(0),
                Err(e) => bad(e),
            },
            Opcode::SYNCHRONIZE_CACHE_16 => match SynchronizeCache16::parse(cdb) {
                Ok(_) => Completion::good(0),
                Err(e) => bad(e),
            },
            _ => return None,
        })
    }

    /// PERSISTENT RESERVE IN, MODE SENSE(6) and READ CAPACITY.
    fn info_command(&mut self, op: Opcode, cdb: &[u8], data_in: &mut [u8]) -> Option<Completion> {
        Some(match op {
            // PERSISTENT RESERVE IN (SPC-4 6.15): no keys, no reservation.
            Opcode::PERSISTENT_RESERVE_IN if cdb.len() >= 10 => match cdb[1] & 0x1f {
                // READ KEYS, READ RESERVATION, READ FULL STATUS: PRGENERATION
                // 0 and nothing listed (6.15.2, 6.15.3, 6.15.5).
                0x00 | 0x01 | 0x03 => reply(data_in, &[0u8; 8]),
                // REPORT CAPABILITIES (6.15.4): LENGTH 8, no capability,
                // TYPE MASK not valid.
                0x02 => reply(data_in, &[0, 8, 0, 0, 0, 0, 0, 0]),
                _ => Completion::bad_field(1),
            },
            // MODE SENSE(6) (SPC-4 6.11): the Control mode page only
            // (SPC-4 7.5.8), defaults, no block descriptor.
            Opcode::MODE_SENSE_6 if cdb.len() >= 6 => match cdb[2] & 0x3f {
                0x0a | 0x3f => {
                    let mut p = vec![0u8; 4 + 12];
                    p[0] = (p.len() - 1) as u8;
                    // SBC-3 6.4.1: DPOFUA, DPO and FUA are supported.
                    p[2] = 0x10;
                    p[4] = 0x0a;
                    p[5] = 0x0a;
                    // TAS (SPC-4 7.5.8): commands aborted by another I_T
                    // nexus end with TASK ABORTED status.
                    p[9] = 0x40;
                    reply(data_in, &p)
                }
                _ => Completion::bad_field(2),
            },
            Opcode::READ_CAPACITY_10 => {
                let last = self.blocks().saturating_sub(1).min(u32::MAX as u64) as u32;
                reply(
                    data_in,
                    &Capacity10 {
                        last_lba: last,
                        block_len: self.block_size,
                    }
                    .to_vec(),
                )
            }
            Opcode::SERVICE_ACTION_IN_16 if cdb.get(1).map(|b| b & 0x1f) == Some(0x10) => reply(
                data_in,
                &Capacity16 {
                    last_lba: self.blocks().saturating_sub(1),
                    block_len: self.block_size,
                    p_type: 0,
                    prot_en: false,
                    p_i_exponent: 0,
                    lbppbe: 0,
                    lbpme: false,
                    lbprz: false,
                    lowest_aligned_lba: 0,
                }
                .to_vec(),
            ),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lu::MemTape;
    use crate::scsi::Status;

    fn run(d: &mut MemDisk, cdb: &[u8], out: &[u8], alloc: usize) -> (Completion, Vec<u8>) {
        let mut buf = vec![0u8; alloc];
        let c = d.execute(cdb, out, &mut buf);
        buf.truncate(c.data_in_len);
        (c, buf)
    }

    #[test]
    fn read_write_12_and_write_and_verify() {
        let mut d = MemDisk::new("D", 64, 512);
        let data = vec![0x5a; 1024];
        // WRITE(12) of 2 blocks at LBA 3, READ(12) back.
        let w12 = [0xaa, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0];
        assert_eq!(run(&mut d, &w12, &data, 0).0, Completion::good(0));
        let r12 = [0xa8, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0];
        assert_eq!(run(&mut d, &r12, &[], 1024).1, data);
        // WRITE AND VERIFY(10), BYTCHK 01b: written.
        let wv10 = [0x2e, 0x02, 0, 0, 0, 10, 0, 0, 1, 0];
        assert_eq!(run(&mut d, &wv10, &[7; 512], 0).0.status, Status::GOOD);
        assert_eq!(&d.data()[10 * 512..11 * 512], &[7; 512][..]);
        // BYTCHK 11b is refused; WRITE AND VERIFY(16) past the end too.
        let wv10_bad = [0x2e, 0x06, 0, 0, 0, 10, 0, 0, 1, 0];
        assert_eq!(
            run(&mut d, &wv10_bad, &[7; 512], 0).0.status,
            Status::CHECK_CONDITION
        );
        let mut wv16 = [0u8; 16];
        wv16[0] = 0x8e;
        wv16[9] = 64;
        wv16[13] = 1;
        let (c, _) = run(&mut d, &wv16, &[0; 512], 0);
        assert_eq!(Sense::parse(&c.sense).unwrap().asc, Asc::LBA_OUT_OF_RANGE);
    }

    /// No protection information: RDPROTECT/WRPROTECT refused; DPO and
    /// FUA taken, as MODE SENSE's DPOFUA says; PR IN's four actions.
    #[test]
    fn protect_fields_dpo_fua_and_pr_in_actions() {
        let mut d = MemDisk::new("D", 64, 512);
        for op in [0x28u8, 0x2a, 0x2e] {
            let mut cdb = [op, 0x20, 0, 0, 0, 1, 0, 0, 1, 0];
            let (c, _) = run(&mut d, &cdb, &[0; 512], 512);
            let s = Sense::parse(&c.sense).unwrap();
            assert_eq!(
                (s.key, s.asc),
                (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
            );
            cdb[1] = 0x10; // DPO
            assert_eq!(
                run(&mut d, &cdb, &[0; 512], 512).0.status,
                Status::GOOD,
                "{op:x}"
            );
        }
        let (_, ms) = run(&mut d, &[0x1a, 0, 0x0a, 0, 255, 0], &[], 255);
        assert_eq!(ms[2] & 0x10, 0x10, "DPOFUA");
        assert_eq!(ms[4 + 5] & 0x40, 0x40, "TAS");
        for sa in 0..4u8 {
            let cdb = [0x5e, sa, 0, 0, 0, 0, 0, 0, 8, 0];
            assert_eq!(run(&mut d, &cdb, &[], 8).0.status, Status::GOOD, "SA {sa}");
        }
        let cdb = [0x5e, 4, 0, 0, 0, 0, 0, 0, 8, 0];
        assert_eq!(run(&mut d, &cdb, &[], 8).0.status, Status::CHECK_CONDITION);
    }

    #[test]
    fn disk_vpd_pages_mode_sense_and_pr_in() {
        let mut d = MemDisk::new("D", 64, 512);
        let (_, pages) = run(&mut d, &[0x12, 1, 0x00, 0, 255, 0], &[], 255);
        assert_eq!(pages, vec![0, 0, 0, 5, 0x00, 0x80, 0x83, 0xb0, 0xb1]);
        let (_, bl) = run(&mut d, &[0x12, 1, 0xb0, 0, 255, 0], &[], 255);
        // SBC-2's 16-byte page (PAGE LENGTH 0Ch): 64 MiB / 512 = 0x20000
        // blocks of MAXIMUM TRANSFER LENGTH, no OPTIMAL TRANSFER LENGTH.
        assert_eq!(
            bl,
            vec![0, 0xb0, 0, 0x0c, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]
        );
        let (_, bdc) = run(&mut d, &[0x12, 1, 0xb1, 0, 255, 0], &[], 255);
        assert_eq!((bdc.len(), &bdc[..6]), (64, &[0, 0xb1, 0, 0x3c, 0, 1][..]));
        let (_, ms) = run(&mut d, &[0x1a, 0, 0x3f, 0, 255, 0], &[], 255);
        assert_eq!(&ms[..6], &[15, 0, 0x10, 0, 0x0a, 0x0a]);
        assert_eq!(ms.len(), 16);
        let (c, _) = run(&mut d, &[0x1a, 0, 0x08, 0, 255, 0], &[], 255);
        assert_eq!(c.status, Status::CHECK_CONDITION);
        let (_, keys) = run(&mut d, &[0x5e, 0, 0, 0, 0, 0, 0, 0, 8, 0], &[], 8);
        assert_eq!(keys, vec![0; 8]);
        // A tape lists no block pages, and its own B0h (SSC-4 8.4.2).
        let mut t = MemTape::new("T", 1 << 20);
        let mut buf = vec![0u8; 255];
        let c = t.execute(&[0x12, 1, 0x00, 0, 255, 0], &[], &mut buf);
        assert_eq!(&buf[3..c.data_in_len], &[4, 0x00, 0x80, 0x83, 0xb0]);
    }
}
