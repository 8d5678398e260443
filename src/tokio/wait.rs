//! How the tokio adapter waits: for the socket's readiness, a tokio timer at the core's
//! deadline, or the connection's signal, whichever comes first, without blocking a worker
//! thread.

use std::io;
use std::pin::pin;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant as TokioInstant;

use crate::adapter::{Received, Sent, Signal, SocketLike, Steps, Wake, sys};
use crate::{Instant, StdClock};

/// A whole connection, or one half of a split one, of the tokio adapter.
pub(crate) trait TokioSteps: Steps<Socket = TcpStream, Waker = Notify> + Send {}

impl<T: Steps<Socket = TcpStream, Waker = Notify> + Send> TokioSteps for T {}

impl SocketLike for TcpStream {
    fn socket_ref(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

impl Wake for Notify {
    fn wake(&self) {
        self.notify_waiters();
    }
}

/// Returns once `signal` is raised (an abort, or the other half's close); at once if it is.
/// No wake-up is lost: the wait is registered before the flags are read.
pub(crate) async fn raised(signal: &Signal<Notify>) {
    loop {
        let mut notified = pin!(signal.waker().notified());
        notified.as_mut().enable();
        if signal.is_raised() {
            return;
        }
        notified.await;
    }
}

/// `recv` on `connection`: the byte count, or 0 once the peer's end of stream has come.
pub(crate) async fn recv(connection: &mut impl TokioSteps, buf: &mut [u8]) -> io::Result<usize> {
    if !connection.before_recv(buf.is_empty())? {
        return Ok(0);
    }
    let until = after(connection.idle_timeout());
    let received = match connection.socket() {
        Some(stream) => recv_once(stream, buf, until, connection.signal()).await,
        None => Received::Raised,
    };
    connection.after_recv(received)
}

/// `send` on `connection`: as much of `buf` as the kernel takes once there is room.
pub(crate) async fn send(connection: &mut impl TokioSteps, buf: &[u8]) -> io::Result<usize> {
    connection.before_send()?;
    let until = after(connection.idle_timeout());
    let sent = match connection.socket() {
        Some(stream) => send_once(stream, buf, until, connection.signal()).await,
        None => Sent::Raised,
    };
    connection.after_send(sent)
}

/// All of `buf`, sent on `connection`.
pub(crate) async fn send_all(connection: &mut impl TokioSteps, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let sent = send(connection, buf).await?;
        buf = buf.get(sent..).unwrap_or_default();
    }
    Ok(())
}

/// One `recv(2)` once the socket is readable, waiting until `until` at most (`None`: for ever),
/// or until `signal` is raised.
pub(crate) async fn recv_once(
    stream: &TcpStream,
    buf: &mut [u8],
    until: Option<TokioInstant>,
    signal: &Signal<Notify>,
) -> Received {
    let read = async {
        loop {
            stream.readable().await?;
            match stream.try_read(buf) {
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                result => return result,
            }
        }
    };
    tokio::select! {
        biased;
        () = raised(signal) => Received::Raised,
        result = read => match result {
            Ok(0) => Received::EndOfStream,
            Ok(n) => Received::Bytes(n),
            Err(error) => Received::Failed(error),
        },
        () = sleep_until(until) => Received::TimedOut,
    }
}

/// One `send(2)` without `SIGPIPE` once the socket is writable, waiting until `until` at most,
/// or until `signal` is raised.
async fn send_once(
    stream: &TcpStream,
    buf: &[u8],
    until: Option<TokioInstant>,
    signal: &Signal<Notify>,
) -> Sent {
    let write = async {
        loop {
            stream.writable().await?;
            match stream.try_io(Interest::WRITABLE, || {
                sys::send(&SockRef::from(stream), buf)
            }) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
        }
    };
    tokio::select! {
        biased;
        () = raised(signal) => Sent::Raised,
        result = write => match result {
            Ok(n) => Sent::Bytes(n),
            Err(error) => Sent::Failed(error),
        },
        () = sleep_until(until) => Sent::TimedOut,
    }
}

/// Sleeps until `until`, or for ever.
pub(crate) async fn sleep_until(until: Option<TokioInstant>) {
    match until {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The deadline `timeout` from now, if any (and if the clock can represent it).
fn after(timeout: Option<Duration>) -> Option<TokioInstant> {
    timeout.and_then(|t| TokioInstant::now().checked_add(t))
}

/// The tokio timer's instant for a deadline of the core on `clock`; a deadline past what the
/// platform represents is a year away, which no linger reaches.
pub(crate) fn timer_of(clock: StdClock, deadline: Instant) -> TokioInstant {
    clock
        .std_instant_of(deadline)
        .map(TokioInstant::from_std)
        .or_else(|| TokioInstant::now().checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or_else(TokioInstant::now)
}
