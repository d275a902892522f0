//! One tape fixture over three drives, so that a backup, restore, verify
//! or rebuild test is written once and runs on each:
//! - `Tgt`: tgt's tape, on a private rig of the test's own;
//! - `Vtl`: drive 0 of a `sanmover vtl` started for the test on 127.0.0.1
//!   (a free port), its first cartridge loaded and killed by pid when the
//!   fixture is dropped, also when the test fails;
//! - `Tcmu`: a drive of `sanmover tcmu` in the LIO guest, exported by LIO
//!   (test binaries run under the LIO rig only).
//!
//! Sources and targets are disk LUNs beside the drive: the private rig's
//! tgt disks for `Tgt` and `Vtl`, LIO LUNs in the guest for `Tcmu`. Their
//! bytes are written and read over iSCSI, the same way on all three.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::MutexGuard;

use sanmover::device::Disk;
use sanmover::scsi::{BlockSize, Lba};
use sanmover::transport::iscsi::IscsiTransport;

use super::vtl::Vtl;
use super::{connect, sm, PrivateRig, Run};

/// Generate one `#[test]` per body in a module named after the drive:
/// `tgt::two_sets…`, `vtl::two_sets…`, `tcmu::two_sets…`.
#[macro_export]
macro_rules! drive_tests {
    ($module:ident, $drive:ident, $suite:ident, [$($name:ident),* $(,)?]) => {
        $crate::drive_tests!(
            $module, $drive, $suite, $crate::common::drive::TapeEnv::new, [$($name),*]
        );
    };
    // With the suite's own constructor of the fixture.
    ($module:ident, $drive:ident, $suite:ident, $new:path, [$($name:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    $crate::$suite::$name($new($crate::common::drive::Drive::$drive));
                }
            )*
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drive {
    Tgt,
    Vtl,
    Tcmu,
}

/// A disk LUN a test backs up from or restores to.
#[derive(Clone, Debug)]
pub struct Lun {
    pub url: String,
}

const MIB: usize = 1 << 20;

pub struct TapeEnv {
    pub drive: Drive,
    /// The tgt rig: the tape (`Tgt`) and the disks (`Tgt`, `Vtl`).
    rig: Option<PrivateRig>,
    vtl: Option<Vtl>,
    /// `Tcmu`: the guest's drive unit and the LIO LUN exporting it.
    tcmu: Option<(String, String)>,
    dir: tempfile::TempDir,
    pub catalog: PathBuf,
    /// `Tcmu`: LUN names made in the guest start with this.
    prefix: String,
    /// `Tcmu`: the source disks, LIO LUNs of 16 MiB.
    guest_disks: Vec<Lun>,
    /// `Tcmu`: every LUN made in the guest, removed when dropped (the
    /// guest's memory holds them).
    guest_luns: RefCell<Vec<String>>,
    _guest: Option<MutexGuard<'static, ()>>,
}

/// The next TCMU drive unit of this test binary: `sanmover tcmu` serves
/// [`super::TCMU_DRIVES`], each with a blank cartridge when the binary
/// starts, and each test takes one of its own.
fn next_tcmu_unit() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    assert!(
        n < super::TCMU_DRIVES,
        "more TCMU tests in this binary than the {} drives the guest serves",
        super::TCMU_DRIVES
    );
    n
}

impl TapeEnv {
    pub fn new(drive: Drive) -> TapeEnv {
        Self::with_tape_mb(drive, None)
    }

    /// A fixture whose tgt tape has `mb` MiB (`SANMOVER_RIG_TAPE_MB`); the
    /// VTL's cartridges hold 1 GiB and the guest's 256 MiB.
    pub fn with_tape_mb(drive: Drive, mb: Option<&str>) -> TapeEnv {
        let dir = tempfile::tempdir().expect("fixture dir");
        let catalog = dir.path().join("catalog.db");
        let mut env = TapeEnv {
            drive,
            rig: None,
            vtl: None,
            tcmu: None,
            dir,
            catalog,
            prefix: String::new(),
            guest_disks: Vec::new(),
            guest_luns: RefCell::new(Vec::new()),
            _guest: None,
        };
        match drive {
            Drive::Tgt | Drive::Vtl => {
                let extra: Vec<(&str, &str)> = mb
                    .map(|m| ("SANMOVER_RIG_TAPE_MB", m))
                    .into_iter()
                    .collect();
                env.rig = Some(PrivateRig::start_with(&extra));
            }
            Drive::Tcmu => {
                env._guest = Some(super::tcmu_guest());
                let unit = next_tcmu_unit();
                env.prefix = format!("ts{unit}");
                let name = format!("tstape{unit}");
                super::tcmu_tape(&name, &format!("drive{unit}"), None);
                env.tcmu = Some((format!("drive{unit}"), name));
                env.guest_disks = vec![env.add_lun(1, 16), env.add_lun(2, 16)];
            }
        }
        if drive == Drive::Vtl {
            env.vtl = Some(Vtl::start(&env.media(), 1, 2, "1G"));
            env.run(&["changer", &env.changer(), "load", "1", "0"]).ok();
        }
        env
    }

    /// Where the test may put files of its own.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn media(&self) -> PathBuf {
        self.dir.path().join("media")
    }

    fn rig(&self) -> &PrivateRig {
        self.rig.as_ref().expect("a tgt rig (Tgt and Vtl fixtures)")
    }

    fn changer(&self) -> String {
        self.vtl.as_ref().expect("a VTL").url(0)
    }

    /// The initiator name the CLI logs in with: the LIO rig's ACLs know
    /// only theirs.
    fn initiator(&self) -> Option<&'static str> {
        (self.drive == Drive::Tcmu).then(super::lio_initiator)
    }

    /// The drive's URL (a VTL restarted by the test listens elsewhere).
    pub fn tape(&self) -> String {
        match self.drive {
            Drive::Tgt => self.rig().get("SANMOVER_RIG_TAPE").to_string(),
            Drive::Vtl => self.vtl.as_ref().expect("a running VTL").url(1),
            Drive::Tcmu => {
                let (_, name) = self.tcmu.as_ref().unwrap();
                super::tcmu_url(name)
            }
        }
    }

    /// The target of the drive's URL (no LUN): a router backend.
    pub fn tape_target(&self) -> String {
        let t = self.tape();
        t.rsplit_once('/').unwrap().0.to_string()
    }

    /// `sanmover --catalog CATALOG ARGS`, with the rig's initiator name
    /// where the drive's ACLs need it.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = Vec::new();
        if let Some(i) = self.initiator() {
            all.extend(["--initiator", i]);
        }
        all.extend_from_slice(args);
        sm(&self.catalog, &all)
    }

    /// [`TapeEnv::run`] with another catalog.
    pub fn run_with(&self, catalog: &Path, args: &[&str]) -> Run {
        let mut all: Vec<&str> = Vec::new();
        if let Some(i) = self.initiator() {
            all.extend(["--initiator", i]);
        }
        all.extend_from_slice(args);
        sm(catalog, &all)
    }

    /// A host-driven backup of `source` onto the drive, `--json`.
    pub fn backup(&self, source: &Lun, extra: &[&str]) -> serde_json::Value {
        let tape = self.tape();
        let mut args = vec![
            "--json",
            "backup",
            "--mode",
            "host",
            "--source",
            &source.url,
            "--tape",
            &tape,
        ];
        args.extend_from_slice(extra);
        self.run(&args).ok().json()
    }

    /// Source disk 1 (64 MiB on tgt, 16 MiB in the guest) or 2 (16 MiB).
    pub fn disk(&self, n: u32) -> Lun {
        match self.drive {
            Drive::Tgt | Drive::Vtl => {
                let key = if n == 1 {
                    "SANMOVER_RIG_DISK"
                } else {
                    "SANMOVER_RIG_DISK2"
                };
                Lun {
                    url: self.rig().get(key).to_string(),
                }
            }
            Drive::Tcmu => self.guest_disks[n as usize - 1].clone(),
        }
    }

    /// A new disk LUN of `mb` MiB: on the rig as LUN `lun`, in the guest
    /// as a LUN named after it.
    pub fn add_lun(&self, lun: u32, mb: u32) -> Lun {
        let url = match self.drive {
            Drive::Tgt | Drive::Vtl => self.rig().add_lun(lun, mb).0,
            Drive::Tcmu => {
                let name = format!("{}l{lun}", self.prefix);
                self.guest_luns.borrow_mut().push(name.clone());
                super::lio_add_lun(&name, mb, &[super::lio_initiator()])
            }
        };
        Lun { url }
    }

    /// The initiator name sessions of the test log in with.
    pub fn who(&self) -> String {
        self.initiator()
            .map(str::to_string)
            .unwrap_or_else(sanmover::transport::iscsi::initiator_from_env)
    }

    fn open_disk(&self, lun: &Lun) -> Disk<IscsiTransport> {
        Disk::open(connect(&lun.url, &self.who())).expect("open disk")
    }

    /// Write `data` from LBA 0, 1 MiB a command.
    pub fn write(&self, lun: &Lun, data: &[u8]) {
        let mut d = self.open_disk(lun);
        for (i, chunk) in data.chunks(MIB).enumerate() {
            let lba = Lba((i * MIB / 512) as u64);
            d.write(lba, BlockSize(512), chunk.to_vec())
                .expect("write disk");
        }
    }

    /// Fill the first `len` bytes with reproducible random data.
    pub fn fill(&self, lun: &Lun, len: usize, seed: u64) -> Vec<u8> {
        let data = super::random_bytes(len, seed);
        self.write(lun, &data);
        data
    }

    /// The first `len` bytes.
    pub fn contents(&self, lun: &Lun, len: usize) -> Vec<u8> {
        let mut d = self.open_disk(lun);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let n = (len - out.len()).min(MIB);
            let lba = Lba((out.len() / 512) as u64);
            out.extend(d.read(lba, (n / 512) as u32, BlockSize(512)).expect("read"));
        }
        out
    }

    /// Whether the tape's target can be killed, restarted and its image
    /// edited from the host: tgt and the VTL, not the guest's handler
    /// (tests/lio_tcmu.rs kills that one on its own).
    pub fn can_kill(&self) -> bool {
        self.drive != Drive::Tcmu
    }

    /// The tape's image file on the host (`Tgt`, `Vtl`).
    pub fn image(&self) -> PathBuf {
        match self.drive {
            Drive::Tgt => self.rig().get("SANMOVER_RIG_TAPE_FILE").into(),
            Drive::Vtl => self.media().join("VTL001L8.img"),
            Drive::Tcmu => panic!("the TCMU cartridge is in the guest"),
        }
    }

    pub fn image_len(&self) -> u64 {
        std::fs::metadata(self.image()).map_or(0, |m| m.len())
    }

    /// Kill the tape's target outright (SIGKILL by pid).
    pub fn kill_tape_target(&mut self) {
        match self.drive {
            Drive::Tgt => self.rig.as_ref().unwrap().kill_tgtd(),
            Drive::Vtl => self.vtl.as_mut().unwrap().kill(),
            Drive::Tcmu => panic!("the guest's handler is not killed from here"),
        }
    }

    /// Start it again on the images the dead one left.
    pub fn restart_tape_target(&mut self) {
        match self.drive {
            Drive::Tgt => self.rig.as_mut().unwrap().restart_keeping_images(),
            Drive::Vtl => self.vtl = Some(Vtl::start(&self.media(), 1, 2, "1G")),
            Drive::Tcmu => panic!("the guest's handler is not restarted from here"),
        }
    }

    /// Flip one bit `offset` bytes after the `nth` (0-based) occurrence of
    /// `magic` (the first bytes of a tape block: a record's magic and
    /// more) in the tape image, with the target stopped: a medium that
    /// silently returns other data. On the VTL the image record's CRCs are
    /// made to match again (FORMAT.md, "Tape cartridge image"), or the
    /// image would cut the record off as torn.
    pub fn damage(&mut self, magic: &[u8], nth: usize, offset: usize) {
        self.kill_tape_target();
        let path = self.image();
        let mut image = std::fs::read(&path).unwrap();
        let at = image
            .windows(magic.len())
            .enumerate()
            .filter(|(_, w)| *w == magic)
            .nth(nth)
            .map(|(i, _)| i)
            .expect("magic in the tape image");
        image[at + offset] ^= 0x40;
        if self.drive == Drive::Vtl {
            reseal_vtl_record(&mut image, at);
        }
        std::fs::write(&path, &image).unwrap();
        self.restart_tape_target();
    }
}

impl Drop for TapeEnv {
    fn drop(&mut self) {
        for name in self.guest_luns.borrow().iter() {
            super::lio_del_lun(name);
        }
    }
}

/// The VTL image record whose payload starts at `payload` (a tape block
/// starts with its magic): its header is the 32 bytes before; set the
/// payload CRC32C (bytes 20..24) and the header's own (28..32) again.
fn reseal_vtl_record(image: &mut [u8], payload: usize) {
    let h = payload - 32;
    assert_eq!(&image[h..h + 4], b"SMOB", "not at a VTL image record");
    let len = u32::from_be_bytes(image[h + 16..h + 20].try_into().unwrap()) as usize;
    let c = crc32c::crc32c(&image[payload..payload + len]);
    image[h + 20..h + 24].copy_from_slice(&c.to_be_bytes());
    let hc = crc32c::crc32c(&image[h..h + 28]);
    image[h + 28..h + 32].copy_from_slice(&hc.to_be_bytes());
}
