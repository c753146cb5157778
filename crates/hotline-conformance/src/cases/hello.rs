//! The Hello exchange: channel binding, identity, negotiation, first-frame rules and the
//! Hello timeout (SPEC.md §6).

use std::time::Duration;

use bytes::Bytes;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::identity::{EncryptionKeypair, IdentityKey};
use hotline_protocol::time::DAY;
use hotline_transport::now_ms;
use prost::Message;

use super::{expect_close, expect_close_after, tri};
use crate::ctx::{Ctx, fill_random, rng};
use crate::fate::{Ending, code, code_name};
use crate::forge;
use crate::peer::{self, Raw};
use crate::suite::{Case, Outcome};

pub fn cases() -> Vec<Case> {
    let close = |c: CloseCode| format!("connection closed with {}", code_name(code(c)));
    vec![
        Case::new(
            "hello-wrong-channel-binding",
            "§6.3 step 4",
            close(CloseCode::BadChannelBinding),
            |cx| Box::pin(wrong_channel_binding(cx)),
        ),
        Case::new(
            "hello-replayed-from-another-connection",
            "§6.3 step 4",
            close(CloseCode::BadChannelBinding),
            |cx| Box::pin(replayed(cx)),
        ),
        Case::new(
            "hello-reflected-role",
            "§6.3 step 4",
            close(CloseCode::BadChannelBinding),
            |cx| Box::pin(reflected(cx)),
        ),
        Case::new(
            "hello-identity-not-pinned",
            "§6.3 step 3",
            close(CloseCode::IdentityMismatch),
            |cx| Box::pin(identity_not_pinned(cx)),
        ),
        Case::new(
            "hello-forged-identity",
            "§6.3 step 4",
            close(CloseCode::BadChannelBinding),
            |cx| Box::pin(forged_identity(cx)),
        ),
        Case::new(
            "hello-unsupported-versions-only",
            "§6.3 step 5",
            close(CloseCode::UnsupportedVersion),
            |cx| Box::pin(unsupported_versions(cx)),
        ),
        Case::new(
            "hello-unsupported-suites-only",
            "§6.3 step 6",
            close(CloseCode::UnsupportedSuite),
            |cx| Box::pin(unsupported_suites(cx)),
        ),
        Case::new(
            "hello-bad-encryption-key",
            "§6.3 step 7",
            close(CloseCode::MalformedFrame),
            |cx| Box::pin(bad_encryption_key(cx)),
        ),
        Case::new(
            "hello-max-inflight-zero",
            "§6.3 step 2",
            close(CloseCode::MalformedFrame),
            |cx| Box::pin(max_inflight_zero(cx)),
        ),
        Case::new(
            "hello-garbage",
            "§6.3 step 2",
            close(CloseCode::MalformedFrame),
            |cx| Box::pin(garbage(cx)),
        ),
        Case::new(
            "hello-non-canonical",
            "§6.3 step 2",
            close(CloseCode::MalformedFrame),
            |cx| Box::pin(non_canonical(cx)),
        ),
        Case::new(
            "hello-not-first-frame",
            "§6.3 step 1",
            close(CloseCode::UnexpectedFrame),
            |cx| Box::pin(not_first(cx)),
        ),
        Case::new(
            "hello-oversized-frame",
            "§6.3 step 1",
            close(CloseCode::FrameTooLarge),
            |cx| Box::pin(oversized(cx)),
        ),
        Case::new(
            "hello-truncated-frame",
            "§6.3 step 1",
            close(CloseCode::TruncatedFrame),
            |cx| Box::pin(truncated(cx)),
        ),
        Case::new(
            "hello-second-hello",
            "§6.3",
            close(CloseCode::UnexpectedFrame),
            |cx| Box::pin(second(cx)),
        ),
        Case::new(
            "hello-timeout",
            "§6.6",
            format!(
                "{}, 10 s after the handshake",
                close(CloseCode::HelloTimeout)
            ),
            |cx| Box::pin(timeout(cx)),
        ),
        Case::new(
            "duplicate-connection-while-up",
            "§3.9.1",
            format!(
                "the second connection closed with {}; the first stays UP and delivers",
                code_name(code(CloseCode::DuplicateConnection))
            ),
            |cx| Box::pin(duplicate_while_up(cx)),
        ),
        Case::new(
            "duplicate-connection-failed-hello",
            "§3.9",
            format!(
                "the second connection, whose Hello is bound to the first one's TLS session, \
                 closed with {} or {}; the first stays UP and delivers",
                code_name(code(CloseCode::DuplicateConnection)),
                code_name(code(CloseCode::BadChannelBinding))
            ),
            |cx| Box::pin(duplicate_failed_hello(cx)),
        ),
    ]
}

/// SPEC.md §3.9: a connection that passed Hello is never replaced by one that has not. A
/// second connection with the runner's TLS key sends at once a Hello that cannot verify (the
/// first connection's Hello, replayed): what someone holding only the TLS key could send. The
/// target may refuse the second connection as a duplicate, or run its Hello and refuse that;
/// either way the first connection must stay UP.
async fn duplicate_failed_hello(cx: &Ctx) -> Outcome {
    let first = tri!(peer::link(cx).await, "first connection");
    let second = match Raw::connect(cx, tri!(cx.client_config())).await {
        Ok(raw) => raw,
        Err(e) => {
            first.raw.close();
            return Outcome::fail(format!("second connection: {}", e.describe()));
        }
    };
    let replayed = frame::encode(FrameType::Hello, &first.sent_hello).to_vec();
    let control = second.open_control(cx, &replayed).await;
    let ended = second.ended(super::CLOSE_WAIT).await;
    drop(control);
    second.close();
    let refused = [CloseCode::DuplicateConnection, CloseCode::BadChannelBinding];
    let observed = match ended {
        Some(Ending::App(c)) if refused.iter().any(|r| code(*r) == c) => {
            format!("second connection closed with {}", code_name(c))
        }
        Some(other) => {
            first.raw.close();
            return Outcome::fail(format!("second connection: {}", other.describe()));
        }
        None => {
            first.raw.close();
            return Outcome::fail(format!(
                "the second connection stayed open for {:?}",
                super::CLOSE_WAIT
            ));
        }
    };
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: after a failed second Hello"));
    let answer = first.send_envelope(cx, env.bytes()).await;
    let r = crate::suite::delivered(cx, &answer, &env);
    first.raw.close();
    match r {
        Ok(_) => Outcome::pass(format!("{observed}; the first connection delivered")),
        Err(e) => Outcome::fail(format!(
            "{observed}, but the first connection no longer delivers: {e}"
        )),
    }
}

/// A second connection with the runner's TLS key while its first is UP and answering: what
/// someone holding only a node's TLS key could try. The target must keep the first.
async fn duplicate_while_up(cx: &Ctx) -> Outcome {
    let first = tri!(peer::link(cx).await, "first connection");
    let second = match Raw::connect(cx, tri!(cx.client_config())).await {
        Ok(raw) => raw,
        Err(e) => {
            first.raw.close();
            return Outcome::fail(format!("second connection: {}", e.describe()));
        }
    };
    let closed = expect_close(&second, CloseCode::DuplicateConnection).await;
    second.close();
    if !closed.passed() {
        first.raw.close();
        return Outcome::fail(format!("second connection: {}", closed.observed));
    }
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: after a duplicate connection"));
    let answer = first.send_envelope(cx, env.bytes()).await;
    let r = crate::suite::delivered(cx, &answer, &env);
    first.raw.close();
    match r {
        Ok(_) => Outcome::pass(format!(
            "{}; the first connection delivered",
            closed.observed
        )),
        Err(e) => Outcome::fail(format!(
            "{}, but the first connection no longer delivers: {e}",
            closed.observed
        )),
    }
}

/// Dials with the node's configuration, writes `first(raw)` on the control stream, and expects
/// the connection closed with `expected`. The control stream stays open meanwhile (dropping it
/// would finish it, a second fault).
async fn refused(cx: &Ctx, first: impl FnOnce(&Raw) -> Vec<u8>, expected: CloseCode) -> Outcome {
    let raw = tri!(
        Raw::connect(cx, tri!(cx.client_config()))
            .await
            .map_err(|e| e.describe()),
        "no connection"
    );
    let bytes = first(&raw);
    let control = tri!(raw.open_control(cx, &bytes).await);
    let outcome = expect_close(&raw, expected).await;
    drop(control);
    raw.close();
    outcome
}

/// As [`refused`], with `hello` sent as a Hello frame.
async fn hello_refused(
    cx: &Ctx,
    hello: impl FnOnce(&Raw) -> Vec<u8>,
    expected: CloseCode,
) -> Outcome {
    refused(
        cx,
        |raw| frame::encode(FrameType::Hello, &hello(raw)).to_vec(),
        expected,
    )
    .await
}

fn stranger() -> (IdentityKey, Vec<hotline_protocol::identity::EncryptionKey>) {
    let c = IdentityKey::generate(&mut rng());
    let now = now_ms();
    let keys =
        vec![EncryptionKeypair::generate(&c, now - 60_000, now + DAY, &mut rng()).certificate];
    (c, keys)
}

async fn wrong_channel_binding(cx: &Ctx) -> Outcome {
    let mut other = [0u8; 32];
    fill_random(&mut other);
    hello_refused(
        cx,
        |_| {
            hello::create(
                &cx.me.identity,
                Side::Client,
                &other,
                &Offer::default(),
                &cx.me.keys,
                now_ms(),
            )
        },
        CloseCode::BadChannelBinding,
    )
    .await
}

async fn replayed(cx: &Ctx) -> Outcome {
    let first = tri!(peer::link(cx).await, "first connection");
    let recorded = first.sent_hello.clone();
    first.raw.close();
    drop(first);
    hello_refused(cx, |_| recorded, CloseCode::BadChannelBinding).await
}

async fn reflected(cx: &Ctx) -> Outcome {
    hello_refused(
        cx,
        |raw| {
            hello::create(
                &cx.me.identity,
                Side::Server,
                &raw.exporter,
                &Offer::default(),
                &cx.me.keys,
                now_ms(),
            )
        },
        CloseCode::BadChannelBinding,
    )
    .await
}

async fn identity_not_pinned(cx: &Ctx) -> Outcome {
    let (c, keys) = stranger();
    hello_refused(
        cx,
        |raw| {
            hello::create(
                &c,
                Side::Client,
                &raw.exporter,
                &Offer::default(),
                &keys,
                now_ms(),
            )
        },
        CloseCode::IdentityMismatch,
    )
    .await
}

async fn forged_identity(cx: &Ctx) -> Outcome {
    let (c, _) = stranger();
    hello_refused(
        cx,
        |raw| {
            let body = forge::hello_body(&cx.me.identity.id(), &cx.me.keys, &Offer::default());
            forge::sign_hello(&c, Side::Client, &raw.exporter, &body.encode_to_vec())
        },
        CloseCode::BadChannelBinding,
    )
    .await
}

/// Versions no protocol has: 2 is a version now (KeyUpdate, SPEC.md §12.5), so this offer
/// must leave out every registered one.
async fn unsupported_versions(cx: &Ctx) -> Outcome {
    hello_refused(
        cx,
        |raw| forge::runner_hello(cx, &raw.exporter, |b| b.versions = vec![7, 9]),
        CloseCode::UnsupportedVersion,
    )
    .await
}

async fn unsupported_suites(cx: &Ctx) -> Outcome {
    hello_refused(
        cx,
        |raw| forge::runner_hello(cx, &raw.exporter, |b| b.suites = vec![2, 9]),
        CloseCode::UnsupportedSuite,
    )
    .await
}

async fn bad_encryption_key(cx: &Ctx) -> Outcome {
    hello_refused(
        cx,
        |raw| {
            forge::runner_hello(cx, &raw.exporter, |b| {
                for k in &mut b.encryption_keys {
                    let mut sig = k.signature.to_vec();
                    if let Some(x) = sig.first_mut() {
                        *x ^= 0x01;
                    }
                    k.signature = Bytes::from(sig);
                }
            })
        },
        CloseCode::MalformedFrame,
    )
    .await
}

async fn max_inflight_zero(cx: &Ctx) -> Outcome {
    hello_refused(
        cx,
        |raw| forge::runner_hello(cx, &raw.exporter, |b| b.max_inflight = 0),
        CloseCode::MalformedFrame,
    )
    .await
}

async fn garbage(cx: &Ctx) -> Outcome {
    hello_refused(cx, |_| vec![0xff; 64], CloseCode::MalformedFrame).await
}

async fn non_canonical(cx: &Ctx) -> Outcome {
    hello_refused(
        cx,
        |raw| forge::with_unknown_field(&raw.hello(cx)),
        CloseCode::MalformedFrame,
    )
    .await
}

async fn not_first(cx: &Ctx) -> Outcome {
    refused(
        cx,
        |_| frame::encode(FrameType::Heartbeat, &peer::heartbeat(1, 0, &cx.seq)).to_vec(),
        CloseCode::UnexpectedFrame,
    )
    .await
}

async fn oversized(cx: &Ctx) -> Outcome {
    // Only the header: the target must refuse from the length alone (SPEC.md §5.2).
    refused(
        cx,
        |_| {
            let mut h = vec![FrameType::Hello.byte()];
            h.extend_from_slice(&(16 * 1024 + 1u32).to_be_bytes());
            h
        },
        CloseCode::FrameTooLarge,
    )
    .await
}

async fn truncated(cx: &Ctx) -> Outcome {
    let raw = tri!(
        Raw::connect(cx, tri!(cx.client_config()))
            .await
            .map_err(|e| e.describe()),
        "no connection"
    );
    let full = frame::encode(FrameType::Hello, &raw.hello(cx));
    let half = &full[..full.len() / 2];
    let mut control = tri!(raw.open_control(cx, half).await);
    let _ = control.send.finish();
    let outcome = expect_close(&raw, CloseCode::TruncatedFrame).await;
    drop(control);
    raw.close();
    outcome
}

async fn second(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let again = frame::encode(FrameType::Hello, &link.raw.hello(cx));
    tri!(link.write_control(&again).await);
    let outcome = expect_close(&link.raw, CloseCode::UnexpectedFrame).await;
    link.raw.close();
    outcome
}

async fn timeout(cx: &Ctx) -> Outcome {
    let raw = tri!(
        Raw::connect(cx, tri!(cx.client_config()))
            .await
            .map_err(|e| e.describe()),
        "no connection"
    );
    expect_close_after(
        &raw,
        CloseCode::HelloTimeout,
        Duration::from_millis(9_500),
        Duration::from_secs(16),
        "without a Hello",
    )
    .await
}
