//! A tokio server on the listener lifecycle: an accept loop, a task per connection, a
//! connection cap and a drain with a deadline; or the accept half alone, for a server such as
//! axum's or hyper's to run its own connections on.

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant as StdInstant;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::wait::{sleep_until, timer_of};
use super::{AbortHandle, Connection, Observer, Peer, ServeReport, ServerConfig};
use crate::adapter::{Books, sys};
use crate::{DrainOutcome, StdClock};

/// What a connection's handler returns: a boxed future that may borrow the connection.
///
/// A handler is a closure `|connection| Box::pin(async move { ... })`, or
/// `|connection| Box::pin(my_handler(connection))` for an `async fn my_handler(connection: &mut
/// Connection) -> io::Result<()>`. (A bound that takes such an `async fn` as it is makes every
/// closure name its future's type instead: the boxed future is the simpler of the two.)
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

/// Makes each connection's observer, for its peer.
type ObserverFactory = Arc<dyn Fn(Peer) -> Box<dyn Observer> + Send + Sync>;

/// The observer of a connection [`Server::accept`] returns when none was given: `tracing`'s,
/// with the feature.
fn default_observer(peer: Peer) -> Box<dyn Observer> {
    #[cfg(feature = "tracing")]
    return Box::new(crate::adapter::TracingObserver::for_peer(peer));
    #[cfg(not(feature = "tracing"))]
    {
        let _ = peer;
        Box::new(())
    }
}

/// Starts a drain from anywhere (a task, a thread, a signal handler's task), tells handlers that
/// one began, and waits for its end: see [`Server::drain_handle`].
#[derive(Clone, Debug)]
pub struct DrainHandle {
    shared: Arc<Shared>,
    _alive: Alive,
}

/// Held by a server and each of its drain handles: once none is left, no drain can be asked
/// for, and the drain's own task ends.
type Alive = Arc<watch::Sender<()>>;

impl DrainHandle {
    /// Starts the drain: no more accepts; open connections have until the drain timeout to
    /// finish, and are aborted then. Returns at once, and needs no runtime;
    /// [`Server::serve`] (or [`drained`](Self::drained)) returns when the drain is over.
    /// Repeating it changes nothing.
    pub fn drain(&self) {
        self.shared.requested.send_if_modified(|requested| {
            let first = requested.is_none();
            requested.get_or_insert_with(StdInstant::now);
            first
        });
    }

    /// Whether a drain has begun: a handler that checks it between messages can finish the
    /// one it is on and shut its send side, a graceful end, instead of being aborted at the
    /// drain deadline.
    pub fn is_draining(&self) -> bool {
        self.shared.requested.borrow().is_some()
    }

    /// Returns once a drain has begun (at once if it has): for a handler's `select!`, next to
    /// its wait for the next message.
    pub async fn draining(&self) {
        let mut requested = self.shared.requested.subscribe();
        // The sender lives in `shared`, which `self` holds: the wait ends only on a request.
        let _ = requested.wait_for(Option::is_some).await;
    }

    /// Waits for the end of the drain (started by [`drain`](Self::drain), by this handle or
    /// another): every connection the server accepted is closed, its lingering close included,
    /// or was aborted at the drain deadline. Returns what the server did.
    ///
    /// A server run by another (`axum::serve`, or a loop on [`Server::accept`]) needs this
    /// after that server has returned: connections it let go of may still be finishing their
    /// lingering close, and a runtime that shuts down would reset them.
    ///
    /// The drain is run by [`Server::serve`], or by a task of its own from the first
    /// [`Server::accept`]: with neither (or a `serve` future dropped during the drain), this
    /// waits for ever. So does a connection that its owner holds but never uses again after
    /// the deadline: an abort is performed by whatever drives the connection (any call on it,
    /// `poll_flush` included).
    pub async fn drained(&self) -> ServeReport {
        let mut done = self.shared.done.subscribe();
        let report = done
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|report| *report);
        // `shared` holds the sender, so the wait ends with a report.
        report.unwrap_or_default()
    }
}

/// What a server, its drain handles and its drain share.
struct Shared {
    requested: watch::Sender<Option<StdInstant>>,
    books: Arc<Books<AbortHandle>>,
    /// Bumped at each connection's release: what the waits on the count (the cap's, the
    /// drain's) wake on.
    releases: Arc<watch::Sender<u64>>,
    /// The report, once the drain is over.
    done: watch::Sender<Option<ServeReport>>,
}

impl Shared {
    fn new(clock: StdClock, config: &ServerConfig) -> Arc<Self> {
        let releases = Arc::new(watch::Sender::new(0_u64));
        let released = Arc::clone(&releases);
        let books = Books::new(clock, config, move || {
            released.send_modify(|count| *count = count.wrapping_add(1));
        });
        Arc::new(Self {
            requested: watch::Sender::new(None),
            books,
            releases,
            done: watch::Sender::new(None),
        })
    }

    fn is_draining(&self) -> bool {
        self.requested.borrow().is_some()
    }

    /// Returns once a drain is requested.
    async fn drain_requested(&self) {
        let mut requested = self.requested.subscribe();
        // The sender lives in `self`: the wait ends only on a request.
        let _ = requested.wait_for(Option::is_some).await;
    }

    /// Returns once `done` holds for the books.
    async fn released_until(&self, done: impl Fn(&Books<AbortHandle>) -> bool) {
        let mut releases = self.releases.subscribe();
        let _ = releases.wait_for(|_| done(&self.books)).await;
    }

    /// The drain, once requested: the listener's actions in its order, the wait for every
    /// connection until the deadline, the aborts after it (L3), the wait for those; then the
    /// report, for [`DrainHandle::drained`] too.
    async fn drain(
        &self,
        config: &ServerConfig,
        clock: StdClock,
        listening: &mut Option<TcpListener>,
    ) -> ServeReport {
        self.drain_requested().await;
        let drain_started = self.requested.borrow().unwrap_or_else(StdInstant::now);
        let books = &self.books;
        let deadline = books.begin_drain(config.drain_timeout, listening);
        let all_closed = self.released_until(|books| books.tracker().open() == 0);
        let finished = match deadline {
            Some(deadline) => tokio::time::timeout_at(timer_of(clock, deadline), all_closed)
                .await
                .is_ok(),
            None => {
                all_closed.await;
                true
            }
        };
        let mut outcome = DrainOutcome::Drained;
        if !finished {
            // Counted now: the aborts release them all.
            books.tracker().expire();
            outcome = books.tracker().outcome().unwrap_or(outcome);
            books.abort_stragglers(listening);
            // Each aborted connection is reset by whatever drives it, at once.
            self.released_until(|books| books.tracker().open() == 0)
                .await;
        }
        let report = books.report(outcome, drain_started);
        self.done.send_replace(Some(report));
        report
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("requested", &*self.requested.borrow())
            .field("open", &self.books.tracker().open())
            .finish_non_exhaustive()
    }
}

/// A TCP server whose listening socket follows the [`Listener`](crate::Listener) lifecycle and whose connections
/// each follow a [`Lifecycle`](crate::Lifecycle): the blocking adapter's `Server` on tokio, with
/// the same [`ServerConfig`] and [`ServeReport`].
///
/// [`serve`](Self::serve) runs the accept loop in the calling task and each connection's handler
/// in a task of its own (`tokio::spawn`). When the handler returns, the connection is closed
/// gracefully (or was closed by the handler). A failed accept (out of descriptors: `EMFILE`,
/// `ENFILE`) pauses accepting with the listener's backoff, a tokio timer, instead of spinning,
/// and accepting resumes by itself. A drain ([`DrainHandle::drain`]) stops accepting and closes
/// the listening socket at once, lets the open connections finish, and at the drain deadline
/// aborts those still open (rule L3): each one's task sees its abort signal, drops its handler's
/// future and resets the connection. `serve` returns when every connection is closed.
///
/// ```
/// use socket_lifecycle::tokio::{Connection, Server, ServerConfig};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// async fn echo(connection: &mut Connection) -> std::io::Result<()> {
///     let mut buffer = [0; 4096];
///     loop {
///         match connection.recv(&mut buffer).await? {
///             0 => break,
///             n => connection.send_all(&buffer[..n]).await?,
///         }
///     }
///     connection.shutdown_send()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::bind("127.0.0.1:0", ServerConfig::default()).await?;
/// let address = server.local_addr();
/// let drain = server.drain_handle();
/// let serving = tokio::spawn(server.serve(|connection| Box::pin(echo(connection)), |_| ()));
///
/// let mut client = tokio::net::TcpStream::connect(address).await?;
/// client.write_all(b"this is a test").await?;
/// client.shutdown().await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert_eq!(reply, "this is a test");
/// drop(client);
///
/// drain.drain();
/// let report = serving.await??;
/// assert_eq!(report.accepted, 1);
/// # Ok(())
/// # }
/// ```
pub struct Server {
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    config: ServerConfig,
    clock: StdClock,
    shared: Arc<Shared>,
    alive: Alive,
    observer: ObserverFactory,
    /// Whether the drain's own task runs, for a server whose connections another runs.
    drain_spawned: bool,
}

impl Server {
    /// Binds and listens on the first address `addrs` resolves to that can be bound
    /// (`SO_REUSEADDR` on Unix, so a restart does not wait for `TIME_WAIT`). Call it within a
    /// tokio runtime with I/O enabled.
    ///
    /// # Errors
    /// Resolving failed or gave no address; or no address could be bound (the port is in use:
    /// `EADDRINUSE`) or listened on: the last one's error, naming the address, with the OS
    /// error.
    pub async fn bind(addrs: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Self> {
        let mut last_error = None;
        for addr in tokio::net::lookup_host(addrs).await? {
            match sys::listen(addr, config.backlog) {
                Ok(socket) => {
                    socket.set_nonblocking(true)?;
                    return Self::from_tokio(TcpListener::from_std(socket.into())?, config);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")
        }))
    }

    /// A server on a listening socket the program already has (one handed over by the system
    /// at start, say). The socket is made non-blocking; `config.backlog` is not applied, the
    /// socket listens already. Call it within a tokio runtime with I/O enabled.
    ///
    /// # Errors
    /// The socket could not be made non-blocking or registered with the runtime, or has no
    /// local address.
    pub fn from_std(listener: std::net::TcpListener, config: ServerConfig) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Self::from_tokio(TcpListener::from_std(listener)?, config)
    }

    /// A server on a tokio listener the program already has.
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn from_tokio(listener: TcpListener, config: ServerConfig) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let clock = StdClock::new();
        Ok(Self {
            listener: Some(listener),
            local_addr,
            config,
            clock,
            shared: Shared::new(clock, &config),
            alive: Arc::new(watch::Sender::new(())),
            observer: Arc::new(default_observer),
            drain_spawned: false,
        })
    }

    /// Gives each connection [`accept`](Self::accept) returns an [`Observer`] made for its
    /// [`Peer`] (for [`serve`](Self::serve), its own argument does). Without it, a connection
    /// has none, or with the `tracing` feature a `TracingObserver`.
    #[must_use]
    pub fn with_observer<O: Observer + 'static>(
        mut self,
        observer: impl Fn(Peer) -> O + Send + Sync + 'static,
    ) -> Self {
        self.observer = Arc::new(move |peer| Box::new(observer(peer)));
        self
    }

    /// The address the server listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The clock the server and its connections share.
    pub fn clock(&self) -> StdClock {
        self.clock
    }

    /// A handle that starts the drain from anywhere (a Ctrl-C task, say), tells handlers that
    /// it began, and waits for its end.
    pub fn drain_handle(&self) -> DrainHandle {
        DrainHandle {
            shared: Arc::clone(&self.shared),
            _alive: Arc::clone(&self.alive),
        }
    }

    /// The next connection: accepted, counted, set up with the server's settings (its idle
    /// timeout, its observer), for a server that runs its connections itself. A failed accept
    /// for want of descriptors (`EMFILE`, `ENFILE`) pauses accepting with the listener's
    /// backoff, and at the connection cap ([`ServerConfig::max_connections`]) accepting waits
    /// for a connection to close (L4); neither is returned.
    ///
    /// A connection is counted from here to the end of its close, wherever that is finished:
    /// dropped after its send side was shut, as hyper leaves it, its lingering close goes on
    /// by itself (A1). A drain ([`DrainHandle::drain`]) stops accepting; at the drain deadline
    /// it aborts every connection still open (L3), and [`DrainHandle::drained`] returns once
    /// all are closed. Whoever drives a connection performs its abort, at once if it waits on
    /// the connection.
    ///
    /// hyper-util's server, with its graceful shutdown, on the crate's connections:
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http_body_util::Full;
    /// use hyper::body::Bytes;
    /// use hyper_util::rt::{TokioExecutor, TokioIo};
    /// use hyper_util::server::{conn::auto, graceful::GracefulShutdown};
    /// use socket_lifecycle::tokio::{Server, ServerConfig};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut server = Server::bind("127.0.0.1:0", ServerConfig::default()).await?;
    /// let address = server.local_addr();
    /// let drain = server.drain_handle();
    /// let on_drain = drain.clone();
    /// let serving = tokio::spawn(async move {
    ///     let hello = hyper::service::service_fn(|_request| async {
    ///         Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
    ///     });
    ///     let builder = auto::Builder::new(TokioExecutor::new());
    ///     let graceful = GracefulShutdown::new();
    ///     loop {
    ///         tokio::select! {
    ///             accepted = server.accept() => {
    ///                 let Ok((connection, _)) = accepted else { break };
    ///                 let io = TokioIo::new(connection);
    ///                 let served = builder.serve_connection_with_upgrades(io, hello).into_owned();
    ///                 tokio::spawn(graceful.watch(served));
    ///             }
    ///             () = on_drain.draining() => break,
    ///         }
    ///     }
    ///     drop(server); // the listening socket
    ///     // hyper ends each connection after its answer in progress; those still open at the
    ///     // drain deadline are aborted.
    ///     graceful.shutdown().await;
    /// });
    ///
    /// let mut client = tokio::net::TcpStream::connect(address).await?;
    /// client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await?;
    /// let mut answer = String::new();
    /// client.read_to_string(&mut answer).await?;
    /// assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("ok"));
    /// drop(client);
    ///
    /// drain.drain();
    /// serving.await?;
    /// // Every connection closed, lingering closes included.
    /// let report = drain.drained().await;
    /// assert_eq!((report.accepted, report.graceful), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// A drain has begun (kind [`io::ErrorKind::Other`]; every later call returns it at once,
    /// and the listening socket is closed); or `accept` failed in a way that will not pass (the
    /// listening socket itself is broken).
    pub async fn accept(&mut self) -> io::Result<(Connection, SocketAddr)> {
        self.spawn_drain();
        let observer = Arc::clone(&self.observer);
        self.next_connection(&|peer| observer(peer))
            .await?
            .ok_or_else(|| {
                io::Error::other("the server is draining: no more connections are accepted")
            })
    }

    /// Runs the drain in a task of its own, once: for connections this server does not run.
    fn spawn_drain(&mut self) {
        if std::mem::replace(&mut self.drain_spawned, true) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let mut alive = self.alive.subscribe();
        let config = self.config;
        let clock = self.clock;
        tokio::spawn(async move {
            tokio::select! {
                biased;
                () = shared.drain_requested() => {}
                // The server and every drain handle are gone, no drain asked for: none can be.
                _ = alive.changed() => return,
            }
            // The listening socket stays with the server, whose owner stops accepting on the
            // drain and drops it.
            shared.drain(&config, clock, &mut None).await;
        });
    }

    /// The next connection, or `None` once a drain is requested.
    async fn next_connection(
        &mut self,
        observer: &(impl Fn(Peer) -> Box<dyn Observer> + Sync),
    ) -> io::Result<Option<(Connection, SocketAddr)>> {
        let shared = &*self.shared;
        let books = &shared.books;
        let clock = self.clock;
        let config = self.config;
        loop {
            let Some(listener) = &self.listener else {
                return Ok(None);
            };
            if shared.is_draining() {
                // No more accepts (L1): the listening socket is closed now, not when its owner
                // drops the server, so that new clients are refused rather than held.
                self.listener = None;
                return Ok(None);
            }
            if books.at_cap() {
                // L4: the kernel's backlog holds new clients until a connection closes.
                let held = StdInstant::now();
                tokio::select! {
                    biased;
                    () = shared.drain_requested() => {}
                    () = shared.released_until(|books| !books.at_cap()) => {}
                }
                books.held_at_cap(held.elapsed());
                continue;
            }
            if let Some(resume) = books.paused() {
                // Paused after a failed accept: wait for the backoff deadline, or a drain.
                tokio::select! {
                    biased;
                    () = shared.drain_requested() => return Ok(None),
                    () = sleep_until(resume.map(|at| timer_of(clock, at))) => {}
                }
                books.resume();
                continue;
            }
            let accepted = tokio::select! {
                biased;
                () = shared.drain_requested() => return Ok(None),
                accepted = listener.accept() => accepted,
            };
            let (stream, addr) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    books.accept_failed(error)?;
                    continue;
                }
            };
            let Some(admission) = books.admit(addr) else {
                return Ok(None);
            };
            let peer = admission.peer;
            let connection = Connection::accepted_by_server(
                stream,
                config.connection,
                clock,
                observer(peer),
                |abort| books.serve(admission, abort),
            );
            // One that could not be set up as promised was reset, and released from the books
            // with its close.
            if let Ok(mut connection) = connection {
                connection.set_idle_timeout(config.idle_timeout);
                return Ok(Some((connection, addr)));
            }
        }
    }

    /// Serves until a drain is over: accepts, runs `handler` on each connection in a task of its
    /// own, then closes the connection gracefully if the handler did not close it. `observer`
    /// gives each connection its [`Observer`].
    ///
    /// A handler's error is the connection's own affair: the connection is closed (gracefully
    /// if it is still open) and the server goes on. So is a handler's panic: the connection is
    /// then dropped, and closed as a dropped one is (A1). A handler that should end early on a
    /// drain watches a [`DrainHandle`] ([`draining`](DrainHandle::draining)).
    ///
    /// # Errors
    /// `accept` failed in a way that will not pass (the listening socket itself is broken); the
    /// open connections are drained first.
    pub async fn serve<H, O, F>(mut self, handler: H, observer: F) -> io::Result<ServeReport>
    where
        H: for<'a> Fn(&'a mut Connection) -> HandlerFuture<'a> + Send + Sync + 'static,
        O: Observer + 'static,
        F: Fn(Peer) -> O + Send + Sync,
    {
        let handler = Arc::new(handler);
        let observer = move |peer| -> Box<dyn Observer> { Box::new(observer(peer)) };
        let mut tasks = JoinSet::new();
        let mut fatal = None;
        loop {
            while tasks.try_join_next().is_some() {}
            match self.next_connection(&observer).await {
                Ok(Some((connection, _))) => {
                    let handler = Arc::clone(&handler);
                    tasks.spawn(serve_connection(connection, handler));
                }
                Ok(None) => break,
                Err(error) => {
                    fatal = Some(error);
                    // The drain follows, as if asked for.
                    self.drain_handle().drain();
                    break;
                }
            }
        }
        let mut listening = self.listener.take();
        let report = if self.drain_spawned {
            // An `accept` before `serve` started the drain's own task: it runs this drain.
            drop(listening);
            self.drain_handle().drained().await
        } else {
            self.shared
                .drain(&self.config, self.clock, &mut listening)
                .await
        };
        // Each task's connection is closed by now; a handler that goes on without it (awaiting
        // something else) is given until the drain deadline, then dropped.
        let deadline = self
            .shared
            .requested
            .borrow()
            .and_then(|began| began.checked_add(self.config.drain_timeout))
            .map(tokio::time::Instant::from_std);
        let joined = async { while tasks.join_next().await.is_some() {} };
        let in_time = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, joined).await.is_ok(),
            None => {
                joined.await;
                true
            }
        };
        if !in_time {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        match fatal {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }
}

/// One connection's task: the handler, cut short by an abort, then the close it did not make.
///
/// Not an `async fn`: the future of one copies its arguments into locals of its own, and
/// would hold the connection twice. The `async` block uses the connection it captured in place.
/// It keeps one wait at a time: the handler's (with the abort), then the close, which every
/// way out of the handler shares.
#[allow(clippy::manual_async_fn)] // On purpose: see above.
fn serve_connection<H>(
    mut connection: Connection,
    handler: Arc<H>,
) -> impl Future<Output = ()> + Send + 'static
where
    H: for<'a> Fn(&'a mut Connection) -> HandlerFuture<'a> + Send + Sync + 'static,
{
    async move {
        let abort = connection.abort_handle();
        let handled = handled_unless_aborted(handler(&mut connection), abort).await;
        if connection.close_reason().is_none() {
            // An abort asked for is performed by the close before anything else, under its own
            // reason (the drain's, at its deadline), with no shutdown (C6). Without one, a
            // handler that panicked let go of its connection: what a drop means (A1) is done
            // here, in the task the drain waits for; else the graceful close.
            if handled.is_err() && !connection.abort_requested() {
                connection.abandon();
            }
            let _ = poll_fn(|cx| connection.poll_close(cx)).await;
        }
        if let Err(panic) = handled {
            // The task ends as the handler did; the connection is closed and counted by now.
            drop(connection);
            panic::resume_unwind(panic);
        }
    }
}

/// A handler's future, polled until it ends or an abort is asked for (the abort first, as a
/// `biased` select); a panic is caught, so that the connection is closed after it too. The
/// future owns the handler's: the task holds one or the other of its two waits, never both.
fn handled_unless_aborted<'a>(
    mut handling: HandlerFuture<'a>,
    abort: AbortHandle,
) -> impl Future<Output = Result<(), Box<dyn Any + Send>>> + 'a {
    poll_fn(move |cx| {
        if abort.poll_requested(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        match panic::catch_unwind(AssertUnwindSafe(|| handling.as_mut().poll(cx))) {
            Ok(Poll::Ready(_)) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
}

/// The accept half of the server for `axum::serve` (feature `axum`): each connection is a
/// [`Connection`], with the lingering close, a close reason and the drain.
///
/// ```no_run
/// use socket_lifecycle::tokio::{Server, ServerConfig};
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
///
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
/// let server = Server::bind("127.0.0.1:3000", ServerConfig::default()).await?;
/// let drain = server.drain_handle();
/// let on_signal = drain.clone();
/// axum::serve(server, app)
///     .with_graceful_shutdown(async move {
///         let _ = tokio::signal::ctrl_c().await;
///         // axum stops accepting and asks each connection to finish; at the drain deadline,
///         // those still open are aborted, and `axum::serve` returns.
///         on_signal.drain();
///     })
///     .await?;
/// // Connections hyper let go of may still be in their lingering close.
/// let report = drain.drained().await;
/// println!("{} served, {} aborted by the drain", report.accepted, report.aborted_by_drain);
/// # Ok(())
/// # }
/// ```
///
/// Give `axum::serve` its `with_graceful_shutdown`, ending when the drain begins (as above, or
/// `async move { handle.draining().await }`): without it, a drain stops the accepts and aborts
/// the connections at its deadline, but `axum::serve` itself never returns.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum::serve::Listener for Server {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            match Server::accept(self).await {
                Ok(accepted) => return accepted,
                // axum stops asking once its shutdown signal has come; until then, nothing.
                Err(_) if self.shared.is_draining() => std::future::pending().await,
                // The listening socket is broken: the listener's backoff, and again.
                Err(_) => tokio::time::sleep(self.config.listener.accept_backoff_max()).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
