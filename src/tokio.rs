//! The tokio adapter: `tokio::net` sockets driven through the core, every call asked of the
//! [`Lifecycle`](crate::Lifecycle) first, every deadline of the core a tokio timer.
//!
//! It is the [blocking adapter](crate::blocking) in async form: the same steps through the core,
//! written once for both; only the waits differ, here readiness, tokio timers and a
//! notification instead of blocking system calls.
//!
//! - [`Connection`]: one connection, client ([`Connector`]) or accepted; [`Connection::split`]
//!   into a [`ReadHalf`] and a [`WriteHalf`] for two tasks. The lingering close reads and
//!   discards under a tokio timer, never blocking a worker thread.
//! - [`Server`]: an accept loop on the [`Listener`](crate::Listener) lifecycle, a task per
//!   connection, and a graceful drain ([`DrainHandle`]).
//! - [`Observer`]: every transition, each failed connect attempt and every close, with its
//!   reason (the same type as the blocking adapter's, as are [`ServerConfig`], [`ServeReport`],
//!   [`Peer`], [`ConnectError`] and, with the `tracing` feature, `TracingObserver`).
//!
//! Enabled by the `tokio` feature. The adapter spawns tasks only in [`Server::serve`], with
//! `tokio::spawn`: it needs a tokio runtime with its time and I/O drivers enabled.

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
pub use server::{DrainHandle, HandlerFuture, Server};
pub use split::{ReadHalf, ReuniteError, WriteHalf};
