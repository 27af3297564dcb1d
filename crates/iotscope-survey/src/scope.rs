//! The address model behind every scope decision: what an address *is*
//! (one canonical form however it was spelt) and whether the observatory
//! may send it a packet.
//!
//! Invariants:
//! - Every decision is taken on [`canonical`] addresses: an IPv4-mapped
//!   (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) or IPv4-compatible (`::a.b.c.d`,
//!   RFC 4291 §2.5.5.1) IPv6 address *is* the IPv4 address it carries, so
//!   an opt-out written in either family covers every spelling.
//! - A NAT64 address of the well-known prefix (`64:ff9b::/96`, RFC 6052
//!   §2.1) reaches the IPv4 host it embeds through a translator: it is
//!   allowed only if that IPv4 address would be, and IPv4 exclusions apply
//!   to it.
//! - The [`never`] list (this host, multicast, broadcast, reserved) is
//!   refused even when a target names it: a connect to `0.0.0.0` or `::`
//!   reaches the scanning host's own listeners, which is never a survey.
//! - [`verdict`] is the one gate for a single address (each probe, each
//!   login of the checks, `alerts recheck`, `iotscope check`); range
//!   targets are cut by the same rules when the [`crate::TargetSet`] is built,
//!   plus the built-in special-purpose list, which applies to a range unless
//!   the target lies wholly inside the reserved block (ZMap's practice:
//!   naming 127.0.0.0/8 is deliberate, `0.0.0.0/0` never reaches it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::targets::{normalise, parse_range, parse_range6, Range, Range6, TargetError};

/// The IPv4 address an IPv6 address is another spelling of: IPv4-mapped
/// (`::ffff:0:0/96`) and IPv4-compatible (`::/96` except `::` and `::1`).
pub fn embedded_spelling(a: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = a.to_ipv4_mapped() {
        return Some(v4);
    }
    let x = u128::from(a);
    // `::` is the unspecified address and `::1` loopback (RFC 4291), not
    // the IPv4 addresses 0.0.0.0 and 0.0.0.1.
    (x >> 32 == 0 && x > 1).then(|| Ipv4Addr::from(x as u32))
}

/// The NAT64 well-known prefix `64:ff9b::/96` (RFC 6052 §2.1).
const NAT64_WKP: u128 = 0x0064_ff9b_u128 << 96;

/// IPv4-translated addresses `::ffff:0:0:0/96` (SIIT, RFC 6145 / RFC 2765).
const TRANSLATED: u128 = 0xffff_0000_u128 << 32;

/// The local-use NAT64 prefix `64:ff9b:1::/48` (RFC 8215).
const NAT64_LOCAL: u128 = 0x0064_ff9b_0001_u128 << 80;

/// The IPv4 host a translated IPv6 address reaches through a translator:
/// the NAT64 well-known prefix (`64:ff9b::/96`, RFC 6052 §2.1), the
/// local-use prefix (`64:ff9b:1::/48` in RFC 6052's /48 layout, RFC 8215)
/// and SIIT's IPv4-translated form (`::ffff:0:a.b.c.d`, RFC 6145).
pub fn nat64_target(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let x = u128::from(a);
    if x >> 32 == NAT64_WKP >> 32 || x >> 32 == TRANSLATED >> 32 {
        return Some(Ipv4Addr::from(x as u32));
    }
    if x >> 80 == NAT64_LOCAL >> 80 {
        // RFC 6052 §2.2, /48: octets 1-2 in bits 48-63, bits 64-71 (u)
        // zero, octets 3-4 in bits 72-87.
        let hi = (x >> 64) as u32 & 0xffff;
        let lo = (x >> 40) as u32 & 0xffff;
        return Some(Ipv4Addr::from(hi << 16 | lo));
    }
    None
}

/// The one form of an address that every scope decision sees: IPv4-mapped
/// and IPv4-compatible IPv6 become IPv4; everything else is unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => embedded_spelling(a).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why an address is never probed, even when a target names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Never {
    /// The block, as written in RFCs.
    pub block: &'static str,
    /// What it is and why it is refused.
    pub why: &'static str,
}

/// IPv4 blocks refused whatever a target says (subset of RFC 6890's
/// registry where a TCP connect can only reach this host or nothing).
const NEVER_V4: &[(Range, Never)] = &[
    (
        (0x0000_0000, 0x00ff_ffff),
        Never {
            block: "0.0.0.0/8",
            why: "\"this network\" (RFC 1122): a connect reaches this host's own listeners",
        },
    ),
    (
        (0xe000_0000, 0xffff_ffff),
        Never {
            block: "224.0.0.0/3",
            why: "multicast (RFC 5771), reserved (RFC 1112) and limited broadcast (RFC 919)",
        },
    ),
];

/// IPv6 blocks refused whatever a target says.
const NEVER_V6: &[(Range6, Never)] = &[
    (
        (0, 0),
        Never {
            block: "::/128",
            why: "the unspecified address (RFC 4291): a connect reaches this host's own listeners",
        },
    ),
    (
        (0xff00u128 << 112, u128::MAX),
        Never {
            block: "ff00::/8",
            why: "multicast (RFC 4291)",
        },
    ),
];

/// The IPv4 never-list, as inclusive ranges (for range targets).
pub(crate) fn never_v4_ranges() -> impl Iterator<Item = Range> {
    NEVER_V4.iter().map(|(r, _)| *r)
}

/// Why `ip` (any spelling) may never be probed, if it may not.
pub fn never(ip: IpAddr) -> Option<Never> {
    let v4 = |a: Ipv4Addr| {
        let x = u32::from(a);
        NEVER_V4
            .iter()
            .find(|(r, _)| r.0 <= x && x <= r.1)
            .map(|(_, n)| *n)
    };
    match canonical(ip) {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            NEVER_V6
                .iter()
                .find(|(r, _)| r.0 <= x && x <= r.1)
                .map(|(_, n)| *n)
                .or_else(|| nat64_target(a).and_then(v4))
        }
    }
}

/// The ranges of the IPv6 block `[lo, hi]` of width 2^32 (one IPv4 space
/// embedded at the low 32 bits) that `r` covers, as an IPv4 range.
fn fold(r: Range6, block: u128) -> Option<Range> {
    let (lo, hi) = (block, block | 0xffff_ffff);
    (r.0 <= hi && r.1 >= lo).then(|| (r.0.max(lo) as u32, r.1.min(hi) as u32))
}

/// A user's exclusion (opt-out) set in both families, held so that every
/// spelling of an address gets the same answer: IPv6 lines over mapped,
/// compatible or NAT64 space also exclude the IPv4 addresses they spell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Sorted, merged IPv4 ranges (including those folded from IPv6 lines).
    v4: Vec<Range>,
    /// Sorted, merged IPv6 ranges as written.
    v6: Vec<Range6>,
}

impl Exclusions {
    /// No exclusion.
    pub fn none() -> Exclusions {
        Exclusions::default()
    }

    /// Parses an exclusion file (ZMap's blocklist format: one address, CIDR
    /// or IPv4 range a line, `#` comments; IPv4 and IPv6 lines may mix).
    ///
    /// # Errors
    /// [`TargetError::Syntax`] naming the line and `source`.
    pub fn parse(text: &str, source: &str) -> Result<Exclusions, TargetError> {
        let mut out = Exclusions::default();
        // A byte-order mark some editors write is not part of the first line.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
                out.add_v6(parse_range6(body).ok_or_else(err)?);
            } else {
                out.v4.push(parse_range(body).ok_or_else(err)?);
            }
        }
        out.v4 = normalise(std::mem::take(&mut out.v4));
        out.v6 = normalise6(std::mem::take(&mut out.v6));
        Ok(out)
    }

    /// A set of IPv4 ranges (tests, and callers holding parsed ranges).
    pub fn from_v4(ranges: &[Range]) -> Exclusions {
        Exclusions {
            v4: normalise(ranges.to_vec()),
            v6: Vec::new(),
        }
    }

    fn add_v6(&mut self, r: Range6) {
        // The IPv4 spellings inside the IPv6 line (mapped, compatible and
        // NAT64 forms) exclude those IPv4 addresses too.
        for block in [0xffffu128 << 32, 0, NAT64_WKP, TRANSLATED] {
            if let Some(v4) = fold(r, block) {
                self.v4.push(v4);
            }
        }
        self.v6.push(r);
    }

    /// The union of two sets.
    pub fn union(&self, other: &Exclusions) -> Exclusions {
        Exclusions {
            v4: normalise(self.v4.iter().chain(&other.v4).copied().collect()),
            v6: normalise6(self.v6.iter().chain(&other.v6).copied().collect()),
        }
    }

    /// The IPv4 ranges (sorted, merged; IPv6 spellings folded in).
    pub fn v4(&self) -> &[Range] {
        &self.v4
    }

    /// True if the user excluded `ip` in any of its spellings.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => in_ranges(&self.v4, a),
            IpAddr::V6(a) => {
                let x = u128::from(a);
                let k = self.v6.partition_point(|r| r.1 < x);
                self.v6.get(k).is_some_and(|r| r.0 <= x)
                    || nat64_target(a).is_some_and(|v4| in_ranges(&self.v4, v4))
            }
        }
    }

    /// Number of merged ranges in both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set as text lines in a fixed form ("a.b.c.d-e.f.g.h" and
    /// "x::-y::"), sorted: what a resume state records, and what
    /// [`Exclusions::from_entries`] reads back.
    pub fn entries(&self) -> Vec<String> {
        let v4 = self
            .v4
            .iter()
            .map(|&(a, b)| format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b)));
        let v6 = self
            .v6
            .iter()
            .map(|&(a, b)| format!("{}-{}", Ipv6Addr::from(a), Ipv6Addr::from(b)));
        v4.chain(v6).collect()
    }

    /// Reads [`Exclusions::entries`] back.
    ///
    /// # Errors
    /// [`TargetError::Syntax`] for a line that is not an entry.
    pub fn from_entries(entries: &[String]) -> Result<Exclusions, TargetError> {
        let mut out = Exclusions::default();
        for e in entries {
            let err = || TargetError::Syntax {
                what: "exclusion",
                text: e.clone(),
                location: " (resume state)".into(),
            };
            let (a, b) = e.split_once('-').ok_or_else(err)?;
            match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
                (Ok(IpAddr::V4(a)), Ok(IpAddr::V4(b))) if a <= b => {
                    out.v4.push((a.into(), b.into()))
                }
                (Ok(IpAddr::V6(a)), Ok(IpAddr::V6(b))) if a <= b => {
                    out.v6.push((a.into(), b.into()))
                }
                _ => return Err(err()),
            }
        }
        out.v4 = normalise(out.v4);
        out.v6 = normalise6(out.v6);
        Ok(out)
    }

    /// SHA-256 of [`Exclusions::entries`] (one per line), hex: what a
    /// resume state compares to notice that the opt-outs changed.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for e in self.entries() {
            h.update(e.as_bytes());
            h.update(b"\n");
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn normalise6(mut ranges: Vec<Range6>) -> Vec<Range6> {
    ranges.sort_unstable();
    let mut out: Vec<Range6> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// True if `ip` lies in one of the sorted, merged `ranges`.
pub fn in_ranges(ranges: &[Range], ip: Ipv4Addr) -> bool {
    let x = u32::from(ip);
    let k = ranges.partition_point(|r| r.1 < x);
    ranges.get(k).is_some_and(|r| r.0 <= x)
}

/// Whether one address may be sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It may.
    Allowed,
    /// Never, whatever names it.
    Never(Never),
    /// The user's exclusions (opt-outs) cover it.
    Excluded,
}

impl Verdict {
    /// True for [`Verdict::Allowed`].
    pub fn allowed(self) -> bool {
        self == Verdict::Allowed
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Allowed => f.write_str("allowed"),
            Verdict::Never(n) => write!(f, "never probed: {} is {}", n.block, n.why),
            Verdict::Excluded => f.write_str("excluded by the exclusion (opt-out) list"),
        }
    }
}

/// The gate for one address that a user or a stored record named: the
/// never-list, then the user's exclusions, on the canonical form. (The
/// built-in special-purpose list does not apply to a named address: naming
/// it is the deliberate choice, as with a target inside a reserved block.)
pub fn verdict(ip: IpAddr, exclusions: &Exclusions) -> Verdict {
    if let Some(n) = never(ip) {
        Verdict::Never(n)
    } else if exclusions.contains(ip) {
        Verdict::Excluded
    } else {
        Verdict::Allowed
    }
}

/// Exclusions that may grow during a run: an operator who honours opt-out
/// requests reloads the exclusion files (on SIGHUP) without restarting a
/// long sweep. The probe order is fixed by the [`crate::TargetSet`] the run
/// began with; every probe is checked against the latest set, through
/// [`verdict`], at the moment it is sent, and the checks of a host stop
/// when it becomes excluded.
#[derive(Clone, Debug, Default)]
pub struct LiveExclusions(Arc<RwLock<Arc<Exclusions>>>);

impl LiveExclusions {
    /// A live set holding `set`.
    pub fn new(set: Exclusions) -> LiveExclusions {
        let live = LiveExclusions::default();
        live.replace(set);
        live
    }

    /// Swaps in a new set (probes already sent are not affected).
    pub fn replace(&self, set: Exclusions) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }

    /// The current set; cheap to take per batch.
    pub fn snapshot(&self) -> Arc<Exclusions> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// [`verdict`] of `ip` against the current set.
    pub fn verdict(&self, ip: IpAddr) -> Verdict {
        verdict(ip, &self.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_and_compatible_forms_are_ipv4() {
        assert_eq!(canonical(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(canonical(ip("::ffff:a00:1")), ip("10.0.0.1"));
        assert_eq!(canonical(ip("::10.0.0.1")), ip("10.0.0.1"));
        // The unspecified and loopback addresses are not IPv4-compatible.
        assert_eq!(canonical(ip("::")), ip("::"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(
            nat64_target("64:ff9b::7f5c:7".parse().unwrap()),
            Some("127.92.0.7".parse().unwrap())
        );
    }

    #[test]
    fn this_host_is_never_probed_in_any_spelling() {
        for s in [
            "0.0.0.0",
            "::",
            "::ffff:0.0.0.0",
            "0.1.2.3",
            "::ffff:0.0.0.9",
            "64:ff9b::",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "::ffff:255.255.255.255",
        ] {
            assert!(
                matches!(verdict(ip(s), &Exclusions::none()), Verdict::Never(_)),
                "{s}"
            );
        }
        for s in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "198.18.0.1",
            "2001:db8::1",
        ] {
            assert_eq!(verdict(ip(s), &Exclusions::none()), Verdict::Allowed, "{s}");
        }
    }

    #[test]
    fn an_opt_out_in_either_family_covers_every_spelling() {
        let v4 = Exclusions::parse("127.92.0.0/16 # ticket 42\n", "optout.conf").unwrap();
        let mapped = Exclusions::parse("::ffff:127.92.0.0/112\n", "optout.conf").unwrap();
        let nat64 = Exclusions::parse("64:ff9b::7f5c:0/112\n", "x").unwrap();
        for ex in [&v4, &mapped, &nat64] {
            for s in [
                "127.92.0.7",
                "::ffff:127.92.0.7",
                "::127.92.0.7",
                "64:ff9b::127.92.0.7",
                "::ffff:7f5c:7",
                "::ffff:0:127.92.0.7",
                "64:ff9b:1:7f5c:0:700::",
            ] {
                assert_eq!(verdict(ip(s), ex), Verdict::Excluded, "{s} {ex:?}");
            }
            assert_eq!(verdict(ip("127.93.0.7"), ex), Verdict::Allowed);
        }
        let bom = Exclusions::parse("\u{feff}127.92.0.0/16\r\n", "bom.conf").unwrap();
        assert_eq!(bom, v4);
        let e = Exclusions::parse("10.0.0.0/8\nbogus\n", "ex.conf").unwrap_err();
        assert!(e.to_string().contains("line 2 of ex.conf"), "{e}");
    }

    #[test]
    fn entries_round_trip_and_digest_follows_content() {
        let ex = Exclusions::parse(
            "10.0.0.0/8\n10.1.0.0/16\n2001:db8::/32\n::ffff:1.2.3.4\n",
            "x",
        )
        .unwrap();
        let back = Exclusions::from_entries(&ex.entries()).unwrap();
        assert!(back.contains(ip("1.2.3.4")));
        assert_eq!(back.entries(), ex.entries());
        assert_eq!(back.digest(), ex.digest());
        let other = Exclusions::parse("10.0.0.0/8\n", "x").unwrap();
        assert_ne!(other.digest(), ex.digest());
    }

    /// Every way to write one IPv4 address that the parser accepts.
    fn spellings(a: Ipv4Addr) -> Vec<IpAddr> {
        vec![
            IpAddr::V4(a),
            IpAddr::V6(a.to_ipv6_mapped()),
            format!("::ffff:{a}").parse().unwrap(),
            format!(
                "::ffff:{:x}:{:x}",
                u32::from(a) >> 16,
                u32::from(a) & 0xffff
            )
            .parse()
            .unwrap(),
        ]
        .into_iter()
        .chain((u32::from(a) > 1).then(|| IpAddr::V6(a.to_ipv6_compatible())))
        .collect()
    }

    fn exclusion_line() -> impl Strategy<Value = String> {
        prop_oneof![
            (any::<u32>(), 0u32..=32).prop_map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(a))),
            (any::<u32>(), 96u32..=128)
                .prop_map(|(a, l)| format!("::ffff:{}/{l}", Ipv4Addr::from(a))),
            (any::<u32>(), 96u32..=128)
                .prop_map(|(a, l)| format!("64:ff9b::{}/{l}", Ipv4Addr::from(a))),
        ]
    }

    proptest! {
        #[test]
        fn every_spelling_gets_the_same_verdict(
            addr in any::<u32>(),
            near in any::<bool>(),
            lines in proptest::collection::vec(exclusion_line(), 0..6),
        ) {
            let mut lines = lines;
            if near {
                // An exclusion around the address itself, so both answers occur.
                lines.push(format!("{}/24", Ipv4Addr::from(addr)));
            }
            let ex = Exclusions::parse(&lines.join("\n"), "p").unwrap();
            let a = Ipv4Addr::from(addr);
            let want = verdict(IpAddr::V4(a), &ex);
            for s in spellings(a) {
                prop_assert_eq!(verdict(s, &ex), want, "{} vs {}", s, a);
            }
            let set = crate::TargetSet::new(&[a.to_string()], &ex);
            for s in spellings(a) {
                let other = crate::TargetSet::new(&[s.to_string()], &ex);
                prop_assert_eq!(other.as_ref().ok().map(|t| t.contains(s)), set.as_ref().ok().map(|t| t.contains(IpAddr::V4(a))));
                prop_assert_eq!(other.is_ok(), want.allowed(), "{} {:?}", s, want);
            }
        }
    }
}
