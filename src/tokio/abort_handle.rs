//! Aborting a connection from another task or thread, and the wake-up the halves of a split
//! connection share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// What wakes a connection's waits: an abort asked for, or (for split halves) the core's close
/// seen by the other half.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    abort: AtomicBool,
    closed: AtomicBool,
    notify: Notify,
}

impl Signal {
    pub(crate) fn abort_requested(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    pub(crate) fn request_abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// The core closed the connection: every wait of the other half returns.
    pub(crate) fn set_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Returns once an abort is asked for or the connection is closed; at once if it already is.
    /// No wake-up is lost: the wait is registered before the flags are read.
    pub(crate) async fn raised(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.abort.load(Ordering::SeqCst) || self.closed.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// Aborts a [`Connection`](super::Connection) that another task drives, such as a straggler a
/// server's drain gives up on; from any thread, async or not.
///
/// [`abort`](Self::abort) raises a flag the connection checks before and after every call and
/// wakes whatever the connection is waiting for (bytes, room to send, the peer's end of stream
/// in a lingering close). The connection's own task then resets it (linger zero, close), with
/// [`CloseReason::Aborted`](crate::CloseReason::Aborted). The handle never touches the socket.
#[derive(Clone, Debug)]
pub struct AbortHandle {
    signal: Arc<Signal>,
}

impl AbortHandle {
    pub(crate) fn new(signal: Arc<Signal>) -> Self {
        Self { signal }
    }

    /// Asks the connection to abort; returns at once. Repeating it changes nothing.
    pub fn abort(&self) {
        self.signal.request_abort();
    }

    /// Returns once an abort is asked for (at once if it was).
    pub(crate) async fn requested(&self) {
        self.signal.raised().await;
    }

    /// Whether an abort was asked for.
    pub fn is_requested(&self) -> bool {
        self.signal.abort_requested()
    }
}
