//! `sanmover changer DEV OP`: mtx's verbs over the SMC device layer.
//!
//! Numbering is mtx's (slots from 1: storage elements, then import/export
//! elements; drives from 0), or raw element addresses with `--element`.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use super::args::{ChangerArgs, ChangerOp};
use super::exit::{self, Refusal, UsageError};
use super::output::Out;
use super::sessions::{redacted, Dyn, Sessions};
use crate::device::changer::{map_drives, DriveIdentity, DriveMapping, Inventory, MatchedBy};
use crate::device::{Changer, Scsi};
use crate::scsi::smc::{ElementAddress, ElementDescriptor, ElementFlags, ElementType};

pub fn run(s: &Sessions, out: &Out, a: &ChangerArgs) -> Result<u8> {
    let dev = a.dev.as_deref().ok_or_else(|| {
        UsageError("no changer device: give DEV, or set CHANGER as for mtx".into())
    })?;
    let mut ch =
        Changer::open(s.transport(dev)?).with_context(|| format!("changer {}", redacted(dev)))?;
    let mut lib = Library {
        inv: ch.inventory()?,
        ch: &mut ch,
        raw: a.element,
        moves: Vec::new(),
    };
    match &a.op {
        ChangerOp::Status => return status(s, out, &mut lib, dev, &a.drives),
        ChangerOp::Inventory => {
            lib.ch.initialize_element_status()?;
            out.emit(
                &serde_json::json!({"op": "inventory", "done": true}),
                || "inventory: the changer checked every element\n".into(),
            );
            return Ok(exit::OK);
        }
        op => lib.carry_out(op)?,
    }
    let report = MovesReport {
        op: op_name(&a.op),
        moves: &lib.moves,
    };
    out.emit(&report, || {
        lib.moves.iter().fold(String::new(), |mut t, m| {
            let _ = writeln!(t, "{}", m.text());
            t
        })
    });
    Ok(exit::OK)
}

fn op_name(op: &ChangerOp) -> &'static str {
    match op {
        ChangerOp::Status => "status",
        ChangerOp::Inventory => "inventory",
        ChangerOp::Load { .. } => "load",
        ChangerOp::Unload { .. } => "unload",
        ChangerOp::Transfer { .. } => "transfer",
        ChangerOp::Exchange { .. } => "exchange",
        ChangerOp::First { .. } => "first",
        ChangerOp::Next { .. } => "next",
        ChangerOp::Previous { .. } => "previous",
        ChangerOp::Last { .. } => "last",
    }
}

/// An element as a user names it.
#[derive(Debug, Clone, Copy, Serialize)]
struct Place {
    /// "drive", "slot", "import/export" or "transport".
    kind: &'static str,
    /// The mtx number (drives from 0, slots from 1).
    number: Option<u16>,
    element: ElementAddress,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind, self.number) {
            ("drive", Some(n)) => write!(f, "drive {n} (element {})", self.element),
            ("slot", Some(n)) => write!(f, "Storage Element {n} (element {})", self.element),
            ("import/export", Some(n)) => write!(
                f,
                "Storage Element {n} IMPORT/EXPORT (element {})",
                self.element
            ),
            _ => write!(f, "{} element {}", self.kind, self.element),
        }
    }
}

/// One MOVE MEDIUM that was carried out.
#[derive(Debug, Clone, Serialize)]
struct Moved {
    from: Place,
    to: Place,
    volume_tag: Option<String>,
    /// Part of an exchange the changer could not do itself.
    by_moves: bool,
}

impl Moved {
    fn text(&self) -> String {
        let tag = self
            .volume_tag
            .as_deref()
            .map_or(String::new(), |t| format!(" ({t})"));
        match (self.from.kind, self.to.kind) {
            (_, "drive") => format!(
                "Loading media{tag} from {} into {}...done",
                self.from, self.to
            ),
            ("drive", _) => format!("Unloading {}{tag} into {}...done", self.from, self.to),
            _ => format!("Moving media{tag} from {} to {}...done", self.from, self.to),
        }
    }
}

#[derive(Serialize)]
struct MovesReport<'a> {
    op: &'static str,
    moves: &'a [Moved],
}

/// The changer with its inventory, kept current as moves happen.
struct Library<'c> {
    ch: &'c mut Changer<Dyn>,
    inv: Inventory,
    raw: bool,
    moves: Vec<Moved>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    First,
    Next,
    Previous,
    Last,
}

impl Library<'_> {
    /// The verbs that move cartridges.
    fn carry_out(&mut self, op: &ChangerOp) -> Result<()> {
        match op {
            ChangerOp::Load { slot, drive } => {
                let (from, to) = (self.slot(*slot)?, self.drive(drive.unwrap_or(0))?);
                self.do_move(from, to)
            }
            ChangerOp::Unload { slot, drive } => {
                let from = self.drive(drive.unwrap_or(0))?;
                let to = match slot {
                    Some(n) => self.slot(*n)?,
                    None => self.home_of(from)?,
                };
                self.do_move(from, to)
            }
            ChangerOp::Transfer { from, to } => {
                let (from, to) = (self.slot(*from)?, self.slot(*to)?);
                self.do_move(from, to)
            }
            ChangerOp::Exchange {
                slot1,
                slot2,
                slot3,
            } => {
                let (a1, a2) = (self.slot(*slot1)?, self.slot(*slot2)?);
                let a3 = slot3.map(|n| self.slot(n)).transpose()?.unwrap_or(a1);
                self.exchange(a1, a2, a3)
            }
            ChangerOp::First { drive } => self.step(drive.unwrap_or(0), Step::First),
            ChangerOp::Next { drive } => self.step(drive.unwrap_or(0), Step::Next),
            ChangerOp::Previous { drive } => self.step(drive.unwrap_or(0), Step::Previous),
            ChangerOp::Last { drive } => self.step(drive.unwrap_or(0), Step::Last),
            ChangerOp::Status | ChangerOp::Inventory => Ok(()),
        }
    }

    fn place(&self, a: ElementAddress) -> Place {
        let (kind, number) = match self.inv.element(a).map(|e| e.0) {
            Some(ElementType::DATA_TRANSFER) => ("drive", self.inv.drive_number(a)),
            Some(ElementType::STORAGE) => ("slot", self.inv.slot_number(a)),
            Some(ElementType::IMPORT_EXPORT) => ("import/export", self.inv.slot_number(a)),
            Some(ElementType::MEDIUM_TRANSPORT) => ("transport", None),
            _ => ("unknown", None),
        };
        Place {
            kind,
            number,
            element: a,
        }
    }

    /// SLOT on the command line: an mtx slot number, or with --element a
    /// storage or import/export element address.
    fn slot(&self, n: u16) -> Result<ElementAddress, UsageError> {
        let count = self.inv.storage.len() + self.inv.import_export.len();
        if self.raw {
            return match self.inv.element(ElementAddress(n)) {
                Some((ElementType::STORAGE | ElementType::IMPORT_EXPORT, _)) => {
                    Ok(ElementAddress(n))
                }
                _ => Err(UsageError(format!(
                    "element {n} is not a storage or import/export element of this changer"
                ))),
            };
        }
        self.inv
            .slot(n)
            .map(|d| d.address)
            .ok_or_else(|| UsageError(format!("no slot {n}: this changer has slots 1 to {count}")))
    }

    /// DRIVE on the command line: an mtx drive number, or with --element a
    /// data transfer element address.
    fn drive(&self, n: u16) -> Result<ElementAddress, UsageError> {
        if self.raw {
            return match self.inv.element(ElementAddress(n)) {
                Some((ElementType::DATA_TRANSFER, _)) => Ok(ElementAddress(n)),
                _ => Err(UsageError(format!(
                    "element {n} is not a data transfer element of this changer"
                ))),
            };
        }
        let count = self.inv.drives.len();
        self.inv
            .drive(n)
            .map(|d| d.address)
            .ok_or_else(|| match count {
                0 => UsageError("this changer has no drives".into()),
                c => UsageError(format!(
                    "no drive {n}: this changer has drives 0 to {}",
                    c - 1
                )),
            })
    }

    fn descriptor(&self, a: ElementAddress) -> Option<&ElementDescriptor> {
        self.inv.element(a).map(|e| e.1)
    }

    /// Where the cartridge in drive `a` came from: the changer's source
    /// address (SVALID), if it is a slot.
    fn home_of(&self, a: ElementAddress) -> Result<ElementAddress, Refusal> {
        let d = self
            .descriptor(a)
            .ok_or_else(|| Refusal(format!("no element {a}")))?;
        if !d.is_full() {
            return Err(Refusal(format!(
                "{} is empty: nothing to unload",
                self.place(a)
            )));
        }
        match d.source.filter(|s| self.slot_of(*s)) {
            Some(s) => Ok(s),
            None => Err(Refusal(format!(
                "the changer does not say which slot the cartridge in {} came from; give SLOT",
                self.place(a)
            ))),
        }
    }

    fn slot_of(&self, a: ElementAddress) -> bool {
        matches!(
            self.inv.element(a).map(|e| e.0),
            Some(ElementType::STORAGE | ElementType::IMPORT_EXPORT)
        )
    }

    /// MOVE MEDIUM, recorded, with the inventory updated as the changer
    /// would report it.
    fn do_move(&mut self, from: ElementAddress, to: ElementAddress) -> Result<()> {
        self.do_move_as(from, to, false)
    }

    fn do_move_as(
        &mut self,
        from: ElementAddress,
        to: ElementAddress,
        by_moves: bool,
    ) -> Result<()> {
        let (pf, pt) = (self.place(from), self.place(to));
        self.ch
            .move_medium(from, to)
            .with_context(|| format!("moving the cartridge in {pf} to {pt}"))?;
        let tag = self.descriptor(from).and_then(|d| d.primary_tag);
        self.moves.push(Moved {
            from: pf,
            to: pt,
            volume_tag: tag.filter(|t| !t.is_blank()).map(|t| t.label()),
            by_moves,
        });
        self.record(from, to);
        Ok(())
    }

    fn record(&mut self, from: ElementAddress, to: ElementAddress) {
        let taken = self.element_mut(from).map(|d| {
            d.flags.remove(ElementFlags::FULL);
            (d.primary_tag.take(), d.source.take())
        });
        if let (Some((tag, _)), Some(d)) = (taken, self.element_mut(to)) {
            d.flags.insert(ElementFlags::FULL);
            d.primary_tag = tag;
            d.source = Some(from);
        }
    }

    fn element_mut(&mut self, a: ElementAddress) -> Option<&mut ElementDescriptor> {
        let inv = &mut self.inv;
        [
            &mut inv.transports,
            &mut inv.storage,
            &mut inv.import_export,
            &mut inv.drives,
        ]
        .into_iter()
        .flat_map(|v| v.iter_mut())
        .find(|d| d.address == a)
    }

    /// EXCHANGE MEDIUM; where the changer lacks it, the same result with
    /// MOVE MEDIUM through an empty storage slot.
    fn exchange(
        &mut self,
        a1: ElementAddress,
        a2: ElementAddress,
        a3: ElementAddress,
    ) -> Result<()> {
        let (p1, p2) = (self.place(a1), self.place(a2));
        match self.ch.exchange_medium(a1, a2, a3) {
            Ok(()) => {
                let tag = |l: &Self, a| l.descriptor(a).and_then(|d| d.primary_tag);
                let (t1, t2) = (tag(self, a1), tag(self, a2));
                self.moves.push(Moved {
                    from: p2,
                    to: self.place(a3),
                    volume_tag: t2.map(|t| t.label()),
                    by_moves: false,
                });
                self.moves.push(Moved {
                    from: p1,
                    to: p2,
                    volume_tag: t1.map(|t| t.label()),
                    by_moves: false,
                });
                // One command, two cartridges: read the result back.
                self.inv = self.ch.inventory()?;
                Ok(())
            }
            Err(e) if e.is_unsupported_command() => {
                eprintln!(
                    "sanmover: the changer has no EXCHANGE MEDIUM ({}); exchanging with MOVE MEDIUM",
                    e.sense().map_or(String::new(), |s| s.asc.to_string())
                );
                self.exchange_by_moves(a1, a2, a3)
            }
            Err(e) => Err(anyhow::Error::from(e).context(format!("exchanging {p1} and {p2}"))),
        }
    }

    fn exchange_by_moves(
        &mut self,
        a1: ElementAddress,
        a2: ElementAddress,
        a3: ElementAddress,
    ) -> Result<()> {
        if a3 != a1 {
            // The second cartridge goes to a third place first: two moves.
            self.do_move_as(a2, a3, true)?;
            return self.do_move_as(a1, a2, true);
        }
        let spare = self
            .inv
            .storage
            .iter()
            .find(|d| !d.is_full() && ![a1, a2].contains(&d.address))
            .map(|d| d.address)
            .ok_or_else(|| Refusal("no empty storage slot to exchange through".into()))?;
        self.do_move_as(a2, spare, true)?;
        self.do_move_as(a1, a2, true)?;
        self.do_move_as(spare, a1, true)
    }

    /// mtx's first/next/previous/last.
    fn step(&mut self, n: u16, step: Step) -> Result<()> {
        let drive = self.drive(n)?;
        let loaded = self.descriptor(drive).is_some_and(|d| d.is_full());
        let home = if loaded {
            Some(self.home_of(drive)?)
        } else {
            None
        };
        let full: Vec<ElementAddress> = self
            .inv
            .slots()
            .filter(|s| s.2.is_full() || Some(s.2.address) == home)
            .map(|s| s.2.address)
            .collect();
        let at = home.and_then(|h| full.iter().position(|&a| a == h));
        let target = match (step, at) {
            (Step::First, _) => full.first().copied(),
            (Step::Last, _) => full.last().copied(),
            (Step::Next, Some(i)) => full.get(i + 1).copied(),
            (Step::Previous, Some(i)) => i.checked_sub(1).and_then(|j| full.get(j).copied()),
            (Step::Next | Step::Previous, None) => {
                return Err(Refusal(format!(
                    "{} is empty: next and previous go from the cartridge in it",
                    self.place(drive)
                ))
                .into())
            }
        };
        let target = target.ok_or_else(|| Refusal("no full slot in that direction".into()))?;
        if let Some(h) = home {
            if h == target {
                return Ok(());
            }
            self.do_move(drive, h)?;
        }
        self.do_move(target, drive)
    }
}

/// What `status --json` prints.
#[derive(Serialize)]
struct StatusReport<'a> {
    device: String,
    vendor: &'a str,
    product: &'a str,
    layout: crate::scsi::smc::ElementAddressAssignment,
    drives: Vec<DriveStatus>,
    slots: Vec<SlotStatus>,
    transports: Vec<SlotStatus>,
    drive_lus: Vec<DriveIdentity>,
}

#[derive(Serialize)]
struct DriveStatus {
    drive: u16,
    element: ElementAddress,
    full: bool,
    volume_tag: Option<String>,
    /// The slot the cartridge came from (mtx number) and its element.
    source_slot: Option<u16>,
    source_element: Option<ElementAddress>,
    /// ASC/ASCQ when the changer flags the element (EXCEPT).
    exception: Option<String>,
    /// The device identifier the changer reports (DVCID).
    identifier: Option<String>,
    /// The `--drive` LU this element is, and how that was decided.
    lu: Option<String>,
    matched_by: Option<MatchedBy>,
}

#[derive(Serialize)]
struct SlotStatus {
    slot: Option<u16>,
    element: ElementAddress,
    import_export: bool,
    full: bool,
    volume_tag: Option<String>,
    alternate_tag: Option<String>,
    exception: Option<String>,
    access: bool,
}

fn tag_of(d: &ElementDescriptor) -> Option<String> {
    d.primary_tag.filter(|t| !t.is_blank()).map(|t| t.label())
}

fn exception(d: &ElementDescriptor) -> Option<String> {
    d.flags
        .contains(ElementFlags::EXCEPT)
        .then(|| d.asc.to_string())
}

fn slot_status(inv: &Inventory, t: ElementType, d: &ElementDescriptor) -> SlotStatus {
    SlotStatus {
        slot: inv.slot_number(d.address),
        element: d.address,
        import_export: t == ElementType::IMPORT_EXPORT,
        full: d.is_full(),
        volume_tag: tag_of(d),
        alternate_tag: d.alternate_tag.filter(|t| !t.is_blank()).map(|t| t.label()),
        exception: exception(d),
        access: d.flags.contains(ElementFlags::ACCESS),
    }
}

fn drive_status(
    inv: &Inventory,
    m: &DriveMapping,
    d: &ElementDescriptor,
    lus: &[DriveIdentity],
) -> DriveStatus {
    DriveStatus {
        drive: m.drive,
        element: d.address,
        full: d.is_full(),
        volume_tag: tag_of(d),
        source_slot: d.source.and_then(|s| inv.slot_number(s)),
        source_element: d.source,
        exception: exception(d),
        identifier: d.device_id.as_ref().map(|i| i.to_string()),
        lu: m.lu.map(|i| lus[i].device.clone()),
        matched_by: m.matched_by,
    }
}

fn status(s: &Sessions, out: &Out, lib: &mut Library, dev: &str, drives: &[String]) -> Result<u8> {
    let mut lus = Vec::new();
    for d in drives {
        let mut scsi = Scsi::new(s.transport(d)?);
        lus.push(
            DriveIdentity::probe(&mut scsi, &redacted(d))
                .with_context(|| format!("drive {}", redacted(d)))?,
        );
    }
    let inv = &lib.inv;
    let mapping = map_drives(&inv.drives, &lus).map_err(|e| Refusal(e.to_string()))?;
    let report = StatusReport {
        device: redacted(dev),
        vendor: &lib.ch.inquiry.vendor,
        product: &lib.ch.inquiry.product,
        layout: lib.ch.layout,
        drives: mapping
            .iter()
            .zip(&inv.drives)
            .map(|(m, d)| drive_status(inv, m, d, &lus))
            .collect(),
        slots: inv
            .slots()
            .map(|(_, t, d)| slot_status(inv, t, d))
            .collect(),
        transports: inv
            .transports
            .iter()
            .map(|d| slot_status(inv, ElementType::MEDIUM_TRANSPORT, d))
            .collect(),
        drive_lus: lus.clone(),
    };
    out.emit(&report, || status_text(&report));
    Ok(exit::OK)
}

/// mtx's status layout, then the drives' identifiers.
fn status_text(r: &StatusReport) -> String {
    let ie = r.slots.iter().filter(|s| s.import_export).count();
    let mut t = format!(
        "  Storage Changer {}:{} Drives, {} Slots ( {} Import/Export )\n",
        r.device,
        r.drives.len(),
        r.slots.len(),
        ie
    );
    r.drives.iter().for_each(|d| drive_line(&mut t, d));
    r.slots.iter().for_each(|s| slot_line(&mut t, s));
    t.push_str("Drive identifiers (DVCID):\n");
    for d in &r.drives {
        identifier_line(&mut t, d, !r.drive_lus.is_empty());
    }
    t
}

/// `Data Transfer Element 0:Full (Storage Element 3 Loaded):VolumeTag = X`
fn drive_line(t: &mut String, d: &DriveStatus) {
    let _ = write!(t, "Data Transfer Element {}:", d.drive);
    if !d.full {
        t.push_str("Empty");
    } else {
        t.push_str("Full ");
        match d.source_slot {
            Some(s) => {
                let _ = write!(t, "(Storage Element {s} Loaded)");
            }
            None => t.push_str("(Unknown Storage Element Loaded)"),
        }
        if let Some(v) = &d.volume_tag {
            let _ = write!(t, ":VolumeTag = {v}");
        }
    }
    if let Some(e) = &d.exception {
        let _ = write!(t, " [exception: {e}]");
    }
    t.push('\n');
}

/// `      Storage Element 11 IMPORT/EXPORT:Full :VolumeTag=X`
fn slot_line(t: &mut String, s: &SlotStatus) {
    let kind = if s.import_export {
        " IMPORT/EXPORT"
    } else {
        ""
    };
    let state = if s.full { "Full " } else { "Empty" };
    let _ = write!(
        t,
        "      Storage Element {}{kind}:{state}",
        s.slot.unwrap_or(0)
    );
    if let Some(v) = &s.volume_tag {
        let _ = write!(t, ":VolumeTag={v}");
    }
    if let Some(v) = &s.alternate_tag {
        let _ = write!(t, ":AlternateVolumeTag={v}");
    }
    if let Some(e) = &s.exception {
        let _ = write!(t, " [exception: {e}]");
    }
    t.push('\n');
}

fn identifier_line(t: &mut String, d: &DriveStatus, lus_given: bool) {
    let id = d.identifier.as_deref().unwrap_or("(none reported)");
    let _ = write!(
        t,
        "  Data Transfer Element {} (element {}): {id}",
        d.drive, d.element
    );
    match (&d.lu, d.matched_by) {
        (Some(lu), Some(MatchedBy::DeviceIdentifier)) => {
            let _ = write!(t, " = {lu} (device identifier)");
        }
        (Some(lu), _) => {
            let _ = write!(t, " = {lu} (unit serial)");
        }
        (None, _) if lus_given => t.push_str(" = none of the --drive LUs"),
        (None, _) => {}
    }
    t.push('\n');
}
