//! [`EventTime`]: a point in event time, for event times and watermarks alike, instead of bare
//! milliseconds: it says what the number is, prints as a UTC time, and has the end of time
//! (the watermark after the last input with `flush_on_end`) as a value of its own.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC) in event time. In the checkpoint's JSON it is the
/// plain number, as before it had a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTime(i64);

impl EventTime {
    /// After every event time: the watermark once the input has ended (`flush_on_end`).
    pub const END_OF_TIME: Self = Self(i64::MAX);

    /// The time `ms` milliseconds after the epoch.
    pub const fn from_ms(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn ms(self) -> i64 {
        self.0
    }

    /// `delay` earlier (a watermark from the latest event time), saturating.
    pub fn minus(self, delay: Duration) -> Self {
        let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(delay))
    }
}

impl fmt::Display for EventTime {
    /// A UTC time with milliseconds, or `end of time`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::END_OF_TIME {
            return f.write_str("end of time");
        }
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(time) => write!(f, "{}", time.format("%Y-%m-%dT%H:%M:%S%.3f")),
            None => write!(f, "{} ms", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_utc_or_end_of_time_and_serializes_as_milliseconds() {
        assert_eq!(
            EventTime::from_ms(1_704_067_210_500).to_string(),
            "2024-01-01T00:00:10.500"
        );
        assert_eq!(EventTime::END_OF_TIME.to_string(), "end of time");
        assert_eq!(
            EventTime::from_ms(10_000).minus(Duration::from_secs(5)),
            EventTime::from_ms(5_000)
        );
        assert_eq!(serde_json::to_string(&EventTime::from_ms(7)).unwrap(), "7");
    }
}
