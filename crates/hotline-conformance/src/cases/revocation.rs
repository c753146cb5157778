//! Key revocations (SPEC.md §4.6, protocol version 2): the target's checks of the runner's
//! Revocations frames, in order (version, rate, content), and its refusal of content signed by
//! an officer key the runner revoked, from the revocation's cutoff on (§7.6 step 12a, reason
//! REVOKED_KEY), while content made before the cutoff, or by another officer, is still
//! delivered.
//!
//! Every revocation the runner sends withdraws a key made for the case (an officer key certified
//! for it, or random bytes): the target stores what it accepts for good, and the run's own
//! officer must keep signing for the cases that follow.

use bytes::Bytes;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::content::{Draft, Precedence, Tlp};
use hotline_protocol::crypto::{KEY_LEN, Label};
use hotline_protocol::envelope::{Envelope, MessageId, SealParams};
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::identity::IdentityKey;
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::revocation::{self, MAX_PER_FRAME, Revocation, RevokedKind};
use hotline_protocol::time::{DAY, MINUTE, SECOND};
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;
use std::time::Duration;

use super::key_update::{closes_on, ended_note, link_v1, link_v2};
use super::{Sent, expect_close, expect_rejected, tri};
use crate::ctx::{Ctx, fill_random, rng};
use crate::fate::{code, code_name};
use crate::peer::Link;
use crate::suite::{Case, Outcome, delivered};

/// Revocations frames the target takes at once on a new connection (SPEC.md §13.2): enough
/// for the most revocations a node may have, 16 to a frame.
const BURST: usize = 64;

/// How far before now the runner's officer signs the message that predates the cutoff: within
/// the acceptance window of §7.6, if the target had a key then.
const BEFORE_CUTOFF: u64 = 10 * MINUTE;

/// After the target echoed a ping sent behind the runner's Revocations frame (so it read it),
/// how long the runner waits before sending envelopes: a node may store the revocations off its
/// control path.
const SETTLE: Duration = Duration::from_secs(1);

pub fn cases() -> Vec<Case> {
    let close = |c: CloseCode| format!("connection closed with {}", code_name(code(c)));
    let revoked = format!(
        "REJECTED {} receipt naming the envelope",
        RejectReason::RevokedKey
    );
    vec![
        Case::new(
            "revocation-on-version-1-link",
            "§4.6.2 step 1",
            format!(
                "the runner offers version 1 only; a valid Revocations frame on the UP link: {}",
                close(CloseCode::UnexpectedFrame)
            ),
            |cx| Box::pin(on_version_1_link(cx)),
        ),
        Case::new(
            "revocation-wrong-issuer",
            "§4.6.2 step 3",
            format!(
                "a Revocations frame on a version 2 link whose second revocation is issued and \
                 signed by another identity: {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(wrong_issuer(cx)),
        ),
        Case::new(
            "revocation-empty",
            "§4.6.2 step 3",
            format!(
                "a Revocations frame without revocations on a version 2 link: {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(empty(cx)),
        ),
        Case::new(
            "revocation-seventeen",
            "§4.6.2 step 3",
            format!(
                "a Revocations frame with 17 valid revocations (at most {MAX_PER_FRAME}) on a \
                 version 2 link: {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(seventeen(cx)),
        ),
        Case::new(
            "revocation-compromise-after-revocation",
            "§4.6.2 step 3",
            format!(
                "a Revocations frame on a version 2 link whose second revocation, correctly \
                 signed by the runner, says compromised_since_ms 1 ms after its revoked_ms: {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(compromise_after_revocation(cx)),
        ),
        Case::new(
            "revocation-rate-limited",
            "§4.6.2 step 2",
            format!(
                "{BURST} valid Revocations frames at once on a version 2 link are accepted (a \
                 ping after them is echoed); a {}th at once: {}",
                BURST + 1,
                close(CloseCode::RateLimited)
            ),
            |cx| Box::pin(rate_limited(cx)),
        ),
        Case::new(
            "revocation-refuses-after-cutoff",
            "§7.6 step 12a",
            format!(
                "on a version 2 link, the runner revokes an officer key of its own as \
                 compromised since 60 s ago; then content signed by that key in an envelope \
                 created now: {revoked}; created before the cutoff ({} min ago, or as early \
                 as the target's keys allow): DELIVERED; by another officer of the runner, \
                 created now: DELIVERED",
                BEFORE_CUTOFF / MINUTE
            ),
            |cx| Box::pin(refuses_after_cutoff(cx)),
        ),
        Case::new(
            "revocation-retired-key",
            "§7.6 step 12a",
            format!(
                "on a version 2 link, the runner retires an officer key of its own (revoked \
                 60 s ago, compromised_since_ms 0) and closes the connection; on a new one, \
                 content signed by that key in an envelope created now: {revoked}"
            ),
            |cx| Box::pin(retired_key(cx)),
        ),
    ]
}

/// What the skip reason says is version 2 only.
const REVOCATIONS: &str = "the Revocations frame (SPEC.md §4.6.2)";

/// 32 random bytes: a key nobody holds, to revoke without consequence.
fn random_key() -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    fill_random(&mut k);
    k
}

/// A revocation by the runner's node of `key`, revoked at `revoked`, compromised since
/// `compromised_since` if given.
fn revoke(
    cx: &Ctx,
    key: [u8; KEY_LEN],
    revoked: u64,
    compromised_since: Option<u64>,
) -> Result<Revocation, String> {
    Revocation::issue(
        &cx.me.identity,
        RevokedKind::Officer,
        key,
        revoked,
        compromised_since,
        "hotline-conformance: a key revoked by the interop conformance runner",
    )
    .map_err(|e| format!("revocation: {e}"))
}

/// A valid revocation by the runner of a random key, revoked now.
fn revoke_random(cx: &Ctx) -> Result<Revocation, String> {
    let now = now_ms();
    revoke(cx, random_key(), now, Some(now - MINUTE))
}

/// A Revocations frame carrying `revocations`, in wire form.
fn revocations_frame(revocations: Vec<wire::KeyRevocation>) -> Vec<u8> {
    let payload = wire::Revocations { revocations }.encode_to_vec();
    frame::encode(FrameType::Revocations, &payload).to_vec()
}

/// A Revocations frame carrying `revocations`, as a node makes it.
fn frame_of(revocations: &[Revocation]) -> Vec<u8> {
    frame::encode(
        FrameType::Revocations,
        &revocation::frame_payload(revocations),
    )
    .to_vec()
}

async fn on_version_1_link(cx: &Ctx) -> Outcome {
    let link = match link_v1(cx).await {
        Ok(l) => l,
        Err(o) => return o,
    };
    let r = tri!(revoke_random(cx));
    closes_on(link, &frame_of(&[r]), CloseCode::UnexpectedFrame).await
}

async fn wrong_issuer(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, REVOCATIONS).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    // The runner's valid revocation first: only a target that checks every one catches the
    // second.
    let ours = tri!(revoke_random(cx));
    let stranger = IdentityKey::generate(&mut rng());
    let now = now_ms();
    let theirs = tri!(
        Revocation::issue(
            &stranger,
            RevokedKind::Officer,
            random_key(),
            now,
            None,
            "hotline-conformance: a revocation by another node",
        )
        .map_err(|e| e.to_string()),
        "the stranger's revocation"
    );
    closes_on(link, &frame_of(&[ours, theirs]), CloseCode::MalformedFrame).await
}

async fn empty(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, REVOCATIONS).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    closes_on(link, &frame_of(&[]), CloseCode::MalformedFrame).await
}

async fn seventeen(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, REVOCATIONS).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let revs: Vec<Revocation> = tri!(
        (0..=MAX_PER_FRAME)
            .map(|_| revoke_random(cx))
            .collect::<Result<_, _>>()
    );
    closes_on(link, &frame_of(&revs), CloseCode::MalformedFrame).await
}

async fn compromise_after_revocation(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, REVOCATIONS).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let ours = tri!(revoke_random(cx));
    // Built by hand: `Revocation::issue` refuses a compromise after the revocation. Signed
    // correctly by the runner's identity, so that only the order of the two times is wrong.
    let revoked = now_ms() - MINUTE;
    let body = wire::RevocationBody {
        issuer: Bytes::copy_from_slice(cx.me.identity.id().as_bytes()),
        kind: wire::RevokedKeyKind::Officer as i32,
        key: Bytes::copy_from_slice(&random_key()),
        revoked_ms: revoked,
        compromised_since_ms: revoked + 1,
        reason: "hotline-conformance: compromised after it was revoked".into(),
    }
    .encode_to_vec();
    let signature = cx.me.identity.sign(Label::KeyRevocation, &[&body]);
    let forged = wire::KeyRevocation {
        body: body.into(),
        signature: Bytes::copy_from_slice(&signature),
    };
    let bytes = revocations_frame(vec![ours.to_wire(), forged]);
    closes_on(link, &bytes, CloseCode::MalformedFrame).await
}

async fn rate_limited(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, REVOCATIONS).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    // One revocation of a key nobody holds, in every frame: each frame is valid, and the
    // target stores one revocation however often it reads it.
    let one = frame_of(&[tri!(revoke_random(cx))]);
    tri!(link.write_control(&one.repeat(BURST)).await);
    // Capacity 64, full when the connection is set up, one token back a minute (§13.2): the 64
    // are accepted, and the ping behind them is answered within the step timeout.
    if let Err(e) = link.ping(cx).await {
        let note = ended_note(&link);
        link.raw.close();
        return Outcome::fail(format!(
            "after {BURST} Revocations frames at once, which the bucket holds: {e}{note}"
        ));
    }
    tri!(link.write_control(&one).await);
    let outcome = expect_close(&link.raw, CloseCode::RateLimited).await;
    link.raw.close();
    Outcome {
        observed: format!(
            "{BURST} Revocations frames accepted (ping echoed); after the {}th: {}",
            BURST + 1,
            outcome.observed
        ),
        ..outcome
    }
}

/// An officer key of the runner's node made for one case, valid from an hour ago: it may sign
/// content created before the case started.
fn case_officer(cx: &Ctx, name: &str) -> Result<OfficerKey, String> {
    let now = now_ms();
    OfficerKey::generate(
        &cx.me.identity,
        name,
        Role::Officer,
        now - 60 * MINUTE,
        now + DAY,
        &mut rng(),
    )
    .map_err(|e| format!("officer credential: {e}"))
}

/// An envelope from the runner to the target with a fresh counting number, created at
/// `created`, sealed to the target's key valid then, its content signed by `officer`.
fn envelope_by(
    cx: &Ctx,
    officer: &OfficerKey,
    created: u64,
    subject: &str,
) -> Result<(MessageId, u64, Envelope), String> {
    let key = cx.recipient_key(created).ok_or(format!(
        "the target has no encryption key valid at {created} (SPEC.md §4.3.3)"
    ))?;
    let draft = Draft {
        subject: subject.into(),
        text: "Sent by hotline-conformance, the interop conformance runner. Nothing to act on."
            .into(),
        language: "en".into(),
        ..Default::default()
    };
    let (id, seq) = cx.alloc();
    let content = draft
        .sign(&id, &cx.target.id, officer, created)
        .map_err(|e| format!("content: {e}"))?;
    let env = Envelope::seal(
        &cx.me.identity,
        &SealParams {
            recipient: cx.target.id,
            recipient_key: &key,
            message_id: id,
            sequence: seq,
            created,
            precedence: Precedence::Routine,
            tlp: Tlp::Green,
        },
        &content,
        &mut rng(),
    )
    .map_err(|e| format!("seal: {e}"))?;
    Ok((id, seq, env))
}

/// Sends the runner's Revocations frame carrying `revocation` on `link`, and waits until the
/// target has read it (a ping behind it echoed) and had time to store it.
async fn announce(cx: &Ctx, link: &Link, revocation: &Revocation) -> Result<(), String> {
    link.write_control(&frame_of(std::slice::from_ref(revocation)))
        .await?;
    link.ping(cx).await.map_err(|e| {
        format!(
            "the ping after the Revocations frame: {e}{}",
            ended_note(link)
        )
    })?;
    tokio::time::sleep(SETTLE).await;
    match link.raw.conn.close_reason() {
        Some(_) => Err(format!(
            "the target ended the connection after a valid Revocations frame{}",
            ended_note(link)
        )),
        None => Ok(()),
    }
}

/// Sends `sent` on `link`; `Ok` with what happened if the target answered REJECTED
/// REVOKED_KEY naming it, else `Err`.
async fn expect_revoked(
    cx: &Ctx,
    link: &Link,
    (id, seq, env): &(MessageId, u64, Envelope),
) -> Result<String, String> {
    let answer = link.send_envelope(cx, env.bytes()).await;
    let o = expect_rejected(
        cx,
        &answer,
        RejectReason::RevokedKey,
        &Sent {
            bytes: env.bytes(),
            id,
            sequence: *seq,
        },
    );
    if o.passed() {
        Ok(o.observed)
    } else {
        Err(o.observed)
    }
}

/// Sends `env` on `link`; `Ok` if the target answered DELIVERED.
async fn expect_delivered(cx: &Ctx, link: &Link, env: &Envelope) -> Result<String, String> {
    let answer = link.send_envelope(cx, env.bytes()).await;
    delivered(cx, &answer, env).map(|r| format!("DELIVERED, sequence {}", r.sequence()))
}

/// When the envelope before the cutoff is created: [`BEFORE_CUTOFF`] ago if a key of the target
/// was valid then, else (a node made minutes ago) a second into the oldest of its keys valid
/// now.
fn before_cutoff(cx: &Ctx, now: u64) -> u64 {
    let early = now - BEFORE_CUTOFF;
    if cx.recipient_key(early).is_some() {
        return early;
    }
    cx.target_keys()
        .iter()
        .filter(|k| k.valid_at(now))
        .map(|k| k.not_before().saturating_add(SECOND))
        .min()
        .unwrap_or(early)
}

/// Milliseconds as seconds, for the observed column.
fn seconds(ms: u64) -> f64 {
    Duration::from_millis(ms).as_secs_f64()
}

async fn refuses_after_cutoff(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, REVOCATIONS).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let now = now_ms();
    let before = before_cutoff(cx, now);
    // Compromised since a minute ago, or since just after the envelope that must predate it.
    let cutoff = (now - MINUTE).max(before + 1);
    if cutoff > now {
        return Outcome::skip(format!(
            "the target's encryption keys are valid only from {before} on (now {now}): no \
             envelope can be made before a cutoff in the past; run the case again a minute later"
        ));
    }
    let stolen = tri!(case_officer(
        cx,
        "hotline-conformance officer, key revoked as compromised"
    ));
    let revocation = tri!(revoke(
        cx,
        *stolen.credential().officer_key(),
        now,
        Some(cutoff)
    ));
    tri!(announce(cx, &link, &revocation).await);
    // Sealed only now: a number taken by an envelope that is never sent would be a gap.
    let after_env = tri!(envelope_by(
        cx,
        &stolen,
        now,
        "hotline-conformance: signed by a revoked officer key after its cutoff"
    ));
    let before_env = tri!(envelope_by(
        cx,
        &stolen,
        before,
        "hotline-conformance: signed by a revoked officer key before its cutoff"
    ));
    let other_env = tri!(envelope_by(
        cx,
        &cx.me.officer,
        now,
        "hotline-conformance: signed by an officer whose key was not revoked"
    ));
    let after = expect_revoked(cx, &link, &after_env).await;
    let early = expect_delivered(cx, &link, &before_env.2).await;
    let other = expect_delivered(cx, &link, &other_env.2).await;
    link.raw.close();
    let show = |r: &Result<String, String>| match r {
        Ok(s) | Err(s) => s.clone(),
    };
    let observed = format!(
        "cutoff {:.3} s before now; signed by the revoked key, created now: {}; created \
         {:.3} s before now: {}; by another officer, created now: {}",
        seconds(now - cutoff),
        show(&after),
        seconds(now - before),
        show(&early),
        show(&other)
    );
    Outcome::check(after.is_ok() && early.is_ok() && other.is_ok(), observed)
}

async fn retired_key(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, REVOCATIONS).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let now = now_ms();
    let retired = tri!(case_officer(cx, "hotline-conformance officer, key retired"));
    let revocation = tri!(revoke(
        cx,
        *retired.credential().officer_key(),
        now - MINUTE,
        None
    ));
    tri!(announce(cx, &link, &revocation).await);
    drop(link);
    // A new connection, on which the runner sends no revocation: the target must have kept it.
    let link = match link_v2(cx, REVOCATIONS).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let env = tri!(envelope_by(
        cx,
        &retired,
        now_ms(),
        "hotline-conformance: signed by a retired officer key"
    ));
    let r = expect_revoked(cx, &link, &env).await;
    link.raw.close();
    match r {
        Ok(s) => Outcome::pass(format!("on a new connection after the revocation: {s}")),
        Err(s) => Outcome::fail(format!("on a new connection after the revocation: {s}")),
    }
}
