#![doc = include_str!("../README.md")]
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]
// Nothing that input can reach may panic: no unchecked arithmetic, indexing or unwrapping.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

// The core: no_std, no alloc, no dependencies.
mod action;
mod close_reason;
mod config;
mod error;
mod input;
mod io_error_kind;
mod lifecycle;
mod listener;
mod listener_config;
mod state;
mod time;

pub use action::Action;
pub use close_reason::CloseReason;
pub use config::{Config, ConfigError, Setting};
pub use error::{Error, Outcome};
pub use input::{Input, InputKind};
pub use io_error_kind::IoErrorKind;
pub use lifecycle::Lifecycle;
pub use listener::{Listener, ListenerAction, ListenerError, ListenerInput, ListenerState};
pub use listener_config::ListenerConfig;
pub use state::{Permits, State};
pub use time::Instant;

// The blocking adapter over socket2: the core above never reaches it. The loom models check the
// shared-state pieces below, not the adapter, which needs the real clock.
#[cfg(all(feature = "std", not(lifecycle_loom)))]
pub mod blocking;

// The tokio adapter: the blocking adapter's connection loop, on tokio's sockets and timers.
#[cfg(all(feature = "tokio", not(lifecycle_loom)))]
pub mod tokio;

// Helpers for adapters on the standard library. The core above never uses them.
#[cfg(feature = "std")]
mod close_guard;
#[cfg(feature = "std")]
mod drain_tracker;
#[cfg(feature = "std")]
mod std_clock;
#[cfg(feature = "std")]
mod std_io;
// std's primitives, or loom's under `--cfg lifecycle_loom`, for the pieces threads share.
#[cfg(feature = "std")]
mod sync;

#[cfg(feature = "std")]
pub use close_guard::{Call, CloseRequest, Half, Side};
#[cfg(feature = "std")]
pub use drain_tracker::{DrainOutcome, DrainTracker, Registration};
#[cfg(feature = "std")]
pub use std_clock::StdClock;
