//! The operator credential file (SPEC.md §15.2.2): its format, and every check a client must
//! make before using it.
//!
//! A credential file holds everything an operator's client needs, and is secret (mode 0600):
//! the operator's own Ed25519 key (signs the messages and acknowledgements the operator makes,
//! so receipts name the person and the node alone cannot forge them), the `OfficerCredential`
//! the node signed over that key, name and role, a TLS client key and certificate for the
//! operator API (pinned by the node), and how to reach and authenticate the node.
//!
//! The operator's client writes it from keys it made itself and the credential the node
//! issued for them (`hotline credential import`, see `officer_keys`, SPEC.md §15.2.5), or the
//! node writes it with keys it made (`hotlined operator add --name`); the operator client
//! reads it. All use this module, so they cannot disagree on the format.

use std::path::{Path, PathBuf};

use hotline_protocol::NodeId;
use hotline_protocol::officer::{Credential, OfficerKey};
use prost::Message;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keyfile::{self, KeyFileError};
use crate::tls::NodeTlsKey;

/// The format version this code reads and writes.
pub const VERSION: u32 = 1;

/// The first line of every credential file.
const HEADER: &str =
    "# hotline operator credential: secret, keep it mode 0600 and never share it.\n";

/// The credential file (TOML). The two secret fields are zeroized on drop.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFile {
    /// Format version ([`VERSION`]).
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
    /// The node's next TLS key while it rotates (SPEC.md §15.5.9), hex; the client accepts it
    /// too, and makes it the pin once the node presents it. Empty: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_tls_spki_sha256_next: String,
    /// The operator's Ed25519 seed, base64. Secret.
    pub officer_seed: Zeroizing<String>,
    /// The `OfficerCredential` the node signed, base64.
    pub credential: String,
    /// The operator's TLS certificate, PEM.
    pub tls_cert: String,
    /// The operator's TLS private key, PEM. Secret.
    pub tls_key: Zeroizing<String>,
}

impl std::fmt::Debug for CredentialFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialFile")
            .field("version", &self.version)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("node", &self.node)
            .field("node_address", &self.node_address)
            .finish_non_exhaustive()
    }
}

/// Why a credential file cannot be used. The message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The file is missing, unreadable, or readable by others.
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// The file is there but its content is wrong.
    #[error("credential {path}: {msg}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

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
    /// The node's next TLS key, while it rotates.
    pub node_pin_next: Option<[u8; 32]>,
    /// `HOST:PORT` from the file.
    pub node_address: String,
}

impl CredentialFile {
    /// Writes the file at `out` (mode 0600, never overwriting), with a header that says it is
    /// secret.
    pub fn write_new(&self, out: &Path) -> Result<(), CredentialError> {
        keyfile::write_new(out, self.text(out)?.as_bytes())?;
        Ok(())
    }

    /// Replaces the file at `out` atomically (a renewed credential for the same keys).
    pub fn write_replace(&self, out: &Path) -> Result<(), CredentialError> {
        keyfile::write_replace(out, self.text(out)?.as_bytes())?;
        Ok(())
    }

    fn text(&self, out: &Path) -> Result<Zeroizing<String>, CredentialError> {
        let text =
            Zeroizing::new(
                toml::to_string_pretty(self).map_err(|e| CredentialError::Invalid {
                    path: out.to_owned(),
                    msg: e.to_string(),
                })?,
            );
        let mut all = Zeroizing::new(String::with_capacity(HEADER.len() + text.len()));
        all.push_str(HEADER);
        all.push_str(&text);
        Ok(all)
    }
}

/// Reads and checks the credential file at `path` (SPEC.md §15.2.2 steps 1–6): mode 0600, TOML
/// with exactly the known keys, the node id, the credential issued by that node, the seed that
/// credential certifies, one TLS certificate with its key, and a well-formed node pin.
pub fn load(path: &Path) -> Result<Loaded, CredentialError> {
    let invalid = |msg: String| CredentialError::Invalid {
        path: path.to_owned(),
        msg,
    };
    // Step 1: mode 0600 (read_secret refuses files others can read).
    let text = keyfile::read_secret(path)?;
    // Step 2: TOML with exactly the known keys.
    let text = std::str::from_utf8(&text).map_err(|_| invalid("not text".into()))?;
    let file: CredentialFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if file.version != VERSION {
        return Err(invalid(format!(
            "version {} (this software reads version {VERSION})",
            file.version
        )));
    }
    // Steps 3 and 4: the node id, and the credential that node issued.
    let node: NodeId = file
        .node
        .parse()
        .map_err(|e| invalid(format!("node: {e}")))?;
    let raw = data_encoding::BASE64
        .decode(file.credential.as_bytes())
        .map_err(|_| invalid("credential is not base64".into()))?;
    let wire = hotline_protocol::wire::OfficerCredential::decode(raw.as_slice())
        .map_err(|_| invalid("credential does not decode".into()))?;
    let credential = Credential::verify(&wire, &node).map_err(|e| invalid(e.to_string()))?;
    if file.name != credential.name() || file.role != credential.role().as_str() {
        return Err(invalid(
            "name or role differ from the signed credential's".into(),
        ));
    }
    // Step 5: the seed is the officer key the credential certifies.
    let seed = Zeroizing::new(
        data_encoding::BASE64
            .decode(file.officer_seed.as_bytes())
            .map_err(|_| invalid("officer_seed is not base64".into()))?,
    );
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        seed.as_slice()
            .try_into()
            .map_err(|_| invalid("officer_seed is not 32 bytes".into()))?,
    );
    let officer = OfficerKey::from_parts(&seed, credential.clone())
        .map_err(|_| invalid("officer_seed is not the key the credential certifies".into()))?;
    // Step 6: one certificate, its key, and a well-formed node pin.
    let tls = NodeTlsKey::from_pem(file.tls_cert.as_bytes(), file.tls_key.as_bytes())
        .map_err(|e| invalid(format!("tls_cert/tls_key: {e}")))?;
    let node_pin = pin_of(&file.node_tls_spki_sha256)
        .ok_or_else(|| invalid("node_tls_spki_sha256 is not 64 hex digits".into()))?;
    let node_pin_next = match file.node_tls_spki_sha256_next.as_str() {
        "" => None,
        next => Some(
            pin_of(next)
                .ok_or_else(|| invalid("node_tls_spki_sha256_next is not 64 hex digits".into()))?,
        ),
    };
    Ok(Loaded {
        path: path.to_owned(),
        credential,
        officer,
        tls,
        node,
        node_pin,
        node_pin_next,
        node_address: file.node_address.clone(),
    })
}

fn pin_of(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

/// Rewrites the node pins of the credential file at `path` (SPEC.md §15.5.9): `pin` becomes
/// the pin, `next` the next key (or none). The rest of the file is kept as it is.
pub fn set_node_pins(
    path: &Path,
    pin: [u8; 32],
    next: Option<[u8; 32]>,
) -> Result<(), CredentialError> {
    let text = keyfile::read_secret(path)?;
    let mut file: CredentialFile =
        toml::from_str(
            std::str::from_utf8(&text).map_err(|_| CredentialError::Invalid {
                path: path.to_owned(),
                msg: "not UTF-8".into(),
            })?,
        )
        .map_err(|e| CredentialError::Invalid {
            path: path.to_owned(),
            msg: e.to_string(),
        })?;
    file.node_tls_spki_sha256 = data_encoding::HEXLOWER.encode(&pin);
    file.node_tls_spki_sha256_next = next
        .map(|n| data_encoding::HEXLOWER.encode(&n))
        .unwrap_or_default();
    file.write_replace(path)
}
