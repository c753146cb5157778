//! Certificates for the TLS cases: the runner's own TLS key re-issued with other dates, other
//! issuers or a revoked serial, and the private CA of `--pki`.
//!
//! Every certificate that must get past the target's pin carries the runner's own key (the
//! one the target pins, SPEC.md §3.6.1, or maps to the runner in private CA mode, §3.6.3), so
//! that the case tests exactly one thing: the date, the issuer, the revocation.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// File names inside `--pki DIR` (the layout of `certs/test-pki`).
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key (PKCS#8 PEM).
pub const CA_KEY: &str = "ca.key";
/// The CA's CRL (PEM), the one the target loaded.
pub const CA_CRL: &str = "ca.crl.pem";

/// The private CA the target trusts for the runner (SPEC.md §3.6.2).
pub struct Pki {
    /// Where it was loaded from.
    pub dir: PathBuf,
    ca_pem: String,
    ca_key_pem: String,
    ca_subject: Vec<u8>,
    /// A serial number the CRL lists as revoked.
    pub revoked_serial: Option<Vec<u8>>,
}

impl Pki {
    /// Reads `ca.pem`, `ca.key` and `ca.crl.pem` from `dir` and checks they belong together.
    pub fn load(dir: &Path) -> Result<Pki, String> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("--pki {}: {e}", dir.join(name).display()))
        };
        let ca_pem = read(CA_CERT)?;
        let ca_key_pem = read(CA_KEY)?;
        let crl_pem = read(CA_CRL)?;
        let ca_der = hotline_transport::tls::certs_from_pem(ca_pem.as_bytes())
            .map_err(|e| format!("--pki {CA_CERT}: {e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("--pki {CA_CERT}: no certificate"))?;
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|e| format!("--pki {CA_CERT}: {e}"))?;
        let key = KeyPair::from_pem(&ca_key_pem).map_err(|e| format!("--pki {CA_KEY}: {e}"))?;
        if key.subject_public_key_info() != ca.public_key().raw {
            return Err(format!(
                "--pki: {CA_KEY} is not the key of the certificate in {CA_CERT}"
            ));
        }
        let crl_der = hotline_transport::tls::crls_from_pem(crl_pem.as_bytes())
            .map_err(|e| format!("--pki {CA_CRL}: {e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("--pki {CA_CRL}: no CRL"))?;
        let (_, crl) =
            x509_parser::parse_x509_crl(&crl_der).map_err(|e| format!("--pki {CA_CRL}: {e}"))?;
        if crl.issuer().as_raw() != ca.subject().as_raw() {
            return Err(format!(
                "--pki: {CA_CRL} is not issued by the CA of {CA_CERT}"
            ));
        }
        let revoked_serial = crl
            .iter_revoked_certificates()
            .next()
            .map(|r| r.raw_serial().to_vec());
        Ok(Pki {
            dir: dir.to_owned(),
            ca_subject: ca.subject().as_raw().to_vec(),
            ca_pem,
            ca_key_pem,
            revoked_serial,
        })
    }

    /// Checks that `cert` names this CA as its issuer.
    pub fn check_issued(&self, cert: &CertificateDer<'_>) -> Result<(), String> {
        let (_, c) = x509_parser::parse_x509_certificate(cert)
            .map_err(|e| format!("certificate does not parse: {e}"))?;
        if c.issuer().as_raw() != self.ca_subject.as_slice() {
            return Err(format!(
                "the certificate is issued by {}, not by this CA",
                c.issuer()
            ));
        }
        Ok(())
    }

    /// The CA as an rcgen issuer (its exact subject name, its key).
    pub fn issuer(&self) -> Result<Issuer<'static, KeyPair>, String> {
        let key = KeyPair::from_pem(&self.ca_key_pem).map_err(|e| format!("CA key: {e}"))?;
        Issuer::from_ca_cert_pem(&self.ca_pem, key).map_err(|e| format!("CA certificate: {e}"))
    }
}

/// A validity window relative to now.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
}

impl Window {
    /// From `from_days` to `to_days` around now (negative = in the past).
    pub fn days(from_days: i64, to_days: i64) -> Window {
        let at = |d: i64| {
            let span = Duration::from_secs(d.unsigned_abs() * 86_400);
            if d < 0 {
                SystemTime::now() - span
            } else {
                SystemTime::now() + span
            }
        };
        Window {
            not_before: at(from_days),
            not_after: at(to_days),
        }
    }
}

/// The runner's TLS key as an rcgen key pair.
pub fn own_key(key: &PrivateKeyDer<'_>) -> Result<KeyPair, String> {
    KeyPair::try_from(key).map_err(|e| format!("the runner's TLS key: {e}"))
}

/// A node certificate profile (SPEC.md §3.5) for the window, optionally with a serial.
fn node_params(window: Window, serial: Option<&[u8]>) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::new(vec!["hotline-conformance.test".to_owned()])
        .map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "hotline-conformance");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = window.not_before.into();
    params.not_after = window.not_after.into();
    params.use_authority_key_identifier_extension = true;
    if let Some(serial) = serial {
        let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
        params.serial_number = Some(SerialNumber::from_slice(&serial[start..]));
    }
    Ok(params)
}

/// A self-signed certificate for `key` (pinned mode).
pub fn self_signed(key: &KeyPair, window: Window) -> Result<CertificateDer<'static>, String> {
    let mut params = node_params(window, None)?;
    params.use_authority_key_identifier_extension = false;
    params
        .self_signed(key)
        .map(|c| c.der().clone())
        .map_err(|e| format!("self-signed certificate: {e}"))
}

/// A certificate for `key` issued by `issuer`, with `serial` if given.
pub fn issued(
    key: &KeyPair,
    issuer: &Issuer<'_, KeyPair>,
    window: Window,
    serial: Option<&[u8]>,
) -> Result<CertificateDer<'static>, String> {
    node_params(window, serial)?
        .signed_by(key, issuer)
        .map(|c| c.der().clone())
        .map_err(|e| format!("issued certificate: {e}"))
}

/// A fresh CA nobody trusts (ECDSA P-256), made for one case and forgotten.
pub fn foreign_ca() -> Result<Issuer<'static, KeyPair>, String> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(Vec::new()).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "hotline-conformance foreign CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let w = Window::days(-1, 365);
    params.not_before = w.not_before.into();
    params.not_after = w.not_after.into();
    Ok(Issuer::new(params, key))
}

/// A fresh Ed25519 key pair (PKCS#8 DER) that nobody pins.
pub fn fresh_key() -> Result<(KeyPair, PrivateKeyDer<'static>), String> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok((key, der))
}
