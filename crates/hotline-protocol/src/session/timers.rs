//! The session's timers: one table indexed by an enum; the earliest one is the next deadline.

use crate::time::UnixMillis;

/// Every timer a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The peer's Hello must arrive by then.
    Hello = 0,
    /// Send the next heartbeat.
    Heartbeat = 1,
    /// Nothing received since the liveness window: the link is down.
    Liveness = 2,
    /// An in-flight item's receipt is overdue, or a delayed item may be sent again.
    Retransmit = 3,
    /// Re-evaluate gaps once the grace period of a peer claim has passed.
    Gap = 4,
}

const COUNT: usize = 5;
const ALL: [Timer; COUNT] = [
    Timer::Hello,
    Timer::Heartbeat,
    Timer::Liveness,
    Timer::Retransmit,
    Timer::Gap,
];

#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable([Option<UnixMillis>; COUNT]);

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: UnixMillis) {
        self.0[t as usize] = Some(at);
    }
    pub(crate) fn set_opt(&mut self, t: Timer, at: Option<UnixMillis>) {
        self.0[t as usize] = at;
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    pub(crate) fn clear(&mut self) {
        self.0 = [None; COUNT];
    }
    /// The earliest deadline of any running timer.
    pub(crate) fn next(&self) -> Option<UnixMillis> {
        self.0.iter().flatten().min().copied()
    }
    /// Timers due at `now`, stopping them.
    pub(crate) fn expire(&mut self, now: UnixMillis) -> Vec<Timer> {
        let mut due = Vec::new();
        for t in ALL {
            if self.0[t as usize].is_some_and(|at| at <= now) {
                self.0[t as usize] = None;
                due.push(t);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_timer_wins_and_expires_once() {
        let mut t = TimerTable::default();
        t.set(Timer::Heartbeat, 50);
        t.set(Timer::Liveness, 20);
        assert_eq!(t.next(), Some(20));
        assert_eq!(t.expire(19), vec![]);
        assert_eq!(t.expire(20), vec![Timer::Liveness]);
        assert_eq!(t.next(), Some(50));
        assert_eq!(t.expire(100), vec![Timer::Heartbeat]);
        assert_eq!(t.next(), None);
    }
}
