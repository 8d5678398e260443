//! The blocking adapter's own promises, beyond the scenarios of the fault suite: split halves
//! (T1 over real sockets), the abort handle, a drop while open, and misuse.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use socket_lifecycle::blocking::{Connection, Event};
use socket_lifecycle::{CloseReason, Config, StdClock};

/// A generous bound on any wait in these tests; none should come near it.
const PATIENCE: Duration = Duration::from_secs(20);

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

/// An accepted adapter connection and the plain std peer at the other end. The log holds every
/// close reason the connection reports.
fn pair(config: Config) -> io::Result<(Connection, TcpStream, CloseLog)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let peer = TcpStream::connect(listener.local_addr()?)?;
    peer.set_read_timeout(Some(PATIENCE))?;
    let (stream, _) = listener.accept()?;
    let closes = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&closes);
    let connection =
        Connection::accepted(stream, config, StdClock::new(), move |event: &Event<'_>| {
            if let Event::Closed { reason, .. } = event {
                log.lock().expect("the log").push(*reason);
            }
        })?;
    Ok((connection, peer, closes))
}

fn closes(log: &Mutex<Vec<CloseReason>>) -> Vec<CloseReason> {
    log.lock().expect("the log").clone()
}

#[test]
fn t1_split_halves_close_gracefully_once_after_both_are_done() -> io::Result<()> {
    let (connection, mut peer, log) = pair(Config::default())?;
    let (mut read, mut write) = connection.split();
    let writer = thread::spawn(move || -> io::Result<()> {
        write.send_all(&[7; 100_000])?;
        write.shutdown_send()
    });
    let mut echoed = Vec::new();
    peer.read_to_end(&mut echoed)?;
    assert_eq!(
        echoed.len(),
        100_000,
        "T1 violated: the write half's bytes did not all arrive"
    );
    writer.join().expect("the writer returns")?;
    assert!(
        closes(&log).is_empty(),
        "T1 violated: closed while the read half is alive"
    );
    peer.write_all(b"last words")?;
    peer.shutdown(Shutdown::Write)?;
    let mut buffer = [0; 64];
    let mut received = 0;
    loop {
        match read.recv(&mut buffer)? {
            0 => break,
            n => received += n,
        }
    }
    assert_eq!(received, 10);
    drop(read);
    assert_eq!(
        closes(&log),
        [CloseReason::Graceful],
        "T1 violated: both halves done, both directions ended: one graceful close"
    );
    Ok(())
}

#[test]
fn t1_a_reset_seen_by_the_reader_stops_the_writer_and_closes_once() -> io::Result<()> {
    let (connection, peer, log) = pair(Config::default())?;
    let (mut read, mut write) = connection.split();
    let reader = thread::spawn(move || {
        let mut buffer = [0; 64];
        read.recv(&mut buffer)
    });
    thread::sleep(Duration::from_millis(100)); // let the reader block on the silent peer
    socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO))?;
    drop(peer); // a reset
    let error = reader
        .join()
        .expect("the reader returns")
        .expect_err("a reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    let refused = write
        .send(b"too late")
        .expect_err("T1 violated: a call started after the close");
    assert_ne!(refused.kind(), io::ErrorKind::InvalidInput);
    drop(write);
    assert_eq!(
        closes(&log),
        [CloseReason::PeerReset],
        "T1 violated: not closed exactly once"
    );
    Ok(())
}

#[test]
fn dropping_an_open_connection_resets_it_with_its_own_reason() -> io::Result<()> {
    let (mut connection, mut peer, log) = pair(Config::default())?;
    connection.send_all(b"half a message")?;
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
}

#[test]
fn an_abort_handle_wakes_a_recv_blocked_on_a_silent_peer() -> io::Result<()> {
    let (mut connection, mut peer, log) = pair(Config::default())?;
    let handle = connection.abort_handle();
    let reader = thread::spawn(move || {
        let mut buffer = [0; 64];
        let result = connection.recv(&mut buffer);
        (result.map_err(|e| e.kind()), connection.close_reason())
    });
    thread::sleep(Duration::from_millis(100));
    handle.abort();
    let (result, reason) = reader.join().expect("the reader returns");
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
}

#[test]
fn c9_sending_after_shutdown_is_misuse_and_changes_nothing() -> io::Result<()> {
    let (mut connection, mut peer, _log) = pair(Config::default())?;
    connection.shutdown_send()?;
    let error = connection
        .send(b"late")
        .expect_err("C3 violated: sent after shutdown");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    peer.write_all(b"still receiving")?;
    peer.shutdown(Shutdown::Write)?;
    let mut buffer = [0; 64];
    assert_eq!(
        connection.recv(&mut buffer)?,
        15,
        "C9 violated: misuse changed the connection"
    );
    assert_eq!(connection.recv(&mut buffer)?, 0);
    assert_eq!(connection.recv(&mut [])?, 0);
    assert_eq!(connection.close()?, CloseReason::Graceful);
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest)?;
    assert!(rest.is_empty());
    Ok(())
}

#[test]
fn an_idle_timeout_leaves_the_connection_open_for_a_graceful_close() -> io::Result<()> {
    let config = Config::new()
        .with_linger(Duration::from_secs(5), Duration::from_secs(2))
        .expect("valid");
    let (mut connection, mut peer, log) = pair(config)?;
    connection.set_idle_timeout(Some(Duration::from_millis(100)))?;
    let mut buffer = [0; 64];
    let error = connection.recv(&mut buffer).expect_err("the idle timeout");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert!(
        connection.close_reason().is_none(),
        "an idle timeout is the application's to act on"
    );
    let closer = thread::spawn(move || connection.close().map_err(|e| e.kind()));
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest)?; // our end of stream
    drop(peer); // the peer closes: the lingering close ends
    assert_eq!(
        closer.join().expect("the closer returns"),
        Ok(CloseReason::Graceful)
    );
    assert_eq!(closes(&log), [CloseReason::Graceful]);
    Ok(())
}
