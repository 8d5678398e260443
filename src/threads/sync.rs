//! The synchronisation primitives of the pieces that threads share ([`Half`](crate::Half) and
//! [`DrainTracker`](crate::DrainTracker)): the standard library's, or loom's when built with
//! `RUSTFLAGS="--cfg lifecycle_loom"` so that the loom models in `proofs/tests/loom.rs` can
//! explore every interleaving of them.

#[cfg(not(lifecycle_loom))]
pub(crate) use std::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicUsize, Ordering},
};

#[cfg(lifecycle_loom)]
pub(crate) use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicUsize, Ordering},
};
