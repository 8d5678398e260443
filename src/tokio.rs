//! The tokio adapter: `tokio::net` sockets driven through the core, every call asked of the
//! [`Lifecycle`](crate::Lifecycle) first, every deadline of the core a tokio timer.
//!
//! It mirrors the [blocking adapter](crate::blocking), in async form, and shares its observer,
//! its connection driver and its server's settings and report:
//!
//! - [`Connection`]: one connection, client ([`Connector`]) or accepted; [`Connection::split`]
//!   into a [`ReadHalf`] and a [`WriteHalf`] for two tasks. The lingering close reads and
//!   discards under a tokio timer, never blocking a worker thread.
//! - [`Server`]: an accept loop on the [`Listener`](crate::Listener) lifecycle, a task per
//!   connection, and a graceful drain ([`DrainHandle`]).
//! - [`Observer`]: every transition and every close, with its reason (the blocking adapter's).
//!
//! Enabled by the `tokio` feature. The adapter spawns tasks only in [`Server::serve`], with
//! `tokio::spawn`: it needs a tokio runtime with its time and I/O drivers enabled.

mod abort_handle;
mod connection;
mod connector;
mod server;
mod split;

pub use crate::blocking::{ConnectError, Event, Observer, Peer, ServeReport, ServerConfig};
pub use abort_handle::AbortHandle;
pub use connection::Connection;
pub use connector::Connector;
pub use server::{DrainHandle, HandlerFuture, Server};
pub use split::{ReadHalf, WriteHalf};
