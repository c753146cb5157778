//! The error type of TLS set-up, and the short labels for why a peer's certificate or a
//! handshake was refused (for metrics and logs).

use rustls::{CertificateError, Error, OtherError};

use super::cert::ProfileError;

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
