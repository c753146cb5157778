//! Envelopes: every step of the opening procedure, replay and conflict (SPEC.md §7.6, §10.5).

use bytes::Bytes;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::{EncryptionKey, IdentityKey};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::time::{DAY, MAX_MESSAGE_AGE, MINUTE};
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;

use super::{Sent, expect_rejected, expect_reset, tri};
use crate::ctx::{Ctx, random_id, rng};
use crate::forge::{self, Parts};
use crate::peer;
use crate::suite::{Case, Outcome, delivered};

pub fn cases() -> Vec<Case> {
    let rejected = |r: RejectReason| format!("REJECTED {r} receipt naming the envelope sent");
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
        (
            "envelope-created-in-future",
            "§7.6 step 7",
            RejectReason::CreatedInFuture,
            |cx| Box::pin(in_future(cx)),
        ),
        (
            "envelope-too-old",
            "§7.6 step 7",
            RejectReason::TooOld,
            |cx| Box::pin(too_old(cx)),
        ),
        (
            "envelope-unsupported-suite",
            "§7.6 step 8",
            RejectReason::UnsupportedSuite,
            |cx| Box::pin(unsupported_suite(cx)),
        ),
        (
            "envelope-unknown-content-type",
            "§7.6 step 8",
            RejectReason::BadContent,
            |cx| Box::pin(unknown_content_type(cx)),
        ),
        (
            "envelope-unknown-key",
            "§7.6 step 9",
            RejectReason::UnknownKey,
            |cx| Box::pin(unknown_key(cx)),
        ),
        (
            "envelope-expired-key",
            "§7.6 step 9",
            RejectReason::ExpiredKey,
            |cx| Box::pin(expired_key(cx)),
        ),
        (
            "envelope-cannot-decrypt",
            "§7.6 step 10",
            RejectReason::CannotDecrypt,
            |cx| Box::pin(cannot_decrypt(cx)),
        ),
        (
            "envelope-header-changed-and-resigned",
            "§7.6 step 10",
            RejectReason::CannotDecrypt,
            |cx| Box::pin(aad_mismatch(cx)),
        ),
        (
            "envelope-enc-wrong-length",
            "§7.6 step 10",
            RejectReason::CannotDecrypt,
            |cx| Box::pin(enc_length(cx)),
        ),
        (
            "envelope-content-id-mismatch",
            "§7.6 step 11",
            RejectReason::BadContent,
            |cx| Box::pin(content_id_mismatch(cx)),
        ),
        (
            "envelope-content-recipient-mismatch",
            "§7.6 step 11",
            RejectReason::BadContent,
            |cx| Box::pin(content_recipient_mismatch(cx)),
        ),
        (
            "envelope-content-non-canonical",
            "§7.6 step 11",
            RejectReason::BadContent,
            |cx| Box::pin(content_non_canonical(cx)),
        ),
        (
            "envelope-content-empty-subject",
            "§7.6 step 11",
            RejectReason::BadContent,
            |cx| Box::pin(content_empty_subject(cx)),
        ),
        (
            "envelope-officer-missing",
            "§7.6 step 12",
            RejectReason::BadOfficerSignature,
            |cx| Box::pin(officer_missing(cx)),
        ),
        (
            "envelope-officer-bad-signature",
            "§7.6 step 12",
            RejectReason::BadOfficerSignature,
            |cx| Box::pin(officer_bad_signature(cx)),
        ),
        (
            "envelope-officer-from-another-node",
            "§7.6 step 12",
            RejectReason::BadOfficerSignature,
            |cx| Box::pin(officer_foreign(cx)),
        ),
        (
            "envelope-officer-viewer-role",
            "§7.6 step 12",
            RejectReason::BadOfficerSignature,
            |cx| Box::pin(officer_viewer(cx)),
        ),
        (
            "envelope-officer-credential-expired",
            "§7.6 step 12",
            RejectReason::BadOfficerSignature,
            |cx| Box::pin(officer_expired(cx)),
        ),
        (
            "envelope-same-id-different-bytes",
            "§10.5",
            RejectReason::Conflict,
            |cx| Box::pin(conflict(cx)),
        ),
    ];
    for (name, section, reason, run) in table {
        v.push(Case::new(name, section, rejected(*reason), *run));
    }
    v.push(Case::new(
        "envelope-rejected-id-not-recorded",
        "§10.4",
        "REJECTED BAD_SIGNATURE; then the same message id, validly signed: DELIVERED \
         (REJECTED envelopes are not recorded for duplicate detection)",
        |cx| Box::pin(rejected_not_recorded(cx)),
    ));
    v.push(Case::new(
        "envelope-maximal-size",
        "§5.2",
        "an envelope of exactly 1048576 bytes is no frame error: DELIVERED (or REJECTED \
         TOO_LARGE by local policy, §7.6 step 14)",
        |cx| Box::pin(maximal_size(cx)),
    ));
    v.push(Case::new(
        "envelope-replay-same-bytes",
        "§10.5",
        "the original DELIVERED receipt, byte for byte, on the same and on a new connection",
        |cx| Box::pin(replay(cx)),
    ));
    v
}

/// A case whose envelope must be answered REJECTED: name, section, reason, the case.
type Rejection = (
    &'static str,
    &'static str,
    RejectReason,
    fn(&Ctx) -> crate::suite::CaseFuture<'_>,
);

/// An envelope under construction: every field valid until a case changes one.
struct Draft {
    id: MessageId,
    seq: u64,
    key: EncryptionKey,
    header: wire::EnvelopeHeader,
    content: Vec<u8>,
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
    fn counting(cx: &Ctx) -> Result<Draft, String> {
        Self::new(cx, cx.alloc())
    }

    fn seal(&self, cx: &Ctx) -> Result<Parts, String> {
        forge::seal(
            self.header.clone(),
            self.key.public(),
            &self.content,
            &cx.me.identity,
        )
    }
}

/// Sends `bytes` and expects REJECTED `reason` naming them.
async fn rejected(
    cx: &Ctx,
    bytes: &[u8],
    d: &Draft,
    sender: &[u8],
    reason: RejectReason,
) -> Outcome {
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
            sender,
        },
    );
    link.raw.close();
    outcome
}

/// Seals `d` and expects REJECTED `reason`.
async fn rejected_draft(cx: &Ctx, d: &Draft, reason: RejectReason) -> Outcome {
    let parts = tri!(d.seal(cx));
    rejected(cx, &parts.encode(), d, &d.header.sender.clone(), reason).await
}

/// Applies `tamper` to a sealed, signed envelope and expects REJECTED `reason`.
async fn rejected_parts(
    cx: &Ctx,
    d: &Draft,
    tamper: impl FnOnce(&mut Parts),
    reason: RejectReason,
) -> Outcome {
    let mut parts = tri!(d.seal(cx));
    tamper(&mut parts);
    rejected(cx, &parts.encode(), d, &d.header.sender.clone(), reason).await
}

fn stranger() -> IdentityKey {
    IdentityKey::generate(&mut rng())
}

fn flip_first(v: &mut [u8]) {
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
    rejected(
        cx,
        &bytes,
        &d,
        &d.header.sender.clone(),
        RejectReason::Malformed,
    )
    .await
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
    rejected(
        cx,
        &parts.encode(),
        &d,
        &d.header.sender.clone(),
        RejectReason::Malformed,
    )
    .await
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
    rejected(
        cx,
        &parts.encode(),
        &d,
        &d.header.sender.clone(),
        RejectReason::UnknownSender,
    )
    .await
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

async fn in_future(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.header.created_ms = now_ms() + 10 * MINUTE;
    rejected_draft(cx, &d, RejectReason::CreatedInFuture).await
}

async fn too_old(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.header.created_ms = now_ms() - MAX_MESSAGE_AGE - DAY;
    rejected_draft(cx, &d, RejectReason::TooOld).await
}

async fn unsupported_suite(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.header.suite = 2;
    rejected_draft(cx, &d, RejectReason::UnsupportedSuite).await
}

async fn unknown_content_type(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.header.content_type = 2;
    rejected_draft(cx, &d, RejectReason::BadContent).await
}

async fn unknown_key(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.header.recipient_key_id = Bytes::copy_from_slice(&random_id());
    rejected_draft(cx, &d, RejectReason::UnknownKey).await
}

async fn expired_key(cx: &Ctx) -> Outcome {
    // A key of the target, named at a `created_ms` outside its validity but inside the
    // acceptance window of §10.6: before its not_before (a key younger than 30 days), or after
    // its not_after (a key that expired less than 5 minutes ago).
    let now = now_ms();
    let earliest = now - MAX_MESSAGE_AGE + MINUTE;
    let keys = cx.target_keys();
    let created = keys.iter().find_map(|k| {
        if k.not_before() > earliest && k.not_before() <= now + 4 * MINUTE {
            Some((
                k.clone(),
                k.not_before() - 1000.min(k.not_before() - earliest),
            ))
        } else if k.not_after() < now + 4 * MINUTE && k.not_after() >= earliest {
            Some((k.clone(), k.not_after() + 1))
        } else {
            None
        }
    });
    let Some((key, created)) = created else {
        return Outcome::fail(
            "cannot build this case: every encryption key the target announces became valid \
             more than 30 days ago and is valid for 5 more minutes, so no created_ms inside \
             the acceptance window lies outside a key's validity (run against a target whose \
             key is younger than 30 days)",
        );
    };
    let mut d = tri!(Draft::counting(cx));
    d.header = forge::header(cx, &key, &d.id, d.seq);
    d.header.created_ms = created;
    d.key = key;
    rejected_draft(cx, &d, RejectReason::ExpiredKey).await
}

async fn cannot_decrypt(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::counting(cx));
    let signer = cx.me.identity.clone();
    rejected_parts(
        cx,
        &d,
        |p| {
            flip_first(&mut p.ciphertext);
            p.resign(&signer);
        },
        RejectReason::CannotDecrypt,
    )
    .await
}

async fn aad_mismatch(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::counting(cx));
    let signer = cx.me.identity.clone();
    rejected_parts(
        cx,
        &d,
        |p| {
            if let Ok(mut h) = wire::EnvelopeHeader::decode(p.header.as_slice()) {
                h.tlp = wire::Tlp::Red as i32;
                p.header = h.encode_to_vec();
            }
            p.resign(&signer);
        },
        RejectReason::CannotDecrypt,
    )
    .await
}

async fn enc_length(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.header.enc = Bytes::copy_from_slice(&[0x42; 31]);
    rejected_draft(cx, &d, RejectReason::CannotDecrypt).await
}

async fn content_id_mismatch(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    let other = random_id();
    d.content = forge::content(cx, &other, &cx.me.officer, |_| {});
    rejected_draft(cx, &d, RejectReason::BadContent).await
}

async fn content_recipient_mismatch(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    let elsewhere = stranger().id();
    d.content = forge::content(cx, &d.id, &cx.me.officer, |b| {
        b.recipient = Bytes::copy_from_slice(elsewhere.as_bytes())
    });
    rejected_draft(cx, &d, RejectReason::BadContent).await
}

async fn content_non_canonical(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.content = forge::with_unknown_field(&d.content);
    rejected_draft(cx, &d, RejectReason::BadContent).await
}

async fn content_empty_subject(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.content = forge::content(cx, &d.id, &cx.me.officer, |b| b.subject.clear());
    rejected_draft(cx, &d, RejectReason::BadContent).await
}

/// Content for `d` with `edit` applied to the signed `Content`.
fn edited_content(
    cx: &Ctx,
    d: &Draft,
    officer: &OfficerKey,
    edit: impl FnOnce(&mut wire::Content),
) -> Vec<u8> {
    let bytes = forge::content(cx, &d.id, officer, |_| {});
    let mut content = wire::Content::decode(bytes.as_slice()).unwrap_or_default();
    edit(&mut content);
    content.encode_to_vec()
}

async fn officer_missing(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.content = edited_content(cx, &d, &cx.me.officer, |c| c.officer = None);
    rejected_draft(cx, &d, RejectReason::BadOfficerSignature).await
}

async fn officer_bad_signature(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    d.content = edited_content(cx, &d, &cx.me.officer, |c| {
        if let Some(o) = &mut c.officer {
            let mut sig = o.signature.to_vec();
            flip_first(&mut sig);
            o.signature = sig.into();
        }
    });
    rejected_draft(cx, &d, RejectReason::BadOfficerSignature).await
}

fn officer(issuer: &IdentityKey, role: Role, from: u64, to: u64) -> Result<OfficerKey, String> {
    OfficerKey::generate(
        issuer,
        "hotline-conformance officer",
        role,
        from,
        to,
        &mut rng(),
    )
    .map_err(|e| format!("officer credential: {e}"))
}

async fn officer_foreign(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    let now = now_ms();
    let o = tri!(officer(&stranger(), Role::Officer, now - MINUTE, now + DAY));
    d.content = forge::content(cx, &d.id, &o, |_| {});
    rejected_draft(cx, &d, RejectReason::BadOfficerSignature).await
}

async fn officer_viewer(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    let now = now_ms();
    let o = tri!(officer(
        &cx.me.identity,
        Role::Viewer,
        now - MINUTE,
        now + DAY
    ));
    d.content = forge::content(cx, &d.id, &o, |_| {});
    rejected_draft(cx, &d, RejectReason::BadOfficerSignature).await
}

async fn officer_expired(cx: &Ctx) -> Outcome {
    let mut d = tri!(Draft::counting(cx));
    let now = now_ms();
    let o = tri!(officer(
        &cx.me.identity,
        Role::Officer,
        now - 2 * DAY,
        now - DAY
    ));
    d.content = forge::content(cx, &d.id, &o, |_| {});
    rejected_draft(cx, &d, RejectReason::BadOfficerSignature).await
}

async fn conflict(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let first = tri!(cx.seal(id, seq, "hotline-conformance: the original"));
    let answer = link.send_envelope(cx, first.bytes()).await;
    let original = tri!(delivered(cx, &answer, &first), "the original");
    // Same id and sequence, sealed again: a fresh HPKE encapsulation, so other bytes.
    let other = tri!(cx.seal(id, seq, "hotline-conformance: other bytes, same id"));
    let answer = link.send_envelope(cx, other.bytes()).await;
    let outcome = expect_rejected(
        cx,
        &answer,
        RejectReason::Conflict,
        &Sent {
            bytes: other.bytes(),
            id: &id,
            sequence: seq,
            sender: cx.me.identity.id().as_bytes(),
        },
    );
    // The first envelope stays as it was: a replay of it still gets its original receipt.
    let again = link.send_envelope(cx, first.bytes()).await;
    link.raw.close();
    if !outcome.ok {
        return outcome;
    }
    match crate::suite::receipt(cx, &again) {
        Ok(r) if r.bytes() == original.bytes() => Outcome::pass(format!(
            "{}; the original still answered with its receipt",
            outcome.observed
        )),
        Ok(_) => Outcome::fail(format!(
            "{}, but the original envelope now gets another receipt than its first",
            outcome.observed
        )),
        Err(e) => Outcome::fail(format!("{}; the original again: {e}", outcome.observed)),
    }
}

async fn replay(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: replayed"));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let first = tri!(delivered(cx, &answer, &env), "first send");
    // Later, so that a receipt made afresh would carry another time.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let same_conn = link.send_envelope(cx, env.bytes()).await;
    link.raw.close();
    drop(link);
    let link = tri!(peer::link(cx).await, "no second link");
    let new_conn = link.send_envelope(cx, env.bytes()).await;
    link.raw.close();
    let mut problems = Vec::new();
    for (when, answer) in [
        ("same connection", &same_conn),
        ("new connection", &new_conn),
    ] {
        match crate::suite::receipt(cx, answer) {
            Ok(r) if r.bytes() == first.bytes() => {}
            Ok(r) => problems.push(format!(
                "{when}: a different receipt ({}, time {} instead of {})",
                crate::suite::kind_text(r.kind()),
                r.time(),
                first.time()
            )),
            Err(e) => problems.push(format!("{when}: {e}")),
        }
    }
    if problems.is_empty() {
        Outcome::pass("the original receipt, byte for byte, on the same and on a new connection")
    } else {
        Outcome::fail(problems.join("; "))
    }
}

async fn rejected_not_recorded(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::counting(cx));
    let mut parts = tri!(d.seal(cx));
    flip_first(&mut parts.signature);
    let bad = parts.encode();
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link.send_envelope(cx, &bad).await;
    let first = expect_rejected(
        cx,
        &answer,
        RejectReason::BadSignature,
        &Sent {
            bytes: &bad,
            id: &d.id,
            sequence: d.seq,
            sender: cx.me.identity.id().as_bytes(),
        },
    );
    let env = tri!(cx.seal(
        d.id,
        d.seq,
        "hotline-conformance: an id first seen rejected"
    ));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let second = delivered(cx, &answer, &env);
    link.raw.close();
    if !first.ok {
        return first;
    }
    match second {
        Ok(_) => Outcome::pass(format!(
            "{}; the same id validly signed: DELIVERED",
            first.observed
        )),
        Err(e) => Outcome::fail(format!(
            "{}; the same id validly signed: {e}",
            first.observed
        )),
    }
}

async fn maximal_size(cx: &Ctx) -> Outcome {
    use hotline_protocol::envelope::MAX_ENVELOPE_LEN;
    let (id, seq) = cx.alloc();
    // Grow the text until the envelope is exactly the limit (varint lengths shift it a little).
    let mut len = MAX_ENVELOPE_LEN - 4096;
    let mut env = None;
    for _ in 0..8 {
        let draft = hotline_protocol::content::Draft {
            subject: "hotline-conformance: an envelope of exactly 1 MiB".into(),
            text: "x".repeat(len),
            ..Default::default()
        };
        let e = tri!(cx.seal_draft(id, seq, &draft, now_ms()));
        let size = e.bytes().len();
        if size == MAX_ENVELOPE_LEN {
            env = Some(e);
            break;
        }
        len = (len + MAX_ENVELOPE_LEN).saturating_sub(size);
    }
    let Some(env) = env else {
        return Outcome::fail("could not build an envelope of exactly 1048576 bytes");
    };
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link.send_envelope(cx, env.bytes()).await;
    link.raw.close();
    match crate::suite::receipt(cx, &answer) {
        Ok(r) if r.answers(&env) => match r.kind() {
            hotline_protocol::receipt::ReceiptKind::Delivered => {
                Outcome::pass("DELIVERED (1048576-byte envelope)")
            }
            hotline_protocol::receipt::ReceiptKind::Rejected {
                reason: RejectReason::TooLarge,
                ..
            } => Outcome::pass("REJECTED TOO_LARGE by local policy"),
            other => Outcome::fail(crate::suite::kind_text(other)),
        },
        Ok(r) => Outcome::fail(format!(
            "a receipt that does not answer the envelope: {r:?}"
        )),
        Err(e) => Outcome::fail(e),
    }
}
