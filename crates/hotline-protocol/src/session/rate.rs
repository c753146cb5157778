//! Token buckets for what the peer may do at a rate (SPEC.md §13.2): the message streams it
//! opens (envelope and receipt streams draw from one bucket, replays answered from the dedup
//! window included), and the Heartbeat pings it sends. They run on the monotonic clock.

use super::Monotonic;

/// A token bucket: `rate` tokens per second up to `burst` (SPEC.md §13).
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Monotonic,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(rate_per_s: u32, burst: u32, now: Monotonic) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimit {
            rate: f64::from(rate_per_s.max(1)),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Monotonic) -> bool {
        let elapsed = now.since(self.last) as f64 / 1000.0;
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Fills the bucket again (a new connection starts with a full one).
    pub fn refill(&mut self, now: Monotonic) {
        self.tokens = self.burst;
        self.last = self.last.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::{Monotonic, RateLimit};

    #[test]
    fn rate_limit_allows_a_burst_then_the_rate() {
        let ms = Monotonic::from_millis;
        let mut r = RateLimit::new(10, 5, ms(0));
        assert_eq!((0..8).filter(|_| r.allow(ms(0))).count(), 5, "burst");
        assert!(!r.allow(ms(50)), "half a token after 50 ms");
        assert!(r.allow(ms(100)), "one token after 100 ms at 10/s");
        assert_eq!(
            (0..100).filter(|_| r.allow(ms(10_000))).count(),
            5,
            "refills only up to the burst"
        );
        r.refill(ms(10_000));
        assert_eq!(
            (0..8).filter(|_| r.allow(ms(10_000))).count(),
            5,
            "refilled"
        );
    }
}
