//! What the real-socket tests share: the adapter under test behind one interface ([`Adapter`]),
//! so that each scenario is written once and runs on both adapters ([`for_each_adapter!`]); a
//! server serving on a thread of its own, an observer that records accepts and closes with their
//! times, descriptor counts, and test data.

#![allow(dead_code, unused_imports, unused_macros)] // each test file uses a part of it

mod adapter;
mod blocking_adapter;
#[cfg(feature = "tokio")]
pub mod http;
pub mod soak;
#[cfg(feature = "tokio")]
mod tokio_adapter;

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use socket_lifecycle::blocking::Event;
use socket_lifecycle::{CloseReason, InputKind};

pub use adapter::{
    AbortHandle, Adapter, Connection, Handled, Receiving, Running, Sending, Task, echo,
    echo_handler, open_process_wide, recv_all,
};
pub use blocking_adapter::Blocking;
#[cfg(feature = "tokio")]
pub use tokio_adapter::Tokio;

/// Instantiates each named test, a function generic over the [`Adapter`], once per adapter:
/// `blocking::name` always, `tokio::name` with the `tokio` feature. Attributes written before a
/// name (`#[cfg(unix)]`, `#[cfg_attr(windows, ignore = "...")]`) go to both. After a `;`, the
/// names of tests that only the blocking adapter has (plain functions) join `blocking::`, and
/// after `tokio only:` those only the tokio adapter has (plain functions, in a `#[cfg(feature =
/// "tokio")]` of their own) join `tokio::`.
macro_rules! for_each_adapter {
    (
        $( $(#[$attribute:meta])* $name:ident ),* $(,)?
        $( ; blocking only: $( $(#[$blocking_attribute:meta])* $blocking_name:ident ),* $(,)? )?
        $( ; tokio only: $( $(#[$tokio_attribute:meta])* $tokio_name:ident ),* $(,)? )?
    ) => {
        /// The tests through the blocking adapter.
        mod blocking {
            $(
                #[test]
                $(#[$attribute])*
                fn $name() -> impl std::process::Termination {
                    super::$name::<crate::support::Blocking>()
                }
            )*
            $($(
                #[test]
                $(#[$blocking_attribute])*
                fn $blocking_name() -> impl std::process::Termination {
                    super::$blocking_name()
                }
            )*)?
        }

        /// The same tests through the tokio adapter.
        #[cfg(feature = "tokio")]
        mod tokio {
            $(
                #[test]
                $(#[$attribute])*
                fn $name() -> impl std::process::Termination {
                    super::$name::<crate::support::Tokio>()
                }
            )*
            $($(
                #[test]
                $(#[$tokio_attribute])*
                fn $tokio_name() -> impl std::process::Termination {
                    super::$tokio_name()
                }
            )*)?
        }
    };
}
pub(crate) use for_each_adapter;

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

/// This process's open descriptors once they are back to `before`, or after a grace of 2 s: a
/// released socket is closed by the time its owner returns, but a thread (or a runtime's worker)
/// may still be unwinding after it reported.
pub fn settled_fd_count(before: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut after = fd_count();
    while after != before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        after = fd_count();
    }
    after
}

/// Checks that this process has as many descriptors open as `before`, named after `rule`.
pub fn assert_no_leak(rule: &str, before: usize) {
    if cfg!(windows) && before == 0 {
        // Wine's GetProcessHandleCount answers 0: there is nothing to compare. Said, not hidden.
        eprintln!("{rule}: descriptors not counted: this Windows reports no handle count");
        return;
    }
    let after = settled_fd_count(before);
    eprintln!(
        "{rule}: descriptors before {before}, after {after}, leaked {}",
        after as isize - before as isize
    );
    assert_eq!(
        after,
        before,
        "{rule} violated: {} descriptors leaked",
        after as isize - before as isize
    );
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
    /// A server accepted it from this peer (recorded as its observer is made, at the accept).
    Accepted(SocketAddr),
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

    /// [`observer`](Self::observer) for a server's connection `id` from `peer`, recording its
    /// accept first.
    pub fn accepted(&self, id: u64, peer: SocketAddr) -> impl FnMut(&Event<'_>) + Send + use<> {
        self.lock().push((id, Instant::now(), Seen::Accepted(peer)));
        self.observer(id)
    }

    /// Every entry: the connection's id, when, and what.
    pub fn entries(&self) -> Vec<(u64, Instant, Seen)> {
        self.lock().clone()
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

/// How many bytes of `expected` are missing or wrong in `got`.
pub fn bytes_lost(expected: &[u8], got: &[u8]) -> usize {
    let same = expected.iter().zip(got).take_while(|(a, b)| a == b).count();
    expected.len() - same
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
