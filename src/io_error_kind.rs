//! What kind of I/O failure an adapter saw.

use core::fmt;

/// The kind of an I/O error an adapter reports to the core.
///
/// The core needs to know only what the error means for the connection, not its OS code: the
/// adapter keeps the code for its own messages (with the `std` feature,
/// `IoErrorKind::of` sorts a `std::io::Error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
// More kinds may be told apart later; until then they are `Other`.
#[non_exhaustive]
pub enum IoErrorKind {
    /// The peer reset the connection (`ECONNRESET`, `WSAECONNRESET`, `ECONNABORTED`).
    Reset,
    /// Sending to a peer that is gone (`EPIPE`).
    BrokenPipe,
    /// The operating system gave up on the peer (`ETIMEDOUT`), or a connect attempt ran out of time.
    TimedOut,
    /// Nobody listens at the address (`ECONNREFUSED`, `WSAECONNREFUSED`).
    Refused,
    /// Any other failure.
    Other,
}

impl IoErrorKind {
    /// Every kind, for exhaustive tests.
    pub const ALL: [Self; 5] = [
        Self::Reset,
        Self::BrokenPipe,
        Self::TimedOut,
        Self::Refused,
        Self::Other,
    ];
}

impl fmt::Display for IoErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reset => "connection reset",
            Self::BrokenPipe => "broken pipe",
            Self::TimedOut => "timed out",
            Self::Refused => "connection refused",
            Self::Other => "I/O error",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn kinds_display_as_the_os_would_word_them() {
        let words = IoErrorKind::ALL.map(|kind| kind.to_string());
        assert_eq!(
            words,
            [
                "connection reset",
                "broken pipe",
                "timed out",
                "connection refused",
                "I/O error"
            ]
        );
    }
}
