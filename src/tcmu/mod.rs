//! A TCMU handler: Linux LIO's `user:` backstores served by our logical
//! units (`crate::lu`) through the kernel's UIO command ring
//! (`target_core_user`). LIO keeps the fabric, the ACLs, PERSISTENT
//! RESERVE and RESERVE/RELEASE (its core emulates them for a TCMU device);
//! every other CDB reaches the unit here.
//!
//! [`ring`] is the shared-memory ABI and does no system calls; [`uio`]
//! finds, maps and polls the devices; [`Device`] ties one ring to one unit.

pub mod ring;
mod serve;
pub mod uio;

pub use serve::Handler;

use crate::frontend::SharedLu;
use crate::lu::{Completion, Nexus};
use crate::scsi::sense::{Asc, Sense, SenseKey};
use ring::{Command, Entry, Mailbox, Response, RingError, RingMem};

/// The nexus every TCMU command carries: the ring does not say which
/// initiator sent a command (LIO's core keeps the per-nexus state that
/// matters for sharing: reservations and its own Unit Attentions).
pub fn ring_nexus(device: &str) -> Nexus {
    Nexus {
        initiator: "tcmu".into(),
        isid: 0,
        target: device.into(),
    }
}

/// One TCMU device: its ring and the unit that answers its commands.
pub struct Device<M: RingMem> {
    pub name: String,
    mem: M,
    mailbox: Mailbox,
    lu: SharedLu,
    nexus: Nexus,
}

/// What one pass over the ring did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub commands: usize,
    pub skipped: usize,
    pub unknown: usize,
}

impl<M: RingMem> Device<M> {
    pub fn open(name: &str, mem: M, lu: SharedLu) -> Result<Self, RingError> {
        let mailbox = Mailbox::read(&mem)?;
        Ok(Device {
            name: name.into(),
            nexus: ring_nexus(name),
            mem,
            mailbox,
            lu,
        })
    }

    pub fn mem(&self) -> &M {
        &self.mem
    }

    pub fn mem_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Complete every entry from the tail up to the head, in order, and
    /// move the tail past them. The caller then tells the kernel (a write
    /// to the UIO device).
    pub fn pass(&mut self) -> Result<Pass, RingError> {
        let mut pass = Pass::default();
        let head = Mailbox::head(&self.mem);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let mut tail = Mailbox::tail(&self.mem);
        let mut walked = 0u64;
        while tail != head {
            // Entries that never meet the head: a corrupt ring, not a loop.
            if walked > self.mailbox.cmdr_size as u64 {
                return Err(RingError::Entry {
                    at: tail,
                    why: "entries do not lead to the head",
                });
            }
            let len = match ring::read_entry(&self.mem, &self.mailbox, tail)? {
                Entry::Skip { len } => {
                    pass.skipped += 1;
                    len
                }
                Entry::Unknown { len } => {
                    ring::flag_unknown(&self.mem, &self.mailbox, tail);
                    pass.unknown += 1;
                    len
                }
                Entry::Command(cmd) => {
                    let rsp = self.serve(&cmd);
                    ring::write_response(&self.mem, &self.mailbox, &cmd, &rsp);
                    pass.commands += 1;
                    cmd.len
                }
            };
            walked += len as u64;
            tail = ((tail as u64 + len as u64) % self.mailbox.cmdr_size as u64) as u32;
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            Mailbox::set_tail(&self.mem, tail);
        }
        Ok(pass)
    }

    /// Run one command on the unit. The ring does not carry the data
    /// direction: the buffers go in as Data-Out and come back as Data-In,
    /// and only what the unit produced is copied back.
    fn serve(&mut self, cmd: &Command) -> Response {
        let (Some(cdb), Some(data_out)) =
            (ring::read_cdb(&self.mem, cmd), ring::gather(&self.mem, cmd))
        else {
            return response(
                &Completion::check(Sense::new(
                    SenseKey::ILLEGAL_REQUEST,
                    Asc::INVALID_FIELD_IN_CDB,
                )),
                0,
            );
        };
        let mut data_in = vec![0u8; data_out.len()];
        let c = match self.lu.lock() {
            Ok(mut lu) => lu.execute_for(&self.nexus, &cdb, &data_out, &mut data_in),
            Err(_) => Completion::check(Sense::new(
                SenseKey::HARDWARE_ERROR,
                Asc::INTERNAL_TARGET_FAILURE,
            )),
        };
        ring::scatter(&self.mem, cmd, &data_in[..c.data_in_len.min(data_in.len())]);
        response(&c, data_out.len())
    }
}

/// The ring's response for a completion. `read_len` is reported only for a
/// short Data-In (0 < produced < buffers): the kernel would turn a
/// `read_len` on a write into a residual.
fn response(c: &Completion, buffers: usize) -> Response {
    let produced = c.data_in_len.min(buffers);
    Response {
        status: c.status.0,
        sense: c.sense.clone(),
        read_len: (produced > 0 && produced < buffers).then_some(produced as u32),
    }
}

#[cfg(test)]
mod tests;
