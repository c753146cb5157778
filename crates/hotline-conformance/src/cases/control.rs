//! The control stream after the link is UP: frame rules, heartbeats, Close, liveness
//! (SPEC.md §3.8, §5.2, §9.1, §10.3, §11).

use std::time::{Duration, Instant};

use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;

use super::{expect_close, expect_close_after, tri};
use crate::ctx::Ctx;
use crate::fate::{Ending, code, code_name};
use crate::peer::{self, Behaviour, Link};
use crate::suite::{Case, Outcome, delivered};

pub fn cases() -> Vec<Case> {
    let close = |c: CloseCode| format!("connection closed with {}", code_name(code(c)));
    vec![
        Case::new(
            "control-unknown-frame-type",
            "§5.2",
            close(CloseCode::UnexpectedFrame),
            |cx| Box::pin(unknown_type(cx)),
        ),
        Case::new(
            "control-envelope-frame",
            "§9.1",
            close(CloseCode::UnexpectedFrame),
            |cx| Box::pin(envelope_frame(cx)),
        ),
        Case::new(
            "control-oversized-frame",
            "§5.2",
            close(CloseCode::FrameTooLarge),
            |cx| Box::pin(oversized(cx)),
        ),
        Case::new(
            "control-truncated-frame",
            "§9.1",
            close(CloseCode::TruncatedFrame),
            |cx| Box::pin(truncated(cx)),
        ),
        Case::new(
            "control-finished-without-close",
            "§9.1",
            close(CloseCode::ProtocolViolation),
            |cx| Box::pin(finished(cx)),
        ),
        Case::new(
            "heartbeat-garbage",
            "§5.2",
            close(CloseCode::MalformedFrame),
            |cx| Box::pin(heartbeat_garbage(cx)),
        ),
        Case::new(
            "heartbeat-non-canonical",
            "§11.1",
            close(CloseCode::MalformedFrame),
            |cx| Box::pin(heartbeat_non_canonical(cx)),
        ),
        Case::new(
            "heartbeat-target-pings",
            "§11.1",
            "the target sends a Heartbeat ping at once when the link is UP, then every 5 s, \
             the ping counter rising by 1",
            |cx| Box::pin(target_pings(cx)),
        ),
        Case::new(
            "heartbeat-ping-echoed",
            "§11.1",
            "a Heartbeat with echo = the ping, at once",
            |cx| Box::pin(ping_echoed(cx)),
        ),
        Case::new(
            "heartbeat-ping-and-echo-together",
            "§11.1",
            "not rejected: the ping is echoed, the unknown echo ignored, the link stays UP",
            |cx| Box::pin(ping_and_echo(cx)),
        ),
        Case::new(
            "heartbeat-claims-unseen-sequence",
            "§10.3",
            "informational only: the connection stays UP, pings answered, received_through \
             stays below the claimed sequence until it arrives, then the envelope is DELIVERED",
            |cx| Box::pin(unseen_sequence(cx)),
        ),
        Case::new(
            "close-frame-then-fin",
            "§3.8",
            format!(
                "the target ends the connection: {}",
                close(CloseCode::NoError)
            ),
            |cx| Box::pin(close_frame(cx)),
        ),
        Case::new(
            "liveness-silent-peer",
            "§11.3",
            format!(
                "{}, 15 s after the runner's last stream data",
                close(CloseCode::LinkTimeout)
            ),
            |cx| Box::pin(liveness(cx)),
        ),
    ]
}

/// Links, writes `bytes` on the control stream, expects the connection closed with `expected`.
async fn closes_on(cx: &Ctx, bytes: &[u8], expected: CloseCode) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    tri!(link.write_control(bytes).await);
    let outcome = expect_close(&link.raw, expected).await;
    link.raw.close();
    outcome
}

async fn unknown_type(cx: &Ctx) -> Outcome {
    closes_on(cx, &[0x7f, 0, 0, 0, 0], CloseCode::UnexpectedFrame).await
}

async fn envelope_frame(cx: &Ctx) -> Outcome {
    closes_on(
        cx,
        &frame::encode(FrameType::Envelope, &[0x0a, 0x00]),
        CloseCode::UnexpectedFrame,
    )
    .await
}

async fn oversized(cx: &Ctx) -> Outcome {
    let mut h = vec![FrameType::Heartbeat.byte()];
    h.extend_from_slice(&(16 * 1024 + 1u32).to_be_bytes());
    closes_on(cx, &h, CloseCode::FrameTooLarge).await
}

async fn truncated(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let hb = frame::encode(FrameType::Heartbeat, &peer::heartbeat(99, 0, &cx.seq));
    tri!(link.write_control(&hb[..hb.len() - 2]).await);
    tri!(link.finish_control().await);
    let outcome = expect_close(&link.raw, CloseCode::TruncatedFrame).await;
    link.raw.close();
    outcome
}

async fn finished(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    tri!(link.finish_control().await);
    let outcome = expect_close(&link.raw, CloseCode::ProtocolViolation).await;
    link.raw.close();
    outcome
}

async fn heartbeat_garbage(cx: &Ctx) -> Outcome {
    closes_on(
        cx,
        &frame::encode(FrameType::Heartbeat, &[0xff; 8]),
        CloseCode::MalformedFrame,
    )
    .await
}

async fn heartbeat_non_canonical(cx: &Ctx) -> Outcome {
    // ping = 1 as a two-byte varint: decodes, but is not the minimal encoding (§5.3 rule 7).
    closes_on(
        cx,
        &frame::encode(FrameType::Heartbeat, &[0x08, 0x81, 0x00]),
        CloseCode::MalformedFrame,
    )
    .await
}

async fn target_pings(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let up = link.up_at;
    // The first ping, and the second 5 s later (with 1.5 s of slack).
    let count =
        |l: &crate::peer::ControlLog| l.heartbeats.iter().filter(|(_, h)| h.ping != 0).count();
    while link.log(count) < 2 && up.elapsed() < Duration::from_secs(7) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pings: Vec<(Duration, u64)> = link.log(|l| {
        l.heartbeats
            .iter()
            .filter(|(_, h)| h.ping != 0)
            .map(|(at, h)| (at.saturating_duration_since(up), h.ping))
            .collect()
    });
    let bad = link.log(|l| l.other.clone());
    link.raw.close();
    let seen = pings
        .iter()
        .map(|(at, p)| format!("ping {p} at {:.1} s", at.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    if !bad.is_empty() {
        return Outcome::fail(format!("{seen}; and {}", bad.join("; ")));
    }
    let (Some(first), Some(next)) = (pings.first(), pings.get(1)) else {
        return Outcome::fail(format!("fewer than two pings in 7 s after link UP: {seen}"));
    };
    let gap = next.0.saturating_sub(first.0);
    Outcome::check(
        first.0 <= Duration::from_millis(1_500)
            && gap >= Duration::from_millis(4_000)
            && gap <= Duration::from_millis(6_500)
            && next.1 == first.1 + 1,
        seen,
    )
}

async fn ping_echoed(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let t0 = Instant::now();
    let r = link.ping(cx).await;
    link.raw.close();
    let hb = tri!(r);
    Outcome::pass(format!(
        "echo {} after {} ms (received_through {}, last_sequence_sent {})",
        hb.echo,
        t0.elapsed().as_millis(),
        hb.received_through,
        hb.last_sequence_sent
    ))
}

async fn ping_and_echo(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let ping = 0x5eed_0001;
    let hb = wire::Heartbeat {
        ping,
        echo: 0x0bad_0bad,
        time_ms: now_ms(),
        last_sequence_sent: cx.sent_max(),
        received_through: 0,
    };
    tri!(
        link.write_control(&frame::encode(FrameType::Heartbeat, &hb.encode_to_vec()))
            .await
    );
    let echoed = link.wait_heartbeat(cx.step, |h| h.echo == ping).await;
    let alive = link.ping(cx).await;
    let note = ended_note(&link);
    link.raw.close();
    match (echoed, alive) {
        (Some(_), Ok(_)) => Outcome::pass("ping echoed; the link stays UP"),
        (None, _) => Outcome::fail(format!("no echo of the ping{note}")),
        (Some(_), Err(e)) => Outcome::fail(format!("echoed, then the link failed: {e}{note}")),
    }
}

fn ended_note(link: &Link) -> String {
    match link.raw.conn.close_reason() {
        Some(e) => format!("; {}", Ending::from_error(&e).describe()),
        None => String::new(),
    }
}

async fn unseen_sequence(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (_, claimed) = cx.reserve();
    let ping = 0x5eed_0002;
    let hb = wire::Heartbeat {
        ping,
        echo: 0,
        time_ms: now_ms(),
        last_sequence_sent: claimed,
        received_through: 0,
    };
    tri!(
        link.write_control(&frame::encode(FrameType::Heartbeat, &hb.encode_to_vec()))
            .await
    );
    let Some(reply) = link.wait_heartbeat(cx.step, |h| h.echo == ping).await else {
        return Outcome::fail(format!(
            "no echo of the heartbeat claiming sequence {claimed}{}",
            ended_note(&link)
        ));
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Some(e) = link.raw.conn.close_reason() {
        return Outcome::fail(format!(
            "the target ended the connection: {}",
            Ending::from_error(&e).describe()
        ));
    }
    if reply.received_through >= claimed {
        return Outcome::fail(format!(
            "received_through {} already covers sequence {claimed}, which was never sent",
            reply.received_through
        ));
    }
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(
        id,
        seq,
        "hotline-conformance: the sequence a heartbeat claimed"
    ));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let r = delivered(cx, &answer, &env);
    let after = link.ping(cx).await;
    link.raw.close();
    tri!(r, "the claimed sequence, sent");
    let after = tri!(after);
    Outcome::pass(format!(
        "link stayed UP; received_through {} while {claimed} was claimed, {} once it was \
         DELIVERED",
        reply.received_through, after.received_through
    ))
}

async fn close_frame(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let close = wire::Close {
        code: CloseCode::NoError.code(),
        reason: "hotline-conformance: orderly close".into(),
    };
    tri!(
        link.write_control(&frame::encode(FrameType::Close, &close.encode_to_vec()))
            .await
    );
    tri!(link.finish_control().await);
    // The runner does not close the QUIC connection itself: the target must.
    let outcome = expect_close(&link.raw, CloseCode::NoError).await;
    link.raw.close();
    outcome
}

async fn liveness(cx: &Ctx) -> Outcome {
    let link = tri!(
        peer::link_with(cx, Behaviour { heartbeats: false }).await,
        "no link"
    );
    expect_close_after(
        &link.raw,
        CloseCode::LinkTimeout,
        Duration::from_secs(14),
        Duration::from_secs(25),
        "without data from the runner",
    )
    .await
}
