//! What the gateway is doing: counters of the rules that decide, the sets
//! and their sizes, the quarantined hosts (from `nft -j list table`, the
//! JSON schema of libnftables-json(5)), and the state the gateway keeps on
//! disk: the quarantine log and the LAN devices it has seen and checked.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One rule's counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleCounter {
    /// Its chain.
    pub chain: String,
    /// Its comment (what `gateway status` names it by).
    pub comment: String,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

/// A quarantined host and the seconds its quarantine has left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    /// The host.
    pub address: String,
    /// Seconds left.
    pub expires_s: u64,
}

/// The table as the kernel holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableStatus {
    /// Counters of commented rules, in table order.
    pub rules: Vec<RuleCounter>,
    /// Set name -> elements.
    pub sets: BTreeMap<String, usize>,
    /// Hosts in the quarantine sets.
    pub quarantined: Vec<Quarantined>,
}

/// Reads `nft -j list table inet iotscope`.
///
/// Errors: a message when the text is not nft's JSON.
pub fn parse_table(json: &str) -> Result<TableStatus, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| format!("nft -j output: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft -j output has no \"nftables\" array")?;
    let mut st = TableStatus::default();
    for item in items {
        if let Some(set) = item.get("set") {
            let name = set
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let elems = set
                .get("elem")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            st.sets.insert(name.clone(), elems.len());
            if name.starts_with("quarantine") {
                for e in elems {
                    let (addr, expires) = match e.get("elem") {
                        Some(inner) => (
                            inner.get("val").and_then(Value::as_str).map(str::to_string),
                            inner.get("expires").and_then(Value::as_u64).unwrap_or(0),
                        ),
                        None => (e.as_str().map(str::to_string), 0),
                    };
                    if let Some(address) = addr {
                        st.quarantined.push(Quarantined {
                            address,
                            expires_s: expires,
                        });
                    }
                }
            }
        } else if let Some(rule) = item.get("rule") {
            let Some(comment) = rule.get("comment").and_then(Value::as_str) else {
                continue;
            };
            let counter = rule
                .get("expr")
                .and_then(Value::as_array)
                .and_then(|x| x.iter().find_map(|e| e.get("counter")));
            if let Some(c) = counter {
                st.rules.push(RuleCounter {
                    chain: rule
                        .get("chain")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    comment: comment.to_string(),
                    packets: c.get("packets").and_then(Value::as_u64).unwrap_or(0),
                    bytes: c.get("bytes").and_then(Value::as_u64).unwrap_or(0),
                });
            }
        }
    }
    Ok(st)
}

impl TableStatus {
    /// Packets counted by the rules with this comment.
    pub fn packets(&self, comment: &str) -> u64 {
        self.rules
            .iter()
            .filter(|r| r.comment == comment)
            .map(|r| r.packets)
            .sum()
    }
}

/// LAN neighbours from `/proc/net/arp` on `interface`: complete entries
/// only (flag 0x2), as (address, MAC).
pub fn parse_proc_arp(text: &str, interface: &str) -> Vec<(IpAddr, String)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[5] != interface {
                return None;
            }
            let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
            if flags & 0x2 == 0 || f[3] == "00:00:00:00:00:00" {
                return None;
            }
            Some((f[0].parse().ok()?, crate::config::parse_mac(f[3])?))
        })
        .collect()
}

/// LAN neighbours from iproute2's JSON (`ip -j -6 neigh show dev IFACE`;
/// the kernel's IPv6 neighbour table is not in /proc): entries with a
/// link-layer address whose state is not `FAILED` or `INCOMPLETE`.
pub fn parse_ip_neigh_json(text: &str) -> Vec<(IpAddr, String)> {
    let Ok(Value::Array(rows)) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|r| {
            let ip: IpAddr = r.get("dst")?.as_str()?.parse().ok()?;
            let mac = crate::config::parse_mac(r.get("lladdr")?.as_str()?)?;
            let bad = r
                .get("state")
                .and_then(Value::as_array)
                .is_some_and(|st| st.iter().any(|s| s == "FAILED" || s == "INCOMPLETE"));
            (!bad).then_some((ip, mac))
        })
        .collect()
}

/// Leases from a dnsmasq lease file (one a line: expiry, MAC, address,
/// host name, client id; OpenWrt's odhcpd writes the same for IPv4): the
/// DHCP side of new-device discovery, which sees a device as soon as it
/// gets an address, before it talks. Lines that do not parse are skipped.
pub fn parse_dnsmasq_leases(text: &str) -> Vec<(IpAddr, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let mac = crate::config::parse_mac(f.get(1)?)?;
            let ip: IpAddr = f.get(2)?.parse().ok()?;
            Some((ip, mac))
        })
        .collect()
}

/// A LAN device the gateway has seen, and what its check found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeenDevice {
    /// Its MAC.
    pub mac: String,
    /// When it was first seen (RFC 3339).
    pub first_seen: String,
    /// When its check finished (RFC 3339), if it did.
    pub checked: Option<String>,
    /// Services found open: "port/service".
    #[serde(default)]
    pub services: Vec<String>,
    /// Findings as `iotscope check --format json` gives them.
    #[serde(default)]
    pub findings: Vec<Value>,
    /// Why the check did not finish.
    pub error: Option<String>,
}

/// The devices file in the state folder.
pub fn devices_path(state_dir: &Path) -> PathBuf {
    state_dir.join("devices.json")
}

/// The quarantine log (JSON lines) in the state folder.
pub fn quarantine_log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("quarantine.jsonl")
}

/// Reads the devices file (empty when there is none).
///
/// Errors: the file exists but cannot be read or is not the gateway's JSON.
pub fn read_devices(state_dir: &Path) -> Result<BTreeMap<String, SeenDevice>, String> {
    let path = devices_path(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes the devices file (to a temporary name, then renamed: a reader
/// never sees half of it).
///
/// Errors: the I/O error.
pub fn write_devices(
    state_dir: &Path,
    devices: &BTreeMap<String, SeenDevice>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let path = devices_path(state_dir);
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(devices).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_sets_and_quarantine() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
          {"table": {"family": "inet", "name": "iotscope", "handle": 5}},
          {"set": {"family": "inet", "name": "quarantine_v4", "table": "iotscope", "type": "ipv4_addr", "flags": ["timeout"], "timeout": 60,
                   "elem": [{"elem": {"val": "198.18.1.9", "timeout": 100, "expires": 99}}]}},
          {"set": {"family": "inet", "name": "cc_v4", "table": "iotscope", "type": "ipv4_addr", "elem": ["198.19.200.10", "198.19.200.11"]}},
          {"rule": {"family": "inet", "table": "iotscope", "chain": "forward", "handle": 7, "comment": "cc-out",
                    "expr": [{"match": {}}, {"counter": {"packets": 3, "bytes": 180}}, {"reject": null}]}},
          {"rule": {"family": "inet", "table": "iotscope", "chain": "forward", "handle": 8, "expr": [{"accept": null}]}}]}"#;
        let st = parse_table(json).unwrap();
        assert_eq!(st.packets("cc-out"), 3);
        assert_eq!(st.sets["cc_v4"], 2);
        assert_eq!(
            st.quarantined,
            vec![Quarantined {
                address: "198.18.1.9".into(),
                expires_s: 99
            }]
        );
        assert!(parse_table("not json").is_err());
    }

    #[test]
    fn dnsmasq_leases() {
        let text = "1764590000 02:00:00:00:00:20 198.18.1.20 camera 01:02:00:00:00:00:20\n\
                    garbage line\n\
                    1764590000 zz:00:00:00:00:21 198.18.1.21 * *\n\
                    1764590000 02:00:00:00:00:22 not-an-ip * *\n";
        assert_eq!(
            parse_dnsmasq_leases(text),
            vec![(
                "198.18.1.20".parse().unwrap(),
                "02:00:00:00:00:20".to_string()
            )]
        );
    }

    #[test]
    fn ipv6_neighbours_from_iproute2() {
        let json = r#"[{"dst":"2001:db8:1::20","lladdr":"02:00:00:00:00:20","state":["REACHABLE"]},
            {"dst":"2001:db8:1::21","state":["FAILED"]},
            {"dst":"2001:db8:1::22","lladdr":"02:00:00:00:00:22","state":["INCOMPLETE"]},
            {"dst":"fe80::1","lladdr":"02:00:00:00:00:01","router":null,"state":["STALE"]}]"#;
        let n = parse_ip_neigh_json(json);
        assert_eq!(n.len(), 2);
        assert_eq!(
            n[0],
            (
                "2001:db8:1::20".parse().unwrap(),
                "02:00:00:00:00:20".to_string()
            )
        );
        assert!(parse_ip_neigh_json("garbage").is_empty());
    }

    #[test]
    fn neighbours_on_one_interface_only() {
        let arp =
            "IP address       HW type     Flags       HW address            Mask     Device\n\
                   198.18.1.20      0x1         0x2         02:00:00:00:00:20     *        lan0\n\
                   198.18.1.21      0x1         0x0         00:00:00:00:00:00     *        lan0\n\
                   198.19.0.1       0x1         0x2         02:00:00:00:00:99     *        wan0\n";
        assert_eq!(
            parse_proc_arp(arp, "lan0"),
            vec![(
                "198.18.1.20".parse().unwrap(),
                "02:00:00:00:00:20".to_string()
            )]
        );
    }
}
