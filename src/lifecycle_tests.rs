//! Unit tests of [`Lifecycle`], grouped by the state they start from. Each test that checks a
//! rule of the contract carries the rule's id in its name and in its failure messages.

use core::time::Duration;
use std::vec::Vec;

use super::*;
use crate::{InputKind, Permits};

const NOTHING: Permits = Permits {
    send: false,
    queue: false,
    receive: false,
    discard: false,
};

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Short deadlines: connect 100 ms, linger 1 s in total and 200 ms idle.
fn config() -> Config {
    Config::new()
        .with_connect_timeout(Duration::from_millis(100))
        .and_then(|c| c.with_linger(Duration::from_millis(1_000), Duration::from_millis(200)))
        .unwrap()
}

/// More actions than any state has pending at once (there are four kinds, each pending once).
const MOST_PENDING: usize = 8;

/// Every pending action. Bounded, so that a core whose `poll_action` never says `None` fails the
/// test at once (C1) instead of hanging it.
fn actions(conn: &mut Lifecycle) -> Vec<Action> {
    let actions: Vec<_> = core::iter::from_fn(|| conn.poll_action())
        .take(MOST_PENDING + 1)
        .collect();
    assert!(
        actions.len() <= MOST_PENDING,
        "C1 violated: poll_action kept handing out actions: {actions:?}"
    );
    actions
}

fn ok(result: Result<Outcome, Error>) -> Outcome {
    result.unwrap()
}

/// A connection in `state`, reached through the public inputs at time 10 ms, actions drained.
fn reach(state: State) -> Lifecycle {
    use State::*;
    let now = t(10);
    let mut conn = match state {
        Idle => Lifecycle::new(config()),
        Connecting => {
            let mut conn = Lifecycle::new(config());
            ok(conn.start_connect(now, 2));
            conn
        }
        _ => Lifecycle::accepted(now, config()),
    };
    let inputs: &[Input] = match state {
        Idle | Connecting | Established => &[],
        SendFlushing => &[Input::ShutdownSend],
        SendShut => &[Input::ShutdownSend, Input::Flushed],
        PeerShut => &[Input::EndOfStream],
        PeerShutSendFlushing => &[Input::EndOfStream, Input::ShutdownSend],
        BothShut => &[Input::ShutdownSend, Input::Flushed, Input::EndOfStream],
        ClosingFlushing => &[Input::Close],
        ClosingFlushingPeerShut => &[Input::EndOfStream, Input::Close],
        Lingering => &[Input::ShutdownSend, Input::Flushed, Input::Close],
        Acknowledging => &[
            Input::ShutdownSend,
            Input::Flushed,
            Input::Close,
            Input::EndOfStream,
        ],
        Closed => &[Input::Abort],
    };
    for input in inputs {
        ok(conn.handle(now, *input));
    }
    actions(&mut conn);
    assert_eq!(conn.state(), state, "reach({state}) went astray");
    conn
}

/// Inputs of every kind, with the values at the edges of their ranges.
fn every_input() -> Vec<Input> {
    let mut inputs = std::vec![
        Input::StartConnect { candidates: 0 },
        Input::StartConnect { candidates: 1 },
        Input::StartConnect { candidates: 3 },
        Input::StartConnect {
            candidates: usize::MAX
        },
        Input::ShutdownSend,
        Input::Close,
        Input::Abort,
        Input::Abandon,
        Input::AbortForDrain,
        Input::Connected { candidate: 0 },
        Input::Connected { candidate: 1 },
        Input::Connected {
            candidate: usize::MAX
        },
        Input::Received { len: 0 },
        Input::Received { len: 1 },
        Input::Received { len: usize::MAX },
        Input::EndOfStream,
        Input::Flushed,
        Input::Acknowledged,
        Input::Timeout,
    ];
    for kind in IoErrorKind::ALL {
        inputs.push(Input::Error(kind));
        inputs.push(Input::ConnectFailed { candidate: 0, kind });
    }
    inputs.push(Input::ConnectFailed {
        candidate: 7,
        kind: IoErrorKind::Other,
    });
    inputs
}

// Tests for the Idle state.
mod idle {
    use super::*;

    #[test]
    fn idle_permits_nothing_and_has_no_deadline() {
        let conn = reach(State::Idle);
        assert_eq!(conn.permits(), NOTHING);
        assert_eq!(conn.poll_timeout(), None);
        assert_eq!(conn.close_reason(), None);
    }

    #[test]
    fn c1_has_pending_actions_says_whether_a_poll_would_hand_one_out() {
        let mut conn = Lifecycle::new(config());
        assert!(
            !conn.has_pending_actions(),
            "C1 violated: actions before any input"
        );
        ok(conn.start_connect(t(0), 2));
        assert!(
            conn.has_pending_actions(),
            "C1 violated: the connect not pending"
        );
        assert_eq!(actions(&mut conn), [Action::Connect { candidate: 0 }]);
        assert!(
            !conn.has_pending_actions(),
            "C1 violated: pending after every poll"
        );
    }

    #[test]
    fn c12_start_connect_emits_connect_to_the_first_candidate_with_a_deadline() {
        let mut conn = Lifecycle::new(config());
        assert_eq!(conn.start_connect(t(5), 3), Ok(Outcome::Changed));
        assert_eq!(
            actions(&mut conn),
            [Action::Connect { candidate: 0 }],
            "C12 violated"
        );
        assert_eq!(
            conn.poll_timeout(),
            Some(t(105)),
            "C12 violated: no attempt deadline"
        );
    }

    #[test]
    fn c9_start_connect_without_candidates_or_with_too_many_is_refused() {
        let mut conn = Lifecycle::new(config());
        assert_eq!(conn.start_connect(t(0), 0), Err(Error::NoCandidates));
        assert_eq!(
            conn.start_connect(t(0), 1 << 16),
            Err(Error::TooManyCandidates)
        );
        assert_eq!(
            conn,
            Lifecycle::new(config()),
            "C9 violated: refused input changed state"
        );
    }

    #[test]
    fn c12_the_largest_candidate_count_is_accepted_and_tried_to_its_last_candidate() {
        let mut conn = Lifecycle::new(config());
        assert_eq!(
            conn.start_connect(t(0), usize::from(u16::MAX)),
            Ok(Outcome::Changed),
            "C12 violated: the largest candidate count refused"
        );
        for candidate in 0..usize::from(u16::MAX) - 1 {
            assert_eq!(actions(&mut conn), [Action::Connect { candidate }]);
            ok(conn.handle_connect_failed(t(1), candidate, IoErrorKind::Refused));
        }
        let last = usize::from(u16::MAX) - 1;
        assert_eq!(
            actions(&mut conn),
            [Action::Connect { candidate: last }],
            "C12 violated: the last candidate not tried"
        );
        ok(conn.handle_connected(t(2), last));
        assert_eq!(conn.state(), State::Established);
    }

    #[test]
    fn c12_candidate_indices_past_a_byte_reach_the_adapter_whole() {
        let mut conn = Lifecycle::new(config());
        ok(conn.start_connect(t(0), 300));
        for candidate in 0..257 {
            assert_eq!(
                actions(&mut conn),
                [Action::Connect { candidate }],
                "C12 violated: attempt {candidate} handed out as another"
            );
            ok(conn.handle_connect_failed(t(1), candidate, IoErrorKind::Refused));
        }
    }

    #[test]
    fn c9_reports_before_connecting_are_refused() {
        for input in [
            Input::EndOfStream,
            Input::Flushed,
            Input::Received { len: 1 },
        ] {
            let mut conn = reach(State::Idle);
            assert_eq!(
                conn.handle(t(1), input),
                Err(Error::InvalidTransition {
                    state: State::Idle,
                    input: input.kind()
                }),
                "C9 violated for {input:?}"
            );
        }
    }

    #[test]
    fn c6_close_before_connecting_is_an_abort() {
        let mut conn = reach(State::Idle);
        ok(conn.close(t(1)));
        assert_eq!(actions(&mut conn), [Action::SetLingerZero, Action::Close]);
        assert_eq!(conn.close_reason(), Some(CloseReason::Aborted));
    }
}

// Tests for the Connecting state.
mod connecting {
    use super::*;

    #[test]
    fn c12_candidates_are_tried_in_order_one_at_a_time() {
        let mut conn = Lifecycle::new(config());
        ok(conn.start_connect(t(0), 3));
        for candidate in 0..2 {
            assert_eq!(
                actions(&mut conn),
                [Action::Connect { candidate }],
                "C12 violated: wrong next attempt"
            );
            // No second attempt while one is in flight.
            ok(conn.handle_timeout(t(1)));
            assert_eq!(actions(&mut conn), [], "C12 violated: two attempts at once");
            ok(conn.handle_connect_failed(t(2), candidate, IoErrorKind::Refused));
        }
        assert_eq!(actions(&mut conn), [Action::Connect { candidate: 2 }]);
        ok(conn.handle_connected(t(3), 2));
        assert_eq!(conn.state(), State::Established);
        assert_eq!(
            conn.poll_timeout(),
            None,
            "attempt deadline outlived the connect"
        );
    }

    #[test]
    fn c12_an_attempt_past_its_deadline_moves_to_the_next_candidate() {
        let mut conn = reach(State::Connecting);
        assert_eq!(conn.poll_timeout(), Some(t(110)));
        assert_eq!(conn.handle_timeout(t(109)), Ok(Outcome::Unchanged));
        ok(conn.handle_timeout(t(110)));
        assert_eq!(
            actions(&mut conn),
            [Action::Connect { candidate: 1 }],
            "C12 violated"
        );
        assert_eq!(
            conn.poll_timeout(),
            Some(t(210)),
            "C12 violated: deadline not renewed"
        );
    }

    #[test]
    fn c12_when_every_candidate_fails_the_connection_closes_with_the_last_error() {
        let mut conn = reach(State::Connecting);
        ok(conn.handle_connect_failed(t(20), 0, IoErrorKind::Refused));
        actions(&mut conn);
        ok(conn.handle_connect_failed(t(30), 1, IoErrorKind::Other));
        assert_eq!(actions(&mut conn), [Action::Close]);
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::ConnectFailed(IoErrorKind::Other)),
            "C12 violated: not the last error"
        );
    }

    #[test]
    fn c12_the_last_attempt_timing_out_closes_as_timed_out() {
        let mut conn = Lifecycle::new(config());
        ok(conn.start_connect(t(0), 1));
        actions(&mut conn);
        ok(conn.handle_timeout(t(100)));
        assert_eq!(actions(&mut conn), [Action::Close]);
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::ConnectFailed(IoErrorKind::TimedOut))
        );
    }

    #[test]
    fn c9_a_report_for_an_attempt_not_yet_handed_out_is_refused() {
        let mut conn = Lifecycle::new(config());
        ok(conn.start_connect(t(0), 2));
        let before = conn.clone();
        assert_eq!(
            conn.handle_connected(t(1), 0),
            Err(Error::InvalidTransition {
                state: State::Connecting,
                input: InputKind::Connected
            }),
            "C9 violated"
        );
        assert_eq!(conn, before, "C9 violated: refused input changed state");
        assert_eq!(actions(&mut conn), [Action::Connect { candidate: 0 }]);
    }

    #[test]
    fn c9_a_stale_report_for_an_abandoned_attempt_is_refused() {
        let mut conn = reach(State::Connecting);
        ok(conn.handle_timeout(t(200)));
        actions(&mut conn);
        let before = conn.clone();
        assert_eq!(
            conn.handle_connected(t(201), 0),
            Err(Error::NotCurrentCandidate {
                current: 1,
                reported: 0
            })
        );
        assert_eq!(conn, before, "C9 violated: refused input changed state");
    }

    #[test]
    fn connecting_permits_nothing_until_connected() {
        let mut conn = reach(State::Connecting);
        assert_eq!(conn.permits(), NOTHING);
        ok(conn.handle_connected(t(11), 0));
        assert!(conn.may_send() && conn.may_queue() && conn.may_receive());
        assert!(!conn.must_discard());
    }

    #[test]
    fn c6_abort_while_connecting_drops_the_pending_attempt() {
        let mut conn = Lifecycle::new(config());
        ok(conn.start_connect(t(0), 2));
        ok(conn.abort(t(1)));
        assert_eq!(
            actions(&mut conn),
            [Action::SetLingerZero, Action::Close],
            "C6 violated"
        );
    }

    #[test]
    fn c6_abandon_while_connecting_drops_the_pending_attempt() {
        let mut conn = Lifecycle::new(config());
        ok(conn.start_connect(t(0), 2));
        ok(conn.abandon(t(1)));
        assert_eq!(
            actions(&mut conn),
            [Action::SetLingerZero, Action::Close],
            "C6 violated"
        );
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Abandoned),
            "C6 violated"
        );
    }
}

// Tests for the Established state and the half-closed states of the data phase.
mod established {
    use super::*;

    #[test]
    fn c4_shutdown_send_waits_for_the_flush() {
        let mut conn = reach(State::Established);
        ok(conn.shutdown_send(t(11)));
        assert_eq!(
            actions(&mut conn),
            [],
            "C4 violated: shutdown before the flush"
        );
        assert!(conn.may_send(), "queued data must still be allowed out");
        assert!(!conn.may_queue(), "no new data after shutdown_send");
        ok(conn.handle_flushed(t(12)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite], "C4 violated");
        assert!(
            conn.may_receive(),
            "receiving goes on after shutdown(Write)"
        );
    }

    #[test]
    fn c3_no_send_after_the_send_side_is_shut_whatever_comes_next() {
        for next in every_input() {
            let mut conn = reach(State::SendShut);
            let _ = conn.handle(t(20), next);
            assert!(!conn.may_send(), "C3 violated after {next:?}");
        }
    }

    #[test]
    fn c10_repeated_shutdown_emits_nothing() {
        let mut conn = reach(State::Established);
        ok(conn.shutdown_send(t(11)));
        assert_eq!(
            conn.shutdown_send(t(12)),
            Ok(Outcome::Unchanged),
            "C10 violated"
        );
        ok(conn.handle_flushed(t(13)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite]);
        assert_eq!(
            conn.shutdown_send(t(14)),
            Ok(Outcome::Unchanged),
            "C10 violated"
        );
        ok(conn.handle_flushed(t(15)));
        assert_eq!(actions(&mut conn), [], "C10 violated: a second shutdown");
    }

    #[test]
    fn flushed_while_sending_freely_changes_nothing() {
        let mut conn = reach(State::Established);
        assert_eq!(conn.handle_flushed(t(11)), Ok(Outcome::Unchanged));
        assert_eq!(actions(&mut conn), []);
    }

    #[test]
    fn an_accepted_connection_starts_its_clock_at_the_accept() {
        let mut conn = Lifecycle::accepted(t(500), config());
        assert_eq!(conn.now(), t(500));
        ok(conn.close(t(100))); // earlier than the accept: no time has passed
        assert_eq!(conn.poll_timeout(), Some(t(1_500)), "C11 violated");
    }

    #[test]
    fn received_bytes_while_open_change_nothing() {
        let mut conn = reach(State::Established);
        assert_eq!(conn.handle_received(t(11), 512), Ok(Outcome::Unchanged));
    }

    #[test]
    fn c9_an_empty_receive_is_refused_as_it_is_the_end_of_stream() {
        let mut conn = reach(State::Established);
        assert_eq!(conn.handle_received(t(11), 0), Err(Error::EmptyReceive));
        assert_eq!(conn, reach(State::Established), "C9 violated");
    }

    #[test]
    fn c7_a_reset_ends_both_directions_and_closes_as_peer_reset() {
        let mut conn = reach(State::Established);
        ok(conn.handle_error(t(11), IoErrorKind::Reset));
        assert_eq!(conn.permits(), NOTHING, "C7 violated");
        assert_eq!(actions(&mut conn), [Action::Close], "C7 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::PeerReset),
            "C7 violated"
        );
    }

    #[test]
    fn c7_every_error_kind_closes_with_that_kind_from_every_connected_state() {
        for state in State::ALL.into_iter().filter(|s| s.is_connected()) {
            for kind in IoErrorKind::ALL {
                let mut conn = reach(state);
                ok(conn.handle_error(t(11), kind));
                assert_eq!(
                    actions(&mut conn),
                    [Action::Close],
                    "C7 violated in {state} for {kind:?}"
                );
                assert_eq!(
                    conn.close_reason(),
                    Some(CloseReason::from_error(kind)),
                    "C7 violated in {state}"
                );
            }
        }
    }

    #[test]
    fn c7_an_error_drops_a_shutdown_not_yet_performed() {
        let mut conn = reach(State::SendFlushing);
        ok(conn.handle_flushed(t(11)));
        ok(conn.handle_error(t(12), IoErrorKind::BrokenPipe));
        assert_eq!(actions(&mut conn), [Action::Close], "C7 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Error(IoErrorKind::BrokenPipe))
        );
    }

    #[test]
    fn seed_client_flow_sends_shuts_reads_to_end_and_closes_gracefully() {
        let mut conn = reach(State::Established);
        ok(conn.shutdown_send(t(11)));
        ok(conn.handle_flushed(t(11)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite]);
        assert_eq!(conn.state(), State::SendShut);
        ok(conn.handle_received(t(12), 14));
        ok(conn.handle_end_of_stream(t(13)));
        assert_eq!(conn.state(), State::BothShut);
        assert_eq!(conn.permits(), NOTHING);
        ok(conn.close(t(14)));
        assert_eq!(conn.state(), State::Acknowledging, "C13 violated");
        assert_eq!(
            actions(&mut conn),
            [],
            "C13 violated: closed before the peer's ack"
        );
        ok(conn.handle_acknowledged(t(15)));
        assert_eq!(
            actions(&mut conn),
            [Action::Close],
            "C10 violated: shutdown repeated"
        );
        assert_eq!(conn.close_reason(), Some(CloseReason::Graceful));
    }

    #[test]
    fn seed_server_flow_echoes_after_the_peer_shut_then_closes_gracefully() {
        let mut conn = reach(State::Established);
        ok(conn.handle_received(t(11), 14));
        ok(conn.handle_end_of_stream(t(12)));
        assert_eq!(conn.state(), State::PeerShut);
        assert!(conn.may_send() && conn.may_queue() && !conn.may_receive());
        ok(conn.shutdown_send(t(13)));
        ok(conn.handle_flushed(t(13)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite]);
        ok(conn.close(t(14)));
        assert_eq!(
            actions(&mut conn),
            [],
            "C13 violated: closed before the peer's ack"
        );
        ok(conn.handle_acknowledged(t(15)));
        assert_eq!(actions(&mut conn), [Action::Close]);
        assert_eq!(conn.close_reason(), Some(CloseReason::Graceful));
    }

    #[test]
    fn c9_bytes_after_the_peers_end_of_stream_are_refused() {
        for state in [
            State::PeerShut,
            State::PeerShutSendFlushing,
            State::BothShut,
            State::ClosingFlushingPeerShut,
            State::Acknowledging,
        ] {
            let mut conn = reach(state);
            assert_eq!(
                conn.handle_received(t(11), 1),
                Err(Error::InvalidTransition {
                    state,
                    input: InputKind::Received
                }),
                "C9 violated in {state}"
            );
        }
    }

    #[test]
    fn a_repeated_end_of_stream_changes_nothing() {
        let mut conn = reach(State::PeerShut);
        assert_eq!(conn.handle_end_of_stream(t(11)), Ok(Outcome::Unchanged));
    }

    #[test]
    fn end_of_stream_while_flushing_still_waits_for_the_flush() {
        let mut conn = reach(State::SendFlushing);
        ok(conn.handle_end_of_stream(t(11)));
        assert_eq!(conn.state(), State::PeerShutSendFlushing);
        assert_eq!(actions(&mut conn), [], "C4 violated");
        ok(conn.handle_flushed(t(12)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite]);
        assert_eq!(conn.state(), State::BothShut);
    }

    #[test]
    fn the_data_phase_has_no_deadline() {
        for state in [
            State::Established,
            State::SendFlushing,
            State::SendShut,
            State::PeerShut,
            State::PeerShutSendFlushing,
            State::BothShut,
        ] {
            let mut conn = reach(state);
            assert_eq!(conn.poll_timeout(), None, "{state}");
            assert_eq!(conn.handle_timeout(t(1 << 40)), Ok(Outcome::Unchanged));
            assert_eq!(conn.state(), state);
        }
    }

    // Abandon in the data phase (rule A1): a drop after the application shut its send side is
    // the close it was heading for, not a reset.

    #[test]
    fn a1_abandon_after_shutdown_send_lingers_instead_of_resetting() {
        // Dropped right after the shutdown was decided, before the adapter performed it: the
        // shutdown still goes out, then the close lingers for the peer.
        let mut conn = reach(State::SendFlushing);
        ok(conn.handle_flushed(t(11)));
        assert_eq!(conn.abandon(t(12)), Ok(Outcome::Changed), "A1 violated");
        assert_eq!(conn.state(), State::Lingering, "A1 violated");
        assert_eq!(
            actions(&mut conn),
            [Action::ShutdownWrite],
            "A1 violated: a drop after shutdown_send reset the connection"
        );
        assert!(conn.must_discard(), "A1 violated: not reading to the end");
        assert_eq!(
            conn.poll_timeout(),
            Some(t(212)),
            "A1 violated: no deadline"
        );
        ok(conn.handle_received(t(20), 100));
        ok(conn.handle_end_of_stream(t(30)));
        assert_eq!(conn.state(), State::Acknowledging, "C13 violated");
        ok(conn.handle_acknowledged(t(31)));
        assert_eq!(actions(&mut conn), [Action::Close], "A1 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Graceful),
            "A1 violated"
        );
    }

    #[test]
    fn a1_abandon_while_our_send_side_flushes_shuts_it_once_flushed_then_lingers() {
        let mut conn = reach(State::SendFlushing);
        assert_eq!(conn.abandon(t(11)), Ok(Outcome::Changed), "A1 violated");
        assert_eq!(conn.state(), State::ClosingFlushing, "A1 violated");
        assert_eq!(
            actions(&mut conn),
            [],
            "A1 violated: a drop while flushing cut the flush short"
        );
        assert!(
            conn.may_send(),
            "A1 violated: the queued data may not go out"
        );
        ok(conn.handle_flushed(t(12)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite], "C4 violated");
        assert_eq!(conn.state(), State::Lingering, "A1 violated");
    }

    #[test]
    fn a1_abandon_after_both_sides_shut_closes_gracefully_once_acknowledged() {
        let mut conn = reach(State::BothShut);
        assert_eq!(conn.abandon(t(11)), Ok(Outcome::Changed), "A1 violated");
        assert_eq!(
            actions(&mut conn),
            [],
            "A1 violated: a drop after both sides shut reset the connection"
        );
        assert_eq!(conn.state(), State::Acknowledging, "C13 violated");
        ok(conn.handle_acknowledged(t(12)));
        assert_eq!(actions(&mut conn), [Action::Close], "A1 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Graceful),
            "A1 violated"
        );
    }

    #[test]
    fn a1_abandon_after_the_peer_shut_while_ours_flushes_closes_gracefully_once_acknowledged() {
        let mut conn = reach(State::PeerShutSendFlushing);
        assert_eq!(conn.abandon(t(11)), Ok(Outcome::Changed), "A1 violated");
        assert_eq!(conn.state(), State::ClosingFlushingPeerShut, "A1 violated");
        assert_eq!(actions(&mut conn), [], "A1 violated: the flush cut short");
        ok(conn.handle_flushed(t(12)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite], "A1 violated");
        ok(conn.handle_acknowledged(t(13)));
        assert_eq!(actions(&mut conn), [Action::Close], "A1 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Graceful),
            "A1 violated"
        );
    }

    #[test]
    fn c6_abandon_with_the_send_side_open_resets_even_after_the_peers_end_of_stream() {
        // The peer is done, but the application may still have meant to send: a stream cut off
        // here must not look complete to the peer.
        let mut conn = reach(State::PeerShut);
        assert_eq!(conn.abandon(t(11)), Ok(Outcome::Changed));
        assert_eq!(
            actions(&mut conn),
            [Action::SetLingerZero, Action::Close],
            "C6 violated"
        );
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Abandoned),
            "C6 violated"
        );
    }
}

// Tests for a graceful close before our send side is shut: ClosingFlushing and
// ClosingFlushingPeerShut.
mod closing_flushing {
    use super::*;

    #[test]
    fn c4_close_waits_for_the_flush_then_shuts_before_it_closes() {
        let mut conn = reach(State::Established);
        ok(conn.close(t(11)));
        assert_eq!(
            actions(&mut conn),
            [],
            "C4 violated: acted before the flush"
        );
        ok(conn.handle_flushed(t(12)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite], "C4 violated");
        ok(conn.handle_end_of_stream(t(13)));
        ok(conn.handle_acknowledged(t(14)));
        assert_eq!(actions(&mut conn), [Action::Close], "C4 violated");
    }

    #[test]
    fn c4_close_after_the_peer_shut_emits_shutdown_on_the_flush_then_close() {
        let mut conn = reach(State::ClosingFlushingPeerShut);
        ok(conn.handle_flushed(t(11)));
        assert_eq!(actions(&mut conn), [Action::ShutdownWrite], "C4 violated");
        ok(conn.handle_acknowledged(t(12)));
        assert_eq!(actions(&mut conn), [Action::Close], "C4 violated");
        assert_eq!(conn.close_reason(), Some(CloseReason::Graceful));
    }

    #[test]
    fn c5_received_bytes_are_read_and_discarded_while_flushing() {
        let mut conn = reach(State::ClosingFlushing);
        assert!(conn.may_receive() && conn.must_discard(), "C5 violated");
        assert!(conn.may_send(), "the flush needs send");
        assert!(!conn.may_queue());
        ok(conn.handle_received(t(11), 100));
        assert_eq!(actions(&mut conn), [], "C5 violated: closed on data");
    }

    #[test]
    fn c8_a_flush_that_never_ends_is_reset_at_the_total_deadline() {
        let mut conn = reach(State::ClosingFlushing);
        assert_eq!(conn.poll_timeout(), Some(t(1_010)));
        assert_eq!(conn.handle_timeout(t(1_009)), Ok(Outcome::Unchanged));
        assert!(!conn.is_closed(), "C5 violated: closed before the deadline");
        ok(conn.handle_timeout(t(1_010)));
        assert_eq!(
            actions(&mut conn),
            [Action::SetLingerZero, Action::Close],
            "C8 violated"
        );
        assert_eq!(conn.close_reason(), Some(CloseReason::LingerTimeout));
    }

    #[test]
    fn c8_the_idle_deadline_does_not_cut_a_flush_short() {
        let mut conn = reach(State::ClosingFlushingPeerShut);
        ok(conn.handle_timeout(t(500)));
        assert_eq!(conn.state(), State::ClosingFlushingPeerShut);
        ok(conn.handle_timeout(t(1_010)));
        assert!(conn.is_closed(), "C8 violated");
    }

    #[test]
    fn c10_repeated_close_and_shutdown_emit_nothing() {
        let mut conn = reach(State::ClosingFlushing);
        assert_eq!(conn.close(t(20)), Ok(Outcome::Unchanged), "C10 violated");
        assert_eq!(
            conn.shutdown_send(t(21)),
            Ok(Outcome::Unchanged),
            "C10 violated"
        );
        assert_eq!(
            conn.poll_timeout(),
            Some(t(1_010)),
            "a repeated close moved the deadline"
        );
        assert_eq!(actions(&mut conn), []);
    }

    #[test]
    fn c6_abort_during_a_graceful_close_drops_the_pending_shutdown() {
        let mut conn = reach(State::ClosingFlushing);
        ok(conn.handle_flushed(t(11)));
        ok(conn.abort(t(12)));
        assert_eq!(
            actions(&mut conn),
            [Action::SetLingerZero, Action::Close],
            "C6 violated: shutdown after abort"
        );
    }

    #[test]
    fn a1_abandon_during_a_graceful_close_changes_nothing() {
        for state in [State::ClosingFlushing, State::ClosingFlushingPeerShut] {
            let mut conn = reach(state);
            let before = conn.clone();
            assert_eq!(
                conn.abandon(t(20)),
                Ok(Outcome::Unchanged),
                "A1 violated in {state}"
            );
            assert_eq!(
                actions(&mut conn),
                [],
                "A1 violated: a drop reset a closing {state}"
            );
            assert_eq!(conn.state(), state, "A1 violated");
            assert_eq!(
                conn.poll_timeout(),
                before.poll_timeout(),
                "A1 violated: a drop moved the deadline"
            );
        }
    }
}

// Tests for the Lingering state.
mod lingering {
    use super::*;

    /// `Outcome::Changed` names the step, not a difference: bytes received twice at the same
    /// instant restart the idle deadline to where it already was, and both answer `Changed`.
    #[test]
    fn received_while_lingering_is_changed_even_if_the_deadline_stays() {
        let mut conn = reach(State::Lingering);
        assert_eq!(conn.handle_received(t(50), 1), Ok(Outcome::Changed));
        let deadline = conn.poll_timeout();
        let before = conn.clone();
        assert_eq!(conn.handle_received(t(50), 1), Ok(Outcome::Changed));
        assert_eq!(conn.poll_timeout(), deadline);
        assert_eq!(conn, before, "nothing moved, yet the answer is Changed");
    }

    /// A deadline that saturated at `Instant::MAX` is reached by a `now` of `Instant::MAX`.
    #[test]
    fn a_saturated_deadline_fires_at_instant_max() {
        let endless = Config::new()
            .with_linger(Config::LONGEST, Config::LONGEST)
            .unwrap();
        let mut conn = Lifecycle::accepted(Instant::from_micros(u64::MAX - 1), endless);
        ok(conn.close(Instant::from_micros(u64::MAX - 1)));
        ok(conn.handle_flushed(Instant::from_micros(u64::MAX - 1)));
        assert_eq!(conn.state(), State::Lingering);
        assert_eq!(conn.poll_timeout(), Some(Instant::MAX));
        ok(conn.handle_timeout(Instant::from_micros(u64::MAX - 1)));
        assert_eq!(conn.state(), State::Lingering);
        assert_eq!(conn.handle_timeout(Instant::MAX), Ok(Outcome::Changed));
        assert_eq!(conn.close_reason(), Some(CloseReason::LingerTimeout));
    }

    #[test]
    fn c5_lingering_closes_only_on_the_peers_end_of_stream() {
        let mut conn = reach(State::Lingering);
        assert!(conn.may_receive() && conn.must_discard() && !conn.may_send());
        for ms in [20, 100, 150] {
            ok(conn.handle_received(t(ms), 1_000));
            ok(conn.handle_timeout(t(ms)));
            assert_eq!(
                actions(&mut conn),
                [],
                "C5 violated: closed with the peer still sending"
            );
        }
        ok(conn.handle_end_of_stream(t(160)));
        assert_eq!(conn.state(), State::Acknowledging, "C13 violated");
        ok(conn.handle_acknowledged(t(161)));
        assert_eq!(actions(&mut conn), [Action::Close]);
        assert_eq!(conn.close_reason(), Some(CloseReason::Graceful));
    }

    #[test]
    fn c8_a_silent_peer_is_closed_at_the_idle_deadline() {
        let mut conn = reach(State::Lingering);
        assert_eq!(conn.poll_timeout(), Some(t(210)));
        ok(conn.handle_timeout(t(209)));
        assert!(
            !conn.is_closed(),
            "C5 violated: closed before the idle deadline"
        );
        ok(conn.handle_timeout(t(210)));
        assert_eq!(actions(&mut conn), [Action::Close], "C8 violated");
        assert_eq!(conn.close_reason(), Some(CloseReason::LingerTimeout));
    }

    #[test]
    fn c8_received_bytes_restart_the_idle_deadline() {
        let mut conn = reach(State::Lingering);
        assert_eq!(conn.handle_received(t(150), 1), Ok(Outcome::Changed));
        assert_eq!(conn.poll_timeout(), Some(t(350)));
        ok(conn.handle_timeout(t(210)));
        assert!(
            !conn.is_closed(),
            "C5 violated: idle deadline not restarted"
        );
    }

    /// The idle deadline is kept as its lead on the total one in 32 bits: check it stays exact at
    /// the widest lead a configuration allows, when overdue, and at the end of representable time.
    #[test]
    fn c8_the_idle_deadline_is_exact_at_the_edges_of_its_range() {
        let widest = Config::new()
            .with_linger(Config::LONGEST, Duration::from_micros(1))
            .unwrap();
        let us = Instant::from_micros;
        for start in [0, 1_000_000, u64::MAX - 3, u64::MAX] {
            let mut conn = Lifecycle::accepted(us(start), widest);
            ok(conn.shutdown_send(us(start)));
            ok(conn.handle_flushed(us(start)));
            ok(conn.close(us(start)));
            actions(&mut conn);
            let idle = us(start.saturating_add(1));
            assert_eq!(conn.poll_timeout(), Some(idle), "C8 violated from {start}");
            // Time passes without a timeout being handled: the overdue deadline is still reported
            // as it was, not as the new time.
            let later = us(start.saturating_add(1 << 40));
            ok(conn.close(later));
            assert_eq!(conn.poll_timeout(), Some(idle), "C8 violated from {start}");
            ok(conn.handle_timeout(later));
            assert_eq!(
                conn.close_reason(),
                Some(CloseReason::LingerTimeout),
                "C8 violated from {start}"
            );
        }
        // A byte just before the total deadline: the idle deadline lies past it, the total fires.
        let mut conn = reach(State::Lingering);
        ok(conn.handle_received(t(1_005), 1));
        assert_eq!(conn.poll_timeout(), Some(t(1_010)), "C8 violated");
    }

    #[test]
    fn c8_a_trickling_peer_is_closed_at_the_total_deadline() {
        let mut conn = reach(State::Lingering);
        let mut ms = 10;
        while ms < 1_010 {
            ok(conn.handle_received(t(ms), 1));
            ok(conn.handle_timeout(t(ms)));
            assert!(!conn.is_closed(), "C5 violated at {ms} ms");
            ms += 150;
        }
        ok(conn.handle_timeout(t(1_010)));
        assert_eq!(actions(&mut conn), [Action::Close], "C8 violated");
        assert_eq!(conn.close_reason(), Some(CloseReason::LingerTimeout));
    }

    #[test]
    fn c8_the_total_deadline_counts_from_the_close_request_not_from_the_flush() {
        let mut conn = reach(State::ClosingFlushing); // close requested at 10 ms
        ok(conn.handle_flushed(t(900)));
        actions(&mut conn);
        assert_eq!(conn.poll_timeout(), Some(t(1_010)), "C8 violated");
    }

    #[test]
    fn c7_an_error_while_lingering_is_not_a_graceful_close() {
        let mut conn = reach(State::Lingering);
        ok(conn.handle_error(t(20), IoErrorKind::Reset));
        assert_eq!(actions(&mut conn), [Action::Close]);
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::PeerReset),
            "C7 violated"
        );
    }

    #[test]
    fn a1_abandon_while_lingering_changes_nothing() {
        // Dropped as the close's shutdown was decided, before the adapter performed it.
        let mut conn = reach(State::ClosingFlushing);
        ok(conn.handle_flushed(t(11)));
        assert_eq!(conn.state(), State::Lingering);
        let deadline = conn.poll_timeout();
        assert_eq!(conn.abandon(t(12)), Ok(Outcome::Unchanged), "A1 violated");
        assert_eq!(
            actions(&mut conn),
            [Action::ShutdownWrite],
            "A1 violated: a drop while lingering reset the connection"
        );
        assert_eq!(conn.poll_timeout(), deadline, "A1 violated: deadline moved");
        ok(conn.handle_end_of_stream(t(13)));
        ok(conn.handle_acknowledged(t(14)));
        assert_eq!(actions(&mut conn), [Action::Close], "A1 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Graceful),
            "A1 violated"
        );
    }

    #[test]
    fn a1_an_abandoned_close_is_bounded_by_the_linger_deadlines() {
        let mut conn = reach(State::SendShut);
        ok(conn.abandon(t(10)));
        assert_eq!(
            conn.poll_timeout(),
            Some(t(210)),
            "A1 violated: no deadline"
        );
        // A peer that trickles is cut off at the total deadline, as any close.
        let mut ms = 10;
        while ms < 1_010 {
            ok(conn.handle_received(t(ms), 1));
            ok(conn.handle_timeout(t(ms)));
            assert!(!conn.is_closed(), "C5 violated at {ms} ms");
            ms += 150;
        }
        ok(conn.handle_timeout(t(1_010)));
        assert_eq!(actions(&mut conn), [Action::Close], "A1 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::LingerTimeout),
            "A1 violated"
        );
    }
}

// Tests for the Acknowledging state (rule C13): both ends of stream are through, and the close
// waits for the peer to acknowledge ours.
mod acknowledging {
    use super::*;

    /// The three ways a graceful close reaches its end, each from a connection reached at 10 ms
    /// and moved on at `at`: the inputs that take it to Acknowledging, and the actions they leave.
    fn graceful_paths(at: Instant) -> Vec<(&'static str, Lifecycle, Vec<Action>)> {
        let mut both_shut = reach(State::BothShut);
        ok(both_shut.close(at));
        let mut flushed = reach(State::ClosingFlushingPeerShut);
        ok(flushed.handle_flushed(at));
        let mut lingering = reach(State::Lingering);
        ok(lingering.handle_end_of_stream(at));
        let mut dropped = reach(State::BothShut);
        ok(dropped.abandon(at));
        [
            ("BothShut, close", both_shut, std::vec![]),
            (
                "ClosingFlushingPeerShut, flushed",
                flushed,
                std::vec![Action::ShutdownWrite],
            ),
            ("Lingering, end of stream", lingering, std::vec![]),
            ("BothShut, abandon", dropped, std::vec![]),
        ]
        .into_iter()
        .map(|(path, mut conn, expected)| {
            let performed = actions(&mut conn);
            assert_eq!(
                performed, expected,
                "C13 violated: {path} emitted {performed:?}"
            );
            (path, conn, performed)
        })
        .collect()
    }

    #[test]
    fn c13_every_graceful_path_stops_in_acknowledging_with_no_close_until_acknowledged() {
        for (path, mut conn, _) in graceful_paths(t(20)) {
            assert_eq!(
                conn.state(),
                State::Acknowledging,
                "C13 violated: {path} did not wait for the peer's acknowledgement"
            );
            assert_eq!(
                conn.close_reason(),
                None,
                "C13 violated: {path} has a reason"
            );
            assert_eq!(conn.permits(), NOTHING, "C13 violated: {path}");
            assert!(conn.state().is_closing(), "C8 violated: {path}");
            // Everything but the acknowledgement, a deadline, an error or an abort leaves it be.
            for input in [
                Input::ShutdownSend,
                Input::Close,
                Input::Abandon,
                Input::EndOfStream,
                Input::Flushed,
                Input::Timeout,
            ] {
                let deadline = conn.poll_timeout();
                assert_eq!(
                    conn.handle(t(30), input),
                    Ok(Outcome::Unchanged),
                    "C13 violated: {input:?} after {path}"
                );
                assert_eq!(
                    actions(&mut conn),
                    [],
                    "C13 violated: {input:?} after {path} emitted an action"
                );
                assert_eq!(conn.state(), State::Acknowledging, "C13 violated");
                assert_eq!(
                    conn.poll_timeout(),
                    deadline,
                    "C10 violated: {input:?} moved the deadline"
                );
            }
        }
    }

    #[test]
    fn c13_acknowledged_closes_gracefully_and_close_comes_out_once() {
        for (path, mut conn, _) in graceful_paths(t(20)) {
            assert_eq!(
                conn.handle_acknowledged(t(40)),
                Ok(Outcome::Changed),
                "C13 violated after {path}"
            );
            assert_eq!(conn.state(), State::Closed, "C13 violated after {path}");
            assert_eq!(
                conn.close_reason(),
                Some(CloseReason::Graceful),
                "C13 violated after {path}"
            );
            assert_eq!(
                actions(&mut conn),
                [Action::Close],
                "C13 violated: not one plain Close after {path}"
            );
            assert_eq!(conn.poll_timeout(), None, "C2 violated after {path}");
            // A second acknowledgement is a report after close: refused, nothing emitted.
            assert_eq!(
                conn.handle_acknowledged(t(41)),
                Err(Error::InvalidTransition {
                    state: State::Closed,
                    input: InputKind::Acknowledged
                }),
                "C2 violated after {path}"
            );
            for input in [Input::Close, Input::Abort, Input::Abandon, Input::Timeout] {
                ok(conn.handle(t(42), input));
            }
            assert_eq!(actions(&mut conn), [], "C1 violated: a second Close");
            assert_eq!(conn.close_reason(), Some(CloseReason::Graceful));
        }
    }

    #[test]
    fn c13_entering_acknowledging_restarts_the_idle_deadline() {
        // Lingering since 10 ms: its idle deadline is 210 ms. The peer's end of stream at 150 ms
        // starts the wait for the acknowledgement, with an idle deadline of its own.
        let mut conn = reach(State::Lingering);
        assert_eq!(conn.poll_timeout(), Some(t(210)));
        ok(conn.handle_end_of_stream(t(150)));
        assert_eq!(conn.state(), State::Acknowledging);
        assert_eq!(conn.poll_timeout(), Some(t(350)), "C13 violated");
        ok(conn.handle_timeout(t(210)));
        assert!(
            !conn.is_closed(),
            "C13 violated: gave up on the acknowledgement at the lingering's idle deadline"
        );
    }

    #[test]
    fn c13_acknowledging_past_its_idle_deadline_closes_as_linger_timeout_never_graceful() {
        for (path, mut conn, _) in graceful_paths(t(20)) {
            assert_eq!(
                conn.poll_timeout(),
                Some(t(220)),
                "C13 violated: the idle deadline after {path}"
            );
            assert_eq!(conn.handle_timeout(t(219)), Ok(Outcome::Unchanged));
            assert!(
                !conn.is_closed(),
                "C13 violated: {path} closed before the idle deadline"
            );
            ok(conn.handle_timeout(t(220)));
            // Everything we sent went out ahead of our end of stream, so a plain close: as
            // Lingering's timeout, no reset.
            assert_eq!(
                actions(&mut conn),
                [Action::Close],
                "C8 violated after {path}"
            );
            assert_eq!(
                conn.close_reason(),
                Some(CloseReason::LingerTimeout),
                "C13 violated: {path} past its idle deadline"
            );
            // An acknowledgement that comes too late does not make the close graceful.
            assert!(conn.handle_acknowledged(t(221)).is_err());
            assert_eq!(
                conn.close_reason(),
                Some(CloseReason::LingerTimeout),
                "C13 violated: graceful after the deadline"
            );
        }
    }

    #[test]
    fn c13_acknowledging_past_its_total_deadline_closes_as_linger_timeout_never_graceful() {
        // Close asked at 10 ms: the total deadline is 1,010 ms. A peer that trickles until
        // 900 ms, then ends its stream: the wait for the acknowledgement ends at the total
        // deadline, before its idle one (1,100 ms).
        let mut conn = reach(State::Lingering);
        let mut ms = 100;
        while ms < 900 {
            ok(conn.handle_received(t(ms), 1));
            ms += 100;
        }
        ok(conn.handle_end_of_stream(t(900)));
        assert_eq!(conn.state(), State::Acknowledging);
        assert_eq!(conn.poll_timeout(), Some(t(1_010)), "C8 violated");
        ok(conn.handle_timeout(t(1_009)));
        assert!(
            !conn.is_closed(),
            "C13 violated: closed before the deadline"
        );
        ok(conn.handle_timeout(t(1_010)));
        assert_eq!(actions(&mut conn), [Action::Close], "C8 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::LingerTimeout),
            "C13 violated: past the total deadline"
        );
    }

    #[test]
    fn c13_acknowledged_in_every_other_state_is_misuse_and_changes_nothing() {
        // Every other state, and the same states with actions still to hand out: a connect, a
        // shutdown, a close.
        let mut starts: Vec<Lifecycle> = State::ALL
            .into_iter()
            .filter(|s| *s != State::Acknowledging)
            .map(reach)
            .collect();
        let mut connect_pending = Lifecycle::new(config());
        ok(connect_pending.start_connect(t(10), 2));
        starts.push(connect_pending);
        for state in [
            State::SendFlushing,
            State::PeerShutSendFlushing,
            State::ClosingFlushing,
        ] {
            let mut shutdown_pending = reach(state);
            ok(shutdown_pending.handle_flushed(t(10)));
            starts.push(shutdown_pending);
        }
        let mut close_pending = reach(State::Acknowledging);
        ok(close_pending.handle_acknowledged(t(10)));
        starts.push(close_pending);
        for before in starts {
            let state = before.state();
            for now in [t(0), t(10), t(1 << 50), Instant::MAX] {
                let mut conn = before.clone();
                assert_eq!(
                    conn.handle_acknowledged(now),
                    Err(Error::InvalidTransition {
                        state,
                        input: InputKind::Acknowledged
                    }),
                    "C13 violated: Acknowledged accepted in {state} (C9: misuse)"
                );
                assert_eq!(
                    conn, before,
                    "C13 violated: a refused Acknowledged changed {state} (C9)"
                );
            }
        }
    }

    #[test]
    fn c13_abort_while_acknowledging_resets() {
        for (abort, reason) in [
            (Input::Abort, CloseReason::Aborted),
            (Input::AbortForDrain, CloseReason::DrainAborted),
        ] {
            for (path, mut conn, _) in graceful_paths(t(20)) {
                assert_eq!(conn.handle(t(30), abort), Ok(Outcome::Changed));
                assert_eq!(
                    actions(&mut conn),
                    [Action::SetLingerZero, Action::Close],
                    "C6 violated: {abort:?} after {path}"
                );
                assert_eq!(
                    conn.close_reason(),
                    Some(reason),
                    "C13 violated: {abort:?} after {path}"
                );
            }
        }
    }

    #[test]
    fn c13_an_error_while_acknowledging_closes_with_the_error() {
        for kind in IoErrorKind::ALL {
            let mut conn = reach(State::Acknowledging);
            ok(conn.handle_error(t(20), kind));
            assert_eq!(actions(&mut conn), [Action::Close], "C7 violated");
            assert_eq!(
                conn.close_reason(),
                Some(CloseReason::from_error(kind)),
                "C13 violated: {kind:?} while acknowledging"
            );
        }
    }
}

// Tests for the Closed state.
mod closed {
    use super::*;

    /// `is_closing` is "a close is under way", which it no longer is once closed.
    #[test]
    fn is_closing_is_false_once_closed() {
        let closing: Vec<State> = State::ALL.into_iter().filter(|s| s.is_closing()).collect();
        assert_eq!(
            closing,
            [
                State::ClosingFlushing,
                State::ClosingFlushingPeerShut,
                State::Lingering,
                State::Acknowledging
            ]
        );
        assert!(!State::Closed.is_closing());
    }

    /// After the close, `start_connect` is the one intent refused, and `handle_timeout` the one
    /// report accepted, as `Error::InvalidTransition` says.
    #[test]
    fn after_close_start_connect_is_refused_and_a_timeout_is_not() {
        let mut conn = reach(State::Closed);
        for input in every_input() {
            let answer = conn.handle(t(20), input);
            let accepted = matches!(
                input,
                Input::ShutdownSend
                    | Input::Close
                    | Input::Abort
                    | Input::Abandon
                    | Input::AbortForDrain
                    | Input::Timeout
            );
            if accepted {
                assert_eq!(answer, Ok(Outcome::Unchanged), "{input:?}");
            } else {
                assert_eq!(
                    answer,
                    Err(Error::InvalidTransition {
                        state: State::Closed,
                        input: input.kind()
                    }),
                    "{input:?}"
                );
            }
        }
    }

    #[test]
    fn c2_nothing_after_close() {
        let mut conn = reach(State::Closed);
        assert_eq!(
            conn.permits(),
            NOTHING,
            "C2 violated: a permission after close"
        );
        assert_eq!(
            conn.poll_timeout(),
            None,
            "C2 violated: a deadline after close"
        );
        for input in every_input() {
            let _ = conn.handle(t(20), input);
            assert_eq!(
                conn.poll_action(),
                None,
                "C2 violated: {input:?} emitted an action"
            );
            assert_eq!(conn.state(), State::Closed, "C2 violated");
        }
    }

    #[test]
    fn c2_reports_after_close_are_refused_and_intents_are_no_ops() {
        for input in every_input() {
            let mut conn = reach(State::Closed);
            let result = conn.handle(t(20), input);
            if input.kind().is_intent() && input.kind() != InputKind::StartConnect
                || input.kind() == InputKind::Timeout
            {
                assert_eq!(result, Ok(Outcome::Unchanged), "C10 violated for {input:?}");
            } else {
                assert!(
                    matches!(result, Err(Error::InvalidTransition { .. })),
                    "C2 violated: {input:?} accepted after close"
                );
            }
        }
    }

    #[test]
    fn c1_close_is_emitted_exactly_once_on_every_path_to_closed() {
        for state in State::ALL {
            for finish in [
                Input::Abort,
                Input::Abandon,
                Input::AbortForDrain,
                Input::Close,
                Input::Acknowledged,
                Input::Error(IoErrorKind::Reset),
            ] {
                let mut conn = reach(state);
                let closes_before = usize::from(state == State::Closed);
                let mut closes = closes_before;
                for input in [
                    finish,
                    Input::EndOfStream,
                    Input::Flushed,
                    Input::Acknowledged,
                    Input::Close,
                    Input::Abort,
                    Input::Abandon,
                    Input::AbortForDrain,
                ]
                .into_iter()
                .chain([Input::Timeout])
                {
                    let _ = conn.handle(t(5_000), input);
                    closes += actions(&mut conn)
                        .iter()
                        .filter(|a| **a == Action::Close)
                        .count();
                }
                assert!(
                    closes <= 1,
                    "C1 violated: {closes} closes from {state} via {finish:?}"
                );
            }
        }
    }

    #[test]
    fn c10_close_and_abort_of_a_closed_connection_emit_nothing() {
        let mut conn = reach(State::Closed);
        assert_eq!(conn.close(t(20)), Ok(Outcome::Unchanged), "C10 violated");
        assert_eq!(conn.abort(t(21)), Ok(Outcome::Unchanged), "C10 violated");
        assert_eq!(actions(&mut conn), [], "C10 violated");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Aborted),
            "the reason changed"
        );
    }

    #[test]
    fn c10_abandoning_a_closed_connection_emits_nothing_and_keeps_its_reason() {
        let mut graceful = reach(State::Acknowledging);
        ok(graceful.handle_acknowledged(t(20)));
        actions(&mut graceful);
        let mut reset = reach(State::Established);
        ok(reset.handle_error(t(20), IoErrorKind::Reset));
        actions(&mut reset);
        for (mut conn, reason) in [
            (reach(State::Closed), CloseReason::Aborted),
            (graceful, CloseReason::Graceful),
            (reset, CloseReason::PeerReset),
        ] {
            assert_eq!(conn.abandon(t(30)), Ok(Outcome::Unchanged), "C10 violated");
            assert_eq!(actions(&mut conn), [], "C10 violated");
            assert_eq!(conn.close_reason(), Some(reason), "the reason changed");
        }
    }

    #[test]
    fn l3_a_drain_abort_of_a_closed_connection_emits_nothing_and_keeps_its_reason() {
        // A connection that ended on its own before the drain's deadline was not cut off by the
        // drain, and its log must not say it was.
        let closed = |state, input| {
            let mut conn = reach(state);
            ok(conn.handle(t(20), input));
            if conn.state() != State::Closed {
                ok(conn.handle_timeout(Instant::MAX));
            }
            actions(&mut conn);
            conn
        };
        let mut connect_failed = reach(State::Connecting);
        ok(connect_failed.handle_connect_failed(t(20), 0, IoErrorKind::Refused));
        actions(&mut connect_failed);
        ok(connect_failed.handle_connect_failed(t(20), 1, IoErrorKind::Refused));
        actions(&mut connect_failed);
        for (mut conn, reason) in [
            (reach(State::Closed), CloseReason::Aborted),
            (
                closed(State::Acknowledging, Input::Acknowledged),
                CloseReason::Graceful,
            ),
            (
                closed(State::Acknowledging, Input::Timeout),
                CloseReason::LingerTimeout,
            ),
            (
                closed(State::Established, Input::Error(IoErrorKind::Reset)),
                CloseReason::PeerReset,
            ),
            (
                closed(State::Established, Input::Abandon),
                CloseReason::Abandoned,
            ),
            (
                closed(State::Lingering, Input::Timeout),
                CloseReason::LingerTimeout,
            ),
            (
                connect_failed,
                CloseReason::ConnectFailed(IoErrorKind::Refused),
            ),
        ] {
            assert_eq!(conn.close_reason(), Some(reason), "the setup went astray");
            let before = conn.clone();
            assert_eq!(
                conn.abort_for_drain(t(30)),
                Ok(Outcome::Unchanged),
                "L3 violated: a drain abort changed a connection closed as {reason}"
            );
            assert_eq!(
                actions(&mut conn),
                [],
                "L3 violated: a second close for a connection closed as {reason}"
            );
            assert_eq!(
                conn.close_reason(),
                Some(reason),
                "L3 violated: a connection closed as {reason} relabelled by the drain"
            );
            assert_eq!(
                conn.poll_timeout(),
                before.poll_timeout(),
                "L3 violated: a drain abort started a deadline"
            );
        }
    }

    #[test]
    fn the_close_reason_is_none_until_closed() {
        for state in State::ALL {
            assert_eq!(
                reach(state).close_reason().is_some(),
                state == State::Closed,
                "{state}"
            );
        }
    }
}

// Tests across every state and input.
mod whole_machine {
    use super::*;

    /// The state is checked before the input's values (the order `Error` documents): an empty
    /// receive where receiving is not permitted is a misfit, not an empty receive, and a
    /// `start_connect` with no candidates past `Idle` is a misfit, not a missing candidate.
    #[test]
    fn the_state_is_checked_before_the_values() {
        for state in State::ALL {
            let mut conn = reach(state);
            let misfit = |input: Input| {
                Err(Error::InvalidTransition {
                    state,
                    input: input.kind(),
                })
            };
            let empty = Input::Received { len: 0 };
            let expected = if state.permits().receive {
                Err(Error::EmptyReceive)
            } else {
                misfit(empty)
            };
            assert_eq!(conn.handle(t(20), empty), expected, "{state}");
            let none = Input::StartConnect { candidates: 0 };
            let too_many = Input::StartConnect {
                candidates: usize::MAX,
            };
            if state == State::Idle {
                assert_eq!(conn.handle(t(20), none), Err(Error::NoCandidates));
                assert_eq!(conn.handle(t(20), too_many), Err(Error::TooManyCandidates));
            } else {
                assert_eq!(conn.handle(t(20), none), misfit(none), "{state}");
                assert_eq!(conn.handle(t(20), too_many), misfit(too_many), "{state}");
            }
        }
    }

    #[test]
    fn c6_abort_from_every_open_state_is_linger_zero_then_close_without_shutdown() {
        for state in State::ALL.into_iter().filter(|s| *s != State::Closed) {
            let mut conn = reach(state);
            if state == State::SendFlushing {
                // A shutdown decided but not yet performed must not go out after an abort.
                ok(conn.handle_flushed(t(10)));
            }
            ok(conn.abort(t(11)));
            assert_eq!(
                actions(&mut conn),
                [Action::SetLingerZero, Action::Close],
                "C6 violated from {state}"
            );
            assert_eq!(
                conn.close_reason(),
                Some(CloseReason::Aborted),
                "C6 violated"
            );
        }
    }

    #[test]
    fn c6_abandon_with_the_send_side_open_resets_with_its_own_reason() {
        // Not shut by the application: not connected yet, or it may still queue data (A1).
        for state in [
            State::Idle,
            State::Connecting,
            State::Established,
            State::PeerShut,
        ] {
            let mut conn = reach(state);
            assert_eq!(conn.abandon(t(11)), Ok(Outcome::Changed));
            assert_eq!(conn.state(), State::Closed, "abandon left {state} open");
            assert_eq!(
                actions(&mut conn),
                [Action::SetLingerZero, Action::Close],
                "C6 violated from {state}"
            );
            assert_eq!(
                conn.close_reason(),
                Some(CloseReason::Abandoned),
                "C6 violated from {state}"
            );
        }
    }

    #[test]
    fn a1_abandon_after_the_application_shut_its_send_side_is_exactly_a_close() {
        for state in [
            State::SendFlushing,
            State::SendShut,
            State::PeerShutSendFlushing,
            State::BothShut,
            State::ClosingFlushing,
            State::ClosingFlushingPeerShut,
            State::Lingering,
            State::Acknowledging,
        ] {
            let (mut abandoned, mut closed) = (reach(state), reach(state));
            assert_eq!(
                abandoned.abandon(t(11)),
                closed.close(t(11)),
                "A1 violated in {state}"
            );
            assert_eq!(abandoned, closed, "A1 violated: not a close in {state}");
            assert_eq!(
                actions(&mut abandoned),
                actions(&mut closed),
                "A1 violated in {state}"
            );
        }
    }

    #[test]
    fn c6_the_drain_abort_from_every_open_state_is_linger_zero_then_close_without_shutdown() {
        for state in State::ALL.into_iter().filter(|s| *s != State::Closed) {
            let mut conn = reach(state);
            if state == State::SendFlushing {
                // A shutdown decided but not yet performed must not go out after the drain's
                // abort either.
                ok(conn.handle_flushed(t(10)));
            }
            assert_eq!(conn.abort_for_drain(t(11)), Ok(Outcome::Changed));
            assert_eq!(
                conn.state(),
                State::Closed,
                "C6 violated: the drain abort left {state} open"
            );
            assert_eq!(
                actions(&mut conn),
                [Action::SetLingerZero, Action::Close],
                "C6 violated from {state}"
            );
        }
    }

    #[test]
    fn l3_the_drain_abort_is_an_abort_in_every_state_but_for_its_reason() {
        // Every state, and the actions an abort must drop: a connect not yet handed out, and
        // shutdowns decided but not yet performed.
        let mut starts: Vec<Lifecycle> = State::ALL.into_iter().map(reach).collect();
        let mut connect_pending = Lifecycle::new(config());
        ok(connect_pending.start_connect(t(10), 2));
        starts.push(connect_pending);
        for state in [
            State::SendFlushing,
            State::PeerShutSendFlushing,
            State::ClosingFlushing,
        ] {
            let mut shutdown_pending = reach(state);
            ok(shutdown_pending.handle_flushed(t(10)));
            starts.push(shutdown_pending);
        }
        for start in starts {
            let state = start.state();
            let (mut aborted, mut drained) = (start.clone(), start);
            assert_eq!(
                drained.abort_for_drain(t(11)),
                aborted.abort(t(11)),
                "C6 violated: the drain abort answered otherwise than abort in {state}"
            );
            // Apart from the reason, nothing may tell the two apart.
            let reason = drained.close_reason();
            drained.reason = aborted.reason;
            assert_eq!(
                drained, aborted,
                "C6 violated: the drain abort is not an abort in {state}"
            );
            assert_eq!(
                actions(&mut drained),
                actions(&mut aborted),
                "C6 violated: the drain abort's actions in {state}"
            );
            let expected = if state == State::Closed {
                aborted.close_reason()
            } else {
                Some(CloseReason::DrainAborted)
            };
            assert_eq!(
                reason, expected,
                "L3 violated: the drain abort's reason in {state}"
            );
        }
    }

    #[test]
    fn c9_every_input_in_every_state_is_applied_or_refused_without_a_trace() {
        let mut refused = 0;
        for state in State::ALL {
            for input in every_input() {
                for now in [t(0), t(10), t(1 << 50), Instant::MAX] {
                    let before = reach(state);
                    let mut conn = before.clone();
                    if conn.handle(now, input).is_err() {
                        refused += 1;
                        assert_eq!(
                            conn, before,
                            "C9 violated: {input:?} in {state} left a trace"
                        );
                    }
                }
            }
        }
        assert!(refused > 100, "the walk refused only {refused} inputs");
    }

    #[test]
    fn c8_close_is_reachable_from_every_state_and_time_alone_finishes_it() {
        for state in State::ALL {
            let mut conn = reach(state);
            ok(conn.close(t(20)));
            ok(conn.handle_timeout(Instant::MAX));
            assert!(conn.is_closed(), "C8 violated: {state} never closed");
            assert!(
                conn.close_reason().is_some(),
                "C8 violated: {state} closed without a reason"
            );
        }
    }

    #[test]
    fn c8_close_comes_no_later_than_the_total_linger_deadline_from_every_state() {
        for state in State::ALL.into_iter().filter(|s| s.is_connected()) {
            let mut conn = reach(state);
            ok(conn.close(t(20)));
            if let Some(deadline) = conn.poll_timeout() {
                assert!(
                    deadline <= t(1_020),
                    "C8 violated: {state} deadline {deadline:?}"
                );
            }
            ok(conn.handle_timeout(t(1_020)));
            assert!(
                conn.is_closed(),
                "C8 violated: {state} open past the total deadline"
            );
        }
    }

    #[test]
    fn c11_time_going_backwards_is_treated_as_no_time_passing() {
        let mut conn = reach(State::SendShut); // at 10 ms
        ok(conn.handle_received(t(500), 1));
        ok(conn.close(t(100))); // earlier than 500: taken as 500
        assert_eq!(conn.now(), t(500), "C11 violated: the clock went back");
        assert_eq!(conn.poll_timeout(), Some(t(700)), "C11 violated");
        ok(conn.handle_received(t(0), 1));
        assert_eq!(
            conn.poll_timeout(),
            Some(t(700)),
            "C11 violated: deadline moved back"
        );
        ok(conn.handle_timeout(t(300)));
        assert!(
            !conn.is_closed(),
            "C11 violated: an earlier time fired a deadline"
        );
    }

    #[test]
    fn c11_the_same_inputs_give_the_same_outputs() {
        let run = || {
            let mut conn = Lifecycle::new(config());
            let mut trace = Vec::new();
            for (i, input) in every_input().into_iter().cycle().take(200).enumerate() {
                let now = t((i as u64 * 37) % 2_000);
                trace.push((
                    conn.handle(now, input),
                    actions(&mut conn),
                    conn.poll_timeout(),
                ));
            }
            (trace, conn)
        };
        assert_eq!(run(), run(), "C11 violated");
    }

    #[test]
    fn the_permission_table_is_consistent() {
        for state in State::ALL {
            let p = state.permits();
            assert!(!p.queue || p.send, "{state}: may queue but not send");
            assert!(
                !p.discard || p.receive,
                "{state}: must discard but may not receive"
            );
            assert_eq!(p.discard, state.is_closing() && p.receive, "{state}");
        }
    }

    /// 40 bytes, none of them padding: the time seen and the running deadline (8 each), the
    /// settings (12), the idle deadline's lead (4), the candidate and their count (2 each), the
    /// close reason (2), the state and the pending actions (1 each). 32 is out of reach without
    /// losing something observable: while lingering, the time seen, the settings (`config()`),
    /// the total deadline and the idle deadline (either may be overdue, and `poll_timeout` reports
    /// it as it was) take 8 + 12 + 8 + 4 bytes already, leaving nothing for the state.
    #[test]
    fn the_lifecycle_is_small() {
        std::println!(
            "size_of::<Lifecycle>() = {}, size_of::<Listener>() = {}",
            core::mem::size_of::<Lifecycle>(),
            core::mem::size_of::<crate::Listener>()
        );
        assert!(
            core::mem::size_of::<Lifecycle>() <= 40,
            "Lifecycle grew to {} bytes",
            core::mem::size_of::<Lifecycle>()
        );
    }
}
