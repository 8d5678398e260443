//! Unit tests of [`Listener`], grouped by the state they start from; rule ids in names and messages.

use std::vec::Vec;

use super::*;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// More actions than a listener ever has pending at once (there are three kinds).
const MOST_PENDING: usize = 8;

/// Every pending action. Bounded, so that a listener whose `poll_action` never says `None` fails
/// the test at once (L2) instead of hanging it.
fn actions(listener: &mut Listener) -> Vec<ListenerAction> {
    let actions: Vec<_> = core::iter::from_fn(|| listener.poll_action())
        .take(MOST_PENDING + 1)
        .collect();
    assert!(
        actions.len() <= MOST_PENDING,
        "L2 violated: poll_action kept handing out actions: {actions:?}"
    );
    actions
}

fn ok(result: Result<Outcome, ListenerError>) -> Outcome {
    result.unwrap()
}

fn listening_with(open: u32) -> Listener {
    let mut listener = Listener::new(t(0), ListenerConfig::default());
    for _ in 0..open {
        ok(listener.handle_accepted(t(1)));
    }
    listener
}

/// A listener in `state` with two connections open (none once drained), actions drained.
fn reach(state: ListenerState) -> Listener {
    use ListenerState::*;
    let mut listener = listening_with(2);
    match state {
        Listening => {}
        Paused => {
            ok(listener.handle_accept_failed(t(2), IoErrorKind::Other));
        }
        Stopped => {
            ok(listener.stop(t(2)));
        }
        Draining => {
            ok(listener.drain(t(2), ms(1_000)));
        }
        Aborting => {
            ok(listener.drain(t(2), ms(1_000)));
            ok(listener.handle_timeout(t(1_002)));
        }
        Drained => {
            ok(listener.drain(t(2), ms(1_000)));
            ok(listener.handle_connection_closed(t(3)));
            ok(listener.handle_connection_closed(t(4)));
        }
    }
    actions(&mut listener);
    assert_eq!(listener.state(), state);
    listener
}

fn every_input() -> Vec<ListenerInput> {
    let mut inputs = std::vec![
        ListenerInput::Accepted,
        ListenerInput::ConnectionClosed,
        ListenerInput::Stop,
        ListenerInput::Drain(Duration::ZERO),
        ListenerInput::Drain(ms(100)),
        ListenerInput::Drain(Duration::MAX),
        ListenerInput::Timeout,
    ];
    inputs.extend(IoErrorKind::ALL.map(ListenerInput::AcceptFailed));
    inputs
}

// Tests for the Listening state.
mod listening {
    use super::*;

    #[test]
    fn listening_accepts_and_counts_open_connections() {
        let mut listener = listening_with(0);
        assert!(listener.may_accept());
        assert_eq!(listener.poll_timeout(), None);
        ok(listener.handle_accepted(t(1)));
        ok(listener.handle_accepted(t(2)));
        assert_eq!(listener.open_connections(), 2);
        ok(listener.handle_connection_closed(t(3)));
        assert_eq!(listener.open_connections(), 1);
        ok(listener.handle_connection_closed(t(4)));
        assert_eq!(listener.open_connections(), 0);
        assert_eq!(actions(&mut listener), []);
    }

    #[test]
    fn a_failed_accept_pauses_with_a_doubling_backoff_up_to_the_longest() {
        let config = ListenerConfig::new()
            .with_accept_backoff(ms(10), ms(35))
            .unwrap();
        let mut listener = Listener::new(t(0), config);
        let mut now = 0;
        for pause in [10, 20, 35, 35] {
            ok(listener.handle_accept_failed(t(now), IoErrorKind::Other));
            assert!(
                !listener.may_accept(),
                "accepting while backing off: a spin"
            );
            assert_eq!(listener.poll_timeout(), Some(t(now + pause)));
            assert_eq!(
                listener.handle_timeout(t(now + pause - 1)),
                Ok(Outcome::Unchanged)
            );
            assert!(!listener.may_accept());
            now += pause;
            ok(listener.handle_timeout(t(now)));
            assert!(listener.may_accept(), "did not recover after the backoff");
        }
        ok(listener.handle_accepted(t(now)));
        ok(listener.handle_accept_failed(t(now), IoErrorKind::Other));
        assert_eq!(
            listener.poll_timeout(),
            Some(t(now + 10)),
            "backoff not reset by a success"
        );
    }

    #[test]
    fn a_connection_reset_in_the_accept_queue_is_retried_at_once() {
        let mut listener = listening_with(0);
        assert_eq!(
            listener.handle_accept_failed(t(1), IoErrorKind::Reset),
            Ok(Outcome::Unchanged)
        );
        assert!(listener.may_accept());
    }

    #[test]
    fn a_close_never_counted_open_is_refused_and_changes_nothing() {
        let mut listener = listening_with(0);
        let before = listener.clone();
        assert_eq!(
            listener.handle_connection_closed(t(1)),
            Err(ListenerError::NoOpenConnection)
        );
        assert_eq!(listener, before);
    }

    #[test]
    fn the_open_count_cannot_overflow() {
        let mut listener = listening_with(0);
        listener.open = u32::MAX;
        let before = listener.clone();
        assert_eq!(
            listener.handle_accepted(t(1)),
            Err(ListenerError::TooManyConnections)
        );
        assert_eq!(listener, before);
    }
}

// Tests for stopping: Stopped and the rules L1 and L2.
mod stopped {
    use super::*;

    #[test]
    fn l1_no_accept_is_permitted_after_stop() {
        for state in [
            ListenerState::Stopped,
            ListenerState::Draining,
            ListenerState::Aborting,
        ] {
            let mut listener = reach(state);
            assert!(!listener.may_accept(), "L1 violated in {state}");
            let before = listener.clone();
            assert_eq!(
                listener.handle_accepted(t(5)),
                Err(ListenerError::InvalidTransition {
                    state,
                    input: ListenerInput::Accepted
                }),
                "L1 violated in {state}"
            );
            assert_eq!(
                listener, before,
                "L1 violated: a refused accept was counted"
            );
        }
    }

    #[test]
    fn l1_a_paused_listener_stopped_does_not_resume_accepting() {
        let mut listener = reach(ListenerState::Paused);
        ok(listener.stop(t(3)));
        ok(listener.handle_timeout(t(10_000)));
        assert!(
            !listener.may_accept(),
            "L1 violated: accepting again after stop"
        );
    }

    #[test]
    fn l2_the_listening_socket_is_closed_exactly_once() {
        for first in [ListenerInput::Stop, ListenerInput::Drain(ms(10))] {
            let mut listener = listening_with(1);
            let mut all = Vec::new();
            for input in [first, ListenerInput::Stop, ListenerInput::Drain(ms(5))] {
                ok(listener.handle(t(2), input));
                all.extend(actions(&mut listener));
            }
            ok(listener.handle_timeout(t(100)));
            ok(listener.handle_connection_closed(t(101)));
            ok(listener.stop(t(102)));
            all.extend(actions(&mut listener));
            let closes = all.iter().filter(|a| **a == ListenerAction::Close).count();
            let stops = all
                .iter()
                .filter(|a| **a == ListenerAction::StopAccepting)
                .count();
            assert_eq!(
                (stops, closes),
                (1, 1),
                "L2 violated after {first:?}: {all:?}"
            );
            assert_eq!(
                all.first(),
                Some(&ListenerAction::StopAccepting),
                "L2: close before stop"
            );
        }
    }

    #[test]
    fn a_failed_accept_woken_by_the_stop_changes_nothing() {
        for state in [
            ListenerState::Stopped,
            ListenerState::Draining,
            ListenerState::Aborting,
            ListenerState::Drained,
        ] {
            let mut listener = reach(state);
            assert_eq!(
                listener.handle_accept_failed(t(5), IoErrorKind::Other),
                Ok(Outcome::Unchanged),
                "{state}"
            );
            assert_eq!(actions(&mut listener), []);
        }
        let mut paused = reach(ListenerState::Paused);
        assert!(
            paused
                .handle_accept_failed(t(5), IoErrorKind::Other)
                .is_err()
        );
    }

    #[test]
    fn stopped_leaves_open_connections_alone() {
        let mut listener = reach(ListenerState::Stopped);
        assert_eq!(listener.poll_timeout(), None);
        ok(listener.handle_timeout(t(1 << 40)));
        assert_eq!(actions(&mut listener), []);
        ok(listener.handle_connection_closed(t(5)));
        ok(listener.handle_connection_closed(t(6)));
        assert_eq!(
            listener.state(),
            ListenerState::Stopped,
            "stopped is not a drain"
        );
    }
}

// Tests for draining: Draining, Aborting, Drained and the rule L3.
mod draining {
    use super::*;

    /// Once drained, a connection closed is a misfit (`InvalidTransition`), not
    /// `NoOpenConnection`, also when the drain began with nothing open.
    #[test]
    fn connection_closed_after_a_drain_with_none_open_is_an_invalid_transition() {
        let mut listener = listening_with(0);
        ok(listener.drain(t(5), ms(100)));
        assert_eq!(listener.state(), ListenerState::Drained);
        assert_eq!(
            listener.handle_connection_closed(t(6)),
            Err(ListenerError::InvalidTransition {
                state: ListenerState::Drained,
                input: ListenerInput::ConnectionClosed
            })
        );
        // Before a drain, the same report with none open is the other error.
        let mut listener = listening_with(0);
        assert_eq!(
            listener.handle_connection_closed(t(6)),
            Err(ListenerError::NoOpenConnection)
        );
    }

    /// The abort queued at the drain deadline is handed out even if the last connection closed
    /// before it was polled: from `Drained`, with `open: 0`.
    #[test]
    fn l3_abort_polled_after_the_last_close_says_none_open() {
        let mut listener = listening_with(1);
        ok(listener.drain(t(5), ms(100)));
        assert_eq!(
            actions(&mut listener),
            [ListenerAction::StopAccepting, ListenerAction::Close]
        );
        ok(listener.handle_timeout(t(105)));
        assert_eq!(listener.state(), ListenerState::Aborting);
        ok(listener.handle_connection_closed(t(106)));
        assert_eq!(listener.state(), ListenerState::Drained);
        assert_eq!(
            actions(&mut listener),
            [ListenerAction::AbortConnections { open: 0 }]
        );
        assert_eq!(actions(&mut listener), []);
    }

    #[test]
    fn l3_drained_only_when_every_tracked_connection_has_closed() {
        let mut listener = reach(ListenerState::Draining);
        assert_eq!(listener.poll_timeout(), Some(t(1_002)));
        ok(listener.handle_connection_closed(t(10)));
        assert!(!listener.is_drained(), "L3 violated: drained with one open");
        ok(listener.handle_connection_closed(t(20)));
        assert!(
            listener.is_drained(),
            "L3 violated: not drained with none open"
        );
        assert_eq!(listener.poll_timeout(), None);
        ok(listener.handle_timeout(t(5_000)));
        assert_eq!(
            actions(&mut listener),
            [],
            "L3 violated: abort after drained"
        );
    }

    #[test]
    fn l3_at_the_drain_deadline_the_remaining_connections_are_aborted_once() {
        let mut listener = reach(ListenerState::Draining);
        ok(listener.handle_connection_closed(t(10)));
        ok(listener.handle_timeout(t(1_001)));
        assert_eq!(
            actions(&mut listener),
            [],
            "L3 violated: aborted before the deadline"
        );
        ok(listener.handle_timeout(t(1_002)));
        assert_eq!(
            actions(&mut listener),
            [ListenerAction::AbortConnections { open: 1 }],
            "L3 violated"
        );
        assert!(
            !listener.is_drained(),
            "L3 violated: drained before the aborted one closed"
        );
        ok(listener.handle_timeout(t(9_000)));
        ok(listener.drain(t(9_001), ms(1)));
        assert_eq!(actions(&mut listener), [], "L3 violated: aborted twice");
        ok(listener.handle_connection_closed(t(9_002)));
        assert!(listener.is_drained(), "L3 violated");
    }

    #[test]
    fn l3_a_drain_with_nothing_open_is_drained_at_once() {
        let mut listener = listening_with(0);
        ok(listener.drain(t(1), ms(100)));
        assert!(listener.is_drained());
        assert_eq!(
            actions(&mut listener),
            [ListenerAction::StopAccepting, ListenerAction::Close]
        );
    }

    #[test]
    fn l3_a_zero_drain_timeout_aborts_at_the_first_timeout() {
        let mut listener = listening_with(3);
        ok(listener.drain(t(1), Duration::ZERO));
        ok(listener.handle_timeout(t(1)));
        assert!(
            actions(&mut listener).contains(&ListenerAction::AbortConnections { open: 3 }),
            "L3 violated"
        );
    }

    #[test]
    fn l3_a_drain_after_stop_keeps_the_single_close() {
        let mut listener = reach(ListenerState::Stopped);
        ok(listener.drain(t(3), ms(10)));
        assert_eq!(listener.state(), ListenerState::Draining);
        assert_eq!(actions(&mut listener), [], "L2 violated: closed again");
    }

    #[test]
    fn drained_is_final() {
        for input in every_input() {
            let mut listener = reach(ListenerState::Drained);
            let _ = listener.handle(t(50), input);
            assert_eq!(listener.state(), ListenerState::Drained, "{input:?}");
            assert_eq!(actions(&mut listener), [], "{input:?}");
        }
    }
}

// Tests across every state and input.
mod whole_listener {
    use super::*;

    #[test]
    fn every_input_in_every_state_is_applied_or_refused_without_a_trace() {
        for state in ListenerState::ALL {
            for input in every_input() {
                for now in [t(0), t(1_500), Instant::MAX] {
                    let before = reach(state);
                    let mut listener = before.clone();
                    if listener.handle(now, input).is_err() {
                        assert_eq!(listener, before, "{input:?} in {state} left a trace");
                    }
                }
            }
        }
    }

    #[test]
    fn time_going_backwards_is_treated_as_no_time_passing() {
        let mut listener = listening_with(0);
        ok(listener.handle_timeout(t(100)));
        ok(listener.handle_accept_failed(t(50), IoErrorKind::Other));
        assert_eq!(listener.poll_timeout(), Some(t(105)), "C11 violated");
    }

    #[test]
    fn pending_actions_are_reported_until_polled() {
        let mut listener = listening_with(0);
        assert!(!listener.has_pending_actions());
        ok(listener.stop(t(1)));
        assert!(listener.has_pending_actions());
        actions(&mut listener);
        assert!(!listener.has_pending_actions());
    }

    #[test]
    fn states_inputs_and_errors_display_by_name() {
        use std::string::ToString;
        let names = ListenerState::ALL.map(|state| state.to_string());
        assert_eq!(
            names,
            [
                "Listening",
                "Paused",
                "Stopped",
                "Draining",
                "Aborting",
                "Drained"
            ]
        );
        let inputs = every_input()
            .iter()
            .map(ListenerInput::name)
            .collect::<Vec<_>>();
        assert_eq!(
            inputs,
            [
                "handle_accepted",
                "handle_connection_closed",
                "stop",
                "drain",
                "drain",
                "drain",
                "handle_timeout",
                "handle_accept_failed",
                "handle_accept_failed",
                "handle_accept_failed",
                "handle_accept_failed",
                "handle_accept_failed",
            ]
        );
        assert_eq!(
            ListenerError::InvalidTransition {
                state: ListenerState::Stopped,
                input: ListenerInput::Accepted
            }
            .to_string(),
            "handle_accepted is not valid in listener state Stopped"
        );
        assert_eq!(
            ListenerError::NoOpenConnection.to_string(),
            "a connection closed that was never open"
        );
        assert_eq!(
            ListenerError::TooManyConnections.to_string(),
            "more than u32::MAX open connections"
        );
    }
}
