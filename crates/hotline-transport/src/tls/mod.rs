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

mod cert;
mod config;
mod conn;
mod error;
mod expiry;
mod trust;
mod verifier;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{SignatureScheme, SupportedCipherSuite};

pub use cert::{
    NodeTlsKey, ProfileError, cert_pem, certs_from_pem, check_validity, crls_from_pem, spki_sha256,
};
pub use config::{
    TransportLimits, client_config, rustls_client_config, rustls_server_config, server_config,
    transport_config,
};
pub use conn::{exporter, negotiated_group, peer_certificate};
pub use error::{TlsError, connection_failure_reason, failure_reason};
pub use expiry::{Lapse, ca_lapses, certificate_not_after, certificate_serial, listed_in_crl};
pub use trust::{CaRoots, PeerTrust, check_ca, client_cert_verifier, server_cert_verifier};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
