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
//! - the observer and its events, the clock, and the mapping of `std::io` errors.

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

pub use clock::StdClock;
pub use connect::ConnectError;
pub use observer::{Event, Observer};
pub use server::{Peer, ServeReport, ServerConfig};

pub(crate) use connect::{ConnectSettings, ConnectWalk, MIN_ATTEMPT};
pub(crate) use driver::{Driver, Received, Sent};
pub(crate) use endpoint::{DISCARD_CHUNK, Endpoint};
pub(crate) use server::{Abort, Books, Served};
pub(crate) use signal::{Signal, Wake};
pub(crate) use split::SplitHalf;
pub(crate) use steps::{SocketLike, Steps};
