//! A whole connection: its socket, its driver and its signal, owned by one thread or task at a
//! time. The socket is released here, once, when the core has closed.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use super::driver::Driver;
use super::signal::{Signal, Wake};
use super::steps::{SocketLike, Steps};
use super::sys;
use crate::{CloseReason, Lifecycle};

/// How much a lingering close reads at a time, to throw away.
pub(crate) const DISCARD_CHUNK: usize = 4096;

/// How an adapter finishes, on its own, the close of a connection its owner dropped (A1): a
/// thread, or a task. It is given the connection detached: dropped again before its close ends,
/// it is reset.
pub(crate) type Finish<S, W> = fn(Endpoint<S, W>);

/// One connection and the socket it owns. Every step goes through the [`Driver`]; when the core
/// emits `Close`, the socket is dropped (the close) and the observer told, once.
///
/// Dropped while open, it is abandoned, and the core decides what that means (A1): with the
/// send side still open, a reset ([`CloseReason::Abandoned`]); after the send side was shut,
/// the lingering close goes on, and the adapter's [`Finish`] drives it to its end. A detached
/// connection dropped before its close ends (its runtime going away, say) is reset then.
pub(crate) struct Endpoint<S: SocketLike, W: Wake> {
    /// `None` once the core's `Close` was performed.
    socket: Option<S>,
    driver: Driver,
    signal: Arc<Signal<W>>,
    carried: Carried<S, W>,
    /// Handed to `finish` by the drop of its owner: a second drop cannot hand it on again.
    detached: bool,
}

/// What a connection carries, besides its socket and its core, wherever its close is finished:
/// through a split and a reunite, and to the adapter's [`Finish`].
pub(crate) struct Carried<S: SocketLike, W: Wake> {
    /// What the connection lends as its descriptor once its own is released.
    stand_in: &'static Socket,
    finish: Finish<S, W>,
}

impl<S: SocketLike, W: Wake> Clone for Carried<S, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: SocketLike, W: Wake> Copy for Carried<S, W> {}

/// A connection taken apart, to be put back together: by a split (into its halves) and a
/// reunite, or by the halves' drop (into a detached connection).
pub(crate) struct Parts<S: SocketLike, W: Wake> {
    pub(crate) socket: Option<S>,
    pub(crate) driver: Driver,
    pub(crate) signal: Arc<Signal<W>>,
    pub(crate) carried: Carried<S, W>,
}

impl<S: SocketLike, W: Wake> Endpoint<S, W> {
    /// A connection on `socket`, established (`driver`'s core says so).
    ///
    /// # Errors
    /// The process's [stand-in socket](sys::stand_in) could not be made (out of descriptors):
    /// the connection is then dropped as an abandoned one, reset, and its observer told.
    pub(crate) fn new(
        socket: S,
        mut driver: Driver,
        signal: Arc<Signal<W>>,
        finish: Finish<S, W>,
    ) -> io::Result<Self> {
        let stand_in = match sys::stand_in() {
            Ok(stand_in) => stand_in,
            Err(error) => {
                driver.abandon(Some(&socket.socket_ref()));
                drop(socket);
                driver.closed();
                return Err(error);
            }
        };
        Ok(Self {
            socket: Some(socket),
            driver,
            signal,
            carried: Carried { stand_in, finish },
            detached: false,
        })
    }

    /// The connection whose parts these are.
    pub(crate) fn from_parts(parts: Parts<S, W>) -> Self {
        Self {
            socket: parts.socket,
            driver: parts.driver,
            signal: parts.signal,
            carried: parts.carried,
            detached: false,
        }
    }

    /// Hands the connection, detached, to the adapter's [`Finish`].
    pub(crate) fn finish_detached(mut self) {
        self.detached = true;
        (self.carried.finish)(self);
    }

    pub(crate) fn signal_arc(&self) -> &Arc<Signal<W>> {
        &self.signal
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        self.driver.lifecycle()
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.driver.lifecycle().close_reason()
    }

    pub(crate) fn error(&self) -> Option<&io::Error> {
        self.driver.error()
    }

    pub(crate) fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.driver.set_idle_timeout(timeout);
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.address(Socket::peer_addr)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.address(Socket::local_addr)
    }

    fn address(
        &self,
        query: impl FnOnce(&Socket) -> io::Result<socket2::SockAddr>,
    ) -> io::Result<SocketAddr> {
        let socket = self
            .socket
            .as_ref()
            .ok_or_else(|| self.driver.closed_error())?;
        query(&socket.socket_ref())?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an internet address"))
    }

    /// Hands the socket, the driver and the signal over (to the halves of a split), leaving
    /// nothing to close behind.
    pub(crate) fn into_parts(mut self) -> Parts<S, W> {
        self.take_parts()
    }

    fn take_parts(&mut self) -> Parts<S, W> {
        let placeholder = Driver::placeholder(self.driver.clock());
        Parts {
            socket: self.socket.take(),
            driver: std::mem::replace(&mut self.driver, placeholder),
            signal: Arc::clone(&self.signal),
            carried: self.carried,
        }
    }
}

impl<S: SocketLike, W: Wake> Steps for Endpoint<S, W> {
    type Socket = S;
    type Waker = W;

    /// Runs one step with the socket lent to the driver, then releases the socket if the core
    /// closed the connection.
    fn step<R>(&mut self, step: impl FnOnce(&mut Driver, Option<&Socket>, &Signal<W>) -> R) -> R {
        let result = {
            let socket = self.socket.as_ref().map(S::socket_ref);
            step(&mut self.driver, socket.as_deref(), &self.signal)
        };
        if self.driver.lifecycle().is_closed() && self.socket.take().is_some() {
            // The one close: dropping the socket. (A blocking abort handle may hold the socket
            // for the instant of its wake-up; its drop is then the close.)
            self.driver.closed();
        }
        result
    }

    fn socket(&self) -> Option<&S> {
        self.socket.as_ref()
    }

    fn signal(&self) -> &Signal<W> {
        &self.signal
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.driver.idle_timeout()
    }
}

impl<S: SocketLike, W: Wake> Drop for Endpoint<S, W> {
    /// A connection dropped while open is abandoned, as the core decides (A1): reset with
    /// [`CloseReason::Abandoned`] while its send side is open (a peer must not take a cut-off
    /// stream for a complete one); after that, its lingering close goes on, finished by the
    /// adapter on its own.
    fn drop(&mut self) {
        if self.socket.is_none() {
            return;
        }
        if self.detached {
            // The close this connection was finishing on its own cannot go on: reset.
            self.step(|driver, socket, _| driver.abort(socket));
            return;
        }
        self.abandon();
        if self.socket.is_some() {
            Self::from_parts(self.take_parts()).finish_detached();
        }
    }
}

/// The socket while the connection holds it; then the process's stand-in, which belongs to no
/// connection.
#[cfg(unix)]
impl<S: SocketLike + std::os::fd::AsFd, W: Wake> std::os::fd::AsFd for Endpoint<S, W> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.socket {
            Some(socket) => socket.as_fd(),
            None => self.carried.stand_in.as_fd(),
        }
    }
}

/// The socket while the connection holds it; then the process's stand-in, which belongs to no
/// connection.
#[cfg(windows)]
impl<S: SocketLike + std::os::windows::io::AsSocket, W: Wake> std::os::windows::io::AsSocket
    for Endpoint<S, W>
{
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        match &self.socket {
            Some(socket) => socket.as_socket(),
            None => self.carried.stand_in.as_socket(),
        }
    }
}

impl<S: SocketLike + fmt::Debug, W: Wake> fmt::Debug for Endpoint<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("socket", &self.socket)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}
