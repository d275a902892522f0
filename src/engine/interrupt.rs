//! SIGINT and SIGTERM during a backup: the engine finishes the record in
//! hand, closes the set with a trailer marked incomplete and a filemark,
//! records it as `interrupted` and returns [`super::EngineError::Interrupted`].
//!
//! The handler only sets a flag the engine loop reads between records; a
//! second signal ends the process at once with `128 + signal` (the next
//! command then reaps the set as failed, as after any crash).

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The signal this process received, 0 for none.
static PROCESS: AtomicI32 = AtomicI32::new(0);
/// A flag nothing raises.
static NEVER: AtomicI32 = AtomicI32::new(0);

/// Where an engine looks for a stop request between records.
#[derive(Clone, Copy, Debug)]
pub struct StopFlag(&'static AtomicI32);

impl Default for StopFlag {
    fn default() -> Self {
        StopFlag::never()
    }
}

impl StopFlag {
    /// A flag that is never raised.
    pub fn never() -> StopFlag {
        StopFlag(&NEVER)
    }

    /// A flag of its own, raised only by [`StopFlag::raise`] (tests and
    /// embedders; it lives as long as the process).
    pub fn new_owned() -> StopFlag {
        StopFlag(Box::leak(Box::new(AtomicI32::new(0))))
    }

    /// Ask the engine to stop as if `signal` had arrived. The first
    /// request wins.
    pub fn raise(&self, signal: Signal) {
        let _ = self
            .0
            .compare_exchange(0, signal as i32, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The signal that asked for a stop, if one did.
    pub fn raised(&self) -> Option<Signal> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            n => Signal::try_from(n).ok(),
        }
    }
}

/// Said on stderr at the first signal, so the operator knows a second one
/// aborts.
const FIRST: &[u8] = b"\nsanmover: stopping: finishing the current record, then closing the set \
as interrupted (signal again to abort at once)\n";

extern "C" fn on_signal(signo: nix::libc::c_int) {
    if PROCESS
        .compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        // SAFETY: write(2) is async-signal-safe; FIRST is a static buffer
        // of that length. A short or failed write only loses the notice.
        let _ = unsafe { nix::libc::write(2, FIRST.as_ptr().cast(), FIRST.len()) };
    } else {
        // The second signal: abort now. _exit is async-signal-safe
        // (POSIX.1-2017 2.4.3); nothing else is done here.
        // SAFETY: _exit takes no pointers and never returns.
        unsafe { nix::libc::_exit(128 + signo) }
    }
}

/// Route SIGINT and SIGTERM to the process flag and return it. Call it
/// once the command is about to write the tape (before, the default
/// action, ending the process, is right).
pub fn install_handlers() -> Result<StopFlag, nix::Error> {
    // SA_RESTART: reads and writes in flight carry on; poll(2) still
    // returns EINTR, which the iSCSI transport's loop retries.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only touches an atomic and calls _exit, both
        // async-signal-safe; no previous handler is relied upon.
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(StopFlag(&PROCESS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_raises_the_flag_and_a_second_ends_the_process_with_128_plus_it() {
        use nix::sys::signal::raise;
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};
        // SAFETY: until it ends, the child calls only async-signal-safe
        // functions (sigaction, raise, an atomic load, _exit), as a child
        // of a multi-threaded process must.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = match install_handlers() {
                    Err(_) => 2,
                    Ok(flag) => {
                        // raise(3) runs the handler before it returns.
                        let _ = raise(Signal::SIGTERM);
                        if flag.raised() != Some(Signal::SIGTERM) {
                            3
                        } else {
                            let _ = raise(Signal::SIGINT);
                            4 // not reached: the second signal ends it
                        }
                    }
                };
                // SAFETY: ends the child without running the parent's
                // atexit handlers or destructors.
                unsafe { nix::libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                // 128 + SIGINT: the second signal's number.
                assert_eq!(
                    waitpid(child, None).unwrap(),
                    WaitStatus::Exited(child, 130)
                );
            }
        }
    }

    #[test]
    fn an_owned_flag_keeps_the_first_signal() {
        let f = StopFlag::new_owned();
        assert_eq!(f.raised(), None);
        f.raise(Signal::SIGTERM);
        f.raise(Signal::SIGINT);
        assert_eq!(f.raised(), Some(Signal::SIGTERM));
        assert_eq!(StopFlag::never().raised(), None);
    }
}
