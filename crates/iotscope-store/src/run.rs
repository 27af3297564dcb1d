//! A telescope run as the rows and blocks a backend writes: the same for
//! every engine, so SQLite and PostgreSQL store byte-identical blocks and
//! rebuild identical reports.

use std::collections::BTreeSet;

use iotscope_telescope::aggregate::{BucketStats, SourceCounters};
use iotscope_telescope::sketch::SourceSketch;
use iotscope_telescope::{PortIndex, Telescope};
use iotscope_wire::{Addr, ALL_CLASSES};

use crate::blocks::{self, Blocks, Damaged, PORT_BLOCKS};
use crate::Tier;

/// A day in ns: the key of port-source, infected-port and day-source blocks.
pub(crate) const DAY_NS: i64 = 86_400_000_000_000;

/// One bucket of a run: its row, its classes and its blocks.
#[derive(Clone)]
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
        let (sources, n_sources) = source_blocks(
            start,
            t.bucket_sources(b).map(|(id, c)| (addrs[id as usize], c)),
        );
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
    // The (port, source) pairs as sort keys holding the address itself:
    // one sort orders them by port and, within a port, by address (a
    // sort by source id, then one of each port's addresses, took twice as
    // long on a ten-million-source flood). IPv4 keys are one integer.
    let mut v4: Vec<u64> = Vec::new();
    let mut v6: Vec<(PortIndex, u128)> = Vec::new();
    t.for_each_port_source(|port, id| match addrs[id as usize] {
        Addr::V4(a) => v4.push(((port as u64) << 32) | a as u64),
        Addr::V6(a) => v6.push((port, a)),
    });
    v4.sort_unstable();
    v6.sort_unstable();
    let mut port_sources = Blocks::new(PORT_BLOCKS);
    let mut of_port: Vec<Addr> = Vec::new();
    let (mut i, mut j) = (0, 0);
    // Port by port: its IPv4 sources, then its IPv6 ones (as `Addr` orders).
    loop {
        let port = match (v4.get(i), v6.get(j)) {
            (Some(&k), Some(&(p, _))) => ((k >> 32) as PortIndex).min(p),
            (Some(&k), None) => (k >> 32) as PortIndex,
            (None, Some(&(p, _))) => p,
            (None, None) => break,
        };
        of_port.clear();
        while let Some(&k) = v4.get(i).filter(|&&k| (k >> 32) as PortIndex == port) {
            of_port.push(Addr::V4(k as u32));
            i += 1;
        }
        while let Some(&(_, a)) = v6.get(j).filter(|p| p.0 == port) {
            of_port.push(Addr::V6(a));
            j += 1;
        }
        blocks::put_port_sources(port_sources.of(blocks::port_block(port)), port, &of_port);
    }
    drop((v4, v6));
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

/// What a backend writes: a telescope just run, or one kept in a spool
/// (the same buckets and blocks, read back).
#[derive(Clone, Copy)]
pub(crate) enum Run<'a> {
    Live(&'a Telescope),
    Spooled(&'a SpooledRun),
}

impl<'a> Run<'a> {
    /// The bucket length, ns.
    pub(crate) fn bucket_ns(self) -> i64 {
        match self {
            Run::Live(t) => t.config().bucket_ns,
            Run::Spooled(s) => s.bucket_ns,
        }
    }

    /// Every bucket start, ns.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn starts(self) -> Vec<i64> {
        match self {
            Run::Live(t) => {
                let n = t.config().bucket_ns;
                t.buckets().map(|b| b.number.saturating_mul(n)).collect()
            }
            Run::Spooled(s) => s.buckets.iter().map(|b| b.start).collect(),
        }
    }

    /// See [`days`].
    pub(crate) fn days(self) -> BTreeSet<i64> {
        match self {
            Run::Live(t) => days(t),
            Run::Spooled(s) => s
                .buckets
                .iter()
                .map(|b| b.start.div_euclid(DAY_NS))
                .collect(),
        }
    }

    /// See [`buckets`].
    pub(crate) fn buckets(self) -> Box<dyn Iterator<Item = BucketBlocks> + 'a> {
        match self {
            Run::Live(t) => Box::new(buckets(t)),
            Run::Spooled(s) => Box::new(s.buckets.iter().map(|b| BucketBlocks {
                start: b.start,
                totals: b.totals,
                classes: b.classes.clone(),
                ports: Blocks::from_parts(PORT_BLOCKS, b.ports.clone()),
                sketches: Blocks::from_parts(PORT_BLOCKS, b.sketches.clone()),
                sources: Blocks::from_parts(blocks::SOURCE_BLOCKS, b.sources.clone()),
                n_sources: b.n_sources,
            })),
        }
    }

    /// See [`day_blocks`].
    pub(crate) fn day_blocks(self) -> Option<(i64, Blocks, Blocks)> {
        match self {
            Run::Live(t) => day_blocks(t),
            Run::Spooled(s) => s.day.as_ref().map(|(day, ports, infected)| {
                (
                    *day,
                    Blocks::from_parts(PORT_BLOCKS, ports.clone()),
                    Blocks::from_parts(blocks::SOURCE_BLOCKS, infected.clone()),
                )
            }),
        }
    }
}

/// Numbered blocks with records, ascending.
type Parts = Vec<(i64, Vec<u8>)>;

/// One bucket of a [`SpooledRun`].
#[derive(Clone, Debug, PartialEq)]
struct SpooledBucket {
    start: i64,
    totals: (i64, i64, i64, i64),
    classes: Vec<(&'static str, i64)>,
    ports: Parts,
    sketches: Parts,
    sources: Parts,
    n_sources: u64,
}

/// A telescope run as the store would write it, held as bytes: what a
/// sensor keeps in its local spool ([`crate::spool::Spool`]) while the
/// store is out of reach, and writes later with [`crate::Store::save_spooled`].
/// Written from it, a run gives the same rows and blocks as written from
/// its telescope, but for the order of sources in an hour or day that
/// held the whole run (by address here, by first appearance from the
/// telescope); every figure read from them is the same.
///
/// Encoding ([`Self::to_bytes`]): the magic `IOTSPOOL`, a version byte,
/// then LEB128 varints (signed ones zigzag): bucket length; the number of
/// buckets and each bucket (start, packets, bytes, outside, malformed,
/// classes as count and (name length, name, packets), port, sketch and
/// source blocks each as count and (block, length, bytes), sources); then
/// 0, or 1 with the day and its port-source and infected-port blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct SpooledRun {
    bucket_ns: i64,
    buckets: Vec<SpooledBucket>,
    day: Option<(i64, Parts, Parts)>,
}

const SPOOL_MAGIC: &[u8] = b"IOTSPOOL\x01";

impl SpooledRun {
    /// The run of a finished telescope, all its blocks in memory.
    pub fn of(t: &Telescope) -> SpooledRun {
        let parts = |b: Blocks| b.into_blocks().collect::<Parts>();
        SpooledRun {
            bucket_ns: t.config().bucket_ns,
            buckets: buckets(t)
                .map(|b| SpooledBucket {
                    start: b.start,
                    totals: b.totals,
                    classes: b.classes,
                    ports: parts(b.ports),
                    sketches: parts(b.sketches),
                    sources: parts(b.sources),
                    n_sources: b.n_sources,
                })
                .collect(),
            day: day_blocks(t).map(|(d, p, i)| (d, parts(p), parts(i))),
        }
    }

    /// The encoding described on [`SpooledRun`].
    pub fn to_bytes(&self) -> Vec<u8> {
        use blocks::{put, zigzag};
        fn put_parts(out: &mut Vec<u8>, parts: &Parts) {
            put(out, parts.len() as u64);
            for (i, b) in parts {
                put(out, *i as u64);
                put(out, b.len() as u64);
                out.extend_from_slice(b);
            }
        }
        let mut out = SPOOL_MAGIC.to_vec();
        put(&mut out, zigzag(self.bucket_ns));
        put(&mut out, self.buckets.len() as u64);
        for b in &self.buckets {
            put(&mut out, zigzag(b.start));
            for v in [b.totals.0, b.totals.1, b.totals.2, b.totals.3] {
                put(&mut out, zigzag(v));
            }
            put(&mut out, b.classes.len() as u64);
            for (name, n) in &b.classes {
                put(&mut out, name.len() as u64);
                out.extend_from_slice(name.as_bytes());
                put(&mut out, zigzag(*n));
            }
            put_parts(&mut out, &b.ports);
            put_parts(&mut out, &b.sketches);
            put_parts(&mut out, &b.sources);
            put(&mut out, b.n_sources);
        }
        match &self.day {
            None => out.push(0),
            Some((day, ports, infected)) => {
                out.push(1);
                put(&mut out, zigzag(*day));
                put_parts(&mut out, ports);
                put_parts(&mut out, infected);
            }
        }
        out
    }

    /// Reads [`Self::to_bytes`]'s encoding back. Errors: [`blocks::Damaged`]
    /// for anything else (wrong magic or version, a truncated field, an
    /// unknown class, a block number out of range, bytes left over). The
    /// blocks' own records are checked when they are written.
    pub(crate) fn from_bytes(buf: &[u8]) -> Result<SpooledRun, blocks::Damaged> {
        use blocks::{unzigzag, Damaged};
        let body = buf.strip_prefix(SPOOL_MAGIC).ok_or(Damaged)?;
        let mut r = blocks::Reader::raw(body);
        let int = |r: &mut blocks::Reader<'_>| r.int();
        fn len(r: &mut blocks::Reader<'_>) -> Result<usize, Damaged> {
            usize::try_from(r.int()?).map_err(|_| Damaged)
        }
        fn parts(r: &mut blocks::Reader<'_>, n: i64) -> Result<Parts, Damaged> {
            let count = len(r)?;
            let mut out = Parts::new();
            for _ in 0..count {
                let i = r.int()?;
                if i >= n as u64 || out.last().is_some_and(|(p, _)| *p >= i as i64) {
                    return Err(Damaged);
                }
                let l = len(r)?;
                out.push((i as i64, r.bytes(l)?.to_vec()));
            }
            Ok(out)
        }
        let bucket_ns = unzigzag(int(&mut r)?);
        if bucket_ns <= 0 {
            return Err(Damaged);
        }
        let n = len(&mut r)?;
        let mut buckets = Vec::new();
        for _ in 0..n {
            let start = unzigzag(int(&mut r)?);
            // Buckets start on their length, in time order, counts are not
            // negative: anything else was not written by a telescope.
            if start.rem_euclid(bucket_ns) != 0
                || buckets
                    .last()
                    .is_some_and(|b: &SpooledBucket| b.start >= start)
            {
                return Err(Damaged);
            }
            let mut t = [0i64; 4];
            for v in &mut t {
                *v = unzigzag(int(&mut r)?);
                if *v < 0 {
                    return Err(Damaged);
                }
            }
            let mut classes = Vec::new();
            for _ in 0..len(&mut r)? {
                let l = len(&mut r)?;
                let name = std::str::from_utf8(r.bytes(l)?).map_err(|_| Damaged)?;
                let class = iotscope_wire::Class::from_name(name).ok_or(Damaged)?;
                let n = unzigzag(int(&mut r)?);
                if n < 0 {
                    return Err(Damaged);
                }
                classes.push((class.name(), n));
            }
            buckets.push(SpooledBucket {
                start,
                totals: (t[0], t[1], t[2], t[3]),
                classes,
                ports: parts(&mut r, PORT_BLOCKS)?,
                sketches: parts(&mut r, PORT_BLOCKS)?,
                sources: parts(&mut r, blocks::SOURCE_BLOCKS)?,
                n_sources: int(&mut r)?,
            });
        }
        let day = match r.bytes(1)?[0] {
            0 => None,
            1 => {
                let day = unzigzag(int(&mut r)?);
                Some((
                    day,
                    parts(&mut r, PORT_BLOCKS)?,
                    parts(&mut r, blocks::SOURCE_BLOCKS)?,
                ))
            }
            _ => return Err(Damaged),
        };
        if !r.done() {
            return Err(Damaged);
        }
        Ok(SpooledRun {
            bucket_ns,
            buckets,
            day,
        })
    }

    /// The bucket length, ns.
    pub fn bucket_ns(&self) -> i64 {
        self.bucket_ns
    }
}

/// A run's buckets rolled up into the tiers a store of its bucket length
/// keeps ([`Tier::kept`]), one period at a time: give it each bucket in
/// time order ([`Self::add`]), then [`Self::finish`]; each hands back the
/// periods it closed, to be written (merged with stored ones) as buckets
/// of their tier. Hours are rolled from buckets and days from hours, so a
/// day is one merge of 24 rows, not of 1,440.
///
/// A period keeps its parts as they came (encoded blocks) and merges them
/// once, when it closes, all at once: merging each part into the growing
/// period instead read the period again at every part, which made a
/// ten-million-source flood's write three times as slow.
pub(crate) struct Rollups<'a> {
    /// The rollup tiers kept, finest first, and their period lengths.
    tiers: Vec<(Tier, i64)>,
    /// Per tier, the period being filled.
    open: Vec<Option<Period>>,
    /// A live run, and per tier the start of the one period of it that
    /// holds every bucket of the run, if one does: that period's sources
    /// are written from the run's per-source counters ([`whole_run_period`]).
    run: Option<&'a Telescope>,
    whole: Vec<Option<i64>>,
}

/// The start of the period of `len_ns` that holds every bucket of `t`, if
/// one does. Each source's counters over the run are then its counters
/// over that period, so the period's sources are written as a bucket's
/// are, from the counters ([`period_sources`]), instead of merging the
/// buckets' blocks (decoding and encoding every record again: on a
/// ten-million-source flood's day, 1 s of the write and 200 MB of copies).
/// None when the run spans periods, has frames stamped outside the
/// plausible window (those are in the run's counters but in no bucket),
/// or keeps no per-bucket detail.
fn whole_run_period(t: &Telescope, len_ns: i64) -> Option<i64> {
    if t.implausible().is_some() || !t.config().detail {
        return None;
    }
    let bucket_ns = t.config().bucket_ns;
    let mut periods = t
        .buckets()
        .map(|b| b.number.saturating_mul(bucket_ns).div_euclid(len_ns));
    let first = periods.next()?;
    periods
        .all(|p| p == first)
        .then(|| first.saturating_mul(len_ns))
}

/// The source blocks of a period starting at `start` that holds every
/// bucket of `t` ([`whole_run_period`]), and how many sources they list.
/// Sources are listed in order of first appearance, where a period merged
/// from its buckets' blocks lists them by address: the figures are the
/// same, the bytes not (a run written from a spool takes the merge).
fn period_sources(t: &Telescope, start: i64) -> (Blocks, u64) {
    let every = t.source_addrs().iter().zip(t.source_stats());
    source_blocks(
        start,
        every
            .filter(|(_, s)| s.packets > 0)
            .map(|(&a, s)| (a, &**s)),
    )
}

/// The source blocks of a period starting at `start` listing `sources`
/// (each once, in the order given), and how many they list.
fn source_blocks<'s>(
    start: i64,
    sources: impl Iterator<Item = (Addr, &'s SourceCounters)>,
) -> (Blocks, u64) {
    let mut out = Blocks::new(blocks::SOURCE_BLOCKS);
    let mut n = 0u64;
    for (a, c) in sources {
        blocks::put_source(out.of(blocks::source_block(a)), start, a, c);
        n += 1;
    }
    (out, n)
}

/// A period being filled: its totals and classes so far, and its parts'
/// blocks, merged when it closes.
struct Period {
    start: i64,
    totals: (i64, i64, i64, i64),
    classes: Vec<(&'static str, i64)>,
    /// (start, ports, sketches, sources) of each part.
    parts: Vec<(i64, Blocks, Blocks, Blocks)>,
}

impl<'a> Rollups<'a> {
    /// Rollups for a store of `bucket_ns` buckets.
    pub(crate) fn new(bucket_ns: i64) -> Self {
        let tiers: Vec<(Tier, i64)> = [Tier::Hour, Tier::Day]
            .into_iter()
            .filter(|t| t.kept(bucket_ns))
            .map(|t| (t, t.length_ns(bucket_ns)))
            .collect();
        Rollups {
            open: tiers.iter().map(|_| None).collect(),
            whole: tiers.iter().map(|_| None).collect(),
            run: None,
            tiers,
        }
    }

    /// Rollups of `run`: for a live run within one period of a tier, that
    /// period's sources come from the run's counters ([`whole_run_period`]).
    pub(crate) fn of_run(run: Run<'a>) -> Self {
        let mut r = Rollups::new(run.bucket_ns());
        if let Run::Live(t) = run {
            r.whole = r
                .tiers
                .iter()
                .map(|&(_, len)| whole_run_period(t, len))
                .collect();
            r.run = Some(t);
        }
        r
    }

    /// Adds one bucket (after every earlier one). Returns the periods it
    /// closed. Errors: [`Damaged`] for a block that does not decode.
    pub(crate) fn add(&mut self, b: &BucketBlocks) -> Result<Vec<(Tier, BucketBlocks)>, Damaged> {
        let mut done = Vec::new();
        self.feed(0, b, &mut done)?;
        Ok(done)
    }

    /// The periods still open.
    pub(crate) fn finish(mut self) -> Result<Vec<(Tier, BucketBlocks)>, Damaged> {
        let mut done = Vec::new();
        for i in 0..self.tiers.len() {
            if let Some(p) = self.open[i].take() {
                self.close(i, p, &mut done)?;
            }
        }
        Ok(done)
    }

    fn feed(
        &mut self,
        i: usize,
        b: &BucketBlocks,
        done: &mut Vec<(Tier, BucketBlocks)>,
    ) -> Result<(), Damaged> {
        let Some(&(_, len)) = self.tiers.get(i) else {
            return Ok(());
        };
        let start = b.start.div_euclid(len).saturating_mul(len);
        if self.open[i].as_ref().is_some_and(|o| o.start != start) {
            let closed = self.open[i].take().expect("checked");
            self.close(i, closed, done)?;
        }
        let p = self.open[i].get_or_insert_with(|| Period {
            start,
            totals: (0, 0, 0, 0),
            classes: Vec::new(),
            parts: Vec::new(),
        });
        p.totals.0 += b.totals.0;
        p.totals.1 += b.totals.1;
        p.totals.2 += b.totals.2;
        p.totals.3 += b.totals.3;
        for &(name, n) in &b.classes {
            match p.classes.iter_mut().find(|c| c.0 == name) {
                Some(c) => c.1 += n,
                None => p.classes.push((name, n)),
            }
        }
        // A period whose sources are given whole keeps none of its parts'.
        let given = self.whole[i] == Some(start);
        p.parts.push((
            b.start,
            b.ports.clone(),
            b.sketches.clone(),
            if given {
                Blocks::new(blocks::SOURCE_BLOCKS)
            } else {
                b.sources.clone()
            },
        ));
        Ok(())
    }

    /// Merges a period's parts, block by block, and hands it on: to the
    /// next tier's period, and to `done`.
    fn close(
        &mut self,
        i: usize,
        p: Period,
        done: &mut Vec<(Tier, BucketBlocks)>,
    ) -> Result<(), Damaged> {
        let mut out = BucketBlocks {
            start: p.start,
            totals: p.totals,
            classes: p.classes,
            ports: Blocks::new(PORT_BLOCKS),
            sketches: Blocks::new(PORT_BLOCKS),
            sources: Blocks::new(blocks::SOURCE_BLOCKS),
            n_sources: 0,
        };
        for block in 0..PORT_BLOCKS {
            let mut pairs = Vec::new();
            for (_, ports, sketches, _) in &p.parts {
                match (ports.get(block), sketches.get(block)) {
                    (Some(a), Some(b)) => pairs.push((a, b)),
                    (None, None) => {}
                    _ => return Err(Damaged),
                }
            }
            let (ports, sketches) = match pairs.len() {
                0 => continue,
                1 => (pairs[0].0.to_vec(), pairs[0].1.to_vec()),
                _ => blocks::merge_ports_many(&pairs)?,
            };
            out.ports.set(block, ports);
            out.sketches.set(block, sketches);
        }
        match self.run.filter(|_| self.whole[i] == Some(p.start)) {
            Some(t) => (out.sources, out.n_sources) = period_sources(t, p.start),
            None => {
                for block in 0..blocks::SOURCE_BLOCKS {
                    let parts: Vec<(i64, &[u8])> = p
                        .parts
                        .iter()
                        .filter_map(|(start, _, _, sources)| Some((*start, sources.get(block)?)))
                        .collect();
                    if parts.is_empty() {
                        continue;
                    }
                    let (merged, n) = blocks::merge_sources_counted(p.start, &parts)?;
                    out.n_sources += n;
                    out.sources.set(block, merged);
                }
            }
        }
        drop(p.parts);
        self.feed(i + 1, &out, done)?;
        done.push((self.tiers[i].0, out));
        Ok(())
    }
}
