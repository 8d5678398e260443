//! The client's connect: every resolved address in turn, each attempt bounded by a tokio timer.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::SockRef;
use tokio::net::{TcpSocket, TcpStream};

use super::connection::timer_of;
use super::{ConnectError, Connection, Observer};
use crate::blocking::driver::Driver;
use crate::blocking::sys;
use crate::{Action, Config, Error, Input, IoErrorKind, Lifecycle, StdClock};

/// The shortest wait a connect attempt is given, so that a deadline just reached is still an
/// attempt.
const MIN_ATTEMPT: Duration = Duration::from_millis(1);

/// Opens client [`Connection`]s: the seed's "socket + connect, trying each address in turn until
/// one succeeds", each attempt bounded by the connect timeout of the [`Config`] (rule C12), as a
/// tokio timer.
///
/// ```no_run
/// use std::time::Duration;
/// use socket_lifecycle::{Config, tokio::Connector};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::new().with_connect_timeout(Duration::from_secs(2))?;
/// let _connection = Connector::new(config)
///     .observer(|event: &socket_lifecycle::tokio::Event<'_>| eprintln!("{event:?}"))
///     .connect("localhost:27015")
///     .await?;
/// # Ok(())
/// # }
/// ```
pub struct Connector {
    config: Config,
    clock: StdClock,
    observer: Box<dyn Observer>,
    idle_timeout: Option<Duration>,
}

impl Connector {
    /// A connector with these settings, its own clock and no observer.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            clock: StdClock::new(),
            observer: Box::new(()),
            idle_timeout: None,
        }
    }

    /// Tells `observer` of every transition of the connection, from its first attempt.
    #[must_use]
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observer = Box::new(observer);
        self
    }

    /// Runs the connection on `clock`, to share one time with other connections.
    #[must_use]
    pub fn clock(mut self, clock: StdClock) -> Self {
        self.clock = clock;
        self
    }

    /// The connection's [idle timeout](Connection::set_idle_timeout).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Resolves `addrs` (without blocking a worker thread) and connects to the addresses in order.
    ///
    /// # Errors
    /// Resolving failed or gave no address; or every attempt failed, and then the error is of
    /// the last attempt's kind, its message names the address and the OS error, and its
    /// [`source`](std::error::Error::source) is a [`ConnectError`].
    pub async fn connect(self, addrs: impl tokio::net::ToSocketAddrs) -> io::Result<Connection> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addrs).await?.collect();
        self.connect_to(&addrs).await
    }

    /// Connects to `addrs` in order.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_to(self, addrs: &[SocketAddr]) -> io::Result<Connection> {
        let Self {
            config,
            clock,
            observer,
            idle_timeout,
        } = self;
        let mut driver = Driver::new(Lifecycle::new(config), clock, observer);
        driver
            .input(Input::StartConnect {
                candidates: addrs.len(),
            })
            .map_err(|error| match error {
                Error::NoCandidates => io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the name resolved to no address",
                ),
                other => other.into(),
            })?;
        let mut last_failure: Option<ConnectError> = None;
        while let Some(action) = driver.lifecycle.poll_action() {
            let Action::Connect { candidate } = action else {
                // Only `Close` follows the last failed attempt; there is no socket to act on.
                continue;
            };
            let Some(&addr) = addrs.get(candidate) else {
                break;
            };
            let deadline = driver
                .lifecycle
                .poll_timeout()
                .map(|deadline| timer_of(clock, deadline));
            match attempt(addr, deadline).await {
                Ok(stream) => {
                    driver.input(Input::Connected { candidate })?;
                    let mut connection = Connection::from_parts(stream, driver);
                    connection.set_idle_timeout(idle_timeout);
                    return Ok(connection);
                }
                Err(error) => {
                    let kind = IoErrorKind::of(&error);
                    driver.input(Input::ConnectFailed { candidate, kind })?;
                    last_failure = Some(ConnectError {
                        addr,
                        attempts: candidate.saturating_add(1),
                        error,
                    });
                }
            }
        }
        driver.closed();
        Err(match last_failure {
            Some(failure) => io::Error::new(failure.error.kind(), failure),
            None => io::Error::other("no connect attempt was made"),
        })
    }
}

/// One connect attempt: a socket of the address's family, connected by `deadline` (given at
/// least [`MIN_ATTEMPT`]). A failed attempt's socket is closed here, at once.
async fn attempt(
    addr: SocketAddr,
    deadline: Option<tokio::time::Instant>,
) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    sys::prepare_no_signal(&SockRef::from(&socket))?;
    let now = tokio::time::Instant::now();
    let earliest = now.checked_add(MIN_ATTEMPT).unwrap_or(now);
    let connecting = socket.connect(addr);
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.max(earliest), connecting)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connect timeout passed",
                ))
            }),
        None => connecting.await,
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("config", &self.config)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}
