//! `sanmover ... | head`: a reader that closes the pipe early is not an
//! error, and never a panic.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn big_trace(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("big.trace");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    writeln!(
        f,
        r#"{{"sanmover_trace":1,"tool":"t","data":"full","started_unix_ms":0}}"#
    )
    .unwrap();
    for seq in 1..=5000 {
        writeln!(
            f,
            r#"{{"seq":{seq},"nexus":{{"initiator":"iqn.x:i","target":"t"}},"cdb":"25000000000000000000","dir":"in","alloc_len":8,"status":0,"data_in":{{"len":8,"hex":"0001ffff00000200","sha256":"00"}},"start_us":{seq},"elapsed_us":1}}"#
        )
        .unwrap();
    }
    p
}

fn closed_early(json: bool) {
    let dir = tempfile::tempdir().unwrap();
    let trace = big_trace(dir.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sanmover"));
    if json {
        cmd.arg("--json");
    }
    let mut child = cmd
        .args(["trace", "show"])
        .arg(&trace)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here, like `head -c 64`.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked"),
        "panicked on a closed pipe: {err}"
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(
        err.is_empty(),
        "a closed pipe is not worth a message: {err}"
    );
}

#[test]
fn text_output_into_a_closed_pipe() {
    closed_early(false);
}

#[test]
fn json_output_into_a_closed_pipe() {
    closed_early(true);
}
