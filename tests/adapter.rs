//! The adapters' own promises, beyond the scenarios of the fault suite: split halves (T1 over
//! real sockets), the abort handle, a drop while open, misuse; and the edges a review found: an
//! abort that meets a graceful close, a split half woken by the other's close, a split of a
//! closed connection, socket timeouts shorter than the kernel counts, a handler that panics;
//! and what a connector tells its observer of each failed attempt (C12). Each runs through each adapter: `blocking::...` and, with the `tokio` feature, `tokio::...`.
//! One edge is the blocking adapter's alone: a socket handed over in non-blocking mode.

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket_lifecycle::blocking::{Event, ServerConfig};
use socket_lifecycle::{CloseReason, Config, InputKind, IoErrorKind, State};
use support::{
    AbortHandle, Adapter, Blocking, Connection, Receiving, Sending, Task, for_each_adapter,
};

for_each_adapter! {
    t1_split_halves_close_gracefully_once_after_both_are_done,
    t1_a_reset_seen_by_the_reader_stops_the_writer_and_closes_once,
    a1_dropped_with_its_send_side_open_it_resets_as_abandoned,
    a1_dropped_after_shutdown_send_it_finishes_its_lingering_close,
    a1_dropped_after_shutdown_send_a_silent_peer_is_closed_at_the_linger_deadline,
    a1_dropped_after_both_directions_ended_it_closes_gracefully_once_acknowledged,
    a1_split_halves_dropped_after_shutdown_send_finish_the_lingering_close,
    a1_a_server_counts_a_connection_whose_handler_panicked_after_shutdown_send,
    an_abort_handle_wakes_a_recv_blocked_on_a_silent_peer,
    c9_sending_after_shutdown_is_misuse_and_changes_nothing,
    an_idle_timeout_leaves_the_connection_open_for_a_graceful_close,
    l3_an_abort_during_a_lingering_close_closes_as_aborted_not_graceful,
    c6_an_abort_asked_before_close_sends_no_shutdown,
    t1_a_read_half_woken_by_an_abort_gets_an_error_not_an_end_of_stream,
    c1_a_connection_split_after_its_close_reports_the_close_once,
    c8_an_idle_timeout_under_a_microsecond_still_bounds_recv,
    t1_a_write_half_blocked_in_send_returns_when_the_read_half_sees_a_reset,
    l3_a_handler_that_panics_is_counted_closed_and_not_aborted_by_the_drain,
    c12_each_refused_attempt_is_an_event_then_the_close_carries_the_os_error,
    c12_the_close_carries_the_last_attempts_error_not_the_first,
    c12_a_failed_attempt_before_one_that_connects_leaves_the_connection_no_error,
    #[cfg_attr(
        windows,
        ignore = "on Windows a blocked send is one call, bounded by the idle timeout alone: a \
                  Winsock send that times out leaves its socket undefined, so it is not sliced"
    )]
    a2_a_send_to_a_peer_that_reads_nothing_times_out_at_the_idle_timeout_however_it_is_split,
    #[cfg_attr(
        windows,
        ignore = "on Windows a blocked send is one call, bounded by the idle timeout alone: a \
                  Winsock send that times out leaves its socket undefined, so it is not sliced"
    )]
    a2_an_abort_ends_a_send_blocked_on_a_peer_that_reads_nothing,
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android")),
        ignore = "only Linux's TCP_INFO tells the adapter what the peer acknowledged; elsewhere \
                  Graceful means the peer's end of stream came and ours was handed to the kernel"
    )]
    c13_a_reply_the_peer_never_takes_is_not_a_graceful_close,
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android")),
        ignore = "only Linux's TCP_INFO tells the adapter what the peer acknowledged; elsewhere \
                  a reset after both ends of stream goes unseen, and the close is graceful"
    )]
    c13_a_reset_before_the_acknowledgement_is_no_graceful_close_when_the_connection_is_dropped;
    blocking only:
    c8_a_nonblocking_socket_handed_over_is_driven_blocking;
    tokio only:
    a1_a_close_cancelled_then_dropped_goes_on_in_a_task,
    a1_dropped_outside_a_runtime_after_shutdown_send_it_resets_as_aborted,
    a2_a_fresh_recv_after_a_cancelled_one_gets_an_idle_timeout_of_its_own,
    a2_a_fresh_send_after_a_cancelled_one_gets_an_idle_timeout_of_its_own,
}

/// A generous bound on any wait in these tests; none should come near it.
const PATIENCE: Duration = Duration::from_secs(20);

/// How long the test lets other work get into a blocking call (or an await). If it is not there
/// yet, the test still passes for the right reason: the checks hold either way.
const SETTLE: Duration = Duration::from_millis(100);

/// How the peer's stream ended after our side reset it: `Err(ConnectionReset)` when it saw the
/// reset, `Ok(())` when it read a clean end of stream.
///
/// Stack-dependent on Windows: Wine's Winsock over the Linux stack reports a reset to `recv` as
/// an end of stream (0), and only the next `send` fails, with `WSAECONNRESET` (10054); real
/// Windows fails the `recv` itself. There a reset is told from a clean end of stream by that
/// `send`: after a clean end of stream, the first send succeeds.
fn peer_stream_end(peer: &mut TcpStream) -> Result<(), io::ErrorKind> {
    let mut received = Vec::new();
    let result = peer.read_to_end(&mut received).map(drop);
    if cfg!(windows) && result.is_ok() {
        return match peer.write(b"?") {
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {
                Err(io::ErrorKind::ConnectionReset)
            }
            Err(e) => Err(e.kind()),
            Ok(_) => Ok(()),
        };
    }
    result.map_err(|e| e.kind())
}

/// Every close reason a connection reported, in order.
type CloseLog = Arc<Mutex<Vec<CloseReason>>>;

/// The server end of a loopback connection, and its plain std client.
fn accepted_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let peer = TcpStream::connect(listener.local_addr()?)?;
    peer.set_read_timeout(Some(PATIENCE))?;
    let (stream, _) = listener.accept()?;
    Ok((stream, peer))
}

/// `stream` as an adapter connection whose close reasons go to the returned log.
fn logged<A: Adapter>(stream: TcpStream, config: Config) -> io::Result<(A::Connection, CloseLog)> {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&closes);
    let connection = A::accepted(stream, config, move |event: &Event<'_>| {
        if let Event::Closed { reason, .. } = event {
            log.lock().expect("the log").push(*reason);
        }
    })?;
    Ok((connection, closes))
}

/// An adapter connection, its plain std peer, and its close log. Within `A::run`.
fn pair<A: Adapter>(config: Config) -> io::Result<(A::Connection, TcpStream, CloseLog)> {
    let (stream, peer) = accepted_pair()?;
    let (connection, log) = logged::<A>(stream, config)?;
    Ok((connection, peer, log))
}

fn closes(log: &Mutex<Vec<CloseReason>>) -> Vec<CloseReason> {
    log.lock().expect("the log").clone()
}

/// The close reasons once there is one, or none after [`PATIENCE`]: a graceful close ends when
/// the peer has acknowledged our end of stream (C13), a moment after the call that began it.
async fn closes_once_closed<A: Adapter>(log: &Mutex<Vec<CloseReason>>) -> Vec<CloseReason> {
    let deadline = Instant::now() + PATIENCE;
    while closes(log).is_empty() && Instant::now() < deadline {
        A::sleep(Duration::from_millis(1)).await;
    }
    closes(log)
}

/// Long linger deadlines, so only the peer or an abort can end a close in these tests.
fn long_linger() -> Config {
    Config::new()
        .with_linger(PATIENCE, PATIENCE)
        .expect("valid linger")
}

fn t1_split_halves_close_gracefully_once_after_both_are_done<A: Adapter>() -> io::Result<()> {
    A::run(async {
        let (connection, mut peer, log) = pair::<A>(Config::default())?;
        let (mut read, mut write) = connection.split();
        let writer = A::spawn(async move {
            write.send_all(&[7; 100_000]).await?;
            write.shutdown_send()
        });
        let mut echoed = Vec::new();
        peer.read_to_end(&mut echoed)?;
        assert_eq!(
            echoed.len(),
            100_000,
            "T1 violated: the write half's bytes did not all arrive"
        );
        writer.join().await?;
        assert!(
            closes(&log).is_empty(),
            "T1 violated: closed while the read half is alive"
        );
        peer.write_all(b"last words")?;
        peer.shutdown(Shutdown::Write)?;
        let mut buffer = [0; 64];
        let mut received = 0;
        loop {
            match read.recv(&mut buffer).await? {
                0 => break,
                n => received += n,
            }
        }
        assert_eq!(received, 10);
        drop(read);
        assert_eq!(
            closes_once_closed::<A>(&log).await,
            [CloseReason::Graceful],
            "T1 violated: both halves done, both directions ended: one graceful close"
        );
        Ok(())
    })
}

fn t1_a_reset_seen_by_the_reader_stops_the_writer_and_closes_once<A: Adapter>() -> io::Result<()> {
    A::run(async {
        let (connection, peer, log) = pair::<A>(Config::default())?;
        let (mut read, mut write) = connection.split();
        let reader = A::spawn(async move {
            let mut buffer = [0; 64];
            read.recv(&mut buffer).await
        });
        A::sleep(SETTLE).await; // let the reader block on the silent peer
        socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO))?;
        drop(peer); // a reset
        let error = reader.join().await.expect_err("a reset");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        let refused = write
            .send(b"too late")
            .await
            .expect_err("T1 violated: a call started after the close");
        assert_ne!(refused.kind(), io::ErrorKind::InvalidInput);
        drop(write);
        assert_eq!(
            closes(&log),
            [CloseReason::PeerReset],
            "T1 violated: not closed exactly once"
        );
        Ok(())
    })
}

// A1, what a drop means: one test per row of the table in the README ("What a drop means").

fn a1_dropped_with_its_send_side_open_it_resets_as_abandoned<A: Adapter>() -> io::Result<()> {
    A::run(async {
        let (mut connection, mut peer, log) = pair::<A>(Config::default())?;
        connection.send_all(b"half a message").await?;
        drop(connection);
        assert_eq!(
            peer_stream_end(&mut peer),
            Err(io::ErrorKind::ConnectionReset),
            "a connection dropped while open must reset, so a cut-off stream never looks complete"
        );
        assert_eq!(
            closes(&log),
            [CloseReason::Abandoned],
            "C1 violated: a drop closes once, as abandoned"
        );
        Ok(())
    })
}

/// Waits, at most `limit`, for the connection behind `log` to close; its close reasons.
async fn closed_within<A: Adapter>(log: &CloseLog, limit: Duration) -> Vec<CloseReason> {
    let start = Instant::now();
    while closes(log).is_empty() && start.elapsed() < limit {
        A::sleep(Duration::from_millis(5)).await;
    }
    closes(log)
}

fn a1_dropped_after_shutdown_send_it_finishes_its_lingering_close<A: Adapter>() -> io::Result<()> {
    A::run(async {
        let (mut connection, mut peer, log) = pair::<A>(long_linger())?;
        connection.send_all(b"the whole reply").await?;
        connection.shutdown_send()?;
        drop(connection);
        let mut reply = Vec::new();
        peer.read_to_end(&mut reply)?;
        assert_eq!(
            reply, b"the whole reply",
            "A1 violated: a connection dropped after its shutdown must deliver, then end cleanly"
        );
        // Still lingering: what the peer sends now is read and discarded, never left unread.
        peer.write_all(&[1; 64 * 1024])?;
        A::sleep(SETTLE).await;
        assert!(
            closes(&log).is_empty(),
            "A1 violated: closed before the peer's end of stream, within the linger deadlines"
        );
        peer.shutdown(Shutdown::Write)?;
        assert_eq!(
            closed_within::<A>(&log, PATIENCE).await,
            [CloseReason::Graceful],
            "A1 violated: the close a drop left must end gracefully at the peer's end of stream"
        );
        Ok(())
    })
}

fn a1_dropped_after_shutdown_send_a_silent_peer_is_closed_at_the_linger_deadline<A: Adapter>()
-> io::Result<()> {
    const IDLE: Duration = Duration::from_millis(200);
    A::run(async {
        let config = Config::new()
            .with_linger(Duration::from_millis(600), IDLE)
            .expect("valid linger");
        let (mut connection, mut peer, log) = pair::<A>(config)?;
        connection.shutdown_send()?;
        let dropped = Instant::now();
        drop(connection);
        let mut nothing = Vec::new();
        peer.read_to_end(&mut nothing)?; // our end of stream; then the peer says nothing
        let reasons = closed_within::<A>(&log, PATIENCE).await;
        let took = dropped.elapsed();
        assert_eq!(
            reasons,
            [CloseReason::LingerTimeout],
            "A1 violated: a silent peer must be closed at the linger deadline"
        );
        assert!(
            took >= IDLE && took < IDLE + Duration::from_secs(5),
            "A1 violated: closed {took:?} after the drop, not at the {IDLE:?} idle deadline \
             (5 s tolerance)"
        );
        Ok(())
    })
}

fn a1_dropped_after_both_directions_ended_it_closes_gracefully_once_acknowledged<A: Adapter>()
-> io::Result<()> {
    A::run(async {
        let (mut connection, mut peer, log) = pair::<A>(long_linger())?;
        peer.write_all(b"request")?;
        peer.shutdown(Shutdown::Write)?;
        let mut buffer = [0; 64];
        while connection.recv(&mut buffer).await? > 0 {}
        connection.send_all(b"reply").await?;
        connection.shutdown_send()?;
        drop(connection);
        assert_eq!(
            closes_once_closed::<A>(&log).await,
            [CloseReason::Graceful],
            "A1 violated: both directions ended, a drop closes gracefully once the peer \
             acknowledged our end of stream (C13)"
        );
        let mut reply = Vec::new();
        peer.read_to_end(&mut reply)?;
        assert_eq!(reply, b"reply", "A1 violated: the reply must arrive whole");
        Ok(())
    })
}

fn a1_split_halves_dropped_after_shutdown_send_finish_the_lingering_close<A: Adapter>()
-> io::Result<()> {
    A::run(async {
        let (connection, mut peer, log) = pair::<A>(long_linger())?;
        let (read, mut write) = connection.split();
        write.send_all(b"from the write half").await?;
        write.shutdown_send()?;
        drop((read, write));
        let mut reply = Vec::new();
        peer.read_to_end(&mut reply)?;
        assert_eq!(
            reply, b"from the write half",
            "A1 violated: halves dropped after the shutdown must deliver, then end cleanly"
        );
        A::sleep(SETTLE).await;
        assert!(
            closes(&log).is_empty(),
            "A1 violated: closed before the peer's end of stream"
        );
        peer.shutdown(Shutdown::Write)?;
        assert_eq!(
            closed_within::<A>(&log, PATIENCE).await,
            [CloseReason::Graceful],
            "A1 violated: the close the halves left must end gracefully"
        );
        Ok(())
    })
}

fn an_abort_handle_wakes_a_recv_blocked_on_a_silent_peer<A: Adapter>() -> io::Result<()> {
    A::run(async {
        let (mut connection, mut peer, log) = pair::<A>(Config::default())?;
        let handle = connection.abort_handle();
        let reader = A::spawn(async move {
            let mut buffer = [0; 64];
            let result = connection.recv(&mut buffer).await;
            (result.map_err(|e| e.kind()), connection.close_reason())
        });
        A::sleep(SETTLE).await;
        handle.abort();
        let (result, reason) = reader.join().await;
        assert!(
            result.is_err(),
            "an aborted connection's recv is an error, not an end of stream"
        );
        assert_eq!(reason, Some(CloseReason::Aborted));
        assert_eq!(
            closes(&log),
            [CloseReason::Aborted],
            "C1 violated: not closed exactly once"
        );
        assert_eq!(
            peer_stream_end(&mut peer),
            Err(io::ErrorKind::ConnectionReset),
            "C6 violated: an abort must reach the peer as a reset"
        );
        Ok(())
    })
}

fn c9_sending_after_shutdown_is_misuse_and_changes_nothing<A: Adapter>() -> io::Result<()> {
    A::run(async {
        let (mut connection, mut peer, _log) = pair::<A>(Config::default())?;
        connection.shutdown_send()?;
        let error = connection
            .send(b"late")
            .await
            .expect_err("C3 violated: sent after shutdown");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        peer.write_all(b"still receiving")?;
        peer.shutdown(Shutdown::Write)?;
        let mut buffer = [0; 64];
        assert_eq!(
            connection.recv(&mut buffer).await?,
            15,
            "C9 violated: misuse changed the connection"
        );
        assert_eq!(connection.recv(&mut buffer).await?, 0);
        assert_eq!(connection.recv(&mut []).await?, 0);
        assert_eq!(connection.close().await?, CloseReason::Graceful);
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest)?;
        assert!(rest.is_empty());
        Ok(())
    })
}

fn an_idle_timeout_leaves_the_connection_open_for_a_graceful_close<A: Adapter>() -> io::Result<()> {
    let config = Config::new()
        .with_linger(Duration::from_secs(5), Duration::from_secs(2))
        .expect("valid");
    A::run(async {
        let (mut connection, mut peer, log) = pair::<A>(config)?;
        connection.set_idle_timeout(Some(Duration::from_millis(100)))?;
        let mut buffer = [0; 64];
        let error = connection
            .recv(&mut buffer)
            .await
            .expect_err("the idle timeout");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(
            connection.close_reason().is_none(),
            "an idle timeout is the application's to act on"
        );
        let closer = A::spawn(async move { connection.close().await.map_err(|e| e.kind()) });
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest)?; // our end of stream
        drop(peer); // the peer closes: the lingering close ends
        assert_eq!(closer.join().await, Ok(CloseReason::Graceful));
        assert_eq!(closes(&log), [CloseReason::Graceful]);
        Ok(())
    })
}

fn l3_an_abort_during_a_lingering_close_closes_as_aborted_not_graceful<A: Adapter>()
-> io::Result<()> {
    // A straggler a drain gives up on is often in its lingering close, waiting for a peer that
    // never ends its stream. The abort wakes that wait (the blocking adapter's `recv`, by
    // shutting the receive side, which makes it return 0): that is not the peer's end of stream
    // (C5).
    A::run(async {
        let (mut connection, peer, log) = pair::<A>(long_linger())?;
        let handle = connection.abort_handle();
        let closer = A::spawn(async move { connection.close().await.map_err(|e| e.kind()) });
        A::sleep(SETTLE).await;
        handle.abort();
        let answer = closer.join().await;
        assert_eq!(
            answer,
            Ok(CloseReason::Aborted),
            "L3/C5 violated: an abort during a lingering close ended as {answer:?}; the peer \
             never ended its stream, so only an abort can have closed it"
        );
        assert_eq!(
            closes(&log),
            [CloseReason::Aborted],
            "L3 violated: an aborted lingering close must be reported once, as aborted"
        );
        drop(peer);
        Ok(())
    })
}

fn c6_an_abort_asked_before_close_sends_no_shutdown<A: Adapter>() -> io::Result<()> {
    // The abort comes first (a drain's deadline, say) and the application only then closes: the
    // close must be the reset, with no `shutdown(Write)` the peer would read as a clean end.
    A::run(async {
        let (mut connection, mut peer, log) = pair::<A>(long_linger())?;
        connection.abort_handle().abort();
        let reason = connection.close().await.map_err(|e| e.kind());
        assert_eq!(
            reason,
            Ok(CloseReason::Aborted),
            "C6 violated: an abort asked before close ended as {reason:?}"
        );
        let seen = peer_stream_end(&mut peer);
        assert_eq!(
            seen,
            Err(io::ErrorKind::ConnectionReset),
            "C6 violated: the peer of an aborted connection read {seen:?} (an end of stream means \
             shutdown(Write) was sent before the reset)"
        );
        assert_eq!(closes(&log), [CloseReason::Aborted]);
        Ok(())
    })
}

fn t1_a_read_half_woken_by_an_abort_gets_an_error_not_an_end_of_stream<A: Adapter>()
-> io::Result<()> {
    A::run(async {
        let (connection, peer, log) = pair::<A>(Config::default())?;
        let handle = connection.abort_handle();
        let (mut read, write) = connection.split();
        let reader = A::spawn(async move {
            let mut buffer = [0; 64];
            let answer = read.recv(&mut buffer).await.map_err(|e| e.kind());
            (answer, read)
        });
        A::sleep(SETTLE).await;
        handle.abort();
        let (answer, read) = reader.join().await;
        assert!(
            answer.is_err(),
            "T1 violated: a read half woken by an abort returned {answer:?}; 0 would tell the \
             application the peer ended its stream, and it did not"
        );
        drop((read, write));
        assert_eq!(
            closes(&log),
            [CloseReason::Aborted],
            "T1 violated: not closed exactly once, as aborted"
        );
        drop(peer);
        Ok(())
    })
}

fn c1_a_connection_split_after_its_close_reports_the_close_once<A: Adapter>() -> io::Result<()> {
    A::run(async {
        let (mut connection, _peer, log) = pair::<A>(Config::default())?;
        assert_eq!(connection.abort(), CloseReason::Aborted);
        let (read, write) = connection.split();
        drop((read, write));
        assert_eq!(
            closes(&log),
            [CloseReason::Aborted],
            "C1 violated: one socket, released once, reported closed more than once"
        );
        Ok(())
    })
}

fn c8_an_idle_timeout_under_a_microsecond_still_bounds_recv<A: Adapter>() -> io::Result<()> {
    // The kernel counts socket timeouts in microseconds, and a timeout that rounds to zero
    // means "no timeout": a wait for ever on a silent peer.
    A::run(async {
        let (mut connection, peer, _log) = pair::<A>(Config::default())?;
        connection.set_idle_timeout(Some(Duration::from_nanos(1)))?;
        let answer = A::spawn(async move {
            let mut buffer = [0; 64];
            connection.recv(&mut buffer).await.map_err(|e| e.kind())
        })
        .join_within(PATIENCE)
        .await;
        assert_eq!(
            answer,
            Some(Err(io::ErrorKind::TimedOut)),
            "C8 violated: a 1 ns idle timeout gave {answer:?} (None: recv still blocked after \
             {PATIENCE:?}, the timeout became none)"
        );
        drop(peer);
        Ok(())
    })
}

fn c8_a_nonblocking_socket_handed_over_is_driven_blocking() -> io::Result<()> {
    // A socket accepted elsewhere may come in non-blocking mode. The blocking adapter reads its
    // `EAGAIN` as a timeout: without blocking mode a recv would report an idle timeout that was
    // never set, and a lingering close would spin on the CPU until its deadline.
    let (stream, mut peer) = accepted_pair()?;
    stream.set_nonblocking(true)?;
    let (mut connection, _log) = logged::<Blocking>(stream, Config::default())?;
    let reader = thread::spawn(move || {
        let mut buffer = [0; 64];
        connection.recv(&mut buffer).map_err(|e| e.kind())
    });
    thread::sleep(SETTLE);
    // Fails if the reader already gave up and dropped (reset) the connection: the answer says so.
    let _ = peer.write_all(b"late");
    let answer = reader.join().expect("the reader returns");
    assert_eq!(
        answer,
        Ok(4),
        "C8 violated: recv on a socket handed over non-blocking gave {answer:?} instead of \
         waiting for the peer's bytes"
    );
    Ok(())
}

fn t1_a_write_half_blocked_in_send_returns_when_the_read_half_sees_a_reset<A: Adapter>()
-> io::Result<()> {
    // The peer reads nothing, so the writer fills the buffers and blocks in `send`; the reader
    // blocks in `recv`. The peer's reset must end both calls: neither half may hang.
    A::run(async {
        let (connection, peer, log) = pair::<A>(Config::default())?;
        let (mut read, mut write) = connection.split();
        let (unbounded, never_blocked) = mpsc::channel();
        let writer = A::spawn(async move {
            let chunk = [0_u8; 16 * 1024];
            let mut sent = 0_usize;
            loop {
                match write.send(&chunk).await {
                    Ok(n) => sent = sent.saturating_add(n),
                    Err(error) => return (sent, error.kind(), write),
                }
                if sent >= 64 * 1024 * 1024 {
                    let _ = unbounded.send(()); // more than loopback buffers hold: a test defect
                }
            }
        });
        let reader = A::spawn(async move {
            let mut buffer = [0; 64];
            (read.recv(&mut buffer).await.map_err(|e| e.kind()), read)
        });
        A::sleep(SETTLE).await; // both block: the peer is silent and reads nothing
        assert!(
            never_blocked.try_recv().is_err(),
            "T1 test defect: the writer never blocked"
        );
        socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO))?;
        drop(peer); // a reset
        let deadline = Instant::now() + PATIENCE;
        let read_ended = reader.join_within(PATIENCE).await;
        let write_ended = writer
            .join_within(deadline.saturating_duration_since(Instant::now()))
            .await;
        let (Some((read_answer, read)), Some((_, write_kind, write))) = (read_ended, write_ended)
        else {
            panic!("T1 violated: a half was still inside its call {PATIENCE:?} after the reset");
        };
        // Stack-dependent on Windows (see `peer_stream_end`): Wine's `recv` reports the reset as
        // an end of stream when it comes before the write half's failed `send` closed the
        // connection. That neither half hangs is checked above either way.
        let wine_end_of_stream = cfg!(windows) && read_answer == Ok(0);
        if !wine_end_of_stream {
            assert_eq!(
                read_answer,
                Err(io::ErrorKind::ConnectionReset),
                "T1 violated: the read half did not see the reset"
            );
        }
        assert_ne!(
            write_kind,
            io::ErrorKind::InvalidInput,
            "T1 violated: the write half's send after a reset is no misuse"
        );
        drop((read, write));
        // Of a peer's reset, the kernel gives `ECONNRESET` to one of the two calls and `EPIPE`
        // to the other, whichever asks first; the close reason is the first the core hears.
        let reasons = closes(&log);
        assert!(
            matches!(
                reasons[..],
                [CloseReason::PeerReset | CloseReason::Error(IoErrorKind::BrokenPipe)]
            ),
            "T1 violated: not closed exactly once, as the reset: {reasons:?}"
        );
        Ok(())
    })
}

fn l3_a_handler_that_panics_is_counted_closed_and_not_aborted_by_the_drain<A: Adapter>()
-> io::Result<()> {
    // Connection 1's handler panics; connection 2 is a straggler the drain must abort. The
    // server's books must count connection 1 closed, so the drain aborts one connection.
    let config = ServerConfig::default().with_drain_timeout(Duration::from_millis(300));
    let server = A::serve(config, |connection| {
        Box::pin(async move {
            let mut first = [0];
            connection.recv(&mut first).await?;
            assert!(first != *b"p", "the handler panics, on purpose");
            let mut rest = [0; 64];
            connection.recv(&mut rest).await.map(drop) // the straggler waits here
        })
    });
    let mut panicking = TcpStream::connect(server.addr)?;
    panicking.write_all(b"p")?;
    let mut rest = Vec::new();
    let _ = panicking.read_to_end(&mut rest); // the panic drops the connection: a reset
    let mut straggler = TcpStream::connect(server.addr)?;
    straggler.write_all(b"s")?;
    thread::sleep(SETTLE); // the straggler's handler waits for more
    server.drain();
    let report = server.wait(PATIENCE, "L3");
    assert_eq!(
        report.aborted_by_drain, 1,
        "L3 violated: the drain counted {} aborted, and only the straggler was open \
         (a connection whose handler panicked is closed): {report:?}",
        report.aborted_by_drain
    );
    let mut closes = server.log.all_closes();
    closes.sort_by_key(|&(id, _)| id);
    assert_eq!(
        closes,
        [(1, CloseReason::Abandoned), (2, CloseReason::DrainAborted)],
        "L3 violated: each connection closes once, the straggler as aborted by the drain"
    );
    drop(straggler);
    Ok(())
}

/// A1 and L3: a handler shuts its send side, then panics. The server still owns the connection:
/// it finishes the close the drop would have left, and counts it until then, so a drain with the
/// peer silent ends at its deadline with the connection aborted, not at once.
fn a1_a_server_counts_a_connection_whose_handler_panicked_after_shutdown_send<A: Adapter>()
-> io::Result<()> {
    const DRAIN: Duration = Duration::from_millis(800);
    let config = ServerConfig::default().with_drain_timeout(DRAIN);
    let server = A::serve(config, |connection| {
        Box::pin(async move {
            let mut first = [0];
            connection.recv(&mut first).await?;
            connection.shutdown_send()?;
            panic!("the handler panics after its shutdown, on purpose");
        })
    });
    let mut client = TcpStream::connect(server.addr)?;
    client.set_read_timeout(Some(PATIENCE))?;
    client.write_all(b"x")?;
    let mut nothing = Vec::new();
    client.read_to_end(&mut nothing)?; // the server's end of stream; then the client is silent
    thread::sleep(SETTLE);
    let drained = Instant::now();
    let report = server.finish("A1");
    let took = drained.elapsed();
    assert!(
        report.aborted_by_drain == 1 && took >= DRAIN,
        "A1 violated: serve returned {took:?} after the drain began (deadline {DRAIN:?}), \
         having aborted {} connections, while the connection whose handler panicked after its \
         shutdown was still lingering; {report:?}",
        report.aborted_by_drain
    );
    assert_eq!(
        server.log.closes(1),
        [CloseReason::DrainAborted],
        "A1 violated: the lingering connection must be aborted by the drain, once"
    );
    drop(client);
    Ok(())
}

/// A1 on the tokio adapter: a close whose future was dropped (cancelled by a timeout, say) and
/// whose connection was then dropped goes on in a task of the runtime.
#[cfg(feature = "tokio")]
fn a1_a_close_cancelled_then_dropped_goes_on_in_a_task() -> io::Result<()> {
    use support::Tokio;
    Tokio::run(async {
        let (mut connection, mut peer, log) = pair::<Tokio>(long_linger())?;
        let cancelled = ::tokio::time::timeout(SETTLE, connection.close()).await;
        assert!(
            cancelled.is_err(),
            "the close waits for the peer's end of stream"
        );
        drop(connection);
        let mut nothing = Vec::new();
        peer.read_to_end(&mut nothing)?; // our end of stream went out with the close
        ::tokio::time::sleep(SETTLE).await;
        assert!(
            closes(&log).is_empty(),
            "A1 violated: closed before the peer's end of stream"
        );
        peer.shutdown(Shutdown::Write)?;
        assert_eq!(
            closed_within::<Tokio>(&log, PATIENCE).await,
            [CloseReason::Graceful],
            "A1 violated: a cancelled close, then a drop: the close must go on to its end"
        );
        Ok(())
    })
}

/// A1 on the tokio adapter, outside a runtime: nothing can finish the close, so a connection
/// dropped after its shutdown is reset there, with the reason of an abort.
#[cfg(feature = "tokio")]
fn a1_dropped_outside_a_runtime_after_shutdown_send_it_resets_as_aborted() -> io::Result<()> {
    use support::Tokio;
    let runtime = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (connection, mut peer, log) = runtime.block_on(async {
        let (mut connection, peer, log) = pair::<Tokio>(long_linger())?;
        connection.shutdown_send()?;
        io::Result::Ok((connection, peer, log))
    })?;
    drop(runtime);
    drop(connection);
    assert_eq!(
        closes(&log),
        [CloseReason::Aborted],
        "A1: dropped outside a runtime after its shutdown, a connection is reset, once"
    );
    let mut nothing = Vec::new();
    peer.read_to_end(&mut nothing)?; // our end of stream came before the reset
    let after_reset = peer
        .write_all(b"?")
        .and_then(|()| peer.read(&mut [0; 1]).map(drop));
    assert!(
        after_reset.is_err(),
        "A1: the peer of a connection reset outside a runtime must see the reset"
    );
    Ok(())
}

/// A2 on the tokio adapter: a `recv` cancelled (a `timeout` around it) leaves no idle deadline
/// behind: a later `recv` waits its own idle timeout, and gets the bytes that come within it.
#[cfg(feature = "tokio")]
fn a2_a_fresh_recv_after_a_cancelled_one_gets_an_idle_timeout_of_its_own() -> io::Result<()> {
    use support::Tokio;
    const IDLE: Duration = Duration::from_millis(300);
    Tokio::run(async {
        let (mut connection, mut peer, _) = pair::<Tokio>(Config::default())?;
        connection.set_idle_timeout(Some(IDLE));
        let mut buffer = [0; 64];
        let cancelled =
            ::tokio::time::timeout(Duration::from_millis(50), connection.recv(&mut buffer)).await;
        assert!(cancelled.is_err(), "nothing to read yet");
        ::tokio::time::sleep(IDLE + SETTLE).await;
        let writer = thread::spawn(move || {
            thread::sleep(SETTLE);
            peer.write_all(b"late").map(|()| peer)
        });
        let started = Instant::now();
        let received = connection.recv(&mut buffer).await;
        let took = started.elapsed();
        let _peer = writer.join().expect("the writer returns")?;
        assert!(
            matches!(received, Ok(4)),
            "A2 violated: a fresh recv waited {took:?} (idle timeout {IDLE:?}) and got \
             {received:?}: the deadline of a cancelled recv carried over"
        );
        Ok(())
    })
}

/// A2 on the tokio adapter, the send side, where a timeout fails the connection: a `send_all`
/// cancelled on full buffers, then a later `send`, which the peer makes room for within the
/// idle timeout, succeeds.
#[cfg(feature = "tokio")]
fn a2_a_fresh_send_after_a_cancelled_one_gets_an_idle_timeout_of_its_own() -> io::Result<()> {
    use support::Tokio;
    const IDLE: Duration = Duration::from_millis(300);
    Tokio::run(async {
        let (mut connection, mut peer, _) = pair::<Tokio>(Config::default())?;
        connection.set_idle_timeout(Some(IDLE));
        let big = vec![7_u8; 64 << 20];
        let cancelled =
            ::tokio::time::timeout(Duration::from_millis(100), connection.send_all(&big)).await;
        assert!(
            cancelled.is_err(),
            "the peer reads nothing: the buffers fill"
        );
        ::tokio::time::sleep(IDLE + SETTLE).await;
        let reader = thread::spawn(move || {
            thread::sleep(SETTLE);
            let mut sink = vec![0; 1 << 20];
            peer.set_read_timeout(Some(Duration::from_millis(500)))?;
            while let Ok(1..) = peer.read(&mut sink) {}
            io::Result::Ok(peer)
        });
        let started = Instant::now();
        let sent = connection.send(b"more").await;
        let took = started.elapsed();
        let reason = connection.close_reason();
        let _peer = reader.join().expect("the reader returns")?;
        assert!(
            sent.is_ok(),
            "A2 violated: a fresh send waited {took:?} (idle timeout {IDLE:?}) and failed with \
             {sent:?}, closing the connection ({reason:?}): the deadline of a cancelled send \
             carried over"
        );
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// C12: what the connector tells its observer of each attempt.

/// The OS code of a refused connect.
#[cfg(not(windows))]
const REFUSED: i32 = libc::ECONNREFUSED;
/// The OS code of a refused connect: `WSAECONNREFUSED`.
#[cfg(windows)]
const REFUSED: i32 = 10061;

/// An event as the observer saw it, owned, so that whole sequences compare: an error as its
/// kind and its OS code.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Transition(State, State, InputKind),
    AttemptFailed(SocketAddr, io::ErrorKind, Option<i32>),
    Closed(CloseReason, Option<(io::ErrorKind, Option<i32>)>),
}

/// An observer recording every event, and what it recorded.
fn recorder() -> (
    impl FnMut(&Event<'_>) + Send + 'static,
    Arc<Mutex<Vec<Seen>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let observer = move |event: &Event<'_>| {
        let entry = match *event {
            Event::Transition { from, to, input } => Seen::Transition(from, to, input),
            Event::ConnectAttemptFailed { addr, error } => {
                Seen::AttemptFailed(addr, error.kind(), error.raw_os_error())
            }
            Event::Closed { reason, error } => {
                Seen::Closed(reason, error.map(|e| (e.kind(), e.raw_os_error())))
            }
            _ => return,
        };
        log.lock().expect("the log").push(entry);
    };
    (observer, seen)
}

/// Two addresses on loopback where nothing listens: bound, then released.
fn closed_addrs() -> io::Result<[SocketAddr; 2]> {
    let first = TcpListener::bind("127.0.0.1:0")?;
    let second = TcpListener::bind("127.0.0.1:0")?;
    Ok([first.local_addr()?, second.local_addr()?])
}

fn c12_each_refused_attempt_is_an_event_then_the_close_carries_the_os_error<A: Adapter>()
-> io::Result<()> {
    let [first, second] = closed_addrs()?;
    let (observer, seen) = recorder();
    let error = A::run(A::connect_to(&[first, second], Config::default(), observer))
        .expect_err("C12: nothing listens at either address");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    assert_eq!(
        *seen.lock().expect("the log"),
        [
            Seen::Transition(State::Idle, State::Connecting, InputKind::StartConnect),
            Seen::AttemptFailed(first, io::ErrorKind::ConnectionRefused, Some(REFUSED)),
            Seen::AttemptFailed(second, io::ErrorKind::ConnectionRefused, Some(REFUSED)),
            Seen::Transition(State::Connecting, State::Closed, InputKind::ConnectFailed),
            Seen::Closed(
                CloseReason::ConnectFailed(IoErrorKind::Refused),
                Some((io::ErrorKind::ConnectionRefused, Some(REFUSED)))
            ),
        ],
        "C12 violated: each failed attempt is an event, in order, and the close carries the \
         OS error"
    );
    Ok(())
}

/// A listener on loopback whose accept queue is full: a connect to it gets no answer, so it
/// times out. It holds the one connection its backlog of 0 admits.
fn unanswering_listener() -> io::Result<(socket2::Socket, TcpStream)> {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(0)?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP address"))?;
    let queued = TcpStream::connect(addr)?;
    Ok((listener, queued))
}

fn c12_the_close_carries_the_last_attempts_error_not_the_first<A: Adapter>() -> io::Result<()> {
    // The first attempt times out and the second is refused: errors of two kinds, so the close
    // can only carry the second by carrying the last.
    let (listener, _queued) = unanswering_listener()?;
    let silent = listener
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP address"))?;
    let [refused, _] = closed_addrs()?;
    let config = Config::new()
        .with_connect_timeout(Duration::from_millis(200))
        .expect("a valid timeout");
    let (observer, seen) = recorder();
    let error = A::run(A::connect_to(&[silent, refused], config, observer))
        .expect_err("C12: neither address accepts");
    let seen = seen.lock().expect("the log");
    assert!(
        matches!(
            seen[..],
            [
                Seen::Transition(State::Idle, State::Connecting, InputKind::StartConnect),
                Seen::AttemptFailed(a, io::ErrorKind::TimedOut, _),
                Seen::AttemptFailed(b, io::ErrorKind::ConnectionRefused, Some(REFUSED)),
                Seen::Transition(State::Connecting, State::Closed, InputKind::ConnectFailed),
                Seen::Closed(
                    CloseReason::ConnectFailed(IoErrorKind::Refused),
                    Some((io::ErrorKind::ConnectionRefused, Some(REFUSED)))
                ),
            ] if a == silent && b == refused
        ),
        "C12 violated: a timed-out attempt, then a refused one, then the close with the \
         refusal: {seen:?}"
    );
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    Ok(())
}

fn c12_a_failed_attempt_before_one_that_connects_leaves_the_connection_no_error<A: Adapter>()
-> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let listening = listener.local_addr()?;
    let [refused, _] = closed_addrs()?;
    let (observer, seen) = recorder();
    A::run(async {
        let mut connection =
            A::connect_to(&[refused, listening], Config::default(), observer).await?;
        connection.abort();
        io::Result::Ok(())
    })?;
    assert_eq!(
        *seen.lock().expect("the log"),
        [
            Seen::Transition(State::Idle, State::Connecting, InputKind::StartConnect),
            Seen::AttemptFailed(refused, io::ErrorKind::ConnectionRefused, Some(REFUSED)),
            Seen::Transition(State::Connecting, State::Established, InputKind::Connected),
            Seen::Transition(State::Established, State::Closed, InputKind::Abort),
            Seen::Closed(CloseReason::Aborted, None),
        ],
        "C12 violated: a failed attempt is an event even when a later one connects, and its \
         error is not the connection's"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A2: the adapter keeps its deadlines while the peer takes nothing.

/// More than loopback's buffers hold, so a `send_all` of it waits on a peer that reads nothing.
const MORE_THAN_BUFFERS: usize = 64 * 1024 * 1024;

/// The idle timeout of the A2 tests.
const IDLE: Duration = Duration::from_millis(400);

fn a2_a_send_to_a_peer_that_reads_nothing_times_out_at_the_idle_timeout_however_it_is_split<
    A: Adapter,
>() -> io::Result<()> {
    A::run(async {
        let (mut connection, peer, _log) = pair::<A>(Config::default())?;
        connection.set_idle_timeout(Some(IDLE))?;
        let data = vec![7_u8; MORE_THAN_BUFFERS];
        let started = Instant::now();
        // Sent in 16 KiB calls, as a server's `send_all` of a large reply is: each call that
        // waits must not start the idle timeout afresh when the one before took a little.
        let mut failed = None;
        for chunk in data.chunks(16 * 1024) {
            if let Err(error) = connection.send_all(chunk).await {
                failed = Some(error);
                break;
            }
        }
        let took = started.elapsed();
        let error = failed.expect("A2 test defect: the peer took 64 MiB without reading");
        eprintln!(
            "A2: the send to a peer that reads nothing failed {} ms after it began (idle timeout {} ms): {error}",
            took.as_millis(),
            IDLE.as_millis()
        );
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "A2: {error}");
        // The buffers fill in milliseconds; then nothing is taken for the idle timeout. A wait
        // that restarts on each partial count takes twice to three times as long.
        assert!(
            took < IDLE + IDLE / 2,
            "A2 violated: the send waited {took:?} on a peer that took nothing, past the {IDLE:?} \
             idle timeout and half of it again"
        );
        drop(peer);
        Ok(())
    })
}

fn a2_an_abort_ends_a_send_blocked_on_a_peer_that_reads_nothing<A: Adapter>() -> io::Result<()> {
    A::run(async {
        // No idle timeout: only the abort can end the wait.
        let (mut connection, mut peer, log) = pair::<A>(Config::default())?;
        let handle = connection.abort_handle();
        let sender = A::spawn(async move {
            let data = vec![7_u8; MORE_THAN_BUFFERS];
            let result = connection.send_all(&data).await;
            (result.map_err(|e| e.kind()), connection.close_reason())
        });
        A::sleep(SETTLE).await; // the buffers are full: the send waits
        let aborted = Instant::now();
        handle.abort();
        let Some((result, reason)) = sender.join_within(PATIENCE).await else {
            panic!(
                "A2 violated: a send blocked on a peer that reads nothing outlived its abort by {PATIENCE:?}"
            );
        };
        eprintln!(
            "A2: the blocked send returned {} ms after the abort",
            aborted.elapsed().as_millis()
        );
        assert!(result.is_err(), "A2: an aborted send is an error");
        assert_eq!(reason, Some(CloseReason::Aborted), "A2: the close reason");
        assert_eq!(closes(&log), [CloseReason::Aborted], "C1: closed once");
        assert_eq!(
            peer_stream_end(&mut peer),
            Err(io::ErrorKind::ConnectionReset),
            "C6 violated: an abort must reach the peer as a reset"
        );
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// C13: graceful means acknowledged.

/// A peer with a 16 KiB receive window, connected to a server connection with a 4 MiB send
/// buffer: a reply larger than the window fits in our buffer, every call succeeds, and the peer
/// takes no more than its window of it until it reads.
fn small_window_pair<A: Adapter>(
    config: Config,
) -> io::Result<(A::Connection, TcpStream, CloseLog)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let peer = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    peer.set_recv_buffer_size(16 * 1024)?;
    peer.connect(&listener.local_addr()?.into())?;
    let peer = TcpStream::from(peer);
    let (stream, _) = listener.accept()?;
    socket2::SockRef::from(&stream).set_send_buffer_size(4 * 1024 * 1024)?;
    let (connection, log) = logged::<A>(stream, config)?;
    Ok((connection, peer, log))
}

/// A peer that resets while our reply and end of stream wait for its acknowledgement, before the
/// connection is dropped: the drop asks the socket whether all was acknowledged, and the answer
/// is the reset's error (which asking takes off the socket). The close is the reset, never
/// `Graceful`, however the close goes on after the drop.
fn c13_a_reset_before_the_acknowledgement_is_no_graceful_close_when_the_connection_is_dropped<
    A: Adapter,
>() -> io::Result<()> {
    A::run(async {
        let (mut connection, mut peer, log) = small_window_pair::<A>(long_linger())?;
        peer.write_all(b"request")?;
        peer.shutdown(Shutdown::Write)?;
        let mut buffer = [0; 64];
        while connection.recv(&mut buffer).await? > 0 {}
        connection.send_all(&[7; 1024 * 1024]).await?;
        connection.shutdown_send()?;
        socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO))?;
        drop(peer); // a reset, with most of the reply and our end of stream unacknowledged
        A::sleep(SETTLE).await;
        drop(connection);
        assert_eq!(
            closed_within::<A>(&log, PATIENCE).await,
            [CloseReason::PeerReset],
            "C13 violated: the peer reset before it acknowledged our reply, yet the connection, \
             dropped after, did not close as reset"
        );
        Ok(())
    })
}

fn c13_a_reply_the_peer_never_takes_is_not_a_graceful_close<A: Adapter>() -> io::Result<()> {
    const IDLE: Duration = Duration::from_millis(300);
    A::run(async {
        // A peer with a small window that sends its request, ends its stream and reads nothing.
        let config = Config::new()
            .with_linger(PATIENCE, IDLE)
            .expect("valid linger");
        let (mut connection, mut peer, log) = small_window_pair::<A>(config)?;
        peer.write_all(b"request")?;
        peer.shutdown(Shutdown::Write)?;
        let mut buffer = [0; 64];
        while connection.recv(&mut buffer).await? > 0 {}
        connection.send_all(&[7; 1024 * 1024]).await?;
        let started = Instant::now();
        let reason = connection.close().await?;
        let took = started.elapsed();
        eprintln!(
            "C13: a 1 MiB reply the peer never takes: closed {reason:?} after {} ms (linger idle {} ms)",
            took.as_millis(),
            IDLE.as_millis()
        );
        assert_eq!(
            reason,
            CloseReason::LingerTimeout,
            "C13 violated: the peer never acknowledged our reply, yet the close was called {reason:?}"
        );
        assert_eq!(
            closes(&log),
            [CloseReason::LingerTimeout],
            "C1: closed once"
        );
        assert!(
            took >= IDLE,
            "C13 violated: closed {took:?} after the close began, before the {IDLE:?} linger idle \
             deadline it waits the acknowledgement for"
        );
        drop(peer);
        Ok(())
    })
}
