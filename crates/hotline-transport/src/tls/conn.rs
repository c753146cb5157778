//! What an established QUIC connection tells about its TLS session: the negotiated key
//! exchange group, the peer's certificate and exporter values.

use std::time::SystemTime;

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use super::provider;

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
