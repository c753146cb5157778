//! Offline verification (SPEC.md §15.7): an evidence bundle, or one message as Show returns it,
//! checked from its bytes alone, with no node, no network and no secret key.
//!
//! These are pure functions over bytes, so tests (and any other tool) can call them directly.
//! Checks that concern arrival rather than authenticity (the `created_ms` window, key validity,
//! duplicates against a store) are deliberately not applied (§15.7.2).

use bytes::Bytes;
use hotline_protocol::bundle::PeerBundle;

use hotline_protocol::crypto::{self, Label};
use hotline_protocol::envelope::{Envelope, MAX_ENVELOPE_LEN, ParseError};
use hotline_protocol::receipt::{Receipt, ReceiptKind};
use hotline_protocol::{NodeId, wire};
use serde::Serialize;

use crate::evidence_file::{Field, FileError, Reader};
use crate::format::{clean, clean_text, hex};
use crate::removed::{self, Removed};

pub use crate::officer_info::OfficerInfo;
pub use crate::show_check::{BundleCheck, MessageReport, check_message};

/// A node as a bundle names it. Bundles are self-signed: compare `node` with a node id
/// obtained independently before trusting whose node this is.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// Node id, full text form.
    pub node: String,
    /// Short fingerprint.
    pub fingerprint: String,
    /// The bundle's `name` (a claim of the bundle's owner).
    pub name: String,
}

impl Party {
    pub(crate) fn of(b: &PeerBundle) -> Self {
        let id = b.identity();
        Party {
            node: id.to_string(),
            fingerprint: id.fingerprint(),
            name: clean(b.name()),
        }
    }
}

/// One receipt, checked.
#[derive(Serialize, Clone, Debug, Default)]
pub struct ReceiptReport {
    /// DELIVERED, ACKNOWLEDGED or REJECTED, if the receipt decoded.
    pub kind: Option<&'static str>,
    /// The signer's clock when signing.
    pub time_ms: Option<u64>,
    /// The signing node (id text form).
    pub signer: Option<String>,
    /// Its fingerprint.
    pub signer_fingerprint: Option<String>,
    /// ACKNOWLEDGED: the officer's name (from a credential the signer issued).
    pub officer: Option<String>,
    /// ACKNOWLEDGED: the officer's key and credential validity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub officer_credential: Option<OfficerInfo>,
    /// ACKNOWLEDGED: what the officer's signature binds: `v2` also the credential (SPEC.md
    /// §8.3), `v1` not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub officer_signature: Option<&'static str>,
    /// ACKNOWLEDGED: when the officer acknowledged.
    pub ack_time_ms: Option<u64>,
    /// ACKNOWLEDGED: the officer's note.
    pub note: Option<String>,
    /// REJECTED: the reason.
    pub reason: Option<String>,
    /// REJECTED: the detail.
    pub detail: Option<String>,
    /// REJECTED: what the sending officer can do about it, when the reason says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<&'static str>,
    /// Whether every check passed.
    pub valid: bool,
    /// What failed.
    pub error: Option<String>,
    /// Something valid but suspicious a reader should know (an acknowledgement dated before
    /// the message was created).
    pub warning: Option<String>,
}

/// What an officer can do about a REJECTED receipt with reason `reason` (a SPEC name), when
/// the reason points at something this side can fix.
pub fn reject_advice(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "CREATED_IN_FUTURE" => {
            "the peer's clock is more than 5 minutes behind this node's (or this node's is ahead): \
             check both clocks (NTP), then send the message again"
        }
        "TOO_OLD" => {
            "the peer judged the message older than 30 days: check both clocks (NTP), then send \
             the message again"
        }
        "UNKNOWN_KEY" | "EXPIRED_KEY" => {
            "the peer's bundle installed here names an encryption key the peer no longer holds: \
             ask the peer's CERT for its current bundle (`hotlined peer update`), then send again"
        }
        "BAD_OFFICER_SIGNATURE" => {
            "your credential was not valid when the message was made: ask the node administrator \
             for a new one, then send again"
        }
        _ => return None,
    })
}

/// Checks receipt bytes as signed by `receiver` (§8.4 steps 1–5) and, if `envelope` is given,
/// that the receipt names exactly that envelope (step 7).
pub fn check_receipt(
    bytes: &[u8],
    receiver: &NodeId,
    envelope: Option<&Envelope>,
) -> ReceiptReport {
    let r = match Receipt::verify(bytes, receiver) {
        Ok(r) => r,
        Err(e) => {
            return ReceiptReport {
                error: Some(format!(
                    "{e} (checked as signed by {})",
                    receiver.fingerprint()
                )),
                ..Default::default()
            };
        }
    };
    let mut rep = ReceiptReport {
        kind: Some(r.kind().as_str()),
        time_ms: Some(r.time()),
        signer: Some(r.receiver().to_string()),
        signer_fingerprint: Some(r.receiver().fingerprint()),
        valid: true,
        ..Default::default()
    };
    match r.kind() {
        ReceiptKind::Delivered => {}
        ReceiptKind::Acknowledged {
            officer,
            time,
            note,
            binding,
        } => {
            rep.officer = Some(clean(officer.name()));
            rep.officer_credential = Some(OfficerInfo::of(officer));
            rep.officer_signature = Some(binding.as_str());
            rep.ack_time_ms = Some(*time);
            rep.note = Some(clean_text(note));
        }
        ReceiptKind::Rejected { reason, detail } => {
            rep.reason = Some(reason.name().to_owned());
            rep.advice = reject_advice(reason.name());
            rep.detail = Some(clean(detail));
        }
    }
    match envelope {
        Some(env) if !r.answers(env) || r.receiver() != env.header().recipient => {
            rep.valid = false;
            rep.error = Some(
                "the receipt does not name this envelope (message id, SHA-256, sender or sequence differ)".into(),
            );
        }
        Some(env) => {
            if let Some(ack) = rep.ack_time_ms
                && ack < env.header().created
            {
                rep.warning = Some(format!(
                    "acknowledged {} s before the message was created: the acknowledging \
                     officer's clock, or the sender's, was wrong",
                    (env.header().created - ack).div_ceil(1000)
                ));
            }
        }
        None => {
            rep.valid = false;
            rep.error = Some("not matched: the envelope it answers is not valid".into());
        }
    }
    rep
}

/// The status the valid receipts establish (§8.6): the first valid receipt in the list (they
/// are kept and exported oldest first) decides delivery or rejection; within delivery,
/// ACKNOWLEDGED supersedes DELIVERED.
pub fn status(receipts: &[ReceiptReport]) -> &'static str {
    let has = |k| receipts.iter().any(|r| r.valid && r.kind == Some(k));
    match receipts.iter().find(|r| r.valid).and_then(|r| r.kind) {
        None => "no receipt",
        Some("REJECTED") => "rejected",
        Some(_) if has("ACKNOWLEDGED") => "acknowledged",
        Some(_) => "delivered",
    }
}

/// Flags each valid receipt that contradicts the decision of [`status`] (§8.6): a REJECTED
/// after delivery was decided, or a delivery receipt after rejection. A holder of both holds
/// proof that their signer contradicted itself.
pub fn flag_contradictions(receipts: &mut [ReceiptReport]) {
    let Some(decided) = receipts.iter().find(|r| r.valid).and_then(|r| r.kind) else {
        return;
    };
    let rejected = decided == "REJECTED";
    for r in receipts.iter_mut().filter(|r| r.valid) {
        let contradicts = match r.kind {
            Some("REJECTED") => !rejected,
            Some(_) => rejected,
            None => false,
        };
        if contradicts && r.warning.is_none() {
            r.warning = Some(format!(
                "contradicts the first receipt ({decided}): the same node signed both a \
                 delivery and a rejection of this message (SPEC.md §8.6)"
            ));
        }
    }
}

/// §15.7.2 step 3.1 and 3.3: the envelope parses, is version 1, and is signed by its sender.
pub(crate) fn check_envelope(bytes: &Bytes) -> Result<Envelope, String> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err("envelope larger than 1 MiB".into());
    }
    let env = Envelope::parse(bytes.clone()).map_err(|e| match e {
        ParseError::Unreadable => "envelope does not decode".to_owned(),
        e => e.to_string(),
    })?;
    Ok(env)
}

pub(crate) fn envelope_signature_ok(env: &Envelope) -> bool {
    let header = env.header_bytes();
    let len = u32::try_from(header.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    let digest = crypto::sha256(env.ciphertext());
    env.header()
        .sender
        .verify(Label::Envelope, &[&len, header, &digest], env.signature())
}

/// One evidence item, checked.
#[derive(Serialize, Clone, Debug, Default)]
pub struct ItemReport {
    /// Position in the bundle, from 1.
    pub index: usize,
    /// `incoming` (received by the exporter) or `outgoing`.
    pub direction: &'static str,
    /// The message id, if the envelope decoded.
    pub message_id: Option<String>,
    /// Sender node id.
    pub sender: Option<String>,
    /// Recipient node id.
    pub recipient: Option<String>,
    /// Sequence number.
    pub sequence: Option<u64>,
    /// The sender's claimed sealing time.
    pub created_ms: Option<u64>,
    /// Precedence.
    pub precedence: Option<&'static str>,
    /// TLP label.
    pub tlp: Option<&'static str>,
    /// Whether the envelope passed every check.
    pub envelope_valid: bool,
    /// What failed about the envelope.
    pub errors: Vec<String>,
    /// Its receipts.
    pub receipts: Vec<ReceiptReport>,
    /// What the valid receipts establish.
    pub status: &'static str,
    /// Envelope and every receipt valid; for an envelope the exporter no longer holds
    /// (`removed`), every receipt valid against its digest.
    pub valid: bool,
    /// What the exporter's retention policy removed (SPEC.md §13.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

/// The result of verifying an evidence bundle whose structure and bundles are valid.
#[derive(Serialize, Clone, Debug)]
pub struct Report {
    /// Every item and every receipt is valid.
    pub valid: bool,
    /// When the exporter says it made the bundle: a claim, covered by no signature.
    pub created_ms: u64,
    /// The exporting node.
    pub exporter: Party,
    /// The peers whose bundles are included.
    pub peers: Vec<Party>,
    /// The items.
    pub items: Vec<ItemReport>,
    /// The key revocations in the file that verify (SPEC.md §4.6), one line each.
    pub revocations: Vec<String>,
}

/// Why a bundle as a whole is invalid (§15.7.2 steps 1–2): nothing in it was checked further.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvidenceError {
    /// A part (a bundle, an item) larger than any part of an evidence file can be.
    TooLarge(usize),
    /// The file could not be read.
    Io(String),
    /// Not an `EvidenceBundle` at all.
    Undecodable,
    /// Decodes, but not canonically: it was altered or not written by a hotline client.
    NotCanonical,
    /// `version` is not 1.
    Version(u32),
    /// A bundle does not verify.
    Bundle(String),
    /// Two bundles have the same identity.
    DuplicateIdentity(String),
}

impl std::fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvidenceError::TooLarge(n) => write!(f, "it holds a part of {n} bytes, larger than any part of an evidence file can be (16 MiB for an item)"),
            EvidenceError::Io(e) => write!(f, "cannot read it: {e}"),
            EvidenceError::Undecodable => f.write_str(
                "not a hotline evidence bundle: it does not decode (truncated, altered, or another kind of file; `hotline export` writes one)",
            ),
            EvidenceError::NotCanonical => f.write_str(
                "the evidence bundle is not canonically encoded: it was altered after export",
            ),
            EvidenceError::Version(v) => write!(f, "evidence bundle version {v}: this verifier knows version 1"),
            EvidenceError::Bundle(e) => write!(f, "a node bundle in the file is invalid: {e}"),
            EvidenceError::DuplicateIdentity(id) => write!(f, "two node bundles in the file have the same identity {id}"),
        }
    }
}

/// Verifies an evidence file held in memory (SPEC.md §15.7.2); see [`verify_evidence_from`].
#[cfg(test)]
pub fn verify_evidence(bytes: &[u8]) -> Result<Report, EvidenceError> {
    verify_evidence_from(bytes)
}

/// Verifies an evidence file read from `r` (SPEC.md §15.7.2), one item at a time: a file of
/// any size takes the memory of its largest item. `Err` for steps 1–2 (the whole file
/// invalid); otherwise a report per item, with `valid` the overall result.
pub fn verify_evidence_from(r: impl std::io::BufRead) -> Result<Report, EvidenceError> {
    let file_error = |e: FileError| match e {
        FileError::Undecodable => EvidenceError::Undecodable,
        FileError::NotCanonical => EvidenceError::NotCanonical,
        FileError::TooLarge(n) => EvidenceError::TooLarge(n),
        FileError::Io(e) => EvidenceError::Io(e),
    };
    let mut reader = Reader::new(r);
    // Step 1: structure, read up to the first item.
    let (mut version, mut created_ms, mut exporter, mut peer_bytes) =
        (0, 0, Vec::new(), Vec::new());
    let mut first_item = None;
    let mut revocation_bytes: Vec<bytes::Bytes> = Vec::new();
    while let Some(field) = reader.next_field().map_err(file_error)? {
        match field {
            Field::Version(v) => version = v,
            Field::CreatedMs(c) => created_ms = c,
            Field::Exporter(b) => exporter = b,
            Field::PeerBundle(b) => peer_bytes.push(b),
            Field::Item(i) => {
                first_item = Some(i);
                break;
            }
            Field::Revocation(b) => revocation_bytes.push(b.into()),
        }
    }
    if version != 1 {
        return Err(EvidenceError::Version(
            u32::try_from(version).unwrap_or(u32::MAX),
        ));
    }
    // Step 2: bundles, pairwise different identities.
    let exporter = PeerBundle::from_bytes(&exporter)
        .map_err(|e| EvidenceError::Bundle(format!("exporter: {e}")))?;
    let mut peers = Vec::new();
    for (i, b) in peer_bytes.iter().enumerate() {
        peers.push(
            PeerBundle::from_bytes(b)
                .map_err(|e| EvidenceError::Bundle(format!("peer {}: {e}", i + 1)))?,
        );
    }
    let mut ids: Vec<NodeId> = std::iter::once(&exporter)
        .chain(&peers)
        .map(PeerBundle::identity)
        .collect();
    ids.sort();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(EvidenceError::DuplicateIdentity(w[0].to_string()));
    }
    let x = exporter.identity();
    let y: Vec<NodeId> = peers.iter().map(PeerBundle::identity).collect();

    // Steps 3 and 4: each item, and no two items with the same sender and message id.
    let mut items: Vec<ItemReport> = Vec::new();
    let mut seen: std::collections::HashMap<(NodeId, [u8; 16]), usize> =
        std::collections::HashMap::new();
    let mut next = first_item;
    while let Some(item) = next {
        let (rep, key) = check_item(items.len() + 1, &item, &x, &y);
        items.push(rep);
        if let Some(k) = key {
            let here = items.len() - 1;
            if let Some(&there) = seen.get(&k) {
                for i in [there, here] {
                    let it = &mut items[i];
                    if !it.errors.iter().any(|e| e.starts_with("another item has")) {
                        it.errors.push(
                            "another item has an envelope with the same sender and message id"
                                .into(),
                        );
                    }
                    it.envelope_valid = false;
                    it.valid = false;
                }
            } else {
                seen.insert(k, here);
            }
        }
        next = match reader.next_field().map_err(file_error)? {
            Some(Field::Item(i)) => Some(i),
            Some(Field::Revocation(b)) => {
                revocation_bytes.push(b.into());
                None
            }
            // The reader keeps the field order: nothing but items and revocations comes after
            // an item.
            Some(_) => return Err(EvidenceError::NotCanonical),
            None => None,
        };
    }
    while let Some(field) = reader.next_field().map_err(file_error)? {
        match field {
            Field::Revocation(b) => revocation_bytes.push(b.into()),
            _ => return Err(EvidenceError::NotCanonical),
        }
    }
    // Revoked officer keys (SPEC.md §4.6.3): an acknowledgement claiming a time at or after the
    // cutoff of its key's revocation by the receipt's signer does not count.
    let nodes: Vec<NodeId> = std::iter::once(x).chain(y.iter().copied()).collect();
    let revs = crate::revocation_view::parse(&revocation_bytes, &nodes);
    for item in &mut items {
        for r in &mut item.receipts {
            let signer = r.signer.as_deref().and_then(|s| s.parse::<NodeId>().ok());
            if let Some(signer) = signer {
                crate::revocation_view::mark_revoked_ack(r, &revs, &signer);
            }
        }
        if item.receipts.iter().any(|r| !r.valid) && item.valid {
            item.valid = false;
            flag_contradictions(&mut item.receipts);
            item.status = status(&item.receipts);
        }
    }
    Ok(Report {
        revocations: revs.iter().map(crate::revocation_view::summary).collect(),
        valid: items.iter().all(|i| i.valid),
        created_ms,
        exporter: Party::of(&exporter),
        peers: peers.iter().map(Party::of).collect(),
        items,
    })
}

fn check_item(
    index: usize,
    item: &wire::EvidenceItem,
    x: &NodeId,
    y: &[NodeId],
) -> (ItemReport, Option<(NodeId, [u8; 16])>) {
    let mut rep = ItemReport {
        index,
        direction: if item.incoming {
            "incoming"
        } else {
            "outgoing"
        },
        ..Default::default()
    };
    if let Some(r) = item.removed.as_ref().filter(|r| r.envelope_ms != 0)
        && item.envelope.is_empty()
    {
        return (removed::check_item(index, item, r, x, y), None);
    }
    rep.removed = item.removed.as_ref().map(Removed::of);
    let env = match check_envelope(&item.envelope) {
        Ok(env) => env,
        Err(e) => {
            rep.errors.push(e);
            rep.receipts = item
                .receipts
                .iter()
                .map(|_| ReceiptReport {
                    error: Some("not checked: the envelope it answers does not parse".into()),
                    ..Default::default()
                })
                .collect();
            flag_contradictions(&mut rep.receipts);
            rep.status = status(&rep.receipts);
            return (rep, None);
        }
    };
    let h = env.header();
    rep.message_id = Some(hex(&h.message_id));
    rep.sender = Some(h.sender.to_string());
    rep.recipient = Some(h.recipient.to_string());
    rep.sequence = Some(h.sequence);
    rep.created_ms = Some(h.created);
    rep.precedence = Some(h.precedence.as_str());
    rep.tlp = Some(h.tlp.as_str());
    if h.version != hotline_protocol::PROTOCOL_VERSION {
        rep.errors
            .push(format!("envelope version {} is not 1", h.version));
    }
    // Step 3.2: parties.
    let parties_ok = if item.incoming {
        h.recipient == *x && y.contains(&h.sender)
    } else {
        h.sender == *x && y.contains(&h.recipient)
    };
    if !parties_ok {
        rep.errors.push(if item.incoming {
            "marked incoming, but the recipient is not the exporter or the sender is not one of the peers".into()
        } else {
            "marked outgoing, but the sender is not the exporter or the recipient is not one of the peers".into()
        });
    }
    // Step 3.3: signature.
    if !envelope_signature_ok(&env) {
        rep.errors
            .push("the sender's envelope signature does not verify".into());
    }
    // Step 3.4: receipts, signed by the recipient and naming this envelope.
    rep.receipts = item
        .receipts
        .iter()
        .map(|r| check_receipt(r, &h.recipient, Some(&env)))
        .collect();
    rep.envelope_valid = rep.errors.is_empty();
    rep.valid = rep.envelope_valid && rep.receipts.iter().all(|r| r.valid);
    flag_contradictions(&mut rep.receipts);
    rep.status = status(&rep.receipts);
    (rep, Some((h.sender, h.message_id)))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
