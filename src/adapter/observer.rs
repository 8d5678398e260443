//! What a connection tells whoever watches it: every transition, each failed connect attempt,
//! and the close with its reason.

use std::fmt;
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

/// One log line: `Established -> PeerShut on handle_end_of_stream` (the input named as the
/// method that takes it), `closed: graceful`, `closed: reset by peer; Connection reset by peer
/// (os error 104)`, `connect to 127.0.0.1:9 failed: Connection refused (os error 111)`.
///
/// ```
/// use socket_lifecycle::{CloseReason, InputKind, State, blocking::Event};
///
/// let event = Event::Transition {
///     from: State::Established,
///     to: State::PeerShut,
///     input: InputKind::EndOfStream,
/// };
/// assert_eq!(event.to_string(), "Established -> PeerShut on handle_end_of_stream");
/// let event = Event::Closed { reason: CloseReason::Graceful, error: None };
/// assert_eq!(event.to_string(), "closed: graceful");
/// ```
impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transition { from, to, input } => write!(f, "{from} -> {to} on {input}"),
            Self::Closed {
                reason,
                error: Some(error),
            } => write!(f, "closed: {reason}; {error}"),
            Self::Closed {
                reason,
                error: None,
            } => write!(f, "closed: {reason}"),
            Self::ConnectAttemptFailed { addr, error } => {
                write!(f, "connect to {addr} failed: {error}")
            }
        }
    }
}

/// Watches a connection: one call per [`Event`], from the thread that drives it, in order.
///
/// Any `FnMut(&Event<'_>) + Send` closure is an observer; `()` is the one that ignores everything.
/// A closure passed straight where an observer is taken needs its argument's type written out,
/// `|event: &Event<'_>| ...`: Rust infers a closure's signature only from a `Fn` bound on the
/// parameter itself, and `impl Observer` is not one. [`observer_fn`] is that bound, and lets
/// `|event| ...` be written bare.
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

/// The observer that calls `f` with each event: the same closure as an observer, with its
/// argument's type inferred, so that `|event| ...` needs no annotation.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use socket_lifecycle::{Config, blocking::{Connector, observer_fn}};
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let lines = Arc::clone(&log);
/// let connector = Connector::new(Config::default())
///     .observer(observer_fn(move |event| lines.lock().unwrap().push(event.to_string())));
/// # drop(connector);
/// ```
pub fn observer_fn<F>(f: F) -> F
where
    F: FnMut(&Event<'_>) + Send,
{
    f
}

impl<F: FnMut(&Event<'_>) + Send> Observer for F {
    fn on_event(&mut self, event: &Event<'_>) {
        self(event);
    }
}

impl Observer for () {
    fn on_event(&mut self, _: &Event<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IoErrorKind;

    #[test]
    fn each_event_displays_as_one_log_line() {
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "the connect timeout passed");
        let lines = [
            Event::Transition {
                from: State::Established,
                to: State::PeerShut,
                input: InputKind::EndOfStream,
            }
            .to_string(),
            Event::Closed {
                reason: CloseReason::Graceful,
                error: None,
            }
            .to_string(),
            Event::ConnectAttemptFailed {
                addr: SocketAddr::from(([192, 0, 2, 1], 80)),
                error: &timeout,
            }
            .to_string(),
            Event::Closed {
                reason: CloseReason::ConnectFailed(IoErrorKind::TimedOut),
                error: Some(&timeout),
            }
            .to_string(),
        ];
        assert_eq!(
            lines,
            [
                "Established -> PeerShut on handle_end_of_stream",
                "closed: graceful",
                "connect to 192.0.2.1:80 failed: the connect timeout passed",
                "closed: connect failed: timed out; the connect timeout passed",
            ]
        );
    }

    /// The operating system's own words, as Linux gives them.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_os_error_is_displayed_with_its_code() {
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(
            Event::Closed {
                reason: CloseReason::PeerReset,
                error: Some(&reset),
            }
            .to_string(),
            "closed: reset by peer; Connection reset by peer (os error 104)"
        );
        assert_eq!(
            Event::ConnectAttemptFailed {
                addr: SocketAddr::from(([127, 0, 0, 1], 9)),
                error: &refused,
            }
            .to_string(),
            "connect to 127.0.0.1:9 failed: Connection refused (os error 111)"
        );
    }
}
