//! A peer's implausible `last_sequence_sent` (issue 13 item A8, SPEC.md §10.3), with the raw
//! peer of `raw_peer` playing node A against a real node B: B counts gaps only up to a bound
//! above what arrived, and alerts its operators once with the raw claim.

mod common;
mod raw_peer;

use std::time::Duration;

use common::{BRUNO, Client, Watch, connect_and_watch, with_bruno};
use hotline_protocol::ALPN;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_transport::now_ms;
use prost::Message;
use raw_peer::{Link, Raw, World, block_on, step};

/// How long to go on watching for an event that must not come.
const SETTLE: Duration = Duration::from_millis(700);

/// The next Watch event of `kind` within `limit`, if any.
async fn next_event(watch: &mut Watch, kind: &str, limit: Duration) -> Option<wire::OperatorEvent> {
    let until = std::time::Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        match watch.next(left).await {
            Some(Response::Event(e)) if e.kind == kind => return Some(e),
            Some(_) => {}
            None => return None,
        }
    }
}

/// The raw peer's link, with its control stream's sending side kept for Heartbeats of its own
/// (as in `sequence_peer.rs`: `raw_peer::Link` answers B's pings with a claim of 0).
async fn link_keeping_control(w: &World) -> (Link, quinn::SendStream) {
    let d = w.as_a();
    let raw = step(
        "dial B",
        Raw::connect(w.client_config(&d.tls, ALPN), w.b_addr),
    )
    .await
    .expect("TLS handshake with B");
    let ours = hello::create(
        &d.identity,
        Side::Client,
        &raw.exporter,
        &Offer::default(),
        &d.keys,
        now_ms(),
    );
    let mut control = raw.send_hello(&ours).await;
    let f = step("B's Hello", control.read_frame())
        .await
        .expect("B's Hello");
    assert_eq!(f.ty, FrameType::Hello);
    let b_hello = hello::verify(
        &f.payload,
        &w.b_id,
        Side::Server,
        &raw.exporter,
        &Offer::default(),
    )
    .expect("B's Hello verifies");
    let raw_peer::Control { send, mut recv, .. } = control;
    // Read (and drop) what B sends on the control stream, so that it never blocks.
    let heartbeats =
        tokio::spawn(
            async move { while let Ok(Some(_)) = recv.read_chunk(64 * 1024, true).await {} },
        );
    let link = Link {
        raw,
        hello: ours,
        b_hello,
        heartbeats,
    };
    (link, send)
}

async fn heartbeat(control: &mut quinn::SendStream, last_sequence_sent: u64) {
    let hb = wire::Heartbeat {
        ping: 0,
        echo: 0,
        time_ms: now_ms(),
        last_sequence_sent,
        received_through: 0,
    }
    .encode_to_vec();
    control
        .write_all(&frame::encode(FrameType::Heartbeat, &hb))
        .await
        .expect("write Heartbeat");
}

async fn status(c: &Client) -> wire::StatusResponse {
    match c
        .call(Request::Status(Default::default()))
        .await
        .expect("status")
    {
        Response::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

/// SPEC.md §10.3: A's Heartbeats claim it sent sequence 2^63; nothing arrived. Past the gap
/// grace period (10 s) B's status counts 65,536 missing sequences (the bound above what
/// arrived), not 2^63, and B alerted its operators once (Watch, audit trail) with the raw
/// claim and the cap, however often the claim is repeated.
#[test]
fn a_huge_last_sequence_sent_is_capped_in_status_and_alerted_once() {
    block_on(async {
        let w = World::start_with(with_bruno).await;
        let (bruno, mut watch) = step(
            "operator connection",
            connect_and_watch(&w.b_dir.join(BRUNO), w.b_addr),
        )
        .await;
        let (link, mut control) = link_keeping_control(&w).await;
        let huge = 1u64 << 63;
        heartbeat(&mut control, huge).await;
        let e = next_event(&mut watch, "gap_claim_capped", raw_peer::STEP)
            .await
            .expect("B alerts its operators");
        assert_eq!(e.peer, "cert-a");
        assert!(
            e.detail.contains(&huge.to_string()) && e.detail.contains("65536"),
            "{e:?}"
        );
        // The claim again, every 3 s, past the grace period (and within B's liveness window).
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            heartbeat(&mut control, huge).await;
        }
        assert!(
            next_event(&mut watch, "gap_claim_capped", SETTLE)
                .await
                .is_none(),
            "alerted twice"
        );
        let st = status(&bruno).await;
        let a = st
            .links
            .iter()
            .find(|l| l.peer == "cert-a")
            .expect("link to A");
        assert_eq!(a.gaps, 65_536, "gaps not capped: {a:?}");
        let audit =
            w.b.with_store(|s| s.recent_audit(100))
                .await
                .expect("store")
                .expect("audit");
        let rows: Vec<_> = audit
            .iter()
            .filter(|e| e.kind == "gap_claim_capped")
            .collect();
        assert_eq!(rows.len(), 1, "{audit:?}");
        drop(link);
        w.stop().await;
    });
}
