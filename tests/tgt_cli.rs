//! The CLI against the tgt rig: discovery, inquiry, VPD, readcap, raw, and
//! bad input. Each case checks what a user would read. The tape's cases
//! are in tests/suites/cli.rs and run on tgt's tape and on a drive of
//! `sanmover vtl` (modules `tape::tgt` and `tape::vtl`).

mod common;
use common::{rig, sanmover};
mod suites {
    pub mod cli;
}
use suites::cli;

mod tape {
    crate::drive_tests!(
        tgt,
        Tgt,
        cli,
        [
            inquiry_says_tape,
            vpd_pages_of_the_tape,
            readcap_of_a_tape_says_it_is_a_tape,
            tape_seek_is_locate,
            erase_needs_force,
            zero_blocks_and_bad_sizes_are_refused_before_any_io,
        ]
    );
    crate::drive_tests!(
        vtl,
        Vtl,
        cli,
        [
            inquiry_says_tape,
            vpd_pages_of_the_tape,
            readcap_of_a_tape_says_it_is_a_tape,
            tape_seek_is_locate,
            erase_needs_force,
            zero_blocks_and_bad_sizes_are_refused_before_any_io,
        ]
    );
}

#[test]
fn inquiry_disk_type() {
    let r = rig();
    let d = sanmover(["--json", "inquiry", r.disk()]).ok().json();
    assert_eq!(d["device_type"], 0, "{d}");
    assert_eq!(d["vendor"], "IET");
    // The tape's INQUIRY: tape::inquiry_says_tape, on tgt and the VTL.
}

#[test]
fn vpd_pages_of_the_disk() {
    let r = rig();
    // The tape's pages: tape::vpd_pages_of_the_tape, on tgt and the VTL.
    let dev = r.disk();
    let sp = sanmover(["--json", "inquiry", dev, "--vpd", "sp"])
        .ok()
        .json();
    let pages: Vec<u64> = sp["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(pages.contains(&0x83) && pages.contains(&0x80), "{pages:?}");

    let di = sanmover(["--json", "inquiry", dev, "--vpd", "0x83"])
        .ok()
        .json();
    let ds = di["designators"].as_array().unwrap();
    // tgt: a T10 vendor id (ASCII) and NAA designators (binary, LU).
    assert!(
        ds.iter()
            .any(|d| d["designator_type"] == 3 && d["code_set"] == 1),
        "no binary NAA in {di}"
    );
    assert!(
        ds.iter().any(|d| d["designator_type"] == 1),
        "no T10 id in {di}"
    );

    let sn = sanmover(["--json", "inquiry", dev, "--vpd", "sn"])
        .ok()
        .json();
    assert!(!sn["serial"].as_str().unwrap().is_empty(), "{sn}");
    let text = sanmover(["inquiry", r.disk(), "--vpd", "di"]).ok().stdout;
    assert!(text.contains("designator for EXTENDED COPY"), "{text}");
}

#[test]
fn readcap_of_the_64mib_disk() {
    let r = rig();
    let c = sanmover(["--json", "readcap", r.disk()]).ok().json();
    assert_eq!(c["block_size"], 512);
    assert_eq!(c["blocks"].as_u64().unwrap() * 512, 64 * 1024 * 1024, "{c}");
    let text = sanmover(["readcap", r.disk()]).ok().stdout;
    assert!(text.contains("Logical block length=512 bytes"), "{text}");
}

#[test]
fn raw_test_unit_ready_and_inquiry() {
    let r = rig();
    let tur = sanmover(["raw", r.disk(), "00", "00", "00", "00", "00", "00"]).ok();
    assert!(tur.stdout.contains("SCSI Status: GOOD"), "{}", tur.stdout);
    let inq = sanmover(["--json", "raw", r.disk(), "120000002400", "--in", "36"])
        .ok()
        .json();
    assert_eq!(inq["status"], 0);
    assert_eq!(inq["data_in_len"], 36);
    // "IET     " at bytes 8..16 of the standard data.
    assert!(
        inq["data_in_hex"].as_str().unwrap()[16..32] == *"4945542020202020",
        "{inq}"
    );
}

#[test]
fn raw_save_writes_the_data_in() {
    let r = rig();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("inq.bin");
    sanmover([
        "raw",
        r.disk(),
        "12 00 00 00 24 00",
        "--in",
        "36",
        "--save",
        f.to_str().unwrap(),
    ])
    .ok();
    let data = std::fs::read(&f).unwrap();
    assert_eq!(data.len(), 36);
    assert_eq!(&data[8..11], b"IET");
}

#[test]
fn luns_discovers_both_targets() {
    let r = rig();
    let url = format!("iscsi://{}", r.portal());
    let v = sanmover(["--json", "luns", &url]).ok().json();
    let targets = v.as_array().unwrap();
    assert!(targets.len() >= 2, "{v}");
    let types: Vec<u64> = targets
        .iter()
        .flat_map(|t| t["luns"].as_array().unwrap().iter())
        .filter_map(|l| l["device_type"].as_u64())
        .collect();
    assert!(types.contains(&0) && types.contains(&1), "{types:?}");
    // Each LUN carries a ready-made address, and disks their size.
    let disk = targets
        .iter()
        .flat_map(|t| t["luns"].as_array().unwrap().iter())
        .find(|l| l["url"] == r.disk())
        .unwrap_or_else(|| panic!("no LUN with url {} in {v}", r.disk()));
    assert_eq!(disk["bytes"], 64 << 20, "{disk}");
    assert_eq!(disk["block_size"], 512, "{disk}");
    let text = sanmover(["luns", &url]).ok().stdout;
    assert!(
        text.contains(r.disk()) && text.contains("64.0 MiB"),
        "{text}"
    );
}

#[test]
fn sense_reads_files_and_stdin_and_speaks_spc() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    // INVALID FIELD IN CDB, field pointer at CDB byte 2.
    let hex = "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c0 00 02";
    let txt = dir.path().join("sense.txt");
    std::fs::write(&txt, format!("# from sg_raw\n{hex}\n")).unwrap();
    let from_file = sanmover(["sense", "--file", txt.to_str().unwrap()])
        .ok()
        .stdout;
    assert!(
        from_file.contains("FIELD POINTER=CDB byte 2"),
        "{from_file}"
    );
    assert!(
        !from_file.contains("FieldPointer"),
        "Rust debug text: {from_file}"
    );
    let bin = dir.path().join("sense.bin");
    std::fs::write(&bin, hex::decode(hex.replace(' ', "")).unwrap()).unwrap();
    let from_bin = sanmover(["sense", "--binary", bin.to_str().unwrap()])
        .ok()
        .stdout;
    assert_eq!(from_bin, from_file);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .args(["sense", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(hex.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), from_file);
    let missing = sanmover(["sense", "--file", "/nonexistent/sense.txt"]);
    assert_eq!(missing.code, 15, "{}", missing.stderr);
}

#[test]
fn sense_offline_decodes_tgt_filemark() {
    let v = sanmover([
        "--json",
        "sense",
        "f0 00 80 00 00 10 00 0a 00 00 00 00 00 01 00 00 00 00",
    ])
    .ok()
    .json();
    assert_eq!(v["filemark"], true);
    assert_eq!(v["information"], 4096);
    // An odd number of digits in a word is a usage error, not a guess.
    let odd = sanmover(["sense", "f000800000100000a000000000001000000"]);
    assert_eq!(odd.code, 1, "{}", odd.stderr);
    assert!(
        odd.stderr.contains("odd number of hex digits"),
        "{}",
        odd.stderr
    );
    // Garbage that is hex but not sense: refused, never a panic.
    let junk = sanmover(["sense", "12 34"]);
    assert_eq!(junk.code, 1, "{}", junk.stderr);
    let t = sanmover(["sense", "70 00 05 00 00 00 00 0a 00 00 00 00 20 00"]).ok();
    assert!(
        t.stdout.contains("INVALID COMMAND OPERATION CODE"),
        "{}",
        t.stdout
    );
}

// ---- bad input: each a clear error and a non-zero exit ----

#[test]
fn malformed_url_is_a_syntax_error() {
    for bad in [
        "iscsi://127.0.0.1",
        "iscsi://127.0.0.1:99999/iqn.x/0",
        "iscsi://127.0.0.1:3260/iqn.x/notalun",
        "iscsi:///iqn.x/0",
        "http://example/x",
    ] {
        let r = sanmover(["inquiry", bad]);
        assert_eq!(r.code, 1, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("sanmover:"), "{bad}: {}", r.stderr);
    }
}

#[test]
fn closed_port_is_a_connect_error() {
    // Bind then drop a listener: a loopback port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("iscsi://127.0.0.1:{port}/iqn.2026-11.org.sanmover:none/0");
    let t0 = std::time::Instant::now();
    let r = sanmover(["inquiry", &url]);
    assert_eq!(r.code, 34, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        r.stderr
    );
    // A refused connection must not wait for a long timeout.
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn unknown_target_is_a_login_error() {
    let r = rig();
    let url = format!(
        "iscsi://{}/iqn.2026-11.org.sanmover:no-such-target/1",
        r.portal()
    );
    let out = sanmover(["inquiry", &url]);
    assert_eq!(out.code, 35, "{}", out.stderr);
}

#[test]
fn missing_lun_is_illegal_request() {
    let r = rig();
    let disk = r.disk();
    let url = format!("{}/9", disk.rsplit_once('/').unwrap().0);
    let out = sanmover(["inquiry", &url]);
    // tgt answers INQUIRY for an unmapped LUN with PQ=3/PDT=0x1f or with
    // ILLEGAL REQUEST 25/00; readcap must fail either way.
    let rc = sanmover(["readcap", &url]);
    assert_ne!(rc.code, 0, "readcap on LUN 9 succeeded: {}", rc.stdout);
    assert!(
        rc.stderr.contains("no logical unit at this LUN")
            || rc.stderr.contains("LOGICAL UNIT NOT SUPPORTED"),
        "{}\n(inquiry said: {} {})",
        rc.stderr,
        out.stdout,
        out.stderr
    );
}

#[test]
fn tape_op_on_a_disk_is_refused() {
    let r = rig();
    let out = sanmover(["tape", r.disk(), "rewind"]);
    assert_eq!(out.code, 43, "{}", out.stderr);
    assert!(out.stderr.contains("not a tape device"), "{}", out.stderr);
}

#[test]
fn near_miss_addresses_get_a_hint_and_exit_1() {
    for bad in ["iscsi:/127.0.0.1/iqn.x/0", "sg0", "127.0.0.1:3260/iqn.x/0"] {
        let out = sanmover(["inquiry", bad]);
        assert_eq!(out.code, 1, "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("did you mean iscsi://"),
            "{bad}: {}",
            out.stderr
        );
        // One message, not the OS error twice.
        assert!(!out.stderr.contains("os error"), "{bad}: {}", out.stderr);
    }
}

#[test]
fn malformed_set_id_is_the_set_id_code() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("c.db");
    for bad in ["zz", "ab!", "ab"] {
        let out = sanmover(["--catalog", cat.to_str().unwrap(), "verify", bad]);
        assert_eq!(out.code, 46, "{bad}: {}", out.stderr);
    }
}

#[test]
fn json_holds_for_argument_errors() {
    let out = sanmover(["--json", "inquiry", "--no-such-option"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["exit_code"], 1);
    assert!(
        v["error"].as_str().unwrap().contains("--no-such-option"),
        "{v}"
    );
}

#[test]
fn raw_send_reports_the_residual_without_verbose() {
    let r = rig();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("one-block.bin");
    std::fs::write(&f, [0x5au8; 512]).unwrap();
    // WRITE(10) of 0 blocks with 512 bytes offered: nothing is written,
    // and the target takes none of the data.
    let args = |json: bool| {
        let mut a = vec!["raw", "--send", f.to_str().unwrap(), r.disk2()];
        a.extend(["2a", "00", "00", "00", "00", "10", "00", "00", "00", "00"]);
        if json {
            a.insert(0, "--json");
        }
        sanmover(a).ok()
    };
    let text = args(false).stdout;
    assert!(text.contains("Sent 512 bytes of data"), "{text}");
    assert!(
        text.contains(
            "Residual: underflow of 512 bytes (the command took fewer bytes than were sent)"
        ),
        "{text}"
    );
    let v = args(true).json();
    assert_eq!(v["data_out_len"], 512, "{v}");
    assert_eq!(v["residual"]["kind"], "underflow", "{v}");
    assert_eq!(v["residual"]["bytes"], 512, "{v}");
    // No residual, no key: the JSON of a plain command is as before.
    let tur = sanmover(["--json", "raw", r.disk(), "00 00 00 00 00 00"])
        .ok()
        .json();
    assert!(
        tur.get("residual").is_none() && tur.get("data_out_len").is_none(),
        "{tur}"
    );
}

#[test]
fn usage_lines_never_show_global_options_taken_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sanmover"))
        .args(["verify", "--lba", "3"])
        .env("SANMOVER_CATALOG", dir.path().join("c.db"))
        .env("SANMOVER_INITIATOR", "iqn.2024-01.ex:backup1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let usage = err.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert_eq!(
        usage,
        "Usage: sanmover verify --compare-target <DEV> --lba <A> <SET>"
    );
}

#[test]
fn every_command_has_help_with_examples() {
    let top = sanmover(["--help"]).ok().stdout;
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("  ").filter(|r| !r.starts_with(' ')))
        .filter_map(|r| r.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(commands.len() >= 14, "{commands:?}");
    for c in commands {
        let h = sanmover(["help", &c]).ok().stdout;
        let ex = h
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{c}: {h}"));
        assert!(
            ex.lines().filter(|l| l.starts_with("  sanmover ")).count() >= 2,
            "{c}: {h}"
        );
        let global = h
            .find("\nGlobal options:\n")
            .unwrap_or_else(|| panic!("{c}: {h}"));
        if let Some(own) = h.find("\nOptions:\n") {
            assert!(own < global, "{c}: {h}");
        }
        assert!(!h.contains("later releases"), "{c}");
    }
}
