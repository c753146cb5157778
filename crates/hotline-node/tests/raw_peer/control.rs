//! The raw peer's own Heartbeats: a link whose control stream's sending side the test keeps, to
//! send Heartbeats with the `received_through` and `last_sequence_sent` it chooses
//! (`raw_peer::Link` answers B's pings with zeros).

use hotline_protocol::ALPN;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;

use super::{Control, Link, Raw, World, step};

/// Dials B as A and completes the Hello exchange; returns the link and its control stream's
/// sending side. What B sends on the control stream is read and dropped, so it never blocks.
pub async fn link_keeping_control(w: &World) -> (Link, quinn::SendStream) {
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
    let Control { send, mut recv, .. } = control;
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

/// Writes a Heartbeat (no ping, no echo) claiming `last_sequence_sent` and `received_through`.
pub async fn heartbeat(
    control: &mut quinn::SendStream,
    last_sequence_sent: u64,
    received_through: u64,
) {
    let hb = wire::Heartbeat {
        ping: 0,
        echo: 0,
        time_ms: now_ms(),
        last_sequence_sent,
        received_through,
    }
    .encode_to_vec();
    control
        .write_all(&frame::encode(FrameType::Heartbeat, &hb))
        .await
        .expect("write Heartbeat");
}
