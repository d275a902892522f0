//! inquiry, luns, readcap, raw, sense.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::args::{InquiryArgs, RawArgs, SenseArgs};
use super::exit::{self, UsageError};
use super::output::{hexdump, human_size, Out};
use super::parse_hex_args;
use super::sessions::Sessions;
use crate::device::disk::{read_capacity, Capacity};
use crate::device::Scsi;
use crate::scsi::sense::Sense;
use crate::scsi::spc::{
    BlockLimitsVpd, DeviceIdentification, StandardInquiry, SupportedVpdPages, UnitSerialNumber,
    VpdPage,
};
use crate::scsi::{Cdb, DeviceType};
use crate::transport::iscsi::{discover, DiscoveredTarget, IscsiOptions, IscsiTransport};
use crate::transport::url::{IscsiUrl, PortalUrl};
use crate::transport::{Request, Residual};

/// `--vpd` value: a number or a short name, as sg_vpd takes them.
pub fn parse_vpd_page(s: &str) -> Result<VpdPage, UsageError> {
    let named = match s.to_ascii_lowercase().as_str() {
        "sp" | "supported" => Some(VpdPage::SUPPORTED_PAGES),
        "sn" | "serial" => Some(VpdPage::UNIT_SERIAL),
        "di" | "devid" => Some(VpdPage::DEVICE_IDENTIFICATION),
        "tpc" => Some(VpdPage::THIRD_PARTY_COPY),
        "bl" | "limits" => Some(VpdPage::BLOCK_LIMITS),
        _ => None,
    };
    if let Some(p) = named {
        return Ok(p);
    }
    let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16),
        None => s.parse::<u8>(),
    };
    n.map(VpdPage).map_err(|_| {
        UsageError(format!(
            "'{s}' is not a VPD page (0..255, 0xNN, sp, sn, di, bl, tpc)"
        ))
    })
}

pub fn inquiry(s: &Sessions, out: &Out, a: &InquiryArgs) -> Result<u8> {
    let page = a.vpd.as_deref().map(parse_vpd_page).transpose()?;
    let mut scsi = s.scsi(&a.dev)?;
    match page {
        None => {
            let inq = scsi.inquiry()?;
            out.emit(&inq, || standard_text(&inq));
        }
        Some(p) if p == VpdPage::SUPPORTED_PAGES => {
            let v: SupportedVpdPages = scsi.vpd(p)?;
            out.emit(&v, || {
                let mut s = String::from("Supported VPD pages:\n");
                for pg in &v.pages {
                    let _ = writeln!(
                        s,
                        "  {:#04x}  {}",
                        pg.0,
                        pg.name().unwrap_or("vendor specific or unknown")
                    );
                }
                s
            });
        }
        Some(p) if p == VpdPage::UNIT_SERIAL => {
            let v: UnitSerialNumber = scsi.vpd(p)?;
            out.emit(&v, || format!("Unit serial number: {}\n", v.serial));
        }
        Some(p) if p == VpdPage::DEVICE_IDENTIFICATION => {
            let v: DeviceIdentification = scsi.vpd(p)?;
            out.emit(&v, || devid_text(&v));
        }
        Some(p) if p == VpdPage::BLOCK_LIMITS => {
            let v: BlockLimitsVpd = scsi.vpd(p)?;
            out.emit(&v, || block_limits_text(&v));
        }
        Some(p) => {
            let raw = scsi.vpd_raw(p)?;
            #[derive(Serialize)]
            struct RawPage {
                page: u8,
                hex: String,
            }
            out.emit(
                &RawPage {
                    page: p.0,
                    hex: hex::encode(&raw),
                },
                || {
                    format!(
                        "VPD page {:#04x}, {} bytes:\n{}",
                        p.0,
                        raw.len(),
                        hexdump(&raw)
                    )
                },
            );
        }
    }
    Ok(exit::OK)
}

fn standard_text(i: &StandardInquiry) -> String {
    let mut s = String::from("standard INQUIRY:\n");
    let _ = writeln!(
        s,
        "  PQual={}  PDT={} ({})  RMB={}  version={:#04x}  response format={}",
        i.peripheral_qualifier,
        i.device_type.0,
        i.device_type,
        i.rmb as u8,
        i.version,
        i.response_data_format
    );
    let _ = writeln!(
        s,
        "  NormACA={}  HiSup={}  SCCS={}  ACC={}  TPGS={}  3PC={}  Protect={}",
        i.normaca as u8,
        i.hisup as u8,
        i.sccs as u8,
        i.acc as u8,
        i.tpgs,
        i.three_pc as u8,
        i.protect as u8
    );
    let _ = writeln!(
        s,
        "  EncServ={}  MultiP={}  CmdQue={}",
        i.encserv as u8, i.multip as u8, i.cmdque as u8
    );
    let _ = writeln!(s, "  Vendor identification: {}", i.vendor);
    let _ = writeln!(s, "  Product identification: {}", i.product);
    let _ = writeln!(s, "  Product revision level: {}", i.revision);
    if !i.version_descriptors.is_empty() {
        s.push_str("  Version descriptors:\n");
        for v in &i.version_descriptors {
            let _ = writeln!(s, "    {v:#06x}");
        }
    }
    s
}

fn devid_text(v: &DeviceIdentification) -> String {
    let mut s = String::from("Device Identification VPD page:\n");
    for d in &v.designators {
        let _ = writeln!(
            s,
            "  association: {}, designator type: {}, code set: {}{}",
            d.association,
            d.designator_type,
            d.code_set,
            if d.piv {
                format!(", protocol id {:#x}", d.protocol_id)
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "    {d}");
    }
    if let Some(best) = v.best_lu_designator() {
        let _ = writeln!(s, "  designator for EXTENDED COPY: {best}");
    }
    s
}

fn block_limits_text(v: &BlockLimitsVpd) -> String {
    let mut s = String::from("Block limits VPD page:\n");
    let rows: [(&str, u64); 8] = [
        (
            "Maximum compare and write length",
            v.max_compare_write as u64,
        ),
        (
            "Optimal transfer length granularity",
            v.optimal_granularity as u64,
        ),
        ("Maximum transfer length", v.max_transfer_length as u64),
        ("Optimal transfer length", v.optimal_transfer_length as u64),
        ("Maximum prefetch length", v.max_prefetch_length as u64),
        ("Maximum unmap LBA count", v.max_unmap_lba_count as u64),
        (
            "Maximum unmap block descriptor count",
            v.max_unmap_descriptor_count as u64,
        ),
        ("Maximum write same length", v.max_write_same_length),
    ];
    for (k, n) in rows {
        let _ = writeln!(
            s,
            "  {k}: {n}{}",
            if n == 0 { " (not reported)" } else { "" }
        );
    }
    s
}

#[derive(Serialize)]
struct LunInfo {
    lun: u16,
    /// A ready-made device address for this LUN (no credentials in it).
    url: String,
    device_type: Option<u8>,
    device_type_name: Option<String>,
    vendor: Option<String>,
    product: Option<String>,
    revision: Option<String>,
    /// Disks only: READ CAPACITY's size.
    bytes: Option<u64>,
    block_size: Option<u32>,
    error: Option<String>,
}

#[derive(Serialize)]
struct TargetInfo {
    target: String,
    portal: String,
    discovered_portals: Vec<String>,
    luns: Vec<LunInfo>,
}

pub fn luns(s: &Sessions, out: &Out, portal: &str) -> Result<u8> {
    let portal = PortalUrl::parse(portal)?;
    let opts = s.iscsi();
    let targets =
        discover(&portal, opts).with_context(|| format!("discovery at {}", portal.portal()))?;
    let all = targets
        .iter()
        .map(|t| target_info(&portal.portal(), t, s))
        .collect::<Result<Vec<_>>>()?;
    out.emit(&all, || luns_text(&all));
    Ok(exit::OK)
}

/// Log in to `t` through the first portal that takes it, then list its
/// LUNs with INQUIRY (and READ CAPACITY for disks) on each.
fn target_info(portal: &str, t: &DiscoveredTarget, s: &Sessions) -> Result<TargetInfo> {
    let opts = s.iscsi();
    // The portal given first: discovery just answered there, and a target
    // behind NAT (LIO in QEMU) names its own unreachable address. The
    // portals discovery named are the alternates.
    let mut candidates = vec![portal.to_string()];
    for p in &t.portals {
        let p = strip_tpgt(p);
        if !candidates.contains(&p) {
            candidates.push(p);
        }
    }
    let (used, session) = login_any(&candidates, &t.name, opts)?;
    let list = Scsi::new(s.traced(Box::new(session))).report_luns()?;
    let mut luns = Vec::new();
    for l in &list.luns {
        match l.index() {
            Some(idx) => luns.push(lun_info(&used, &t.name, idx, s)),
            None => log::warn!(
                "{}: LUN {:#018x} uses an addressing method not shown",
                t.name,
                l.0
            ),
        }
    }
    Ok(TargetInfo {
        target: t.name.clone(),
        portal: used,
        discovered_portals: t.portals.clone(),
        luns,
    })
}

/// A session to LUN 0 of `target` through the first of `portals` that
/// accepts a login.
fn login_any(
    portals: &[String],
    target: &str,
    opts: &IscsiOptions,
) -> Result<(String, IscsiTransport)> {
    let mut last_err = None;
    for c in portals {
        match IscsiTransport::connect(&lun_url(c, target, 0)?, opts) {
            Ok(s) => return Ok((c.clone(), s)),
            Err(e) => {
                log::info!("{target}: portal {c} unusable: {e}");
                last_err = Some(e);
            }
        }
    }
    let e = last_err.map(|e| e.to_string()).unwrap_or_default();
    anyhow::bail!("target {target}: no portal accepted a login: {e}")
}

fn luns_text(all: &[TargetInfo]) -> String {
    let mut s = String::new();
    if all.is_empty() {
        s.push_str("no targets discovered\n");
    }
    for t in all {
        let _ = writeln!(s, "Target: {}  (portal {})", t.target, t.portal);
        for l in &t.luns {
            let what = match &l.error {
                Some(e) => format!("error: {e}"),
                None => format!(
                    "{:<14} {:<8} {:<16} {:<4} {:>10}",
                    l.device_type_name.as_deref().unwrap_or("?"),
                    l.vendor.as_deref().unwrap_or(""),
                    l.product.as_deref().unwrap_or(""),
                    l.revision.as_deref().unwrap_or(""),
                    l.bytes.map(human_size).unwrap_or_default()
                ),
            };
            let _ = writeln!(s, "  LUN {:<3} {what}  {}", l.lun, l.url);
        }
    }
    s
}

fn strip_tpgt(p: &str) -> String {
    p.rsplit_once(',').map_or(p, |(a, _)| a).to_string()
}

fn lun_url(portal: &str, target: &str, lun: u16) -> Result<IscsiUrl> {
    Ok(IscsiUrl::parse(&format!(
        "iscsi://{portal}/{target}/{lun}"
    ))?)
}

fn lun_info(portal: &str, target: &str, lun: u16, s: &Sessions) -> LunInfo {
    let url = format!("iscsi://{portal}/{target}/{lun}");
    let r = (|| -> Result<(StandardInquiry, Option<Capacity>)> {
        let t = IscsiTransport::connect(&lun_url(portal, target, lun)?, s.iscsi())?;
        let mut scsi = Scsi::new(s.traced(Box::new(t)));
        let inq = scsi.inquiry()?;
        let cap = match inq.device_type {
            DeviceType::DISK => read_capacity(&mut scsi).ok(),
            _ => None,
        };
        Ok((inq, cap))
    })();
    let mut info = LunInfo {
        lun,
        url,
        device_type: None,
        device_type_name: None,
        vendor: None,
        product: None,
        revision: None,
        bytes: None,
        block_size: None,
        error: None,
    };
    match r {
        Ok((i, cap)) => {
            info.device_type = Some(i.device_type.0);
            info.device_type_name = Some(i.device_type.to_string());
            info.vendor = Some(i.vendor);
            info.product = Some(i.product);
            info.revision = Some(i.revision);
            info.bytes = cap.as_ref().map(|c| c.bytes());
            info.block_size = cap.map(|c| c.block_size.0);
        }
        Err(e) => info.error = Some(super::output::error_text(&e)),
    }
    info
}

pub fn readcap(s: &Sessions, out: &Out, dev: &str) -> Result<u8> {
    let mut scsi = s.scsi(dev)?;
    // A tape or changer gets "is a tape device", not READ CAPACITY's
    // INVALID COMMAND OPERATION CODE.
    scsi.expect_type(DeviceType::DISK)?;
    let cap = read_capacity(&mut scsi)?;
    #[derive(Serialize)]
    struct Cap {
        blocks: u64,
        block_size: u32,
        bytes: u64,
        last_lba: u64,
        from_read_capacity_16: bool,
    }
    let c = Cap {
        blocks: cap.blocks.0,
        block_size: cap.block_size.0,
        bytes: cap.bytes(),
        last_lba: cap.blocks.0.saturating_sub(1),
        from_read_capacity_16: cap.from_16,
    };
    out.emit(&c, || {
        format!(
            "Last LBA={} ({:#x}), number of logical blocks={}\nLogical block length={} bytes\nDevice size: {} bytes, {:.1} MiB\n",
            c.last_lba,
            c.last_lba,
            c.blocks,
            c.block_size,
            c.bytes,
            c.bytes as f64 / 1048576.0
        )
    });
    Ok(exit::OK)
}

/// The request `raw` sends: the CDB, and data-in room or data-out bytes.
fn raw_request(a: &RawArgs) -> Result<(Cdb, Request)> {
    let bytes = parse_hex_args(&a.cdb)?;
    let cdb = Cdb::new(&bytes).map_err(|e| UsageError(e.to_string()))?;
    let req = match (a.data_in, &a.send) {
        (Some(n), _) => Request::data_in(cdb, n),
        (None, Some(f)) => {
            let data = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            Request::data_out(cdb, data)
        }
        (None, None) => Request::none(cdb),
    };
    Ok((cdb, req.with_timeout(Duration::from_secs(a.timeout))))
}

/// A residual the transport reported (SAM-5 5.4.2): data the command did
/// not take (data-out) or did not return (data-in).
#[derive(Serialize)]
struct ResidualOut {
    /// "underflow": fewer bytes moved than offered; "overflow": the
    /// command wanted more than was offered.
    kind: &'static str,
    bytes: u64,
}

impl ResidualOut {
    fn of(r: Residual) -> Option<ResidualOut> {
        match r {
            Residual::None => None,
            Residual::Underflow(n) => Some(ResidualOut {
                kind: "underflow",
                bytes: n,
            }),
            Residual::Overflow(n) => Some(ResidualOut {
                kind: "overflow",
                bytes: n,
            }),
        }
    }
}

#[derive(Serialize)]
struct RawOut<'a> {
    cdb: String,
    status: u8,
    status_name: String,
    sense_hex: String,
    sense: Option<&'a Sense>,
    data_in_len: usize,
    data_in_hex: Option<String>,
    /// With --send: the bytes offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_out_len: Option<usize>,
    /// Only when the transport reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    residual: Option<ResidualOut>,
    exit_code: u8,
}

pub fn raw(s: &Sessions, out: &Out, a: &RawArgs) -> Result<u8> {
    let (cdb, req) = raw_request(a)?;
    let data_out_len = a.send.is_some().then_some(req.buf.len());
    let mut scsi = s.scsi(&a.dev)?;
    let resp = scsi.run_any(req)?;
    let sense = Sense::parse(&resp.sense).ok();
    let code = exit::for_status(resp.status, sense.as_ref());
    let data_in = match a.data_in {
        Some(_) => &resp.buf[..resp.transferred()],
        None => &[][..],
    };
    if let Some(path) = &a.save {
        std::fs::write(path, data_in).with_context(|| format!("writing {}", path.display()))?;
    }
    let r = RawOut {
        cdb: cdb.to_string(),
        status: resp.status.0,
        status_name: resp.status.to_string(),
        sense_hex: hex::encode(&resp.sense),
        sense: sense.as_ref(),
        data_in_len: data_in.len(),
        data_in_hex: (a.data_in.is_some() && a.save.is_none()).then(|| hex::encode(data_in)),
        data_out_len,
        residual: ResidualOut::of(resp.residual),
        exit_code: code,
    };
    out.emit(&r, || raw_text(a, &r, data_in));
    Ok(code)
}

fn raw_text(a: &RawArgs, r: &RawOut<'_>, data_in: &[u8]) -> String {
    let mut s = format!("    cdb: {}\nSCSI Status: {}\n", r.cdb, r.status_name);
    if !r.sense_hex.is_empty() {
        let _ = writeln!(s, "Sense: {}", r.sense_hex);
        match r.sense {
            Some(se) => s.push_str(&sense_text(se)),
            None => s.push_str("  (sense bytes could not be decoded)\n"),
        }
    }
    if let Some(n) = r.data_out_len {
        let _ = writeln!(s, "Sent {n} bytes of data");
    }
    if let Some(res) = &r.residual {
        let _ = writeln!(
            s,
            "Residual: {} of {} bytes ({})",
            res.kind,
            res.bytes,
            match (res.kind, r.data_out_len.is_some()) {
                ("underflow", true) => "the command took fewer bytes than were sent",
                ("underflow", false) => "the device returned fewer bytes than asked for",
                (_, true) => "the command wanted more bytes than were sent",
                (_, false) => "the device had more bytes than were asked for",
            }
        );
    }
    if a.data_in.is_some() {
        match &a.save {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "Received {} bytes of data, saved to {}",
                    data_in.len(),
                    p.display()
                );
            }
            None => {
                let _ = writeln!(s, "Received {} bytes of data:", data_in.len());
                s.push_str(&hexdump(data_in));
            }
        }
    }
    s
}

/// Multi-line decode, like sg_decode_sense.
pub fn sense_text(s: &Sense) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "  {} {} sense, key: {} ({:#x})",
        if s.current { "current" } else { "deferred" },
        if s.descriptor_format {
            "descriptor"
        } else {
            "fixed"
        },
        s.key,
        s.key.0
    );
    let _ = writeln!(
        t,
        "  additional sense: {} (ASC={:#04x}, ASCQ={:#04x})",
        s.asc
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into()),
        s.asc.asc(),
        s.asc.ascq()
    );
    let flags: Vec<&str> = [(s.filemark, "FILEMARK"), (s.eom, "EOM"), (s.ili, "ILI")]
        .iter()
        .filter(|(b, _)| *b)
        .map(|(_, n)| *n)
        .collect();
    if !flags.is_empty() {
        let _ = writeln!(t, "  flags: {}", flags.join(" "));
    }
    if let Some(i) = s.information {
        let _ = writeln!(t, "  information: {i:#x} ({i})");
        if let Some(si) = s.information_i32() {
            if si < 0 {
                let _ = writeln!(t, "    as signed 32-bit: {si}");
            }
        }
    }
    if let Some(c) = s.command_specific {
        let _ = writeln!(t, "  command-specific information: {c:#x}");
    }
    if let Some(k) = &s.sense_key_specific {
        let _ = writeln!(t, "  sense-key specific: {k}");
    }
    if s.fru != 0 {
        let _ = writeln!(t, "  field replaceable unit: {:#x}", s.fru);
    }
    t
}

/// Where `sense` reads its bytes from.
enum SenseInput {
    Words(Vec<String>),
    HexFile(std::path::PathBuf),
    BinaryFile(std::path::PathBuf),
}

impl SenseInput {
    pub fn new(a: &SenseArgs) -> Self {
        match (&a.file, &a.binary) {
            (Some(f), _) => SenseInput::HexFile(f.clone()),
            (None, Some(b)) => SenseInput::BinaryFile(b.clone()),
            _ if a.hex == ["-"] => SenseInput::HexFile("-".into()),
            _ => SenseInput::Words(a.hex.clone()),
        }
    }

    fn bytes(&self) -> Result<Vec<u8>> {
        Ok(match self {
            SenseInput::Words(w) => parse_hex_args(w)?,
            SenseInput::HexFile(f) => {
                let text = String::from_utf8_lossy(&read_input(f)?).into_owned();
                // sg_decode_sense's hex files: '#' starts a comment.
                let words: Vec<String> = text
                    .lines()
                    .map(|l| l.split('#').next().unwrap_or("").to_string())
                    .collect();
                parse_hex_args(&words)?
            }
            SenseInput::BinaryFile(f) => read_input(f)?,
        })
    }
}

/// The bytes of FILE, or of standard input for `-`.
fn read_input(f: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    if f == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
    } else {
        buf = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
    }
    Ok(buf)
}

pub fn sense(out: &Out, a: &SenseArgs) -> Result<u8> {
    let bytes = SenseInput::new(a).bytes()?;
    let s = Sense::parse(&bytes).map_err(|e| UsageError(format!("not sense data: {e}")))?;
    out.emit(&s, || format!("{s}\n{}", sense_text(&s)));
    Ok(exit::OK)
}
