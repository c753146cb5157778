//! Output: UTC times, tables, colours (on a terminal only) and the JSON forms of `--json`.
//!
//! Everything shown here that came from the node or the peer (subjects, names, notes, details)
//! passes through [`clean`] first: a peer must not be able to write terminal escape sequences
//! onto the duty officer's screen, nor reorder or hide text with invisible format characters.

use std::io::{IsTerminal, Write};

use hotline_protocol::wire;
use serde_json::{Value, json};

pub use crate::status_view::{status_json, status_text};

/// Neutralises control characters (terminal escapes) and invisible format characters (bidi
/// overrides and isolates, zero-width characters, ...) in one-line text from elsewhere.
pub fn clean(s: &str) -> String {
    hotline_transport::display::line(s)
}

/// Like [`clean`], but keeps line breaks and tabs (a message body).
pub fn clean_text(s: &str) -> String {
    hotline_transport::display::text(s)
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

/// `2026-01-31T12:34Z`: ISO 8601, UTC, minute precision (lists).
pub fn minute(ms: u64) -> String {
    hotline_transport::time::utc_minute(ms)
}

/// `2026-01-31T12:34:56Z`: ISO 8601, UTC, second precision (details, events).
pub fn second(ms: u64) -> String {
    hotline_transport::time::utc_second(ms)
}

/// [`second`], or `-` for 0 (never / not yet).
pub fn second_or_dash(ms: u64) -> String {
    if ms == 0 { "-".into() } else { second(ms) }
}

/// Name of a wire precedence value.
pub fn precedence_name(v: i32) -> &'static str {
    match wire::Precedence::try_from(v) {
        Ok(wire::Precedence::Flash) => "FLASH",
        Ok(wire::Precedence::Immediate) => "IMMEDIATE",
        Ok(wire::Precedence::Priority) => "PRIORITY",
        Ok(wire::Precedence::Routine) => "ROUTINE",
        _ => "UNKNOWN",
    }
}

/// Name of a wire TLP value.
pub fn tlp_name(v: i32) -> &'static str {
    match wire::Tlp::try_from(v) {
        Ok(wire::Tlp::Clear) => "TLP:CLEAR",
        Ok(wire::Tlp::Green) => "TLP:GREEN",
        Ok(wire::Tlp::Amber) => "TLP:AMBER",
        Ok(wire::Tlp::AmberStrict) => "TLP:AMBER+STRICT",
        Ok(wire::Tlp::Red) => "TLP:RED",
        _ => "TLP:UNKNOWN",
    }
}

/// Name of a wire role value.
pub fn role_name(v: i32) -> &'static str {
    match wire::Role::try_from(v) {
        Ok(wire::Role::Officer) => "officer",
        Ok(wire::Role::Viewer) => "viewer",
        _ => "unknown",
    }
}

/// ANSI colours, used only when the output is a terminal and `NO_COLOR` is unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    /// FLASH, failures.
    Red,
    /// IMMEDIATE, warnings.
    Yellow,
    /// Success.
    Green,
    /// Headers, unacknowledged.
    Bold,
    /// Secondary.
    Dim,
}

/// Whether to colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// Colour on.
    pub colour: bool,
}

impl Style {
    /// Colour if stdout is a terminal and `NO_COLOR` is not set.
    pub fn stdout() -> Self {
        Style {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// No colour.
    #[cfg(test)]
    pub fn plain() -> Self {
        Style { colour: false }
    }

    /// `text` in colour `c` (unchanged when colour is off).
    pub fn paint(&self, text: &str, c: Colour) -> String {
        if !self.colour {
            return text.to_owned();
        }
        let code = match c {
            Colour::Red => "1;31",
            Colour::Yellow => "1;33",
            Colour::Green => "32",
            Colour::Bold => "1",
            Colour::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// The colour a precedence is shown in.
    pub fn precedence(&self, name: &str) -> String {
        match name {
            "FLASH" => self.paint(name, Colour::Red),
            "IMMEDIATE" => self.paint(name, Colour::Yellow),
            _ => name.to_owned(),
        }
    }

    /// The colour of an ok / failed verdict.
    pub fn verdict(&self, ok: bool) -> String {
        if ok {
            self.paint("ok", Colour::Green)
        } else {
            self.paint("FAILED", Colour::Red)
        }
    }
}

/// A table cell: its plain text (for widths) and optional colour.
pub struct Cell {
    text: String,
    colour: Option<Colour>,
}

impl Cell {
    /// A plain cell.
    pub fn new(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            colour: None,
        }
    }
    /// A coloured cell.
    pub fn colour(text: impl Into<String>, c: Option<Colour>) -> Self {
        Cell {
            text: text.into(),
            colour: c,
        }
    }
}

/// Shortens `s` to `max` characters, with an ellipsis.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Lays out a table: a bold header row, columns padded to their widest cell, two spaces apart.
pub fn table(style: &Style, headers: &[&str], rows: Vec<Vec<Cell>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.text.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<(String, Option<Colour>)>, out: &mut String| {
        let n = cells.len();
        let mut s = String::new();
        for (i, (text, colour)) in cells.into_iter().enumerate() {
            let pad = widths[i].saturating_sub(text.chars().count());
            let shown = match colour {
                Some(c) => style.paint(&text, c),
                None => text,
            };
            s.push_str(&shown);
            if i + 1 < n {
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(
        headers
            .iter()
            .map(|h| ((*h).to_owned(), Some(Colour::Bold)))
            .collect(),
        &mut out,
    );
    for row in rows {
        line(
            row.into_iter().map(|c| (c.text, c.colour)).collect(),
            &mut out,
        );
    }
    out
}

/// Writes to stdout; a closed pipe (`hotline inbox | head`) ends the program quietly.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// Pretty JSON and a newline, to stdout.
pub fn emit_json(v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    emit(&format!("{text}\n"));
}

/// The JSON form of a message summary.
pub fn summary_json(m: &wire::MessageSummary) -> Value {
    json!({
        "message_id": hex(&m.message_id),
        "peer": m.peer,
        "incoming": m.incoming,
        "sequence": m.sequence,
        "precedence": precedence_name(m.precedence),
        "tlp": tlp_name(m.tlp),
        "created_ms": m.created_ms,
        "created": (m.created_ms != 0).then(|| second(m.created_ms)),
        "received_ms": m.received_ms,
        "received": (m.received_ms != 0).then(|| second(m.received_ms)),
        "subject": m.subject,
        "officer": m.officer,
        "state": m.state,
        "overdue": m.overdue,
    })
}

/// The table of `inbox` / `outbox`.
pub fn messages_table(style: &Style, incoming: bool, msgs: &[wire::MessageSummary]) -> String {
    let rows = msgs
        .iter()
        .map(|m| {
            let prec = precedence_name(m.precedence);
            let prec_colour = match prec {
                "FLASH" => Some(Colour::Red),
                "IMMEDIATE" => Some(Colour::Yellow),
                _ => None,
            };
            let time = match (incoming, m.received_ms, m.created_ms) {
                (true, r, _) if r != 0 => minute(r),
                (_, _, 0) => "(not sealed yet)".to_owned(),
                (_, _, c) => minute(c),
            };
            let mut state = clean(&m.state);
            if m.overdue {
                state.push_str(" OVERDUE");
            }
            let state_colour = match m.state.as_str() {
                _ if m.overdue => Some(Colour::Red),
                "rejected" | "cancelled" => Some(Colour::Red),
                "received" | "pending" => Some(Colour::Bold),
                "acknowledged" => Some(Colour::Green),
                _ => None,
            };
            vec![
                Cell::colour(prec, prec_colour),
                Cell::new(time),
                Cell::new(clean(&m.peer)),
                Cell::new(truncate(&clean(&m.subject), 60)),
                Cell::colour(state, state_colour),
                Cell::colour(hex(&m.message_id), Some(Colour::Dim)),
            ]
        })
        .collect();
    let who = if incoming { "FROM" } else { "TO" };
    table(
        style,
        &["PRECEDENCE", "TIME (UTC)", who, "SUBJECT", "STATE", "ID"],
        rows,
    )
}

/// The JSON form of the peers list.
pub fn peers_json(p: &wire::PeersResponse) -> Value {
    Value::Array(
        p.peers
            .iter()
            .map(|p| {
                json!({
                    "alias": p.alias, "node": p.node, "fingerprint": p.fingerprint,
                    "name": p.name, "address": p.address, "trust": p.trust,
                })
            })
            .collect(),
    )
}

/// The table of `peers`.
pub fn peers_text(style: &Style, p: &wire::PeersResponse) -> String {
    if p.peers.is_empty() {
        return "No peers installed (`hotlined peer add` installs one).\n".into();
    }
    let rows = p
        .peers
        .iter()
        .map(|p| {
            vec![
                Cell::colour(clean(&p.alias), Some(Colour::Bold)),
                Cell::new(clean(&p.name)),
                Cell::new(clean(&p.fingerprint)),
                Cell::new(clean(&p.trust)),
                Cell::new(if p.address.is_empty() {
                    "(waits to be dialed)".into()
                } else {
                    clean(&p.address)
                }),
                Cell::new(clean(&p.node)),
            ]
        })
        .collect();
    table(
        style,
        &[
            "ALIAS",
            "NAME",
            "FINGERPRINT",
            "TRUST",
            "ADDRESS",
            "NODE ID",
        ],
        rows,
    )
}

/// The JSON form of an event (one line per event in `watch --json`).
pub fn event_json(e: &wire::OperatorEvent) -> Value {
    json!({
        "time_ms": e.time_ms,
        "time": second(e.time_ms),
        "kind": e.kind,
        "peer": e.peer,
        "message_id": (!e.message_id.is_empty()).then(|| hex(&e.message_id)),
        "detail": e.detail,
    })
}

/// One line of `watch`.
pub fn event_line(style: &Style, e: &wire::OperatorEvent) -> String {
    let kind = clean(&e.kind);
    let colour = match kind.as_str() {
        "received" | "overdue" | "gap" | "lagged" => Some(Colour::Yellow),
        "rejected" | "link_down" | "cannot_seal" => Some(Colour::Red),
        "delivered" | "acknowledged" | "link_up" | "gap_cleared" => Some(Colour::Green),
        _ => None,
    };
    let painted = match colour {
        Some(c) => style.paint(&format!("{kind:<13}"), c),
        None => format!("{kind:<13}"),
    };
    let mut line = format!("{}  {painted}", second(e.time_ms));
    if !e.peer.is_empty() {
        line.push_str(&format!("  {}", clean(&e.peer)));
    }
    if !e.message_id.is_empty() {
        line.push_str(&format!("  {}", hex(&e.message_id)));
    }
    if !e.detail.is_empty() {
        line.push_str(&format!("  {}", clean(&e.detail)));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(prec: i32, subject: &str) -> wire::MessageSummary {
        wire::MessageSummary {
            message_id: vec![0xab; 16].into(),
            peer: "cert-b".into(),
            incoming: true,
            sequence: 4,
            precedence: prec,
            tlp: wire::Tlp::Amber as i32,
            created_ms: 1_767_225_600_000,
            received_ms: 1_767_225_660_000,
            subject: subject.into(),
            officer: "Olga".into(),
            state: "received".into(),
            overdue: false,
        }
    }

    #[test]
    fn formats_utc_times_at_minute_and_second_precision() {
        assert_eq!(minute(1_767_225_600_000), "2026-01-01T00:00Z");
        assert_eq!(second(1_767_225_659_999), "2026-01-01T00:00:59Z");
        assert_eq!(minute(0), "1970-01-01T00:00Z");
        assert_eq!(second(951_782_400_000), "2000-02-29T00:00:00Z");
        for ms in [0u64, 951_782_400_000, 1_767_225_600_000, 4_102_444_800_000] {
            assert_eq!(crate::parse::rfc3339(&second(ms)), Ok(ms));
        }
    }

    #[test]
    fn inbox_table_shows_precedence_time_peer_subject_state_and_id() {
        let t = messages_table(&Style::plain(), true, &[summary(1, "Phishing")]);
        let mut lines = t.lines();
        let header = lines.next().unwrap();
        for h in ["PRECEDENCE", "TIME (UTC)", "FROM", "SUBJECT", "STATE", "ID"] {
            assert!(header.contains(h), "{header}");
        }
        let row = lines.next().unwrap();
        assert!(row.starts_with("FLASH"), "{row}");
        assert!(row.contains("2026-01-01T00:01Z"), "{row}");
        assert!(row.contains("cert-b") && row.contains("Phishing") && row.contains("received"));
        assert!(row.contains(&"ab".repeat(16)));
        assert!(!t.contains('\x1b'), "plain style must not colour");
    }

    #[test]
    fn peer_text_cannot_inject_terminal_escapes() {
        let t = messages_table(&Style::plain(), true, &[summary(1, "evil\x1b]0;pwned\x07")]);
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
        assert_eq!(clean_text("a\nb\tc\x1b"), "a\nb\tc\u{fffd}");
    }

    #[test]
    fn peer_text_cannot_reorder_or_hide_text_on_screen() {
        // "Report_<RLO>fdp.exe" shows as "Report_exe.pdf" on a terminal that honours bidi.
        let subject = "Report_\u{202E}fdp.exe and \u{2066}isolated\u{2069} zero\u{200B}width";
        let t = messages_table(&Style::plain(), true, &[summary(1, subject)]);
        for c in ['\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}'] {
            assert!(
                !t.contains(c),
                "U+{:04X} reached the screen: {t:?}",
                c as u32
            );
        }
        assert!(t.contains("Report_\u{fffd}fdp.exe"), "{t:?}");
        assert_eq!(clean_text("line\u{202E}\nnext"), "line\u{fffd}\nnext");
    }

    #[test]
    fn colours_only_when_asked() {
        let s = Style { colour: true };
        assert!(s.precedence("FLASH").contains("\x1b[1;31m"));
        assert_eq!(Style::plain().precedence("FLASH"), "FLASH");
    }

    #[test]
    fn json_forms_parse_and_carry_names() {
        let v = summary_json(&summary(2, "s"));
        let back: Value = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(back["precedence"], "IMMEDIATE");
        assert_eq!(back["tlp"], "TLP:AMBER");
        assert_eq!(back["message_id"], "ab".repeat(16));
        assert_eq!(back["received"], "2026-01-01T00:01:00Z");
        let st = wire::StatusResponse {
            node: "hl1x".into(),
            name: "CERT-A".into(),
            links: vec![wire::LinkStatus {
                peer: "cert-b".into(),
                up: true,
                rtt_ms: 12,
                stored_bytes: 95 << 20,
                clock_skew_ms: -90_000,
                quota_bytes: 100 << 20,
                ..Default::default()
            }],
            disk_free_bytes: 100 << 20,
            disk_floor_bytes: 512 << 20,
            refusing_new_messages: true,
            expiries: Vec::new(),
        };
        let v: Value = serde_json::from_str(&status_json(&st).to_string()).unwrap();
        assert_eq!(v["links"][0]["up"], true);
        assert_eq!(v["refusing_new_messages"], true);
        let text = status_text(&Style::plain(), &st);
        assert!(text.contains("12 ms"), "{text}");
        assert!(
            text.contains("DISK NEARLY FULL: 100 MiB free, floor 512 MiB"),
            "{text}"
        );
        assert!(text.contains("use 95 of 100 MiB"), "{text}");
        assert!(text.contains("is 90 s behind this node's"), "{text}");
        let ev = wire::OperatorEvent {
            time_ms: 1_767_225_600_000,
            kind: "link_up".into(),
            peer: "cert-b".into(),
            message_id: Default::default(),
            detail: "X25519MLKEM768".into(),
        };
        let v: Value = serde_json::from_str(&event_json(&ev).to_string()).unwrap();
        assert_eq!(v["message_id"], Value::Null);
        assert!(event_line(&Style::plain(), &ev).contains("link_up"));
    }
}
