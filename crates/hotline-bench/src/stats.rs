//! Percentiles of a latency sample.

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` (ascending) by the nearest-rank method:
/// the smallest value such that at least p % of the sample is at or below it. Always one of
/// the measured values, never an interpolation. `None` for an empty sample.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let n = sorted.len();
    // ceil(p/100 · n) in integers where possible: p is given to 0.1 at most here.
    let rank = ((p / 100.0) * n as f64 - 1e-9).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// p50, p90, p99, p99.9 and the maximum of `sample` (sorted here). `None` if it is empty.
pub fn summarize(mut sample: Vec<f64>) -> Option<Percentiles> {
    sample.sort_by(f64::total_cmp);
    Some(Percentiles {
        p50: percentile(&sample, 50.0)?,
        p90: percentile(&sample, 90.0)?,
        p99: percentile(&sample, 99.0)?,
        p999: percentile(&sample, 99.9)?,
        max: *sample.last()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_one_thousand() {
        let s: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), Some(500.0));
        assert_eq!(percentile(&s, 90.0), Some(900.0));
        assert_eq!(percentile(&s, 99.0), Some(990.0));
        assert_eq!(percentile(&s, 99.9), Some(999.0));
        assert_eq!(percentile(&s, 100.0), Some(1000.0));
    }

    #[test]
    fn a_high_percentile_of_a_small_sample_is_its_maximum() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&s, 50.0), Some(5.0));
        assert_eq!(percentile(&s, 90.0), Some(9.0));
        assert_eq!(percentile(&s, 99.0), Some(10.0));
        assert_eq!(percentile(&s, 99.9), Some(10.0));
        assert_eq!(percentile(&[7.5], 50.0), Some(7.5));
    }

    #[test]
    fn empty_samples_and_out_of_range_percentiles_have_no_value() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0], 0.0), None);
        assert_eq!(percentile(&[1.0], 100.5), None);
        assert_eq!(summarize(Vec::new()), None);
    }

    #[test]
    fn summarize_sorts_its_sample() {
        let mut s: Vec<f64> = (1..=100).map(f64::from).collect();
        s.reverse();
        let p = summarize(s).unwrap();
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p999, p.max),
            (50.0, 90.0, 99.0, 100.0, 100.0)
        );
    }
}
