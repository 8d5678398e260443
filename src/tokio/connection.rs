//! A connection over a `tokio::net::TcpStream`, driven through the core.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::SockRef;
use tokio::net::TcpStream;

use super::wait::{self, Timer, Wakers};
use super::{AbortHandle, Connector, Observer};
use crate::adapter::{Driver, Endpoint, Served, Signal, Steps, sys};
use crate::{CloseReason, Config, Lifecycle, StdClock};

/// One TCP connection whose every system call the core decides: the tokio adapter.
///
/// It owns a `tokio::net::TcpStream` and a [`Lifecycle`]. Before each call it asks the core
/// whether the call is permitted; after it, it reports what the operating system said; it
/// performs exactly the actions the core emits (`shutdown`, and linger zero through
/// `socket2::SockRef`). The socket is released (closed) exactly once, when the core emits
/// `Close`.
///
/// It is a standard stream, [`AsyncRead`](tokio::io::AsyncRead) and [`AsyncWrite`](tokio::io::AsyncWrite): reading is [`recv`](Self::recv),
/// writing [`send`](Self::send), shutting down [`shutdown_send`](Self::shutdown_send), so
/// hyper, tokio-rustls, `tokio::io::copy` and `tokio_util`'s codecs run on it.
///
/// Dropped, it follows rule A1 (the crate docs' "What a drop means"): with its send side open,
/// it is reset at once, with [`CloseReason::Abandoned`]; after its send side was shut, its
/// lingering close goes on in a task of the current runtime (outside a runtime, it is reset,
/// [`CloseReason::Aborted`]).
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
/// Every method that returns a future may be cancelled (its future dropped) between two awaits:
/// nothing is lost but the wait. [`recv`](Self::recv), [`send`](Self::send),
/// [`send_all`](Self::send_all) and [`close`](Self::close) return their futures from plain
/// `fn`s rather than being `async fn`s, so that a future holds each argument once; awaiting
/// them is the same. Their futures are `Send`; that they are also `Unpin` today is not promised. A cancelled [`close`](Self::close) leaves the connection closing; dropped
/// then, its close goes on in a task (A1).
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
    endpoint: Endpoint<TcpStream, Wakers>,
    /// The receiving side's deadline (idle, or linger while closing).
    read_timer: Timer,
    /// The sending side's idle deadline.
    write_timer: Timer,
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
    /// Preparing the socket failed (only where `SO_NOSIGPIPE` must be set); or no descriptor was
    /// left for the process's stand-in socket (see [`AsFd`](std::os::fd::AsFd) below), made
    /// with its first connection: the connection is then reset.
    pub fn accepted(
        stream: TcpStream,
        config: Config,
        clock: StdClock,
        observer: impl Observer + 'static,
    ) -> io::Result<Self> {
        sys::prepare_no_signal(&SockRef::from(&stream))?;
        let lifecycle = Lifecycle::accepted(clock.now(), config);
        Self::from_parts(stream, Driver::new(lifecycle, clock, Box::new(observer)))
    }

    /// [`accepted`](Self::accepted) with the defaults: [`Config::default`], a clock of its own
    /// and no observer. For a server that is not this crate's [`Server`](super::Server), which
    /// passes its own settings, clock and observer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use socket_lifecycle::{CloseReason, tokio::Connection};
    /// use tokio::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (stream, _) = listener.accept().await?;
    /// let mut connection = Connection::from_accepted(stream)?;
    /// drop(client); // the peer's end of stream
    /// assert_eq!(connection.recv(&mut [0; 16]).await?, 0);
    /// assert_eq!(connection.close().await?, CloseReason::Graceful);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`accepted`](Self::accepted).
    pub fn from_accepted(stream: TcpStream) -> io::Result<Self> {
        Self::accepted(stream, Config::default(), StdClock::new(), ())
    }

    pub(crate) fn from_parts(stream: TcpStream, driver: Driver) -> io::Result<Self> {
        let signal = Arc::new(Signal::new(Wakers::default()));
        let endpoint = Endpoint::new(stream, driver, signal, finish_on_the_runtime)?;
        Ok(Self::from_endpoint(endpoint))
    }

    /// A connection a server accepted, counted by the server's books until its close: `served`
    /// is given its abort handle, and gives the count.
    pub(crate) fn accepted_by_server(
        stream: TcpStream,
        config: Config,
        clock: StdClock,
        observer: Box<dyn Observer>,
        served: impl FnOnce(AbortHandle) -> Served<AbortHandle>,
    ) -> io::Result<Self> {
        let signal = Arc::new(Signal::new(Wakers::default()));
        let served = served(AbortHandle::new(Arc::clone(&signal)));
        let lifecycle = Lifecycle::accepted(clock.now(), config);
        let driver = Driver::new(lifecycle, clock, observer).served(served);
        if let Err(error) = sys::prepare_no_signal(&SockRef::from(&stream)) {
            let mut endpoint = Endpoint::new(stream, driver, signal, finish_on_the_runtime)?;
            endpoint.abort();
            return Err(error);
        }
        let endpoint = Endpoint::new(stream, driver, signal, finish_on_the_runtime)?;
        Ok(Self::from_endpoint(endpoint))
    }

    pub(crate) fn from_endpoint(endpoint: Endpoint<TcpStream, Wakers>) -> Self {
        Self {
            endpoint,
            read_timer: Timer::default(),
            write_timer: Timer::default(),
        }
    }

    /// Bounds how long [`recv`](Self::recv) waits for a byte, and [`send`](Self::send) for room to
    /// send one, while the connection is open (`None`: for ever, the default). A `recv` that
    /// waits longer returns an error of kind [`io::ErrorKind::TimedOut`] and leaves the connection
    /// as it was, for the application to close; a `send` that waits longer fails the connection.
    /// A closing connection is bounded by the linger deadlines instead.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.endpoint.set_idle_timeout(timeout);
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
    /// - Once closed (or aborted through a handle), the error that closed it, or
    ///   [`io::ErrorKind::NotConnected`].
    pub fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        wait::call(
            self,
            // A call of its own: the idle deadline of an earlier one, cancelled, is not this
            // one's.
            |this| this.read_timer.disarm(),
            move |this, cx| this.poll_recv(cx, buf),
        )
    }

    /// [`recv`](Self::recv) in `poll` form: `Pending` until bytes, the peer's end of stream, an
    /// error, the idle timeout or an abort.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        wait::poll_recv(&mut self.endpoint, &mut self.read_timer, cx, buf)
    }

    /// Sends as much of `buf` as the kernel takes once there is room, and returns how much that
    /// was.
    ///
    /// # Errors
    /// - [`io::ErrorKind::InvalidInput`] once the send side was shut (misuse; nothing changes).
    /// - The OS error that ended the connection (`EPIPE` once the peer is gone): it is closed.
    /// - Once closed (or aborted through a handle), the error that closed it, or
    ///   [`io::ErrorKind::NotConnected`].
    pub fn send(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send {
        wait::call(
            self,
            // A call of its own: the idle deadline of an earlier one, cancelled, is not this
            // one's.
            |this| this.write_timer.disarm(),
            move |this, cx| this.poll_send(cx, buf),
        )
    }

    /// [`send`](Self::send) in `poll` form: `Pending` until the kernel takes some of `buf`, an
    /// error, the idle timeout or an abort.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn poll_send(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        wait::poll_send(&mut self.endpoint, &mut self.write_timer, cx, buf)
    }

    /// `poll_flush`: see [`Steps::flush`].
    pub(crate) fn flush_steps(&mut self) -> io::Result<()> {
        self.endpoint.flush()
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_all(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        let mut rest = buf;
        wait::call(
            self,
            |this| this.write_timer.disarm(),
            move |this, cx| wait::poll_send_all(&mut rest, cx, |cx, part| this.poll_send(cx, part)),
        )
    }

    /// Shuts the send side (`shutdown(Write)`): the peer reads end of stream after everything
    /// sent so far. Receiving goes on. Repeating it changes nothing. It never waits: every byte
    /// [`send`](Self::send) returned for is already the kernel's.
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
    /// An [`AbortHandle`] cuts the wait short with a reset.
    ///
    /// # Errors
    /// The OS error that ended the connection, when one did (a reset, say; the reason is in
    /// [`close_reason`](Self::close_reason)). The socket is released in every case.
    pub fn close(&mut self) -> impl Future<Output = io::Result<CloseReason>> + Send {
        wait::call(self, |_| {}, |this, cx| this.poll_close(cx))
    }

    /// [`close`](Self::close) in `poll` form: `Pending` while the close waits for the peer.
    ///
    /// # Errors
    /// As [`close`](Self::close).
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<CloseReason>> {
        wait::poll_close(&mut self.endpoint, &mut self.read_timer, cx)
    }

    /// Resets the connection now (linger zero, then close) and returns why it ended:
    /// [`CloseReason::Aborted`], or the earlier reason if it was already closed.
    pub fn abort(&mut self) -> CloseReason {
        self.endpoint.abort()
    }

    /// A handle that aborts this connection from another task or thread.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(self.endpoint.signal_arc()))
    }

    /// Whether an abort was asked for (through a handle, or by a drain).
    pub(crate) fn abort_requested(&self) -> bool {
        self.endpoint.signal_arc().abort_requested()
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

    /// What a drop would do (A1), begun here: a reset while the send side is open; after the
    /// send side was shut, the lingering close, which [`close`](Self::close) then finishes. For
    /// a server whose handler let go of the connection by panicking: the server counts it until
    /// the close ends.
    pub(crate) fn abandon(&mut self) {
        self.endpoint.abandon();
    }

    pub(crate) fn into_endpoint(self) -> Endpoint<TcpStream, Wakers> {
        self.endpoint
    }
}

super::wait::impl_async_read!(Connection);
super::wait::impl_async_write!(Connection);

crate::adapter::impl_as_socket!(Connection);

/// Finishes, in a task of the current runtime, the lingering close of a connection its owner
/// dropped after shutting its send side (A1). Outside a runtime, or if the task is dropped
/// before the close ends (the runtime shutting down), the connection is reset.
fn finish_on_the_runtime(endpoint: Endpoint<TcpStream, Wakers>) {
    let mut connection = Connection::from_endpoint(endpoint);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = connection.close().await;
        });
    }
}

/// The lingering close alone, for a stream this crate did not open: shut the send side, read and
/// discard until the peer's end of stream, then close, bounded by the linger deadlines of
/// `config`; why it ended. For a server that adopts the crate a step at a time: whatever served
/// the stream (hyper's `without_shutdown`, say) hands it over for its last step.
///
/// ```no_run
/// use socket_lifecycle::{CloseReason, Config, tokio::close_gracefully};
///
/// # async fn after_serving(stream: tokio::net::TcpStream) -> std::io::Result<()> {
/// let reason = close_gracefully(stream, Config::default()).await?;
/// assert_eq!(reason, CloseReason::Graceful);
/// # Ok(())
/// # }
/// # let _ = after_serving; // used, for the doctests' deny(warnings)
/// ```
///
/// # Errors
/// As [`Connection::close`]; and preparing the socket failed, as in [`Connection::accepted`].
pub async fn close_gracefully(stream: TcpStream, config: Config) -> io::Result<CloseReason> {
    Connection::accepted(stream, config, StdClock::new(), ())?
        .close()
        .await
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.endpoint.fmt(f)
    }
}
