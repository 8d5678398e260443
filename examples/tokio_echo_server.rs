//! The seed's server, for many clients, on the tokio adapter: `echo_server` with a task per
//! connection instead of a thread. Each connection echoes what it receives until the client's end
//! of stream, then shuts its send side, and the server closes it gracefully. Ctrl-C (or SIGTERM)
//! drains: no more accepts, open connections finish, and a summary is printed. Every transition
//! and every close of every connection is logged.
//!
//! ```text
//! cargo run --features tokio --example tokio_echo_server -- [ADDR] [--idle-timeout D] [--linger-total D] [--linger-idle D]
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use socket_lifecycle::DrainOutcome;
use socket_lifecycle::tokio::{Connection, DrainHandle, Event, Peer, ServeReport, Server};

#[allow(dead_code)] // each program uses its part of the shared module
mod common;

use common::server_options::{self, Options};

const PROGRAM: &str = "tokio_echo_server";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => Err(format!("cannot start the tokio runtime: {error}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let Some(options) = Options::parse()? else {
        println!("{}", server_options::help(PROGRAM));
        return Ok(());
    };
    let config = options.server_config()?;
    let server = Server::bind(options.listen_addr()?, config)
        .await
        .map_err(|error| error.to_string())?;
    println!("listening on {}", server.local_addr());

    let stop = Stop::new().map_err(|error| format!("cannot handle Ctrl-C: {error}"))?;
    tokio::spawn(drain_on_stop(
        stop,
        server.drain_handle(),
        config.drain_timeout,
    ));

    // Which connection a handler serves, by its peer's address, for its own log lines.
    let ids: Arc<Mutex<HashMap<SocketAddr, u64>>> = Arc::default();
    let handler_ids = Arc::clone(&ids);
    let report = server
        .serve(
            move |connection| {
                let ids = Arc::clone(&handler_ids);
                Box::pin(async move { echo(connection, &ids).await })
            },
            move |peer| observer(peer, Arc::clone(&ids)),
        )
        .await
        .map_err(|error| format!("the server stopped: {error}"))?;
    println!("{}", summary(&report));
    Ok(())
}

/// The stop signals: Ctrl-C (SIGINT), and SIGTERM on Unix.
struct Stop {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next stop signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The first stop signal drains; a second one exits at once.
async fn drain_on_stop(mut stop: Stop, drain: DrainHandle, drain_timeout: Duration) {
    stop.next().await;
    println!("stop signal: draining (open connections have {drain_timeout:?} to finish)");
    drain.drain();
    stop.next().await;
    println!("second stop signal: exiting without waiting for the drain");
    std::process::exit(1);
}

/// One connection: echo until the client's end of stream, then shut the send side. The server
/// closes it afterwards.
async fn echo(
    connection: &mut Connection,
    ids: &Mutex<HashMap<SocketAddr, u64>>,
) -> io::Result<()> {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        match connection.recv(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => {
                connection
                    .send_all(buffer.get(..n).unwrap_or_default())
                    .await?
            }
            Err(error) => {
                if error.kind() == io::ErrorKind::TimedOut && connection.close_reason().is_none() {
                    // The idle timeout: the connection is still open, and closes gracefully.
                    println!("{} {error}: closing", prefix_of(connection, ids));
                }
                return Err(error);
            }
        }
    }
    connection.shutdown_send()
}

/// The log prefix of the connection a handler serves.
fn prefix_of(connection: &Connection, ids: &Mutex<HashMap<SocketAddr, u64>>) -> String {
    match connection.peer_addr() {
        Ok(addr) => {
            let ids = ids.lock().unwrap_or_else(PoisonError::into_inner);
            match ids.get(&addr) {
                Some(id) => format!("[{id} {addr}]"),
                None => format!("[{addr}]"),
            }
        }
        Err(_) => "[?]".to_owned(),
    }
}

/// A connection's observer: one line per transition and for its close, and its entry in `ids`
/// while it is open.
fn observer(
    peer: Peer,
    ids: Arc<Mutex<HashMap<SocketAddr, u64>>>,
) -> impl FnMut(&Event<'_>) + Send + 'static {
    ids.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(peer.addr, peer.id);
    let prefix = format!("[{} {}]", peer.id, peer.addr);
    move |event: &Event<'_>| {
        if let Some(line) = common::event_line(event) {
            println!("{prefix} {line}");
        }
        if let Event::Closed { .. } = event {
            ids.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&peer.addr);
        }
    }
}

/// The last line: what the server did.
fn summary(report: &ServeReport) -> String {
    let drain = match report.drain {
        Some(DrainOutcome::Drained) | None => "every connection closed".to_owned(),
        Some(DrainOutcome::Expired { open }) => {
            format!("the deadline passed with {open} open")
        }
    };
    format!(
        "drained: served {} connections, {} graceful, {} aborted by the drain, {} failed accepts; \
         {drain}, in {:?}",
        report.accepted,
        report.graceful,
        report.aborted_by_drain,
        report.accept_failures,
        report.drain_time
    )
}
