//! Reservations from the initiator's side: PERSISTENT RESERVE IN and OUT
//! (SPC-4 6.15, 6.16) and RESERVE/RELEASE(6) on any device, with the
//! codec's CDBs and parameter data. A refusal is a [`DeviceError`] whose
//! status is RESERVATION CONFLICT or whose sense says why.

use serde::Serialize;

use crate::scsi::spc::{
    pr_in_full_len, PersistentReserveIn, PersistentReserveOut, PrCapabilities, PrFullStatus,
    PrInAction, PrKeys, PrOutAction, PrOutParameters, PrReservation, PrType, Release6, Reserve6,
};
use crate::scsi::{CdbCodec, Wire};
use crate::transport::{Request, Transport};

use super::{DeviceError, Scsi};

/// A PERSISTENT RESERVE OUT to send: the service action, the type (for
/// RESERVE, RELEASE and the PREEMPTs), the sender's key and the service
/// action key (the new key of a REGISTER, the key a PREEMPT removes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrOut {
    pub action: PrOutAction,
    pub pr_type: PrType,
    pub key: u64,
    pub service_action_key: u64,
}

impl PrOut {
    /// REGISTER AND IGNORE EXISTING KEY: `key` becomes this nexus's key
    /// whatever it had (0 unregisters).
    pub fn register(key: u64) -> PrOut {
        PrOut {
            action: PrOutAction::REGISTER_AND_IGNORE,
            pr_type: PrType(0),
            key: 0,
            service_action_key: key,
        }
    }

    pub fn reserve(key: u64, pr_type: PrType) -> PrOut {
        PrOut {
            action: PrOutAction::RESERVE,
            pr_type,
            key,
            service_action_key: 0,
        }
    }

    pub fn release(key: u64, pr_type: PrType) -> PrOut {
        PrOut {
            action: PrOutAction::RELEASE,
            ..PrOut::reserve(key, pr_type)
        }
    }

    pub fn clear(key: u64) -> PrOut {
        PrOut {
            action: PrOutAction::CLEAR,
            ..PrOut::reserve(key, PrType(0))
        }
    }

    /// PREEMPT (or PREEMPT AND ABORT with `abort`) the registrations
    /// under `victim`, taking the reservation as `pr_type`.
    pub fn preempt(key: u64, victim: u64, pr_type: PrType, abort: bool) -> PrOut {
        PrOut {
            action: if abort {
                PrOutAction::PREEMPT_AND_ABORT
            } else {
                PrOutAction::PREEMPT
            },
            pr_type,
            key,
            service_action_key: victim,
        }
    }
}

impl<T: Transport> Scsi<T> {
    /// PERSISTENT RESERVE OUT with the basic 24-byte parameter list.
    pub fn pr_out(&mut self, o: PrOut) -> Result<(), DeviceError> {
        let params = PrOutParameters {
            key: o.key,
            service_action_key: o.service_action_key,
            ..Default::default()
        }
        .to_vec();
        let cdb = PersistentReserveOut {
            param_len: params.len() as u32,
            ..PersistentReserveOut::new(o.action, o.pr_type)
        }
        .to_cdb();
        self.run(Request::data_out(cdb, params)).map(|_| ())
    }

    /// PERSISTENT RESERVE IN, re-asked with the full length when the
    /// first answer was cut short.
    fn pr_in<W: Wire>(&mut self, action: PrInAction, what: &'static str) -> Result<W, DeviceError> {
        let mut alloc = 1024usize;
        loop {
            let cdb = PersistentReserveIn {
                action,
                alloc_len: alloc as u16,
            };
            let buf = self.data_in(cdb.to_cdb(), alloc)?;
            let full = pr_in_full_len(&buf).unwrap_or(0);
            if action == PrInAction::REPORT_CAPABILITIES || full <= buf.len() || alloc >= 0xffff {
                return W::parse(&buf).map_err(|e| self.perr(what, e));
            }
            alloc = full.min(0xffff);
        }
    }

    /// READ KEYS: the generation and every registered key.
    pub fn pr_keys(&mut self) -> Result<PrKeys, DeviceError> {
        self.pr_in(PrInAction::READ_KEYS, "READ KEYS")
    }

    /// READ RESERVATION: the holder's key and the type, if any.
    pub fn pr_reservation(&mut self) -> Result<PrReservation, DeviceError> {
        self.pr_in(PrInAction::READ_RESERVATION, "READ RESERVATION")
    }

    pub fn pr_capabilities(&mut self) -> Result<PrCapabilities, DeviceError> {
        self.pr_in(PrInAction::REPORT_CAPABILITIES, "REPORT CAPABILITIES")
    }

    /// READ FULL STATUS: every registration with its initiator.
    pub fn pr_full_status(&mut self) -> Result<PrFullStatus, DeviceError> {
        self.pr_in(PrInAction::READ_FULL_STATUS, "READ FULL STATUS")
    }

    /// Whether the device has PERSISTENT RESERVE: REPORT CAPABILITIES
    /// answered, or refused with sense (ILLEGAL REQUEST: no PR). Errors
    /// without sense (the transport) are passed on.
    pub fn pr_supported(&mut self) -> Result<bool, DeviceError> {
        match self.pr_capabilities() {
            Ok(_) => Ok(true),
            Err(e) if e.sense().is_some() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Register `key` on this I_T nexus and hold a WRITE EXCLUSIVE
    /// reservation: reserved if none is held, taken over by PREEMPT
    /// (SPC-4 5.13.11.4) if `takeover` (or `key` itself, from another
    /// nexus) holds it. Anyone else's reservation is a RESERVATION
    /// CONFLICT.
    pub fn pr_claim(&mut self, key: u64, takeover: u64) -> Result<(), DeviceError> {
        self.pr_out(PrOut::register(key))?;
        match self.pr_reservation()?.reservation {
            None => self.pr_out(PrOut::reserve(key, PrType::WRITE_EXCLUSIVE)),
            Some(r) if r.key == key || r.key == takeover => {
                self.pr_out(PrOut::preempt(key, r.key, PrType::WRITE_EXCLUSIVE, false))
            }
            Some(_) => self.pr_out(PrOut::reserve(key, PrType::WRITE_EXCLUSIVE)),
        }
    }

    /// Fence `victim`: register `key` and PREEMPT AND ABORT the victim's
    /// registrations, taking a WRITE EXCLUSIVE reservation (SPC-4
    /// 5.13.11.4.4: its tasks are aborted, its next command conflicts). A
    /// victim that never registered is kept out by holding the
    /// reservation.
    pub fn pr_fence(&mut self, key: u64, victim: u64) -> Result<(), DeviceError> {
        self.pr_out(PrOut::register(key))?;
        if self.pr_keys()?.keys.contains(&victim) {
            self.pr_out(PrOut::preempt(key, victim, PrType::WRITE_EXCLUSIVE, true))
        } else {
            self.pr_claim(key, key)
        }
    }

    /// RESERVE(6) (SPC-2 7.21).
    pub fn reserve6(&mut self) -> Result<(), DeviceError> {
        self.run(Request::none(Reserve6.to_cdb())).map(|_| ())
    }

    /// RELEASE(6) (SPC-2 7.17).
    pub fn release6(&mut self) -> Result<(), DeviceError> {
        self.run(Request::none(Release6.to_cdb())).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lu::{MemDisk, Reserved};
    use crate::scsi::Status;
    use crate::transport::memory::MemoryTransport;
    use std::sync::{Arc, Mutex};

    #[test]
    fn register_reserve_preempt_through_the_codec() {
        let lu = std::sync::Arc::new(std::sync::Mutex::new(Reserved::new(MemDisk::new(
            "PRDEV", 16, 512,
        ))));
        let mut a = Scsi::new(MemoryTransport::new("pr", lu.clone()));
        a.pr_out(PrOut::register(0xa1)).unwrap();
        a.pr_out(PrOut::reserve(0xa1, PrType::WRITE_EXCLUSIVE))
            .unwrap();
        let keys = a.pr_keys().unwrap();
        assert_eq!((keys.generation, keys.keys), (1, vec![0xa1]));
        let r = a.pr_reservation().unwrap().reservation.unwrap();
        assert_eq!((r.key, r.pr_type), (0xa1, PrType::WRITE_EXCLUSIVE));
        assert!(a.pr_capabilities().unwrap().type_mask_valid);
        assert_eq!(a.pr_full_status().unwrap().descriptors.len(), 1);
        // RESERVE(6) conflicts with a registration (CRH 0).
        let e = a.reserve6().unwrap_err();
        assert_eq!(e.status(), Some(Status::RESERVATION_CONFLICT));
        a.pr_out(PrOut::release(0xa1, PrType::WRITE_EXCLUSIVE))
            .unwrap();
        a.pr_out(PrOut::clear(0xa1)).unwrap();
        assert!(a.pr_reservation().unwrap().reservation.is_none());
        a.reserve6().unwrap();
        a.release6().unwrap();
    }

    /// One I_T nexus onto a shared unit.
    struct From(Arc<Mutex<Reserved<MemDisk>>>, crate::lu::Nexus);

    impl crate::lu::LogicalUnit for From {
        fn execute(&mut self, cdb: &[u8], out: &[u8], data_in: &mut [u8]) -> crate::lu::Completion {
            let mut lu = self.0.lock().unwrap();
            lu.execute_for(&self.1, cdb, out, data_in)
        }
    }

    fn nexus(lu: &Arc<Mutex<Reserved<MemDisk>>>, who: &str) -> Scsi<MemoryTransport<From>> {
        let n = crate::lu::Nexus {
            initiator: format!("iqn.2026-12.test:{who}"),
            isid: 1,
            target: "t".into(),
        };
        Scsi::new(MemoryTransport::new(who, From(lu.clone(), n)))
    }

    /// The backup server's fence: a host claims, the server preempts it
    /// (PREEMPT AND ABORT) and holds the reservation, the next host takes
    /// it over from the server's key, the fenced host conflicts.
    #[test]
    fn claim_fence_and_take_over() {
        let lu = Arc::new(Mutex::new(Reserved::new(MemDisk::new("PRDEV", 16, 512))));
        let (mut a, mut srv, mut b) = (nexus(&lu, "a"), nexus(&lu, "server"), nexus(&lu, "b"));
        assert!(a.pr_supported().unwrap());
        a.pr_claim(0xa1, 0x5e).unwrap();
        // Someone else's reservation is not taken over.
        let e = b.pr_claim(0xb1, 0x5e).unwrap_err();
        assert_eq!(e.status(), Some(Status::RESERVATION_CONFLICT));
        srv.pr_fence(0x5e, 0xa1).unwrap();
        let r = srv.pr_reservation().unwrap().reservation.unwrap();
        assert_eq!((r.key, r.pr_type), (0x5e, PrType::WRITE_EXCLUSIVE));
        assert!(!srv.pr_keys().unwrap().keys.contains(&0xa1));
        // The fenced host is no longer registered: its PR OUT conflicts.
        let e = a
            .pr_out(PrOut::reserve(0xa1, PrType::WRITE_EXCLUSIVE))
            .unwrap_err();
        assert_eq!(e.status(), Some(Status::RESERVATION_CONFLICT));
        b.pr_claim(0xb1, 0x5e).unwrap();
        let r = b.pr_reservation().unwrap().reservation.unwrap();
        assert_eq!(r.key, 0xb1);
        // A victim that never registered: the server just holds it.
        srv.pr_fence(0x5e, 0xc1).unwrap_err();
        b.pr_out(PrOut::clear(0xb1)).unwrap();
        srv.pr_fence(0x5e, 0xc1).unwrap();
        assert_eq!(srv.pr_reservation().unwrap().reservation.unwrap().key, 0x5e);
    }
}
