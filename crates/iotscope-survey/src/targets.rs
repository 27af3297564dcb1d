//! What a survey may probe: target specifications, exclusions, ports.
//!
//! Invariants: a [`TargetSet`] holds sorted, disjoint IPv4 ranges with every
//! exclusion already removed, so nothing outside it can be addressed by
//! index; the built-in IANA exclusions apply to a target unless that target
//! lies wholly inside the excluded range (naming 127.0.0.0/8 is a deliberate
//! choice, `0.0.0.0/0` never reaches it); user exclusion files always apply.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    /// Nothing left to probe.
    #[error("no targets: give --targets (every target was excluded, or none was named)")]
    Empty,
}

/// An inclusive IPv4 range.
pub type Range = (u32, u32);

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

/// Parses an exclusion file that may hold IPv4 and IPv6 lines (ZMap's
/// format: one CIDR or range a line, `#` comments), naming `source` in errors.
pub fn parse_exclusions(
    text: &str,
    source: &str,
) -> Result<(Vec<Range>, Vec<Range6>), TargetError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let body = line.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let err = || TargetError::Syntax {
            what: "exclusion",
            text: body.to_string(),
            location: format!(", line {} of {source}", n + 1),
        };
        if body.contains(':') {
            v6.push(parse_range6(body).ok_or_else(err)?);
        } else {
            v4.push(parse_range(body).ok_or_else(err)?);
        }
    }
    Ok((v4, v6))
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
fn subtract(ranges: Vec<Range>, cut: Range) -> Vec<Range> {
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
fn normalise(mut ranges: Vec<Range>) -> Vec<Range> {
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

/// Exclusions that may grow during a run: an operator who honours opt-out
/// requests reloads its exclusion files (on SIGHUP) without restarting a
/// long sweep. The probe order is fixed by the [`TargetSet`] the run began
/// with; every probe is checked against the latest list before it is sent.
#[derive(Clone, Debug, Default)]
pub struct LiveExclusions(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Vec<Range>>>>);

impl LiveExclusions {
    /// A list holding `ranges`.
    pub fn new(ranges: &[Range]) -> LiveExclusions {
        let live = LiveExclusions::default();
        live.replace(ranges);
        live
    }

    /// Swaps in a new list (probes already sent are not affected).
    pub fn replace(&self, ranges: &[Range]) {
        let merged = std::sync::Arc::new(normalise(ranges.to_vec()));
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = merged;
    }

    /// The current list, sorted and merged; cheap to take per batch.
    pub fn snapshot(&self) -> std::sync::Arc<Vec<Range>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// True if `ip` lies in one of the sorted, merged `ranges`.
pub fn in_ranges(ranges: &[Range], ip: Ipv4Addr) -> bool {
    let x = u32::from(ip);
    let k = ranges.partition_point(|r| r.1 < x);
    ranges.get(k).is_some_and(|r| r.0 <= x)
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
    /// Builds the set from target texts, user exclusions and the built-in list.
    pub fn new(targets: &[String], user_exclusions: &[Range]) -> Result<TargetSet, TargetError> {
        let builtin = parse_blocklist(BUILTIN_BLOCKLIST, "the built-in blocklist")
            .expect("built-in list parses");
        let mut all = Vec::new();
        let mut v6 = Vec::new();
        for t in targets {
            if t.contains(':') {
                // Named one by one on purpose: no built-in exclusion applies.
                v6.push(
                    t.trim()
                        .parse::<Ipv6Addr>()
                        .map_err(|_| TargetError::Ipv6List { text: t.clone() })?,
                );
                continue;
            }
            let r = parse_range(t).ok_or_else(|| TargetError::Syntax {
                what: "target",
                text: t.clone(),
                location: String::new(),
            })?;
            let mut parts = vec![r];
            for &e in &builtin {
                // A target inside a reserved range was named on purpose.
                if !(e.0 <= r.0 && r.1 <= e.1) {
                    parts = subtract(parts, e);
                }
            }
            all.extend(parts);
        }
        let mut ranges = normalise(all);
        for &e in user_exclusions {
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

    /// Removes IPv6 exclusions (from the user's files) from the set.
    pub fn exclude_v6(mut self, exclusions: &[Range6]) -> Result<TargetSet, TargetError> {
        self.v6.retain(|a| {
            let x = u128::from(*a);
            !exclusions.iter().any(|r| r.0 <= x && x <= r.1)
        });
        if self.len == 0 && self.v6.is_empty() {
            return Err(TargetError::Empty);
        }
        Ok(self)
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

    /// True if `ip` may be probed.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => in_ranges(&self.ranges, v4),
            IpAddr::V6(v6) => self.v6.binary_search(&v6).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(t: &[&str], ex: &[&str]) -> Result<TargetSet, TargetError> {
        let ex: Vec<Range> = ex.iter().map(|e| parse_range(e).unwrap()).collect();
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
        let (v4, v6) = parse_exclusions("2001:db8::/32 # docs\n10.0.0.0/8\n", "x").unwrap();
        assert_eq!((v4.len(), v6.len()), (1, 1));
        let s = s.exclude_v6(&v6).unwrap();
        assert_eq!(s.len(), 2);
        let e = parse_exclusions("2001:db8::/200\n", "x.conf").unwrap_err();
        assert!(e.to_string().contains("line 1 of x.conf"), "{e}");
    }
}
