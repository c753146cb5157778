//! Hand-built wire objects: Hellos, envelopes and receipts with exactly one thing wrong.
//!
//! These use the generated protobuf types of `hotline_protocol::wire` directly, which the
//! house style keeps out of node code: a conformance runner has to produce what the checked
//! domain types refuse to build.

use bytes::Bytes;
use hotline_protocol::crypto::{HPKE_INFO, HpkeSender, Label, sha256};
use hotline_protocol::envelope::MessageId;
use hotline_protocol::hello::{Offer, Side};
use hotline_protocol::identity::{EncryptionKey, IdentityKey, NodeId};
use hotline_protocol::officer::OfficerKey;
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;

use crate::ctx::{Ctx, rng};

/// A Hello body offering `offer` and announcing `keys` for `identity`.
pub fn hello_body(identity: &NodeId, keys: &[EncryptionKey], offer: &Offer) -> wire::HelloBody {
    wire::HelloBody {
        versions: offer.versions.clone(),
        suites: offer.suites.clone(),
        identity: Bytes::copy_from_slice(identity.as_bytes()),
        encryption_keys: keys.iter().map(EncryptionKey::to_wire).collect(),
        time_ms: now_ms(),
        max_inflight: offer.max_inflight,
    }
}

/// Signs encoded Hello body bytes as `signer` in role `side` over `exporter`.
pub fn sign_hello(signer: &IdentityKey, side: Side, exporter: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let sig = signer.sign(Label::Hello, &[&[side.byte()], exporter, body]);
    wire::Hello {
        body: Bytes::copy_from_slice(body),
        signature: Bytes::copy_from_slice(&sig),
    }
    .encode_to_vec()
}

/// The runner's Hello with `edit` applied to its body, correctly signed for this connection.
pub fn runner_hello(
    cx: &Ctx,
    exporter: &[u8; 32],
    edit: impl FnOnce(&mut wire::HelloBody),
) -> Vec<u8> {
    let mut body = hello_body(&cx.me.identity.id(), &cx.me.keys, &Offer::default());
    edit(&mut body);
    sign_hello(
        &cx.me.identity,
        Side::Client,
        exporter,
        &body.encode_to_vec(),
    )
}

/// A canonical `Content` for message `id` to the target, signed by `officer`, with `edit`
/// applied to the message body first.
pub fn content(
    cx: &Ctx,
    id: &MessageId,
    officer: &OfficerKey,
    edit: impl FnOnce(&mut wire::MessageBody),
) -> Vec<u8> {
    let mut body = wire::MessageBody {
        message_id: Bytes::copy_from_slice(id),
        recipient: Bytes::copy_from_slice(cx.target.id.as_bytes()),
        subject: "hotline-conformance: a message the target must refuse".into(),
        text: "Sent by the interop conformance runner. Nothing to act on.".into(),
        language: "en".into(),
        ..Default::default()
    };
    edit(&mut body);
    let body = body.encode_to_vec();
    wire::Content {
        body: body.clone().into(),
        officer: Some(officer.sign_message(&body)),
    }
    .encode_to_vec()
}

/// A header for an envelope from the runner to the target, every field valid: `id`,
/// `sequence`, created now, sealed to `key` (`enc` is set when sealing).
pub fn header(
    cx: &Ctx,
    key: &EncryptionKey,
    id: &MessageId,
    sequence: u64,
) -> wire::EnvelopeHeader {
    wire::EnvelopeHeader {
        version: hotline_protocol::PROTOCOL_VERSION,
        message_id: Bytes::copy_from_slice(id),
        sender: Bytes::copy_from_slice(cx.me.identity.id().as_bytes()),
        recipient: Bytes::copy_from_slice(cx.target.id.as_bytes()),
        sequence,
        created_ms: now_ms(),
        precedence: wire::Precedence::Routine as i32,
        tlp: wire::Tlp::Green as i32,
        content_type: hotline_protocol::CONTENT_TYPE_V1,
        suite: hotline_protocol::SUITE_V1_BASE,
        recipient_key_id: Bytes::copy_from_slice(&key.id()),
        enc: Bytes::new(),
    }
}

/// An envelope in pieces, to be tampered with before encoding.
#[derive(Clone, Debug)]
pub struct Parts {
    /// Header bytes (the HPKE aad and what the signature covers).
    pub header: Vec<u8>,
    /// HPKE ciphertext.
    pub ciphertext: Vec<u8>,
    /// Signature.
    pub signature: Vec<u8>,
}

impl Parts {
    /// The envelope bytes (canonical encoding of the three fields).
    pub fn encode(&self) -> Vec<u8> {
        wire::Envelope {
            header: Bytes::copy_from_slice(&self.header),
            ciphertext: Bytes::copy_from_slice(&self.ciphertext),
            signature: Bytes::copy_from_slice(&self.signature),
        }
        .encode_to_vec()
    }

    /// Signs the current header and ciphertext again as `signer` (SPEC.md §7.3).
    pub fn resign(&mut self, signer: &IdentityKey) {
        self.signature = sign_envelope(signer, &self.header, &self.ciphertext).to_vec();
    }
}

/// The envelope signature of SPEC.md §7.3.
pub fn sign_envelope(signer: &IdentityKey, header: &[u8], ciphertext: &[u8]) -> [u8; 64] {
    let len = u32::try_from(header.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    signer.sign(Label::Envelope, &[&len, header, &sha256(ciphertext)])
}

/// Seals `content` to the X25519 key `to` under `header` (whose `enc` is set here; encoded
/// canonically unless `encode_header` says otherwise), signed by `signer`.
pub fn seal(
    header: wire::EnvelopeHeader,
    to: &[u8; 32],
    content: &[u8],
    signer: &IdentityKey,
) -> Result<Parts, String> {
    seal_with(header, to, content, signer, |h| h.encode_to_vec())
}

/// [`seal`] with a custom header encoding (for non-canonical headers).
pub fn seal_with(
    mut header: wire::EnvelopeHeader,
    to: &[u8; 32],
    content: &[u8],
    signer: &IdentityKey,
    encode_header: impl FnOnce(&wire::EnvelopeHeader) -> Vec<u8>,
) -> Result<Parts, String> {
    let mut hpke = HpkeSender::setup(to, HPKE_INFO, &mut rng()).ok_or("HPKE setup failed")?;
    if header.enc.is_empty() {
        header.enc = Bytes::copy_from_slice(&hpke.enc());
    }
    let header = encode_header(&header);
    let ciphertext = hpke.seal(&header, content).ok_or("HPKE seal failed")?;
    let signature = sign_envelope(signer, &header, &ciphertext).to_vec();
    Ok(Parts {
        header,
        ciphertext,
        signature,
    })
}

/// Signs a receipt body as `signer` (SPEC.md §8.1), without checking what it says.
pub fn receipt(signer: &IdentityKey, body: &wire::ReceiptBody) -> Vec<u8> {
    let body = body.encode_to_vec();
    let signature = signer.sign(Label::Receipt, &[&body]);
    wire::Receipt {
        body: body.into(),
        signature: Bytes::copy_from_slice(&signature),
    }
    .encode_to_vec()
}

/// A protobuf field the schema does not have (number 15, varint 1): appended to a canonical
/// encoding it makes the encoding non-canonical (SPEC.md §5.3 rule 8) but still decodable.
pub const UNKNOWN_FIELD: [u8; 2] = [0x78, 0x01];

/// `bytes` with [`UNKNOWN_FIELD`] appended.
pub fn with_unknown_field(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.extend_from_slice(&UNKNOWN_FIELD);
    v
}
