//! The system calls both adapters make, each in the one form it is made in: `EINTR` retried
//! where a retry is the same call, `SIGPIPE` never raised. How an adapter waits for a call is
//! its own affair; what the call is, is said here once.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// `send(2)` of as much of `buf` as the kernel takes, without `SIGPIPE`: a write to a connection
/// the peer has reset is the error `EPIPE`, never a signal that kills the process, whatever the
/// process's `SIGPIPE` disposition is.
pub(crate) fn send(socket: &Socket, buf: &[u8]) -> io::Result<usize> {
    retry_interrupted(|| socket.send_with_flags(buf, NO_SIGNAL))
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
// socket instead (`prepare_no_signal`). Every other Unix has MSG_NOSIGNAL.
#[cfg(not(any(windows, target_vendor = "apple")))]
const NO_SIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(any(windows, target_vendor = "apple"))]
const NO_SIGNAL: i32 = 0;

/// No `SIGPIPE` from this socket, whatever its mode: `MSG_NOSIGNAL` covers every send but on
/// Apple's systems, where the socket itself must say so.
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

/// A listening socket on `addr` (`SO_REUSEADDR` on Unix, so a restart does not wait for
/// `TIME_WAIT`), in blocking mode. A failure names the address and keeps the OS error's kind.
pub(crate) fn listen(addr: SocketAddr, backlog: i32) -> io::Result<Socket> {
    let listen = || -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        #[cfg(unix)]
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        Ok(socket)
    };
    listen()
        .map_err(|error| io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}")))
}

/// A socket that belongs to no connection: what a closed connection lends where a descriptor
/// must be given (`AsFd`, `AsSocket`), since its own is released at the core's `Close`. Made
/// with the process's first connection, and never closed; options set on it change nothing
/// that matters, and queries of a peer fail (`ENOTCONN`).
pub(crate) fn stand_in() -> io::Result<&'static Socket> {
    static STAND_IN: OnceLock<Socket> = OnceLock::new();
    if let Some(socket) = STAND_IN.get() {
        return Ok(socket);
    }
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    // Another thread may have made one meanwhile: then ours goes with the closure.
    Ok(STAND_IN.get_or_init(|| socket))
}
