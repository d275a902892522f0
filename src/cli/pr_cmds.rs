//! `sanmover pr`: reservations of an LU from this initiator, over the
//! device layer's PR API (the codec's CDBs and parameter data).

use anyhow::Result;
use serde::Serialize;

use super::args::{PrArgs, PrOp, PrTypeArg};
use super::exit;
use super::output::Out;
use super::sessions::Sessions;
use crate::device::PrOut;
use crate::scsi::spc::{IscsiTransportId, PrFullStatus, PrType};
use crate::scsi::Wire;

fn pr_type(t: PrTypeArg) -> PrType {
    match t {
        PrTypeArg::We => PrType::WRITE_EXCLUSIVE,
        PrTypeArg::Ea => PrType::EXCLUSIVE_ACCESS,
        PrTypeArg::WeRo => PrType::WE_REGISTRANTS_ONLY,
        PrTypeArg::EaRo => PrType::EA_REGISTRANTS_ONLY,
        PrTypeArg::WeAr => PrType::WE_ALL_REGISTRANTS,
        PrTypeArg::EaAr => PrType::EA_ALL_REGISTRANTS,
    }
}

/// What a PERSISTENT RESERVE OUT did, for `--json`.
#[derive(Serialize)]
struct Done {
    device: String,
    done: PrOut,
}

pub fn run(s: &Sessions, out: &Out, a: &PrArgs) -> Result<u8> {
    let mut scsi = s.scsi(&a.dev)?;
    let o = match a.op {
        PrOp::Keys => {
            let k = scsi.pr_keys()?;
            out.emit(&k, || {
                let mut t = format!(
                    "PR generation={:#x}, {} registered keys\n",
                    k.generation,
                    k.keys.len()
                );
                k.keys
                    .iter()
                    .for_each(|x| t.push_str(&format!("  {x:#x}\n")));
                t
            });
            return Ok(exit::OK);
        }
        PrOp::Reservation => {
            let r = scsi.pr_reservation()?;
            out.emit(&r, || match &r.reservation {
                Some(h) => format!("PR generation={:#x}, reservation: {h}", r.generation),
                None => format!("PR generation={:#x}, no reservation", r.generation),
            });
            return Ok(exit::OK);
        }
        PrOp::Capabilities => return capabilities(&mut scsi, out),
        PrOp::Status => return full_status(&scsi.pr_full_status()?, out),
        PrOp::Reserve6 => {
            scsi.reserve6()?;
            scsi.release6()?;
            out.emit(&serde_json::json!({"reserve6": true}), || {
                "RESERVE(6) and RELEASE(6) taken".into()
            });
            return Ok(exit::OK);
        }
        PrOp::Reserve { key, pr_type: t } => PrOut::reserve(key, pr_type(t)),
        PrOp::Clear { key } => PrOut::clear(key),
        PrOp::Preempt {
            key,
            victim,
            pr_type: t,
            abort,
        } => PrOut::preempt(key, victim, pr_type(t), abort),
    };
    // This command's session is a nexus of its own: register it first.
    scsi.pr_out(PrOut::register(o.key))?;
    scsi.pr_out(o)?;
    let d = Done {
        device: a.dev.clone(),
        done: o,
    };
    out.emit(&d, || format!("{}: {} done", d.device, o.action));
    Ok(exit::OK)
}

fn capabilities<T: crate::transport::Transport>(
    scsi: &mut crate::device::Scsi<T>,
    out: &Out,
) -> Result<u8> {
    let c = scsi.pr_capabilities()?;
    #[derive(Serialize)]
    struct Caps {
        types: Vec<String>,
        allow_commands: u8,
        persist_through_power_loss: bool,
        specify_initiator_ports: bool,
        all_target_ports: bool,
        compatible_reservation_handling: bool,
    }
    use crate::scsi::spc::{PrCapFlags, PrTypeMask};
    let types = (1..=8)
        .map(PrType)
        .filter(|t| {
            c.type_mask_valid
                && !PrTypeMask::of(*t).is_empty()
                && c.type_mask.contains(PrTypeMask::of(*t))
        })
        .map(|t| t.to_string())
        .collect();
    let v = Caps {
        types,
        allow_commands: c.allow_commands,
        persist_through_power_loss: c.flags.contains(PrCapFlags::PTPL_C),
        specify_initiator_ports: c.flags.contains(PrCapFlags::SIP_C),
        all_target_ports: c.flags.contains(PrCapFlags::ATP_C),
        compatible_reservation_handling: c.flags.contains(PrCapFlags::CRH),
    };
    out.emit(&v, || {
        format!(
            "types: {}\nALLOW COMMANDS={} PTPL_C={} SIP_C={} ATP_C={} CRH={}\n",
            v.types.join(", "),
            v.allow_commands,
            v.persist_through_power_loss as u8,
            v.specify_initiator_ports as u8,
            v.all_target_ports as u8,
            v.compatible_reservation_handling as u8
        )
    });
    Ok(exit::OK)
}

fn full_status(f: &PrFullStatus, out: &Out) -> Result<u8> {
    out.emit(f, || {
        let mut t = format!(
            "PR generation={:#x}, {} registrations\n",
            f.generation,
            f.descriptors.len()
        );
        for d in &f.descriptors {
            let who = IscsiTransportId::parse(&d.transport_id)
                .map(|i| match i.isid {
                    Some(isid) => format!("{} (ISID {isid:#014x})", i.name),
                    None => i.name,
                })
                .unwrap_or_else(|_| hex::encode(&d.transport_id));
            let holds = if d.holder {
                format!(", holds {}", d.pr_type)
            } else {
                String::new()
            };
            t.push_str(&format!("  key {:#x}: {who}{holds}\n", d.key));
        }
        t
    });
    Ok(exit::OK)
}
