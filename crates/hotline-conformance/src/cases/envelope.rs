//! Envelopes, steps 1–6 of the opening procedure (SPEC.md §7.6): a valid envelope, then
//! framing, header, version, sender, recipient and signature faults; and the drafts and checks
//! that `envelope_content` and `envelope_replay` share.

use bytes::Bytes;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::{EncryptionKey, IdentityKey};
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;

use super::{Sent, expect_rejected, expect_reset, tri};
use crate::ctx::{Ctx, rng};
use crate::forge::{self, Parts};
use crate::peer;
use crate::suite::{Case, Outcome, delivered};

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::new(
            "envelope-valid-delivered",
            "§7.6 step 15",
            "DELIVERED receipt by the target naming the envelope (id, digest, sender, sequence)",
            |cx| Box::pin(valid(cx)),
        ),
        Case::new(
            "envelope-garbage",
            "§7.6 step 1",
            "stream reset with MALFORMED_FRAME (0x03), no receipt",
            |cx| Box::pin(garbage(cx)),
        ),
        Case::new(
            "envelope-unreadable-message-id",
            "§7.6 step 1",
            "stream reset with MALFORMED_FRAME (0x03), no receipt",
            |cx| Box::pin(unreadable_id(cx)),
        ),
    ];
    let table: &[Rejection] = &[
        (
            "envelope-non-canonical",
            "§7.6 step 1",
            RejectReason::Malformed,
            |cx| Box::pin(non_canonical(cx)),
        ),
        (
            "envelope-signature-wrong-length",
            "§7.6 step 1",
            RejectReason::Malformed,
            |cx| Box::pin(signature_length(cx)),
        ),
        (
            "envelope-header-non-canonical",
            "§7.6 step 2",
            RejectReason::Malformed,
            |cx| Box::pin(header_non_canonical(cx)),
        ),
        (
            "envelope-sequence-zero",
            "§7.6 step 2",
            RejectReason::Malformed,
            |cx| Box::pin(sequence_zero(cx)),
        ),
        (
            "envelope-precedence-out-of-range",
            "§7.6 step 2",
            RejectReason::Malformed,
            |cx| Box::pin(precedence_out_of_range(cx)),
        ),
        (
            "envelope-tlp-unspecified",
            "§7.6 step 2",
            RejectReason::Malformed,
            |cx| Box::pin(tlp_unspecified(cx)),
        ),
        (
            "envelope-unsupported-version",
            "§7.6 step 3",
            RejectReason::UnsupportedVersion,
            |cx| Box::pin(unsupported_version(cx)),
        ),
        (
            "envelope-unknown-sender",
            "§7.6 step 4",
            RejectReason::UnknownSender,
            |cx| Box::pin(unknown_sender(cx)),
        ),
        (
            "envelope-sender-20-kib",
            "§7.6 step 2, §8.1",
            RejectReason::Malformed,
            |cx| Box::pin(huge_sender(cx)),
        ),
        (
            "envelope-wrong-recipient",
            "§7.6 step 5",
            RejectReason::WrongRecipient,
            |cx| Box::pin(wrong_recipient(cx)),
        ),
        (
            "envelope-bad-signature",
            "§7.6 step 6",
            RejectReason::BadSignature,
            |cx| Box::pin(bad_signature(cx)),
        ),
        (
            "envelope-signed-by-another-key",
            "§7.6 step 6",
            RejectReason::BadSignature,
            |cx| Box::pin(signed_by_another(cx)),
        ),
        (
            "envelope-tampered-header",
            "§7.6 step 6",
            RejectReason::BadSignature,
            |cx| Box::pin(tampered_header(cx)),
        ),
        (
            "envelope-tampered-ciphertext",
            "§7.6 step 6",
            RejectReason::BadSignature,
            |cx| Box::pin(tampered_ciphertext(cx)),
        ),
    ];
    v.extend(rejections(table));
    v
}

/// A case whose envelope must be answered REJECTED: name, section, reason, the case.
pub(super) type Rejection = (
    &'static str,
    &'static str,
    RejectReason,
    fn(&Ctx) -> crate::suite::CaseFuture<'_>,
);

/// The cases of a table of [`Rejection`]s, each expecting a REJECTED receipt naming the envelope.
pub(super) fn rejections(table: &[Rejection]) -> Vec<Case> {
    let rejected = |r: RejectReason| format!("REJECTED {r} receipt naming the envelope sent");
    let mut v = Vec::new();
    for (name, section, reason, run) in table {
        v.push(Case::new(name, section, rejected(*reason), *run));
    }
    v
}

/// An envelope under construction: every field valid until a case changes one.
pub(super) struct Draft {
    pub(super) id: MessageId,
    pub(super) seq: u64,
    pub(super) key: EncryptionKey,
    pub(super) header: wire::EnvelopeHeader,
    pub(super) content: Vec<u8>,
}

impl Draft {
    fn new(cx: &Ctx, (id, seq): (MessageId, u64)) -> Result<Draft, String> {
        let key = cx
            .recipient_key(now_ms())
            .ok_or("the target has no encryption key valid now")?;
        Ok(Draft {
            header: forge::header(cx, &key, &id, seq),
            content: forge::content(cx, &id, &cx.me.officer, |_| {}),
            id,
            seq,
            key,
        })
    }

    /// A draft whose number and id the next valid envelope reuses (refused before step 6).
    fn reserved(cx: &Ctx) -> Result<Draft, String> {
        Self::new(cx, cx.reserve())
    }

    /// A draft with a fresh counting number (refused at step 7 or later, or accepted).
    pub(super) fn counting(cx: &Ctx) -> Result<Draft, String> {
        Self::new(cx, cx.alloc())
    }

    pub(super) fn seal(&self, cx: &Ctx) -> Result<Parts, String> {
        forge::seal(
            self.header.clone(),
            self.key.public(),
            &self.content,
            &cx.me.identity,
        )
    }
}

/// Sends `bytes` and expects REJECTED `reason` naming them.
async fn rejected(cx: &Ctx, bytes: &[u8], d: &Draft, reason: RejectReason) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link.send_envelope(cx, bytes).await;
    let outcome = expect_rejected(
        cx,
        &answer,
        reason,
        &Sent {
            bytes,
            id: &d.id,
            sequence: d.header.sequence,
        },
    );
    link.raw.close();
    outcome
}

/// Seals `d` and expects REJECTED `reason`.
pub(super) async fn rejected_draft(cx: &Ctx, d: &Draft, reason: RejectReason) -> Outcome {
    let parts = tri!(d.seal(cx));
    rejected(cx, &parts.encode(), d, reason).await
}

/// Applies `tamper` to a sealed, signed envelope and expects REJECTED `reason`.
pub(super) async fn rejected_parts(
    cx: &Ctx,
    d: &Draft,
    tamper: impl FnOnce(&mut Parts),
    reason: RejectReason,
) -> Outcome {
    let mut parts = tri!(d.seal(cx));
    tamper(&mut parts);
    rejected(cx, &parts.encode(), d, reason).await
}

pub(super) fn stranger() -> IdentityKey {
    IdentityKey::generate(&mut rng())
}

pub(super) fn flip_first(v: &mut [u8]) {
    if let Some(b) = v.first_mut() {
        *b ^= 0x01;
    }
}

async fn valid(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: a valid envelope"));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let r = delivered(cx, &answer, &env);
    link.raw.close();
    let r = tri!(r);
    Outcome::pass(format!(
        "DELIVERED, sequence {}, receiver {}",
        r.sequence(),
        r.receiver().fingerprint()
    ))
}

async fn garbage(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link.send_envelope(cx, &[0xff; 64]).await;
    link.raw.close();
    expect_reset(&answer, CloseCode::MalformedFrame)
}

async fn unreadable_id(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::reserved(cx));
    let mut header = d.header.clone();
    header.message_id = Bytes::copy_from_slice(&d.id[..15]);
    let parts = tri!(forge::seal(
        header,
        d.key.public(),
        &d.content,
        &cx.me.identity
    ));
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link.send_envelope(cx, &parts.encode()).await;
    link.raw.close();
    expect_reset(&answer, CloseCode::MalformedFrame)
}

async fn non_canonical(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::reserved(cx));
    let parts = tri!(d.seal(cx));
    let bytes = forge::with_unknown_field(&parts.encode());
    rejected(cx, &bytes, &d, RejectReason::Malformed).await
}

async fn signature_length(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::reserved(cx));
    rejected_parts(
        cx,
        &d,
        |p| p.signature.truncate(63),
        RejectReason::Malformed,
    )
    .await
}

async fn header_non_canonical(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::reserved(cx));
    let parts = tri!(forge::seal_with(
        d.header.clone(),
        d.key.public(),
        &d.content,
        &cx.me.identity,
        |h| forge::with_unknown_field(&h.encode_to_vec()),
    ));
    rejected(cx, &parts.encode(), &d, RejectReason::Malformed).await
}

async fn sequence_zero(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::reserved(cx));
    d.header.sequence = 0;
    rejected_draft(cx, &d, RejectReason::Malformed).await
}

async fn precedence_out_of_range(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::reserved(cx));
    d.header.precedence = 9;
    rejected_draft(cx, &d, RejectReason::Malformed).await
}

async fn tlp_unspecified(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::reserved(cx));
    d.header.tlp = 0;
    rejected_draft(cx, &d, RejectReason::Malformed).await
}

/// Version 2 is a protocol version (SPEC.md §12.5), not an envelope format version, which is 1
/// on links of either protocol version: a node that confuses the two accepts this envelope.
async fn unsupported_version(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::reserved(cx));
    d.header.version = 2;
    rejected_draft(cx, &d, RejectReason::UnsupportedVersion).await
}

async fn unknown_sender(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::reserved(cx));
    let c = stranger();
    d.header.sender = Bytes::copy_from_slice(c.id().as_bytes());
    let parts = tri!(forge::seal(
        d.header.clone(),
        d.key.public(),
        &d.content,
        &c
    ));
    rejected(cx, &parts.encode(), &d, RejectReason::UnknownSender).await
}

/// 20 KiB of `sender` bytes, signed: a receipt that repeated them could not be signed (the
/// Receipt frame is capped at 16 KiB), and the stream went unanswered. The receipt names the
/// runner, the connection's authenticated peer, instead (SPEC.md §8.1).
async fn huge_sender(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::reserved(cx));
    d.header.sender = Bytes::from(vec![0x41; 20 * 1024]);
    let parts = tri!(forge::seal(
        d.header.clone(),
        d.key.public(),
        &d.content,
        &cx.me.identity
    ));
    rejected(cx, &parts.encode(), &d, RejectReason::Malformed).await
}

async fn wrong_recipient(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::reserved(cx));
    d.header.recipient = Bytes::copy_from_slice(stranger().id().as_bytes());
    rejected_draft(cx, &d, RejectReason::WrongRecipient).await
}

async fn bad_signature(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::reserved(cx));
    rejected_parts(
        cx,
        &d,
        |p| flip_first(&mut p.signature),
        RejectReason::BadSignature,
    )
    .await
}

async fn signed_by_another(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::reserved(cx));
    let c = stranger();
    rejected_parts(cx, &d, |p| p.resign(&c), RejectReason::BadSignature).await
}

async fn tampered_header(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::reserved(cx));
    let mut header = d.header.clone();
    rejected_parts(
        cx,
        &d,
        |p| {
            // The sealed header as sent, with ROUTINE raised to FLASH; signature kept.
            if let Ok(sent) = wire::EnvelopeHeader::decode(p.header.as_slice()) {
                header = sent;
            }
            header.precedence = wire::Precedence::Flash as i32;
            p.header = header.encode_to_vec();
        },
        RejectReason::BadSignature,
    )
    .await
}

async fn tampered_ciphertext(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::reserved(cx));
    rejected_parts(
        cx,
        &d,
        |p| flip_first(&mut p.ciphertext),
        RejectReason::BadSignature,
    )
    .await
}
