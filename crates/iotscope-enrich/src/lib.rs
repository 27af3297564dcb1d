//! Address to AS number and organisation, from the usual public tables:
//! range CSV as in the `@ip-location-db/asn` package
//! (`start,end,asn,organisation`), iptoasn TSV
//! (`start\tend\tasn\tcountry\tdescription`) and RouteViews pfx2as
//! (`prefix\tlength\tasn`, nested prefixes: the longest wins).
//!
//! MaxMind-format databases (`mmdb`): AS ones load into the same table,
//! location ones answer country, region, city and coordinates ([`GeoDb`]).
//!
//! Every table becomes one sorted list of disjoint ranges over IPv4-mapped
//! IPv6 keys, so a lookup is one binary search whatever the family.

use std::net::IpAddr;

mod mmdb;
pub use mmdb::{Geo, GeoDb, MmdbError};

/// What an address maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsInfo<'a> {
    /// AS number.
    pub asn: u32,
    /// Its organisation (empty when the table has none).
    pub org: &'a str,
}

/// A table line that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}, line {line}: {what}")]
pub struct TableError {
    /// File.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

/// Table formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `start,end,asn,organisation` (ip-location-db).
    Csv,
    /// `start\tend\tasn\tcountry\tdescription` (iptoasn.com).
    Iptoasn,
    /// `prefix\tlength\tasn` (RouteViews pfx2as; AS sets and multi-origin take the first).
    Pfx2as,
}

fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => (0xffffu128 << 32) | u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An AS table.
#[derive(Clone, Debug, Default)]
pub struct AsnTable {
    /// (start, end, asn, org index), sorted, disjoint.
    ranges: Vec<(u128, u128, u32, u32)>,
    orgs: Vec<String>,
}

/// Splits one CSV line: commas, double-quoted fields, doubled quotes inside
/// them. Fields are not trimmed.
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl AsnTable {
    /// Parses a table. Blank and `#` lines are skipped, and a header line
    /// (one whose first field is not an address) too; any other bad line is
    /// an error naming the file and line.
    pub fn parse(format: Format, text: &str, file: &str) -> Result<AsnTable, TableError> {
        let mut org_index: std::collections::HashMap<String, u32> = Default::default();
        let mut orgs: Vec<String> = Vec::new();
        let mut intern = |o: &str| -> u32 {
            if let Some(&i) = org_index.get(o) {
                return i;
            }
            orgs.push(o.to_string());
            org_index.insert(o.to_string(), (orgs.len() - 1) as u32);
            (orgs.len() - 1) as u32
        };
        let mut ranges = Vec::new();
        let mut prefixes: Vec<(u128, u32, u32)> = Vec::new(); // pfx2as: (net, len, asn)
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what: String| TableError {
                file: file.to_string(),
                line: i + 1,
                what,
            };
            let f: Vec<String> = match format {
                Format::Csv => csv_fields(line),
                _ => line.split('\t').map(String::from).collect(),
            };
            let first: Option<IpAddr> = f.first().and_then(|x| x.trim().parse().ok());
            let Some(first) = first else {
                if i == 0 || ranges.is_empty() && prefixes.is_empty() {
                    continue; // a header
                }
                return Err(err(format!(
                    "{:?} is not an address",
                    f.first().cloned().unwrap_or_default()
                )));
            };
            let asn_of = |s: &str| -> Option<u32> {
                let s = s.trim().trim_start_matches("AS");
                // AS sets ("{1,2}") and multi-origin ("1_2"): the first.
                s.trim_matches(['{', '}'])
                    .split(['_', ','])
                    .next()?
                    .parse()
                    .ok()
            };
            match format {
                Format::Csv | Format::Iptoasn => {
                    if f.len() < 3 {
                        return Err(err("expected start, end and AS number".into()));
                    }
                    let end: IpAddr = f[1]
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("{:?} is not an address", f[1])))?;
                    if first.is_ipv4() != end.is_ipv4() || key(end) < key(first) {
                        return Err(err(
                            "the range ends before it starts or mixes families".into()
                        ));
                    }
                    let asn = asn_of(&f[2])
                        .ok_or_else(|| err(format!("{:?} is not an AS number", f[2])))?;
                    if asn == 0 {
                        continue; // iptoasn: "not routed"
                    }
                    let org = match format {
                        Format::Csv => f.get(3).map(|s| s.trim()).unwrap_or(""),
                        _ => f.get(4).map(|s| s.trim()).unwrap_or(""),
                    };
                    ranges.push((key(first), key(end), asn, intern(org)));
                }
                Format::Pfx2as => {
                    if f.len() < 3 {
                        return Err(err("expected prefix, length and AS number".into()));
                    }
                    let len: u32 = f[1]
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("{:?} is not a length", f[1])))?;
                    let max = if first.is_ipv4() { 32 } else { 128 };
                    if len > max {
                        return Err(err(format!("length {len} is too long")));
                    }
                    let asn = asn_of(&f[2])
                        .ok_or_else(|| err(format!("{:?} is not an AS number", f[2])))?;
                    let len = if first.is_ipv4() { len + 96 } else { len };
                    let mask = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - len)
                    };
                    prefixes.push((key(first) & mask, len, asn));
                }
            }
        }
        if !prefixes.is_empty() {
            ranges = flatten(prefixes, intern(""));
        }
        ranges.sort_unstable();
        Ok(AsnTable::from_sorted_ranges(ranges, orgs))
    }

    /// The table from sorted (start, end, asn, org index) ranges; where
    /// ranges overlap (a damaged table, or merged ones) the earlier start wins.
    fn from_sorted_ranges(ranges: Vec<(u128, u128, u32, u32)>, orgs: Vec<String>) -> AsnTable {
        let mut out: Vec<(u128, u128, u32, u32)> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match out.last() {
                Some(last) if r.0 <= last.1 => {
                    if r.1 > last.1 {
                        out.push((last.1 + 1, r.1, r.2, r.3));
                    }
                }
                _ => out.push(r),
            }
        }
        AsnTable { ranges: out, orgs }
    }

    /// One table from several (IPv4 and IPv6 files, say); where they
    /// overlap, the earlier range wins.
    pub fn merge(tables: Vec<AsnTable>) -> AsnTable {
        let mut orgs = Vec::new();
        let mut ranges = Vec::new();
        for t in tables {
            let base = orgs.len() as u32;
            ranges.extend(
                t.ranges
                    .into_iter()
                    .map(|(a, b, asn, o)| (a, b, asn, o + base)),
            );
            orgs.extend(t.orgs);
        }
        ranges.sort_unstable();
        AsnTable::from_sorted_ranges(ranges, orgs)
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The AS of `ip`.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<AsInfo<'_>> {
        let k = key(ip);
        let i = self.ranges.partition_point(|r| r.0 <= k);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (k <= r.1).then(|| AsInfo {
            asn: r.2,
            org: &self.orgs[r.3 as usize],
        })
    }
}

/// What a breakdown counts per group (AS or country).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCount {
    /// Distinct sources in the group.
    pub sources: u64,
    /// Their packets.
    pub packets: u64,
    /// Of those sources, how many are flagged infected.
    pub infected: u64,
}

/// One source as the breakdowns take it: address, packets, flagged infected.
pub type SourceCount = (IpAddr, u64, bool);

/// Groups sources by `key`, busiest group first (ties by key).
fn group_by<K: Ord + std::hash::Hash>(
    sources: impl IntoIterator<Item = SourceCount>,
    key: impl Fn(IpAddr) -> K,
) -> Vec<(K, GroupCount)> {
    let mut groups: std::collections::HashMap<K, GroupCount> = Default::default();
    for (ip, packets, infected) in sources {
        let g = groups.entry(key(ip)).or_default();
        g.sources += 1;
        g.packets += packets;
        g.infected += u64::from(infected);
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| b.1.packets.cmp(&a.1.packets).then(a.0.cmp(&b.0)));
    rows
}

impl AsnTable {
    /// Sources per AS, busiest first: ((AS number, organisation), counts);
    /// AS 0 gathers the sources the table does not hold.
    pub fn count_by_as(
        &self,
        sources: impl IntoIterator<Item = SourceCount>,
    ) -> Vec<((u32, &str), GroupCount)> {
        group_by(sources, |ip| {
            self.lookup(ip).map_or((0, ""), |i| (i.asn, i.org))
        })
    }
}

impl GeoDb {
    /// Sources per country (ISO code; "" for those the database does not
    /// know), busiest first.
    pub fn count_by_country(
        &self,
        sources: impl IntoIterator<Item = SourceCount>,
    ) -> Vec<(String, GroupCount)> {
        group_by(sources, |ip| {
            self.lookup(ip).map(|g| g.country).unwrap_or_default()
        })
    }
}

/// Nested prefixes to disjoint ranges: the longest prefix wins.
fn flatten(mut prefixes: Vec<(u128, u32, u32)>, no_org: u32) -> Vec<(u128, u128, u32, u32)> {
    // A /128 (or an IPv4 /32) has no host bits: shifting by 128 would overflow.
    let end_of = |net: u128, len: u32| net | u128::MAX.checked_shr(len).unwrap_or(0);
    // Outer prefixes first at the same start.
    prefixes.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    prefixes.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let mut out = Vec::new();
    // Stack of enclosing prefixes: (end, asn), and where the next output starts.
    let mut stack: Vec<(u128, u32)> = Vec::new();
    let mut cursor: u128 = 0;
    let emit = |out: &mut Vec<(u128, u128, u32, u32)>, from: u128, to: u128, asn: u32| {
        if from <= to {
            out.push((from, to, asn, no_org));
        }
    };
    for (net, len, asn) in prefixes {
        // Close enclosing prefixes that end before this one starts.
        while let Some(&(end, a)) = stack.last() {
            if end >= net {
                break;
            }
            emit(&mut out, cursor, end, a);
            cursor = end.wrapping_add(1);
            stack.pop();
        }
        if let Some(&(_, a)) = stack.last() {
            if net > 0 {
                emit(&mut out, cursor, net - 1, a);
            }
        }
        cursor = net;
        stack.push((end_of(net, len), asn));
    }
    while let Some((end, a)) = stack.pop() {
        emit(&mut out, cursor, end, a);
        cursor = end.wrapping_add(1);
        if end == u128::MAX {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asn(t: &AsnTable, ip: &str) -> Option<u32> {
        t.lookup(ip.parse().unwrap()).map(|i| i.asn)
    }

    #[test]
    fn csv_and_iptoasn_ranges() {
        let csv = "1.0.0.0,1.0.0.255,13335,CLOUDFLARENET\n1.0.4.0,1.0.7.255,38803,\"Wirefreebroadband, Pty Ltd\"\n2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64500,Example v6\n";
        let t = AsnTable::parse(Format::Csv, csv, "asn.csv").unwrap();
        assert_eq!(asn(&t, "1.0.0.7"), Some(13335));
        assert_eq!(
            t.lookup("1.0.5.1".parse().unwrap()).unwrap().org,
            "Wirefreebroadband, Pty Ltd"
        );
        assert_eq!(asn(&t, "1.0.1.0"), None);
        assert_eq!(asn(&t, "2001:db8:5::1"), Some(64500));
        assert_eq!(asn(&t, "0.0.0.1"), None);
        let tsv = "range_start\trange_end\tAS_number\tcountry_code\tAS_description\n1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n";
        let t = AsnTable::parse(Format::Iptoasn, tsv, "ip2asn.tsv").unwrap();
        assert_eq!(asn(&t, "1.0.0.1"), Some(13335));
        assert_eq!(asn(&t, "1.0.2.1"), None);
        let e = AsnTable::parse(
            Format::Csv,
            "1.0.0.0,1.0.0.255,13335,X\nbad,line,1,Y\n",
            "asn.csv",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "asn.csv, line 2: \"bad\" is not an address");
    }

    #[test]
    fn sources_group_by_as_busiest_first() {
        let t = AsnTable::parse(
            Format::Csv,
            "198.51.100.0,198.51.100.255,64500,Small\n203.0.113.0,203.0.113.255,64501,Big\n",
            "asn.csv",
        )
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let rows = t.count_by_as([
            (ip("198.51.100.1"), 5, true),
            (ip("198.51.100.2"), 5, false),
            (ip("203.0.113.9"), 50, true),
            (ip("192.0.2.1"), 1, false),
        ]);
        let want = |sources, packets, infected| GroupCount {
            sources,
            packets,
            infected,
        };
        assert_eq!(
            rows,
            vec![
                ((64501, "Big"), want(1, 50, 1)),
                ((64500, "Small"), want(2, 10, 1)),
                ((0, ""), want(1, 1, 0)),
            ]
        );
    }

    #[test]
    fn pfx2as_nested_prefixes_take_the_longest() {
        let pfx = "10.9.9.9\t32\t900\n2001:db8::1\t128\t901\n10.0.0.0\t8\t100\n10.1.0.0\t16\t200\n10.1.2.0\t24\t300\n10.2.0.0\t16\t400_401\n11.0.0.0\t8\t{500,501}\n";
        let t = AsnTable::parse(Format::Pfx2as, pfx, "pfx2as").unwrap();
        assert_eq!(asn(&t, "10.0.0.1"), Some(100));
        assert_eq!(asn(&t, "10.9.9.9"), Some(900));
        assert_eq!(asn(&t, "10.9.9.10"), Some(100));
        assert_eq!(asn(&t, "2001:db8::1"), Some(901));
        assert_eq!(asn(&t, "2001:db8::2"), None);
        assert_eq!(asn(&t, "10.1.0.1"), Some(200));
        assert_eq!(asn(&t, "10.1.2.9"), Some(300));
        assert_eq!(asn(&t, "10.1.3.0"), Some(200));
        assert_eq!(asn(&t, "10.2.9.9"), Some(400));
        assert_eq!(asn(&t, "10.3.0.0"), Some(100));
        assert_eq!(asn(&t, "10.255.255.255"), Some(100));
        assert_eq!(asn(&t, "11.1.1.1"), Some(500));
        assert_eq!(asn(&t, "12.0.0.0"), None);
        assert_eq!(asn(&t, "9.255.255.255"), None);
    }
}
