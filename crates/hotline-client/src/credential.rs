//! The operator's credential file (SPEC.md §15.2.2): where it is, and every check a client
//! must make before using it.

use std::path::{Path, PathBuf};

use hotline_node::operator::{self, CredentialFile};
use hotline_node::tls::NodeTlsKey;
use hotline_protocol::NodeId;
use hotline_protocol::officer::{Credential, OfficerKey};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Exit, Failure, Result};

/// The environment variable naming the credential file.
pub const ENV: &str = "HOTLINE_CREDENTIAL";

/// A checked credential: the keys to sign and to authenticate with, and how to reach the node.
///
/// `Debug` is not derived: the officer key and TLS key are secrets (their own `Debug`s redact).
pub struct Loaded {
    /// The file it came from.
    pub path: PathBuf,
    /// The verified `OfficerCredential`.
    pub credential: Credential,
    /// The operator's signing key (certified by `credential`).
    pub officer: OfficerKey,
    /// The TLS client key and certificate.
    pub tls: NodeTlsKey,
    /// The issuing node.
    pub node: NodeId,
    /// The node's TLS SPKI pin.
    pub node_pin: [u8; 32],
    /// `HOST:PORT` from the file.
    pub node_address: String,
}

/// The default location: `$XDG_CONFIG_HOME/hotline/credential`, else
/// `~/.config/hotline/credential`.
pub fn default_path() -> Option<PathBuf> {
    default_path_from(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

fn default_path_from(
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let base = xdg
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            home.filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("hotline").join("credential"))
}

/// Which file to use: `--credential`, else `$HOTLINE_CREDENTIAL`, else [`default_path`].
pub fn locate(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_owned());
    }
    if let Some(p) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    default_path().ok_or_else(|| {
        Failure::new(
            Exit::Credential,
            format!("no credential file: give --credential FILE or set {ENV} (HOME is not set, so there is no default path)"),
        )
    })
}

fn cred_err(path: &Path, what: impl std::fmt::Display) -> Failure {
    Failure::new(
        Exit::Credential,
        format!(
            "credential {}: {what}; ask your node's administrator for a new one (`hotlined operator add`)",
            path.display()
        ),
    )
}

/// Reads and checks the credential file at `path` (§15.2.2 steps 1–6).
pub fn load(path: &Path) -> Result<Loaded> {
    if !path.exists() {
        return Err(Failure::new(
            Exit::Credential,
            format!(
                "no credential file at {}: give one with --credential FILE or {ENV}=FILE, or put it at {} (your node's administrator issues it with `hotlined operator add`)",
                path.display(),
                default_path().map_or_else(
                    || "~/.config/hotline/credential".into(),
                    |p| p.display().to_string()
                ),
            ),
        ));
    }
    // Steps 1 (mode), 2 (TOML, keys), 3 (node id), 4 (credential verifies, issued by node).
    let (mut file, credential): (CredentialFile, Credential) =
        operator::load(path).map_err(|e| Failure::new(Exit::Credential, e.0))?;
    let checked = check(path, &file, credential);
    file.officer_seed.zeroize();
    file.tls_key.zeroize();
    checked
}

fn check(path: &Path, file: &CredentialFile, credential: Credential) -> Result<Loaded> {
    if file.version != 1 {
        return Err(cred_err(
            path,
            format!("version {} (this client reads version 1)", file.version),
        ));
    }
    if file.name != credential.name() || file.role != credential.role().as_str() {
        return Err(cred_err(
            path,
            "name or role differ from the signed credential's",
        ));
    }
    let node: NodeId = file
        .node
        .parse()
        .map_err(|e| cred_err(path, format!("node: {e}")))?;
    // Step 5: the seed is the officer key the credential certifies.
    let seed = Zeroizing::new(
        data_encoding::BASE64
            .decode(file.officer_seed.as_bytes())
            .map_err(|_| cred_err(path, "officer_seed is not base64"))?,
    );
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        seed.as_slice()
            .try_into()
            .map_err(|_| cred_err(path, "officer_seed is not 32 bytes"))?,
    );
    let officer = OfficerKey::from_parts(&seed, credential.clone())
        .map_err(|_| cred_err(path, "officer_seed is not the key the credential certifies"))?;
    // Step 6: one certificate, its key, and a well-formed node pin.
    let tls = NodeTlsKey::from_pem(file.tls_cert.as_bytes(), file.tls_key.as_bytes())
        .map_err(|e| cred_err(path, format!("tls_cert/tls_key: {e}")))?;
    let pin = &file.node_tls_spki_sha256;
    if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(cred_err(path, "node_tls_spki_sha256 is not 64 hex digits"));
    }
    let mut node_pin = [0u8; 32];
    let raw = data_encoding::HEXLOWER_PERMISSIVE
        .decode(pin.as_bytes())
        .map_err(|_| cred_err(path, "node_tls_spki_sha256 is not hex"))?;
    node_pin.copy_from_slice(&raw);
    Ok(Loaded {
        path: path.to_owned(),
        credential,
        officer,
        tls,
        node,
        node_pin,
        node_address: file.node_address.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_prefers_xdg_config_home_then_home() {
        let p = |x: Option<&str>, h: Option<&str>| {
            default_path_from(x.map(Into::into), h.map(Into::into))
        };
        assert_eq!(
            p(Some("/x"), Some("/h")),
            Some(PathBuf::from("/x/hotline/credential"))
        );
        assert_eq!(
            p(Some(""), Some("/h")),
            Some(PathBuf::from("/h/.config/hotline/credential"))
        );
        assert_eq!(p(None, None), None);
    }

    #[test]
    fn a_missing_file_says_how_to_give_one() {
        let Err(f) = load(Path::new("/nonexistent/hotline-credential")) else {
            panic!("loaded");
        };
        assert_eq!(f.exit, Exit::Credential);
        assert!(
            f.message.contains("--credential") && f.message.contains(ENV),
            "{}",
            f.message
        );
    }
}
