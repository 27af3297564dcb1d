//! Scanner classification per source (issue 20): what kind of scanner a
//! darknet source is, from its fingerprints over a period and a published
//! list of research scanners' prefixes.

use iotscope_telescope::aggregate::SourceCounters;
use iotscope_telescope::{flagged, Prefix};
use iotscope_wire::Addr;
use serde::{Deserialize, Serialize};

use crate::DetectError;

/// What kind of scanner a source is.
///
/// Rules, first match wins: inside a published research-scanner prefix
/// ([`ResearchScanners`]) → `research_scanner` (Censys scans with ZMap, and
/// is still not an infection); then the SYN fingerprints of the telescope
/// (`iotscope_telescope::fingerprint`, flagged by [`flagged`]: at least 3
/// matching SYNs and 90% of its SYNs): Mirai's (sequence = destination
/// address) → `mirai_like`, masscan's → `masscan`, ZMap's (IP ID 54321) →
/// `zmap`; then at least half of its packets backscatter (SYN-ACK, RST,
/// ICMP errors: replies to spoofed traffic) → `backscatter`; else
/// `unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScannerClass {
    /// Mirai's SYN fingerprint: an infected IoT device (or a Mirai variant).
    MiraiLike,
    /// masscan's SYN fingerprint.
    Masscan,
    /// ZMap's SYN fingerprint.
    Zmap,
    /// Inside a published research-scanner prefix.
    ResearchScanner,
    /// Mostly backscatter: a victim of spoofed-source traffic.
    Backscatter,
    /// None of the above.
    Unknown,
}

impl ScannerClass {
    /// Every class, in [`ScannerClass::index`] order.
    pub const ALL: [ScannerClass; 6] = [
        ScannerClass::MiraiLike,
        ScannerClass::Masscan,
        ScannerClass::Zmap,
        ScannerClass::ResearchScanner,
        ScannerClass::Backscatter,
        ScannerClass::Unknown,
    ];

    /// Position in [`ScannerClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in JSON, reports and the dashboard.
    pub fn name(self) -> &'static str {
        match self {
            ScannerClass::MiraiLike => "mirai_like",
            ScannerClass::Masscan => "masscan",
            ScannerClass::Zmap => "zmap",
            ScannerClass::ResearchScanner => "research_scanner",
            ScannerClass::Backscatter => "backscatter",
            ScannerClass::Unknown => "unknown",
        }
    }
}

/// Classifies one source from its counters over a period (summed over
/// buckets with [`SourceCounters::add`]); rules at [`ScannerClass`].
pub fn classify(addr: Addr, c: &SourceCounters, research: &ResearchScanners) -> ScannerClass {
    if research.lookup(addr).is_some() {
        ScannerClass::ResearchScanner
    } else if flagged(c.syn, c.mirai) {
        ScannerClass::MiraiLike
    } else if flagged(c.syn, c.masscan) {
        ScannerClass::Masscan
    } else if flagged(c.syn, c.zmap) {
        ScannerClass::Zmap
    } else if c.backscatter > 0 && c.backscatter * 2 >= c.packets {
        ScannerClass::Backscatter
    } else {
        ScannerClass::Unknown
    }
}

/// The class of a report's source from the fingerprints the telescope
/// flagged it with (`top_sources[].fingerprints`: `mirai`, `zmap`,
/// `masscan` by [`flagged`]'s rule, `backscatter` for any backscatter
/// packet): the rules of [`classify`], in its order, except that
/// `backscatter` here means backscatter and no SYN fingerprint (the report
/// keeps no share of backscatter packets).
pub fn classify_flags(addr: Addr, flags: &[&str], research: &ResearchScanners) -> ScannerClass {
    let has = |f: &str| flags.contains(&f);
    if research.lookup(addr).is_some() {
        ScannerClass::ResearchScanner
    } else if has("mirai") {
        ScannerClass::MiraiLike
    } else if has("masscan") {
        ScannerClass::Masscan
    } else if has("zmap") {
        ScannerClass::Zmap
    } else if has("backscatter") {
        ScannerClass::Backscatter
    } else {
        ScannerClass::Unknown
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    scanner: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    source: String,
    prefixes: Vec<String>,
}

/// Published prefixes of research scanners, by organisation.
///
/// The shipped list is `data/research-scanners.toml` (each entry names the
/// page its ranges come from); users add their own in the same shape.
#[derive(Clone, Debug, Default)]
pub struct ResearchScanners {
    /// (prefix, organisation), IPv4 and IPv6 together.
    prefixes: Vec<(Prefix, String)>,
    /// (organisation, source) per entry, for documentation and `--format json`.
    sources: Vec<(String, String)>,
}

/// The shipped list's text.
pub const SHIPPED: &str = include_str!("../data/research-scanners.toml");

impl ResearchScanners {
    /// The shipped list.
    pub fn shipped() -> ResearchScanners {
        ResearchScanners::parse(SHIPPED, "research-scanners.toml (shipped)")
            .expect("the shipped research-scanner list parses (tested)")
    }

    /// Parses a list in the shipped file's shape; `file` names it in errors.
    ///
    /// Errors: [`DetectError::Research`] naming the file and the entry or
    /// prefix that does not parse.
    pub fn parse(text: &str, file: &str) -> Result<ResearchScanners, DetectError> {
        let err = |what: String| DetectError::Research {
            file: file.to_string(),
            what,
        };
        let parsed: File = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut out = ResearchScanners::default();
        for e in parsed.scanner {
            for p in &e.prefixes {
                let prefix: Prefix = p.parse().map_err(|_| {
                    err(format!(
                        "scanner {:?}: prefix {p:?} is not ADDRESS/LENGTH",
                        e.name
                    ))
                })?;
                out.prefixes.push((prefix, e.name.clone()));
            }
            out.sources.push((e.name, e.source));
        }
        Ok(out)
    }

    /// Adds another list's entries.
    pub fn extend(&mut self, other: ResearchScanners) {
        self.prefixes.extend(other.prefixes);
        self.sources.extend(other.sources);
    }

    /// The organisation whose prefix holds `addr`, if any (IPv4-mapped IPv6
    /// addresses are read as IPv4).
    pub fn lookup(&self, addr: Addr) -> Option<&str> {
        let addr = match addr {
            Addr::V6(a) if a >> 32 == 0xffff => Addr::V4(a as u32),
            a => a,
        };
        self.prefixes
            .iter()
            .find(|(p, _)| p.contains(addr))
            .map(|(_, n)| n.as_str())
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// True when there are no prefixes.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// (organisation, where its ranges are published), per entry.
    pub fn sources(&self) -> &[(String, String)] {
        &self.sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Addr {
        Addr::V4(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()))
    }

    fn counters(
        syn: u64,
        mirai: u64,
        zmap: u64,
        masscan: u64,
        backscatter: u64,
        packets: u64,
    ) -> SourceCounters {
        SourceCounters {
            packets,
            syn,
            mirai,
            zmap,
            masscan,
            backscatter,
            ..Default::default()
        }
    }

    #[test]
    fn the_shipped_list_parses_and_names_its_sources() {
        let r = ResearchScanners::shipped();
        assert!(r.len() >= 10);
        assert!(r.sources().iter().all(|(_, s)| s.starts_with("https://")));
        assert_eq!(r.lookup(v4("162.142.125.7")), Some("Censys"));
        assert_eq!(r.lookup(v4("162.142.126.7")), None);
        // The same address as IPv4-mapped IPv6.
        assert_eq!(r.lookup(Addr::V6(0xffff_a28e_7d07)), Some("Censys"));
    }

    #[test]
    fn research_prefixes_win_over_fingerprints() {
        let r = ResearchScanners::shipped();
        let zmap = counters(10, 0, 10, 0, 0, 10);
        assert_eq!(
            classify(v4("162.142.125.7"), &zmap, &r),
            ScannerClass::ResearchScanner
        );
        assert_eq!(classify(v4("203.0.113.9"), &zmap, &r), ScannerClass::Zmap);
        let mirai = counters(20, 19, 0, 0, 0, 20);
        assert_eq!(
            classify(v4("203.0.113.9"), &mirai, &r),
            ScannerClass::MiraiLike
        );
        let masscan = counters(5, 0, 0, 5, 0, 5);
        assert_eq!(
            classify(v4("203.0.113.9"), &masscan, &r),
            ScannerClass::Masscan
        );
        // Two matching SYNs are not enough to flag.
        let few = counters(2, 2, 0, 0, 0, 2);
        assert_eq!(classify(v4("203.0.113.9"), &few, &r), ScannerClass::Unknown);
        let victim = counters(0, 0, 0, 0, 30, 40);
        assert_eq!(
            classify(v4("203.0.113.9"), &victim, &r),
            ScannerClass::Backscatter
        );
    }

    #[test]
    fn a_user_list_adds_and_a_bad_one_says_where() {
        let mut r = ResearchScanners::shipped();
        let n = r.len();
        let mine = ResearchScanners::parse(
            "[[scanner]]\nname = \"Lab\"\nsource = \"local\"\nprefixes = [\"198.51.100.0/24\", \"2001:db8:5::/48\"]\n",
            "mine.toml",
        )
        .unwrap();
        r.extend(mine);
        assert_eq!(r.len(), n + 2);
        assert_eq!(r.lookup(v4("198.51.100.1")), Some("Lab"));
        let bad = ResearchScanners::parse(
            "[[scanner]]\nname = \"Lab\"\nsource = \"x\"\nprefixes = [\"198.51.100.0/33\"]\n",
            "bad.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("bad.toml") && bad.contains("198.51.100.0/33"),
            "{bad}"
        );
    }
}
