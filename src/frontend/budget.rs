//! One memory budget for every connection's Data-In and solicited
//! Data-Out buffers: a connection takes bytes before it allocates them and
//! gives them back when the buffer is gone, within its own share.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The bytes all connections may hold at once.
pub(crate) struct Budget {
    total: usize,
    per_connection: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

impl Budget {
    pub fn new(total: usize, per_connection: usize) -> Budget {
        Budget {
            total,
            per_connection: per_connection.min(total),
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Take `n` bytes for a connection that holds `held` already, waiting
    /// up to `wait` for other connections to give some back. False when
    /// the connection's share cannot hold them or the wait ran out.
    pub fn take(&self, held: usize, n: usize, wait: Duration) -> bool {
        if held + n > self.per_connection {
            return false;
        }
        let end = Instant::now() + wait;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + n > self.total {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            used = match self.freed.wait_timeout(used, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        *used += n;
        true
    }

    pub fn give(&self, n: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(n);
        self.freed.notify_all();
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        *self.used.lock().unwrap()
    }
}

/// One connection's holdings, given back when it is dropped (also when
/// its thread unwinds).
pub(crate) struct Account<'a> {
    budget: &'a Budget,
    held: usize,
}

impl<'a> Account<'a> {
    pub fn new(budget: &'a Budget) -> Account<'a> {
        Account { budget, held: 0 }
    }

    pub fn take(&mut self, n: usize, wait: Duration) -> bool {
        let ok = self.budget.take(self.held, n, wait);
        if ok {
            self.held += n;
        }
        ok
    }

    pub fn give(&mut self, n: usize) {
        let n = n.min(self.held);
        self.held -= n;
        self.budget.give(n);
    }
}

impl Drop for Account<'_> {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_total() {
        let b = Budget::new(10, 6);
        let mut a = Account::new(&b);
        let mut c = Account::new(&b);
        assert!(a.take(6, Duration::ZERO));
        assert!(!a.take(1, Duration::ZERO), "beyond its share");
        assert!(c.take(4, Duration::ZERO));
        assert!(!c.take(1, Duration::from_millis(10)), "beyond the total");
        a.give(2);
        assert!(c.take(2, Duration::ZERO));
        drop(a);
        assert_eq!(b.used(), 6);
        drop(c);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_waiter_gets_what_another_gives_back() {
        let b = std::sync::Arc::new(Budget::new(8, 8));
        assert!(b.take(0, 8, Duration::ZERO));
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.take(0, 4, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        b.give(8);
        assert!(t.join().unwrap());
    }
}
