//! `hotlined keys revoke`: withdraws an officer's key, saying since when it is compromised
//! (SPEC.md §4.6). The operator's credential is revoked on this node (as by `operator remove`),
//! a revocation signed by the node's identity key is stored and audited, and the running node
//! sends it to every peer on a version 2 link at once (and again at each new connection), so
//! that the peer refuses anything the key signs from that time on and shows, for what it holds,
//! whether each signature predates the compromise.

use std::path::Path;

use hotline_protocol::identity::IdentityKey;
use hotline_protocol::revocation::{MAX_REASON_LEN, Revocation, RevokedKind};
use hotline_protocol::time::UnixMillis;
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::request::fingerprint;
use hotline_transport::time::utc_second;

use crate::commands::CommandError;
use crate::config;
use crate::daemon::revocations::{MAX_PER_ISSUER, describe};
use crate::say;
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditEvent, OperatorRecord, RevocationAdded, Store};

/// `hotlined keys revoke --dir DIR --officer NAME [--compromised-since WHEN] [--reason TEXT]`.
/// WHEN is an RFC 3339 time, a duration ago (`3d`), or `now`; without it the key is retired
/// (signatures made before now stay valid).
pub fn revoke(
    dir: &Path,
    officer: &str,
    compromised_since: Option<&str>,
    reason: &str,
) -> Result<(), CommandError> {
    let now = now_ms();
    let since = match compromised_since {
        None => None,
        Some(w) if w.trim() == "now" => Some(now),
        Some(w) => Some(
            hotline_transport::time::since(w, now)
                .map_err(|e| CommandError(format!("--compromised-since: {e}")))?,
        ),
    };
    if since.is_some_and(|s| s > now) {
        return Err(CommandError(
            "--compromised-since is in the future: a key can only be revoked as compromised \
             since a time that has passed (or `now`)"
                .into(),
        ));
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(CommandError(format!(
            "--reason is {} bytes; at most {MAX_REASON_LEN}",
            reason.len()
        )));
    }
    let material = Material::load(dir)?;
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let record = find(&mut store, officer, dir)?;
    if record.revoked_ms.is_none() {
        store.revoke_operator(&record.name, now)?;
        say!("Revoked the credential of {} on this node.", record.name);
    }
    let r = issue(&mut store, &material.identity, &record, now, since, reason)?;
    say!(
        "Revoked the officer key of {} ({}): {}.",
        record.name,
        fingerprint(&record.officer_key),
        match since {
            Some(s) => format!(
                "signatures it made from {} on no longer count, at this node and at every peer \
                 told",
                utc_second(s)
            ),
            None => "signatures it made before now stay valid".into(),
        }
    );
    say!("{}", describe(&r));
    say!(
        "Peers on version 2 links are told by the running node at once, and again at each new \
         connection; a peer on a version 1 link cannot be told over the link."
    );
    crate::notify::apply_to_running_node(dir);
    Ok(())
}

/// The operator named `name`: the active one, else the most recently revoked one (a key
/// retired yesterday can be found compromised today).
fn find(store: &mut SqliteStore, name: &str, dir: &Path) -> Result<OperatorRecord, CommandError> {
    let mut matching: Vec<OperatorRecord> = store
        .operators()?
        .into_iter()
        .filter(|o| o.name == name)
        .collect();
    matching.sort_by_key(|o| (o.revoked_ms.is_none(), o.revoked_ms, o.added_ms));
    matching.pop().ok_or_else(|| {
        CommandError(format!(
            "no operator named {name:?}; `hotlined operator list --dir {}` shows them",
            dir.display()
        ))
    })
}

/// Signs, stores and audits the revocation of `record`'s officer key.
pub(crate) fn issue(
    store: &mut SqliteStore,
    identity: &IdentityKey,
    record: &OperatorRecord,
    now: UnixMillis,
    compromised_since: Option<UnixMillis>,
    reason: &str,
) -> Result<Revocation, CommandError> {
    let r = Revocation::issue(
        identity,
        RevokedKind::Officer,
        record.officer_key,
        now,
        compromised_since,
        reason,
    )
    .map_err(|e| CommandError(format!("cannot make the revocation: {e}")))?;
    match store.add_revocation(&r, now, MAX_PER_ISSUER)? {
        RevocationAdded::Added | RevocationAdded::Known => {}
        RevocationAdded::Full => {
            return Err(CommandError(format!(
                "this node has issued {MAX_PER_ISSUER} revocations, the most a peer takes; the \
                 credential is revoked here, but peers cannot be told"
            )));
        }
    }
    store.audit(&[AuditEvent {
        time_ms: now,
        kind: "key_revoked".into(),
        peer: None,
        message_id: None,
        detail: format!("{}: {}", record.name, describe(&r)),
    }])?;
    Ok(r)
}
