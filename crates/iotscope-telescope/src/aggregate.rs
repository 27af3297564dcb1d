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
use iotscope_wire::{decode, fingerprint, Addr, Class, Decoded, LinkType, Malformed, CLASS_COUNT};

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
    let (num, proto) = if a.chars().all(|c| c.is_ascii_digit()) { (a, b) } else { (b, a) };
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
    /// sketch of sources per (bucket, port). Costs one more lookup a packet.
    pub detail: bool,
}

impl Default for TelescopeConfig {
    fn default() -> Self {
        TelescopeConfig { darknets: Vec::new(), bucket_ns: 3_600_000_000_000, detail: false }
    }
}

/// Per-source state.
#[derive(Clone, Debug, Default)]
pub struct SourceStats {
    /// Packets from this source.
    pub packets: u64,
    /// Captured bytes from this source.
    pub bytes: u64,
    /// First and last capture time, ns.
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
    presence: Presence,
}

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
    /// Per-port packets and unique sources.
    pub ports: HashMap<PortIndex, Count, RandomState>,
    /// Detail mode: per source id, counters within this bucket.
    pub sources: HashMap<u32, SourceStats, RandomState>,
    /// Detail mode: sketches of sources per port.
    pub port_sketches: HashMap<PortIndex, SourceSketch, RandomState>,
    /// Malformed frames and frames outside the darknet in this bucket.
    pub malformed: u64,
    /// Frames to addresses outside the darknet.
    pub outside: u64,
}

/// The accumulator. Feed it frames with [`Telescope::ingest`].
pub struct Telescope {
    cfg: TelescopeConfig,
    v4: HashMap<u32, u32, RandomState>,
    v6: HashMap<u128, u32, RandomState>,
    pub(crate) addrs: Vec<Addr>,
    pub(crate) sources: Vec<SourceStats>,
    pub(crate) ports: Vec<Count>,
    pair: HashMap<u64, Presence, RandomState>,
    overflow_sources: Overflow,
    overflow_pairs: Overflow,
    pub(crate) buckets: Vec<BucketStats>,
    bucket_index: HashMap<i64, usize, RandomState>,
    /// Bucket number and index of the bucket the last packet fell in.
    current: Option<(i64, usize)>,
    /// Origin of the relative bucket numbers used by presence windows.
    origin: Option<i64>,
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
    /// Earliest and latest capture time of analysed frames, ns.
    pub first_ts: Option<i64>,
    /// Latest capture time.
    pub last_ts: Option<i64>,
}

impl Telescope {
    /// A fresh accumulator.
    pub fn new(cfg: TelescopeConfig) -> Self {
        assert!(cfg.bucket_ns > 0, "bucket length must be positive");
        Telescope {
            cfg,
            v4: HashMap::default(),
            v6: HashMap::default(),
            addrs: Vec::new(),
            sources: Vec::new(),
            ports: vec![Count::default(); PORT_SLOTS],
            pair: HashMap::default(),
            overflow_sources: Overflow::default(),
            overflow_pairs: Overflow::default(),
            buckets: Vec::new(),
            bucket_index: HashMap::default(),
            current: None,
            origin: None,
            totals: Totals::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &TelescopeConfig {
        &self.cfg
    }

    /// Whole-run counters so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Time buckets so far, in order of first appearance.
    pub fn buckets(&self) -> &[BucketStats] {
        &self.buckets
    }

    /// Source addresses by id, parallel to [`Telescope::source_stats`].
    pub fn source_addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// Per-source state by id.
    pub fn source_stats(&self) -> &[SourceStats] {
        &self.sources
    }

    /// Calls `f(port, source id)` for every distinct (port, source) pair.
    pub fn for_each_port_source(&self, mut f: impl FnMut(PortIndex, u32)) {
        for key in self.pair.keys() {
            f((*key & 0x1ffff) as u32, (*key >> 17) as u32);
        }
    }

    #[inline]
    fn bucket_for(&mut self, ts_ns: i64) -> (usize, u32) {
        let number = ts_ns.div_euclid(self.cfg.bucket_ns);
        let origin = *self.origin.get_or_insert(number - (1 << 31));
        // Relative numbers keep presence state in 32 bits; a run spanning
        // more than 2^31 buckets either side of its first packet is clamped.
        let rel = (number - origin).clamp(0, u32::MAX as i64) as u32;
        if let Some((n, idx)) = self.current {
            if n == number {
                return (idx, rel);
            }
        }
        let idx = match self.bucket_index.get(&number) {
            Some(&i) => i,
            None => {
                self.buckets.push(BucketStats { number, ..Default::default() });
                self.bucket_index.insert(number, self.buckets.len() - 1);
                self.buckets.len() - 1
            }
        };
        self.current = Some((number, idx));
        (idx, rel)
    }

    #[inline]
    fn source_id(&mut self, addr: Addr) -> u32 {
        let next = self.addrs.len() as u32;
        let id = match addr {
            Addr::V4(a) => *self.v4.entry(a).or_insert(next),
            Addr::V6(a) => *self.v6.entry(a).or_insert(next),
        };
        if id == next {
            self.addrs.push(addr);
            self.sources.push(SourceStats::default());
        }
        id
    }

    /// Accounts one captured frame.
    #[inline]
    pub fn ingest(&mut self, ts_ns: i64, link: LinkType, frame: &[u8]) {
        let decoded = decode(link, frame);
        let packet = match decoded {
            Decoded::Ip(p) => {
                if !self.cfg.darknets.is_empty() && !self.cfg.darknets.iter().any(|d| d.contains(p.dst)) {
                    self.totals.outside += 1;
                    let (b, _) = self.bucket_for(ts_ns);
                    self.buckets[b].outside += 1;
                    return;
                }
                Some(p)
            }
            Decoded::NonIp => None,
            Decoded::Malformed(why) => {
                self.count_malformed(ts_ns, frame.len(), why);
                return;
            }
        };
        let bytes = frame.len() as u64;
        let (b, rel) = self.bucket_for(ts_ns);
        let t = &mut self.totals;
        t.packets += 1;
        t.bytes += bytes;
        t.first_ts = Some(t.first_ts.map_or(ts_ns, |f| f.min(ts_ns)));
        t.last_ts = Some(t.last_ts.map_or(ts_ns, |l| l.max(ts_ns)));
        let class = packet.map_or(Class::NonIp, |p| p.class);
        t.classes[class.index()] += 1;
        let bucket = &mut self.buckets[b];
        bucket.total.packets += 1;
        bucket.bytes += bytes;
        bucket.classes[class.index()] += 1;
        let Some(p) = packet else { return };

        let id = self.source_id(p.src);
        let fp = fingerprint::matches(&p);
        let s = &mut self.sources[id as usize];
        if s.packets == 0 {
            s.first_ts = ts_ns;
            s.last_ts = ts_ns;
        }
        s.packets += 1;
        s.bytes += bytes;
        s.first_ts = s.first_ts.min(ts_ns);
        s.last_ts = s.last_ts.max(ts_ns);
        s.class_mask |= 1 << class.index();
        if fp != 0 || class == Class::TcpSyn {
            s.syn += (class == Class::TcpSyn) as u64;
            let bits = [fingerprint::MIRAI, fingerprint::ZMAP, fingerprint::MASSCAN, fingerprint::BACKSCATTER];
            for (i, bit) in bits.iter().enumerate() {
                let hit = (fp & bit != 0) as u64;
                self.totals.fingerprint_packets[i] += hit;
            }
            s.mirai += (fp & fingerprint::MIRAI != 0) as u64;
            s.zmap += (fp & fingerprint::ZMAP != 0) as u64;
            s.masscan += (fp & fingerprint::MASSCAN != 0) as u64;
            s.backscatter += (fp & fingerprint::BACKSCATTER != 0) as u64;
        }
        let bucket = &mut self.buckets[b];
        if s.presence.mark(rel, id as u64, &mut self.overflow_sources) {
            bucket.total.sources += 1;
        }

        if self.cfg.detail {
            let d = bucket.sources.entry(id).or_default();
            if d.packets == 0 {
                d.first_ts = ts_ns;
                d.last_ts = ts_ns;
            }
            d.packets += 1;
            d.bytes += bytes;
            d.first_ts = d.first_ts.min(ts_ns);
            d.last_ts = d.last_ts.max(ts_ns);
            d.class_mask |= 1 << class.index();
            d.syn += (class == Class::TcpSyn) as u64;
            d.mirai += (fp & fingerprint::MIRAI != 0) as u64;
            d.zmap += (fp & fingerprint::ZMAP != 0) as u64;
            d.masscan += (fp & fingerprint::MASSCAN != 0) as u64;
            d.backscatter += (fp & fingerprint::BACKSCATTER != 0) as u64;
        }

        // Only TCP and UDP first fragments carry ports.
        if p.has_ports {
            let port: PortIndex = if p.protocol == iotscope_wire::proto::TCP { p.dst_port as u32 } else { (1 << 16) | p.dst_port as u32 };
            let key = ((id as u64) << 17) | port as u64;
            let presence = self.pair.entry(key).or_default();
            let is_new = presence.is_new();
            let fresh_in_bucket = presence.mark(rel, key, &mut self.overflow_pairs);
            let global = &mut self.ports[port as usize];
            global.packets += 1;
            global.sources += is_new as u64;
            let per = bucket.ports.entry(port).or_default();
            per.packets += 1;
            if fresh_in_bucket {
                per.sources += 1;
                if self.cfg.detail {
                    bucket.port_sketches.entry(port).or_default().insert_hash(source_hash(p.src));
                }
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
        t.first_ts = Some(t.first_ts.map_or(ts_ns, |f| f.min(ts_ns)));
        t.last_ts = Some(t.last_ts.map_or(ts_ns, |l| l.max(ts_ns)));
        let bucket = &mut self.buckets[b];
        bucket.total.packets += 1;
        bucket.bytes += len as u64;
        bucket.malformed += 1;
    }

    /// Per-port packets and unique sources, indexed by [`PortIndex`].
    pub fn ports(&self) -> &[Count] {
        &self.ports
    }
}
