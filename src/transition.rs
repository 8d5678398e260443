//! The connection's transition table: what every input does in every state, decided once, at
//! compile time, by one match ([`cell`]).
//!
//! [`Lifecycle`](crate::Lifecycle) looks its step up by (state, input kind) and performs it with
//! no further decision, so handling an input costs about one load and a few conditional moves
//! whatever the state. Two inputs depend on a little more, and have a column of their own: a
//! timeout whose deadline is due, and a receive of nothing. Only the connect phase (starting, an
//! attempt's report, an attempt's deadline) depends on more than that, and the table hands it to
//! `Lifecycle::apply_connect_phase`.

use crate::action::PendingActions;
use crate::{CloseReason, Input, InputKind, State};

/// One cell of the table: what an input does in a state.
// Eight bytes, so that a cell's address is a shift and an add away from the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(8))]
pub(crate) struct Step {
    /// The state after the input (the same one for a no-op or a refusal).
    pub(crate) next: State,
    /// What the input does beyond the state change, as the `Step::` flags below.
    effects: u8,
    /// Actions queued, as `PendingActions` bits.
    pub(crate) queue: u8,
    /// Actions withdrawn before they were polled, as `PendingActions` bits.
    pub(crate) withdraw: u8,
    /// Why the connection closes, with [`Step::CLOSES`] (`None` with [`Step::REASON_OF_ERROR`]).
    pub(crate) reason: Option<CloseReason>,
}

impl Step {
    /// The outcome is [`Outcome::Changed`](crate::Outcome::Changed).
    pub(crate) const CHANGED: u8 = 1;
    /// Misuse: [`Error::InvalidTransition`](crate::Error::InvalidTransition), nothing changes.
    pub(crate) const REFUSED: u8 = 1 << 1;
    /// With [`Step::REFUSED`]: [`Error::EmptyReceive`](crate::Error::EmptyReceive) instead.
    pub(crate) const EMPTY_RECEIVE: u8 = 1 << 7;
    /// Decided by `Lifecycle::apply_connect_phase`.
    pub(crate) const CONNECT_PHASE: u8 = 1 << 2;
    /// A close is first requested: the total linger deadline starts now.
    pub(crate) const STARTS_TOTAL_DEADLINE: u8 = 1 << 3;
    /// Lingering or waiting for the acknowledgement: the idle deadline starts (again) now.
    pub(crate) const RESTARTS_IDLE_DEADLINE: u8 = 1 << 4;
    /// The connection closes, with `reason`.
    pub(crate) const CLOSES: u8 = 1 << 5;
    /// The close reason is the reported error's ([`CloseReason::from_error`]).
    pub(crate) const REASON_OF_ERROR: u8 = 1 << 6;

    const fn new(state: State, effects: u8) -> Self {
        Self {
            next: state,
            effects,
            queue: 0,
            withdraw: 0,
            reason: None,
        }
    }

    /// A valid input with nothing to do.
    const UNCHANGED: Self = Self::new(State::Idle, 0);
    /// Misuse.
    const INVALID: Self = Self::new(State::Idle, Self::REFUSED);

    pub(crate) const fn has(self, effect: u8) -> bool {
        self.effects & effect != 0
    }

    /// The step, with the state it leaves unchanged filled in.
    const fn staying_in(self, state: State) -> Self {
        if self.has(Self::CHANGED) {
            self
        } else {
            Self {
                next: state,
                ..self
            }
        }
    }

    const fn queuing(mut self, actions: u8) -> Self {
        self.queue |= actions;
        self
    }

    const fn withdrawing(mut self, actions: u8) -> Self {
        self.withdraw |= actions;
        self
    }
}

/// The one door every state change goes through, with what entering a state brings: the total
/// linger deadline starts when a close is first requested, the idle deadline when lingering
/// starts (only `SendShut` and `ClosingFlushing` lead there) and again when the wait for the
/// peer's acknowledgement starts, and `Close` is queued on arrival in `Closed`, which happens
/// once since it is final.
pub(crate) const fn enter(from: State, next: State) -> Step {
    let mut effects = Step::CHANGED;
    if next.is_closing() && !from.is_closing() {
        effects |= Step::STARTS_TOTAL_DEADLINE;
    }
    if matches!(next, State::Lingering | State::Acknowledging) {
        effects |= Step::RESTARTS_IDLE_DEADLINE;
    }
    let step = Step::new(next, effects);
    if matches!(next, State::Closed) {
        step.queuing(PendingActions::CLOSE)
    } else {
        step
    }
}

const fn shut_send_and_enter(from: State, next: State) -> Step {
    enter(from, next).queuing(PendingActions::SHUTDOWN_WRITE)
}

pub(crate) const fn finish(from: State, reason: CloseReason) -> Step {
    let mut step = enter(from, State::Closed);
    step.effects |= Step::CLOSES;
    step.reason = Some(reason);
    step
}

const fn abort_now(from: State, reason: CloseReason) -> Step {
    finish(from, reason)
        .withdrawing(PendingActions::CONNECT | PendingActions::SHUTDOWN_WRITE)
        .queuing(PendingActions::SET_LINGER_ZERO)
}

/// Every transition of the connection, in one match over (state, input kind); `deadline_due`
/// tells a timeout whose deadline has come ([`Lifecycle::poll_timeout`](crate::Lifecycle::poll_timeout)'s)
/// from an early one. States and inputs are named in full where it matters; `_` arms collect
/// what is left, in this order: valid no-ops, then misuse.
const fn cell(state: State, input: InputKind, deadline_due: bool) -> Step {
    use InputKind as In;
    use State::*;
    let step = match (state, input) {
        // Closed is final: intents are no-ops, reports are misuse.
        (
            Closed,
            In::ShutdownSend
            | In::Close
            | In::Abort
            | In::Abandon
            | In::AbortForDrain
            | In::Timeout,
        ) => Step::UNCHANGED,
        (Closed, _) => Step::INVALID,

        // Abort works from every other state; so does close before there is a connection.
        (_, In::Abort) | (Idle | Connecting, In::Close) => abort_now(state, CloseReason::Aborted),
        // The drain's abort is the application's abort in every way but its reason: a log
        // must tell a connection the drain cut off from one aborted on purpose (rule L3).
        (_, In::AbortForDrain) => abort_now(state, CloseReason::DrainAborted),
        // The owner dropped the connection (rule A1). While its send side is open (no
        // connection yet, or the application may still queue data) the stream was cut off,
        // and only a reset keeps the peer from taking it for a complete one.
        (_, In::Abandon) if !state.is_connected() || state.permits().queue => {
            abort_now(state, CloseReason::Abandoned)
        }
        // Once the application has shut its send side, all it meant to send is on its way:
        // the drop is the close it was heading for, lingering as any close, or nothing new
        // if one is under way.
        (_, In::Abandon) => cell(state, In::Close, deadline_due),

        (Idle, In::StartConnect) => Step::new(Idle, Step::CONNECT_PHASE),
        (Idle, In::Timeout) => Step::UNCHANGED,
        (Idle, _) => Step::INVALID,

        // Which attempt a report answers, and whether an attempt's deadline has come, take
        // more than the state to decide.
        (Connecting, In::Connected | In::ConnectFailed | In::Timeout) => {
            Step::new(Connecting, Step::CONNECT_PHASE)
        }
        (Connecting, _) => Step::INVALID,

        // From here on the socket is connected.
        (_, In::StartConnect | In::Connected | In::ConnectFailed) => Step::INVALID,
        // The socket is broken: nothing more goes out on it, only the close.
        (_, In::Error) => {
            let mut step = enter(state, Closed).withdrawing(PendingActions::SHUTDOWN_WRITE);
            step.effects |= Step::CLOSES | Step::REASON_OF_ERROR;
            step
        }

        (Established, In::ShutdownSend) => enter(state, SendFlushing),
        (PeerShut, In::ShutdownSend) => enter(state, PeerShutSendFlushing),
        (_, In::ShutdownSend) => Step::UNCHANGED,

        (Established | SendFlushing, In::Close) => enter(state, ClosingFlushing),
        (PeerShut | PeerShutSendFlushing, In::Close) => enter(state, ClosingFlushingPeerShut),
        (SendShut, In::Close) => enter(state, Lingering),
        // Both ends of stream are through: what is left is the peer's acknowledgement of
        // ours (rule C13).
        (BothShut, In::Close) => enter(state, Acknowledging),
        (_, In::Close) => Step::UNCHANGED,

        (SendFlushing, In::Flushed) => shut_send_and_enter(state, SendShut),
        (PeerShutSendFlushing, In::Flushed) => shut_send_and_enter(state, BothShut),
        (ClosingFlushing, In::Flushed) => shut_send_and_enter(state, Lingering),
        (ClosingFlushingPeerShut, In::Flushed) => shut_send_and_enter(state, Acknowledging),
        (_, In::Flushed) => Step::UNCHANGED,

        (Established, In::EndOfStream) => enter(state, PeerShut),
        (SendFlushing, In::EndOfStream) => enter(state, PeerShutSendFlushing),
        (SendShut, In::EndOfStream) => enter(state, BothShut),
        (ClosingFlushing, In::EndOfStream) => enter(state, ClosingFlushingPeerShut),
        (Lingering, In::EndOfStream) => enter(state, Acknowledging),
        // recv keeps returning 0 after the end of stream; saying so again is true and harmless.
        (_, In::EndOfStream) => Step::UNCHANGED,

        // Every byte we sent and our end of stream arrived: only now is the close graceful.
        (Acknowledging, In::Acknowledged) => finish(state, CloseReason::Graceful),
        (_, In::Acknowledged) => Step::INVALID,

        // (A receive of nothing has a column of its own: see `empty_receive`.)
        (_, In::Received) if !state.permits().receive => Step::INVALID,
        (Lingering, In::Received) => {
            Step::new(Lingering, Step::CHANGED | Step::RESTARTS_IDLE_DEADLINE)
        }
        (_, In::Received) => Step::UNCHANGED,

        // Our own data never got out: a plain close would tell the peer the stream ended
        // cleanly when it was cut short. A reset tells the truth.
        (ClosingFlushing | ClosingFlushingPeerShut, In::Timeout) if deadline_due => {
            finish(state, CloseReason::LingerTimeout).queuing(PendingActions::SET_LINGER_ZERO)
        }
        (Lingering | Acknowledging, In::Timeout) if deadline_due => {
            finish(state, CloseReason::LingerTimeout)
        }
        (_, In::Timeout) => Step::UNCHANGED,
    };
    step.staying_in(state)
}

/// A receive of nothing: misuse as any receive where receiving is not permitted, and where it
/// is, an end of stream misreported.
const fn empty_receive(state: State) -> Step {
    let step = cell(state, InputKind::Received, false);
    if step.has(Step::REFUSED) {
        step
    } else {
        Step::new(state, Step::REFUSED | Step::EMPTY_RECEIVE)
    }
}

/// The table's columns: one per input kind, then a due timeout and a receive of nothing, whose
/// cells differ from a timeout's and a receive's; sixteen in all, so that a row's address is a
/// shift away.
const COLUMNS: usize = 16;
const DUE_TIMEOUT: usize = InputKind::ALL.len();
const EMPTY_RECEIVE: usize = DUE_TIMEOUT + 1;
const _: () = assert!(EMPTY_RECEIVE < COLUMNS);

/// Every cell, by `State as usize` and column.
// Evaluated by the compiler: an index out of range fails the build, it cannot fail a run.
#[allow(clippy::indexing_slicing)]
const TABLE: [[Step; COLUMNS]; State::ALL.len()] = {
    let mut table = [[Step::INVALID; COLUMNS]; State::ALL.len()];
    let mut row = 0;
    while row < State::ALL.len() {
        let state = State::ALL[row];
        // The rows are indexed by `State as usize`.
        assert!(state as usize == row);
        let mut column = 0;
        while column < InputKind::ALL.len() {
            let input = InputKind::ALL[column];
            assert!(input as usize == column);
            table[row][column] = cell(state, input, false);
            column += 1;
        }
        table[row][DUE_TIMEOUT] = cell(state, InputKind::Timeout, true);
        table[row][EMPTY_RECEIVE] = empty_receive(state);
        row += 1;
    }
    table
};

/// What `input` does in `state`; `deadline_due` only matters for a timeout.
#[inline]
pub(crate) fn step(state: State, input: Input, deadline_due: bool) -> Step {
    let Some(row) = TABLE.get(state as usize) else {
        // Cannot happen: there is a row for every state. Refusing is the safe reading.
        return Step::INVALID;
    };
    // The column is worked out as a number, not by branches: which kind of input comes next is
    // what a processor cannot guess. A receive of nothing moves to its own column.
    let kind = input.kind() as usize;
    let empty_receive = input == Input::Received { len: 0 };
    let column = kind
        .wrapping_add(usize::from(empty_receive).wrapping_mul(EMPTY_RECEIVE.wrapping_sub(kind)));
    let cell = row.get(column).copied().unwrap_or(Step::INVALID);
    // A due timeout's cell is read beside it and one of them kept, so that whether a deadline
    // is due (the longer thing to work out) does not hold up the read.
    let due_timeout = row.get(DUE_TIMEOUT).copied().unwrap_or(Step::INVALID);
    if deadline_due & matches!(input, Input::Timeout) {
        due_timeout
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_is_the_match() {
        for state in State::ALL {
            for input in InputKind::ALL {
                let an_input = match input {
                    InputKind::StartConnect => Input::StartConnect { candidates: 1 },
                    InputKind::ShutdownSend => Input::ShutdownSend,
                    InputKind::Close => Input::Close,
                    InputKind::Abort => Input::Abort,
                    InputKind::Abandon => Input::Abandon,
                    InputKind::AbortForDrain => Input::AbortForDrain,
                    InputKind::Connected => Input::Connected { candidate: 0 },
                    InputKind::ConnectFailed => Input::ConnectFailed {
                        candidate: 0,
                        kind: crate::IoErrorKind::Refused,
                    },
                    InputKind::Received => Input::Received { len: 1 },
                    InputKind::EndOfStream => Input::EndOfStream,
                    InputKind::Flushed => Input::Flushed,
                    InputKind::Acknowledged => Input::Acknowledged,
                    InputKind::Error => Input::Error(crate::IoErrorKind::Other),
                    InputKind::Timeout => Input::Timeout,
                };
                for due in [false, true] {
                    assert_eq!(
                        step(state, an_input, due),
                        cell(state, input, due),
                        "the table's cell for {input} in {state} (deadline due: {due}) is not the match's"
                    );
                }
            }
            // C9: a receive of nothing is misuse, of its own kind where receiving is permitted.
            let empty = step(state, Input::Received { len: 0 }, false);
            let expected = if state.permits().receive {
                Step::new(state, Step::REFUSED | Step::EMPTY_RECEIVE)
            } else {
                Step::INVALID.staying_in(state)
            };
            assert_eq!(
                empty, expected,
                "C9 violated: the table's cell for a receive of nothing in {state}"
            );
        }
    }
}
