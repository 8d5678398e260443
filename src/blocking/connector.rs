//! The client's connect: every resolved address in turn, each attempt bounded.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::driver::Driver;
use super::{Connection, Observer, sys};
use crate::{Action, Config, Error, Input, IoErrorKind, Lifecycle, StdClock};

/// The shortest wait a connect attempt is given, so that a deadline just reached is still an
/// attempt (`connect_timeout` refuses a zero timeout).
const MIN_ATTEMPT: Duration = Duration::from_millis(1);

/// Opens client [`Connection`]s: the seed's "socket + connect, trying each address in turn until
/// one succeeds", with the connect timeout of the [`Config`] for each attempt (rule C12).
///
/// ```no_run
/// use std::time::Duration;
/// use socket_lifecycle::{Config, blocking::Connector};
///
/// let config = Config::new().with_connect_timeout(Duration::from_secs(2))?;
/// let _connection = Connector::new(config)
///     .observer(|event: &socket_lifecycle::blocking::Event<'_>| eprintln!("{event:?}"))
///     .connect("localhost:27015")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
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

    /// Resolves `addrs` and connects to the addresses in order.
    ///
    /// # Errors
    /// Resolving failed or gave no address; or every attempt failed, and then the error is of
    /// the last attempt's kind, its message names the address and the OS error, and its
    /// [`source`](StdError::source) is a [`ConnectError`].
    pub fn connect(self, addrs: impl ToSocketAddrs) -> io::Result<Connection> {
        let addrs: Vec<SocketAddr> = addrs.to_socket_addrs()?.collect();
        self.connect_to(&addrs)
    }

    /// Connects to `addrs` in order.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_to(self, addrs: &[SocketAddr]) -> io::Result<Connection> {
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
            let wait = driver
                .lifecycle
                .poll_timeout()
                .map_or(MIN_ATTEMPT, |deadline| clock.until(deadline))
                .max(MIN_ATTEMPT);
            match attempt(addr, wait) {
                Ok(socket) => {
                    driver.input(Input::Connected { candidate })?;
                    let mut connection = Connection::from_parts(socket, driver);
                    connection.set_idle_timeout(idle_timeout)?;
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

/// One connect attempt: a socket of the address's family, connected within `wait`. A failed
/// attempt's socket is closed here, at once.
fn attempt(addr: SocketAddr, wait: Duration) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sys::prepare(&socket)?;
    socket.connect_timeout(&addr.into(), wait)?;
    Ok(socket)
}

/// Why a connect failed: the last address tried, how many were tried, and the OS error.
#[derive(Debug)]
pub struct ConnectError {
    /// The last address tried.
    pub addr: SocketAddr,
    /// How many addresses were tried.
    pub attempts: usize,
    /// The last attempt's error; its code is in [`io::Error::raw_os_error`].
    pub error: io::Error,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to {}", self.addr)?;
        if self.attempts > 1 {
            write!(f, " (the last of {} addresses tried)", self.attempts)?;
        }
        write!(f, ": {}", self.error)
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
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
