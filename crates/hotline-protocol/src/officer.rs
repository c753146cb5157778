//! Duty-officer credentials and signatures (SPEC.md §4.5, §7.5, §8.3).
//!
//! A node certifies each operator's own Ed25519 key with a credential. Messages an officer
//! sends and acknowledgements an officer makes carry that officer's signature, so a receipt
//! names the person, and the node alone cannot forge an officer's acknowledgement.

use core::fmt;

use bytes::Bytes;
use prost::Message;
use rand_core::CryptoRng;

use crate::canonical;
use crate::crypto::{self, KEY_LEN, Label, SIGNATURE_LEN, SecretSigningKey};
use crate::identity::{IdentityKey, NodeId};
use crate::time::UnixMillis;
use crate::wire;

/// Credential signatures already verified, by digest (see [`verified_before_or_now`]).
static VERIFIED: std::sync::Mutex<Option<std::collections::HashSet<[u8; 32]>>> =
    std::sync::Mutex::new(None);

/// How many verified credential digests are remembered before the memory is cleared.
const VERIFIED_CAP: usize = 1024;

/// Whether `raw`'s signature by `node` verifies (strict Ed25519). A node's officers are few and
/// every message carries one of their credentials, so verifying each credential once per
/// process saves one signature verification per message on both ends. The memory holds the
/// SHA-256 of (issuer, body, signature) of credentials that verified: a hit means these exact
/// bytes verified before under this exact key, so the answer cannot differ. Expiry and role are
/// checked by the callers at every use, never remembered.
fn verified_before_or_now(node: &NodeId, raw: &wire::OfficerCredential) -> bool {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(node.as_bytes());
    h.update((raw.body.len() as u64).to_be_bytes());
    h.update(&raw.body);
    h.update(&raw.signature);
    let digest: [u8; 32] = h.finalize().into();
    let known = |d: &[u8; 32]| {
        VERIFIED
            .lock()
            .map(|g| g.as_ref().is_some_and(|s| s.contains(d)))
            .unwrap_or(false)
    };
    if known(&digest) {
        return true;
    }
    if !node.verify(Label::OfficerCredential, &[&raw.body], &raw.signature) {
        return false;
    }
    if let Ok(mut g) = VERIFIED.lock() {
        let set = g.get_or_insert_with(Default::default);
        if set.len() >= VERIFIED_CAP {
            set.clear();
        }
        set.insert(digest);
    }
    true
}

/// Longest operator name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest acknowledgement note, in bytes.
pub const MAX_NOTE_LEN: usize = 1024;

/// What an operator may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads, sends and acknowledges.
    Officer,
}

impl Role {
    fn to_wire(self) -> wire::Role {
        match self {
            Role::Viewer => wire::Role::Viewer,
            Role::Officer => wire::Role::Officer,
        }
    }
    fn from_wire(v: i32) -> Option<Self> {
        match wire::Role::try_from(v).ok()? {
            wire::Role::Viewer => Some(Role::Viewer),
            wire::Role::Officer => Some(Role::Officer),
            wire::Role::Unspecified => None,
        }
    }
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Officer => "officer",
        }
    }
}

/// Why a credential or officer signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Not canonical, or a field is out of range.
    #[error("malformed operator credential")]
    Malformed,
    /// Not issued by the expected node, or its signature is invalid.
    #[error("operator credential not issued by the expected node")]
    WrongIssuer,
    /// Not valid at the time in question.
    #[error("operator credential not valid at that time")]
    NotValid,
    /// The role does not allow the action.
    #[error("operator role does not allow this")]
    Role,
    /// The officer's own signature does not verify.
    #[error("officer signature invalid")]
    BadSignature,
}

/// A checked operator credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    node: NodeId,
    officer_key: [u8; KEY_LEN],
    name: String,
    role: Role,
    not_before: UnixMillis,
    not_after: UnixMillis,
    raw: wire::OfficerCredential,
}

impl Credential {
    /// Issues a credential for `officer_key` signed by `node`.
    pub fn issue(
        node: &IdentityKey,
        officer_key: [u8; KEY_LEN],
        name: &str,
        role: Role,
        not_before: UnixMillis,
        not_after: UnixMillis,
    ) -> Result<Self, CredentialError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN || not_after <= not_before {
            return Err(CredentialError::Malformed);
        }
        crypto::parse_public_key(&officer_key).ok_or(CredentialError::Malformed)?;
        let body = wire::CredentialBody {
            node: Bytes::copy_from_slice(node.id().as_bytes()),
            officer_key: Bytes::copy_from_slice(&officer_key),
            name: name.to_owned(),
            role: role.to_wire() as i32,
            not_before_ms: not_before,
            not_after_ms: not_after,
        }
        .encode_to_vec();
        let signature = node.sign(Label::OfficerCredential, &[&body]);
        Ok(Credential {
            node: node.id(),
            officer_key,
            name: name.to_owned(),
            role,
            not_before,
            not_after,
            raw: wire::OfficerCredential {
                body: body.into(),
                signature: Bytes::copy_from_slice(&signature),
            },
        })
    }

    /// Checks a credential; it must be issued by `issuer`.
    pub fn verify(raw: &wire::OfficerCredential, issuer: &NodeId) -> Result<Self, CredentialError> {
        let body: wire::CredentialBody =
            canonical::decode(&raw.body).ok_or(CredentialError::Malformed)?;
        let node = NodeId::from_bytes(&body.node).ok_or(CredentialError::Malformed)?;
        crypto::parse_public_key(&body.officer_key).ok_or(CredentialError::Malformed)?;
        let officer_key: [u8; KEY_LEN] = body
            .officer_key
            .as_ref()
            .try_into()
            .map_err(|_| CredentialError::Malformed)?;
        let role = Role::from_wire(body.role).ok_or(CredentialError::Malformed)?;
        if body.name.is_empty()
            || body.name.len() > MAX_NAME_LEN
            || body.not_after_ms <= body.not_before_ms
            || raw.signature.len() != SIGNATURE_LEN
        {
            return Err(CredentialError::Malformed);
        }
        if node != *issuer || !verified_before_or_now(&node, raw) {
            return Err(CredentialError::WrongIssuer);
        }
        Ok(Credential {
            node,
            officer_key,
            name: body.name,
            role,
            not_before: body.not_before_ms,
            not_after: body.not_after_ms,
            raw: raw.clone(),
        })
    }

    /// The issuing node.
    pub fn node(&self) -> NodeId {
        self.node
    }
    /// The officer's public key.
    pub fn officer_key(&self) -> &[u8; KEY_LEN] {
        &self.officer_key
    }
    /// The officer's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Start of validity.
    pub fn not_before(&self) -> UnixMillis {
        self.not_before
    }
    /// End of validity.
    pub fn not_after(&self) -> UnixMillis {
        self.not_after
    }
    /// Whether valid at `t`.
    pub fn valid_at(&self, t: UnixMillis) -> bool {
        self.not_before <= t && t <= self.not_after
    }
    /// The signed wire form.
    pub fn to_wire(&self) -> wire::OfficerCredential {
        self.raw.clone()
    }

    /// Checks that this credential lets its holder act as an officer at `t`.
    pub fn check_officer_at(&self, t: UnixMillis) -> Result<(), CredentialError> {
        if !self.valid_at(t) {
            return Err(CredentialError::NotValid);
        }
        if self.role != Role::Officer {
            return Err(CredentialError::Role);
        }
        Ok(())
    }

    /// Verifies the officer's signature on a message body by the version 1 rule (the body
    /// only).
    pub fn verify_message(&self, body: &[u8], signature: &[u8]) -> bool {
        crypto::verify(
            &self.officer_key,
            Label::OfficerMessage,
            &[&crypto::sha256(body)],
            signature,
        )
    }

    /// SHA-256 of this credential's canonical `OfficerCredential` encoding: what a version 2
    /// officer signature binds (SPEC.md §7.5).
    pub fn sha256(&self) -> [u8; 32] {
        crypto::sha256(&self.raw.encode_to_vec())
    }

    /// Verifies the officer's signature on a message body whose envelope says `marking`: by
    /// the version 2 rule (body, this credential, precedence and TLP), else by the version 1
    /// rule (body only). Which rule held; `None` if neither.
    pub fn verify_message_marked(
        &self,
        body: &[u8],
        marking: Marking,
        signature: &[u8],
    ) -> Option<Binding> {
        if crypto::verify(
            &self.officer_key,
            Label::OfficerMessageV2,
            &message_v2_parts(&crypto::sha256(body), &self.sha256(), &marking.bytes()),
            signature,
        ) {
            Some(Binding::Marked)
        } else if self.verify_message(body, signature) {
            Some(Binding::BodyOnly)
        } else {
            None
        }
    }

    /// Verifies the officer's acknowledgement signature, by either rule (SPEC.md §8.3).
    pub fn verify_ack(
        &self,
        message_id: &[u8; 16],
        envelope_sha256: &[u8; 32],
        time_ms: UnixMillis,
        note: &str,
        signature: &[u8],
    ) -> bool {
        self.verify_ack_binding(message_id, envelope_sha256, time_ms, note, signature)
            .is_some()
    }

    /// Verifies the officer's acknowledgement signature by the version 2 rule (which binds this
    /// credential too), else by the version 1 rule. Which rule held; `None` if neither.
    pub fn verify_ack_binding(
        &self,
        message_id: &[u8; 16],
        envelope_sha256: &[u8; 32],
        time_ms: UnixMillis,
        note: &str,
        signature: &[u8],
    ) -> Option<Binding> {
        let (t, n) = (time_ms.to_be_bytes(), crypto::sha256(note.as_bytes()));
        let v1 = ack_parts(message_id, envelope_sha256, &t, &n);
        let cred = self.sha256();
        let v2 = [v1[0], v1[1], v1[2], v1[3], &cred[..]];
        if crypto::verify(&self.officer_key, Label::OfficerAckV2, &v2, signature) {
            Some(Binding::Marked)
        } else if crypto::verify(&self.officer_key, Label::OfficerAck, &v1, signature) {
            Some(Binding::BodyOnly)
        } else {
            None
        }
    }
}

/// What an officer's signature binds (SPEC.md §7.5, §8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Version 1: the message body (or the acknowledged envelope), not the credential it was
    /// made under nor the message's precedence and TLP.
    BodyOnly,
    /// Version 2: also the SHA-256 of the credential, and for a message its precedence and TLP.
    Marked,
}

impl Binding {
    /// For people and JSON: `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::BodyOnly => "v1",
            Binding::Marked => "v2",
        }
    }
}

/// A message's precedence and TLP as its envelope header states them (their registry values,
/// SPEC.md §12.8), which a version 2 officer signature binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marking {
    /// `Precedence` value, 1..=4.
    pub precedence: u8,
    /// `Tlp` value, 1..=5.
    pub tlp: u8,
}

impl Marking {
    fn bytes(self) -> [u8; 2] {
        [self.precedence, self.tlp]
    }
}

fn message_v2_parts<'a>(
    body: &'a [u8; 32],
    credential: &'a [u8; 32],
    marking: &'a [u8; 2],
) -> [&'a [u8]; 3] {
    [body, credential, marking]
}

fn ack_parts<'a>(
    m: &'a [u8; 16],
    e: &'a [u8; 32],
    t: &'a [u8; 8],
    n: &'a [u8; 32],
) -> [&'a [u8]; 4] {
    [m, e, t, n]
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credential({} {} of {})",
            self.role.as_str(),
            self.name,
            self.node
        )
    }
}

/// An operator's secret key with the credential that certifies it.
pub struct OfficerKey {
    secret: SecretSigningKey,
    credential: Credential,
}

impl OfficerKey {
    /// Generates an operator key and has `node` issue its credential.
    pub fn generate(
        node: &IdentityKey,
        name: &str,
        role: Role,
        not_before: UnixMillis,
        not_after: UnixMillis,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, CredentialError> {
        let secret = SecretSigningKey::generate(rng);
        let credential =
            Credential::issue(node, secret.public(), name, role, not_before, not_after)?;
        Ok(OfficerKey { secret, credential })
    }

    /// Rebuilds an operator key from its seed and credential; the credential must certify
    /// this key.
    pub fn from_parts(
        seed: &[u8; KEY_LEN],
        credential: Credential,
    ) -> Result<Self, CredentialError> {
        let secret = SecretSigningKey::from_seed(seed);
        if secret.public() != credential.officer_key {
            return Err(CredentialError::Malformed);
        }
        Ok(OfficerKey { secret, credential })
    }

    /// The seed, for the credential file.
    pub fn dangerous_seed(&self) -> zeroize::Zeroizing<[u8; KEY_LEN]> {
        self.secret.dangerous_seed()
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Signs a message body (canonical `MessageBody` bytes).
    pub fn sign_message(&self, body: &[u8]) -> wire::OfficerSignature {
        let sig = self
            .secret
            .sign(Label::OfficerMessage, &[&crypto::sha256(body)]);
        wire::OfficerSignature {
            credential: Some(self.credential.to_wire()),
            signature: Bytes::copy_from_slice(&sig),
        }
    }

    /// Signs a message body by the version 2 rule: with the SHA-256 of this credential and the
    /// message's precedence and TLP (SPEC.md §7.5).
    pub fn sign_message_marked(&self, body: &[u8], marking: Marking) -> wire::OfficerSignature {
        let sig = self.secret.sign(
            Label::OfficerMessageV2,
            &message_v2_parts(
                &crypto::sha256(body),
                &self.credential.sha256(),
                &marking.bytes(),
            ),
        );
        wire::OfficerSignature {
            credential: Some(self.credential.to_wire()),
            signature: Bytes::copy_from_slice(&sig),
        }
    }

    /// Makes an acknowledgement of the envelope `envelope_sha256` (message `message_id`) by the
    /// version 1 rule.
    pub fn acknowledge(
        &self,
        message_id: &[u8; 16],
        envelope_sha256: &[u8; 32],
        time_ms: UnixMillis,
        note: &str,
    ) -> Result<wire::OfficerAck, CredentialError> {
        self.acknowledge_as(
            message_id,
            envelope_sha256,
            time_ms,
            note,
            Binding::BodyOnly,
        )
    }

    /// Makes an acknowledgement by the rule `binding` says: version 2 ([`Binding::Marked`])
    /// binds this credential too (SPEC.md §8.3).
    pub fn acknowledge_as(
        &self,
        message_id: &[u8; 16],
        envelope_sha256: &[u8; 32],
        time_ms: UnixMillis,
        note: &str,
        binding: Binding,
    ) -> Result<wire::OfficerAck, CredentialError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(CredentialError::Malformed);
        }
        self.credential.check_officer_at(time_ms)?;
        let (t, n) = (time_ms.to_be_bytes(), crypto::sha256(note.as_bytes()));
        let v1 = ack_parts(message_id, envelope_sha256, &t, &n);
        let cred = self.credential.sha256();
        let sig = match binding {
            Binding::BodyOnly => self.secret.sign(Label::OfficerAck, &v1),
            Binding::Marked => self.secret.sign(
                Label::OfficerAckV2,
                &[v1[0], v1[1], v1[2], v1[3], &cred[..]],
            ),
        };
        Ok(wire::OfficerAck {
            credential: Some(self.credential.to_wire()),
            time_ms,
            note: note.to_owned(),
            signature: Bytes::copy_from_slice(&sig),
        })
    }
}

impl fmt::Debug for OfficerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OfficerKey({:?})", self.credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::TestRng;

    #[test]
    fn credential_from_another_node_is_refused() {
        let mut rng = TestRng::new(7);
        let a = IdentityKey::generate(&mut rng);
        let b = IdentityKey::generate(&mut rng);
        let o = OfficerKey::generate(&a, "Alice", Role::Officer, 0, 10, &mut rng).unwrap();
        assert!(Credential::verify(&o.credential().to_wire(), &a.id()).is_ok());
        assert_eq!(
            Credential::verify(&o.credential().to_wire(), &b.id()),
            Err(CredentialError::WrongIssuer)
        );
    }

    #[test]
    fn viewer_cannot_acknowledge() {
        let mut rng = TestRng::new(8);
        let a = IdentityKey::generate(&mut rng);
        let v = OfficerKey::generate(&a, "Val", Role::Viewer, 0, 10, &mut rng).unwrap();
        assert_eq!(
            v.acknowledge(&[0; 16], &[0; 32], 5, "").unwrap_err(),
            CredentialError::Role
        );
    }

    #[test]
    fn ack_signature_covers_the_note() {
        let mut rng = TestRng::new(9);
        let a = IdentityKey::generate(&mut rng);
        let o = OfficerKey::generate(&a, "Olga", Role::Officer, 0, 10, &mut rng).unwrap();
        let ack = o.acknowledge(&[1; 16], &[2; 32], 5, "seen").unwrap();
        assert!(
            o.credential()
                .verify_ack(&[1; 16], &[2; 32], 5, "seen", &ack.signature)
        );
        assert!(
            !o.credential()
                .verify_ack(&[1; 16], &[2; 32], 5, "seen!", &ack.signature)
        );
        assert!(
            !o.credential()
                .verify_ack(&[1; 16], &[2; 32], 6, "seen", &ack.signature)
        );
    }
}
