//! Envelopes: sealed, signed messages (SPEC.md §7).
//!
//! The header travels in the clear (inside TLS) and is the HPKE associated data, byte for
//! byte. The sender signs the exact header bytes and a digest of the exact ciphertext; the
//! receiver checks the signature over the bytes it received, never over a re-encoding.

use core::fmt;

use bytes::Bytes;
use prost::Message;
use rand_core::CryptoRng;

use crate::canonical;
use crate::codes::RejectReason;
use crate::content::{OpenedContent, Precedence, SignedContent, Tlp};
use crate::crypto::{self, HPKE_INFO, HpkeReceiver, HpkeSender, KEY_LEN, Label, SIGNATURE_LEN};
use crate::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, KEY_ID_LEN, NodeId};
use crate::time::{MAX_FUTURE_SKEW, MAX_MESSAGE_AGE, UnixMillis};
use crate::wire;

/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 16;
/// Largest encoded envelope (the frame payload limit for envelopes).
pub const MAX_ENVELOPE_LEN: usize = 1024 * 1024;
/// The most bytes sealing adds to a content, with room to spare: the header with every field
/// at its largest (about 170 bytes), the HPKE tag (16), the signature (64) and the protobuf
/// framing of the envelope's three fields (a few bytes each).
pub const MAX_SEAL_OVERHEAD: usize = 512;
/// The largest content that always fits in one envelope: a node refuses a larger one when an
/// officer submits it (SPEC.md §15.5.1), so an accepted message can always be sealed.
pub const MAX_CONTENT_LEN: usize = MAX_ENVELOPE_LEN - MAX_SEAL_OVERHEAD;

/// A 16-byte random message id.
pub type MessageId = [u8; MESSAGE_ID_LEN];

/// The checked envelope header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version (1).
    pub version: u32,
    /// Random message id.
    pub message_id: MessageId,
    /// Sender identity.
    pub sender: NodeId,
    /// Recipient identity.
    pub recipient: NodeId,
    /// Per-direction sequence number, from 1.
    pub sequence: u64,
    /// Sender's clock at sealing.
    pub created: UnixMillis,
    /// Precedence.
    pub precedence: Precedence,
    /// TLP label.
    pub tlp: Tlp,
    /// Content type registry value.
    pub content_type: u32,
    /// Suite registry value.
    pub suite: u32,
    /// Which recipient encryption key was used.
    pub recipient_key_id: [u8; KEY_ID_LEN],
    /// HPKE encapsulated key.
    pub enc: Bytes,
}

/// A structurally valid envelope (SPEC.md §7.6 steps 1–2 passed), with its exact bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    header: Header,
    header_bytes: Bytes,
    ciphertext: Bytes,
    signature: [u8; SIGNATURE_LEN],
    bytes: Bytes,
    sha256: [u8; 32],
}

/// Why envelope bytes could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not even a message id could be read: the receiver resets the stream with
    /// MALFORMED_FRAME (no receipt is possible).
    #[error("envelope unreadable")]
    Unreadable,
    /// The message id is known but the envelope is malformed: the receiver answers with a
    /// REJECTED receipt, reason MALFORMED.
    #[error("envelope malformed: {detail}")]
    Malformed {
        /// The message id found in the header.
        message_id: MessageId,
        /// The sequence found in the header (0 if none).
        sequence: u64,
        /// The sender bytes found in the header.
        sender: Bytes,
        /// What is wrong.
        detail: &'static str,
    },
}

/// A refusal of an envelope that parsed: the content of a REJECTED receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The reason from the registry.
    pub reason: RejectReason,
    /// A short explanation for people.
    pub detail: &'static str,
}

impl Rejection {
    pub(crate) fn new(reason: RejectReason, detail: &'static str) -> Self {
        Rejection { reason, detail }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// What the sender decides about a message before sealing it.
#[derive(Clone, Debug)]
pub struct SealParams<'a> {
    /// The recipient's identity.
    pub recipient: NodeId,
    /// The recipient's encryption key to use (see [`EncryptionKey::select`]).
    pub recipient_key: &'a EncryptionKey,
    /// Random message id.
    pub message_id: MessageId,
    /// Sequence number for this direction.
    pub sequence: u64,
    /// Now, by the sender's clock.
    pub created: UnixMillis,
    /// Precedence.
    pub precedence: Precedence,
    /// TLP label.
    pub tlp: Tlp,
}

/// Why sealing failed: always the caller's mistake, never the peer's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The recipient key does not belong to the recipient or is for another suite.
    #[error("recipient key does not belong to the recipient, or is not for suite 1")]
    WrongKey,
    /// The recipient key is not valid at `created`.
    #[error("recipient key is not valid now")]
    ExpiredKey,
    /// Sequence numbers start at 1.
    #[error("sequence numbers start at 1")]
    BadSequence,
    /// The sealed envelope would exceed the size limit.
    #[error("message too large: an envelope is at most 1 MiB")]
    TooLarge,
    /// HPKE failed (a low-order recipient key).
    #[error("HPKE encapsulation failed")]
    Hpke,
    /// The sealed envelope did not parse back: a bug in this crate, never the caller's input.
    #[error("internal error: the sealed envelope does not parse")]
    Internal,
}

impl Envelope {
    /// Seals `content` from `identity` (SPEC.md §7.2–7.3).
    pub fn seal(
        identity: &IdentityKey,
        params: &SealParams<'_>,
        content: &SignedContent,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, SealError> {
        let key = params.recipient_key;
        if key.owner() != params.recipient || key.suite() != crate::SUITE_V1_BASE {
            return Err(SealError::WrongKey);
        }
        if !key.valid_at(params.created) {
            return Err(SealError::ExpiredKey);
        }
        if params.sequence == 0 {
            return Err(SealError::BadSequence);
        }
        let mut hpke = HpkeSender::setup(key.public(), HPKE_INFO, rng).ok_or(SealError::Hpke)?;
        let enc = hpke.enc();
        let header = wire::EnvelopeHeader {
            version: crate::PROTOCOL_VERSION,
            message_id: Bytes::copy_from_slice(&params.message_id),
            sender: Bytes::copy_from_slice(identity.id().as_bytes()),
            recipient: Bytes::copy_from_slice(params.recipient.as_bytes()),
            sequence: params.sequence,
            created_ms: params.created,
            precedence: params.precedence.to_wire(),
            tlp: params.tlp.to_wire(),
            content_type: crate::CONTENT_TYPE_V1,
            suite: crate::SUITE_V1_BASE,
            recipient_key_id: Bytes::copy_from_slice(&key.id()),
            enc: Bytes::copy_from_slice(&enc),
        }
        .encode_to_vec();
        let ciphertext = hpke
            .seal(&header, content.as_bytes())
            .ok_or(SealError::Hpke)?;
        let signature = sign_envelope(identity, &header, &ciphertext);
        let bytes = wire::Envelope {
            header: header.into(),
            ciphertext: ciphertext.into(),
            signature: Bytes::copy_from_slice(&signature),
        }
        .encode_to_vec();
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(SealError::TooLarge);
        }
        // Parse what we built, so the sender holds exactly what a receiver will see.
        Envelope::parse(Bytes::from(bytes)).map_err(|_| SealError::Internal)
    }

    /// Parses envelope bytes (SPEC.md §7.6 steps 1–2): canonical encoding, field sizes and
    /// registry values. Does no cryptography.
    pub fn parse(bytes: Bytes) -> Result<Self, ParseError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(ParseError::Unreadable);
        }
        let outer = wire::Envelope::decode(bytes.clone()).map_err(|_| ParseError::Unreadable)?;
        // The message id, if any can be read, lets us answer with a REJECTED receipt.
        let loose = wire::EnvelopeHeader::decode(outer.header.clone())
            .map_err(|_| ParseError::Unreadable)?;
        let message_id: MessageId = loose
            .message_id
            .as_ref()
            .try_into()
            .map_err(|_| ParseError::Unreadable)?;
        let malformed = |detail| ParseError::Malformed {
            message_id,
            sequence: loose.sequence,
            sender: loose.sender.clone(),
            detail,
        };
        if canonical::decode::<wire::Envelope>(&bytes).is_none() {
            return Err(malformed("envelope not canonical"));
        }
        let h: wire::EnvelopeHeader =
            canonical::decode(&outer.header).ok_or_else(|| malformed("header not canonical"))?;
        let signature: [u8; SIGNATURE_LEN] = outer
            .signature
            .as_ref()
            .try_into()
            .map_err(|_| malformed("signature must be 64 bytes"))?;
        let sender = NodeId::from_bytes(&h.sender)
            .ok_or_else(|| malformed("sender is not a valid identity key"))?;
        let recipient = NodeId::from_bytes(&h.recipient)
            .ok_or_else(|| malformed("recipient is not a valid identity key"))?;
        if h.sequence == 0 {
            return Err(malformed("sequence must be at least 1"));
        }
        let precedence =
            Precedence::from_wire(h.precedence).ok_or_else(|| malformed("unknown precedence"))?;
        let tlp = Tlp::from_wire(h.tlp).ok_or_else(|| malformed("unknown TLP label"))?;
        let recipient_key_id: [u8; KEY_ID_LEN] = h
            .recipient_key_id
            .as_ref()
            .try_into()
            .map_err(|_| malformed("recipient_key_id must be 16 bytes"))?;
        if h.enc.is_empty() || h.enc.len() > 2048 {
            return Err(malformed("enc missing or longer than 2048 bytes"));
        }
        if outer.ciphertext.is_empty() {
            return Err(malformed("ciphertext missing"));
        }
        let sha256 = crypto::sha256(&bytes);
        Ok(Envelope {
            header: Header {
                version: h.version,
                message_id,
                sender,
                recipient,
                sequence: h.sequence,
                created: h.created_ms,
                precedence,
                tlp,
                content_type: h.content_type,
                suite: h.suite,
                recipient_key_id,
                enc: h.enc,
            },
            header_bytes: outer.header,
            ciphertext: outer.ciphertext,
            signature,
            bytes,
            sha256,
        })
    }

    /// Verifies and decrypts (SPEC.md §7.6 steps 3–12) for the node `me`, on the link to
    /// `peer`, at `now`, with `keys` (every encryption key pair `me` still holds).
    ///
    /// Replay and conflict (step 13) need the node's store and are the caller's job.
    pub fn open(
        &self,
        me: &NodeId,
        peer: &NodeId,
        keys: &[EncryptionKeypair],
        now: UnixMillis,
    ) -> Result<OpenedContent, Rejection> {
        self.verify(me, peer, now)?;
        self.decrypt(keys)
    }

    /// [`Envelope::open`], then the check a version 2 receiver adds (SPEC.md §7.6 step 12a):
    /// the officer key that signed the content is not one `peer` revoked with a cutoff at or
    /// before `created_ms` (REVOKED_KEY). `revocations` are those `peer` sent (others are
    /// ignored).
    pub fn open_checked(
        &self,
        me: &NodeId,
        peer: &NodeId,
        keys: &[EncryptionKeypair],
        now: UnixMillis,
        revocations: &[crate::revocation::Revocation],
    ) -> Result<OpenedContent, Rejection> {
        let content = self.open(me, peer, keys, now)?;
        crate::revocation::check_officer(
            revocations,
            peer,
            content.officer.officer_key(),
            self.header.created,
        )?;
        Ok(content)
    }

    /// Steps 3–7: version, sender, recipient, signature and age. Cheap checks first; the
    /// signature is the only expensive one.
    pub fn verify(&self, me: &NodeId, peer: &NodeId, now: UnixMillis) -> Result<(), Rejection> {
        use RejectReason as R;
        let h = &self.header;
        if h.version != crate::PROTOCOL_VERSION {
            return Err(Rejection::new(R::UnsupportedVersion, "version is not 1"));
        }
        if h.sender != *peer {
            return Err(Rejection::new(
                R::UnknownSender,
                "sender is not the peer of this link",
            ));
        }
        if h.recipient != *me {
            return Err(Rejection::new(
                R::WrongRecipient,
                "recipient is not this node",
            ));
        }
        if !verify_envelope_signature(
            &h.sender,
            &self.header_bytes,
            &self.ciphertext,
            &self.signature,
        ) {
            return Err(Rejection::new(
                R::BadSignature,
                "sender signature does not verify",
            ));
        }
        if h.created > now.saturating_add(MAX_FUTURE_SKEW) {
            return Err(Rejection::new(
                R::CreatedInFuture,
                "created more than 5 minutes in the future",
            ));
        }
        if h.created < now.saturating_sub(MAX_MESSAGE_AGE) {
            return Err(Rejection::new(R::TooOld, "created more than 30 days ago"));
        }
        Ok(())
    }

    /// Steps 8–12: suite, key, HPKE open, content and officer signature. Call only after
    /// [`Envelope::verify`] succeeded.
    pub fn decrypt(&self, keys: &[EncryptionKeypair]) -> Result<OpenedContent, Rejection> {
        use RejectReason as R;
        let h = &self.header;
        if h.suite != crate::SUITE_V1_BASE {
            return Err(Rejection::new(R::UnsupportedSuite, "suite is not 1"));
        }
        if h.content_type != crate::CONTENT_TYPE_V1 {
            return Err(Rejection::new(R::BadContent, "unknown content type"));
        }
        let key = keys
            .iter()
            .find(|k| {
                k.certificate.id() == h.recipient_key_id && k.certificate.owner() == h.recipient
            })
            .ok_or(Rejection::new(
                R::UnknownKey,
                "no encryption key with that id",
            ))?;
        if !key.certificate.valid_at(h.created) {
            return Err(Rejection::new(
                R::ExpiredKey,
                "encryption key not valid when the message was created",
            ));
        }
        if h.enc.len() != KEY_LEN {
            return Err(Rejection::new(R::CannotDecrypt, "enc is not 32 bytes"));
        }
        let plaintext = HpkeReceiver::setup(&key.secret, &h.enc, HPKE_INFO)
            .and_then(|mut r| r.open(&self.header_bytes, &self.ciphertext))
            .ok_or(Rejection::new(R::CannotDecrypt, "HPKE open failed"))?;
        OpenedContent::parse(
            &plaintext,
            &h.message_id,
            &h.sender,
            &h.recipient,
            h.created,
            h.precedence,
            h.tlp,
        )
        .map_err(|e| match e {
            crate::content::ContentError::Bad(d) => Rejection::new(R::BadContent, d),
            crate::content::ContentError::Officer(d) => Rejection::new(R::BadOfficerSignature, d),
        })
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The exact header bytes (the HPKE aad).
    pub fn header_bytes(&self) -> &Bytes {
        &self.header_bytes
    }
    /// The exact ciphertext.
    pub fn ciphertext(&self) -> &Bytes {
        &self.ciphertext
    }
    /// The sender's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }
    /// The exact encoded envelope.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// SHA-256 of [`Envelope::bytes`]: what receipts name.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }
    /// The message id.
    pub fn message_id(&self) -> &MessageId {
        &self.header.message_id
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Envelope(id={}, seq={}, {}, {} bytes)",
            crypto::hexs(&self.header.message_id),
            self.header.sequence,
            self.header.precedence.as_str(),
            self.bytes.len()
        )
    }
}

/// The two derived parts of the envelope signature input: `u32be(len(header))` and
/// `SHA-256(ciphertext)`. The signed bytes are `label || 0x00 || len || header || digest`.
fn signed_parts(header: &[u8], ciphertext: &[u8]) -> ([u8; 4], [u8; 32]) {
    // An envelope is at most 1 MiB, so the header length always fits in a u32.
    let len = u32::try_from(header.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    (len, crypto::sha256(ciphertext))
}

fn sign_envelope(identity: &IdentityKey, header: &[u8], ciphertext: &[u8]) -> [u8; SIGNATURE_LEN] {
    let (len, digest) = signed_parts(header, ciphertext);
    identity.sign(Label::Envelope, &[&len, header, &digest])
}

/// Checks the sender's signature on `header_bytes` and `ciphertext`.
pub(crate) fn verify_envelope_signature(
    sender: &NodeId,
    header: &[u8],
    ciphertext: &[u8],
    signature: &[u8],
) -> bool {
    let (len, digest) = signed_parts(header, ciphertext);
    sender.verify(Label::Envelope, &[&len, header, &digest], signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::TestRng;

    /// A content of [`MAX_CONTENT_LEN`] bytes seals even with every header field at its
    /// largest, and the real overhead stays under [`MAX_SEAL_OVERHEAD`].
    #[test]
    fn the_largest_accepted_content_always_fits_in_an_envelope() {
        let mut rng = TestRng::new(7);
        let sender = IdentityKey::generate(&mut rng);
        let recipient = IdentityKey::generate(&mut rng);
        let key = EncryptionKeypair::generate(&recipient, 0, u64::MAX, &mut rng);
        let content = SignedContent::from_bytes(vec![0xa5; MAX_CONTENT_LEN]);
        let params = SealParams {
            recipient: recipient.id(),
            recipient_key: &key.certificate,
            message_id: [0xff; MESSAGE_ID_LEN],
            sequence: u64::MAX,
            created: u64::MAX - 1,
            precedence: Precedence::Routine,
            tlp: Tlp::AmberStrict,
        };
        let env = Envelope::seal(&sender, &params, &content, &mut rng).expect("fits");
        let overhead = env.bytes().len() - MAX_CONTENT_LEN;
        assert!(overhead <= MAX_SEAL_OVERHEAD, "overhead {overhead}");
        assert!(
            overhead >= 250,
            "the bound is meant to be close: {overhead}"
        );
        // And just over the envelope limit, sealing refuses.
        let too_big = SignedContent::from_bytes(vec![0; MAX_ENVELOPE_LEN]);
        assert!(matches!(
            Envelope::seal(&sender, &params, &too_big, &mut rng),
            Err(SealError::TooLarge)
        ));
    }
}
