//! A connection over a blocking `socket2` socket, driven through the core.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use socket2::Socket;

use super::driver::{Driver, clone_error};
use super::sys::{self, Received};
use super::{AbortHandle, Connector, Observer};
use crate::{CloseReason, Config, Input, Lifecycle, StdClock};

/// How much a lingering close reads at a time, to throw away.
const DISCARD_CHUNK: usize = 4096;

/// One TCP connection whose every system call the core decides: the blocking adapter.
///
/// It owns the socket and a [`Lifecycle`]. Before each call it asks the core whether the call is
/// permitted; after it, it reports what the operating system said; it performs exactly the
/// actions the core emits. The socket is released (closed) exactly once: when the core emits
/// `Close`, or, for a connection dropped while open, by the drop, as a reset with
/// [`CloseReason::Abandoned`].
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
    /// `None` once the core's `Close` was performed. Shared only weakly, with abort handles.
    socket: Option<Arc<Socket>>,
    driver: Driver,
    abort_requested: Arc<AtomicBool>,
    idle_timeout: Option<Duration>,
    /// The socket's read timeout as last set, so that an unchanged one is not set again.
    read_timeout: sys::ReadTimeout,
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
    /// where that is needed.
    pub fn accepted(
        socket: impl Into<Socket>,
        config: Config,
        clock: StdClock,
        observer: impl Observer + 'static,
    ) -> io::Result<Self> {
        let socket = socket.into();
        sys::prepare(&socket)?;
        let lifecycle = Lifecycle::accepted(clock.now(), config);
        Ok(Self::from_parts(
            socket,
            Driver::new(lifecycle, clock, Box::new(observer)),
        ))
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
        let lifecycle = Lifecycle::accepted(clock.now(), config);
        Ok(Self::from_parts(
            socket,
            Driver::new(lifecycle, clock, Box::new(observer)),
        ))
    }

    pub(crate) fn from_parts(socket: Socket, driver: Driver) -> Self {
        Self {
            socket: Some(Arc::new(socket)),
            driver,
            abort_requested: Arc::new(AtomicBool::new(false)),
            idle_timeout: None,
            read_timeout: sys::ReadTimeout::default(),
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
        let timeout = timeout.filter(|t| !t.is_zero());
        if let Some(socket) = &self.socket {
            socket.set_write_timeout(timeout.map(sys::socket_timeout))?;
        }
        self.idle_timeout = timeout;
        Ok(())
    }

    /// The [idle timeout](Self::set_idle_timeout).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// Receives into `buf`: the byte count, or 0 once the peer's end of stream has come (or for
    /// an empty `buf`).
    ///
    /// # Errors
    /// - [`io::ErrorKind::TimedOut`] if the idle timeout passed first: the connection is unchanged.
    /// - The OS error that ended the connection (a reset, say): it is closed, its socket released.
    /// - Once closed, the error that closed it, or [`io::ErrorKind::NotConnected`].
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check_open()?;
        if buf.is_empty() || !self.driver.lifecycle.may_receive() {
            // After the peer's end of stream, recv keeps returning 0. An empty buffer reads
            // nothing, and the 0 that recv(2) would return for it is not an end of stream.
            return Ok(0);
        }
        let result = match &self.socket {
            Some(socket) => sys::recv_abortable(
                socket,
                buf,
                self.idle_timeout,
                &mut self.read_timeout,
                &self.abort_requested,
            ),
            None => return Err(self.driver.closed_error()),
        };
        self.check_open()?;
        match result {
            Ok(Received::Bytes(n)) => {
                self.report(Input::Received { len: n })?;
                Ok(n)
            }
            Ok(Received::EndOfStream) => {
                self.report(Input::EndOfStream)?;
                Ok(0)
            }
            Ok(Received::TimedOut) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no byte from the peer for {:?}",
                    self.idle_timeout.unwrap_or_default()
                ),
            )),
            Err(error) => Err(self.fail(error)),
        }
    }

    /// Sends as much of `buf` as the kernel takes now, and returns how much that was.
    ///
    /// # Errors
    /// - [`io::ErrorKind::InvalidInput`] once the send side was shut (misuse; nothing changes).
    /// - The OS error that ended the connection (`EPIPE` once the peer is gone): it is closed.
    /// - Once closed, the error that closed it, or [`io::ErrorKind::NotConnected`].
    pub fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_open()?;
        if !self.driver.lifecycle.may_queue() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "send after the send side was shut (state {:?})",
                    self.driver.lifecycle.state()
                ),
            ));
        }
        let result = match &self.socket {
            Some(socket) => sys::send(socket, buf),
            None => return Err(self.driver.closed_error()),
        };
        self.check_open()?;
        match result {
            Ok(n) => Ok(n),
            Err(error) if sys::is_read_timeout(&error) => Err(self.fail(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the peer took no byte for {:?}",
                    self.idle_timeout.unwrap_or_default()
                ),
            ))),
            Err(error) => Err(self.fail(error)),
        }
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let sent = self.send(buf)?;
            buf = buf.get(sent..).unwrap_or_default();
        }
        Ok(())
    }

    /// Shuts the send side (`shutdown(Write)`): the peer reads end of stream after everything
    /// sent so far. Receiving goes on. Repeating it changes nothing.
    ///
    /// # Errors
    /// The OS error that ended the connection; once closed, the error that closed it.
    pub fn shutdown_send(&mut self) -> io::Result<()> {
        self.check_open()?;
        self.report(Input::ShutdownSend)?;
        // A blocking send returns once the kernel holds the bytes, so nothing is ever queued here.
        self.report(Input::Flushed)?;
        match self.driver.error() {
            Some(error) if self.driver.lifecycle.is_closed() => Err(clone_error(error)),
            _ => Ok(()),
        }
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
        if self.abort_requested.load(Ordering::SeqCst) {
            // An abort asked for first is a reset, with no shutdown(Write) before it (C6).
            self.step(Input::Abort);
        }
        if !self.driver.lifecycle.is_closed() {
            self.step(Input::Close);
            self.step(Input::Flushed);
            let mut discard = [0_u8; DISCARD_CHUNK];
            while !self.driver.lifecycle.is_closed() {
                if self.abort_requested.load(Ordering::SeqCst)
                    || !self.driver.lifecycle.must_discard()
                {
                    // Nothing but the peer can move a lingering close on; anything else is
                    // an abort asked for, or a state the core never leaves us in here.
                    self.step(Input::Abort);
                    break;
                }
                let wait = self
                    .driver
                    .lifecycle
                    .poll_timeout()
                    .map(|deadline| self.driver.clock.until(deadline));
                let result = match &self.socket {
                    Some(socket) => sys::recv_abortable(
                        socket,
                        &mut discard,
                        wait,
                        &mut self.read_timeout,
                        &self.abort_requested,
                    ),
                    None => break,
                };
                if self.abort_requested.load(Ordering::SeqCst) {
                    // The handle woke the recv by shutting the receive side: the 0 it then
                    // returns is not the peer's end of stream. The abort comes first.
                    continue;
                }
                match result {
                    Ok(Received::Bytes(n)) => self.step(Input::Received { len: n }),
                    Ok(Received::EndOfStream) => self.step(Input::EndOfStream),
                    Ok(Received::TimedOut) => self.step(Input::Timeout),
                    Err(error) => {
                        self.driver.fail(error);
                        self.perform();
                    }
                }
            }
        }
        self.driver.outcome()
    }

    /// Resets the connection now (linger zero, then close) and returns why it ended:
    /// [`CloseReason::Aborted`], or the earlier reason if it was already closed.
    pub fn abort(&mut self) -> CloseReason {
        self.step(Input::Abort);
        self.driver
            .lifecycle
            .close_reason()
            .unwrap_or(CloseReason::Aborted)
    }

    /// A handle that aborts this connection from another thread.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(
            Arc::clone(&self.abort_requested),
            self.socket.as_ref().map_or_else(Weak::new, Arc::downgrade),
        )
    }

    /// The core: state, permissions, deadlines.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.driver.lifecycle
    }

    /// Why the connection closed; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.driver.lifecycle.close_reason()
    }

    /// The OS error that ended the connection, if one did.
    pub fn error(&self) -> Option<&io::Error> {
        self.driver.error()
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The connection is closed, or `getpeername` failed.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with_socket(Socket::peer_addr)
    }

    /// Our address.
    ///
    /// # Errors
    /// The connection is closed, or `getsockname` failed.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_socket(Socket::local_addr)
    }

    fn with_socket(
        &self,
        query: impl FnOnce(&Socket) -> io::Result<socket2::SockAddr>,
    ) -> io::Result<SocketAddr> {
        let socket = self
            .socket
            .as_ref()
            .ok_or_else(|| self.driver.closed_error())?;
        query(socket)?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an internet address"))
    }

    /// Fails with the closing error once closed; performs an abort asked for by a handle.
    fn check_open(&mut self) -> io::Result<()> {
        if self.abort_requested.load(Ordering::SeqCst) {
            self.step(Input::Abort);
        }
        if self.driver.lifecycle.is_closed() {
            return Err(self.driver.closed_error());
        }
        Ok(())
    }

    /// Applies an application's input; misuse is [`io::ErrorKind::InvalidInput`].
    fn report(&mut self, input: Input) -> io::Result<()> {
        self.driver.input(input)?;
        self.perform();
        Ok(())
    }

    /// Applies an input that fits the state by construction; a refusal changes nothing.
    fn step(&mut self, input: Input) {
        let _ = self.driver.input(input);
        self.perform();
    }

    /// Reports a failed call; returns the error for the caller.
    fn fail(&mut self, error: io::Error) -> io::Error {
        let copy = clone_error(&error);
        self.driver.fail(error);
        self.perform();
        copy
    }

    fn perform(&mut self) {
        if self.driver.perform(self.socket.as_deref()) {
            // The one close: dropping the last strong reference. An abort handle may hold one
            // for the instant of its wake-up, and then its drop is the close.
            if self.socket.take().is_some() {
                self.driver.closed();
            }
        }
    }

    pub(crate) fn into_parts(mut self) -> (Option<Arc<Socket>>, Driver, Arc<AtomicBool>) {
        let socket = self.socket.take();
        let clock = self.driver.clock;
        let driver = std::mem::replace(
            &mut self.driver,
            Driver::new(Lifecycle::new(Config::default()), clock, Box::new(())),
        );
        (socket, driver, Arc::clone(&self.abort_requested))
    }
}

impl Drop for Connection {
    /// A connection dropped while open is reset: linger zero, then close, with
    /// [`CloseReason::Abandoned`]. A peer must not take a cut-off stream for a complete one.
    fn drop(&mut self) {
        if self.socket.is_some() {
            self.step(Input::Abandon);
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("socket", &self.socket)
            .field("driver", &self.driver)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}
