//! What a node's retention policy removed from a message (SPEC.md §13.4), as Show and Export
//! say it, and how what is left of such a message is checked offline: a receipt still names
//! the envelope by its SHA-256, so it can be checked against the digest the node kept even
//! when the envelope bytes are gone.

use hotline_protocol::receipt::Receipt;
use hotline_protocol::{NodeId, wire};
use serde::Serialize;

use crate::format::{hex, second};
use crate::verify::{ItemReport, ReceiptReport, check_receipt, flag_contradictions, status};

/// What was removed, and when (Unix milliseconds, UTC).
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// When the content and subject were removed.
    pub content_ms: Option<u64>,
    /// When the envelope bytes were removed.
    pub envelope_ms: Option<u64>,
    /// The SHA-256 of the envelope, which the node kept (hex).
    pub envelope_sha256: String,
    /// How many receipts had their bytes removed.
    pub receipts: u32,
    /// When the last of them was removed.
    pub receipts_ms: Option<u64>,
}

impl Removed {
    /// From the wire form.
    pub fn of(r: &wire::Removal) -> Self {
        let at = |ms: u64| (ms != 0).then_some(ms);
        Removed {
            content_ms: at(r.content_ms),
            envelope_ms: at(r.envelope_ms),
            envelope_sha256: hex(&r.envelope_sha256),
            receipts: r.receipts,
            receipts_ms: at(r.receipts_ms),
        }
    }

    /// One sentence per part removed, for people.
    pub fn lines(&self, whose: &str) -> Vec<String> {
        let by = format!("by {whose} retention policy");
        let mut out = Vec::new();
        if let Some(t) = self.content_ms {
            out.push(format!("content and subject removed on {} {by}", second(t)));
        }
        if let Some(t) = self.envelope_ms {
            out.push(format!(
                "envelope removed on {} {by}; its SHA-256 was {}",
                second(t),
                self.envelope_sha256
            ));
        }
        if self.receipts > 0 {
            out.push(format!(
                "{} receipt(s) removed{} {by}",
                self.receipts,
                self.receipts_ms
                    .map(|t| format!(" (the last on {})", second(t)))
                    .unwrap_or_default()
            ));
        }
        out
    }
}

/// Checks receipt bytes as signed by `receiver` and naming the message `id` whose envelope had
/// the SHA-256 `sha` (SPEC.md §8.4 steps 1–5, and step 7 for the id and the digest), for a
/// message whose envelope bytes are no longer held.
pub fn check_receipt_by_digest(
    bytes: &[u8],
    receiver: &NodeId,
    id: &[u8],
    sha: &[u8],
) -> ReceiptReport {
    let mut rep = check_receipt(bytes, receiver, None);
    let Ok(r) = Receipt::verify(bytes, receiver) else {
        return rep; // the error is the signature's
    };
    let names = r.message_id()[..] == *id && r.envelope_sha256()[..] == *sha;
    rep.valid = names;
    rep.error = (!names).then(|| {
        "the receipt names another message or envelope than the removed one (message id or \
         SHA-256 differ)"
            .into()
    });
    rep
}

/// An evidence item whose envelope the exporter no longer holds: its message id and the
/// envelope's SHA-256 come from the exporter's claim (`removed`), and only its receipts can
/// be checked, against those (signed by the exporter for a message it received, by one of the
/// peers for one it sent). Valid when every receipt held verifies.
pub fn check_item(
    index: usize,
    item: &wire::EvidenceItem,
    removed: &wire::Removal,
    x: &NodeId,
    y: &[NodeId],
) -> ItemReport {
    let mut rep = ItemReport {
        index,
        direction: if item.incoming {
            "incoming"
        } else {
            "outgoing"
        },
        removed: Some(Removed::of(removed)),
        ..Default::default()
    };
    if removed.message_id.len() != 16 || removed.envelope_sha256.len() != 32 {
        rep.errors
            .push("the record of the removed envelope is malformed".into());
        return rep;
    }
    rep.message_id = Some(hex(&removed.message_id));
    let signers: Vec<NodeId> = if item.incoming { vec![*x] } else { y.to_vec() };
    let receipts = item
        .receipts
        .iter()
        .map(|b| {
            let signer = signers
                .iter()
                .find(|s| Receipt::verify(b, s).is_ok())
                .or(signers.first())
                .unwrap_or(x);
            if let Ok(r) = Receipt::verify(b, signer) {
                rep.recipient.get_or_insert_with(|| signer.to_string());
                if let Some(sender) = NodeId::from_bytes(r.sender()) {
                    rep.sender.get_or_insert_with(|| sender.to_string());
                }
                rep.sequence.get_or_insert(r.sequence());
            }
            check_receipt_by_digest(b, signer, &removed.message_id, &removed.envelope_sha256)
        })
        .collect();
    rep.receipts = receipts;
    flag_contradictions(&mut rep.receipts);
    rep.status = status(&rep.receipts);
    rep.valid = rep.receipts.iter().all(|r| r.valid);
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_are_told_with_their_dates() {
        let r = Removed::of(&wire::Removal {
            message_id: vec![1; 16].into(),
            envelope_sha256: vec![0xab; 32].into(),
            content_ms: 1_800_000_000_000,
            envelope_ms: 0,
            receipts: 2,
            receipts_ms: 1_800_000_060_000,
        });
        assert_eq!(
            r.lines("the node's"),
            vec![
                "content and subject removed on 2027-01-15T08:00:00Z by the node's retention \
                 policy"
                    .to_owned(),
                "2 receipt(s) removed (the last on 2027-01-15T08:01:00Z) by the node's retention \
                 policy"
                    .to_owned(),
            ]
        );
        assert_eq!(r.envelope_ms, None);
    }
}
