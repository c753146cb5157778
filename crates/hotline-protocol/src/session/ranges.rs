//! Received sequence numbers as a set of disjoint inclusive ranges, and gap computation.

use std::collections::BTreeMap;

/// A set of u64 values stored as disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// Inserts `v`; returns false if it was already present.
    pub fn insert(&mut self, v: u64) -> bool {
        if self.contains(v) {
            return false;
        }
        let mut start = v;
        let mut end = v;
        // Merge with a range ending at v-1.
        if let Some((&s, &e)) = self.ranges.range(..v).next_back()
            && e.checked_add(1) == Some(v)
        {
            start = s;
            self.ranges.remove(&s);
        }
        // Merge with a range starting at v+1.
        if let Some(next) = v.checked_add(1)
            && let Some(e) = self.ranges.remove(&next)
        {
            end = e;
        }
        self.ranges.insert(start, end);
        true
    }

    /// Inserts every value of `a..=b` (nothing if `a > b`).
    pub fn insert_range(&mut self, a: u64, b: u64) {
        if a > b {
            return;
        }
        // Absorb every range that overlaps or touches [a, b].
        let mut start = a;
        let mut end = b;
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=b.saturating_add(1))
            .filter(|(_, e)| e.saturating_add(1) >= a)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// Whether `v` is present.
    pub fn contains(&self, v: u64) -> bool {
        self.ranges
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &e)| v <= e)
    }

    /// The highest n such that every value in `1..=n` is present (0 if 1 is absent).
    pub fn contiguous_from_one(&self) -> u64 {
        match self.ranges.iter().next() {
            Some((&1, &e)) => e,
            _ => 0,
        }
    }

    /// The missing values in `1..=upto`, as inclusive ranges, at most `limit` ranges.
    pub fn missing(&self, upto: u64, limit: usize) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        // The smallest value not yet known to be present; None once past u64::MAX.
        let mut next = Some(1u64);
        for (&s, &e) in &self.ranges {
            let Some(n) = next else { break };
            if n > upto || out.len() >= limit {
                break;
            }
            if s > n {
                out.push((n, (s - 1).min(upto)));
            }
            next = e.checked_add(1);
        }
        if let Some(n) = next
            && n <= upto
            && out.len() < limit
        {
            out.push((n, upto));
        }
        out
    }

    /// The highest value held; `None` if the set is empty.
    pub fn max(&self) -> Option<u64> {
        self.ranges.last_key_value().map(|(_, &e)| e)
    }

    /// Number of disjoint ranges (memory use is proportional to it).
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn max_is_the_end_of_the_last_range() {
        let mut r = RangeSet::default();
        assert_eq!(r.max(), None);
        r.insert(5);
        r.insert_range(1, 3);
        assert_eq!(r.max(), Some(5));
        r.insert(u64::MAX);
        assert_eq!(r.max(), Some(u64::MAX));
    }

    #[test]
    fn merges_neighbours() {
        let mut r = RangeSet::default();
        for v in [3, 1, 2, 7, 5, 6] {
            assert!(r.insert(v));
        }
        assert!(!r.insert(2));
        assert_eq!(r.range_count(), 2);
        assert_eq!(r.contiguous_from_one(), 3);
        assert_eq!(r.missing(9, 10), vec![(4, 4), (8, 9)]);
    }

    #[test]
    fn handles_extremes_without_overflow() {
        let mut r = RangeSet::default();
        r.insert(u64::MAX);
        r.insert(u64::MAX - 1);
        assert!(r.contains(u64::MAX));
        assert_eq!(r.missing(u64::MAX, 4), vec![(1, u64::MAX - 2)]);
    }

    proptest! {
        #[test]
        fn range_inserts_agree_with_a_plain_set(spans in proptest::collection::vec((1u64..100, 0u64..10), 0..30)) {
            let mut r = RangeSet::default();
            let mut s = std::collections::BTreeSet::new();
            for (a, len) in spans {
                r.insert_range(a, a + len);
                s.extend(a..=a + len);
            }
            let got: Vec<u64> = (1..=120).filter(|v| r.contains(*v)).collect();
            let want: Vec<u64> = s.iter().copied().filter(|v| *v <= 120).collect();
            prop_assert_eq!(got, want);
            // Ranges stay disjoint and non-adjacent: as few as possible.
            let islands = s.iter().zip(s.iter().skip(1)).filter(|(a, b)| **b != **a + 1).count() + usize::from(!s.is_empty());
            prop_assert_eq!(r.range_count(), islands);
        }

        #[test]
        fn agrees_with_a_plain_set(values in proptest::collection::vec(1u64..200, 0..100), upto in 0u64..220) {
            let mut r = RangeSet::default();
            let mut s = std::collections::BTreeSet::new();
            for v in &values {
                prop_assert_eq!(r.insert(*v), s.insert(*v));
            }
            let expect: Vec<u64> = (1..=upto).filter(|v| !s.contains(v)).collect();
            let got: Vec<u64> = r.missing(upto, usize::MAX).into_iter().flat_map(|(a, b)| a..=b).collect();
            prop_assert_eq!(got, expect);
            let c = (1..).take_while(|v| s.contains(v)).count() as u64;
            prop_assert_eq!(r.contiguous_from_one(), c);
        }
    }
}
