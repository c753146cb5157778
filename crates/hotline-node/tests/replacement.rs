//! A dial race that the peer's new connection wins while B's connection is UP (SPEC.md §3.9
//! case 2, issue 13 item A5), with the raw peer of `raw_peer` as node A: it accepts B's own
//! dial (so the UP connection is one B dialed) and then, within the race window, dials B a
//! second time. A's node id is the larger, so the ids keep the second connection:
//! - with a Hello that cannot verify on it (what a holder of A's TLS key alone can send), B
//!   closes the second connection and the first stays UP and delivers;
//! - with A's valid Hello, B moves the link to the second connection and closes the first with
//!   DUPLICATE_CONNECTION.
//!
//! Before, B closed its UP connection as soon as the second one's TLS handshake finished, so
//! the first case took the link down.

mod raw_peer;

use std::time::Duration;

use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{Decoder, FrameType, StreamKind};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::receipt::ReceiptKind;
use hotline_protocol::{ALPN, EXPORTER_LABEL};
use hotline_transport::now_ms;
use hotline_transport::tls::{self, PeerTrust};
use raw_peer::{Control, Link, Raw, World, block_on, expect_receipt, random_id, step};

/// A world in which A's node id is the larger (`a_larger`) or the smaller: init draws fresh
/// keys each time.
async fn world_where_a_is_larger(a_larger: bool) -> World {
    for _ in 0..64 {
        let w = World::start().await;
        if (w.a.identity.id().as_bytes() > w.b_id.as_bytes()) == a_larger {
            return w;
        }
        w.stop().await;
    }
    panic!("64 draws and never the order wanted");
}

/// Listens at A's address until B's own dial arrives, and completes the Hello exchange on it
/// as the server: the link is UP at B on a connection B dialed. A's address is a relay to the
/// endpoint: aborting the relay (returned) silences the connection, as a killed process does.
async fn accept_b_dial(w: &World) -> (Link, tokio::task::JoinHandle<()>) {
    let peers =
        w.b.with_store(|s| s.peers())
            .await
            .expect("store running")
            .expect("peers");
    let a_addr = peers[0].address.parse().expect("A's address");
    let server = tls::server_config(
        &w.a.tls,
        &PeerTrust::Pinned {
            spki_sha256: vec![w.b_spki],
        },
        &[ALPN],
        &Default::default(),
    )
    .expect("server config");
    let endpoint =
        quinn::Endpoint::server(server, "127.0.0.1:0".parse().expect("addr")).expect("listen");
    let relay = tokio::spawn(relay(a_addr, endpoint.local_addr().expect("local addr")));
    // B's dial in flight retransmits its Initial; a later one follows its backoff.
    let incoming = tokio::time::timeout(Duration::from_secs(40), endpoint.accept())
        .await
        .expect("B dials A")
        .expect("endpoint open");
    let conn = step("B's handshake", incoming.accept().expect("accept B"))
        .await
        .expect("TLS with B");
    let exporter = tls::exporter(&conn, EXPORTER_LABEL, b"");
    let (send, recv) = step("B's control stream", conn.accept_bi())
        .await
        .expect("control stream");
    let mut control = Control {
        send,
        recv,
        decoder: Decoder::new(StreamKind::Control),
    };
    let f = step("B's Hello", control.read_frame())
        .await
        .expect("B's Hello");
    assert_eq!(f.ty, FrameType::Hello);
    let b_hello = hello::verify(
        &f.payload,
        &w.b_id,
        Side::Client,
        &exporter,
        &Offer::default(),
    )
    .expect("B's Hello verifies");
    let d = w.as_a();
    let ours = hello::create(
        &d.identity,
        Side::Server,
        &exporter,
        &Offer::default(),
        &d.keys,
        now_ms(),
    );
    let frame = hotline_protocol::frame::encode(FrameType::Hello, &ours);
    control.send.write_all(&frame).await.expect("write Hello");
    let heartbeats = tokio::spawn(control.answer_heartbeats());
    let link = Link {
        raw: Raw {
            _endpoint: endpoint,
            conn,
            exporter,
        },
        hello: ours,
        b_hello,
        heartbeats,
    };
    w.wait_for_metric("hotline_link_up{peer=\"cert-a\"} 1")
        .await;
    (link, relay)
}

/// Relays UDP datagrams between whoever sends to `at` (B) and `endpoint`.
async fn relay(at: std::net::SocketAddr, endpoint: std::net::SocketAddr) {
    let socket = tokio::net::UdpSocket::bind(at)
        .await
        .expect("bind A's address");
    let mut b = None;
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let to = if from == endpoint {
            match b {
                Some(b) => b,
                None => continue,
            }
        } else {
            b = Some(from);
            endpoint
        };
        let _ = socket.send_to(&buf[..n], to).await;
    }
}

fn app_code(e: &quinn::ConnectionError) -> Option<u64> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

#[test]
fn a_second_connection_whose_hello_fails_does_not_replace_the_up_one() {
    block_on(async {
        let w = world_where_a_is_larger(true).await;
        let (first, _relay) = accept_b_dial(&w).await;
        let second = step(
            "dial B again",
            Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr),
        )
        .await
        .expect("TLS handshake with B");
        // The first connection's Hello, replayed: bound to another TLS session.
        let _control = second.send_hello(&first.hello).await;
        let closed = second.closed().await;
        assert_eq!(
            app_code(&closed),
            Some(u64::from(CloseCode::BadChannelBinding.code())),
            "{closed:?}"
        );
        assert!(
            first.raw.conn.close_reason().is_none(),
            "B closed the first"
        );
        let env = w.seal(first.b_key(), random_id(), 1, "after a failed second Hello");
        let r = expect_receipt(first.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        w.wait_for_metric("hotline_link_up{peer=\"cert-a\"} 1")
            .await;
        assert!(
            w.b.metrics_text()
                .contains("reason=\"replacement_hello_failed\"} 1"),
            "{}",
            w.b.metrics_text()
        );
        drop(first);
        w.stop().await;
    });
}

#[test]
fn a_second_connection_that_wins_the_race_replaces_the_up_one_once_its_hello_verified() {
    block_on(async {
        let w = world_where_a_is_larger(true).await;
        let (first, _relay) = accept_b_dial(&w).await;
        let second = step(
            "dial B again",
            Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr),
        )
        .await
        .expect("TLS handshake with B")
        .hello(&w.as_a(), &w.b_id)
        .await;
        let closed = first.raw.closed().await;
        assert_eq!(
            app_code(&closed),
            Some(u64::from(CloseCode::DuplicateConnection.code())),
            "{closed:?}"
        );
        let env = w.seal(second.b_key(), random_id(), 1, "over the second connection");
        let r = expect_receipt(second.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        assert!(w.inbox().await.contains(env.message_id()));
        drop((first, second));
        w.stop().await;
    });
}

/// SPEC.md §3.9 case 2, the other way round: A restarts within the race window of B's
/// connection to it (its new process dials B, its old connection ends). The ids keep B's
/// connection, but B holds the new one and probes its own instead of refusing the new one at
/// once, so when the old connection ends the new one is used: the link is back at once, not
/// after the 15 s liveness window and a redial.
#[test]
fn a_peer_restarted_within_the_race_window_gets_the_link_back_at_once() {
    block_on(async {
        let w = world_where_a_is_larger(false).await;
        let (first, relay) = accept_b_dial(&w).await;
        // A's old process is killed: its connection falls silent.
        relay.abort();
        let second = step(
            "dial B again",
            Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr),
        )
        .await
        .expect("TLS handshake with B");
        // B holds the new connection while it probes the old one (3 s at most, SPEC.md
        // §3.9.1) rather than refusing it; then the link moves to it.
        let second = second.hello(&w.as_a(), &w.b_id).await;
        let env = w.seal(second.b_key(), random_id(), 1, "after the restart");
        let r = expect_receipt(second.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        drop((first, second));
        w.stop().await;
    });
}
