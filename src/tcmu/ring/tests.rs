use super::*;
use std::cell::RefCell;

/// A plain buffer standing in for the kernel's mapping.
pub(crate) struct VecMem(pub(crate) RefCell<Vec<u8>>);

impl RingMem for VecMem {
    fn map_len(&self) -> usize {
        self.0.borrow().len()
    }

    fn read(&self, off: usize, out: &mut [u8]) -> bool {
        let m = self.0.borrow();
        match m.get(off..off.saturating_add(out.len())) {
            Some(s) => {
                out.copy_from_slice(s);
                true
            }
            None => false,
        }
    }

    fn write(&self, off: usize, data: &[u8]) -> bool {
        let mut m = self.0.borrow_mut();
        match m.get_mut(off..off.saturating_add(data.len())) {
            Some(s) => {
                s.copy_from_slice(data);
                true
            }
            None => false,
        }
    }
}

/// What the kernel does on its side of the ring, for tests: a mailbox,
/// a ring of `ring` bytes and a data area behind it.
pub(crate) struct FakeKernel {
    pub(crate) mem: VecMem,
    pub(crate) ring: u32,
    data_next: std::cell::Cell<usize>,
    next_id: std::cell::Cell<u16>,
    /// Where each entry's data buffer is: the response overwrites the
    /// iovecs, and the kernel remembers it on its side too.
    buffers: RefCell<std::collections::HashMap<usize, usize>>,
}

pub(crate) const CMDR_OFF: u32 = 128;

impl FakeKernel {
    pub(crate) fn new(ring: u32, data: usize) -> FakeKernel {
        let mem = VecMem(RefCell::new(vec![
            0u8;
            CMDR_OFF as usize + ring as usize + data
        ]));
        mem.write(0, &MAILBOX_VERSION.to_ne_bytes());
        mem.write(2, &CAP_READ_LEN.to_ne_bytes());
        mem.write(4, &CMDR_OFF.to_ne_bytes());
        mem.write(8, &ring.to_ne_bytes());
        FakeKernel {
            mem,
            ring,
            data_next: 0.into(),
            next_id: 1.into(),
            buffers: Default::default(),
        }
    }

    fn head(&self) -> u32 {
        Mailbox::head(&self.mem)
    }

    fn put_u32(&self, at: usize, v: u32) {
        self.mem.write(at, &v.to_ne_bytes());
    }

    fn put_u64(&self, at: usize, v: u64) {
        self.mem.write(at, &v.to_ne_bytes());
    }

    /// Append an entry of `len` bytes with `op`, padding to the start of
    /// the ring first if it would not fit before the end.
    fn append(&self, len: u32, op: u32) -> usize {
        let mut head = self.head();
        if head + len > self.ring {
            let pad = self.ring - head;
            self.put_u32(CMDR_OFF as usize + head as usize, pad | OP_PAD);
            head = 0;
        }
        let at = CMDR_OFF as usize + head as usize;
        self.put_u32(at, len | op);
        self.put_u32(MB_CMD_HEAD, (head + len) % self.ring);
        at
    }

    /// A SCSI command with one data buffer of `len` bytes holding `data`.
    pub(crate) fn command(&self, cdb: &[u8], len: usize, data: &[u8]) -> (u16, usize) {
        let entry = ((E_IOV + 16 + 16 + 7) & !7) as u32;
        let entry = entry.max(RSP_END as u32);
        let at = self.append(entry, OP_CMD);
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        self.mem.write(at + 4, &id.to_ne_bytes());
        // CDB right after the iovec, inside the entry (as the kernel does).
        let cdb_at = at + E_IOV + 16;
        self.mem.write(cdb_at, cdb);
        self.put_u64(at + E_CDB_OFF, cdb_at as u64);
        let data_at = CMDR_OFF as usize + self.ring as usize + self.data_next.get();
        self.data_next.set(self.data_next.get() + len);
        self.mem.write(data_at, data);
        self.buffers.borrow_mut().insert(at, data_at);
        self.put_u32(at + E_IOV_CNT, 1);
        self.put_u64(at + E_IOV, data_at as u64);
        self.put_u64(at + E_IOV + 8, len as u64);
        (id, at)
    }

    pub(crate) fn other(&self, op: u32) -> usize {
        self.append(16, op)
    }

    pub(crate) fn status(&self, at: usize) -> u8 {
        let mut b = [0u8];
        self.mem.read(at + E_STATUS, &mut b);
        b[0]
    }

    pub(crate) fn uflags(&self, at: usize) -> u8 {
        let mut b = [0u8];
        self.mem.read(at + E_UFLAGS, &mut b);
        b[0]
    }

    pub(crate) fn read_len(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        self.mem.read(at + E_READ_LEN, &mut b);
        u32::from_ne_bytes(b)
    }

    pub(crate) fn sense(&self, at: usize) -> Vec<u8> {
        let mut b = vec![0u8; SENSE_BUFFERSIZE];
        self.mem.read(at + E_SENSE, &mut b);
        b
    }

    pub(crate) fn data(&self, at: usize, len: usize) -> Vec<u8> {
        let off = self.buffers.borrow()[&at];
        let mut b = vec![0u8; len];
        self.mem.read(off, &mut b);
        b
    }

    pub(crate) fn reset_data(&self) {
        self.data_next.set(0);
    }
}

#[test]
fn mailbox_is_checked() {
    let k = FakeKernel::new(4096, 0);
    let mb = Mailbox::read(&k.mem).unwrap();
    assert_eq!((mb.cmdr_off, mb.cmdr_size), (128, 4096));
    k.mem.write(0, &1u16.to_ne_bytes());
    assert_eq!(Mailbox::read(&k.mem), Err(RingError::Version(1)));
    let k = FakeKernel::new(4096, 0);
    k.put_u32(8, 1 << 20);
    assert!(matches!(
        Mailbox::read(&k.mem),
        Err(RingError::RingOutside { .. })
    ));
}

#[test]
fn command_entry_reads_back() {
    let k = FakeKernel::new(4096, 4096);
    let (id, at) = k.command(&[0x12, 0, 0, 0, 96, 0], 96, &[]);
    let mb = Mailbox::read(&k.mem).unwrap();
    let Entry::Command(c) = read_entry(&k.mem, &mb, (at - 128) as u32).unwrap() else {
        panic!("not a command")
    };
    assert_eq!(c.cmd_id, id);
    assert_eq!(c.data_len(), 96);
    assert_eq!(read_cdb(&k.mem, &c).unwrap(), [0x12, 0, 0, 0, 96, 0]);
}

#[test]
fn a_data_buffer_outside_the_map_is_an_error() {
    let k = FakeKernel::new(4096, 4096);
    let (_, at) = k.command(&[0x12, 0, 0, 0, 96, 0], 96, &[]);
    k.put_u64(at + E_IOV + 8, u64::MAX - 8);
    let mb = Mailbox::read(&k.mem).unwrap();
    let e = read_entry(&k.mem, &mb, (at - 128) as u32).unwrap_err();
    assert_eq!(
        e,
        RingError::Entry {
            at: 0,
            why: "data buffer outside the mapping"
        }
    );
}

#[test]
fn an_entry_longer_than_the_ring_is_an_error() {
    let k = FakeKernel::new(4096, 0);
    k.put_u32(128, 8192 | OP_CMD);
    let mb = Mailbox::read(&k.mem).unwrap();
    assert!(read_entry(&k.mem, &mb, 0).is_err());
}

/// The offsets above against the kernel's own header, compiled with the C
/// compiler of this machine.
#[test]
fn offsets_match_the_kernel_header() {
    let header = std::path::Path::new("/usr/include/linux/target_core_user.h");
    assert!(
        header.exists(),
        "{} is missing: install linux-libc-dev to check the TCMU layout",
        header.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("o.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <stddef.h>
#include <linux/target_core_user.h>
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu\n", offsetof(struct tcmu_mailbox, flags),
    offsetof(struct tcmu_mailbox, cmdr_off), offsetof(struct tcmu_mailbox, cmdr_size),
    offsetof(struct tcmu_mailbox, cmd_head), offsetof(struct tcmu_mailbox, cmd_tail),
    sizeof(struct tcmu_mailbox));
  printf("%zu %zu %zu %zu %zu\n", offsetof(struct tcmu_cmd_entry, hdr.uflags),
    offsetof(struct tcmu_cmd_entry, req.iov_cnt), offsetof(struct tcmu_cmd_entry, req.iov_bidi_cnt),
    offsetof(struct tcmu_cmd_entry, req.cdb_off), offsetof(struct tcmu_cmd_entry, req.iov));
  printf("%zu %zu %zu %d\n", offsetof(struct tcmu_cmd_entry, rsp.scsi_status),
    offsetof(struct tcmu_cmd_entry, rsp.read_len), offsetof(struct tcmu_cmd_entry, rsp.sense_buffer),
    TCMU_SENSE_BUFFERSIZE);
  return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("o");
    let cc = std::process::Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run cc");
    assert!(cc.success(), "cc failed on {}", src.display());
    let out = std::process::Command::new(&exe).output().unwrap();
    let got = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "{MB_FLAGS} {MB_CMDR_OFF} {MB_CMDR_SIZE} {MB_CMD_HEAD} {MB_CMD_TAIL} 128\n\
         {E_UFLAGS} {E_IOV_CNT} {E_BIDI_CNT} {E_CDB_OFF} {E_IOV}\n\
         {E_STATUS} {E_READ_LEN} {E_SENSE} {SENSE_BUFFERSIZE}\n"
    );
    assert_eq!(got, want);
}
