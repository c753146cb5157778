//! Operator credentials: `hotlined operator add | list | remove`.
//!
//! A credential file holds everything an operator's client needs, and is secret (mode 0600):
//! the operator's own Ed25519 key (signs the messages and acknowledgements the operator makes,
//! so receipts name the person and the node alone cannot forge them), the `OfficerCredential`
//! the node signed over that key, name and role, a TLS client key and certificate for the
//! operator API (pinned by the node), and how to reach and authenticate the node.

use std::path::Path;

use bytes::Bytes;
use hotline_protocol::officer::{Credential, Role};
use prost::Message;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::commands::CommandError;
use crate::config::{self, Config};
use crate::keyfile;
use crate::material::{Material, now_ms};
use crate::say;
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditEvent, OperatorRecord, Store};
use crate::tls::{self, NodeTlsKey};

/// How long a credential is valid.
pub const CREDENTIAL_LIFETIME: u64 = 365 * hotline_protocol::time::DAY;

/// The credential file (TOML).
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CredentialFile {
    /// Format version (1).
    pub version: u32,
    /// The operator's name.
    pub name: String,
    /// `officer` or `viewer`.
    pub role: String,
    /// The node's id, text form.
    pub node: String,
    /// Where the node listens (UDP).
    pub node_address: String,
    /// SHA-256 of the node's TLS SPKI, hex: the client pins the node with it.
    pub node_tls_spki_sha256: String,
    /// The operator's Ed25519 seed, base64. Secret.
    pub officer_seed: String,
    /// The `OfficerCredential` the node signed, base64.
    pub credential: String,
    /// The operator's TLS certificate, PEM.
    pub tls_cert: String,
    /// The operator's TLS private key, PEM. Secret.
    pub tls_key: String,
}

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
        version: 1,
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        node: material.identity.id().to_string(),
        node_address: cfg.listen.clone(),
        node_tls_spki_sha256: node_pin.iter().map(|b| format!("{b:02x}")).collect(),
        officer_seed: data_encoding::BASE64.encode(&*officer.dangerous_seed()),
        credential: data_encoding::BASE64.encode(&cred_bytes),
        tls_cert: tls_cert_pem,
        tls_key: tls_key_pem.to_string(),
    };
    let text =
        Zeroizing::new(toml::to_string_pretty(&file).map_err(|e| CommandError(e.to_string()))?);
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
    let header = "# hotline operator credential: secret, keep it mode 0600 and never share it.\n";
    keyfile::write_new(out, format!("{header}{}", *text).as_bytes())?;
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
        say!("{:<32} {:<8} {state}", o.name, o.role);
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
        Ok(())
    } else {
        Err(CommandError(format!(
            "no active operator named {name:?}; `hotlined operator list --dir {}` shows them",
            dir.display()
        )))
    }
}

/// Reads and checks a credential file (for the operator client and the tests).
pub fn load(path: &Path) -> Result<(CredentialFile, Credential), CommandError> {
    let text = keyfile::read_secret(path)?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| CommandError(format!("{} is not text", path.display())))?;
    let file: CredentialFile =
        toml::from_str(text).map_err(|e| CommandError(format!("{}: {e}", path.display())))?;
    let node: hotline_protocol::NodeId = file
        .node
        .parse()
        .map_err(|e| CommandError(format!("{}: node: {e}", path.display())))?;
    let raw = data_encoding::BASE64
        .decode(file.credential.as_bytes())
        .map_err(|_| CommandError(format!("{}: credential is not base64", path.display())))?;
    let wire = hotline_protocol::wire::OfficerCredential::decode(raw.as_slice())
        .map_err(|_| CommandError(format!("{}: credential does not decode", path.display())))?;
    let cred = Credential::verify(&wire, &node)
        .map_err(|e| CommandError(format!("{}: {e}", path.display())))?;
    Ok((file, cred))
}
