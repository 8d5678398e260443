//! What tells a connection's pending wait to stop: an abort asked for from elsewhere, or, for a
//! split connection, the core's close seen by the other half.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::Input;

/// No abort asked for.
const NO_ABORT: u8 = 0;
/// The application's abort, through a handle.
const ABORT: u8 = 1;
/// The drain's abort, at its deadline (L3).
const ABORT_FOR_DRAIN: u8 = 2;

/// How an adapter wakes a wait of its own kind. The blocking adapter shuts the socket's receive
/// side, which makes a blocked `recv` return; the tokio adapter notifies the tasks waiting.
pub(crate) trait Wake: Send + Sync {
    /// Makes a wait in progress on this connection return soon. It must not close the socket.
    fn wake(&self);
}

/// Shared by a connection (or its halves) and its abort handles.
#[derive(Debug)]
pub(crate) struct Signal<W> {
    /// Which abort was asked for first, if any.
    abort: AtomicU8,
    closed: AtomicBool,
    waker: W,
}

impl<W: Wake> Signal<W> {
    pub(crate) fn new(waker: W) -> Self {
        Self {
            abort: AtomicU8::new(NO_ABORT),
            closed: AtomicBool::new(false),
            waker,
        }
    }

    /// Asks for an abort, which the connection's own thread or task performs at its next step,
    /// and wakes its wait.
    pub(crate) fn request_abort(&self) {
        self.request(ABORT);
    }

    /// Asks for the drain's abort: as [`request_abort`](Self::request_abort), under the drain's
    /// close reason. The first abort asked for is the one performed.
    pub(crate) fn request_abort_for_drain(&self) {
        self.request(ABORT_FOR_DRAIN);
    }

    fn request(&self, abort: u8) {
        // Only the first request counts: it is the one the connection may have seen already.
        let _ = self
            .abort
            .compare_exchange(NO_ABORT, abort, Ordering::SeqCst, Ordering::SeqCst);
        self.waker.wake();
    }

    pub(crate) fn abort_requested(&self) -> bool {
        self.abort.load(Ordering::SeqCst) != NO_ABORT
    }

    /// The core's input for the abort asked for (the application's, when none was).
    pub(crate) fn abort_input(&self) -> Input {
        match self.abort.load(Ordering::SeqCst) {
            ABORT_FOR_DRAIN => Input::AbortForDrain,
            _ => Input::Abort,
        }
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
