//! The client's connect: every resolved address in turn, each attempt bounded by a tokio timer.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::SockRef;
use tokio::net::{TcpSocket, TcpStream};

use super::wait::timer_of;
use super::{Connection, Observer};
use crate::adapter::{ConnectSettings, ConnectWalk, MIN_ATTEMPT, sys};
use crate::{Config, StdClock};

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

    /// Resolves `addrs` (without blocking a worker thread) and connects to the addresses in order.
    ///
    /// # Errors
    /// Resolving failed or gave no address; or every attempt failed, and then the error is of
    /// the last attempt's kind, its message names the address and the OS error, and its
    /// [`get_ref`](io::Error::get_ref) is a [`ConnectError`](super::ConnectError).
    pub async fn connect(self, addrs: impl tokio::net::ToSocketAddrs) -> io::Result<Connection> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addrs).await?.collect();
        self.connect_to(&addrs).await
    }

    /// Connects to `addrs` in order.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_to(self, addrs: &[SocketAddr]) -> io::Result<Connection> {
        let mut walk = ConnectWalk::start(self.settings, addrs)?;
        while let Some(attempt) = walk.next_attempt() {
            let deadline = attempt
                .deadline
                .map(|deadline| timer_of(walk.clock(), deadline));
            match connect_by(attempt.addr, deadline).await {
                Ok(stream) => return Connection::from_parts(stream, walk.connected(attempt)?),
                Err(error) => walk.failed(attempt, error)?,
            }
        }
        Err(walk.finish())
    }
}

/// One connect attempt: a socket of the address's family, connected by `deadline` (given at
/// least [`MIN_ATTEMPT`]). A failed attempt's socket is closed here, at once.
async fn connect_by(
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
        self.settings.fmt(f)
    }
}
