//! T2: waiting for a server's drain returns when the last tracked connection is released or when
//! the deadline fires, never before either, and no wake-up is lost.

use core::fmt;
use std::sync::PoisonError;

use super::sync::{Arc, Condvar, Mutex};

/// What the lock protects. Every change happens under the lock and every change that can end a
/// wait notifies while still holding it, so a waiter that checked and went to sleep cannot miss it.
#[derive(Clone, Copy, Debug, Default)]
struct Count {
    open: usize,
    draining: bool,
    expired: bool,
}

impl Count {
    /// How the wait ends in this state, if it ends. Drained wins over expired: when both are
    /// true, nothing is left to abort.
    fn outcome(&self) -> Option<DrainOutcome> {
        if self.draining && self.open == 0 {
            Some(DrainOutcome::Drained)
        } else if self.expired {
            Some(DrainOutcome::Expired { open: self.open })
        } else {
            None
        }
    }
}

struct Shared {
    count: Mutex<Count>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> super::sync::MutexGuard<'_, Count> {
        // No code panics while holding the lock, and a `Count` is valid after any step anyway.
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a wait for the drain ended.
// Deliberately exhaustive: a drain ends when every connection is gone or at its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DrainOutcome {
    /// Every registered connection was released.
    Drained,
    /// The deadline passed first; `open` connections were still registered then (at least one).
    /// They are the ones to abort.
    Expired {
        /// How many were still registered.
        open: usize,
    },
}

/// Counts a server's open connections and lets a thread wait for them to drain: rule T2.
///
/// Each accepted connection [`register`](DrainTracker::register)s and holds the
/// [`Registration`] until it is closed; dropping it releases it. [`start_drain`](DrainTracker::start_drain)
/// refuses new registrations from then on. [`wait`](DrainTracker::wait) blocks until the last
/// registered connection is released ([`DrainOutcome::Drained`]) or until the deadline fires
/// ([`DrainOutcome::Expired`], with how many are left), never before either.
///
/// There is no clock in here: the deadline is an input, [`expire`](DrainTracker::expire), which a
/// timer thread (or the event loop, from the `Listener`'s drain deadline) calls when it passes.
/// [`wait_timeout`](DrainTracker::wait_timeout) is the same wait with the standard library's clock
/// as that timer.
///
/// The count sits behind a mutex with a condition variable; every change that can end a wait
/// (the last release, the deadline) notifies all waiters while holding the lock, and a waiter
/// checks under the same lock before it sleeps, so no wake-up is lost. Clones share the same count.
///
/// ```
/// use std::time::Duration;
/// use socket_lifecycle::{DrainOutcome, DrainTracker};
///
/// let tracker = DrainTracker::new();
/// let connections: Vec<_> = (0..3).map(|_| tracker.register().expect("not draining")).collect();
/// let workers: Vec<_> = connections
///     .into_iter()
///     .map(|registration| std::thread::spawn(move || {
///         // ... serve the connection, close it ...
///         drop(registration); // released
///     }))
///     .collect();
///
/// // Shutting down: no new connections, then wait for these, at most 30 s.
/// tracker.start_drain();
/// assert!(tracker.register().is_none());
/// assert_eq!(tracker.wait_timeout(Duration::from_secs(30)), DrainOutcome::Drained);
/// assert_eq!(tracker.open(), 0);
/// for worker in workers {
///     worker.join().expect("the worker returns");
/// }
///
/// // A straggler that outlives the deadline, which a timer reports with `expire`.
/// let tracker = DrainTracker::new();
/// let straggler = tracker.register();
/// let timer = {
///     let tracker = tracker.clone();
///     std::thread::spawn(move || tracker.expire())
/// };
/// assert_eq!(tracker.wait(), DrainOutcome::Expired { open: 1 });
/// timer.join().expect("the timer returns");
/// drop(straggler); // the adapter aborts it
/// ```
#[derive(Clone)]
pub struct DrainTracker {
    shared: Arc<Shared>,
}

impl DrainTracker {
    /// A tracker with no connection, not draining.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                count: Mutex::new(Count::default()),
                changed: Condvar::new(),
            }),
        }
    }

    /// Registers a connection: `None` once the drain has started (or, in theory, with
    /// `usize::MAX` registered). Dropping the [`Registration`] releases it.
    pub fn register(&self) -> Option<Registration> {
        let mut count = self.shared.lock();
        if count.draining {
            return None;
        }
        count.open = count.open.checked_add(1)?;
        Some(Registration {
            shared: Arc::clone(&self.shared),
        })
    }

    /// Starts the drain: every later [`register`](DrainTracker::register) is refused. Returns
    /// whether this call started it (`false` if it had already started).
    pub fn start_drain(&self) -> bool {
        let mut count = self.shared.lock();
        let first = !count.draining;
        // No waiter to wake: a waiter has set `draining` itself before it sleeps.
        count.draining = true;
        first
    }

    /// The deadline passed: every wait returns [`DrainOutcome::Expired`] unless everything was
    /// already released. It also starts the drain if it had not started.
    pub fn expire(&self) {
        let mut count = self.shared.lock();
        count.draining = true;
        count.expired = true;
        self.shared.changed.notify_all();
    }

    /// How many connections are registered now.
    pub fn open(&self) -> usize {
        self.shared.lock().open
    }

    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        self.shared.lock().draining
    }

    /// Whether the drain has ended, and how, without waiting: `None` while it has not started or
    /// connections are open before the deadline.
    pub fn outcome(&self) -> Option<DrainOutcome> {
        self.shared.lock().outcome()
    }

    /// Starts the drain if it had not started, then blocks until every registered connection is
    /// released or [`expire`](DrainTracker::expire) is called, whichever comes first, and says
    /// which. Returns at once if one of them already happened.
    pub fn wait(&self) -> DrainOutcome {
        let mut count = self.shared.lock();
        count.draining = true;
        loop {
            if let Some(outcome) = count.outcome() {
                return outcome;
            }
            // Checked under the lock, and the lock is released only inside `wait`: a release or
            // an expiry between the check and the sleep is impossible, so none is missed.
            count = self
                .shared
                .changed
                .wait(count)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// [`wait`](DrainTracker::wait), with the standard library's clock as the timer: if the
    /// connections are not all released within `timeout`, the deadline passes as if
    /// [`expire`](DrainTracker::expire) had been called then (for every waiter).
    ///
    /// Not available in the loom build, which has no time: the loom models call `expire`.
    #[cfg(not(lifecycle_loom))]
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> DrainOutcome {
        let Some(deadline) = std::time::Instant::now().checked_add(timeout) else {
            return self.wait(); // further than the clock can count: no deadline
        };
        let mut count = self.shared.lock();
        count.draining = true;
        loop {
            if let Some(outcome) = count.outcome() {
                return outcome;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                count.expired = true;
                self.shared.changed.notify_all();
                return DrainOutcome::Expired { open: count.open };
            }
            // Spurious and early wake-ups just go round the loop again.
            count = match self.shared.changed.wait_timeout(count, left) {
                Ok((count, _)) => count,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Default for DrainTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DrainTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = *self.shared.lock();
        f.debug_struct("DrainTracker")
            .field("open", &count.open)
            .field("draining", &count.draining)
            .field("expired", &count.expired)
            .finish()
    }
}

/// A connection registered with a [`DrainTracker`]; dropping it releases the connection, and
/// the last release of a drain wakes the waiters.
#[must_use = "dropping the registration releases the connection at once"]
pub struct Registration {
    shared: Arc<Shared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut count = self.shared.lock();
        // Never below zero: each registration added one and is dropped once.
        count.open = count.open.saturating_sub(1);
        if count.open == 0 {
            // Notify while holding the lock, after the change: a waiter either has not checked
            // yet (and will see zero) or is asleep on the condition variable (and is woken).
            self.shared.changed.notify_all();
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(lifecycle_loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    // Tests before the drain.

    #[test]
    fn registrations_count_up_and_down() {
        let tracker = DrainTracker::new();
        let a = tracker.register().expect("not draining");
        let b = tracker.register().expect("not draining");
        assert_eq!(tracker.open(), 2);
        drop(a);
        assert_eq!(tracker.open(), 1);
        drop(b);
        assert_eq!(tracker.open(), 0);
        assert!(!tracker.is_draining());
        assert_eq!(
            tracker.outcome(),
            None,
            "not drained before the drain starts"
        );
    }

    // Tests for the draining state.

    #[test]
    fn t2_no_registration_after_the_drain_starts() {
        let tracker = DrainTracker::new();
        assert!(tracker.start_drain());
        assert!(!tracker.start_drain(), "only the first call starts it");
        assert!(
            tracker.register().is_none(),
            "T2 violated: registered while draining"
        );
        assert_eq!(tracker.open(), 0);
    }

    #[test]
    fn t2_an_empty_drain_is_drained_at_once() {
        let tracker = DrainTracker::new();
        assert_eq!(tracker.wait(), DrainOutcome::Drained);
        assert!(tracker.is_draining(), "waiting starts the drain");
        assert_eq!(tracker.wait_timeout(Duration::ZERO), DrainOutcome::Drained);
    }

    #[test]
    fn t2_not_drained_while_one_is_open() {
        let tracker = DrainTracker::new();
        let registration = tracker.register().expect("not draining");
        tracker.start_drain();
        assert_eq!(
            tracker.outcome(),
            None,
            "T2 violated: drained with one open"
        );
        drop(registration);
        assert_eq!(tracker.outcome(), Some(DrainOutcome::Drained));
    }

    #[test]
    fn t2_the_deadline_ends_the_wait_with_the_count_left() {
        let tracker = DrainTracker::new();
        let _a = tracker.register().expect("not draining");
        let _b = tracker.register().expect("not draining");
        tracker.expire();
        assert!(tracker.is_draining(), "the deadline starts the drain");
        assert_eq!(tracker.wait(), DrainOutcome::Expired { open: 2 });
    }

    #[test]
    fn t2_drained_wins_over_a_deadline_that_came_too() {
        let tracker = DrainTracker::new();
        let registration = tracker.register().expect("not draining");
        tracker.expire();
        drop(registration);
        assert_eq!(tracker.wait(), DrainOutcome::Drained);
    }

    #[test]
    fn t2_wait_timeout_expires_for_every_waiter() {
        let tracker = DrainTracker::new();
        let _straggler = tracker.register().expect("not draining");
        assert_eq!(
            tracker.wait_timeout(Duration::from_millis(1)),
            DrainOutcome::Expired { open: 1 }
        );
        assert_eq!(tracker.outcome(), Some(DrainOutcome::Expired { open: 1 }));
    }

    #[test]
    fn debug_shows_the_count() {
        let tracker = DrainTracker::new();
        let registration = tracker.register().expect("not draining");
        assert_eq!(
            format!("{tracker:?}"),
            "DrainTracker { open: 1, draining: false, expired: false }"
        );
        assert_eq!(format!("{registration:?}"), "Registration { .. }");
    }

    // Tests across threads.

    #[test]
    fn t2_the_last_release_on_another_thread_wakes_the_waiter() {
        for _ in 0..100 {
            let tracker = DrainTracker::new();
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let registration = tracker.register().expect("not draining");
                    std::thread::spawn(move || drop(registration))
                })
                .collect();
            // A lost wake-up would block here for good (the test would hang, not pass).
            assert_eq!(tracker.wait(), DrainOutcome::Drained);
            assert_eq!(tracker.open(), 0);
            for worker in workers {
                worker.join().expect("the worker returns");
            }
        }
    }

    #[test]
    fn t2_expire_on_another_thread_wakes_the_waiter() {
        for _ in 0..100 {
            let tracker = DrainTracker::new();
            let _straggler = tracker.register().expect("not draining");
            let timer = {
                let tracker = tracker.clone();
                std::thread::spawn(move || tracker.expire())
            };
            assert_eq!(tracker.wait(), DrainOutcome::Expired { open: 1 });
            timer.join().expect("the timer returns");
        }
    }

    #[test]
    fn t2_registrations_racing_the_drain_are_all_waited_for() {
        for _ in 0..100 {
            let tracker = DrainTracker::new();
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let tracker = tracker.clone();
                    std::thread::spawn(move || tracker.register().is_some())
                })
                .collect();
            assert_eq!(tracker.wait(), DrainOutcome::Drained);
            for worker in workers {
                worker.join().expect("the worker returns");
            }
            assert_eq!(tracker.open(), 0, "T2 violated: drained with one open");
        }
    }
}
