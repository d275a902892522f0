//! Re-running commands that failed for a passing reason.
//!
//! Only two conditions are retried: UNIT ATTENTION (SAM-5 5.14: the device
//! reports an event such as a reset or a parameter change once per I_T
//! nexus, and the command was not executed), and BUSY status (SAM-5 5.3.1:
//! the logical unit could not accept the command now). Anything else —
//! NOT READY, RESERVATION CONFLICT, TASK SET FULL, medium errors — is the
//! caller's to judge, because retrying it blindly can be wrong (a tape
//! command that moved the medium must not be re-sent).

use std::time::Duration;

use crate::scsi::sense::{Sense, SenseKey};
use crate::scsi::Status;

use super::{Direction, Request, Response, Transport, TransportError};

/// How often and how patiently to retry UNIT ATTENTION and BUSY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 never retries.
    pub max_retries: u32,
    /// Pause before each retry.
    pub delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            delay: Duration::from_millis(100),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        delay: Duration::ZERO,
    };

    /// Whether `resp` should be re-sent, `attempt` retries having been made
    /// already (0 after the first response).
    pub fn should_retry(&self, resp: &Response, attempt: u32) -> bool {
        if attempt >= self.max_retries {
            return false;
        }
        match resp.status {
            Status::BUSY => true,
            Status::CHECK_CONDITION => Sense::parse(&resp.sense)
                .map(|s| s.key == SenseKey::UNIT_ATTENTION)
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Run `req` to completion on `t`, re-submitting it while
    /// [`should_retry`](Self::should_retry) says so, and return the last
    /// response. Data-out requests are re-sent from the buffer the
    /// transport hands back; data-in requests get their buffer back at the
    /// original allocation length. Only BUSY waits `delay` first. Transport errors end it at once.
    pub fn execute<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        req: Request,
    ) -> Result<Response, TransportError> {
        let mut req = req;
        let mut attempt = 0;
        loop {
            let (tag, cdb, dir, timeout, len, span) = (
                req.tag,
                req.cdb,
                req.dir,
                req.timeout,
                req.buf.len(),
                req.span.clone(),
            );
            let resp = t.execute(req)?;
            if !self.should_retry(&resp, attempt) {
                return Ok(resp);
            }
            attempt += 1;
            log::debug!(
                "{}: {} ended with {}{}; retry {}/{}",
                t.describe(),
                cdb,
                resp.status,
                Sense::parse(&resp.sense)
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default(),
                attempt,
                self.max_retries
            );
            // Every transport hands the request buffer back, data-out
            // unchanged, so a retry resends it without keeping a copy (a
            // tape write of 1 MiB would otherwise be copied every time).
            let busy = resp.status == Status::BUSY;
            let mut buf = resp.buf;
            if dir == Direction::In {
                buf.resize(len, 0);
            }
            req = Request {
                tag,
                cdb,
                dir,
                buf,
                span,
                timeout,
            };
            // A UNIT ATTENTION is reported once and cleared: resend at once.
            if busy && !self.delay.is_zero() {
                std::thread::sleep(self.delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::scsi::sense::Asc;
    use crate::scsi::Cdb;
    use crate::transport::Residual;

    /// What the fake answers to one command.
    enum Outcome {
        Status(Status, Vec<u8>),
        Fail,
    }

    fn good() -> Outcome {
        Outcome::Status(Status::GOOD, Vec::new())
    }

    fn busy() -> Outcome {
        Outcome::Status(Status::BUSY, Vec::new())
    }

    fn check(key: SenseKey, asc: Asc) -> Outcome {
        Outcome::Status(Status::CHECK_CONDITION, Sense::new(key, asc).to_fixed())
    }

    fn ua() -> Outcome {
        check(SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    }

    /// Answers from a script, records what it was sent, and hands back
    /// data-out buffers zeroed (so a retry that reused them would show).
    struct Fake {
        script: VecDeque<Outcome>,
        sent: Vec<(Cdb, Direction, Vec<u8>, u64)>,
        pending: Option<Request>,
    }

    impl Fake {
        fn new(script: Vec<Outcome>) -> Fake {
            Fake {
                script: script.into(),
                sent: Vec::new(),
                pending: None,
            }
        }
    }

    impl Transport for Fake {
        fn submit(&mut self, req: Request) -> Result<(), TransportError> {
            self.sent.push((req.cdb, req.dir, req.buf.clone(), req.tag));
            self.pending = Some(req);
            Ok(())
        }

        fn complete(&mut self) -> Result<Response, TransportError> {
            let req = self
                .pending
                .take()
                .ok_or_else(|| TransportError::SessionLost("nothing queued".into()))?;
            let outcome = self
                .script
                .pop_front()
                .ok_or_else(|| TransportError::SessionLost("script ended".into()))?;
            let (status, sense) = match outcome {
                Outcome::Status(s, sense) => (s, sense),
                Outcome::Fail => return Err(TransportError::SessionLost("dropped".into())),
            };
            // Like every transport: data-out comes back unchanged, data-in
            // holds what arrived.
            let mut buf = req.buf;
            if req.dir == Direction::In {
                let fill = if status == Status::GOOD { 0xab } else { 0 };
                buf.iter_mut().for_each(|b| *b = fill);
            }
            Ok(Response {
                tag: req.tag,
                cdb: req.cdb,
                status,
                sense,
                residual: Residual::None,
                buf,
                span: req.span,
                dir: req.dir,
            })
        }

        fn in_flight(&self) -> usize {
            self.pending.is_some() as usize
        }

        fn describe(&self) -> String {
            "fake".into()
        }
    }

    fn quick(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            delay: Duration::ZERO,
        }
    }

    fn tur() -> Request {
        Request::none(Cdb::new(&[0, 0, 0, 0, 0, 0]).unwrap())
    }

    #[test]
    fn default_is_five_times_100ms() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_retries, 5);
        assert_eq!(p.delay, Duration::from_millis(100));
    }

    #[test]
    fn unit_attention_then_good() {
        let mut t = Fake::new(vec![ua(), good()]);
        let resp = quick(3).execute(&mut t, tur().with_tag(7)).unwrap();
        assert!(resp.is_good());
        assert_eq!(resp.tag, 7);
        assert_eq!(t.sent.len(), 2);
        assert!(t.sent.iter().all(|s| s.3 == 7 && s.0 == tur().cdb));
    }

    #[test]
    fn busy_then_good() {
        let mut t = Fake::new(vec![busy(), busy(), good()]);
        let resp = quick(5).execute(&mut t, tur()).unwrap();
        assert!(resp.is_good());
        assert_eq!(t.sent.len(), 3);
    }

    #[test]
    fn bounded_and_returns_the_last_response() {
        let mut t = Fake::new((0..10).map(|_| ua()).collect());
        let resp = quick(3).execute(&mut t, tur()).unwrap();
        assert_eq!(resp.status, Status::CHECK_CONDITION);
        assert_eq!(
            Sense::parse(&resp.sense).unwrap().key,
            SenseKey::UNIT_ATTENTION
        );
        assert_eq!(t.sent.len(), 4, "first attempt + 3 retries");

        let mut t = Fake::new(vec![busy(), good()]);
        let resp = RetryPolicy::NONE.execute(&mut t, tur()).unwrap();
        assert_eq!(resp.status, Status::BUSY);
        assert_eq!(t.sent.len(), 1);
    }

    #[test]
    fn nothing_else_is_retried() {
        let others = [
            check(SenseKey::NOT_READY, Asc::NOT_READY_BECOMING_READY),
            check(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB),
            check(SenseKey::MEDIUM_ERROR, Asc::UNRECOVERED_READ_ERROR),
            check(SenseKey::ABORTED_COMMAND, Asc::NO_ADDITIONAL),
            check(SenseKey::NO_SENSE, Asc::FILEMARK_DETECTED),
            Outcome::Status(Status::RESERVATION_CONFLICT, Vec::new()),
            Outcome::Status(Status::TASK_SET_FULL, Vec::new()),
            Outcome::Status(Status::TASK_ABORTED, Vec::new()),
            // CHECK CONDITION without (decodable) sense.
            Outcome::Status(Status::CHECK_CONDITION, Vec::new()),
            Outcome::Status(Status::CHECK_CONDITION, vec![0x7f, 0, 6, 0]),
        ];
        for o in others {
            let mut t = Fake::new(vec![o, good()]);
            let resp = quick(5).execute(&mut t, tur()).unwrap();
            assert!(!resp.is_good());
            assert_eq!(t.sent.len(), 1, "{:?}", resp.status);
        }
    }

    #[test]
    fn should_retry_counts_attempts() {
        let p = quick(2);
        let mut t = Fake::new(vec![ua()]);
        t.submit(tur()).unwrap();
        let resp = t.complete().unwrap();
        assert!(p.should_retry(&resp, 0));
        assert!(p.should_retry(&resp, 1));
        assert!(!p.should_retry(&resp, 2));
        // Descriptor-format UNIT ATTENTION counts too.
        let mut resp = resp;
        resp.sense =
            Sense::new(SenseKey::UNIT_ATTENTION, Asc::MODE_PARAMETERS_CHANGED).to_descriptor();
        assert!(p.should_retry(&resp, 0));
    }

    #[test]
    fn data_out_is_resent_with_its_data() {
        let data: Vec<u8> = (0..=255).collect();
        let cdb = Cdb::new(&[0x0a, 0, 0, 1, 0, 0]).unwrap();
        let mut t = Fake::new(vec![busy(), ua(), good()]);
        let resp = quick(5)
            .execute(&mut t, Request::data_out(cdb, data.clone()))
            .unwrap();
        assert!(resp.is_good());
        assert_eq!(t.sent.len(), 3);
        for (c, dir, buf, _) in &t.sent {
            assert_eq!((*c, *dir), (cdb, Direction::Out));
            assert_eq!(buf, &data);
        }
    }

    #[test]
    fn data_in_keeps_its_allocation_length() {
        let cdb = Cdb::new(&[0x12, 0, 0, 0, 0x24, 0]).unwrap();
        let mut t = Fake::new(vec![ua(), good()]);
        let resp = quick(5).execute(&mut t, Request::data_in(cdb, 36)).unwrap();
        assert!(resp.is_good());
        assert_eq!(resp.buf, vec![0xab; 36]);
        assert_eq!(t.sent.len(), 2);
        assert!(t
            .sent
            .iter()
            .all(|s| s.1 == Direction::In && s.2.len() == 36));
    }

    #[test]
    fn transport_errors_are_not_retried() {
        let mut t = Fake::new(vec![ua(), Outcome::Fail, good()]);
        let err = quick(5).execute(&mut t, tur()).unwrap_err();
        assert!(matches!(err, TransportError::SessionLost(_)));
        assert_eq!(t.sent.len(), 2);
    }

    #[test]
    fn works_through_a_trait_object() {
        let mut t: Box<dyn Transport> = Box::new(Fake::new(vec![busy(), good()]));
        let resp = quick(1).execute(t.as_mut(), tur()).unwrap();
        assert!(resp.is_good());
    }
}
