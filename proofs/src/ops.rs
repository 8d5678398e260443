//! The operations the harnesses replay: every input of the core, plus polls and clock moves.

use socket_lifecycle::{Input, IoErrorKind, ListenerInput};
use std::time::Duration;

/// A move of the clock a harness gives its inputs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockMove {
    /// Forward by this many microseconds.
    Wait(u32),
    /// Back by this many microseconds.
    Rewind(u32),
    /// To the next deadline plus this many microseconds; nowhere if no deadline runs.
    ToDeadline(i8),
}

impl ClockMove {
    /// Where the clock, at `clock` microseconds, goes, given the machine's next deadline.
    pub fn moved(self, clock: u64, next_deadline: Option<u64>) -> u64 {
        match self {
            Self::Wait(micros) => clock.saturating_add(micros.into()),
            Self::Rewind(micros) => clock.saturating_sub(micros.into()),
            Self::ToDeadline(offset) => next_deadline.map_or(clock, |deadline| {
                deadline.saturating_add_signed(offset.into())
            }),
        }
    }
}

/// [`IoErrorKind`], mirrored so that it can derive `Arbitrary` without the core depending on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Kind {
    /// [`IoErrorKind::Reset`].
    Reset,
    /// [`IoErrorKind::BrokenPipe`].
    BrokenPipe,
    /// [`IoErrorKind::TimedOut`].
    TimedOut,
    /// [`IoErrorKind::Refused`].
    Refused,
    /// [`IoErrorKind::Other`].
    Other,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Reset,
        Self::BrokenPipe,
        Self::TimedOut,
        Self::Refused,
        Self::Other,
    ];
}

impl From<Kind> for IoErrorKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Reset => Self::Reset,
            Kind::BrokenPipe => Self::BrokenPipe,
            Kind::TimedOut => Self::TimedOut,
            Kind::Refused => Self::Refused,
            Kind::Other => Self::Other,
        }
    }
}

/// Converts between [`ClockMove`] and the clock variants (`Wait`, `Rewind`, `ToDeadline`) of an
/// operation enum. The variants stay in each enum, rather than one `Clock(ClockMove)`, so that
/// the fuzz corpus keeps decoding as it did.
macro_rules! clock_moves {
    ($op:ty) => {
        impl From<ClockMove> for $op {
            fn from(clock: ClockMove) -> Self {
                match clock {
                    ClockMove::Wait(micros) => Self::Wait { micros },
                    ClockMove::Rewind(micros) => Self::Rewind { micros },
                    ClockMove::ToDeadline(offset) => Self::ToDeadline { offset },
                }
            }
        }

        impl $op {
            /// The move of the clock this operation is, if it is one.
            pub fn clock_move(self) -> Option<ClockMove> {
                match self {
                    Self::Wait { micros } => Some(ClockMove::Wait(micros)),
                    Self::Rewind { micros } => Some(ClockMove::Rewind(micros)),
                    Self::ToDeadline { offset } => Some(ClockMove::ToDeadline(offset)),
                    _ => None,
                }
            }
        }
    };
}

/// The edges of the candidate range: the first attempts, either side of a byte, the largest
/// count accepted and the first refused, and the largest value an operation carries.
pub const CANDIDATE_EDGES: [u32; 10] = [0, 1, 2, 3, 255, 256, 257, 65_535, 65_536, u32::MAX];

/// A candidate count or index as the fuzzer decodes it: half the time one of
/// [`CANDIDATE_EDGES`], which random `u32`s almost never hit, else any `u32`.
#[cfg(feature = "arbitrary")]
fn candidate_value(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<u32> {
    if u.arbitrary::<bool>()? {
        u.choose(&CANDIDATE_EDGES).copied()
    } else {
        u.arbitrary()
    }
}

/// One operation on a connection: an input of the core at the harness's clock, a poll, or a
/// move of the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ConnectionOp {
    /// [`Input::StartConnect`]; `u32` reaches past the core's limit of `u16::MAX`.
    StartConnect {
        /// Candidate count.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = candidate_value))]
        candidates: u32,
    },
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
    Connected {
        /// Candidate index.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = candidate_value))]
        candidate: u32,
    },
    /// [`Input::ConnectFailed`].
    ConnectFailed {
        /// Candidate index.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = candidate_value))]
        candidate: u32,
        /// Failure.
        kind: Kind,
    },
    /// [`Input::Received`].
    Received {
        /// Byte count, zero included.
        len: u32,
    },
    /// [`Input::EndOfStream`].
    EndOfStream,
    /// [`Input::Flushed`].
    Flushed,
    /// [`Input::Acknowledged`].
    Acknowledged,
    /// [`Input::Error`].
    Error(Kind),
    /// [`Input::Timeout`].
    Timeout,
    /// Hand out one pending action.
    PollAction,
    /// The clock moves forward.
    Wait {
        /// How far.
        micros: u32,
    },
    /// The clock moves back.
    Rewind {
        /// How far.
        micros: u32,
    },
    /// The clock jumps to the next deadline plus `offset` microseconds (nothing if none runs).
    ToDeadline {
        /// Distance from the deadline.
        offset: i8,
    },
}

clock_moves!(ConnectionOp);

impl ConnectionOp {
    /// The core input this operation is, if it is one.
    pub fn input(self) -> Option<Input> {
        Some(match self {
            Self::StartConnect { candidates } => Input::StartConnect {
                candidates: candidates as usize,
            },
            Self::ShutdownSend => Input::ShutdownSend,
            Self::Close => Input::Close,
            Self::Abort => Input::Abort,
            Self::Abandon => Input::Abandon,
            Self::AbortForDrain => Input::AbortForDrain,
            Self::Connected { candidate } => Input::Connected {
                candidate: candidate as usize,
            },
            Self::ConnectFailed { candidate, kind } => Input::ConnectFailed {
                candidate: candidate as usize,
                kind: kind.into(),
            },
            Self::Received { len } => Input::Received { len: len as usize },
            Self::EndOfStream => Input::EndOfStream,
            Self::Flushed => Input::Flushed,
            Self::Acknowledged => Input::Acknowledged,
            Self::Error(kind) => Input::Error(kind.into()),
            Self::Timeout => Input::Timeout,
            Self::PollAction
            | Self::Wait { .. }
            | Self::Rewind { .. }
            | Self::ToDeadline { .. } => {
                return None;
            }
        })
    }
}

/// One operation on a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ListenerOp {
    /// [`ListenerInput::Accepted`].
    Accepted,
    /// [`ListenerInput::AcceptFailed`].
    AcceptFailed(Kind),
    /// [`ListenerInput::ConnectionClosed`].
    ConnectionClosed,
    /// [`ListenerInput::Stop`].
    Stop,
    /// [`ListenerInput::Drain`], in microseconds.
    Drain {
        /// Drain timeout.
        micros: u32,
    },
    /// [`ListenerInput::Timeout`].
    Timeout,
    /// Hand out one pending action.
    PollAction,
    /// The clock moves forward.
    Wait {
        /// How far.
        micros: u32,
    },
    /// The clock moves back.
    Rewind {
        /// How far.
        micros: u32,
    },
    /// The clock jumps to the next deadline plus `offset` microseconds (nothing if none runs).
    ToDeadline {
        /// Distance from the deadline.
        offset: i8,
    },
}

clock_moves!(ListenerOp);

impl ListenerOp {
    /// The core input this operation is, if it is one.
    pub fn input(self) -> Option<ListenerInput> {
        Some(match self {
            Self::Accepted => ListenerInput::Accepted,
            Self::AcceptFailed(kind) => ListenerInput::AcceptFailed(kind.into()),
            Self::ConnectionClosed => ListenerInput::ConnectionClosed,
            Self::Stop => ListenerInput::Stop,
            Self::Drain { micros } => ListenerInput::Drain(Duration::from_micros(micros.into())),
            Self::Timeout => ListenerInput::Timeout,
            Self::PollAction
            | Self::Wait { .. }
            | Self::Rewind { .. }
            | Self::ToDeadline { .. } => {
                return None;
            }
        })
    }
}
