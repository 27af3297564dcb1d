//! Rebuilding the telescope report from stored rows, with the telescope's
//! own rules (flagging, sorting, schema). Backend-independent: a backend
//! reads rows, this module turns them into a [`Summary`].

use std::collections::{BTreeMap, HashMap};

use iotscope_telescope::sketch::SourceSketch;
use iotscope_telescope::summary::{
    class_names, sort_infected, sort_ports, source_flags, ClassPackets, Classes, CountOut,
    Fingerprints, Infected, PortRow, SeriesBucket, Summary, TopSource,
};
use iotscope_telescope::time::rfc3339;
use iotscope_telescope::{flagged, port_of, PortIndex};
use iotscope_wire::{ALL_CLASSES, CLASS_COUNT};

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
}

#[derive(Default)]
pub(crate) struct BucketRow {
    pub start_ns: i64,
    pub packets: u64,
    pub bytes: u64,
    pub outside: u64,
    pub malformed: u64,
    pub classes: [u64; CLASS_COUNT],
}

pub(crate) struct PortBucketRow {
    pub start_ns: i64,
    pub proto: String,
    pub port: u16,
    pub packets: u64,
    pub sources: u64,
    pub estimated: bool,
    pub sketch: SourceSketch,
}

pub(crate) struct SourceBucketRow {
    pub start_ns: i64,
    pub ip: String,
    pub packets: u64,
    pub bytes: u64,
    pub first_ns: i64,
    pub last_ns: i64,
    pub class_mask: u16,
    pub syn: u64,
    pub mirai: u64,
    pub zmap: u64,
    pub masscan: u64,
    pub backscatter: u64,
}

#[derive(Default)]
pub(crate) struct StoredRows {
    pub bucket_ns: i64,
    pub buckets: Vec<BucketRow>,
    pub ports: Vec<PortBucketRow>,
    pub sources: Vec<SourceBucketRow>,
    pub infected_ports: HashMap<String, Vec<u16>>,
    /// Frames of every stored file stamped outside the plausible window.
    pub implausible_time: u64,
}

fn port_index(proto: &str, port: u16) -> PortIndex {
    if proto == "udp" {
        (1 << 16) | port as u32
    } else {
        port as u32
    }
}

pub(crate) fn build_report(rows: StoredRows, q: &ReportQuery) -> Summary {
    let mut s = Summary {
        bucket_seconds: rows.bucket_ns as f64 / 1e9,
        implausible_time: rows.implausible_time,
        ..Default::default()
    };
    let keep_port = |i: PortIndex| q.ports.is_empty() || q.ports.contains(&i);
    let mut class_packets = [0u64; CLASS_COUNT];
    for b in &rows.buckets {
        s.packets += b.packets;
        s.bytes += b.bytes;
        s.outside += b.outside;
        s.malformed += b.malformed;
        for (acc, v) in class_packets.iter_mut().zip(b.classes) {
            *acc += v;
        }
    }

    // Sources: aggregate bucket rows per address (exact distinct counts).
    #[derive(Default)]
    struct Agg {
        packets: u64,
        bytes: u64,
        first: i64,
        last: i64,
        mask: u16,
        syn: u64,
        mirai: u64,
        zmap: u64,
        masscan: u64,
        backscatter: u64,
    }
    let mut per_ip: HashMap<&str, Agg> = HashMap::new();
    let mut bucket_sources: HashMap<i64, u64> = HashMap::new();
    let mut fps = Fingerprints::default();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for r in &rows.sources {
        *bucket_sources.entry(r.start_ns).or_default() += 1;
        let a = per_ip.entry(&r.ip).or_insert(Agg {
            first: i64::MAX,
            last: i64::MIN,
            ..Default::default()
        });
        a.packets += r.packets;
        a.bytes += r.bytes;
        a.first = a.first.min(r.first_ns);
        a.last = a.last.max(r.last_ns);
        a.mask |= r.class_mask;
        a.syn += r.syn;
        a.mirai += r.mirai;
        a.zmap += r.zmap;
        a.masscan += r.masscan;
        a.backscatter += r.backscatter;
        fps.mirai.packets += r.mirai;
        fps.zmap.packets += r.zmap;
        fps.masscan.packets += r.masscan;
        fps.backscatter.packets += r.backscatter;
        first = first.min(r.first_ns);
        last = last.max(r.last_ns);
    }
    s.sources = per_ip.len() as u64;
    if first <= last {
        s.first_ts = Some(rfc3339(first));
        s.last_ts = Some(rfc3339(last));
    }
    let mut classes = Classes::default();
    for c in ALL_CLASSES {
        classes.0[c.index()] = CountOut {
            packets: class_packets[c.index()],
            sources: per_ip
                .values()
                .filter(|a| a.mask >> c.index() & 1 == 1)
                .count() as u64,
        };
    }
    s.classes = classes;
    for a in per_ip.values() {
        fps.mirai.sources += flagged(a.syn, a.mirai) as u64;
        fps.zmap.sources += flagged(a.syn, a.zmap) as u64;
        fps.masscan.sources += flagged(a.syn, a.masscan) as u64;
        fps.backscatter.sources += (a.backscatter > 0) as u64;
    }
    s.fingerprints = fps;
    s.infected = per_ip
        .iter()
        .filter(|(_, a)| flagged(a.syn, a.mirai))
        .map(|(ip, a)| {
            let mut ports = rows.infected_ports.get(*ip).cloned().unwrap_or_default();
            ports.sort_unstable();
            Infected {
                ip: ip.to_string(),
                fingerprint: "mirai",
                packets: a.packets,
                first_ts: rfc3339(a.first),
                last_ts: rfc3339(a.last),
                ports,
            }
        })
        .collect();
    sort_infected(&mut s.infected);
    let mut by_packets: Vec<(&&str, &Agg)> = per_ip.iter().collect();
    by_packets.sort_by(|a, b| b.1.packets.cmp(&a.1.packets).then(a.0.cmp(b.0)));
    s.top_sources = by_packets
        .into_iter()
        .take(q.top)
        .map(|(ip, a)| TopSource {
            ip: ip.to_string(),
            packets: a.packets,
            bytes: a.bytes,
            first_ts: rfc3339(a.first),
            last_ts: rfc3339(a.last),
            classes: class_names(a.mask),
            fingerprints: source_flags(a.syn, a.mirai, a.zmap, a.masscan, a.backscatter),
        })
        .collect();

    // Ports over the range: exact when one stored row, else the sketch union.
    let mut merged: BTreeMap<PortIndex, (u64, u32, u64, bool, SourceSketch)> = BTreeMap::new();
    let mut per_bucket: HashMap<i64, Vec<PortRow>> = HashMap::new();
    let mut any_estimated = false;
    for r in &rows.ports {
        let idx = port_index(&r.proto, r.port);
        if !keep_port(idx) {
            continue;
        }
        let e = merged
            .entry(idx)
            .or_insert_with(|| (0, 0, 0, false, SourceSketch::default()));
        e.0 += r.packets;
        e.1 += 1;
        e.2 = r.sources;
        e.3 |= r.estimated;
        e.4.merge(&r.sketch);
        let mut row = PortRow::new(idx, r.packets, r.sources);
        row.sources_estimated = r.estimated;
        any_estimated |= r.estimated;
        per_bucket.entry(r.start_ns).or_default().push(row);
    }
    s.ports = merged
        .into_iter()
        .map(|(idx, (packets, rows_n, single_sources, est, sketch))| {
            let (sources, estimated) = if rows_n == 1 {
                (single_sources, est)
            } else {
                (sketch.count(), !sketch.is_exact())
            };
            any_estimated |= estimated;
            let (proto, port) = port_of(idx);
            PortRow {
                proto,
                port,
                packets,
                sources,
                sources_estimated: estimated,
            }
        })
        .collect();
    sort_ports(&mut s.ports);
    s.series = rows
        .buckets
        .iter()
        .map(|b| {
            let mut ports = per_bucket.remove(&b.start_ns).unwrap_or_default();
            sort_ports(&mut ports);
            ports.truncate(q.top);
            SeriesBucket {
                start: rfc3339(b.start_ns),
                packets: b.packets,
                sources: bucket_sources.get(&b.start_ns).copied().unwrap_or(0),
                bytes: b.bytes,
                classes: ClassPackets(b.classes),
                ports,
            }
        })
        .collect();
    if any_estimated {
        s.estimated.push(
            "ports[].sources where sources_estimated is true (HyperLogLog, standard error 0.41%)"
                .into(),
        );
    }
    s
}
