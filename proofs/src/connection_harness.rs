//! Replays [`ConnectionOp`]s against a [`Lifecycle`] under a [`ConnectionMonitor`].

use socket_lifecycle::{Action, Config, Error, InputKind, Instant, Lifecycle, Outcome, State};

use crate::{ConnectionMonitor, ConnectionOp, Harness, Violation};

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
        if op == ConnectionOp::PollAction {
            action = self.conn.poll_action();
            if let Some(action) = action {
                self.monitor.on_action(&self.conn, action)?;
            }
        } else if let Some(clock) = op.clock_move() {
            let deadline = self.conn.poll_timeout().map(Instant::as_micros);
            self.clock = Instant::from_micros(clock.moved(self.clock.as_micros(), deadline));
        } else if let Some(input) = op.input() {
            let before = self.conn.clone();
            let outcome = self.conn.handle(self.clock, input);
            self.monitor
                .on_input(&before, &self.conn, self.clock, input, outcome)?;
            result = Some(outcome);
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

    /// Lets time alone act for at most `rounds` rounds of "perform every action, jump to the
    /// next deadline, fire it", stopping once `Close` is out. Whether it came out.
    ///
    /// # Errors
    /// The first rule a step broke.
    pub fn run_out_the_clock(&mut self, rounds: usize) -> Result<bool, Violation> {
        for _ in 0..rounds {
            self.poll_all()?;
            if self.monitor.closed() {
                return Ok(true);
            }
            self.step(ConnectionOp::ToDeadline { offset: 0 })?;
            self.step(ConnectionOp::Timeout)?;
        }
        Ok(false)
    }

    /// C8 from here: a close now leads to `Close` by time alone within `rounds` rounds (see
    /// [`run_out_the_clock`](Self::run_out_the_clock)).
    ///
    /// # Errors
    /// A C8 violation, or the first rule a step broke on the way.
    pub fn check_close_is_reachable(&self, rounds: usize) -> Result<(), Violation> {
        let mut closing = self.clone();
        closing.step(ConnectionOp::Close)?;
        if closing.run_out_the_clock(rounds)? {
            Ok(())
        } else {
            Err(Violation::new(
                "C8",
                format!("no Close after a close from {}", self.conn.state()),
            ))
        }
    }

    /// C8 from here: if a close is under way (asked for, or a connect or a close running its
    /// deadlines), time alone brings `Close` within `rounds` rounds, with no further input.
    ///
    /// # Errors
    /// A C8 violation, or the first rule a step broke on the way.
    pub fn check_time_alone_closes(&self, rounds: usize) -> Result<(), Violation> {
        let under_way = self.monitor.close_requested()
            || self.conn.poll_timeout().is_some()
            || self.conn.is_closed();
        if !under_way || self.clone().run_out_the_clock(rounds)? {
            Ok(())
        } else {
            Err(Violation::new(
                "C8",
                format!("time alone did not close {}", self.conn.state()),
            ))
        }
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

impl Harness for ConnectionHarness {
    type Op = ConnectionOp;
    type Step = ConnectionStep;

    fn step(&mut self, op: ConnectionOp) -> Result<ConnectionStep, Violation> {
        ConnectionHarness::step(self, op)
    }
}
