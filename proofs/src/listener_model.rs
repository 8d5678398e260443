//! The reference model of a listener: counters, flags and a queue, written from the contract.
//! Like the connection's model, it decodes the operations and moves its clock itself.

use socket_lifecycle::{ListenerAction, ListenerConfig};

use crate::prediction::{Answer, Prediction, Refusal, Time, give_input};
use crate::queue::Queue;
use crate::{Kind, ListenerOp};

/// A listener as the contract describes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerModel {
    /// The configured backoff, in microseconds.
    backoff_min: u64,
    backoff_max: u64,
    time: Time,
    open: u32,
    /// Accepting is paused until then.
    paused_until: Option<u64>,
    /// The pause after the next failed accept.
    next_backoff: u64,
    stopped: bool,
    drain_deadline: Option<u64>,
    aborted: bool,
    drained: bool,
    pending: Queue<ListenerAction>,
}

impl ListenerModel {
    /// A listening listener at time zero, configured as `config`.
    pub fn new(config: &ListenerConfig) -> Self {
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self {
            backoff_min: micros(config.accept_backoff_min()),
            backoff_max: micros(config.accept_backoff_max()),
            time: Time::default(),
            open: 0,
            paused_until: None,
            next_backoff: micros(config.accept_backoff_min()),
            stopped: false,
            drain_deadline: None,
            aborted: false,
            drained: false,
            pending: Queue::new(),
        }
    }

    /// The latest time the listener has seen, in microseconds.
    pub fn now(&self) -> u64 {
        self.time.now
    }

    /// What `open_connections` must say.
    pub fn open(&self) -> u32 {
        self.open
    }

    /// What `is_drained` must say.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// What `may_accept` must say.
    pub fn may_accept(&self) -> bool {
        !self.stopped && self.paused_until.is_none()
    }

    /// What `poll_timeout` must say, in microseconds.
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

    /// Applies one operation and predicts what the core must answer or hand out.
    pub fn apply(&mut self, op: ListenerOp) -> Prediction<ListenerAction> {
        if op == ListenerOp::PollAction {
            // The count in an abort is the one at the time it is handed out.
            Prediction::polled(self.pending.pop_front().map(|action| match action {
                ListenerAction::AbortConnections { .. } => {
                    ListenerAction::AbortConnections { open: self.open }
                }
                other => other,
            }))
        } else if let Some(to) = op.clock_move() {
            let deadline = self.next_deadline();
            self.time.moved(to, deadline)
        } else {
            give_input(self, |model| &mut model.time, |model| model.input(op))
        }
    }

    fn input(&mut self, op: ListenerOp) -> Answer {
        use Answer::{Changed, Unchanged};
        const MISUSE: Answer = Answer::Refused(Refusal::Misuse);
        match op {
            ListenerOp::Accepted if self.may_accept() => {
                let Some(open) = self.open.checked_add(1) else {
                    return Answer::Refused(Refusal::BadValue);
                };
                self.open = open;
                // A success ends a run of failures: the next failure pauses the shortest time.
                self.next_backoff = self.backoff_min;
                Changed
            }
            ListenerOp::Accepted => MISUSE,
            ListenerOp::AcceptFailed(_) if self.stopped => Unchanged,
            ListenerOp::AcceptFailed(_) if self.paused_until.is_some() => MISUSE,
            // A connection reset before it was accepted is that connection's failure, not the
            // listener's: accepting goes on at once.
            ListenerOp::AcceptFailed(Kind::Reset) => Unchanged,
            // Anything else (a descriptor limit among them) pauses accepting, each time twice as
            // long, up to the longest pause.
            ListenerOp::AcceptFailed(_) => {
                self.paused_until = Some(self.time.now.saturating_add(self.next_backoff));
                self.next_backoff = self.next_backoff.saturating_mul(2).min(self.backoff_max);
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
                self.drain_deadline = Some(self.time.now.saturating_add(micros.into()));
                self.drained = self.open == 0;
                Changed
            }
            ListenerOp::Timeout => match (self.paused_until, self.drain_deadline) {
                (Some(until), _) if !self.stopped && self.time.now >= until => {
                    self.paused_until = None;
                    Changed
                }
                (_, Some(deadline))
                    if !self.aborted && !self.drained && self.time.now >= deadline =>
                {
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
            | ListenerOp::ToDeadline { .. } => unreachable!("not an input"),
        }
    }
}
