//! `hotline status`: the node's links in a table, then what needs an operator's attention
//! (disk, quotas, clocks, implausible peer claims, keys and credentials about to lapse, messages
//! that cannot be sealed); and the same as JSON.

use hotline_protocol::time::DAY;
use hotline_protocol::wire;
use serde_json::{Value, json};

use crate::format::{Cell, Colour, Style, clean, minute, second_or_dash, table};

/// How far ahead `status` points out what lapses (as `hotlined check` warns).
const EXPIRY_AHEAD: u64 = 30 * DAY;
/// How close an encryption key's expiry must be to show: it renews days before.
const ENCRYPTION_KEY_AHEAD: u64 = 3 * DAY;

/// The JSON form of a link status.
pub fn status_json(s: &wire::StatusResponse) -> Value {
    json!({
        "node": s.node,
        "name": s.name,
        "links": s.links.iter().map(|l| json!({
            "peer": l.peer,
            "node": l.node,
            "up": l.up,
            "since_ms": l.since_ms,
            "rtt_ms": l.rtt_ms,
            "last_received_ms": l.last_received_ms,
            "queue": l.queue,
            "overdue": l.overdue,
            "gaps": l.gaps,
            "group": l.group,
            "oldest_pending_ms": l.oldest_pending_ms,
            "unsealed": l.unsealed,
            "stored_bytes": l.stored_bytes,
            "clock_skew_ms": l.clock_skew_ms,
            "quota_bytes": l.quota_bytes,
            "gap_claim_capped": l.gap_claim_capped,
        })).collect::<Vec<_>>(),
        "disk_free_bytes": s.disk_free_bytes,
        "disk_floor_bytes": s.disk_floor_bytes,
        "refusing_new_messages": s.refusing_new_messages,
        "expiries": s.expiries.iter().map(|e| json!({
            "kind": e.kind,
            "name": e.name,
            "at_ms": e.at_ms,
        })).collect::<Vec<_>>(),
    })
}

/// The text form of `status`.
pub fn status_text(style: &Style, s: &wire::StatusResponse) -> String {
    let mut out = format!("Node {} ({})\n\n", clean(&s.name), clean(&s.node));
    if s.links.is_empty() {
        out.push_str("No peers installed (`hotlined peer add` installs one).\n");
        return out;
    }
    let rows = s
        .links
        .iter()
        .map(|l| {
            vec![
                Cell::new(clean(&l.peer)),
                if l.up {
                    Cell::colour("up", Some(Colour::Green))
                } else {
                    Cell::colour("DOWN", Some(Colour::Red))
                },
                Cell::new(second_or_dash(l.since_ms)),
                Cell::new(if l.rtt_ms == 0 {
                    "-".into()
                } else {
                    format!("{} ms", l.rtt_ms)
                }),
                Cell::new(second_or_dash(l.last_received_ms)),
                Cell::new(l.queue.to_string()),
                Cell::colour(
                    l.overdue.to_string(),
                    (l.overdue > 0).then_some(Colour::Red),
                ),
                Cell::colour(l.gaps.to_string(), (l.gaps > 0).then_some(Colour::Yellow)),
                Cell::new(second_or_dash(l.oldest_pending_ms)),
                Cell::new(if l.group.is_empty() {
                    "-".into()
                } else {
                    clean(&l.group)
                }),
            ]
        })
        .collect();
    out.push_str(&table(
        style,
        &[
            "PEER",
            "LINK",
            "SINCE",
            "RTT",
            "LAST RECEIVED",
            "QUEUE",
            "OVERDUE",
            "GAPS",
            "OLDEST UNDELIVERED",
            "GROUP",
        ],
        rows,
    ));
    const MIB: u64 = 1024 * 1024;
    if s.refusing_new_messages {
        out.push_str(&style.paint(
            &format!(
                "\nDISK NEARLY FULL: {} MiB free, floor {} MiB. The node takes no new messages \
                 (peers keep theirs and retry; Sends are refused) until space is freed.\n",
                s.disk_free_bytes / MIB,
                s.disk_floor_bytes / MIB
            ),
            Colour::Red,
        ));
    }
    for l in s
        .links
        .iter()
        .filter(|l| l.quota_bytes > 0 && l.stored_bytes >= l.quota_bytes / 10 * 9)
    {
        out.push_str(&style.paint(
            &format!(
                "\nMessages from {} use {} of {} MiB ([storage] peer_quota_mib); at the quota new \
                 ones are rejected.\n",
                clean(&l.peer),
                l.stored_bytes / MIB,
                l.quota_bytes / MIB
            ),
            Colour::Yellow,
        ));
    }
    for l in s
        .links
        .iter()
        .filter(|l| l.clock_skew_ms.unsigned_abs() > 60_000)
    {
        out.push_str(&style.paint(
            &format!(
                "\nThe clock of {} is {} s {} this node's: check both clocks (NTP); beyond 5 \
                 minutes messages are refused.\n",
                clean(&l.peer),
                l.clock_skew_ms.unsigned_abs() / 1000,
                if l.clock_skew_ms > 0 {
                    "ahead of"
                } else {
                    "behind"
                }
            ),
            Colour::Yellow,
        ));
    }
    for l in s.links.iter().filter(|l| l.gap_claim_capped > 0) {
        out.push_str(&style.paint(
            &format!(
                "\n{} claims to have sent sequence {}, far beyond what arrived: its gaps are \
                 counted only up to a cap (SPEC.md §10.3); raise it with the peer's CERT.\n",
                clean(&l.peer),
                l.gap_claim_capped
            ),
            Colour::Yellow,
        ));
    }
    out.push_str(&expiry_text(style, s, hotline_transport::now_ms()));
    for l in s.links.iter().filter(|l| l.unsealed > 0) {
        out.push_str(&style.paint(
            &format!(
                "\n{} message(s) to {} accepted but NOT SENT: they cannot be sealed (no valid \
                 encryption key of the peer, or the officer's credential expired); ask the peer for \
                 a new bundle (`hotlined peer update`), or look for them with `hotline outbox`.\n",
                l.unsealed,
                clean(&l.peer)
            ),
            Colour::Red,
        ));
    }
    out
}

/// The keys, certificates, CRLs and credentials that lapse within 30 days of `now` or have
/// lapsed, one line each. Encryption keys, the node's and its peers', renew by themselves
/// days ahead (SPEC.md §4.3.4): they show only in their last 3 days, when renewal failed.
fn expiry_text(style: &Style, s: &wire::StatusResponse, now: u64) -> String {
    let mut out = String::new();
    for e in s.expiries.iter().filter(|e| {
        let ahead = match e.kind.as_str() {
            "encryption_key" | "peer_encryption_key" => ENCRYPTION_KEY_AHEAD,
            _ => EXPIRY_AHEAD,
        };
        e.at_ms <= now.saturating_add(ahead)
    }) {
        let what = match e.kind.as_str() {
            "encryption_key" => "The node's newest encryption key".to_owned(),
            "peer_encryption_key" => {
                format!("The newest encryption key of peer {}", clean(&e.name))
            }
            "peer_tls_certificate" => format!("The TLS certificate of peer {}", clean(&e.name)),
            "tls_certificate" => "The node's TLS certificate".to_owned(),
            "ca_certificate" => format!("The CA certificate {}", clean(&e.name)),
            "crl" => format!("The CRL of {}", clean(&e.name)),
            "operator_credential" => format!("The credential of {}", clean(&e.name)),
            other => format!("{} {}", clean(other), clean(&e.name)),
        };
        let (when, colour) = if e.at_ms <= now {
            ("expired", Colour::Red)
        } else {
            ("expires", Colour::Yellow)
        };
        out.push_str(&style.paint(
            &format!(
                "\n{what} {when} {}: `hotlined check` says what to do.\n",
                minute(e.at_ms)
            ),
            colour,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_out_capped_claims_and_what_lapses_within_a_month() {
        let now = hotline_transport::now_ms();
        let s = wire::StatusResponse {
            node: "hl1x".into(),
            name: "CERT-A".into(),
            links: vec![wire::LinkStatus {
                peer: "cert-b".into(),
                gap_claim_capped: 1 << 63,
                ..Default::default()
            }],
            expiries: vec![
                wire::Expiry {
                    kind: "operator_credential".into(),
                    name: "Anna".into(),
                    at_ms: now + 10 * DAY,
                },
                wire::Expiry {
                    kind: "tls_certificate".into(),
                    name: String::new(),
                    at_ms: now + 400 * DAY,
                },
                wire::Expiry {
                    kind: "crl".into(),
                    name: "CN=ca".into(),
                    at_ms: now - DAY,
                },
            ],
            ..Default::default()
        };
        let text = status_text(&Style::plain(), &s);
        assert!(
            text.contains("cert-b claims to have sent sequence 9223372036854775808"),
            "{text}"
        );
        assert!(text.contains("The credential of Anna expires "), "{text}");
        assert!(text.contains("The CRL of CN=ca expired "), "{text}");
        assert!(!text.contains("TLS certificate"), "{text}");
        let v = status_json(&s);
        assert_eq!(v["links"][0]["gap_claim_capped"], 1u64 << 63);
        assert_eq!(v["expiries"][0]["name"], "Anna");
        assert_eq!(v["expiries"].as_array().map(Vec::len), Some(3));
    }
}
