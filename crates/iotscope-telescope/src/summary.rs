//! The telescope's report: the JSON contract other parts read.
//!
//! Both `telescope analyze` (from a [`Telescope`]) and `telescope report`
//! (from the store) produce a [`Summary`]; the schema is documented in
//! `docs/telescope-json.md` and must only be extended, never broken.

use std::collections::BTreeMap;

use iotscope_wire::{Addr, Class, ALL_CLASSES, CLASS_COUNT};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::aggregate::{flagged, port_of, Count, PortIndex, SourceStats, Telescope, PORT_SLOTS};
use crate::time::rfc3339;

/// Packets and unique sources, as serialised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CountOut {
    /// Packets.
    pub packets: u64,
    /// Unique sources.
    pub sources: u64,
}

impl From<Count> for CountOut {
    fn from(c: Count) -> Self {
        CountOut {
            packets: c.packets,
            sources: c.sources,
        }
    }
}

/// Per-class counts, serialised as an object in class order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classes(pub [CountOut; CLASS_COUNT]);

impl Serialize for Classes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(CLASS_COUNT))?;
        for c in ALL_CLASSES {
            m.serialize_entry(c.name(), &self.0[c.index()])?;
        }
        m.end()
    }
}

/// Per-class packet counts of one bucket, serialised in class order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassPackets(pub [u64; CLASS_COUNT]);

impl Serialize for ClassPackets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(CLASS_COUNT))?;
        for c in ALL_CLASSES {
            m.serialize_entry(c.name(), &self.0[c.index()])?;
        }
        m.end()
    }
}

/// One destination (protocol, port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortRow {
    /// "tcp" or "udp".
    pub proto: &'static str,
    /// Destination port.
    pub port: u16,
    /// Packets.
    pub packets: u64,
    /// Unique sources.
    pub sources: u64,
    /// Present and true when `sources` is an estimate (store reports over
    /// merged buckets beyond the exact range of the sketch).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sources_estimated: bool,
}

impl PortRow {
    /// A row for a port index.
    pub fn new(index: PortIndex, packets: u64, sources: u64) -> Self {
        let (proto, port) = port_of(index);
        PortRow {
            proto,
            port,
            packets,
            sources,
            sources_estimated: false,
        }
    }
}

/// Fingerprint counts: packets matching the per-packet rule, flagged sources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fingerprints {
    /// Mirai: SYN sequence number equals the destination IPv4 address.
    pub mirai: CountOut,
    /// ZMap before 4.1: IPv4 ID 54321 on a SYN.
    pub zmap: CountOut,
    /// masscan: IPv4 ID equals (dst ^ dport ^ seq) & 0xffff.
    pub masscan: CountOut,
    /// Backscatter: SYN/ACK, RST, ICMP replies and errors, UDP from port 53.
    pub backscatter: CountOut,
}

/// A host flagged as infected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Infected {
    /// Source address.
    pub ip: String,
    /// The fingerprint that flagged it ("mirai").
    pub fingerprint: &'static str,
    /// All packets from the host.
    pub packets: u64,
    /// First packet, RFC 3339.
    pub first_ts: String,
    /// Last packet, RFC 3339.
    pub last_ts: String,
    /// TCP destination ports it sent to, ascending.
    pub ports: Vec<u16>,
}

/// One of the busiest sources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopSource {
    /// Source address.
    pub ip: String,
    /// Packets.
    pub packets: u64,
    /// Captured bytes.
    pub bytes: u64,
    /// First packet, RFC 3339.
    pub first_ts: String,
    /// Last packet, RFC 3339.
    pub last_ts: String,
    /// Classes of its packets.
    pub classes: Vec<&'static str>,
    /// Fingerprints it is flagged with.
    pub fingerprints: Vec<&'static str>,
    /// Its scanner class (`mirai_like`, `masscan`, `zmap`,
    /// `research_scanner`, `backscatter`, `unknown`; issue 20), filled in by
    /// the command from the research-scanner list; absent when not.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub scanner: &'static str,
}

/// One time bucket of the series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeriesBucket {
    /// Bucket start, RFC 3339, aligned to the epoch.
    pub start: String,
    /// Packets.
    pub packets: u64,
    /// Unique sources.
    pub sources: u64,
    /// Captured bytes.
    pub bytes: u64,
    /// Packets per class.
    pub classes: ClassPackets,
    /// Busiest ports of the bucket (at most `--top`).
    pub ports: Vec<PortRow>,
    /// Frames a live capture dropped in this bucket (its buffer's and its
    /// interface's): the bucket's counts are then a lower bound. Absent
    /// when none (always for files).
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What live captures passed and lost over a report's period (from
/// `iotscope sensor`; libpcap's `pcap_stats` over each commit).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CaptureLossReport {
    /// Frames the kernel passed the capture filter, dropped or not.
    pub received: u64,
    /// Frames dropped for lack of capture buffer space.
    pub dropped: u64,
    /// Frames the interface or its driver dropped.
    pub if_dropped: u64,
    /// Buckets with any drop, oldest first.
    pub lossy_buckets: Vec<LossyBucket>,
}

/// One bucket in which a live capture lost frames.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LossyBucket {
    /// Bucket start, RFC 3339.
    pub start: String,
    /// The interface captured on.
    pub interface: String,
    /// Frames dropped for lack of capture buffer space.
    pub dropped: u64,
    /// Frames the interface or its driver dropped.
    pub if_dropped: u64,
}

/// The report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Frames analysed (inside the darknet), malformed ones included.
    pub packets: u64,
    /// Sum of captured frame lengths of analysed frames.
    pub bytes: u64,
    /// Unique source addresses.
    pub sources: u64,
    /// Earliest capture time, RFC 3339 (null with no packets).
    pub first_ts: Option<String>,
    /// Latest capture time.
    pub last_ts: Option<String>,
    /// Frames to destinations outside `--darknet`.
    pub outside: u64,
    /// Frames with cut or impossible headers (not in any class).
    pub malformed: u64,
    /// Malformed frames by reason.
    pub malformed_reasons: BTreeMap<String, u64>,
    /// Frames of any kind stamped outside the plausible window (a clock at
    /// 1970, a wrapped one at 2106): counted in the totals, classes, ports
    /// and sources, but in no bucket of `series`. From a store, the figure
    /// of every stored file, whatever the period asked.
    pub implausible_time: u64,
    /// Per-class packets and unique sources.
    pub classes: Classes,
    /// Every destination port seen, busiest first.
    pub ports: Vec<PortRow>,
    /// Fingerprint counts.
    pub fingerprints: Fingerprints,
    /// Hosts flagged `mirai`, busiest first.
    pub infected: Vec<Infected>,
    /// Busiest sources (at most `--top`).
    pub top_sources: Vec<TopSource>,
    /// Bucket length in seconds (of the series: the tier's period).
    pub bucket_seconds: f64,
    /// From a store: the tier the report read (`bucket`, `hour` or `day`:
    /// the store's buckets, or their hourly or daily rollups); absent for
    /// `analyze`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Time series, oldest first.
    pub series: Vec<SeriesBucket>,
    /// Names of figures that are estimates rather than exact counts
    /// (empty for `analyze`: every count of one run is exact).
    pub estimated: Vec<String>,
    /// Input files of this run and what happened to each (analyze only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileInfo>,
    /// Frames per link type (LINKTYPE_ number as text) the decoder does not
    /// know, counted as `non_ip` (analyze only; absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unknown_link_types: BTreeMap<String, u64>,
    /// Sources and packets per AS, busiest first (at most `--top`); only
    /// when an AS table is configured (the telescope itself knows no ASes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_as: Vec<AsRow>,
    /// Sources and packets per country, busiest first (at most `--top`);
    /// only when a location database is configured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_country: Vec<CountryRow>,
    /// Live capture counters over the report's period: present only for a
    /// store a sensor wrote to (`iotscope sensor`), never for files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_loss: Option<CaptureLossReport>,
}

/// One country of the `by_country` breakdown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CountryRow {
    /// ISO 3166-1 alpha-2 code ("" when the database does not know the source).
    pub country: String,
    /// Distinct sources in it.
    pub sources: u64,
    /// Their packets.
    pub packets: u64,
    /// Of those sources, how many are flagged infected.
    pub infected: u64,
}

/// One AS of the `by_as` breakdown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AsRow {
    /// AS number (0: not in the table).
    pub asn: u32,
    /// Its organisation.
    pub org: String,
    /// Distinct sources in it.
    pub sources: u64,
    /// Their packets.
    pub packets: u64,
    /// Of those sources, how many are flagged infected.
    pub infected: u64,
}

/// One input of an analyze run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// Path as given (`-` for standard input).
    pub path: String,
    /// "complete", "error" (read up to the error) or "duplicate" (already
    /// in the store, skipped).
    pub status: &'static str,
    /// Frames read from it.
    pub frames: u64,
    /// XXH3-128 of its raw bytes (present when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// The error, when status is "error".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Frames stamped outside the plausible window.
    pub implausible_time: u64,
}

/// Sorts port rows busiest first, then by protocol and port.
pub fn sort_ports(rows: &mut [PortRow]) {
    rows.sort_by(|a, b| {
        b.packets
            .cmp(&a.packets)
            .then(a.proto.cmp(b.proto))
            .then(a.port.cmp(&b.port))
    });
}

/// Keeps the `top` busiest rows, sorted (a partial sort: buckets can hold
/// tens of thousands of ports).
pub fn top_ports(rows: &mut Vec<PortRow>, top: usize) {
    let order = |a: &PortRow, b: &PortRow| {
        b.packets
            .cmp(&a.packets)
            .then(a.proto.cmp(b.proto))
            .then(a.port.cmp(&b.port))
    };
    if top < rows.len() {
        rows.select_nth_unstable_by(top, order);
        rows.truncate(top);
    }
    rows.sort_by(order);
}

/// Names of the classes set in a class bit mask.
pub fn class_names(mask: u16) -> Vec<&'static str> {
    ALL_CLASSES
        .iter()
        .filter(|c| mask & (1 << c.index()) != 0)
        .map(|c| c.name())
        .collect()
}

/// Per-source fingerprint flags.
pub fn source_flags(
    syn: u64,
    mirai: u64,
    zmap: u64,
    masscan: u64,
    backscatter: u64,
) -> Vec<&'static str> {
    let mut v = Vec::new();
    if flagged(syn, mirai) {
        v.push("mirai");
    }
    if flagged(syn, zmap) {
        v.push("zmap");
    }
    if flagged(syn, masscan) {
        v.push("masscan");
    }
    if backscatter > 0 {
        v.push("backscatter");
    }
    v
}

impl Telescope {
    /// Builds the report. `top` limits `top_sources` and each bucket's ports.
    pub fn summary(&self, top: usize) -> Summary {
        let t = self.totals();
        let mut classes = Classes::default();
        let mut fps = Fingerprints::default();
        let mut infected_ids = Vec::new();
        let mut active_sources = 0u64;
        for (id, s) in self.source_stats().iter().enumerate() {
            if s.packets == 0 {
                continue;
            }
            active_sources += 1;
            for c in ALL_CLASSES {
                classes.0[c.index()].sources += (s.class_mask >> c.index() & 1) as u64;
            }
            if flagged(s.syn, s.mirai) {
                fps.mirai.sources += 1;
                infected_ids.push(id);
            }
            fps.zmap.sources += flagged(s.syn, s.zmap) as u64;
            fps.masscan.sources += flagged(s.syn, s.masscan) as u64;
            fps.backscatter.sources += (s.backscatter > 0) as u64;
        }
        for c in ALL_CLASSES {
            classes.0[c.index()].packets = t.classes[c.index()];
        }
        fps.mirai.packets = t.fingerprint_packets[0];
        fps.zmap.packets = t.fingerprint_packets[1];
        fps.masscan.packets = t.fingerprint_packets[2];
        fps.backscatter.packets = t.fingerprint_packets[3];

        let mut ports: Vec<PortRow> = (0..PORT_SLOTS)
            .filter(|&i| self.ports()[i].packets > 0)
            .map(|i| {
                PortRow::new(
                    i as PortIndex,
                    self.ports()[i].packets,
                    self.ports()[i].sources,
                )
            })
            .collect();
        sort_ports(&mut ports);

        // Ports of infected hosts, from the (port, source) pairs: found by
        // a binary search in the infected ids (ascending), not through a
        // table of every source (a spoofed flood's ten million entries made
        // a 240 MB allocation per summary, infected or not).
        let addrs = self.source_addrs();
        let stats = self.source_stats();
        let mut infected_ports: Vec<Vec<u16>> = vec![Vec::new(); infected_ids.len()];
        if !infected_ids.is_empty() {
            self.for_each_port_source(|port, id| {
                if port >> 16 == 0 {
                    if let Ok(i) = infected_ids.binary_search(&(id as usize)) {
                        infected_ports[i].push(port as u16);
                    }
                }
            });
        }
        let mut infected: Vec<Infected> = infected_ids
            .iter()
            .zip(infected_ports)
            .map(|(&id, mut p)| {
                p.sort_unstable();
                let s = &stats[id];
                Infected {
                    ip: addrs[id].to_string(),
                    fingerprint: "mirai",
                    packets: s.packets,
                    first_ts: rfc3339(s.first_ts),
                    last_ts: rfc3339(s.last_ts),
                    ports: p,
                }
            })
            .collect();
        sort_infected(&mut infected);

        // The `top` busiest sources (then by address), in one pass over
        // the sources in order, keeping the best `top` in a heap: selecting
        // among every source's id instead read the sources at random.
        let by_packets = busiest(stats, addrs, top);
        let top_sources = by_packets
            .into_iter()
            .map(|i| {
                let s = &stats[i];
                TopSource {
                    ip: addrs[i].to_string(),
                    packets: s.packets,
                    bytes: s.bytes,
                    first_ts: rfc3339(s.first_ts),
                    last_ts: rfc3339(s.last_ts),
                    classes: class_names(s.class_mask),
                    fingerprints: source_flags(s.syn, s.mirai, s.zmap, s.masscan, s.backscatter),
                    scanner: "",
                }
            })
            .collect();

        let bucket_ns = self.config().bucket_ns;
        let mut buckets: Vec<_> = self.buckets().filter(|b| b.total.packets > 0).collect();
        buckets.sort_by_key(|b| b.number);
        let series = buckets
            .into_iter()
            .map(|b| {
                let mut rows: Vec<PortRow> = b
                    .port_totals
                    .iter()
                    .map(|(&i, c)| PortRow::new(i, c.packets, c.sources))
                    .collect();
                top_ports(&mut rows, top);
                SeriesBucket {
                    start: rfc3339(b.number.saturating_mul(bucket_ns)),
                    packets: b.total.packets,
                    sources: b.total.sources,
                    bytes: b.bytes,
                    classes: ClassPackets(b.classes),
                    ports: rows,
                    dropped: 0,
                }
            })
            .collect();

        Summary {
            packets: t.packets,
            bytes: t.bytes,
            sources: active_sources,
            first_ts: t.first_ts.map(rfc3339),
            last_ts: t.last_ts.map(rfc3339),
            outside: t.outside,
            malformed: t.malformed,
            implausible_time: t.implausible_time,
            malformed_reasons: t
                .malformed_reasons
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            classes,
            ports,
            fingerprints: fps,
            infected,
            top_sources,
            bucket_seconds: bucket_ns as f64 / 1e9,
            tier: None,
            series,
            estimated: Vec::new(),
            files: Vec::new(),
            by_as: Vec::new(),
            by_country: Vec::new(),
            capture_loss: None,
            unknown_link_types: BTreeMap::new(),
        }
    }
}

/// Ids of the `top` sources with the most packets, busiest first, then by
/// address (ascending); sources without packets are left out.
fn busiest(stats: &[SourceStats], addrs: &[Addr], top: usize) -> Vec<usize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Heap order: the greatest key is the one to drop first (fewest
    // packets, then highest address).
    let key = |i: usize| (Reverse(stats[i].packets), addrs[i], i);
    let mut kept: BinaryHeap<(Reverse<u64>, Addr, usize)> = BinaryHeap::new();
    if top > 0 {
        for (i, s) in stats.iter().enumerate() {
            if s.packets == 0 {
                continue;
            }
            if kept.len() < top {
                kept.push(key(i));
            } else if let Some(mut worst) = kept.peek_mut() {
                if key(i) < *worst {
                    *worst = key(i);
                }
            }
        }
    }
    kept.into_sorted_vec().into_iter().map(|k| k.2).collect()
}

/// Sorts infected hosts busiest first, then by address text.
pub fn sort_infected(v: &mut [Infected]) {
    v.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.ip.cmp(&b.ip)));
}

/// Class of a class name, re-exported for report readers.
pub fn class_by_name(name: &str) -> Option<Class> {
    Class::from_name(name)
}
