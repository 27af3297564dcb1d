//! Detection over the telescope's buckets (issue 20): see a new campaign
//! the hour it starts, tell scanners apart, and say what happened.
//!
//! Owns: the scanner classification ([`classify`]), the robust seasonal
//! baselines ([`baseline`]), the detectors ([`detectors`]) and the runner
//! ([`run`]) that reads a store's buckets, builds each candidate port's
//! features and turns the detectors' hits into alerts ([`Alert`]), one per
//! campaign and bucket; the store merges them into episodes with a
//! cool-down ([`iotscope_store::Store::merge_detections`]).
//!
//! Invariants: a bucket is judged only on the buckets before it, so a
//! replay over history ([`run`] with a period) raises what a live run
//! raised as each bucket closed; research scanners (a published prefix
//! list) are left out of every count the detectors compare, so a research
//! sweep is never an infection campaign; figures that rest on HyperLogLog
//! sketches (more than 8,192 sources on a port in a bucket) are marked
//! `estimated`.

pub mod baseline;
pub mod classify;
pub mod detectors;

use std::collections::BTreeMap;

/// Maps and sets keyed by source hashes and ports use foldhash, seeded at
/// random per map as the telescope's own tables are, instead of SipHash: a
/// spoofed flood puts ten million sources through them, and SipHash was
/// a fifth of the detectors' time on one.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use std::net::IpAddr;

use iotscope_store::{DetectionRecord, Store, StoreError};
use iotscope_telescope::aggregate::SourceCounters;
use iotscope_telescope::sketch::source_hash;
use iotscope_telescope::time::rfc3339;
use iotscope_telescope::{port_of, PortIndex, SourceSketch};
use iotscope_wire::Addr;
use serde::Serialize;

pub use classify::{classify, classify_flags, ResearchScanners, ScannerClass};
pub use detectors::{Detector, Hit, Metric, NewPort, Series, Surge, Window};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A research-scanner list does not parse.
    #[error("{file}: {what}")]
    Research {
        /// The file.
        file: String,
        /// What is wrong, and where.
        what: String,
    },
    /// The settings cannot work (a zero bucket length, a period too long).
    #[error("detection settings: {0}")]
    Settings(String),
}

/// The detectors' parameters (documented in docs/detect.md; `[detect]` in
/// the config). Times are nanoseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// The store's bucket length.
    pub bucket_ns: i64,
    /// History each bucket is compared with (default 7 days).
    pub baseline_ns: i64,
    /// Season length (default 1 day; 0: no seasons).
    pub period_ns: i64,
    /// How far back a source must be absent from a port to count as new on
    /// it (default 1 day).
    pub lookback_ns: i64,
    /// An alert of the same key within this of an episode updates it
    /// (default 6 hours).
    pub cooldown_ns: i64,
    /// Fewest recorded buckets of history before anything is judged.
    pub min_history: usize,
    /// Robust z-score threshold of the surges.
    pub z: f64,
    /// A surge must also be this many times its expected value.
    pub ratio: f64,
    /// Fewest (non-research) sources on a port for a source, onset or
    /// fingerprint surge, and for a packet surge.
    pub min_sources: f64,
    /// Fewest packets for a packet surge.
    pub min_packets: f64,
    /// New port: most sources in any baseline bucket.
    pub new_port_quiet: f64,
    /// New port: fewest sources now.
    pub new_port_min: f64,
    /// Backscatter: a victim counts when it sent at least this many
    /// backscatter packets in the bucket.
    pub backscatter_victim_packets: f64,
    /// Backscatter: fewest such victims in the bucket for an alert (one
    /// victim of a DoS attack is routine for a darknet, and a report's
    /// business; several at once are a campaign).
    pub backscatter_min_victims: f64,
    /// Fewest backscatter packets (of those victims) for an alert.
    pub backscatter_min_packets: f64,
}

const HOUR_NS: i64 = 3_600_000_000_000;

impl Settings {
    /// The defaults for a store of `bucket_ns` buckets.
    pub fn new(bucket_ns: i64) -> Settings {
        let b = bucket_ns.max(1);
        // A day of history before anything is judged, at least 6 buckets.
        let min_history = ((24 * HOUR_NS) / b).clamp(6, 1440);
        Settings {
            bucket_ns,
            // A week, and at least the history needed (long buckets).
            baseline_ns: (7 * 24 * HOUR_NS).max(min_history.saturating_mul(b)),
            // Days as seasons where a day holds at least two buckets.
            period_ns: if 24 * HOUR_NS >= 2 * b {
                24 * HOUR_NS
            } else {
                0
            },
            lookback_ns: (24 * HOUR_NS).max(b),
            cooldown_ns: (6 * HOUR_NS).max(b),
            min_history: min_history as usize,
            z: 6.0,
            ratio: 3.0,
            min_sources: 10.0,
            min_packets: 50.0,
            new_port_quiet: 1.0,
            new_port_min: 8.0,
            backscatter_victim_packets: 200.0,
            backscatter_min_victims: 3.0,
            backscatter_min_packets: 1000.0,
        }
    }

    fn buckets(&self, ns: i64) -> usize {
        (ns / self.bucket_ns.max(1)).max(0) as usize
    }

    fn window(&self) -> Window {
        let period = self.buckets(self.period_ns);
        Window {
            baseline_buckets: self.buckets(self.baseline_ns).max(1),
            period_buckets: if period > 1 { period } else { 0 },
            min_history: self.min_history,
        }
    }

    /// The per-port detectors these settings make.
    pub fn port_detectors(&self) -> Vec<Box<dyn Detector>> {
        let w = self.window();
        let surge = |name, metric, min: f64| -> Box<dyn Detector> {
            Box::new(Surge {
                name,
                metric,
                window: w,
                z: self.z,
                ratio: self.ratio,
                min,
                min_sources: self.min_sources,
            })
        };
        vec![
            surge("surge", Metric::Packets, self.min_packets),
            surge("surge", Metric::Sources, self.min_sources),
            Box::new(NewPort {
                window: w,
                quiet: self.new_port_quiet,
                min: self.new_port_min,
            }),
            surge("coordinated_onset", Metric::NewSources, self.min_sources),
            surge(
                "fingerprint_campaign",
                Metric::MiraiSources,
                self.min_sources,
            ),
            surge(
                "fingerprint_campaign",
                Metric::MasscanSources,
                self.min_sources,
            ),
            surge(
                "fingerprint_campaign",
                Metric::ZmapSources,
                self.min_sources,
            ),
        ]
    }

    /// The darknet-wide detector: a surge of backscatter from several DoS
    /// victims at once (the series counts victims past
    /// `backscatter_victim_packets` only).
    pub fn darknet_detector(&self) -> Box<dyn Detector> {
        Box::new(Surge {
            name: "backscatter",
            metric: Metric::BackscatterPackets,
            window: self.window(),
            z: self.z,
            ratio: self.ratio,
            min: self.backscatter_min_packets,
            min_sources: self.backscatter_min_victims,
        })
    }
}

/// Country and AS of an address, when the operator configured enrichment.
pub trait Enricher {
    /// ISO country code.
    fn country(&self, ip: IpAddr) -> Option<String>;
    /// AS number and organisation.
    fn asn(&self, ip: IpAddr) -> Option<(u32, String)>;
}

/// One example source of an alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Example {
    /// Address.
    pub ip: String,
    /// Its class over the period read.
    pub class: ScannerClass,
    /// Its packets in the bucket (to every port).
    pub packets: u64,
}

/// A count per group (country or AS).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupShare {
    /// ISO country code, or "AS<number> <organisation>"; "" unknown.
    pub group: String,
    /// Sources of the alert's port in it.
    pub sources: u64,
}

/// One alert: a campaign seen in one bucket (the store merges consecutive
/// ones into an episode). This is the JSON `detect list` and the webhook
/// give.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Suppression key: `campaign:PROTO/PORT` (the busiest port of the
    /// campaign) or `backscatter`.
    pub key: String,
    /// infection_campaign (most sources Mirai-like), scan_campaign, or
    /// backscatter (a DoS victim's replies).
    pub kind: &'static str,
    /// critical (an infection on a port new to the darknet), high (an
    /// infection campaign), medium (other campaigns, backscatter).
    pub severity: &'static str,
    /// The bucket, RFC 3339 start and end.
    pub window: (String, String),
    /// Its start, ns since the epoch.
    pub bucket_start_ns: i64,
    /// "tcp", "udp", or "" for backscatter.
    pub proto: String,
    /// The campaign's ports, busiest first (sources overlapping).
    pub ports: Vec<u16>,
    /// What each detector found on the busiest port (or the darknet).
    pub detectors: Vec<Hit>,
    /// The highest score.
    pub score: f64,
    /// Sources on the busiest port in the bucket, research scanners left
    /// out (backscatter: victims).
    pub sources: u64,
    /// Packets to it (backscatter: backscatter packets).
    pub packets: u64,
    /// Sources on it not seen on it in the look-back.
    pub new_sources: u64,
    /// Share of the port's sources in each class (research scanners
    /// included here, so the share says how many were left out).
    pub classes: BTreeMap<&'static str, f64>,
    /// Busiest countries of those sources (with enrichment configured).
    pub top_countries: Vec<GroupShare>,
    /// Busiest AS.
    pub top_as: Vec<GroupShare>,
    /// A few sources, busiest first.
    pub examples: Vec<Example>,
    /// Figures from a HyperLogLog sketch: estimates.
    pub estimated: bool,
    /// The cool-down of the suppression key, seconds.
    pub cooldown_s: i64,
}

impl Alert {
    /// The store's row of this alert.
    pub fn record(&self) -> DetectionRecord {
        DetectionRecord {
            key: self.key.clone(),
            first_bucket_ns: self.bucket_start_ns,
            last_bucket_ns: self.bucket_start_ns,
            kind: self.kind.to_string(),
            severity: self.severity.to_string(),
            proto: self.proto.clone(),
            ports: self
                .ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
            score: self.score,
            peak_score: self.score,
            body: serde_json::to_string(self).expect("alerts serialise"),
            created_at: String::new(),
            updated_at: String::new(),
            notified_at: None,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    /// Buckets judged.
    pub buckets: usize,
    /// Candidate ports read (enough sources in some judged bucket; the most
    /// of any stretch).
    pub ports: usize,
    /// Sources classified, per class (by their class in the last bucket
    /// they were seen in; summed over stretches).
    pub classes: BTreeMap<&'static str, u64>,
    /// The alerts, oldest bucket first.
    #[serde(skip)]
    pub alerts: Vec<Alert>,
}

/// Most slots (buckets between the oldest and newest read) a stretch takes:
/// the judged buckets and their history.
pub const MAX_SLOTS: usize = 600_000;

/// What classification reads of a source's counters in one bucket: sums,
/// so a sliding window can add and take them away.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    packets: u64,
    syn: u64,
    mirai: u64,
    zmap: u64,
    masscan: u64,
    backscatter: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.packets = self.packets.saturating_add(o.packets);
        self.syn = self.syn.saturating_add(o.syn);
        self.mirai = self.mirai.saturating_add(o.mirai);
        self.zmap = self.zmap.saturating_add(o.zmap);
        self.masscan = self.masscan.saturating_add(o.masscan);
        self.backscatter = self.backscatter.saturating_add(o.backscatter);
    }

    fn sub(&mut self, o: &Tally) {
        self.packets = self.packets.saturating_sub(o.packets);
        self.syn = self.syn.saturating_sub(o.syn);
        self.mirai = self.mirai.saturating_sub(o.mirai);
        self.zmap = self.zmap.saturating_sub(o.zmap);
        self.masscan = self.masscan.saturating_sub(o.masscan);
        self.backscatter = self.backscatter.saturating_sub(o.backscatter);
    }

    fn counters(&self) -> SourceCounters {
        SourceCounters {
            packets: self.packets,
            syn: self.syn,
            mirai: self.mirai,
            zmap: self.zmap,
            masscan: self.masscan,
            backscatter: self.backscatter,
            ..Default::default()
        }
    }
}

/// Runs the detectors over the buckets starting in `[since_ns, until_ns)`
/// (all when `None`), each judged on the history before it (read back as
/// far as the baseline and look-back need).
///
/// A campaign's key is its busiest port's, unless one of its ports was in
/// a campaign alerted within the cool-down before (in this run, or in the
/// stored episodes read back over the cool-down): then it keeps that key,
/// so a campaign whose busiest port changes (Mirai's 23, then 2323) stays
/// one episode.
///
/// Errors: [`DetectError::Store`] when the store cannot be read,
/// [`DetectError::Settings`] for a zero bucket length, or a baseline and
/// look-back of more than [`MAX_SLOTS`] buckets.
///
/// The judged buckets are taken in stretches: buckets further apart than
/// the baseline and look-back cannot affect each other, so a store with
/// data in 1970 and 2106 is two small stretches, not 136 years of buckets;
/// a long continuous stretch is cut into pieces of at most [`MAX_JUDGED`]
/// buckets, each reading its own history. The result is the same as one
/// pass over the whole period.
pub fn run<S: Store + ?Sized>(
    store: &S,
    settings: &Settings,
    research: &ResearchScanners,
    enrich: Option<&dyn Enricher>,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
) -> Result<Outcome, DetectError> {
    let bn = settings.bucket_ns;
    if bn <= 0 {
        return Err(DetectError::Settings(
            "the bucket length must be positive".into(),
        ));
    }
    let back = settings.baseline_ns.saturating_add(settings.lookback_ns);
    if back / bn > (MAX_SLOTS - MAX_JUDGED) as i64 {
        return Err(DetectError::Settings(format!(
            "a baseline and look-back of {} buckets of {} s: at most {}; set [detect] baseline and lookback shorter or store longer buckets",
            back / bn,
            bn as f64 / 1e9,
            MAX_SLOTS - MAX_JUDGED
        )));
    }
    // The judged buckets that hold data, cut into stretches.
    let starts = store.port_series(since_ns, until_ns, &[])?.starts;
    let mut out = Outcome::default();
    let mut i = 0;
    while i < starts.len() {
        let first = starts[i];
        let mut j = i + 1;
        while j < starts.len()
            && starts[j] - starts[j - 1] <= back
            && (starts[j] - first) / bn < MAX_JUDGED as i64
        {
            j += 1;
        }
        let part = run_stretch(
            store,
            settings,
            research,
            enrich,
            first,
            starts[j - 1].saturating_add(bn),
        )?;
        out.buckets += part.buckets;
        out.ports = out.ports.max(part.ports);
        for (k, v) in part.classes {
            *out.classes.entry(k).or_default() += v;
        }
        out.alerts.extend(part.alerts);
        i = j;
    }
    Ok(out)
}

/// Most buckets one stretch judges.
pub const MAX_JUDGED: usize = 100_000;

/// [`run`] over the buckets starting in `[since_ns, until_ns)`, both given.
fn run_stretch<S: Store + ?Sized>(
    store: &S,
    settings: &Settings,
    research: &ResearchScanners,
    enrich: Option<&dyn Enricher>,
    since_ns: i64,
    until_ns: i64,
) -> Result<Outcome, DetectError> {
    let (since_ns, until_ns) = (Some(since_ns), Some(until_ns));
    let bn = settings.bucket_ns;
    if bn <= 0 {
        return Err(DetectError::Settings(
            "the bucket length must be positive".into(),
        ));
    }
    // The oldest baseline bucket needs its own look-back (new sources,
    // classes) read too, so a run from `since` sees what a run over the
    // whole store sees.
    let back = settings.baseline_ns.saturating_add(settings.lookback_ns);
    let read_from = since_ns.map(|s| s.saturating_sub(back));
    let activity = store.port_activity(read_from, until_ns)?;
    let mut out = Outcome::default();
    let (Some(first), Some(last)) = (activity.first(), activity.last()) else {
        return Ok(out);
    };
    let origin = first.start_ns.div_euclid(bn) * bn;
    let slots = ((last.start_ns - origin) / bn) as usize + 1;
    if slots > MAX_SLOTS {
        return Err(DetectError::Settings(format!(
            "{slots} buckets between the oldest and newest read; at most {MAX_SLOTS}: give --since"
        )));
    }
    let slot = |start: i64| ((start - origin) / bn) as usize;
    let judged_from = since_ns.map_or(0, |s| {
        if s <= origin {
            0
        } else {
            ((s - origin + bn - 1) / bn) as usize
        }
    });
    let mut recorded = vec![false; slots];
    for b in &activity {
        recorded[slot(b.start_ns)] = true;
    }

    // Candidate ports: enough sources in some judged bucket.
    let min_candidate = settings.min_sources.min(settings.new_port_min).max(1.0) as u64;
    let mut candidates: Vec<PortIndex> = activity
        .iter()
        .filter(|b| slot(b.start_ns) >= judged_from)
        .flat_map(|b| b.ports.iter().filter(|p| p.2 >= min_candidate).map(|p| p.0))
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    out.ports = candidates.len();
    out.buckets = slots.saturating_sub(judged_from);
    let mut sketches: HashMap<PortIndex, Vec<Option<SourceSketch>>> = HashMap::default();
    for (start, port, sk) in store.port_sketches(read_from, until_ns, &candidates)? {
        if start < origin || slot(start) >= slots {
            continue;
        }
        sketches.entry(port).or_insert_with(|| vec![None; slots])[slot(start)] = Some(sk);
    }
    let mut totals: HashMap<PortIndex, Vec<(u64, u64)>> = HashMap::default();
    for b in &activity {
        for p in &b.ports {
            if candidates.binary_search(&p.0).is_ok() {
                totals.entry(p.0).or_insert_with(|| vec![(0, 0); slots])[slot(b.start_ns)] =
                    (p.1, p.2);
            }
        }
    }

    // Sources per bucket, lean (a spoofed flood has a source per packet):
    // (hash, packets, backscatter, SYNs), and apart, for the few records
    // with Mirai, ZMap or masscan SYNs, those counts: the rest of the
    // tallies classification reads (32 bytes a record; a whole tally per
    // record was 72, and 720 MB of fresh pages on a flood).
    // Only sources with a fingerprint or backscatter packet somewhere can be
    // classed other than `unknown` or `research_scanner`; only they are
    // tracked per source over the look-back. Addresses are kept only for
    // sources an alert can name (exact members of candidate ports,
    // fingerprinted sources, backscatter victims).
    let named: HashSet<u64> = sketches
        .values()
        .flatten()
        .flatten()
        .filter_map(|sk| match sk {
            SourceSketch::Exact(v) => Some(v.iter().copied()),
            SourceSketch::Hll(_) => None,
        })
        .flatten()
        .collect();
    let mut known: HashMap<u64, Addr> = HashMap::default();
    let mut research_set: HashSet<u64> = Default::default();
    let mut fingerprinted: HashSet<u64> = Default::default();
    let mut per_bucket: Vec<Vec<(u64, u64, u64, u64)>> = vec![Vec::new(); slots];
    // Per bucket: (record index, [mirai, zmap, masscan]), ascending.
    let mut marks: Vec<Vec<(u32, [u64; 3])>> = vec![Vec::new(); slots];
    let mut everyone = SourceSketch::default();
    let mut pending: Vec<u64> = Vec::new();
    store.each_bucket_source(read_from, until_ns, &mut |start, a, c| {
        if start < origin {
            return;
        }
        let s = slot(start);
        if s >= slots {
            return;
        }
        let h = source_hash(a);
        let marked = c.mirai | c.zmap | c.masscan | c.backscatter != 0;
        if research.lookup(a).is_some() {
            research_set.insert(h);
        }
        if marked {
            fingerprinted.insert(h);
        }
        if marked || named.contains(&h) {
            known.entry(h).or_insert(a);
        }
        if c.mirai | c.zmap | c.masscan != 0 {
            marks[s].push((per_bucket[s].len() as u32, [c.mirai, c.zmap, c.masscan]));
        }
        per_bucket[s].push((h, c.packets, c.backscatter, c.syn));
        pending.push(h);
        if pending.len() >= 4096 {
            everyone.insert_hashes(&mut pending);
        }
    })?;
    everyone.insert_hashes(&mut pending);
    // Each fingerprinted source's class in each bucket, from its tallies
    // over the look-back up to and including that bucket: never from later
    // buckets, so a bucket's figures are what they were when it closed.
    let class_window = settings.buckets(settings.lookback_ns).max(1);
    let mut running: HashMap<u64, Tally> = HashMap::default();
    let mut slot_class: Vec<HashMap<u64, ScannerClass>> = vec![HashMap::default(); slots];
    let mut latest: HashMap<u64, ScannerClass> = HashMap::default();
    // The tally of record `i` of bucket `s`.
    let tally = |s: usize, i: usize| -> Tally {
        let r = per_bucket[s][i];
        let [mirai, zmap, masscan] = marks[s]
            .binary_search_by_key(&(i as u32), |m| m.0)
            .map_or([0; 3], |k| marks[s][k].1);
        Tally {
            packets: r.1,
            syn: r.3,
            mirai,
            zmap,
            masscan,
            backscatter: r.2,
        }
    };
    for s in 0..slots {
        for (i, r) in per_bucket[s].iter().enumerate() {
            if fingerprinted.contains(&r.0) {
                running.entry(r.0).or_default().add(&tally(s, i));
            }
        }
        if s >= class_window {
            for (i, r) in per_bucket[s - class_window].iter().enumerate() {
                if let Some(x) = running.get_mut(&r.0) {
                    x.sub(&tally(s - class_window, i));
                    if x.packets == 0 {
                        running.remove(&r.0);
                    }
                }
            }
        }
        for r in &per_bucket[s] {
            if let Some(t) = running.get(&r.0) {
                let c = classify(known[&r.0], &t.counters(), research);
                slot_class[s].insert(r.0, c);
                latest.insert(r.0, c);
            }
        }
    }
    drop(marks);
    drop(running);
    for c in latest.values() {
        *out.classes.entry(c.name()).or_default() += 1;
    }
    let research_unmarked = research_set
        .iter()
        .filter(|h| !latest.contains_key(h))
        .count() as u64;
    *out.classes
        .entry(ScannerClass::ResearchScanner.name())
        .or_default() += research_unmarked;
    // The rest are `unknown` (from a sketch of every source: exact up to
    // 8,192 sources, estimated past that).
    let unknown = everyone
        .count()
        .saturating_sub(latest.len() as u64 + research_unmarked);
    *out.classes.entry(ScannerClass::Unknown.name()).or_default() += unknown;
    let class_of = |s: usize, h: &u64| match slot_class[s].get(h) {
        Some(&c) => c,
        None if research_set.contains(h) => ScannerClass::ResearchScanner,
        None => ScannerClass::Unknown,
    };
    // Per bucket: a sketch of each class's members, built once and only for
    // buckets with a port past the exact limit (whose members cannot be
    // listed, so its class counts are estimated from sketches).
    let class_sketches: Vec<std::cell::OnceCell<Vec<SourceSketch>>> =
        (0..slots).map(|_| std::cell::OnceCell::new()).collect();
    let class_sketch = |s: usize| -> &Vec<SourceSketch> {
        class_sketches[s].get_or_init(|| {
            let mut members: Vec<Vec<u64>> = vec![Vec::new(); ScannerClass::ALL.len()];
            for r in &per_bucket[s] {
                members[class_of(s, &r.0).index()].push(r.0);
            }
            members
                .into_iter()
                .map(|mut m| {
                    let mut sk = SourceSketch::default();
                    sk.insert_hashes(&mut m);
                    sk
                })
                .collect()
        })
    };

    // The darknet's backscatter series and its detector.
    // (victims, their backscatter packets) per bucket, of the victims past
    // the per-victim threshold.
    let heavy: Vec<(f64, f64)> = (0..slots)
        .map(|s| {
            if !recorded[s] {
                return (f64::NAN, f64::NAN);
            }
            per_bucket[s]
                .iter()
                .filter(|r| {
                    r.2 as f64 >= settings.backscatter_victim_packets
                        && class_of(s, &r.0) == ScannerClass::Backscatter
                })
                .fold((0.0, 0.0), |(n, p), r| (n + 1.0, p + r.2 as f64))
        })
        .collect();
    let dark = Series {
        backscatter: heavy.iter().map(|h| h.1).collect(),
        sources: heavy.iter().map(|h| h.0).collect(),
        ..Default::default()
    };

    let lookback = settings.buckets(settings.lookback_ns).max(1);
    let port_detectors = settings.port_detectors();
    // Per judged bucket: (port, its features there, its hits).
    let mut hits: BTreeMap<usize, Vec<(PortIndex, PortFeatures, Vec<Hit>)>> = BTreeMap::new();
    for &port in &candidates {
        let sk = sketches.remove(&port).unwrap_or_else(|| vec![None; slots]);
        let tot = totals.remove(&port).unwrap_or_else(|| vec![(0, 0); slots]);
        let feats: Vec<PortFeatures> = (0..slots)
            .map(|s| {
                features(sk[s].as_ref(), tot[s], &|h| class_of(s, h), &|| {
                    class_sketch(s)
                })
            })
            .collect();
        let new = new_sources(&sk, &class_of, lookback);
        let val = |s: usize, f: &dyn Fn(&PortFeatures) -> f64| {
            if recorded[s] {
                f(&feats[s])
            } else {
                f64::NAN
            }
        };
        let series = Series {
            packets: (0..slots).map(|s| val(s, &|f| f.packets as f64)).collect(),
            sources: (0..slots)
                .map(|s| val(s, &|f| f.scanning() as f64))
                .collect(),
            new_sources: (0..slots)
                .map(|s| if recorded[s] { new[s] } else { f64::NAN })
                .collect(),
            fingerprints: [
                ScannerClass::MiraiLike,
                ScannerClass::Masscan,
                ScannerClass::Zmap,
            ]
            .map(|c| {
                (0..slots)
                    .map(|s| val(s, &|f| f.classes[c.index()]))
                    .collect()
            }),
            backscatter: Vec::new(),
        };
        for t in judged_from..slots {
            if !recorded[t] {
                continue;
            }
            let found: Vec<Hit> = port_detectors
                .iter()
                .filter_map(|d| d.evaluate(&series, t))
                .collect();
            // Packets alone raise nothing: one heavy host makes a packet
            // surge, a campaign is many hosts. A packet surge rides along
            // with a detector that counts sources.
            if found.iter().any(|h| h.metric != Metric::Packets) {
                let mut f = feats[t].clone();
                f.new_sources = new[t];
                f.sketch = sk[t].clone();
                hits.entry(t).or_default().push((port, f, found));
            }
        }
    }

    let darknet = settings.darknet_detector();
    let cooldown_s = settings.cooldown_ns / 1_000_000_000;
    // (key, proto, ports, last and first bucket start) of campaigns alerted
    // lately.
    let mut recent: Vec<(String, String, Vec<u16>, i64, i64)> = store
        .detections(
            Some((origin + judged_from as i64 * bn).saturating_sub(settings.cooldown_ns)),
            None,
            10_000,
        )?
        .into_iter()
        .filter(|r| r.key.starts_with("campaign:"))
        .map(|r| {
            let ports = r.ports.split(',').filter_map(|p| p.parse().ok()).collect();
            (r.key, r.proto, ports, r.last_bucket_ns, r.first_bucket_ns)
        })
        .collect();
    for t in judged_from..slots {
        let start = origin + t as i64 * bn;
        let window = (rfc3339(start), rfc3339(start + bn));
        if let Some(hit) = recorded[t].then(|| darknet.evaluate(&dark, t)).flatten() {
            let mut victims: Vec<(u64, u64)> = per_bucket[t]
                .iter()
                .filter(|r| {
                    r.2 as f64 >= settings.backscatter_victim_packets
                        && class_of(t, &r.0) == ScannerClass::Backscatter
                })
                .map(|r| (r.0, r.2))
                .collect();
            victims.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let members: Vec<u64> = victims.iter().map(|v| v.0).collect();
            out.alerts.push(Alert {
                key: "backscatter".into(),
                kind: "backscatter",
                severity: "medium",
                window: window.clone(),
                bucket_start_ns: start,
                proto: String::new(),
                ports: Vec::new(),
                score: hit.score,
                sources: victims.len() as u64,
                packets: hit.observed as u64,
                new_sources: 0,
                classes: BTreeMap::from([("backscatter", 1.0)]),
                top_countries: groups(&members, &known, enrich, true),
                top_as: groups(&members, &known, enrich, false),
                examples: examples(&members, &per_bucket[t], &known, &|h| class_of(t, h)),
                estimated: false,
                detectors: vec![hit],
                cooldown_s,
            });
        }
        let Some(mut found) = hits.remove(&t) else {
            continue;
        };
        // Ports whose sources overlap are one campaign (Mirai's 23 and
        // 2323): union-find over the bucket's ports with hits.
        found.sort_by(|a, b| b.1.scanning().cmp(&a.1.scanning()).then(a.0.cmp(&b.0)));
        let n = found.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn root(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        for i in 0..n {
            for j in i + 1..n {
                let same_proto = port_of(found[i].0).0 == port_of(found[j].0).0;
                if same_proto && overlap(&found[i].1, &found[j].1, &|h| class_of(t, h)) {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[b.max(a)] = a.min(b);
                }
            }
        }
        // Keys taken in this bucket: two campaigns never share one.
        let mut taken: Vec<String> = Vec::new();
        for g in 0..n {
            if root(&mut parent, g) != g {
                continue;
            }
            let members: Vec<usize> = (0..n).filter(|&i| root(&mut parent, i) == g).collect();
            let (port, f, _) = &found[g];
            let (proto, number) = port_of(*port);
            let mut detectors: Vec<Hit> = found[g].2.clone();
            // The other ports' hits are summarised by their ports.
            let ports: Vec<u16> = members.iter().map(|&i| port_of(found[i].0).1).collect();
            detectors.sort_by(|a, b| b.score.total_cmp(&a.score));
            let score = detectors.first().map_or(0.0, |h| h.score);
            let total = f.sources.max(1) as f64;
            let classes: BTreeMap<&'static str, f64> = ScannerClass::ALL
                .iter()
                .map(|c| {
                    (
                        c.name(),
                        (f.classes[c.index()] / total * 1000.0).round() / 1000.0,
                    )
                })
                .collect();
            let infection = f.classes[ScannerClass::MiraiLike.index()] * 2.0 >= f.scanning() as f64;
            let new_port = members
                .iter()
                .any(|&i| found[i].2.iter().any(|h| h.detector == "new_port"));
            let member_hashes: Vec<u64> = match &f.sketch {
                Some(SourceSketch::Exact(v)) => v
                    .iter()
                    .copied()
                    .filter(|h| class_of(t, h) != ScannerClass::ResearchScanner)
                    .collect(),
                _ => Vec::new(),
            };
            // An episode that began before this bucket and reaches within
            // the cool-down of it, sharing a port: its key (the busiest
            // group, served first, claims it).
            let key = recent
                .iter()
                .filter(|r| {
                    r.1 == proto
                        && r.4 < start
                        && r.3 >= start.saturating_sub(settings.cooldown_ns)
                        && r.2.iter().any(|p| ports.contains(p))
                        && !taken.contains(&r.0)
                })
                .max_by_key(|r| r.3)
                .map_or_else(|| format!("campaign:{proto}/{number}"), |r| r.0.clone());
            taken.push(key.clone());
            recent.push((key.clone(), proto.to_string(), ports.clone(), start, start));
            out.alerts.push(Alert {
                key,
                kind: if infection {
                    "infection_campaign"
                } else {
                    "scan_campaign"
                },
                severity: match (infection, new_port) {
                    (true, true) => "critical",
                    (true, false) => "high",
                    _ => "medium",
                },
                window: window.clone(),
                bucket_start_ns: start,
                proto: proto.to_string(),
                ports,
                detectors,
                score,
                sources: f.scanning(),
                packets: f.packets,
                new_sources: f.new_sources.max(0.0).round() as u64,
                classes,
                top_countries: groups(&member_hashes, &known, enrich, true),
                top_as: groups(&member_hashes, &known, enrich, false),
                examples: examples(&member_hashes, &per_bucket[t], &known, &|h| class_of(t, h)),
                estimated: f.estimated,
                cooldown_s,
            });
        }
    }
    out.alerts.sort_by(|a, b| {
        a.bucket_start_ns
            .cmp(&b.bucket_start_ns)
            .then(a.key.cmp(&b.key))
    });
    Ok(out)
}

/// One port's figures in one bucket.
#[derive(Clone, Debug, Default)]
struct PortFeatures {
    packets: u64,
    /// Every source, research scanners included.
    sources: u64,
    /// Sources per [`ScannerClass`] (estimates past the exact limit).
    classes: [f64; 6],
    new_sources: f64,
    estimated: bool,
    sketch: Option<SourceSketch>,
}

impl PortFeatures {
    /// Sources that are not research scanners.
    fn scanning(&self) -> u64 {
        (self.sources as f64 - self.classes[ScannerClass::ResearchScanner.index()])
            .max(0.0)
            .round() as u64
    }
}

/// The figures of a port in a bucket from its sketch and stored totals.
fn features<'a>(
    sk: Option<&SourceSketch>,
    (packets, sources): (u64, u64),
    class_of: &dyn Fn(&u64) -> ScannerClass,
    class_sketches: &dyn Fn() -> &'a Vec<SourceSketch>,
) -> PortFeatures {
    let mut f = PortFeatures {
        packets,
        sources,
        ..Default::default()
    };
    match sk {
        Some(SourceSketch::Exact(v)) => {
            for h in v {
                f.classes[class_of(h).index()] += 1.0;
            }
            f.sources = v.len() as u64;
        }
        Some(hll) => {
            // |P ∩ C| = |P| + |C| − |P ∪ C|, each from a sketch.
            f.estimated = true;
            let p = hll.count() as f64;
            for (c, cs) in ScannerClass::ALL.iter().zip(class_sketches()) {
                let n = cs.count() as f64;
                if n == 0.0 {
                    continue;
                }
                let mut union = hll.clone();
                union.merge(cs);
                f.classes[c.index()] = (p + n - union.count() as f64).clamp(0.0, n.min(p));
            }
        }
        None => {}
    }
    f
}

/// Per bucket: sources of the port (research scanners left out) not seen on
/// it in the `lookback` buckets before. Exact with exact sketches (a
/// sliding count of the window's members); past the exact limit,
/// |window ∪ now| − |window| from the sketches.
fn new_sources(
    sk: &[Option<SourceSketch>],
    class_of: &dyn Fn(usize, &u64) -> ScannerClass,
    lookback: usize,
) -> Vec<f64> {
    let mut window: HashMap<u64, u32> = HashMap::default();
    let mut hll_in_window = 0usize;
    let mut out = vec![0.0; sk.len()];
    let adjust =
        |window: &mut HashMap<u64, u32>, s: &Option<SourceSketch>, add: bool, hll: &mut usize| {
            match s {
                Some(SourceSketch::Exact(v)) => {
                    for h in v {
                        if add {
                            *window.entry(*h).or_default() += 1;
                        } else if let Some(c) = window.get_mut(h) {
                            *c -= 1;
                            if *c == 0 {
                                window.remove(h);
                            }
                        }
                    }
                }
                Some(_) => {
                    if add {
                        *hll += 1
                    } else {
                        *hll -= 1
                    }
                }
                None => {}
            }
        };
    for t in 0..sk.len() {
        out[t] = match &sk[t] {
            Some(SourceSketch::Exact(v)) if hll_in_window == 0 => v
                .iter()
                .filter(|h| {
                    !window.contains_key(h) && class_of(t, h) != ScannerClass::ResearchScanner
                })
                .count() as f64,
            Some(now) => {
                let mut union = SourceSketch::default();
                for s in sk[t.saturating_sub(lookback)..t].iter().flatten() {
                    union.merge(s);
                }
                let before = union.count() as f64;
                union.merge(now);
                (union.count() as f64 - before).max(0.0)
            }
            None => 0.0,
        };
        adjust(&mut window, &sk[t], true, &mut hll_in_window);
        if t >= lookback {
            adjust(&mut window, &sk[t - lookback], false, &mut hll_in_window);
        }
    }
    out
}

/// Whether two ports' sources in a bucket overlap enough to be one
/// campaign: at least 30% of the smaller set in both.
fn overlap(a: &PortFeatures, b: &PortFeatures, class_of: &dyn Fn(&u64) -> ScannerClass) -> bool {
    let (Some(x), Some(y)) = (&a.sketch, &b.sketch) else {
        return false;
    };
    // Exact sets: research scanners (which hit every port) left out.
    if let (SourceSketch::Exact(p), SourceSketch::Exact(q)) = (x, y) {
        let keep = |v: &Vec<u64>| -> Vec<u64> {
            v.iter()
                .copied()
                .filter(|h| class_of(h) != ScannerClass::ResearchScanner)
                .collect()
        };
        let (p, q) = (keep(p), keep(q));
        let smaller = p.len().min(q.len()) as f64;
        let common = p.iter().filter(|h| q.binary_search(h).is_ok()).count() as f64;
        return smaller > 0.0 && common >= 0.3 * smaller;
    }
    let smaller = x.count().min(y.count()) as f64;
    if smaller == 0.0 {
        return false;
    }
    let mut u = x.clone();
    u.merge(y);
    let common = x.count() as f64 + y.count() as f64 - u.count() as f64;
    common >= 0.3 * smaller
}

/// Up to five sources, busiest in the bucket first.
fn examples(
    members: &[u64],
    bucket: &[(u64, u64, u64, u64)],
    known: &HashMap<u64, Addr>,
    class_of: &dyn Fn(&u64) -> ScannerClass,
) -> Vec<Example> {
    let packets: HashMap<u64, u64> = bucket.iter().map(|r| (r.0, r.1)).collect();
    let mut rows: Vec<(u64, u64)> = members
        .iter()
        .map(|h| (*h, packets.get(h).copied().unwrap_or(0)))
        .collect();
    rows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rows.iter()
        .filter_map(|(h, p)| {
            known.get(h).map(|a| Example {
                ip: a.to_ip().to_string(),
                class: class_of(h),
                packets: *p,
            })
        })
        .take(5)
        .collect()
}

/// The five busiest countries (or AS) of the members.
fn groups(
    members: &[u64],
    known: &HashMap<u64, Addr>,
    enrich: Option<&dyn Enricher>,
    country: bool,
) -> Vec<GroupShare> {
    let Some(e) = enrich else {
        return Vec::new();
    };
    let mut count: HashMap<String, u64> = HashMap::default();
    for h in members {
        if let Some(a) = known.get(h) {
            let ip = a.to_ip();
            let g = if country {
                e.country(ip).unwrap_or_default()
            } else {
                e.asn(ip)
                    .map_or_else(String::new, |(n, o)| format!("AS{n} {o}"))
            };
            *count.entry(g).or_default() += 1;
        }
    }
    let mut rows: Vec<GroupShare> = count
        .into_iter()
        .map(|(group, sources)| GroupShare { group, sources })
        .collect();
    rows.sort_by(|a, b| b.sources.cmp(&a.sources).then(a.group.cmp(&b.group)));
    rows.truncate(5);
    rows
}

/// A stored episode as `detect list --format json`, `/api/detections` and
/// the webhook give it: the store's columns (times also in RFC 3339) and,
/// under `latest`, the latest bucket's [`Alert`] as stored.
pub fn episode_json(r: &DetectionRecord) -> serde_json::Value {
    serde_json::json!({
        "key": r.key,
        "first_bucket": rfc3339(r.first_bucket_ns),
        "last_bucket": rfc3339(r.last_bucket_ns),
        "first_bucket_ns": r.first_bucket_ns,
        "last_bucket_ns": r.last_bucket_ns,
        "kind": r.kind,
        "severity": r.severity,
        "proto": r.proto,
        "ports": r.ports,
        "score": r.score,
        "peak_score": r.peak_score,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "notified_at": r.notified_at,
        "latest": serde_json::from_str::<serde_json::Value>(&r.body)
            .unwrap_or(serde_json::Value::Null),
    })
}
