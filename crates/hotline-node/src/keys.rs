//! `hotlined keys list|rotate`: the node's encryption keys as an administrator sees and
//! renews them (SPEC.md §4.3.4). A running node checks its key file every few seconds
//! (`daemon::own_keys`), so a key made here is announced to the peers without a restart.

use std::path::Path;

use hotline_protocol::identity::EncryptionKey;
use hotline_protocol::keyring::KeyChange;
use hotline_protocol::time::UnixMillis;
use hotline_transport::encryption_keys;
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::time::utc_minute;

use crate::commands::CommandError;
use crate::config::{self, Config};
use crate::daemon::own_keys::{CHECK, describe};

/// What state a key is in at `now`, for people.
fn state(
    key: &EncryptionKey,
    announced: &[EncryptionKey],
    now: UnixMillis,
    retention: u64,
) -> String {
    if key.not_before() > now {
        "not yet valid".into()
    } else if key.not_after() < now {
        format!(
            "expired; its secret is kept until {} for envelopes still arriving",
            utc_minute(key.not_after().saturating_add(retention))
        )
    } else if EncryptionKey::select(announced, now) == Some(key) {
        "current: peers seal to it".into()
    } else {
        "valid, announced; peers seal to a newer one".into()
    }
}

/// `hotlined keys list --dir DIR`.
pub fn list(dir: &Path) -> Result<(), CommandError> {
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    let now = now_ms();
    let policy = cfg.keys.policy();
    let announced = material.certificates_at(now);
    println!("node {} ({})", cfg.name, material.identity.id());
    println!("  fingerprint  {}", material.identity.id().fingerprint());
    println!(
        "encryption keys, newest first (lifetime {} days, renewed {} days before expiry, \
         secrets kept {} days after):",
        cfg.keys.encryption_lifetime_days,
        cfg.keys.encryption_renew_days,
        cfg.keys.encryption_retention_days
    );
    for k in &material.encryption {
        let c = &k.certificate;
        println!(
            "  {}  {} to {}  {}",
            data_encoding::HEXLOWER.encode(&c.id()),
            utc_minute(c.not_before()),
            utc_minute(c.not_after()),
            state(c, &announced, now, policy.retention)
        );
    }
    if let Some(newest) = material.encryption.first() {
        let renew = newest
            .certificate
            .not_after()
            .saturating_sub(policy.renew_before);
        if renew > now {
            println!("next rotation: {} (by the running node)", utc_minute(renew));
        } else {
            println!("next rotation: due now; the running node makes it within seconds");
        }
    }
    if let Some(not_after) = hotline_transport::tls::certificate_not_after(&material.tls.cert_der) {
        println!(
            "TLS key pin {}, certificate valid until {}",
            data_encoding::HEXLOWER.encode(&material.tls.spki_sha256()),
            utc_minute(not_after)
        );
    }
    if let Some(next) = hotline_transport::tls_next::load(dir)? {
        println!(
            "next TLS key pin {}: announced to the peers by the running node, which switches to \
             it once every peer holds it (its log names the peers it waits for)",
            data_encoding::HEXLOWER.encode(&next.spki_sha256())
        );
    }
    Ok(())
}

/// `hotlined keys rotate --dir DIR`: makes a new encryption key now, and rewrites the bundle.
pub fn rotate(dir: &Path) -> Result<(), CommandError> {
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    let now = now_ms();
    let (keys, changes) =
        encryption_keys::maintain(dir, &material.identity, now, &cfg.keys.policy(), true)?;
    for c in &changes {
        match c {
            KeyChange::Created(k) => println!("made {}", describe(k)),
            KeyChange::Destroyed(k) => println!("destroyed the secret of {}", describe(k)),
        }
    }
    let material = Material {
        encryption: keys,
        ..material
    };
    let bundle = material
        .bundle(&cfg.name, &cfg.listen, now)
        .map_err(|e| CommandError(format!("cannot make this node's bundle: {e}")))?;
    let path = crate::daemon::own_keys::write_bundle_file(dir, &bundle)?;
    println!("rewrote {} with the current keys", path.display());
    println!(
        "A running node announces the new key to its peers within {} seconds (a peer on a \
         version 1 link learns it at its next connection); peers that are not connected learn \
         it from their next Hello.",
        CHECK.as_secs()
    );
    Ok(())
}

/// `hotlined keys rotate --tls --dir DIR [--now]`: a new TLS key without downtime (SPEC.md
/// §3.6.1). It waits beside the current one; the running node announces it to every peer in a
/// new bundle and switches once each holds it. With `--now`, a waiting key is switched to at
/// once: peers that do not hold it need the new bundle file.
pub fn rotate_tls(dir: &Path, now_flag: bool) -> Result<(), CommandError> {
    use hotline_transport::tls_next;
    let cfg = Config::load(dir)?;
    let now = now_ms();
    if now_flag {
        let Some(key) = tls_next::promote(dir)? else {
            return Err(CommandError(
                "no next TLS key waits; make one with `hotlined keys rotate --tls`".into(),
            ));
        };
        let material = Material::load(dir)?;
        let bundle = material
            .bundle(&cfg.name, &cfg.listen, now)
            .map_err(|e| CommandError(format!("cannot make this node's bundle: {e}")))?;
        let path = crate::daemon::own_keys::write_bundle_file(dir, &bundle)?;
        println!(
            "Switched to the next TLS key (pin {}); rewrote {}.",
            data_encoding::HEXLOWER.encode(&key.spki_sha256()),
            path.display()
        );
        println!(
            "A running node uses it within {} seconds. A peer that did not hold the new bundle refuses this node until it is given that file (`hotlined peer update --bundle`), and an operator whose client did not learn the new key needs a renewed credential (`hotlined operator renew`).",
            CHECK.as_secs()
        );
        return Ok(());
    }
    if cfg.ca.is_some() {
        return Err(CommandError(
            "this node has a [ca] section: in private CA mode a peer checks the node's \
             certificate against the CA, so a new key needs a certificate the CA issued for it, \
             which `keys rotate --tls` cannot obtain yet. Renew the certificate for the same key \
             instead (`hotlined keys renew-tls --tls-cert FILE`), or change the key out of band \
             (new bundle to the peers, new credentials to the operators)"
                .into(),
        ));
    }
    // One rotation at a time: a peer keeps one replaced key beside the new one (SPEC.md §3.6.1).
    if let Some(waiting) = tls_next::load(dir)? {
        return Err(CommandError(format!(
            "a next TLS key waits already (pin {}); the running node switches to it once every \
             peer holds it, or switch now with `hotlined keys rotate --tls --now --dir {}`",
            data_encoding::HEXLOWER.encode(&waiting.spki_sha256()),
            dir.display()
        )));
    }
    let key = tls_next::make(dir, &cfg.name, &cfg.listen, now)?;
    println!(
        "Made a new TLS key (pin {}) in {}; the current key stays in use for now.",
        data_encoding::HEXLOWER.encode(&key.spki_sha256()),
        dir.join(tls_next::TLS_NEXT_KEY_FILE).display()
    );
    println!(
        "The running node announces it to every peer in a new bundle (version 2 links) within {} seconds, tells operators' clients when they connect, and switches to it once every peer holds it (its log says which peers it waits for; `hotlined keys rotate --tls --now` switches at once).",
        CHECK.as_secs()
    );
    Ok(())
}

/// `hotlined keys renew-tls --dir DIR [--tls-cert FILE]`: a new certificate for the node's
/// same TLS key, so its pin (in the peers' bundles and the operators' credential files) stays
/// valid. Without `--tls-cert`, a new self-signed certificate (pinned mode), valid 800 days;
/// with it, a certificate the private CA issued for this key (checked against the profile of
/// SPEC.md §3.5). A running node uses it for new connections within seconds.
pub fn renew_tls(dir: &Path, cert: Option<&Path>) -> Result<(), CommandError> {
    use hotline_transport::tls::{self, NodeTlsKey};
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    let now = now_ms();
    let renewed = match cert {
        None => Material::renewed_self_signed(&material.tls, &cfg.name, &cfg.listen, now)
            .map_err(|e| CommandError(format!("cannot make the certificate: {e}")))?,
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| CommandError(format!("{}: {e}", path.display())))?;
            let (_, key_pem) = material.tls.to_pem();
            let new = NodeTlsKey::from_pem(&pem, key_pem.as_bytes()).map_err(|e| {
                CommandError(format!(
                    "{}: {e}; it must certify this node's TLS key (the one in {}): a new key \
                     would need new bundles at the peers and new credential files",
                    path.display(),
                    hotline_transport::material::TLS_KEY_FILE
                ))
            })?;
            tls::check_validity(&new.cert_der, now)
                .map_err(|e| CommandError(format!("{}: not valid now: {e}", path.display())))?;
            new
        }
    };
    if renewed.spki_sha256() != material.tls.spki_sha256() {
        return Err(CommandError(
            "the new certificate is for another key; refused (the pin must not change)".into(),
        ));
    }
    let path = dir.join(config::TLS_CERT_FILE);
    let tmp = path.with_extension("new");
    let (cert_pem, _) = renewed.to_pem();
    std::fs::write(&tmp, cert_pem)?;
    std::fs::rename(&tmp, &path)?;
    let until = tls::certificate_not_after(&renewed.cert_der).unwrap_or(0);
    println!(
        "Renewed the TLS certificate in {}: valid until {}, for the same key (its pin is \
         unchanged: peers and operators need nothing new).",
        path.display(),
        utc_minute(until)
    );
    println!(
        "A running node uses it for new connections within {} seconds (or at once on SIGHUP); \
         connections already up keep theirs.",
        CHECK.as_secs()
    );
    Ok(())
}
