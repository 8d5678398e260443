//! Replays [`ListenerOp`]s against a [`Listener`] under a [`ListenerMonitor`].

use socket_lifecycle::{
    Instant, Listener, ListenerAction, ListenerConfig, ListenerError, ListenerInput, ListenerState,
    Outcome,
};

use crate::{Harness, ListenerMonitor, ListenerOp, Violation};

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

/// A listener, its monitor and the clock its inputs are given at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerHarness {
    listener: Listener,
    monitor: ListenerMonitor,
    clock: Instant,
}

impl ListenerHarness {
    /// A listening listener at time zero.
    pub fn new(config: ListenerConfig) -> Self {
        Self {
            listener: Listener::new(Instant::ZERO, config),
            monitor: ListenerMonitor::new(),
            clock: Instant::ZERO,
        }
    }

    /// Applies one operation and checks every rule.
    ///
    /// # Errors
    /// The first rule the step broke.
    pub fn step(&mut self, op: ListenerOp) -> Result<ListenerStep, Violation> {
        let from = self.listener.state();
        let mut result = None;
        let mut action = None;
        if op == ListenerOp::PollAction {
            action = self.listener.poll_action();
            if let Some(action) = action {
                self.monitor.on_action(&self.listener, action)?;
            }
        } else if let Some(clock) = op.clock_move() {
            let deadline = self.listener.poll_timeout().map(Instant::as_micros);
            self.clock = Instant::from_micros(clock.moved(self.clock.as_micros(), deadline));
        } else if let Some(input) = op.input() {
            let before = self.listener.clone();
            let outcome = self.listener.handle(self.clock, input);
            self.monitor
                .on_input(&before, &self.listener, self.clock, input, outcome)?;
            result = Some(outcome);
        }
        self.monitor.on_state(&self.listener)?;
        Ok(ListenerStep {
            from,
            to: self.listener.state(),
            input: op.input(),
            result,
            action,
            timeout: self.listener.poll_timeout(),
        })
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
}
