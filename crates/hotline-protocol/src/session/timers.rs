//! The session's clock and timers: [`Monotonic`], the only time its timers read, and one
//! table of timers indexed by an enum, whose earliest entry is the next deadline.

/// A reading of the driver's monotonic clock, in milliseconds from an origin the driver picks
/// (for `hotlined`, the start of the process).
///
/// Every timer of a session (Hello timeout, heartbeat interval, liveness window, receipt
/// timeout and retransmission backoff, gap grace, the rate limits) runs on this clock, never on
/// the wall clock: a wall clock stepped back would stall retransmission and liveness, one
/// stepped forward would fire every timer at once and kill the link (SPEC.md §14.8). The wall
/// clock is given separately ([`Session::set_wall_clock`]) for the times a session puts on the
/// wire.
///
/// [`Session::set_wall_clock`]: super::Session::set_wall_clock
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Monotonic(u64);

impl Monotonic {
    /// The reading `ms` milliseconds after the driver's origin.
    pub const fn from_millis(ms: u64) -> Self {
        Monotonic(ms)
    }

    /// Milliseconds since the driver's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `ms` milliseconds later (saturating).
    #[must_use]
    pub const fn after(self, ms: u64) -> Self {
        Monotonic(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`; 0 if `earlier` is later.
    pub const fn since(self, earlier: Monotonic) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

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
pub(crate) struct TimerTable([Option<Monotonic>; COUNT]);

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: Monotonic) {
        self.0[t as usize] = Some(at);
    }
    pub(crate) fn set_opt(&mut self, t: Timer, at: Option<Monotonic>) {
        self.0[t as usize] = at;
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    pub(crate) fn clear(&mut self) {
        self.0 = [None; COUNT];
    }
    /// The earliest deadline of any running timer.
    pub(crate) fn next(&self) -> Option<Monotonic> {
        self.0.iter().flatten().min().copied()
    }
    /// Timers due at `now`, stopping them.
    pub(crate) fn expire(&mut self, now: Monotonic) -> Vec<Timer> {
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
        let ms = Monotonic::from_millis;
        let mut t = TimerTable::default();
        t.set(Timer::Heartbeat, ms(50));
        t.set(Timer::Liveness, ms(20));
        assert_eq!(t.next(), Some(ms(20)));
        assert_eq!(t.expire(ms(19)), vec![]);
        assert_eq!(t.expire(ms(20)), vec![Timer::Liveness]);
        assert_eq!(t.next(), Some(ms(50)));
        assert_eq!(t.expire(ms(100)), vec![Timer::Heartbeat]);
        assert_eq!(t.next(), None);
    }
}
