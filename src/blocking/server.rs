//! A blocking server on the listener lifecycle: an accept loop, a thread per connection, and a
//! graceful drain.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use socket2::{Domain, Protocol, Socket, Type};

use super::{AbortHandle, Connection, Observer, sys};
use crate::{
    CloseReason, Config, DrainOutcome, DrainTracker, IoErrorKind, Listener, ListenerAction,
    ListenerConfig, StdClock,
};

/// How long the drain's wake-up connection may take; it only has to reach our own listener.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `accept` waits before the loop looks for a drain again, in case the drain's wake-up
/// connection could not be made (no descriptor left). Where `accept` ignores `SO_RCVTIMEO`
/// (outside Linux, mostly), only the wake-up connection ends the wait.
const ACCEPT_RECHECK: Duration = Duration::from_secs(1);

/// Everything a [`Server`] runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Each connection's settings (its linger deadlines).
    pub connection: Config,
    /// The accept backoff after a failed accept (out of descriptors, typically).
    pub listener: ListenerConfig,
    /// Each connection's [idle timeout](Connection::set_idle_timeout) (`None`: none).
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

/// What a server did, once [`serve`](Server::serve) has returned.
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

/// Starts a drain from any thread: see [`Server::drain_handle`].
#[derive(Clone, Debug)]
pub struct DrainHandle {
    control: Arc<Control>,
    wake_addr: SocketAddr,
}

impl DrainHandle {
    /// Starts the drain: no more accepts; open connections have until the drain timeout to
    /// finish, and are aborted then. Returns at once; [`Server::serve`] returns when the drain
    /// is over. Repeating it changes nothing.
    pub fn drain(&self) {
        let first = {
            let mut requested = self.control.lock();
            let first = !requested.is_some();
            requested.get_or_insert_with(StdInstant::now);
            first
        };
        self.control.changed.notify_all();
        if first {
            // The accept loop may be blocked in `accept`: a connection of our own wakes it. If
            // it cannot connect, the loop is paused (out of descriptors) and the notification
            // above reaches it.
            let _ = TcpStream::connect_timeout(&self.wake_addr, WAKE_TIMEOUT);
        }
    }
}

/// When the drain was requested, shared by the handles and the accept loop.
#[derive(Debug, Default)]
struct Control {
    requested: Mutex<Option<StdInstant>>,
    changed: Condvar,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, Option<StdInstant>> {
        self.requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A TCP server whose listening socket follows the [`Listener`] lifecycle and whose connections
/// each follow a [`Lifecycle`](crate::Lifecycle): the seed's server, for many clients.
///
/// [`serve`](Self::serve) runs the accept loop on the calling thread and each connection's
/// handler on a thread of its own. When the handler returns, the connection is closed
/// gracefully (or was closed by the handler). A failed accept (out of descriptors: `EMFILE`,
/// `ENFILE`) pauses accepting with the listener's backoff instead of spinning, and accepting
/// resumes by itself. A drain ([`DrainHandle::drain`]) stops accepting and closes the listening
/// socket at once, lets the open connections finish, and aborts those still open at the drain
/// deadline (rule L3); `serve` returns when every connection is closed.
///
/// ```
/// use std::io::{Read, Write};
/// use socket_lifecycle::blocking::{Server, ServerConfig};
///
/// let server = Server::bind("127.0.0.1:0".parse()?, ServerConfig::default())?;
/// let address = server.local_addr();
/// let drain = server.drain_handle();
/// let serving = std::thread::spawn(move || {
///     server.serve(
///         |connection| {
///             // Echo until the client's end of stream, then shut our send side.
///             let mut buffer = [0; 4096];
///             loop {
///                 match connection.recv(&mut buffer)? {
///                     0 => break,
///                     n => connection.send_all(&buffer[..n])?,
///                 }
///             }
///             connection.shutdown_send()
///         },
///         |_| (),
///     )
/// });
///
/// let mut client = std::net::TcpStream::connect(address)?;
/// client.write_all(b"this is a test")?;
/// client.shutdown(std::net::Shutdown::Write)?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "this is a test");
/// drop(client);
///
/// drain.drain();
/// let report = serving.join().expect("the server returns")?;
/// assert_eq!(report.accepted, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    socket: Socket,
    local_addr: SocketAddr,
    config: ServerConfig,
    clock: StdClock,
    control: Arc<Control>,
}

impl Server {
    /// Binds and listens on `addr` (`SO_REUSEADDR` on Unix, so a restart does not wait for
    /// `TIME_WAIT`).
    ///
    /// # Errors
    /// The socket could not be made, bound (the port is in use: `EADDRINUSE`) or listen; the
    /// message names the address and the OS error.
    pub fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<Self> {
        let listen = || -> io::Result<Socket> {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            #[cfg(unix)]
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(config.backlog)?;
            Ok(socket)
        };
        let socket = listen().map_err(|error| {
            io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
        })?;
        let local_addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an internet address"))?;
        Ok(Self {
            socket,
            local_addr,
            config,
            clock: StdClock::new(),
            control: Arc::default(),
        })
    }

    /// The address the server listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The clock the server and its connections share.
    pub fn clock(&self) -> StdClock {
        self.clock
    }

    /// A handle that starts the drain from another thread (a Ctrl-C handler, say).
    pub fn drain_handle(&self) -> DrainHandle {
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        DrainHandle {
            control: Arc::clone(&self.control),
            wake_addr: SocketAddr::new(ip, self.local_addr.port()),
        }
    }

    /// Serves until a drain is over: accepts, runs `handler` on each connection in a thread of
    /// its own, then closes the connection gracefully if the handler did not close it.
    /// `observer` gives each connection its [`Observer`].
    ///
    /// A handler's error is the connection's own affair: the connection is closed (gracefully
    /// if it is still open) and the server goes on.
    ///
    /// `serve` returns once every connection's thread has finished. The drain's abort of a
    /// straggler is performed by that thread, at its next call on the connection (a `recv`
    /// waiting on a silent peer is woken for it): a handler that neither calls nor returns,
    /// one that sleeps for ever say, keeps `serve` waiting.
    ///
    /// # Errors
    /// `accept` failed in a way that will not pass (the listening socket itself is broken); the
    /// open connections are drained first.
    pub fn serve<H, O, F>(self, handler: H, observer: F) -> io::Result<ServeReport>
    where
        H: Fn(&mut Connection) -> io::Result<()> + Send + Sync + 'static,
        O: Observer + 'static,
        F: Fn(Peer) -> O,
    {
        let Self {
            socket,
            config,
            clock,
            control,
            ..
        } = self;
        let shared = Arc::new(Shared {
            listener: Mutex::new(Listener::new(clock.now(), config.listener)),
            registry: Mutex::new(HashMap::new()),
            tracker: DrainTracker::new(),
            graceful: AtomicU64::new(0),
            clock,
        });
        let handler = Arc::new(handler);
        let mut report = ServeReport::default();
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        // Failing, it leaves `accept` unbounded, as it is where the option is ignored.
        let _ = socket.set_read_timeout(Some(ACCEPT_RECHECK));
        let mut listening = Some(socket);
        let mut fatal = None;

        while let Some(socket) = &listening {
            if control.lock().is_some() {
                break;
            }
            if !shared.lock_listener().may_accept() {
                // Paused after a failed accept: wait for the backoff deadline, or a drain.
                let resume = shared.lock_listener().poll_timeout();
                let wait = resume.map_or(Duration::ZERO, |at| clock.until(at));
                let requested = control.lock();
                if requested.is_none() && !wait.is_zero() {
                    let _ = control.changed.wait_timeout(requested, wait);
                }
                let _ = shared.lock_listener().handle_timeout(clock.now());
                continue;
            }
            match sys::retry_interrupted(|| socket.accept()) {
                Ok((stream, addr)) => {
                    if control.lock().is_some() {
                        break; // our own wake-up, or a client that came as the drain began
                    }
                    // Refused only after a stop, and the loop has stopped before any.
                    let _ = shared.lock_listener().handle_accepted(clock.now());
                    let Some(registration) = shared.tracker.register() else {
                        let _ = shared.lock_listener().handle_connection_closed(clock.now());
                        break;
                    };
                    report.accepted = report.accepted.saturating_add(1);
                    let peer = Peer {
                        id: report.accepted,
                        addr: addr
                            .as_socket()
                            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                    };
                    let connection = Connection::accepted_blocking(
                        stream,
                        config.connection,
                        clock,
                        observer(peer),
                    )
                    .and_then(|mut connection| {
                        // An accepted socket has its listener's send timeout, none:
                        // only a timeout to set is worth a system call.
                        if config.idle_timeout.is_some() {
                            connection.set_idle_timeout(config.idle_timeout)?;
                        }
                        Ok(connection)
                    });
                    let connection = match connection {
                        Ok(connection) => connection,
                        Err(_) => {
                            // Dropped, and so reset: it could not be set up as promised.
                            let _ = shared.lock_listener().handle_connection_closed(clock.now());
                            drop(registration);
                            continue;
                        }
                    };
                    shared
                        .lock_registry()
                        .insert(peer.id, connection.abort_handle());
                    let worker_shared = Arc::clone(&shared);
                    let handler = Arc::clone(&handler);
                    let spawned = std::thread::Builder::new()
                        .name(format!("connection {}", peer.id))
                        .spawn(move || {
                            serve_connection(connection, &*handler, &worker_shared, peer.id);
                            drop(registration);
                        });
                    match spawned {
                        Ok(worker) => workers.push(worker),
                        // The closure and the connection in it were dropped: it was reset and
                        // its registration released. Count it closed.
                        Err(_) => {
                            shared.lock_registry().remove(&peer.id);
                            let _ = shared.lock_listener().handle_connection_closed(clock.now());
                        }
                    }
                    workers.retain(|worker| !worker.is_finished());
                }
                Err(_) if control.lock().is_some() => break,
                // Nobody came within the recheck: look for a drain again.
                Err(error) if sys::is_read_timeout(&error) => {}
                Err(error) => {
                    let kind = IoErrorKind::of(&error);
                    if sys::is_fatal_accept_error(&error) {
                        fatal = Some(error);
                        break;
                    }
                    report.accept_failures = report.accept_failures.saturating_add(1);
                    let _ = shared
                        .lock_listener()
                        .handle_accept_failed(clock.now(), kind);
                }
            }
        }

        // The drain: the listener's actions, in its order.
        let drain_started = control.lock().unwrap_or_else(StdInstant::now);
        let _ = shared
            .lock_listener()
            .drain(clock.now(), config.drain_timeout);
        perform_listener_actions(&shared, &mut listening);
        // A statement of its own: the listener's lock must be released before the wait, or a
        // connection that closes during the drain blocks on it and is counted open until the
        // deadline.
        let drain_wait = shared
            .lock_listener()
            .poll_timeout()
            .map_or(Duration::ZERO, |deadline| clock.until(deadline));
        let outcome = shared.tracker.wait_timeout(drain_wait);
        if let DrainOutcome::Expired { .. } = outcome {
            let _ = shared.lock_listener().handle_timeout(clock.now());
            report.aborted_by_drain = perform_listener_actions(&shared, &mut listening);
        }
        for worker in workers {
            let _ = worker.join();
        }
        report.drain = Some(outcome);
        report.drain_time = drain_started.elapsed();
        report.graceful = shared.graceful.load(Ordering::SeqCst);
        match fatal {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }
}

/// What the accept loop and the connection threads share.
struct Shared {
    listener: Mutex<crate::Listener>,
    registry: Mutex<HashMap<u64, AbortHandle>>,
    tracker: DrainTracker,
    graceful: AtomicU64,
    clock: StdClock,
}

impl Shared {
    fn lock_listener(&self) -> MutexGuard<'_, Listener> {
        self.listener.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_registry(&self) -> MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's thread: the handler, then the close it did not make.
fn serve_connection(
    connection: Connection,
    handler: &(dyn Fn(&mut Connection) -> io::Result<()> + Send + Sync),
    shared: &Shared,
    id: u64,
) {
    // Counts the connection closed even if the handler panics; declared before the connection,
    // so it goes after it, once the socket is released.
    let _closed = Released { shared, id };
    let mut connection = connection;
    let _ = handler(&mut connection);
    let reason = match connection.close_reason() {
        Some(reason) => Some(reason),
        None => connection.close().ok(),
    };
    if reason == Some(CloseReason::Graceful) {
        shared.graceful.fetch_add(1, Ordering::SeqCst);
    }
}

/// A connection's thread is done with it: the server's books count it closed.
struct Released<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Released<'_> {
    fn drop(&mut self) {
        self.shared.lock_registry().remove(&self.id);
        let _ = self
            .shared
            .lock_listener()
            .handle_connection_closed(self.shared.clock.now());
    }
}

/// Performs the listener's pending actions; returns how many connections it aborted.
fn perform_listener_actions(shared: &Shared, listening: &mut Option<Socket>) -> u64 {
    let mut aborted = 0_u64;
    loop {
        let action = shared.lock_listener().poll_action();
        match action {
            None => return aborted,
            // The accept loop is out of `accept` by now: the drain handle woke it.
            Some(ListenerAction::StopAccepting) => {}
            Some(ListenerAction::Close) => drop(listening.take()),
            Some(ListenerAction::AbortConnections { .. }) => {
                for handle in shared.lock_registry().values() {
                    handle.abort();
                    aborted = aborted.saturating_add(1);
                }
            }
        }
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
