//! The media directory: one image file per cartridge, named by barcode
//! (`VTL001L8.img`), and the inventory (`inventory.json`), which is
//! replaced atomically: written to a temporary file, synced, renamed over
//! the old one, and the directory synced (a crash leaves the old or the
//! new inventory, never a torn one).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::inventory::{Inventory, MAX_DRIVES, MAX_SLOTS};
use crate::lu::{Cartridge, DriveError, ImageDrive};

const INVENTORY: &str = "inventory.json";
const INVENTORY_TMP: &str = "inventory.json.tmp";

/// Why the media directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a library inventory: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: the library there has {drives} drives and {slots} slots, not {want_drives} and {want_slots}")]
    Layout {
        path: PathBuf,
        drives: usize,
        slots: usize,
        want_drives: usize,
        want_slots: usize,
    },
    #[error("{path}: barcode {barcode} is in more than one element, or its image is missing")]
    Inconsistent { path: PathBuf, barcode: String },
    #[error("drives must be 1..={MAX_DRIVES} and slots 1..={MAX_SLOTS}")]
    Size,
    #[error("creating a cartridge: {0}")]
    Cartridge(#[from] DriveError),
}

/// The barcode of the n-th blank cartridge (from 1): `VTL001L8` (an LTO-8
/// style label: six characters and the media type).
pub fn barcode(n: usize) -> String {
    format!("VTL{n:03}L8")
}

/// A media directory.
#[derive(Debug, Clone)]
pub struct MediaDir {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl MediaDir {
    /// Open the library in `dir`, or create it there: `slots` blank
    /// cartridges of `capacity` bytes, one per slot, and empty drives.
    pub fn open_or_create(
        dir: &Path,
        drives: usize,
        slots: usize,
        capacity: u64,
    ) -> Result<(MediaDir, Inventory), StoreError> {
        if !(1..=MAX_DRIVES).contains(&drives) || !(1..=MAX_SLOTS).contains(&slots) {
            return Err(StoreError::Size);
        }
        fs::create_dir_all(dir).map_err(io(dir))?;
        let m = MediaDir {
            dir: dir.to_path_buf(),
        };
        let path = m.dir.join(INVENTORY);
        if !path.exists() {
            let codes: Vec<String> = (1..=slots).map(barcode).collect();
            for c in &codes {
                let img = m.image(c);
                if !img.exists() {
                    ImageDrive::create_blank(&img, capacity)?;
                }
            }
            let inv = Inventory::new(drives, slots, &codes);
            m.save(&inv)?;
            return Ok((m, inv));
        }
        let inv = m.load()?;
        if inv.drives.len() != drives || inv.slots.len() != slots {
            return Err(StoreError::Layout {
                path,
                drives: inv.drives.len(),
                slots: inv.slots.len(),
                want_drives: drives,
                want_slots: slots,
            });
        }
        Ok((m, inv))
    }

    fn load(&self) -> Result<Inventory, StoreError> {
        let path = self.dir.join(INVENTORY);
        let text = fs::read(&path).map_err(io(&path))?;
        let inv: Inventory =
            serde_json::from_slice(&text).map_err(|source| StoreError::Corrupt {
                path: path.clone(),
                source,
            })?;
        let codes = inv.barcodes();
        let missing = codes.iter().find(|b| !self.image(b).exists());
        let twice = codes
            .iter()
            .enumerate()
            .find(|(i, b)| codes[..*i].contains(b));
        if let Some(b) = missing.or(twice.map(|(_, b)| b)) {
            return Err(StoreError::Inconsistent {
                path,
                barcode: b.to_string(),
            });
        }
        Ok(inv)
    }

    /// Replace the inventory atomically (write, fsync, rename, fsync the
    /// directory).
    pub fn save(&self, inv: &Inventory) -> Result<(), StoreError> {
        let tmp = self.dir.join(INVENTORY_TMP);
        let path = self.dir.join(INVENTORY);
        let bytes = serde_json::to_vec_pretty(inv).expect("an inventory serializes");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    /// The image file of a cartridge.
    pub fn image(&self, barcode: &str) -> PathBuf {
        self.dir.join(format!("{barcode}.img"))
    }

    pub fn cartridge(&self, barcode: &str) -> Cartridge {
        Cartridge {
            path: self.image(barcode),
            barcode: barcode.to_string(),
            write_protected: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}
