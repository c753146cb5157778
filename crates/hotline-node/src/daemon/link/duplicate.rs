//! Duplicate connections with one peer (SPEC.md §3.9): which of two connections survives, and
//! the wait on a connection the peer dials while ours is UP (§3.9.1).

use std::time::Duration;

use hotline_protocol::identity::NodeId;
use hotline_protocol::session::{Monotonic, Session};

use super::Conn;

/// How long a link must have been UP before a connection the peer dials is taken to mean
/// that the peer lost ours, rather than a dial race (SPEC.md §3.9).
const RACE_WINDOW_MS: u64 = 2_000;

/// How long a connection the peer dials while ours is UP waits for ours to answer a probe
/// (SPEC.md §3.9.1), and how often the wait is checked.
pub(super) const CANDIDATE_WAIT: Duration = Duration::from_secs(3);
pub(super) const CANDIDATE_TICK: Duration = Duration::from_millis(50);

/// A connection the peer dialed while ours was UP: not yet attached to the session (no Hello
/// sent on it), until ours is shown dead.
pub(super) struct Candidate {
    pub(super) conn: quinn::Connection,
    /// UDP datagrams ours had received when it was probed.
    pub(super) rx_at_probe: u64,
    pub(super) deadline: tokio::time::Instant,
}

/// What to do with a [`Candidate`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Keep waiting.
    Wait,
    /// It ended by itself: forget it.
    Drop,
    /// Ours still answers: close the candidate with DUPLICATE_CONNECTION.
    Refuse,
    /// Ours is dead (it ended, or stayed silent for the whole wait): the candidate replaces it.
    Adopt,
}

/// SPEC.md §3.9.1: a packet arriving on our connection after the probe shows the peer's side of
/// it alive, so the new connection was not dialed by the peer's running process (a peer dials
/// only when it has no connection); an ended or silent connection gives way.
pub(super) fn judge(
    candidate_ended: bool,
    ours_ended: bool,
    ours_answered: bool,
    waited: bool,
) -> Verdict {
    if candidate_ended {
        Verdict::Drop
    } else if ours_ended {
        Verdict::Adopt
    } else if ours_answered {
        Verdict::Refuse
    } else if waited {
        Verdict::Adopt
    } else {
        Verdict::Wait
    }
}

pub(super) fn received_datagrams(c: &quinn::Connection) -> u64 {
    c.stats().udp_rx.datagrams
}

/// Whether the link has been UP for longer than a dial race could last.
pub(super) fn settled(session: &Session, now: Monotonic) -> bool {
    session.is_up() && now.since(session.state_since()) >= RACE_WINDOW_MS
}

/// Duplicate connections (SPEC.md §3.9). A peer dials only when it has no connection, so a
/// connection it dials while ours has been UP for a while means it lost ours: the new one is
/// kept (once ours is shown dead, §3.9.1, which the caller sees to). Otherwise (a dial race)
/// the one whose dialer has the larger identity key survives, and a new connection from the
/// same dialer as the existing one replaces it (again after §3.9.1 when ours is UP).
pub(super) fn keep_new(
    existing: &Conn,
    existing_up: bool,
    new_dialed_by_us: bool,
    peer: &NodeId,
    me: &NodeId,
) -> bool {
    if existing.dialed_by_us == new_dialed_by_us {
        return true;
    }
    if existing_up && !new_dialed_by_us {
        return true;
    }
    let new_dialer = if new_dialed_by_us { me } else { peer };
    let other = if new_dialed_by_us { peer } else { me };
    new_dialer.as_bytes() > other.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::{Verdict, judge};

    /// SPEC.md §3.9.1, every combination: a held connection that ended is forgotten; ours
    /// ending or staying silent for the whole wait lets the new one in; any packet on ours
    /// refuses the new one, even at the deadline.
    #[test]
    fn the_held_connection_verdicts() {
        for ours_ended in [false, true] {
            for answered in [false, true] {
                for waited in [false, true] {
                    assert_eq!(judge(true, ours_ended, answered, waited), Verdict::Drop);
                }
            }
        }
        for answered in [false, true] {
            for waited in [false, true] {
                assert_eq!(judge(false, true, answered, waited), Verdict::Adopt);
            }
        }
        assert_eq!(judge(false, false, true, false), Verdict::Refuse);
        assert_eq!(judge(false, false, true, true), Verdict::Refuse);
        assert_eq!(judge(false, false, false, true), Verdict::Adopt);
        assert_eq!(judge(false, false, false, false), Verdict::Wait);
    }
}
