//! Parsing what operators type: durations ("30s", "5m", "7d"), times (RFC 3339 or "7d" ago),
//! message ids (hex), precedence and TLP names.

use hotline_protocol::content::{Precedence, Tlp};
use hotline_protocol::wire;

pub use hotline_transport::time::{days_from_civil, duration, rfc3339, since};

/// A message id as typed: 32 hex digits (the full id), or a shorter prefix of at least 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdArg {
    /// The full 16-byte id.
    Full([u8; 16]),
    /// A lower-case hex prefix to look up in the inbox and outbox.
    Prefix(String),
}

/// Parses a message id argument.
pub fn message_id(text: &str) -> Result<IdArg, String> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a message id: give the 32 hex digits `hotline send` printed or `hotline inbox --json` lists"
        ));
    }
    match t.len() {
        32 => {
            let v = data_encoding::HEXLOWER
                .decode(t.as_bytes())
                .map_err(|e| e.to_string())?;
            let mut id = [0u8; 16];
            id.copy_from_slice(&v);
            Ok(IdArg::Full(id))
        }
        4..=31 => Ok(IdArg::Prefix(t)),
        _ => Err(format!(
            "{text:?}: a message id is 32 hex digits (a unique prefix of at least 4 also works)"
        )),
    }
}

/// A full 16-byte id only (`--reply-to`, `--thread`).
pub fn full_id(text: &str) -> Result<[u8; 16], String> {
    match message_id(text)? {
        IdArg::Full(id) => Ok(id),
        IdArg::Prefix(_) => Err(format!("{text:?}: give the full 32 hex digits")),
    }
}

/// `--precedence`.
pub fn precedence(text: &str) -> Result<Precedence, String> {
    text.parse().map_err(|e: &str| e.to_owned())
}

/// `--tlp`.
pub fn tlp(text: &str) -> Result<Tlp, String> {
    text.parse().map_err(|e: &str| e.to_owned())
}

/// `--severity`: a number 0..=4 or low, medium, high, critical.
pub fn severity(text: &str) -> Result<i32, String> {
    match text.to_ascii_lowercase().as_str() {
        "0" | "unspecified" => Ok(0),
        "1" | "low" => Ok(1),
        "2" | "medium" => Ok(2),
        "3" | "high" => Ok(3),
        "4" | "critical" => Ok(4),
        _ => Err("severity is one of low, medium, high, critical (or 1..=4)".into()),
    }
}

/// The wire value of a precedence.
pub fn precedence_wire(p: Precedence) -> i32 {
    (match p {
        Precedence::Flash => wire::Precedence::Flash,
        Precedence::Immediate => wire::Precedence::Immediate,
        Precedence::Priority => wire::Precedence::Priority,
        Precedence::Routine => wire::Precedence::Routine,
    }) as i32
}

/// The wire value of a TLP label.
pub fn tlp_wire(t: Tlp) -> i32 {
    (match t {
        Tlp::Clear => wire::Tlp::Clear,
        Tlp::Green => wire::Tlp::Green,
        Tlp::Amber => wire::Tlp::Amber,
        Tlp::AmberStrict => wire::Tlp::AmberStrict,
        Tlp::Red => wire::Tlp::Red,
    }) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_with_every_unit_and_combinations() {
        let ms = |s| duration(s).map(|d| d.as_millis());
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("2h"), Ok(7_200_000));
        assert_eq!(ms("7d"), Ok(604_800_000));
        assert_eq!(ms("1w"), Ok(604_800_000));
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms(" 10s "), Ok(10_000));
    }

    #[test]
    fn refuses_durations_without_unit_or_with_unknown_unit() {
        for bad in [
            "",
            "30",
            "s",
            "5x",
            "1.5h",
            "-5s",
            "5 m",
            "99999999999999999999s",
        ] {
            assert!(duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(duration("30").unwrap_err().contains("unit"));
    }

    #[test]
    fn parses_rfc3339_dates_and_times() {
        // 2026-01-01T00:00:00Z, the epoch of the spec's worked example.
        assert_eq!(rfc3339("2026-01-01"), Ok(1_767_225_600_000));
        assert_eq!(rfc3339("2026-01-01T00:00:00Z"), Ok(1_767_225_600_000));
        assert_eq!(rfc3339("2026-01-01T00:00Z"), Ok(1_767_225_600_000));
        assert_eq!(rfc3339("2026-01-01t01:00:00+01:00"), Ok(1_767_225_600_000));
        assert_eq!(rfc3339("2025-12-31T23:00:00-01:00"), Ok(1_767_225_600_000));
        assert_eq!(rfc3339("2026-01-01T00:00:00.5Z"), Ok(1_767_225_600_500));
        assert_eq!(
            rfc3339("2026-01-01 00:00:01.123456Z"),
            Ok(1_767_225_601_123)
        );
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(rfc3339("2024-02-29"), Ok(1_709_164_800_000));
    }

    #[test]
    fn refuses_malformed_times() {
        for bad in [
            "2026-13-01",
            "2025-02-29",
            "2026-01-32",
            "2026-1-1",
            "2026-01-01T00:00:00",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60Z",
            "2026-01-01T00:00:00+0100",
            "1969-12-31",
            "yesterday",
        ] {
            assert!(rfc3339(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        let now = 1_767_225_600_000;
        assert_eq!(since("7d", now), Ok(now - 7 * 86_400_000));
        assert_eq!(since("2026-01-01", now), Ok(now));
        assert_eq!(since("1000w", 5), Ok(0));
        assert!(since("last tuesday", now).is_err());
    }

    #[test]
    fn parses_message_ids_and_prefixes() {
        let hex = "00112233445566778899aabbccddeeff";
        let IdArg::Full(id) = message_id(hex).unwrap() else {
            panic!("not full");
        };
        assert_eq!(id[15], 0xff);
        assert_eq!(message_id(&hex.to_uppercase()), Ok(IdArg::Full(id)));
        assert_eq!(message_id("00AB"), Ok(IdArg::Prefix("00ab".into())));
        for bad in ["", "abc", "xyz0", &format!("{hex}00"), "0011-2233"] {
            assert!(message_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(full_id("0011aa").is_err());
    }

    #[test]
    fn parses_precedence_tlp_and_severity_names() {
        assert_eq!(precedence("flash"), Ok(Precedence::Flash));
        assert_eq!(precedence("IMMEDIATE"), Ok(Precedence::Immediate));
        assert_eq!(precedence("priority"), Ok(Precedence::Priority));
        assert_eq!(precedence("routine"), Ok(Precedence::Routine));
        assert!(precedence("urgent").is_err());
        assert_eq!(tlp("clear"), Ok(Tlp::Clear));
        assert_eq!(tlp("green"), Ok(Tlp::Green));
        assert_eq!(tlp("amber"), Ok(Tlp::Amber));
        assert_eq!(tlp("amber+strict"), Ok(Tlp::AmberStrict));
        assert_eq!(tlp("TLP:RED"), Ok(Tlp::Red));
        assert!(tlp("white").is_err());
        assert_eq!(severity("critical"), Ok(4));
        assert_eq!(severity("2"), Ok(2));
        assert!(severity("5").is_err());
        assert_eq!(precedence_wire(Precedence::Flash), 1);
        assert_eq!(tlp_wire(Tlp::Red), 5);
    }
}
