//! The disk suite (SBC-4 and the SPC-4 pages a disk reports): identity,
//! capacity, READ/WRITE at the last LBA and past it, VPD 00h/80h/83h/B0h/
//! B1h consistency, and LU designators that no other LU shares.

use crate::device::disk::Capacity;
use crate::device::DeviceError;
use crate::scsi::sbc::{Capacity10, Capacity16, Read16, ReadCapacity10, ReadCapacity16, Write16};
use crate::scsi::sense::{Asc, SenseKey};
use crate::scsi::spc::{
    BlockDeviceCharacteristicsVpd, BlockLimitsVpd, DeviceIdentification, Inquiry, Lun, LunList,
    ReportLuns, TestUnitReady, UnitSerialNumber, VpdPage,
};
use crate::scsi::{BlockSize, CdbCodec, DeviceType, Lba, Wire};
use crate::transport::url::DeviceUrl;
use crate::transport::Request;

use super::{sent, CheckDef, Finding, Spec, Suite, Target};

pub static SUITE: Suite = Suite {
    name: "disk",
    applies: |t| t.inquiry.device_type == DeviceType::DISK,
    prepare: None,
    unready: None,
    checks: &[
        CheckDef {
            spec: Spec {
                id: "disk.tur",
                cites: "SPC-4 6.37 TEST UNIT READY",
                expected: "GOOD",
                writes: false,
            },
            run: tur,
        },
        CheckDef {
            spec: Spec {
                id: "disk.capacity.10-vs-16",
                cites: "SBC-4 5.15 READ CAPACITY (10), 5.16 READ CAPACITY (16)",
                expected: "GOOD for both; the same last LBA and block length (or FFFFFFFFh from (10) on a large disk)",
                writes: false,
            },
            run: capacity_10_vs_16,
        },
        CheckDef {
            spec: Spec {
                id: "disk.read.last-lba",
                cites: "SBC-4 5.13 READ (16)",
                expected: "GOOD and one block of data",
                writes: false,
            },
            run: read_last_lba,
        },
        CheckDef {
            spec: Spec {
                id: "disk.read.past-end",
                cites: "SBC-4 4.5 logical blocks, 5.13 READ (16)",
                expected: "CHECK CONDITION, ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (05/21/00)",
                writes: false,
            },
            run: read_past_end,
        },
        CheckDef {
            spec: Spec {
                id: "disk.read.across-end",
                cites: "SBC-4 4.5 logical blocks, 5.13 READ (16)",
                expected: "CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE (05/21/00) for a read of the last LBA and one past it",
                writes: false,
            },
            run: read_across_end,
        },
        CheckDef {
            spec: Spec {
                id: "disk.write.last-lba",
                cites: "SBC-4 5.35 WRITE (16)",
                expected: "GOOD, and the block reads back as written (its old contents are written back)",
                writes: true,
            },
            run: write_last_lba,
        },
        CheckDef {
            spec: Spec {
                id: "disk.write.past-end",
                cites: "SBC-4 4.5 logical blocks, 5.35 WRITE (16)",
                expected: "CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE (05/21/00)",
                writes: true,
            },
            run: write_past_end,
        },
        CheckDef {
            spec: Spec {
                id: "disk.vpd.supported-pages",
                cites: "SPC-4 7.8.15 Supported VPD Pages",
                expected: "page 00h lists 00h, 80h and 83h, and every page listed answers with its own page code",
                writes: false,
            },
            run: vpd_supported,
        },
        CheckDef {
            spec: Spec {
                id: "disk.vpd.serial",
                cites: "SPC-4 7.8.16 Unit Serial Number",
                expected: "a non-empty serial of printable ASCII",
                writes: false,
            },
            run: vpd_serial,
        },
        CheckDef {
            spec: Spec {
                id: "disk.vpd.device-id",
                cites: "SPC-4 7.8.6 Device Identification",
                expected: "at least one designator that names the LU (NAA, EUI-64, T10 vendor ID, SCSI name, UUID)",
                writes: false,
            },
            run: vpd_device_id,
        },
        CheckDef {
            spec: Spec {
                id: "disk.vpd.block-limits",
                cites: "SBC-4 6.6.4 Block Limits",
                expected: "page B0h of length 3Ch (0Ch in the SBC-2 form) whose OPTIMAL TRANSFER LENGTH is at most MAXIMUM TRANSFER LENGTH (where both are set)",
                writes: false,
            },
            run: vpd_block_limits,
        },
        CheckDef {
            spec: Spec {
                id: "disk.vpd.block-characteristics",
                cites: "SBC-4 6.6.2 Block Device Characteristics",
                expected: "page B1h of length 3Ch with a device type matching INQUIRY",
                writes: false,
            },
            run: vpd_block_characteristics,
        },
        CheckDef {
            spec: Spec {
                id: "disk.vpd.designator-unique",
                cites: "SPC-4 7.8.6.1 (a designator names one LU)",
                expected: "no LU designator shared with another LU of the same target or of this run",
                writes: false,
            },
            run: designator_unique,
        },
    ],
};

fn tur(t: &mut Target) -> Result<Finding, DeviceError> {
    let cdb = TestUnitReady.to_cdb();
    let x = t.send(Request::none(cdb))?;
    Ok(Finding::judge(x.good(), sent(&cdb), x.summary()))
}

fn capacity_10_vs_16(t: &mut Target) -> Result<Finding, DeviceError> {
    let c10 = ReadCapacity10.to_cdb();
    let c16 = ReadCapacity16 { alloc_len: 32 }.to_cdb();
    let what = format!("{}; {}", sent(&c10), sent(&c16));
    let x10 = t.send(Request::data_in(c10, 8))?;
    let x16 = t.send(Request::data_in(c16, 32))?;
    if x16.invalid_opcode() {
        return Ok(Finding::unsupported(
            what,
            x16.summary(),
            "no READ CAPACITY(16)",
        ));
    }
    let (Ok(a), Ok(b)) = (Capacity10::parse(&x10.data), Capacity16::parse(&x16.data)) else {
        return Ok(Finding::judge(
            false,
            what,
            format!("(10): {}; (16): {}", x10.summary(), x16.summary()),
        ));
    };
    let obs = format!(
        "(10) last LBA {} x {} B; (16) last LBA {} x {} B",
        a.last_lba, a.block_len, b.last_lba, b.block_len
    );
    let same = a.block_len == b.block_len
        && (a.last_lba as u64 == b.last_lba || (a.needs_16() && b.last_lba >= u32::MAX as u64));
    Ok(Finding::judge(same, what, obs))
}

/// The capacity the checks work with (READ CAPACITY through the device
/// layer).
fn capacity(t: &mut Target) -> Result<Capacity, DeviceError> {
    crate::device::disk::read_capacity(&mut t.scsi)
}

fn read(
    t: &mut Target,
    lba: u64,
    blocks: u32,
    bs: BlockSize,
) -> Result<super::Exchange, DeviceError> {
    let cdb = Read16::new(Lba(lba), blocks).to_cdb();
    t.send(Request::data_in(cdb, blocks as usize * bs.0 as usize))
}

fn read_last_lba(t: &mut Target) -> Result<Finding, DeviceError> {
    let cap = capacity(t)?;
    let x = read(t, cap.blocks.0 - 1, 1, cap.block_size)?;
    let ok = x.good() && x.data.len() == cap.block_size.0 as usize;
    Ok(Finding::judge(ok, sent(&x.cdb), x.summary()))
}

fn out_of_range(x: &super::Exchange) -> bool {
    x.is(SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE)
}

fn read_past_end(t: &mut Target) -> Result<Finding, DeviceError> {
    let cap = capacity(t)?;
    let x = read(t, cap.blocks.0, 1, cap.block_size)?;
    Ok(Finding::judge(out_of_range(&x), sent(&x.cdb), x.summary()))
}

fn read_across_end(t: &mut Target) -> Result<Finding, DeviceError> {
    let cap = capacity(t)?;
    let x = read(t, cap.blocks.0 - 1, 2, cap.block_size)?;
    Ok(Finding::judge(out_of_range(&x), sent(&x.cdb), x.summary()))
}

fn write_last_lba(t: &mut Target) -> Result<Finding, DeviceError> {
    let cap = capacity(t)?;
    let last = cap.blocks.0 - 1;
    let before = read(t, last, 1, cap.block_size)?;
    if !before.good() {
        return Ok(Finding::judge(false, sent(&before.cdb), before.summary()));
    }
    let cdb = Write16::new(Lba(last), 1).to_cdb();
    let w = t.send(Request::data_out(cdb, before.data.clone()))?;
    let after = read(t, last, 1, cap.block_size)?;
    let same = after.data == before.data;
    let obs = format!(
        "{}; read back: {}{}",
        w.summary(),
        after.summary(),
        if same { "" } else { ", different bytes" }
    );
    Ok(Finding::judge(w.good() && same, sent(&cdb), obs))
}

fn write_past_end(t: &mut Target) -> Result<Finding, DeviceError> {
    let cap = capacity(t)?;
    let cdb = Write16::new(Lba(cap.blocks.0), 1).to_cdb();
    let x = t.send(Request::data_out(cdb, vec![0; cap.block_size.0 as usize]))?;
    Ok(Finding::judge(out_of_range(&x), sent(&cdb), x.summary()))
}

fn vpd(t: &mut Target, page: VpdPage) -> Result<super::Exchange, DeviceError> {
    let cdb = Inquiry::vpd(page.0, 1020).to_cdb();
    t.send(Request::data_in(cdb, 1020))
}

fn vpd_supported(t: &mut Target) -> Result<Finding, DeviceError> {
    let pages = t.vpd_pages.clone();
    let mut wrong = Vec::new();
    for need in [
        VpdPage::SUPPORTED_PAGES,
        VpdPage::UNIT_SERIAL,
        VpdPage::DEVICE_IDENTIFICATION,
    ] {
        if !pages.contains(&need) {
            wrong.push(format!("{:02X}h not listed", need.0));
        }
    }
    for p in &pages {
        let x = vpd(t, *p)?;
        if !x.good() || x.data.get(1) != Some(&p.0) {
            wrong.push(format!("{:02X}h: {}", p.0, x.summary()));
        }
    }
    let list: Vec<String> = pages.iter().map(|p| format!("{:02X}h", p.0)).collect();
    let obs = match wrong.is_empty() {
        true => format!("pages {}", list.join(" ")),
        false => format!("pages {}; {}", list.join(" "), wrong.join("; ")),
    };
    Ok(Finding::judge(
        wrong.is_empty(),
        "INQUIRY EVPD for page 00h and each page it lists",
        obs,
    ))
}

fn vpd_serial(t: &mut Target) -> Result<Finding, DeviceError> {
    let x = vpd(t, VpdPage::UNIT_SERIAL)?;
    let what = sent(&x.cdb);
    if x.refused() {
        return Ok(Finding::unsupported(what, x.summary(), "no VPD page 80h"));
    }
    let Ok(sn) = UnitSerialNumber::parse(&x.data) else {
        return Ok(Finding::judge(false, what, x.summary()));
    };
    let trimmed = sn.serial.trim();
    let ok = !trimmed.is_empty() && trimmed.bytes().all(|b| (0x20..0x7f).contains(&b));
    Ok(Finding::judge(ok, what, format!("serial {trimmed:?}")))
}

fn vpd_device_id(t: &mut Target) -> Result<Finding, DeviceError> {
    let x = vpd(t, VpdPage::DEVICE_IDENTIFICATION)?;
    let what = sent(&x.cdb);
    let Ok(di) = DeviceIdentification::parse(&x.data) else {
        return Ok(Finding::judge(false, what, x.summary()));
    };
    let names: Vec<String> = di
        .designators
        .iter()
        .filter(|d| d.names_lu())
        .map(|d| d.to_string())
        .collect();
    let obs = format!(
        "{} designators, LU names: {}",
        di.designators.len(),
        names.join(", ")
    );
    Ok(Finding::judge(!names.is_empty(), what, obs))
}

fn vpd_block_limits(t: &mut Target) -> Result<Finding, DeviceError> {
    if !t.vpd_pages.contains(&VpdPage::BLOCK_LIMITS) {
        return Ok(Finding::unsupported(
            "",
            "page B0h not in page 00h",
            "no Block Limits page",
        ));
    }
    let x = vpd(t, VpdPage::BLOCK_LIMITS)?;
    let what = sent(&x.cdb);
    let Ok(bl) = BlockLimitsVpd::parse(&x.data) else {
        return Ok(Finding::judge(false, what, x.summary()));
    };
    let len = x
        .data
        .get(2..4)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) as usize);
    let order = bl.max_transfer_length == 0
        || bl.optimal_transfer_length == 0
        || bl.optimal_transfer_length <= bl.max_transfer_length;
    let obs = format!(
        "page length {len:#x}, max transfer {}, optimal transfer {}",
        bl.max_transfer_length, bl.optimal_transfer_length
    );
    // SBC-2 defined the page with PAGE LENGTH 0Ch; SBC-3 and SBC-4 with 3Ch.
    let len_ok = len == BlockLimitsVpd::PAGE_LEN || len == 0x0c;
    Ok(Finding::judge(len_ok && order, what, obs))
}

fn vpd_block_characteristics(t: &mut Target) -> Result<Finding, DeviceError> {
    if !t.vpd_pages.contains(&VpdPage::BLOCK_DEVICE_CHARACTERISTICS) {
        return Ok(Finding::unsupported(
            "",
            "page B1h not in page 00h",
            "no Block Device Characteristics page",
        ));
    }
    let x = vpd(t, VpdPage::BLOCK_DEVICE_CHARACTERISTICS)?;
    let what = sent(&x.cdb);
    let Ok(p) = BlockDeviceCharacteristicsVpd::parse(&x.data) else {
        return Ok(Finding::judge(false, what, x.summary()));
    };
    let ok = p.page_len as usize == BlockDeviceCharacteristicsVpd::PAGE_LEN
        && p.device_type == t.inquiry.device_type;
    let obs = format!(
        "page length {:#x}, device type {}, rotation rate {}",
        p.page_len, p.device_type, p.medium_rotation_rate
    );
    Ok(Finding::judge(ok, what, obs))
}

/// The LU designators of every other LUN of this device's target.
fn sibling_designators(t: &mut Target) -> Result<Vec<(String, Vec<String>)>, DeviceError> {
    let Ok(DeviceUrl::Iscsi(url)) = DeviceUrl::parse(&t.open_url) else {
        return Ok(Vec::new());
    };
    let cdb = ReportLuns {
        select_report: 0,
        alloc_len: 4096,
    }
    .to_cdb();
    let x = t.send(Request::data_in(cdb, 4096))?;
    let Ok(list) = LunList::parse(&x.data) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for lun in list
        .luns
        .iter()
        .filter_map(Lun::index)
        .filter(|&n| n != url.lun)
    {
        let mut u = url.clone();
        u.lun = lun;
        let Ok(s) = t.open(&u.to_string(), &t.initiator.clone()) else {
            continue;
        };
        let mut scsi = crate::device::Scsi::new(s);
        if let Ok(di) = scsi.device_identification() {
            let ids = di
                .designators
                .iter()
                .filter(|d| d.names_lu())
                .map(|d| d.to_string())
                .collect();
            out.push((u.without_credentials().to_string(), ids));
        }
    }
    Ok(out)
}

fn designator_unique(t: &mut Target) -> Result<Finding, DeviceError> {
    let mine: Vec<String> = t.designators.iter().map(|d| d.to_string()).collect();
    if mine.is_empty() {
        return Ok(Finding::unsupported(
            "",
            "no LU designator in VPD page 83h",
            "nothing to compare",
        ));
    }
    let mut others = sibling_designators(t)?;
    for p in &t.others {
        if !others.iter().any(|(o, _)| *o == p.url) {
            others.push((
                p.url.clone(),
                p.designators.iter().map(|d| d.to_string()).collect(),
            ));
        }
    }
    let shared: Vec<String> = others
        .iter()
        .flat_map(|(u, ds)| {
            ds.iter()
                .filter(|d| mine.contains(d))
                .map(move |d| format!("{d} also names {u}"))
        })
        .collect();
    let what = format!(
        "VPD page 83h of this LU and of {} other LUs (REPORT LUNS, the run's devices)",
        others.len()
    );
    let obs = match shared.is_empty() {
        true => format!("{} LU designators, none shared", mine.len()),
        false => shared.join("; "),
    };
    Ok(Finding::judge(shared.is_empty(), what, obs))
}
