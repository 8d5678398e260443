//! The exhaustive model check: `cargo test -p proofs --test model_check -- --nocapture` prints
//! how many states and edges it explored.

use std::time::Instant;

use proofs::explore;

#[test]
fn every_reachable_connection_state_keeps_every_rule() {
    let started = Instant::now();
    let exploration = explore::connections().unwrap_or_else(|counterexample| {
        panic!("counterexample:\n{counterexample}");
    });
    println!(
        "connection model check: {} states, {} edges, liveness checked from every state, in {:.2?}",
        exploration.states,
        exploration.edges,
        started.elapsed()
    );
    let reached: Vec<_> = exploration.graph.nodes().collect();
    for state in socket_lifecycle::State::ALL {
        assert!(reached.contains(&state.name()), "{state} never reached");
    }
    assert!(
        exploration.states > 1_000,
        "the walk is too small to mean much"
    );
}

#[test]
fn every_reachable_listener_state_keeps_every_rule() {
    let started = Instant::now();
    let exploration = explore::listeners().unwrap_or_else(|counterexample| {
        panic!("counterexample:\n{counterexample}");
    });
    println!(
        "listener model check: {} states, {} edges, liveness checked from every state, in {:.2?}",
        exploration.states,
        exploration.edges,
        started.elapsed()
    );
    let reached: Vec<_> = exploration.graph.nodes().collect();
    for state in socket_lifecycle::ListenerState::ALL {
        assert!(reached.contains(&state.name()), "{state} never reached");
    }
    assert!(
        exploration.states > 1_000,
        "the walk is too small to mean much"
    );
}
