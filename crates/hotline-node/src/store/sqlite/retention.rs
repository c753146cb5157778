//! [`SqliteStore`] retention (SPEC.md §13.4): the parts of messages past their retention period
//! removed in place, a bounded batch at a time, and what Show and Export say about them.
//!
//! Bodies of [`Store`](crate::store::Store) methods; each one's documentation stays on the
//! `impl Store for SqliteStore` in the parent module.

use std::collections::BTreeMap;

use hotline_protocol::envelope::MessageId;
use hotline_protocol::time::{MAX_FUTURE_SKEW, MAX_MESSAGE_AGE, UnixMillis};
use rusqlite::{Connection, params};

use super::super::{Purged, Removed, Result, RetentionPolicy};
use super::SqliteStore;
use super::convert::{int, node_id, uint};

/// How long after it was made a DELIVERED receipt of ours must stay, whatever the policy: it
/// answers a retransmission of its envelope until the envelope is too old to be accepted
/// (SPEC.md §10.4: 30 days + 5 minutes).
pub const DUPLICATE_WINDOW: u64 = MAX_MESSAGE_AGE + MAX_FUTURE_SKEW;

/// Most bytes one batch removes: with secure deletion each is overwritten, so a batch of large
/// envelopes is cut short well before it holds the store thread for long.
pub const BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// One part of a message the policy removes: which rows are due (oldest first, `?1` the cutoff,
/// `?2` how many), how one is emptied (`?1` its rowid), and how its removal is recorded in
/// `removals`. `due` selects the rowid, the peer of a received message (NULL otherwise), the
/// bytes removed (the subject, a copy of a field of the content, is not counted: nor is it by
/// the quota of §13.3), the message id and, for a receipt, its SHA-256 (else empty).
struct Part {
    due: &'static str,
    empty: &'static str,
    /// Whether the message is one this node received.
    incoming: bool,
    /// `content`, `envelope` or `receipt`.
    part: &'static str,
}

/// Content and subject of sent messages that have left the outbox for good: a sent message
/// is never purged while it is unsealed or pending (in flight).
const SENT_CONTENT: Part = Part {
    due: "SELECT rowid, NULL, length(content), message_id, x'' FROM outbox \
          WHERE length(content) > 0 AND state NOT IN ('unsealed', 'pending') \
            AND created_ms < ?1 ORDER BY created_ms LIMIT ?2",
    empty: "UPDATE outbox SET content = x'', subject = '' WHERE rowid = ?1",
    incoming: false,
    part: "content",
};

/// Envelopes of sent messages that can get no further receipt. A delivered message keeps its
/// envelope: the peer's ACKNOWLEDGED receipt may still come, and it is checked against the
/// envelope (SPEC.md §8.4 step 6).
const SENT_ENVELOPE: Part = Part {
    due: "SELECT rowid, NULL, length(envelope), message_id, x'' FROM outbox \
          WHERE length(envelope) > 0 AND state IN ('acknowledged', 'rejected', 'cancelled') \
            AND created_ms < ?1 ORDER BY created_ms LIMIT ?2",
    empty: "UPDATE outbox SET envelope = x'' WHERE rowid = ?1",
    incoming: false,
    part: "envelope",
};

/// Content and subject of received messages, counted from their arrival.
const RECEIVED_CONTENT: Part = Part {
    due: "SELECT id, peer, length(content), message_id, x'' FROM inbox \
          WHERE length(content) > 0 AND received_ms < ?1 ORDER BY received_ms LIMIT ?2",
    empty: "UPDATE inbox SET content = x'', subject = '' WHERE id = ?1",
    incoming: true,
    part: "content",
};

/// Envelopes of received messages. Duplicate detection needs only their SHA-256 (§10.4).
const RECEIVED_ENVELOPE: Part = Part {
    due: "SELECT id, peer, length(envelope), message_id, x'' FROM inbox \
          WHERE length(envelope) > 0 AND received_ms < ?1 ORDER BY received_ms LIMIT ?2",
    empty: "UPDATE inbox SET envelope = x'' WHERE id = ?1",
    incoming: true,
    part: "envelope",
};

/// The peer's receipts about our messages, counted from when each was stored.
const RECEIPTS_IN: Part = Part {
    due: "SELECT r.rowid, NULL, length(r.bytes), r.message_id, r.sha256 FROM receipts_in AS r \
          WHERE length(r.bytes) > 0 AND r.stored_ms < ?1 \
            AND EXISTS (SELECT 1 FROM outbox AS o WHERE o.message_id = r.message_id \
                        AND o.state NOT IN ('unsealed', 'pending')) \
          ORDER BY r.stored_ms LIMIT ?2",
    empty: "UPDATE receipts_in SET bytes = x'' WHERE rowid = ?1",
    incoming: false,
    part: "receipt",
};

/// Our receipts about received messages, once the peer confirmed storing them (an unconfirmed
/// one is still to be sent). The cutoff is never later than [`DUPLICATE_WINDOW`] ago.
const RECEIPTS_OUT: Part = Part {
    due: "SELECT rowid, NULL, length(bytes), message_id, sha256 FROM receipts_out \
          WHERE length(bytes) > 0 AND confirmed = 1 AND stored_ms < ?1 \
          ORDER BY stored_ms LIMIT ?2",
    empty: "UPDATE receipts_out SET bytes = x'' WHERE rowid = ?1",
    incoming: true,
    part: "receipt",
};

/// How a removal is recorded.
const RECORD: &str = "INSERT INTO removals (message_id, incoming, part, receipt_sha256, \
     removed_ms) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING";

/// What removing one part did.
#[derive(Default)]
struct Tally {
    rows: u64,
    bytes: u64,
    received: BTreeMap<Vec<u8>, u64>,
}

/// A due row: rowid, peer (received messages), bytes, message id, receipt SHA-256 (or empty).
type Due = (i64, Option<Vec<u8>>, i64, Vec<u8>, Vec<u8>);

/// Removes the due rows of `part` older than `cutoff`, until `rows` or [`BATCH_BYTES`] is used
/// up. Returns how many it removed.
fn remove(
    conn: &Connection,
    part: &Part,
    cutoff: i64,
    now: i64,
    rows: usize,
    tally: &mut Tally,
) -> Result<u64> {
    if rows == 0 || tally.bytes >= BATCH_BYTES {
        return Ok(0);
    }
    let limit = i64::try_from(rows).unwrap_or(i64::MAX);
    let due: Vec<Due> = conn
        .prepare_cached(part.due)?
        .query_map(params![cutoff, limit], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                r.get(3)?,
                r.get(4)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut empty = conn.prepare_cached(part.empty)?;
    let mut record = conn.prepare_cached(RECORD)?;
    let mut removed = 0;
    for (rowid, peer, len, message_id, receipt) in due {
        if tally.bytes >= BATCH_BYTES {
            break;
        }
        empty.execute([rowid])?;
        record.execute(params![message_id, part.incoming, part.part, receipt, now])?;
        let len = uint(len, "length")?;
        tally.bytes = tally.bytes.saturating_add(len);
        if let Some(peer) = peer {
            *tally.received.entry(peer).or_default() += len;
        }
        removed += 1;
    }
    tally.rows += removed;
    Ok(removed)
}

/// `now - ms`, or `None` (nothing due) for a part kept forever.
fn cutoff(now: UnixMillis, ms: Option<u64>) -> Result<Option<i64>> {
    ms.map(|ms| int(now.saturating_sub(ms), "cutoff"))
        .transpose()
}

impl SqliteStore {
    pub(super) fn purge(
        &mut self,
        policy: &RetentionPolicy,
        now: UnixMillis,
        max_rows: usize,
    ) -> Result<Purged> {
        let plaintext = cutoff(now, policy.plaintext_ms)?;
        let envelopes = cutoff(now, policy.envelopes_ms)?;
        let receipts = cutoff(now, policy.receipts_ms)?;
        // Never a DELIVERED receipt that may still answer a retransmission, whatever the policy.
        let duplicates = int(now.saturating_sub(DUPLICATE_WINDOW), "cutoff")?;
        let ours = receipts.map(|c| c.min(duplicates));
        let now_i = int(now, "now")?;
        let mut tally = Tally::default();
        let mut left = max_rows;
        let mut counts = [0u64; 3];
        let tx = self.write()?;
        let parts: [(&Part, Option<i64>, usize); 6] = [
            (&SENT_CONTENT, plaintext, 0),
            (&RECEIVED_CONTENT, plaintext, 0),
            (&SENT_ENVELOPE, envelopes, 1),
            (&RECEIVED_ENVELOPE, envelopes, 1),
            (&RECEIPTS_IN, receipts, 2),
            (&RECEIPTS_OUT, ours, 2),
        ];
        for (part, cut, class) in parts {
            let Some(cut) = cut else { continue };
            let n = remove(&tx, part, cut, now_i, left, &mut tally)?;
            counts[class] += n;
            left = left.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
        }
        tx.commit()?;
        if tally.rows > 0 && !self.in_group {
            // The overwritten pages go into the database file now, and the write-ahead log,
            // which may still hold the removed bytes as they were first written, is emptied.
            // A reader in another process can make this wait (up to the busy timeout) or
            // leave it to the next batch: the result is not an error.
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        let received = tally
            .received
            .into_iter()
            .map(|(peer, bytes)| Ok((node_id(&peer)?, bytes)))
            .collect::<Result<_>>()?;
        Ok(Purged {
            contents: counts[0],
            envelopes: counts[1],
            receipts: counts[2],
            bytes: tally.bytes,
            received,
            more: left == 0 || tally.bytes >= BATCH_BYTES,
        })
    }

    /// What the policy removed from one message: `incoming` tells which one of the two that
    /// may share an id (a database written before ids were unique per node).
    pub(super) fn removed(&mut self, incoming: bool, id: &MessageId) -> Result<Removed> {
        let mut out = Removed::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT part, count(*), max(removed_ms) FROM removals \
             WHERE message_id = ?1 AND incoming = ?2 GROUP BY part",
        )?;
        let rows = stmt.query_map(params![&id[..], incoming], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (part, count, last) = row?;
            let last = Some(uint(last, "removed_ms")?);
            match part.as_str() {
                "content" => out.content_ms = last,
                "envelope" => out.envelope_ms = last,
                _ => {
                    out.receipts = u32::try_from(count).unwrap_or(u32::MAX);
                    out.receipts_ms = last;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every purge query reads a partial index of what is still held, so that a purge costs
    /// what it removes, not what was removed before.
    #[test]
    fn each_due_query_reads_its_partial_index() {
        let store = SqliteStore::open_in_memory().expect("store");
        for (part, index) in [
            (&SENT_CONTENT, "outbox_content_held"),
            (&SENT_ENVELOPE, "outbox_envelope_held"),
            (&RECEIVED_CONTENT, "inbox_content_held"),
            (&RECEIVED_ENVELOPE, "inbox_envelope_held"),
            (&RECEIPTS_IN, "receipts_in_held"),
            (&RECEIPTS_OUT, "receipts_out_held"),
        ] {
            let plan: Vec<String> = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", part.due))
                .expect("plan")
                .query_map(params![0, 1], |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("plan rows");
            assert!(
                plan.iter().any(|l| l.contains(index)),
                "{index} not used: {plan:?}"
            );
        }
    }
}
