//! Operator credentials: `hotlined operator add | list | remove`.
//!
//! The credential file's format lives in `hotline_transport::credential`, shared with the
//! operator client.

use std::path::Path;

use bytes::Bytes;
use hotline_protocol::officer::{Credential, Role};
use prost::Message;
use zeroize::Zeroizing;

use crate::commands::CommandError;
use crate::config::{self, Config};
use crate::say;
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditEvent, OperatorRecord, Store};
use hotline_transport::credential::{self, CredentialFile};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, NodeTlsKey};

/// How long a credential is valid.
pub const CREDENTIAL_LIFETIME: u64 = 365 * hotline_protocol::time::DAY;

fn role_of(s: &str) -> Result<Role, CommandError> {
    match s {
        "officer" => Ok(Role::Officer),
        "viewer" => Ok(Role::Viewer),
        _ => Err(CommandError(format!("--role {s:?}: use officer or viewer"))),
    }
}

/// `hotlined operator add`.
pub fn add(dir: &Path, name: &str, role: &str, out: &Path) -> Result<(), CommandError> {
    let role = role_of(role)?;
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    if out.exists() {
        return Err(CommandError(format!(
            "{} exists already; choose another --out",
            out.display()
        )));
    }
    let now = now_ms();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let officer = hotline_protocol::crypto::SecretSigningKey::generate(&mut rng);
    let credential = Credential::issue(
        &material.identity,
        officer.public(),
        name,
        role,
        now - 60_000,
        now + CREDENTIAL_LIFETIME,
    )
    .map_err(|e| {
        CommandError(format!(
            "cannot issue the credential: {e} (a name is 1..=128 bytes)"
        ))
    })?;
    let tls_key = NodeTlsKey::generate(
        &format!("operator {name}"),
        now - 60_000,
        now + CREDENTIAL_LIFETIME,
    )?;
    let (tls_cert_pem, tls_key_pem) = tls_key.to_pem();
    let cred_bytes = credential.to_wire().encode_to_vec();
    let node_pin = tls::spki_sha256(&material.tls.cert_der)?;
    let file = CredentialFile {
        version: credential::VERSION,
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        node: material.identity.id().to_string(),
        node_address: cfg.listen.clone(),
        node_tls_spki_sha256: node_pin.iter().map(|b| format!("{b:02x}")).collect(),
        officer_seed: Zeroizing::new(data_encoding::BASE64.encode(&*officer.dangerous_seed())),
        credential: data_encoding::BASE64.encode(&cred_bytes),
        tls_cert: tls_cert_pem,
        tls_key: tls_key_pem,
    };
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    store.add_operator(&OperatorRecord {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        officer_key: officer.public(),
        tls_spki_sha256: tls_key.spki_sha256(),
        credential: Bytes::from(cred_bytes),
        added_ms: now,
        revoked_ms: None,
    })?;
    file.write_new(out)
        .map_err(|e| CommandError(e.to_string()))?;
    store.audit(&[AuditEvent {
        time_ms: now,
        kind: "operator_added".into(),
        peer: None,
        message_id: None,
        detail: format!("{name} ({})", role.as_str()),
    }])?;
    say!(
        "Issued {} credential for {name}: {}",
        if role == Role::Officer {
            "an officer"
        } else {
            "a viewer"
        },
        out.display()
    );
    say!("Give the file to {name} only (it holds their signing key); it is valid for one year.");
    crate::notify::apply_to_running_node(dir);
    Ok(())
}

/// `hotlined operator list`.
pub fn list(dir: &Path) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let ops = store.operators()?;
    if ops.is_empty() {
        say!(
            "No operators. Issue a credential with: hotlined operator add --dir {} --name NAME --role officer --out FILE",
            dir.display()
        );
    }
    for o in ops {
        let state = if o.revoked_ms.is_some() {
            "revoked"
        } else {
            "active"
        };
        say!(
            "{:<32} {:<8} {state}",
            hotline_transport::display::line(&o.name),
            o.role
        );
    }
    Ok(())
}

/// `hotlined operator remove`: revokes a credential (the record stays, as evidence).
pub fn remove(dir: &Path, name: &str) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    if store.revoke_operator(name, now_ms())? {
        store.audit(&[AuditEvent {
            time_ms: now_ms(),
            kind: "operator_revoked".into(),
            peer: None,
            message_id: None,
            detail: name.to_owned(),
        }])?;
        say!("Revoked the credential of {name}.");
        crate::notify::apply_to_running_node(dir);
        Ok(())
    } else {
        Err(CommandError(format!(
            "no active operator named {name:?}; `hotlined operator list --dir {}` shows them",
            dir.display()
        )))
    }
}
