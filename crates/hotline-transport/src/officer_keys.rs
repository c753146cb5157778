//! An officer's key directory, made on the officer's own machine by `hotline keygen` (SPEC.md
//! §15.2.5): the secret keys (mode 0600), the public request to hand to the node's
//! administrator, and, once the node has issued the credential, the usual credential file.
//!
//! The directory holds:
//! - [`SECRET_FILE`] (0600): the officer's Ed25519 seed and the operator TLS key and
//!   certificate. It never leaves the machine.
//! - [`REQUEST_FILE`] (public): the [`KeyRequest`] for the administrator.
//! - [`CREDENTIAL_FILE`] (0600), written by [`OfficerKeys::import`] from the node's
//!   [`IssuedFile`]: a credential file of §15.2.2, which every `hotline` command reads.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hotline_protocol::NodeId;
use hotline_protocol::crypto::{KEY_LEN, SecretSigningKey};
use hotline_protocol::officer::Credential;
use hotline_protocol::time::DAY;
use prost::Message;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::credential::{self, CredentialError, CredentialFile, Loaded};
use crate::keyfile::{self, KeyFileError};
use crate::request::{self, IssuedFile, KeyRequest, RequestError};
use crate::tls::NodeTlsKey;

/// The secret file, inside the key directory.
pub const SECRET_FILE: &str = "secret-keys";
/// The public request file, inside the key directory.
pub const REQUEST_FILE: &str = "request";
/// The credential file [`OfficerKeys::import`] writes by default, inside the key directory.
pub const CREDENTIAL_FILE: &str = "credential";

/// How long the operator TLS certificate of a key request is valid: the longest the
/// certificate profile allows (825 days). The administrator chooses the credential's validity
/// later (`--valid-days`, at most 825), and the certificate must not end it early: the node
/// refuses to issue a credential that would outlive the certificate.
pub const TLS_LIFETIME: u64 = 825 * DAY;

/// The first line of the secret file.
const SECRET_HEADER: &str = "# hotline officer keys: secret, keep it mode 0600 and never share it; \
     hand over `request`, never this file.\n";

/// The secret file (TOML). The two secret fields are zeroized on drop.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretToml {
    version: u32,
    name: String,
    officer_seed: Zeroizing<String>,
    tls_cert: String,
    tls_key: Zeroizing<String>,
}

/// Why a key directory cannot be made or used. The message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// A secret file is missing, unreadable, readable by others, or exists already.
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// The request or the issued file cannot be read or written.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The credential file written does not load.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The content is wrong, or the issued credential is not for these keys.
    #[error("{path}: {msg}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// An officer's secret keys: the signing key and the operator TLS key and certificate.
///
/// `Debug` shows only the name and the public key's fingerprint.
pub struct OfficerKeys {
    name: String,
    officer: SecretSigningKey,
    tls: NodeTlsKey,
}

impl std::fmt::Debug for OfficerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficerKeys")
            .field("name", &self.name)
            .field("officer_key", &request::fingerprint(&self.officer.public()))
            .finish_non_exhaustive()
    }
}

impl OfficerKeys {
    /// Generates an officer key and an operator TLS key with a self-signed certificate, made
    /// as `hotlined operator add` makes it (§15.2.3), valid from a minute before `now` for
    /// [`TLS_LIFETIME`].
    pub fn generate(name: &str, now: u64) -> Result<OfficerKeys, String> {
        request::check_name(name)?;
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let officer = SecretSigningKey::generate(&mut rng);
        let not_before = now.saturating_sub(60_000);
        let tls = NodeTlsKey::generate(
            &format!("operator {name}"),
            not_before,
            not_before + TLS_LIFETIME,
        )
        .map_err(|e| format!("cannot make the operator TLS certificate: {e}"))?;
        Ok(OfficerKeys {
            name: name.to_owned(),
            officer,
            tls,
        })
    }

    /// Makes the key directory `dir` for `name` (mode 0700; it must not exist or be empty):
    /// new keys in [`SECRET_FILE`] (0600) and their request, signed at `now`, in
    /// [`REQUEST_FILE`].
    pub fn create(
        dir: &Path,
        name: &str,
        now: u64,
    ) -> Result<(OfficerKeys, KeyRequest), KeysError> {
        let invalid = |msg: String| KeysError::Invalid {
            path: dir.to_owned(),
            msg,
        };
        let keys = Self::generate(name, now).map_err(invalid)?;
        let request = KeyRequest::sign(&keys.officer, name, keys.tls.cert_der.clone(), now)
            .map_err(invalid)?;
        make_private_dir(dir)?;
        let (cert_pem, key_pem) = keys.tls.to_pem();
        let secret = SecretToml {
            version: request::VERSION,
            name: name.to_owned(),
            officer_seed: Zeroizing::new(
                data_encoding::BASE64.encode(&*keys.officer.dangerous_seed()),
            ),
            tls_cert: cert_pem,
            tls_key: key_pem,
        };
        let text =
            Zeroizing::new(toml::to_string_pretty(&secret).map_err(|e| invalid(e.to_string()))?);
        let mut all = Zeroizing::new(String::with_capacity(SECRET_HEADER.len() + text.len()));
        all.push_str(SECRET_HEADER);
        all.push_str(&text);
        keyfile::write_new(&dir.join(SECRET_FILE), all.as_bytes())?;
        request.write_new(&dir.join(REQUEST_FILE))?;
        Ok((keys, request))
    }

    /// Loads the keys of the key directory `dir`, refusing a secret file others can read.
    pub fn load(dir: &Path) -> Result<OfficerKeys, KeysError> {
        let path = dir.join(SECRET_FILE);
        let invalid = |msg: String| KeysError::Invalid {
            path: path.clone(),
            msg,
        };
        let text = keyfile::read_secret(&path)?;
        let text = std::str::from_utf8(&text).map_err(|_| invalid("not text".into()))?;
        let file: SecretToml = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.version != request::VERSION {
            return Err(invalid(format!(
                "version {} (this software reads version {})",
                file.version,
                request::VERSION
            )));
        }
        let seed: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(
            Zeroizing::new(
                data_encoding::BASE64
                    .decode(file.officer_seed.as_bytes())
                    .map_err(|_| invalid("officer_seed is not base64".into()))?,
            )
            .as_slice()
            .try_into()
            .map_err(|_| invalid("officer_seed is not 32 bytes".into()))?,
        );
        let tls = NodeTlsKey::from_pem(file.tls_cert.as_bytes(), file.tls_key.as_bytes())
            .map_err(|e| invalid(format!("tls_cert/tls_key: {e}")))?;
        Ok(OfficerKeys {
            name: file.name,
            officer: SecretSigningKey::from_seed(&seed),
            tls,
        })
    }

    /// The name the keys were made for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The officer public key.
    pub fn officer_key(&self) -> [u8; KEY_LEN] {
        self.officer.public()
    }

    /// The operator TLS key and certificate.
    pub fn tls(&self) -> &NodeTlsKey {
        &self.tls
    }

    /// The officer's secret seed (for tests that look for it where it must not be).
    pub fn dangerous_seed(&self) -> Zeroizing<[u8; KEY_LEN]> {
        self.officer.dangerous_seed()
    }

    /// Checks that `issued` (read from `issued_path`) certifies these keys, then writes the
    /// credential file (§15.2.2, mode 0600, never overwriting) at `out` and loads it back with
    /// every check a client makes. The issuing node is the one `issued` names: the officer
    /// confirms its fingerprint with the administrator.
    pub fn import(
        &self,
        issued: &IssuedFile,
        issued_path: &Path,
        out: &Path,
    ) -> Result<Loaded, KeysError> {
        let invalid = |msg: String| KeysError::Invalid {
            path: issued_path.to_owned(),
            msg,
        };
        let node: NodeId = issued
            .node
            .parse()
            .map_err(|e| invalid(format!("node: {e}")))?;
        let raw = data_encoding::BASE64
            .decode(issued.credential.as_bytes())
            .map_err(|_| invalid("credential is not base64".into()))?;
        let wire = hotline_protocol::wire::OfficerCredential::decode(raw.as_slice())
            .map_err(|_| invalid("credential does not decode".into()))?;
        let cred =
            Credential::verify(&wire, &node).map_err(|e| invalid(format!("credential: {e}")))?;
        if cred.officer_key() != &self.officer.public() {
            return Err(invalid(
                "the credential certifies another officer key than the one in this key \
                 directory: it was issued for another request"
                    .into(),
            ));
        }
        if cred.name() != self.name || issued.name != self.name {
            return Err(invalid(format!(
                "the credential names {:?}, but these keys were made for {:?}",
                crate::display::line(cred.name()),
                crate::display::line(&self.name)
            )));
        }
        if issued.role != cred.role().as_str() {
            return Err(invalid("role differs from the signed credential's".into()));
        }
        if issued.tls_spki_sha256 != request::hex32(&self.tls.spki_sha256()) {
            return Err(invalid(
                "the node pinned another TLS certificate than the one in this key directory: \
                 it was issued for another request"
                    .into(),
            ));
        }
        let (cert_pem, key_pem) = self.tls.to_pem();
        let file = CredentialFile {
            version: credential::VERSION,
            name: cred.name().to_owned(),
            role: cred.role().as_str().to_owned(),
            node: node.to_string(),
            node_address: issued.node_address.clone(),
            node_tls_spki_sha256: issued.node_tls_spki_sha256.clone(),
            node_tls_spki_sha256_next: String::new(),
            officer_seed: Zeroizing::new(
                data_encoding::BASE64.encode(&*self.officer.dangerous_seed()),
            ),
            credential: issued.credential.clone(),
            tls_cert: cert_pem,
            tls_key: key_pem,
        };
        // A credential file of these same keys from this node is a renewal: replaced.
        if out.exists() {
            let existing = credential::load(out)?;
            if existing.credential.officer_key() != &self.officer.public() || existing.node != node
            {
                return Err(KeysError::Invalid {
                    path: out.to_owned(),
                    msg: "exists and holds a credential of other keys or another node; choose \
                          another --out"
                        .into(),
                });
            }
            file.write_replace(out)?;
            return credential::load(out).map_err(Into::into);
        }
        file.write_new(out)?;
        // The same checks every command makes (§15.2.2 steps 1–6); a file that fails them is
        // removed, since this call just created it.
        credential::load(out)
            .inspect_err(|_| {
                let _ = std::fs::remove_file(out);
            })
            .map_err(Into::into)
    }
}

/// Creates `dir` with mode 0700, or takes an existing empty directory and sets it to 0700.
fn make_private_dir(dir: &Path) -> Result<(), KeysError> {
    let io = |err| {
        KeysError::File(KeyFileError::Io {
            path: dir.to_owned(),
            err,
        })
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
                return Err(KeysError::Invalid {
                    path: dir.to_owned(),
                    msg: "exists and is not empty; choose a new directory (keys are never \
                          overwritten)"
                        .into(),
                });
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn keygen_makes_a_private_directory_a_secret_file_and_a_verifiable_request() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("anna");
        let (keys, req) = OfficerKeys::create(&dir, "Anna Kowalska", NOW).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(SECRET_FILE)), 0o600);
        let loaded = KeyRequest::load(&dir.join(REQUEST_FILE)).unwrap();
        assert_eq!(loaded.officer_key(), &keys.officer_key());
        assert_eq!(loaded.tls_spki_sha256(), keys.tls().spki_sha256());
        assert_eq!(req.name(), "Anna Kowalska");
        let again = OfficerKeys::load(&dir).unwrap();
        assert_eq!(again.officer_key(), keys.officer_key());
        assert_eq!(again.tls().spki_sha256(), keys.tls().spki_sha256());
        // The request holds no secret.
        let text = std::fs::read_to_string(dir.join(REQUEST_FILE)).unwrap();
        let seed = data_encoding::BASE64.encode(&*keys.dangerous_seed());
        assert!(!text.contains(&seed) && !text.contains("PRIVATE KEY"));
        // Debug shows no secret either.
        let dbg = format!("{keys:?}");
        assert!(
            !dbg.contains(&seed) && dbg.contains("Anna Kowalska"),
            "{dbg}"
        );
        // Never over existing keys.
        assert!(OfficerKeys::create(&dir, "Anna Kowalska", NOW).is_err());
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        OfficerKeys::create(&dir, "Anna", NOW).unwrap();
        std::fs::set_permissions(
            dir.join(SECRET_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            OfficerKeys::load(&dir),
            Err(KeysError::File(KeyFileError::Permissions { .. }))
        ));
    }
}
