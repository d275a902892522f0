//! The tape library of the tgt rig (tgt's SMC changer with two drives):
//! `sanmover changer` and the Changer device against it. Every test takes
//! the library lock and, when it ends (also by a failed assertion), puts
//! every cartridge back in its home slot, so tests do not depend on order.

mod common;
use common::{rig, sanmover, Run};

use std::sync::{Mutex, MutexGuard};

use sanmover::device::changer::{map_drives, DriveIdentity, MatchedBy};
use sanmover::device::{Changer, Scsi};
use sanmover::scsi::smc::{ElementAddress, ElementType, TransportGeometryPage};
use sanmover::transport::iscsi::{IscsiOptions, IscsiTransport};
use sanmover::transport::url::IscsiUrl;

fn connect(url: &str) -> IscsiTransport {
    let u = IscsiUrl::parse(url).unwrap();
    IscsiTransport::connect(&u, &IscsiOptions::default()).unwrap()
}

fn changer() -> &'static str {
    rig().get("SANMOVER_RIG_CHANGER")
}

fn drive_url(n: u16) -> &'static str {
    rig().get(&format!("SANMOVER_RIG_LIB_DRIVE{n}"))
}

/// Cartridge LIB00N lives in slot N (LIB009 in the import/export slot 11).
fn home_slot(label: &str) -> u16 {
    let n: u16 = label.trim_start_matches("LIB").parse().unwrap();
    if n == 9 {
        11
    } else {
        n
    }
}

/// The library, held by one test at a time, and put back on drop.
struct Library(#[allow(dead_code)] MutexGuard<'static, ()>);

fn library() -> Library {
    static LOCK: Mutex<()> = Mutex::new(());
    let g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    restore_home();
    Library(g)
}

impl Drop for Library {
    fn drop(&mut self) {
        restore_home();
    }
}

/// Move every cartridge to its home slot, through MOVE MEDIUM.
fn restore_home() {
    let mut ch = Changer::open(connect(changer())).unwrap();
    for _ in 0..32 {
        let inv = ch.inventory().unwrap();
        let mut misplaced = Vec::new();
        for (t, d) in [&inv.drives, &inv.storage, &inv.import_export]
            .into_iter()
            .flatten()
            .map(|d| (inv.element(d.address).unwrap().0, d))
        {
            let Some(tag) = d.primary_tag.filter(|_| d.is_full()) else {
                continue;
            };
            let home = inv.slot(home_slot(&tag.label())).unwrap();
            if home.address != d.address {
                misplaced.push((t, d.address, home.address, home.is_full()));
            }
        }
        if misplaced.is_empty() {
            return;
        }
        let free = misplaced.iter().find(|m| !m.3);
        match free {
            Some(&(_, from, to, _)) => ch.move_medium(from, to).unwrap(),
            // Only cycles are left: park one in an empty non-home slot.
            None => {
                let spare = [9u16, 10]
                    .into_iter()
                    .map(|n| inv.slot(n).unwrap())
                    .find(|d| !d.is_full())
                    .expect("an empty slot 9 or 10");
                ch.move_medium(misplaced[0].1, spare.address).unwrap();
            }
        }
    }
    panic!("the library did not settle back in its initial state");
}

fn changer_cmd(args: &[&str]) -> Run {
    let mut all = vec!["changer", changer()];
    all.extend_from_slice(args);
    sanmover(all)
}

fn changer_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "changer", changer()];
    all.extend_from_slice(args);
    sanmover(all).ok().json()
}

fn status() -> serde_json::Value {
    changer_json(&["status"])
}

fn slot_tag(st: &serde_json::Value, slot: u16) -> Option<String> {
    let s = &st["slots"][slot as usize - 1];
    assert_eq!(s["slot"], slot);
    s["volume_tag"].as_str().map(str::to_string)
}

#[test]
fn status_matches_the_rig_layout_and_maps_drives_by_dvcid() {
    let _l = library();
    let r = rig();
    let st = changer_json(&["status", "--drive", drive_url(1), "--drive", drive_url(0)]);
    // Two real drives and tgt's spare element (test-rig/README.md).
    let drives = st["drives"].as_array().unwrap();
    assert_eq!(drives.len(), 3);
    for n in 0..2u16 {
        let d = &drives[n as usize];
        assert_eq!(d["drive"], n);
        assert_eq!(d["full"], false);
        let serial = r.get(&format!("SANMOVER_RIG_LIB_DRIVE{n}_SERIAL"));
        assert!(d["identifier"].as_str().unwrap().ends_with(serial), "{d}");
        assert_eq!(d["lu"], drive_url(n), "{d}");
        assert_eq!(d["matched_by"], "unit-serial");
    }
    assert!(drives[2]["identifier"].is_null());
    assert!(drives[2]["lu"].is_null());

    let slots: usize = r.get("SANMOVER_RIG_LIB_SLOTS").parse().unwrap();
    assert_eq!(st["slots"].as_array().unwrap().len(), slots + 1);
    for (i, b) in r.get("SANMOVER_RIG_LIB_BARCODES").split(',').enumerate() {
        assert_eq!(slot_tag(&st, i as u16 + 1).as_deref(), Some(b));
    }
    for n in 9..=10 {
        assert_eq!(st["slots"][n - 1]["full"], false);
    }
    let ie = &st["slots"][slots];
    assert_eq!(ie["import_export"], true);
    assert_eq!(ie["volume_tag"], r.get("SANMOVER_RIG_LIB_IE_BARCODE"));
    assert_eq!(st["layout"]["storage"]["first"], 1024);
    assert_eq!(st["layout"]["data_transfer"]["count"], 3);

    let text = changer_cmd(&["status"]).ok().stdout;
    assert!(
        text.contains(":3 Drives, 11 Slots ( 1 Import/Export )"),
        "{text}"
    );
    assert!(text.contains("Data Transfer Element 0:Empty\n"), "{text}");
    assert!(
        text.contains("      Storage Element 1:Full :VolumeTag=LIB001\n"),
        "{text}"
    );
    assert!(text.contains("      Storage Element 9:Empty\n"), "{text}");
    assert!(
        text.contains("      Storage Element 11 IMPORT/EXPORT:Full :VolumeTag=LIB009\n"),
        "{text}"
    );
}

/// The same mapping through the library API: by identifier, whatever order
/// the LUs come in.
#[test]
fn device_layer_maps_each_drive_element_to_its_lu() {
    let _l = library();
    let mut ch = Changer::open(connect(changer())).unwrap();
    assert_eq!(ch.layout.storage.count, 10);
    let caps = ch.capabilities().unwrap();
    assert!(caps.can_move(ElementType::STORAGE, ElementType::DATA_TRANSFER));
    let geo: TransportGeometryPage = ch.mode_page().unwrap();
    assert_eq!(geo.transports.len(), 1);
    assert!(!geo.transports[0].rotate);
    let inv = ch.inventory().unwrap();
    let lus: Vec<DriveIdentity> = [1u16, 0]
        .iter()
        .map(|&n| {
            let mut s = Scsi::new(connect(drive_url(n)));
            DriveIdentity::probe(&mut s, drive_url(n)).unwrap()
        })
        .collect();
    let m = map_drives(&inv.drives, &lus).unwrap();
    assert_eq!(m[0].lu.map(|i| lus[i].device.as_str()), Some(drive_url(0)));
    assert_eq!(m[1].lu.map(|i| lus[i].device.as_str()), Some(drive_url(1)));
    assert_eq!(m[0].matched_by, Some(MatchedBy::UnitSerial));
    assert_eq!(m[2].lu, None);
    assert_eq!(
        inv.element(ElementAddress(32)).map(|e| e.0),
        Some(ElementType::IMPORT_EXPORT)
    );
}

#[test]
fn load_makes_the_drive_read_the_cartridge_and_unload_returns_it() {
    let _l = library();
    let drive = drive_url(0);
    // Empty drive: NOT READY, MEDIUM NOT PRESENT.
    let tur = sanmover(["raw", drive, "00", "00", "00", "00", "00", "00"]);
    assert_eq!(tur.code, 2, "{}", tur.stdout);
    assert!(tur.stdout.contains("MEDIUM NOT PRESENT"), "{}", tur.stdout);

    let out = changer_cmd(&["load", "2"]).ok().stdout;
    assert!(
        out.contains("Loading media (LIB002) from Storage Element 2"),
        "{out}"
    );
    sanmover(["raw", drive, "00", "00", "00", "00", "00", "00"]).ok();
    let limits = sanmover(["--json", "tape", drive, "limits"]).ok().json();
    assert!(limits["max_block_length"].as_u64().unwrap() > 0, "{limits}");

    let text = changer_cmd(&["status"]).ok().stdout;
    assert!(
        text.contains("Data Transfer Element 0:Full (Storage Element 2 Loaded):VolumeTag = LIB002"),
        "{text}"
    );
    assert!(text.contains("      Storage Element 2:Empty\n"), "{text}");

    // No slot: back where it came from.
    let j = changer_json(&["unload"]);
    assert_eq!(j["moves"][0]["to"]["number"], 2);
    assert_eq!(j["moves"][0]["volume_tag"], "LIB002");
    assert_eq!(slot_tag(&status(), 2).as_deref(), Some("LIB002"));
    assert_eq!(
        sanmover(["raw", drive, "00", "00", "00", "00", "00", "00"]).code,
        2
    );
}

#[test]
fn transfer_and_exchange_move_the_cartridges() {
    let _l = library();
    changer_cmd(&["transfer", "1", "9"]).ok();
    let st = status();
    assert_eq!(slot_tag(&st, 9).as_deref(), Some("LIB001"));
    assert_eq!(slot_tag(&st, 1), None);
    changer_cmd(&["transfer", "9", "1"]).ok();

    // A swap: tgt has no EXCHANGE MEDIUM, so it goes by moves through an
    // empty slot, and says so.
    let r = changer_cmd(&["exchange", "3", "4"]).ok();
    assert!(r.stderr.contains("no EXCHANGE MEDIUM"), "{}", r.stderr);
    let st = status();
    assert_eq!(slot_tag(&st, 3).as_deref(), Some("LIB004"));
    assert_eq!(slot_tag(&st, 4).as_deref(), Some("LIB003"));
    assert_eq!(slot_tag(&st, 9), None);
    let j = changer_json(&["exchange", "3", "4"]);
    assert!(j["moves"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["by_moves"] == true));
    let st = status();
    assert_eq!(slot_tag(&st, 3).as_deref(), Some("LIB003"));

    // Three places: 5 goes to 6, and 6 to the empty slot 10.
    changer_cmd(&["exchange", "5", "6", "10"]).ok();
    let st = status();
    assert_eq!(slot_tag(&st, 6).as_deref(), Some("LIB005"));
    assert_eq!(slot_tag(&st, 10).as_deref(), Some("LIB006"));
    assert_eq!(slot_tag(&st, 5), None);
}

#[test]
fn refusals_carry_the_decoded_sense_and_a_nonzero_exit() {
    let _l = library();
    changer_cmd(&["load", "1", "0"]).ok();
    // Full destination.
    let r = changer_cmd(&["load", "2", "0"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("MOVE MEDIUM")
            && r.stderr.contains("ILLEGAL REQUEST")
            && r.stderr.contains("MEDIUM DESTINATION ELEMENT FULL (3B/0D)"),
        "{}",
        r.stderr
    );
    // Empty source, with --json.
    let mut args = vec!["--json", "changer", changer()];
    args.extend(["transfer", "9", "10"]);
    let r = sanmover(args);
    assert_eq!(r.code, 5);
    let j = r.json();
    assert_eq!(j["exit_code"], 5);
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("MEDIUM SOURCE ELEMENT EMPTY (3B/0E)"),
        "{j}"
    );
    // Numbers the library does not have, before any I/O to the robot.
    let r = changer_cmd(&["load", "12"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no slot 12: this changer has slots 1 to 11"),
        "{}",
        r.stderr
    );
    let r = changer_cmd(&["load", "2", "3"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // An empty drive has nothing to unload.
    let r = changer_cmd(&["unload", "", "1"]);
    assert_eq!(r.code, 1, "clap refuses an empty number");
    let r = changer_cmd(&["unload", "5", "1"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("3B/0E"), "{}", r.stderr);
    let r = sanmover(["changer", changer(), "next", "1"]);
    assert_eq!(r.code, 45, "{}", r.stderr);
    assert!(r.stderr.contains("is empty"), "{}", r.stderr);
}

#[test]
fn first_next_last_previous_walk_the_full_slots() {
    let _l = library();
    let loaded = |st: &serde_json::Value| st["drives"][1]["volume_tag"].clone();
    changer_cmd(&["first", "1"]).ok();
    assert_eq!(loaded(&status()), "LIB001");
    changer_cmd(&["next", "1"]).ok();
    let st = status();
    assert_eq!(loaded(&st), "LIB002");
    assert_eq!(slot_tag(&st, 1).as_deref(), Some("LIB001"));
    // The last full slot is the import/export slot 11.
    changer_cmd(&["last", "1"]).ok();
    assert_eq!(loaded(&status()), "LIB009");
    // Before 11: 10 and 9 are empty, so 8.
    changer_cmd(&["previous", "1"]).ok();
    let st = status();
    assert_eq!(loaded(&st), "LIB008");
    assert_eq!(st["slots"][10]["volume_tag"], "LIB009");
    changer_cmd(&["unload", "8", "1"]).ok();
}

#[test]
fn element_addresses_and_inventory() {
    let _l = library();
    // Slot 3 is element 1026, drive 1 is element 257.
    let j = changer_json(&["--element", "load", "1026", "257"]);
    assert_eq!(j["moves"][0]["from"]["number"], 3);
    assert_eq!(j["moves"][0]["to"]["number"], 1);
    assert_eq!(status()["drives"][1]["volume_tag"], "LIB003");
    let r = changer_cmd(&["--element", "load", "3", "257"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("element 3 is not a storage"),
        "{}",
        r.stderr
    );
    changer_cmd(&["--element", "unload", "1026", "257"]).ok();
    // tgt 1.0.85 accepts INITIALIZE ELEMENT STATUS (and has nothing to scan).
    let j = changer_json(&["inventory"]);
    assert_eq!(j["done"], true);
    // What tgt lacks is refused as a missing command, decoded.
    let mut ch = Changer::open(connect(changer())).unwrap();
    let e = ch.position_to(ElementAddress(1024)).unwrap_err();
    assert!(e.is_unsupported_command(), "{e}");
    let e = ch.prevent_removal(true).unwrap_err();
    assert!(
        e.to_string().contains("PREVENT ALLOW MEDIUM REMOVAL"),
        "{e}"
    );
}
