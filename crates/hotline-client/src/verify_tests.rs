//! Tests of offline verification over real envelopes and receipts from the simulated pair.

use super::*;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::Precedence;
use hotline_protocol::session::Config;
use hotline_protocol::sim::{EPOCH, Pair, SimNode};
use prost::Message;

struct Fixture {
    /// A's evidence: an outgoing message (DELIVERED + ACKNOWLEDGED by B) and an incoming one
    /// (A's own DELIVERED receipt).
    bundle: wire::EvidenceBundle,
    /// What B's node would answer to Show for the outgoing message.
    show: wire::ShowResponse,
    out_id: [u8; 16],
    /// The credentials of A's officer (who wrote the outgoing message) and B's (who
    /// acknowledged it).
    officers: [hotline_protocol::officer::Credential; 2],
    /// The identity keys of A and B (to revoke their officers' keys).
    nodes: [std::sync::Arc<hotline_protocol::identity::IdentityKey>; 2],
}

fn bundle_of(n: &SimNode, name: &str) -> Bytes {
    let keys: Vec<_> = n.keys.iter().map(|k| k.certificate.clone()).collect();
    PeerBundle::create(&n.identity, name, [7; 32], &keys, &[], EPOCH)
        .expect("bundle")
        .bytes()
        .clone()
}

fn fixture() -> Fixture {
    let mut p = Pair::new(11, Config::default());
    p.connect();
    p.run_for(100);
    let now = p.now;
    let out_id =
        p.a.send(now, &mut p.rng, "Phishing wave", Precedence::Flash);
    let in_id =
        p.b.send(now, &mut p.rng, "Status request", Precedence::Routine);
    p.run_for(1_000);
    let now = p.now;
    p.b.acknowledge(now, &out_id, "on it");
    p.run_for(1_000);
    let receipts = |n: &SimNode, id| -> Vec<Bytes> {
        n.receipts[id].iter().map(|r| r.bytes().clone()).collect()
    };
    let out_receipts = receipts(&p.a, &out_id);
    assert_eq!(out_receipts.len(), 2, "DELIVERED and ACKNOWLEDGED");
    let a_bundle = bundle_of(&p.a, "CERT-A");
    let b_bundle = bundle_of(&p.b, "CERT-B");
    let incoming = &p.a.inbox[&in_id];
    let bundle = wire::EvidenceBundle {
        version: 1,
        created_ms: now,
        exporter_bundle: a_bundle.clone(),
        peer_bundles: vec![b_bundle.clone()],
        items: vec![
            wire::EvidenceItem {
                envelope: p.a.outbox[&out_id].bytes().clone(),
                receipts: out_receipts.clone(),
                incoming: false,
                removed: None,
            },
            wire::EvidenceItem {
                envelope: incoming.envelope.bytes().clone(),
                receipts: vec![incoming.receipt.bytes().clone()],
                incoming: true,
                removed: None,
            },
        ],
        revocations: Vec::new(),
    };
    let at_b = &p.b.inbox[&out_id];
    let show = wire::ShowResponse {
        // The node's record of the marking (what Show carries): a version 2 officer signature
        // is checked against it once the envelope is removed.
        summary: Some(wire::MessageSummary {
            precedence: wire::Precedence::Flash as i32,
            tlp: wire::Tlp::Amber as i32,
            ..Default::default()
        }),
        envelope: at_b.envelope.bytes().clone(),
        content: at_b.content.plaintext.clone(),
        receipts: out_receipts,
        sender_bundle: a_bundle,
        receiver_bundle: b_bundle,
        removed: None,
        revocations: Vec::new(),
    };
    Fixture {
        bundle,
        show,
        out_id,
        officers: [
            p.a.officer.credential().clone(),
            p.b.officer.credential().clone(),
        ],
        nodes: [p.a.identity.clone(), p.b.identity.clone()],
    }
}

#[test]
fn exported_evidence_verifies_with_statuses_and_officer() {
    let f = fixture();
    let r = verify_evidence(&f.bundle.encode_to_vec()).expect("structure");
    assert!(r.valid, "{r:#?}");
    assert_eq!(r.exporter.name, "CERT-A");
    assert_eq!(r.peers.len(), 1);
    assert_eq!(r.items.len(), 2);
    assert_eq!(r.items[0].direction, "outgoing");
    assert_eq!(r.items[0].status, "acknowledged");
    assert_eq!(r.items[0].precedence, Some("FLASH"));
    let ack = &r.items[0].receipts[1];
    assert_eq!(ack.kind, Some("ACKNOWLEDGED"));
    assert_eq!(ack.officer.as_deref(), Some("Bob Officer"));
    assert_eq!(ack.note.as_deref(), Some("on it"));
    assert_eq!(r.items[1].direction, "incoming");
    assert_eq!(r.items[1].status, "delivered");
    // The report is what `verify --json` prints.
    let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["items"][0]["receipts"][1]["officer"], "Bob Officer");
    // Not only the name: the key and the credential's validity (issue 14).
    let bob = &f.officers[1];
    let info = ack.officer_credential.as_ref().expect("officer credential");
    assert_eq!(
        info.key_fingerprint,
        hotline_transport::request::fingerprint(bob.officer_key())
    );
    assert_eq!(
        (info.valid_from_ms, info.valid_until_ms),
        (bob.not_before(), bob.not_after())
    );
    assert_eq!(
        v["items"][0]["receipts"][1]["officer_credential"]["key_fingerprint"],
        info.key_fingerprint.as_str()
    );
    assert!(
        info.describe()
            .starts_with(&format!("key {}, credential valid ", info.key_fingerprint))
    );
}

/// The bytes of `EvidenceBundle.created_ms`'s value: the one value no signature covers
/// (SPEC.md §15.7.3), reported as the exporter's claim.
fn created_ms_value_range(bytes: &[u8]) -> std::ops::Range<usize> {
    // version (08 01), then tag 0x10 and the varint.
    assert_eq!(&bytes[..3], &[0x08, 0x01, 0x10]);
    let len = bytes[3..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    3..3 + len
}

#[test]
fn every_flipped_byte_is_detected() {
    let f = fixture();
    let good = f.bundle.encode_to_vec();
    let unsigned = created_ms_value_range(&good);
    let (mut undecodable, mut refused) = (0, 0);
    for i in 0..good.len() {
        if unsigned.contains(&i) {
            continue;
        }
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            match verify_evidence(&bad) {
                Err(_) => undecodable += 1,
                Ok(r) => {
                    assert!(
                        !r.valid,
                        "flip {mask:#04x} at byte {i} of {} not detected",
                        good.len()
                    );
                    refused += 1;
                }
            }
        }
    }
    eprintln!(
        "{} bytes: {undecodable} flips refused as a whole, {refused} per item",
        good.len()
    );
    assert!(refused > 0 && undecodable > 0);
}

#[test]
fn created_ms_is_reported_as_an_unverified_claim() {
    let mut f = fixture();
    f.bundle.created_ms += 1;
    let r = verify_evidence(&f.bundle.encode_to_vec()).unwrap();
    assert!(r.valid);
    assert_eq!(r.created_ms, f.bundle.created_ms);
}

#[test]
fn truncated_and_foreign_files_fail_with_a_clear_message() {
    let good = fixture().bundle.encode_to_vec();
    for n in 0..good.len() {
        // Cutting exactly between items leaves a valid bundle with fewer items: a bundle
        // proves what it holds, not that nothing was left out (SPEC.md §15.7.3).
        if let Ok(r) = verify_evidence(&good[..n]) {
            assert!(
                !r.valid || r.items.len() < 2,
                "truncated to {n} bytes accepted whole"
            );
        }
    }
    let err = verify_evidence(b"%PDF-1.7 not evidence").unwrap_err();
    assert_eq!(err, EvidenceError::Undecodable);
    assert!(err.to_string().contains("not a hotline evidence bundle"));
    // An empty EvidenceBundle decodes (all defaults) but has version 0.
    assert_eq!(verify_evidence(b"").unwrap_err(), EvidenceError::Version(0));
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0x38, 0x01]); // unknown field 7
    assert_eq!(
        verify_evidence(&trailing).unwrap_err(),
        EvidenceError::NotCanonical
    );
}

#[test]
fn rejects_a_receipt_moved_to_another_item() {
    let mut f = fixture();
    let moved = f.bundle.items[0].receipts[0].clone();
    f.bundle.items[1].receipts.push(moved);
    let r = verify_evidence(&f.bundle.encode_to_vec()).unwrap();
    assert!(!r.valid);
    assert!(r.items[0].valid);
    assert!(!r.items[1].valid);
    assert!(
        !r.items[1].receipts[1].valid,
        "{:?}",
        r.items[1].receipts[1]
    );
}

#[test]
fn rejects_a_wrong_direction_and_a_missing_peer_bundle() {
    let mut f = fixture();
    f.bundle.items[0].incoming = true;
    let r = verify_evidence(&f.bundle.encode_to_vec()).unwrap();
    assert!(!r.items[0].valid && r.items[1].valid);
    assert!(r.items[0].errors[0].contains("incoming"));

    let mut f = fixture();
    f.bundle.peer_bundles.clear();
    let r = verify_evidence(&f.bundle.encode_to_vec()).unwrap();
    assert!(r.items.iter().all(|i| !i.valid));
}

#[test]
fn rejects_duplicate_items_and_duplicate_bundles() {
    let mut f = fixture();
    let again = f.bundle.items[0].clone();
    f.bundle.items.push(again);
    let r = verify_evidence(&f.bundle.encode_to_vec()).unwrap();
    assert!(!r.items[0].valid && r.items[1].valid && !r.items[2].valid);

    let mut f = fixture();
    let b = f.bundle.peer_bundles[0].clone();
    f.bundle.peer_bundles.push(b);
    assert!(matches!(
        verify_evidence(&f.bundle.encode_to_vec()),
        Err(EvidenceError::DuplicateIdentity(_))
    ));
}

#[test]
fn rejects_a_bundle_whose_self_signature_fails() {
    let mut f = fixture();
    let mut b = f.bundle.peer_bundles[0].to_vec();
    let last = b.len() - 1;
    b[last] ^= 1; // the signature's last byte
    f.bundle.peer_bundles[0] = b.into();
    let err = verify_evidence(&f.bundle.encode_to_vec()).unwrap_err();
    assert!(matches!(err, EvidenceError::Bundle(_)), "{err}");
}

#[test]
fn show_answer_verifies_content_envelope_and_receipts() {
    let f = fixture();
    let (r, opened) = check_message(&f.show, &f.out_id, EPOCH);
    assert!(r.valid, "{r:#?}");
    let c = opened.unwrap();
    assert_eq!(c.draft.subject, "Phishing wave");
    assert_eq!(c.officer.name(), "Alice Officer");
    assert_eq!(status(&r.receipts), "acknowledged");
    let alice = &f.officers[0];
    assert_eq!(r.officer, Some(OfficerInfo::of(alice)));
    let text = crate::commands::messages::show_text(
        &crate::format::Style::plain(),
        &f.out_id,
        &f.show,
        &r,
        Some(&c),
    );
    let bob = OfficerInfo::of(&f.officers[1]);
    for want in [
        format!(
            "Officer:    \"Alice Officer\", {}",
            OfficerInfo::of(alice).describe()
        ),
        format!("      {}", bob.describe()),
    ] {
        assert!(text.contains(&want), "{want:?} missing from:\n{text}");
    }
    assert_ne!(
        OfficerInfo::of(alice).key_fingerprint,
        OfficerInfo::of(&f.officers[1]).key_fingerprint
    );
}

#[test]
fn show_answer_with_altered_content_or_envelope_fails() {
    let f = fixture();
    let mut s = f.show.clone();
    let mut c = s.content.to_vec();
    let n = c.len() - 1;
    c[n] ^= 1;
    s.content = c.into();
    let (r, opened) = check_message(&s, &f.out_id, EPOCH);
    assert!(!r.valid && !r.content_valid && opened.is_none());

    let mut s = f.show.clone();
    let mut e = s.envelope.to_vec();
    let n = e.len() - 1;
    e[n] ^= 1;
    s.envelope = e.into();
    let (r, _) = check_message(&s, &f.out_id, EPOCH);
    assert!(!r.valid && !r.envelope_valid);
    assert!(
        r.receipts.iter().all(|x| !x.valid),
        "receipts name the original bytes"
    );

    let (r, _) = check_message(&f.show, &[0; 16], EPOCH);
    assert!(!r.valid, "another message id");
}

/// An acknowledgement dated before the message was created is valid (every signature holds)
/// but flagged: one of the two clocks was wrong, and a reader of the evidence must know.
#[test]
fn flags_an_acknowledgement_dated_before_the_message() {
    let mut p = Pair::new(12, Config::default());
    p.connect();
    p.run_for(100);
    let now = p.now;
    let id =
        p.a.send(now, &mut p.rng, "Phishing wave", Precedence::Flash);
    p.run_for(1_000);
    let early = p.b.acknowledge(now - 60_000, &id, "before it existed");
    let on_time = p.b.acknowledge(p.now, &id, "on time");
    let env = p.a.outbox[&id].clone();
    let b = p.b.identity.id();
    let r = check_receipt(early.bytes(), &b, Some(&env));
    assert!(r.valid, "{r:?}");
    let w = r.warning.expect("flagged");
    assert!(w.contains("60 s before the message was created"), "{w}");
    let r = check_receipt(on_time.bytes(), &b, Some(&env));
    assert!(r.valid && r.warning.is_none(), "{r:?}");
}

#[test]
fn a_rejection_for_a_clock_or_key_problem_says_what_to_do() {
    use hotline_protocol::codes::RejectReason;
    use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
    let mut p = Pair::new(13, Config::default());
    p.connect();
    p.run_for(100);
    let now = p.now;
    let id =
        p.a.send(now, &mut p.rng, "Phishing wave", Precedence::Flash);
    let env = p.a.outbox[&id].clone();
    let b = p.b.identity.id();
    let rejected = |reason| {
        let r = Receipt::sign(
            &p.b.identity,
            &Subject::from(&env),
            ReceiptBuild::Rejected(reason, "test"),
            now,
        )
        .expect("sign");
        check_receipt(r.bytes(), &b, Some(&env))
    };
    for (reason, needle) in [
        (RejectReason::CreatedInFuture, "clocks"),
        (RejectReason::TooOld, "clocks"),
        (RejectReason::UnknownKey, "bundle"),
    ] {
        let r = rejected(reason);
        assert!(r.valid, "{r:?}");
        let advice = r
            .advice
            .unwrap_or_else(|| panic!("no advice for {reason:?}"));
        assert!(advice.contains(needle), "{advice}");
    }
    assert_eq!(rejected(RejectReason::Policy).advice, None);
}

#[test]
fn the_first_final_receipt_decides_and_a_contradiction_is_flagged() {
    use hotline_protocol::codes::RejectReason;
    use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
    let mut p = Pair::new(14, Config::default());
    p.connect();
    p.run_for(100);
    let now = p.now;
    let id =
        p.a.send(now, &mut p.rng, "Phishing wave", Precedence::Flash);
    p.run_for(1_000);
    let env = p.a.outbox[&id].clone();
    let b = p.b.identity.id();
    let delivered = p.a.receipts[&id][0].bytes().clone();
    let rejected = Receipt::sign(
        &p.b.identity,
        &Subject::from(&env),
        ReceiptBuild::Rejected(RejectReason::Policy, "changed its mind"),
        p.now,
    )
    .expect("sign");
    let check = |list: &[&Bytes]| {
        let mut r: Vec<_> = list
            .iter()
            .map(|x| check_receipt(x, &b, Some(&env)))
            .collect();
        flag_contradictions(&mut r);
        r
    };
    // Delivered first: the later REJECTED does not change it, and is flagged.
    let r = check(&[&delivered, rejected.bytes()]);
    assert_eq!(status(&r), "delivered");
    assert!(r[0].warning.is_none());
    assert!(
        r[1].warning
            .as_deref()
            .is_some_and(|w| w.contains("contradicts"))
    );
    // Rejected first: rejected, and the later DELIVERED is the contradiction.
    let r = check(&[rejected.bytes(), &delivered]);
    assert_eq!(status(&r), "rejected");
    assert!(
        r[1].warning
            .as_deref()
            .is_some_and(|w| w.contains("DELIVERED") || w.contains("REJECTED"))
    );
    // One receipt alone: nothing to flag.
    let r = check(&[&delivered]);
    assert_eq!(status(&r), "delivered");
    assert!(r[0].warning.is_none());
}

/// What the node's retention policy left of the outgoing message (SPEC.md §13.4): `gone` says
/// whether its envelope went too; the receipts are held unless `receipts_removed`.
fn removal(f: &Fixture, envelope_gone: bool) -> wire::Removal {
    let item = &f.bundle.items[0];
    wire::Removal {
        message_id: f.out_id.to_vec().into(),
        envelope_sha256: crypto::sha256(&item.envelope).to_vec().into(),
        content_ms: 0,
        envelope_ms: if envelope_gone { EPOCH + 5_000 } else { 0 },
        receipts: 0,
        receipts_ms: 0,
    }
}

#[test]
fn an_item_whose_envelope_was_removed_is_checked_by_its_receipts_against_the_digest() {
    let f = fixture();
    let mut b = f.bundle.clone();
    b.items[0].removed = Some(removal(&f, true));
    b.items[0].envelope = Bytes::new();
    let r = verify_evidence(&b.encode_to_vec()).expect("structure");
    assert!(r.valid, "{r:#?}");
    let it = &r.items[0];
    assert!(!it.envelope_valid, "there is no envelope to call valid");
    assert_eq!(it.message_id.as_deref(), Some(hex(&f.out_id).as_str()));
    assert_eq!(it.receipts.len(), 2);
    assert!(it.receipts.iter().all(|x| x.valid), "{:#?}", it.receipts);
    assert_eq!(it.status, "acknowledged");
    let text = crate::commands::evidence::report_text(
        &crate::format::Style::plain(),
        std::path::Path::new("e.bin"),
        &r,
    );
    assert!(
        text.contains("no longer held: removed on")
            && text.contains("the envelopes of 1 were removed by the exporter's retention policy"),
        "{text}"
    );

    // The receipts name the envelope by its digest: a claimed digest other than theirs fails,
    // and so does a receipt of another message.
    let mut wrong = b.clone();
    if let Some(r) = wrong.items[0].removed.as_mut() {
        r.envelope_sha256 = vec![0; 32].into();
    }
    let r = verify_evidence(&wrong.encode_to_vec()).expect("structure");
    assert!(!r.valid && r.items[0].receipts.iter().all(|x| !x.valid));
    let mut moved = b.clone();
    moved.items[0].receipts = f.bundle.items[1].receipts.clone();
    assert!(
        !verify_evidence(&moved.encode_to_vec())
            .expect("structure")
            .valid
    );

    // Receipts removed too: nothing fails, and the report says there is nothing to check.
    let mut bare = b.clone();
    bare.items[0].receipts.clear();
    let r = verify_evidence(&bare.encode_to_vec()).expect("structure");
    assert!(r.valid && r.items[0].status == "no receipt");
    let text = crate::commands::evidence::report_text(
        &crate::format::Style::plain(),
        std::path::Path::new("e.bin"),
        &r,
    );
    assert!(
        text.contains("this item is the exporter's word alone"),
        "{text}"
    );
}

#[test]
fn show_of_a_message_whose_content_envelope_and_receipts_were_removed() {
    let f = fixture();
    let mut s = f.show.clone();
    let mut removed = removal(&f, true);
    removed.content_ms = EPOCH + 5_000;
    removed.receipts = 2;
    removed.receipts_ms = EPOCH + 6_000;
    s.removed = Some(removed);
    s.content = Bytes::new();
    s.envelope = Bytes::new();
    s.receipts = Vec::new();
    s.summary = Some(wire::MessageSummary {
        peer: "cert-b".into(),
        sequence: 1,
        created_ms: EPOCH,
        officer: "Alice Officer".into(),
        state: "acknowledged".into(),
        // The node's record of the marking: what a version 2 officer signature is checked
        // against once the envelope is gone.
        precedence: wire::Precedence::Flash as i32,
        tlp: wire::Tlp::Amber as i32,
        ..Default::default()
    });
    let (r, opened) = check_message(&s, &f.out_id, EPOCH);
    assert!(r.valid, "nothing held failed: {r:#?}");
    assert!(opened.is_none() && r.content_error.is_none());
    let text = crate::commands::messages::show_text(
        &crate::format::Style::plain(),
        &f.out_id,
        &s,
        &r,
        None,
    );
    for want in [
        "Subject:    (removed)",
        "Removed:    content and subject removed on",
        "Removed:    envelope removed on",
        "Removed:    2 receipt(s) removed (the last on",
        "envelope                removed on",
        "officer signature       removed with the content on",
        "receipts                2 removed, the last on",
        "status                  acknowledged (the node's record; its receipts were removed)",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(
        !text.contains("FAILED") && !text.contains("not sealed yet"),
        "{text}"
    );

    // The envelope alone removed: the receipts held are checked against its digest.
    let mut s = f.show.clone();
    s.removed = Some(removal(&f, true));
    s.envelope = Bytes::new();
    let (r, opened) = check_message(&s, &f.out_id, EPOCH);
    assert!(r.valid && opened.is_some(), "{r:#?}");
    assert!(r.receipts.iter().all(|x| x.valid));
    assert_eq!(status(&r.receipts), "acknowledged");
}

#[path = "verify_revocation_tests.rs"]
mod revocation;
