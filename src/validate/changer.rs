//! The changer suite (SMC-3): element status against the element address
//! assignment page, the report's length, volume tags and drive
//! identifiers, MOVE MEDIUM there and back, EXCHANGE MEDIUM, refusals of a
//! full destination and an empty source, and the drive's Unit Attention
//! after a cartridge is loaded into it.

use crate::device::changer::{Changer, DriveIdentity, Inventory};
use crate::device::{DeviceError, Scsi};
use crate::scsi::sense::{Asc, SenseKey};
use crate::scsi::smc::{
    ElementAddress, ElementDescriptor, ElementStatusData, ElementType, ExchangeMedium, MoveMedium,
    ReadElementStatus,
};
use crate::scsi::spc::TestUnitReady;
use crate::scsi::{CdbCodec, DeviceType};
use crate::transport::Request;

use super::{exchange, sent, CheckDef, Exchange, Finding, Spec, Suite, Target};

macro_rules! check {
    ($id:expr, $cites:expr, $expected:expr, $writes:expr, $run:expr) => {
        CheckDef {
            spec: Spec {
                id: $id,
                cites: $cites,
                expected: $expected,
                writes: $writes,
            },
            run: $run,
        }
    };
}

pub static SUITE: Suite = Suite {
    name: "changer",
    applies: |t| t.inquiry.device_type == DeviceType::MEDIUM_CHANGER,
    prepare: None,
    unready: None,
    checks: &[
        check!("changer.element-status.consistency", "SMC-3 6.11 READ ELEMENT STATUS, 7.3.3 Element Address Assignment page", "for every element type, as many descriptors as page 1Dh counts, each address within its range, no address twice", false, consistency),
        check!("changer.element-status.length", "SMC-3 6.11.2 element status data (BYTE COUNT OF REPORT AVAILABLE)", "with room for the whole report, the bytes sent equal 8 + BYTE COUNT OF REPORT AVAILABLE", false, report_length),
        check!("changer.voltag", "SMC-3 6.11.4 volume tag information (PVOLTAG)", "every full storage element reports a primary volume tag", false, voltag),
        check!("changer.dvcid", "SMC-3 6.11.5 data transfer element descriptor (DVCID)", "at least one data transfer element reports a device identifier, and each reported one is a well-formed designation descriptor", false, dvcid),
        check!("changer.move.refused-full-destination", "SMC-3 6.6 MOVE MEDIUM", "a move to a full storage element: ILLEGAL REQUEST, MEDIUM DESTINATION ELEMENT FULL (05/3B/0D)", true, refused_full),
        check!("changer.move.refused-empty-source", "SMC-3 6.6 MOVE MEDIUM", "a move from an empty storage element to another empty element: ILLEGAL REQUEST, MEDIUM SOURCE ELEMENT EMPTY (05/3B/0E)", true, refused_empty),
        check!("changer.move.slot-drive-slot", "SMC-3 6.6 MOVE MEDIUM, 6.11.5 (SVALID, SOURCE STORAGE ELEMENT ADDRESS)", "slot to an empty drive: GOOD, the drive full with the slot as its source and the slot empty; back again: as before", true, move_round_trip),
        check!("changer.exchange", "SMC-3 6.2 EXCHANGE MEDIUM", "two full slots swapped: GOOD and their volume tags exchanged; swapped back", true, exchange_medium),
        check!("changer.unit-attention.after-load", "SMC-3 5.3, SPC-4 6.37: a drive whose medium changed", "after MOVE MEDIUM into a drive, that drive's LU answers its next command UNIT ATTENTION, NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (06/28/00)", true, unit_attention),
    ],
};

fn changer(t: &Target) -> Result<Changer<super::Dyn>, DeviceError> {
    let s = t
        .open(&t.open_url, &t.initiator)
        .map_err(|e| DeviceError::Transport {
            device: t.url.clone(),
            source: e,
        })?;
    Changer::open(s)
}

fn inventory(t: &Target) -> Result<(Changer<super::Dyn>, Inventory), DeviceError> {
    let mut c = changer(t)?;
    let inv = c.inventory()?;
    Ok((c, inv))
}

fn types() -> [ElementType; 4] {
    [
        ElementType::MEDIUM_TRANSPORT,
        ElementType::STORAGE,
        ElementType::IMPORT_EXPORT,
        ElementType::DATA_TRANSFER,
    ]
}

fn of_type(inv: &Inventory, ty: ElementType) -> &[ElementDescriptor] {
    match ty {
        ElementType::MEDIUM_TRANSPORT => &inv.transports,
        ElementType::STORAGE => &inv.storage,
        ElementType::IMPORT_EXPORT => &inv.import_export,
        _ => &inv.drives,
    }
}

fn consistency(t: &mut Target) -> Result<Finding, DeviceError> {
    let (c, inv) = inventory(t)?;
    let mut wrong = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for ty in types() {
        let Some(r) = c.layout.range(ty) else {
            continue;
        };
        let ds = of_type(&inv, ty);
        if ds.len() != r.count as usize {
            wrong.push(format!(
                "{ty}: page 1Dh counts {}, status has {}",
                r.count,
                ds.len()
            ));
        }
        for d in ds {
            let inside = d.address.0 >= r.first.0 && (d.address.0 - r.first.0) < r.count;
            if !inside || !seen.insert(d.address.0) {
                wrong.push(format!(
                    "{ty} element {} outside its range or twice",
                    d.address
                ));
            }
        }
    }
    let obs = match wrong.is_empty() {
        true => format!("{} transport, {} storage, {} import/export, {} data transfer elements, as page 1Dh says", inv.transports.len(), inv.storage.len(), inv.import_export.len(), inv.drives.len()),
        false => wrong.join("; "),
    };
    Ok(Finding::judge(
        wrong.is_empty(),
        "MODE SENSE page 1Dh; READ ELEMENT STATUS per element type (VolTag, DVCID)",
        obs,
    ))
}

fn report_length(t: &mut Target) -> Result<Finding, DeviceError> {
    let res = ReadElementStatus::all_of(ElementType::DATA_TRANSFER, 65536);
    let x = t.send(Request::data_in(res.to_cdb(), 65536))?;
    if !x.good() {
        return Ok(Finding::judge(false, sent(&x.cdb), x.summary()));
    }
    let Ok(full) = ElementStatusData::report_len(&x.data) else {
        return Ok(Finding::judge(
            false,
            sent(&x.cdb),
            format!("{}: no element status header", x.summary()),
        ));
    };
    let obs = format!(
        "{} bytes sent; header says 8 + {} = {full}",
        x.data.len(),
        full - ElementStatusData::HEADER_LEN
    );
    let f = Finding::judge(x.data.len() == full, sent(&x.cdb), obs);
    Ok(f.fail_because(
        "the report arrives shorter than its own byte count: the last descriptor's tail is missing",
    ))
}

fn voltag(t: &mut Target) -> Result<Finding, DeviceError> {
    let (_, inv) = inventory(t)?;
    let full: Vec<_> = inv.storage.iter().filter(|d| d.is_full()).collect();
    if full.is_empty() {
        return Ok(Finding::unsupported(
            "READ ELEMENT STATUS storage, VolTag",
            "no full storage element",
            "no cartridge in a storage slot to read a tag from",
        ));
    }
    let missing: Vec<String> = full
        .iter()
        .filter(|d| d.primary_tag.is_none())
        .map(|d| d.address.to_string())
        .collect();
    let tags: Vec<String> = full
        .iter()
        .filter_map(|d| d.primary_tag.map(|t| t.label()))
        .collect();
    let obs = match missing.is_empty() {
        true => format!("{} full slots, tags {}", full.len(), tags.join(" ")),
        false => format!("no primary tag at elements {}", missing.join(", ")),
    };
    Ok(Finding::judge(
        missing.is_empty(),
        "READ ELEMENT STATUS storage, VolTag",
        obs,
    ))
}

fn dvcid(t: &mut Target) -> Result<Finding, DeviceError> {
    let (_, inv) = inventory(t)?;
    let ids: Vec<String> = inv
        .drives
        .iter()
        .map(|d| {
            d.device_id
                .as_ref()
                .map_or("none".into(), |i| i.to_string())
        })
        .collect();
    let any = inv.drives.iter().any(|d| d.device_id.is_some());
    Ok(Finding::judge(
        any,
        "READ ELEMENT STATUS data transfer, DVCID",
        format!("{} drives: {}", ids.len(), ids.join("; ")),
    ))
}

/// The first full and the first empty storage elements other than `not`.
fn slot(inv: &Inventory, full: bool, not: &[ElementAddress]) -> Option<ElementAddress> {
    inv.storage
        .iter()
        .find(|d| d.is_full() == full && !not.contains(&d.address))
        .map(|d| d.address)
}

fn try_move(
    c: &mut Changer<super::Dyn>,
    from: ElementAddress,
    to: ElementAddress,
) -> Result<Exchange, DeviceError> {
    exchange(
        &mut c.scsi,
        Request::none(MoveMedium::new(from, to).to_cdb())
            .with_timeout(crate::device::changer::MOVE_TIMEOUT),
    )
}

fn refused_full(t: &mut Target) -> Result<Finding, DeviceError> {
    let (mut c, inv) = inventory(t)?;
    let (Some(a), Some(b)) = (
        slot(&inv, true, &[]),
        slot(&inv, true, &[]).and_then(|a| slot(&inv, true, &[a])),
    ) else {
        return Ok(Finding::unsupported(
            "",
            "fewer than two full storage elements",
            "needs two cartridges in storage slots",
        ));
    };
    let x = try_move(&mut c, a, b)?;
    Ok(Finding::judge(
        x.is(
            SenseKey::ILLEGAL_REQUEST,
            Asc::MEDIUM_DESTINATION_ELEMENT_FULL,
        ),
        format!("{} ({a} -> {b}, both full)", sent(&x.cdb)),
        x.summary(),
    ))
}

fn refused_empty(t: &mut Target) -> Result<Finding, DeviceError> {
    let (mut c, inv) = inventory(t)?;
    let Some(a) = slot(&inv, false, &[]) else {
        return Ok(Finding::unsupported(
            "",
            "no empty storage element",
            "needs an empty storage slot",
        ));
    };
    // Any other empty element will do as the destination.
    let others = inv
        .storage
        .iter()
        .chain(&inv.import_export)
        .chain(&inv.drives);
    let Some(b) = others
        .filter(|d| !d.is_full() && d.address != a)
        .map(|d| d.address)
        .next()
    else {
        return Ok(Finding::unsupported(
            "",
            "one empty element only",
            "needs a second empty element",
        ));
    };
    let x = try_move(&mut c, a, b)?;
    Ok(Finding::judge(
        x.is(SenseKey::ILLEGAL_REQUEST, Asc::MEDIUM_SOURCE_ELEMENT_EMPTY),
        format!("{} ({a} -> {b}, both empty)", sent(&x.cdb)),
        x.summary(),
    ))
}

fn move_round_trip(t: &mut Target) -> Result<Finding, DeviceError> {
    let (mut c, inv) = inventory(t)?;
    let (Some(s), Some(d)) = (
        slot(&inv, true, &[]),
        inv.drives.iter().find(|d| !d.is_full()).map(|d| d.address),
    ) else {
        return Ok(Finding::unsupported(
            "",
            "no full slot or no empty drive",
            "needs a cartridge in a slot and an empty drive",
        ));
    };
    let there = try_move(&mut c, s, d)?;
    let mid = c.inventory()?;
    let loaded = mid
        .element(d)
        .is_some_and(|(_, e)| e.is_full() && e.source == Some(s))
        && mid.element(s).is_some_and(|(_, e)| !e.is_full());
    let back = try_move(&mut c, d, s)?;
    let after = c.inventory()?;
    let restored = after.element(s).is_some_and(|(_, e)| e.is_full())
        && after.element(d).is_some_and(|(_, e)| !e.is_full());
    let obs = format!(
        "to the drive: {}{}; back: {}{}",
        there.summary(),
        if loaded {
            ", drive full, source set"
        } else {
            ", element status does not show it"
        },
        back.summary(),
        if restored {
            ", as before"
        } else {
            ", not as before"
        }
    );
    Ok(Finding::judge(
        there.good() && loaded && back.good() && restored,
        format!("MOVE MEDIUM {s} -> {d}; READ ELEMENT STATUS; MOVE MEDIUM {d} -> {s}"),
        obs,
    ))
}

fn exchange_medium(t: &mut Target) -> Result<Finding, DeviceError> {
    let (mut c, inv) = inventory(t)?;
    let (Some(a), Some(b)) = (
        slot(&inv, true, &[]),
        slot(&inv, true, &[]).and_then(|a| slot(&inv, true, &[a])),
    ) else {
        return Ok(Finding::unsupported(
            "",
            "fewer than two full storage elements",
            "needs two cartridges in storage slots",
        ));
    };
    let tag = |inv: &Inventory, e| {
        inv.element(e)
            .and_then(|(_, d)| d.primary_tag.map(|t| t.label()))
    };
    let cdb = ExchangeMedium {
        source: a,
        first_destination: b,
        second_destination: a,
        ..ExchangeMedium::default()
    }
    .to_cdb();
    let x = exchange(
        &mut c.scsi,
        Request::none(cdb).with_timeout(crate::device::changer::MOVE_TIMEOUT),
    )?;
    if x.invalid_opcode() {
        return Ok(Finding::unsupported(
            sent(&cdb),
            x.summary(),
            "no EXCHANGE MEDIUM: the changer answers INVALID COMMAND OPERATION CODE",
        ));
    }
    let after = c.inventory()?;
    let swapped = tag(&after, a) == tag(&inv, b) && tag(&after, b) == tag(&inv, a);
    if x.good() {
        exchange(
            &mut c.scsi,
            Request::none(cdb).with_timeout(crate::device::changer::MOVE_TIMEOUT),
        )?;
    }
    Ok(Finding::judge(
        x.good() && swapped,
        format!("{} ({a} <-> {b})", sent(&cdb)),
        format!(
            "{}; tags {}",
            x.summary(),
            if swapped { "swapped" } else { "not swapped" }
        ),
    ))
}

/// The empty drive element whose identifier names one of the run's tape
/// LUs, with a session to that LU.
fn mapped_drive(t: &Target, inv: &Inventory) -> Option<(ElementAddress, Scsi<super::Dyn>)> {
    for url in t.others.iter().map(|p| &p.url) {
        let Ok(s) = t.open(url, &t.initiator) else {
            continue;
        };
        let mut scsi = Scsi::new(s);
        let Ok(id) = DriveIdentity::probe(&mut scsi, url) else {
            continue;
        };
        let hit = inv.drives.iter().find(|d| {
            !d.is_full()
                && d.device_id
                    .as_ref()
                    .is_some_and(|i| crate::device::changer::identifies(i, &id).is_some())
        });
        if let Some(d) = hit {
            return Some((d.address, scsi));
        }
    }
    None
}

fn unit_attention(t: &mut Target) -> Result<Finding, DeviceError> {
    let (mut c, inv) = inventory(t)?;
    let Some(s) = slot(&inv, true, &[]) else {
        return Ok(Finding::unsupported(
            "",
            "no full storage element",
            "needs a cartridge in a slot",
        ));
    };
    let Some((d, mut drive)) = mapped_drive(t, &inv) else {
        return Ok(Finding::unsupported("", "no drive LU of this run is identified (DVCID) behind an empty drive element", "name the library's drive LUs in the same run (with --suite changer they are only looked at)"));
    };
    // The session's own power-on attention first.
    for _ in 0..3 {
        if exchange(&mut drive, Request::none(TestUnitReady.to_cdb()))?
            .sense
            .is_none_or(|s| s.key != SenseKey::UNIT_ATTENTION)
        {
            break;
        }
    }
    let m = try_move(&mut c, s, d)?;
    let cdb = TestUnitReady.to_cdb();
    let x = exchange_raw(&mut drive, cdb)?;
    try_move(&mut c, d, s)?;
    let ok = m.good() && x.is(SenseKey::UNIT_ATTENTION, Asc::NOT_READY_TO_READY_CHANGE);
    Ok(Finding::judge(
        ok,
        format!("MOVE MEDIUM {s} -> {d}; {} to {}", sent(&cdb), drive.name()),
        format!("move: {}; drive: {}", m.summary(), x.summary()),
    ))
}

/// One command straight through the transport: the device layer's retry
/// would swallow the UNIT ATTENTION this check is looking for.
fn exchange_raw(
    scsi: &mut Scsi<super::Dyn>,
    cdb: crate::scsi::Cdb,
) -> Result<Exchange, DeviceError> {
    let name = scsi.name().to_string();
    let resp =
        scsi.transport()
            .execute(Request::none(cdb))
            .map_err(|e| DeviceError::Transport {
                device: name,
                source: e,
            })?;
    Ok(Exchange {
        cdb: resp.cdb,
        status: resp.status,
        sense: crate::scsi::sense::Sense::parse(&resp.sense).ok(),
        raw_sense: resp.sense,
        data: Vec::new(),
        residual: resp.residual,
    })
}
