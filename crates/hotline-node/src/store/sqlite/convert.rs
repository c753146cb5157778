//! Conversions between the store's domain types and SQLite columns.

use hotline_protocol::NodeId;
use hotline_protocol::content::Precedence;
use hotline_protocol::envelope::MessageId;
use rusqlite::ffi;

use super::super::{OutState, Result, StoreError};

/// Lower-case hex, for ids in messages.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A u64 we own (time, our own sequence) as an INTEGER; out of range is refused.
pub(super) fn int(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Database(format!("{what} {v} is too large to store")))
}

pub(super) fn uint(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored {what} {v} is negative")))
}

/// A peer's sequence number as its two's-complement i64 (total: every u64 is storable).
pub(super) fn peer_seq(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

pub(super) fn peer_seq_back(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

pub(super) fn node_id(bytes: &[u8]) -> Result<NodeId> {
    NodeId::from_bytes(bytes).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "stored node id {} is not a valid identity key",
            hex(bytes)
        ))
    })
}

pub(super) fn message_id(bytes: &[u8]) -> Result<MessageId> {
    bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!("stored message id {} is not 16 bytes", hex(bytes)))
    })
}

pub(super) fn digest(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("stored SHA-256 {} is not 32 bytes", hex(bytes))))
}

/// 0 = FLASH … 3 = ROUTINE, so ascending order is the sending order (SPEC.md §9.8).
pub(super) fn precedence(p: Precedence) -> i64 {
    match p {
        Precedence::Flash => 0,
        Precedence::Immediate => 1,
        Precedence::Priority => 2,
        Precedence::Routine => 3,
    }
}

pub(super) fn precedence_back(v: i64) -> Result<Precedence> {
    match v {
        0 => Ok(Precedence::Flash),
        1 => Ok(Precedence::Immediate),
        2 => Ok(Precedence::Priority),
        3 => Ok(Precedence::Routine),
        _ => Err(StoreError::Corrupt(format!(
            "stored precedence {v} is unknown"
        ))),
    }
}

pub(super) fn state_back(s: &str) -> Result<OutState> {
    match s {
        "unsealed" => Ok(OutState::Unsealed),
        "pending" => Ok(OutState::Pending),
        "delivered" => Ok(OutState::Delivered),
        "acknowledged" => Ok(OutState::Acknowledged),
        "rejected" => Ok(OutState::Rejected),
        "cancelled" => Ok(OutState::Cancelled),
        _ => Err(StoreError::Corrupt(format!(
            "stored message state {s:?} is unknown"
        ))),
    }
}

/// The outbox state a receipt kind leads to.
pub(super) fn state_for_kind(kind: &str) -> Result<&'static str> {
    match kind {
        "DELIVERED" => Ok("delivered"),
        "ACKNOWLEDGED" => Ok("acknowledged"),
        "REJECTED" => Ok("rejected"),
        _ => Err(StoreError::Database(format!(
            "receipt kind {kind:?} is not DELIVERED, ACKNOWLEDGED or REJECTED"
        ))),
    }
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error().is_some_and(|f| {
        f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
    })
}

/// Merges ascending, possibly adjacent or overlapping inclusive ranges.
pub(super) fn push_range(out: &mut Vec<(u64, u64)>, (lo, hi): (u64, u64)) {
    if let Some(last) = out.last_mut()
        && last.1.checked_add(1).is_none_or(|next| lo <= next)
    {
        last.1 = last.1.max(hi);
        return;
    }
    out.push((lo, hi));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_sequences_round_trip_through_i64_in_both_halves() {
        for v in [0, 1, (1 << 63) - 1, 1 << 63, u64::MAX] {
            assert_eq!(peer_seq_back(peer_seq(v)), v);
        }
        assert!(peer_seq(1 << 63) < 0);
    }

    #[test]
    fn push_range_merges_adjacent_and_overlapping_ranges_only() {
        let mut out = Vec::new();
        for r in [
            (1, 3),
            (4, 4),
            (4, 6),
            (8, 9),
            (u64::MAX - 1, u64::MAX),
            (u64::MAX, u64::MAX),
        ] {
            push_range(&mut out, r);
        }
        assert_eq!(out, vec![(1, 6), (8, 9), (u64::MAX - 1, u64::MAX)]);
    }

    #[test]
    fn precedence_codes_sort_in_sending_order() {
        for (i, p) in Precedence::ALL.into_iter().enumerate() {
            assert_eq!(precedence(p), i64::try_from(i).unwrap());
            assert_eq!(precedence_back(precedence(p)).unwrap(), p);
        }
        assert!(precedence_back(4).is_err());
    }
}
