//! A duty officer as `show` and `verify` describe them: the name, the signing key's fingerprint
//! and the credential's validity, from a credential the officer's node issued.

use crate::format::clean;
use serde::Serialize;

/// A duty officer as a credential names them: who, by which key, and for how long (issue 14:
/// the name alone proves less than it says).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct OfficerInfo {
    /// The name in the credential.
    pub name: String,
    /// Fingerprint of the officer's signing key (as `hotline keygen` prints it).
    pub key_fingerprint: String,
    /// The credential's validity: from (Unix ms).
    pub valid_from_ms: u64,
    /// The credential's validity: until (Unix ms).
    pub valid_until_ms: u64,
    /// The officer's public key (the fingerprint is what people read).
    #[serde(skip)]
    pub key: [u8; 32],
    /// Set when a revocation the node holds names the key (SPEC.md §4.6.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<crate::revocation_view::RevocationInfo>,
}

impl OfficerInfo {
    /// What `credential` says of its officer.
    pub fn of(credential: &hotline_protocol::officer::Credential) -> Self {
        OfficerInfo {
            name: clean(credential.name()),
            key_fingerprint: hotline_transport::request::fingerprint(credential.officer_key()),
            valid_from_ms: credential.not_before(),
            valid_until_ms: credential.not_after(),
            key: *credential.officer_key(),
            revoked: None,
        }
    }

    /// `key 1a2b-…, credential valid 2026-12-07T10:00Z to 2027-12-07T10:00Z`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "key {}, credential valid {} to {}",
            self.key_fingerprint,
            hotline_transport::time::utc_minute(self.valid_from_ms),
            hotline_transport::time::utc_minute(self.valid_until_ms)
        );
        if let Some(r) = &self.revoked {
            s.push_str("; ");
            s.push_str(&r.describe());
        }
        s
    }
}
