//! Replays [`ListenerOp`]s against a [`Listener`] under a [`ListenerMonitor`] and beside a
//! [`ListenerModel`]: every step must keep the rules and agree with the model exactly.

use socket_lifecycle::{
    Instant, Listener, ListenerAction, ListenerConfig, ListenerError, ListenerInput, ListenerState,
    Outcome,
};

use crate::connection_harness::agree;
use crate::prediction::{Answer, Prediction, Refusal};
use crate::{Harness, ListenerModel, ListenerMonitor, ListenerOp, Violation};

/// What one operation did, as an observer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerStep {
    /// The state before the operation.
    pub from: ListenerState,
    /// The state after it.
    pub to: ListenerState,
    /// The input, if the operation was one.
    pub input: Option<ListenerInput>,
    /// The outcome, for an input.
    pub result: Option<Result<Outcome, ListenerError>>,
    /// The action handed out, for a poll.
    pub action: Option<ListenerAction>,
    /// The next deadline after the operation.
    pub timeout: Option<Instant>,
}

/// A listener, its monitor, its reference model and the clock its inputs are given at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerHarness {
    listener: Listener,
    monitor: ListenerMonitor,
    model: ListenerModel,
    clock: Instant,
}

impl ListenerHarness {
    /// A listening listener at time zero.
    pub fn new(config: ListenerConfig) -> Self {
        Self {
            listener: Listener::new(Instant::ZERO, config),
            monitor: ListenerMonitor::new(),
            model: ListenerModel::new(&config),
            clock: Instant::ZERO,
        }
    }

    /// Applies one operation, checks every rule, and checks that the listener agrees with the
    /// reference model on everything an observer sees.
    ///
    /// # Errors
    /// The first rule the step broke.
    pub fn step(&mut self, op: ListenerOp) -> Result<ListenerStep, Violation> {
        let predicted = self.model.apply(op);
        let before = op.input().map(|input| (input, self.listener.clone()));
        let step = self.step_machine(op);
        if let Some(action) = step.action {
            self.monitor.on_action(&self.listener, action)?;
        }
        if let (Some((input, before)), Some(outcome)) = (before, step.result) {
            self.monitor
                .on_input(&before, &self.listener, self.clock, input, outcome)?;
        }
        self.monitor.on_state(&self.listener)?;
        self.agree_with_model(op, step.result.as_ref(), step.action, predicted)?;
        Ok(step)
    }

    /// Applies one operation to the listener alone, checking nothing (see
    /// [`ConnectionHarness::step_machine`](crate::ConnectionHarness::step_machine)).
    pub fn step_machine(&mut self, op: ListenerOp) -> ListenerStep {
        let from = self.listener.state();
        let mut result = None;
        let mut action = None;
        if op == ListenerOp::PollAction {
            action = self.listener.poll_action();
        } else if let Some(clock) = op.clock_move() {
            let deadline = self.listener.poll_timeout().map(Instant::as_micros);
            self.clock = Instant::from_micros(clock.moved(self.clock.as_micros(), deadline));
        } else if let Some(input) = op.input() {
            result = Some(self.listener.handle(self.clock, input));
        }
        ListenerStep {
            from,
            to: self.listener.state(),
            input: op.input(),
            result,
            action,
            timeout: self.listener.poll_timeout(),
        }
    }

    /// The listener against the model's prediction for `op` and against its view afterwards.
    fn agree_with_model(
        &self,
        op: ListenerOp,
        result: Option<&Result<Outcome, ListenerError>>,
        action: Option<ListenerAction>,
        predicted: Prediction<ListenerAction>,
    ) -> Result<(), Violation> {
        if let (Some(result), Some(expected)) = (result, predicted.answer) {
            let answer = match result {
                Ok(Outcome::Changed) => Answer::Changed,
                Ok(Outcome::Unchanged) => Answer::Unchanged,
                Err(ListenerError::InvalidTransition { .. }) => Answer::Refused(Refusal::Misuse),
                Err(ListenerError::NoOpenConnection | ListenerError::TooManyConnections) => {
                    Answer::Refused(Refusal::BadValue)
                }
                Err(other) => {
                    return Err(Violation::new(
                        "L1",
                        format!("a refusal the reference model does not know: {other:?}"),
                    ));
                }
            };
            let rule = match op {
                ListenerOp::Accepted | ListenerOp::AcceptFailed(_) => "L1",
                ListenerOp::ConnectionClosed | ListenerOp::Drain { .. } => "L3",
                _ => "L2",
            };
            agree(
                rule,
                || format!("the answer to {op:?} ({result:?})"),
                answer,
                expected,
            )?;
        }
        if op == ListenerOp::PollAction {
            agree(
                "L2",
                || "the action handed out".into(),
                action,
                predicted.polled,
            )?;
        }
        let (listener, model) = (&self.listener, &self.model);
        agree(
            "C11",
            || "the time".into(),
            listener.now().as_micros(),
            model.now(),
        )?;
        agree(
            "L1",
            || "may_accept".into(),
            listener.may_accept(),
            model.may_accept(),
        )?;
        agree(
            "L3",
            || "the open connections".into(),
            listener.open_connections(),
            model.open(),
        )?;
        agree(
            "L3",
            || "is_drained".into(),
            listener.is_drained(),
            model.drained(),
        )?;
        agree(
            if listener.state() == ListenerState::Paused {
                "L1"
            } else {
                "L3"
            },
            || "the next deadline".into(),
            listener.poll_timeout().map(Instant::as_micros),
            model.next_deadline(),
        )
    }

    /// L3 from here: a drain (of 4 microseconds) ends with the listener drained within `rounds`
    /// rounds of "perform every action; if told to abort, report every connection closed; else
    /// jump to the next deadline and fire it".
    ///
    /// # Errors
    /// An L3 violation, or the first rule a step broke on the way.
    pub fn check_drain_ends(&self, rounds: usize) -> Result<(), Violation> {
        let mut draining = self.clone();
        draining.step(ListenerOp::Drain { micros: 4 })?;
        for _ in 0..rounds {
            while draining.listener.has_pending_actions() {
                draining.step(ListenerOp::PollAction)?;
            }
            if draining.listener.is_drained() {
                return Ok(());
            }
            if draining.listener.state() == ListenerState::Aborting {
                // The adapter aborts each remaining connection; each reports its close.
                for _ in 0..draining.listener.open_connections() {
                    draining.step(ListenerOp::ConnectionClosed)?;
                }
            } else {
                draining.step(ListenerOp::ToDeadline { offset: 0 })?;
                draining.step(ListenerOp::Timeout)?;
            }
        }
        Err(Violation::new(
            "L3",
            format!("a drain from {} never ended", self.listener.state()),
        ))
    }

    /// The listener under test.
    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// The time the next input is given at.
    pub fn clock(&self) -> Instant {
        self.clock
    }
}

impl Harness for ListenerHarness {
    type Op = ListenerOp;
    type Step = ListenerStep;

    fn step(&mut self, op: ListenerOp) -> Result<ListenerStep, Violation> {
        ListenerHarness::step(self, op)
    }

    fn step_machine(&mut self, op: ListenerOp) -> ListenerStep {
        ListenerHarness::step_machine(self, op)
    }

    fn same_machine(&self, other: &Self) -> bool {
        self.listener == other.listener && self.clock == other.clock
    }
}
