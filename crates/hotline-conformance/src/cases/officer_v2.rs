//! Version 2 officer signatures (SPEC.md §7.5.1; §7.6 step 12): on a link that negotiated
//! version 2 the target accepts an officer signature by either rule, and one by the version 2
//! rule only with the precedence and TLP of the envelope's header and the very credential it
//! was made under. Against a node of version 1 only (conforming, §6.4) the cases are skipped.

use hotline_protocol::codes::RejectReason;
use hotline_protocol::content::{Draft, Precedence, SignedContent, Tlp};
use hotline_protocol::envelope::{Envelope, MessageId, SealParams};
use hotline_protocol::officer::{Credential, Role};
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;

use super::key_update::link_v2;
use super::{Sent, expect_rejected, tri};
use crate::ctx::{Ctx, rng};
use crate::peer::Link;
use crate::suite::{Case, Outcome, delivered};

pub fn cases() -> Vec<Case> {
    let rejected = format!(
        "REJECTED {} receipt naming the envelope sent",
        RejectReason::BadOfficerSignature
    );
    vec![
        Case::new(
            "officer-signature-v2-accepted",
            "§7.5.1",
            "on a version 2 link, content whose officer signature is by the version 2 rule with \
             the header's precedence and TLP (ROUTINE, AMBER): DELIVERED receipt naming the \
             envelope",
            |cx| Box::pin(accepted(cx)),
        ),
        Case::new(
            "officer-signature-v2-other-tlp",
            "§7.5.1",
            format!(
                "on a version 2 link, content signed by the version 2 rule for TLP RED, in an \
                 envelope whose header says TLP GREEN: {rejected}"
            ),
            |cx| Box::pin(other_tlp(cx)),
        ),
        Case::new(
            "officer-signature-v2-other-credential",
            "§7.5.1",
            format!(
                "on a version 2 link, content signed by the version 2 rule under the runner's \
                 officer credential, but carrying a second credential the runner's node issued \
                 for the same officer key under another name: {rejected}"
            ),
            |cx| Box::pin(other_credential(cx)),
        ),
        Case::new(
            "officer-signature-v1-still-accepted",
            "§7.5.1",
            "on a version 2 link, content whose officer signature is by the version 1 rule (the \
             body only): DELIVERED receipt naming the envelope",
            |cx| Box::pin(v1_still_accepted(cx)),
        ),
    ]
}

/// What the skip reason says is version 2 only.
const V2_SIGNATURES: &str = "the version 2 officer signature (SPEC.md §7.5.1)";

/// How the officer signs the content of a case.
enum Signing {
    /// Version 1: the body only.
    V1,
    /// Version 2, for this precedence and TLP.
    V2(Precedence, Tlp),
}

/// An envelope from the runner to the target on `link`, with a fresh counting number, under a
/// header marked `precedence` and `tlp`, whose content the runner's officer signs as `signing`
/// says; `edit` may then change the signed `Content`.
fn envelope(
    cx: &Ctx,
    precedence: Precedence,
    tlp: Tlp,
    signing: Signing,
    edit: impl FnOnce(&mut wire::Content),
) -> Result<(MessageId, u64, Envelope), String> {
    let now = now_ms();
    let key = cx
        .recipient_key(now)
        .ok_or("the target has no encryption key valid now (SPEC.md §4.3.3)")?;
    let draft = Draft {
        subject: "hotline-conformance: a version 2 officer signature".into(),
        text: "Sent by hotline-conformance, the interop conformance runner. Nothing to act on."
            .into(),
        language: "en".into(),
        ..Default::default()
    };
    let (id, seq) = cx.alloc();
    let (to, officer) = (&cx.target.id, &cx.me.officer);
    let signed = match signing {
        Signing::V1 => draft.sign(&id, to, officer, now),
        Signing::V2(p, t) => draft.sign_marked(&id, to, officer, now, p, t),
    }
    .map_err(|e| format!("content: {e}"))?;
    let mut content =
        wire::Content::decode(signed.as_bytes()).map_err(|e| format!("content: {e}"))?;
    edit(&mut content);
    let env = Envelope::seal(
        &cx.me.identity,
        &SealParams {
            recipient: cx.target.id,
            recipient_key: &key,
            message_id: id,
            sequence: seq,
            created: now,
            precedence,
            tlp,
        },
        &SignedContent::from_bytes(content.encode_to_vec()),
        &mut rng(),
    )
    .map_err(|e| format!("seal: {e}"))?;
    Ok((id, seq, env))
}

/// Sends `env` on `link` and expects DELIVERED.
async fn expect_delivered(cx: &Ctx, link: Link, env: &Envelope, how: &str) -> Outcome {
    let answer = link.send_envelope(cx, env.bytes()).await;
    link.raw.close();
    match delivered(cx, &answer, env) {
        Ok(r) => Outcome::pass(format!("{how}: DELIVERED, sequence {}", r.sequence())),
        Err(e) => Outcome::fail(format!("{how}: {e}")),
    }
}

/// Sends `env` on `link` and expects REJECTED BAD_OFFICER_SIGNATURE naming it.
async fn expect_bad_officer_signature(
    cx: &Ctx,
    link: Link,
    (id, seq, env): (MessageId, u64, Envelope),
) -> Outcome {
    let answer = link.send_envelope(cx, env.bytes()).await;
    link.raw.close();
    expect_rejected(
        cx,
        &answer,
        RejectReason::BadOfficerSignature,
        &Sent {
            bytes: env.bytes(),
            id: &id,
            sequence: seq,
        },
    )
}

async fn accepted(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, V2_SIGNATURES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let (p, t) = (Precedence::Routine, Tlp::Amber);
    let (_, _, env) = tri!(envelope(cx, p, t, Signing::V2(p, t), |_| {}));
    expect_delivered(
        cx,
        link,
        &env,
        "signed by the version 2 rule for ROUTINE, AMBER",
    )
    .await
}

async fn other_tlp(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, V2_SIGNATURES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let p = Precedence::Routine;
    let sent = tri!(envelope(
        cx,
        p,
        Tlp::Green,
        Signing::V2(p, Tlp::Red),
        |_| {}
    ));
    expect_bad_officer_signature(cx, link, sent).await
}

async fn other_credential(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, V2_SIGNATURES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    // The runner's node certifies its officer's key a second time, under another name: a
    // credential as valid as the first, which only the version 2 rule tells apart.
    let first = cx.me.officer.credential();
    let second = tri!(
        Credential::issue(
            &cx.me.identity,
            *first.officer_key(),
            "hotline-conformance officer, under another name",
            Role::Officer,
            first.not_before(),
            first.not_after(),
        )
        .map_err(|e| e.to_string()),
        "the second credential"
    );
    let (p, t) = (Precedence::Routine, Tlp::Green);
    let sent = tri!(envelope(cx, p, t, Signing::V2(p, t), |c| {
        if let Some(o) = c.officer.as_mut() {
            o.credential = Some(second.to_wire());
        }
    }));
    expect_bad_officer_signature(cx, link, sent).await
}

async fn v1_still_accepted(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, V2_SIGNATURES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let (_, _, env) = tri!(envelope(
        cx,
        Precedence::Routine,
        Tlp::Green,
        Signing::V1,
        |_| {}
    ));
    expect_delivered(cx, link, &env, "signed by the version 1 rule").await
}
