//! Rebuilding the telescope report from stored rows, with the telescope's
//! own rules (flagging, sorting, schema). Backend-independent: a backend
//! reads rows, this module turns them into a [`Summary`].

use std::collections::BTreeMap;

/// The builder's maps use foldhash, seeded at random per map as the
/// telescope's own source tables are, instead of SipHash: a flood's report
/// puts ten million sources through `per_ip`, and SipHash was a seventh
/// of its time.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use iotscope_telescope::aggregate::SourceCounters;
use iotscope_telescope::sketch::SourceSketch;
use iotscope_telescope::summary::{
    class_names, sort_infected, sort_ports, source_flags, ClassPackets, Classes, CountOut,
    Fingerprints, Infected, PortRow, SeriesBucket, Summary, TopSource,
};
use iotscope_telescope::time::{parse_rfc3339, rfc3339};
use iotscope_telescope::{flagged, port_of, CaptureLossReport, LossyBucket, PortIndex};

use crate::CaptureLoss;
use iotscope_wire::{Addr, ALL_CLASSES, CLASS_COUNT};

/// What `telescope report` asks for.
#[derive(Clone, Debug, Default)]
pub struct ReportQuery {
    /// Buckets starting at or after this time (ns).
    pub since_ns: Option<i64>,
    /// Buckets starting before this time (ns).
    pub until_ns: Option<i64>,
    /// Restrict `ports` and each bucket's ports to these.
    pub ports: Vec<PortIndex>,
    /// Rows of `top_sources` and per-bucket ports.
    pub top: usize,
    /// Rows of each bucket's ports when not `top` (0: none; a caller
    /// wanting every source but no series asks `top: usize::MAX,
    /// series_top: Some(0)` and holds no per-bucket rows).
    pub series_top: Option<usize>,
    /// Which tier to read (default: the finest that answers exactly).
    pub tier: crate::TierChoice,
}

#[derive(Default)]
pub(crate) struct BucketRow {
    pub start_ns: i64,
    pub packets: u64,
    pub bytes: u64,
    pub outside: u64,
    pub malformed: u64,
    /// Distinct sources of the bucket (stored with it).
    pub sources: u64,
    pub classes: [u64; CLASS_COUNT],
}

pub(crate) struct PortBucketRow {
    pub start_ns: i64,
    pub port: PortIndex,
    pub packets: u64,
    pub sources: u64,
    pub estimated: bool,
}

pub(crate) struct SourceBucketRow {
    pub addr: Addr,
    pub counters: SourceCounters,
}

/// One port over the range: packets, stored rows, the last row's exact
/// sources, whether any row was an estimate, and the union of sketches.
struct PortAgg {
    packets: u64,
    rows: u32,
    single_sources: u64,
    estimated: bool,
    sketch: SourceSketch,
}

/// Busiest first, ties by address (numerically, IPv4 before IPv6), as
/// the telescope orders them.
fn busiest_first(a: &(Addr, SourceCounters), b: &(Addr, SourceCounters)) -> std::cmp::Ordering {
    b.1.packets.cmp(&a.1.packets).then(a.0.cmp(&b.0))
}

/// Builds the report from stored rows as a backend reads them, so memory
/// grows with the sources of one block and with ports, not with stored
/// rows or sources: a year of hourly buckets is millions of (bucket,
/// source) records, and a spoofed flood ten million sources.
///
/// Order of calls: every [`Self::bucket`] first (the series and the
/// classes key on them), then classes and ports in any order, then port
/// sketches ([`Self::needs_sketch`] says which); then, block
/// of sources by block (a source is always in the same block, see
/// [`crate::blocks::source_block`]), its [`Self::source`] rows, its
/// [`Self::infected_port`] rows (ports are kept only of sources already
/// flagged) and [`Self::end_block`]; then [`Self::finish`].
pub(crate) struct ReportBuilder<'q> {
    q: &'q ReportQuery,
    summary: Summary,
    buckets: Vec<BucketRow>,
    index: HashMap<i64, usize>,
    /// Per-source sums over the buckets read, of the current block.
    per_ip: HashMap<Addr, SourceCounters>,
    infected_ports: HashMap<Addr, Vec<u16>>,
    /// Sources and per-class sources of the blocks ended so far.
    sources: u64,
    class_sources: [u64; CLASS_COUNT],
    infected: Vec<Infected>,
    /// Candidates for `top_sources`, trimmed to the top as blocks end.
    top: Vec<(Addr, SourceCounters)>,
    fps: Fingerprints,
    first: i64,
    last: i64,
    merged: BTreeMap<PortIndex, PortAgg>,
    per_bucket: HashMap<i64, Vec<PortRow>>,
    any_estimated: bool,
}

impl<'q> ReportBuilder<'q> {
    /// A report of buckets `bucket_ns` long; `implausible_time` is the
    /// store's count of frames in no bucket.
    pub(crate) fn new(q: &'q ReportQuery, bucket_ns: i64, implausible_time: u64) -> Self {
        ReportBuilder {
            q,
            summary: Summary {
                bucket_seconds: bucket_ns as f64 / 1e9,
                implausible_time,
                ..Default::default()
            },
            buckets: Vec::new(),
            index: HashMap::default(),
            per_ip: HashMap::default(),
            infected_ports: HashMap::default(),
            sources: 0,
            class_sources: [0; CLASS_COUNT],
            infected: Vec::new(),
            top: Vec::new(),
            fps: Fingerprints::default(),
            first: i64::MAX,
            last: i64::MIN,
            merged: BTreeMap::new(),
            per_bucket: HashMap::default(),
            any_estimated: false,
        }
    }

    /// One stored bucket, oldest first.
    pub(crate) fn bucket(&mut self, b: BucketRow) {
        let s = &mut self.summary;
        s.packets += b.packets;
        s.bytes += b.bytes;
        s.outside += b.outside;
        s.malformed += b.malformed;
        self.index.insert(b.start_ns, self.buckets.len());
        self.buckets.push(b);
    }

    /// Packets of one class in the bucket starting at `start_ns`.
    pub(crate) fn class(&mut self, start_ns: i64, class: iotscope_wire::Class, packets: u64) {
        if let Some(&i) = self.index.get(&start_ns) {
            self.buckets[i].classes[class.index()] = packets;
        }
    }

    /// Whether the report shows port `idx` (a caller may skip decoding
    /// the rows of other ports).
    pub(crate) fn wants_port(&self, idx: PortIndex) -> bool {
        self.q.ports.is_empty() || self.q.ports.contains(&idx)
    }

    /// One (bucket, port) row.
    pub(crate) fn port(&mut self, r: PortBucketRow) {
        let idx = r.port;
        if !self.wants_port(idx) {
            return;
        }
        let e = self.merged.entry(idx).or_insert_with(|| PortAgg {
            packets: 0,
            rows: 0,
            single_sources: 0,
            estimated: false,
            sketch: SourceSketch::default(),
        });
        e.packets += r.packets;
        e.rows += 1;
        e.single_sources = r.sources;
        e.estimated |= r.estimated;
        self.any_estimated |= r.estimated;
        let keep = self.series_top();
        if keep == 0 {
            return;
        }
        let mut row = PortRow::new(idx, r.packets, r.sources);
        row.sources_estimated = r.estimated;
        let rows = self.per_bucket.entry(r.start_ns).or_default();
        rows.push(row);
        // Only the busiest `keep` of a bucket are shown: hold at most twice
        // that, trimming as rows come (the same total order, so the same rows).
        if rows.len() >= keep.saturating_mul(2).max(32) {
            sort_ports(rows);
            rows.truncate(keep);
        }
    }

    /// Whether the report needs port `idx`'s sketches: it is shown and
    /// has more than one row to unite (call after every [`Self::port`]).
    pub(crate) fn needs_sketch(&self, idx: PortIndex) -> bool {
        self.merged.get(&idx).is_some_and(|p| p.rows > 1)
    }

    /// One stored sketch of port `idx`'s sources, united into its count.
    pub(crate) fn port_sketch(&mut self, idx: PortIndex, sketch: &SourceSketch) {
        if let Some(p) = self.merged.get_mut(&idx) {
            p.sketch.merge(sketch);
        }
    }

    fn series_top(&self) -> usize {
        self.q.series_top.unwrap_or(self.q.top)
    }

    /// One source row of the current block: a bucket's, or a day's rollup
    /// (a source may come in several; its rows are added up).
    pub(crate) fn source(&mut self, r: &SourceBucketRow) {
        let c = &r.counters;
        self.per_ip.entry(r.addr).or_default().add(c);
        let fps = &mut self.fps;
        fps.mirai.packets += c.mirai;
        fps.zmap.packets += c.zmap;
        fps.masscan.packets += c.masscan;
        fps.backscatter.packets += c.backscatter;
        self.first = self.first.min(c.first_ts);
        self.last = self.last.max(c.last_ts);
    }

    /// A TCP port a source of the current block sent to (any time); kept
    /// only for sources the rows read so far flag `mirai`.
    pub(crate) fn infected_port(&mut self, addr: Addr, port: u16) {
        if let Some(a) = self.per_ip.get(&addr) {
            if flagged(a.syn, a.mirai) {
                self.infected_ports.entry(addr).or_default().push(port);
            }
        }
    }

    /// Ends a block of sources: adds its sources up into the report.
    pub(crate) fn end_block(&mut self) {
        let fps = &mut self.fps;
        for (addr, a) in self.per_ip.drain() {
            self.sources += 1;
            for c in ALL_CLASSES {
                self.class_sources[c.index()] += (a.class_mask >> c.index() & 1) as u64;
            }
            fps.mirai.sources += flagged(a.syn, a.mirai) as u64;
            fps.zmap.sources += flagged(a.syn, a.zmap) as u64;
            fps.masscan.sources += flagged(a.syn, a.masscan) as u64;
            fps.backscatter.sources += (a.backscatter > 0) as u64;
            if flagged(a.syn, a.mirai) {
                let mut ports = self.infected_ports.remove(&addr).unwrap_or_default();
                ports.sort_unstable();
                ports.dedup();
                self.infected.push(Infected {
                    ip: addr.to_string(),
                    fingerprint: "mirai",
                    packets: a.packets,
                    first_ts: rfc3339(a.first_ts),
                    last_ts: rfc3339(a.last_ts),
                    ports,
                });
            }
            if self.q.top > 0 {
                self.top.push((addr, a));
            }
        }
        self.infected_ports.clear();
        // Hold at most twice the rows shown: the same total order keeps
        // the same rows whenever trimming happens.
        let top = self.q.top;
        if self.top.len() >= top.saturating_mul(2).max(1024) {
            self.top.select_nth_unstable_by(top - 1, busiest_first);
            self.top.truncate(top);
        }
    }

    /// The report.
    pub(crate) fn finish(mut self) -> Summary {
        self.end_block();
        let ReportBuilder {
            q,
            mut summary,
            buckets,
            sources,
            class_sources,
            mut infected,
            mut top,
            fps,
            first,
            last,
            merged,
            mut per_bucket,
            mut any_estimated,
            ..
        } = self;
        let s = &mut summary;
        let mut class_packets = [0u64; CLASS_COUNT];
        for b in &buckets {
            for (acc, v) in class_packets.iter_mut().zip(b.classes) {
                *acc += v;
            }
        }
        s.sources = sources;
        if first <= last {
            s.first_ts = Some(rfc3339(first));
            s.last_ts = Some(rfc3339(last));
        }
        let mut classes = Classes::default();
        for c in ALL_CLASSES {
            classes.0[c.index()] = CountOut {
                packets: class_packets[c.index()],
                sources: class_sources[c.index()],
            };
        }
        s.classes = classes;
        s.fingerprints = fps;
        sort_infected(&mut infected);
        s.infected = infected;
        let n = q.top.min(top.len());
        if n > 0 && n < top.len() {
            top.select_nth_unstable_by(n - 1, busiest_first);
        }
        top.truncate(n);
        top.sort_by(busiest_first);
        s.top_sources = top
            .into_iter()
            .map(|(addr, a)| TopSource {
                ip: addr.to_string(),
                packets: a.packets,
                bytes: a.bytes,
                first_ts: rfc3339(a.first_ts),
                last_ts: rfc3339(a.last_ts),
                classes: class_names(a.class_mask),
                fingerprints: source_flags(a.syn, a.mirai, a.zmap, a.masscan, a.backscatter),
                scanner: "",
            })
            .collect();

        // Ports over the range: exact when one stored row, else the sketch union.
        s.ports = merged
            .into_iter()
            .map(|(idx, p)| {
                let (sources, estimated) = if p.rows == 1 {
                    (p.single_sources, p.estimated)
                } else {
                    (p.sketch.count(), !p.sketch.is_exact())
                };
                any_estimated |= estimated;
                let (proto, port) = port_of(idx);
                PortRow {
                    proto,
                    port,
                    packets: p.packets,
                    sources,
                    sources_estimated: estimated,
                }
            })
            .collect();
        sort_ports(&mut s.ports);
        s.series = buckets
            .iter()
            .map(|b| {
                let mut ports = per_bucket.remove(&b.start_ns).unwrap_or_default();
                sort_ports(&mut ports);
                ports.truncate(q.series_top.unwrap_or(q.top));
                SeriesBucket {
                    start: rfc3339(b.start_ns),
                    packets: b.packets,
                    sources: b.sources,
                    bytes: b.bytes,
                    classes: ClassPackets(b.classes),
                    ports,
                    dropped: 0,
                }
            })
            .collect();
        if any_estimated {
            s.estimated.push(
                "ports[].sources where sources_estimated is true (HyperLogLog, standard error 0.41%)"
                    .into(),
            );
        }
        summary
    }
}

/// Puts the live capture counters of the period into a report: totals,
/// the lossy buckets, and each lossy bucket of the series marked with
/// its drops. Stores no sensor wrote to get none (files have no loss
/// counters).
pub(crate) fn add_capture_loss(summary: &mut Summary, rows: Vec<CaptureLoss>, period_ns: i64) {
    if rows.is_empty() {
        return;
    }
    let mut loss = CaptureLossReport::default();
    let mut dropped_in: std::collections::BTreeMap<i64, u64> = Default::default();
    for r in rows {
        loss.received = loss.received.saturating_add(r.received);
        loss.dropped = loss.dropped.saturating_add(r.dropped);
        loss.if_dropped = loss.if_dropped.saturating_add(r.if_dropped);
        if r.dropped > 0 || r.if_dropped > 0 {
            // The series' period holding the bucket (its tier's).
            let period = r.bucket_start_ns.div_euclid(period_ns.max(1)) * period_ns.max(1);
            *dropped_in.entry(period).or_default() += r.dropped.saturating_add(r.if_dropped);
            loss.lossy_buckets.push(LossyBucket {
                start: rfc3339(r.bucket_start_ns),
                interface: r.interface,
                dropped: r.dropped,
                if_dropped: r.if_dropped,
            });
        }
    }
    // A bucket whose frames were all dropped has no counts, but it is
    // in the series, with its drops, so the gap is not read as silence.
    for b in &mut summary.series {
        if let Some(start) = parse_rfc3339(&b.start) {
            b.dropped = dropped_in.remove(&start).unwrap_or(0);
        }
    }
    if !dropped_in.is_empty() {
        summary
            .series
            .extend(dropped_in.into_iter().map(|(start, dropped)| SeriesBucket {
                start: rfc3339(start),
                packets: 0,
                sources: 0,
                bytes: 0,
                classes: Default::default(),
                ports: Vec::new(),
                dropped,
            }));
        summary
            .series
            .sort_by_key(|b| parse_rfc3339(&b.start).unwrap_or(i64::MIN));
    }
    summary.capture_loss = Some(loss);
}
