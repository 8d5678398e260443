//! The reference model of a listener: counters, flags and a queue, written from the contract.

use std::collections::VecDeque;

use proofs::{Kind, ListenerOp};
use socket_lifecycle::ListenerAction;

use super::connection::{Answer, Refusal};

/// Backoff of the model's configuration, in microseconds.
pub const BACKOFF_MIN: u64 = 10;
pub const BACKOFF_MAX: u64 = 35;

#[derive(Clone, Debug)]
pub struct ListenerModel {
    pub clock: u64,
    pub now: u64,
    pub open: u32,
    /// Accepting is paused until then.
    pub paused_until: Option<u64>,
    pub next_backoff: u64,
    pub stopped: bool,
    pub drain_deadline: Option<u64>,
    pub aborted: bool,
    pub drained: bool,
    pub pending: VecDeque<ListenerAction>,
    pub answer: Option<Answer>,
    pub polled: Option<ListenerAction>,
}

impl ListenerModel {
    pub fn new() -> Self {
        Self {
            clock: 0,
            now: 0,
            open: 0,
            paused_until: None,
            next_backoff: BACKOFF_MIN,
            stopped: false,
            drain_deadline: None,
            aborted: false,
            drained: false,
            pending: VecDeque::new(),
            answer: None,
            polled: None,
        }
    }

    pub fn may_accept(&self) -> bool {
        !self.stopped && self.paused_until.is_none()
    }

    pub fn next_deadline(&self) -> Option<u64> {
        if self.stopped {
            self.drain_deadline
                .filter(|_| !self.aborted && !self.drained)
        } else {
            self.paused_until
        }
    }

    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.paused_until = None;
            self.pending.push_back(ListenerAction::StopAccepting);
            self.pending.push_back(ListenerAction::Close);
        }
    }

    pub fn apply(mut self, op: ListenerOp) -> Self {
        self.answer = None;
        self.polled = None;
        match op {
            ListenerOp::PollAction => {
                // The count in an abort is the one at the time it is handed out.
                self.polled = self.pending.pop_front().map(|action| match action {
                    ListenerAction::AbortConnections { .. } => {
                        ListenerAction::AbortConnections { open: self.open }
                    }
                    other => other,
                });
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

    fn input(&mut self, op: ListenerOp) -> Answer {
        use Answer::{Changed, Unchanged};
        const MISUSE: Answer = Answer::Refused(Refusal::Misuse);
        match op {
            ListenerOp::Accepted if self.may_accept() => {
                self.open += 1;
                self.next_backoff = BACKOFF_MIN;
                Changed
            }
            ListenerOp::Accepted => MISUSE,
            ListenerOp::AcceptFailed(_) if self.stopped => Unchanged,
            ListenerOp::AcceptFailed(_) if self.paused_until.is_some() => MISUSE,
            ListenerOp::AcceptFailed(Kind::Reset) => Unchanged,
            ListenerOp::AcceptFailed(_) => {
                self.paused_until = Some(self.now + self.next_backoff);
                self.next_backoff = (self.next_backoff * 2).min(BACKOFF_MAX);
                Changed
            }
            ListenerOp::ConnectionClosed if self.drained => MISUSE,
            ListenerOp::ConnectionClosed if self.open == 0 => Answer::Refused(Refusal::BadValue),
            ListenerOp::ConnectionClosed => {
                self.open -= 1;
                if self.open == 0 && self.drain_deadline.is_some() {
                    self.drained = true;
                }
                Changed
            }
            ListenerOp::Stop if self.stopped => Unchanged,
            ListenerOp::Stop => {
                self.stop();
                Changed
            }
            ListenerOp::Drain { .. } if self.drain_deadline.is_some() => Unchanged,
            ListenerOp::Drain { micros } => {
                self.stop();
                self.drain_deadline = Some(self.now + u64::from(micros));
                self.drained = self.open == 0;
                Changed
            }
            ListenerOp::Timeout => match (self.paused_until, self.drain_deadline) {
                (Some(until), _) if !self.stopped && self.now >= until => {
                    self.paused_until = None;
                    Changed
                }
                (_, Some(deadline)) if !self.aborted && !self.drained && self.now >= deadline => {
                    self.aborted = true;
                    self.pending
                        .push_back(ListenerAction::AbortConnections { open: 0 });
                    Changed
                }
                _ => Unchanged,
            },
            ListenerOp::PollAction
            | ListenerOp::Wait { .. }
            | ListenerOp::Rewind { .. }
            | ListenerOp::ToDeadline { .. } => {
                unreachable!("not an input")
            }
        }
    }
}
