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
use hotline_transport::request::{self, IssuedFile, KeyRequest};
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

/// `hotlined operator add --name NAME`: generates the operator's officer key and TLS key here
/// and writes them, with the credential, into one secret file `out`, valid for
/// [`CREDENTIAL_LIFETIME`] (the old flow, kept for viewers, demos and tests).
///
/// Whoever runs this has held the officer's signing key; officers should bring their own keys
/// instead ([`add_from_request`]). The command line refuses this flow for officers unless
/// `--keys-on-node` is given.
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
    let credential = issue(
        &material,
        officer.public(),
        name,
        role,
        now - 60_000,
        now + CREDENTIAL_LIFETIME,
    )?;
    let tls_key = NodeTlsKey::generate(
        &format!("operator {name}"),
        now - 60_000,
        now + CREDENTIAL_LIFETIME,
    )?;
    let (tls_cert_pem, tls_key_pem) = tls_key.to_pem();
    let cred_bytes = credential.to_wire().encode_to_vec();
    let file = CredentialFile {
        version: credential::VERSION,
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        node: material.identity.id().to_string(),
        node_address: cfg.listen.clone(),
        node_tls_spki_sha256: request::hex32(&tls::spki_sha256(&material.tls.cert_der)?),
        node_tls_spki_sha256_next: String::new(),
        officer_seed: Zeroizing::new(data_encoding::BASE64.encode(&*officer.dangerous_seed())),
        credential: data_encoding::BASE64.encode(&cred_bytes),
        tls_cert: tls_cert_pem,
        tls_key: tls_key_pem,
    };
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    record(
        &mut store,
        &credential,
        tls_key.spki_sha256(),
        cred_bytes,
        now,
    )?;
    file.write_new(out)
        .map_err(|e| CommandError(e.to_string()))?;
    audit_added(&mut store, name, role, now, "keys generated on the node")?;
    say!(
        "Issued {} credential for {name}: {}",
        article(role),
        out.display()
    );
    say!("Give the file to {name} only (it holds their signing key); it is valid for one year.");
    crate::notify::apply_to_running_node(dir);
    Ok(())
}

/// `--valid-days` when not given: one year, as [`CREDENTIAL_LIFETIME`].
pub const DEFAULT_VALID_DAYS: u32 = 365;

/// The longest `--valid-days`: a credential is valid at most 825 days (SPEC.md §15.2.1), the
/// longest an operator TLS certificate may be (§3.5).
pub const MAX_VALID_DAYS: u32 = 825;

/// `hotlined operator add --request FILE`: issues a credential for the keys an officer made on
/// their own machine (`hotline keygen`, SPEC.md §15.2.5), and writes the public issued file
/// `out` for them. The node sees no secret of the officer.
///
/// Refused: a request whose signature, name or certificate does not verify, an officer key or
/// TLS certificate already certified here (revoked ones included), a name in use, a
/// certificate not valid now or ending before the credential would, and `valid_days` outside
/// `1..=`[`MAX_VALID_DAYS`].
pub fn add_from_request(
    dir: &Path,
    request_path: &Path,
    role: &str,
    valid_days: u32,
    out: &Path,
) -> Result<(), CommandError> {
    let role = role_of(role)?;
    if !(1..=MAX_VALID_DAYS).contains(&valid_days) {
        return Err(CommandError(format!(
            "--valid-days {valid_days}: a credential is valid 1 to {MAX_VALID_DAYS} days"
        )));
    }
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    if out.exists() {
        return Err(CommandError(format!(
            "{} exists already; choose another --out",
            out.display()
        )));
    }
    let req = KeyRequest::load(request_path).map_err(|e| {
        CommandError(format!(
            "{e}; refused. Ask the officer for a new request (`hotline keygen`)"
        ))
    })?;
    let name = req.name();
    let now = now_ms();
    // The validity is exactly `valid_days` long, from a minute ago (clock differences).
    let not_before = now - 60_000;
    let not_after = not_before + u64::from(valid_days) * hotline_protocol::time::DAY;
    tls::check_validity(req.tls_cert(), now).map_err(|e| {
        CommandError(format!(
            "{}: the TLS certificate is not valid now ({e}); is the officer's clock right?",
            request_path.display()
        ))
    })?;
    let cert_end = tls::certificate_not_after(req.tls_cert()).unwrap_or(0);
    if cert_end < not_after {
        return Err(CommandError(format!(
            "{}: the TLS certificate ends {}, before a credential of {valid_days} days would; \
             use --valid-days {} or fewer, or ask the officer for a new request",
            request_path.display(),
            hotline_transport::time::utc_minute(cert_end),
            cert_end.saturating_sub(not_before) / hotline_protocol::time::DAY
        )));
    }
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    refuse_duplicate(&mut store, &req)?;
    let credential = issue(
        &material,
        *req.officer_key(),
        name,
        role,
        not_before,
        not_after,
    )?;
    let cred_bytes = credential.to_wire().encode_to_vec();
    let issued = IssuedFile {
        version: request::VERSION,
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        node: material.identity.id().to_string(),
        node_address: cfg.listen.clone(),
        node_tls_spki_sha256: request::hex32(&tls::spki_sha256(&material.tls.cert_der)?),
        tls_spki_sha256: request::hex32(&req.tls_spki_sha256()),
        credential: data_encoding::BASE64.encode(&cred_bytes),
    };
    record(
        &mut store,
        &credential,
        req.tls_spki_sha256(),
        cred_bytes,
        now,
    )?;
    issued
        .write_new(out)
        .map_err(|e| CommandError(e.to_string()))?;
    let fingerprint = request::fingerprint(req.officer_key());
    audit_added(
        &mut store,
        name,
        role,
        now,
        &format!("key {fingerprint}, from a request"),
    )?;
    say!(
        "Issued {} credential for {} from their request, valid until {}: {}",
        article(role),
        hotline_transport::display::line(name),
        hotline_transport::time::utc_minute(not_after),
        out.display()
    );
    say!("Officer key fingerprint: {fingerprint}");
    say!(
        "Compare it with the one {} read you (`hotline keygen` printed it), then hand back {} \
         (public); they finish with: hotline credential import --keys DIR --issued {}",
        hotline_transport::display::line(name),
        out.display(),
        crate::operator::file_name(out)
    );
    crate::notify::apply_to_running_node(dir);
    Ok(())
}

/// Refuses, with a message naming the operator in the way, a request whose name, officer key
/// or TLS certificate is already in the operator table (revoked entries included: a key
/// certified once names that operator's signatures forever).
fn refuse_duplicate(store: &mut SqliteStore, req: &KeyRequest) -> Result<(), CommandError> {
    for o in store.operators()? {
        let who = hotline_transport::display::line(&o.name);
        let state = if o.revoked_ms.is_some() {
            "revoked"
        } else {
            "active"
        };
        if o.officer_key == *req.officer_key() {
            return Err(CommandError(format!(
                "this officer key is already certified for {who:?} ({state}); refused: each \
                 credential needs new keys (`hotline keygen`)"
            )));
        }
        if o.tls_spki_sha256 == req.tls_spki_sha256() {
            return Err(CommandError(format!(
                "this TLS certificate's key is already the pin of {who:?} ({state}); refused: \
                 each credential needs new keys (`hotline keygen`)"
            )));
        }
        if o.name == req.name() {
            return Err(CommandError(format!(
                "an operator named {who:?} exists already ({state}); refused. Ask for a \
                 request under another name, or revoke the old one first \
                 (`hotlined operator remove`) if it is active"
            )));
        }
    }
    Ok(())
}

/// Issues the `OfficerCredential`, valid from `not_before` to `not_after`.
fn issue(
    material: &Material,
    officer_key: [u8; 32],
    name: &str,
    role: Role,
    not_before: u64,
    not_after: u64,
) -> Result<Credential, CommandError> {
    Credential::issue(
        &material.identity,
        officer_key,
        name,
        role,
        not_before,
        not_after,
    )
    .map_err(|e| {
        CommandError(format!(
            "cannot issue the credential: {e} (a name is 1..=128 bytes)"
        ))
    })
}

/// Adds the operator to the operator table.
fn record(
    store: &mut SqliteStore,
    credential: &Credential,
    tls_spki_sha256: [u8; 32],
    cred_bytes: Vec<u8>,
    now: u64,
) -> Result<(), CommandError> {
    store.add_operator(&OperatorRecord {
        name: credential.name().to_owned(),
        role: credential.role().as_str().to_owned(),
        officer_key: *credential.officer_key(),
        tls_spki_sha256,
        credential: Bytes::from(cred_bytes),
        added_ms: now,
        revoked_ms: None,
    })?;
    Ok(())
}

fn audit_added(
    store: &mut SqliteStore,
    name: &str,
    role: Role,
    now: u64,
    how: &str,
) -> Result<(), CommandError> {
    store.audit(&[AuditEvent {
        time_ms: now,
        kind: "operator_added".into(),
        peer: None,
        message_id: None,
        detail: format!("{name} ({}; {how})", role.as_str()),
    }])?;
    Ok(())
}

/// The file name of `out` (its whole path if it has none), for the command to run next.
pub(crate) fn file_name(out: &Path) -> String {
    out.file_name().map_or_else(
        || out.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    )
}

fn article(role: Role) -> &'static str {
    if role == Role::Officer {
        "an officer"
    } else {
        "a viewer"
    }
}

/// What `hotlined operator add` says when asked to generate an officer's keys on the node
/// without `--keys-on-node`.
pub fn officer_keys_on_node_refused(dir: &Path, name: &str) -> CommandError {
    CommandError(format!(
        "refused: an officer's signing key should be made on the officer's own machine, not on \
         the node (whoever holds it can sign in {name:?}'s name). Have the officer run \
         `hotline keygen --name {name:?} --out DIR` and send you DIR/request; then issue with \
         `hotlined operator add --dir {} --request REQUEST --role officer --out ISSUED` and hand \
         ISSUED back; they finish with `hotline credential import --keys DIR --issued ISSUED`. \
         To generate the keys here anyway (demos, tests), add --keys-on-node.",
        dir.display()
    ))
}

/// `hotlined operator remove`: revokes a credential (the record stays, as evidence), and
/// retires its officer key: a revocation without a compromise time tells the peers that
/// signatures by it from now on do not count (SPEC.md §4.6).
pub fn remove(dir: &Path, name: &str) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let now = now_ms();
    if store.revoke_operator(name, now)? {
        store.audit(&[AuditEvent {
            time_ms: now,
            kind: "operator_revoked".into(),
            peer: None,
            message_id: None,
            detail: name.to_owned(),
        }])?;
        say!("Revoked the credential of {name}.");
        let record = store
            .operators()?
            .into_iter()
            .find(|o| o.name == name && o.revoked_ms == Some(now));
        if let Some(record) = record {
            let identity = hotline_transport::material::Material::load(dir)?.identity;
            crate::revoke::issue(
                &mut store,
                &identity,
                &record,
                now,
                None,
                "operator removed",
            )?;
            say!(
                "Peers on version 2 links are told that the key's signatures from now on do not count; if the key may have been stolen earlier, say since when with `hotlined keys revoke --dir {} --officer {name:?} --compromised-since WHEN`.",
                dir.display()
            );
        }
        crate::notify::apply_to_running_node(dir);
        Ok(())
    } else {
        Err(CommandError(format!(
            "no active operator named {name:?}; `hotlined operator list --dir {}` shows them",
            dir.display()
        )))
    }
}
