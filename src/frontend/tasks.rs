//! Background tasks and task management (RFC 7143 11.5, SAM-5 7).
//!
//! A command a unit runs in the background (a long EXTENDED COPY) gets a
//! thread and a [`TaskStop`]; its status is sent by the connection when it
//! ends. ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET
//! and the target resets stop the tasks they name, also other sessions'
//! (through the server's task registry), and answer once their own tasks
//! have stopped. A task aborted by its own I_T nexus ends without status
//! (SAM-5 7.2); one aborted by another nexus ends with TASK ABORTED, as
//! with TAS=1 in the Control mode page.

use std::io::{self, Write};
use std::sync::mpsc::RecvTimeoutError;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::pdu::{Header, TaskMgmtRequest, TaskMgmtResponse, TmfFunction, TmfResponse};
use super::server::{lock, AbortedBy, TaskEntry};
use super::session::{sn_lt, Connection};
use crate::lu::{Background, Completion, TaskStop};
use crate::scsi::sense::{Asc, Sense, SenseKey};
use crate::scsi::Status;

/// Background tasks one connection may have at once; more get TASK SET
/// FULL.
const MAX_BACKGROUND: usize = 4;

/// How long a TMF waits for other sessions' tasks to stop.
const OTHERS_WAIT: Duration = Duration::from_secs(30);

/// INTERNAL TARGET FAILURE (SPC-4 Annex D), for a task whose unit panicked.
const INTERNAL_TARGET_FAILURE: Asc = Asc(0x4400);

/// A background task of this connection.
pub(crate) struct Running {
    lun: u64,
    edtl: u32,
    residual: Option<(bool, u32)>,
    handle: JoinHandle<()>,
}

impl Connection<'_> {
    /// Run `job` on a thread of its own; its status is sent when it ends.
    pub(crate) fn start_background(
        &mut self,
        lun: u64,
        itt: u32,
        edtl: u32,
        residual: Option<(bool, u32)>,
        job: Background,
    ) -> io::Result<()> {
        if self.running.contains_key(&itt) {
            return Err(super::session::protocol("ITT already in use"));
        }
        if self.running.len() >= MAX_BACKGROUND {
            return self.respond_status(itt, Status::TASK_SET_FULL);
        }
        let stop = TaskStop::default();
        let entry = TaskEntry {
            target: self.target.unwrap_or(usize::MAX),
            lun,
            stop: stop.clone(),
            aborted: None,
        };
        lock(&self.shared.tasks).insert((self.id, itt), entry);
        let tx = self.done_tx.clone();
        let wake = self.wake_tx.try_clone()?;
        let spawned = std::thread::Builder::new()
            .name(format!("iscsi-task-{}-{itt:x}", self.id))
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| job(&stop));
                let c = std::panic::catch_unwind(run).unwrap_or_else(|_| {
                    Completion::check(Sense::new(
                        SenseKey::HARDWARE_ERROR,
                        INTERNAL_TARGET_FAILURE,
                    ))
                });
                let _ = tx.send((itt, c));
                let _ = (&wake).write_all(&[1]);
            });
        match spawned {
            Ok(handle) => {
                let r = Running {
                    lun,
                    edtl,
                    residual,
                    handle,
                };
                self.running.insert(itt, r);
                Ok(())
            }
            Err(e) => {
                log::warn!("iSCSI {}: no thread for a task: {e}", self.who());
                lock(&self.shared.tasks).remove(&(self.id, itt));
                self.respond_status(itt, Status::BUSY)
            }
        }
    }

    /// Send the status of every background task that has ended.
    pub(crate) fn finish_tasks(&mut self) -> io::Result<()> {
        while let Ok((itt, c)) = self.done_rx.try_recv() {
            self.finish(itt, c)?;
        }
        Ok(())
    }

    fn finish(&mut self, itt: u32, c: Completion) -> io::Result<()> {
        let Some(r) = self.running.remove(&itt) else {
            return Ok(());
        };
        let _ = r.handle.join();
        let entry = lock(&self.shared.tasks).remove(&(self.id, itt));
        match entry.and_then(|e| e.aborted) {
            None => self.complete(r.lun, itt, r.edtl, c, &[], r.residual),
            Some(AbortedBy::Own) => {
                log::info!("iSCSI {}: task {itt:#x} aborted", self.who());
                Ok(())
            }
            Some(AbortedBy::Other) => {
                log::info!(
                    "iSCSI {}: task {itt:#x} aborted by another initiator",
                    self.who()
                );
                self.respond_status(itt, Status::TASK_ABORTED)
            }
        }
    }

    /// Wait until background task `itt` has ended (finishing any other
    /// that ends meanwhile).
    fn wait_task(&mut self, itt: u32) -> io::Result<()> {
        let begun = Instant::now();
        while self.running.contains_key(&itt) {
            match self.done_rx.recv_timeout(Duration::from_secs(10)) {
                Ok((i, c)) => self.finish(i, c)?,
                Err(RecvTimeoutError::Timeout) => log::warn!(
                    "iSCSI {}: task {itt:#x} still stopping after {}s",
                    self.who(),
                    begun.elapsed().as_secs()
                ),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }

    /// Stop the background tasks `pick` chooses among every session's:
    /// this session's end without status, others' with TASK ABORTED.
    /// Returns once they have stopped (others' within a bound).
    fn abort_tasks(&mut self, pick: impl Fn(u64, &TaskEntry) -> bool) -> io::Result<usize> {
        let (mut mine, mut others) = (Vec::new(), Vec::new());
        for (&(conn, itt), e) in lock(&self.shared.tasks).iter_mut() {
            if !pick(conn, e) {
                continue;
            }
            let by = if conn == self.id {
                mine.push(itt);
                AbortedBy::Own
            } else {
                others.push((conn, itt));
                AbortedBy::Other
            };
            e.aborted.get_or_insert(by);
            e.stop.stop();
        }
        for itt in &mine {
            self.wait_task(*itt)?;
        }
        let end = Instant::now() + OTHERS_WAIT;
        while Instant::now() < end {
            let tasks = lock(&self.shared.tasks);
            if !others.iter().any(|k| tasks.contains_key(k)) {
                break;
            }
            drop(tasks);
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(mine.len() + others.len())
    }

    /// The session ends: stop every task of it and wait for them; no
    /// status is sent.
    pub(crate) fn stop_all_tasks(&mut self) {
        {
            let mut tasks = lock(&self.shared.tasks);
            for itt in self.running.keys() {
                if let Some(e) = tasks.get_mut(&(self.id, *itt)) {
                    e.aborted.get_or_insert(AbortedBy::Own);
                    e.stop.stop();
                }
            }
        }
        for (itt, r) in std::mem::take(&mut self.running) {
            let _ = r.handle.join();
            lock(&self.shared.tasks).remove(&(self.id, itt));
        }
        while self.done_rx.try_recv().is_ok() {}
    }

    pub(crate) fn task_mgmt(&mut self, h: TaskMgmtRequest) -> io::Result<()> {
        if !self.take_cmd_sn(h.immediate, h.cmd_sn) {
            return Ok(());
        }
        let target = self.target.unwrap_or(usize::MAX);
        let (me, lun) = (self.id, h.lun);
        let response = match h.function {
            TmfFunction::ABORT_TASK => self.abort_task(&h)?,
            TmfFunction::ABORT_TASK_SET
            | TmfFunction::CLEAR_TASK_SET
            | TmfFunction::LOGICAL_UNIT_RESET => {
                if self.lu(lun).is_none() {
                    TmfResponse::LUN_DOES_NOT_EXIST
                } else {
                    self.drop_writes(|t| t.lun == lun);
                    // ABORT TASK SET is this nexus's tasks only; the other
                    // two reach every nexus's (SAM-5 7.3, 7.4, 7.7).
                    let all = h.function != TmfFunction::ABORT_TASK_SET;
                    self.abort_tasks(|c, e| {
                        (all || c == me) && e.target == target && e.lun == lun
                    })?;
                    if h.function == TmfFunction::LOGICAL_UNIT_RESET {
                        self.reset_units(Some(lun));
                    }
                    TmfResponse::FUNCTION_COMPLETE
                }
            }
            TmfFunction::TARGET_WARM_RESET | TmfFunction::TARGET_COLD_RESET => {
                self.drop_writes(|_| true);
                self.abort_tasks(|_, e| e.target == target)?;
                self.reset_units(None);
                TmfResponse::FUNCTION_COMPLETE
            }
            TmfFunction::TASK_REASSIGN => TmfResponse::REASSIGNMENT_NOT_SUPPORTED,
            _ => TmfResponse::NOT_SUPPORTED,
        };
        log::info!(
            "iSCSI {}: {} (ITT {:#x}): {}",
            self.who(),
            h.function,
            h.rtt,
            response
        );
        let resp = Header::TaskMgmtResponse(TaskMgmtResponse {
            response,
            itt: h.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        });
        self.send(resp, &[])?;
        if h.function == TmfFunction::TARGET_COLD_RESET {
            // 11.5.1: a cold reset also drops the connection.
            self.writer.flush()?;
            return Err(super::session::protocol("TARGET COLD RESET"));
        }
        Ok(())
    }

    /// Tell the unit at `lun` (every unit of the target when None) that
    /// it was reset (SAM-5 6.3.2).
    fn reset_units(&self, lun: Option<u64>) {
        let Some(t) = self.target.and_then(|i| self.shared.targets.get(i)) else {
            return;
        };
        let index = lun.and_then(|l| crate::scsi::spc::Lun(l).index().map(|i| i as u64));
        for (l, lu) in &t.luns {
            if lun.is_none() || index == Some(*l) {
                lock(lu).reset();
            }
        }
    }

    /// ABORT TASK (11.5.1): a write waiting for data, or a background task
    /// (stopped at its next block boundary and waited for).
    fn abort_task(&mut self, h: &TaskMgmtRequest) -> io::Result<TmfResponse> {
        if self.drop_write(h.rtt) {
            return Ok(TmfResponse::FUNCTION_COMPLETE);
        }
        if self.running.contains_key(&h.rtt) {
            self.abort_one(h.rtt)?;
            return Ok(TmfResponse::FUNCTION_COMPLETE);
        }
        if !sn_lt(h.ref_cmd_sn, self.exp_cmd_sn)
            && !sn_lt(self.max_cmd_sn(), h.ref_cmd_sn)
            && sn_lt(h.ref_cmd_sn, h.cmd_sn)
        {
            // 11.5.1 b): not received yet but within the window and before
            // this request: taken as received and aborted.
            return Ok(TmfResponse::FUNCTION_COMPLETE);
        }
        Ok(TmfResponse::TASK_DOES_NOT_EXIST)
    }

    /// Stop this session's background task `itt` and wait for it.
    fn abort_one(&mut self, itt: u32) -> io::Result<()> {
        if let Some(e) = lock(&self.shared.tasks).get_mut(&(self.id, itt)) {
            e.aborted.get_or_insert(AbortedBy::Own);
            e.stop.stop();
        }
        self.wait_task(itt)
    }
}
