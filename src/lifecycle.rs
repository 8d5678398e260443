//! One stream connection's lifecycle: the sans-I/O state machine every adapter drives.

use crate::action::PendingActions;
use crate::transition::{self, Step};
use crate::{
    Action, CloseReason, Config, Error, Input, Instant, IoErrorKind, Outcome, Permits, State,
};

/// The life of one TCP stream connection, from connect or accept to a graceful close, as a pure
/// state machine. It performs no I/O, reads no clock and allocates nothing: an adapter performs
/// what it asks for and reports back what the operating system said.
///
/// # Calling order
///
/// The methods fall in four groups, as in quinn-proto's `Connection`:
///
/// - **intents** of the application: [`start_connect`](Self::start_connect),
///   [`shutdown_send`](Self::shutdown_send), [`close`](Self::close), [`abort`](Self::abort),
///   [`abandon`](Self::abandon), [`abort_for_drain`](Self::abort_for_drain);
/// - **reports** of the adapter, `handle_*`: what a system call returned, and
///   [`handle_timeout`](Self::handle_timeout) when the time of [`poll_timeout`](Self::poll_timeout)
///   has come;
/// - **polls**: after every intent or report, call [`poll_action`](Self::poll_action) until it
///   returns `None` and perform each action in that order; then [`poll_timeout`](Self::poll_timeout)
///   for the next deadline;
/// - **getters** (`&self`): the [`state`](Self::state), the permissions the adapter checks before
///   every system call ([`may_send`](Self::may_send), [`may_receive`](Self::may_receive),
///   [`must_discard`](Self::must_discard)), and the [`close_reason`](Self::close_reason).
///
/// Every intent and report takes `now`. Time only moves forward: a `now` earlier than one already
/// seen is taken as "no time has passed" (so a bogus far-future `now` is kept: feed it a
/// monotonic clock). Deadlines fire only in [`handle_timeout`](Self::handle_timeout).
///
/// Every intent and report answers [`Outcome::Changed`], [`Outcome::Unchanged`] (valid, nothing to
/// do: a repeated shutdown or close, for one) or an [`Error`] for misuse, which leaves the
/// connection exactly as it was.
///
/// # Example: the seed's client, driven by hand
///
/// ```
/// use socket_lifecycle::{Action, CloseReason, Config, Instant, Lifecycle, State};
///
/// let t = Instant::from_millis;
/// let mut conn = Lifecycle::new(Config::default());
///
/// // Two resolved addresses: the first refuses, the second answers.
/// conn.start_connect(t(0), 2)?;
/// assert_eq!(conn.poll_action(), Some(Action::Connect { candidate: 0 }));
/// conn.handle_connect_failed(t(1), 0, socket_lifecycle::IoErrorKind::Refused)?;
/// assert_eq!(conn.poll_action(), Some(Action::Connect { candidate: 1 }));
/// conn.handle_connected(t(2), 1)?;
///
/// // Send, then shut the send side once the adapter has flushed.
/// assert!(conn.may_send());
/// conn.shutdown_send(t(3))?;
/// conn.handle_flushed(t(3))?;
/// assert_eq!(conn.poll_action(), Some(Action::ShutdownWrite));
///
/// // Receive until recv returns 0, then close: all that is left is the peer's acknowledgement
/// // of our end of stream (rule C13), which the adapter reports once it has it.
/// conn.handle_received(t(4), 14)?;
/// conn.handle_end_of_stream(t(5))?;
/// conn.close(t(5))?;
/// assert_eq!(conn.state(), State::Acknowledging);
/// assert_eq!(conn.poll_action(), None);
/// conn.handle_acknowledged(t(6))?;
/// assert_eq!(conn.poll_action(), Some(Action::Close));
/// assert_eq!(conn.poll_action(), None);
/// assert_eq!(conn.state(), State::Closed);
/// assert_eq!(conn.close_reason(), Some(CloseReason::Graceful));
/// # Ok::<(), socket_lifecycle::Error>(())
/// ```
///
/// `Lifecycle` is `Clone` but not `Copy`: a silent copy would duplicate its pending actions, and
/// an adapter performing both would close twice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lifecycle {
    /// The latest time seen; never moves backwards.
    now: Instant,
    /// While connecting: the current attempt's deadline. While closing: the total linger deadline.
    deadline: Instant,
    config: Config,
    /// While lingering or waiting for the acknowledgement: how many microseconds before
    /// `deadline` the idle deadline (for the peer's next byte or end of stream) falls, or 0 if it
    /// falls at or after it. Only the earlier of the two deadlines ever matters, and kept this
    /// way it is exact in 32 bits: the idle deadline starts no earlier than the close request, so
    /// it lies at most `linger_total - linger_idle` before the total deadline (see
    /// [`Self::idle_lead_from_now`]).
    ///
    /// Zero in every other state with a deadline: it is only set on the way into lingering or
    /// the wait for the acknowledgement (or by bytes received while lingering), and those lead
    /// only to `Closed`. [`Self::running_deadline`] takes it off the deadline in every state
    /// on that account; a transition that left it set on the way into connecting or flushing
    /// would bring those deadlines forward.
    idle_lead: u32,
    state: State,
    pending: PendingActions,
    reason: Option<CloseReason>,
    /// While connecting: the candidate being tried.
    candidate: u16,
    /// While connecting: how many candidates there are.
    candidates: u16,
}

impl Lifecycle {
    /// A client connection that has not started: call [`start_connect`](Self::start_connect).
    pub const fn new(config: Config) -> Self {
        Self {
            now: Instant::ZERO,
            deadline: Instant::ZERO,
            config,
            idle_lead: 0,
            state: State::Idle,
            pending: PendingActions::EMPTY,
            reason: None,
            candidate: 0,
            candidates: 0,
        }
    }

    /// A server-side connection, just returned by `accept`: established, both directions open.
    pub const fn accepted(now: Instant, config: Config) -> Self {
        Self {
            now,
            state: State::Established,
            ..Self::new(config)
        }
    }

    // ---- intents -------------------------------------------------------------------------------

    /// Starts connecting to `candidates` addresses, tried in order, one at a time, each within the
    /// connect timeout. Emits [`Action::Connect`] for candidate 0. Each attempt's deadline counts
    /// from the input that decided it, so an adapter performs the `Connect` at once; an attempt
    /// not yet handed out never times out, so no candidate is skipped.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] unless the connection is [`State::Idle`], whatever
    /// `candidates` is; in `Idle`, [`Error::NoCandidates`] or [`Error::TooManyCandidates`].
    pub fn start_connect(&mut self, now: Instant, candidates: usize) -> Result<Outcome, Error> {
        self.handle(now, Input::StartConnect { candidates })
    }

    /// The application has nothing more to send: once the adapter reports the queued data
    /// flushed, [`Action::ShutdownWrite`] is emitted. Receiving goes on. Repeating it is a no-op.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] before the connection is established.
    pub fn shutdown_send(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::ShutdownSend)
    }

    /// Closes gracefully: shuts the send side once flushed, reads and discards until the peer's
    /// end of stream, waits for the peer to acknowledge what we sent
    /// ([`handle_acknowledged`](Self::handle_acknowledged), rule C13), then emits
    /// [`Action::Close`]; bounded by the linger deadlines of the [`Config`]. Before the
    /// connection is established, there is nothing to close gracefully and this is an
    /// [`abort`](Self::abort). Repeating it, or closing a closed connection, is a no-op.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of every other input.
    pub fn close(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::Close)
    }

    /// Resets the connection now: [`Action::SetLingerZero`], then [`Action::Close`], and no
    /// shutdown. A no-op once closed. Before a socket exists (idle, or before the first
    /// [`Action::Connect`] was polled) the adapter has nothing to set or close; the actions still
    /// come, so that every connection ends the same way, with one `Close`.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of every other input.
    pub fn abort(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::Abort)
    }

    /// The server's drain reached its deadline with this connection still open (rule L3):
    /// exactly what [`abort`](Self::abort) does, in every state ([`Action::SetLingerZero`],
    /// then [`Action::Close`], and no shutdown; a no-op once closed), but the close reason is
    /// [`CloseReason::DrainAborted`], so a log tells a connection the drain cut off apart from
    /// one the application aborted on purpose. A connection that closed on its own before the
    /// deadline keeps its own reason.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of every other input.
    pub fn abort_for_drain(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::AbortForDrain)
    }

    /// The owner let go of the connection without closing it, as an adapter's `Drop` does (rule
    /// A1). What that means depends on the send side:
    ///
    /// - **still open** (not yet connected, or the application may still queue data, as in
    ///   [`State::Established`] and [`State::PeerShut`]): the stream was cut off, and the peer
    ///   must not take it for a complete one. The same transitions and actions as
    ///   [`abort`](Self::abort) ([`Action::SetLingerZero`], then [`Action::Close`], no shutdown),
    ///   but the close reason is [`CloseReason::Abandoned`], so a log tells a connection dropped
    ///   while open apart from one the application aborted on purpose.
    /// - **shut by the application** ([`shutdown_send`](Self::shutdown_send) or
    ///   [`close`](Self::close) came first, as hyper, tokio-rustls and `tokio::io::copy` leave
    ///   the connections they are done with): everything it meant to send is on its way, and the
    ///   drop is the close it was heading for, exactly as [`close`](Self::close): the lingering
    ///   close, bounded by the linger deadlines, or nothing new if a close is under way. The
    ///   adapter goes on driving it after the drop (performing the actions, reading and
    ///   discarding, handling the timeouts) until the connection [`is_closed`](Self::is_closed).
    /// - **closed**: a no-op.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of every other input.
    pub fn abandon(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::Abandon)
    }

    // ---- reports -------------------------------------------------------------------------------

    /// The connect attempt to `candidate` succeeded.
    ///
    /// # Errors
    /// [`Error::NotCurrentCandidate`] for a stale attempt; [`Error::InvalidTransition`] when not
    /// connecting or before the [`Action::Connect`] was polled.
    pub fn handle_connected(&mut self, now: Instant, candidate: usize) -> Result<Outcome, Error> {
        self.handle(now, Input::Connected { candidate })
    }

    /// The connect attempt to `candidate` failed: the next candidate is tried, or, after the
    /// last, the connection closes with [`CloseReason::ConnectFailed`].
    ///
    /// # Errors
    /// As [`handle_connected`](Self::handle_connected).
    pub fn handle_connect_failed(
        &mut self,
        now: Instant,
        candidate: usize,
        kind: IoErrorKind,
    ) -> Result<Outcome, Error> {
        self.handle(now, Input::ConnectFailed { candidate, kind })
    }

    /// `recv` returned `len` bytes. While lingering they are discarded and the idle deadline
    /// starts again.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] when receiving is not permitted (not connected, or after the
    /// peer's end of stream), whatever `len` is; where receiving is permitted,
    /// [`Error::EmptyReceive`] for `len == 0`.
    pub fn handle_received(&mut self, now: Instant, len: usize) -> Result<Outcome, Error> {
        self.handle(now, Input::Received { len })
    }

    /// The peer acknowledged every byte we sent and our end of stream (`TCP_INFO` says our
    /// `FIN` was acknowledged, on Linux), or the platform cannot tell. Only in
    /// [`State::Acknowledging`], where it closes the connection gracefully (rule C13).
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] in any other state.
    pub fn handle_acknowledged(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::Acknowledged)
    }

    /// `recv` returned 0: the peer will send nothing more.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] when not connected.
    pub fn handle_end_of_stream(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::EndOfStream)
    }

    /// Nothing the application queued is left to send. This answers a shutdown or close request:
    /// report it after the request, once what was queued is out (at once if nothing was), and
    /// the shutdown of the send side goes out. A report before any request changes nothing and
    /// is not remembered, since the application may queue more afterwards.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] when not connected.
    pub fn handle_flushed(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::Flushed)
    }

    /// An I/O operation on the connected socket failed. Sending and receiving end and the
    /// connection closes with the error as its reason.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] when not connected (a failed connect attempt is reported with
    /// [`handle_connect_failed`](Self::handle_connect_failed)).
    pub fn handle_error(&mut self, now: Instant, kind: IoErrorKind) -> Result<Outcome, Error> {
        self.handle(now, Input::Error(kind))
    }

    /// Fires every deadline up to `now`, that is every deadline `<= now`; a deadline that
    /// saturated at [`Instant::MAX`] fires too if `now` is `Instant::MAX`. Call it when the time
    /// of [`poll_timeout`](Self::poll_timeout) has come; calling it at any other time, or after
    /// the close, is harmless.
    ///
    /// # Errors
    /// None; the `Result` keeps the shape of every other input.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Outcome, Error> {
        self.handle(now, Input::Timeout)
    }

    /// Applies any input. Every intent and report above goes through here.
    ///
    /// # Errors
    /// As the method for the input; a refused input changes nothing, not even the time.
    #[inline]
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<Outcome, Error> {
        // `apply` decides every refusal before it changes anything (the model check and the
        // property suite hold it to that, rule C9), so only the time needs putting back.
        let before = self.now;
        self.now = self.now.max(now);
        let outcome = self.apply(input);
        if outcome.is_err() {
            self.now = before;
        }
        outcome
    }

    // ---- polls ---------------------------------------------------------------------------------

    /// The next action for the adapter, each handed out once, in the order to perform them.
    #[inline]
    pub fn poll_action(&mut self) -> Option<Action> {
        Some(match self.pending.pop_first()? {
            PendingActions::CONNECT => Action::Connect {
                candidate: usize::from(self.candidate),
            },
            PendingActions::SHUTDOWN_WRITE => Action::ShutdownWrite,
            PendingActions::SET_LINGER_ZERO => Action::SetLingerZero,
            _ => Action::Close,
        })
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if a deadline is running.
    #[inline]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (running, deadline) = self.running_deadline();
        running.then_some(deadline)
    }

    // ---- getters -------------------------------------------------------------------------------

    /// The current state.
    pub const fn state(&self) -> State {
        self.state
    }

    /// Everything the current state permits, as one row of [`State::permits`].
    pub const fn permits(&self) -> Permits {
        self.state.permits()
    }

    /// Whether the adapter may call `send`: data already queued may go out. False for ever once
    /// the send side is shut, by [`Action::ShutdownWrite`] or by an error.
    pub const fn may_send(&self) -> bool {
        self.state.permits().send
    }

    /// Whether the application may queue new data: false as soon as it asked to shut the send side.
    pub const fn may_queue(&self) -> bool {
        self.state.permits().queue
    }

    /// Whether the adapter may call `recv`.
    pub const fn may_receive(&self) -> bool {
        self.state.permits().receive
    }

    /// Whether received bytes must be read and thrown away (a lingering close).
    pub const fn must_discard(&self) -> bool {
        self.state.permits().discard
    }

    /// Whether the connection is closed (its [`Action::Close`] may still wait to be polled).
    pub const fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Why the connection closed; `None` until it has.
    pub const fn close_reason(&self) -> Option<CloseReason> {
        self.reason
    }

    /// Whether actions wait to be polled.
    pub const fn has_pending_actions(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The latest time seen.
    pub const fn now(&self) -> Instant {
        self.now
    }

    /// The settings this connection runs with.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    // ---- transitions ---------------------------------------------------------------------------

    /// Applies one input: its step in the transition table (`transition::cell` decides every
    /// one), performed; the connect phase is decided by [`Self::apply_connect_phase`].
    #[inline]
    fn apply(&mut self, input: Input) -> Result<Outcome, Error> {
        let kind = input.kind();
        let (running, deadline) = self.running_deadline();
        let deadline_due = running & (self.now >= deadline);
        let step = transition::step(self.state, input, deadline_due);
        if step.has(Step::CONNECT_PHASE) {
            return self.apply_connect_phase(input);
        }
        if step.has(Step::REFUSED) {
            return Err(if step.has(Step::EMPTY_RECEIVE) {
                Error::EmptyReceive
            } else {
                Error::InvalidTransition {
                    state: self.state,
                    input: kind,
                }
            });
        }
        let reason = if step.has(Step::REASON_OF_ERROR) {
            match input {
                Input::Error(kind) => Some(CloseReason::from_error(kind)),
                _ => step.reason,
            }
        } else {
            step.reason
        };
        Ok(self.perform(step, reason))
    }

    /// What the table cannot decide from the state and the input's kind alone: starting to
    /// connect, an attempt's report and an attempt's deadline.
    #[inline(never)]
    fn apply_connect_phase(&mut self, input: Input) -> Result<Outcome, Error> {
        match (self.state, input) {
            (State::Idle, Input::StartConnect { candidates }) => {
                self.candidates = match u16::try_from(candidates) {
                    Ok(0) => return Err(Error::NoCandidates),
                    Ok(n) => n,
                    Err(_) => return Err(Error::TooManyCandidates),
                };
                Ok(self.begin_attempt(0))
            }
            (State::Connecting, Input::Connected { candidate }) => {
                self.check_attempt(input, candidate)?;
                Ok(self.enter(State::Established))
            }
            (State::Connecting, Input::ConnectFailed { candidate, kind }) => {
                self.check_attempt(input, candidate)?;
                Ok(self.next_attempt(kind))
            }
            // An attempt not yet handed out has not started, so it cannot have timed out:
            // no candidate is ever skipped.
            (State::Connecting, Input::Timeout)
                if self.now >= self.deadline && !self.pending.contains(PendingActions::CONNECT) =>
            {
                Ok(self.next_attempt(IoErrorKind::TimedOut))
            }
            (State::Connecting, Input::Timeout) => Ok(Outcome::Unchanged),
            // The table sends nothing else here.
            _ => Err(Error::InvalidTransition {
                state: self.state,
                input: input.kind(),
            }),
        }
    }

    /// Performs a step of the table: its deadlines, its actions, its reason, its state.
    #[inline]
    fn perform(&mut self, step: Step, reason: Option<CloseReason>) -> Outcome {
        // Each effect is computed whether it is kept or not, so that keeping it can be a
        // conditional move rather than a branch to mispredict.
        let total_deadline = self.now.saturating_add(self.config.linger_total());
        if step.has(Step::STARTS_TOTAL_DEADLINE) {
            self.deadline = total_deadline;
        }
        let idle_lead = self.idle_lead_from_now();
        if step.has(Step::RESTARTS_IDLE_DEADLINE) {
            self.idle_lead = idle_lead;
        }
        self.pending.remove(step.withdraw);
        self.pending.insert(step.queue);
        if step.has(Step::CLOSES) {
            self.reason = reason;
        }
        self.state = step.next;
        if step.has(Step::CHANGED) {
            Outcome::Changed
        } else {
            Outcome::Unchanged
        }
    }

    fn enter(&mut self, next: State) -> Outcome {
        self.perform(transition::enter(self.state, next), None)
    }

    /// The idle deadline started again from now, as its lead on the total deadline. The lead
    /// is at most `linger_total - linger_idle`, which fits in 32 bits like every setting: the
    /// total deadline is the close request plus `linger_total` (or the end of time), and now is
    /// no earlier than the close request.
    #[inline]
    fn idle_lead_from_now(&self) -> u32 {
        let idle_deadline = self.now.saturating_add(self.config.linger_idle());
        let lead = self
            .deadline
            .as_micros()
            .saturating_sub(idle_deadline.as_micros());
        // Cannot fail, as above; the total deadline is the safe reading if it ever did.
        u32::try_from(lead).unwrap_or(0)
    }

    /// Whether a deadline runs in the current state, and which: the attempt's while connecting,
    /// the total linger deadline while flushing before a close, and while lingering or waiting
    /// for the acknowledgement, the one that fires first, the idle deadline or the total one.
    #[inline]
    fn running_deadline(&self) -> (bool, Instant) {
        let running = matches!(
            self.state,
            State::Connecting
                | State::ClosingFlushing
                | State::ClosingFlushingPeerShut
                | State::Lingering
                | State::Acknowledging
        );
        // The idle deadline's lead is zero but while lingering, waiting for the
        // acknowledgement and once closed: it is only set on the way into the first two, and
        // nothing leads from them back to connecting or flushing. So it is taken off the
        // deadline whatever the state, with no branch on the state to mispredict.
        let deadline = self
            .deadline
            .as_micros()
            .saturating_sub(u64::from(self.idle_lead));
        (running, Instant::from_micros(deadline))
    }

    fn finish(&mut self, reason: CloseReason) -> Outcome {
        self.perform(transition::finish(self.state, reason), Some(reason))
    }

    fn begin_attempt(&mut self, candidate: u16) -> Outcome {
        self.candidate = candidate;
        self.deadline = self.now.saturating_add(self.config.connect_timeout());
        self.pending.insert(PendingActions::CONNECT);
        self.enter(State::Connecting)
    }

    fn next_attempt(&mut self, failure: IoErrorKind) -> Outcome {
        match self.candidate.checked_add(1) {
            Some(next) if next < self.candidates => self.begin_attempt(next),
            _ => {
                self.pending.remove(PendingActions::CONNECT);
                self.finish(CloseReason::ConnectFailed(failure))
            }
        }
    }

    /// A connect report must answer the attempt that was handed out.
    fn check_attempt(&self, report: Input, candidate: usize) -> Result<(), Error> {
        if self.pending.contains(PendingActions::CONNECT) {
            return Err(Error::InvalidTransition {
                state: self.state,
                input: report.kind(),
            });
        }
        if candidate != usize::from(self.candidate) {
            return Err(Error::NotCurrentCandidate {
                current: usize::from(self.candidate),
                reported: candidate,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
