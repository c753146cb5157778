//! [`SqliteStore`] reads for the operator: listing messages, one message with its receipts,
//! and export.
//!
//! Bodies of [`Store`](crate::store::Store) methods; each one's documentation stays on the
//! `impl Store for SqliteStore` in the parent module.

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use rusqlite::params;

use super::super::{
    ExportItem, InboxRow, ListQuery, MessageRow, Position, Removed, Result, StoreError,
    StoredMessage,
};
use super::SqliteStore;
use super::convert::{digest, int, message_id, node_id, peer_seq_back, precedence_back, uint};

/// A message row as Show reads it: the listing fields, the envelope (`None`: not sealed), the
/// content, and the envelope's SHA-256.
type Held = (MessageRow, Option<Vec<u8>>, Vec<u8>, Option<Vec<u8>>);

/// The table of the receipts about messages of `table`: the peer's about ours, ours about the
/// peer's.
fn receipts_table(table: &str) -> &'static str {
    if table == "outbox" {
        "receipts_in"
    } else {
        "receipts_out"
    }
}

/// One row of `inbox` or `outbox` in the column order the listing queries select.
fn message_row(r: &rusqlite::Row<'_>, incoming: bool) -> Result<MessageRow> {
    Ok(MessageRow {
        message_id: message_id(&r.get::<_, Vec<u8>>(0)?)?,
        peer: node_id(&r.get::<_, Vec<u8>>(1)?)?,
        incoming,
        sequence: if incoming {
            peer_seq_back(r.get(2)?)
        } else {
            uint(r.get(2)?, "sequence")?
        },
        precedence: precedence_back(r.get(3)?)?,
        tlp: r.get(4)?,
        created_ms: uint(r.get(5)?, "created_ms")?,
        received_ms: uint(r.get(6)?, "received_ms")?,
        subject: r.get(7)?,
        officer: r.get(8)?,
        state: r.get(9)?,
    })
}

impl SqliteStore {
    pub(super) fn received_bytes_by_peer(&mut self) -> Result<Vec<(NodeId, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT peer, sum(length(envelope) + length(content)) FROM inbox GROUP BY peer",
        )?;
        let rows = stmt.query_and_then([], |r| -> Result<(NodeId, u64)> {
            Ok((
                node_id(&r.get::<_, Vec<u8>>(0)?)?,
                uint(r.get::<_, i64>(1)?, "bytes")?,
            ))
        })?;
        rows.collect()
    }

    /// Receipt bytes held for a message in `receipts_in` or `receipts_out`, oldest first (not
    /// those whose bytes the retention policy removed).
    fn receipts_of(&mut self, table: &str, id: &MessageId) -> Result<Vec<Bytes>> {
        let sql = match table {
            "receipts_in" => {
                "SELECT bytes FROM receipts_in WHERE message_id = ?1 AND length(bytes) > 0 \
                 ORDER BY stored_ms, rowid"
            }
            _ => {
                "SELECT bytes FROM receipts_out WHERE message_id = ?1 AND length(bytes) > 0 \
                 ORDER BY stored_ms, rowid"
            }
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([&id[..]], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|r| r.map(Bytes::from).map_err(StoreError::from))
            .collect()
    }
}

impl SqliteStore {
    pub(super) fn inbox(&mut self, limit: usize) -> Result<Vec<InboxRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT i.message_id, i.peer, i.sequence, i.precedence, i.tlp, i.created_ms, \
                    i.received_ms, i.subject, i.officer, \
                    EXISTS (SELECT 1 FROM receipts_out AS r \
                            WHERE r.message_id = i.message_id AND r.kind = 'ACKNOWLEDGED') \
             FROM inbox AS i ORDER BY i.received_ms DESC, i.id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_and_then([limit], |r| -> Result<InboxRow> {
            Ok(InboxRow {
                message_id: message_id(&r.get::<_, Vec<u8>>(0)?)?,
                peer: node_id(&r.get::<_, Vec<u8>>(1)?)?,
                sequence: peer_seq_back(r.get(2)?),
                precedence: precedence_back(r.get(3)?)?,
                tlp: r.get(4)?,
                created_ms: uint(r.get(5)?, "created_ms")?,
                received_ms: uint(r.get(6)?, "received_ms")?,
                subject: r.get(7)?,
                officer: r.get(8)?,
                acknowledged: r.get(9)?,
            })
        })?;
        rows.collect()
    }

    pub(super) fn messages(&mut self, q: &ListQuery) -> Result<Vec<MessageRow>> {
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let peer_blob: Option<Vec<u8>> = q.peer.map(|p| p.as_bytes().to_vec());
        let (before_ms, before_id) = match q.before {
            Some(p) => (
                Some(int(p.created_ms, "created_ms")?),
                p.message_id.to_vec(),
            ),
            None => (None, Vec::new()),
        };
        // Newest first; a page starts after the previous page's last (oldest) message.
        let sql = if q.incoming {
            "SELECT i.message_id, i.peer, i.sequence, i.precedence, i.tlp, i.created_ms, i.received_ms, \
                    i.subject, i.officer, \
                    CASE WHEN EXISTS (SELECT 1 FROM receipts_out AS r WHERE r.message_id = i.message_id \
                                      AND r.kind = 'ACKNOWLEDGED') THEN 'acknowledged' ELSE 'received' END \
             FROM inbox AS i WHERE (?1 IS NULL OR i.peer = ?1) \
               AND (?3 = 0 OR NOT EXISTS (SELECT 1 FROM receipts_out AS r \
                                          WHERE r.message_id = i.message_id AND r.kind = 'ACKNOWLEDGED')) \
               AND (?4 IS NULL OR i.created_ms < ?4 OR (i.created_ms = ?4 AND i.message_id < ?5)) \
             ORDER BY i.created_ms DESC, i.message_id DESC LIMIT ?2"
        } else {
            "SELECT o.message_id, o.peer, o.sequence, o.precedence, o.tlp, o.created_ms, 0, \
                    o.subject, o.officer, o.state \
             FROM outbox AS o WHERE (?1 IS NULL OR o.peer = ?1) AND ?3 = ?3 \
               AND (?4 IS NULL OR o.created_ms < ?4 OR (o.created_ms = ?4 AND o.message_id < ?5)) \
             ORDER BY o.created_ms DESC, o.message_id DESC LIMIT ?2"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_and_then(
            params![
                peer_blob,
                limit,
                q.unacknowledged_only,
                before_ms,
                before_id
            ],
            |r| message_row(r, q.incoming),
        )?;
        rows.collect()
    }

    pub(super) fn message(&mut self, id: &MessageId) -> Result<Option<StoredMessage>> {
        // Sent messages first: ids are unique across both directions now, but a database
        // written before may hold a received message that reused the id of one we sent (the
        // peer chose it), and that one must not shadow ours.
        let outbox = self
            .conn
            .prepare_cached(
                "SELECT o.message_id, o.peer, o.sequence, o.precedence, o.tlp, o.created_ms, 0, \
                        o.subject, o.officer, o.state, o.envelope, o.content, o.envelope_sha256 \
                 FROM outbox AS o WHERE o.message_id = ?1",
            )?
            .query_and_then([&id[..]], |r| -> Result<Held> {
                Ok((message_row(r, false)?, r.get(10)?, r.get(11)?, r.get(12)?))
            })?
            .next()
            .transpose()?;
        let ((row, envelope, content, sha), table) = match outbox {
            Some(held) => (held, "outbox"),
            None => {
                let inbox = self
                    .conn
                    .prepare_cached(
                        "SELECT i.message_id, i.peer, i.sequence, i.precedence, i.tlp, i.created_ms, i.received_ms, \
                                i.subject, i.officer, \
                                CASE WHEN EXISTS (SELECT 1 FROM receipts_out AS r WHERE r.message_id = i.message_id \
                                                  AND r.kind = 'ACKNOWLEDGED') THEN 'acknowledged' ELSE 'received' END, \
                                i.envelope, i.content, i.envelope_sha256 \
                         FROM inbox AS i WHERE i.message_id = ?1",
                    )?
                    .query_and_then([&id[..]], |r| -> Result<Held> {
                        Ok((message_row(r, true)?, r.get(10)?, r.get(11)?, r.get(12)?))
                    })?
                    .next()
                    .transpose()?;
                match inbox {
                    Some(held) => (held, "inbox"),
                    None => return Ok(None),
                }
            }
        };
        let receipts_table = receipts_table(table);
        let receipts = self.receipts_of(receipts_table, id)?;
        let removed = self.removed(table == "inbox", id)?;
        Ok(Some(StoredMessage {
            row,
            envelope: Bytes::from(envelope.unwrap_or_default()),
            envelope_sha256: sha.as_deref().map(digest).transpose()?,
            content: Bytes::from(content),
            receipts,
            removed,
        }))
    }

    pub(super) fn export_page(
        &mut self,
        peer: Option<NodeId>,
        since: hotline_protocol::time::UnixMillis,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<ExportItem>> {
        let since = int(since, "since")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let peer_blob: Option<Vec<u8>> = peer.map(|p| p.as_bytes().to_vec());
        let (after_ms, after_in, after_id) = match after {
            Some(p) => (
                Some(int(p.created_ms, "created_ms")?),
                i64::from(p.incoming),
                p.message_id.to_vec(),
            ),
            None => (None, 0, Vec::new()),
        };
        // The keys of the page first (the envelopes are read one by one after): oldest first.
        let keys: Vec<(i64, bool, Vec<u8>, Vec<u8>)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT created_ms, incoming, message_id, peer FROM ( \
                     SELECT created_ms, 1 AS incoming, message_id, peer FROM inbox \
                      WHERE (?1 IS NULL OR peer = ?1) AND created_ms >= ?2 \
                     UNION ALL \
                     SELECT created_ms, 0 AS incoming, message_id, peer FROM outbox \
                      WHERE envelope IS NOT NULL AND (?1 IS NULL OR peer = ?1) AND created_ms >= ?2) \
                 WHERE ?3 IS NULL OR created_ms > ?3 \
                    OR (created_ms = ?3 AND (incoming > ?4 OR (incoming = ?4 AND message_id > ?5))) \
                 ORDER BY created_ms, incoming, message_id LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![peer_blob, since, after_ms, after_in, after_id, limit],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut items = Vec::with_capacity(keys.len());
        for (created_ms, incoming, mid, peer) in keys {
            let id = message_id(&mid)?;
            let table = if incoming { "inbox" } else { "outbox" };
            let sql = if incoming {
                "SELECT envelope, envelope_sha256 FROM inbox WHERE message_id = ?1"
            } else {
                "SELECT envelope, envelope_sha256 FROM outbox WHERE message_id = ?1"
            };
            let (envelope, sha): (Vec<u8>, Vec<u8>) = self
                .conn
                .prepare_cached(sql)?
                .query_row([&id[..]], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let receipts = self.receipts_of(receipts_table(table), &id)?;
            // An export holds no content: only what was removed of the evidence is said.
            let removed = Removed {
                content_ms: None,
                ..self.removed(incoming, &id)?
            };
            items.push(ExportItem {
                position: Position {
                    created_ms: uint(created_ms, "created_ms")?,
                    incoming,
                    message_id: id,
                },
                peer: node_id(&peer)?,
                incoming,
                envelope: Bytes::from(envelope),
                envelope_sha256: digest(&sha)?,
                receipts,
                removed,
            });
        }
        Ok(items)
    }

    pub(super) fn export_peers(
        &mut self,
        peer: Option<NodeId>,
        since: hotline_protocol::time::UnixMillis,
    ) -> Result<Vec<NodeId>> {
        let since = int(since, "since")?;
        let peer_blob: Option<Vec<u8>> = peer.map(|p| p.as_bytes().to_vec());
        let mut stmt = self.conn.prepare_cached(
            "SELECT peer FROM inbox WHERE (?1 IS NULL OR peer = ?1) AND created_ms >= ?2 \
             UNION \
             SELECT peer FROM outbox WHERE envelope IS NOT NULL AND (?1 IS NULL OR peer = ?1) \
               AND created_ms >= ?2 \
             ORDER BY 1",
        )?;
        let rows = stmt.query_and_then(params![peer_blob, since], |r| {
            node_id(&r.get::<_, Vec<u8>>(0)?)
        })?;
        rows.collect()
    }
}
