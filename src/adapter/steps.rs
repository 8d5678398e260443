//! The shape every `recv` and `send` of both adapters takes, on a whole connection or on one half
//! of a split one: ask the core, wait the adapter's way, report what came back.

use std::io;
use std::time::Duration;

use socket2::SockRef;

use super::driver::{Received, Sent};
use super::signal::{Signal, Wake};

/// What an adapter keeps its socket in (a `socket2::Socket` behind an `Arc`, a
/// `tokio::net::TcpStream`), seen as a socket for the core's actions.
pub(crate) trait SocketLike: Send + Sync {
    fn socket_ref(&self) -> SockRef<'_>;
}

/// One connection's steps around each wait. The order of calls, for a `recv`:
///
/// 1. [`before_recv`](Self::before_recv): `Ok(true)` to wait for bytes; `Ok(false)` to answer 0
///    at once; an error to return (closed, or aborted through a handle just now).
/// 2. The adapter's wait on [`socket`](Self::socket), bounded by
///    [`idle_timeout`](Self::idle_timeout) and ended early by [`signal`](Self::signal).
/// 3. [`after_recv`](Self::after_recv) with what the wait came back with: the answer.
///
/// A `send` is the same with [`before_send`](Self::before_send) and
/// [`after_send`](Self::after_send).
pub(crate) trait Steps {
    type Socket: SocketLike;
    type Waker: Wake;

    fn before_recv(&mut self, empty: bool) -> io::Result<bool>;
    fn after_recv(&mut self, received: Received) -> io::Result<usize>;
    fn before_send(&mut self) -> io::Result<()>;
    fn after_send(&mut self, sent: Sent) -> io::Result<usize>;
    /// The socket to wait on: `None` only once the connection has closed, which the `before_`
    /// step has reported already.
    fn socket(&self) -> Option<&Self::Socket>;
    fn signal(&self) -> &Signal<Self::Waker>;
    fn idle_timeout(&self) -> Option<Duration>;
}
