//! What a server is set up with and reports, and its books, kept the same way by both adapters:
//! the [`Listener`] lifecycle, the open connections (for the drain's aborts) and the T2 drain
//! tracker. How the accept loop waits, and what runs a connection, is the adapter's.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use super::sys;
use crate::{
    CloseReason, Config, DrainOutcome, DrainTracker, Instant, IoErrorKind, Listener,
    ListenerAction, ListenerConfig, Registration, StdClock,
};

/// Everything a server runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Each connection's settings (its linger deadlines).
    pub connection: Config,
    /// The accept backoff after a failed accept (out of descriptors, typically).
    pub listener: ListenerConfig,
    /// Each connection's idle timeout (`None`: none): how long a `recv` waits for a byte, and a
    /// `send` for the peer to take one, while the connection is open.
    pub idle_timeout: Option<Duration>,
    /// How long a drain waits for open connections before it aborts them.
    pub drain_timeout: Duration,
    /// The listen backlog.
    pub backlog: i32,
}

impl Default for ServerConfig {
    /// Default connection and listener settings, no idle timeout, a 10 s drain, a backlog of 1024.
    fn default() -> Self {
        Self {
            connection: Config::default(),
            listener: ListenerConfig::default(),
            idle_timeout: None,
            drain_timeout: Duration::from_secs(10),
            backlog: 1024,
        }
    }
}

/// A connection's identity within a server, for its observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Numbered from 1 in accept order.
    pub id: u64,
    /// The peer's address.
    pub addr: SocketAddr,
}

/// What a server did, once its `serve` has returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Of those, how many closed gracefully.
    pub graceful: u64,
    /// How many the drain aborted at its deadline.
    pub aborted_by_drain: u64,
    /// Accepts that failed (out of descriptors, say) and paused accepting.
    pub accept_failures: u64,
    /// How the drain ended: every connection done, or the deadline with this many still open.
    pub drain: Option<DrainOutcome>,
    /// From the drain request to the last connection's close.
    pub drain_time: Duration,
}

/// What ends a connection from the server's side: its abort handle.
pub(crate) trait Abort: Send {
    fn abort(&self);
}

/// A connection accepted and counted, not yet served.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) peer: Peer,
    registration: Registration,
}

/// The server's books, shared by the accept loop and the connections.
pub(crate) struct Books<H> {
    listener: Mutex<Listener>,
    /// The open connections, for the drain's aborts.
    open: Mutex<HashMap<u64, H>>,
    tracker: DrainTracker,
    graceful: AtomicU64,
    clock: StdClock,
}

impl<H: Abort> Books<H> {
    pub(crate) fn new(clock: StdClock, config: ListenerConfig) -> Arc<Self> {
        Arc::new(Self {
            listener: Mutex::new(Listener::new(clock.now(), config)),
            open: Mutex::new(HashMap::new()),
            tracker: DrainTracker::new(),
            graceful: AtomicU64::new(0),
            clock,
        })
    }

    fn listener(&self) -> MutexGuard<'_, Listener> {
        self.listener.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, H>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn tracker(&self) -> &DrainTracker {
        &self.tracker
    }

    /// `Some(resume)` while accepting is paused after a failed accept: wait until that deadline
    /// (or a drain), then call [`resume`](Self::resume).
    pub(crate) fn paused(&self) -> Option<Option<Instant>> {
        let listener = self.listener();
        (!listener.may_accept()).then(|| listener.poll_timeout())
    }

    pub(crate) fn resume(&self) {
        let _ = self.listener().handle_timeout(self.clock.now());
    }

    /// An accept returned a connection from `addr`: counted open, numbered, registered with the
    /// drain tracker. `None` once the drain has begun: the loop stops.
    pub(crate) fn admit(&self, report: &mut ServeReport, addr: SocketAddr) -> Option<Admission> {
        // Refused only after a stop, and the loop has stopped before any.
        let _ = self.listener().handle_accepted(self.clock.now());
        let Some(registration) = self.tracker.register() else {
            let _ = self.listener().handle_connection_closed(self.clock.now());
            return None;
        };
        report.accepted = report.accepted.saturating_add(1);
        Some(Admission {
            peer: Peer {
                id: report.accepted,
                addr,
            },
            registration,
        })
    }

    /// The admitted connection could not be set up as promised (it was dropped, so reset): it is
    /// counted closed.
    pub(crate) fn not_served(&self, admission: Admission) {
        let _ = self.listener().handle_connection_closed(self.clock.now());
        drop(admission);
    }

    /// The admitted connection is served, and `abort` ends it for the drain. Dropping the
    /// returned [`Served`] once the connection is closed (however its thread or task ends)
    /// counts it closed.
    pub(crate) fn serve(self: &Arc<Self>, admission: Admission, abort: H) -> Served<H> {
        self.open().insert(admission.peer.id, abort);
        Served {
            books: Arc::clone(self),
            id: admission.peer.id,
            _registration: admission.registration,
        }
    }

    /// A failed accept: counted, and accepting paused with the listener's backoff; or, if the
    /// listening socket itself is broken, the error to end `serve` with.
    pub(crate) fn accept_failed(
        &self,
        report: &mut ServeReport,
        error: io::Error,
    ) -> io::Result<()> {
        if sys::is_fatal_accept_error(&error) {
            return Err(error);
        }
        report.accept_failures = report.accept_failures.saturating_add(1);
        let _ = self
            .listener()
            .handle_accept_failed(self.clock.now(), IoErrorKind::of(&error));
        Ok(())
    }

    /// Counts a connection's close.
    pub(crate) fn closed(&self, reason: Option<CloseReason>) {
        if reason == Some(CloseReason::Graceful) {
            self.graceful.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Starts the drain: no more registrations, the listener's actions in its order (stop
    /// accepting, close the listening socket); returns the drain deadline.
    pub(crate) fn begin_drain<L>(
        &self,
        timeout: Duration,
        listening: &mut Option<L>,
    ) -> Option<Instant> {
        self.tracker.start_drain();
        let _ = self.listener().drain(self.clock.now(), timeout);
        self.perform(listening);
        // A statement of its own: the listener's lock must be released before the caller waits,
        // or a connection that closes during the drain blocks on it and is counted open until
        // the deadline.
        self.listener().poll_timeout()
    }

    /// The drain deadline passed: the connections still open are aborted, each once (L3).
    /// Returns how many were aborted.
    pub(crate) fn abort_stragglers<L>(&self, listening: &mut Option<L>) -> u64 {
        let _ = self.listener().handle_timeout(self.clock.now());
        self.perform(listening)
    }

    /// What `serve` returns once every connection has finished.
    pub(crate) fn report(
        &self,
        mut report: ServeReport,
        outcome: DrainOutcome,
        drain_started: StdInstant,
        fatal: Option<io::Error>,
    ) -> io::Result<ServeReport> {
        report.drain = Some(outcome);
        report.drain_time = drain_started.elapsed();
        report.graceful = self.graceful.load(Ordering::SeqCst);
        match fatal {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// Performs the listener's pending actions; returns how many connections it aborted.
    fn perform<L>(&self, listening: &mut Option<L>) -> u64 {
        let mut aborted = 0_u64;
        loop {
            let action = self.listener().poll_action();
            match action {
                None => return aborted,
                // The accept loop is out of `accept` by now.
                Some(ListenerAction::StopAccepting) => {}
                Some(ListenerAction::Close) => drop(listening.take()),
                Some(ListenerAction::AbortConnections { .. }) => {
                    for handle in self.open().values() {
                        handle.abort();
                        aborted = aborted.saturating_add(1);
                    }
                }
            }
        }
    }
}

/// A served connection's last act, however its thread or task ends (a handler's panic
/// included): the server forgets it, the listener counts it closed, the drain tracker releases
/// it. Dropped after the connection, so that it is counted closed only once it is.
pub(crate) struct Served<H: Abort> {
    books: Arc<Books<H>>,
    id: u64,
    _registration: Registration,
}

impl<H: Abort> Served<H> {
    pub(crate) fn books(&self) -> &Books<H> {
        &self.books
    }
}

impl<H: Abort> Drop for Served<H> {
    fn drop(&mut self) {
        self.books.open().remove(&self.id);
        let _ = self
            .books
            .listener()
            .handle_connection_closed(self.books.clock.now());
    }
}

impl<H: Abort> fmt::Debug for Served<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
