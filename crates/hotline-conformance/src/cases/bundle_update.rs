//! Bundles over the link (SPEC.md §4.4.4, protocol version 2): the target's checks of the
//! runner's BundleUpdate and BundleAccepted frames, in order (version, rate, content); its own
//! bundle, sent at each link-up; its answer to a newer bundle of the runner's; and a new TLS key
//! of the runner's, announced in a bundle, accepted beside the replaced one until a connection
//! shows it.
//!
//! The target holds the newest bundle of the runner's it accepts, for good, and pins the TLS key
//! that bundle names. Every bundle these cases send names the TLS key of the runner's identity
//! directory, except in `bundle-update-new-tls-key`, which ends by announcing that key again in
//! a newer bundle and connecting with it: the cases that follow, and the next run, find the
//! target pinning the directory's key as before.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hotline_protocol::bundle::{MAX_KEYS, PeerBundle};
use hotline_protocol::codes::CloseCode;
use hotline_protocol::crypto::sha256;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use hotline_protocol::session::{verify_bundle_accepted, verify_bundle_update};
use hotline_protocol::time::DAY;
use hotline_protocol::{ALPN, wire};
use hotline_transport::now_ms;
use hotline_transport::tls::{self, NodeTlsKey};
use prost::Message;

use super::key_update::{closes_on, ended_note, link_v1, link_v2};
use super::{expect_close, tri};
use crate::certs::{self, Window};
use crate::ctx::{Ctx, Trust, rng};
use crate::fate::{code, code_name};
use crate::peer::{self, Behaviour, Link, Raw};
use crate::suite::{Case, Outcome};

/// BundleUpdate and BundleAccepted frames the target takes at once on a new connection, from
/// one bucket (SPEC.md §13.2).
const BURST: usize = 4;

pub fn cases() -> Vec<Case> {
    let close = |c: CloseCode| format!("connection closed with {}", code_name(code(c)));
    vec![
        Case::new(
            "bundle-update-on-version-1-link",
            "§4.4.4 step 1",
            format!(
                "the runner offers version 1 only; a valid BundleUpdate on the UP link: {}",
                close(CloseCode::UnexpectedFrame)
            ),
            |cx| Box::pin(on_version_1_link(cx)),
        ),
        Case::new(
            "bundle-update-other-identity",
            "§4.4.4 step 3",
            format!(
                "a BundleUpdate on a version 2 link carrying a valid bundle of another identity \
                 (naming the runner's TLS key): {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(other_identity(cx)),
        ),
        Case::new(
            "bundle-update-not-a-bundle",
            "§4.4.4 step 3",
            format!(
                "a BundleUpdate on a version 2 link carrying the runner's bundle with one bit of \
                 its signature flipped (it does not verify, §4.4.3): {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(not_a_bundle(cx)),
        ),
        Case::new(
            "bundle-accepted-short-digest",
            "§4.4.4 step 3",
            format!(
                "a BundleAccepted on a version 2 link whose bundle_sha256 is 31 bytes: {}",
                close(CloseCode::MalformedFrame)
            ),
            |cx| Box::pin(short_digest(cx)),
        ),
        Case::new(
            "bundle-update-rate-limited",
            "§4.4.4 step 2",
            format!(
                "{BURST} valid frames at once on a version 2 link, BundleUpdate and \
                 BundleAccepted in turn (one bucket for both), are accepted (a ping after them \
                 is echoed); a {}th at once, a BundleUpdate: {}",
                BURST + 1,
                close(CloseCode::RateLimited)
            ),
            |cx| Box::pin(rate_limited(cx)),
        ),
        Case::new(
            "bundle-update-sent-at-link-up",
            "§4.4.4 sending",
            "on a version 2 link, a BundleUpdate from the target after its Hello, within the \
             step timeout, whose bundle verifies (§4.4.3) with the target's identity",
            |cx| Box::pin(sent_at_link_up(cx)),
        ),
        Case::new(
            "bundle-update-answered",
            "§4.4.4 receiving",
            "a BundleUpdate on a version 2 link with a newer bundle of the runner's (the same TLS \
             key): BundleAccepted from the target naming that bundle's SHA-256",
            |cx| Box::pin(answered(cx)),
        ),
        Case::new(
            "bundle-update-new-tls-key",
            "§4.4.4 receiving, §3.6.1 step 5",
            "a BundleUpdate on a version 2 link with a newer bundle of the runner's naming a new \
             TLS key: BundleAccepted naming it; then a new connection with the replaced key: \
             link UP (accepted until a connection shows the new one); then one with the new \
             key: link UP. The runner then announces its own key again in a newer bundle \
             (BundleAccepted) and connects with it: link UP",
            |cx| Box::pin(new_tls_key(cx)),
        ),
    ]
}

/// What the skip reason says is version 2 only.
const BUNDLES: &str = "the BundleUpdate and BundleAccepted frames (SPEC.md §4.4.4)";

/// `created_ms` for the runner's next bundle: now, and after every bundle made before in this
/// process, so that each is newer than the last even within one millisecond.
fn next_created() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let last = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
            Some(now.max(l.saturating_add(1)))
        })
        .unwrap_or(now);
    now.max(last.saturating_add(1))
}

/// A bundle of the runner's, made at `created`, naming the TLS key `spki` and the encryption
/// keys of its Hello not expired (newest first, at most four). No addresses: they are advisory
/// (§4.4.1), and the runner answers no dials anyway.
fn runner_bundle(cx: &Ctx, spki: [u8; 32], created: u64) -> Result<PeerBundle, String> {
    let now = now_ms();
    let mut keys: Vec<EncryptionKey> = cx
        .me
        .keys
        .iter()
        .filter(|k| k.not_after() >= now)
        .take(MAX_KEYS)
        .cloned()
        .collect();
    if keys.is_empty() {
        keys.extend(cx.me.keys.first().cloned());
    }
    PeerBundle::create(&cx.me.identity, &cx.me.name, spki, &keys, &[], created)
        .map_err(|e| format!("the runner's bundle: {e}"))
}

/// A newer bundle of the runner's naming the TLS key of its identity directory.
fn own_bundle(cx: &Ctx) -> Result<PeerBundle, String> {
    runner_bundle(cx, cx.me.tls.spki_sha256(), next_created())
}

/// A BundleUpdate frame carrying `bundle` (any bytes).
fn bundle_update(bundle: &[u8]) -> Vec<u8> {
    let payload = wire::BundleUpdate {
        bundle: Bytes::copy_from_slice(bundle),
    }
    .encode_to_vec();
    frame::encode(FrameType::BundleUpdate, &payload).to_vec()
}

/// A BundleAccepted frame carrying `digest` (any length).
fn bundle_accepted(digest: &[u8]) -> Vec<u8> {
    let payload = wire::BundleAccepted {
        bundle_sha256: Bytes::copy_from_slice(digest),
    }
    .encode_to_vec();
    frame::encode(FrameType::BundleAccepted, &payload).to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn on_version_1_link(cx: &Ctx) -> Outcome {
    let link = match link_v1(cx).await {
        Ok(l) => l,
        Err(o) => return o,
    };
    let b = tri!(own_bundle(cx));
    closes_on(link, &bundle_update(b.bytes()), CloseCode::UnexpectedFrame).await
}

async fn other_identity(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, BUNDLES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let now = now_ms();
    let stranger = IdentityKey::generate(&mut rng());
    let key = EncryptionKeypair::generate(&stranger, now - DAY, now + DAY, &mut rng());
    let theirs = tri!(
        PeerBundle::create(
            &stranger,
            "hotline-conformance stranger",
            cx.me.tls.spki_sha256(),
            &[key.certificate],
            &[],
            now,
        )
        .map_err(|e| e.to_string()),
        "the stranger's bundle"
    );
    closes_on(
        link,
        &bundle_update(theirs.bytes()),
        CloseCode::MalformedFrame,
    )
    .await
}

async fn not_a_bundle(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, BUNDLES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    // The signature is the encoding's last 64 bytes (field 2 of PeerBundle): flipping a bit of
    // it keeps the encoding canonical and only the signature wrong.
    let mut bytes = tri!(own_bundle(cx)).bytes().to_vec();
    let at = bytes.len() - 64;
    bytes[at] ^= 0x01;
    if PeerBundle::from_bytes(&bytes).is_ok() {
        return Outcome::fail("the runner's altered bundle still verifies: a runner bug");
    }
    closes_on(link, &bundle_update(&bytes), CloseCode::MalformedFrame).await
}

async fn short_digest(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, BUNDLES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let digest = sha256(tri!(own_bundle(cx)).bytes());
    closes_on(
        link,
        &bundle_accepted(&digest[..31]),
        CloseCode::MalformedFrame,
    )
    .await
}

async fn rate_limited(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, BUNDLES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    // A ping first, which the target echoes after the frames it sent at link-up: its own
    // bundle, whose digest the runner's BundleAccepted frames then name.
    tri!(link.ping(cx).await, "the ping after link-up");
    let theirs = link.log(|l| l.bundle_updates.first().cloned());
    let digest = theirs
        .and_then(|p| verify_bundle_update(&p, &cx.target.id).ok())
        .map_or([0; 32], |b| sha256(b.bytes()));
    let update = bundle_update(tri!(own_bundle(cx)).bytes());
    let accepted = bundle_accepted(&digest);
    let burst = [&update[..], &accepted[..]].concat().repeat(BURST / 2);
    tri!(link.write_control(&burst).await);
    // Capacity 4, full when the connection is set up, one token back a minute (§13.2): the
    // four are accepted, and the ping behind them is answered within the step timeout.
    if let Err(e) = link.ping(cx).await {
        let note = ended_note(&link);
        link.raw.close();
        return Outcome::fail(format!(
            "after {BURST} frames at once, which the bucket holds: {e}{note}"
        ));
    }
    tri!(link.write_control(&update).await);
    let outcome = expect_close(&link.raw, CloseCode::RateLimited).await;
    link.raw.close();
    Outcome {
        observed: format!(
            "{} BundleUpdate and {} BundleAccepted frames accepted (ping echoed); after a \
             {}th, a BundleUpdate: {}",
            BURST / 2,
            BURST / 2,
            BURST + 1,
            outcome.observed
        ),
        ..outcome
    }
}

async fn sent_at_link_up(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, BUNDLES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let first = link
        .wait_log(cx.step, |l| {
            l.bundle_updates.first().cloned().map(Ok).or_else(|| {
                l.ended
                    .as_ref()
                    .map(|e| Err(format!("the control stream ended: {e}")))
            })
        })
        .await;
    let note = ended_note(&link);
    link.raw.close();
    let payload = match first {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Outcome::fail(format!("no BundleUpdate from the target: {e}")),
        None => {
            return Outcome::fail(format!(
                "no BundleUpdate from the target within {} s of link-up{note}",
                cx.step.as_secs()
            ));
        }
    };
    match verify_bundle_update(&payload, &cx.target.id) {
        Err(why) => Outcome::fail(format!("the target's BundleUpdate: {why}")),
        Ok(b) => Outcome::pass(format!(
            "BundleUpdate: the target's bundle, created_ms {}, naming {}",
            b.created(),
            if *b.tls_spki_sha256() == cx.target.spki {
                "the TLS key the runner pins"
            } else {
                "another TLS key than the one the runner pins"
            }
        )),
    }
}

/// Sends `bundle` in a BundleUpdate on `link` and waits for the target's next BundleAccepted,
/// which must name it.
async fn announce(cx: &Ctx, link: &Link, bundle: &PeerBundle) -> Result<String, String> {
    let before = link.log(|l| l.bundle_accepted.len());
    link.write_control(&bundle_update(bundle.bytes())).await?;
    let sha = sha256(bundle.bytes());
    let first = link
        .wait_log(cx.step, |l| {
            l.bundle_accepted.get(before).cloned().map(Ok).or_else(|| {
                l.ended
                    .as_ref()
                    .map(|e| Err(format!("the control stream ended: {e}")))
            })
        })
        .await;
    let payload = match first {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(format!("no BundleAccepted: {e}{}", ended_note(link))),
        None => {
            return Err(format!(
                "no BundleAccepted within {} s of the BundleUpdate{}",
                cx.step.as_secs(),
                ended_note(link)
            ));
        }
    };
    match verify_bundle_accepted(&payload) {
        Err(why) => Err(format!("the target's BundleAccepted: {why}")),
        Ok(d) if d == sha => Ok(format!("BundleAccepted naming it ({})", hex(&d[..8]))),
        Ok(d) => Err(format!(
            "BundleAccepted naming another bundle: SHA-256 {} instead of {}",
            hex(&d),
            hex(&sha)
        )),
    }
}

async fn answered(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, BUNDLES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let bundle = tri!(own_bundle(cx));
    let r = announce(cx, &link, &bundle).await;
    link.raw.close();
    Outcome::from(r.map(|s| {
        format!(
            "newer bundle of the runner's (created_ms {}): {s}",
            bundle.created()
        )
    }))
}

/// A new TLS key of the runner's with a certificate the target can accept once it pins the key:
/// issued by the CA of `--pki` in private CA mode, self-signed in pinned mode.
fn new_tls(cx: &Ctx) -> Result<NodeTlsKey, String> {
    let (key, der) = certs::fresh_key()?;
    let window = Window::days(-1, 365);
    let cert = match (&cx.pki, cx.trust) {
        (Some(pki), Trust::Ca) => certs::issued(&key, &pki.issuer()?, window, None)?,
        _ => certs::self_signed(&key, window)?,
    };
    NodeTlsKey::new(cert, der).map_err(|e| format!("the new TLS key: {e}"))
}

/// A link on a connection made with the TLS key `tls` (the Hello as ever).
async fn link_with_key(cx: &Ctx, tls: &NodeTlsKey) -> Result<Link, String> {
    let cfg = tls::client_config(tls, &cx.target_trust(), ALPN, &Ctx::limits())
        .map_err(|e| format!("client configuration: {e}"))?;
    let raw = Raw::connect(cx, cfg).await.map_err(|e| e.describe())?;
    let hello = raw.hello(cx);
    raw.into_link(cx, hello, Behaviour::default()).await
}

/// Ends with the target pinning the runner's own TLS key again: a newer bundle naming it, sent
/// on `link` (or on a new connection with the runner's key if there is none), then a connection
/// with that key, which shows it.
async fn restore(cx: &Ctx, link: Option<Link>) -> Result<String, String> {
    let link = match link {
        Some(l) => l,
        None => peer::link(cx)
            .await
            .map_err(|e| format!("no link with the runner's own key to restore it: {e}"))?,
    };
    let back = own_bundle(cx)?;
    let r = announce(cx, &link, &back).await;
    drop(link);
    let said = r.map_err(|e| format!("a newer bundle naming the runner's own key again: {e}"))?;
    let shown = peer::link(cx)
        .await
        .map_err(|e| format!("{said}; then a connection with the runner's own key: {e}"))?;
    drop(shown);
    Ok(format!(
        "the runner's own key again: {said}; a connection with it: link UP"
    ))
}

async fn new_tls_key(cx: &Ctx) -> Outcome {
    let link = match link_v2(cx, BUNDLES).await {
        Ok(link) => link,
        Err(o) => return o,
    };
    let fresh = tri!(new_tls(cx));
    let bundle = tri!(runner_bundle(cx, fresh.spki_sha256(), next_created()));
    let taken = announce(cx, &link, &bundle).await;
    drop(link);
    if let Err(e) = taken {
        let restored = restore(cx, None).await;
        return Outcome::fail(format!(
            "newer bundle with a new TLS key: {e}; restoring {}",
            show(&restored)
        ));
    }
    // The replaced key first: no connection has shown the new one yet.
    let old = peer::link(cx).await.map(drop);
    let new = link_with_key(cx, &fresh).await;
    let new_up = new.is_ok();
    let new_note = match &new {
        Ok(_) => "link UP".to_owned(),
        Err(e) => e.clone(),
    };
    let restored = restore(cx, new.ok()).await;
    let observed = format!(
        "newer bundle with a new TLS key: {}; a connection with the replaced key: {}; with the \
         new key: {new_note}; {}",
        show(&taken),
        match &old {
            Ok(()) => "link UP".to_owned(),
            Err(e) => e.clone(),
        },
        show(&restored)
    );
    Outcome::check(old.is_ok() && new_up && restored.is_ok(), observed)
}

fn show(r: &Result<String, String>) -> String {
    match r {
        Ok(s) | Err(s) => s.clone(),
    }
}
