//! The peer bundle: what one node hands the other out of band (SPEC.md §4.4).
//!
//! A bundle is self-signed by the node's identity key and carries everything the other side
//! needs to pin it: the identity, the TLS certificate's SPKI hash, and the certified
//! encryption keys. Because it is self-signed, it proves possession of the identity key, not
//! who the node is: operators compare the fingerprint over a trusted channel (phone).

use core::fmt;

use bytes::Bytes;
use prost::Message;

use crate::canonical;
use crate::crypto::{Label, SIGNATURE_LEN};
use crate::identity::{EncryptionKey, IdentityKey, NodeId};
use crate::time::UnixMillis;
use crate::wire;

/// Longest node name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most encryption keys in a bundle or Hello.
pub const MAX_KEYS: usize = 4;
/// Most advisory addresses in a bundle.
pub const MAX_ADDRESSES: usize = 8;
/// Longest address string.
pub const MAX_ADDRESS_LEN: usize = 255;
/// Largest encoded bundle accepted.
pub const MAX_BUNDLE_LEN: usize = 8 * 1024;

const ARMOR_BEGIN: &str = "-----BEGIN HOTLINE PEER BUNDLE-----";
const ARMOR_END: &str = "-----END HOTLINE PEER BUNDLE-----";

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a bundle, not canonical, too large, or a field out of range.
    #[error("not a valid hotline peer bundle: {0}")]
    Malformed(&'static str),
    /// The self-signature or an encryption key certificate does not verify.
    #[error("the bundle's signature does not verify: it was altered or is not self-signed")]
    BadSignature,
    /// The bundle supports no protocol version this node speaks.
    #[error("the bundle supports no protocol version in common (this node speaks version 1)")]
    UnsupportedVersion,
}

/// A verified peer bundle.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerBundle {
    identity: NodeId,
    name: String,
    tls_spki_sha256: [u8; 32],
    encryption_keys: Vec<EncryptionKey>,
    addresses: Vec<String>,
    created: UnixMillis,
    bytes: Bytes,
}

impl PeerBundle {
    /// Creates and self-signs a bundle of a node that supports protocol versions 1 and 2.
    pub fn create(
        identity: &IdentityKey,
        name: &str,
        tls_spki_sha256: [u8; 32],
        encryption_keys: &[EncryptionKey],
        addresses: &[String],
        created: UnixMillis,
    ) -> Result<Self, BundleError> {
        let versions = [crate::PROTOCOL_VERSION, crate::PROTOCOL_VERSION_2];
        Self::create_for_versions(
            identity,
            name,
            tls_spki_sha256,
            encryption_keys,
            addresses,
            created,
            &versions,
        )
    }

    /// [`PeerBundle::create`] listing the protocol `versions` given (which must contain 1):
    /// for the test vectors, made by a version 1 node.
    pub fn create_for_versions(
        identity: &IdentityKey,
        name: &str,
        tls_spki_sha256: [u8; 32],
        encryption_keys: &[EncryptionKey],
        addresses: &[String],
        created: UnixMillis,
        versions: &[u32],
    ) -> Result<Self, BundleError> {
        let body = wire::BundleBody {
            version: crate::PROTOCOL_VERSION,
            identity: Bytes::copy_from_slice(identity.id().as_bytes()),
            name: name.to_owned(),
            tls_spki_sha256: Bytes::copy_from_slice(&tls_spki_sha256),
            encryption_keys: encryption_keys.iter().map(EncryptionKey::to_wire).collect(),
            addresses: addresses.to_vec(),
            created_ms: created,
            versions: versions.to_vec(),
        }
        .encode_to_vec();
        let signature = identity.sign(Label::Bundle, &[&body]);
        let bytes = wire::PeerBundle {
            body: body.into(),
            signature: Bytes::copy_from_slice(&signature),
        }
        .encode_to_vec();
        // Round-trip through the verifier so a bundle we create is one we would accept.
        Self::from_bytes(&bytes)
    }

    /// Verifies an encoded bundle (SPEC.md §4.4, steps in order).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(BundleError::Malformed("larger than 8 KiB"));
        }
        let outer: wire::PeerBundle =
            canonical::decode(bytes).ok_or(BundleError::Malformed("not a canonical PeerBundle"))?;
        let body: wire::BundleBody =
            canonical::decode(&outer.body).ok_or(BundleError::Malformed("body not canonical"))?;
        if body.version != crate::PROTOCOL_VERSION {
            return Err(BundleError::Malformed("bundle version is not 1"));
        }
        let identity = NodeId::from_bytes(&body.identity)
            .ok_or(BundleError::Malformed("identity key invalid"))?;
        if outer.signature.len() != SIGNATURE_LEN {
            return Err(BundleError::Malformed("signature length"));
        }
        if !identity.verify(Label::Bundle, &[&outer.body], &outer.signature) {
            return Err(BundleError::BadSignature);
        }
        if body.name.is_empty()
            || body.name.len() > MAX_NAME_LEN
            || body.name.chars().any(char::is_control)
        {
            return Err(BundleError::Malformed(
                "name must be 1..=64 bytes without control characters",
            ));
        }
        let tls_spki_sha256: [u8; 32] = body
            .tls_spki_sha256
            .as_ref()
            .try_into()
            .map_err(|_| BundleError::Malformed("tls_spki_sha256 length"))?;
        if body.encryption_keys.is_empty() || body.encryption_keys.len() > MAX_KEYS {
            return Err(BundleError::Malformed("must carry 1..=4 encryption keys"));
        }
        let encryption_keys = body
            .encryption_keys
            .iter()
            .map(|k| EncryptionKey::verify(k, &identity))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| BundleError::BadSignature)?;
        if body.addresses.len() > MAX_ADDRESSES
            || body.addresses.iter().any(|a| a.len() > MAX_ADDRESS_LEN)
        {
            return Err(BundleError::Malformed("too many or too long addresses"));
        }
        if !body.versions.contains(&crate::PROTOCOL_VERSION) {
            return Err(BundleError::UnsupportedVersion);
        }
        Ok(PeerBundle {
            identity,
            name: body.name,
            tls_spki_sha256,
            encryption_keys,
            addresses: body.addresses,
            created: body.created_ms,
            bytes: Bytes::copy_from_slice(bytes),
        })
    }

    /// The ASCII-armored form written to `DIR/bundle` (base64 between BEGIN/END lines).
    pub fn to_armored(&self) -> String {
        let b64 = data_encoding::BASE64.encode(&self.bytes);
        let mut out = String::with_capacity(b64.len() + 100);
        out.push_str(ARMOR_BEGIN);
        out.push('\n');
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(ARMOR_END);
        out.push('\n');
        out
    }

    /// Parses the armored form (or raw bytes) and verifies the bundle.
    pub fn from_armored(text: &[u8]) -> Result<Self, BundleError> {
        let Ok(s) = core::str::from_utf8(text) else {
            return Self::from_bytes(text);
        };
        let s = s.trim();
        let inner = s
            .strip_prefix(ARMOR_BEGIN)
            .and_then(|r| r.strip_suffix(ARMOR_END))
            .ok_or(BundleError::Malformed(
                "missing BEGIN/END HOTLINE PEER BUNDLE lines",
            ))?;
        // Capped while it is copied, so text of any length costs at most the cap.
        let mut b64 = String::new();
        for c in inner.chars().filter(|c| !c.is_whitespace()) {
            b64.push(c);
            if b64.len() > MAX_BUNDLE_LEN * 2 {
                return Err(BundleError::Malformed("larger than 8 KiB"));
            }
        }
        let bytes = data_encoding::BASE64
            .decode(b64.as_bytes())
            .map_err(|_| BundleError::Malformed("bad base64"))?;
        Self::from_bytes(&bytes)
    }

    /// The identity.
    pub fn identity(&self) -> NodeId {
        self.identity
    }
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// SHA-256 of the node's TLS SubjectPublicKeyInfo (the pin).
    pub fn tls_spki_sha256(&self) -> &[u8; 32] {
        &self.tls_spki_sha256
    }
    /// Certified encryption keys.
    pub fn encryption_keys(&self) -> &[EncryptionKey] {
        &self.encryption_keys
    }
    /// Advisory addresses.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }
    /// When the bundle was made.
    pub fn created(&self) -> UnixMillis {
        self.created
    }
    /// The exact encoded bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl fmt::Debug for PeerBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerBundle({} {})", self.name, self.identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::EncryptionKeypair;
    use crate::sim::TestRng;

    fn bundle() -> PeerBundle {
        let mut rng = TestRng::new(11);
        let id = IdentityKey::generate(&mut rng);
        let k = EncryptionKeypair::generate(&id, 0, 1_000_000, &mut rng);
        PeerBundle::create(
            &id,
            "CERT-A",
            [7; 32],
            &[k.certificate],
            &["127.0.0.1:4433".into()],
            5,
        )
        .unwrap()
    }

    #[test]
    fn armored_bundle_round_trips() {
        let b = bundle();
        let again = PeerBundle::from_armored(b.to_armored().as_bytes()).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let b = bundle();
        let bytes = b.bytes().to_vec();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            assert!(PeerBundle::from_bytes(&t).is_err(), "flip at {i} accepted");
        }
    }
}
