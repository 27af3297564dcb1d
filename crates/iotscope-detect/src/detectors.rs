//! The detectors: each looks at one series of a port (or the whole
//! darknet's backscatter) and says whether its latest bucket is unusual.
//! A trait, so a detector can be added without touching the runner.

use serde::Serialize;
use serde_json::json;

use crate::baseline::{baseline, Baseline};

/// What a series counts per bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Packets to the port.
    Packets,
    /// Unique sources on the port, research scanners left out.
    Sources,
    /// Sources on the port not seen on it in the onset look-back (research
    /// scanners left out).
    NewSources,
    /// Sources on the port classed `mirai_like`.
    MiraiSources,
    /// Sources on the port classed `masscan`.
    MasscanSources,
    /// Sources on the port classed `zmap`.
    ZmapSources,
    /// Backscatter packets over the whole darknet (sources classed
    /// `backscatter`).
    BackscatterPackets,
}

/// One port's (or the darknet's) features over consecutive buckets, oldest
/// first, all of one length; NaN marks a bucket with no record at all.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// [`Metric::Packets`].
    pub packets: Vec<f64>,
    /// [`Metric::Sources`].
    pub sources: Vec<f64>,
    /// [`Metric::NewSources`].
    pub new_sources: Vec<f64>,
    /// [`Metric::MiraiSources`], [`Metric::MasscanSources`], [`Metric::ZmapSources`].
    pub fingerprints: [Vec<f64>; 3],
    /// [`Metric::BackscatterPackets`] (the darknet's series only).
    pub backscatter: Vec<f64>,
}

impl Series {
    /// The values of one metric.
    pub fn values(&self, m: Metric) -> &[f64] {
        match m {
            Metric::Packets => &self.packets,
            Metric::Sources => &self.sources,
            Metric::NewSources => &self.new_sources,
            Metric::MiraiSources => &self.fingerprints[0],
            Metric::MasscanSources => &self.fingerprints[1],
            Metric::ZmapSources => &self.fingerprints[2],
            Metric::BackscatterPackets => &self.backscatter,
        }
    }
}

/// What a detector found in one bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    /// The detector's name.
    pub detector: &'static str,
    /// The series it read.
    pub metric: Metric,
    /// Its parameters.
    pub parameters: serde_json::Value,
    /// The bucket's value.
    pub observed: f64,
    /// What it was compared to.
    pub baseline: Baseline,
    /// How unusual: the robust z-score (new port: sources over the
    /// baseline's busiest bucket, at least 1).
    pub score: f64,
}

/// A detector over one series.
pub trait Detector: Send + Sync {
    /// Its name in alerts (`surge`, `new_port`, ...).
    fn name(&self) -> &'static str;
    /// Its parameters, as alerts record them.
    fn parameters(&self) -> serde_json::Value;
    /// Whether bucket `t` of `s` is unusual, judged on the buckets before
    /// it only (so a replay over history raises what a live run would
    /// have raised as each bucket closed).
    fn evaluate(&self, s: &Series, t: usize) -> Option<Hit>;
}

/// How far back and how seasons go, shared by the detectors.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Window {
    /// Buckets of history compared with (a week of hours by default).
    pub baseline_buckets: usize,
    /// Buckets per season (a day of hours by default; 0: none).
    pub period_buckets: usize,
    /// Fewest recorded buckets of history before anything is judged.
    pub min_history: usize,
}

impl Window {
    fn history<'a>(&self, v: &'a [f64], t: usize) -> &'a [f64] {
        &v[t.saturating_sub(self.baseline_buckets)..t]
    }
}

/// A surge of one metric against its seasonal baseline
/// ([`crate::baseline`]): raised when the value is at least `min`, at least
/// `ratio` times the expected value, and at least `z` robust standard
/// deviations above it. With `name` `surge` it reads packets and sources;
/// `coordinated_onset` reads new sources (many hosts starting on a port in
/// the same bucket: Dark-TRACER's synchronised onsets, scored as a surge of
/// first appearances); `fingerprint_campaign` reads the sources with one
/// fingerprint; `backscatter` the darknet's backscatter packets.
#[derive(Clone, Debug)]
pub struct Surge {
    /// The detector's name in alerts.
    pub name: &'static str,
    /// The series read.
    pub metric: Metric,
    /// History and seasons.
    pub window: Window,
    /// Robust z-score threshold.
    pub z: f64,
    /// The value must also be this many times the expected one.
    pub ratio: f64,
    /// The value must be at least this.
    pub min: f64,
    /// And the bucket must have at least this many (non-research) sources
    /// on the port: a packet surge of one host is not a campaign.
    pub min_sources: f64,
}

impl Detector for Surge {
    fn name(&self) -> &'static str {
        self.name
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "metric": self.metric,
            "z": self.z,
            "ratio": self.ratio,
            "min": self.min,
            "min_sources": self.min_sources,
            "baseline_buckets": self.window.baseline_buckets,
            "period_buckets": self.window.period_buckets,
            "min_history": self.window.min_history,
        })
    }

    fn evaluate(&self, s: &Series, t: usize) -> Option<Hit> {
        let v = s.values(self.metric);
        let x = *v.get(t)?;
        if x.is_nan() || x < self.min {
            return None;
        }
        if self.min_sources > 0.0
            && s.sources
                .get(t)
                .is_none_or(|&n| n.is_nan() || n < self.min_sources)
        {
            return None;
        }
        let b = baseline(
            self.window.history(v, t),
            self.window.period_buckets,
            self.window.min_history,
        )?;
        let score = b.score(x);
        (x >= self.ratio * b.expected && score >= self.z).then(|| Hit {
            detector: self.name,
            metric: self.metric,
            parameters: self.parameters(),
            observed: x,
            baseline: b,
            score,
        })
    }
}

/// A new port: one that had at most `quiet` (non-research) sources in every
/// bucket of the baseline and now has at least `min`. The score is the
/// sources over the baseline's busiest bucket (at least 1).
#[derive(Clone, Debug)]
pub struct NewPort {
    /// History.
    pub window: Window,
    /// Most sources a baseline bucket may have for the port to count as new.
    pub quiet: f64,
    /// Fewest sources now.
    pub min: f64,
}

impl Detector for NewPort {
    fn name(&self) -> &'static str {
        "new_port"
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "metric": Metric::Sources,
            "quiet": self.quiet,
            "min": self.min,
            "baseline_buckets": self.window.baseline_buckets,
            "min_history": self.window.min_history,
        })
    }

    fn evaluate(&self, s: &Series, t: usize) -> Option<Hit> {
        let x = *s.sources.get(t)?;
        if x.is_nan() || x < self.min {
            return None;
        }
        // History is every recorded bucket of the window: a port absent
        // from a bucket that has a record is a zero there.
        let all = self.window.history(&s.packets, t);
        let recorded = all.iter().filter(|v| !v.is_nan()).count();
        if recorded < self.window.min_history.max(1) {
            return None;
        }
        let h = self.window.history(&s.sources, t);
        let busiest = h
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .fold(0.0, f64::max);
        (busiest <= self.quiet).then(|| Hit {
            detector: "new_port",
            metric: Metric::Sources,
            parameters: self.parameters(),
            observed: x,
            baseline: Baseline {
                expected: busiest,
                scale: 1.0,
                seasonal: false,
                history: recorded,
            },
            score: x / busiest.max(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(sources: Vec<f64>) -> Series {
        let n = sources.len();
        Series {
            packets: sources.iter().map(|x| x * 3.0).collect(),
            sources,
            new_sources: vec![0.0; n],
            fingerprints: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            backscatter: vec![0.0; n],
        }
    }

    const W: Window = Window {
        baseline_buckets: 48,
        period_buckets: 24,
        min_history: 6,
    };

    fn surge() -> Surge {
        Surge {
            name: "surge",
            metric: Metric::Sources,
            window: W,
            z: 6.0,
            ratio: 3.0,
            min: 10.0,
            min_sources: 0.0,
        }
    }

    #[test]
    fn a_surge_needs_the_threshold_the_ratio_and_the_score() {
        let mut v: Vec<f64> = (0..60).map(|i| 20.0 + (i % 5) as f64).collect();
        v[59] = 200.0;
        let s = series(v);
        let hit = surge().evaluate(&s, 59).expect("surge");
        assert_eq!(hit.observed, 200.0);
        assert!(hit.score > 6.0);
        assert!(surge().evaluate(&s, 58).is_none());
        // Below `min`: nothing however unusual.
        let mut quiet = vec![0.0; 60];
        quiet[59] = 9.0;
        assert!(surge().evaluate(&series(quiet), 59).is_none());
        // Too little history.
        let mut short = vec![20.0; 5];
        short.push(200.0);
        assert!(surge().evaluate(&series(short), 5).is_none());
    }

    #[test]
    fn a_new_port_is_quiet_before_and_busy_now() {
        let mut v = vec![0.0; 30];
        v[10] = 1.0;
        v[29] = 12.0;
        let d = NewPort {
            window: W,
            quiet: 1.0,
            min: 8.0,
        };
        let hit = d.evaluate(&series(v.clone()), 29).expect("new port");
        assert_eq!(hit.score, 12.0);
        v[11] = 3.0;
        assert!(
            d.evaluate(&series(v), 29).is_none(),
            "3 sources before: not new"
        );
    }

    #[test]
    fn the_future_is_never_read() {
        let mut v = vec![20.0; 60];
        v[40] = 200.0;
        let s = series(v.clone());
        let a = surge().evaluate(&s, 40);
        // Whatever comes after bucket 40 does not change its verdict.
        let mut later = v;
        for x in &mut later[41..] {
            *x = 5000.0;
        }
        assert_eq!(surge().evaluate(&series(later), 40), a);
    }
}
