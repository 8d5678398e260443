//! Arbitrary operations on a client connection, an accepted connection or a listener, with an
//! arbitrary valid configuration, replayed under the rule monitors of `proofs` and beside its
//! reference models.
//!
//! The target panics only when the core departs from the contract: a step the monitor rejects
//! (C1-C10, C12, C13, A1, L1-L3), a step on which the core and the reference model disagree (an
//! answer, an action, a permission, a deadline's value, a close reason), a close that time alone
//! does not bring about (C8) or a drain that does not end (L3), both checked on one input in
//! four, or two replays of the same input that differ (C11). Misuse the model predicts is an
//! answer like any other.

#![no_main]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use proofs::{
    ConnectionHarness, ConnectionOp, ListenerHarness, ListenerOp, Violation, replay_twice,
};
use socket_lifecycle::{Config, ListenerConfig};

/// At most this many operations per run, so that a run stays short and execs/s high.
const MAX_OPS: usize = 256;

/// Rounds of "perform every action, jump to the next deadline, fire it" that must close any
/// connection whose close is under way: more than the deadlines one can run through, plus one
/// per connect attempt still to come.
const ROUNDS: usize = 16;

/// The liveness checks (C8, L3) run on one input in this many, chosen by its number of
/// operations: they took a third of each run, and every one of them is also checked from every
/// state of the model check. Any end state the fuzzer reaches is reached by inputs of every
/// length, so each is still checked; the rules of each step are checked on every run.
const LIVENESS_EVERY: usize = 4;

/// A connection with more connect attempts than this still to come is left out of the
/// time-alone check: it would take a round per attempt (up to 65,534 of them, tens of
/// milliseconds). This many reach past candidate 256, where an index kept in a byte would wrap.
const MAX_TIMED_ATTEMPTS: usize = 300;

#[derive(Debug, Arbitrary)]
struct Case {
    /// Microseconds, up to `Config::LONGEST`; a value the setters refuse (zero, or an idle
    /// linger past the total) falls back to the default.
    connect_timeout: u32,
    linger_total: u32,
    linger_idle: u32,
    backoff_min: u32,
    backoff_max: u32,
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

fn micros(us: u32) -> Duration {
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
        Script::Client(ops) => replay_connection(&ConnectionHarness::client(case.config()), ops),
        Script::Accepted(ops) => {
            replay_connection(&ConnectionHarness::accepted(case.config()), ops)
        }
        Script::Listener(ops) => {
            replay_listener(&ListenerHarness::new(case.listener_config()), ops)
        }
    };
    if let Err(violation) = result {
        panic!("{violation}");
    }
});

/// Replays `ops` twice, checking every step and that both runs agree (C11); then, for one input
/// in [`LIVENESS_EVERY`], checks that a close from where they ended leads to `Close`, and that
/// time alone closes the connection if a close was under way (C8).
fn replay_connection(fresh: &ConnectionHarness, ops: &[ConnectionOp]) -> Result<(), Violation> {
    let (last, _) = replay_twice(fresh, ops)?;
    if !ops.len().is_multiple_of(LIVENESS_EVERY) {
        return Ok(());
    }
    last.check_close_is_reachable(ROUNDS)?;
    if last.model().attempts_left() <= MAX_TIMED_ATTEMPTS {
        last.check_time_alone_closes(ROUNDS)?;
    }
    Ok(())
}

/// Replays `ops` twice, checking every step and that both runs agree (C11); then, for one input
/// in [`LIVENESS_EVERY`], checks that a drain from where they ended ends (L3).
fn replay_listener(fresh: &ListenerHarness, ops: &[ListenerOp]) -> Result<(), Violation> {
    let (last, _) = replay_twice(fresh, ops)?;
    if !ops.len().is_multiple_of(LIVENESS_EVERY) {
        return Ok(());
    }
    last.check_drain_ends(ROUNDS)
}
