//! Node identities and encryption keys (SPEC.md §4).

use core::fmt;
use core::str::FromStr;

use bytes::Bytes;
use prost::Message;
use rand_core::CryptoRng;

use crate::canonical;
use crate::crypto::{self, KEY_LEN, Label, SecretAgreementKey, SecretSigningKey};
use crate::time::UnixMillis;
use crate::wire;

/// Length of an encryption key id.
pub const KEY_ID_LEN: usize = 16;
const TEXT_PREFIX: &str = "hl1";
const CHECKSUM_LEN: usize = 3;

/// A node's identity: its Ed25519 public key, checked to be a valid, non-weak point.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; KEY_LEN]);

impl NodeId {
    /// Checks `bytes` as an identity key: 32 bytes, a canonical point, not of small order.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        crypto::parse_public_key(bytes)?;
        Some(NodeId(bytes.try_into().ok()?))
    }

    /// The 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Strictly verifies a domain-separated signature by this identity.
    pub fn verify(&self, label: Label, parts: &[&[u8]], signature: &[u8]) -> bool {
        crypto::verify(&self.0, label, parts, signature)
    }

    /// A short fingerprint for people to compare by voice: the first 16 characters of the
    /// text form after the prefix, in groups of four.
    pub fn fingerprint(&self) -> String {
        let text = self.to_string();
        let body = &text[TEXT_PREFIX.len()..TEXT_PREFIX.len() + 16];
        body.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    fn checksum(key: &[u8; KEY_LEN]) -> [u8; CHECKSUM_LEN] {
        let d = crypto::sha256_parts(&[b"hotline/1 node-id", &[0], key]);
        [d[0], d[1], d[2]]
    }
}

impl fmt::Display for NodeId {
    /// `hl1` followed by unpadded lower-case base32 of the key and a 3-byte checksum.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; KEY_LEN + CHECKSUM_LEN];
        raw[..KEY_LEN].copy_from_slice(&self.0);
        raw[KEY_LEN..].copy_from_slice(&Self::checksum(&self.0));
        let enc = data_encoding::BASE32_NOPAD
            .encode(&raw)
            .to_ascii_lowercase();
        write!(f, "{TEXT_PREFIX}{enc}")
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Why a node id in text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeIdParseError {
    /// It does not start with `hl1`.
    #[error("a node id starts with \"hl1\"")]
    Prefix,
    /// It is not base32 of the right length.
    #[error("a node id is \"hl1\" followed by 56 base32 characters")]
    Encoding,
    /// The checksum does not match: probably a typing error.
    #[error("the node id's checksum does not match; check for a typing error")]
    Checksum,
    /// The key is not a valid identity key.
    #[error("the node id is not a valid Ed25519 identity key")]
    InvalidKey,
}

impl FromStr for NodeId {
    type Err = NodeIdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(TEXT_PREFIX)
            .ok_or(NodeIdParseError::Prefix)?;
        let upper = rest.to_ascii_uppercase();
        let raw = data_encoding::BASE32_NOPAD
            .decode(upper.as_bytes())
            .map_err(|_| NodeIdParseError::Encoding)?;
        if raw.len() != KEY_LEN + CHECKSUM_LEN {
            return Err(NodeIdParseError::Encoding);
        }
        let key: [u8; KEY_LEN] = raw[..KEY_LEN]
            .try_into()
            .map_err(|_| NodeIdParseError::Encoding)?;
        if raw[KEY_LEN..] != NodeId::checksum(&key) {
            return Err(NodeIdParseError::Checksum);
        }
        NodeId::from_bytes(&key).ok_or(NodeIdParseError::InvalidKey)
    }
}

/// A node's secret identity key with its public [`NodeId`].
pub struct IdentityKey {
    secret: SecretSigningKey,
    id: NodeId,
}

impl IdentityKey {
    /// Generates a new identity.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        loop {
            let secret = SecretSigningKey::generate(rng);
            // A random key is weak with negligible probability; loop rather than panic.
            if let Some(id) = NodeId::from_bytes(&secret.public()) {
                return IdentityKey { secret, id };
            }
        }
    }

    /// Rebuilds an identity from its seed; `None` if the seed gives a weak key.
    pub fn from_seed(seed: &[u8; KEY_LEN]) -> Option<Self> {
        let secret = SecretSigningKey::from_seed(seed);
        let id = NodeId::from_bytes(&secret.public())?;
        Some(IdentityKey { secret, id })
    }

    /// The seed, for the key file.
    pub fn dangerous_seed(&self) -> zeroize::Zeroizing<[u8; KEY_LEN]> {
        self.secret.dangerous_seed()
    }

    /// The public identity.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Signs `label || 0x00 || parts...`.
    pub fn sign(&self, label: Label, parts: &[&[u8]]) -> [u8; crypto::SIGNATURE_LEN] {
        self.secret.sign(label, parts)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.id)
    }
}

/// An encryption key id: SHA-256 of the X25519 public key, first 16 bytes.
pub fn key_id(public: &[u8; KEY_LEN]) -> [u8; KEY_ID_LEN] {
    let d = crypto::sha256(public);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&d[..KEY_ID_LEN]);
    id
}

/// A certified X25519 encryption key ([`wire::SignedEncryptionKey`]), checked.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey {
    owner: NodeId,
    suite: u32,
    public: [u8; KEY_LEN],
    not_before: UnixMillis,
    not_after: UnixMillis,
    raw: wire::SignedEncryptionKey,
}

/// Why an encryption key certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not canonical, or a field has the wrong length.
    #[error("malformed encryption key certificate")]
    Malformed,
    /// Signed by someone other than the expected owner, or the signature is invalid.
    #[error("encryption key certificate signature invalid or owner unexpected")]
    BadSignature,
    /// The validity interval is empty.
    #[error("encryption key validity interval is empty")]
    BadValidity,
}

impl EncryptionKey {
    /// Certifies `public` as `identity`'s encryption key for `[not_before, not_after]`.
    pub fn certify(
        identity: &IdentityKey,
        public: [u8; KEY_LEN],
        not_before: UnixMillis,
        not_after: UnixMillis,
    ) -> Self {
        let body = wire::EncryptionKeyBody {
            owner: Bytes::copy_from_slice(identity.id().as_bytes()),
            suite: crate::SUITE_V1_BASE,
            public_key: Bytes::copy_from_slice(&public),
            not_before_ms: not_before,
            not_after_ms: not_after,
        }
        .encode_to_vec();
        let signature = identity.sign(Label::EncryptionKey, &[&body]);
        EncryptionKey {
            owner: identity.id(),
            suite: crate::SUITE_V1_BASE,
            public,
            not_before,
            not_after,
            raw: wire::SignedEncryptionKey {
                body: body.into(),
                signature: Bytes::copy_from_slice(&signature),
            },
        }
    }

    /// Checks a certificate received on the wire; it must be signed by `expected_owner`.
    pub fn verify(
        raw: &wire::SignedEncryptionKey,
        expected_owner: &NodeId,
    ) -> Result<Self, KeyError> {
        let body: wire::EncryptionKeyBody =
            canonical::decode(&raw.body).ok_or(KeyError::Malformed)?;
        let owner = NodeId::from_bytes(&body.owner).ok_or(KeyError::Malformed)?;
        let public: [u8; KEY_LEN] = body
            .public_key
            .as_ref()
            .try_into()
            .map_err(|_| KeyError::Malformed)?;
        if raw.signature.len() != crypto::SIGNATURE_LEN {
            return Err(KeyError::Malformed);
        }
        if owner != *expected_owner
            || !owner.verify(Label::EncryptionKey, &[&raw.body], &raw.signature)
        {
            return Err(KeyError::BadSignature);
        }
        if body.not_after_ms <= body.not_before_ms {
            return Err(KeyError::BadValidity);
        }
        Ok(EncryptionKey {
            owner,
            suite: body.suite,
            public,
            not_before: body.not_before_ms,
            not_after: body.not_after_ms,
            raw: raw.clone(),
        })
    }

    /// The owner's identity.
    pub fn owner(&self) -> NodeId {
        self.owner
    }
    /// The suite this key is for.
    pub fn suite(&self) -> u32 {
        self.suite
    }
    /// The X25519 public key.
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }
    /// The key id used in envelope headers.
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        key_id(&self.public)
    }
    /// Start of validity.
    pub fn not_before(&self) -> UnixMillis {
        self.not_before
    }
    /// End of validity.
    pub fn not_after(&self) -> UnixMillis {
        self.not_after
    }
    /// Whether the key is valid at `t`.
    pub fn valid_at(&self, t: UnixMillis) -> bool {
        self.not_before <= t && t <= self.not_after
    }
    /// The signed wire form.
    pub fn to_wire(&self) -> wire::SignedEncryptionKey {
        self.raw.clone()
    }

    /// Of `keys`, the one a sender should use at `now`: valid now, suite 1, and the latest
    /// `not_before` (the newest key), ties broken by the later `not_after`.
    pub fn select(keys: &[EncryptionKey], now: UnixMillis) -> Option<&EncryptionKey> {
        keys.iter()
            .filter(|k| k.suite == crate::SUITE_V1_BASE && k.valid_at(now))
            .max_by_key(|k| (k.not_before, k.not_after))
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EncryptionKey(id={}, valid {}..={})",
            crypto::hexs(&self.id()),
            self.not_before,
            self.not_after
        )
    }
}

/// An encryption key pair: the secret X25519 key and its certificate.
pub struct EncryptionKeypair {
    /// The secret half.
    pub secret: SecretAgreementKey,
    /// The certificate.
    pub certificate: EncryptionKey,
}

impl EncryptionKeypair {
    /// Generates a key and certifies it with `identity` for `[not_before, not_after]`.
    pub fn generate(
        identity: &IdentityKey,
        not_before: UnixMillis,
        not_after: UnixMillis,
        rng: &mut impl CryptoRng,
    ) -> Self {
        let secret = SecretAgreementKey::generate(rng);
        let certificate = EncryptionKey::certify(identity, secret.public(), not_before, not_after);
        EncryptionKeypair {
            secret,
            certificate,
        }
    }
}

impl fmt::Debug for EncryptionKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKeypair({:?})", self.certificate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::TestRng;

    #[test]
    fn node_id_text_round_trips_and_catches_typos() {
        let key = IdentityKey::generate(&mut TestRng::new(1));
        let text = key.id().to_string();
        assert!(text.starts_with("hl1"));
        assert_eq!(text.len(), 3 + 56);
        assert_eq!(text.parse::<NodeId>(), Ok(key.id()));
        // Change one character: the checksum (or the key check) must catch it.
        let mut chars: Vec<char> = text.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(typo.parse::<NodeId>().is_err());
        assert_eq!("xx1abc".parse::<NodeId>(), Err(NodeIdParseError::Prefix));
        assert_eq!("hl1abc".parse::<NodeId>(), Err(NodeIdParseError::Encoding));
    }

    #[test]
    fn rejects_small_order_identity_key() {
        // The identity point (0, 1) encodes as 0x01 followed by zeros: weak.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        assert!(NodeId::from_bytes(&weak).is_none());
    }

    #[test]
    fn rejects_encryption_key_signed_by_another_identity() {
        let mut rng = TestRng::new(2);
        let a = IdentityKey::generate(&mut rng);
        let b = IdentityKey::generate(&mut rng);
        let k = EncryptionKeypair::generate(&a, 0, 1000, &mut rng);
        assert!(EncryptionKey::verify(&k.certificate.to_wire(), &a.id()).is_ok());
        assert_eq!(
            EncryptionKey::verify(&k.certificate.to_wire(), &b.id()),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let mut rng = TestRng::new(3);
        let id = IdentityKey::generate(&mut rng);
        let seed_hex = crypto::hexs(&*id.dangerous_seed());
        assert!(!format!("{id:?}").contains(&seed_hex));
        let k = EncryptionKeypair::generate(&id, 0, 1, &mut rng);
        let sk_hex = crypto::hexs(&*k.secret.dangerous_bytes());
        assert!(!format!("{k:?} {:?}", k.secret).contains(&sk_hex));
    }
}
