//! The one wall clock. AzBatch measures time with tokio's clock (which tests
//! pause and advance); the wall time it needs (HTTP dates in `Retry-After`,
//! token expiry) is read once when a [`Clock`] is made and then moves with
//! tokio's clock. So a test on the paused clock sees wall time advance exactly
//! as far as its timers, and nothing else in the library reads the system
//! time: clippy's `disallowed-methods` bans `SystemTime::now` and
//! `Instant::now` everywhere but here.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Wall time that advances with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: SystemTime,
    at: Instant,
}

impl Clock {
    /// A clock that starts at the system's time now.
    #[allow(clippy::disallowed_methods)] // the one reading of the system time
    pub fn system() -> Clock {
        Clock::starting_at(SystemTime::now())
    }

    /// A clock that reads `wall` now (tests).
    pub fn starting_at(wall: SystemTime) -> Clock {
        Clock {
            wall,
            at: Instant::now(),
        }
    }

    /// The wall time now.
    pub fn now(&self) -> SystemTime {
        self.wall + self.at.elapsed()
    }

    /// The wall time `d` from now.
    pub fn after(&self, d: Duration) -> SystemTime {
        self.now() + d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn moves_with_tokios_clock() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = Clock::starting_at(t0);
        assert_eq!(c.now(), t0);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(c.now(), t0 + Duration::from_secs(90));
        assert_eq!(
            c.after(Duration::from_secs(10)),
            t0 + Duration::from_secs(100)
        );
    }
}
