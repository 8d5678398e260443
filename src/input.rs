//! Everything that can happen to a connection: the application's intents and the adapter's reports.

use core::fmt;

use crate::IoErrorKind;

/// One input to a [`Lifecycle`](crate::Lifecycle), for [`Lifecycle::handle`](crate::Lifecycle::handle).
///
/// Each variant has a method of its own on `Lifecycle` that reads better at a call site; this
/// enum is for code that replays inputs as data (tests, fuzzers, traces).
// Deliberately exhaustive, as `InputKind` is: the inputs are the contract's (CONTRACT.md lists
// them), each a column of the transition table; the monitors of `proofs/` and the reference
// model match on them to check every rule for every input, and a new input must not slip past
// them under a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Intent: start connecting to a list of this many candidate addresses, in order.
    StartConnect {
        /// How many candidates the adapter holds (1 to `u16::MAX`).
        candidates: usize,
    },
    /// Intent: nothing more to send (`shutdown(SD_SEND)` once the queued data is out).
    ShutdownSend,
    /// Intent: close gracefully, lingering until the peer is done.
    Close,
    /// Intent: reset the connection now.
    Abort,
    /// Intent: the owner let go of the connection without closing it (an adapter's `Drop`). With
    /// its send side still open, reset it now, as an abort; once the application has shut its
    /// send side, close it as [`Input::Close`] does (rule A1).
    Abandon,
    /// Intent: the server's drain reached its deadline with the connection still open; reset it
    /// now, as an abort, so that the close reason says the drain did it (rule L3).
    AbortForDrain,
    /// Report: the connect attempt to this candidate succeeded.
    Connected {
        /// The index from the [`Action::Connect`](crate::Action::Connect) being answered.
        candidate: usize,
    },
    /// Report: the connect attempt to this candidate failed.
    ConnectFailed {
        /// The index from the [`Action::Connect`](crate::Action::Connect) being answered.
        candidate: usize,
        /// What went wrong.
        kind: IoErrorKind,
    },
    /// Report: `recv` returned this many bytes (more than zero).
    Received {
        /// The byte count `recv` returned.
        len: usize,
    },
    /// Report: `recv` returned 0, the peer's end of stream.
    EndOfStream,
    /// Report: nothing the application queued is left to send.
    Flushed,
    /// Report: the peer acknowledged every byte we sent and our end of stream (rule C13), or
    /// the platform cannot tell, which the adapter documents.
    Acknowledged,
    /// Report: an I/O operation on the connected socket failed.
    Error(IoErrorKind),
    /// Report: time has passed; deadlines up to `now` are due.
    Timeout,
}

/// The kind of an [`Input`], without its values: what an error names, and what a diagram's edge
/// is labelled with.
// Deliberately exhaustive, as `Input` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputKind {
    /// [`Input::StartConnect`].
    StartConnect,
    /// [`Input::ShutdownSend`].
    ShutdownSend,
    /// [`Input::Close`].
    Close,
    /// [`Input::Abort`].
    Abort,
    /// [`Input::Abandon`].
    Abandon,
    /// [`Input::AbortForDrain`].
    AbortForDrain,
    /// [`Input::Connected`].
    Connected,
    /// [`Input::ConnectFailed`].
    ConnectFailed,
    /// [`Input::Received`].
    Received,
    /// [`Input::EndOfStream`].
    EndOfStream,
    /// [`Input::Flushed`].
    Flushed,
    /// [`Input::Acknowledged`].
    Acknowledged,
    /// [`Input::Error`].
    Error,
    /// [`Input::Timeout`].
    Timeout,
}

impl Input {
    /// This input's kind.
    pub const fn kind(&self) -> InputKind {
        match self {
            Self::StartConnect { .. } => InputKind::StartConnect,
            Self::ShutdownSend => InputKind::ShutdownSend,
            Self::Close => InputKind::Close,
            Self::Abort => InputKind::Abort,
            Self::Abandon => InputKind::Abandon,
            Self::AbortForDrain => InputKind::AbortForDrain,
            Self::Connected { .. } => InputKind::Connected,
            Self::ConnectFailed { .. } => InputKind::ConnectFailed,
            Self::Received { .. } => InputKind::Received,
            Self::EndOfStream => InputKind::EndOfStream,
            Self::Flushed => InputKind::Flushed,
            Self::Acknowledged => InputKind::Acknowledged,
            Self::Error(_) => InputKind::Error,
            Self::Timeout => InputKind::Timeout,
        }
    }
}

impl InputKind {
    /// Every kind, for exhaustive tests.
    pub const ALL: [Self; 14] = [
        Self::StartConnect,
        Self::ShutdownSend,
        Self::Close,
        Self::Abort,
        Self::Abandon,
        Self::AbortForDrain,
        Self::Connected,
        Self::ConnectFailed,
        Self::Received,
        Self::EndOfStream,
        Self::Flushed,
        Self::Acknowledged,
        Self::Error,
        Self::Timeout,
    ];

    /// Whether the input is the application's intent (as opposed to an adapter's report).
    pub const fn is_intent(self) -> bool {
        matches!(
            self,
            Self::StartConnect
                | Self::ShutdownSend
                | Self::Close
                | Self::Abort
                | Self::Abandon
                | Self::AbortForDrain
        )
    }

    /// The input's name, as the method that takes it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::StartConnect => "start_connect",
            Self::ShutdownSend => "shutdown_send",
            Self::Close => "close",
            Self::Abort => "abort",
            Self::Abandon => "abandon",
            Self::AbortForDrain => "abort_for_drain",
            Self::Connected => "handle_connected",
            Self::ConnectFailed => "handle_connect_failed",
            Self::Received => "handle_received",
            Self::EndOfStream => "handle_end_of_stream",
            Self::Flushed => "handle_flushed",
            Self::Acknowledged => "handle_acknowledged",
            Self::Error => "handle_error",
            Self::Timeout => "handle_timeout",
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn abandon_is_an_intent_named_after_its_method() {
        assert_eq!(Input::Abandon.kind(), InputKind::Abandon);
        assert!(InputKind::ALL.contains(&InputKind::Abandon));
        assert!(InputKind::Abandon.is_intent());
        assert_eq!(InputKind::Abandon.to_string(), "abandon");
    }

    #[test]
    fn abort_for_drain_is_an_intent_named_after_its_method() {
        assert_eq!(Input::AbortForDrain.kind(), InputKind::AbortForDrain);
        assert!(InputKind::ALL.contains(&InputKind::AbortForDrain));
        assert!(InputKind::AbortForDrain.is_intent());
        assert_eq!(InputKind::AbortForDrain.to_string(), "abort_for_drain");
    }

    #[test]
    fn c13_acknowledged_is_a_report_named_after_its_method() {
        assert_eq!(Input::Acknowledged.kind(), InputKind::Acknowledged);
        assert!(InputKind::ALL.contains(&InputKind::Acknowledged));
        assert!(
            !InputKind::Acknowledged.is_intent(),
            "C13: only the adapter can know the peer acknowledged"
        );
        assert_eq!(InputKind::Acknowledged.to_string(), "handle_acknowledged");
    }
}
