//! `hotlined init | peer | check`: the offline commands.

use std::path::Path;

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::time::UnixMillis;

use crate::config::{self, Config};
use crate::store::sqlite::SqliteStore;
use crate::store::{PeerRecord, Store, TrustMode};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::NodeTlsKey;

/// A command failed; the message says what to do.
#[derive(Debug)]
pub struct CommandError(pub String);

impl<E: std::fmt::Display> From<E> for CommandError {
    fn from(e: E) -> Self {
        CommandError(e.to_string())
    }
}

/// A TLS certificate and key to install at `init` instead of generating a self-signed pair:
/// typically issued by the private CA the peers trust (SPEC.md §3.6.2).
#[derive(Clone, Copy, Debug)]
pub struct TlsImport<'a> {
    /// PEM file with the certificate (exactly one).
    pub cert: &'a Path,
    /// PEM file with its private key.
    pub key: &'a Path,
}

impl TlsImport<'_> {
    /// Reads and checks the pair: profile of SPEC.md §3.5, key matching the certificate,
    /// valid now.
    fn load(&self) -> Result<NodeTlsKey, CommandError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map(zeroize::Zeroizing::new)
                .map_err(|e| CommandError(format!("cannot read {}: {e}", path.display())))
        };
        let (cert, key) = (read(self.cert)?, read(self.key)?);
        let tls = NodeTlsKey::from_pem(&cert, &key).map_err(|e| {
            CommandError(format!(
                "{} with {}: {e}; a node certificate must follow SPEC.md §3.5 (Ed25519 or \
                 ECDSA P-256, at most 825 days, EKU serverAuth and clientAuth, not a CA) and \
                 the key must be its own",
                self.cert.display(),
                self.key.display()
            ))
        })?;
        hotline_transport::tls::check_validity(&tls.cert_der, now_ms()).map_err(|e| {
            CommandError(format!(
                "{}: {e}; import a certificate that is valid now",
                self.cert.display()
            ))
        })?;
        Ok(tls)
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the commands' progress lines to stdout silenced on this thread (for programs
/// that embed the commands and narrate themselves, such as `hotline demo`).
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    QUIET.with(|q| q.set(true));
    let r = f();
    QUIET.with(|q| q.set(false));
    r
}

/// Whether progress lines are silenced on this thread.
pub fn is_quiet() -> bool {
    QUIET.with(|q| q.get())
}

/// `println!` unless [`quietly`] is in force.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {
        if !$crate::commands::is_quiet() {
            println!($($t)*);
        }
    };
}

/// `hotlined init`.
pub fn init(dir: &Path, name: &str, listen: &str) -> Result<(), CommandError> {
    init_with_tls(dir, name, listen, None)
}

/// `hotlined init`, importing the TLS certificate and key `tls` when given (`--tls-cert`,
/// `--tls-key`); the bundle then pins that certificate's key.
pub fn init_with_tls(
    dir: &Path,
    name: &str,
    listen: &str,
    tls: Option<TlsImport<'_>>,
) -> Result<(), CommandError> {
    init_at(dir, name, listen, tls, now_ms())
}

/// [`init_with_tls`] as if run at `now` (Unix ms): a node set up long ago, for tests of what
/// its keys do over time.
pub fn init_at(
    dir: &Path,
    name: &str,
    listen: &str,
    tls: Option<TlsImport<'_>>,
    now: UnixMillis,
) -> Result<(), CommandError> {
    let cfg = Config {
        name: name.to_owned(),
        listen: listen.to_owned(),
        limits: Default::default(),
        deadlines: Default::default(),
        ca: None,
        storage: Default::default(),
        retention: Default::default(),
        keys: Default::default(),
        dir: None,
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
    // Before anything is created: a refused certificate leaves no half-made node behind.
    let tls = tls.map(|t| t.load()).transpose()?;
    let imported = tls.is_some();
    std::fs::create_dir_all(dir)
        .map_err(|e| CommandError(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let tls = match tls {
        Some(t) => t,
        None => Material::self_signed(name, listen, now)
            .map_err(|e| CommandError(format!("cannot make the TLS certificate: {e}")))?,
    };
    let material = Material::create_with_tls(dir, name, now, Some(tls))?;
    std::fs::write(dir.join(config::CONFIG_FILE), cfg.to_toml())?;
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    store.audit(&[crate::store::AuditEvent {
        time_ms: now,
        kind: "initialised".into(),
        peer: None,
        message_id: None,
        detail: format!("node {name} created"),
    }])?;
    let bundle = material.bundle(&cfg.name, &cfg.listen, now)?;
    std::fs::write(dir.join(config::BUNDLE_FILE), bundle.to_armored())?;
    say!("Created node {name} in {}", dir.display());
    say!("  identity     {}", material.identity.id());
    say!("  fingerprint  {}", material.identity.id().fingerprint());
    say!("  listen       {listen}");
    if imported {
        say!(
            "  TLS          imported into {} (key {}, mode 0600)",
            dir.join(config::TLS_CERT_FILE).display(),
            dir.join(config::TLS_KEY_FILE).display()
        );
    }
    say!("  bundle       {}", dir.join(config::BUNDLE_FILE).display());
    say!("Hand the bundle to the other side, and read them the fingerprint over the phone.");
    Ok(())
}

/// `hotlined peer add` for a pinned-mode peer.
pub fn peer_add(
    dir: &Path,
    bundle_file: &Path,
    address: &str,
    alias: Option<&str>,
) -> Result<(), CommandError> {
    peer_add_with_trust(dir, bundle_file, address, alias, TrustMode::Pinned)
}

/// `hotlined peer add --trust pinned|ca`. Private CA mode needs `[ca]` in hotlined.toml,
/// loadable now.
pub fn peer_add_with_trust(
    dir: &Path,
    bundle_file: &Path,
    address: &str,
    alias: Option<&str>,
    trust: TrustMode,
) -> Result<(), CommandError> {
    let cfg = Config::load(dir)?;
    if trust == TrustMode::Ca {
        let ca = cfg.ca.as_ref().ok_or_else(|| {
            CommandError(format!(
                "--trust ca needs the private CA: add to {} a section\n  [ca]\n  roots = \
                 \"ca.pem\"\n  crls = [\"ca.crl.pem\"]\nnaming the CA certificate and its CRL \
                 (paths relative to the node directory), then run this again",
                dir.join(config::CONFIG_FILE).display()
            ))
        })?;
        ca.load().map_err(CommandError)?;
    }
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
    // An empty address: the peer only dials in (this node never dials it).
    if !address.is_empty() {
        address_check(address)?;
    }
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
        trust,
    })?;
    let at = if address.is_empty() {
        "without an address (it dials in; this node never dials it)".to_owned()
    } else {
        format!("at {address}")
    };
    store.audit(&[crate::store::AuditEvent {
        time_ms: now,
        kind: "peer_added".into(),
        peer: Some(bundle.identity()),
        message_id: None,
        detail: format!("{alias} {at}, trust {}", trust.as_str()),
    }])?;
    match trust {
        TrustMode::Pinned => say!(
            "Pinned peer {alias} ({}) {at}",
            hotline_transport::display::line(bundle.name())
        ),
        TrustMode::Ca => say!(
            "Added peer {alias} ({}) {at}: its certificate must come from the private CA and \
             carry the key its bundle pins",
            hotline_transport::display::line(bundle.name())
        ),
    }
    say!("  identity     {}", bundle.identity());
    say!(
        "  fingerprint  {}   <- compare with the other side by phone",
        bundle.identity().fingerprint()
    );
    crate::notify::apply_to_running_node(dir);
    Ok(())
}

/// `hotlined peer update NAME [--bundle FILE] [--address HOST:PORT]`: a new bundle from the
/// same node (new encryption keys, a new TLS key) and/or a new address. The old bundle stays in
/// the bundle history, for evidence of the messages exchanged under it.
pub fn peer_update(
    dir: &Path,
    alias: &str,
    bundle_file: Option<&Path>,
    address: Option<&str>,
) -> Result<(), CommandError> {
    if bundle_file.is_none() && address.is_none() {
        return Err(CommandError(
            "nothing to update: give --bundle FILE, --address HOST:PORT, or both".into(),
        ));
    }
    if let Some(a) = address {
        address_check(a)?;
    }
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let current = store
        .peers()?
        .into_iter()
        .find(|p| p.alias == alias)
        .ok_or_else(|| {
            CommandError(format!(
                "no peer with alias {alias:?}; `hotlined peer list --dir {}` shows them",
                dir.display()
            ))
        })?;
    let bundle = match bundle_file {
        Some(f) => {
            let text = std::fs::read(f)
                .map_err(|e| CommandError(format!("cannot read {}: {e}", f.display())))?;
            let b = PeerBundle::from_armored(&text)
                .map_err(|e| CommandError(format!("{}: {e}", f.display())))?;
            if b.identity() != current.identity {
                return Err(CommandError(format!(
                    "{} is the bundle of node {} ({}), not of peer {alias} ({}); a bundle \
                     update keeps the node. To pin another node, use `hotlined peer add`",
                    f.display(),
                    b.identity().fingerprint(),
                    hotline_transport::display::line(b.name()),
                    current.identity.fingerprint()
                )));
            }
            Some(b)
        }
        None => None,
    };
    let now = now_ms();
    store.update_peer(alias, bundle.as_ref().map(|b| b.bytes()), address, now)?;
    let mut what = Vec::new();
    if let Some(b) = &bundle {
        what.push(format!(
            "bundle {} with {} encryption key(s)",
            hotline_transport::display::line(b.name()),
            b.encryption_keys().len()
        ));
    }
    if let Some(a) = address {
        what.push(format!("address {a}"));
    }
    let what = what.join(", ");
    store.audit(&[crate::store::AuditEvent {
        time_ms: now,
        kind: "peer_updated".into(),
        peer: Some(current.identity),
        message_id: None,
        detail: format!("{alias}: {what}"),
    }])?;
    say!("Updated peer {alias}: {what}.");
    crate::notify::apply_to_running_node(dir);
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

/// `hotlined peer remove`.
pub fn peer_remove(dir: &Path, alias: &str) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let identity = store
        .peers()?
        .into_iter()
        .find(|p| p.alias == alias)
        .map(|p| p.identity);
    if store.remove_peer(alias)? {
        store.audit(&[crate::store::AuditEvent {
            time_ms: now_ms(),
            kind: "peer_removed".into(),
            peer: identity,
            message_id: None,
            detail: alias.to_owned(),
        }])?;
        say!("Removed peer {alias}. Its messages and bundles stay in the store, as evidence.");
        crate::notify::apply_to_running_node(dir);
        Ok(())
    } else {
        Err(CommandError(format!(
            "no peer with alias {alias:?}; `hotlined peer list --dir {}` shows them",
            dir.display()
        )))
    }
}

/// The node directory and the database files (`hotline.db`, `-wal`, `-shm`: messages in clear,
/// officers' names, receipts) must be readable by the node's user only: one problem per file
/// that is not, with the command that fixes it.
pub fn private_file_problems(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut problems = Vec::new();
    let db = dir.join(config::DB_FILE);
    let files = [
        (dir.to_owned(), 0o700),
        (db.clone(), 0o600),
        (db.with_extension("db-wal"), 0o600),
        (db.with_extension("db-shm"), 0o600),
    ];
    for (path, fix) in files {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a missing WAL or SHM file is fine; a missing directory fails elsewhere
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            problems.push(format!(
                "{} is readable or writable by others (mode {mode:o}); fix it with: chmod {fix:o} {}",
                path.display(),
                path.display()
            ));
        }
    }
    problems
}

/// `hotlined check`'s warnings: keys, certificates, credentials and CRLs that lapse within 30
/// days (or have lapsed, where [`check`] does not already report it), each with what to do.
/// Whatever cannot be read is left to [`check`].
pub fn expiry_warnings(dir: &Path) -> Vec<String> {
    expiry_warnings_at(dir, now_ms())
}

/// [`expiry_warnings`] as they will read at `now` (Unix milliseconds).
pub fn expiry_warnings_at(dir: &Path, now: UnixMillis) -> Vec<String> {
    let cfg = Config::load(dir).ok();
    let ca = cfg
        .as_ref()
        .and_then(|c| c.ca.as_ref())
        .and_then(|ca| ca.load().ok());
    let mut list = Vec::new();
    if let Ok(m) = Material::load(dir) {
        list.extend(crate::expiry::of_node(&m, ca.as_ref()));
        if let Ok(mut store) = SqliteStore::open(&dir.join(config::DB_FILE))
            && let Ok(ops) = store.operators()
        {
            list.extend(crate::expiry::of_operators(&m.identity.id(), &ops));
        }
    }
    // Encryption keys renew by themselves: only a renewal overdue by a day is worth a warning
    // (the node is not running, or cannot write its key file).
    let renew = cfg
        .as_ref()
        .map_or_else(
            || crate::config::Keys::default().policy(),
            |c| c.keys.policy(),
        )
        .renew_before;
    // A TLS certificate or CRL that has lapsed is a problem `check` reports.
    list.retain(|e| {
        e.at_ms > now
            || matches!(
                e.kind,
                "operator_credential" | "ca_certificate" | "encryption_key"
            )
    });
    crate::expiry::warnings(&list, now, renew)
}

/// `hotlined check`: every problem found, each with what to do. Returns the problems.
pub fn check(dir: &Path) -> Vec<String> {
    let mut problems = private_file_problems(dir);
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
    if let Some(ca) = cfg.as_ref().and_then(|c| c.ca.as_ref()) {
        match ca.load() {
            Ok(roots) => problems.extend(
                hotline_transport::tls::check_ca(&roots, now_ms())
                    .into_iter()
                    .map(|p| format!("[ca] in {}: {p}", config::CONFIG_FILE)),
            ),
            Err(e) => problems.push(e),
        }
    }
    if let Some(m) = &material {
        let now = now_ms();
        if let Err(e) = hotline_transport::tls::check_validity(&m.tls.cert_der, now) {
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
                        != hotline_transport::tls::spki_sha256(&m.tls.cert_der)
                            .ok()
                            .as_ref() =>
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
                        if p.trust == TrustMode::Ca && cfg.as_ref().is_some_and(|c| c.ca.is_none()) {
                            problems.push(format!(
                                "peer {} is trusted through the private CA but {} has no [ca] \
                                 section; add one (roots = \"ca.pem\", crls = [\"ca.crl.pem\"]) \
                                 or remove the peer and add it again with --trust pinned",
                                p.alias,
                                config::CONFIG_FILE
                            ));
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
