//! A listening socket's lifecycle, and the server's drain decision.
//!
//! The diagram is on [`ListenerState`], where docs.rs shows it.
//!
//! The listener's socket is closed exactly once, by the first `stop` or `drain`. The core counts
//! the open connections; the adapter keeps the registry and aborts each one when told.

use core::fmt;
use core::time::Duration;

use crate::{Instant, IoErrorKind, ListenerConfig, Outcome};

/// Where a listener is in its life, and every transition:
///
/// ```text
///              accept failed (not a reset)
///   Listening ──────────────────────────────► Paused ──┐ backoff deadline
///       ▲  │ accepted: one more open              │     │
///       │  └──┘                                   │     │
///       └─────────────────────────────────────────┼─────┘
///       │ stop: StopAccepting, Close              │ stop
///       ▼                                         ▼
///    Stopped ◄────────────────────────────────────┘      (connections left to finish)
///       │ drain (from Listening or Paused as well: StopAccepting, Close)
///       ▼
///   Draining ── last open connection closed ─────────────────────────► Drained
///       │ drain deadline: AbortConnections                                ▲ ▲
///       ▼                                                                 │ │
///   Aborting ── last open connection closed ──────────────────────────────┘ │
///                                                                           │
///   drain with no connection open, from Listening, Paused or Stopped ───────┘
/// ```
///
/// The listener's socket is closed exactly once, by the first `stop` or `drain`.
// Deliberately exhaustive, as `State` is: the listener's diagram is part of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenerState {
    /// Accepting connections.
    Listening,
    /// An accept failed; accepting resumes at the backoff deadline.
    Paused,
    /// No more accepts; the listener is closed; open connections finish in their own time.
    Stopped,
    /// No more accepts; waiting for open connections to finish until the drain deadline.
    Draining,
    /// The drain deadline passed; the remaining connections are being aborted.
    Aborting,
    /// Every connection tracked after the drain started has closed. Final.
    Drained,
}

impl ListenerState {
    /// Every state, for exhaustive tests.
    pub const ALL: [Self; 6] = [
        Self::Listening,
        Self::Paused,
        Self::Stopped,
        Self::Draining,
        Self::Aborting,
        Self::Drained,
    ];
}

impl ListenerState {
    /// The state's name, as in the diagram.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Listening => "Listening",
            Self::Paused => "Paused",
            Self::Stopped => "Stopped",
            Self::Draining => "Draining",
            Self::Aborting => "Aborting",
            Self::Drained => "Drained",
        }
    }
}

impl fmt::Display for ListenerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One input to a [`Listener`].
// Deliberately exhaustive, as `Input` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerInput {
    /// Report: `accept` returned a connection, which the server now tracks.
    Accepted,
    /// Report: `accept` failed.
    AcceptFailed(IoErrorKind),
    /// Report: a tracked connection has closed.
    ConnectionClosed,
    /// Intent: accept no more; leave the open connections alone.
    Stop,
    /// Intent: accept no more, let the open connections finish, abort those still open after
    /// this long.
    Drain(Duration),
    /// Report: time has passed.
    Timeout,
}

impl ListenerInput {
    /// The name of the method that takes this input.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Accepted => "handle_accepted",
            Self::AcceptFailed(_) => "handle_accept_failed",
            Self::ConnectionClosed => "handle_connection_closed",
            Self::Stop => "stop",
            Self::Drain(_) => "drain",
            Self::Timeout => "handle_timeout",
        }
    }
}

/// What the core asks a listener's adapter to do, each once, in this order.
// Deliberately exhaustive, as `Action` is: an adapter must perform every action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerAction {
    /// Stop the accept loop (wake it if it is blocked in `accept`).
    StopAccepting,
    /// Close the listening socket, once the accept loop is out of `accept`.
    Close,
    /// Abort every connection still open (linger zero, then close), each once, with
    /// [`Lifecycle::abort_for_drain`](crate::Lifecycle::abort_for_drain), so that each one's
    /// close reason, [`CloseReason::DrainAborted`](crate::CloseReason::DrainAborted), says the
    /// drain did it (rule L3).
    ///
    /// Queued at the drain deadline, and handed out once; `open` is the count when it is polled.
    /// If the last connections closed between the deadline and the poll, it comes with
    /// `open: 0`, from a listener already [`Drained`](ListenerState::Drained): there is nothing
    /// left to abort, and the adapter aborts what its registry holds, which is nothing.
    AbortConnections {
        /// How many connections the core counts as open.
        open: u32,
    },
}

/// An input a [`Listener`] refused: the caller's mistake. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListenerError {
    /// The input does not fit the state (an accept while not accepting, say).
    InvalidTransition {
        /// The state the listener was, and still is, in.
        state: ListenerState,
        /// The refused input.
        input: ListenerInput,
    },
    /// A connection closed that was never counted open.
    NoOpenConnection,
    /// More than `u32::MAX` connections open at once.
    TooManyConnections,
}

impl fmt::Display for ListenerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTransition { state, input } => {
                write!(f, "{} is not valid in listener state {state}", input.name())
            }
            Self::NoOpenConnection => f.write_str("a connection closed that was never open"),
            Self::TooManyConnections => f.write_str("more than u32::MAX open connections"),
        }
    }
}

impl core::error::Error for ListenerError {}

/// The lifecycle of a listening socket and of the server around it: accepting with backoff,
/// stopping, and draining with a deadline. Sans-I/O, like [`Lifecycle`](crate::Lifecycle): feed it
/// inputs with `now`, then perform [`poll_action`](Self::poll_action)'s actions and call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
///
/// ```
/// use core::time::Duration;
/// use socket_lifecycle::{Instant, Listener, ListenerAction, ListenerConfig, ListenerState};
///
/// let t = Instant::from_millis;
/// let mut listener = Listener::new(t(0), ListenerConfig::default());
/// assert!(listener.may_accept());
/// listener.handle_accepted(t(1))?;
/// listener.handle_accepted(t(2))?;
///
/// listener.drain(t(10), Duration::from_secs(5))?;
/// assert!(!listener.may_accept());
/// assert_eq!(listener.poll_action(), Some(ListenerAction::StopAccepting));
/// assert_eq!(listener.poll_action(), Some(ListenerAction::Close));
///
/// listener.handle_connection_closed(t(20))?; // one finishes in time
/// listener.handle_timeout(t(5_010))?; // the other does not
/// assert_eq!(listener.poll_action(), Some(ListenerAction::AbortConnections { open: 1 }));
/// listener.handle_connection_closed(t(5_011))?;
/// assert_eq!(listener.state(), ListenerState::Drained);
/// # Ok::<(), socket_lifecycle::ListenerError>(())
/// ```
///
/// `Clone` but not `Copy`, for the same reason as [`Lifecycle`](crate::Lifecycle): a silent copy
/// would duplicate pending actions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Listener {
    now: Instant,
    /// While paused: when accepting resumes. While draining: the drain deadline.
    deadline: Instant,
    config: ListenerConfig,
    /// The pause the next failed accept brings.
    backoff_us: u32,
    open: u32,
    state: ListenerState,
    /// Bits in performing order: stop accepting, close, abort connections.
    pending: u8,
}

const STOP_ACCEPTING: u8 = 1;
const CLOSE: u8 = 1 << 1;
const ABORT_CONNECTIONS: u8 = 1 << 2;

impl Listener {
    /// A listener whose socket is bound and listening.
    pub const fn new(now: Instant, config: ListenerConfig) -> Self {
        Self {
            now,
            deadline: now,
            config,
            backoff_us: config.backoff_min_us(),
            open: 0,
            state: ListenerState::Listening,
            pending: 0,
        }
    }

    /// Report: `accept` returned a connection; it is counted open until
    /// [`handle_connection_closed`](Self::handle_connection_closed).
    ///
    /// # Errors
    /// [`ListenerError::InvalidTransition`] unless [`may_accept`](Self::may_accept): an accept that
    /// completes after a stop is refused, and the adapter closes that socket at once.
    pub fn handle_accepted(&mut self, now: Instant) -> Result<Outcome, ListenerError> {
        self.handle(now, ListenerInput::Accepted)
    }

    /// Report: `accept` failed. A reset (the connection died in the queue) is retried at once;
    /// anything else, typically running out of descriptors, pauses accepting with a growing
    /// backoff. An error that will not go away (the listening socket itself is broken) is the
    /// adapter's to recognise: it calls [`stop`](Self::stop). After a stop, a failed accept (the
    /// one the stop woke) changes nothing.
    ///
    /// # Errors
    /// [`ListenerError::InvalidTransition`] while paused: no accept should be in flight then.
    pub fn handle_accept_failed(
        &mut self,
        now: Instant,
        kind: IoErrorKind,
    ) -> Result<Outcome, ListenerError> {
        self.handle(now, ListenerInput::AcceptFailed(kind))
    }

    /// Report: a tracked connection closed.
    ///
    /// # Errors
    /// [`ListenerError::InvalidTransition`] once [`Drained`](ListenerState::Drained): every
    /// tracked connection has closed, so none is left to report (a drain begun with none open
    /// goes straight there); otherwise [`ListenerError::NoOpenConnection`] if none is counted
    /// open.
    pub fn handle_connection_closed(&mut self, now: Instant) -> Result<Outcome, ListenerError> {
        self.handle(now, ListenerInput::ConnectionClosed)
    }

    /// Intent: accept no more and close the listening socket; open connections go on.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of every other input.
    pub fn stop(&mut self, now: Instant) -> Result<Outcome, ListenerError> {
        self.handle(now, ListenerInput::Stop)
    }

    /// Intent: stop, then wait for the open connections until `timeout` has passed and abort
    /// those left. A second drain changes nothing: the first deadline holds.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of every other input.
    pub fn drain(&mut self, now: Instant, timeout: Duration) -> Result<Outcome, ListenerError> {
        self.handle(now, ListenerInput::Drain(timeout))
    }

    /// Report: time has passed; deadlines up to `now` fire.
    ///
    /// # Errors
    /// None; the `Result` keeps the shape of every other input.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Outcome, ListenerError> {
        self.handle(now, ListenerInput::Timeout)
    }

    /// Applies any input; a refused one changes nothing.
    ///
    /// # Errors
    /// As the method for the input.
    pub fn handle(&mut self, now: Instant, input: ListenerInput) -> Result<Outcome, ListenerError> {
        let mut next = self.clone();
        next.now = self.now.max(now);
        let outcome = next.apply(input)?;
        *self = next;
        Ok(outcome)
    }

    /// The next action for the adapter, each handed out once.
    pub fn poll_action(&mut self) -> Option<ListenerAction> {
        let first = self.pending & self.pending.wrapping_neg();
        self.pending &= !first;
        match first {
            0 => None,
            STOP_ACCEPTING => Some(ListenerAction::StopAccepting),
            CLOSE => Some(ListenerAction::Close),
            _ => Some(ListenerAction::AbortConnections { open: self.open }),
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if a deadline is running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ListenerState::Paused | ListenerState::Draining => Some(self.deadline),
            _ => None,
        }
    }

    /// The current state.
    pub const fn state(&self) -> ListenerState {
        self.state
    }

    /// Whether the adapter may call `accept`.
    pub const fn may_accept(&self) -> bool {
        matches!(self.state, ListenerState::Listening)
    }

    /// How many accepted connections are still open.
    pub const fn open_connections(&self) -> u32 {
        self.open
    }

    /// Whether a drain has finished: every connection has closed.
    pub const fn is_drained(&self) -> bool {
        matches!(self.state, ListenerState::Drained)
    }

    /// Whether actions wait to be polled.
    pub const fn has_pending_actions(&self) -> bool {
        self.pending != 0
    }

    /// The latest time seen.
    pub const fn now(&self) -> Instant {
        self.now
    }

    /// Every transition of the listener.
    fn apply(&mut self, input: ListenerInput) -> Result<Outcome, ListenerError> {
        use ListenerInput as In;
        use ListenerState::*;
        use Outcome::{Changed, Unchanged};
        let invalid = Err(ListenerError::InvalidTransition {
            state: self.state,
            input,
        });
        match (self.state, input) {
            (Listening, In::Accepted) => {
                self.open = self
                    .open
                    .checked_add(1)
                    .ok_or(ListenerError::TooManyConnections)?;
                self.backoff_us = self.config.backoff_min_us();
                Ok(Changed)
            }
            (Listening, In::AcceptFailed(IoErrorKind::Reset)) => Ok(Unchanged),
            (Listening, In::AcceptFailed(_)) => {
                self.deadline = self
                    .now
                    .saturating_add(Duration::from_micros(u64::from(self.backoff_us)));
                self.backoff_us = self.config.next_backoff_us(self.backoff_us);
                Ok(self.enter(Paused))
            }
            // Stopping wakes an accept blocked in the kernel with an error: expected, not misuse.
            (Stopped | Draining | Aborting | Drained, In::AcceptFailed(_)) => Ok(Unchanged),
            (_, In::Accepted | In::AcceptFailed(_)) => invalid,

            (Drained, In::ConnectionClosed) => invalid,
            (_, In::ConnectionClosed) => {
                self.open = self
                    .open
                    .checked_sub(1)
                    .ok_or(ListenerError::NoOpenConnection)?;
                match self.state {
                    Draining | Aborting if self.open == 0 => Ok(self.enter(Drained)),
                    _ => Ok(Changed),
                }
            }

            (Listening | Paused, In::Stop) => Ok(self.enter(Stopped)),
            (Listening | Paused | Stopped, In::Drain(timeout)) => {
                self.deadline = self.now.saturating_add(timeout);
                if self.open == 0 {
                    Ok(self.enter(Drained))
                } else {
                    Ok(self.enter(Draining))
                }
            }
            (_, In::Stop | In::Drain(_)) => Ok(Unchanged),

            (Paused, In::Timeout) if self.now >= self.deadline => Ok(self.enter(Listening)),
            (Draining, In::Timeout) if self.now >= self.deadline => {
                self.pending |= ABORT_CONNECTIONS;
                Ok(self.enter(Aborting))
            }
            (_, In::Timeout) => Ok(Unchanged),
        }
    }

    /// The one door every state change goes through: leaving the accepting states stops the
    /// accept loop and closes the listening socket, which happens once since none of the
    /// states after it leads back.
    fn enter(&mut self, next: ListenerState) -> Outcome {
        let accepting = |state| matches!(state, ListenerState::Listening | ListenerState::Paused);
        if accepting(self.state) && !accepting(next) {
            self.pending |= STOP_ACCEPTING | CLOSE;
        }
        self.state = next;
        Outcome::Changed
    }
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
