//! `sanmover tcmu`: the library's units served to LIO through TCMU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use super::args::TcmuArgs;
use crate::engine::interrupt;
use crate::frontend::SharedLu;
use crate::lu::MemTape;
use crate::tcmu::Handler;

pub fn run(a: &TcmuArgs) -> Result<u8> {
    if a.drives == 0 || a.drives > 64 {
        bail!("--drives {} is out of range (1 to 64)", a.drives);
    }
    std::fs::create_dir_all(&a.media)
        .with_context(|| format!("cannot create --media {}", a.media.display()))?;
    let stop = interrupt::install_handlers().context("cannot install signal handlers")?;
    let handler = Handler {
        subtype: a.subtype.clone(),
        sysfs: a.sysfs.clone(),
        units: units(a),
    };
    eprintln!(
        "sanmover tcmu: serving {} drive(s) to backstores with dev_config={}/UNIT",
        a.drives, a.subtype
    );
    handler
        .run(|| stop.raised().is_some())
        .context("TCMU handler failed")?;
    Ok(0)
}

fn units(a: &TcmuArgs) -> HashMap<String, SharedLu> {
    (0..a.drives)
        .map(|i| {
            let lu: SharedLu = Arc::new(Mutex::new(MemTape::new(&format!("TCMU{i:04}"), 64 << 20)));
            (format!("drive{i}"), lu)
        })
        .collect()
}
