//! Rules of the operator API that protect the record (issue 12): one message id per node,
//! a repeated Send answered as the first, no message accepted that cannot be sealed, at most
//! one acknowledgement per message, the acknowledging officer's clock checked.

mod common;

use std::time::{Duration, Instant};

use common::{
    Client, draft, error_code, peer_id, random_id, runtime, send_request, show, start, two_nodes,
    wait_state,
};
use hotline_protocol::envelope::MAX_CONTENT_LEN;
use hotline_protocol::receipt::{Receipt, ReceiptKind};
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_transport::now_ms;

#[test]
fn a_repeated_send_gets_its_first_answer_and_a_used_id_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna", "officer", "anna.cred"),
            ('b', "Bruno", "officer", "bruno.cred"),
        ],
    );
    runtime().block_on(async {
        let (na, nb) = (start(a.clone()).await, start(b.clone()).await);
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let (b_id, a_id) = (peer_id(&anna).await, peer_id(&bruno).await);
        let id = random_id();
        let req = send_request(&anna, id, "cert-b", &b_id, &draft("first"));
        let first = anna.call(Request::Send(req.clone())).await.expect("send");
        let Response::Send(first) = first else {
            panic!("{first:?}")
        };
        // A client retrying after a lost answer gets the first answer, not an error.
        let again = anna.call(Request::Send(req.clone())).await.expect("send");
        assert_eq!(again, Response::Send(first.clone()));
        // Another message under the same id is refused, and uses up no sequence number.
        let other = send_request(&anna, id, "cert-b", &b_id, &draft("other"));
        let r = anna.call(Request::Send(other)).await.expect("send");
        assert_eq!(
            error_code(&r),
            Some(wire::OperatorErrorCode::BadRequest),
            "{r:?}"
        );
        let next = send_request(&anna, random_id(), "cert-b", &b_id, &draft("next"));
        let r = anna.call(Request::Send(next)).await.expect("send");
        assert!(
            matches!(&r, Response::Send(s) if s.sequence == first.sequence + 1),
            "{r:?}"
        );

        // At B the id is a received message's: B's officer cannot send under it.
        wait_state(&bruno, id, |s| s == "received").await;
        let echo = send_request(&bruno, id, "cert-a", &a_id, &draft("echo"));
        let r = bruno.call(Request::Send(echo)).await.expect("send");
        assert_eq!(
            error_code(&r),
            Some(wire::OperatorErrorCode::BadRequest),
            "{r:?}"
        );
        // And Show at B still shows the message A sent.
        let Response::Show(s) = show(&bruno, id).await else {
            panic!()
        };
        assert_eq!(s.summary.expect("summary").subject, "first");
        na.shutdown().await;
        nb.shutdown().await;
    });
}

/// A body of exactly 1 MiB used to be accepted, then fail to seal forever, with its sequence
/// number burnt (a permanent gap at the peer).
#[test]
fn a_content_too_large_to_seal_is_refused_before_it_is_stored() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(tmp.path(), &[('a', "Anna", "officer", "anna.cred")]);
    runtime().block_on(async {
        let (na, nb) = (start(a.clone()).await, start(b.clone()).await);
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let b_id = peer_id(&anna).await;
        let mut big = draft("too large");
        big.text = "x".repeat(1024 * 1024 - 300);
        let req = send_request(&anna, random_id(), "cert-b", &b_id, &big);
        assert!(req.content.len() > MAX_CONTENT_LEN);
        let r = anna.call(Request::Send(req)).await.expect("send");
        assert_eq!(
            error_code(&r),
            Some(wire::OperatorErrorCode::BadContent),
            "{r:?}"
        );
        let Response::Error(e) = &r else { panic!() };
        assert!(
            e.message.contains(&MAX_CONTENT_LEN.to_string()),
            "{}",
            e.message
        );
        // The largest content that is accepted is sealed and delivered, as sequence 1.
        let mut max = draft("largest");
        max.text = String::new();
        let id = random_id();
        let mut req = send_request(&anna, id, "cert-b", &b_id, &max);
        while req.content.len() != MAX_CONTENT_LEN {
            // Length prefixes grow with the text: step towards the exact size.
            let want = max.text.len() + MAX_CONTENT_LEN - req.content.len().min(MAX_CONTENT_LEN);
            let want = if req.content.len() > MAX_CONTENT_LEN {
                max.text.len() - (req.content.len() - MAX_CONTENT_LEN)
            } else {
                want
            };
            max.text = "y".repeat(want);
            req = send_request(&anna, id, "cert-b", &b_id, &max);
        }
        assert_eq!(req.content.len(), MAX_CONTENT_LEN);
        let r = anna.call(Request::Send(req)).await.expect("send");
        assert!(matches!(&r, Response::Send(s) if s.sequence == 1), "{r:?}");
        wait_state(&anna, id, |s| s == "delivered").await;
        na.shutdown().await;
        nb.shutdown().await;
    });
}

/// Two officers acknowledging the same message at the same moment used to produce two
/// ACKNOWLEDGED receipts; now both get the one receipt, and the sender holds one.
#[test]
fn two_officers_acknowledging_at_once_make_one_receipt() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna", "officer", "anna.cred"),
            ('b', "Bruno", "officer", "bruno.cred"),
            ('b', "Berta", "officer", "berta.cred"),
        ],
    );
    runtime().block_on(async {
        let (na, nb) = (start(a.clone()).await, start(b.clone()).await);
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let berta = Client::connect(&b.join("berta.cred"), nb.local_addr)
            .await
            .expect("berta");
        let b_id = peer_id(&anna).await;
        let mut ids = Vec::new();
        for n in 0..8 {
            let id = random_id();
            let r = anna
                .call(Request::Send(send_request(
                    &anna,
                    id,
                    "cert-b",
                    &b_id,
                    &draft(&format!("m{n}")),
                )))
                .await
                .expect("send");
            assert!(matches!(r, Response::Send(_)), "{r:?}");
            ids.push(id);
        }
        for &id in &ids {
            let shown = wait_state(&bruno, id, |s| s == "received").await;
            let sha = hotline_protocol::crypto::sha256(&shown.envelope);
            let ack = |c: &Client, note: &str| wire::AckRequest {
                message_id: id.to_vec().into(),
                ack: Some(
                    c.officer
                        .acknowledge(&id, &sha, now_ms(), note)
                        .expect("ack"),
                ),
            };
            let (r1, r2) = tokio::join!(
                bruno.call(Request::Ack(ack(&bruno, "Bruno"))),
                berta.call(Request::Ack(ack(&berta, "Berta")))
            );
            let (Response::Ack(r1), Response::Ack(r2)) = (r1.expect("ack"), r2.expect("ack"))
            else {
                panic!("both acknowledgements are answered");
            };
            assert_eq!(r1.receipt, r2.receipt, "both officers get the one receipt");
        }
        for &id in &ids {
            let s = wait_state(&anna, id, |s| s == "acknowledged").await;
            // Give a second receipt, if one had been made, time to arrive.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Response::Show(s2) = show(&anna, id).await else {
                panic!()
            };
            let acks = s2
                .receipts
                .iter()
                .filter_map(|r| Receipt::verify(r, &b_id).ok())
                .filter(|r| matches!(r.kind(), ReceiptKind::Acknowledged { .. }))
                .count();
            assert_eq!(
                acks, 1,
                "message {:?}: {acks} ACKNOWLEDGED receipts",
                s.summary
            );
        }
        na.shutdown().await;
        nb.shutdown().await;
    });
}

/// SPEC.md §15.5.4 step 8: an acknowledgement dated more than five minutes from the node's
/// clock is refused (it is the time the evidence will show).
#[test]
fn an_acknowledgement_dated_far_from_now_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna", "officer", "anna.cred"),
            ('b', "Bruno", "officer", "bruno.cred"),
        ],
    );
    runtime().block_on(async {
        let (na, nb) = (start(a.clone()).await, start(b.clone()).await);
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let b_id = peer_id(&anna).await;
        let id = random_id();
        let r = anna
            .call(Request::Send(send_request(
                &anna,
                id,
                "cert-b",
                &b_id,
                &draft("m"),
            )))
            .await
            .expect("send");
        assert!(matches!(r, Response::Send(_)), "{r:?}");
        let shown = wait_state(&bruno, id, |s| s == "received").await;
        let sha = hotline_protocol::crypto::sha256(&shown.envelope);
        // (An acknowledgement dated far in the past is refused too, by the credential's
        // validity first: this credential was issued a minute ago.)
        for skew in [6 * 60_000i64, 60 * 60_000] {
            let t = now_ms().saturating_add_signed(skew);
            let ack = bruno.officer.acknowledge(&id, &sha, t, "").expect("ack");
            let r = bruno
                .call(Request::Ack(wire::AckRequest {
                    message_id: id.to_vec().into(),
                    ack: Some(ack),
                }))
                .await
                .expect("ack");
            assert_eq!(
                error_code(&r),
                Some(wire::OperatorErrorCode::BadContent),
                "{r:?}"
            );
            let Response::Error(e) = &r else { panic!() };
            assert!(e.message.contains("clock"), "{}", e.message);
        }
        let ack = bruno
            .officer
            .acknowledge(&id, &sha, now_ms() - 60_000, "")
            .expect("ack");
        let r = bruno
            .call(Request::Ack(wire::AckRequest {
                message_id: id.to_vec().into(),
                ack: Some(ack),
            }))
            .await
            .expect("ack");
        assert!(
            matches!(r, Response::Ack(_)),
            "half a minute off is fine: {r:?}"
        );
        na.shutdown().await;
        nb.shutdown().await;
    });
}

/// Export and List answer in pages within the 16 MiB limit (issue 12 item 4: 18 messages of
/// 0.9 MiB used to make an export of 16.8 MB that the client refused). The pages' items, in
/// order, are every message once; the first page alone carries the bundles.
#[test]
fn export_and_list_answer_in_pages_within_the_limit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(tmp.path(), &[('a', "Anna", "officer", "anna.cred")]);
    runtime().block_on(async {
        let (na, nb) = (start(a.clone()).await, start(b.clone()).await);
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let b_id = peer_id(&anna).await;
        let mut ids = Vec::new();
        for n in 0..18 {
            let mut big = draft(&format!("capture part {n}"));
            big.text = "p".repeat(900 * 1024);
            let id = random_id();
            let r = anna
                .call(Request::Send(send_request(
                    &anna, id, "cert-b", &b_id, &big,
                )))
                .await
                .expect("send");
            assert!(matches!(r, Response::Send(_)), "{r:?}");
            ids.push(id);
        }
        for &id in &ids {
            wait_state(&anna, id, |s| s == "delivered").await;
        }
        let mut cursor = bytes::Bytes::new();
        let mut pages = Vec::new();
        loop {
            let r = anna
                .call(Request::Export(wire::ExportRequest {
                    cursor: cursor.clone(),
                    ..Default::default()
                }))
                .await
                .expect("an answer within the limit");
            let Response::Export(e) = r else {
                panic!("{r:?}")
            };
            let bundle = e.bundle.expect("bundle");
            assert!(prost::Message::encoded_len(&bundle) < 16 * 1024 * 1024);
            pages.push(bundle);
            if e.next_cursor.is_empty() {
                break;
            }
            cursor = e.next_cursor;
        }
        assert!(pages.len() >= 2, "{} pages", pages.len());
        assert_eq!(pages[0].version, 1);
        assert_eq!(pages[0].peer_bundles.len(), 1);
        assert!(
            pages[1..]
                .iter()
                .all(|p| p.peer_bundles.is_empty() && p.version == 0)
        );
        let exported: Vec<[u8; 16]> = pages
            .iter()
            .flat_map(|p| &p.items)
            .map(|i| {
                *hotline_protocol::envelope::Envelope::parse(i.envelope.clone())
                    .expect("env")
                    .message_id()
            })
            .collect();
        let mut want = ids.clone();
        want.sort();
        let mut got = exported.clone();
        got.sort();
        assert_eq!(got, want, "every message exactly once");

        // List pages by the same kind of cursor: 18 messages in pages of 5.
        let mut seen = Vec::new();
        let mut cursor = bytes::Bytes::new();
        loop {
            let r = anna
                .call(Request::List(wire::ListRequest {
                    limit: 5,
                    cursor: cursor.clone(),
                    ..Default::default()
                }))
                .await
                .expect("list");
            let Response::List(l) = r else {
                panic!("{r:?}")
            };
            assert!(l.messages.len() <= 5);
            seen.extend(l.messages.iter().map(|m| m.message_id.clone()));
            if l.next_cursor.is_empty() {
                break;
            }
            cursor = l.next_cursor;
        }
        assert_eq!(seen.len(), 18);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 18, "no message twice");
        // A cursor the node did not make is refused.
        let r = anna
            .call(Request::Export(wire::ExportRequest {
                cursor: bytes::Bytes::from_static(b"forged"),
                ..Default::default()
            }))
            .await
            .expect("answer");
        assert_eq!(
            error_code(&r),
            Some(wire::OperatorErrorCode::BadRequest),
            "{r:?}"
        );
        na.shutdown().await;
        nb.shutdown().await;
    });
}

/// A message accepted but impossible to seal (here: created before the peer's key was valid)
/// is not silent: status and metrics count it (issue 12 item 7).
#[test]
fn an_unsealable_message_is_counted_in_status_and_metrics() {
    use hotline_node::store::{Store, Submission};
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(tmp.path(), &[('a', "Anna", "officer", "anna.cred")]);
    let b_id = hotline_protocol::bundle::PeerBundle::from_armored(
        &std::fs::read(b.join(hotline_node::config::BUNDLE_FILE)).expect("bundle"),
    )
    .expect("parses")
    .identity();
    {
        let mut s =
            hotline_node::store::sqlite::SqliteStore::open(&a.join(hotline_node::config::DB_FILE))
                .expect("db");
        s.submit(&[Submission {
            message_id: random_id(),
            peer: b_id,
            precedence: hotline_protocol::content::Precedence::Flash,
            tlp: "amber".into(),
            created_ms: 1_000, // 1970: no key of B is valid then
            content: bytes::Bytes::from_static(b"content"),
            subject: "stuck".into(),
            officer: "Anna".into(),
        }])
        .expect("stored");
    }
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let t0 = Instant::now();
        loop {
            let r = anna
                .call(Request::Status(Default::default()))
                .await
                .expect("status");
            let Response::Status(s) = r else {
                panic!("{r:?}")
            };
            if s.links[0].unsealed == 1 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "status never counted it: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            na.metrics_text()
                .contains("hotline_unsealed_messages{peer=\"cert-b\"} 1"),
            "{}",
            na.metrics_text()
        );
        na.shutdown().await;
    });
}
