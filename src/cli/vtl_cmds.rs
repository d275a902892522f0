//! `sanmover vtl`: a virtual tape library in the foreground. Our iSCSI
//! target serves the changer LU at LUN 0 and one tape drive LU per drive
//! at LUNs 1 to N, over the cartridge images of a media directory.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde::Serialize;

use super::args::VtlArgs;
use super::exit::{self, UsageError};
use super::output::Out;
use super::router_cmds::Access;
use crate::frontend::{ConnLimits, Server, SharedLu, TargetDef};
use crate::lu::changer::{MediaDir, StoreError};
use crate::lu::{ChangerLu, ImageDrive, SharedDrive};

/// The library's target name unless --target-name says otherwise.
pub const DEFAULT_TARGET_NAME: &str = "iqn.2026-12.org.sanmover:vtl";

/// What the first stdout line says (a JSON object with --json).
#[derive(Debug, Serialize)]
struct Ready {
    listen: std::net::SocketAddr,
    target: String,
    changer_lun: u64,
    drive_luns: Vec<u64>,
    media: PathBuf,
    slots: usize,
    cartridges: usize,
}

/// A serial stem of this library: from its media directory, so two
/// libraries on one host differ and one library keeps its serials (and so
/// the VPD 83h designators the changer's DVCID reports) across restarts.
fn serial_stem(media: &std::path::Path) -> String {
    let path = std::fs::canonicalize(media).unwrap_or_else(|_| media.to_path_buf());
    let h = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0x811c_9dc5u32, |h, &b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
    format!("VTL{h:08X}")
}

/// The drive LUs, in element order.
fn drives(stem: &str, n: usize) -> Vec<SharedDrive> {
    (0..n)
        .map(|i| ImageDrive::new(&format!("{stem}D{i:02}")).shared())
        .collect()
}

pub fn run(out: &Out, a: &VtlArgs) -> Result<u8> {
    let name = a
        .target_name
        .clone()
        .unwrap_or_else(|| DEFAULT_TARGET_NAME.to_string());
    let access = Access {
        listen: a.listen,
        allow: a.allow.clone(),
        chap_file: a.chap_file.clone(),
        insecure: a.insecure,
    };
    let mut target = access.target(ConnLimits::default())?;
    if a.insecure {
        eprintln!(
            "sanmover vtl: warning: --insecure: a non-loopback listener needs neither CHAP nor an allow-list"
        );
    }
    let (n, m) = (a.drives as usize, a.slots as usize);
    let (store, inv) =
        MediaDir::open_or_create(&a.media, n, m, a.capacity).map_err(|e| match e {
            e @ StoreError::Layout { .. } => anyhow::Error::new(UsageError(e.to_string())),
            e => anyhow::Error::new(e).context(format!("media directory {}", a.media.display())),
        })?;
    let cartridges = inv.barcodes().len();
    let stem = serial_stem(&a.media);
    let ds = drives(&stem, n);
    let changer = ChangerLu::new(&format!("{stem}C"), store, inv, ds.clone())
        .with_context(|| format!("loading the drives from {}", a.media.display()))?;
    let mut luns: Vec<(u64, SharedLu)> = vec![(0, Arc::new(Mutex::new(changer)))];
    luns.extend(
        ds.iter()
            .enumerate()
            .map(|(i, d)| (i as u64 + 1, ImageDrive::as_lu(d))),
    );
    target.targets = vec![TargetDef {
        name: name.clone(),
        luns,
    }];
    let server = Server::bind(target).with_context(|| format!("listening on {}", a.listen))?;
    let ready = Ready {
        listen: server.local_addr(),
        target: name,
        changer_lun: 0,
        drive_luns: (1..=n as u64).collect(),
        media: a.media.clone(),
        slots: m,
        cartridges,
    };
    announce(out, &ready)?;
    server.run().context("serving")?;
    Ok(exit::OK)
}

/// One line, the contract for scripts and tests.
fn announce(out: &Out, r: &Ready) -> Result<()> {
    let mut o = std::io::stdout();
    if out.json {
        writeln!(o, "{}", serde_json::to_string(r)?)?;
    } else {
        writeln!(
            o,
            "sanmover vtl: listening on {}, target {}, changer LUN 0, drives LUN 1-{}, media {} ({} slots, {} cartridges)",
            r.listen,
            r.target,
            r.drive_luns.len(),
            r.media.display(),
            r.slots,
            r.cartridges
        )?;
    }
    o.flush()?;
    Ok(())
}
