//! One sanmover process per tape drive on this host.
//!
//! A tape has one position for every session: a `verify` that rewinds the
//! drive under a running `backup` makes the backup write over the start of
//! the tape. Every command that moves or writes a drive takes an exclusive
//! `flock(2)` on a lock file named after the drive's identity (its VPD
//! 0x83 designator, SPC-4 7.8.6), in the catalog's directory. The kernel
//! drops the lock when its process dies, so a crash never leaves the
//! drive locked. The file says who holds it (pid and command), for the
//! message the next process prints.
//!
//! Across hosts this lock does nothing: PERSISTENT RESERVE (where the
//! drive has it) is the protection there.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest as _, Sha256};

/// Why the drive could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process on this host holds the drive.
    #[error(
        "tape drive {drive} is in use by another sanmover process on this host ({holder}); \
         try again when it has finished, or give --wait to wait for it"
    )]
    Busy { drive: String, holder: String },
    #[error("drive lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Which drive: its identity as text (a designator, or the address when
/// the drive has none) and the bytes the lock file is named after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveKey {
    pub text: String,
    pub bytes: Vec<u8>,
}

impl DriveKey {
    /// The lock file for this drive in `dir`: `drive-` and 16 bytes of the
    /// SHA-256 of the identity, in hex.
    pub fn lock_path(&self, dir: &Path) -> PathBuf {
        let h = Sha256::digest(&self.bytes);
        dir.join(format!("sanmover-drive-{}.lock", hex::encode(&h[..16])))
    }
}

/// A held drive lock; dropping the last handle releases it.
#[derive(Debug, Clone)]
pub struct DriveLock {
    held: Arc<Held>,
}

#[derive(Debug)]
struct Held {
    _lock: Flock<File>,
    path: PathBuf,
}

impl DriveLock {
    pub fn path(&self) -> &Path {
        &self.held.path
    }
}

/// Locks this process already holds: a command that opens the drive twice
/// (a third-party-copy backup falling back to host-driven) shares the
/// lock instead of waiting for itself.
static HELD: Mutex<Vec<Weak<Held>>> = Mutex::new(Vec::new());

fn already_held(path: &Path) -> Option<DriveLock> {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|w| w.strong_count() > 0);
    held.iter()
        .filter_map(Weak::upgrade)
        .find(|h| h.path == path)
        .map(|held| DriveLock { held })
}

/// Take the drive `key` for `command` (shown to whoever finds it busy).
/// With `wait`, `waiting` is called once with the holder's description
/// and the call blocks until the drive is free; without, a held drive is
/// [`LockError::Busy`].
pub fn lock_drive(
    dir: &Path,
    key: &DriveKey,
    command: &str,
    wait: bool,
    waiting: impl FnOnce(&str),
) -> Result<DriveLock, LockError> {
    let path = key.lock_path(dir);
    if let Some(l) = already_held(&path) {
        return Ok(l);
    }
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((file, Errno::EWOULDBLOCK)) => {
            let holder = holder_of(&path);
            if !wait {
                return Err(LockError::Busy {
                    drive: key.text.clone(),
                    holder,
                });
            }
            waiting(&holder);
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io(e.into()))?
        }
        Err((_, e)) => return Err(io(e.into())),
    };
    let mut lock = lock;
    write_holder(&mut lock, key, command).map_err(io)?;
    let held = Arc::new(Held { _lock: lock, path });
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arc::downgrade(&held));
    Ok(DriveLock { held })
}

/// Who holds the lock, from what its holder wrote in the file.
fn holder_of(path: &Path) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_string(),
        _ => "holder unknown".to_string(),
    }
}

fn write_holder(f: &mut File, key: &DriveKey, command: &str) -> std::io::Result<()> {
    f.set_len(0)?;
    f.rewind()?;
    write!(
        f,
        "pid {}, command '{command}', drive {}",
        std::process::id(),
        key.text
    )?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> DriveKey {
        DriveKey {
            text: s.to_string(),
            bytes: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_second_lock_on_the_same_drive_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let k = key("naa.600140511111");
        let first = lock_drive(dir.path(), &k, "backup", false, |_| {}).unwrap();
        // Another open file description, as another process would have:
        // flock(2) refuses it while the first is held.
        let other = File::open(first.path()).unwrap();
        let refused = Flock::lock(other, FlockArg::LockExclusiveNonblock);
        assert!(matches!(refused, Err((_, Errno::EWOULDBLOCK))));
        let holder = holder_of(first.path());
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        assert!(holder.contains("'backup'"), "{holder}");
        // The same process asking again shares the lock.
        let again = lock_drive(dir.path(), &k, "backup", false, |_| {}).unwrap();
        assert_eq!(again.path(), first.path());
        // Another drive has its own lock.
        let b = lock_drive(
            dir.path(),
            &key("naa.600140522222"),
            "verify",
            false,
            |_| {},
        )
        .unwrap();
        assert_ne!(b.path(), first.path());
        drop((first, again));
        let free = File::open(k.lock_path(dir.path())).unwrap();
        assert!(Flock::lock(free, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
