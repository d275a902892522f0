//! Reservations for any logical unit, as a layer: [`Reserved`] wraps a
//! unit and answers PERSISTENT RESERVE IN/OUT (SPC-4 6.15, 6.16) and
//! RESERVE/RELEASE(6/10) (SPC-2 7.17, 7.18, 7.21, 7.22) per I_T nexus,
//! refuses other commands with RESERVATION CONFLICT where SPC-4 5.13.1
//! says so, reports the Unit Attentions a preemption or release owes
//! (2A/03, 2A/04, 2A/05) and stops the background tasks of a nexus that
//! PREEMPT AND ABORT preempts. The frontend puts every unit it serves
//! behind one, so the router's copy manager and the library's drives and
//! changer behave alike.
//!
//! Registrations and the persistent reservation survive the loss of an
//! I_T nexus (SPC-4 5.13.1), not a restart of the target: APTPL is not
//! supported (REPORT CAPABILITIES: PTPL_C 0), nor SPEC_I_PT, ALL_TG_PT
//! (one target port), REGISTER AND MOVE or REPLACE LOST RESERVATION.
//! RESERVE(6) reservations end with their nexus (SPC-2 5.5.1). CRH is 0:
//! with any registration, RESERVE and RELEASE conflict (SPC-4 5.13.3).

use std::sync::{Arc, Mutex};

use crate::lu::{reply, Background, Completion, LogicalUnit, Nexus, TaskStop};
use crate::scsi::sense::{Asc, Sense, SenseKey, SenseKeySpecific};
use crate::scsi::spc::{
    IscsiTransportId, PersistentReserveIn, PersistentReserveOut, PrCapFlags, PrCapabilities,
    PrFullStatus, PrInAction, PrKeys, PrOutAction, PrOutParameters, PrReservation,
    PrStatusDescriptor, PrType, PrTypeMask, Release10, Reserve10, LU_SCOPE,
};
use crate::scsi::{CdbCodec, Opcode, Status, Wire};

mod state;
#[cfg(test)]
mod tests;

use state::{lets_others_read, valid_type, PrState, Refusal};

/// What a command may do in the presence of a persistent reservation it
/// does not hold (SPC-4 5.13.1 and the command-set tables of SBC-3, SSC-4
/// and SMC-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Allowed under every type: asks, changes nothing on the medium.
    Always,
    /// Reads: allowed under the Write Exclusive types only.
    Read,
    /// Changes the medium, its position or the unit's settings: conflicts.
    Write,
}

fn access(cdb: &[u8]) -> Access {
    match Opcode(cdb[0]) {
        Opcode::INQUIRY
        | Opcode::REQUEST_SENSE
        | Opcode::TEST_UNIT_READY
        | Opcode::REPORT_LUNS
        | Opcode::LOG_SENSE
        | Opcode::READ_CAPACITY_10
        | Opcode::SERVICE_ACTION_IN_16
        | Opcode::MAINTENANCE_IN
        | Opcode::READ_BLOCK_LIMITS
        | Opcode::READ_POSITION
        | Opcode::REPORT_DENSITY_SUPPORT => Access::Always,
        // PREVENT = 0 is allowed under every type (SPC-4 5.13.1).
        Opcode::PREVENT_ALLOW_MEDIUM_REMOVAL if cdb.get(4).is_some_and(|b| b & 3 == 0) => {
            Access::Always
        }
        Opcode::READ_6
        | Opcode::READ_10
        | Opcode::READ_12
        | Opcode::READ_16
        | Opcode::READ_REVERSE_6
        | Opcode::VERIFY_6
        | Opcode::VERIFY_10
        | Opcode::VERIFY_12
        | Opcode::VERIFY_16
        | Opcode::MODE_SENSE_6
        | Opcode::MODE_SENSE_10
        | Opcode::READ_BUFFER_10
        | Opcode::RECEIVE_DIAGNOSTIC_RESULTS
        | Opcode::READ_ATTRIBUTE
        | Opcode::RECEIVE_COPY_RESULTS
        | Opcode::READ_ELEMENT_STATUS => Access::Read,
        _ => Access::Write,
    }
}

/// A logical unit behind the reservation layer.
pub struct Reserved<L> {
    inner: L,
    state: PrState,
    tasks: Tracker,
}

impl<L: LogicalUnit> Reserved<L> {
    pub fn new(inner: L) -> Self {
        Reserved {
            inner,
            state: PrState::default(),
            tasks: Tracker::default(),
        }
    }

    pub fn inner(&mut self) -> &mut L {
        &mut self.inner
    }

    /// The reservation commands this layer answers itself.
    fn own(cdb: &[u8]) -> bool {
        matches!(
            Opcode(cdb[0]),
            Opcode::PERSISTENT_RESERVE_IN
                | Opcode::PERSISTENT_RESERVE_OUT
                | Opcode::RESERVE_6
                | Opcode::RESERVE_10
                | Opcode::RELEASE_6
                | Opcode::RELEASE_10
        )
    }

    /// Whether `nexus` may run `cdb` now (SPC-4 5.13.1; SPC-2 5.5.1 for a
    /// RESERVE(6) reservation, which leaves others INQUIRY, REQUEST SENSE
    /// and REPORT LUNS).
    fn allows(&self, nexus: &Nexus, cdb: &[u8]) -> bool {
        if let Some(h) = &self.state.legacy {
            if h != nexus {
                return matches!(
                    Opcode(cdb[0]),
                    Opcode::INQUIRY | Opcode::REQUEST_SENSE | Opcode::REPORT_LUNS
                );
            }
        }
        if self.state.full_access(nexus) {
            return true;
        }
        let held = self.state.held.as_ref().map(|h| h.pr_type);
        match access(cdb) {
            Access::Always => true,
            Access::Read => held.is_some_and(lets_others_read),
            Access::Write => false,
        }
    }

    /// A pending Unit Attention ends any command but INQUIRY and REPORT
    /// LUNS; REQUEST SENSE returns it as its data (SAM-5 5.14, SPC-4
    /// 6.29).
    fn unit_attention(
        &mut self,
        nexus: &Nexus,
        cdb: &[u8],
        data_in: &mut [u8],
    ) -> Option<Completion> {
        match Opcode(cdb[0]) {
            Opcode::INQUIRY | Opcode::REPORT_LUNS => None,
            Opcode::REQUEST_SENSE => {
                let s = self.state.take_ua(nexus)?;
                let alloc = cdb.get(4).map_or(0, |&b| b as usize).min(data_in.len());
                Some(reply(&mut data_in[..alloc], &s.to_fixed()))
            }
            _ => self.state.take_ua(nexus).map(Completion::check),
        }
    }

    fn own_command(
        &mut self,
        nexus: &Nexus,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> Completion {
        let op = Opcode(cdb[0]);
        let legacy_held = self.state.legacy.is_some();
        let r = match op {
            // SPC-4 5.13.3 (SPC-3 5.6.3): under a RESERVE(6) reservation
            // every PERSISTENT RESERVE command conflicts.
            Opcode::PERSISTENT_RESERVE_IN | Opcode::PERSISTENT_RESERVE_OUT if legacy_held => {
                Err(Refusal::Conflict)
            }
            Opcode::PERSISTENT_RESERVE_IN => return self.pr_in(cdb, data_in),
            Opcode::PERSISTENT_RESERVE_OUT => self.pr_out(nexus, cdb, data_out),
            _ => self.legacy(nexus, cdb),
        };
        match r {
            Ok(()) => Completion::good(0),
            Err(e) => refused(e),
        }
    }

    /// RESERVE and RELEASE (6) and (10).
    fn legacy(&mut self, nexus: &Nexus, cdb: &[u8]) -> Result<(), Refusal> {
        let op = Opcode(cdb[0]);
        let reserve = matches!(op, Opcode::RESERVE_6 | Opcode::RESERVE_10);
        let flags = match op {
            Opcode::RESERVE_10 => Reserve10::parse(cdb).map(|c| c.flags),
            Opcode::RELEASE_10 => Release10::parse(cdb).map(|c| c.flags),
            _ if cdb.len() >= 6 => Ok(cdb[1]),
            _ => Ok(0xff),
        };
        // Third-party and extent reservations (byte 1) are not supported.
        if flags.map_or(true, |f| f & 0x13 != 0) {
            return Err(Refusal::BadCdb(1));
        }
        if !self.state.regs.is_empty() {
            return Err(Refusal::Conflict);
        }
        match (&self.state.legacy, reserve) {
            (Some(h), true) if h != nexus => Err(Refusal::Conflict),
            (_, true) => {
                self.state.legacy = Some(nexus.clone());
                Ok(())
            }
            // SPC-2 7.17: a RELEASE from a non-holder does nothing.
            (Some(h), false) if h == nexus => {
                self.state.legacy = None;
                Ok(())
            }
            (_, false) => Ok(()),
        }
    }

    /// PERSISTENT RESERVE IN (SPC-4 6.15).
    fn pr_in(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let Ok(c) = PersistentReserveIn::parse(cdb) else {
            return Completion::bad_field(0);
        };
        let s = &self.state;
        let bytes = match c.action {
            PrInAction::READ_KEYS => PrKeys {
                generation: s.generation,
                keys: s.regs.iter().map(|(_, k)| *k).collect(),
            }
            .to_vec(),
            PrInAction::READ_RESERVATION => PrReservation {
                generation: s.generation,
                reservation: s.holder(),
            }
            .to_vec(),
            PrInAction::REPORT_CAPABILITIES => capabilities().to_vec(),
            PrInAction::READ_FULL_STATUS => self.full_status().to_vec(),
            _ => return Completion::bad_field(1),
        };
        let alloc = (c.alloc_len as usize).min(data_in.len());
        reply(&mut data_in[..alloc], &bytes)
    }

    fn full_status(&self) -> PrFullStatus {
        let s = &self.state;
        let holder_type = s.held.as_ref().map(|h| h.pr_type);
        let descriptors = s
            .regs
            .iter()
            .map(|(n, k)| {
                let holds = s.holds(n);
                PrStatusDescriptor {
                    key: *k,
                    all_tg_pt: false,
                    holder: holds,
                    scope: LU_SCOPE,
                    pr_type: holder_type.filter(|_| holds).unwrap_or(PrType(0)),
                    relative_target_port: 1,
                    transport_id: IscsiTransportId {
                        name: n.initiator.clone(),
                        isid: Some(n.isid),
                    }
                    .to_vec(),
                }
            })
            .collect();
        PrFullStatus {
            generation: s.generation,
            descriptors,
        }
    }

    /// PERSISTENT RESERVE OUT (SPC-4 6.16): the CDB and the basic 24-byte
    /// parameter list checked, then the service action.
    fn pr_out(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Result<(), Refusal> {
        let Ok(c) = PersistentReserveOut::parse(cdb) else {
            return Err(Refusal::BadCdb(0));
        };
        // SPC-4 6.16.3: with SPEC_I_PT 0 the list is exactly 24 bytes.
        if c.param_len as usize != PrOutParameters::LEN || data_out.len() < PrOutParameters::LEN {
            return Err(Refusal::Illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let p = PrOutParameters::parse(data_out)
            .map_err(|_| Refusal::Illegal(Asc::PARAMETER_LIST_LENGTH_ERROR))?;
        if p.spec_i_pt || p.all_tg_pt || p.aptpl {
            return Err(Refusal::BadParam(20));
        }
        let typed = matches!(
            c.action,
            PrOutAction::RESERVE
                | PrOutAction::RELEASE
                | PrOutAction::PREEMPT
                | PrOutAction::PREEMPT_AND_ABORT
        );
        if typed && (c.scope != LU_SCOPE || !valid_type(c.pr_type)) {
            return Err(Refusal::BadCdb(2));
        }
        let s = &mut self.state;
        match c.action {
            PrOutAction::REGISTER => s.register(nexus, &p, false),
            PrOutAction::REGISTER_AND_IGNORE => s.register(nexus, &p, true),
            PrOutAction::RESERVE => s.reserve(nexus, &p, c.pr_type),
            PrOutAction::RELEASE => s.release(nexus, &p, c.pr_type),
            PrOutAction::CLEAR => s.clear(nexus, &p),
            PrOutAction::PREEMPT => s.preempt(nexus, &p, c.pr_type).map(|_| ()),
            PrOutAction::PREEMPT_AND_ABORT => {
                let preempted = s.preempt(nexus, &p, c.pr_type)?;
                // SPC-4 5.13.11.4.5: the preempted nexuses' tasks end.
                self.tasks.abort(&preempted);
                Ok(())
            }
            _ => Err(Refusal::BadCdb(1)),
        }
    }
}

/// What this layer supports (SPC-4 6.15.4): the six types; TEST UNIT
/// READY passes WE and EA reservations (ALLOW COMMANDS 001b); no CRH,
/// SPEC_I_PT, ALL_TG_PT or APTPL.
fn capabilities() -> PrCapabilities {
    PrCapabilities {
        flags: PrCapFlags::empty(),
        type_mask_valid: true,
        allow_commands: 1,
        ptpl_active: false,
        type_mask: PrTypeMask::all(),
    }
}

fn refused(r: Refusal) -> Completion {
    let pointer = |cd: bool, field: u16| SenseKeySpecific::FieldPointer {
        cd,
        bpv: false,
        bit: 0,
        field,
    };
    match r {
        Refusal::Conflict => Completion {
            status: Status::RESERVATION_CONFLICT,
            sense: Vec::new(),
            data_in_len: 0,
        },
        Refusal::BadCdb(at) => Completion::bad_field(at),
        Refusal::BadParam(at) => Completion::check(
            Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::INVALID_FIELD_IN_PARAMETER_LIST,
            )
            .with_sks(pointer(false, at)),
        ),
        Refusal::Illegal(asc) => Completion::illegal(asc),
    }
}

impl<L: LogicalUnit> LogicalUnit for Reserved<L> {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8], data_in: &mut [u8]) -> Completion {
        self.execute_for(&Nexus::default(), cdb, data_out, data_in)
    }

    fn execute_for(
        &mut self,
        nexus: &Nexus,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut [u8],
    ) -> Completion {
        if cdb.is_empty() {
            return self.inner.execute_for(nexus, cdb, data_out, data_in);
        }
        if let Some(c) = self.unit_attention(nexus, cdb, data_in) {
            return c;
        }
        // The unit's own Unit Attention (a medium change, a reset) comes
        // before this layer's answers too (SAM-5 5.14).
        if let Some(s) = self.inner.take_attention(nexus, cdb) {
            return Completion::check(s);
        }
        if Self::own(cdb) {
            return self.own_command(nexus, cdb, data_out, data_in);
        }
        if !self.allows(nexus, cdb) {
            return refused(Refusal::Conflict);
        }
        self.inner.execute_for(nexus, cdb, data_out, data_in)
    }

    /// Only an allowed command with no Unit Attention pending goes to the
    /// unit's background path; the rest is answered by `execute_for`.
    fn background(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Option<Background> {
        if cdb.is_empty() || Self::own(cdb) || self.state.has_ua(nexus) || !self.allows(nexus, cdb)
        {
            return None;
        }
        let job = self.inner.background(nexus, cdb, data_out)?;
        Some(self.tasks.track(nexus.clone(), job))
    }

    fn nexus_lost(&mut self, nexus: &Nexus) {
        if self.state.legacy.as_ref() == Some(nexus) {
            self.state.legacy = None;
        }
        self.inner.nexus_lost(nexus)
    }

    /// A reset ends a RESERVE(6) reservation, not a persistent one
    /// (SPC-2 5.5.1; SPC-4 5.13.1).
    fn reset(&mut self) {
        self.state.legacy = None;
        self.inner.reset()
    }

    fn probe(&mut self, nexus: &Nexus, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        self.inner.probe(nexus, cdb, data_in)
    }
}

/// The background tasks running behind the layer, by nexus, so PREEMPT
/// AND ABORT can stop them. A task preempted before its thread starts is
/// stopped as it starts.
#[derive(Clone, Default)]
struct Tracker(Arc<Mutex<TrackerState>>);

#[derive(Default)]
struct TrackerState {
    next: u64,
    tasks: Vec<Tracked>,
}

struct Tracked {
    id: u64,
    nexus: Nexus,
    stop: Option<TaskStop>,
    preempted: bool,
}

/// Removes its task from the tracker however the job ends (run, or
/// dropped unrun).
struct Entry {
    tracker: Tracker,
    id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.tracker.lock().tasks.retain(|t| t.id != self.id);
    }
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn track(&self, nexus: Nexus, job: Background) -> Background {
        let id = {
            let mut s = self.lock();
            s.next += 1;
            let id = s.next;
            s.tasks.push(Tracked {
                id,
                nexus,
                stop: None,
                preempted: false,
            });
            id
        };
        let entry = Entry {
            tracker: self.clone(),
            id,
        };
        Box::new(move |stop: &TaskStop| {
            if entry.tracker.started(entry.id, stop) {
                stop.stop();
            }
            let c = job(stop);
            // SAM-5 7.2 with TAS = 1: a task aborted because of another
            // I_T nexus ends with TASK ABORTED.
            if entry.tracker.preempted(entry.id) {
                Completion {
                    status: Status::TASK_ABORTED,
                    sense: Vec::new(),
                    data_in_len: 0,
                }
            } else {
                c
            }
        })
    }

    /// Record the frontend's stop flag; true when already preempted.
    fn started(&self, id: u64, stop: &TaskStop) -> bool {
        let mut s = self.lock();
        let Some(t) = s.tasks.iter_mut().find(|t| t.id == id) else {
            return false;
        };
        t.stop = Some(stop.clone());
        t.preempted
    }

    fn preempted(&self, id: u64) -> bool {
        self.lock().tasks.iter().any(|t| t.id == id && t.preempted)
    }

    /// Stop every task of these nexuses.
    fn abort(&self, nexuses: &[Nexus]) -> usize {
        let mut s = self.lock();
        let mut n = 0;
        for t in s.tasks.iter_mut().filter(|t| nexuses.contains(&t.nexus)) {
            t.preempted = true;
            if let Some(stop) = &t.stop {
                stop.stop();
            }
            n += 1;
        }
        n
    }
}
