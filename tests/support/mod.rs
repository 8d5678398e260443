//! What the real-socket scenario tests share: a server running on a thread, an observer that
//! records closes with their times, descriptor counts, and test data.

#![allow(dead_code)] // each test file uses a part of it

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use socket_lifecycle::blocking::{
    Connection, DrainHandle, Event, Peer, ServeReport, Server, ServerConfig,
};
use socket_lifecycle::{CloseReason, InputKind};

/// How long any wait of these tests may take before it counts as a hang.
pub const HANG: Duration = Duration::from_secs(20);

/// Open descriptors of this process (entries of `/proc/self/fd`; the directory's own descriptor
/// is counted every time alike).
#[cfg(not(windows))]
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .count()
}

/// Open handles of this process (`GetProcessHandleCount`): on Windows a socket is a handle, and
/// there is no descriptor table to list.
#[cfg(windows)]
#[allow(unsafe_code)] // the one Win32 call the standard library does not wrap
pub fn fd_count() -> usize {
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetCurrentProcess() -> *mut std::ffi::c_void;
        fn GetProcessHandleCount(process: *mut std::ffi::c_void, count: *mut u32) -> i32;
    }
    let mut count = 0_u32;
    // SAFETY: the pseudo-handle of this process, and a valid pointer to a u32 to fill.
    let ok = unsafe { GetProcessHandleCount(GetCurrentProcess(), &mut count) };
    assert_ne!(ok, 0, "GetProcessHandleCount failed");
    count as usize
}

/// Tests of one file that count descriptors run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `len` bytes of a pattern that does not repeat at any power-of-two period.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// What an observer saw, for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The application asked for a graceful close (the transition on `Close`).
    CloseRequested,
    /// The socket was released, for this reason.
    Closed(CloseReason),
}

/// Every event of interest of every connection, with its time.
#[derive(Clone, Debug, Default)]
pub struct Log(Arc<Mutex<Vec<(u64, Instant, Seen)>>>);

impl Log {
    /// An observer that records into this log under `id`.
    pub fn observer(&self, id: u64) -> impl FnMut(&Event<'_>) + Send + use<> {
        let log = self.clone();
        move |event: &Event<'_>| {
            let seen = match event {
                Event::Transition {
                    input: InputKind::Close,
                    ..
                } => Seen::CloseRequested,
                Event::Closed { reason, .. } => Seen::Closed(*reason),
                _ => return,
            };
            log.lock().push((id, Instant::now(), seen));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Instant, Seen)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reasons connection `id` was closed with (exactly one if all went well).
    pub fn closes(&self, id: u64) -> Vec<CloseReason> {
        self.lock()
            .iter()
            .filter_map(|&(i, _, seen)| match seen {
                Seen::Closed(reason) if i == id => Some(reason),
                _ => None,
            })
            .collect()
    }

    /// Every entry, with its time since `origin`, for failure messages.
    pub fn dump(&self, origin: Instant) -> String {
        self.lock()
            .iter()
            .map(|&(i, at, seen)| {
                format!(
                    "{i}: {seen:?} at {:.0} ms",
                    ms(at.saturating_duration_since(origin))
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Every close of every connection.
    pub fn all_closes(&self) -> Vec<(u64, CloseReason)> {
        self.lock()
            .iter()
            .filter_map(|&(i, _, seen)| match seen {
                Seen::Closed(reason) => Some((i, reason)),
                _ => None,
            })
            .collect()
    }

    /// When connection `id` first saw `what`.
    pub fn first(&self, id: u64, what: fn(Seen) -> bool) -> Option<Instant> {
        self.lock()
            .iter()
            .find(|&&(i, _, seen)| i == id && what(seen))
            .map(|&(_, at, _)| at)
    }
}

/// A server serving on a thread of its own.
pub struct Running {
    pub addr: SocketAddr,
    pub drain: DrainHandle,
    pub log: Log,
    done: mpsc::Receiver<io::Result<ServeReport>>,
}

impl Running {
    /// Binds 127.0.0.1 and serves with `handler`; every connection's observer records in the log.
    pub fn start(
        config: ServerConfig,
        handler: impl Fn(&mut Connection) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        let server = Server::bind("127.0.0.1:0".parse().expect("an address"), config)
            .expect("binding 127.0.0.1:0");
        let addr = server.local_addr();
        let drain = server.drain_handle();
        let log = Log::default();
        let observers = log.clone();
        let (sender, done) = mpsc::channel();
        std::thread::spawn(move || {
            let report = server.serve(handler, move |peer: Peer| observers.observer(peer.id));
            let _ = sender.send(report);
        });
        Self {
            addr,
            drain,
            log,
            done,
        }
    }

    /// Waits for `serve` to return, at most `limit`, without starting a drain.
    pub fn wait(&self, limit: Duration, rule: &str) -> ServeReport {
        let report = self
            .done
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("{rule} violated: serve did not return within {limit:?}"));
        report.unwrap_or_else(|e| panic!("{rule} violated: serve failed: {e}"))
    }

    /// Drains, and waits for `serve` to return.
    pub fn finish(&self, rule: &str) -> ServeReport {
        self.drain.drain();
        self.wait(HANG, rule)
    }
}

/// The seed's server: echo until the peer's end of stream, then shut the send side.
pub fn echo(connection: &mut Connection) -> io::Result<()> {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match connection.recv(&mut buffer)? {
            0 => break,
            n => connection.send_all(&buffer[..n])?,
        }
    }
    connection.shutdown_send()
}

/// Reads until end of stream or an error: what came, and the error if one ended it.
pub fn read_all(reader: &mut impl Read) -> (Vec<u8>, Option<io::Error>) {
    let mut data = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return (data, None),
            Ok(n) => data.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (data, Some(e)),
        }
    }
}

/// Reads from an adapter connection until its end of stream or an error.
pub fn recv_all(connection: &mut Connection) -> (Vec<u8>, Option<io::Error>) {
    let mut data = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match connection.recv(&mut buffer) {
            Ok(0) => return (data, None),
            Ok(n) => data.extend_from_slice(&buffer[..n]),
            Err(e) => return (data, Some(e)),
        }
    }
}

/// How many bytes of `expected` are missing or wrong in `got`.
pub fn bytes_lost(expected: &[u8], got: &[u8]) -> usize {
    let same = expected.iter().zip(got).take_while(|(a, b)| a == b).count();
    expected.len() - same
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
