//! The tokio adapter at scale, next to the same server written by hand:
//! `cargo bench --features tokio --bench scale`.
//!
//! Two servers hold the same connections in turn, each in a process of its own (so that the
//! memory one freed does not lower the other's figure), round by round (`SCALE_ROUNDS`, default
//! 3; the first to go alternates), and the bench prints each run, each server's medians and
//! their ratios:
//!
//! - `adapter`: the tokio adapter's [`Server`] (two worker threads) with an echo handler: it
//!   echoes until the client's end of stream, then shuts its send side, and the server closes
//!   the connection gracefully, once the peer has acknowledged everything (C13);
//! - `raw`: the same server by hand on `tokio::net` (two worker threads): accept, a task per
//!   connection with the same 256-byte buffer and echo, `shutdown`, drop. On the signal (a
//!   `broadcast`) the accept loop stops and each task shuts its send side and drops its socket.
//!
//! Each server process re-runs the bench's binary as the client process, which opens the
//! connections (10,000; at most 500 connecting at a time) over loopback, sends 32 bytes on each,
//! reads the echo and holds the connection open.
//!
//! Once the client process has every echo back and the server's handlers count every
//! connection open, the server process reads its resident memory (`VmRSS`) and its live heap (a
//! counting allocator); the figures per connection are the growth since before the first
//! accept, divided by the count. They leave out the kernel's socket buffers, the same for both.
//!
//! Then the close of them all: from the signal (the adapter's [`DrainHandle::drain`], the
//! hand-written server's broadcast) to the server's `serve` returning, every connection closed
//! and every task joined. Right after the signal the server process tells the client process to
//! finish (a line on its standard input): each client shuts its send side, reads to the
//! server's end of stream and closes. For the adapter the close of all covers the message to the
//! client process, each client's end of stream, each handler seeing it and shutting its send
//! side, the server's close seeing our end of stream acknowledged and releasing the socket, and
//! `serve` joining the tasks: what its graceful close waits for. The hand-written server's
//! tasks shut down and drop at once, without waiting for the client. The clients' last step
//! (reading the server's end of stream, closing) is timed apart, until the client process
//! reports all of them closed. The adapter's drain must end `Drained`, with every close
//! graceful and none aborted, and every client must see a clean end of stream from either
//! server; otherwise the bench fails.
//!
//! Every process raises its descriptor limit (`RLIMIT_NOFILE`) to the hard limit; with a hard
//! limit too low for 10,000 (plus a margin), the count is lowered to what fits, and said.
//! `SCALE_CONNECTIONS=N` sets the count, `SCALE_SERVERS=adapter` (or `raw`) runs one server
//! only, and `SCALE_HEAP_SIZES=1` prints each server's live allocations per connection by size.
//! Run other than by `cargo bench` (without `--bench`), it holds 200 connections for one round,
//! as a quick check.

// Raising the descriptor limit (`setrlimit`) is a libc call, and counting the live heap needs a
// global allocator, an unsafe trait: it only counts and hands everything to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket_lifecycle::DrainOutcome;
use socket_lifecycle::tokio::{Connection, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::JoinSet;

/// The connections the issue asks for.
const CONNECTIONS: usize = 10_000;
/// Held by a quick check (run without `--bench`).
const QUICK_CONNECTIONS: usize = 200;
/// Rounds of the two servers (a quick check runs one).
const ROUNDS: usize = 3;
/// The listen backlog; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;
/// Descriptors each process keeps beyond its connections (runtime, pipes, standard streams).
const DESCRIPTOR_MARGIN: usize = 64;
/// Set in the client process's environment: the server's address.
const CLIENT_ENV: &str = "SOCKET_LIFECYCLE_SCALE_CLIENT";
/// Set in a server process's environment: which server it runs.
const SERVER_ENV: &str = "SOCKET_LIFECYCLE_SCALE_SERVER";
/// How a server process's figures begin, on a line of their own.
const RESULT_PREFIX: &str = "scale-figures ";
/// Connects in flight at a time, well under the listen backlog.
const CONNECTING_AT_ONCE: usize = 500;
/// What each client sends, and gets back.
const MESSAGE: &[u8; 32] = b"scale: one message per client.\r\n";
/// The echo handler's buffer, part of each connection's handler future (on the heap).
const HANDLER_BUFFER: usize = 256;
/// How long the clients have to connect, and the drain to finish, before the bench gives up.
const SETUP_LIMIT: Duration = Duration::from_secs(60);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

// ---- counting the live heap --------------------------------------------------------------------

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

/// Live allocations by size, in steps of `SIZE_STEP` bytes, counted only when `SCALE_HEAP_SIZES`
/// is set: where a server's bytes per connection go.
const SIZE_STEP: usize = 8;
const SIZE_CLASSES: usize = 1024;
static BY_SIZE_ON: AtomicBool = AtomicBool::new(false);
static BY_SIZE: [AtomicI64; SIZE_CLASSES] = [const { AtomicI64::new(0) }; SIZE_CLASSES];

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(size: usize, change: i64) {
    LIVE_BYTES.fetch_add(change * as_i64(size), Ordering::Relaxed);
    if BY_SIZE_ON.load(Ordering::Relaxed) {
        let class = size.div_ceil(SIZE_STEP).min(SIZE_CLASSES - 1);
        BY_SIZE[class].fetch_add(change, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The live allocations by size class now.
fn by_size() -> Vec<i64> {
    BY_SIZE
        .iter()
        .map(|count| count.load(Ordering::SeqCst))
        .collect()
}

/// The size classes that grew by at least half an allocation per connection between `before`
/// and `after`: the per-connection allocations, with their bytes per connection.
fn print_by_size(before: &[i64], after: &[i64], connections: usize) {
    println!("  live allocations per connection, by size (up to {SIZE_STEP} bytes each):");
    let mut total = 0.0;
    for (class, (b, a)) in before.iter().zip(after).enumerate() {
        let each = (a - b) as f64 / connections as f64;
        if each >= 0.5 {
            let size = class * SIZE_STEP;
            total += each * size as f64;
            println!("    {size:>6} bytes: {each:.2} per connection");
        }
    }
    println!("    about {total:.0} bytes per connection in these");
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- the process ---------------------------------------------------------------------------------

/// The two servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Adapter,
    Raw,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Adapter => "adapter",
            Self::Raw => "raw",
        }
    }

    fn of(name: &str) -> Option<Self> {
        [Self::Adapter, Self::Raw]
            .into_iter()
            .find(|kind| kind.name() == name.trim())
    }

    fn title(self) -> &'static str {
        match self {
            Self::Adapter => "the tokio adapter's server",
            Self::Raw => "a hand-written tokio server",
        }
    }
}

fn main() -> ExitCode {
    let result = match (std::env::var(CLIENT_ENV), std::env::var(SERVER_ENV)) {
        (Ok(addr), _) => client_process(&addr),
        (_, Ok(kind)) => match Kind::of(&kind) {
            Some(kind) => server_process(kind),
            None => Err(format!("no server named '{kind}'")),
        },
        _ => bench(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("scale: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft descriptor limit to the hard limit; returns the limit now in force.
#[cfg(unix)]
fn raise_descriptor_limit() -> Result<usize, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", io::Error::last_os_error()));
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit`; the soft limit stays within the hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

#[cfg(not(unix))]
fn raise_descriptor_limit() -> Result<usize, String> {
    Ok(usize::MAX)
}

/// The process's resident memory, in KiB (Linux: `VmRSS` in /proc/self/status).
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn positive(name: &str) -> Result<Option<usize>, String> {
    match std::env::var(name) {
        Ok(count) => count
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .map(Some)
            .ok_or_else(|| format!("{name} must be a positive count, not '{count}'")),
        Err(_) => Ok(None),
    }
}

// ---- the bench: both servers, round by round -------------------------------------------------------

fn bench() -> Result<(), String> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let connections = positive("SCALE_CONNECTIONS")?.unwrap_or(if full {
        CONNECTIONS
    } else {
        QUICK_CONNECTIONS
    });
    let rounds = positive("SCALE_ROUNDS")?.unwrap_or(if full { ROUNDS } else { 1 });
    let kinds: Vec<Kind> = match std::env::var("SCALE_SERVERS") {
        Ok(list) => list
            .split(',')
            .map(|name| {
                Kind::of(name).ok_or_else(|| format!("SCALE_SERVERS: no server named '{name}'"))
            })
            .collect::<Result<_, _>>()?,
        Err(_) => vec![Kind::Raw, Kind::Adapter],
    };
    let mut runs: Vec<(Kind, Measured)> = Vec::new();
    for round in 1..=rounds {
        // The first to go alternates, so that neither always follows the other.
        let mut order = kinds.clone();
        if round % 2 == 0 {
            order.reverse();
        }
        for kind in order {
            println!("round {round}: {}", kind.title());
            let measured = run_server_process(kind, connections)?;
            runs.push((kind, measured));
        }
    }
    print_summary(&kinds, &runs, rounds);
    Ok(())
}

/// Runs one server in a process of its own; passes its lines on and returns its figures.
fn run_server_process(kind: Kind, connections: usize) -> Result<Measured, String> {
    let exe = std::env::current_exe()
        .map_err(|error| format!("cannot find this program to run the server: {error}"))?;
    let output = Command::new(exe)
        .env(SERVER_ENV, kind.name())
        .env("SCALE_CONNECTIONS", connections.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("cannot run the {} server: {error}", kind.name()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut measured = None;
    for line in stdout.lines() {
        match line.strip_prefix(RESULT_PREFIX) {
            Some(figures) => measured = Measured::parse(figures),
            None => println!("{line}"),
        }
    }
    if !output.status.success() {
        return Err(format!(
            "the {} server's process ended with {}",
            kind.name(),
            output.status
        ));
    }
    measured.ok_or_else(|| format!("the {} server's process gave no figures", kind.name()))
}

fn median(mut samples: Vec<f64>) -> Option<f64> {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    match n {
        0 => None,
        n if n % 2 == 1 => Some(samples[n / 2]),
        n => Some((samples[n / 2 - 1] + samples[n / 2]) / 2.0),
    }
}

/// Each server's medians, and the ratios of the adapter's to the hand-written server's.
fn print_summary(kinds: &[Kind], runs: &[(Kind, Measured)], rounds: usize) {
    let of = |kind: Kind, figure: fn(&Measured) -> Option<f64>| {
        median(
            runs.iter()
                .filter(|(k, _)| *k == kind)
                .filter_map(|(_, m)| figure(m))
                .collect(),
        )
    };
    let connections = runs.first().map_or(0, |(_, m)| m.connections);
    println!(
        "scale: medians over {rounds} round(s), {connections} connections, each server in a \
         process of its own"
    );
    println!(
        "  {:<8} {:>14} {:>15} {:>12} {:>14} {:>12}",
        "server", "RSS/connection", "heap/connection", "close all", "clients closed", "connect all"
    );
    let show = |value: Option<f64>, unit: &str, digits: usize| {
        value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$} {unit}"))
    };
    for &kind in kinds {
        println!(
            "  {:<8} {:>14} {:>15} {:>12} {:>14} {:>12}",
            kind.name(),
            show(of(kind, Measured::rss_per_connection), "B", 0),
            show(of(kind, Measured::heap_per_connection), "B", 0),
            show(of(kind, Measured::close_all_ms), "ms", 1),
            show(of(kind, Measured::clients_closed_ms), "ms", 1),
            show(of(kind, Measured::connect_s), "s", 2),
        );
    }
    let ratio = |figure: fn(&Measured) -> Option<f64>| match (
        of(Kind::Adapter, figure),
        of(Kind::Raw, figure),
    ) {
        (Some(adapter), Some(raw)) if raw > 0.0 => format!("{:.2}", adapter / raw),
        _ => "n/a".to_owned(),
    };
    println!(
        "  the adapter's live heap against the hand-written server's: {} times",
        ratio(Measured::heap_per_connection)
    );
    println!(
        "scale ratio: memory adapter/raw={} close-all adapter/raw={}",
        ratio(Measured::rss_per_connection),
        ratio(Measured::close_all_ms)
    );
}

// ---- a server (a process of its own) ----------------------------------------------------------------

/// What one server's run measured.
#[derive(Debug, Default)]
struct Measured {
    connections: usize,
    connect_time: Duration,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    heap_growth: i64,
    /// The adapter's own figure (`ServeReport::drain_time`).
    drain_time: Option<Duration>,
    /// From the signal to `serve` returning: every connection closed, every task joined.
    close_all: Duration,
    clients_closed: Duration,
}

impl Measured {
    /// One line for the bench process to read.
    fn line(&self) -> String {
        let kib = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
        format!(
            "{RESULT_PREFIX}{} {} {} {} {} {} {} {}",
            self.connections,
            self.connect_time.as_micros(),
            kib(self.rss_before_kib),
            kib(self.rss_after_kib),
            self.heap_growth,
            self.drain_time
                .map_or_else(|| "-".to_owned(), |d| d.as_micros().to_string()),
            self.close_all.as_micros(),
            self.clients_closed.as_micros(),
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [n, connect, before, after, heap, drain, close_all, clients] = fields[..] else {
            return None;
        };
        let micros = |field: &str| field.parse().ok().map(Duration::from_micros);
        Some(Self {
            connections: n.parse().ok()?,
            connect_time: micros(connect)?,
            rss_before_kib: before.parse().ok(),
            rss_after_kib: after.parse().ok(),
            heap_growth: heap.parse().ok()?,
            drain_time: micros(drain),
            close_all: micros(close_all)?,
            clients_closed: micros(clients)?,
        })
    }

    fn rss_per_connection(&self) -> Option<f64> {
        let grown = self.rss_after_kib?.saturating_sub(self.rss_before_kib?);
        Some(grown as f64 * 1024.0 / self.connections as f64)
    }

    fn heap_per_connection(&self) -> Option<f64> {
        Some(self.heap_growth as f64 / self.connections as f64)
    }

    fn close_all_ms(&self) -> Option<f64> {
        Some(self.close_all.as_secs_f64() * 1e3)
    }

    fn clients_closed_ms(&self) -> Option<f64> {
        Some(self.clients_closed.as_secs_f64() * 1e3)
    }

    fn connect_s(&self) -> Option<f64> {
        Some(self.connect_time.as_secs_f64())
    }
}

fn server_process(kind: Kind) -> Result<(), String> {
    let wanted = positive("SCALE_CONNECTIONS")?.unwrap_or(QUICK_CONNECTIONS);
    let limit = raise_descriptor_limit()?;
    let fits = limit.saturating_sub(DESCRIPTOR_MARGIN);
    let connections = wanted.min(fits);
    if connections < wanted {
        println!(
            "scale: the descriptor limit is {limit} (hard), so {connections} connections, \
             not {wanted}"
        );
    }
    if connections == 0 {
        return Err(format!(
            "a descriptor limit of {limit} leaves room for no connection"
        ));
    }

    if std::env::var_os("SCALE_HEAP_SIZES").is_some() {
        BY_SIZE_ON.store(true, Ordering::SeqCst);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the tokio runtime: {error}"))?;
    let measured = match kind {
        Kind::Adapter => serve_and_drain(&runtime, connections)?,
        Kind::Raw => serve_raw(&runtime, connections)?,
    };
    print_result(kind, &measured);
    println!("{}", measured.line());
    Ok(())
}

/// The echo handler: echoes until the client's end of stream, then shuts the send side.
async fn echo(connection: &mut Connection, open: Arc<AtomicU64>) -> io::Result<()> {
    open.fetch_add(1, Ordering::SeqCst);
    let mut buffer = [0; HANDLER_BUFFER];
    loop {
        match connection.recv(&mut buffer).await? {
            0 => break,
            n => connection.send_all(&buffer[..n]).await?,
        }
    }
    connection.shutdown_send()
}

fn serve_and_drain(
    runtime: &tokio::runtime::Runtime,
    connections: usize,
) -> Result<Measured, String> {
    let config = ServerConfig::default()
        .with_drain_timeout(DRAIN_TIMEOUT)
        .with_backlog(BACKLOG)
        // All of them open at once: the cap is not what this measures.
        .with_max_connections(connections);
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let server = runtime
        .block_on(Server::bind(addr, config))
        .map_err(|error| format!("cannot start the server: {error}"))?;
    let addr = server.local_addr();
    let drain = server.drain_handle();
    let open = Arc::new(AtomicU64::new(0));

    let mut client = ClientProcess::start(addr, connections)?;

    // Before the first accept: the runtime, the listener, the client process started.
    let before = Started::now();
    let started = Instant::now();
    let handler_open = Arc::clone(&open);
    let serving = runtime.spawn(server.serve(
        move |connection| Box::pin(echo(connection, Arc::clone(&handler_open))),
        |_| (),
    ));

    let signal = drain.clone();
    let result = hold_then_signal(&mut client, &open, connections, started, move || {
        signal.drain();
    });
    if result.is_err() {
        // Whatever went wrong, end the server and the client process.
        drain.drain();
        client.kill();
    }
    let held = result?;
    before.print_by_size(&held, connections);

    let report = runtime
        .block_on(serving)
        .map_err(|error| format!("the server's task failed: {error}"))?
        .map_err(|error| format!("the server failed: {error}"))?;
    let close_all = held.signalled.elapsed();
    let count = connections as u64;
    if report.drain != Some(DrainOutcome::Drained)
        || report.aborted_by_drain != 0
        || report.graceful != count
        || report.accepted != count
        || report.accept_failures != 0
    {
        client.kill();
        return Err(format!(
            "the drain was not graceful for every connection: {report:?} (expected {count} \
             accepted, {count} graceful, 0 aborted, Drained)"
        ));
    }
    before.measured(
        &mut client,
        connections,
        &held,
        Some(report.drain_time),
        close_all,
    )
}

/// The hand-written twin of `echo`: the same buffer and echo; on the signal, or after the
/// client's end of stream, it shuts its send side and drops the socket.
async fn raw_echo(
    mut stream: TcpStream,
    mut signal: broadcast::Receiver<()>,
    open: Arc<AtomicU64>,
) -> io::Result<()> {
    open.fetch_add(1, Ordering::SeqCst);
    let mut buffer = [0; HANDLER_BUFFER];
    loop {
        let n = tokio::select! {
            biased;
            _ = signal.recv() => break,
            n = stream.read(&mut buffer) => n?,
        };
        if n == 0 {
            break;
        }
        stream.write_all(&buffer[..n]).await?;
    }
    stream.shutdown().await
}

/// The hand-written server: accepts until the signal, a task per connection; returns how many
/// it accepted and how many tasks ended without an error, once every task is joined.
async fn raw_serve(
    listener: TcpListener,
    signal: broadcast::Sender<()>,
    open: Arc<AtomicU64>,
) -> (u64, u64) {
    let mut stop = signal.subscribe();
    let mut tasks = JoinSet::new();
    let mut accepted = 0_u64;
    loop {
        while tasks.try_join_next().is_some() {}
        let (stream, _) = tokio::select! {
            biased;
            _ = stop.recv() => break,
            next = listener.accept() => match next {
                Ok(next) => next,
                Err(_) => continue,
            },
        };
        accepted += 1;
        tasks.spawn(raw_echo(stream, signal.subscribe(), Arc::clone(&open)));
    }
    drop(listener);
    let mut ended = 0_u64;
    while let Some(done) = tasks.join_next().await {
        if matches!(done, Ok(Ok(()))) {
            ended += 1;
        }
    }
    (accepted, ended)
}

fn serve_raw(runtime: &tokio::runtime::Runtime, connections: usize) -> Result<Measured, String> {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let listener = runtime
        .block_on(async {
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(BACKLOG as u32)
        })
        .map_err(|error| format!("cannot start the server: {error}"))?;
    let addr = listener
        .local_addr()
        .map_err(|error| format!("the server has no address: {error}"))?;
    let (signal, _) = broadcast::channel(1);
    let open = Arc::new(AtomicU64::new(0));

    let mut client = ClientProcess::start(addr, connections)?;

    let before = Started::now();
    let started = Instant::now();
    let serving = runtime.spawn(raw_serve(listener, signal.clone(), Arc::clone(&open)));

    let stop = signal.clone();
    let result = hold_then_signal(&mut client, &open, connections, started, move || {
        let _ = stop.send(());
    });
    if result.is_err() {
        let _ = signal.send(());
        client.kill();
    }
    let held = result?;
    before.print_by_size(&held, connections);

    let (accepted, ended) = runtime
        .block_on(serving)
        .map_err(|error| format!("the server's task failed: {error}"))?;
    let close_all = held.signalled.elapsed();
    let count = connections as u64;
    if accepted != count || ended != count {
        client.kill();
        return Err(format!(
            "the hand-written server accepted {accepted} and ended {ended} without an error, \
             not {count}"
        ));
    }
    before.measured(&mut client, connections, &held, None, close_all)
}

/// The memory before the first accept, which a run's figures grow from.
struct Started {
    rss_before_kib: Option<u64>,
    heap_before: i64,
    /// The live allocations by size (counted only with `SCALE_HEAP_SIZES`).
    sizes_before: Vec<i64>,
}

impl Started {
    /// The memory now: the runtime, the listener and the client process there, nothing accepted.
    fn now() -> Self {
        Self {
            rss_before_kib: resident_kib(),
            heap_before: LIVE_BYTES.load(Ordering::SeqCst),
            sizes_before: by_size(),
        }
    }

    /// With `SCALE_HEAP_SIZES`: what the held connections added, by allocation size.
    fn print_by_size(&self, held: &Held, connections: usize) {
        if BY_SIZE_ON.load(Ordering::Relaxed) {
            print_by_size(&self.sizes_before, &held.sizes_after, connections);
        }
    }

    /// The run's figures, once every client has seen its connection closed.
    fn measured(
        &self,
        client: &mut ClientProcess,
        connections: usize,
        held: &Held,
        drain_time: Option<Duration>,
        close_all: Duration,
    ) -> Result<Measured, String> {
        let clients_closed = match client.wait_closed(connections) {
            Ok(when) => when.saturating_duration_since(held.signalled),
            Err(message) => {
                client.kill();
                return Err(message);
            }
        };
        Ok(Measured {
            connections,
            connect_time: held.connect_time,
            rss_before_kib: self.rss_before_kib,
            rss_after_kib: held.rss_after_kib,
            heap_growth: held.heap_after - self.heap_before,
            drain_time,
            close_all,
            clients_closed,
        })
    }
}

/// What the hold measured, and when the signal was given.
struct Held {
    connect_time: Duration,
    rss_after_kib: Option<u64>,
    heap_after: i64,
    /// The live allocations by size then (counted only with `SCALE_HEAP_SIZES`).
    sizes_after: Vec<i64>,
    signalled: Instant,
}

/// Waits until every client holds an echoed connection and every handler runs, measures the
/// memory, then gives the signal and tells the clients to finish.
fn hold_then_signal(
    client: &mut ClientProcess,
    open: &AtomicU64,
    connections: usize,
    started: Instant,
    signal: impl FnOnce(),
) -> Result<Held, String> {
    client.wait_connected(connections)?;
    let count = connections as u64;
    while open.load(Ordering::SeqCst) < count {
        if started.elapsed() > SETUP_LIMIT {
            return Err(format!(
                "only {} of {count} connections reached the handler in {SETUP_LIMIT:?}",
                open.load(Ordering::SeqCst)
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let connect_time = started.elapsed();
    let rss_after_kib = resident_kib();
    let heap_after = LIVE_BYTES.load(Ordering::SeqCst);
    let sizes_after = by_size();

    let signalled = Instant::now();
    signal();
    client.finish()?;
    Ok(Held {
        connect_time,
        rss_after_kib,
        heap_after,
        sizes_after,
        signalled,
    })
}

fn print_result(kind: Kind, m: &Measured) {
    let n = m.connections;
    println!(
        "  {}, {n} connections over loopback, clients in a second process",
        kind.title()
    );
    println!(
        "  connected, each echoed, all held:  {:.3} s",
        m.connect_time.as_secs_f64()
    );
    match (m.rss_before_kib, m.rss_after_kib, m.rss_per_connection()) {
        (Some(before), Some(after), Some(each)) => println!(
            "  server resident memory:            {before} KiB before the first accept, \
             {after} KiB with {n} open: {each:.0} bytes per connection",
        ),
        _ => println!("  server resident memory:            unavailable (no /proc/self/status)"),
    }
    println!(
        "  server live heap:                  {} bytes more, {:.0} bytes per connection \
         (the handler's buffer: {HANDLER_BUFFER} bytes of it)",
        m.heap_growth,
        m.heap_growth as f64 / n as f64
    );
    if let Some(drain_time) = m.drain_time {
        println!(
            "  drain (ServeReport.drain_time):    {:.1} ms, from the drain request to the last \
             connection's close; Drained, {n} graceful, 0 aborted",
            drain_time.as_secs_f64() * 1e3
        );
    }
    println!(
        "  signal to serve returning:         {:.1} ms (wall clock; every task joined)",
        m.close_all.as_secs_f64() * 1e3
    );
    println!(
        "  signal to every client closed:     {:.1} ms (wall clock, when the client process said so)",
        m.clients_closed.as_secs_f64() * 1e3
    );
}

// ---- talking to the client process -------------------------------------------------------------

/// The client process: its standard input (the bench's orders) and its reports, line by line.
struct ClientProcess {
    child: Child,
    orders: Option<ChildStdin>,
    /// Each line with when it was read.
    reports: mpsc::Receiver<(Instant, String)>,
}

impl ClientProcess {
    fn start(addr: SocketAddr, connections: usize) -> Result<Self, String> {
        let exe = std::env::current_exe()
            .map_err(|error| format!("cannot find this program to run the clients: {error}"))?;
        let mut child = Command::new(exe)
            .env(CLIENT_ENV, addr.to_string())
            .env("SCALE_CONNECTIONS", connections.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot start the client process: {error}"))?;
        let orders = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or("the client process has no standard output")?;
        let (sender, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            orders,
            reports,
        })
    }

    /// The client process's next report, within `limit`, and when it came.
    fn report(&self, limit: Duration) -> Result<(Instant, String), String> {
        self.reports
            .recv_timeout(limit)
            .map_err(|_| format!("the client process said nothing in {limit:?} (or exited)"))
    }

    fn wait_connected(&self, connections: usize) -> Result<(), String> {
        let (_, line) = self.report(SETUP_LIMIT)?;
        if line == format!("connected {connections}") {
            Ok(())
        } else {
            Err(format!(
                "the client process reported '{line}', not 'connected {connections}'"
            ))
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        let orders = self
            .orders
            .as_mut()
            .ok_or("the client process's input is closed")?;
        orders
            .write_all(b"finish\n")
            .and_then(|()| orders.flush())
            .map_err(|error| format!("cannot tell the client process to finish: {error}"))
    }

    /// Waits for every client's graceful close; returns when the client process said so.
    fn wait_closed(&mut self, connections: usize) -> Result<Instant, String> {
        let (when, line) = self.report(DRAIN_TIMEOUT + Duration::from_secs(10))?;
        let status = self.child.wait();
        let mut words = line.split_whitespace();
        let closed = (words.next(), words.next(), words.next(), words.next());
        match closed {
            (Some("closed"), Some(count), Some("in_us"), Some(_))
                if count == connections.to_string() =>
            {
                match status {
                    Ok(status) if status.success() => {}
                    Ok(status) => return Err(format!("the client process ended with {status}")),
                    Err(error) => {
                        return Err(format!("cannot wait for the client process: {error}"));
                    }
                }
                Ok(when)
            }
            _ => Err(format!(
                "the client process reported '{line}', not every client closed gracefully"
            )),
        }
    }

    fn kill(&mut self) {
        drop(self.orders.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the clients (the second process) ----------------------------------------------------------

fn client_process(addr: &str) -> Result<(), String> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("client: a bad server address '{addr}'"))?;
    let connections: usize = std::env::var("SCALE_CONNECTIONS")
        .ok()
        .and_then(|count| count.parse().ok())
        .ok_or("client: SCALE_CONNECTIONS is missing")?;
    raise_descriptor_limit()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("client: cannot start the tokio runtime: {error}"))?;
    runtime.block_on(clients(addr, connections))
}

/// Opens `connections` connections, each echoed once; says `connected N`; waits for `finish` on
/// standard input; then each client shuts its send side, reads to the end of stream (nothing
/// more may come) and closes; says `closed N in_us T` with the time since `finish`.
async fn clients(addr: SocketAddr, connections: usize) -> Result<(), String> {
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let (finish_sender, finish) = watch::channel(false);
    let (ready_sender, mut ready) = tokio::sync::mpsc::channel::<Result<(), String>>(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..connections {
        let connecting = Arc::clone(&connecting);
        let mut finish = finish.clone();
        let ready = ready_sender.clone();
        tasks.spawn(async move {
            let permit = connecting.acquire_owned().await;
            let stream = connect_and_echo(addr).await;
            drop(permit);
            let mut stream = match stream {
                Ok(stream) => {
                    let _ = ready.send(Ok(())).await;
                    stream
                }
                Err(error) => {
                    let _ = ready.send(Err(format!("client {i}: {error}"))).await;
                    return Err(());
                }
            };
            drop(ready);
            if finish.wait_for(|&go| go).await.is_err() {
                return Err(());
            }
            stream.shutdown().await.map_err(drop)?;
            let mut rest = Vec::new();
            match stream.read_to_end(&mut rest).await {
                Ok(0) => Ok(()),
                _ => Err(()),
            }
        });
    }
    drop(ready_sender);
    for _ in 0..connections {
        match ready.recv().await {
            Some(Ok(())) => {}
            Some(Err(message)) => return Err(format!("client: {message}")),
            None => return Err("client: the clients ended early".to_owned()),
        }
    }
    say(&format!("connected {connections}"))?;

    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|error| format!("client: {error}"))?
    .map_err(|error| format!("client: reading the order: {error}"))?;
    if line.trim() != "finish" {
        return Err(format!("client: an unexpected order '{}'", line.trim()));
    }
    let finishing = Instant::now();
    let _ = finish_sender.send(true);
    let mut closed = 0_usize;
    while let Some(done) = tasks.join_next().await {
        if matches!(done, Ok(Ok(()))) {
            closed += 1;
        }
    }
    let micros = finishing.elapsed().as_micros();
    say(&format!("closed {closed} in_us {micros}"))
}

async fn connect_and_echo(addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(MESSAGE).await?;
    let mut echoed = [0; MESSAGE.len()];
    stream.read_exact(&mut echoed).await?;
    if &echoed != MESSAGE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a wrong echo"));
    }
    Ok(stream)
}

/// One line to the bench process.
fn say(line: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|error| format!("client: cannot report: {error}"))
}
