//! S7 through the tokio adapter: thousands of connections through every scenario, on both
//! sides (a tokio server, tokio clients as concurrent tasks), and not one descriptor left open.
//!
//! A file of its own with a single test: it counts this process's open descriptors, which any
//! other test running alongside would disturb.

#![cfg(feature = "tokio")]

mod support;
mod tokio_support;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket_lifecycle::tokio::{Connection, Connector, Event, ServerConfig};
use socket_lifecycle::{CloseReason, Config};
use support::{fd_count, pattern};
use tokio_support::{Running, baseline, recv_all};

/// Connections per scenario; five scenarios.
const EACH: usize = 420;
/// Client tasks, each running its share of the connections one after another.
const TASKS: usize = 10;

/// The scenarios, by the first byte the client sends after the server's greeting.
const SCENARIOS: [u8; 5] = [b'E', b'S', b'A', b'Q', b'D'];

async fn server_side(connection: &mut Connection) -> io::Result<()> {
    connection.send_all(b"+").await?; // accepted: the client may go on
    let mut kind = [0];
    if connection.recv(&mut kind).await? == 0 {
        return Ok(());
    }
    match kind[0] {
        // The seed: echo until the end of stream, shut, close.
        b'E' => tokio_support::echo(connection).await,
        // The peer shut early: read to its end of stream, then send 64 KiB and close.
        b'S' => {
            let (_, error) = recv_all(connection).await;
            if let Some(error) = error {
                return Err(error);
            }
            connection.send_all(&pattern(64 * 1024)).await
        }
        // The peer aborts, or is dropped: read until its reset.
        b'A' | b'D' => recv_all(connection).await.1.map_or(Ok(()), Err),
        // A silent peer: say goodbye and close; the short linger ends it.
        _ => connection.send_all(b"bye").await,
    }
}

/// Runs one client; a silent one is returned, to be held open (silent) until the server closed it.
async fn client_side(
    addr: std::net::SocketAddr,
    kind: u8,
    closes: &Arc<AtomicU64>,
) -> io::Result<Option<Connection>> {
    let counter = Arc::clone(closes);
    let mut connection = Connector::new(Config::default())
        .observer(move |event: &Event<'_>| {
            if let Event::Closed { .. } = event {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
        .connect(addr)
        .await?;
    let mut plus = [0];
    connection.recv(&mut plus).await?;
    connection.send_all(&[kind]).await?;
    match kind {
        b'E' => {
            connection.send_all(&pattern(4096)).await?;
            connection.shutdown_send()?;
            let (got, error) = recv_all(&mut connection).await;
            assert!(
                error.is_none() && got == pattern(4096),
                "S7 violated: echo lost bytes"
            );
            connection.close().await.map(|_| None)
        }
        b'S' => {
            connection.shutdown_send()?;
            let (got, error) = recv_all(&mut connection).await;
            assert!(
                error.is_none() && got.len() == 64 * 1024,
                "S7 violated: bytes lost after an early shutdown"
            );
            connection.close().await.map(|_| None)
        }
        b'A' => {
            connection.send_all(&pattern(1024)).await?;
            connection.abort();
            Ok(None)
        }
        b'Q' => {
            // Silent: never send, never shut, until the server has closed at its deadline.
            let (got, _) = recv_all(&mut connection).await;
            assert_eq!(got, b"bye", "S7: the silent peer's goodbye");
            Ok(Some(connection))
        }
        _ => {
            connection.send_all(&pattern(1024)).await?;
            drop(connection); // an open connection dropped: reset
            Ok(None)
        }
    }
}

#[test]
fn s7_thousands_of_connections_through_every_scenario_leave_no_descriptor_open() {
    let before = baseline();
    let started = Instant::now();
    let linger = Config::new()
        .with_linger(Duration::from_millis(200), Duration::from_millis(50))
        .expect("valid settings");
    let server = Running::start(
        ServerConfig {
            connection: linger,
            drain_timeout: Duration::from_secs(5),
            ..ServerConfig::default()
        },
        |connection| Box::pin(server_side(connection)),
    );
    let client_closes = Arc::new(AtomicU64::new(0));
    let total = EACH * SCENARIOS.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
        .expect("S7: a client runtime");
    // Bounded, so that a server that stops answering fails the test instead of hanging it.
    let clients_done = runtime.block_on(async {
        tokio::time::timeout(support::HANG, async {
            let clients: Vec<_> = (0..TASKS)
                .map(|t| {
                    let closes = Arc::clone(&client_closes);
                    let addr = server.addr;
                    tokio::spawn(async move {
                        let mut silent = Vec::new();
                        for i in (t..total).step_by(TASKS) {
                            let kind = SCENARIOS[i % SCENARIOS.len()];
                            match client_side(addr, kind, &closes).await {
                                Ok(held) => silent.extend(held),
                                Err(error) => panic!(
                                    "S7 violated: connection {i} ({}) failed: {error}",
                                    kind as char
                                ),
                            }
                        }
                        silent
                    })
                })
                .collect();
            let mut silent = Vec::new();
            for client in clients {
                silent.extend(client.await.expect("S7: a client task failed"));
            }
            silent
        })
        .await
    });
    let silent: Vec<Connection> = clients_done.unwrap_or_else(|_| {
        panic!(
            "S7 violated: the clients' exchanges did not finish within {:?}",
            support::HANG
        )
    });
    // The silent peers stay open until the server has closed each of them at its deadline.
    let deadline = Instant::now() + support::HANG;
    while server.log.all_closes().len() < total {
        assert!(
            Instant::now() < deadline,
            "S7 violated: the server did not close every connection"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let silent_count = silent.len();
    drop(silent);
    drop(runtime);
    let report = server.finish("S7");
    // The server's runtime goes with its thread, a moment after it reports.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut after = fd_count();
    while after != before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        after = fd_count();
    }
    let closes = server.log.all_closes();
    let count = |reason: CloseReason| closes.iter().filter(|(_, r)| *r == reason).count();
    eprintln!(
        "S7: {total} connections in {:.1} s; server {report:?}; server closes: graceful {}, linger timeout {}, peer reset {}; client closes {}",
        started.elapsed().as_secs_f64(),
        count(CloseReason::Graceful),
        count(CloseReason::LingerTimeout),
        count(CloseReason::PeerReset),
        client_closes.load(Ordering::SeqCst)
    );
    eprintln!("S7: descriptors before {before}, after {after}; {silent_count} silent peers held");
    assert_eq!(report.accepted, total as u64, "S7 violated: {report:?}");
    assert_eq!(
        closes.len(),
        total,
        "S7 violated: {} server-side closes for {total} connections",
        closes.len()
    );
    let mut ids: Vec<u64> = closes.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        total,
        "S7 violated: a server-side connection closed twice"
    );
    assert_eq!(
        client_closes.load(Ordering::SeqCst),
        total as u64,
        "S7 violated: client-side closes"
    );
    assert_eq!(
        count(CloseReason::Graceful),
        2 * EACH,
        "S7 violated: graceful closes"
    );
    assert_eq!(
        count(CloseReason::LingerTimeout),
        EACH,
        "S7 violated: linger timeouts"
    );
    assert_eq!(
        count(CloseReason::PeerReset),
        2 * EACH,
        "S7 violated: peer resets"
    );
    assert_eq!(
        after,
        before,
        "S7 violated: {} descriptors leaked over {total} connections",
        after as isize - before as isize
    );
    eprintln!("S7 summary: connections {total}, bytes lost 0, descriptors leaked 0");
}
