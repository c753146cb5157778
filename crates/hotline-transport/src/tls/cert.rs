//! The node's TLS key and certificate, the certificate profile of SPEC.md §3.5 (`inspect`),
//! and PEM decoding and encoding.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, Error, OtherError};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::error::TlsError;
use super::{MAX_VALIDITY, provider};

/// Ways a certificate breaks the profile of SPEC.md §3.5 (or does not parse at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not a single well-formed DER X.509 certificate.
    #[error("certificate does not parse")]
    Encoding,
    /// Not X.509 v3.
    #[error("certificate is not X.509 v3")]
    Version,
    /// The subject public key is neither Ed25519 nor ECDSA P-256.
    #[error("subject public key is neither Ed25519 nor ECDSA P-256")]
    KeyType,
    /// notAfter − notBefore exceeds 825 days, or notAfter precedes notBefore.
    #[error("validity period is negative or longer than 825 days")]
    Validity,
    /// basicConstraints says cA = TRUE.
    #[error("certificate is a CA certificate")]
    Ca,
    /// keyUsage is present without digitalSignature.
    #[error("keyUsage lacks digitalSignature")]
    KeyUsage,
    /// basicConstraints or keyUsage is duplicated or malformed.
    #[error("malformed or duplicated extension")]
    Extensions,
}

impl From<ProfileError> for Error {
    fn from(e: ProfileError) -> Self {
        match e {
            ProfileError::Encoding => Error::InvalidCertificate(CertificateError::BadEncoding),
            other => {
                Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(other))))
            }
        }
    }
}

/// What the profile check learned about a certificate.
pub(super) struct CertInfo {
    pub(super) spki_sha256: [u8; 32],
    not_before: u64,
    not_after: u64,
}

/// Parses one DER certificate and applies the checks of SPEC.md §3.5 that do not depend on
/// the time or the trust mode: v3, key type, validity span, not a CA, keyUsage.
pub(super) fn inspect(der: &[u8]) -> Result<CertInfo, ProfileError> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| ProfileError::Encoding)?;
    if !rest.is_empty() {
        return Err(ProfileError::Encoding);
    }
    if cert.version() != x509_parser::x509::X509Version::V3 {
        return Err(ProfileError::Version);
    }
    let spki = cert.public_key();
    let alg = &spki.algorithm;
    let ed25519 = alg.algorithm == OID_SIG_ED25519 && alg.parameters.is_none();
    let p256 = alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && alg.parameters.as_ref().and_then(|p| p.as_oid().ok()) == Some(OID_EC_P256);
    if !(ed25519 || p256) {
        return Err(ProfileError::KeyType);
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let span = not_after
        .checked_sub(not_before)
        .ok_or(ProfileError::Validity)?;
    if span < 0 || span.unsigned_abs() > MAX_VALIDITY.as_secs() {
        return Err(ProfileError::Validity);
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(ProfileError::Ca),
        Ok(_) => {}
        Err(_) => return Err(ProfileError::Extensions),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if !ku.value.digital_signature() => return Err(ProfileError::KeyUsage),
        Ok(_) => {}
        Err(_) => return Err(ProfileError::Extensions),
    }
    Ok(CertInfo {
        spki_sha256: Sha256::digest(spki.raw).into(),
        // Dates before 1970 clamp to 0: only "now is before notBefore" uses them.
        not_before: u64::try_from(not_before).unwrap_or(0),
        not_after: u64::try_from(not_after).unwrap_or(0),
    })
}

impl CertInfo {
    /// SPEC.md §3.5 step 2: refuse outside [notBefore, notAfter].
    pub(super) fn check_time(&self, now: UnixTime) -> Result<(), Error> {
        let at = |secs| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        if now.as_secs() < self.not_before {
            return Err(Error::InvalidCertificate(
                CertificateError::NotValidYetContext {
                    time: now,
                    not_before: at(self.not_before),
                },
            ));
        }
        if now.as_secs() > self.not_after {
            return Err(Error::InvalidCertificate(
                CertificateError::ExpiredContext {
                    time: now,
                    not_after: at(self.not_after),
                },
            ));
        }
        Ok(())
    }
}

/// SHA-256 of the certificate's DER SubjectPublicKeyInfo (the complete structure, algorithm
/// identifier included): the pin of pinned mode and the `tls_spki_sha256` of a peer bundle.
///
/// Fails if the certificate does not parse or breaks the profile of SPEC.md §3.5.
pub fn spki_sha256(cert_der: &CertificateDer<'_>) -> Result<[u8; 32], TlsError> {
    Ok(inspect(cert_der)?.spki_sha256)
}

/// Checks a certificate the way a peer will (SPEC.md §3.5 steps 1–3): profile, then the
/// validity dates at `now_ms` (Unix milliseconds). For operators' health checks of the node's
/// own certificate.
pub fn check_validity(cert_der: &CertificateDer<'_>, now_ms: u64) -> Result<(), TlsError> {
    let now = UnixTime::since_unix_epoch(Duration::from_millis(now_ms));
    Ok(inspect(cert_der)?.check_time(now)?)
}

/// The node's TLS key pair and end-entity certificate, used as both client and server
/// certificate (SPEC.md §3.5).
///
/// The private key's DER is zeroized on drop and never printed by `Debug`. rustls keeps its
/// own parsed copy of the key (inside aws-lc) for as long as a configuration uses it.
pub struct NodeTlsKey {
    /// The certificate (DER). Read it; replacing it does not change the key in use (build a
    /// new `NodeTlsKey` instead).
    pub cert_der: CertificateDer<'static>,
    key_der: PrivateKeyDer<'static>,
    pub(super) certified: Arc<CertifiedKey>,
    spki_sha256: [u8; 32],
}

impl NodeTlsKey {
    /// Generates a fresh Ed25519 key and a self-signed certificate for it (for pinned mode):
    /// subjectAltName `name` (an IP address if it parses as one, else a DNS name), EKU
    /// serverAuth + clientAuth, keyUsage digitalSignature, basicConstraints cA = FALSE.
    ///
    /// Times are Unix milliseconds (truncated to seconds in the certificate).
    ///
    /// Ed25519 rather than ECDSA P-256: rustls signs and verifies Ed25519 in TLS 1.3 with
    /// aws-lc-rs, and the node's other keys are Ed25519 too. Fails if the validity is longer
    /// than 825 days or `not_after_ms` precedes `not_before_ms`.
    pub fn generate(name: &str, not_before_ms: u64, not_after_ms: u64) -> Result<Self, TlsError> {
        Self::generate_named(name, &[name], not_before_ms, not_after_ms)
    }

    /// [`NodeTlsKey::generate`] with common name `common_name` and one subjectAltName entry
    /// per `alt_names` item (an iPAddress if it parses as an IP address, else a dNSName).
    pub fn generate_named(
        common_name: &str,
        alt_names: &[&str],
        not_before_ms: u64,
        not_after_ms: u64,
    ) -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        Self::self_signed_with(key, common_name, alt_names, not_before_ms, not_after_ms)
    }

    /// A new self-signed certificate, with the same profile as [`NodeTlsKey::generate_named`],
    /// for this same key: its SPKI, and so every pin of it, stays the same (pinned mode
    /// certificate renewal).
    pub fn renew_self_signed(
        &self,
        common_name: &str,
        alt_names: &[&str],
        not_before_ms: u64,
        not_after_ms: u64,
    ) -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::try_from(&self.key_der)?;
        let renewed =
            Self::self_signed_with(key, common_name, alt_names, not_before_ms, not_after_ms)?;
        debug_assert_eq!(renewed.spki_sha256, self.spki_sha256);
        Ok(renewed)
    }

    fn self_signed_with(
        key: rcgen::KeyPair,
        common_name: &str,
        alt_names: &[&str],
        not_before_ms: u64,
        not_after_ms: u64,
    ) -> Result<Self, TlsError> {
        let span = not_after_ms
            .checked_sub(not_before_ms)
            .ok_or(ProfileError::Validity)?;
        if Duration::from_millis(span) > MAX_VALIDITY {
            return Err(ProfileError::Validity.into());
        }
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let (not_before, not_after) = (at(not_before_ms), at(not_after_ms));
        let alt: Vec<String> = alt_names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(alt)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.self_signed(&key)?;
        let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Self::new(cert.der().clone(), key_der)
    }

    /// Builds a key from DER, checking the certificate profile (not the dates: a renewed
    /// certificate may be installed before it becomes valid) and that key and certificate match.
    pub fn new(
        cert_der: CertificateDer<'static>,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let info = inspect(&cert_der)?;
        let certified =
            CertifiedKey::from_der(vec![cert_der.clone()], key_der.clone_key(), &provider())?;
        certified.keys_match()?;
        Ok(Self {
            cert_der,
            key_der,
            certified: Arc::new(certified),
            spki_sha256: info.spki_sha256,
        })
    }

    /// Parses a PEM certificate (exactly one) and a PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let mut certs = certs_from_pem(cert_pem)?;
        let cert = match (certs.pop(), certs.is_empty()) {
            (Some(cert), true) => cert,
            _ => return Err(TlsError::Pem("expected exactly one certificate".into())),
        };
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::Pem(format!("private key: {e}")))?;
        Self::new(cert, key)
    }

    /// The certificate and private key as PEM (`CERTIFICATE`, `PRIVATE KEY` in PKCS#8 for keys
    /// generated here). The key string is zeroized on drop.
    pub fn to_pem(&self) -> (String, Zeroizing<String>) {
        let label = match &self.key_der {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        (
            pem_encode("CERTIFICATE", &self.cert_der),
            pem_encode_secret(label, self.key_der.secret_der()),
        )
    }

    /// SHA-256 of this certificate's SubjectPublicKeyInfo (what a peer pins).
    pub fn spki_sha256(&self) -> [u8; 32] {
        self.spki_sha256
    }
}

impl Clone for NodeTlsKey {
    fn clone(&self) -> Self {
        Self {
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
            certified: self.certified.clone(),
            spki_sha256: self.spki_sha256,
        }
    }
}

impl Drop for NodeTlsKey {
    fn drop(&mut self) {
        self.key_der.zeroize();
    }
}

impl std::fmt::Debug for NodeTlsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: String = self
            .spki_sha256
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        f.debug_struct("NodeTlsKey")
            .field("spki_sha256", &hex)
            .finish_non_exhaustive()
    }
}

/// Parses every `CERTIFICATE` block of a PEM string; fails if there is none.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate".into()));
    }
    Ok(certs)
}

/// Parses every `X509 CRL` block of a PEM string; fails if there is none.
pub fn crls_from_pem(pem: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("CRL: {e}")))?;
    if crls.is_empty() {
        return Err(TlsError::Pem("no CRL".into()));
    }
    Ok(crls)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// PEM-encodes `der` into `out`, which must already have the capacity (so a secret is never
/// left behind in a reallocated buffer).
fn pem_into(out: &mut String, label: &str, der: &[u8]) {
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in der.chunks(48) {
        for chunk in line.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

fn pem_len(label: &str, der: &[u8]) -> usize {
    let body = der.len().div_ceil(3) * 4;
    2 * (label.len() + 16) + body + der.len().div_ceil(48)
}

/// A certificate as PEM (`CERTIFICATE`).
pub fn cert_pem(cert_der: &CertificateDer<'_>) -> String {
    pem_encode("CERTIFICATE", cert_der)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let mut out = String::with_capacity(pem_len(label, der));
    pem_into(&mut out, label, der);
    out
}

fn pem_encode_secret(label: &str, der: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(pem_len(label, der)));
    pem_into(&mut out, label, der);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_encoding_matches_rcgen() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(
            *pem_encode_secret("PRIVATE KEY", &kp.serialize_der()),
            kp.serialize_pem()
        );
        for len in 0..100 {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let pem = pem_encode("CERTIFICATE", &data);
            assert_eq!(pem.len(), pem_len("CERTIFICATE", &data), "len {len}");
            let back = CertificateDer::from_pem_slice(pem.as_bytes());
            if len > 0 {
                assert_eq!(back.unwrap().as_ref(), &data[..]);
            }
        }
    }
}
