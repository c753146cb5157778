//! A hostile peer against a real node.
//!
//! Node B runs in-process (`Node::start`, real QUIC, real SQLite) with node A pinned. Instead
//! of node A, a hand-driven "raw peer" holding A's keys dials B: it does the TLS handshake and
//! the Hello exchange itself, then writes whatever bytes a test wants on message streams and
//! reports exactly what B answered (a frame, a stream reset with its code, or the connection
//! closed with its code). Each test checks the outcome SPEC.md names, then, where it makes
//! sense, that B still accepts a valid envelope afterwards.

mod raw_peer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::content::{Draft, Precedence, Tlp};
use hotline_protocol::envelope::Envelope;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, ReceiptKind, Subject};
use hotline_protocol::time::DAY;
use hotline_protocol::{ALPN, OPERATOR_ALPN, wire};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, PeerTrust};
use prost::Message;
use quinn::crypto::rustls::QuicClientConfig;
use raw_peer::*;

// ---- 1. control ----------------------------------------------------------------------------

#[test]
fn valid_envelope_from_raw_peer_gets_a_verified_delivered_receipt() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        w.wait_for_metric("hotline_link_up{peer=\"cert-a\"} 1")
            .await;
        // B's key from its Hello is the one in its bundle.
        let bundle_keys = Material::load(&w.b_dir).expect("b").certificates();
        assert!(bundle_keys.contains(link.b_key()));

        let env = w.seal(link.b_key(), random_id(), 1, "hello from A");
        let r = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        assert!(r.answers(&env), "the receipt names another envelope");
        assert_eq!(r.receiver(), w.b_id);
        assert_eq!(w.inbox().await, vec![*env.message_id()]);
        let (sha, stored) =
            w.b.with_store({
                let id = *env.message_id();
                move |s| s.received(&id)
            })
            .await
            .expect("store")
            .expect("ok")
            .expect("B recorded the envelope");
        assert_eq!(&sha, env.sha256());
        assert_eq!(stored, r.bytes(), "B stored the receipt it sent");
        drop(link);
        w.stop().await;
    });
}

// ---- 2. tampering --------------------------------------------------------------------------

#[test]
fn tampered_envelope_is_rejected_with_bad_signature() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        let env = w.seal(link.b_key(), random_id(), 1, "tampered");
        let mut raw = wire::Envelope::decode(env.bytes().clone()).expect("decodes");
        let mut ct = raw.ciphertext.to_vec();
        ct[0] ^= 0x01;
        raw.ciphertext = ct.into();
        let tampered = raw.encode_to_vec();
        assert_ne!(&tampered[..], &env.bytes()[..]);

        let r = expect_receipt(link.send(&tampered).await, &w.b_id);
        assert!(
            matches!(
                r.kind(),
                ReceiptKind::Rejected {
                    reason: RejectReason::BadSignature,
                    ..
                }
            ),
            "{:?}",
            r.kind()
        );
        let tampered_env = Envelope::parse(Bytes::from(tampered)).expect("still parses");
        assert!(
            r.answers(&tampered_env),
            "REJECTED names the bytes received"
        );
        assert!(w.inbox().await.is_empty(), "B stored a tampered envelope");

        // The untampered original still goes through.
        let r = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        assert_eq!(w.inbox().await, vec![*env.message_id()]);
        drop(link);
        w.stop().await;
    });
}

// ---- 3, 4. framing errors on message streams ----------------------------------------------

#[test]
fn oversize_frame_resets_the_stream_and_the_node_keeps_serving() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        // Only the 5-byte header: B must refuse from the header alone (SPEC.md §5.2).
        let answer = link.exchange(&envelope_header(1024 * 1024 + 1)).await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::FrameTooLarge)));
        // Exactly the limit is not a frame error (the payload is then truncated instead).
        let answer = link.exchange(&envelope_header(1024 * 1024)).await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::TruncatedFrame)));

        // Same connection, new stream: a valid envelope is delivered.
        let env = w.seal(link.b_key(), random_id(), 1, "after the oversize frame");
        let r = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        assert!(r.answers(&env));
        w.hang_up(link).await;
        w.assert_still_serving(2).await;
        w.stop().await;
    });
}

#[test]
fn garbage_envelope_resets_with_malformed_frame() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        // Not protobuf at all (0xff: field 31 with the invalid wire type 7).
        let answer = link.send(&[0xff; 64]).await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::MalformedFrame)));
        // Protobuf, but no readable message id: no receipt is possible either (§7.6 step 1).
        let answer = link.send(&[]).await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::MalformedFrame)));
        let no_id = wire::Envelope {
            header: wire::EnvelopeHeader {
                message_id: Bytes::from_static(&[7; 15]),
                ..Default::default()
            }
            .encode_to_vec()
            .into(),
            ciphertext: Bytes::from_static(b"x"),
            signature: Bytes::from_static(&[0; 64]),
        }
        .encode_to_vec();
        let answer = link.send(&no_id).await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::MalformedFrame)));
        assert!(w.inbox().await.is_empty());

        let env = w.seal(link.b_key(), random_id(), 1, "after garbage");
        let r = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        drop(link);
        w.stop().await;
    });
}

#[test]
fn other_framing_errors_reset_with_their_codes() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        let unexpected = code(CloseCode::UnexpectedFrame);
        // A control frame, a ReceiptStored and an unassigned type cannot open a stream.
        for bytes in [
            frame::encode(FrameType::Hello, &link.hello).to_vec(),
            frame::encode(FrameType::ReceiptStored, &[0x0a, 0x00]).to_vec(),
            vec![0x7f, 0, 0, 0, 0],
        ] {
            assert_eq!(
                link.exchange(&bytes).await,
                Answer::Reset(unexpected),
                "{bytes:02x?}"
            );
        }
        // A stream that ends inside the payload.
        let mut truncated = envelope_header(100);
        truncated.extend_from_slice(&[0; 10]);
        assert_eq!(
            link.exchange(&truncated).await,
            Answer::Reset(code(CloseCode::TruncatedFrame))
        );
        // A stream that ends inside the header.
        assert_eq!(
            link.exchange(&[0x10, 0]).await,
            Answer::Reset(code(CloseCode::TruncatedFrame))
        );
        // Two frames on one message stream (sent in one write): no answer, UNEXPECTED_FRAME.
        let env = w.seal(link.b_key(), random_id(), 1, "twice in one stream");
        let one = frame::encode(FrameType::Envelope, env.bytes());
        let two = [&one[..], &one[..]].concat();
        assert_eq!(link.exchange(&two).await, Answer::Reset(unexpected));

        // The control stream is untouched by all this: the link stays up and serves.
        let env = w.seal(link.b_key(), random_id(), 2, "after framing errors");
        let r = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        assert!(w.b.link_up("cert-a"));
        drop(link);
        w.stop().await;
    });
}

/// SPEC.md §5.2: "After an error on a stream, the receiver MUST NOT process further bytes of
/// that stream." B resets only its own sending side, so the peer may keep writing on it.
#[test]

fn bytes_after_a_stream_error_are_not_processed() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        let (mut send, mut recv) = link.raw.conn.open_bi().await.expect("stream");
        send.write_all(&envelope_header(1024 * 1024 + 1))
            .await
            .expect("write header");
        let answer = step("reset", read_answer(&mut recv)).await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::FrameTooLarge)));
        // The stream is dead at B. Now a complete, valid envelope frame on it.
        let env = w.seal(link.b_key(), random_id(), 1, "smuggled after a frame error");
        let later = send
            .write_all(&frame::encode(FrameType::Envelope, env.bytes()))
            .await;
        let _ = send.finish();
        eprintln!("writing after the reset: {later:?}");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(1500) {
            assert!(
                !w.inbox().await.contains(env.message_id()),
                "B processed bytes of a stream after resetting it: the envelope is in its inbox"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(link);
        w.stop().await;
    });
}

// ---- 5. replay and conflict ----------------------------------------------------------------

#[test]
fn replay_with_the_same_bytes_returns_the_original_receipt() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        let env = w.seal(link.b_key(), random_id(), 1, "replayed");
        let first = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(first.kind(), &ReceiptKind::Delivered);
        // Later, so that a freshly made receipt would carry another time.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let again = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(again.bytes(), first.bytes(), "same connection");
        w.hang_up(link).await;
        // On a new connection (the in-memory cache of the old one gone or not, the store knows).
        let link = w.link(&w.as_a()).await;
        let again = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(again.bytes(), first.bytes(), "new connection");
        assert_eq!(w.inbox().await, vec![*env.message_id()], "stored once");
        // After a restart nothing is cached in memory: the answer comes from the store.
        drop(link);
        let w = w.restart_b().await;
        let link = w.link(&w.as_a()).await;
        let again = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(again.bytes(), first.bytes(), "after a restart");
        assert_eq!(w.inbox().await, vec![*env.message_id()], "stored once");
        drop(link);
        w.stop().await;
    });
}

#[test]
fn same_id_different_bytes_is_rejected_as_conflict() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        let id = random_id();
        let env = w.seal(link.b_key(), id, 1, "the original");
        let first = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(first.kind(), &ReceiptKind::Delivered);
        // Same id, sealed again: fresh HPKE encapsulation, so other bytes.
        let other = w.seal(link.b_key(), id, 1, "a different text under the same id");
        assert_ne!(other.sha256(), env.sha256());
        let r = expect_receipt(link.send(other.bytes()).await, &w.b_id);
        assert!(
            matches!(
                r.kind(),
                ReceiptKind::Rejected {
                    reason: RejectReason::Conflict,
                    ..
                }
            ),
            "{:?}",
            r.kind()
        );
        assert!(r.answers(&other));
        // The first envelope stays as it was.
        let (sha, receipt) =
            w.b.with_store(move |s| s.received(&id))
                .await
                .expect("store")
                .expect("ok")
                .expect("stored");
        assert_eq!(&sha, env.sha256());
        assert_eq!(receipt, first.bytes());
        assert_eq!(w.inbox().await, vec![id]);
        // Also on a new connection.
        w.hang_up(link).await;
        let link = w.link(&w.as_a()).await;
        let r = expect_receipt(link.send(other.bytes()).await, &w.b_id);
        assert!(matches!(
            r.kind(),
            ReceiptKind::Rejected {
                reason: RejectReason::Conflict,
                ..
            }
        ));
        drop(link);
        w.stop().await;
    });
}

/// One id space per node: a peer that echoes the id of a message we sent it, in its own
/// valid envelope, is refused with CONFLICT, and our message is still the one Show finds.
#[test]
fn an_envelope_reusing_the_id_of_a_message_we_sent_is_rejected_as_conflict() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        // B sends A a message (A is the raw peer here; whether it reads it does not matter).
        let bm = Material::load(&w.b_dir).expect("b material");
        let now = now_ms();
        let b_officer = OfficerKey::generate(
            &bm.identity,
            "Bruno",
            Role::Officer,
            now - 60_000,
            now + DAY,
            &mut rng(),
        )
        .expect("officer");
        let id = random_id();
        let a_id = w.a.identity.id();
        let draft = Draft {
            subject: "ours".into(),
            text: "sent by B".into(),
            ..Default::default()
        };
        let content = draft.sign(&id, &a_id, &b_officer, now).expect("sign");
        w.b.submit(a_id, id, Precedence::Routine, Tlp::Green, content)
            .await
            .expect("B stores its message");
        // A answers with an envelope of its own under that id.
        let echo = w.seal(link.b_key(), id, 1, "an echo of B's id");
        let r = expect_receipt(link.send(echo.bytes()).await, &w.b_id);
        assert!(
            matches!(
                r.kind(),
                ReceiptKind::Rejected {
                    reason: RejectReason::Conflict,
                    ..
                }
            ),
            "{:?}",
            r.kind()
        );
        assert!(w.inbox().await.is_empty(), "nothing stored in B's inbox");
        let shown =
            w.b.with_store(move |s| s.message(&id))
                .await
                .expect("store")
                .expect("ok")
                .expect("found");
        assert!(!shown.row.incoming, "Show finds B's own message");
        assert_eq!(shown.row.subject, "ours");
        w.hang_up(link).await;
        w.assert_still_serving(2).await;
        w.stop().await;
    });
}

// ---- 6, 7. Hello: stolen TLS key, forged and relayed Hellos ------------------------------

#[test]
fn stolen_tls_key_without_identity_key_is_refused_by_hello() {
    block_on(async {
        let w = World::start().await;
        let now = now_ms();
        // C holds A's TLS key and certificate, not A's identity key.
        let c = Arc::new(IdentityKey::generate(&mut rng()));
        let c_keys =
            vec![EncryptionKeypair::generate(&c, now - 60_000, now + DAY, &mut rng()).certificate];

        // C's own Hello: TLS succeeds (the pin matches), the Hello names C.
        let raw = Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr)
            .await
            .expect("TLS with A's stolen key succeeds");
        let hello_c = hello::create(
            &c,
            Side::Client,
            &raw.exporter,
            &Offer::default(),
            &c_keys,
            now,
        );
        let _control = raw.send_hello(&hello_c).await;
        let err = raw.closed().await;
        assert_eq!(
            app_close_code(&err),
            Some(code(CloseCode::IdentityMismatch)),
            "{err}"
        );
        w.assert_link_never_up().await;

        // A Hello naming A, signed by C.
        let raw = Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr)
            .await
            .expect("TLS with A's stolen key succeeds");
        let forged = forged_hello(&c, &w.a.identity.id(), &w.a.certificates(), &raw.exporter);
        let _control = raw.send_hello(&forged).await;
        let err = raw.closed().await;
        assert_eq!(
            app_close_code(&err),
            Some(code(CloseCode::BadChannelBinding)),
            "{err}"
        );
        w.assert_link_never_up().await;

        w.assert_still_serving(1).await;
        w.stop().await;
    });
}

#[test]
fn hello_with_another_connections_exporter_is_refused() {
    block_on(async {
        let w = World::start().await;
        // A genuine Hello, recorded on a first connection.
        let first = w.link(&w.as_a()).await;
        let recorded = first.hello.clone();
        let first_exporter = first.raw.exporter;
        // Gone before the next connection: a replacement is another matter (and another bug,
        // see `a_newer_connection_from_the_same_dialer_replaces_the_older`).
        w.hang_up(first).await;

        // Replayed on a second connection: its exporter differs.
        let raw = Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr)
            .await
            .expect("TLS");
        assert_ne!(raw.exporter, first_exporter);
        let _control = raw.send_hello(&recorded).await;
        let err = raw.closed().await;
        assert_eq!(
            app_close_code(&err),
            Some(code(CloseCode::BadChannelBinding)),
            "{err}"
        );

        // A fresh Hello signed by A over the first connection's exporter: the same.
        let raw = Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr)
            .await
            .expect("TLS");
        let h = forged_hello(
            &w.a.identity,
            &w.a.identity.id(),
            &w.a.certificates(),
            &first_exporter,
        );
        let _control = raw.send_hello(&h).await;
        let err = raw.closed().await;
        assert_eq!(
            app_close_code(&err),
            Some(code(CloseCode::BadChannelBinding)),
            "{err}"
        );
        // A Hello signed for the server role on this connection (a reflection).
        let raw = Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr)
            .await
            .expect("TLS");
        let h = hello::create(
            &w.a.identity,
            Side::Server,
            &raw.exporter,
            &Offer::default(),
            &w.a.certificates(),
            now_ms(),
        );
        let _control = raw.send_hello(&h).await;
        let err = raw.closed().await;
        assert_eq!(
            app_close_code(&err),
            Some(code(CloseCode::BadChannelBinding)),
            "{err}"
        );
        w.assert_still_serving(1).await;
        w.stop().await;
    });
}

/// SPEC.md §3.9.1: a second connection made with A's TLS key while A's connection is UP and
/// still answers is closed with DUPLICATE_CONNECTION before B sends any Hello on it, and the
/// working connection stays. This is what someone holding only A's TLS key can do; before
/// §3.9.1 it replaced the working connection and kept the link down.
#[test]
fn a_second_connection_while_the_first_still_answers_is_refused() {
    block_on(async {
        let w = World::start().await;
        let old = w.link(&w.as_a()).await;
        let env = w.seal(old.b_key(), random_id(), 1, "before");
        let r = expect_receipt(old.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);

        let raw = step(
            "dial B with A's TLS key",
            Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr),
        )
        .await
        .expect("TLS with A's key succeeds");
        // B holds it without a Hello; it may be read only after B decides.
        let err = raw.closed().await;
        assert_eq!(
            app_close_code(&err),
            Some(code(CloseCode::DuplicateConnection)),
            "{err}"
        );
        assert!(
            old.raw.conn.close_reason().is_none(),
            "the working connection was closed: {:?}",
            old.raw.conn.close_reason()
        );
        let env = w.seal(old.b_key(), random_id(), 2, "after");
        let r = expect_receipt(old.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        w.wait_for_metric("hotline_link_up{peer=\"cert-a\"} 1")
            .await;
        w.wait_for_metric("hotline_handshake_failures_total{reason=\"duplicate_while_up\"} 1")
            .await;
        drop(old);
        w.stop().await;
    });
}

/// SPEC.md §3.9 case 3 with §3.9.1: the same dialer's newer connection is held while its old
/// one is probed; when the old one ends (as a stateless reset from a restarted peer ends it),
/// the newer one is kept and completes its Hello.
#[test]
fn a_newer_connection_replaces_an_old_one_that_ends() {
    block_on(async {
        let w = World::start().await;
        let old = w.link(&w.as_a()).await;
        let env = w.seal(old.b_key(), random_id(), 1, "on the old connection");
        let r = expect_receipt(old.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);

        let raw = step(
            "dial B",
            Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr),
        )
        .await
        .expect("TLS");
        old.raw.conn.close(0u32.into(), b"restarted");
        let new = match raw.try_hello(&w.as_a(), &w.b_id).await {
            Ok(link) => link,
            Err(e) => panic!("B did not take the newer connection once the old one ended: {e}"),
        };
        let env = w.seal(new.b_key(), random_id(), 2, "on the new connection");
        let r = expect_receipt(new.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        drop(new);
        drop(old);
        w.stop().await;
    });
}

/// SPEC.md §3.9.1: an old connection that stays silent after B's probe (its peer process is
/// gone and sends no stateless reset) gives way to the newer connection after the wait, and
/// B closes it with DUPLICATE_CONNECTION.
#[test]
fn a_newer_connection_replaces_a_silent_old_one() {
    block_on(async {
        let w = World::start().await;
        // The old connection lives on its own thread and runtime; blocking that thread
        // silences it completely (nothing reads its socket or answers), as a dead process.
        let (cfg, d, b_addr, b_id) = (w.client_config(&w.a.tls, ALPN), w.as_a(), w.b_addr, w.b_id);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Envelope>();
        // B runs on this test's runtime: the main side must await, never block.
        let (seal_tx, seal_rx) = tokio::sync::oneshot::channel::<EncryptionKey>();
        let (silence_tx, silence_rx) = tokio::sync::oneshot::channel::<()>();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<quinn::ConnectionError>();
        let old_thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let raw = step("dial B", Raw::connect(cfg, b_addr))
                    .await
                    .expect("TLS");
                let old = raw.hello(&d, &b_id).await;
                let _ = seal_tx.send(old.b_key().clone());
                let env = ready_rx.recv().expect("envelope");
                let r = expect_receipt(old.send(env.bytes()).await, &b_id);
                assert_eq!(r.kind(), &ReceiptKind::Delivered);
                let _ = silence_tx.send(());
                // Silent: this thread blocks, so the connection's driver never runs.
                let _ = end_rx.recv();
                // Awake again: B's close is waiting in the socket.
                let _ = closed_tx.send(old.raw.closed().await);
            });
        });
        let b_key = step("the old connection comes up", seal_rx)
            .await
            .expect("old connection up");
        ready_tx
            .send(w.seal(&b_key, random_id(), 1, "on the old connection"))
            .expect("old thread");
        step("the old connection is used", silence_rx)
            .await
            .expect("old connection used");

        let raw = step(
            "dial B",
            Raw::connect(w.client_config(&w.a.tls, ALPN), w.b_addr),
        )
        .await
        .expect("TLS");
        let new = match raw.try_hello(&w.as_a(), &w.b_id).await {
            Ok(link) => link,
            Err(e) => panic!("B did not take the newer connection after the silent wait: {e}"),
        };
        let env = w.seal(new.b_key(), random_id(), 2, "on the new connection");
        let r = expect_receipt(new.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        end_tx.send(()).expect("old thread");
        let err = step("B's close on the old connection", closed_rx)
            .await
            .expect("old thread");
        assert_eq!(
            app_close_code(&err),
            Some(code(CloseCode::DuplicateConnection)),
            "{err}"
        );
        old_thread.join().expect("old thread");
        drop(new);
        w.stop().await;
    });
}

// ---- 8. TLS refusals -----------------------------------------------------------------------

/// Dials with `cfg` and uses the connection until it fails; returns the failure. In TLS 1.3
/// the server refuses a client certificate after the client thinks it is connected, so a
/// successful `connect` proves nothing: the refusal shows on the first stream.
async fn refused(cfg: quinn::ClientConfig, addr: SocketAddr) -> quinn::ConnectionError {
    step("refusal", async {
        let raw = match Raw::connect(cfg, addr).await {
            Ok(raw) => raw,
            Err(e) => return e,
        };
        if let Ok((mut send, mut recv)) = raw.conn.open_bi().await {
            let _ = send.write_all(&[0x01, 0, 0, 0, 0]).await;
            let _ = recv.read_to_end(1024).await;
        }
        raw.conn.closed().await
    })
    .await
}

#[test]
fn client_without_certificate_and_wrong_alpn_are_refused_and_counted() {
    block_on(async {
        let w = World::start().await;
        let pinned_b = PeerTrust::Pinned {
            spki_sha256: vec![w.b_spki],
        };
        let mut no_cert = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(tls::server_cert_verifier(&pinned_b).expect("v"))
            .with_no_client_auth();
        no_cert.alpn_protocols = vec![ALPN.to_vec()];
        let no_cert = quinn::ClientConfig::new(Arc::new(
            QuicClientConfig::try_from(no_cert).expect("QUIC client"),
        ));
        let err = refused(no_cert, w.b_addr).await;
        assert_eq!(
            tls::connection_failure_reason(&err),
            "no_certificate",
            "{err}"
        );
        w.wait_for_metric("hotline_handshake_failures_total{reason=\"no_certificate\"} 1")
            .await;

        let err = refused(w.client_config(&w.a.tls, b"other/1"), w.b_addr).await;
        assert_eq!(tls::connection_failure_reason(&err), "alpn", "{err}");
        w.wait_for_metric("hotline_handshake_failures_total{reason=\"alpn\"} 1")
            .await;
        // A peer's node key offered on the operator API's ALPN: TLS passes (the key is
        // pinned), then B refuses the role (SPEC.md §15.3) with PROTOCOL_VIOLATION.
        let err = refused(w.client_config(&w.a.tls, OPERATOR_ALPN), w.b_addr).await;
        match &err {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(
                    c.error_code.into_inner(),
                    u64::from(CloseCode::ProtocolViolation.code()),
                    "{err}"
                )
            }
            other => panic!("expected an application close, got {other}"),
        }
        w.wait_for_metric("hotline_handshake_failures_total{reason=\"unknown_certificate\"} 1")
            .await;
        w.assert_link_never_up().await;

        w.assert_still_serving(1).await;
        w.stop().await;
    });
}

// ---- 9. receipts -----------------------------------------------------------------------------

#[test]
fn a_receipt_for_an_unknown_message_is_refused() {
    block_on(async {
        let w = World::start().await;
        let link = w.link(&w.as_a()).await;
        let now = now_ms();
        let unknown = Subject {
            message_id: random_id(),
            envelope_sha256: [0x5a; 32],
            sender: Bytes::copy_from_slice(w.b_id.as_bytes()),
            sequence: 1,
        };
        let delivered =
            Receipt::sign(&w.a.identity, &unknown, ReceiptBuild::Delivered, now).expect("sign");
        let answer = link
            .exchange(&frame::encode(FrameType::Receipt, delivered.bytes()))
            .await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::UnknownMessage)));

        let ack = w
            .officer
            .acknowledge(&unknown.message_id, &unknown.envelope_sha256, now, "seen")
            .expect("ack");
        let acknowledged = Receipt::sign(
            &w.a.identity,
            &unknown,
            ReceiptBuild::Acknowledged(&ack),
            now,
        )
        .expect("sign");
        let answer = link
            .exchange(&frame::encode(FrameType::Receipt, acknowledged.bytes()))
            .await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::UnknownMessage)));

        // Signed by someone else than A: BAD_RECEIPT; not a receipt at all: MALFORMED_FRAME.
        let c = IdentityKey::generate(&mut rng());
        let foreign = Receipt::sign(&c, &unknown, ReceiptBuild::Delivered, now).expect("sign");
        let answer = link
            .exchange(&frame::encode(FrameType::Receipt, foreign.bytes()))
            .await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::BadReceipt)));
        let answer = link
            .exchange(&frame::encode(FrameType::Receipt, &[0xff; 8]))
            .await;
        assert_eq!(answer, Answer::Reset(code(CloseCode::MalformedFrame)));

        let env = w.seal(link.b_key(), random_id(), 1, "after bogus receipts");
        let r = expect_receipt(link.send(env.bytes()).await, &w.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered);
        drop(link);
        w.stop().await;
    });
}
