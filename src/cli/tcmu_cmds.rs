//! `sanmover tcmu`: a library's units (the changer and its drives, over the
//! cartridge images of a media directory, as `sanmover vtl` has them)
//! served to LIO through TCMU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::args::TcmuArgs;
use super::vtl_cmds::{open_library, Library};
use crate::engine::interrupt;
use crate::frontend::SharedLu;
use crate::lu::ImageDrive;
use crate::tcmu::Handler;

pub fn run(a: &TcmuArgs) -> Result<u8> {
    let lib = open_library(&a.library)?;
    let stop = interrupt::install_handlers().context("cannot install signal handlers")?;
    let handler = Handler {
        subtype: a.subtype.clone(),
        sysfs: a.sysfs.clone(),
        units: units(lib),
    };
    eprintln!(
        "sanmover tcmu: serving the library of {} (changer, drive0..drive{}) to backstores with dev_config={}/UNIT",
        a.library.media.display(),
        a.library.drives.saturating_sub(1),
        a.subtype
    );
    handler
        .run(|| stop.raised().is_some())
        .context("TCMU handler failed")?;
    Ok(0)
}

/// The units by the name a backstore's dev_config gives them.
fn units(lib: Library) -> HashMap<String, SharedLu> {
    let mut units: HashMap<String, SharedLu> = lib
        .drives
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("drive{i}"), ImageDrive::as_lu(d)))
        .collect();
    units.insert("changer".into(), Arc::new(Mutex::new(lib.changer)));
    units
}
