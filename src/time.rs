//! The core's own notion of time.
//!
//! The core never reads a clock: every input carries `now`, and the adapter chooses the epoch.
//! Time is a count of microseconds, so it fits in a `u64` for half a million years and needs no
//! standard library. Arithmetic saturates: a deadline that would lie beyond the end of
//! representable time is [`Instant::MAX`], which no clock counting from a sensible epoch reaches
//! (half a million years on). It is still an instant like any other: a `now` of `Instant::MAX`
//! reaches it, and `handle_timeout(Instant::MAX)` fires it.

use core::fmt;
use core::time::Duration;

/// A point in time, in microseconds since an epoch the adapter chooses.
///
/// Only differences between instants matter. An adapter on the standard library usually takes
/// the moment it starts as the epoch (see `StdClock` with the `std` feature).
///
/// ```
/// use core::time::Duration;
/// use socket_lifecycle::Instant;
///
/// let start = Instant::from_millis(1_000);
/// let later = start + Duration::from_millis(250);
/// assert_eq!(later.as_micros(), 1_250_000);
/// assert_eq!(later.saturating_duration_since(start), Duration::from_millis(250));
/// // Time running backwards gives a zero duration, never a panic.
/// assert_eq!(start.saturating_duration_since(later), Duration::ZERO);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The epoch.
    pub const ZERO: Self = Self { micros: 0 };
    /// The last representable instant. A deadline here is never reached by a real clock, but a
    /// `now` of `Instant::MAX` does reach it: deadlines fire at `now >= deadline`.
    pub const MAX: Self = Self { micros: u64::MAX };

    /// The instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Self { micros }
    }

    /// The instant `millis` milliseconds after the epoch, saturating at [`Instant::MAX`].
    pub const fn from_millis(millis: u64) -> Self {
        Self {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// This instant plus `duration`, saturating at [`Instant::MAX`].
    pub const fn saturating_add(self, duration: Duration) -> Self {
        Self {
            micros: self.micros.saturating_add(duration_to_micros(duration)),
        }
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }
}

/// Whole microseconds in `duration`, rounded up so a non-zero duration never becomes zero, and
/// saturating at `u64::MAX`.
pub(crate) const fn duration_to_micros(duration: Duration) -> u64 {
    let whole = duration.as_micros();
    let rounded = if duration.subsec_nanos() % 1_000 == 0 {
        whole
    } else {
        whole.saturating_add(1)
    };
    if rounded > u64::MAX as u128 {
        u64::MAX
    } else {
        rounded as u64
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;

    /// Saturating, as [`Instant::saturating_add`]: adding never panics.
    fn add(self, duration: Duration) -> Instant {
        self.saturating_add(duration)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_saturates_instead_of_overflowing() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::ZERO + Duration::MAX, Instant::MAX);
        assert_eq!(Instant::from_millis(u64::MAX), Instant::MAX);
    }

    #[test]
    fn sub_microsecond_durations_round_up() {
        assert_eq!(duration_to_micros(Duration::from_nanos(1)), 1);
        assert_eq!(duration_to_micros(Duration::from_nanos(1_000)), 1);
        assert_eq!(duration_to_micros(Duration::from_nanos(1_001)), 2);
        assert_eq!(duration_to_micros(Duration::ZERO), 0);
    }

    #[test]
    fn debug_shows_seconds() {
        use std::format;
        assert_eq!(
            format!("{:?}", Instant::from_micros(1_500_042)),
            "1.500042s"
        );
    }
}
