//! A blocking server on the listener lifecycle: an accept loop, a thread per connection, and a
//! graceful drain.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use socket2::Socket;

use super::wait;
use super::{AbortHandle, Connection, Observer, Peer, ServeReport, ServerConfig};
use crate::adapter::{Books, Served, sys};
use crate::{DrainOutcome, StdClock};

/// How long the drain's wake-up connection may take; it only has to reach our own listener.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `accept` waits before the loop looks for a drain again, in case the drain's wake-up
/// connection could not be made (no descriptor left). Where `accept` ignores `SO_RCVTIMEO`
/// (outside Linux, mostly), only the wake-up connection ends the wait.
const ACCEPT_RECHECK: Duration = Duration::from_secs(1);

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

impl DrainHandle {
    /// Whether a drain has begun: a handler that checks it between messages can finish the
    /// one it is on and shut its send side, a graceful end, instead of being aborted at the
    /// drain deadline.
    pub fn is_draining(&self) -> bool {
        self.control.lock().is_some()
    }
}

/// When the drain was requested, shared by the handles and the accept loop.
#[derive(Debug, Default)]
struct Control {
    requested: Mutex<Option<StdInstant>>,
    changed: Condvar,
    /// Whether the accept loop waits at the cap, changed under the lock: only then does a
    /// connection's release wake it (a `notify_all` is a system call even with no one waiting).
    at_cap: AtomicBool,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, Option<StdInstant>> {
        self.requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A TCP server whose listening socket follows the [`Listener`](crate::Listener) lifecycle and whose connections
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
/// let server = Server::bind("127.0.0.1:0", ServerConfig::default())?;
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
    /// Binds and listens on the first address `addrs` resolves to that can be bound
    /// (`SO_REUSEADDR` on Unix, so a restart does not wait for `TIME_WAIT`).
    ///
    /// # Errors
    /// Resolving failed or gave no address; or no address could be bound (the port is in use:
    /// `EADDRINUSE`) or listened on: the last one's error, naming the address, with the OS
    /// error.
    pub fn bind(addrs: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Self> {
        let mut last_error = None;
        for addr in addrs.to_socket_addrs()? {
            match sys::listen(addr, config.backlog) {
                Ok(socket) => return Self::from_socket(socket, config),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")
        }))
    }

    /// A server on a listening socket the program already has (one handed over by the system
    /// at start, say); `config.backlog` is not applied, the socket listens already.
    ///
    /// # Errors
    /// The socket could not be made blocking, or has no internet address.
    pub fn from_std(listener: std::net::TcpListener, config: ServerConfig) -> io::Result<Self> {
        // One handed over non-blocking (by an async runtime, say) would make the accept loop
        // spin on `EAGAIN`.
        listener.set_nonblocking(false)?;
        Self::from_socket(Socket::from(listener), config)
    }

    fn from_socket(socket: Socket, config: ServerConfig) -> io::Result<Self> {
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
    /// straggler is performed by that thread, in its call on the connection (a `recv` waiting
    /// on a silent peer is woken for it, a `send` waiting on a peer that reads nothing looks
    /// for it every 50 ms, on Windows only at the idle timeout) or at its next one: a handler that neither calls nor returns, one
    /// that sleeps for ever say, keeps `serve` waiting (A2).
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
        let released = Arc::clone(&control);
        let books = Books::new(clock, &config, move || {
            // Under the lock, so that a wait at the cap, which checks the count under it, is
            // either before its check or already waiting.
            let waiting = {
                let _requested = released.lock();
                released.at_cap.load(Ordering::Relaxed)
            };
            if waiting {
                released.changed.notify_all();
            }
        });
        let handler = Arc::new(handler);
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        // Failing, it leaves `accept` unbounded, as it is where the option is ignored.
        let _ = socket.set_read_timeout(Some(ACCEPT_RECHECK));
        let mut listening = Some(socket);
        let mut fatal = None;

        while let Some(socket) = &listening {
            if control.lock().is_some() {
                break;
            }
            if books.at_cap() {
                // L4: the kernel's backlog holds new clients until a connection closes.
                let held = StdInstant::now();
                let mut requested = control.lock();
                control.at_cap.store(true, Ordering::Relaxed);
                while requested.is_none() && books.at_cap() {
                    requested = control
                        .changed
                        .wait(requested)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                control.at_cap.store(false, Ordering::Relaxed);
                drop(requested);
                books.held_at_cap(held.elapsed());
                continue;
            }
            if let Some(resume) = books.paused() {
                // Paused after a failed accept: wait for the backoff deadline, or a drain.
                let wait = resume.map_or(Duration::ZERO, |at| clock.until(at));
                let requested = control.lock();
                if requested.is_none() && !wait.is_zero() {
                    let _ = control.changed.wait_timeout(requested, wait);
                }
                books.resume();
                continue;
            }
            match sys::retry_interrupted(|| socket.accept()) {
                Ok((stream, addr)) => {
                    if control.lock().is_some() {
                        break; // our own wake-up, or a client that came as the drain began
                    }
                    let addr = addr
                        .as_socket()
                        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    let Some(admission) = books.admit(addr) else {
                        break;
                    };
                    let peer = admission.peer;
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
                    let Ok(connection) = connection else {
                        // Dropped, and so reset: it could not be set up as promised.
                        books.not_served(admission);
                        continue;
                    };
                    let served = books.serve(admission, connection.abort_handle());
                    let handler = Arc::clone(&handler);
                    // If the thread cannot be made, the closure is dropped with the connection
                    // (a reset) and `served` (counted closed).
                    let spawned = std::thread::Builder::new()
                        .name(format!("connection {}", peer.id))
                        .spawn(move || serve_connection(connection, &*handler, served));
                    if let Ok(worker) = spawned {
                        workers.push(worker);
                    }
                    workers.retain(|worker| !worker.is_finished());
                }
                Err(_) if control.lock().is_some() => break,
                // Nobody came within the recheck: look for a drain again.
                Err(error) if wait::is_timeout(&error) => {}
                Err(error) => {
                    if let Err(error) = books.accept_failed(error) {
                        fatal = Some(error);
                        break;
                    }
                }
            }
        }

        // The drain: the listener's actions, in its order.
        let drain_started = control.lock().unwrap_or_else(StdInstant::now);
        let deadline = books.begin_drain(config.drain_timeout, &mut listening);
        let drain_wait = deadline.map_or(Duration::ZERO, |deadline| clock.until(deadline));
        let outcome = books.tracker().wait_timeout(drain_wait);
        if let DrainOutcome::Expired { .. } = outcome {
            books.abort_stragglers(&mut listening);
        }
        for worker in workers {
            let _ = worker.join();
        }
        let report = books.report(outcome, drain_started);
        match fatal {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }
}

/// One connection's thread: the handler, then the close it did not make.
fn serve_connection(
    connection: Connection,
    handler: &(dyn Fn(&mut Connection) -> io::Result<()> + Send + Sync),
    served: Served<AbortHandle>,
) {
    // Moved in first, so dropped after the connection: counted closed once its socket is
    // released.
    let served = served;
    let mut connection = connection;
    let handled = panic::catch_unwind(AssertUnwindSafe(|| handler(&mut connection)));
    let reason = match (connection.close_reason(), &handled) {
        (Some(reason), _) => Some(reason),
        // A handler that panicked let go of its connection: what a drop means (A1) is done
        // here, so that the server counts the connection until its close ends (the drain too).
        (None, Err(_)) => connection.close_as_dropped(),
        (None, Ok(_)) => connection.close().ok(),
    };
    served.books().closed(reason);
    if let Err(panic) = handled {
        // The thread ends as the handler did; the connection is closed and counted by now.
        drop(connection);
        drop(served);
        panic::resume_unwind(panic);
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
