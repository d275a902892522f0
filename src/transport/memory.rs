//! A [`Transport`] over any in-process [`LogicalUnit`] (`crate::lu`), for
//! unit tests of the device layer and the engines, with fault injection: a
//! unit can stop answering after N commands (a target dying mid-copy).

use std::collections::VecDeque;

use super::{Direction, Request, Residual, Response, Transport, TransportError};

use crate::lu::LogicalUnit;

/// A [`Transport`] over any [`LogicalUnit`], with fault injection. Runs each
/// command at submit time; completions come back in submission order.
pub struct MemoryTransport<L: LogicalUnit> {
    pub lu: L,
    name: String,
    done: VecDeque<Response>,
    /// After this many more commands, every command fails with a lost
    /// session (the target died).
    pub die_after: Option<u64>,
    pub depth: usize,
    /// Commands executed.
    pub commands: u64,
}

impl<L: LogicalUnit> MemoryTransport<L> {
    pub fn new(name: &str, lu: L) -> Self {
        MemoryTransport {
            lu,
            name: name.to_string(),
            done: VecDeque::new(),
            die_after: None,
            depth: 8,
            commands: 0,
        }
    }
}

impl<L: LogicalUnit> Transport for MemoryTransport<L> {
    fn submit(&mut self, req: Request) -> Result<(), TransportError> {
        if self.die_after == Some(0) {
            return Err(TransportError::SessionLost(format!(
                "{}: target stopped answering (injected)",
                self.name
            )));
        }
        if let Some(n) = self.die_after.as_mut() {
            *n -= 1;
        }
        self.commands += 1;
        req.check_span()?;
        let mut buf = req.buf;
        let span = req.span;
        let data = &mut buf[span.clone()];
        let c = match req.dir {
            Direction::In => self.lu.execute(req.cdb.as_bytes(), &[], data),
            Direction::Out => self.lu.execute(req.cdb.as_bytes(), data, &mut []),
            Direction::None => self.lu.execute(req.cdb.as_bytes(), &[], &mut []),
        };
        let residual = if req.dir == Direction::In && c.data_in_len < span.len() {
            Residual::Underflow((span.len() - c.data_in_len) as u64)
        } else {
            Residual::None
        };
        self.done.push_back(Response {
            tag: req.tag,
            cdb: req.cdb,
            status: c.status,
            sense: c.sense,
            residual,
            buf,
            span,
            dir: req.dir,
        });
        Ok(())
    }

    fn complete(&mut self) -> Result<Response, TransportError> {
        self.done.pop_front().ok_or_else(|| {
            TransportError::SessionLost(format!("{}: complete() with nothing in flight", self.name))
        })
    }

    fn queue_depth(&self) -> usize {
        self.depth
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl<L: LogicalUnit> std::fmt::Debug for MemoryTransport<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("name", &self.name)
            .field("in_flight", &self.done.len())
            .field("commands", &self.commands)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lu::MemDisk;

    #[test]
    fn a_span_confines_the_data_phase_to_its_bytes() {
        use crate::scsi::sbc::{Read16, Write16};
        use crate::scsi::{CdbCodec, Lba};
        let mut lu = MemDisk::new("D", 8, 512);
        lu.data_mut()[..512].fill(0x5A);
        let mut t = MemoryTransport::new("d", lu);
        // Data-in lands in buf[16..528]; the bytes around it are untouched.
        let req = Request::data_in_buf(Read16::new(Lba(0), 1).to_cdb(), vec![0xEE; 600])
            .with_span(16..528);
        let r = t.execute(req).unwrap();
        assert!(r.is_good());
        assert_eq!(r.span, 16..528);
        assert_eq!(r.transferred(), 512);
        assert!(r.buf[..16].iter().all(|&b| b == 0xEE));
        assert!(r.buf[16..528].iter().all(|&b| b == 0x5A));
        assert!(r.buf[528..].iter().all(|&b| b == 0xEE));
        // Data-out sends buf[span] only.
        let mut out = vec![0xEE; 16];
        out.extend([0x33; 512]);
        out.extend([0xEE; 7]);
        let req = Request::data_out(Write16::new(Lba(1), 1).to_cdb(), out).with_span(16..528);
        assert!(t.execute(req).unwrap().is_good());
        assert!(t.lu.data()[512..1024].iter().all(|&b| b == 0x33));
        // A span outside the buffer is refused before anything moves.
        let req =
            Request::data_in_buf(Read16::new(Lba(0), 1).to_cdb(), vec![0; 100]).with_span(0..512);
        assert!(matches!(
            t.execute(req),
            Err(TransportError::Rejected { .. })
        ));
    }
}
