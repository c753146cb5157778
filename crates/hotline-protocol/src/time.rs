//! Time as the protocol sees it: Unix milliseconds, passed in by the caller.

/// Unix time in milliseconds (UTC). The protocol never reads a clock itself.
pub type UnixMillis = u64;

/// One second in milliseconds.
pub const SECOND: u64 = 1_000;
/// One minute in milliseconds.
pub const MINUTE: u64 = 60 * SECOND;
/// One day in milliseconds.
pub const DAY: u64 = 24 * 60 * MINUTE;

/// How far in the future an envelope's `created_ms` may be (clock skew allowance).
pub const MAX_FUTURE_SKEW: u64 = 5 * MINUTE;
/// How old an envelope's `created_ms` may be when it arrives; receivers keep dedup state at
/// least this long.
pub const MAX_MESSAGE_AGE: u64 = 30 * DAY;
