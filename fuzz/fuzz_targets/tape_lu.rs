//! Random CDB sequences against the tape drive LU over a cartridge image
//! in a temporary directory, in step with the same drive over memory: no
//! panic, both answer alike, and after power cycles and at the end the
//! image reopens holding exactly what was written
//! (`sanmover::lu::tape_exercise`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // /dev/shm where there is one: the drive syncs its image, and a sync
    // on tmpfs costs nothing, so more sequences run per second.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("sanmover-fuzz-tape-lu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("fuzz temp dir");
    let r = sanmover::lu::tape_exercise::exercise(&dir, data);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = r {
        panic!("tape LU: {e}");
    }
});
