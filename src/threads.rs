//! What threads share, and the loom models check: the T1 guard of a split connection
//! ([`Half`]), the T2 drain count ([`DrainTracker`]), and the primitives both are built on.
//! Neither knows of sockets; the adapters use both.

mod close_guard;
mod drain_tracker;
// std's primitives, or loom's under `--cfg lifecycle_loom`.
mod sync;

pub use close_guard::{Call, CloseRequest, Half, Side};
pub use drain_tracker::{DrainOutcome, DrainTracker, Registration};
