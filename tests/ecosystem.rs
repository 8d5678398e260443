//! The tokio adapter's connections in the hands of the crates a tokio user already has, used as
//! their own docs show and with nothing but this crate's public API: `tokio::io::copy` and
//! `copy_bidirectional`, tokio-util's `Framed` with a codec, hyper's HTTP/1 server over
//! `hyper_util::rt::TokioIo` answering Python's clients, `socket2::SockRef` for socket options,
//! and `close_gracefully` for a stream the crate did not open. Each exchange ends with every close
//! graceful, or, where the point is a deadline, at the deadline.
//!
//! S12 is here too, on hyper: a server that answers 413 to a large upload without reading it
//! gets its whole answer to a client that sends everything before it reads, and, in the same
//! test, the same server over a plain `TcpStream` does not (the control, so the test can fail).
//!
//! The blocking adapter's counterparts, which need no feature, are in `ecosystem_std.rs`.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use socket_lifecycle::tokio::{Connection, Event, Server, ServerConfig, close_gracefully};
use socket_lifecycle::{CloseReason, Config, StdClock};
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LinesCodec};

use support::http::{UPLOADING_CLIENT, Upload, python};

/// A generous bound on each test: none comes near it, but a hang fails instead of blocking the
/// suite. These machines are shared, so no test bounds how fast anything is.
const PATIENCE: Duration = Duration::from_secs(60);

/// How late past its deadline a close may be on a busy shared machine before it counts as not
/// bounded by it (C8); far less than the 5 s of the default linger deadline.
const LATE: Duration = Duration::from_secs(3);

const MIB: usize = 1024 * 1024;

/// The upload S12's client sends before it reads: far more than the kernel's buffers hold, so
/// that the server's answer comes while the client is still sending.
const S12_UPLOAD: usize = 32 * MIB;

/// S12's exchanges, each way.
const S12_ROUNDS: usize = 10;

/// Runs `test` to its end, or fails it once [`PATIENCE`] has passed.
async fn within<T>(what: &str, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, test)
        .await
        .unwrap_or_else(|_| panic!("{what}: still running after {PATIENCE:?}"))
}

/// Bytes that do not repeat at any power of two, so a lost, doubled or misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    (listener, address)
}

/// The next connection `listener` accepts, as the adapter's.
async fn accept(listener: &TcpListener) -> Connection {
    let (stream, _) = listener.accept().await.expect("accept");
    Connection::accepted(stream, Config::default(), StdClock::new(), ()).expect("accepted")
}

async fn connect(address: SocketAddr) -> Connection {
    Connection::connect(address, Config::default())
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_io_copy_relays_a_mib_from_one_connection_to_another_and_every_close_is_graceful() {
    within("copy", async {
        let message = pattern(MIB);
        let (inbound_listener, inbound_address) = listen().await;
        let (outbound_listener, outbound_address) = listen().await;
        // Each side closes only once the other's end of stream reached where it was going: so
        // each end of stream must come from `shutdown` (`poll_shutdown`), not from a close.
        let (relayed_all, relay_done) = tokio::sync::oneshot::channel();
        let (received_all, receiver_done) = tokio::sync::oneshot::channel();

        let sender = tokio::spawn({
            let message = message.clone();
            async move {
                let mut sender = connect(inbound_address).await;
                let sent = tokio::io::copy(&mut message.as_slice(), &mut sender).await?;
                sender.shutdown().await?; // the end of our stream; receiving goes on
                half_close_arrived("the sender's end of stream, at the relay,", relay_done).await;
                io::Result::Ok((sent, sender.close().await?))
            }
        });
        let receiver = tokio::spawn(async move {
            let mut receiver = accept(&outbound_listener).await;
            let mut received = Vec::new();
            tokio::io::copy(&mut receiver, &mut received).await?;
            let _ = received_all.send(());
            io::Result::Ok((received, receiver.close().await?))
        });

        // The relay: what comes in on one adapter connection goes out on another, and when the
        // sender's stream ends, so does the one going out.
        let mut inbound = accept(&inbound_listener).await;
        let mut outbound = connect(outbound_address).await;
        let relayed = tokio::io::copy(&mut inbound, &mut outbound)
            .await
            .expect("relaying");
        let _ = relayed_all.send(());
        outbound
            .shutdown()
            .await
            .expect("shutting the relay's send side");
        half_close_arrived("the relay's end of stream, at the receiver,", receiver_done).await;
        let (inbound_closed, outbound_closed) = tokio::join!(inbound.close(), outbound.close());

        let (sent, sender_closed) = sender.await.expect("sender task").expect("sender");
        let (received, receiver_closed) = receiver.await.expect("receiver task").expect("receiver");
        assert_eq!(sent, MIB as u64, "the sender's copy sent it all");
        assert_eq!(relayed, MIB as u64, "the relay's copy relayed it all");
        assert!(
            received == message,
            "{} of {MIB} B arrived, or out of order",
            received.len()
        );
        for (who, reason) in [
            ("sender", sender_closed),
            ("relay, inbound", inbound_closed.expect("inbound close")),
            ("relay, outbound", outbound_closed.expect("outbound close")),
            ("receiver", receiver_closed),
        ] {
            assert_eq!(reason, CloseReason::Graceful, "C13: the {who} closed so");
        }
    })
    .await;
}

/// Waits for word that an end of stream, sent by `shutdown` with the connection still open,
/// reached the other side's reader; fails the test if it does not come.
async fn half_close_arrived(what: &str, arrived: tokio::sync::oneshot::Receiver<()>) {
    let arrived = tokio::time::timeout(PATIENCE / 2, arrived).await;
    assert!(
        matches!(arrived, Ok(Ok(()))),
        "{what} never arrived while the connection stayed open: the shutdown did not shut \
         the send side"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_bidirectional_carries_each_half_close_through_a_relay_and_every_close_is_graceful() {
    within("copy_bidirectional", async {
        let message = pattern(MIB);
        let (upstream_listener, upstream_address) = listen().await;
        let (relay_listener, relay_address) = listen().await;

        // The upstream echoes through its split halves until the client's end of stream, which
        // must come through the relay, then ends its own.
        let upstream = tokio::spawn(async move {
            let (mut read, mut write) = accept(&upstream_listener).await.into_split();
            let echoed = tokio::io::copy(&mut read, &mut write).await?;
            write.shutdown().await?;
            let mut connection = read.reunite(write).expect("the halves of one connection");
            io::Result::Ok((echoed, connection.close().await?))
        });
        let relay = tokio::spawn(async move {
            let mut client = accept(&relay_listener).await;
            let mut upstream = connect(upstream_address).await;
            let relayed = tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
            let (client_closed, upstream_closed) = tokio::join!(client.close(), upstream.close());
            io::Result::Ok((relayed, client_closed?, upstream_closed?))
        });

        // The client sends from one task and reads from another, as the echo comes back while
        // it is still sending.
        let (mut read, mut write) = connect(relay_address).await.into_split();
        let writer = tokio::spawn({
            let message = message.clone();
            async move {
                tokio::io::copy(&mut message.as_slice(), &mut write).await?;
                write.shutdown().await?;
                io::Result::Ok(write)
            }
        });
        let mut echoed = Vec::new();
        tokio::io::copy(&mut read, &mut echoed)
            .await
            .expect("reading the echo");
        let write = writer.await.expect("writer task").expect("writer");
        let mut client = read.reunite(write).expect("the halves of one connection");
        let client_closed = client.close().await.expect("client close");

        let (upstream_echoed, upstream_closed) =
            upstream.await.expect("upstream task").expect("upstream");
        let (relayed, relay_client_closed, relay_upstream_closed) =
            relay.await.expect("relay task").expect("relay");
        assert_eq!(
            upstream_echoed, MIB as u64,
            "the client's end of stream reached the upstream after every byte"
        );
        assert_eq!(relayed, (MIB as u64, MIB as u64), "relayed each way");
        assert!(
            echoed == message,
            "{} of {MIB} B came back, or out of order",
            echoed.len()
        );
        for (who, reason) in [
            ("client", client_closed),
            ("relay, client side", relay_client_closed),
            ("relay, upstream side", relay_upstream_closed),
            ("upstream", upstream_closed),
        ] {
            assert_eq!(reason, CloseReason::Graceful, "C13: the {who} closed so");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_lines_run_to_the_end_of_stream_then_into_inner_closes_gracefully() {
    within("Framed", async {
        const LINES: usize = 1000;
        let (listener, address) = listen().await;

        // The server answers each line in capitals until the client's end of stream.
        let server = tokio::spawn(async move {
            let mut lines = Framed::new(accept(&listener).await, LinesCodec::new());
            let mut answered = 0;
            while let Some(line) = lines.next().await {
                let answer = line.map_err(io::Error::other)?.to_uppercase();
                lines.send(answer).await.map_err(io::Error::other)?;
                answered += 1;
            }
            // The sink's close flushes, then shuts the connection's send side.
            SinkExt::<String>::close(&mut lines)
                .await
                .map_err(io::Error::other)?;
            io::Result::Ok((answered, lines.into_inner().close().await?))
        });

        let mut lines = Framed::new(connect(address).await, LinesCodec::new());
        for i in 0..LINES {
            lines.feed(format!("line {i}")).await.expect("feeding");
        }
        // Everything out, then our end of stream: the server's `next` gives `None`.
        SinkExt::<String>::close(&mut lines)
            .await
            .expect("closing the sink");
        let mut answers = Vec::new();
        while let Some(answer) = lines.next().await {
            answers.push(answer.expect("an answer"));
        }
        let client_closed = lines.into_inner().close().await.expect("client close");

        let (answered, server_closed) = server.await.expect("server task").expect("server");
        assert_eq!(answered, LINES, "the server saw every line, then None");
        let expected: Vec<String> = (0..LINES).map(|i| format!("LINE {i}")).collect();
        assert_eq!(answers, expected, "every answer, in order, then None");
        assert_eq!(client_closed, CloseReason::Graceful, "C13: the client");
        assert_eq!(server_closed, CloseReason::Graceful, "C13: the server");
    })
    .await;
}

/// The close reasons of a server's connections, as its observers see them.
#[derive(Clone, Default)]
struct Closes(Arc<Mutex<Vec<CloseReason>>>);

impl Closes {
    /// An observer for one connection, recording its close.
    fn observer(&self) -> impl FnMut(&Event<'_>) + Send + use<> {
        let closes = Arc::clone(&self.0);
        move |event: &Event<'_>| {
            if let Event::Closed { reason, .. } = event {
                closes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(*reason);
            }
        }
    }

    fn all(&self) -> Vec<CloseReason> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello, {}", request.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Python's `http.client`: one request with `Connection: close`, which the server ends, then
/// several on one kept-alive connection, which the client ends. Prints each answer on a line.
const HTTP_CLIENT: &str = r#"
import http.client, sys
port = int(sys.argv[1])
once = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
once.request("GET", "/once", headers={"Connection": "close"})
answer = once.getresponse()
print(answer.status, answer.getheader("Connection"), answer.read().decode())
# http.client itself closes a connection the server said it would close.
assert once.sock is None, "the client kept a connection the server closed"
kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
kept.connect()
first = kept.sock
for i in range(5):
    kept.request("GET", f"/kept/{i}")
    answer = kept.getresponse()
    print(answer.status, answer.getheader("Connection"), answer.read().decode())
    assert kept.sock is first, "the client opened another connection"
kept.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_http1_on_the_server_closes_gracefully_after_connection_close_and_after_keep_alive() {
    within("hyper", async {
        let server = Server::bind("127.0.0.1:0", ServerConfig::default())
            .await
            .expect("bind");
        let port = server.local_addr().port();
        let drain = server.drain_handle();
        let closes = Closes::default();
        let observers = closes.clone();
        let shut_by_hyper = Arc::new(Mutex::new(Vec::new()));
        let handlers_shut_by_hyper = Arc::clone(&shut_by_hyper);
        // hyper serves the connection the handler is lent; when hyper is done (its last answer
        // out, or the client's end of stream read), it shuts the connection's send side, the
        // handler returns, and the server closes the connection, lingering for the client's end.
        let serving = tokio::spawn(server.serve(
            move |connection| {
                let shut_by_hyper = Arc::clone(&handlers_shut_by_hyper);
                Box::pin(async move {
                    let served = http1::Builder::new()
                        .serve_connection(TokioIo::new(&mut *connection), service_fn(hello))
                        .await;
                    shut_by_hyper
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(!connection.lifecycle().may_send());
                    served.map_err(io::Error::other)
                })
            },
            move |_| observers.observer(),
        ));

        let answers = python(HTTP_CLIENT, vec![port.to_string()]).await;
        drain.drain();
        let report = serving.await.expect("server task").expect("serve");

        let expected = "200 close hello, /once\n\
                        200 None hello, /kept/0\n\
                        200 None hello, /kept/1\n\
                        200 None hello, /kept/2\n\
                        200 None hello, /kept/3\n\
                        200 None hello, /kept/4\n";
        assert_eq!(answers, expected, "python's answers");
        assert_eq!(report.accepted, 2, "one connection each: {report:?}");
        assert_eq!(
            *shut_by_hyper.lock().unwrap_or_else(PoisonError::into_inner),
            [true, true],
            "hyper shut each connection's send side when it was done (poll_shutdown)"
        );
        assert_eq!(
            closes.all(),
            [CloseReason::Graceful, CloseReason::Graceful],
            "C13: each connection closed so, the one the server ended and the one the client ended"
        );
        assert_eq!(report.graceful, 2, "{report:?}");
    })
    .await;
}

/// S12's handler: a large upload is refused at once, its body left unread.
async fn refuse_upload(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"upload too large\n")));
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    Ok(response)
}

/// One S12 exchange: hyper serves one connection with [`refuse_upload`] while Python uploads.
/// Through the crate, hyper is lent the adapter's connection and the connection is closed
/// afterwards, with its lingering close: its reason. Without it, hyper owns the plain stream,
/// and drops it when done, as hyper's own examples do.
async fn s12_exchange(through_the_crate: bool) -> (Upload, Option<CloseReason>) {
    let (listener, address) = listen().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let service = service_fn(refuse_upload);
        if through_the_crate {
            let mut connection =
                Connection::accepted(stream, Config::default(), StdClock::new(), ())
                    .expect("accepted");
            // Whatever hyper says of the unread body, the close is the crate's.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(&mut connection), service)
                .await;
            connection.close().await.ok()
        } else {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            None
        }
    });
    let output = python(
        UPLOADING_CLIENT,
        vec![address.port().to_string(), S12_UPLOAD.to_string()],
    )
    .await;
    let reason = server.await.expect("server task");
    (Upload::parse(&output), reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_hyper_answers_413_without_reading_the_upload_and_the_client_gets_it_whole_and_without_the_crate_does_not()
 {
    within("S12", async {
        let mut plain_failures = 0;
        for round in 1..=S12_ROUNDS {
            // The control: hyper on the plain stream.
            let (plain, _) = s12_exchange(false).await;
            eprintln!(
                "S12 control (plain stream), round {round}: {} B of the answer; send: {}; receive: {}; status {:?}; whole {}",
                plain.answer_bytes, plain.send_error, plain.recv_error, plain.status, plain.whole
            );
            if !plain.went_through() {
                plain_failures += 1;
            }

            let started = Instant::now();
            let (through_the_crate, reason) = s12_exchange(true).await;
            eprintln!(
                "S12 through the crate, round {round}: {} B of the answer; send: {}; receive: {}; status {:?}; whole {}; closed {reason:?} in {:?}",
                through_the_crate.answer_bytes,
                through_the_crate.send_error,
                through_the_crate.recv_error,
                through_the_crate.status,
                through_the_crate.whole,
                started.elapsed()
            );
            assert!(
                through_the_crate.went_through(),
                "S12 violated: through the crate, the client's upload failed or its answer came cut: {through_the_crate:?}"
            );
            assert_eq!(
                reason,
                Some(CloseReason::Graceful),
                "S12 (C5): the server's close"
            );
        }
        eprintln!(
            "S12 summary: {S12_ROUNDS} rounds each way, {S12_UPLOAD} B uploads; the plain stream failed the client {plain_failures} times, the crate 0 times"
        );
        assert!(
            plain_failures > 0,
            "S12 test defect: over the plain stream, the client's upload and answer went through \
             in all {S12_ROUNDS} rounds, so this test cannot tell the crate's close from a plain \
             one on this system"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockref_sets_nodelay_on_an_open_connection_and_finds_no_peer_once_it_is_closed() {
    within("SockRef", async {
        let (listener, address) = listen().await;
        let accepting = tokio::spawn(async move { accept(&listener).await });
        let mut client = connect(address).await;
        let mut server = accepting.await.expect("accepting task");

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
        let (client_closed, server_closed) = tokio::join!(client.close(), server.close());
        assert_eq!(client_closed.expect("client close"), CloseReason::Graceful);
        assert_eq!(server_closed.expect("server close"), CloseReason::Graceful);
        for (who, connection) in [("client", &client), ("server", &server)] {
            assert!(
                SockRef::from(connection).peer_addr().is_err(),
                "C2: the {who}'s socket is released at its close, and what it lends now has no peer"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_gracefully_ends_a_plain_tokio_stream_whose_peer_answered_and_ended() {
    within("close_gracefully", async {
        let (listener, address) = listen().await;
        // A plain server: reads the request, answers, ends its stream, then reads the client's
        // end of stream, which must come clean (no reset).
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await?;
            let mut request = [0; 7];
            stream.read_exact(&mut request).await?;
            stream.write_all(b"answer").await?;
            stream.shutdown().await?;
            let mut after = Vec::new();
            stream.read_to_end(&mut after).await?;
            io::Result::Ok(after)
        });

        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(b"request").await.expect("request");
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .expect("the answer to its end");
        let reason = close_gracefully(stream, Config::default())
            .await
            .expect("close_gracefully");

        assert_eq!(answer, b"answer");
        assert_eq!(reason, CloseReason::Graceful, "C13");
        let after = server.await.expect("server task").expect("the server");
        assert!(after.is_empty(), "the server read a clean end of stream");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c8_close_gracefully_stops_at_the_linger_deadline_on_a_peer_that_never_ends() {
    within("close_gracefully, silent peer", async {
        let (linger_total, linger_idle) = (Duration::from_secs(1), Duration::from_millis(300));
        let config = Config::default()
            .with_linger(linger_total, linger_idle)
            .expect("linger times");
        let (listener, address) = listen().await;
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        // A peer that holds its end open and silent until the test is done.
        let peer = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let _ = released.await;
            drop(stream);
        });

        let stream = TcpStream::connect(address).await.expect("connect");
        let started = Instant::now();
        let reason = close_gracefully(stream, config)
            .await
            .expect("close_gracefully");
        let took = started.elapsed();
        let _ = release.send(());
        peer.await.expect("peer task");

        assert_eq!(reason, CloseReason::LingerTimeout, "C8");
        assert!(
            took >= linger_idle,
            "C5: closed after {took:?}, before the peer's end of stream or the {linger_idle:?} deadline"
        );
        assert!(
            took < linger_total + LATE,
            "C8: closed after {took:?}, past its {linger_total:?} deadline by more than {LATE:?}"
        );
    })
    .await;
}

/// What a tokio user's code asks of a stream (`TokioIo`, `Framed`, `copy`, tokio-rustls):
/// checked by the compiler, for the connection and for each owned half.
#[test]
fn the_connection_and_its_owned_halves_are_the_streams_tokio_code_takes() {
    fn stream<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>() {}
    fn reader<T: tokio::io::AsyncRead + Unpin + Send + 'static>() {}
    fn writer<T: tokio::io::AsyncWrite + Unpin + Send + 'static>() {}
    stream::<Connection>();
    reader::<socket_lifecycle::tokio::ReadHalf>();
    writer::<socket_lifecycle::tokio::WriteHalf>();
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_dropped_after_accept_without_a_drain_leaves_no_task_behind() {
    within("accept", async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        let mut server = Server::bind("127.0.0.1:0", ServerConfig::default())
            .await
            .expect("bind");
        let drain = server.drain_handle();
        let client = TcpStream::connect(server.local_addr())
            .await
            .expect("connect");
        let (connection, _) = server.accept().await.expect("accept");
        assert_eq!(
            metrics.num_alive_tasks(),
            before + 1,
            "accept starts the drain's own task"
        );
        drop((connection, client, server));
        tokio::task::yield_now().await;
        assert_eq!(
            metrics.num_alive_tasks(),
            before + 1,
            "a drain handle is left: the drain's task waits for it"
        );
        drop(drain);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            metrics.num_alive_tasks(),
            before,
            "with the server and every drain handle gone, no drain can come: its task ends"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_a_handler_that_goes_on_after_its_connection_closed_is_dropped_at_the_drain_deadline() {
    const DRAIN: Duration = Duration::from_millis(300);
    within("L3", async {
        let server = Server::bind(
            "127.0.0.1:0",
            ServerConfig::default().with_drain_timeout(DRAIN),
        )
        .await
        .expect("bind");
        let address = server.local_addr();
        let drain = server.drain_handle();
        let serving = tokio::spawn(server.serve(
            |connection| {
                Box::pin(async move {
                    let mut buffer = [0; 16];
                    let _ = connection.recv(&mut buffer).await; // the peer's reset
                    // Then something else for ever: a retry, a queue, with no connection.
                    std::future::pending::<()>().await;
                    Ok(())
                })
            },
            |_| (),
        ));
        let client = TcpStream::connect(address).await.expect("connect");
        SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(client); // a reset
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        drain.drain();
        let report = serving.await.expect("the server task").expect("serve");
        let took = started.elapsed();
        assert!(
            took < DRAIN + LATE,
            "L3 violated: serve returned {took:?} after the drain began, its handler still running"
        );
        assert_eq!(report.accepted, 1, "{report:?}");
    })
    .await;
}
