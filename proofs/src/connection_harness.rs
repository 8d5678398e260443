//! Replays [`ConnectionOp`]s against a [`Lifecycle`] under a [`ConnectionMonitor`] and beside a
//! [`ConnectionModel`]: every step must keep the rules and agree with the model exactly.

use socket_lifecycle::{Action, Config, Error, InputKind, Instant, Lifecycle, Outcome, State};

use crate::prediction::{Answer, Prediction, Refusal};
use crate::violation::ensure;
use crate::{ConnectionModel, ConnectionMonitor, ConnectionOp, Harness, Violation};

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

/// A connection, its monitor, its reference model and the clock its inputs are given at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionHarness {
    conn: Lifecycle,
    monitor: ConnectionMonitor,
    model: ConnectionModel,
    clock: Instant,
}

impl ConnectionHarness {
    /// A client connection at time zero.
    pub fn client(config: Config) -> Self {
        Self::from_lifecycle(Lifecycle::new(config), ConnectionModel::new(true, &config))
    }

    /// A server-side connection accepted at time zero.
    pub fn accepted(config: Config) -> Self {
        Self::from_lifecycle(
            Lifecycle::accepted(Instant::ZERO, config),
            ConnectionModel::new(false, &config),
        )
    }

    fn from_lifecycle(conn: Lifecycle, model: ConnectionModel) -> Self {
        Self {
            conn,
            monitor: ConnectionMonitor::new(),
            model,
            clock: Instant::ZERO,
        }
    }

    /// Applies one operation, checks every rule, and checks that the core agrees with the
    /// reference model on everything an observer sees.
    ///
    /// # Errors
    /// The first rule the step broke.
    pub fn step(&mut self, op: ConnectionOp) -> Result<ConnectionStep, Violation> {
        let predicted = self.model.apply(op);
        let before = op.input().map(|input| (input, self.conn.clone()));
        let step = self.step_machine(op);
        if let Some(action) = step.action {
            self.monitor.on_action(&self.conn, action)?;
        }
        if let (Some((input, before)), Some(outcome)) = (before, step.result) {
            self.monitor
                .on_input(&before, &self.conn, self.clock, input, outcome)?;
        }
        self.monitor.on_state(&self.conn)?;
        self.agree_with_model(op, step.result.as_ref(), step.action, predicted)?;
        Ok(step)
    }

    /// Applies one operation to the connection alone, checking nothing: the second replay of
    /// C11 compares what the core does, and the monitor and the model were checked on the first.
    pub fn step_machine(&mut self, op: ConnectionOp) -> ConnectionStep {
        let from = self.conn.state();
        let mut result = None;
        let mut action = None;
        if op == ConnectionOp::PollAction {
            action = self.conn.poll_action();
        } else if let Some(clock) = op.clock_move() {
            let deadline = self.conn.poll_timeout().map(Instant::as_micros);
            self.clock = Instant::from_micros(clock.moved(self.clock.as_micros(), deadline));
        } else if let Some(input) = op.input() {
            result = Some(self.conn.handle(self.clock, input));
        }
        ConnectionStep {
            from,
            to: self.conn.state(),
            input: op.input().map(|input| input.kind()),
            result,
            action,
            timeout: self.conn.poll_timeout(),
        }
    }

    /// The core against the model's prediction for `op` and against its view afterwards, each
    /// disagreement named by the rule the value belongs to.
    fn agree_with_model(
        &self,
        op: ConnectionOp,
        result: Option<&Result<Outcome, Error>>,
        action: Option<Action>,
        predicted: Prediction<Action>,
    ) -> Result<(), Violation> {
        use ConnectionOp as Op;
        let connect = matches!(
            op,
            Op::StartConnect { .. } | Op::Connected { .. } | Op::ConnectFailed { .. }
        );
        if let (Some(result), Some(expected)) = (result, predicted.answer) {
            let answer = answer(result)?;
            let rule = if connect { "C12" } else { "C9" };
            agree(
                rule,
                || format!("the answer to {op:?} ({result:?})"),
                answer,
                expected,
            )?;
        }
        if op == Op::PollAction {
            let rule = if matches!(action, Some(Action::Connect { .. }))
                || matches!(predicted.polled, Some(Action::Connect { .. }))
            {
                "C12"
            } else {
                "C1"
            };
            agree(
                rule,
                || "the action handed out".into(),
                action,
                predicted.polled,
            )?;
        }
        let (conn, model) = (&self.conn, &self.model);
        agree(
            "C11",
            || "the time".into(),
            conn.now().as_micros(),
            model.now(),
        )?;
        agree(
            "C3",
            || "may_send".into(),
            conn.may_send(),
            model.may_send(),
        )?;
        agree(
            "C3",
            || "may_queue".into(),
            conn.may_queue(),
            model.may_queue(),
        )?;
        agree(
            "C5",
            || "may_receive".into(),
            conn.may_receive(),
            model.may_receive(),
        )?;
        agree(
            "C5",
            || "must_discard".into(),
            conn.must_discard(),
            model.must_discard(),
        )?;
        agree(
            "C2",
            || "is_closed".into(),
            conn.is_closed(),
            model.closed(),
        )?;
        agree(
            "C7",
            || "the close reason".into(),
            conn.close_reason(),
            model.reason(),
        )?;
        agree(
            if conn.state() == State::Connecting {
                "C12"
            } else {
                "C8"
            },
            || "the next deadline".into(),
            conn.poll_timeout().map(Instant::as_micros),
            model.next_deadline(),
        )?;
        agree(
            "C1",
            || "whether actions are pending".into(),
            conn.has_pending_actions(),
            model.has_pending_actions(),
        )
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
    /// deadlines), time alone brings `Close` within `rounds` rounds, plus one for each connect
    /// attempt still to come, with no further input.
    ///
    /// # Errors
    /// A C8 violation, or the first rule a step broke on the way.
    pub fn check_time_alone_closes(&self, rounds: usize) -> Result<(), Violation> {
        let under_way = self.monitor.close_requested()
            || self.conn.poll_timeout().is_some()
            || self.conn.is_closed();
        let rounds = rounds.saturating_add(self.model.attempts_left());
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

    /// The reference model's view.
    pub fn model(&self) -> &ConnectionModel {
        &self.model
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

/// How the model names the core's answer.
fn answer(result: &Result<Outcome, Error>) -> Result<Answer, Violation> {
    Ok(match result {
        Ok(Outcome::Changed) => Answer::Changed,
        Ok(Outcome::Unchanged) => Answer::Unchanged,
        Err(Error::InvalidTransition { .. }) => Answer::Refused(Refusal::Misuse),
        Err(Error::NotCurrentCandidate { .. }) => Answer::Refused(Refusal::NotCurrentCandidate),
        Err(Error::NoCandidates | Error::TooManyCandidates | Error::EmptyReceive) => {
            Answer::Refused(Refusal::BadValue)
        }
        // `Error` is non-exhaustive: an error the model does not know is a disagreement.
        Err(other) => {
            return Err(Violation::new(
                "C9",
                format!("a refusal the reference model does not know: {other:?}"),
            ));
        }
    })
}

/// `Err` naming `rule` unless the core and the model agree.
pub(crate) fn agree<T: PartialEq + std::fmt::Debug>(
    rule: &'static str,
    what: impl FnOnce() -> String,
    core: T,
    model: T,
) -> Result<(), Violation> {
    ensure(core == model, rule, || {
        format!(
            "the core and the reference model disagree on {}: core {core:?}, model {model:?}",
            what()
        )
    })
}

impl Harness for ConnectionHarness {
    type Op = ConnectionOp;
    type Step = ConnectionStep;

    fn step(&mut self, op: ConnectionOp) -> Result<ConnectionStep, Violation> {
        ConnectionHarness::step(self, op)
    }

    fn step_machine(&mut self, op: ConnectionOp) -> ConnectionStep {
        ConnectionHarness::step_machine(self, op)
    }

    fn same_machine(&self, other: &Self) -> bool {
        self.conn == other.conn && self.clock == other.clock
    }
}
