//! The client's connect: every resolved address in turn, each attempt bounded.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::wait;
use super::{Connection, Observer};
use crate::adapter::{ConnectSettings, ConnectWalk, MIN_ATTEMPT};
use crate::{Config, StdClock};

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
    settings: ConnectSettings,
}

impl Connector {
    /// A connector with these settings, its own clock and no observer.
    pub fn new(config: Config) -> Self {
        Self {
            settings: ConnectSettings::new(config),
        }
    }

    /// Tells `observer` of every transition of the connection, from its first attempt.
    #[must_use]
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.settings.observer = Box::new(observer);
        self
    }

    /// Runs the connection on `clock`, to share one time with other connections.
    #[must_use]
    pub fn clock(mut self, clock: StdClock) -> Self {
        self.settings.clock = clock;
        self
    }

    /// The connection's [idle timeout](Connection::set_idle_timeout).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// Resolves `addrs` and connects to the addresses in order.
    ///
    /// # Errors
    /// Resolving failed or gave no address; or every attempt failed, and then the error is of
    /// the last attempt's kind, its message names the address and the OS error, and its
    /// [`get_ref`](io::Error::get_ref) is a [`ConnectError`](super::ConnectError).
    pub fn connect(self, addrs: impl ToSocketAddrs) -> io::Result<Connection> {
        let addrs: Vec<SocketAddr> = addrs.to_socket_addrs()?.collect();
        self.connect_to(&addrs)
    }

    /// Connects to `addrs` in order.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_to(self, addrs: &[SocketAddr]) -> io::Result<Connection> {
        let mut walk = ConnectWalk::start(self.settings, addrs)?;
        while let Some(attempt) = walk.next_attempt() {
            let wait = attempt
                .deadline
                .map_or(MIN_ATTEMPT, |deadline| walk.clock().until(deadline))
                .max(MIN_ATTEMPT);
            match connect_within(attempt.addr, wait) {
                Ok(socket) => {
                    let mut connection = Connection::from_parts(socket, walk.connected(attempt)?)?;
                    // The send side of the idle timeout is the socket's own.
                    connection.set_idle_timeout(connection.idle_timeout())?;
                    return Ok(connection);
                }
                Err(error) => walk.failed(attempt, error)?,
            }
        }
        Err(walk.finish())
    }
}

/// One connect attempt: a socket of the address's family, connected within `wait`. A failed
/// attempt's socket is closed here, at once.
fn connect_within(addr: SocketAddr, wait: Duration) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    wait::prepare(&socket)?;
    socket.connect_timeout(&addr.into(), wait)?;
    Ok(socket)
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.settings.fmt(f)
    }
}
