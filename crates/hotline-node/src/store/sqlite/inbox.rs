//! [`SqliteStore`] incoming messages: accepting arrivals with their DELIVERED receipts, the
//! sequences received, and the receipts we send back.
//!
//! Bodies of [`Store`](crate::store::Store) methods; each one's documentation stays on the
//! `impl Store for SqliteStore` in the parent module.

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use rusqlite::{OptionalExtension, params};

use super::super::{
    AcceptOutcome, Arrival, OwnReceiptOutcome, ReceiptRecord, RejectedSequence, Result, StoreError,
};
use super::SqliteStore;
use super::convert::{
    digest, hex, int, message_id, peer_seq, peer_seq_back, precedence, push_range, state_for_kind,
};

impl SqliteStore {
    pub(super) fn accept(&mut self, batch: &[Arrival]) -> Result<Vec<AcceptOutcome>> {
        let tx = self.write()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut existing = tx.prepare_cached(RECEIVED)?;
            let mut sent = tx.prepare_cached("SELECT 1 FROM outbox WHERE message_id = ?1")?;
            let mut receipt = tx.prepare_cached(
                "INSERT INTO receipts_out (sha256, message_id, peer, kind, bytes, stored_ms, \
                 confirmed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
            )?;
            let mut inbox = tx.prepare_cached(
                "INSERT INTO inbox (message_id, peer, sequence, precedence, tlp, created_ms, \
                 received_ms, envelope, envelope_sha256, content, subject, officer, \
                 delivered_receipt) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            // SPEC.md §10.1: the same sequence from the same peer on another message id. Served
            // by `inbox_peer_sequence` (whose entries are in rowid order within a sequence).
            let mut reused = tx.prepare_cached(
                "SELECT message_id FROM inbox WHERE peer = ?1 AND sequence = ?2 \
                 AND message_id <> ?3 ORDER BY id LIMIT 1",
            )?;
            let mut audit = tx.prepare_cached(
                "INSERT INTO audit (time_ms, kind, peer, message_id, detail) \
                 VALUES (?1, 'sequence_reused', ?2, ?3, ?4)",
            )?;
            for a in batch {
                if a.receipt.message_id != a.message_id {
                    return Err(StoreError::Database(format!(
                        "the receipt prepared for message {} is about message {}",
                        hex(&a.message_id),
                        hex(&a.receipt.message_id)
                    )));
                }
                let found: Option<(Vec<u8>, Vec<u8>)> = existing
                    .query_row([&a.message_id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((sha, original)) = found {
                    outcomes.push(if sha == a.envelope_sha256[..] {
                        AcceptOutcome::Duplicate {
                            receipt: Bytes::from(original),
                        }
                    } else {
                        AcceptOutcome::Conflict
                    });
                    continue;
                }
                // One id space per node: the id of a message we sent is not the peer's to use
                // (it would shadow ours in Show, Receipts and `send --wait`).
                if sent.exists([&a.message_id[..]])? {
                    outcomes.push(AcceptOutcome::Conflict);
                    continue;
                }
                let earlier: Option<Vec<u8>> = reused
                    .query_row(
                        params![
                            &a.peer.as_bytes()[..],
                            peer_seq(a.sequence),
                            &a.message_id[..]
                        ],
                        |r| r.get(0),
                    )
                    .optional()?;
                let sequence_reused_by = earlier.as_deref().map(message_id).transpose()?;
                if let Some(earlier) = &sequence_reused_by {
                    audit.execute(params![
                        int(a.received_ms, "received_ms")?,
                        &a.peer.as_bytes()[..],
                        &a.message_id[..],
                        sequence_reused_detail(a.sequence, &a.message_id, earlier),
                    ])?;
                }
                let r = &a.receipt;
                receipt.execute(params![
                    &r.sha256[..],
                    &r.message_id[..],
                    &r.peer.as_bytes()[..],
                    r.kind,
                    &r.bytes[..],
                    int(r.stored_ms, "stored_ms")?,
                ])?;
                inbox.execute(params![
                    &a.message_id[..],
                    &a.peer.as_bytes()[..],
                    peer_seq(a.sequence),
                    precedence(a.precedence),
                    a.tlp,
                    int(a.created_ms, "created_ms")?,
                    int(a.received_ms, "received_ms")?,
                    &a.envelope[..],
                    &a.envelope_sha256[..],
                    &a.content[..],
                    a.subject,
                    a.officer,
                    &r.sha256[..],
                ])?;
                outcomes.push(AcceptOutcome::Inserted { sequence_reused_by });
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    pub(super) fn received(&mut self, message_id: &MessageId) -> Result<Option<([u8; 32], Bytes)>> {
        let found: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached(RECEIVED)?
            .query_row([&message_id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        found
            .map(|(sha, receipt)| Ok((digest(&sha)?, Bytes::from(receipt))))
            .transpose()
    }

    pub(super) fn received_sequences(&mut self, peer: &NodeId) -> Result<Vec<(u64, u64)>> {
        let key = &peer.as_bytes()[..];
        let mut out = Vec::new();
        let mut bounds = self.conn.prepare_cached(
            "SELECT s, prev IS NULL OR s - prev > 1, next IS NULL OR next - s > 1 FROM ( \
                 SELECT sequence AS s, lag(sequence) OVER w AS prev, \
                        lead(sequence) OVER w AS next \
                 FROM (SELECT sequence FROM inbox WHERE peer = ?1 \
                       UNION SELECT sequence FROM rejected_sequences WHERE peer = ?1) \
                 WHERE sequence BETWEEN ?2 AND ?3 \
                 WINDOW w AS (ORDER BY sequence)) \
             WHERE prev IS NULL OR s - prev > 1 OR next IS NULL OR next - s > 1 \
             ORDER BY s",
        )?;
        // Differences are taken within one half only, where they cannot overflow.
        for (from, to) in [(0, i64::MAX), (i64::MIN, -1)] {
            let rows = bounds.query_map(params![key, from, to], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })?;
            let mut first = None;
            for row in rows {
                let (s, starts, ends) = row?;
                let s = peer_seq_back(s);
                if starts {
                    first = Some(s);
                }
                if ends {
                    push_range(&mut out, (first.take().unwrap_or(s), s));
                }
            }
        }
        Ok(out)
    }

    pub(super) fn record_rejected_sequence(&mut self, r: &RejectedSequence) -> Result<()> {
        if r.sequence == 0 {
            return Err(StoreError::Database(
                "sequence 0 never counts as received (SPEC.md §7.6 step 2)".into(),
            ));
        }
        let stored_ms = int(r.stored_ms, "stored_ms")?;
        let tx = self.write()?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO rejected_sequences \
             (peer, sequence, message_id, reason, stored_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            &r.peer.as_bytes()[..],
            peer_seq(r.sequence),
            &r.message_id[..],
            r.reason,
            stored_ms,
        ])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn set_announced_keys(
        &mut self,
        peer: &NodeId,
        keys: &[u8],
        now: hotline_protocol::time::UnixMillis,
    ) -> Result<()> {
        let now = int(now, "updated_ms")?;
        let tx = self.write()?;
        tx.prepare_cached(
            "INSERT INTO peer_announced_keys (peer, keys, updated_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (peer) DO UPDATE SET keys = excluded.keys, updated_ms = excluded.updated_ms",
        )?
        .execute(params![&peer.as_bytes()[..], keys, now])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn announced_keys(&mut self) -> Result<Vec<(NodeId, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT peer, keys FROM peer_announced_keys")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (peer, keys) = row?;
            if let Some(peer) = NodeId::from_bytes(&peer) {
                out.push((peer, keys));
            }
        }
        Ok(out)
    }

    pub(super) fn store_own_receipt(
        &mut self,
        receipt: &ReceiptRecord,
    ) -> Result<OwnReceiptOutcome> {
        state_for_kind(&receipt.kind)?;
        let stored_ms = int(receipt.stored_ms, "stored_ms")?;
        let tx = self.write()?;
        {
            let known = tx
                .prepare_cached("SELECT 1 FROM inbox WHERE message_id = ?1")?
                .exists([&receipt.message_id[..]])?;
            if !known {
                return Err(StoreError::Database(format!(
                    "no received message has id {}; a receipt is made only for one",
                    hex(&receipt.message_id)
                )));
            }
            // At most one ACKNOWLEDGED per message (the schema refuses a second one too): two
            // officers acknowledging at once both get the first receipt.
            if receipt.kind == "ACKNOWLEDGED" {
                let first: Option<Vec<u8>> = tx
                    .prepare_cached(
                        "SELECT bytes FROM receipts_out WHERE message_id = ?1 \
                         AND kind = 'ACKNOWLEDGED' ORDER BY rowid LIMIT 1",
                    )?
                    .query_row([&receipt.message_id[..]], |r| r.get(0))
                    .optional()?;
                if let Some(first) = first
                    && first != receipt.bytes[..]
                {
                    return Ok(OwnReceiptOutcome::AlreadyAcknowledged(Bytes::from(first)));
                }
            }
            tx.prepare_cached(
                "INSERT INTO receipts_out (sha256, message_id, peer, kind, bytes, stored_ms, \
                 confirmed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0) ON CONFLICT (sha256) DO NOTHING",
            )?
            .execute(params![
                &receipt.sha256[..],
                &receipt.message_id[..],
                &receipt.peer.as_bytes()[..],
                receipt.kind,
                &receipt.bytes[..],
                stored_ms,
            ])?;
        }
        tx.commit()?;
        Ok(OwnReceiptOutcome::Stored)
    }

    pub(super) fn unconfirmed_receipts(&mut self, peer: &NodeId) -> Result<Vec<Bytes>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT bytes FROM receipts_out WHERE peer = ?1 AND confirmed = 0 \
             ORDER BY stored_ms, rowid",
        )?;
        let rows = stmt.query_map([&peer.as_bytes()[..]], |r| {
            r.get::<_, Vec<u8>>(0).map(Bytes::from)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn confirm_receipt(&mut self, sha256: &[u8; 32]) -> Result<()> {
        let tx = self.write()?;
        tx.prepare_cached("UPDATE receipts_out SET confirmed = 1 WHERE sha256 = ?1")?
            .execute([&sha256[..]])?;
        tx.commit()?;
        Ok(())
    }
}

/// The audit detail of an arrival that reuses the sequence of an earlier message (it names both
/// ids; the row's message id is the later one's).
fn sequence_reused_detail(sequence: u64, later: &MessageId, earlier: &MessageId) -> String {
    format!(
        "the peer sent message {} with sequence {sequence}, which its message {} already \
         carries: the peer reused a sequence number (for example after restoring a backup). \
         Both messages are kept and were delivered; ask the peer's CERT (SPEC.md §10.1)",
        hex(later),
        hex(earlier)
    )
}

/// Envelope SHA-256 and DELIVERED receipt bytes of a received message.
const RECEIVED: &str = "SELECT i.envelope_sha256, r.bytes FROM inbox AS i \
     JOIN receipts_out AS r ON r.sha256 = i.delivered_receipt WHERE i.message_id = ?1";
