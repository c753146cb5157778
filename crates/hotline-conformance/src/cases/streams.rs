//! Message streams: framing errors, one frame per direction, resets, streams that never end,
//! and the stream limit (SPEC.md §3.7, §5.2, §9.2, §9.6).

use std::time::{Duration, Instant};

use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{self, FrameType};
use hotline_transport::now_ms;

use super::{expect_reset, tri};
use crate::ctx::Ctx;
use crate::fate::{code, code_name};
use crate::peer::{self, Answer, read_answer};
use crate::suite::{Case, Outcome, delivered};

pub fn cases() -> Vec<Case> {
    let reset = |c: CloseCode| {
        format!(
            "stream reset with {}; the connection continues",
            code_name(code(c))
        )
    };
    vec![
        Case::new(
            "stream-oversized-envelope-frame",
            "§5.2",
            format!(
                "{}, from the 5-byte header alone",
                reset(CloseCode::FrameTooLarge)
            ),
            |cx| Box::pin(oversized_envelope(cx)),
        ),
        Case::new(
            "stream-oversized-receipt-frame",
            "§5.2",
            reset(CloseCode::FrameTooLarge),
            |cx| Box::pin(oversized_receipt(cx)),
        ),
        Case::new(
            "stream-truncated-header",
            "§5.2",
            reset(CloseCode::TruncatedFrame),
            |cx| Box::pin(truncated_header(cx)),
        ),
        Case::new(
            "stream-truncated-payload",
            "§5.2",
            reset(CloseCode::TruncatedFrame),
            |cx| Box::pin(truncated_payload(cx)),
        ),
        Case::new(
            "stream-empty",
            "§9.2",
            reset(CloseCode::TruncatedFrame),
            |cx| Box::pin(empty(cx)),
        ),
        Case::new(
            "stream-unknown-frame-type",
            "§5.2",
            reset(CloseCode::UnexpectedFrame),
            |cx| Box::pin(unknown_type(cx)),
        ),
        Case::new(
            "stream-control-frame",
            "§9.2",
            reset(CloseCode::UnexpectedFrame),
            |cx| Box::pin(control_frame(cx)),
        ),
        Case::new(
            "stream-receipt-stored-first",
            "§9.2",
            reset(CloseCode::UnexpectedFrame),
            |cx| Box::pin(receipt_stored_first(cx)),
        ),
        Case::new(
            "stream-two-frames",
            "§9.2",
            format!(
                "{}, no receipt on it; the envelope sent again alone is DELIVERED",
                reset(CloseCode::UnexpectedFrame)
            ),
            |cx| Box::pin(two_frames(cx)),
        ),
        Case::new(
            "stream-error-resets-both-directions",
            "§5.2",
            "\"reset\" (§1.3): RESET_STREAM and STOP_SENDING, both FRAME_TOO_LARGE (0x02)",
            |cx| Box::pin(both_directions(cx)),
        ),
        Case::new(
            "stream-bytes-after-error-ignored",
            "§5.2",
            "a valid envelope written after the stream error is not processed: the same \
             envelope sent later gets a receipt made then",
            |cx| Box::pin(bytes_after_error(cx)),
        ),
        Case::new(
            "stream-never-finished",
            "§9.2",
            "no answer to an incomplete frame; other streams served meanwhile; link stays UP",
            |cx| Box::pin(never_finished(cx)),
        ),
        Case::new(
            "stream-complete-frame-without-fin",
            "§9.2",
            "DELIVERED, before FIN (MAY) or after it",
            |cx| Box::pin(without_fin(cx)),
        ),
        Case::new(
            "stream-limit-max-inflight",
            "§9.6",
            "max_inflight message streams open at once, no more (initial_max_streams_bidi = \
             max_inflight + 1, §3.7); link stays UP",
            |cx| Box::pin(stream_limit(cx)),
        ),
    ]
}

fn header(ty: FrameType, len: u32) -> Vec<u8> {
    let mut h = vec![ty.byte()];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// Links, sends `bytes` on one message stream, expects a reset with `expected`, and checks the
/// connection still works (a ping).
async fn resets(cx: &Ctx, bytes: &[u8], expected: CloseCode) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link.exchange_retrying(cx, bytes).await;
    let outcome = expect_reset(&answer, expected);
    let alive = link.ping(cx).await;
    link.raw.close();
    match alive {
        Ok(_) => outcome,
        Err(e) => Outcome::fail(format!(
            "{}, then the connection failed: {e}",
            outcome.observed
        )),
    }
}

async fn oversized_envelope(cx: &Ctx) -> Outcome {
    resets(
        cx,
        &header(FrameType::Envelope, 1024 * 1024 + 1),
        CloseCode::FrameTooLarge,
    )
    .await
}

async fn oversized_receipt(cx: &Ctx) -> Outcome {
    resets(
        cx,
        &header(FrameType::Receipt, 16 * 1024 + 1),
        CloseCode::FrameTooLarge,
    )
    .await
}

async fn truncated_header(cx: &Ctx) -> Outcome {
    resets(
        cx,
        &[FrameType::Envelope.byte(), 0],
        CloseCode::TruncatedFrame,
    )
    .await
}

async fn truncated_payload(cx: &Ctx) -> Outcome {
    let mut b = header(FrameType::Envelope, 100);
    b.extend_from_slice(&[0x0a; 10]);
    resets(cx, &b, CloseCode::TruncatedFrame).await
}

async fn empty(cx: &Ctx) -> Outcome {
    resets(cx, &[], CloseCode::TruncatedFrame).await
}

async fn unknown_type(cx: &Ctx) -> Outcome {
    resets(cx, &[0x7f, 0, 0, 0, 0], CloseCode::UnexpectedFrame).await
}

async fn control_frame(cx: &Ctx) -> Outcome {
    let hb = frame::encode(FrameType::Heartbeat, &peer::heartbeat(7, 0, &cx.seq));
    resets(cx, &hb, CloseCode::UnexpectedFrame).await
}

async fn receipt_stored_first(cx: &Ctx) -> Outcome {
    let stored = hotline_protocol::receipt::stored_ack(&[0x5a; 32]);
    resets(
        cx,
        &frame::encode(FrameType::ReceiptStored, &stored),
        CloseCode::UnexpectedFrame,
    )
    .await
}

async fn two_frames(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: twice on one stream"));
    let one = frame::encode(FrameType::Envelope, env.bytes());
    let answer = link
        .exchange_retrying(cx, &[&one[..], &one[..]].concat())
        .await;
    let first = expect_reset(&answer, CloseCode::UnexpectedFrame);
    // Whether or not the first frame was stored, the envelope alone must now be delivered
    // (from duplicate detection if it was, §10.5).
    let again = link.send_envelope(cx, env.bytes()).await;
    let second = delivered(cx, &again, &env);
    link.raw.close();
    match second {
        Ok(_) if first.passed() => {
            Outcome::pass(format!("{}; sent alone: DELIVERED", first.observed))
        }
        Ok(_) => first,
        Err(e) => Outcome::fail(format!("{}; sent alone: {e}", first.observed)),
    }
}

async fn both_directions(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (mut send, mut recv) = tri!(link.raw.conn.open_bi().await.map_err(|e| e.to_string()));
    tri!(
        send.write_all(&header(FrameType::Envelope, 1024 * 1024 + 1))
            .await
            .map_err(|e| e.to_string())
    );
    let answer = read_answer(&mut recv, cx.step).await;
    let stopped = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    link.raw.close();
    let expected = code(CloseCode::FrameTooLarge);
    let reset_ok = answer == Answer::Reset(expected);
    let stop = match stopped {
        Ok(Ok(Some(c))) => Some(c.into_inner()),
        _ => None,
    };
    let observed = format!(
        "{}; {}",
        answer.describe(),
        match stop {
            Some(c) => format!("STOP_SENDING with {}", code_name(c)),
            None => "no STOP_SENDING within 2 s (the runner's side stays open)".into(),
        }
    );
    Outcome::check(reset_ok && stop == Some(expected), observed)
}

async fn bytes_after_error(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(
        id,
        seq,
        "hotline-conformance: smuggled after a stream error"
    ));
    let (mut send, mut recv) = tri!(link.raw.conn.open_bi().await.map_err(|e| e.to_string()));
    tri!(
        send.write_all(&header(FrameType::Envelope, 1024 * 1024 + 1))
            .await
            .map_err(|e| e.to_string())
    );
    let answer = read_answer(&mut recv, cx.step).await;
    if answer != Answer::Reset(code(CloseCode::FrameTooLarge)) {
        link.raw.close();
        return Outcome::fail(format!("the oversized frame: {}", answer.describe()));
    }
    // The target's clock, to date its receipt (SPEC.md §8.1 time_ms).
    let before = now_ms();
    let hb = tri!(link.ping(cx).await);
    let offset = i128::from(hb.time_ms) - i128::from((before + now_ms()) / 2);
    let smuggled = send
        .write_all(&frame::encode(FrameType::Envelope, env.bytes()))
        .await;
    let _ = send.finish();
    let smuggled_at = now_ms();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let proper_at = now_ms();
    let again = link.send_envelope(cx, env.bytes()).await;
    let r = delivered(cx, &again, &env);
    link.raw.close();
    let r = tri!(r, "the envelope sent properly");
    let made = i128::from(r.time()) - offset;
    let note = match smuggled {
        Ok(()) => "the smuggled frame was written".to_owned(),
        Err(e) => format!("the smuggled frame could not be written ({e})"),
    };
    // A receipt made from the smuggled bytes dates from ~1.5 s before the proper send.
    let midpoint = i128::from(smuggled_at) + i128::from(proper_at - smuggled_at) / 2;
    if made < midpoint {
        Outcome::fail(format!(
            "{note}; the receipt for the later send was made {} ms before it: the target \
             processed bytes after resetting the stream",
            i128::from(proper_at) - made
        ))
    } else {
        Outcome::pass(format!(
            "{note}; the later send got a receipt made then (DELIVERED)"
        ))
    }
}

async fn never_finished(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (mut held_send, mut held_recv) =
        tri!(link.raw.conn.open_bi().await.map_err(|e| e.to_string()));
    let mut partial = header(FrameType::Envelope, 1000);
    partial.extend_from_slice(&[0x0a; 100]);
    tri!(
        held_send
            .write_all(&partial)
            .await
            .map_err(|e| e.to_string())
    );
    let early = read_answer(&mut held_recv, Duration::from_secs(2)).await;
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(
        id,
        seq,
        "hotline-conformance: beside a stream that never ends"
    ));
    let other = link.send_envelope(cx, env.bytes()).await;
    let other = delivered(cx, &other, &env);
    let late = read_answer(&mut held_recv, Duration::from_millis(300)).await;
    let alive = link.ping(cx).await;
    let _ = held_send.reset(quinn::VarInt::from_u32(0));
    link.raw.close();
    let mut problems = Vec::new();
    for a in [&early, &late] {
        if *a != Answer::Silent {
            problems.push(format!("the held stream got {}", a.describe()));
        }
    }
    if let Err(e) = other {
        problems.push(format!("another stream meanwhile: {e}"));
    }
    if let Err(e) = alive {
        problems.push(format!("the link: {e}"));
    }
    if problems.is_empty() {
        Outcome::pass(
            "no answer on the held stream for 2.3 s; an envelope on another stream DELIVERED \
             meanwhile; link UP",
        )
    } else {
        Outcome::fail(problems.join("; "))
    }
}

async fn without_fin(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: a frame without FIN"));
    let (mut send, mut recv) = tri!(link.raw.conn.open_bi().await.map_err(|e| e.to_string()));
    tri!(
        send.write_all(&frame::encode(FrameType::Envelope, env.bytes()))
            .await
            .map_err(|e| e.to_string())
    );
    let early = read_answer(&mut recv, Duration::from_secs(2)).await;
    let (answer, when) = if early == Answer::Silent {
        let _ = send.finish();
        (read_answer(&mut recv, cx.step).await, "after FIN")
    } else {
        (early, "before FIN")
    };
    let r = delivered(cx, &answer, &env);
    link.raw.close();
    tri!(r);
    Outcome::pass(format!("DELIVERED {when}"))
}

async fn stream_limit(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let n = link.hello.offer.max_inflight.min(10_000);
    let t0 = Instant::now();
    let mut held = Vec::new();
    let mut partial = header(FrameType::Envelope, 100);
    partial.push(0x0a);
    for i in 0..n {
        match tokio::time::timeout(cx.step, link.raw.conn.open_bi()).await {
            Ok(Ok((mut send, recv))) => {
                let _ = send.write_all(&partial).await;
                held.push((send, recv));
            }
            Ok(Err(e)) => return Outcome::fail(format!("stream {}: {e}", i + 1)),
            Err(_) => {
                link.raw.close();
                return Outcome::fail(format!(
                    "only {i} message streams could be opened; the target's Hello advertises \
                     max_inflight {n}"
                ));
            }
        }
    }
    let extra = tokio::time::timeout(Duration::from_millis(1500), link.raw.conn.open_bi()).await;
    let alive = link.ping(cx).await;
    for (send, recv) in &mut held {
        let _ = send.reset(quinn::VarInt::from_u32(0));
        let _ = recv.stop(quinn::VarInt::from_u32(0));
    }
    let held_for = t0.elapsed();
    drop(held);
    // Closed streams give the credit back (SHOULD, §3.7): a new envelope after a while.
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: after the stream limit"));
    let after = link.send_envelope(cx, env.bytes()).await;
    let after = delivered(cx, &after, &env);
    link.raw.close();
    let replenished = match &after {
        Ok(_) => "after closing them, a new stream: DELIVERED".to_owned(),
        Err(e) => format!("after closing them, a new stream: {e} (replenishing is SHOULD, §3.7)"),
    };
    match (extra, alive) {
        (Ok(Ok(_)), _) => Outcome::fail(format!(
            "a stream beyond max_inflight ({n}) could be opened: the target's QUIC limit is \
             above max_inflight + 1 (§3.7)"
        )),
        (_, Err(e)) => Outcome::fail(format!("{n} streams held, then the link failed: {e}")),
        (_, Ok(_)) => Outcome::pass(format!(
            "{n} streams held open ({:.1} s); stream {} could not be opened; link UP; {replenished}",
            held_for.as_secs_f64(),
            n + 1
        )),
    }
}
