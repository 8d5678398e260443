//! Aborting a connection from another thread, safely.

use std::sync::Arc;

use super::wait::ReaderWaker;
use crate::adapter::{Abort, Signal};

/// Aborts a [`Connection`](super::Connection) that another thread drives, such as a straggler
/// a server's drain gives up on.
///
/// [`abort`](Self::abort) raises a flag the connection checks before and after every system call,
/// and wakes a `recv` blocked on a silent peer by shutting down the socket's receive side (on
/// Windows, where that wakes nothing, a `recv` looks at the flag every 50 ms). A `send` waiting
/// for a peer that reads nothing looks at it every 50 ms: no system call wakes a blocked `send`
/// short of closing the socket under it. (Not on Windows, where a `send` that times out leaves
/// its socket undefined: there a blocked `send` ends at the idle timeout, and the abort after.) The connection's own thread then resets it (linger
/// zero, close), with [`CloseReason::Aborted`](crate::CloseReason::Aborted). The handle never
/// closes the socket itself, and holds it only weakly: the descriptor cannot be closed under a
/// call of the connection, nor reused while the handle wakes it. What a handle cannot end is a
/// thread that makes no call on the connection (one asleep, or blocked elsewhere).
#[derive(Clone, Debug)]
pub struct AbortHandle {
    signal: Arc<Signal<ReaderWaker>>,
}

impl AbortHandle {
    pub(crate) fn new(signal: Arc<Signal<ReaderWaker>>) -> Self {
        Self { signal }
    }

    /// Asks the connection to abort; returns at once. Repeating it changes nothing.
    pub fn abort(&self) {
        self.signal.request_abort();
    }

    /// Whether an abort was asked for.
    pub fn is_requested(&self) -> bool {
        self.signal.abort_requested()
    }
}

impl Abort for AbortHandle {
    fn abort_for_drain(&self) {
        self.signal.request_abort_for_drain();
    }
}
