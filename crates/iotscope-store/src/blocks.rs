//! The telescope's per-bucket figures as blocks: one stored row holds many
//! ports or many sources, encoded compactly.
//!
//! Why: a row per (bucket, port), per (bucket, source) and per (port,
//! source) made `telescope analyze --db` write two million rows for a
//! ten-million-packet capture and spend twice the analysis time doing it
//! (issue 16). A block groups what is read together anyway: the report and
//! the map read every source of a period, the series read one port across
//! buckets. Rows per run fall from millions to a few thousand, and the
//! report can add sources up block by block (one block's sources at a time
//! in memory), because a source always falls in the same block.
//!
//! Layout of every block: one version byte ([`BLOCK_VERSION`]), then records
//! back to back. Integers are unsigned LEB128 varints (as in protobuf and
//! DWARF); signed ones are zigzag-mapped first. An address is a tag byte (4
//! or 6) and its 4 or 16 bytes in network order.
//!
//! - Port block, key ([`port_block`], bucket start): per port, its
//!   [`PortIndex`], packets, unique sources and an "estimated" byte. Small:
//!   the dashboard's series read them.
//! - Port-sketch block, same key: per port, its [`PortIndex`] and the
//!   length and bytes of its [`SourceSketch`] (up to 64 KiB each), read only
//!   by the report and by merges.
//! - Source block, key ([`source_block`], bucket start): per source, its
//!   address, packets, bytes, first time (offset from the bucket start,
//!   zigzag), last time (offset from the first), class mask, SYNs, Mirai,
//!   ZMap and masscan SYNs, backscatter packets. One record per source.
//! - Port-source block, key ([`port_block`], day): per destination port, its
//!   [`PortIndex`], the number of sources and their addresses (the
//!   dashboard map's port filter).
//! - Infected-port block, key ([`source_block`], day): per source that sent
//!   Mirai SYNs in a run of that day, its address, the number of ports and
//!   the port indices, ascending, each as the difference from the previous
//!   one (the infected hosts' ports).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use iotscope_telescope::aggregate::SourceCounters;
use iotscope_telescope::sketch::SourceSketch;
use iotscope_telescope::PortIndex;
use iotscope_wire::Addr;

use crate::Tier;

/// Bumped whenever a block layout changes.
pub(crate) const BLOCK_VERSION: u8 = 1;

/// Number of source blocks: 256 for IPv4 (by first octet), 256 for IPv6.
pub(crate) const SOURCE_BLOCKS: i64 = 512;

/// The block of a source: its first octet for IPv4 (sources spread over
/// the address space), 256 plus the XOR of its 16 bytes for IPv6 (whose
/// first bytes are nearly always 0x20 0x01..0x2a 0x0f).
pub(crate) fn source_block(a: Addr) -> i64 {
    match a {
        Addr::V4(v) => (v >> 24) as i64,
        Addr::V6(v) => 256 + v.to_be_bytes().iter().fold(0u8, |x, b| x ^ b) as i64,
    }
}

/// The block of a destination port: 256 ports per block, TCP blocks
/// 0..=255, UDP 256..=511 (the [`PortIndex`] shifted right by 8).
pub(crate) fn port_block(p: PortIndex) -> i64 {
    (p >> 8) as i64
}

/// A block that cannot be read: truncated, or of an unknown version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damaged;

/// A new, empty block.
pub(crate) fn new_block() -> Vec<u8> {
    vec![BLOCK_VERSION]
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

fn put_addr(out: &mut Vec<u8>, a: Addr) {
    match a {
        Addr::V4(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Addr::V6(v) => {
            out.push(6);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// A reader over one block's records.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the version byte. Errors: [`Damaged`] when empty or of
    /// another version.
    pub(crate) fn new(buf: &'a [u8]) -> Result<Self, Damaged> {
        match buf.first() {
            Some(&BLOCK_VERSION) => Ok(Reader { buf, pos: 1 }),
            _ => Err(Damaged),
        }
    }

    /// A reader over bytes without a version byte (the spool's framing).
    pub(crate) fn raw(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Whether every record was read.
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn byte(&mut self) -> Result<u8, Damaged> {
        let b = *self.buf.get(self.pos).ok_or(Damaged)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Damaged> {
        let end = self.pos.checked_add(n).ok_or(Damaged)?;
        let s = self.buf.get(self.pos..end).ok_or(Damaged)?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn int(&mut self) -> Result<u64, Damaged> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            // The tenth byte holds bit 63 only.
            if shift == 63 && b > 1 {
                return Err(Damaged);
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Damaged)
    }

    fn addr(&mut self) -> Result<Addr, Damaged> {
        match self.byte()? {
            4 => Ok(Addr::V4(u32::from_be_bytes(
                self.bytes(4)?.try_into().map_err(|_| Damaged)?,
            ))),
            6 => Ok(Addr::V6(u128::from_be_bytes(
                self.bytes(16)?.try_into().map_err(|_| Damaged)?,
            ))),
            _ => Err(Damaged),
        }
    }

    fn port(&mut self) -> Result<PortIndex, Damaged> {
        let v = self.int()?;
        if v >= 1 << 17 {
            return Err(Damaged);
        }
        Ok(v as PortIndex)
    }
}

/// One port of a port block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortEntry {
    pub port: PortIndex,
    pub packets: u64,
    pub sources: u64,
    pub estimated: bool,
}

/// Appends one port to a port block.
pub(crate) fn put_port(out: &mut Vec<u8>, e: &PortEntry) {
    put(out, e.port as u64);
    put(out, e.packets);
    put(out, e.sources);
    out.push(e.estimated as u8);
}

/// Appends one port's sketch to a port-sketch block.
pub(crate) fn put_port_sketch(out: &mut Vec<u8>, port: PortIndex, sketch: &[u8]) {
    put(out, port as u64);
    put(out, sketch.len() as u64);
    out.extend_from_slice(sketch);
}

impl<'a> Reader<'a> {
    /// The next port of a port block.
    pub(crate) fn next_port(&mut self) -> Result<PortEntry, Damaged> {
        let port = self.port()?;
        let packets = self.int()?;
        let sources = self.int()?;
        let estimated = match self.byte()? {
            0 => false,
            1 => true,
            _ => return Err(Damaged),
        };
        Ok(PortEntry {
            port,
            packets,
            sources,
            estimated,
        })
    }

    /// The next port of a port-sketch block, with its encoded sketch.
    pub(crate) fn next_port_sketch(&mut self) -> Result<(PortIndex, &'a [u8]), Damaged> {
        let port = self.port()?;
        let n = usize::try_from(self.int()?).map_err(|_| Damaged)?;
        Ok((port, self.bytes(n)?))
    }

    /// The next port of a port-source block; its sources are appended to
    /// `addrs`, which is cleared first.
    pub(crate) fn next_port_sources(
        &mut self,
        addrs: &mut Vec<Addr>,
    ) -> Result<PortIndex, Damaged> {
        let port = self.port()?;
        let n = self.int()?;
        addrs.clear();
        for _ in 0..n {
            addrs.push(self.addr()?);
        }
        Ok(port)
    }
}

/// Appends one port and its sources to a port-source block.
pub(crate) fn put_port_sources(out: &mut Vec<u8>, port: PortIndex, addrs: &[Addr]) {
    put(out, port as u64);
    put(out, addrs.len() as u64);
    for &a in addrs {
        put_addr(out, a);
    }
}

/// Appends one source of the bucket starting at `start_ns`.
pub(crate) fn put_source(out: &mut Vec<u8>, start_ns: i64, a: Addr, c: &SourceCounters) {
    put_addr(out, a);
    put(out, c.packets);
    put(out, c.bytes);
    put(out, zigzag(c.first_ts.wrapping_sub(start_ns)));
    put(out, c.last_ts.wrapping_sub(c.first_ts) as u64);
    put(out, c.class_mask as u64);
    for v in [c.syn, c.mirai, c.zmap, c.masscan, c.backscatter] {
        put(out, v);
    }
}

impl Reader<'_> {
    /// The next source of a source block of the bucket starting at `start_ns`.
    pub(crate) fn next_source(&mut self, start_ns: i64) -> Result<(Addr, SourceCounters), Damaged> {
        let a = self.addr()?;
        let packets = self.int()?;
        let bytes = self.int()?;
        let first_ts = start_ns.wrapping_add(unzigzag(self.int()?));
        let last_ts = first_ts.wrapping_add(self.int()? as i64);
        let class_mask = u16::try_from(self.int()?).map_err(|_| Damaged)?;
        let mut v = [0u64; 5];
        for x in &mut v {
            *x = self.int()?;
        }
        let [syn, mirai, zmap, masscan, backscatter] = v;
        Ok((
            a,
            SourceCounters {
                packets,
                bytes,
                first_ts,
                last_ts,
                class_mask,
                syn,
                mirai,
                zmap,
                masscan,
                backscatter,
            },
        ))
    }

    /// The next source of an infected-port block: its address; its ports
    /// are appended to `ports`, which is cleared first.
    pub(crate) fn next_source_ports(
        &mut self,
        ports: &mut Vec<PortIndex>,
    ) -> Result<Addr, Damaged> {
        let a = self.addr()?;
        let n = self.int()?;
        ports.clear();
        let mut port = 0u64;
        for i in 0..n {
            let d = self.int()?;
            port = if i == 0 {
                d
            } else {
                port.checked_add(d).ok_or(Damaged)?
            };
            if port >= 1 << 17 {
                return Err(Damaged);
            }
            ports.push(port as PortIndex);
        }
        Ok(a)
    }
}

/// Appends one source with its destination ports (ascending) to an
/// infected-port block.
pub(crate) fn put_source_ports(out: &mut Vec<u8>, a: Addr, ports: &[PortIndex]) {
    put_addr(out, a);
    put(out, ports.len() as u64);
    let mut last = 0;
    for (i, &p) in ports.iter().enumerate() {
        put(out, if i == 0 { p } else { p - last } as u64);
        last = p;
    }
}

/// The tables of telescope blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockTable {
    /// Port blocks of a tier (the store's buckets, or a rollup).
    Ports(Tier),
    /// Their sketches.
    PortSketches(Tier),
    /// Source blocks of a tier.
    Sources(Tier),
    PortSources,
    InfectedPorts,
    DaySources,
}

impl BlockTable {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BlockTable::Ports(Tier::Bucket) => "bucket_port_blocks",
            BlockTable::PortSketches(Tier::Bucket) => "bucket_port_sketches",
            BlockTable::Sources(Tier::Bucket) => "bucket_source_blocks",
            BlockTable::Ports(Tier::Hour) => "hourly_port_blocks",
            BlockTable::PortSketches(Tier::Hour) => "hourly_port_sketches",
            BlockTable::Sources(Tier::Hour) => "hourly_source_blocks",
            BlockTable::Ports(Tier::Day) => "daily_port_blocks",
            BlockTable::PortSketches(Tier::Day) => "daily_port_sketches",
            BlockTable::Sources(Tier::Day) => "daily_source_blocks",
            BlockTable::PortSources => "port_source_blocks",
            BlockTable::InfectedPorts => "infected_port_blocks",
            BlockTable::DaySources => "day_source_blocks",
        }
    }

    /// A stored block of this table merged with a new one of the same
    /// block and key (a bucket start, or a day). Ports are merged in pairs
    /// with their sketches ([`merge_ports`]); day rollups are written whole.
    pub(crate) fn merge(self, key: i64, old: &[u8], new: &[u8]) -> Result<Vec<u8>, Damaged> {
        match self {
            BlockTable::Sources(_) => merge_sources(key, old, new),
            BlockTable::PortSources => merge_port_sources(old, new),
            BlockTable::InfectedPorts => merge_source_ports(old, new),
            BlockTable::DaySources => unreachable!("day rows are written whole"),
            BlockTable::Ports(_) | BlockTable::PortSketches(_) => {
                unreachable!("ports are merged in pairs by merge_ports")
            }
        }
    }

    /// The second key column: a bucket start, or a day.
    pub(crate) fn key(self) -> &'static str {
        match self {
            BlockTable::Ports(_) | BlockTable::PortSketches(_) | BlockTable::Sources(_) => {
                "start_ns"
            }
            BlockTable::PortSources | BlockTable::InfectedPorts | BlockTable::DaySources => "day",
        }
    }
}

/// Number of port blocks: 256 for TCP, 256 for UDP.
pub(crate) const PORT_BLOCKS: i64 = 512;

/// The blocks of one bucket (or run) being written: a buffer per block,
/// started with the version byte when first used.
#[derive(Clone)]
pub(crate) struct Blocks {
    bufs: Vec<Vec<u8>>,
}

impl Blocks {
    /// `n` empty blocks.
    pub(crate) fn new(n: i64) -> Self {
        Blocks {
            bufs: vec![Vec::new(); n as usize],
        }
    }

    /// The buffer of `block` (below `n`), to append records to.
    pub(crate) fn of(&mut self, block: i64) -> &mut Vec<u8> {
        let b = &mut self.bufs[block as usize];
        if b.is_empty() {
            b.push(BLOCK_VERSION);
        }
        b
    }

    /// `n` blocks holding `parts` (block number below `n`, bytes as
    /// [`Self::into_blocks`] gave them).
    pub(crate) fn from_parts(n: i64, parts: Vec<(i64, Vec<u8>)>) -> Self {
        let mut out = Blocks::new(n);
        for (i, b) in parts {
            out.bufs[i as usize] = b;
        }
        out
    }

    /// Block `block`'s bytes, if it has records.
    pub(crate) fn get(&self, block: i64) -> Option<&[u8]> {
        self.bufs
            .get(block as usize)
            .filter(|b| !b.is_empty())
            .map(Vec::as_slice)
    }

    /// Replaces block `block` (below `n`) with `data`.
    pub(crate) fn set(&mut self, block: i64, data: Vec<u8>) {
        self.bufs[block as usize] = data;
    }

    /// The blocks with at least one record, with their numbers.
    pub(crate) fn into_blocks(self) -> impl Iterator<Item = (i64, Vec<u8>)> {
        self.bufs
            .into_iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| (i as i64, b))
    }
}

/// A port block and its sketch block from two pairs of the same bucket
/// and block (a stored pair and a new run's): packets added, sketches
/// merged; a port in both gets the union's count as its sources, estimated
/// once the union is HyperLogLog. Returns (ports, sketches).
pub(crate) fn merge_ports(
    old: (&[u8], &[u8]),
    new: (&[u8], &[u8]),
) -> Result<(Vec<u8>, Vec<u8>), Damaged> {
    merge_ports_many(&[old, new])
}

/// [`merge_ports`] of any number of pairs of the same block (the parts of
/// a rollup's period): a port in one keeps its entry; a port in several
/// gets its packets added and the union's count as its sources.
pub(crate) fn merge_ports_many(pairs: &[(&[u8], &[u8])]) -> Result<(Vec<u8>, Vec<u8>), Damaged> {
    // Per port: its entry, the union of its sketches, and in how many.
    let mut map: BTreeMap<PortIndex, (PortEntry, SourceSketch, u32)> = BTreeMap::new();
    for &(ports, sketches) in pairs {
        let mut r = Reader::new(ports)?;
        let mut rs = Reader::new(sketches)?;
        while !r.done() {
            let e = r.next_port()?;
            let (port, bytes) = rs.next_port_sketch()?;
            if port != e.port {
                return Err(Damaged);
            }
            let sketch = SourceSketch::from_bytes(bytes).map_err(|_| Damaged)?;
            match map.entry(e.port) {
                Entry::Vacant(v) => {
                    v.insert((e, sketch, 1));
                }
                Entry::Occupied(mut o) => {
                    let (have, union, seen) = o.get_mut();
                    union.merge(&sketch);
                    have.packets = have.packets.saturating_add(e.packets);
                    *seen += 1;
                }
            }
        }
        if !rs.done() {
            return Err(Damaged);
        }
    }
    let (mut ports, mut sketches) = (new_block(), new_block());
    for (port, (mut e, sketch, seen)) in map {
        if seen > 1 {
            e.sources = sketch.count();
            e.estimated = !sketch.is_exact();
        }
        put_port(&mut ports, &e);
        put_port_sketch(&mut sketches, port, &sketch.to_bytes());
    }
    Ok((ports, sketches))
}

/// One source block from two of the bucket starting at `start_ns` (a
/// stored one and a new run's): a source in both gets its counters added.
pub(crate) fn merge_sources(start_ns: i64, old: &[u8], new: &[u8]) -> Result<Vec<u8>, Damaged> {
    merge_sources_counted(start_ns, &[(start_ns, old), (start_ns, new)]).map(|(out, _)| out)
}

/// One source block, keyed by `out_start`, from source blocks of buckets
/// starting at other times (`(start, block)`; a bucket rolled up into its
/// hour or day), and how many sources it holds: a source in several gets
/// its counters added. Times are stored as offsets from the key, so each
/// block is read at its own start. The output lists sources in ascending
/// address order.
///
/// Blocks a merge wrote list their sources in ascending address order, so
/// when every part did (a day rolled up from merged hours, a stored day
/// and a run's day merged from its buckets) the parts are merged as they
/// are read, like the merge step of a merge sort: no record is held but
/// one per part. Other blocks (a bucket's, or a period's written whole,
/// list sources as the run first saw them) are gathered, sorted by address
/// and summed where an address repeats, cheaper than a hash map of every
/// source (a flood's day is ten million).
pub(crate) fn merge_sources_counted(
    out_start: i64,
    parts: &[(i64, &[u8])],
) -> Result<(Vec<u8>, u64), Damaged> {
    match merge_sorted_sources(out_start, parts)? {
        Some(done) => Ok(done),
        None => merge_unsorted_sources(out_start, parts),
    }
}

/// The streaming merge of [`merge_sources_counted`]; None as soon as a
/// part turns out not to be in strictly ascending address order.
fn merge_sorted_sources(
    out_start: i64,
    parts: &[(i64, &[u8])],
) -> Result<Option<(Vec<u8>, u64)>, Damaged> {
    struct Head<'a> {
        reader: Reader<'a>,
        start: i64,
        current: Option<(Addr, SourceCounters)>,
    }
    impl Head<'_> {
        /// Reads the next record; false when it is not above `last`, the
        /// address of the one before.
        fn advance(&mut self, last: Option<Addr>) -> Result<bool, Damaged> {
            self.current = if self.reader.done() {
                None
            } else {
                Some(self.reader.next_source(self.start)?)
            };
            Ok(match (last, &self.current) {
                (Some(l), Some((a, _))) => *a > l,
                _ => true,
            })
        }
    }
    let mut heads = Vec::with_capacity(parts.len());
    for &(start, buf) in parts {
        let mut h = Head {
            reader: Reader::new(buf)?,
            start,
            current: None,
        };
        h.advance(None)?;
        heads.push(h);
    }
    let mut out = new_block();
    let mut n = 0u64;
    // Parts are few (a day of hours, an hour of buckets): the smallest
    // head is found by a scan, not a heap.
    while let Some(low) = heads
        .iter()
        .filter_map(|h| h.current.as_ref().map(|c| c.0))
        .min()
    {
        // The first record as it is, the others added to it (as the
        // gathering merge does).
        let mut sum: Option<SourceCounters> = None;
        for h in &mut heads {
            if h.current.as_ref().is_some_and(|c| c.0 == low) {
                let (a, c) = h.current.take().expect("checked");
                match &mut sum {
                    None => sum = Some(c),
                    Some(s) => s.add(&c),
                }
                if !h.advance(Some(a))? {
                    return Ok(None);
                }
            }
        }
        let sum = sum.expect("the lowest head was taken");
        put_source(&mut out, out_start, low, &sum);
        n += 1;
    }
    Ok(Some((out, n)))
}

/// The gathering merge of [`merge_sources_counted`], for parts in any order.
fn merge_unsorted_sources(
    out_start: i64,
    parts: &[(i64, &[u8])],
) -> Result<(Vec<u8>, u64), Damaged> {
    let mut rows: Vec<(Addr, SourceCounters)> = Vec::new();
    for &(start, buf) in parts {
        let mut r = Reader::new(buf)?;
        while !r.done() {
            rows.push(r.next_source(start)?);
        }
    }
    rows.sort_unstable_by_key(|r| r.0);
    let mut out = new_block();
    let mut n = 0u64;
    let mut it = rows.into_iter().peekable();
    while let Some((a, mut c)) = it.next() {
        while let Some((_, more)) = it.next_if(|r| r.0 == a) {
            c.add(&more);
        }
        put_source(&mut out, out_start, a, &c);
        n += 1;
    }
    Ok((out, n))
}

/// The number of source records in a source block.
pub(crate) fn count_sources(buf: &[u8]) -> Result<u64, Damaged> {
    let mut r = Reader::new(buf)?;
    let mut n = 0;
    while !r.done() {
        r.next_source(0)?;
        n += 1;
    }
    Ok(n)
}

/// One infected-port block from two of the same block and day: a source
/// in both gets the union of its ports.
pub(crate) fn merge_source_ports(old: &[u8], new: &[u8]) -> Result<Vec<u8>, Damaged> {
    let mut map: HashMap<Addr, Vec<PortIndex>> = HashMap::new();
    let mut ports = Vec::new();
    for buf in [old, new] {
        let mut r = Reader::new(buf)?;
        while !r.done() {
            let a = r.next_source_ports(&mut ports)?;
            map.entry(a).or_default().extend_from_slice(&ports);
        }
    }
    let mut rows: Vec<_> = map.into_iter().collect();
    rows.sort_unstable_by_key(|r| r.0);
    let mut out = new_block();
    for (a, mut ports) in rows {
        ports.sort_unstable();
        ports.dedup();
        put_source_ports(&mut out, a, &ports);
    }
    Ok(out)
}

/// One port-source block from two of the same block and day: a port in
/// both gets the union of its sources.
pub(crate) fn merge_port_sources(old: &[u8], new: &[u8]) -> Result<Vec<u8>, Damaged> {
    let mut map: BTreeMap<PortIndex, Vec<Addr>> = BTreeMap::new();
    let mut addrs = Vec::new();
    for buf in [old, new] {
        let mut r = Reader::new(buf)?;
        while !r.done() {
            let port = r.next_port_sources(&mut addrs)?;
            map.entry(port).or_default().extend_from_slice(&addrs);
        }
    }
    let mut out = new_block();
    for (port, mut addrs) in map {
        addrs.sort_unstable();
        addrs.dedup();
        put_port_sources(&mut out, port, &addrs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counters(v: [u64; 7], first: i64, span: u64) -> SourceCounters {
        SourceCounters {
            packets: v[0],
            bytes: v[1],
            first_ts: first,
            last_ts: first.wrapping_add(span as i64),
            class_mask: (v[2] & 0x7ff) as u16,
            syn: v[3],
            mirai: v[4],
            zmap: v[5],
            masscan: v[6],
            backscatter: v[0] ^ v[1],
        }
    }

    proptest! {
        #[test]
        fn sources_round_trip(
            rows in proptest::collection::vec((any::<u128>(), any::<bool>(), any::<[u64; 7]>(), any::<i64>(), any::<u64>()), 0..40),
            start in any::<i64>(),
        ) {
            let mut b = new_block();
            let mut want = Vec::new();
            for (a, v4, v, first, span) in rows {
                let addr = if v4 { Addr::V4(a as u32) } else { Addr::V6(a) };
                let c = counters(v, first, span);
                put_source(&mut b, start, addr, &c);
                want.push((addr, c));
            }
            let mut r = Reader::new(&b).unwrap();
            let mut got = Vec::new();
            while !r.done() {
                got.push(r.next_source(start).unwrap());
            }
            prop_assert_eq!(got, want);
        }

        /// Parts in address order are merged as they are read, parts in
        /// any order by gathering: both give each address once, its
        /// counters summed, in address order, as summing by hand does.
        #[test]
        fn source_merges_sum_each_address_once_in_address_order(
            parts in proptest::collection::vec(
                (proptest::collection::vec((0u32..64, any::<bool>(), 1u64..1000, 0i64..1_000_000), 0..30),
                 0i64..4, any::<bool>()),
                0..5),
        ) {
            let out_start = 7_200_000_000_000i64;
            let mut want: BTreeMap<Addr, SourceCounters> = BTreeMap::new();
            let mut blocks = Vec::new();
            for (rows, hour, sorted) in &parts {
                let start = hour * 3_600_000_000_000;
                let mut rows: Vec<(Addr, SourceCounters)> = rows
                    .iter()
                    .map(|&(a, v6, n, at)| {
                        let addr = if v6 { Addr::V6(a as u128) } else { Addr::V4(a) };
                        (addr, counters([n, n * 60, 1, n, 0, n / 2, 0], start + at, 5))
                    })
                    .collect();
                rows.sort_by_key(|r| r.0);
                rows.dedup_by_key(|r| r.0);
                if !sorted {
                    rows.reverse();
                }
                let mut b = new_block();
                for (a, c) in &rows {
                    put_source(&mut b, start, *a, c);
                    want.entry(*a).or_default().add(c);
                }
                blocks.push((start, b));
            }
            let views: Vec<(i64, &[u8])> = blocks.iter().map(|(s, b)| (*s, &b[..])).collect();
            let (merged, n) = merge_sources_counted(out_start, &views).unwrap();
            let mut r = Reader::new(&merged).unwrap();
            let mut got = Vec::new();
            while !r.done() {
                got.push(r.next_source(out_start).unwrap());
            }
            prop_assert_eq!(n as usize, got.len());
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn ports_and_their_sources_round_trip(
            ports in proptest::collection::btree_set(0u32..(1 << 17), 0..50),
            counts in any::<(u64, u64, bool)>(),
            sketch in proptest::collection::vec(any::<u8>(), 0..100),
            addrs in proptest::collection::vec(any::<u128>(), 0..20),
        ) {
            let ports: Vec<PortIndex> = ports.into_iter().collect();
            let addrs: Vec<Addr> = addrs.into_iter().map(|a| if a & 1 == 0 { Addr::V4(a as u32) } else { Addr::V6(a) }).collect();
            let entry = |port| PortEntry { port, packets: counts.0, sources: counts.1, estimated: counts.2 };
            let mut b = new_block();
            for &p in &ports {
                put_port(&mut b, &entry(p));
                put_port_sketch(&mut b, p, &sketch);
                put_port_sources(&mut b, p, &addrs);
            }
            put_source_ports(&mut b, Addr::V4(7), &ports);
            let mut r = Reader::new(&b).unwrap();
            let mut got_addrs = Vec::new();
            for &p in &ports {
                prop_assert_eq!(r.next_port().unwrap(), entry(p));
                prop_assert_eq!(r.next_port_sketch().unwrap(), (p, &sketch[..]));
                prop_assert_eq!(r.next_port_sources(&mut got_addrs).unwrap(), p);
                prop_assert_eq!(&got_addrs, &addrs);
            }
            let mut got = Vec::new();
            prop_assert_eq!(r.next_source_ports(&mut got).unwrap(), Addr::V4(7));
            prop_assert_eq!(got, ports);
            prop_assert!(r.done());
        }

        /// Damaged bytes give an error, never a panic or a hang.
        #[test]
        fn damaged_blocks_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(mut r) = Reader::new(&bytes) {
                let mut ports = Vec::new();
                let mut addrs = Vec::new();
                for kind in 0..5 {
                    let mut r2 = Reader { buf: r.buf, pos: r.pos };
                    while !r2.done() {
                        let ok = match kind {
                            0 => r2.next_port().is_ok(),
                            1 => r2.next_source(0).is_ok(),
                            2 => r2.next_port_sketch().is_ok(),
                            3 => r2.next_port_sources(&mut addrs).is_ok(),
                            _ => r2.next_source_ports(&mut ports).is_ok(),
                        };
                        if !ok { break; }
                    }
                }
                // Merges of damaged blocks are errors too.
                let _ = merge_ports((&bytes, &bytes), (&bytes, &bytes));
                let _ = merge_sources(0, &bytes, &bytes);
                let _ = merge_source_ports(&bytes, &bytes);
                let _ = merge_port_sources(&bytes, &bytes);
                r.pos = r.buf.len();
                prop_assert!(r.done());
            }
        }
    }

    #[test]
    fn port_lists_merge_into_unions() {
        let mut a = new_block();
        put_source_ports(&mut a, Addr::V4(1), &[23, 80]);
        put_source_ports(&mut a, Addr::V4(2), &[23]);
        let mut b = new_block();
        put_source_ports(&mut b, Addr::V4(1), &[22, 80]);
        put_source_ports(&mut b, Addr::V6(3), &[(1 << 16) | 53]);
        let m = merge_source_ports(&a, &b).unwrap();
        let mut r = Reader::new(&m).unwrap();
        let mut ports = Vec::new();
        let mut got = Vec::new();
        while !r.done() {
            let addr = r.next_source_ports(&mut ports).unwrap();
            got.push((addr, ports.clone()));
        }
        assert_eq!(
            got,
            vec![
                (Addr::V4(1), vec![22, 23, 80]),
                (Addr::V4(2), vec![23]),
                (Addr::V6(3), vec![(1 << 16) | 53]),
            ]
        );
        let mut a = new_block();
        put_port_sources(&mut a, 23, &[Addr::V4(2), Addr::V4(1)]);
        let mut b = new_block();
        put_port_sources(&mut b, 23, &[Addr::V4(1), Addr::V6(9)]);
        put_port_sources(&mut b, 22, &[Addr::V4(5)]);
        let m = merge_port_sources(&a, &b).unwrap();
        let mut r = Reader::new(&m).unwrap();
        let mut addrs = Vec::new();
        assert_eq!(r.next_port_sources(&mut addrs).unwrap(), 22);
        assert_eq!(addrs, vec![Addr::V4(5)]);
        assert_eq!(r.next_port_sources(&mut addrs).unwrap(), 23);
        assert_eq!(addrs, vec![Addr::V4(1), Addr::V4(2), Addr::V6(9)]);
        assert!(r.done());
    }

    /// Merged ports: packets added, a port in both gets the union's
    /// sources; a port in one keeps its own figures.
    #[test]
    fn ports_merge_with_their_sketches() {
        let sk = |xs: &[u64]| {
            let mut s = SourceSketch::default();
            xs.iter().for_each(|&h| s.insert_hash(h));
            s.to_bytes()
        };
        let e = |port, packets, sources| PortEntry {
            port,
            packets,
            sources,
            estimated: false,
        };
        let (mut p1, mut s1) = (new_block(), new_block());
        put_port(&mut p1, &e(23, 10, 2));
        put_port_sketch(&mut s1, 23, &sk(&[1, 2]));
        let (mut p2, mut s2) = (new_block(), new_block());
        put_port(&mut p2, &e(22, 4, 1));
        put_port_sketch(&mut s2, 22, &sk(&[7]));
        put_port(&mut p2, &e(23, 5, 2));
        put_port_sketch(&mut s2, 23, &sk(&[2, 3]));
        let (p, s) = merge_ports((&p1, &s1), (&p2, &s2)).unwrap();
        let mut r = Reader::new(&p).unwrap();
        assert_eq!(r.next_port().unwrap(), e(22, 4, 1));
        assert_eq!(r.next_port().unwrap(), e(23, 15, 3));
        assert!(r.done());
        let mut r = Reader::new(&s).unwrap();
        assert_eq!(r.next_port_sketch().unwrap(), (22, &sk(&[7])[..]));
        assert_eq!(r.next_port_sketch().unwrap(), (23, &sk(&[1, 2, 3])[..]));
        // A sketch block that does not follow its port block is damaged.
        assert_eq!(merge_ports((&p1, &s2), (&p2, &s2)), Err(Damaged));
    }

    #[test]
    fn versions_and_truncation_are_refused() {
        assert_eq!(Reader::new(&[]).err(), Some(Damaged));
        assert_eq!(Reader::new(&[BLOCK_VERSION + 1]).err(), Some(Damaged));
        let mut b = new_block();
        put_source(&mut b, 0, Addr::V6(1), &SourceCounters::default());
        b.pop();
        let mut r = Reader::new(&b).unwrap();
        assert_eq!(r.next_source(0), Err(Damaged));
        // A varint longer than 64 bits.
        let mut r = Reader::new(&[
            BLOCK_VERSION,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x01,
        ])
        .unwrap();
        assert_eq!(r.int(), Err(Damaged));
    }

    #[test]
    fn blocks_split_the_address_and_port_spaces() {
        assert_eq!(source_block(Addr::V4(0xc612_0001)), 0xc6);
        let b6 = source_block(Addr::V6(0x2001_0db8 << 96));
        assert!((256..512).contains(&b6));
        assert_eq!(port_block(23), 0);
        assert_eq!(port_block((1 << 16) | 53), 256);
        assert_eq!(port_block((1 << 16) | 65535), 511);
    }
}
