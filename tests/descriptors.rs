//! S7: thousands of connections through every scenario, and not one descriptor left open; on
//! both sides of each connection the adapter under test (a server, and clients run concurrently),
//! through each adapter: `blocking::s7_...` and, with the `tokio` feature, `tokio::s7_...`.
//!
//! A file of its own: it counts this process's open descriptors, which any other test running
//! alongside would disturb; its instantiations run one at a time (`serial`).

mod support;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket_lifecycle::blocking::{Event, ServerConfig};
use socket_lifecycle::{CloseReason, Config};
use support::{
    Adapter, Connection, Handled, Receiving, Sending, Task, for_each_adapter, pattern, recv_all,
    serial, settled_fd_count,
};

for_each_adapter! {
    #[cfg_attr(
        windows,
        ignore = "S7 counts open descriptors: Windows has no /proc/self/fd, and Wine's \
                  GetProcessHandleCount answers 0"
    )]
    s7_thousands_of_connections_through_every_scenario_leave_no_descriptor_open,
}

/// Connections per scenario; five scenarios.
const EACH: usize = 420;
/// Clients at once (threads, or tasks), each running its share of the connections one after
/// another.
const CLIENTS: usize = 10;

/// The scenarios, by the first byte the client sends after the server's greeting.
const SCENARIOS: [u8; 5] = [b'E', b'S', b'A', b'Q', b'D'];

fn server_side<C: Connection>(connection: &mut C) -> Handled<'_> {
    Box::pin(async move {
        connection.send_all(b"+").await?; // accepted: the client may go on
        let mut kind = [0];
        if connection.recv(&mut kind).await? == 0 {
            return Ok(());
        }
        match kind[0] {
            // The seed: echo until the end of stream, shut, close.
            b'E' => support::echo(connection).await,
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
    })
}

/// Runs one client; a silent one is returned, to be held open (silent) until the server closed it.
async fn client_side<A: Adapter>(
    address: &str,
    kind: u8,
    closes: &Arc<AtomicU64>,
) -> io::Result<Option<A::Connection>> {
    let counter = Arc::clone(closes);
    let observer = move |event: &Event<'_>| {
        if let Event::Closed { .. } = event {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    };
    let mut connection = A::connect(address, Config::default(), observer).await?;
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

fn s7_thousands_of_connections_through_every_scenario_leave_no_descriptor_open<A: Adapter>() {
    let _serial = serial();
    let before = A::baseline();
    let started = Instant::now();
    let linger = Config::new()
        .with_linger(Duration::from_millis(200), Duration::from_millis(50))
        .expect("valid settings");
    let server = A::serve(
        ServerConfig::default()
            .with_connection(linger)
            .with_drain_timeout(Duration::from_secs(5)),
        server_side,
    );
    let client_closes = Arc::new(AtomicU64::new(0));
    let total = EACH * SCENARIOS.len();
    let silent_count = A::run(async {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let closes = Arc::clone(&client_closes);
                let address = server.addr.to_string();
                A::spawn(async move {
                    let mut silent = Vec::new();
                    for i in (c..total).step_by(CLIENTS) {
                        let kind = SCENARIOS[i % SCENARIOS.len()];
                        match client_side::<A>(&address, kind, &closes).await {
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
        // Bounded, so that a server that stops answering fails the test instead of hanging it.
        let deadline = Instant::now() + support::HANG;
        let mut silent = Vec::new();
        for client in clients {
            let held = client
                .join_within(deadline.saturating_duration_since(Instant::now()))
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "S7 violated: the clients' exchanges did not finish within {:?}",
                        support::HANG
                    )
                });
            silent.extend(held);
        }
        // The silent peers stay open until the server has closed each of them at its deadline.
        let deadline = Instant::now() + support::HANG;
        while server.log.all_closes().len() < total {
            assert!(
                Instant::now() < deadline,
                "S7 violated: the server did not close every connection"
            );
            A::sleep(Duration::from_millis(10)).await;
        }
        silent.len()
    });
    let report = server.finish("S7");
    // The server's runtime, if it has one, goes with its thread, a moment after it reports.
    let after = settled_fd_count(before);
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
