//! The copy manager logical unit: command dispatch, its small scratch
//! disk (one per I_T nexus), the copy rights, and the results it holds per
//! I_T nexus and list ID.
//!
//! Locking: the LU's own lock (the frontend's) is held only to dispatch a
//! command. EXTENDED COPY runs as a background task ([`LogicalUnit::
//! background`]) that holds the backends for its whole run (so copies run
//! one at a time, as the operating parameters say) and its own nexus's
//! scratch disk only when that is a copy end; every other command (TEST
//! UNIT READY, INQUIRY, RECEIVE COPY RESULTS, another nexus's READ/WRITE)
//! is answered meanwhile. A running copy
//! stops at its next block boundary when its [`TaskStop`] is set or when
//! it passes the per-command caps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::lu::{reply, Background, Completion, Identity, LogicalUnit, MemDisk, Nexus, TaskStop};
use crate::scsi::sense::Asc;
use crate::scsi::spc::{
    reporting_options, support, CommandDescriptor, Designator, Inquiry, OneCommand,
    ReportSupportedOpcodes, SupportedOpcodes, SupportedVpdPages, VpdPage,
};
use crate::scsi::xcopy::{
    CopyManagerStatus, CopyStatus, ExtendedCopy, FailedSegmentDetails, OperatingParameters,
    RcrAction, ReceiveCopyResults, ReceiveData, ThirdPartyCopyVpd, TransferCountUnits,
};
use crate::scsi::{CdbCodec, DeviceType, Opcode, Status, Wire};

use super::acl::{escaped, LuIdentity, Use};
use super::backends::{Backends, Unit};
use super::exec::{Caps, Exec, Outcome};
use super::held::{Held, HeldResults};
use super::plan::{self, End, Plan, PlanError, TargetInfo, SEGMENT_TYPES};
use super::sense::Abort;
use super::{CopyManagerConfig, RouterLimits};

/// Block size of the router's own disk.
const OWN_BLOCK: u32 = 512;

/// The backends, and when they were last searched for new LUs. A copy
/// holds them for its whole run.
struct Copier {
    backends: Backends,
    last_refresh: Option<Instant>,
}

impl Copier {
    fn refresh_due(&self) -> bool {
        !self.backends.is_empty()
            && self
                .last_refresh
                .is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL)
    }

    /// Look for LUs added behind the discovered targets since.
    fn refresh(&mut self) {
        self.last_refresh = Some(Instant::now());
        match self.backends.refresh() {
            Ok(0) => {}
            Ok(k) => log::info!("{k} new backend LU(s) found"),
            Err(e) => log::warn!("looking for new backend LUs: {e}"),
        }
    }
}

/// One nexus's scratch disk, locked on its own so that a copy into it
/// holds no other nexus's.
type Scratch = Arc<Mutex<MemDisk>>;

/// The copy manager's state, shared with the copies it runs in the
/// background; each part has its own lock.
struct Core {
    cfg: CopyManagerConfig,
    id: Identity,
    /// Answers the identification VPD pages (no blocks of its own).
    ident: Mutex<MemDisk>,
    /// The scratch disk of each I_T nexus: what one nexus copies there no
    /// other can read. Dropped with the nexus.
    scratch: Mutex<HashMap<Nexus, Scratch>>,
    copier: Mutex<Copier>,
    held: Mutex<HeldResults>,
}

/// The copy manager LU (see the module documentation of
/// [`crate::router`]).
pub struct CopyManager {
    core: Arc<Core>,
}

/// The backends of a copy manager, locked (no copy runs meanwhile).
pub struct BackendsGuard<'a>(MutexGuard<'a, Copier>);

impl std::ops::Deref for BackendsGuard<'_> {
    type Target = Backends;
    fn deref(&self) -> &Backends {
        &self.0.backends
    }
}

impl std::ops::DerefMut for BackendsGuard<'_> {
    fn deref_mut(&mut self) -> &mut Backends {
        &mut self.0.backends
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often an unknown designator may send the router looking for new
/// backend LUs.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

impl std::fmt::Debug for CopyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyManager")
            .field("serial", &self.core.cfg.serial)
            .field("backends", &lock(&self.core.copier).backends)
            .finish()
    }
}

/// Commands answered, for REPORT SUPPORTED OPERATION CODES: opcode,
/// service action, CDB length.
const COMMANDS: &[(Opcode, Option<u16>, u16)] = &[
    (Opcode::TEST_UNIT_READY, None, 6),
    (Opcode::REQUEST_SENSE, None, 6),
    (Opcode::INQUIRY, None, 6),
    (Opcode::READ_CAPACITY_10, None, 10),
    (Opcode::READ_10, None, 10),
    (Opcode::WRITE_10, None, 10),
    (Opcode::SYNCHRONIZE_CACHE_10, None, 10),
    (Opcode::EXTENDED_COPY, Some(0x00), 16),
    (Opcode::RECEIVE_COPY_RESULTS, Some(0x00), 16),
    (Opcode::RECEIVE_COPY_RESULTS, Some(0x01), 16),
    (Opcode::RECEIVE_COPY_RESULTS, Some(0x03), 16),
    (Opcode::RECEIVE_COPY_RESULTS, Some(0x04), 16),
    (Opcode::READ_16, None, 16),
    (Opcode::WRITE_16, None, 16),
    (Opcode::SYNCHRONIZE_CACHE_16, None, 16),
    (Opcode::SERVICE_ACTION_IN_16, Some(0x10), 16),
    (Opcode::REPORT_LUNS, None, 12),
    (Opcode::MODE_SENSE_6, None, 6),
    (Opcode::PERSISTENT_RESERVE_IN, Some(0x00), 10),
    (Opcode::PERSISTENT_RESERVE_IN, Some(0x01), 10),
    (Opcode::PERSISTENT_RESERVE_IN, Some(0x02), 10),
    (Opcode::PERSISTENT_RESERVE_IN, Some(0x03), 10),
    (Opcode(0xa8), None, 12), // READ(12)
    (Opcode(0xaa), None, 12), // WRITE(12)
    (Opcode(0x2e), None, 10), // WRITE AND VERIFY(10)
    (Opcode(0xae), None, 12), // WRITE AND VERIFY(12)
    (Opcode(0x8e), None, 16), // WRITE AND VERIFY(16)
    (Opcode::MAINTENANCE_IN, Some(0x0c), 12),
    // Answered by the reservation layer the frontend puts around every
    // unit it serves (SPC-4 6.15, 6.16; SPC-2 7.21, 7.22).
    (Opcode::PERSISTENT_RESERVE_OUT, Some(0x00), 10),
    (Opcode::PERSISTENT_RESERVE_OUT, Some(0x01), 10),
    (Opcode::PERSISTENT_RESERVE_OUT, Some(0x02), 10),
    (Opcode::PERSISTENT_RESERVE_OUT, Some(0x03), 10),
    (Opcode::PERSISTENT_RESERVE_OUT, Some(0x04), 10),
    (Opcode::PERSISTENT_RESERVE_OUT, Some(0x05), 10),
    (Opcode::PERSISTENT_RESERVE_OUT, Some(0x06), 10),
    (Opcode::RESERVE_6, None, 6),
    (Opcode::RELEASE_6, None, 6),
    (Opcode::RESERVE_10, None, 10),
    (Opcode::RELEASE_10, None, 10),
];

impl CopyManager {
    pub fn new(cfg: CopyManagerConfig, backends: Backends) -> CopyManager {
        let core = Core {
            id: Identity::new(DeviceType::DISK, "COPY MANAGER", &cfg.serial),
            ident: Mutex::new(MemDisk::new(&cfg.serial, 0, OWN_BLOCK)),
            scratch: Mutex::new(HashMap::new()),
            held: Mutex::new(HeldResults::new(cfg.held)),
            cfg,
            copier: Mutex::new(Copier {
                backends,
                last_refresh: None,
            }),
        };
        CopyManager {
            core: Arc::new(core),
        }
    }

    pub fn limits(&self) -> &RouterLimits {
        &self.core.cfg.limits
    }

    /// The backends, e.g. to [`Backends::rescan`] them between commands
    /// (waits for a running copy).
    pub fn backends_mut(&mut self) -> BackendsGuard<'_> {
        BackendsGuard(lock(&self.core.copier))
    }

    pub fn backends(&self) -> BackendsGuard<'_> {
        BackendsGuard(lock(&self.core.copier))
    }

    /// The router's own 16-byte NAA designator (VPD 83h).
    pub fn naa(&self) -> [u8; 16] {
        self.core.id.naa
    }

    /// The CRC32Cs held for `list_id` of `nexus` (tests, logs).
    pub fn held_crcs(&self, nexus: &Nexus, list_id: u8) -> Option<Vec<u32>> {
        lock(&self.core.held)
            .get(nexus, list_id)
            .map(|h| h.crcs.clone())
    }

    fn extended_copy(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Completion {
        match parameter_list(cdb, data_out) {
            Ok([]) => Completion::good(0),
            Ok(list) => self.core.copy(nexus, list, &TaskStop::default()),
            Err(c) => c,
        }
    }
}

/// The parameter list of an EXTENDED COPY(LID1), or the answer it gets
/// without one (SPC-4 6.4.1: a PARAMETER LIST LENGTH of 0 is not an
/// error; LID4 and the ROD token actions are not carried out).
fn parameter_list<'d>(cdb: &[u8], data_out: &'d [u8]) -> Result<&'d [u8], Completion> {
    let x = ExtendedCopy::parse(cdb)
        .map_err(|e| Completion::bad_field(e.at().map_or(1, |f| f.byte as u16)))?;
    let n = (x.param_len as usize).min(data_out.len());
    Ok(&data_out[..n])
}

impl Core {
    /// The LU a designator names, whoever asks: the router's own scratch
    /// disk or a backend.
    fn resolve(&self, backends: &Backends, d: &Designator) -> Option<TargetInfo> {
        let own = self
            .id
            .designators()
            .iter()
            .any(|x| x.designator_type == d.designator_type && x.value == d.value);
        if own {
            return Some(TargetInfo {
                end: End::Own,
                device_type: DeviceType::DISK,
                block_size: Some(OWN_BLOCK),
                blocks: Some(self.cfg.own_blocks),
                tape_block_len: None,
                locate: None,
            });
        }
        let i = backends.find(d)?;
        let b = &backends.units[i];
        Some(TargetInfo {
            end: End::Backend(i),
            device_type: b.info.device_type,
            block_size: b.info.block_size,
            blocks: b.info.blocks,
            tape_block_len: b.info.tape_block_len,
            locate: b.info.locate,
        })
    }

    /// Whether `nexus` may use `end` as `u`. The scratch disk is the
    /// nexus's own; a backend LU needs the copy rights.
    fn may_use(&self, backends: &Backends, nexus: &Nexus, end: End, u: Use) -> bool {
        let End::Backend(i) = end else {
            return true;
        };
        let b = &backends.units[i];
        let lu = LuIdentity {
            designators: &b.info.designators,
            target_lun: b.target_lun(),
        };
        self.cfg.rights.allows(&nexus.initiator, lu, u)
    }

    /// The scratch disk of `nexus`, made on its first use. The zeroed
    /// allocation is lazy, so a nexus that never writes costs no memory.
    fn scratch_of(&self, nexus: &Nexus) -> Scratch {
        lock(&self.scratch)
            .entry(nexus.clone())
            .or_insert_with(|| {
                let d = MemDisk::new(&self.cfg.serial, self.cfg.own_blocks, OWN_BLOCK);
                Arc::new(Mutex::new(d))
            })
            .clone()
    }

    /// Plan and carry out one parameter list for `nexus`, holding the
    /// backends throughout; `stop` ends it at the next block boundary.
    fn copy(&self, nexus: &Nexus, list: &[u8], stop: &TaskStop) -> Completion {
        let mut copier = lock(&self.copier);
        match self.plan_checked(&mut copier, nexus, list) {
            Ok(plan) => self.run_plan(&mut copier, nexus, &plan, stop),
            Err(e) => self.refuse(nexus, list, e),
        }
    }

    /// Plan, and when a designator went unresolved look for new backend
    /// LUs (at most every few seconds) and plan again. Unknown and refused
    /// designators take this same path.
    fn plan_checked(
        &self,
        copier: &mut Copier,
        nexus: &Nexus,
        list: &[u8],
    ) -> Result<Plan, PlanError> {
        let (mut planned, missed, mut refused) = self.plan_for(copier, nexus, list);
        if missed && copier.refresh_due() {
            copier.refresh();
            (planned, _, refused) = self.plan_for(copier, nexus, list);
        }
        for r in refused {
            log::warn!(
                "copy rights: initiator \"{}\" may not use {r}; refused as unknown",
                escaped(&nexus.initiator)
            );
        }
        planned
    }

    /// Plan `list` for `nexus`. An LU outside its rights resolves to
    /// nothing, exactly like an LU nobody has (resolve, then check, one
    /// answer). Also returns whether any designator went unresolved, and
    /// which were refused by the rights (for the log).
    fn plan_for(
        &self,
        copier: &Copier,
        nexus: &Nexus,
        list: &[u8],
    ) -> (Result<Plan, PlanError>, bool, Vec<String>) {
        let mut missed = false;
        let mut refused = Vec::new();
        let planned = plan::plan(list, &self.cfg.limits, |d, u| {
            let found = self.resolve(&copier.backends, d);
            let ok = found.filter(|t| self.may_use(&copier.backends, nexus, t.end, u));
            if found.is_some() && ok.is_none() {
                refused.push(format!("{d} as {u:?}"));
            }
            missed |= ok.is_none();
            ok
        });
        (planned, missed, refused)
    }

    /// The answer to a list that was not carried out; a COPY ABORTED one
    /// (a fault found while planning, SPC-4 6.4.3) is held like a failed
    /// copy.
    fn refuse(&self, nexus: &Nexus, list: &[u8], e: PlanError) -> Completion {
        let list_id = list.first().copied().unwrap_or(0);
        let usage = list.get(1).map_or(0, |b| (b >> 3) & 3);
        let who = escaped(&nexus.initiator);
        match e {
            PlanError::Refuse(r) => {
                log::info!(
                    "EXTENDED COPY list {list_id} from {who}: refused: {}",
                    r.asc
                );
                Completion::check(r.sense())
            }
            PlanError::Abort(a) => {
                log::warn!(
                    "EXTENDED COPY list {list_id} from {who}: segment {}: {}",
                    a.segment,
                    a.reason
                );
                let sense = a.sense_bytes();
                let h = Held {
                    failed: true,
                    segments: a.segment,
                    sense: Some(sense.clone()),
                    ..Held::default()
                };
                self.keep(nexus, list_id, usage, h);
                aborted(sense)
            }
        }
    }

    /// Carry out a plan within the caps and hold its results.
    fn run_plan(
        &self,
        copier: &mut Copier,
        nexus: &Nexus,
        plan: &Plan,
        stop: &TaskStop,
    ) -> Completion {
        let who = escaped(&nexus.initiator);
        log::info!(
            "EXTENDED COPY list {} from {who}: {} segment(s), {} inline byte(s)",
            plan.list_id,
            plan.steps.len(),
            plan.inline.len()
        );
        let caps = Caps {
            max_bytes: self.cfg.caps.max_bytes,
            deadline: self.cfg.caps.max_time.map(|t| Instant::now() + t),
            stop: Some(stop),
        };
        // Only this nexus's scratch disk, and only when the plan uses it.
        let uses_own = plan.targets.iter().flatten().any(|t| t.end == End::Own);
        let scratch = uses_own.then(|| self.scratch_of(nexus));
        let mut unused = MemDisk::new("", 0, OWN_BLOCK);
        let mut own_guard = scratch.as_deref().map(lock);
        let own = own_guard.as_deref_mut().unwrap_or(&mut unused);
        let (out, abort) = Exec::new(own, &mut copier.backends, plan)
            .with_caps(caps)
            .run();
        drop(own_guard);
        self.finish(nexus, plan, stop, out, abort)
    }
    /// Log how a copy ended, hold its results, and answer it.
    fn finish(
        &self,
        nexus: &Nexus,
        plan: &Plan,
        stop: &TaskStop,
        out: Outcome,
        abort: Option<Abort>,
    ) -> Completion {
        let stopped = stop.is_stopped();
        let sense = abort.as_ref().map(|a| a.sense_bytes());
        match &abort {
            Some(a) => log::warn!(
                "EXTENDED COPY list {} from {}: {} in segment {}: {}",
                plan.list_id,
                escaped(&nexus.initiator),
                if stopped { "stopped" } else { "aborted" },
                a.segment,
                a.reason
            ),
            None => log::info!(
                "EXTENDED COPY list {}: {} bytes, {} stream block CRC(s) held",
                plan.list_id,
                out.bytes,
                out.crcs.len()
            ),
        }
        let h = Held {
            failed: abort.is_some(),
            aborted: stopped,
            segments: out.segments_done,
            bytes: out.bytes,
            crcs: out.crcs,
            sense: sense.clone().filter(|_| !stopped),
        };
        self.keep(nexus, plan.list_id, plan.usage, h);
        match sense {
            Some(s) => aborted(s),
            None => Completion::good(0),
        }
    }

    /// Hold the results of a list for RECEIVE COPY RESULTS when its LIST ID
    /// USAGE is 00b; otherwise forget any older results under that ID.
    fn keep(&self, nexus: &Nexus, list_id: u8, usage: u8, h: Held) {
        if !lock(&self.held).keep(nexus, list_id, usage, h) {
            log::warn!(
                "EXTENDED COPY list {list_id} from {}: results not held (held-results bounds)",
                escaped(&nexus.initiator)
            );
        }
    }
}

impl CopyManager {
    fn operating_parameters(&self) -> OperatingParameters {
        let l = &self.core.cfg.limits;
        let mut implemented = SEGMENT_TYPES.to_vec();
        implemented.push(0xe4);
        OperatingParameters {
            available_data: 0,
            snlid: true,
            max_cscd_count: l.max_cscds,
            max_segment_count: l.max_segments,
            max_descriptor_list_len: l.max_descriptor_list,
            max_segment_len: l.max_segment_bytes,
            max_inline_data_len: l.max_inline,
            held_data_limit: l.held_data_limit,
            max_stream_transfer_size: l.max_stream_transfer,
            // One copy at a time: the LU runs a command to completion.
            total_concurrent_copies: 1,
            max_concurrent_copies: 1,
            data_segment_granularity: 0,
            inline_data_granularity: 0,
            // CRC32Cs are 4 bytes each.
            held_data_granularity: 2,
            implemented,
        }
    }

    fn receive_copy_results(&self, nexus: &Nexus, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let Ok(r) = ReceiveCopyResults::parse(cdb) else {
            return Completion::bad_field(0);
        };
        let held_results = lock(&self.core.held);
        let held = || held_results.get(nexus, r.list_id);
        let bytes = match r.action {
            RcrAction::OPERATING_PARAMETERS => self.operating_parameters().to_vec(),
            RcrAction::COPY_STATUS
            | RcrAction::RECEIVE_DATA
            | RcrAction::FAILED_SEGMENT_DETAILS => {
                // SPC-4 6.18.1: a list ID with nothing held is INVALID
                // FIELD IN CDB.
                let Some(h) = held() else {
                    return Completion::bad_field(2);
                };
                match r.action {
                    RcrAction::COPY_STATUS => {
                        let (units, count) = transfer_count(h.bytes);
                        CopyStatus {
                            hdd: false,
                            status: if h.failed {
                                CopyManagerStatus::COMPLETED_ERRORS
                            } else {
                                CopyManagerStatus::COMPLETED_GOOD
                            },
                            segments_processed: h.segments.min(0xffff) as u16,
                            units,
                            transfer_count: count,
                        }
                        .to_vec()
                    }
                    RcrAction::RECEIVE_DATA => ReceiveData::from_crcs(&h.crcs).to_vec(),
                    _ => match &h.sense {
                        Some(s) => FailedSegmentDetails::new(Status::CHECK_CONDITION, s.clone()),
                        // Stopped by a TMF: no status was sent for it.
                        None if h.aborted => {
                            FailedSegmentDetails::new(Status::TASK_ABORTED, Vec::new())
                        }
                        None => FailedSegmentDetails::none(),
                    }
                    .to_vec(),
                }
            }
            _ => return Completion::bad_field(1),
        };
        reply(clip(data_in, r.alloc_len as usize), &bytes)
    }

    fn inquiry(&mut self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let q = match Inquiry::parse(cdb) {
            Ok(q) => q,
            Err(_) => return Completion::bad_field(1),
        };
        let out = clip(data_in, q.alloc_len as usize);
        if !q.evpd {
            if q.page_code != 0 {
                return Completion::bad_field(2);
            }
            let mut std = self.core.id.standard();
            std.three_pc = true;
            // SPC-4, SBC-2 (SBC-2, not 3: the block limits page is the
            // short SBC-2 one), iSCSI.
            std.version_descriptors = vec![0x0460, 0x0320, 0x0960];
            return reply(out, &std.to_vec());
        }
        match VpdPage(q.page_code) {
            // The own disk's pages, with 8Fh added in order.
            VpdPage::SUPPORTED_PAGES => {
                let mut buf = [0u8; 255];
                let c = lock(&self.core.ident).execute(cdb, &[], &mut buf);
                let mut pages = SupportedVpdPages::parse(&buf[..c.data_in_len])
                    .map(|p| p.pages)
                    .unwrap_or_default();
                pages.push(VpdPage(0x8f));
                pages.sort();
                pages.dedup();
                let list = SupportedVpdPages {
                    device_type: DeviceType::DISK,
                    pages,
                };
                reply(out, &list.to_vec())
            }
            VpdPage(0x8f) => reply(out, &self.third_party_copy_page()),
            // Serial, identification and the block device pages: the
            // scratch disks have the same serial, so the same designators.
            _ => lock(&self.core.ident).execute(cdb, &[], out),
        }
    }

    /// VPD 8Fh with the same limits as RECEIVE COPY RESULTS 03h.
    fn third_party_copy_page(&self) -> Vec<u8> {
        let l = &self.core.cfg.limits;
        let v = ThirdPartyCopyVpd {
            max_cscd_count: Some(l.max_cscds),
            max_segment_count: Some(l.max_segments),
            max_descriptor_list_len: Some(l.max_descriptor_list),
            max_inline_data_len: Some(l.max_inline),
            total_concurrent_copies: Some(1),
            max_identified_concurrent_copies: Some(1),
            max_segment_len: Some(l.max_segment_bytes),
            data_segment_granularity: Some(0),
            descriptor_types: Vec::new(),
        };
        let mut codes = SEGMENT_TYPES.to_vec();
        codes.push(0xe4);
        v.emit_page(
            DeviceType::DISK,
            &[(0x83, &[0x00]), (0x84, &[0x00, 0x01, 0x03, 0x04])],
            &codes,
        )
    }

    fn report_supported_opcodes(&self, cdb: &[u8], data_in: &mut [u8]) -> Completion {
        let Ok(r) = ReportSupportedOpcodes::parse(cdb) else {
            return Completion::bad_field(1);
        };
        let out = clip(data_in, r.alloc_len as usize);
        let has_sa = |op: Opcode| COMMANDS.iter().any(|c| c.0 == op && c.1.is_some());
        let bytes = match r.options {
            reporting_options::ALL => {
                let all = SupportedOpcodes {
                    commands: COMMANDS
                        .iter()
                        .map(|&(opcode, service_action, cdb_len)| CommandDescriptor {
                            opcode,
                            service_action,
                            cdb_len,
                        })
                        .collect(),
                };
                if r.rctd {
                    all.emit_with_timeouts()
                } else {
                    all.to_vec()
                }
            }
            // SPC-4 6.35.1: 001b for a command with service actions, and
            // 010b for one without, are INVALID FIELD IN CDB.
            reporting_options::ONE | reporting_options::ONE_WITH_SA => {
                let with_sa = r.options == reporting_options::ONE_WITH_SA;
                let known = COMMANDS.iter().any(|c| c.0 == r.opcode);
                if known && has_sa(r.opcode) != with_sa {
                    return Completion::bad_field(2);
                }
                let found = COMMANDS
                    .iter()
                    .find(|c| c.0 == r.opcode && (!with_sa || c.1 == Some(r.service_action)));
                let one = match found {
                    Some(&(op, sa, len)) => OneCommand {
                        support: support::STANDARD,
                        cdb_usage: usage_mask(op, sa, len),
                    },
                    None => OneCommand {
                        support: support::NOT_SUPPORTED,
                        cdb_usage: Vec::new(),
                    },
                };
                let mut b = one.to_vec();
                if r.rctd {
                    b[1] |= 0x80; // CTDP
                    b.extend_from_slice(&[0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                }
                b
            }
            _ => return Completion::bad_field(2),
        };
        reply(out, &bytes)
    }
}

/// A CDB USAGE DATA mask (SPC-4 6.35.3): the opcode, the service action
/// bits where there is one, every other bit as possibly used, except byte
/// 1 of the disk READ/WRITE commands: no RDPROTECT/WRPROTECT (no
/// protection information), DPO and FUA (SBC-3 5.11-5.43), and BYTCHK for
/// WRITE AND VERIFY (which has no FUA).
fn usage_mask(op: Opcode, sa: Option<u16>, len: u16) -> Vec<u8> {
    let mut m = vec![0xff; len as usize];
    m[0] = op.0;
    if let Some(sa) = sa {
        m[1] = (sa as u8 & 0x1f) | 0xe0;
    }
    match op.0 {
        0x28 | 0xa8 | 0x88 | 0x2a | 0xaa | 0x8a => m[1] = 0x18,
        0x2e | 0xae | 0x8e => m[1] = 0x16,
        _ => {}
    }
    let last = m.len() - 1;
    m[last] = 0x07;
    m
}

/// TRANSFER COUNT and its units, bytes while they fit in 32 bits.
fn transfer_count(bytes: u64) -> (TransferCountUnits, u32) {
    let mut units = 0u8;
    let mut v = bytes;
    while v > u32::MAX as u64 {
        v >>= 10;
        units += 1;
    }
    (TransferCountUnits(units), v as u32)
}

/// The data-in buffer cut to the CDB's allocation length.
fn clip(data_in: &mut [u8], alloc: usize) -> &mut [u8] {
    let n = data_in.len().min(alloc);
    &mut data_in[..n]
}

fn aborted(sense: Vec<u8>) -> Completion {
    Completion {
        status: Status::CHECK_CONDITION,
        sense,
        data_in_len: 0,
    }
}

impl LogicalUnit for CopyManager {
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
        let Some(&op) = cdb.first() else {
            return Completion::illegal(Asc::INVALID_OPCODE);
        };
        match Opcode(op) {
            Opcode::EXTENDED_COPY => self.extended_copy(nexus, cdb, data_out),
            Opcode::RECEIVE_COPY_RESULTS => self.receive_copy_results(nexus, cdb, data_in),
            Opcode::INQUIRY => self.inquiry(cdb, data_in),
            Opcode::MAINTENANCE_IN if cdb.get(1).map(|b| b & 0x1f) == Some(0x0c) => {
                self.report_supported_opcodes(cdb, data_in)
            }
            // Answered without the scratch disk, which a copy may hold.
            Opcode::TEST_UNIT_READY => Completion::good(0),
            // The nexus's own scratch disk (a copy of this nexus into it
            // may hold it; no other nexus's copy does).
            _ => lock(&self.core.scratch_of(nexus)).execute(cdb, data_out, data_in),
        }
    }

    /// EXTENDED COPY runs in the background, outside the LU lock, and
    /// can be stopped; everything else is answered at once.
    fn background(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Option<Background> {
        if cdb.first() != Some(&Opcode::EXTENDED_COPY.0) {
            return None;
        }
        let list = parameter_list(cdb, data_out).ok()?;
        if list.is_empty() {
            return None;
        }
        let (core, nexus, list) = (self.core.clone(), nexus.clone(), list.to_vec());
        Some(Box::new(move |stop: &TaskStop| {
            core.copy(&nexus, &list, stop)
        }))
    }

    /// The nexus's scratch disk goes with its held results.
    fn nexus_lost(&mut self, nexus: &Nexus) {
        lock(&self.core.scratch).remove(nexus);
        lock(&self.core.held).nexus_lost(nexus);
    }
}

/// Backend sessions are plain data plus a boxed `Transport + Send`.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<CopyManager>();
    is_send::<Unit>();
};
