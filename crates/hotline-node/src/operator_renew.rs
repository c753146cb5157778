//! `hotlined operator renew`: a new credential for an operator's same keys, with a new
//! validity (issue 14, item 6). The officer's keys stay on the officer's machine; the node
//! signs a new `OfficerCredential` for the officer key it certified before, records it, and
//! writes the public issued file the officer imports with `hotline credential import`.

use std::path::Path;

use hotline_protocol::officer::Credential;
use hotline_protocol::time::DAY;
use hotline_protocol::wire;
use prost::Message;

use crate::commands::CommandError;
use crate::config::{self, Config};
use crate::operator::MAX_VALID_DAYS;
use crate::say;
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditEvent, Store};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::request::{self, IssuedFile};
use hotline_transport::time::utc_minute;

/// `hotlined operator renew --dir DIR --name NAME [--valid-days N] --out FILE`.
pub fn renew(dir: &Path, name: &str, valid_days: u32, out: &Path) -> Result<(), CommandError> {
    if !(1..=MAX_VALID_DAYS).contains(&valid_days) {
        return Err(CommandError(format!(
            "--valid-days {valid_days}: a credential is valid 1 to {MAX_VALID_DAYS} days"
        )));
    }
    if out.exists() {
        return Err(CommandError(format!(
            "{} exists already; choose another --out",
            out.display()
        )));
    }
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let who = hotline_transport::display::line(name);
    let Some(op) = store
        .operators()?
        .into_iter()
        .find(|o| o.name == name && o.revoked_ms.is_none())
    else {
        return Err(CommandError(format!(
            "no active operator named {who:?}; see `hotlined operator list` (a removed \
             operator is not renewed: issue a new credential from a new request)"
        )));
    };
    let raw = wire::OfficerCredential::decode(op.credential.clone())
        .map_err(|e| CommandError(format!("the stored credential of {who:?} is damaged: {e}")))?;
    let old = Credential::verify(&raw, &material.identity.id()).map_err(|e| {
        CommandError(format!(
            "the stored credential of {who:?} does not verify ({e}); issue a new one"
        ))
    })?;
    let now = now_ms();
    let not_before = now - 60_000;
    let not_after = not_before + u64::from(valid_days) * DAY;
    let credential = Credential::issue(
        &material.identity,
        *old.officer_key(),
        old.name(),
        old.role(),
        not_before,
        not_after,
    )
    .map_err(|e| CommandError(format!("cannot issue the credential: {e}")))?;
    let cred_bytes = credential.to_wire().encode_to_vec();
    let issued = IssuedFile {
        version: request::VERSION,
        name: old.name().to_owned(),
        role: old.role().as_str().to_owned(),
        node: material.identity.id().to_string(),
        node_address: cfg.listen.clone(),
        node_tls_spki_sha256: request::hex32(&hotline_transport::tls::spki_sha256(
            &material.tls.cert_der,
        )?),
        tls_spki_sha256: request::hex32(&op.tls_spki_sha256),
        credential: data_encoding::BASE64.encode(&cred_bytes),
    };
    issued
        .write_new(out)
        .map_err(|e| CommandError(e.to_string()))?;
    if !store.renew_operator(name, &cred_bytes)? {
        let _ = std::fs::remove_file(out);
        return Err(CommandError(format!(
            "{who:?} was removed meanwhile; nothing renewed"
        )));
    }
    let fingerprint = request::fingerprint(old.officer_key());
    store.audit(&[AuditEvent {
        time_ms: now,
        kind: "operator_renewed".into(),
        peer: None,
        message_id: None,
        detail: format!(
            "{name} ({}; key {fingerprint}), valid until {}",
            old.role().as_str(),
            utc_minute(not_after)
        ),
    }])?;
    say!(
        "Renewed the credential of {who} (key {fingerprint}): valid until {} (was {}): {}",
        utc_minute(not_after),
        utc_minute(old.not_after()),
        out.display()
    );
    say!(
        "Hand {} back (public); the operator finishes with: hotline credential import --keys \
         DIR --issued {} (it replaces their credential file). The old credential stops working \
         for the operator API now; what it signed stays valid evidence.",
        out.display(),
        crate::operator::file_name(out)
    );
    crate::notify::apply_to_running_node(dir);
    Ok(())
}
