//! The blocking adapter: real sockets (`socket2`) driven through the core, one system call at a
//! time, each one asked of the [`Lifecycle`](crate::Lifecycle) first. Each call waits in the
//! system call itself, bounded by the socket's timeouts.
//!
//! - [`Connection`]: one connection, client ([`Connector`]) or accepted; [`Connection::split`]
//!   into a [`ReadHalf`] and a [`WriteHalf`] for two threads.
//! - [`Server`]: an accept loop on the [`Listener`](crate::Listener) lifecycle, a thread per
//!   connection, and a graceful drain ([`DrainHandle`]).
//! - [`Observer`]: every transition, each failed connect attempt and every close, with its
//!   reason, for logs and tests; with the `tracing` feature, `TracingObserver` emits them as
//!   `tracing` events.
//!
//! What it shares with the tokio adapter (`socket_lifecycle::tokio`, feature `tokio`): the
//! observer, the server's settings and report, the connect error, is the same type in both.

mod abort_handle;
mod connection;
mod connector;
mod server;
mod split;
mod wait;

#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use crate::adapter::TracingObserver;
pub use crate::adapter::{
    ConnectError, Event, Observer, Peer, ServeReport, ServerConfig, StdClock, observer_fn,
};
pub use abort_handle::AbortHandle;
pub use connection::{Connection, close_gracefully};
pub use connector::Connector;
pub use server::{DrainHandle, Server};
pub use split::{ReadHalf, ReuniteError, WriteHalf};
