//! The bridge from the standard library's clock to the core's [`Instant`].

use std::time::{Duration, Instant as StdInstant};

use crate::Instant;

/// Reads the monotonic clock of the standard library and gives the core's [`Instant`]s, counted
/// from the moment the clock was made. Adapters hold one; the core never reads a clock.
///
/// ```
/// use socket_lifecycle::StdClock;
///
/// let clock = StdClock::new();
/// let now = clock.now();
/// let deadline = now + std::time::Duration::from_millis(50);
/// assert!(clock.until(deadline) <= std::time::Duration::from_millis(50));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    epoch: StdInstant,
}

impl StdClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Self {
            epoch: StdInstant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.instant_of(StdInstant::now())
    }

    /// The core's instant for a standard one (the epoch for one before it).
    pub fn instant_of(&self, instant: StdInstant) -> Instant {
        Instant::ZERO.saturating_add(instant.saturating_duration_since(self.epoch))
    }

    /// The standard instant for a core one, or `None` past what the platform can represent.
    pub fn std_instant_of(&self, instant: Instant) -> Option<StdInstant> {
        self.epoch
            .checked_add(Duration::from_micros(instant.as_micros()))
    }

    /// How long from now until `deadline`: zero if it has passed. What a blocking adapter sets as
    /// its read timeout, from [`Lifecycle::poll_timeout`](crate::Lifecycle::poll_timeout).
    pub fn until(&self, deadline: Instant) -> Duration {
        deadline.saturating_duration_since(self.now())
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_std_instants() {
        let clock = StdClock::new();
        let later = clock.epoch + Duration::from_millis(1_500);
        let core = clock.instant_of(later);
        assert_eq!(core, Instant::from_millis(1_500));
        assert_eq!(clock.std_instant_of(core), Some(later));
    }

    #[test]
    fn instants_before_the_epoch_are_the_epoch() {
        let clock = StdClock::new();
        if let Some(before) = clock.epoch.checked_sub(Duration::from_secs(1)) {
            assert_eq!(clock.instant_of(before), Instant::ZERO);
        }
    }

    #[test]
    fn until_a_past_deadline_is_zero() {
        let clock = StdClock::new();
        assert_eq!(clock.until(Instant::ZERO), Duration::ZERO);
    }
}
