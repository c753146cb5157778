//! `bundle_update.json`: bundle updates over the link (SPEC.md §4.4.4, version 2). Node B holds
//! node A's bundle; A makes a newer one carrying the pin of a new TLS key (§3.6.1) and sends it
//! in a BundleUpdate frame; B holds it and answers with a BundleAccepted frame naming its
//! SHA-256. The file holds both bundles, both frames, what B answers holding either bundle, and
//! the BundleUpdate and BundleAccepted frames a receiver must refuse.

use hotline_protocol::session::{verify_bundle_accepted, verify_bundle_update};

use super::*;

/// Node A's bundle name and address, in both bundles.
const NAME: &str = "CERT-A";
const ADDRESS: &str = "hotline.cert-a.example:4433";
/// The placeholder strings whose SHA-256 are A's current and next TLS pins, as bundle.json's
/// `tls_spki_sha256` is that of a placeholder for B.
const PREVIOUS_SPKI: &str = "node A TLS SubjectPublicKeyInfo (placeholder DER)";
const NEXT_SPKI: &str = "node A next TLS SubjectPublicKeyInfo (placeholder DER)";
/// When A made the bundle B holds: when its current encryption key became valid.
const PREVIOUS_CREATED_MS: u64 = NOW - 30 * DAY;
/// When A made the new one.
const NEW_CREATED_MS: u64 = NOW;

/// A's bundle as B holds it: its current TLS pin and its current encryption key.
fn previous(c: &Cast) -> PeerBundle {
    let (current, _) = a_keys(c);
    PeerBundle::create(
        &c.a,
        NAME,
        crypto::sha256(PREVIOUS_SPKI.as_bytes()),
        &[current.cert],
        &[ADDRESS.to_owned()],
        PREVIOUS_CREATED_MS,
    )
    .expect("bundle")
}

/// A's new bundle: the next TLS key's pin, and both encryption keys of key_update.json, newest
/// first.
fn newer(c: &Cast) -> PeerBundle {
    let (current, next) = a_keys(c);
    PeerBundle::create(
        &c.a,
        NAME,
        crypto::sha256(NEXT_SPKI.as_bytes()),
        &[next.cert, current.cert],
        &[ADDRESS.to_owned()],
        NEW_CREATED_MS,
    )
    .expect("bundle")
}

fn update_payload(bundle: &[u8]) -> Vec<u8> {
    wire::BundleUpdate {
        bundle: Bytes::copy_from_slice(bundle),
    }
    .encode_to_vec()
}

fn accepted_payload(sha: &[u8]) -> Vec<u8> {
    wire::BundleAccepted {
        bundle_sha256: Bytes::copy_from_slice(sha),
    }
    .encode_to_vec()
}

/// What node B answers, holding `held` for A, when A's BundleUpdate frame `input` arrives on a
/// version 2 link (SPEC.md §4.4.4): the bundle it then holds and the frame it sends. B's
/// session checks the frame; the choice of the newer bundle is the application's, as in
/// `hotlined`.
fn b_answers(c: &Cast, held: &PeerBundle, input: &[u8]) -> (PeerBundle, Vec<u8>) {
    let exporter: [u8; 32] = crypto::sha256(b"hotline/1 test vector exporter");
    let mut s = b_session_up("control_v2", c, &exporter);
    let now = Monotonic::from_millis(2_000);
    s.handle_data(now, StreamId::Control, input, false);
    let mut got = None;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::PeerBundle(b) => got = Some(*b),
            Event::LinkDown { code, .. } => panic!("B closed the link: {code}"),
            _ => {}
        }
    }
    let received = got.expect("a PeerBundle event");
    let holds = if received.created() > held.created() {
        received
    } else {
        held.clone()
    };
    assert!(s.bundle_accepted(now, crypto::sha256(holds.bytes())));
    let mut sent = Vec::new();
    while let Some(t) = s.poll_transmit() {
        if let hotline_protocol::session::Transmit::Data { stream, data, .. } = t {
            assert_eq!(stream, StreamId::Control);
            sent.extend_from_slice(&data);
        }
    }
    (holds, sent)
}

/// `bundle_update.json`.
pub(super) fn file(c: &Cast) -> Value {
    let (prev, new) = (previous(c), newer(c));
    let sha = |b: &PeerBundle| crypto::sha256(b.bytes());
    let inputs = |b: &PeerBundle, spki_of: &str| {
        json!({
            "name": b.name(),
            "tls_spki_sha256": h(b.tls_spki_sha256()),
            "tls_spki_sha256_of": spki_of,
            "encryption_keys": b.encryption_keys().iter().map(|k| h(&k.to_wire().encode_to_vec())).collect::<Vec<_>>(),
            "addresses": b.addresses(),
            "created_ms": b.created(),
            "versions": [PROTOCOL_VERSION, PROTOCOL_VERSION_2],
            "bundle": h(b.bytes()),
            "bundle_sha256": h(&sha(b)),
        })
    };
    let payload = update_payload(new.bytes());
    let update_frame = frame::encode(FrameType::BundleUpdate, &payload);
    let mut update = inputs(&new, NEXT_SPKI);
    update["payload"] = json!(h(&payload));
    update["frame"] = json!(h(&update_frame));
    let accepted = accepted_payload(&sha(&new));

    // What B answers: holding the previous bundle, A's new one; holding the new one, A's
    // previous one again.
    let (holds, newer_answer) = b_answers(c, &prev, &update_frame);
    assert_eq!(holds, new);
    let replayed = frame::encode(FrameType::BundleUpdate, &update_payload(prev.bytes()));
    let (holds, older_answer) = b_answers(c, &new, &replayed);
    assert_eq!(holds, new);

    // Frames to refuse.
    let mut negative = Vec::new();
    let mut add = |name: &str,
                   kind: &str,
                   ty: FrameType,
                   payload: Vec<u8>,
                   expected: &str,
                   note: &str| {
        let input = frame::encode(ty, &payload);
        negative.push(json!({"name": name, "kind": kind, "input": h(&input), "expected": expected, "note": note}));
    };
    let malformed = "CLOSE:MALFORMED_FRAME";
    let unexpected = "CLOSE:UNEXPECTED_FRAME";
    let c_bundle = PeerBundle::create(
        &c.c,
        "CERT-C",
        crypto::sha256(b"node C TLS SubjectPublicKeyInfo (placeholder DER)"),
        &[EncryptionKey::certify(
            &c.c,
            SecretAgreementKey::derive(&seed("node C encryption key")).public(),
            NOW,
            NOW + 365 * DAY,
        )],
        &[],
        NOW,
    )
    .expect("bundle");
    add(
        "bundle_update_other_identity",
        "control_v2",
        FrameType::BundleUpdate,
        update_payload(c_bundle.bytes()),
        malformed,
        "a valid bundle of node C, self-signed by C: not the peer's",
    );
    add(
        "bundle_update_reflected",
        "control_v2",
        FrameType::BundleUpdate,
        update_payload(b_bundle(c).bytes()),
        malformed,
        "node B's own bundle of bundle.json, sent back to B: not the peer's",
    );
    add(
        "bundle_update_bad_signature",
        "control_v2",
        FrameType::BundleUpdate,
        {
            let mut b = new.bytes().to_vec();
            let first = b.len() - 64;
            b[first] ^= 0x01;
            update_payload(&b)
        },
        malformed,
        "the new bundle with the first byte of its signature flipped: it does not verify",
    );
    add(
        "bundle_update_no_bundle",
        "control_v2",
        FrameType::BundleUpdate,
        update_payload(&[]),
        malformed,
        "a BundleUpdate without a bundle (empty payload)",
    );
    add(
        "bundle_update_not_canonical",
        "control_v2",
        FrameType::BundleUpdate,
        {
            let mut v = payload.clone();
            v.extend_from_slice(&[0x10, 0x01]);
            v
        },
        malformed,
        "the valid BundleUpdate with an unknown field appended",
    );
    add(
        "bundle_update_on_version_1_link",
        "control_v1",
        FrameType::BundleUpdate,
        payload.clone(),
        unexpected,
        "the valid BundleUpdate, on a link that negotiated version 1",
    );
    add(
        "bundle_accepted_digest_31_bytes",
        "control_v2",
        FrameType::BundleAccepted,
        accepted_payload(&sha(&new)[..31]),
        malformed,
        "a BundleAccepted whose digest is the first 31 bytes of a SHA-256",
    );
    add(
        "bundle_accepted_no_digest",
        "control_v2",
        FrameType::BundleAccepted,
        accepted_payload(&[]),
        malformed,
        "a BundleAccepted without a digest (empty payload)",
    );
    add(
        "bundle_accepted_not_canonical",
        "control_v2",
        FrameType::BundleAccepted,
        {
            let mut v = accepted.clone();
            v.extend_from_slice(&[0x10, 0x01]);
            v
        },
        malformed,
        "the valid BundleAccepted with an unknown field appended",
    );
    add(
        "bundle_accepted_on_version_1_link",
        "control_v1",
        FrameType::BundleAccepted,
        accepted.clone(),
        unexpected,
        "the valid BundleAccepted, on a link that negotiated version 1",
    );

    json!({
        "description": "Bundle updates over the link (SPEC.md §4.4.4, protocol version 2). previous_bundle: node A's PeerBundle (SPEC.md §4.4.1) as node B holds it for A; bundle_update.bundle: the newer one A makes to announce a new TLS key (SPEC.md §3.6.1). Each is made from the inputs given beside it: name, tls_spki_sha256 (the SHA-256 of the ASCII string tls_spki_sha256_of, a placeholder for the DER SubjectPublicKeyInfo), encryption_keys (encoded SignedEncryptionKeys of key_update.json: the current key, and for the new bundle the next key then the current one), addresses, created_ms and versions, signed by A's identity key of identity.json; bundle_sha256 is the SHA-256 of the bundle bytes. bundle_update.payload is the canonical BundleUpdate carrying the new bundle, bundle_update.frame its BundleUpdate frame (type 0x06). bundle_accepted: the canonical BundleAccepted naming the new bundle's SHA-256 and its BundleAccepted frame (type 0x07), which B sends A once it holds that bundle. receiver: node B receives a BundleUpdate frame (received) from A on the link of key_update.json hello_v2 (version 2), holding the bundle named by held; it keeps the bundle with the greater created_ms (then_holds, by SHA-256) and answers with the BundleAccepted frame answer. In newer the new bundle replaces the previous one and B accepts both TLS pins (tls_pins_accepted, previous first) until a connection with A presents the new one; in not_newer B holds the new bundle and A's previous one arrives again: B keeps the new one and says so. negative: BundleUpdate and BundleAccepted frames with their exact outcome, in the context of key_update.json (the whole content node B receives on the control stream from A after both Hellos at now_ms; control_v2: on the link of key_update.json hello_v2, version 2; control_v1: the link negotiated version 1).",
        "now_ms": NOW,
        "previous_bundle": inputs(&prev, PREVIOUS_SPKI),
        "bundle_update": update,
        "bundle_accepted": {
            "bundle_sha256": h(&sha(&new)),
            "payload": h(&accepted),
            "frame": h(&frame::encode(FrameType::BundleAccepted, &accepted)),
        },
        "receiver": {
            "newer": {
                "held": "previous_bundle",
                "received": h(&update_frame),
                "then_holds": h(&sha(&new)),
                "tls_pins_accepted": [h(prev.tls_spki_sha256()), h(new.tls_spki_sha256())],
                "answer": h(&newer_answer),
            },
            "not_newer": {
                "held": "bundle_update",
                "received": h(&replayed),
                "then_holds": h(&sha(&new)),
                "answer": h(&older_answer),
            },
        },
        "negative": negative,
    })
}

/// Checks the committed `bundle_update.json` the other way: both bundles verify as A's and
/// say what their inputs say; the frames decode, the BundleUpdate verifies as from A (not from
/// B) and B's session takes it, the BundleAccepted names the new bundle; B's answers are
/// reproduced by hand; every negative vector has exactly its stated outcome, for the reason it
/// was made for.
pub(super) fn verify_file(c: &Cast, a: &NodeId, b: &NodeId) {
    let (f, k) = (read("bundle_update.json"), read("key_update.json"));
    let exporter: [u8; 32] = unhex(&k["exporter"]).try_into().expect("32");
    let bundle = |name: &str| {
        let v = &f[name];
        let bytes = unhex(&v["bundle"]);
        let got = PeerBundle::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.identity(), *a, "{name} is A's");
        assert_eq!(got.name(), v["name"].as_str().expect("str"));
        let spki_of = v["tls_spki_sha256_of"].as_str().expect("str");
        assert_eq!(
            got.tls_spki_sha256(),
            &crypto::sha256(spki_of.as_bytes()),
            "{name}"
        );
        assert_eq!(h(got.tls_spki_sha256()), v["tls_spki_sha256"]);
        let keys: Vec<String> = got
            .encryption_keys()
            .iter()
            .map(|k| h(&k.to_wire().encode_to_vec()))
            .collect();
        assert_eq!(json!(keys), v["encryption_keys"], "{name}");
        assert_eq!(json!(got.addresses()), v["addresses"]);
        assert_eq!(got.created(), v["created_ms"].as_u64().expect("u64"));
        let body =
            wire::BundleBody::decode(wire::PeerBundle::decode(&bytes[..]).expect("decodes").body)
                .expect("decodes");
        assert_eq!(json!(body.versions), v["versions"]);
        assert_eq!(unhex(&v["bundle_sha256"]), crypto::sha256(&bytes));
        got
    };
    let (prev, new) = (bundle("previous_bundle"), bundle("bundle_update"));
    // The encryption keys are key_update.json's: the current one, then the next one first.
    let cert = |n: &str| k[n]["certificate"].clone();
    assert_eq!(
        f["previous_bundle"]["encryption_keys"],
        json!([cert("node_a_encryption_key")])
    );
    assert_eq!(
        f["bundle_update"]["encryption_keys"],
        json!([
            cert("node_a_next_encryption_key"),
            cert("node_a_encryption_key")
        ])
    );
    assert!(new.created() > prev.created());
    assert_ne!(new.tls_spki_sha256(), prev.tls_spki_sha256());

    // The BundleUpdate frame.
    let u = &f["bundle_update"];
    let frame_bytes = unhex(&u["frame"]);
    let fr = one_control_frame(&frame_bytes);
    assert_eq!(fr.ty, FrameType::BundleUpdate);
    assert_eq!(fr.payload[..], unhex(&u["payload"])[..]);
    assert_eq!(
        verify_bundle_update(&fr.payload, a).expect("BundleUpdate verifies"),
        new
    );
    assert!(verify_bundle_update(&fr.payload, b).is_err(), "not B's");
    assert_eq!(
        key_update_outcome("control_v2", &frame_bytes, c, &exporter),
        "ACCEPTED"
    );

    // The BundleAccepted frame.
    let acc = &f["bundle_accepted"];
    let fr = one_control_frame(&unhex(&acc["frame"]));
    assert_eq!(fr.ty, FrameType::BundleAccepted);
    assert_eq!(fr.payload[..], unhex(&acc["payload"])[..]);
    let sha = verify_bundle_accepted(&fr.payload).expect("BundleAccepted verifies");
    assert_eq!(sha, crypto::sha256(new.bytes()));
    assert_eq!(acc["bundle_sha256"], u["bundle_sha256"]);
    assert_eq!(
        key_update_outcome("control_v2", &unhex(&acc["frame"]), c, &exporter),
        "ACCEPTED"
    );

    // B's answers, rebuilt by hand: the newer bundle by created_ms, named in a BundleAccepted.
    let r = &f["receiver"];
    assert_eq!(
        r["newer"]["tls_pins_accepted"],
        json!([h(prev.tls_spki_sha256()), h(new.tls_spki_sha256())])
    );
    for (case, held) in [("newer", &prev), ("not_newer", &new)] {
        let v = &r[case];
        let name = v["held"].as_str().expect("str");
        assert_eq!(f[name]["bundle"], json!(h(held.bytes())), "{case}");
        let received = one_control_frame(&unhex(&v["received"]));
        assert_eq!(received.ty, FrameType::BundleUpdate);
        let got = verify_bundle_update(&received.payload, a).expect("verifies");
        let holds = if got.created() > held.created() {
            got
        } else {
            held.clone()
        };
        let sha = crypto::sha256(holds.bytes());
        assert_eq!(unhex(&v["then_holds"]), sha, "{case}");
        let answer = [&[0x07][..], &(34u32).to_be_bytes(), &[0x0a, 0x20], &sha].concat();
        assert_eq!(unhex(&v["answer"]), answer, "{case}");
    }

    let negative = f["negative"].as_array().expect("list");
    assert_eq!(negative.len(), 10, "bundle_update.json negative vectors");
    for v in negative {
        let input = unhex(&v["input"]);
        let got = outcome(v["kind"].as_str().expect("kind"), &input, c, &exporter);
        assert_eq!(got, v["expected"].as_str().expect("str"), "{}", v["name"]);
        assert_eq!(
            refusal(&input, a),
            reason_of(v["name"].as_str().expect("name")),
            "{} is not refused for the reason it was made for",
            v["name"]
        );
    }
}

fn one_control_frame(bytes: &[u8]) -> frame::Frame {
    let mut d = Decoder::new(StreamKind::Control);
    d.push(bytes);
    let f = d.next_frame().expect("a frame").expect("complete");
    assert_eq!(d.next_frame(), Ok(None));
    f
}

/// Why the frame checks of SPEC.md §4.4.4 step 3 refuse a negative vector's frame.
fn refusal(input: &[u8], a: &NodeId) -> String {
    let f = one_control_frame(input);
    let why = match f.ty {
        FrameType::BundleUpdate => verify_bundle_update(&f.payload, a).err(),
        FrameType::BundleAccepted => verify_bundle_accepted(&f.payload).err(),
        other => panic!("a {other:?} frame"),
    };
    why.unwrap_or("verifies").to_owned()
}

/// The reason each negative vector of `bundle_update.json` was made for.
fn reason_of(name: &str) -> &'static str {
    match name {
        "bundle_update_other_identity" | "bundle_update_reflected" => {
            "BundleUpdate carries another node's bundle"
        }
        "bundle_update_bad_signature" | "bundle_update_no_bundle" => {
            "BundleUpdate carries a bundle that does not verify"
        }
        "bundle_update_not_canonical" => "BundleUpdate is not canonical",
        "bundle_accepted_digest_31_bytes" | "bundle_accepted_no_digest" => {
            "BundleAccepted digest is not 32 bytes"
        }
        "bundle_accepted_not_canonical" => "BundleAccepted is not canonical",
        // Valid frames, refused for the link they arrive on.
        "bundle_update_on_version_1_link" | "bundle_accepted_on_version_1_link" => "verifies",
        other => panic!("no reason listed for {other}"),
    }
}
