//! The reference model of one connection: a handful of flags, times and a queue, written from
//! the contract rather than from the core's state table. For every operation it predicts what an
//! observer of the core must see: whether an input is refused, whether it changes anything, the
//! action a poll hands out, the permissions, the next deadline and the close reason.
//!
//! It calls nothing of the core but its public vocabulary (`Action`, `CloseReason`) and the
//! configuration's getters: it decodes the operations itself, moves its own clock, and maps
//! error kinds to close reasons by its own table, so that a mistake in the core is not shared.

use socket_lifecycle::{Action, CloseReason, Config, IoErrorKind};

use crate::prediction::{Answer, Prediction, Refusal, Time, give_input};
use crate::queue::Queue;
use crate::{ConnectionOp, Kind};

/// The largest candidate count a connect accepts.
const MAX_CANDIDATES: u32 = 65_535;

/// A connection as the contract describes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionModel {
    /// The configured durations, in microseconds.
    connect_timeout: u64,
    linger_total: u64,
    linger_idle: u64,
    time: Time,
    client: bool,
    started: bool,
    candidates: u32,
    attempt: u32,
    attempt_handed_out: bool,
    attempt_deadline: u64,
    connected: bool,
    /// The application is done sending (`shutdown_send` or `close`).
    done_sending: bool,
    /// Our end of stream was decided.
    fin: bool,
    peer_fin: bool,
    close_requested_at: Option<u64>,
    idle_deadline: u64,
    reason: Option<CloseReason>,
    pending: Queue<Action>,
}

/// Microseconds of a configured duration (whole by construction: the setters store microseconds).
fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn io_kind(kind: Kind) -> IoErrorKind {
    match kind {
        Kind::Reset => IoErrorKind::Reset,
        Kind::BrokenPipe => IoErrorKind::BrokenPipe,
        Kind::TimedOut => IoErrorKind::TimedOut,
        Kind::Refused => IoErrorKind::Refused,
        Kind::Other => IoErrorKind::Other,
    }
}

/// The close reason of an error reported on an open connection (C7): a reset is the peer's, any
/// other error is an error of its kind.
fn error_reason(kind: Kind) -> CloseReason {
    match kind {
        Kind::Reset => CloseReason::PeerReset,
        other => CloseReason::Error(io_kind(other)),
    }
}

impl ConnectionModel {
    /// A client connection (`client`) or an accepted one, at time zero, configured as `config`.
    pub fn new(client: bool, config: &Config) -> Self {
        Self {
            connect_timeout: micros(config.connect_timeout()),
            linger_total: micros(config.linger_total()),
            linger_idle: micros(config.linger_idle()),
            time: Time::default(),
            client,
            started: false,
            candidates: 0,
            attempt: 0,
            attempt_handed_out: false,
            attempt_deadline: 0,
            connected: !client,
            done_sending: false,
            fin: false,
            peer_fin: false,
            close_requested_at: None,
            idle_deadline: 0,
            reason: None,
            pending: Queue::new(),
        }
    }

    /// Whether this is a client connection.
    pub fn client(&self) -> bool {
        self.client
    }

    /// The latest time the connection has seen, in microseconds.
    pub fn now(&self) -> u64 {
        self.time.now
    }

    /// Whether the connection is established (accepted, or connected).
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Whether the connection is closed, and why.
    pub fn reason(&self) -> Option<CloseReason> {
        self.reason
    }

    /// Whether the connection is closed.
    pub fn closed(&self) -> bool {
        self.reason.is_some()
    }

    /// Whether the application is done sending.
    pub fn done_sending(&self) -> bool {
        self.done_sending
    }

    /// Whether our end of stream was decided.
    pub fn fin(&self) -> bool {
        self.fin
    }

    /// Whether the peer's end of stream came.
    pub fn peer_fin(&self) -> bool {
        self.peer_fin
    }

    /// Whether a close was asked for.
    pub fn close_requested(&self) -> bool {
        self.close_requested_at.is_some()
    }

    /// The candidate count of the connect under way, or zero.
    pub fn candidates(&self) -> u32 {
        if self.started && !self.connected && !self.closed() {
            self.candidates
        } else {
            0
        }
    }

    /// The index of the connect attempt under way.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Connect attempts still to come after the one under way: each may take a round of time
    /// alone before the connect gives up.
    pub fn attempts_left(&self) -> usize {
        let left = self
            .candidates()
            .saturating_sub(self.attempt.saturating_add(1));
        usize::try_from(left).unwrap_or(usize::MAX)
    }

    /// Whether actions wait to be handed out.
    pub fn has_pending_actions(&self) -> bool {
        !self.pending.is_empty()
    }

    fn live(&self) -> bool {
        self.connected && !self.closed()
    }

    /// What `may_send` must say.
    pub fn may_send(&self) -> bool {
        self.live() && !self.fin
    }

    /// What `may_queue` must say.
    pub fn may_queue(&self) -> bool {
        self.live() && !self.done_sending
    }

    /// What `may_receive` must say.
    pub fn may_receive(&self) -> bool {
        self.live() && !self.peer_fin
    }

    /// What `must_discard` must say.
    pub fn must_discard(&self) -> bool {
        self.may_receive() && self.close_requested_at.is_some()
    }

    fn total_deadline(&self) -> Option<u64> {
        self.close_requested_at
            .map(|at| at.saturating_add(self.linger_total))
    }

    /// Lingering: our end of stream is out, the peer's is not, and a close was asked for.
    fn lingering(&self) -> bool {
        self.close_requested_at.is_some() && self.fin && !self.peer_fin && !self.closed()
    }

    /// Both ends of stream are through and a close was asked for: all that is missing is the
    /// peer's acknowledgement of everything we sent (C13).
    pub fn acknowledging(&self) -> bool {
        self.close_requested_at.is_some() && self.fin && self.peer_fin && !self.closed()
    }

    /// What `poll_timeout` must say, in microseconds.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.closed() {
            None
        } else if self.started && !self.connected {
            Some(self.attempt_deadline)
        } else if self.lingering() || self.acknowledging() {
            self.total_deadline()
                .map(|total| total.min(self.idle_deadline))
        } else {
            self.total_deadline()
        }
    }

    fn finish(&mut self, reason: CloseReason, reset: bool) -> Answer {
        self.pending.retain(|a| {
            !matches!(a, Action::Connect { .. }) && (!reset || *a != Action::ShutdownWrite)
        });
        if reset {
            self.pending.push_back(Action::SetLingerZero);
        }
        self.pending.push_back(Action::Close);
        self.reason = Some(reason);
        Answer::Changed
    }

    /// Each attempt gets a full connect timeout of its own, from the moment it starts (C12).
    fn start_attempt(&mut self, index: u32) -> Answer {
        self.attempt = index;
        self.attempt_handed_out = false;
        self.attempt_deadline = self.time.now.saturating_add(self.connect_timeout);
        self.pending.push_back(Action::Connect {
            candidate: index as usize,
        });
        Answer::Changed
    }

    fn attempt_failed(&mut self, kind: IoErrorKind) -> Answer {
        if self.attempt + 1 < self.candidates {
            self.start_attempt(self.attempt + 1)
        } else {
            self.finish(CloseReason::ConnectFailed(kind), false)
        }
    }

    /// Sends our end of stream once the application is done and the flush came. If a close was
    /// asked for, the wait for the peer starts its idle deadline.
    fn send_fin(&mut self) -> Answer {
        self.fin = true;
        self.pending.push_back(Action::ShutdownWrite);
        if self.close_requested_at.is_some() {
            self.idle_deadline = self.time.now.saturating_add(self.linger_idle);
        }
        Answer::Changed
    }

    /// Applies one operation and predicts what the core must answer or hand out.
    pub fn apply(&mut self, op: ConnectionOp) -> Prediction<Action> {
        if op == ConnectionOp::PollAction {
            let polled = self.pending.pop_front();
            self.attempt_handed_out |= matches!(polled, Some(Action::Connect { .. }));
            Prediction::polled(polled)
        } else if let Some(to) = op.clock_move() {
            let deadline = self.next_deadline();
            self.time.moved(to, deadline)
        } else {
            give_input(self, |model| &mut model.time, |model| model.input(op))
        }
    }

    fn input(&mut self, op: ConnectionOp) -> Answer {
        use Answer::Unchanged;
        use ConnectionOp as Op;
        const MISUSE: Answer = Answer::Refused(Refusal::Misuse);
        const BAD_VALUE: Answer = Answer::Refused(Refusal::BadValue);
        if self.closed() {
            return match op {
                Op::ShutdownSend
                | Op::Close
                | Op::Abort
                | Op::Abandon
                | Op::AbortForDrain
                | Op::Timeout => Unchanged,
                _ => MISUSE,
            };
        }
        let connecting = self.started && !self.connected;
        match op {
            Op::Abort => self.finish(CloseReason::Aborted, true),
            // The drain's deadline resets what is still open, and says so (L3).
            Op::AbortForDrain => self.finish(CloseReason::DrainAborted, true),
            // A drop cuts the stream off unless the application was done sending (A1); once it
            // was, the drop is a close, below.
            Op::Abandon if !self.connected || !self.done_sending => {
                self.finish(CloseReason::Abandoned, true)
            }
            Op::Close if !self.connected => self.finish(CloseReason::Aborted, true),
            Op::StartConnect { candidates } => {
                if !self.client || self.started {
                    return MISUSE;
                }
                if candidates == 0 || candidates > MAX_CANDIDATES {
                    return BAD_VALUE;
                }
                self.started = true;
                self.candidates = candidates;
                self.start_attempt(0)
            }
            Op::Connected { candidate } | Op::ConnectFailed { candidate, .. } => {
                if !connecting || !self.attempt_handed_out {
                    return MISUSE;
                }
                if candidate != self.attempt {
                    return Answer::Refused(Refusal::NotCurrentCandidate);
                }
                match op {
                    Op::ConnectFailed { kind, .. } => self.attempt_failed(io_kind(kind)),
                    _ => {
                        self.connected = true;
                        Answer::Changed
                    }
                }
            }
            Op::Timeout if connecting => {
                if self.attempt_handed_out && self.time.now >= self.attempt_deadline {
                    self.attempt_failed(IoErrorKind::TimedOut)
                } else {
                    Unchanged
                }
            }
            Op::Timeout => match self.total_deadline() {
                Some(total) if !self.fin && self.time.now >= total => {
                    self.finish(CloseReason::LingerTimeout, true)
                }
                // Waiting for the peer, its end of stream or its acknowledgement, past a deadline:
                // everything we sent went out ahead of our end of stream, so no reset.
                Some(total)
                    if (self.lingering() || self.acknowledging())
                        && (self.time.now >= total || self.time.now >= self.idle_deadline) =>
                {
                    self.finish(CloseReason::LingerTimeout, false)
                }
                _ => Unchanged,
            },
            _ if !self.connected => MISUSE,
            Op::Error(kind) => {
                self.pending.retain(|a| *a != Action::ShutdownWrite);
                self.finish(error_reason(kind), false)
            }
            // Only a close waiting for it takes the peer's acknowledgement, and only that makes
            // the close graceful (C13).
            Op::Acknowledged if self.acknowledging() => self.finish(CloseReason::Graceful, false),
            Op::Acknowledged => MISUSE,
            Op::ShutdownSend => {
                if self.done_sending {
                    Unchanged
                } else {
                    self.done_sending = true;
                    Answer::Changed
                }
            }
            Op::Close | Op::Abandon => {
                if self.close_requested_at.is_some() {
                    return Unchanged;
                }
                self.close_requested_at = Some(self.time.now);
                self.done_sending = true;
                if self.fin {
                    // Lingering for the peer's end of stream, or, once it came, for its
                    // acknowledgement of ours.
                    self.idle_deadline = self.time.now.saturating_add(self.linger_idle);
                }
                Answer::Changed
            }
            Op::Flushed => {
                if self.done_sending && !self.fin {
                    self.send_fin()
                } else {
                    Unchanged
                }
            }
            Op::EndOfStream => {
                if self.peer_fin {
                    return Unchanged;
                }
                self.peer_fin = true;
                if self.acknowledging() {
                    // The wait for the acknowledgement of ours has an idle deadline of its own.
                    self.idle_deadline = self.time.now.saturating_add(self.linger_idle);
                }
                Answer::Changed
            }
            Op::Received { len } => {
                // Nothing can follow the peer's end of stream, and `recv` returning 0 is that end.
                if self.peer_fin {
                    MISUSE
                } else if len == 0 {
                    BAD_VALUE
                } else if self.lingering() {
                    self.idle_deadline = self.time.now.saturating_add(self.linger_idle);
                    Answer::Changed
                } else {
                    Unchanged
                }
            }
            Op::PollAction | Op::Wait { .. } | Op::Rewind { .. } | Op::ToDeadline { .. } => {
                unreachable!("not an input")
            }
        }
    }
}
