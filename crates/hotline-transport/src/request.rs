//! An officer's key request and the credential issued from it (SPEC.md §15.2.5): the two
//! public files that let an officer's keys be made on the officer's own machine, so that the
//! node, and whoever administers it, never holds an officer secret.
//!
//! `hotline keygen` writes the request ([`KeyRequest::sign`], [`KeyRequest::write_new`]); the
//! node reads and verifies it ([`KeyRequest::load`]) in `hotlined operator add --request`, and
//! writes the [`IssuedFile`]; `hotline credential import` reads that back. Both programs use
//! this module, so they cannot disagree on the formats or on the signed bytes.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hotline_protocol::crypto::{self, KEY_LEN, Label, SIGNATURE_LEN, SecretSigningKey};
use hotline_protocol::officer::MAX_NAME_LEN;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::tls;

/// The format version of both files.
pub const VERSION: u32 = 1;

/// The first line of every request file.
const REQUEST_HEADER: &str =
    "# hotline officer key request: public; give it to your node's administrator.\n";

/// The first line of every issued-credential file.
const ISSUED_HEADER: &str = "# hotline officer credential, issued from a key request: public; \
     the officer completes it with `hotline credential import`.\n";

/// Largest request or issued file read, in bytes (a certificate is well under 2 KiB).
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Why a request or issued file cannot be used. The message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        err: std::io::Error,
    },
    /// The file exists already (never overwritten).
    #[error("{0} exists already; choose another file (it is never overwritten)")]
    Exists(PathBuf),
    /// The content is wrong: malformed, a bad name or certificate, or a signature that does
    /// not verify.
    #[error("{path}: {msg}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// Checks an operator name as a request must carry it: 1..=128 bytes of UTF-8, no control or
/// invisible format character (which could make two names look alike on the administrator's
/// screen, see `display`), no leading or trailing white space.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name must be 1..={MAX_NAME_LEN} bytes (it is {})",
            name.len()
        ));
    }
    if crate::display::line(name) != name {
        return Err("the name holds a control or invisible character".into());
    }
    if name.trim() != name {
        return Err("the name starts or ends with white space".into());
    }
    Ok(())
}

/// A short fingerprint of an officer public key, for reading aloud: the first 16 bytes of its
/// SHA-256, hex, in groups of four digits. `hotline keygen` prints it, `hotlined operator add
/// --request` prints it, and the two are compared by phone.
pub fn fingerprint(officer_key: &[u8; KEY_LEN]) -> String {
    let digest = crypto::sha256(officer_key);
    let hex: Vec<String> = digest[..16]
        .chunks(2)
        .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
        .collect();
    hex.join("-")
}

/// A verified key request: a name, an officer public key, an operator TLS certificate, and the
/// time it was made, all signed by the officer key (proof of possession).
#[derive(Clone, Debug)]
pub struct KeyRequest {
    name: String,
    officer_key: [u8; KEY_LEN],
    tls_cert: CertificateDer<'static>,
    tls_spki_sha256: [u8; 32],
    created_ms: u64,
    signature: [u8; SIGNATURE_LEN],
}

/// The request file (TOML). Every field is public.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestToml {
    version: u32,
    name: String,
    officer_key: String,
    tls_cert: String,
    created_ms: u64,
    signature: String,
}

/// The bytes the request signature covers, after `"hotline/1 officer-request" || 0x00`
/// (SPEC.md §15.2.5): `u32be(version) || u32be(len(name)) || name || officer_key (32) ||
/// u32be(len(cert)) || cert (DER) || u64be(created_ms)`.
fn signed_parts(name: &str, key: &[u8; KEY_LEN], cert: &[u8], created_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 + name.len() + KEY_LEN + 4 + cert.len() + 8);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(cert.len() as u32).to_be_bytes());
    out.extend_from_slice(cert);
    out.extend_from_slice(&created_ms.to_be_bytes());
    out
}

impl KeyRequest {
    /// Makes a request for `officer`'s public key and the operator TLS certificate
    /// `tls_cert`, signed by `officer`. Fails on a name [`check_name`] refuses or a certificate
    /// outside the profile (SPEC.md §15.2.3).
    pub fn sign(
        officer: &SecretSigningKey,
        name: &str,
        tls_cert: CertificateDer<'static>,
        created_ms: u64,
    ) -> Result<KeyRequest, String> {
        check_name(name)?;
        let tls_spki_sha256 =
            tls::spki_sha256(&tls_cert).map_err(|e| format!("TLS certificate: {e}"))?;
        let officer_key = officer.public();
        let signature = officer.sign(
            Label::OfficerRequest,
            &[&signed_parts(name, &officer_key, &tls_cert, created_ms)],
        );
        Ok(KeyRequest {
            name: name.to_owned(),
            officer_key,
            tls_cert,
            tls_spki_sha256,
            created_ms,
            signature,
        })
    }

    /// Parses and verifies a request's text (SPEC.md §15.2.5 steps 1–5): TOML with exactly
    /// the known keys, version 1, a valid name, a valid Ed25519 public key, exactly one
    /// certificate within the profile, and the officer key's signature over all of it.
    pub fn parse(text: &str) -> Result<KeyRequest, String> {
        let file: RequestToml = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.version != VERSION {
            return Err(format!(
                "version {} (this software reads version {VERSION})",
                file.version
            ));
        }
        check_name(&file.name)?;
        let officer_key: [u8; KEY_LEN] = data_encoding::BASE64
            .decode(file.officer_key.as_bytes())
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or("officer_key is not 32 bytes of base64")?;
        if crypto::parse_public_key(&officer_key).is_none() {
            return Err("officer_key is not a valid Ed25519 public key".into());
        }
        let mut certs =
            tls::certs_from_pem(file.tls_cert.as_bytes()).map_err(|e| format!("tls_cert: {e}"))?;
        let tls_cert = match (certs.pop(), certs.is_empty()) {
            (Some(c), true) => c,
            _ => return Err("tls_cert must hold exactly one certificate".into()),
        };
        let tls_spki_sha256 = tls::spki_sha256(&tls_cert)
            .map_err(|e| format!("tls_cert breaks the operator certificate profile: {e}"))?;
        let signature: [u8; SIGNATURE_LEN] = data_encoding::BASE64
            .decode(file.signature.as_bytes())
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or("signature is not 64 bytes of base64")?;
        let parts = signed_parts(&file.name, &officer_key, &tls_cert, file.created_ms);
        if !crypto::verify(&officer_key, Label::OfficerRequest, &[&parts], &signature) {
            return Err(
                "the signature does not verify: the request was altered, or was not signed by \
                 the key it names"
                    .into(),
            );
        }
        Ok(KeyRequest {
            name: file.name,
            officer_key,
            tls_cert,
            tls_spki_sha256,
            created_ms: file.created_ms,
            signature,
        })
    }

    /// Reads and verifies the request file at `path` ([`KeyRequest::parse`]).
    pub fn load(path: &Path) -> Result<KeyRequest, RequestError> {
        let text = read_public(path)?;
        Self::parse(&text).map_err(|msg| RequestError::Invalid {
            path: path.to_owned(),
            msg,
        })
    }

    /// The request's text: a header line, then the TOML.
    pub fn to_text(&self) -> String {
        let body = RequestToml {
            version: VERSION,
            name: self.name.clone(),
            officer_key: data_encoding::BASE64.encode(&self.officer_key),
            tls_cert: tls::cert_pem(&self.tls_cert),
            created_ms: self.created_ms,
            signature: data_encoding::BASE64.encode(&self.signature),
        };
        // Serializing plain strings and integers cannot fail.
        let toml = toml::to_string_pretty(&body).unwrap_or_default();
        format!("{REQUEST_HEADER}{toml}")
    }

    /// Writes the request at `out` (mode 0644: it is public), never overwriting.
    pub fn write_new(&self, out: &Path) -> Result<(), RequestError> {
        write_public_new(out, &self.to_text())
    }

    /// The operator's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The officer public key.
    pub fn officer_key(&self) -> &[u8; KEY_LEN] {
        &self.officer_key
    }
    /// The operator TLS certificate (DER).
    pub fn tls_cert(&self) -> &CertificateDer<'static> {
        &self.tls_cert
    }
    /// SHA-256 of the certificate's SubjectPublicKeyInfo: the operator pin.
    pub fn tls_spki_sha256(&self) -> [u8; 32] {
        self.tls_spki_sha256
    }
    /// When the officer made the request (their clock), Unix milliseconds.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }
}

/// The issued-credential file (TOML), written by the node for a request: everything the
/// credential file (SPEC.md §15.2.2) needs besides the officer's secrets. Every field is
/// public.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedFile {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The operator's name (the request's; equal to the credential's).
    pub name: String,
    /// `officer` or `viewer` (equal to the credential's).
    pub role: String,
    /// The issuing node's id, text form.
    pub node: String,
    /// Where the node listens (UDP).
    pub node_address: String,
    /// SHA-256 of the node's TLS SPKI, 64 lower-case hex digits.
    pub node_tls_spki_sha256: String,
    /// SHA-256 of the operator TLS certificate's SPKI the node pinned (the request's), hex.
    pub tls_spki_sha256: String,
    /// The `OfficerCredential` the node signed, base64.
    pub credential: String,
}

impl IssuedFile {
    /// Writes the file at `out` (mode 0644: it is public), never overwriting.
    pub fn write_new(&self, out: &Path) -> Result<(), RequestError> {
        let toml = toml::to_string_pretty(self).map_err(|e| RequestError::Invalid {
            path: out.to_owned(),
            msg: e.to_string(),
        })?;
        write_public_new(out, &format!("{ISSUED_HEADER}{toml}"))
    }

    /// Reads the file at `path`: TOML with exactly the known keys, version 1. The credential
    /// in it is checked by the caller, against the officer's own keys.
    pub fn load(path: &Path) -> Result<IssuedFile, RequestError> {
        let invalid = |msg: String| RequestError::Invalid {
            path: path.to_owned(),
            msg,
        };
        let text = read_public(path)?;
        let file: IssuedFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.version != VERSION {
            return Err(invalid(format!(
                "version {} (this software reads version {VERSION})",
                file.version
            )));
        }
        Ok(file)
    }
}

/// Lower-case hex of a 32-byte value (pins).
pub fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn read_public(path: &Path) -> Result<String, RequestError> {
    let io = |err| RequestError::Io {
        path: path.to_owned(),
        err,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE_LEN {
        return Err(RequestError::Invalid {
            path: path.to_owned(),
            msg: format!("{len} bytes: longer than any such file ({MAX_FILE_LEN})"),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|_| RequestError::Invalid {
        path: path.to_owned(),
        msg: "not UTF-8 text".into(),
    })
}

/// Writes a new public file (mode 0644), refusing to overwrite, and syncs it.
fn write_public_new(path: &Path, text: &str) -> Result<(), RequestError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|err| {
            if err.kind() == std::io::ErrorKind::AlreadyExists {
                RequestError::Exists(path.to_owned())
            } else {
                RequestError::Io {
                    path: path.to_owned(),
                    err,
                }
            }
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|err| RequestError::Io {
            path: path.to_owned(),
            err,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::NodeTlsKey;

    const NOW: u64 = 1_800_000_000_000;

    fn request(seed: u8, name: &str) -> (SecretSigningKey, NodeTlsKey, KeyRequest) {
        let key = SecretSigningKey::from_seed(&[seed; 32]);
        let tls = NodeTlsKey::generate("operator x", NOW, NOW + 86_400_000).unwrap();
        let req = KeyRequest::sign(&key, name, tls.cert_der.clone(), NOW).unwrap();
        (key, tls, req)
    }

    /// Replaces `field = ...` (one line) in a request's text.
    fn with_field(text: &str, field: &str, value: &str) -> String {
        text.lines()
            .map(|l| {
                if l.starts_with(&format!("{field} = ")) {
                    format!("{field} = {value}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_signed_request_round_trips_through_its_text() {
        let (key, tls, req) = request(1, "Anna Kowalska");
        let back = KeyRequest::parse(&req.to_text()).unwrap();
        assert_eq!(back.name(), "Anna Kowalska");
        assert_eq!(back.officer_key(), &key.public());
        assert_eq!(back.tls_spki_sha256(), tls.spki_sha256());
        assert_eq!(back.created_ms(), NOW);
        assert!(
            req.to_text()
                .starts_with("# hotline officer key request: public")
        );
    }

    #[test]
    fn rejects_request_whose_name_was_changed_after_signing() {
        let (_, _, req) = request(2, "Anna Kowalska");
        let forged = with_field(&req.to_text(), "name", "\"Bruno Lefevre\"");
        let err = KeyRequest::parse(&forged).unwrap_err();
        assert!(err.contains("signature does not verify"), "{err}");
    }

    #[test]
    fn rejects_request_signed_by_another_key_than_it_names() {
        let (_, _, req) = request(3, "Anna Kowalska");
        let other = SecretSigningKey::from_seed(&[4; 32]);
        let forged = with_field(
            &req.to_text(),
            "officer_key",
            &format!("\"{}\"", data_encoding::BASE64.encode(&other.public())),
        );
        let err = KeyRequest::parse(&forged).unwrap_err();
        assert!(err.contains("signature does not verify"), "{err}");
    }

    #[test]
    fn rejects_request_with_another_time_or_certificate() {
        let (_, _, req) = request(5, "Anna");
        let later = with_field(&req.to_text(), "created_ms", &(NOW + 1).to_string());
        assert!(KeyRequest::parse(&later).is_err());
        let (_, _, other) = request(5, "Anna");
        // The same key and name, but another certificate, under the first signature.
        let mut mixed = KeyRequest::parse(&other.to_text()).unwrap();
        mixed.signature = req.signature;
        assert!(KeyRequest::parse(&mixed.to_text()).is_err());
    }

    #[test]
    fn rejects_bad_names_unknown_fields_and_other_versions() {
        for bad in ["", " Anna", "Anna\u{202e}", "A\nB", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let key = SecretSigningKey::from_seed(&[6; 32]);
        let tls = NodeTlsKey::generate("o", NOW, NOW + 1000).unwrap();
        assert!(KeyRequest::sign(&key, "Anna\u{200b}", tls.cert_der.clone(), NOW).is_err());
        let (_, _, req) = request(6, "Anna");
        let extra = format!("{}\nrole = \"officer\"\n", req.to_text());
        assert!(KeyRequest::parse(&extra).is_err());
        let v2 = with_field(&req.to_text(), "version", "2");
        assert!(KeyRequest::parse(&v2).unwrap_err().contains("version 2"));
    }

    #[test]
    fn request_and_issued_files_are_public_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (_, _, req) = request(8, "Anna");
        let path = dir.path().join("request");
        req.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600);
        assert!(matches!(req.write_new(&path), Err(RequestError::Exists(_))));
        assert_eq!(KeyRequest::load(&path).unwrap().name(), "Anna");
        let issued = IssuedFile {
            version: VERSION,
            name: "Anna".into(),
            role: "officer".into(),
            node: "n".into(),
            node_address: "127.0.0.1:1".into(),
            node_tls_spki_sha256: "00".repeat(32),
            tls_spki_sha256: hex32(&req.tls_spki_sha256()),
            credential: "AA==".into(),
        };
        let out = dir.path().join("issued");
        issued.write_new(&out).unwrap();
        assert_eq!(IssuedFile::load(&out).unwrap(), issued);
    }

    #[test]
    fn fingerprint_is_grouped_hex_of_the_key_digest() {
        let f = fingerprint(&[0; 32]);
        assert_eq!(f.len(), 8 * 4 + 7);
        assert!(f.starts_with(&hex32(&crypto::sha256(&[0; 32]))[..4]));
    }
}
