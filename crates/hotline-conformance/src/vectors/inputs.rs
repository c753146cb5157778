//! The inputs of the vectors: the cast's keys, derived from the seeds in `identity.json`,
//! and the inputs that the vector files carry only inside encoded bytes, never as a field of
//! their own. VECTORS.md ("Inputs the vector files do not spell out") lists the same values.

use hotline_protocol::content::{Precedence, Tlp};
use hotline_protocol::crypto::{SecretAgreementKey, SecretSigningKey};
use hotline_protocol::hello::Offer;
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use hotline_protocol::officer::{Credential, OfficerKey, Role};

use super::committed::Committed;

const ID: &str = "identity.json";

/// Validity of node B's expired encryption key (`node_b_expired_encryption_key`).
pub const EXPIRED_KEY_NOT_BEFORE_MS: u64 = 1_761_177_600_000;
/// See [`EXPIRED_KEY_NOT_BEFORE_MS`].
pub const EXPIRED_KEY_NOT_AFTER_MS: u64 = 1_792_713_600_000;
/// Validity of both officer credentials (role OFFICER).
pub const OFFICER_NOT_BEFORE_MS: u64 = 1_793_145_600_000;
/// See [`OFFICER_NOT_BEFORE_MS`].
pub const OFFICER_NOT_AFTER_MS: u64 = 1_824_681_600_000;
/// Node B's bundle: name.
pub const BUNDLE_NAME: &str = "CERT-B";
/// Node B's bundle: SHA-256 of the placeholder string
/// `node B TLS SubjectPublicKeyInfo (placeholder DER)`.
pub const BUNDLE_TLS_SPKI_SHA256: &str =
    "7e2f9fb03729429d73c56a3ade8463a53efa51cf61e2b8fcd5cb9fd8dd2b7281";
/// Node B's bundle: addresses.
pub const BUNDLE_ADDRESS: &str = "hotline.cert-b.example:4433";
/// Node B's bundle: created_ms.
pub const BUNDLE_CREATED_MS: u64 = 1_795_737_600_000;
/// Hello `max_inflight` of both nodes.
pub const HELLO_MAX_INFLIGHT: u32 = 256;
/// The envelope's precedence.
pub const ENVELOPE_PRECEDENCE: Precedence = Precedence::Flash;
/// The envelope's TLP.
pub const ENVELOPE_TLP: Tlp = Tlp::AmberStrict;
/// DELIVERED and REJECTED receipts: time_ms.
pub const RECEIPT_TIME_MS: u64 = 1_795_737_601_000;
/// ACKNOWLEDGED receipt: time_ms, and the acknowledgement's time_ms.
pub const ACK_TIME_MS: u64 = 1_795_737_660_000;
/// ACKNOWLEDGED receipt: the officer's note.
pub const ACK_NOTE: &str = "Blocked. Thank you.";
/// REJECTED receipt: reason POLICY and this detail.
pub const REJECT_DETAIL: &str = "refused by local policy";
/// Heartbeat fields: ping, echo, time_ms, last_sequence_sent, received_through.
pub const HEARTBEAT: [u64; 5] = [3, 0, 1_795_737_600_000, 7, 5];
/// Close frame: code SHUTDOWN (0x0C) and this reason.
pub const CLOSE_REASON: &str = "node shutting down";

/// The keys of the cast, derived from the seeds in `identity.json`.
pub struct Keys {
    /// Node A.
    pub a: IdentityKey,
    /// Node B.
    pub b: IdentityKey,
    /// B's current encryption key with its certificate, then its expired one.
    pub b_keys: Vec<EncryptionKeypair>,
    /// B's officer.
    pub b_officer: OfficerKey,
    /// A's officer credential.
    pub a_officer: Credential,
    /// A's officer, with that credential (`officer_v2.json` signs with it).
    pub a_officer_key: OfficerKey,
}

impl Keys {
    /// Derives the keys from the seeds and validity times.
    pub fn load(c: &Committed) -> Result<Self, String> {
        let node = |n: &str| {
            IdentityKey::from_seed(&c.bytes32(ID, &format!("{n}.seed"))?)
                .ok_or_else(|| format!("the seed of {n} gives a weak key"))
        };
        let (a, b) = (node("node_a")?, node("node_b")?);
        let current = SecretAgreementKey::derive(&c.bytes(ID, "node_b_encryption_key.ikm")?);
        let cert = EncryptionKey::certify(
            &b,
            current.public(),
            c.u64(ID, "node_b_encryption_key.not_before_ms")?,
            c.u64(ID, "node_b_encryption_key.not_after_ms")?,
        );
        let old = SecretAgreementKey::derive(&c.bytes(ID, "node_b_expired_encryption_key.ikm")?);
        let old_cert = EncryptionKey::certify(
            &b,
            old.public(),
            EXPIRED_KEY_NOT_BEFORE_MS,
            EXPIRED_KEY_NOT_AFTER_MS,
        );
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
        let credential =
            |node: &IdentityKey, who: &str| -> Result<(Credential, [u8; 32]), String> {
                let seed = c.bytes32(ID, &format!("{who}.seed"))?;
                let cred = Credential::issue(
                    node,
                    SecretSigningKey::from_seed(&seed).public(),
                    c.str(ID, &format!("{who}.name"))?,
                    Role::Officer,
                    OFFICER_NOT_BEFORE_MS,
                    OFFICER_NOT_AFTER_MS,
                )
                .map_err(|e| format!("{who}: cannot issue the credential: {e}"))?;
                Ok((cred, seed))
            };
        let (a_officer, a_seed) = credential(&a, "node_a_officer")?;
        let a_officer_key = OfficerKey::from_parts(&a_seed, a_officer.clone())
            .map_err(|e| format!("node_a_officer: {e}"))?;
        let (b_cred, b_seed) = credential(&b, "node_b_officer")?;
        let b_officer =
            OfficerKey::from_parts(&b_seed, b_cred).map_err(|e| format!("node_b_officer: {e}"))?;
        Ok(Keys {
            a,
            b,
            b_keys,
            b_officer,
            a_officer,
            a_officer_key,
        })
    }

    /// B's current encryption key certificate.
    pub fn b_cert(&self) -> &EncryptionKey {
        &self.b_keys[0].certificate
    }
}

/// The Offer both nodes make in `hello.json` (and the receiver's in `negative.json`): version
/// 1 only. It is not `Offer::default()`, which also offers version 2.
pub fn offer() -> Offer {
    Offer {
        versions: vec![hotline_protocol::PROTOCOL_VERSION],
        suites: vec![hotline_protocol::SUITE_V1_BASE],
        max_inflight: HELLO_MAX_INFLIGHT,
    }
}

/// The Offer both nodes make in `key_update.json` (`hello_v2`): versions 1 and 2.
pub fn offer_v2() -> Offer {
    Offer {
        versions: vec![
            hotline_protocol::PROTOCOL_VERSION,
            hotline_protocol::PROTOCOL_VERSION_2,
        ],
        ..offer()
    }
}
