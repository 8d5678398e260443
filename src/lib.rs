// The crate's page: what it is, the three ways in, the diagram (shared with `State`'s page),
// where things are, the features.
#![doc = include_str!("docs/crate.md")]
#![doc = concat!("```text\n", include_str!("docs/states.txt"), "```")]
#![doc = include_str!("docs/crate-end.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The loom cfg is the models', never a user's: no "non-lifecycle_loom" on the pages.
#![cfg_attr(docsrs, doc(auto_cfg(hide(lifecycle_loom))))]
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
mod transition;

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

// The adapters: each only how it waits. Each module holds everything its users need, so that the
// root stays the core's.
#[cfg(all(feature = "std", not(lifecycle_loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub mod blocking;
#[cfg(all(feature = "tokio", not(lifecycle_loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

// The pieces an adapter of one's own builds on (also in `blocking` and `tokio`, as far as they
// use them): the clock, the T1 guard and the T2 tracker.
#[cfg(all(feature = "std", not(lifecycle_loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use adapter::StdClock;
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use threads::{Call, CloseRequest, DrainOutcome, DrainTracker, Half, Registration, Side};

// The README's examples run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
