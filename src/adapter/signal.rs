//! What tells a connection's pending wait to stop: an abort asked for from elsewhere, or, for a
//! split connection, the core's close seen by the other half.

use std::sync::atomic::{AtomicBool, Ordering};

/// How an adapter wakes a wait of its own kind. The blocking adapter shuts the socket's receive
/// side, which makes a blocked `recv` return; the tokio adapter notifies the tasks waiting.
pub(crate) trait Wake: Send + Sync {
    /// Makes a wait in progress on this connection return soon. It must not close the socket.
    fn wake(&self);
}

/// Shared by a connection (or its halves) and its abort handles.
#[derive(Debug)]
pub(crate) struct Signal<W> {
    abort: AtomicBool,
    closed: AtomicBool,
    waker: W,
}

impl<W: Wake> Signal<W> {
    pub(crate) fn new(waker: W) -> Self {
        Self {
            abort: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            waker,
        }
    }

    /// Asks for an abort, which the connection's own thread or task performs at its next step,
    /// and wakes its wait.
    pub(crate) fn request_abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    pub(crate) fn abort_requested(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// The core closed the connection: no wait of the other half of a split one is worth going
    /// on with. A wait that starts later sees it; one in progress is woken by the close request.
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Whether a wait should end now: an abort was asked for, or the connection is closed.
    pub(crate) fn is_raised(&self) -> bool {
        self.abort_requested() || self.is_closed()
    }

    pub(crate) fn waker(&self) -> &W {
        &self.waker
    }
}
