//! The client's connect, but for the attempt itself: every resolved address in turn, each
//! attempt within the core's deadline (rule C12), and the error of the last one.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::driver::Driver;
use super::{Event, Observer};
use crate::{Action, Config, Error, Input, Instant, IoErrorKind, Lifecycle, StdClock};

/// What a connector is set up with, before it connects.
pub(crate) struct ConnectSettings {
    pub(crate) config: Config,
    pub(crate) clock: StdClock,
    pub(crate) observer: Box<dyn Observer>,
    pub(crate) idle_timeout: Option<Duration>,
}

impl ConnectSettings {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            clock: StdClock::new(),
            observer: Box::new(()),
            idle_timeout: None,
        }
    }
}

impl fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("config", &self.config)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// One connect attempt to make: to `addr`, the candidate `candidate`, by `deadline`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt {
    pub(crate) candidate: usize,
    pub(crate) addr: SocketAddr,
    pub(crate) deadline: Option<Instant>,
}

/// The walk through the addresses, as the core orders it. The adapter makes each
/// [`Attempt`] its own way and reports how it went:
///
/// ```text
/// let mut walk = ConnectWalk::start(settings, &addrs)?;
/// while let Some(attempt) = walk.next_attempt() {
///     match connect(attempt.addr, attempt.deadline) {
///         Ok(socket) => return Ok(connection(socket, walk.connected(attempt)?)),
///         Err(error) => walk.failed(attempt, error)?,
///     }
/// }
/// Err(walk.finish())
/// ```
pub(crate) struct ConnectWalk<'a> {
    driver: Driver,
    addrs: &'a [SocketAddr],
    idle_timeout: Option<Duration>,
    last_failure: Option<ConnectError>,
}

impl<'a> ConnectWalk<'a> {
    /// Starts connecting to `addrs`, in order.
    ///
    /// # Errors
    /// `addrs` is empty: the name resolved to no address.
    pub(crate) fn start(settings: ConnectSettings, addrs: &'a [SocketAddr]) -> io::Result<Self> {
        let ConnectSettings {
            config,
            clock,
            observer,
            idle_timeout,
        } = settings;
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
        Ok(Self {
            driver,
            addrs,
            idle_timeout,
            last_failure: None,
        })
    }

    /// The next attempt the core asks for, or `None` once every candidate has failed.
    pub(crate) fn next_attempt(&mut self) -> Option<Attempt> {
        while let Some(action) = self.driver.poll_action() {
            // Only `Close` follows the last failed attempt; there is no socket to act on.
            let Action::Connect { candidate } = action else {
                continue;
            };
            let addr = *self.addrs.get(candidate)?;
            return Some(Attempt {
                candidate,
                addr,
                deadline: self.driver.lifecycle().poll_timeout(),
            });
        }
        None
    }

    /// The clock the attempts' deadlines are on.
    pub(crate) fn clock(&self) -> StdClock {
        self.driver.clock()
    }

    /// `attempt` connected: the driver of the established connection, with its idle timeout.
    ///
    /// # Errors
    /// The core refused the report, which only a bug in the adapter can cause.
    pub(crate) fn connected(mut self, attempt: Attempt) -> io::Result<Driver> {
        self.driver.input(Input::Connected {
            candidate: attempt.candidate,
        })?;
        self.driver.set_idle_timeout(self.idle_timeout);
        Ok(self.driver)
    }

    /// `attempt` failed with `error`: the observer hears of it, then the core moves on to the
    /// next candidate, if any.
    ///
    /// # Errors
    /// The core refused the report, which only a bug in the adapter can cause.
    pub(crate) fn failed(&mut self, attempt: Attempt, error: io::Error) -> io::Result<()> {
        self.driver.observe(&Event::ConnectAttemptFailed {
            addr: attempt.addr,
            error: &error,
        });
        let kind = IoErrorKind::of(&error);
        self.driver.input(Input::ConnectFailed {
            candidate: attempt.candidate,
            kind,
        })?;
        self.last_failure = Some(ConnectError {
            addr: attempt.addr,
            attempts: attempt.candidate.saturating_add(1),
            error,
        });
        Ok(())
    }

    /// Every attempt failed: the observer hears of the close, with the last attempt's error,
    /// and the error returned is that one, of its kind, naming its address, with a
    /// [`ConnectError`] inside.
    pub(crate) fn finish(mut self) -> io::Error {
        // No socket was ever connected, so the driver holds no error of its own: the cause is
        // the last attempt's, which only the walk has.
        if let Some(reason) = self.driver.lifecycle().close_reason() {
            self.driver.observe(&Event::Closed {
                reason,
                error: self.last_failure.as_ref().map(|failure| &failure.error),
            });
        }
        match self.last_failure {
            Some(failure) => io::Error::new(failure.error.kind(), failure),
            None => io::Error::other("no connect attempt was made"),
        }
    }
}

/// The shortest wait a connect attempt is given, so that a deadline just reached is still an
/// attempt (a zero timeout is refused, or means none).
pub(crate) const MIN_ATTEMPT: Duration = Duration::from_millis(1);

/// Why a connect failed: the last address tried, how many were tried, and the OS error.
///
/// A connector's `connect` returns an [`io::Error`] of the last attempt's kind that carries this
/// as its payload. Reach it with [`get_ref`](io::Error::get_ref) and a downcast, not with
/// [`source`](StdError::source): an `io::Error` made from a payload gives the payload's own
/// source as its source, which is the OS error of [`error`](Self::error), not this.
///
/// ```
/// use std::error::Error as _;
/// use std::io;
/// use socket_lifecycle::{Config, blocking::{ConnectError, Connection}};
///
/// // A closed port: bound, then released.
/// let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
/// let error = Connection::connect(closed, Config::default()).unwrap_err();
/// let cause = error.get_ref().and_then(|e| e.downcast_ref::<ConnectError>());
/// let cause = cause.expect("a ConnectError inside");
/// assert_eq!((cause.addr, cause.attempts), (closed, 1));
/// // `source()` skips it: it is the OS error inside.
/// let source = error.source().expect("a source");
/// assert!(source.downcast_ref::<ConnectError>().is_none());
/// assert!(source.downcast_ref::<io::Error>().is_some());
/// # Ok::<(), io::Error>(())
/// ```
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The connect error is the payload of the `io::Error` returned, found with `get_ref`; its
    /// `source()` is the OS error inside, as `ConnectError`'s docs say.
    #[test]
    fn the_connect_error_is_found_with_get_ref_and_not_with_source() {
        let failure = ConnectError {
            addr: SocketAddr::from(([127, 0, 0, 1], 9)),
            attempts: 2,
            error: io::Error::new(io::ErrorKind::ConnectionRefused, "refused"),
        };
        let error = io::Error::new(failure.error.kind(), failure);
        let inside = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<ConnectError>())
            .expect("get_ref finds the ConnectError");
        assert_eq!(inside.attempts, 2);
        let source = StdError::source(&error).expect("a source");
        assert!(source.downcast_ref::<ConnectError>().is_none());
        assert_eq!(source.to_string(), "refused");
    }
}
