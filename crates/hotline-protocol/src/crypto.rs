//! The one module that touches cryptographic primitives (SPEC.md §5.4, §7.2).
//!
//! Everything above this module speaks in terms of labels, byte strings and keys; nothing
//! else in the crate calls ed25519-dalek, hpke or sha2 directly. That keeps the suite in one
//! place, so a fuzz build or a future national-algorithm suite changes one file.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// Length of an Ed25519 public key, signature seed, and X25519 key.
pub const KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;
/// HPKE `info` for envelope content (SPEC.md §7.2), byte for byte.
pub const HPKE_INFO: &[u8] = b"hotline/1 envelope";

/// The domain-separation labels of every signature in the protocol (SPEC.md §5.4).
///
/// A signature over `label || 0x00 || data` can never be replayed as a signature of
/// another kind, because no label is a prefix of another once the 0x00 is appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Label {
    /// Peer bundle body.
    Bundle,
    /// Encryption key certificate body.
    EncryptionKey,
    /// Hello (channel binding).
    Hello,
    /// Envelope header and ciphertext digest.
    Envelope,
    /// Receipt body.
    Receipt,
    /// Operator credential body, signed by the node.
    OfficerCredential,
    /// A duty officer's signature on a message body.
    OfficerMessage,
    /// A duty officer's acknowledgement.
    OfficerAck,
    /// A duty officer's signature on a message body, binding also the credential it was made
    /// under and the message's precedence and TLP (SPEC.md §7.5, version 2).
    OfficerMessageV2,
    /// A duty officer's acknowledgement, binding also the credential (SPEC.md §8.3, version 2).
    OfficerAckV2,
    /// A node's revocation of one of its officers' keys (SPEC.md §4.6, version 2).
    KeyRevocation,
    /// A duty officer's key request: proof that the requester holds the officer key
    /// (SPEC.md §15.2.5). Signed on the officer's machine; never seen by a peer.
    OfficerRequest,
}

impl Label {
    /// The ASCII label.
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Label::Bundle => b"hotline/1 bundle",
            Label::EncryptionKey => b"hotline/1 encryption-key",
            Label::Hello => b"hotline/1 hello",
            Label::Envelope => b"hotline/1 envelope",
            Label::Receipt => b"hotline/1 receipt",
            Label::OfficerCredential => b"hotline/1 officer-credential",
            Label::OfficerMessage => b"hotline/1 officer-message",
            Label::OfficerAck => b"hotline/1 officer-ack",
            Label::OfficerRequest => b"hotline/1 officer-request",
            Label::OfficerMessageV2 => b"hotline/2 officer-message",
            Label::OfficerAckV2 => b"hotline/2 officer-ack",
            Label::KeyRevocation => b"hotline/2 key-revocation",
        }
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::digest(data).into()
}

/// SHA-256 over several parts, as if concatenated.
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Builds the to-be-signed bytes `label || 0x00 || parts...`.
pub fn tbs(label: Label, parts: &[&[u8]]) -> Vec<u8> {
    let len = label.as_bytes().len() + 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(label.as_bytes());
    out.push(0);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// An Ed25519 signing key. Zeroized on drop; `Debug` prints only the public half.
pub struct SecretSigningKey(SigningKey);

impl SecretSigningKey {
    /// Generates a key from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        SecretSigningKey(SigningKey::generate(rng))
    }

    /// Rebuilds a key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Self {
        SecretSigningKey(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for writing a key file. Wrapped so it is zeroized after use.
    pub fn dangerous_seed(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key.
    pub fn public(&self) -> [u8; KEY_LEN] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs `label || 0x00 || parts...`.
    pub fn sign(&self, label: Label, parts: &[&[u8]]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(&tbs(label, parts)).to_bytes()
    }
}

impl core::fmt::Debug for SecretSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretSigningKey(public={})", hexs(&self.public()))
    }
}

/// Parses an Ed25519 public key (SPEC.md §4.1): the 32 bytes must decode to a curve point,
/// be its canonical encoding (re-encoding gives the same bytes; this refuses y ≥ p), and
/// not be of small order ("weak"), which would let one signature verify for many messages.
pub fn parse_public_key(bytes: &[u8]) -> Option<VerifyingKey> {
    let arr: &[u8; KEY_LEN] = bytes.try_into().ok()?;
    let key = VerifyingKey::from_bytes(arr).ok()?;
    if key.is_weak() || key.to_edwards().compress().to_bytes() != *arr {
        return None;
    }
    Some(key)
}

/// Strict Ed25519 verification of `signature` over raw `message` (SPEC.md §5.5).
///
/// Rejects small-order public keys and R, non-canonical S (S ≥ L) and non-canonical point
/// encodings. This is the single verification entry point of the crate; the Wycheproof
/// suite runs through it.
pub fn verify_strict_raw(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Some(key) = parse_public_key(public_key) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(message, &sig).is_ok()
}

/// Strict verification of a domain-separated signature `label || 0x00 || parts...`.
pub fn verify(public_key: &[u8], label: Label, parts: &[&[u8]], signature: &[u8]) -> bool {
    verify_strict_raw(public_key, &tbs(label, parts), signature)
}

/// An X25519 secret key. Zeroized on drop; `Debug` prints only the public half.
pub struct SecretAgreementKey {
    sk: <HpkeKem as hpke::Kem>::PrivateKey,
    pk: [u8; KEY_LEN],
}

impl SecretAgreementKey {
    /// Generates a key from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let (sk, pk) = HpkeKem::gen_keypair_with_rng(rng);
        SecretAgreementKey {
            sk,
            pk: pk.to_bytes().into(),
        }
    }

    /// HPKE DeriveKeyPair(ikm) (RFC 9180 §7.1.3), for test vectors.
    pub fn derive(ikm: &[u8]) -> Self {
        let (sk, pk) = HpkeKem::derive_keypair(ikm);
        SecretAgreementKey {
            sk,
            pk: pk.to_bytes().into(),
        }
    }

    /// Rebuilds a key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Option<Self> {
        let sk = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(bytes).ok()?;
        let pk = HpkeKem::sk_to_pk(&sk);
        Some(SecretAgreementKey {
            sk,
            pk: pk.to_bytes().into(),
        })
    }

    /// The 32 secret bytes, for writing a key file.
    pub fn dangerous_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.sk.to_bytes().into())
    }

    /// The X25519 public key.
    pub fn public(&self) -> [u8; KEY_LEN] {
        self.pk
    }
}

impl core::fmt::Debug for SecretAgreementKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretAgreementKey(public={})", hexs(&self.pk))
    }
}

/// X25519 key agreement (RFC 7748) with the all-zero check of RFC 9180 §7.1.4: a
/// low-order peer key that forces the all-zero shared secret is refused.
pub fn x25519(secret: &[u8; KEY_LEN], public: &[u8; KEY_LEN]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let sk = x25519_dalek::StaticSecret::from(*secret);
    let pk = x25519_dalek::PublicKey::from(*public);
    let shared = sk.diffie_hellman(&pk);
    if !shared.was_contributory() {
        return None;
    }
    Some(Zeroizing::new(shared.to_bytes()))
}

/// ChaCha20-Poly1305 (RFC 8439) decryption of `ct || tag`: the AEAD that suite 1 uses
/// inside HPKE. Exposed so the third-party AEAD vectors test the same primitive.
pub fn aead_open(key: &[u8], nonce: &[u8], aad: &[u8], ct_and_tag: &[u8]) -> Option<Vec<u8>> {
    use chacha20poly1305::{
        ChaCha20Poly1305, KeyInit,
        aead::{Aead, Payload},
    };
    let cipher = ChaCha20Poly1305::new_from_slice(key).ok()?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    cipher
        .decrypt(
            &nonce.into(),
            Payload {
                msg: ct_and_tag,
                aad,
            },
        )
        .ok()
}

/// An HPKE sender context (RFC 9180 base mode, suite 1).
pub struct HpkeSender {
    ctx: hpke::aead::AeadCtxS<HpkeAead, HpkeKdf, HpkeKem>,
    enc: [u8; KEY_LEN],
}

impl HpkeSender {
    /// SetupBaseS(pkR, info) with an ephemeral key from `rng`.
    pub fn setup(recipient: &[u8; KEY_LEN], info: &[u8], rng: &mut impl CryptoRng) -> Option<Self> {
        let pk = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(recipient).ok()?;
        let (enc, ctx) = hpke::setup_sender_with_rng::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeS::Base,
            &pk,
            info,
            rng,
        )
        .ok()?;
        Some(HpkeSender {
            ctx,
            enc: enc.to_bytes().into(),
        })
    }

    /// The encapsulated key `enc`.
    pub fn enc(&self) -> [u8; KEY_LEN] {
        self.enc
    }

    /// Seal(aad, pt) at the context's next sequence number.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        self.ctx.seal(plaintext, aad).ok()
    }

    /// Export(exporter_context, len).
    pub fn export(&self, context: &[u8], len: usize) -> Option<Vec<u8>> {
        let mut out = vec![0u8; len];
        self.ctx.export(context, &mut out).ok()?;
        Some(out)
    }
}

/// An HPKE receiver context (RFC 9180 base mode, suite 1).
pub struct HpkeReceiver {
    ctx: hpke::aead::AeadCtxR<HpkeAead, HpkeKdf, HpkeKem>,
}

impl HpkeReceiver {
    /// SetupBaseR(enc, skR, info). Fails on a malformed or low-order `enc`.
    pub fn setup(key: &SecretAgreementKey, enc: &[u8], info: &[u8]) -> Option<Self> {
        let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(enc).ok()?;
        let ctx =
            hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(&OpModeR::Base, &key.sk, &enc, info)
                .ok()?;
        Some(HpkeReceiver { ctx })
    }

    /// Open(aad, ct) at the context's next sequence number.
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        self.ctx.open(ciphertext, aad).ok()
    }

    /// Export(exporter_context, len).
    pub fn export(&self, context: &[u8], len: usize) -> Option<Vec<u8>> {
        let mut out = vec![0u8; len];
        self.ctx.export(context, &mut out).ok()?;
        Some(out)
    }
}

/// Lower-case hex, for `Debug` output of public values.
pub(crate) fn hexs(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Label; 12] = [
        Label::Bundle,
        Label::EncryptionKey,
        Label::Hello,
        Label::Envelope,
        Label::Receipt,
        Label::OfficerCredential,
        Label::OfficerMessage,
        Label::OfficerAck,
        Label::OfficerRequest,
        Label::OfficerMessageV2,
        Label::OfficerAckV2,
        Label::KeyRevocation,
    ];

    /// No tbs of one kind is a tbs of another: labels hold no 0x00 and none, with the 0x00
    /// appended, is a prefix of another (SPEC.md §5.4).
    #[test]
    fn labels_are_distinct_and_prefix_free() {
        for a in ALL {
            assert!(!a.as_bytes().contains(&0), "{a:?}");
            assert!(
                a.as_bytes().starts_with(b"hotline/1 ") || a.as_bytes().starts_with(b"hotline/2 "),
                "{a:?}"
            );
            for b in ALL {
                if a != b {
                    assert!(!tbs(b, &[]).starts_with(&tbs(a, &[])), "{a:?} / {b:?}");
                }
            }
        }
    }

    #[test]
    fn officer_request_label_is_the_one_the_spec_names() {
        assert_eq!(
            tbs(Label::OfficerRequest, &[b"x"]),
            b"hotline/1 officer-request\0x".to_vec()
        );
        assert_eq!(Label::OfficerRequest.as_bytes().len(), 25);
    }

    #[test]
    fn a_request_signature_is_not_a_message_signature() {
        let key = SecretSigningKey::from_seed(&[7; KEY_LEN]);
        let sig = key.sign(Label::OfficerRequest, &[b"body"]);
        assert!(verify(
            &key.public(),
            Label::OfficerRequest,
            &[b"body"],
            &sig
        ));
        assert!(!verify(
            &key.public(),
            Label::OfficerMessage,
            &[b"body"],
            &sig
        ));
    }
}
