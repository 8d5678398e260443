//! A tokio server on the listener lifecycle: an accept loop, a task per connection, and a
//! graceful drain.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant as StdInstant;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::wait::{sleep_until, timer_of};
use super::{AbortHandle, Connection, Observer, Peer, ServeReport, ServerConfig};
use crate::adapter::{Books, Served, sys};
use crate::{DrainOutcome, StdClock};

/// What a connection's handler returns: a boxed future that may borrow the connection.
///
/// A handler is a closure `|connection| Box::pin(async move { ... })`, or
/// `|connection| Box::pin(my_handler(connection))` for an `async fn my_handler(connection: &mut
/// Connection) -> io::Result<()>`.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

/// Starts a drain from anywhere (a task, a thread, a signal handler's task): see
/// [`Server::drain_handle`].
#[derive(Clone, Debug)]
pub struct DrainHandle {
    requested: Arc<watch::Sender<Option<StdInstant>>>,
}

impl DrainHandle {
    /// Starts the drain: no more accepts; open connections have until the drain timeout to
    /// finish, and are aborted then. Returns at once, and needs no runtime; [`Server::serve`]
    /// returns when the drain is over. Repeating it changes nothing.
    pub fn drain(&self) {
        self.requested.send_if_modified(|requested| {
            let first = requested.is_none();
            requested.get_or_insert_with(StdInstant::now);
            first
        });
    }
}

/// A TCP server whose listening socket follows the [`Listener`](crate::Listener) lifecycle and whose connections
/// each follow a [`Lifecycle`](crate::Lifecycle): the [blocking server](crate::blocking::Server)
/// on tokio.
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
/// let server = Server::bind("127.0.0.1:0".parse()?, ServerConfig::default()).await?;
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
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    clock: StdClock,
    requested: Arc<watch::Sender<Option<StdInstant>>>,
}

impl Server {
    /// Binds and listens on `addr` (`SO_REUSEADDR` on Unix, so a restart does not wait for
    /// `TIME_WAIT`). Call it within a tokio runtime with I/O enabled.
    ///
    /// # Errors
    /// The socket could not be made, bound (the port is in use: `EADDRINUSE`) or listen; the
    /// message names the address and the OS error.
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<Self> {
        let socket = sys::listen(addr, config.backlog)?;
        socket.set_nonblocking(true)?;
        let listener = TcpListener::from_std(socket.into())?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            config,
            clock: StdClock::new(),
            requested: Arc::new(watch::Sender::new(None)),
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

    /// A handle that starts the drain from anywhere (a Ctrl-C task, say).
    pub fn drain_handle(&self) -> DrainHandle {
        DrainHandle {
            requested: Arc::clone(&self.requested),
        }
    }

    /// Serves until a drain is over: accepts, runs `handler` on each connection in a task of its
    /// own, then closes the connection gracefully if the handler did not close it. `observer`
    /// gives each connection its [`Observer`].
    ///
    /// A handler's error is the connection's own affair: the connection is closed (gracefully
    /// if it is still open) and the server goes on. So is a handler's panic: the connection is
    /// then dropped, and closed as a dropped one is (A1).
    ///
    /// # Errors
    /// `accept` failed in a way that will not pass (the listening socket itself is broken); the
    /// open connections are drained first.
    pub async fn serve<H, O, F>(self, handler: H, observer: F) -> io::Result<ServeReport>
    where
        H: for<'a> Fn(&'a mut Connection) -> HandlerFuture<'a> + Send + Sync + 'static,
        O: Observer + 'static,
        F: Fn(Peer) -> O,
    {
        let Self {
            listener,
            config,
            clock,
            requested,
            ..
        } = self;
        let books = Books::new(clock, config.listener);
        let handler = Arc::new(handler);
        let mut drain = requested.subscribe();
        let mut report = ServeReport::default();
        let mut tasks = JoinSet::new();
        let mut listening = Some(listener);
        let mut fatal = None;

        while let Some(listener) = &listening {
            if drain.borrow().is_some() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            if let Some(resume) = books.paused() {
                // Paused after a failed accept: wait for the backoff deadline, or a drain.
                tokio::select! {
                    biased;
                    () = drain_requested(&mut drain) => break,
                    () = sleep_until(resume.map(|at| timer_of(clock, at))) => {}
                }
                books.resume();
                continue;
            }
            let accepted = tokio::select! {
                biased;
                () = drain_requested(&mut drain) => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let Some(admission) = books.admit(&mut report, addr) else {
                        break;
                    };
                    let peer = admission.peer;
                    let connection = match Connection::accepted(
                        stream,
                        config.connection,
                        clock,
                        observer(peer),
                    ) {
                        Ok(mut connection) => {
                            connection.set_idle_timeout(config.idle_timeout);
                            connection
                        }
                        Err(_) => {
                            // Dropped, and so reset: it could not be set up as promised.
                            books.not_served(admission);
                            continue;
                        }
                    };
                    let abort = connection.abort_handle();
                    let served = books.serve(admission, abort.clone());
                    let handler = Arc::clone(&handler);
                    tasks.spawn(async move {
                        // Dropped last, also if the handler panics: the connection is counted
                        // closed only once it is.
                        let served = served;
                        serve_connection(connection, &*handler, abort, &served).await;
                    });
                }
                Err(error) => {
                    if let Err(error) = books.accept_failed(&mut report, error) {
                        fatal = Some(error);
                        break;
                    }
                }
            }
        }

        // The drain: the listener's actions, in its order.
        let drain_started = drain.borrow().unwrap_or_else(StdInstant::now);
        let deadline = books.begin_drain(config.drain_timeout, &mut listening);
        let finished = match deadline {
            Some(deadline) => {
                tokio::time::timeout_at(timer_of(clock, deadline), join_all(&mut tasks))
                    .await
                    .is_ok()
            }
            None => {
                join_all(&mut tasks).await;
                true
            }
        };
        let mut outcome = DrainOutcome::Drained;
        if !finished {
            // Counted now: the aborts release them all.
            books.tracker().expire();
            outcome = books.tracker().outcome().unwrap_or(outcome);
            report.aborted_by_drain = books.abort_stragglers(&mut listening);
            // Each aborted task resets its connection and ends at once.
            join_all(&mut tasks).await;
        }
        books.report(report, outcome, drain_started, fatal)
    }
}

/// One connection's task: the handler, cut short by an abort, then the close it did not make.
async fn serve_connection<H>(
    mut connection: Connection,
    handler: &H,
    abort: AbortHandle,
    served: &Served<AbortHandle>,
) where
    H: for<'a> Fn(&'a mut Connection) -> HandlerFuture<'a> + Send + Sync,
{
    let handled = {
        let mut handling = handler(&mut connection);
        // A panic is caught, so that the connection is closed and counted here, as below.
        let handled = poll_fn(|cx| {
            match panic::catch_unwind(AssertUnwindSafe(|| handling.as_mut().poll(cx))) {
                Ok(Poll::Ready(_)) => Poll::Ready(Ok(())),
                Ok(Poll::Pending) => Poll::Pending,
                Err(panic) => Poll::Ready(Err(panic)),
            }
        });
        tokio::select! {
            biased;
            () = abort.requested() => Ok(()),
            handled = handled => handled,
        }
    };
    let reason = match (connection.close_reason(), &handled) {
        (Some(reason), _) => Some(reason),
        (None, _) if abort.is_requested() => Some(connection.abort()),
        // A handler that panicked let go of its connection: what a drop means (A1) is done
        // here, so that the server counts the connection until its close ends (the drain too).
        (None, Err(_)) => connection.close_as_dropped().await,
        (None, Ok(())) => connection.close().await.ok(),
    };
    served.books().closed(reason);
    if let Err(panic) = handled {
        // The task ends as the handler did; the connection is closed and counted by now.
        drop(connection);
        panic::resume_unwind(panic);
    }
}

/// Returns once a drain is requested.
async fn drain_requested(drain: &mut watch::Receiver<Option<StdInstant>>) {
    // The sender lives as long as `serve`, so the wait ends only on a request.
    let _ = drain.wait_for(Option::is_some).await;
}

/// Waits for every connection task.
async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
