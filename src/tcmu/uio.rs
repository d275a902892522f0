//! The system side of TCMU: find the UIO devices LIO made for our
//! handler (`/sys/class/uio/uioN/name` is `tcm-user/HBA/NAME/SUBTYPE/CFG`),
//! map their shared memory, wait for the kernel's notice (a 4-byte read
//! of `/dev/uioN`) and answer with a 4-byte write. No netlink: without a
//! `SET_FEATURES` from us the kernel never waits for a handler's reply.

use super::ring::RingMem;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// A `user:` backstore waiting for a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UioDevice {
    /// `uioN`.
    pub uio: String,
    /// The backstore's name in configfs.
    pub name: String,
    /// The handler part of `dev_config` (before the `/`).
    pub subtype: String,
    /// The rest of `dev_config`: which unit to serve.
    pub config: String,
    /// Bytes of the shared mapping.
    pub map_size: usize,
}

/// Parse `/sys/class/uio/uioN/name`: `tcm-user/HBA/NAME/SUBTYPE/CFG`.
pub fn parse_name(uio: &str, name: &str, map_size: usize) -> Option<UioDevice> {
    let mut parts = name.trim_end().splitn(5, '/');
    if parts.next()? != "tcm-user" {
        return None;
    }
    let _hba = parts.next()?;
    let (name, subtype, config) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    Some(UioDevice {
        uio: uio.into(),
        name: name.into(),
        subtype: subtype.into(),
        config: config.into(),
        map_size,
    })
}

/// `0x40800000` as sysfs writes it.
fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let hex = t.strip_prefix("0x").unwrap_or(t);
    usize::from_str_radix(hex, 16).ok()
}

/// Every TCMU device under `sysfs` (normally `/sys/class/uio`) whose
/// subtype is `subtype`.
pub fn scan(sysfs: &Path, subtype: &str) -> Vec<UioDevice> {
    let Ok(dir) = std::fs::read_dir(sysfs) else {
        return Vec::new();
    };
    let mut out: Vec<UioDevice> = dir
        .flatten()
        .filter_map(|e| {
            let uio = e.file_name().to_string_lossy().into_owned();
            let name = std::fs::read_to_string(e.path().join("name")).ok()?;
            let size = std::fs::read_to_string(e.path().join("maps/map0/size")).ok()?;
            parse_name(&uio, &name, parse_size(&size)?)
        })
        .filter(|d| d.subtype == subtype)
        .collect();
    out.sort_by(|a, b| a.uio.cmp(&b.uio));
    out
}

/// An open UIO device and its shared mapping.
pub struct Mapped {
    file: File,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; all
// access goes through bounds-checked copies in `RingMem`.
unsafe impl Send for Mapped {}

impl Mapped {
    pub fn open(dev: &Path, len: usize) -> io::Result<Mapped> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev)?;
        let size = std::num::NonZeroUsize::new(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "empty UIO map"))?;
        use nix::sys::mman::{mmap, MapFlags, ProtFlags};
        // SAFETY: a fresh shared mapping of the device, unmapped in Drop;
        // no Rust reference into it ever exists.
        let ptr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                file.as_fd(),
                0,
            )
        }
        .map_err(io::Error::from)?;
        Ok(Mapped {
            file,
            ptr: ptr.cast(),
            len,
        })
    }

    /// Take the kernel's pending notice (the UIO event count) after a
    /// poll said there is one.
    pub fn consume_notice(&mut self) -> io::Result<()> {
        let mut count = [0u8; 4];
        match self.file.read(&mut count) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tell the kernel to look at the tail (tcmu_irqcontrol).
    pub fn notify(&mut self) -> io::Result<()> {
        self.file.write_all(&1u32.to_ne_bytes())
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl RingMem for Mapped {
    fn map_len(&self) -> usize {
        self.len
    }

    fn read(&self, off: usize, out: &mut [u8]) -> bool {
        if off.checked_add(out.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: in bounds (checked above); volatile-free byte copy of
        // shared memory the kernel may change: we only ever copy out.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), out.as_mut_ptr(), out.len())
        };
        true
    }

    fn write(&self, off: usize, data: &[u8]) -> bool {
        if off.checked_add(data.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: in bounds (checked above); the mapping is writable.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(off), data.len())
        };
        true
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, of `len` bytes.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len) };
    }
}

/// `/dev/uioN` of a scanned device.
pub fn dev_path(dev: &UioDevice) -> PathBuf {
    Path::new("/dev").join(&dev.uio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_tcm_user_devices() {
        let d = parse_name("uio0", "tcm-user/0/drive0/sanmover/drive0\n", 4096).unwrap();
        assert_eq!(
            (d.name.as_str(), d.subtype.as_str(), d.config.as_str()),
            ("drive0", "sanmover", "drive0")
        );
        let d = parse_name("uio3", "tcm-user/1/ch/sanmover/changer/x", 1).unwrap();
        assert_eq!(d.config, "changer/x");
        assert!(parse_name("uio1", "uio_pci_generic", 1).is_none());
        assert!(parse_name("uio1", "tcm-user/0", 1).is_none());
        assert_eq!(parse_size("0x40800000\n"), Some(0x4080_0000));
        assert_eq!(parse_size("zz"), None);
    }

    #[test]
    fn scan_reads_sysfs_and_keeps_our_subtype() {
        let dir = tempfile::tempdir().unwrap();
        for (uio, name) in [
            ("uio1", "tcm-user/0/t1/sanmover/drive1"),
            ("uio0", "tcm-user/0/t0/sanmover/drive0"),
            ("uio2", "tcm-user/0/x/file/foo"),
        ] {
            let d = dir.path().join(uio);
            std::fs::create_dir_all(d.join("maps/map0")).unwrap();
            std::fs::write(d.join("name"), name).unwrap();
            std::fs::write(d.join("maps/map0/size"), "0x1000\n").unwrap();
        }
        let found = scan(dir.path(), "sanmover");
        let names: Vec<_> = found.iter().map(|d| d.config.as_str()).collect();
        assert_eq!(names, ["drive0", "drive1"]);
        assert_eq!(found[0].map_size, 0x1000);
        assert!(scan(&dir.path().join("none"), "sanmover").is_empty());
    }
}
