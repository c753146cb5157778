//! The control stream pushed or ended by the peer: a flood of Heartbeat pings (SPEC.md §13.2),
//! Close frames carrying codes other than NO_ERROR (§3.8), and the target's own Close frame
//! reaching the runner before its CONNECTION_CLOSE (§3.8).

use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::wire;
use prost::Message;

use super::{expect_close, tri};
use crate::ctx::Ctx;
use crate::fate::{code, code_name};
use crate::peer::{self, Link};
use crate::suite::{Case, Outcome};

/// Pings the flood sends: far beyond the ping burst (16), all at once.
const FLOOD_PINGS: u64 = 1_000;
/// Pings per write of the flood.
const PINGS_PER_WRITE: u64 = 100;
/// A code no revision of SPEC.md §12.1 has assigned.
const UNREGISTERED_CODE: u32 = 0x4242;

pub fn cases() -> Vec<Case> {
    let close = |c: CloseCode| format!("connection closed with {}", code_name(code(c)));
    vec![
        Case::new(
            "hello-split-across-packets",
            "§5.1",
            "the runner's Hello written in two pieces, cut inside its header and in its payload, \
             a pause between them: the target verifies it and the link comes up each time",
            |cx| Box::pin(hello_split(cx)),
        ),
        Case::new(
            "control-ping-flood",
            "§13.2",
            format!(
                "{FLOOD_PINGS} Heartbeat pings at once, beyond the ping limit (burst 16, \
                 4/s): {}",
                close(CloseCode::RateLimited)
            ),
            |cx| Box::pin(ping_flood(cx)),
        ),
        Case::new(
            "close-frame-precedes-connection-close",
            "§3.8",
            format!(
                "an unknown frame type on the control stream: the target's Close frame with \
                 UNEXPECTED_FRAME arrives before its CONNECTION_CLOSE, and {}",
                close(CloseCode::UnexpectedFrame)
            ),
            |cx| Box::pin(close_frame_first(cx)),
        ),
        Case::new(
            "close-frame-with-code",
            "§3.8",
            format!(
                "a Close frame with SHUTDOWN, then FIN: the target ends the connection with \
                 NO_ERROR, not the peer's code: {}",
                close(CloseCode::NoError)
            ),
            |cx| Box::pin(close_with(cx, CloseCode::Shutdown.code())),
        ),
        Case::new(
            "close-frame-unknown-code",
            "§3.8",
            format!(
                "a Close frame with an unregistered code, then FIN: an unknown code is only \
                 shown as PROTOCOL_VIOLATION, the target ends the connection with NO_ERROR: {}",
                close(CloseCode::NoError)
            ),
            |cx| Box::pin(close_with(cx, UNREGISTERED_CODE)),
        ),
    ]
}

async fn ping_flood(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    // Ping numbers of their own, far above the runner's regular pings.
    let first = 1u64 << 40;
    let mut written = 0;
    while written < FLOOD_PINGS {
        let batch: Vec<u8> = (written..written + PINGS_PER_WRITE)
            .flat_map(|i| {
                frame::encode(
                    FrameType::Heartbeat,
                    &peer::heartbeat(first + i, 0, &cx.seq),
                )
                .to_vec()
            })
            .collect();
        if link.write_control(&batch).await.is_err() {
            break; // closed already: the outcome says how
        }
        written += PINGS_PER_WRITE;
    }
    let outcome = expect_close(&link.raw, CloseCode::RateLimited).await;
    let echoed = echoes_of_flood(&link, first);
    link.raw.close();
    if !outcome.passed() {
        return Outcome::fail(format!(
            "{} ({echoed} of the flood's pings echoed)",
            outcome.observed
        ));
    }
    Outcome::pass(format!(
        "{}, after {echoed} of the flood's pings were echoed",
        outcome.observed
    ))
}

fn echoes_of_flood(link: &Link, first: u64) -> usize {
    link.log(|l| l.heartbeats.iter().filter(|(_, h)| h.echo >= first).count())
}

async fn close_with(cx: &Ctx, close_code: u32) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let close = wire::Close {
        code: close_code,
        reason: "hotline-conformance: closing with a code".into(),
    };
    tri!(
        link.write_control(&frame::encode(FrameType::Close, &close.encode_to_vec()))
            .await
    );
    tri!(link.finish_control().await);
    // The runner does not close the QUIC connection itself: the target must, with NO_ERROR.
    let outcome = expect_close(&link.raw, CloseCode::NoError).await;
    link.raw.close();
    outcome
}

async fn close_frame_first(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    tri!(link.write_control(&[0x7f, 0, 0, 0, 0]).await);
    let outcome = expect_close(&link.raw, CloseCode::UnexpectedFrame).await;
    // The reader task may still be handing over the last frame it read.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let closes = link.closes();
    link.raw.close();
    if !outcome.passed() {
        return outcome;
    }
    let want = code(CloseCode::UnexpectedFrame);
    match closes.first() {
        Some(c) if u64::from(c.code) == want => Outcome::pass(format!(
            "Close frame {} ({:?}), then {}",
            code_name(want),
            c.reason,
            outcome.observed
        )),
        Some(c) => Outcome::fail(format!(
            "a Close frame with {} instead of {}",
            code_name(u64::from(c.code)),
            code_name(want)
        )),
        None => Outcome::fail(format!(
            "no Close frame reached the runner before the connection closed ({})",
            outcome.observed
        )),
    }
}

/// Where the Hello frame is cut: inside the 5-byte header at every byte, then in the payload.
fn cuts(len: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (1..=5).collect();
    v.extend([len / 2, len - 1]);
    v.retain(|&c| c > 0 && c < len);
    v.dedup();
    v
}

async fn hello_split(cx: &Ctx) -> Outcome {
    let mut seen = Vec::new();
    let cfg = tri!(cx.client_config());
    for cut in cuts(peer::Raw::hello_frame_len(cx)) {
        let raw = match peer::Raw::connect(cx, cfg.clone()).await {
            Ok(r) => r,
            Err(e) => return Outcome::fail(format!("cut at {cut}: {}", e.describe())),
        };
        let hello = frame::encode(FrameType::Hello, &raw.hello(cx));
        let mut control = tri!(raw.open_control(cx, &hello[..cut]).await);
        // A pause, so that the second piece travels in a packet of its own.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tri!(
            control
                .send
                .write_all(&hello[cut..])
                .await
                .map_err(|e| format!("cut at {cut}: second piece: {e}"))
        );
        // The target's Hello, then, once it verified ours, its first Heartbeat (§11.1).
        let mut frames = Vec::new();
        for _ in 0..2 {
            match tokio::time::timeout(cx.step, control.read_frame()).await {
                Ok(Ok(f)) => frames.push(f.ty),
                Ok(Err(e)) => {
                    let end = raw.ended(std::time::Duration::from_millis(200)).await;
                    return Outcome::fail(format!(
                        "Hello cut at byte {cut}: {}",
                        end.map_or(e, |x| x.describe())
                    ));
                }
                Err(_) => {
                    return Outcome::fail(format!(
                        "Hello cut at byte {cut}: no Heartbeat within {:?}: the target did not \
                         take the Hello",
                        cx.step
                    ));
                }
            }
        }
        raw.close();
        if frames != [FrameType::Hello, FrameType::Heartbeat] {
            return Outcome::fail(format!(
                "Hello cut at byte {cut}: the target sent {frames:?}"
            ));
        }
        seen.push(cut);
    }
    Outcome::pass(format!("link up with the Hello cut at bytes {seen:?}"))
}
