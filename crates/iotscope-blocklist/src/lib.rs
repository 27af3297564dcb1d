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
//! single addresses of hosts on the internet (feeds name hosts: a prefix is
//! never an entry).

pub mod policy;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use policy::{
    check_address, check_domain, is_public_suffix, parse_address, url_host, Refusal, MAX_ENTRIES,
    MAX_RPZ_NAME,
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

/// How a feed value is stored: an address (canonical text) or a host name
/// (normalised), each checked by [`policy`]; a prefix is refused.
fn classify(value: &str) -> Result<(String, EntryKind), Refusal> {
    let v = value.trim();
    if let Some(ip) = parse_address(v) {
        return Ok((ip?.to_string(), EntryKind::Ip));
    }
    check_domain(v).map(|d| (d, EntryKind::Domain))
}

/// How a value that must be an address (Feodo `dst_ip`, ThreatFox
/// `ip:port`) is stored: a prefix or a name is refused.
fn address(value: &str) -> Result<(String, EntryKind), Refusal> {
    match parse_address(value.trim()) {
        Some(ip) => Ok((ip?.to_string(), EntryKind::Ip)),
        None => Err(Refusal::NotAnAddress),
    }
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
/// A line that does not have the feed's shape (too few columns, a Feodo
/// `dst_ip` that is not an address, a ThreatFox `ip:port` with no `:`)
/// stops the parse with a [`FeedError`] naming the file and line: the file
/// is damaged or not that feed. A line that has the shape but names a
/// value [`policy`] refuses (a URL whose host is not certain, an RPZ
/// trigger label, a public suffix, a malformed host name, a prefix, a
/// private address, ...) is not an error: it is listed in
/// [`Parsed::refused`] with its file and line.
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
        let refused = |value: &str, why: Refusal| Refused {
            file: file.to_string(),
            line: i + 1,
            value: value.to_string(),
            why,
        };
        // A header line (Feodo's is not commented).
        if f.first()
            .is_some_and(|x| x == "first_seen_utc" || x == "id")
        {
            continue;
        }
        // The value as the feed wrote it, the value checked, the port,
        // the family, the feed and when it was first seen.
        let (raw_value, checked, port, malware, source, first_seen) = match feed {
            Feed::Feodo => {
                if f.len() < 6 {
                    return Err(err("expected 6 columns: first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware"));
                }
                if parse_address(&f[1]).is_none() {
                    return Err(err(&format!("dst_ip {} is not an address", shown(&f[1]))));
                }
                (
                    f[1].clone(),
                    address(&f[1]),
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
                let (host, port) = match url_host(&f[2]) {
                    Ok(hp) => hp,
                    Err(why) => {
                        out.refused.push(refused(&f[2], why));
                        continue;
                    }
                };
                let family = f
                    .get(6)
                    .map(|t| t.split(',').next_back().unwrap_or("").to_string())
                    .unwrap_or_default();
                (
                    host.clone(),
                    classify(&host),
                    port,
                    family,
                    "urlhaus",
                    &f[1],
                )
            }
            Feed::Threatfox => {
                if f.len() < 8 {
                    return Err(err("expected ThreatFox's columns: first_seen_utc,ioc_id,ioc_value,ioc_type,threat_type,fk_malware,malware_alias,malware_printable,..."));
                }
                let (value, checked, port) = match f[3].as_str() {
                    // An address, never a prefix: `11.0.0.0/8:443`,
                    // `[2001:4860::/32]:443` and `64:ff9b::/96:80` are
                    // refused.
                    "ip:port" => match f[2].rsplit_once(':') {
                        Some((ip, p)) => {
                            let ip = ip.trim_matches(['[', ']']);
                            (ip.to_string(), address(ip), p.parse().ok())
                        }
                        None => return Err(err(&format!("ioc {} is not ip:port", shown(&f[2])))),
                    },
                    "domain" => (f[2].clone(), classify(&f[2]), None),
                    "url" => match url_host(&f[2]) {
                        Ok((host, port)) => (host.clone(), classify(&host), port),
                        Err(why) => {
                            out.refused.push(refused(&f[2], why));
                            continue;
                        }
                    },
                    _ => continue, // hashes and the like name no host
                };
                (value, checked, port, f[7].clone(), "threatfox", &f[0])
            }
        };
        // The family and the date are kept as text: a control character in
        // them (a NUL cannot even be stored in PostgreSQL) becomes U+FFFD,
        // the same in either store. (Values with one are refused above.)
        let printable = |t: &str| -> String {
            t.chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect()
        };
        match checked {
            Ok((value, kind)) => out.entries.push(Entry {
                value,
                kind,
                port,
                malware: printable(&malware),
                source: source.to_string(),
                first_seen: printable(first_seen),
            }),
            Err(why) => out.refused.push(refused(&raw_value, why)),
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
    /// One address a line ([`to_plain`]).
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
/// store may hold values imported before these rules): addresses through
/// [`parse_address`] (a prefix is refused), host names through [`check_domain`]
/// (and, for an RPZ, at most [`MAX_RPZ_NAME`] characters). The plain list
/// and the nftables sets carry addresses only: host names are not theirs
/// and are neither kept nor reported.
pub fn vet(entries: &[Entry], format: Format) -> Vetted {
    let mut out = Vetted::default();
    for e in dedup(entries) {
        let checked = match e.kind {
            EntryKind::Ip => match parse_address(&e.value) {
                Some(r) => r.map(|ip| ip.to_string()),
                None => Err(Refusal::NotAnAddress),
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

fn addresses(entries: &[Entry]) -> impl Iterator<Item = IpAddr> + '_ {
    entries
        .iter()
        .filter(|e| e.kind == EntryKind::Ip)
        .filter_map(|e| parse_address(&e.value).and_then(Result::ok))
}

/// A plain list: one address a line, only what [`vet`] accepts (host names
/// are not addresses and are left out).
///
/// # Errors
/// [`ExportError::TooMany`] past [`MAX_ENTRIES`].
pub fn to_plain(entries: &[Entry]) -> Result<String, ExportError> {
    let mut s = String::from("# iotscope C&C blocklist: one address a line\n");
    for ip in addresses(&vetted(entries, Format::Plain, MAX_ENTRIES)?) {
        s.push_str(&ip.to_string());
        s.push('\n');
    }
    Ok(s)
}

/// An nftables file: a table with one set per family and a forward chain
/// that drops traffic to them (load with `nft -f`). Only what [`vet`]
/// accepts: single addresses.
///
/// # Errors
/// [`ExportError::TooMany`] past [`MAX_ENTRIES`].
pub fn to_nft(entries: &[Entry], table: &str) -> Result<String, ExportError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for ip in addresses(&vetted(entries, Format::Nft, MAX_ENTRIES)?) {
        match ip {
            IpAddr::V4(_) => v4.push(ip),
            IpAddr::V6(_) => v6.push(ip),
        }
    }
    let set = |name: &str, ty: &str, items: &[IpAddr]| {
        let mut s = format!("  set {name} {{\n    type {ty}\n");
        if !items.is_empty() {
            let items: Vec<String> = items.iter().map(IpAddr::to_string).collect();
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

/// The RPZ `rpz-ip` owner name of an address: IPv4 `32.d.c.b.a.rpz-ip`,
/// IPv6 `128.<groups reversed, the longest run of two or more zero groups
/// as zz>.rpz-ip`.
pub fn rpz_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("32.{}.{}.{}.{}.rpz-ip", o[3], o[2], o[1], o[0])
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
            format!("128.{}.rpz-ip", parts.join("."))
        }
    }
}

/// A DNS response-policy zone (RPZ as BIND serves it,
/// draft-vixie-dnsop-dns-rpz): every host name and its subdomains answer
/// NXDOMAIN (`name CNAME .` and `*.name CNAME .`), every address is
/// dropped from answers (`rpz-ip`). Only what [`vet`] accepts, so the
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
                if let Some(Ok(ip)) = parse_address(&e.value) {
                    s.push_str(&format!("{} CNAME .\n", rpz_ip(ip)));
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
            let pattern = match (e.kind, parse_address(&e.value)) {
                (EntryKind::Ip, Some(Ok(IpAddr::V4(a)))) => format!("[ipv4-addr:value = '{a}']"),
                (EntryKind::Ip, Some(Ok(IpAddr::V6(a)))) => format!("[ipv6-addr:value = '{a}']"),
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
    fn a_control_character_in_a_family_name_is_kept_visible_not_raw() {
        let feodo = "\"2021-01-17 07:44:46\",\"11.0.2.207\",\"443\",\"online\",\"2023-05-01\",\"Dri\u{0}dex\"\n";
        let e = parse(Feed::Feodo, feodo, "f.csv").unwrap().entries;
        assert_eq!(e[0].malware, "Dri\u{FFFD}dex");
    }

    #[test]
    fn feeds_parse_and_errors_name_the_line() {
        let feodo = "# Feodo Tracker\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2021-01-17 07:44:46\",\"11.0.2.206\",\"443\",\"online\",\"2023-05-01\",\"Dridex\"\n";
        let e = parse(Feed::Feodo, feodo, "f.csv").unwrap().entries;
        assert_eq!(
            (e[0].value.as_str(), e[0].port, e[0].malware.as_str()),
            ("11.0.2.206", Some(443), "Dridex")
        );
        let urlhaus = "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\"3033520\",\"2024-06-23 09:01:04\",\"http://11.0.3.142:53402/bin.sh\",\"online\",\"2024-06-23 09:01:04\",\"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/3033520/\",\"geenensp\"\n\"3033521\",\"2024-06-23 09:02:00\",\"http://bad.example.com/x.arm7\",\"online\",\"\",\"malware_download\",\"elf,mirai\",\"https://urlhaus.abuse.ch/url/3033521/\",\"r\"\n";
        let e = parse(Feed::Urlhaus, urlhaus, "u.csv").unwrap().entries;
        assert_eq!(
            (e[0].value.as_str(), e[0].port, e[0].malware.as_str()),
            ("11.0.3.142", Some(53402), "Mozi")
        );
        assert_eq!(
            (e[1].kind, e[1].value.as_str()),
            (EntryKind::Domain, "bad.example.com")
        );
        let tf = "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\n\"2024-06-23 10:11:12\", \"1289871\", \"11.0.1.236:443\", \"ip:port\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n\"2024-06-23 10:11:13\", \"1289872\", \"d41d8cd98f00b204e9800998ecf8427e\", \"md5_hash\", \"payload\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n";
        let e = parse(Feed::Threatfox, tf, "t.csv").unwrap().entries;
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].value.as_str(), e[0].port, e[0].malware.as_str()),
            ("11.0.1.236", Some(443), "Mirai")
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
        assert_eq!(rpz_ip("11.0.2.1".parse().unwrap()), "32.1.2.0.11.rpz-ip");
        assert_eq!(
            rpz_ip("2a00:11::1".parse().unwrap()),
            "128.1.zz.11.2a00.rpz-ip"
        );
        assert_eq!(
            rpz_ip("2a00:11:0:1:0:0:0:5".parse().unwrap()),
            "128.5.zz.1.0.11.2a00.rpz-ip"
        );
        assert_eq!(
            rpz_ip("2a00:11:1:1:1:1:0:5".parse().unwrap()),
            "128.5.0.1.1.1.1.11.2a00.rpz-ip"
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
    /// hostile values out and say why. Prefixes (which older versions took
    /// from feeds) and documentation addresses are among them.
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
            entry("11.0.0.0/8", Ip),
            entry("9.0.0.0/8", Ip),
            entry("2001:4860::/32", Ip),
            entry("64:ff9b::/96", Ip),
            entry("11.0.2.0/24", Ip),
            entry("127.0.0.1", Ip),
            entry("198.51.100.10", Ip),
            entry("2001:db8::c2", Ip),
            entry("64:ff9b::b00:20a", Ip),
            entry("not-an-address", Ip),
            entry("bad.example.com", Domain),
            entry("11.0.2.10", Ip),
            entry("2a00:11::c2", Ip),
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
                "32.10.2.0.11.rpz-ip",
                "128.c2.zz.11.2a00.rpz-ip",
                "bad.example.com",
                "*.bad.example.com",
            ],
            "{rpz}"
        );
        let v = vet(&entries, Format::Rpz);
        assert_eq!(v.accepted.len(), 3);
        assert_eq!(v.excluded.len(), entries.len() - 3);
        assert!(v.excluded.iter().any(|x| x.why == Refusal::TooLongForRpz));
        for prefix in [
            "0.0.0.0/0",
            "::/0",
            "10.0.0.0/8",
            "11.0.0.0/8",
            "9.0.0.0/8",
            "2001:4860::/32",
            "64:ff9b::/96",
            "11.0.2.0/24",
        ] {
            let x = v.excluded.iter().find(|x| x.entry.value == prefix).unwrap();
            assert_eq!(x.why, Refusal::Prefix, "{prefix}");
            assert!(x.to_string().contains(prefix), "{x}");
        }
        for special in ["198.51.100.10", "2001:db8::c2", "64:ff9b::b00:20a"] {
            let x = v
                .excluded
                .iter()
                .find(|x| x.entry.value == special)
                .unwrap();
            assert!(matches!(x.why, Refusal::SpecialAddress { .. }), "{special}");
        }
        // STIX carries the long name (it is a valid DNS name), not the rest.
        assert_eq!(vet(&entries, Format::Stix).accepted.len(), 4);
        let plain = to_plain(&entries).unwrap();
        assert_eq!(
            plain.lines().skip(1).collect::<Vec<_>>(),
            ["11.0.2.10", "2a00:11::c2"]
        );
        let nft = to_nft(&entries, "t").unwrap();
        assert!(nft.contains("elements = { 11.0.2.10 }"), "{nft}");
        assert!(nft.contains("elements = { 2a00:11::c2 }"), "{nft}");
        assert!(!nft.contains("interval"), "{nft}");
        assert!(
            nft.lines()
                .filter(|l| l.contains("elements"))
                .all(|l| !l.contains('/')),
            "{nft}"
        );
        assert!(!nft.contains("0.0.0.0") && !nft.contains("127.0.0.1"));
        // Host names are not the plain list's or nft's to report.
        assert!(vet(&entries, Format::Plain)
            .excluded
            .iter()
            .all(|x| x.entry.kind == Ip));
        let stix = to_stix(&entries, "2026-11-26T19:00:00.000Z").unwrap();
        assert!(stix.contains("[ipv4-addr:value = '11.0.2.10']"), "{stix}");
        assert!(stix.contains("[ipv6-addr:value = '2a00:11::c2']"), "{stix}");
        assert!(!stix.contains("rpz-") && !stix.contains("co.jp"), "{stix}");
        assert!(!stix.contains("/8") && !stix.contains("/32"), "{stix}");
    }

    fn threatfox_line(value: &str, kind: &str) -> String {
        format!("\"2024-06-23 10:11:12\", \"1\", \"{value}\", \"{kind}\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n")
    }

    /// The hostile review's prefixes: ThreatFox `ip:port` and `domain`
    /// values with `/len` are refused with their line, as is a Feodo
    /// `dst_ip` prefix and an `ip:port` that holds no address; none reaches
    /// the plain list, nft or the RPZ.
    #[test]
    fn feed_prefixes_are_refused_with_the_line() {
        let lines = [
            ("11.0.0.0/8:443", "ip:port"),
            ("[2001:4860::/32]:443", "ip:port"),
            ("64:ff9b::/96:80", "ip:port"),
            ("0.0.0.0/0:80", "ip:port"),
            ("9.0.0.0/8", "domain"),
            ("2001:4860::/32", "domain"),
            ("evil.example:443", "ip:port"),
            ("[64:ff9b::b00:20a]:80", "ip:port"),
            ("[2002:b00:20a::1]:80", "ip:port"),
            ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]:80", "ip:port"),
            ("192.0.0.9:80", "ip:port"),
            ("198.18.0.1:80", "ip:port"),
            ("192.88.99.1:80", "ip:port"),
            ("203.0.113.5:80", "ip:port"),
            // Kept.
            ("11.0.1.236:443", "ip:port"),
            ("[2a00:11::c2]:443", "ip:port"),
            ("mirai.bad.example", "domain"),
            ("11.0.1.237", "domain"),
        ];
        let mut feed = String::from("# ThreatFox\n");
        for (v, k) in lines {
            feed.push_str(&threatfox_line(v, k));
        }
        let p = parse(Feed::Threatfox, &feed, "t.csv").unwrap();
        let refused: Vec<(usize, &Refusal)> = p.refused.iter().map(|r| (r.line, &r.why)).collect();
        assert_eq!(refused.len(), 14, "{:#?}", p.refused);
        for (i, (line, why)) in refused.iter().enumerate() {
            assert_eq!(*line, i + 2);
            let want_prefix = i < 6;
            assert_eq!(**why == Refusal::Prefix, want_prefix, "{:?}", p.refused[i]);
        }
        assert_eq!(*refused[6].1, Refusal::NotAnAddress);
        assert!(refused[7..]
            .iter()
            .all(|(_, w)| matches!(w, Refusal::SpecialAddress { .. })));
        assert!(
            p.refused[0]
                .to_string()
                .starts_with("t.csv, line 2: \"11.0.0.0/8\" refused: a prefix"),
            "{}",
            p.refused[0]
        );
        let kept: Vec<&str> = p.entries.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(
            kept,
            [
                "11.0.1.236",
                "2a00:11::c2",
                "mirai.bad.example",
                "11.0.1.237"
            ]
        );
        // Feodo: a prefix in dst_ip is refused with its line, the rest kept.
        let feodo = "\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2021\",\"11.0.0.0/8\",\"443\",\"online\",\"x\",\"Dridex\"\n\"2021\",\"11.0.2.206\",\"443\",\"online\",\"x\",\"Dridex\"\n";
        let f = parse(Feed::Feodo, feodo, "f.csv").unwrap();
        assert_eq!(f.refused.len(), 1);
        assert_eq!(
            (f.refused[0].line, &f.refused[0].why),
            (2, &Refusal::Prefix)
        );
        assert_eq!(f.entries.len(), 1);

        let all: Vec<Entry> = p.entries.into_iter().chain(f.entries).collect();
        let plain = to_plain(&all).unwrap();
        let nft = to_nft(&all, "t").unwrap();
        let rpz = to_rpz(&all, "rpz", 1).unwrap();
        for text in [&plain, &nft, &rpz] {
            assert!(
                !text.contains("11.0.0.0") && !text.contains("9.0.0.0"),
                "{text}"
            );
            assert!(!text.contains("4860") && !text.contains("ff9b"), "{text}");
        }
        assert!(!plain.contains('/'), "{plain}");
        assert!(
            nft.lines()
                .filter(|l| l.contains("elements"))
                .all(|l| !l.contains('/')),
            "{nft}"
        );
        assert!(
            rpz.lines()
                .filter(|l| l.contains(".rpz-ip"))
                .all(|l| l.starts_with("32.") || l.starts_with("128.")),
            "{rpz}"
        );
    }

    /// URLs whose host a parser could be fooled about: the innocent host
    /// (google.com) is never listed; where browsers and other clients agree
    /// the host is evil.example, it is.
    #[test]
    fn url_confusers_never_list_the_innocent_host() {
        let urls = [
            ("http://evil.example\\@google.com/x", false),
            ("https://evil.example\\@drive.google.com/file", false),
            ("http://evil.example%2f@google.com/", false),
            ("http://evil.example%40google.com/", false),
            ("http://x@evil.example@google.com/", false),
            ("http://google.com\t@evil.example/", false),
            ("http://evil.example\t\\@google.com/", false),
            ("http://google.com\r@evil.example/", false),
            ("http:\\\\google.com\\x", false),
            ("http://google.com@evil.example/", true),
            ("http://evil.example#@google.com/", true),
            ("http://evil.example?@google.com/", true),
            ("http://evil.example/@google.com", true),
        ];
        let mut feed = String::from("# id,dateadded,url,...\n");
        let mut tf = String::from("# ThreatFox\n");
        for (i, (url, _)) in urls.iter().enumerate() {
            feed.push_str(&urlhaus_line(i + 1, url));
            tf.push_str(&threatfox_line(url, "url"));
        }
        for (p, file) in [
            (parse(Feed::Urlhaus, &feed, "u.csv").unwrap(), "u.csv"),
            (parse(Feed::Threatfox, &tf, "t.csv").unwrap(), "t.csv"),
        ] {
            let refused: Vec<usize> = p.refused.iter().map(|r| r.line).collect();
            let want: Vec<usize> = (0..urls.len())
                .filter(|&i| !urls[i].1)
                .map(|i| i + 2)
                .collect();
            assert_eq!(refused, want, "{:#?}", p.refused);
            for r in &p.refused {
                assert!(matches!(r.why, Refusal::Url(_)), "{r}");
                // The line and the URL as the feed wrote it.
                assert!(
                    r.to_string()
                        .starts_with(&format!("{file}, line {}: \"", r.line)),
                    "{r}"
                );
                assert_eq!(r.value, urls[r.line - 2].0);
            }
            assert!(p.entries.iter().all(|e| e.value == "evil.example"));
            assert_eq!(p.entries.len(), 4);
            let rpz = to_rpz(&p.entries, "rpz", 1).unwrap();
            assert!(!rpz.contains("google"), "{rpz}");
            assert!(rpz.contains("\nevil.example CNAME .\n"), "{rpz}");
        }
    }

    #[test]
    fn exports_are_bounded_in_size() {
        let entries: Vec<Entry> = (1..=3)
            .map(|i| entry(&format!("11.0.2.{i}"), EntryKind::Ip))
            .collect();
        assert_eq!(vetted(&entries, Format::Plain, 3).unwrap().len(), 3);
        assert_eq!(
            vetted(&entries, Format::Plain, 2).unwrap_err(),
            ExportError::TooMany { count: 3, max: 2 }
        );
    }
}
