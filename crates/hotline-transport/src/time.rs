//! The wall clock: Unix milliseconds, for the timestamps hotline signs and checks, and their
//! ISO 8601 text for operators (UTC), shared by the node and the operator client.

use hotline_protocol::time::UnixMillis;

/// Unix milliseconds now (0 if the clock reads before 1970).
pub fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day count from
/// 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn parts(ms: u64) -> (i64, u32, u32, u64, u64, u64) {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2026-01-31T12:34Z`: ISO 8601, UTC, minute precision.
pub fn utc_minute(ms: UnixMillis) -> String {
    let (y, m, d, h, mi, _) = parts(ms);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}Z")
}

/// `2026-01-31T12:34:56Z`: ISO 8601, UTC, second precision.
pub fn utc_second(ms: UnixMillis) -> String {
    let (y, m, d, h, mi, s) = parts(ms);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text() {
        assert_eq!(utc_second(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_minute(1_830_297_600_000), "2028-01-01T00:00Z");
        assert_eq!(utc_second(951_782_399_000), "2000-02-28T23:59:59Z");
        assert_eq!(utc_second(951_868_800_000), "2000-03-01T00:00:00Z");
    }
}
