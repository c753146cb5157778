//! The rustls certificate verifiers behind the trust modes: pinned (`PinnedVerifier`), private
//! CA (`ProfileChecked` around WebPKI) and both at once (`MixedVerifier`).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::verify_tls13_signature;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::cert::inspect;
use super::provider;
#[cfg(doc)] // only named by a doc link
use super::trust::PeerTrust;

/// Verifier for pinned mode, both as client (verifying a server) and as server.
#[derive(Debug)]
pub(super) struct PinnedVerifier {
    pub(super) pins: Vec<[u8; 32]>,
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
pub(super) struct ProfileChecked<V: ?Sized> {
    pub(super) inner: Arc<V>,
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
pub(super) struct MixedVerifier<V: ?Sized> {
    /// SPKI pins of pinned-mode peers.
    pub(super) pinned: Vec<[u8; 32]>,
    /// SPKI pins of private-CA peers, and the private CA verifier.
    pub(super) ca: Option<(Vec<[u8; 32]>, ProfileChecked<V>)>,
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
