//! C&C and malware-distribution hosts: imported from abuse.ch feeds and
//! exported for the systems that enforce them (a plain IP list for ACLs,
//! an nftables set file, a DNS response-policy zone).
//!
//! Mirai and its successors often resolve their C&C names through a public
//! resolver (8.8.8.8) directly, bypassing the ISP's DNS, so an RPZ alone
//! does not cut them off: ISPs need the IP list too.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

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

fn entry(
    value: &str,
    port: Option<u16>,
    malware: &str,
    source: &str,
    first_seen: &str,
) -> Option<Entry> {
    let value = value.trim().trim_end_matches('.').to_ascii_lowercase();
    if value.is_empty() {
        return None;
    }
    let kind = if value.parse::<IpAddr>().is_ok() {
        EntryKind::Ip
    } else if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && value.contains('.')
    {
        EntryKind::Domain
    } else {
        return None;
    };
    Some(Entry {
        value,
        kind,
        port,
        malware: malware.to_string(),
        source: source.to_string(),
        first_seen: first_seen.to_string(),
    })
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

/// Parses a feed export; `#` lines and the header are skipped. Every other
/// line must parse (an error names the file and the line).
pub fn parse(feed: Feed, text: &str, file: &str) -> Result<Vec<Entry>, FeedError> {
    let mut out = Vec::new();
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
        let e = match feed {
            Feed::Feodo => {
                if f.len() < 6 {
                    return Err(err("expected 6 columns: first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware"));
                }
                if f[1].parse::<IpAddr>().is_err() {
                    return Err(err(&format!("dst_ip {:?} is not an address", f[1])));
                }
                entry(&f[1], f[2].parse().ok(), &f[5], "feodo", &f[0])
            }
            Feed::Urlhaus => {
                if f.len() < 6 {
                    return Err(err("expected 9 columns: id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter"));
                }
                let (host, port) =
                    url_host(&f[2]).ok_or_else(|| err(&format!("url {:?} has no host", f[2])))?;
                let family = f
                    .get(6)
                    .map(|t| t.split(',').next_back().unwrap_or("").to_string())
                    .unwrap_or_default();
                entry(&host, port, &family, "urlhaus", &f[1])
            }
            Feed::Threatfox => {
                if f.len() < 8 {
                    return Err(err("expected ThreatFox's columns: first_seen_utc,ioc_id,ioc_value,ioc_type,threat_type,fk_malware,malware_alias,malware_printable,..."));
                }
                let (value, port) = match f[3].as_str() {
                    "ip:port" => match f[2].rsplit_once(':') {
                        Some((ip, p)) => (ip.trim_matches(['[', ']']).to_string(), p.parse().ok()),
                        None => return Err(err(&format!("ioc {:?} is not ip:port", f[2]))),
                    },
                    "domain" => (f[2].clone(), None),
                    "url" => url_host(&f[2])
                        .ok_or_else(|| err(&format!("url {:?} has no host", f[2])))?,
                    _ => continue, // hashes and the like name no host
                };
                entry(&value, port, &f[7], "threatfox", &f[0])
            }
        };
        match e {
            Some(e) => out.push(e),
            None => {
                return Err(err(&format!(
                    "{:?} is neither an address nor a domain",
                    f.get(2).or(f.get(1)).cloned().unwrap_or_default()
                )))
            }
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

/// A plain list: one address a line (domains are not addresses).
pub fn to_plain(entries: &[Entry]) -> String {
    let mut s = String::from("# iotscope C&C blocklist: one address a line\n");
    for e in dedup(entries).iter().filter(|e| e.kind == EntryKind::Ip) {
        s.push_str(&e.value);
        s.push('\n');
    }
    s
}

/// An nftables file: a table with one set per family and a forward chain
/// that drops traffic to them (load with `nft -f`).
pub fn to_nft(entries: &[Entry], table: &str) -> String {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for e in dedup(entries).iter().filter(|e| e.kind == EntryKind::Ip) {
        match e.value.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => v4.push(a.to_string()),
            Ok(IpAddr::V6(a)) => v6.push(a.to_string()),
            Err(_) => {}
        }
    }
    let set = |name: &str, ty: &str, items: &[String]| {
        let mut s = format!("  set {name} {{\n    type {ty}\n");
        if !items.is_empty() {
            s.push_str(&format!("    elements = {{ {} }}\n", items.join(", ")));
        }
        s.push_str("  }\n");
        s
    };
    format!(
        "#!/usr/sbin/nft -f\n# iotscope C&C blocklist ({} IPv4, {} IPv6)\ntable inet {table} {{\n{}{}  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    ip daddr @cc_v4 counter drop\n    ip6 daddr @cc_v6 counter drop\n  }}\n}}\n",
        v4.len(),
        v6.len(),
        set("cc_v4", "ipv4_addr", &v4),
        set("cc_v6", "ipv6_addr", &v6),
    )
}

/// The RPZ owner name of an address: IPv4 `32.d.c.b.a.rpz-ip`, IPv6
/// `128.<groups reversed, the longest zero run as zz>.rpz-ip`.
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

/// A DNS response-policy zone (RFC-draft RPZ as BIND serves it): every
/// domain and its subdomains answer NXDOMAIN, every address is dropped
/// from answers.
pub fn to_rpz(entries: &[Entry], zone: &str, serial: u32) -> String {
    let mut s = format!(
        "; iotscope C&C blocklist as a response-policy zone\n$TTL 300\n@ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 86400 300 )\n  IN NS localhost.\n"
    );
    let _ = zone;
    for e in dedup(entries) {
        match e.kind {
            EntryKind::Domain => {
                s.push_str(&format!("{} CNAME .\n*.{} CNAME .\n", e.value, e.value));
            }
            EntryKind::Ip => {
                if let Ok(ip) = e.value.parse() {
                    s.push_str(&format!("{} CNAME .\n", rpz_ip(ip)));
                }
            }
        }
    }
    s
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

/// A STIX 2.1 bundle with one indicator per entry (`now`: RFC 3339 with
/// milliseconds, e.g. 2026-11-26T19:00:00.000Z).
pub fn to_stix(entries: &[Entry], now: &str) -> String {
    let objects: Vec<serde_json::Value> = dedup(entries)
        .iter()
        .filter_map(|e| {
            let pattern = match (e.kind, e.value.parse::<IpAddr>()) {
                (EntryKind::Ip, Ok(IpAddr::V4(a))) => format!("[ipv4-addr:value = '{a}']"),
                (EntryKind::Ip, Ok(IpAddr::V6(a))) => format!("[ipv6-addr:value = '{a}']"),
                (EntryKind::Domain, _) => {
                    format!("[domain-name:value = '{}']", e.value.replace('\'', ""))
                }
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
    serde_json::to_string_pretty(&bundle).expect("JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_parse_and_errors_name_the_line() {
        let feodo = "# Feodo Tracker\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2021-01-17 07:44:46\",\"198.51.100.206\",\"443\",\"online\",\"2023-05-01\",\"Dridex\"\n";
        let e = parse(Feed::Feodo, feodo, "f.csv").unwrap();
        assert_eq!(
            (e[0].value.as_str(), e[0].port, e[0].malware.as_str()),
            ("198.51.100.206", Some(443), "Dridex")
        );
        let urlhaus = "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\"3033520\",\"2024-06-23 09:01:04\",\"http://203.0.113.142:53402/bin.sh\",\"online\",\"2024-06-23 09:01:04\",\"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/3033520/\",\"geenensp\"\n\"3033521\",\"2024-06-23 09:02:00\",\"http://bad.example.com/x.arm7\",\"online\",\"\",\"malware_download\",\"elf,mirai\",\"https://urlhaus.abuse.ch/url/3033521/\",\"r\"\n";
        let e = parse(Feed::Urlhaus, urlhaus, "u.csv").unwrap();
        assert_eq!(
            (e[0].value.as_str(), e[0].port, e[0].malware.as_str()),
            ("203.0.113.142", Some(53402), "Mozi")
        );
        assert_eq!(
            (e[1].kind, e[1].value.as_str()),
            (EntryKind::Domain, "bad.example.com")
        );
        let tf = "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\n\"2024-06-23 10:11:12\", \"1289871\", \"192.0.2.236:443\", \"ip:port\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n\"2024-06-23 10:11:13\", \"1289872\", \"d41d8cd98f00b204e9800998ecf8427e\", \"md5_hash\", \"payload\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n";
        let e = parse(Feed::Threatfox, tf, "t.csv").unwrap();
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
}
