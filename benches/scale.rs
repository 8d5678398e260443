//! The tokio adapter at scale: `cargo bench --features tokio --bench scale`.
//!
//! The bench process runs a tokio [`Server`] (two worker threads) with an echo handler: it echoes
//! until the client's end of stream, then shuts its send side, and the server closes the
//! connection gracefully. It re-runs its own binary as the client process, which opens 10,000
//! connections to it over loopback (at most 500 connecting at a time), sends 32 bytes on each,
//! reads the echo and holds the connection open.
//!
//! Once the client process has every echo back and the server's handlers count 10,000 open, the
//! bench reads the server's resident memory (`VmRSS`) and its live heap (a counting allocator);
//! the figures per connection are the growth since before the first accept, divided by the count.
//!
//! Then the drain, timed from the request ([`DrainHandle::drain`]) to [`Server::serve`]
//! returning. Right after the request the bench tells the client process to finish (a line on
//! its standard input): each client shuts its send side, reads to the server's end of stream and
//! closes. So the drain time covers: the message to the client process; each client's end of
//! stream; each handler seeing it, shutting its send side, and the server's close seeing the
//! client's end of stream and releasing the socket; and `serve` joining the 10,000 tasks. The
//! clients' last step (reading the server's end of stream, closing) overlaps it and is timed
//! apart, until the client process reports all of them closed. The drain must end `Drained`,
//! with 10,000 graceful closes and none aborted; otherwise the bench fails.
//!
//! Both processes raise their descriptor limit (`RLIMIT_NOFILE`) to the hard limit; with a hard
//! limit too low for 10,000 (plus a margin), the count is lowered to what fits, and said.
//! `SCALE_CONNECTIONS=N` sets the count. Run other than by `cargo bench` (without `--bench`), it
//! holds 200 connections, as a quick check.

// Raising the descriptor limit (`setrlimit`) is a libc call, and counting the live heap needs a
// global allocator, an unsafe trait: it only counts and hands everything to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket_lifecycle::DrainOutcome;
use socket_lifecycle::tokio::{Connection, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

/// The connections the issue asks for.
const CONNECTIONS: usize = 10_000;
/// Held by a quick check (run without `--bench`).
const QUICK_CONNECTIONS: usize = 200;
/// Descriptors each process keeps beyond its connections (runtime, pipes, standard streams).
const DESCRIPTOR_MARGIN: usize = 64;
/// Set in the client process's environment: the server's address.
const CLIENT_ENV: &str = "SOCKET_LIFECYCLE_SCALE_CLIENT";
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

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(as_i64(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(as_i64(layout.size()), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(as_i64(new_size) - as_i64(layout.size()), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(as_i64(layout.size()), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- the process ---------------------------------------------------------------------------------

fn main() -> ExitCode {
    let result = match std::env::var(CLIENT_ENV) {
        Ok(addr) => client_process(&addr),
        Err(_) => server_process(),
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

// ---- the server (the bench process) ------------------------------------------------------------

/// What the bench measured.
struct Measured {
    connections: usize,
    connect_time: Duration,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    heap_growth: i64,
    drain_time: Duration,
    serve_returned: Duration,
    clients_closed: Duration,
}

fn server_process() -> Result<(), String> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let wanted = match std::env::var("SCALE_CONNECTIONS") {
        Ok(count) => count
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("SCALE_CONNECTIONS must be a positive count, not '{count}'"))?,
        Err(_) if full => CONNECTIONS,
        Err(_) => QUICK_CONNECTIONS,
    };
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

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the tokio runtime: {error}"))?;
    let measured = serve_and_drain(&runtime, connections)?;
    print_result(&measured);
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
        // The kernel caps it at `net.core.somaxconn`.
        .with_backlog(4096)
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
    let rss_before_kib = resident_kib();
    let heap_before = LIVE_BYTES.load(Ordering::SeqCst);
    let started = Instant::now();
    let handler_open = Arc::clone(&open);
    let serving = runtime.spawn(server.serve(
        move |connection| Box::pin(echo(connection, Arc::clone(&handler_open))),
        |_| (),
    ));

    let result = hold_then_drain(&mut client, &open, connections, started, drain.clone());
    if result.is_err() {
        // Whatever went wrong, end the server and the client process.
        drain.drain();
        client.kill();
    }
    let (connect_time, rss_after_kib, heap_after, drain_started) = result?;

    let report = runtime
        .block_on(serving)
        .map_err(|error| format!("the server's task failed: {error}"))?
        .map_err(|error| format!("the server failed: {error}"))?;
    let serve_returned = drain_started.elapsed();
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
    let clients_closed = match client.wait_closed(connections) {
        Ok(when) => when.saturating_duration_since(drain_started),
        Err(message) => {
            client.kill();
            return Err(message);
        }
    };
    Ok(Measured {
        connections,
        connect_time,
        rss_before_kib,
        rss_after_kib,
        heap_growth: heap_after - heap_before,
        drain_time: report.drain_time,
        serve_returned,
        clients_closed,
    })
}

/// Waits until every client holds an echoed connection and every handler runs, measures the
/// memory, then starts the drain and tells the clients to finish. Returns the time to connect,
/// the resident memory (KiB) and live heap then, and when the drain was requested.
fn hold_then_drain(
    client: &mut ClientProcess,
    open: &AtomicU64,
    connections: usize,
    started: Instant,
    drain: socket_lifecycle::tokio::DrainHandle,
) -> Result<(Duration, Option<u64>, i64, Instant), String> {
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

    let drain_started = Instant::now();
    drain.drain();
    client.finish()?;
    Ok((connect_time, rss_after_kib, heap_after, drain_started))
}

fn print_result(m: &Measured) {
    let n = m.connections;
    let per_connection = |kib: u64| kib as f64 * 1024.0 / n as f64;
    println!(
        "scale: the tokio adapter, {n} connections over loopback, clients in a second process"
    );
    println!(
        "  connected, each echoed, all held:  {:.3} s",
        m.connect_time.as_secs_f64()
    );
    match (m.rss_before_kib, m.rss_after_kib) {
        (Some(before), Some(after)) => {
            let grown = after.saturating_sub(before);
            println!(
                "  server resident memory:            {before} KiB before the first accept, \
                 {after} KiB with {n} open: {grown} KiB more, {:.0} bytes ({:.2} KiB) per connection",
                per_connection(grown),
                per_connection(grown) / 1024.0
            );
        }
        _ => println!("  server resident memory:            unavailable (no /proc/self/status)"),
    }
    println!(
        "  server live heap:                  {} bytes more, {:.0} bytes per connection \
         (the handler's buffer: {HANDLER_BUFFER} bytes of it)",
        m.heap_growth,
        m.heap_growth as f64 / n as f64
    );
    println!(
        "  drain (ServeReport.drain_time):    {:.1} ms, from the drain request to the last \
         connection's close; Drained, {n} graceful, 0 aborted",
        m.drain_time.as_secs_f64() * 1e3
    );
    println!(
        "  drain request to serve returning:  {:.1} ms (wall clock)",
        m.serve_returned.as_secs_f64() * 1e3
    );
    println!(
        "  drain request to every client closed: {:.1} ms (wall clock, when the client process said so)",
        m.clients_closed.as_secs_f64() * 1e3
    );
    let rss = match (m.rss_before_kib, m.rss_after_kib) {
        (Some(before), Some(after)) => {
            format!(
                "{:.1} KiB",
                per_connection(after.saturating_sub(before)) / 1024.0
            )
        }
        _ => "unavailable".to_owned(),
    };
    println!(
        "scale: {n} connections, drained in {:.0} ms, server RSS {rss} per connection",
        m.drain_time.as_secs_f64() * 1e3
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
