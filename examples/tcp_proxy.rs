//! A TCP proxy on the tokio adapter: it accepts on one address with the crate's `Server`,
//! connects to the upstream with its `Connector` (each address the upstream's name resolved to,
//! in turn), and relays both ways with `tokio::io::copy_bidirectional`. Each side's end of stream
//! reaches the other as an end of stream (a half-close: the other direction goes on), and a reset
//! as a reset; when both streams have ended, both connections close with the lingering close.
//! One line per connection says how each side closed:
//!
//! ```text
//! [3 127.0.0.1:51234] client: graceful; upstream: graceful
//! [4 127.0.0.1:51240] client: aborted; upstream: reset by peer (Connection reset by peer (os error 104))
//! ```
//!
//! Ctrl-C (or SIGTERM) drains: no more accepts, open relays finish (those still open at the
//! drain deadline are reset), and a summary is printed.
//!
//! ```text
//! cargo run --features tokio --example tcp_proxy -- LISTEN_ADDR UPSTREAM_ADDR
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use socket_lifecycle::tokio::{Connection, Connector, Event, Peer, Server, ServerConfig};
use socket_lifecycle::{CloseReason, Config};

#[allow(dead_code)] // each program uses its part of the shared module
mod common;

use common::Arg;
use common::server_log;
use common::stop::{Stop, drain_on_stop};

const PROGRAM: &str = "tcp_proxy";

const USAGE: &str = "\
usage: tcp_proxy LISTEN_ADDR UPSTREAM_ADDR

Accepts TCP connections on LISTEN_ADDR and relays each one, both ways, over a connection of its
own to UPSTREAM_ADDR (resolved once, at start; each address it resolves to is tried in turn).
An end of stream from either side reaches the other as an end of stream, and a reset as a reset;
when both streams have ended, both connections close gracefully. One line per connection says
how each side closed. Ctrl-C (SIGINT) or SIGTERM drains the proxy and prints a summary; a second
one exits at once.

  -h, --help   this help
  --           what follows is LISTEN_ADDR and UPSTREAM_ADDR, even if it starts with '-'";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => Err(format!("cannot start the tokio runtime: {error}")),
    };
    common::exit_status(PROGRAM, result)
}

async fn run() -> Result<(), String> {
    let Some((listen, upstream)) = parse_args()? else {
        println!("{USAGE}");
        return Ok(());
    };
    let listen_addr = common::resolve(&listen)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("'{listen}' resolved to no address"))?;
    let upstream_addrs: Arc<[SocketAddr]> = common::resolve(&upstream)?.into();
    let config = ServerConfig::default();
    let server = Server::bind(listen_addr, config)
        .await
        .map_err(|error| error.to_string())?;
    let listed: Vec<String> = upstream_addrs.iter().map(ToString::to_string).collect();
    println!("listening on {}", server.local_addr());
    println!("relaying to {upstream} ({})", listed.join(", "));

    let stop = Stop::new().map_err(|error| format!("cannot handle Ctrl-C: {error}"))?;
    tokio::spawn(drain_on_stop(
        stop,
        server.drain_handle(),
        config.drain_timeout,
    ));

    let relays = Relays::default();
    let handler_relays = relays.clone();
    let report = server
        .serve(
            move |client| {
                let relays = handler_relays.clone();
                let upstream_addrs = Arc::clone(&upstream_addrs);
                Box::pin(async move {
                    relay(client, &upstream_addrs, &relays).await;
                    Ok(())
                })
            },
            move |peer| relays.client_observer(peer),
        )
        .await
        .map_err(|error| format!("the proxy stopped: {error}"))?;
    println!("{}", server_log::summary(&report));
    Ok(())
}

/// LISTEN_ADDR and UPSTREAM_ADDR; `None` if the command line asked for the help.
fn parse_args() -> Result<Option<(String, String)>, String> {
    let mut words = Vec::new();
    for arg in common::args() {
        match arg {
            Arg::Flag { name, .. } if name == "-h" || name == "--help" => return Ok(None),
            Arg::Flag { name, .. } => return Err(format!("unknown flag '{name}' (try --help)")),
            Arg::Word(word) if words.len() < 2 => words.push(word),
            Arg::Word(word) => return Err(format!("unexpected argument '{word}' (try --help)")),
        }
    }
    let mut words = words.into_iter();
    match (words.next(), words.next()) {
        (Some(listen), Some(upstream)) => Ok(Some((listen, upstream))),
        (Some(_), None) => Err("missing UPSTREAM_ADDR (try --help)".to_owned()),
        (None, _) => Err("missing LISTEN_ADDR and UPSTREAM_ADDR (try --help)".to_owned()),
    }
}

/// One client's relay: connect to the upstream, copy both ways until both streams have ended
/// (or one side failed), then end both connections alike.
async fn relay(client: &mut Connection, upstream_addrs: &[SocketAddr], relays: &Relays) {
    // A client gone before its relay began has nothing to relay (the server closes it).
    let Some(log) = relays.of(client) else {
        return;
    };
    let upstream_log = Arc::clone(&log);
    let connecting = Connector::new(Config::default())
        .observer(move |event: &Event<'_>| {
            if let Event::Closed { reason, error } = event {
                lock(&upstream_log).upstream(Upstream::Closed(how(*reason, *error)));
            }
        })
        .connect_to(upstream_addrs)
        .await;
    let mut upstream = match connecting {
        Ok(upstream) => {
            lock(&log).upstream(Upstream::Open);
            upstream
        }
        Err(error) => {
            lock(&log).upstream(Upstream::Unreachable(error.to_string()));
            // A reset, not an end of stream: an empty stream would say the service answered
            // nothing, when there was no service to answer.
            client.abort();
            return;
        }
    };

    let relayed = tokio::io::copy_bidirectional(client, &mut upstream).await;
    match (client.close_reason(), upstream.close_reason()) {
        // Each end of stream was passed on; both connections close gracefully.
        (None, None) if relayed.is_ok() => {
            let _ = tokio::join!(client.close(), upstream.close());
        }
        // One side was reset (or failed): the other is reset too, so that it does not take the
        // stream cut short for a whole one.
        (Some(_), None) => {
            upstream.abort();
        }
        (None, Some(_)) => {
            client.abort();
        }
        // The copy failed and closed neither (every OS error closes a connection, so this is
        // not expected): nothing tells a whole stream, so both are reset.
        (None, None) => {
            client.abort();
            upstream.abort();
        }
        (Some(_), Some(_)) => {}
    }
}

/// How a relay's upstream connection stands.
#[derive(Debug, Default)]
enum Upstream {
    /// Not connected yet; if the client closes now, there never was an upstream.
    #[default]
    Connecting,
    /// Every address failed: the error of the last.
    Unreachable(String),
    Open,
    /// How it closed.
    Closed(String),
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting => f.write_str("never connected"),
            Self::Unreachable(error) => f.write_str(error),
            Self::Open => f.write_str("open"),
            Self::Closed(how) => f.write_str(how),
        }
    }
}

/// One relay's log line, written once both its connections are done with: its client's close,
/// and the upstream's close (or why there was no upstream).
#[derive(Debug)]
struct RelayLog {
    prefix: String,
    client: Option<String>,
    upstream: Upstream,
    written: bool,
}

impl RelayLog {
    fn client_closed(&mut self, how: String) {
        self.client = Some(how);
        self.write_when_done();
    }

    fn upstream(&mut self, upstream: Upstream) {
        self.upstream = upstream;
        self.write_when_done();
    }

    fn write_when_done(&mut self) {
        let upstream_done = !matches!(self.upstream, Upstream::Open);
        if let (Some(client), true, false) = (&self.client, upstream_done, self.written) {
            println!(
                "{} client: {client}; upstream: {}",
                self.prefix, self.upstream
            );
            self.written = true;
        }
    }
}

/// The open relays' logs, by their client's address: a handler knows only its client's
/// connection, and finds its relay's log here.
#[derive(Debug, Clone, Default)]
struct Relays {
    logs: Arc<Mutex<HashMap<SocketAddr, Arc<Mutex<RelayLog>>>>>,
}

impl Relays {
    /// A client connection's observer: it opens the relay's log, and gives it the client's close.
    fn client_observer(&self, peer: Peer) -> impl FnMut(&Event<'_>) + Send + use<> {
        let log = Arc::new(Mutex::new(RelayLog {
            prefix: format!("[{} {}]", peer.id, peer.addr),
            client: None,
            upstream: Upstream::Connecting,
            written: false,
        }));
        lock(&self.logs).insert(peer.addr, Arc::clone(&log));
        let logs = Arc::clone(&self.logs);
        move |event: &Event<'_>| {
            if let Event::Closed { reason, error } = event {
                lock(&logs).remove(&peer.addr);
                lock(&log).client_closed(how(*reason, *error));
            }
        }
    }

    /// The log of the relay of `client`, while it is open.
    fn of(&self, client: &Connection) -> Option<Arc<Mutex<RelayLog>>> {
        let addr = client.peer_addr().ok()?;
        lock(&self.logs).get(&addr).cloned()
    }
}

/// A close, as the log says it: the reason, and the OS error that ended the connection if one
/// did.
fn how(reason: CloseReason, error: Option<&io::Error>) -> String {
    match error {
        Some(error) => format!("{reason} ({error})"),
        None => reason.to_string(),
    }
}

/// The lock, also after a panic elsewhere: a log is still worth writing.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
