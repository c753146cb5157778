//! What `hotlined check` reports about a database, worded for an operator: engine integrity,
//! foreign keys, version and identity of the file, holes in outgoing sequences, and receipts
//! from the peer that the schema cannot refuse (several of a kind written before version 9,
//! contradictory ones), and parts of messages emptied without a record of their removal by the
//! retention policy (or the reverse).

use rusqlite::Connection;

use super::super::Result;
use super::schema::{APPLICATION_ID, SCHEMA_VERSION, application_id, user_version};

/// Checks that need no knowledge of rows: engine integrity, foreign keys, version, identity
/// of the file, and the one invariant the schema cannot state (no holes in outgoing
/// sequences). Returns the problems, worded for an operator.
pub(crate) fn check(conn: &Connection) -> Result<Vec<String>> {
    let mut problems = Vec::new();

    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    for row in rows {
        let row = row?;
        if row != "ok" {
            problems.push(format!("integrity check: {row}"));
        }
    }

    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (table, rowid, parent) = row?;
        let rowid = rowid.map_or_else(|| "?".to_owned(), |r| r.to_string());
        problems.push(format!(
            "foreign key check: row {rowid} of table {table} refers to a missing row of {parent}"
        ));
    }

    let version = user_version(conn)?;
    if version != SCHEMA_VERSION {
        problems.push(format!(
            "schema version is {version}, this hotlined expects {SCHEMA_VERSION}"
        ));
    }
    let app = application_id(conn)?;
    if app != APPLICATION_ID {
        problems.push(format!(
            "application_id is {app:#x}, expected {APPLICATION_ID:#x} (not a hotlined database?)"
        ));
    }

    if version == SCHEMA_VERSION {
        problems.extend(sequence_holes(conn)?);
        // Rows from before version 5's rules (kept: evidence is never deleted).
        let mut stmt = conn.prepare(
            "SELECT hex(message_id) FROM inbox WHERE message_id IN (SELECT message_id FROM outbox)",
        )?;
        for id in stmt.query_map([], |r| r.get::<_, String>(0))? {
            problems.push(format!(
                "received message {} reuses the id of a message this node sent (stored before \
                 hotlined refused that); `hotline show` shows the sent one",
                id?.to_lowercase()
            ));
        }
        let mut stmt = conn.prepare(
            "SELECT hex(message_id), count(*) FROM receipts_out WHERE kind = 'ACKNOWLEDGED' \
             GROUP BY message_id HAVING count(*) > 1",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (id, n) = row?;
            problems.push(format!(
                "received message {} has {n} ACKNOWLEDGED receipts (made before hotlined \
                 allowed only one); the peer holds them all",
                id.to_lowercase()
            ));
        }
        problems.extend(receipt_problems(conn)?);
        problems.extend(removal_problems(conn)?);
    }
    Ok(problems)
}

/// Parts of messages emptied without a record of their removal by the retention policy
/// (version 12), and records of removals of parts still held: either way the database was
/// changed outside hotlined, and Show and Export would say something false. What the policy
/// removed, with its record, is no problem.
fn removal_problems(conn: &Connection) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut unrecorded = conn.prepare(
        "SELECT 0, 'its content is', hex(message_id) FROM outbox o WHERE length(content) = 0 \
           AND NOT EXISTS (SELECT 1 FROM removals r WHERE r.message_id = o.message_id \
                           AND r.incoming = 0 AND r.part = 'content') \
         UNION ALL \
         SELECT 0, 'its envelope is', hex(message_id) FROM outbox o WHERE length(envelope) = 0 \
           AND NOT EXISTS (SELECT 1 FROM removals r WHERE r.message_id = o.message_id \
                           AND r.incoming = 0 AND r.part = 'envelope') \
         UNION ALL \
         SELECT 1, 'its content is', hex(message_id) FROM inbox i WHERE length(content) = 0 \
           AND NOT EXISTS (SELECT 1 FROM removals r WHERE r.message_id = i.message_id \
                           AND r.incoming = 1 AND r.part = 'content') \
         UNION ALL \
         SELECT 1, 'its envelope is', hex(message_id) FROM inbox i WHERE length(envelope) = 0 \
           AND NOT EXISTS (SELECT 1 FROM removals r WHERE r.message_id = i.message_id \
                           AND r.incoming = 1 AND r.part = 'envelope') \
         UNION ALL \
         SELECT 0, 'a receipt from the peer is', hex(message_id) FROM receipts_in x \
          WHERE length(bytes) = 0 AND NOT EXISTS (SELECT 1 FROM removals r \
                WHERE r.receipt_sha256 = x.sha256 AND r.incoming = 0 AND r.part = 'receipt') \
         UNION ALL \
         SELECT 1, 'a receipt of this node is', hex(message_id) FROM receipts_out x \
          WHERE length(bytes) = 0 AND NOT EXISTS (SELECT 1 FROM removals r \
                WHERE r.receipt_sha256 = x.sha256 AND r.incoming = 1 AND r.part = 'receipt')",
    )?;
    let direction = |incoming: bool| if incoming { "received" } else { "sent" };
    let rows = unrecorded.query_map([], |r| {
        Ok((
            r.get::<_, bool>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (incoming, what, id) = row?;
        problems.push(format!(
            "{} message {}: {what} empty, but no removal by the retention policy is recorded \
             (changed outside hotlined?); restore the database from a backup",
            direction(incoming),
            id.to_lowercase()
        ));
    }
    let mut held = conn.prepare(
        "SELECT r.incoming, r.part, hex(r.message_id) FROM removals r WHERE CASE \
           WHEN r.part = 'receipt' AND r.incoming = 0 THEN EXISTS (SELECT 1 FROM receipts_in x \
                WHERE x.sha256 = r.receipt_sha256 AND length(x.bytes) > 0) \
           WHEN r.part = 'receipt' THEN EXISTS (SELECT 1 FROM receipts_out x \
                WHERE x.sha256 = r.receipt_sha256 AND length(x.bytes) > 0) \
           WHEN r.incoming = 0 THEN EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = \
                r.message_id AND length(iif(r.part = 'content', o.content, o.envelope)) > 0) \
           ELSE EXISTS (SELECT 1 FROM inbox i WHERE i.message_id = r.message_id \
                AND length(iif(r.part = 'content', i.content, i.envelope)) > 0) END",
    )?;
    let rows = held.query_map([], |r| {
        Ok((
            r.get::<_, bool>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (incoming, part, id) = row?;
        problems.push(format!(
            "{} message {}: its {part} is recorded as removed by the retention policy, but is \
             held (a part restored from a backup?); Show and Export say it was removed",
            direction(incoming),
            id.to_lowercase()
        ));
    }
    Ok(problems)
}

/// Holes in outgoing sequences: each peer's run 1, 2, 3, … must be whole. After a restore from
/// an older copy the sequences resume above a recorded floor (version 10), leaving out those
/// the lost copy assigned: such holes are expected, not reported (the `sequence_rollback` audit
/// row tells of the restore), and each run between floors is checked alone.
fn sequence_holes(conn: &Connection) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut floors: std::collections::BTreeMap<Vec<u8>, Vec<i64>> = Default::default();
    let mut stmt = conn.prepare("SELECT peer, floor FROM sequence_floors ORDER BY peer, floor")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))? {
        let (peer, floor) = row?;
        floors.entry(peer).or_default().push(floor);
    }
    let mut stmt = conn.prepare(
        "SELECT peer, count(*), max(sequence) FROM outbox GROUP BY peer \
         HAVING count(*) <> max(sequence)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (peer, count, max) = row?;
        if !floors.contains_key(&peer) {
            problems.push(format!(
                "outgoing sequences to peer {} have holes: {count} messages, highest sequence {max}",
                super::convert::hex(&peer)
            ));
        }
    }
    let mut run = conn.prepare(
        "SELECT count(*), coalesce(max(sequence), 0) FROM outbox \
         WHERE peer = ?1 AND sequence > ?2 AND sequence <= ?3",
    )?;
    for (peer, floors) in &floors {
        let bounds = std::iter::once(0).chain(floors.iter().copied());
        let ends = floors.iter().copied().chain(std::iter::once(i64::MAX));
        for (after, through) in bounds.zip(ends) {
            let (count, max): (i64, i64) = run
                .query_row(rusqlite::params![peer, after, through], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            if count > 0 && count != max - after {
                let resumed = match after {
                    0 => String::new(),
                    _ => format!(" (resumed above {after} after a restore from an older copy)"),
                };
                problems.push(format!(
                    "outgoing sequences to peer {} have holes: {count} messages from sequence \
                     {} to {max}{resumed}",
                    super::convert::hex(peer),
                    after + 1
                ));
            }
        }
    }
    Ok(problems)
}

/// What `hotlined check` says about the receipts the peer sent for our messages: several of
/// one kind (stored before version 9; kept, evidence is never deleted), and contradictory
/// ones (SPEC.md §8.6: a REJECTED beside a delivery receipt; the peer's fault, kept as
/// evidence, for the operators to take up with the peer's CERT).
fn receipt_problems(conn: &Connection) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT hex(message_id), kind, count(*) FROM receipts_in \
         GROUP BY message_id, kind HAVING count(*) > 1",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (id, kind, n) = row?;
        problems.push(format!(
            "sent message {} holds {n} {kind} receipts from the peer (stored before hotlined \
             kept one of each kind); all are kept as evidence",
            id.to_lowercase()
        ));
    }
    let mut stmt = conn.prepare(
        "SELECT hex(o.message_id), o.state FROM outbox o \
         WHERE EXISTS (SELECT 1 FROM receipts_in r WHERE r.message_id = o.message_id \
                       AND r.kind = 'REJECTED') \
           AND EXISTS (SELECT 1 FROM receipts_in r WHERE r.message_id = o.message_id \
                       AND r.kind IN ('DELIVERED', 'ACKNOWLEDGED'))",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (id, state) = row?;
        problems.push(format!(
            "sent message {} holds contradictory receipts from the peer: REJECTED and a \
             delivery receipt (SPEC.md §8.6); its status stays {state}; `hotline show` lists \
             both; raise it with the peer's CERT",
            id.to_lowercase()
        ));
    }
    Ok(problems)
}
