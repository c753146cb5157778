//! The wall clock: Unix milliseconds, for the timestamps hotline signs and checks.

use hotline_protocol::time::UnixMillis;

/// Unix milliseconds now (0 if the clock reads before 1970).
pub fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
