//! The soak (issue 13): thousands of connections of mixed behaviour against an adapter's server,
//! with deadlines cut to hundreds of milliseconds. Written once, run by `tests/soak.rs` (2,000
//! connections, through each adapter) and by `benches/soak.rs` (10,000).
//!
//! The server is the adapter's, serving an echo written with `recv` and `send` so that it can
//! say when each of its waits began; its observers record each accept and close with its time.
//! The clients are plain tokio sockets, not the crate's, on one thread of their own (a
//! single-threaded runtime), at most [`Settings::concurrency`] at a time; each binds a loopback
//! address of its own (127.1.x.y), so that the server's record of a connection, its observer's
//! and its client's meet on the peer's address. Each behaviour's deadline comes from the server's settings and
//! starts at the moment the rule says:
//!
//! | behaviour | the client | the server's close | its deadline |
//! |---|---|---|---|
//! | echo | sends 0 to 64 KiB, shuts its send side, reads the echo to the end, closes | `Graceful`, every byte echoed (C5, C13) | the linger total, from the close request (C8) |
//! | reset | sends 1 to 16 KiB, reads a byte of the echo, closes with linger zero | `PeerReset` (S3) | the linger idle, from the reset |
//! | stop reading | sends until the server gives up, reads nothing | the send times out: `Error(TimedOut)` (A2) | the idle timeout, from the start of the send that took nothing |
//! | silent | connects, then nothing until the server is done | `LingerTimeout` (S4) | the idle timeout, from the start of the `recv` (A2); then the linger idle, from the close request (C8) |
//! | never shut down | sends 1 to 64 KiB, reads the echo, never shuts: reads on to the server's end of stream, then closes | `Graceful`, every byte echoed; `LingerTimeout` if the client's close came after the linger idle deadline (C8) | as silent |
//! | vanish | sends 1 to 64 KiB, shuts its send side, closes at once without reading | the echo meets a closed socket, which resets: `Error(BrokenPipe)` (Linux's name for a reset after the peer's end of stream) or `PeerReset`; `Graceful` when the client's kernel had acknowledged everything before the close (S3) | the linger idle, from the close |
//!
//! Checked: every connection accepted and closed once (C1) with its behaviour's reason; not a
//! byte lost on the echo and never-shut-down connections (C5); each close within its deadline
//! plus 10 %; descriptors after = before (S7). A close later than that fails the check unless a
//! canary thread of the soak's, sleeping 1 ms at a time, was itself stalled for at least the
//! excess while the close was late: then the process was not given the CPU (the machine is
//! shared), and the close is counted apart and printed. Measured and printed: how late the
//! closes were (the maximum, the 99th percentile, per behaviour), the bytes echoed, the wall
//! time, and the process's CPU time over it, with the clients' thread's and the canary's apart.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use socket_lifecycle::blocking::ServerConfig;
use socket_lifecycle::{CloseReason, Config, IoErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Adapter, Connection, HANG, Handled, Seen, bytes_lost, pattern, serial};

/// How far past its deadline a close may come, as a share of the deadline (the 10 %).
pub const TOLERANCE: f64 = 0.10;

/// The seed of the sizes each client sends.
const SEED: u64 = 0x5eed_0013;

/// The soak's size and settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Connections in all, the behaviours taken in turn.
    pub connections: usize,
    /// Clients open at once.
    pub concurrency: usize,
    /// The server's idle timeout.
    pub idle_timeout: Duration,
    /// The server's linger deadlines: the whole close, and each wait for the peer in it.
    pub linger_total: Duration,
    pub linger_idle: Duration,
}

impl Settings {
    /// `connections` with the soak's settings: 100 clients at once, an idle timeout of 300 ms,
    /// a lingering close of at most 600 ms, 300 ms without a byte. With 250 at once the blocking
    /// server's threads, 2 cores and other builds made a close come over 10 % late in 3 runs of
    /// 4 of 2,000 connections, where 100 at once kept every one within the tolerance. The waits
    /// are over 256 ms on purpose: a socket timeout that long is rounded up by Linux's timer
    /// wheel by as much as an eighth, which the blocking adapter must not let through (see the
    /// README).
    pub fn new(connections: usize) -> Self {
        Self {
            connections,
            concurrency: 100,
            idle_timeout: Duration::from_millis(300),
            linger_total: Duration::from_millis(600),
            linger_idle: Duration::from_millis(300),
        }
    }

    /// [`new`](Self::new) with `connections` unless `SOAK_CONNECTIONS` says otherwise, and
    /// `SOAK_CONCURRENCY` clients at once if set.
    pub fn from_env(connections: usize) -> Self {
        let number = |name: &str| {
            std::env::var(name).ok().map(|n| {
                n.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| panic!("{name}={n}: not a count"))
            })
        };
        let mut settings = Self::new(number("SOAK_CONNECTIONS").unwrap_or(connections));
        if let Some(concurrency) = number("SOAK_CONCURRENCY") {
            settings.concurrency = concurrency;
        }
        settings
    }

    /// How long a silent client holds its connection: past every deadline of the server's.
    fn silent_hold(&self) -> Duration {
        self.idle_timeout + self.linger_total + Duration::from_millis(100)
    }
}

/// What a client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    Echo,
    Reset,
    StopReading,
    Silent,
    NeverShutDown,
    Vanish,
}

impl Behaviour {
    /// Every behaviour, in the order the connections take them.
    pub const ALL: [Self; 6] = [
        Self::Echo,
        Self::Reset,
        Self::StopReading,
        Self::Silent,
        Self::NeverShutDown,
        Self::Vanish,
    ];

    /// The server's close reasons it allows, and the rule that says so. A never-shut-down
    /// client's reason depends on when it closed (see [`never_shut_down_reasons`]).
    fn expected(self) -> (&'static [CloseReason], &'static str) {
        match self {
            Self::Echo => (&[CloseReason::Graceful], "C13"),
            Self::NeverShutDown => (&[CloseReason::Graceful, CloseReason::LingerTimeout], "C8"),
            Self::Reset => (&[CloseReason::PeerReset], "S3"),
            // The echo meets a closed socket, whose kernel resets: Linux reports a reset in
            // CLOSE_WAIT (the client's end of stream came first) as `EPIPE`. Or the client's
            // kernel acknowledged the echo and the end of stream before the client closed (the
            // reset then comes after the server's close), and that is graceful (C13).
            Self::Vanish => (
                &[
                    CloseReason::Error(IoErrorKind::BrokenPipe),
                    CloseReason::PeerReset,
                    CloseReason::Graceful,
                ],
                "S3",
            ),
            Self::StopReading => (&[CloseReason::Error(IoErrorKind::TimedOut)], "A2"),
            Self::Silent => (&[CloseReason::LingerTimeout], "S4"),
        }
    }

    /// Whether its client must get its whole echo.
    fn well_behaved(self) -> bool {
        matches!(self, Self::Echo | Self::NeverShutDown)
    }

    /// What the server's handler must have met, if anything: the call that failed, and how.
    fn handler_failure(self) -> Option<Option<(Call, io::ErrorKind)>> {
        match self {
            Self::Echo => Some(None),
            Self::StopReading => Some(Some((Call::Send, io::ErrorKind::TimedOut))),
            Self::Silent | Self::NeverShutDown => Some(Some((Call::Recv, io::ErrorKind::TimedOut))),
            // A reset is seen in whichever call comes next.
            Self::Reset | Self::Vanish => None,
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Echo => "echo",
            Self::Reset => "reset",
            Self::StopReading => "stop reading",
            Self::Silent => "silent",
            Self::NeverShutDown => "never shut down",
            Self::Vanish => "vanish",
        })
    }
}

/// Connection `index`'s behaviour and the bytes it sends (none for those that send none, or
/// send for ever).
fn plan(index: usize) -> (Behaviour, usize) {
    let behaviour = Behaviour::ALL[index % Behaviour::ALL.len()];
    // xorshift64 over the seed and the index: the same sizes every run.
    let mut x = SEED ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    let size = match behaviour {
        Behaviour::Echo => x % (64 * 1024 + 1),
        Behaviour::Reset => 1 + x % (16 * 1024),
        Behaviour::NeverShutDown | Behaviour::Vanish => 1 + x % (64 * 1024),
        Behaviour::StopReading | Behaviour::Silent => 0,
    };
    (behaviour, size as usize)
}

/// The loopback address client `index` connects from: its own, so that the server's records
/// of it are found by the peer's address even when ports come round again.
fn client_ip(index: usize) -> IpAddr {
    let [_, _, high, low] = u32::try_from(index)
        .expect("fewer clients than 2^16")
        .to_be_bytes();
    assert_eq!(index >> 16, 0, "the soak numbers at most 65,536 clients");
    IpAddr::V4(Ipv4Addr::new(127, 1, high, low))
}

// ---- the server's side ---------------------------------------------------------------------------

/// A call of the server's handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Recv,
    Send,
}

/// What the handler saw of one connection.
#[derive(Clone, Copy, Debug, Default)]
struct Handling {
    /// The call that ended it with an error, when that call began, and the error's kind.
    failed: Option<(Call, Instant, io::ErrorKind)>,
    /// Bytes sent back.
    echoed: u64,
}

type Handlings = Arc<Mutex<HashMap<SocketAddr, Handling>>>;

/// The seed's echo, with `recv` and `send` so that the start of the call that failed is known:
/// a `send` that takes bytes is progress, and the next one starts the idle timeout afresh.
fn handler<C: Connection>(connection: &mut C, handlings: Handlings) -> Handled<'_> {
    Box::pin(async move {
        let peer = connection.peer_addr()?;
        let mut handling = Handling::default();
        let result = echo_recording(connection, &mut handling).await;
        handlings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer, handling);
        result
    })
}

async fn echo_recording<C: Connection>(
    connection: &mut C,
    handling: &mut Handling,
) -> io::Result<()> {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let started = Instant::now();
        let n = match connection.recv(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) => {
                handling.failed = Some((Call::Recv, started, error.kind()));
                return Err(error);
            }
        };
        let mut sent = 0;
        while sent < n {
            let started = Instant::now();
            match connection.send(&buffer[sent..n]).await {
                Ok(k) => {
                    sent += k;
                    handling.echoed += k as u64;
                }
                Err(error) => {
                    handling.failed = Some((Call::Send, started, error.kind()));
                    return Err(error);
                }
            }
        }
    }
    connection.shutdown_send()
}

// ---- the clients ---------------------------------------------------------------------------------

/// What a client did.
#[derive(Debug)]
struct ClientRecord {
    /// Its address, the server's peer address.
    local: SocketAddr,
    /// Bytes sent.
    sent: u64,
    /// Bytes of the echo missing or wrong (only for those that read it all).
    lost: usize,
    /// When it reset or closed its socket, for those whose deadline starts there.
    gone_at: Option<Instant>,
}

async fn client(server: SocketAddr, index: usize, settings: Settings) -> io::Result<ClientRecord> {
    let (behaviour, size) = plan(index);
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(client_ip(index), 0))?;
    let mut stream = socket.connect(server).await?;
    let local = stream.local_addr()?;
    let data = pattern(size);
    let mut record = ClientRecord {
        local,
        sent: size as u64,
        lost: 0,
        gone_at: None,
    };
    match behaviour {
        Behaviour::Echo => {
            let (mut reader, mut writer) = stream.split();
            let write = async {
                writer.write_all(&data).await?;
                writer.shutdown().await
            };
            let mut got = Vec::new();
            let (wrote, read) = tokio::join!(write, reader.read_to_end(&mut got));
            wrote?;
            read?;
            record.lost = lost(&data, &got);
        }
        Behaviour::Reset => {
            stream.write_all(&data).await?;
            let mut byte = [0];
            stream.read_exact(&mut byte).await?;
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
            record.gone_at = Some(Instant::now());
        }
        Behaviour::StopReading => {
            // Until the server gives up on it: its close resets, with our bytes unread.
            let chunk = pattern(64 * 1024);
            record.sent = 0;
            while let Ok(n) = stream.write(&chunk).await {
                record.sent += n as u64;
            }
        }
        Behaviour::Silent => tokio::time::sleep(settings.silent_hold()).await,
        Behaviour::NeverShutDown => {
            stream.write_all(&data).await?;
            let mut got = vec![0; size];
            stream.read_exact(&mut got).await?;
            // Never shut: wait for the server's end of stream (its idle timeout), then close.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await?;
            record.gone_at = Some(Instant::now());
            got.extend_from_slice(&rest);
            record.lost = lost(&data, &got);
        }
        Behaviour::Vanish => {
            stream.write_all(&data).await?;
            stream.shutdown().await?;
            record.gone_at = Some(Instant::now());
        }
    }
    drop(stream);
    Ok(record)
}

/// A never-shut-down client closes once it reads the server's end of stream: its close is
/// graceful if the client's end of stream came within the linger idle deadline, and a linger
/// timeout if it came after (the client's thread, busy with the others, can be late). Within
/// 5 ms of the deadline either may be right.
fn never_shut_down_reasons(
    requested: Instant,
    gone: Instant,
    linger_idle: Duration,
) -> &'static [CloseReason] {
    const NEAR: Duration = Duration::from_millis(5);
    let deadline = requested + linger_idle;
    if gone + NEAR < deadline {
        &[CloseReason::Graceful]
    } else if gone > deadline + NEAR {
        &[CloseReason::LingerTimeout]
    } else {
        &[CloseReason::Graceful, CloseReason::LingerTimeout]
    }
}

/// Bytes of `expected` missing or wrong in `got`, and any extra.
fn lost(expected: &[u8], got: &[u8]) -> usize {
    bytes_lost(expected, got) + got.len().saturating_sub(expected.len())
}

/// Runs every client, `concurrency` at a time, on this thread: each one's record (or why it
/// failed), and this thread's CPU time.
fn run_clients(
    server: SocketAddr,
    settings: Settings,
) -> (Vec<io::Result<ClientRecord>>, Duration) {
    let runtime = client_runtime();
    let cpu_before = thread_cpu();
    let records = runtime.block_on(async {
        let permits = Arc::new(tokio::sync::Semaphore::new(settings.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..settings.connections {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            tasks.spawn(async move {
                let result = tokio::time::timeout(HANG, client(server, index, settings)).await;
                drop(permit);
                let result = result.unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client did not finish within {HANG:?}"),
                    ))
                });
                (index, result)
            });
        }
        let mut records: Vec<Option<io::Result<ClientRecord>>> =
            (0..settings.connections).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (index, result) = joined.expect("a client panicked");
            records[index] = Some(result);
        }
        records
            .into_iter()
            .map(|r| r.expect("every client reported"))
            .collect()
    });
    let cpu = thread_cpu().saturating_sub(cpu_before);
    drop(runtime);
    (records, cpu)
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("a tokio runtime for the clients")
}

// ---- CPU time ------------------------------------------------------------------------------------

/// The CPU time (user and system) in a `/proc/.../stat` file: its 14th and 15th fields, in
/// clock ticks of 10 ms (`USER_HZ`, 100 on Linux).
fn cpu_in(stat: &str) -> Duration {
    let stat = std::fs::read_to_string(stat).expect("/proc/.../stat is readable");
    // The command's name, the 2nd field, is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a name") + 1..]
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// This process's CPU time, its threads' gone ones included.
fn process_cpu() -> Duration {
    cpu_in("/proc/self/stat")
}

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    cpu_in("/proc/thread-self/stat")
}

// ---- the canary ------------------------------------------------------------------------------

/// A thread of the soak's own that sleeps 1 ms at a time and notes each time it woke more than
/// [`STALL`] late: the moments the process was not given the CPU (the machine is shared, and the
/// soak's own clients load it). A close later than its tolerance is the adapter's fault unless
/// the canary was stalled, over the time the close was late, for at least the excess.
struct Canary {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: thread::JoinHandle<(Vec<(Instant, Instant)>, Duration)>,
}

/// How late a 1 ms sleep may wake before the canary counts it a stall.
const STALL: Duration = Duration::from_millis(2);

impl Canary {
    fn start() -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let cpu_before = thread_cpu();
            let mut stalls = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let due = Instant::now() + Duration::from_millis(1);
                thread::sleep(Duration::from_millis(1));
                let woke = Instant::now();
                if woke > due + STALL {
                    stalls.push((due, woke));
                }
            }
            (stalls, thread_cpu().saturating_sub(cpu_before))
        });
        Self { stop, thread }
    }

    /// Every stall (from when the canary was due to when it woke), and the canary's CPU time.
    fn finish(self) -> (Stalls, Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (stalls, cpu) = self.thread.join().expect("the canary");
        (Stalls(stalls), cpu)
    }
}

/// The canary's stalls, in order.
#[derive(Debug, Default)]
pub struct Stalls(Vec<(Instant, Instant)>);

impl Stalls {
    /// How long the canary was stalled between `from` and `to`.
    fn within(&self, from: Instant, to: Instant) -> Duration {
        self.0
            .iter()
            .map(|&(start, end)| end.min(to).saturating_duration_since(start.max(from)))
            .sum()
    }

    /// The longest stall, and all of them together.
    pub fn longest_and_total(&self) -> (Duration, Duration) {
        let lengths = self.0.iter().map(|&(start, end)| end - start);
        (lengths.clone().max().unwrap_or_default(), lengths.sum())
    }
}

// ---- the run and its checks ----------------------------------------------------------------------

/// What a soak measured.
#[derive(Debug)]
pub struct Figures {
    pub adapter: &'static str,
    pub settings: Settings,
    pub wall: Duration,
    pub cpu: Duration,
    pub client_cpu: Duration,
    /// The canary's own CPU time, left out of the server's with the clients'.
    pub canary_cpu: Duration,
    pub stalls: Stalls,
    /// Closes later than their tolerance while the canary was stalled for the excess.
    pub excused: Vec<String>,
    pub echoed: u64,
    pub well_behaved_bytes: u64,
    pub lost: usize,
    pub descriptors: (usize, usize),
    /// Per behaviour: the count of each close reason.
    pub reasons: Vec<(Behaviour, Vec<(CloseReason, usize)>)>,
    /// Every deadline checked: how far past it the close came, in ms (negative: before it).
    pub lateness: Vec<(Behaviour, &'static str, f64, f64)>,
}

impl Figures {
    /// The `p`-th percentile of the lateness, in ms.
    pub fn late_percentile(&self, p: f64) -> f64 {
        let mut late: Vec<f64> = self.lateness.iter().map(|&(_, _, l, _)| l).collect();
        late.sort_by(f64::total_cmp);
        late.get(((late.len() as f64 - 1.0) * p / 100.0).round() as usize)
            .copied()
            .unwrap_or(0.0)
    }

    /// The lateness that came nearest its tolerance: (behaviour, rule, ms late, deadline ms).
    pub fn worst(&self) -> Option<(Behaviour, &'static str, f64, f64)> {
        self.lateness
            .iter()
            .copied()
            .max_by(|a, b| (a.2 / a.3).total_cmp(&(b.2 / b.3)))
    }

    /// Prints the figures, each line named after the adapter.
    pub fn print(&self) {
        let name = self.adapter;
        let s = self.settings;
        eprintln!(
            "soak ({name}): {} connections in {:.2} s, {} clients at once; idle timeout {} ms, linger {} ms in total, {} ms idle",
            s.connections,
            self.wall.as_secs_f64(),
            s.concurrency,
            s.idle_timeout.as_millis(),
            s.linger_total.as_millis(),
            s.linger_idle.as_millis()
        );
        for (behaviour, reasons) in &self.reasons {
            let reasons: Vec<String> = reasons
                .iter()
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect();
            eprintln!("soak ({name}): {behaviour}: {}", reasons.join(", "));
        }
        eprintln!(
            "soak ({name}): the server echoed {} B; the echo and never-shut-down clients sent {} B and lost {} B",
            self.echoed, self.well_behaved_bytes, self.lost
        );
        eprintln!(
            "soak ({name}): descriptors before {}, after {}",
            self.descriptors.0, self.descriptors.1
        );
        let mut behaviours: Vec<(Behaviour, &str)> = self
            .lateness
            .iter()
            .map(|&(b, rule, _, _)| (b, rule))
            .collect();
        behaviours.sort_unstable();
        behaviours.dedup();
        let mut per: Vec<String> = Vec::new();
        for (behaviour, rule) in behaviours {
            let mut late: Vec<f64> = self
                .lateness
                .iter()
                .filter(|&&(b, r, _, _)| b == behaviour && r == rule)
                .map(|&(_, _, l, _)| l)
                .collect();
            late.sort_by(f64::total_cmp);
            let deadline = self
                .lateness
                .iter()
                .find(|&&(b, r, _, _)| b == behaviour && r == rule)
                .map_or(0.0, |&(_, _, _, d)| d);
            let p99 = late[((late.len() - 1) as f64 * 0.99).round() as usize];
            let max = late[late.len() - 1];
            per.push(format!(
                "{behaviour} ({rule}, {deadline:.0} ms) {max:+.1}/{p99:+.1}"
            ));
        }
        eprintln!(
            "soak ({name}): past the deadline, over {} closes: max {:+.1} ms, p99 {:+.1} ms; per behaviour, max/p99 in ms: {}",
            self.lateness.len(),
            self.late_percentile(100.0),
            self.late_percentile(99.0),
            per.join(", ")
        );
        if let Some((behaviour, rule, late, deadline)) = self.worst() {
            eprintln!(
                "soak ({name}): nearest its tolerance: {behaviour} ({rule}) {late:+.1} ms past a {deadline:.0} ms deadline ({:+.1} %, allowed {:.0} %)",
                100.0 * late / deadline,
                100.0 * TOLERANCE
            );
        }
        let (longest, total) = self.stalls.longest_and_total();
        eprintln!(
            "soak ({name}): the process stalled (a 1 ms sleep woke over {} ms late) {} times, {:.0} ms in all, the longest {:.1} ms; {} closes later than their tolerance during a stall at least as long as the excess{}",
            STALL.as_millis(),
            self.stalls.0.len(),
            super::ms(total),
            super::ms(longest),
            self.excused.len(),
            self.excused
                .first()
                .map_or(String::new(), |first| format!(", the first: {first}"))
        );
        let wall = self.wall.as_secs_f64();
        let server = self
            .cpu
            .saturating_sub(self.client_cpu + self.canary_cpu)
            .as_secs_f64();
        eprintln!(
            "soak ({name}): CPU {:.2} s over {wall:.2} s ({:.2} of 2 cores): the server (every thread but the clients' and the canary's) {server:.2} s = {:.2} cores, the clients' thread {:.2} s, the canary {:.2} s",
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() / wall,
            server / wall,
            self.client_cpu.as_secs_f64(),
            self.canary_cpu.as_secs_f64()
        );
    }
}

/// Soaks `A`'s server with `settings`: runs every client, checks every rule above, prints the
/// figures, and fails naming the first rule broken.
pub fn run<A: Adapter>(settings: Settings) -> Figures {
    let _serial = serial();
    // The clients' runtime made once first, for what tokio keeps for the life of the process.
    drop(client_runtime());
    let before = A::baseline();
    let handlings = Handlings::default();
    let config = ServerConfig::default()
        .with_connection(
            Config::new()
                .with_linger(settings.linger_total, settings.linger_idle)
                .expect("valid settings"),
        )
        .with_idle_timeout(Some(settings.idle_timeout))
        .with_drain_timeout(Duration::from_secs(5));
    let canary = Canary::start();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let server = {
        let handlings = Arc::clone(&handlings);
        A::serve(config, move |connection| {
            handler(connection, Arc::clone(&handlings))
        })
    };
    let addr = server.addr;
    let (records, client_cpu) = thread::spawn(move || run_clients(addr, settings))
        .join()
        .expect("the clients' thread");
    // The silent clients held on past the server's deadlines; a close may still be under way.
    let limit = Instant::now() + HANG;
    while server.log.all_closes().len() < settings.connections && Instant::now() < limit {
        thread::sleep(Duration::from_millis(10));
    }
    let wall = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let (stalls, canary_cpu) = canary.finish();
    let report = server.finish("S7");
    let after = super::settled_fd_count(before);

    let mut violations: Vec<String> = Vec::new();
    let entries = server.log.entries();
    let mut ids: HashMap<SocketAddr, u64> = HashMap::new();
    let mut requested: HashMap<u64, Instant> = HashMap::new();
    let mut closes: HashMap<u64, Vec<(Instant, CloseReason)>> = HashMap::new();
    for &(id, at, seen) in &entries {
        match seen {
            Seen::Accepted(peer) => {
                ids.insert(peer, id);
            }
            Seen::CloseRequested => {
                requested.entry(id).or_insert(at);
            }
            Seen::Closed(reason) => closes.entry(id).or_default().push((at, reason)),
        }
    }
    let handlings = handlings
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut reasons: HashMap<Behaviour, HashMap<CloseReason, usize>> = HashMap::new();
    let mut lateness = Vec::new();
    let mut excused = Vec::new();
    let mut lost_total = 0;
    let mut well_behaved_bytes = 0;
    for (index, record) in records.iter().enumerate() {
        let (behaviour, _) = plan(index);
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                violations.push(format!(
                    "S7 violated: client {index} ({behaviour}) failed: {error}"
                ));
                continue;
            }
        };
        let Some(&id) = ids.get(&record.local) else {
            violations.push(format!(
                "S7 violated: client {index} ({behaviour}) from {} was never accepted",
                record.local
            ));
            continue;
        };
        let closed = closes.get(&id).map(Vec::as_slice).unwrap_or_default();
        let &[(closed_at, reason)] = closed else {
            violations.push(format!(
                "C1 violated: connection {id} ({behaviour}) closed {} times: {closed:?}",
                closed.len()
            ));
            continue;
        };
        *reasons
            .entry(behaviour)
            .or_default()
            .entry(reason)
            .or_default() += 1;
        let (allowed, rule) = behaviour.expected();
        let close_requested = requested.get(&id).copied();
        let allowed = match (behaviour, close_requested, record.gone_at) {
            (Behaviour::NeverShutDown, Some(requested), Some(gone)) => {
                never_shut_down_reasons(requested, gone, settings.linger_idle)
            }
            _ => allowed,
        };
        if !allowed.contains(&reason) {
            violations.push(format!(
                "{rule} violated: connection {id} ({behaviour}) closed {reason}, where {} was due",
                allowed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        if behaviour.well_behaved() {
            well_behaved_bytes += record.sent;
            lost_total += record.lost;
            if record.lost > 0 {
                violations.push(format!(
                    "C5 violated: connection {id} ({behaviour}) lost {} of its {} B",
                    record.lost, record.sent
                ));
            }
        }
        let handling = handlings.get(&record.local).copied().unwrap_or_default();
        if let Some(due) = behaviour.handler_failure() {
            let failed = handling.failed.map(|(call, _, kind)| (call, kind));
            if failed != due {
                violations.push(format!(
                    "{rule} violated: connection {id} ({behaviour}): the server's handler ended with {failed:?}, where {due:?} was due"
                ));
                continue;
            }
        }
        // The deadlines: (rule, when it started, how long, when it was met).
        let failed_call = handling.failed.map(|(_, at, _)| at);
        let mut deadlines = Vec::new();
        match behaviour {
            Behaviour::Echo => {
                deadlines.push((
                    "C8",
                    close_requested,
                    settings.linger_total,
                    Some(closed_at),
                ));
            }
            Behaviour::Silent | Behaviour::NeverShutDown => {
                deadlines.push(("A2", failed_call, settings.idle_timeout, close_requested));
                deadlines.push(("C8", close_requested, settings.linger_idle, Some(closed_at)));
            }
            Behaviour::StopReading => {
                deadlines.push(("A2", failed_call, settings.idle_timeout, Some(closed_at)));
            }
            Behaviour::Reset | Behaviour::Vanish => {
                deadlines.push(("S3", record.gone_at, settings.linger_idle, Some(closed_at)));
            }
        }
        for (rule, start, length, end) in deadlines {
            let (Some(start), Some(end)) = (start, end) else {
                let seen = |at: Option<Instant>| if at.is_some() { "seen" } else { "never seen" };
                violations.push(format!(
                    "{rule} violated: connection {id} ({behaviour}): its deadline's start {}, its end {}",
                    seen(start),
                    seen(end)
                ));
                continue;
            };
            let took = end.saturating_duration_since(start);
            let late = super::ms(took) - super::ms(length);
            lateness.push((behaviour, rule, late, super::ms(length)));
            let tolerance = length.mul_f64(TOLERANCE);
            if took > length + tolerance {
                let due = start + length;
                let stalled = stalls.within(due, end);
                let excess = took - length - tolerance;
                let message = format!(
                    "connection {id} ({behaviour}) closed {late:.1} ms past its {:.0} ms deadline, more than {:.0} % of it, while the process was stalled for {:.1} ms of that",
                    super::ms(length),
                    100.0 * TOLERANCE,
                    super::ms(stalled)
                );
                if stalled >= excess {
                    excused.push(message);
                } else {
                    violations.push(format!("{rule} violated: {message}"));
                }
            }
        }
    }
    if after != before {
        violations.push(format!(
            "S7 violated: {} descriptors leaked over {} connections (before {before}, after {after})",
            after as isize - before as isize,
            settings.connections
        ));
    }
    if report.accepted != settings.connections as u64 {
        violations.push(format!(
            "S7 violated: the server accepted {} of {} connections: {report:?}",
            report.accepted, settings.connections
        ));
    }
    let mut reasons: Vec<(Behaviour, Vec<(CloseReason, usize)>)> = reasons
        .into_iter()
        .map(|(behaviour, counts)| {
            let mut counts: Vec<_> = counts.into_iter().collect();
            counts.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
            (behaviour, counts)
        })
        .collect();
    reasons.sort_by_key(|&(behaviour, _)| behaviour);
    let figures = Figures {
        adapter: A::NAME,
        settings,
        wall,
        cpu,
        client_cpu,
        canary_cpu,
        stalls,
        excused,
        echoed: handlings.values().map(|h| h.echoed).sum(),
        well_behaved_bytes,
        lost: lost_total,
        descriptors: (before, after),
        reasons,
        lateness,
    };
    figures.print();
    if !violations.is_empty() {
        // How many each rule has, in the order they first came.
        let mut tally: Vec<(&str, usize)> = Vec::new();
        for violation in &violations {
            let rule = violation.split(' ').next().unwrap_or_default();
            match tally.iter_mut().find(|(r, _)| *r == rule) {
                Some((_, count)) => *count += 1,
                None => tally.push((rule, 1)),
            }
        }
        let tally: Vec<String> = tally.iter().map(|(r, n)| format!("{r} {n}")).collect();
        panic!(
            "{} ({} in all: {}){}",
            violations[0],
            violations.len(),
            tally.join(", "),
            violations[1..violations.len().min(4)]
                .iter()
                .map(|v| format!("; {v}"))
                .collect::<String>()
        );
    }
    figures
}
