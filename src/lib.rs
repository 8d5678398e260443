#![doc = include_str!("../README.md")]
#![cfg_attr(not(any(test, feature = "std")), no_std)]
// No unsafe code, but for one function of the std adapters that reads `TCP_INFO`, which no
// safe crate reaches (`src/adapter/tcp_info.rs`); the core builds with `-F unsafe_code`.
#![deny(unsafe_code)]
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

// What threads share, checked with loom: the T1 guard and the T2 drain tracker. They know
// nothing of sockets; the loom models build them on loom's primitives.
#[cfg(feature = "std")]
mod threads;

// The adapter kernel: what both adapters do alike, on the standard library and socket2. The
// core above never reaches it; the loom models do not need it.
#[cfg(all(feature = "std", not(lifecycle_loom)))]
mod adapter;

// The adapters: each only how it waits.
#[cfg(all(feature = "std", not(lifecycle_loom)))]
pub mod blocking;
#[cfg(all(feature = "tokio", not(lifecycle_loom)))]
pub mod tokio;

#[cfg(all(feature = "std", not(lifecycle_loom)))]
pub use adapter::StdClock;
#[cfg(feature = "std")]
pub use threads::{Call, CloseRequest, DrainOutcome, DrainTracker, Half, Registration, Side};
