//! The operator API's reads that can grow without bound — List, Show and Export (SPEC.md
//! §15.5.2, §15.5.3, §15.5.7) — kept within the 16 MiB answer limit: List and Export are paged
//! with a cursor, and an answer that would still be too large is refused with BAD_REQUEST.

use std::sync::Arc;

use hotline_protocol::NodeId;
use hotline_protocol::wire::OperatorErrorCode as Code;
use hotline_protocol::wire::{self, operator_response::Response};
use prost::Message;

use super::super::Shared;
use super::{MAX_RESPONSE, Reply, err, message_id};
use crate::store::{ListQuery, Position};
use hotline_transport::now_ms;

/// How much an Export page holds at most (items' encoded bytes): half the answer limit, so a
/// page with its bundles always fits.
pub const EXPORT_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Messages read from the store at a time while a page is filled.
const EXPORT_BATCH: usize = 64;

/// A cursor on the wire: version 1, `created_ms` (u64be), direction (1 byte), message id.
const CURSOR_LEN: usize = 1 + 8 + 1 + 16;

/// Encodes where a page ended (opaque to the client).
fn cursor(p: &Position) -> bytes::Bytes {
    let mut out = Vec::with_capacity(CURSOR_LEN);
    out.push(1);
    out.extend_from_slice(&p.created_ms.to_be_bytes());
    out.push(u8::from(p.incoming));
    out.extend_from_slice(&p.message_id);
    out.into()
}

/// Decodes a cursor from a request; empty means the first page.
fn position(b: &[u8]) -> Result<Option<Position>, (Code, String)> {
    if b.is_empty() {
        return Ok(None);
    }
    let bad = || {
        (
            Code::BadRequest,
            "cursor not recognised: give back next_cursor exactly as the node sent it".to_owned(),
        )
    };
    if b.len() != CURSOR_LEN || b[0] != 1 || b[9] > 1 {
        return Err(bad());
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&b[1..9]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[10..]);
    Ok(Some(Position {
        created_ms: u64::from_be_bytes(ms),
        incoming: b[9] == 1,
        message_id: id,
    }))
}

fn peer_named(shared: &Shared, name: &str) -> Result<Option<NodeId>, (Code, String)> {
    if name.is_empty() {
        return Ok(None);
    }
    shared
        .resolve_peer(name)
        .map(Some)
        .ok_or((Code::UnknownPeer, format!("no pinned peer {name:?}")))
}

pub(super) async fn list(shared: &Arc<Shared>, l: wire::ListRequest) -> Reply {
    let limit = match l.limit {
        0 => 100,
        n => n.min(10_000) as usize,
    };
    let query = ListQuery {
        incoming: l.incoming,
        peer: peer_named(shared, &l.peer)?,
        // Applies to the inbox only, and before the limit.
        unacknowledged_only: l.unacknowledged_only && l.incoming,
        before: position(&l.cursor)?,
        limit,
    };
    let rows = shared
        .store
        .call(move |s| s.messages(&query))
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::Unavailable, e.to_string()))?;
    // A full page may have older messages after it: the next page starts after its oldest.
    let next_cursor = match rows.last() {
        Some(last) if rows.len() == limit => cursor(&Position {
            created_ms: last.created_ms,
            incoming: last.incoming,
            message_id: last.message_id,
        }),
        _ => bytes::Bytes::new(),
    };
    let mut messages: Vec<wire::MessageSummary> = rows.iter().map(|m| shared.summary(m)).collect();
    // FLASH first, then newest first (SPEC.md §15.5.2: what is most urgent is on top).
    messages.sort_by_key(|m| (m.precedence, std::cmp::Reverse(m.created_ms)));
    Ok(Response::List(wire::ListResponse {
        messages,
        next_cursor,
    }))
}

pub(super) async fn show(shared: &Arc<Shared>, s: wire::ShowRequest) -> Reply {
    let id = message_id(&s.message_id)?;
    let msg = shared
        .store
        .call(move |st| st.message(&id))
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::Unavailable, e.to_string()))?
        .ok_or((
            Code::NotFound,
            "no message with that id; `hotline inbox` lists them".to_string(),
        ))?;
    let own = shared.own_bundle();
    let peer = shared.peer_bundle(&msg.row.peer);
    let (sender_bundle, receiver_bundle) = if msg.row.incoming {
        (peer, own)
    } else {
        (own, peer)
    };
    // Revocations of the officer keys it names, ours and the peer's (SPEC.md §4.6.3): the
    // client shows how each signature stands.
    let keys = hotline_protocol::revocation::officer_keys_in(&msg.content, &msg.receipts);
    let (own_revs, peer_revs) = (
        shared.revocations.own(),
        shared.revocations.of(&msg.row.peer),
    );
    let revocations = own_revs
        .iter()
        .chain(peer_revs.iter())
        .filter(|r| keys.contains(r.key()))
        .map(|r| r.bytes().clone())
        .collect();
    Ok(Response::Show(wire::ShowResponse {
        summary: Some(shared.summary(&msg.row)),
        envelope: msg.envelope.clone(),
        content: msg.content.clone(),
        receipts: msg.receipts.clone(),
        sender_bundle,
        receiver_bundle,
        removed: removal(&id, msg.envelope_sha256, &msg.removed),
        revocations,
    }))
}

/// What Show and Export say the retention policy removed (SPEC.md §13.4); `None`: nothing.
fn removal(
    id: &[u8; 16],
    envelope_sha256: Option<[u8; 32]>,
    r: &crate::store::Removed,
) -> Option<wire::Removal> {
    r.any().then(|| wire::Removal {
        message_id: id.to_vec().into(),
        envelope_sha256: envelope_sha256
            .map(|s| s.to_vec().into())
            .unwrap_or_default(),
        content_ms: r.content_ms.unwrap_or(0),
        envelope_ms: r.envelope_ms.unwrap_or(0),
        receipts: r.receipts,
        receipts_ms: r.receipts_ms.unwrap_or(0),
    })
}

/// One page of an export. The first page (no cursor) carries the version, the time, this
/// node's bundle and the bundles of every peer of the whole selection; every page carries the
/// next items, up to [`EXPORT_PAGE_BYTES`], and the cursor of the page after it (empty after
/// the last). The pages' items in order are the export: a client writes the first page's
/// bundle, then each later page's items, and has the canonical evidence file (§15.7.1).
pub(super) async fn export(shared: &Arc<Shared>, e: wire::ExportRequest) -> Reply {
    let peer = peer_named(shared, &e.peer)?;
    let since = e.since_ms;
    let mut after = position(&e.cursor)?;
    let first = after.is_none();
    let mut bundle = wire::EvidenceBundle::default();
    if first {
        let peers = shared
            .store
            .call(move |s| s.export_peers(peer, since))
            .await
            .ok_or((Code::Unavailable, "node shutting down".to_string()))?
            .map_err(|e| (Code::Unavailable, e.to_string()))?;
        bundle.version = 1;
        bundle.created_ms = now_ms();
        bundle.exporter_bundle = shared.own_bundle();
        bundle.peer_bundles = peers.iter().map(|p| shared.peer_bundle(p)).collect();
        // The key revocations of every node in the bundle (SPEC.md §4.6.3, §15.7): the
        // verifier says how each acknowledgement stands against them.
        bundle.revocations = std::iter::once(shared.id)
            .chain(peers.iter().copied())
            .flat_map(|n| shared.revocations.of(&n).as_ref().clone())
            .map(|r| r.bytes().clone())
            .collect();
    }
    let mut size = bundle.encoded_len();
    let mut next_cursor = bytes::Bytes::new();
    'fill: loop {
        let items = shared
            .store
            .call(move |s| s.export_page(peer, since, after, EXPORT_BATCH))
            .await
            .ok_or((Code::Unavailable, "node shutting down".to_string()))?
            .map_err(|e| (Code::Unavailable, e.to_string()))?;
        let last_batch = items.len() < EXPORT_BATCH;
        for i in items {
            let item = wire::EvidenceItem {
                removed: removal(&i.position.message_id, Some(i.envelope_sha256), &i.removed),
                envelope: i.envelope,
                receipts: i.receipts,
                incoming: i.incoming,
            };
            let len = item.encoded_len();
            let grown = size + len + 8;
            if len + 4096 > MAX_RESPONSE {
                return err(
                    Code::BadRequest,
                    format!(
                        "message {} with its receipts is {len} bytes, over the 16 MiB limit of \
                         an answer; it cannot be exported",
                        data_encoding::HEXLOWER.encode(&i.position.message_id)
                    ),
                );
            }
            if grown > EXPORT_PAGE_BYTES && !bundle.items.is_empty() {
                // Full: this item starts the next page.
                break 'fill;
            }
            size = grown;
            bundle.items.push(item);
            after = Some(i.position);
            next_cursor = cursor(&i.position);
        }
        if last_batch {
            next_cursor = bytes::Bytes::new();
            break;
        }
    }
    Ok(Response::Export(wire::ExportResponse {
        bundle: Some(bundle),
        next_cursor,
    }))
}
