//! The telescope's accumulator: one pass over frames, exact counts.
//!
//! Owns: totals, classes, per-port and per-bucket packets and unique
//! sources, per-source state for fingerprints and infected hosts.
//!
//! Invariants: every count is exact for any arrival order (see
//! [`crate::presence`]); per packet the work is one decode, one source
//! lookup, one (port, source) lookup and a few array updates; memory grows
//! with distinct sources and (port, source) pairs, never with packets.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use iotscope_wire::{
    decode, fingerprint, Addr, Class, Decoded, LinkType, Malformed, Packet, CLASS_COUNT,
};

use crate::flatmap::{prefetch, FlatMap};

use crate::prefix::Prefix;
use crate::presence::{Overflow, Presence};
use crate::sketch::{source_hash, SourceSketch};

/// Index of a (protocol, port) pair: TCP ports 0..65536, UDP 65536..131072.
pub type PortIndex = u32;
/// Number of port slots.
pub const PORT_SLOTS: usize = 2 << 16;

/// Turns a port index back into its protocol name and port.
pub fn port_of(index: PortIndex) -> (&'static str, u16) {
    (if index >> 16 == 0 { "tcp" } else { "udp" }, index as u16)
}

/// Parses "2323/tcp" or "53/udp" (or "tcp/2323") into a port index.
pub fn parse_port(text: &str) -> Option<PortIndex> {
    let (a, b) = text.split_once('/')?;
    let (num, proto) = if a.chars().all(|c| c.is_ascii_digit()) {
        (a, b)
    } else {
        (b, a)
    };
    let port: u16 = num.parse().ok()?;
    match proto.to_ascii_lowercase().as_str() {
        "tcp" => Some(port as u32),
        "udp" => Some((1 << 16) | port as u32),
        _ => None,
    }
}

/// Settings of one analysis.
#[derive(Clone, Debug)]
pub struct TelescopeConfig {
    /// Only packets to these prefixes are analysed; empty means all.
    pub darknets: Vec<Prefix>,
    /// Bucket length in nanoseconds; buckets start at multiples of it since
    /// the epoch.
    pub bucket_ns: i64,
    /// Also keep what the store needs: per-(bucket, source) counters and a
    /// sketch of sources per (bucket, port). Costs a row per source and
    /// bucket for sources seen in more than one bucket, and a sketch
    /// insert per new (bucket, port, source).
    pub detail: bool,
    /// This accumulator's share of the sources: (index, count). Each shard
    /// reads every frame but accounts only sources that hash to it (frames
    /// without a source, and those outside the darknet, go to shard 0), so
    /// shards never overlap and [`Telescope::merge`] adds them exactly.
    pub shard: (u32, u32),
    /// Frames stamped outside this window are counted everywhere but in
    /// time buckets, and reported as `implausible_time`.
    pub plausible: PlausibleTime,
}

/// The capture times a bucket may hold: `[from_ns, until_ns)`, nanoseconds
/// since 1970-01-01 UTC.
///
/// A sensor without a clock stamps 1970, a wrapped 32-bit clock 2106; one
/// such frame beside real traffic would stretch the series over a century
/// (71 million one-minute buckets). Such frames are still counted in the
/// totals, classes, ports and sources (they are real packets); only their
/// time is not believed. [`PlausibleTime::ANY`] believes every stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlausibleTime {
    /// First plausible time, ns.
    pub from_ns: i64,
    /// First implausible time after the window, ns.
    pub until_ns: i64,
}

impl PlausibleTime {
    /// Every stamp is plausible (the library's default).
    pub const ANY: PlausibleTime = PlausibleTime {
        from_ns: i64::MIN,
        until_ns: i64::MAX,
    };

    /// Start of the command line's default window: 1990-01-01T00:00:00Z,
    /// before any network telescope or capture format in use.
    pub const DEFAULT_FROM_NS: i64 = 631_152_000_000_000_000;

    /// How far past the reading machine's clock a stamp stays plausible:
    /// one day, for sensors whose clocks run ahead.
    pub const FUTURE_SLACK_NS: i64 = 86_400_000_000_000;

    /// The command line's default window given the time now: from
    /// [`Self::DEFAULT_FROM_NS`] to one day after `now_ns`.
    pub fn until_tomorrow(now_ns: i64) -> PlausibleTime {
        PlausibleTime {
            from_ns: Self::DEFAULT_FROM_NS,
            until_ns: now_ns.saturating_add(Self::FUTURE_SLACK_NS),
        }
    }

    /// True if a frame stamped `ts_ns` may be put in a time bucket.
    #[inline(always)]
    pub fn contains(&self, ts_ns: i64) -> bool {
        ts_ns >= self.from_ns && ts_ns < self.until_ns
    }
}

impl Default for PlausibleTime {
    fn default() -> Self {
        PlausibleTime::ANY
    }
}

/// [`BucketStats::number`] of the bucket that holds frames stamped outside
/// [`TelescopeConfig::plausible`]; [`Telescope::buckets`] leaves it out.
pub const IMPLAUSIBLE_BUCKET: i64 = i64::MIN;

impl TelescopeConfig {
    /// The shard that accounts a frame: the one its source hashes to, or
    /// shard 0 for frames with no source in the darknet.
    #[inline]
    pub fn shard_for(&self, decoded: &Decoded) -> u32 {
        match decoded {
            Decoded::Ip(p)
                if self.darknets.is_empty() || self.darknets.iter().any(|d| d.contains(p.dst)) =>
            {
                shard_of(p.src, self.shard.1)
            }
            _ => 0,
        }
    }
}

impl Default for TelescopeConfig {
    fn default() -> Self {
        TelescopeConfig {
            darknets: Vec::new(),
            bucket_ns: 3_600_000_000_000,
            detail: false,
            shard: (0, 1),
            plausible: PlausibleTime::ANY,
        }
    }
}

/// One source's counters: over a run ([`SourceStats`]) or within one
/// bucket ([`Telescope::bucket_sources`], for the store, which adds them up
/// again over any period with [`SourceCounters::add`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceCounters {
    /// Packets from this source.
    pub packets: u64,
    /// Captured bytes from this source.
    pub bytes: u64,
    /// First capture time, ns.
    pub first_ts: i64,
    /// Last capture time, ns.
    pub last_ts: i64,
    /// Bit per [`Class`] seen from this source.
    pub class_mask: u16,
    /// TCP SYNs sent.
    pub syn: u64,
    /// SYNs matching the Mirai rule.
    pub mirai: u64,
    /// SYNs matching the ZMap rule.
    pub zmap: u64,
    /// SYNs matching the masscan rule.
    pub masscan: u64,
    /// Backscatter packets.
    pub backscatter: u64,
}

impl SourceCounters {
    /// Counts one packet of this source: its time, size, class and
    /// fingerprint bits ([`fingerprint::matches`]).
    #[inline(always)]
    fn record(&mut self, ts_ns: i64, bytes: u64, class: Class, fp: u8) {
        if self.packets == 0 {
            self.first_ts = ts_ns;
            self.last_ts = ts_ns;
        }
        self.packets += 1;
        self.bytes += bytes;
        self.first_ts = self.first_ts.min(ts_ns);
        self.last_ts = self.last_ts.max(ts_ns);
        self.class_mask |= 1 << class.index();
        // Most packets are SYNs or carry no fingerprint: one branch for both.
        if fp != 0 || class == Class::TcpSyn {
            self.syn += (class == Class::TcpSyn) as u64;
            self.mirai += (fp & fingerprint::MIRAI != 0) as u64;
            self.zmap += (fp & fingerprint::ZMAP != 0) as u64;
            self.masscan += (fp & fingerprint::MASSCAN != 0) as u64;
            self.backscatter += (fp & fingerprint::BACKSCATTER != 0) as u64;
        }
    }

    /// Adds `other`, the same source's counters over other packets: counts
    /// summed, times widened, classes joined.
    pub fn add(&mut self, other: &SourceCounters) {
        if other.packets == 0 {
            return;
        }
        if self.packets == 0 {
            self.first_ts = other.first_ts;
            self.last_ts = other.last_ts;
        }
        // Saturating: stored counters may come from a damaged store, and a
        // real count never nears 2^64.
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.first_ts = self.first_ts.min(other.first_ts);
        self.last_ts = self.last_ts.max(other.last_ts);
        self.class_mask |= other.class_mask;
        self.syn = self.syn.saturating_add(other.syn);
        self.mirai = self.mirai.saturating_add(other.mirai);
        self.zmap = self.zmap.saturating_add(other.zmap);
        self.masscan = self.masscan.saturating_add(other.masscan);
        self.backscatter = self.backscatter.saturating_add(other.backscatter);
    }
}

/// Per-source state over a run: its counters (read through `Deref`, as
/// `stats.packets`) and what exact distinct counting needs.
#[derive(Clone, Debug, Default)]
pub struct SourceStats {
    counters: SourceCounters,
    presence: Presence,
    /// The first destination ports of this source (port index + 1; 0 is
    /// free) with their bucket presence. Two cover Mirai's 23 and 2323.
    port_slots: [(u32, Presence); PORT_SLOTS_PER_SOURCE],
    /// Detail mode: the bucket index of the source's first packet, and
    /// 1 + the index of its latest row in `Telescope::detail_rows`, or 0
    /// while every packet of the source fell in that first bucket (its run
    /// counters are then its only bucket's: no row at all, which is what
    /// keeps a spoofed flood's per-bucket detail free).
    home: u32,
    detail_at: u32,
}

impl std::ops::Deref for SourceStats {
    type Target = SourceCounters;
    fn deref(&self) -> &SourceCounters {
        &self.counters
    }
}

const PORT_SLOTS_PER_SOURCE: usize = 2;

/// Rule for flagging a source with a SYN fingerprint: at least 3 matching
/// SYNs and at least 90% of its SYNs matching.
pub fn flagged(syn: u64, matching: u64) -> bool {
    matching >= 3 && matching * 10 >= syn * 9
}

/// Packets and unique sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// Unique source addresses.
    pub sources: u64,
}

/// One time bucket.
#[derive(Clone, Debug, Default)]
pub struct BucketStats {
    /// Bucket number: start = number * bucket length.
    pub number: i64,
    /// Packets and unique sources in the bucket.
    pub total: Count,
    /// Captured bytes.
    pub bytes: u64,
    /// Packets per class.
    pub classes: [u64; CLASS_COUNT],
    /// Per-port packets and unique sources, valid after `finish`.
    pub port_totals: HashMap<PortIndex, Count, RandomState>,
    /// Detail mode: sketches of sources per port, valid after `finish`.
    pub port_sketches: HashMap<PortIndex, SourceSketch, RandomState>,
    /// Detail mode: hashes not yet in a port's sketch (see
    /// [`BucketStats::add_port_source`]).
    pub(crate) pending_hashes: HashMap<PortIndex, Vec<u64>, RandomState>,
    /// Malformed frames and frames outside the darknet in this bucket.
    pub malformed: u64,
    /// Frames to addresses outside the darknet.
    pub outside: u64,
}

impl BucketStats {
    /// Adds a source (by [`source_hash`]) to a port's sketch. A large exact
    /// sketch is a sorted vector, and inserting one by one moved half of it
    /// each time (a flood's 8,192 sources on a port: 268 MB of copying per
    /// bucket and port); past 256 members hashes wait in a buffer and go in
    /// 4,096 at a time, sorted.
    #[inline]
    fn add_port_source(&mut self, port: PortIndex, h: u64) {
        let sketch = self.port_sketches.entry(port).or_default();
        match sketch {
            SourceSketch::Exact(v) if v.len() >= 256 => {
                let pending = self.pending_hashes.entry(port).or_default();
                pending.push(h);
                if pending.len() >= 4096 {
                    sketch.insert_hashes(pending);
                }
            }
            _ => sketch.insert_hash(h),
        }
    }

    /// Moves every buffered hash into its port's sketch.
    fn settle_port_sources(&mut self) {
        for (port, mut pending) in self.pending_hashes.drain() {
            self.port_sketches
                .entry(port)
                .or_default()
                .insert_hashes(&mut pending);
        }
    }
}

/// Port index of a TCP or UDP packet's destination.
#[inline(always)]
fn port_index(p: &Packet) -> PortIndex {
    if p.protocol == iotscope_wire::proto::TCP {
        p.dst_port as u32
    } else {
        (1 << 16) | p.dst_port as u32
    }
}

/// Key of a (source, port) pair.
#[inline(always)]
fn pair_key(id: u32, port: PortIndex) -> u64 {
    ((id as u64) << 17) | port as u64
}

/// Packets decoded but not yet accounted.
const BATCH: usize = 32;

#[derive(Clone, Copy)]
struct Pending {
    ts_ns: i64,
    len: u32,
    decoded: Decoded,
    /// Source id once resolved; `u32::MAX` for packets outside the darknet.
    id: u32,
    /// Bucket index and relative bucket number, once resolved.
    bucket: (u32, u32),
}

/// Counts of one destination port.
#[derive(Clone, Copy, Debug, Default)]
struct PortCell {
    /// Over the run.
    total: Count,
    /// In the current bucket (not yet in the map).
    current: Count,
}

/// `Pending::id` of a frame outside the darknet.
const OUTSIDE: u32 = u32::MAX;
/// `Pending::id` of a frame with no source (non-IP, malformed).
const NO_SOURCE: u32 = u32::MAX - 2;

/// Which of `n` shards a source belongs to.
#[inline(always)]
pub fn shard_of(addr: Addr, n: u32) -> u32 {
    let folded = match addr {
        Addr::V4(a) => a as u64,
        Addr::V6(a) => (a as u64) ^ ((a >> 64) as u64),
    };
    (((folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) * n as u64) >> 32) as u32
}

/// Key of a (bucket index, port) pair.
#[inline(always)]
fn bucket_port_key(b: usize, port: PortIndex) -> u64 {
    ((b as u64) << 17) | port as u64
}

/// The accumulator. Feed it frames with [`Telescope::ingest`], then
/// [`Telescope::flush`] before reading results.
pub struct Telescope {
    cfg: TelescopeConfig,
    v4: FlatMap<u32>,
    pending: Vec<Pending>,
    v6: HashMap<u128, u32, RandomState>,
    pub(crate) addrs: Vec<Addr>,
    pub(crate) sources: Vec<SourceStats>,
    /// Per port: run totals and the counts of the current bucket.
    ports: Vec<PortCell>,
    /// Bucket index whose per-port counts live in `ports[].current`.
    current_bucket: Option<usize>,
    /// Ports with a non-zero `current` count.
    dirty_ports: Vec<PortIndex>,
    /// (source, port, bucket) triples of sources past their port slots,
    /// partitioned by source id; sorted and de-duplicated by `compact_tail`.
    tail: Vec<Vec<u128>>,
    tail_len: usize,
    tail_limit: usize,
    /// Whether `finish` has run since the last packet.
    finished: bool,
    /// Set by `merge`: presence state is no longer meaningful.
    sealed: bool,
    /// Per-port totals (slots and tail), valid after `finish`.
    port_totals: Vec<Count>,
    /// Per (bucket, port): packets, and unique sources among ports kept in
    /// source slots (the tail's are added by `finish`).
    bucket_ports: FlatMap<Count>,
    overflow_sources: Overflow,
    overflow_slots: Overflow,
    pub(crate) buckets: Vec<BucketStats>,
    /// Detail mode: (bucket index, source id, counters) of sources seen in
    /// more than one bucket; a (bucket, source) may have several rows
    /// until `finish` sorts and merges them.
    detail_rows: Vec<(u32, u32, SourceCounters)>,
    /// Rows past which `detail_rows` is compacted (merged) while counting,
    /// so a source hopping between two buckets packet after packet (a
    /// clock gone back and forth) costs two rows, not a row a packet.
    detail_limit: usize,
    /// After `finish`, per bucket index: where its rows start in
    /// `detail_rows` (one more entry than buckets).
    detail_offsets: Vec<usize>,
    /// After `finish`: ids of the sources seen in one bucket only, grouped
    /// by that bucket, and where each bucket's start.
    single_ids: Vec<u32>,
    single_offsets: Vec<usize>,
    bucket_index: HashMap<i64, usize, RandomState>,
    /// Bucket number and index of the bucket the last packet fell in.
    current: Option<(i64, usize)>,
    pub(crate) totals: Totals,
}

/// Whole-run counters.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Frames analysed (inside the darknet, or all without one).
    pub packets: u64,
    /// Captured bytes of analysed frames.
    pub bytes: u64,
    /// Frames to destinations outside `--darknet`.
    pub outside: u64,
    /// Frames whose headers are cut short or impossible.
    pub malformed: u64,
    /// Malformed frames by reason.
    pub malformed_reasons: HashMap<&'static str, u64>,
    /// Packets per class.
    pub classes: [u64; CLASS_COUNT],
    /// Packets matching each per-packet fingerprint: mirai, zmap, masscan, backscatter.
    pub fingerprint_packets: [u64; 4],
    /// Earliest and latest plausible capture time of analysed frames, ns
    /// (frames stamped outside [`TelescopeConfig::plausible`] are left out).
    pub first_ts: Option<i64>,
    /// Latest capture time.
    pub last_ts: Option<i64>,
    /// Frames of any kind (analysed, malformed, outside the darknet) stamped
    /// outside [`TelescopeConfig::plausible`]: counted, but in no bucket.
    pub implausible_time: u64,
}

impl Totals {
    /// Widens `first_ts`..`last_ts` to a frame stamped `ts_ns`, if plausible.
    #[inline(always)]
    fn saw_time(&mut self, ts_ns: i64, plausible: &PlausibleTime) {
        if plausible.contains(ts_ns) {
            self.first_ts = Some(self.first_ts.map_or(ts_ns, |f| f.min(ts_ns)));
            self.last_ts = Some(self.last_ts.map_or(ts_ns, |l| l.max(ts_ns)));
        }
    }
}

impl Telescope {
    /// A fresh accumulator.
    pub fn new(cfg: TelescopeConfig) -> Self {
        assert!(cfg.bucket_ns > 0, "bucket length must be positive");
        Telescope {
            cfg,
            v4: FlatMap::default(),
            pending: Vec::with_capacity(BATCH),
            v6: HashMap::default(),
            addrs: Vec::new(),
            sources: Vec::new(),
            ports: vec![PortCell::default(); PORT_SLOTS],
            current_bucket: None,
            dirty_ports: Vec::new(),
            tail: vec![Vec::new(); TAIL_PARTS],
            tail_len: 0,
            tail_limit: 4 << 20,
            finished: true,
            sealed: false,
            port_totals: Vec::new(),
            bucket_ports: FlatMap::default(),
            overflow_sources: Overflow::default(),
            overflow_slots: Overflow::default(),
            buckets: Vec::new(),
            detail_rows: Vec::new(),
            detail_limit: 1 << 20,
            detail_offsets: Vec::new(),
            single_ids: Vec::new(),
            single_offsets: Vec::new(),
            bucket_index: HashMap::default(),
            current: None,
            totals: Totals::default(),
        }
    }

    fn assert_flushed(&self) {
        assert!(
            self.finished,
            "Telescope::finish must be called before reading results"
        );
    }

    /// The configuration in use.
    pub fn config(&self) -> &TelescopeConfig {
        &self.cfg
    }

    /// Whole-run counters so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Time buckets so far, in order of first appearance, without the
    /// frames stamped outside the plausible window (see [`Self::implausible`]).
    pub fn buckets(&self) -> impl Iterator<Item = &BucketStats> {
        self.assert_flushed();
        self.buckets
            .iter()
            .filter(|b| b.number != IMPLAUSIBLE_BUCKET)
    }

    /// What the frames stamped outside [`TelescopeConfig::plausible`] add
    /// up to, as a bucket numbered [`IMPLAUSIBLE_BUCKET`], if there were any.
    pub fn implausible(&self) -> Option<&BucketStats> {
        self.assert_flushed();
        self.buckets.iter().find(|b| b.number == IMPLAUSIBLE_BUCKET)
    }

    /// Source addresses by id, parallel to [`Telescope::source_stats`].
    pub fn source_addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// Per-source state by id.
    pub fn source_stats(&self) -> &[SourceStats] {
        self.assert_flushed();
        &self.sources
    }

    /// Detail mode: each source of bucket `b` (one of [`Self::buckets`] or
    /// [`Self::implausible`]) with its counters within that bucket, once
    /// per source, in no particular order. Empty without
    /// [`TelescopeConfig::detail`].
    pub fn bucket_sources<'a>(
        &'a self,
        b: &BucketStats,
    ) -> impl Iterator<Item = (u32, &'a SourceCounters)> + 'a {
        self.assert_flushed();
        let (singles, rows) = match self.bucket_index.get(&b.number) {
            Some(&i) if self.cfg.detail => (
                &self.single_ids[self.single_offsets[i]..self.single_offsets[i + 1]],
                &self.detail_rows[self.detail_offsets[i]..self.detail_offsets[i + 1]],
            ),
            _ => (&[][..], &[][..]),
        };
        singles
            .iter()
            .map(|&id| (id, &self.sources[id as usize].counters))
            .chain(rows.iter().map(|r| (r.1, &r.2)))
    }

    /// Calls `f(port, source id)` for every distinct (port, source) pair.
    pub fn for_each_port_source(&self, mut f: impl FnMut(PortIndex, u32)) {
        for (id, s) in self.sources.iter().enumerate() {
            for &(tag, _) in &s.port_slots {
                if tag != 0 {
                    f(tag - 1, id as u32);
                }
            }
        }
        self.assert_flushed();
        for part in &self.tail {
            let mut last = u64::MAX;
            for &t in part {
                let key = (t >> 32) as u64;
                if key != last {
                    f((key & 0x1ffff) as u32, (key >> 17) as u32);
                    last = key;
                }
            }
        }
    }

    /// Calls `f(id, ports)` once per source that sent to any port, in
    /// source-id order, with its destination ports ([`PortIndex`],
    /// ascending, distinct): the pairs of [`Self::for_each_port_source`]
    /// grouped by source, without collecting them first (a spoofed flood
    /// has as many sources as packets). Call after [`Self::finish`].
    pub fn for_each_source_ports(&self, mut f: impl FnMut(u32, &[PortIndex])) {
        self.assert_flushed();
        // Each tail part is sorted by (source, port): one cursor per part
        // walks it alongside the sources.
        let mut cursors = vec![0usize; TAIL_PARTS];
        let mut ports: Vec<PortIndex> = Vec::new();
        for (id, s) in self.sources.iter().enumerate() {
            ports.clear();
            ports.extend(s.port_slots.iter().filter(|p| p.0 != 0).map(|p| p.0 - 1));
            let part = &self.tail[id & (TAIL_PARTS - 1)];
            let at = &mut cursors[id & (TAIL_PARTS - 1)];
            while let Some(&t) = part.get(*at) {
                let key = (t >> 32) as u64;
                if (key >> 17) as usize != id {
                    break;
                }
                ports.push((key & 0x1ffff) as PortIndex);
                *at += 1;
            }
            if !ports.is_empty() {
                ports.sort_unstable();
                ports.dedup();
                f(id as u32, &ports);
            }
        }
    }

    #[inline]
    /// The bucket of a frame: its index in `buckets`, and the same index
    /// as the 32-bit number presence state keys on.
    ///
    /// Presence keys on the index (order of first appearance), not on the
    /// bucket number: it only needs one distinct number per bucket, and a
    /// number relative to the first bucket overflowed 32 bits (two frames
    /// 30 days apart with 1 ms buckets were taken for one bucket, losing a
    /// source). Captures run in time order, so indices grow with time and
    /// presence answers from its window as before.
    fn bucket_for(&mut self, ts_ns: i64) -> (usize, u32) {
        let number = if self.cfg.plausible.contains(ts_ns) {
            ts_ns.div_euclid(self.cfg.bucket_ns)
        } else {
            self.totals.implausible_time += 1;
            IMPLAUSIBLE_BUCKET
        };
        if let Some((n, idx)) = self.current {
            if n == number {
                return (idx, idx as u32);
            }
        }
        let idx = match self.bucket_index.get(&number) {
            Some(&i) => i,
            None => {
                self.buckets.push(BucketStats {
                    number,
                    ..Default::default()
                });
                self.bucket_index.insert(number, self.buckets.len() - 1);
                self.buckets.len() - 1
            }
        };
        self.current = Some((number, idx));
        (idx, idx as u32)
    }

    #[inline]
    fn source_id(&mut self, addr: Addr) -> u32 {
        let next = self.addrs.len() as u32;
        let id = match addr {
            Addr::V4(a) => {
                let (v, inserted) = self.v4.entry(a as u64);
                if inserted {
                    *v = next;
                }
                *v
            }
            Addr::V6(a) => *self.v6.entry(a).or_insert(next),
        };
        if id == next {
            self.addrs.push(addr);
            self.sources.push(SourceStats::default());
        }
        id
    }

    /// Accounts one captured frame. Frames are decoded at once and
    /// accounted in batches; call [`Telescope::flush`] before reading results.
    #[inline]
    pub fn ingest(&mut self, ts_ns: i64, link: LinkType, frame: &[u8]) {
        let decoded = decode(link, frame);
        if self.cfg.shard.1 > 1 && self.cfg.shard_for(&decoded) != self.cfg.shard.0 {
            return;
        }
        self.ingest_decoded(ts_ns, frame.len() as u32, decoded);
    }

    /// Accounts a frame already decoded (by a reader thread) whose captured
    /// length is `len`. The caller routes frames to shards with
    /// [`TelescopeConfig::shard_for`].
    #[inline]
    pub fn ingest_decoded(&mut self, ts_ns: i64, len: u32, decoded: Decoded) {
        self.finished = false;
        assert!(!self.sealed, "a merged Telescope accepts no more frames");
        self.pending.push(Pending {
            ts_ns,
            len,
            decoded,
            id: NO_SOURCE,
            bucket: (0, 0),
        });
        if self.pending.len() == BATCH {
            self.flush();
        }
    }

    /// Accounts every frame still waiting in the current batch.
    ///
    /// Three passes over a batch of [`BATCH`] packets: prefetch the source
    /// table lines, resolve source ids and prefetch their counters, then
    /// account each packet, by which time its lines are in cache.
    pub fn flush(&mut self) {
        let n = self.pending.len();
        for i in 0..n {
            if let Decoded::Ip(Packet {
                src: Addr::V4(a), ..
            }) = self.pending[i].decoded
            {
                self.v4.prefetch(a as u64);
            }
        }
        for i in 0..n {
            if let Decoded::Ip(p) = self.pending[i].decoded {
                if self.cfg.darknets.is_empty()
                    || self.cfg.darknets.iter().any(|d| d.contains(p.dst))
                {
                    let id = self.source_id(p.src);
                    let (b, rel) = self.bucket_for(self.pending[i].ts_ns);
                    self.pending[i].id = id;
                    self.pending[i].bucket = (b as u32, rel);
                    // A source's counters span two cache lines.
                    let at = self.sources.as_ptr().wrapping_add(id as usize);
                    prefetch(at);
                    prefetch((at as *const u8).wrapping_add(64));
                    if p.has_ports {
                        let port = port_index(&p);
                        prefetch(self.ports.as_ptr().wrapping_add(port as usize));
                    }
                } else {
                    self.pending[i].id = OUTSIDE;
                }
            }
        }
        for i in 0..n {
            let Pending {
                ts_ns,
                len,
                decoded,
                id,
                bucket,
            } = self.pending[i];
            self.account(ts_ns, len, decoded, id, bucket);
        }
        self.pending.clear();
        if self.detail_rows.len() >= self.detail_limit {
            self.compact_detail();
        }
    }

    #[inline(always)]
    fn account(&mut self, ts_ns: i64, len: u32, decoded: Decoded, id: u32, (b, rel): (u32, u32)) {
        let b = b as usize;
        let packet = match decoded {
            Decoded::Ip(p) => {
                if id == OUTSIDE {
                    self.totals.outside += 1;
                    let (b, _) = self.bucket_for(ts_ns);
                    self.buckets[b].outside += 1;
                    return;
                }
                Some(p)
            }
            Decoded::NonIp => None,
            Decoded::Malformed(why) => {
                self.count_malformed(ts_ns, len as usize, why);
                return;
            }
        };
        let bytes = len as u64;
        let (b, rel) = if packet.is_some() {
            (b, rel)
        } else {
            self.bucket_for(ts_ns)
        };
        let t = &mut self.totals;
        t.packets += 1;
        t.bytes += bytes;
        t.saw_time(ts_ns, &self.cfg.plausible);
        let class = packet.map_or(Class::NonIp, |p| p.class);
        t.classes[class.index()] += 1;
        let bucket = &mut self.buckets[b];
        bucket.total.packets += 1;
        bucket.bytes += bytes;
        bucket.classes[class.index()] += 1;
        let Some(p) = packet else { return };

        let fp = fingerprint::matches(&p);
        if fp != 0 {
            let bits = [
                fingerprint::MIRAI,
                fingerprint::ZMAP,
                fingerprint::MASSCAN,
                fingerprint::BACKSCATTER,
            ];
            for (count, bit) in self.totals.fingerprint_packets.iter_mut().zip(bits) {
                *count += (fp & bit != 0) as u64;
            }
        }
        let s = &mut self.sources[id as usize];
        if self.cfg.detail {
            // Per-bucket counters without a lookup per packet: a source's
            // packets nearly all fall in its latest row's bucket.
            let rows = &mut self.detail_rows;
            let here = b as u32;
            if s.counters.packets == 0 {
                s.home = here;
            } else if s.detail_at == 0 {
                if s.home != here {
                    // It leaves its first bucket: all it sent so far was there.
                    rows.push((s.home, id, s.counters.clone()));
                    rows.push((here, id, SourceCounters::default()));
                    s.detail_at = rows.len() as u32;
                }
            } else if rows[s.detail_at as usize - 1].0 != here {
                rows.push((here, id, SourceCounters::default()));
                s.detail_at = rows.len() as u32;
            }
            if s.detail_at != 0 {
                rows[s.detail_at as usize - 1]
                    .2
                    .record(ts_ns, bytes, class, fp);
            }
        }
        s.counters.record(ts_ns, bytes, class, fp);
        let bucket = &mut self.buckets[b];
        if s.presence.mark(rel, id as u64, &mut self.overflow_sources) {
            bucket.total.sources += 1;
        }

        // Only TCP and UDP first fragments carry ports.
        if p.has_ports {
            let port = port_index(&p);
            let key = pair_key(id, port);
            // A source's first ports live beside its counters, already in
            // cache; only sources with more ports pay for the shared map.
            let slots = &mut self.sources[id as usize].port_slots;
            let tag = port + 1;
            let (is_new, fresh_in_bucket) =
                if let Some(slot) = slots.iter_mut().find(|s| s.0 == tag) {
                    (false, slot.1.mark(rel, key, &mut self.overflow_slots))
                } else if let Some(slot) = slots.iter_mut().find(|s| s.0 == 0) {
                    slot.0 = tag;
                    (true, slot.1.mark(rel, key, &mut self.overflow_slots))
                } else {
                    // The long tail (backscatter to random ports, wide scans):
                    // appended and counted by sorting in `finish`, which streams
                    // through memory instead of missing the cache per packet.
                    let part = &mut self.tail[(id as usize) & (TAIL_PARTS - 1)];
                    part.push(((key as u128) << 32) | b as u128);
                    self.tail_len += 1;
                    if self.tail_len >= self.tail_limit {
                        self.compact_tail();
                    }
                    (false, false)
                };
            if self.current_bucket != Some(b) {
                self.switch_bucket(b);
            }
            let cell = &mut self.ports[port as usize];
            cell.total.packets += 1;
            cell.total.sources += is_new as u64;
            // Captures run in time order, so nearly every packet counts into
            // the current bucket's cells, beside the run totals; a late
            // packet of an earlier bucket goes to the (bucket, port) map.
            let per = if self.current_bucket == Some(b) {
                if cell.current.packets == 0 {
                    self.dirty_ports.push(port);
                }
                &mut cell.current
            } else {
                self.bucket_ports.entry(bucket_port_key(b, port)).0
            };
            per.packets += 1;
            if fresh_in_bucket {
                per.sources += 1;
                if self.cfg.detail {
                    self.buckets[b].add_port_source(port, source_hash(p.src));
                }
            }
        }
    }

    /// Makes `b` the current bucket if it is newer than the current one,
    /// moving the current bucket's per-port counts to the map.
    #[cold]
    fn switch_bucket(&mut self, b: usize) {
        if let Some(cur) = self.current_bucket {
            if self.buckets[cur].number > self.buckets[b].number {
                return;
            }
        }
        self.settle_current_bucket();
        self.current_bucket = Some(b);
    }

    /// Moves the current bucket's per-port counts into the map.
    fn settle_current_bucket(&mut self) {
        if let Some(cur) = self.current_bucket {
            for port in self.dirty_ports.drain(..) {
                let cell = &mut self.ports[port as usize];
                let (e, _) = self.bucket_ports.entry(bucket_port_key(cur, port));
                e.packets += cell.current.packets;
                e.sources += cell.current.sources;
                cell.current = Count::default();
            }
        }
    }

    #[cold]
    fn count_malformed(&mut self, ts_ns: i64, len: usize, why: Malformed) {
        let (b, _) = self.bucket_for(ts_ns);
        let t = &mut self.totals;
        t.packets += 1;
        t.bytes += len as u64;
        t.malformed += 1;
        *t.malformed_reasons.entry(why.reason()).or_default() += 1;
        t.saw_time(ts_ns, &self.cfg.plausible);
        let bucket = &mut self.buckets[b];
        bucket.total.packets += 1;
        bucket.bytes += len as u64;
        bucket.malformed += 1;
    }

    /// Per-port packets and unique sources, indexed by [`PortIndex`].
    pub fn ports(&self) -> &[Count] {
        self.assert_flushed();
        &self.port_totals
    }

    /// Adds the counts of `other`, a shard of the same configuration and
    /// input over disjoint sources (see [`TelescopeConfig::shard`]). The
    /// result is for reading: it accepts no more frames. Call `finish` after.
    pub fn merge(&mut self, mut other: Telescope) {
        other.flush();
        self.flush();
        self.sealed = true;
        self.finished = false;
        let id_offset = self.addrs.len() as u32;
        // The address-to-id maps serve only frames to come, and a merged
        // telescope takes none: they are dropped, not extended (on a flood
        // of ten million sources, filling them again took seconds and
        // hundreds of megabytes).
        self.v4 = FlatMap::default();
        self.v6 = HashMap::default();
        self.addrs.append(&mut other.addrs);
        let first_new = self.sources.len();
        let rows_offset = self.detail_rows.len() as u32;
        self.sources.append(&mut other.sources);
        self.settle_current_bucket();
        other.settle_current_bucket();
        self.current_bucket = None;
        for (mine, theirs) in self.ports.iter_mut().zip(&other.ports) {
            mine.total.packets += theirs.total.packets;
            mine.total.sources += theirs.total.sources;
        }
        let mut bucket_map = Vec::with_capacity(other.buckets.len());
        for ob in other.buckets {
            let idx = match self.bucket_index.get(&ob.number) {
                Some(&i) => i,
                None => {
                    self.buckets.push(BucketStats {
                        number: ob.number,
                        ..Default::default()
                    });
                    self.bucket_index.insert(ob.number, self.buckets.len() - 1);
                    self.buckets.len() - 1
                }
            };
            bucket_map.push(idx);
            let sb = &mut self.buckets[idx];
            sb.total.packets += ob.total.packets;
            sb.total.sources += ob.total.sources;
            sb.bytes += ob.bytes;
            sb.malformed += ob.malformed;
            sb.outside += ob.outside;
            for (a, b) in sb.classes.iter_mut().zip(ob.classes) {
                *a += b;
            }
            for (port, sketch) in ob.port_sketches {
                sb.port_sketches.entry(port).or_default().merge(&sketch);
            }
            for (port, mut pending) in ob.pending_hashes {
                sb.port_sketches
                    .entry(port)
                    .or_default()
                    .insert_hashes(&mut pending);
            }
        }
        for s in &mut self.sources[first_new..] {
            s.home = bucket_map[s.home as usize] as u32;
            if s.detail_at != 0 {
                s.detail_at += rows_offset;
            }
        }
        self.detail_rows.extend(
            other
                .detail_rows
                .into_iter()
                .map(|(b, id, c)| (bucket_map[b as usize] as u32, id + id_offset, c)),
        );
        for (key, c) in other.bucket_ports.iter() {
            let b = bucket_map[(key >> 17) as usize];
            let (e, _) = self
                .bucket_ports
                .entry(bucket_port_key(b, (key & 0x1ffff) as PortIndex));
            e.packets += c.packets;
            e.sources += c.sources;
        }
        for part in other.tail {
            for t in part {
                let key = (t >> 32) as u64;
                let id = (key >> 17) as u32 + id_offset;
                let b = bucket_map[(t & 0xffff_ffff) as usize];
                let new_key = pair_key(id, (key & 0x1ffff) as PortIndex);
                self.tail[(id as usize) & (TAIL_PARTS - 1)]
                    .push(((new_key as u128) << 32) | b as u128);
                self.tail_len += 1;
            }
        }
        let (t, o) = (&mut self.totals, other.totals);
        t.packets += o.packets;
        t.bytes += o.bytes;
        t.outside += o.outside;
        t.malformed += o.malformed;
        t.implausible_time += o.implausible_time;
        for (k, v) in o.malformed_reasons {
            *t.malformed_reasons.entry(k).or_default() += v;
        }
        for (a, b) in t.classes.iter_mut().zip(o.classes) {
            *a += b;
        }
        for (a, b) in t.fingerprint_packets.iter_mut().zip(o.fingerprint_packets) {
            *a += b;
        }
        t.first_ts = match (t.first_ts, o.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        t.last_ts = match (t.last_ts, o.last_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    #[inline(never)]
    fn compact_tail(&mut self) {
        self.tail_len = 0;
        // An LSD radix sort was tried and was slower: most bytes are equal
        // but counting all sixteen costs more than pdqsort saves.
        for part in &mut self.tail {
            part.sort_unstable();
            part.dedup();
            self.tail_len += part.len();
        }
        // Keep compaction amortised: at least half the room stays free.
        while self.tail_len * 2 > self.tail_limit {
            self.tail_limit *= 2;
        }
    }

    /// Accounts what is pending and settles the per-port counts; call it
    /// before reading results (more frames may follow, then call it again).
    pub fn finish(&mut self) {
        self.flush();
        self.compact_tail();
        self.settle_current_bucket();
        self.port_totals = self.ports.iter().map(|c| c.total).collect();
        for bucket in &mut self.buckets {
            bucket.port_totals.clear();
        }
        for (key, count) in self.bucket_ports.iter() {
            self.buckets[(key >> 17) as usize]
                .port_totals
                .insert((key & 0x1ffff) as PortIndex, *count);
        }
        for part in &self.tail {
            let mut last_key = u64::MAX;
            // A part is sorted by source first: its hash is computed once
            // per source, not once per (port, bucket) of it.
            let (mut hashed, mut hash) = (u32::MAX, 0);
            for &t in part {
                let key = (t >> 32) as u64;
                let b = (t & 0xffff_ffff) as usize;
                let port = (key & 0x1ffff) as PortIndex;
                if key != last_key {
                    self.port_totals[port as usize].sources += 1;
                    last_key = key;
                }
                let bucket = &mut self.buckets[b];
                if let Some(c) = bucket.port_totals.get_mut(&port) {
                    c.sources += 1;
                }
                if self.cfg.detail {
                    let id = (key >> 17) as u32;
                    if id != hashed {
                        (hashed, hash) = (id, source_hash(self.addrs[id as usize]));
                    }
                    bucket.add_port_source(port, hash);
                }
            }
        }
        if self.cfg.detail {
            for bucket in &mut self.buckets {
                bucket.settle_port_sources();
            }
            self.settle_detail();
        }
        self.finished = true;
    }

    /// Detail mode: merges the rows of each (bucket, source) into one and
    /// groups rows and single-bucket sources by bucket, for
    /// [`Self::bucket_sources`]. Counting more frames after stays correct:
    /// each source's `detail_at` points at one of its rows, and a frame of
    /// another bucket starts a new row.
    fn settle_detail(&mut self) {
        self.compact_detail();
        let rows = &self.detail_rows;
        let n = self.buckets.len();
        self.detail_offsets = vec![0; n + 1];
        for (i, r) in rows.iter().enumerate() {
            self.detail_offsets[r.0 as usize + 1] = i + 1;
        }
        for i in 1..=n {
            self.detail_offsets[i] = self.detail_offsets[i].max(self.detail_offsets[i - 1]);
        }
        self.settle_singles();
    }

    /// Merges the rows of each (bucket, source) into one, sorted by
    /// (bucket, source), and points each source at one of its rows.
    fn compact_detail(&mut self) {
        let rows = &mut self.detail_rows;
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        let mut kept = 0;
        for i in 0..rows.len() {
            if kept > 0 && (rows[kept - 1].0, rows[kept - 1].1) == (rows[i].0, rows[i].1) {
                let c = rows[i].2.clone();
                rows[kept - 1].2.add(&c);
            } else {
                rows.swap(kept, i);
                kept += 1;
            }
        }
        rows.truncate(kept);
        for (i, r) in rows.iter().enumerate() {
            self.sources[r.1 as usize].detail_at = i as u32 + 1;
        }
        // Amortised: at least half the room stays free.
        while self.detail_rows.len() * 2 > self.detail_limit {
            self.detail_limit *= 2;
        }
    }

    /// Groups the sources seen in one bucket only by that bucket.
    fn settle_singles(&mut self) {
        let n = self.buckets.len();
        // Sources of one bucket, grouped by it (a counting sort).
        self.single_offsets = vec![0; n + 1];
        for s in &self.sources {
            if s.detail_at == 0 && s.counters.packets > 0 {
                self.single_offsets[s.home as usize + 1] += 1;
            }
        }
        for i in 1..=n {
            self.single_offsets[i] += self.single_offsets[i - 1];
        }
        let mut at = self.single_offsets.clone();
        self.single_ids = vec![0; self.single_offsets[n]];
        for (id, s) in self.sources.iter().enumerate() {
            if s.detail_at == 0 && s.counters.packets > 0 {
                let slot = &mut at[s.home as usize];
                self.single_ids[*slot] = id as u32;
                *slot += 1;
            }
        }
    }
}

/// Partitions of the tail; a power of two.
const TAIL_PARTS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap as StdMap, HashSet};

    /// A raw IPv4 TCP SYN from `src` to port `dport`.
    fn syn(src: u32, dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src.to_be_bytes());
        p.extend_from_slice(&[198, 18, 0, 1]);
        p.extend_from_slice(&[0x9c, 0x40]);
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 0, 0x50, 0x02, 4, 0, 0, 0, 0, 0]);
        p
    }

    #[test]
    fn bucket_sources_are_exact_over_more_buckets_than_32_bits_hold() {
        // 1 ms buckets, 30 days apart: 2.6e9 buckets between the first
        // frame and the others, past any 32-bit bucket number.
        let t0 = 1_700_000_000 * 1_000_000_000i64;
        let later = t0 + 30 * 86_400 * 1_000_000_000;
        let mut t = Telescope::new(TelescopeConfig {
            bucket_ns: 1_000_000,
            ..Default::default()
        });
        for (ts, src, port) in [
            (t0, 7, 23),
            (later, 9, 23),
            (later + 1_000_000_000, 9, 2323),
            (i64::MAX - 5, 9, 23),
            (-5_000_000_000, 9, 23),
        ] {
            t.ingest(ts, LinkType::RawIp, &syn(0x0a00_0000 | src, port));
        }
        t.finish();
        let mut got: Vec<(i64, Count)> = t.buckets().map(|b| (b.number, b.total)).collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(got.len(), 5);
        for (_, c) in got {
            assert_eq!(
                c,
                Count {
                    packets: 1,
                    sources: 1
                }
            );
        }
    }

    #[test]
    fn implausible_times_are_counted_in_no_bucket() {
        let min = 60_000_000_000i64;
        let real = 1_700_000_000 * 1_000_000_000i64;
        let cfg = TelescopeConfig {
            bucket_ns: min,
            plausible: PlausibleTime::until_tomorrow(real),
            ..Default::default()
        };
        // Source 1 in 1970, 2023 and 2106; source 2 only in 2106; source 3
        // only in 2023. Ports: 23 for all, and source 1 many more (the tail).
        let frames: Vec<(i64, u32, u16)> = vec![
            (1_000_000_000, 1, 23),
            (real, 1, 23),
            (real + 1, 3, 23),
            (0xFFFF_FFFF * 1_000_000_000, 2, 23),
            (0xFFFF_FFFF * 1_000_000_000, 1, 23),
        ]
        .into_iter()
        .chain((0..10).map(|p| (5_000_000_000, 1, 1000 + p)))
        .collect();
        let mut whole = Telescope::new(cfg.clone());
        let mut shards = shards_of(&cfg, 2);
        for &(ts, src, port) in &frames {
            whole.ingest(ts, LinkType::RawIp, &syn(0x0a00_0000 | src, port));
            for s in &mut shards {
                s.ingest(ts, LinkType::RawIp, &syn(0x0a00_0000 | src, port));
            }
        }
        let mut merged = shards.remove(0);
        merged.merge(shards.remove(0));
        for t in [&mut whole, &mut merged] {
            t.finish();
            assert_eq!(t.totals().packets, 15);
            assert_eq!(t.totals().implausible_time, 13);
            assert_eq!(
                t.ports()[23],
                Count {
                    packets: 5,
                    sources: 3
                }
            );
            assert_eq!(
                t.ports()[1005],
                Count {
                    packets: 1,
                    sources: 1
                }
            );
            let buckets: Vec<_> = t.buckets().collect();
            assert_eq!(buckets.len(), 1);
            assert_eq!(buckets[0].number, real / min);
            assert_eq!(
                buckets[0].total,
                Count {
                    packets: 2,
                    sources: 2
                }
            );
            assert_eq!(
                buckets[0].port_totals[&23],
                Count {
                    packets: 2,
                    sources: 2
                }
            );
            let off = t.implausible().unwrap();
            assert_eq!(
                off.total,
                Count {
                    packets: 13,
                    sources: 2
                }
            );
        }
        assert_eq!(whole.summary(10), merged.summary(10));
        assert_eq!(whole.summary(10).series.len(), 1);
    }

    /// `n` shards of `cfg`, each accounting its share of the sources.
    fn shards_of(cfg: &TelescopeConfig, n: u32) -> Vec<Telescope> {
        (0..n)
            .map(|i| {
                Telescope::new(TelescopeConfig {
                    shard: (i, n),
                    ..cfg.clone()
                })
            })
            .collect()
    }

    /// Marsaglia's xorshift64 from `seed`: test data without a dependency.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Detail mode: every (bucket, source)'s counters, exactly, whatever
    /// the order of frames, with more frames after a `finish`, and over
    /// merged shards; sources of one bucket have no row of their own.
    #[test]
    fn per_bucket_source_counters_are_exact_in_any_order_and_over_shards() {
        let mut next = xorshift(777);
        // 300 sources: the first 100 in one bucket each, the rest anywhere
        // over 12 buckets in random order.
        let events: Vec<(i64, u32, u16)> = (0..6000)
            .map(|i| {
                let r = next();
                let src = (r % 300) as u32;
                let bucket = if src < 100 {
                    src % 12
                } else {
                    (r >> 20) as u32 % 12
                };
                let ts = bucket as i64 * 60_000_000_000 + (r >> 40) as i64 % 60_000_000_000;
                (
                    ts,
                    0x0a00_0000 | (src << 8) | (i % 7),
                    ((r >> 9) % 50) as u16,
                )
            })
            .collect();
        let mut want: StdMap<(i64, u32), (u64, i64, i64)> = StdMap::new();
        for &(ts, src, _) in &events {
            let e = want
                .entry((ts / 60_000_000_000, src))
                .or_insert((0, i64::MAX, i64::MIN));
            e.0 += 1;
            e.1 = e.1.min(ts);
            e.2 = e.2.max(ts);
        }
        let cfg = TelescopeConfig {
            bucket_ns: 60_000_000_000,
            detail: true,
            ..Default::default()
        };
        let got = |t: &Telescope| {
            let mut got = StdMap::new();
            for b in t.buckets() {
                for (id, c) in t.bucket_sources(b) {
                    let Addr::V4(a) = t.source_addrs()[id as usize] else {
                        panic!("v4")
                    };
                    let old = got.insert((b.number, a), (c.packets, c.first_ts, c.last_ts));
                    assert!(old.is_none(), "one row per bucket and source");
                }
            }
            got
        };
        let mut one = Telescope::new(cfg.clone());
        let (early, late) = events.split_at(2500);
        for &(ts, src, port) in early {
            one.ingest(ts, LinkType::RawIp, &syn(src, port));
        }
        one.finish();
        for &(ts, src, port) in late {
            one.ingest(ts, LinkType::RawIp, &syn(src, port));
        }
        one.finish();
        assert_eq!(got(&one), want);
        assert!(one.detail_rows.len() < want.len());
        let mut shards = shards_of(&cfg, 2);
        for &(ts, src, port) in &events {
            for s in &mut shards {
                s.ingest(ts, LinkType::RawIp, &syn(src, port));
            }
        }
        let mut merged = shards.remove(0);
        merged.merge(shards.remove(0));
        merged.finish();
        assert_eq!(got(&merged), want);

        // A source hopping between two buckets frame after frame: its rows
        // are merged as they pile up, not one kept per frame.
        let mut hop = Telescope::new(cfg);
        hop.detail_limit = 64;
        for i in 0..10_000i64 {
            hop.ingest(
                (i % 2) * 60_000_000_000 + i,
                LinkType::RawIp,
                &syn(0x0a00_0001, 23),
            );
            assert!(
                hop.detail_rows.len() <= 128,
                "{} rows",
                hop.detail_rows.len()
            );
        }
        hop.finish();
        let counts: Vec<u64> = hop
            .buckets()
            .map(|b| hop.bucket_sources(b).map(|(_, c)| c.packets).sum())
            .collect();
        assert_eq!(counts, vec![5000, 5000]);
    }

    #[test]
    fn port_and_bucket_sources_are_exact_through_tail_compaction_and_disorder() {
        // Few sources, many ports each (past the inline slots), buckets out
        // of order and more than the presence window apart.
        let mut next = xorshift(12345);
        let events: Vec<(i64, u32, u16)> = (0..20_000)
            .map(|_| {
                let r = next();
                (
                    (r % 90) as i64 * 1_000_000_000 * 60,
                    0x0a00_0000 | ((r >> 8) as u32 % 40),
                    ((r >> 20) % 300) as u16,
                )
            })
            .collect();
        let cfg = TelescopeConfig {
            bucket_ns: 60_000_000_000,
            ..Default::default()
        };
        let mut small = Telescope::new(cfg.clone());
        small.tail_limit = 16;
        let mut big = Telescope::new(cfg);
        for &(ts, src, port) in &events {
            small.ingest(ts, LinkType::RawIp, &syn(src, port));
            big.ingest(ts, LinkType::RawIp, &syn(src, port));
        }
        small.finish();
        big.finish();
        let mut port_src: StdMap<u16, HashSet<u32>> = StdMap::new();
        let mut bucket_port_src: StdMap<(i64, u16), HashSet<u32>> = StdMap::new();
        for &(ts, src, port) in &events {
            port_src.entry(port).or_default().insert(src);
            bucket_port_src
                .entry((ts / 60_000_000_000, port))
                .or_default()
                .insert(src);
        }
        for t in [&small, &big] {
            for (&port, set) in &port_src {
                assert_eq!(
                    t.ports()[port as usize].sources,
                    set.len() as u64,
                    "port {port}"
                );
            }
            for b in t.buckets() {
                for (&port, c) in &b.port_totals {
                    assert_eq!(
                        c.sources,
                        bucket_port_src[&(b.number, port as u16)].len() as u64
                    );
                }
            }
        }
        assert_eq!(small.summary(10), big.summary(10));
        // Ports grouped per source, through slots and the compacted tail.
        let mut src_ports: StdMap<u32, Vec<u32>> = StdMap::new();
        for &(_, src, port) in &events {
            src_ports.entry(src).or_default().push(port as u32);
        }
        for v in src_ports.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        for t in [&small, &big] {
            let mut got: StdMap<u32, Vec<u32>> = StdMap::new();
            let mut last = None;
            t.for_each_source_ports(|id, ports| {
                assert!(last < Some(id), "source order");
                last = Some(id);
                let Addr::V4(a) = t.source_addrs()[id as usize] else {
                    panic!("v4")
                };
                got.insert(a, ports.to_vec());
            });
            assert_eq!(got, src_ports);
        }
    }
}
