//! What the core answers to an input: it was applied, it changed nothing, or it was misuse.

use core::fmt;

use crate::{InputKind, State};

/// An input that was accepted.
// Deliberately exhaustive: an input is applied or it is not; there is no third answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The input moved the connection on: a new state, a deadline, or an action to perform.
    ///
    /// It says which step was taken, not that a value differs: an input that restarts a
    /// deadline answers `Changed` even when the deadline comes out where it was (bytes received
    /// while [`Lingering`](State::Lingering) at the same `now` as the last ones restart the idle
    /// deadline to the same instant). [`Unchanged`](Self::Unchanged) promises that nothing
    /// moved; `Changed` only that a step was taken that may have moved something.
    Changed,
    /// The input was valid and changed nothing: it was already done (a repeated shutdown or
    /// close), or it is an observation that needs no step (bytes received while open, a timeout
    /// with nothing due).
    Unchanged,
}

/// An input the core refused. Always the caller's mistake (the adapter's or the application's),
/// never the peer's or the OS's: those are inputs, not errors. A refused input leaves the
/// connection, its deadlines and its pending actions exactly as they were.
///
/// # Which error comes first
///
/// When an input is wrong in more than one way, the state is checked first: an input the state
/// does not take is [`InvalidTransition`](Self::InvalidTransition) whatever its values, and only
/// an input the state takes has its values checked. So `handle_received(now, 0)` where receiving
/// is not permitted is `InvalidTransition`, not [`EmptyReceive`](Self::EmptyReceive), and
/// `start_connect(now, 0)` on a connection past [`Idle`](State::Idle) is `InvalidTransition`, not
/// [`NoCandidates`](Self::NoCandidates). A connect report is checked for being awaited at all
/// (its `Connect` polled) before its candidate is compared
/// ([`NotCurrentCandidate`](Self::NotCurrentCandidate)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
// New kinds of misuse may be told apart later.
#[non_exhaustive]
pub enum Error {
    /// The input does not fit the state: receiving after the peer's end of stream, reporting a
    /// connect that was not asked for, starting to connect twice. After the close
    /// ([`State::Closed`]), every report but [`handle_timeout`](crate::Lifecycle::handle_timeout)
    /// is refused, and so is [`start_connect`](crate::Lifecycle::start_connect), the one intent
    /// that cannot apply to a closed connection; the other intents (shutdown, close, abort,
    /// abandon, the drain's abort) and a timeout are accepted as no-ops.
    InvalidTransition {
        /// The state the connection was, and still is, in.
        state: State,
        /// The refused input.
        input: InputKind,
    },
    /// [`start_connect`](crate::Lifecycle::start_connect) with no candidate addresses.
    NoCandidates,
    /// [`start_connect`](crate::Lifecycle::start_connect) with more than `u16::MAX` candidates.
    TooManyCandidates,
    /// A connect report names a candidate other than the one being tried (a stale report from an
    /// attempt that was already given up).
    NotCurrentCandidate {
        /// The candidate being tried.
        current: usize,
        /// The candidate the report named.
        reported: usize,
    },
    /// [`handle_received`](crate::Lifecycle::handle_received) with zero bytes: a `recv` that
    /// returns 0 is the end of stream and is reported with
    /// [`handle_end_of_stream`](crate::Lifecycle::handle_end_of_stream).
    EmptyReceive,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTransition { state, input } => {
                write!(f, "{input} is not valid in state {state}")
            }
            Self::NoCandidates => f.write_str("no candidate address to connect to"),
            Self::TooManyCandidates => f.write_str("more than 65535 candidate addresses"),
            Self::NotCurrentCandidate { current, reported } => write!(
                f,
                "report for candidate {reported}, but candidate {current} is being tried"
            ),
            Self::EmptyReceive => {
                f.write_str("a receive of 0 bytes is the end of stream; report it as such")
            }
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn errors_say_what_was_wrong() {
        assert_eq!(
            Error::InvalidTransition {
                state: State::PeerShut,
                input: InputKind::Received
            }
            .to_string(),
            "handle_received is not valid in state PeerShut"
        );
        assert_eq!(
            Error::NoCandidates.to_string(),
            "no candidate address to connect to"
        );
        assert_eq!(
            Error::TooManyCandidates.to_string(),
            "more than 65535 candidate addresses"
        );
        assert_eq!(
            Error::NotCurrentCandidate {
                current: 1,
                reported: 0
            }
            .to_string(),
            "report for candidate 0, but candidate 1 is being tried"
        );
        assert_eq!(
            Error::EmptyReceive.to_string(),
            "a receive of 0 bytes is the end of stream; report it as such"
        );
    }
}
