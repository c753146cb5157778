//! The wall clock: Unix milliseconds, for the timestamps hotline signs and checks, and their
//! ISO 8601 text for operators (UTC), and the parsing of times and durations operators type,
//! shared by the node and the operator client.

use std::time::Duration;

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

const UNITS: &str = "ms, s, m, h, d or w (e.g. 30s, 5m, 1h30m, 7d)";

/// Parses a duration: one or more `NUMBER UNIT` groups, units `ms`, `s`, `m`, `h`, `d`, `w`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty duration; use {UNITS}"));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?} is not a duration; use {UNITS}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "" => return Err(format!("{text:?} lacks a unit; use {UNITS}")),
            u => return Err(format!("{text:?}: unknown unit {u:?}; use {UNITS}")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(ms_per)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: duration too large"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, what: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse().map_err(|_| format!("{what} {s:?} out of range"))
}

/// Parses an RFC 3339 date-time (`2026-01-31T12:00:00Z`, `…+02:00`, fractional seconds,
/// seconds optional) or a bare date (`2026-01-31`, midnight UTC) into Unix milliseconds.
pub fn rfc3339(text: &str) -> Result<u64, String> {
    let bad = |why: String| {
        format!("{text:?} is not an RFC 3339 time ({why}); e.g. 2026-01-31 or 2026-01-31T12:00:00Z")
    };
    let s = text.trim();
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = match (parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(d)) if y.len() == 4 && m.len() == 2 && d.len() == 2 => (
            num(y, "year").map_err(bad)?,
            num(m, "month").map_err(bad)?,
            num(d, "day").map_err(bad)?,
        ),
        _ => return Err(bad("the date is YYYY-MM-DD".into())),
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > month_days[(m - 1) as usize] {
        return Err(bad("no such date".into()));
    }
    let days = days_from_civil(i64::from(y), m, d);
    let mut ms = days * 86_400_000;
    if let Some(time) = time {
        let (clock, offset_ms) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
            (c, 0i64)
        } else if let Some(i) = time.rfind(['+', '-']) {
            let (c, off) = (&time[..i], &time[i..]);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (oh, om) = off[1..]
                .split_once(':')
                .ok_or_else(|| bad("the offset is ±HH:MM".into()))?;
            let (oh, om) = (
                num(oh, "offset").map_err(bad)?,
                num(om, "offset").map_err(bad)?,
            );
            if oh > 23 || om > 59 {
                return Err(bad("offset out of range".into()));
            }
            (c, sign * i64::from(oh * 3600 + om * 60) * 1000)
        } else {
            return Err(bad("a time needs Z or an offset such as +02:00".into()));
        };
        let mut hms = clock.splitn(3, ':');
        let h = num(hms.next().unwrap_or(""), "hour").map_err(bad)?;
        let mi = num(hms.next().unwrap_or(""), "minute").map_err(bad)?;
        let (sec, frac_ms) = match hms.next() {
            None => (0, 0),
            Some(sec) => {
                let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
                let frac_ms = if frac.is_empty() {
                    0
                } else {
                    let digits: String = frac.chars().chain("000".chars()).take(3).collect();
                    num(frac, "fraction").map_err(bad)?;
                    num(&digits, "fraction").map_err(bad)?
                };
                (num(whole, "second").map_err(bad)?, frac_ms)
            }
        };
        if h > 23 || mi > 59 || sec > 60 {
            return Err(bad("time out of range".into()));
        }
        ms += i64::from(h * 3600 + mi * 60 + sec.min(59)) * 1000 + i64::from(frac_ms);
        ms -= offset_ms;
    }
    u64::try_from(ms).map_err(|_| bad("before 1970".into()))
}

/// Parses `--since`: an RFC 3339 time, or a duration meaning that long before `now_ms`.
pub fn since(text: &str, now_ms: u64) -> Result<u64, String> {
    let t = text.trim();
    if t.len() >= 10 && t.as_bytes()[4] == b'-' {
        return rfc3339(t);
    }
    match duration(t) {
        Ok(d) => Ok(now_ms.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        Err(_) => Err(format!(
            "--since {t:?}: give an RFC 3339 time (2026-01-31, 2026-01-31T12:00:00Z) or a duration ago (7d, 12h)"
        )),
    }
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
