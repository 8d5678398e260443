//! axum on the crate: `axum::serve` over the tokio adapter's [`Server`] (feature `axum`), with
//! Python's HTTP clients, which are not ours. Each test has its control: the same app on axum's
//! own `TcpListener`, so that each can fail.
//!
//! - mixed `Connection: close` and keep-alive clients: every answer right, every close graceful
//!   and counted;
//! - S12: a 413 to a 32 MiB upload left unread reaches a client that sends everything before it
//!   reads;
//! - S13: a drain with an endless response open ends at the drain deadline, the stream aborted by
//!   the drain; on axum's own listener, the same drain is still waiting well after it;
//! - descriptors before = after, in each.
//!
//! The tests count this process's descriptors, so they run one at a time (`serial`).

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::{get, post};
use socket_lifecycle::CloseReason;
use socket_lifecycle::tokio::{Server, ServerConfig};
use support::http::{UPLOADING_CLIENT, Upload, python};
use support::{Adapter, Log, Tokio, assert_no_leak, serial};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A generous bound on each test; none should come near it.
const PATIENCE: Duration = Duration::from_secs(60);

/// What the machine may add to a deadline before a test calls it missed.
const TOLERANCE: Duration = Duration::from_secs(3);

const S12_UPLOAD: usize = 32 * 1024 * 1024;
const S12_ROUNDS: usize = 10;

/// S13's drain timeout.
const S13_DRAIN: Duration = Duration::from_secs(1);

/// The app of the example: `/` answers "ok", `/upload` refuses any upload without reading it,
/// `/events` streams a line every 100 ms for ever.
fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/upload",
            post(|| async { (StatusCode::PAYLOAD_TOO_LARGE, "upload too large\n") }),
        )
        .route("/events", get(|| async { Body::from_stream(events()) }))
        // A handler that never answers, nor reads the body it was sent.
        .route(
            "/stall",
            post(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        )
}

/// An endless event stream.
fn events() -> impl futures_util::Stream<Item = Result<String, Infallible>> {
    futures_util::stream::unfold(0_u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok(format!("data: {n}\n\n")), n + 1))
    })
}

/// Runs `test` on a runtime of its own, one test at a time, and checks that every descriptor it
/// opened (the runtime's included) is closed after it.
fn run<T>(rule: &str, test: impl Future<Output = T>) -> T {
    let _serial = serial();
    let before = Tokio::baseline();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let output = runtime.block_on(async {
        tokio::time::timeout(PATIENCE, test)
            .await
            .unwrap_or_else(|_| panic!("{rule}: still running after {PATIENCE:?}"))
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    assert_no_leak(rule, before);
    output
}

/// The crate's server on 127.0.0.1, each connection's close recorded in `log`.
async fn bind(config: ServerConfig, log: &Log) -> Server {
    let log = log.clone();
    Server::bind("127.0.0.1:0", config)
        .await
        .expect("binding 127.0.0.1:0")
        .with_observer(move |peer| log.observer(peer.id))
}

/// `axum::serve` over `server` until `shutdown` ends.
async fn serve_until(
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(server, app())
        .with_graceful_shutdown(shutdown)
        .await
}

/// `axum::serve` over `server` in a task of its own, with the drain started by the signal axum's
/// graceful shutdown waits for: the task, the sender that gives the signal, the drain handle.
fn serve(
    server: Server,
) -> (
    tokio::task::JoinHandle<std::io::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
    socket_lifecycle::tokio::DrainHandle,
) {
    let drain = server.drain_handle();
    let on_signal = drain.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve_until(server, async move {
        let _ = stopped.await;
        on_signal.drain();
    }));
    (serving, stop, drain)
}

/// Python's `http.client`: `count` requests each on a connection of its own with `Connection:
/// close`, then `count` on one kept-alive connection. Prints how many answers were "200 ok".
const MIXED_CLIENT: &str = r#"
import http.client, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
ok = 0
for i in range(count):
    once = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    once.request("GET", "/", headers={"Connection": "close"})
    answer = once.getresponse()
    ok += answer.status == 200 and answer.read() == b"ok"
    once.close()
kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for i in range(count):
    kept.request("GET", "/")
    answer = kept.getresponse()
    ok += answer.status == 200 and answer.read() == b"ok"
kept.close()
print(ok)
"#;

#[test]
fn axum_serves_close_and_keep_alive_clients_and_every_close_is_graceful_and_counted() {
    const COUNT: usize = 20;
    let log = Log::default();
    let report = run("axum", async {
        let server = bind(ServerConfig::default(), &log).await;
        let port = server.local_addr().port();
        let (serving, stop, drain) = serve(server);
        let answers = python(MIXED_CLIENT, vec![port.to_string(), COUNT.to_string()]).await;
        assert_eq!(
            answers.trim(),
            (2 * COUNT).to_string(),
            "every answer 200 ok"
        );
        let _ = stop.send(());
        serving
            .await
            .expect("the serving task")
            .expect("axum::serve");
        drain.drained().await
    });
    eprintln!("axum: {report:?}");
    let closes: Vec<CloseReason> = log.all_closes().into_iter().map(|(_, r)| r).collect();
    assert_eq!(report.accepted, COUNT as u64 + 1, "{report:?}");
    assert_eq!(
        closes,
        vec![CloseReason::Graceful; COUNT + 1],
        "C5: every connection closed gracefully, the ones the server ended and the one the client ended"
    );
    assert_eq!(report.graceful, COUNT as u64 + 1, "{report:?}");
    assert_eq!(report.aborted_by_drain, 0, "{report:?}");
}

/// One S12 exchange on axum: through the crate's server, or on axum's own listener.
async fn s12_exchange(through_the_crate: bool, log: &Log) -> Upload {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let (port, serving, drain) = if through_the_crate {
        let server = bind(ServerConfig::default(), log).await;
        let port = server.local_addr().port();
        let drain = server.drain_handle();
        let on_signal = drain.clone();
        let serving = tokio::spawn(serve_until(server, async move {
            shutdown.await;
            on_signal.drain();
        }));
        (port, serving, Some(drain))
    } else {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let serving = tokio::spawn(async move {
            axum::serve(listener, app())
                .with_graceful_shutdown(shutdown)
                .await
        });
        (port, serving, None)
    };
    let output = python(
        UPLOADING_CLIENT,
        vec![port.to_string(), S12_UPLOAD.to_string()],
    )
    .await;
    let _ = stop.send(());
    serving
        .await
        .expect("the serving task")
        .expect("axum::serve");
    if let Some(drain) = drain {
        drain.drained().await;
    }
    Upload::parse(&output)
}

#[test]
fn s12_axum_answers_413_without_reading_the_upload_and_the_client_gets_it_whole_and_on_axums_listener_does_not()
 {
    let log = Log::default();
    let plain_failures = run("S12", async {
        let mut plain_failures = 0;
        for round in 1..=S12_ROUNDS {
            let plain = s12_exchange(false, &log).await;
            eprintln!(
                "S12 control (axum's listener), round {round}: {} B of the answer; send: {}; receive: {}; status {:?}",
                plain.answer_bytes, plain.send_error, plain.recv_error, plain.status
            );
            if !plain.went_through() {
                plain_failures += 1;
            }
            let crate_upload = s12_exchange(true, &log).await;
            eprintln!(
                "S12 through the crate, round {round}: {} B of the answer; send: {}; receive: {}; status {:?}",
                crate_upload.answer_bytes,
                crate_upload.send_error,
                crate_upload.recv_error,
                crate_upload.status
            );
            assert!(
                crate_upload.went_through(),
                "S12 violated: through the crate, the client's upload failed or its answer came cut: {crate_upload:?}"
            );
        }
        plain_failures
    });
    eprintln!(
        "S12 summary (axum): {S12_ROUNDS} rounds each way, {S12_UPLOAD} B uploads; axum's listener failed the client {plain_failures} times, the crate 0 times"
    );
    let closes: Vec<CloseReason> = log.all_closes().into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        closes,
        vec![CloseReason::Graceful; S12_ROUNDS],
        "S12 (C5): each of the crate's connections closed gracefully"
    );
    assert!(
        plain_failures > 0,
        "S12 test defect: on axum's own listener the client's upload and answer went through in \
         all {S12_ROUNDS} rounds, so this test cannot tell the crate's close from a plain one here"
    );
}

/// A client that asks for `/` on a kept-alive connection, then waits between requests until the
/// server ends the connection; then closes its own side.
async fn keep_alive_client(address: SocketAddr) -> tokio::task::JoinHandle<()> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("S13: connecting");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("S13: the request");
    let mut seen = Vec::new();
    let mut buffer = [0; 1024];
    while !seen.ends_with(b"ok") {
        let n = stream.read(&mut buffer).await.expect("S13: the answer");
        assert_ne!(n, 0, "S13: the connection ended before its answer");
        seen.extend_from_slice(&buffer[..n]);
    }
    tokio::spawn(async move {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    })
}

/// Opens `/events` on `address` and reads its first event: the stream is open.
async fn open_events(address: SocketAddr) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("S13: connecting");
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("S13: the request");
    let mut seen = Vec::new();
    let mut buffer = [0; 1024];
    while !seen.windows(7).any(|w| w == b"data: 0") {
        let n = stream.read(&mut buffer).await.expect("S13: the stream");
        assert_ne!(n, 0, "S13: the stream ended before its first event");
        seen.extend_from_slice(&buffer[..n]);
    }
    stream
}

#[test]
fn s13_a_drain_with_an_endless_stream_open_ends_at_the_drain_deadline_and_on_axums_listener_does_not()
 {
    let log = Log::default();
    let (took, report, control_still_running) = run("S13", async {
        // The control: axum's own listener, the same drain asked for, no deadline to keep.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let control = tokio::spawn(async move {
            axum::serve(listener, app())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        let plain_events = open_events(address).await;
        let _ = stop.send(());
        tokio::time::sleep(S13_DRAIN + TOLERANCE).await;
        let control_still_running = !control.is_finished();
        control.abort();
        let _ = control.await;
        drop(plain_events);

        // Through the crate.
        let config = ServerConfig::default().with_drain_timeout(S13_DRAIN);
        let server = bind(config, &log).await;
        let address = server.local_addr();
        let (serving, stop, drain) = serve(server);
        // A kept-alive client between requests: hyper ends it on the drain, gracefully.
        let idle = keep_alive_client(address).await;
        let mut events = open_events(address).await;
        let started = Instant::now();
        let _ = stop.send(());
        serving
            .await
            .expect("the serving task")
            .expect("axum::serve");
        let took = started.elapsed();
        let report = drain.drained().await;
        // The client sees the stream cut: a reset, or an end without the chunked terminator.
        let mut rest = Vec::new();
        let _ = events.read_to_end(&mut rest).await;
        idle.await.expect("S13: the kept-alive client");
        (took, report, control_still_running)
    });
    eprintln!(
        "S13: axum::serve returned {:.0} ms after the drain began (drain timeout {:?}); {report:?}; axum's own listener still serving after {:?}: {control_still_running}",
        took.as_secs_f64() * 1000.0,
        S13_DRAIN,
        S13_DRAIN + TOLERANCE
    );
    assert!(
        control_still_running,
        "S13 test defect: on axum's own listener the drain ended with the stream open, so this \
         test cannot tell the crate's deadline from none"
    );
    assert!(
        took < S13_DRAIN + TOLERANCE,
        "S13 violated: axum::serve returned {took:?} after the drain began, past the {S13_DRAIN:?} \
         deadline and its tolerance"
    );
    assert_eq!(
        report.aborted_by_drain, 1,
        "L3: the stream, once: {report:?}"
    );
    let mut closes = log.all_closes();
    closes.sort_by_key(|&(id, _)| id);
    assert_eq!(
        closes,
        [(1, CloseReason::Graceful), (2, CloseReason::DrainAborted)],
        "L3 violated: the kept-alive connection closes gracefully, and the stream's close reason \
         says the drain aborted it"
    );
}

#[test]
fn l3_a_request_whose_handler_never_answers_is_aborted_at_the_drain_deadline() {
    const DRAIN: Duration = Duration::from_millis(300);
    let log = Log::default();
    let (took, report) = run("L3", async {
        let config = ServerConfig::default().with_drain_timeout(DRAIN);
        let server = bind(config, &log).await;
        let address = server.local_addr();
        let (serving, stop, drain) = serve(server);
        // hyper reads the head and a part of the body, then waits on the handler: it neither
        // reads nor writes the connection, it only flushes it.
        let mut client = tokio::net::TcpStream::connect(address)
            .await
            .expect("L3: connecting");
        client
            .write_all(b"POST /stall HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
            .await
            .expect("L3: the head");
        client
            .write_all(&[0; 100_000])
            .await
            .expect("L3: a part of the body");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let _ = stop.send(());
        serving
            .await
            .expect("the serving task")
            .expect("axum::serve");
        let took = started.elapsed();
        (took, drain.drained().await)
    });
    eprintln!(
        "L3: axum::serve returned {} ms after the drain began (drain timeout {} ms) with a request in its handler; {report:?}",
        took.as_millis(),
        DRAIN.as_millis()
    );
    assert!(
        took < DRAIN + TOLERANCE,
        "L3 violated: axum::serve returned {took:?} after the drain began"
    );
    assert_eq!(report.aborted_by_drain, 1, "L3: {report:?}");
    let closes: Vec<CloseReason> = log.all_closes().into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        closes,
        [CloseReason::DrainAborted],
        "L3 violated: the connection whose request was never answered is aborted by the drain"
    );
}
