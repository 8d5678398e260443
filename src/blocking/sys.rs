//! The system calls the blocking adapter makes, each in the one form it is made in: `EINTR`
//! retried where a retry is the same call, `SIGPIPE` never raised, and timeouts told apart from
//! errors.

use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::atomic::AtomicBool;
#[cfg(windows)]
use std::sync::atomic::Ordering;
use std::time::Duration;

use socket2::Socket;

/// What a bounded `recv` came back with.
#[derive(Debug)]
pub(crate) enum Received {
    Bytes(usize),
    EndOfStream,
    /// The read timeout passed with nothing to read.
    TimedOut,
}

/// `send(2)` of as much of `buf` as the kernel takes, without `SIGPIPE`: a write to a connection
/// the peer has reset is the error `EPIPE`, never a signal that kills the process, whatever the
/// process's `SIGPIPE` disposition is.
pub(crate) fn send(socket: &Socket, buf: &[u8]) -> io::Result<usize> {
    retry_interrupted(|| socket.send_with_flags(buf, NO_SIGNAL))
}

/// The read timeout (`SO_RCVTIMEO`) last set on a socket, so that a `recv` with the same
/// timeout does not set it again: one `setsockopt` saved per call. The default knows nothing
/// (a socket comes with whatever it inherited, an accepted one its listener's), so the first
/// `recv` sets it. Only the socket's owner sets the option, so what it set stays set.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReadTimeout(Option<Option<Duration>>);

/// `recv(2)` into `buf`, waiting at most `timeout` (`None`: for ever). `set` is the read
/// timeout the socket has now, when known.
pub(crate) fn recv(
    socket: &Socket,
    buf: &mut [u8],
    timeout: Option<Duration>,
    set: &mut ReadTimeout,
) -> io::Result<Received> {
    if timeout == Some(Duration::ZERO) {
        return Ok(Received::TimedOut);
    }
    // A zero `SO_RCVTIMEO` means "no timeout": the check above keeps a deadline that has come
    // from turning into a wait for ever.
    let wanted = timeout.map(socket_timeout);
    if set.0 != Some(wanted) {
        set.0 = None;
        socket.set_read_timeout(wanted)?;
        set.0 = Some(wanted);
    }
    let mut reader = socket;
    match retry_interrupted(|| reader.read(buf)) {
        Ok(0) => Ok(Received::EndOfStream),
        Ok(n) => Ok(Received::Bytes(n)),
        Err(error) if is_read_timeout(&error) => Ok(Received::TimedOut),
        Err(error) => Err(error),
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

/// [`recv`], that also returns (as `TimedOut`) soon after `abort` is raised, for an
/// [`AbortHandle`](super::AbortHandle) to end a wait on a silent peer.
///
/// On Unix, the handle's `shutdown(Read)` ([`wake_reader`]) wakes a blocked `recv`. Winsock's
/// `shutdown` does not (neither `SD_RECEIVE` nor `SD_BOTH` completes a pending `recv`; checked
/// under Wine), and only `closesocket` would, which the handle must not do under the owner's call.
/// So on Windows the wait is cut into slices of at most [`ABORT_POLL`], the flag checked between.
pub(crate) fn recv_abortable(
    socket: &Socket,
    buf: &mut [u8],
    timeout: Option<Duration>,
    set: &mut ReadTimeout,
    abort: &AtomicBool,
) -> io::Result<Received> {
    #[cfg(windows)]
    {
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        loop {
            if abort.load(Ordering::SeqCst) {
                return Ok(Received::TimedOut);
            }
            let left = match (timeout, deadline) {
                (Some(_), Some(deadline)) => {
                    Some(deadline.saturating_duration_since(std::time::Instant::now()))
                }
                _ => None,
            };
            let slice = left.map_or(ABORT_POLL, |left| left.min(ABORT_POLL));
            match recv(socket, buf, Some(slice), set)? {
                Received::TimedOut if left.is_none_or(|left| left > slice) => {}
                received => return Ok(received),
            }
        }
    }
    #[cfg(not(windows))]
    {
        let _ = abort;
        recv(socket, buf, timeout, set)
    }
}

/// How long a `recv` on Windows waits before it looks at the abort flag again.
#[cfg(windows)]
const ABORT_POLL: Duration = Duration::from_millis(50);

/// Whether `error` is a passing read or write timeout (`SO_RCVTIMEO`, `SO_SNDTIMEO`) rather
/// than the connection failing.
pub(crate) fn is_read_timeout(error: &io::Error) -> bool {
    // Unix reports an expired socket timeout as EAGAIN. Windows reports it as WSAETIMEDOUT,
    // which it also uses for a connection that timed out, so there both read as a timeout.
    let kind = error.kind();
    kind == io::ErrorKind::WouldBlock || (cfg!(windows) && kind == io::ErrorKind::TimedOut)
}

/// `shutdown(2)` of our send side. `ENOTCONN` means the peer already reset the connection: the
/// error its reset left (`SO_ERROR`: `ECONNRESET`, or `EPIPE` after its end of stream) is the
/// cause, and is returned instead when there is one.
pub(crate) fn shutdown_write(socket: &Socket) -> io::Result<()> {
    socket
        .shutdown(Shutdown::Write)
        .map_err(|error| match socket.take_error() {
            Ok(Some(cause)) => cause,
            _ => error,
        })
}

/// Makes the coming close a reset (`SO_LINGER` on with a zero timeout).
pub(crate) fn set_linger_zero(socket: &Socket) -> io::Result<()> {
    socket.set_linger(Some(Duration::ZERO))
}

/// Makes a `recv` blocked on `socket`, and every later one, return at once, from any thread,
/// without closing it: the descriptor stays valid until its owner closes it. Only the receive
/// side is shut, so the peer is sent nothing (no end of stream that would pass for a clean one).
pub(crate) fn wake_reader(socket: &Socket) {
    // Fails only when the connection is already down (ENOTCONN), and then nothing is blocked.
    let _ = socket.shutdown(Shutdown::Read);
}

/// Repeats a call interrupted by a signal (`EINTR`): nothing happened, so the same call again is
/// the same call. Never used for `close`, which must not be retried, nor for `connect`, which
/// goes on in the background once interrupted.
pub(crate) fn retry_interrupted<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

// Windows has no SIGPIPE; Apple's systems have no MSG_NOSIGNAL and get SO_NOSIGPIPE on each
// socket instead (`prepare`). Every other Unix has MSG_NOSIGNAL.
#[cfg(not(any(windows, target_vendor = "apple")))]
const NO_SIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(any(windows, target_vendor = "apple"))]
const NO_SIGNAL: i32 = 0;

/// What every connected socket of the blocking adapter gets before its first call: blocking mode
/// (a socket handed over may come non-blocking, and its `EAGAIN` would read as a timeout), and
/// no `SIGPIPE`.
pub(crate) fn prepare(socket: &Socket) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    prepare_no_signal(socket)
}

/// No `SIGPIPE` from this socket, whatever its mode: `MSG_NOSIGNAL` covers every send but on
/// Apple's systems, where the socket itself must say so. The async adapter, whose sockets stay
/// non-blocking, takes only this part of [`prepare`].
pub(crate) fn prepare_no_signal(socket: &Socket) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    socket.set_nosigpipe(true)?;
    let _ = socket;
    Ok(())
}

/// Whether a failed `accept` will fail again whatever the server waits for: the listening socket
/// itself is unusable. Running out of descriptors or memory passes; so does a connection that
/// died in the queue.
pub(crate) fn is_fatal_accept_error(error: &io::Error) -> bool {
    #[cfg(unix)]
    if let Some(code) = error.raw_os_error() {
        return matches!(
            code,
            libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT
        );
    }
    matches!(error.kind(), io::ErrorKind::InvalidInput)
}
