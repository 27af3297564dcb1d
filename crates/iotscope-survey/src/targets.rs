//! What a survey may probe: target specifications, exclusions, ports.
//!
//! Invariants: a [`TargetSet`] holds sorted, disjoint IPv4 ranges with every
//! exclusion already removed, so nothing outside it can be addressed by
//! index; the built-in IANA exclusions apply to a target unless that target
//! lies wholly inside the excluded range (naming 127.0.0.0/8 is a deliberate
//! choice, `0.0.0.0/0` never reaches it); user exclusion files always apply.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::scope::{canonical, in_ranges, never, Exclusions};

/// The built-in exclusions, ZMap blocklist format with RFC comments.
pub const BUILTIN_BLOCKLIST: &str = include_str!("../data/blocklist.conf");

/// A target or exclusion that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// Not an address, CIDR or range.
    #[error("{what} {text:?} is not an IPv4 address, CIDR (198.18.0.0/24) or range (198.18.0.1-198.18.0.9){location}")]
    Syntax {
        /// "target", "port" or "exclusion".
        what: &'static str,
        /// The text.
        text: String,
        /// Where it came from (", line 3 of FILE") or "".
        location: String,
    },
    /// A port list that does not parse.
    #[error("port list {text:?}: expected numbers 1-65535 and ranges such as 23,80,8080-8081")]
    Ports {
        /// The text.
        text: String,
    },
    /// An IPv6 target that is not a single address.
    #[error("IPv6 target {text:?}: IPv6 targets are explicit addresses (no prefixes or ranges)")]
    Ipv6List {
        /// The text.
        text: String,
    },
    /// A target wholly inside the never-list.
    #[error("target {text:?} is never probed: {block} is {why}; to reach this host, name 127.0.0.1 or ::1")]
    Never {
        /// The target as given.
        text: String,
        /// The block of the never-list.
        block: &'static str,
        /// What the block is.
        why: &'static str,
    },
    /// Nothing left to probe.
    #[error("no targets: give --targets (every target was excluded, or none was named)")]
    Empty,
}

/// An inclusive IPv4 range.
pub type Range = (u32, u32);

/// One target, read into its canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// IPv4 addresses (also IPv4-mapped or -compatible IPv6 ones).
    V4(Range),
    /// One IPv6 address.
    V6(Ipv6Addr),
}

/// Reads a target: "a.b.c.d", "a.b.c.d/len", "a.b.c.d-e.f.g.h", an IPv6
/// address, or an IPv4-mapped/-compatible IPv6 address or prefix (which is
/// the IPv4 address or range it spells: `::ffff:10.0.0.0/104` is
/// 10.0.0.0/8).
///
/// # Errors
/// [`TargetError::Syntax`]; [`TargetError::Ipv6List`] for an IPv6 prefix or
/// range that is not IPv4 spelt as IPv6.
pub fn parse_target(text: &str) -> Result<Target, TargetError> {
    let t = text.trim();
    if t.contains(':') {
        let list = || TargetError::Ipv6List {
            text: text.to_string(),
        };
        let r = parse_range6(t).ok_or_else(list)?;
        for block in [0xffffu128 << 32, 0] {
            let (lo, hi) = (block, block | 0xffff_ffff);
            if lo <= r.0 && r.1 <= hi && !(block == 0 && r.0 <= 1) {
                return Ok(Target::V4((r.0 as u32, r.1 as u32)));
            }
        }
        if r.0 != r.1 {
            return Err(list());
        }
        return Ok(match canonical(IpAddr::V6(Ipv6Addr::from(r.0))) {
            IpAddr::V4(a) => Target::V4((a.into(), a.into())),
            IpAddr::V6(a) => Target::V6(a),
        });
    }
    parse_range(t)
        .map(Target::V4)
        .ok_or_else(|| TargetError::Syntax {
            what: "target",
            text: text.to_string(),
            location: String::new(),
        })
}

/// Parses "a.b.c.d", "a.b.c.d/len" or "a.b.c.d-e.f.g.h".
pub fn parse_range(text: &str) -> Option<Range> {
    let text = text.trim();
    if let Some((a, b)) = text.split_once('-') {
        let (a, b): (Ipv4Addr, Ipv4Addr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        let (a, b) = (u32::from(a), u32::from(b));
        return (a <= b).then_some((a, b));
    }
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u32>().ok().filter(|l| *l <= 32)?),
        None => (text, 32),
    };
    let ip = u32::from(ip.parse::<Ipv4Addr>().ok()?);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((ip & mask, (ip & mask) | !mask))
}

/// Parses a blocklist (one CIDR or range a line, `#` comments), naming
/// `source` in errors.
pub fn parse_blocklist(text: &str, source: &str) -> Result<Vec<Range>, TargetError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let body = line.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        out.push(parse_range(body).ok_or_else(|| TargetError::Syntax {
            what: "exclusion",
            text: body.to_string(),
            location: format!(", line {} of {source}", n + 1),
        })?);
    }
    Ok(out)
}

/// An inclusive IPv6 range (exclusions only: IPv6 targets are explicit addresses).
pub type Range6 = (u128, u128);

/// Parses an IPv6 "addr" or "addr/len".
pub fn parse_range6(text: &str) -> Option<Range6> {
    let (ip, len) = match text.trim().split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u32>().ok().filter(|l| *l <= 128)?),
        None => (text.trim(), 128),
    };
    let ip = u128::from(ip.parse::<Ipv6Addr>().ok()?);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Some((ip & mask, (ip & mask) | !mask))
}

/// Parses "23,80,8080-8081".
pub fn parse_ports(text: &str) -> Result<Vec<u16>, TargetError> {
    let err = || TargetError::Ports {
        text: text.to_string(),
    };
    let mut ports = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<u16>().map_err(|_| err())?,
                b.trim().parse::<u16>().map_err(|_| err())?,
            ),
            None => {
                let p = part.parse::<u16>().map_err(|_| err())?;
                (p, p)
            }
        };
        if a == 0 || a > b {
            return Err(err());
        }
        ports.extend(a..=b);
    }
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        return Err(err());
    }
    Ok(ports)
}

/// Removes `cut` from sorted disjoint `ranges`.
pub(crate) fn subtract(ranges: Vec<Range>, cut: Range) -> Vec<Range> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for (a, b) in ranges {
        if cut.1 < a || cut.0 > b {
            out.push((a, b));
            continue;
        }
        if cut.0 > a {
            out.push((a, cut.0 - 1));
        }
        if cut.1 < b {
            out.push((cut.1 + 1, b));
        }
    }
    out
}

/// Sorts and merges overlapping or adjacent ranges.
pub(crate) fn normalise(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The addresses a survey may probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSet {
    ranges: Vec<Range>,
    /// Addresses before each range (prefix sums), for index lookups.
    before: Vec<u64>,
    len: u64,
    /// Explicit IPv6 addresses, after the IPv4 ones in index order.
    v6: Vec<Ipv6Addr>,
}

impl TargetSet {
    /// Builds the set from target texts, the user's exclusions and the
    /// built-in list, by the rules of [`crate::scope`]: each target is read
    /// into its canonical form (IPv4-mapped and -compatible IPv6, single or
    /// as a prefix, is IPv4); the never-list is cut from every target; the
    /// built-in special-purpose blocks are cut unless the target lies wholly
    /// inside one; the user's exclusions are cut in every spelling.
    ///
    /// # Errors
    /// [`TargetError::Syntax`] or [`TargetError::Ipv6List`] for a target
    /// that does not parse, [`TargetError::Never`] for a target wholly in the
    /// never-list (`0.0.0.0`, `::`, multicast), [`TargetError::Empty`] when
    /// nothing is left.
    pub fn new(targets: &[String], exclusions: &Exclusions) -> Result<TargetSet, TargetError> {
        let builtin = parse_blocklist(BUILTIN_BLOCKLIST, "the built-in blocklist")
            .expect("built-in list parses");
        let mut all = Vec::new();
        let mut v6 = Vec::new();
        for t in targets {
            let r = match parse_target(t)? {
                Target::V6(a) => {
                    if let Some(n) = never(IpAddr::V6(a)) {
                        return Err(TargetError::Never {
                            text: t.trim().to_string(),
                            block: n.block,
                            why: n.why,
                        });
                    }
                    // Named one by one on purpose: the built-in list does
                    // not apply; the user's exclusions do.
                    if !exclusions.contains(IpAddr::V6(a)) {
                        v6.push(a);
                    }
                    continue;
                }
                Target::V4(r) => r,
            };
            let mut parts = vec![r];
            for n in crate::scope::never_v4_ranges() {
                parts = subtract(parts, n);
            }
            if parts.is_empty() {
                let n = never(IpAddr::V4(Ipv4Addr::from(r.0))).expect("in the never-list");
                return Err(TargetError::Never {
                    text: t.trim().to_string(),
                    block: n.block,
                    why: n.why,
                });
            }
            for &e in &builtin {
                // A target inside a reserved range was named on purpose.
                if !(e.0 <= r.0 && r.1 <= e.1) {
                    parts = subtract(parts, e);
                }
            }
            all.extend(parts);
        }
        let mut ranges = normalise(all);
        for &e in exclusions.v4() {
            ranges = subtract(ranges, e);
        }
        let mut before = Vec::with_capacity(ranges.len());
        let mut len = 0u64;
        for &(a, b) in &ranges {
            before.push(len);
            len += (b - a) as u64 + 1;
        }
        v6.sort_unstable();
        v6.dedup();
        if len == 0 && v6.is_empty() {
            return Err(TargetError::Empty);
        }
        Ok(TargetSet {
            ranges,
            before,
            len,
            v6,
        })
    }

    /// Number of IPv4 addresses (they come first in index order).
    pub fn v4_len(&self) -> u64 {
        self.len
    }

    /// True when IPv6 addresses are among the targets.
    pub fn has_v6(&self) -> bool {
        !self.v6.is_empty()
    }

    /// Number of addresses.
    pub fn len(&self) -> u64 {
        self.len + self.v6.len() as u64
    }

    /// Always false: an empty set is an error.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th address (0-based, `i < len()`): IPv4 first, then IPv6.
    pub fn get(&self, i: u64) -> IpAddr {
        if i < self.len {
            IpAddr::V4(self.get_v4(i))
        } else {
            IpAddr::V6(self.v6[(i - self.len) as usize])
        }
    }

    /// The `i`-th IPv4 address (`i < v4_len()`).
    pub fn get_v4(&self, i: u64) -> Ipv4Addr {
        let k = self.before.partition_point(|&b| b <= i) - 1;
        Ipv4Addr::from(self.ranges[k].0 + (i - self.before[k]) as u32)
    }

    /// True if `ip` (any spelling) is one of the set's addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(v4) => in_ranges(&self.ranges, v4),
            IpAddr::V6(v6) => self.v6.binary_search(&v6).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(t: &[&str], ex: &[&str]) -> Result<TargetSet, TargetError> {
        let ex = Exclusions::parse(&ex.join("\n"), "test").unwrap();
        TargetSet::new(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &ex)
    }

    #[test]
    fn reserved_ranges_apply_unless_named() {
        // 0.0.0.0/0 never reaches loopback or the benchmarking block...
        let world = set(&["0.0.0.0/0"], &[]).unwrap();
        for ip in [
            "127.0.0.1",
            "198.18.0.5",
            "10.1.2.3",
            "192.168.1.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!world.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(world.contains("100.0.0.1".parse().unwrap())); // public, membership only
                                                               // ...but naming them reaches them.
        let lab = set(&["127.77.0.0/24"], &[]).unwrap();
        assert_eq!(lab.len(), 256);
        assert!(set(&["198.18.0.0/15"], &[])
            .unwrap()
            .contains("198.19.1.1".parse().unwrap()));
    }

    #[test]
    fn user_exclusions_always_apply_and_index_maps_every_address_once() {
        let s = set(
            &["127.77.0.0/24", "127.77.1.10-127.77.1.12"],
            &["127.77.0.128/25"],
        )
        .unwrap();
        assert_eq!(s.len(), 128 + 3);
        let all: Vec<Ipv4Addr> = (0..s.len()).map(|i| s.get_v4(i)).collect();
        assert_eq!(all[0], Ipv4Addr::new(127, 77, 0, 0));
        assert_eq!(all[127], Ipv4Addr::new(127, 77, 0, 127));
        assert_eq!(all[128], Ipv4Addr::new(127, 77, 1, 10));
        assert!(all.iter().all(|ip| s.contains((*ip).into())));
        assert!(!s.contains(Ipv4Addr::new(127, 77, 0, 200).into()));
        assert_eq!(
            set(&["127.77.0.0/25"], &["127.77.0.0/24"]),
            Err(TargetError::Empty)
        );
    }

    #[test]
    fn parsing_errors_say_what_and_where() {
        assert!(parse_ports("23,80,8080-8082").unwrap() == vec![23, 80, 8080, 8081, 8082]);
        assert!(
            parse_ports("0").is_err() && parse_ports("90-80").is_err() && parse_ports("x").is_err()
        );
        let e = parse_blocklist("10.0.0.0/8\n# fine\nnot-an-ip\n", "ex.conf").unwrap_err();
        assert!(e.to_string().contains("line 3 of ex.conf"), "{e}");
        assert!(set(&["300.1.1.1"], &[]).is_err());
        assert!(matches!(
            set(&["2001:db8::/64"], &[]),
            Err(TargetError::Ipv6List { .. })
        ));
    }

    #[test]
    fn ipv6_targets_are_explicit_and_come_after_ipv4() {
        let s = set(&["::1", "198.18.0.1", "2001:db8::7", "::1"], &[]);
        let s = s.unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(0), "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.get(1), "::1".parse::<IpAddr>().unwrap());
        assert!(s.contains("2001:db8::7".parse().unwrap()));
        assert!(!s.contains("2001:db8::8".parse().unwrap()));
        let s = set(
            &["::1", "198.18.0.1", "2001:db8::7", "::1"],
            &["2001:db8::/32 # docs", "10.0.0.0/8"],
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        let e = Exclusions::parse("2001:db8::/200\n", "x.conf").unwrap_err();
        assert!(e.to_string().contains("line 1 of x.conf"), "{e}");
    }

    #[test]
    fn mapped_targets_are_ipv4_and_this_host_is_refused() {
        // The reproducer of the opt-out bypass: the mapped form of an
        // opted-out address is the same address.
        assert_eq!(
            set(&["::ffff:127.92.0.7"], &["127.92.0.0/16"]),
            Err(TargetError::Empty)
        );
        let s = set(&["::ffff:127.92.0.0/120"], &[]).unwrap();
        assert_eq!(s.len(), 256);
        assert!(!s.has_v6());
        assert!(s.contains("127.92.0.9".parse().unwrap()));
        assert!(s.contains("::ffff:127.92.0.9".parse().unwrap()));
        for t in ["0.0.0.0", "::", "::ffff:0.0.0.0", "0.0.0.0/8", "224.0.0.1"] {
            assert!(
                matches!(set(&[t], &[]), Err(TargetError::Never { .. })),
                "{t}"
            );
        }
        // A range that only touches the never-list keeps the rest.
        let s = set(&["0.0.0.0-1.0.0.3"], &[]).unwrap();
        assert_eq!(s.len(), 4);
        // The built-in list applies to mapped ranges as to IPv4 ones.
        let s = set(&["::ffff:0.0.0.0/96"], &[]).unwrap();
        assert!(!s.contains("10.1.2.3".parse().unwrap()));
        assert!(!s.contains("127.0.0.1".parse().unwrap()));
    }
}
