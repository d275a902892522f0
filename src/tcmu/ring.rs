//! The TCMU shared-memory ABI (`linux/target_core_user.h`, mailbox
//! version 2): the mailbox, the command ring and its entries, read and
//! written through [`RingMem`] so the same code runs over the kernel's
//! mapping and over a plain buffer in tests. Pure: no system calls.
//!
//! Layout (x86_64, checked against the kernel header by
//! `tests::offsets_match_the_kernel_header` where the header exists):
//! mailbox 128 bytes (version u16 @0, flags u16 @2, cmdr_off u32 @4,
//! cmdr_size u32 @8, cmd_head u32 @12, cmd_tail u32 @64); entry header
//! 8 bytes (len_op u32 @0, cmd_id u16 @4, kflags u8 @6, uflags u8 @7);
//! request: iov_cnt @8, iov_bidi_cnt @12, iov_dif_cnt @16, cdb_off u64 @24,
//! iovecs (base offset u64, length u64) from @48; response: scsi_status
//! u8 @8, read_len u32 @12, sense 96 bytes @16.

use thiserror::Error;

pub const MAILBOX_VERSION: u16 = 2;
/// Mailbox flag: the kernel honours `read_len` (TCMU_MAILBOX_FLAG_CAP_READ_LEN).
pub const CAP_READ_LEN: u16 = 1 << 1;
pub const SENSE_BUFFERSIZE: usize = 96;

const MB_VERSION: usize = 0;
const MB_FLAGS: usize = 2;
const MB_CMDR_OFF: usize = 4;
const MB_CMDR_SIZE: usize = 8;
const MB_CMD_HEAD: usize = 12;
const MB_CMD_TAIL: usize = 64;

const OP_PAD: u32 = 0;
const OP_CMD: u32 = 1;
const OP_TMR: u32 = 2;
const OP_MASK: u32 = 0x7;

const UFLAG_UNKNOWN_OP: u8 = 0x1;
const UFLAG_READ_LEN: u8 = 0x2;

const E_UFLAGS: usize = 7;
const E_IOV_CNT: usize = 8;
const E_BIDI_CNT: usize = 12;
const E_CDB_OFF: usize = 24;
const E_IOV: usize = 48;
const E_STATUS: usize = 8;
const E_READ_LEN: usize = 12;
const E_SENSE: usize = 16;
/// The smallest entry that can carry a response (header + rsp).
const RSP_END: usize = E_SENSE + SENSE_BUFFERSIZE;

/// Shared memory as the ring sees it: bounds-checked reads and writes.
/// The kernel's mapping changes under us, so there are no borrowed
/// slices, only copies.
pub trait RingMem {
    fn map_len(&self) -> usize;
    /// Copy `out.len()` bytes from `off`; false when out of bounds.
    fn read(&self, off: usize, out: &mut [u8]) -> bool;
    /// Copy `data` to `off`; false when out of bounds.
    fn write(&self, off: usize, data: &[u8]) -> bool;
}

/// A malformed ring: the handler stops serving the device rather than
/// read or write outside the mapping.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RingError {
    #[error("TCMU mailbox version {0}, expected {MAILBOX_VERSION}")]
    Version(u16),
    #[error("TCMU command ring {off}+{size} lies outside the {map}-byte mapping")]
    RingOutside { off: u32, size: u32, map: usize },
    #[error("TCMU ring entry at {at} is malformed: {why}")]
    Entry { at: u32, why: &'static str },
}

/// The mailbox fields a handler needs, read once at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mailbox {
    pub flags: u16,
    pub cmdr_off: u32,
    pub cmdr_size: u32,
}

fn get<const N: usize>(mem: &dyn RingMem, off: usize) -> Option<[u8; N]> {
    let mut b = [0u8; N];
    mem.read(off, &mut b).then_some(b)
}

fn get_u16(mem: &dyn RingMem, off: usize) -> Option<u16> {
    get::<2>(mem, off).map(u16::from_ne_bytes)
}

fn get_u32(mem: &dyn RingMem, off: usize) -> Option<u32> {
    get::<4>(mem, off).map(u32::from_ne_bytes)
}

fn get_u64(mem: &dyn RingMem, off: usize) -> Option<u64> {
    get::<8>(mem, off).map(u64::from_ne_bytes)
}

impl Mailbox {
    pub fn read(mem: &dyn RingMem) -> Result<Mailbox, RingError> {
        let short = RingError::RingOutside {
            off: 0,
            size: 0,
            map: mem.map_len(),
        };
        let version = get_u16(mem, MB_VERSION).ok_or(short.clone())?;
        if version != MAILBOX_VERSION {
            return Err(RingError::Version(version));
        }
        let flags = get_u16(mem, MB_FLAGS).ok_or(short.clone())?;
        let cmdr_off = get_u32(mem, MB_CMDR_OFF).ok_or(short.clone())?;
        let cmdr_size = get_u32(mem, MB_CMDR_SIZE).ok_or(short)?;
        let end = cmdr_off as u64 + cmdr_size as u64;
        if cmdr_off < (MB_CMD_TAIL + 4) as u32 || cmdr_size == 0 || end > mem.map_len() as u64 {
            return Err(RingError::RingOutside {
                off: cmdr_off,
                size: cmdr_size,
                map: mem.map_len(),
            });
        }
        Ok(Mailbox {
            flags,
            cmdr_off,
            cmdr_size,
        })
    }

    pub fn head(mem: &dyn RingMem) -> u32 {
        get_u32(mem, MB_CMD_HEAD).unwrap_or(0)
    }

    pub fn tail(mem: &dyn RingMem) -> u32 {
        get_u32(mem, MB_CMD_TAIL).unwrap_or(0)
    }

    pub fn set_tail(mem: &dyn RingMem, tail: u32) {
        mem.write(MB_CMD_TAIL, &tail.to_ne_bytes());
    }
}

/// One entry of the command ring, as the kernel wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Padding to the end of the ring, or a task management notice
    /// (`attrib/tmr_notification`): the tail just moves past it.
    Skip {
        len: u32,
    },
    /// An operation this handler does not know: flagged UNKNOWN_OP, the
    /// kernel completes it with CHECK CONDITION.
    Unknown {
        len: u32,
    },
    Command(Command),
}

/// A SCSI command: where its CDB and data buffers are in the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Ring offset of the entry (the response goes there).
    pub at: u32,
    pub len: u32,
    pub cmd_id: u16,
    pub cdb_off: u64,
    /// (offset in the mapping, length) of each data buffer, in order.
    pub iovs: Vec<(u64, u64)>,
}

impl Command {
    pub fn data_len(&self) -> u64 {
        self.iovs.iter().map(|&(_, l)| l).sum()
    }
}

/// Read the entry at ring offset `at` (relative to the ring's start).
pub fn read_entry(mem: &dyn RingMem, mb: &Mailbox, at: u32) -> Result<Entry, RingError> {
    let bad = |why| RingError::Entry { at, why };
    let base = mb.cmdr_off as usize + at as usize;
    let len_op = get_u32(mem, base).ok_or(bad("header outside the ring"))?;
    let len = len_op & !OP_MASK;
    if len < 8 || at as u64 + len as u64 > mb.cmdr_size as u64 {
        return Err(bad("length runs past the end of the ring"));
    }
    match len_op & OP_MASK {
        OP_PAD | OP_TMR => Ok(Entry::Skip { len }),
        OP_CMD => read_command(mem, mb, at, len).map(Entry::Command),
        _ => Ok(Entry::Unknown { len }),
    }
}

fn read_command(mem: &dyn RingMem, mb: &Mailbox, at: u32, len: u32) -> Result<Command, RingError> {
    let bad = |why| RingError::Entry { at, why };
    let base = mb.cmdr_off as usize + at as usize;
    if (len as usize) < RSP_END {
        return Err(bad("entry too short for a response"));
    }
    let cmd_id = get_u16(mem, base + 4).ok_or(bad("header outside the ring"))?;
    let iov_cnt = get_u32(mem, base + E_IOV_CNT).ok_or(bad("no iovec count"))? as u64;
    let bidi = get_u32(mem, base + E_BIDI_CNT).ok_or(bad("no iovec count"))? as u64;
    let cdb_off = get_u64(mem, base + E_CDB_OFF).ok_or(bad("no CDB offset"))?;
    let count = iov_cnt + bidi;
    if E_IOV as u64 + count * 16 > len as u64 {
        return Err(bad("iovecs run past the entry"));
    }
    let mut iovs = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let at_iov = base + E_IOV + 16 * i;
        let off = get_u64(mem, at_iov).ok_or(bad("iovec outside the ring"))?;
        let l = get_u64(mem, at_iov + 8).ok_or(bad("iovec outside the ring"))?;
        if off
            .checked_add(l)
            .is_none_or(|end| end > mem.map_len() as u64)
        {
            return Err(bad("data buffer outside the mapping"));
        }
        iovs.push((off, l));
    }
    Ok(Command {
        at,
        len,
        cmd_id,
        cdb_off,
        iovs,
    })
}

/// What a handler answers for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u8,
    pub sense: Vec<u8>,
    /// Bytes of data-in produced; reported as `read_len` when the kernel
    /// can take it and it is less than the buffers (a short tape read).
    pub read_len: Option<u32>,
}

/// Write `rsp` into the entry of `cmd` (the union's response half).
pub fn write_response(mem: &dyn RingMem, mb: &Mailbox, cmd: &Command, rsp: &Response) {
    let base = mb.cmdr_off as usize + cmd.at as usize;
    let mut uflags = get::<1>(mem, base + E_UFLAGS).map_or(0, |b| b[0]);
    let mut sense = [0u8; SENSE_BUFFERSIZE];
    let n = rsp.sense.len().min(SENSE_BUFFERSIZE);
    sense[..n].copy_from_slice(&rsp.sense[..n]);
    mem.write(base + E_SENSE, &sense);
    mem.write(base + E_STATUS, &[rsp.status, 0, 0, 0]);
    if let Some(read_len) = rsp.read_len.filter(|_| mb.flags & CAP_READ_LEN != 0) {
        mem.write(base + E_READ_LEN, &read_len.to_ne_bytes());
        uflags |= UFLAG_READ_LEN;
    }
    mem.write(base + E_UFLAGS, &[uflags]);
}

/// Flag an entry whose operation we do not know.
pub fn flag_unknown(mem: &dyn RingMem, mb: &Mailbox, at: u32) {
    let off = mb.cmdr_off as usize + at as usize + E_UFLAGS;
    let flags = get::<1>(mem, off).map_or(0, |b| b[0]);
    mem.write(off, &[flags | UFLAG_UNKNOWN_OP]);
}

/// Read the CDB of `cmd` (its length from the group code, SPC-4 4.2.5.1).
pub fn read_cdb(mem: &dyn RingMem, cmd: &Command) -> Option<Vec<u8>> {
    let off = usize::try_from(cmd.cdb_off).ok()?;
    let first = get::<1>(mem, off)?[0];
    let mut cdb = vec![0u8; crate::scsi::cdb_len(first)];
    mem.read(off, &mut cdb).then_some(cdb)
}

/// Gather the data buffers of `cmd` into one vector.
pub fn gather(mem: &dyn RingMem, cmd: &Command) -> Option<Vec<u8>> {
    let mut out = vec![0u8; usize::try_from(cmd.data_len()).ok()?];
    let mut at = 0usize;
    for &(off, len) in &cmd.iovs {
        let len = len as usize;
        if !mem.read(off as usize, &mut out[at..at + len]) {
            return None;
        }
        at += len;
    }
    Some(out)
}

/// Scatter `data` over the data buffers of `cmd`, in order.
pub fn scatter(mem: &dyn RingMem, cmd: &Command, data: &[u8]) {
    let mut rest = data;
    for &(off, len) in &cmd.iovs {
        if rest.is_empty() {
            break;
        }
        let n = (len as usize).min(rest.len());
        mem.write(off as usize, &rest[..n]);
        rest = &rest[n..];
    }
}

impl<T: RingMem + ?Sized> RingMem for &T {
    fn map_len(&self) -> usize {
        (**self).map_len()
    }

    fn read(&self, off: usize, out: &mut [u8]) -> bool {
        (**self).read(off, out)
    }

    fn write(&self, off: usize, data: &[u8]) -> bool {
        (**self).write(off, data)
    }
}

#[cfg(test)]
pub(crate) mod tests;
