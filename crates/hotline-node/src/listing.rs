//! `hotlined peer list` and `hotlined operator list`, as text for people and `--json` for
//! scripts (issue 16 item 8): who is pinned or issued, with the dates that matter (a peer's
//! newest encryption key, its bundle, a TLS key still accepted during its rotation; a
//! credential's validity, its revocation and any compromise time).

use std::path::Path;

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::officer::Credential;
use hotline_protocol::revocation::{Revocation, RevokedKind};
use hotline_protocol::wire;
use hotline_transport::display::line;
use hotline_transport::request::fingerprint;
use hotline_transport::time::utc_minute;
use prost::Message;
use serde::Serialize;

use crate::commands::CommandError;
use crate::config;
use crate::say;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// One pinned peer.
#[derive(Serialize)]
struct PeerRow {
    alias: String,
    address: String,
    trust: &'static str,
    node: String,
    fingerprint: String,
    /// The bundle's name (the peer's own text, neutralised).
    name: String,
    bundle_created_ms: u64,
    /// When the newest encryption key in the bundle expires (the peer announces newer ones).
    encryption_key_until_ms: Option<u64>,
    tls_spki_sha256: String,
    /// A TLS key still accepted while the peer rotates (SPEC.md §3.6.1).
    previous_tls_spki_sha256: Option<String>,
}

/// One issued operator credential.
#[derive(Serialize)]
struct OperatorRow {
    name: String,
    role: String,
    state: &'static str,
    key_fingerprint: String,
    valid_from_ms: Option<u64>,
    valid_until_ms: Option<u64>,
    issued_ms: u64,
    revoked_ms: Option<u64>,
    /// From when the key's signatures do not count, if revoked as compromised (SPEC.md §4.6).
    compromised_since_ms: Option<u64>,
}

fn print_json<T: Serialize>(rows: &T) -> Result<(), CommandError> {
    let text = serde_json::to_string_pretty(rows)
        .map_err(|e| CommandError(format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// `hotlined peer list [--json]`.
pub fn peers(dir: &Path, json: bool) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let mut rows = Vec::new();
    for p in store.peers()? {
        let previous = store.previous_pin(&p.identity)?;
        let bundle = PeerBundle::from_bytes(&p.bundle);
        rows.push(PeerRow {
            alias: p.alias,
            address: p.address,
            trust: p.trust.as_str(),
            node: p.identity.to_string(),
            fingerprint: p.identity.fingerprint(),
            name: match &bundle {
                Ok(b) => line(b.name()),
                Err(e) => format!("(bundle invalid: {e})"),
            },
            bundle_created_ms: bundle.as_ref().map_or(0, PeerBundle::created),
            encryption_key_until_ms: bundle
                .as_ref()
                .ok()
                .and_then(|b| b.encryption_keys().iter().map(|k| k.not_after()).max()),
            tls_spki_sha256: bundle
                .as_ref()
                .map(|b| data_encoding::HEXLOWER.encode(b.tls_spki_sha256()))
                .unwrap_or_default(),
            previous_tls_spki_sha256: previous.map(|p| data_encoding::HEXLOWER.encode(&p)),
        });
    }
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        say!(
            "No peers pinned. Add one with: hotlined peer add --dir {} BUNDLE --address HOST:PORT",
            dir.display()
        );
    }
    for r in rows {
        let until = r
            .encryption_key_until_ms
            .map_or_else(|| "?".into(), utc_minute);
        let address = if r.address.is_empty() {
            "(dials in)"
        } else {
            r.address.as_str()
        };
        say!(
            "{:<16} {:<24} {:<6} {}  {}  (bundle of {}, key until {until}{})",
            r.alias,
            address,
            r.trust,
            r.fingerprint,
            r.name,
            utc_minute(r.bundle_created_ms),
            if r.previous_tls_spki_sha256.is_some() {
                "; rotating its TLS key: the old one is accepted until it uses the new"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// `hotlined operator list [--json]`.
pub fn operators(dir: &Path, json: bool) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let me = hotline_transport::material::Material::load(dir)?
        .identity
        .id();
    let revocations: Vec<Revocation> = store
        .revocations()?
        .into_iter()
        .filter(|r| r.issuer() == me && r.kind() == RevokedKind::Officer)
        .collect();
    let mut rows = Vec::new();
    for o in store.operators()? {
        let credential = wire::OfficerCredential::decode(o.credential.clone())
            .ok()
            .and_then(|w| Credential::verify(&w, &me).ok());
        let compromised = revocations
            .iter()
            .filter(|r| r.key() == &o.officer_key)
            .filter_map(Revocation::compromised_since)
            .min();
        rows.push(OperatorRow {
            name: line(&o.name),
            role: o.role.clone(),
            state: if o.revoked_ms.is_some() {
                "revoked"
            } else {
                "active"
            },
            key_fingerprint: fingerprint(&o.officer_key),
            valid_from_ms: credential.as_ref().map(Credential::not_before),
            valid_until_ms: credential.as_ref().map(Credential::not_after),
            issued_ms: o.added_ms,
            revoked_ms: o.revoked_ms,
            compromised_since_ms: compromised,
        });
    }
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        say!(
            "No operators. Issue a credential from an officer's request (`hotline keygen`) with: hotlined operator add --dir {} --request FILE --role officer --out ISSUED",
            dir.display()
        );
    }
    for r in rows {
        let valid = match (r.valid_from_ms, r.valid_until_ms) {
            (Some(a), Some(b)) => format!("valid {} to {}", utc_minute(a), utc_minute(b)),
            _ => "credential invalid".into(),
        };
        let state = match (r.revoked_ms, r.compromised_since_ms) {
            (Some(t), Some(c)) => format!(
                "revoked {}, compromised since {}",
                utc_minute(t),
                utc_minute(c)
            ),
            (Some(t), None) => format!("revoked {}", utc_minute(t)),
            _ => "active".into(),
        };
        say!(
            "{:<32} {:<8} {}  {valid}  {state}",
            r.name,
            r.role,
            r.key_fingerprint
        );
    }
    Ok(())
}
