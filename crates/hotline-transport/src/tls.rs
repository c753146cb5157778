//! TLS for node-to-node QUIC links (SPEC.md §3): the crypto provider, the node's TLS key, the
//! certificate profile, the two trust modes and the quinn configurations built from them.
//!
//! Everything here passes [`provider()`] explicitly; nothing relies on a process-default rustls
//! provider (with two providers in the tree, rustls would panic choosing one).
//!
//! Security choices, each required by SPEC.md §3.1–§3.3:
//! - TLS 1.3 only, TLS 1.3 cipher suites only;
//! - no 0-RTT: servers set `max_early_data_size = 0`, clients `enable_early_data = false`;
//! - no resumption: servers issue no tickets and keep no session cache, clients never offer a
//!   PSK, so every connection is a full handshake with a certificate on both sides;
//! - CertificateVerify only with `ed25519` or `ecdsa_secp256r1_sha256`; certificate chains
//!   (private CA mode) only signed with Ed25519 or ECDSA P-256/SHA-256.
//!
//! QUIC itself runs only over TLS 1.3 (RFC 9001), so a TLS 1.2 peer cannot occur; the
//! verifiers still refuse TLS 1.2 signatures outright.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme, SupportedCipherSuite,
};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Longest allowed node certificate validity, notAfter − notBefore (SPEC.md §3.5): 825 days.
pub const MAX_VALIDITY: Duration = Duration::from_secs(825 * 86_400);
/// Default `max_inflight` (SPEC.md §9.6).
pub const DEFAULT_MAX_INFLIGHT: u32 = 256;
/// QUIC idle timeout (SPEC.md §3.11).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-stream receive window: one maximal envelope frame (1 MiB + framing) with room to spare.
pub const STREAM_RECEIVE_WINDOW: u32 = 2 * 1024 * 1024;
/// Per-connection receive window.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 64 * 1024 * 1024;
/// QUIC keep-alive interval (capped at half the idle timeout).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Signature algorithms a peer may use: Ed25519 and ECDSA P-256/SHA-256, nothing else
/// (SPEC.md §3.3, §3.5). Used both for CertificateVerify and for certificate chains.
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        webpki::aws_lc_rs::ED25519,
        webpki::aws_lc_rs::ECDSA_P256_SHA256,
    ],
    mapping: &[
        (SignatureScheme::ED25519, &[webpki::aws_lc_rs::ED25519]),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[webpki::aws_lc_rs::ECDSA_P256_SHA256],
        ),
    ],
};

/// The one crypto provider of the node: aws-lc-rs with TLS 1.3 suites only, key exchange
/// groups X25519MLKEM768, X25519, secp256r1 in that order (SPEC.md §3.4), and peer signatures
/// restricted to Ed25519 and ECDSA P-256.
///
/// A client offers the groups in this order and sends key shares for X25519MLKEM768 and X25519
/// (rustls sends the hybrid's X25519 component as a second share). A rustls server picks the
/// first group in the *client's* list that it supports, so a peer that lists X25519 first gets
/// X25519 even though the hybrid is offered.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
            let base = default_provider();
            Arc::new(CryptoProvider {
                cipher_suites: base
                    .cipher_suites
                    .iter()
                    .copied()
                    .filter(|suite| matches!(suite, SupportedCipherSuite::Tls13(_)))
                    .collect(),
                kx_groups: vec![
                    kx_group::X25519MLKEM768,
                    kx_group::X25519,
                    kx_group::SECP256R1,
                ],
                signature_verification_algorithms: SIGNATURE_ALGORITHMS,
                ..base
            })
        })
        .clone()
}

/// Errors building TLS material or configurations. All of them are local (configuration or
/// API misuse); a peer's bad certificate shows up as a failed handshake instead (see
/// [`failure_reason`] and [`connection_failure_reason`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rcgen could not make the certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM input did not contain what was expected.
    #[error("PEM: {0}")]
    Pem(String),
    /// The node's own certificate breaks the profile of SPEC.md §3.5.
    #[error("certificate profile: {0}")]
    Profile(#[from] ProfileError),
    /// rustls refused the key, certificate or configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] Error),
    /// rustls refused to build a WebPKI verifier (bad root, bad CRL).
    #[error("verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// Pinned mode with no pin would refuse every peer.
    #[error("pinned trust needs at least one SPKI pin")]
    NoPins,
    /// Private CA mode needs a CRL per CA (SPEC.md §3.6.2 step 5).
    #[error("private CA trust needs at least one CRL")]
    NoCrl,
    /// Node-to-node connections always negotiate an ALPN (SPEC.md §3.2).
    #[error("no ALPN protocol configured")]
    NoAlpn,
    /// quinn refused the rustls configuration.
    #[error("quinn: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// A transport limit is out of range.
    #[error("transport limit out of range: {0}")]
    Transport(&'static str),
}

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
struct CertInfo {
    spki_sha256: [u8; 32],
    not_before: u64,
    not_after: u64,
}

/// Parses one DER certificate and applies the checks of SPEC.md §3.5 that do not depend on
/// the time or the trust mode: v3, key type, validity span, not a CA, keyUsage.
fn inspect(der: &[u8]) -> Result<CertInfo, ProfileError> {
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
    fn check_time(&self, now: UnixTime) -> Result<(), Error> {
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
    certified: Arc<CertifiedKey>,
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
        let span = not_after_ms
            .checked_sub(not_before_ms)
            .ok_or(ProfileError::Validity)?;
        if Duration::from_millis(span) > MAX_VALIDITY {
            return Err(ProfileError::Validity.into());
        }
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let (not_before, not_after) = (at(not_before_ms), at(not_after_ms));
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
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

/// How a node authenticates one peer's certificate (SPEC.md §3.6).
#[derive(Clone, Debug)]
pub enum PeerTrust {
    /// Pinned mode (§3.6.1): the end-entity certificate's SPKI SHA-256 must be one of these;
    /// no chain, no subjectAltName check; dates, profile and handshake signature still checked.
    Pinned {
        /// The pinned peers' `tls_spki_sha256` values.
        spki_sha256: Vec<[u8; 32]>,
    },
    /// Private CA mode (§3.6.2): path validation to these roots only, revocation checked
    /// against these CRLs (a certificate whose status cannot be determined is refused, as is
    /// a CRL past its nextUpdate).
    PrivateCa {
        /// Trust anchors.
        roots: Vec<CertificateDer<'static>>,
        /// One CRL per CA.
        crls: Vec<CertificateRevocationListDer<'static>>,
    },
    /// Peers of both modes behind one verifier, each peer known by its bundle's SPKI pin: what
    /// a node's listener uses (one endpoint serves every peer), and what a client uses for a
    /// private-CA peer (the CA with that one pin).
    ///
    /// A certificate whose SPKI is in `pinned` gets the checks of pinned mode. One whose SPKI
    /// is among the private-CA pins gets every check of private CA mode (path to the roots,
    /// EKU, CRLs, a server's name): the CA vouches for the key, and the pin binds the key to
    /// the one peer whose bundle names it (§3.6.3: the expected peer is chosen by local
    /// configuration, never by the Hello). Any other certificate is refused as not pinned
    /// (alert `access_denied`), without building a chain.
    Mixed {
        /// `tls_spki_sha256` of the peers in pinned mode.
        pinned: Vec<[u8; 32]>,
        /// The private CA, and the `tls_spki_sha256` of the peers in private CA mode.
        ca: Option<(CaRoots, Vec<[u8; 32]>)>,
    },
}

/// A private CA's trust anchors and revocation lists (SPEC.md §3.6.2).
#[derive(Clone, Debug, Default)]
pub struct CaRoots {
    /// Trust anchors: the CA certificates.
    pub roots: Vec<CertificateDer<'static>>,
    /// One CRL per CA; a certificate from a CA without one is refused.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    Ok(Arc::new(store))
}

fn webpki_server_verifier(ca: &CaRoots) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    if ca.crls.is_empty() {
        return Err(TlsError::NoCrl);
    }
    Ok(
        WebPkiServerVerifier::builder_with_provider(root_store(&ca.roots)?, provider())
            .with_crls(ca.crls.clone())
            .enforce_revocation_expiration()
            .build()?,
    )
}

fn webpki_client_verifier(ca: &CaRoots) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if ca.crls.is_empty() {
        return Err(TlsError::NoCrl);
    }
    Ok(
        WebPkiClientVerifier::builder_with_provider(root_store(&ca.roots)?, provider())
            .with_crls(ca.crls.clone())
            .enforce_revocation_expiration()
            .build()?,
    )
}

/// Problems with a private CA's configuration, worded for an operator, each of which makes
/// the node refuse peers it should accept: roots or CRLs rustls refuses, a CRL that does not
/// parse, a CA without a CRL (its certificates' status is unknown), a CRL past its nextUpdate
/// at `now_ms` (Unix milliseconds), a CRL from none of the roots.
///
/// Node certificates are presented without intermediates, so the roots must be the CAs that
/// issue node certificates, and the CRLs theirs.
pub fn check_ca(ca: &CaRoots, now_ms: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if ca.roots.is_empty() {
        problems.push("no CA certificate configured".into());
    }
    if ca.crls.is_empty() {
        problems.push("no CRL configured; every certificate of the CA will be refused".into());
    }
    let usable = if ca.crls.is_empty() {
        root_store(&ca.roots).map(|_| ())
    } else {
        webpki_client_verifier(ca).map(|_| ())
    };
    if let Err(e) = usable {
        problems.push(format!("the CA certificates or CRLs are refused: {e}"));
    }
    let subjects: Vec<(String, Vec<u8>)> = ca
        .roots
        .iter()
        .filter_map(|r| x509_parser::parse_x509_certificate(r).ok())
        .map(|(_, c)| (c.subject().to_string(), c.subject().as_raw().to_vec()))
        .collect();
    let mut issuers = Vec::new();
    for (i, crl) in ca.crls.iter().enumerate() {
        let crl = match x509_parser::parse_x509_crl(crl) {
            Ok(([], crl)) => crl,
            _ => {
                problems.push(format!("CRL {} does not parse", i + 1));
                continue;
            }
        };
        let issuer = crl.issuer().to_string();
        if !subjects.iter().any(|(_, raw)| raw == crl.issuer().as_raw()) {
            problems.push(format!(
                "the CRL of {issuer} is from none of the configured CA certificates"
            ));
        }
        issuers.push(crl.issuer().as_raw().to_vec());
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        match crl.next_update() {
            Some(next) if next.timestamp() < now => problems.push(format!(
                "the CRL of {issuer} expired at its nextUpdate {next}; fetch the CA's current \
                 CRL: until then every certificate of that CA is refused"
            )),
            Some(_) => {}
            None => problems.push(format!(
                "the CRL of {issuer} has no nextUpdate; ask the CA for a CRL that has one"
            )),
        }
    }
    if !ca.crls.is_empty() {
        for (name, raw) in &subjects {
            if !issuers.contains(raw) {
                problems.push(format!(
                    "no CRL for the CA {name}; every certificate it issued will be refused"
                ));
            }
        }
    }
    problems
}

impl PeerTrust {
    fn pins(&self) -> Result<Option<&[[u8; 32]]>, TlsError> {
        match self {
            Self::Pinned { spki_sha256 } if spki_sha256.is_empty() => Err(TlsError::NoPins),
            Self::Pinned { spki_sha256 } => Ok(Some(spki_sha256)),
            Self::PrivateCa { crls, .. } if crls.is_empty() => Err(TlsError::NoCrl),
            Self::PrivateCa { .. } | Self::Mixed { .. } => Ok(None),
        }
    }

    fn private_ca(&self) -> Option<CaRoots> {
        match self {
            Self::PrivateCa { roots, crls } => Some(CaRoots {
                roots: roots.clone(),
                crls: crls.clone(),
            }),
            _ => None,
        }
    }

    /// The verifier of [`PeerTrust::Mixed`], `None` for another mode; the private CA
    /// verifier comes from `webpki`. Refuses a configuration that would accept nobody.
    fn mixed<V: ?Sized>(
        &self,
        webpki: impl FnOnce(&CaRoots) -> Result<Arc<V>, TlsError>,
    ) -> Result<Option<MixedVerifier<V>>, TlsError> {
        let Self::Mixed { pinned, ca } = self else {
            return Ok(None);
        };
        let ca = ca.as_ref().filter(|(_, pins)| !pins.is_empty());
        if pinned.is_empty() && ca.is_none() {
            return Err(TlsError::NoPins);
        }
        let ca = match ca {
            Some((roots, pins)) => Some((
                pins.clone(),
                ProfileChecked {
                    inner: webpki(roots)?,
                },
            )),
            None => None,
        };
        Ok(Some(MixedVerifier {
            pinned: pinned.clone(),
            ca,
        }))
    }
}

/// Verifier for pinned mode, both as client (verifying a server) and as server.
#[derive(Debug)]
struct PinnedVerifier {
    pins: Vec<[u8; 32]>,
}

impl PinnedVerifier {
    /// SPEC.md §3.6.1: take the end-entity certificate and ignore any others; apply the
    /// profile of §3.5; refuse unless its SPKI hash is pinned; check the dates. rustls then
    /// calls `verify_tls13_signature` for the CertificateVerify (§3.5 step 4).
    fn verify(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
        let info = inspect(end_entity)?;
        if !self.pins.contains(&info.spki_sha256) {
            // Sent as the TLS alert access_denied.
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        info.check_time(now)
    }
}

fn tls12_refused() -> Error {
    Error::General("TLS 1.2 is never negotiated; its signatures are refused".into())
}

fn tls13_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    verify_tls13_signature(
        message,
        cert,
        dss,
        &provider().signature_verification_algorithms,
    )
}

fn verify_schemes() -> Vec<SignatureScheme> {
    provider()
        .signature_verification_algorithms
        .supported_schemes()
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.verify(end_entity, now)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        verify_schemes()
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify(end_entity, now)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        verify_schemes()
    }
}

/// Private CA mode: the §3.5 profile checks WebPKI does not make (key type, 825 days, not a
/// CA, keyUsage), then rustls's WebPKI verifier (path, EKU, dates, CRLs, server name).
#[derive(Debug)]
struct ProfileChecked<V: ?Sized> {
    inner: Arc<V>,
}

impl ServerCertVerifier for ProfileChecked<WebPkiServerVerifier> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        inspect(end_entity)?;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl ClientCertVerifier for ProfileChecked<dyn ClientCertVerifier> {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        inspect(end_entity)?;
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// [`PeerTrust::Mixed`]: the checks are chosen by the end-entity certificate's SPKI.
#[derive(Debug)]
struct MixedVerifier<V: ?Sized> {
    /// SPKI pins of pinned-mode peers.
    pinned: Vec<[u8; 32]>,
    /// SPKI pins of private-CA peers, and the private CA verifier.
    ca: Option<(Vec<[u8; 32]>, ProfileChecked<V>)>,
}

impl<V: ?Sized> MixedVerifier<V> {
    /// A pinned-mode peer's key: the checks of pinned mode. A private-CA peer's key: `by_ca`,
    /// the full private-CA validation. Anything else: refused as not pinned (alert
    /// `access_denied`) before any chain is built. rustls then verifies the CertificateVerify
    /// signature in every case (SPEC.md §3.5 step 4).
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        now: UnixTime,
        by_ca: impl FnOnce(&ProfileChecked<V>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let info = inspect(end_entity)?;
        let mut verdict = Err(Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ));
        if self.pinned.contains(&info.spki_sha256) {
            verdict = info.check_time(now);
            if verdict.is_ok() {
                return verdict;
            }
        }
        match &self.ca {
            // The same key pinned for a peer of each mode: either may accept it.
            Some((pins, ca)) if pins.contains(&info.spki_sha256) => by_ca(ca),
            _ => verdict,
        }
    }
}

impl ServerCertVerifier for MixedVerifier<WebPkiServerVerifier> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.verify(end_entity, now, |ca| {
            ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ())
        })
        .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        verify_schemes()
    }
}

impl ClientCertVerifier for MixedVerifier<dyn ClientCertVerifier> {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA names: a node presents its one certificate whatever the hints say, and pinned
    /// peers have no CA to name.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify(end_entity, now, |ca| {
            ca.verify_client_cert(end_entity, intermediates, now)
                .map(|_| ())
        })
        .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        verify_schemes()
    }
}

/// The verifier a client uses for the server's certificate under `trust`.
///
/// In private CA mode the server name given to `Endpoint::connect` (the host of the dialed
/// address) must match a subjectAltName; pinned mode ignores it (SPEC.md §3.6.1).
pub fn server_cert_verifier(trust: &PeerTrust) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if let Some(pins) = trust.pins()? {
        return Ok(Arc::new(PinnedVerifier {
            pins: pins.to_vec(),
        }));
    }
    if let Some(verifier) = trust.mixed(webpki_server_verifier)? {
        return Ok(Arc::new(verifier));
    }
    let inner = webpki_server_verifier(&trust.private_ca().unwrap_or_default())?;
    Ok(Arc::new(ProfileChecked { inner }))
}

/// The verifier a server uses for the client's certificate under `trust`; a client
/// certificate is always required.
///
/// Rebuild it (and the server configuration, then `Endpoint::set_server_config`) to apply a
/// reloaded CRL to new connections.
pub fn client_cert_verifier(trust: &PeerTrust) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if let Some(pins) = trust.pins()? {
        return Ok(Arc::new(PinnedVerifier {
            pins: pins.to_vec(),
        }));
    }
    if let Some(verifier) = trust.mixed(webpki_client_verifier)? {
        return Ok(Arc::new(verifier));
    }
    let inner = webpki_client_verifier(&trust.private_ca().unwrap_or_default())?;
    Ok(Arc::new(ProfileChecked { inner }))
}

/// QUIC transport limits of a node (SPEC.md §3.7, §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportLimits {
    /// How many message streams the peer may have open at once; the QUIC bidirectional
    /// stream limit is this + 1 (the control stream).
    pub max_inflight: u32,
    /// QUIC `max_idle_timeout`.
    pub idle_timeout: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_inflight: DEFAULT_MAX_INFLIGHT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// The QUIC transport configuration for `limits`: bidirectional streams `max_inflight` + 1,
/// no unidirectional streams, no DATAGRAM frames (no `max_datagram_frame_size`), 2 MiB stream
/// and 64 MiB connection receive windows, the idle timeout, a keep-alive.
///
/// [`server_config`] and [`client_config`] apply it.
pub fn transport_config(limits: &TransportLimits) -> Result<Arc<quinn::TransportConfig>, TlsError> {
    let streams = quinn::VarInt::from_u64(u64::from(limits.max_inflight) + 1)
        .map_err(|_| TlsError::Transport("max_inflight"))?;
    let idle = quinn::IdleTimeout::try_from(limits.idle_timeout)
        .map_err(|_| TlsError::Transport("idle_timeout"))?;
    let mut config = quinn::TransportConfig::default();
    config
        .max_concurrent_bidi_streams(streams)
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .stream_receive_window(quinn::VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(quinn::VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(KEEP_ALIVE.min(limits.idle_timeout / 2)))
        .datagram_receive_buffer_size(None);
    Ok(Arc::new(config))
}

/// The rustls server configuration behind [`server_config`] (exposed for inspection in tests).
pub fn rustls_server_config(
    key: &NodeTlsKey,
    trust: &PeerTrust,
    alpns: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    if alpns.is_empty() || alpns.iter().any(|a| a.is_empty()) {
        return Err(TlsError::NoAlpn);
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_cert_verifier(trust)?)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key.certified.clone())));
    config.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
    config.max_early_data_size = 0;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(config)
}

/// The rustls client configuration behind [`client_config`] (exposed for inspection in tests).
pub fn rustls_client_config(
    key: &NodeTlsKey,
    trust: &PeerTrust,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TlsError> {
    if alpn.is_empty() {
        return Err(TlsError::NoAlpn);
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server_cert_verifier(trust)?)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key.certified.clone())));
    config.alpn_protocols = vec![alpn.to_vec()];
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok(config)
}

/// The quinn server configuration of a node: TLS 1.3, mandatory client certificate verified
/// under `trust`, ALPN from `alpns` (a client offering none of them is refused with
/// `no_application_protocol`), no 0-RTT, no tickets, transport `limits`.
///
/// Note: quinn's server-side `Connecting::into_0rtt` always succeeds (it gives 0.5-RTT data
/// before the client's certificate is verified); a node must not use it.
pub fn server_config(
    key: &NodeTlsKey,
    trust: &PeerTrust,
    alpns: &[&[u8]],
    limits: &TransportLimits,
) -> Result<quinn::ServerConfig, TlsError> {
    let tls = QuicServerConfig::try_from(rustls_server_config(key, trust, alpns)?)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(tls));
    config.transport_config(transport_config(limits)?);
    Ok(config)
}

/// The quinn client configuration of a node: TLS 1.3, client certificate `key`, server
/// verified under `trust`, ALPN `alpn`, no resumption, no early data, transport `limits`.
pub fn client_config(
    key: &NodeTlsKey,
    trust: &PeerTrust,
    alpn: &[u8],
    limits: &TransportLimits,
) -> Result<quinn::ClientConfig, TlsError> {
    let tls = QuicClientConfig::try_from(rustls_client_config(key, trust, alpn)?)?;
    let mut config = quinn::ClientConfig::new(Arc::new(tls));
    config.transport_config(transport_config(limits)?);
    Ok(config)
}

/// The key exchange group negotiated on `conn` (e.g. `X25519MLKEM768`), for logs and status
/// (SPEC.md §3.4). Read from quinn's rustls `HandshakeData`, which carries it only under
/// quinn-proto's `__rustls-post-quantum-test` feature (see Cargo.toml).
pub fn negotiated_group(conn: &quinn::Connection) -> Option<String> {
    let data = conn
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    Some(format!("{:?}", data.negotiated_key_exchange_group))
}

/// The peer's end-entity certificate, once the handshake has completed.
pub fn peer_certificate(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    conn.peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?
        .into_iter()
        .next()
}

/// A 32-byte TLS exporter value (RFC 8446 §7.5) of `conn`, e.g. the channel binding of
/// SPEC.md §6.1 with `label = EXPORTER_LABEL` and an empty `context`.
///
/// The exporter only fails before the handshake completes, which a `quinn::Connection` has
/// passed. Should it fail anyway, the value is fresh random bytes: it then matches nothing
/// the peer computes, so the Hello exchange fails closed instead of binding to a known value.
pub fn exporter(conn: &quinn::Connection, label: &[u8], context: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if conn
        .export_keying_material(&mut out, label, context)
        .is_err()
        && provider().secure_random.fill(&mut out).is_err()
    {
        // No exporter and no system randomness either (neither happens once connected): a
        // value no peer computes, from the clock and the address, rather than a panic.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut h = Sha256::new();
        h.update(label);
        h.update(nanos.as_nanos().to_le_bytes());
        h.update(conn.remote_address().to_string());
        h.update(conn.stable_id().to_le_bytes());
        out = h.finalize().into();
    }
    out
}

/// A short label for why a certificate or handshake was refused, for metrics and logs:
/// `no_certificate`, `unknown_certificate` (not pinned), `expired` (also not yet valid),
/// `revoked`, `bad_signature`, `unknown_issuer` (also revocation status unknown),
/// `bad_certificate` (profile, encoding, name or EKU), `alpn` (no common ALPN), `other`.
///
/// Applies to the error a verifier returns, and to `AlertReceived` on the side that was refused.
pub fn failure_reason(err: &Error) -> &'static str {
    match err {
        Error::NoCertificatesPresented => "no_certificate",
        Error::NoApplicationProtocol => "alpn",
        Error::InvalidCertificate(e) => certificate_reason(e),
        Error::AlertReceived(alert) => alert_reason(u8::from(*alert)),
        Error::PeerMisbehaved(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme) => {
            "bad_signature"
        }
        _ => "other",
    }
}

fn certificate_reason(e: &CertificateError) -> &'static str {
    #[allow(deprecated)] // UnsupportedSignatureAlgorithm: still produced by rustls 0.23
    match e {
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => "expired",
        CertificateError::Revoked => "revoked",
        CertificateError::UnknownIssuer
        | CertificateError::UnknownRevocationStatus
        | CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => "unknown_issuer",
        CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithm
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "bad_signature"
        }
        CertificateError::ApplicationVerificationFailure => "unknown_certificate",
        CertificateError::BadEncoding
        | CertificateError::UnhandledCriticalExtension
        | CertificateError::NotValidForName
        | CertificateError::NotValidForNameContext { .. }
        | CertificateError::InvalidPurpose
        | CertificateError::InvalidPurposeContext { .. } => "bad_certificate",
        CertificateError::Other(OtherError(inner)) if inner.is::<ProfileError>() => {
            "bad_certificate"
        }
        _ => "other",
    }
}

/// Maps a TLS alert code (the one rustls sends for each refusal) to a [`failure_reason`] label.
fn alert_reason(alert: u8) -> &'static str {
    match alert {
        116 => "no_certificate",           // certificate_required
        49 => "unknown_certificate",       // access_denied: not pinned
        45 => "expired",                   // certificate_expired
        44 => "revoked",                   // certificate_revoked
        51 => "bad_signature",             // decrypt_error
        48 => "unknown_issuer",            // unknown_ca
        42 | 43 | 46 => "bad_certificate", // bad_, unsupported_, certificate_unknown
        120 => "alpn",                     // no_application_protocol
        _ => "other",
    }
}

/// [`failure_reason`] for a failed quinn connection, on either side: a TLS failure closes the
/// connection with the QUIC CRYPTO_ERROR 0x100 + alert (RFC 9001 §4.8). Where several causes
/// share one alert the label is the most likely one (a `decrypt_error` is reported as
/// `bad_signature`).
pub fn connection_failure_reason(err: &quinn::ConnectionError) -> &'static str {
    let code = match err {
        quinn::ConnectionError::TransportError(e) => u64::from(e.code),
        quinn::ConnectionError::ConnectionClosed(close) => u64::from(close.error_code),
        _ => return "other",
    };
    match code
        .checked_sub(0x100)
        .and_then(|alert| u8::try_from(alert).ok())
    {
        Some(alert) => alert_reason(alert),
        None => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NodeTlsKey {
        let now = 1_800_000_000_000;
        NodeTlsKey::generate("node.test", now, now + 86_400_000).unwrap()
    }

    #[test]
    fn server_config_disables_early_data_tickets_and_session_cache() {
        let key = key();
        let trust = PeerTrust::Pinned {
            spki_sha256: vec![key.spki_sha256()],
        };
        let config = rustls_server_config(&key, &trust, &[b"hotline/1"]).unwrap();
        assert_eq!(config.max_early_data_size, 0);
        assert_eq!(config.send_tls13_tickets, 0);
        assert!(!config.ticketer.enabled());
        assert!(!config.session_storage.can_cache());
        assert_eq!(config.alpn_protocols, vec![b"hotline/1".to_vec()]);
    }

    #[test]
    fn client_config_disables_early_data_and_resumption() {
        let key = key();
        let trust = PeerTrust::Pinned {
            spki_sha256: vec![key.spki_sha256()],
        };
        let config = rustls_client_config(&key, &trust, b"hotline/1").unwrap();
        assert!(!config.enable_early_data);
        let disabled = format!("{:?}", Resumption::disabled());
        assert_eq!(format!("{:?}", config.resumption), disabled);
    }

    #[test]
    fn provider_prefers_hybrid_group_and_offers_only_tls13_and_two_signature_schemes() {
        let provider = provider();
        let groups: Vec<_> = provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [
                rustls::NamedGroup::X25519MLKEM768,
                rustls::NamedGroup::X25519,
                rustls::NamedGroup::secp256r1
            ]
        );
        assert!(provider.cipher_suites.iter().all(|s| s.tls13().is_some()));
        assert_eq!(
            provider
                .signature_verification_algorithms
                .supported_schemes(),
            [
                SignatureScheme::ED25519,
                SignatureScheme::ECDSA_NISTP256_SHA256
            ]
        );
    }

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
