//! Replays [`ListenerOp`]s against a [`Listener`] under a [`ListenerMonitor`].

use std::time::Duration;

use socket_lifecycle::{
    Instant, Listener, ListenerAction, ListenerConfig, ListenerError, ListenerInput, ListenerState,
    Outcome,
};

use crate::{ListenerMonitor, ListenerOp, Violation};

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
        match op {
            ListenerOp::PollAction => {
                action = self.listener.poll_action();
                if let Some(action) = action {
                    self.monitor.on_action(&self.listener, action)?;
                }
            }
            ListenerOp::Wait { micros } => {
                self.clock = self
                    .clock
                    .saturating_add(Duration::from_micros(micros.into()));
            }
            ListenerOp::Rewind { micros } => {
                self.clock =
                    Instant::from_micros(self.clock.as_micros().saturating_sub(micros.into()));
            }
            ListenerOp::ToDeadline { offset } => {
                if let Some(deadline) = self.listener.poll_timeout() {
                    let micros = deadline.as_micros().saturating_add_signed(offset.into());
                    self.clock = Instant::from_micros(micros);
                }
            }
            _ => {
                if let Some(input) = op.input() {
                    let before = self.listener.clone();
                    let outcome = self.listener.handle(self.clock, input);
                    self.monitor
                        .on_input(&before, &self.listener, self.clock, input, outcome)?;
                    result = Some(outcome);
                }
            }
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

    /// The listener under test.
    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// The time the next input is given at.
    pub fn clock(&self) -> Instant {
        self.clock
    }
}
