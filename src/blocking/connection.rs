//! A connection over a blocking `socket2` socket, driven through the core.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use super::wait::{self, ReadTimeout, ReaderWaker, WriteTimeout};
use super::{AbortHandle, Connector, Observer};
use crate::adapter::{CloseWait, DISCARD_CHUNK, Driver, Endpoint, Received, Signal, Steps, sys};
use crate::{CloseReason, Config, Lifecycle, StdClock};

/// One TCP connection whose every system call the core decides: the blocking adapter.
///
/// It owns the socket and a [`Lifecycle`]. Before each call it asks the core whether the call is
/// permitted; after it, it reports what the operating system said; it performs exactly the
/// actions the core emits. The socket is released (closed) exactly once, when the core emits
/// `Close`.
///
/// It is a standard stream, [`Read`](std::io::Read) and [`Write`](std::io::Write): reading is
/// [`recv`](Self::recv), writing [`send`](Self::send); [`shutdown_send`](Self::shutdown_send)
/// ends the stream.
///
/// Dropped, it follows rule A1 (the crate docs' "What a drop means"): with its send side open,
/// it is reset at once, with [`CloseReason::Abandoned`]; after its send side was shut, its
/// lingering close goes on, on a thread of its own.
///
/// - [`send`](Self::send) uses `MSG_NOSIGNAL`: a peer that went away is an `EPIPE` error, never a
///   `SIGPIPE` that kills the process. Calls interrupted by a signal (`EINTR`) are repeated.
/// - [`close`](Self::close) is the graceful close of the contract: shut the send side, read and
///   discard until the peer's end of stream, then close, bounded by the linger deadlines of the
///   [`Config`] (the read timeouts come from [`Lifecycle::poll_timeout`]).
/// - [`abort`](Self::abort) resets: linger zero, then close.
///
/// # Example: the seed's client
///
/// ```
/// use std::io::{Read, Write};
/// use socket_lifecycle::{CloseReason, Config, blocking::Connection};
///
/// // A peer that echoes one message and closes (a plain std server).
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let address = listener.local_addr()?;
/// let server = std::thread::spawn(move || -> std::io::Result<()> {
///     let (mut stream, _) = listener.accept()?;
///     let mut message = Vec::new();
///     stream.read_to_end(&mut message)?;
///     stream.write_all(&message)?;
///     Ok(())
/// });
///
/// let mut connection = Connection::connect(address, Config::default())?;
/// connection.send_all(b"this is a test")?;
/// connection.shutdown_send()?; // nothing more to send; receiving goes on
/// let mut reply = Vec::new();
/// let mut buffer = [0; 64];
/// loop {
///     match connection.recv(&mut buffer)? {
///         0 => break, // the peer's end of stream
///         n => reply.extend_from_slice(&buffer[..n]),
///     }
/// }
/// assert_eq!(reply, b"this is a test");
/// assert_eq!(connection.close()?, CloseReason::Graceful);
/// server.join().expect("the server returns")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Connection {
    endpoint: Endpoint<Arc<Socket>, ReaderWaker>,
    /// The socket's read and write timeouts as last set, so that an unchanged one is not set
    /// again.
    read_timeout: ReadTimeout,
    write_timeout: WriteTimeout,
}

impl Connection {
    /// Connects to the addresses `addrs` resolves to, in order, with the default settings of a
    /// [`Connector`].
    ///
    /// # Errors
    /// Resolving failed or gave no address, or every attempt failed: the error of the last
    /// attempt, naming its address, with the OS error code.
    pub fn connect(addrs: impl std::net::ToSocketAddrs, config: Config) -> io::Result<Self> {
        Connector::new(config).connect(addrs)
    }

    /// A connection `accept` returned (a `socket2::Socket` or a `std::net::TcpStream`): established,
    /// both directions open. `clock` is the server's, so that all its connections share one time.
    ///
    /// # Errors
    /// Preparing the socket failed: putting it in blocking mode, or setting `SO_NOSIGPIPE`
    /// where that is needed; or no descriptor was left for the process's stand-in socket (see
    /// `AsFd` below), made with its first connection: the connection is then reset.
    pub fn accepted(
        socket: impl Into<Socket>,
        config: Config,
        clock: StdClock,
        observer: impl Observer + 'static,
    ) -> io::Result<Self> {
        let socket = socket.into();
        wait::prepare(&socket)?;
        Self::established(socket, config, clock, observer)
    }

    /// [`accepted`](Self::accepted) with the defaults: [`Config::default`], a clock of its own
    /// and no observer. For a server that is not this crate's [`Server`](super::Server), which
    /// passes its own settings, clock and observer.
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use socket_lifecycle::{CloseReason, blocking::Connection};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// let (stream, _) = listener.accept()?;
    /// let mut connection = Connection::from_accepted(stream)?;
    /// drop(client); // the peer's end of stream
    /// assert_eq!(connection.recv(&mut [0; 16])?, 0);
    /// assert_eq!(connection.close()?, CloseReason::Graceful);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`accepted`](Self::accepted).
    pub fn from_accepted(socket: impl Into<Socket>) -> io::Result<Self> {
        Self::accepted(socket, Config::default(), StdClock::new(), ())
    }

    /// [`accepted`](Self::accepted), for a socket known to be in blocking mode: one the
    /// server's own blocking listener accepted. It skips the mode's `fcntl`.
    pub(crate) fn accepted_blocking(
        socket: Socket,
        config: Config,
        clock: StdClock,
        observer: impl Observer + 'static,
    ) -> io::Result<Self> {
        sys::prepare_no_signal(&socket)?;
        Self::established(socket, config, clock, observer)
    }

    fn established(
        socket: Socket,
        config: Config,
        clock: StdClock,
        observer: impl Observer + 'static,
    ) -> io::Result<Self> {
        let lifecycle = Lifecycle::accepted(clock.now(), config);
        Self::from_parts(socket, Driver::new(lifecycle, clock, Box::new(observer)))
    }

    pub(crate) fn from_parts(socket: Socket, driver: Driver) -> io::Result<Self> {
        let socket = Arc::new(socket);
        let signal = Arc::new(Signal::new(ReaderWaker(Arc::downgrade(&socket))));
        let endpoint = Endpoint::new(socket, driver, signal, finish_on_a_thread)?;
        Ok(Self::from_endpoint(endpoint))
    }

    pub(crate) fn from_endpoint(endpoint: Endpoint<Arc<Socket>, ReaderWaker>) -> Self {
        Self {
            endpoint,
            read_timeout: ReadTimeout::default(),
            write_timeout: WriteTimeout::default(),
        }
    }

    /// Bounds how long [`recv`](Self::recv) waits for a byte, and [`send`](Self::send) for the peer
    /// to take one, while the connection is open (`None`: for ever, the default). A `recv` that
    /// waits longer returns an error of kind [`io::ErrorKind::TimedOut`] and leaves the connection
    /// as it was, for the application to close; a `send` that waits longer fails the connection.
    /// A closing connection is bounded by the linger deadlines instead.
    ///
    /// # Errors
    /// Setting the socket's send timeout failed.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.endpoint
            .set_idle_timeout(timeout.filter(|t| !t.is_zero()));
        Ok(())
    }

    /// The [idle timeout](Self::set_idle_timeout).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.endpoint.idle_timeout()
    }

    /// Receives into `buf`: the byte count, or 0 once the peer's end of stream has come (or for
    /// an empty `buf`).
    ///
    /// # Errors
    /// - [`io::ErrorKind::TimedOut`] if the idle timeout passed first: the connection is unchanged.
    /// - The OS error that ended the connection (a reset, say): it is closed, its socket released.
    /// - Once closed, the error that closed it, or [`io::ErrorKind::NotConnected`].
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        wait::recv(&mut self.endpoint, buf, &mut self.read_timeout)
    }

    /// Sends as much of `buf` as the kernel takes now, and returns how much that was.
    ///
    /// # Errors
    /// - [`io::ErrorKind::InvalidInput`] once the send side was shut (misuse; nothing changes).
    /// - The OS error that ended the connection (`EPIPE` once the peer is gone): it is closed.
    /// - Once closed, the error that closed it, or [`io::ErrorKind::NotConnected`].
    pub fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        wait::send(&mut self.endpoint, buf, &mut self.write_timeout)
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        wait::send_all(&mut self.endpoint, buf, &mut self.write_timeout)
    }

    /// Shuts the send side (`shutdown(Write)`): the peer reads end of stream after everything
    /// sent so far. Receiving goes on. Repeating it changes nothing.
    ///
    /// # Errors
    /// The OS error that ended the connection; once closed, the error that closed it.
    pub fn shutdown_send(&mut self) -> io::Result<()> {
        self.endpoint.shutdown_send()
    }

    /// Closes gracefully and returns why the connection ended: shuts the send side, reads and
    /// discards until the peer's end of stream, then closes. Bounded by the linger deadlines:
    /// a peer that never ends its stream is closed at the deadline
    /// ([`CloseReason::LingerTimeout`]). Closing a closed connection returns its reason again.
    ///
    /// # Errors
    /// The OS error that ended the connection, when one did (a reset, say; the reason is in
    /// [`close_reason`](Self::close_reason)). The socket is released in every case.
    pub fn close(&mut self) -> io::Result<CloseReason> {
        let mut discard = [0_u8; DISCARD_CHUNK];
        self.endpoint.begin_close();
        while let Some(wait) = self.endpoint.next_close_wait() {
            let clock = self.endpoint.clock();
            match wait {
                CloseWait::Discard(deadline) => {
                    let received = match self.endpoint.socket() {
                        Some(socket) => wait::recv_until_raised(
                            socket,
                            &mut discard,
                            deadline.map(|deadline| clock.until(deadline)),
                            &mut self.read_timeout,
                            self.endpoint.signal(),
                        ),
                        None => Received::Raised,
                    };
                    self.endpoint.after_discard(received);
                }
                CloseWait::Pause(until) => {
                    wait::pause_until_raised(clock.until(until), self.endpoint.signal());
                }
            }
        }
        self.endpoint.outcome()
    }

    /// Resets the connection now (linger zero, then close) and returns why it ended:
    /// [`CloseReason::Aborted`], or the earlier reason if it was already closed.
    pub fn abort(&mut self) -> CloseReason {
        self.endpoint.abort()
    }

    /// A handle that aborts this connection from another thread.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(self.endpoint.signal_arc()))
    }

    /// The core: state, permissions, deadlines.
    pub fn lifecycle(&self) -> &Lifecycle {
        self.endpoint.lifecycle()
    }

    /// Why the connection closed; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.endpoint.close_reason()
    }

    /// The OS error that ended the connection, if one did.
    pub fn error(&self) -> Option<&io::Error> {
        self.endpoint.error()
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The connection is closed, or `getpeername` failed.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.peer_addr()
    }

    /// Our address.
    ///
    /// # Errors
    /// The connection is closed, or `getsockname` failed.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// What a drop would do (A1), done here, to its end: a reset while the send side is open;
    /// after the send side was shut, the lingering close. For a server whose handler let go of
    /// the connection by panicking: the server counts it until this returns.
    pub(crate) fn close_as_dropped(&mut self) -> Option<CloseReason> {
        self.endpoint.abandon();
        let _ = self.close();
        self.close_reason()
    }

    pub(crate) fn into_endpoint(self) -> Endpoint<Arc<Socket>, ReaderWaker> {
        self.endpoint
    }
}

/// Reading is [`recv`](Connection::recv): bytes, or 0 once the peer's end of stream has come.
/// An OS error closes the connection and is returned; so is the error of a connection already
/// closed.
impl io::Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

/// Writing is [`send`](Connection::send) (`MSG_NOSIGNAL`). Flushing has nothing to send (every
/// byte a write returned for is the kernel's already), but performs an abort asked for through
/// a handle. The end of the stream is [`shutdown_send`](Connection::shutdown_send).
impl io::Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.endpoint.flush()
    }
}

crate::adapter::impl_as_socket!(Connection);

/// Finishes, on a thread of its own, the lingering close of a connection its owner dropped after
/// shutting its send side (A1). If no thread can be made, the connection is reset.
fn finish_on_a_thread(endpoint: Endpoint<Arc<Socket>, ReaderWaker>) {
    let mut connection = Connection::from_endpoint(endpoint);
    // Failing, the closure goes, and with it the connection, reset.
    let _ = std::thread::Builder::new()
        .name("lingering close".into())
        .spawn(move || {
            let _ = connection.close();
        });
}

/// The lingering close alone, for a socket this crate did not open (a `socket2::Socket` or a
/// `std::net::TcpStream`): shut the send side, read and discard until the peer's end of stream,
/// then close, bounded by the linger deadlines of `config`; why it ended. For a server that
/// adopts the crate a step at a time.
///
/// ```no_run
/// use socket_lifecycle::{CloseReason, Config, blocking::close_gracefully};
///
/// # fn after_serving(stream: std::net::TcpStream) -> std::io::Result<()> {
/// let reason = close_gracefully(stream, Config::default())?;
/// assert_eq!(reason, CloseReason::Graceful);
/// # Ok(())
/// # }
/// # let _ = after_serving; // used, for the doctests' deny(warnings)
/// ```
///
/// # Errors
/// As [`Connection::close`]; and preparing the socket failed, as in [`Connection::accepted`].
pub fn close_gracefully(socket: impl Into<Socket>, config: Config) -> io::Result<CloseReason> {
    Connection::accepted(socket, config, StdClock::new(), ())?.close()
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.endpoint.fmt(f)
    }
}
