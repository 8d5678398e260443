//! What a connection tells whoever watches it: every transition, each failed connect attempt,
//! and the close with its reason.

use std::io;
use std::net::SocketAddr;

use crate::{CloseReason, InputKind, State};

/// Something that happened to a connection, as an [`Observer`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The lifecycle moved from one state to another on an input.
    Transition {
        /// The state before.
        from: State,
        /// The state after.
        to: State,
        /// What moved it.
        input: InputKind,
    },
    /// The connection closed: its socket is released, once.
    Closed {
        /// Why, as the core decided.
        reason: CloseReason,
        /// The operating system's error that ended it, if one did (its code is in
        /// [`io::Error::raw_os_error`]); after every connect attempt failed
        /// ([`CloseReason::ConnectFailed`]), the last attempt's error.
        error: Option<&'a io::Error>,
    },
    /// A connect attempt failed (refused, timed out...). The connector goes on to the next
    /// address, if any, after this event (rule C12); once none is left, [`Event::Closed`]
    /// follows.
    ConnectAttemptFailed {
        /// The address tried.
        addr: SocketAddr,
        /// Why it failed; the OS code, when the operating system gave one, is in
        /// [`io::Error::raw_os_error`] (a connect timeout has none).
        error: &'a io::Error,
    },
}

/// Watches a connection: one call per [`Event`], from the thread that drives it, in order.
///
/// Any `FnMut(&Event<'_>) + Send` closure is an observer; `()` is the one that ignores everything.
///
/// ```
/// use socket_lifecycle::blocking::{Event, Observer};
///
/// let mut transitions = 0;
/// let mut count = |event: &Event<'_>| {
///     if let Event::Transition { .. } = event {
///         transitions += 1;
///     }
/// };
/// count.on_event(&Event::Transition {
///     from: socket_lifecycle::State::Established,
///     to: socket_lifecycle::State::PeerShut,
///     input: socket_lifecycle::InputKind::EndOfStream,
/// });
/// assert_eq!(transitions, 1);
/// ```
pub trait Observer: Send {
    /// Called once per event.
    fn on_event(&mut self, event: &Event<'_>);
}

impl<F: FnMut(&Event<'_>) + Send> Observer for F {
    fn on_event(&mut self, event: &Event<'_>) {
        self(event);
    }
}

impl Observer for () {
    fn on_event(&mut self, _: &Event<'_>) {}
}
