//! Serve in-memory disks over our own iSCSI target, for peers such as
//! libiscsi's iscsi-test-cu.
//!
//! ```text
//! target_memdisk ADDR LUNS BLOCKS [IQN]
//! ```
//!
//! LUNS disks of BLOCKS 512-byte blocks at LUN 0..LUNS of target IQN
//! (default iqn.2026-01.org.sanmover:memdisk), listening on ADDR (such as
//! 127.0.0.1:0; an address other than loopback is refused, as this example
//! configures neither CHAP nor an allow-list). Prints `listening on
//! HOST:PORT` once bound, then serves until killed. `RUST_LOG=debug` for
//! the protocol log.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use sanmover::frontend::{Server, SharedLu, TargetConfig, TargetDef};
use sanmover::lu::MemDisk;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, luns, blocks, iqn) = match &args[..] {
        [a, l, b] => (a, l, b, "iqn.2026-01.org.sanmover:memdisk".to_string()),
        [a, l, b, i] => (a, l, b, i.clone()),
        _ => {
            eprintln!("usage: target_memdisk ADDR LUNS BLOCKS [IQN]");
            return ExitCode::from(2);
        }
    };
    let (Ok(addr), Ok(luns), Ok(blocks)) = (addr.parse(), luns.parse::<u64>(), blocks.parse())
    else {
        eprintln!("target_memdisk: bad ADDR, LUNS or BLOCKS");
        return ExitCode::from(2);
    };
    let luns = (0..luns)
        .map(|l| {
            let lu: SharedLu = Arc::new(Mutex::new(MemDisk::new(&format!("MD{l}"), blocks, 512)));
            (l, lu)
        })
        .collect();
    let cfg = TargetConfig::new(addr, vec![TargetDef { name: iqn, luns }]);
    let server = match Server::bind(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("target_memdisk: bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.local_addr());
    let _ = std::io::stdout().flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("target_memdisk: {e}");
            ExitCode::FAILURE
        }
    }
}
