//! The bounded queue between the two threads of a data path (disk reader
//! and tape writer, tape reader and checker or disk writer).
//!
//! Like `std::sync::mpsc::sync_channel`, but the end that does not drive
//! the tape, when it had to wait, is woken once the queue is half full (or
//! half empty) again, not for every item: in a pipeline one side is the
//! slower, and the faster one would otherwise sleep and be woken once per
//! record, each time a futex call and a context switch on both threads.
//! The end that drives the tape ([`Eager`]) is woken for every item: a
//! tape moves one command at a time, and must not idle while a batch
//! fills. Order is kept, nothing is dropped, and closing either end wakes
//! the other.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State<T> {
    queue: VecDeque<T>,
    sender_gone: bool,
    receiver_gone: bool,
    sender_waits: bool,
    receiver_waits: bool,
    /// How often and how long each end waited (logged at debug level when
    /// the queue goes: where a pipeline's time went).
    sender_waited: (u64, Duration),
    receiver_waited: (u64, Duration),
}

struct Shared<T> {
    state: Mutex<State<T>>,
    items: Condvar,
    room: Condvar,
    cap: usize,
    /// Items queued before a waiting receiver is woken.
    wake_receiver: usize,
    /// Free places before a waiting sender is woken.
    wake_sender: usize,
}

impl<T> Shared<T> {
    /// The state, even if the other thread panicked holding the lock (the
    /// queue itself is always consistent: every change is one call).
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producing end.
pub struct Sender<T>(Arc<Shared<T>>);

/// The consuming end.
pub struct Receiver<T>(Arc<Shared<T>>);

/// What [`Receiver::try_recv`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecv<T> {
    Item(T),
    /// Nothing yet; the sender is still there.
    Empty,
    /// Nothing, and the sender is gone.
    Closed,
}

/// Which end is woken for every item: the one that drives a tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eager {
    Sender,
    Receiver,
}

/// A queue of at most `cap` items (at least 1).
pub fn handoff<T>(cap: usize, eager: Eager) -> (Sender<T>, Receiver<T>) {
    let cap = cap.max(1);
    let batch = (cap / 2).max(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(cap),
            sender_gone: false,
            receiver_gone: false,
            sender_waits: false,
            receiver_waits: false,
            sender_waited: (0, Duration::ZERO),
            receiver_waited: (0, Duration::ZERO),
        }),
        items: Condvar::new(),
        room: Condvar::new(),
        cap,
        wake_receiver: if eager == Eager::Receiver { 1 } else { batch },
        wake_sender: if eager == Eager::Sender { 1 } else { batch },
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queue `item`, waiting while the queue is full. `Err(item)` when the
    /// receiver is gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        let sh = &*self.0;
        let mut st = sh.lock();
        if st.queue.len() >= sh.cap && !st.receiver_gone {
            let t0 = Instant::now();
            while st.queue.len() >= sh.cap && !st.receiver_gone {
                st.sender_waits = true;
                st = sh.room.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.sender_waits = false;
            st.sender_waited.0 += 1;
            st.sender_waited.1 += t0.elapsed();
        }
        if st.receiver_gone {
            return Err(item);
        }
        st.queue.push_back(item);
        if st.receiver_waits && st.queue.len() >= sh.wake_receiver {
            sh.items.notify_one();
        }
        Ok(())
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting for it; `None` once the sender is gone and
    /// the queue is empty.
    pub fn recv(&self) -> Option<T> {
        let sh = &*self.0;
        let mut st = sh.lock();
        if st.queue.is_empty() && !st.sender_gone {
            let t0 = Instant::now();
            while st.queue.is_empty() && !st.sender_gone {
                st.receiver_waits = true;
                st = sh.items.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.receiver_waits = false;
            st.receiver_waited.0 += 1;
            st.receiver_waited.1 += t0.elapsed();
        }
        let item = st.queue.pop_front();
        self.made_room(&st);
        item
    }

    /// The next item if one is queued.
    pub fn try_recv(&self) -> TryRecv<T> {
        let mut st = self.0.lock();
        match st.queue.pop_front() {
            Some(item) => {
                self.made_room(&st);
                TryRecv::Item(item)
            }
            None if st.sender_gone => TryRecv::Closed,
            None => TryRecv::Empty,
        }
    }

    fn made_room(&self, st: &State<T>) {
        let sh = &*self.0;
        if st.sender_waits && st.queue.len() + sh.wake_sender <= sh.cap {
            sh.room.notify_one();
        }
    }
}

impl<T> Iterator for &Receiver<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv()
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.items.notify_all();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.receiver_gone = true;
        let (s, r) = (st.sender_waited, st.receiver_waited);
        drop(st);
        self.0.room.notify_all();
        log::debug!(
            "hand-off queue of {}: the sender waited {} times for {:.3} s, the receiver {} times for {:.3} s",
            self.0.cap,
            s.0,
            s.1.as_secs_f64(),
            r.0,
            r.1.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_and_the_end_is_seen() {
        for (cap, eager) in [1, 2, 3, 8]
            .into_iter()
            .flat_map(|c| [(c, Eager::Sender), (c, Eager::Receiver)])
        {
            let (tx, rx) = handoff::<u32>(cap, eager);
            let got = std::thread::scope(|s| {
                s.spawn(move || {
                    for i in 0..1000 {
                        tx.send(i).unwrap();
                    }
                });
                (&rx).collect::<Vec<_>>()
            });
            assert_eq!(got, (0..1000).collect::<Vec<_>>(), "{cap} {eager:?}");
        }
    }

    #[test]
    fn a_slow_consumer_and_try_recv_see_every_item() {
        let (tx, rx) = handoff::<u32>(4, Eager::Sender);
        let mut got = Vec::new();
        std::thread::scope(|s| {
            s.spawn(move || (0..200).for_each(|i| tx.send(i).unwrap()));
            loop {
                match rx.try_recv() {
                    TryRecv::Item(i) => got.push(i),
                    TryRecv::Empty => std::thread::yield_now(),
                    TryRecv::Closed => break,
                }
            }
        });
        assert_eq!(got, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_dropped_receiver_frees_a_waiting_sender() {
        let (tx, rx) = handoff::<u32>(2, Eager::Receiver);
        std::thread::scope(|s| {
            let t = s.spawn(move || {
                let mut sent = 0;
                while tx.send(sent).is_ok() {
                    sent += 1;
                }
                sent
            });
            // The queue is full: the sender waits (or is about to).
            while rx.0.lock().queue.len() < 2 {
                std::thread::yield_now();
            }
            drop(rx);
            assert_eq!(t.join().unwrap(), 2);
        });
    }

    #[test]
    fn a_dropped_sender_wakes_a_waiting_receiver() {
        let (tx, rx) = handoff::<u32>(8, Eager::Sender);
        std::thread::scope(|s| {
            let r = s.spawn(move || (rx.recv(), rx.recv()));
            // One item, below the batch: the end must still wake the receiver.
            tx.send(7).unwrap();
            drop(tx);
            assert_eq!(r.join().unwrap(), (Some(7), None));
        });
        let (tx, rx) = handoff::<u32>(2, Eager::Sender);
        drop(tx);
        assert_eq!(rx.try_recv(), TryRecv::Closed);
    }
}
