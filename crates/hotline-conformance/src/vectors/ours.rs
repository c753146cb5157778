//! This implementation's results for every case, computed from the vectors' inputs with
//! `hotline-protocol` (never copied from the committed outputs): what `vectors --emit` writes.

use std::collections::BTreeMap;

use bytes::Bytes;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::content::SignedContent;
use hotline_protocol::crypto::{self, Label, SecretAgreementKey};
use hotline_protocol::envelope::{Envelope, SealParams};
use hotline_protocol::frame::{self, FrameType, StreamKind};
use hotline_protocol::hello::{self, Side};
use hotline_protocol::identity::{self, EncryptionKey, IdentityKey, NodeId};
use hotline_protocol::officer::Credential;
use hotline_protocol::receipt::{self, Receipt, ReceiptBuild, ReceiptKind, Subject};
use hotline_protocol::session::key_update_payload;
use hotline_protocol::wire;
use prost::Message;

use super::committed::Committed;
use super::hex;
use super::inputs::{self, Keys, offer, offer_v2};
use super::receive::{
    canonical, close_code_name, control_frame, error, key_update_as_b, one_frame, open_as_b,
    outcome, precedence_name, receipt_as_a, tlp_name,
};

/// Results by file, then by key.
pub type Results = BTreeMap<&'static str, BTreeMap<String, String>>;

const ID: &str = "identity.json";

/// Computes every result, from the committed inputs, with this implementation.
pub fn results(c: &Committed) -> Result<Results, String> {
    let k = Keys::load(c)?;
    let mut all = Results::new();
    all.insert("identity.json", identity_file(c, &k)?);
    all.insert("bundle.json", bundle_file(c, &k)?);
    all.insert("hello.json", hello_file(c, &k)?);
    all.insert("envelope.json", envelope_file(c, &k)?);
    all.insert("receipts.json", receipts_file(c, &k)?);
    all.insert("frames.json", frames_file(c)?);
    all.insert("negative.json", negative_file(c, &k, "negative.json")?);
    let mut key_update = key_update_file(c, &k)?;
    key_update.extend(negative_file(c, &k, "key_update.json")?);
    all.insert("key_update.json", key_update);
    let mut officer_v2 = super::officer_v2::results(c, &k)?;
    officer_v2.extend(negative_file(c, &k, super::officer_v2::FILE)?);
    all.insert(super::officer_v2::FILE, officer_v2);
    all.insert(super::revocation::FILE, super::revocation::results(c, &k)?);
    let mut bundle_update = super::bundle_update::results(c, &k)?;
    bundle_update.extend(negative_file(c, &k, super::bundle_update::FILE)?);
    all.insert(super::bundle_update::FILE, bundle_update);
    Ok(all)
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn identity_file(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    let mut r = BTreeMap::new();
    let mut put = |key: &str, v: String| r.insert(key.to_owned(), v);
    for (n, key) in [("node_a", &k.a), ("node_b", &k.b)] {
        put(&format!("{n}.public"), h(key.id().as_bytes()));
        put(&format!("{n}.text"), key.id().to_string());
        put(&format!("{n}.fingerprint"), key.id().fingerprint());
        put(
            &format!("{n}.text#public"),
            match c.str(ID, &format!("{n}.text"))?.parse::<NodeId>() {
                Ok(id) => h(id.as_bytes()),
                Err(e) => error(e),
            },
        );
    }
    let cur = &k.b_keys[0];
    let w = cur.certificate.to_wire();
    put(
        "node_b_encryption_key.secret",
        h(&*cur.secret.dangerous_bytes()),
    );
    put("node_b_encryption_key.public", h(cur.certificate.public()));
    put("node_b_encryption_key.key_id", h(&cur.certificate.id()));
    put("node_b_encryption_key.certificate_body", h(&w.body));
    put(
        "node_b_encryption_key.signed_bytes",
        h(&crypto::tbs(Label::EncryptionKey, &[&w.body])),
    );
    put(
        "node_b_encryption_key.certificate_signature",
        h(&w.signature),
    );
    let old = &k.b_keys[1];
    put(
        "node_b_expired_encryption_key.public",
        h(old.certificate.public()),
    );
    put(
        "node_b_expired_encryption_key.key_id",
        h(&identity::key_id(old.certificate.public())),
    );
    put(
        "node_b_expired_encryption_key.certificate",
        h(&old.certificate.to_wire().encode_to_vec()),
    );
    put(
        "node_b_expired_encryption_key.certificate#not_after_ms",
        match canonical::<wire::SignedEncryptionKey>(
            &c.bytes(ID, "node_b_expired_encryption_key.certificate")?,
        )
        .map(|w| EncryptionKey::verify(&w, &k.b.id()))
        {
            Some(Ok(key)) => key.not_after().to_string(),
            Some(Err(e)) => error(e),
            None => error("not a canonical SignedEncryptionKey"),
        },
    );
    put("node_a_officer.public", h(k.a_officer.officer_key()));
    put(
        "node_a_officer.credential",
        h(&k.a_officer.to_wire().encode_to_vec()),
    );
    let b_cred = k.b_officer.credential();
    put("node_b_officer.public", h(b_cred.officer_key()));
    put(
        "node_b_officer.credential",
        h(&b_cred.to_wire().encode_to_vec()),
    );
    let decode_cred =
        |who: &str, issuer: &IdentityKey| -> Result<Result<Credential, String>, String> {
            let raw = c.bytes(ID, &format!("{who}.credential"))?;
            Ok(canonical::<wire::OfficerCredential>(&raw)
                .ok_or_else(|| "not a canonical OfficerCredential".to_owned())
                .and_then(|w| Credential::verify(&w, &issuer.id()).map_err(|e| e.to_string())))
        };
    put(
        "node_a_officer.credential#officer_key",
        match decode_cred("node_a_officer", &k.a)? {
            Ok(cred) => h(cred.officer_key()),
            Err(e) => error(e),
        },
    );
    put(
        "node_b_officer.credential#name",
        match decode_cred("node_b_officer", &k.b)? {
            Ok(cred) => cred.name().to_owned(),
            Err(e) => error(e),
        },
    );
    Ok(r)
}

fn bundle_file(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    let mut r = BTreeMap::new();
    let spki: [u8; 32] = hex::decode(inputs::BUNDLE_TLS_SPKI_SHA256)
        .and_then(|v| v.try_into().ok())
        .ok_or("internal error: BUNDLE_TLS_SPKI_SHA256 is not 32 bytes of hex")?;
    // bundle.json is a version 1 node's.
    let bundle = PeerBundle::create_for_versions(
        &k.b,
        inputs::BUNDLE_NAME,
        spki,
        &[k.b_cert().clone()],
        &[inputs::BUNDLE_ADDRESS.to_owned()],
        inputs::BUNDLE_CREATED_MS,
        &[hotline_protocol::PROTOCOL_VERSION],
    )
    .map_err(|e| format!("cannot create node B's bundle: {e}"))?;
    r.insert("bundle".into(), h(bundle.bytes()));
    r.insert("armored".into(), bundle.to_armored());
    let committed = PeerBundle::from_bytes(&c.bytes("bundle.json", "bundle")?);
    r.insert(
        "bundle#identity".into(),
        match &committed {
            Ok(b) => h(b.identity().as_bytes()),
            Err(e) => error(e),
        },
    );
    r.insert(
        "bundle#name".into(),
        match &committed {
            Ok(b) => b.name().to_owned(),
            Err(e) => error(e),
        },
    );
    r.insert(
        "armored#bundle".into(),
        match PeerBundle::from_armored(c.str("bundle.json", "armored")?.as_bytes()) {
            Ok(b) => h(b.bytes()),
            Err(e) => error(e),
        },
    );
    Ok(r)
}

fn hello_file(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    let mut r = BTreeMap::new();
    let exporter = c.bytes32("hello.json", "exporter")?;
    let now = c.u64("hello.json", "now_ms")?;
    let b = hello::create(
        &k.b,
        Side::Server,
        &exporter,
        &offer(),
        &[k.b_cert().clone()],
        now,
    );
    r.insert("node_b_hello".into(), h(&b));
    r.insert(
        "node_b_hello_frame".into(),
        h(&frame::encode(FrameType::Hello, &b)),
    );
    let a = hello::create(&k.a, Side::Client, &exporter, &offer(), &[], now);
    r.insert("node_a_hello_without_keys".into(), h(&a));
    let verified = hello::verify(
        &c.bytes("hello.json", "node_b_hello")?,
        &k.b.id(),
        Side::Server,
        &exporter,
        &offer(),
    );
    let field = |f: &dyn Fn(&hello::PeerHello) -> String| match &verified {
        Ok(p) => f(p),
        Err(code) => error(code),
    };
    r.insert(
        "node_b_hello#version".into(),
        field(&|p| p.version.to_string()),
    );
    r.insert("node_b_hello#suite".into(), field(&|p| p.suite.to_string()));
    r.insert(
        "node_b_hello#max_inflight".into(),
        field(&|p| p.offer.max_inflight.to_string()),
    );
    r.insert(
        "node_b_hello#time_ms".into(),
        field(&|p| p.time.to_string()),
    );
    Ok(r)
}

/// An RNG that yields exactly the given bytes (the HPKE `ikmE`), then zeros and a flag.
struct Fixed {
    bytes: Vec<u8>,
    overdrawn: bool,
}

impl rand_core::TryRng for Fixed {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let n = dst.len().min(self.bytes.len());
        dst[..n].copy_from_slice(&self.bytes[..n]);
        dst[n..].fill(0);
        self.overdrawn |= n < dst.len();
        self.bytes.drain(..n);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Fixed {}

fn envelope_file(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    const E: &str = "envelope.json";
    let mut r = BTreeMap::new();
    let message_id: [u8; 16] = c
        .bytes(E, "message_id")?
        .try_into()
        .map_err(|_| "internal error: message_id is not 16 bytes")?;
    let params = SealParams {
        recipient: k.b.id(),
        recipient_key: k.b_cert(),
        message_id,
        sequence: c.u64(E, "sequence")?,
        created: c.u64(E, "created_ms")?,
        precedence: inputs::ENVELOPE_PRECEDENCE,
        tlp: inputs::ENVELOPE_TLP,
    };
    let content = SignedContent::from_bytes(c.bytes(E, "plaintext_content")?);
    let mut rng = Fixed {
        bytes: c.bytes(E, "hpke_ikm_e")?,
        overdrawn: false,
    };
    let env = Envelope::seal(&k.a, &params, &content, &mut rng)
        .map_err(|e| format!("cannot seal the envelope: {e}"))?;
    if rng.overdrawn {
        return Err("sealing drew more randomness than ikmE".into());
    }
    r.insert("enc".into(), h(&env.header().enc));
    r.insert("header".into(), h(env.header_bytes()));
    r.insert("ciphertext".into(), h(env.ciphertext()));
    let header_len = u32::try_from(env.header_bytes().len())
        .map_err(|_| "internal error: header longer than 4 GiB")?;
    r.insert(
        "signed_bytes".into(),
        h(&crypto::tbs(
            Label::Envelope,
            &[
                &header_len.to_be_bytes(),
                env.header_bytes(),
                &crypto::sha256(env.ciphertext()),
            ],
        )),
    );
    r.insert("signature".into(), h(env.signature()));
    r.insert("envelope".into(), h(env.bytes()));
    r.insert("envelope_sha256".into(), h(env.sha256()));
    r.insert(
        "frame".into(),
        h(&frame::encode(FrameType::Envelope, env.bytes())),
    );
    let opened = open_as_b(&c.bytes(E, "envelope")?, k, c.u64(E, "now_ms")?);
    let field = |f: &dyn Fn(&Envelope, &hotline_protocol::content::OpenedContent) -> String| {
        match &opened {
            Ok((e, o)) => f(e, o),
            Err(e) => error(e),
        }
    };
    let decoded: [(&str, String); 9] = [
        ("message_id", field(&|e, _| h(e.message_id()))),
        ("sequence", field(&|e, _| e.header().sequence.to_string())),
        ("created_ms", field(&|e, _| e.header().created.to_string())),
        (
            "precedence",
            field(&|e, _| precedence_name(e.header().precedence).to_owned()),
        ),
        ("tlp", field(&|e, _| tlp_name(e.header().tlp).to_owned())),
        (
            "recipient_key_id",
            field(&|e, _| h(&e.header().recipient_key_id)),
        ),
        ("plaintext", field(&|_, o| h(&o.plaintext))),
        ("subject", field(&|_, o| o.draft.subject.clone())),
        ("officer_key", field(&|_, o| h(o.officer.officer_key()))),
    ];
    for (f, v) in decoded {
        r.insert(format!("envelope#{f}"), v);
    }
    Ok(r)
}

fn receipts_file(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    const R: &str = "receipts.json";
    let mut r = BTreeMap::new();
    let env = Envelope::parse(Bytes::from(c.bytes("envelope.json", "envelope")?))
        .map_err(|e| format!("the committed envelope does not parse: {e}"))?;
    let subject = Subject::from(&env);
    let sign = |build: ReceiptBuild<'_>, t: u64| {
        Receipt::sign(&k.b, &subject, build, t).map_err(|e| format!("cannot sign a receipt: {e}"))
    };
    let ack = k
        .b_officer
        .acknowledge(
            env.message_id(),
            env.sha256(),
            inputs::ACK_TIME_MS,
            inputs::ACK_NOTE,
        )
        .map_err(|e| format!("cannot acknowledge: {e}"))?;
    let made = [
        (
            "delivered",
            sign(ReceiptBuild::Delivered, inputs::RECEIPT_TIME_MS)?,
        ),
        (
            "acknowledged",
            sign(ReceiptBuild::Acknowledged(&ack), inputs::ACK_TIME_MS)?,
        ),
        (
            "rejected_policy",
            sign(
                ReceiptBuild::Rejected(RejectReason::Policy, inputs::REJECT_DETAIL),
                inputs::RECEIPT_TIME_MS,
            )?,
        ),
    ];
    for (name, rec) in &made {
        let w = wire::Receipt::decode(rec.bytes().clone())
            .map_err(|e| format!("internal error: our receipt does not decode: {e}"))?;
        r.insert(format!("{name}.body"), h(&w.body));
        r.insert(format!("{name}.signature"), h(&w.signature));
        r.insert(format!("{name}.receipt"), h(rec.bytes()));
        r.insert(format!("{name}.receipt_sha256"), h(rec.sha256()));
        r.insert(
            format!("{name}.frame"),
            h(&frame::encode(FrameType::Receipt, rec.bytes())),
        );
    }
    r.insert(
        "acknowledged_officer_signed_bytes".into(),
        h(&crypto::tbs(
            Label::OfficerAck,
            &[
                env.message_id(),
                env.sha256(),
                &inputs::ACK_TIME_MS.to_be_bytes(),
                &crypto::sha256(inputs::ACK_NOTE.as_bytes()),
            ],
        )),
    );
    r.insert(
        "receipt_stored_frame".into(),
        h(&frame::encode(
            FrameType::ReceiptStored,
            &receipt::stored_ack(made[1].1.sha256()),
        )),
    );

    // Decoding the committed receipts as node A.
    for name in ["delivered", "acknowledged", "rejected_policy"] {
        let got = receipt_as_a(&c.bytes(R, &format!("{name}.receipt"))?, k, &env);
        let key = |f: &str| format!("{name}.receipt#{f}");
        let mut put = |f: &str, v: &dyn Fn(&Receipt) -> String| {
            r.insert(
                key(f),
                match &got {
                    Ok(rec) => v(rec),
                    Err(e) => error(e),
                },
            );
        };
        put("kind", &|rec| rec.kind().as_str().to_owned());
        match name {
            "delivered" => {
                put("time_ms", &|rec| rec.time().to_string());
                put("sequence", &|rec| rec.sequence().to_string());
                put("envelope_sha256", &|rec| h(rec.envelope_sha256()));
            }
            "acknowledged" => {
                let ack = |rec: &Receipt| match rec.kind() {
                    ReceiptKind::Acknowledged {
                        officer,
                        time,
                        note,
                        ..
                    } => Ok((officer.clone(), *time, note.clone())),
                    other => Err(error(format!("kind {}", other.as_str()))),
                };
                put("officer_key", &|rec| {
                    ack(rec).map_or_else(|e| e, |(o, _, _)| h(o.officer_key()))
                });
                put("ack_time_ms", &|rec| {
                    ack(rec).map_or_else(|e| e, |(_, t, _)| t.to_string())
                });
                put("note", &|rec| ack(rec).map_or_else(|e| e, |(_, _, n)| n));
            }
            _ => {
                let rej = |rec: &Receipt| match rec.kind() {
                    ReceiptKind::Rejected { reason, detail } => Ok((*reason, detail.clone())),
                    other => Err(error(format!("kind {}", other.as_str()))),
                };
                put("reason", &|rec| {
                    rej(rec).map_or_else(|e| e, |(r, _)| r.name().to_owned())
                });
                put("detail", &|rec| rej(rec).map_or_else(|e| e, |(_, d)| d));
            }
        }
    }
    r.insert(
        "receipt_stored_frame#receipt_sha256".into(),
        match one_frame(&c.bytes(R, "receipt_stored_frame")?, StreamKind::Message) {
            Ok(f) if f.ty == FrameType::ReceiptStored => {
                match receipt::parse_stored_ack(&f.payload) {
                    Some(d) => h(&d),
                    None => error("MALFORMED_FRAME: not a canonical ReceiptStored"),
                }
            }
            Ok(f) => error(format!("a {:?} frame", f.ty)),
            Err(e) => error(e),
        },
    );
    Ok(r)
}

fn frames_file(c: &Committed) -> Result<BTreeMap<String, String>, String> {
    const F: &str = "frames.json";
    let mut r = BTreeMap::new();
    let [ping, echo, time_ms, last_sequence_sent, received_through] = inputs::HEARTBEAT;
    let hb = wire::Heartbeat {
        ping,
        echo,
        time_ms,
        last_sequence_sent,
        received_through,
    }
    .encode_to_vec();
    r.insert("heartbeat.payload".into(), h(&hb));
    r.insert(
        "heartbeat.frame".into(),
        h(&frame::encode(FrameType::Heartbeat, &hb)),
    );
    let close = wire::Close {
        code: CloseCode::Shutdown.code(),
        reason: inputs::CLOSE_REASON.into(),
    }
    .encode_to_vec();
    r.insert("close_shutdown.payload".into(), h(&close));
    r.insert(
        "close_shutdown.frame".into(),
        h(&frame::encode(FrameType::Close, &close)),
    );
    let hb =
        control_frame::<wire::Heartbeat>(&c.bytes(F, "heartbeat.frame")?, FrameType::Heartbeat);
    type Field = fn(&wire::Heartbeat) -> u64;
    let fields: [(&str, Field); 5] = [
        ("ping", |m| m.ping),
        ("echo", |m| m.echo),
        ("time_ms", |m| m.time_ms),
        ("last_sequence_sent", |m| m.last_sequence_sent),
        ("received_through", |m| m.received_through),
    ];
    for (name, get) in fields {
        r.insert(
            format!("heartbeat.frame#{name}"),
            match &hb {
                Ok(m) => get(m).to_string(),
                Err(e) => error(e),
            },
        );
    }
    // A Close payload is not checked for canonical encoding (SPEC.md §3.8): decode it only.
    let close =
        one_frame(&c.bytes(F, "close_shutdown.frame")?, StreamKind::Control).and_then(|f| {
            if f.ty == FrameType::Close {
                wire::Close::decode(f.payload).map_err(|e| e.to_string())
            } else {
                Err(format!("a {:?} frame, not Close", f.ty))
            }
        });
    r.insert(
        "close_shutdown.frame#code".into(),
        match &close {
            Ok(m) => close_code_name(m.code),
            Err(e) => error(e),
        },
    );
    r.insert(
        "close_shutdown.frame#reason".into(),
        match &close {
            Ok(m) => m.reason.clone(),
            Err(e) => error(e),
        },
    );
    Ok(r)
}

/// The outcome of each negative vector of `file`, in the context its description gives.
fn negative_file(c: &Committed, k: &Keys, file: &str) -> Result<BTreeMap<String, String>, String> {
    let exporter = c.bytes32("hello.json", "exporter")?;
    let now = c.u64(file, "now_ms")?;
    let env = Envelope::parse(Bytes::from(c.bytes("envelope.json", "envelope")?))
        .map_err(|e| format!("the committed envelope does not parse: {e}"))?;
    Ok(c.negatives(file)?
        .into_iter()
        .map(|n| {
            let got = outcome(&n.kind, &n.input, k, &exporter, now, &env);
            (n.name, got)
        })
        .collect())
}

/// Node A's encryption key certificate at `name` of `key_update.json`, made from its `ikm` and
/// validity.
pub fn a_key(c: &Committed, k: &Keys, name: &str) -> Result<EncryptionKey, String> {
    const K: &str = "key_update.json";
    let public = SecretAgreementKey::derive(&c.bytes(K, &format!("{name}.ikm"))?).public();
    Ok(EncryptionKey::certify(
        &k.a,
        public,
        c.u64(K, &format!("{name}.not_before_ms"))?,
        c.u64(K, &format!("{name}.not_after_ms"))?,
    ))
}

fn key_update_file(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    const K: &str = "key_update.json";
    let mut r = BTreeMap::new();
    let current = a_key(c, k, "node_a_encryption_key")?;
    let next = a_key(c, k, "node_a_next_encryption_key")?;
    for (name, key) in [
        ("node_a_encryption_key", &current),
        ("node_a_next_encryption_key", &next),
    ] {
        r.insert(format!("{name}.public"), h(key.public()));
        r.insert(format!("{name}.key_id"), h(&key.id()));
        r.insert(
            format!("{name}.certificate"),
            h(&key.to_wire().encode_to_vec()),
        );
    }

    // Hellos offering versions 1 and 2: A as client with its current key, B as server.
    let exporter = c.bytes32(K, "exporter")?;
    let now = c.u64(K, "now_ms")?;
    let a = hello::create(
        &k.a,
        Side::Client,
        &exporter,
        &offer_v2(),
        std::slice::from_ref(&current),
        now,
    );
    let b = hello::create(
        &k.b,
        Side::Server,
        &exporter,
        &offer_v2(),
        &[k.b_cert().clone()],
        now,
    );
    for (name, bytes) in [("node_a_hello", &a), ("node_b_hello", &b)] {
        r.insert(format!("hello_v2.{name}"), h(bytes));
        r.insert(
            format!("hello_v2.{name}_frame"),
            h(&frame::encode(FrameType::Hello, bytes)),
        );
    }
    // Each node verifies the other's committed Hello with its own offer of versions 1 and 2.
    for (name, who, side) in [
        ("node_a_hello", &k.a, Side::Client),
        ("node_b_hello", &k.b, Side::Server),
    ] {
        let bytes = c.bytes(K, &format!("hello_v2.{name}"))?;
        r.insert(
            format!("hello_v2.{name}#version"),
            match hello::verify(&bytes, &who.id(), side, &exporter, &offer_v2()) {
                Ok(p) => p.version.to_string(),
                Err(code) => error(code),
            },
        );
    }

    // A's KeyUpdate after a rotation: the next key, then the current one (newest first).
    let payload = key_update_payload(&[next, current]);
    r.insert("key_update.payload".into(), h(&payload));
    r.insert(
        "key_update.frame".into(),
        h(&frame::encode(FrameType::KeyUpdate, &payload)),
    );
    // B reads the committed frame from A.
    let got = key_update_as_b(&c.bytes(K, "key_update.frame")?, k);
    r.insert(
        "key_update.frame#key_count".into(),
        match &got {
            Ok(keys) => keys.len().to_string(),
            Err(e) => error(e),
        },
    );
    for i in 0..2 {
        let field = |f: &dyn Fn(&EncryptionKey) -> String| match &got {
            Ok(keys) => keys.get(i).map_or_else(|| error(format!("no key {i}")), f),
            Err(e) => error(e),
        };
        r.insert(
            format!("key_update.frame#keys.{i}.key_id"),
            field(&|key| h(&key.id())),
        );
        r.insert(
            format!("key_update.frame#keys.{i}.not_before_ms"),
            field(&|key| key.not_before().to_string()),
        );
        r.insert(
            format!("key_update.frame#keys.{i}.not_after_ms"),
            field(&|key| key.not_after().to_string()),
        );
    }
    Ok(r)
}
