//! The shape every `recv` and `send` of both adapters takes, on a whole connection or on one half
//! of a split one: ask the core, wait the adapter's way, report what came back.

use std::io;
use std::time::Duration;

use socket2::{SockRef, Socket};

use super::driver::{CloseWait, Driver, Received, Sent};
use super::signal::{Signal, Wake};
use crate::{CloseReason, StdClock};

/// What an adapter keeps its socket in (a `socket2::Socket` behind an `Arc`, a
/// `tokio::net::TcpStream`), seen as a socket for the core's actions.
pub(crate) trait SocketLike: Send + Sync {
    fn socket_ref(&self) -> SockRef<'_>;
}

/// One connection's steps around each wait, on a whole connection or on one half of a split
/// one. The order of calls, for a `recv`:
///
/// 1. [`before_recv`](Self::before_recv): `Ok(true)` to wait for bytes; `Ok(false)` to answer 0
///    at once; an error to return (closed, or aborted through a handle just now).
/// 2. The adapter's wait on [`socket`](Self::socket), bounded by
///    [`idle_timeout`](Self::idle_timeout) and ended early by [`signal`](Self::signal).
/// 3. [`after_recv`](Self::after_recv) with what the wait came back with: the answer.
///
/// A `send` is the same with [`before_send`](Self::before_send) and
/// [`after_send`](Self::after_send); a lingering close is [`begin_close`](Self::begin_close),
/// then waits as [`next_close_wait`](Self::next_close_wait) says, a discard reported with
/// [`after_discard`](Self::after_discard), a pause with nothing.
///
/// Every step goes through one door, [`step`](Self::step), which lends the socket to the
/// [`Driver`] and does what the owner must once the core has closed.
pub(crate) trait Steps {
    type Socket: SocketLike;
    type Waker: Wake;

    /// Runs one step of the driver with the socket and the signal.
    fn step<R>(
        &mut self,
        step: impl FnOnce(&mut Driver, Option<&Socket>, &Signal<Self::Waker>) -> R,
    ) -> R;
    /// The socket to wait on: `None` only once the connection has closed, which the `before_`
    /// step has reported already.
    fn socket(&self) -> Option<&Self::Socket>;
    fn signal(&self) -> &Signal<Self::Waker>;
    fn idle_timeout(&self) -> Option<Duration>;

    fn before_recv(&mut self, empty: bool) -> io::Result<bool> {
        self.step(|driver, socket, signal| driver.before_recv(socket, signal, empty))
    }

    fn after_recv(&mut self, received: Received) -> io::Result<usize> {
        self.step(|driver, socket, signal| driver.after_recv(socket, signal, received))
    }

    fn before_send(&mut self) -> io::Result<()> {
        self.step(|driver, socket, signal| driver.before_send(socket, signal))
    }

    fn after_send(&mut self, sent: Sent) -> io::Result<usize> {
        self.step(|driver, socket, signal| driver.after_send(socket, signal, sent))
    }

    fn shutdown_send(&mut self) -> io::Result<()> {
        self.step(|driver, socket, signal| driver.shutdown_send(socket, signal))
    }

    fn begin_close(&mut self) {
        self.step(|driver, socket, signal| driver.begin_close(socket, signal));
    }

    /// The next wait of the close: read and discard until a deadline, or pause until the
    /// peer's acknowledgement is asked for again (C13); `None` once the close is over.
    fn next_close_wait(&mut self) -> Option<CloseWait> {
        self.step(|driver, socket, signal| driver.next_close_wait(socket, signal))
    }

    fn after_discard(&mut self, received: Received) {
        self.step(|driver, socket, signal| driver.after_discard(socket, signal, received));
    }

    fn abort(&mut self) -> CloseReason {
        self.step(|driver, socket, _| driver.abort(socket))
    }

    /// A flush: nothing is queued to send, but an abort asked for is performed here as before
    /// any call, so that a stream whose owner only flushes it (hyper, while its handler works
    /// on a request) is still ended by it; then the error of the closed connection.
    fn flush(&mut self) -> io::Result<()> {
        if !self.signal().abort_requested() {
            return Ok(());
        }
        self.step(|driver, socket, signal| driver.check_open(socket, signal))
    }

    /// What a drop means (A1), without the drop: a reset while the send side is open, or else
    /// the lingering close begun, for the caller to finish.
    fn abandon(&mut self) {
        self.step(|driver, socket, _| driver.abandon(socket));
    }

    /// What a finished close answers: its reason, or the OS error that ended the connection.
    fn outcome(&mut self) -> io::Result<CloseReason> {
        self.step(|driver, _, _| driver.outcome())
    }

    /// The clock the core's deadlines are on.
    fn clock(&mut self) -> StdClock {
        self.step(|driver, _, _| driver.clock())
    }
}
