//! Why a connection ended.

use core::fmt;

use crate::IoErrorKind;

/// Why a connection closed, readable with [`Lifecycle::close_reason`](crate::Lifecycle::close_reason)
/// once it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Both sides finished: our send side was shut after everything was flushed, and the peer's end
    /// of stream arrived. Everything we sent went out ahead of our end of stream; what the peer
    /// sent after we asked to close was read and discarded, as a lingering close does.
    Graceful,
    /// The peer reset the connection.
    PeerReset,
    /// A graceful close ran past its deadline (total, or idle without a byte from the peer).
    LingerTimeout,
    /// The application aborted the connection (or closed it before it was connected).
    Aborted,
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
            Self::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            Self::Error(kind) => write!(f, "error: {kind}"),
        }
    }
}
