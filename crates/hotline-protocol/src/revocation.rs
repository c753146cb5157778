//! Key revocations (SPEC.md §4.6, version 2): a node withdraws the key of one of its officers
//! and says from when signatures by that key are not to be trusted. A revocation is signed by
//! the node's identity key, sent to each peer in a Revocations control frame, stored by both,
//! and consulted wherever an officer signature is judged: when an envelope is opened, and when
//! a message, a receipt or an evidence bundle is shown or verified later.
//!
//! Whether a signature predates the cutoff rests on a *claimed* time: the envelope's
//! `created_ms` (signed by the sending node) or the acknowledgement's `time_ms` (signed by the
//! officer and by the receiving node). [`Standing`] says so, so that nobody mistakes it for
//! proof.

use core::fmt;

use bytes::Bytes;
use prost::Message;

use crate::canonical;
use crate::codes::RejectReason;
use crate::crypto::{self, KEY_LEN, Label, SIGNATURE_LEN};
use crate::envelope::Rejection;
use crate::identity::{IdentityKey, NodeId};
use crate::time::UnixMillis;
use crate::wire;

/// Longest `reason`, in bytes.
pub const MAX_REASON_LEN: usize = 256;
/// Most revocations one Revocations frame carries.
pub const MAX_PER_FRAME: usize = 16;
/// Largest encoded `KeyRevocation` (body at its largest plus the signature), with room.
pub const MAX_REVOCATION_LEN: usize = 512;

/// What kind of key a revocation withdraws (SPEC.md §4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedKind {
    /// An officer key the issuer certified in an operator credential.
    Officer,
}

impl RevokedKind {
    fn to_wire(self) -> wire::RevokedKeyKind {
        match self {
            RevokedKind::Officer => wire::RevokedKeyKind::Officer,
        }
    }

    fn from_wire(v: i32) -> Option<Self> {
        match wire::RevokedKeyKind::try_from(v).ok()? {
            wire::RevokedKeyKind::Officer => Some(RevokedKind::Officer),
            wire::RevokedKeyKind::Unspecified => None,
        }
    }

    /// The name used in output and JSON: `officer`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokedKind::Officer => "officer",
        }
    }
}

/// Why a revocation could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// Not canonical, a field out of range, or the compromise after the revocation.
    #[error("malformed key revocation: {0}")]
    Malformed(&'static str),
    /// Not issued by the expected node, or its signature does not verify.
    #[error("key revocation not signed by the expected node")]
    WrongIssuer,
}

/// A checked, signed key revocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Revocation {
    issuer: NodeId,
    kind: RevokedKind,
    key: [u8; KEY_LEN],
    revoked: UnixMillis,
    compromised_since: Option<UnixMillis>,
    reason: String,
    bytes: Bytes,
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("kind", &self.kind)
            .field("key", &crypto::hexs(&self.key[..8]))
            .field("revoked", &self.revoked)
            .field("compromised_since", &self.compromised_since)
            .finish_non_exhaustive()
    }
}

impl Revocation {
    /// Signs a revocation of `key` by `issuer`: revoked at `revoked`, and, when the key is
    /// believed stolen, compromised since `compromised_since` (at most `revoked`).
    pub fn issue(
        issuer: &IdentityKey,
        kind: RevokedKind,
        key: [u8; KEY_LEN],
        revoked: UnixMillis,
        compromised_since: Option<UnixMillis>,
        reason: &str,
    ) -> Result<Self, RevocationError> {
        check_fields(revoked, compromised_since, reason)?;
        let body = wire::RevocationBody {
            issuer: Bytes::copy_from_slice(issuer.id().as_bytes()),
            kind: kind.to_wire() as i32,
            key: Bytes::copy_from_slice(&key),
            revoked_ms: revoked,
            compromised_since_ms: compromised_since.unwrap_or(0),
            reason: reason.to_owned(),
        }
        .encode_to_vec();
        let signature = issuer.sign(Label::KeyRevocation, &[&body]);
        let raw = wire::KeyRevocation {
            body: body.into(),
            signature: Bytes::copy_from_slice(&signature),
        };
        Ok(Revocation {
            issuer: issuer.id(),
            kind,
            key,
            revoked,
            compromised_since,
            reason: reason.to_owned(),
            bytes: raw.encode_to_vec().into(),
        })
    }

    /// Checks a revocation in wire form; it must be issued by `issuer`.
    pub fn verify(raw: &wire::KeyRevocation, issuer: &NodeId) -> Result<Self, RevocationError> {
        let body: wire::RevocationBody =
            canonical::decode(&raw.body).ok_or(RevocationError::Malformed("body not canonical"))?;
        let from = NodeId::from_bytes(&body.issuer)
            .ok_or(RevocationError::Malformed("issuer is not a node id"))?;
        let kind =
            RevokedKind::from_wire(body.kind).ok_or(RevocationError::Malformed("unknown kind"))?;
        let key: [u8; KEY_LEN] = body
            .key
            .as_ref()
            .try_into()
            .map_err(|_| RevocationError::Malformed("key is not 32 bytes"))?;
        let compromised_since =
            (body.compromised_since_ms != 0).then_some(body.compromised_since_ms);
        check_fields(body.revoked_ms, compromised_since, &body.reason)?;
        if raw.signature.len() != SIGNATURE_LEN {
            return Err(RevocationError::Malformed("signature is not 64 bytes"));
        }
        if from != *issuer
            || !crypto::verify(
                issuer.as_bytes(),
                Label::KeyRevocation,
                &[&raw.body],
                &raw.signature,
            )
        {
            return Err(RevocationError::WrongIssuer);
        }
        Ok(Revocation {
            issuer: from,
            kind,
            key,
            revoked: body.revoked_ms,
            compromised_since,
            reason: body.reason,
            bytes: raw.encode_to_vec().into(),
        })
    }

    /// Checks the encoded bytes of a `KeyRevocation` (as stored, or in an evidence bundle).
    pub fn from_bytes(bytes: &[u8], issuer: &NodeId) -> Result<Self, RevocationError> {
        if bytes.len() > MAX_REVOCATION_LEN {
            return Err(RevocationError::Malformed("too long"));
        }
        let raw: wire::KeyRevocation = canonical::decode(bytes)
            .ok_or(RevocationError::Malformed("KeyRevocation not canonical"))?;
        Self::verify(&raw, issuer)
    }

    /// The node that revoked the key.
    pub fn issuer(&self) -> NodeId {
        self.issuer
    }
    /// What kind of key.
    pub fn kind(&self) -> RevokedKind {
        self.kind
    }
    /// The revoked public key.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }
    /// When it was revoked.
    pub fn revoked(&self) -> UnixMillis {
        self.revoked
    }
    /// Since when the key is believed compromised; `None` for a key retired in good order.
    pub fn compromised_since(&self) -> Option<UnixMillis> {
        self.compromised_since
    }
    /// The reason given, for people.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    /// The encoded `KeyRevocation`, as signed and sent.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// SHA-256 of [`Self::bytes`]: what tells two revocations apart.
    pub fn sha256(&self) -> [u8; 32] {
        crypto::sha256(&self.bytes)
    }
    /// The wire form.
    pub fn to_wire(&self) -> wire::KeyRevocation {
        // The bytes were made from or checked as a canonical KeyRevocation.
        wire::KeyRevocation::decode(self.bytes.clone()).unwrap_or_default()
    }

    /// The first moment at which a signature by the key is no longer trusted: the compromise
    /// time if there is one, else the revocation time.
    pub fn cutoff(&self) -> UnixMillis {
        self.compromised_since.unwrap_or(self.revoked)
    }

    /// Whether this revokes `key` of `kind` issued by `issuer`.
    pub fn covers(&self, issuer: &NodeId, kind: RevokedKind, key: &[u8]) -> bool {
        self.issuer == *issuer && self.kind == kind && self.key[..] == *key
    }
}

fn check_fields(
    revoked: UnixMillis,
    compromised_since: Option<UnixMillis>,
    reason: &str,
) -> Result<(), RevocationError> {
    if revoked == 0 {
        return Err(RevocationError::Malformed("revoked_ms is 0"));
    }
    if compromised_since.is_some_and(|c| c > revoked) {
        return Err(RevocationError::Malformed(
            "compromised_since_ms is after revoked_ms",
        ));
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(RevocationError::Malformed("reason over 256 bytes"));
    }
    Ok(())
}

/// How a signature by a possibly revoked key stands (SPEC.md §4.6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// No revocation names the key.
    NotRevoked,
    /// The key is revoked, and the signature's claimed time is before the cutoff: it counts,
    /// resting on that claimed time.
    BeforeCutoff {
        /// The cutoff (compromise or revocation time).
        cutoff: UnixMillis,
        /// Whether the revocation names a compromise.
        compromised: bool,
    },
    /// The key is revoked and the signature's claimed time is at or after the cutoff: it does
    /// not count.
    AfterCutoff {
        /// The cutoff.
        cutoff: UnixMillis,
        /// Whether the revocation names a compromise.
        compromised: bool,
    },
}

impl Standing {
    /// Whether the signature counts.
    pub fn counts(self) -> bool {
        !matches!(self, Standing::AfterCutoff { .. })
    }

    /// A line for people: what the standing is and what it rests on.
    pub fn describe(self, claimed: &str) -> String {
        match self {
            Standing::NotRevoked => "not revoked".into(),
            Standing::BeforeCutoff {
                cutoff,
                compromised,
            } => format!(
                "key {} at {cutoff} ms; this signature counts: it claims {claimed}, before then \
                 (a signed claim of time, not proof)",
                if compromised {
                    "revoked as compromised since"
                } else {
                    "retired"
                }
            ),
            Standing::AfterCutoff {
                cutoff,
                compromised,
            } => format!(
                "key {} at {cutoff} ms; this signature does NOT count: it claims {claimed}, at or \
                 after then",
                if compromised {
                    "revoked as compromised since"
                } else {
                    "retired"
                }
            ),
        }
    }
}

/// How a signature by `key` (of `kind`, certified by `issuer`) claimed to be made at `claimed`
/// stands against `revocations`: the earliest cutoff among those that name the key decides.
pub fn standing(
    revocations: &[Revocation],
    issuer: &NodeId,
    kind: RevokedKind,
    key: &[u8],
    claimed: UnixMillis,
) -> Standing {
    let Some(r) = revocations
        .iter()
        .filter(|r| r.covers(issuer, kind, key))
        .min_by_key(|r| r.cutoff())
    else {
        return Standing::NotRevoked;
    };
    let (cutoff, compromised) = (r.cutoff(), r.compromised_since.is_some());
    if claimed < cutoff {
        Standing::BeforeCutoff {
            cutoff,
            compromised,
        }
    } else {
        Standing::AfterCutoff {
            cutoff,
            compromised,
        }
    }
}

/// SPEC.md §7.6 step 12a (version 2): an envelope from `sender` created at `created` whose
/// content an officer key of the sender signed is refused (REVOKED_KEY) when the sender
/// revoked that key with a cutoff at or before `created`.
pub fn check_officer(
    revocations: &[Revocation],
    sender: &NodeId,
    officer_key: &[u8],
    created: UnixMillis,
) -> Result<(), Rejection> {
    match standing(
        revocations,
        sender,
        RevokedKind::Officer,
        officer_key,
        created,
    ) {
        Standing::AfterCutoff { compromised, .. } => Err(Rejection::new(
            RejectReason::RevokedKey,
            if compromised {
                "officer key revoked by the sender: compromised before this envelope was created"
            } else {
                "officer key retired by the sender before this envelope was created"
            },
        )),
        _ => Ok(()),
    }
}

/// The officer keys a stored message names, read without checking any signature (to pick the
/// revocations that concern it): the content's officer, and each acknowledgement's. Bytes that
/// do not decode name nothing.
pub fn officer_keys_in(content: &[u8], receipts: &[Bytes]) -> Vec<[u8; KEY_LEN]> {
    let key_of = |c: Option<&wire::OfficerCredential>| -> Option<[u8; KEY_LEN]> {
        let body = wire::CredentialBody::decode(c?.body.clone()).ok()?;
        body.officer_key.as_ref().try_into().ok()
    };
    let mut keys = Vec::new();
    if let Ok(c) = wire::Content::decode(content)
        && let Some(k) = key_of(c.officer.as_ref().and_then(|o| o.credential.as_ref()))
    {
        keys.push(k);
    }
    for r in receipts {
        let ack = wire::Receipt::decode(r.clone())
            .ok()
            .and_then(|r| wire::ReceiptBody::decode(r.body).ok())
            .and_then(|b| b.ack);
        if let Some(k) = key_of(ack.as_ref().and_then(|a| a.credential.as_ref()))
            && !keys.contains(&k)
        {
            keys.push(k);
        }
    }
    keys
}

/// The payload of a Revocations frame carrying `revocations` (at most [`MAX_PER_FRAME`]).
pub fn frame_payload(revocations: &[Revocation]) -> Vec<u8> {
    wire::Revocations {
        revocations: revocations.iter().map(Revocation::to_wire).collect(),
    }
    .encode_to_vec()
}

/// Checks a Revocations frame payload from `peer` (SPEC.md §4.6.2): canonical, 1..=16
/// revocations, each issued by `peer` and verifying.
pub fn verify_frame(payload: &[u8], peer: &NodeId) -> Result<Vec<Revocation>, &'static str> {
    let frame =
        canonical::decode::<wire::Revocations>(payload).ok_or("Revocations is not canonical")?;
    if frame.revocations.is_empty() || frame.revocations.len() > MAX_PER_FRAME {
        return Err("Revocations must carry 1 to 16 revocations");
    }
    frame
        .revocations
        .iter()
        .map(|r| Revocation::verify(r, peer))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "Revocations carries a revocation that does not verify")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_LEN;

    fn node(seed: u8) -> IdentityKey {
        IdentityKey::from_seed(&[seed; 32]).expect("seed")
    }

    #[test]
    fn issue_verify_round_trip() {
        let a = node(1);
        let r = Revocation::issue(
            &a,
            RevokedKind::Officer,
            [7; KEY_LEN],
            2_000,
            Some(1_000),
            "laptop stolen",
        )
        .expect("issue");
        let back = Revocation::from_bytes(r.bytes(), &a.id()).expect("verify");
        assert_eq!(back, r);
        assert_eq!(back.cutoff(), 1_000);
        assert_eq!(
            Revocation::from_bytes(r.bytes(), &node(2).id()),
            Err(RevocationError::WrongIssuer)
        );
        let mut bad = r.bytes().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Revocation::from_bytes(&bad, &a.id()).is_err());
    }

    #[test]
    fn fields_are_checked() {
        let a = node(1);
        let k = [7; KEY_LEN];
        let o = RevokedKind::Officer;
        assert!(Revocation::issue(&a, o, k, 0, None, "").is_err());
        assert!(Revocation::issue(&a, o, k, 5, Some(6), "").is_err());
        assert!(Revocation::issue(&a, o, k, 5, None, &"x".repeat(257)).is_err());
        assert!(Revocation::issue(&a, o, k, 5, Some(5), &"x".repeat(256)).is_ok());
    }

    #[test]
    fn the_earliest_cutoff_decides() {
        let a = node(1);
        let k = [7; KEY_LEN];
        let o = RevokedKind::Officer;
        let retired = Revocation::issue(&a, o, k, 5_000, None, "").expect("issue");
        let stolen = Revocation::issue(&a, o, k, 9_000, Some(3_000), "").expect("issue");
        let revs = [retired, stolen];
        let id = a.id();
        assert_eq!(
            standing(&revs, &id, o, &[8; 32], 9_999),
            Standing::NotRevoked
        );
        assert_eq!(
            standing(&revs, &node(2).id(), o, &k, 9_999),
            Standing::NotRevoked
        );
        assert!(standing(&revs, &id, o, &k, 2_999).counts());
        assert_eq!(
            standing(&revs, &id, o, &k, 3_000),
            Standing::AfterCutoff {
                cutoff: 3_000,
                compromised: true
            }
        );
        assert!(check_officer(&revs, &id, &k, 2_999).is_ok());
        assert_eq!(
            check_officer(&revs, &id, &k, 4_000).map_err(|r| r.reason),
            Err(RejectReason::RevokedKey)
        );
    }

    #[test]
    fn frames_are_bounded_and_checked() {
        let a = node(1);
        let revs: Vec<_> = (0..17u8)
            .map(|i| {
                Revocation::issue(
                    &a,
                    RevokedKind::Officer,
                    [i; KEY_LEN],
                    10,
                    Some(1),
                    &"r".repeat(MAX_REASON_LEN),
                )
                .expect("issue")
            })
            .collect();
        let full = frame_payload(&revs[..MAX_PER_FRAME]);
        assert!(full.len() <= crate::frame::MAX_CONTROL_LEN);
        assert_eq!(verify_frame(&full, &a.id()).map(|v| v.len()), Ok(16));
        assert!(verify_frame(&frame_payload(&revs), &a.id()).is_err());
        assert!(verify_frame(&frame_payload(&[]), &a.id()).is_err());
        assert!(verify_frame(&full, &node(2).id()).is_err());
        assert!(revs.iter().all(|r| r.bytes().len() <= MAX_REVOCATION_LEN));
    }
}
