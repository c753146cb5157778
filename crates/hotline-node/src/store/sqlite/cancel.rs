//! [`SqliteStore`] runs and cancellation: which run of `hotlined` stored a message, and an
//! officer withdrawing a message that never left (SPEC.md §15.5.10).
//!
//! Bodies of [`Store`](crate::store::Store) methods; each one's documentation stays on the
//! `impl Store for SqliteStore` in the parent module.

use hotline_protocol::envelope::MessageId;
use hotline_protocol::time::UnixMillis;
use rusqlite::{OptionalExtension, params};

use super::super::{CancelOutcome, Result};
use super::SqliteStore;
use super::convert::{int, node_id, state_back, uint};

/// The outbox fields cancellation looks at.
type Row = (
    Vec<u8>,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

impl SqliteStore {
    pub(super) fn begin_run(&mut self, now: UnixMillis) -> Result<u64> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO boots (started_ms) VALUES (?1)",
            [int(now, "started_ms")?],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        self.run = Some(id);
        uint(id, "run")
    }

    pub(super) fn cancel(
        &mut self,
        id: &MessageId,
        commit: Option<(&str, UnixMillis)>,
    ) -> Result<CancelOutcome> {
        let run = self.run;
        let tx = self.write()?;
        let row: Option<Row> = tx
            .prepare_cached(
                "SELECT peer, sequence, state, boot, cancelled_ms, cancelled_by FROM outbox \
                 WHERE message_id = ?1",
            )?
            .query_row([&id[..]], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()?;
        let Some((peer, sequence, state, boot, at, by)) = row else {
            let received = tx
                .prepare_cached("SELECT 1 FROM inbox WHERE message_id = ?1")?
                .exists([&id[..]])?;
            return Ok(if received {
                CancelOutcome::Received
            } else {
                CancelOutcome::NotFound
            });
        };
        let peer = node_id(&peer)?;
        let sequence = uint(sequence, "sequence")?;
        if state == "cancelled" {
            return Ok(CancelOutcome::Cancelled {
                peer,
                sequence,
                by: by.unwrap_or_default(),
                at_ms: uint(at.unwrap_or(0), "cancelled_ms")?,
            });
        }
        if state != "unsealed" && state != "pending" {
            return Ok(CancelOutcome::Final(state_back(&state)?));
        }
        if run.is_none() || boot != run {
            return Ok(CancelOutcome::EarlierRun);
        }
        let Some((officer, now)) = commit else {
            return Ok(CancelOutcome::Cancellable { peer, sequence });
        };
        tx.prepare_cached(
            "UPDATE outbox SET state = 'cancelled', cancelled_ms = ?2, cancelled_by = ?3 \
             WHERE message_id = ?1",
        )?
        .execute(params![&id[..], int(now, "cancelled_ms")?, officer])?;
        tx.prepare_cached(
            "INSERT INTO audit (time_ms, kind, peer, message_id, detail) \
             VALUES (?1, 'cancelled', ?2, ?3, ?4)",
        )?
        .execute(params![
            int(now, "time_ms")?,
            &peer.as_bytes()[..],
            &id[..],
            format!("sequence {sequence} withdrawn before it was sent, by {officer}"),
        ])?;
        tx.commit()?;
        Ok(CancelOutcome::Cancelled {
            peer,
            sequence,
            by: officer.to_owned(),
            at_ms: now,
        })
    }
}
