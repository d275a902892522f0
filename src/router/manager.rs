//! The copy manager logical unit: command dispatch, its small scratch
//! disk (one per I_T nexus), the copy rights, and the results it holds per
//! I_T nexus and list ID.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::lu::{reply, Completion, Identity, LogicalUnit, MemDisk, Nexus};
use crate::scsi::sense::Asc;
use crate::scsi::spc::Designator;
use crate::scsi::spc::{
    reporting_options, support, CommandDescriptor, Inquiry, OneCommand, ReportSupportedOpcodes,
    SupportedOpcodes, SupportedVpdPages, VpdPage,
};
use crate::scsi::xcopy::{
    list_id_usage, CopyManagerStatus, CopyStatus, ExtendedCopy, FailedSegmentDetails,
    OperatingParameters, RcrAction, ReceiveCopyResults, ReceiveData, ThirdPartyCopyVpd,
    TransferCountUnits,
};
use crate::scsi::{CdbCodec, DeviceType, Opcode, Status, Wire};

use super::acl::{escaped, LuIdentity, Use};
use super::backends::{Backends, Unit};
use super::exec::Exec;
use super::plan::{self, End, Plan, PlanError, TargetInfo, SEGMENT_TYPES};
use super::{CopyManagerConfig, RouterLimits};

/// Block size of the router's own disk.
const OWN_BLOCK: u32 = 512;

/// What a list ID keeps after its copy (LIST ID USAGE 00b).
#[derive(Debug, Clone, Default)]
struct Held {
    /// Position in `held_order`.
    seq: u64,
    failed: bool,
    segments: usize,
    bytes: u64,
    crcs: Vec<u32>,
    /// The COPY ABORTED sense the command ended with.
    sense: Option<Vec<u8>>,
}

/// The copy manager LU (see the module documentation of
/// [`crate::router`]).
pub struct CopyManager {
    cfg: CopyManagerConfig,
    id: Identity,
    /// Answers the identification VPD pages (no blocks of its own).
    ident: MemDisk,
    /// The scratch disk of each I_T nexus: what one nexus copies there no
    /// other can read. Dropped with the nexus.
    scratch: HashMap<Nexus, MemDisk>,
    backends: Backends,
    held: HashMap<Nexus, HashMap<u8, Held>>,
    /// Held lists, oldest first, with a sequence number so a replaced
    /// list's old entry is recognised; bounds what is held when frontends
    /// never report a lost nexus.
    held_order: VecDeque<(u64, Nexus, u8)>,
    held_seq: u64,
    last_refresh: Option<Instant>,
}

/// How often an unknown designator may send the router looking for new
/// backend LUs.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// At most this many lists are held over all nexuses, and at most
/// [`MAX_HELD_BYTES`] of CRC32Cs; the oldest go first.
const MAX_HELD_LISTS: usize = 1024;
const MAX_HELD_BYTES: usize = 64 << 20;

impl std::fmt::Debug for CopyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyManager")
            .field("serial", &self.cfg.serial)
            .field("backends", &self.backends)
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
    (Opcode(0xa8), None, 12), // READ(12)
    (Opcode(0xaa), None, 12), // WRITE(12)
    (Opcode(0x2e), None, 10), // WRITE AND VERIFY(10)
    (Opcode(0xae), None, 12), // WRITE AND VERIFY(12)
    (Opcode(0x8e), None, 16), // WRITE AND VERIFY(16)
    (Opcode::MAINTENANCE_IN, Some(0x0c), 12),
];

impl CopyManager {
    pub fn new(cfg: CopyManagerConfig, backends: Backends) -> CopyManager {
        CopyManager {
            id: Identity::new(DeviceType::DISK, "COPY MANAGER", &cfg.serial),
            ident: MemDisk::new(&cfg.serial, 0, OWN_BLOCK),
            scratch: HashMap::new(),
            cfg,
            backends,
            held: HashMap::new(),
            held_order: VecDeque::new(),
            held_seq: 0,
            last_refresh: None,
        }
    }

    pub fn limits(&self) -> &RouterLimits {
        &self.cfg.limits
    }

    /// The backends, e.g. to [`Backends::rescan`] them between commands.
    pub fn backends_mut(&mut self) -> &mut Backends {
        &mut self.backends
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The router's own 16-byte NAA designator (VPD 83h).
    pub fn naa(&self) -> [u8; 16] {
        self.id.naa
    }

    /// The CRC32Cs held for `list_id` of `nexus` (tests, logs).
    pub fn held_crcs(&self, nexus: &Nexus, list_id: u8) -> Option<&[u32]> {
        self.held
            .get(nexus)
            .and_then(|m| m.get(&list_id))
            .map(|h| h.crcs.as_slice())
    }

    /// The LU a designator names, whoever asks: the router's own scratch
    /// disk or a backend.
    fn lookup(&self, d: &Designator) -> Option<TargetInfo> {
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
        let i = self.backends.find(d)?;
        let b = &self.backends.units[i];
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
    fn may_use(&self, nexus: &Nexus, end: End, u: Use) -> bool {
        let End::Backend(i) = end else {
            return true;
        };
        let b = &self.backends.units[i];
        let lu = LuIdentity {
            designators: &b.info.designators,
            target_lun: b.target_lun(),
        };
        self.cfg.rights.allows(&nexus.initiator, lu, u)
    }

    /// Plan `list` for `nexus`. An LU outside its rights resolves to
    /// nothing, exactly like an LU nobody has (resolve, then check, one
    /// answer). Also returns whether any designator went unresolved, and
    /// which were refused by the rights (for the log).
    fn plan_for(&self, nexus: &Nexus, list: &[u8]) -> (Result<Plan, PlanError>, bool, Vec<String>) {
        let mut missed = false;
        let mut refused = Vec::new();
        let planned = plan::plan(list, &self.cfg.limits, |d, u| {
            let found = self.lookup(d);
            let ok = found.filter(|t| self.may_use(nexus, t.end, u));
            if found.is_some() && ok.is_none() {
                refused.push(format!("{d} as {u:?}"));
            }
            missed |= ok.is_none();
            ok
        });
        (planned, missed, refused)
    }

    /// Plan, and when a designator went unresolved look for new backend
    /// LUs (at most every few seconds) and plan again. Unknown and refused
    /// designators take this same path.
    fn plan_checked(&mut self, nexus: &Nexus, list: &[u8]) -> Result<Plan, PlanError> {
        let (mut planned, missed, mut refused) = self.plan_for(nexus, list);
        if missed && self.refresh_due() {
            self.refresh();
            (planned, _, refused) = self.plan_for(nexus, list);
        }
        for r in refused {
            log::warn!(
                "copy rights: initiator \"{}\" may not use {r}; refused as unknown",
                escaped(&nexus.initiator)
            );
        }
        planned
    }

    fn extended_copy(&mut self, nexus: &Nexus, cdb: &[u8], data_out: &[u8]) -> Completion {
        let x = match ExtendedCopy::parse(cdb) {
            Ok(x) => x,
            // LID4 and the ROD token actions are not carried out.
            Err(e) => return Completion::bad_field(e.at().map_or(1, |f| f.byte as u16)),
        };
        // SPC-4 6.4.1: a PARAMETER LIST LENGTH of 0 is not an error.
        if x.param_len == 0 {
            return Completion::good(0);
        }
        let n = (x.param_len as usize).min(data_out.len());
        let list = &data_out[..n];
        let plan = match self.plan_checked(nexus, list) {
            Ok(p) => p,
            Err(e) => return self.refuse(nexus, list, e),
        };
        log::info!(
            "EXTENDED COPY list {} from {}: {} segment(s), {} inline byte(s)",
            plan.list_id,
            escaped(&nexus.initiator),
            plan.steps.len(),
            plan.inline.len()
        );
        self.run_plan(nexus, &plan)
    }

    /// The answer to a list that was not carried out; a COPY ABORTED one
    /// is held like a failed copy.
    fn refuse(&mut self, nexus: &Nexus, list: &[u8], e: PlanError) -> Completion {
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
                let held = Held {
                    failed: true,
                    segments: a.segment,
                    sense: Some(sense.clone()),
                    ..Held::default()
                };
                self.keep(nexus, list_id, usage, held);
                aborted(sense)
            }
        }
    }

    fn run_plan(&mut self, nexus: &Nexus, plan: &Plan) -> Completion {
        let own = scratch_of(&mut self.scratch, &self.cfg, nexus);
        let (out, abort) = Exec::new(own, &mut self.backends, plan).run();
        let sense = abort.as_ref().map(|a| a.sense_bytes());
        match &abort {
            Some(a) => log::warn!(
                "EXTENDED COPY list {}: aborted in segment {}: {}",
                plan.list_id,
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
        let held = Held {
            seq: 0,
            failed: abort.is_some(),
            segments: out.segments_done,
            bytes: out.bytes,
            crcs: out.crcs,
            sense: sense.clone(),
        };
        self.keep(nexus, plan.list_id, plan.usage, held);
        match sense {
            Some(s) => aborted(s),
            None => Completion::good(0),
        }
    }

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

    /// Hold the results of a list for RECEIVE COPY RESULTS when its LIST ID
    /// USAGE is 00b; otherwise forget any older results under that ID.
    fn keep(&mut self, nexus: &Nexus, list_id: u8, usage: u8, mut h: Held) {
        let m = self.held.entry(nexus.clone()).or_default();
        if usage != list_id_usage::HOLD {
            m.remove(&list_id);
            return;
        }
        self.held_seq += 1;
        h.seq = self.held_seq;
        m.insert(list_id, h);
        self.held_order
            .push_back((self.held_seq, nexus.clone(), list_id));
        if self.held_order.len() > 2 * MAX_HELD_LISTS {
            // Drop the entries of lists replaced since.
            let held = &self.held;
            self.held_order.retain(|(seq, n, id)| {
                held.get(n)
                    .and_then(|m| m.get(id))
                    .is_some_and(|h| h.seq == *seq)
            });
        }
        // Evict the oldest lists beyond the bounds.
        loop {
            let lists: usize = self.held.values().map(|m| m.len()).sum();
            let bytes: usize = self
                .held
                .values()
                .flat_map(|m| m.values())
                .map(|h| 4 * h.crcs.len())
                .sum();
            if lists <= MAX_HELD_LISTS && bytes <= MAX_HELD_BYTES {
                break;
            }
            let Some((seq, n, id)) = self.held_order.pop_front() else {
                break;
            };
            if let Some(m) = self.held.get_mut(&n) {
                if m.get(&id).is_some_and(|h| h.seq == seq) {
                    m.remove(&id);
                }
                if m.is_empty() {
                    self.held.remove(&n);
                }
            }
        }
    }

    fn operating_parameters(&self) -> OperatingParameters {
        let l = &self.cfg.limits;
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
        let held = || self.held.get(nexus).and_then(|m| m.get(&r.list_id));
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
            let mut std = self.id.standard();
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
                let c = self.ident.execute(cdb, &[], &mut buf);
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
            // Serial, identification and the block device pages: the own
            // disk has the same serial, so the same designators.
            _ => self.ident.execute(cdb, &[], out),
        }
    }

    /// VPD 8Fh with the same limits as RECEIVE COPY RESULTS 03h.
    fn third_party_copy_page(&self) -> Vec<u8> {
        let l = &self.cfg.limits;
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
/// bits where there is one, every other bit as possibly used.
fn usage_mask(op: Opcode, sa: Option<u16>, len: u16) -> Vec<u8> {
    let mut m = vec![0xff; len as usize];
    m[0] = op.0;
    if let Some(sa) = sa {
        m[1] = (sa as u8 & 0x1f) | 0xe0;
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

/// The scratch disk of `nexus`, made on its first use. The zeroed
/// allocation is lazy, so a nexus that never writes costs no memory.
fn scratch_of<'a>(
    scratch: &'a mut HashMap<Nexus, MemDisk>,
    cfg: &CopyManagerConfig,
    nexus: &Nexus,
) -> &'a mut MemDisk {
    scratch
        .entry(nexus.clone())
        .or_insert_with(|| MemDisk::new(&cfg.serial, cfg.own_blocks, OWN_BLOCK))
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
            _ => scratch_of(&mut self.scratch, &self.cfg, nexus).execute(cdb, data_out, data_in),
        }
    }

    fn nexus_lost(&mut self, nexus: &Nexus) {
        self.scratch.remove(nexus);
        self.held.remove(nexus);
        self.held_order.retain(|(_, n, _)| n != nexus);
    }
}

/// Backend sessions are plain data plus a boxed `Transport + Send`.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<CopyManager>();
    is_send::<Unit>();
};
