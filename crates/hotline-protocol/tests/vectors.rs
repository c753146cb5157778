//! The committed test vectors (`vectors/v1/*.json`, SPEC.md Appendix A).
//!
//! Every file but `key_update.json`, `officer_v2.json`, `revocation.json` and
//! `bundle_update.json` was made with version 1 only offered in Hello, and stays byte for byte
//! as it was when version 2 came: other implementations test against it. `key_update.json` holds what version 2 added in SPEC.md §4.3.5: Hellos offering
//! versions 1 and 2, a KeyUpdate frame, and the KeyUpdate frames a receiver must refuse.
//! `officer_v2.json` holds the version 2 officer signatures (§7.5.1, §8.3): a Content and an
//! OfficerAck signed by the version 2 rule, and envelopes that a version 2 receiver must
//! accept (saying by which rule) or refuse. `revocation.json` holds the key revocations of
//! version 2 (§4.6): two KeyRevocations, the Revocations frame, how signatures stand against
//! them, envelopes opened while holding them, and the Revocations frames a receiver must refuse
//! (`vectors/revocation.rs`). `bundle_update.json` holds the bundle updates of version 2
//! (§4.4.4): node A's newer bundle with a new TLS pin in a BundleUpdate frame, node B's
//! BundleAccepted answer, and the frames a receiver must refuse (`vectors/bundle_update.rs`).
//!
//! `committed_vectors_are_reproduced` regenerates every file from fixed keys and fixed
//! randomness and fails if a committed file differs. To rewrite them after a deliberate wire
//! change (which must also change SPEC.md and `proto/`):
//!
//! ```text
//! HOTLINE_REWRITE_VECTORS=1 cargo test -p hotline-protocol --test vectors
//! ```
//!
//! `committed_vectors_verify` reads the committed files (not the regenerated ones) and checks
//! them the other way: every positive vector verifies and opens with the keys it lists, and
//! every negative vector is refused with exactly its stated code.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::codes::RejectReason;
use hotline_protocol::content::{self, Draft, Incident, Indicator, OpenedContent, Precedence, Tlp};
use hotline_protocol::crypto::{self, HPKE_INFO, HpkeSender, Label, SecretAgreementKey};
use hotline_protocol::envelope::{Envelope, ParseError, SealParams};
use hotline_protocol::frame::{self, Decoder, FrameType, StreamKind};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, NodeId};
use hotline_protocol::officer::{Binding, Credential, OfficerKey, Role};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::session::{
    Config, Event, Monotonic, Session, StreamId, key_update_payload, verify_key_update,
};
use hotline_protocol::sim::TestRng;
use hotline_protocol::time::DAY;
use hotline_protocol::wire;
use hotline_protocol::{PROTOCOL_VERSION, PROTOCOL_VERSION_2, SUITE_V1_BASE};
use prost::Message;
use serde_json::{Value, json};

#[path = "vectors/bundle_update.rs"]
mod bundle_update_file;
#[path = "vectors/revocation.rs"]
mod revocation_file;

/// 2026-11-27T00:00:00Z: the vectors' "now".
const NOW: u64 = 1_795_737_600_000;

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors/v1")
}

/// The fixed cast: node A (sender), node B (recipient), node C (a stranger).
struct Cast {
    a: IdentityKey,
    b: IdentityKey,
    c: IdentityKey,
    a_seed: [u8; 32],
    b_seed: [u8; 32],
    b_enc_ikm: [u8; 32],
    b_keys: Vec<EncryptionKeypair>,
    b_old_ikm: [u8; 32],
    a_officer_seed: [u8; 32],
    a_officer: OfficerKey,
    b_officer_seed: [u8; 32],
    b_officer: OfficerKey,
}

fn seed(tag: &str) -> [u8; 32] {
    crypto::sha256(format!("hotline/1 test vector {tag}").as_bytes())
}

fn cast() -> Cast {
    let (a_seed, b_seed) = (seed("node A identity"), seed("node B identity"));
    let a = IdentityKey::from_seed(&a_seed).expect("not weak");
    let b = IdentityKey::from_seed(&b_seed).expect("not weak");
    let c = IdentityKey::from_seed(&seed("node C identity")).expect("not weak");
    let b_enc_ikm = seed("node B encryption key");
    let b_old_ikm = seed("node B expired encryption key");
    let current = SecretAgreementKey::derive(&b_enc_ikm);
    let cert = EncryptionKey::certify(&b, current.public(), NOW - 30 * DAY, NOW + 335 * DAY);
    let old = SecretAgreementKey::derive(&b_old_ikm);
    let old_cert = EncryptionKey::certify(&b, old.public(), NOW - 400 * DAY, NOW - 35 * DAY);
    let b_keys = vec![
        EncryptionKeypair {
            secret: current,
            certificate: cert,
        },
        EncryptionKeypair {
            secret: old,
            certificate: old_cert,
        },
    ];
    let officer = |node: &IdentityKey, s: [u8; 32], name: &str| {
        let sk = crypto::SecretSigningKey::from_seed(&s);
        let cred = Credential::issue(
            node,
            sk.public(),
            name,
            Role::Officer,
            NOW - 30 * DAY,
            NOW + 335 * DAY,
        )
        .expect("valid");
        OfficerKey::from_parts(&s, cred).expect("matches")
    };
    let a_officer_seed = seed("node A officer");
    let b_officer_seed = seed("node B officer");
    Cast {
        a_officer: officer(&a, a_officer_seed, "Anna Example, duty officer"),
        b_officer: officer(&b, b_officer_seed, "Bruno Example, duty officer"),
        a,
        b,
        c,
        a_seed,
        b_seed,
        b_enc_ikm,
        b_keys,
        b_old_ikm,
        a_officer_seed,
        b_officer_seed,
    }
}

const MESSAGE_ID: [u8; 16] = *b"hotline-vector-1";

/// The offer of `hello.json` and `negative.json`: version 1 only, as `Offer::default()` was
/// before version 2. Those files must not change.
fn offer_v1() -> Offer {
    Offer {
        versions: vec![PROTOCOL_VERSION],
        suites: vec![SUITE_V1_BASE],
        max_inflight: 256,
    }
}

/// The offer of `key_update.json`: versions 1 and 2.
fn offer_v2() -> Offer {
    Offer {
        versions: vec![PROTOCOL_VERSION, PROTOCOL_VERSION_2],
        ..offer_v1()
    }
}

/// One of node A's encryption keys in `key_update.json`: its `ikm` (RFC 9180 DeriveKeyPair
/// input, as for B's key in identity.json) and A's certificate of it.
struct AKey {
    ikm: [u8; 32],
    cert: EncryptionKey,
}

fn a_key(c: &Cast, tag: &str, not_before: u64, not_after: u64) -> AKey {
    let ikm = seed(tag);
    let public = SecretAgreementKey::derive(&ikm).public();
    AKey {
        ikm,
        cert: EncryptionKey::certify(&c.a, public, not_before, not_after),
    }
}

/// A's current key (in its Hello) and the next one, which a rotation announces.
fn a_keys(c: &Cast) -> (AKey, AKey) {
    (
        a_key(c, "node A encryption key", NOW - 30 * DAY, NOW + 335 * DAY),
        a_key(c, "node A next encryption key", NOW, NOW + 365 * DAY),
    )
}

fn draft() -> Draft {
    Draft {
        subject: "Phishing campaign against ministries".into(),
        text: "Indicators attached. Please block and confirm.".into(),
        language: "en".into(),
        incident: Some(Incident {
            incident_id: "CERT-A-2026-0042".into(),
            severity: 3,
            category: "phishing".into(),
            indicators: vec![Indicator {
                kind: "domain".into(),
                value: "login-gov.example".into(),
            }],
        }),
        reply_to: None,
        thread_id: Some(*b"thread-000000001"),
    }
}

/// The 32 bytes the HPKE sender draws from `rng` as ikmE.
fn ikm_e(rng: &TestRng) -> [u8; 32] {
    use rand_core::Rng;
    let mut r = rng.clone();
    let mut out = [0; 32];
    r.fill_bytes(&mut out);
    out
}

fn envelope(c: &Cast) -> (Envelope, Vec<u8>, [u8; 32]) {
    let content = draft()
        .sign(&MESSAGE_ID, &c.b.id(), &c.a_officer, NOW)
        .expect("officer");
    let rng = TestRng::new(42);
    let ikm = ikm_e(&rng);
    let mut rng = rng;
    let env = Envelope::seal(&c.a, &params(c, MESSAGE_ID, 7), &content, &mut rng).expect("seal");
    (env, content.as_bytes().to_vec(), ikm)
}

fn params(c: &Cast, id: [u8; 16], seq: u64) -> SealParams<'_> {
    SealParams {
        recipient: c.b.id(),
        recipient_key: &c.b_keys[0].certificate,
        message_id: id,
        sequence: seq,
        created: NOW,
        precedence: Precedence::Flash,
        tlp: Tlp::AmberStrict,
    }
}

fn generate() -> Vec<(&'static str, Value)> {
    let c = cast();
    let mut files = Vec::new();

    // identity.json
    let b_enc = &c.b_keys[0].certificate.to_wire();
    files.push((
        "identity.json",
        json!({
            "description": "Node identities (Ed25519 seeds and public keys), their text form, an encryption key certificate and an officer credential.",
            "node_a": {"seed": h(&c.a_seed), "public": h(c.a.id().as_bytes()), "text": c.a.id().to_string(), "fingerprint": c.a.id().fingerprint()},
            "node_b": {"seed": h(&c.b_seed), "public": h(c.b.id().as_bytes()), "text": c.b.id().to_string(), "fingerprint": c.b.id().fingerprint()},
            "node_b_encryption_key": {
                "ikm": h(&c.b_enc_ikm),
                "derivation": "RFC 9180 DeriveKeyPair(ikm) for DHKEM(X25519, HKDF-SHA256): secret_unclamped is its sk; secret is the same key clamped as RFC 7748 decodeScalar25519 does",
                "secret": h(&*c.b_keys[0].secret.dangerous_bytes()),
                "secret_unclamped": h(&derive_key_pair_sk(&c.b_enc_ikm)),
                "public": h(c.b_keys[0].certificate.public()),
                "key_id": h(&c.b_keys[0].certificate.id()),
                "certificate_body": h(&b_enc.body),
                "certificate_signature": h(&b_enc.signature),
                "signed_bytes": h(&crypto::tbs(Label::EncryptionKey, &[&b_enc.body])),
                "not_before_ms": c.b_keys[0].certificate.not_before(),
                "not_after_ms": c.b_keys[0].certificate.not_after(),
            },
            "node_b_expired_encryption_key": {
                "ikm": h(&c.b_old_ikm),
                "public": h(c.b_keys[1].certificate.public()),
                "key_id": h(&c.b_keys[1].certificate.id()),
                "certificate": h(&c.b_keys[1].certificate.to_wire().encode_to_vec()),
            },
            "node_a_officer": {
                "seed": h(&c.a_officer_seed),
                "public": h(c.a_officer.credential().officer_key()),
                "name": c.a_officer.credential().name(),
                "credential": h(&c.a_officer.credential().to_wire().encode_to_vec()),
            },
            "node_b_officer": {
                "seed": h(&c.b_officer_seed),
                "public": h(c.b_officer.credential().officer_key()),
                "name": c.b_officer.credential().name(),
                "credential": h(&c.b_officer.credential().to_wire().encode_to_vec()),
            },
        }),
    ));

    // bundle.json (a version 1 node's, as committed)
    let bundle = b_bundle(&c);
    files.push((
        "bundle.json",
        json!({
            "description": "Node B's self-signed peer bundle: encoded PeerBundle bytes and the armored file form.",
            "identity": h(c.b.id().as_bytes()),
            "bundle": h(bundle.bytes()),
            "armored": bundle.to_armored(),
        }),
    ));

    // hello.json
    let exporter = crypto::sha256(b"hotline/1 test vector exporter");
    let hello_a = hello::create(&c.a, Side::Client, &exporter, &offer_v1(), &[], NOW);
    let hello_b = hello::create(
        &c.b,
        Side::Server,
        &exporter,
        &offer_v1(),
        &[c.b_keys[0].certificate.clone()],
        NOW,
    );
    files.push((
        "hello.json",
        json!({
            "description": "Hello frames on one connection with the given exporter value. Node A is the QUIC client (role byte 0x01), node B the server (0x02). A's Hello lists no keys and is therefore malformed for verification; it shows the encoding only. B's is complete.",
            "exporter": h(&exporter),
            "now_ms": NOW,
            "node_b_hello": h(&hello_b),
            "node_b_hello_frame": h(&frame::encode(FrameType::Hello, &hello_b)),
            "node_a_hello_without_keys": h(&hello_a),
        }),
    ));

    // envelope.json
    let (env, plaintext, ikm) = envelope(&c);
    files.push((
        "envelope.json",
        json!({
            "description": "A FLASH envelope from node A to node B. Reproduce header, enc, ciphertext, signature and envelope bytes from the keys in identity.json, the plaintext, and ikmE (the HPKE ephemeral key is DeriveKeyPair(ikmE)).",
            "now_ms": NOW,
            "message_id": h(&MESSAGE_ID),
            "sequence": 7,
            "created_ms": NOW,
            "plaintext_content": h(&plaintext),
            "hpke_info": h(HPKE_INFO),
            "hpke_ikm_e": h(&ikm),
            "header": h(env.header_bytes()),
            "enc": h(&env.header().enc),
            "ciphertext": h(env.ciphertext()),
            "signed_bytes": h(&crypto::tbs(Label::Envelope, &[&(env.header_bytes().len() as u32).to_be_bytes(), env.header_bytes(), &crypto::sha256(env.ciphertext())])),
            "signature": h(env.signature()),
            "envelope": h(env.bytes()),
            "envelope_sha256": h(env.sha256()),
            "frame": h(&frame::encode(FrameType::Envelope, env.bytes())),
        }),
    ));

    // receipts.json
    let subject = Subject::from(&env);
    let delivered =
        Receipt::sign(&c.b, &subject, ReceiptBuild::Delivered, NOW + 1_000).expect("sign");
    let ack = c
        .b_officer
        .acknowledge(
            &MESSAGE_ID,
            env.sha256(),
            NOW + 60_000,
            "Blocked. Thank you.",
        )
        .expect("ack");
    let acknowledged = Receipt::sign(
        &c.b,
        &subject,
        ReceiptBuild::Acknowledged(&ack),
        NOW + 60_000,
    )
    .expect("sign");
    let rejected = Receipt::sign(
        &c.b,
        &subject,
        ReceiptBuild::Rejected(RejectReason::Policy, "refused by local policy"),
        NOW + 1_000,
    )
    .expect("sign");
    let r = |r: &Receipt| {
        let w = wire::Receipt::decode(r.bytes().clone()).expect("decodes");
        json!({"body": h(&w.body), "signature": h(&w.signature), "receipt": h(r.bytes()), "receipt_sha256": h(r.sha256()), "frame": h(&frame::encode(FrameType::Receipt, r.bytes()))})
    };
    files.push((
        "receipts.json",
        json!({
            "description": "Receipts by node B for the envelope of envelope.json; the ReceiptStored answer to the ACKNOWLEDGED one.",
            "delivered": r(&delivered),
            "acknowledged": r(&acknowledged),
            "acknowledged_officer_signed_bytes": h(&crypto::tbs(Label::OfficerAck, &[&MESSAGE_ID, env.sha256(), &(NOW + 60_000).to_be_bytes(), &crypto::sha256(b"Blocked. Thank you.")])),
            "rejected_policy": r(&rejected),
            "receipt_stored_frame": h(&frame::encode(FrameType::ReceiptStored, &hotline_protocol::receipt::stored_ack(acknowledged.sha256()))),
        }),
    ));

    // frames.json
    let hb = wire::Heartbeat {
        ping: 3,
        echo: 0,
        time_ms: NOW,
        last_sequence_sent: 7,
        received_through: 5,
    }
    .encode_to_vec();
    let close = wire::Close {
        code: 0x0C,
        reason: "node shutting down".into(),
    }
    .encode_to_vec();
    files.push((
        "frames.json",
        json!({
            "description": "Control frames: type byte, u32 big-endian payload length, payload.",
            "heartbeat": {"payload": h(&hb), "frame": h(&frame::encode(FrameType::Heartbeat, &hb))},
            "close_shutdown": {"payload": h(&close), "frame": h(&frame::encode(FrameType::Close, &close))},
        }),
    ));

    files.push((
        "negative.json",
        negatives(&c, &env, &hello_b, &exporter, &delivered),
    ));
    files.push(("key_update.json", key_update(&c, &exporter)));
    files.push(("officer_v2.json", officer_v2(&c, &env)));
    files.push((
        "revocation.json",
        revocation_file::file(&c, &env, &plaintext),
    ));
    files.push(("bundle_update.json", bundle_update_file::file(&c)));
    files
}

/// Node B's bundle of `bundle.json`: a version 1 node's, as committed.
fn b_bundle(c: &Cast) -> PeerBundle {
    PeerBundle::create_for_versions(
        &c.b,
        "CERT-B",
        crypto::sha256(b"node B TLS SubjectPublicKeyInfo (placeholder DER)"),
        &[c.b_keys[0].certificate.clone()],
        &["hotline.cert-b.example:4433".to_owned()],
        NOW,
        &[PROTOCOL_VERSION],
    )
    .expect("bundle")
}

/// The message of `officer_v2.json` and the marking its officer signs by the version 2 rule.
const MESSAGE_ID_V2: [u8; 16] = *b"hotline-vector-2";
const V2_PRECEDENCE: Precedence = Precedence::Immediate;
const V2_TLP: Tlp = Tlp::Red;
/// The TLP of the header that relabels it (`officer_v2_other_tlp`).
const V2_OTHER_TLP: Tlp = Tlp::Green;
/// The name under which node A certifies its officer's key a second time.
const OTHER_OFFICER_NAME: &str = "Mallory Example, duty officer";
/// The acknowledgement of `officer_v2.json`: the envelope of `envelope.json`, as in
/// `receipts.json` but by the version 2 rule.
const ACK_TIME: u64 = NOW + 60_000;
const ACK_NOTE: &str = "Blocked. Thank you.";

/// A second credential node A issues for its officer's key, under another name, with the same
/// validity: what a version 2 signature must not verify under.
fn other_officer_credential(c: &Cast) -> Credential {
    let first = c.a_officer.credential();
    Credential::issue(
        &c.a,
        *first.officer_key(),
        OTHER_OFFICER_NAME,
        Role::Officer,
        first.not_before(),
        first.not_after(),
    )
    .expect("valid")
}

/// The SPEC.md §12.8 registry name of a TLP value (`AMBER_STRICT`, not `TLP:AMBER+STRICT`).
fn tlp_name(t: Tlp) -> String {
    t.as_str().trim_start_matches("TLP:").replace('+', "_")
}

/// `content` (encoded `Content`) with its officer credential replaced by `other`.
fn with_credential(content: &[u8], other: &Credential) -> Vec<u8> {
    let mut w = wire::Content::decode(content).expect("content");
    w.officer.as_mut().expect("officer").credential = Some(other.to_wire());
    w.encode_to_vec()
}

/// `officer_v2.json`: version 2 officer signatures (SPEC.md §7.5.1, §8.3).
fn officer_v2(c: &Cast, env: &Envelope) -> Value {
    let m = content::marking(V2_PRECEDENCE, V2_TLP);
    let body = draft()
        .encode_body(&MESSAGE_ID_V2, &c.b.id())
        .expect("body");
    let a_cred = c.a_officer.credential();
    let content = draft()
        .sign_marked(
            &MESSAGE_ID_V2,
            &c.b.id(),
            &c.a_officer,
            NOW,
            V2_PRECEDENCE,
            V2_TLP,
        )
        .expect("officer");
    let signature = wire::Content::decode(content.as_bytes())
        .expect("content")
        .officer
        .expect("officer")
        .signature;
    let other = other_officer_credential(c);

    let b_cred = c.b_officer.credential();
    let ack = c
        .b_officer
        .acknowledge_as(
            &MESSAGE_ID,
            env.sha256(),
            ACK_TIME,
            ACK_NOTE,
            Binding::Marked,
        )
        .expect("ack");

    // Envelopes from A to B carrying the content, under a header with `tlp`.
    let seal = |tlp: Tlp, content: &[u8]| {
        let header_marking = content::marking(V2_PRECEDENCE, tlp);
        forge(
            c,
            |h| {
                h.message_id = Bytes::copy_from_slice(&MESSAGE_ID_V2);
                h.precedence = i32::from(header_marking.precedence);
                h.tlp = i32::from(header_marking.tlp);
            },
            |_| {},
            None,
            content,
        )
    };
    let v1 = draft()
        .sign(&MESSAGE_ID_V2, &c.b.id(), &c.a_officer, NOW)
        .expect("officer");
    let mut list = Vec::new();
    let mut add = |name: &str, input: Vec<u8>, expected: &str, note: &str| {
        list.push(json!({"name": name, "kind": "envelope_v2", "input": h(&input), "expected": expected, "note": note}));
    };
    add(
        "officer_v2_header_marking",
        seal(V2_TLP, content.as_bytes()),
        "ACCEPTED:v2",
        "content_v2 under a header with its precedence and TLP",
    );
    add(
        "officer_v2_other_tlp",
        seal(V2_OTHER_TLP, content.as_bytes()),
        &format!("REJECTED:{}", RejectReason::BadOfficerSignature),
        "content_v2 (signed for TLP RED) under a header that says TLP GREEN",
    );
    add(
        "officer_v2_other_credential",
        seal(V2_TLP, &with_credential(content.as_bytes(), &other)),
        &format!("REJECTED:{}", RejectReason::BadOfficerSignature),
        "content_v2 with its credential replaced by other_credential: the same officer key, certified by A under another name",
    );
    add(
        "officer_v1_signature_on_version_2_link",
        seal(V2_TLP, v1.as_bytes()),
        "ACCEPTED:v1",
        "the same body signed by the version 1 rule (body only): still accepted, and it binds neither credential nor marking",
    );

    json!({
        "description": "Version 2 officer signatures (SPEC.md §7.5.1, §8.3), made by the officers of identity.json under their credentials there. content_v2: node A's officer signs body (the canonical MessageBody of message_id to node B) by the version 2 rule for the marking (precedence and TLP, registry values, SPEC.md §12.8): signed_bytes = \"hotline/2 officer-message\" || 0x00 || SHA-256(body) || SHA-256(credential) || u8(precedence) || u8(tlp), where credential is the canonical OfficerCredential of identity.json node_a_officer; content is the canonical Content carrying body and the OfficerSignature. other_credential: a second credential node A issues for the same officer key under another name, with the same validity and role OFFICER. ack_v2: node B's officer acknowledges the envelope of envelope.json by the version 2 rule: signed_bytes = \"hotline/2 officer-ack\" || 0x00 || message_id || envelope_sha256 || u64be(time_ms) || SHA-256(note) || SHA-256(credential), credential that of identity.json node_b_officer; officer_ack is the encoded OfficerAck. envelopes: inputs each with the exact outcome; kind envelope_v2: node B receives the envelope on an envelope stream from node A at now_ms, with B's keys of identity.json, on a link that negotiated version 2; the outcome is REJECTED:<reason>, or ACCEPTED:v1 / ACCEPTED:v2 for an envelope that is accepted, by the rule its officer signature verifies by.",
        "now_ms": NOW,
        "marking": {
            "precedence": m.precedence,
            "precedence_name": V2_PRECEDENCE.as_str(),
            "tlp": m.tlp,
            "tlp_name": tlp_name(V2_TLP),
        },
        "content_v2": {
            "message_id": h(&MESSAGE_ID_V2),
            "body": h(&body),
            "body_sha256": h(&crypto::sha256(&body)),
            "credential_sha256": h(&a_cred.sha256()),
            "signed_bytes": h(&crypto::tbs(Label::OfficerMessageV2, &[&crypto::sha256(&body), &a_cred.sha256(), &[m.precedence, m.tlp]])),
            "signature": h(&signature),
            "content": h(content.as_bytes()),
        },
        "other_credential": {
            "name": OTHER_OFFICER_NAME,
            "not_before_ms": other.not_before(),
            "not_after_ms": other.not_after(),
            "credential": h(&other.to_wire().encode_to_vec()),
            "credential_sha256": h(&other.sha256()),
        },
        "ack_v2": {
            "message_id": h(&MESSAGE_ID),
            "envelope_sha256": h(env.sha256()),
            "time_ms": ACK_TIME,
            "note": ACK_NOTE,
            "credential_sha256": h(&b_cred.sha256()),
            "signed_bytes": h(&crypto::tbs(Label::OfficerAckV2, &[&MESSAGE_ID, env.sha256(), &ACK_TIME.to_be_bytes(), &crypto::sha256(ACK_NOTE.as_bytes()), &b_cred.sha256()])),
            "signature": h(&ack.signature),
            "officer_ack": h(&ack.encode_to_vec()),
        },
        "envelopes": list,
    })
}

/// `key_update.json`: version 2's Hello negotiation and KeyUpdate frame (SPEC.md §4.3.5).
fn key_update(c: &Cast, exporter: &[u8; 32]) -> Value {
    let (current, next) = a_keys(c);
    let key = |k: &AKey| {
        json!({
            "ikm": h(&k.ikm),
            "public": h(k.cert.public()),
            "key_id": h(&k.cert.id()),
            "certificate": h(&k.cert.to_wire().encode_to_vec()),
            "not_before_ms": k.cert.not_before(),
            "not_after_ms": k.cert.not_after(),
        })
    };
    let hello_a = hello::create(
        &c.a,
        Side::Client,
        exporter,
        &offer_v2(),
        std::slice::from_ref(&current.cert),
        NOW,
    );
    let hello_b = hello::create(
        &c.b,
        Side::Server,
        exporter,
        &offer_v2(),
        &[c.b_keys[0].certificate.clone()],
        NOW,
    );
    // Newest first, as `Session::update_keys` orders them.
    let announced = [next.cert.clone(), current.cert.clone()];
    let payload = key_update_payload(&announced);
    let decoded: Vec<Value> = announced
        .iter()
        .map(|k| {
            json!({
                "key_id": h(&k.id()),
                "public": h(k.public()),
                "not_before_ms": k.not_before(),
                "not_after_ms": k.not_after(),
            })
        })
        .collect();

    let mut list = Vec::new();
    let mut add = |name: &str, kind: &str, payload: Vec<u8>, expected: &str, note: &str| {
        let input = frame::encode(FrameType::KeyUpdate, &payload);
        list.push(json!({"name": name, "kind": kind, "input": h(&input), "expected": expected, "note": note}));
    };
    let foreign = EncryptionKey::certify(
        &c.c,
        SecretAgreementKey::derive(&seed("node C encryption key")).public(),
        NOW,
        NOW + 365 * DAY,
    );
    add(
        "key_update_key_of_other_identity",
        "control_v2",
        key_update_payload(&[next.cert.clone(), foreign]),
        "CLOSE:MALFORMED_FRAME",
        "the second key is certified by node C, not by A",
    );
    add(
        "key_update_no_keys",
        "control_v2",
        key_update_payload(&[]),
        "CLOSE:MALFORMED_FRAME",
        "an empty KeyUpdate: it must carry 1 to 4 keys",
    );
    let five: Vec<EncryptionKey> = [next.cert.clone(), current.cert.clone()]
        .into_iter()
        .chain((3..=5).map(|i| {
            a_key(
                c,
                &format!("node A encryption key {i}"),
                NOW - DAY,
                NOW + 365 * DAY,
            )
            .cert
        }))
        .collect();
    add(
        "key_update_five_keys",
        "control_v2",
        key_update_payload(&five),
        "CLOSE:MALFORMED_FRAME",
        "five keys, each validly certified by A: at most 4",
    );
    add(
        "key_update_not_canonical",
        "control_v2",
        {
            let mut v = payload.clone();
            v.extend_from_slice(&[0x10, 0x01]);
            v
        },
        "CLOSE:MALFORMED_FRAME",
        "the valid KeyUpdate with an unknown field appended",
    );
    add(
        "key_update_on_version_1_link",
        "control_v1",
        payload.clone(),
        "CLOSE:UNEXPECTED_FRAME",
        "the valid KeyUpdate, on a link that negotiated version 1",
    );

    json!({
        "description": "Protocol version 2 (SPEC.md §4.3.5): version 1 plus the KeyUpdate control frame (type 0x04), which announces the sender's current encryption key certificates on a live link. Keys come from identity.json; A's encryption keys are DeriveKeyPair(ikm) as for B's, certified by A. hello_v2: both nodes offer versions 1 and 2 (and suites and max_inflight as given) on the connection with the given exporter, A as QUIC client with its current key, B as server; each verifying the other's Hello negotiates version 2. key_update: A's KeyUpdate after a rotation, announcing its next and its current key (newest first); verified by B for A, it yields decoded_keys in order. negative: inputs each with the exact outcome as in negative.json; the input is the whole content node B receives on the control stream from A after both Hellos at now_ms; kind control_v2: on the link of hello_v2 (version 2); kind control_v1: A offered version 1 only, so the link negotiated version 1.",
        "now_ms": NOW,
        "exporter": h(exporter),
        "node_a_encryption_key": key(&current),
        "node_a_next_encryption_key": key(&next),
        "hello_v2": {
            "versions": offer_v2().versions,
            "suites": offer_v2().suites,
            "max_inflight": offer_v2().max_inflight,
            "node_a_hello": h(&hello_a),
            "node_a_hello_frame": h(&frame::encode(FrameType::Hello, &hello_a)),
            "node_b_hello": h(&hello_b),
            "node_b_hello_frame": h(&frame::encode(FrameType::Hello, &hello_b)),
            "negotiated_version": PROTOCOL_VERSION_2,
            "negotiated_suite": SUITE_V1_BASE,
        },
        "key_update": {
            "payload": h(&payload),
            "frame": h(&frame::encode(FrameType::KeyUpdate, &payload)),
            "decoded_keys": decoded,
        },
        "negative": list,
    })
}

/// Envelope bytes from a header with `edit` applied, re-signed by `signer` when given.
fn forge(
    c: &Cast,
    edit: impl FnOnce(&mut wire::EnvelopeHeader),
    ct_edit: impl FnOnce(&mut Vec<u8>),
    signer: Option<&IdentityKey>,
    content: &[u8],
) -> Vec<u8> {
    let mut rng = TestRng::new(4242);
    let mut hpke =
        HpkeSender::setup(c.b_keys[0].certificate.public(), HPKE_INFO, &mut rng).expect("setup");
    let mut header = wire::EnvelopeHeader {
        version: 1,
        message_id: Bytes::copy_from_slice(&MESSAGE_ID),
        sender: Bytes::copy_from_slice(c.a.id().as_bytes()),
        recipient: Bytes::copy_from_slice(c.b.id().as_bytes()),
        sequence: 8,
        created_ms: NOW,
        precedence: 1,
        tlp: 3,
        content_type: 1,
        suite: 1,
        recipient_key_id: Bytes::copy_from_slice(&c.b_keys[0].certificate.id()),
        enc: Bytes::copy_from_slice(&hpke.enc()),
    };
    edit(&mut header);
    let header = header.encode_to_vec();
    let mut ct = hpke.seal(&header, content).expect("seal");
    ct_edit(&mut ct);
    let signer = signer.unwrap_or(&c.a);
    let sig = signer.sign(
        Label::Envelope,
        &[
            &(header.len() as u32).to_be_bytes(),
            &header,
            &crypto::sha256(&ct),
        ],
    );
    wire::Envelope {
        header: header.into(),
        ciphertext: ct.into(),
        signature: Bytes::copy_from_slice(&sig),
    }
    .encode_to_vec()
}

fn negatives(
    c: &Cast,
    env: &Envelope,
    hello_b: &[u8],
    exporter: &[u8; 32],
    delivered: &Receipt,
) -> Value {
    let content = draft()
        .sign(&MESSAGE_ID, &c.b.id(), &c.a_officer, NOW)
        .expect("officer");
    let pt = content.as_bytes();
    let mut list = Vec::new();
    let mut add = |name: &str, kind: &str, input: Vec<u8>, expected: String, note: &str| {
        list.push(json!({"name": name, "kind": kind, "input": h(&input), "expected": expected, "note": note}));
    };
    let rej = |r: RejectReason| format!("REJECTED:{r}");
    let none = |_: &mut Vec<u8>| {};

    // Envelopes, received by B from A at NOW.
    let mut bad_sig = env.bytes().to_vec();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    add(
        "envelope_bad_signature",
        "envelope",
        bad_sig,
        rej(RejectReason::BadSignature),
        "last signature byte flipped",
    );
    add(
        "envelope_tampered_header",
        "envelope",
        forge(c, |_| {}, none, None, pt)
            .into_iter()
            .collect::<Vec<u8>>()
            .tap_header_tamper(),
        rej(RejectReason::BadSignature),
        "precedence changed after signing",
    );
    add(
        "envelope_tampered_ciphertext",
        "envelope",
        {
            let w = wire::Envelope::decode(env.bytes().clone()).expect("decodes");
            let mut ct = w.ciphertext.to_vec();
            ct[0] ^= 0x80;
            wire::Envelope {
                ciphertext: ct.into(),
                ..w
            }
            .encode_to_vec()
        },
        rej(RejectReason::BadSignature),
        "ciphertext changed after signing",
    );
    add(
        "envelope_ciphertext_resigned",
        "envelope",
        forge(c, |_| {}, |ct| ct[0] ^= 0x80, None, pt),
        rej(RejectReason::CannotDecrypt),
        "ciphertext changed, then validly signed: HPKE open fails",
    );
    add(
        "envelope_signed_by_other_key",
        "envelope",
        forge(c, |_| {}, none, Some(&c.c), pt),
        rej(RejectReason::BadSignature),
        "header names A, signature by C",
    );
    add(
        "envelope_unknown_sender",
        "envelope",
        forge(
            c,
            |h| h.sender = Bytes::copy_from_slice(c.c.id().as_bytes()),
            none,
            Some(&c.c),
            pt,
        ),
        rej(RejectReason::UnknownSender),
        "validly signed by C, who is not the peer",
    );
    add(
        "envelope_wrong_recipient",
        "envelope",
        forge(
            c,
            |h| h.recipient = Bytes::copy_from_slice(c.c.id().as_bytes()),
            none,
            None,
            pt,
        ),
        rej(RejectReason::WrongRecipient),
        "addressed to C",
    );
    add(
        "envelope_unsupported_version",
        "envelope",
        forge(c, |h| h.version = 2, none, None, pt),
        rej(RejectReason::UnsupportedVersion),
        "version 2",
    );
    add(
        "envelope_created_in_future",
        "envelope",
        forge(c, |h| h.created_ms = NOW + 6 * 60_000, none, None, pt),
        rej(RejectReason::CreatedInFuture),
        "6 minutes ahead",
    );
    add(
        "envelope_too_old",
        "envelope",
        forge(c, |h| h.created_ms = NOW - 31 * DAY, none, None, pt),
        rej(RejectReason::TooOld),
        "31 days old",
    );
    add(
        "envelope_unsupported_suite",
        "envelope",
        forge(c, |h| h.suite = 2, none, None, pt),
        rej(RejectReason::UnsupportedSuite),
        "suite 2",
    );
    add(
        "envelope_unknown_key",
        "envelope",
        forge(
            c,
            |h| h.recipient_key_id = Bytes::from_static(&[0xAB; 16]),
            none,
            None,
            pt,
        ),
        rej(RejectReason::UnknownKey),
        "no key with that id",
    );
    add(
        "envelope_expired_key",
        "envelope",
        forge(
            c,
            |h| h.recipient_key_id = Bytes::copy_from_slice(&c.b_keys[1].certificate.id()),
            none,
            None,
            pt,
        ),
        rej(RejectReason::ExpiredKey),
        "names B's key that expired 35 days ago",
    );
    add(
        "envelope_sequence_zero",
        "envelope",
        forge(c, |h| h.sequence = 0, none, None, pt),
        rej(RejectReason::Malformed),
        "sequence numbers start at 1",
    );
    add(
        "envelope_unknown_precedence",
        "envelope",
        forge(c, |h| h.precedence = 9, none, None, pt),
        rej(RejectReason::Malformed),
        "precedence 9 is not registered",
    );
    add(
        "envelope_header_not_canonical",
        "envelope",
        {
            // Append a duplicate `sequence` field to the header and sign those bytes.
            let w = wire::Envelope::decode(Bytes::from(forge(c, |_| {}, none, None, pt)))
                .expect("decodes");
            let mut header = w.header.to_vec();
            header.extend_from_slice(&[0x28, 0x08]);
            let sig = c.a.sign(
                Label::Envelope,
                &[
                    &(header.len() as u32).to_be_bytes(),
                    &header,
                    &crypto::sha256(&w.ciphertext),
                ],
            );
            wire::Envelope {
                header: header.into(),
                signature: Bytes::copy_from_slice(&sig),
                ..w
            }
            .encode_to_vec()
        },
        rej(RejectReason::Malformed),
        "duplicate field: not canonical",
    );
    add(
        "envelope_content_for_other_message",
        "envelope",
        {
            let other = draft()
                .sign(b"another-message!", &c.b.id(), &c.a_officer, NOW)
                .expect("officer");
            forge(c, |_| {}, none, None, other.as_bytes())
        },
        rej(RejectReason::BadContent),
        "content names another message id",
    );
    add(
        "envelope_officer_of_other_node",
        "envelope",
        {
            let foreign = OfficerKey::from_parts(
                &seed("node C officer"),
                Credential::issue(
                    &c.c,
                    crypto::SecretSigningKey::from_seed(&seed("node C officer")).public(),
                    "Mallory",
                    Role::Officer,
                    NOW - DAY,
                    NOW + DAY,
                )
                .expect("issue"),
            )
            .expect("parts");
            let content = draft()
                .sign(&MESSAGE_ID, &c.b.id(), &foreign, NOW)
                .expect("officer");
            forge(c, |_| {}, none, None, content.as_bytes())
        },
        rej(RejectReason::BadOfficerSignature),
        "officer credential issued by C, not by the sender",
    );
    add(
        "envelope_garbage",
        "envelope",
        b"\xff\xffnot protobuf".to_vec(),
        "STREAM:MALFORMED_FRAME".into(),
        "no message id can be read: reset the stream",
    );

    // Receipts, received by A from B.
    let mut r_bad = delivered.bytes().to_vec();
    let last = r_bad.len() - 1;
    r_bad[last] ^= 0x01;
    add(
        "receipt_bad_signature",
        "receipt",
        r_bad,
        "STREAM:BAD_RECEIPT".into(),
        "signature byte flipped",
    );
    add(
        "receipt_signed_by_other_node",
        "receipt",
        {
            let w = wire::Receipt::decode(delivered.bytes().clone()).expect("decodes");
            let sig = c.c.sign(Label::Receipt, &[&w.body]);
            wire::Receipt {
                signature: Bytes::copy_from_slice(&sig),
                ..w
            }
            .encode_to_vec()
        },
        "STREAM:BAD_RECEIPT".into(),
        "body names B, signature by C",
    );
    add(
        "receipt_delivered_with_reason",
        "receipt",
        {
            let w = wire::Receipt::decode(delivered.bytes().clone()).expect("decodes");
            let mut body = wire::ReceiptBody::decode(w.body.clone()).expect("decodes");
            body.reason = 5;
            let body = body.encode_to_vec();
            let sig = c.b.sign(Label::Receipt, &[&body]);
            wire::Receipt {
                body: body.into(),
                signature: Bytes::copy_from_slice(&sig),
            }
            .encode_to_vec()
        },
        "STREAM:BAD_RECEIPT".into(),
        "DELIVERED must not carry a reason",
    );
    add(
        "receipt_ack_by_foreign_officer",
        "receipt",
        {
            let foreign = OfficerKey::from_parts(
                &seed("node C officer"),
                Credential::issue(
                    &c.c,
                    crypto::SecretSigningKey::from_seed(&seed("node C officer")).public(),
                    "Mallory",
                    Role::Officer,
                    NOW - DAY,
                    NOW + DAY,
                )
                .expect("issue"),
            )
            .expect("parts");
            let ack = foreign
                .acknowledge(&MESSAGE_ID, env.sha256(), NOW, "")
                .expect("ack");
            let mut body = wire::ReceiptBody::decode(
                wire::Receipt::decode(delivered.bytes().clone())
                    .expect("decodes")
                    .body,
            )
            .expect("decodes");
            body.kind = wire::ReceiptKind::Acknowledged as i32;
            body.ack = Some(ack);
            let body = body.encode_to_vec();
            let sig = c.b.sign(Label::Receipt, &[&body]);
            wire::Receipt {
                body: body.into(),
                signature: Bytes::copy_from_slice(&sig),
            }
            .encode_to_vec()
        },
        "STREAM:BAD_RECEIPT".into(),
        "ACKNOWLEDGED by an officer whose credential C issued",
    );

    add(
        "receipt_not_canonical",
        "receipt",
        {
            let mut v = delivered.bytes().to_vec();
            v.extend_from_slice(&[0x18, 0x01]);
            v
        },
        "STREAM:MALFORMED_FRAME".into(),
        "unknown field appended: the frame does not decode canonically",
    );

    // Hellos, received by A (client) from B (server) on the connection of hello.json.
    let hb = wire::Hello::decode(hello_b).expect("decodes");
    let body = wire::HelloBody::decode(hb.body.clone()).expect("decodes");
    let resign = |body: &wire::HelloBody, side: Side, exp: &[u8; 32], who: &IdentityKey| {
        let b = body.encode_to_vec();
        let sig = who.sign(Label::Hello, &[&[side.byte()], exp, &b]);
        wire::Hello {
            body: b.into(),
            signature: Bytes::copy_from_slice(&sig),
        }
        .encode_to_vec()
    };
    add(
        "hello_other_exporter",
        "hello",
        resign(
            &body,
            Side::Server,
            &crypto::sha256(b"another connection"),
            &c.b,
        ),
        "CLOSE:BAD_CHANNEL_BINDING".into(),
        "signed over another connection's exporter",
    );
    add(
        "hello_wrong_role",
        "hello",
        resign(&body, Side::Client, exporter, &c.b),
        "CLOSE:BAD_CHANNEL_BINDING".into(),
        "server's Hello signed with the client role byte (reflection)",
    );
    add(
        "hello_other_identity",
        "hello",
        {
            let mut b2 = body.clone();
            b2.identity = Bytes::copy_from_slice(c.c.id().as_bytes());
            b2.encryption_keys =
                vec![EncryptionKey::certify(&c.c, [9; 32], NOW - DAY, NOW + DAY).to_wire()];
            resign(&b2, Side::Server, exporter, &c.c)
        },
        "CLOSE:IDENTITY_MISMATCH".into(),
        "valid Hello by C, but B is pinned",
    );
    add(
        "hello_only_version_2",
        "hello",
        {
            let mut b2 = body.clone();
            b2.versions = vec![2];
            resign(&b2, Side::Server, exporter, &c.b)
        },
        "CLOSE:UNSUPPORTED_VERSION".into(),
        "offers version 2 only",
    );
    add(
        "hello_only_suite_9",
        "hello",
        {
            let mut b2 = body.clone();
            b2.suites = vec![9];
            resign(&b2, Side::Server, exporter, &c.b)
        },
        "CLOSE:UNSUPPORTED_SUITE".into(),
        "offers suite 9 only",
    );
    add(
        "hello_not_canonical",
        "hello",
        {
            let mut v = hello_b.to_vec();
            v.extend_from_slice(&[0x18, 0x01]);
            v
        },
        "CLOSE:MALFORMED_FRAME".into(),
        "unknown field appended",
    );

    // Frames.
    add(
        "frame_envelope_oversize",
        "frame_message",
        vec![0x10, 0x00, 0x10, 0x00, 0x01],
        "STREAM:FRAME_TOO_LARGE".into(),
        "declares 1 MiB + 1 bytes",
    );
    add(
        "frame_control_oversize",
        "frame_control",
        vec![0x02, 0x00, 0x00, 0x40, 0x01],
        "CLOSE:FRAME_TOO_LARGE".into(),
        "heartbeat declaring 16 KiB + 1",
    );
    add(
        "frame_truncated",
        "frame_message",
        vec![0x10, 0x00, 0x00, 0x00, 0x08, 0x01, 0x02],
        "STREAM:TRUNCATED_FRAME".into(),
        "stream ends 6 bytes short",
    );
    add(
        "frame_unknown_type",
        "frame_control",
        vec![0x7f, 0x00, 0x00, 0x00, 0x00],
        "CLOSE:UNEXPECTED_FRAME".into(),
        "type 0x7f",
    );
    add(
        "frame_hello_on_message_stream",
        "frame_message",
        frame::encode(FrameType::Hello, hello_b).to_vec(),
        "STREAM:UNEXPECTED_FRAME".into(),
        "control frame on a message stream",
    );
    add(
        "frame_envelope_on_control_stream",
        "frame_control",
        frame::encode(FrameType::Envelope, env.bytes()).to_vec(),
        "CLOSE:UNEXPECTED_FRAME".into(),
        "message frame on the control stream",
    );

    json!({
        "description": "Inputs every implementation must refuse, each with the exact outcome: REJECTED:<reason> (a REJECTED receipt), STREAM:<code> (stream reset), CLOSE:<code> (connection close). Context: envelopes arrive at node B from node A at now_ms with B's keys from identity.json; receipts arrive at node A from node B; Hellos arrive at node A (client) from node B (server) with the exporter of hello.json; frame inputs are the whole stream content.",
        "now_ms": NOW,
        "vectors": list,
    })
}

trait TapHeader {
    fn tap_header_tamper(self) -> Vec<u8>;
}

impl TapHeader for Vec<u8> {
    /// Changes the precedence in the header after signing.
    fn tap_header_tamper(self) -> Vec<u8> {
        let w = wire::Envelope::decode(Bytes::from(self)).expect("decodes");
        let mut h = wire::EnvelopeHeader::decode(w.header.clone()).expect("decodes");
        h.precedence = 4;
        wire::Envelope {
            header: h.encode_to_vec().into(),
            ..w
        }
        .encode_to_vec()
    }
}

/// What this implementation does with a negative vector's input.
fn outcome(kind: &str, input: &[u8], c: &Cast, exporter: &[u8; 32]) -> String {
    match kind {
        "envelope" => match Envelope::parse(Bytes::copy_from_slice(input)) {
            Err(ParseError::Unreadable) => "STREAM:MALFORMED_FRAME".into(),
            Err(ParseError::Malformed { .. }) => format!("REJECTED:{}", RejectReason::Malformed),
            Err(_) => "UNKNOWN".into(),
            Ok(e) => match e.open(&c.b.id(), &c.a.id(), &c.b_keys, NOW) {
                Ok(_) => "ACCEPTED".into(),
                Err(r) => format!("REJECTED:{}", r.reason),
            },
        },
        "receipt" => match Receipt::verify(input, &c.b.id()) {
            Ok(_) => "ACCEPTED".into(),
            Err(e) => format!("STREAM:{}", e.code()),
        },
        "hello" => match hello::verify(input, &c.b.id(), Side::Server, exporter, &offer_v1()) {
            Ok(_) => "ACCEPTED".into(),
            Err(code) => format!("CLOSE:{code}"),
        },
        "control_v2" | "control_v1" => key_update_outcome(kind, input, c, exporter),
        // On a link that negotiated version 2: which rule the officer signature verifies by.
        "envelope_v2" => match Envelope::parse(Bytes::copy_from_slice(input)) {
            Err(_) => "UNKNOWN".into(),
            Ok(e) => match e.open(&c.b.id(), &c.a.id(), &c.b_keys, NOW) {
                Ok(o) => format!("ACCEPTED:{}", o.binding.as_str()),
                Err(r) => format!("REJECTED:{}", r.reason),
            },
        },
        "frame_message" | "frame_control" => {
            let (sk, prefix) = if kind == "frame_message" {
                (StreamKind::Message, "STREAM")
            } else {
                (StreamKind::Control, "CLOSE")
            };
            let mut d = Decoder::new(sk);
            d.push(input);
            loop {
                match d.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) => return format!("{prefix}:{}", e.code()),
                }
            }
            match d.finish() {
                Ok(()) => "ACCEPTED".into(),
                Err(e) => format!("{prefix}:{}", e.code()),
            }
        }
        other => panic!("unknown vector kind {other}"),
    }
}

/// What node B's session does with `input` on the control stream from A, after both Hellos of
/// `key_update.json` (kind `control_v2`) or with A offering version 1 only (`control_v1`):
/// the real state machine, not a re-implementation of its checks.
fn key_update_outcome(kind: &str, input: &[u8], c: &Cast, exporter: &[u8; 32]) -> String {
    let mut s = b_session_up(kind, c, exporter);
    let now = Monotonic::from_millis(1_000);
    s.handle_data(now, StreamId::Control, input, false);
    while s.poll_transmit().is_some() {}
    let mut outcome = "ACCEPTED".to_owned();
    while let Some(ev) = s.poll_event() {
        if let Event::LinkDown { code, .. } = ev {
            outcome = format!("CLOSE:{code}");
        }
    }
    outcome
}

/// Node B's session with A's Hello of `key_update.json` verified (kind `control_v2`), or with A
/// offering version 1 only (`control_v1`), its transmissions and events drained.
fn b_session_up(kind: &str, c: &Cast, exporter: &[u8; 32]) -> Session {
    let (a_offer, version) = match kind {
        "control_v2" => (offer_v2(), PROTOCOL_VERSION_2),
        _ => (offer_v1(), PROTOCOL_VERSION),
    };
    let b = IdentityKey::from_seed(&c.b_seed).expect("not weak");
    let config = Config {
        offer: offer_v2(),
        ..Config::default()
    };
    let mut s = Session::new(
        config,
        Arc::new(b),
        vec![c.b_keys[0].certificate.clone()],
        c.a.id(),
    );
    let now = Monotonic::from_millis(1_000);
    s.set_wall_clock(now, NOW);
    s.handle_connected(now, Side::Server, *exporter);
    let (current, _) = a_keys(c);
    let hello_a = hello::create(&c.a, Side::Client, exporter, &a_offer, &[current.cert], NOW);
    s.handle_data(
        now,
        StreamId::Control,
        &frame::encode(FrameType::Hello, &hello_a),
        false,
    );
    assert!(s.is_up(), "A's Hello is accepted");
    assert_eq!(s.peer_hello().map(|h| h.version), Some(version));
    while s.poll_transmit().is_some() {}
    while s.poll_event().is_some() {}
    s
}

/// RFC 9180 §7.1.3 DeriveKeyPair(ikm) for DHKEM(X25519, HKDF-SHA256): the secret `sk` as the
/// RFC defines it, before any clamping; written from the RFC, not with the crate's HPKE code.
fn derive_key_pair_sk(ikm: &[u8; 32]) -> [u8; 32] {
    const SUITE_ID: &[u8] = b"KEM\x00\x20";
    let labeled_ikm = [b"HPKE-v1", SUITE_ID, b"dkp_prk", ikm.as_slice()].concat();
    let prk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b""), &labeled_ikm);
    let labeled_info = [&32u16.to_be_bytes()[..], b"HPKE-v1", SUITE_ID, b"sk"].concat();
    let mut sk = [0u8; 32];
    prk.expand(&labeled_info, &mut sk).expect("32 bytes");
    sk
}

/// RFC 7748 §5 decodeScalar25519: what X25519 does to a secret before using it.
fn clamp(mut k: [u8; 32]) -> [u8; 32] {
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    k
}

fn read(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn committed_vectors_are_reproduced() {
    let rewrite = std::env::var_os("HOTLINE_REWRITE_VECTORS").is_some();
    let mut stale = Vec::new();
    for (name, value) in generate() {
        let text = serde_json::to_string_pretty(&value).expect("serializes") + "\n";
        let path = dir().join(name);
        if rewrite {
            std::fs::create_dir_all(dir()).expect("mkdir");
            std::fs::write(&path, &text).expect("write");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "committed vectors differ from what the code produces: {stale:?}. If the wire change is deliberate, update SPEC.md and proto/, then run: HOTLINE_REWRITE_VECTORS=1 cargo test -p hotline-protocol --test vectors"
    );
}

#[test]
fn committed_vectors_verify() {
    let c = cast();
    // Identity text forms.
    let id = read("identity.json");
    for n in ["node_a", "node_b"] {
        let key = NodeId::from_bytes(&unhex(&id[n]["public"])).expect("valid key");
        assert_eq!(
            id[n]["text"].as_str().expect("text").parse::<NodeId>(),
            Ok(key)
        );
        let seed: [u8; 32] = unhex(&id[n]["seed"]).try_into().expect("32 bytes");
        assert_eq!(IdentityKey::from_seed(&seed).expect("key").id(), key);
    }
    let b = NodeId::from_bytes(&unhex(&id["node_b"]["public"])).expect("valid");
    let a = NodeId::from_bytes(&unhex(&id["node_a"]["public"])).expect("valid");
    let ek = &id["node_b_encryption_key"];
    let cert = EncryptionKey::verify(
        &wire::SignedEncryptionKey {
            body: unhex(&ek["certificate_body"]).into(),
            signature: unhex(&ek["certificate_signature"]).into(),
        },
        &b,
    )
    .expect("certificate verifies");
    let sk = SecretAgreementKey::derive(&unhex(&ek["ikm"]));
    assert_eq!(&sk.public(), cert.public());
    // Both forms of the secret: DeriveKeyPair's sk, computed here from RFC 9180 alone, and
    // the same scalar clamped (SPEC.md Appendix A.2).
    let unclamped: [u8; 32] = unhex(&ek["secret_unclamped"]).try_into().expect("32 bytes");
    let ikm: [u8; 32] = unhex(&ek["ikm"]).try_into().expect("32 bytes");
    assert_eq!(unclamped, derive_key_pair_sk(&ikm));
    assert_eq!(clamp(unclamped).to_vec(), unhex(&ek["secret"]));
    assert_eq!(&*sk.dangerous_bytes(), &clamp(unclamped));
    assert_eq!(h(&cert.id()), ek["key_id"].as_str().expect("str"));

    // Bundle.
    let bundle = read("bundle.json");
    let parsed = PeerBundle::from_bytes(&unhex(&bundle["bundle"])).expect("bundle verifies");
    assert_eq!(parsed.identity(), b);
    assert_eq!(
        PeerBundle::from_armored(bundle["armored"].as_str().expect("str").as_bytes())
            .expect("armored"),
        parsed
    );

    // Hello.
    let hello = read("hello.json");
    let exporter: [u8; 32] = unhex(&hello["exporter"]).try_into().expect("32");
    let peer = hello::verify(
        &unhex(&hello["node_b_hello"]),
        &b,
        Side::Server,
        &exporter,
        &offer_v1(),
    )
    .expect("Hello verifies");
    assert_eq!((peer.version, peer.suite), (1, 1));
    // A version 2 node talking to the node of hello.json still negotiates version 1.
    let peer = hello::verify(
        &unhex(&hello["node_b_hello"]),
        &b,
        Side::Server,
        &exporter,
        &offer_v2(),
    )
    .expect("Hello verifies");
    assert_eq!((peer.version, peer.suite), (1, 1));

    // Envelope: opens with B's keys and says what the plaintext says.
    let e = read("envelope.json");
    let keys = vec![EncryptionKeypair {
        secret: sk,
        certificate: cert,
    }];
    let env = Envelope::parse(unhex(&e["envelope"]).into()).expect("parses");
    let opened = env
        .open(&b, &a, &keys, e["now_ms"].as_u64().expect("u64"))
        .expect("opens");
    assert_eq!(opened.draft, draft());
    assert_eq!(h(env.sha256()), e["envelope_sha256"].as_str().expect("str"));
    assert_eq!(h(env.header_bytes()), e["header"].as_str().expect("str"));
    // Independently: the HPKE layer reproduces enc and ciphertext from ikmE.
    struct Fixed(Vec<u8>);
    impl rand_core::TryRng for Fixed {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            unreachable!()
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            unreachable!()
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            let n = dst.len();
            dst.copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Fixed {}
    let pk_r: [u8; 32] = unhex(&ek["public"]).try_into().expect("32");
    let mut s = HpkeSender::setup(
        &pk_r,
        &unhex(&e["hpke_info"]),
        &mut Fixed(unhex(&e["hpke_ikm_e"])),
    )
    .expect("setup");
    assert_eq!(h(&s.enc()), e["enc"].as_str().expect("str"));
    let ct = s
        .seal(&unhex(&e["header"]), &unhex(&e["plaintext_content"]))
        .expect("seal");
    assert_eq!(h(&ct), e["ciphertext"].as_str().expect("str"));
    assert!(crypto::verify_strict_raw(
        a.as_bytes(),
        &unhex(&e["signed_bytes"]),
        &unhex(&e["signature"])
    ));

    // Receipts.
    let r = read("receipts.json");
    for kind in ["delivered", "acknowledged", "rejected_policy"] {
        let rec = Receipt::verify(&unhex(&r[kind]["receipt"]), &b)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(rec.answers(&env), "{kind} does not answer the envelope");
    }

    // Negative vectors: each refused with exactly its stated outcome.
    let neg = read("negative.json");
    let list = neg["vectors"].as_array().expect("list");
    assert!(list.len() >= 30, "too few negative vectors");
    for v in list {
        let got = outcome(
            v["kind"].as_str().expect("kind"),
            &unhex(&v["input"]),
            &c,
            &exporter,
        );
        assert_eq!(
            got,
            v["expected"].as_str().expect("expected"),
            "negative vector {}",
            v["name"]
        );
    }

    verify_key_update_file(&c, &a, &b);
    verify_officer_v2_file(&c, &a, &b);
    revocation_file::verify_file(&c, &a, &b);
    bundle_update_file::verify_file(&c, &a, &b);
}

/// Checks the committed `officer_v2.json` from its inputs and identity.json: the signed bytes
/// rebuilt by concatenation (not with the crate's `tbs`), the signatures verify strictly by the
/// officers' keys, the content opens by the version 2 rule only with its marking and its own
/// credential, the acknowledgement verifies by the version 2 rule only under its credential,
/// and each envelope meets exactly its stated outcome.
fn verify_officer_v2_file(c: &Cast, a: &NodeId, b: &NodeId) {
    let id = read("identity.json");
    let o = read("officer_v2.json");
    let now = o["now_ms"].as_u64().expect("u64");
    let byte = |v: &Value| u8::try_from(v.as_u64().expect("u64")).expect("one byte");
    let (p, t) = (
        byte(&o["marking"]["precedence"]),
        byte(&o["marking"]["tlp"]),
    );
    let precedence = Precedence::from_wire(i32::from(p)).expect("registered");
    let tlp = Tlp::from_wire(i32::from(t)).expect("registered");
    assert_eq!(precedence.as_str(), o["marking"]["precedence_name"]);
    assert_eq!(tlp_name(tlp), o["marking"]["tlp_name"]);
    let credential = |who: &str, issuer: &NodeId| {
        let raw = unhex(&id[who]["credential"]);
        let w = wire::OfficerCredential::decode(&raw[..]).expect("decodes");
        let cred = Credential::verify(&w, issuer).expect("verifies");
        assert_eq!(cred.to_wire().encode_to_vec(), raw, "canonical");
        (cred, raw)
    };

    // content_v2: A's officer, by the version 2 rule.
    let cv = &o["content_v2"];
    let (a_cred, a_raw) = credential("node_a_officer", a);
    let body = unhex(&cv["body"]);
    let message_id: [u8; 16] = unhex(&cv["message_id"]).try_into().expect("16 bytes");
    assert_eq!(
        draft().encode_body(&message_id, b).expect("body"),
        body,
        "the body is envelope.json's draft for this message id"
    );
    assert_eq!(unhex(&cv["body_sha256"]), crypto::sha256(&body));
    assert_eq!(unhex(&cv["credential_sha256"]), crypto::sha256(&a_raw));
    let signed = [
        &b"hotline/2 officer-message\x00"[..],
        &crypto::sha256(&body),
        &crypto::sha256(&a_raw),
        &[p, t],
    ]
    .concat();
    assert_eq!(unhex(&cv["signed_bytes"]), signed);
    let officer_pub = unhex(&id["node_a_officer"]["public"]);
    assert!(crypto::verify_strict_raw(
        &officer_pub,
        &signed,
        &unhex(&cv["signature"])
    ));
    let content_bytes = unhex(&cv["content"]);
    let w = wire::Content::decode(&content_bytes[..]).expect("decodes");
    assert_eq!(w.encode_to_vec(), content_bytes, "canonical");
    assert_eq!(w.body[..], body[..]);
    let sig = w.officer.as_ref().expect("officer");
    assert_eq!(sig.signature[..], unhex(&cv["signature"])[..]);
    assert_eq!(
        sig.credential.as_ref().map(Message::encode_to_vec),
        Some(a_raw)
    );
    let parse = |bytes: &[u8], p: Precedence, t: Tlp| {
        OpenedContent::parse(bytes, &message_id, a, b, now, p, t).map(|o| o.binding)
    };
    assert_eq!(parse(&content_bytes, precedence, tlp), Ok(Binding::Marked));
    for other_p in Precedence::ALL {
        for other_t in [
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ] {
            if (other_p, other_t) != (precedence, tlp) {
                assert!(parse(&content_bytes, other_p, other_t).is_err());
            }
        }
    }

    // other_credential: A certifies the same officer key under another name.
    let oc = &o["other_credential"];
    let other_raw = unhex(&oc["credential"]);
    let other = Credential::verify(
        &wire::OfficerCredential::decode(&other_raw[..]).expect("decodes"),
        a,
    )
    .expect("verifies as A's");
    assert_eq!(other.officer_key(), a_cred.officer_key());
    assert_ne!(other.name(), a_cred.name());
    assert_eq!(other.name(), oc["name"].as_str().expect("str"));
    assert_eq!(
        other.not_before(),
        oc["not_before_ms"].as_u64().expect("u64")
    );
    assert_eq!(other.not_after(), oc["not_after_ms"].as_u64().expect("u64"));
    assert_eq!(unhex(&oc["credential_sha256"]), crypto::sha256(&other_raw));
    let swapped = with_credential(&content_bytes, &other);
    assert!(parse(&swapped, precedence, tlp).is_err());
    // By the version 1 rule the same swap would go unnoticed: what version 2 is for.
    let v1 = draft()
        .sign(&message_id, b, &c.a_officer, now)
        .expect("officer");
    assert_eq!(
        parse(&with_credential(v1.as_bytes(), &other), precedence, tlp),
        Ok(Binding::BodyOnly)
    );

    // ack_v2: B's officer acknowledges envelope.json's envelope by the version 2 rule.
    let av = &o["ack_v2"];
    let (b_cred, b_raw) = credential("node_b_officer", b);
    let e = read("envelope.json");
    assert_eq!(av["message_id"], e["message_id"]);
    assert_eq!(av["envelope_sha256"], e["envelope_sha256"]);
    let ack_id: [u8; 16] = unhex(&av["message_id"]).try_into().expect("16 bytes");
    let env_sha: [u8; 32] = unhex(&av["envelope_sha256"]).try_into().expect("32 bytes");
    let time = av["time_ms"].as_u64().expect("u64");
    let note = av["note"].as_str().expect("str");
    assert_eq!(unhex(&av["credential_sha256"]), crypto::sha256(&b_raw));
    let signed = [
        &b"hotline/2 officer-ack\x00"[..],
        &ack_id,
        &env_sha,
        &time.to_be_bytes(),
        &crypto::sha256(note.as_bytes()),
        &crypto::sha256(&b_raw),
    ]
    .concat();
    assert_eq!(unhex(&av["signed_bytes"]), signed);
    let ack_sig = unhex(&av["signature"]);
    assert!(crypto::verify_strict_raw(
        &unhex(&id["node_b_officer"]["public"]),
        &signed,
        &ack_sig
    ));
    let ack = wire::OfficerAck::decode(&unhex(&av["officer_ack"])[..]).expect("decodes");
    assert_eq!(ack.encode_to_vec(), unhex(&av["officer_ack"]), "canonical");
    assert_eq!((ack.time_ms, ack.note.as_str()), (time, note));
    assert_eq!(ack.signature[..], ack_sig[..]);
    assert_eq!(
        ack.credential.as_ref().map(Message::encode_to_vec),
        Some(b_raw)
    );
    assert_eq!(
        b_cred.verify_ack_binding(&ack_id, &env_sha, time, note, &ack_sig),
        Some(Binding::Marked)
    );
    let b_other = Credential::issue(
        &c.b,
        *b_cred.officer_key(),
        OTHER_OFFICER_NAME,
        Role::Officer,
        b_cred.not_before(),
        b_cred.not_after(),
    )
    .expect("issue");
    assert_eq!(
        b_other.verify_ack_binding(&ack_id, &env_sha, time, note, &ack_sig),
        None
    );

    // The envelopes.
    let list = o["envelopes"].as_array().expect("list");
    assert_eq!(list.len(), 4, "officer_v2.json envelopes");
    let exporter: [u8; 32] = unhex(&read("hello.json")["exporter"])
        .try_into()
        .expect("32");
    for v in list {
        let got = outcome(
            v["kind"].as_str().expect("kind"),
            &unhex(&v["input"]),
            c,
            &exporter,
        );
        assert_eq!(
            got,
            v["expected"].as_str().expect("expected"),
            "officer_v2.json envelope {}",
            v["name"]
        );
    }
}

/// Checks the committed `key_update.json`: A's keys derive from their ikm and are A's; both
/// version 2 Hellos verify and negotiate version 2; the KeyUpdate frame verifies as A's and
/// yields the listed keys, and node B's session takes it; each negative vector is refused
/// with exactly its stated outcome.
fn verify_key_update_file(c: &Cast, a: &NodeId, b: &NodeId) {
    let k = read("key_update.json");
    let exporter: [u8; 32] = unhex(&k["exporter"]).try_into().expect("32");
    let now = k["now_ms"].as_u64().expect("u64");
    for name in ["node_a_encryption_key", "node_a_next_encryption_key"] {
        let v = &k[name];
        let raw =
            wire::SignedEncryptionKey::decode(&unhex(&v["certificate"])[..]).expect("decodes");
        let cert = EncryptionKey::verify(&raw, a).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ikm: [u8; 32] = unhex(&v["ikm"]).try_into().expect("32 bytes");
        assert_eq!(&SecretAgreementKey::derive(&ikm).public(), cert.public());
        assert_eq!(h(cert.public()), v["public"].as_str().expect("str"));
        assert_eq!(h(&cert.id()), v["key_id"].as_str().expect("str"));
        assert_eq!(cert.not_before(), v["not_before_ms"].as_u64().expect("u64"));
        assert_eq!(cert.not_after(), v["not_after_ms"].as_u64().expect("u64"));
    }

    // Hello: versions 1 and 2 on both sides give version 2, either way round.
    let hv = &k["hello_v2"];
    let want = (
        hv["negotiated_version"].as_u64().expect("u64"),
        hv["negotiated_suite"].as_u64().expect("u64"),
    );
    assert_eq!(want, (2, 1));
    for (field, who, side) in [
        ("node_a_hello", a, Side::Client),
        ("node_b_hello", b, Side::Server),
    ] {
        let bytes = unhex(&hv[field]);
        let p = hello::verify(&bytes, who, side, &exporter, &offer_v2())
            .unwrap_or_else(|e| panic!("{field}: {e}"));
        assert_eq!((u64::from(p.version), u64::from(p.suite)), want, "{field}");
        assert_eq!(p.time, now);
        let mut d = Decoder::new(StreamKind::Control);
        d.push(&unhex(&hv[format!("{field}_frame")]));
        let f = d.next_frame().expect("a frame").expect("complete");
        assert_eq!((f.ty, &f.payload[..]), (FrameType::Hello, &bytes[..]));
        // Against a version 1 only offer, the same Hello negotiates version 1.
        let p = hello::verify(&bytes, who, side, &exporter, &offer_v1()).expect("verifies");
        assert_eq!(p.version, 1);
    }

    // The KeyUpdate frame.
    let ku = &k["key_update"];
    let mut d = Decoder::new(StreamKind::Control);
    let frame_bytes = unhex(&ku["frame"]);
    d.push(&frame_bytes);
    let f = d.next_frame().expect("a frame").expect("complete");
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(f.ty, FrameType::KeyUpdate);
    assert_eq!(f.payload[..], unhex(&ku["payload"])[..]);
    let keys = verify_key_update(&f.payload, a).expect("KeyUpdate verifies");
    let listed = ku["decoded_keys"].as_array().expect("list");
    assert_eq!(keys.len(), listed.len());
    for (key, v) in keys.iter().zip(listed) {
        assert_eq!(h(&key.id()), v["key_id"].as_str().expect("str"));
        assert_eq!(h(key.public()), v["public"].as_str().expect("str"));
        assert_eq!(key.not_before(), v["not_before_ms"].as_u64().expect("u64"));
        assert_eq!(key.not_after(), v["not_after_ms"].as_u64().expect("u64"));
    }
    assert_eq!(
        key_update_outcome("control_v2", &frame_bytes, c, &exporter),
        "ACCEPTED"
    );
    // Not from B: the keys are A's.
    assert!(verify_key_update(&f.payload, b).is_err());

    let list = k["negative"].as_array().expect("list");
    assert_eq!(list.len(), 5, "negative KeyUpdate vectors");
    for v in list {
        let got = outcome(
            v["kind"].as_str().expect("kind"),
            &unhex(&v["input"]),
            c,
            &exporter,
        );
        assert_eq!(
            got,
            v["expected"].as_str().expect("expected"),
            "negative vector {}",
            v["name"]
        );
    }
}
