//! The exactly-once check of an exchange between two nodes, read from both databases after
//! the nodes stopped.
//!
//! For one direction (sender → receiver) it requires: every message the sender stored is in
//! the receiver's inbox exactly once, under the sequence number it was sealed with, and the
//! received sequence numbers are one run `1..=n`; every id announced to the test is among them;
//! the receiver stored exactly the envelope bytes the sender sealed; and the sender holds
//! exactly one DELIVERED receipt for each, which verifies under the receiver's identity,
//! answers that envelope, and is byte for byte the receipt the receiver made (SPEC.md §8.4,
//! §8.5, §10.4). `crates/hotline-node/tests/crash.rs` runs the same checks (that crate cannot
//! use this one: it is a dependency of this crate).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use hotline_node::store::sqlite::SqliteStore;
use hotline_node::store::{OutState, Store};
use hotline_protocol::NodeId;
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::receipt::{Receipt, ReceiptKind};

/// What the check of one direction counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages in the receiver's inbox from the sender.
    pub messages: usize,
    /// Of those, how many the test was not told about.
    pub unannounced: usize,
}

/// One side of the exchange: its database and identity.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    /// What the messages call it (`A`, `B`).
    pub name: &'a str,
    /// Its database file.
    pub db: &'a Path,
    /// Its node id.
    pub id: NodeId,
}

/// Checks what `from` sent to `to`; adds what is wrong to `problems`.
///
/// `announced` holds every id whose submission the sender confirmed. Messages stored without
/// an announcement (a node killed between commit and answer) are counted, not refused: the
/// caller decides how many it allows.
pub fn direction(
    from: Side<'_>,
    to: Side<'_>,
    announced: &[MessageId],
    problems: &mut Vec<String>,
) -> Counts {
    let dir = format!("{}→{}", from.name, to.name);
    let mut sender = match SqliteStore::open(from.db) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("{dir}: sender database: {e}"));
            return Counts::default();
        }
    };
    let mut receiver = match SqliteStore::open(to.db) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("{dir}: receiver database: {e}"));
            return Counts::default();
        }
    };
    let mut fail = |what: String| problems.push(format!("{dir}: {what}"));
    let stored = sender.last_sequence(&to.id).unwrap_or_else(|e| {
        fail(format!("last_sequence: {e}"));
        0
    });
    let inbox: Vec<_> = match receiver.inbox(usize::MAX) {
        Ok(rows) => rows.into_iter().filter(|r| r.peer == from.id).collect(),
        Err(e) => {
            fail(format!("inbox: {e}"));
            Vec::new()
        }
    };
    let mut seq_of: HashMap<MessageId, u64> = HashMap::new();
    for row in &inbox {
        if seq_of.insert(row.message_id, row.sequence).is_some() {
            fail(format!("{} is in the inbox twice", hex(&row.message_id)));
        }
    }
    if inbox.len() as u64 != stored {
        fail(format!(
            "the sender stored {stored} messages, the receiver's inbox holds {}",
            inbox.len()
        ));
    }
    let want: Vec<(u64, u64)> = if stored == 0 {
        vec![]
    } else {
        vec![(1, stored)]
    };
    match receiver.received_sequences(&from.id) {
        Ok(got) if got == want => {}
        Ok(got) => fail(format!("received sequences {got:?}, want {want:?}")),
        Err(e) => fail(format!("received_sequences: {e}")),
    }
    let announced_set: HashSet<MessageId> = announced.iter().copied().collect();
    for id in announced {
        if !seq_of.contains_key(id) {
            let state = sender.out_state(id);
            fail(format!(
                "announced {} is not in the inbox (sender state {state:?})",
                hex(id)
            ));
        }
    }

    let mut unannounced = 0;
    for row in &inbox {
        let id = row.message_id;
        let h = hex(&id);
        if !announced_set.contains(&id) {
            unannounced += 1;
        }
        match sender.out_state(&id) {
            Ok(Some(OutState::Delivered | OutState::Acknowledged)) => {}
            other => {
                fail(format!("{h} in the inbox, sender state {other:?}"));
                continue;
            }
        }
        let held = match sender.message(&id) {
            Ok(Some(m)) if !m.envelope.is_empty() => m,
            other => {
                fail(format!(
                    "{h} has no sealed envelope at the sender ({:?})",
                    other.map(|m| m.map(|m| m.row.state))
                ));
                continue;
            }
        };
        let env = match Envelope::parse(held.envelope.clone()) {
            Ok(e) => e,
            Err(e) => {
                fail(format!("{h}: the sender's envelope does not parse: {e}"));
                continue;
            }
        };
        if env.header().sequence != row.sequence {
            fail(format!(
                "{h} sent as sequence {}, received as {}",
                env.header().sequence,
                row.sequence
            ));
        }
        let made = match receiver.received(&id) {
            Ok(Some((sha, made))) => {
                if &sha != env.sha256() {
                    fail(format!(
                        "{h}: the receiver stored another envelope than the sender sent"
                    ));
                }
                made
            }
            other => {
                fail(format!(
                    "{h} has no DELIVERED receipt at the receiver ({other:?})"
                ));
                continue;
            }
        };
        let mut delivered = Vec::new();
        for bytes in &held.receipts {
            match Receipt::verify(bytes, &to.id) {
                Ok(r) if r.answers(&env) => {
                    if matches!(r.kind(), ReceiptKind::Delivered) {
                        delivered.push(bytes.clone());
                    }
                }
                Ok(_) => fail(format!(
                    "{h}: a receipt at the sender answers another envelope"
                )),
                Err(e) => fail(format!("{h}: a receipt at the sender does not verify: {e}")),
            }
        }
        match delivered.as_slice() {
            [one] if one[..] == made[..] => {}
            [_] => fail(format!(
                "{h}: the sender holds another DELIVERED receipt than the receiver made"
            )),
            many => fail(format!(
                "{h}: {} verified DELIVERED receipts at the sender, want 1",
                many.len()
            )),
        }
    }
    Counts {
        messages: inbox.len(),
        unannounced,
    }
}

/// Runs the database's own integrity check; adds what it finds to `problems`.
pub fn integrity(side: Side<'_>, problems: &mut Vec<String>) {
    match SqliteStore::open(side.db).map(|mut db| db.check()) {
        Ok(Ok(found)) => {
            for p in found {
                problems.push(format!("node {}: check: {p}", side.name));
            }
        }
        Ok(Err(e)) | Err(e) => problems.push(format!("node {}: check: {e}", side.name)),
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
