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
        Self::new_f64(f64::from(rate_per_s), f64::from(burst), now)
    }

    /// A full bucket of bytes: `bytes_per_s` up to `burst` bytes.
    pub fn bytes(bytes_per_s: u64, burst: u64, now: Monotonic) -> Self {
        Self::new_f64(bytes_per_s as f64, burst as f64, now)
    }

    /// A full bucket of `burst` tokens, one coming back every `period_s` seconds.
    pub fn per_period(period_s: u64, burst: u32, now: Monotonic) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimit {
            rate: 1.0 / period_s.max(1) as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn new_f64(rate: f64, burst: f64, now: Monotonic) -> Self {
        let burst = burst.max(1.0);
        RateLimit {
            rate: rate.max(1.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Monotonic) -> bool {
        self.allow_n(now, 1)
    }

    /// Takes `n` tokens if there are that many.
    pub fn allow_n(&mut self, now: Monotonic, n: u64) -> bool {
        let elapsed = now.since(self.last) as f64 / 1000.0;
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
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
    fn a_byte_bucket_takes_sizes() {
        let ms = Monotonic::from_millis;
        let mut r = RateLimit::bytes(1000, 3000, ms(0));
        assert!(r.allow_n(ms(0), 2500));
        assert!(!r.allow_n(ms(0), 1000), "500 left");
        assert!(r.allow_n(ms(500), 1000), "500 + 500 after half a second");
        assert!(!r.allow_n(ms(10_000), 3001), "never more than the burst");
    }

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
