//! C&C and malware-distribution hosts: imported from abuse.ch feeds and
//! exported for the systems that enforce them (a plain IP list for ACLs,
//! an nftables set file, a DNS response-policy zone, a STIX bundle).
//!
//! Mirai and its successors often resolve their C&C names through a public
//! resolver (8.8.8.8) directly, bypassing the ISP's DNS, so an RPZ alone
//! does not cut them off: ISPs need the IP list too.
//!
//! The feeds take public submissions, so every value passes [`policy`]
//! twice: at import, where a refused value is reported with its file and
//! line and not stored, and at export, where a refused value (from a store
//! filled before these rules) is left out and reported. An export therefore
//! holds only host names that block themselves and their subdomains, and
//! addresses and narrow prefixes of hosts on the internet.

pub mod policy;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use policy::{
    check_address, check_domain, check_network, is_public_suffix, parse_network, Network, Refusal,
    MAX_ENTRIES, MAX_RPZ_NAME, MIN_PREFIX_V4, MIN_PREFIX_V6,
};

/// What an entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An IP address.
    Ip,
    /// A domain name.
    Domain,
}

/// One host to block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// IP address or domain (lower case).
    pub value: String,
    /// Which of the two.
    pub kind: EntryKind,
    /// The port it was seen on, when the feed says.
    pub port: Option<u16>,
    /// Malware family.
    pub malware: String,
    /// Feed it came from (feodo, urlhaus, threatfox, honeypot, ...).
    pub source: String,
    /// When the feed first saw it.
    pub first_seen: String,
}

/// A feed line that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}, line {line}: {what}")]
pub struct FeedError {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

/// Splits one CSV line (quoted fields as the feeds write them), trimmed.
fn csv_fields(line: &str) -> Vec<String> {
    iotscope_enrich::csv_fields(line)
        .into_iter()
        .map(|f| f.trim().to_string())
        .collect()
}

/// The host of a URL: "http://192.0.2.4:8080/bin.sh" -> ("192.0.2.4", Some(8080)).
fn url_host(url: &str) -> Option<(String, Option<u16>)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
            Some((h.to_string(), p.parse().ok()))
        }
        _ => Some((authority.to_string(), None)),
    }
}

/// How a feed value is stored: an address or prefix (canonical text) or a
/// host name (normalised), each checked by [`policy`].
fn classify(value: &str) -> Result<(String, EntryKind), Refusal> {
    let v = value.trim();
    if let Some(net) = parse_network(v) {
        return Ok((net?.to_string(), EntryKind::Ip));
    }
    check_domain(v).map(|d| (d, EntryKind::Domain))
}

/// A value for a message: quoted with escapes (no control character
/// reaches the terminal) and cut to 100 characters.
fn shown(value: &str) -> String {
    let mut cut: String = value.chars().take(100).collect();
    if cut.len() < value.len() {
        cut.push_str("...");
    }
    format!("{cut:?}")
}

/// A feed line whose value [`policy`] refused: reported, counted and not
/// stored; the rest of the feed is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}, line {line}: {} refused: {why}", shown(value))]
pub struct Refused {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The value as the feed wrote it.
    pub value: String,
    /// The rule it breaks.
    pub why: Refusal,
}

/// What a feed held: the entries to store and the lines refused.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Entries that passed [`policy`], in feed order.
    pub entries: Vec<Entry>,
    /// Lines whose value was refused, in feed order.
    pub refused: Vec<Refused>,
}

/// The feed formats understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// Feodo Tracker `ipblocklist.csv`: first_seen_utc, dst_ip, dst_port, c2_status, last_online, malware.
    Feodo,
    /// URLhaus CSV: id, dateadded, url, url_status, last_online, threat, tags, urlhaus_link, reporter.
    Urlhaus,
    /// ThreatFox CSV: first_seen_utc, ioc_id, ioc_value, ioc_type, threat_type, fk_malware,
    /// malware_alias, malware_printable, last_seen_utc, confidence_level, ...
    Threatfox,
}

/// Parses a feed export; `#` lines and the header are skipped.
///
/// # Errors
/// A line that does not have the feed's shape (too few columns, a URL with
/// no host, a Feodo `dst_ip` or ThreatFox `ip:port` that is not an address
/// and port) stops the parse with a [`FeedError`] naming the file and line:
/// the file is damaged or not that feed. A line that has the shape but
/// names a value [`policy`] refuses (an RPZ trigger label, a public suffix,
/// a malformed host name, a private address, ...) is not an error: it is
/// listed in [`Parsed::refused`] with its file and line.
pub fn parse(feed: Feed, text: &str, file: &str) -> Result<Parsed, FeedError> {
    let mut out = Parsed::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f = csv_fields(line);
        let err = |what: &str| FeedError {
            file: file.to_string(),
            line: i + 1,
            what: what.to_string(),
        };
        // A header line (Feodo's is not commented).
        if f.first()
            .is_some_and(|x| x == "first_seen_utc" || x == "id")
        {
            continue;
        }
        let (value, port, malware, source, first_seen) = match feed {
            Feed::Feodo => {
                if f.len() < 6 {
                    return Err(err("expected 6 columns: first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware"));
                }
                if f[1].parse::<IpAddr>().is_err() {
                    return Err(err(&format!("dst_ip {} is not an address", shown(&f[1]))));
                }
                (
                    f[1].clone(),
                    f[2].parse().ok(),
                    f[5].clone(),
                    "feodo",
                    &f[0],
                )
            }
            Feed::Urlhaus => {
                if f.len() < 6 {
                    return Err(err("expected 9 columns: id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter"));
                }
                let (host, port) = url_host(&f[2])
                    .ok_or_else(|| err(&format!("url {} has no host", shown(&f[2]))))?;
                let family = f
                    .get(6)
                    .map(|t| t.split(',').next_back().unwrap_or("").to_string())
                    .unwrap_or_default();
                (host, port, family, "urlhaus", &f[1])
            }
            Feed::Threatfox => {
                if f.len() < 8 {
                    return Err(err("expected ThreatFox's columns: first_seen_utc,ioc_id,ioc_value,ioc_type,threat_type,fk_malware,malware_alias,malware_printable,..."));
                }
                let (value, port) = match f[3].as_str() {
                    "ip:port" => match f[2].rsplit_once(':') {
                        Some((ip, p)) => (ip.trim_matches(['[', ']']).to_string(), p.parse().ok()),
                        None => return Err(err(&format!("ioc {} is not ip:port", shown(&f[2])))),
                    },
                    "domain" => (f[2].clone(), None),
                    "url" => url_host(&f[2])
                        .ok_or_else(|| err(&format!("url {} has no host", shown(&f[2]))))?,
                    _ => continue, // hashes and the like name no host
                };
                (value, port, f[7].clone(), "threatfox", &f[0])
            }
        };
        match classify(&value) {
            Ok((value, kind)) => out.entries.push(Entry {
                value,
                kind,
                port,
                malware,
                source: source.to_string(),
                first_seen: first_seen.clone(),
            }),
            Err(why) => out.refused.push(Refused {
                file: file.to_string(),
                line: i + 1,
                value,
                why,
            }),
        }
    }
    Ok(out)
}

/// The distinct entries, one per value (the first seen wins).
pub fn dedup(entries: &[Entry]) -> Vec<Entry> {
    let mut by: BTreeMap<(EntryKind, String), Entry> = BTreeMap::new();
    for e in entries {
        by.entry((e.kind, e.value.clone()))
            .or_insert_with(|| e.clone());
    }
    by.into_values().collect()
}

/// The export formats (what [`vet`] keeps depends on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One address or prefix a line ([`to_plain`]).
    Plain,
    /// An nftables table ([`to_nft`]).
    Nft,
    /// A response-policy zone ([`to_rpz`]).
    Rpz,
    /// A STIX 2.1 bundle ([`to_stix`]).
    Stix,
}

/// An entry an export leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (from {}) refused: {why}", shown(&entry.value), entry.source)]
pub struct Excluded {
    /// The entry as stored.
    pub entry: Entry,
    /// The rule it breaks.
    pub why: Refusal,
}

/// The entries of one export.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Vetted {
    /// What the export writes: distinct, in value order, values normalised.
    pub accepted: Vec<Entry>,
    /// What it leaves out.
    pub excluded: Vec<Excluded>,
}

/// An export that is not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// More than [`MAX_ENTRIES`] entries would be written.
    #[error("{count} entries to export, more than the {max} an export may hold")]
    TooMany {
        /// Entries that passed.
        count: usize,
        /// The bound.
        max: usize,
    },
}

/// The entries `format` may carry, each checked again by [`policy`] (a
/// store may hold values imported before these rules): addresses and
/// prefixes through [`check_network`], host names through [`check_domain`]
/// (and, for an RPZ, at most [`MAX_RPZ_NAME`] characters). The plain list
/// and the nftables sets carry addresses only: host names are not theirs
/// and are neither kept nor reported.
pub fn vet(entries: &[Entry], format: Format) -> Vetted {
    let mut out = Vetted::default();
    for e in dedup(entries) {
        let checked = match e.kind {
            EntryKind::Ip => match parse_network(&e.value) {
                Some(r) => r.map(|n| n.to_string()),
                None => Err(Refusal::NotANetwork(shown(&e.value))),
            },
            EntryKind::Domain if matches!(format, Format::Plain | Format::Nft) => continue,
            EntryKind::Domain => check_domain(&e.value).and_then(|d| {
                if format == Format::Rpz && d.len() > MAX_RPZ_NAME {
                    Err(Refusal::TooLongForRpz)
                } else {
                    Ok(d)
                }
            }),
        };
        match checked {
            Ok(value) => out.accepted.push(Entry { value, ..e }),
            Err(why) => out.excluded.push(Excluded { entry: e, why }),
        }
    }
    // Normalising may have made two values one.
    out.accepted = dedup(&out.accepted);
    out
}

fn vetted(entries: &[Entry], format: Format, max: usize) -> Result<Vec<Entry>, ExportError> {
    let v = vet(entries, format);
    if v.accepted.len() > max {
        return Err(ExportError::TooMany {
            count: v.accepted.len(),
            max,
        });
    }
    Ok(v.accepted)
}

fn networks(entries: &[Entry]) -> impl Iterator<Item = Network> + '_ {
    entries
        .iter()
        .filter_map(|e| parse_network(&e.value).and_then(Result::ok))
}

/// A plain list: one address or prefix a line, only what [`vet`] accepts
/// (host names are not addresses and are left out).
///
/// # Errors
/// [`ExportError::TooMany`] past [`MAX_ENTRIES`].
pub fn to_plain(entries: &[Entry]) -> Result<String, ExportError> {
    let mut s = String::from("# iotscope C&C blocklist: one address a line\n");
    for n in networks(&vetted(entries, Format::Plain, MAX_ENTRIES)?) {
        s.push_str(&n.to_string());
        s.push('\n');
    }
    Ok(s)
}

/// An nftables file: a table with one set per family and a forward chain
/// that drops traffic to them (load with `nft -f`). Only what [`vet`]
/// accepts; the sets take intervals (auto-merged) when a prefix is listed.
///
/// # Errors
/// [`ExportError::TooMany`] past [`MAX_ENTRIES`].
pub fn to_nft(entries: &[Entry], table: &str) -> Result<String, ExportError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for n in networks(&vetted(entries, Format::Nft, MAX_ENTRIES)?) {
        match n.addr {
            IpAddr::V4(_) => v4.push(n),
            IpAddr::V6(_) => v6.push(n),
        }
    }
    let set = |name: &str, ty: &str, items: &[Network]| {
        let mut s = format!("  set {name} {{\n    type {ty}\n");
        if items.iter().any(|n| !n.is_host()) {
            s.push_str("    flags interval\n    auto-merge\n");
        }
        if !items.is_empty() {
            let items: Vec<String> = items.iter().map(Network::to_string).collect();
            s.push_str(&format!("    elements = {{ {} }}\n", items.join(", ")));
        }
        s.push_str("  }\n");
        s
    };
    Ok(format!(
        "#!/usr/sbin/nft -f\n# iotscope C&C blocklist ({} IPv4, {} IPv6)\ntable inet {table} {{\n{}{}  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    ip daddr @cc_v4 counter drop\n    ip6 daddr @cc_v6 counter drop\n  }}\n}}\n",
        v4.len(),
        v6.len(),
        set("cc_v4", "ipv4_addr", &v4),
        set("cc_v6", "ipv6_addr", &v6),
    ))
}

/// The RPZ owner name of an address: IPv4 `32.d.c.b.a.rpz-ip`, IPv6
/// `128.<groups reversed, the longest zero run as zz>.rpz-ip`.
pub fn rpz_ip(ip: IpAddr) -> String {
    rpz_net(Network {
        addr: ip,
        len: if ip.is_ipv4() { 32 } else { 128 },
    })
}

/// The RPZ `rpz-ip` owner name of an address or prefix: the prefix length,
/// then the address's octets (IPv4) or groups (IPv6, the longest run of two
/// or more zero groups as `zz`) in reverse order.
pub fn rpz_net(net: Network) -> String {
    match net.addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.{}.rpz-ip", net.len, o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let g = a.segments();
            // The longest run of zero groups (length >= 2) becomes "zz".
            let (mut best, mut cur) = ((0usize, 0usize), (0usize, 0usize));
            for (i, &x) in g.iter().enumerate() {
                if x == 0 {
                    if cur.1 == 0 {
                        cur.0 = i;
                    }
                    cur.1 += 1;
                    if cur.1 > best.1 {
                        best = cur;
                    }
                } else {
                    cur = (0, 0);
                }
            }
            let mut parts: Vec<String> = Vec::new();
            let mut i = 0;
            while i < 8 {
                if best.1 >= 2 && i == best.0 {
                    parts.push("zz".into());
                    i += best.1;
                } else {
                    parts.push(format!("{:x}", g[i]));
                    i += 1;
                }
            }
            parts.reverse();
            format!("{}.{}.rpz-ip", net.len, parts.join("."))
        }
    }
}

/// A DNS response-policy zone (RPZ as BIND serves it,
/// draft-vixie-dnsop-dns-rpz): every host name and its subdomains answer
/// NXDOMAIN (`name CNAME .` and `*.name CNAME .`), every address or prefix
/// is dropped from answers (`rpz-ip`). Only what [`vet`] accepts, so the
/// owner names are exactly the listed names, their `*.` wildcards and the
/// `rpz-ip` names of the listed addresses: no other trigger, no public
/// suffix, no name that fails to load.
///
/// # Errors
/// [`ExportError::TooMany`] past [`MAX_ENTRIES`].
pub fn to_rpz(entries: &[Entry], zone: &str, serial: u32) -> Result<String, ExportError> {
    let mut s = format!(
        "; iotscope C&C blocklist as a response-policy zone\n$TTL 300\n@ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 86400 300 )\n  IN NS localhost.\n"
    );
    let _ = zone;
    for e in vetted(entries, Format::Rpz, MAX_ENTRIES)? {
        match e.kind {
            EntryKind::Domain => {
                s.push_str(&format!("{} CNAME .\n*.{} CNAME .\n", e.value, e.value));
            }
            EntryKind::Ip => {
                if let Some(Ok(net)) = parse_network(&e.value) {
                    s.push_str(&format!("{} CNAME .\n", rpz_net(net)));
                }
            }
        }
    }
    Ok(s)
}

/// A STIX identifier derived from `name`: stable across exports, so a
/// consumer sees the same indicator again, formatted as a version-4 UUID.
fn stix_id(kind: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("iotscope:{kind}:{name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{kind}--{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A STIX 2.1 bundle with one indicator per entry that [`vet`] accepts
/// (`now`: RFC 3339 with milliseconds, e.g. 2026-11-26T19:00:00.000Z).
///
/// # Errors
/// [`ExportError::TooMany`] past [`MAX_ENTRIES`].
pub fn to_stix(entries: &[Entry], now: &str) -> Result<String, ExportError> {
    let objects: Vec<serde_json::Value> = vetted(entries, Format::Stix, MAX_ENTRIES)?
        .iter()
        .filter_map(|e| {
            let pattern = match (e.kind, parse_network(&e.value)) {
                (EntryKind::Ip, Some(Ok(n))) if n.addr.is_ipv4() => {
                    format!("[ipv4-addr:value = '{n}']")
                }
                (EntryKind::Ip, Some(Ok(n))) => format!("[ipv6-addr:value = '{n}']"),
                (EntryKind::Domain, _) => format!("[domain-name:value = '{}']", e.value),
                _ => return None,
            };
            let what = if e.malware.is_empty() {
                "malware".to_string()
            } else {
                e.malware.clone()
            };
            Some(serde_json::json!({
                "type": "indicator",
                "spec_version": "2.1",
                "id": stix_id("indicator", &e.value),
                "created": now,
                "modified": now,
                "name": format!("{what} C&C or distribution host {}", e.value),
                "description": format!("Reported by {} (first seen {}){}", e.source, e.first_seen,
                    e.port.map(|p| format!(", port {p}")).unwrap_or_default()),
                "indicator_types": ["malicious-activity"],
                "pattern": pattern,
                "pattern_type": "stix",
                "valid_from": now,
            }))
        })
        .collect();
    let bundle = serde_json::json!({
        "type": "bundle",
        "id": stix_id("bundle", now),
        "objects": objects,
    });
    Ok(serde_json::to_string_pretty(&bundle).expect("JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_parse_and_errors_name_the_line() {
        let feodo = "# Feodo Tracker\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2021-01-17 07:44:46\",\"198.51.100.206\",\"443\",\"online\",\"2023-05-01\",\"Dridex\"\n";
        let e = parse(Feed::Feodo, feodo, "f.csv").unwrap().entries;
        assert_eq!(
            (e[0].value.as_str(), e[0].port, e[0].malware.as_str()),
            ("198.51.100.206", Some(443), "Dridex")
        );
        let urlhaus = "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\"3033520\",\"2024-06-23 09:01:04\",\"http://203.0.113.142:53402/bin.sh\",\"online\",\"2024-06-23 09:01:04\",\"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/3033520/\",\"geenensp\"\n\"3033521\",\"2024-06-23 09:02:00\",\"http://bad.example.com/x.arm7\",\"online\",\"\",\"malware_download\",\"elf,mirai\",\"https://urlhaus.abuse.ch/url/3033521/\",\"r\"\n";
        let e = parse(Feed::Urlhaus, urlhaus, "u.csv").unwrap().entries;
        assert_eq!(
            (e[0].value.as_str(), e[0].port, e[0].malware.as_str()),
            ("203.0.113.142", Some(53402), "Mozi")
        );
        assert_eq!(
            (e[1].kind, e[1].value.as_str()),
            (EntryKind::Domain, "bad.example.com")
        );
        let tf = "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\n\"2024-06-23 10:11:12\", \"1289871\", \"192.0.2.236:443\", \"ip:port\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n\"2024-06-23 10:11:13\", \"1289872\", \"d41d8cd98f00b204e9800998ecf8427e\", \"md5_hash\", \"payload\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n";
        let e = parse(Feed::Threatfox, tf, "t.csv").unwrap().entries;
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].value.as_str(), e[0].port, e[0].malware.as_str()),
            ("192.0.2.236", Some(443), "Mirai")
        );
        let bad = parse(
            Feed::Feodo,
            "\"2021\",\"not-an-ip\",\"443\",\"online\",\"x\",\"Dridex\"\n",
            "bad.csv",
        )
        .unwrap_err();
        assert_eq!(bad.line, 1);
        assert!(bad.to_string().starts_with("bad.csv, line 1:"), "{bad}");
    }

    #[test]
    fn stix_ids_are_stable_uuid4_shaped() {
        let a = stix_id("indicator", "192.0.2.1");
        assert_eq!(a, stix_id("indicator", "192.0.2.1"));
        assert_ne!(a, stix_id("indicator", "192.0.2.2"));
        let u = a.strip_prefix("indicator--").unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn rpz_names_follow_the_rpz_ip_encoding() {
        assert_eq!(rpz_ip("192.0.2.1".parse().unwrap()), "32.1.2.0.192.rpz-ip");
        assert_eq!(
            rpz_ip("2001:db8::1".parse().unwrap()),
            "128.1.zz.db8.2001.rpz-ip"
        );
        assert_eq!(
            rpz_ip("2001:db8:0:1:0:0:0:5".parse().unwrap()),
            "128.5.zz.1.0.db8.2001.rpz-ip"
        );
    }

    fn urlhaus_line(id: usize, url: &str) -> String {
        format!("\"{id}\",\"2024-06-23 09:01:04\",\"{url}\",\"online\",\"2024-06-23\",\"malware_download\",\"elf,mirai\",\"https://urlhaus.abuse.ch/url/{id}/\",\"r\"\n")
    }

    /// The hosts of the RPZ reproducer and more, each with the rule it
    /// breaks; they are refused with file and line and the rest imported.
    #[test]
    fn hostile_feed_values_are_refused_with_file_and_line_and_the_rest_kept() {
        let hostile = [
            "http://8.0.0.0.10.rpz-client-ip/bin.sh",
            "http://1.0.0.0.0.rpz-ip/x",
            "http://com.rpz-nsdname/x",
            "http://co.jp/x",
            "http://a..b/x",
            "http://evil.rpz-passthru/x",
            "http://127.1/x",
            "http://10.0.0.7:8080/x",
            "http://[::1]/x",
            "http://github.io/x",
            "http://ex_ample.com/x",
            "http://xn--.com/x",
        ];
        let mut feed = String::from("# id,dateadded,url,...\n");
        for (i, url) in hostile.iter().enumerate() {
            feed.push_str(&urlhaus_line(i + 1, url));
        }
        feed.push_str(&urlhaus_line(99, "http://bad.example.com/x.arm7"));
        feed.push_str(&urlhaus_line(100, "http://BAD.example.com./y"));
        let p = parse(Feed::Urlhaus, &feed, "u.csv").unwrap();
        let kept: Vec<&str> = p.entries.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(kept, ["bad.example.com", "bad.example.com"]);
        assert_eq!(p.refused.len(), hostile.len());
        for (i, r) in p.refused.iter().enumerate() {
            assert_eq!(r.line, i + 2, "{r}");
            assert!(
                r.to_string()
                    .starts_with(&format!("u.csv, line {}: ", i + 2)),
                "{r}"
            );
        }
        assert_eq!(p.refused[0].why, Refusal::RpzLabel("rpz-client-ip".into()));
        assert_eq!(p.refused[3].why, Refusal::PublicSuffix("co.jp".into()));
        assert!(matches!(p.refused[7].why, Refusal::SpecialAddress { .. }));
        // A value with control characters is shown escaped.
        let p = parse(
            Feed::Threatfox,
            "\"2024\", \"1\", \"evil\u{1b}]0;pwned\u{7}.example.com\", \"domain\", \"botnet_cc\", \"x\", \"None\", \"Mirai\"\n",
            "t.csv",
        )
        .unwrap();
        let msg = p.refused[0].to_string();
        assert!(!msg.contains('\u{1b}') && msg.contains("\\u{1b}"), "{msg}");
    }

    fn entry(value: &str, kind: EntryKind) -> Entry {
        Entry {
            value: value.into(),
            kind,
            port: None,
            malware: "Mirai".into(),
            source: "urlhaus".into(),
            first_seen: "2024-06-23".into(),
        }
    }

    /// A store filled before the rules existed: the exports leave the
    /// hostile values out and say why.
    #[test]
    fn exports_write_only_what_passes_the_policy() {
        use EntryKind::{Domain, Ip};
        let long = format!("{}.example.com", ["abcdefghij"; 17].join("."));
        assert!(long.len() > MAX_RPZ_NAME && long.len() <= 253);
        let entries = [
            entry("8.0.0.0.10.rpz-client-ip", Domain),
            entry("1.0.0.0.0.rpz-ip", Domain),
            entry("com.rpz-nsdname", Domain),
            entry("co.jp", Domain),
            entry("a..b", Domain),
            entry("x.example.com\n@ NS evil.", Domain),
            entry(&long, Domain),
            entry("0.0.0.0/0", Ip),
            entry("::/0", Ip),
            entry("10.0.0.0/8", Ip),
            entry("127.0.0.1", Ip),
            entry("not-an-address", Ip),
            entry("bad.example.com", Domain),
            entry("198.51.100.10", Ip),
            entry("203.0.113.0/24", Ip),
            entry("2001:db8::c2", Ip),
        ];
        let rpz = to_rpz(&entries, "rpz", 1).unwrap();
        let owners: Vec<&str> = rpz
            .lines()
            .filter(|l| !l.starts_with([';', '$', ' ', '@']))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            owners,
            [
                "32.10.100.51.198.rpz-ip",
                "128.c2.zz.db8.2001.rpz-ip",
                "24.0.113.0.203.rpz-ip",
                "bad.example.com",
                "*.bad.example.com",
            ],
            "{rpz}"
        );
        let v = vet(&entries, Format::Rpz);
        assert_eq!(v.accepted.len(), 4);
        assert_eq!(v.excluded.len(), entries.len() - 4);
        assert!(v.excluded.iter().any(|x| x.why == Refusal::TooLongForRpz));
        // STIX carries the long name (it is a valid DNS name), not the rest.
        assert_eq!(vet(&entries, Format::Stix).accepted.len(), 5);
        let plain = to_plain(&entries).unwrap();
        assert_eq!(
            plain.lines().skip(1).collect::<Vec<_>>(),
            ["198.51.100.10", "2001:db8::c2", "203.0.113.0/24"]
        );
        let nft = to_nft(&entries, "t").unwrap();
        assert!(
            nft.contains("elements = { 198.51.100.10, 203.0.113.0/24 }"),
            "{nft}"
        );
        assert!(nft.contains("flags interval"), "{nft}");
        assert!(!nft.contains("0.0.0.0") && !nft.contains("::/0") && !nft.contains("127.0.0.1"));
        // Host names are not the plain list's or nft's to report.
        assert!(vet(&entries, Format::Plain)
            .excluded
            .iter()
            .all(|x| x.entry.kind == Ip));
        let stix = to_stix(&entries, "2026-11-26T19:00:00.000Z").unwrap();
        assert!(
            stix.contains("[ipv4-addr:value = '203.0.113.0/24']"),
            "{stix}"
        );
        assert!(!stix.contains("rpz-") && !stix.contains("co.jp"), "{stix}");
    }

    #[test]
    fn exports_are_bounded_in_size() {
        let entries: Vec<Entry> = (1..=3)
            .map(|i| entry(&format!("198.51.100.{i}"), EntryKind::Ip))
            .collect();
        assert_eq!(vetted(&entries, Format::Plain, 3).unwrap().len(), 3);
        assert_eq!(
            vetted(&entries, Format::Plain, 2).unwrap_err(),
            ExportError::TooMany { count: 3, max: 2 }
        );
    }
}
