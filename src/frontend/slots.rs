//! Connection slots: who may have a thread, and who gives theirs up.
//!
//! - At most `max_connections` connections, and `max_per_source` from one
//!   address; beyond those a new connection is closed at once.
//! - Connections still logging in may hold at most `max_connections -
//!   reserved` slots. When a new one would pass that, the oldest pending
//!   login of the address with the most pending logins is closed: a flood
//!   of idle sockets evicts itself, and an initiator that logs in (the
//!   backup server) gets a slot and keeps it.
//! - A login has a deadline for the whole of it; [`Slots::expire`] closes
//!   those past it (a trickle of bytes does not keep a socket alive).

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::ConnLimits;

/// What a slot can do to its connection: close it.
pub(crate) trait Closable {
    fn close(&self);
}

impl Closable for TcpStream {
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

struct Slot<S> {
    peer: IpAddr,
    stream: S,
    since: Instant,
    /// The login is over: the slot is the session's.
    admitted: bool,
    /// Closed by us; the thread has not ended yet.
    closing: bool,
}

pub(crate) struct Slots<S> {
    map: HashMap<u64, Slot<S>>,
    max: usize,
    per_source: usize,
    pending_max: usize,
    login_timeout: Duration,
}

impl<S: Closable> Slots<S> {
    pub fn new(l: &ConnLimits) -> Slots<S> {
        Slots {
            map: HashMap::new(),
            max: l.max_connections,
            per_source: l.max_per_source,
            pending_max: l.max_connections.saturating_sub(l.reserved).max(1),
            login_timeout: l.login_timeout,
        }
    }

    /// Take a slot for connection `id` from `peer`; returns the
    /// connection closed to make room, or why there is none.
    pub fn accept(
        &mut self,
        id: u64,
        peer: IpAddr,
        stream: S,
        now: Instant,
    ) -> Result<Option<(u64, IpAddr)>, String> {
        let live = || self.map.values().filter(|s| !s.closing);
        let from_peer = live().filter(|s| s.peer == peer).count();
        if from_peer >= self.per_source {
            return Err(format!("{from_peer} connections from {peer} already"));
        }
        let total = live().count();
        let pending = live().filter(|s| !s.admitted).count();
        let mut evicted = None;
        if total >= self.max || pending >= self.pending_max {
            let Some(v) = self.victim() else {
                return Err(format!("all {} slots are in use by sessions", self.max));
            };
            let s = self.map.get_mut(&v).expect("victim present");
            s.closing = true;
            s.stream.close();
            evicted = Some((v, s.peer));
        }
        self.map.insert(
            id,
            Slot {
                peer,
                stream,
                since: now,
                admitted: false,
                closing: false,
            },
        );
        Ok(evicted)
    }

    /// The pending login to close: the oldest of the address with the
    /// most pending logins.
    fn victim(&self) -> Option<u64> {
        let pending: Vec<(&u64, &Slot<S>)> = self
            .map
            .iter()
            .filter(|(_, s)| !s.closing && !s.admitted)
            .collect();
        let count = |peer: IpAddr| pending.iter().filter(|(_, s)| s.peer == peer).count();
        pending
            .iter()
            .min_by_key(|(_, s)| (std::cmp::Reverse(count(s.peer)), s.since))
            .map(|(id, _)| **id)
    }

    /// Connection `id` finished its login. False when it was closed
    /// meanwhile (evicted or past its deadline).
    pub fn admit(&mut self, id: u64) -> bool {
        match self.map.get_mut(&id) {
            Some(s) if !s.closing => {
                s.admitted = true;
                true
            }
            _ => false,
        }
    }

    /// Close the connections whose login is past its deadline; returns
    /// how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for s in self.map.values_mut() {
            if !s.admitted && !s.closing && now.duration_since(s.since) >= self.login_timeout {
                s.closing = true;
                s.stream.close();
                n += 1;
            }
        }
        n
    }

    /// Close connection `id` (its session is being replaced).
    pub fn close(&mut self, id: u64) {
        if let Some(s) = self.map.get_mut(&id) {
            s.closing = true;
            s.stream.close();
        }
    }

    pub fn close_all(&mut self) {
        for s in self.map.values_mut() {
            s.closing = true;
            s.stream.close();
        }
    }

    /// The thread of `id` has ended.
    pub fn remove(&mut self, id: u64) {
        self.map.remove(&id);
    }

    #[cfg(test)]
    fn open(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, s)| !s.closing)
            .map(|(i, _)| *i)
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[derive(Clone, Default)]
    struct Fake(Rc<Cell<bool>>);
    impl Closable for Fake {
        fn close(&self) {
            self.0.set(true);
        }
    }

    fn limits() -> ConnLimits {
        ConnLimits {
            max_connections: 6,
            max_per_source: 3,
            reserved: 2,
            login_timeout: Duration::from_secs(10),
            ..ConnLimits::default()
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn per_source_cap() {
        let mut s = Slots::new(&limits());
        let t = Instant::now();
        for id in 0..3 {
            assert_eq!(s.accept(id, ip(2), Fake::default(), t), Ok(None));
        }
        assert!(s.accept(3, ip(2), Fake::default(), t).is_err());
        assert_eq!(s.accept(3, ip(3), Fake::default(), t), Ok(None));
    }

    /// Pending logins fill at most max - reserved slots; beyond, the
    /// oldest of the most crowded source goes, and a session that logged
    /// in keeps its slot.
    #[test]
    fn a_flood_evicts_itself() {
        let mut s = Slots::new(&limits());
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let (a, b) = (Fake::default(), Fake::default());
        s.accept(0, ip(2), a.clone(), ms(0)).unwrap();
        s.accept(1, ip(2), b, ms(1)).unwrap();
        s.accept(2, ip(3), Fake::default(), ms(2)).unwrap();
        s.accept(3, ip(4), Fake::default(), ms(3)).unwrap();
        // Five pending would pass 6 - 2: the oldest of 127.0.0.2 goes.
        assert_eq!(
            s.accept(4, ip(9), Fake::default(), ms(4)),
            Ok(Some((0, ip(2))))
        );
        assert!(a.0.get(), "evicted connection closed");
        assert!(s.admit(4), "the backup server logs in");
        assert_eq!(s.accept(5, ip(5), Fake::default(), ms(5)), Ok(None));
        // A tie between sources: the oldest pending login goes.
        assert_eq!(
            s.accept(6, ip(6), Fake::default(), ms(6)),
            Ok(Some((1, ip(2))))
        );
        assert!(!s.admit(1), "an evicted connection cannot log in");
        for id in 7..20 {
            let e = s.accept(id, ip(10 + id as u8), Fake::default(), ms(id));
            assert!(e.is_ok(), "{e:?}");
            assert_ne!(e.unwrap().map(|v| v.0), Some(4));
        }
        assert!(s.open().contains(&4));
        s.remove(0);
        s.remove(1);
    }

    #[test]
    fn sessions_fill_every_slot_then_new_ones_are_refused() {
        let mut s = Slots::new(&limits());
        let t = Instant::now();
        for id in 0..6 {
            s.accept(id, ip(id as u8 + 2), Fake::default(), t).unwrap();
            assert!(s.admit(id));
        }
        assert!(s.accept(6, ip(20), Fake::default(), t).is_err());
        s.remove(3);
        assert!(s.accept(6, ip(20), Fake::default(), t).is_ok());
    }

    #[test]
    fn logins_past_their_deadline_are_closed() {
        let mut s = Slots::new(&limits());
        let t = Instant::now();
        let slow = Fake::default();
        s.accept(0, ip(2), slow.clone(), t).unwrap();
        s.accept(1, ip(3), Fake::default(), t).unwrap();
        assert!(s.admit(1));
        assert_eq!(s.expire(t + Duration::from_secs(9)), 0);
        assert_eq!(s.expire(t + Duration::from_secs(10)), 1);
        assert!(slow.0.get());
        assert_eq!(s.open(), vec![1]);
    }
}
