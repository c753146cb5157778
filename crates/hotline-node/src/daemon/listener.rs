//! The QUIC listener: each accepted connection routed by its ALPN and pinned key to a peer's link
//! or the operator API, and the operator pins reloaded while the node runs.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;

use super::link::LinkMsg;
use super::{Shared, metrics, operator_api};
use hotline_transport::tls::{self, PeerTrust};

/// Watches the operator table: an operator added or revoked with `hotlined operator` while the
/// node runs can connect (or no longer can) within a few seconds, without a restart. Existing
/// connections are re-checked per request.
pub(super) async fn reload_operator_pins(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    tls_key: tls::NodeTlsKey,
    peer_pins: Vec<[u8; 32]>,
    ca: Option<(tls::CaRoots, Vec<[u8; 32]>)>,
    limits: tls::TransportLimits,
) {
    let active = |ops: Vec<crate::store::OperatorRecord>| -> std::collections::BTreeSet<[u8; 32]> {
        ops.into_iter()
            .filter(|o| o.revoked_ms.is_none())
            .map(|o| o.tls_spki_sha256)
            .collect()
    };
    let mut current = match shared.store.call(|s| s.operators()).await {
        Some(Ok(ops)) => active(ops),
        _ => return,
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
    loop {
        tick.tick().await;
        let ops = match shared.store.call(|s| s.operators()).await {
            Some(Ok(ops)) => active(ops),
            Some(Err(e)) => {
                tracing::warn!("cannot read operators: {e}");
                continue;
            }
            None => return,
        };
        if ops == current {
            continue;
        }
        let mut pinned = peer_pins.clone();
        pinned.extend(ops.iter().copied());
        let trust = PeerTrust::Mixed {
            pinned,
            ca: ca.clone(),
        };
        match tls::server_config(
            &tls_key,
            &trust,
            &[hotline_protocol::ALPN, hotline_protocol::OPERATOR_ALPN],
            &limits,
        ) {
            Ok(cfg) => {
                endpoint.set_server_config(Some(cfg));
                tracing::info!(operators = ops.len(), "operator credentials reloaded");
                current = ops;
            }
            Err(e) => tracing::warn!("cannot rebuild the server configuration: {e}"),
        }
    }
}

pub(super) async fn accept_loop(
    endpoint: quinn::Endpoint,
    by_spki: HashMap<[u8; 32], (String, mpsc::UnboundedSender<LinkMsg>)>,
    shared: Arc<Shared>,
) {
    let by_spki = Arc::new(by_spki);
    while let Some(incoming) = endpoint.accept().await {
        let by_spki = by_spki.clone();
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
                let found = shared
                    .store
                    .call(move |s| {
                        s.operators()
                            .map(|ops| ops.into_iter().find(|o| o.tls_spki_sha256 == spki))
                    })
                    .await;
                match found {
                    Some(Ok(Some(record))) if record.revoked_ms.is_none() => {
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
                    Some(Ok(Some(_))) => refuse("revoked", b"operator credential revoked"),
                    _ => refuse(
                        "unknown_certificate",
                        b"not an operator credential of this node",
                    ),
                }
                return;
            }
            match spki.and_then(|s| by_spki.get(&s)) {
                Some((alias, tx)) => {
                    tracing::debug!(%remote, peer = %alias, "accepted connection");
                    let _ = tx.send(LinkMsg::Incoming(conn));
                }
                None => refuse("unknown_certificate", b"certificate not pinned for a peer"),
            }
        });
    }
}
