//! [`SqliteStore`] outgoing messages: submission, sealing, the pending queue, and the
//! receipts the peer sends back for them.
//!
//! Bodies of [`Store`](crate::store::Store) methods; each one's documentation stays on the
//! `impl Store for SqliteStore` in the parent module.

use std::collections::HashMap;

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use rusqlite::{OptionalExtension, params};

use super::super::{
    OutState, PendingSummary, ReceiptRecord, Result, StoreError, StoredSubmission, Submission,
    SubmitOutcome,
};
use super::SqliteStore;
use super::convert::{
    hex, int, is_unique_violation, message_id, node_id, precedence, precedence_back, state_back,
    state_for_kind, uint,
};

/// The fields of a sent message that say whether a submission repeats it: peer, precedence,
/// TLP, content, and its sequence.
type SentRow = (Vec<u8>, i64, String, Vec<u8>, i64);

impl SqliteStore {
    pub(super) fn submit(&mut self, batch: &[Submission]) -> Result<Vec<SubmitOutcome>> {
        let run = self.run;
        let tx = self.write()?;
        let mut next: HashMap<NodeId, u64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut last = tx.prepare_cached(LAST_SEQUENCE)?;
            let mut sent = tx.prepare_cached(
                "SELECT peer, precedence, tlp, content, sequence FROM outbox WHERE message_id = ?1",
            )?;
            let mut received = tx.prepare_cached("SELECT 1 FROM inbox WHERE message_id = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO outbox (message_id, peer, sequence, precedence, tlp, created_ms, \
                 content, subject, officer, boot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for s in batch {
                // One id space per node: an id already sent or received is never used again.
                // The same message submitted again (a client retrying) gets its first answer.
                let before: Option<SentRow> = sent
                    .query_row([&s.message_id[..]], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()?;
                if let Some((peer, prec, tlp, content, seq)) = before {
                    let same = peer == s.peer.as_bytes()[..]
                        && prec == precedence(s.precedence)
                        && tlp == s.tlp
                        && content == s.content[..];
                    outcomes.push(if same {
                        SubmitOutcome::Repeated(uint(seq, "sequence")?)
                    } else {
                        SubmitOutcome::IdInUse
                    });
                    continue;
                }
                if received.exists([&s.message_id[..]])? {
                    outcomes.push(SubmitOutcome::IdInUse);
                    continue;
                }
                let prev = match next.get(&s.peer) {
                    Some(&n) => n,
                    None => uint(
                        last.query_row([&s.peer.as_bytes()[..]], |r| r.get(0))?,
                        "sequence",
                    )?,
                };
                let seq = prev.saturating_add(1);
                insert
                    .execute(params![
                        &s.message_id[..],
                        &s.peer.as_bytes()[..],
                        int(seq, "sequence")?,
                        precedence(s.precedence),
                        s.tlp,
                        int(s.created_ms, "created_ms")?,
                        &s.content[..],
                        s.subject,
                        s.officer,
                        run,
                    ])
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::Conflict(format!(
                                "message id {} already exists; nothing of this batch was \
                                 stored (submit it again under a new id)",
                                hex(&s.message_id)
                            ))
                        } else {
                            e.into()
                        }
                    })?;
                next.insert(s.peer, seq);
                outcomes.push(SubmitOutcome::Stored(seq));
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    pub(super) fn attach_envelopes(
        &mut self,
        batch: &[(MessageId, Bytes, [u8; 32])],
    ) -> Result<()> {
        let tx = self.write()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE outbox SET envelope = ?2, envelope_sha256 = ?3, \
                 state = CASE state WHEN 'unsealed' THEN 'pending' ELSE state END \
                 WHERE message_id = ?1 AND envelope IS NULL",
            )?;
            let mut current =
                tx.prepare_cached("SELECT envelope_sha256 FROM outbox WHERE message_id = ?1")?;
            for (id, envelope, sha) in batch {
                if update.execute(params![&id[..], &envelope[..], &sha[..]])? == 1 {
                    continue;
                }
                let stored: Option<Option<Vec<u8>>> =
                    current.query_row([&id[..]], |r| r.get(0)).optional()?;
                match stored {
                    None => {
                        return Err(StoreError::Database(format!(
                            "no submitted message has id {}",
                            hex(id)
                        )));
                    }
                    Some(Some(s)) if s == sha[..] => {} // the same envelope, attached before
                    Some(_) => {
                        return Err(StoreError::Conflict(format!(
                            "message {} is already sealed with a different envelope; \
                             a message is sealed once",
                            hex(id)
                        )));
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub(super) fn unsealed(&mut self) -> Result<Vec<StoredSubmission>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT message_id, peer, sequence, precedence, tlp, created_ms, content, subject, \
             officer FROM outbox WHERE state = 'unsealed' ORDER BY sequence, peer",
        )?;
        let rows = stmt.query_and_then([], |r| -> Result<StoredSubmission> {
            Ok(StoredSubmission {
                submission: Submission {
                    message_id: message_id(&r.get::<_, Vec<u8>>(0)?)?,
                    peer: node_id(&r.get::<_, Vec<u8>>(1)?)?,
                    precedence: precedence_back(r.get(3)?)?,
                    tlp: r.get(4)?,
                    created_ms: uint(r.get(5)?, "created_ms")?,
                    content: Bytes::from(r.get::<_, Vec<u8>>(6)?),
                    subject: r.get(7)?,
                    officer: r.get(8)?,
                },
                sequence: uint(r.get(2)?, "sequence")?,
            })
        })?;
        rows.collect()
    }

    pub(super) fn pending_envelopes(&mut self, peer: &NodeId) -> Result<Vec<Bytes>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT envelope FROM outbox WHERE peer = ?1 AND state = 'pending' \
             ORDER BY precedence, sequence",
        )?;
        let rows = stmt.query_map([&peer.as_bytes()[..]], |r| {
            r.get::<_, Vec<u8>>(0).map(Bytes::from)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn pending_window(
        &mut self,
        peer: &NodeId,
        skip: &std::collections::HashSet<MessageId>,
        want: usize,
    ) -> Result<Vec<Bytes>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT message_id, envelope FROM outbox WHERE peer = ?1 AND state = 'pending' \
             ORDER BY precedence, sequence",
        )?;
        let mut rows = stmt.query([&peer.as_bytes()[..]])?;
        let mut out = Vec::with_capacity(want.min(4096));
        while out.len() < want {
            let Some(row) = rows.next()? else { break };
            let id: Vec<u8> = row.get(0)?;
            if <[u8; 16]>::try_from(id.as_slice()).is_ok_and(|id| skip.contains(&id)) {
                continue;
            }
            out.push(Bytes::from(row.get::<_, Vec<u8>>(1)?));
        }
        Ok(out)
    }

    pub(super) fn pending_summary(
        &mut self,
        peer: &NodeId,
        cutoffs: [hotline_protocol::time::UnixMillis; 4],
    ) -> Result<PendingSummary> {
        let c = |i: usize| int(cutoffs[i], "cutoff");
        let mut total = PendingSummary::default();
        // Pending rows through the covering index `outbox_pending_age`, unsealed ones (only
        // after a crash, few) through `outbox_unsealed`.
        for state in ["pending", "unsealed"] {
            let (count, oldest, overdue): (i64, Option<i64>, Option<i64>) = self
                .conn
                .prepare_cached(
                    "SELECT count(*), min(created_ms), sum(created_ms < CASE precedence \
                     WHEN 0 THEN ?2 WHEN 1 THEN ?3 WHEN 2 THEN ?4 ELSE ?5 END) \
                     FROM outbox WHERE peer = ?1 AND state = ?6",
                )?
                .query_row(
                    params![&peer.as_bytes()[..], c(0)?, c(1)?, c(2)?, c(3)?, state],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
            let oldest = uint(oldest.unwrap_or(0), "created_ms")?;
            total.count += uint(count, "count")?;
            if state == "unsealed" {
                total.unsealed = uint(count, "count")?;
            }
            total.overdue += uint(overdue.unwrap_or(0), "count")?;
            if oldest != 0 && (total.oldest_ms == 0 || oldest < total.oldest_ms) {
                total.oldest_ms = oldest;
            }
        }
        Ok(total)
    }

    pub(super) fn record_receipts(&mut self, batch: &[ReceiptRecord]) -> Result<()> {
        let tx = self.write()?;
        {
            let mut message = tx.prepare_cached("SELECT peer FROM outbox WHERE message_id = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO receipts_in (sha256, message_id, peer, kind, bytes, stored_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (sha256) DO NOTHING",
            )?;
            let mut advance = tx.prepare_cached(
                "UPDATE outbox SET state = ?2 WHERE message_id = ?1 \
                 AND (state IN ('unsealed', 'pending') \
                      OR (state = 'delivered' AND ?2 = 'acknowledged') \
                      OR (state = 'rejected' AND ?2 IN ('delivered', 'acknowledged')))",
            )?;
            for r in batch {
                let new_state = state_for_kind(&r.kind)?;
                let recipient: Option<Vec<u8>> = message
                    .query_row([&r.message_id[..]], |row| row.get(0))
                    .optional()?;
                if recipient.as_deref() != Some(&r.peer.as_bytes()[..]) {
                    continue;
                }
                let stored = insert.execute(params![
                    &r.sha256[..],
                    &r.message_id[..],
                    &r.peer.as_bytes()[..],
                    r.kind,
                    &r.bytes[..],
                    int(r.stored_ms, "stored_ms")?,
                ])?;
                if stored == 1 {
                    advance.execute(params![&r.message_id[..], new_state])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub(super) fn out_state(&mut self, message_id: &MessageId) -> Result<Option<OutState>> {
        let state: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM outbox WHERE message_id = ?1")?
            .query_row([&message_id[..]], |r| r.get(0))
            .optional()?;
        state.as_deref().map(state_back).transpose()
    }

    pub(super) fn sent_envelope(&mut self, message_id: &MessageId) -> Result<Option<Bytes>> {
        let envelope: Option<Option<Vec<u8>>> = self
            .conn
            .prepare_cached("SELECT envelope FROM outbox WHERE message_id = ?1")?
            .query_row([&message_id[..]], |r| r.get(0))
            .optional()?;
        Ok(envelope.flatten().map(Bytes::from))
    }

    pub(super) fn last_sequence(&mut self, peer: &NodeId) -> Result<u64> {
        let last: i64 = self
            .conn
            .prepare_cached(LAST_SEQUENCE)?
            .query_row([&peer.as_bytes()[..]], |r| r.get(0))?;
        uint(last, "sequence")
    }
}

/// The highest sequence assigned for a peer, 0 if none (served by UNIQUE (peer, sequence)).
const LAST_SEQUENCE: &str = "SELECT coalesce(max(sequence), 0) FROM outbox WHERE peer = ?1";
