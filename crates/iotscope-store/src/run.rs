//! A telescope run as the rows and blocks a backend writes: the same for
//! every engine, so SQLite and PostgreSQL store byte-identical blocks and
//! rebuild identical reports.

use std::collections::BTreeSet;

use iotscope_telescope::aggregate::BucketStats;
use iotscope_telescope::sketch::SourceSketch;
use iotscope_telescope::{PortIndex, Telescope};
use iotscope_wire::{Addr, ALL_CLASSES};

use crate::blocks::{self, Blocks, PORT_BLOCKS};

/// A day in ns: the key of port-source, infected-port and day-source blocks.
pub(crate) const DAY_NS: i64 = 86_400_000_000_000;

/// One bucket of a run: its row, its classes and its blocks.
pub(crate) struct BucketBlocks {
    /// Start, ns since the epoch.
    pub start: i64,
    /// (packets, bytes, outside, malformed).
    pub totals: (i64, i64, i64, i64),
    /// (class name, packets), classes with packets only.
    pub classes: Vec<(&'static str, i64)>,
    /// Port blocks and their parallel sketch blocks.
    pub ports: Blocks,
    pub sketches: Blocks,
    /// Source blocks, and how many sources they hold.
    pub sources: Blocks,
    pub n_sources: u64,
}

/// The buckets of `t` in time order, each built when asked for (a run's
/// blocks are never all in memory at once).
pub(crate) fn buckets(t: &Telescope) -> impl Iterator<Item = BucketBlocks> + '_ {
    let bucket_ns = t.config().bucket_ns;
    let addrs = t.source_addrs();
    let mut all: Vec<&BucketStats> = t.buckets().collect();
    all.sort_unstable_by_key(|b| b.number);
    all.into_iter().map(move |b| {
        let start = b.number.saturating_mul(bucket_ns);
        let classes = ALL_CLASSES
            .iter()
            .filter(|c| b.classes[c.index()] > 0)
            .map(|c| (c.name(), b.classes[c.index()] as i64))
            .collect();
        let mut port_list: Vec<_> = b.port_totals.iter().collect();
        port_list.sort_unstable_by_key(|(&port, _)| port);
        let mut ports = Blocks::new(PORT_BLOCKS);
        let mut sketches = Blocks::new(PORT_BLOCKS);
        let empty = SourceSketch::default();
        for (&port, count) in port_list {
            let block = blocks::port_block(port);
            blocks::put_port(
                ports.of(block),
                &blocks::PortEntry {
                    port,
                    packets: count.packets,
                    sources: count.sources,
                    estimated: false,
                },
            );
            let sketch = b.port_sketches.get(&port).unwrap_or(&empty);
            blocks::put_port_sketch(sketches.of(block), port, &sketch.to_bytes());
        }
        let mut sources = Blocks::new(blocks::SOURCE_BLOCKS);
        let mut n_sources = 0u64;
        for (id, c) in t.bucket_sources(b) {
            let a = addrs[id as usize];
            blocks::put_source(sources.of(blocks::source_block(a)), start, a, c);
            n_sources += 1;
        }
        BucketBlocks {
            start,
            totals: (
                b.total.packets as i64,
                b.bytes as i64,
                b.outside as i64,
                b.malformed as i64,
            ),
            classes,
            ports,
            sketches,
            sources,
            n_sources,
        }
    })
}

/// The UTC days (day numbers) the run's buckets start in: their day
/// rollups are stale once the run is stored.
pub(crate) fn days(t: &Telescope) -> BTreeSet<i64> {
    let bucket_ns = t.config().bucket_ns;
    t.buckets()
        .map(|b| b.number.saturating_mul(bucket_ns).div_euclid(DAY_NS))
        .collect()
}

/// The run's per-day blocks, keyed by the day (UTC) of its first frame:
/// each port's sources (for the map's port filter) and the ports of the
/// sources that sent Mirai SYNs (for infected hosts' ports). None for a
/// run without frames. Runs of the same day share these rows: a sensor
/// ingesting every few minutes writes a day's pairs once each.
pub(crate) fn day_blocks(t: &Telescope) -> Option<(i64, Blocks, Blocks)> {
    let day = t.totals().first_ts?.div_euclid(DAY_NS);
    let addrs = t.source_addrs();
    let mut pairs: Vec<(PortIndex, u32)> = Vec::new();
    t.for_each_port_source(|port, id| pairs.push((port, id)));
    pairs.sort_unstable();
    let mut port_sources = Blocks::new(PORT_BLOCKS);
    let mut of_port: Vec<Addr> = Vec::new();
    for group in pairs.chunk_by(|x, y| x.0 == y.0) {
        let port = group[0].0;
        of_port.clear();
        of_port.extend(group.iter().map(|&(_, id)| addrs[id as usize]));
        of_port.sort_unstable();
        blocks::put_port_sources(port_sources.of(blocks::port_block(port)), port, &of_port);
    }
    drop(pairs);
    let stats = t.source_stats();
    let mut infected = Blocks::new(blocks::SOURCE_BLOCKS);
    t.for_each_source_ports(|id, ports| {
        if stats[id as usize].mirai > 0 {
            let a = addrs[id as usize];
            blocks::put_source_ports(infected.of(blocks::source_block(a)), a, ports);
        }
    });
    Some((day, port_sources, infected))
}
