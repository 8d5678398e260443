//! What a server is set up with and reports, and its books, kept the same way by both adapters:
//! the [`Listener`] lifecycle, the open connections (for the drain's aborts) and the T2 drain
//! tracker. How the accept loop waits, and what runs a connection, is the adapter's.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use super::sys;
use crate::{
    CloseReason, Config, DrainOutcome, DrainTracker, Instant, IoErrorKind, Listener,
    ListenerAction, ListenerConfig, Registration, StdClock,
};

/// Everything a server runs with.
///
/// Start from [`ServerConfig::default`] and change what you need, with the `with_*` methods or
/// by assigning the fields: more settings may come, so it cannot be written as a struct literal
/// outside this crate.
///
/// ```
/// use std::time::Duration;
/// use socket_lifecycle::blocking::ServerConfig;
///
/// let config = ServerConfig::default()
///     .with_drain_timeout(Duration::from_secs(5))
///     .with_max_connections(64);
/// assert_eq!(config.max_connections, 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The most connections open at once (rule L4), counted from accept to the end of the
    /// close, a lingering one included. At the cap the server stops accepting, and the kernel's
    /// backlog holds new clients, until a connection closes. At least 1.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    /// Default connection and listener settings, no idle timeout, a 10 s drain, a backlog of
    /// 1024, and at most 1024 connections at once (the usual soft limit of open descriptors).
    fn default() -> Self {
        Self {
            connection: Config::default(),
            listener: ListenerConfig::default(),
            idle_timeout: None,
            drain_timeout: Duration::from_secs(10),
            backlog: 1024,
            max_connections: 1024,
        }
    }
}

impl ServerConfig {
    /// With each connection's settings `connection`.
    #[must_use]
    pub const fn with_connection(mut self, connection: Config) -> Self {
        self.connection = connection;
        self
    }

    /// With the accept backoff `listener`.
    #[must_use]
    pub const fn with_listener(mut self, listener: ListenerConfig) -> Self {
        self.listener = listener;
        self
    }

    /// With each connection's idle timeout `idle_timeout` (`None`: none).
    #[must_use]
    pub const fn with_idle_timeout(mut self, idle_timeout: Option<Duration>) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// With a drain that waits `drain_timeout` before it aborts the open connections.
    #[must_use]
    pub const fn with_drain_timeout(mut self, drain_timeout: Duration) -> Self {
        self.drain_timeout = drain_timeout;
        self
    }

    /// With the listen backlog `backlog`.
    #[must_use]
    pub const fn with_backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// With at most `max_connections` open at once (at least 1 is used).
    #[must_use]
    pub const fn with_max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
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

/// What a server did, once its `serve` has returned. More figures may come: read its fields,
/// do not build or destructure it whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// How many times accepting was held back at the connection cap
    /// ([`ServerConfig::max_connections`]).
    pub held_at_cap: u64,
    /// How long accepting was held back at the cap, in all.
    pub held_at_cap_time: Duration,
}

/// What ends a connection from the server's side: its abort handle.
pub(crate) trait Abort: Send + Clone {
    /// The drain's abort, at its deadline (rule L3).
    fn abort_for_drain(&self);
}

/// A connection accepted and counted, not yet served.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) peer: Peer,
    registration: Registration,
}

/// The server's books, shared by the accept loop, the connections and the drain.
pub(crate) struct Books<H> {
    listener: Mutex<Listener>,
    /// The open connections, for the drain's aborts.
    open: Mutex<Open<H>>,
    tracker: DrainTracker,
    report: Mutex<ServeReport>,
    /// Set once the drain's deadline has passed: a connection served after it (admitted just
    /// before the drain began) is aborted as it is served.
    deadline_passed: AtomicBool,
    max_connections: usize,
    clock: StdClock,
    /// Called after each connection is released, for the waits on the count: the cap's and
    /// the drain's.
    on_release: Box<dyn Fn() + Send + Sync>,
}

impl<H: Abort> Books<H> {
    pub(crate) fn new(
        clock: StdClock,
        config: &ServerConfig,
        on_release: impl Fn() + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            listener: Mutex::new(Listener::new(clock.now(), config.listener)),
            open: Mutex::new(Open::default()),
            tracker: DrainTracker::new(),
            report: Mutex::new(ServeReport::default()),
            deadline_passed: AtomicBool::new(false),
            max_connections: config.max_connections.max(1),
            clock,
            on_release: Box::new(on_release),
        })
    }

    fn listener(&self) -> MutexGuard<'_, Listener> {
        self.listener.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self) -> MutexGuard<'_, Open<H>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn counts(&self) -> MutexGuard<'_, ServeReport> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn tracker(&self) -> &DrainTracker {
        &self.tracker
    }

    /// Whether the server holds as many connections as it may (L4): accept no more until one
    /// is released.
    pub(crate) fn at_cap(&self) -> bool {
        self.tracker.open() >= self.max_connections
    }

    /// Accepting was held back at the cap for `time`.
    pub(crate) fn held_at_cap(&self, time: Duration) {
        let mut counts = self.counts();
        counts.held_at_cap = counts.held_at_cap.saturating_add(1);
        counts.held_at_cap_time = counts.held_at_cap_time.saturating_add(time);
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
    pub(crate) fn admit(&self, addr: SocketAddr) -> Option<Admission> {
        // Refused once a drain has begun (on another thread, for a server whose connections
        // another runs): then the listener did not count it, and must not count it closed.
        let counted = self.listener().handle_accepted(self.clock.now()).is_ok();
        let Some(registration) = self.tracker.register() else {
            if counted {
                let _ = self.listener().handle_connection_closed(self.clock.now());
            }
            return None;
        };
        let mut counts = self.counts();
        counts.accepted = counts.accepted.saturating_add(1);
        Some(Admission {
            peer: Peer {
                id: counts.accepted,
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
        (self.on_release)();
    }

    /// The admitted connection is served, and `abort` ends it for the drain. Dropping the
    /// returned [`Served`] once the connection is closed (however its thread or task ends, or
    /// its close) counts it closed.
    pub(crate) fn serve(self: &Arc<Self>, admission: Admission, abort: H) -> Served<H> {
        let slot = self.open().insert(abort.clone());
        if self.deadline_passed.load(Ordering::SeqCst) {
            // Admitted before the drain began, served after its deadline passed: the aborts
            // missed it (L3).
            abort.abort_for_drain();
            let mut counts = self.counts();
            counts.aborted_by_drain = counts.aborted_by_drain.saturating_add(1);
        }
        Served {
            books: Arc::clone(self),
            slot,
            registration: Some(admission.registration),
        }
    }

    /// A failed accept: counted, and accepting paused with the listener's backoff; or, if the
    /// listening socket itself is broken, the error to end `serve` with.
    pub(crate) fn accept_failed(&self, error: io::Error) -> io::Result<()> {
        #[cfg(feature = "tracing")]
        super::accept_failed(&error);
        if sys::is_fatal_accept_error(&error) {
            return Err(error);
        }
        {
            let mut counts = self.counts();
            counts.accept_failures = counts.accept_failures.saturating_add(1);
        }
        let _ = self
            .listener()
            .handle_accept_failed(self.clock.now(), IoErrorKind::of(&error));
        Ok(())
    }

    /// Counts a connection's close.
    pub(crate) fn closed(&self, reason: Option<CloseReason>) {
        if reason == Some(CloseReason::Graceful) {
            let mut counts = self.counts();
            counts.graceful = counts.graceful.saturating_add(1);
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

    /// The drain deadline passed: the connections still open are aborted, each once (L3),
    /// and counted.
    pub(crate) fn abort_stragglers<L>(&self, listening: &mut Option<L>) {
        self.deadline_passed.store(true, Ordering::SeqCst);
        let _ = self.listener().handle_timeout(self.clock.now());
        let aborted = self.perform(listening);
        let mut counts = self.counts();
        counts.aborted_by_drain = counts.aborted_by_drain.saturating_add(aborted);
    }

    /// What the server did so far, with how the drain ended.
    pub(crate) fn report(&self, outcome: DrainOutcome, drain_started: StdInstant) -> ServeReport {
        let mut report = *self.counts();
        report.drain = Some(outcome);
        report.drain_time = drain_started.elapsed();
        report
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
                    // Out of the lock: an abort wakes whatever waits on the connection, which
                    // must be free to release it from the books.
                    let handles: Vec<H> = self.open().handles().cloned().collect();
                    for handle in handles {
                        handle.abort_for_drain();
                        aborted = aborted.saturating_add(1);
                    }
                }
            }
        }
    }
}

/// The open connections' abort handles, for the drain's aborts: each in a slot of its own, a
/// slot freed at its connection's release taken again by the next. A slot is 8 bytes (a
/// `HashMap` keyed by the peer's id took about 28 a connection at 10,000 open), and a table
/// that grows touches only the slots in use.
struct Open<H> {
    slots: Vec<Option<H>>,
    /// The slots freed, to be taken again.
    free: Vec<usize>,
}

impl<H> Default for Open<H> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<H> Open<H> {
    /// Keeps `handle`; its slot.
    fn insert(&mut self, handle: H) -> usize {
        while let Some(slot) = self.free.pop() {
            if let Some(free @ None) = self.slots.get_mut(slot) {
                *free = Some(handle);
                return slot;
            }
        }
        self.slots.push(Some(handle));
        self.slots.len().saturating_sub(1)
    }

    /// Lets go of the handle in `slot`.
    fn remove(&mut self, slot: usize) {
        if let Some(handle @ Some(_)) = self.slots.get_mut(slot) {
            *handle = None;
            self.free.push(slot);
        }
    }

    /// Every handle kept.
    fn handles(&self) -> impl Iterator<Item = &H> {
        self.slots.iter().flatten()
    }
}

/// A served connection's last act, however its thread or task ends (a handler's panic
/// included), or its close: the server forgets it, the listener counts it closed, the drain
/// tracker releases it, and whoever waits on the count is told. Dropped after the connection's
/// socket, so that it is counted closed only once it is.
pub(crate) struct Served<H: Abort> {
    books: Arc<Books<H>>,
    /// Its abort handle's slot in the books.
    slot: usize,
    registration: Option<Registration>,
}

impl<H: Abort> Served<H> {
    pub(crate) fn books(&self) -> &Books<H> {
        &self.books
    }
}

impl<H: Abort> Drop for Served<H> {
    fn drop(&mut self) {
        self.books.open().remove(self.slot);
        let _ = self
            .books
            .listener()
            .handle_connection_closed(self.books.clock.now());
        // Released before the waiters are told, so that they see the count without it.
        drop(self.registration.take());
        (self.books.on_release)();
    }
}

impl<H: Abort> fmt::Debug for Served<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// An abort handle that counts the drain's aborts.
    #[derive(Clone, Default)]
    struct Counting(Arc<AtomicU64>);

    impl Abort for Counting {
        fn abort_for_drain(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn books() -> Arc<Books<Counting>> {
        Books::new(StdClock::new(), &ServerConfig::default(), || {})
    }

    #[test]
    fn l3_an_accept_refused_by_a_drain_under_way_leaves_the_open_connection_to_be_aborted() {
        let books = books();
        let straggler = Counting::default();
        let admission = books.admit(addr()).expect("admitted before the drain");
        let _served = books.serve(admission, straggler.clone());
        // The drain begins on another thread while an accept returns a connection.
        let _ = books.begin_drain(Duration::ZERO, &mut None::<()>);
        assert!(books.admit(addr()).is_none(), "no admission once draining");
        books.tracker().expire();
        books.abort_stragglers(&mut None::<()>);
        assert_eq!(
            straggler.0.load(Ordering::SeqCst),
            1,
            "L3 violated: the connection open at the deadline was not aborted"
        );
        assert_eq!(
            books
                .report(DrainOutcome::Drained, StdInstant::now())
                .aborted_by_drain,
            1
        );
    }

    #[test]
    fn l3_a_connection_served_after_the_deadline_is_aborted_as_it_is_served() {
        let books = books();
        let admission = books.admit(addr()).expect("admitted before the drain");
        let _ = books.begin_drain(Duration::ZERO, &mut None::<()>);
        books.tracker().expire();
        books.abort_stragglers(&mut None::<()>);
        let late = Counting::default();
        let _served = books.serve(admission, late.clone());
        assert_eq!(
            late.0.load(Ordering::SeqCst),
            1,
            "L3 violated: a connection admitted before the drain and served after its deadline \
             escaped the aborts"
        );
    }

    #[test]
    fn l4_the_cap_counts_from_admission_to_release() {
        let books: Arc<Books<Counting>> = Books::new(
            StdClock::new(),
            &ServerConfig {
                max_connections: 2,
                ..ServerConfig::default()
            },
            || {},
        );
        let first = books.admit(addr()).expect("first");
        let first = books.serve(first, Counting::default());
        assert!(!books.at_cap(), "L4: one of two");
        let second = books.admit(addr()).expect("second");
        assert!(
            books.at_cap(),
            "L4 violated: two of two admitted, not at the cap"
        );
        drop(first);
        assert!(!books.at_cap(), "L4 violated: a release frees a place");
        books.not_served(second);
        assert_eq!(books.tracker().open(), 0);
    }
}
