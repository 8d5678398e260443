//! The bridge between the core's errors and `std::io`: how adapters sort what the OS said, and
//! how they return the core's refusals as `io::Error`.

use std::io;

use crate::{ConfigError, Error, IoErrorKind, ListenerError};

impl IoErrorKind {
    /// Sorts an I/O error by what it means for a connection. Windows error codes arrive through
    /// the same `io::ErrorKind`s (`WSAECONNRESET` is `ConnectionReset`), so no platform code is needed.
    ///
    /// ```
    /// use std::io;
    /// use socket_lifecycle::IoErrorKind;
    ///
    /// let reset = io::Error::from(io::ErrorKind::ConnectionReset);
    /// assert_eq!(IoErrorKind::of(&reset), IoErrorKind::Reset);
    /// ```
    pub fn of(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Self::Reset,
            io::ErrorKind::BrokenPipe => Self::BrokenPipe,
            io::ErrorKind::TimedOut => Self::TimedOut,
            io::ErrorKind::ConnectionRefused => Self::Refused,
            _ => Self::Other,
        }
    }
}

/// A refusal of the core is a bug in the caller: `InvalidInput`, with the core's message.
impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

/// A refusal of the listener core is a bug in the caller: `InvalidInput`, with its message.
impl From<ListenerError> for io::Error {
    fn from(error: ListenerError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

/// A setting that cannot work: `InvalidInput`, with the message naming it.
impl From<ConfigError> for io::Error {
    fn from(error: ConfigError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InputKind, State};

    #[test]
    fn os_errors_sort_into_kinds() {
        let kind = |k| IoErrorKind::of(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::ConnectionReset), IoErrorKind::Reset);
        assert_eq!(kind(io::ErrorKind::ConnectionAborted), IoErrorKind::Reset);
        assert_eq!(kind(io::ErrorKind::BrokenPipe), IoErrorKind::BrokenPipe);
        assert_eq!(kind(io::ErrorKind::TimedOut), IoErrorKind::TimedOut);
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), IoErrorKind::Refused);
        assert_eq!(kind(io::ErrorKind::AddrInUse), IoErrorKind::Other);
    }

    #[cfg(unix)]
    #[test]
    fn raw_os_codes_sort_like_their_kinds() {
        // 104 ECONNRESET, 32 EPIPE, 111 ECONNREFUSED on Linux.
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                IoErrorKind::of(&io::Error::from_raw_os_error(104)),
                IoErrorKind::Reset
            );
            assert_eq!(
                IoErrorKind::of(&io::Error::from_raw_os_error(32)),
                IoErrorKind::BrokenPipe
            );
            assert_eq!(
                IoErrorKind::of(&io::Error::from_raw_os_error(111)),
                IoErrorKind::Refused
            );
        }
    }

    #[test]
    fn core_refusals_become_invalid_input() {
        let error = io::Error::from(Error::InvalidTransition {
            state: State::Closed,
            input: InputKind::Received,
        });
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            error.to_string(),
            "handle_received is not valid in state Closed"
        );
    }
}
