//! The reference model of one connection: a handful of flags, times and a queue, written from
//! the contract rather than from the core's state table. It predicts, for every operation, what
//! an observer of the core must see: whether an input is refused, whether it changes anything,
//! the actions handed out, the permissions, the next deadline and the close reason.

use std::collections::VecDeque;

use proofs::ConnectionOp;
use socket_lifecycle::{Action, CloseReason, IoErrorKind};

/// Durations of the model's configuration, in microseconds.
pub const CONNECT_TIMEOUT: u64 = 30;
pub const LINGER_TOTAL: u64 = 100;
pub const LINGER_IDLE: u64 = 40;

/// What the model expects an input to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Changed,
    Unchanged,
    Refused(Refusal),
}

/// Why an input is refused, as far as the model tells refusals apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The input does not fit where the machine is.
    Misuse,
    /// A bad value: no candidates, too many, an empty receive, a close never counted open.
    BadValue,
    /// A report for a connect attempt other than the one in flight.
    NotCurrentCandidate,
}

#[derive(Clone, Debug, Default)]
pub struct ConnectionModel {
    /// The clock inputs are given at, and the latest time the connection has seen.
    pub clock: u64,
    pub now: u64,
    pub client: bool,
    pub started: bool,
    pub candidates: u32,
    pub attempt: u32,
    pub attempt_handed_out: bool,
    pub attempt_deadline: u64,
    pub connected: bool,
    /// The application is done sending (`shutdown_send` or `close`).
    pub done_sending: bool,
    /// Our end of stream was decided.
    pub fin: bool,
    pub peer_fin: bool,
    pub close_requested_at: Option<u64>,
    pub idle_deadline: u64,
    pub reason: Option<CloseReason>,
    pub pending: VecDeque<Action>,
    /// What the last operation should have answered, if it was an input.
    pub answer: Option<Answer>,
    /// What the last poll should have handed out.
    pub polled: Option<Action>,
}

impl ConnectionModel {
    pub fn new(client: bool) -> Self {
        Self {
            client,
            connected: !client,
            ..Self::default()
        }
    }

    pub fn closed(&self) -> bool {
        self.reason.is_some()
    }

    fn live(&self) -> bool {
        self.connected && !self.closed()
    }

    pub fn may_send(&self) -> bool {
        self.live() && !self.fin
    }

    pub fn may_queue(&self) -> bool {
        self.live() && !self.done_sending
    }

    pub fn may_receive(&self) -> bool {
        self.live() && !self.peer_fin
    }

    pub fn must_discard(&self) -> bool {
        self.may_receive() && self.close_requested_at.is_some()
    }

    fn total_deadline(&self) -> Option<u64> {
        self.close_requested_at.map(|at| at + LINGER_TOTAL)
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

    fn start_attempt(&mut self, index: u32) -> Answer {
        self.attempt = index;
        self.attempt_handed_out = false;
        self.attempt_deadline = self.now + CONNECT_TIMEOUT;
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

    /// Sends our end of stream once the application is done and the flush came. If the peer's
    /// came already, the close now waits for the peer's acknowledgement (C13).
    fn send_fin(&mut self) -> Answer {
        self.fin = true;
        self.pending.push_back(Action::ShutdownWrite);
        if self.close_requested_at.is_some() {
            self.idle_deadline = self.now + LINGER_IDLE;
        }
        Answer::Changed
    }

    pub fn apply(mut self, op: ConnectionOp) -> Self {
        self.answer = None;
        self.polled = None;
        match op {
            ConnectionOp::PollAction => {
                self.polled = self.pending.pop_front();
                if let Some(Action::Connect { .. }) = self.polled {
                    self.attempt_handed_out = true;
                }
            }
            op if op.clock_move().is_some() => {
                if let Some(clock) = op.clock_move() {
                    self.clock = clock.moved(self.clock, self.next_deadline());
                }
            }
            input => {
                let before = self.clone();
                self.now = self.now.max(self.clock);
                let answer = self.input(input);
                if matches!(answer, Answer::Refused(_)) {
                    self = before;
                }
                self.answer = Some(answer);
            }
        }
        self
    }

    fn input(&mut self, op: ConnectionOp) -> Answer {
        use Answer::Unchanged;
        const MISUSE: Answer = Answer::Refused(Refusal::Misuse);
        const BAD_VALUE: Answer = Answer::Refused(Refusal::BadValue);
        use ConnectionOp as Op;
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
                if candidates == 0 || candidates > u32::from(u16::MAX) {
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
                    Op::ConnectFailed { kind, .. } => self.attempt_failed(kind.into()),
                    _ => {
                        self.connected = true;
                        Answer::Changed
                    }
                }
            }
            Op::Timeout if connecting => {
                if self.attempt_handed_out && self.now >= self.attempt_deadline {
                    self.attempt_failed(IoErrorKind::TimedOut)
                } else {
                    Unchanged
                }
            }
            Op::Timeout => match self.total_deadline() {
                Some(total) if !self.fin && self.now >= total => {
                    self.finish(CloseReason::LingerTimeout, true)
                }
                // Waiting for the peer, its end of stream or its acknowledgement, past a deadline:
                // everything we sent went out ahead of our end of stream, so no reset.
                Some(total)
                    if (self.lingering() || self.acknowledging())
                        && (self.now >= total || self.now >= self.idle_deadline) =>
                {
                    self.finish(CloseReason::LingerTimeout, false)
                }
                _ => Unchanged,
            },
            _ if !self.connected => MISUSE,
            Op::Error(kind) => {
                self.pending.retain(|a| *a != Action::ShutdownWrite);
                let kind = IoErrorKind::from(kind);
                self.finish(CloseReason::from_error(kind), false)
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
                self.close_requested_at = Some(self.now);
                self.done_sending = true;
                if self.fin {
                    // Lingering for the peer's end of stream, or, once it came, for its
                    // acknowledgement of ours.
                    self.idle_deadline = self.now + LINGER_IDLE;
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
                    self.idle_deadline = self.now + LINGER_IDLE;
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
                    self.idle_deadline = self.now + LINGER_IDLE;
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
