//! The blocking adapter: real sockets (`socket2`) driven through the core, one system call at a
//! time, each one asked of the [`Lifecycle`](crate::Lifecycle) first.
//!
//! - [`Connection`]: one connection, client ([`Connector`]) or accepted; [`Connection::split`]
//!   into a [`ReadHalf`] and a [`WriteHalf`] for two threads.
//! - [`Server`]: an accept loop on the [`Listener`](crate::Listener) lifecycle, a thread per
//!   connection, and a graceful drain ([`DrainHandle`]).
//! - [`Observer`]: every transition and every close, with its reason, for logs and tests.

mod abort_handle;
mod connection;
mod connector;
pub(crate) mod driver;
mod observer;
mod server;
mod split;
pub(crate) mod sys;

pub use abort_handle::AbortHandle;
pub use connection::Connection;
pub use connector::{ConnectError, Connector};
pub use observer::{Event, Observer};
pub use server::{DrainHandle, Peer, ServeReport, Server, ServerConfig};
pub use split::{ReadHalf, WriteHalf};
