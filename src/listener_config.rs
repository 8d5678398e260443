//! Settings of a listener's lifecycle.

use core::time::Duration;

use crate::config::checked_micros;
use crate::{ConfigError, Setting};

/// How a [`Listener`](crate::Listener) backs off after a failed `accept` (typically `EMFILE`,
/// out of descriptors): it pauses `min`, doubling each failure in a row up to `max`, and starts
/// again at `min` after a success. The defaults, 5 ms to 1 s, are those of Go's `net/http`.
///
/// ```
/// use core::time::Duration;
/// use socket_lifecycle::{ConfigError, ListenerConfig};
///
/// let config = ListenerConfig::new()
///     .with_accept_backoff(Duration::from_millis(10), Duration::from_millis(500))?;
/// assert_eq!(config.accept_backoff_max(), Duration::from_millis(500));
/// assert_eq!(
///     ListenerConfig::new().with_accept_backoff(Duration::from_secs(2), Duration::from_secs(1)),
///     Err(ConfigError::BackoffMinExceedsMax)
/// );
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerConfig {
    backoff_min_us: u32,
    backoff_max_us: u32,
}

impl ListenerConfig {
    /// The defaults: back off from 5 ms up to 1 s.
    pub const fn new() -> Self {
        Self {
            backoff_min_us: 5_000,
            backoff_max_us: 1_000_000,
        }
    }

    /// Sets the first and the longest pause after a failed accept.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] or [`ConfigError::TooLong`] for either, and
    /// [`ConfigError::BackoffMinExceedsMax`] if `min` is longer than `max`.
    pub const fn with_accept_backoff(
        self,
        min: Duration,
        max: Duration,
    ) -> Result<Self, ConfigError> {
        let backoff_min_us = match checked_micros(min, Setting::BackoffMin) {
            Ok(us) => us,
            Err(e) => return Err(e),
        };
        let backoff_max_us = match checked_micros(max, Setting::BackoffMax) {
            Ok(us) => us,
            Err(e) => return Err(e),
        };
        if backoff_min_us > backoff_max_us {
            return Err(ConfigError::BackoffMinExceedsMax);
        }
        Ok(Self {
            backoff_min_us,
            backoff_max_us,
        })
    }

    /// The first pause after a failed accept.
    pub const fn accept_backoff_min(&self) -> Duration {
        Duration::from_micros(self.backoff_min_us as u64)
    }

    /// The longest pause after failed accepts in a row.
    pub const fn accept_backoff_max(&self) -> Duration {
        Duration::from_micros(self.backoff_max_us as u64)
    }

    /// The pause after `pause`: twice as long, capped at the longest.
    pub(crate) fn next_backoff_us(&self, pause_us: u32) -> u32 {
        pause_us.saturating_mul(2).min(self.backoff_max_us)
    }

    pub(crate) const fn backoff_min_us(&self) -> u32 {
        self.backoff_min_us
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_backoff_is_allowed_and_stays_fixed() {
        let pause = Duration::from_millis(50);
        let config = ListenerConfig::new()
            .with_accept_backoff(pause, pause)
            .unwrap();
        assert_eq!(config.next_backoff_us(config.backoff_min_us()), 50_000);
    }

    #[test]
    fn the_backoff_doubles_up_to_the_longest() {
        let config = ListenerConfig::new();
        assert_eq!(config.accept_backoff_min(), Duration::from_millis(5));
        assert_eq!(config.next_backoff_us(5_000), 10_000);
        assert_eq!(config.next_backoff_us(600_000), 1_000_000);
        assert_eq!(config.next_backoff_us(u32::MAX), 1_000_000);
    }
}
