//! Offline verification against key revocations (SPEC.md §4.6.3, §15.7.2 step 5): how an
//! officer's signature or acknowledgement by a revoked key stands in Show and in evidence.

use super::*;

#[test]
fn show_reports_how_signatures_by_revoked_officer_keys_stand() {
    use hotline_protocol::revocation::{Revocation, RevokedKind};
    let f = fixture();
    let created = Envelope::parse(f.show.envelope.clone())
        .expect("envelope")
        .header()
        .created;
    let revoke = |node: usize, since: u64| {
        Revocation::issue(
            &f.nodes[node],
            RevokedKind::Officer,
            *f.officers[node].officer_key(),
            since + 60_000,
            Some(since),
            "laptop stolen",
        )
        .expect("revocation")
        .bytes()
        .clone()
    };
    // Compromised after the message was created: Alice's signature counts, and says on what.
    let mut s = f.show.clone();
    s.revocations = vec![revoke(0, created + 1)];
    let (r, _) = check_message(&s, &f.out_id, EPOCH);
    assert!(r.valid, "{r:#?}");
    let info = r
        .officer
        .as_ref()
        .and_then(|o| o.revoked.clone())
        .expect("marked");
    assert!(info.counts && info.compromised && info.rests_on.contains("created_ms"));
    assert!(
        r.officer
            .as_ref()
            .expect("o")
            .describe()
            .contains("this signature counts")
    );
    // Compromised at the moment it was created: it does not count, and the message is not valid.
    s.revocations = vec![revoke(0, created)];
    let (r, _) = check_message(&s, &f.out_id, EPOCH);
    assert!(!r.valid);
    assert!(
        r.content_error
            .as_deref()
            .is_some_and(|e| e.contains("revoked"))
    );
    assert!(
        r.officer
            .as_ref()
            .expect("o")
            .describe()
            .contains("does NOT count")
    );
    // Bob's acknowledgement under a key B revoked from before it: that receipt is not valid, so
    // the message stands delivered, not acknowledged.
    s.revocations = vec![revoke(1, created)];
    let (r, _) = check_message(&s, &f.out_id, EPOCH);
    assert_eq!(status(&r.receipts), "delivered");
    assert!(
        r.receipts
            .iter()
            .any(|x| x.error.as_deref().is_some_and(|e| e.contains("revoked")))
    );
    // A revocation signed by the wrong node says nothing.
    let wrong = Revocation::issue(
        &f.nodes[1],
        RevokedKind::Officer,
        *f.officers[0].officer_key(),
        created,
        Some(created - 1),
        "",
    )
    .expect("r");
    s.revocations = vec![wrong.bytes().clone()];
    let (r, _) = check_message(&s, &f.out_id, EPOCH);
    assert!(
        r.valid && r.officer.as_ref().expect("o").revoked.is_none(),
        "{r:#?}"
    );
}

#[test]
fn evidence_says_how_acknowledgements_by_revoked_keys_stand() {
    use hotline_protocol::revocation::{Revocation, RevokedKind};
    let f = fixture();
    let ack_time = f.bundle.items[0]
        .receipts
        .iter()
        .find_map(
            |r| match Receipt::verify(r, &f.nodes[1].id()).ok()?.kind() {
                ReceiptKind::Acknowledged { time, .. } => Some(*time),
                _ => None,
            },
        )
        .expect("an acknowledgement");
    let revoke = |since: u64| {
        Revocation::issue(
            &f.nodes[1],
            RevokedKind::Officer,
            *f.officers[1].officer_key(),
            since + 1,
            Some(since),
            "phone lost",
        )
        .expect("revocation")
        .bytes()
        .clone()
    };
    // Revoked from a time after the acknowledgement: it counts, and says so.
    let mut b = f.bundle.clone();
    b.revocations = vec![revoke(ack_time + 1)];
    let r = verify_evidence(&b.encode_to_vec()).expect("report");
    assert!(r.valid, "{r:#?}");
    assert_eq!(r.revocations.len(), 1);
    assert!(r.revocations[0].contains("compromised since"));
    assert_eq!(r.items[0].status, "acknowledged");
    let ack = r.items[0]
        .receipts
        .iter()
        .find(|x| x.kind == Some("ACKNOWLEDGED"))
        .expect("ack");
    assert!(
        ack.officer_credential
            .as_ref()
            .and_then(|o| o.revoked.as_ref())
            .is_some_and(|x| x.counts)
    );
    // From the moment of the acknowledgement: it does not count; the message stands delivered.
    b.revocations = vec![revoke(ack_time)];
    let r = verify_evidence(&b.encode_to_vec()).expect("report");
    assert!(!r.valid);
    assert_eq!(r.items[0].status, "delivered");
    assert!(r.items[1].valid, "the other item is untouched");
}
