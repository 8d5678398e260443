//! Replays [`ConnectionOp`]s against a [`Lifecycle`] under a [`ConnectionMonitor`].

use std::time::Duration;

use socket_lifecycle::{Action, Config, Error, InputKind, Instant, Lifecycle, Outcome, State};

use crate::{ConnectionMonitor, ConnectionOp, Violation};

/// What one operation did, as an observer sees it: two runs of the same operations must give
/// the same steps (C11).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionStep {
    /// The state before the operation.
    pub from: State,
    /// The state after it.
    pub to: State,
    /// The input, if the operation was one.
    pub input: Option<InputKind>,
    /// The outcome, for an input.
    pub result: Option<Result<Outcome, Error>>,
    /// The action handed out, for a poll.
    pub action: Option<Action>,
    /// The next deadline after the operation.
    pub timeout: Option<Instant>,
}

/// A connection, its monitor and the clock its inputs are given at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionHarness {
    conn: Lifecycle,
    monitor: ConnectionMonitor,
    clock: Instant,
}

impl ConnectionHarness {
    /// A client connection at time zero.
    pub fn client(config: Config) -> Self {
        Self::from_lifecycle(Lifecycle::new(config), Instant::ZERO)
    }

    /// A server-side connection accepted at time zero.
    pub fn accepted(config: Config) -> Self {
        Self::from_lifecycle(Lifecycle::accepted(Instant::ZERO, config), Instant::ZERO)
    }

    fn from_lifecycle(conn: Lifecycle, clock: Instant) -> Self {
        Self {
            conn,
            monitor: ConnectionMonitor::new(),
            clock,
        }
    }

    /// Applies one operation and checks every rule.
    ///
    /// # Errors
    /// The first rule the step broke.
    pub fn step(&mut self, op: ConnectionOp) -> Result<ConnectionStep, Violation> {
        let from = self.conn.state();
        let mut result = None;
        let mut action = None;
        match op {
            ConnectionOp::PollAction => {
                action = self.conn.poll_action();
                if let Some(action) = action {
                    self.monitor.on_action(&self.conn, action)?;
                }
            }
            ConnectionOp::Wait { micros } => {
                self.clock = self
                    .clock
                    .saturating_add(Duration::from_micros(micros.into()));
            }
            ConnectionOp::Rewind { micros } => {
                self.clock =
                    Instant::from_micros(self.clock.as_micros().saturating_sub(micros.into()));
            }
            ConnectionOp::ToDeadline { offset } => {
                if let Some(deadline) = self.conn.poll_timeout() {
                    let micros = deadline.as_micros().saturating_add_signed(offset.into());
                    self.clock = Instant::from_micros(micros);
                }
            }
            _ => {
                if let Some(input) = op.input() {
                    let before = self.conn.clone();
                    let outcome = self.conn.handle(self.clock, input);
                    self.monitor
                        .on_input(&before, &self.conn, self.clock, input, outcome)?;
                    result = Some(outcome);
                }
            }
        }
        self.monitor.on_state(&self.conn)?;
        Ok(ConnectionStep {
            from,
            to: self.conn.state(),
            input: op.input().map(|input| input.kind()),
            result,
            action,
            timeout: self.conn.poll_timeout(),
        })
    }

    /// Hands out and checks every pending action.
    ///
    /// # Errors
    /// The first rule an action broke.
    pub fn poll_all(&mut self) -> Result<(), Violation> {
        while self.conn.has_pending_actions() {
            self.step(ConnectionOp::PollAction)?;
        }
        Ok(())
    }

    /// The connection under test.
    pub fn conn(&self) -> &Lifecycle {
        &self.conn
    }

    /// The monitor's view.
    pub fn monitor(&self) -> &ConnectionMonitor {
        &self.monitor
    }

    /// The time the next input is given at.
    pub fn clock(&self) -> Instant {
        self.clock
    }
}
