//! [`SqliteStore`] outgoing messages: submission, sealing, the pending queue, and the
//! receipts the peer sends back for them.
//!
//! Bodies of [`Store`](crate::store::Store) methods; each one's documentation stays on the
//! `impl Store for SqliteStore` in the parent module.

use std::collections::HashMap;

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::time::UnixMillis;
use rusqlite::{OptionalExtension, params};

use super::super::high_water::{HWM_FILE, MAX_SEQUENCE_FLOOR};
use super::super::{
    FloorSource, OutState, PendingSummary, ReceiptOutcome, ReceiptRecord, Result, StoreError,
    StoredSubmission, Submission, SubmitOutcome,
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
            let mut last = tx.prepare_cached(ASSIGN_ABOVE)?;
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
        self.note_assigned(next);
        Ok(outcomes)
    }

    pub(super) fn raise_sequence_floor(
        &mut self,
        peer: &NodeId,
        floor: u64,
        source: FloorSource,
        now: UnixMillis,
    ) -> Result<Option<u64>> {
        if floor > MAX_SEQUENCE_FLOOR {
            return Err(StoreError::Conflict(format!(
                "sequence floor {floor} for peer {peer} is beyond any sequence this node could \
                 have assigned ({MAX_SEQUENCE_FLOOR}); not recorded"
            )));
        }
        let key = &peer.as_bytes()[..];
        let tx = self.write()?;
        let (stored, before): (i64, i64) = tx.query_row(
            "SELECT coalesce((SELECT max(sequence) FROM outbox WHERE peer = ?1), 0), \
             coalesce((SELECT max(floor) FROM sequence_floors WHERE peer = ?1), 0)",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let highest = uint(stored.max(before), "sequence")?;
        if floor <= highest {
            return Ok(None);
        }
        let (why, after) = match source {
            FloorSource::HighWaterMark => (
                format!(
                    "the high-water mark ({HWM_FILE}) says sequence {floor} was assigned to \
                     this peer"
                ),
                "",
            ),
            FloorSource::PeerReceivedThrough => (
                format!(
                    "the peer has received every sequence up to {floor} from this node (its \
                     received_through)"
                ),
                " Messages sealed since the restore with a sequence at or below the highest \
                 stored may reuse sequences the peer holds: they are delivered all the same \
                 and the peer reports the reuse.",
            ),
        };
        let detail = format!(
            "{why}, but this database holds sequences only up to {highest}: it was restored \
             from an older copy. New messages get sequences from {} on (SPEC.md §10.1).{after}",
            floor + 1,
        );
        tx.execute(
            "INSERT INTO sequence_floors (peer, floor, set_ms, source) VALUES (?1, ?2, ?3, ?4)",
            params![
                key,
                int(floor, "floor")?,
                int(now, "set_ms")?,
                source.as_str()
            ],
        )?;
        tx.execute(
            "INSERT INTO audit (time_ms, kind, peer, message_id, detail) \
             VALUES (?1, 'sequence_rollback', ?2, NULL, ?3)",
            params![int(now, "time_ms")?, key, detail],
        )?;
        tx.commit()?;
        Ok(Some(highest))
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

    pub(super) fn record_receipts(
        &mut self,
        batch: &[ReceiptRecord],
    ) -> Result<Vec<ReceiptOutcome>> {
        let tx = self.write()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut message =
                tx.prepare_cached("SELECT peer, state FROM outbox WHERE message_id = ?1")?;
            let mut stored = tx.prepare_cached("SELECT 1 FROM receipts_in WHERE sha256 = ?1")?;
            // The kinds held (served by `receipts_in_message_kind`): one row per kind.
            let mut held =
                tx.prepare_cached("SELECT DISTINCT kind FROM receipts_in WHERE message_id = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO receipts_in (sha256, message_id, peer, kind, bytes, stored_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (sha256) DO NOTHING",
            )?;
            let mut set_state =
                tx.prepare_cached("UPDATE outbox SET state = ?2 WHERE message_id = ?1")?;
            for r in batch {
                let new_state = state_for_kind(&r.kind)?;
                let row: Option<(Vec<u8>, String)> = message
                    .query_row([&r.message_id[..]], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                let Some((_, state)) = row.filter(|(peer, _)| peer[..] == r.peer.as_bytes()[..])
                else {
                    outcomes.push(ReceiptOutcome::Unknown);
                    continue;
                };
                if stored.exists([&r.sha256[..]])? {
                    outcomes.push(ReceiptOutcome::Repeated);
                    continue;
                }
                let kinds = held
                    .query_map([&r.message_id[..]], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                if kinds.contains(&r.kind) {
                    outcomes.push(ReceiptOutcome::Discarded);
                    continue;
                }
                insert.execute(params![
                    &r.sha256[..],
                    &r.message_id[..],
                    &r.peer.as_bytes()[..],
                    r.kind,
                    &r.bytes[..],
                    int(r.stored_ms, "stored_ms")?,
                ])?;
                let state = state_back(&state)?;
                let contradicts = match decided(state, &kinds) {
                    Some(Decided::Rejection) => r.kind != "REJECTED",
                    Some(Decided::Delivery) => r.kind == "REJECTED",
                    None => false,
                };
                if contradicts {
                    outcomes.push(ReceiptOutcome::Contradictory(state));
                    continue;
                }
                let next = advance(state, new_state)?;
                if next != state {
                    set_state.execute(params![&r.message_id[..], new_state])?;
                }
                outcomes.push(ReceiptOutcome::Stored(next));
            }
        }
        tx.commit()?;
        Ok(outcomes)
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
            .prepare_cached(
                "SELECT envelope FROM outbox WHERE message_id = ?1 \
                 AND length(envelope) > 0",
            )?
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

/// What the next sequence for a peer is assigned above: the highest stored, or the peer's
/// floor after a restore from an older copy if that is higher (both served by their primary
/// keys).
const ASSIGN_ABOVE: &str = "SELECT max(\
     coalesce((SELECT max(sequence) FROM outbox WHERE peer = ?1), 0), \
     coalesce((SELECT max(floor) FROM sequence_floors WHERE peer = ?1), 0))";

/// What the first final receipt of a message decided (SPEC.md §8.6).
enum Decided {
    /// DELIVERED or ACKNOWLEDGED came first.
    Delivery,
    /// REJECTED came first.
    Rejection,
}

/// What was decided for a message in `state` holding receipts of `kinds`: its state says so
/// once a receipt decided it; otherwise (a cancelled message, or rows from before version 9)
/// the kinds held do.
fn decided(state: OutState, kinds: &[String]) -> Option<Decided> {
    match state {
        OutState::Rejected => Some(Decided::Rejection),
        OutState::Delivered | OutState::Acknowledged => Some(Decided::Delivery),
        _ if kinds.iter().any(|k| k == "REJECTED") => Some(Decided::Rejection),
        _ if !kinds.is_empty() => Some(Decided::Delivery),
        _ => None,
    }
}

/// The state a message in `state` moves to when a receipt leading to `to` (a state name of
/// [`state_for_kind`]) is stored and contradicts nothing held (SPEC.md §8.6): the first final
/// receipt decides; afterwards only ACKNOWLEDGED supersedes DELIVERED. A cancelled message
/// (never sent) keeps its state.
fn advance(state: OutState, to: &str) -> Result<OutState> {
    Ok(match state {
        OutState::Unsealed | OutState::Pending => state_back(to)?,
        OutState::Delivered if to == "acknowledged" => OutState::Acknowledged,
        other => other,
    })
}
