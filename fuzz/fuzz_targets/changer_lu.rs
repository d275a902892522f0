//! Random CDB sequences against the changer LU over a media directory
//! (made once per process under the temporary directory, reopened for
//! every input as after a restart): no panic, every barcode in exactly
//! one element, each drive holding what the inventory says, and the saved
//! inventory equal to the one in memory. Input: a length byte (mod 17),
//! then that many CDB bytes, repeated.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sanmover::lu::changer::MediaDir;
use sanmover::lu::{ChangerLu, ImageDrive, LogicalUnit, SharedDrive};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("sanmover-fuzz-changer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let (store, inv) = MediaDir::open_or_create(dir(), 3, 6, 1 << 16).expect("media dir");
    let drives: Vec<SharedDrive> = (0..3)
        .map(|i| ImageDrive::new(&format!("FUZZDRV{i}")).shared())
        .collect();
    let mut lu = ChangerLu::new("FUZZCHG", store, inv, drives.clone()).expect("changer");
    let mut rest = data;
    let mut data_in = vec![0u8; 8192];
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize % 17).min(tail.len());
        let (cdb, tail) = tail.split_at(n);
        let _ = lu.execute(cdb, &[], &mut data_in);
        rest = tail;
        assert!(lu.inventory().is_consistent(), "a barcode in two elements");
    }
    for (d, v) in drives.iter().zip(&lu.inventory().drives) {
        let loaded = d.lock().unwrap().cartridge().map(|c| c.barcode);
        assert_eq!(loaded, v.as_ref().map(|v| v.barcode.clone()));
    }
    let (_, saved) = MediaDir::open_or_create(dir(), 3, 6, 1 << 16).expect("reopen");
    assert_eq!(&saved, lu.inventory(), "the saved inventory differs");
});
