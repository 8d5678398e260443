//! Arbitrary operations on a client connection, an accepted connection or a listener, replayed
//! under the rule monitors of `proofs`.
//!
//! The target panics only when a rule of the contract breaks: a step the monitor rejects
//! (C1-C10, C12, L1-L3), a close that time alone does not bring about (C8), or two replays of
//! the same input that differ (C11). Everything else, misuse included, is an answer the core
//! is allowed to give.

#![no_main]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use proofs::{ConnectionHarness, ConnectionOp, ListenerHarness, ListenerOp, Violation};
use socket_lifecycle::{Config, ListenerConfig, Outcome, State};

/// At most this many operations per run, so that a run stays short and execs/s high.
const MAX_OPS: usize = 256;

/// Rounds of "perform every action, jump to the next deadline, fire it" that must close any
/// connection whose close is under way: more than the deadlines one can run through, plus one
/// per connect attempt still to come.
const ROUNDS: usize = 16;

/// A connection still trying more candidates than this is left out of the time-alone check:
/// it would take a round per candidate (up to 65,535 of them, tens of milliseconds), and the
/// smaller counts the fuzzer reaches go through the same transitions.
const MAX_TIMED_CANDIDATES: usize = 64;

#[derive(Debug, Arbitrary)]
struct Case {
    /// Microseconds; zero is refused by the setters and falls back to the default.
    connect_timeout: u16,
    linger_total: u16,
    linger_idle: u16,
    backoff_min: u16,
    backoff_max: u16,
    script: Script,
}

/// Which machine to drive, and what to do to it.
#[derive(Debug, Arbitrary)]
enum Script {
    Client(#[arbitrary(with = ops)] Vec<ConnectionOp>),
    Accepted(#[arbitrary(with = ops)] Vec<ConnectionOp>),
    Listener(#[arbitrary(with = ops)] Vec<ListenerOp>),
}

/// Operations until the input runs out, at most [`MAX_OPS`].
fn ops<'a, T: Arbitrary<'a>>(u: &mut Unstructured<'a>) -> arbitrary::Result<Vec<T>> {
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        ops.push(u.arbitrary()?);
    }
    Ok(ops)
}

fn micros(us: u16) -> Duration {
    Duration::from_micros(us.into())
}

impl Case {
    /// The configured settings, each kept only if its checked setter accepts it.
    fn config(&self) -> Config {
        let config = Config::new();
        let config = config
            .with_connect_timeout(micros(self.connect_timeout))
            .unwrap_or(config);
        config
            .with_linger(micros(self.linger_total), micros(self.linger_idle))
            .unwrap_or(config)
    }

    fn listener_config(&self) -> ListenerConfig {
        let config = ListenerConfig::new();
        config
            .with_accept_backoff(micros(self.backoff_min), micros(self.backoff_max))
            .unwrap_or(config)
    }
}

fuzz_target!(|case: Case| {
    let result = match &case.script {
        Script::Client(ops) => replay_connection(|| ConnectionHarness::client(case.config()), ops),
        Script::Accepted(ops) => {
            replay_connection(|| ConnectionHarness::accepted(case.config()), ops)
        }
        Script::Listener(ops) => replay_listener(ListenerHarness::new(case.listener_config()), ops),
    };
    if let Err(violation) = result {
        panic!("{violation}");
    }
});

/// Replays `ops` twice on fresh connections, checking every step, that both runs agree (C11),
/// and that time alone closes the connection once a close is asked for or under way (C8).
fn replay_connection(
    fresh: impl Fn() -> ConnectionHarness,
    ops: &[ConnectionOp],
) -> Result<(), Violation> {
    let mut first = fresh();
    let steps = ops
        .iter()
        .map(|&op| first.step(op))
        .collect::<Result<Vec<_>, _>>()?;
    let mut second = fresh();
    for (i, (&op, step)) in ops.iter().zip(&steps).enumerate() {
        let again = second.step(op)?;
        if again != *step {
            return Err(Violation::new(
                "C11",
                format!("operation {i} ({op:?}) gave {step:?}, then {again:?}"),
            ));
        }
    }
    if second != first {
        return Err(Violation::new(
            "C11",
            "two replays ended in different states",
        ));
    }

    // Each candidate may take one round of its own before the last attempt times out.
    let candidates = ops
        .iter()
        .zip(&steps)
        .find_map(|(op, step)| match (op, step.result) {
            (ConnectionOp::StartConnect { candidates }, Some(Ok(Outcome::Changed))) => {
                usize::try_from(*candidates).ok()
            }
            _ => None,
        })
        .unwrap_or(0);
    let rounds = ROUNDS.saturating_add(candidates);
    let state = first.conn().state();
    let mut closing = first.clone();
    closing.step(ConnectionOp::Close)?;
    if !run_out_the_clock(&mut closing, ROUNDS)? {
        return Err(Violation::new(
            "C8",
            format!("no Close after a close from {state}"),
        ));
    }
    let under_way = first.monitor().close_requested()
        || first.conn().poll_timeout().is_some()
        || first.conn().is_closed();
    let too_slow = state == State::Connecting && candidates > MAX_TIMED_CANDIDATES;
    if under_way && !too_slow && !run_out_the_clock(&mut first, rounds)? {
        return Err(Violation::new(
            "C8",
            format!("time alone did not close {state}"),
        ));
    }
    Ok(())
}

/// Performs every action, jumps to the next deadline and fires it, until `Close` is out.
fn run_out_the_clock(harness: &mut ConnectionHarness, rounds: usize) -> Result<bool, Violation> {
    for _ in 0..rounds {
        harness.poll_all()?;
        if harness.monitor().closed() {
            return Ok(true);
        }
        harness.step(ConnectionOp::ToDeadline { offset: 0 })?;
        harness.step(ConnectionOp::Timeout)?;
    }
    Ok(false)
}

/// Replays `ops` twice on fresh listeners, checking every step and that both runs agree (C11),
/// then hands out and checks whatever actions are left.
fn replay_listener(fresh: ListenerHarness, ops: &[ListenerOp]) -> Result<(), Violation> {
    let mut first = fresh.clone();
    let steps = ops
        .iter()
        .map(|&op| first.step(op))
        .collect::<Result<Vec<_>, _>>()?;
    let mut second = fresh;
    for (i, (&op, step)) in ops.iter().zip(&steps).enumerate() {
        let again = second.step(op)?;
        if again != *step {
            return Err(Violation::new(
                "C11",
                format!("operation {i} ({op:?}) gave {step:?}, then {again:?}"),
            ));
        }
    }
    if second != first {
        return Err(Violation::new(
            "C11",
            "two replays ended in different states",
        ));
    }
    while first.listener().has_pending_actions() {
        first.step(ListenerOp::PollAction)?;
    }
    Ok(())
}
