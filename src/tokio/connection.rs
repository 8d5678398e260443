//! A connection over a `tokio::net::TcpStream`, driven through the core.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;

use super::abort_handle::Signal;
use super::{AbortHandle, Connector, Observer};
use crate::blocking::driver::{Driver, clone_error};
use crate::blocking::sys;
use crate::{CloseReason, Config, Input, Instant, Lifecycle, StdClock};

/// How much a lingering close reads at a time, to throw away.
const DISCARD_CHUNK: usize = 4096;

/// One TCP connection whose every system call the core decides: the tokio adapter.
///
/// It owns a `tokio::net::TcpStream` and a [`Lifecycle`]. Before each call it asks the core
/// whether the call is permitted; after it, it reports what the operating system said; it
/// performs exactly the actions the core emits (`shutdown`, and linger zero through
/// `socket2::SockRef`). The socket is released (closed) exactly once: when the core emits
/// `Close`, or, for a connection dropped while open, by the drop, synchronously, as a reset with
/// [`CloseReason::Abandoned`].
///
/// - [`send`](Self::send) uses `MSG_NOSIGNAL`: a peer that went away is an `EPIPE` error, never
///   a `SIGPIPE`.
/// - [`close`](Self::close) is the graceful close of the contract: shut the send side, read and
///   discard until the peer's end of stream, then close, bounded by the linger deadlines of the
///   [`Config`]: each wait is a tokio timer at [`Lifecycle::poll_timeout`], so a lingering close
///   never blocks a worker thread.
/// - [`abort`](Self::abort) resets: linger zero, then close. An [`AbortHandle`] asks for it from
///   anywhere and wakes the connection's pending wait.
///
/// Every `async` method may be cancelled (its future dropped) between two awaits: nothing is
/// lost but the wait. A cancelled [`close`](Self::close) leaves the connection closing; dropping
/// it then resets it.
///
/// # Example: the seed's client
///
/// ```
/// use socket_lifecycle::{CloseReason, Config, tokio::Connection};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// // A peer that echoes one message and closes (a plain tokio server).
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let address = listener.local_addr()?;
/// let server = tokio::spawn(async move {
///     let (mut stream, _) = listener.accept().await?;
///     let mut message = Vec::new();
///     stream.read_to_end(&mut message).await?;
///     stream.write_all(&message).await?;
///     std::io::Result::Ok(())
/// });
///
/// let mut connection = Connection::connect(address, Config::default()).await?;
/// connection.send_all(b"this is a test").await?;
/// connection.shutdown_send()?; // nothing more to send; receiving goes on
/// let mut reply = Vec::new();
/// let mut buffer = [0; 64];
/// loop {
///     match connection.recv(&mut buffer).await? {
///         0 => break, // the peer's end of stream
///         n => reply.extend_from_slice(&buffer[..n]),
///     }
/// }
/// assert_eq!(reply, b"this is a test");
/// assert_eq!(connection.close().await?, CloseReason::Graceful);
/// server.await??;
/// # Ok(())
/// # }
/// ```
pub struct Connection {
    /// `None` once the core's `Close` was performed.
    stream: Option<TcpStream>,
    driver: Driver,
    signal: Arc<Signal>,
    idle_timeout: Option<Duration>,
}

impl Connection {
    /// Connects to the addresses `addrs` resolves to, in order, with the default settings of a
    /// [`Connector`].
    ///
    /// # Errors
    /// Resolving failed or gave no address, or every attempt failed: the error of the last
    /// attempt, naming its address, with the OS error code.
    pub async fn connect(
        addrs: impl tokio::net::ToSocketAddrs,
        config: Config,
    ) -> io::Result<Self> {
        Connector::new(config).connect(addrs).await
    }

    /// A connection `accept` returned: established, both directions open. `clock` is the
    /// server's, so that all its connections share one time.
    ///
    /// # Errors
    /// Preparing the socket failed (only where `SO_NOSIGPIPE` must be set).
    pub fn accepted(
        stream: TcpStream,
        config: Config,
        clock: StdClock,
        observer: impl Observer + 'static,
    ) -> io::Result<Self> {
        sys::prepare_no_signal(&SockRef::from(&stream))?;
        let lifecycle = Lifecycle::accepted(clock.now(), config);
        Ok(Self::from_parts(
            stream,
            Driver::new(lifecycle, clock, Box::new(observer)),
        ))
    }

    pub(crate) fn from_parts(stream: TcpStream, driver: Driver) -> Self {
        Self {
            stream: Some(stream),
            driver,
            signal: Arc::default(),
            idle_timeout: None,
        }
    }

    /// Bounds how long [`recv`](Self::recv) waits for a byte, and [`send`](Self::send) for room to
    /// send one, while the connection is open (`None`: for ever, the default). A `recv` that
    /// waits longer returns an error of kind [`io::ErrorKind::TimedOut`] and leaves the connection
    /// as it was, for the application to close; a `send` that waits longer fails the connection.
    /// A closing connection is bounded by the linger deadlines instead.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle_timeout = timeout.filter(|t| !t.is_zero());
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
    /// - Once closed (or aborted through a handle), the error that closed it, or
    ///   [`io::ErrorKind::NotConnected`].
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check_open()?;
        if buf.is_empty() || !self.driver.lifecycle.may_receive() {
            return Ok(0);
        }
        let until = after(self.idle_timeout);
        let received = match &self.stream {
            Some(stream) => recv_once(stream, buf, until, &self.signal).await,
            None => return Err(self.driver.closed_error()),
        };
        self.check_open()?;
        match received {
            Received::Bytes(n) => {
                self.report(Input::Received { len: n })?;
                Ok(n)
            }
            Received::EndOfStream => {
                self.report(Input::EndOfStream)?;
                Ok(0)
            }
            Received::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no byte from the peer for {:?}",
                    self.idle_timeout.unwrap_or_default()
                ),
            )),
            // Only an abort raises the signal of a whole connection, and `check_open` took it.
            Received::Raised => Err(self.driver.closed_error()),
            Received::Failed(error) => Err(self.fail(error)),
        }
    }

    /// Sends as much of `buf` as the kernel takes once there is room, and returns how much that
    /// was.
    ///
    /// # Errors
    /// - [`io::ErrorKind::InvalidInput`] once the send side was shut (misuse; nothing changes).
    /// - The OS error that ended the connection (`EPIPE` once the peer is gone): it is closed.
    /// - Once closed (or aborted through a handle), the error that closed it, or
    ///   [`io::ErrorKind::NotConnected`].
    pub async fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
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
        let until = after(self.idle_timeout);
        let sent = match &self.stream {
            Some(stream) => send_once(stream, buf, until, &self.signal).await,
            None => return Err(self.driver.closed_error()),
        };
        self.check_open()?;
        match sent {
            Sent::Bytes(n) => Ok(n),
            Sent::TimedOut => Err(self.fail(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the peer took no byte for {:?}",
                    self.idle_timeout.unwrap_or_default()
                ),
            ))),
            Sent::Raised => Err(self.driver.closed_error()),
            Sent::Failed(error) => Err(self.fail(error)),
        }
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn send_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let sent = self.send(buf).await?;
            buf = buf.get(sent..).unwrap_or_default();
        }
        Ok(())
    }

    /// Shuts the send side (`shutdown(Write)`): the peer reads end of stream after everything
    /// sent so far. Receiving goes on. Repeating it changes nothing. It never waits: every byte
    /// [`send`](Self::send) returned for is already the kernel's.
    ///
    /// # Errors
    /// The OS error that ended the connection; once closed, the error that closed it.
    pub fn shutdown_send(&mut self) -> io::Result<()> {
        self.check_open()?;
        self.report(Input::ShutdownSend)?;
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
    /// An [`AbortHandle`] cuts the wait short with a reset.
    ///
    /// # Errors
    /// The OS error that ended the connection, when one did (a reset, say; the reason is in
    /// [`close_reason`](Self::close_reason)). The socket is released in every case.
    pub async fn close(&mut self) -> io::Result<CloseReason> {
        if self.signal.abort_requested() {
            // No shutdown may go out after an abort was asked for.
            self.step(Input::Abort);
        }
        if !self.driver.lifecycle.is_closed() {
            self.step(Input::Close);
            self.step(Input::Flushed);
            let mut discard = vec![0_u8; DISCARD_CHUNK];
            while !self.driver.lifecycle.is_closed() {
                if self.signal.abort_requested() || !self.driver.lifecycle.must_discard() {
                    // Nothing but the peer can move a lingering close on; anything else is
                    // an abort asked for, or a state the core never leaves us in here.
                    self.step(Input::Abort);
                    break;
                }
                let until = self
                    .driver
                    .lifecycle
                    .poll_timeout()
                    .map(|deadline| timer_of(self.driver.clock, deadline));
                let received = match &self.stream {
                    Some(stream) => recv_once(stream, &mut discard, until, &self.signal).await,
                    None => break,
                };
                match received {
                    Received::Bytes(n) => self.step(Input::Received { len: n }),
                    Received::EndOfStream => self.step(Input::EndOfStream),
                    Received::TimedOut => self.step(Input::Timeout),
                    // An abort: the loop's first check performs it.
                    Received::Raised => {}
                    Received::Failed(error) => {
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

    /// A handle that aborts this connection from another task or thread.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(&self.signal))
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
        self.stream
            .as_ref()
            .ok_or_else(|| self.driver.closed_error())?
            .peer_addr()
    }

    /// Our address.
    ///
    /// # Errors
    /// The connection is closed, or `getsockname` failed.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream
            .as_ref()
            .ok_or_else(|| self.driver.closed_error())?
            .local_addr()
    }

    /// Fails with the closing error once closed; performs an abort asked for by a handle.
    fn check_open(&mut self) -> io::Result<()> {
        if self.signal.abort_requested() {
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
        let close = self
            .driver
            .perform(self.stream.as_ref().map(SockRef::from).as_deref());
        // The one close: dropping the stream.
        if close && self.stream.take().is_some() {
            self.driver.closed();
        }
    }

    pub(crate) fn into_parts(
        mut self,
    ) -> (Option<TcpStream>, Driver, Arc<Signal>, Option<Duration>) {
        let stream = self.stream.take();
        let clock = self.driver.clock;
        let driver = std::mem::replace(
            &mut self.driver,
            Driver::new(Lifecycle::new(Config::default()), clock, Box::new(())),
        );
        (stream, driver, Arc::clone(&self.signal), self.idle_timeout)
    }
}

impl Drop for Connection {
    /// A connection dropped while open is reset, synchronously: linger zero, then close, with
    /// [`CloseReason::Abandoned`]. A peer must not take a cut-off stream for a complete one.
    fn drop(&mut self) {
        if self.stream.is_some() {
            self.step(Input::Abandon);
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("stream", &self.stream)
            .field("driver", &self.driver)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// What one wait for bytes came back with.
#[derive(Debug)]
pub(crate) enum Received {
    Bytes(usize),
    EndOfStream,
    /// The deadline passed with nothing to read.
    TimedOut,
    /// The connection's signal was raised (an abort, or the other half saw the close).
    Raised,
    Failed(io::Error),
}

/// What one wait to send came back with.
#[derive(Debug)]
pub(crate) enum Sent {
    Bytes(usize),
    TimedOut,
    Raised,
    Failed(io::Error),
}

/// One `recv(2)` once the socket is readable, waiting until `until` at most (`None`: for ever),
/// or until `signal` is raised.
pub(crate) async fn recv_once(
    stream: &TcpStream,
    buf: &mut [u8],
    until: Option<TokioInstant>,
    signal: &Signal,
) -> Received {
    let read = async {
        loop {
            stream.readable().await?;
            match stream.try_read(buf) {
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                result => return result,
            }
        }
    };
    tokio::select! {
        biased;
        () = signal.raised() => Received::Raised,
        result = read => match result {
            Ok(0) => Received::EndOfStream,
            Ok(n) => Received::Bytes(n),
            Err(error) => Received::Failed(error),
        },
        () = sleep_until(until) => Received::TimedOut,
    }
}

/// One `send(2)` without `SIGPIPE` once the socket is writable, waiting until `until` at most,
/// or until `signal` is raised.
pub(crate) async fn send_once(
    stream: &TcpStream,
    buf: &[u8],
    until: Option<TokioInstant>,
    signal: &Signal,
) -> Sent {
    let write = async {
        loop {
            stream.writable().await?;
            match stream.try_io(Interest::WRITABLE, || {
                sys::send(&SockRef::from(stream), buf)
            }) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
        }
    };
    tokio::select! {
        biased;
        () = signal.raised() => Sent::Raised,
        result = write => match result {
            Ok(n) => Sent::Bytes(n),
            Err(error) => Sent::Failed(error),
        },
        () = sleep_until(until) => Sent::TimedOut,
    }
}

/// Sleeps until `until`, or for ever.
async fn sleep_until(until: Option<TokioInstant>) {
    match until {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The deadline `timeout` from now, if any (and if the clock can represent it).
pub(crate) fn after(timeout: Option<Duration>) -> Option<TokioInstant> {
    timeout.and_then(|t| TokioInstant::now().checked_add(t))
}

/// The tokio timer's instant for a deadline of the core on `clock`; a deadline past what the
/// platform represents is a year away, which no linger reaches.
pub(crate) fn timer_of(clock: StdClock, deadline: Instant) -> TokioInstant {
    clock
        .std_instant_of(deadline)
        .map(TokioInstant::from_std)
        .or_else(|| TokioInstant::now().checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or_else(TokioInstant::now)
}
