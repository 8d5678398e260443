//! A connection split into a read half and a write half, for two threads or tasks, on the T1
//! guard ([`Half`]): the socket is closed once, after both halves, never under a call of either.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use socket2::Socket;

use super::driver::Driver;
use super::endpoint::{Carried, Endpoint, Parts};
use super::signal::{Signal, Wake};
use super::steps::{SocketLike, Steps};
use crate::{Call, CloseReason, Half};

/// What both halves share besides the socket.
struct Shared<W> {
    /// Never held across a wait.
    driver: Mutex<Driver>,
    signal: Arc<Signal<W>>,
    idle_timeout: Option<Duration>,
}

impl<W> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, Driver> {
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The resource the T1 guard holds: the socket, whose drop, after both halves, is the close.
pub(crate) struct Joint<S: SocketLike, W: Wake> {
    /// `None` for a connection split after it closed (the core then lets no call through), and
    /// once reunited.
    socket: Option<S>,
    shared: Arc<Shared<W>>,
    carried: Carried<S, W>,
}

impl<S: SocketLike, W: Wake> Joint<S, W> {
    /// Runs one step under the lock, with the socket lent to the driver. Once the core has
    /// closed, the signal says so, so that a wait of the other half that starts later ends at
    /// once.
    fn step<R>(&self, step: impl FnOnce(&mut Driver, Option<&Socket>, &Signal<W>) -> R) -> R {
        let mut driver = self.shared.lock();
        let socket = self.socket.as_ref().map(S::socket_ref);
        let result = step(&mut driver, socket.as_deref(), &self.shared.signal);
        if driver.lifecycle().is_closed() {
            self.shared.signal.mark_closed();
        }
        result
    }

    /// The connection this was split from, whole again; this keeps nothing to close.
    fn take_endpoint(&mut self) -> Endpoint<S, W> {
        let mut driver = self.shared.lock();
        let placeholder = Driver::placeholder(driver.clock());
        let driver = std::mem::replace(&mut *driver, placeholder);
        Endpoint::from_parts(Parts {
            socket: self.socket.take(),
            driver,
            signal: Arc::clone(&self.shared.signal),
            carried: self.carried,
        })
    }
}

impl<S: SocketLike, W: Wake> Drop for Joint<S, W> {
    /// Both halves are gone: a connection whose both directions ended closes gracefully; one
    /// still open is abandoned, as a dropped connection is (A1): reset while its send side is
    /// open, or else its lingering close finished by the adapter on its own. The socket goes
    /// once.
    fn drop(&mut self) {
        // A connection split after its close was released, and reported, before the split; a
        // reunited one is whole again elsewhere.
        if self.socket.is_none() {
            return;
        }
        let closed = {
            let mut driver = self.shared.lock();
            let socket = self.socket.as_ref().map(S::socket_ref);
            driver.halves_dropped(socket.as_deref());
            driver.lifecycle().is_closed()
        };
        if !closed {
            self.take_endpoint().finish_detached();
        } else if let Some(socket) = self.socket.take() {
            drop(socket);
            self.shared.lock().closed();
        }
    }
}

/// One half of a split connection: the T1 guard around the socket, and what both halves share.
pub(crate) struct SplitHalf<S: SocketLike, W: Wake> {
    half: Half<Joint<S, W>>,
    shared: Arc<Shared<W>>,
}

impl<S: SocketLike, W: Wake> SplitHalf<S, W> {
    /// Splits a whole connection: the read half, then the write half.
    pub(crate) fn split(endpoint: Endpoint<S, W>) -> (Self, Self) {
        let idle_timeout = endpoint.idle_timeout();
        let parts = endpoint.into_parts();
        let shared = Arc::new(Shared {
            driver: Mutex::new(parts.driver),
            signal: parts.signal,
            idle_timeout,
        });
        let (read, write) = Half::split(Joint {
            socket: parts.socket,
            shared: Arc::clone(&shared),
            carried: parts.carried,
        });
        (
            Self {
                half: read,
                shared: Arc::clone(&shared),
            },
            Self {
                half: write,
                shared,
            },
        )
    }

    /// Puts the two halves of one connection back together; both back, unchanged, if they are
    /// not the two halves of one connection.
    pub(crate) fn reunite(self, other: Self) -> Result<Endpoint<S, W>, (Self, Self)> {
        let (
            Self { half, shared },
            Self {
                half: other_half,
                shared: other_shared,
            },
        ) = (self, other);
        match half.unsplit(other_half) {
            Ok(mut joint) => Ok(joint.take_endpoint()),
            Err((half, other_half)) => Err((
                Self { half, shared },
                Self {
                    half: other_half,
                    shared: other_shared,
                },
            )),
        }
    }

    /// Enters one call on the socket, whose steps the returned [`Call`] takes; the closing error
    /// once either half has asked for the close. Call [`settle`](Self::settle) when the call is
    /// over.
    pub(crate) fn enter(&mut self) -> io::Result<Call<'_, Joint<S, W>>> {
        let shared = &self.shared;
        self.half
            .enter()
            .ok_or_else(|| shared.lock().closed_error())
    }

    /// After each call: once the core has closed the connection, no call of either half may
    /// start, and the other half is woken (T1): inside a call, it may be blocked in it; outside
    /// one, a task of the tokio adapter may be waiting between two polls of its call. The socket
    /// goes with the last half.
    pub(crate) fn settle(&self) {
        if self.shared.signal.is_closed() && !self.half.is_closing() {
            let request = self.half.request_close();
            if request.is_first() || request.other_in_call() {
                self.shared.signal.waker().wake();
            }
        }
    }

    /// The seed's `shutdown(SD_SEND)`, from the write half.
    pub(crate) fn shutdown_send(&mut self) -> io::Result<()> {
        let answer = self.enter().and_then(|mut call| call.shutdown_send());
        self.settle();
        answer
    }

    pub(crate) fn signal(&self) -> &Arc<Signal<W>> {
        &self.shared.signal
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.shared.lock().lifecycle().close_reason()
    }
}

impl<S: SocketLike, W: Wake> Steps for Call<'_, Joint<S, W>> {
    type Socket = S;
    type Waker = W;

    fn step<R>(&mut self, step: impl FnOnce(&mut Driver, Option<&Socket>, &Signal<W>) -> R) -> R {
        Joint::step(self, step)
    }

    fn socket(&self) -> Option<&S> {
        self.socket.as_ref()
    }

    fn signal(&self) -> &Signal<W> {
        &self.shared.signal
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.shared.idle_timeout
    }
}

impl<S: SocketLike, W: Wake> fmt::Debug for SplitHalf<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitHalf")
            .field("side", &self.half.side())
            .field("driver", &*self.shared.lock())
            .finish_non_exhaustive()
    }
}
