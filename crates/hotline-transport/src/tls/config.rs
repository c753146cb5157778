//! The QUIC endpoint configurations of a node: transport limits, and the rustls and quinn
//! server and client configurations built from a key and a trust mode.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::Resumption;
use rustls::server::NoServerSessionStorage;
use rustls::sign::SingleCertAndKey;

use super::cert::NodeTlsKey;
use super::error::TlsError;
use super::trust::{PeerTrust, client_cert_verifier, server_cert_verifier};
use super::{
    CONNECTION_RECEIVE_WINDOW, DEFAULT_MAX_INFLIGHT, IDLE_TIMEOUT, KEEP_ALIVE,
    STREAM_RECEIVE_WINDOW, provider,
};

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
}
