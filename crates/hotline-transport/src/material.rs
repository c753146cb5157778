//! The node's key material on disk: identity, encryption keys, TLS key and certificate, and the
//! peer bundle made from them.

use std::path::Path;
use std::sync::Arc;

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use hotline_protocol::time::{DAY, UnixMillis};

use crate::keyfile::{self, KeyFileError};
use crate::tls::{NodeTlsKey, TlsError};

/// Identity key file, inside the node directory.
pub const IDENTITY_FILE: &str = "identity.key";
/// Encryption key file.
pub const ENCRYPTION_FILE: &str = "encryption.key";
/// TLS certificate (PEM).
pub const TLS_CERT_FILE: &str = "tls.pem";
/// TLS private key (PEM).
pub const TLS_KEY_FILE: &str = "tls.key";
/// The node's own peer bundle, the file handed to the other side.
pub const BUNDLE_FILE: &str = "bundle";

/// How long the first encryption key is valid: the default lifetime of SPEC.md §4.3.4 (a
/// running node renews it by `[keys]`).
pub const ENCRYPTION_KEY_LIFETIME: u64 = 30 * DAY;
/// How long a new TLS certificate is valid (the profile allows at most 825 days).
pub const TLS_LIFETIME: u64 = 800 * DAY;

/// Everything secret a node holds.
pub struct Material {
    /// The identity key.
    pub identity: Arc<IdentityKey>,
    /// Encryption key pairs, newest first.
    pub encryption: Vec<EncryptionKeypair>,
    /// The TLS key and certificate.
    pub tls: NodeTlsKey,
}

impl core::fmt::Debug for Material {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Material({})", self.identity.id())
    }
}

impl Material {
    /// Generates new material and writes it into `dir` (which must not hold keys yet).
    pub fn create(dir: &Path, name: &str, now: UnixMillis) -> Result<Material, KeyFileError> {
        Self::create_with_tls(dir, name, now, None)
    }

    /// The self-signed TLS key `hotlined init` makes for a node named `name` listening on
    /// `listen` (SPEC.md §3.5): common name `name`; subjectAltName the address it listens on
    /// (an iPAddress, or a dNSName for a host name), or `name` when it listens on every
    /// interface (0.0.0.0 or ::), which names no address a peer could dial.
    pub fn self_signed(name: &str, listen: &str, now: UnixMillis) -> Result<NodeTlsKey, TlsError> {
        NodeTlsKey::generate_named(name, &[alt_name(name, listen)], now, now + TLS_LIFETIME)
    }

    /// A new self-signed certificate for the TLS key `tls` already held, named as
    /// [`Material::self_signed`] names one, valid [`TLS_LIFETIME`] from `now`: the key and its
    /// pin stay the same, so peers and operators need nothing new.
    pub fn renewed_self_signed(
        tls: &NodeTlsKey,
        name: &str,
        listen: &str,
        now: UnixMillis,
    ) -> Result<NodeTlsKey, TlsError> {
        tls.renew_self_signed(
            name,
            &[alt_name(name, listen)],
            now - 60_000,
            now + TLS_LIFETIME,
        )
    }

    /// [`Material::create`], with the TLS key and certificate `tls` (e.g. issued by a private
    /// CA) instead of a generated self-signed one when given.
    pub fn create_with_tls(
        dir: &Path,
        name: &str,
        now: UnixMillis,
        tls: Option<NodeTlsKey>,
    ) -> Result<Material, KeyFileError> {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        for f in [IDENTITY_FILE, ENCRYPTION_FILE, TLS_KEY_FILE, TLS_CERT_FILE] {
            if dir.join(f).exists() {
                return Err(KeyFileError::Exists(dir.join(f)));
            }
        }
        let identity = IdentityKey::generate(&mut rng);
        let enc = EncryptionKeypair::generate(
            &identity,
            now - 60_000,
            now + ENCRYPTION_KEY_LIFETIME,
            &mut rng,
        );
        let tls = match tls {
            Some(tls) => tls,
            None => NodeTlsKey::generate(name, now, now + TLS_LIFETIME).map_err(|e| {
                KeyFileError::Invalid {
                    path: dir.join(TLS_KEY_FILE),
                    kind: "TLS key",
                    msg: e.to_string(),
                }
            })?,
        };
        keyfile::write_new(
            &dir.join(IDENTITY_FILE),
            keyfile::encode("identity key", &[&*identity.dangerous_seed()]).as_bytes(),
        )?;
        crate::encryption_keys::create(dir, core::slice::from_ref(&enc))?;
        let (cert_pem, key_pem) = tls.to_pem();
        keyfile::write_new(&dir.join(TLS_KEY_FILE), key_pem.as_bytes())?;
        std::fs::write(dir.join(TLS_CERT_FILE), cert_pem).map_err(|err| KeyFileError::Io {
            path: dir.join(TLS_CERT_FILE),
            err,
        })?;
        Ok(Material {
            identity: Arc::new(identity),
            encryption: vec![enc],
            tls,
        })
    }

    /// Loads material from `dir`, refusing key files others can read.
    pub fn load(dir: &Path) -> Result<Material, KeyFileError> {
        let path = dir.join(IDENTITY_FILE);
        let text = keyfile::read_secret(&path)?;
        let parts = keyfile::decode(&path, "identity key", &text, 1)?;
        let seed: [u8; 32] = parts[0]
            .as_slice()
            .try_into()
            .map_err(|_| KeyFileError::Invalid {
                path: path.clone(),
                kind: "identity key",
                msg: "seed must be 32 bytes".into(),
            })?;
        let identity = IdentityKey::from_seed(&seed).ok_or_else(|| KeyFileError::Invalid {
            path: path.clone(),
            kind: "identity key",
            msg: "not a valid Ed25519 identity".into(),
        })?;

        let encryption = crate::encryption_keys::load(dir, &identity)?;

        let key_path = dir.join(TLS_KEY_FILE);
        let key_pem = keyfile::read_secret(&key_path)?;
        let cert_path = dir.join(TLS_CERT_FILE);
        let cert_pem = std::fs::read(&cert_path).map_err(|err| KeyFileError::Io {
            path: cert_path.clone(),
            err,
        })?;
        let tls = NodeTlsKey::from_pem(&cert_pem, &key_pem).map_err(|e| KeyFileError::Invalid {
            path: key_path,
            kind: "TLS key",
            msg: e.to_string(),
        })?;
        Ok(Material {
            identity: Arc::new(identity),
            encryption,
            tls,
        })
    }

    /// The encryption key certificates to announce at `now` (SPEC.md §4.3.4): those not yet
    /// expired, newest first, at most four.
    pub fn certificates_at(&self, now: UnixMillis) -> Vec<EncryptionKey> {
        hotline_protocol::keyring::announced(&self.encryption, now)
    }

    /// Every encryption key certificate held, newest first, expired ones included.
    pub fn certificates(&self) -> Vec<EncryptionKey> {
        self.encryption
            .iter()
            .map(|k| k.certificate.clone())
            .collect()
    }

    /// This node's peer bundle, naming the node `name` that listens at `listen`.
    pub fn bundle(
        &self,
        name: &str,
        listen: &str,
        now: UnixMillis,
    ) -> Result<PeerBundle, hotline_protocol::bundle::BundleError> {
        PeerBundle::create(
            &self.identity,
            name,
            crate::tls::spki_sha256(&self.tls.cert_der).unwrap_or([0; 32]),
            &self.certificates_at(now),
            &[listen.to_owned()],
            now,
        )
    }
}

/// The subjectAltName of a self-signed certificate: the address it listens on (an iPAddress,
/// or a dNSName for a host name), or `name` when it listens on every interface.
pub(crate) fn alt_name<'a>(name: &'a str, listen: &'a str) -> &'a str {
    let host = listen_host(listen);
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => name,
        Ok(_) => host,
        Err(_) if host.is_empty() => name,
        Err(_) => host,
    }
}

/// The host part of a `HOST:PORT` listen address (`[v6]:port` without the brackets).
fn listen_host(listen: &str) -> &str {
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}
