//! Independent checks of another implementation's encodings with this implementation: its
//! envelope must open as node B, its receipts must verify as node A, its Hello must bind the
//! connection, its KeyUpdate must verify as node A's, its officer signatures must verify by the
//! version 2 rule, its key revocations and bundle updates must verify as node A's, and so on.
//! These rows say whether the two implementations interoperate, which a byte comparison alone
//! does not say when it fails.

use bytes::Bytes;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::crypto::{self, Label};
use hotline_protocol::envelope::Envelope;
use hotline_protocol::frame::{FrameType, StreamKind};
use hotline_protocol::hello::{self, Side};
use hotline_protocol::identity::{EncryptionKey, IdentityKey, NodeId};
use hotline_protocol::officer::{Credential, Role};
use hotline_protocol::receipt;
use hotline_protocol::session::verify_key_update;
use hotline_protocol::wire;
use prost::Message;

use super::committed::Committed;
use super::hex;
use super::inputs::{Keys, offer, offer_v2};
use super::receive::{self, canonical, one_frame};

/// One independent check: `None` when an input it needs is missing from the results.
pub struct Check {
    /// The vector file.
    pub file: &'static str,
    /// The row name: `verify:` and the key checked.
    pub name: String,
    /// `Some(Ok)` accepted, `Some(Err(why))` refused, `None` not checked.
    pub outcome: Option<Result<(), String>>,
}

/// Looks up another implementation's value for (file, key): `None` if missing or an `ERROR:`.
pub type Lookup<'a> = dyn Fn(&str, &str) -> Option<String> + 'a;

/// Runs every independent check over the values `theirs` returns.
pub fn checks(c: &Committed, k: &Keys, theirs: &Lookup<'_>) -> Result<Vec<Check>, String> {
    let mut out = Vec::new();
    let bytes = |file: &str, key: &str| theirs(file, key).and_then(|v| hex::decode(&v));
    let mut add = |file: &'static str, key: &str, outcome: Option<Result<(), String>>| {
        out.push(Check {
            file,
            name: format!("verify:{key}"),
            outcome,
        });
    };
    const ID: &str = "identity.json";

    // identity.json
    for n in ["node_a", "node_b"] {
        let public = c.bytes(ID, &format!("{n}.public"))?;
        add(
            ID,
            &format!("{n}.text"),
            theirs(ID, &format!("{n}.text")).map(|t| match t.parse::<NodeId>() {
                Ok(id) if id.as_bytes()[..] == public[..] => Ok(()),
                Ok(_) => Err(format!("parses, but not as {n}.public")),
                Err(e) => Err(format!("does not parse: {e}")),
            }),
        );
    }
    let key = "node_b_encryption_key";
    let public = c.bytes(ID, &format!("{key}.public"))?;
    add(
        ID,
        &format!("{key}.certificate_signature"),
        bytes(ID, &format!("{key}.certificate_body"))
            .zip(bytes(ID, &format!("{key}.certificate_signature")))
            .map(|(body, signature)| {
                let raw = wire::SignedEncryptionKey {
                    body: body.into(),
                    signature: signature.into(),
                };
                certificate(&raw, &k.b.id(), &public)
            }),
    );
    let key = "node_b_expired_encryption_key";
    let public = c.bytes(ID, &format!("{key}.public"))?;
    add(
        ID,
        &format!("{key}.certificate"),
        bytes(ID, &format!("{key}.certificate")).map(|v| {
            let raw = canonical::<wire::SignedEncryptionKey>(&v)
                .ok_or("not a canonical SignedEncryptionKey")?;
            certificate(&raw, &k.b.id(), &public)
        }),
    );
    for (who, node) in [("node_a_officer", &k.a), ("node_b_officer", &k.b)] {
        let public = c.bytes(ID, &format!("{who}.public"))?;
        add(
            ID,
            &format!("{who}.credential"),
            bytes(ID, &format!("{who}.credential")).map(|v| credential(&v, node, &public)),
        );
    }

    // bundle.json
    let is_b = |b: Result<PeerBundle, _>| match b {
        Ok(b) if b.identity() == k.b.id() => Ok(()),
        Ok(b) => Err(format!("verifies, but its identity is {}", b.identity())),
        Err(e) => Err(format!("refused: {e}")),
    };
    add(
        "bundle.json",
        "bundle",
        bytes("bundle.json", "bundle").map(|v| is_b(PeerBundle::from_bytes(&v))),
    );
    add(
        "bundle.json",
        "armored",
        theirs("bundle.json", "armored").map(|t| is_b(PeerBundle::from_armored(t.as_bytes()))),
    );

    // hello.json
    let exporter = c.bytes32("hello.json", "exporter")?;
    let hello_b = |v: &[u8]| {
        hello::verify(v, &k.b.id(), Side::Server, &exporter, &offer())
            .map(|_| ())
            .map_err(|code| format!("refused as node A (client): CLOSE:{code}"))
    };
    add(
        "hello.json",
        "node_b_hello",
        bytes("hello.json", "node_b_hello").map(|v| hello_b(&v)),
    );
    add(
        "hello.json",
        "node_b_hello_frame",
        bytes("hello.json", "node_b_hello_frame").map(|v| {
            let f = one_frame(&v, StreamKind::Control)?;
            if f.ty != FrameType::Hello {
                return Err(format!("a {:?} frame, not Hello", f.ty));
            }
            hello_b(&f.payload)
        }),
    );
    add(
        "hello.json",
        "node_a_hello_without_keys",
        bytes("hello.json", "node_a_hello_without_keys").map(|v| hello_a(&v, &k.a, &exporter)),
    );

    // envelope.json
    const E: &str = "envelope.json";
    let now = c.u64(E, "now_ms")?;
    let plaintext = c.bytes(E, "plaintext_content")?;
    let opens = |v: &[u8]| {
        let (_, opened) =
            receive::open_as_b(v, k, now).map_err(|e| format!("refused as node B: {e}"))?;
        if opened.plaintext[..] == plaintext[..] {
            Ok(())
        } else {
            Err("opens, but the plaintext is not plaintext_content".to_owned())
        }
    };
    add(E, "envelope", bytes(E, "envelope").map(|v| opens(&v)));
    add(
        E,
        "frame",
        bytes(E, "frame").map(|v| {
            let f = one_frame(&v, StreamKind::Message)?;
            if f.ty != FrameType::Envelope {
                return Err(format!("a {:?} frame, not Envelope", f.ty));
            }
            opens(&f.payload)
        }),
    );
    let signed = c.bytes(E, "signed_bytes")?;
    add(
        E,
        "signature",
        bytes(E, "signature").map(|sig| {
            if crypto::verify_strict_raw(k.a.id().as_bytes(), &signed, &sig) {
                Ok(())
            } else {
                Err("does not verify strictly by node A over the committed signed_bytes".into())
            }
        }),
    );

    // receipts.json
    const R: &str = "receipts.json";
    let env = Envelope::parse(Bytes::from(c.bytes(E, "envelope")?))
        .map_err(|e| format!("internal error: the committed envelope does not parse: {e}"))?;
    for (name, kind) in [
        ("delivered", "DELIVERED"),
        ("acknowledged", "ACKNOWLEDGED"),
        ("rejected_policy", "REJECTED"),
    ] {
        let valid = |v: &[u8]| match receive::receipt_as_a(v, k, &env) {
            Ok(r) if r.kind().as_str() == kind => Ok(()),
            Ok(r) => Err(format!(
                "valid, but {} instead of {kind}",
                r.kind().as_str()
            )),
            Err(code) => Err(format!("refused as node A: {code}")),
        };
        add(
            R,
            &format!("{name}.receipt"),
            bytes(R, &format!("{name}.receipt")).map(|v| valid(&v)),
        );
        add(
            R,
            &format!("{name}.frame"),
            bytes(R, &format!("{name}.frame")).map(|v| {
                let f = one_frame(&v, StreamKind::Message)?;
                if f.ty != FrameType::Receipt {
                    return Err(format!("a {:?} frame, not Receipt", f.ty));
                }
                valid(&f.payload)
            }),
        );
    }
    let stored = crypto::sha256(&c.bytes(R, "acknowledged.receipt")?);
    add(
        R,
        "receipt_stored_frame",
        bytes(R, "receipt_stored_frame").map(|v| {
            let f = one_frame(&v, StreamKind::Message)?;
            if f.ty != FrameType::ReceiptStored {
                return Err(format!("a {:?} frame, not ReceiptStored", f.ty));
            }
            match receipt::parse_stored_ack(&f.payload) {
                Some(d) if d == stored => Ok(()),
                Some(_) => Err("names another receipt digest".into()),
                None => Err("MALFORMED_FRAME: not a canonical ReceiptStored".into()),
            }
        }),
    );

    // frames.json
    const F: &str = "frames.json";
    add(
        F,
        "heartbeat.frame",
        bytes(F, "heartbeat.frame").map(|v| {
            receive::control_frame::<wire::Heartbeat>(&v, FrameType::Heartbeat).map(|_| ())
        }),
    );
    add(
        F,
        "close_shutdown.frame",
        bytes(F, "close_shutdown.frame").map(|v| {
            let f = one_frame(&v, StreamKind::Control)?;
            if f.ty != FrameType::Close {
                return Err(format!("a {:?} frame, not Close", f.ty));
            }
            let m = wire::Close::decode(f.payload).map_err(|e| format!("does not decode: {e}"))?;
            if m.code == CloseCode::Shutdown.code() {
                Ok(())
            } else {
                Err(format!(
                    "code {}, not SHUTDOWN",
                    receive::close_code_name(m.code)
                ))
            }
        }),
    );

    // key_update.json
    const K: &str = "key_update.json";
    for key in ["node_a_encryption_key", "node_a_next_encryption_key"] {
        let public = c.bytes(K, &format!("{key}.public"))?;
        add(
            K,
            &format!("{key}.certificate"),
            bytes(K, &format!("{key}.certificate")).map(|v| {
                let raw = canonical::<wire::SignedEncryptionKey>(&v)
                    .ok_or("not a canonical SignedEncryptionKey")?;
                certificate(&raw, &k.a.id(), &public)
            }),
        );
    }
    let exporter = c.bytes32(K, "exporter")?;
    for (name, who, side, reader) in [
        ("node_a_hello", &k.a, Side::Client, "node B (server)"),
        ("node_b_hello", &k.b, Side::Server, "node A (client)"),
    ] {
        let v2 = |v: &[u8]| match hello::verify(v, &who.id(), side, &exporter, &offer_v2()) {
            Ok(p) if p.version == hotline_protocol::PROTOCOL_VERSION_2 => Ok(()),
            Ok(p) => Err(format!("verifies, but negotiates version {}", p.version)),
            Err(code) => Err(format!("refused as {reader}: CLOSE:{code}")),
        };
        add(
            K,
            &format!("hello_v2.{name}"),
            bytes(K, &format!("hello_v2.{name}")).map(|v| v2(&v)),
        );
        add(
            K,
            &format!("hello_v2.{name}_frame"),
            bytes(K, &format!("hello_v2.{name}_frame")).map(|v| {
                let f = one_frame(&v, StreamKind::Control)?;
                if f.ty != FrameType::Hello {
                    return Err(format!("a {:?} frame, not Hello", f.ty));
                }
                v2(&f.payload)
            }),
        );
    }
    let ids = (0..2)
        .map(|i| c.bytes(K, &format!("key_update.decoded_keys.{i}.key_id")))
        .collect::<Result<Vec<_>, _>>()?;
    let announces = |keys: Vec<EncryptionKey>| {
        let got: Vec<Vec<u8>> = keys.iter().map(|key| key.id().to_vec()).collect();
        if got == ids {
            Ok(())
        } else {
            Err("verifies, but announces other keys or another order".to_owned())
        }
    };
    add(
        K,
        "key_update.payload",
        bytes(K, "key_update.payload").map(|v| {
            verify_key_update(&v, &k.a.id())
                .map_err(|why| format!("refused as node B: {why}"))
                .and_then(announces)
        }),
    );
    add(
        K,
        "key_update.frame",
        bytes(K, "key_update.frame").map(|v| {
            receive::key_update_as_b(&v, k)
                .map_err(|e| format!("refused as node B: {e}"))
                .and_then(announces)
        }),
    );
    out.extend(super::officer_v2::checks(c, k, theirs)?);
    out.extend(super::revocation::checks(c, k, theirs)?);
    out.extend(super::bundle_update::checks(c, k, theirs)?);
    Ok(out)
}

/// A certificate must verify as `owner`'s and certify `public`.
fn certificate(
    raw: &wire::SignedEncryptionKey,
    owner: &NodeId,
    public: &[u8],
) -> Result<(), String> {
    match EncryptionKey::verify(raw, owner) {
        Ok(key) if key.public()[..] == public[..] => Ok(()),
        Ok(_) => Err("verifies, but certifies another public key".into()),
        Err(e) => Err(format!("refused: {e}")),
    }
}

/// A credential must verify as issued by `node`, for the officer key `public`, role OFFICER.
pub fn credential(bytes: &[u8], node: &IdentityKey, public: &[u8]) -> Result<(), String> {
    let raw =
        canonical::<wire::OfficerCredential>(bytes).ok_or("not a canonical OfficerCredential")?;
    let cred = Credential::verify(&raw, &node.id()).map_err(|e| format!("refused: {e}"))?;
    if cred.officer_key()[..] != public[..] {
        return Err("verifies, but for another officer key".into());
    }
    if cred.role() != Role::Officer {
        return Err(format!(
            "verifies, but the role is {}",
            cred.role().as_str()
        ));
    }
    Ok(())
}

/// Node A's Hello carries no keys, so it cannot pass §6.3 step 2; check its encoding and its
/// signature (client role byte, this connection's exporter) instead.
fn hello_a(bytes: &[u8], a: &IdentityKey, exporter: &[u8; 32]) -> Result<(), String> {
    let outer = canonical::<wire::Hello>(bytes).ok_or("not a canonical Hello")?;
    let body = canonical::<wire::HelloBody>(&outer.body).ok_or("body not a canonical HelloBody")?;
    if body.identity.as_ref() != a.id().as_bytes() {
        return Err("identity is not node A".into());
    }
    if a.id().verify(
        Label::Hello,
        &[&[Side::Client.byte()], exporter, &outer.body],
        &outer.signature,
    ) {
        Ok(())
    } else {
        Err("signature does not verify by node A with role 0x01 and the exporter".into())
    }
}
