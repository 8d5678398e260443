//! The interface the tests drive an adapter through: its server, its connections and their
//! halves, and the executor its code runs on. Tests are written once, as `async` code: on the
//! blocking adapter that code never waits for a wake-up (every call blocks until it is done) and
//! runs to its end in one poll; on the tokio adapter it runs on tokio's runtimes and really
//! awaits. A server's handler is async code too, `|connection| Box::pin(async move { .. })`, so a
//! tokio server's handler stays a future (a drain can drop it) and a blocking one a blocking call.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::mpsc;
use std::time::Duration;

use socket_lifecycle::blocking::{Observer, ServeReport, ServerConfig};
use socket_lifecycle::{CloseReason, Config, Lifecycle};

use super::{HANG, Log};

/// What a server's handler returns: the work on one connection, as a future that may borrow it
/// (the tokio adapter's `HandlerFuture`).
pub type Handled<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

/// One adapter of the crate, as the tests see it.
pub trait Adapter: Sized + 'static {
    /// The module its tests are instantiated in (see `for_each_adapter!`): a test that re-runs
    /// itself in a child process names itself with it.
    const NAME: &'static str;

    /// The adapter's connection.
    type Connection: Connection;

    /// A spawned piece of work: see [`spawn`](Self::spawn).
    type Task<T: Send + 'static>: Task<T>;

    /// Binds 127.0.0.1 and serves with `handler` on a thread of its own; every connection's
    /// observer records in the server's log.
    fn serve<H>(config: ServerConfig, handler: H) -> Running
    where
        H: for<'a> Fn(&'a mut Self::Connection) -> Handled<'a> + Send + Sync + 'static;

    /// Connects to `address` (an address or a name to resolve), with `observer`.
    fn connect(
        address: &str,
        config: Config,
        observer: impl Observer + 'static,
    ) -> impl Future<Output = io::Result<Self::Connection>> + Send;

    /// Connects to `addrs`, in order, with `observer` (the connector's `connect_to`).
    fn connect_to(
        addrs: &[SocketAddr],
        config: Config,
        observer: impl Observer + 'static,
    ) -> impl Future<Output = io::Result<Self::Connection>> + Send;

    /// `stream`, accepted elsewhere, as an adapter connection. Within [`run`](Self::run).
    fn accepted(
        stream: TcpStream,
        config: Config,
        observer: impl Observer + 'static,
    ) -> io::Result<Self::Connection>;

    /// Binds a server on `addr` and drops it: only whether the bind succeeded.
    fn bind(addr: SocketAddr, config: ServerConfig) -> impl Future<Output = io::Result<()>> + Send;

    /// Runs `work` to its end on the adapter's executor, made for it and gone when it returns,
    /// so that descriptors counted after `run` do not include the executor's.
    fn run<T>(work: impl Future<Output = T>) -> T;

    /// Runs `work` concurrently with the caller (a thread, or a task), within [`run`](Self::run).
    fn spawn<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> Self::Task<T>;

    /// Waits for `duration`, letting spawned work go on.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;

    /// This process's open descriptors before a test that counts them: with whatever the adapter
    /// opens once for the life of the process already open.
    fn baseline() -> usize;
}

/// The receiving side of a connection: a connection, or the read half of a split one.
pub trait Receiving: Send + 'static {
    /// Receives into `buf`: the byte count, or 0 at the peer's end of stream.
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

/// The sending side of a connection: a connection, or the write half of a split one.
pub trait Sending: Send + 'static {
    /// Sends part of `buf`: the byte count.
    fn send(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send;

    /// Sends all of `buf`.
    fn send_all(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// Shuts the send side.
    fn shutdown_send(&mut self) -> io::Result<()>;
}

/// An adapter's connection, each method its inherent one.
pub trait Connection: Receiving + Sending + Debug + Sized {
    /// Its read half.
    type ReadHalf: Receiving;
    /// Its write half.
    type WriteHalf: Sending;
    /// Its abort handle.
    type AbortHandle: AbortHandle;

    /// The graceful close.
    fn close(&mut self) -> impl Future<Output = io::Result<CloseReason>> + Send;
    /// The reset.
    fn abort(&mut self) -> CloseReason;
    /// A handle that aborts it from anywhere.
    fn abort_handle(&self) -> Self::AbortHandle;
    /// Why it closed, once it has.
    fn close_reason(&self) -> Option<CloseReason>;
    /// Its core.
    fn lifecycle(&self) -> &Lifecycle;
    /// The peer's address.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// Bounds a wait for the peer.
    fn set_idle_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// Splits it into a read half and a write half.
    fn split(self) -> (Self::ReadHalf, Self::WriteHalf);
}

/// An adapter's abort handle.
pub trait AbortHandle: Send + Sync + 'static {
    /// Aborts the connection.
    fn abort(&self);
}

/// Work spawned by [`Adapter::spawn`]. A panic in it is the joiner's panic.
pub trait Task<T>: Send {
    /// Waits for the work to end: its output.
    fn join(self) -> impl Future<Output = T> + Send;

    /// Waits at most `limit` for the work to end: its output, or `None` if it did not end (it
    /// is left running).
    fn join_within(self, limit: Duration) -> impl Future<Output = Option<T>> + Send;
}

/// A server serving on a thread of its own.
pub struct Running {
    pub addr: SocketAddr,
    pub log: Log,
    drain: Box<dyn Fn() + Send + Sync>,
    done: mpsc::Receiver<io::Result<ServeReport>>,
}

impl Running {
    /// A server at `addr` whose observers record in `log`, drained by `drain`, whose `serve`
    /// sends its report to `done`.
    pub fn new(
        addr: SocketAddr,
        log: Log,
        drain: impl Fn() + Send + Sync + 'static,
        done: mpsc::Receiver<io::Result<ServeReport>>,
    ) -> Self {
        Self {
            addr,
            log,
            drain: Box::new(drain),
            done,
        }
    }

    /// Starts the drain (from any thread; repeating it changes nothing).
    pub fn drain(&self) {
        (self.drain)();
    }

    /// Waits for `serve` to return, at most `limit`, without starting a drain.
    pub fn wait(&self, limit: Duration, rule: &str) -> ServeReport {
        let report = self
            .done
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("{rule} violated: serve did not return within {limit:?}"));
        report.unwrap_or_else(|e| panic!("{rule} violated: serve failed: {e}"))
    }

    /// Drains, and waits for `serve` to return.
    pub fn finish(&self, rule: &str) -> ServeReport {
        self.drain();
        self.wait(HANG, rule)
    }
}

/// The seed's server: echo until the peer's end of stream, then shut the send side.
pub async fn echo(connection: &mut impl Connection) -> io::Result<()> {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match connection.recv(&mut buffer).await? {
            0 => break,
            n => connection.send_all(&buffer[..n]).await?,
        }
    }
    connection.shutdown_send()
}

/// [`echo`] as a server's handler.
pub fn echo_handler<C: Connection>(connection: &mut C) -> Handled<'_> {
    Box::pin(echo(connection))
}

/// Reads from a connection or a read half until its end of stream or an error: what came, and
/// the error if one ended it.
pub async fn recv_all(receiving: &mut impl Receiving) -> (Vec<u8>, Option<io::Error>) {
    let mut data = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match receiving.recv(&mut buffer).await {
            Ok(0) => return (data, None),
            Ok(n) => data.extend_from_slice(&buffer[..n]),
            Err(e) => return (data, Some(e)),
        }
    }
}

/// Makes what an adapter opens once for the life of the process and a test must not count as a
/// leak: the stand-in socket a closed connection lends as its descriptor (`AsFd`), made with the
/// process's first connection. For an adapter's `baseline`.
pub fn open_process_wide<A: Adapter>() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let client =
        TcpStream::connect(listener.local_addr().expect("an address")).expect("connecting");
    let (server, _) = listener.accept().expect("accepting");
    A::run(async {
        drop(A::accepted(server, Config::default(), ()).expect("a first connection"));
    });
    drop(client);
}
