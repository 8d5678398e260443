//! How the blocking adapter waits: in the system call itself, bounded by the socket's timeouts
//! (`SO_RCVTIMEO`, `SO_SNDTIMEO`), and woken from another thread by shutting the receive side
//! (a `recv`) or within a short slice (a `send`, which nothing short of a close wakes).

use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::{Arc, Weak};
use std::time::Duration;

use socket2::{SockRef, Socket};

use crate::adapter::{Received, Sent, Signal, SocketLike, Steps, Wake, sys};

/// A whole connection, or one half of a split one, of the blocking adapter.
pub(crate) trait BlockingSteps: Steps<Socket = Arc<Socket>, Waker = ReaderWaker> {}

impl<T: Steps<Socket = Arc<Socket>, Waker = ReaderWaker>> BlockingSteps for T {}

impl SocketLike for Arc<Socket> {
    fn socket_ref(&self) -> SockRef<'_> {
        SockRef::from(&**self)
    }
}

/// `recv` on `connection`: the byte count, or 0 once the peer's end of stream has come.
/// `read_timeout` is the socket's, as last set.
pub(crate) fn recv(
    connection: &mut impl BlockingSteps,
    buf: &mut [u8],
    read_timeout: &mut ReadTimeout,
) -> io::Result<usize> {
    if !connection.before_recv(buf.is_empty())? {
        return Ok(0);
    }
    let received = match connection.socket() {
        Some(socket) => recv_until_raised(
            socket,
            buf,
            connection.idle_timeout(),
            read_timeout,
            connection.signal(),
        ),
        None => Received::Raised,
    };
    connection.after_recv(received)
}

/// `send` on `connection`: as much of `buf` as the kernel takes now. `write_timeout` is the
/// socket's, as last set.
pub(crate) fn send(
    connection: &mut impl BlockingSteps,
    buf: &[u8],
    write_timeout: &mut WriteTimeout,
) -> io::Result<usize> {
    connection.before_send()?;
    let sent = match connection.socket() {
        Some(socket) => send_until_raised(
            socket,
            buf,
            connection.idle_timeout(),
            write_timeout,
            connection.signal(),
        ),
        None => Sent::Raised,
    };
    connection.after_send(sent)
}

/// All of `buf`, sent on `connection`.
pub(crate) fn send_all(
    connection: &mut impl BlockingSteps,
    mut buf: &[u8],
    write_timeout: &mut WriteTimeout,
) -> io::Result<()> {
    while !buf.is_empty() {
        let sent = send(connection, buf, write_timeout)?;
        buf = buf.get(sent..).unwrap_or_default();
    }
    Ok(())
}

/// Wakes a `recv` blocked on the connection's socket ([`wake_reader`]). It holds the socket
/// weakly: once the connection released it there is nothing to wake, and the handle can never
/// be the one that keeps a closed connection's descriptor alive.
#[derive(Debug)]
pub(crate) struct ReaderWaker(pub(crate) Weak<Socket>);

impl Wake for ReaderWaker {
    fn wake(&self) {
        if let Some(socket) = self.0.upgrade() {
            wake_reader(&socket);
        }
    }
}

/// Makes a `recv` blocked on `socket`, and every later one, return at once, from any thread,
/// without closing it: the descriptor stays valid until its owner closes it. Only the receive
/// side is shut, so the peer is sent nothing (no end of stream that would pass for a clean one).
fn wake_reader(socket: &Socket) {
    // Fails only when the connection is already down (ENOTCONN), and then nothing is blocked.
    let _ = socket.shutdown(Shutdown::Read);
}

/// What every connected socket of the blocking adapter gets before its first call: blocking mode
/// (a socket handed over may come non-blocking, and its `EAGAIN` would read as a timeout), and
/// no `SIGPIPE`.
pub(crate) fn prepare(socket: &Socket) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    sys::prepare_no_signal(socket)
}

/// The longest a blocked `send` waits before it looks at the signal again: how late an abort
/// (a drain's, at its deadline) can be for a send the peer takes nothing of, and how far past
/// the idle timeout the last byte the peer took can leave it.
#[cfg(not(windows))]
const SEND_SLICE: Duration = Duration::from_millis(50);

/// The write timeout (`SO_SNDTIMEO`) last set on a socket, as [`ReadTimeout`] is the read one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WriteTimeout(Option<Duration>);

/// One `send(2)` without `SIGPIPE`: as much of `buf` as the kernel takes, waiting for room at
/// most `idle` (`None`: for ever) if it takes nothing at once; returns soon after `signal` is
/// raised (an abort, or the other half's close).
///
/// The wait is cut into slices of at most [`SEND_SLICE`] (the socket's send timeout), the signal
/// checked between: no system call wakes a blocked `send` without closing the socket under it
/// (shutting the receive side does not). A slice ends early with what the kernel took, so a
/// peer that takes a little at a time is progress, and one that takes nothing is timed out
/// `idle` after the wait began, however a `send_all` is split.
///
/// Not on Windows, which has a version of its own, below.
#[cfg(not(windows))]
fn send_until_raised(
    socket: &Socket,
    buf: &[u8],
    idle: Option<Duration>,
    set: &mut WriteTimeout,
    signal: &Signal<ReaderWaker>,
) -> Sent {
    let started = std::time::Instant::now();
    loop {
        if signal.is_raised() {
            return Sent::Raised;
        }
        let left = idle.map(|idle| idle.saturating_sub(started.elapsed()));
        if left == Some(Duration::ZERO) {
            return Sent::TimedOut;
        }
        let slice = socket_timeout(left.map_or(SEND_SLICE, |left| left.min(SEND_SLICE)));
        if set.0 != Some(slice) {
            set.0 = None;
            if let Err(error) = socket.set_write_timeout(Some(slice)) {
                return Sent::Failed(error);
            }
            set.0 = Some(slice);
        }
        match sys::send(socket, buf) {
            Ok(n) => return Sent::Bytes(n),
            Err(error) if is_timeout(&error) => {}
            Err(error) => return Sent::Failed(error),
        }
    }
}

/// One `send(2)` without `SIGPIPE`, waiting for room at most `idle` (`None`: for ever).
///
/// On Windows a `send` that times out leaves the socket's state undefined (part of the buffer
/// may have gone, unreported), so the wait is not cut into slices: it is one call, bounded by
/// the idle timeout alone, and an abort is seen only once it returns.
#[cfg(windows)]
fn send_until_raised(
    socket: &Socket,
    buf: &[u8],
    idle: Option<Duration>,
    set: &mut WriteTimeout,
    signal: &Signal<ReaderWaker>,
) -> Sent {
    if signal.is_raised() {
        return Sent::Raised;
    }
    let wanted = idle.map(socket_timeout);
    if set.0 != wanted || wanted.is_none() {
        if let Err(error) = socket.set_write_timeout(wanted) {
            return Sent::Failed(error);
        }
        set.0 = wanted;
    }
    match sys::send(socket, buf) {
        Ok(n) => Sent::Bytes(n),
        Err(error) if is_timeout(&error) => Sent::TimedOut,
        Err(error) => Sent::Failed(error),
    }
}

/// The read timeout (`SO_RCVTIMEO`) last set on a socket, so that a `recv` with the same
/// timeout does not set it again: one `setsockopt` saved per call. The default knows nothing
/// (a socket comes with whatever it inherited, an accepted one its listener's), so the first
/// `recv` sets it. Only the socket's owner sets the option, so what it set stays set.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReadTimeout(Option<Option<Duration>>);

/// `recv(2)` into `buf`, waiting at most `timeout` (`None`: for ever). `set` is the read
/// timeout the socket has now, when known.
fn recv_once(
    socket: &Socket,
    buf: &mut [u8],
    timeout: Option<Duration>,
    set: &mut ReadTimeout,
) -> Received {
    if timeout == Some(Duration::ZERO) {
        return Received::TimedOut;
    }
    // A zero `SO_RCVTIMEO` means "no timeout": the check above keeps a deadline that has come
    // from turning into a wait for ever.
    let wanted = timeout.map(socket_timeout);
    if set.0 != Some(wanted) {
        set.0 = None;
        if let Err(error) = socket.set_read_timeout(wanted) {
            return Received::Failed(error);
        }
        set.0 = Some(wanted);
    }
    let mut reader = socket;
    match sys::retry_interrupted(|| reader.read(buf)) {
        Ok(0) => Received::EndOfStream,
        Ok(n) => Received::Bytes(n),
        Err(error) if is_timeout(&error) => Received::TimedOut,
        Err(error) => Received::Failed(error),
    }
}

/// A socket timeout (`SO_RCVTIMEO`, `SO_SNDTIMEO`) of at least `timeout`, never zero: Unix
/// counts them in microseconds and Winsock in whole milliseconds, socket2 truncates to the
/// unit, and a timeout that rounds down to zero means "no timeout", a wait for ever.
pub(crate) fn socket_timeout(timeout: Duration) -> Duration {
    #[cfg(windows)]
    let unit = Duration::from_millis(1);
    #[cfg(not(windows))]
    let unit = Duration::from_micros(1);
    timeout.max(unit)
}

/// One `recv` that also returns soon after `signal` is raised (an abort, or the other half's
/// close), for an [`AbortHandle`](super::AbortHandle) to end a wait on a silent peer.
///
/// On Unix, the signal's waker ([`ReaderWaker`]) shuts the receive side, which wakes a blocked
/// `recv`. Winsock's `shutdown` does not (neither `SD_RECEIVE` nor `SD_BOTH` completes a pending
/// `recv`; checked under Wine), and only `closesocket` would, which must not happen under the
/// owner's call. So on Windows the wait is cut into slices of at most `SIGNAL_POLL`, the signal
/// checked between.
pub(crate) fn recv_until_raised(
    socket: &Socket,
    buf: &mut [u8],
    timeout: Option<Duration>,
    set: &mut ReadTimeout,
    signal: &Signal<ReaderWaker>,
) -> Received {
    let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
    loop {
        // Raised before the call: the wake-up may have come before the socket had anything to
        // wake, so do not wait.
        if signal.is_raised() {
            return Received::Raised;
        }
        let left = match (timeout, deadline) {
            (Some(_), Some(deadline)) => {
                Some(deadline.saturating_duration_since(std::time::Instant::now()))
            }
            _ => None,
        };
        let slice = left.map_or(UNBOUNDED_SLICE, |left| Some(left.min(RECV_SLICE)));
        match recv_once(socket, buf, slice, set) {
            Received::TimedOut if left.is_none_or(|left| slice.is_some_and(|s| left > s)) => {}
            received => return received,
        }
    }
}

/// The longest single wait of a `recv` with a deadline. A socket timeout is kept by the
/// kernel's timer wheel, which rounds a long one up by as much as an eighth of it (on Linux at
/// 250 Hz, a 300 ms timeout woke up to 32 ms late); waits of at most 200 ms keep their time to
/// a few milliseconds, so an idle timeout of any length ends within it plus that. On Windows,
/// the wait also looks at the signal between slices (see above).
#[cfg(not(windows))]
const RECV_SLICE: Duration = Duration::from_millis(200);
#[cfg(windows)]
const RECV_SLICE: Duration = SIGNAL_POLL;

/// A `recv` without a deadline: one call on Unix, where the signal wakes it; slices on Windows,
/// where nothing does.
#[cfg(not(windows))]
const UNBOUNDED_SLICE: Option<Duration> = None;
#[cfg(windows)]
const UNBOUNDED_SLICE: Option<Duration> = Some(SIGNAL_POLL);

/// Sleeps for `pause`, or less once `signal` is raised (an abort), which it looks at every
/// [`PAUSE_SLICE`]: a close waiting for the peer's acknowledgement (C13).
pub(crate) fn pause_until_raised(pause: Duration, signal: &Signal<ReaderWaker>) {
    let started = std::time::Instant::now();
    loop {
        let left = pause.saturating_sub(started.elapsed());
        if left.is_zero() || signal.is_raised() {
            return;
        }
        std::thread::sleep(left.min(PAUSE_SLICE));
    }
}

/// How often a pause looks at the signal.
const PAUSE_SLICE: Duration = Duration::from_millis(50);

/// How long a `recv` on Windows waits before it looks at the signal again.
#[cfg(windows)]
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Whether `error` is a passing read or write timeout (`SO_RCVTIMEO`, `SO_SNDTIMEO`) rather
/// than the connection failing.
pub(crate) fn is_timeout(error: &io::Error) -> bool {
    // Unix reports an expired socket timeout as EAGAIN. Windows reports it as WSAETIMEDOUT,
    // which it also uses for a connection that timed out, so there both read as a timeout.
    let kind = error.kind();
    kind == io::ErrorKind::WouldBlock || (cfg!(windows) && kind == io::ErrorKind::TimedOut)
}
