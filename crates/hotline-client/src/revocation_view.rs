//! How an officer's signature stands against the key revocations a node holds (SPEC.md §4.6.3),
//! as `show`, `receipts` and `verify` report it: a signature by a revoked key counts only if
//! the time it claims is before the revocation's cutoff, and that rests on a signed claim of
//! time, which the report says.

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::revocation::{self, Revocation, RevokedKind, Standing};
use serde::Serialize;

use crate::format::clean;
use crate::officer_info::OfficerInfo;

/// What a revocation of the signing key means for one signature.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct RevocationInfo {
    /// Whether the signature still counts: it claims a time before the cutoff.
    pub counts: bool,
    /// Whether the key was revoked as compromised (else retired in good order).
    pub compromised: bool,
    /// From when signatures by the key do not count (Unix ms): the compromise time, else the
    /// revocation time.
    pub cutoff_ms: u64,
    /// When the key's node revoked it.
    pub revoked_ms: u64,
    /// The reason the node gave.
    pub reason: String,
    /// The time the signature claims (Unix ms).
    pub claimed_ms: u64,
    /// What that claimed time rests on.
    pub rests_on: &'static str,
}

impl RevocationInfo {
    /// One line for people.
    pub fn describe(&self) -> String {
        let what = if self.compromised {
            format!(
                "REVOKED as compromised since {}",
                hotline_transport::time::utc_second(self.cutoff_ms)
            )
        } else {
            format!(
                "retired on {}",
                hotline_transport::time::utc_second(self.cutoff_ms)
            )
        };
        let verdict = if self.counts {
            "this signature counts: it claims an earlier time"
        } else {
            "this signature does NOT count: it claims a time at or after that"
        };
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(" (reason: {})", self.reason)
        };
        format!(
            "key {what}{reason}; {verdict} ({}, resting on {})",
            hotline_transport::time::utc_second(self.claimed_ms),
            self.rests_on
        )
    }
}

/// The revocations among `raw` that verify as issued by one of `issuers`; others are left out
/// (a revocation that does not verify says nothing).
pub fn parse(raw: &[Bytes], issuers: &[NodeId]) -> Vec<Revocation> {
    raw.iter()
        .filter_map(|b| {
            issuers
                .iter()
                .find_map(|i| Revocation::from_bytes(b, i).ok())
        })
        .collect()
}

/// One line for people: whose key, which, since when, why.
pub fn summary(r: &Revocation) -> String {
    let what = match r.compromised_since() {
        Some(c) => format!(
            "compromised since {}",
            hotline_transport::time::utc_second(c)
        ),
        None => "retired".to_owned(),
    };
    format!(
        "node {} revoked {} key {} on {} ({what}){}",
        r.issuer().fingerprint(),
        r.kind().as_str(),
        hotline_transport::request::fingerprint(r.key()),
        hotline_transport::time::utc_second(r.revoked()),
        if r.reason().is_empty() {
            String::new()
        } else {
            format!(": {}", clean(r.reason()))
        }
    )
}

/// How `officer`'s signature, certified by `issuer` and claiming `claimed_ms`, stands against
/// `revocations`; `None` if no revocation names its key.
pub fn standing(
    officer: &OfficerInfo,
    revocations: &[Revocation],
    issuer: &NodeId,
    claimed_ms: u64,
    rests_on: &'static str,
) -> Option<RevocationInfo> {
    let s = revocation::standing(
        revocations,
        issuer,
        RevokedKind::Officer,
        &officer.key,
        claimed_ms,
    );
    let (cutoff_ms, compromised) = match s {
        Standing::NotRevoked => return None,
        Standing::BeforeCutoff {
            cutoff,
            compromised,
        }
        | Standing::AfterCutoff {
            cutoff,
            compromised,
        } => (cutoff, compromised),
    };
    let r = revocations
        .iter()
        .filter(|r| r.covers(issuer, RevokedKind::Officer, &officer.key))
        .min_by_key(|r| r.cutoff())?;
    Some(RevocationInfo {
        counts: s.counts(),
        compromised,
        cutoff_ms,
        revoked_ms: r.revoked(),
        reason: clean(r.reason()),
        claimed_ms,
        rests_on,
    })
}

/// What the claimed time of a message's officer signature rests on.
pub const CONTENT_TIME: &str = "the envelope's created_ms, signed by the sending node";
/// What the claimed time of an acknowledgement rests on.
pub const ACK_TIME: &str =
    "the acknowledgement's time_ms, signed by the officer and by the receiving node";

/// Marks an acknowledgement whose officer key `signer` revoked (SPEC.md §4.6.3): one claiming
/// a time at or after the cutoff makes the receipt not valid.
pub fn mark_revoked_ack(
    r: &mut crate::verify::ReceiptReport,
    revs: &[Revocation],
    signer: &NodeId,
) {
    let (Some(o), Some(t)) = (r.officer_credential.as_mut(), r.ack_time_ms) else {
        return;
    };
    o.revoked = standing(o, revs, signer, t, ACK_TIME);
    if o.revoked.as_ref().is_some_and(|x| !x.counts) && r.valid {
        r.valid = false;
        r.error = Some(
            "acknowledged with an officer key the receiving node revoked, at a time the \
             revocation covers"
                .into(),
        );
    }
}
