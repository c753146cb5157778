//! `hotlined init | peer | check`: the offline commands.

use std::path::Path;

use hotline_protocol::bundle::PeerBundle;

use crate::config::{self, Config};
use crate::material::{Material, now_ms};
use crate::store::sqlite::SqliteStore;
use crate::store::{PeerRecord, Store};

/// A command failed; the message says what to do.
#[derive(Debug)]
pub struct CommandError(pub String);

impl<E: std::fmt::Display> From<E> for CommandError {
    fn from(e: E) -> Self {
        CommandError(e.to_string())
    }
}

/// `hotlined init`.
pub fn init(dir: &Path, name: &str, listen: &str) -> Result<(), CommandError> {
    let cfg = Config {
        name: name.to_owned(),
        listen: listen.to_owned(),
        limits: Default::default(),
        deadlines: Default::default(),
    };
    cfg.validate()
        .map_err(|e| CommandError(format!("invalid argument: {e}")))?;
    if dir.join(config::CONFIG_FILE).exists() {
        return Err(CommandError(format!(
            "{} already holds a node ({} exists); hotlined init never overwrites keys",
            dir.display(),
            config::CONFIG_FILE
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CommandError(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let now = now_ms();
    let material = Material::create(dir, name, now)?;
    std::fs::write(dir.join(config::CONFIG_FILE), cfg.to_toml())?;
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    store.audit(&[crate::store::AuditEvent {
        time_ms: now,
        kind: "initialised".into(),
        peer: None,
        message_id: None,
        detail: format!("node {name} created"),
    }])?;
    let bundle = material.bundle(&cfg, now)?;
    std::fs::write(dir.join(config::BUNDLE_FILE), bundle.to_armored())?;
    println!("Created node {name} in {}", dir.display());
    println!("  identity     {}", material.identity.id());
    println!("  fingerprint  {}", material.identity.id().fingerprint());
    println!("  listen       {listen}");
    println!("  bundle       {}", dir.join(config::BUNDLE_FILE).display());
    println!("Hand the bundle to the other side, and read them the fingerprint over the phone.");
    Ok(())
}

/// `hotlined peer add`.
pub fn peer_add(
    dir: &Path,
    bundle_file: &Path,
    address: &str,
    alias: Option<&str>,
) -> Result<(), CommandError> {
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    let text = std::fs::read(bundle_file)
        .map_err(|e| CommandError(format!("cannot read {}: {e}", bundle_file.display())))?;
    let bundle = PeerBundle::from_armored(&text)
        .map_err(|e| CommandError(format!("{}: {e}", bundle_file.display())))?;
    if bundle.identity() == material.identity.id() {
        return Err(CommandError(
            "that is this node's own bundle; add the other side's bundle".into(),
        ));
    }
    address_check(address)?;
    let alias = alias
        .map(str::to_owned)
        .unwrap_or_else(|| default_alias(bundle.name()));
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let now = now_ms();
    store.add_peer(&PeerRecord {
        alias: alias.clone(),
        identity: bundle.identity(),
        address: address.to_owned(),
        bundle: bundle.bytes().clone(),
        added_ms: now,
    })?;
    store.audit(&[crate::store::AuditEvent {
        time_ms: now,
        kind: "peer_added".into(),
        peer: Some(bundle.identity()),
        message_id: None,
        detail: format!("{alias} at {address}"),
    }])?;
    let _ = cfg;
    println!("Pinned peer {alias} ({}) at {address}", bundle.name());
    println!("  identity     {}", bundle.identity());
    println!(
        "  fingerprint  {}   <- compare with the other side by phone",
        bundle.identity().fingerprint()
    );
    println!("Restart `hotlined run` for the new peer to take effect.");
    Ok(())
}

fn address_check(address: &str) -> Result<(), CommandError> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| CommandError(format!("--address {address:?} must be HOST:PORT")))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(CommandError(format!(
            "--address {address:?} must be HOST:PORT"
        )));
    }
    Ok(())
}

fn default_alias(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_owned()
}

/// `hotlined peer list`.
pub fn peer_list(dir: &Path) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let peers = store.peers()?;
    if peers.is_empty() {
        println!(
            "No peers pinned. Add one with: hotlined peer add --dir {} BUNDLE --address HOST:PORT",
            dir.display()
        );
    }
    for p in peers {
        let name = PeerBundle::from_bytes(&p.bundle)
            .map(|b| b.name().to_owned())
            .unwrap_or_else(|e| format!("(bundle invalid: {e})"));
        println!(
            "{:<16} {:<24} {}  {}",
            p.alias,
            p.address,
            p.identity.fingerprint(),
            name
        );
    }
    Ok(())
}

/// `hotlined peer remove`.
pub fn peer_remove(dir: &Path, alias: &str) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    if store.remove_peer(alias)? {
        println!("Removed peer {alias}. Its messages stay in the store.");
        Ok(())
    } else {
        Err(CommandError(format!(
            "no peer with alias {alias:?}; `hotlined peer list --dir {}` shows them",
            dir.display()
        )))
    }
}

/// `hotlined check`: every problem found, each with what to do. Returns the problems.
pub fn check(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let cfg = match Config::load(dir) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let material = match Material::load(dir) {
        Ok(m) => Some(m),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    if let Some(m) = &material {
        let now = now_ms();
        if !m.encryption.iter().any(|k| k.certificate.valid_at(now)) {
            problems.push(
                "no encryption key is valid now; rotate it (a new key must be generated)".into(),
            );
        }
        if let Err(e) = crate::tls::check_validity(&m.tls.cert_der, now) {
            problems.push(format!(
                "{}: {e}",
                dir.join(config::TLS_CERT_FILE).display()
            ));
        }
        if let (Some(c), Ok(text)) = (&cfg, std::fs::read(dir.join(config::BUNDLE_FILE))) {
            match PeerBundle::from_armored(&text) {
                Ok(b) if b.identity() != m.identity.id() => problems.push(format!(
                    "{} belongs to another identity; regenerate it",
                    config::BUNDLE_FILE
                )),
                Ok(b)
                    if Some(b.tls_spki_sha256())
                        != crate::tls::spki_sha256(&m.tls.cert_der).ok().as_ref() =>
                {
                    problems.push(format!(
                        "{} pins another TLS key than {}; peers will refuse this node",
                        config::BUNDLE_FILE,
                        config::TLS_CERT_FILE
                    ))
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("{}: {e}", config::BUNDLE_FILE)),
            }
            let _ = c;
        } else if cfg.is_some() {
            problems.push(format!(
                "{} is missing; peers need it to pin this node",
                dir.join(config::BUNDLE_FILE).display()
            ));
        }
    }
    match SqliteStore::open(&dir.join(config::DB_FILE)) {
        Ok(mut store) => {
            match store.check() {
                Ok(p) => problems.extend(p.into_iter().map(|p| format!("database: {p}"))),
                Err(e) => problems.push(format!("database: {e}")),
            }
            match store.peers() {
                Ok(peers) if peers.is_empty() => problems.push(
                    "no peers pinned; add one with `hotlined peer add --dir DIR BUNDLE --address HOST:PORT`".into(),
                ),
                Ok(peers) => {
                    for p in peers {
                        if let Err(e) = PeerBundle::from_bytes(&p.bundle) {
                            problems.push(format!("peer {}: stored bundle invalid ({e}); remove and add it again", p.alias));
                        }
                    }
                }
                Err(e) => problems.push(format!("database: {e}")),
            }
        }
        Err(e) => problems.push(format!("{}: {e}", dir.join(config::DB_FILE).display())),
    }
    problems
}
