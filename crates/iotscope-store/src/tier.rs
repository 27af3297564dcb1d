//! Tiers of the telescope's time series: the store's own buckets, and
//! hourly and daily rollups of them, built as buckets arrive; which tier
//! answers a question exactly; and what retention may remove.
//!
//! Why: a year of one-minute buckets is half a million periods, and a
//! darknet's sources repeat across them. Hourly and daily rollups hold the
//! same figures per hour and per day (packets and bytes added, distinct
//! sources and per-port source sets united, source counters added), so a
//! report over whole days reads one row per day, and raw buckets can be
//! removed after weeks while hours and days stay for years (the tiers of
//! RRDtool and of Graphite's retentions, kept exact rather than averaged).
//!
//! A rollup is exact for every figure the report gives, because every
//! figure is a sum, a minimum or maximum, or a set union, all of which can
//! be taken in any grouping: unique sources over a day from the day's row
//! equal those from its 1,440 minute rows. Only the series' resolution
//! differs, which is why the tier is part of the question.

/// An hour, ns.
pub const HOUR_NS: i64 = 3_600_000_000_000;
/// A day (UTC), ns.
pub const DAY_NS: i64 = 86_400_000_000_000;

/// A tier of the telescope's time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// The store's own buckets (its `--bucket` length).
    Bucket,
    /// Hourly rollups (UTC hours).
    Hour,
    /// Daily rollups (UTC days).
    Day,
}

impl Tier {
    /// Finest first.
    pub const ALL: [Tier; 3] = [Tier::Bucket, Tier::Hour, Tier::Day];

    /// `bucket`, `hour` or `day`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Bucket => "bucket",
            Tier::Hour => "hour",
            Tier::Day => "day",
        }
    }

    /// Reads `bucket` (or `raw`), `hour` (`1h`, `hourly`), `day` (`1d`,
    /// `daily`), in any case.
    pub fn parse(text: &str) -> Option<Tier> {
        match text.trim().to_ascii_lowercase().as_str() {
            "bucket" | "raw" => Some(Tier::Bucket),
            "hour" | "1h" | "hourly" => Some(Tier::Hour),
            "day" | "1d" | "daily" => Some(Tier::Day),
            _ => None,
        }
    }

    /// Its place in [`Tier::ALL`] (and in [`Coverage::from_ns`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The length of its periods in a store of `bucket_ns` buckets, ns.
    pub fn length_ns(self, bucket_ns: i64) -> i64 {
        match self {
            Tier::Bucket => bucket_ns,
            Tier::Hour => HOUR_NS,
            Tier::Day => DAY_NS,
        }
    }

    /// Whether a store of `bucket_ns` buckets keeps this tier: always its
    /// buckets; a rollup when its buckets are shorter and tile its periods
    /// (buckets are aligned to the epoch, so a length dividing the hour
    /// nests in hours; a 7-minute bucket straddles them and has none).
    pub fn kept(self, bucket_ns: i64) -> bool {
        let len = self.length_ns(bucket_ns);
        self == Tier::Bucket || (bucket_ns > 0 && bucket_ns < len && len % bucket_ns == 0)
    }

    /// Its table of per-period totals.
    pub(crate) fn buckets_table(self) -> &'static str {
        match self {
            Tier::Bucket => "buckets",
            Tier::Hour => "hourly_buckets",
            Tier::Day => "daily_buckets",
        }
    }

    /// Every table of its periods, the per-period totals first.
    pub(crate) fn tables(self) -> [&'static str; 5] {
        use crate::blocks::BlockTable;
        [
            self.buckets_table(),
            self.classes_table(),
            BlockTable::Ports(self).name(),
            BlockTable::PortSketches(self).name(),
            BlockTable::Sources(self).name(),
        ]
    }

    /// Its table of per-period class counts.
    pub(crate) fn classes_table(self) -> &'static str {
        match self {
            Tier::Bucket => "bucket_classes",
            Tier::Hour => "hourly_classes",
            Tier::Day => "daily_classes",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which tier a report or series reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TierChoice {
    /// The finest tier that answers exactly (the store's buckets while
    /// they are kept): the series at its finest.
    #[default]
    Finest,
    /// The coarsest tier that answers exactly: for figures over the whole
    /// period (totals, sources, ports), which every tier gives alike, read
    /// from the fewest rows.
    Coarsest,
    /// This tier, or an error saying why it cannot answer.
    Exactly(Tier),
}

/// What a store holds of each tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// The store's bucket length, ns.
    pub bucket_ns: i64,
    /// Per tier ([`Tier::ALL`] order): none when the store does not keep
    /// it ([`Tier::kept`]), else the start (ns) from which it holds every
    /// period: `i64::MIN` for all, later when retention removed older
    /// periods or the store held buckets before it had rollups.
    pub from_ns: [Option<i64>; 3],
    /// The earliest period start any tier holds, if any.
    pub earliest_ns: Option<i64>,
    /// Retention's boundaries per tier, as recorded.
    kept_from: [i64; 3],
}

fn when(ns: i64) -> String {
    iotscope_telescope::time::rfc3339(ns)
}

impl Coverage {
    /// Coverage of a store of `bucket_ns` buckets: `kept_from` per tier
    /// (retention's boundaries, `i64::MIN` for none), `rollups_from` (the
    /// first bucket start rolled up, `i64::MIN` for a store that had them
    /// from its first run) and its earliest period.
    pub fn new(
        bucket_ns: i64,
        kept_from: [i64; 3],
        rollups_from: i64,
        earliest_ns: Option<i64>,
    ) -> Coverage {
        let mut from_ns = [None; 3];
        for t in Tier::ALL {
            if !t.kept(bucket_ns) {
                continue;
            }
            let mut from = kept_from[t.index()];
            if t != Tier::Bucket && rollups_from != i64::MIN {
                // The first whole period after the rollups began.
                let len = t.length_ns(bucket_ns);
                let up = rollups_from
                    .div_euclid(len)
                    .saturating_add((rollups_from.rem_euclid(len) != 0) as i64);
                from = from.max(up.saturating_mul(len));
            }
            from_ns[t.index()] = Some(from);
        }
        Coverage {
            bucket_ns,
            from_ns,
            earliest_ns,
            kept_from,
        }
    }

    /// Per tier ([`Tier::ALL`] order), the first period start it takes:
    /// where retention left it (`i64::MIN`: everything). A run's periods
    /// before it are not written into that tier.
    pub fn kept_from(&self) -> [i64; 3] {
        self.kept_from
    }

    /// Whether `tier` answers the period `[lo, hi)` (none: unbounded)
    /// exactly; else why not.
    pub fn answers(&self, tier: Tier, lo: Option<i64>, hi: Option<i64>) -> Result<(), String> {
        let Some(from) = self.from_ns[tier.index()] else {
            return Err(format!(
                "{} s buckets do not roll up into {}s (shorter buckets that tile the period do)",
                self.bucket_ns as f64 / 1e9,
                tier.name()
            ));
        };
        let len = tier.length_ns(self.bucket_ns);
        if tier != Tier::Bucket {
            for (what, t) in [("since", lo), ("until", hi)] {
                if let Some(t) = t.filter(|t| t.rem_euclid(len) != 0) {
                    return Err(format!(
                        "{what} {} is not on a whole {} (UTC)",
                        when(t),
                        tier.name()
                    ));
                }
            }
        }
        // The first period the question needs: from `since`, which the
        // tier must hold (what retention removed is not silently left out
        // of a period asked for); without `since`, from the earliest the
        // store holds.
        let needed = match (lo, self.earliest_ns) {
            (Some(l), _) => l,
            (None, Some(e)) => e,
            (None, None) => return Ok(()),
        };
        if needed < from && hi.is_none_or(|h| h > needed) {
            return Err(format!(
                "the {} tier holds periods from {} on (older ones were removed by retention, or \
                 stored before the store had rollups)",
                tier.name(),
                when(from)
            ));
        }
        Ok(())
    }

    /// The tier `choice` names for `[lo, hi)`; else an error message that
    /// says why each tier cannot answer.
    pub fn choose(
        &self,
        choice: TierChoice,
        lo: Option<i64>,
        hi: Option<i64>,
    ) -> Result<Tier, String> {
        let order: &[Tier] = match choice {
            TierChoice::Finest => &[Tier::Bucket, Tier::Hour, Tier::Day],
            TierChoice::Coarsest => &[Tier::Day, Tier::Hour, Tier::Bucket],
            TierChoice::Exactly(t) => {
                // An hour asked of a store of hour-long buckets is its buckets.
                let t = if t.length_ns(self.bucket_ns) == self.bucket_ns {
                    Tier::Bucket
                } else {
                    t
                };
                return self
                    .answers(t, lo, hi)
                    .map(|()| t)
                    .map_err(|why| format!("the {} tier cannot answer exactly: {why}", t.name()));
            }
        };
        let mut whys = Vec::new();
        for &t in order {
            match self.answers(t, lo, hi) {
                Ok(()) => return Ok(t),
                Err(why) => whys.push(format!("{}: {why}", t.name())),
            }
        }
        Err(format!(
            "no tier answers this period exactly ({})",
            whys.join("; ")
        ))
    }
}

impl Coverage {
    /// The tier a chart of `[lo, hi)` reads, with the period widened to
    /// whole periods of that tier: the finest that holds the period and
    /// draws it in at most `max_points` periods (`newest_end_ns`, the end
    /// of the newest bucket, bounds an open end), else the coarsest that
    /// holds it; none when no tier does. A chart of a year of minute
    /// buckets reads the hourly rollups: 8,760 exact points instead of
    /// 525,600 merged ones.
    pub fn series_tier(
        &self,
        lo: Option<i64>,
        hi: Option<i64>,
        newest_end_ns: Option<i64>,
        max_points: u64,
    ) -> Option<(Tier, Option<i64>, Option<i64>)> {
        let mut last = None;
        for t in Tier::ALL {
            if self.from_ns[t.index()].is_none() {
                continue;
            }
            let len = t.length_ns(self.bucket_ns).max(1);
            let down = |v: i64| v.div_euclid(len).saturating_mul(len);
            let up = |v: i64| {
                v.div_euclid(len)
                    .saturating_add((v.rem_euclid(len) != 0) as i64)
                    .saturating_mul(len)
            };
            let (a, b) = match t {
                Tier::Bucket => (lo, hi),
                _ => (lo.map(down), hi.map(up)),
            };
            if self.answers(t, a, b).is_err() {
                continue;
            }
            last = Some((t, a, b));
            let first = a.or(self.earliest_ns);
            let end = b.or(newest_end_ns);
            let points = match (first, end) {
                (Some(x), Some(y)) if y > x => ((y as i128 - x as i128) / len as i128) as u64,
                _ => 0,
            };
            if points <= max_points {
                return last;
            }
        }
        last
    }
}

/// How long each tier is kept (none: for ever), for `store prune`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Per tier ([`Tier::ALL`] order), ns.
    pub keep_ns: [Option<i64>; 3],
}

impl Retention {
    /// Per tier, the start (ns) before which its periods may be removed at
    /// `now_ns`: none to remove nothing. A finer tier's periods go only
    /// where a coarser kept tier holds them (its cut is on that tier's
    /// boundary and not before the coarser tier's coverage begins), so only
    /// the coarsest kept tier's retention removes figures for good.
    ///
    /// Errors: a finer tier kept longer than a coarser one (its periods
    /// would outlive the rollup that replaces them: say so rather than
    /// guess), or a negative duration.
    pub fn cuts(&self, cov: &Coverage, now_ns: i64) -> Result<[Option<i64>; 3], String> {
        let kept: Vec<Tier> = Tier::ALL
            .into_iter()
            .filter(|t| cov.from_ns[t.index()].is_some())
            .collect();
        let mut out = [None; 3];
        for (i, &t) in kept.iter().enumerate() {
            let Some(keep) = self.keep_ns[t.index()] else {
                continue;
            };
            if keep < 0 {
                return Err(format!("the {} tier's retention is negative", t.name()));
            }
            // Kept from before 1970, the first time a store holds: nothing
            // goes (and no boundary is recorded).
            let Some(mut cut) = now_ns.checked_sub(keep).filter(|&c| c > 0) else {
                continue;
            };
            // A period goes only once it is wholly past its retention, and
            // a finer tier's only on the boundaries of the coarser tier
            // that holds it.
            let coarser = kept.get(i + 1).copied();
            let len = coarser.unwrap_or(t).length_ns(cov.bucket_ns).max(1);
            cut = cut.div_euclid(len).saturating_mul(len);
            if let Some(coarser) = coarser {
                if let Some(longer) = self.keep_ns[coarser.index()] {
                    if longer < keep {
                        return Err(format!(
                            "the {} tier is kept for less time than the {} tier: keep rollups at \
                             least as long as what they replace",
                            coarser.name(),
                            t.name()
                        ));
                    }
                }
                // Before where the coarser tier's periods begin, the finer
                // tier is all there is.
                if let Some(from) = cov.from_ns[coarser.index()].filter(|&f| f > i64::MIN) {
                    cut = cut.min(from);
                }
            }
            out[t.index()] = Some(cut);
        }
        Ok(out)
    }
}

/// What [`crate::Store::prune`] removed of one tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pruned {
    /// The tier.
    pub tier: Tier,
    /// Its periods starting before this (ns) are gone.
    pub before_ns: i64,
    /// Periods removed now.
    pub periods: u64,
}

/// The settings key of a tier's retention boundary.
pub(crate) fn kept_from_key(t: Tier) -> &'static str {
    match t {
        Tier::Bucket => "kept_from_bucket",
        Tier::Hour => "kept_from_hour",
        Tier::Day => "kept_from_day",
    }
}

impl Retention {
    /// What a prune at `now_ns` removes: per tier with a cut
    /// ([`Self::cuts`]), the start before which its periods go, never
    /// before the boundary already recorded for it (a period there is gone
    /// or was never written). Both engines delete every table of the tier
    /// ([`Tier::tables`]) below it and record it as the tier's boundary.
    ///
    /// Errors: as [`Self::cuts`].
    pub(crate) fn plan(&self, cov: &Coverage, now_ns: i64) -> Result<Vec<(Tier, i64)>, String> {
        let cuts = self.cuts(cov, now_ns)?;
        Ok(Tier::ALL
            .into_iter()
            .filter_map(|t| {
                let cut = cuts[t.index()]?;
                Some((t, cut.max(cov.from_ns[t.index()].unwrap_or(i64::MIN))))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;
    const T0: i64 = 1_475_280_000_000_000_000; // 2016-10-01T00:00:00Z

    fn minute_store(kept_from: [i64; 3], rollups_from: i64) -> Coverage {
        Coverage::new(MIN, kept_from, rollups_from, Some(T0))
    }

    #[test]
    fn tiers_kept_by_bucket_length() {
        for (bucket, hour, day) in [
            (MIN, true, true),
            (15 * MIN, true, true),
            (7 * MIN, false, false),
            (HOUR_NS, false, true),
            (2 * HOUR_NS, false, true),
            (5 * HOUR_NS, false, false),
            (DAY_NS, false, false),
        ] {
            assert!(Tier::Bucket.kept(bucket));
            assert_eq!(Tier::Hour.kept(bucket), hour, "{bucket}");
            assert_eq!(Tier::Day.kept(bucket), day, "{bucket}");
        }
        assert_eq!(Tier::parse(" Daily "), Some(Tier::Day));
        assert_eq!(Tier::parse("week"), None);
    }

    #[test]
    fn the_finest_tier_that_answers_is_chosen_and_the_coarsest_when_asked() {
        let all = minute_store([i64::MIN; 3], i64::MIN);
        assert_eq!(all.choose(TierChoice::Finest, None, None), Ok(Tier::Bucket));
        assert_eq!(all.choose(TierChoice::Coarsest, None, None), Ok(Tier::Day));
        // Not on a whole day: the hours answer.
        let (lo, hi) = (Some(T0 + 3 * HOUR_NS), Some(T0 + 2 * DAY_NS));
        assert_eq!(all.choose(TierChoice::Coarsest, lo, hi), Ok(Tier::Hour));
        // Not on a whole hour: the buckets.
        let lo = Some(T0 + 5 * MIN);
        assert_eq!(all.choose(TierChoice::Coarsest, lo, hi), Ok(Tier::Bucket));
        let e = all
            .choose(TierChoice::Exactly(Tier::Day), lo, hi)
            .unwrap_err();
        assert!(e.contains("is not on a whole day"), "{e}");
    }

    #[test]
    fn retention_moves_reports_to_the_tier_that_still_holds_the_period() {
        // Raw kept from day 30 on: a report from the start reads hours.
        let pruned = minute_store([T0 + 30 * DAY_NS, i64::MIN, i64::MIN], i64::MIN);
        assert_eq!(
            pruned.choose(TierChoice::Finest, None, None),
            Ok(Tier::Hour)
        );
        let late = Some(T0 + 31 * DAY_NS);
        assert_eq!(
            pruned.choose(TierChoice::Finest, late, None),
            Ok(Tier::Bucket)
        );
        let e = pruned
            .choose(TierChoice::Exactly(Tier::Bucket), Some(T0), None)
            .unwrap_err();
        assert!(
            e.contains("bucket tier holds periods from 2016-10-31T00:00:00Z"),
            "{e}"
        );
        // A period wholly before the data needs nothing.
        assert!(pruned.answers(Tier::Bucket, None, Some(T0)).is_ok());
        // A period asked from before a tier's boundary is not silently cut.
        let e = pruned
            .answers(Tier::Bucket, Some(T0 - DAY_NS), Some(T0 + 40 * DAY_NS))
            .unwrap_err();
        assert!(e.contains("holds periods from"), "{e}");
    }

    #[test]
    fn a_store_that_had_buckets_before_rollups_reads_them_from_its_buckets() {
        let old = minute_store([i64::MIN; 3], T0 + 90 * MIN);
        assert_eq!(old.from_ns[1], Some(T0 + 2 * HOUR_NS));
        assert_eq!(old.from_ns[2], Some(T0 + DAY_NS));
        assert_eq!(
            old.choose(TierChoice::Coarsest, None, None),
            Ok(Tier::Bucket)
        );
        let later = Some(T0 + DAY_NS);
        assert_eq!(old.choose(TierChoice::Coarsest, later, None), Ok(Tier::Day));
    }

    #[test]
    fn a_long_chart_reads_the_finest_tier_that_fits() {
        let cov = minute_store([i64::MIN; 3], i64::MIN);
        let end = Some(T0 + 365 * DAY_NS);
        // A day of minutes fits; a year reads hours, widened to whole ones.
        let day = cov.series_tier(Some(T0), Some(T0 + DAY_NS), end, 10_000);
        assert_eq!(day, Some((Tier::Bucket, Some(T0), Some(T0 + DAY_NS))));
        let year = cov.series_tier(Some(T0 + 5 * MIN), None, end, 10_000);
        assert_eq!(year, Some((Tier::Hour, Some(T0), None)));
        let decade = cov.series_tier(None, None, Some(T0 + 3650 * DAY_NS), 10_000);
        assert_eq!(decade.map(|d| d.0), Some(Tier::Day));
    }

    #[test]
    fn retention_cuts_finer_tiers_only_where_a_coarser_one_holds_them() {
        let cov = minute_store([i64::MIN; 3], i64::MIN);
        let now = T0 + 100 * DAY_NS + 5 * HOUR_NS + 7 * MIN;
        let r = Retention {
            keep_ns: [Some(30 * DAY_NS), Some(90 * DAY_NS), None],
        };
        let cuts = r.cuts(&cov, now).unwrap();
        // Raw: on the hour; hours: on the day; days: for ever.
        assert_eq!(cuts[0], Some(T0 + 70 * DAY_NS + 5 * HOUR_NS));
        assert_eq!(cuts[1], Some(T0 + 10 * DAY_NS));
        assert_eq!(cuts[2], None);
        // Days (the coarsest) go when wholly past their retention, on a
        // day: 10-01 06:00 minus one day keeps the day before.
        let days = Retention {
            keep_ns: [None, None, Some(DAY_NS)],
        };
        let at = T0 + DAY_NS + 6 * HOUR_NS;
        assert_eq!(days.cuts(&cov, at).unwrap()[2], Some(T0));
        // Kept from before 1970: nothing goes.
        let ever = Retention {
            keep_ns: [Some(i64::MAX), None, None],
        };
        assert_eq!(ever.cuts(&cov, at).unwrap(), [None; 3]);
        // Hours kept only from day 40 on (made late): raw goes no further.
        let late = minute_store([i64::MIN; 3], T0 + 40 * DAY_NS);
        let cuts = r.cuts(&late, now).unwrap();
        assert_eq!(cuts[0], Some(T0 + 40 * DAY_NS));
        let bad = Retention {
            keep_ns: [Some(30 * DAY_NS), Some(7 * DAY_NS), None],
        };
        assert!(bad
            .cuts(&cov, now)
            .unwrap_err()
            .contains("kept for less time"));
        // Hour-long buckets: the day tier replaces them.
        let hourly = Coverage::new(HOUR_NS, [i64::MIN; 3], i64::MIN, Some(T0));
        let cuts = r.cuts(&hourly, now).unwrap();
        assert_eq!(cuts, [Some(T0 + 70 * DAY_NS), None, None]);
    }
}
