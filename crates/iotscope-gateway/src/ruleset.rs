//! The nftables ruleset: one `inet iotscope` table whose named sets carry
//! what changes (C&C hosts, quarantined hosts, addresses of MUD names) and
//! whose chains carry the policy. The sets are refreshed in place
//! ([`Plan::refresh_script`]) without reloading the table, as OpenWrt's
//! banIP does with its feed sets.
//!
//! Chains (all in `inet iotscope`; every base chain acts only on the LAN
//! and WAN interfaces, so other interfaces of the box — a guest network,
//! container bridges — are left to whatever else rules them):
//! - `prerouting` (nat, dstnat): quarantined hosts' web requests to the
//!   notice page, direct DNS redirected to the gateway, declared forwards;
//! - `input` (filter): management first, then what a quarantined host may
//!   still reach (DNS, the notice page), LAN services (DNS, DHCP), ICMP;
//!   everything else from the LAN or WAN is dropped;
//! - `forward` (filter): established flows; quarantine; C&C both ways;
//!   direct DNS; declared forwards; nothing else from the WAN; then the
//!   per-device allowlists (`from_device`, then `to_device` for traffic
//!   between LAN devices);
//! - `from_device`, `to_device`, `devN_from`, `devN_to`: the MUD policies
//!   (RFC 8520), one chain per device and direction, evaluated for new
//!   connections only (established traffic was accepted before them).
//!
//! Each rule that decides carries a counter and a comment naming it, which
//! `gateway status` reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::config::{within, DefaultPolicy, DnsMode, Gateway};
use crate::mud::{Ace, Direction, Family, Mud, MudMatch, PortMatch};

/// The table's family and name.
pub const TABLE: &str = "inet iotscope";

/// The comment that marks the table as the gateway's: `apply`, `remove`
/// and `rollback` refuse a table of the same name without it.
pub const OWNER: &str = "managed by iotscope gateway";

/// What the sets hold when the plan is made.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// C&C and loader addresses (store blocklist, honeypot downloads,
    /// `[gateway] block`), before the gateway's own filter.
    pub cc: Vec<(IpAddr, String)>,
    /// Each configured device's MUD file, in `[[gateway.device]]` order.
    pub muds: Vec<Option<Mud>>,
    /// Addresses of the host names the MUD files use.
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// Services the checks flagged (address, port, finding kind, from the
    /// store): a declared forward to one of them is left out.
    pub flagged: Vec<(IpAddr, u16, String)>,
}

/// One named set and its elements (as nft writes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetDef {
    /// Set name.
    pub name: String,
    /// `ipv4_addr` or `ipv6_addr`.
    pub kind: &'static str,
    /// Prefixes allowed (`flags interval`).
    pub interval: bool,
    /// Its elements.
    pub elements: Vec<String>,
    /// What it is for.
    pub comment: String,
    /// Refreshed by `gateway refresh` (the C&C and name sets).
    pub refreshed: bool,
}

/// A planned ruleset.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The whole table, as `nft list table` would print it.
    pub table: String,
    /// The sets, with their elements.
    pub sets: Vec<SetDef>,
    /// Addresses left out of the C&C sets, and why.
    pub refused: Vec<(IpAddr, String)>,
    /// What the plan could not do exactly (ACEs left out, names without
    /// addresses).
    pub warnings: Vec<String>,
}

/// Why an address may not be blocked at the gateway: it must be one
/// remote host. Blocking the LAN, the gateway, a listed resolver or an
/// allowed prefix would cut the network the gateway protects.
pub fn refuse_block(ip: IpAddr, gw: &Gateway) -> Option<&'static str> {
    let special = match ip {
        IpAddr::V4(v) => {
            v.is_unspecified()
                || v.is_loopback()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_link_local()
                || v.octets()[0] == 0
                || v.octets()[0] >= 240
        }
        IpAddr::V6(v) => {
            v.is_unspecified()
                || v.is_loopback()
                || v.is_multicast()
                || (v.segments()[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped().is_some()
        }
    };
    if special {
        Some("not a unicast host (loopback, link-local, multicast, unspecified, mapped)")
    } else if within(&gw.lan_prefixes, ip) {
        Some("inside the LAN")
    } else if Some(ip) == gw.lan_address || gw.resolvers.contains(&ip) {
        Some("the gateway or a listed resolver")
    } else if within(&gw.allow, ip) {
        Some("in [gateway] allow")
    } else if within(&gw.management_from, ip) {
        Some("a management source")
    } else {
        None
    }
}

struct Fam {
    ip: &'static str,
    kind: &'static str,
    suffix: &'static str,
    nfproto: &'static str,
}

const V4: Fam = Fam {
    ip: "ip",
    kind: "ipv4_addr",
    suffix: "v4",
    nfproto: "ipv4",
};
const V6: Fam = Fam {
    ip: "ip6",
    kind: "ipv6_addr",
    suffix: "v6",
    nfproto: "ipv6",
};

fn fam_of(ip: IpAddr) -> &'static Fam {
    if ip.is_ipv4() {
        &V4
    } else {
        &V6
    }
}

/// Text safe inside an nft comment (`"` and control characters would end
/// or break it); at most 100 characters (nft allows 128).
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.:/@+=,()".contains(c) {
                c
            } else {
                '_'
            }
        })
        // nft takes at most 128 bytes; every character here is one byte.
        .take(120)
        .collect()
}

fn port_expr(p: PortMatch) -> String {
    match p {
        PortMatch::Eq(n) => n.to_string(),
        PortMatch::Neq(n) => format!("!= {n}"),
        PortMatch::Lte(n) => format!("<= {n}"),
        PortMatch::Gte(n) => format!(">= {n}"),
        PortMatch::Range(a, b) => format!("{a}-{b}"),
    }
}

fn elements(list: &[String]) -> String {
    list.join(", ")
}

/// Sorted, deduplicated text of addresses of one family.
fn of_family(list: &[IpAddr], v4: bool) -> Vec<String> {
    let set: BTreeSet<IpAddr> = list.iter().copied().filter(|a| a.is_ipv4() == v4).collect();
    set.into_iter().map(|a| a.to_string()).collect()
}

/// The set name for a MUD host name (index in the sorted names).
fn name_set(name: &str, fam: &Fam) -> String {
    format!("{}_{}", name_set_stem(name), fam.suffix)
}

/// `name_` and 16 hex digits of the name's hash ([`stable_hash`]): a set keeps its
/// name whatever other names the MUD files gain or lose, so `refresh` can
/// never fill one name's set with another's addresses.
fn name_set_stem(name: &str) -> String {
    format!("name_{:016x}", stable_hash(name.as_bytes()))
}

/// A stable 64-bit hash (xxh3) for set names and the table's structure
/// (not for security).
fn stable_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

impl Plan {
    /// Plans the ruleset for `gw` with what `inputs` holds.
    pub fn new(gw: &Gateway, inputs: &Inputs) -> Plan {
        let mut warnings = Vec::new();
        let mut refused = Vec::new();
        let mut cc = Vec::new();
        for (ip, source) in &inputs.cc {
            match refuse_block(*ip, gw) {
                Some(why) => refused.push((*ip, format!("{why} (from {source})"))),
                None => cc.push(*ip),
            }
        }
        let prefixes = |list: &[iotscope_telescope::Prefix], v4: bool| -> Vec<String> {
            list.iter()
                .filter(|p| matches!(p, iotscope_telescope::Prefix::V4 { .. }) == v4)
                .map(|p| p.to_string())
                .collect()
        };
        let mut resolvers: Vec<IpAddr> = gw.resolvers.clone();
        resolvers.extend(gw.lan_address);
        let mut sets = Vec::new();
        for (fam, v4) in [(&V4, true), (&V6, false)] {
            let mut set = |name: &str,
                           interval: bool,
                           elements: Vec<String>,
                           comment: &str,
                           refreshed: bool| {
                sets.push(SetDef {
                    name: format!("{name}_{}", fam.suffix),
                    kind: fam.kind,
                    interval,
                    elements,
                    comment: comment.into(),
                    refreshed,
                })
            };
            set(
                "cc",
                false,
                of_family(&cc, v4),
                "C&C and loader hosts: store blocklist, honeypot downloads, [gateway] block",
                true,
            );
            set(
                "quarantine",
                false,
                Vec::new(),
                "LAN hosts that scanned: DNS and the notice page only",
                false,
            );
            set(
                "lan",
                true,
                prefixes(&gw.lan_prefixes, v4),
                "lan_prefixes (RFC 8520 local-networks)",
                false,
            );
            set(
                "mgmt",
                true,
                prefixes(&gw.management_from, v4),
                "management sources",
                false,
            );
            set(
                "resolvers",
                false,
                of_family(&resolvers, v4),
                "resolvers LAN devices may ask directly",
                false,
            );
            for (name, addrs) in inputs.names.iter() {
                set(
                    &name_set_stem(name),
                    false,
                    of_family(addrs, v4),
                    &format!("MUD name {name}"),
                    true,
                );
            }
        }
        for (name, addrs) in &inputs.names {
            if addrs.is_empty() {
                warnings.push(format!(
                    "MUD name {name} has no address: an allow that uses it matches nothing, a deny that uses it drops everything after it"
                ));
            }
        }
        // Telnet is refused when the file is read; a port the checks
        // flagged (a default password, an open panel, cleartext admin) is
        // left out here, so it is never forwarded either.
        let forwards: Vec<(usize, &crate::config::Forward)> = gw
            .forward
            .iter()
            .enumerate()
            .filter(|(i, fw)| {
                let port = fw.to_port.unwrap_or(fw.port);
                let flagged: Vec<&str> = inputs
                    .flagged
                    .iter()
                    .filter(|(a, p, _)| *a == fw.to && *p == port)
                    .map(|f| f.2.as_str())
                    .collect();
                if flagged.is_empty() {
                    return true;
                }
                warnings.push(format!(
                    "forward-{i} to {}:{port} left out: the checks found {} there",
                    fw.to,
                    flagged.join(", ")
                ));
                false
            })
            .collect();
        let mut t = String::new();
        let _ = writeln!(t, "table {TABLE} {{");
        let _ = writeln!(t, "\tcomment \"{OWNER}\"");
        for s in &sets {
            let _ = write!(t, "\tset {} {{\n\t\ttype {}\n", s.name, s.kind);
            if s.name.starts_with("quarantine") {
                let _ = writeln!(
                    t,
                    "\t\tflags timeout\n\t\ttimeout {}s",
                    gw.timeout.as_secs()
                );
            } else if s.interval {
                // Overlapping prefixes (a /32 inside a /24) are merged.
                let _ = writeln!(t, "\t\tflags interval\n\t\tauto-merge");
            }
            let _ = writeln!(t, "\t\tcomment \"{}\"", comment(&s.comment));
            if !s.elements.is_empty() {
                let _ = writeln!(t, "\t\telements = {{ {} }}", elements(&s.elements));
            }
            let _ = writeln!(t, "\t}}");
        }
        let lan = format!("\"{}\"", gw.lan_interface);
        let wan = format!("\"{}\"", gw.wan_interface);

        // prerouting (nat)
        let _ = writeln!(
            t,
            "\tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;"
        );
        if let Some(a) = gw.lan_address {
            let f = fam_of(a);
            let to = if a.is_ipv4() {
                format!("{a}:{}", gw.notice_port)
            } else {
                format!("[{a}]:{}", gw.notice_port)
            };
            let _ = writeln!(t, "\t\tiifname {lan} {} saddr @quarantine_{} fib daddr type != local tcp dport 80 counter dnat {} to {to} comment \"quarantine-notice\"", f.ip, f.suffix, f.ip);
            if gw.dns == DnsMode::Redirect {
                let _ = writeln!(t, "\t\tiifname {lan} {} daddr != @resolvers_{} meta l4proto {{ tcp, udp }} th dport 53 counter dnat {} to {a} comment \"dns-redirect\"", f.ip, f.suffix, f.ip);
            }
        }
        for &(i, fw) in &forwards {
            let f = fam_of(fw.to);
            let port = fw.to_port.unwrap_or(fw.port);
            let to = if fw.to.is_ipv4() {
                format!("{}:{port}", fw.to)
            } else {
                format!("[{}]:{port}", fw.to)
            };
            let _ = writeln!(t, "\t\tiifname {wan} meta nfproto {} {} dport {} counter dnat {} to {to} comment \"forward-{i}\"", f.nfproto, fw.proto, fw.port, f.ip);
        }
        let _ = writeln!(t, "\t}}");

        // input
        let mgmt_ports = gw
            .management_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            t,
            "\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;"
        );
        let _ = writeln!(t, "\t\tiifname != {{ {lan}, {wan} }} accept");
        let _ = writeln!(t, "\t\tct state established,related accept");
        for f in [&V4, &V6] {
            let _ = writeln!(t, "\t\t{} saddr @mgmt_{} tcp dport {{ {mgmt_ports} }} counter accept comment \"management\"", f.ip, f.suffix);
        }
        let _ = writeln!(t, "\t\tct state invalid counter drop comment \"invalid\"");
        for f in [&V4, &V6] {
            let _ = writeln!(t, "\t\tiifname {lan} {} saddr @quarantine_{} meta l4proto {{ tcp, udp }} th dport 53 accept", f.ip, f.suffix);
            let _ = writeln!(
                t,
                "\t\tiifname {lan} {} saddr @quarantine_{} tcp dport {} accept",
                f.ip, f.suffix, gw.notice_port
            );
            let _ = writeln!(
                t,
                "\t\tiifname {lan} {} saddr @quarantine_{} udp dport {{ 67, 547 }} accept",
                f.ip, f.suffix
            );
            let _ = writeln!(t, "\t\tiifname {lan} {} saddr @quarantine_{} counter drop comment \"quarantine-input\"", f.ip, f.suffix);
        }
        let _ = writeln!(
            t,
            "\t\tiifname {lan} meta l4proto {{ tcp, udp }} th dport 53 accept comment \"dns\""
        );
        let _ = writeln!(
            t,
            "\t\tiifname {lan} udp dport {{ 67, 547 }} accept comment \"dhcp\""
        );
        let _ = writeln!(
            t,
            "\t\tiifname {wan} udp dport {{ 68, 546 }} accept comment \"dhcp-client\""
        );
        let _ = writeln!(
            t,
            "\t\tiifname {lan} tcp dport {} accept comment \"notice\"",
            gw.notice_port
        );
        let _ = writeln!(t, "\t\ticmp type echo-request limit rate 10/second accept");
        // Without neighbour discovery IPv6 stops working (RFC 4890 section 4.4.1).
        let _ = writeln!(t, "\t\ticmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert, echo-request }} accept");
        let _ = writeln!(t, "\t\tcounter drop comment \"input-drop\"");
        let _ = writeln!(t, "\t}}");

        // forward
        let _ = writeln!(
            t,
            "\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;"
        );
        let _ = writeln!(
            t,
            "\t\tiifname != {{ {lan}, {wan} }} oifname != {{ {lan}, {wan} }} accept"
        );
        for f in [&V4, &V6] {
            // Before established flows: a quarantine cuts the connections a
            // bot already holds (its C&C session) too. A quarantined host
            // keeps DNS: the gateway's (input) and the listed resolvers'.
            let _ = writeln!(
                t,
                "\t\tiifname {lan} {} saddr @quarantine_{} {} daddr @resolvers_{} meta l4proto {{ tcp, udp }} th dport 53 accept",
                f.ip, f.suffix, f.ip, f.suffix
            );
        }
        for f in [&V4, &V6] {
            let _ = writeln!(
                t,
                "\t\tiifname {lan} {} saddr @quarantine_{} counter drop comment \"quarantine\"",
                f.ip, f.suffix
            );
        }
        let _ = writeln!(t, "\t\tct state established,related accept");
        let _ = writeln!(t, "\t\tct state invalid counter drop comment \"invalid\"");
        for f in [&V4, &V6] {
            let _ = writeln!(t, "\t\tiifname {lan} {} daddr @cc_{} counter reject with icmpx type admin-prohibited comment \"cc-out\"", f.ip, f.suffix);
            let _ = writeln!(
                t,
                "\t\tiifname {wan} {} saddr @cc_{} counter drop comment \"cc-in\"",
                f.ip, f.suffix
            );
        }
        if gw.dns != DnsMode::Allow {
            for f in [&V4, &V6] {
                let _ = writeln!(t, "\t\tiifname {lan} {} daddr != @resolvers_{} meta l4proto {{ tcp, udp }} th dport 53 counter drop comment \"dns-direct\"", f.ip, f.suffix);
            }
        }
        for &(i, fw) in &forwards {
            let f = fam_of(fw.to);
            let port = fw.to_port.unwrap_or(fw.port);
            let _ = writeln!(t, "\t\tiifname {wan} oifname {lan} ct status dnat {} daddr {} {} dport {port} counter accept comment \"forward-{i}\"", f.ip, fw.to, fw.proto);
        }
        let _ = writeln!(t, "\t\tiifname {wan} counter drop comment \"inbound\"");
        // The listed resolvers stay reachable whatever a device's policy
        // (RFC 8520 leaves DNS to the network: a device needs it to use the
        // names in its own MUD file).
        for f in [&V4, &V6] {
            let _ = writeln!(
                t,
                "\t\tiifname {lan} {} daddr @resolvers_{} meta l4proto {{ tcp, udp }} th dport 53 accept comment \"dns-resolvers\"",
                f.ip, f.suffix
            );
        }
        let _ = writeln!(t, "\t\tiifname {lan} jump from_device");
        let _ = writeln!(t, "\t\tiifname {lan} oifname {lan} jump to_device");
        let _ = writeln!(t, "\t}}");

        // Per-device dispatch and policies.
        let mut from = String::new();
        let mut to = String::new();
        let mut dev_chains = String::new();
        for (i, d) in gw.device.iter().enumerate() {
            let mud = inputs.muds.get(i).and_then(Option::as_ref);
            let Some(mud) = mud else { continue };
            if let Some(mac) = &d.mac {
                let _ = writeln!(from, "\t\tether saddr {mac} goto dev{i}_from");
            }
            if let Some(a) = d.address {
                let f = fam_of(a);
                if d.mac.is_none() {
                    let _ = writeln!(from, "\t\t{} saddr {a} goto dev{i}_from", f.ip);
                }
                let _ = writeln!(to, "\t\t{} daddr {a} goto dev{i}_to", f.ip);
            } else {
                warnings.push(format!(
                    "device {:?} has no address: its to-device policy applies to nothing",
                    d.name
                ));
            }
            for w in &mud.warnings {
                warnings.push(format!("device {:?}: {w}", d.name));
            }
            for (dir, aces) in [
                (Direction::FromDevice, &mud.from_device),
                (Direction::ToDevice, &mud.to_device),
            ] {
                let chain = if dir == Direction::FromDevice {
                    "from"
                } else {
                    "to"
                };
                let _ = writeln!(dev_chains, "\tchain dev{i}_{chain} {{");
                let _ = writeln!(
                    dev_chains,
                    "\t\tcomment \"{}\"",
                    comment(&format!("{}: {}", d.name, mud.url))
                );
                for ace in aces.iter() {
                    match ace_rule(ace, dir, gw, inputs, mud, d) {
                        Ok(r) => {
                            if r == "counter drop" && !ace.cut && !ace.accept {
                                warnings.push(format!(
                                    "device {:?}: deny ACE {:?} names nothing with an address: everything after it is dropped",
                                    d.name, ace.name
                                ));
                            }
                            let _ = writeln!(
                                dev_chains,
                                "\t\t{r} comment \"{}\"",
                                comment(&format!("mud:{}:{}", d.name, ace.name))
                            );
                        }
                        Err(why) => warnings.push(format!(
                            "device {:?}: ACE {:?} left out: {why}",
                            d.name, ace.name
                        )),
                    }
                }
                let _ = writeln!(
                    dev_chains,
                    "\t\tcounter drop comment \"{}\"",
                    comment(&format!("mud:{}:{chain}-device-drop", d.name))
                );
                let _ = writeln!(dev_chains, "\t}}");
            }
        }
        match gw.default_policy {
            DefaultPolicy::Allow => {}
            DefaultPolicy::Internet => {
                for f in [&V4, &V6] {
                    let _ = writeln!(
                        from,
                        "\t\t{} daddr @lan_{} counter drop comment \"default-no-lan\"",
                        f.ip, f.suffix
                    );
                }
            }
            DefaultPolicy::Deny => {
                let _ = writeln!(from, "\t\tcounter drop comment \"default-deny\"");
            }
        }
        let _ = write!(t, "\tchain from_device {{\n{from}\t}}\n");
        let _ = write!(t, "\tchain to_device {{\n{to}\t}}\n");
        t.push_str(&dev_chains);
        t.push_str("}\n");
        Plan {
            table: t,
            sets,
            refused,
            warnings,
        }
    }

    /// A hash of the table without the elements of the refreshed sets:
    /// what `refresh` may not change. Two plans with the same structure
    /// differ only in C&C and name addresses.
    pub fn structure(&self) -> String {
        let refreshed: Vec<&str> = self
            .sets
            .iter()
            .filter(|s| s.refreshed)
            .map(|s| s.name.as_str())
            .collect();
        let mut current: Option<&str> = None;
        let mut kept = String::new();
        for line in self.table.lines() {
            if let Some(rest) = line.trim().strip_prefix("set ") {
                current = rest.strip_suffix(" {");
            }
            let skip = line.trim_start().starts_with("elements = ")
                && current.is_some_and(|c| refreshed.contains(&c));
            if !skip {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        format!("{:016x}", stable_hash(kept.as_bytes()))
    }

    /// The script `gateway apply` loads: creates the table if missing,
    /// deletes it and writes it whole, in one transaction (`nft -f` applies
    /// a file atomically: all of it or nothing).
    pub fn apply_script(&self) -> String {
        replace_script(&self.table)
    }

    /// The script that refreshes the C&C and name sets in place, in one
    /// transaction: counters, quarantine and everything else stay.
    pub fn refresh_script(&self) -> String {
        let mut s = String::new();
        for set in self.sets.iter().filter(|s| s.refreshed) {
            let _ = writeln!(s, "flush set {TABLE} {}", set.name);
            // nft takes long element lists; chunks keep lines moderate.
            for chunk in set.elements.chunks(1000) {
                let _ = writeln!(
                    s,
                    "add element {TABLE} {} {{ {} }}",
                    set.name,
                    elements(chunk)
                );
            }
        }
        s
    }

    /// True when the input chain accepts a TCP connection from `src` to
    /// the gateway's port `port` before anything can drop it (the
    /// management rule is the first that decides).
    pub fn admits_management(gw: &Gateway, src: IpAddr, port: u16) -> bool {
        within(&gw.management_from, src) && gw.management_ports.contains(&port)
    }
}

/// A script that replaces the whole table with `table` (its text as `nft
/// list table` prints it).
pub fn replace_script(table: &str) -> String {
    format!("table {TABLE}\ndelete table {TABLE}\n{table}")
}

/// The rule for one ACE in a device chain; `Err` when it can match nothing
/// new in this direction.
fn ace_rule(
    ace: &Ace,
    dir: Direction,
    gw: &Gateway,
    inputs: &Inputs,
    mud: &Mud,
    dev: &crate::config::CheckedDevice,
) -> Result<String, String> {
    // Established traffic was accepted before the device chains: an ACE
    // for connections the other side opens cannot let new ones out.
    if let Some(d) = ace.direction {
        if d != dir {
            return Err(
                "it is for connections the other side opens; replies pass as established".into(),
            );
        }
    }
    // A deny that cannot be matched exactly (or whose names or peers have
    // no address, so an exact rule would match nothing) drops everything
    // from here on: a superset of the deny, never a hole.
    const CUT: &str = "counter drop";
    if ace.cut {
        return Ok(CUT.into());
    }
    let f = if ace.family == Family::V4 { &V4 } else { &V6 };
    let v4 = ace.family == Family::V4;
    for n in [&ace.src_dnsname, &ace.dst_dnsname].into_iter().flatten() {
        let known = inputs
            .names
            .get(n)
            .is_some_and(|a| !of_family(a, v4).is_empty());
        if !known && !ace.accept {
            return Ok(CUT.into());
        }
    }
    // In the from-device chain the remote end is the destination; in the
    // to-device chain it is the source.
    let (remote, local) = if dir == Direction::FromDevice {
        ("daddr", "saddr")
    } else {
        ("saddr", "daddr")
    };
    let mut r = format!("meta nfproto {}", f.nfproto);
    if let Some(p) = ace.src_net {
        let _ = write!(r, " {} saddr {p}", f.ip);
    }
    if let Some(p) = ace.dst_net {
        let _ = write!(r, " {} daddr {p}", f.ip);
    }
    for (name, side) in [(&ace.src_dnsname, "saddr"), (&ace.dst_dnsname, "daddr")] {
        if let Some(n) = name {
            let _ = write!(r, " {} {side} @{}", f.ip, name_set(n, f));
        }
    }
    let _ = local;
    if let Some(m) = &ace.mud {
        let addrs: Vec<IpAddr> = match m {
            MudMatch::LocalNetworks => {
                let _ = write!(r, " {} {remote} @lan_{}", f.ip, f.suffix);
                Vec::new()
            }
            MudMatch::SameManufacturer => peers(gw, inputs, |o| o.authority == mud.authority),
            MudMatch::Manufacturer(a) => peers(gw, inputs, |o| &o.authority == a),
            MudMatch::Model(u) => peers(gw, inputs, |o| &o.url == u),
            MudMatch::Controller(u) => gw.controllers.get(u).cloned().unwrap_or_default(),
            MudMatch::MyController => dev.controller.clone(),
        };
        if *m != MudMatch::LocalNetworks {
            let list = of_family(&addrs, ace.family == Family::V4);
            if list.is_empty() && !ace.accept {
                return Ok(CUT.into());
            }
            if list.is_empty() {
                return Err(format!("{m:?} names no address of this family"));
            }
            let _ = write!(r, " {} {remote} {{ {} }}", f.ip, elements(&list));
        }
    }
    if let Some(p) = ace.protocol {
        if ace.l4.is_none() {
            let _ = write!(r, " meta l4proto {p}");
        }
    }
    if let Some(l4) = ace.l4 {
        let proto = if l4 == 6 { "tcp" } else { "udp" };
        if ace.src_port.is_none() && ace.dst_port.is_none() {
            let _ = write!(r, " meta l4proto {proto}");
        }
        if let Some(p) = ace.src_port {
            let _ = write!(r, " {proto} sport {}", port_expr(p));
        }
        if let Some(p) = ace.dst_port {
            let _ = write!(r, " {proto} dport {}", port_expr(p));
        }
    }
    let verdict = match (ace.accept, dir) {
        // Allowed out: the destination's own to-device policy still runs.
        (true, Direction::FromDevice) => "return",
        (true, Direction::ToDevice) => "accept",
        (false, _) => "drop",
    };
    let _ = write!(r, " counter {verdict}");
    Ok(r)
}

/// Addresses of the configured devices whose MUD file passes `pick`.
fn peers(gw: &Gateway, inputs: &Inputs, pick: impl Fn(&Mud) -> bool) -> Vec<IpAddr> {
    gw.device
        .iter()
        .zip(&inputs.muds)
        .filter_map(|(d, m)| m.as_ref().filter(|m| pick(m)).and(d.address))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;

    fn gw(extra: &str) -> Gateway {
        GatewayConfig::from_toml(&format!(
            "[gateway]\nlan_interface = \"lan0\"\nwan_interface = \"wan0\"\nlan_address = \"198.18.1.1\"\nlan_prefixes = [\"198.18.1.0/24\"]\nmud_dir = \"/m\"\n{extra}"
        ))
        .unwrap()
        .check()
        .unwrap()
    }

    #[test]
    fn blocks_only_remote_hosts() {
        let g = gw("allow = [\"198.19.9.0/24\"]\nresolvers = [\"198.19.53.53\"]\n");
        let inputs = Inputs {
            cc: [
                "198.19.200.10",
                "198.18.1.7",
                "127.0.0.1",
                "198.19.9.9",
                "198.19.53.53",
                "::ffff:198.19.200.11",
                "2001:db8::66",
            ]
            .iter()
            .map(|a| (a.parse().unwrap(), "test".to_string()))
            .collect(),
            ..Default::default()
        };
        let p = Plan::new(&g, &inputs);
        let cc4 = p.sets.iter().find(|s| s.name == "cc_v4").unwrap();
        assert_eq!(cc4.elements, vec!["198.19.200.10"]);
        let cc6 = p.sets.iter().find(|s| s.name == "cc_v6").unwrap();
        assert_eq!(cc6.elements, vec!["2001:db8::66"]);
        assert_eq!(p.refused.len(), 5, "{:?}", p.refused);
    }

    #[test]
    fn the_table_is_marked_and_replaced_whole() {
        let p = Plan::new(&gw(""), &Inputs::default());
        assert!(p.table.contains(&format!("comment \"{OWNER}\"")));
        let s = p.apply_script();
        assert!(
            s.starts_with("table inet iotscope\ndelete table inet iotscope\ntable inet iotscope {")
        );
        // Nothing outside the table.
        assert_eq!(s.matches("table ").count(), 3);
        assert!(!s.contains("flush ruleset"));
    }

    #[test]
    fn management_comes_before_any_drop_in_input() {
        let p = Plan::new(&gw(""), &Inputs::default());
        let input = p.table.split("chain input").nth(1).unwrap();
        let m = input.find("comment \"management\"").unwrap();
        let first_drop = input.find(" drop").unwrap();
        assert!(m < first_drop);
        let g = gw("[gateway.management]\nports = [2222]\nfrom = [\"198.18.1.10/32\"]\n");
        assert!(Plan::admits_management(
            &g,
            "198.18.1.10".parse().unwrap(),
            2222
        ));
        assert!(!Plan::admits_management(
            &g,
            "198.18.1.11".parse().unwrap(),
            2222
        ));
        assert!(!Plan::admits_management(
            &g,
            "198.18.1.10".parse().unwrap(),
            22
        ));
    }

    #[test]
    fn mud_rules_cover_names_lateral_and_direction() {
        let g = gw("[[gateway.device]]\nname = \"cam\"\nmac = \"02:00:00:00:00:20\"\naddress = \"198.18.1.20\"\nmud = \"cam.json\"\n[[gateway.device]]\nname = \"hub\"\naddress = \"198.18.1.30\"\nmud = \"hub.json\"\n");
        let mk = |url: &str, acl: &str| {
            crate::mud::parse(
                &format!(
                    r#"{{"ietf-mud:mud": {{"mud-url": "{url}",
                "from-device-policy": {{"access-lists": {{"access-list": [{{"name": "f"}}]}}}},
                "to-device-policy": {{"access-lists": {{"access-list": [{{"name": "t"}}]}}}}}},
              "ietf-access-control-list:acls": {{"acl": [{acl}]}}}}"#
                ),
                "t",
            )
            .unwrap()
        };
        let cam = mk(
            "https://cams.example/c1",
            r#"{"name": "f", "type": "ipv4-acl-type", "aces": {"ace": [
                 {"name": "cloud", "matches": {"ipv4": {"ietf-acldns:dst-dnsname": "cloud.cams.example", "protocol": 6},
                   "tcp": {"destination-port": {"operator": "eq", "port": 443}, "ietf-mud:direction-initiated": "from-device"}},
                  "actions": {"forwarding": "accept"}},
                 {"name": "peers", "matches": {"ietf-mud:mud": {"same-manufacturer": [null]}}, "actions": {"forwarding": "accept"}},
                 {"name": "push", "matches": {"ipv4": {"protocol": 6}, "tcp": {"ietf-mud:direction-initiated": "to-device"}}, "actions": {"forwarding": "accept"}}]}},
               {"name": "t", "type": "ipv4-acl-type", "aces": {"ace": [
                 {"name": "local", "matches": {"ietf-mud:mud": {"local-networks": [null]}, "tcp": {"destination-port": {"operator": "eq", "port": 554}}},
                  "actions": {"forwarding": "accept"}}]}}"#,
        );
        let hub = mk(
            "https://cams.example/hub",
            r#"{"name": "f", "type": "ipv4-acl-type", "aces": {"ace": []}}, {"name": "t", "type": "ipv4-acl-type", "aces": {"ace": []}}"#,
        );
        let mut names = BTreeMap::new();
        names.insert(
            "cloud.cams.example".to_string(),
            vec!["198.19.44.4".parse().unwrap()],
        );
        let p = Plan::new(
            &g,
            &Inputs {
                cc: vec![],
                muds: vec![Some(cam), Some(hub)],
                names,
                flagged: vec![],
            },
        );
        // The name's set, under a stable alias for reading.
        let set = name_set("cloud.cams.example", &V4);
        let t = &p.table.replace(&set, "name0_v4");
        assert!(
            t.contains("ether saddr 02:00:00:00:00:20 goto dev0_from"),
            "{t}"
        );
        assert!(t.contains("ip saddr 198.18.1.30 goto dev1_from"), "{t}");
        assert!(t.contains("ip daddr 198.18.1.20 goto dev0_to"), "{t}");
        assert!(t.contains("meta nfproto ipv4 ip daddr @name0_v4 tcp dport 443 counter return comment \"mud:cam:cloud\""), "{t}");
        // Same manufacturer: both devices' addresses.
        assert!(
            t.contains(
                "ip daddr { 198.18.1.20, 198.18.1.30 } counter return comment \"mud:cam:peers\""
            ),
            "{t}"
        );
        // The local-networks rule osMUD leaves out.
        assert!(t.contains("meta nfproto ipv4 ip saddr @lan_v4 tcp dport 554 counter accept comment \"mud:cam:local\""), "{t}");
        // A connection the other side opens is not a new one from the device.
        assert!(!t.contains("mud:cam:push"), "{t}");
        assert!(
            p.warnings.iter().any(|w| w.contains("push")),
            "{:?}",
            p.warnings
        );
        let name_set = p.sets.iter().find(|s| s.name == set).unwrap();
        assert_eq!(name_set.elements, vec!["198.19.44.4"]);
        let r = p.refresh_script().replace(&set, "name0_v4");
        assert!(r.contains("flush set inet iotscope name0_v4\nadd element inet iotscope name0_v4 { 198.19.44.4 }"), "{r}");
        assert!(r.contains("flush set inet iotscope cc_v4"));
        assert!(!r.contains("quarantine"));
    }

    #[test]
    fn a_flagged_service_is_never_forwarded() {
        let g = gw("[[gateway.forward]]\nproto = \"tcp\"\nport = 8443\nto = \"198.18.1.20\"\nto_port = 80\n[[gateway.forward]]\nproto = \"tcp\"\nport = 8444\nto = \"198.18.1.21\"\n");
        let p = Plan::new(&g, &Inputs::default());
        assert!(p.table.contains("comment \"forward-0\""));
        let inputs = Inputs {
            flagged: vec![(
                "198.18.1.20".parse().unwrap(),
                80,
                "default_credential".into(),
            )],
            ..Default::default()
        };
        let p = Plan::new(&g, &inputs);
        assert!(!p.table.contains("198.18.1.20"), "{}", p.table);
        assert!(p.table.contains("comment \"forward-1\""));
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains("forward-0") && w.contains("default_credential")));
    }

    #[test]
    fn the_structure_ignores_addresses_only() {
        let g = gw("[[gateway.forward]]\nproto = \"tcp\"\nport = 8443\nto = \"198.18.1.20\"\n");
        let a = Plan::new(&g, &Inputs::default());
        let b = Plan::new(
            &g,
            &Inputs {
                cc: vec![("198.19.200.10".parse().unwrap(), "feed".into())],
                ..Default::default()
            },
        );
        assert_eq!(a.structure(), b.structure());
        let c = Plan::new(&gw(""), &Inputs::default());
        assert_ne!(a.structure(), c.structure());
    }

    #[test]
    fn quarantine_comes_before_established_flows() {
        let p = Plan::new(&gw(""), &Inputs::default());
        let fwd = p.table.split("chain forward").nth(1).unwrap();
        assert!(
            fwd.find("comment \"quarantine\"").unwrap() < fwd.find("ct state established").unwrap()
        );
    }

    #[test]
    fn a_deny_that_cannot_be_enforced_exactly_drops_everything_after_it() {
        let g = gw(
            "[[gateway.device]]\nname = \"cam\"\naddress = \"198.18.1.20\"\nmud = \"cam.json\"\n",
        );
        let mud = crate::mud::parse(r#"{"ietf-mud:mud": {"mud-url": "https://cams.example/c1",
              "from-device-policy": {"access-lists": {"access-list": [{"name": "f"}]}}},
            "ietf-access-control-list:acls": {"acl": [{"name": "f", "type": "ipv4-acl-type", "aces": {"ace": [
              {"name": "by-name", "matches": {"ipv4": {"ietf-acldns:dst-dnsname": "unresolved.example"}}, "actions": {"forwarding": "drop"}},
              {"name": "any", "matches": {}, "actions": {"forwarding": "accept"}}]}}]}}"#, "t").unwrap();
        let mut names = BTreeMap::new();
        names.insert("unresolved.example".to_string(), vec![]);
        let p = Plan::new(
            &g,
            &Inputs {
                muds: vec![Some(mud)],
                names,
                ..Default::default()
            },
        );
        let chain = p.table.split("chain dev0_from").nth(1).unwrap();
        let cut = chain
            .find("\t\tcounter drop comment \"mud:cam:by-name\"")
            .expect(chain);
        assert!(cut < chain.find("mud:cam:any").unwrap());
    }

    #[test]
    fn dns_modes() {
        let p = Plan::new(&gw(""), &Inputs::default());
        assert!(p.table.contains("dns-redirect"));
        assert!(p.table.contains("dns-direct"));
        let p = Plan::new(&gw("dns = \"block\"\n"), &Inputs::default());
        assert!(!p.table.contains("dns-redirect"));
        assert!(p.table.contains("dns-direct"));
        let p = Plan::new(&gw("dns = \"allow\"\n"), &Inputs::default());
        assert!(!p.table.contains("dns-direct"));
    }
}
