//! The property suite: random sequences of up to 64 operations (every intent, every report, polls
//! and clock moves that cross the deadlines; once connected, half of them the steps of a graceful
//! close where it stands) against the core and against a reference model written independently
//! of it (`proofs`' `ConnectionModel` and `ListenerModel`), each run with a random valid
//! configuration. After every step the core must agree with the model on everything
//! an observer sees, and every rule of the contract must hold: the core runs inside `proofs`'
//! harness, whose monitor checks C1-C13, A1 and L1-L3 and names the rule it finds broken.
//!
//! `PROPTEST_CASES=10000 cargo test -p proofs --test properties` runs as CI does.

use std::time::Duration;

use proofs::{
    ClockMove, ConnectionHarness, ConnectionModel, ConnectionOp, Kind, ListenerHarness,
    ListenerModel, ListenerOp,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use socket_lifecycle::{Config, ListenerConfig};

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

/// Clock moves: small and large steps forward, jumps around the next deadline, steps back.
fn clock_move() -> impl Strategy<Value = ClockMove> {
    prop_oneof![
        3 => (0u32..=60).prop_map(ClockMove::Wait),
        1 => (0u32..=400).prop_map(ClockMove::Wait),
        3 => (-1i8..=1).prop_map(ClockMove::ToDeadline),
        1 => (1u32..=50).prop_map(ClockMove::Rewind),
    ]
}

/// A setting's duration in microseconds: mostly the short ones the clock moves cross, sometimes
/// the extremes the setters accept (1 µs and `Config::LONGEST`).
fn setting_micros() -> impl Strategy<Value = u64> {
    let longest = u64::try_from(Config::LONGEST.as_micros()).expect("fits");
    prop_oneof![
        6 => 1u64..=120,
        1 => Just(1u64),
        1 => Just(longest),
        1 => 1u64..=longest,
    ]
}

fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

/// A random valid connection configuration.
fn config() -> impl Strategy<Value = Config> {
    (setting_micros(), setting_micros(), setting_micros()).prop_map(|(connect, a, b)| {
        Config::new()
            .with_connect_timeout(micros(connect))
            .and_then(|c| c.with_linger(micros(a.max(b)), micros(a.min(b))))
            .expect("valid durations")
    })
}

/// A random valid listener configuration.
fn listener_config() -> impl Strategy<Value = ListenerConfig> {
    (setting_micros(), setting_micros()).prop_map(|(a, b)| {
        ListenerConfig::new()
            .with_accept_backoff(micros(a.min(b)), micros(a.max(b)))
            .expect("valid durations")
    })
}

/// Candidate counts: the small ones a run connects through, and the edges of the range
/// (255 and 256 around a byte, the largest count accepted and the first refused).
fn candidate_count() -> impl Strategy<Value = u32> {
    prop_oneof![
        10 => 0u32..=3,
        1 => Just(255u32),
        1 => Just(256u32),
        1 => Just(65_535u32),
        1 => Just(65_536u32),
        1 => Just(u32::MAX),
    ]
}

/// The model that draws a run's operations, and the configuration the harness under test is
/// built with. The harness checks each step against a model of its own, so this one only
/// steers the generator.
#[derive(Clone, Debug)]
struct Steering<C, M> {
    config: C,
    model: M,
}

// ---- connections ---------------------------------------------------------------------------

struct ConnectionReference;

impl ReferenceStateMachine for ConnectionReference {
    type State = Steering<Config, ConnectionModel>;
    type Transition = ConnectionOp;

    fn init_state() -> BoxedStrategy<Self::State> {
        (any::<bool>(), config())
            .prop_map(|(client, config)| Steering {
                config,
                model: ConnectionModel::new(client, &config),
            })
            .boxed()
    }

    fn transitions(steering: &Self::State) -> BoxedStrategy<Self::Transition> {
        use ConnectionOp as Op;
        let model = &steering.model;
        let any = prop_oneof![
            1 => candidate_count().prop_map(|candidates| Op::StartConnect { candidates }),
            2 => Just(Op::ShutdownSend),
            2 => Just(Op::Close),
            1 => Just(Op::Abort),
            2 => Just(Op::Abandon),
            1 => Just(Op::AbortForDrain),
            2 => (0u32..3).prop_map(|candidate| Op::Connected { candidate }),
            2 => ((0u32..3), kind()).prop_map(|(candidate, kind)| Op::ConnectFailed { candidate, kind }),
            3 => prop_oneof![3 => 1u32..=3, 1 => Just(0u32), 1 => Just(u32::MAX)]
                .prop_map(|len| Op::Received { len }),
            2 => Just(Op::EndOfStream),
            2 => Just(Op::Flushed),
            2 => Just(Op::Acknowledged),
            1 => kind().prop_map(Op::Error),
            3 => Just(Op::Timeout),
            6 => Just(Op::PollAction),
            5 => clock_move().prop_map(Op::from),
        ];
        // While connecting, the steps of a connect are drawn as often as everything else. Once
        // connected, the inputs that move a graceful close on (C4, C5, C13) are drawn as
        // often as everything else put together: drawn evenly, too few runs get through the
        // flush, both ends of stream and a close to the wait for the acknowledgement, and past
        // it (at 256 cases, Acknowledging's deadline called graceful was caught in 7 runs of 10).
        let graceful = if model.candidates() > 0 {
            // Connecting: the attempt handed out, reported on or timed out, with time moving
            // between, so that each attempt's deadline is checked from a later start (C12).
            let attempt = model.attempt();
            Some(
                prop_oneof![
                    2 => Just(Op::PollAction),
                    1 => Just(Op::Connected { candidate: attempt }),
                    2 => kind().prop_map(move |kind| Op::ConnectFailed { candidate: attempt, kind }),
                    2 => Just(Op::Timeout),
                    2 => (-1i8..=1).prop_map(|offset| Op::ToDeadline { offset }),
                    1 => (1u32..=60).prop_map(|micros| Op::Wait { micros }),
                ]
                .boxed(),
            )
        } else if model.closed() || !model.connected() {
            None
        } else if model.acknowledging() {
            // Waiting for the acknowledgement: its deadlines first, so that most runs that get
            // here also see the wait run out.
            Some(
                prop_oneof![
                    1 => Just(Op::Acknowledged),
                    2 => Just(Op::Timeout),
                    2 => (-1i8..=1).prop_map(|offset| Op::ToDeadline { offset }),
                ]
                .boxed(),
            )
        } else if model.fin() && model.peer_fin() && !model.close_requested() {
            // Both ends of stream are through: the application closes or drops it.
            Some(prop_oneof![Just(Op::Close), Just(Op::Abandon)].boxed())
        } else if !model.done_sending() {
            // Sending: the peer's bytes and end of stream, and the application done with it.
            Some(
                prop_oneof![
                    Just(Op::Received { len: 1 }),
                    Just(Op::EndOfStream),
                    Just(Op::ShutdownSend),
                    Just(Op::Close),
                ]
                .boxed(),
            )
        } else if !model.fin() {
            // Flushing: the flush, the peer's end of stream, and an acknowledgement that comes
            // too early.
            Some(
                prop_oneof![
                    Just(Op::Flushed),
                    Just(Op::EndOfStream),
                    Just(Op::Acknowledged),
                ]
                .boxed(),
            )
        } else if !model.peer_fin() {
            // Our end of stream is out: the peer's bytes (read and discarded once a close was
            // asked for), its end of stream, the close (the seed client's), the idle deadline,
            // and an acknowledgement that comes too early.
            Some(
                prop_oneof![
                    2 => (1u32..=3).prop_map(|len| Op::Received { len }),
                    1 => Just(Op::EndOfStream),
                    1 => Just(Op::Close),
                    1 => Just(Op::Acknowledged),
                    1 => Just(Op::Timeout),
                    1 => (-1i8..=1).prop_map(|offset| Op::ToDeadline { offset }),
                ]
                .boxed(),
            )
        } else {
            None
        };
        match graceful {
            Some(graceful) => prop_oneof![1 => any, 1 => graceful].boxed(),
            None => any.boxed(),
        }
    }

    fn apply(mut state: Self::State, op: &Self::Transition) -> Self::State {
        state.model.apply(*op);
        state
    }
}

struct ConnectionUnderTest;

impl StateMachineTest for ConnectionUnderTest {
    type SystemUnderTest = ConnectionHarness;
    type Reference = ConnectionReference;

    fn init_test(steering: &Steering<Config, ConnectionModel>) -> ConnectionHarness {
        if steering.model.client() {
            ConnectionHarness::client(steering.config)
        } else {
            ConnectionHarness::accepted(steering.config)
        }
    }

    /// The harness checks every rule and agrees with its own model on every step: the answer,
    /// the action handed out, the time, the permissions, the close reason and the deadline.
    fn apply(
        mut harness: ConnectionHarness,
        _: &Steering<Config, ConnectionModel>,
        op: ConnectionOp,
    ) -> ConnectionHarness {
        harness
            .step(op)
            .unwrap_or_else(|violation| panic!("{violation} (after {op:?})"));
        harness
    }
}

// ---- listeners -----------------------------------------------------------------------------

struct ListenerReference;

impl ReferenceStateMachine for ListenerReference {
    type State = Steering<ListenerConfig, ListenerModel>;
    type Transition = ListenerOp;

    fn init_state() -> BoxedStrategy<Self::State> {
        listener_config()
            .prop_map(|config| Steering {
                config,
                model: ListenerModel::new(&config),
            })
            .boxed()
    }

    fn transitions(_: &Self::State) -> BoxedStrategy<Self::Transition> {
        use ListenerOp as Op;
        prop_oneof![
            4 => Just(Op::Accepted),
            2 => kind().prop_map(Op::AcceptFailed),
            3 => Just(Op::ConnectionClosed),
            1 => Just(Op::Stop),
            1 => (0u32..=150).prop_map(|micros| Op::Drain { micros }),
            3 => Just(Op::Timeout),
            4 => Just(Op::PollAction),
            4 => clock_move().prop_map(Op::from),
        ]
        .boxed()
    }

    fn apply(mut state: Self::State, op: &Self::Transition) -> Self::State {
        state.model.apply(*op);
        state
    }
}

struct ListenerUnderTest;

impl StateMachineTest for ListenerUnderTest {
    type SystemUnderTest = ListenerHarness;
    type Reference = ListenerReference;

    fn init_test(steering: &Steering<ListenerConfig, ListenerModel>) -> ListenerHarness {
        ListenerHarness::new(steering.config)
    }

    fn apply(
        mut harness: ListenerHarness,
        _: &Steering<ListenerConfig, ListenerModel>,
        op: ListenerOp,
    ) -> ListenerHarness {
        harness
            .step(op)
            .unwrap_or_else(|violation| panic!("{violation} (after {op:?})"));
        harness
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn connections_agree_with_the_model_and_keep_every_rule(sequential 1..64 => ConnectionUnderTest);

    #[test]
    fn listeners_agree_with_the_model_and_keep_every_rule(sequential 1..64 => ListenerUnderTest);
}
