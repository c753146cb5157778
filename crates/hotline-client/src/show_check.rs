//! The offline check of one message as Show returns it (SPEC.md §15.5.3): both bundles, the
//! envelope, the officer's signature inside the content (and how it stands against the key
//! revocations the node holds, §4.6.3), and every receipt.

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::{OpenedContent, Precedence, Tlp};
use hotline_protocol::wire;
use serde::Serialize;

use crate::removed::{self, Removed};
use crate::verify::{
    OfficerInfo, Party, ReceiptReport, check_envelope, check_receipt, envelope_signature_ok,
    flag_contradictions,
};

/// A bundle as Show returns it, checked.
#[derive(Serialize, Clone, Debug)]
pub struct BundleCheck {
    /// The bundle verifies (self-signature, keys).
    pub valid: bool,
    /// Whose it is.
    pub party: Option<Party>,
    /// What failed.
    pub error: Option<String>,
}

/// The checks `hotline show` reports for one message.
#[derive(Serialize, Clone, Debug)]
pub struct MessageReport {
    /// The sending node's bundle.
    pub sender_bundle: BundleCheck,
    /// The receiving node's bundle.
    pub receiver_bundle: BundleCheck,
    /// The envelope (`None`: a sent message not sealed yet).
    pub envelope: Option<Vec<String>>,
    /// The envelope passed every check (false if not sealed).
    pub envelope_valid: bool,
    /// The officer's signature over the content verified (credential issued by the sender).
    pub content_valid: bool,
    /// What failed about the content.
    pub content_error: Option<String>,
    /// The sending officer, from the credential in the content, once it verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub officer: Option<OfficerInfo>,
    /// What the officer's signature binds (SPEC.md §7.5): `v2`, the body, the credential it was
    /// made under, precedence and TLP; `v1`, the body only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub officer_signature: Option<&'static str>,
    /// The receipts.
    pub receipts: Vec<ReceiptReport>,
    /// Everything present verified.
    pub valid: bool,
    /// What the node's retention policy removed (SPEC.md §13.4): not checked, not a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

fn bundle_check(bytes: &[u8]) -> (BundleCheck, Option<PeerBundle>) {
    match PeerBundle::from_bytes(bytes) {
        Ok(b) => (
            BundleCheck {
                valid: true,
                party: Some(Party::of(&b)),
                error: None,
            },
            Some(b),
        ),
        Err(e) => (
            BundleCheck {
                valid: false,
                party: None,
                error: Some(e.to_string()),
            },
            None,
        ),
    }
}

/// Checks a Show answer offline (§15.5.3): both bundles, the envelope (parse, parties,
/// signature), the officer's signature inside the content, and every receipt. Returns the
/// report and the opened content, if it verified. `now_ms` is only used for a message not
/// sealed yet (no `created_ms`), to check the officer's credential.
pub fn check_message(
    show: &wire::ShowResponse,
    message_id: &[u8; 16],
    now_ms: u64,
) -> (MessageReport, Option<OpenedContent>) {
    let (sender_bundle, sb) = bundle_check(&show.sender_bundle);
    let (receiver_bundle, rb) = bundle_check(&show.receiver_bundle);
    let mut report = MessageReport {
        sender_bundle,
        receiver_bundle,
        envelope: None,
        envelope_valid: false,
        content_valid: false,
        content_error: None,
        officer: None,
        officer_signature: None,
        receipts: Vec::new(),
        valid: false,
        removed: show.removed.as_ref().map(Removed::of),
    };
    let (Some(sb), Some(rb)) = (sb, rb) else {
        report.content_error = Some("not checked: a node bundle is invalid".into());
        return (report, None);
    };
    let (sender, recipient) = (sb.identity(), rb.identity());
    let mut env = None;
    let mut created = now_ms;
    if !show.envelope.is_empty() {
        let mut errors = Vec::new();
        match check_envelope(&show.envelope) {
            Ok(e) => {
                let h = e.header();
                if h.message_id != *message_id {
                    errors.push("the envelope carries another message id".into());
                }
                if h.sender != sender || h.recipient != recipient {
                    errors
                        .push("the envelope's sender or recipient is not the bundles' node".into());
                }
                if !envelope_signature_ok(&e) {
                    errors.push("the sender's envelope signature does not verify".into());
                }
                created = h.created;
                env = Some(e);
            }
            Err(e) => errors.push(e),
        }
        report.envelope_valid = errors.is_empty();
        report.envelope = Some(errors);
    }
    let content_removed = report
        .removed
        .as_ref()
        .is_some_and(|r| r.content_ms.is_some());
    // The marking a version 2 officer signature binds: the envelope header's, else what the
    // node's record says (an envelope removed by retention).
    let marking = env
        .as_ref()
        .map(|e| (e.header().precedence, e.header().tlp))
        .or_else(|| {
            let s = show.summary.as_ref()?;
            Some((Precedence::from_wire(s.precedence)?, Tlp::from_wire(s.tlp)?))
        })
        .unwrap_or((Precedence::Routine, Tlp::Clear));
    let opened = match OpenedContent::parse(
        &show.content,
        message_id,
        &sender,
        &recipient,
        created,
        marking.0,
        marking.1,
    ) {
        _ if content_removed => None,
        Ok(c) => {
            report.content_valid = true;
            report.officer = Some(OfficerInfo::of(&c.officer));
            report.officer_signature = Some(c.binding.as_str());
            Some(c)
        }
        Err(e) => {
            report.content_error = Some(e.to_string());
            None
        }
    };
    // An envelope removed by the retention policy: its receipts are checked against the
    // digest the node kept.
    let gone = show
        .removed
        .as_ref()
        .filter(|r| r.envelope_ms != 0 && env.is_none());
    report.receipts = show
        .receipts
        .iter()
        .map(|r| match gone {
            Some(g) => {
                removed::check_receipt_by_digest(r, &recipient, message_id, &g.envelope_sha256)
            }
            None => check_receipt(r, &recipient, env.as_ref()),
        })
        .collect();
    // Revoked officer keys (SPEC.md §4.6.3): a signature claiming a time at or after the
    // cutoff does not count; a receipt resting on one is not valid.
    let revs = crate::revocation_view::parse(&show.revocations, &[sender, recipient]);
    let mut revoked_content = false;
    if let Some(o) = report.officer.as_mut() {
        o.revoked = crate::revocation_view::standing(
            o,
            &revs,
            &sender,
            created,
            crate::revocation_view::CONTENT_TIME,
        );
        revoked_content = o.revoked.as_ref().is_some_and(|r| !r.counts);
    }
    for r in &mut report.receipts {
        crate::revocation_view::mark_revoked_ack(r, &revs, &recipient);
    }
    if revoked_content {
        report.content_error = Some(
            "signed by an officer key its node revoked, at a time the revocation covers".into(),
        );
    }
    flag_contradictions(&mut report.receipts);
    report.valid = !revoked_content
        && report.sender_bundle.valid
        && report.receiver_bundle.valid
        && (show.envelope.is_empty() || report.envelope_valid)
        && (report.content_valid || content_removed)
        && report.receipts.iter().all(|r| r.valid);
    (report, opened)
}
