//! KeyUpdate (SPEC.md §4.3.5, protocol version 2): the target's checks of the runner's KeyUpdate
//! frames, in order (version, rate, content); its use of a key the runner announces in one; and
//! its own KeyUpdate after it made a new key, with the previous key still opening envelopes
//! (§4.3.4). The last two need the target to act during the run: `--target-send CMD` and
//! `--target-rotate CMD`.

use std::time::{Duration, Instant};

use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::Offer;
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use hotline_protocol::session::{MAX_ANNOUNCED_KEYS, key_update_payload, verify_key_update};
use hotline_protocol::time::{DAY, MINUTE};
use hotline_protocol::{PROTOCOL_VERSION, PROTOCOL_VERSION_2};
use hotline_transport::now_ms;

use super::command::{self, hex, message_id_in};
use super::{expect_close, tri};
use crate::ctx::{Ctx, rng};
use crate::fate::{Ending, code, code_name};
use crate::inbound::Seen;
use crate::peer::{self, Behaviour, Link};
use crate::suite::{Case, Outcome, delivered};

pub fn cases() -> Vec<Case> {
    let close = |c: CloseCode| format!("connection closed with {}", code_name(code(c)));
    vec![
        Case::new(
            "key-update-on-version-1-link",
            "§4.3.5 step 1",
            format!(
                "the runner offers version 1 only; a valid KeyUpdate on the UP link: {}",
                close(CloseCode::UnexpectedFrame)
            ),
            |cx| Box::pin(on_version_1_link(cx)),
        ),
        Case::new(
            "key-update-foreign-key",
            "§4.3.5 step 3",
            format!(
                "a KeyUpdate on a version 2 link whose last key is certified by another \
                 identity: {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(foreign_key(cx)),
        ),
        Case::new(
            "key-update-empty",
            "§4.3.5 step 3",
            format!(
                "a KeyUpdate without keys on a version 2 link: {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(empty(cx)),
        ),
        Case::new(
            "key-update-rate-limit",
            "§4.3.5 step 2",
            format!(
                "4 valid KeyUpdates at once on a version 2 link are accepted (a ping after them \
                 is echoed); a 5th at once: {}",
                close(CloseCode::RateLimited)
            ),
            |cx| Box::pin(rate_limit(cx)),
        ),
        Case::new(
            "key-update-is-used",
            "§4.3.5 receiving",
            "after the runner's KeyUpdate announcing a newer key of its own, the message \
             --target-send queues is sealed to that key (recipient_key_id) and opens with it. \
             Skipped without --target-send",
            |cx| Box::pin(is_used(cx)),
        ),
        Case::new(
            "target-key-update-and-previous-key",
            "§4.3.5 sending",
            format!(
                "after --target-rotate, a KeyUpdate from the target on the UP version 2 link \
                 within {} s, verifying for its identity, whose newest key is a new one; then \
                 an envelope sealed to the previous key before the rotation is DELIVERED. \
                 Skipped without --target-rotate",
                KEY_UPDATE_WAIT.as_secs()
            ),
            |cx| Box::pin(target_rotates(cx)),
        ),
    ]
}

/// How long the target gets to announce a new key after `--target-rotate` returned (`hotlined`
/// looks at its key file every 5 s).
const KEY_UPDATE_WAIT: Duration = Duration::from_secs(20);

/// After the target echoed a ping sent behind the runner's KeyUpdate (so it read it), how long
/// the runner waits before having the target queue its message: a node may take the new keys
/// in off its control path.
const SETTLE: Duration = Duration::from_secs(1);

/// A link that negotiated version 2; a skip if the target does not offer it (a node of
/// version 1 only is conforming, SPEC.md §6.4: it never receives a KeyUpdate, nor has to
/// verify a version 2 officer signature). `what` names what is version 2 only, for the skip
/// reason.
pub(super) async fn link_v2(cx: &Ctx, what: &str) -> Result<Link, Outcome> {
    let link = peer::link(cx)
        .await
        .map_err(|e| Outcome::fail(format!("no link: {e}")))?;
    if link.hello.version < PROTOCOL_VERSION_2 {
        return Err(Outcome::skip(format!(
            "the target offers versions {:?} and the link negotiated version {}: {what} is \
             version 2 only",
            link.hello.offer.versions, link.hello.version
        )));
    }
    Ok(link)
}

/// What the KeyUpdate cases' skip reason says is version 2 only.
const KEY_UPDATE: &str = "KeyUpdate (SPEC.md §4.3.5)";

/// The runner's own keys, as its Hello announces them: a valid KeyUpdate carries them.
fn own_keys(cx: &Ctx, at_most: usize) -> Result<Vec<EncryptionKey>, String> {
    if cx.me.keys.is_empty() {
        return Err("the runner's identity has no encryption key to announce".into());
    }
    Ok(cx.me.keys.iter().take(at_most).cloned().collect())
}

fn key_update(keys: &[EncryptionKey]) -> Vec<u8> {
    frame::encode(FrameType::KeyUpdate, &key_update_payload(keys)).to_vec()
}

/// `; connection closed with ...` if the connection has ended, else nothing.
pub(super) fn ended_note(link: &Link) -> String {
    match link.raw.conn.close_reason() {
        Some(e) => format!("; {}", Ending::from_error(&e).describe()),
        None => String::new(),
    }
}

/// Writes `bytes` on the control stream of `link` and expects the connection closed with
/// `expected`.
pub(super) async fn closes_on(link: Link, bytes: &[u8], expected: CloseCode) -> Outcome {
    tri!(link.write_control(bytes).await);
    let outcome = expect_close(&link.raw, expected).await;
    link.raw.close();
    outcome
}

/// A link on which the runner offered version 1 only (so a version 2 frame is unexpected).
pub(super) async fn link_v1(cx: &Ctx) -> Result<Link, Outcome> {
    let offer = Offer {
        versions: vec![PROTOCOL_VERSION],
        ..Offer::default()
    };
    let link = peer::link_offering(cx, &offer, Behaviour::default())
        .await
        .map_err(|e| Outcome::fail(format!("no link offering version 1 only: {e}")))?;
    if link.hello.version != PROTOCOL_VERSION {
        return Err(Outcome::fail(format!(
            "the link negotiated version {} though the runner offered version 1 only",
            link.hello.version
        )));
    }
    Ok(link)
}

async fn on_version_1_link(cx: &Ctx) -> Outcome {
    let link = match link_v1(cx).await {
        Ok(l) => l,
        Err(o) => return o,
    };
    let keys = tri!(own_keys(cx, MAX_ANNOUNCED_KEYS));
    closes_on(link, &key_update(&keys), CloseCode::UnexpectedFrame).await
}

async fn foreign_key(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, KEY_UPDATE).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let now = now_ms();
    let stranger = IdentityKey::generate(&mut rng());
    let foreign = EncryptionKeypair::generate(&stranger, now - DAY, now + DAY, &mut rng());
    // The runner's valid keys first: only a target that checks every key catches the last.
    let mut keys = tri!(own_keys(cx, MAX_ANNOUNCED_KEYS - 1));
    keys.push(foreign.certificate);
    closes_on(link, &key_update(&keys), CloseCode::MalformedFrame).await
}

async fn empty(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, KEY_UPDATE).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    closes_on(link, &key_update(&[]), CloseCode::MalformedFrame).await
}

async fn rate_limit(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, KEY_UPDATE).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let one = key_update(&tri!(own_keys(cx, MAX_ANNOUNCED_KEYS)));
    tri!(link.write_control(&one.repeat(4)).await);
    // Capacity 4, full when the connection is set up, one token back a minute (§13.2): the
    // four are accepted, and the ping behind them is answered within milliseconds.
    if let Err(e) = link.ping(cx).await {
        let note = ended_note(&link);
        link.raw.close();
        return Outcome::fail(format!(
            "after 4 KeyUpdates at once, which the bucket holds: {e}{note}"
        ));
    }
    tri!(link.write_control(&one).await);
    let outcome = expect_close(&link.raw, CloseCode::RateLimited).await;
    link.raw.close();
    Outcome {
        observed: format!(
            "4 KeyUpdates accepted (ping echoed); after the 5th: {}",
            outcome.observed
        ),
        ..outcome
    }
}

async fn is_used(cx: &Ctx) -> Outcome {
    let Some(cmd) = cx.target_send.clone() else {
        return Outcome::skip(
            "needs --target-send CMD: a shell command that makes the target queue one message \
             to the runner's identity (for hotlined: `hotline send --credential FILE --node \
             ADDR --to <the runner's peer alias> ...`); only a message the target seals after \
             the runner's KeyUpdate shows which key it uses. .ci/conformance passes one",
        );
    };
    let link = match link_v2(cx, KEY_UPDATE).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    // A key newer than every key of the runner's Hello (the target's candidates, with the
    // runner's bundle, §4.3.3), valid from a minute ago as `hotlined` makes them.
    let now = now_ms();
    let newest = cx.me.keys.iter().map(EncryptionKey::not_before).max();
    let not_before = newest.map_or(now - MINUTE, |n| (now - MINUTE).max(n + 1));
    if not_before > now {
        return Outcome::skip(format!(
            "the runner's encryption keys are valid only from {not_before} on (now {now}): no \
             newer key of its own can be valid now; make its identity again"
        ));
    }
    let new = EncryptionKeypair::generate(&cx.me.identity, not_before, now + DAY, &mut rng());
    let new_key = new.certificate.clone();
    let mut keys = vec![new_key.clone()];
    keys.extend(tri!(own_keys(cx, MAX_ANNOUNCED_KEYS - 1)));
    cx.from_target.open_with(new);
    tri!(link.write_control(&key_update(&keys)).await);
    tri!(link.ping(cx).await, "the ping after the KeyUpdate");
    tokio::time::sleep(SETTLE).await;
    if link.raw.conn.close_reason().is_some() {
        return Outcome::fail(format!(
            "the target ended the connection after a valid KeyUpdate{}",
            ended_note(&link)
        ));
    }
    let before = cx.from_target.seen();
    let printed = tri!(command::run(&cmd).await, "--target-send");
    let id = message_id_in(&printed);
    let new_message = |s: &Seen| !before.iter().any(|b| b.id == s.id);
    let found = match id {
        Some(id) => cx.from_target.wait(cx.step, |s| s.id == id).await,
        None => cx.from_target.wait(cx.step, new_message).await,
    };
    link.raw.close();
    let which = match id {
        Some(id) => format!("message {}", hex(&id)),
        None => "the message (CMD printed no id)".to_owned(),
    };
    let Some(s) = found else {
        return Outcome::fail(format!(
            "the target did not send {which} within {} s of --target-send",
            cx.step.as_secs()
        ));
    };
    let sealed = format!("{which} sealed to key {}", hex(&s.recipient_key_id));
    if s.recipient_key_id != new_key.id() {
        let to = if cx.me.keys.iter().any(|k| k.id() == s.recipient_key_id) {
            "a key of the runner's Hello, not the newer one its KeyUpdate announced"
        } else {
            "a key the runner never announced"
        };
        return Outcome::fail(format!("{sealed}: {to} ({})", hex(&new_key.id())));
    }
    match s.opened {
        Some(Ok(())) => Outcome::pass(format!(
            "{sealed}, the key the KeyUpdate announced; it opens with that key's secret"
        )),
        Some(Err(e)) => Outcome::fail(format!(
            "{sealed}, the key the KeyUpdate announced, but it does not open with it: {e}"
        )),
        None => Outcome::fail(format!("{sealed}, but the runner did not try to open it")),
    }
}

async fn target_rotates(cx: &Ctx) -> Outcome {
    let Some(cmd) = cx.target_rotate.clone() else {
        return Outcome::skip(
            "needs --target-rotate CMD: a shell command that makes the target make a new \
             encryption key while it runs (for hotlined: `hotlined keys rotate --dir <the \
             target's directory>`). .ci/conformance passes one",
        );
    };
    let link = match link_v2(cx, KEY_UPDATE).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let Some(k1) = EncryptionKey::select(&link.hello.encryption_keys, now_ms()).cloned() else {
        return Outcome::fail("the target's Hello announces no key valid now (SPEC.md §4.3.4)");
    };
    // Sealed now, sent after the rotation. Its number is reserved, not yet sent: the runner's
    // heartbeats meanwhile must not claim a sequence the target never saw (§10.3).
    let (id, seq) = cx.reserve();
    let env = tri!(cx.seal_to(
        &k1,
        id,
        seq,
        "hotline-conformance: sealed to the target's key before it rotated"
    ));
    let seen_before = link.log(|l| l.key_updates.len());
    tri!(command::run(&cmd).await, "--target-rotate");
    let t0 = Instant::now();
    let k1_id = k1.id();
    let update = link
        .wait_log(KEY_UPDATE_WAIT, |l| {
            let new = l.key_updates.iter().skip(seen_before).find_map(|(_, p)| {
                match verify_key_update(p, &cx.target.id) {
                    Err(why) => Some(Err(format!(
                        "the target's KeyUpdate does not verify for its identity: {why}"
                    ))),
                    Ok(keys) => EncryptionKey::select(&keys, now_ms())
                        .filter(|k2| k2.id() != k1_id)
                        .map(|k2| Ok((k2.clone(), keys.clone()))),
                }
            });
            new.or_else(|| {
                l.ended
                    .as_ref()
                    .map(|e| Err(format!("the control stream ended: {e}")))
            })
        })
        .await;
    let (k2, keys) = match update {
        Some(Ok(u)) => u,
        Some(Err(e)) => {
            link.raw.close();
            return Outcome::fail(e);
        }
        None => {
            let n = link.log(|l| l.key_updates.len()) - seen_before;
            let note = ended_note(&link);
            link.raw.close();
            return Outcome::fail(format!(
                "no KeyUpdate announcing a new newest key within {} s of --target-rotate \
                 ({n} KeyUpdate frames){note}",
                KEY_UPDATE_WAIT.as_secs()
            ));
        }
    };
    let after = t0.elapsed();
    let kept = keys.iter().any(|k| k.id() == k1_id);
    // As a node does: the KeyUpdate's keys are the target's announced keys from now on.
    if let Ok(mut h) = cx.hello_keys.lock() {
        *h = keys;
    }
    if cx.alloc() != (id, seq) {
        link.raw.close();
        return Outcome::fail("the runner's reserved sequence number was taken meanwhile");
    }
    let answer = link.send_envelope(cx, env.bytes()).await;
    let r = delivered(cx, &answer, &env);
    link.raw.close();
    let observed = format!(
        "KeyUpdate {:.1} s after --target-rotate: newest key {} (the previous one, {}, {})",
        after.as_secs_f64(),
        hex(&k2.id()),
        hex(&k1_id),
        if kept {
            "still announced"
        } else {
            "no longer announced"
        }
    );
    match r {
        Ok(_) => Outcome::pass(format!(
            "{observed}; the envelope sealed to the previous key: DELIVERED"
        )),
        Err(e) => Outcome::fail(format!(
            "{observed}; the envelope sealed to the previous key: {e}"
        )),
    }
}
