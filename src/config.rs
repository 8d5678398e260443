//! Settings of a connection's lifecycle, checked once when they are made.

use core::fmt;
use core::time::Duration;

use crate::time::duration_to_micros;

/// Deadlines a [`Lifecycle`](crate::Lifecycle) works with.
///
/// Durations are kept in whole microseconds (rounded up) and must lie between one microsecond
/// and [`Config::LONGEST`], about 71 minutes: a wait longer than that is not a timeout any more
/// but a hang, and keeping them in 32 bits keeps the [`Lifecycle`](crate::Lifecycle) small.
///
/// ```
/// use core::time::Duration;
/// use socket_lifecycle::{Config, ConfigError, Setting};
///
/// let config = Config::new()
///     .with_linger(Duration::from_secs(10), Duration::from_secs(2))?
///     .with_connect_timeout(Duration::from_millis(500))?;
/// assert_eq!(config.linger_idle(), Duration::from_secs(2));
///
/// // Waiting longer for an idle peer than for the whole close is a mistake, not a panic.
/// assert_eq!(
///     Config::new().with_linger(Duration::from_secs(1), Duration::from_secs(2)),
///     Err(ConfigError::IdleExceedsTotal)
/// );
/// assert_eq!(
///     Config::new().with_connect_timeout(Duration::ZERO),
///     Err(ConfigError::Zero(Setting::ConnectTimeout))
/// );
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    connect_timeout_us: u32,
    linger_total_us: u32,
    linger_idle_us: u32,
}

impl Config {
    /// The longest duration a setting accepts: `u32::MAX` microseconds, about 71 minutes.
    pub const LONGEST: Duration = Duration::from_micros(u32::MAX as u64);

    /// The defaults: 10 s for each connect attempt; lingering close bounded by 30 s in total and
    /// 5 s without a byte from the peer, as nginx's `lingering_time` and `lingering_timeout`.
    pub const fn new() -> Self {
        Self {
            connect_timeout_us: 10_000_000,
            linger_total_us: 30_000_000,
            linger_idle_us: 5_000_000,
        }
    }

    /// Sets the deadline of each connect attempt, counted from the moment it starts.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] or [`ConfigError::TooLong`].
    pub const fn with_connect_timeout(self, timeout: Duration) -> Result<Self, ConfigError> {
        match checked_micros(timeout, Setting::ConnectTimeout) {
            Ok(connect_timeout_us) => Ok(Self {
                connect_timeout_us,
                ..self
            }),
            Err(e) => Err(e),
        }
    }

    /// Sets the lingering-close deadlines: `total` bounds the whole close, from the moment it is
    /// requested; `idle` bounds each wait for the next byte (or end of stream) from the peer once
    /// the send side is shut.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] or [`ConfigError::TooLong`] for either duration, and
    /// [`ConfigError::IdleExceedsTotal`] if `idle` is longer than `total`.
    pub const fn with_linger(self, total: Duration, idle: Duration) -> Result<Self, ConfigError> {
        let linger_total_us = match checked_micros(total, Setting::LingerTotal) {
            Ok(us) => us,
            Err(e) => return Err(e),
        };
        let linger_idle_us = match checked_micros(idle, Setting::LingerIdle) {
            Ok(us) => us,
            Err(e) => return Err(e),
        };
        if linger_idle_us > linger_total_us {
            return Err(ConfigError::IdleExceedsTotal);
        }
        Ok(Self {
            linger_total_us,
            linger_idle_us,
            ..self
        })
    }

    /// The deadline of each connect attempt.
    pub const fn connect_timeout(&self) -> Duration {
        Duration::from_micros(self.connect_timeout_us as u64)
    }

    /// The bound on a whole graceful close.
    pub const fn linger_total(&self) -> Duration {
        Duration::from_micros(self.linger_total_us as u64)
    }

    /// The bound on each wait for the peer while lingering.
    pub const fn linger_idle(&self) -> Duration {
        Duration::from_micros(self.linger_idle_us as u64)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// Microseconds of `duration` as a setting: rejects zero and anything past [`Config::LONGEST`].
pub(crate) const fn checked_micros(
    duration: Duration,
    setting: Setting,
) -> Result<u32, ConfigError> {
    let micros = duration_to_micros(duration);
    if micros == 0 {
        Err(ConfigError::Zero(setting))
    } else if micros > u32::MAX as u64 {
        Err(ConfigError::TooLong(setting))
    } else {
        Ok(micros as u32)
    }
}

/// Which setting a [`ConfigError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
// New settings come with new variants.
#[non_exhaustive]
pub enum Setting {
    /// [`Config::with_connect_timeout`].
    ConnectTimeout,
    /// The `total` of [`Config::with_linger`].
    LingerTotal,
    /// The `idle` of [`Config::with_linger`].
    LingerIdle,
    /// The first pause of [`ListenerConfig::with_accept_backoff`](crate::ListenerConfig::with_accept_backoff).
    BackoffMin,
    /// The longest pause of [`ListenerConfig::with_accept_backoff`](crate::ListenerConfig::with_accept_backoff).
    BackoffMax,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ConnectTimeout => "connect timeout",
            Self::LingerTotal => "total linger time",
            Self::LingerIdle => "idle linger time",
            Self::BackoffMin => "first accept backoff",
            Self::BackoffMax => "longest accept backoff",
        })
    }
}

/// A setting that cannot work, found when the configuration is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration of zero: the deadline would pass before anything could happen.
    Zero(Setting),
    /// A duration longer than [`Config::LONGEST`].
    TooLong(Setting),
    /// The idle linger time is longer than the total linger time.
    IdleExceedsTotal,
    /// The first accept backoff is longer than the longest.
    BackoffMinExceedsMax,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zero(setting) => write!(f, "{setting} must be longer than zero"),
            Self::TooLong(setting) => write!(
                f,
                "{setting} must not exceed {} s",
                Config::LONGEST.as_secs()
            ),
            Self::IdleExceedsTotal => {
                f.write_str("idle linger time must not exceed the total linger time")
            }
            Self::BackoffMinExceedsMax => {
                f.write_str("first accept backoff must not exceed the longest")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_nginx_lingering_close() {
        let config = Config::default();
        assert_eq!(config.linger_total(), Duration::from_secs(30));
        assert_eq!(config.linger_idle(), Duration::from_secs(5));
        assert_eq!(config.connect_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn zero_and_too_long_durations_are_config_errors() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            Config::new().with_linger(Duration::ZERO, Duration::ZERO),
            Err(ConfigError::Zero(Setting::LingerTotal))
        );
        assert_eq!(
            Config::new().with_linger(day, Duration::from_secs(1)),
            Err(ConfigError::TooLong(Setting::LingerTotal))
        );
        assert_eq!(
            Config::new().with_linger(Duration::from_secs(1), Duration::ZERO),
            Err(ConfigError::Zero(Setting::LingerIdle))
        );
        assert_eq!(
            Config::new().with_connect_timeout(Duration::MAX),
            Err(ConfigError::TooLong(Setting::ConnectTimeout))
        );
        assert_eq!(
            Config::new()
                .with_connect_timeout(Config::LONGEST)
                .map(|c| c.connect_timeout()),
            Ok(Config::LONGEST)
        );
    }

    #[test]
    fn inverted_linger_is_a_config_error_and_equal_is_fine() {
        let one = Duration::from_secs(1);
        assert_eq!(
            Config::new().with_linger(one, one * 2),
            Err(ConfigError::IdleExceedsTotal)
        );
        assert!(Config::new().with_linger(one, one).is_ok());
    }

    #[test]
    fn config_errors_name_the_setting() {
        use std::string::ToString;
        assert_eq!(
            ConfigError::Zero(Setting::ConnectTimeout).to_string(),
            "connect timeout must be longer than zero"
        );
        assert_eq!(
            ConfigError::TooLong(Setting::LingerTotal).to_string(),
            "total linger time must not exceed 4294 s"
        );
        assert_eq!(
            ConfigError::Zero(Setting::LingerIdle).to_string(),
            "idle linger time must be longer than zero"
        );
        assert_eq!(
            ConfigError::Zero(Setting::BackoffMin).to_string(),
            "first accept backoff must be longer than zero"
        );
        assert_eq!(
            ConfigError::Zero(Setting::BackoffMax).to_string(),
            "longest accept backoff must be longer than zero"
        );
        assert_eq!(
            ConfigError::IdleExceedsTotal.to_string(),
            "idle linger time must not exceed the total linger time"
        );
        assert_eq!(
            ConfigError::BackoffMinExceedsMax.to_string(),
            "first accept backoff must not exceed the longest"
        );
    }
}
