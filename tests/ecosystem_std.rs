//! The blocking adapter's connections in the hands of the standard library, used as its docs
//! show and with nothing but this crate's public API: `std::io::copy` into and out of a
//! connection and between the halves of a split one, `BufReader::lines`, `socket2::SockRef` for
//! socket options, and `close_gracefully` for a `std::net::TcpStream` the crate did not open.
//! Each exchange ends with every close graceful, or, where the point is a deadline, at the
//! deadline.
//!
//! The tokio adapter's counterparts, under hyper and tokio-util, are in `ecosystem.rs`.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use socket_lifecycle::blocking::{Connection, close_gracefully};
use socket_lifecycle::{CloseReason, Config, StdClock};
use socket2::SockRef;

/// A generous bound on each test: none comes near it, but a hang fails instead of blocking the
/// suite. These machines are shared, so no test bounds how fast anything is.
const PATIENCE: Duration = Duration::from_secs(60);

/// How late past its deadline a close may be on a busy shared machine before it counts as not
/// bounded by it (C8); far less than the 5 s of the default linger deadline.
const LATE: Duration = Duration::from_secs(3);

const MIB: usize = 1024 * 1024;

/// Runs `test` on a thread of its own and returns what it returned, or fails once [`PATIENCE`]
/// has passed (the thread is left behind; the test has failed).
fn within<T: Send + 'static>(what: &str, test: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    let runner = thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            let _ = done.send(test());
        })
        .expect("a thread for the test");
    match result.recv_timeout(PATIENCE) {
        Ok(value) => {
            runner.join().expect("the test's thread returns");
            value
        }
        // The thread panicked: its panic is the test's failure.
        Err(mpsc::RecvTimeoutError::Disconnected) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{what}: the test's thread ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {PATIENCE:?}"),
    }
}

/// Bytes that do not repeat at any power of two, so a lost, doubled or misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("local address");
    (listener, address)
}

/// The next connection `listener` accepts, as the adapter's.
fn accept(listener: &TcpListener) -> Connection {
    let (stream, _) = listener.accept().expect("accept");
    Connection::accepted(stream, Config::default(), StdClock::new(), ()).expect("accepted")
}

fn connect(address: SocketAddr) -> Connection {
    Connection::connect(address, Config::default()).expect("connect")
}

#[test]
fn std_io_copy_into_one_connection_and_out_of_another_carries_a_mib_and_both_close_gracefully() {
    within("copy", || {
        let message = pattern(MIB);
        let (listener, address) = listen();
        // The server copies the whole stream out of its connection, to the client's end of
        // stream, then answers with what it counted.
        let server = thread::spawn(move || -> io::Result<_> {
            let mut connection = accept(&listener);
            let mut received = Vec::new();
            io::copy(&mut connection, &mut received)?;
            writeln!(connection, "{} bytes", received.len())?;
            connection.shutdown_send()?;
            Ok((received, connection.close()?))
        });

        let mut client = connect(address);
        let sent = io::copy(&mut message.as_slice(), &mut client).expect("copying in");
        client.shutdown_send().expect("the client's end of stream");
        let mut answer = String::new();
        client.read_to_string(&mut answer).expect("the answer");
        let client_closed = client.close().expect("client close");

        let (received, server_closed) = server.join().expect("server thread").expect("server");
        assert_eq!(sent, MIB as u64);
        assert!(
            received == message,
            "{} of {MIB} B arrived, or out of order",
            received.len()
        );
        assert_eq!(answer, format!("{MIB} bytes\n"));
        assert_eq!(client_closed, CloseReason::Graceful, "C13: the client");
        assert_eq!(server_closed, CloseReason::Graceful, "C13: the server");
    });
}

#[test]
fn std_io_copy_from_a_read_half_into_a_write_half_echoes_a_mib_and_both_close_gracefully() {
    within("copy between halves", || {
        let message = pattern(MIB);
        let (listener, address) = listen();
        // The echo: one `io::copy` from the read half into the write half, to the client's end
        // of stream; then its own.
        let server = thread::spawn(move || -> io::Result<_> {
            let (mut read, mut write) = accept(&listener).into_split();
            let echoed = io::copy(&mut read, &mut write)?;
            write.shutdown_send()?;
            let mut connection = read.reunite(write).expect("the halves of one connection");
            Ok((echoed, connection.close()?))
        });

        // The client sends on one thread and reads on another, as the echo comes back while it
        // is still sending.
        let (mut read, mut write) = connect(address).into_split();
        let writer = thread::spawn({
            let message = message.clone();
            move || -> io::Result<_> {
                io::copy(&mut message.as_slice(), &mut write)?;
                write.shutdown_send()?;
                Ok(write)
            }
        });
        let mut echoed = Vec::new();
        io::copy(&mut read, &mut echoed).expect("reading the echo");
        let write = writer.join().expect("writer thread").expect("writer");
        let mut client = read.reunite(write).expect("the halves of one connection");
        let client_closed = client.close().expect("client close");

        let (server_echoed, server_closed) = server.join().expect("server thread").expect("server");
        assert_eq!(server_echoed, MIB as u64);
        assert!(
            echoed == message,
            "{} of {MIB} B came back, or out of order",
            echoed.len()
        );
        assert_eq!(client_closed, CloseReason::Graceful, "C13: the client");
        assert_eq!(server_closed, CloseReason::Graceful, "C13: the server");
    });
}

#[test]
fn bufreader_lines_read_to_the_end_of_stream_then_into_inner_closes_gracefully() {
    within("lines", || {
        const LINES: usize = 1000;
        let (listener, address) = listen();
        // The server writes its lines through a `BufWriter`, then ends its stream.
        let server = thread::spawn(move || -> io::Result<_> {
            let mut lines = BufWriter::new(accept(&listener));
            for i in 0..LINES {
                writeln!(lines, "line {i}")?;
            }
            let mut connection = lines.into_inner().map_err(io::IntoInnerError::into_error)?;
            connection.shutdown_send()?;
            connection.close()
        });

        let mut reader = BufReader::new(connect(address));
        let mut received = Vec::new();
        for line in reader.by_ref().lines() {
            received.push(line.expect("a line"));
        }
        // `lines` gave `None`: the server's end of stream.
        let client_closed = reader.into_inner().close().expect("client close");

        let server_closed = server.join().expect("server thread").expect("server");
        let expected: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
        assert_eq!(received, expected, "every line, in order, then the end");
        assert_eq!(client_closed, CloseReason::Graceful, "C13: the client");
        assert_eq!(server_closed, CloseReason::Graceful, "C13: the server");
    });
}

#[test]
fn sockref_sets_nodelay_on_an_open_connection_and_finds_no_peer_once_it_is_closed() {
    within("SockRef", || {
        let (listener, address) = listen();
        let accepting = thread::spawn(move || accept(&listener));
        let mut client = connect(address);
        let mut server = accepting.join().expect("accepting thread");

        for (who, connection) in [("client", &client), ("server", &server)] {
            let socket = SockRef::from(connection);
            socket.set_tcp_nodelay(true).expect("setting TCP_NODELAY");
            assert!(
                socket.tcp_nodelay().expect("reading TCP_NODELAY"),
                "the {who}'s option was set on its socket"
            );
            let peer = socket.peer_addr().expect("the peer while open");
            assert_eq!(
                peer.as_socket(),
                Some(connection.peer_addr().expect("peer")),
                "the {who}'s SockRef is its own socket"
            );
        }

        // The client ends its stream first, so the server's end is graceful too.
        client.shutdown_send().expect("client shutdown");
        let closing = thread::spawn(move || {
            let reason = server.close();
            (server, reason)
        });
        let client_closed = client.close().expect("client close");
        let (server, server_closed) = closing.join().expect("closing thread");
        assert_eq!(client_closed, CloseReason::Graceful);
        assert_eq!(server_closed.expect("server close"), CloseReason::Graceful);
        for (who, connection) in [("client", &client), ("server", &server)] {
            assert!(
                SockRef::from(connection).peer_addr().is_err(),
                "C2: the {who}'s socket is released at its close, and what it lends now has no peer"
            );
        }
    });
}

#[test]
fn close_gracefully_ends_a_plain_std_stream_whose_peer_answered_and_ended() {
    within("close_gracefully", || {
        let (listener, address) = listen();
        // A plain server: reads the request, answers, ends its stream, then reads the client's
        // end of stream, which must come clean (no reset).
        let server = thread::spawn(move || -> io::Result<_> {
            let (mut stream, _) = listener.accept()?;
            let mut request = [0; 7];
            stream.read_exact(&mut request)?;
            stream.write_all(b"answer")?;
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut after = Vec::new();
            stream.read_to_end(&mut after)?;
            Ok(after)
        });

        let mut stream = TcpStream::connect(address).expect("connect");
        stream.write_all(b"request").expect("request");
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .expect("the answer to its end");
        let reason = close_gracefully(stream, Config::default()).expect("close_gracefully");

        assert_eq!(answer, b"answer");
        assert_eq!(reason, CloseReason::Graceful, "C13");
        let after = server.join().expect("server thread").expect("the server");
        assert!(after.is_empty(), "the server read a clean end of stream");
    });
}

#[test]
fn c8_close_gracefully_stops_at_the_linger_deadline_on_a_peer_that_never_ends() {
    within("close_gracefully, silent peer", || {
        let (linger_total, linger_idle) = (Duration::from_secs(1), Duration::from_millis(300));
        let config = Config::default()
            .with_linger(linger_total, linger_idle)
            .expect("linger times");
        let (listener, address) = listen();
        let (release, released) = mpsc::channel::<()>();
        // A peer that holds its end open and silent until the test is done.
        let peer = thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let _ = released.recv();
            drop(stream);
        });

        let stream = TcpStream::connect(address).expect("connect");
        let started = Instant::now();
        let reason = close_gracefully(stream, config).expect("close_gracefully");
        let took = started.elapsed();
        drop(release);
        peer.join().expect("peer thread");

        assert_eq!(reason, CloseReason::LingerTimeout, "C8");
        assert!(
            took >= linger_idle,
            "C5: closed after {took:?}, before the peer's end of stream or the {linger_idle:?} deadline"
        );
        assert!(
            took < linger_total + LATE,
            "C8: closed after {took:?}, past its {linger_total:?} deadline by more than {LATE:?}"
        );
    });
}

/// What code on the standard library asks of a stream (`io::copy`, `BufReader`, `BufWriter`):
/// checked by the compiler, for the connection and for each half.
#[test]
fn the_connection_and_its_halves_are_the_streams_std_code_takes() {
    fn stream<T: Read + Write + Send + 'static>() {}
    fn reader<T: Read + Send + 'static>() {}
    fn writer<T: Write + Send + 'static>() {}
    stream::<Connection>();
    reader::<socket_lifecycle::blocking::ReadHalf>();
    writer::<socket_lifecycle::blocking::WriteHalf>();
}

/// The CPU time, in clock ticks, the thread `tid` of this process has used.
#[cfg(target_os = "linux")]
fn thread_cpu_ticks(tid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("its stat");
    // After the command's closing parenthesis: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("a tick count") };
    field(14) + field(15)
}

/// A listener handed over non-blocking (as an async runtime or a socket-activation crate may
/// leave it) is served blocking: the accept loop waits in `accept` instead of spinning.
#[cfg(target_os = "linux")]
#[test]
fn a_blocking_server_on_a_nonblocking_listener_waits_in_accept_without_spinning() {
    use socket_lifecycle::blocking::{Server, ServerConfig};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let server = Server::from_std(listener, ServerConfig::default()).expect("from_std");
    let drain = server.drain_handle();
    let (tid_sender, tid) = mpsc::channel();
    let serving = thread::spawn(move || {
        let me = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        let _ = tid_sender.send(
            me.file_name()
                .expect("a tid")
                .to_string_lossy()
                .into_owned(),
        );
        server.serve(|_| Ok(()), |_| ())
    });
    let tid = tid.recv_timeout(PATIENCE).expect("the server's thread");
    let before = thread_cpu_ticks(&tid);
    thread::sleep(Duration::from_millis(500));
    let used = thread_cpu_ticks(&tid) - before;
    drain.drain();
    serving.join().expect("the server returns").expect("serve");
    // A spinning loop uses the whole half second, some 50 ticks; a waiting one next to none.
    assert!(
        used < 10,
        "the accept loop used {used} clock ticks of CPU in 500 ms with no client: it spins"
    );
}
