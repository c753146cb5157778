//! The per-peer envelope rate limit (SPEC.md §13.2): a token bucket that every envelope stream
//! the peer opens draws from, including replays answered from the dedup window.

use crate::time::UnixMillis;

/// A token bucket: `rate` tokens per second up to `burst` (SPEC.md §13).
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: UnixMillis,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(rate_per_s: u32, burst: u32, now: UnixMillis) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimit {
            rate: f64::from(rate_per_s.max(1)),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: UnixMillis) -> bool {
        let elapsed = now.saturating_sub(self.last) as f64 / 1000.0;
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimit;

    #[test]
    fn rate_limit_allows_a_burst_then_the_rate() {
        let mut r = RateLimit::new(10, 5, 0);
        assert_eq!((0..8).filter(|_| r.allow(0)).count(), 5, "burst");
        assert!(!r.allow(50), "half a token after 50 ms");
        assert!(r.allow(100), "one token after 100 ms at 10/s");
        assert_eq!(
            (0..100).filter(|_| r.allow(10_000)).count(),
            5,
            "refills only up to the burst"
        );
    }
}
