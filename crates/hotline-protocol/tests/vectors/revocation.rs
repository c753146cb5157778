//! `revocation.json`: key revocations (SPEC.md §4.6, version 2). Node A revokes two officer
//! keys: its officer's key of `identity.json` as compromised, and a second key as retired. The
//! file holds both `KeyRevocation`s, the Revocations frame carrying them, how signatures stand
//! against them (§4.6.3), envelopes node B opens while holding them (§7.6 step 12a), and the
//! Revocations frames a receiver must refuse (§4.6.2).

use hotline_protocol::revocation::{self, MAX_PER_FRAME, Revocation, RevokedKind, Standing};
use hotline_protocol::time::MINUTE;

use super::*;

const HOUR: u64 = 60 * MINUTE;

/// The compromise: A revoked its officer's key ten minutes before the vectors' "now", saying
/// it was stolen an hour before.
const COMPROMISED_REVOKED_MS: u64 = NOW - 10 * MINUTE;
const COMPROMISED_SINCE_MS: u64 = NOW - HOUR;
const COMPROMISED_REASON: &str = "officer laptop stolen";
/// The retirement: a second officer key of A, withdrawn in good order a day before.
const RETIRED_REVOKED_MS: u64 = NOW - DAY;
const RETIRED_REASON: &str = "officer moved to another team";

/// The key the retirement withdraws: the public key of this seed.
fn retired_key() -> [u8; 32] {
    crypto::SecretSigningKey::from_seed(&seed("node A retired officer")).public()
}

fn compromised(c: &Cast) -> Revocation {
    Revocation::issue(
        &c.a,
        RevokedKind::Officer,
        *c.a_officer.credential().officer_key(),
        COMPROMISED_REVOKED_MS,
        Some(COMPROMISED_SINCE_MS),
        COMPROMISED_REASON,
    )
    .expect("valid")
}

fn retired(c: &Cast) -> Revocation {
    Revocation::issue(
        &c.a,
        RevokedKind::Officer,
        retired_key(),
        RETIRED_REVOKED_MS,
        None,
        RETIRED_REASON,
    )
    .expect("valid")
}

/// The SPEC.md §4.6.3 name of a standing.
pub(super) fn standing_name(s: Standing) -> &'static str {
    match s {
        Standing::NotRevoked => "NOT_REVOKED",
        Standing::BeforeCutoff { .. } => "BEFORE_CUTOFF",
        Standing::AfterCutoff { .. } => "AFTER_CUTOFF",
    }
}

/// A `KeyRevocation` signed by `signer` over `body` as given, even one that breaks a rule.
fn signed(signer: &IdentityKey, body: &wire::RevocationBody, append: &[u8]) -> wire::KeyRevocation {
    let mut body = body.encode_to_vec();
    body.extend_from_slice(append);
    let signature = signer.sign(Label::KeyRevocation, &[&body]);
    wire::KeyRevocation {
        body: body.into(),
        signature: Bytes::copy_from_slice(&signature),
    }
}

fn payload(revocations: Vec<wire::KeyRevocation>) -> Vec<u8> {
    wire::Revocations { revocations }.encode_to_vec()
}

/// `revocation.json`.
pub(super) fn file(c: &Cast, env: &Envelope, plaintext: &[u8]) -> Value {
    let (comp, ret) = (compromised(c), retired(c));
    let one = |r: &Revocation| {
        let w = r.to_wire();
        json!({
            "issuer": h(r.issuer().as_bytes()),
            "kind": wire::RevokedKeyKind::Officer as i32,
            "kind_name": "OFFICER",
            "key": h(r.key()),
            "revoked_ms": r.revoked(),
            "compromised_since_ms": r.compromised_since().unwrap_or(0),
            "reason": r.reason(),
            "cutoff_ms": r.cutoff(),
            "body": h(&w.body),
            "signed_bytes": h(&crypto::tbs(Label::KeyRevocation, &[&w.body])),
            "signature": h(&w.signature),
            "key_revocation": h(r.bytes()),
        })
    };
    let both = [comp.clone(), ret.clone()];
    let frame_payload = revocation::frame_payload(&both);

    // How signatures stand against both revocations (§4.6.3).
    let a_officer = *c.a_officer.credential().officer_key();
    let b_officer = *c.b_officer.credential().officer_key();
    let mut standing = serde_json::Map::new();
    for (name, issuer, key, claimed) in [
        (
            "officer_before_compromise",
            c.a.id(),
            a_officer,
            COMPROMISED_SINCE_MS - 1,
        ),
        (
            "officer_at_compromise",
            c.a.id(),
            a_officer,
            COMPROMISED_SINCE_MS,
        ),
        ("officer_after_revocation", c.a.id(), a_officer, NOW),
        (
            "retired_before_revocation",
            c.a.id(),
            retired_key(),
            RETIRED_REVOKED_MS - 1,
        ),
        (
            "retired_at_revocation",
            c.a.id(),
            retired_key(),
            RETIRED_REVOKED_MS,
        ),
        ("same_key_other_issuer", c.b.id(), a_officer, NOW),
        ("other_key", c.a.id(), b_officer, NOW),
    ] {
        let s = revocation::standing(&both, &issuer, RevokedKind::Officer, &key, claimed);
        standing.insert(
            name.to_owned(),
            json!({"issuer": h(issuer.as_bytes()), "key": h(&key), "claimed_ms": claimed, "standing": standing_name(s)}),
        );
    }

    // Envelopes node B opens from A while holding both revocations.
    let created = |t: u64| forge(c, |hd| hd.created_ms = t, |_| {}, None, plaintext);
    let mut envelopes = Vec::new();
    let mut add_env = |name: &str, input: Vec<u8>, expected: String, note: &str| {
        envelopes.push(json!({"name": name, "kind": "envelope_v2_revocations", "input": h(&input), "expected": expected, "note": note}));
    };
    let revoked = format!("REJECTED:{}", RejectReason::RevokedKey);
    add_env(
        "revoked_key_envelope_of_envelope_json",
        env.bytes().to_vec(),
        revoked.clone(),
        "the envelope of envelope.json: created at now_ms, after the compromise",
    );
    add_env(
        "revoked_key_created_between_compromise_and_revocation",
        created(NOW - 30 * MINUTE),
        revoked.clone(),
        "created 30 minutes before now_ms: after the compromise, before the revocation; the cutoff is the compromise time",
    );
    add_env(
        "revoked_key_created_at_cutoff",
        created(COMPROMISED_SINCE_MS),
        revoked,
        "created exactly at compromised_since_ms: the cutoff itself no longer counts",
    );
    add_env(
        "revoked_key_created_before_compromise",
        created(NOW - 2 * HOUR),
        "ACCEPTED:v1".to_owned(),
        "created 2 hours before now_ms, before the compromise: accepted, on the strength of the claimed created_ms",
    );

    // Revocations frames to refuse.
    let mut negative = Vec::new();
    let mut add = |name: &str, kind: &str, payload: Vec<u8>, expected: &str, note: &str| {
        let input = frame::encode(FrameType::Revocations, &payload);
        negative.push(json!({"name": name, "kind": kind, "input": h(&input), "expected": expected, "note": note}));
    };
    let body = wire::RevocationBody::decode(&comp.to_wire().body[..]).expect("body");
    let malformed = "CLOSE:MALFORMED_FRAME";
    let foreign = Revocation::issue(
        &c.c,
        RevokedKind::Officer,
        a_officer,
        COMPROMISED_REVOKED_MS,
        Some(COMPROMISED_SINCE_MS),
        COMPROMISED_REASON,
    )
    .expect("valid");
    add(
        "revocations_issuer_not_peer",
        "control_v2",
        payload(vec![foreign.to_wire()]),
        malformed,
        "a revocation issued and signed by node C, not by the peer A",
    );
    add(
        "revocations_compromised_after_revoked",
        "control_v2",
        payload(vec![signed(
            &c.a,
            &wire::RevocationBody {
                compromised_since_ms: COMPROMISED_REVOKED_MS + 1,
                ..body.clone()
            },
            &[],
        )]),
        malformed,
        "signed by A, with compromised_since_ms 1 ms after revoked_ms",
    );
    add(
        "revocations_reason_257_bytes",
        "control_v2",
        payload(vec![signed(
            &c.a,
            &wire::RevocationBody {
                reason: "r".repeat(257),
                ..body.clone()
            },
            &[],
        )]),
        malformed,
        "signed by A, with a reason of 257 bytes (at most 256)",
    );
    add(
        "revocations_revoked_ms_zero",
        "control_v2",
        payload(vec![signed(
            &c.a,
            &wire::RevocationBody {
                revoked_ms: 0,
                compromised_since_ms: 0,
                ..body.clone()
            },
            &[],
        )]),
        malformed,
        "signed by A, with revoked_ms 0",
    );
    add(
        "revocations_unknown_kind",
        "control_v2",
        payload(vec![signed(
            &c.a,
            &wire::RevocationBody {
                kind: 2,
                ..body.clone()
            },
            &[],
        )]),
        malformed,
        "signed by A, with kind 2 (unregistered)",
    );
    add(
        "revocations_body_not_canonical",
        "control_v2",
        payload(vec![signed(&c.a, &body, &[0x38, 0x01])]),
        malformed,
        "the compromise's body with an unknown field 7 appended, signed by A over those bytes",
    );
    add(
        "revocations_bad_signature",
        "control_v2",
        payload(vec![{
            let mut w = comp.to_wire();
            let mut s = w.signature.to_vec();
            s[0] ^= 1;
            w.signature = s.into();
            w
        }]),
        malformed,
        "the compromise with the first byte of its signature flipped",
    );
    add(
        "revocations_empty",
        "control_v2",
        payload(Vec::new()),
        malformed,
        "a Revocations frame carrying no revocation (empty payload)",
    );
    add(
        "revocations_17_entries",
        "control_v2",
        payload(
            both.iter()
                .cycle()
                .take(MAX_PER_FRAME + 1)
                .map(Revocation::to_wire)
                .collect(),
        ),
        malformed,
        "17 valid revocations by A (the two of this file, repeated): at most 16",
    );
    add(
        "revocations_not_canonical",
        "control_v2",
        {
            let mut v = frame_payload.clone();
            v.extend_from_slice(&[0x10, 0x01]);
            v
        },
        malformed,
        "the valid Revocations payload with an unknown field appended",
    );
    add(
        "revocations_on_version_1_link",
        "control_v1",
        frame_payload.clone(),
        "CLOSE:UNEXPECTED_FRAME",
        "the valid Revocations frame, on a link that negotiated version 1",
    );

    json!({
        "description": "Key revocations (SPEC.md §4.6, protocol version 2). Node A (identity.json) revokes two officer keys, signing each RevocationBody with its identity key: signed_bytes = \"hotline/2 key-revocation\" || 0x00 || body; key_revocation is the encoded KeyRevocation. compromised: the key of identity.json node_a_officer, compromised since compromised_since_ms; retired: the public key of a second officer (Ed25519 seed SHA-256(\"hotline/1 test vector node A retired officer\")), retired in good order (compromised_since_ms 0). cutoff_ms is the compromise time if there is one, else the revocation time. revocations: the Revocations control frame (type 0x05) carrying both, in that order; verified by B as from A, it yields both. standing: with both revocations held, how a signature by key (certified by issuer) that claims the time claimed_ms stands (§4.6.3): NOT_REVOKED, BEFORE_CUTOFF (it counts) or AFTER_CUTOFF (it does not). envelopes: inputs each with the exact outcome; kind envelope_v2_revocations: node B receives the envelope on an envelope stream from A at now_ms, with B's keys of identity.json, on a link that negotiated version 2, holding both revocations as A's; the outcome is REJECTED:<reason>, or ACCEPTED:v1 / ACCEPTED:v2 for an accepted envelope. The other envelopes carry the plaintext of envelope.json (its officer signature by the version 1 rule), sealed and signed by A to B with the created_ms their note gives; they are inputs to judge, not outputs to reproduce. negative: Revocations frames with their exact outcome, in the context of key_update.json (the whole content node B receives on the control stream from A after both Hellos at now_ms; control_v2: on the link of key_update.json hello_v2, version 2; control_v1: the link negotiated version 1).",
        "now_ms": NOW,
        "compromised": one(&comp),
        "retired": one(&ret),
        "revocations": {
            "payload": h(&frame_payload),
            "frame": h(&frame::encode(FrameType::Revocations, &frame_payload)),
            "count": both.len(),
        },
        "standing": standing,
        "envelopes": envelopes,
        "negative": negative,
    })
}

/// The outcome of an `envelope_v2_revocations` input: node B opens it from A at `NOW`,
/// holding `revocations` (§7.6 with step 12a).
pub(super) fn envelope_outcome(c: &Cast, input: &[u8], revocations: &[Revocation]) -> String {
    match Envelope::parse(Bytes::copy_from_slice(input)) {
        Err(_) => "UNKNOWN".into(),
        Ok(e) => match e.open_checked(&c.b.id(), &c.a.id(), &c.b_keys, NOW, revocations) {
            Ok(o) => format!("ACCEPTED:{}", o.binding.as_str()),
            Err(r) => format!("REJECTED:{}", r.reason),
        },
    }
}

/// Checks the committed `revocation.json` the other way: each KeyRevocation verifies as A's
/// and says what its fields say, its signature verifies over its signed bytes; the frame
/// verifies and node B's session takes it; every standing, envelope and negative vector has
/// exactly its stated outcome.
pub(super) fn verify_file(c: &Cast, a: &NodeId, b: &NodeId) {
    let r = read("revocation.json");
    let exporter: [u8; 32] = unhex(&read("key_update.json")["exporter"])
        .try_into()
        .expect("32");
    let mut held = Vec::new();
    for name in ["compromised", "retired"] {
        let v = &r[name];
        let rev = Revocation::from_bytes(&unhex(&v["key_revocation"]), a)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            Revocation::from_bytes(rev.bytes(), b).is_err(),
            "{name} is not B's"
        );
        assert_eq!(h(rev.key()), v["key"].as_str().expect("str"), "{name}");
        assert_eq!(rev.revoked(), v["revoked_ms"].as_u64().expect("u64"));
        assert_eq!(
            rev.compromised_since().unwrap_or(0),
            v["compromised_since_ms"].as_u64().expect("u64")
        );
        assert_eq!(rev.reason(), v["reason"].as_str().expect("str"));
        assert_eq!(rev.cutoff(), v["cutoff_ms"].as_u64().expect("u64"));
        assert_eq!(rev.to_wire().body[..], unhex(&v["body"])[..]);
        let signed = unhex(&v["signed_bytes"]);
        assert_eq!(
            signed,
            [
                b"hotline/2 key-revocation\x00".as_slice(),
                &unhex(&v["body"])
            ]
            .concat()
        );
        assert!(crypto::verify_strict_raw(
            a.as_bytes(),
            &signed,
            &unhex(&v["signature"])
        ));
        held.push(rev);
    }
    assert_eq!(held[1].key(), &retired_key());

    // The frame.
    let f = &r["revocations"];
    let mut d = Decoder::new(StreamKind::Control);
    let frame_bytes = unhex(&f["frame"]);
    d.push(&frame_bytes);
    let fr = d.next_frame().expect("a frame").expect("complete");
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(fr.ty, FrameType::Revocations);
    assert_eq!(fr.payload[..], unhex(&f["payload"])[..]);
    let got = revocation::verify_frame(&fr.payload, a).expect("Revocations verifies");
    assert_eq!(got, held);
    assert_eq!(f["count"].as_u64(), Some(2));
    assert!(revocation::verify_frame(&fr.payload, b).is_err());
    assert_eq!(
        key_update_outcome("control_v2", &frame_bytes, c, &exporter),
        "ACCEPTED"
    );

    // Standing.
    let standing = r["standing"].as_object().expect("object");
    assert_eq!(standing.len(), 7);
    for (name, v) in standing {
        let issuer = NodeId::from_bytes(&unhex(&v["issuer"])).expect("node id");
        let s = revocation::standing(
            &held,
            &issuer,
            RevokedKind::Officer,
            &unhex(&v["key"]),
            v["claimed_ms"].as_u64().expect("u64"),
        );
        assert_eq!(
            standing_name(s),
            v["standing"].as_str().expect("str"),
            "{name}"
        );
    }

    // Envelopes and frames with their outcomes.
    let envelopes = r["envelopes"].as_array().expect("list");
    assert_eq!(envelopes.len(), 4, "revocation.json envelopes");
    for v in envelopes {
        assert_eq!(v["kind"], "envelope_v2_revocations");
        let got = envelope_outcome(c, &unhex(&v["input"]), &held);
        assert_eq!(got, v["expected"].as_str().expect("str"), "{}", v["name"]);
    }
    let negative = r["negative"].as_array().expect("list");
    assert_eq!(negative.len(), 11, "revocation.json negative vectors");
    for v in negative {
        let got = outcome(
            v["kind"].as_str().expect("kind"),
            &unhex(&v["input"]),
            c,
            &exporter,
        );
        assert_eq!(got, v["expected"].as_str().expect("str"), "{}", v["name"]);
        assert_eq!(
            refusal(&unhex(&v["input"]), a),
            reason_of(v["name"].as_str().expect("name")),
            "{} is not refused for the reason it was made for",
            v["name"]
        );
    }
}

/// Why `revocation` refuses the payload of a negative vector's frame: the frame's own error,
/// or that of its single revocation.
fn refusal(input: &[u8], a: &NodeId) -> String {
    let mut d = Decoder::new(StreamKind::Control);
    d.push(input);
    let f = d.next_frame().expect("a frame").expect("complete");
    match revocation::verify_frame(&f.payload, a) {
        Ok(_) => "verifies".into(),
        Err(why) if why.contains("does not verify") => {
            let list = wire::Revocations::decode(&f.payload[..]).expect("decodes");
            match &list.revocations[..] {
                [one] => {
                    Revocation::verify(one, a).map_or_else(|e| e.to_string(), |_| "verifies".into())
                }
                _ => why.into(),
            }
        }
        Err(why) => why.into(),
    }
}

/// The reason each negative vector of `revocation.json` was made for.
fn reason_of(name: &str) -> String {
    use hotline_protocol::revocation::RevocationError::{Malformed, WrongIssuer};
    match name {
        "revocations_issuer_not_peer" | "revocations_bad_signature" => WrongIssuer.to_string(),
        "revocations_compromised_after_revoked" => {
            Malformed("compromised_since_ms is after revoked_ms").to_string()
        }
        "revocations_reason_257_bytes" => Malformed("reason over 256 bytes").to_string(),
        "revocations_revoked_ms_zero" => Malformed("revoked_ms is 0").to_string(),
        "revocations_unknown_kind" => Malformed("unknown kind").to_string(),
        "revocations_body_not_canonical" => Malformed("body not canonical").to_string(),
        "revocations_empty" | "revocations_17_entries" => {
            "Revocations must carry 1 to 16 revocations".into()
        }
        "revocations_not_canonical" => "Revocations is not canonical".into(),
        // A valid frame, refused for the link it arrives on.
        "revocations_on_version_1_link" => "verifies".into(),
        other => panic!("no reason listed for {other}"),
    }
}
