//! Connection churn: `cargo bench --features tokio --bench churn`.
//!
//! N connections (`CHURN_CONNECTIONS`, default 20,000) per round, each: connect, send 1 KiB,
//! shut the send side, the server echoes and closes gracefully, the client reads to the end of
//! the stream (and checks every byte) and closes. Four servers take turns, round by round
//! (`CHURN_ROUNDS`, default 5), against the same client, so that the machine's noise falls on
//! all of them alike:
//!
//! - `core-blocking`: the blocking adapter's [`Server`](socket_lifecycle::blocking::Server);
//! - `raw-blocking`: the same server written by hand on socket2: an accept loop with the same
//!   accept timeout, a thread per connection, `recv`, `send` with `MSG_NOSIGNAL`,
//!   `shutdown(Write)`, close;
//! - `core-tokio`: the tokio adapter's [`Server`](socket_lifecycle::tokio::Server);
//! - `raw-tokio`: the same server written by hand on `tokio::net`: a task per connection.
//!
//! The client is a pool of `CHURN_CLIENTS` (default 8) threads on plain std sockets; a round's
//! time runs from the first connect to the last close. The server is bound before and drained
//! after, outside the time. A run prints each round's connections per second, then each
//! server's median and the run's ratios: for each adapter, the median over the rounds of its
//! rate over the hand-written server's in the same round (the order of the servers is reversed
//! every other round, so that a pair's two orders count alike). The bench
//! makes `CHURN_RUNS` runs (default 3) and ends with the median of their ratios, in one line:
//! `churn ratio: blocking core/raw=X.XX tokio core/raw=Y.YY`. The adapters' figures include
//! each graceful close's wait for the peer's acknowledgement (C13).
//! `CHURN_SERVERS` (a comma-separated list of the names above) runs only those, for a profile
//! or a system-call count of one server. Run other than by `cargo bench` (without `--bench`),
//! it makes one run of 3 rounds of 2,000 connections, as a quick check.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket_lifecycle::{blocking, tokio as lifecycle_tokio};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The message each connection sends and gets back.
const MESSAGE_LEN: usize = 1024;
/// The server's read buffer.
const BUFFER_LEN: usize = 4096;
/// The raw blocking server's accept timeout: the adapter's own.
const ACCEPT_RECHECK: Duration = Duration::from_secs(1);

/// The raw blocking server's `send` flags: no `SIGPIPE`, as the adapter's (Windows has none to
/// stop; Apple's systems would need `SO_NOSIGPIPE` instead).
#[cfg(not(any(windows, target_vendor = "apple")))]
const NO_SIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(any(windows, target_vendor = "apple"))]
const NO_SIGNAL: i32 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    CoreBlocking,
    RawBlocking,
    CoreTokio,
    RawTokio,
}

const KINDS: [Kind; 4] = [
    Kind::CoreBlocking,
    Kind::RawBlocking,
    Kind::CoreTokio,
    Kind::RawTokio,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::CoreBlocking => "core-blocking",
            Self::RawBlocking => "raw-blocking",
            Self::CoreTokio => "core-tokio",
            Self::RawTokio => "raw-tokio",
        }
    }
}

fn main() {
    if let Err(message) = run() {
        eprintln!("churn: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let connections = setting("CHURN_CONNECTIONS", if full { 20_000 } else { 2_000 })?;
    let rounds = setting("CHURN_ROUNDS", if full { 5 } else { 3 })?;
    let runs = setting("CHURN_RUNS", if full { 3 } else { 1 })?;
    let clients = setting("CHURN_CLIENTS", 8)?;
    let kinds: Vec<Kind> = match std::env::var("CHURN_SERVERS") {
        Ok(list) => list
            .split(',')
            .map(|name| {
                KINDS
                    .into_iter()
                    .find(|kind| kind.name() == name.trim())
                    .ok_or_else(|| format!("CHURN_SERVERS: no server named {name:?}"))
            })
            .collect::<Result<_, _>>()?,
        Err(_) => KINDS.to_vec(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the tokio runtime: {error}"))?;
    println!(
        "churn: {runs} runs of {rounds} rounds, {connections} connections per round, {clients} \
         client threads, {MESSAGE_LEN} bytes each way"
    );
    let started = Instant::now();
    let mut blocking_ratios = Vec::new();
    let mut tokio_ratios = Vec::new();
    for run in 1..=runs {
        let (blocking, tokio) = one_run(run, &kinds, &runtime, connections, rounds, clients)?;
        println!(
            "run {run} ratio: blocking core/raw={} tokio core/raw={}",
            shown(blocking),
            shown(tokio)
        );
        blocking_ratios.extend(blocking);
        tokio_ratios.extend(tokio);
    }
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    let each = |ratios: &[f64]| {
        ratios
            .iter()
            .map(|ratio| format!("{ratio:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "runs' ratios: blocking {}; tokio {}",
        each(&blocking_ratios),
        each(&tokio_ratios)
    );
    let median_of = |ratios: &mut Vec<f64>| (!ratios.is_empty()).then(|| median(ratios));
    println!(
        "churn ratio: blocking core/raw={} tokio core/raw={}",
        shown(median_of(&mut blocking_ratios)),
        shown(median_of(&mut tokio_ratios))
    );
    Ok(())
}

fn shown(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "n/a".into(), |ratio| format!("{ratio:.2}"))
}

/// One run: `rounds` rounds, the servers taking turns in each (in the reverse order every
/// other round); prints each server's median, and returns the run's ratios: for each adapter,
/// the median over the rounds of its rate over the hand-written server's in the same round.
fn one_run(
    run: usize,
    kinds: &[Kind],
    runtime: &tokio::runtime::Runtime,
    connections: usize,
    rounds: usize,
    clients: usize,
) -> Result<(Option<f64>, Option<f64>), String> {
    let mut rates: Vec<(Kind, Vec<f64>)> = kinds.iter().map(|&kind| (kind, Vec::new())).collect();
    for round in 1..=rounds {
        let mut order: Vec<usize> = (0..rates.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for i in order {
            let (kind, samples) = &mut rates[i];
            let rate = round_of(*kind, runtime, connections, clients)
                .map_err(|error| format!("{} run {run} round {round}: {error}", kind.name()))?;
            println!(
                "run {run} round {round} {:<14} {rate:>9.0} connections/s",
                kind.name()
            );
            samples.push(rate);
        }
    }
    let of = |kind| rates.iter().find(|(k, _)| *k == kind).map(|(_, s)| s);
    let paired = |core, raw| match (of(core), of(raw)) {
        (Some(core), Some(raw)) => {
            let mut ratios: Vec<f64> = core.iter().zip(raw).map(|(c, r)| c / r).collect();
            Some(median(&mut ratios))
        }
        _ => None,
    };
    let ratios = (
        paired(Kind::CoreBlocking, Kind::RawBlocking),
        paired(Kind::CoreTokio, Kind::RawTokio),
    );
    println!("run {run}: medians over {rounds} rounds:");
    for (kind, samples) in &mut rates {
        println!(
            "  {:<14} {:>9.0} connections/s",
            kind.name(),
            median(samples)
        );
    }
    Ok(ratios)
}

fn setting(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{name} must be a positive whole number, not {value:?}"
            )),
        },
        Err(_) => Ok(default),
    }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    match samples.len() {
        0 => 0.0,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
    }
}

/// One round against one server: its connections per second. Checks that every connection was
/// served and closed gracefully on both sides.
fn round_of(
    kind: Kind,
    runtime: &tokio::runtime::Runtime,
    connections: usize,
    clients: usize,
) -> io::Result<f64> {
    let server = match kind {
        Kind::CoreBlocking => start_core_blocking()?,
        Kind::RawBlocking => start_raw_blocking()?,
        Kind::CoreTokio => start_core_tokio(runtime)?,
        Kind::RawTokio => start_raw_tokio(runtime)?,
    };
    let started = Instant::now();
    let client = run_clients(server.addr, connections, clients);
    let elapsed = started.elapsed();
    let graceful = (server.stop)()?;
    client?;
    if graceful != connections as u64 {
        return Err(io::Error::other(format!(
            "{graceful} of {connections} connections closed gracefully on the server"
        )));
    }
    Ok(connections as f64 / elapsed.as_secs_f64())
}

// ---- the client ------------------------------------------------------------------------------

/// `connections` exchanges over `clients` threads; the first failure is returned.
fn run_clients(addr: SocketAddr, connections: usize, clients: usize) -> io::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let threads: Vec<JoinHandle<io::Result<()>>> = (0..clients)
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                let mut reply = Vec::with_capacity(MESSAGE_LEN);
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= connections as u64 {
                        return Ok(());
                    }
                    exchange(addr, id, &mut reply)?;
                }
            })
        })
        .collect();
    let mut result = Ok(());
    for thread in threads {
        let outcome = thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a client thread panicked")));
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}

/// One connection: connect, send 1 KiB, shut the send side, read to the end, check, close.
fn exchange(addr: SocketAddr, id: u64, reply: &mut Vec<u8>) -> io::Result<()> {
    let message = message_of(id);
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(&message)?;
    stream.shutdown(Shutdown::Write)?;
    reply.clear();
    stream.read_to_end(reply)?;
    if reply[..] != message[..] {
        return Err(io::Error::other(format!(
            "connection {id}: {} bytes came back, not the {MESSAGE_LEN} sent",
            reply.len()
        )));
    }
    Ok(())
}

/// Each connection's own bytes, so that a reply from another connection would be seen.
fn message_of(id: u64) -> [u8; MESSAGE_LEN] {
    let mut message = [0_u8; MESSAGE_LEN];
    let seed = id.to_le_bytes();
    for (i, byte) in message.iter_mut().enumerate() {
        *byte = seed[i % seed.len()] ^ (i as u8);
    }
    message
}

// ---- the servers -----------------------------------------------------------------------------

/// A server serving: where it listens, and how to stop it (returns the graceful closes).
struct Running {
    addr: SocketAddr,
    stop: Box<dyn FnOnce() -> io::Result<u64>>,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn start_core_blocking() -> io::Result<Running> {
    let server = blocking::Server::bind(loopback(), blocking::ServerConfig::default())?;
    let addr = server.local_addr();
    let drain = server.drain_handle();
    let serving = std::thread::spawn(move || {
        server.serve(
            |connection| {
                let mut buffer = [0_u8; BUFFER_LEN];
                loop {
                    match connection.recv(&mut buffer)? {
                        0 => return Ok(()),
                        n => connection.send_all(&buffer[..n])?,
                    }
                }
            },
            |_| (),
        )
    });
    Ok(Running {
        addr,
        stop: Box::new(move || {
            drain.drain();
            let report = serving
                .join()
                .map_err(|_| io::Error::other("the server panicked"))??;
            Ok(report.graceful)
        }),
    })
}

fn start_raw_blocking() -> io::Result<Running> {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    listener.set_reuse_address(true)?;
    listener.bind(&loopback().into())?;
    listener.listen(1024)?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an internet address"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let graceful = Arc::new(AtomicU64::new(0));
    let serving = {
        let stop = Arc::clone(&stop);
        let graceful = Arc::clone(&graceful);
        std::thread::spawn(move || raw_blocking_accept_loop(&listener, &stop, &graceful))
    };
    Ok(Running {
        addr,
        stop: Box::new(move || {
            stop.store(true, Ordering::SeqCst);
            // Wakes the accept.
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
            serving
                .join()
                .map_err(|_| io::Error::other("the server panicked"))?;
            Ok(graceful.load(Ordering::SeqCst))
        }),
    })
}

fn raw_blocking_accept_loop(listener: &Socket, stop: &AtomicBool, graceful: &Arc<AtomicU64>) {
    let _ = listener.set_read_timeout(Some(ACCEPT_RECHECK));
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let socket = match retry_interrupted(|| listener.accept()) {
            Ok((socket, _)) => socket,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => continue,
        };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let graceful = Arc::clone(graceful);
        if let Ok(worker) = std::thread::Builder::new().spawn(move || {
            if raw_blocking_connection(&socket).is_ok() {
                graceful.fetch_add(1, Ordering::SeqCst);
            }
        }) {
            workers.push(worker);
        }
        workers.retain(|worker| !worker.is_finished());
    }
    for worker in workers {
        let _ = worker.join();
    }
}

/// The exchange, by hand: echo to the end of stream, shut the send side, close.
fn raw_blocking_connection(socket: &Socket) -> io::Result<()> {
    // An accepted socket inherits the listener's accept timeout; this server has none.
    socket.set_read_timeout(None)?;
    let mut buffer = [0_u8; BUFFER_LEN];
    let mut reader = socket;
    loop {
        let n = retry_interrupted(|| reader.read(&mut buffer))?;
        if n == 0 {
            break;
        }
        let mut rest = &buffer[..n];
        while !rest.is_empty() {
            let sent = retry_interrupted(|| socket.send_with_flags(rest, NO_SIGNAL))?;
            rest = &rest[sent..];
        }
    }
    // The peer's end of stream has come: nothing is left to linger for.
    socket.shutdown(Shutdown::Write)
}

fn retry_interrupted<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

fn start_core_tokio(runtime: &tokio::runtime::Runtime) -> io::Result<Running> {
    let server = runtime.block_on(lifecycle_tokio::Server::bind(
        loopback(),
        lifecycle_tokio::ServerConfig::default(),
    ))?;
    let addr = server.local_addr();
    let drain = server.drain_handle();
    let serving = runtime.spawn(server.serve(|connection| Box::pin(echo(connection)), |_| ()));
    let handle = runtime.handle().clone();
    Ok(Running {
        addr,
        stop: Box::new(move || {
            drain.drain();
            let report = handle
                .block_on(serving)
                .map_err(|_| io::Error::other("the server panicked"))??;
            Ok(report.graceful)
        }),
    })
}

async fn echo(connection: &mut lifecycle_tokio::Connection) -> io::Result<()> {
    let mut buffer = [0_u8; BUFFER_LEN];
    loop {
        match connection.recv(&mut buffer).await? {
            0 => return Ok(()),
            n => connection.send_all(&buffer[..n]).await?,
        }
    }
}

fn start_raw_tokio(runtime: &tokio::runtime::Runtime) -> io::Result<Running> {
    let listener = runtime.block_on(tokio::net::TcpListener::bind(loopback()))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let graceful = Arc::new(AtomicU64::new(0));
    let serving = {
        let stop = Arc::clone(&stop);
        let graceful = Arc::clone(&graceful);
        runtime.spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                while tasks.try_join_next().is_some() {}
                let accepted = tokio::select! {
                    biased;
                    () = stop.notified() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let graceful = Arc::clone(&graceful);
                tasks.spawn(async move {
                    if raw_tokio_connection(stream).await.is_ok() {
                        graceful.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            drop(listener);
            while tasks.join_next().await.is_some() {}
        })
    };
    let handle = runtime.handle().clone();
    Ok(Running {
        addr,
        stop: Box::new(move || {
            stop.notify_one();
            handle
                .block_on(serving)
                .map_err(|_| io::Error::other("the server panicked"))?;
            Ok(graceful.load(Ordering::SeqCst))
        }),
    })
}

/// The exchange, by hand on tokio: echo to the end of stream, shut the send side, close.
async fn raw_tokio_connection(mut stream: tokio::net::TcpStream) -> io::Result<()> {
    let mut buffer = [0_u8; BUFFER_LEN];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        stream.write_all(&buffer[..n]).await?;
    }
    stream.shutdown().await
}
