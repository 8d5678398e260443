//! Why a connection ended.

use core::fmt;

use crate::IoErrorKind;

/// Why a connection closed, readable with [`Lifecycle::close_reason`](crate::Lifecycle::close_reason)
/// once it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
// More reasons may come (a new adapter error, a new way to end): a match needs a `_` arm.
#[non_exhaustive]
pub enum CloseReason {
    /// Both sides finished, and the peer acknowledged it (rule C13): our send side was shut after
    /// everything was flushed, the peer's end of stream arrived, and the peer acknowledged every
    /// byte we sent and our end of stream (where the platform can tell; see
    /// [`Lifecycle::handle_acknowledged`](crate::Lifecycle::handle_acknowledged)). What the peer
    /// sent after we asked to close was read and discarded, as a lingering close does.
    Graceful,
    /// The peer reset the connection.
    PeerReset,
    /// A graceful close ran past its deadline (total, or idle without a byte from the peer).
    LingerTimeout,
    /// The application aborted the connection (or closed it before it was connected).
    Aborted,
    /// The owner dropped the connection while it was still open, without closing it: reset as
    /// an abort, but not by the application's choice.
    Abandoned,
    /// The server's drain reached its deadline with the connection still open, and reset it: an
    /// abort, but not the application's own choice (rule L3).
    DrainAborted,
    /// Every connect attempt failed; the kind is that of the last failure.
    ConnectFailed(IoErrorKind),
    /// An I/O error other than a reset ended the connection.
    Error(IoErrorKind),
}

impl CloseReason {
    /// The reason an I/O error of `kind` gives a connection: a reset is the peer's doing and is
    /// named as such, every other kind is an error.
    pub const fn from_error(kind: IoErrorKind) -> Self {
        match kind {
            IoErrorKind::Reset => Self::PeerReset,
            other => Self::Error(other),
        }
    }

    /// Whether the connection ended cleanly, with no data lost in either direction.
    pub const fn is_graceful(self) -> bool {
        matches!(self, Self::Graceful)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Graceful => f.write_str("graceful"),
            Self::PeerReset => f.write_str("reset by peer"),
            Self::LingerTimeout => f.write_str("linger timeout"),
            Self::Aborted => f.write_str("aborted"),
            Self::Abandoned => f.write_str("abandoned (dropped while open)"),
            Self::DrainAborted => f.write_str("aborted by the drain at its deadline"),
            Self::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            Self::Error(kind) => write!(f, "error: {kind}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn a_reset_is_the_peers_doing_and_every_other_error_is_an_error() {
        assert_eq!(
            CloseReason::from_error(IoErrorKind::Reset),
            CloseReason::PeerReset
        );
        for kind in IoErrorKind::ALL
            .into_iter()
            .filter(|k| *k != IoErrorKind::Reset)
        {
            assert_eq!(CloseReason::from_error(kind), CloseReason::Error(kind));
        }
    }

    #[test]
    fn only_graceful_is_graceful() {
        assert!(CloseReason::Graceful.is_graceful());
        for reason in [
            CloseReason::PeerReset,
            CloseReason::LingerTimeout,
            CloseReason::Aborted,
            CloseReason::Abandoned,
            CloseReason::DrainAborted,
            CloseReason::ConnectFailed(IoErrorKind::Refused),
            CloseReason::Error(IoErrorKind::Other),
        ] {
            assert!(!reason.is_graceful(), "{reason}");
        }
    }

    #[test]
    fn reasons_display_for_a_log_line() {
        assert_eq!(CloseReason::Graceful.to_string(), "graceful");
        assert_eq!(CloseReason::PeerReset.to_string(), "reset by peer");
        assert_eq!(CloseReason::LingerTimeout.to_string(), "linger timeout");
        assert_eq!(CloseReason::Aborted.to_string(), "aborted");
        assert_eq!(
            CloseReason::Abandoned.to_string(),
            "abandoned (dropped while open)"
        );
        assert_eq!(
            CloseReason::DrainAborted.to_string(),
            "aborted by the drain at its deadline"
        );
        assert_eq!(
            CloseReason::ConnectFailed(IoErrorKind::Refused).to_string(),
            "connect failed: connection refused"
        );
        assert_eq!(
            CloseReason::Error(IoErrorKind::BrokenPipe).to_string(),
            "error: broken pipe"
        );
    }
}
