//! Envelopes, steps 7–12 of the opening procedure (SPEC.md §7.6): creation time, suite and
//! content type, recipient key, decryption, content and officer signature.

use bytes::Bytes;
use hotline_protocol::codes::RejectReason;
use hotline_protocol::identity::IdentityKey;
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::time::{DAY, MAX_MESSAGE_AGE, MINUTE};
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;

use super::envelope::{
    Draft, Rejection, flip_first, rejected_draft, rejected_parts, rejections, stranger,
};
use super::tri;
use crate::ctx::{Ctx, random_id, rng};
use crate::forge;
use crate::suite::{Case, Outcome};

pub fn cases() -> Vec<Case> {
    let table: &[Rejection] = &[
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
    ];
    rejections(table)
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
        return Outcome::skip(
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
