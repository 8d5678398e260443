//! Aborting a connection from another task or thread.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::wait::{self, Wakers};
use crate::adapter::{Abort, Signal};

/// Aborts a [`Connection`](super::Connection) that another task drives, such as a straggler a
/// server's drain gives up on; from any thread, async or not.
///
/// [`abort`](Self::abort) raises a flag the connection checks before and after every call and
/// wakes whatever the connection is waiting for (bytes, room to send, the peer's end of stream
/// in a lingering close). The connection's own task then resets it (linger zero, close), with
/// [`CloseReason::Aborted`](crate::CloseReason::Aborted). The handle never touches the socket.
#[derive(Clone, Debug)]
pub struct AbortHandle {
    signal: Arc<Signal<Wakers>>,
}

impl AbortHandle {
    pub(crate) fn new(signal: Arc<Signal<Wakers>>) -> Self {
        Self { signal }
    }

    /// Asks the connection to abort; returns at once. Repeating it changes nothing.
    pub fn abort(&self) {
        self.signal.request_abort();
    }

    /// Ready once an abort is asked for (at once if it was).
    pub(crate) fn poll_requested(&self, cx: &mut Context<'_>) -> Poll<()> {
        wait::poll_abort_requested(&self.signal, cx)
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
