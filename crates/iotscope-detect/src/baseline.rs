//! Robust seasonal baselines: what a bucket's value is expected to be, and
//! how far off counts as unusual.
//!
//! The rule (documented in docs/detect.md): over the history before the
//! bucket (missing buckets, where nothing was recorded, are skipped, not
//! read as zero, so a sensor outage is not a quiet baseline):
//! - with at least three whole seasons (`period` buckets, a day by default) of
//!   history, the expected value is the median of the values at the same
//!   phase in earlier seasons (the same hour on earlier days), and the
//!   scale is the MAD of the seasonal differences `x[i] - x[i - period]`
//!   divided by √2 (a difference of two noisy values has √2 times their
//!   spread), times 1.4826 (the MAD of a normal sample to its σ);
//! - otherwise the expected value is the median of the history and the
//!   scale is 1.4826 × its MAD.
//!
//! The scale never goes below √max(expected, 1), the spread of a Poisson
//! count with that mean: sparse counts (a port with 0, 1 or 2 sources an
//! hour) have a MAD of zero, and without that floor every stray packet
//! would score infinitely. This is the robust part of Twitter's
//! seasonal-hybrid ESD (median and MAD instead of mean and σ, a seasonal
//! component removed first), applied to one point at a time as buckets
//! close.

use serde::Serialize;

/// 1.4826: the MAD of a normal sample times this estimates its σ.
const MAD_TO_SIGMA: f64 = 1.4826;

/// What a bucket is compared to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Baseline {
    /// The expected value.
    pub expected: f64,
    /// The spread a usual value stays within (σ-like).
    pub scale: f64,
    /// Whether the seasonal rule was used.
    pub seasonal: bool,
    /// Buckets of history read (missing ones not counted).
    pub history: usize,
}

impl Baseline {
    /// The robust z-score of `x`: (x − expected) / scale.
    pub fn score(&self, x: f64) -> f64 {
        (x - self.expected) / self.scale
    }
}

/// Median of the values (NaN-free); 0 for none. Reorders `v`.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if v.len() % 2 == 1 {
        m
    } else {
        let lower = v[..mid].iter().copied().fold(f64::MIN, f64::max);
        (lower + m) / 2.0
    }
}

/// Median absolute deviation from `centre`.
pub fn mad(v: &[f64], centre: f64) -> f64 {
    let mut d: Vec<f64> = v.iter().map(|x| (x - centre).abs()).collect();
    median(&mut d)
}

/// The baseline of the bucket after `history` (oldest first; NaN marks a
/// bucket with no record), with seasons of `period` buckets (0 or 1: no
/// seasonality). `None` when fewer than `min_history` buckets were recorded.
pub fn baseline(history: &[f64], period: usize, min_history: usize) -> Option<Baseline> {
    let recorded: Vec<f64> = history.iter().copied().filter(|x| !x.is_nan()).collect();
    if recorded.len() < min_history.max(1) {
        return None;
    }
    let n = history.len();
    if period > 1 && n >= 3 * period {
        // The same phase as the next bucket (index n) in earlier seasons.
        let mut same: Vec<f64> = (1..=n / period)
            .map(|k| history[n - k * period])
            .filter(|x| !x.is_nan())
            .collect();
        let mut diffs: Vec<f64> = (period..n)
            .map(|i| history[i] - history[i - period])
            .filter(|x| !x.is_nan())
            .collect();
        if same.len() >= 3 && diffs.len() >= period {
            let expected = median(&mut same);
            let c = median(&mut diffs);
            let spread = mad(&diffs, c) * MAD_TO_SIGMA / std::f64::consts::SQRT_2;
            return Some(Baseline {
                expected,
                scale: spread.max(expected.max(1.0).sqrt()),
                seasonal: true,
                history: recorded.len(),
            });
        }
    }
    let mut v = recorded.clone();
    let expected = median(&mut v);
    let spread = mad(&recorded, expected) * MAD_TO_SIGMA;
    Some(Baseline {
        expected,
        scale: spread.max(expected.max(1.0).sqrt()),
        seasonal: false,
        history: recorded.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_mads() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0], 3.0), 1.0);
    }

    #[test]
    fn an_outlier_in_the_history_does_not_move_the_baseline() {
        let mut h = vec![10.0; 20];
        h[5] = 10_000.0;
        let b = baseline(&h, 0, 6).unwrap();
        assert_eq!(b.expected, 10.0);
        // The Poisson floor: √10.
        assert!((b.scale - 10f64.sqrt()).abs() < 1e-9);
        assert!(b.score(40.0) > 9.0);
    }

    #[test]
    fn the_seasonal_rule_expects_the_same_hour_of_earlier_days() {
        // Four days of a day-night cycle: 100 by day, 10 by night.
        let day: Vec<f64> = (0..24)
            .map(|h| if (8..20).contains(&h) { 100.0 } else { 10.0 })
            .collect();
        let h: Vec<f64> = day.iter().cycle().take(96).copied().collect();
        // The next bucket is hour 0 (night): expected 10, and 100 is far.
        let b = baseline(&h, 24, 6).unwrap();
        assert!(b.seasonal);
        assert_eq!(b.expected, 10.0);
        assert!(b.score(100.0) > 6.0);
        // Without seasons, the median of the whole history is 55 or so and
        // the night's 100 would not stand out.
        let flat = baseline(&h, 0, 6).unwrap();
        assert!(flat.score(100.0) < 2.0, "{flat:?}");
    }

    #[test]
    fn missing_buckets_are_skipped_not_zero() {
        let mut h = vec![50.0; 12];
        for x in &mut h[3..9] {
            *x = f64::NAN;
        }
        let b = baseline(&h, 0, 6).unwrap();
        assert_eq!(b.expected, 50.0);
        assert!(baseline(&h[..8], 0, 6).is_none(), "5 recorded of 8");
    }
}
