//! [`IdleBackoff`]: how long a query with the default trigger waits before asking its sources
//! again when the last ask found nothing new.
//!
//! Spark polls every `spark.sql.streaming.pollingDelay` (10 ms). Weir starts there, so data
//! arriving after a short pause is picked up as fast, and doubles the wait with each empty
//! poll up to [`MAX_IDLE_WAIT`], so an idle query does not list a bucket or ask a broker a
//! hundred times a second. The first batch with data resets it.

use std::time::Duration;

/// The first wait after an empty poll: Spark's polling delay.
pub(crate) const FIRST_IDLE_WAIT: Duration = Duration::from_millis(10);
/// The longest wait between polls of an idle query.
pub(crate) const MAX_IDLE_WAIT: Duration = Duration::from_millis(250);

/// The waits between polls that found nothing new.
#[derive(Debug, Clone)]
pub(crate) struct IdleBackoff {
    next: Duration,
}

impl Default for IdleBackoff {
    fn default() -> Self {
        Self {
            next: FIRST_IDLE_WAIT,
        }
    }
}

impl IdleBackoff {
    /// The wait after one more empty poll.
    pub fn idle(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_IDLE_WAIT);
        wait
    }

    /// A poll found data: the next empty one waits the shortest time again.
    pub fn reset(&mut self) {
        self.next = FIRST_IDLE_WAIT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_sparks_polling_delay_to_the_cap_and_reset_on_data() {
        let mut backoff = IdleBackoff::default();
        let waits: Vec<u128> = (0..7).map(|_| backoff.idle().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 250, 250]);
        backoff.reset();
        assert_eq!(backoff.idle(), Duration::from_millis(10));
    }
}
