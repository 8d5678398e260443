//! The adapter kernel: everything both adapters do the same way, written once. The blocking and
//! tokio adapters keep only what differs, which is how they wait. Neither imports the other;
//! both import this.
//!
//! - the steps of a connection through the core ([`Driver`]): ask before each system call,
//!   report what came back, tell the observer, perform the core's actions; on a whole
//!   connection ([`Endpoint`]) or the two halves of a split one ([`SplitHalf`], on the T1 guard);
//! - the system calls, each in the one form it is made in ([`sys`]);
//! - what wakes a pending wait ([`Signal`]): an abort from elsewhere, or the other half's close;
//! - the connector's walk through the resolved addresses ([`ConnectWalk`]);
//! - the server's settings, report and books ([`Books`]: the listener lifecycle, the open
//!   connections, the T2 drain tracker);
//! - the observer and its events, the clock, and the mapping of `std::io` errors;
//! - with the `tracing` feature, the observer that emits `tracing` events.

mod clock;
mod connect;
mod driver;
mod endpoint;
mod io_error;
mod observer;
mod server;
mod signal;
mod split;
mod steps;
pub(crate) mod sys;
mod tcp_info;
#[cfg(feature = "tracing")]
mod tracing_observer;

pub use clock::StdClock;
pub use connect::ConnectError;
pub use observer::{Event, Observer, observer_fn};
pub use server::{Peer, ServeReport, ServerConfig};
#[cfg(feature = "tracing")]
pub use tracing_observer::TracingObserver;

pub(crate) use connect::{ConnectSettings, ConnectWalk, MIN_ATTEMPT};
pub(crate) use driver::{CloseWait, Driver, Received, Sent};
pub(crate) use endpoint::{DISCARD_CHUNK, Endpoint};
pub(crate) use server::{Abort, Books, Served};
pub(crate) use signal::{Signal, Wake};
pub(crate) use split::SplitHalf;
pub(crate) use steps::{SocketLike, Steps};
#[cfg(feature = "tracing")]
pub(crate) use tracing_observer::accept_failed;

/// The descriptor (Unix) or socket handle (Windows) of an adapter's connection type, whose field
/// `endpoint` is an [`Endpoint`]: the connection's socket while it holds it, so that
/// `socket2::SockRef::from(&connection)` reaches every socket option; once the connection is
/// closed and its socket released, a stand-in that belongs to no connection.
macro_rules! impl_as_socket {
    ($connection:ty) => {
        /// The connection's socket while it is open (for `socket2::SockRef::from(&connection)`:
        /// `TCP_NODELAY`, keepalive and the rest). Once closed, its socket is released, and this
        /// is a stand-in socket that belongs to no connection: options set on it change nothing,
        /// and asking it for a peer fails (`ENOTCONN`).
        #[cfg(unix)]
        impl std::os::fd::AsFd for $connection {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.endpoint.as_fd()
            }
        }

        /// As [`AsFd`](std::os::fd::AsFd).
        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $connection {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&self.endpoint))
            }
        }

        /// The connection's socket while it is open (for `socket2::SockRef::from(&connection)`:
        /// `TCP_NODELAY`, keepalive and the rest). Once closed, its socket is released, and this
        /// is a stand-in socket that belongs to no connection: options set on it change nothing,
        /// and asking it for a peer fails (`WSAENOTCONN`).
        #[cfg(windows)]
        impl std::os::windows::io::AsSocket for $connection {
            fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
                self.endpoint.as_socket()
            }
        }

        /// As [`AsSocket`](std::os::windows::io::AsSocket).
        #[cfg(windows)]
        impl std::os::windows::io::AsRawSocket for $connection {
            fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
                std::os::windows::io::AsRawSocket::as_raw_socket(
                    &std::os::windows::io::AsSocket::as_socket(&self.endpoint),
                )
            }
        }
    };
}
pub(crate) use impl_as_socket;
