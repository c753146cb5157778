//! Version 2 officer signatures (SPEC.md §7.5, §8.3) bind the credential they were made under
//! and, for a message, its precedence and TLP: a node cannot re-certify an officer's key under
//! another name, nor re-mark a message, without the signature failing. Version 1 signatures
//! (the body only) still verify, and say so.

use hotline_protocol::content::{Draft, OpenedContent, Precedence, Tlp};
use hotline_protocol::envelope::{Envelope, SealParams};
use hotline_protocol::identity::{EncryptionKeypair, IdentityKey};
use hotline_protocol::officer::{Binding, OfficerKey, Role};
use hotline_protocol::sim::TestRng;
use hotline_protocol::time::DAY;
use hotline_protocol::wire;
use hotline_protocol::{NodeId, RejectReason};
use prost::Message;

const NOW: u64 = 1_800_000_000_000;

struct World {
    rng: TestRng,
    a: IdentityKey,
    b: IdentityKey,
    officer: OfficerKey,
}

fn world(seed: u64) -> World {
    let mut rng = TestRng::new(seed);
    let a = IdentityKey::generate(&mut rng);
    let b = IdentityKey::generate(&mut rng);
    let officer = OfficerKey::generate(&a, "Anna", Role::Officer, NOW - DAY, NOW + DAY, &mut rng)
        .expect("officer");
    World { rng, a, b, officer }
}

fn draft() -> Draft {
    Draft {
        subject: "Ransomware".into(),
        text: "IOCs follow".into(),
        ..Default::default()
    }
}

fn parse(
    w: &World,
    bytes: &[u8],
    id: &[u8; 16],
    p: Precedence,
    t: Tlp,
) -> Result<OpenedContent, String> {
    OpenedContent::parse(bytes, id, &w.a.id(), &w.b.id(), NOW, p, t).map_err(|e| e.to_string())
}

#[test]
fn a_marked_signature_verifies_only_with_its_precedence_and_tlp() {
    let w = world(1);
    let id = [7; 16];
    let c = draft()
        .sign_marked(&id, &w.b.id(), &w.officer, NOW, Precedence::Flash, Tlp::Red)
        .expect("sign");
    let ok = parse(&w, c.as_bytes(), &id, Precedence::Flash, Tlp::Red).expect("verifies");
    assert_eq!(ok.binding, Binding::Marked);
    for (p, t) in [
        (Precedence::Routine, Tlp::Red),
        (Precedence::Flash, Tlp::Clear),
        (Precedence::Immediate, Tlp::Amber),
    ] {
        let err = parse(&w, c.as_bytes(), &id, p, t).expect_err("re-marked");
        assert!(err.contains("signature"), "{err}");
    }
    // Version 1: the body only, whatever the marking.
    let v1 = draft().sign(&id, &w.b.id(), &w.officer, NOW).expect("sign");
    for (p, t) in [
        (Precedence::Flash, Tlp::Red),
        (Precedence::Routine, Tlp::Clear),
    ] {
        assert_eq!(
            parse(&w, v1.as_bytes(), &id, p, t).expect("v1").binding,
            Binding::BodyOnly
        );
    }
}

/// The content with its credential replaced by `other` (same officer key).
fn with_credential(content: &[u8], other: &OfficerKey) -> Vec<u8> {
    let mut c = wire::Content::decode(content).expect("content");
    if let Some(sig) = c.officer.as_mut() {
        sig.credential = Some(other.credential().to_wire());
    }
    c.encode_to_vec()
}

#[test]
fn a_node_cannot_recertify_the_officers_key_under_another_name() {
    let mut w = world(2);
    let id = [8; 16];
    // The node certifies Anna's key again as "Mallory".
    let seed = w.officer.dangerous_seed();
    let mallory_cred = hotline_protocol::officer::Credential::issue(
        &w.a,
        *w.officer.credential().officer_key(),
        "Mallory",
        Role::Officer,
        NOW - DAY,
        NOW + DAY,
    )
    .expect("issue");
    let mallory = OfficerKey::from_parts(&seed, mallory_cred).expect("same key");
    let v2 = draft()
        .sign_marked(
            &id,
            &w.b.id(),
            &w.officer,
            NOW,
            Precedence::Flash,
            Tlp::Amber,
        )
        .expect("sign");
    let swapped = with_credential(v2.as_bytes(), &mallory);
    assert!(parse(&w, &swapped, &id, Precedence::Flash, Tlp::Amber).is_err());
    // With a version 1 signature the swap goes unnoticed: what version 2 is for.
    let v1 = draft().sign(&id, &w.b.id(), &w.officer, NOW).expect("sign");
    let swapped = with_credential(v1.as_bytes(), &mallory);
    let opened = parse(&w, &swapped, &id, Precedence::Flash, Tlp::Amber).expect("v1 swap");
    assert_eq!(opened.officer.name(), "Mallory");
    assert_eq!(opened.binding, Binding::BodyOnly);

    // Acknowledgements likewise.
    let env = [9; 32];
    let ack = w
        .officer
        .acknowledge_as(&id, &env, NOW, "seen", Binding::Marked)
        .expect("ack");
    let anna = w.officer.credential();
    assert_eq!(
        anna.verify_ack_binding(&id, &env, NOW, "seen", &ack.signature),
        Some(Binding::Marked)
    );
    assert_eq!(
        mallory
            .credential()
            .verify_ack_binding(&id, &env, NOW, "seen", &ack.signature),
        None
    );
    let v1 = w.officer.acknowledge(&id, &env, NOW, "seen").expect("ack");
    assert_eq!(
        mallory
            .credential()
            .verify_ack_binding(&id, &env, NOW, "seen", &v1.signature),
        Some(Binding::BodyOnly)
    );
    let _ = &mut w.rng;
}

#[test]
fn a_sender_node_that_relabels_the_envelope_is_rejected() {
    let mut w = world(3);
    let keys = [EncryptionKeypair::generate(
        &w.b,
        NOW - DAY,
        NOW + DAY,
        &mut w.rng,
    )];
    let key = &keys[0];
    let id = [9; 16];
    // The officer marks it TLP:RED; the node seals it as TLP:CLEAR.
    let c = draft()
        .sign_marked(&id, &w.b.id(), &w.officer, NOW, Precedence::Flash, Tlp::Red)
        .expect("sign");
    let seal = |tlp| {
        let mut rng = TestRng::new(4);
        Envelope::seal(
            &w.a,
            &SealParams {
                recipient: w.b.id(),
                recipient_key: &key.certificate,
                message_id: id,
                sequence: 1,
                created: NOW,
                precedence: Precedence::Flash,
                tlp,
            },
            &c,
            &mut rng,
        )
        .expect("seal")
    };
    let me: NodeId = w.b.id();
    let relabelled = seal(Tlp::Clear);
    let err = relabelled
        .open(&me, &w.a.id(), &keys, NOW)
        .expect_err("relabelled");
    assert_eq!(err.reason, RejectReason::BadOfficerSignature);
    let honest = seal(Tlp::Red);
    let opened = honest.open(&me, &w.a.id(), &keys, NOW).expect("opens");
    assert_eq!(opened.binding, Binding::Marked);
}
