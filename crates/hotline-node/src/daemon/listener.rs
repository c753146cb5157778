//! The QUIC listener: each accepted connection routed by its ALPN and pinned key to a peer's link
//! or the operator API, by the peers and operators the node has now (see `registry`).

use std::sync::Arc;

use prost::Message;

use super::link::LinkMsg;
use super::{Shared, metrics, operator_api};
use hotline_transport::tls;

pub(super) async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let metrics = &shared.metrics;
            let remote = incoming.remote_address();
            let conn =
                match tokio::time::timeout(std::time::Duration::from_secs(10), incoming).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        let reason = tls::connection_failure_reason(&e);
                        tracing::warn!(%remote, reason, "refused connection: {e}");
                        metrics::handshake_failure(metrics, reason);
                        return;
                    }
                    Err(_) => {
                        metrics::handshake_failure(metrics, "timeout");
                        return;
                    }
                };
            let spki = tls::peer_certificate(&conn).and_then(|c| tls::spki_sha256(&c).ok());
            let alpn = conn
                .handshake_data()
                .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|d| d.protocol);
            let refuse = |reason: &'static str, why: &'static [u8]| {
                metrics::handshake_failure(metrics, reason);
                conn.close(
                    quinn::VarInt::from_u32(hotline_protocol::CloseCode::ProtocolViolation.code()),
                    why,
                );
            };
            // The ALPN decides the role a pinned key may play (SPEC.md §15.3).
            if alpn.as_deref() == Some(hotline_protocol::OPERATOR_ALPN) {
                let Some(spki) = spki else {
                    return refuse("unknown_certificate", b"no certificate");
                };
                let found = shared.registry.read().ok().and_then(|r| {
                    r.operators
                        .iter()
                        .find(|o| o.tls_spki_sha256 == spki)
                        .cloned()
                });
                match found {
                    Some(record) if record.revoked_ms.is_none() => {
                        let credential = hotline_protocol::wire::OfficerCredential::decode(
                            record.credential.clone(),
                        )
                        .ok()
                        .and_then(|w| {
                            hotline_protocol::officer::Credential::verify(&w, &shared.id).ok()
                        });
                        match credential {
                            Some(credential) => {
                                tokio::spawn(operator_api::serve(
                                    shared.clone(),
                                    conn,
                                    operator_api::Operator { record, credential },
                                ));
                            }
                            None => refuse("other", b"stored operator credential invalid"),
                        }
                    }
                    // The TLS pins hold only active operators; a key revoked between the
                    // handshake and now lands here.
                    Some(_) => refuse("revoked", b"operator credential revoked"),
                    None => refuse(
                        "unknown_certificate",
                        b"not an operator credential of this node",
                    ),
                }
                return;
            }
            match spki.and_then(|s| shared.link_by_spki(&s)) {
                Some((alias, tx)) => {
                    tracing::debug!(%remote, peer = %alias, "accepted connection");
                    let _ = tx.send(LinkMsg::Incoming(conn));
                }
                None => refuse("unknown_certificate", b"certificate not pinned for a peer"),
            }
        });
    }
}
