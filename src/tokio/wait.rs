//! How the tokio adapter waits, in `poll` form: for the socket's readiness, a tokio timer at the
//! idle or linger deadline, or the connection's signal, whichever comes first, without blocking a
//! worker thread. The connections' futures (`recv`, `send`, `close`, ...) and their
//! `AsyncRead`/`AsyncWrite` impls are all calls of these.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant as TokioInstant, Sleep};

use crate::adapter::{
    CloseWait, DISCARD_CHUNK, Received, Sent, Signal, SocketLike, Steps, Wake, sys,
};
use crate::{CloseReason, Instant, StdClock};

/// A whole connection, or one half of a split one, of the tokio adapter.
pub(crate) trait TokioSteps: Steps<Socket = TcpStream, Waker = Wakers> {}

impl<T: Steps<Socket = TcpStream, Waker = Wakers>> TokioSteps for T {}

impl SocketLike for TcpStream {
    fn socket_ref(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

/// The tasks to wake when a connection's signal is raised: the one polling its receiving side,
/// the one polling its sending side, and one awaiting the abort itself (a server's). One lock
/// for the three (each held for a registration or a take): a connection's shared state is
/// allocated with it, so every byte of it counts at scale.
#[derive(Debug, Default)]
pub(crate) struct Wakers(Mutex<Slots>);

/// The waker of the last poll of each kind that found nothing to do. Registered before the
/// signal is read, so that a signal raised in between wakes it: no wake-up is lost.
#[derive(Default)]
struct Slots {
    read: Option<Waker>,
    write: Option<Waker>,
    abort: Option<Waker>,
}

/// Which task [`Wakers::register`] registers.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Read,
    Write,
    Abort,
}

impl Wakers {
    fn register(&self, slot: Slot, waker: &Waker) {
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = match slot {
            Slot::Read => &mut slots.read,
            Slot::Write => &mut slots.write,
            Slot::Abort => &mut slots.abort,
        };
        if !slot
            .as_ref()
            .is_some_and(|current| current.will_wake(waker))
        {
            *slot = Some(waker.clone());
        }
    }
}

impl Wake for Wakers {
    fn wake(&self) {
        // Taken under the lock, woken outside it.
        let taken = {
            let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            [slots.read.take(), slots.write.take(), slots.abort.take()]
        };
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slots")
    }
}

/// A deadline of one direction's wait: the idle timeout from the first poll of a wait that has
/// not made progress, or the linger deadline the core gives. The `Sleep` is made on first use
/// and then reset, never made again.
///
/// In `poll` form the idle clock runs from the first `Pending` poll until a poll makes
/// progress, across polls abandoned between; each `async` call starts a clock of its own.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Timer {
    /// Ready once `timeout` has passed since the wait began (its first poll since the last
    /// progress); never without a timeout.
    fn poll_idle(&mut self, cx: &mut Context<'_>, timeout: Option<Duration>) -> Poll<()> {
        let Some(timeout) = timeout else {
            return Poll::Pending;
        };
        if !self.armed {
            let Some(at) = TokioInstant::now().checked_add(timeout) else {
                return Poll::Pending; // further than the clock counts: never
            };
            self.set(at);
        }
        self.poll(cx)
    }

    /// Ready once `at` has passed.
    fn poll_at(&mut self, cx: &mut Context<'_>, at: TokioInstant) -> Poll<()> {
        if !self.armed
            || self
                .sleep
                .as_ref()
                .is_none_or(|sleep| sleep.deadline() != at)
        {
            self.set(at);
        }
        self.poll(cx)
    }

    fn set(&mut self, at: TokioInstant) {
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        self.armed = true;
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// The wait made progress (or ended), or a new call begins: the next wait starts its own
    /// deadline.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

/// `recv` on `connection`: the byte count, or 0 once the peer's end of stream has come (or for
/// an empty `buf`). `timer` is the receiving side's.
pub(crate) fn poll_recv(
    connection: &mut impl TokioSteps,
    timer: &mut Timer,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    if !connection.before_recv(buf.is_empty())? {
        timer.disarm();
        return Poll::Ready(Ok(0));
    }
    let received = ready!(poll_received(connection, timer, cx, buf, None));
    Poll::Ready(connection.after_recv(received))
}

/// `send` on `connection`: as much of `buf` as the kernel takes once there is room. `timer` is
/// the sending side's.
pub(crate) fn poll_send(
    connection: &mut impl TokioSteps,
    timer: &mut Timer,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    connection.before_send()?;
    let sent = ready!(poll_sent(connection, timer, cx, buf));
    Poll::Ready(connection.after_send(sent))
}

/// The lingering close of `connection`: shut the send side, read and discard until the peer's
/// end of stream or a linger deadline, then close; its reason. `timer` is the receiving side's.
pub(crate) fn poll_close(
    connection: &mut impl TokioSteps,
    timer: &mut Timer,
    cx: &mut Context<'_>,
) -> Poll<io::Result<CloseReason>> {
    // Repeating it (each poll) changes nothing once the close has begun.
    connection.begin_close();
    let mut discard = [0_u8; DISCARD_CHUNK];
    while let Some(wait) = connection.next_close_wait() {
        match wait {
            CloseWait::Discard(deadline) => {
                let until = deadline.map(|deadline| timer_of(connection.clock(), deadline));
                let received = ready!(poll_received(
                    connection,
                    timer,
                    cx,
                    &mut discard,
                    Some(until)
                ));
                connection.after_discard(received);
            }
            CloseWait::Pause(until) => {
                // Only time, or an abort, moves a close waiting for the peer's acknowledgement.
                let signal = connection.signal();
                signal.waker().register(Slot::Read, cx.waker());
                if !signal.is_raised() {
                    ready!(timer.poll_at(cx, timer_of(connection.clock(), until)));
                }
                timer.disarm();
            }
        }
    }
    timer.disarm();
    Poll::Ready(connection.outcome())
}

/// One wait for bytes: the signal, then the socket, then the deadline: the linger deadline given
/// in `linger` (`Some(None)`: none), or else the idle timeout.
fn poll_received(
    connection: &impl TokioSteps,
    timer: &mut Timer,
    cx: &mut Context<'_>,
    buf: &mut [u8],
    linger: Option<Option<TokioInstant>>,
) -> Poll<Received> {
    let signal = connection.signal();
    signal.waker().register(Slot::Read, cx.waker());
    let received = match connection.socket() {
        _ if signal.is_raised() => Received::Raised,
        None => Received::Raised,
        Some(stream) => match poll_read_once(stream, cx, buf) {
            Poll::Ready(received) => received,
            Poll::Pending => {
                let expired = match linger {
                    Some(Some(at)) => timer.poll_at(cx, at),
                    Some(None) => Poll::Pending,
                    None => timer.poll_idle(cx, connection.idle_timeout()),
                };
                ready!(expired);
                Received::TimedOut
            }
        },
    };
    timer.disarm();
    Poll::Ready(received)
}

/// One `recv(2)` once the socket is readable.
fn poll_read_once(stream: &TcpStream, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Received> {
    loop {
        if let Err(error) = ready!(stream.poll_read_ready(cx)) {
            return Poll::Ready(Received::Failed(error));
        }
        match stream.try_read(buf) {
            Ok(0) => return Poll::Ready(Received::EndOfStream),
            Ok(n) => return Poll::Ready(Received::Bytes(n)),
            // Readiness was stale (tokio cleared it), or a signal interrupted the call.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => return Poll::Ready(Received::Failed(error)),
        }
    }
}

/// One wait to send: the signal, then the socket, then the idle timeout.
fn poll_sent(
    connection: &impl TokioSteps,
    timer: &mut Timer,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<Sent> {
    let signal = connection.signal();
    signal.waker().register(Slot::Write, cx.waker());
    let sent = match connection.socket() {
        _ if signal.is_raised() => Sent::Raised,
        None => Sent::Raised,
        Some(stream) => match poll_write_once(stream, cx, buf) {
            Poll::Ready(sent) => sent,
            Poll::Pending => {
                ready!(timer.poll_idle(cx, connection.idle_timeout()));
                Sent::TimedOut
            }
        },
    };
    timer.disarm();
    Poll::Ready(sent)
}

/// One `send(2)` without `SIGPIPE` once the socket is writable.
fn poll_write_once(stream: &TcpStream, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Sent> {
    loop {
        if let Err(error) = ready!(stream.poll_write_ready(cx)) {
            return Poll::Ready(Sent::Failed(error));
        }
        match stream.try_io(Interest::WRITABLE, || {
            sys::send(&SockRef::from(stream), buf)
        }) {
            Ok(n) => return Poll::Ready(Sent::Bytes(n)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Poll::Ready(Sent::Failed(error)),
        }
    }
}

/// The future of one call on a connection or a half: `start` on its first poll, as the body of
/// an `async fn` would begin, then `poll` until it is ready.
///
/// The calls' futures live in their callers' (a handler's, boxed for each connection): an
/// `async fn` would keep its arguments and, beside them, the `poll_fn` that borrows them. This
/// one holds each argument once.
pub(crate) fn call<T, R>(
    target: &mut T,
    start: impl FnOnce(&mut T),
    mut poll: impl FnMut(&mut T, &mut Context<'_>) -> Poll<R>,
) -> impl Future<Output = R> {
    let mut start = Some(start);
    poll_fn(move |cx| {
        if let Some(start) = start.take() {
            start(target);
        }
        poll(target, cx)
    })
}

/// Sends all of `rest`, each part by `poll_send` (a connection's, or a write half's), and takes
/// each part sent off `rest`.
pub(crate) fn poll_send_all(
    rest: &mut &[u8],
    cx: &mut Context<'_>,
    mut poll_send: impl FnMut(&mut Context<'_>, &[u8]) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<()>> {
    while !rest.is_empty() {
        let sent = ready!(poll_send(cx, rest))?;
        *rest = rest.get(sent..).unwrap_or_default();
    }
    Poll::Ready(Ok(()))
}

/// The most one `poll_read` reads at a time.
const READ_CHUNK: usize = 64 * 1024;

/// `AsyncRead::poll_read` over a `poll_recv`: what it received fills `buf`; nothing once the
/// peer's end of stream has come.
pub(crate) fn fill(
    buf: &mut ReadBuf<'_>,
    recv: impl FnOnce(&mut [u8]) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<()>> {
    // Zeroed before each read, so bounded: a caller's fresh, uninitialised buffer of megabytes
    // would cost its whole size on every poll.
    let room = buf.remaining().min(READ_CHUNK);
    let received = ready!(recv(buf.initialize_unfilled_to(room)))?;
    buf.advance(received);
    Poll::Ready(Ok(()))
}

/// Ready once an abort is asked for through `signal`; at once if it was.
pub(crate) fn poll_abort_requested(signal: &Signal<Wakers>, cx: &mut Context<'_>) -> Poll<()> {
    signal.waker().register(Slot::Abort, cx.waker());
    if signal.abort_requested() {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}

/// Sleeps until `until`, or for ever.
pub(crate) async fn sleep_until(until: Option<TokioInstant>) {
    match until {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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

/// `tokio::io::AsyncRead` for a type with `poll_recv` (a connection, a read half).
macro_rules! impl_async_read {
    ($type:ty) => {
        /// Reading is `recv`: bytes, or nothing filled once the peer's end of stream has come.
        /// An OS error closes the connection and is returned; so is the error of a connection
        /// already closed.
        impl ::tokio::io::AsyncRead for $type {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let this = self.get_mut();
                $crate::tokio::wait::fill(buf, |unfilled| this.poll_recv(cx, unfilled))
            }
        }
    };
}
pub(crate) use impl_async_read;

/// `tokio::io::AsyncWrite` for a type with `poll_send` and `shutdown_send` (a connection, a
/// write half).
macro_rules! impl_async_write {
    ($type:ty) => {
        /// Writing is `send` (`MSG_NOSIGNAL`); shutting down is `shutdown_send`, the seed's
        /// `shutdown(SD_SEND)`: receiving goes on. Flushing has nothing to send (every byte a
        /// write returned for is the kernel's already), but performs an abort asked for, so
        /// that a drain's abort ends a stream its owner only flushes.
        impl ::tokio::io::AsyncWrite for $type {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.get_mut().poll_send(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.get_mut().flush_steps())
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.get_mut().shutdown_send())
            }
        }
    };
}
pub(crate) use impl_async_write;
